//! The gateway's side: reading what a client posts (form-encoded bodies, the tunnel
//! request's query) and the answers that are not one of the shared documents
//! ([`Prelogin`](super::Prelogin), [`PortalConfig`](super::PortalConfig),
//! [`LoginArgs`](super::LoginArgs), [`GatewayConfig`](super::GatewayConfig) write
//! themselves): challenges, errors, the HIP check, the logout.
//!
//! Nothing here trusts the client: forms are bounded, values decoded leniently, and what a
//! request lacks is listed rather than assumed.

use super::reply::{js_quote, Challenge};
use super::xml::Element;
use super::{CLIENT_VER, TUNNEL_PATH};
use crate::esp::{EspEncryption, EspIntegrity, EspSuite};
use crate::url::percent_decode;

/// Fields read from one form at most (a GlobalProtect post has about twenty).
pub const MAX_FIELDS: usize = 48;
/// The longest value kept; a longer one is cut (nothing real comes close).
pub const MAX_VALUE: usize = 4096;

/// A form-encoded body or query string, decoded (bounded).
pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .take(MAX_FIELDS)
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let mut value = percent_decode(value, true);
            if value.len() > MAX_VALUE {
                let mut end = MAX_VALUE;
                while !value.is_char_boundary(end) {
                    end -= 1;
                }
                value.truncate(end);
            }
            (percent_decode(name, true), value)
        })
        .collect()
}

/// The first value of `name` in a decoded form.
pub fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The fixed fields every login post carries, with the values upstream sends (a value of
/// `None`: any, but present).
const LOGIN_FIXED: &[(&str, Option<&str>)] = &[
    ("jnlpReady", Some("jnlpReady")),
    ("ok", Some("Login")),
    ("direct", Some("yes")),
    ("clientVer", Some(CLIENT_VER)),
    ("prot", Some("https:")),
    ("clientos", None),
    ("os-version", None),
    ("server", None),
    ("computer", None),
];

/// A login post (the portal's getconfig or the gateway's login) as the gateway reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginRequest {
    pub user: Option<String>,
    pub passwd: Option<String>,
    pub input_str: Option<String>,
    pub clientos: Option<String>,
    pub os_version: Option<String>,
    pub computer: Option<String>,
    pub server: Option<String>,
    pub ipv6_support: bool,
    pub portal_userauthcookie: Option<String>,
    pub portal_prelogonuserauthcookie: Option<String>,
    /// An external (SAML) login's result, posted in place of the password.
    pub prelogin_cookie: Option<String>,
    pub preferred_ip: Option<String>,
    /// Fixed fields missing or not as upstream sends them (the fake server refuses such a
    /// post).
    pub irregular: Vec<String>,
}

impl LoginRequest {
    pub fn from_form(form: &[(String, String)]) -> Self {
        let get = |name: &str| field(form, name).map(str::to_string);
        let nonempty = |name: &str| get(name).filter(|v| !v.is_empty());
        let irregular = LOGIN_FIXED
            .iter()
            .filter(|(name, want)| match (field(form, name), want) {
                (Some(v), Some(w)) => v != *w,
                (Some(v), None) => v.is_empty(),
                (None, _) => true,
            })
            .map(|(name, _)| (*name).to_string())
            .collect();
        Self {
            user: nonempty("user"),
            passwd: get("passwd"),
            input_str: nonempty("inputStr"),
            clientos: get("clientos"),
            os_version: get("os-version"),
            computer: get("computer"),
            server: get("server"),
            ipv6_support: field(form, "ipv6-support") == Some("yes"),
            portal_userauthcookie: nonempty("portal-userauthcookie"),
            portal_prelogonuserauthcookie: nonempty("portal-prelogonuserauthcookie"),
            prelogin_cookie: nonempty("prelogin-cookie"),
            preferred_ip: nonempty("preferred-ip"),
            irregular,
        }
    }
}

/// The gateway's getconfig post (and the HIP check's and logout's, which carry the same
/// cookie fields).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionRequest {
    pub authcookie: Option<String>,
    pub user: Option<String>,
    pub portal: Option<String>,
    pub domain: Option<String>,
    pub computer: Option<String>,
    pub preferred_ip: Option<String>,
    pub app_version: Option<String>,
    pub clientos: Option<String>,
    pub os_version: Option<String>,
    /// `hmac-algo` and `enc-algo` offers, as listed.
    pub hmac_offer: Vec<String>,
    pub enc_offer: Vec<String>,
    pub ipv6_support: bool,
    /// The HIP check's `md5` and `client-ip`.
    pub md5: Option<String>,
    pub client_ip: Option<String>,
}

impl SessionRequest {
    pub fn from_form(form: &[(String, String)]) -> Self {
        let get = |name: &str| {
            field(form, name)
                .map(str::to_string)
                .filter(|v| !v.is_empty())
        };
        let list = |name: &str| {
            field(form, name)
                .map(|v| {
                    v.split(',')
                        .map(|a| a.trim().to_string())
                        .take(16)
                        .collect()
                })
                .unwrap_or_default()
        };
        Self {
            authcookie: get("authcookie"),
            user: get("user"),
            portal: get("portal"),
            domain: get("domain"),
            computer: get("computer"),
            preferred_ip: get("preferred-ip"),
            app_version: get("app-version"),
            clientos: get("clientos"),
            os_version: get("os-version"),
            hmac_offer: list("hmac-algo"),
            enc_offer: list("enc-algo"),
            ipv6_support: field(form, "ipv6-support") == Some("yes"),
            md5: get("md5"),
            client_ip: get("client-ip"),
        }
    }

    /// Whether the client offered `suite` (a client that offers nothing, as old ones do,
    /// is taken to accept anything).
    pub fn offers(&self, suite: EspSuite) -> bool {
        let enc = match suite.encryption {
            EspEncryption::Aes128Cbc => ["aes-128-cbc", "aes128"].as_slice(),
            EspEncryption::Aes256Cbc => ["aes-256-cbc"].as_slice(),
        };
        let mac = match suite.integrity {
            EspIntegrity::HmacSha1_96 => "sha1",
            EspIntegrity::HmacMd5_96 => "md5",
            EspIntegrity::HmacSha256_128 => "sha256",
        };
        let enc_ok =
            self.enc_offer.is_empty() || self.enc_offer.iter().any(|e| enc.contains(&e.as_str()));
        let mac_ok = self.hmac_offer.is_empty() || self.hmac_offer.iter().any(|m| m == mac);
        enc_ok && mac_ok
    }
}

/// The TLS tunnel's request: `GET <path>?...user=..&authcookie=..` (any order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelRequest {
    pub path: String,
    pub user: Option<String>,
    pub authcookie: Option<String>,
}

impl TunnelRequest {
    /// Reads a request target; `None` unless its path is `tunnel_path` (the
    /// configuration's `ssl-tunnel-url`, by default [`TUNNEL_PATH`]).
    pub fn parse(target: &str, tunnel_path: Option<&str>) -> Option<Self> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if path != tunnel_path.unwrap_or(TUNNEL_PATH) {
            return None;
        }
        let form = parse_form(query.as_bytes());
        let get = |name: &str| {
            field(&form, name)
                .map(str::to_string)
                .filter(|v| !v.is_empty())
        };
        Some(Self {
            path: path.to_string(),
            user: get("user"),
            authcookie: get("authcookie"),
        })
    }
}

/// The challenge as XML.
pub fn challenge_xml(challenge: &Challenge) -> String {
    Element::new("challenge")
        .with_text("respmsg", &challenge.prompt)
        .with_text("inputstr", &challenge.input_str)
        .to_xml()
}

/// The challenge as JavaScript, one statement a line (as 9.01 requires: it reads each up
/// to the line's `";`).
pub fn challenge_js(challenge: &Challenge) -> String {
    js_answer("Challenge", &challenge.prompt, &challenge.input_str)
}

/// The JavaScript challenge inside an HTML page's body, escaped (as some gateways send it;
/// upstream reads it since 9.10, 9.01 does not).
pub fn challenge_html(challenge: &Challenge) -> String {
    format!(
        "<html><head></head><body>{}</body></html>",
        super::xml::escape(&challenge_js(challenge))
    )
}

/// An error as JavaScript (`respStatus = "Error"`), with an empty `inputStr` line (9.01
/// cannot read the message without it).
pub fn error_js(message: &str) -> String {
    js_answer("Error", message, "")
}

fn js_answer(status: &str, message: &str, input_str: &str) -> String {
    let input: String = input_str
        .chars()
        .filter(|c| *c != '"' && *c != '\n')
        .collect();
    format!(
        "var respStatus = \"{status}\";\nvar respMsg = {};\nthisForm.inputStr.value = \"{input}\";\n",
        js_quote(message)
    )
}

/// `<response status="error"><error>message</error></response>`.
pub fn error_xml(message: &str) -> String {
    Element::new("response")
        .with_attr("status", "error")
        .with_text("error", message)
        .to_xml()
}

/// A prelogin that fails: status `Error` and the message.
pub fn prelogin_error(message: &str) -> String {
    Element::new("prelogin-response")
        .with_text("status", "Error")
        .with_text("msg", message)
        .to_xml()
}

/// `<response status="success"/>`: a logout done, a HIP report taken.
pub fn success_xml() -> String {
    Element::new("response")
        .with_attr("status", "success")
        .to_xml()
}

/// The HIP check's answer.
pub fn hip_check_xml(needed: bool) -> String {
    Element::new("response")
        .with_text("hip-report-needed", if needed { "yes" } else { "no" })
        .to_xml()
}

#[cfg(test)]
mod tests {
    use super::super::client::{login_request, ClientInfo, Interface, LoginPost};
    use super::super::reply::{read_body, Reply};
    use super::*;
    use crate::esp::EspSuite;

    #[test]
    fn the_clients_login_post_reads_back() {
        let post = LoginPost {
            server: "gw.example".into(),
            input_str: Some("ab".into()),
            answers: vec![
                ("user".into(), "al ice".into()),
                ("passwd".into(), "p&=%".into()),
            ],
            ..LoginPost::default()
        };
        let req = login_request(
            "gw.example",
            Interface::Gateway,
            &ClientInfo::new("win", "pc"),
            &post,
        );
        let login = LoginRequest::from_form(&parse_form(&req.body));
        assert_eq!(login.user.as_deref(), Some("al ice"));
        assert_eq!(login.passwd.as_deref(), Some("p&=%"));
        assert_eq!(login.input_str.as_deref(), Some("ab"));
        assert_eq!(login.clientos.as_deref(), Some("Windows"));
        assert!(login.ipv6_support);
        assert!(login.irregular.is_empty(), "{:?}", login.irregular);
        let bad = LoginRequest::from_form(&parse_form(b"user=a&clientVer=4000"));
        assert!(bad.irregular.contains(&"clientVer".to_string()));
        assert!(bad.irregular.contains(&"computer".to_string()));
    }

    #[test]
    fn offers_and_tunnel_requests() {
        let form = parse_form(b"authcookie=x&hmac-algo=sha1%2Cmd5&enc-algo=aes-128-cbc");
        let session = SessionRequest::from_form(&form);
        let sha1_128 = EspSuite::ALL[1];
        assert!(session.offers(sha1_128));
        assert!(!session.offers(EspSuite::ALL[5]));
        assert!(SessionRequest::default().offers(EspSuite::ALL[5]));
        let t = TunnelRequest::parse(
            "/ssl-tunnel-connect.sslvpn?authcookie=ab&user=al%20ice",
            None,
        )
        .unwrap();
        assert_eq!(t.user.as_deref(), Some("al ice"));
        assert_eq!(t.authcookie.as_deref(), Some("ab"));
        assert!(TunnelRequest::parse("/other?user=a", None).is_none());
        assert!(TunnelRequest::parse("/t", Some("/t")).is_some());
    }

    #[test]
    fn answers_read_back_as_the_client_reads_them() {
        let challenge = Challenge {
            prompt: "Enter the \"code\" & go".into(),
            input_str: "f00d".into(),
        };
        for text in [
            challenge_xml(&challenge),
            challenge_js(&challenge),
            challenge_html(&challenge),
        ] {
            assert_eq!(
                read_body(&text),
                Ok(Reply::Challenge(challenge.clone())),
                "{text}"
            );
        }
        assert!(read_body(&error_js("Wrong code")).is_err());
        assert!(read_body(&error_xml("GlobalProtect gateway does not exist")).is_err());
        assert!(read_body(&prelogin_error("no")).is_err());
        assert!(matches!(read_body(&success_xml()), Ok(Reply::Xml(_))));
        let long = "x".repeat(MAX_VALUE * 2);
        let form = parse_form(format!("a={long}&{}", "b=1&".repeat(100)).as_bytes());
        assert_eq!(form.len(), MAX_FIELDS);
        assert_eq!(form[0].1.len(), MAX_VALUE);
    }
}
