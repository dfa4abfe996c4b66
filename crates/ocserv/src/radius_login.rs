//! RADIUS logins in the security module: an Access-Request for each answer of the user,
//! Access-Challenges kept by id until answered (their State never leaves this process),
//! and what an Access-Accept grants the session.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use oc_proto::ipc::{Granted, RadiusCheck};
use oc_proto::radius::{AccessReply, AccessRequest, Grants, NasIdentity, MAX_CHALLENGES};
use tracing::{info, warn};

use crate::config::RadiusMethod;
use crate::radius::RadiusClient;
use crate::server::lock;

/// Challenges waiting for answers at once, and how long each waits.
const MAX_PENDING: usize = 4096;
const CHALLENGE_LIFETIME: Duration = Duration::from_secs(300);

/// A challenge the user has yet to answer.
struct Pending {
    user: String,
    config: PathBuf,
    state: Vec<u8>,
    rounds: u32,
    since: Instant,
    /// The Acct-Session-Id of this login's requests.
    acct_session_id: String,
}

/// What a successful login brings besides the user and groups: the settings the server
/// granted (with `groupconfig`) and its Class values, which accounting echoes; for a PAM
/// login, the service whose session the VPN session opens.
#[derive(Debug, Clone, Default)]
pub struct LoginExtras {
    pub pam: Option<crate::pam::PamOrigin>,
    pub granted: Option<Granted>,
    pub class: Vec<Vec<u8>>,
    /// The Acct-Session-Id the Access-Requests carried, for the session's accounting
    /// (RFC 2866 5.5: the server correlates both by it).
    pub acct_session_id: Option<String>,
}

/// The outcome of one answer.
#[derive(Debug)]
pub enum Checked {
    Accepted {
        groups: Vec<String>,
        extras: Box<LoginExtras>,
    },
    Challenge {
        id: u64,
        message: String,
    },
    Rejected {
        reason: String,
        retry: bool,
    },
}

#[derive(Default)]
pub struct RadiusLogins {
    pending: Mutex<HashMap<u64, Pending>>,
}

impl std::fmt::Debug for RadiusLogins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RadiusLogins")
            .field("pending", &lock(&self.pending).len())
            .finish()
    }
}

impl RadiusLogins {
    /// Sends the user's answer (with the State of the challenge it answers) and reads the
    /// verdict; `new_id` names a new challenge.
    pub fn check(
        &self,
        client: &RadiusClient,
        method: &RadiusMethod,
        check: &RadiusCheck,
        mut new_id: impl FnMut() -> u64,
    ) -> Checked {
        let answered = match check.challenge {
            Some(id) => match self.take(id, &check.user, &method.config) {
                Some(p) => Some(p),
                None => {
                    return Checked::Rejected {
                        reason: format!("no RADIUS challenge {id} waits for user '{}'", check.user),
                        retry: false,
                    }
                }
            },
            None => None,
        };
        let acct_session_id = answered.as_ref().map_or_else(
            || format!("{:016x}", new_id()),
            |p| p.acct_session_id.clone(),
        );
        let nas = NasIdentity {
            identifier: method.nas_identifier.clone(),
            address: check.nas_address,
        };
        let request = AccessRequest {
            user: &check.user,
            password: &check.answer,
            state: answered.as_ref().map(|p| p.state.as_slice()),
            nas: &nas,
            calling_station: &check.calling_station,
            session_id: Some(&acct_session_id),
            connect_info: check.user_agent.as_deref(),
        };
        let reply = match client.access(&request) {
            Ok(reply) => reply,
            Err(e) => {
                return Checked::Rejected {
                    reason: e,
                    retry: false,
                }
            }
        };
        match reply {
            AccessReply::Accept(grants) => {
                for (kind, why) in &grants.skipped {
                    warn!(
                        "RADIUS: attribute {kind} for '{}' skipped: {why}",
                        check.user
                    );
                }
                Checked::Accepted {
                    groups: grants.groups(method.group_separator),
                    extras: Box::new(LoginExtras {
                        granted: method.groupconfig.then(|| granted_of(&grants)),
                        class: grants.class,
                        acct_session_id: Some(acct_session_id),
                        pam: None,
                    }),
                }
            }
            AccessReply::Reject { message } => Checked::Rejected {
                reason: format!(
                    "Access-Reject{}",
                    message.map(|m| format!(" ({m})")).unwrap_or_default()
                ),
                retry: answered.is_none(),
            },
            AccessReply::Challenge { message, state } => {
                let rounds = answered.map_or(1, |p| p.rounds + 1);
                if rounds > MAX_CHALLENGES {
                    return Checked::Rejected {
                        reason: format!("more than {MAX_CHALLENGES} Access-Challenges"),
                        retry: false,
                    };
                }
                let id = new_id();
                info!("RADIUS: challenge {rounds} for '{}'", check.user);
                self.keep(
                    id,
                    Pending {
                        user: check.user.clone(),
                        config: method.config.clone(),
                        state,
                        rounds,
                        since: Instant::now(),
                        acct_session_id,
                    },
                );
                Checked::Challenge { id, message }
            }
        }
    }

    fn take(&self, id: u64, user: &str, config: &PathBuf) -> Option<Pending> {
        let mut pending = lock(&self.pending);
        let p = pending.remove(&id)?;
        (p.user == user && p.config == *config && p.since.elapsed() < CHALLENGE_LIFETIME)
            .then_some(p)
    }

    fn keep(&self, id: u64, challenge: Pending) {
        let mut pending = lock(&self.pending);
        pending.retain(|_, p| p.since.elapsed() < CHALLENGE_LIFETIME);
        if pending.len() >= MAX_PENDING {
            warn!("RADIUS: {MAX_PENDING} challenges waiting; the oldest is dropped");
            let oldest = pending
                .iter()
                .min_by_key(|(_, p)| p.since)
                .map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                pending.remove(&oldest);
            }
        }
        pending.insert(id, challenge);
    }
}

/// The settings of an Access-Accept, as ocserv applies them with `groupconfig`.
pub fn granted_of(g: &Grants) -> Granted {
    Granted {
        ipv4: g.ipv4,
        ipv4_netmask: g.ipv4_netmask,
        ipv6: g.ipv6,
        routes: g.routes.clone(),
        dns: g.dns.clone(),
        session_timeout: g.session_timeout.filter(|t| *t > 0),
        idle_timeout: g.idle_timeout.filter(|t| *t > 0),
        interim_interval: g.interim_interval.filter(|t| *t > 0),
        rx_per_sec: g.rx_per_sec.filter(|r| *r > 0),
        tx_per_sec: g.tx_per_sec.filter(|r| *r > 0),
    }
}
