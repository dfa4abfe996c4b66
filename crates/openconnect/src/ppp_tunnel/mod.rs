//! Tunnels of the PPP protocols: PPP negotiated by `oc_proto::ppp` over the TLS
//! connection or, where the gateway grants it, over DTLS (`ppp_udp`), the tun device and
//! the vpnc-script once IPCP/IPV6CP agree, the packet loop, signals and reconnects. PPP
//! starts afresh whenever it moves between TLS and DTLS, as upstream does. nullppp uses it
//! as it is; fortinet and f5 add their login and encapsulation in front.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ipnet::Ipv6Net;
use oc_net::udp::RecvBatch;
use oc_net::TunReader;
use oc_proto::fortinet::TunnelStart;
use oc_proto::ppp::{Closed, Ppp, PppError, PppEvent, PppNetwork};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, info, warn};

use crate::cli::Options;
use crate::error::ClientError;
use crate::host::TunnelHost;
use crate::ppp_link::{ip_config, open_link, ppp_config, PppLink, Proposed, TunnelAnswer};
use crate::ppp_udp::{PppUdp, UdpEvent};
use crate::shell::CANCELLED;
use crate::transport::{Endpoint, HttpsConnection};
use crate::tunnel_loop::{self, Stop, TunnelProtocol, Waits};
use crate::Finished;

mod carrier;
use carrier::TlsEnd;

/// The most a TLS record carries.
const MAX_RECORD: usize = 16 * 1024;
/// How long a log-off waits for the Terminate-Ack (over DTLS the request goes three times,
/// a second apart).
const LOGOFF_WAIT: Duration = Duration::from_millis(3500);

struct PppTunnel<'a> {
    opts: &'a Options,
    endpoint: &'a Endpoint,
    link: PppLink,
    /// The TLS connection carrying PPP; `None` while DTLS carries it or is being tried
    /// first.
    conn: Option<HttpsConnection>,
    /// The DTLS channel, when the gateway granted one.
    udp: Option<PppUdp>,
    ppp: Ppp,
    host: TunnelHost<'a>,
    /// Encapsulated packets for one write.
    out: Vec<u8>,
    /// A tunnel request that may be refused in HTTP (Fortinet's) is waiting for its answer.
    start: Option<TunnelStart>,
    /// PPP bytes that came with the tunnel request's answer.
    pending: Vec<u8>,
    /// The TLS tunnel ended while the gateway was answering our DTLS probe. A gateway that
    /// moves the session to DTLS ends the old tunnel, and that can overtake its answer, so
    /// the verdict waits for the probe's outcome.
    deferred: Option<TlsEnd>,
}

/// Runs a PPP tunnel: over DTLS if the gateway grants it and it comes up in time, else
/// over a new TLS connection to the server.
pub(crate) async fn run(
    opts: &Options,
    endpoint: &Endpoint,
    link: PppLink,
) -> Result<Finished, ClientError> {
    let gateway = *endpoint
        .addresses()?
        .first()
        .ok_or(ClientError::Timeout("the server's address"))?;
    let mut udp = match (&link.udp, opts.no_dtls) {
        (Some(grant), false) => Some(PppUdp::new(
            grant.clone(),
            SocketAddr::new(gateway.ip(), grant.port),
            &endpoint.url.host,
            u32::from(opts.base_mtu.unwrap_or(1500)),
            opts.dtls_local_port,
        )),
        _ => None,
    };
    let mut tunnel = PppTunnel {
        opts,
        endpoint,
        ppp: Ppp::new(ppp_config(opts, &link, None), Instant::now()),
        link,
        conn: None,
        udp: None,
        host: TunnelHost::new(opts, gateway.ip()),
        out: Vec::new(),
        start: None,
        pending: Vec::new(),
        deferred: None,
    };
    let first_try = match udp.as_mut() {
        Some(udp) => udp.start(&endpoint.tls, Instant::now()).await,
        None => None,
    };
    tunnel.udp = udp;
    if let Some(event) = first_try {
        tunnel.udp_event(event).await;
    }
    let result = tunnel_loop::run(&mut tunnel).await;
    if let Some(udp) = tunnel.udp.as_mut() {
        udp.shut().await;
    }
    tunnel.host.finish();
    result
}

/// Reads the TLS connection, or waits forever when there is none.
async fn read_tls(conn: Option<&mut HttpsConnection>, buf: &mut [u8]) -> std::io::Result<usize> {
    match conn {
        Some(c) => c.tls.read(buf).await,
        None => std::future::pending().await,
    }
}

/// Waits for the DTLS channel's datagrams, or forever when there is none.
async fn recv_udp(udp: Option<&PppUdp>, batch: &mut RecvBatch) -> std::io::Result<usize> {
    match udp.and_then(PppUdp::socket) {
        Some(socket) => batch.recv(socket).await,
        None => std::future::pending().await,
    }
}

impl PppTunnel<'_> {
    fn handle_input(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        if let Some(start) = self.start.as_mut() {
            if let Err(status) = start.first_bytes(bytes) {
                return Err(match status {
                    401 | 403 => ClientError::CookieRejected(format!("HTTP {status}")),
                    _ => ClientError::PppNotEstablished(format!(
                        "the server answered the tunnel request with HTTP {status}"
                    )),
                });
            }
        }
        let Self { ppp, host, .. } = self;
        let result = ppp.handle_input(bytes, Instant::now(), &mut |packet| {
            host.deliver(packet);
        });
        self.host.flush();
        result.map_err(ClientError::from)
    }

    /// Until when PPP may not write yet (see [`TunnelStart`]).
    fn holding_until(&self) -> Option<Instant> {
        self.start.and_then(|s| s.holding_until(Instant::now()))
    }

    fn log_stats(&self) {
        let tls = match &self.conn {
            Some(conn) => format!("SSL {} {}", conn.peer.version, conn.peer.cipher),
            None => "SSL disconnected".into(),
        };
        let udp = self.udp.as_ref().map_or("disabled", PppUdp::status);
        let carrier = if self.on_dtls() { "DTLS" } else { "TLS" };
        self.host
            .stats
            .log(&format!("{tls}; DTLS {udp}; PPP over {carrier}"));
    }

    /// A dead peer is a reason to reconnect (over DTLS: to go back to TLS); anything else
    /// ends the tunnel.
    async fn ppp_failed(&mut self, e: PppError) -> Result<Option<Stop>, ClientError> {
        match e {
            PppError::PeerDead(_) if self.on_dtls() => {
                if let Some(udp) = self.udp.as_mut() {
                    udp.lost(&format!("PPP {e}"), Instant::now()).await;
                }
                Ok(None)
            }
            PppError::PeerDead(_) => Ok(Some(Stop::Lost(format!("PPP {e}")))),
            other => Err(other.into()),
        }
    }

    /// Encapsulates one tun read's packets and sends them: over DTLS one record each; over
    /// TLS a record's worth at a time and only whole frames in each, because some peers
    /// (openconnect 9.01's HDLC reader, for one) drop a frame that goes on in the next one.
    async fn send_tun_packets(
        &mut self,
        up: &mut TunReader,
        count: usize,
    ) -> Result<(), ClientError> {
        if self.on_dtls() {
            return self.send_packets_dtls(up, count).await;
        }
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        self.out.clear();
        let now = Instant::now();
        for i in 0..count {
            let Some(packet) = up.framed_mut(i) else {
                continue;
            };
            let before = self.out.len();
            match self.ppp.encapsulate_ip(packet, now, &mut self.out) {
                Ok(()) => self.host.stats.sent(packet.len()),
                Err(e) => debug!("packet dropped: {e}"),
            }
            if self.out.len() > MAX_RECORD && before > 0 {
                let whole = self.out.get(..before).unwrap_or_default();
                conn.tls
                    .write_all(whole)
                    .await
                    .map_err(ClientError::io("sending on the TLS connection"))?;
                self.out.drain(..before);
            }
        }
        conn.tls
            .write_all(&self.out)
            .await
            .map_err(ClientError::io("sending on the TLS connection"))
    }

    async fn send_packets_dtls(
        &mut self,
        up: &mut TunReader,
        count: usize,
    ) -> Result<(), ClientError> {
        let Some(udp) = self.udp.as_mut() else {
            return Ok(());
        };
        let now = Instant::now();
        let mut result = Ok(());
        for i in 0..count {
            let Some(packet) = up.framed_mut(i) else {
                continue;
            };
            self.out.clear();
            if let Err(e) = self.ppp.encapsulate_ip(packet, now, &mut self.out) {
                debug!("packet dropped: {e}");
                continue;
            }
            self.host.stats.sent(packet.len());
            let class = match self.opts.passtos {
                true => oc_proto::ip::traffic_class(packet),
                false => None,
            };
            result = udp.queue_frame(&self.out, class).await;
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            result = udp.flush().await;
        }
        if let Err(e) = result {
            udp.lost(&format!("sending on UDP: {e}"), now).await;
        }
        Ok(())
    }

    /// Writes what PPP queued (to the channel carrying it; before there is one, it is
    /// dropped, as PPP starts over on it) and acts on PPP's events.
    async fn after_input(&mut self) -> Result<Option<Stop>, ClientError> {
        while self.holding_until().is_none() {
            let Some(frame) = self.ppp.poll_transmit() else {
                break;
            };
            if let Err(why) = self.send_control(&frame).await {
                return Ok(Some(Stop::Lost(why)));
            }
        }
        while let Some(event) = self.ppp.poll_event() {
            match event {
                PppEvent::Log(line) => debug!("PPP: {line}"),
                PppEvent::NetworkUp(net) => {
                    if let Some(stop) = self.network_up(&net)? {
                        return Ok(Some(stop));
                    }
                }
                PppEvent::Closed(Closed::ByPeer { reason }) => {
                    let reason = reason.unwrap_or_else(|| "PPP Terminate-Request".into());
                    if !self.defer_tls_end(TlsEnd::TerminatedByPeer(reason.clone())) {
                        return Err(ClientError::ServerTerminated(reason));
                    }
                }
                PppEvent::Closed(Closed::ByUs { .. }) => {
                    return Ok(Some(Stop::Done(Finished(CANCELLED.into()))));
                }
            }
        }
        Ok(None)
    }

    /// Sends one PPP control frame on the carrier. A DTLS failure falls back to TLS; a TLS
    /// failure is returned.
    async fn send_control(&mut self, frame: &[u8]) -> Result<(), String> {
        if self.on_dtls() {
            if let Some(udp) = self.udp.as_mut() {
                if let Err(e) = udp.send_frame(frame).await {
                    udp.lost(&format!("sending on UDP: {e}"), Instant::now())
                        .await;
                }
            }
            return Ok(());
        }
        match self.conn.as_mut() {
            Some(conn) => conn
                .tls
                .write_all(frame)
                .await
                .map_err(|e| format!("sending on the TLS connection: {e}")),
            None => Ok(()),
        }
    }

    /// The network is up (see [`TunnelHost::network_up`]; a move to DTLS renegotiates PPP
    /// too, but is no reconnect, as upstream). nullppp's `term` logs off the first time.
    fn network_up(&mut self, net: &PppNetwork) -> Result<Option<Stop>, ClientError> {
        let first = !self.host.is_up();
        let tls = if self.conn.is_some() {
            "connected"
        } else {
            "disconnected"
        };
        let udp = match &self.udp {
            Some(udp) => format!("DTLS {}", udp.connection_state()),
            None => "UDP disabled".into(),
        };
        let links = format!("SSL {tls} and {udp}");
        self.host
            .network_up(ip_config(&self.link.base, net), &links)?;
        if first && self.link.terminate_at_network {
            warn!("Terminating because nullppp has reached network state.");
            return Ok(Some(Stop::Cancelled));
        }
        Ok(None)
    }

    /// Terminate-Request, and a short wait for its Ack.
    async fn end_ppp(&mut self) {
        self.ppp.terminate(Instant::now());
        let mut down = vec![0u8; 16 * 1024];
        let mut batch = RecvBatch::new();
        let wait = async {
            while !self.ppp.is_closed() {
                while let Some(frame) = self.ppp.poll_transmit() {
                    self.send_control(&frame).await.ok()?;
                }
                let deadline = self.ppp.poll_timeout();
                let sleep = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d.into()).await,
                        None => std::future::pending().await,
                    }
                };
                let now = Instant::now();
                tokio::select! {
                    read = read_tls(self.conn.as_mut(), &mut down) => {
                        let n = read.ok().filter(|n| *n > 0)?;
                        let bytes = down.get(..n).unwrap_or_default();
                        self.ppp.handle_input(bytes, now, &mut |_| {}).ok()?;
                    }
                    read = recv_udp(self.udp.as_ref(), &mut batch) => {
                        let udp = self.udp.as_mut()?;
                        let ppp = &mut self.ppp;
                        udp.on_received(read.ok()?, &batch, &self.endpoint.tls, now, &mut |frame| {
                            let _ = ppp.handle_input(frame, now, &mut |_| {});
                        })
                        .await;
                    }
                    () = sleep => self.ppp.handle_timeout(now).ok()?,
                }
            }
            Some(())
        };
        let _ = tokio::time::timeout(LOGOFF_WAIT, wait).await;
        if let Some(mut conn) = self.conn.take() {
            let _ = conn.tls.shutdown().await;
        }
        if let Some(logout) = &self.link.logout {
            match self.endpoint.connect().await {
                Ok(mut conn) => match conn.exchange(logout, false).await {
                    Ok((resp, _)) => debug!("logout: HTTP {}", resp.head.status),
                    Err(e) => debug!("logout: {e}"),
                },
                Err(e) => debug!("logout: {e}"),
            }
        }
    }

    /// Reconnects TLS and negotiates PPP again, keeping the tun device. Returns `Some` when
    /// a signal ended the wait instead.
    /// Before the reconnect attempts: the script's `attempt-reconnect`, DTLS and TLS
    /// dropped.
    async fn prepare_reconnect_tls(&mut self, why: &str) {
        self.attempt_reconnect();
        if let Some(udp) = self.udp.as_mut() {
            udp.lost(why, Instant::now()).await;
        }
        self.conn = None;
    }

    /// One attempt: the tunnel request again, PPP afresh on TLS.
    async fn reconnect_tls(&mut self) -> Result<(), ClientError> {
        let (conn, pending, proposed) = open_link(self.endpoint, &self.link).await?;
        self.use_tls(conn, pending, proposed);
        Ok(())
    }
}

impl TunnelProtocol for PppTunnel<'_> {
    const HEADROOM: usize = 0;

    async fn step(&mut self) -> Result<Option<Stop>, ClientError> {
        if let Some(end) = self.deferred.take() {
            if self.awaiting_dtls() {
                self.deferred = Some(end);
            } else if !self.on_dtls() {
                return match end {
                    TlsEnd::Lost(why) => Ok(Some(Stop::Lost(why))),
                    TlsEnd::TerminatedByPeer(reason) => Err(ClientError::ServerTerminated(reason)),
                };
            }
        }
        if let Err(e) = self.ensure_carrier().await {
            if !self.host.is_up() {
                return Err(e);
            }
            return Ok(Some(Stop::Lost(e.to_string())));
        }
        let pending = std::mem::take(&mut self.pending);
        if !pending.is_empty() {
            self.handle_input(&pending)?;
        }
        self.after_input().await
    }

    fn waits(&mut self) -> Waits<'_> {
        let hold = self.holding_until();
        let udp_deadline = self.udp.as_ref().and_then(PppUdp::deadline);
        let deadline = [self.ppp.poll_timeout(), hold, udp_deadline]
            .into_iter()
            .flatten()
            .min();
        Waits {
            tun: self.host.tun.as_ref().map(|(sink, _)| &sink.tun),
            tls: self.conn.as_mut().map(|c| &mut c.tls),
            udp: self.udp.as_ref().and_then(PppUdp::socket),
            deadline,
        }
    }

    async fn send_packets(&mut self, up: &mut TunReader, count: usize) -> Result<(), ClientError> {
        self.send_tun_packets(up, count).await
    }

    async fn on_tls(&mut self, bytes: &[u8]) -> Result<Option<Stop>, ClientError> {
        self.handle_input(bytes)?;
        Ok(None)
    }

    fn tls_ended(&mut self, why: String) -> Option<Stop> {
        if self.defer_tls_end(TlsEnd::Lost(why.clone())) {
            return None;
        }
        Some(Stop::Lost(why))
    }

    async fn on_udp(
        &mut self,
        batch: &mut RecvBatch,
        read: std::io::Result<usize>,
    ) -> Result<Option<Stop>, ClientError> {
        self.udp_received(batch, read).await
    }

    async fn on_deadline(&mut self, now: Instant) -> Result<Option<Stop>, ClientError> {
        self.deadline_passed(now).await
    }

    fn print_stats(&self) {
        self.log_stats();
    }

    async fn log_off(&mut self) {
        self.end_ppp().await;
    }

    async fn detach(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            let _ = conn.tls.shutdown().await;
        }
    }

    /// As upstream: a link that never came up is not worth reconnecting.
    fn give_up(&self, why: &str) -> Option<ClientError> {
        (!self.host.is_up()).then(|| ClientError::PppNotEstablished(why.to_string()))
    }

    fn options(&self) -> &Options {
        self.opts
    }

    async fn prepare_reconnect(&mut self, why: &str) {
        self.prepare_reconnect_tls(why).await;
    }

    async fn reconnect_once(&mut self) -> Result<(), ClientError> {
        self.reconnect_tls().await
    }
}
