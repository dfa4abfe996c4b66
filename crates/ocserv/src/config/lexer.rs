//! Splits config text into `key = value` entries the way ocserv's inih does, with line numbers.
//!
//! ocserv builds inih with inline comments (`#` after whitespace), multi-line continuation
//! (an indented line is one more value for the previous key) and both `=` and `:` as the
//! separator; values then have surrounding whitespace and double quotes removed. We follow
//! that, with two deliberate differences, each reported so nobody is surprised:
//!
//! - Inside a double-quoted value `#` is kept (`banner = "Room #1"`); ocserv would cut the
//!   value there. We warn, since the same file means something else to ocserv.
//! - An indented line that looks like a new setting (`  dns = 1.1.1.1`) is an error instead of
//!   silently becoming a bogus value of the previous key.

use super::Diag;

/// One `key = value`, with the value unquoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) line: usize,
    pub(super) key: String,
    pub(super) value: String,
}

/// A `[vhost:NAME]` section: its name as ocserv canonicalizes it (surrounding blanks
/// removed), the line of its (first) header and its entries in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct VhostSection {
    pub(super) name: String,
    pub(super) line: usize,
    pub(super) entries: Vec<Entry>,
}

/// A main config split into the default section and the virtual-host sections.
#[derive(Debug, Default)]
pub(super) struct Sections {
    pub(super) global: Vec<Entry>,
    pub(super) vhosts: Vec<VhostSection>,
}

/// Where the entries being read go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Global,
    Vhost(usize),
    Ignored,
}

/// The entries of the default (global) section, in file order (per-user and per-group
/// files). Sections are warned about and their entries dropped.
pub(super) fn lex(text: &str, d: &mut Diag) -> Vec<Entry> {
    lex_sections(text, d, false).global
}

/// The main config's default section and its `[vhost:NAME]` sections (a name given twice
/// continues the same section, as with ocserv). With `vhosts` false, virtual-host sections
/// are warned about and dropped like any other section.
pub(super) fn lex_sections(text: &str, d: &mut Diag, vhosts: bool) -> Sections {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut sections = Sections::default();
    // The key an indented line continues (inih's `prev_name`).
    let mut prev_key: Option<String> = None;
    let mut target = Target::Global;

    for (idx, raw) in text.lines().enumerate() {
        let line = idx + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }

        if raw.starts_with(char::is_whitespace) {
            if let Some(key) = &prev_key {
                if looks_like_setting(trimmed) {
                    d.error(
                        line,
                        format!(
                            "indented setting: ocserv reads an indented line as one more value \
                             of the previous key ({key}); remove the indentation"
                        ),
                    );
                    continue;
                }
                if target != Target::Ignored {
                    let value = clean_value(trimmed, line, d);
                    d.warn(
                        line,
                        format!(
                            "indented line continues the previous key: read as {key} = {value}"
                        ),
                    );
                    let entry = Entry {
                        line,
                        key: key.clone(),
                        value,
                    };
                    push(&mut sections, target, entry);
                }
                continue;
            }
        }

        if let Some(rest) = trimmed.strip_prefix('[') {
            let Some(end) = rest.find(']') else {
                d.error(line, "section header without a closing ']'");
                continue;
            };
            let name = rest.get(..end).unwrap_or_default().trim();
            prev_key = None;
            target = section_target(name, line, vhosts, &mut sections, d);
            continue;
        }

        let Some((key, rest)) = split_key(trimmed) else {
            d.error(line, format!("expected KEY = VALUE, got {trimmed:?}"));
            continue;
        };
        if key.is_empty() {
            d.error(line, "missing key before '='");
            continue;
        }
        prev_key = Some(key.to_owned());
        if target == Target::Ignored {
            continue;
        }
        let value = if RAW_VALUE_KEYS.contains(&key) {
            raw_value(rest, line, d)
        } else {
            clean_value(rest, line, d)
        };
        let entry = Entry {
            line,
            key: key.to_owned(),
            value,
        };
        push(&mut sections, target, entry);
    }
    sections
}

fn push(sections: &mut Sections, target: Target, entry: Entry) {
    match target {
        Target::Global => sections.global.push(entry),
        Target::Vhost(i) => {
            if let Some(v) = sections.vhosts.get_mut(i) {
                v.entries.push(entry);
            }
        }
        Target::Ignored => {}
    }
}

/// Reports a section header; returns where its entries go.
fn section_target(
    name: &str,
    line: usize,
    vhosts: bool,
    sections: &mut Sections,
    d: &mut Diag,
) -> Target {
    if name.is_empty() {
        // inih treats `[]` as the global section again.
        return Target::Global;
    }
    let Some(vhost) = name.strip_prefix("vhost:") else {
        d.warn(
            line,
            format!("unknown section [{name}]: its settings are ignored"),
        );
        return Target::Ignored;
    };
    let vhost = vhost.trim();
    if vhost.is_empty() {
        d.error(line, "virtual host section without a name: [vhost:]");
        return Target::Ignored;
    }
    if !vhosts {
        d.warn(
            line,
            format!("section [vhost:{vhost}] belongs in the main config; ignored here"),
        );
        return Target::Ignored;
    }
    // ocserv compares names exactly when it reads them (and ignoring case when a client
    // names one); two sections differing in case would never both be reachable.
    if let Some(i) = sections
        .vhosts
        .iter()
        .position(|v| v.name.eq_ignore_ascii_case(vhost))
    {
        return Target::Vhost(i);
    }
    sections.vhosts.push(VhostSection {
        name: vhost.to_owned(),
        line,
        entries: Vec::new(),
    });
    Target::Vhost(sections.vhosts.len() - 1)
}

/// `key` and the raw value text after the separator. The separator is the first `=` or `:`;
/// a `#` after whitespace before it starts a comment (so there is no separator).
fn split_key(s: &str) -> Option<(&str, &str)> {
    // Searched for in the text before any comment, but the value is cut from `s`: a `#` in a
    // quoted value is not a comment, which only `clean_value` can tell.
    let i = strip_comment(s).find(['=', ':'])?;
    // Both separators are one byte long.
    Some((s.get(..i)?.trim_end(), s.get(i + 1..)?))
}

/// Whether an indented line reads like `key = value` rather than a continued value. Only `=`
/// counts: `fd00::/64` (a continued IPv6 route) has `:` but is a value.
fn looks_like_setting(s: &str) -> bool {
    match s.split_once('=') {
        Some((k, _)) => {
            let k = k.trim();
            !k.is_empty()
                && k.chars().any(|c| c.is_ascii_alphabetic())
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        }
        None => false,
    }
}

/// Cuts `s` at an inline comment: `#` preceded by whitespace.
fn strip_comment(s: &str) -> &str {
    let mut prev_ws = false;
    for (i, c) in s.char_indices() {
        if c == '#' && prev_ws {
            return s.get(..i).unwrap_or(s);
        }
        prev_ws = c.is_whitespace();
    }
    s
}

fn has_inline_comment(s: &str) -> bool {
    strip_comment(s).len() != s.len()
}

/// Keys whose value is taken as written, quotes included (ocserv: an HTTP header value may
/// end in a quote, as `Clear-Site-Data: "cache","cookies"`).
const RAW_VALUE_KEYS: &[&str] = &["included-http-headers"];

/// The value after the separator as written: only the comment and outer whitespace go.
fn raw_value(rest: &str, line: usize, d: &mut Diag) -> String {
    let value = strip_comment(rest).trim();
    if value.chars().any(|c| c.is_control() && c != '\t') {
        d.error(line, "the value contains a control character");
    }
    value.to_owned()
}

/// The value after the separator: comment removed, whitespace trimmed, quotes removed.
fn clean_value(rest: &str, line: usize, d: &mut Diag) -> String {
    let start = rest.trim_start();
    let value = if let Some(quoted) = start.strip_prefix('"') {
        match quoted.find('"') {
            Some(end) => {
                let inner = quoted.get(..end).unwrap_or_default();
                let after = quoted.get(end + 1..).unwrap_or_default().trim_start();
                if !after.is_empty() && !after.starts_with('#') {
                    d.error(
                        line,
                        format!("unexpected text after the closing quote: {after:?}"),
                    );
                }
                if has_inline_comment(inner) {
                    d.warn(
                        line,
                        "'#' inside quotes is kept as part of the value here, but ocserv 1.x \
                         would treat it as the start of a comment",
                    );
                }
                inner.trim()
            }
            None => {
                d.warn(line, "missing closing quote");
                strip_comment(quoted).trim()
            }
        }
    } else {
        let v = strip_comment(rest).trim();
        match v.strip_suffix('"') {
            Some(v) => {
                d.warn(line, "missing opening quote");
                v.trim_end()
            }
            None => v,
        }
    };
    if value.chars().any(|c| c.is_control() && c != '\t') {
        // Values end up in HTTP headers and XML sent to clients; a stray CR would let a
        // config value split a header.
        d.error(line, "the value contains a control character");
    }
    value.to_owned()
}
