//! GlobalProtect's tunnel, as upstream's `gpst_setup` and `gpst_mainloop` run it: the
//! configuration and the HIP check, then ESP (probes until the gateway answers, within
//! 5 s) or, without keys or answer, the TLS tunnel in GP's framing, which voids the ESP
//! keys. ESP that dies later hands over to the TLS tunnel; a lost TLS tunnel, or the
//! rekey a minute before the configuration's `timeout`, is a reconnect: the configuration
//! again (the same addresses asked for), new keys, ESP tried afresh.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use oc_net::udp::RecvBatch;
use oc_net::TunReader;
use oc_proto::esp::{EspInbound, EspOutbound, EspSession};
use oc_proto::gp::frame::{frame_in_place, FrameDecoder, FrameKind, HEADER_LEN, KEEPALIVE};
use oc_proto::gp::probe::GpProber;
use oc_proto::gp::{ClientInfo, GatewayConfig, GpCookie, DPD_SECONDS, ESP_PORT};
use oc_proto::liveness::{Liveness, LivenessAction, Timers};
use oc_tls::esp::OpenSslEspCipher;
use tokio::io::AsyncWriteExt;
use tracing::{debug, error, info, warn};

use super::hip::Hip;
use super::setup::{connect_tls_tunnel, get_config, logout};
use crate::cli::Options;
use crate::error::ClientError;
use crate::esp_channel::{EspChannel, EspEvent};
use crate::host::TunnelHost;

use crate::transport::{Endpoint, HttpsConnection};
use crate::tunnel_loop::{self, Stop, TunnelProtocol, Waits};
use crate::web::CookieJar;
use crate::Finished;

/// Room before a packet: ESP's header and IV (24 bytes for AES) or GP's 16-byte header.
const HEADROOM: usize = 24;
/// Room after a packet: ESP's padding, trailer and ICV at most.
const TAILROOM: usize = 64;
/// How long before the configuration's `timeout` the tunnel is renewed (upstream).
const REKEY_MARGIN: Duration = Duration::from_secs(60);

type Esp = EspChannel<GpProber>;

struct GpTunnel<'a> {
    opts: &'a Options,
    endpoint: &'a Endpoint,
    client: ClientInfo,
    cookie: GpCookie,
    /// The HTTP cookies of the login, sent with every request to the gateway.
    jar: CookieJar,
    config: GatewayConfig,
    /// The gateway's address (ESP's destination).
    gateway: SocketAddr,
    /// The TLS tunnel, once started (it voids the ESP keys).
    conn: Option<HttpsConnection>,
    frames: FrameDecoder,
    tls_liveness: Liveness,
    /// The ESP channel while these keys may still carry the tunnel.
    esp: Option<Esp>,
    /// Sending on ESP failed for this reason: the next step moves to TLS.
    esp_failed: Option<String>,
    rekey_at: Option<Instant>,
    hip: Hip,
    /// When the HIP check is due again.
    hip_due: Option<Instant>,
    host: TunnelHost<'a>,
}

/// Sets up the tunnel on the gateway `endpoint` with the session's `cookie` and runs it.
pub(super) async fn run(
    opts: &Options,
    endpoint: &Endpoint,
    client: ClientInfo,
    cookie: GpCookie,
    jar: CookieJar,
    hip: Hip,
) -> Result<Finished, ClientError> {
    let gateway = endpoint.first_hop()?;
    let mut tunnel = GpTunnel {
        opts,
        endpoint,
        client,
        cookie,
        jar,
        config: GatewayConfig::default(),
        gateway,
        conn: None,
        frames: FrameDecoder::new(),
        tls_liveness: Liveness::new(Timers::default(), Instant::now()),
        esp: None,
        esp_failed: None,
        rekey_at: None,
        hip,
        hip_due: None,
        host: TunnelHost::new(opts, gateway.ip()),
    };
    tunnel.setup().await?;
    let result = tunnel_loop::run(&mut tunnel).await;
    tunnel.host.finish();
    result
}

impl GpTunnel<'_> {
    fn dpd(&self) -> Duration {
        self.opts
            .forced_dpd()
            .unwrap_or(Duration::from_secs(DPD_SECONDS))
    }

    /// The configuration (the tunnel's addresses asked for again after the first), the
    /// HIP check, then ESP's probes or the TLS tunnel.
    async fn setup(&mut self) -> Result<(), ClientError> {
        // New configuration, new keys: the old ones are void.
        self.esp = None;
        self.conn = None;
        let ip = &self.host.ip;
        let previous = self
            .host
            .is_up()
            .then(|| (ip.ipv4, ip.ipv6.map(|n| n.addr())));
        let config = get_config(
            self.opts,
            self.endpoint,
            &self.client,
            &self.cookie,
            &mut self.jar,
            previous,
        )
        .await?;
        self.hip
            .check(
                self.endpoint,
                &mut self.jar,
                &self.client,
                &self.cookie,
                &config,
            )
            .await?;
        let now = Instant::now();
        self.hip_due = Some(now + self.hip.interval);
        self.rekey_at = config
            .rekey
            .and_then(|r| r.checked_sub(REKEY_MARGIN))
            .filter(|r| !r.is_zero())
            .map(|r| now + r);
        self.config = config;
        match self.esp_channel(now).await {
            Some(mut esp) => {
                esp.start(now).await;
                self.esp = Some(esp);
                Ok(())
            }
            None => {
                if !self.opts.no_dtls {
                    warn!(
                        "Did not receive ESP keys and matching gateway in GlobalProtect \
                         config; tunnel will be TLS only."
                    );
                }
                self.connect_tls().await
            }
        }
    }

    /// ESP's channel when the configuration has keys, a magic address and our address of
    /// its family.
    async fn esp_channel(&self, now: Instant) -> Option<Esp> {
        let magic = self.config.esp_magic()?;
        let keys = self.config.esp.as_ref()?;
        let source = match magic {
            IpAddr::V4(_) => self.config.ip.ipv4.map(IpAddr::V4)?,
            IpAddr::V6(_) => IpAddr::V6(self.config.ip.ipv6?.addr()),
        };
        let prober = GpProber::new(source, magic)?;
        let ciphers = OpenSslEspCipher::new(&keys.client_to_server)
            .and_then(|out| Ok((out, OpenSslEspCipher::new(&keys.server_to_client)?)));
        let (out, inb) = match ciphers {
            Ok(c) => c,
            Err(e) => {
                warn!("Failed to setup ESP keys: {e}");
                return None;
            }
        };
        let session = EspSession::new(
            EspOutbound::new(keys.client_to_server.spi(), out),
            EspInbound::new(keys.server_to_client.spi(), inb, true),
            prober,
            Some(self.dpd()),
            now,
        );
        let server = SocketAddr::new(self.gateway.ip(), keys.port.unwrap_or(ESP_PORT));
        let opened = EspChannel::open(server, self.opts.dtls_local_port, session).await;
        match opened.map(|channel| channel.pass_tos(self.opts.passtos)) {
            Ok(esp) => Some(esp),
            Err(e) => {
                warn!("ESP: {e}");
                None
            }
        }
    }

    /// Starts the TLS tunnel (ending ESP) and the tunnel with it.
    async fn connect_tls(&mut self) -> Result<(), ClientError> {
        let (conn, rest) =
            connect_tls_tunnel(self.endpoint, &self.config.tunnel_path, &self.cookie).await?;
        self.esp = None;
        self.frames = FrameDecoder::new();
        let dpd = Some(self.dpd());
        self.tls_liveness = Liveness::new(
            Timers {
                dpd,
                keepalive: dpd,
                rekey: None,
            },
            Instant::now(),
        );
        self.conn = Some(conn);
        self.carrier_up()?;
        self.tls_input(&rest)
    }

    /// ESP is given up: the TLS tunnel takes the traffic.
    async fn esp_abandoned(&mut self, why: &str) -> Result<Option<Stop>, ClientError> {
        if self.esp.as_ref().is_some_and(Esp::is_up) {
            error!("{why}");
        } else {
            debug!("ESP: {why}");
        }
        error!("Failed to connect ESP tunnel; using HTTPS instead.");
        self.esp = None;
        match self.connect_tls().await {
            Ok(()) => Ok(None),
            Err(e) if self.host.is_up() => Ok(Some(Stop::Lost(e.to_string()))),
            Err(e) => Err(e),
        }
    }

    async fn esp_event(&mut self, event: EspEvent) -> Result<Option<Stop>, ClientError> {
        match event {
            EspEvent::Established => {
                if let Some(mut conn) = self.conn.take() {
                    let _ = conn.tls.shutdown().await;
                }
                info!("ESP tunnel connected; exiting HTTPS mainloop.");
                self.carrier_up()?;
                Ok(None)
            }
            EspEvent::Abandoned(why) => self.esp_abandoned(&why).await,
        }
    }

    /// A carrier (ESP or TLS) is up: the tunnel's network is (see
    /// [`TunnelHost::network_up`]).
    fn carrier_up(&mut self) -> Result<(), ClientError> {
        let links = format!(
            "SSL {} and ESP {}",
            if self.conn.is_some() {
                "connected"
            } else {
                "disconnected"
            },
            self.esp_state()
        );
        self.host.network_up(self.config.ip.clone(), &links)
    }

    /// openconnect's word for ESP in `Configured as ...`.
    fn esp_state(&self) -> &'static str {
        match &self.esp {
            Some(esp) if esp.is_up() => "established",
            Some(_) => "in progress",
            None if self.opts.no_dtls => "disabled",
            None if self.config.esp_magic().is_none() => "disabled",
            None => "unsuccessful",
        }
    }

    /// Frames from the TLS tunnel: packets to the tun device, keepalives noted. A header
    /// that is not GlobalProtect's ends the session, as upstream.
    fn tls_input(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.tls_liveness.on_receive(Instant::now());
        let Self { frames, host, .. } = self;
        let result = frames.decode(bytes, |frame| {
            if frame.odd_tail {
                debug!("GlobalProtect frame header with unexpected bytes 8 to 15");
            }
            match frame.kind {
                FrameKind::Keepalive => debug!("Got GPST DPD/keepalive response"),
                FrameKind::Ipv4 | FrameKind::Ipv6 => host.deliver(frame.payload),
            }
            Ok::<_, ClientError>(())
        });
        self.host.flush();
        result
    }

    async fn send_tls(&mut self, up: &mut TunReader, count: usize) -> Result<(), ClientError> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        for i in 0..count {
            let Some(framed) = up.framed_mut(i) else {
                continue;
            };
            let len = framed.len() - HEADROOM;
            let Some(room) = framed.get_mut(HEADROOM - HEADER_LEN..) else {
                continue;
            };
            let frame = match frame_in_place(room) {
                Ok(frame) => frame,
                Err(e) => {
                    debug!("packet dropped: {e}");
                    continue;
                }
            };
            // One record per frame: upstream reads each record as one frame.
            conn.tls
                .write_all(frame)
                .await
                .map_err(ClientError::io("sending on the TLS connection"))?;
            self.host.stats.sent(len);
        }
        self.tls_liveness.on_send(Instant::now());
        Ok(())
    }

    async fn send_keepalive(&mut self) -> Result<(), ClientError> {
        debug!("Send GPST DPD/keepalive request");
        if let Some(conn) = self.conn.as_mut() {
            conn.tls
                .write_all(&KEEPALIVE)
                .await
                .map_err(ClientError::io("sending on the TLS connection"))?;
        }
        Ok(())
    }

    /// The periodic HIP check: the TLS tunnel (if it carries the traffic) closes for it and
    /// opens again after, as upstream; ESP goes on.
    async fn recheck_hip(&mut self, now: Instant) -> Result<Option<Stop>, ClientError> {
        info!("GlobalProtect HIP check due");
        self.hip_due = Some(now + self.hip.interval);
        let tls = self.conn.take();
        let had_tls = tls.is_some();
        if let Some(mut conn) = tls {
            let _ = conn.tls.shutdown().await;
        }
        if let Err(e) = self
            .hip
            .check(
                self.endpoint,
                &mut self.jar,
                &self.client,
                &self.cookie,
                &self.config,
            )
            .await
        {
            error!("HIP check or report failed");
            return Err(e);
        }
        if had_tls {
            if let Err(e) = self.connect_tls().await {
                return Ok(Some(Stop::Lost(e.to_string())));
            }
        }
        Ok(None)
    }

    fn log_stats(&self) {
        let tls = match &self.conn {
            Some(conn) => format!("SSL {} {}", conn.peer.version, conn.peer.cipher),
            None => "SSL disconnected".into(),
        };
        let esp = match &self.esp {
            Some(esp) => format!("ESP {}; {}", esp.status(), esp.drops()),
            None => format!("ESP {}", self.esp_state()),
        };
        self.host.stats.log(&format!("{tls}; {esp}"));
    }
}

impl TunnelProtocol for GpTunnel<'_> {
    const HEADROOM: usize = HEADROOM;
    const TAILROOM: usize = TAILROOM;

    async fn step(&mut self) -> Result<Option<Stop>, ClientError> {
        match self.esp_failed.take() {
            Some(why) => self.esp_abandoned(&why).await,
            None => Ok(None),
        }
    }

    fn waits(&mut self) -> Waits<'_> {
        let tls_deadline = self
            .conn
            .as_ref()
            .and_then(|_| self.tls_liveness.next_deadline());
        let esp_deadline = self.esp.as_ref().and_then(Esp::deadline);
        let deadline = [tls_deadline, esp_deadline, self.rekey_at, self.hip_due]
            .into_iter()
            .flatten()
            .min();
        Waits {
            tun: self.host.tun.as_ref().map(|(sink, _)| &sink.tun),
            tls: self.conn.as_mut().map(|c| &mut c.tls),
            udp: self.esp.as_ref().map(Esp::socket),
            deadline,
        }
    }

    async fn send_packets(&mut self, up: &mut TunReader, count: usize) -> Result<(), ClientError> {
        if let Some(esp) = self.esp.as_mut().filter(|e| e.is_up()) {
            if let Err(why) = esp
                .send_packets(up, count, HEADROOM, None, &mut self.host.stats)
                .await
            {
                self.esp_failed = Some(why);
            }
            return Ok(());
        }
        self.send_tls(up, count).await
    }

    async fn on_tls(&mut self, bytes: &[u8]) -> Result<Option<Stop>, ClientError> {
        self.tls_input(bytes)?;
        Ok(None)
    }

    async fn on_udp(
        &mut self,
        batch: &mut RecvBatch,
        read: std::io::Result<usize>,
    ) -> Result<Option<Stop>, ClientError> {
        let Some(esp) = self.esp.as_mut() else {
            return Ok(None);
        };
        match esp.receive(batch, read, &mut self.host) {
            Some(event) => self.esp_event(event).await,
            None => Ok(None),
        }
    }

    async fn on_deadline(&mut self, now: Instant) -> Result<Option<Stop>, ClientError> {
        if self.rekey_at.is_some_and(|at| now >= at) {
            info!("GlobalProtect rekey due");
            return Ok(Some(Stop::Lost("GlobalProtect rekey due".into())));
        }
        if self.hip_due.is_some_and(|at| now >= at) {
            return self.recheck_hip(now).await;
        }
        if let Some(esp) = self.esp.as_mut() {
            if let Some(event) = esp.on_deadline(now).await {
                return self.esp_event(event).await;
            }
        }
        if self.conn.is_none() {
            return Ok(None);
        }
        match self.tls_liveness.check(now) {
            Some(LivenessAction::SendDpd | LivenessAction::SendKeepalive) => {
                if let Err(e) = self.send_keepalive().await {
                    return Ok(Some(Stop::Lost(e.to_string())));
                }
            }
            Some(LivenessAction::Dead) => {
                error!("GPST Dead Peer Detection detected dead peer!");
                return Ok(Some(Stop::Lost("dead peer".into())));
            }
            Some(LivenessAction::Rekey) | None => {}
        }
        Ok(None)
    }

    fn print_stats(&self) {
        self.log_stats();
    }

    async fn log_off(&mut self) {
        self.esp = None;
        if let Some(mut conn) = self.conn.take() {
            let _ = conn.tls.shutdown().await;
        }
        logout(self.endpoint, &self.cookie, &mut self.jar).await;
    }

    async fn detach(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            let _ = conn.tls.shutdown().await;
        }
    }

    fn give_up(&self, why: &str) -> Option<ClientError> {
        self.host.give_up(why)
    }

    fn options(&self) -> &Options {
        self.opts
    }

    async fn prepare_reconnect(&mut self, _why: &str) {
        self.host.attempt_reconnect();
    }

    async fn reconnect_once(&mut self) -> Result<(), ClientError> {
        self.setup().await
    }
}
