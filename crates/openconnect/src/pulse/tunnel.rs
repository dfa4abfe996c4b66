//! Pulse's tunnel, as upstream's `pulse_mainloop` runs it with the fixes it has waited
//! for: packets in Juniper/4 messages over TLS, read by their length however the server
//! cuts them; over ESP once a probe is answered (only those of the ESP transport's family,
//! unless the server allows both); `ncmo=0` when ESP dies, so that the server goes back to
//! TLS, and `ncmo=1` when a retry brings it back; the server's ESP rekeys answered with our
//! new keys; its session information acknowledged; a fatal error ends the run with its
//! reason; SIGINT/SIGTERM say goodbye (0x89) on the tunnel; a lost connection reconnects
//! with the cookie.

use std::time::Instant;

use oc_net::udp::RecvBatch;
use oc_net::TunReader;
use oc_proto::http::Request;
use oc_proto::pulse::client::ServerMessage;
use oc_proto::pulse::config::{parse_esp_config, PulseConfig};
use oc_proto::pulse::ift::{frame_in_place, IftPacket, HEADER_LEN, JUNIPER_LOGOUT};
use oc_proto::pulse::PulseError;
use tokio::io::AsyncWriteExt;
use tracing::{debug, error, info};

use super::pulse_error;
use super::setup::{Esp, Session};
use crate::cli::Options;
use crate::error::ClientError;
use crate::esp_channel::EspEvent;
use crate::host::TunnelHost;

use crate::transport::Endpoint;
use crate::tunnel_loop::{self, Stop, TunnelProtocol, Waits};
use crate::{user_agent, Finished};

/// Room before a packet: ESP's header and IV (24 bytes for AES) or IF-T's 16.
const HEADROOM: usize = 24;
/// Room after a packet: ESP's padding, trailer and ICV at most.
const TAILROOM: usize = 64;
/// Where the session ends when the tunnel is gone.
const LOGOUT: &str = "/dana-na/auth/logout.cgi";

/// What a read from the TLS connection asks for beyond its packets.
enum Control {
    /// An ESP configuration: new keys for what we send.
    Rekey(Vec<u8>),
    /// The server's session information (acknowledged; probes again if ESP waits).
    SessionInfo,
    Fatal(String),
}

struct PulseTunnel<'a> {
    opts: &'a Options,
    endpoint: &'a Endpoint,
    session: Session,
    /// The TLS connection is open.
    connected: bool,
    config: PulseConfig,
    esp: Option<Esp>,
    /// The server was last told `ncmo=1`.
    esp_on: bool,
    control: Vec<Control>,
    /// Frames of one tun read, sent in one write.
    out: Vec<u8>,
    host: TunnelHost<'a>,
}

/// Reads the configuration of the logged-in `session`, then runs the tunnel.
pub(super) async fn run(
    opts: &Options,
    endpoint: &Endpoint,
    session: Session,
) -> Result<Finished, ClientError> {
    let gateway = session.conn.addr.ip();
    let mut tunnel = PulseTunnel {
        opts,
        endpoint,
        session,
        connected: true,
        config: PulseConfig::default(),
        esp: None,
        esp_on: false,
        control: Vec::new(),
        out: Vec::new(),
        host: TunnelHost::new(opts, gateway),
    };
    tunnel.start().await?;
    let result = tunnel_loop::run(&mut tunnel).await;
    tunnel.host.finish();
    result
}

impl PulseTunnel<'_> {
    /// The configuration, the network, ESP's probes, then what came after the
    /// configuration.
    async fn start(&mut self) -> Result<(), ClientError> {
        // What the lost connection asked for is void on the new one.
        self.control.clear();
        let configured = self.session.configure(self.opts).await?;
        self.connected = true;
        self.config = configured.config;
        self.esp = configured.esp;
        self.esp_on = self.esp.is_some();
        self.host
            .network_up(self.config.ip.clone(), &self.links())?;
        if let Some(esp) = self.esp.as_mut() {
            esp.start(Instant::now()).await;
        }
        let queued: Vec<_> = self.session.queue.drain(..).collect();
        for message in &queued {
            self.dispatch(message.packet());
        }
        self.host.flush();
        self.act().await
    }

    fn links(&self) -> String {
        let esp = match &self.esp {
            Some(esp) if esp.is_up() => "established",
            Some(_) => "in progress",
            None => "disabled",
        };
        format!("SSL connected and ESP {esp}")
    }

    /// One message of the tunnel: a packet delivered, anything else noted for [`act`].
    fn dispatch(&mut self, msg: IftPacket<'_>) {
        dispatch(msg, &mut self.host, &mut self.control);
    }

    /// What the last messages asked for.
    async fn act(&mut self) -> Result<(), ClientError> {
        for control in std::mem::take(&mut self.control) {
            match control {
                Control::Rekey(payload) => self.rekey(&payload).await?,
                Control::SessionInfo => {
                    if let Some(esp) = self.esp.as_mut().filter(|e| !e.is_up()) {
                        esp.start(Instant::now()).await;
                    }
                    self.session.acknowledge_session_info().await?;
                }
                Control::Fatal(reason) => return Err(ClientError::ServerTerminated(reason)),
            }
        }
        Ok(())
    }

    /// The server's new keys for what we send; ours for what we receive go back.
    async fn rekey(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        let Some(esp) = self.esp.as_mut() else {
            debug!("ESP keys from the server while ESP is off; ignored");
            return Ok(());
        };
        let Some(suite) = self.config.esp.suite() else {
            return Ok(());
        };
        let (spi, secrets) = parse_esp_config(payload).map_err(pulse_error)?;
        let (in_spi, in_secrets) = match esp.rekey(suite, spi, secrets) {
            Ok(made) => made,
            Err(e) => {
                error!("ESP rekey failed: {e}");
                return Ok(());
            }
        };
        let reply = self.session.out.esp_reply(payload, in_spi, &in_secrets);
        self.session.write(&reply.map_err(pulse_error)?).await
    }

    /// Tells the server where to send: ESP (`ncmo=1`) or TLS.
    async fn tell_esp(&mut self, on: bool) -> Result<(), ClientError> {
        if self.esp_on == on {
            return Ok(());
        }
        let control = self.session.out.esp_control(on);
        self.session.write(&control).await?;
        self.esp_on = on;
        Ok(())
    }

    async fn esp_event(&mut self, event: EspEvent) -> Result<Option<Stop>, ClientError> {
        // A message the TLS connection fails to take is a loss (the loop's rule).
        match event {
            EspEvent::Established => self.tell_esp(true).await?,
            EspEvent::Abandoned(why) => {
                if self.esp_on {
                    error!("ESP failed ({why}); using HTTPS instead.");
                } else {
                    debug!("ESP: {why}");
                }
                self.tell_esp(false).await?;
            }
        }
        Ok(None)
    }

    /// Packets over TLS: all of them, or (`skip`) those not of the ESP family.
    async fn send_tls(
        &mut self,
        up: &mut TunReader,
        count: usize,
        skip: Option<u8>,
    ) -> Result<(), ClientError> {
        if !self.connected {
            return Ok(());
        }
        self.out.clear();
        for i in 0..count {
            let Some(framed) = up.framed_mut(i) else {
                continue;
            };
            let len = framed.len() - HEADROOM;
            if skip.is_some_and(|v| framed.get(HEADROOM).map(|b| b >> 4) == Some(v)) {
                continue;
            }
            let Some(room) = framed.get_mut(HEADROOM - HEADER_LEN..) else {
                continue;
            };
            let seq = self.session.out.take_seq();
            match frame_in_place(room, seq) {
                Ok(frame) => {
                    self.out.extend_from_slice(frame);
                    self.host.stats.sent(len);
                }
                Err(e) => debug!("packet dropped: {e}"),
            }
        }
        if self.out.is_empty() {
            return Ok(());
        }
        self.session.write(&self.out).await
    }

    async fn close(&mut self) {
        self.esp = None;
        if std::mem::take(&mut self.connected) {
            let _ = self.session.conn.tls.shutdown().await;
        }
    }

    /// The end of the session: goodbye on the tunnel, or the logout page without one.
    async fn logout(&mut self) {
        if self.connected {
            let bye = self.session.out.message(JUNIPER_LOGOUT, &[]);
            if self.session.write(&bye).await.is_ok() {
                info!("Logout successful.");
                self.close().await;
                return;
            }
        }
        self.close().await;
        let req = Request::new("GET", LOGOUT)
            .header("Host", self.endpoint.url.host_header())
            .header("User-Agent", user_agent(self.opts))
            .header("Cookie", format!("DSID={}", self.session.cookie));
        crate::web::logout(self.endpoint, &req).await;
    }

    fn log_stats(&self) {
        let conn = &self.session.conn;
        let tls = match self.connected {
            true => format!("SSL {} {}", conn.peer.version, conn.peer.cipher),
            false => "SSL disconnected".into(),
        };
        let esp = match &self.esp {
            Some(esp) => format!("ESP {}; {}", esp.status(), esp.drops()),
            None => "ESP disabled".into(),
        };
        self.host.stats.log(&format!("{tls}; {esp}"));
    }
}

/// One message of the tunnel: packets to `host`; rekeys, session information and fatal
/// errors to `control`.
fn dispatch(msg: IftPacket<'_>, host: &mut TunnelHost<'_>, control: &mut Vec<Control>) {
    match ServerMessage::read(msg) {
        Ok(ServerMessage::Packet(packet)) => host.deliver(packet),
        Ok(ServerMessage::EspKeys { payload, .. }) => {
            control.push(Control::Rekey(payload.to_vec()));
        }
        Ok(ServerMessage::SessionInfo) => control.push(Control::SessionInfo),
        Ok(ServerMessage::Fatal(text)) => control.push(Control::Fatal(text)),
        Ok(ServerMessage::Config(_) | ServerMessage::EndOfConfig) => {
            debug!("Configuration message in the tunnel; ignored")
        }
        Ok(ServerMessage::Other(line)) => debug!("{line}"),
        Err(e) => debug!("Unreadable Pulse message in the tunnel: {e}"),
    }
}

impl TunnelProtocol for PulseTunnel<'_> {
    const HEADROOM: usize = HEADROOM;
    const TAILROOM: usize = TAILROOM;

    async fn step(&mut self) -> Result<Option<Stop>, ClientError> {
        Ok(None)
    }

    fn waits(&mut self) -> Waits<'_> {
        Waits {
            tun: self.host.tun.as_ref().map(|(sink, _)| &sink.tun),
            tls: self.connected.then_some(&mut self.session.conn.tls),
            udp: self.esp.as_ref().map(Esp::socket),
            deadline: self.esp.as_ref().and_then(Esp::deadline),
        }
    }

    async fn send_packets(&mut self, up: &mut TunReader, count: usize) -> Result<(), ClientError> {
        let esp_up = self.esp.as_ref().is_some_and(|e| e.is_up());
        if !esp_up {
            return self.send_tls(up, count, None).await;
        }
        let family = self
            .config
            .esp_only_family(self.session.conn.addr.is_ipv6());
        // The other family first, before ESP seals its packets in place.
        if let Some(v) = family {
            self.send_tls(up, count, Some(v)).await?;
        }
        let Some(esp) = self.esp.as_mut() else {
            return Ok(());
        };
        let sent = esp
            .send_packets(up, count, HEADROOM, family, &mut self.host.stats)
            .await;
        if let Err(why) = sent {
            // These packets are lost; the next go over TLS.
            esp.lost(Instant::now());
            error!("ESP failed ({why}); using HTTPS instead.");
            self.tell_esp(false).await?;
        }
        Ok(())
    }

    async fn on_tls(&mut self, bytes: &[u8]) -> Result<Option<Stop>, ClientError> {
        let Self {
            session,
            host,
            control,
            ..
        } = self;
        let decoded = session.decoder.decode(bytes, |msg| {
            dispatch(msg, host, control);
            Ok::<_, PulseError>(())
        });
        self.host.flush();
        if let Err(e) = decoded {
            error!("{e}");
            return Ok(Some(Stop::Lost(e.to_string())));
        }
        self.act().await?;
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
        let cookie = self.session.cookie.clone();
        self.session = Session::login(self.opts, self.endpoint, Some(&cookie), None).await?;
        self.start().await
    }
}
