//! GSSAPI logins in the security module (`auth = gssapi`): the acceptor with the host's
//! keytab (root-only), its contexts kept by id across the Negotiate round trips, and the
//! checks ocserv makes on the result: a local account name when required, a fresh enough
//! Kerberos ticket.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use oc_tls::gssapi::{AcceptStep, AcceptedPeer, Acceptor};
use tracing::{info, warn};

use crate::config::GssapiMethod;
use crate::server::lock;

/// Contexts waiting for the client's next token, and how long each waits.
const MAX_PENDING: usize = 1024;
const CONTEXT_LIFETIME: Duration = Duration::from_secs(120);

/// After a token.
#[derive(Debug)]
pub enum Accepted {
    Continue { id: u64, token: Vec<u8> },
    Done { user: String, token: Vec<u8> },
    Refused(String),
}

#[derive(Default)]
pub struct GssapiLogins {
    pending: Mutex<HashMap<u64, (Acceptor, Instant)>>,
}

impl std::fmt::Debug for GssapiLogins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GssapiLogins")
            .field("pending", &lock(&self.pending).len())
            .finish()
    }
}

impl GssapiLogins {
    /// Takes one token: a new context (`id` None) or the one it continues. A refused
    /// login's context is dropped at once and the log says so in ocserv's words (its
    /// test-gssapi-opt-pass counts them: a failed attempt must not linger).
    pub fn step(
        &self,
        method: &GssapiMethod,
        id: Option<u64>,
        token: &[u8],
        new_id: impl FnOnce() -> u64,
    ) -> Accepted {
        let accepted = self.take_token(method, id, token, new_id);
        if let Accepted::Refused(why) = &accepted {
            info!(
                "GSSAPI: permanently closing session of login {}: {why}",
                id.map_or_else(|| "(first token)".to_owned(), |id| id.to_string())
            );
        }
        accepted
    }

    fn take_token(
        &self,
        method: &GssapiMethod,
        id: Option<u64>,
        token: &[u8],
        new_id: impl FnOnce() -> u64,
    ) -> Accepted {
        let mut acceptor = match id {
            Some(id) => match lock(&self.pending).remove(&id) {
                Some((acceptor, since)) if since.elapsed() < CONTEXT_LIFETIME => acceptor,
                _ => return Accepted::Refused(format!("no GSSAPI context {id} waits")),
            },
            None => match Acceptor::new(method.keytab.as_deref()) {
                Ok(acceptor) => acceptor,
                Err(e) => return Accepted::Refused(e),
            },
        };
        match acceptor.step(token) {
            Ok(AcceptStep::Continue(token)) => {
                let id = new_id();
                let mut pending = lock(&self.pending);
                pending.retain(|_, (_, since)| since.elapsed() < CONTEXT_LIFETIME);
                if pending.len() >= MAX_PENDING {
                    return Accepted::Refused(format!(
                        "{MAX_PENDING} GSSAPI logins are already under way"
                    ));
                }
                pending.insert(id, (acceptor, Instant::now()));
                Accepted::Continue { id, token }
            }
            Ok(AcceptStep::Complete { token, peer }) => match user_of(method, &peer) {
                Ok(user) => {
                    info!(
                        "GSSAPI: principal {} authenticated as '{user}'",
                        peer.principal
                    );
                    Accepted::Done { user, token }
                }
                Err(why) => {
                    warn!("GSSAPI: principal {} refused: {why}", peer.principal);
                    Accepted::Refused(why)
                }
            },
            Err(e) => Accepted::Refused(e),
        }
    }
}

/// The user name a peer logs in as, after ocserv's checks.
fn user_of(method: &GssapiMethod, peer: &AcceptedPeer) -> Result<String, String> {
    if let (Some(limit), Some(auth_time)) = (method.tgt_freshness_time, peer.auth_time) {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        if now > auth_time + i64::from(limit) {
            return Err(format!(
                "the Kerberos ticket is {} s old (tgt-freshness-time {limit} s)",
                now - auth_time
            ));
        }
    }
    match (&peer.local_name, method.require_local_user_map) {
        (Some(local), _) => Ok(local.clone()),
        (None, false) => Ok(peer.principal.clone()),
        (None, true) => {
            Err("no local user for this principal (require-local-user-map is on)".to_owned())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn peer(local: Option<&str>, auth_time: Option<i64>) -> AcceptedPeer {
        AcceptedPeer {
            principal: "alice@FERRO.TEST".into(),
            local_name: local.map(str::to_owned),
            auth_time,
        }
    }

    fn method(require: bool, freshness: Option<u32>) -> GssapiMethod {
        GssapiMethod {
            keytab: None,
            require_local_user_map: require,
            tgt_freshness_time: freshness,
        }
    }

    #[test]
    fn the_local_name_is_the_user_and_may_be_required() {
        assert_eq!(
            user_of(&method(true, None), &peer(Some("alice"), None)).unwrap(),
            "alice"
        );
        assert_eq!(
            user_of(&method(false, None), &peer(None, None)).unwrap(),
            "alice@FERRO.TEST"
        );
        assert!(user_of(&method(true, None), &peer(None, None)).is_err());
    }

    #[test]
    fn an_old_kerberos_ticket_is_refused_when_freshness_is_asked() {
        let now = i64::try_from(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        )
        .unwrap();
        let fresh = peer(Some("alice"), Some(now - 10));
        let old = peer(Some("alice"), Some(now - 4000));
        assert!(user_of(&method(true, Some(900)), &fresh).is_ok());
        let err = user_of(&method(true, Some(900)), &old).unwrap_err();
        assert!(err.contains("tgt-freshness-time 900"), "{err}");
        // Not Kerberos (NTLM): nothing to check.
        assert!(user_of(&method(true, Some(900)), &peer(Some("alice"), None)).is_ok());
    }
}
