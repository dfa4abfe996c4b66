//! The oNCP tunnel: `POST /dana/js?prot=1&svc=4` answered 200, then on the connection the
//! client's hello, our status byte and configuration (KMP 301), and packets both ways: in
//! records of KMP 300 over TLS, or over ESP once the client's probes were answered and it
//! turned ESP on (KMP 303). The client's KMP 302s give the keys we send with; with
//! `--esp-rekey` ours give it new ones to send with.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use ferroconnect_interop::gateway::{
    esp_input, field, next_datagram, parse_query, text, Answer, Datagram, JuniperEsp, Tls, TunHold,
    TunSink, Upgraded,
};
use ipnet::Ipv4Net;
use oc_net::TunReader;
use oc_proto::esp::NextHeader;
use oc_proto::http::server::ServerRequest;
use oc_proto::ip_config::IpConfig;
use oc_proto::nc::config::{config_record, esp_keys_record, NcConfig};
use oc_proto::nc::oncp::{
    frame_in_place, parse_hostname_packet, status_record, termination, OncpDecoder, OncpEvent,
    DATA_HEADROOM, KMP_CLIENT, KMP_ESP_KEYS, STATUS_OK,
};
use oc_proto::nc::NcError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::Gateway;

/// The answer that starts oNCP (its body is the tunnel).
const STARTED: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n";
/// How long the client may take to send its hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);
/// Room before a packet read from tun: ESP's header and IV, or oNCP's 22 bytes.
const HEADROOM: usize = 24;
/// Seconds without ESP after which the client falls back to TLS (its DPD).
const SSL_FALLBACK: u32 = 10;

/// What the tunnel request decided.
#[derive(Debug)]
pub struct TunnelStart {
    dsid: String,
    generation: u64,
}

/// The tunnel request: 401 for an unknown session, else the connection becomes its tunnel.
pub fn request(gw: &Gateway, peer: SocketAddr, request: &ServerRequest) -> Answer<TunnelStart> {
    let query = parse_query(&request.target);
    if field(&query, "prot") != Some("1") || field(&query, "svc") != Some("4") {
        log!("{peer}: tunnel request with {:?}; refused", request.target);
        return Answer::Final(text(400, "Bad Request", "text/plain", "bad request"));
    }
    let Some(dsid) = gw.session_of(request) else {
        log!("{peer}: tunnel request with an unknown DSID; refused");
        return Answer::Final(text(401, "Unauthorized", "text/plain", "unknown session"));
    };
    log!(
        "{peer}: tunnel request (NCP-Version {:?}, Connection {:?})",
        request.header("NCP-Version"),
        request.header("Connection")
    );
    let generation = gw.link.claim_for(&dsid);
    Answer::Upgrade(TunnelStart { dsid, generation })
}

/// Runs the tunnel until the client goes, the session is logged out or expires, or
/// another tunnel replaces this one.
pub async fn run(gw: &Gateway, tunnel: Upgraded<TunnelStart>) -> Result<String, String> {
    let Upgraded {
        mut tls,
        peer,
        upgrade: start,
        early,
    } = tunnel;
    tls.write_all(STARTED)
        .await
        .map_err(|e| format!("answering the tunnel request: {e}"))?;
    let result = match gw.link.hold(start.generation).await {
        Some(hold) => Oncp::new(gw, peer).run(hold, &mut tls, &early).await,
        None => Ok("replaced before it started".to_string()),
    };
    gw.link.released(start.generation);
    let _ = tls.shutdown().await;
    let end = result?;
    log!(
        "{peer}: oNCP tunnel {} of session {}... ended: {end}",
        start.generation,
        start.dsid.get(..6).unwrap_or_default()
    );
    Ok(format!("oNCP tunnel ended: {end}"))
}

/// One tunnel's state.
struct Oncp<'g> {
    gw: &'g Gateway,
    peer: SocketAddr,
    decoder: OncpDecoder,
    esp: Option<JuniperEsp<'g>>,
    sink: TunSink,
    /// The client's settings and controls of the last read, to act on.
    messages: Vec<(u16, Vec<u8>)>,
    /// Which half goes first when `--split-writes` cuts a record.
    cut: usize,
}

impl<'g> Oncp<'g> {
    fn new(gw: &'g Gateway, peer: SocketAddr) -> Self {
        Self {
            gw,
            peer,
            decoder: OncpDecoder::server(),
            esp: None,
            sink: TunSink::new(IpAddr::V4(gw.config.common.client_addr)),
            messages: Vec::new(),
            cut: 1,
        }
    }

    async fn run(
        mut self,
        mut hold: TunHold<'_>,
        tls: &mut Tls,
        early: &[u8],
    ) -> Result<String, String> {
        let hostname = tokio::time::timeout(HELLO_TIMEOUT, self.hello(tls, early))
            .await
            .map_err(|_| format!("no hello in {HELLO_TIMEOUT:?}"))??;
        log!("{}: oNCP hello from host {hostname:?}", self.peer);
        let mut datagrams = self.configure(tls).await?;
        let common = &self.gw.config.common;
        hold.configure(
            common.tunnel_addr,
            common.client_addr,
            self.gw.config.mtu,
            None,
        )
        .await?;
        log!(
            "{}: oNCP tunnel for client {}, gateway {}, ESP {}",
            self.peer,
            common.client_addr,
            common.tunnel_addr,
            if self.esp.is_some() { "offered" } else { "off" }
        );
        let end = self.carry(&mut hold, tls, &mut datagrams).await;
        if let Some(esp) = &self.esp {
            log!(
                "{}: ESP: {}, {} rekeys",
                self.peer,
                esp.counters(),
                esp.rekeys
            );
        }
        end
    }

    /// Reads until the client's hello: its host name.
    async fn hello(&mut self, tls: &mut Tls, early: &[u8]) -> Result<String, String> {
        let mut hello = None;
        let mut buf = vec![0u8; 4096];
        let mut input = early.to_vec();
        loop {
            let peer = self.peer;
            self.decoder
                .decode(&input, |event| {
                    match event {
                        OncpEvent::Hello(body) => hello = Some(parse_hostname_packet(body)),
                        other => log!("{peer}: {other:?} before the hello; ignored"),
                    }
                    Ok::<_, NcError>(())
                })
                .map_err(|e| e.to_string())?;
            match hello.take() {
                Some(Some(name)) => return Ok(name),
                Some(None) => return Err("the first record is not a hello".into()),
                None => {}
            }
            let n = tls
                .read(&mut buf)
                .await
                .map_err(|e| format!("reading the hello: {e}"))?;
            if n == 0 {
                return Err("closed before the hello".into());
            }
            input = buf.get(..n).unwrap_or_default().to_vec();
        }
    }

    /// The status byte and the configuration; ESP's side when it is offered.
    async fn configure(
        &mut self,
        tls: &mut Tls,
    ) -> Result<Option<mpsc::Receiver<Datagram>>, String> {
        let config = &self.gw.config;
        let common = &config.common;
        let mut nc = NcConfig {
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
            ..NcConfig::default()
        };
        let mut datagrams = None;
        if let Some(opening) = JuniperEsp::open(&self.gw.esp)? {
            nc.esp = self.gw.esp.params(config.esp_rekey, SSL_FALLBACK);
            nc.outbound = Some((opening.spi, opening.secrets.to_vec()));
            log!(
                "{}: ESP keys for the client: SPI {:#010x}",
                self.peer,
                opening.spi
            );
            self.esp = Some(opening.side);
            datagrams = Some(opening.datagrams);
        }
        self.write_record(tls, &status_record(STATUS_OK)).await?;
        let record = config_record(&nc).map_err(|e| e.to_string())?;
        if config.packet_mid_config {
            self.write_config_around_a_packet(tls, &record).await?;
        } else {
            self.write_record(tls, &record).await?;
        }
        Ok(datagrams)
    }

    /// `--packet-mid-config`: the configuration's record cut in two, and between the
    /// halves a record holding a whole KMP 300 with a Legacy IP packet, as some servers
    /// send (upstream skips it).
    async fn write_config_around_a_packet(
        &mut self,
        tls: &mut Tls,
        record: &[u8],
    ) -> Result<(), String> {
        let as_record = |body: &[u8]| -> Vec<u8> {
            let len = u16::try_from(body.len()).unwrap_or(u16::MAX);
            [&len.to_le_bytes()[..], body].concat()
        };
        let body = record.get(2..).unwrap_or_default();
        let (first, second) = body.split_at(body.len() / 2);
        // An ICMP echo reply's header fields with nothing behind them: 28 bytes of IPv4.
        let mut packet = vec![0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 1, 0, 0];
        packet.extend_from_slice(&self.gw.config.common.tunnel_addr.octets());
        packet.extend_from_slice(&self.gw.config.common.client_addr.octets());
        packet.extend_from_slice(&[0; 8]);
        let mut kmp = vec![0u8; 20];
        kmp[6..8].copy_from_slice(&300u16.to_be_bytes());
        kmp[18..20].copy_from_slice(&28u16.to_be_bytes());
        kmp.extend_from_slice(&packet);
        for part in [first, &kmp[..], second] {
            self.write_record(tls, &as_record(part)).await?;
        }
        log!(
            "{}: a packet put in the middle of the configuration (--packet-mid-config)",
            self.peer
        );
        Ok(())
    }

    /// One record, in one TLS write (or two with `--split-writes`).
    async fn write_record(&mut self, tls: &mut Tls, record: &[u8]) -> Result<(), String> {
        let sent = if self.gw.config.split_writes && record.len() > 1 {
            // A different cut each time: within the length prefix, the KMP header, the
            // packet.
            self.cut = self.cut % 29 + 1;
            let (first, second) = record.split_at(self.cut.min(record.len() - 1));
            match tls.write_all(first).await {
                Ok(()) => tls.write_all(second).await,
                Err(e) => Err(e),
            }
        } else {
            tls.write_all(record).await
        };
        sent.map_err(|e| format!("sending to the client: {e}"))
    }

    /// The packet loop.
    async fn carry(
        &mut self,
        hold: &mut TunHold<'_>,
        tls: &mut Tls,
        datagrams: &mut Option<mpsc::Receiver<Datagram>>,
    ) -> Result<String, String> {
        let device = hold.device();
        let mut from_tun = TunReader::new(HEADROOM);
        let mut buf = vec![0u8; 64 * 1024];
        let never = Duration::from_secs(365 * 24 * 3600);
        let expire = tokio::time::sleep(self.gw.config.expire.unwrap_or(never));
        tokio::pin!(expire);
        let rekey_every = self.gw.config.esp_rekey.unwrap_or(never);
        let mut rekey =
            tokio::time::interval_at(tokio::time::Instant::now() + rekey_every, rekey_every);
        loop {
            tokio::select! {
                () = hold.replaced() => return Ok("replaced by a newer tunnel or logged out".into()),
                () = &mut expire => {
                    tls.write_all(&termination(1)).await.map_err(|e| format!("ending: {e}"))?;
                    return Ok("expired (--expire): reason 1 sent".into());
                }
                _ = rekey.tick() => self.rekey(tls).await?,
                read = tls.read(&mut buf) => {
                    let n = match read {
                        Err(e) => return Err(format!("reading from the client: {e}")),
                        Ok(0) => return Ok("closed by the client".into()),
                        Ok(n) => n,
                    };
                    self.tls_input(buf.get(..n).unwrap_or_default(), device)?;
                    self.act_on_messages().await?;
                }
                next = next_datagram(datagrams) => {
                    if let (Some(first), Some(esp), Some(queue)) = (next, self.esp.as_mut(), datagrams.as_mut()) {
                        esp_input(esp, &mut self.sink, first, queue, device).await;
                    }
                }
                read = from_tun.recv(device) => {
                    let count = read.map_err(|e| format!("reading tun: {e}"))?;
                    self.send_to_client(&mut from_tun, count, tls).await?;
                }
            }
        }
    }

    /// Records from the client: packets to the tun device, messages kept for
    /// [`Oncp::act_on_messages`].
    fn tls_input(&mut self, bytes: &[u8], device: &tun_rs::AsyncDevice) -> Result<(), String> {
        let Self {
            decoder,
            sink,
            messages,
            peer,
            ..
        } = self;
        let decoded = decoder.decode(bytes, |event| {
            match event {
                OncpEvent::Packet(packet) => sink.deliver(packet, *peer, device),
                OncpEvent::Message { kind, payload } => messages.push((kind, payload.to_vec())),
                other => log!("{peer}: unexpected {other:?}; ignored"),
            }
            Ok::<_, NcError>(())
        });
        sink.flush(device);
        decoded.map_err(|e| format!("bad oNCP from the client: {e}"))
    }

    /// The client's settings (MTU, ESP on or off) and keys.
    async fn act_on_messages(&mut self) -> Result<(), String> {
        for (kind, payload) in std::mem::take(&mut self.messages) {
            let peer = self.peer;
            let read = NcConfig::parse(kind, &payload).map_err(|e| e.to_string());
            match (kind, read) {
                (KMP_CLIENT, Ok(settings)) => {
                    if settings.ip.mtu != 0 {
                        log!("{peer}: client's MTU {}", settings.ip.mtu);
                    }
                    if let Some(on) = settings.esp_enable {
                        if let Some(esp) = self.esp.as_mut() {
                            esp.on = on;
                        }
                        log!(
                            "{peer}: the client turned ESP {}{}",
                            if on { "on" } else { "off" },
                            if self.esp.is_some() {
                                ""
                            } else {
                                " (none offered)"
                            }
                        );
                    }
                }
                (KMP_ESP_KEYS, Ok(keys)) => match (keys.outbound, self.esp.as_mut()) {
                    (Some((spi, secrets)), Some(esp)) => {
                        esp.client_keys(spi, &secrets).await?;
                        log!("{peer}: the client's ESP keys: SPI {spi:#010x}");
                    }
                    _ => log!("{peer}: ESP keys without ESP; ignored"),
                },
                (kind, Ok(_)) => log!("{peer}: KMP {kind} from the client; ignored"),
                (kind, Err(e)) => {
                    return Err(format!("bad KMP {kind} from the client: {e}"));
                }
            }
        }
        Ok(())
    }

    /// `--esp-rekey`: new keys for the client to send with.
    async fn rekey(&mut self, tls: &mut Tls) -> Result<(), String> {
        let Some(esp) = self.esp.as_mut() else {
            return Ok(());
        };
        let (spi, secrets) = esp.rekey()?;
        log!(
            "{}: ESP rekey {}: new SPI {spi:#010x} for the client",
            self.peer,
            esp.rekeys
        );
        let record = esp_keys_record(spi, &secrets).map_err(|e| e.to_string())?;
        self.write_record(tls, &record).await
    }

    /// Packets from the tun device: over ESP when the client turned it on, else in
    /// records, one TLS write each (upstream reads a record at a time).
    async fn send_to_client(
        &mut self,
        from_tun: &mut TunReader,
        count: usize,
        tls: &mut Tls,
    ) -> Result<(), String> {
        for i in 0..count {
            let Some(framed) = from_tun.framed_mut(i) else {
                continue;
            };
            // oNCP is Legacy IP only: the kernel's IPv6 chatter stays here.
            if framed.get(HEADROOM).is_some_and(|b| b >> 4 == 6) {
                continue;
            }
            if let Some(esp) = self.esp.as_mut().filter(|e| e.carries()) {
                let packet = framed.get(HEADROOM..).unwrap_or_default();
                if let Err(e) = esp.send(packet, NextHeader::Ipv4).await {
                    self.sink.note(format_args!("{}: ESP: {e}", self.peer));
                }
                continue;
            }
            let Some(room) = framed.get_mut(HEADROOM - DATA_HEADROOM..) else {
                continue;
            };
            let Ok(frame) = frame_in_place(room) else {
                continue;
            };
            self.write_record(tls, frame).await?;
        }
        Ok(())
    }
}
