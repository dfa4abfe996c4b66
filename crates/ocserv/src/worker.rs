//! The network process: everything that talks to clients, running as `run-as-user`.
//!
//! Started by the main process, it receives its configuration (read for it by the main
//! process) and its channels, opens its sockets and the tun device while it still can,
//! confines itself (see [`crate::sandbox`]) and only then starts serving. Password and OTP
//! checks and every signature of a TLS handshake go to the security module; scripts,
//! kernel routes and `ping-leases` go to the main process. It holds no private key and
//! opens no password file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use oc_proto::ipc::{
    CommandReply, CookieRefusal, HostSetup, KeyRef, MainReply, MainRequest, SecModReply,
    SecModRequest, SessionReply, SessionRequest, SignOp, WorkerCommand, WorkerSetup,
};
use oc_tls::remote_key::{RemoteCert, RemoteSigner, SignRequest};
use oc_tls::server::{TlsServer, TlsServerConfig};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::auth::FormSettings;
use crate::channel::{AsyncChannelPool, Channel, ChannelError, ChannelPool, Received};
use crate::config;
use crate::listen::{bind_all, Sockets};
use crate::sandbox::{self, Identity};
use crate::server::{create_tun, describe_pools, AdminRequest, Runtime, Server};

/// How long a handshake waits for a free signing channel.
const CHANNEL_WAIT: Duration = Duration::from_secs(30);
/// The first channels to the security module serve signatures, asked synchronously from
/// inside handshakes (at most one per runtime thread at a time); the others serve the
/// async tasks.
pub const SIGNING_CHANNELS: usize = 4;
/// The longest the security module takes to answer (a password check waiting for the
/// others); a channel that stalls longer is dropped rather than holding a thread forever.
const SECMOD_ANSWER_LIMIT: Duration = Duration::from_secs(30);
/// The main process runs scripts, which may take `script::SCRIPT_TIMEOUT`.
const MAIN_ANSWER_LIMIT: Duration =
    Duration::from_secs(crate::script::SCRIPT_TIMEOUT.as_secs() + 15);

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Channel(#[from] ChannelError),
    #[error("the first message from the main process was not Start")]
    NoStart,
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Tls(#[from] oc_tls::TlsError),
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Sandbox(#[from] sandbox::SandboxError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Server(#[from] crate::server::ServerError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// The processes the network process may ask things of.
#[derive(Debug)]
pub struct Links {
    /// Credential checks and the session store, from the async tasks.
    pub secmod: AsyncChannelPool,
    /// Signatures, asked synchronously from inside TLS handshakes.
    pub signer: ChannelPool,
    pub main: AsyncChannelPool,
}

impl Links {
    /// Asks the security module; a failure (the process gone, a stalled channel) is logged
    /// and answered as a refusal.
    pub async fn secmod(&self, request: SecModRequest) -> SecModReply {
        self.secmod.call(&request).await.unwrap_or_else(|e| {
            error!("{e}");
            SecModReply::Refused(e.to_string())
        })
    }

    /// Asks the session store (in the security module).
    pub async fn session(&self, request: SessionRequest) -> SessionReply {
        match self.secmod(SecModRequest::Session(request)).await {
            SecModReply::Session(reply) => reply,
            SecModReply::Refused(why) => SessionReply::Refused(CookieRefusal::Unavailable(why)),
            other => SessionReply::Refused(CookieRefusal::Unavailable(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    /// Asks the main process; a failure is logged and answered as such.
    pub async fn main(&self, request: MainRequest) -> MainReply {
        self.main.call(&request).await.unwrap_or_else(|e| {
            error!("{e}");
            MainReply::Failed(e.to_string())
        })
    }
}

/// Signs handshakes through the security module with the keys of one generation.
#[derive(Debug)]
struct SecModSigner {
    links: Arc<Links>,
    generation: u32,
}

impl RemoteSigner for SecModSigner {
    fn sign(&self, request: &SignRequest) -> Result<Vec<u8>, String> {
        let (index, op) = match request {
            SignRequest::RsaPkcs1 { key, digest_info } => (
                *key,
                SignOp::RsaPkcs1 {
                    digest_info: digest_info.clone(),
                },
            ),
            SignRequest::RsaPss { key, encoded } => (
                *key,
                SignOp::RsaPss {
                    encoded: encoded.clone(),
                },
            ),
            SignRequest::Ecdsa { key, digest } => (
                *key,
                SignOp::Ecdsa {
                    digest: digest.clone(),
                },
            ),
            SignRequest::EdDsa { key, message } => (
                *key,
                SignOp::EdDsa {
                    message: message.clone(),
                },
            ),
        };
        let key = KeyRef {
            generation: self.generation,
            index,
        };
        match self.links.signer.call(&SecModRequest::Sign { key, op }) {
            Ok(SecModReply::Signature(signature)) => Ok(signature),
            Ok(SecModReply::Refused(why)) => Err(why),
            Ok(other) => Err(format!("unexpected answer {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The runtime (configuration, TLS context, forms) from what the main process sent: the
/// default host's, with each virtual host's inside.
pub fn runtime_from_setup(setup: &WorkerSetup, links: &Arc<Links>) -> Result<Runtime, WorkerError> {
    let path = PathBuf::from(&setup.config_path);
    let config = config::parse(&setup.config_text, &path, false)?.config;
    if setup.hosts.len() != config.vhosts.len() + 1 {
        return Err(WorkerError::Setup(format!(
            "the main process sent the files of {} hosts for a configuration with {}",
            setup.hosts.len(),
            config.vhosts.len() + 1
        )));
    }
    let signer: Arc<dyn RemoteSigner> = Arc::new(SecModSigner {
        links: links.clone(),
        generation: setup.generation,
    });
    // Keys are numbered over all hosts in order, as the security module loads them.
    let mut first_key = 0u32;
    let mut servers = config
        .hosts()
        .zip(&setup.hosts)
        .map(|((_, host), files)| host_tls(host, files, &mut first_key, &signer))
        .collect::<Result<Vec<_>, _>>()?;
    let virtual_servers = servers.split_off(1);
    let default_tls = servers
        .pop()
        .ok_or_else(|| WorkerError::Setup("no TLS context for the default host".into()))?;
    let named = config
        .vhosts
        .iter()
        .map(|v| v.name.clone())
        .zip(&virtual_servers);
    let tls = Arc::new(default_tls.with_virtual_hosts(named.collect()));
    let host_runtime = |name: Option<String>, config: config::Config, files: &HostSetup| Runtime {
        forms: FormSettings {
            pre_login_banner: config.pre_login_banner.clone(),
            groups: files.groups.clone(),
            default_group: config.default_select_group.clone(),
        },
        config,
        tls: tls.clone(),
        name,
        vhosts: Vec::new(),
        secmod_pid: setup.secmod_pid,
        known_iroutes: files.known_iroutes.clone(),
    };
    let vhosts = config
        .vhosts
        .iter()
        .zip(setup.hosts.iter().skip(1))
        .map(|(v, files)| Arc::new(host_runtime(Some(v.name.clone()), v.config.clone(), files)))
        .collect();
    let mut runtime = host_runtime(None, config, &setup.hosts[0]);
    runtime.vhosts = vhosts;
    Ok(runtime)
}

/// One host's TLS context, its keys held by the security module; `first_key` is the
/// number of its first key among all hosts' (advanced past its own).
fn host_tls(
    host: &config::Config,
    files: &HostSetup,
    first_key: &mut u32,
    signer: &Arc<dyn RemoteSigner>,
) -> Result<TlsServer, WorkerError> {
    let uses_cert = host.uses_certificate_auth();
    let certs: Vec<RemoteCert> = files
        .cert_chains
        .iter()
        .zip(host.server_pairs.iter().map(|(cert, _)| cert))
        .map(|(pem, path)| {
            let key = *first_key;
            *first_key += 1;
            RemoteCert {
                path: path.clone(),
                pem: pem.clone(),
                key,
            }
        })
        .collect();
    Ok(TlsServer::with_remote_keys(
        &TlsServerConfig {
            // Names the host in a "no certificate" error only.
            cert: host
                .server_pairs
                .first()
                .map(|(c, _)| c.clone())
                .unwrap_or_default(),
            key: PathBuf::new(),
            ca: host.ca_cert.clone().filter(|_| uses_cert),
            ca_pem: files.ca_pem.clone(),
            request_client_cert: uses_cert,
            priorities: host.tls_priorities.clone(),
            crl: host.crl.clone().zip(files.crl_pem.clone()),
            ocsp_response: host.ocsp_response.clone().zip(files.ocsp_der.clone()),
        },
        &certs,
        signer.clone(),
    )?)
}

/// The network process's life: set up as root, confine, serve until told to stop.
pub fn run(mut control: Channel) -> Result<(), WorkerError> {
    let Received { msg, mut fds } = control.recv::<WorkerCommand>()?;
    let WorkerCommand::Start {
        setup,
        secmod_channels,
    } = msg
    else {
        return Err(WorkerError::NoStart);
    };
    let main_fds = fds.split_off((secmod_channels as usize).min(fds.len()));
    let secmod_fds = fds.split_off(SIGNING_CHANNELS.min(fds.len()));
    let signer = fds
        .into_iter()
        .map(|fd| {
            let channel = Channel::new(fd, "security module");
            channel
                .set_timeout(Some(SECMOD_ANSWER_LIMIT))
                .map(|()| channel)
        })
        .collect::<Result<_, _>>()?;
    let links = Arc::new(Links {
        secmod: AsyncChannelPool::new(secmod_fds, "security module", SECMOD_ANSWER_LIMIT),
        signer: ChannelPool::new(signer, "security module", CHANNEL_WAIT),
        main: AsyncChannelPool::new(main_fds, "main process", MAIN_ANSWER_LIMIT),
    });
    let started = setup_and_confine(&setup, &links);
    let (runtime, sockets, tun) = match started {
        Ok(s) => s,
        Err(e) => {
            let _ = control.send(&CommandReply::Failed(e.to_string()), &[]);
            return Err(e);
        }
    };
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads(runtime.config.worker_threads))
        .enable_all()
        .build()
        .map_err(WorkerError::Runtime)?;
    tokio.block_on(async move {
        let (device, name) = tun;
        let tun = tun_rs::AsyncDevice::new(device)
            .map_err(|e| WorkerError::Setup(format!("tun: {e}")))?;
        let config = &runtime.config;
        let port_note = match (config.tcp_port, config.udp_port) {
            (Some(t), Some(u)) => format!("listening on TCP port {t} and UDP port {u}"),
            (t, _) => format!("listening on TCP port {}", t.unwrap_or_default()),
        };
        info!(
            "{port_note}; tun device {name} with {}",
            describe_pools(config)
        );
        let has_udp = sockets.udp.is_some();
        let udp = sockets
            .udp
            .map(tokio::net::UdpSocket::from_std)
            .transpose()
            .map_err(|e| WorkerError::Setup(format!("UDP socket: {e}")))?;
        let server = Server::new(runtime, tun, name.clone(), udp, links.clone())?;
        server.exempt_from_bans(sockets.host_addrs);
        control.send(&CommandReply::Started { device: name }, &[])?;
        serve(
            server,
            sockets.tcp,
            sockets.metrics,
            sockets.control,
            control,
            links,
            has_udp,
        )
        .await
    })
}

type Tun = (tun_rs::SyncDevice, String);

/// Everything that needs root, then the drop to `run-as-user` and the sandbox.
fn setup_and_confine(
    setup: &WorkerSetup,
    links: &Arc<Links>,
) -> Result<(Runtime, Sockets, Tun), WorkerError> {
    let runtime = runtime_from_setup(setup, links)?;
    let config = &runtime.config;
    let sockets = bind_all(config)?;
    let tun = create_tun(config)?;
    let identity = sandbox::resolve(&Identity {
        user: config.run_as_user.clone(),
        group: config.run_as_group.clone(),
    })?;
    if let Some(dir) = &config.chroot_dir {
        // Nothing is read from files after this: configuration, certificates and
        // per-user settings come from the main process.
        nix::unistd::chroot(dir)
            .and_then(|()| nix::unistd::chdir("/"))
            .map_err(|e| WorkerError::Setup(format!("chroot-dir {}: {e}", dir.display())))?;
    }
    if config.run_as_user.is_none() {
        warn!("run-as-user is not set: the network process keeps running as root");
    }
    sandbox::confine(&identity)?;
    if config.isolate_workers {
        sandbox::restrict_system_calls()?;
    }
    info!(
        "network process confined{}{}{}",
        config
            .run_as_user
            .as_deref()
            .map(|u| format!(" as user {u}"))
            .unwrap_or_default(),
        config
            .chroot_dir
            .as_deref()
            .map(|d| format!(" in {}", d.display()))
            .unwrap_or_default(),
        if config.isolate_workers {
            " with a system-call filter (isolate-workers)"
        } else {
            ""
        }
    );
    Ok((runtime, sockets, tun))
}

/// What the main process's control channel carries to the async side.
enum Control {
    Configure(Box<WorkerSetup>),
    StopAccepting,
    Stop,
}

async fn serve(
    server: Arc<Server>,
    tcp: Vec<std::net::TcpListener>,
    metrics: Option<std::net::TcpListener>,
    control_socket: Option<(std::os::unix::net::UnixListener, PathBuf)>,
    control: Channel,
    links: Arc<Links>,
    has_udp: bool,
) -> Result<(), WorkerError> {
    let mut tasks = tokio::task::JoinSet::new();
    let listen_err = |e: std::io::Error| WorkerError::Setup(format!("listener: {e}"));
    for l in tcp {
        let listener = tokio::net::TcpListener::from_std(l).map_err(listen_err)?;
        tasks.spawn(server.clone().run_listener(listener));
    }
    if let Some(l) = metrics {
        let listener = tokio::net::TcpListener::from_std(l).map_err(listen_err)?;
        tasks.spawn(server.clone().run_metrics(listener));
    }
    if let Some((l, _)) = control_socket {
        let listener = tokio::net::UnixListener::from_std(l).map_err(listen_err)?;
        tasks.spawn(server.clone().run_control(listener));
    }
    tasks.spawn(server.clone().run_tun_reader());
    if has_udp {
        tasks.spawn(server.clone().run_udp_dispatcher());
    }
    let (commands_tx, mut commands) = mpsc::channel(1);
    let (replies_tx, replies) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("main-control".into())
        .spawn(move || relay_control(control, commands_tx, replies))
        .map_err(|e| WorkerError::Setup(format!("control thread: {e}")))?;
    tasks.spawn(ignore_signals());
    let mut admin = server.admin_requests();
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(Control::Configure(setup)) => {
                    let reply = match runtime_from_setup(&setup, &links) {
                        Ok(runtime) => {
                            server.reload(runtime);
                            CommandReply::Done
                        }
                        Err(e) => CommandReply::Failed(e.to_string()),
                    };
                    let _ = replies_tx.send(reply);
                }
                Some(Control::StopAccepting) => {
                    server.stop_accepting();
                    let _ = replies_tx.send(CommandReply::Done);
                }
                Some(Control::Stop) | None => break,
            },
            finished = tasks.join_next() => {
                // Every task here runs for the life of the process: one that ends is a
                // fault, and the main process starts a new network process.
                let why = match finished {
                    Some(Err(e)) if e.is_panic() => "panicked".to_string(),
                    Some(Err(e)) => e.to_string(),
                    _ => "ended".to_string(),
                };
                error!("a long-lived task of the network process {why}; exiting so that the main process restarts it");
                std::process::exit(1);
            }
            changed = admin.changed() => {
                if changed.is_err() {
                    continue;
                }
                let request = *admin.borrow_and_update();
                let forwarded = match request {
                    Some(AdminRequest::Reload) => MainRequest::Reload,
                    Some(AdminRequest::Stop) => MainRequest::Stop,
                    None => continue,
                };
                links.main(forwarded).await;
            }
        }
    }
    info!("shutting down; disconnecting {} clients", server.active());
    server.shut_down();
    server.drained().await;
    tasks.abort_all();
    let _ = replies_tx.send(CommandReply::Done);
    Ok(())
}

/// The main process decides when the other processes stop or reload; signals sent to the
/// whole process group (`kill -- -PID`, systemd's control group) are for it, so here they
/// are only noted.
async fn ignore_signals() {
    let Some(mut signals) = GroupSignals::take("network process") else {
        return std::future::pending().await;
    };
    loop {
        signals.next().await;
        info!("signal ignored by the network process: the main process controls it");
    }
}

/// A signal sent to the server's whole process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupSignal {
    Hangup,
    Stop,
    Maintenance,
}

/// SIGHUP, SIGTERM/SIGINT and SIGUSR2 as the security module and the network process
/// receive them (the main process decides what happens).
#[derive(Debug)]
pub struct GroupSignals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    usr2: tokio::signal::unix::Signal,
}

impl GroupSignals {
    /// Takes the signals over for `who`; `None` (logged) when they cannot be.
    pub fn take(who: &str) -> Option<Self> {
        let taken = (|| {
            Ok::<_, std::io::Error>(Self {
                hup: signal(SignalKind::hangup())?,
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
                usr2: signal(SignalKind::user_defined2())?,
            })
        })();
        taken
            .inspect_err(|e| warn!("{who}: cannot take over its signals: {e}"))
            .ok()
    }

    pub async fn next(&mut self) -> GroupSignal {
        tokio::select! {
            _ = self.hup.recv() => GroupSignal::Hangup,
            _ = self.term.recv() => GroupSignal::Stop,
            _ = self.int.recv() => GroupSignal::Stop,
            _ = self.usr2.recv() => GroupSignal::Maintenance,
        }
    }
}

/// Reads the main process's commands (blocking) and hands them to the async side; the
/// async side's answer goes back on the same channel. The main process gone (end of the
/// channel) means stop.
fn relay_control(
    mut control: Channel,
    commands: mpsc::Sender<Control>,
    replies: std::sync::mpsc::Receiver<CommandReply>,
) {
    loop {
        let command = match control.recv::<WorkerCommand>() {
            Ok(r) => match r.msg {
                WorkerCommand::Configure(setup) => Control::Configure(Box::new(setup)),
                WorkerCommand::Stop => Control::Stop,
                WorkerCommand::StopAccepting => Control::StopAccepting,
                WorkerCommand::Start { .. } => {
                    let _ = control.send(&CommandReply::Failed("already started".into()), &[]);
                    continue;
                }
            },
            Err(e) => {
                error!("network process: the main process is gone ({e}); stopping");
                let _ = commands.blocking_send(Control::Stop);
                return;
            }
        };
        if commands.blocking_send(command).is_err() {
            return;
        }
        match replies.recv() {
            Ok(reply) => {
                if control.send(&reply, &[]).is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// Threads for the sessions: `worker-threads`, else half the CPUs (at least one). Most of a
/// packet's cost is kernel work done in the caller's system calls, and a session's packets
/// cross between tasks (tun reader, UDP port, tunnel): on few cores, fewer threads mean
/// fewer cross-thread wake-ups (measured on 2 CPUs: one thread moves ~30% more through a
/// tunnel than two).
fn worker_threads(configured: Option<u32>) -> usize {
    configured
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)))
}
