//! The login conversation with `auth = oidc`, as ocserv runs it: a request without
//! `Authorization: Bearer <token>` gets `401` with `WWW-Authenticate: Bearer`; a request
//! with one has the token checked by the security module, which names the user.

use oc_proto::ipc::OidcVerdict;

use super::{valid_name, AuthStep, Conversation};

/// What the client sent as a bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bearer {
    /// `Authorization: Bearer <token>` (or ocserv's `Bearer=<token>`).
    Token(String),
    /// An `Authorization: Bearer` header with nothing usable after it.
    Malformed,
}

impl Conversation {
    /// With OIDC chosen: the step a request's `Authorization` header leads to.
    pub(super) fn oidc_http_auth(&self, bearer: Option<&Bearer>) -> AuthStep {
        if let Some(reason) = self.unusable {
            return AuthStep::Failed { reason };
        }
        match bearer {
            None => AuthStep::BearerChallenge,
            Some(Bearer::Token(token)) => AuthStep::OidcCheck {
                token: token.clone(),
            },
            Some(Bearer::Malformed) => AuthStep::Failed {
                reason: "Authentication failed",
            },
        }
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
