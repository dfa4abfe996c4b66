//! HTTP authentication with an AnyConnect server (a `401` to a login request), as
//! openconnect answers it: Negotiate with the desktop's Kerberos credentials (ocserv's
//! `gssapi` back end), NTLM with the desktop's credentials (gss-ntlmssp: NEGOTIATE, then
//! AUTHENTICATE for the server's CHALLENGE), then Bearer with `--token-mode=oidc`'s token
//! (ocserv's `oidc`), each once per request. When neither works and the server says
//! `X-HTTP-Auth-Support: fallback`, the login starts again without offering HTTP
//! authentication, so the server asks with its forms instead.

use crate::client_proxy::auth::{
    negotiate_header, parse_challenges, Challenge, NegotiatorHandle, NtlmSso,
};
use crate::http::Response;

use super::auth::AuthError;

/// What the client can answer, and what it already tried for the current request.
#[derive(Debug, Default)]
pub struct ServerHttpAuth {
    bearer_token: Option<String>,
    negotiator: Option<NegotiatorHandle>,
    bearer_sent: bool,
    negotiate_sent: bool,
    /// NTLM's NEGOTIATE went out; AUTHENTICATE answers the server's CHALLENGE.
    ntlm: Option<NtlmSso>,
    ntlm_sent: bool,
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
        self.ntlm = None;
        self.ntlm_sent = false;
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
        if let Some(answer) = self.ntlm(&challenges, host, &mut failure) {
            return Ok(HttpAuthAnswer::Retry(answer));
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

    /// NTLM's next header: NEGOTIATE for a bare `NTLM` challenge, AUTHENTICATE for the
    /// CHALLENGE after ours; `None` when NTLM is not offered, done, or fails (`failure`).
    fn ntlm(
        &mut self,
        challenges: &[Challenge],
        host: &str,
        failure: &mut Option<AuthError>,
    ) -> Option<String> {
        let offered = challenges
            .iter()
            .find(|c| c.scheme.eq_ignore_ascii_case("NTLM"))?;
        if self.ntlm_sent {
            return None;
        }
        let step = match (self.ntlm.as_mut(), &offered.token68) {
            (Some(sso), Some(_)) => {
                self.ntlm_sent = true;
                sso.authenticate(challenges)
            }
            (None, None) => {
                let negotiator = self.negotiator.as_ref()?;
                NtlmSso::start(negotiator, host).map(|(sso, header)| {
                    self.ntlm = Some(sso);
                    header
                })
            }
            _ => return None,
        };
        step.map_err(|why| *failure = Some(AuthError::NtlmSso(why)))
            .ok()
    }

    fn why_not(
        &self,
        challenges: &[Challenge],
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
        if self.ntlm_sent {
            return AuthError::NtlmRejected;
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
    use crate::client_proxy::auth::tests::FakeGss;
    use crate::http::{Header, ResponseHead};
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine;

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
        Some(NegotiatorHandle(Arc::new(FakeGss(ok))))
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
        let spnego = format!("Negotiate {}", BASE64.encode("ticket for HTTP@vpn.example"));
        assert_eq!(
            auth.answer(&negotiate, "vpn.example"),
            Ok(HttpAuthAnswer::Retry(spnego.clone()))
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
            Ok(HttpAuthAnswer::Retry(spnego))
        );
    }

    #[test]
    fn ntlm_takes_two_rounds_with_the_desktops_credentials() {
        let mut auth = ServerHttpAuth::new(None, kerberos(true));
        let bare = unauthorized(&[("WWW-Authenticate", "NTLM")]);
        assert_eq!(
            auth.answer(&bare, "vpn.example"),
            Ok(HttpAuthAnswer::Retry(format!(
                "NTLM {}",
                BASE64.encode("NEGOTIATE")
            )))
        );
        let challenge = format!("NTLM {}", BASE64.encode("CHALLENGE"));
        let challenged = unauthorized(&[("WWW-Authenticate", &challenge)]);
        assert_eq!(
            auth.answer(&challenged, "vpn.example"),
            Ok(HttpAuthAnswer::Retry(format!(
                "NTLM {}",
                BASE64.encode("AUTHENTICATE:CHALLENGE")
            )))
        );
        assert_eq!(
            auth.answer(&bare, "vpn.example"),
            Err(AuthError::NtlmRejected)
        );
        let mut without = ServerHttpAuth::new(None, kerberos(false));
        assert_eq!(
            without.answer(&bare, "vpn.example"),
            Err(AuthError::NtlmSso(
                "No Kerberos credentials available".into()
            ))
        );
    }

    #[test]
    fn errors_name_the_missing_piece() {
        let negotiate = unauthorized(&[("WWW-Authenticate", "Negotiate")]);
        let mut auth = ServerHttpAuth::new(None, kerberos(false));
        assert_eq!(
            auth.answer(&negotiate, "h"),
            Err(AuthError::Negotiate(
                "No Kerberos credentials available".into()
            ))
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
