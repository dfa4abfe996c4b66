//! A running tunnel: the loop between the client's TLS stream (and DTLS channel), the
//! packets the tun reader queued for it, its kick signal and its session's timers; the
//! packet filter on the way in; how the tunnel ended.

use std::net::{IpAddr, Ipv4Addr};
use std::ops::ControlFlow;
use std::pin::Pin;
use std::time::{Duration, Instant};

use ipnet::{IpNet, Ipv6Net};
use oc_net::TunWriter;
use oc_proto::anyconnect::frame::CSTP_HEADER_LEN;
use oc_proto::anyconnect::server_session::{ServerEvent, ServerSession};
use oc_proto::anyconnect::session::Channel;
use oc_proto::anyconnect::tunnel_plan::RouteRestriction;
use oc_tls::TlsStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Sleep;
use tracing::{debug, info, Instrument};

use super::reply::{write_limited, GOODBYE_LIMIT};
use super::{Kick, Server};
use crate::metrics::{Direction, Transport, TunnelMeters};
use crate::packets::PacketBatch;
use crate::udp::{self, Datagram, TunnelDtls};
use oc_proto::ip::{destination, source};
use oc_proto::ipc::{SessionReply, SessionRequest};
use oc_proto::port_filter::PortRules;
use oc_proto::rate_limit::RateLimit;
use oc_tls::Renegotiations;

/// Bytes read from TLS at once: one TLS record holds at most 16 KiB of plaintext, so a
/// larger buffer would only cost memory in every session (frames spanning reads are
/// reassembled by the decoder).
const READ_BUF: usize = 16 * 1024;
/// A client that accepts no data for this long is gone: the write is abandoned, so a
/// stalled peer cannot freeze its tunnel's timers or hold its slot (ocserv's socket
/// timeout; its test-cstp-send-hang wants a frozen client gone within 20 s).
const WRITE_LIMIT: Duration = Duration::from_secs(10);
/// Queued packets sent per wake-up before the task looks at its other inputs again.
const MAX_BATCH: usize = 64;
/// How long the loop sleeps when nothing has a deadline.
const NO_DEADLINE: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum End {
    UserLogout,
    /// `session-timeout`: the session and its cookie end.
    SessionOver,
    Kicked(Kick),
    /// Connection lost or broken: the client may come back with its cookie.
    #[default]
    Lost,
}

/// How a tunnel ended, for occtl's session statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum ClosedAs {
    #[default]
    Normal,
    /// DPD or session timeout.
    TimedOut,
    Idle,
    /// Protocol error or a failed read or write.
    Error,
}

#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub(super) end: End,
    pub(super) why: String,
    pub(super) closed: ClosedAs,
}

impl Outcome {
    fn lost(why: impl Into<String>) -> Self {
        Self {
            why: why.into(),
            ..Self::default()
        }
    }

    fn error(why: impl Into<String>) -> Self {
        Self {
            closed: ClosedAs::Error,
            ..Self::lost(why)
        }
    }

    fn replaced() -> Self {
        Self {
            end: End::Kicked(Kick::Replaced),
            ..Self::lost("replaced by a newer connection of the same session")
        }
    }

    /// The session's own decision to end the tunnel.
    fn from_event(event: ServerEvent) -> Self {
        let (end, why, closed) = match event {
            ServerEvent::ClientDisconnect {
                user_requested: true,
                reason,
            } => (
                End::UserLogout,
                format!("user disconnected: {reason}"),
                ClosedAs::Normal,
            ),
            ServerEvent::ClientDisconnect { reason, .. } => (
                End::Lost,
                format!("client disconnected: {reason}"),
                ClosedAs::Normal,
            ),
            ServerEvent::DpdTimeout => (End::Lost, "DPD timeout".into(), ClosedAs::TimedOut),
            // As in ocserv, an idle client may come back with its cookie.
            ServerEvent::IdleTimeout => (End::Lost, "idle timeout".into(), ClosedAs::Idle),
            ServerEvent::SessionTimeout => (
                End::SessionOver,
                "session timeout".into(),
                ClosedAs::TimedOut,
            ),
        };
        Self { end, why, closed }
    }
}

/// What a tunnel's packets pass through: the filter on the way in, the rate limits
/// (`rx-data-per-sec` from the client, `tx-data-per-sec` to it), the meters both ways, and
/// the interim accounting report (`stats-report-time`).
pub(super) struct Traffic<'a> {
    pub(super) filter: &'a PacketFilter,
    pub(super) rx_limit: Option<RateLimit>,
    pub(super) tx_limit: Option<RateLimit>,
    pub(super) meters: &'a TunnelMeters,
    pub(super) report: Option<Report>,
    /// TLS 1.2 with `rekey-method = ssl`: the client's renegotiations, logged as they
    /// complete.
    pub(super) renegotiations: Option<Renegotiations>,
}

impl Traffic<'_> {
    /// Whether a packet from the client goes on into the network; counted if it does.
    fn admit_from_client(&mut self, packet: &[u8], transport: Transport, now: Instant) -> bool {
        let admitted = self.filter.allows(packet)
            && self
                .rx_limit
                .as_mut()
                .is_none_or(|l| l.admit(packet.len(), now));
        if admitted {
            self.meters.count(Direction::Rx, transport, packet.len());
        }
        admitted
    }

    /// Whether a packet of `len` bytes for the client fits its rate limit now.
    fn admit_to_client(&mut self, len: usize, now: Instant) -> bool {
        self.tx_limit.as_mut().is_none_or(|l| l.admit(len, now))
    }
}

/// Every `every`, the tunnel logs its byte counts and its session's (those of its ended
/// connections, kept with the session `cookie`, plus this one's), so accounting survives
/// reconnects.
#[derive(Debug, Clone)]
pub(super) struct Report {
    pub(super) every: Duration,
    pub(super) cookie: String,
}

/// What a client may send into the network: only from its own addresses (or networks
/// behind it), with `restrict-user-to-routes` only to its routes, and with
/// `restrict-user-to-ports` only to those ports (DNS to its servers included).
pub(super) struct PacketFilter {
    pub(super) v4: Option<Ipv4Addr>,
    pub(super) v6: Option<Ipv6Net>,
    /// `restrict-user-to-routes`: the routes (empty = default route) and the no-routes.
    pub(super) restrict: Option<RouteRestriction>,
    pub(super) iroutes: Vec<IpNet>,
    pub(super) ports: Option<PortRules>,
    /// The DNS servers the client was given.
    pub(super) dns: Vec<IpAddr>,
}

impl PacketFilter {
    fn allows(&self, packet: &[u8]) -> bool {
        let Some(src) = source(packet) else {
            return false;
        };
        let own = match src {
            IpAddr::V4(a) => self.v4 == Some(a),
            IpAddr::V6(a) => self.v6.is_some_and(|n| n.contains(&a)),
        } || self.iroutes.iter().any(|n| n.contains(&src));
        if !own {
            return false;
        }
        if self
            .ports
            .as_ref()
            .is_some_and(|p| !p.allows(packet, &self.dns))
        {
            return false;
        }
        match (&self.restrict, destination(packet)) {
            (None, _) => true,
            (Some(r), Some(dst)) => {
                (r.routes.is_empty() || r.routes.iter().any(|n| n.contains(&dst)))
                    && !r.no_routes.iter().any(|n| n.contains(&dst))
            }
            (Some(_), None) => false,
        }
    }
}

/// The state of one tunnel's loop; each input has its handler, which breaks the loop with
/// the [`Outcome`] when the tunnel ends.
struct PacketLoop<'a> {
    server: &'a Server,
    stream: &'a mut TlsStream,
    session: ServerSession,
    dtls: Option<&'a mut TunnelDtls>,
    traffic: Traffic<'a>,
    next_report: Option<Instant>,
    buf: Vec<u8>,
    tun_out: TunWriter,
    /// Whether DTLS carried data when last checked, to count fallbacks to TLS.
    dtls_live: bool,
}

type Flow = ControlFlow<Outcome>;

impl Server {
    /// Runs a tunnel until it ends, and says how.
    pub(super) async fn packet_loop(
        &self,
        stream: &mut TlsStream,
        session: ServerSession,
        mut rx: mpsc::Receiver<PacketBatch>,
        mut kick: watch::Receiver<Option<Kick>>,
        dtls: Option<&mut TunnelDtls>,
        traffic: Traffic<'_>,
    ) -> Outcome {
        let mut tunnel = PacketLoop {
            server: self,
            stream,
            session,
            dtls,
            next_report: traffic.report.as_ref().map(|r| Instant::now() + r.every),
            traffic,
            buf: vec![0u8; READ_BUF],
            tun_out: TunWriter::new(),
            dtls_live: false,
        };
        let timer = tokio::time::sleep(NO_DEADLINE);
        tokio::pin!(timer);
        loop {
            if let ControlFlow::Break(outcome) =
                tunnel.step(&mut rx, &mut kick, timer.as_mut()).await
            {
                return outcome;
            }
        }
    }
}

impl PacketLoop<'_> {
    /// Sends what the session has to say, then waits for the next input and handles it.
    async fn step(
        &mut self,
        rx: &mut mpsc::Receiver<PacketBatch>,
        kick: &mut watch::Receiver<Option<Kick>>,
        mut timer: Pin<&mut Sleep>,
    ) -> Flow {
        self.send_control().await?;
        if let Some(event) = self.session.poll_event() {
            let _ = tokio::time::timeout(GOODBYE_LIMIT, self.stream.shutdown()).await;
            return ControlFlow::Break(Outcome::from_event(event));
        }
        timer.as_mut().reset(self.deadline());
        tokio::select! {
            read = self.stream.read(&mut self.buf) => self.on_tls(read),
            received = udp::recv(self.dtls.as_deref_mut()) => {
                self.on_udp(received).await;
                ControlFlow::Continue(())
            }
            batch = rx.recv() => self.on_queued(batch, rx).await,
            changed = kick.changed() => {
                let reason = if changed.is_ok() { *kick.borrow() } else { None };
                ControlFlow::Break(self.on_kick(reason).await)
            }
            () = &mut timer => {
                self.on_timer().await;
                ControlFlow::Continue(())
            }
        }
    }

    /// Control frames (DPD answers, keepalives, ...) on their channels. With no DTLS to
    /// answer on, a DTLS probe answer is simply lost.
    async fn send_control(&mut self) -> Flow {
        while let Some((channel, control)) = self.session.poll_transmit() {
            if channel == Channel::Dtls {
                if let Some(d) = self.dtls.as_deref_mut() {
                    d.send_record(&control).await;
                }
                continue;
            }
            if write_limited(self.stream, &control, WRITE_LIMIT)
                .await
                .is_err()
            {
                return ControlFlow::Break(Outcome::error("TLS write failed or stalled"));
            }
        }
        ControlFlow::Continue(())
    }

    /// The earliest of the session's, the DTLS channel's and the report's deadlines.
    fn deadline(&self) -> tokio::time::Instant {
        [
            self.session.poll_timeout(),
            self.dtls.as_deref().and_then(TunnelDtls::deadline),
            self.next_report,
        ]
        .into_iter()
        .flatten()
        .min()
        .map(tokio::time::Instant::from_std)
        .unwrap_or_else(|| tokio::time::Instant::now() + NO_DEADLINE)
    }

    /// CSTP bytes from the client: packets go to the tun device.
    fn on_tls(&mut self, read: std::io::Result<usize>) -> Flow {
        let n = match read {
            Ok(0) => return ControlFlow::Break(Outcome::lost("connection closed by client")),
            Err(e) => return ControlFlow::Break(Outcome::error(format!("TLS read failed: {e}"))),
            Ok(n) => n,
        };
        if let Some(r) = self.traffic.renegotiations.as_mut() {
            if r.completed(self.stream.ssl()) {
                info!("TLS rehandshake completed");
            }
        }
        let (traffic, tun_out) = (&mut self.traffic, &mut self.tun_out);
        let bytes = self.buf.get(..n).unwrap_or_default();
        let now = Instant::now();
        let result = self.session.handle_cstp(bytes, now, |packet| {
            if traffic.admit_from_client(packet, Transport::Tls, now) {
                tun_out.push(packet);
            }
        });
        self.server.write_tun(&mut self.tun_out);
        match result {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(Outcome::error(format!("protocol error: {e}"))),
        }
    }

    /// Datagrams from the dispatcher: DTLS records, packets to the tun device.
    async fn on_udp(&mut self, received: Option<Datagram>) {
        let (Some(received), Some(d)) = (received, self.dtls.as_deref_mut()) else {
            // The dispatcher dropped this tunnel: stop listening for datagrams.
            self.dtls = None;
            return;
        };
        let now = Instant::now();
        for datagram in received.each() {
            if self.tun_out.is_full() {
                self.server.write_tun(&mut self.tun_out);
            }
            let (traffic, tun_out) = (&mut self.traffic, &mut self.tun_out);
            d.on_datagram(received.peer, datagram, &mut self.session, |packet| {
                if traffic.admit_from_client(packet, Transport::Dtls, now) {
                    tun_out.push(packet);
                }
            })
            .await;
        }
        self.server.write_tun(&mut self.tun_out);
    }

    /// Packets for the client: this batch and what is already queued behind it (up to
    /// [`MAX_BATCH`] packets), over DTLS when it carries them, else one CSTP frame per TLS
    /// record (openconnect reads exactly one CSTP frame per record).
    async fn on_queued(
        &mut self,
        batch: Option<PacketBatch>,
        rx: &mut mpsc::Receiver<PacketBatch>,
    ) -> Flow {
        let Some(batch) = batch else {
            // The route now feeds a newer connection of this session: as a kick.
            return ControlFlow::Break(self.on_kick(Some(Kick::Replaced)).await);
        };
        let now = Instant::now();
        let live = self.dtls.as_deref().is_some_and(|d| d.is_live(now));
        if self.dtls_live && !live {
            self.server.metrics.dtls_fallbacks.inc();
        }
        self.dtls_live = live;
        let mut next = Some(batch);
        let mut sent = 0;
        while let Some(mut batch) = next.take() {
            for framed in batch.iter_mut() {
                self.send_packet(framed, now).await?;
                sent += 1;
            }
            if sent < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if let Some(d) = self.dtls.as_deref_mut() {
            d.flush().await;
        }
        ControlFlow::Continue(())
    }

    /// One packet (after [`CSTP_HEADER_LEN`] bytes of headroom) to the client, framed in
    /// place and compressed if the channel negotiated it.
    async fn send_packet(&mut self, framed: &mut [u8], now: Instant) -> Flow {
        let len = framed.len().saturating_sub(CSTP_HEADER_LEN);
        if !self.traffic.admit_to_client(len, now) {
            // Over tx-data-per-sec: dropped, as a policer would.
            return ControlFlow::Continue(());
        }
        let mut sent_dtls = false;
        if let Some(d) = self.dtls.as_deref_mut().filter(|d| d.carries(len, now)) {
            match self
                .session
                .compression()
                .encode_packet(Channel::Dtls, &mut *framed)
            {
                Ok(record) => sent_dtls = d.queue_record(record).await,
                Err(e) => debug!("{e}; sending over CSTP instead"),
            }
        }
        if !sent_dtls {
            let frame = match self
                .session
                .compression()
                .encode_packet(Channel::Cstp, &mut *framed)
            {
                Ok(frame) => frame,
                Err(e) => {
                    return ControlFlow::Break(Outcome::error(format!("protocol error: {e}")))
                }
            };
            if write_limited(self.stream, frame, WRITE_LIMIT)
                .await
                .is_err()
            {
                return ControlFlow::Break(Outcome::error("TLS write failed or stalled"));
            }
        }
        let transport = if sent_dtls {
            Transport::Dtls
        } else {
            Transport::Tls
        };
        self.traffic.meters.count(Direction::Tx, transport, len);
        self.session
            .on_packet_sent(framed.get(CSTP_HEADER_LEN..).unwrap_or_default(), now);
        ControlFlow::Continue(())
    }

    /// The tunnel was told to go: replaced by a newer connection of its session, shutdown
    /// or an admin's kick. The client is told first in every case, as ocserv does: a client
    /// whose cookie another connection took over then exits instead of reconnecting and
    /// taking the session back.
    async fn on_kick(&mut self, reason: Option<Kick>) -> Outcome {
        let why = reason.unwrap_or(Kick::Replaced);
        self.session.disconnect();
        while let Some((channel, control)) = self.session.poll_transmit() {
            if channel == Channel::Cstp {
                let _ = write_limited(self.stream, &control, GOODBYE_LIMIT).await;
            }
        }
        let _ = tokio::time::timeout(GOODBYE_LIMIT, self.stream.shutdown()).await;
        if why == Kick::Replaced {
            return Outcome::replaced();
        }
        Outcome {
            end: End::Kicked(why),
            why: if why == Kick::Admin {
                "disconnected by the administrator".into()
            } else {
                "server shutting down".into()
            },
            closed: ClosedAs::Normal,
        }
    }

    /// A deadline passed: the interim report, the session's timers, the DTLS channel's.
    async fn on_timer(&mut self) {
        let now = Instant::now();
        if let (Some(at), Some(r)) = (self.next_report, self.traffic.report.as_ref()) {
            if now >= at {
                self.next_report = Some(now + r.every);
                self.report(&r.cookie);
            }
        }
        self.session.handle_timeout(now);
        // The KeyUpdate leaves with the KEEPALIVE the session queued for it.
        if self.session.take_rekey_due() && oc_tls::rekey_in_place(self.stream.ssl()) {
            info!("TLS 1.3 session keys refreshed (rekey)");
        }
        if let Some(d) = self.dtls.as_deref_mut() {
            d.on_deadline().await;
        }
    }

    /// Logs this tunnel's bytes and its session's (those of its earlier connections, from
    /// the session store, plus these), on a task of its own: the tunnel does not wait for
    /// the security module.
    fn report(&self, cookie: &str) {
        let (rx, tx) = (self.traffic.meters.rx(), self.traffic.meters.tx());
        let links = self.server.links.clone();
        let request = SessionRequest::Interim {
            cookie: cookie.to_string(),
            current: (rx, tx),
        };
        let span = tracing::Span::current();
        tokio::spawn(
            async move {
                let carried = match links.session(request).await {
                    SessionReply::Carried(carried) => carried,
                    _ => (0, 0),
                };
                info!(
                    rx_bytes = rx,
                    tx_bytes = tx,
                    session_rx_bytes = carried.0 + rx,
                    session_tx_bytes = carried.1 + tx,
                    "interim accounting"
                );
            }
            .instrument(span),
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn v4_packet(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut p = vec![0u8; 20];
        p[0] = 0x45;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p
    }

    fn restrict(routes: &[&str], no_routes: &[&str]) -> Option<RouteRestriction> {
        let nets = |list: &[&str]| list.iter().map(|n| n.parse().unwrap()).collect();
        Some(RouteRestriction {
            routes: nets(routes),
            no_routes: nets(no_routes),
        })
    }

    #[test]
    fn filter_blocks_spoofing_and_restricts_routes() {
        let filter = PacketFilter {
            v4: Some("10.9.0.5".parse().unwrap()),
            v6: None,
            restrict: restrict(&["192.0.2.0/24"], &["192.0.2.128/25"]),
            iroutes: vec!["172.16.0.0/24".parse().unwrap()],
            ports: None,
            dns: Vec::new(),
        };
        assert!(!filter.allows(&v4_packet([10, 9, 0, 5], [192, 0, 2, 200])));
        let everywhere_but = PacketFilter {
            restrict: restrict(&[], &["10.0.0.0/8"]),
            ..filter
        };
        assert!(everywhere_but.allows(&v4_packet([10, 9, 0, 5], [8, 8, 8, 8])));
        assert!(!everywhere_but.allows(&v4_packet([10, 9, 0, 5], [10, 1, 1, 1])));
        let filter = PacketFilter {
            restrict: restrict(&["192.0.2.0/24"], &["192.0.2.128/25"]),
            ..everywhere_but
        };
        assert!(filter.allows(&v4_packet([10, 9, 0, 5], [192, 0, 2, 7])));
        assert!(!filter.allows(&v4_packet([10, 9, 0, 6], [192, 0, 2, 7])));
        assert!(!filter.allows(&v4_packet([10, 9, 0, 5], [8, 8, 8, 8])));
        assert!(filter.allows(&v4_packet([172, 16, 0, 9], [192, 0, 2, 7])));
        assert!(!filter.allows(b"garbage"));
        // Ports come on top of the address checks (the packet here has protocol 0).
        let ports = PacketFilter {
            ports: Some(PortRules::parse("!(tcp(25))").unwrap()),
            ..filter
        };
        assert!(ports.allows(&v4_packet([10, 9, 0, 5], [192, 0, 2, 7])));
        assert!(!ports.allows(&v4_packet([10, 9, 0, 6], [192, 0, 2, 7])));
        let only_tcp = PacketFilter {
            ports: Some(PortRules::parse("tcp(443)").unwrap()),
            ..ports
        };
        assert!(!only_tcp.allows(&v4_packet([10, 9, 0, 5], [192, 0, 2, 7])));
        assert_eq!(
            destination(&v4_packet([1, 1, 1, 1], [2, 2, 2, 2])),
            Some("2.2.2.2".parse().unwrap())
        );
    }
}
