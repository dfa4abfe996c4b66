//! The tunnel on a `/vpntunnel` connection: `200 OK`, the three binary exchanges, then
//! raw IP packets: from the client on TLS (read however it cuts them) and on its DTLS
//! association once handed over; to the client on DTLS while it has one, else on TLS, one
//! packet a record (9.01 reads a record as one packet). DPDs are echoed on the channel they
//! came on; the client's DTLS off sends everything back to TLS.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ferroconnect_interop::gateway::{lock, Answer, Carrier, Tls, TunHold, TunSink, Upgraded};
use ipnet::Ipv4Net;
use oc_net::TunReader;
use oc_proto::array::{
    control_type, dtls_answer, interface_answer, json_answer, PacketStream, CONTROL_DPD,
    CONTROL_DTLS, CONTROL_DTLS_OFF, INTERFACE_REQUEST, SPEED_TUNNEL_REQUEST,
};
use oc_proto::http::server::ServerRequest;
use oc_proto::ip_config::IpConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::Gateway;

/// The answer that starts the tunnel (nothing follows it until the client asks).
const STARTED: &[u8] = b"HTTP/1.1 200 OK\r\n\r\n";
/// The longest packet read from a client.
const MAX_PACKET: usize = 16384;

/// What the tunnel request decided.
#[derive(Debug)]
pub struct TunnelStart {
    cookie: String,
    id: String,
    generation: u64,
}

/// The tunnel request of a known session.
pub fn request(
    gw: &Gateway,
    peer: SocketAddr,
    request: &ServerRequest,
    cookie: String,
) -> Answer<TunnelStart> {
    let id = request.header("clientid").unwrap_or_default().to_string();
    log!(
        "{peer}: tunnel request: appid {:?}, client id {id:?}, host {:?}",
        request.header("appid"),
        request.header("hostname")
    );
    let generation = gw.link.claim_for(&cookie);
    Answer::Upgrade(TunnelStart {
        cookie,
        id,
        generation,
    })
}

/// Runs the tunnel until the client goes, the session is logged out, or another tunnel
/// replaces this one.
pub async fn run(gw: &Gateway, tunnel: Upgraded<TunnelStart>) -> Result<String, String> {
    let Upgraded {
        mut tls,
        peer,
        upgrade: start,
        ..
    } = tunnel;
    let result = match gw.link.hold(start.generation).await {
        Some(hold) => serve(gw, hold, &mut tls, peer, &start).await,
        None => Ok("replaced before it started".into()),
    };
    gw.link.released(start.generation);
    lock(&gw.state).dtls_waiting.remove(&start.id);
    let _ = tls.shutdown().await;
    let end = result?;
    log!("{peer}: Array tunnel {} ended: {end}", start.generation);
    Ok(format!("Array tunnel ended: {end}"))
}

async fn serve(
    gw: &Gateway,
    mut hold: TunHold<'_>,
    tls: &mut Tls,
    peer: SocketAddr,
    start: &TunnelStart,
) -> Result<String, String> {
    let write = |e: std::io::Error| format!("sending to the client: {e}");
    tls.write_all(STARTED).await.map_err(write)?;
    let config = &gw.config;
    let common = &config.common;
    let mut buf = vec![0u8; 64 * 1024];
    let request = read_request(tls, &mut buf).await?;
    if request != SPEED_TUNNEL_REQUEST {
        return Err(format!(
            "expected the speed-tunnel request, got {request:02x?}"
        ));
    }
    let dtls = common.dtls.is_some();
    let speed = serde_json::json!({
        "allow_speed_tunnel": u8::from(dtls),
        "speed_tunnel_encryption": 1,
        "keepalive_interval": config.keepalive,
    });
    tls.write_all(&json_answer(&speed)).await.map_err(write)?;
    let request = read_request(tls, &mut buf).await?;
    if request != INTERFACE_REQUEST {
        return Err(format!(
            "expected the interface request, got {request:02x?}"
        ));
    }
    let ip = IpConfig {
        ipv4: Some(common.client_addr),
        ipv4_netmask: Some(Ipv4Addr::BROADCAST),
        dns: common.dns.iter().copied().map(IpAddr::V4).collect(),
        default_domain: config.dns_suffix.clone(),
        split_include4: common
            .routes
            .iter()
            .filter_map(|(net, prefix)| Ipv4Net::new(*net, *prefix).ok())
            .collect(),
        ..IpConfig::default()
    };
    tls.write_all(&interface_answer(&ip)).await.map_err(write)?;
    hold.configure(
        common.tunnel_addr,
        common.client_addr,
        oc_proto::array::MTU,
        None,
    )
    .await?;
    log!(
        "{peer}: Array tunnel for client {}, gateway {}",
        common.client_addr,
        common.tunnel_addr
    );
    let mut link = Link {
        peer,
        sink: TunSink::new(IpAddr::V4(common.client_addr)),
        stream: PacketStream::new(MAX_PACKET),
        dtls: None,
    };
    // The DTLS associations of this client (by its id) come to this tunnel.
    let (sender, mut handed) = mpsc::channel(1);
    lock(&gw.state)
        .dtls_waiting
        .insert(start.id.clone(), (start.cookie.clone(), sender));
    let device = hold.device();
    let mut from_tun = TunReader::new(0);
    let mut dtls_buf = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            () = hold.replaced() => return Ok("replaced by a newer tunnel or logged out".into()),
            read = tls.read(&mut buf) => {
                let n = match read {
                    Err(e) => return Err(format!("reading from the client: {e}")),
                    Ok(0) => return Ok("closed by the client".into()),
                    Ok(n) => n,
                };
                let controls = link.tls_input(buf.get(..n).unwrap_or_default(), device);
                for kind in controls {
                    link.tls_control(gw, kind, tls).await?;
                }
            }
            carrier = handed.recv(), if link.dtls.is_none() => {
                if let Some(carrier) = carrier {
                    log!("{peer}: DTLS carries the tunnel");
                    link.dtls = Some(Carrier::from(carrier));
                }
            }
            read = dtls_read(&mut link.dtls, &mut dtls_buf) => {
                match read {
                    Ok(n) => {
                        let bytes = dtls_buf.get(..n).unwrap_or_default().to_vec();
                        link.dtls_input(&bytes, device).await;
                    }
                    Err(e) => {
                        log!("{peer}: DTLS ended: {e}; TLS carries the tunnel");
                        link.dtls = None;
                    }
                }
            }
            read = from_tun.recv(device) => {
                let count = read.map_err(|e| format!("reading tun: {e}"))?;
                link.send_to_client(&mut from_tun, count, tls).await?;
            }
        }
    }
}

/// One binary request: one TLS record, as the client writes it.
async fn read_request(tls: &mut Tls, buf: &mut [u8]) -> Result<Vec<u8>, String> {
    let n = tls
        .read(buf)
        .await
        .map_err(|e| format!("reading a request: {e}"))?;
    if n == 0 {
        return Err("closed by the client during the set-up".into());
    }
    Ok(buf.get(..n).unwrap_or_default().to_vec())
}

/// The next read on the DTLS association, when there is one (else never).
async fn dtls_read(dtls: &mut Option<Carrier>, buf: &mut [u8]) -> Result<usize, String> {
    match dtls {
        Some(carrier) => carrier.read(buf).await,
        None => std::future::pending().await,
    }
}

/// A tunnel's packets.
struct Link {
    peer: SocketAddr,
    sink: TunSink,
    stream: PacketStream,
    /// The client's DTLS association, once handed over (and until it says DTLS is off).
    dtls: Option<Carrier>,
}

impl Link {
    /// Packets from TLS to the tun device; the control packets' types, in order.
    fn tls_input(&mut self, bytes: &[u8], device: &tun_rs::AsyncDevice) -> Vec<u16> {
        let mut controls = Vec::new();
        let Self {
            stream, sink, peer, ..
        } = self;
        let dropped = stream.decode(bytes, |packet| match control_type(packet) {
            Some(kind) => controls.push(kind),
            None => sink.deliver(packet, *peer, device),
        });
        sink.flush(device);
        if dropped > 0 {
            log!("{peer}: {dropped} bytes from the client are not IP; dropped");
        }
        controls
    }

    /// A control packet on TLS: DPD echoed, the DTLS request answered, DTLS off noted.
    async fn tls_control(&mut self, gw: &Gateway, kind: u16, tls: &mut Tls) -> Result<(), String> {
        let peer = self.peer;
        let write = |e: std::io::Error| format!("sending to the client: {e}");
        match kind {
            CONTROL_DPD => {
                tls.write_all(&oc_proto::array::control(CONTROL_DPD, &[]))
                    .await
                    .map_err(write)?;
            }
            CONTROL_DTLS => match gw.config.common.dtls.filter(|d| !d.refuse) {
                Some(d) => {
                    log!("{peer}: DTLS request: port {} granted", d.port);
                    tls.write_all(&dtls_answer(d.port)).await.map_err(write)?;
                }
                None => {
                    log!("{peer}: DTLS request refused");
                    tls.write_all(b"no DTLS here").await.map_err(write)?;
                }
            },
            CONTROL_DTLS_OFF => {
                log!("{peer}: the client turned DTLS off");
                self.dtls = None;
            }
            other => log!("{peer}: control packet of type {other:#x} ignored"),
        }
        Ok(())
    }

    /// Records from the DTLS association: packets to the tun device, DPDs echoed there.
    async fn dtls_input(&mut self, bytes: &[u8], device: &tun_rs::AsyncDevice) {
        let mut dpds = 0;
        let mut stream = PacketStream::new(MAX_PACKET);
        let Self { sink, peer, .. } = self;
        stream.decode(bytes, |packet| match control_type(packet) {
            Some(CONTROL_DPD) => dpds += 1,
            Some(_) => {}
            None => sink.deliver(packet, *peer, device),
        });
        sink.flush(device);
        for _ in 0..dpds {
            if let Some(dtls) = self.dtls.as_mut() {
                let _ = dtls
                    .write_frame(&oc_proto::array::control(CONTROL_DPD, &[]))
                    .await;
            }
        }
    }

    /// Packets from the tun device: on DTLS while the client has it, else on TLS.
    async fn send_to_client(
        &mut self,
        from_tun: &mut TunReader,
        count: usize,
        tls: &mut Tls,
    ) -> Result<(), String> {
        for i in 0..count {
            let Some(packet) = from_tun.framed_mut(i) else {
                continue;
            };
            // The lab's tunnels are Legacy IP: the kernel's IPv6 chatter stays here.
            if packet.first().is_some_and(|b| b >> 4 == 6) {
                continue;
            }
            if let Some(dtls) = self.dtls.as_mut() {
                if dtls.write_frame(packet).await.is_ok() {
                    continue;
                }
                log!("{}: DTLS send failed; TLS carries the tunnel", self.peer);
                self.dtls = None;
            }
            tls.write_all(packet)
                .await
                .map_err(|e| format!("sending to the client: {e}"))?;
        }
        Ok(())
    }
}
