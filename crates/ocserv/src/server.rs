//! The I/O shell of the server: accepting connections, TLS, the HTTP login phase, tunnels,
//! and the one tun device all sessions share.
//!
//! Protocol decisions live in `oc-proto` (HTTP, XML, CONNECT, CSTP session) and in the
//! sans-IO modules of this crate (auth conversation, pool, sessions, bans); this module
//! moves bytes between them, sockets, the tun device and scripts.
//!
//! Unlike ocserv (a process and a tun device per client), every session lives in this one
//! process and shares one tun device: packets read from it are dispatched to the session
//! that owns the destination address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use oc_net::udp::BatchSocket;
use oc_net::{Coalescer, TunReader, TunWriter};
use oc_proto::anyconnect::dtls_cipher::{select_legacy, Bulk};
use oc_proto::anyconnect::frame::CSTP_HEADER_LEN;
use oc_proto::anyconnect::server_auth::{complete_xml, parse_client_auth, ClientAuth};
use oc_proto::anyconnect::server_connect::{
    data_mtu, is_tunnel_target, legacy_data_mtu, link_mtu, mtu_allows_ipv6, AgentKind,
    ClientConnect, DtlsGrant, DtlsMode, DtlsPlan, TunnelGrant,
};
use oc_proto::anyconnect::server_session::{ServerEvent, ServerSession, ServerTimers};
use oc_proto::anyconnect::session::Channel;
use oc_proto::compress::TunnelCompression;
use oc_proto::http::server::{Method, RequestLimits, RequestReader, ServerRequest, ServerResponse};
use oc_tls::dtls::{psk_from_tls, LegacyCipher};
use oc_tls::server::{cert_field, verified_client_cert, TlsServer, TlsServerConfig};
use oc_tls::TlsStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::packets::PacketBatch;
use tokio::sync::{broadcast, mpsc, watch};
use tracing::{debug, info, warn, Instrument};
use tun_rs::AsyncDevice;

use crate::auth::{valid_name, AuthStep, CertIdentity, CertStatus, Conversation, FormSettings};
use crate::ban::{BanList, BanPolicy};
mod admin;

use oc_ctl::model::{Event, UserInfo};

use crate::config::{self, AuthMethod, CertOid, Config, NetSettings, Problem, RekeyMethod};
use crate::metrics::{AuthFailure, Direction, Metrics, Transport, TunnelMeters};
use crate::otp::{self, OtpOutcome};
use crate::passwd::{check_plain, PasswdFile, PlainAuth};
use crate::pool::{server_address_v4, server_address_v6, AddressPool, Lease, LeaseRequest};
use crate::routes::RouteTable;
use crate::script::{self, ScriptInfo, ScriptReason};
use crate::sessions::{CookieError, SessionStore, COOKIE_BYTES};
use crate::udp::{
    self, psk_cipher_matching, DtlsContexts, DtlsId, DtlsRegistry, Keying, TunnelDtls, UdpCounters,
};
use oc_proto::anyconnect::dtls_hello::DTLS_ID_LEN;

/// HTTP requests allowed on one connection before CONNECT (ocserv allows 16).
const MAX_REQUESTS: usize = 16;
/// Tun reads' worth of packets queued towards one client before new ones are dropped
/// (each at most 64 KiB: one super-packet split).
const SESSION_QUEUE: usize = 128;
/// Bytes read from TLS at once: one TLS record holds at most 16 KiB of plaintext, so a
/// larger buffer would only cost memory in every session (frames spanning reads are
/// reassembled by the decoder).
const READ_BUF: usize = 16 * 1024;
/// A client that accepts no data for this long is gone: the write is abandoned, so a
/// stalled peer cannot freeze its tunnel's timers or hold its slot.
const WRITE_LIMIT: Duration = Duration::from_secs(30);
/// Time allowed for a goodbye (DISCONNECT, TLS close) to a client.
const GOODBYE_LIMIT: Duration = Duration::from_secs(2);
/// Queued packets sent per wake-up before the task looks at its other inputs again.
const MAX_BATCH: usize = 64;
/// Connections allowed at once before login (each may hold up to 16 KiB of header, a
/// 256 KiB body and TLS state for `auth-timeout`).
const MAX_PRELOGIN: usize = 1024;
/// Password checks running at once.
const MAX_PASSWORD_CHECKS: usize = 4;
/// How long shutdown waits for sessions to say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// A TLS handshake must finish within this (or auth-timeout, if shorter).
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);
/// A request must arrive whole within this of its first byte: trickling senders
/// (slowloris) are cut off.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);
/// Connections from one address still logging in; more are closed at once.
const MAX_PRELOGIN_PER_IP: usize = 32;
/// Connect/disconnect events kept for a slow `occtl show events` reader.
const EVENT_BACKLOG: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Tls(#[from] oc_tls::TlsError),
    #[error("cannot create the tun device: {0}")]
    Tun(String),
    #[error("cannot set up DTLS: {0}")]
    Dtls(String),
}

/// The parts that SIGHUP reloads. Running sessions keep what they started with.
#[derive(Debug)]
pub struct Runtime {
    pub config: Config,
    pub tls: TlsServer,
    pub forms: FormSettings,
}

impl Runtime {
    /// Loads the configuration and everything it references.
    pub fn load(path: &std::path::Path) -> Result<(Self, Vec<Problem>), ServerError> {
        let loaded = config::load(path, false)?;
        let config = loaded.config;
        let uses_cert = config
            .auth
            .iter()
            .chain(config.enable_auth.iter())
            .any(|m| matches!(m, AuthMethod::Certificate));
        let tls = TlsServer::new(&TlsServerConfig {
            cert: config.server_cert.clone(),
            key: config.server_key.clone(),
            ca: config.ca_cert.clone(),
            request_client_cert: uses_cert,
            priorities: config.tls_priorities.clone(),
        })?;
        let mut warnings = loaded.warnings;
        for token in &tls.policy.ignored {
            warnings.push(Problem {
                file: config.path.clone(),
                line: 0,
                message: format!("tls-priorities: {token} has no OpenSSL equivalent; ignored"),
            });
        }
        warnings.extend(not_yet_used(&config));
        let forms = form_settings(&config);
        Ok((Self { config, tls, forms }, warnings))
    }
}

/// Keys that parse but whose feature this server does not have yet: each gets a warning at
/// its line, so nobody believes a limit or a channel is active when it is not.
pub fn not_yet_used(config: &Config) -> Vec<Problem> {
    let set = |key: &str| config.key_lines.contains_key(key);
    let mut out = Vec::new();
    let mut note =
        |key: &str, what: &str| out.push(config.problem_at(key, format!("{key}: {what}")));
    for key in ["rx-data-per-sec", "tx-data-per-sec"] {
        if set(key) {
            note(key, "bandwidth limits are not enforced yet");
        }
    }
    if config.host_update_script.is_some() {
        note(
            "host-update-script",
            "not supported yet; the script is never run",
        );
    }
    if config.user_profile.is_some() {
        note("user-profile", "profile downloads are not supported yet");
    }
    if config.select_group_by_url {
        note(
            "select-group-by-url",
            "not supported yet; groups come from the login form",
        );
    }
    out
}

fn form_settings(config: &Config) -> FormSettings {
    let mut groups: Vec<(String, String)> = config
        .select_groups
        .iter()
        .map(|(name, label)| (name.clone(), label.clone().unwrap_or_else(|| name.clone())))
        .collect();
    if config.auto_select_group {
        for passwd in config.auth.iter().chain(config.enable_auth.iter()) {
            if let AuthMethod::Plain {
                passwd: Some(passwd),
                ..
            } = passwd
            {
                if let Ok(file) = PasswdFile::load(passwd) {
                    for group in file.all_groups() {
                        if !groups.iter().any(|(g, _)| *g == group) {
                            groups.push((group.clone(), group));
                        }
                    }
                }
            }
        }
    }
    FormSettings {
        pre_login_banner: config.pre_login_banner.clone(),
        groups,
        default_group: config.default_select_group.clone(),
    }
}

/// Why a tunnel ended, which decides what happens to the session's cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kick {
    /// The same session connected again elsewhere: just go.
    Replaced,
    /// Server shutdown: tell the client, end the session.
    Shutdown,
    /// An administrator (occtl `disconnect`, `terminate session`): tell the client, end the
    /// session and its cookie.
    Admin,
}

/// A tunnel being served.
struct LiveTunnel {
    kick: watch::Sender<Option<Kick>>,
    /// What occtl shows, once the tunnel is up (byte counts come from the meters).
    view: Option<(UserInfo, TunnelMeters)>,
}

struct State {
    sessions: SessionStore,
    pool: AddressPool,
    bans: BanList,
    /// Live tunnels by connection id.
    tunnels: HashMap<u64, LiveTunnel>,
    /// Networks with a kernel route to the tun device.
    routed: Vec<IpNet>,
    /// Connections logging in, per client address.
    prelogin_by_ip: HashMap<IpAddr, usize>,
}

pub struct Server {
    runtime: RwLock<Arc<Runtime>>,
    state: Mutex<State>,
    routes: RwLock<RouteTable<mpsc::Sender<PacketBatch>>>,
    tun: Arc<AsyncDevice>,
    pub tun_name: String,
    /// Coalescing tables for tun writes, shared by the tunnels (see [`Server::write_tun`]).
    coalescers: Mutex<Vec<Coalescer>>,
    /// The shared DTLS socket (`udp-port`), its dispatcher table and counters.
    udp: Option<Arc<BatchSocket>>,
    /// DTLS contexts, one per mode (present when the server listens on UDP).
    dtls_ctx: Option<DtlsContexts>,
    dtls_registry: Arc<Mutex<DtlsRegistry>>,
    pub udp_counters: Arc<UdpCounters>,
    next_conn: AtomicU64,
    /// Connections not yet logged in; past the limit new ones are closed at once.
    prelogin: Arc<tokio::sync::Semaphore>,
    /// Concurrent SHA-crypt checks, so a password flood cannot take every CPU.
    password_checks: Arc<tokio::sync::Semaphore>,
    /// Tunnel tasks not finished yet, disconnect scripts included (shutdown waits).
    tunnel_tasks: AtomicU64,
    shutdown: watch::Sender<bool>,
    pub metrics: Metrics,
    /// Connects and disconnects, for `occtl show events`.
    events: broadcast::Sender<Event>,
    /// occtl's `reload` and `stop now`, acted on by the main task.
    admin_requests: watch::Sender<Option<AdminRequest>>,
    started: SystemTime,
    totals: Mutex<Totals>,
}

/// What occtl asks of the process as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRequest {
    Reload,
    Stop,
}

/// One of an address's [`MAX_PRELOGIN_PER_IP`] login slots, given back when dropped.
struct PreloginSlot<'a> {
    server: &'a Server,
    ip: IpAddr,
}

impl<'a> PreloginSlot<'a> {
    fn take(server: &'a Server, ip: IpAddr) -> Option<Self> {
        let mut state = lock(&server.state);
        let count = state.prelogin_by_ip.entry(ip).or_insert(0);
        if *count >= MAX_PRELOGIN_PER_IP {
            return None;
        }
        *count += 1;
        Some(Self { server, ip })
    }
}

impl Drop for PreloginSlot<'_> {
    fn drop(&mut self) {
        let mut state = lock(&self.server.state);
        if let Some(count) = state.prelogin_by_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                state.prelogin_by_ip.remove(&self.ip);
            }
        }
    }
}

/// Counts a tunnel task from its start until its disconnect script has run.
struct TaskGuard<'a>(&'a AtomicU64);

impl<'a> TaskGuard<'a> {
    fn new(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter)
    }
}

impl Drop for TaskGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("tun", &self.tun_name)
            .finish()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read_lock<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write_lock<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn ban_policy(config: &Config) -> BanPolicy {
    BanPolicy {
        max_score: config.max_ban_score,
        reset_after: Duration::from_secs(u64::from(config.ban_reset_time)),
    }
}

/// Creates the shared tun device with the server's address in each global pool.
pub fn create_tun(config: &Config) -> Result<(AsyncDevice, String), ServerError> {
    let pattern = format!("{}%d", config.device);
    let (device, name) =
        oc_net::open_tun(Some(&pattern)).map_err(|e| ServerError::Tun(e.to_string()))?;
    let tun_err = |e: std::io::Error| ServerError::Tun(format!("{name}: {e}"));
    if let Some(net) = config.net.ipv4_network {
        device
            .set_network_address(server_address_v4(net), net.prefix_len(), None)
            .map_err(tun_err)?;
    }
    if let Some(net) = config.net.ipv6_network {
        device
            .add_address_v6(server_address_v6(net), net.prefix_len())
            .map_err(tun_err)?;
    }
    device
        .set_mtu(config.net.mtu.unwrap_or(1500).clamp(576, 65535) as u16)
        .map_err(tun_err)?;
    device.enabled(true).map_err(tun_err)?;
    Ok((device, name))
}

/// Where the destination address of an IP packet sits.
fn destination(packet: &[u8]) -> Option<IpAddr> {
    match packet.first()? >> 4 {
        4 => {
            let b: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(b)))
        }
        6 => {
            let b: [u8; 16] = packet.get(24..40)?.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

fn source(packet: &[u8]) -> Option<IpAddr> {
    match packet.first()? >> 4 {
        4 => {
            let b: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(b)))
        }
        6 => {
            let b: [u8; 16] = packet.get(8..24)?.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

impl Server {
    pub fn new(
        runtime: Runtime,
        tun: AsyncDevice,
        tun_name: String,
        udp: Option<UdpSocket>,
    ) -> Result<Arc<Self>, ServerError> {
        let config = &runtime.config;
        let dtls_ctx = match &udp {
            Some(_) => Some(DtlsContexts::new().map_err(|e| ServerError::Dtls(e.to_string()))?),
            None => None,
        };
        let udp = udp
            .map(BatchSocket::new)
            .transpose()
            .map_err(|e| ServerError::Dtls(format!("cannot set up the UDP socket: {e}")))?;
        let state = State {
            sessions: SessionStore::new(Duration::from_secs(u64::from(config.cookie_timeout))),
            pool: AddressPool::new(),
            bans: BanList::new(ban_policy(config)),
            tunnels: HashMap::new(),
            routed: config
                .net
                .ipv4_network
                .map(IpNet::V4)
                .into_iter()
                .chain(config.net.ipv6_network.map(IpNet::V6))
                .collect(),
            prelogin_by_ip: HashMap::new(),
        };
        let (shutdown, _) = watch::channel(false);
        let udp_counters = Arc::new(UdpCounters::default());
        let mut metrics = Metrics::new();
        metrics.watch_udp(udp_counters.clone());
        Ok(Arc::new(Self {
            runtime: RwLock::new(Arc::new(runtime)),
            state: Mutex::new(state),
            routes: RwLock::new(RouteTable::default()),
            tun: Arc::new(tun),
            tun_name,
            coalescers: Mutex::new(Vec::new()),
            udp: udp.map(Arc::new),
            dtls_ctx,
            dtls_registry: Arc::new(Mutex::new(DtlsRegistry::default())),
            udp_counters,
            next_conn: AtomicU64::new(1),
            prelogin: Arc::new(tokio::sync::Semaphore::new(MAX_PRELOGIN)),
            password_checks: Arc::new(tokio::sync::Semaphore::new(MAX_PASSWORD_CHECKS)),
            tunnel_tasks: AtomicU64::new(0),
            shutdown,
            metrics,
            events: broadcast::channel(EVENT_BACKLOG).0,
            admin_requests: watch::channel(None).0,
            started: SystemTime::now(),
            totals: Mutex::new(Totals::default()),
        }))
    }

    pub fn runtime(&self) -> Arc<Runtime> {
        read_lock(&self.runtime).clone()
    }

    /// SIGHUP: swaps in a new configuration and TLS context. Connected users keep running.
    pub fn reload(&self, runtime: Runtime) {
        let config = &runtime.config;
        let old = self.runtime();
        let restart_only = [
            ("tcp-port", old.config.tcp_port != config.tcp_port),
            ("listen-host", old.config.listen_host != config.listen_host),
            ("device", old.config.device != config.device),
            ("run-as-user", old.config.run_as_user != config.run_as_user),
        ];
        for (key, changed) in restart_only {
            if changed {
                warn!(
                    "{}",
                    config.problem_at(
                        key,
                        format!("{key} changed: takes effect only after a restart")
                    )
                );
            }
        }
        {
            let mut state = lock(&self.state);
            state
                .sessions
                .set_cookie_timeout(Duration::from_secs(u64::from(config.cookie_timeout)));
            state.bans.set_policy(ban_policy(config));
        }
        *write_lock(&self.runtime) = Arc::new(runtime);
    }

    /// Starts server shutdown: every tunnel says goodbye to its client.
    pub fn shut_down(&self) {
        self.shutdown.send_replace(true);
        for tunnel in lock(&self.state).tunnels.values() {
            tunnel.kick.send_replace(Some(Kick::Shutdown));
        }
    }

    /// Waits until all tunnels are gone and their disconnect scripts have run, at most
    /// [`SHUTDOWN_GRACE`] plus one script time limit.
    pub async fn drained(&self) {
        let deadline = Instant::now() + SHUTDOWN_GRACE + script::SCRIPT_TIMEOUT;
        while Instant::now() < deadline && self.tunnel_tasks.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// occtl's `reload` and `stop now` requests.
    pub fn admin_requests(&self) -> watch::Receiver<Option<AdminRequest>> {
        self.admin_requests.subscribe()
    }

    /// Number of live tunnels.
    pub fn active(&self) -> usize {
        lock(&self.state).tunnels.len()
    }

    /// Reads packets from the tun device and hands each to the session owning its
    /// destination. Runs for the life of the server. A queued packet keeps
    /// [`CSTP_HEADER_LEN`] bytes of headroom, so the tunnel frames it in place (CSTP header,
    /// or the DTLS type byte) without copying it again.
    pub async fn run_tun_reader(self: Arc<Self>) {
        let mut reader = TunReader::new(CSTP_HEADER_LEN);
        loop {
            let count = match reader.recv(&self.tun).await {
                Ok(n) => n,
                Err(e) => {
                    warn!("reading from {}: {e}", self.tun_name);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let routes = read_lock(&self.routes);
            // A full queue means the client is slower than the traffic: drop, as a router
            // would, rather than stall every other session.
            let mut batch: Option<(&mpsc::Sender<PacketBatch>, PacketBatch)> = None;
            for i in 0..count {
                let Some(framed) = reader.framed_mut(i) else {
                    continue;
                };
                let Some(dst) = framed.get(CSTP_HEADER_LEN..).and_then(destination) else {
                    continue;
                };
                let Some(tx) = routes.lookup(dst) else {
                    continue;
                };
                match &mut batch {
                    Some((to, packets)) if to.same_channel(tx) => packets.push(framed),
                    _ => {
                        if let Some((to, packets)) = batch.take() {
                            let _ = to.try_send(packets);
                        }
                        // The rest of the read most likely goes to the same tunnel.
                        let mut packets = PacketBatch::with_capacity(count - i, framed.len());
                        packets.push(framed);
                        batch = Some((tx, packets));
                    }
                }
            }
            if let Some((to, packets)) = batch {
                let _ = to.try_send(packets);
            }
        }
    }

    /// Writes a tunnel's decoded packets to the tun device, coalesced with one of the shared
    /// tables (as many exist as tunnels write at the same moment, i.e. about one per worker
    /// thread, instead of one per tunnel). A refused write loses the packets, as on any link.
    fn write_tun(&self, out: &mut TunWriter) {
        if out.is_empty() {
            return;
        }
        let mut coalescer = lock(&self.coalescers).pop().unwrap_or_default();
        if let Err(e) = out.flush(&self.tun, &mut coalescer) {
            debug!("writing to {}: {e}", self.tun_name);
        }
        lock(&self.coalescers).push(coalescer);
    }

    /// Dispatches datagrams of the shared UDP port to their tunnels (when `udp-port` is set).
    pub async fn run_udp_dispatcher(self: Arc<Self>) {
        if let Some(socket) = self.udp.clone() {
            udp::run_dispatcher(
                socket,
                self.dtls_registry.clone(),
                self.udp_counters.clone(),
            )
            .await;
        }
    }

    /// Accepts connections on one listener until shutdown.
    pub async fn run_listener(self: Arc<Self>, listener: TcpListener) {
        let mut shutdown = self.shutdown.subscribe();
        let mut last_accept: Option<Instant> = None;
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.changed() => return,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let rate = Duration::from_millis(self.runtime().config.rate_limit_ms);
            if let Some(since) = last_accept.map(|t| t.elapsed()) {
                if since < rate {
                    tokio::time::sleep(rate - since).await;
                }
            }
            last_accept = Some(Instant::now());
            let server = self.clone();
            // In JSON logs every line of this connection carries the peer, and once logged
            // in the user and session id.
            let span = tracing::info_span!(
                "connection",
                %peer,
                user = tracing::field::Empty,
                session = tracing::field::Empty
            );
            tokio::spawn(server.handle_connection(tcp, peer).instrument(span));
        }
    }

    async fn handle_connection(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr) {
        let rt = self.runtime();
        let config = &rt.config;
        let now = Instant::now();
        if lock(&self.state).bans.is_banned(peer.ip(), now) {
            info!("{peer}: connection refused, address is banned");
            return;
        }
        self.add_ban_points(peer, config.ban_points_connection, "connections");
        let Ok(prelogin) = self.prelogin.clone().try_acquire_owned() else {
            warn!("{peer}: closed, {MAX_PRELOGIN} connections are already logging in");
            return;
        };
        let Some(per_ip) = PreloginSlot::take(&self, peer.ip()) else {
            info!(
                "{peer}: closed, {MAX_PRELOGIN_PER_IP} connections from this address are \
                 already logging in"
            );
            return;
        };
        let local = tcp.local_addr().map(|a| a.ip()).ok();
        let _ = tcp.set_nodelay(true);
        let auth_deadline = tokio::time::Instant::now()
            + Duration::from_secs(u64::from(config.auth_timeout.max(1)));
        let handshake_started = Instant::now();
        let handshake_deadline = auth_deadline.min(tokio::time::Instant::now() + HANDSHAKE_LIMIT);
        let stream = match tokio::time::timeout_at(
            handshake_deadline,
            rt.tls.accept(tcp, &peer.to_string()),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                debug!("{e}");
                return;
            }
            Err(_) => {
                let limit = if handshake_deadline < auth_deadline {
                    format!("{} s", HANDSHAKE_LIMIT.as_secs())
                } else {
                    "auth-timeout".into()
                };
                info!("{peer}: no TLS handshake within {limit}; closed");
                self.metrics.auth_failed(AuthFailure::Timeout);
                return;
            }
        };
        self.metrics.handshake_took(handshake_started.elapsed());
        let cert = cert_status(&stream, config);
        let login = tokio::time::timeout_at(
            auth_deadline,
            self.clone().http_phase(stream, peer, rt.clone(), cert, now),
        )
        .await;
        match login {
            Ok(Some((stream, request))) => {
                drop(prelogin);
                drop(per_ip);
                let local = local.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                self.tunnel(stream, peer, local, rt, request).await;
            }
            Ok(None) => {}
            Err(_) => {
                info!("{peer}: authentication not completed within auth-timeout; closed");
                self.metrics.auth_failed(AuthFailure::Timeout);
            }
        }
    }

    /// Serves HTTP requests until a CONNECT (returned) or the connection ends.
    async fn http_phase(
        self: Arc<Self>,
        mut stream: TlsStream,
        peer: SocketAddr,
        rt: Arc<Runtime>,
        cert: CertStatus,
        accepted: Instant,
    ) -> Option<(TlsStream, ServerRequest)> {
        let config = &rt.config;
        let mut conversation = Conversation::new(&config.auth, &config.enable_auth, cert);
        let mut reader = RequestReader::new(RequestLimits::default());
        let mut buf = vec![0u8; 16 * 1024];
        let context_cookie = random_cookie_text();
        for _ in 0..MAX_REQUESTS {
            // When the current request's first byte arrived.
            let mut started: Option<tokio::time::Instant> = None;
            let request = loop {
                match reader.poll() {
                    Ok(Some(r)) => break r,
                    Ok(None) => {}
                    Err(e) => {
                        refuse(&mut stream, peer, &e.to_string(), e.status()).await;
                        return None;
                    }
                }
                if !reader.is_idle() {
                    started.get_or_insert_with(tokio::time::Instant::now);
                }
                let read = match started {
                    Some(t) => {
                        match tokio::time::timeout_at(t + REQUEST_LIMIT, stream.read(&mut buf))
                            .await
                        {
                            Ok(read) => read,
                            Err(_) => {
                                let why = format!(
                                    "request not complete within {} s of its first byte",
                                    REQUEST_LIMIT.as_secs()
                                );
                                refuse(&mut stream, peer, &why, (408, "Request Timeout")).await;
                                return None;
                            }
                        }
                    }
                    None => stream.read(&mut buf).await,
                };
                let n = match read {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => n,
                };
                if let Err(e) = reader.feed(buf.get(..n).unwrap_or_default()) {
                    refuse(&mut stream, peer, &e.to_string(), e.status()).await;
                    return None;
                }
            };
            let path = request.path().to_string();
            debug!("{peer}: {:?} {path}", request.method);
            match request.method {
                Method::Connect if is_tunnel_target(&path) => {
                    return Some((stream, request));
                }
                Method::Get if path == "/logout" => {
                    let resp = ServerResponse::new(200, "OK")
                        .header("Content-Type", "text/html; charset=utf-8")
                        .body("<html></html>");
                    if send(&mut stream, &resp).await.is_err() {
                        return None;
                    }
                }
                Method::Get | Method::Post
                    if is_auth_path(&path) || request.method == Method::Post =>
                {
                    let msg = if request.method == Method::Post {
                        parse_client_auth(&request.body)
                    } else {
                        ClientAuth::default()
                    };
                    let mut step = conversation.on_post(&msg, &rt.forms);
                    if let AuthStep::CheckPassword {
                        passwd,
                        user,
                        password,
                    } = step
                    {
                        let result = {
                            let _slot = self.password_checks.acquire().await;
                            check_password(passwd, user.clone(), password).await
                        };
                        if result == PlainAuth::Rejected {
                            self.metrics.auth_failed(AuthFailure::Password);
                            self.add_ban_points(
                                peer,
                                config.ban_points_wrong_password,
                                "failed logins",
                            );
                            info!("{peer}: wrong password for user '{user}'");
                        }
                        step = conversation.password_checked(result, &rt.forms);
                    }
                    if let AuthStep::CheckOtp { otp, user, code } = step {
                        let outcome = {
                            let _slot = self.password_checks.acquire().await;
                            check_otp(otp, user.clone(), code).await
                        };
                        if let OtpOutcome::Refused(why) = &outcome {
                            self.metrics.auth_failed(AuthFailure::Otp);
                            self.add_ban_points(
                                peer,
                                config.ban_points_wrong_password,
                                "failed logins",
                            );
                            info!("{peer}: OTP auth failed for '{user}': {why}");
                        }
                        step = conversation.otp_checked(outcome == OtpOutcome::Accepted);
                    }
                    match step {
                        AuthStep::Form(form) => {
                            let resp = xml_response(form.to_xml()).header(
                                "Set-Cookie",
                                format!("webvpncontext={context_cookie}; Secure; HttpOnly"),
                            );
                            if send(&mut stream, &resp).await.is_err() {
                                return None;
                            }
                        }
                        AuthStep::Success { user, group } => {
                            lock(&self.totals).logged_in(accepted.elapsed());
                            let cookie = match self.create_session(&user, group.as_deref(), config)
                            {
                                Ok(cookie) => cookie,
                                Err(e) => {
                                    warn!("{peer}: user '{user}' refused: {e}");
                                    let resp = ServerResponse::new(401, "Internal error");
                                    answer_and_close(&mut stream, &resp).await;
                                    return None;
                                }
                            };
                            info!(
                                "{peer}: user '{user}' authenticated{}",
                                group
                                    .as_deref()
                                    .map(|g| format!(" (group {g})"))
                                    .unwrap_or_default()
                            );
                            let resp = xml_response(complete_xml(config.banner.as_deref()))
                                .header("Set-Cookie", format!("webvpncontext={context_cookie}; Secure; HttpOnly"))
                                .header("Set-Cookie", format!("webvpn={cookie}; Secure; HttpOnly"))
                                .header(
                                    "Set-Cookie",
                                    "webvpnc=; expires=Thu, 01 Jan 1970 22:00:00 GMT; path=/; Secure; HttpOnly",
                                );
                            if send(&mut stream, &resp).await.is_err() {
                                return None;
                            }
                        }
                        AuthStep::Failed { reason } => {
                            info!("{peer}: authentication failed: {reason}");
                            self.metrics.auth_failed(AuthFailure::Other);
                            answer_and_close(&mut stream, &ServerResponse::new(401, reason)).await;
                            return None;
                        }
                        AuthStep::CheckPassword { .. } | AuthStep::CheckOtp { .. } => return None,
                    }
                }
                _ => {
                    let resp = ServerResponse::new(404, "Not Found").header("Connection", "close");
                    let _ = send(&mut stream, &resp).await;
                    return None;
                }
            }
        }
        debug!("{peer}: too many requests on one connection");
        None
    }

    /// Ban points for a connection or a refused password or one-time password; `for_what`
    /// names what earned them, for the log.
    fn add_ban_points(&self, peer: SocketAddr, points: u32, for_what: &str) {
        let now = Instant::now();
        let newly_banned = {
            let mut state = lock(&self.state);
            let before = state.bans.is_banned(peer.ip(), now);
            state.bans.add(peer.ip(), points, now) && !before
        };
        if newly_banned {
            self.metrics.bans.inc();
            info!("{peer}: banned after repeated {for_what}");
        }
    }

    fn create_session(
        &self,
        user: &str,
        group: Option<&str>,
        config: &Config,
    ) -> Result<String, config::ConfigError> {
        let mut raw = [0u8; COOKIE_BYTES];
        random_fill(&mut raw);
        let settings = effective_settings(config, user, group)?;
        let timeout = settings
            .session_timeout
            .filter(|t| *t > 0)
            .map(|t| Duration::from_secs(u64::from(t)));
        let mut state = lock(&self.state);
        let now = Instant::now();
        for ended in state.sessions.expire(now) {
            if let Some(lease) = ended.lease {
                state.pool.release(&lease);
            }
        }
        Ok(state
            .sessions
            .create(raw, user, group, timeout, now, SystemTime::now()))
    }

    async fn tunnel(
        self: Arc<Self>,
        mut stream: TlsStream,
        peer: SocketAddr,
        local: IpAddr,
        rt: Arc<Runtime>,
        request: ServerRequest,
    ) {
        let config = &rt.config;
        let client = ClientConnect::from_request(&request);
        let Some(cookie) = client.cookie.clone() else {
            refuse(
                &mut stream,
                peer,
                "CONNECT without a cookie",
                (503, "Service Unavailable"),
            )
            .await;
            return;
        };
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let _task = TaskGuard::new(&self.tunnel_tasks);
        let opened = match self.open_tunnel(&cookie, conn, &client, config) {
            Ok(o) => o,
            Err(refusal) => {
                info!("{peer}: tunnel refused: {}", refusal.detail);
                if refusal.status == 401 {
                    self.metrics.auth_failed(AuthFailure::Cookie);
                }
                let mut resp = ServerResponse::new(refusal.status, refusal.reason);
                if let Some(why) = refusal.x_reason {
                    resp.push_header("X-Reason", why);
                }
                answer_and_close(&mut stream, &resp).await;
                return;
            }
        };
        let Opened {
            new_routes,
            raw,
            session_id,
            user,
            group,
            mut lease,
            settings,
            deadline,
            reused,
            kick_rx,
        } = opened;
        let span = tracing::Span::current();
        span.record("user", user.as_str());
        span.record("session", session_id);
        for net in new_routes {
            add_kernel_route(&self.tun_name, net).await;
        }
        if config.ping_leases && !reused {
            lease = self
                .vet_lease(&raw, lease, &user, &settings, &client, config)
                .await;
        }
        let server_v4 = settings
            .ipv4_network
            .map(|n| IpAddr::V4(server_address_v4(n)));
        let server_v6 = settings
            .ipv6_network
            .map(|n| IpAddr::V6(server_address_v6(n)));
        let info = |stats| ScriptInfo {
            id: session_id,
            user: &user,
            group: group.as_deref(),
            hostname: client.hostname.as_deref(),
            device: &self.tun_name,
            user_agent: &client.user_agent,
            device_type: client.device_type.as_deref(),
            platform: client.platform.as_deref(),
            remote: peer.ip(),
            local,
            server_v4,
            server_v6,
            lease,
            settings: &settings,
            stats,
        };
        if let Some(path) = &config.connect_script {
            let env = script::script_env(ScriptReason::Connect, &info(None));
            if let Err(e) = script::run(path, &env).await {
                warn!("{peer}: user '{user}': connect-script refused the session: {e}");
                self.close_tunnel(&raw, conn, false, (0, 0));
                let resp = ServerResponse::new(503, "Service Unavailable")
                    .header("X-Reason", "Server configuration error");
                answer_and_close(&mut stream, &resp).await;
                return;
            }
        }

        let ipv6_peer = peer.is_ipv6();
        let base_mtu = link_mtu(settings.mtu, &client, ipv6_peer);
        let mut dtls = self.offer_dtls(&stream, &client, &settings, config, base_mtu, ipv6_peer);
        // ocserv's data MTU: the DTLS record overhead when DTLS is granted, else none.
        let plan = match dtls.as_ref().map(|(_, mode, _)| mode) {
            None => DtlsPlan::Off,
            Some(DtlsMode::Legacy { .. }) => DtlsPlan::Legacy,
            Some(DtlsMode::Psk) => {
                let tls_cipher = stream
                    .ssl()
                    .current_cipher()
                    .map(|c| c.name())
                    .unwrap_or_default();
                DtlsPlan::Psk {
                    tls_cipher,
                    pinned: config.match_tls_dtls_ciphers
                        && psk_cipher_matching(Bulk::from_openssl_name(tls_cipher)).is_some(),
                }
            }
        };
        let mut mtu = data_mtu(base_mtu, ipv6_peer, plan);
        // What the client actually gets: the families it asked for, and no IPv6 on a
        // tunnel too small to carry it. Routes and the packet filter follow this.
        let granted = Lease {
            v4: lease.v4.filter(|_| client.wants_ipv4),
            v6: lease
                .v6
                .filter(|_| client.wants_ipv6 && mtu_allows_ipv6(mtu)),
        };
        mtu = mtu.max(576);
        let mobile = client.is_mobile();
        let dpd = if mobile {
            settings.mobile_dpd
        } else {
            settings.dpd
        }
        .filter(|d| *d > 0);
        let idle = if mobile {
            settings.mobile_idle_timeout
        } else {
            settings.idle_timeout
        }
        .filter(|t| *t > 0);
        let now = Instant::now();
        // No split routes means everything goes through the tunnel.
        let default_route = settings.default_route.unwrap_or(false)
            || settings.routes.as_ref().is_none_or(|r| r.is_empty());
        let routes = if default_route {
            Vec::new()
        } else {
            settings.routes.clone().unwrap_or_default()
        };
        let keepalive = settings.keepalive.unwrap_or(config::defaults::KEEPALIVE);
        // Off unless `compression = true`: compressing before encrypting leaks plaintext.
        let choose = |offer: &Option<String>, channel: Channel| {
            offer
                .as_deref()
                .filter(|_| config.compression)
                .and_then(|o| config.compression_priorities.select(o, channel))
        };
        let cstp_compression = choose(&client.cstp_accept_encoding, Channel::Cstp);
        let dtls_compression = dtls
            .as_ref()
            .and_then(|_| choose(&client.dtls_accept_encoding, Channel::Dtls));
        let grant = TunnelGrant {
            hostname: settings.hostname.clone().or(client.hostname.clone()),
            dpd,
            default_domain: settings.default_domain.clone(),
            ipv4: granted.v4.zip(settings.ipv4_network.map(|n| n.netmask())),
            ipv6: granted.v6,
            ipv6_network: settings.ipv6_network,
            full_ipv6: client.full_ipv6,
            cisco_agent: AgentKind::from_user_agent(&client.user_agent) == AgentKind::Cisco,
            dns: settings.dns.clone().unwrap_or_default(),
            nbns: settings.nbns.clone().unwrap_or_default(),
            split_dns: settings.split_dns.clone().unwrap_or_default(),
            routes: routes.clone(),
            no_routes: settings.no_routes.clone().unwrap_or_default(),
            default_route,
            tunnel_all_dns: settings.tunnel_all_dns.unwrap_or(false),
            keepalive,
            idle_timeout: idle,
            rekey_time: Some(config.rekey_time).filter(|t| *t > 0),
            // `rekey-method = ssl` needs an in-place rekey: a TLS 1.3 KeyUpdate, which
            // OpenSSL answers by itself. We do not renegotiate TLS 1.2, so there the client
            // is told to open a new tunnel (as ocserv does for peers without safe
            // renegotiation).
            rekey_method: if config.rekey_method == RekeyMethod::Ssl
                && stream.ssl().version2() == Some(openssl::ssl::SslVersion::TLS1_3)
            {
                "ssl"
            } else {
                "new-tunnel"
            },
            session_timeout: settings.session_timeout.filter(|t| *t > 0),
            session_remaining: deadline.map(|d| {
                d.saturating_duration_since(now)
                    .as_secs()
                    .min(u64::from(u32::MAX)) as u32
            }),
            base_mtu,
            mtu,
            banner: config.banner.clone(),
            custom_headers: custom_headers(&config.custom_headers, &user, group.as_deref()),
            dtls: dtls.as_ref().map(|(id, mode, _)| DtlsGrant {
                port: config.udp_port.unwrap_or_default(),
                id: *id,
                dpd,
                keepalive,
                rekey_time: Some(config.rekey_time).filter(|t| *t > 0),
                rekey_ssl: config.rekey_method == RekeyMethod::Ssl,
                mode: mode.clone(),
                compression: dtls_compression,
            }),
            cstp_compression,
        };
        for (channel, algorithm) in [("DTLS", dtls_compression), ("CSTP", cstp_compression)] {
            if let Some(a) = algorithm {
                info!("{peer}: selected {channel} compression method {a}");
            }
        }
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        self.add_routes(conn, &granted, &settings, tx);
        let mut out = Vec::new();
        grant.to_response().emit(&mut out);
        info!(
            "{peer}: user '{user}' tunnel up{}: {}{}",
            if reused { " (session reused)" } else { "" },
            granted.v4.map(|a| a.to_string()).unwrap_or_default(),
            granted.v6.map(|a| format!(" {a}")).unwrap_or_default(),
        );
        let meters = self.metrics.tunnel_meters(&user);
        let view = {
            let texts = |list: &Option<Vec<IpAddr>>| {
                list.iter().flatten().map(ToString::to_string).collect()
            };
            let nets = |list: &[IpNet]| list.iter().map(ToString::to_string).collect();
            let (sid, session_started_at) = lock(&self.state)
                .sessions
                .get(&raw)
                .map(|r| (r.sid.clone(), unix_seconds(r.created_wall)))
                .unwrap_or_default();
            UserInfo {
                id: conn,
                username: user.clone(),
                groupname: group.clone().unwrap_or_default(),
                state: oc_ctl::model::state::CONNECTED.into(),
                vhost: "default".into(),
                device: self.tun_name.clone(),
                mtu: Some(mtu),
                remote_ip: peer.ip().to_string(),
                local_device_ip: local.to_string(),
                ipv4: granted.v4.map(|a| a.to_string()),
                ptp_ipv4: server_v4
                    .filter(|_| granted.v4.is_some())
                    .map(|a| a.to_string()),
                ipv6: granted.v6.map(|a| a.addr().to_string()),
                ptp_ipv6: server_v6
                    .filter(|_| granted.v6.is_some())
                    .map(|a| a.to_string()),
                user_agent: client.user_agent.clone(),
                dpd: dpd.unwrap_or_default(),
                keepalive,
                hostname: client.hostname.clone().unwrap_or_default(),
                connected_at: unix_seconds(SystemTime::now()),
                session_started_at,
                session: sid.chars().take(6).collect(),
                full_session: sid,
                tls_ciphersuite: stream
                    .ssl()
                    .current_cipher()
                    .map(|c| c.name().to_string())
                    .unwrap_or_default(),
                dtls_cipher: match dtls.as_ref().map(|(_, mode, _)| mode) {
                    Some(DtlsMode::Legacy { suite, .. }) => suite.name.into(),
                    Some(DtlsMode::Psk) => "PSK-NEGOTIATE".into(),
                    None => "(no-dtls)".into(),
                },
                cstp_compression: cstp_compression.map(|a| a.token().to_string()),
                dtls_compression: dtls_compression.map(|a| a.token().to_string()),
                dns: texts(&settings.dns),
                nbns: texts(&settings.nbns),
                split_dns: settings.split_dns.clone().unwrap_or_default(),
                routes: nets(&routes),
                default_route,
                no_routes: nets(settings.no_routes.as_deref().unwrap_or_default()),
                iroutes: nets(settings.iroutes.as_deref().unwrap_or_default()),
                restricted_to_routes: settings.restrict_user_to_routes.unwrap_or(false),
                ..UserInfo::default()
            }
        };
        if let Some(live) = lock(&self.state).tunnels.get_mut(&conn) {
            live.view = Some((view.clone(), meters.clone()));
        }
        let _ = self.events.send(Event::Connect { user: view.clone() });
        let timers = ServerTimers {
            dpd: dpd.map(|d| Duration::from_secs(u64::from(d))),
            idle_timeout: idle.map(|t| Duration::from_secs(u64::from(t))),
            session_deadline: deadline,
        };
        let filter = PacketFilter {
            v4: granted.v4,
            v6: granted.v6,
            restrict: settings
                .restrict_user_to_routes
                .unwrap_or(false)
                .then(|| (routes, settings.no_routes.clone().unwrap_or_default())),
            iroutes: settings.iroutes.clone().unwrap_or_default(),
        };
        let started = Instant::now();
        self.metrics.sessions_opened.inc();
        let outcome = if stream.write_all(&out).await.is_ok() {
            let compression = TunnelCompression::new(
                cstp_compression,
                dtls_compression,
                // ocserv compresses packets longer than the limit.
                config.no_compress_limit as usize + 1,
                mtu as usize,
            );
            self.packet_loop(
                &mut stream,
                ServerSession::new(timers, now).with_compression(compression),
                rx,
                kick_rx,
                dtls.as_mut().map(|(_, _, d)| d),
                Traffic {
                    filter: &filter,
                    meters: &meters,
                    report: settings
                        .stats_report_time
                        .filter(|t| *t > 0)
                        .map(|t| Report {
                            every: Duration::from_secs(u64::from(t)),
                            cookie: raw,
                        }),
                },
            )
            .await
        } else {
            Outcome::default()
        };
        let keep = match outcome.end {
            End::UserLogout => config.persistent_cookies,
            End::Kicked(Kick::Shutdown | Kick::Admin) | End::SessionOver => false,
            End::Kicked(Kick::Replaced) | End::Lost => true,
        };
        self.remove_routes(conn, &granted, &settings);
        if let Some((id, _, _)) = &dtls {
            lock(&self.dtls_registry).unregister(id);
        }
        let (ended, session_bytes) =
            self.close_tunnel(&raw, conn, keep, (meters.rx(), meters.tx()));
        lock(&self.totals).tunnel_ended(outcome.closed, started.elapsed(), mtu);
        let _ = self.events.send(Event::Disconnect {
            user: UserInfo {
                rx_bytes: meters.rx(),
                tx_bytes: meters.tx(),
                ..view
            },
            reason: outcome.why.clone(),
        });
        info!(
            rx_bytes = meters.rx(),
            tx_bytes = meters.tx(),
            session_rx_bytes = session_bytes.0,
            session_tx_bytes = session_bytes.1,
            "{peer}: user '{user}' tunnel closed ({}); session {}",
            outcome.why,
            if ended { "ended" } else { "kept for reconnect" },
        );
        if let Some(path) = &config.disconnect_script {
            let stats = Some((meters.rx(), meters.tx(), started.elapsed().as_secs()));
            let env = script::script_env(ScriptReason::Disconnect, &info(stats));
            if let Err(e) = script::run(path, &env).await {
                warn!("user '{user}': disconnect-script: {e}");
            }
        }
    }

    /// Session lookup, limits and address lease for a CONNECT.
    fn open_tunnel(
        &self,
        cookie: &str,
        conn: u64,
        client: &ClientConnect,
        config: &Config,
    ) -> Result<Opened, Refusal> {
        if *self.shutdown.borrow() {
            return Err(Refusal::unavailable(
                "Server is shutting down",
                "shutdown".into(),
            ));
        }
        let (user, group) = {
            let mut state = lock(&self.state);
            let (_, record) = state
                .sessions
                .get_for_connect(cookie, Instant::now())
                .map_err(cookie_refusal)?;
            (record.user.clone(), record.group.clone())
        };
        // Per-user files are read without holding the lock.
        let settings = effective_settings(config, &user, group.as_deref())
            .map_err(|e| Refusal::unavailable("Server configuration error", e.to_string()))?;
        let mut state = lock(&self.state);
        // The session may have ended meanwhile (logout on another connection, expiry):
        // look again, under the lock that covers everything below.
        let now = Instant::now();
        for ended in state.sessions.expire(now) {
            if let Some(lease) = ended.lease {
                state.pool.release(&lease);
            }
        }
        let (raw, record) = state
            .sessions
            .get_for_connect(cookie, now)
            .map_err(cookie_refusal)?;
        let (existing_lease, deadline, session_id) = (record.lease, record.deadline, record.id);
        let max_same = settings.max_same_clients.unwrap_or(0);
        if max_same > 0 && state.sessions.active_for_user(&user, &raw) >= max_same as usize {
            return Err(Refusal::cookie(format!(
                "user '{user}' already has {max_same} sessions (max-same-clients)"
            )));
        }
        let already_attached = state
            .sessions
            .get(&raw)
            .is_some_and(|r| r.attached.is_some());
        if config.max_clients > 0
            && !already_attached
            && state.tunnels.len() >= config.max_clients as usize
        {
            return Err(Refusal::unavailable(
                "Server is full",
                format!("{} clients connected (max-clients)", config.max_clients),
            ));
        }
        let reused = existing_lease.is_some();
        let lease = match existing_lease {
            Some(l) => l,
            None => {
                let request = lease_request(&user, &settings, client, config);
                let lease = state
                    .pool
                    .lease(&request)
                    .map_err(|e| Refusal::unavailable("Server error", e.to_string()))?;
                if lease.v4.is_none() && lease.v6.is_none() {
                    return Err(Refusal::unavailable(
                        "Server configuration error",
                        "no address family in common with the client".into(),
                    ));
                }
                lease
            }
        };
        if let Some(record) = state.sessions.get_mut(&raw) {
            record.lease = Some(lease);
        }
        let (kick_tx, kick_rx) = watch::channel(None);
        if let Some(old) = state.sessions.attach(&raw, conn) {
            if let Some(tunnel) = state.tunnels.get(&old) {
                tunnel.kick.send_replace(Some(Kick::Replaced));
            }
        }
        state.tunnels.insert(
            conn,
            LiveTunnel {
                kick: kick_tx,
                view: None,
            },
        );
        let mut new_routes = Vec::new();
        let kernel_routed = [
            settings.ipv4_network.map(IpNet::V4),
            settings.ipv6_network.map(IpNet::V6),
        ];
        for net in kernel_routed
            .into_iter()
            .flatten()
            .chain(settings.iroutes.iter().flatten().copied())
        {
            if !state.routed.contains(&net) {
                state.routed.push(net);
                new_routes.push(net);
            }
        }
        Ok(Opened {
            new_routes,
            raw,
            session_id,
            user,
            group,
            lease,
            settings,
            deadline,
            reused,
            kick_rx,
        })
    }

    /// DTLS for this tunnel, chosen as ocserv does: PSK-NEGOTIATE when enabled (`dtls-psk`)
    /// and offered; otherwise, with `dtls-legacy`, the best legacy suite offered, resuming
    /// the client's master secret. Nothing when the server has no UDP port or the user is
    /// `no-udp`. The fresh id is registered with the dispatcher.
    fn offer_dtls(
        &self,
        stream: &TlsStream,
        client: &ClientConnect,
        settings: &NetSettings,
        config: &Config,
        link_mtu: u32,
        ipv6_peer: bool,
    ) -> Option<(DtlsId, DtlsMode, TunnelDtls)> {
        let (socket, contexts) = (self.udp.as_ref()?, self.dtls_ctx.as_ref()?);
        if settings.no_udp == Some(true) {
            return None;
        }
        let mut id = [0u8; DTLS_ID_LEN];
        random_fill(&mut id);
        let tls_cipher = stream
            .ssl()
            .current_cipher()
            .map(|c| c.name())
            .unwrap_or_default();
        let bulk = Bulk::from_openssl_name(tls_cipher);
        let (mode, keying) = if config.dtls_psk && client.dtls_psk {
            let key = match psk_from_tls(stream.ssl()) {
                Ok(k) => k,
                Err(e) => {
                    warn!("cannot derive the DTLS key: {e}");
                    return None;
                }
            };
            // match-tls-dtls-ciphers: the DTLS suite follows the TLS session's cipher.
            let ciphers = config
                .match_tls_dtls_ciphers
                .then(|| psk_cipher_matching(bulk))
                .flatten();
            (
                DtlsMode::Psk,
                Keying::Psk {
                    ctx: contexts.psk.clone(),
                    key,
                    ciphers,
                },
            )
        } else if config.dtls_legacy {
            let suite = select_legacy(
                client.dtls_ciphers.as_deref(),
                client.dtls12_ciphers.as_deref(),
                bulk,
            )?;
            let master_secret = client.master_secret?;
            let cipher = LegacyCipher::from_header_name(suite.name)?;
            (
                DtlsMode::Legacy {
                    suite,
                    data_mtu: legacy_data_mtu(link_mtu, ipv6_peer),
                },
                Keying::Legacy {
                    ctx: contexts.legacy.clone(),
                    session_id: id,
                    master_secret,
                    cipher,
                },
            )
        } else {
            return None;
        };
        match &mode {
            DtlsMode::Psk => info!("DTLS ciphersuite: PSK-NEGOTIATE"),
            DtlsMode::Legacy { suite, .. } => {
                info!("DTLS ciphersuite: {} (legacy resumption)", suite.name);
            }
        }
        let (tx, rx) = mpsc::channel(udp::TUNNEL_QUEUE);
        lock(&self.dtls_registry).register(id, tx);
        let switch = Duration::from_secs(u64::from(config.switch_to_tcp_timeout.max(1)));
        Some((
            id,
            mode,
            TunnelDtls::new(
                keying,
                socket.clone(),
                (id, rx),
                self.dtls_registry.clone(),
                link_mtu,
                switch,
            ),
        ))
    }

    /// `ping-leases`: an IPv4 address that answers a ping is in use elsewhere on the
    /// network. It stays out of the pool (until restart) and the session gets another one.
    async fn vet_lease(
        &self,
        raw: &[u8; COOKIE_BYTES],
        mut lease: Lease,
        user: &str,
        settings: &NetSettings,
        client: &ClientConnect,
        config: &Config,
    ) -> Lease {
        for _ in 0..4 {
            let Some(addr) = lease.v4 else { return lease };
            if !answers_ping(addr).await {
                return lease;
            }
            warn!("{addr} answers pings, so it is in use elsewhere (ping-leases); not leasing it");
            let mut state = lock(&self.state);
            let request = LeaseRequest {
                v6: None,
                ..lease_request(user, settings, client, config)
            };
            match state.pool.lease(&request) {
                Ok(fresh) => {
                    lease.v4 = fresh.v4;
                    if let Some(record) = state.sessions.get_mut(raw) {
                        record.lease = Some(lease);
                    }
                }
                Err(e) => {
                    warn!("{e}");
                    return lease;
                }
            }
        }
        lease
    }

    /// Detaches connection `conn`; returns true when the session ended (lease released).
    /// A connection of the session ended after moving `bytes` (in, out). Returns whether
    /// the session ended with it, and the session's byte totals so far.
    fn close_tunnel(
        &self,
        raw: &[u8; COOKIE_BYTES],
        conn: u64,
        keep: bool,
        bytes: (u64, u64),
    ) -> (bool, (u64, u64)) {
        let mut state = lock(&self.state);
        state.tunnels.remove(&conn);
        match state
            .sessions
            .detach(raw, conn, keep, Instant::now(), bytes)
        {
            Some(record) => {
                if let Some(lease) = record.lease {
                    state.pool.release(&lease);
                }
                (true, record.carried)
            }
            None => (false, state.sessions.get(raw).map_or(bytes, |r| r.carried)),
        }
    }

    /// The networks a tunnel owns: its addresses and the iroutes behind it.
    fn owned_networks(lease: &Lease, settings: &NetSettings) -> Vec<IpNet> {
        let mut nets: Vec<IpNet> = Vec::new();
        if let Some(v4) = lease.v4 {
            nets.push(IpNet::V4(Ipv4Net::from(v4)));
        }
        if let Some(v6) = lease.v6 {
            nets.push(IpNet::V6(v6));
        }
        nets.extend(settings.iroutes.iter().flatten().copied());
        nets
    }

    fn add_routes(
        &self,
        conn: u64,
        lease: &Lease,
        settings: &NetSettings,
        tx: mpsc::Sender<PacketBatch>,
    ) {
        let mut routes = write_lock(&self.routes);
        for net in Self::owned_networks(lease, settings) {
            routes.insert(net, conn, tx.clone());
        }
    }

    fn remove_routes(&self, conn: u64, lease: &Lease, settings: &NetSettings) {
        let mut routes = write_lock(&self.routes);
        for net in Self::owned_networks(lease, settings) {
            routes.remove(net, conn);
        }
    }

    async fn packet_loop(
        &self,
        stream: &mut TlsStream,
        mut session: ServerSession,
        mut rx: mpsc::Receiver<PacketBatch>,
        mut kick: watch::Receiver<Option<Kick>>,
        mut dtls: Option<&mut TunnelDtls>,
        traffic: Traffic<'_>,
    ) -> Outcome {
        let Traffic {
            filter,
            meters,
            report,
        } = traffic;
        let mut next_report = report.map(|r| Instant::now() + r.every);
        let mut buf = vec![0u8; READ_BUF];
        let mut tun_out = TunWriter::new();
        let mut outcome = Outcome::default();
        // Whether DTLS carried data when last checked, to count fallbacks to TLS.
        let mut dtls_live = false;
        let timer = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(timer);
        loop {
            while let Some((channel, control)) = session.poll_transmit() {
                if channel == Channel::Dtls {
                    if let Some(d) = dtls.as_deref_mut() {
                        if d.send_record(&control).await {
                            continue;
                        }
                    }
                    // No DTLS to answer on: a DTLS probe answer is simply lost.
                    continue;
                }
                if write_limited(stream, &control, WRITE_LIMIT).await.is_err() {
                    outcome.why = "TLS write failed or stalled".into();
                    outcome.closed = ClosedAs::Error;
                    return outcome;
                }
            }
            if let Some(event) = session.poll_event() {
                (outcome.end, outcome.why, outcome.closed) = match event {
                    ServerEvent::ClientDisconnect {
                        user_requested: true,
                        reason,
                    } => (
                        End::UserLogout,
                        format!("user disconnected: {reason}"),
                        ClosedAs::Normal,
                    ),
                    ServerEvent::ClientDisconnect { reason, .. } => (
                        End::Lost,
                        format!("client disconnected: {reason}"),
                        ClosedAs::Normal,
                    ),
                    ServerEvent::DpdTimeout => {
                        (End::Lost, "DPD timeout".into(), ClosedAs::TimedOut)
                    }
                    // As in ocserv, an idle client may come back with its cookie.
                    ServerEvent::IdleTimeout => (End::Lost, "idle timeout".into(), ClosedAs::Idle),
                    ServerEvent::SessionTimeout => (
                        End::SessionOver,
                        "session timeout".into(),
                        ClosedAs::TimedOut,
                    ),
                };
                let _ = tokio::time::timeout(GOODBYE_LIMIT, stream.shutdown()).await;
                return outcome;
            }
            let deadline = [
                session.poll_timeout(),
                dtls.as_deref().and_then(TunnelDtls::deadline),
                next_report,
            ]
            .into_iter()
            .flatten()
            .min()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            timer.as_mut().reset(deadline);
            tokio::select! {
                read = stream.read(&mut buf) => {
                    let n = match read {
                        Ok(0) => { outcome.why = "connection closed by client".into(); return outcome; }
                        Err(e) => {
                            outcome.why = format!("TLS read failed: {e}");
                            outcome.closed = ClosedAs::Error;
                            return outcome;
                        }
                        Ok(n) => n,
                    };
                    let result = session.handle_cstp(buf.get(..n).unwrap_or_default(), Instant::now(), |packet| {
                        if filter.allows(packet) {
                            meters.count(Direction::Rx, Transport::Tls, packet.len());
                            tun_out.push(packet);
                        }
                    });
                    self.write_tun(&mut tun_out);
                    if let Err(e) = result {
                        outcome.why = format!("protocol error: {e}");
                        outcome.closed = ClosedAs::Error;
                        return outcome;
                    }
                }
                received = udp::recv(dtls.as_deref_mut()) => {
                    let (Some(received), Some(d)) = (received, dtls.as_deref_mut()) else {
                        // The dispatcher dropped this tunnel: stop listening for datagrams.
                        dtls = None;
                        continue;
                    };
                    for datagram in received.each() {
                        if tun_out.is_full() {
                            self.write_tun(&mut tun_out);
                        }
                        d.on_datagram(received.peer, datagram, &mut session, |packet| {
                            if filter.allows(packet) {
                                meters.count(Direction::Rx, Transport::Dtls, packet.len());
                                tun_out.push(packet);
                            }
                        })
                        .await;
                    }
                    self.write_tun(&mut tun_out);
                }
                packet = rx.recv() => {
                    let Some(packet) = packet else {
                        // The route now feeds a newer connection of this session.
                        outcome.end = End::Kicked(Kick::Replaced);
                        outcome.why = "replaced by a newer connection of the same session".into();
                        return outcome;
                    };
                    let now = Instant::now();
                    let live = dtls.as_deref().is_some_and(|d| d.is_live(now));
                    if dtls_live && !live {
                        self.metrics.dtls_fallbacks.inc();
                    }
                    dtls_live = live;
                    let mut next = Some(packet);
                    let mut sent = 0;
                    // Drain what is already queued, one frame per TLS record: openconnect
                    // reads exactly one CSTP frame per record.
                    while let Some(mut batch) = next.take() {
                        for framed in batch.iter_mut() {
                            let len = framed.len().saturating_sub(CSTP_HEADER_LEN);
                            let mut sent_dtls = false;
                            if let Some(d) = dtls.as_deref_mut().filter(|d| d.carries(len, now)) {
                                match session.compression().encode_packet(Channel::Dtls, &mut *framed) {
                                    Ok(record) => sent_dtls = d.queue_record(record).await,
                                    Err(e) => debug!("{e}; sending over CSTP instead"),
                                }
                            }
                            if !sent_dtls {
                                let frame = match session.compression().encode_packet(Channel::Cstp, &mut *framed) {
                                    Ok(frame) => frame,
                                    Err(e) => {
                                        outcome.why = format!("protocol error: {e}");
                                        outcome.closed = ClosedAs::Error;
                                        return outcome;
                                    }
                                };
                                if write_limited(stream, frame, WRITE_LIMIT).await.is_err() {
                                    outcome.why = "TLS write failed or stalled".into();
                                    outcome.closed = ClosedAs::Error;
                                    return outcome;
                                }
                            }
                            let transport = if sent_dtls { Transport::Dtls } else { Transport::Tls };
                            meters.count(Direction::Tx, transport, len);
                            session.on_packet_sent(framed.get(CSTP_HEADER_LEN..).unwrap_or_default(), now);
                            sent += 1;
                        }
                        if sent < MAX_BATCH {
                            next = rx.try_recv().ok();
                        }
                    }
                    if let Some(d) = dtls.as_deref_mut() {
                        d.flush().await;
                    }
                }
                changed = kick.changed() => {
                    let reason = if changed.is_ok() { *kick.borrow() } else { None };
                    match reason {
                        Some(Kick::Replaced) | None => {
                            outcome.end = End::Kicked(Kick::Replaced);
                            outcome.why = "replaced by a newer connection of the same session".into();
                        }
                        Some(why @ (Kick::Shutdown | Kick::Admin)) => {
                            session.disconnect();
                            while let Some((channel, control)) = session.poll_transmit() {
                                if channel == Channel::Cstp {
                                    let _ = write_limited(stream, &control, GOODBYE_LIMIT).await;
                                }
                            }
                            let _ = tokio::time::timeout(GOODBYE_LIMIT, stream.shutdown()).await;
                            outcome.end = End::Kicked(why);
                            outcome.why = if why == Kick::Admin {
                                "disconnected by the administrator".into()
                            } else {
                                "server shutting down".into()
                            };
                        }
                    }
                    return outcome;
                }
                _ = &mut timer => {
                    let now = Instant::now();
                    if let (Some(at), Some(r)) = (next_report, report) {
                        if now >= at {
                            next_report = Some(now + r.every);
                            let carried = lock(&self.state)
                                .sessions
                                .get(&r.cookie)
                                .map_or((0, 0), |s| s.carried);
                            info!(
                                rx_bytes = meters.rx(),
                                tx_bytes = meters.tx(),
                                session_rx_bytes = carried.0 + meters.rx(),
                                session_tx_bytes = carried.1 + meters.tx(),
                                "interim accounting"
                            );
                        }
                    }
                    session.handle_timeout(now);
                    if let Some(d) = dtls.as_deref_mut() {
                        d.on_deadline().await;
                    }
                }
            }
        }
    }
}

/// A CONNECT we refuse: what the client is told (no internal detail) and what we log.
struct Refusal {
    status: u16,
    reason: &'static str,
    x_reason: Option<&'static str>,
    detail: String,
}

impl Refusal {
    /// openconnect treats 401 on CONNECT as "cookie rejected" (exit 2).
    fn cookie(detail: String) -> Self {
        Self {
            status: 401,
            reason: "Cookie is not acceptable",
            x_reason: None,
            detail,
        }
    }

    fn unavailable(x_reason: &'static str, detail: String) -> Self {
        Self {
            status: 503,
            reason: "Service Unavailable",
            x_reason: Some(x_reason),
            detail,
        }
    }
}

/// ocserv answers an undecodable cookie with 503 and an unknown or expired one with 401.
fn cookie_refusal(e: CookieError) -> Refusal {
    match e {
        CookieError::Malformed => Refusal::unavailable("Server error", e.to_string()),
        _ => Refusal::cookie(e.to_string()),
    }
}

struct Opened {
    /// Networks that need a kernel route to the tun device (first use).
    new_routes: Vec<IpNet>,
    raw: [u8; COOKIE_BYTES],
    session_id: u64,
    user: String,
    group: Option<String>,
    lease: Lease,
    settings: NetSettings,
    deadline: Option<Instant>,
    reused: bool,
    kick_rx: watch::Receiver<Option<Kick>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum End {
    UserLogout,
    /// `session-timeout`: the session and its cookie end.
    SessionOver,
    Kicked(Kick),
    /// Connection lost or broken: the client may come back with its cookie.
    #[default]
    Lost,
}

/// How a tunnel ended, for occtl's session statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum ClosedAs {
    #[default]
    Normal,
    /// DPD or session timeout.
    TimedOut,
    Idle,
    /// Protocol error or a failed read or write.
    Error,
}

#[derive(Debug, Default)]
struct Outcome {
    end: End,
    why: String,
    closed: ClosedAs,
}

/// Totals over ended tunnels and logins, for `occtl show status`.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    closed: u64,
    timed_out: u64,
    timed_out_idle: u64,
    errors: u64,
    session_secs: u64,
    max_session_secs: u64,
    logins: u64,
    auth_secs: u64,
    max_auth_secs: u64,
    min_mtu: Option<u32>,
    max_mtu: Option<u32>,
}

impl Totals {
    fn tunnel_ended(&mut self, closed: ClosedAs, lasted: Duration, mtu: u32) {
        self.closed += 1;
        match closed {
            ClosedAs::Normal => {}
            ClosedAs::TimedOut => self.timed_out += 1,
            ClosedAs::Idle => self.timed_out_idle += 1,
            ClosedAs::Error => self.errors += 1,
        }
        let secs = lasted.as_secs();
        self.session_secs = self.session_secs.saturating_add(secs);
        self.max_session_secs = self.max_session_secs.max(secs);
        self.min_mtu = Some(self.min_mtu.map_or(mtu, |m| m.min(mtu)));
        self.max_mtu = Some(self.max_mtu.map_or(mtu, |m| m.max(mtu)));
    }

    fn logged_in(&mut self, took: Duration) {
        let secs = took.as_secs();
        self.logins += 1;
        self.auth_secs = self.auth_secs.saturating_add(secs);
        self.max_auth_secs = self.max_auth_secs.max(secs);
    }

    fn avg_session_secs(&self) -> u64 {
        self.session_secs.checked_div(self.closed).unwrap_or(0)
    }

    fn avg_auth_secs(&self) -> u64 {
        self.auth_secs.checked_div(self.logins).unwrap_or(0)
    }
}

/// What a tunnel's packets pass through: the filter on the way in, the meters both ways,
/// and the interim accounting report (`stats-report-time`).
struct Traffic<'a> {
    filter: &'a PacketFilter,
    meters: &'a TunnelMeters,
    report: Option<Report>,
}

/// Every `every`, the tunnel logs its byte counts and its session's (those of its ended
/// connections, kept with the session `cookie`, plus this one's), so accounting survives
/// reconnects.
#[derive(Debug, Clone, Copy)]
struct Report {
    every: Duration,
    cookie: [u8; COOKIE_BYTES],
}

/// What a client may send into the network: only from its own addresses (or networks
/// behind it), and with `restrict-user-to-routes` only to its routes.
struct PacketFilter {
    v4: Option<Ipv4Addr>,
    v6: Option<Ipv6Net>,
    /// `restrict-user-to-routes`: the routes (empty = default route) and the no-routes.
    restrict: Option<(Vec<IpNet>, Vec<IpNet>)>,
    iroutes: Vec<IpNet>,
}

impl PacketFilter {
    fn allows(&self, packet: &[u8]) -> bool {
        let Some(src) = source(packet) else {
            return false;
        };
        let own = match src {
            IpAddr::V4(a) => self.v4 == Some(a),
            IpAddr::V6(a) => self.v6.is_some_and(|n| n.contains(&a)),
        } || self.iroutes.iter().any(|n| n.contains(&src));
        if !own {
            return false;
        }
        match (&self.restrict, destination(packet)) {
            (None, _) => true,
            (Some((routes, no_routes)), Some(dst)) => {
                (routes.is_empty() || routes.iter().any(|r| r.contains(&dst)))
                    && !no_routes.iter().any(|r| r.contains(&dst))
            }
            (Some(_), None) => false,
        }
    }
}

fn is_auth_path(path: &str) -> bool {
    ["/", "/auth", "/VPN"].contains(&path)
}

fn xml_response(body: String) -> ServerResponse {
    ServerResponse::new(200, "OK")
        .header("Content-Type", "text/xml; charset=utf-8")
        .header("X-Transcend-Version", "1")
        .body(body)
}

async fn write_limited(
    stream: &mut TlsStream,
    bytes: &[u8],
    limit: Duration,
) -> std::io::Result<()> {
    match tokio::time::timeout(limit, stream.write_all(bytes)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

async fn send(stream: &mut TlsStream, resp: &ServerResponse) -> std::io::Result<()> {
    let mut out = Vec::new();
    resp.emit(&mut out);
    stream.write_all(&out).await
}

async fn refuse(stream: &mut TlsStream, peer: SocketAddr, why: &str, status: (u16, &str)) {
    info!("{peer}: request refused: {why}");
    let resp = ServerResponse::new(status.0, status.1).header("Connection", "close");
    answer_and_close(stream, &resp).await;
}

/// Sends a final answer and closes the TLS connection, without waiting on a stalled peer.
async fn answer_and_close(stream: &mut TlsStream, resp: &ServerResponse) {
    let mut out = Vec::new();
    resp.emit(&mut out);
    let _ = write_limited(stream, &out, GOODBYE_LIMIT).await;
    let _ = tokio::time::timeout(GOODBYE_LIMIT, stream.shutdown()).await;
}

fn random_fill(buf: &mut [u8]) {
    if openssl::rand::rand_bytes(buf).is_err() {
        // OpenSSL's CSPRNG failing is not recoverable in a security product.
        std::process::abort();
    }
}

fn random_cookie_text() -> String {
    let mut raw = [0u8; COOKIE_BYTES];
    random_fill(&mut raw);
    crate::sessions::encode_cookie(&raw)
}

/// Seconds since the epoch (0 for times before it).
fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

async fn check_otp(otp: std::path::PathBuf, user: String, code: String) -> OtpOutcome {
    tokio::task::spawn_blocking(move || {
        otp::check_and_record(&otp, &user, &code, unix_seconds(SystemTime::now()))
    })
    .await
    .unwrap_or_else(|e| OtpOutcome::Refused(format!("OTP check failed: {e}")))
}

async fn check_password(passwd: std::path::PathBuf, user: String, password: String) -> PlainAuth {
    // SHA-crypt costs milliseconds of CPU: keep it off the packet path.
    tokio::task::spawn_blocking(move || match PasswdFile::load(&passwd) {
        Ok(file) => check_plain(&file, &user, &password),
        Err(e) => {
            warn!("{e}");
            PlainAuth::Rejected
        }
    })
    .await
    .unwrap_or(PlainAuth::Rejected)
}

fn cert_status(stream: &TlsStream, config: &Config) -> CertStatus {
    match verified_client_cert(stream) {
        Ok(None) => CertStatus::None,
        Err(why) => {
            debug!("client certificate rejected: {why}");
            CertStatus::Invalid(why)
        }
        Ok(Some(cert)) => {
            let field = |oid: &Option<CertOid>| -> Vec<String> {
                match oid {
                    Some(CertOid::Oid(o)) => cert_field(&cert, o),
                    Some(CertOid::SanRfc822Name) => cert_field(&cert, "SAN(rfc822name)"),
                    None => Vec::new(),
                }
            };
            // Certificate fields reach logs and scripts: same rules as typed names.
            CertStatus::Valid(CertIdentity {
                user: field(&config.cert_user_oid)
                    .into_iter()
                    .next()
                    .filter(|u| valid_name(u)),
                groups: field(&config.cert_group_oid)
                    .into_iter()
                    .filter(|g| valid_name(g))
                    .collect(),
            })
        }
    }
}

/// Global settings overlaid with the group's then the user's file (ocserv's precedence),
/// or the default files when a user or group has none.
/// Global settings overlaid with the group's then the user's file (ocserv's precedence),
/// or the default files when a user or group has none. A broken file refuses the login:
/// falling back to the global settings would hand out what the file meant to restrict.
pub fn effective_settings(
    config: &Config,
    user: &str,
    group: Option<&str>,
) -> Result<NetSettings, config::ConfigError> {
    let mut settings = config.net.clone();
    let layers = [
        (
            &config.config_per_group,
            group,
            &config.default_group_config,
        ),
        (
            &config.config_per_user,
            Some(user),
            &config.default_user_config,
        ),
    ];
    for (dir, name, default) in layers {
        let found = match (dir, name) {
            (Some(dir), Some(name)) => config::load_override(dir, name)?,
            _ => None,
        };
        let found = match (found, default) {
            (Some(found), _) => Some(found),
            (None, Some(path)) if dir.is_some() => Some(config::load_override_file(path)?),
            _ => None,
        };
        if let Some((over, problems)) = found {
            for p in problems {
                warn!("{p}");
            }
            settings = settings.overlay(&over);
        }
    }
    Ok(settings)
}

fn lease_request<'a>(
    user: &'a str,
    settings: &NetSettings,
    client: &ClientConnect,
    config: &Config,
) -> LeaseRequest<'a> {
    let mut seed = [0u8; 8];
    random_fill(&mut seed);
    LeaseRequest {
        user,
        v4: settings
            .ipv4_network
            .filter(|_| client.wants_ipv4 || !client.wants_ipv6),
        v6: settings
            .ipv6_network
            .filter(|_| client.wants_ipv6)
            .map(|n| (n, settings.ipv6_subnet_prefix.unwrap_or(128))),
        predictable: config.predictable_ips,
        seed: u64::from_le_bytes(seed),
        explicit_v4: settings.explicit_ipv4,
        explicit_v6: settings.explicit_ipv6,
    }
}

async fn answers_ping(addr: Ipv4Addr) -> bool {
    tokio::process::Command::new("ping")
        .args(["-c", "1", "-W", "1", "-q", &addr.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// `custom-header` lines as `(name, value)`, with `%{U}` and `%{G}` substituted.
fn custom_headers(lines: &[String], user: &str, group: Option<&str>) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|line| {
            let line = line
                .replace("%{U}", user)
                .replace("%{G}", group.unwrap_or_default());
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_string(), value.trim().to_string()))
        })
        .collect()
}

async fn add_kernel_route(device: &str, net: IpNet) {
    let family = if matches!(net, IpNet::V4(_)) {
        "-4"
    } else {
        "-6"
    };
    let status = tokio::process::Command::new("ip")
        .args([family, "route", "replace", &net.to_string(), "dev", device])
        .stderr(std::process::Stdio::null())
        .status()
        .await;
    if !status.is_ok_and(|s| s.success()) {
        warn!("could not route {net} to {device} (running without privileges?)");
    }
}

/// The global address pools, for the start-up log line.
pub fn describe_pools(config: &Config) -> String {
    let v4 = config.net.ipv4_network.map(|n: Ipv4Net| n.to_string());
    let v6 = config.net.ipv6_network.map(|n| n.to_string());
    [v4, v6]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn v4_packet(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut p = vec![0u8; 20];
        p[0] = 0x45;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p
    }

    #[test]
    fn filter_blocks_spoofing_and_restricts_routes() {
        let filter = PacketFilter {
            v4: Some("10.9.0.5".parse().unwrap()),
            v6: None,
            restrict: Some((
                vec!["192.0.2.0/24".parse().unwrap()],
                vec!["192.0.2.128/25".parse().unwrap()],
            )),
            iroutes: vec!["172.16.0.0/24".parse().unwrap()],
        };
        assert!(!filter.allows(&v4_packet([10, 9, 0, 5], [192, 0, 2, 200])));
        let everywhere_but = PacketFilter {
            restrict: Some((Vec::new(), vec!["10.0.0.0/8".parse().unwrap()])),
            ..filter
        };
        assert!(everywhere_but.allows(&v4_packet([10, 9, 0, 5], [8, 8, 8, 8])));
        assert!(!everywhere_but.allows(&v4_packet([10, 9, 0, 5], [10, 1, 1, 1])));
        let filter = PacketFilter {
            restrict: Some((
                vec!["192.0.2.0/24".parse().unwrap()],
                vec!["192.0.2.128/25".parse().unwrap()],
            )),
            ..everywhere_but
        };
        assert!(filter.allows(&v4_packet([10, 9, 0, 5], [192, 0, 2, 7])));
        assert!(!filter.allows(&v4_packet([10, 9, 0, 6], [192, 0, 2, 7])));
        assert!(!filter.allows(&v4_packet([10, 9, 0, 5], [8, 8, 8, 8])));
        assert!(filter.allows(&v4_packet([172, 16, 0, 9], [192, 0, 2, 7])));
        assert!(!filter.allows(b"garbage"));
        assert_eq!(
            destination(&v4_packet([1, 1, 1, 1], [2, 2, 2, 2])),
            Some("2.2.2.2".parse().unwrap())
        );
    }

    #[test]
    fn custom_headers_substitute_user_and_group() {
        let lines = ["X-My-User: %{U}/%{G}".to_string(), "broken".to_string()];
        assert_eq!(
            custom_headers(&lines, "alice", Some("staff")),
            vec![("X-My-User".to_string(), "alice/staff".to_string())]
        );
    }
}
