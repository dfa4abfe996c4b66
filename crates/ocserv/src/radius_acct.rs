//! `acct = radius[...]`: the security module reports each session to the RADIUS
//! accounting server: Start when its first tunnel comes up, Interim-Update at each interim
//! report (`stats-report-time`, or the Access-Accept's Acct-Interim-Interval), Stop with
//! the totals and the cause when it ends. Requests go out from one thread in order, so a
//! slow or dead accounting server never holds up logins or tunnels (unlike ocserv, whose
//! login waits for the Start; a Start that is never acknowledged is logged).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use oc_proto::ipc::LeaseView;
use oc_proto::radius::{AccountingRequest, AcctStatus, NasIdentity, TerminateCause};
use tracing::{info, warn};

use crate::config::RadiusMethod;
use crate::radius::RadiusClient;
use crate::radius_login::LoginExtras;
use crate::server::{lock, read_lock, write_lock};
use crate::session_service::EndCause;

/// Requests waiting to be sent; more are dropped with a warning.
const QUEUE: usize = 1024;

/// What accounting remembers of a session.
#[derive(Debug, Clone)]
struct Tracked {
    /// Acct-Session-Id: the login's, or the session's public id.
    acct_session_id: String,
    user: String,
    class: Vec<Vec<u8>>,
    calling_station: String,
    started: Option<Instant>,
    ipv4: Option<Ipv4Addr>,
    ipv6: Option<Ipv6Addr>,
}

/// One request to send.
#[derive(Debug)]
struct Job {
    status: AcctStatus,
    sid: String,
    session: Tracked,
    bytes: (u64, u64),
    cause: Option<TerminateCause>,
}

/// The configured accounting server, replaced on reload.
type Target = (RadiusMethod, Arc<RadiusClient>);

#[derive(Debug)]
pub struct Accounting {
    target: Arc<RwLock<Option<Target>>>,
    sessions: Mutex<HashMap<String, Tracked>>,
    queue: SyncSender<Job>,
}

impl Accounting {
    /// Starts the sending thread.
    pub fn start() -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::sync_channel(QUEUE);
        let target = Arc::new(RwLock::new(None));
        let sender_target = target.clone();
        std::thread::Builder::new()
            .name("sec-mod-acct".into())
            .spawn(move || send_all(&jobs, &sender_target))?;
        Ok(Self {
            target,
            sessions: Mutex::new(HashMap::new()),
            queue,
        })
    }

    /// The accounting server after a (re)load; `None` turns accounting off.
    pub fn configure(&self, target: Option<Target>) {
        *write_lock(&self.target) = target;
    }

    pub fn enabled(&self) -> bool {
        read_lock(&self.target).is_some()
    }

    /// A session was created for `user` logging in from `from`.
    pub fn created(&self, sid: &str, user: &str, from: Option<IpAddr>, extras: LoginExtras) {
        if !self.enabled() {
            return;
        }
        let tracked = Tracked {
            acct_session_id: extras.acct_session_id.unwrap_or_else(|| sid.to_owned()),
            user: user.to_owned(),
            class: extras.class,
            calling_station: from.map(|ip| ip.to_string()).unwrap_or_default(),
            started: None,
            ipv4: None,
            ipv6: None,
        };
        lock(&self.sessions).insert(sid.to_owned(), tracked);
    }

    /// A tunnel of the session came up with these addresses: Start, the first time.
    pub fn attached(&self, sid: &str, lease: Option<&LeaseView>) {
        let job = {
            let mut sessions = lock(&self.sessions);
            let Some(tracked) = sessions.get_mut(sid) else {
                return;
            };
            if tracked.started.is_some() {
                return;
            }
            tracked.started = Some(Instant::now());
            tracked.ipv4 = lease.and_then(|l| l.v4);
            tracked.ipv6 = lease.and_then(|l| l.v6).map(|n| n.addr());
            job(AcctStatus::Start, sid, tracked, (0, 0), None)
        };
        self.enqueue(job);
    }

    /// The session's running totals: Interim-Update.
    pub fn interim(&self, sid: &str, bytes: (u64, u64)) {
        let job = match lock(&self.sessions).get(sid) {
            Some(t) if t.started.is_some() => job(AcctStatus::InterimUpdate, sid, t, bytes, None),
            _ => return,
        };
        self.enqueue(job);
    }

    /// The session ended: Stop with its totals (if it was started).
    pub fn ended(&self, sid: &str, bytes: (u64, u64), cause: EndCause) {
        let Some(tracked) = lock(&self.sessions).remove(sid) else {
            return;
        };
        if tracked.started.is_none() {
            return;
        }
        let cause = match cause {
            EndCause::Logout => TerminateCause::UserRequest,
            EndCause::Admin => TerminateCause::AdminReset,
            EndCause::SessionTimeout => TerminateCause::SessionTimeout,
            EndCause::Expired => TerminateCause::LostCarrier,
        };
        self.enqueue(job(AcctStatus::Stop, sid, &tracked, bytes, Some(cause)));
    }

    fn enqueue(&self, job: Job) {
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => warn!(
                "RADIUS accounting: {QUEUE} requests waiting; {:?} for session {} dropped",
                job.status, job.sid
            ),
            Err(TrySendError::Disconnected(_)) => {
                warn!("RADIUS accounting: the sending thread is gone");
            }
        }
    }
}

fn job(
    status: AcctStatus,
    sid: &str,
    session: &Tracked,
    bytes: (u64, u64),
    cause: Option<TerminateCause>,
) -> Job {
    Job {
        status,
        sid: sid.to_owned(),
        session: session.clone(),
        bytes,
        cause,
    }
}

/// The sending thread: one request at a time, in order.
fn send_all(jobs: &Receiver<Job>, target: &RwLock<Option<Target>>) {
    for job in jobs {
        let Some((method, client)) = read_lock(target).clone() else {
            continue;
        };
        let nas = NasIdentity {
            identifier: method.nas_identifier.clone(),
            address: None,
        };
        let t = &job.session;
        let request = AccountingRequest {
            status: job.status,
            user: &t.user,
            session_id: &t.acct_session_id,
            nas: &nas,
            calling_station: &t.calling_station,
            ipv4: t.ipv4,
            ipv6: t.ipv6,
            class: &t.class,
            connect_info: None,
            session_time: t
                .started
                .map(|s| u32::try_from(s.elapsed().as_secs()).unwrap_or(u32::MAX)),
            input: (job.bytes.0, 0),
            output: (job.bytes.1, 0),
            terminate_cause: job.cause,
        };
        match client.account(&request) {
            Ok(()) => info!(
                "RADIUS accounting {:?} for '{}' (session {}) acknowledged",
                job.status, t.user, job.sid
            ),
            Err(e) => warn!(
                "RADIUS accounting {:?} for '{}' (session {}) not acknowledged: {e}",
                job.status, t.user, job.sid
            ),
        }
    }
}
