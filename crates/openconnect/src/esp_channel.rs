//! ESP on its own connected UDP socket: the I/O of `oc_proto::esp::EspSession` for the
//! protocols whose UDP channel is ESP. Packets from the tun device are sealed where they
//! were read (the reader keeps ESP's room around them) and leave in batches; received
//! datagrams are opened where the kernel put them. Whether to probe, when the channel is
//! up and when it is dead are the session's decisions.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use oc_net::udp::{datagrams_mut, BatchSocket, RecvBatch, SendBatch};
use oc_net::TunReader;
use oc_proto::esp::{
    DropSeverity, EspAction, EspInbound, EspKeys, EspOutbound, EspParams, EspProber, EspSession,
    EspSuite, Incoming, JuniperProber, SECRETS_BLOCK_LEN,
};
use oc_tls::esp::OpenSslEspCipher;
use tracing::{debug, error, info, warn};

use crate::cli::Options;
use crate::host::TunnelHost;
use crate::ppp_link::TLS_OVERHEAD;
use crate::shell::Stats;
use crate::transport::HttpsConnection;
use crate::udp_channel::connected_socket;

/// ESP's header, the largest IV and ICV upstream allows for.
const ESP_OVERHEAD: u16 = 8 + 16 + 16;
/// ESP's two trailer bytes.
const ESP_FOOTER: u16 = 2;
const AES_BLOCK: u16 = 16;

/// The tunnel's MTU from the link's (`--base-mtu`, the TCP connection's path, or 1406):
/// less the outer IP and UDP or TCP headers and ESP's overhead rounded to AES blocks, or
/// TLS's (upstream's `calculate_mtu`).
pub(crate) fn tunnel_mtu(opts: &Options, conn: &HttpsConnection, esp: bool) -> u16 {
    let base = opts.base_mtu.unwrap_or_else(|| conn.link_mtu()).max(1280);
    let ip = if conn.addr.is_ipv6() { 40 } else { 20 };
    if esp {
        let room = base.saturating_sub(ip + 8 + ESP_OVERHEAD);
        (room - room % AES_BLOCK).saturating_sub(ESP_FOOTER)
    } else {
        base.saturating_sub(ip + 20 + TLS_OVERHEAD)
    }
}

/// SPIs below this are reserved (RFC 4303).
const MIN_SPI: u32 = 256;
/// Pulse's and NC's ESP dead-peer interval when neither `--force-dpd` nor the gateway's
/// fallback time says (upstream's `dtls_attempt_period`).
const DEFAULT_JUNIPER_DPD: u64 = 60;

/// A random SPI (not a reserved one) and secrets block.
pub(crate) fn random_spi_and_secrets() -> Result<(u32, [u8; SECRETS_BLOCK_LEN]), String> {
    let mut secrets = [0u8; SECRETS_BLOCK_LEN];
    let mut spi = [0u8; 4];
    openssl::rand::rand_bytes(&mut secrets)
        .and_then(|()| openssl::rand::rand_bytes(&mut spi))
        .map_err(|e| format!("no random bytes for ESP keys: {e}"))?;
    Ok((u32::from_be_bytes(spi).max(MIN_SPI), secrets))
}

/// Fresh keys for what we receive from a Pulse or NC gateway: the SPI, the secrets block
/// it is told, and the keys split from it.
pub(crate) fn new_inbound_keys(
    suite: EspSuite,
) -> Result<(u32, [u8; SECRETS_BLOCK_LEN], EspKeys), String> {
    let (spi, secrets) = random_spi_and_secrets()?;
    let keys = EspKeys::from_block(spi, suite, &secrets).map_err(|e| e.to_string())?;
    Ok((spi, secrets, keys))
}

fn cipher(keys: &EspKeys) -> Result<OpenSslEspCipher, String> {
    OpenSslEspCipher::new(keys).map_err(|e| format!("Failed to setup ESP keys: {e}"))
}

/// ESP's dead-peer interval for Pulse and NC: `--force-dpd`, else the gateway's fallback
/// time, else a minute.
pub(crate) fn juniper_dpd(opts: &Options, fallback: Option<u32>) -> Duration {
    let offered = fallback.filter(|s| *s > 0).map(u64::from);
    opts.forced_dpd()
        .or(offered.map(Duration::from_secs))
        .unwrap_or(Duration::from_secs(DEFAULT_JUNIPER_DPD))
}

impl EspChannel<JuniperProber> {
    /// A Pulse or NC channel to `server`: `outbound` the gateway's keys, `inbound` ours.
    pub(crate) async fn juniper(
        opts: &Options,
        server: SocketAddr,
        outbound: &EspKeys,
        inbound: &EspKeys,
        params: &EspParams,
        now: Instant,
    ) -> Result<Self, String> {
        let session = EspSession::new(
            EspOutbound::new(outbound.spi(), cipher(outbound)?),
            EspInbound::new(
                inbound.spi(),
                cipher(inbound)?,
                params.replay_protection.unwrap_or(true),
            ),
            JuniperProber {
                gateway_is_ipv6: server.is_ipv6(),
            },
            Some(juniper_dpd(opts, params.ssl_fallback)),
            now,
        );
        let channel = Self::open(server, opts.dtls_local_port, session).await?;
        Ok(channel.pass_tos(opts.passtos))
    }
}

impl<P: EspProber> EspChannel<P> {
    /// A Pulse or NC gateway's rekey: its new keys (`spi`, `block`) for what we send, and
    /// new ones of ours for what we receive (our previous ones stay for late packets);
    /// the SPI and secrets to tell it.
    pub(crate) fn rekey(
        &mut self,
        suite: EspSuite,
        spi: u32,
        block: &[u8],
    ) -> Result<(u32, [u8; SECRETS_BLOCK_LEN]), String> {
        let outbound = EspKeys::from_block(spi, suite, block).map_err(|e| e.to_string())?;
        let (in_spi, in_secrets, inbound) = new_inbound_keys(suite)?;
        let (out, inb) = (cipher(&outbound)?, cipher(&inbound)?);
        self.session.rekey_outbound(spi, out);
        self.session.rekey_inbound(in_spi, inb);
        info!("ESP rekeyed: outgoing SPI {spi:#010x}, incoming SPI {in_spi:#010x}");
        Ok((in_spi, in_secrets))
    }

    /// The channel failed outside the session's sight: down now, retried later.
    pub(crate) fn lost(&mut self, now: Instant) {
        self.session.lost(now);
    }
}

/// What the tunnel must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EspEvent {
    /// The gateway answered a probe: ESP carries the tunnel from now on.
    Established,
    /// ESP is given up (not answered in time, a dead peer, a socket error).
    Abandoned(String),
}

pub(crate) struct EspChannel<P> {
    socket: BatchSocket,
    server: SocketAddr,
    session: EspSession<OpenSslEspCipher, P>,
    outbox: SendBatch,
    probe: Vec<u8>,
    /// `--passtos`: each packet's traffic class goes on its ESP datagram; the one the
    /// socket marks with now.
    pass_tos: bool,
    marked: Option<u8>,
}

impl<P: EspProber> EspChannel<P> {
    /// A socket connected to the gateway's ESP port; nothing is sent yet.
    pub(crate) async fn open(
        server: SocketAddr,
        local_port: Option<u16>,
        session: EspSession<OpenSslEspCipher, P>,
    ) -> Result<Self, String> {
        Ok(Self {
            socket: connected_socket(server, local_port).await?,
            server,
            session,
            outbox: SendBatch::new(),
            probe: Vec::new(),
            pass_tos: false,
            marked: None,
        })
    }

    /// Copies each packet's IPv4 TOS / IPv6 traffic class onto its datagram
    /// (`--passtos`).
    pub(crate) fn pass_tos(mut self, on: bool) -> Self {
        self.pass_tos = on;
        self
    }

    pub(crate) fn socket(&self) -> &BatchSocket {
        &self.socket
    }

    pub(crate) fn is_up(&self) -> bool {
        self.session.is_up()
    }

    pub(crate) fn status(&self) -> &'static str {
        self.session.status()
    }

    /// Starts probing.
    pub(crate) async fn start(&mut self, now: Instant) {
        if self.session.start(now) == Some(EspAction::SendProbe) {
            self.send_probe().await;
        }
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.session.poll_timeout()
    }

    pub(crate) async fn on_deadline(&mut self, now: Instant) -> Option<EspEvent> {
        let was_up = self.session.is_up();
        match self.session.handle_timeout(now)? {
            EspAction::SendProbe => {
                self.send_probe().await;
                None
            }
            EspAction::Abandon(why) => {
                if was_up {
                    error!("{why}");
                }
                Some(EspEvent::Abandoned(why))
            }
        }
    }

    async fn send_probe(&mut self) {
        debug!("Send ESP probes");
        let sent = match self.session.seal_probe(&mut self.probe) {
            Ok(range) => {
                let packet = self.probe.get(range).unwrap_or_default();
                self.socket
                    .send(self.server, packet, None)
                    .await
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        // A lost probe is what the timers are for.
        if let Err(e) = sent {
            debug!("ESP probe not sent: {e}");
        }
    }

    /// Seals the `count` packets of the last tun read (each at `headroom` in its buffer)
    /// and sends them; with `only` an IP version, packets of the other stay (Pulse sends
    /// them over TLS).
    pub(crate) async fn send_packets(
        &mut self,
        up: &mut TunReader,
        count: usize,
        headroom: usize,
        only: Option<u8>,
        stats: &mut Stats,
    ) -> Result<(), String> {
        let now = Instant::now();
        let max = self.socket.max_segments();
        for i in 0..count {
            let Some((buf, len)) = up.framed_with_tail_mut(i) else {
                continue;
            };
            let version = buf.get(headroom).map(|b| b >> 4);
            if only.is_some_and(|v| version != Some(v)) {
                continue;
            }
            if self.pass_tos {
                let class = buf.get(headroom..).and_then(oc_proto::ip::traffic_class);
                if let Some(class) = class.filter(|c| self.marked != Some(*c)) {
                    self.remark(class).await?;
                }
            }
            match self.session.seal(buf, headroom..headroom + len, now) {
                Ok(sealed) => {
                    stats.sent(len);
                    self.outbox.push(buf.get(sealed).unwrap_or_default(), max);
                }
                Err(e) => debug!("packet of {len} bytes not sent over ESP: {e}"),
            }
        }
        if self.outbox.is_empty() {
            return Ok(());
        }
        self.outbox
            .send(&self.socket, self.server)
            .await
            .map_err(|e| format!("sending on UDP: {e}"))
    }

    /// Sends what is queued under the old mark, then marks with `class`.
    async fn remark(&mut self, class: u8) -> Result<(), String> {
        if !self.outbox.is_empty() {
            self.outbox
                .send(&self.socket, self.server)
                .await
                .map_err(|e| format!("sending on UDP: {e}"))?;
        }
        self.socket
            .set_traffic_class(class)
            .map_err(|e| format!("setting the ESP socket's TOS: {e}"))?;
        self.marked = Some(class);
        Ok(())
    }

    /// A receive on the channel: the runs received into `batch` opened, their packets
    /// delivered to `host`; a failed read gives the channel up for now.
    pub(crate) fn receive(
        &mut self,
        batch: &mut RecvBatch,
        read: std::io::Result<usize>,
        host: &mut TunnelHost<'_>,
    ) -> Option<EspEvent> {
        let now = Instant::now();
        let count = match read {
            Ok(n) => n,
            Err(e) => {
                self.lost(now);
                return Some(EspEvent::Abandoned(format!("ESP receive error: {e}")));
            }
        };
        let event = self.on_received(batch, count, now, &mut |packet| host.deliver(packet));
        host.flush();
        event
    }

    /// Opens the `count` runs received into `batch`; each IP packet goes to `deliver`.
    fn on_received(
        &mut self,
        batch: &mut RecvBatch,
        count: usize,
        now: Instant,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Option<EspEvent> {
        let mut event = None;
        for i in 0..count {
            let Some((_, run, stride)) = batch.get_mut(i) else {
                break;
            };
            for datagram in datagrams_mut(run, stride) {
                match self.session.open(datagram, now) {
                    Ok(Incoming::Packet(range)) => {
                        if let Some(packet) = datagram.get(range) {
                            deliver(packet);
                        }
                    }
                    Ok(Incoming::Inflated) => deliver(self.session.inflated()),
                    Ok(Incoming::Established) => {
                        info!("ESP session established with server");
                        event = Some(EspEvent::Established);
                    }
                    Ok(Incoming::ProbeAnswer) => debug!("ESP probe answered"),
                    Err(drop) => match drop.severity() {
                        DropSeverity::Routine => debug!("{drop}"),
                        DropSeverity::Fault => warn!("{drop}"),
                    },
                }
            }
        }
        event
    }

    /// SIGUSR1's line: what was dropped, by reason.
    pub(crate) fn drops(&self) -> String {
        let c = self.session.counters();
        format!(
            "ESP dropped {} (malformed {}, unknown SPI {}, replayed {}, too old {}, bad ICV {}, \
             bad trailer {}, bad LZO {})",
            c.dropped(),
            c.malformed,
            c.unknown_spi,
            c.replayed,
            c.too_old,
            c.integrity_failed,
            c.bad_trailer,
            c.decompression_failed
        )
    }
}
