//! What a GlobalProtect answer is, before anyone reads its contents (upstream's
//! `gpst_xml_or_error`): an XML document for the caller, a 2FA challenge (as XML, as
//! JavaScript, or as JavaScript inside an HTML page), or an error (an HTTP status,
//! `<response status="error">`, a prelogin status other than `Success`, JavaScript's
//! `respStatus = "Error"`), classified as upstream acts on it.

use super::xml::{self, Element};
use super::GpError;

/// An answer that is not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// An XML document (the caller checks its root).
    Xml(Element),
    /// A challenge: ask for the code and post it back with `input_str`.
    Challenge(Challenge),
}

/// A challenge-based second factor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Challenge {
    /// What to show the user (`respmsg` / `respMsg`).
    pub prompt: String,
    /// The token to send back as `inputStr`.
    pub input_str: String,
}

/// What an error answer means for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// "GlobalProtect portal/gateway does not exist": try the other interface.
    NotThere,
    /// The cookie, certificate or session is refused: retrying will not help (upstream's
    /// `-EPERM`, which makes the main loop give up rather than reconnect).
    Refused,
    /// Any other error message.
    Other,
}

/// Classifies the error message `message` as upstream does.
pub fn error_kind(message: &str) -> ErrorKind {
    match message {
        "GlobalProtect gateway does not exist" | "GlobalProtect portal does not exist" => {
            ErrorKind::NotThere
        }
        "Invalid authentication cookie"
        | "Portal name not found"
        | "Valid client certificate is required"
        | "Allow Automatic Restoration of SSL VPN is disabled" => ErrorKind::Refused,
        _ => ErrorKind::Other,
    }
}

/// The body getconfig.esp answers a cookie without `user`, `authcookie` and `portal` with.
pub const BAD_COOKIE_BODY: &str = "errors getting SSL/VPN config";

/// Reads an answer: its HTTP `status` and `body`. HTTP 512 is GlobalProtect's wrong
/// username or password; 401 and 403 are refusals; any other status but 200 an error.
pub fn read_reply(status: u16, body: &[u8]) -> Result<Reply, GpError> {
    let text = String::from_utf8_lossy(body);
    match status {
        200 => {}
        512 => return Err(GpError::BadCredentials),
        401 | 403 => return Err(GpError::HttpRefused(status)),
        _ => {
            return Err(GpError::Http {
                status,
                body: excerpt(&text),
            })
        }
    }
    if text.trim() == BAD_COOKIE_BODY {
        return Err(GpError::Server {
            kind: ErrorKind::Refused,
            message: BAD_COOKIE_BODY.into(),
        });
    }
    read_body(&text)
}

/// [`read_reply`] for a body that came with HTTP 200.
pub fn read_body(text: &str) -> Result<Reply, GpError> {
    if text.trim().is_empty() {
        return Err(GpError::Empty);
    }
    let Some(root) = xml::parse(text) else {
        return read_javascript(text);
    };
    match root.name.as_str() {
        "response" if root.attr("status") == Some("error") => match root.child("error") {
            Some(error) => Err(server_error(error.content())),
            None => Err(GpError::Malformed(excerpt(text))),
        },
        "prelogin-response" => {
            let status = root.child_text("status");
            match status.as_deref().map(str::trim) {
                Some(s) if s != "Success" => Err(server_error(
                    root.child_text("msg").unwrap_or_else(|| s.to_string()),
                )),
                _ => Ok(Reply::Xml(root)),
            }
        }
        "challenge" => Ok(Reply::Challenge(Challenge {
            prompt: root.child_text("respmsg").unwrap_or_default(),
            input_str: root.child_text("inputstr").unwrap_or_default(),
        })),
        // The challenge as JavaScript in an HTML page's body (entities decoded).
        "html" => match root.child("body") {
            Some(body) => read_javascript(&body.content()),
            None => Err(GpError::Malformed(excerpt(text))),
        },
        _ => Ok(Reply::Xml(root)),
    }
}

fn server_error(message: String) -> GpError {
    let message = message.trim().to_string();
    GpError::Server {
        kind: error_kind(&message),
        message,
    }
}

/// At most this much of a body goes into an error message.
const EXCERPT: usize = 200;

pub(super) fn excerpt(text: &str) -> String {
    text.chars().take(EXCERPT).collect()
}

/// The JavaScript answer, as upstream (since 8.20) reads it:
///
/// ```text
/// var respStatus = "Challenge|Error";
/// var respMsg = "<prompt, a JavaScript string>";
/// thisForm.inputStr.value = "<inputStr>";
/// ```
///
/// Statements end in `;` and white space (newlines inside the message are allowed); the
/// message is decoded as a JSON string when it is one, else taken as it stands. An error
/// without the `inputStr` line is still an error (upstream gives up on parsing it).
fn read_javascript(text: &str) -> Result<Reply, GpError> {
    let bad = || GpError::Malformed(excerpt(text));
    let rest = text.trim_start();
    let rest = rest.strip_prefix("var respStatus = \"").ok_or_else(bad)?;
    let (status, rest) = rest.split_once('"').ok_or_else(bad)?;
    let challenge = if status.starts_with("Challeng") {
        true
    } else if status.starts_with("Error") {
        false
    } else {
        return Err(bad());
    };
    let rest = skip_separators(rest);
    let rest = rest.strip_prefix("var respMsg = \"").ok_or_else(bad)?;
    let end = closing_quote(rest).ok_or_else(bad)?;
    let (raw, rest) = rest.split_at(end);
    let prompt = js_string(raw);
    let rest = skip_separators(rest.get(1..).unwrap_or_default());
    let input_str = rest
        .strip_prefix("thisForm.inputStr.value = \"")
        .and_then(|r| r.split_once('"'))
        .filter(|(_, after)| skip_separators(after).is_empty())
        .map(|(value, _)| value.to_string());
    match (challenge, input_str) {
        (true, Some(input_str)) => Ok(Reply::Challenge(Challenge { prompt, input_str })),
        (true, None) => Err(bad()),
        (false, _) => Err(server_error(prompt)),
    }
}

fn skip_separators(s: &str) -> &str {
    s.trim_start_matches(|c: char| c == ';' || c.is_whitespace())
}

/// Where the string starting at `s` (after its opening quote) ends: the first `"` not
/// escaped by a backslash.
fn closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

/// A JavaScript string literal's contents: JSON's escapes decoded (a literal newline is
/// allowed, and `\'` is an apostrophe); if it is not valid JSON even so, as it stands.
fn js_string(raw: &str) -> String {
    let json = format!(
        "\"{}\"",
        raw.replace("\\'", "'")
            .replace('\n', "\\n")
            .replace('\r', "\\r")
    );
    serde_json::from_str::<String>(&json).unwrap_or_else(|_| raw.to_string())
}

/// A JavaScript string literal for `text` (the gateway's side).
pub fn js_quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_first() {
        assert_eq!(
            read_reply(512, b"Invalid username or password"),
            Err(GpError::BadCredentials)
        );
        assert_eq!(read_reply(403, b""), Err(GpError::HttpRefused(403)));
        assert!(matches!(
            read_reply(500, b"oops"),
            Err(GpError::Http { status: 500, .. })
        ));
        assert!(matches!(
            read_reply(200, BAD_COOKIE_BODY.as_bytes()),
            Err(GpError::Server {
                kind: ErrorKind::Refused,
                ..
            })
        ));
        assert_eq!(read_reply(200, b"  \n"), Err(GpError::Empty));
    }

    #[test]
    fn xml_errors_as_upstream_classifies_them() {
        let e = read_body(
            "<response status=\"error\"><error>GlobalProtect portal does not exist</error>\
             </response>",
        );
        assert_eq!(
            e,
            Err(GpError::Server {
                kind: ErrorKind::NotThere,
                message: "GlobalProtect portal does not exist".into()
            })
        );
        let e = read_body(
            "<response status=\"error\"><error>Invalid authentication cookie</error></response>",
        );
        assert!(matches!(
            e,
            Err(GpError::Server {
                kind: ErrorKind::Refused,
                ..
            })
        ));
        let e = read_body(
            "<prelogin-response><status>Error</status><msg>Matching client config not \
             found</msg></prelogin-response>",
        );
        assert_eq!(
            e,
            Err(GpError::Server {
                kind: ErrorKind::Other,
                message: "Matching client config not found".into()
            })
        );
        assert!(matches!(
            read_body("<response status=\"success\"/>"),
            Ok(Reply::Xml(_))
        ));
        assert!(matches!(
            read_body("<response status=\"error\"/>"),
            Err(GpError::Malformed(_))
        ));
    }

    #[test]
    fn challenges_in_every_wrapping_fake_gp_server_sends() {
        let xml = "<challenge><respmsg>XML 2FA challenge from &apos;gateway&apos; & throw in \
                   an illegal unquoted ampersand</respmsg><inputstr>1f2e</inputstr></challenge>";
        assert_eq!(
            read_body(xml),
            Ok(Reply::Challenge(Challenge {
                prompt: "XML 2FA challenge from 'gateway' & throw in an illegal unquoted \
                         ampersand"
                    .into(),
                input_str: "1f2e".into()
            }))
        );
        let js = "var respStatus = \"Challenge\";\n\
                  var respMsg = \"\\n\\\"Javascript\\\" 2FA challenge <- \\'gateway'\n===\";\n\
                  thisForm.inputStr.value = \"abcd\";\n";
        let expected = Challenge {
            prompt: "\n\"Javascript\" 2FA challenge <- 'gateway'\n===".into(),
            input_str: "abcd".into(),
        };
        assert_eq!(read_body(js), Ok(Reply::Challenge(expected.clone())));
        let html = format!(
            "<html><head></head><body>{}</body></html>",
            xml::escape(js).replace("&apos;", "&#x27;")
        );
        assert_eq!(read_body(&html), Ok(Reply::Challenge(expected)));
        // The older, line-based form 9.01 reads (one statement a line).
        let old = "var respStatus = \"Challenge\";\nvar respMsg = \"Enter code\";\n\
                   thisForm.inputStr.value = \"5ab\";\n";
        assert!(matches!(read_body(old), Ok(Reply::Challenge(c)) if c.input_str == "5ab"));
    }

    #[test]
    fn javascript_errors_and_junk() {
        let e = read_body(
            "var respStatus = \"Error\";\nvar respMsg = \"Authentication failed: wrong \
             code\";\nthisForm.inputStr.value = \"\";\n",
        );
        assert_eq!(
            e,
            Err(GpError::Server {
                kind: ErrorKind::Other,
                message: "Authentication failed: wrong code".into()
            })
        );
        let e = read_body("var respStatus = \"Error\";\nvar respMsg = \"no input line\";");
        assert!(matches!(e, Err(GpError::Server { .. })));
        for junk in [
            "var respStatus = \"Maybe\";",
            "var respStatus = \"Challenge\";\nvar respMsg = \"x\";\n",
            "var respStatus = \"Challenge\";\nvar respMsg = \"x\";\nthisForm.inputStr.value = \"a\"; extra",
            "var respStatus = \"Challenge",
            "hello",
            "<html><head/></html>",
        ] {
            assert!(matches!(read_body(junk), Err(GpError::Malformed(_))), "{junk}");
        }
        assert_eq!(js_quote("a\"b\n"), "\"a\\\"b\\n\"");
    }
}
