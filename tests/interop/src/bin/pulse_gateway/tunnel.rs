//! An upgraded connection: the login ([`Link::login`]), the configuration, then packets
//! both ways until the client says goodbye, the session ends or another tunnel replaces
//! this one.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use ferroconnect_interop::gateway::{
    esp_input, next_datagram, Datagram, JuniperEsp, Tls, TunHold, TunSink, Upgraded,
};
use ipnet::Ipv4Net;
use oc_net::TunReader;
use oc_proto::esp::NextHeader;
use oc_proto::ip_config::IpConfig;
use oc_proto::pulse::config::{
    esp_config, main_config, parse_esp_config, parse_esp_control, sub_type, PulseConfig, ESP_CONFIG,
};
use oc_proto::pulse::ift::{
    frame_in_place, packet, IftDecoder, IftPacket, HEADER_LEN, JUNIPER_CONFIG, JUNIPER_CONTROL,
    JUNIPER_DATA, JUNIPER_END_OF_CONFIG, JUNIPER_FATAL, JUNIPER_LOGOUT, JUNIPER_SESSION_INFO,
    JUNIPER_SESSION_INFO_ACK, VENDOR_JUNIPER,
};
use oc_proto::pulse::ttls::TtlsLink;
use oc_proto::pulse::PulseError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::Gateway;

/// The upgrade's answer.
const SWITCHING: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\n\r\n";
/// How long the client may take over one message of the login or configuration.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Room before a packet read from tun: ESP's header and IV, or IF-T's 16 bytes.
const HEADROOM: usize = 24;
/// Seconds without ESP after which the client falls back to TLS (its DPD).
const SSL_FALLBACK: u32 = 10;
/// The largest piece `--split-writes` sends a data message in.
const MAX_PIECE: usize = 1024;

/// A message read whole, owned.
#[derive(Debug, Clone)]
pub struct Message {
    vendor: u32,
    kind: u32,
    seq: u32,
    pub payload: Vec<u8>,
}

impl Message {
    pub fn is(&self, vendor: u32, kind: u32) -> bool {
        self.vendor == vendor && self.kind == kind
    }

    pub fn packet(&self) -> IftPacket<'_> {
        IftPacket {
            vendor: self.vendor,
            kind: self.kind,
            seq: self.seq,
            payload: &self.payload,
        }
    }
}

/// One client's connection.
pub struct Link<'g> {
    pub gw: &'g Gateway,
    pub peer: SocketAddr,
    tls: Tls,
    decoder: IftDecoder,
    queue: VecDeque<Message>,
    /// The id of our last EAP request.
    pub eap_id: u8,
    /// Data messages of one tun read, sent in one write.
    out: Vec<u8>,
    /// EAP-TTLS, once `--ttls` started it.
    pub ttls: Option<TtlsLink>,
}

/// Runs the login, then the tunnel, on an upgraded connection.
pub async fn run(gw: &Gateway, upgraded: Upgraded<()>) -> Result<String, String> {
    let Upgraded {
        mut tls,
        peer,
        early,
        ..
    } = upgraded;
    tls.write_all(SWITCHING)
        .await
        .map_err(|e| format!("answering the upgrade: {e}"))?;
    let mut link = Link {
        gw,
        peer,
        tls,
        decoder: IftDecoder::default(),
        queue: VecDeque::new(),
        eap_id: 0,
        out: Vec::new(),
        ttls: None,
    };
    link.take(&early)?;
    let cookie = tokio::time::timeout(4 * MESSAGE_TIMEOUT, link.login())
        .await
        .map_err(|_| "the login took too long".to_string())??;
    let generation = gw.link.claim_for(&cookie);
    let result = match gw.link.hold(generation).await {
        Some(hold) => link.tunnel(hold).await,
        None => Ok("replaced before it started".to_string()),
    };
    gw.link.released(generation);
    let _ = link.tls.shutdown().await;
    let end = result?;
    log!("{peer}: Pulse tunnel {generation} ended: {end}");
    Ok(format!("Pulse tunnel ended: {end}"))
}

impl<'g> Link<'g> {
    fn take(&mut self, bytes: &[u8]) -> Result<(), String> {
        let queue = &mut self.queue;
        self.decoder
            .decode(bytes, |p| {
                queue.push_back(Message {
                    vendor: p.vendor,
                    kind: p.kind,
                    seq: p.seq,
                    payload: p.payload.to_vec(),
                });
                Ok::<_, PulseError>(())
            })
            .map_err(|e| format!("bad IF-T from the client: {e}"))
    }

    /// The client's next whole message.
    pub async fn next(&mut self) -> Result<Message, String> {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            if let Some(message) = self.queue.pop_front() {
                return Ok(message);
            }
            let n = tokio::time::timeout(MESSAGE_TIMEOUT, self.tls.read(&mut buf))
                .await
                .map_err(|_| format!("nothing from the client in {MESSAGE_TIMEOUT:?}"))?
                .map_err(|e| format!("reading from the client: {e}"))?;
            if n == 0 {
                return Err("closed by the client".into());
            }
            self.take(buf.get(..n).unwrap_or_default())?;
        }
    }

    /// One message, in one TLS record (upstream reads each login message whole).
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.tls
            .write_all(bytes)
            .await
            .map_err(|e| format!("sending to the client: {e}"))
    }

    /// A data message in pieces of 1, 2, 4, ... bytes (`--split-writes`).
    async fn send_data(&mut self, message: &[u8]) -> Result<(), String> {
        let (mut rest, mut piece) = (message, 1);
        while !rest.is_empty() {
            let (now, later) = rest.split_at(piece.min(rest.len()));
            self.send(now).await?;
            self.tls
                .flush()
                .await
                .map_err(|e| format!("sending to the client: {e}"))?;
            rest = later;
            piece = (piece * 2).min(MAX_PIECE);
        }
        Ok(())
    }

    /// The configuration (and ESP's keys when it is offered), the tun device, the packets.
    async fn tunnel(&mut self, mut hold: TunHold<'_>) -> Result<String, String> {
        let common = &self.gw.config.common;
        hold.configure(
            common.tunnel_addr,
            common.client_addr,
            self.gw.config.mtu,
            None,
        )
        .await?;
        let (esp, mut datagrams) = self.configure().await?;
        log!(
            "{}: Pulse tunnel for client {}, gateway {}, ESP {}",
            self.peer,
            common.client_addr,
            common.tunnel_addr,
            if esp.is_some() { "offered" } else { "off" }
        );
        let mut carrier = Carrier {
            esp,
            sink: TunSink::new(IpAddr::V4(common.client_addr)),
        };
        let end = self.carry(&mut carrier, &mut hold, &mut datagrams).await;
        if let Some(esp) = &carrier.esp {
            log!(
                "{}: ESP: {}, {} rekeys",
                self.peer,
                esp.counters(),
                esp.rekeys
            );
        }
        end
    }

    /// The main configuration, ESP's keys, the end of the configuration.
    async fn configure(
        &mut self,
    ) -> Result<(Option<JuniperEsp<'g>>, Option<mpsc::Receiver<Datagram>>), String> {
        let gw = self.gw;
        let config = &gw.config;
        let common = &config.common;
        let mut pulse = PulseConfig {
            ip: IpConfig {
                mtu: config.mtu,
                ipv4: Some(common.client_addr),
                ipv4_netmask: Some(Ipv4Addr::BROADCAST),
                dns: common.dns.iter().copied().map(IpAddr::V4).collect(),
                split_include4: common
                    .routes
                    .iter()
                    .filter_map(|(net, prefix)| Ipv4Net::new(*net, *prefix).ok())
                    .collect(),
                ..IpConfig::default()
            },
            ..PulseConfig::default()
        };
        let opening = JuniperEsp::open(&gw.esp)?;
        if opening.is_some() {
            pulse.esp = gw.esp.params(config.esp_rekey, SSL_FALLBACK);
        }
        self.send(&main_config(0, &pulse)).await?;
        let mut datagrams = None;
        let mut esp = None;
        if let Some(opening) = opening {
            log!(
                "{}: ESP keys for the client: SPI {:#010x}",
                self.peer,
                opening.spi
            );
            self.send(&esp_config(0, opening.spi, &opening.secrets))
                .await?;
            esp = Some(opening.side);
            datagrams = Some(opening.datagrams);
        }
        self.send(&packet(VENDOR_JUNIPER, JUNIPER_END_OF_CONFIG, 0, &[0; 4]))
            .await?;
        if config.session_info {
            let info = b"sessionId=ferroconnect-test-session\n\0";
            self.send(&packet(VENDOR_JUNIPER, JUNIPER_SESSION_INFO, 0, info))
                .await?;
        }
        Ok((esp, datagrams))
    }

    /// The packet loop.
    async fn carry(
        &mut self,
        carrier: &mut Carrier<'_>,
        hold: &mut TunHold<'_>,
        datagrams: &mut Option<mpsc::Receiver<Datagram>>,
    ) -> Result<String, String> {
        let device = hold.device();
        let mut from_tun = TunReader::new(HEADROOM);
        let mut buf = vec![0u8; 64 * 1024];
        let never = Duration::from_secs(365 * 24 * 3600);
        let expire = tokio::time::sleep(self.gw.config.expire.unwrap_or(never));
        tokio::pin!(expire);
        let every = self.gw.config.esp_rekey.unwrap_or(never);
        let mut rekey = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        // What came with the last login message.
        let queued: Vec<Message> = self.queue.drain(..).collect();
        for message in &queued {
            if let Some(end) = self
                .client_message(message.packet(), carrier, device)
                .await?
            {
                return Ok(end);
            }
        }
        loop {
            tokio::select! {
                // What the client says first: its goodbye must not lose a race with a packet
                // for it.
                biased;
                () = hold.replaced() => return Ok("replaced by a newer tunnel or logged out".into()),
                () = &mut expire => {
                    let fatal = b"errorType=7 errorString=Session%20expired%20(--expire)\n";
                    self.send(&packet(VENDOR_JUNIPER, JUNIPER_FATAL, 0, fatal)).await?;
                    return Ok("expired (--expire): a fatal error sent".into());
                }
                _ = rekey.tick() => self.rekey(carrier).await?,
                read = self.tls.read(&mut buf) => {
                    let n = match read {
                        Err(e) => return Err(format!("reading from the client: {e}")),
                        Ok(0) => return Ok("closed by the client".into()),
                        Ok(n) => n,
                    };
                    self.take(buf.get(..n).unwrap_or_default())?;
                    let messages: Vec<Message> = self.queue.drain(..).collect();
                    for message in &messages {
                        if let Some(end) = self.client_message(message.packet(), carrier, device).await? {
                            return Ok(end);
                        }
                    }
                    carrier.sink.flush(device);
                }
                next = next_datagram(datagrams) => {
                    if let (Some(first), Some(esp), Some(queue)) = (next, carrier.esp.as_mut(), datagrams.as_mut()) {
                        esp_input(esp, &mut carrier.sink, first, queue, device).await;
                    }
                }
                read = from_tun.recv(device) => {
                    let count = read.map_err(|e| format!("reading tun: {e}"))?;
                    if let Err(e) = self.send_to_client(carrier, &mut from_tun, count).await {
                        return self.last_words(e, carrier, device).await;
                    }
                }
            }
        }
    }

    /// A write to the client failed: it may have said goodbye and gone while a packet was
    /// on its way; what it sent last is read before the failure is believed.
    async fn last_words(
        &mut self,
        failure: String,
        carrier: &mut Carrier<'_>,
        device: &tun_rs::AsyncDevice,
    ) -> Result<String, String> {
        let mut buf = vec![0u8; 16 * 1024];
        let read = tokio::time::timeout(Duration::from_millis(200), self.tls.read(&mut buf));
        if let Ok(Ok(n)) = read.await {
            self.take(buf.get(..n).unwrap_or_default())?;
        }
        let messages: Vec<Message> = self.queue.drain(..).collect();
        for message in &messages {
            if let Some(end) = self
                .client_message(message.packet(), carrier, device)
                .await?
            {
                return Ok(end);
            }
        }
        Err(failure)
    }

    /// One message from the client; `Some` when it ends the tunnel.
    async fn client_message(
        &mut self,
        msg: IftPacket<'_>,
        carrier: &mut Carrier<'_>,
        device: &tun_rs::AsyncDevice,
    ) -> Result<Option<String>, String> {
        let peer = self.peer;
        match (msg.vendor, msg.kind) {
            (VENDOR_JUNIPER, JUNIPER_DATA) => carrier.sink.deliver(msg.payload, peer, device),
            (VENDOR_JUNIPER, JUNIPER_LOGOUT) => {
                return Ok(Some("the client said goodbye".into()));
            }
            (VENDOR_JUNIPER, JUNIPER_CONFIG) if sub_type(msg.payload) == Ok(ESP_CONFIG) => {
                let (spi, secrets) = parse_esp_config(msg.payload).map_err(|e| e.to_string())?;
                if let Some(esp) = carrier.esp.as_mut() {
                    esp.client_keys(spi, secrets).await?;
                    log!("{peer}: the client's ESP keys: SPI {spi:#010x}");
                }
            }
            (VENDOR_JUNIPER, JUNIPER_CONTROL) => match parse_esp_control(msg.payload) {
                Some(on) => {
                    if let Some(esp) = carrier.esp.as_mut() {
                        esp.on = on;
                    }
                    log!("{peer}: the client said ncmo={}", u8::from(on));
                }
                None => log!(
                    "{peer}: control text {:?}",
                    String::from_utf8_lossy(msg.payload)
                ),
            },
            (VENDOR_JUNIPER, JUNIPER_SESSION_INFO_ACK) => {
                log!("{peer}: session information acknowledged");
            }
            (vendor, kind) => log!(
                "{peer}: message of vendor {vendor:#x}, type {kind:#x} ({} bytes) ignored",
                msg.payload.len()
            ),
        }
        Ok(None)
    }

    /// `--esp-rekey`: new keys for the client to send with.
    async fn rekey(&mut self, carrier: &mut Carrier<'_>) -> Result<(), String> {
        let Some(esp) = carrier.esp.as_mut() else {
            return Ok(());
        };
        let (spi, secrets) = esp.rekey()?;
        log!(
            "{}: ESP rekey {}: new SPI {spi:#010x} for the client",
            self.peer,
            esp.rekeys
        );
        self.send(&esp_config(0, spi, &secrets)).await
    }

    /// Packets from the tun device: over ESP when the client has it on, else Juniper/4
    /// over TLS.
    async fn send_to_client(
        &mut self,
        carrier: &mut Carrier<'_>,
        from_tun: &mut TunReader,
        count: usize,
    ) -> Result<(), String> {
        for i in 0..count {
            let Some(framed) = from_tun.framed_mut(i) else {
                continue;
            };
            // The lab's tunnels are Legacy IP: the kernel's IPv6 chatter stays here.
            if framed.get(HEADROOM).is_some_and(|b| b >> 4 == 6) {
                continue;
            }
            if let Some(esp) = carrier.esp.as_mut().filter(|e| e.carries()) {
                let packet = framed.get(HEADROOM..).unwrap_or_default();
                if let Err(e) = esp.send(packet, NextHeader::Ipv4).await {
                    carrier.sink.note(format_args!("{}: ESP: {e}", self.peer));
                }
                continue;
            }
            let Some(room) = framed.get_mut(HEADROOM - HEADER_LEN..) else {
                continue;
            };
            let Ok(message) = frame_in_place(room, 0) else {
                continue;
            };
            if self.gw.config.split_writes {
                self.send_data(message).await?;
            } else {
                self.out.extend_from_slice(message);
            }
        }
        // One write for the read: the fewer writes, the fewer chances to write after the
        // client's goodbye.
        let out = std::mem::take(&mut self.out);
        let sent = if out.is_empty() {
            Ok(())
        } else {
            self.send(&out).await
        };
        self.out = out;
        self.out.clear();
        sent
    }
}

/// The packets' side of a tunnel.
struct Carrier<'g> {
    esp: Option<JuniperEsp<'g>>,
    sink: TunSink,
}
