//! ocserv's camouflage: a server that looks like an ordinary password-protected web site
//! (or an empty one) to anyone who does not know its secret. A client passes by asking for
//! `https://server/?SECRET` once on its connection, or by carrying a session cookie.

use crate::http::server::{Method, ServerResponse};

/// `camouflage_secret` and `camouflage_realm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Camouflage {
    pub secret: String,
    /// With a realm, strangers get a Basic-auth prompt (401); without, 404.
    pub realm: Option<String>,
}

/// What one request on a not-yet-admitted connection gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Served as usual; the connection is admitted from now on.
    Admit,
    /// Not a login request: served as usual, the connection stays unadmitted.
    Undecided,
    /// Answered with this and closed.
    Refuse(ServerResponse),
}

const HTML_401: &str = "<html><body><h1>401 Unauthorized</h1></body></html>\r\n";
const HTML_404: &str = "<html><body><h1>404 Not Found</h1></body></html>\r\n";

impl Camouflage {
    /// The gate for a request with this method and target. `has_cookie` says the request
    /// carries a well-formed `webvpn` session cookie (checked properly where it is used).
    /// As ocserv, only GET and POST are gated: a CONNECT still needs a valid cookie, and is
    /// refused with [`Camouflage::cookie_refusal`] instead.
    pub fn gate(&self, method: &Method, target: &str, has_cookie: bool) -> Gate {
        if !matches!(method, Method::Get | Method::Post) {
            return Gate::Undecided;
        }
        let knows_secret = target
            .split_once('?')
            .is_some_and(|(_, query)| query == self.secret);
        if knows_secret || has_cookie {
            Gate::Admit
        } else {
            Gate::Refuse(self.refusal())
        }
    }

    /// What a stranger is told.
    fn refusal(&self) -> ServerResponse {
        let response = match &self.realm {
            Some(realm) => ServerResponse::new(401, "Unauthorized")
                .header("WWW-Authenticate", format!("Basic realm=\"{realm}\""))
                .body(HTML_401),
            None => ServerResponse::new(404, "Not Found").body(HTML_404),
        };
        response.header("Connection", "close")
    }

    /// A CONNECT whose cookie is refused on a connection that never showed the secret:
    /// "405 Method Not Allowed", as a web server would answer, rather than the VPN's
    /// "401 Cookie is not acceptable".
    pub fn cookie_refusal() -> ServerResponse {
        ServerResponse::new(405, "Method Not Allowed").header("Connection", "close")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camouflage(realm: Option<&str>) -> Camouflage {
        Camouflage {
            secret: "mysecretkey".into(),
            realm: realm.map(str::to_owned),
        }
    }

    fn emitted(response: &ServerResponse) -> String {
        let mut out = Vec::new();
        response.emit(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_exact_secret_after_the_question_mark_admits() {
        let c = camouflage(Some("Please enter password"));
        for target in ["/?mysecretkey", "/auth?mysecretkey", "/svc?mysecretkey"] {
            assert_eq!(c.gate(&Method::Get, target, false), Gate::Admit, "{target}");
            assert_eq!(
                c.gate(&Method::Post, target, false),
                Gate::Admit,
                "{target}"
            );
        }
        for target in [
            "/",
            "/mysecretkey",
            "/?mysecretkey2",
            "/?mysecretke",
            "/?MYSECRETKEY",
            "/?x=mysecretkey",
            "/?mysecretkey&x",
            "/?",
        ] {
            assert!(
                matches!(c.gate(&Method::Get, target, false), Gate::Refuse(_)),
                "{target}"
            );
        }
    }

    #[test]
    fn a_session_cookie_admits_and_other_methods_are_not_gated() {
        let c = camouflage(None);
        assert_eq!(c.gate(&Method::Get, "/svc", true), Gate::Admit);
        assert_eq!(
            c.gate(&Method::Connect, "/CSCOSSLC/tunnel", false),
            Gate::Undecided
        );
        assert_eq!(
            c.gate(&Method::Other("HEAD".into()), "/", false),
            Gate::Undecided
        );
    }

    #[test]
    fn strangers_get_a_basic_auth_prompt_with_a_realm_else_not_found() {
        let Gate::Refuse(r) = camouflage(Some("Restricted")).gate(&Method::Post, "/", false) else {
            panic!("admitted")
        };
        let text = emitted(&r);
        assert!(text.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{text}");
        assert!(
            text.contains("WWW-Authenticate: Basic realm=\"Restricted\"\r\n"),
            "{text}"
        );
        assert!(text.contains("Connection: close\r\n"), "{text}");
        assert!(text.ends_with(HTML_401), "{text}");

        let Gate::Refuse(r) = camouflage(None).gate(&Method::Get, "/", false) else {
            panic!("admitted")
        };
        let text = emitted(&r);
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        assert!(!text.contains("WWW-Authenticate"), "{text}");
        assert!(text.ends_with(HTML_404), "{text}");
        assert!(emitted(&Camouflage::cookie_refusal()).starts_with("HTTP/1.1 405 "));
    }
}
