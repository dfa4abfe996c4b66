//! The login conversation with `auth = oidc`, as ocserv runs it: a request without
//! `Authorization: Bearer <token>` gets `401` with `WWW-Authenticate: Bearer`; a request
//! with one has the token checked by the security module, which names the user.
//!
//! Beyond ocserv, with `sso` in the OIDC settings: a client that offers AnyConnect's
//! `single-sign-on-v2` (and sends no token) gets a browser login instead, and later posts
//! the one-time token the browser login handed out.

use oc_proto::anyconnect::server_auth::{ClientAuth, FormInputs, LoginForm, SsoForm};
use oc_proto::ipc::OidcVerdict;

use super::{valid_name, AuthStep, Conversation, FormSettings};

/// The browser login form's message (Cisco's words, which clients show).
pub const SSO_MESSAGE: &str = "Please complete the authentication process in the browser.";

/// What the client sent as a bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bearer {
    /// `Authorization: Bearer <token>` (or ocserv's `Bearer=<token>`).
    Token(String),
    /// An `Authorization: Bearer` header with nothing usable after it.
    Malformed,
}

impl Conversation {
    /// With OIDC chosen: the step a request's `Authorization` header leads to; `None`
    /// when it has no bearer token (the body decides, [`Conversation::oidc_post`]).
    pub(super) fn oidc_http_auth(&self, bearer: Option<&Bearer>) -> Option<AuthStep> {
        if let Some(reason) = self.unusable {
            return Some(AuthStep::Failed { reason });
        }
        match bearer? {
            Bearer::Token(token) => Some(AuthStep::OidcCheck {
                token: token.clone(),
            }),
            Bearer::Malformed => Some(AuthStep::Failed {
                reason: "Authentication failed",
            }),
        }
    }

    /// A request without a bearer token: the browser login's token, a browser login for a
    /// client that can do one, else the Bearer challenge.
    pub(super) fn oidc_post(&self, msg: &ClientAuth) -> AuthStep {
        if let Some(reason) = self.unusable {
            return AuthStep::Failed { reason };
        }
        if let Some(token) = msg.sso_token.as_deref().filter(|t| !t.is_empty()) {
            return AuthStep::SsoRedeem {
                token: token.to_owned(),
            };
        }
        if msg.offers_sso && !self.sso_unavailable {
            return AuthStep::SsoStart {
                external: msg.offers_external_browser,
            };
        }
        AuthStep::BearerChallenge
    }

    /// The form that starts a browser login.
    pub fn sso_form(&self, forms: &FormSettings, sso: SsoForm) -> LoginForm {
        self.form(forms, SSO_MESSAGE, FormInputs::Sso(sso))
    }

    /// The security module has no browser login for this host: the Bearer challenge,
    /// now and for the rest of this connection.
    pub fn sso_unavailable(&mut self) -> AuthStep {
        self.sso_unavailable = true;
        AuthStep::BearerChallenge
    }

    /// The security module's verdict on the token. A certificate that also takes part
    /// must name the same user.
    pub fn oidc_verdict(&mut self, verdict: &OidcVerdict) -> AuthStep {
        match verdict {
            OidcVerdict::Accepted { user, .. } => {
                let cert_user = self.cert.as_ref().and_then(|c| c.user.as_deref());
                if !valid_name(user) || cert_user.is_some_and(|c| c != user) {
                    return AuthStep::Failed {
                        reason: "Authentication failed",
                    };
                }
                self.username = Some(user.clone());
                self.finish(Vec::new())
            }
            OidcVerdict::Rejected { .. } => AuthStep::Failed {
                reason: "Authentication failed",
            },
        }
    }
}
