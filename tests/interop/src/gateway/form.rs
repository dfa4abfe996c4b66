//! Forms: `application/x-www-form-urlencoded` bodies and query strings, field lookup, forms
//! described for the log, and HTML escaping for the pages.

use super::MAX_FORM_FIELDS;

/// `application/x-www-form-urlencoded` fields (a body or a query string), decoded, at most
/// [`MAX_FORM_FIELDS`].
pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .take(MAX_FORM_FIELDS)
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(name), form_decode(value))
        })
        .collect()
}

/// The fields of a request target's query string.
pub fn parse_query(target: &str) -> Vec<(String, String)> {
    target
        .split_once('?')
        .map(|(_, query)| parse_form(query.as_bytes()))
        .unwrap_or_default()
}

/// `+` is a space and `%XX` a byte; a malformed escape is kept as it came.
pub fn form_decode(text: &str) -> String {
    oc_proto::url::percent_decode(text, true)
}

pub fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The form's field names and values for the log, those named in `secret` masked, all
/// escaped (a client's newline must not forge a log line).
pub fn describe_form(form: &[(String, String)], secret: &[&str]) -> String {
    form.iter()
        .map(|(name, value)| match secret.contains(&name.as_str()) {
            true => format!("{}=<{} bytes>", name.escape_debug(), value.len()),
            false => format!("{}={}", name.escape_debug(), value.escape_debug()),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// `text` safe inside HTML text and attribute values.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
