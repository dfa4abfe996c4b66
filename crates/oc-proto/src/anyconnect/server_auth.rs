//! The server side of the aggregate-auth exchange: reading what a client posted and writing
//! the `auth-request` forms and the final `complete` document.
//!
//! Reading is deliberately lenient, as ocserv's is: clients differ in element order and
//! wrappers, and all the server needs is the user name, the secret and the group. The
//! secret is the first element whose name starts with `password` or ends in `_password`,
//! so `secondary_password` (second factor) is found too. Legacy clients post
//! `application/x-www-form-urlencoded` bodies, handled the same way.

use crate::http::server::ServerResponse;
use quick_xml::events::Event;
use quick_xml::Reader;

use crate::url::percent_decode;

/// Longest value kept from a client field; longer input is cut here, and the caller applies
/// its own, tighter limits (ocserv allows 63 bytes for user and group names).
const MAX_VALUE_CHARS: usize = 1024;

/// What a client's POST carried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientAuth {
    /// `<config-auth type="init">`: the first request, before any form was shown.
    pub is_init: bool,
    pub username: Option<String>,
    pub password: Option<String>,
    /// `<group-select>` or `group_list=`.
    pub group: Option<String>,
    /// `<capabilities><auth-method>single-sign-on-v2</auth-method>`: a browser login can
    /// be offered.
    pub offers_sso: bool,
    /// `<auth-method>single-sign-on-external-browser</auth-method>`.
    pub offers_external_browser: bool,
    /// `<sso-token>`: the one-time token a browser login handed out.
    pub sso_token: Option<String>,
}

/// Parses an auth POST body, XML or form-encoded. Unparseable input yields an empty result,
/// which the server answers with its login form.
pub fn parse_client_auth(body: &[u8]) -> ClientAuth {
    let text = String::from_utf8_lossy(body);
    if text.trim_start().starts_with('<') {
        parse_xml(&text)
    } else {
        parse_form(&text)
    }
}

fn is_password_name(name: &str) -> bool {
    name.starts_with("password") || name.ends_with("_password")
}

fn parse_xml(text: &str) -> ClientAuth {
    let mut out = ClientAuth::default();
    let mut reader = Reader::from_str(text);
    let mut current: Option<String> = None;
    let mut value = String::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(start)) => {
                let name = start.name().0.to_string();
                if name == "config-auth" {
                    out.is_init = start
                        .attributes()
                        .flatten()
                        .any(|a| a.key.0 == "type" && a.value.as_ref() == "init");
                }
                current = Some(name);
                value.clear();
            }
            Ok(Event::Empty(start)) if start.name().0 == "config-auth" => {}
            Ok(Event::Text(t)) => {
                if current.is_some() {
                    let decoded = t.xml10_content();
                    push_bounded(&mut value, &decoded);
                }
            }
            Ok(Event::GeneralRef(r)) => {
                if current.is_some() {
                    if let Ok(Some(c)) = r.resolve_char_ref() {
                        push_bounded(&mut value, c.encode_utf8(&mut [0; 4]));
                    } else if let Some(s) =
                        quick_xml::escape::resolve_predefined_entity(&r.xml10_content())
                    {
                        push_bounded(&mut value, s);
                    }
                }
            }
            Ok(Event::End(_)) => {
                if let Some(name) = current.take() {
                    let v = std::mem::take(&mut value);
                    match name.as_str() {
                        "username" if out.username.is_none() => out.username = Some(v),
                        "group-select" if out.group.is_none() => out.group = Some(v),
                        "sso-token" if out.sso_token.is_none() => out.sso_token = Some(v),
                        "auth-method" => match v.trim() {
                            "single-sign-on-v2" => out.offers_sso = true,
                            "single-sign-on-external-browser" => {
                                out.offers_external_browser = true;
                            }
                            _ => {}
                        },
                        n if is_password_name(n) && out.password.is_none() => {
                            out.password = Some(v);
                        }
                        _ => {}
                    }
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    out
}

fn push_bounded(out: &mut String, text: &str) {
    for c in text.chars() {
        if out.chars().count() >= MAX_VALUE_CHARS {
            return;
        }
        out.push(c);
    }
}

fn parse_form(text: &str) -> ClientAuth {
    let mut out = ClientAuth::default();
    for pair in text.split('&') {
        let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(name, true);
        let mut v = String::new();
        push_bounded(&mut v, &percent_decode(raw, true));
        match name.as_str() {
            "username" if out.username.is_none() => out.username = Some(v),
            "group_list" if out.group.is_none() => out.group = Some(v),
            n if is_password_name(n) && out.password.is_none() => out.password = Some(v),
            _ => {}
        }
    }
    out
}

/// Which inputs a login form asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormInputs {
    /// The first form: user name and password.
    UsernamePassword,
    /// A further secret (retry, second factor): one password input.
    Password { name: String, label: String },
    /// A further answer shown as it is typed (a PAM prompt with echo on).
    Text { name: String, label: String },
    /// Only a group choice (certificate logins with several eligible groups).
    None,
    /// A browser login (`single-sign-on-v2`); the token comes back in `sso-token`.
    Sso(SsoForm),
}

/// The browser login's addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoForm {
    /// Where the browser starts (`sso-v2-login`).
    pub login_url: String,
    /// The page that ends an embedded-browser login (`sso-v2-login-final`).
    pub final_url: String,
    /// The cookie holding the token at the final page.
    pub token_cookie: String,
    /// The token comes back through the client's localhost callback (external browser).
    pub external: bool,
}

/// A `config-auth type="auth-request"` document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginForm {
    pub banner: Option<String>,
    pub message: String,
    pub inputs: FormInputs,
    /// `(value, label)` pairs for the `group_list` select; empty = no select.
    pub groups: Vec<(String, String)>,
    /// Where the client posts its answer.
    pub action: String,
}

fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(text)
}

impl LoginForm {
    pub fn to_xml(&self) -> String {
        let mut out = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" type=\"auth-request\">\n<version who=\"sg\">0.1(1)</version>\n<auth id=\"main\">\n",
        );
        if let Some(banner) = &self.banner {
            out.push_str(&format!("<banner>{}</banner>\n", escape(banner)));
        }
        out.push_str(&format!("<message>{}</message>\n", escape(&self.message)));
        if let FormInputs::Sso(sso) = &self.inputs {
            out.push_str(&format!(
                "<sso-v2-login>{}</sso-v2-login>\n<sso-v2-login-final>{}</sso-v2-login-final>\n\
                 <sso-v2-token-cookie-name>{}</sso-v2-token-cookie-name>\n",
                escape(&sso.login_url),
                escape(&sso.final_url),
                escape(&sso.token_cookie)
            ));
            if sso.external {
                out.push_str("<sso-v2-browser-mode>external</sso-v2-browser-mode>\n");
            }
        }
        out.push_str(&format!(
            "<form method=\"post\" action=\"{}\">\n",
            escape(&self.action)
        ));
        match &self.inputs {
            FormInputs::UsernamePassword => out.push_str(
                "<input type=\"text\" name=\"username\" label=\"Username:\" />\n<input type=\"password\" name=\"password\" label=\"Password:\" />\n",
            ),
            FormInputs::Password { name, label } | FormInputs::Text { name, label } => {
                let kind = match &self.inputs {
                    FormInputs::Text { .. } => "text",
                    _ => "password",
                };
                out.push_str(&format!(
                    "<input type=\"{kind}\" name=\"{}\" label=\"{}\" />\n",
                    escape(name),
                    escape(label)
                ));
            }
            FormInputs::Sso(_) => out.push_str("<input type=\"sso\" name=\"sso-token\" />\n"),
            FormInputs::None => {}
        }
        if !self.groups.is_empty() {
            out.push_str("<select name=\"group_list\" label=\"Group:\">\n");
            for (value, label) in &self.groups {
                out.push_str(&format!(
                    "<option value=\"{}\">{}</option>\n",
                    escape(value),
                    escape(label)
                ));
            }
            out.push_str("</select>\n");
        }
        out.push_str("</form></auth>\n</config-auth>\n");
        out
    }
}

/// The `complete` document sent with the session cookie.
pub fn complete_xml(banner: Option<&str>) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" type=\"complete\">\n<version who=\"sg\">0.1(1)</version>\n<auth id=\"success\">\n<title>SSL VPN Service</title>",
    );
    if let Some(banner) = banner {
        out.push_str(&format!("<banner>{}</banner>", escape(banner)));
    }
    out.push_str("</auth>\n</config-auth>\n");
    out
}

/// Cisco's SVC login for IP phones (`/svc`): a GET, or a POST without both `username` and
/// `password`, is told to post its credentials (the `webvpnlogin` cookie) and loses any
/// old session cookie.
pub fn svc_login_prompt() -> ServerResponse {
    ServerResponse::new(200, "OK")
        .header(
            "Set-Cookie",
            "webvpn=; expires=Thu, 01 Jan 1970 22:00:00 GMT; path=/; secure",
        )
        .header("Set-Cookie", "webvpnlogin=1; secure")
        .header("X-Transcend-Version", "1")
}

/// The answer to a successful `/svc` POST: the session cookie in a header, no body.
pub fn svc_logged_in(cookie: &str) -> ServerResponse {
    ServerResponse::new(200, "OK")
        .header("Connection", "Keep-Alive")
        .header("Set-Cookie", format!("webvpn={cookie}; secure"))
        .header("X-Transcend-Version", "1")
}

/// The answer to a refused `/svc` POST; the connection is closed after it.
pub fn svc_refused() -> ServerResponse {
    ServerResponse::new(401, "Authentication failed").header("Connection", "close")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::anyconnect::auth::{parse_auth_document, FieldKind};
    use proptest::prelude::*;

    #[test]
    fn openconnect_init_and_reply() {
        let init = br#"<?xml version="1.0" encoding="UTF-8"?>
<config-auth client="vpn" type="init" aggregate-auth-version="2"><version who="vpn">v9.01</version><device-id>linux-64</device-id><group-select>staff</group-select><group-access>https://vpn.test/</group-access></config-auth>"#;
        let got = parse_client_auth(init);
        assert!(got.is_init);
        assert_eq!(got.group.as_deref(), Some("staff"));
        assert_eq!(got.username, None);

        let reply = br#"<?xml version="1.0" encoding="UTF-8"?>
<config-auth client="vpn" type="auth-reply"><version who="vpn">v9.01</version><auth><username>al&amp;ice</username><password>p&lt;w&#33;</password></auth><group-select>staff</group-select></config-auth>"#;
        let got = parse_client_auth(reply);
        assert!(!got.is_init);
        assert_eq!(got.username.as_deref(), Some("al&ice"));
        assert_eq!(got.password.as_deref(), Some("p<w!"));
        assert_eq!(got.group.as_deref(), Some("staff"));
    }

    #[test]
    fn secondary_password_and_form_encoding() {
        let xml = b"<config-auth><auth><secondary_password>123456</secondary_password></auth></config-auth>";
        assert_eq!(parse_client_auth(xml).password.as_deref(), Some("123456"));
        let form = b"username=bob%40corp&password=a+b%26c&group_list=ops";
        let got = parse_client_auth(form);
        assert_eq!(got.username.as_deref(), Some("bob@corp"));
        assert_eq!(got.password.as_deref(), Some("a b&c"));
        assert_eq!(got.group.as_deref(), Some("ops"));
    }

    #[test]
    fn our_form_parses_with_the_client_parser() {
        let form = LoginForm {
            banner: Some("Welcome <all>".into()),
            message: "Please enter your username and password.".into(),
            inputs: FormInputs::UsernamePassword,
            groups: vec![("staff".into(), "Staff & friends".into())],
            action: "/auth".into(),
        };
        let doc = parse_auth_document(&form.to_xml()).unwrap();
        assert_eq!(doc.form.id, "main");
        assert_eq!(doc.form.banner.as_deref(), Some("Welcome <all>"));
        assert_eq!(doc.form.fields.len(), 3);
        assert_eq!(doc.form.fields[0].name, "username");
        assert_eq!(doc.form.fields[1].kind, FieldKind::Password);
        let FieldKind::Select(options) = &doc.form.fields[2].kind else {
            panic!("no select");
        };
        assert_eq!(options[0].label, "Staff & friends");
        let done = parse_auth_document(&complete_xml(Some("hi"))).unwrap();
        assert_eq!(done.form.id, "success");
    }

    #[test]
    fn browser_login_capabilities_token_and_form() {
        let init = br#"<config-auth client="vpn" type="init"><capabilities>
            <auth-method>multiple-cert</auth-method><auth-method>single-sign-on-v2</auth-method>
            <auth-method>single-sign-on-external-browser</auth-method></capabilities></config-auth>"#;
        let got = parse_client_auth(init);
        assert!(got.offers_sso && got.offers_external_browser);
        let reply = br#"<config-auth client="vpn" type="auth-reply"><auth>
            <sso-token>abc123</sso-token></auth></config-auth>"#;
        let got = parse_client_auth(reply);
        assert_eq!(got.sso_token.as_deref(), Some("abc123"));
        assert!(!got.offers_sso);
        for external in [false, true] {
            let form = LoginForm {
                banner: None,
                message: "Please complete the authentication process in the browser.".into(),
                inputs: FormInputs::Sso(SsoForm {
                    login_url: "https://idp/authorize?a=1&b=2".into(),
                    final_url: "https://vpn/+CSCOE+/oidc/done".into(),
                    token_cookie: "ferroconnect-sso-token".into(),
                    external,
                }),
                groups: vec![],
                action: "/auth".into(),
            };
            let doc = parse_auth_document(&form.to_xml()).unwrap();
            let sso = doc.sso.unwrap();
            assert_eq!(sso.login_url, "https://idp/authorize?a=1&b=2");
            assert_eq!(
                sso.final_url.as_deref(),
                Some("https://vpn/+CSCOE+/oidc/done")
            );
            assert_eq!(sso.token_cookie.as_deref(), Some("ferroconnect-sso-token"));
            assert_eq!(sso.token_field, "sso-token");
            assert_eq!(sso.external_browser, external);
            assert!(doc.form.fields.is_empty());
        }
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in ".{0,300}") {
            let _ = parse_client_auth(s.as_bytes());
            let _ = parse_client_auth(format!("<config-auth>{s}</config-auth>").as_bytes());
        }
    }
}
