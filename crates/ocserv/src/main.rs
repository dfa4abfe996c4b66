//! `ocserv`: the command line, daemonising, privileges, signals; the server itself is in
//! `ocserv::server`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Parser;
use oc_net::log::{self, LogSettings};
use ocserv::config;
use ocserv::server::{create_tun, describe_pools, AdminRequest, Runtime, Server};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

const ABOUT: &str = "AnyConnect-compatible VPN server (ferroconnect), compatible with ocserv 1.x";

const LONG_ABOUT: &str = "\
AnyConnect-compatible SSL VPN server. Reads an ocserv.conf, authenticates Cisco AnyConnect \
and OpenConnect clients (password file made by ocpasswd, one-time passwords from a liboath \
users file, and/or client certificates), \
hands each an address from the configured pools and forwards their packets over TLS (CSTP) \
or DTLS through one tun device.

All sessions are served by this one process; the tun device is named after the `device` \
key (vpns0, ...) and is shared by every client. Configuration keys follow ocserv(8); keys \
not supported yet are named in a warning (and refused by -t when they affect security).";

const AFTER_HELP: &str = "\
SIGNALS
    SIGHUP    reload the configuration, certificates and per-user/group files; connected
              users keep their sessions, new connections get the new settings
    SIGTERM, SIGINT
              shut down: every client is sent a disconnect, the tun device is removed

ONE-TIME PASSWORDS
    auth = \"plain[passwd=/etc/ocserv/ocpasswd,otp=/etc/ocserv/users.oath]\" asks for a
    code after the password; plain[otp=FILE] takes the code in place of the password. The
    users file is liboath's (HOTP, HOTP/T30, HOTP/T60/8 ... lines: TYPE USER PIN HEXKEY
    [COUNTER [LASTOTP [TIME]]]); each used code is recorded there, so it cannot be used again.
    HOTP looks 20 counters ahead; TOTP allows two steps of clock drift each way.

COMPRESSION
    Off by default. compression = true lets clients that offer it compress packets:
    oc-lz4 and lzs on both channels (stateless, one packet at a time), deflate on TLS only
    (one stream per connection). Among the client's offers the highest
    compression-algo-priority wins (defaults oc-lz4:90, lzs:80, deflate:70; one
    ALGORITHM:PRIORITY per line, e.g. compression-algo-priority = lzs:95). Packets of at
    most no-compress-limit bytes (default 256, minimum 64) and packets that do not shrink
    are sent as they are, which keeps small interactive packets fast. Trade-off:
    compressing before encrypting lets an attacker who can inject traffic and watch packet
    sizes recover secrets from the same stream (CRIME/VORACLE); enable it only for slow
    links carrying compressible data.

CONTROL, METRICS, LOGS
    use-occtl = true opens occtl-socket-file (default /var/run/occtl.socket, root only) for
    occtl (show users/status/sessions/ip bans/events, disconnect, terminate, unban,
    reload, stop now; -j for JSON). metrics-listen = 127.0.0.1:9616 serves Prometheus
    metrics at /metrics (sessions, auth failures by reason, bans, bytes and packets per
    direction and transport, DTLS fallbacks, TLS handshake times, pool leases, bytes per
    user for at most 256 users). --log-format json writes one JSON object per line, each
    in a span with the peer, user and session id; stats-report-time adds interim byte
    counts per tunnel, with session totals that survive reconnects.

PERFORMANCE
    worker-threads = N (ours) sets the threads that run sessions; the default is half the
    CPUs, at least one (most of a packet's cost is kernel work, and fewer threads mean
    fewer cross-thread wake-ups per packet). The tun device and the UDP port use the
    kernel's offloads when it has them: TSO/USO super-packets on the tun, UDP GSO and GRO
    on the DTLS socket, so one system call moves a run of packets.

EXIT STATUS
    0  clean shutdown, or -t found no errors
    1  configuration errors (each listed with file and line), or startup failure

EXAMPLES
    ocserv -t -c /etc/ocserv/ocserv.conf     check a configuration and exit
    ocserv -f -d 1 -c /etc/ocserv/ocserv.conf   run in the foreground, logging to stderr
    ocpasswd -c /etc/ocserv/ocpasswd alice    add a user to the password file";

#[derive(Debug, Parser)]
#[command(
    name = "ocserv",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    disable_version_flag = true
)]
struct Cli {
    /// Configuration file.
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        default_value = "/etc/ocserv/ocserv.conf"
    )]
    config: PathBuf,
    /// Stay in the foreground (log to stderr).
    #[arg(short = 'f', long = "foreground")]
    foreground: bool,
    /// Debug level: 1 basic, 2 info, 3 debug, 4 and above trace (ocserv's HTTP/TLS levels).
    #[arg(short = 'd', long = "debug", value_name = "N")]
    debug: Option<u8>,
    /// Check the configuration, list every problem with file and line, and exit (0 = valid).
    #[arg(short = 't', long = "test-config")]
    test_config: bool,
    /// Write the process id to this file (overrides `pid-file`).
    #[arg(short = 'p', long = "pid-file", value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Log to stderr even when running in the background.
    #[arg(long = "log-stderr")]
    log_stderr: bool,
    /// Log to syslog even in the foreground.
    #[arg(long = "syslog")]
    syslog: bool,
    /// Log format: text, or json (one object per line with timestamp, level, message and
    /// the session's user and id)
    #[arg(long, value_name = "FORMAT", value_enum, default_value = "text")]
    log_format: log::LogFormat,
    /// Print the version and exit.
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version)]
    version: (),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.test_config {
        return test_config(&cli.config);
    }
    let daemon = !cli.foreground;
    log::init(LogSettings {
        program: "ocserv",
        level: match cli.debug.unwrap_or(1) {
            0..=2 => 1,
            3 => 2,
            _ => 3,
        },
        timestamp: true,
        syslog: cli.syslog || (daemon && !cli.log_stderr),
        stdout_reserved: true,
        format: cli.log_format,
    });
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn test_config(path: &std::path::Path) -> ExitCode {
    match config::load(path, true) {
        Ok(loaded) => {
            let pending = ocserv::server::not_yet_used(&loaded.config);
            for w in loaded.warnings.iter().chain(pending.iter()) {
                eprintln!("warning: {w}");
            }
            println!("{}: configuration is valid", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let (runtime, warnings) = Runtime::load(&cli.config)?;
    for w in &warnings {
        warn!("{w}");
    }
    let config = &runtime.config;
    let Some(port) = config.tcp_port else {
        bail!("{}: tcp-port is not set", cli.config.display());
    };
    let hosts: Vec<String> = match &config.listen_host {
        Some(h) => vec![h.clone()],
        None => vec!["::".into()],
    };
    // Everything that needs root happens before privileges are dropped.
    let mut listeners = Vec::new();
    for host in &hosts {
        let addr = format!("{}:{port}", bracket(host));
        let listener = bind(&addr).with_context(|| format!("cannot listen on {addr}"))?;
        listeners.push(listener);
    }
    // One UDP socket for every session's DTLS, on the first listen address.
    let udp = match config.udp_port {
        Some(udp_port) => {
            let addr = format!(
                "{}:{udp_port}",
                bracket(&hosts.first().cloned().unwrap_or_default())
            );
            let socket = std::net::UdpSocket::bind(&addr)
                .with_context(|| format!("cannot listen on UDP {addr}"))?;
            socket.set_nonblocking(true)?;
            Some(socket)
        }
        None => None,
    };
    let metrics = match config.metrics_listen {
        Some(addr) => Some(
            bind(&addr.to_string())
                .with_context(|| format!("cannot listen on {addr} (metrics-listen)"))?,
        ),
        None => None,
    };
    let control = if config.use_occtl {
        let path = config
            .occtl_socket_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_OCCTL_SOCKET));
        Some((bind_control(&path)?, path))
    } else {
        None
    };
    let port_note = match config.udp_port {
        Some(u) => format!("listening on TCP port {port} and UDP port {u}"),
        None => format!("listening on TCP port {port}"),
    };
    if !cli.foreground {
        nix::unistd::daemon(false, cli.log_stderr).context("cannot run in the background")?;
    }
    let pid_file = cli.pid_file.clone().or_else(|| config.pid_file.clone());
    if let Some(path) = &pid_file {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write pid file {}", path.display()))?;
    }
    // The tun device registers with the async runtime, so it is made inside it (and after
    // forking into the background, which must happen before any thread exists).
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads(config.worker_threads))
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = tokio.block_on(async {
        let (tun, tun_name) = create_tun(&runtime.config)?;
        info!(
            "{port_note}; tun device {tun_name} with {}",
            describe_pools(&runtime.config)
        );
        drop_privileges(
            runtime.config.run_as_user.as_deref(),
            runtime.config.run_as_group.as_deref(),
        )?;
        let sockets = Sockets {
            tcp: listeners,
            udp,
            metrics,
            control,
        };
        serve(cli.config.clone(), runtime, tun, tun_name, sockets).await
    });
    if let Some(path) = &pid_file {
        let _ = std::fs::remove_file(path);
    }
    result
}

fn bracket(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Pending connections the kernel queues for accept: std's 128 overflows under a
/// connection flood, leaving attackers' connections hanging half-open.
const LISTEN_BACKLOG: i32 = 4096;

fn bind(addr: &str) -> anyhow::Result<std::net::TcpListener> {
    use nix::sys::socket::{
        bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
        SockaddrStorage,
    };
    use std::net::ToSocketAddrs;
    use std::os::fd::AsRawFd;
    let sa = addr
        .to_socket_addrs()?
        .next()
        .with_context(|| format!("{addr} resolves to no address"))?;
    let family = if sa.is_ipv6() {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let fd = socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    bind(fd.as_raw_fd(), &SockaddrStorage::from(sa))?;
    listen(&fd, Backlog::new(LISTEN_BACKLOG)?)?;
    Ok(std::net::TcpListener::from(fd))
}

/// Sockets opened before privileges are dropped.
struct Sockets {
    tcp: Vec<std::net::TcpListener>,
    udp: Option<std::net::UdpSocket>,
    metrics: Option<std::net::TcpListener>,
    /// occtl's control socket and its path.
    control: Option<(std::os::unix::net::UnixListener, PathBuf)>,
}

/// ocserv's default `occtl-socket-file`.
const DEFAULT_OCCTL_SOCKET: &str = "/var/run/occtl.socket";

/// Binds the control socket, readable and writable by root only (occtl needs root, as
/// with ocserv). A socket left by an earlier run is replaced; any other file is an error.
fn bind_control(path: &std::path::Path) -> anyhow::Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            bail!(
                "occtl-socket-file {} exists and is not a socket; not replacing it",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove the old socket {}", path.display()))?;
    }
    // No window in which others could connect: create it under a tight umask.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = std::os::unix::net::UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener =
        bound.with_context(|| format!("cannot create the control socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

async fn serve(
    config_path: PathBuf,
    runtime: Runtime,
    tun: tun_rs::AsyncDevice,
    tun_name: String,
    sockets: Sockets,
) -> anyhow::Result<()> {
    let udp = sockets
        .udp
        .map(tokio::net::UdpSocket::from_std)
        .transpose()?;
    let server = Server::new(runtime, tun, tun_name, udp)?;
    let mut tasks = Vec::new();
    for l in sockets.tcp {
        let listener = tokio::net::TcpListener::from_std(l)?;
        tasks.push(tokio::spawn(server.clone().run_listener(listener)));
    }
    if let Some(l) = sockets.metrics {
        let listener = tokio::net::TcpListener::from_std(l)?;
        tasks.push(tokio::spawn(server.clone().run_metrics(listener)));
    }
    let control_path = match sockets.control {
        Some((l, path)) => {
            let listener = tokio::net::UnixListener::from_std(l)?;
            tasks.push(tokio::spawn(server.clone().run_control(listener)));
            Some(path)
        }
        None => None,
    };
    let tun_task = tokio::spawn(server.clone().run_tun_reader());
    tasks.push(tokio::spawn(server.clone().run_udp_dispatcher()));
    notify_ready();
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut admin = server.admin_requests();
    loop {
        tokio::select! {
            _ = hup.recv() => reload(&server, &config_path),
            _ = term.recv() => break,
            _ = int.recv() => break,
            changed = admin.changed() => {
                if changed.is_err() {
                    continue;
                }
                let request = *admin.borrow_and_update();
                match request {
                    Some(AdminRequest::Reload) => reload(&server, &config_path),
                    Some(AdminRequest::Stop) => {
                        info!("occtl asked the server to stop");
                        break;
                    }
                    None => {}
                }
            }
        }
    }
    info!("shutting down; disconnecting {} clients", server.active());
    server.shut_down();
    server.drained().await;
    for t in tasks {
        t.abort();
    }
    tun_task.abort();
    drop(server);
    if let Some(path) = control_path {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

fn reload(server: &Arc<Server>, path: &std::path::Path) {
    match Runtime::load(path) {
        Ok((runtime, warnings)) => {
            for w in &warnings {
                warn!("{w}");
            }
            server.reload(runtime);
            info!("configuration reloaded from {}", path.display());
        }
        Err(e) => error!("reload failed, keeping the running configuration: {e}"),
    }
}

/// Tells systemd (Type=notify) that we are listening.
fn notify_ready() {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|addr| sock.send_to_addr(b"READY=1\n", &addr))
    } else {
        sock.send_to(b"READY=1\n", &path)
    };
    if let Err(e) = sent {
        warn!("sd_notify: {e}");
    }
}

fn drop_privileges(user: Option<&str>, group: Option<&str>) -> anyhow::Result<()> {
    use nix::unistd::{setgid, setgroups, setuid, Group, User};
    if let Some(group) = group {
        let g =
            Group::from_name(group)?.with_context(|| format!("run-as-group: no group {group}"))?;
        setgroups(&[g.gid]).context("setgroups")?;
        setgid(g.gid).context("setgid")?;
    }
    if let Some(user) = user {
        let u = User::from_name(user)?.with_context(|| format!("run-as-user: no user {user}"))?;
        if group.is_none() {
            setgroups(&[u.gid]).context("setgroups")?;
            setgid(u.gid).context("setgid")?;
        }
        setuid(u.uid).context("setuid")?;
        info!("running as user {user}");
    }
    Ok(())
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
