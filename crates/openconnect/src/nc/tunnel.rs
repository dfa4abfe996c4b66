//! Network Connect's tunnel, as upstream's `oncp_connect` and `oncp_mainloop` run it:
//! `POST /dana/js` with the `DSID` cookie, the hostname packet, the server's status and
//! its configuration (KMP 301), our MTU and ESP keys (KMP 303 and 302). The TLS connection
//! stays for the whole session: it carries the packets until ESP's probes are answered,
//! then the message that turns ESP on (and off again when ESP dies, until a retry a minute
//! later brings it back), and the gateway's ESP rekeys, each answered with our new keys.
//! A lost TLS connection is a reconnect with the same cookie: new configuration, new keys.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use oc_net::udp::RecvBatch;
use oc_net::TunReader;
use oc_proto::esp::JuniperProber;
use oc_proto::nc::config::{
    client_settings, esp_control, esp_keys_record, NcConfig, ESP_SECRETS_LEN,
};
use oc_proto::nc::oncp::{
    frame_in_place, hostname_packet, OncpDecoder, OncpEvent, DATA_HEADROOM, KMP_CONFIG,
    KMP_ESP_KEYS, STATUS_OK, STATUS_ONCP_DISABLED,
};
use oc_proto::nc::{self, NcError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, error, info, warn};

use super::request;
use crate::cli::Options;
use crate::error::ClientError;
use crate::esp_channel::{new_inbound_keys, tunnel_mtu, EspChannel, EspEvent};
use crate::host::TunnelHost;

use crate::transport::{Endpoint, HttpsConnection};
use crate::tunnel_loop::{self, Stop, TunnelProtocol, Waits};
use crate::{user_agent, Finished};

/// Room before a packet: ESP's header and IV (24 bytes for AES) or oNCP's 22.
const HEADROOM: usize = 24;
/// Room after a packet: ESP's padding, trailer and ICV at most.
const TAILROOM: usize = 64;
/// How long the server may take to send its configuration.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Where ESP goes when the configuration does not say (NAT-T's port, as Juniper's).
const DEFAULT_ESP_PORT: u16 = 4500;
/// The logout page.
const LOGOUT: &str = "/dana-na/auth/logout.cgi";

type Esp = EspChannel<JuniperProber>;

/// What a read from the TLS connection asks for beyond its packets.
enum Control {
    /// The gateway's KMP 302: new keys for what we send.
    Rekey(Vec<u8>),
    /// The gateway ended the session for this reason.
    Terminated(u8),
}

struct NcTunnel<'a> {
    opts: &'a Options,
    endpoint: &'a Endpoint,
    cookie: &'a str,
    conn: Option<HttpsConnection>,
    decoder: OncpDecoder,
    config: NcConfig,
    /// The gateway's address (ESP's destination).
    gateway: IpAddr,
    esp: Option<Esp>,
    /// The gateway was told to send on ESP (KMP 303 with ESP on).
    esp_on: bool,
    control: Vec<Control>,
    /// Frames of one tun read, sent in one write.
    out: Vec<u8>,
    host: TunnelHost<'a>,
}

/// Runs the tunnel of the session `cookie` (`DSID=...`).
pub(super) async fn run(
    opts: &Options,
    endpoint: &Endpoint,
    cookie: &str,
) -> Result<Finished, ClientError> {
    let (conn, early) = connect(opts, endpoint, cookie).await?;
    let gateway = conn.addr.ip();
    let mut tunnel = NcTunnel {
        opts,
        endpoint,
        cookie,
        conn: None,
        decoder: OncpDecoder::client(),
        config: NcConfig::default(),
        gateway,
        esp: None,
        esp_on: false,
        control: Vec::new(),
        out: Vec::new(),
        host: TunnelHost::new(opts, gateway),
    };
    tunnel.start(conn, &early).await?;
    let result = tunnel_loop::run(&mut tunnel).await;
    tunnel.host.finish();
    result
}

/// The tunnel request: 200 starts oNCP on the connection (with what came after the
/// answer's head); refused means the cookie is no good (exit 2).
async fn connect(
    opts: &Options,
    endpoint: &Endpoint,
    cookie: &str,
) -> Result<(HttpsConnection, Vec<u8>), ClientError> {
    let mut conn = endpoint.connect().await?;
    let req = nc::tunnel_request(&endpoint.url.host_header(), cookie, &user_agent(opts));
    let (resp, early) = conn.exchange(&req, true).await?;
    let status = resp.head.status;
    ClientError::from_verdict(nc::tunnel_verdict(status), status)?;
    Ok((conn, early))
}

impl NcTunnel<'_> {
    /// oNCP on a connection the tunnel request was accepted on: the hello, the
    /// configuration, our settings; then the network and ESP's probes.
    async fn start(&mut self, mut conn: HttpsConnection, early: &[u8]) -> Result<(), ClientError> {
        self.esp = None;
        self.esp_on = false;
        self.control.clear();
        let hello = hostname_packet(&self.opts.hostname());
        conn.tls
            .write_all(&hello)
            .await
            .map_err(ClientError::io("sending the hostname packet"))?;
        let mut decoder = OncpDecoder::client();
        let read = read_config(&mut conn, &mut decoder, early);
        let mut config = tokio::time::timeout(SETUP_TIMEOUT, read)
            .await
            .map_err(|_| ClientError::Timeout("the oNCP configuration (KMP 301)"))??;
        for (group, attr, len) in &config.unknown {
            debug!("Unknown TLV group {group} attr {attr} len {len}");
        }
        let now = Instant::now();
        let esp = match self.opts.no_dtls {
            true => None,
            false => self.esp_channel(&config, now).await,
        };
        config.ip.mtu = match (self.opts.mtu, config.ip.mtu) {
            (Some(mtu), _) => mtu,
            (None, 0) => tunnel_mtu(self.opts, &conn, esp.is_some()),
            (None, mtu) => mtu,
        };
        let inbound = esp.as_ref().map(|(_, spi, secrets)| (*spi, secrets));
        let settings = client_settings(config.ip.mtu, inbound)?;
        conn.tls
            .write_all(&settings)
            .await
            .map_err(ClientError::io("sending the oNCP settings"))?;
        self.conn = Some(conn);
        self.decoder = decoder;
        self.config = config;
        self.esp = esp.map(|(esp, _, _)| esp);
        self.host
            .network_up(self.config.ip.clone(), &self.links())?;
        if let Some(esp) = self.esp.as_mut() {
            esp.start(now).await;
        }
        Ok(())
    }

    /// ESP's channel when the configuration has a suite and keys: with our inbound SPI
    /// and secrets, for the settings.
    async fn esp_channel(
        &self,
        config: &NcConfig,
        now: Instant,
    ) -> Option<(Esp, u32, [u8; ESP_SECRETS_LEN])> {
        let outbound = match config.outbound_keys() {
            Ok(Some(keys)) => keys,
            Ok(None) => {
                info!("No ESP keys in the configuration; the tunnel is TLS only");
                return None;
            }
            Err(e) => {
                warn!("Unusable ESP keys from the server: {e}");
                return None;
            }
        };
        if config.esp.compression {
            debug!("ESP compression: LZO (the server's Legacy IP packets may come compressed)");
        }
        let port = config.esp.port.unwrap_or(DEFAULT_ESP_PORT);
        let server = SocketAddr::new(self.gateway, port);
        let opened = match new_inbound_keys(outbound.suite()) {
            Ok((spi, secrets, inbound)) => {
                Esp::juniper(self.opts, server, &outbound, &inbound, &config.esp, now)
                    .await
                    .map(|esp| (esp, spi, secrets))
            }
            Err(e) => Err(e),
        };
        opened.map_err(|e| warn!("ESP: {e}")).ok()
    }

    /// openconnect's words for the links in `Configured as ...`.
    fn links(&self) -> String {
        let esp = match &self.esp {
            Some(esp) if esp.is_up() => "established",
            Some(_) => "in progress",
            None => "disabled",
        };
        format!("SSL connected and ESP {esp}")
    }

    /// Packets and messages from the TLS connection.
    async fn tls_input(&mut self, bytes: &[u8]) -> Result<Option<Stop>, ClientError> {
        let Self {
            decoder,
            host,
            control,
            ..
        } = self;
        let decoded = decoder.decode(bytes, |event| {
            match event {
                OncpEvent::Packet(packet) => host.deliver(packet),
                OncpEvent::Message {
                    kind: KMP_ESP_KEYS,
                    payload,
                } => control.push(Control::Rekey(payload.to_vec())),
                OncpEvent::Message { kind, payload } => {
                    warn!("Ignoring KMP message {kind} of {} bytes", payload.len());
                }
                OncpEvent::Terminated(reason) => control.push(Control::Terminated(reason)),
                OncpEvent::Status(_) | OncpEvent::Hello(_) => {}
            }
            Ok::<_, NcError>(())
        });
        self.host.flush();
        if let Err(e) = decoded {
            error!("{e}");
            return Ok(Some(Stop::Lost(e.to_string())));
        }
        for control in std::mem::take(&mut self.control) {
            match control {
                Control::Rekey(payload) => self.rekey(&payload).await?,
                Control::Terminated(reason) => {
                    return Err(ClientError::ServerTerminated(termination_reason(reason)))
                }
            }
        }
        Ok(None)
    }

    /// The gateway's new keys for what we send: ours for what we receive go back.
    async fn rekey(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        let keys = NcConfig::parse(KMP_ESP_KEYS, payload)?;
        let Some(esp) = self.esp.as_mut() else {
            debug!("ESP keys from the server while ESP is off; ignored");
            return Ok(());
        };
        if keys.esp.suite().is_some() {
            self.config.esp = keys.esp.clone();
        }
        let suite = self.config.esp.suite();
        let (Some((spi, secrets)), Some(suite)) = (keys.outbound.as_ref(), suite) else {
            warn!("ESP rekey without keys or suite; ignored");
            return Ok(());
        };
        let (new_spi, new_secrets) = match esp.rekey(suite, *spi, secrets) {
            Ok(made) => made,
            Err(e) => {
                error!("Failed to set up ESP: {e}");
                return Ok(());
            }
        };
        self.send_control(&esp_keys_record(new_spi, &new_secrets)?)
            .await
    }

    async fn send_control(&mut self, record: &[u8]) -> Result<(), ClientError> {
        if let Some(conn) = self.conn.as_mut() {
            conn.tls
                .write_all(record)
                .await
                .map_err(ClientError::io("sending on the TLS connection"))?;
        }
        Ok(())
    }

    /// ESP's news; a TLS connection that fails to take the message is lost.
    async fn esp_event(&mut self, event: EspEvent) -> Result<Option<Stop>, ClientError> {
        // A message the TLS connection fails to take is a loss (the loop's rule).
        match event {
            EspEvent::Established => self.esp_up().await?,
            EspEvent::Abandoned(why) => self.esp_down(&why).await?,
        }
        Ok(None)
    }

    /// The probes were answered: the gateway is told to send on ESP, and we do once the
    /// message is out.
    async fn esp_up(&mut self) -> Result<(), ClientError> {
        self.send_control(&esp_control(true)?).await?;
        self.esp_on = true;
        debug!("Sent ESP enable control packet");
        Ok(())
    }

    /// ESP is given up for now: the gateway is told, TLS carries the packets.
    async fn esp_down(&mut self, why: &str) -> Result<(), ClientError> {
        debug!("ESP: {why}");
        if std::mem::take(&mut self.esp_on) {
            error!("ESP failed ({why}); using HTTPS instead.");
            self.send_control(&esp_control(false)?).await?;
        }
        Ok(())
    }

    async fn send_tls(&mut self, up: &mut TunReader, count: usize) -> Result<(), ClientError> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        self.out.clear();
        for i in 0..count {
            let Some(framed) = up.framed_mut(i) else {
                continue;
            };
            let len = framed.len() - HEADROOM;
            let Some(room) = framed.get_mut(HEADROOM - DATA_HEADROOM..) else {
                continue;
            };
            match frame_in_place(room) {
                Ok(frame) => {
                    self.out.extend_from_slice(frame);
                    self.host.stats.sent(len);
                }
                Err(e) => debug!("packet dropped: {e}"),
            }
        }
        // One write for the whole read: oNCP's records need not match TLS's.
        conn.tls
            .write_all(&self.out)
            .await
            .map_err(ClientError::io("sending on the TLS connection"))
    }

    fn log_stats(&self) {
        let tls = match &self.conn {
            Some(conn) => format!("SSL {} {}", conn.peer.version, conn.peer.cipher),
            None => "SSL disconnected".into(),
        };
        let esp = match &self.esp {
            Some(esp) => format!("ESP {}; {}", esp.status(), esp.drops()),
            None => "ESP disabled".into(),
        };
        self.host.stats.log(&format!("{tls}; {esp}"));
    }

    async fn close_tls(&mut self) {
        self.esp = None;
        if let Some(mut conn) = self.conn.take() {
            let _ = conn.tls.shutdown().await;
        }
    }

    /// `logout.cgi` on a new connection, so that the cookie dies with the session.
    async fn logout(&self) {
        let req = request(self.opts, self.endpoint, "GET", LOGOUT).header("Cookie", self.cookie);
        crate::web::logout(self.endpoint, &req).await;
    }
}

/// Bytes from the connection (`early` first) until the status byte and the
/// configuration are in.
async fn read_config(
    conn: &mut HttpsConnection,
    decoder: &mut OncpDecoder,
    early: &[u8],
) -> Result<NcConfig, ClientError> {
    let mut config = None;
    decoder.decode(early, |event| setup_event(event, &mut config))?;
    let mut buf = vec![0u8; 16 * 1024];
    while config.is_none() {
        let n = conn
            .tls
            .read(&mut buf)
            .await
            .map_err(ClientError::io("reading the oNCP configuration"))?;
        if n == 0 {
            return Err(ClientError::Io {
                what: "reading the oNCP configuration",
                source: std::io::ErrorKind::UnexpectedEof.into(),
            });
        }
        let input = buf.get(..n).unwrap_or_default();
        decoder.decode(input, |event| setup_event(event, &mut config))?;
    }
    config.ok_or(ClientError::Timeout("the oNCP configuration (KMP 301)"))
}

/// What the server sends before its configuration, and the configuration.
fn setup_event(event: OncpEvent<'_>, config: &mut Option<NcConfig>) -> Result<(), ClientError> {
    match event {
        OncpEvent::Status(STATUS_OK) | OncpEvent::Hello(_) => Ok(()),
        OncpEvent::Status(STATUS_ONCP_DISABLED) => Err(ClientError::System(
            "Server response to hostname packet is error 0x08: the server has disabled \
             Juniper's older oNCP protocol and only allows Pulse; try --protocol=pulse"
                .into(),
        )),
        OncpEvent::Status(other) => Err(ClientError::System(format!(
            "Server response to hostname packet is error {other:#04x}"
        ))),
        OncpEvent::Message {
            kind: KMP_CONFIG,
            payload,
        } if config.is_none() => {
            *config = Some(NcConfig::parse(KMP_CONFIG, payload)?);
            Ok(())
        }
        OncpEvent::Packet(_) => {
            info!("Discarding an IP packet sent before the configuration");
            Ok(())
        }
        OncpEvent::Message { kind, .. } => {
            debug!("Ignoring KMP message {kind} during setup");
            Ok(())
        }
        OncpEvent::Terminated(reason) => {
            Err(ClientError::ServerTerminated(termination_reason(reason)))
        }
    }
}

/// Upstream's words for the server's reasons.
fn termination_reason(reason: u8) -> String {
    match reason {
        1 => "Server terminated connection (session expired)".into(),
        8 => "Server terminated connection (idle timeout)".into(),
        other => format!("Server terminated connection (reason: {other})"),
    }
}

impl TunnelProtocol for NcTunnel<'_> {
    const HEADROOM: usize = HEADROOM;
    const TAILROOM: usize = TAILROOM;

    async fn step(&mut self) -> Result<Option<Stop>, ClientError> {
        Ok(None)
    }

    fn waits(&mut self) -> Waits<'_> {
        Waits {
            tun: self.host.tun.as_ref().map(|(sink, _)| &sink.tun),
            tls: self.conn.as_mut().map(|c| &mut c.tls),
            udp: self.esp.as_ref().map(Esp::socket),
            deadline: self.esp.as_ref().and_then(Esp::deadline),
        }
    }

    async fn send_packets(&mut self, up: &mut TunReader, count: usize) -> Result<(), ClientError> {
        if let Some(esp) = self.esp.as_mut().filter(|e| self.esp_on && e.is_up()) {
            let sent = esp
                .send_packets(up, count, HEADROOM, None, &mut self.host.stats)
                .await;
            if let Err(why) = sent {
                // These packets are lost; the next go over TLS.
                esp.lost(Instant::now());
                self.esp_down(&why).await?;
            }
            return Ok(());
        }
        self.send_tls(up, count).await
    }

    async fn on_tls(&mut self, bytes: &[u8]) -> Result<Option<Stop>, ClientError> {
        self.tls_input(bytes).await
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
        let Some(esp) = self.esp.as_mut() else {
            return Ok(None);
        };
        match esp.on_deadline(now).await {
            Some(event) => self.esp_event(event).await,
            None => Ok(None),
        }
    }

    fn print_stats(&self) {
        self.log_stats();
    }

    async fn log_off(&mut self) {
        self.close_tls().await;
        self.logout().await;
    }

    async fn detach(&mut self) {
        self.close_tls().await;
    }

    fn give_up(&self, why: &str) -> Option<ClientError> {
        self.host.give_up(why)
    }

    fn options(&self) -> &Options {
        self.opts
    }

    async fn prepare_reconnect(&mut self, _why: &str) {
        self.close_tls().await;
        self.host.attempt_reconnect();
    }

    async fn reconnect_once(&mut self) -> Result<(), ClientError> {
        let (conn, early) = connect(self.opts, self.endpoint, self.cookie).await?;
        self.start(conn, &early).await
    }
}
