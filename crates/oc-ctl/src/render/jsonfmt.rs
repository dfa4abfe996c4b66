//! A `serde_json` formatter reproducing occtl's JSON layout.
//!
//! ocserv prints JSON with `printf`; its layout is
//!
//! ```text
//! [
//!   {
//!     "ID":  12,
//!     "Username":  "alice",
//!     "DNS":<TAB>["192.0.2.53", "192.0.2.54"]
//!   }
//! ]
//! ```
//!
//! (lists follow a tab instead of two spaces; a top-level object, as for
//! `show status`, is indented by two spaces too). This formatter produces the same layout while `serde_json` does the
//! serialisation, so the output is valid JSON whatever the data. Control
//! characters are escaped as `\u00XX`, like ocserv's `json_escape_val`.

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, CompactFormatter, Formatter};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// The outermost array: one element per line.
    TopArray,
    /// An object printed one key per line.
    Block,
    /// A nested container printed on one line.
    Inline,
}

#[derive(Debug, Default)]
pub(crate) struct OcservFormatter {
    stack: Vec<Ctx>,
    /// A key's `:` was written and its value is next.
    pending_value: bool,
}

impl OcservFormatter {
    fn before_scalar<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        if std::mem::take(&mut self.pending_value) {
            w.write_all(b"  ")?;
        }
        Ok(())
    }

    /// Before an array element or object key: inside a `block` container a
    /// new line indented by `indent` (after a comma unless `first`), inside
    /// an inline one `, ` between items.
    fn separator<W: ?Sized + io::Write>(
        &self,
        w: &mut W,
        first: bool,
        block: Ctx,
        indent: &[u8],
    ) -> io::Result<()> {
        if self.stack.last() == Some(&block) {
            if !first {
                w.write_all(b",")?;
            }
            w.write_all(b"\n")?;
            w.write_all(indent)
        } else if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    /// Closes the innermost container: with `block_end` if it is a `block`
    /// one, else with `inline_end`.
    fn close<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        block: Ctx,
        block_end: &[u8],
        inline_end: &[u8],
    ) -> io::Result<()> {
        if self.stack.pop() == Some(block) {
            w.write_all(block_end)
        } else {
            w.write_all(inline_end)
        }
    }
}

macro_rules! scalar {
    ($($name:ident($ty:ty)),* $(,)?) => {
        $(
            fn $name<W: ?Sized + io::Write>(&mut self, w: &mut W, value: $ty) -> io::Result<()> {
                self.before_scalar(w)?;
                CompactFormatter.$name(w, value)
            }
        )*
    };
}

impl Formatter for OcservFormatter {
    fn write_null<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.before_scalar(w)?;
        CompactFormatter.write_null(w)
    }

    scalar!(
        write_bool(bool),
        write_i8(i8),
        write_i16(i16),
        write_i32(i32),
        write_i64(i64),
        write_i128(i128),
        write_u8(u8),
        write_u16(u16),
        write_u32(u32),
        write_u64(u64),
        write_u128(u128),
        write_f32(f32),
        write_f64(f64),
        write_number_str(&str),
        write_raw_fragment(&str),
    );

    fn begin_string<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.before_scalar(w)?;
        CompactFormatter.begin_string(w)
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        char_escape: CharEscape,
    ) -> io::Result<()> {
        let control = |w: &mut W, b: u8| write!(w, "\\u{:04x}", b);
        match char_escape {
            CharEscape::Quote => w.write_all(b"\\\""),
            CharEscape::ReverseSolidus => w.write_all(b"\\\\"),
            CharEscape::Solidus => w.write_all(b"\\/"),
            CharEscape::Backspace => control(w, 0x08),
            CharEscape::FormFeed => control(w, 0x0c),
            CharEscape::LineFeed => control(w, 0x0a),
            CharEscape::CarriageReturn => control(w, 0x0d),
            CharEscape::Tab => control(w, 0x09),
            CharEscape::AsciiControl(b) => control(w, b),
        }
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        if std::mem::take(&mut self.pending_value) {
            w.write_all(b"\t")?;
        }
        let ctx = if self.stack.is_empty() {
            Ctx::TopArray
        } else {
            Ctx::Inline
        };
        self.stack.push(ctx);
        w.write_all(b"[")
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, Ctx::TopArray, b"\n]", b"]")
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.separator(w, first, Ctx::TopArray, b"  ")
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.before_scalar(w)?;
        match self.stack.last() {
            None => {
                self.stack.push(Ctx::Block);
                w.write_all(b"  {")
            }
            Some(Ctx::TopArray) => {
                self.stack.push(Ctx::Block);
                w.write_all(b"{")
            }
            Some(_) => {
                self.stack.push(Ctx::Inline);
                w.write_all(b"{")
            }
        }
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, Ctx::Block, b"\n  }", b"}")
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.separator(w, first, Ctx::Block, b"    ")
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pending_value = true;
        w.write_all(b":")
    }
}

/// Serialises `value` in occtl's layout, followed by a newline.
pub(crate) fn to_occtl_json(value: &Value) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, OcservFormatter::default());
    if value.serialize(&mut ser).is_err() {
        // Writing into a Vec cannot fail; fall back to serde_json's own
        // (equally valid) compact form rather than panicking.
        return format!("{value}\n");
    }
    out.push(b'\n');
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn layout_of_array_of_objects() {
        let v = json!([
            {"ID": 1, "Username": "a", "DNS": ["x", "y"], "Routes": []},
            {"ID": 2}
        ]);
        let s = to_occtl_json(&v);
        assert_eq!(
            s,
            "[\n  {\n    \"ID\":  1,\n    \"Username\":  \"a\",\n    \"DNS\":\t[\"x\", \"y\"],\n    \"Routes\":\t[]\n  },\n  {\n    \"ID\":  2\n  }\n]\n"
        );
        assert_eq!(serde_json::from_str::<Value>(&s).unwrap(), v);
    }

    #[test]
    fn layout_of_object_and_empty_array() {
        let v = json!({"Status": "online", "raw_tx": 5});
        assert_eq!(
            to_occtl_json(&v),
            "  {\n    \"Status\":  \"online\",\n    \"raw_tx\":  5\n  }\n"
        );
        assert_eq!(to_occtl_json(&json!([])), "[\n]\n");
    }

    #[test]
    fn escapes_like_ocserv() {
        let v = json!({"k": "a\"b\\c\n\t\u{1}\u{7f}é"});
        let s = to_occtl_json(&v);
        assert!(s.contains(r#""a\"b\\c\u000a\u0009\u0001"#), "{s}");
        assert_eq!(serde_json::from_str::<Value>(&s).unwrap(), v);
    }
}
