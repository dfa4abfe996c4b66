//! The credential checks of the login phase: password files and one-time passwords,
//! PAM, RADIUS and GSSAPI, each through the security module; ban points and counters for
//! refusals. The decisions are the conversation's (crate::auth); this runs its steps.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use oc_proto::http::server::ServerRequest;
use oc_proto::ipc::{
    AuthTicket, GssapiVerdict, OidcVerdict, PamEvent, PamRequest, PasswordVerdict, RadiusCheck,
    RadiusVerdict, SecModReply, SecModRequest, MAX_GSSAPI_TOKEN,
};
use std::path::PathBuf;
use tracing::info;

use super::login::Login;
use super::Server;
use crate::auth::{AuthStep, Bearer, Conversation, HttpAuth};
use crate::metrics::AuthFailure;
use crate::otp::OtpOutcome;
use crate::passwd::PlainAuth;

impl Server {
    /// The checks a step asks for (password, OTP, PAM, GSSAPI, RADIUS), one after the
    /// other until a step needs the client, and the security module's ticket when they
    /// completed the credentials.
    pub(super) async fn run_checks(
        &self,
        mut step: AuthStep,
        conversation: &mut Conversation,
        login: &Login<'_>,
    ) -> (AuthStep, Option<AuthTicket>) {
        let mut ticket = None;
        loop {
            let (next, issued) = match step {
                AuthStep::CheckPassword {
                    passwd,
                    user,
                    password,
                } => {
                    let (result, issued) = {
                        let _slot = self.password_checks.acquire().await;
                        let host = login.rt.name.clone();
                        self.check_password(passwd, user.clone(), password, host)
                            .await
                    };
                    if result == PlainAuth::Rejected {
                        self.refused(
                            login,
                            AuthFailure::Password,
                            &format!("wrong password for user '{user}'"),
                        );
                    }
                    (
                        conversation.password_checked(result, &login.rt.forms),
                        issued,
                    )
                }
                AuthStep::CheckOtp { otp, user, code } => {
                    let (outcome, issued) = {
                        let _slot = self.password_checks.acquire().await;
                        self.check_otp(otp, user.clone(), code).await
                    };
                    if let OtpOutcome::Refused(why) = &outcome {
                        self.refused(
                            login,
                            AuthFailure::Otp,
                            &format!("OTP auth failed for '{user}': {why}"),
                        );
                    }
                    let accepted = outcome == OtpOutcome::Accepted;
                    (conversation.otp_checked(accepted), issued)
                }
                AuthStep::PamStart { .. } | AuthStep::PamAnswer { .. } => {
                    self.pam_step(&step, conversation, login).await
                }
                AuthStep::GssapiAccept { id, token } => {
                    self.gssapi_step(id, token, conversation, login).await
                }
                AuthStep::RadiusCheck { .. } => self.radius_step(&step, conversation, login).await,
                AuthStep::OidcCheck { token } => self.oidc_step(token, conversation, login).await,
                AuthStep::SsoRedeem { token } => self.sso_redeem(&token, conversation, login),
                other => return (other, ticket),
            };
            step = next;
            if issued.is_some() {
                ticket = issued;
            }
        }
    }

    /// A refused credential: counted, ban points as for a wrong password, logged.
    pub(super) fn refused(&self, login: &Login<'_>, kind: AuthFailure, why: &str) {
        let peer = login.peer;
        self.metrics.auth_failed(kind);
        let points = login.rt.config.ban_points_wrong_password;
        self.add_ban_points(peer, points, "failed logins");
        info!("{peer}: {why}");
    }

    async fn pam_step(
        &self,
        step: &AuthStep,
        conversation: &mut Conversation,
        login: &Login<'_>,
    ) -> (AuthStep, Option<AuthTicket>) {
        let Some(request) = pam_request(step, login) else {
            return (step.clone(), None);
        };
        let event = {
            let _slot = self.backend_checks.acquire().await;
            match self.links.secmod(SecModRequest::Pam(request)).await {
                SecModReply::Pam(event) => event,
                other => PamEvent::Rejected {
                    reason: format!("the security module answered {other:?}"),
                },
            }
        };
        let ticket = match &event {
            PamEvent::Accepted { ticket, .. } => Some(*ticket),
            PamEvent::Rejected { reason } => {
                self.refused(
                    login,
                    AuthFailure::Password,
                    &format!("PAM refused the login: {reason}"),
                );
                None
            }
            PamEvent::Prompt { .. } => None,
        };
        let next = conversation.pam_event(&event, &login.rt.forms);
        self.count_refused_answer(conversation, login);
        (next, ticket)
    }

    async fn gssapi_step(
        &self,
        id: Option<u64>,
        token: Vec<u8>,
        conversation: &mut Conversation,
        login: &Login<'_>,
    ) -> (AuthStep, Option<AuthTicket>) {
        let request = SecModRequest::Gssapi {
            id,
            token,
            vhost: login.rt.name.clone(),
        };
        let verdict = {
            let _slot = self.backend_checks.acquire().await;
            match self.links.secmod(request).await {
                SecModReply::Gssapi(verdict) => verdict,
                other => GssapiVerdict::Rejected {
                    reason: format!("the security module answered {other:?}"),
                },
            }
        };
        let ticket = match &verdict {
            GssapiVerdict::Accepted { ticket, user, .. } => {
                info!("{}: GSSAPI login of '{user}'", login.peer);
                Some(*ticket)
            }
            GssapiVerdict::Rejected { reason } => {
                self.refused(
                    login,
                    AuthFailure::Password,
                    &format!("GSSAPI refused the login: {reason}"),
                );
                None
            }
            GssapiVerdict::Continue { .. } => None,
        };
        (
            conversation.gssapi_verdict(&verdict, &login.rt.forms),
            ticket,
        )
    }

    async fn oidc_step(
        &self,
        token: String,
        conversation: &mut Conversation,
        login: &Login<'_>,
    ) -> (AuthStep, Option<AuthTicket>) {
        let request = SecModRequest::Oidc {
            token,
            vhost: login.rt.name.clone(),
        };
        let verdict = self.oidc_check(request).await;
        let ticket = match &verdict {
            OidcVerdict::Accepted { ticket, user } => {
                info!("{}: OIDC login of '{user}'", login.peer);
                Some(*ticket)
            }
            OidcVerdict::Rejected { reason } => {
                self.refused(
                    login,
                    AuthFailure::Password,
                    &format!("OIDC token refused: {reason}"),
                );
                None
            }
        };
        (conversation.oidc_verdict(&verdict), ticket)
    }

    /// An OIDC request to the security module (a bearer token, or a browser login's code),
    /// in one of the external back ends' slots: its verdict.
    pub(super) async fn oidc_check(&self, request: SecModRequest) -> OidcVerdict {
        let _slot = self.backend_checks.acquire().await;
        match self.links.secmod(request).await {
            SecModReply::Oidc(verdict) => verdict,
            other => OidcVerdict::Rejected {
                reason: format!("the security module answered {other:?}"),
            },
        }
    }

    async fn radius_step(
        &self,
        step: &AuthStep,
        conversation: &mut Conversation,
        login: &Login<'_>,
    ) -> (AuthStep, Option<AuthTicket>) {
        let Some(check) = radius_check(step, login) else {
            return (step.clone(), None);
        };
        let verdict = {
            let _slot = self.backend_checks.acquire().await;
            match self.links.secmod(SecModRequest::Radius(check)).await {
                SecModReply::Radius(verdict) => verdict,
                other => RadiusVerdict::Rejected {
                    reason: format!("the security module answered {other:?}"),
                    retry: false,
                },
            }
        };
        let ticket = match &verdict {
            RadiusVerdict::Accepted { ticket, .. } => Some(*ticket),
            RadiusVerdict::Rejected { reason, .. } => {
                self.refused(
                    login,
                    AuthFailure::Password,
                    &format!("RADIUS refused the login: {reason}"),
                );
                None
            }
            RadiusVerdict::Challenge { .. } => None,
        };
        let next = conversation.radius_verdict(&verdict, &login.rt.forms);
        self.count_refused_answer(conversation, login);
        (next, ticket)
    }

    /// A back end asked the same question again: a wrong answer, with ban points as a
    /// wrong password earns (ocserv counts same-stage retries so).
    fn count_refused_answer(&self, conversation: &mut Conversation, login: &Login<'_>) {
        if conversation.take_answer_refused() {
            let why = "wrong answer; the same question is asked again";
            self.refused(login, AuthFailure::Password, why);
        }
    }

    /// A password check in the security module, with its ticket when it completed the
    /// credentials.
    async fn check_password(
        &self,
        passwd: PathBuf,
        user: String,
        password: String,
        vhost: Option<String>,
    ) -> (PlainAuth, Option<AuthTicket>) {
        let request = SecModRequest::CheckPassword {
            passwd: passwd.display().to_string(),
            user,
            password,
            vhost,
        };
        let SecModReply::Password { verdict, ticket } = self.links.secmod(request).await else {
            return (PlainAuth::Rejected, None);
        };
        let result = match verdict {
            PasswordVerdict::Accepted { groups } => PlainAuth::Accepted { groups },
            PasswordVerdict::NoPasswordSet { groups } => PlainAuth::NoPasswordSet { groups },
            PasswordVerdict::Rejected => PlainAuth::Rejected,
        };
        (result, ticket)
    }

    /// An OTP check (and its use recorded) in the security module, with its ticket.
    async fn check_otp(
        &self,
        otp: PathBuf,
        user: String,
        code: String,
    ) -> (OtpOutcome, Option<AuthTicket>) {
        let request = SecModRequest::CheckOtp {
            otp: otp.display().to_string(),
            user,
            code,
        };
        match self.links.secmod(request).await {
            SecModReply::Otp {
                refused: None,
                ticket,
            } => (OtpOutcome::Accepted, ticket),
            SecModReply::Otp {
                refused: Some(why), ..
            }
            | SecModReply::Refused(why) => (OtpOutcome::Refused(why), None),
            other => (
                OtpOutcome::Refused(format!("unexpected answer {other:?}")),
                None,
            ),
        }
    }
}

/// What a request says about HTTP authentication (SPNEGO).
pub(super) fn http_auth(request: &ServerRequest) -> HttpAuth {
    let negotiate = request
        .header("Authorization")
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("Negotiate")
                .then_some(token.trim())
        })
        .and_then(|token| B64.decode(token).ok())
        .filter(|t| !t.is_empty() && t.len() <= MAX_GSSAPI_TOKEN);
    HttpAuth {
        offered: request.header("X-Support-HTTP-Auth").is_some(),
        negotiate,
        bearer: request.header("Authorization").and_then(bearer_token),
    }
}

/// `Bearer <token>`, or ocserv's `Bearer=<token>` (it skips one character after the
/// scheme): the token, which must be printable ASCII of a bounded length.
fn bearer_token(value: &str) -> Option<Bearer> {
    let value = value.trim();
    let scheme = value.get(..6)?;
    if !scheme.eq_ignore_ascii_case("Bearer") {
        return None;
    }
    let rest = value.get(6..).unwrap_or_default();
    let token = match rest.chars().next() {
        Some(' ' | '=') => rest.get(1..).unwrap_or_default().trim(),
        Some(_) => return None,
        None => "",
    };
    let usable = !token.is_empty()
        && token.len() <= oc_proto::oidc::MAX_TOKEN
        && token.bytes().all(|b| b.is_ascii_graphic());
    Some(if usable {
        Bearer::Token(token.to_owned())
    } else {
        Bearer::Malformed
    })
}

/// The RADIUS check a step asks for.
fn radius_check(step: &AuthStep, login: &Login<'_>) -> Option<RadiusCheck> {
    let AuthStep::RadiusCheck {
        config,
        user,
        answer,
        challenge,
    } = step
    else {
        return None;
    };
    Some(RadiusCheck {
        config: config.display().to_string(),
        vhost: login.rt.name.clone(),
        user: user.clone(),
        answer: answer.clone(),
        challenge: *challenge,
        calling_station: login.peer.ip().to_string(),
        nas_address: None,
        user_agent: None,
    })
}

/// The security module request a PAM step asks for.
fn pam_request(step: &AuthStep, login: &Login<'_>) -> Option<PamRequest> {
    match step {
        AuthStep::PamStart { service, user } => Some(PamRequest::Start {
            service: service.clone(),
            user: user.clone(),
            rhost: Some(login.peer.ip().to_string()),
            vhost: login.rt.name.clone(),
        }),
        AuthStep::PamAnswer { id, answer } => Some(PamRequest::Answer {
            id: *id,
            answer: answer.clone(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_as_openconnect_and_ocserv_send_them() {
        let token = |t: &str| Some(Bearer::Token(t.to_owned()));
        assert_eq!(bearer_token("Bearer abc.def.ghi"), token("abc.def.ghi"));
        assert_eq!(bearer_token("bearer=abc.def.ghi"), token("abc.def.ghi"));
        assert_eq!(bearer_token("  BEARER  abc  "), token("abc"));
        for malformed in ["Bearer", "Bearer ", "Bearer a b", "Bearer a\u{7f}"] {
            assert_eq!(
                bearer_token(malformed),
                Some(Bearer::Malformed),
                "{malformed:?}"
            );
        }
        let longest = "a".repeat(oc_proto::oidc::MAX_TOKEN);
        assert_eq!(bearer_token(&format!("Bearer {longest}")), token(&longest));
        let over = format!("Bearer {longest}a");
        assert_eq!(bearer_token(&over), Some(Bearer::Malformed));
        for other in ["Negotiate abc", "Basic YTpi", "Bearerx abc", ""] {
            assert_eq!(bearer_token(other), None, "{other:?}");
        }
    }
}
