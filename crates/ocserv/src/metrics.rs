//! Server metrics in Prometheus form (`metrics-listen`), and the counters `occtl show status`
//! reads. Every metric is an atomic the server updates where the event happens; the endpoint
//! only encodes them.
//!
//! Label cardinality is bounded: reasons, directions and channels are fixed sets, and the
//! per-user byte counters keep at most [`MAX_USER_SERIES`] user names (later users are
//! counted under `user="_other"`), so a flood of distinct names cannot grow the registry.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::udp::{Fate, UdpCounters};

/// Distinct user names with their own byte series.
pub const MAX_USER_SERIES: usize = 256;
const OTHER_USER: &str = "_other";

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Direction {
    /// From the client into the network.
    Rx,
    /// From the network to the client.
    Tx,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Transport {
    Tls,
    Dtls,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum AuthFailure {
    /// Wrong password (or unknown user: the two are not told apart).
    Password,
    /// Wrong or replayed one-time password.
    Otp,
    /// Any other refused login: certificate missing or untrusted, too many attempts,
    /// malformed user or group names.
    Other,
    /// A CONNECT with a cookie that is unknown, expired or terminated.
    Cookie,
    /// The login took longer than `auth-timeout`.
    Timeout,
}

impl Direction {
    fn label(self) -> &'static str {
        match self {
            Self::Rx => "rx",
            Self::Tx => "tx",
        }
    }
}

impl Transport {
    fn label(self) -> &'static str {
        match self {
            Self::Tls => "tls",
            Self::Dtls => "dtls",
        }
    }
}

impl AuthFailure {
    const ALL: [Self; 5] = [
        Self::Password,
        Self::Otp,
        Self::Other,
        Self::Cookie,
        Self::Timeout,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Otp => "otp",
            Self::Other => "other",
            Self::Cookie => "cookie",
            Self::Timeout => "timeout",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TrafficLabels {
    direction: &'static str,
    transport: &'static str,
}

impl TrafficLabels {
    fn of(direction: Direction, transport: Transport) -> Self {
        Self {
            direction: direction.label(),
            transport: transport.label(),
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UserLabels {
    user: String,
    direction: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FamilyLabels {
    family: &'static str,
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub sessions_active: Gauge,
    pub sessions_opened: Counter,
    auth_failures: Family<ReasonLabels, Counter>,
    pub bans: Counter,
    pub banned_ips: Gauge,
    bytes: Family<TrafficLabels, Counter>,
    packets: Family<TrafficLabels, Counter>,
    pub dtls_fallbacks: Counter,
    handshake: Histogram,
    leases: Family<FamilyLabels, Gauge>,
    user_bytes: Family<UserLabels, Counter>,
    users_seen: Mutex<HashSet<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Pre-resolved counters for one tunnel's packet loop (no label lookups per packet), and
/// the tunnel's own byte counts, which occtl and the disconnect script read.
#[derive(Debug, Clone)]
pub struct TunnelMeters {
    bytes: [Counter; 4],
    packets: [Counter; 4],
    user_rx: Counter,
    user_tx: Counter,
    tunnel_rx: Counter,
    tunnel_tx: Counter,
}

fn slot(direction: Direction, transport: Transport) -> usize {
    match (direction, transport) {
        (Direction::Rx, Transport::Tls) => 0,
        (Direction::Rx, Transport::Dtls) => 1,
        (Direction::Tx, Transport::Tls) => 2,
        (Direction::Tx, Transport::Dtls) => 3,
    }
}

impl TunnelMeters {
    /// Counts one packet of `len` bytes.
    pub fn count(&self, direction: Direction, transport: Transport, len: usize) {
        let i = slot(direction, transport);
        let len = len as u64;
        if let (Some(b), Some(p)) = (self.bytes.get(i), self.packets.get(i)) {
            b.inc_by(len);
            p.inc();
        }
        match direction {
            Direction::Rx => {
                self.user_rx.inc_by(len);
                self.tunnel_rx.inc_by(len)
            }
            Direction::Tx => {
                self.user_tx.inc_by(len);
                self.tunnel_tx.inc_by(len)
            }
        };
    }

    /// Bytes this tunnel received from its client.
    pub fn rx(&self) -> u64 {
        self.tunnel_rx.get()
    }

    /// Bytes this tunnel sent to its client.
    pub fn tx(&self) -> u64 {
        self.tunnel_tx.get()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ocserv");
        let sessions_active = Gauge::default();
        let sessions_opened = Counter::default();
        let auth_failures = Family::<ReasonLabels, Counter>::default();
        let bans = Counter::default();
        let banned_ips = Gauge::default();
        let bytes = Family::<TrafficLabels, Counter>::default();
        let packets = Family::<TrafficLabels, Counter>::default();
        let dtls_fallbacks = Counter::default();
        // 1 ms .. about 8 s.
        let handshake = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let leases = Family::<FamilyLabels, Gauge>::default();
        let user_bytes = Family::<UserLabels, Counter>::default();
        registry.register(
            "sessions_active",
            "Tunnels connected now",
            sessions_active.clone(),
        );
        registry.register(
            "sessions",
            "Tunnels opened since start (reconnects included)",
            sessions_opened.clone(),
        );
        registry.register(
            "auth_failures",
            "Refused logins and tunnel requests, by reason",
            auth_failures.clone(),
        );
        registry.register(
            "bans",
            "Addresses banned since start (max-ban-score reached)",
            bans.clone(),
        );
        registry.register("banned_ips", "Addresses banned now", banned_ips.clone());
        registry.register(
            "bytes",
            "Tunnelled IP bytes, rx = from clients, tx = to clients, by transport",
            bytes.clone(),
        );
        registry.register(
            "packets",
            "Tunnelled IP packets, rx = from clients, tx = to clients, by transport",
            packets.clone(),
        );
        registry.register(
            "dtls_fallbacks",
            "Times a tunnel's DTLS channel went quiet and data moved to TLS",
            dtls_fallbacks.clone(),
        );
        registry.register(
            "tls_handshake_seconds",
            "Duration of TLS handshakes with clients",
            handshake.clone(),
        );
        registry.register(
            "pool_leases",
            "Addresses leased from the pools now, by family",
            leases.clone(),
        );
        registry.register(
            "user_bytes",
            format!(
                "Tunnelled bytes per user (the first {MAX_USER_SERIES} names; later ones as \
                 user=\"{OTHER_USER}\")"
            ),
            user_bytes.clone(),
        );
        Self {
            registry,
            sessions_active,
            sessions_opened,
            auth_failures,
            bans,
            banned_ips,
            bytes,
            packets,
            dtls_fallbacks,
            handshake,
            leases,
            user_bytes,
            users_seen: Mutex::new(HashSet::new()),
        }
    }

    pub fn auth_failed(&self, reason: AuthFailure) {
        self.auth_failures
            .get_or_create(&ReasonLabels {
                reason: reason.label(),
            })
            .inc();
    }

    pub fn auth_failures(&self, reason: AuthFailure) -> u64 {
        self.auth_failures
            .get_or_create(&ReasonLabels {
                reason: reason.label(),
            })
            .get()
    }

    pub fn auth_failures_total(&self) -> u64 {
        AuthFailure::ALL
            .into_iter()
            .map(|r| self.auth_failures(r))
            .sum()
    }

    pub fn handshake_took(&self, took: Duration) {
        self.handshake.observe(took.as_secs_f64());
    }

    pub fn set_leases(&self, ipv4: usize, ipv6: usize) {
        for (family, n) in [("ipv4", ipv4), ("ipv6", ipv6)] {
            self.leases
                .get_or_create(&FamilyLabels { family })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Total tunnelled bytes in one direction (both transports).
    pub fn bytes(&self, direction: Direction) -> u64 {
        [Transport::Tls, Transport::Dtls]
            .into_iter()
            .map(|transport| {
                self.bytes
                    .get_or_create(&TrafficLabels::of(direction, transport))
                    .get()
            })
            .sum()
    }

    /// Counters for one tunnel of `user`.
    pub fn tunnel_meters(&self, user: &str) -> TunnelMeters {
        let label = {
            let mut seen = crate::server::lock(&self.users_seen);
            if seen.contains(user) || seen.len() < MAX_USER_SERIES {
                seen.insert(user.to_string());
                user
            } else {
                OTHER_USER
            }
        };
        let traffic = |family: &Family<TrafficLabels, Counter>| {
            [
                (Direction::Rx, Transport::Tls),
                (Direction::Rx, Transport::Dtls),
                (Direction::Tx, Transport::Tls),
                (Direction::Tx, Transport::Dtls),
            ]
            .map(|(direction, transport)| {
                family
                    .get_or_create(&TrafficLabels::of(direction, transport))
                    .clone()
            })
        };
        let user_counter = |direction| {
            self.user_bytes
                .get_or_create(&UserLabels {
                    user: label.to_string(),
                    direction: Direction::label(direction),
                })
                .clone()
        };
        TunnelMeters {
            bytes: traffic(&self.bytes),
            packets: traffic(&self.packets),
            user_rx: user_counter(Direction::Rx),
            user_tx: user_counter(Direction::Tx),
            // Not registered: read through the tunnel's handle only.
            tunnel_rx: Counter::default(),
            tunnel_tx: Counter::default(),
        }
    }

    /// Exposes the shared UDP port's datagram counters (delivered, and dropped by reason).
    pub fn watch_udp(&mut self, counters: Arc<UdpCounters>) {
        self.registry
            .register_collector(Box::new(UdpCollector(counters)));
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Reads the UDP dispatcher's counters at scrape time (they are counted there, per
/// datagram, without allocation).
#[derive(Debug)]
struct UdpCollector(Arc<UdpCounters>);

impl Collector for UdpCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.snapshot();
        let mut metric = encoder.encode_descriptor(
            "udp_datagrams",
            "Datagrams on the DTLS port: delivered to a tunnel, or dropped and why",
            None,
            MetricType::Counter,
        )?;
        for fate in Fate::ALL {
            let labels = [("fate", fate.label())];
            ConstCounter::new(s.get(fate)).encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_in_the_exposition() {
        let m = Metrics::new();
        m.sessions_opened.inc();
        m.sessions_active.set(1);
        m.auth_failed(AuthFailure::Password);
        m.auth_failed(AuthFailure::Password);
        m.auth_failed(AuthFailure::Otp);
        let t = m.tunnel_meters("alice");
        t.count(Direction::Rx, Transport::Dtls, 100);
        t.count(Direction::Tx, Transport::Tls, 40);
        m.handshake_took(Duration::from_millis(3));
        m.set_leases(2, 0);
        let text = m.encode();
        for line in [
            "ocserv_sessions_total 1",
            "ocserv_sessions_active 1",
            "ocserv_auth_failures_total{reason=\"password\"} 2",
            "ocserv_auth_failures_total{reason=\"otp\"} 1",
            "ocserv_bytes_total{direction=\"rx\",transport=\"dtls\"} 100",
            "ocserv_packets_total{direction=\"tx\",transport=\"tls\"} 1",
            "ocserv_user_bytes_total{user=\"alice\",direction=\"rx\"} 100",
            "ocserv_pool_leases{family=\"ipv4\"} 2",
            "ocserv_tls_handshake_seconds_count 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
        let mut with_udp = Metrics::new();
        let udp = Arc::new(UdpCounters::default());
        udp.count(Fate::Unmatched);
        udp.count(Fate::Unmatched);
        udp.count(Fate::Delivered);
        with_udp.watch_udp(udp);
        let text = with_udp.encode();
        assert!(
            text.contains("ocserv_udp_datagrams_total{fate=\"unmatched\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("ocserv_udp_datagrams_total{fate=\"delivered\"} 1"),
            "{text}"
        );
        assert_eq!(m.auth_failures_total(), 3);
        assert_eq!(m.bytes(Direction::Rx), 100);
    }

    /// Every fate of a UDP datagram has its series, with its exact count, zeros included
    /// (a scrape before any datagram must read 0, not a missing series).
    #[test]
    fn every_udp_fate_is_exposed_exactly() {
        let mut m = Metrics::new();
        let udp = Arc::new(UdpCounters::default());
        m.watch_udp(udp.clone());
        for fate in Fate::ALL {
            let line = format!(
                "ocserv_udp_datagrams_total{{fate=\"{}\"}} 0\n",
                fate.label()
            );
            assert!(m.encode().contains(&line), "{line}");
        }
        udp.count_n(Fate::TooShort, 3);
        udp.count_n(Fate::Oversized, 1);
        udp.count_n(Fate::QueueFull, 70_000);
        let text = m.encode();
        for (fate, n) in [
            ("delivered", 0),
            ("too_short", 3),
            ("oversized", 1),
            ("unmatched", 0),
            ("queue_full", 70_000),
        ] {
            let line = format!("ocserv_udp_datagrams_total{{fate=\"{fate}\"}} {n}\n");
            assert!(text.contains(&line), "{line} missing from:\n{text}");
        }
    }

    #[test]
    fn user_series_are_bounded() {
        let m = Metrics::new();
        for i in 0..MAX_USER_SERIES + 50 {
            m.tunnel_meters(&format!("user{i}"))
                .count(Direction::Rx, Transport::Tls, 1);
        }
        // A known user keeps its series.
        m.tunnel_meters("user0")
            .count(Direction::Rx, Transport::Tls, 1);
        let text = m.encode();
        let series = text
            .lines()
            .filter(|l| l.starts_with("ocserv_user_bytes_total{") && l.contains("\"rx\""))
            .count();
        assert_eq!(series, MAX_USER_SERIES + 1);
        assert!(text.contains("ocserv_user_bytes_total{user=\"_other\",direction=\"rx\"} 50"));
        assert!(text.contains("ocserv_user_bytes_total{user=\"user0\",direction=\"rx\"} 2"));
    }
}
