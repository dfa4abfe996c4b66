//! The ESP socket of the gateways whose UDP is ESP (GlobalProtect, Network Connect): bound
//! before the gateway says it listens, then served: each datagram with an ESP header goes
//! to the gateway's router by its SPI; what has no header, or is refused, is logged
//! (throttled) and dropped.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use oc_proto::esp::packet::EspHeader;
use oc_proto::esp::{EspCipher, EspInbound, EspOutbound, EspSuite, NextHeader, MAX_ESP_PACKET_LEN};
use tokio::net::UdpSocket;

use super::Throttle;

/// Whether and how a gateway offers ESP (`--no-esp`, `--refuse-esp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EspMode {
    Off,
    /// Keys handed out, probes left unanswered.
    Refuse,
    On,
}

impl EspMode {
    /// The ESP socket on `ip`:`port`: `None` when ESP is off, or (said in the log) when it
    /// cannot be bound.
    pub fn bind(self, ip: IpAddr, port: u16) -> Option<std::net::UdpSocket> {
        if self == Self::Off {
            return None;
        }
        let addr = SocketAddr::new(ip, port);
        match std::net::UdpSocket::bind(addr) {
            Ok(socket) => Some(socket),
            Err(e) => {
                log!("cannot bind ESP on udp://{addr}: {e}; no ESP");
                None
            }
        }
    }

    /// What the gateway's first log line says of its ESP (`bound`: it has its socket).
    pub fn describe(self, bound: bool, suite: EspSuite, port: u16) -> String {
        match (self, bound) {
            (Self::Off, _) | (_, false) => "off".to_string(),
            (Self::Refuse, true) => format!("keys only, probes unanswered (port {port})"),
            (Self::On, true) => format!("{suite} on udp port {port}"),
        }
    }
}

/// Serves `socket` until the runtime ends: `ready` gets it first; then `route` gets each
/// datagram (its SPI, bytes and sender, and the socket), and says why when it drops one.
pub async fn serve_esp(
    socket: std::net::UdpSocket,
    ready: impl FnOnce(&Arc<UdpSocket>),
    mut route: impl FnMut(&Arc<UdpSocket>, u32, &[u8], SocketAddr) -> Result<(), String>,
) -> Result<(), String> {
    socket
        .set_nonblocking(true)
        .map_err(|e| format!("ESP socket: {e}"))?;
    let socket = Arc::new(UdpSocket::from_std(socket).map_err(|e| format!("ESP socket: {e}"))?);
    log!(
        "ESP on udp://{}",
        socket.local_addr().map_err(|e| e.to_string())?
    );
    ready(&socket);
    let mut strays = Throttle::default();
    let mut buf = vec![0u8; MAX_ESP_PACKET_LEN];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => {
                log!("ESP receive: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let datagram = buf.get(..n).unwrap_or_default();
        let routed = match EspHeader::parse(datagram) {
            Some(header) => route(&socket, header.spi, datagram, from),
            None => Err(format!(
                "ESP datagram of {n} bytes is too short for a header"
            )),
        };
        if let Err(why) = routed {
            strays.log(format_args!("{from}: {why}; dropped"));
        }
    }
}

/// Room to seal packets in: headroom, the longest packet, tailroom.
#[derive(Debug)]
pub struct Sealer {
    out: Vec<u8>,
}

impl Default for Sealer {
    fn default() -> Self {
        Self {
            out: vec![0; MAX_ESP_PACKET_LEN + 128],
        }
    }
}

impl Sealer {
    /// `packet` sealed under `outbound`: the datagram to send.
    pub fn seal<C: EspCipher>(
        &mut self,
        outbound: &mut EspOutbound<C>,
        packet: &[u8],
        next: NextHeader,
    ) -> Result<&[u8], String> {
        let head = outbound.headroom();
        let end = head + packet.len();
        let room = self
            .out
            .get_mut(head..end)
            .ok_or_else(|| format!("a packet of {} bytes is too long", packet.len()))?;
        room.copy_from_slice(packet);
        let sealed = outbound
            .seal(&mut self.out, head..end, next)
            .map_err(|e| e.to_string())?;
        Ok(self.out.get(sealed).unwrap_or_default())
    }
}

/// Opens `datagram` in place under `inbound`: where its payload lies, or `None` with the
/// drop logged (throttled by `drops`).
pub fn open_logged<C: EspCipher>(
    inbound: &mut EspInbound<C>,
    datagram: &mut [u8],
    from: SocketAddr,
    drops: &mut Throttle,
) -> Option<std::ops::Range<usize>> {
    match inbound.open(datagram) {
        Ok(opened) => Some(opened.payload),
        Err(drop) => {
            drops.log(format_args!("{from}: ESP packet dropped: {drop}"));
            None
        }
    }
}
