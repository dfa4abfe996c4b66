//! Tunnels of the PPP protocols: PPP negotiated over the TLS connection by
//! `oc_proto::ppp`, the tun device and the vpnc-script once IPCP/IPV6CP agree, the packet
//! loop, signals and reconnects. nullppp uses it as it is; fortinet and f5 add their login
//! and encapsulation in front.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ipnet::Ipv6Net;
use oc_net::{open_tun, Reason, ScriptContext, TunReader};
use oc_proto::http::{Request, ResponseHead};
use oc_proto::ip_config::IpConfig;
use oc_proto::ppp::{Closed, Encapsulation, Ppp, PppConfig, PppError, PppEvent, PppNetwork, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, info, warn};

use crate::cli::Options;
use crate::error::ClientError;
use crate::shell::{
    reconnect_backoff, run_script_logged, settle_in, Sig, Signals, Stats, TunSink, CANCELLED,
    DETACHED,
};
use crate::transport::{Endpoint, HttpsConnection};
use crate::{Finished, DEFAULT_SCRIPT};

/// TLS record overhead openconnect allows for when it computes the MTU it asks for.
const TLS_OVERHEAD: u16 = 5 + 16 + 8;
/// The most a TLS record carries.
const MAX_RECORD: usize = 16 * 1024;
/// How long PPP waits for a server's first bytes after a tunnel request that it may refuse.
const FIRST_BYTES_WAIT: Duration = Duration::from_secs(1);
/// How long a log-off waits for the Terminate-Ack.
const LOGOFF_WAIT: Duration = Duration::from_millis(1500);

/// The addresses a tunnel request's answer gives, to propose in IPCP/IPV6CP.
pub(crate) type Proposed = (Option<Ipv4Addr>, Option<Ipv6Addr>);

/// What the server sends before PPP on a new connection.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TunnelAnswer {
    /// Nothing: PPP starts at once (nullppp).
    Nothing,
    /// Nothing, or an HTTP refusal instead of PPP (Fortinet).
    PppOrHttpRefusal,
    /// An HTTP head, read by the protocol's function (F5).
    HttpHead(fn(&ResponseHead) -> Result<Proposed, ClientError>),
}

/// How one PPP protocol runs its link.
#[derive(Debug, Clone)]
pub(crate) struct PppLink {
    pub encapsulation: Encapsulation,
    pub want_ipv4: bool,
    pub want_ipv6: bool,
    /// Log off as soon as the network is up (upstream's nullppp `term` option, for tests).
    pub terminate_at_network: bool,
    /// Sent on each new connection before PPP starts (Fortinet's tunnel request).
    pub request: Option<Request>,
    /// What comes back before PPP.
    pub answer: TunnelAnswer,
    /// What the vendor's configuration said: addresses (proposed in IPCP), routes, DNS.
    pub base: IpConfig,
    /// LCP echo interval (the vendor's heartbeat, or `--force-dpd`).
    pub dpd: Option<Duration>,
    /// Sent on a new connection after logging off (Fortinet's `/remote/logout`).
    pub logout: Option<Request>,
}

impl PppLink {
    /// nullppp's options come in the cookie, as upstream reads them: `hdlc`, `noipv4`,
    /// `noipv6`, `term`, separated by anything.
    pub(crate) fn nullppp(cookie: &str, opts: &Options) -> Self {
        Self {
            encapsulation: if cookie.contains("hdlc") {
                Encapsulation::Hdlc
            } else {
                Encapsulation::Sync
            },
            want_ipv4: !cookie.contains("noipv4"),
            want_ipv6: !cookie.contains("noipv6") && !opts.disable_ipv6,
            terminate_at_network: cookie.contains("term"),
            request: None,
            answer: TunnelAnswer::Nothing,
            base: IpConfig::default(),
            dpd: None,
            logout: None,
        }
    }
}

/// The MRU to ask for: `--mtu`, else the link MTU less TLS, encapsulation, HDLC and PPP
/// overhead (and 1/32 more for HDLC escaping), as upstream computes it.
fn requested_mtu(opts: &Options, link: &PppLink, conn: &HttpsConnection) -> u16 {
    if let Some(mtu) = opts.mtu {
        return mtu;
    }
    let encap = link.encapsulation;
    let overhead = TLS_OVERHEAD
        + u16::try_from(encap.header_len()).unwrap_or(0)
        + if encap.is_hdlc() { 4 } else { 0 }
        + 4;
    let base = opts.base_mtu.unwrap_or_else(|| conn.link_mtu());
    let mtu = base.saturating_sub(overhead).max(576);
    if encap.is_hdlc() {
        mtu - (mtu >> 5)
    } else {
        mtu
    }
}

fn ppp_config(opts: &Options, link: &PppLink, conn: &HttpsConnection) -> PppConfig {
    PppConfig {
        encapsulation: link.encapsulation,
        role: Role::Client,
        want_ipv4: link.want_ipv4,
        want_ipv6: link.want_ipv6,
        mtu: requested_mtu(opts, link, conn),
        magic: random_magic(),
        ipv4: link.base.ipv4,
        ipv6: link.base.ipv6.map(|n| n.addr()),
        ask_name_servers: link.base.dns.is_empty(),
        reliable: true,
        dpd: opts
            .force_dpd
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
            .or(link.dpd),
        keepalive: None,
    }
}

fn random_magic() -> u32 {
    let mut bytes = [0u8; 4];
    if openssl::rand::rand_bytes(&mut bytes).is_err() {
        // Only loop-back detection depends on it; any non-zero value will do.
        return std::process::id() | 1;
    }
    u32::from_be_bytes(bytes).max(1)
}

/// The script's view: the vendor's configuration, completed by what PPP agreed.
fn ip_config(base: &IpConfig, net: &PppNetwork) -> IpConfig {
    let mut ip = base.clone();
    ip.mtu = net.mtu;
    ip.ipv4 = net.ipv4;
    if net.ipv6.is_none() {
        ip.ipv6 = None;
    } else if ip.ipv6.is_none() {
        ip.ipv6 = net.ipv6.and_then(|a| Ipv6Net::new(a, 64).ok());
    }
    if ip.dns.is_empty() {
        ip.dns = net.dns.iter().copied().map(IpAddr::V4).collect();
    }
    if ip.nbns.is_empty() {
        ip.nbns = net.nbns.iter().copied().map(IpAddr::V4).collect();
    }
    ip
}

/// A new connection with the protocol's tunnel request sent and, when the protocol has
/// one, its answer read: the connection, PPP bytes that came with the answer, and the
/// addresses it proposed.
async fn open_link(
    endpoint: &Endpoint,
    link: &PppLink,
) -> Result<(HttpsConnection, Vec<u8>, Option<Proposed>), ClientError> {
    let mut conn = endpoint.connect().await?;
    let Some(request) = &link.request else {
        return Ok((conn, Vec::new(), None));
    };
    if let TunnelAnswer::HttpHead(read) = link.answer {
        let (resp, rest) = conn.exchange(request, true).await?;
        let proposed = read(&resp.head)?;
        return Ok((conn, rest, Some(proposed)));
    }
    let mut bytes = Vec::new();
    request.emit(&mut bytes);
    conn.tls
        .write_all(&bytes)
        .await
        .map_err(ClientError::io("sending the tunnel request"))?;
    Ok((conn, Vec::new(), None))
}

/// Why the packet loop stopped.
enum Stop {
    Cancelled,
    Detached,
    /// Reconnect, for this reason.
    Lost(String),
    Done(Finished),
}

struct PppTunnel<'a> {
    opts: &'a Options,
    endpoint: &'a Endpoint,
    link: PppLink,
    script: String,
    conn: HttpsConnection,
    ppp: Ppp,
    /// Made when the network first comes up.
    tun: Option<(TunSink, String)>,
    ip: IpConfig,
    stats: Stats,
    pid_file: Option<PathBuf>,
    script_pid: u32,
    /// Encapsulated packets for one TLS write.
    out: Vec<u8>,
    /// The first bytes of a connection are still to be checked for an HTTP answer.
    check_first: bool,
    connected_at: Instant,
    /// PPP bytes that came with the tunnel request's answer.
    pending: Vec<u8>,
}

/// Runs a PPP tunnel over a new TLS connection to the server.
pub(crate) async fn run(
    opts: &Options,
    endpoint: &Endpoint,
    mut link: PppLink,
) -> Result<Finished, ClientError> {
    let (conn, pending, proposed) = open_link(endpoint, &link).await?;
    if let Some((v4, v6)) = proposed {
        link.base.ipv4 = v4.or(link.base.ipv4);
        if let Some(v6) = v6 {
            link.base.ipv6 = Ipv6Net::new(v6, 64).ok();
        }
    }
    let ppp = Ppp::new(ppp_config(opts, &link, &conn), Instant::now());
    let check_first = matches!(link.answer, TunnelAnswer::PppOrHttpRefusal);
    let mut tunnel = PppTunnel {
        opts,
        endpoint,
        link,
        script: opts
            .script
            .clone()
            .unwrap_or_else(|| DEFAULT_SCRIPT.to_string()),
        conn,
        ppp,
        tun: None,
        ip: IpConfig::default(),
        stats: Stats::default(),
        pid_file: None,
        script_pid: std::process::id(),
        out: Vec::new(),
        check_first,
        connected_at: Instant::now(),
        pending,
    };
    let result = tunnel.main_loop().await;
    if tunnel.tun.is_some() {
        run_script_logged(&tunnel.script, Reason::Disconnect, &tunnel.script_context());
    }
    if let Some(p) = &tunnel.pid_file {
        let _ = std::fs::remove_file(p);
    }
    result
}

impl PppTunnel<'_> {
    fn script_context(&self) -> ScriptContext<'_> {
        ScriptContext {
            // Before the device exists (pre-init), the name asked for, as upstream.
            tundev: self
                .tun
                .as_ref()
                .map(|(_, name)| name.as_str())
                .or(self.opts.interface.as_deref()),
            gateway: Some(self.conn.addr.ip()),
            pid: self.script_pid,
            log_level: self.opts.log_level(),
            tunnel: Some(&self.ip),
        }
    }

    async fn main_loop(&mut self) -> Result<Finished, ClientError> {
        let mut signals = Signals::new()?;
        loop {
            match self.packet_loop(&mut signals).await? {
                Stop::Done(done) => return Ok(done),
                Stop::Detached => {
                    let _ = self.conn.tls.shutdown().await;
                    return Ok(Finished(DETACHED.into()));
                }
                Stop::Cancelled => {
                    info!("User cancelled (SIGINT/SIGTERM), sending logoff");
                    self.log_off().await;
                    return Ok(Finished(CANCELLED.into()));
                }
                // As upstream: a link that never came up is not worth reconnecting.
                Stop::Lost(why) if self.tun.is_none() => {
                    return Err(ClientError::PppNotEstablished(why));
                }
                Stop::Lost(why) => {
                    if let Some(done) = self.reconnect(&why, &mut signals).await? {
                        return Ok(done);
                    }
                }
            }
        }
    }

    async fn packet_loop(&mut self, signals: &mut Signals) -> Result<Stop, ClientError> {
        let mut up = TunReader::new(0);
        let mut down = vec![0u8; 64 * 1024];
        let pending = std::mem::take(&mut self.pending);
        if !pending.is_empty() {
            self.handle_tls(&pending)?;
        }
        loop {
            if let Some(stop) = self.after_input().await? {
                return Ok(stop);
            }
            let hold = self
                .holding_back()
                .then_some(self.connected_at + FIRST_BYTES_WAIT);
            let deadline = [self.ppp.poll_timeout(), hold].into_iter().flatten().min();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            let tun = self.tun.as_ref().map(|(sink, _)| &sink.tun);
            tokio::select! {
                sig = signals.recv() => match sig {
                    Sig::Cancel => return Ok(Stop::Cancelled),
                    Sig::Detach => return Ok(Stop::Detached),
                    Sig::Reconnect => return Ok(Stop::Lost("User requested reconnect".into())),
                    Sig::Stats => self.print_stats(),
                },
                read = async { up.recv(tun?).await.ok() }, if tun.is_some() => {
                    if let Some(n) = read {
                        if let Err(e) = self.send_packets(&mut up, n).await {
                            return Ok(Stop::Lost(e.to_string()));
                        }
                    }
                }
                read = self.conn.tls.read(&mut down) => match read {
                    Ok(0) => return Ok(Stop::Lost("server closed the connection".into())),
                    Ok(n) => self.handle_tls(down.get(..n).unwrap_or_default())?,
                    Err(e) => return Ok(Stop::Lost(format!("read error on TLS connection: {e}"))),
                },
                () = sleep => {
                    if let Err(e) = self.ppp.handle_timeout(Instant::now()) {
                        return self.ppp_failed(e);
                    }
                }
            }
        }
    }

    fn handle_tls(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        if std::mem::take(&mut self.check_first) {
            if let Some(status) = oc_proto::fortinet::http_status_instead_of_ppp(bytes) {
                return Err(match status {
                    401 | 403 => ClientError::CookieRejected(format!("HTTP {status}")),
                    _ => ClientError::PppNotEstablished(format!(
                        "the server answered the tunnel request with HTTP {status}"
                    )),
                });
            }
        }
        let Self {
            ppp, tun, stats, ..
        } = self;
        let result = ppp.handle_input(bytes, Instant::now(), &mut |packet| {
            if let Some((sink, _)) = tun.as_mut() {
                sink.push(packet, stats);
            }
        });
        if let Some((sink, _)) = self.tun.as_mut() {
            sink.flush(&mut self.stats);
        }
        result.map_err(ClientError::from)
    }

    /// A server that refuses the tunnel request answers in HTTP and closes at once; PPP
    /// written into that close fails before the answer can be read, so PPP waits for the
    /// server's first bytes (or [`FIRST_BYTES_WAIT`], for servers that wait for us).
    fn holding_back(&self) -> bool {
        self.check_first && Instant::now() < self.connected_at + FIRST_BYTES_WAIT
    }

    fn print_stats(&self) {
        self.stats.log(&format!(
            "SSL {} {}; PPP over TLS",
            self.conn.peer.version, self.conn.peer.cipher
        ));
    }

    /// A dead peer is a reason to reconnect; anything else ends the tunnel.
    fn ppp_failed(&self, e: PppError) -> Result<Stop, ClientError> {
        match e {
            PppError::PeerDead(_) => Ok(Stop::Lost(format!("PPP {e}"))),
            other => Err(other.into()),
        }
    }

    /// Encapsulates one tun read's packets and writes them, a TLS record's worth at a time
    /// and only whole frames in each: some peers (openconnect 9.01's HDLC reader, for one)
    /// drop a frame that goes on in the next record.
    async fn send_packets(&mut self, up: &mut TunReader, count: usize) -> Result<(), ClientError> {
        self.out.clear();
        let now = Instant::now();
        for i in 0..count {
            let Some(packet) = up.framed_mut(i) else {
                continue;
            };
            let before = self.out.len();
            match self.ppp.encapsulate_ip(packet, now, &mut self.out) {
                Ok(()) => self.stats.sent(packet.len()),
                Err(e) => debug!("packet dropped: {e}"),
            }
            if self.out.len() > MAX_RECORD && before > 0 {
                let whole = self.out.get(..before).unwrap_or_default();
                self.conn
                    .tls
                    .write_all(whole)
                    .await
                    .map_err(ClientError::io("sending on the TLS connection"))?;
                self.out.drain(..before);
            }
        }
        self.conn
            .tls
            .write_all(&self.out)
            .await
            .map_err(ClientError::io("sending on the TLS connection"))
    }

    /// Writes what PPP queued and acts on its events.
    async fn after_input(&mut self) -> Result<Option<Stop>, ClientError> {
        while !self.holding_back() {
            let Some(frame) = self.ppp.poll_transmit() else {
                break;
            };
            if let Err(e) = self.conn.tls.write_all(&frame).await {
                return Ok(Some(Stop::Lost(format!(
                    "sending on the TLS connection: {e}"
                ))));
            }
        }
        while let Some(event) = self.ppp.poll_event() {
            match event {
                PppEvent::Log(line) => debug!("PPP: {line}"),
                PppEvent::NetworkUp(net) => {
                    if let Some(stop) = self.network_up(&net)? {
                        return Ok(Some(stop));
                    }
                }
                PppEvent::Closed(Closed::ByPeer { reason }) => {
                    return Err(ClientError::ServerTerminated(
                        reason.unwrap_or_else(|| "PPP Terminate-Request".into()),
                    ));
                }
                PppEvent::Closed(Closed::ByUs { .. }) => {
                    return Ok(Some(Stop::Done(Finished(CANCELLED.into()))));
                }
            }
        }
        Ok(None)
    }

    /// The first time: scripts, tun device, going to the background. After a reconnect:
    /// the same addresses, or the session is treated as lost.
    fn network_up(&mut self, net: &PppNetwork) -> Result<Option<Stop>, ClientError> {
        let ip = ip_config(&self.link.base, net);
        if self.tun.is_some() {
            if ip.addresses() != self.ip.addresses() {
                return Err(ClientError::AddressChanged(format!(
                    "had {:?}, got {:?}",
                    self.ip.addresses(),
                    ip.addresses()
                )));
            }
            info!("Reconnected");
            run_script_logged(&self.script, Reason::Reconnect, &self.script_context());
            return Ok(None);
        }
        self.ip = ip;
        run_script_logged(&self.script, Reason::PreInit, &self.script_context());
        let (tun, name) = open_tun(self.opts.interface.as_deref())?;
        self.tun = Some((TunSink::new(tun), name));
        run_script_logged(&self.script, Reason::Connect, &self.script_context());
        let addrs: Vec<String> = self.ip.addresses().iter().map(IpAddr::to_string).collect();
        info!(
            "Configured as {}, with SSL connected and UDP disabled (MTU {})",
            addrs.join(" + "),
            self.ip.mtu
        );
        self.pid_file = settle_in(self.opts)?;
        if self.link.terminate_at_network {
            warn!("Terminating because nullppp has reached network state.");
            return Ok(Some(Stop::Cancelled));
        }
        Ok(None)
    }

    /// Terminate-Request, and a short wait for its Ack.
    async fn log_off(&mut self) {
        self.ppp.terminate(Instant::now());
        let mut down = vec![0u8; 16 * 1024];
        let wait = async {
            while !self.ppp.is_closed() {
                while let Some(frame) = self.ppp.poll_transmit() {
                    self.conn.tls.write_all(&frame).await.ok()?;
                }
                let n = self.conn.tls.read(&mut down).await.ok()?;
                if n == 0 {
                    return None;
                }
                let bytes = down.get(..n).unwrap_or_default();
                self.ppp
                    .handle_input(bytes, Instant::now(), &mut |_| {})
                    .ok()?;
            }
            Some(())
        };
        let _ = tokio::time::timeout(LOGOFF_WAIT, wait).await;
        let _ = self.conn.tls.shutdown().await;
        if let Some(logout) = &self.link.logout {
            match self.endpoint.connect().await {
                Ok(mut conn) => match conn.exchange(logout, false).await {
                    Ok((resp, _)) => debug!("logout: HTTP {}", resp.head.status),
                    Err(e) => debug!("logout: {e}"),
                },
                Err(e) => debug!("logout: {e}"),
            }
        }
    }

    /// Reconnects TLS and negotiates PPP again, keeping the tun device. Returns `Some` when
    /// a signal ended the wait instead.
    async fn reconnect(
        &mut self,
        why: &str,
        signals: &mut Signals,
    ) -> Result<Option<Finished>, ClientError> {
        warn!("{why}; reconnecting");
        if self.tun.is_some() {
            run_script_logged(
                &self.script,
                Reason::AttemptReconnect,
                &self.script_context(),
            );
        }
        let started = Instant::now();
        let limit = Duration::from_secs(self.opts.reconnect_timeout);
        let mut interval = Duration::ZERO;
        loop {
            match open_link(self.endpoint, &self.link).await {
                Ok((conn, pending, _)) => {
                    self.conn = conn;
                    self.pending = pending;
                    self.check_first = matches!(self.link.answer, TunnelAnswer::PppOrHttpRefusal);
                    self.connected_at = Instant::now();
                    self.ppp.restart(true, Instant::now());
                    return Ok(None);
                }
                Err(e) => {
                    let stats = || self.print_stats();
                    let ended =
                        reconnect_backoff(e, started, limit, &mut interval, signals, &stats);
                    if let Some(done) = ended.await? {
                        return Ok(Some(done));
                    }
                }
            }
        }
    }
}
