//! ESP over UDP: the dispatcher that sorts datagrams by SPI to the session whose keys they
//! use, and each session's task: the probes answered, then (from the first probe on) the
//! session's tunnel, packets between ESP and the tun device.
//!
//! Whatever arrives, the worst it gets is a (throttled) log line and the datagram dropped.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ferroconnect_interop::gateway::{
    flush_tun, lock, open_logged, serve_esp, Sealer, Throttle, TunHold,
};
use oc_net::{Coalescer, TunReader, TunWriter};
use oc_proto::esp::{EspInbound, EspOutbound, NextHeader};
use oc_proto::gp::config::EspConfig;
use oc_proto::gp::probe::reply_to_probe;
use oc_proto::ip::source;
use oc_tls::esp::OpenSslEspCipher;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::{is_ipv6, EspMode, Gateway};

/// A datagram and where it came from.
pub type Datagram = (Vec<u8>, SocketAddr);

/// Datagrams waiting for a session's task; more are dropped.
const QUEUE: usize = 512;
/// A client that sends nothing (upstream probes every 10 s) for this long is gone.
const SILENCE: Duration = Duration::from_secs(60);
/// Datagrams handled before the tun device gets what they carried.
const BATCH: usize = 64;

/// Serves ESP until the runtime ends (nothing to do when ESP is off).
pub async fn serve(gw: Arc<Gateway>) -> Result<(), String> {
    let Some(socket) = lock(&gw.esp_socket).take() else {
        return Ok(());
    };
    serve_esp(
        socket,
        |_| {},
        |socket, spi, datagram, from| match task_for(&gw, socket, spi) {
            Some(task) => task.try_send((datagram.to_vec(), from)).map_err(|_| {
                format!("ESP datagram for SPI {spi:#010x} dropped: its session is busy")
            }),
            None => Err(format!(
                "ESP datagram with unknown SPI {spi:#010x} ({} bytes)",
                datagram.len()
            )),
        },
    )
    .await
}

/// The queue of the task running `spi`'s keys (started if it is not running).
fn task_for(
    gw: &Arc<Gateway>,
    socket: &Arc<UdpSocket>,
    spi: u32,
) -> Option<mpsc::Sender<Datagram>> {
    let mut state = lock(&gw.state);
    let entry = state.esp.get_mut(&spi)?;
    if let Some(task) = entry.task.as_ref().filter(|t| !t.is_closed()) {
        return Some(task.clone());
    }
    let (sender, receiver) = mpsc::channel(QUEUE);
    entry.task = Some(sender.clone());
    let (gw, socket) = (Arc::clone(gw), Arc::clone(socket));
    let (keys, authcookie) = (entry.keys.clone(), entry.authcookie.clone());
    tokio::spawn(async move {
        let end = session(&gw, &socket, &keys, &authcookie, receiver).await;
        log!(
            "ESP session of SPI {:#010x} ended: {end}",
            keys.client_to_server.spi()
        );
    });
    Some(sender)
}

/// One session's ESP: both directions' associations, the client's UDP address.
struct Esp<'a> {
    gw: &'a Gateway,
    socket: &'a UdpSocket,
    inbound: EspInbound<OpenSslEspCipher>,
    outbound: EspOutbound<OpenSslEspCipher>,
    magic: IpAddr,
    client: IpAddr,
    drops: Throttle,
    probes: Throttle,
    sealer: Sealer,
}

/// What an opened datagram held.
enum Opened {
    /// A probe, answered.
    Probe,
    /// A packet for the tun device (its place in the datagram).
    Packet(std::ops::Range<usize>),
    Dropped,
}

async fn session(
    gw: &Gateway,
    socket: &UdpSocket,
    keys: &EspConfig,
    authcookie: &str,
    mut datagrams: mpsc::Receiver<Datagram>,
) -> String {
    let cipher = |k| OpenSslEspCipher::new(k).map_err(|e| format!("ESP cipher: {e}"));
    let (c2s, s2c) = match (
        cipher(&keys.client_to_server),
        cipher(&keys.server_to_client),
    ) {
        (Ok(c2s), Ok(s2c)) => (c2s, s2c),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let outbound = EspOutbound::new(keys.server_to_client.spi(), s2c);
    let mut esp = Esp {
        gw,
        socket,
        inbound: EspInbound::new(keys.client_to_server.spi(), c2s, true),
        outbound,
        magic: IpAddr::V4(gw.config.magic),
        client: IpAddr::V4(gw.config.common.client_addr),
        drops: Throttle::default(),
        probes: Throttle::default(),
        sealer: Sealer::default(),
    };
    // Until the first probe: nothing is the tunnel yet.
    let peer = loop {
        let Ok(next) = tokio::time::timeout(SILENCE, datagrams.recv()).await else {
            return format!("no probe for {SILENCE:?}");
        };
        let Some((mut datagram, from)) = next else {
            return "the session's keys ended".into();
        };
        match esp.open(&mut datagram, from).await {
            Opened::Probe => break from,
            Opened::Packet(_) => esp.drops.log(format_args!(
                "{from}: ESP packet before the first probe; dropped"
            )),
            Opened::Dropped => {}
        }
    };
    let Some(session) = gw.session(Some(authcookie)) else {
        return "the session was logged out".into();
    };
    let generation = gw.link.claim_for(authcookie);
    let Some(hold) = gw.link.hold(generation).await else {
        return "replaced before it started".into();
    };
    let common = &gw.config.common;
    if let Err(e) = hold
        .configure(
            common.tunnel_addr,
            common.client_addr,
            gw.config.tun_mtu(),
            None,
        )
        .await
    {
        gw.link.released(generation);
        return e;
    }
    log!(
        "{peer}: ESP tunnel {generation} for user {:?}: client {}, gateway {}",
        session.user,
        common.client_addr,
        common.tunnel_addr
    );
    if gw.config.esp_junk {
        esp.send_junk(peer).await;
    }
    let end = esp.carry(hold, peer, &mut datagrams).await;
    gw.link.released(generation);
    let counters = esp.inbound.counters();
    format!(
        "{end} ({} packets accepted, {} dropped)",
        counters.accepted,
        counters.dropped()
    )
}

impl Esp<'_> {
    /// Opens a datagram; answers a probe (unless `--refuse-esp`).
    async fn open(&mut self, datagram: &mut [u8], from: SocketAddr) -> Opened {
        let Some(range) = open_logged(&mut self.inbound, datagram, from, &mut self.drops) else {
            return Opened::Dropped;
        };
        let payload = datagram.get(range.clone()).unwrap_or_default();
        let Some((echo, reply)) = reply_to_probe(payload, self.magic) else {
            return Opened::Packet(range);
        };
        if self.gw.config.esp == EspMode::Refuse {
            self.probes.log(format_args!(
                "{from}: ESP probe {} left unanswered (--refuse-esp)",
                echo.sequence
            ));
            return Opened::Dropped;
        }
        match self.send(&reply, NextHeader::Ipv4, from).await {
            Ok(()) => {
                self.probes.log(format_args!(
                    "{from}: ESP probe {} from {} answered",
                    echo.sequence, echo.source
                ));
                Opened::Probe
            }
            Err(e) => {
                log!("{from}: answering an ESP probe: {e}");
                Opened::Dropped
            }
        }
    }

    /// Seals `packet` and sends it to `to`.
    async fn send(
        &mut self,
        packet: &[u8],
        next: NextHeader,
        to: SocketAddr,
    ) -> Result<(), String> {
        let datagram = self.sealer.seal(&mut self.outbound, packet, next)?;
        self.socket
            .send_to(datagram, to)
            .await
            .map(drop)
            .map_err(|e| format!("sending ESP: {e}"))
    }

    /// `--esp-junk`: what a hostile network sends the client with the session's ports: an
    /// empty datagram, a truncated one, an SPI nobody negotiated, the session's SPI with a
    /// forged ICV, and a replay of a genuine packet (a UDP datagram to the discard port).
    async fn send_junk(&mut self, peer: SocketAddr) {
        let mut stranger = 0xdead_beef_u32.to_be_bytes().to_vec();
        stranger.extend_from_slice(&[0; 60]);
        let discard = discard_packet(self.gw.config.common.tunnel_addr, self.client);
        let genuine = self.seal_copy(&discard);
        let mut forged = self.seal_copy(&discard);
        if let Some(last) = forged.last_mut() {
            *last ^= 1;
        }
        let junk: [&[u8]; 6] = [&[], &[1, 2, 3], &stranger, &forged, &genuine, &genuine];
        let mut sent = 0;
        for datagram in junk {
            match self.socket.send_to(datagram, peer).await {
                Ok(_) => sent += 1,
                Err(e) => log!("{peer}: sending junk: {e}"),
            }
        }
        log!(
            "{peer}: sent {sent} hostile ESP datagrams: empty, truncated, unknown SPI, forged \
             ICV, a genuine one and its replay"
        );
    }

    /// `packet` sealed under the session's keys, as bytes of its own.
    fn seal_copy(&mut self, packet: &[u8]) -> Vec<u8> {
        self.sealer
            .seal(&mut self.outbound, packet, NextHeader::Ipv4)
            .map(<[u8]>::to_vec)
            .unwrap_or_default()
    }

    /// The tunnel: datagrams to the tun device, the tun device's packets sealed to the
    /// client's latest address, until it goes quiet or another tunnel takes over.
    async fn carry(
        &mut self,
        mut hold: TunHold<'_>,
        mut peer: SocketAddr,
        datagrams: &mut mpsc::Receiver<Datagram>,
    ) -> String {
        let device = hold.device();
        let mut from_tun = TunReader::new(0);
        let mut to_tun = TunWriter::new();
        let mut coalescer: Box<Coalescer> = Box::default();
        let mut spoofed = Throttle::default();
        loop {
            tokio::select! {
                () = hold.replaced() => return "replaced by a newer tunnel or logged out".into(),
                next = tokio::time::timeout(SILENCE, datagrams.recv()) => {
                    let Ok(next) = next else {
                        return format!("the client was silent for {SILENCE:?}");
                    };
                    let Some(mut first) = next else {
                        return "the session's keys ended".into();
                    };
                    // This datagram and those queued behind it, then one write to tun.
                    for _ in 0..BATCH {
                        let (datagram, from) = &mut first;
                        match self.open(datagram, *from).await {
                            Opened::Probe => peer = *from,
                            Opened::Packet(range) => {
                                let packet = datagram.get(range).unwrap_or_default();
                                let sender = source(packet);
                                if sender != Some(self.client) {
                                    spoofed.log(format_args!(
                                        "{from}: ESP packet from {} (not the client's address); \
                                         dropped",
                                        sender.map_or("nowhere".to_string(), |a| a.to_string())
                                    ));
                                } else {
                                    if to_tun.is_full() {
                                        flush_tun(&mut to_tun, device, &mut coalescer);
                                    }
                                    to_tun.push(packet);
                                    peer = *from;
                                }
                            }
                            Opened::Dropped => {}
                        }
                        match datagrams.try_recv() {
                            Ok(more) => first = more,
                            Err(_) => break,
                        }
                    }
                    flush_tun(&mut to_tun, device, &mut coalescer);
                }
                read = from_tun.recv(device) => {
                    let count = match read {
                        Ok(count) => count,
                        Err(e) => return format!("reading tun: {e}"),
                    };
                    for i in 0..count {
                        let Some(packet) = from_tun.framed_mut(i) else { continue };
                        if is_ipv6(packet) {
                            continue;
                        }
                        let next = NextHeader::of_ip_packet(packet);
                        if let Err(e) = self.send(packet, next, peer).await {
                            self.drops.log(format_args!("{peer}: {e}"));
                        }
                    }
                }
            }
        }
    }
}

/// A UDP datagram of one zero byte from `from` to `to`'s discard port (9).
fn discard_packet(from: std::net::Ipv4Addr, to: IpAddr) -> Vec<u8> {
    let IpAddr::V4(to) = to else {
        return Vec::new();
    };
    let mut p = vec![0x45, 0, 0, 29, 0, 0, 0x40, 0, 64, 17, 0, 0];
    p.extend_from_slice(&from.octets());
    p.extend_from_slice(&to.octets());
    let sum = p
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let folded = (sum & 0xffff) + (sum >> 16);
    let checksum = !u16::try_from((folded & 0xffff) + (folded >> 16)).unwrap_or(0);
    p[10..12].copy_from_slice(&checksum.to_be_bytes());
    // UDP: port 9 to port 9, length 9, no checksum, one byte.
    p.extend_from_slice(&[0, 9, 0, 9, 0, 9, 0, 0, 0]);
    p
}
