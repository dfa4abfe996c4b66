//! The login conversation with `auth = gssapi` (SPNEGO over HTTP), as ocserv runs it: a
//! client that offers HTTP authentication (`X-Support-HTTP-Auth`) gets `401` with
//! `WWW-Authenticate: Negotiate`, answers with `Authorization: Negotiate <token>`, and the
//! security module accepts it. A client that does not offer it, or whose GSSAPI fails,
//! continues with the other configured methods (`X-HTTP-Auth-Support: fallback` tells it
//! so); with `enable-auth = gssapi` beside passwords, offering HTTP authentication switches
//! to GSSAPI.

use oc_proto::ipc::GssapiVerdict;

use super::{AuthStep, Bearer, CertStatus, Conversation, FormSettings};
use crate::config::AuthMethod;

/// What a request says about HTTP authentication.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpAuth {
    /// `X-Support-HTTP-Auth` was sent.
    pub offered: bool,
    /// The decoded token of `Authorization: Negotiate <base64>`.
    pub negotiate: Option<Vec<u8>>,
    /// `Authorization: Bearer <token>`.
    pub bearer: Option<Bearer>,
}

/// The logins a GSSAPI choice switches between: with GSSAPI chosen, the remaining
/// alternatives (`fallback`); without it (and no certificate login), GSSAPI from
/// `enable-auth` (`upgrade`).
pub(super) fn gssapi_switches(
    gssapi_chosen: bool,
    certificate_chosen: bool,
    alternatives: &[AuthMethod],
    cert: &CertStatus,
) -> (Option<Box<Conversation>>, Option<Box<Conversation>>) {
    let is_gssapi = |m: &&AuthMethod| matches!(m, AuthMethod::Gssapi(_));
    if gssapi_chosen {
        let others: Vec<AuthMethod> = alternatives
            .iter()
            .filter(|m| !is_gssapi(m))
            .cloned()
            .collect();
        let fallback =
            (!others.is_empty()).then(|| Box::new(Conversation::new(&[], &others, cert.clone())));
        return (fallback, None);
    }
    if certificate_chosen {
        return (None, None);
    }
    let upgrade = alternatives.iter().find(is_gssapi).map(|g| {
        Box::new(Conversation::new(
            std::slice::from_ref(g),
            &[],
            cert.clone(),
        ))
    });
    (None, upgrade)
}

impl Conversation {
    /// Whether nothing of the login has happened yet (no name, no answer, no context).
    fn untouched(&self) -> bool {
        self.username.is_none()
            && self.attempts == 0
            && self.gss_context.is_none()
            && self.radius_challenge.is_none()
            && self.pam_waiting().is_none()
    }

    /// Looks at a request's HTTP authentication before its body: a step when GSSAPI or
    /// OIDC answers it, `None` when the forms do.
    pub fn on_http_auth(&mut self, http: &HttpAuth) -> Option<AuthStep> {
        if self.oidc {
            return self.oidc_http_auth(http.bearer.as_ref());
        }
        if self.gssapi.is_none() {
            if !(http.offered && self.untouched()) {
                return None;
            }
            let upgrade = self.upgrade.take()?;
            let before = std::mem::replace(self, *upgrade);
            self.fallback = Some(Box::new(before));
        }
        if let Some(token) = &http.negotiate {
            return Some(AuthStep::GssapiAccept {
                id: self.gss_context.take(),
                token: token.clone(),
            });
        }
        if !http.offered && self.gss_context.is_none() {
            // A client that cannot (or no longer wants to) do GSSAPI: the other methods.
            if let Some(fallback) = self.fallback.take() {
                *self = *fallback;
                return None;
            }
        }
        Some(AuthStep::Negotiate {
            token: None,
            fallback: self.fallback.is_some(),
        })
    }

    /// The security module's verdict on a Negotiate token.
    pub fn gssapi_verdict(&mut self, verdict: &GssapiVerdict, forms: &FormSettings) -> AuthStep {
        match verdict {
            GssapiVerdict::Continue { id, token } => {
                self.gss_context = Some(*id);
                AuthStep::Negotiate {
                    token: Some(token.clone()),
                    fallback: self.fallback.is_some(),
                }
            }
            GssapiVerdict::Accepted { user, groups, .. } => {
                // As ocserv: a certificate that also takes part must be the same user's.
                let cert_user = self.cert.as_ref().and_then(|c| c.user.as_deref());
                if cert_user.is_some_and(|c| c != user) {
                    return AuthStep::Failed {
                        reason: "Authentication failed",
                    };
                }
                self.username = Some(user.clone());
                if groups.is_empty() {
                    // Not a Unix user: no groups to check a requested one against.
                    self.group = None;
                }
                self.finish(groups.clone())
            }
            GssapiVerdict::Rejected { .. } => match self.fallback.take() {
                // As ocserv: a failed GSSAPI login goes on with the other methods' first
                // form.
                Some(fallback) => {
                    *self = *fallback;
                    AuthStep::Form(self.first_form(forms))
                }
                None => AuthStep::Failed {
                    reason: "Authentication failed",
                },
            },
        }
    }
}
