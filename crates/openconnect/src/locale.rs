//! The locale's character set, as openconnect treats it: in a legacy (not UTF-8) locale,
//! text on the command line is converted to UTF-8, since passwords (a PKCS#12 file's),
//! user names and form answers are UTF-8 to the server and to OpenSSL; file names go back
//! to the locale's bytes to be opened. The character set is the locale name's (`LC_ALL`,
//! else `LC_CTYPE`, else `LANG`: `cs_CZ.ISO8859-2` is ISO-8859-2).

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use encoding_rs::Encoding;

/// The locale's character set when it is a legacy one.
pub(crate) fn legacy_charset() -> Option<&'static Encoding> {
    let locale = ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))?;
    charset_of(&locale)
}

fn charset_of(locale: &str) -> Option<&'static Encoding> {
    let codeset = locale.split_once('.')?.1.split('@').next()?;
    let encoding = Encoding::for_label(codeset.as_bytes())?;
    (encoding != encoding_rs::UTF_8).then_some(encoding)
}

/// A command-line argument in `charset`, as UTF-8 (ASCII as it is).
pub(crate) fn arg_to_utf8(arg: OsString, charset: Option<&'static Encoding>) -> OsString {
    match charset {
        Some(charset) if !arg.as_bytes().is_ascii() => {
            let (text, _) = charset.decode_without_bom_handling(arg.as_bytes());
            OsString::from(text.into_owned())
        }
        _ => arg,
    }
}

/// A file name from the command line, back in `charset`'s bytes (as it is when it has no
/// such bytes).
pub(crate) fn path_to_locale(path: PathBuf, charset: Option<&'static Encoding>) -> PathBuf {
    let (Some(charset), Some(text)) = (charset, path.to_str()) else {
        return path;
    };
    if text.is_ascii() {
        return path;
    }
    let (bytes, _, unmappable) = charset.encode(text);
    if unmappable {
        return path;
    }
    PathBuf::from(OsString::from_vec(bytes.into_owned()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_legacy_locales_text_becomes_utf8_and_file_names_go_back() {
        let latin2 = charset_of("cs_CZ.ISO8859-2");
        assert_eq!(latin2.map(Encoding::name), Some("ISO-8859-2"));
        for utf8 in ["en_US.UTF-8", "C.utf8", "C", "POSIX", "de_DE@euro"] {
            assert_eq!(charset_of(utf8), None, "{utf8}");
        }
        // The same two bytes: "ĂŻ" in ISO-8859-2, which upstream's test types as its
        // PKCS#12 password.
        let arg = OsString::from_vec(vec![0xc3, 0xaf]);
        assert_eq!(arg_to_utf8(arg.clone(), latin2), OsString::from("ĂŻ"));
        assert_eq!(arg_to_utf8(arg.clone(), None), arg);
        assert_eq!(arg_to_utf8("plain".into(), latin2), OsString::from("plain"));
        let path = path_to_locale(PathBuf::from("/tmp/ĂŻ.pem"), latin2);
        assert_eq!(path.as_os_str().as_bytes(), b"/tmp/\xc3\xaf.pem");
        // Text the locale cannot spell stays as it is.
        let chinese = PathBuf::from("/tmp/证书.pem");
        assert_eq!(path_to_locale(chinese.clone(), latin2), chinese);
    }
}
