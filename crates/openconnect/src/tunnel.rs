//! The running tunnel: CONNECT, tun device and scripts, the packet loop, signals and
//! reconnects.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Instant;

use oc_net::udp::{datagrams, RecvBatch};
use oc_net::{Reason, ScriptContext, TunReader};
use oc_proto::anyconnect::connect::{default_tunnel_mtu, ConnectRequest, DtlsOffer, TunnelConfig};
use oc_proto::anyconnect::frame::CSTP_HEADER_LEN;
use oc_proto::anyconnect::session::SessionError;
use oc_proto::anyconnect::session::{Channel, Event, Session};
use oc_proto::compress::{Algorithm, TunnelCompression, CLIENT_MIN_PACKET};
use tokio::io::AsyncWriteExt;
use tracing::{debug, info, warn};

use crate::cli::Options;
use crate::dtls::{DtlsLink, DtlsSettings};
use crate::error::ClientError;
use crate::shell::{settle_in, Stats, TunSink, VpncScript};
use crate::transport::{Endpoint, HttpsConnection};
use crate::tunnel_loop::{self, Stop, TunnelProtocol, Waits};
use crate::udp_channel::UdpChannel;
use crate::{user_agent, Finished};

struct Tunnel<'a> {
    opts: &'a Options,
    endpoint: &'a Endpoint,
    cookie: String,
    script: VpncScript,
    tun: TunSink,
    tundev: String,
    config: TunnelConfig,
    conn: HttpsConnection,
    session: Session,
    dtls: DtlsLink,
    /// CSTP bytes that arrived with the CONNECT response.
    pending: Vec<u8>,
    stats: Stats,
    pid_file: Option<PathBuf>,
    /// `VPNPID` as the connect script saw it. Kept after `-b` forks, because vpnc-script
    /// names its DNS and route backups after it and must find them on disconnect.
    script_pid: u32,
}

/// Runs the tunnel; `login` is the login's connection if the server kept it open.
pub(crate) async fn run(
    opts: &Options,
    endpoint: &Endpoint,
    cookie: String,
    login: Option<HttpsConnection>,
) -> Result<Finished, ClientError> {
    let script = VpncScript::new(opts);
    let mut dtls = DtlsLink::new(DtlsSettings {
        enabled: !opts.no_dtls,
        local_port: opts.dtls_local_port,
        ciphers: opts.dtls_ciphers.clone(),
        dtls12_ciphers: opts.dtls12_ciphers.clone(),
    });
    let (conn, config, pending) =
        connect_tunnel(opts, endpoint, &cookie, &[], dtls.offer(), login).await?;
    let gateway = conn.addr.ip();

    let script_pid = std::process::id();
    let ctx = ScriptContext {
        tundev: opts.interface.as_deref(),
        gateway: Some(gateway),
        pid: script_pid,
        log_level: opts.log_level(),
        tunnel: Some(&config.ip),
    };
    let (tun, tundev) = script.open_device(opts.interface.as_deref(), &ctx)?;
    dtls.begin(conn.tls.ssl(), gateway, &config).await;
    announce(&config, &tundev, dtls.status());

    let pid_file = settle_in(opts)?;

    let session = new_session(&config);
    let mut tunnel = Tunnel {
        opts,
        endpoint,
        cookie,
        script,
        tun,
        tundev,
        config,
        conn,
        session,
        dtls,
        pending,
        stats: Stats::default(),
        pid_file,
        script_pid,
    };
    let result = tunnel_loop::run(&mut tunnel).await;
    tunnel.finish();
    result
}

/// Asks for the tunnel with the cookie, over `reuse` (the login's connection) when given,
/// else over a new TLS connection; also a new one when the reused connection turns out to be
/// closed.
async fn connect_tunnel(
    opts: &Options,
    endpoint: &Endpoint,
    cookie: &str,
    previous: &[IpAddr],
    dtls: Option<DtlsOffer>,
    reuse: Option<HttpsConnection>,
) -> Result<(HttpsConnection, TunnelConfig, Vec<u8>), ClientError> {
    let reused = reuse.is_some();
    let mut conn = match reuse {
        Some(c) => c,
        None => endpoint.connect().await?,
    };
    let server_v6 = conn.addr.is_ipv6();
    let base_mtu = opts.base_mtu.unwrap_or_else(|| conn.link_mtu());
    let request = ConnectRequest {
        host: endpoint.url.host_header(),
        user_agent: user_agent(opts),
        cookie: cookie.to_string(),
        local_hostname: opts.hostname(),
        base_mtu,
        mtu: opts
            .mtu
            .unwrap_or_else(|| default_tunnel_mtu(base_mtu, server_v6)),
        ipv6: !opts.disable_ipv6,
        previous_addresses: previous.to_vec(),
        dtls,
        compression: opts.compression_mode(),
    };
    let request = request.to_request();
    let (response, rest) = match conn.exchange(&request, true).await {
        Ok(answer) => answer,
        // A server's refusal is a response; an error here is the connection, which may
        // have been closed while idle after the login.
        Err(e) if reused => {
            debug!("login connection unusable for CONNECT ({e}); opening a new one");
            conn = endpoint.connect().await?;
            conn.exchange(&request, true).await?
        }
        Err(e) => return Err(e),
    };
    let config = TunnelConfig::from_response(&response.head, opts.forced_dpd())?;
    for w in &config.warnings {
        warn!("{w}");
    }
    info!(
        "Got CONNECT response: HTTP/1.1 {} {}",
        response.head.status, response.head.reason
    );
    Ok((conn, config, rest))
}

/// A fresh protocol session for a new connection, with the compression it negotiated.
fn new_session(config: &TunnelConfig) -> Session {
    Session::new(config.cstp_timers, Instant::now()).with_compression(TunnelCompression::new(
        config.cstp_compression,
        config.dtls_compression,
        CLIENT_MIN_PACKET,
        usize::from(config.ip.mtu),
    ))
}

fn announce(config: &TunnelConfig, tundev: &str, dtls: &str) {
    let mut addrs = Vec::new();
    if let Some(a) = config.ip.ipv4 {
        addrs.push(a.to_string());
    }
    if let Some(a) = config.ip.ipv6 {
        addrs.push(a.addr().to_string());
    }
    let with = |algorithm: Option<Algorithm>| {
        algorithm
            .map(|a| format!(" + {}", a.display_name()))
            .unwrap_or_default()
    };
    info!(
        "Connected {tundev} as {}, using SSL{}, with DTLS{} {} (MTU {})",
        addrs.join(" + "),
        with(config.cstp_compression),
        with(config.dtls_compression),
        dtls,
        config.ip.mtu
    );
}

impl Tunnel<'_> {
    fn script_context(&self) -> ScriptContext<'_> {
        ScriptContext {
            tundev: Some(&self.tundev),
            gateway: Some(self.conn.addr.ip()),
            pid: self.script_pid,
            log_level: self.opts.log_level(),
            tunnel: Some(&self.config.ip),
        }
    }

    fn finish(&mut self) {
        self.script.run(Reason::Disconnect, &self.script_context());
        if let Some(p) = &self.pid_file {
            let _ = std::fs::remove_file(p);
        }
    }

    /// Sends control frames the session queued and acts on its events.
    async fn after_input(&mut self) -> Result<Option<Stop>, ClientError> {
        if let Err(e) = self.flush_control().await {
            return Ok(Some(Stop::Lost(e.to_string())));
        }
        // Events that end this connection return at once; the others are handled in turn.
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::ServerDisconnect(reason) => {
                    return Err(ClientError::ServerTerminated(reason));
                }
                Event::PeerDead(Channel::Dtls) => {
                    warn!("DTLS Dead Peer Detection detected dead peer!");
                    self.dtls.lost(&mut self.session, "dead peer");
                }
                Event::PeerDead(Channel::Cstp) => {
                    return Ok(Some(Stop::Lost(
                        "CSTP Dead Peer Detection detected dead peer!".into(),
                    )));
                }
                Event::RekeyDue(Channel::Dtls) => self.dtls.rekey(&mut self.session).await,
                Event::DtlsMtu(mtu) => self.dtls.path_mtu_found(mtu),
                Event::BadCompressedPacket(e) => warn!("{e}; packet dropped"),
                Event::RekeyDue(Channel::Cstp) => {
                    let in_place = self.config.rekey_method.as_deref() == Some("ssl");
                    if in_place && oc_tls::rekey_in_place(self.conn.tls.ssl()) {
                        info!("CSTP rekey due; TLS 1.3 key update");
                    } else {
                        return Ok(Some(Stop::Lost("rekey due (new tunnel)".into())));
                    }
                }
            }
        }
        Ok(None)
    }

    async fn flush_control(&mut self) -> Result<(), ClientError> {
        while let Some((channel, bytes)) = self.session.poll_transmit() {
            match channel {
                Channel::Cstp => self
                    .conn
                    .tls
                    .write_all(&bytes)
                    .await
                    .map_err(ClientError::io("sending on the TLS connection"))?,
                Channel::Dtls => {
                    if let Err(e) = self.dtls.send_record(&bytes).await {
                        self.dtls.lost(&mut self.session, &e);
                    }
                }
            }
        }
        Ok(())
    }

    /// Sends the packets of one tun read; DTLS records leave together at the end.
    async fn send_tun_packets(
        &mut self,
        up: &mut TunReader,
        count: usize,
    ) -> Result<(), ClientError> {
        for i in 0..count {
            if let Some(framed) = up.framed_mut(i) {
                self.send_packet(framed).await?;
            }
        }
        if let Err(e) = self.dtls.flush().await {
            self.dtls
                .lost(&mut self.session, &format!("sending on UDP: {e}"));
        }
        Ok(())
    }

    /// `buf` holds a packet after room for the CSTP header.
    async fn send_packet(&mut self, buf: &mut [u8]) -> Result<(), ClientError> {
        let len = buf.len().saturating_sub(CSTP_HEADER_LEN);
        if self.dtls.carries(len) {
            let class = match self.opts.passtos {
                true => buf
                    .get(CSTP_HEADER_LEN..)
                    .and_then(oc_proto::ip::traffic_class),
                false => None,
            };
            if let Some(class) = class {
                if let Err(e) = self.dtls.mark(class).await {
                    self.dtls.lost(&mut self.session, &e);
                }
            }
            let sent = {
                let record = self
                    .session
                    .compression()
                    .encode_packet(Channel::Dtls, buf)
                    .map_err(SessionError::from)?;
                self.dtls.queue_record(record).await
            };
            match sent {
                Ok(()) => {
                    self.session.on_data_sent(Channel::Dtls, Instant::now());
                    self.stats.sent(len);
                    return Ok(());
                }
                // The packet goes over CSTP instead.
                Err(e) => self.dtls.lost(&mut self.session, &e),
            }
        }
        let frame = self
            .session
            .compression()
            .encode_packet(Channel::Cstp, buf)
            .map_err(SessionError::from)?;
        self.conn
            .tls
            .write_all(frame)
            .await
            .map_err(ClientError::io("sending on the TLS connection"))?;
        self.session.on_data_sent(Channel::Cstp, Instant::now());
        self.stats.sent(len);
        Ok(())
    }

    async fn handle_datagram(&mut self, datagram: &[u8]) {
        let tun = &mut self.tun;
        let stats = &mut self.stats;
        self.dtls
            .on_datagram(datagram, &mut self.session, |packet| {
                tun.push(packet, stats)
            })
            .await;
    }

    /// Decodes CSTP bytes; the packets wait in the tun batch for [`Tunnel::flush_tun`].
    fn handle_cstp(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let tun = &mut self.tun;
        let stats = &mut self.stats;
        self.session
            .handle_cstp(bytes, Instant::now(), |packet| tun.push(packet, stats))?;
        Ok(())
    }

    fn flush_tun(&mut self) {
        self.tun.flush(&mut self.stats);
    }

    fn log_stats(&self) {
        self.stats.log(&format!(
            "SSL {} {}; DTLS {}",
            self.conn.peer.version,
            self.conn.peer.cipher,
            self.dtls.status()
        ));
    }

    fn previous_addresses(&self) -> Vec<IpAddr> {
        self.config.ip.addresses()
    }

    /// Reconnects with the cookie, keeping the tun device. Returns `Some` when a signal
    /// ended the wait instead.
    /// One reconnect: CONNECT again with the cookie; the same addresses, or the cookie
    /// counts as rejected.
    async fn reconnect_cstp(&mut self) -> Result<(), ClientError> {
        let previous = self.previous_addresses();
        let offer = self.dtls.offer();
        let (conn, config, pending) = connect_tunnel(
            self.opts,
            self.endpoint,
            &self.cookie,
            &previous,
            offer,
            None,
        )
        .await?;
        if config.ip.ipv4 != self.config.ip.ipv4 || config.ip.ipv6 != self.config.ip.ipv6 {
            return Err(ClientError::AddressChanged(format!(
                "had {:?}/{:?}, got {:?}/{:?}",
                self.config.ip.ipv4, self.config.ip.ipv6, config.ip.ipv4, config.ip.ipv6
            )));
        }
        self.conn = conn;
        self.session = new_session(&config);
        self.config = config;
        self.pending = pending;
        let gateway = self.conn.addr.ip();
        self.dtls
            .begin(self.conn.tls.ssl(), gateway, &self.config)
            .await;
        info!("Reconnected");
        self.script.run(Reason::Reconnect, &self.script_context());
        Ok(())
    }
}

impl TunnelProtocol for Tunnel<'_> {
    const HEADROOM: usize = CSTP_HEADER_LEN;

    async fn step(&mut self) -> Result<Option<Stop>, ClientError> {
        let pending = std::mem::take(&mut self.pending);
        if !pending.is_empty() {
            self.handle_cstp(&pending)?;
            self.flush_tun();
        }
        self.after_input().await
    }

    fn waits(&mut self) -> Waits<'_> {
        let deadline = [self.session.poll_timeout(), self.dtls.deadline()]
            .into_iter()
            .flatten()
            .min();
        Waits {
            tun: Some(&self.tun.tun),
            tls: Some(&mut self.conn.tls),
            udp: self.dtls.channel().map(UdpChannel::socket),
            deadline,
        }
    }

    async fn send_packets(&mut self, up: &mut TunReader, count: usize) -> Result<(), ClientError> {
        self.send_tun_packets(up, count).await
    }

    async fn on_tls(&mut self, bytes: &[u8]) -> Result<Option<Stop>, ClientError> {
        self.handle_cstp(bytes)?;
        self.flush_tun();
        Ok(None)
    }

    async fn on_udp(
        &mut self,
        batch: &mut RecvBatch,
        read: std::io::Result<usize>,
    ) -> Result<Option<Stop>, ClientError> {
        match read {
            Ok(n) => {
                for i in 0..n {
                    let Some((_, run, stride)) = batch.get(i) else {
                        break;
                    };
                    for datagram in datagrams(run, stride) {
                        self.handle_datagram(datagram).await;
                    }
                }
                self.flush_tun();
            }
            Err(e) => self
                .dtls
                .lost(&mut self.session, &format!("UDP receive failed: {e}")),
        }
        Ok(None)
    }

    async fn on_deadline(&mut self, now: Instant) -> Result<Option<Stop>, ClientError> {
        self.session.handle_timeout(now);
        self.dtls.on_deadline(now).await;
        Ok(None)
    }

    fn print_stats(&self) {
        self.log_stats();
    }

    async fn log_off(&mut self) {
        self.session.disconnect("Aborted by caller");
        let _ = self.flush_control().await;
        let _ = self.conn.tls.shutdown().await;
    }

    async fn detach(&mut self) {
        let _ = self.conn.tls.shutdown().await;
    }

    fn options(&self) -> &Options {
        self.opts
    }

    async fn prepare_reconnect(&mut self, _why: &str) {
        self.script
            .run(Reason::AttemptReconnect, &self.script_context());
    }

    async fn reconnect_once(&mut self) -> Result<(), ClientError> {
        self.reconnect_cstp().await
    }
}
