//! The session store as the security module serves it: cookies ([`SessionStore`]) and
//! address leases ([`AddressPool`]) together, so both outlive a network process that dies
//! and clients come back with their cookies and their addresses.
//!
//! Without I/O: time and randomness come in as arguments, requests and replies are the
//! `oc_proto::ipc` session messages.

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use oc_proto::ipc::{
    CookieRefusal, LeaseAsk, LeaseView, SessionReply, SessionRequest, SessionView,
};

use crate::pool::{AddressPool, Lease, LeaseRequest};
use crate::sessions::{
    decode_cookie, CookieError, Owner, SessionRecord, SessionStore, COOKIE_BYTES,
};

/// What a request may use besides the store: the time and fresh randomness.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub mono: Instant,
    pub wall: SystemTime,
}

#[derive(Debug)]
pub struct SessionService {
    store: SessionStore,
    pool: AddressPool,
    /// Sessions that ended since [`SessionService::take_ended`] was last called.
    ended: Vec<EndedSession>,
}

/// Why a session ended (accounting's Acct-Terminate-Cause).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndCause {
    /// The client logged out (or its tunnel closed for good).
    Logout,
    /// occtl ended it.
    Admin,
    /// `session-timeout` was reached.
    SessionTimeout,
    /// No connection came back within `cookie-timeout`.
    Expired,
}

/// A session that ended, with its totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedSession {
    pub sid: String,
    pub user: String,
    pub bytes: (u64, u64),
    pub cause: EndCause,
}

/// What a CONNECT asks of its session (the fields of `SessionRequest::Attach`).
#[derive(Clone, Copy)]
struct AttachAsk<'a> {
    conn: u64,
    max_same: u32,
    server_full: bool,
    lease: &'a LeaseAsk,
    peer: Option<IpAddr>,
    deny_roaming: bool,
}

fn view(record: &SessionRecord, now: Instant) -> SessionView {
    SessionView {
        id: record.id,
        sid: record.sid.clone(),
        user: record.user.clone(),
        group: record.group.clone(),
        lease: record.lease.map(|l| LeaseView { v4: l.v4, v6: l.v6 }),
        remaining: record
            .deadline
            .map(|d| d.saturating_duration_since(now).as_secs()),
        created_unix: record
            .created_wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        attached: record.attached,
        expires_in: record.expires.saturating_duration_since(now).as_secs(),
        carried: record.carried,
        login_ip: record.login_ip,
        vhost: record.vhost.clone(),
        granted: record.granted.clone(),
    }
}

fn refusal(e: CookieError) -> SessionReply {
    SessionReply::Refused(match e {
        CookieError::Malformed => CookieRefusal::Malformed,
        CookieError::Unknown => CookieRefusal::Unknown,
        CookieError::SessionTimeout => CookieRefusal::SessionTimeout,
    })
}

fn refused(why: CookieRefusal) -> SessionReply {
    SessionReply::Refused(why)
}

fn lease_request<'a>(user: &'a str, ask: &LeaseAsk, seed: u64) -> LeaseRequest<'a> {
    LeaseRequest {
        user,
        v4: ask.v4,
        v6: ask.v6,
        predictable: ask.predictable,
        seed,
        explicit_v4: ask.explicit_v4,
        explicit_v6: ask.explicit_v6,
    }
}

impl SessionService {
    pub fn new(cookie_timeout: Duration) -> Self {
        Self {
            store: SessionStore::new(cookie_timeout),
            pool: AddressPool::new(),
            ended: Vec::new(),
        }
    }

    pub fn set_cookie_timeout(&mut self, timeout: Duration) {
        self.store.set_cookie_timeout(timeout);
    }

    /// The network process was replaced: its connections are gone, so every session they
    /// held waits for a reconnect (cookie-timeout) with its lease.
    pub fn detach_all(&mut self, now: Instant) {
        let held: Vec<([u8; COOKIE_BYTES], u64)> = self
            .store
            .iter()
            .filter_map(|(raw, r)| r.attached.map(|conn| (*raw, conn)))
            .collect();
        for (raw, conn) in held {
            self.store.detach(&raw, conn, true, now, (0, 0));
        }
    }

    /// The public id (occtl's, accounting's Acct-Session-Id) of this cookie's session.
    pub fn sid_of(&self, cookie: &str) -> Option<String> {
        let raw = decode_cookie(cookie).ok()?;
        self.store.get(&raw).map(|r| r.sid.clone())
    }

    /// The user holding this cookie.
    pub fn user_of(&self, cookie: &str) -> Option<String> {
        let raw = decode_cookie(cookie).ok()?;
        self.store.get(&raw).map(|r| r.user.clone())
    }

    /// Leased IPv4 addresses and IPv6 prefixes.
    pub fn leased(&self) -> (usize, usize) {
        self.pool.leased()
    }

    /// The sessions that ended since the last call.
    pub fn take_ended(&mut self) -> Vec<EndedSession> {
        std::mem::take(&mut self.ended)
    }

    /// A session is over: its addresses go back, and it is noted for accounting.
    fn release(&mut self, record: SessionRecord, cause: EndCause) {
        if let Some(lease) = record.lease {
            self.pool.release(&lease);
        }
        self.ended.push(EndedSession {
            sid: record.sid,
            user: record.user,
            bytes: record.carried,
            cause,
        });
    }

    fn expire(&mut self, now: Instant) {
        for ended in self.store.expire(now) {
            let cause = if ended.deadline.is_some_and(|d| now >= d) {
                EndCause::SessionTimeout
            } else {
                EndCause::Expired
            };
            self.release(ended, cause);
        }
    }

    /// Answers one request; `random` fills buffers with fresh randomness.
    pub fn handle(
        &mut self,
        request: SessionRequest,
        now: Now,
        random: &mut dyn FnMut(&mut [u8]),
    ) -> SessionReply {
        self.expire(now.mono);
        match request {
            SessionRequest::Create {
                user,
                group,
                timeout,
                login_ip,
                vhost,
                granted,
                ..
            } => {
                let mut raw = [0u8; COOKIE_BYTES];
                random(&mut raw);
                let timeout = timeout
                    .filter(|t| *t > 0)
                    .map(|t| Duration::from_secs(u64::from(t)));
                let owner = Owner {
                    user,
                    group,
                    login_ip,
                    vhost,
                    granted,
                };
                let cookie = self.store.create(raw, owner, timeout, now.mono, now.wall);
                SessionReply::Created { cookie }
            }
            SessionRequest::Lookup { cookie, vhost } => {
                match self.store.get_for_connect(&cookie, now.mono) {
                    // A cookie serves only on the host it logged in to: another host's
                    // settings, certificates and credentials never checked it.
                    Ok((_, record)) if record.vhost != vhost => refused(CookieRefusal::OtherHost {
                        issued_by: record.vhost.clone(),
                    }),
                    Ok((_, record)) => SessionReply::Found(view(record, now.mono)),
                    Err(e) => refusal(e),
                }
            }
            SessionRequest::Attach {
                cookie,
                conn,
                max_same,
                server_full,
                lease,
                peer,
                deny_roaming,
            } => {
                let ask = AttachAsk {
                    conn,
                    max_same,
                    server_full,
                    lease: &lease,
                    peer,
                    deny_roaming,
                };
                self.attach(&cookie, &ask, now, random)
            }
            SessionRequest::Relocate {
                cookie,
                taken,
                lease,
            } => self.relocate(&cookie, taken, &lease, random),
            SessionRequest::Detach {
                cookie,
                conn,
                keep,
                bytes,
            } => self.detach(&cookie, conn, keep, bytes, now.mono),
            SessionRequest::Interim { cookie, .. } => {
                let carried = decode_cookie(&cookie)
                    .ok()
                    .and_then(|raw| self.store.get(&raw).map(|r| r.carried))
                    .unwrap_or_default();
                SessionReply::Carried(carried)
            }
            SessionRequest::List => {
                let mut all: Vec<SessionView> =
                    self.store.iter().map(|(_, r)| view(r, now.mono)).collect();
                all.sort_by_key(|s| s.id);
                SessionReply::List(all)
            }
            SessionRequest::End { sid, user } => self.end(sid.as_deref(), user.as_deref()),
        }
    }

    fn attach(
        &mut self,
        cookie: &str,
        ask: &AttachAsk<'_>,
        now: Now,
        random: &mut dyn FnMut(&mut [u8]),
    ) -> SessionReply {
        let AttachAsk {
            conn,
            max_same,
            server_full,
            lease: ask,
            peer,
            deny_roaming,
        } = *ask;
        let (raw, record) = match self.store.get_for_connect(cookie, now.mono) {
            Ok((raw, record)) => (raw, record.clone()),
            Err(e) => return refusal(e),
        };
        if let (true, Some(login)) = (deny_roaming, record.login_ip) {
            if peer != Some(login) {
                return refused(CookieRefusal::Roaming { login });
            }
        }
        if max_same > 0 && self.store.active_for_user(&record.user, &raw) >= max_same as usize {
            return refused(CookieRefusal::MaxSame(max_same));
        }
        if server_full && record.attached.is_none() {
            return refused(CookieRefusal::ServerFull);
        }
        let reused = record.lease.is_some();
        let lease = match record.lease {
            Some(lease) => lease,
            None => {
                let mut seed = [0u8; 8];
                random(&mut seed);
                let request = lease_request(&record.user, ask, u64::from_le_bytes(seed));
                match self.pool.lease(&request) {
                    Ok(l) if l.v4.is_none() && l.v6.is_none() => {
                        return refused(CookieRefusal::NoFamily)
                    }
                    Ok(l) => l,
                    Err(e) => return refused(CookieRefusal::Pool(e.to_string())),
                }
            }
        };
        if let Some(r) = self.store.get_mut(&raw) {
            r.lease = Some(lease);
        }
        let replaced = self.store.attach(&raw, conn);
        match self.store.get(&raw) {
            Some(r) => SessionReply::Attached {
                session: view(r, now.mono),
                reused,
                replaced,
            },
            None => refusal(CookieError::Unknown),
        }
    }

    fn relocate(
        &mut self,
        cookie: &str,
        taken: std::net::Ipv4Addr,
        ask: &LeaseAsk,
        random: &mut dyn FnMut(&mut [u8]),
    ) -> SessionReply {
        let Some(raw) = decode_cookie(cookie).ok() else {
            return refusal(CookieError::Malformed);
        };
        let Some(record) = self.store.get(&raw) else {
            return refusal(CookieError::Unknown);
        };
        let user = record.user.clone();
        let mut lease = record.lease.unwrap_or_default();
        if lease.v4 != Some(taken) {
            return refused(CookieRefusal::Pool(format!(
                "{taken} is not the session's address"
            )));
        }
        // `taken` stays leased (to nobody) so it is not handed out again.
        let mut seed = [0u8; 8];
        random(&mut seed);
        let request = LeaseRequest {
            v6: None,
            ..lease_request(&user, ask, u64::from_le_bytes(seed))
        };
        match self.pool.lease(&request) {
            Ok(fresh) => {
                lease.v4 = fresh.v4;
                if let Some(r) = self.store.get_mut(&raw) {
                    r.lease = Some(lease);
                }
                SessionReply::Relocated(LeaseView {
                    v4: lease.v4,
                    v6: lease.v6,
                })
            }
            Err(e) => refused(CookieRefusal::Pool(e.to_string())),
        }
    }

    fn detach(
        &mut self,
        cookie: &str,
        conn: u64,
        keep: bool,
        bytes: (u64, u64),
        now: Instant,
    ) -> SessionReply {
        let Some(raw) = decode_cookie(cookie).ok() else {
            return refusal(CookieError::Malformed);
        };
        match self.store.detach(&raw, conn, keep, now, bytes) {
            Some(ended) => {
                let carried = ended.carried;
                // The tunnel ends itself at the deadline, counted in whole seconds.
                let timed_out = ended
                    .deadline
                    .is_some_and(|d| now + Duration::from_secs(2) >= d);
                let cause = if timed_out {
                    EndCause::SessionTimeout
                } else {
                    EndCause::Logout
                };
                self.release(ended, cause);
                SessionReply::Detached {
                    ended: true,
                    carried,
                }
            }
            None => SessionReply::Detached {
                ended: false,
                carried: self.store.get(&raw).map_or(bytes, |r| r.carried),
            },
        }
    }

    /// Ends the matching sessions that no connection holds (their addresses go back to the
    /// pool) and names the connections holding the others: those tunnels are told to go
    /// and end their sessions as they close, so no address is freed while still routed.
    fn end(&mut self, sid: Option<&str>, user: Option<&str>) -> SessionReply {
        let matching: Vec<([u8; COOKIE_BYTES], Option<u64>)> = self
            .store
            .iter()
            .filter(|(_, r)| {
                sid.is_some_and(|s| !s.is_empty() && r.sid.starts_with(s))
                    || user.is_some_and(|u| r.user == u)
            })
            .map(|(raw, r)| (*raw, r.attached))
            .collect();
        let mut conns = Vec::new();
        for (raw, attached) in &matching {
            match attached {
                Some(conn) => conns.push(*conn),
                None => {
                    if let Some(record) = self.store.remove(raw) {
                        self.release(record, EndCause::Admin);
                    }
                }
            }
        }
        SessionReply::Ended {
            conns,
            count: matching.len(),
        }
    }
}

/// The lease a session view carries, as the pool's type.
pub fn lease_of(view: &LeaseView) -> Lease {
    Lease {
        v4: view.v4,
        v6: view.v6,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn now(t0: Instant, secs: u64) -> Now {
        Now {
            mono: t0 + Duration::from_secs(secs),
            wall: SystemTime::now(),
        }
    }

    fn ask() -> LeaseAsk {
        LeaseAsk {
            v4: Some("10.9.0.0/24".parse().unwrap()),
            v6: None,
            predictable: true,
            explicit_v4: None,
            explicit_v6: None,
        }
    }

    fn counter() -> impl FnMut(&mut [u8]) {
        let mut n = 0u8;
        move |buf: &mut [u8]| {
            n = n.wrapping_add(1);
            buf.fill(n);
        }
    }

    fn lookup(cookie: &str, vhost: Option<&str>) -> SessionRequest {
        SessionRequest::Lookup {
            cookie: cookie.to_owned(),
            vhost: vhost.map(str::to_owned),
        }
    }

    /// A cookie is found only on the virtual host that issued it.
    #[test]
    fn a_cookie_serves_only_its_own_virtual_host() {
        let t0 = Instant::now();
        let mut rnd = counter();
        let mut s = SessionService::new(Duration::from_secs(300));
        let create = SessionRequest::Create {
            user: "bob".into(),
            group: None,
            timeout: None,
            ticket: None,
            login_ip: None,
            vhost: Some("pass2.example.com".into()),
            granted: None,
        };
        let SessionReply::Created { cookie } = s.handle(create, now(t0, 0), &mut rnd) else {
            panic!("not created")
        };
        assert!(matches!(
            s.handle(lookup(&cookie, Some("pass2.example.com")), now(t0, 1), &mut rnd),
            SessionReply::Found(SessionView { ref vhost, .. }) if vhost.as_deref() == Some("pass2.example.com")
        ));
        let other_host = SessionReply::Refused(CookieRefusal::OtherHost {
            issued_by: Some("pass2.example.com".into()),
        });
        assert_eq!(
            s.handle(lookup(&cookie, None), now(t0, 2), &mut rnd),
            other_host
        );
        assert_eq!(
            s.handle(
                lookup(&cookie, Some("pass3.example.com")),
                now(t0, 3),
                &mut rnd
            ),
            other_host
        );
    }

    fn create(s: &mut SessionService, t: Now, rnd: &mut dyn FnMut(&mut [u8])) -> String {
        let request = SessionRequest::Create {
            user: "alice".into(),
            group: None,
            timeout: None,
            ticket: None,
            login_ip: None,
            vhost: None,
            granted: None,
        };
        match s.handle(request, t, rnd) {
            SessionReply::Created { cookie } => cookie,
            other => panic!("{other:?}"),
        }
    }

    fn detach(s: &mut SessionService, cookie: &str, keep: bool, t: Now) -> SessionReply {
        let request = SessionRequest::Detach {
            cookie: cookie.into(),
            conn: 1,
            keep,
            bytes: (100, 200),
        };
        s.handle(request, t, &mut counter())
    }

    /// Accounting hears how each session ended and what it moved.
    #[test]
    fn ended_sessions_are_reported_with_their_cause_and_bytes() {
        let t0 = Instant::now();
        let mut rnd = counter();
        let mut s = SessionService::new(Duration::from_secs(300));
        // Logged out.
        let a = create(&mut s, now(t0, 0), &mut rnd);
        attach(&mut s, &a, 1, now(t0, 1), &mut rnd);
        assert!(s.take_ended().is_empty());
        detach(&mut s, &a, false, now(t0, 2));
        let ended = s.take_ended();
        assert_eq!(ended.len(), 1);
        assert_eq!(
            (ended[0].cause, ended[0].bytes),
            (EndCause::Logout, (100, 200))
        );
        assert_eq!(Some(ended[0].user.as_str()), Some("alice"));
        // Ended by occtl while no tunnel held it.
        let b = create(&mut s, now(t0, 3), &mut rnd);
        let end = SessionRequest::End {
            sid: None,
            user: Some("alice".into()),
        };
        s.handle(end, now(t0, 4), &mut rnd);
        let ended = s.take_ended();
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].cause, EndCause::Admin);
        assert!(s.sid_of(&b).is_none(), "the ended session still answers");
        // Never came back within cookie-timeout.
        let c = create(&mut s, now(t0, 5), &mut rnd);
        attach(&mut s, &c, 1, now(t0, 6), &mut rnd);
        detach(&mut s, &c, true, now(t0, 7));
        assert!(s.take_ended().is_empty());
        s.handle(lookup(&c, None), now(t0, 400), &mut rnd);
        let ended = s.take_ended();
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].cause, EndCause::Expired);
        // Its session-timeout reached: the tunnel closes and detaches for good.
        let create_timed = SessionRequest::Create {
            user: "bob".into(),
            group: None,
            timeout: Some(60),
            ticket: None,
            login_ip: None,
            vhost: None,
            granted: None,
        };
        let SessionReply::Created { cookie: d } = s.handle(create_timed, now(t0, 500), &mut rnd)
        else {
            panic!("not created")
        };
        attach(&mut s, &d, 1, now(t0, 501), &mut rnd);
        detach(&mut s, &d, false, now(t0, 559));
        assert_eq!(s.take_ended()[0].cause, EndCause::SessionTimeout);
    }

    fn attach(
        s: &mut SessionService,
        cookie: &str,
        conn: u64,
        t: Now,
        rnd: &mut dyn FnMut(&mut [u8]),
    ) -> SessionReply {
        let request = SessionRequest::Attach {
            cookie: cookie.into(),
            conn,
            max_same: 0,
            server_full: false,
            lease: ask(),
            peer: None,
            deny_roaming: false,
        };
        s.handle(request, t, rnd)
    }

    #[test]
    fn deny_roaming_holds_the_cookie_to_the_login_address() {
        let t0 = Instant::now();
        let mut rnd = counter();
        let mut s = SessionService::new(Duration::from_secs(300));
        let login: IpAddr = "198.51.100.7".parse().unwrap();
        let create = SessionRequest::Create {
            user: "alice".into(),
            group: None,
            timeout: None,
            ticket: None,
            login_ip: Some(login),
            vhost: None,
            granted: None,
        };
        let SessionReply::Created { cookie } = s.handle(create, now(t0, 0), &mut rnd) else {
            panic!("not created")
        };
        let connect = |peer: &str, deny_roaming: bool| SessionRequest::Attach {
            cookie: cookie.clone(),
            conn: 1,
            max_same: 0,
            server_full: false,
            lease: ask(),
            peer: Some(peer.parse().unwrap()),
            deny_roaming,
        };
        assert_eq!(
            s.handle(connect("203.0.113.9", true), now(t0, 1), &mut rnd),
            SessionReply::Refused(CookieRefusal::Roaming { login })
        );
        // Without deny-roaming the cookie roams; from the login address it always works.
        assert!(matches!(
            s.handle(connect("203.0.113.9", false), now(t0, 2), &mut rnd),
            SessionReply::Attached { .. }
        ));
        let SessionReply::Attached { session, .. } =
            s.handle(connect("198.51.100.7", true), now(t0, 3), &mut rnd)
        else {
            panic!("refused from the login address")
        };
        assert_eq!(session.login_ip, Some(login));
    }

    #[test]
    fn a_replaced_network_process_leaves_sessions_and_leases_for_reconnects() {
        let t0 = Instant::now();
        let mut rnd = counter();
        let mut s = SessionService::new(Duration::from_secs(300));
        let cookie = create(&mut s, now(t0, 0), &mut rnd);
        let SessionReply::Attached {
            session, reused, ..
        } = attach(&mut s, &cookie, 1, now(t0, 1), &mut rnd)
        else {
            panic!()
        };
        assert!(!reused);
        let first = session.lease.unwrap();
        // The network process dies: its connection 1 is gone.
        s.detach_all(t0 + Duration::from_secs(2));
        let SessionReply::Attached {
            session,
            reused,
            replaced,
            ..
        } = attach(&mut s, &cookie, 7, now(t0, 3), &mut rnd)
        else {
            panic!()
        };
        assert!(reused);
        assert_eq!(replaced, None);
        assert_eq!(session.lease.unwrap(), first);
        assert_eq!(s.leased(), (1, 0));
    }

    #[test]
    fn detached_sessions_expire_and_give_their_addresses_back() {
        let t0 = Instant::now();
        let mut rnd = counter();
        let mut s = SessionService::new(Duration::from_secs(300));
        let cookie = create(&mut s, now(t0, 0), &mut rnd);
        attach(&mut s, &cookie, 1, now(t0, 1), &mut rnd);
        let detach = SessionRequest::Detach {
            cookie: cookie.clone(),
            conn: 1,
            keep: true,
            bytes: (10, 20),
        };
        assert_eq!(
            s.handle(detach, now(t0, 2), &mut rnd),
            SessionReply::Detached {
                ended: false,
                carried: (10, 20)
            }
        );
        assert!(matches!(
            attach(&mut s, &cookie, 2, now(t0, 400), &mut rnd),
            SessionReply::Refused(CookieRefusal::Unknown)
        ));
        assert_eq!(s.leased(), (0, 0));
    }

    #[test]
    fn limits_and_ends() {
        let t0 = Instant::now();
        let mut rnd = counter();
        let mut s = SessionService::new(Duration::from_secs(300));
        let cookie = create(&mut s, now(t0, 0), &mut rnd);
        let full = SessionRequest::Attach {
            cookie: cookie.clone(),
            conn: 1,
            max_same: 0,
            server_full: true,
            lease: ask(),
            peer: None,
            deny_roaming: false,
        };
        assert!(matches!(
            s.handle(full, now(t0, 1), &mut rnd),
            SessionReply::Refused(CookieRefusal::ServerFull)
        ));
        attach(&mut s, &cookie, 1, now(t0, 1), &mut rnd);
        let second = create(&mut s, now(t0, 2), &mut rnd);
        let same = SessionRequest::Attach {
            cookie: second,
            conn: 2,
            max_same: 1,
            server_full: false,
            lease: ask(),
            peer: None,
            deny_roaming: false,
        };
        assert!(matches!(
            s.handle(same, now(t0, 3), &mut rnd),
            SessionReply::Refused(CookieRefusal::MaxSame(1))
        ));
        let end = SessionRequest::End {
            sid: None,
            user: Some("alice".into()),
        };
        assert_eq!(
            s.handle(end, now(t0, 4), &mut rnd),
            SessionReply::Ended {
                conns: vec![1],
                count: 2
            }
        );
        // The idle session ended at once; the held one keeps its address while its tunnel
        // is still up, and ends when that tunnel closes.
        assert_eq!(s.leased(), (1, 0));
        let closed = SessionRequest::Detach {
            cookie: cookie.clone(),
            conn: 1,
            keep: false,
            bytes: (0, 0),
        };
        s.handle(closed, now(t0, 5), &mut rnd);
        assert_eq!(s.leased(), (0, 0));
        assert!(matches!(
            s.handle(lookup(&cookie, None), now(t0, 5), &mut rnd),
            SessionReply::Refused(CookieRefusal::Unknown)
        ));
        assert!(matches!(
            s.handle(
                SessionRequest::Lookup {
                    cookie: "garbage".into(),
                    vhost: None,
                },
                now(t0, 5),
                &mut rnd
            ),
            SessionReply::Refused(CookieRefusal::Malformed)
        ));
    }
}
