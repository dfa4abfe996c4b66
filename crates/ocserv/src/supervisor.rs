//! The main process: privileged, never parses a byte from the network.
//!
//! It starts the security module and then the network process (both this same binary,
//! run again with `--internal-role`), hands them their channels, and then:
//! - runs the connect and disconnect scripts as root, routes networks to the tun device
//!   and answers `ping-leases` questions when the network process asks (only those);
//! - reloads on SIGHUP (and occtl `reload`): configuration, certificates and keys;
//! - stops on SIGTERM/SIGINT (and occtl `stop now`): the network process says goodbye to
//!   its clients first;
//! - supervises: a network process that dies is logged and started again (clients
//!   reconnect with their cookies); a security module that dies stops the server with a
//!   failure exit, as ocserv does (upstream's `test-secmod-kill`).

use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use oc_proto::ipc::{
    CommandReply, HostSetup, MainReply, MainRequest, Message, ScriptKind, SecModCommand,
    SettingsFile, WorkerCommand, WorkerSetup,
};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::channel::{Channel, ChannelError, Received};
use crate::config::{self, AuthMethod, Config};
use crate::passwd::PasswdFile;
use crate::script;
use crate::server::{read_lock, write_lock};

/// Channels from the network process to each of the others: its concurrent requests
/// (credential checks, session store; scripts and routes) each take one for an exchange.
/// Password checks and external back ends (PAM, RADIUS, GSSAPI) take at most four each,
/// so slow back ends leave channels for the session store.
const CHANNELS: usize = 12;
/// The security module also gets the network process's signing channels.
const SECMOD_CHANNELS: usize = CHANNELS + crate::worker::SIGNING_CHANNELS;
/// A network process that dies this often within [`RESTART_WINDOW`] is not started again.
const MAX_RESTARTS: usize = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(60);
/// How long the network process may take to start serving.
const START_LIMIT: Duration = Duration::from_secs(30);
/// Stopping waits for clients' goodbyes and their disconnect scripts (which may take
/// `script::SCRIPT_TIMEOUT`).
const STOP_LIMIT: Duration = Duration::from_secs(script::SCRIPT_TIMEOUT.as_secs() + 15);

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("cannot start the {role}: {source}")]
    Spawn {
        role: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Channel(#[from] ChannelError),
    #[error("the {role} could not start: {why}")]
    Refused { role: &'static str, why: String },
    #[error("the security module exited ({0}); stopping the server")]
    SecModDied(String),
    #[error("the network process died {MAX_RESTARTS} times within a minute; giving up")]
    Crashing,
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("signals: {0}")]
    Signals(std::io::Error),
}

/// How the server was started, for starting the other processes the same way.
#[derive(Debug, Clone)]
pub struct Launch {
    pub config_path: PathBuf,
    /// The command line to repeat for the other processes (logging flags).
    pub args: Vec<OsString>,
}

/// What the request handlers need: refreshed on reload.
#[derive(Debug)]
struct Shared {
    config: RwLock<Config>,
    /// The network process's tun device.
    device: RwLock<String>,
    /// The last `ServerAddresses` request applied (0 for a new network process). The
    /// lock also keeps two requests from applying at once.
    address_seq: std::sync::Mutex<u64>,
    /// occtl's reload and stop, for the main loop.
    admin: mpsc::UnboundedSender<MainRequest>,
}

struct Child {
    process: tokio::process::Child,
    control: Channel,
    /// "security module" or "network process", for errors.
    role: &'static str,
}

/// The main process's state.
pub struct Supervisor {
    launch: Launch,
    generation: u32,
    shared: Arc<Shared>,
    admin: mpsc::UnboundedReceiver<MainRequest>,
    secmod: Child,
    worker: Child,
    restarts: Vec<Instant>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// The security module's and the network process's `--internal-role` and name.
const SECMOD: (&str, &str) = ("secmod", "security module");
const WORKER: (&str, &str) = ("worker", "network process");

fn spawn_role(
    launch: &Launch,
    (arg, role): (&str, &'static str),
) -> Result<Child, SupervisorError> {
    let (near, far) =
        Channel::pair("main", role).map_err(|source| SupervisorError::Spawn { role, source })?;
    let exe = std::env::current_exe().map_err(|source| SupervisorError::Spawn { role, source })?;
    let process = tokio::process::Command::new(exe)
        .args(&launch.args)
        .arg("--internal-role")
        .arg(arg)
        .stdin(Stdio::from(far.into_fd()))
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| SupervisorError::Spawn { role, source })?;
    Ok(Child {
        process,
        control: near,
        role,
    })
}

/// What the network process is given to serve with, read here as root.
fn worker_setup(
    launch: &Launch,
    generation: u32,
    secmod_pid: u32,
) -> Result<(WorkerSetup, Config), SupervisorError> {
    let path = &launch.config_path;
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| SupervisorError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let text = String::from_utf8_lossy(&read(path)?).into_owned();
    let config = config::parse(&text, path, false)?.config;
    let setup = WorkerSetup {
        generation,
        config_path: path.display().to_string(),
        config_text: config::without_pins(&text),
        hosts: config
            .hosts()
            .map(|(_, host)| {
                Ok(HostSetup {
                    cert_chains: host
                        .server_pairs
                        .iter()
                        .map(|(cert, _)| read(cert))
                        .collect::<Result<_, _>>()?,
                    // Without a certificate method ocserv never reads ca-cert; a missing
                    // file must not stop a password-only server.
                    ca_pem: host
                        .ca_cert
                        .as_deref()
                        .filter(|_| host.uses_certificate_auth())
                        .map(read)
                        .transpose()?,
                    crl_pem: host.crl.as_deref().map(read).transpose()?,
                    ocsp_der: host.ocsp_response.as_deref().map(read).transpose()?,
                    groups: form_groups(host),
                    known_iroutes: known_iroutes(host),
                })
            })
            .collect::<Result<_, SupervisorError>>()?,
        secmod_pid,
    };
    Ok((setup, config))
}

/// With `expose-iroutes`, the iroutes of every file in `config-per-user` (as ocserv reads
/// them at load; a file that does not parse is skipped with a warning).
fn known_iroutes(config: &Config) -> Vec<ipnet::IpNet> {
    let (true, Some(dir)) = (config.expose_iroutes, &config.config_per_user) else {
        return Vec::new();
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            warn!("expose-iroutes: cannot list {}: {e}", dir.display());
            return Vec::new();
        }
    };
    let mut known = Vec::new();
    for path in entries.flatten().map(|e| e.path()).filter(|p| p.is_file()) {
        let parsed = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                config::parse_override_bytes(&bytes, &path).map_err(|e| e.to_string())
            });
        match parsed {
            Ok((settings, _)) => {
                for net in settings.iroutes.into_iter().flatten() {
                    if !known.contains(&net) {
                        known.push(net);
                    }
                }
            }
            Err(e) => warn!("expose-iroutes: {}: {e}; skipped", path.display()),
        }
    }
    known
}

/// The login form's group list: `select-group` lines, and with `auto-select-group` every
/// group in the password files (which only root can read) and, for `pam[gid-min=N]`, the
/// system's groups from N up.
fn form_groups(config: &Config) -> Vec<(String, String)> {
    let mut groups: Vec<(String, String)> = config
        .select_groups
        .iter()
        .map(|(name, label)| (name.clone(), label.clone().unwrap_or_else(|| name.clone())))
        .collect();
    if config.auto_select_group {
        for method in config.auth.iter().chain(config.enable_auth.iter()) {
            let found = match method {
                AuthMethod::Plain {
                    passwd: Some(passwd),
                    ..
                } => match PasswdFile::load(passwd) {
                    Ok(file) => file.all_groups(),
                    Err(e) => {
                        warn!("auto-select-group: {e}");
                        continue;
                    }
                },
                AuthMethod::Pam(pam) => crate::pam::unix_group_list(pam.gid_min),
                _ => continue,
            };
            for group in found {
                if !groups.iter().any(|(g, _)| *g == group) {
                    groups.push((group.clone(), group));
                }
            }
        }
    }
    groups
}

/// Sends a command (with `fds` attached) to a child process and waits for its answer; a
/// refusal is an error.
fn command<T: serde::Serialize + Message>(
    child: &mut Child,
    cmd: &T,
    fds: &[BorrowedFd<'_>],
) -> Result<CommandReply, SupervisorError> {
    match child.control.call(cmd, fds)? {
        CommandReply::Failed(why) => Err(SupervisorError::Refused {
            role: child.role,
            why,
        }),
        reply => Ok(reply),
    }
}

impl Supervisor {
    /// Starts the security module, then the network process; returns once it serves.
    pub fn start(launch: Launch) -> Result<Self, SupervisorError> {
        let generation = 1;
        let mut secmod = spawn_role(&launch, SECMOD)?;
        secmod.control.set_timeout(Some(START_LIMIT))?;
        command(&mut secmod, &SecModCommand::Reload { generation }, &[])?;
        let secmod_pid = secmod.process.id().unwrap_or_default();
        let (setup, config) = worker_setup(&launch, generation, secmod_pid)?;
        let (admin_tx, admin) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            config: RwLock::new(config),
            device: RwLock::new(String::new()),
            address_seq: std::sync::Mutex::new(0),
            admin: admin_tx,
        });
        let worker = start_worker(&launch, &mut secmod, &shared, setup)?;
        Ok(Self {
            launch,
            generation,
            shared,
            admin,
            secmod,
            worker,
            restarts: Vec::new(),
        })
    }

    /// Runs until a stop signal or request (Ok) or a failure that ends the server.
    pub async fn run(mut self, ready: impl FnOnce()) -> Result<(), SupervisorError> {
        ready();
        let mut hup = signal(SignalKind::hangup()).map_err(SupervisorError::Signals)?;
        let mut usr2 = signal(SignalKind::user_defined2()).map_err(SupervisorError::Signals)?;
        let term = signal(SignalKind::terminate()).map_err(SupervisorError::Signals)?;
        let int = signal(SignalKind::interrupt()).map_err(SupervisorError::Signals)?;
        let mut stops = StopSignals { term, int };
        loop {
            tokio::select! {
                _ = hup.recv() => self.reload(),
                // ocserv's maintenance signal: its clean-ups happen here as they fall due
                // (expired cookies, bans), so there is nothing left to do but say so.
                _ = usr2.recv() => info!("performing maintenance cycle (SIGUSR2): nothing pending"),
                () = stops.next() => {
                    self.drain(&mut stops).await;
                    break;
                }
                status = self.secmod.process.wait() => {
                    let status = describe(status);
                    // A stop signal sent to the whole process group (as a service manager
                    // sends it) ends the security module too, as in ocserv: then this is
                    // an ordinary stop.
                    if tokio::time::timeout(GROUP_SIGNAL_GRACE, stops.next()).await.is_ok() {
                        info!("the security module stopped with the server ({status})");
                        break;
                    }
                    // Logged by the caller, with the exit status 1 it leads to.
                    self.stop_worker().await;
                    return Err(SupervisorError::SecModDied(status));
                }
                status = self.worker.process.wait() => {
                    error!("the network process exited ({}); starting a new one", describe(status));
                    self.restart_worker()?;
                }
                request = self.admin.recv() => match request {
                    Some(MainRequest::Reload) => self.reload(),
                    Some(MainRequest::Stop) => {
                        info!("occtl asked the server to stop");
                        break;
                    }
                    _ => {}
                },
            }
        }
        self.stop_worker().await;
        let _ = self.secmod.process.start_kill();
        let _ = self.secmod.process.wait().await;
        Ok(())
    }

    /// `server-drain-ms`: the listeners close and the tunnels keep going that long, so a
    /// load balancer's health probe sees the server leave first. Another stop signal, or the
    /// end of the security module or the network process, stops at once.
    async fn drain(&mut self, stops: &mut StopSignals) {
        let ms = read_lock(&self.shared.config).server_drain_ms;
        if ms == 0 {
            return;
        }
        info!("termination request received; stopping new connections");
        if let Err(e) = command(&mut self.worker, &WorkerCommand::StopAccepting, &[]) {
            warn!("the network process could not stop accepting connections: {e}");
        }
        info!("termination request received; waiting {ms} ms");
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms)) => {}
            () = stops.next() => info!("stop signal while draining; stopping now"),
            status = self.secmod.process.wait() => {
                info!("the security module exited while draining ({}); stopping now", describe(status));
            }
            status = self.worker.process.wait() => {
                warn!("the network process exited while draining ({}); stopping now", describe(status));
            }
        }
    }

    fn restart_worker(&mut self) -> Result<(), SupervisorError> {
        let now = Instant::now();
        self.restarts
            .retain(|t| now.duration_since(*t) < RESTART_WINDOW);
        self.restarts.push(now);
        if self.restarts.len() >= MAX_RESTARTS {
            return Err(SupervisorError::Crashing);
        }
        let secmod_pid = self.secmod.process.id().unwrap_or_default();
        let (setup, config) = worker_setup(&self.launch, self.generation, secmod_pid)?;
        *write_lock(&self.shared.config) = config;
        self.worker = start_worker(&self.launch, &mut self.secmod, &self.shared, setup)?;
        info!("network process restarted; clients reconnect with their cookies");
        Ok(())
    }

    /// SIGHUP: the new configuration is checked here first; a broken one keeps the
    /// running set everywhere.
    fn reload(&mut self) {
        let generation = self.generation + 1;
        let secmod_pid = self.secmod.process.id().unwrap_or_default();
        let (setup, config) = match worker_setup(&self.launch, generation, secmod_pid) {
            Ok(s) => s,
            Err(e) => {
                error!("reload failed, keeping the running configuration: {e}");
                return;
            }
        };
        if let Err(e) = command(&mut self.secmod, &SecModCommand::Reload { generation }, &[]) {
            error!("reload failed, keeping the running configuration: {e}");
            return;
        }
        self.generation = generation;
        *write_lock(&self.shared.config) = config;
        match command(&mut self.worker, &WorkerCommand::Configure(setup), &[]) {
            Ok(_) => info!(
                "configuration reloaded from {}",
                self.launch.config_path.display()
            ),
            Err(e) => error!("the network process could not reload: {e}"),
        }
    }

    /// Asks the network process to stop (its disconnect scripts run), kills what is left and
    /// reaps it, so no network process outlives the server.
    async fn stop_worker(&mut self) {
        let _ = self.worker.control.set_timeout(Some(STOP_LIMIT));
        match command(&mut self.worker, &WorkerCommand::Stop, &[]) {
            Ok(_) => {}
            Err(e) => warn!("stopping the network process: {e}"),
        }
        let _ = self.worker.process.start_kill();
        let _ = self.worker.process.wait().await;
    }
}

/// How long after the security module's end a stop signal to the main process still counts
/// as the same process-group signal.
const GROUP_SIGNAL_GRACE: Duration = Duration::from_millis(300);

/// SIGTERM and SIGINT: both stop the server.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

fn describe(status: std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(s) => s.to_string(),
        Err(e) => format!("wait failed: {e}"),
    }
}

/// Starts a network process with fresh channels to the security module and to us.
fn start_worker(
    launch: &Launch,
    secmod: &mut Child,
    shared: &Arc<Shared>,
    setup: WorkerSetup,
) -> Result<Child, SupervisorError> {
    let role = WORKER.1;
    let pairs = |near, far, count| -> Result<(Vec<Channel>, Vec<Channel>), SupervisorError> {
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for _ in 0..count {
            let (a, b) = Channel::pair(near, far)
                .map_err(|source| SupervisorError::Spawn { role, source })?;
            ours.push(a);
            theirs.push(b);
        }
        Ok((ours, theirs))
    };
    // Security module <-> network process.
    let (secmod_ends, worker_secmod_ends) =
        pairs("security module", "network process", SECMOD_CHANNELS)?;
    let secmod_fds: Vec<OwnedFd> = secmod_ends.into_iter().map(Channel::into_fd).collect();
    let borrowed: Vec<_> = secmod_fds.iter().map(AsFd::as_fd).collect();
    command(secmod, &SecModCommand::Serve, &borrowed)?;
    // Main <-> network process.
    let (main_ends, worker_main_ends) = pairs("main process", "network process", CHANNELS)?;
    for channel in main_ends {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("main-requests".into())
            .spawn(move || {
                let stopped = channel.serve(|r: Received<MainRequest>| handle(&shared, r.msg));
                if !matches!(stopped, ChannelError::Closed { .. }) {
                    warn!("main process: a channel from the network process closed: {stopped}");
                }
            })
            .map_err(|source| SupervisorError::Spawn { role, source })?;
    }
    let mut worker = spawn_role(launch, WORKER)?;
    worker.control.set_timeout(Some(START_LIMIT))?;
    let fds: Vec<OwnedFd> = worker_secmod_ends
        .into_iter()
        .chain(worker_main_ends)
        .map(Channel::into_fd)
        .collect();
    let borrowed: Vec<_> = fds.iter().map(AsFd::as_fd).collect();
    let start = WorkerCommand::Start {
        setup,
        secmod_channels: SECMOD_CHANNELS as u32,
    };
    if let CommandReply::Started { device } = command(&mut worker, &start, &borrowed)? {
        *write_lock(&shared.device) = device;
        *crate::server::lock(&shared.address_seq) = 0;
    }
    worker.control.set_timeout(None)?;
    Ok(worker)
}

/// The settings file for `name` in `dir` (`config-per-user`/`-group`), or the default file
/// when there is none for it; nothing without a directory (as ocserv).
fn settings_file(
    dir: Option<&Path>,
    name: Option<&str>,
    default: Option<&Path>,
) -> Result<Option<SettingsFile>, config::ConfigError> {
    let Some(dir) = dir else {
        return Ok(None);
    };
    let own = match name {
        Some(name) => config::read_override(dir, name)?,
        None => None,
    };
    let found = match (own, default) {
        (Some(found), _) => Some(found),
        (None, Some(path)) => Some((path.to_path_buf(), config::read_override_file(path)?)),
        (None, None) => None,
    };
    Ok(found.map(|(path, bytes)| SettingsFile {
        path: path.display().to_string(),
        bytes,
    }))
}

/// Answers one request of the network process.
/// Puts the server's addresses on the tun device or takes them off, unless a newer
/// request came first.
fn server_addresses(shared: &Shared, seq: u64, present: bool) -> MainReply {
    apply_in_order(&shared.address_seq, seq, || {
        let device = read_lock(&shared.device).clone();
        let addresses = crate::server::server_addresses(&read_lock(&shared.config));
        oc_net::netlink::set_addresses(&device, &addresses, present).map_err(|e| e.to_string())
    })
}

/// Runs request `seq` with `apply` unless a request as new or newer was applied already
/// (requests may arrive out of order); `applied` moves on only when `apply` succeeds, and
/// its lock keeps two from applying at once.
fn apply_in_order(
    applied: &std::sync::Mutex<u64>,
    seq: u64,
    apply: impl FnOnce() -> Result<(), String>,
) -> MainReply {
    let mut applied = crate::server::lock(applied);
    if seq <= *applied {
        return MainReply::Done;
    }
    match apply() {
        Ok(()) => {
            *applied = seq;
            MainReply::Done
        }
        Err(e) => MainReply::Failed(e),
    }
}

fn handle(shared: &Shared, request: MainRequest) -> MainReply {
    match request {
        MainRequest::RunScript { kind, env } => {
            let path = {
                let config = read_lock(&shared.config);
                match kind {
                    ScriptKind::Connect => config.connect_script.clone(),
                    ScriptKind::Disconnect => config.disconnect_script.clone(),
                    ScriptKind::HostUpdate => config.host_update_script.clone(),
                }
            };
            let Some(path) = path else {
                return MainReply::Done;
            };
            match script::run(&path, &env) {
                Ok(()) => MainReply::Done,
                Err(e) => MainReply::Failed(e.to_string()),
            }
        }
        MainRequest::AddRoute { net, iroute } => {
            let device = read_lock(&shared.device).clone();
            let command = read_lock(&shared.config).route_add_cmd.clone();
            let added = match command.filter(|_| iroute) {
                Some(pattern) => script::run_route_command(&pattern, net, &device),
                None => script::add_route(&device, net),
            };
            match added {
                Ok(()) => MainReply::Done,
                Err(e) => {
                    warn!("{e}");
                    MainReply::Failed(e.to_string())
                }
            }
        }
        MainRequest::AddressInUse { addr } => MainReply::Answer(script::answers_ping(addr)),
        MainRequest::ServerAddresses { seq, present } => server_addresses(shared, seq, present),
        MainRequest::UserFiles { user, group, vhost } => {
            let all = read_lock(&shared.config);
            let Some((_, config)) = all.hosts().find(|(name, _)| *name == vhost.as_deref()) else {
                return MainReply::Failed(format!(
                    "no virtual host {vhost:?} in the configuration"
                ));
            };
            let layer = |dir: &Option<PathBuf>, name: Option<&str>, default: &Option<PathBuf>| {
                settings_file(dir.as_deref(), name, default.as_deref())
            };
            let group = layer(
                &config.config_per_group,
                group.as_deref(),
                &config.default_group_config,
            );
            let user = layer(
                &config.config_per_user,
                Some(&user),
                &config.default_user_config,
            );
            match (group, user) {
                (Ok(group), Ok(user)) => MainReply::UserFiles { group, user },
                (Err(e), _) | (_, Err(e)) => MainReply::Failed(e.to_string()),
            }
        }
        request @ (MainRequest::Reload | MainRequest::Stop) => {
            let _ = shared.admin.send(request);
            MainReply::Done
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A late, older `ServerAddresses` request never undoes a newer one; a failed one can
    /// be tried again.
    #[test]
    fn server_address_requests_apply_in_order() {
        let applied = std::sync::Mutex::new(0);
        let mut runs = Vec::new();
        let mut run = |seq: u64, ok: bool| {
            let reply = apply_in_order(&applied, seq, || {
                runs.push(seq);
                if ok {
                    Ok(())
                } else {
                    Err("netlink refused".to_string())
                }
            });
            matches!(reply, MainReply::Done)
        };
        assert!(run(2, true));
        assert!(run(1, true), "a stale request is answered, not applied");
        assert!(run(2, true));
        assert!(!run(3, false));
        assert!(run(3, true));
        assert_eq!(runs, [2, 3, 3]);
        assert_eq!(*applied.lock().unwrap(), 3);
    }

    /// `expose-iroutes` is a host's setting: each host's users' iroutes, read from its own
    /// `config-per-user`.
    #[test]
    fn known_iroutes_are_each_hosts_own() {
        let dir = std::env::temp_dir().join(format!("oc-iroutes-{}", std::process::id()));
        let users = dir.join("users");
        std::fs::create_dir_all(&users).unwrap();
        std::fs::write(users.join("bob"), "iroute = 192.168.50.0/24\n").unwrap();
        let text = format!(
            "auth = \"plain[passwd=/p]\"\ntcp-port = 443\nserver-cert = /c\nserver-key = /k\n\
             ipv4-network = 10.9.0.0/24\nconfig-per-user = {}/\n\
             [vhost:a.example.com]\nexpose-iroutes = true\n",
            users.display()
        );
        let config = config::parse(&text, Path::new("t.conf"), false)
            .unwrap()
            .config;
        assert!(known_iroutes(&config).is_empty());
        assert_eq!(
            known_iroutes(&config.vhosts[0].config),
            vec!["192.168.50.0/24".parse::<ipnet::IpNet>().unwrap()]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
