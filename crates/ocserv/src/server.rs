//! The I/O shell of the server's network process: accepting connections, TLS, the HTTP
//! login phase, tunnels, and the one tun device all sessions share.
//!
//! Protocol decisions live in `oc-proto` (HTTP, XML, CONNECT, the tunnel plan, the CSTP
//! session) and in the sans-IO modules of this crate (auth conversation, pool, sessions,
//! bans); this module moves bytes between them, sockets, the tun device and the other
//! processes (credentials from the security module, scripts and routes from the main one).
//!
//! Unlike ocserv (a process and a tun device per client), every session lives in this one
//! process and shares one tun device: packets read from it are dispatched to the session
//! that owns the destination address.
//!
//! This file holds the [`Server`] and its shared state, start-up, reload and shutdown; the
//! rest is split by concern: `login` (listener, TLS handshake, HTTP login phase), `connect`
//! (a CONNECT's session, lease and limits), `dtls_offer`, `tunnel` (a tunnel's life around
//! its plan from `oc_proto::anyconnect::tunnel_plan`), `packet_loop`, `tun_io` (the shared
//! tun device), `settings` (effective per-user settings), `reply` and `admin` (occtl,
//! metrics).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipnet::{IpNet, Ipv4Net};
use oc_ctl::model::{Event, UserInfo};
use oc_net::udp::BatchSocket;
use oc_net::Coalescer;
use oc_proto::ipc::MainRequest;
use oc_tls::server::TlsServer;
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, watch};
use tracing::warn;
use tun_rs::AsyncDevice;

use crate::auth::FormSettings;
use crate::ban::{BanList, BanPolicy};
use crate::config::{self, Config, Problem};
use crate::metrics::{Metrics, TunnelMeters};
use crate::packets::PacketBatch;
use crate::routes::RouteTable;
use crate::script;
use crate::udp::{self, DtlsContexts, DtlsRegistry, UdpCounters};
use crate::worker::Links;

mod admin;
mod connect;
mod dtls_offer;
mod kkdcp;
mod login;
mod login_checks;
mod packet_loop;
mod reply;
mod settings;
mod sso;
mod tun_io;
mod tunnel;

use packet_loop::ClosedAs;
pub use tun_io::{create_tun, server_addresses};

/// Connections allowed at once before login (each may hold up to 16 KiB of header, a
/// 256 KiB body and TLS state for `auth-timeout`).
const MAX_PRELOGIN: usize = 1024;
/// Password checks running at once.
const MAX_PASSWORD_CHECKS: usize = 4;
/// Steps of external back ends (PAM, RADIUS, GSSAPI) running at once: a RADIUS server
/// that does not answer holds these, not the password files' checks or the session store.
const MAX_BACKEND_CHECKS: usize = 4;
/// How long shutdown waits for sessions to say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
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

/// The parts that SIGHUP reloads, for one host. Running sessions keep what they started
/// with. The server's own is the default host's, with each virtual host's in `vhosts`.
#[derive(Debug)]
pub struct Runtime {
    pub config: Config,
    /// The TLS context of every host (it picks a virtual host's settings by SNI).
    pub tls: Arc<TlsServer>,
    pub forms: FormSettings,
    /// The virtual host this is (`None`: the default one).
    pub name: Option<String>,
    /// The virtual hosts' runtimes (empty in theirs).
    pub vhosts: Vec<Arc<Runtime>>,
    /// The security module's process id (occtl's status).
    pub secmod_pid: u32,
    /// `expose-iroutes`: the iroutes of every user of this host, read by the main process.
    pub known_iroutes: Vec<IpNet>,
}

impl Runtime {
    /// The host a connection was served as: the virtual host its TLS server name chose,
    /// else the default one (`self`).
    pub fn host_of(self: &Arc<Self>, stream: &oc_tls::TlsStream) -> Arc<Runtime> {
        self.tls
            .virtual_host_of(stream)
            .and_then(|name| self.vhosts.iter().find(|v| v.name.as_deref() == Some(name)))
            .cloned()
            .unwrap_or_else(|| self.clone())
    }
}

/// Keys that parse but whose feature this server does not have yet: each gets a warning at
/// its line, so nobody believes a limit or a channel is active when it is not.
pub fn not_yet_used(config: &Config) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut note =
        |key: &str, what: &str| out.push(config.problem_at(key, format!("{key}: {what}")));
    if config.user_profile.is_some() {
        note("user-profile", "profile downloads are not supported yet");
    }
    out
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
    /// Its DTLS id, when DTLS was offered (occtl shows the DTLS cipher once it is up).
    dtls: Option<udp::DtlsId>,
}

struct State {
    bans: BanList,
    /// Live tunnels by connection id.
    tunnels: HashMap<u64, LiveTunnel>,
    /// Networks with a kernel route to the tun device, each with whether it was routed as
    /// an iroute (`route-add-cmd` runs for an iroute even when a pool covers it).
    routed: Vec<(IpNet, bool)>,
    /// Connections logging in, per client address.
    prelogin_by_ip: HashMap<IpAddr, usize>,
    /// The number of the last `ServerAddresses` request (the main process applies only
    /// newer ones).
    address_seq: u64,
}

impl State {
    /// The request that puts the server's addresses on the tun device (`present`) or takes
    /// them off, numbered.
    fn server_addresses(&mut self, present: bool) -> MainRequest {
        self.address_seq += 1;
        MainRequest::ServerAddresses {
            seq: self.address_seq,
            present,
        }
    }
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
    /// Credential checks at once (SHA-crypt in the security module): a password flood
    /// cannot take every CPU, nor every channel to the security module, so handshakes and
    /// CONNECTs still get answers.
    password_checks: Arc<tokio::sync::Semaphore>,
    backend_checks: Arc<tokio::sync::Semaphore>,
    /// Tunnel tasks not finished yet, disconnect scripts included (shutdown waits).
    tunnel_tasks: AtomicU64,
    shutdown: watch::Sender<bool>,
    /// False once the listeners are to close (draining before a stop).
    accepting: watch::Sender<bool>,
    pub metrics: Metrics,
    /// Connects and disconnects, for `occtl show events`.
    events: broadcast::Sender<Event>,
    /// occtl's `reload` and `stop now`, acted on by the main task.
    admin_requests: watch::Sender<Option<AdminRequest>>,
    started: SystemTime,
    totals: Mutex<Totals>,
    /// The security module (credentials) and the main process (scripts, routes).
    links: Arc<Links>,
    /// Browser logins under way (`auth = oidc` with `sso`).
    sso: Mutex<sso::SsoLogins>,
}

/// What occtl asks of the process as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRequest {
    Reload,
    Stop,
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

pub(crate) fn read_lock<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn write_lock<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn ban_policy(config: &Config) -> BanPolicy {
    BanPolicy {
        max_score: config.max_ban_score,
        reset_after: Duration::from_secs(u64::from(config.ban_reset_time)),
        ban_time: Duration::from_secs(u64::from(config.min_reauth_time)),
    }
}

impl Server {
    pub fn new(
        runtime: Runtime,
        tun: AsyncDevice,
        tun_name: String,
        udp: Option<UdpSocket>,
        links: Arc<Links>,
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
            bans: BanList::new(ban_policy(config)),
            tunnels: HashMap::new(),
            routed: config
                .net
                .ipv4_network
                .map(IpNet::V4)
                .into_iter()
                .chain(config.net.ipv6_network.map(IpNet::V6))
                .map(|net| (net, false))
                .collect(),
            prelogin_by_ip: HashMap::new(),
            address_seq: 0,
        };
        let (shutdown, _) = watch::channel(false);
        let (accepting, _) = watch::channel(true);
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
            backend_checks: Arc::new(tokio::sync::Semaphore::new(MAX_BACKEND_CHECKS)),
            tunnel_tasks: AtomicU64::new(0),
            shutdown,
            accepting,
            metrics,
            events: broadcast::channel(EVENT_BACKLOG).0,
            admin_requests: watch::channel(None).0,
            started: SystemTime::now(),
            totals: Mutex::new(Totals::default()),
            links,
            sso: Mutex::default(),
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
            ("udp-port", old.config.udp_port != config.udp_port),
            (
                "udp-listen-host",
                old.config.udp_listen_host != config.udp_listen_host,
            ),
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
        // The session store (in the security module) reloads its cookie-timeout itself.
        lock(&self.state).bans.set_policy(ban_policy(config));
        *write_lock(&self.runtime) = Arc::new(runtime);
    }

    /// The host's own addresses: they are never refused for ban points (as in ocserv).
    pub fn exempt_from_bans(&self, host_addrs: Vec<IpAddr>) {
        lock(&self.state).bans.set_exempt(host_addrs);
    }

    /// Closes the TCP listeners (`server-drain-ms`); tunnels keep running.
    pub fn stop_accepting(&self) {
        self.accepting.send_replace(false);
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

fn random_fill(buf: &mut [u8]) {
    if openssl::rand::rand_bytes(buf).is_err() {
        // OpenSSL's CSPRNG failing is not recoverable in a security product.
        std::process::abort();
    }
}

/// Seconds since the epoch (0 for times before it).
pub(crate) fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
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
