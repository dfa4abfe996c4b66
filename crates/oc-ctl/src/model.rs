//! Plain data the server fills in and the control protocol carries.
//!
//! Nothing here does I/O or reads a clock: times are unix seconds supplied by
//! the server, counters are whatever the server counted. All structs use
//! `#[serde(default)]` so a peer that omits a field (an older build of the
//! same protocol version) still decodes.
//!
//! Field meanings follow what ocserv's `occtl` prints; where ocserv's
//! multi-process design has no direct equivalent in a single-process server
//! the field documentation says what to put there.

use serde::{Deserialize, Serialize};

/// State strings ocserv prints (its `ps_status_to_str`). Use these for
/// [`UserInfo::state`] and [`SessionInfo::state`].
pub mod state {
    /// A tunnel that is up (`show users`, `show user`).
    pub const CONNECTED: &str = "connected";
    /// A session whose authentication completed (`show sessions`). Only
    /// sessions in this state are listed by `show sessions valid`.
    pub const AUTHENTICATED: &str = "authenticated";
    /// Authentication in progress.
    pub const AUTHENTICATING: &str = "authenticating";
    /// Session created, no credentials checked yet.
    pub const PRE_AUTH: &str = "pre-auth";
    /// Authentication failed.
    pub const AUTH_FAILED: &str = "auth failed";
    /// Anything else.
    pub const UNKNOWN: &str = "unknown";
}

/// One connected tunnel (one line of `show users`, one block of
/// `show user NAME` / `show id ID`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserInfo {
    /// Connection id. ocserv uses the worker's pid; any unique non-zero
    /// number works (`disconnect id` / `show id` refer to it).
    pub id: u64,
    /// Authenticated user name; empty prints as `(none)`.
    pub username: String,
    /// Group; empty prints as `(none)`.
    pub groupname: String,
    /// Usually [`state::CONNECTED`].
    pub state: String,
    /// Virtual host name; ocserv prints `default` for the default vhost.
    pub vhost: String,
    /// Tun device name, e.g. `vpns0`.
    pub device: String,
    /// Tunnel MTU when known.
    pub mtu: Option<u32>,
    /// The client's public address as text (ocserv: `Remote IP`, table column
    /// `ip`).
    pub remote_ip: String,
    /// The server address the client connected to (`Local Device IP`).
    pub local_device_ip: String,
    /// The client's address inside the VPN (ocserv: `IPv4`, table column
    /// `vpn-ip`).
    pub ipv4: Option<String>,
    /// The server side of the point-to-point link (`P-t-P IPv4`). ocserv
    /// prints the IPv4 pair only when both are set.
    pub ptp_ipv4: Option<String>,
    /// The client's IPv6 address inside the VPN (`IPv6`).
    pub ipv6: Option<String>,
    /// Server side of the IPv6 link (`P-t-P IPv6`); printed only with `ipv6`.
    pub ptp_ipv6: Option<String>,
    /// The client's User-Agent header.
    pub user_agent: String,
    /// Bytes received from the client (ocserv reads the tun device's RX
    /// counter, which is traffic coming from the client).
    pub rx_bytes: u64,
    /// Bytes sent to the client.
    pub tx_bytes: u64,
    /// Configured receive rate limit in bytes per second; 0 = none
    /// (`Limit RX`).
    pub rx_limit_per_sec: u64,
    /// Configured transmit rate limit in bytes per second; 0 = none
    /// (`Limit TX`).
    pub tx_limit_per_sec: u64,
    /// Dead peer detection interval, seconds.
    pub dpd: u32,
    /// Keepalive interval, seconds.
    pub keepalive: u32,
    /// Client-supplied hostname (X-CSTP-Hostname); empty = not printed.
    pub hostname: String,
    /// Unix seconds when this connection (tunnel) was established
    /// (`Last connected at`, table column `since`).
    pub connected_at: u64,
    /// Unix seconds of the session's first login; differs from
    /// `connected_at` after reconnects (`Session started at`).
    pub session_started_at: u64,
    /// Full session id text. ocserv shows a 27-character base64 "safe id"
    /// derived from the session id; any printable, non-secret id works.
    pub full_session: String,
    /// Short session id as `show sessions` prints it (ocserv: first 6
    /// characters of `full_session`).
    pub session: String,
    /// TLS description, e.g. `(TLS1.3)-(ECDHE-SECP256R1)-(RSA-PSS-RSAE-SHA256)-(AES-256-GCM)`.
    pub tls_ciphersuite: String,
    /// DTLS description as the TLS library names it, e.g.
    /// `(DTLS1.2)-(PSK)-(AES-256-GCM)`. Empty or `(no-dtls)` when no DTLS
    /// channel is up; `show user` then omits the line and the `show users`
    /// table prints `(no-dtls)`.
    pub dtls_cipher: String,
    /// CSTP compression method name, e.g. `lzs`.
    pub cstp_compression: Option<String>,
    /// DTLS compression method name.
    pub dtls_compression: Option<String>,
    /// DNS servers pushed to the client.
    pub dns: Vec<String>,
    /// NBNS servers pushed to the client.
    pub nbns: Vec<String>,
    /// Split-DNS domains.
    pub split_dns: Vec<String>,
    /// Routes pushed to the client. Leave empty and set `default_route` for
    /// a full tunnel: ocserv then prints `defaultroute`.
    pub routes: Vec<String>,
    /// Whether the client gets the default route (see `routes`).
    pub default_route: bool,
    /// Excluded routes.
    pub no_routes: Vec<String>,
    /// Networks behind this client (`iroute`).
    pub iroutes: Vec<String>,
    /// restrict-user-to-routes in effect.
    pub restricted_to_routes: bool,
    /// restrict-user-to-ports entries, preformatted as ocserv prints them:
    /// `tcp(443)`, `udp()`, `!icmp()`.
    pub restricted_to_ports: Vec<String>,
}

impl UserInfo {
    /// The address ocserv shows as `vpn-ip`: the IPv4 VPN address, else the
    /// IPv6 one, else empty.
    pub fn vpn_ip(&self) -> &str {
        match (&self.ipv4, &self.ipv6) {
            (Some(v4), _) if !v4.is_empty() => v4,
            (_, Some(v6)) => v6,
            _ => "",
        }
    }
}

/// Server-wide status and statistics (`show status`).
///
/// ocserv splits the work between a main process and several `sec-mod`
/// processes; a single-process server fills the sec-mod fields with its own
/// equivalents as documented on each field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerStatus {
    /// The server's pid.
    pub server_pid: u32,
    /// ocserv: pid of the first sec-mod process. Single-process server: its
    /// own pid (the same process does the security-module work).
    pub sec_mod_pid: u32,
    /// ocserv: number of sec-mod processes. Single-process server: 1.
    pub sec_mod_instances: u32,
    /// Unix seconds when the server started.
    pub up_since: u64,
    /// Tunnels currently up.
    pub active_sessions: u64,
    /// Sessions closed since start (ocserv counts closed sessions here).
    pub total_sessions: u64,
    /// Authentication failures since start.
    pub total_auth_failures: u64,
    /// Addresses currently banned.
    pub ips_in_ban_list: u64,
    /// ocserv (`--debug` only): sessions known to sec-mod. Single-process
    /// server: number of stored sessions/cookies.
    pub secmod_client_entries: u64,
    /// ocserv (`--debug` only): TLS session-resumption cache entries.
    pub tls_db_entries: u64,
    /// Median processing latency in microseconds, if measured (ocserv prints
    /// it only in latency-capture builds).
    pub latency_median_us: Option<u64>,
    /// Standard deviation of the latency in microseconds, if measured.
    pub latency_stdev_us: Option<u64>,
    /// Unix seconds of the last statistics reset; 0 = never (not printed).
    pub last_stats_reset: u64,
    /// Sessions closed in the current period.
    pub sessions_handled: u64,
    /// Sessions closed by session timeout in the current period.
    pub timed_out_sessions: u64,
    /// Sessions closed by idle timeout in the current period.
    pub timed_out_idle_sessions: u64,
    /// Sessions closed by errors in the current period.
    pub closed_due_to_error_sessions: u64,
    /// Authentication failures in the current period.
    pub auth_failures: u64,
    /// Average authentication time, seconds.
    pub avg_auth_time: u64,
    /// Longest authentication time, seconds.
    pub max_auth_time: u64,
    /// Average session duration, seconds (ocserv keeps minutes and
    /// multiplies by 60).
    pub avg_session_time: u64,
    /// Longest session duration, seconds.
    pub max_session_time: u64,
    /// Smallest tunnel MTU seen in the period.
    pub min_mtu: Option<u32>,
    /// Largest tunnel MTU seen in the period.
    pub max_mtu: Option<u32>,
    /// Bytes received from clients in the period (ocserv keeps kilobytes and
    /// multiplies by 1000).
    pub rx_bytes: u64,
    /// Bytes sent to clients in the period.
    pub tx_bytes: u64,
}

/// A session ("cookie"), for `show sessions all|valid` and `show session SID`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionInfo {
    /// Short session id (ocserv: first 6 characters of `full_session`).
    /// `show session SID` matches SID as a prefix of this.
    pub session: String,
    /// Full session id text (ocserv: 27-character base64 safe id).
    pub full_session: String,
    /// User name; empty prints as `(none)`.
    pub username: String,
    /// Group name; empty prints as `(none)`.
    pub groupname: String,
    /// Virtual host.
    pub vhost: String,
    /// Unix seconds of creation; 0 = unknown (not printed).
    pub created: u64,
    /// Unix seconds of expiry; 0 = none/unknown (not printed).
    pub expires: u64,
    /// One of the [`state`] strings; `authenticated` for a usable session.
    pub state: String,
    /// Client's public address.
    pub remote_ip: String,
    /// Client's User-Agent.
    pub user_agent: String,
    /// Number of tunnels currently using the session (`In use`).
    pub in_use: u32,
    /// Whether the session has been opened by a tunnel at least once
    /// (ocserv: `Activated` / `session_is_open`).
    pub session_is_open: bool,
    /// Whether a client certificate was verified (`Certificate auth` /
    /// `tls_auth_ok`).
    pub tls_auth_ok: bool,
}

impl SessionInfo {
    /// Whether `show sessions valid` lists this session (ocserv: the
    /// session's authentication completed).
    pub fn is_valid(&self) -> bool {
        self.state == state::AUTHENTICATED
    }

    /// Whether `show session QUERY` selects this session: ocserv compares
    /// QUERY as a prefix of the 6-character short id, so at most 6
    /// characters can match. An empty query matches nothing.
    pub fn matches(&self, query: &str) -> bool {
        session_id_matches(&self.session, query)
    }
}

/// ocserv's `show session` matching rule: `query` must be a non-empty prefix
/// of the short id truncated to 6 bytes (queries longer than that never
/// match).
pub fn session_id_matches(short_id: &str, query: &str) -> bool {
    let sid = short_id.as_bytes();
    let sid = &sid[..sid.len().min(6)];
    !query.is_empty() && sid.starts_with(query.as_bytes())
}

/// One entry of the ban database (`show ip bans`, `show ip ban points`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BanInfo {
    /// The address as text.
    pub ip: String,
    /// Accumulated ban score.
    pub score: u32,
    /// Unix seconds until which the address is banned; `None` if it only has
    /// points (then `show ip bans` skips it, `show ip ban points` lists it).
    pub banned_until: Option<u64>,
}

/// Routes a connected client provides (`show iroutes`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IrouteInfo {
    /// Connection id (as in [`UserInfo::id`]).
    pub id: u64,
    /// User name; empty prints as `(none)`.
    pub user: String,
    /// Virtual host.
    pub vhost: String,
    /// Tun device.
    pub device: String,
    /// The client's VPN address (ocserv: `vpn-ip`).
    pub ip: String,
    /// Networks behind the client.
    pub iroutes: Vec<String>,
}

impl IrouteInfo {
    /// Builds the entry ocserv derives from a user's info.
    pub fn from_user(user: &UserInfo) -> Self {
        IrouteInfo {
            id: user.id,
            user: user.username.clone(),
            vhost: user.vhost.clone(),
            device: user.device.clone(),
            ip: user.vpn_ip().to_string(),
            iroutes: user.iroutes.clone(),
        }
    }
}

/// A connect or disconnect notification for `show events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A tunnel came up.
    Connect {
        /// The new connection.
        user: UserInfo,
    },
    /// A tunnel went down.
    Disconnect {
        /// The connection as it was (counters final).
        user: UserInfo,
        /// Why, e.g. `user disconnected`, `idle timeout`. ocserv prints
        /// `unknown` when empty.
        reason: String,
    },
}

impl Event {
    /// The connection this event is about.
    pub fn user(&self) -> &UserInfo {
        match self {
            Event::Connect { user } | Event::Disconnect { user, .. } => user,
        }
    }
}
