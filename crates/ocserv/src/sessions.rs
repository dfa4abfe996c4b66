//! Authenticated sessions and their cookies, on an injected clock.
//!
//! A successful login creates a session whose cookie (32 random bytes, base64 like ocserv's)
//! lets the client open tunnels. The session outlives each tunnel: while no connection
//! holds it, it stays usable for `cookie-timeout` seconds so a client can reconnect and
//! keep its addresses. A user's own logout (DISCONNECT 0xb0) or an admin kick ends it at
//! once, unless `persistent-cookies` keeps logouts reusable until the normal expiry.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use oc_proto::ipc::Granted;
use thiserror::Error;

use crate::pool::Lease;

pub const COOKIE_BYTES: usize = 32;

/// Why a cookie was not accepted for a tunnel.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CookieError {
    #[error("cookie is not a base64 encoding of {COOKIE_BYTES} bytes")]
    Malformed,
    #[error("no session has this cookie (unknown, logged out or expired)")]
    Unknown,
    #[error("the session's lifetime (session-timeout) is over")]
    SessionTimeout,
}

/// One authenticated session.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// Small number shown to admins (occtl's ID).
    pub id: u64,
    /// Public name of the session for occtl (`show session`, `terminate session`): hex of
    /// a hash of the cookie, so it reveals nothing usable.
    pub sid: String,
    pub user: String,
    pub group: Option<String>,
    /// The address the user logged in from (`deny-roaming` holds the cookie to it).
    pub login_ip: Option<IpAddr>,
    /// The virtual host logged in to (`None`: the default one).
    pub vhost: Option<String>,
    pub created: Instant,
    pub created_wall: SystemTime,
    /// Connection currently holding the session.
    pub attached: Option<u64>,
    /// When an unattached session stops being usable.
    pub expires: Instant,
    /// Absolute end of the session (`session-timeout`), if any.
    pub deadline: Option<Instant>,
    pub lease: Option<Lease>,
    /// Bytes (from the client, to the client) moved by this session's earlier connections,
    /// so accounting survives reconnects.
    pub carried: (u64, u64),
    /// What the login's back end granted (RADIUS).
    pub granted: Option<Box<Granted>>,
}

/// Who a new session is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub user: String,
    pub group: Option<String>,
    pub login_ip: Option<IpAddr>,
    pub vhost: Option<String>,
    pub granted: Option<Box<Granted>>,
}

#[cfg(test)]
impl Owner {
    pub fn new(user: &str, group: Option<&str>) -> Self {
        Self {
            user: user.to_owned(),
            group: group.map(str::to_owned),
            login_ip: None,
            vhost: None,
            granted: None,
        }
    }
}

#[derive(Debug)]
pub struct SessionStore {
    sessions: HashMap<[u8; COOKIE_BYTES], SessionRecord>,
    next_id: u64,
    cookie_timeout: Duration,
}

/// A cookie's public id: 16 hex digits of its SHA-256.
pub fn public_id(raw: &[u8; COOKIE_BYTES]) -> String {
    openssl::sha::sha256(raw)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Encodes a cookie the way it travels in `Set-Cookie: webvpn=...`.
pub fn encode_cookie(raw: &[u8; COOKIE_BYTES]) -> String {
    base64::engine::general_purpose::STANDARD.encode(raw)
}

pub fn decode_cookie(text: &str) -> Result<[u8; COOKIE_BYTES], CookieError> {
    if text.len() > 64 {
        return Err(CookieError::Malformed);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| CookieError::Malformed)?;
    bytes.try_into().map_err(|_| CookieError::Malformed)
}

impl SessionStore {
    pub fn new(cookie_timeout: Duration) -> Self {
        Self {
            sessions: HashMap::new(),
            next_id: 1,
            cookie_timeout,
        }
    }

    /// Applies a reloaded `cookie-timeout` to future expiries.
    pub fn set_cookie_timeout(&mut self, timeout: Duration) {
        self.cookie_timeout = timeout;
    }

    /// Creates a session after a successful login; `raw` is fresh randomness.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &mut self,
        raw: [u8; COOKIE_BYTES],
        owner: Owner,
        session_timeout: Option<Duration>,
        now: Instant,
        wall: SystemTime,
    ) -> String {
        let id = self.next_id;
        self.next_id += 1;
        self.sessions.insert(
            raw,
            SessionRecord {
                id,
                sid: public_id(&raw),
                user: owner.user,
                group: owner.group,
                login_ip: owner.login_ip,
                vhost: owner.vhost,
                created: now,
                created_wall: wall,
                attached: None,
                expires: now + self.cookie_timeout,
                deadline: session_timeout.map(|t| now + t),
                lease: None,
                carried: (0, 0),
                granted: owner.granted,
            },
        );
        encode_cookie(&raw)
    }

    /// Finds the live session for a CONNECT.
    pub fn get_for_connect(
        &mut self,
        cookie: &str,
        now: Instant,
    ) -> Result<([u8; COOKIE_BYTES], &mut SessionRecord), CookieError> {
        let raw = decode_cookie(cookie)?;
        let record = self.sessions.get_mut(&raw).ok_or(CookieError::Unknown)?;
        if record.deadline.is_some_and(|d| now >= d) {
            return Err(CookieError::SessionTimeout);
        }
        if record.attached.is_none() && now >= record.expires {
            return Err(CookieError::Unknown);
        }
        Ok((raw, record))
    }

    pub fn get(&self, raw: &[u8; COOKIE_BYTES]) -> Option<&SessionRecord> {
        self.sessions.get(raw)
    }

    pub fn get_mut(&mut self, raw: &[u8; COOKIE_BYTES]) -> Option<&mut SessionRecord> {
        self.sessions.get_mut(raw)
    }

    /// Marks connection `conn` as the holder; returns the connection it replaces, which the
    /// caller closes (a reconnect takes over the session and its addresses).
    pub fn attach(&mut self, raw: &[u8; COOKIE_BYTES], conn: u64) -> Option<u64> {
        let record = self.sessions.get_mut(raw)?;
        record.attached.replace(conn).filter(|old| *old != conn)
    }

    /// Connection `conn` ended after moving `bytes` (in, out), which are added to the
    /// session's totals. With `keep` the session waits `cookie-timeout` for a reconnect;
    /// otherwise it ends now. Returns the record when it ended (so the caller releases its
    /// lease). A connection that was already replaced only adds its bytes.
    pub fn detach(
        &mut self,
        raw: &[u8; COOKIE_BYTES],
        conn: u64,
        keep: bool,
        now: Instant,
        bytes: (u64, u64),
    ) -> Option<SessionRecord> {
        let record = self.sessions.get_mut(raw)?;
        record.carried.0 = record.carried.0.saturating_add(bytes.0);
        record.carried.1 = record.carried.1.saturating_add(bytes.1);
        if record.attached != Some(conn) {
            return None;
        }
        record.attached = None;
        if keep {
            record.expires = now + self.cookie_timeout;
            None
        } else {
            self.sessions.remove(raw)
        }
    }

    /// Drops unattached sessions whose cookie expired and returns them.
    pub fn expire(&mut self, now: Instant) -> Vec<SessionRecord> {
        let dead: Vec<_> = self
            .sessions
            .iter()
            .filter(|(_, r)| {
                r.attached.is_none() && (now >= r.expires || r.deadline.is_some_and(|d| now >= d))
            })
            .map(|(k, _)| *k)
            .collect();
        dead.iter()
            .filter_map(|k| self.sessions.remove(k))
            .collect()
    }

    /// Every session, with its cookie.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8; COOKIE_BYTES], &SessionRecord)> {
        self.sessions.iter()
    }

    /// Ends a session at once (occtl's `terminate session`): its cookie stops working.
    pub fn remove(&mut self, raw: &[u8; COOKIE_BYTES]) -> Option<SessionRecord> {
        self.sessions.remove(raw)
    }

    /// Sessions of `user` holding a connection, other than `except`.
    pub fn active_for_user(&self, user: &str, except: &[u8; COOKIE_BYTES]) -> usize {
        self.sessions
            .iter()
            .filter(|(k, r)| *k != except && r.user == user && r.attached.is_some())
            .count()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn store() -> (SessionStore, Instant) {
        (SessionStore::new(Duration::from_secs(300)), Instant::now())
    }

    #[test]
    fn cookie_shape_matches_ocserv() {
        let text = encode_cookie(&[7; COOKIE_BYTES]);
        assert_eq!(text.len(), 44);
        assert!(text.ends_with('='));
        assert_eq!(decode_cookie(&text).unwrap(), [7; COOKIE_BYTES]);
        assert_eq!(decode_cookie("abc"), Err(CookieError::Malformed));
        assert_eq!(decode_cookie(&"A".repeat(500)), Err(CookieError::Malformed));
    }

    #[test]
    fn unused_cookie_expires_after_timeout() {
        let (mut s, t0) = store();
        let cookie = s.create(
            [1; 32],
            Owner::new("alice", None),
            None,
            t0,
            SystemTime::now(),
        );
        assert!(s.get_for_connect(&cookie, t0 + 4 * MIN).is_ok());
        assert_eq!(
            s.get_for_connect(&cookie, t0 + 5 * MIN).unwrap_err(),
            CookieError::Unknown
        );
        assert_eq!(s.expire(t0 + 5 * MIN).len(), 1);
        assert!(s.get(&decode_cookie(&cookie).unwrap()).is_none());
    }

    #[test]
    fn reconnect_within_timeout_and_logout_invalidates() {
        let (mut s, t0) = store();
        let cookie = s.create(
            [2; 32],
            Owner::new("alice", Some("staff")),
            None,
            t0,
            SystemTime::now(),
        );
        let raw = decode_cookie(&cookie).unwrap();
        assert_eq!(s.attach(&raw, 10), None);
        // Attached sessions never expire by cookie timeout.
        assert!(s.expire(t0 + 60 * MIN).is_empty());
        // Connection dropped without logout: reusable for cookie-timeout.
        assert!(s
            .detach(&raw, 10, true, t0 + 60 * MIN, (100, 200))
            .is_none());
        assert!(s.get_for_connect(&cookie, t0 + 64 * MIN).is_ok());
        assert_eq!(s.attach(&raw, 11), None);
        // A second connection takes over; the first one's end only adds its bytes.
        assert_eq!(s.attach(&raw, 12), Some(11));
        assert!(s.detach(&raw, 11, false, t0 + 65 * MIN, (10, 20)).is_none());
        assert_eq!(s.active_for_user("alice", &[0; 32]), 1);
        // User logout ends it; its bytes are those of all three connections.
        let ended = s.detach(&raw, 12, false, t0 + 66 * MIN, (1, 2)).unwrap();
        assert_eq!(ended.group.as_deref(), Some("staff"));
        assert_eq!(ended.carried, (111, 222));
        assert_eq!(
            s.get_for_connect(&cookie, t0 + 66 * MIN).unwrap_err(),
            CookieError::Unknown
        );
    }

    #[test]
    fn session_timeout_is_absolute() {
        let (mut s, t0) = store();
        let cookie = s.create(
            [3; 32],
            Owner::new("bob", None),
            Some(10 * MIN),
            t0,
            SystemTime::now(),
        );
        let raw = decode_cookie(&cookie).unwrap();
        s.attach(&raw, 1);
        s.detach(&raw, 1, true, t0 + 9 * MIN, (0, 0));
        assert_eq!(
            s.get_for_connect(&cookie, t0 + 10 * MIN).unwrap_err(),
            CookieError::SessionTimeout
        );
        assert_eq!(s.expire(t0 + 10 * MIN).len(), 1);
    }
}
