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

/// The entries of the default (global) section, in file order. Sections are warned about
/// and their entries dropped.
pub(super) fn lex(text: &str, d: &mut Diag) -> Vec<Entry> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut entries = Vec::new();
    // The key an indented line continues (inih's `prev_name`).
    let mut prev_key: Option<String> = None;
    // Inside a section we do not support: entries are dropped.
    let mut ignoring = false;

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
                if !ignoring {
                    let value = clean_value(trimmed, line, d);
                    d.warn(
                        line,
                        format!(
                            "indented line continues the previous key: read as {key} = {value}"
                        ),
                    );
                    entries.push(Entry {
                        line,
                        key: key.clone(),
                        value,
                    });
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
            ignoring = section_ignored(name, line, d);
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
        if ignoring {
            continue;
        }
        let value = if RAW_VALUE_KEYS.contains(&key) {
            raw_value(rest, line, d)
        } else {
            clean_value(rest, line, d)
        };
        entries.push(Entry {
            line,
            key: key.to_owned(),
            value,
        });
    }
    entries
}

/// Reports a section header; returns whether its entries are to be ignored.
fn section_ignored(name: &str, line: usize, d: &mut Diag) -> bool {
    if name.is_empty() {
        // inih treats `[]` as the global section again.
        return false;
    }
    if let Some(vhost) = name.strip_prefix("vhost:") {
        let vhost = vhost.trim();
        if vhost.is_empty() {
            d.error(line, "virtual host section without a name: [vhost:]");
        } else {
            d.warn(
                line,
                format!(
                    "virtual hosts are not supported yet: section [vhost:{vhost}] and its \
                     settings are ignored; clients connecting to {vhost} get the global settings"
                ),
            );
        }
    } else {
        d.warn(
            line,
            format!("unknown section [{name}]: its settings are ignored"),
        );
    }
    true
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
