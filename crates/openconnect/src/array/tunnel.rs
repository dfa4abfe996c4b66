//! Array's tunnel, as upstream's `array_connect` and `array_mainloop` run it: the tunnel
//! request with our id, the speed-tunnel and interface answers, the DTLS request; then raw
//! IP packets on TLS (read however the server cuts them; control packets dropped) and, once
//! the gateway answers our DTLS greeting, on DTLS 1.0 (one a record). DPD is a control
//! packet on each channel at the gateway's keepalive interval, a dead peer after twice
//! that; leaving DTLS tells the gateway so (DTLS off) before TLS carries the packets. A
//! lost TLS connection reconnects with the cookie and the same id.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use oc_net::udp::RecvBatch;
use oc_net::TunReader;
use oc_proto::array::{
    client_id, control, control_type, dtls_greeting, dtls_request, parse_dtls_answer,
    parse_interface, read_dtls_answer, tunnel_request, tunnel_verdict, PacketStream, SpeedTunnel,
    CONTROL_DPD, CONTROL_DTLS_OFF, INTERFACE_REQUEST, LOGOUT_PATH, SPEED_TUNNEL_REQUEST,
};
use oc_proto::http::Request;
use oc_proto::ip_config::IpConfig;
use oc_proto::liveness::{Liveness, LivenessAction, Timers};
use oc_tls::dtls::DtlsVersions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, error, info, warn};

use crate::cli::Options;
use crate::error::ClientError;
use crate::host::TunnelHost;
use crate::ppp_udp::{PppUdp, UdpEvent, UdpGrant};

use crate::transport::{Endpoint, HttpsConnection};
use crate::tunnel_loop::{self, Stop, TunnelProtocol, Waits};
use crate::{user_agent, Finished};

/// The longest packet read from the TLS stream (upstream's bound).
const MAX_PACKET: usize = 16384;
/// How long the gateway may take to answer one of the binary requests.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

struct ArrayTunnel<'a> {
    opts: &'a Options,
    endpoint: &'a Endpoint,
    cookie: &'a str,
    /// Ours for the whole run (reconnects say it again).
    id: String,
    conn: Option<HttpsConnection>,
    stream: PacketStream,
    tls_liveness: Liveness,
    udp: Option<PppUdp>,
    udp_liveness: Liveness,
    /// DTLS carried the tunnel: leaving it tells the gateway.
    udp_carried: bool,
    dpd: Option<Duration>,
    host: TunnelHost<'a>,
}

/// Runs the tunnel of the session `cookie` (`ANsession...=...`).
pub(super) async fn run(
    opts: &Options,
    endpoint: &Endpoint,
    cookie: &str,
) -> Result<Finished, ClientError> {
    let mut random = [0u8; 16];
    openssl::rand::rand_bytes(&mut random)
        .map_err(|e| ClientError::System(format!("no random bytes for the client id: {e}")))?;
    let id = client_id(random);
    let (conn, setup) = connect(opts, endpoint, cookie, &id).await?;
    let gateway = conn.addr.ip();
    let now = Instant::now();
    let mut tunnel = ArrayTunnel {
        opts,
        endpoint,
        cookie,
        id,
        conn: None,
        stream: PacketStream::new(MAX_PACKET),
        tls_liveness: Liveness::new(Timers::default(), now),
        udp: None,
        udp_liveness: Liveness::new(Timers::default(), now),
        udp_carried: false,
        dpd: None,
        host: TunnelHost::new(opts, gateway),
    };
    tunnel.start(conn, setup).await?;
    let result = tunnel_loop::run(&mut tunnel).await;
    tunnel.host.finish();
    result
}

/// What the gateway's answers gave.
struct Setup {
    ip: IpConfig,
    speed: SpeedTunnel,
    /// The DTLS port, when the gateway grants UDP.
    dtls_port: Option<u16>,
}

/// The tunnel request and the three exchanges after it.
async fn connect(
    opts: &Options,
    endpoint: &Endpoint,
    cookie: &str,
    id: &str,
) -> Result<(HttpsConnection, Setup), ClientError> {
    let mut conn = endpoint.connect().await?;
    let req = tunnel_request(
        &endpoint.url.host_header(),
        &user_agent(opts),
        cookie,
        id,
        &opts.hostname(),
    );
    let (resp, _) = conn.exchange(&req, true).await?;
    let status = resp.head.status;
    let location = resp.head.header("Location").is_some();
    ClientError::from_verdict(tunnel_verdict(status, location), status)?;
    let speed = SpeedTunnel::parse(&ask(&mut conn, &SPEED_TUNNEL_REQUEST).await?)
        .map_err(|e| ClientError::System(e.to_string()))?;
    info!(
        "Initial config: Speed tunnel {}, enc {}, DPD {}",
        u8::from(speed.allowed),
        speed.encryption,
        speed.keepalive
    );
    let (ip, unknown) = parse_interface(&ask(&mut conn, &INTERFACE_REQUEST).await?)
        .map_err(|e| ClientError::System(e.to_string()))?;
    for key in unknown {
        debug!("Unknown Array config element '{key}'");
    }
    let dtls_port = match speed.allowed && !opts.no_dtls {
        true => {
            let port = parse_dtls_answer(&ask(&mut conn, &dtls_request(id)).await?);
            match port {
                Some(port) => info!("DTLS enabled on port {port}"),
                None => warn!("Refusing non-DTLS UDP tunnel"),
            }
            port
        }
        false => None,
    };
    Ok((
        conn,
        Setup {
            ip,
            speed,
            dtls_port,
        },
    ))
}

/// One request and its answer (one TLS record, as upstream reads it).
async fn ask(conn: &mut HttpsConnection, request: &[u8]) -> Result<Vec<u8>, ClientError> {
    conn.tls
        .write_all(request)
        .await
        .map_err(ClientError::io("sending an Array request"))?;
    let mut buf = vec![0u8; 16 * 1024];
    let n = tokio::time::timeout(ANSWER_TIMEOUT, conn.tls.read(&mut buf))
        .await
        .map_err(|_| ClientError::Timeout("the Array server's answer"))?
        .map_err(ClientError::io("reading an Array answer"))?;
    buf.truncate(n);
    Ok(buf)
}

impl ArrayTunnel<'_> {
    /// The network on a connection set up, DTLS started when granted.
    async fn start(&mut self, conn: HttpsConnection, setup: Setup) -> Result<(), ClientError> {
        let now = Instant::now();
        let offered = Some(setup.speed.keepalive).filter(|s| *s > 0);
        self.dpd = self.opts.forced_dpd().or(offered.map(Duration::from_secs));
        let timers = Timers {
            dpd: self.dpd,
            ..Timers::default()
        };
        self.tls_liveness = Liveness::new(timers, now);
        self.udp_liveness = Liveness::new(timers, now);
        self.stream = PacketStream::new(MAX_PACKET);
        self.udp_carried = false;
        let server = SocketAddr::new(conn.addr.ip(), 0);
        let link_mtu = u32::from(conn.link_mtu());
        self.conn = Some(conn);
        self.host.network_up(setup.ip, &self.links())?;
        self.udp = setup.dtls_port.map(|port| {
            let grant = UdpGrant {
                port,
                versions: DtlsVersions::Dtls10Only,
                probe: dtls_greeting(&self.id),
                read_answer: read_dtls_answer,
            };
            let server = SocketAddr::new(server.ip(), port);
            PppUdp::new(
                grant,
                server,
                &self.endpoint.url.host,
                link_mtu,
                self.opts.dtls_local_port,
            )
        });
        if let Some(udp) = self.udp.as_mut() {
            if let Some(event) = udp.start(&self.endpoint.tls, now).await {
                self.udp_event(event).await?;
            }
        }
        Ok(())
    }

    fn links(&self) -> String {
        let dtls = match &self.udp {
            Some(udp) => udp.connection_state(),
            None => "disabled",
        };
        format!("SSL connected and DTLS {dtls}")
    }

    async fn udp_event(&mut self, event: UdpEvent) -> Result<(), ClientError> {
        match event {
            UdpEvent::Accepted { .. } => {
                info!("DTLS session established");
                self.udp_carried = true;
                self.udp_liveness.on_receive(Instant::now());
                Ok(())
            }
            UdpEvent::Abandoned(why) => self.leave_udp(&why).await,
        }
    }

    /// DTLS no longer carries the tunnel: the gateway is told (once it had).
    async fn leave_udp(&mut self, why: &str) -> Result<(), ClientError> {
        debug!("DTLS: {why}");
        if std::mem::take(&mut self.udp_carried) {
            warn!("DTLS lost ({why}); sending DTLS off packet, using TLS");
            self.send_tls(&control(CONTROL_DTLS_OFF, &[])).await?;
        }
        Ok(())
    }

    async fn send_tls(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        conn.tls
            .write_all(bytes)
            .await
            .map_err(ClientError::io("sending on the TLS connection"))?;
        self.tls_liveness.on_send(Instant::now());
        Ok(())
    }

    /// Packets from the TLS stream: control packets (DPD answers) are not the tun's.
    fn tls_input(&mut self, bytes: &[u8]) {
        self.tls_liveness.on_receive(Instant::now());
        let host = &mut self.host;
        let dropped = self
            .stream
            .decode(bytes, |packet| match control_type(packet) {
                Some(kind) => debug!("Receive control packet of type {kind:#x}"),
                None => host.deliver(packet),
            });
        self.host.flush();
        if dropped > 0 {
            warn!("Unrecognised data packet; {dropped} bytes dropped");
        }
    }

    async fn close(&mut self) {
        if let Some(mut udp) = self.udp.take() {
            udp.shut().await;
        }
        if let Some(mut conn) = self.conn.take() {
            let _ = conn.tls.shutdown().await;
        }
    }

    /// The logout page on a new connection.
    async fn logout(&self) {
        let req = Request::new("GET", LOGOUT_PATH)
            .header("Host", self.endpoint.url.host_header())
            .header("User-Agent", user_agent(self.opts))
            .header("Cookie", self.cookie);
        crate::web::logout(self.endpoint, &req).await;
    }

    fn log_stats(&self) {
        let tls = match &self.conn {
            Some(conn) => format!("SSL {} {}", conn.peer.version, conn.peer.cipher),
            None => "SSL disconnected".into(),
        };
        let dtls = self.udp.as_ref().map_or("disabled", PppUdp::status);
        self.host.stats.log(&format!("{tls}; DTLS {dtls}"));
    }

    /// DPD on the channels that have it.
    async fn keep_alive(&mut self, now: Instant) -> Result<Option<Stop>, ClientError> {
        if self.udp.as_ref().is_some_and(PppUdp::is_up) {
            match self.udp_liveness.check(now) {
                Some(LivenessAction::SendDpd) => {
                    if let Some(udp) = self.udp.as_mut() {
                        if let Err(e) = udp.send_frame(&control(CONTROL_DPD, &[])).await {
                            debug!("DTLS DPD not sent: {e}");
                        }
                    }
                    self.udp_liveness.on_send(now);
                }
                Some(LivenessAction::Dead) => {
                    error!("DTLS Dead Peer Detection detected dead peer!");
                    if let Some(udp) = self.udp.as_mut() {
                        udp.lost("dead peer", now).await;
                    }
                    self.leave_udp("dead peer").await?;
                }
                _ => {}
            }
        }
        match self.tls_liveness.check(now) {
            Some(LivenessAction::SendDpd) => {
                if let Err(e) = self.send_tls(&control(CONTROL_DPD, &[])).await {
                    return Ok(Some(Stop::Lost(e.to_string())));
                }
            }
            Some(LivenessAction::Dead) => {
                error!("TCP Dead Peer Detection detected dead peer!");
                return Ok(Some(Stop::Lost("dead peer".into())));
            }
            _ => {}
        }
        Ok(None)
    }
}

impl TunnelProtocol for ArrayTunnel<'_> {
    const HEADROOM: usize = 0;

    async fn step(&mut self) -> Result<Option<Stop>, ClientError> {
        Ok(None)
    }

    fn waits(&mut self) -> Waits<'_> {
        let udp_deadline = self.udp.as_ref().and_then(PppUdp::deadline);
        let udp_dpd = self
            .udp
            .as_ref()
            .filter(|u| u.is_up())
            .and_then(|_| self.udp_liveness.next_deadline());
        let tls_dpd = self
            .conn
            .as_ref()
            .and_then(|_| self.tls_liveness.next_deadline());
        Waits {
            tun: self.host.tun.as_ref().map(|(sink, _)| &sink.tun),
            tls: self.conn.as_mut().map(|c| &mut c.tls),
            udp: self.udp.as_ref().and_then(PppUdp::socket),
            deadline: [udp_deadline, udp_dpd, tls_dpd].into_iter().flatten().min(),
        }
    }

    async fn send_packets(&mut self, up: &mut TunReader, count: usize) -> Result<(), ClientError> {
        let now = Instant::now();
        // Packets before `next` went out on DTLS; from it on they go on TLS.
        let mut next = 0;
        if let Some(udp) = self.udp.as_mut().filter(|u| u.is_up()) {
            let mut failed = None;
            while next < count {
                if let Some(packet) = up.framed_mut(next) {
                    let class = match self.opts.passtos {
                        true => oc_proto::ip::traffic_class(packet),
                        false => None,
                    };
                    if let Err(e) = udp.queue_frame(packet, class).await {
                        failed = Some(e);
                        break;
                    }
                    self.host.stats.sent(packet.len());
                }
                next += 1;
            }
            match failed.or(udp.flush().await.err()) {
                None => {
                    self.udp_liveness.on_send(now);
                    return Ok(());
                }
                Some(why) => {
                    udp.lost(&why, now).await;
                    self.leave_udp(&why).await?;
                }
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        for i in next..count {
            if let Some(packet) = up.framed_mut(i) {
                // One packet a record: 9.01's gateways read a record as one packet.
                conn.tls
                    .write_all(packet)
                    .await
                    .map_err(ClientError::io("sending on the TLS connection"))?;
                self.host.stats.sent(packet.len());
            }
        }
        self.tls_liveness.on_send(now);
        Ok(())
    }

    async fn on_tls(&mut self, bytes: &[u8]) -> Result<Option<Stop>, ClientError> {
        self.tls_input(bytes);
        Ok(None)
    }

    async fn on_udp(
        &mut self,
        batch: &mut RecvBatch,
        read: std::io::Result<usize>,
    ) -> Result<Option<Stop>, ClientError> {
        let now = Instant::now();
        let Some(udp) = self.udp.as_mut() else {
            return Ok(None);
        };
        let count = match read {
            Ok(n) => n,
            Err(e) => {
                let why = format!("DTLS receive error: {e}");
                udp.lost(&why, now).await;
                self.leave_udp(&why).await?;
                return Ok(None);
            }
        };
        let host = &mut self.host;
        let mut received = false;
        let event = udp
            .on_received(count, batch, &self.endpoint.tls, now, &mut |record| {
                received = true;
                if control_type(record).is_none() {
                    host.deliver(record);
                }
            })
            .await;
        self.host.flush();
        if received {
            self.udp_liveness.on_receive(now);
        }
        if let Some(event) = event {
            self.udp_event(event).await?;
        }
        Ok(None)
    }

    async fn on_deadline(&mut self, now: Instant) -> Result<Option<Stop>, ClientError> {
        if let Some(udp) = self.udp.as_mut() {
            if let Some(event) = udp.on_deadline(&self.endpoint.tls, now).await {
                self.udp_event(event).await?;
            }
        }
        self.keep_alive(now).await
    }

    fn print_stats(&self) {
        self.log_stats();
    }

    async fn log_off(&mut self) {
        self.close().await;
        self.logout().await;
    }

    async fn detach(&mut self) {
        self.close().await;
    }

    fn give_up(&self, why: &str) -> Option<ClientError> {
        self.host.give_up(why)
    }

    fn options(&self) -> &Options {
        self.opts
    }

    async fn prepare_reconnect(&mut self, _why: &str) {
        self.close().await;
        self.host.attempt_reconnect();
    }

    async fn reconnect_once(&mut self) -> Result<(), ClientError> {
        let (conn, setup) = connect(self.opts, self.endpoint, self.cookie, &self.id).await?;
        self.start(conn, setup).await
    }
}
