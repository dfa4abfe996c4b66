//! Browser logins (`auth = oidc` with `sso`): the logins under way, keyed by their OAuth
//! `state`, from the client's request for a login page, through the browser's return with
//! a code (traded by the security module for the user), to the client's post of the
//! one-time token that return handed out.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use oc_proto::anyconnect::server_auth::SsoForm;
use oc_proto::http::server::{ServerRequest, ServerResponse};
use oc_proto::ipc::{AuthTicket, OidcVerdict, SecModReply, SecModRequest, SsoLogin};
use oc_proto::oidc::{parse_callback, pkce_challenge, CALLBACK_PATH, DONE_PATH, TOKEN_COOKIE};
use oc_tls::TlsStream;
use tracing::info;

use super::login::Login;
use super::reply::send;
use super::{lock, random_fill, Server};
use crate::auth::{AuthStep, Conversation};
use crate::metrics::AuthFailure;

/// How long a browser login may take, from the form to the client's post of the token.
const LOGIN_LIFETIME: Duration = Duration::from_secs(300);
/// Browser logins under way at once.
const MAX_LOGINS: usize = 1024;

/// The browser logins under way.
#[derive(Debug, Default)]
pub(super) struct SsoLogins {
    by_state: HashMap<String, Pending>,
}

#[derive(Debug)]
struct Pending {
    vhost: Option<String>,
    login: SsoLogin,
    /// PKCE's secret half; taken when the browser returns (a code is traded once).
    verifier: Option<String>,
    /// The client's STRAP ECDH key: the token goes to its localhost callback, sealed.
    client_dh: Option<Vec<u8>>,
    started: Instant,
    /// Once the browser returned: the one-time token, the user and the ticket.
    done: Option<(String, String, AuthTicket)>,
}

impl SsoLogins {
    fn insert(&mut self, state: String, pending: Pending, now: Instant) -> bool {
        self.by_state
            .retain(|_, p| now.duration_since(p.started) < LOGIN_LIFETIME);
        if self.by_state.len() >= MAX_LOGINS {
            return false;
        }
        self.by_state.insert(state, pending);
        true
    }

    /// The login `state` names, for the browser's return: its parameters and the PKCE
    /// verifier (given once).
    fn returned(
        &mut self,
        state: &str,
        now: Instant,
    ) -> Option<(Option<String>, SsoLogin, String)> {
        let pending = self
            .by_state
            .get_mut(state)
            .filter(|p| now.duration_since(p.started) < LOGIN_LIFETIME)?;
        let verifier = pending.verifier.take()?;
        Some((pending.vhost.clone(), pending.login.clone(), verifier))
    }

    /// Records the browser login's user: the one-time token to hand out, and the
    /// client's key to seal it to (external browser).
    fn complete(
        &mut self,
        state: &str,
        user: String,
        ticket: AuthTicket,
    ) -> Option<(String, Option<Vec<u8>>)> {
        let pending = self.by_state.get_mut(state)?;
        let token = random_hex(24);
        pending.done = Some((token.clone(), user, ticket));
        Some((token, pending.client_dh.clone()))
    }

    /// The user and ticket of the login that handed out `token` (once).
    fn redeem(&mut self, token: &str, now: Instant) -> Option<(String, AuthTicket)> {
        let state = self
            .by_state
            .iter()
            .find(|(_, p)| p.done.as_ref().is_some_and(|(t, _, _)| t == token))
            .map(|(s, _)| s.clone())?;
        let pending = self.by_state.remove(&state)?;
        if now.duration_since(pending.started) >= LOGIN_LIFETIME {
            return None;
        }
        pending.done.map(|(_, user, ticket)| (user, ticket))
    }
}

fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    random_fill(&mut raw);
    oc_proto::hex::encode(&raw)
}

/// `https://HOST` as the client reached us (the `Host` header; the provider only sends
/// browsers back to registered addresses, so a forged one leads nowhere).
fn our_origin(request: &ServerRequest) -> Option<String> {
    let host = request.header("Host")?.trim();
    let usable = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    usable.then(|| format!("https://{host}"))
}

impl Server {
    /// A client asks for a browser login: the form with the provider's login page, or the
    /// Bearer challenge when this host has no browser login.
    pub(super) async fn sso_start(
        &self,
        request: &ServerRequest,
        external: bool,
        conversation: &mut Conversation,
        login: &Login<'_>,
    ) -> AuthStep {
        let Some(origin) = our_origin(request) else {
            return conversation.sso_unavailable();
        };
        let client_dh = match (external, request.header("X-AnyConnect-STRAP-DH-Pubkey")) {
            (true, Some(key)) => openssl::base64::decode_block(key.trim()).ok(),
            _ => None,
        };
        let (state, nonce, verifier) = (random_hex(16), random_hex(16), random_hex(32));
        let sso_login = SsoLogin {
            redirect_uri: format!("{origin}{CALLBACK_PATH}"),
            nonce,
        };
        let ask = SecModRequest::OidcSsoStart {
            vhost: login.rt.name.clone(),
            login: sso_login.clone(),
            state: state.clone(),
            challenge: pkce_challenge(&verifier),
        };
        let SecModReply::OidcSsoLogin(Some(login_url)) = self.links.secmod(ask).await else {
            return conversation.sso_unavailable();
        };
        let external = client_dh.is_some();
        let pending = Pending {
            vhost: login.rt.name.clone(),
            login: sso_login,
            verifier: Some(verifier),
            client_dh,
            started: Instant::now(),
            done: None,
        };
        if !lock(&self.sso).insert(state, pending, Instant::now()) {
            info!(
                "{}: {MAX_LOGINS} browser logins are under way; refused",
                login.peer
            );
            return AuthStep::Failed {
                reason: "Too many logins under way",
            };
        }
        info!(
            "{}: browser login started ({} browser)",
            login.peer,
            if external { "external" } else { "embedded" }
        );
        AuthStep::Form(conversation.sso_form(
            &login.rt.forms,
            SsoForm {
                login_url,
                final_url: format!("{origin}{DONE_PATH}"),
                token_cookie: TOKEN_COOKIE.to_owned(),
                external,
            },
        ))
    }

    /// The client posts the browser login's token: its user, with the ticket.
    pub(super) fn sso_redeem(
        &self,
        token: &str,
        conversation: &mut Conversation,
        login: &Login<'_>,
    ) -> (AuthStep, Option<AuthTicket>) {
        match lock(&self.sso).redeem(token, Instant::now()) {
            Some((user, ticket)) => {
                info!("{}: browser login of '{user}'", login.peer);
                let verdict = OidcVerdict::Accepted { user, ticket };
                (conversation.oidc_verdict(&verdict), Some(ticket))
            }
            None => {
                self.refused(
                    login,
                    AuthFailure::Password,
                    "unknown, used or expired browser login token",
                );
                let verdict = OidcVerdict::Rejected {
                    reason: String::new(),
                };
                (conversation.oidc_verdict(&verdict), None)
            }
        }
    }

    /// The browser comes back from the provider: the code is traded, and the browser goes
    /// on to the final page with the token as a cookie, or to the client's localhost
    /// callback with the token sealed. False when the connection is done.
    pub(super) async fn sso_callback(
        &self,
        stream: &mut TlsStream,
        request: &ServerRequest,
        login: &Login<'_>,
    ) -> bool {
        let answer = match self.sso_return(request, login).await {
            Ok(response) => response,
            Err(why) => {
                info!("{}: browser login failed: {why}", login.peer);
                page(
                    403,
                    "Forbidden",
                    "The login failed; start it again from the VPN client.",
                )
            }
        };
        send(stream, &answer).await.is_ok()
    }

    async fn sso_return(
        &self,
        request: &ServerRequest,
        login: &Login<'_>,
    ) -> Result<ServerResponse, String> {
        let callback = parse_callback(&request.target).map_err(|e| e.to_string())?;
        let (vhost, sso_login, verifier) = lock(&self.sso)
            .returned(&callback.state, Instant::now())
            .ok_or("no such login under way (unknown, expired or already returned)")?;
        let code = callback
            .code
            .map_err(|e| format!("the provider refused the login: {e}"))?;
        let ask = SecModRequest::OidcSsoCode {
            vhost,
            login: sso_login,
            code,
            verifier,
        };
        let (user, ticket) = match self.oidc_check(ask).await {
            OidcVerdict::Accepted { user, ticket } => (user, ticket),
            OidcVerdict::Rejected { reason } => {
                self.refused(
                    login,
                    AuthFailure::Password,
                    &format!("browser login refused: {reason}"),
                );
                return Err(reason);
            }
        };
        info!(
            "{}: browser login: the provider vouches for '{user}'",
            login.peer
        );
        let (token, client_dh) = lock(&self.sso)
            .complete(&callback.state, user, ticket)
            .ok_or("the login expired meanwhile")?;
        let origin = our_origin(request).ok_or("no usable Host header")?;
        let final_url = format!("{origin}{DONE_PATH}");
        Ok(match client_dh {
            Some(dh) => {
                let sealed =
                    oc_tls::sso::seal_token(&dh, token.as_bytes()).map_err(|e| e.to_string())?;
                redirect(&sealed.callback_url(&final_url))
            }
            None => redirect(&final_url).header(
                "Set-Cookie",
                format!("{TOKEN_COOKIE}={token}; Path=/; Secure; HttpOnly"),
            ),
        })
    }
}

fn redirect(to: &str) -> ServerResponse {
    ServerResponse::new(302, "Found")
        .header("Location", to)
        .header("Cache-Control", "no-store")
}

/// A small HTML page.
pub(super) fn page(status: u16, reason: &str, text: &str) -> ServerResponse {
    ServerResponse::new(status, reason)
        .header("Content-Type", "text/html; charset=utf-8")
        .header("Cache-Control", "no-store")
        .body(format!("<html><body><p>{text}</p></body></html>\n"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pending(now: Instant) -> Pending {
        Pending {
            vhost: None,
            login: SsoLogin {
                redirect_uri: "https://vpn/+CSCOE+/oidc/callback".into(),
                nonce: "n".into(),
            },
            verifier: Some("v".into()),
            client_dh: None,
            started: now,
            done: None,
        }
    }

    #[test]
    fn a_code_is_traded_once_and_a_token_redeemed_once() {
        let now = Instant::now();
        let mut logins = SsoLogins::default();
        assert!(logins.insert("s1".into(), pending(now), now));
        let (_, login, verifier) = logins.returned("s1", now).unwrap();
        assert_eq!((login.nonce.as_str(), verifier.as_str()), ("n", "v"));
        // The browser comes back again (a replayed return): no second trade.
        assert!(logins.returned("s1", now).is_none());
        assert!(logins.returned("other", now).is_none());
        let (token, dh) = logins.complete("s1", "alice".into(), [7; 16]).unwrap();
        assert_eq!((token.len(), dh), (48, None));
        assert!(logins.redeem("wrong", now).is_none());
        assert_eq!(logins.redeem(&token, now), Some(("alice".into(), [7; 16])));
        assert!(logins.redeem(&token, now).is_none(), "used twice");
    }

    #[test]
    fn logins_expire_and_are_bounded() {
        let start = Instant::now();
        let mut logins = SsoLogins::default();
        assert!(logins.insert("old".into(), pending(start), start));
        let later = start + LOGIN_LIFETIME;
        assert!(logins.returned("old", later).is_none(), "expired");
        for i in 0..MAX_LOGINS {
            assert!(logins.insert(format!("s{i}"), pending(later), later));
        }
        assert_eq!(
            logins.by_state.len(),
            MAX_LOGINS,
            "the expired one was dropped"
        );
        assert!(!logins.insert("one more".into(), pending(later), later));
        // An expired token is not redeemed.
        let (token, _) = logins.complete("s0", "bob".into(), [1; 16]).unwrap();
        assert!(logins.redeem(&token, later + LOGIN_LIFETIME).is_none());
    }

    #[test]
    fn our_origin_comes_from_a_sane_host_header() {
        let request = |host: &str| ServerRequest {
            method: oc_proto::http::server::Method::Get,
            target: "/".into(),
            headers: vec![oc_proto::http::Header {
                name: "Host".into(),
                value: host.into(),
            }],
            body: Vec::new(),
            http10: false,
        };
        assert_eq!(
            our_origin(&request("vpn.example.com:8443")).as_deref(),
            Some("https://vpn.example.com:8443")
        );
        assert_eq!(
            our_origin(&request("[2001:db8::1]")).as_deref(),
            Some("https://[2001:db8::1]")
        );
        for bad in ["", "evil.com/x", "a b", "x\"y"] {
            assert_eq!(our_origin(&request(bad)), None, "{bad:?}");
        }
    }
}
