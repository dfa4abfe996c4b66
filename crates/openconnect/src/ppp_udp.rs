//! The DTLS channel of the PPP vendors (Fortinet, F5): a certificate handshake checked as
//! the HTTPS one was, then the vendor's probe (Fortinet's `clthello`, F5's `GET /myvpn`)
//! until the gateway accepts the session; after that each record is one PPP frame. When
//! to try, resend, give up and retry is `oc_proto::udp_link::UdpLink`'s decision.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use oc_net::udp::{datagrams, BatchSocket, RecvBatch};
use oc_proto::udp_link::{ProbeAnswer, UdpAction, UdpLink, UdpPhase, UdpTimers};
use oc_tls::dtls::{DtlsState, DtlsVersions};
use oc_tls::TlsClient;
use tracing::{debug, info, warn};

use crate::udp_channel::UdpChannel;

/// What a vendor's configuration granted: where, which versions, and its probe.
#[derive(Debug, Clone)]
pub(crate) struct UdpGrant {
    pub port: u16,
    pub versions: DtlsVersions,
    /// The record that asks the gateway to carry the session over this channel.
    pub probe: Vec<u8>,
    pub read_answer: fn(&[u8]) -> ProbeAnswer,
}

/// What happened on the UDP side that the tunnel must act on.
#[derive(Debug)]
pub(crate) enum UdpEvent {
    /// The gateway carries the session over DTLS from now on.
    Accepted {
        ipv4: Option<Ipv4Addr>,
        ipv6: Option<Ipv6Addr>,
    },
    /// An attempt failed (or the channel was lost): the traffic is TLS's.
    Abandoned(String),
}

pub(crate) struct PppUdp {
    grant: UdpGrant,
    server: SocketAddr,
    host: String,
    link_mtu: u32,
    local_port: Option<u16>,
    state: UdpLink,
    channel: Option<UdpChannel>,
    /// The channel's handshake was checked (certificate) and the probe started.
    checked: bool,
}

impl PppUdp {
    pub(crate) fn new(
        grant: UdpGrant,
        server: SocketAddr,
        host: &str,
        link_mtu: u32,
        local_port: Option<u16>,
    ) -> Self {
        Self {
            grant,
            server,
            host: host.to_string(),
            link_mtu,
            local_port,
            state: UdpLink::new(UdpTimers::PPP),
            channel: None,
            checked: false,
        }
    }

    pub(crate) fn is_up(&self) -> bool {
        self.state.is_up()
    }

    pub(crate) fn is_connecting(&self) -> bool {
        self.state.is_connecting()
    }

    /// The handshake is done and the gateway is answering our probe.
    pub(crate) fn is_probing(&self) -> bool {
        matches!(self.state.phase(), UdpPhase::Probing { .. })
    }

    pub(crate) fn status(&self) -> &'static str {
        self.state.status()
    }

    /// openconnect's word for the state in `Configured as ...`.
    pub(crate) fn connection_state(&self) -> &'static str {
        self.state.connection_state()
    }

    /// Starts an attempt now.
    pub(crate) async fn start(&mut self, tls: &TlsClient, now: Instant) -> Option<UdpEvent> {
        self.state.start(now);
        self.open(tls, now).await
    }

    async fn open(&mut self, tls: &TlsClient, now: Instant) -> Option<UdpEvent> {
        self.close().await;
        let dtls = match tls.dtls_client(
            &self.host,
            self.grant.versions,
            self.link_mtu,
            self.server.is_ipv6(),
        ) {
            Ok(d) => d,
            Err(e) => return Some(self.abandon(e.to_string(), now)),
        };
        match UdpChannel::open(self.server, self.local_port, dtls).await {
            Ok(channel) => {
                debug!("DTLS handshake with {} started", self.server);
                self.channel = Some(channel);
                None
            }
            Err(e) => Some(self.abandon(e, now)),
        }
    }

    fn abandon(&mut self, why: String, now: Instant) -> UdpEvent {
        if self.state.is_connecting() || self.state.is_up() {
            self.state.failed(now);
        }
        self.channel = None;
        self.checked = false;
        UdpEvent::Abandoned(why)
    }

    /// The channel failed while carrying the tunnel (a dead peer, a send error): back to
    /// TLS, and a new attempt after the retry period.
    pub(crate) async fn lost(&mut self, why: &str, now: Instant) {
        if self.state.is_up() || self.state.is_connecting() {
            warn!("DTLS: {why}; using TLS, retrying DTLS later");
            self.state.failed(now);
        }
        self.close().await;
    }

    async fn close(&mut self) {
        if let Some(channel) = self.channel.take() {
            channel.close().await;
        }
        self.checked = false;
    }

    /// Drops the channel for good (the tunnel ends).
    pub(crate) async fn shut(&mut self) {
        self.close().await;
        self.state.disable();
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        let retransmit = self
            .channel
            .as_ref()
            .filter(|c| c.dtls.state() == DtlsState::Handshaking)
            .and_then(|c| c.dtls.poll_timeout())
            .map(|d| Instant::now() + d);
        [self.state.poll_timeout(), retransmit]
            .into_iter()
            .flatten()
            .min()
    }

    pub(crate) async fn on_deadline(&mut self, tls: &TlsClient, now: Instant) -> Option<UdpEvent> {
        if let Some(channel) = self.channel.as_mut() {
            if channel.dtls.state() == DtlsState::Handshaking {
                if let Err(e) = channel.dtls.handle_timeout() {
                    return Some(self.abandon(e.to_string(), now));
                }
                if let Err(e) = channel.flush().await {
                    return Some(self.abandon(format!("sending on UDP: {e}"), now));
                }
            }
        }
        match self.state.handle_timeout(now)? {
            UdpAction::StartHandshake => {
                debug!("Attempt new DTLS connection");
                self.open(tls, now).await
            }
            UdpAction::SendProbe => self.send_probe(now).await,
            UdpAction::Abandon(why) => Some(self.abandon(why, now)),
        }
    }

    async fn send_probe(&mut self, now: Instant) -> Option<UdpEvent> {
        let channel = self.channel.as_mut()?;
        match channel.send_record(&self.grant.probe).await {
            Ok(()) => None,
            Err(e) => Some(self.abandon(format!("sending the DTLS connect request: {e}"), now)),
        }
    }

    /// The channel's socket, to receive on.
    pub(crate) fn socket(&self) -> Option<&BatchSocket> {
        self.channel.as_ref().map(UdpChannel::socket)
    }

    /// Handles `count` runs received in `batch`: handshake, the probe's answer, and once
    /// up each record (a PPP frame) goes to `deliver`.
    pub(crate) async fn on_received(
        &mut self,
        count: usize,
        batch: &RecvBatch,
        tls: &TlsClient,
        now: Instant,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Option<UdpEvent> {
        let mut records = Vec::new();
        let mut failure = None;
        let up = self.state.is_up();
        let channel = self.channel.as_mut()?;
        'runs: for i in 0..count {
            let Some((_, run, stride)) = batch.get(i) else {
                break;
            };
            for datagram in datagrams(run, stride) {
                let drained = channel.dtls.handle_datagram(datagram).and_then(|()| {
                    channel.dtls.drain(|record| {
                        if up {
                            deliver(record);
                        } else {
                            records.push(record.to_vec());
                        }
                    })
                });
                if let Err(e) = drained {
                    failure = Some(e.to_string());
                    break 'runs;
                }
            }
        }
        if let Some(why) = failure {
            return Some(self.abandon(why, now));
        }
        if let Err(e) = self.channel.as_mut()?.flush().await {
            return Some(self.abandon(format!("sending on UDP: {e}"), now));
        }
        if !self.checked && self.channel.as_ref()?.dtls.state() == DtlsState::Established {
            if let Some(abandoned) = self.handshake_done(tls, now).await {
                return Some(abandoned);
            }
        }
        // Records before the tunnel is up: the probe's answer, or frames that overtook it.
        let mut event = None;
        for record in records {
            event = event.or(self.probe_answer(&record, now));
        }
        event
    }

    async fn handshake_done(&mut self, tls: &TlsClient, now: Instant) -> Option<UdpEvent> {
        self.checked = true;
        let channel = self.channel.as_ref()?;
        match tls.check_peer(channel.dtls.ssl()) {
            Ok(peer) => info!(
                "Established DTLS connection (using OpenSSL). Ciphersuite {}-{}.",
                peer.version, peer.cipher
            ),
            Err(e) => {
                // A gateway we do not trust gets no second chance this session.
                self.close().await;
                self.state.disable();
                return Some(UdpEvent::Abandoned(format!("DTLS server: {e}")));
            }
        }
        match self.state.handshake_done(now)? {
            UdpAction::SendProbe => self.send_probe(now).await,
            UdpAction::Abandon(why) => Some(self.abandon(why, now)),
            UdpAction::StartHandshake => None,
        }
    }

    fn probe_answer(&mut self, record: &[u8], now: Instant) -> Option<UdpEvent> {
        if !self.state.is_connecting() {
            return None;
        }
        let answer = (self.grant.read_answer)(record);
        if let Some(UdpAction::Abandon(why)) = self.state.probe_answered(&answer, now) {
            self.channel = None;
            self.checked = false;
            return Some(UdpEvent::Abandoned(why));
        }
        match answer {
            ProbeAnswer::Accepted { ipv4, ipv6 } => Some(UdpEvent::Accepted { ipv4, ipv6 }),
            _ => None,
        }
    }

    /// Sends one PPP frame as one record.
    pub(crate) async fn send_frame(&mut self, frame: &[u8]) -> Result<(), String> {
        let channel = self.channel.as_mut().ok_or("DTLS is not up")?;
        channel.send_record(frame).await
    }

    /// Queues one PPP frame as one record; [`PppUdp::flush`] sends the batch. With a
    /// traffic class (`--passtos`: the carried packet's), the datagram is marked with it.
    pub(crate) async fn queue_frame(
        &mut self,
        frame: &[u8],
        class: Option<u8>,
    ) -> Result<(), String> {
        let channel = self.channel.as_mut().ok_or("DTLS is not up")?;
        if let Some(class) = class {
            channel.mark(class).await?;
        }
        channel.queue_record(frame).await
    }

    pub(crate) async fn flush(&mut self) -> Result<(), String> {
        match self.channel.as_mut() {
            Some(channel) => channel.flush().await.map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}
