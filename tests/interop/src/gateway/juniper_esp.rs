//! ESP as Pulse and Network Connect gateways serve it: [`JuniperEspServer`] owns the UDP
//! socket and hands each datagram to the tunnel whose keys its SPI names; a tunnel's
//! [`JuniperEsp`] holds its associations, answers the probes (the single zero byte, echoed),
//! seals packets to the client's address and opens them from it, and makes new keys for a
//! rekey.
//!
//! Whatever arrives, the worst it gets is a (throttled) log line and the datagram dropped.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use oc_proto::esp::{
    is_juniper_probe, EspInbound, EspKeys, EspOutbound, EspParams, EspSuite, NextHeader,
    JUNIPER_PROBE, SECRETS_BLOCK_LEN as ESP_SECRETS_LEN,
};
use oc_tls::esp::OpenSslEspCipher;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::{lock, open_logged, random_bytes, serve_esp, EspMode, Sealer, Throttle, TunSink};

/// A datagram and where it came from.
pub type Datagram = (Vec<u8>, SocketAddr);

/// Datagrams waiting for a tunnel; more are dropped.
const QUEUE: usize = 512;
/// SPIs below this are reserved.
const MIN_SPI: u32 = 256;

/// A gateway's ESP: its socket and which tunnel each SPI belongs to.
#[derive(Debug)]
pub struct JuniperEspServer {
    pub mode: EspMode,
    pub suite: EspSuite,
    pub port: u16,
    /// `--esp-lzo`: the configuration says LZO, and the Legacy IP packets for clients go
    /// LZO-compressed (next header 5), as Juniper gateways do.
    pub lzo: bool,
    /// Bound before the gateway says it listens; [`JuniperEspServer::serve`] takes it.
    bound: Mutex<Option<std::net::UdpSocket>>,
    socket: OnceLock<Arc<UdpSocket>>,
    routes: Mutex<HashMap<u32, mpsc::Sender<Datagram>>>,
}

impl JuniperEspServer {
    /// Binds ESP's socket on `ip`:`port` unless `mode` is off.
    pub fn new(mode: EspMode, ip: IpAddr, port: u16, suite: EspSuite) -> Self {
        Self {
            mode,
            suite,
            port,
            lzo: false,
            bound: Mutex::new(mode.bind(ip, port)),
            socket: OnceLock::new(),
            routes: Mutex::new(HashMap::new()),
        }
    }

    /// For the gateway's first log line.
    pub fn describe(&self) -> String {
        let bound = lock(&self.bound).is_some() || self.socket.get().is_some();
        self.mode.describe(bound, self.suite, self.port)
    }

    /// The ESP parameters a configuration offers: the suite, the port, the keys' lifetime
    /// (`rekey`, else an hour), `fallback` seconds without ESP before TLS, replay
    /// protection.
    pub fn params(&self, rekey: Option<Duration>, fallback: u32) -> EspParams {
        EspParams {
            encryption: Some(self.suite.encryption),
            integrity: Some(self.suite.integrity),
            compression: self.lzo,
            port: Some(self.port),
            lifetime_bytes: None,
            lifetime_seconds: Some(
                rekey
                    .and_then(|r| u32::try_from(r.as_secs()).ok())
                    .unwrap_or(3600),
            ),
            ssl_fallback: Some(fallback),
            replay_protection: Some(true),
        }
    }

    /// Serves the socket until the runtime ends (at once, when ESP is off).
    pub async fn serve(&self) -> Result<(), String> {
        let Some(socket) = lock(&self.bound).take() else {
            return Ok(());
        };
        let ready = |socket: &Arc<UdpSocket>| {
            let _ = self.socket.set(Arc::clone(socket));
        };
        serve_esp(socket, ready, |_, spi, datagram, from| {
            let tunnel = lock(&self.routes).get(&spi).cloned();
            match tunnel {
                Some(tunnel) if tunnel.try_send((datagram.to_vec(), from)).is_ok() => Ok(()),
                _ => Err(format!(
                    "ESP datagram for SPI {spi:#010x} ({} bytes) has no tunnel to take it",
                    datagram.len()
                )),
            }
        })
        .await
    }
}

/// Fresh keys for one direction: the SPI, the secrets block as the vendors send it, the
/// keys.
fn new_keys(suite: EspSuite) -> Result<(u32, [u8; ESP_SECRETS_LEN], EspKeys), String> {
    let spi = u32::from_be_bytes(random_bytes::<4>()).max(MIN_SPI);
    let secrets = random_bytes::<ESP_SECRETS_LEN>();
    let keys = EspKeys::from_block(spi, suite, &secrets).map_err(|e| e.to_string())?;
    Ok((spi, secrets, keys))
}

fn cipher(keys: &EspKeys) -> Result<OpenSslEspCipher, String> {
    OpenSslEspCipher::new(keys).map_err(|e| format!("ESP cipher: {e}"))
}

/// What an opened datagram held.
#[derive(Debug)]
pub enum Opened {
    /// A probe (answered unless `--refuse-esp`).
    Probe,
    /// A packet for the tun device, at this range of the datagram.
    Packet(std::ops::Range<usize>),
    Dropped,
}

/// A tunnel's ESP as it starts.
#[derive(Debug)]
pub struct Opening<'g> {
    pub side: JuniperEsp<'g>,
    pub datagrams: mpsc::Receiver<Datagram>,
    /// What the client is to send with (in the configuration).
    pub spi: u32,
    pub secrets: [u8; ESP_SECRETS_LEN],
}

/// One tunnel's ESP.
#[derive(Debug)]
pub struct JuniperEsp<'g> {
    server: &'g JuniperEspServer,
    socket: Arc<UdpSocket>,
    suite: EspSuite,
    /// What the client sends with (the keys of our configuration, then of our rekeys).
    inbound: EspInbound<OpenSslEspCipher>,
    /// What we send with: the client's keys, once they came.
    outbound: Option<EspOutbound<OpenSslEspCipher>>,
    /// The SPIs routed to this tunnel (unrouted when it ends).
    spis: Vec<u32>,
    sender: mpsc::Sender<Datagram>,
    /// Where the client's ESP comes from (its latest probe or packet).
    pub client: Option<SocketAddr>,
    /// The client turned ESP on: packets for it go here.
    pub on: bool,
    /// A probe came before the client's keys (they race on different paths): it is
    /// answered when they come.
    probe_waiting: bool,
    pub rekeys: u32,
    /// Packets sent LZO-compressed.
    lzo_sent: u64,
    drops: Throttle,
    probes: Throttle,
    sealer: Sealer,
}

impl<'g> JuniperEsp<'g> {
    /// New keys for the client to send with, routed to this tunnel: the side, the queue of
    /// its datagrams, and the SPI and secrets for the configuration. `None` when ESP is not
    /// served.
    pub fn open(server: &'g JuniperEspServer) -> Result<Option<Opening<'g>>, String> {
        let Some(socket) = server.socket.get().cloned() else {
            return Ok(None);
        };
        let suite = server.suite;
        let (spi, secrets, keys) = new_keys(suite)?;
        let (sender, datagrams) = mpsc::channel(QUEUE);
        let mut side = Self {
            server,
            socket,
            suite,
            inbound: EspInbound::new(spi, cipher(&keys)?, true),
            outbound: None,
            spis: Vec::new(),
            sender,
            client: None,
            on: false,
            probe_waiting: false,
            rekeys: 0,
            lzo_sent: 0,
            drops: Throttle::default(),
            probes: Throttle::default(),
            sealer: Sealer::default(),
        };
        side.route(spi);
        Ok(Some(Opening {
            side,
            datagrams,
            spi,
            secrets,
        }))
    }

    fn route(&mut self, spi: u32) {
        lock(&self.server.routes).insert(spi, self.sender.clone());
        self.spis.push(spi);
        // The current SPI and the previous one (late packets) are enough.
        while self.spis.len() > 2 {
            let old = self.spis.remove(0);
            lock(&self.server.routes).remove(&old);
        }
    }

    /// The client's keys: what we send with from now on (a probe that came first is
    /// answered now).
    pub async fn client_keys(&mut self, spi: u32, secrets: &[u8]) -> Result<(), String> {
        let keys = EspKeys::from_block(spi, self.suite, secrets).map_err(|e| e.to_string())?;
        let cipher = cipher(&keys)?;
        match self.outbound.as_mut() {
            Some(outbound) => outbound.rekey(spi, cipher),
            None => self.outbound = Some(EspOutbound::new(spi, cipher)),
        }
        if let Some(client) = self
            .client
            .filter(|_| std::mem::take(&mut self.probe_waiting))
        {
            self.answer_probe(client).await;
        }
        Ok(())
    }

    /// A rekey: new keys for the client to send with (the old ones keep working for late
    /// packets); the SPI and secrets to send the client.
    pub fn rekey(&mut self) -> Result<(u32, [u8; ESP_SECRETS_LEN]), String> {
        let (spi, secrets, keys) = new_keys(self.suite)?;
        self.inbound.rekey(spi, cipher(&keys)?);
        self.route(spi);
        self.rekeys += 1;
        Ok((spi, secrets))
    }

    /// Opens a datagram in place; answers a probe (unless `--refuse-esp`).
    pub async fn open_datagram(&mut self, datagram: &mut [u8], from: SocketAddr) -> Opened {
        let Some(range) = open_logged(&mut self.inbound, datagram, from, &mut self.drops) else {
            return Opened::Dropped;
        };
        let payload = datagram.get(range.clone()).unwrap_or_default();
        if !is_juniper_probe(payload) {
            self.client = Some(from);
            return Opened::Packet(range);
        }
        if self.server.mode == EspMode::Refuse {
            self.probes.log(format_args!(
                "{from}: ESP probe left unanswered (--refuse-esp)"
            ));
            return Opened::Dropped;
        }
        self.client = Some(from);
        if self.outbound.is_none() {
            self.probe_waiting = true;
            log!("{from}: ESP probe before the client's keys; answered when they come");
            return Opened::Dropped;
        }
        self.answer_probe(from).await;
        Opened::Probe
    }

    async fn answer_probe(&mut self, from: SocketAddr) {
        let next = NextHeader::for_family(from.is_ipv6());
        match self.send(&JUNIPER_PROBE, next).await {
            Ok(()) => self.probes.log(format_args!("{from}: ESP probe answered")),
            Err(e) => log!("{from}: answering an ESP probe: {e}"),
        }
    }

    /// Seals `packet` and sends it to the client.
    pub async fn send(&mut self, packet: &[u8], next: NextHeader) -> Result<(), String> {
        let (Some(outbound), Some(to)) = (self.outbound.as_mut(), self.client) else {
            return Err("no keys or address for the client yet".into());
        };
        // Never a probe's answer: clients tell those apart before they inflate.
        let datagram = if self.server.lzo && next == NextHeader::Ipv4 && packet != JUNIPER_PROBE {
            self.lzo_sent += 1;
            let compressed = lzo1x::compress(packet, lzo1x::CompressLevel::default());
            self.sealer
                .seal(outbound, &compressed, NextHeader::LzoIpv4)?
        } else {
            self.sealer.seal(outbound, packet, next)?
        };
        self.socket
            .send_to(datagram, to)
            .await
            .map(drop)
            .map_err(|e| format!("sending ESP: {e}"))
    }

    /// Whether packets for the client go here.
    pub fn carries(&self) -> bool {
        self.on && self.outbound.is_some() && self.client.is_some()
    }

    pub fn counters(&self) -> String {
        let c = self.inbound.counters();
        format!(
            "{} accepted, {} dropped, {} sent LZO-compressed",
            c.accepted,
            c.dropped(),
            self.lzo_sent
        )
    }
}

/// The next datagram of a tunnel's ESP queue; a tunnel without ESP (no queue) waits for
/// ever.
pub async fn next_datagram(queue: &mut Option<mpsc::Receiver<Datagram>>) -> Option<Datagram> {
    match queue {
        Some(queue) => queue.recv().await,
        None => std::future::pending().await,
    }
}

/// Datagrams handled before the tun device gets what they carried.
const BATCH: usize = 64;

/// Datagrams from the client (`next` and those queued behind it, up to a batch) opened by
/// `esp`, their packets to `sink`, then one write to the tun device.
pub async fn esp_input(
    esp: &mut JuniperEsp<'_>,
    sink: &mut TunSink,
    mut next: Datagram,
    datagrams: &mut mpsc::Receiver<Datagram>,
    device: &tun_rs::AsyncDevice,
) {
    for _ in 0..BATCH {
        let (datagram, from) = &mut next;
        if let Opened::Packet(range) = esp.open_datagram(datagram, *from).await {
            let packet = datagram.get(range).unwrap_or_default();
            sink.deliver(packet, *from, device);
        }
        match datagrams.try_recv() {
            Ok(more) => next = more,
            Err(_) => break,
        }
    }
    sink.flush(device);
}

impl Drop for JuniperEsp<'_> {
    fn drop(&mut self) {
        let mut routes = lock(&self.server.routes);
        for spi in &self.spis {
            routes.remove(spi);
        }
    }
}
