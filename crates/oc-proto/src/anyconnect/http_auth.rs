//! HTTP authentication with an AnyConnect server (a `401` to a login request), as
//! openconnect answers it: Negotiate with the desktop's Kerberos credentials (ocserv's
//! `gssapi` back end), then Bearer with `--token-mode=oidc`'s token (ocserv's `oidc`),
//! each once per request. When neither works and the server says
//! `X-HTTP-Auth-Support: fallback`, the login starts again without offering HTTP
//! authentication, so the server asks with its forms instead.

use crate::client_proxy::auth::{negotiate_header, parse_challenges, NegotiatorHandle};
use crate::http::Response;

use super::auth::AuthError;

/// What the client can answer, and what it already tried for the current request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerHttpAuth {
    bearer_token: Option<String>,
    negotiator: Option<NegotiatorHandle>,
    bearer_sent: bool,
    negotiate_sent: bool,
    /// The server fell back to its forms: HTTP authentication is no longer offered.
    fallen_back: bool,
}

/// The answer to a `401`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpAuthAnswer {
    /// Send the request again with this `Authorization` value.
    Retry(String),
    /// Start the login again, without `X-Support-HTTP-Auth`.
    Fallback,
}

impl ServerHttpAuth {
    pub fn new(bearer_token: Option<String>, negotiator: Option<NegotiatorHandle>) -> Self {
        Self {
            bearer_token,
            negotiator,
            ..Self::default()
        }
    }

    /// Whether requests offer HTTP authentication (`X-Support-HTTP-Auth: true`): with a
    /// method to answer, until the server falls back to its forms.
    pub fn offered(&self) -> bool {
        (self.bearer_token.is_some() || self.negotiator.is_some()) && !self.fallen_back
    }

    /// A new request: every method may be tried again.
    pub fn new_request(&mut self) {
        self.bearer_sent = false;
        self.negotiate_sent = false;
    }

    /// The answer to a `401` from `host`.
    pub fn answer(&mut self, resp: &Response, host: &str) -> Result<HttpAuthAnswer, AuthError> {
        let challenges: Vec<_> = resp
            .head
            .headers_named("WWW-Authenticate")
            .flat_map(parse_challenges)
            .collect();
        let wants = |scheme: &str| {
            challenges
                .iter()
                .any(|c| c.scheme.eq_ignore_ascii_case(scheme))
        };
        let mut failure = None;
        if wants("Negotiate") && !self.negotiate_sent {
            if let Some(negotiator) = &self.negotiator {
                match negotiate_header(negotiator, host) {
                    Ok(value) => {
                        self.negotiate_sent = true;
                        return Ok(HttpAuthAnswer::Retry(value));
                    }
                    Err(why) => failure = Some(AuthError::Negotiate(why)),
                }
            }
        }
        if wants("Bearer") && !self.bearer_sent {
            if let Some(token) = &self.bearer_token {
                self.bearer_sent = true;
                return Ok(HttpAuthAnswer::Retry(format!("Bearer {token}")));
            }
        }
        let fallback = resp
            .head
            .header("X-HTTP-Auth-Support")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("fallback"));
        if fallback && self.offered() {
            self.fallen_back = true;
            return Ok(HttpAuthAnswer::Fallback);
        }
        Err(self.why_not(&challenges, failure, resp))
    }

    fn why_not(
        &self,
        challenges: &[crate::client_proxy::auth::Challenge],
        failure: Option<AuthError>,
        resp: &Response,
    ) -> AuthError {
        let wants = |scheme: &str| {
            challenges
                .iter()
                .any(|c| c.scheme.eq_ignore_ascii_case(scheme))
        };
        if self.negotiate_sent {
            return AuthError::NegotiateRejected;
        }
        if let Some(failure) = failure {
            return failure;
        }
        if self.bearer_sent {
            return AuthError::BearerRejected;
        }
        if wants("Bearer") {
            return AuthError::BearerNeeded;
        }
        if challenges.is_empty() {
            return AuthError::Rejected {
                status: resp.head.status,
                reason: resp.head.reason.clone(),
            };
        }
        let schemes: Vec<&str> = challenges.iter().map(|c| c.scheme.as_str()).collect();
        AuthError::HttpAuthMethods(schemes.join(", "))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::client_proxy::auth::Negotiator;
    use crate::http::{Header, ResponseHead};

    struct Kerberos(bool);

    impl Negotiator for Kerberos {
        fn token(&self, host: &str) -> Result<Vec<u8>, String> {
            match self.0 {
                true => Ok(host.as_bytes().to_vec()),
                false => Err("no credentials cache".into()),
            }
        }
    }

    fn unauthorized(headers: &[(&str, &str)]) -> Response {
        Response {
            head: ResponseHead {
                status: 401,
                reason: "Unauthorized".into(),
                headers: headers
                    .iter()
                    .map(|(n, v)| Header {
                        name: n.to_string(),
                        value: v.to_string(),
                    })
                    .collect(),
            },
            body: Vec::new(),
        }
    }

    fn kerberos(ok: bool) -> Option<NegotiatorHandle> {
        Some(NegotiatorHandle(Arc::new(Kerberos(ok))))
    }

    #[test]
    fn negotiate_then_bearer_then_fallback() {
        let negotiate = unauthorized(&[
            ("WWW-Authenticate", "Negotiate"),
            ("WWW-Authenticate", "Bearer"),
            ("X-HTTP-Auth-Support", "fallback"),
        ]);
        let mut auth = ServerHttpAuth::new(Some("jwt".into()), kerberos(true));
        assert!(auth.offered());
        // base64("vpn.example")
        assert_eq!(
            auth.answer(&negotiate, "vpn.example"),
            Ok(HttpAuthAnswer::Retry("Negotiate dnBuLmV4YW1wbGU=".into()))
        );
        assert_eq!(
            auth.answer(&negotiate, "vpn.example"),
            Ok(HttpAuthAnswer::Retry("Bearer jwt".into()))
        );
        assert_eq!(
            auth.answer(&negotiate, "vpn.example"),
            Ok(HttpAuthAnswer::Fallback)
        );
        assert!(!auth.offered());
        // Fallen back: the forms' 401s are errors now.
        assert_eq!(
            auth.answer(&negotiate, "vpn.example"),
            Err(AuthError::NegotiateRejected)
        );
        auth.new_request();
        assert_eq!(
            auth.answer(&negotiate, "vpn.example"),
            Ok(HttpAuthAnswer::Retry("Negotiate dnBuLmV4YW1wbGU=".into()))
        );
    }

    #[test]
    fn errors_name_the_missing_piece() {
        let negotiate = unauthorized(&[("WWW-Authenticate", "Negotiate")]);
        let mut auth = ServerHttpAuth::new(None, kerberos(false));
        assert_eq!(
            auth.answer(&negotiate, "h"),
            Err(AuthError::Negotiate("no credentials cache".into()))
        );
        let mut auth = ServerHttpAuth::new(None, kerberos(true));
        assert!(auth.answer(&negotiate, "h").is_ok());
        assert_eq!(
            auth.answer(&negotiate, "h"),
            Err(AuthError::NegotiateRejected)
        );
        let mut none = ServerHttpAuth::new(None, None);
        assert!(!none.offered());
        assert_eq!(
            none.answer(&negotiate, "h"),
            Err(AuthError::HttpAuthMethods("Negotiate".into()))
        );
        assert!(matches!(
            none.answer(&unauthorized(&[]), "h"),
            Err(AuthError::Rejected { status: 401, .. })
        ));
    }
}
