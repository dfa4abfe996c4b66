//! `ocserv`: the command line, daemonising and the pid file; then the main process
//! (`ocserv::supervisor`), or, when started by it with `--internal-role`, the security
//! module (`ocserv::secmod`) or the network process (`ocserv::worker`).

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;
use oc_net::log::{self, LogSettings};
use ocserv::channel::Channel;
use ocserv::config;
use ocserv::secmod::SecMod;
use ocserv::supervisor::{Launch, Supervisor};
use tracing::{error, warn};

const ABOUT: &str = "AnyConnect-compatible VPN server (ferroconnect), compatible with ocserv 1.x";

const LONG_ABOUT: &str = "\
AnyConnect-compatible SSL VPN server. Reads an ocserv.conf, authenticates Cisco AnyConnect \
and OpenConnect clients (password file made by ocpasswd, one-time passwords from a liboath \
users file, and/or client certificates), \
hands each an address from the configured pools and forwards their packets over TLS (CSTP) \
or DTLS through one tun device.

Privilege-separated as ocserv: a privileged main process (scripts, routes, reload, \
supervision), a security module that alone holds the private key and reads the password \
and OTP files, and one network process serving every session as run-as-user, without \
capabilities (and with a system-call filter when isolate-workers = true). All sessions \
share one tun device, named after the `device` key (vpns0, ...). Configuration keys follow ocserv(8); keys \
not supported yet are named in a warning, and a security setting that is not enforced stops \
the server, naming the key and line.";

const AFTER_HELP: &str = "\
SIGNALS
    SIGHUP    reload the configuration, certificates and per-user/group files; connected
              users keep their sessions, new connections get the new settings
    SIGTERM, SIGINT
              shut down: every client is sent a disconnect, the tun device is removed
              (send them to the main process: the others take orders from it only)

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

PROCESSES
    ocserv runs as three processes, as ocserv 1.x does. The main process (this pid, root)
    runs connect-script/disconnect-script, kernel routes and ping-leases, reloads and
    supervises. The security module (root, no network) alone reads server-key, the password
    and OTP files (keep them root:root 0600) and keeps the sessions. The network process
    serves clients as run-as-user/run-as-group with no capabilities and no_new_privs,
    chrooted to chroot-dir when set, and under a seccomp allow-list with
    isolate-workers = true; its TLS handshakes are signed by the security module. A
    network process that dies is started again (clients reconnect with their cookies); if
    the security module dies, ocserv exits with status 1.

PERFORMANCE
    worker-threads = N (ours) sets the threads that run sessions; the default is half the
    CPUs, at least one (most of a packet's cost is kernel work, and fewer threads mean
    fewer cross-thread wake-ups per packet). The tun device and the UDP port use the
    kernel's offloads when it has them: TSO/USO super-packets on the tun, UDP GSO and GRO
    on the DTLS socket, so one system call moves a run of packets.

EXIT STATUS
    0  clean shutdown, or -t found no errors
    1  configuration errors (each listed with file and line), startup failure, or the
       security module died

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
    disable_version_flag = true,
    args_override_self = true
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
    /// Debug level, 0 to 9999: 1 basic, 2 info, 3 debug, 4 and above trace (ocserv's
    /// HTTP/TLS levels). Given more than once, the last one counts.
    #[arg(short = 'd', long = "debug", value_name = "N",
          value_parser = clap::value_parser!(u16).range(0..=9999))]
    debug: Option<u16>,
    /// Check the configuration, list every problem with file and line, and exit (0 = valid).
    #[arg(short = 't', long = "test-config")]
    test_config: bool,
    /// Write the process id to this file (overrides `pid-file`).
    #[arg(short = 'p', long = "pid-file", value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Log to stderr even when running in the background.
    #[arg(short = 'e', long = "log-stderr")]
    log_stderr: bool,
    /// Log to syslog even in the foreground.
    #[arg(short = 's', long = "syslog")]
    syslog: bool,
    /// The syslog facility: daemon (the default), user, auth, authpriv, local0 to local7.
    #[arg(long = "syslog-facility", value_name = "NAME", value_parser = parse_facility)]
    syslog_facility: Option<String>,
    /// Do not change to / when going to the background.
    #[arg(long = "no-chdir")]
    no_chdir: bool,
    /// Accepted for ocserv's command line; the processes stay non-dumpable (not traceable).
    #[arg(short = 'x', long = "traceable")]
    traceable: bool,
    /// Log format: text, or json (one object per line with timestamp, level, message and
    /// the session's user and id)
    #[arg(long, value_name = "FORMAT", value_enum, default_value = "text")]
    log_format: log::LogFormat,
    /// Print the version and the features compiled in (as ocserv lists them), and exit.
    #[arg(short = 'v', long = "version")]
    version: bool,
    /// Set by the main process when it starts the security module or the network process.
    #[arg(long = "internal-role", value_enum, hide = true)]
    internal_role: Option<Role>,
}

/// The processes besides the main one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Role {
    #[value(name = "secmod")]
    SecMod,
    #[value(name = "worker")]
    Worker,
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    // The command line's facility wins over the configuration's (read before logging
    // starts; the other processes get it on their command line).
    if cli.internal_role.is_none() {
        if cli.syslog_facility.is_none() {
            cli.syslog_facility = config::logging_setting_of(&cli.config, "syslog-facility");
        }
        // -d wins over log-level, as in ocserv.
        if cli.debug.is_none() {
            cli.debug = config::logging_setting_of(&cli.config, "log-level")
                .and_then(|level| level.parse().ok())
                .filter(|level| *level <= 9999);
        }
    }
    if cli.version {
        print_version();
        return ExitCode::SUCCESS;
    }
    if cli.test_config {
        return test_config(&cli.config);
    }
    let daemon = !cli.foreground && cli.internal_role.is_none();
    log::init(LogSettings {
        program: "ocserv",
        level: match cli.debug.unwrap_or(1) {
            0..=2 => 1,
            3 => 2,
            _ => 3,
        },
        timestamp: true,
        syslog: logs_to_syslog(&cli),
        stdout_reserved: true,
        format: cli.log_format,
        facility: cli
            .syslog_facility
            .as_deref()
            .and_then(log::facility_code)
            .unwrap_or(log::FACILITY_DAEMON),
    });
    if cli.traceable && cli.internal_role.is_none() {
        warn!("--traceable: ignored; the server's processes stay non-dumpable");
    }
    // A panic anywhere (a connection's task, a channel's thread) is logged where the admin
    // looks, with the role of the process, besides the standard report on stderr.
    let role = cli.internal_role;
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        error!("panic in the {}: {info}", role_name(role));
        report(info);
    }));
    let result = match cli.internal_role {
        Some(Role::SecMod) => run_secmod(&cli),
        Some(Role::Worker) => run_worker(),
        None => run_main(cli, daemon),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Syslog when asked for, or in the background unless -e asks for stderr.
fn logs_to_syslog(cli: &Cli) -> bool {
    cli.syslog || !(cli.foreground || cli.log_stderr)
}

/// A syslog facility name that [`log::facility_code`] knows, kept as given (the other
/// processes get it on their command line).
fn parse_facility(name: &str) -> Result<String, String> {
    match log::facility_code(name) {
        Some(_) => Ok(name.to_string()),
        None => Err(format!(
            "unknown syslog facility {name:?} (daemon, user, auth, authpriv, local0 to local7)"
        )),
    }
}

/// ocserv's `--version`: the version, then "Compiled with:" and the features in ocserv's
/// names, which upstream's tests look for (`oath` before running the OTP tests).
fn print_version() {
    println!("ocserv {} (ferroconnect)", env!("CARGO_PKG_VERSION"));
    println!();
    println!("Compiled with: seccomp, oath, radius, gssapi, PAM, oidc_auth, AnyConnect");
    println!("TLS library: {}", openssl::version::version());
}

fn role_name(role: Option<Role>) -> &'static str {
    match role {
        None => "main process",
        Some(Role::SecMod) => "security module",
        Some(Role::Worker) => "network process",
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

/// The channel to the main process, which it passes as our standard input.
fn channel_from_main(peer: &'static str) -> anyhow::Result<Channel> {
    let fd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .context("no channel from the main process on standard input")?;
    Ok(Channel::new(fd, peer))
}

fn run_secmod(cli: &Cli) -> anyhow::Result<()> {
    let control = channel_from_main("main process")?;
    ocserv::sandbox::harden_privileged().context("security module")?;
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("security module: signal handling")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || signals.block_on(secmod_signals()))
        .context("security module: signal thread")?;
    SecMod::new(cli.config.clone())
        .context("security module: cannot start its accounting thread")?
        .serve_main(control)
}

/// As ocserv's sec-mod: SIGTERM or SIGINT ends the security module (the main process then
/// stops the server); SIGHUP is the main process's to act on, and it tells us to reload.
async fn secmod_signals() {
    use ocserv::worker::{GroupSignal, GroupSignals};
    let Some(mut signals) = GroupSignals::take("security module") else {
        return std::future::pending().await;
    };
    loop {
        match signals.next().await {
            GroupSignal::Hangup => {
                tracing::info!(
                    "SIGHUP left to the main process, which reloads the security module"
                );
            }
            GroupSignal::Maintenance => {}
            GroupSignal::Stop => {
                tracing::info!("security module: stopping on a signal");
                std::process::exit(0);
            }
        }
    }
}

fn run_worker() -> anyhow::Result<()> {
    let control = channel_from_main("main process")?;
    ocserv::worker::run(control)?;
    Ok(())
}

/// The command line the other processes get (the same logging, no daemonising).
fn child_args(cli: &Cli) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> =
        vec!["-f".into(), "-c".into(), cli.config.clone().into()];
    if let Some(d) = cli.debug {
        args.extend(["-d".into(), d.to_string().into()]);
    }
    if logs_to_syslog(cli) {
        args.push("--syslog".into());
    }
    if let Some(facility) = &cli.syslog_facility {
        args.extend(["--syslog-facility".into(), facility.into()]);
    }
    let format = match cli.log_format {
        log::LogFormat::Text => "text",
        log::LogFormat::Json => "json",
    };
    args.extend(["--log-format".into(), format.into()]);
    args
}

fn run_main(mut cli: Cli, daemon: bool) -> anyhow::Result<()> {
    let loaded = config::load(&cli.config, false)?;
    for w in loaded
        .warnings
        .iter()
        .chain(ocserv::server::not_yet_used(&loaded.config).iter())
    {
        warn!("{w}");
    }
    if loaded.config.tcp_port.is_none() {
        bail!("{}: tcp-port is not set", cli.config.display());
    }
    // The security module, the network process and every reload read the configuration
    // again by this path, after daemon() has moved to /: a relative one must not change
    // meaning.
    cli.config = std::path::absolute(&cli.config)
        .with_context(|| format!("{}: cannot make the path absolute", cli.config.display()))?;
    if daemon {
        nix::unistd::daemon(cli.no_chdir, cli.log_stderr)
            .context("cannot run in the background")?;
    }
    // A process group of our own, as ocserv: the security module and the network process
    // are in it, so `kill -- -PID` stops all three. Fails only when we already lead a
    // session (after daemon()), and then we lead our group too.
    let _ = nix::unistd::setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(0));
    let pid_file = cli
        .pid_file
        .clone()
        .or_else(|| loaded.config.pid_file.clone());
    if let Some(path) = &pid_file {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write pid file {}", path.display()))?;
    }
    let launch = Launch {
        config_path: cli.config.clone(),
        args: child_args(&cli),
    };
    let occtl_socket = loaded.config.occtl_socket();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = tokio.block_on(async {
        let supervisor = Supervisor::start(launch)?;
        supervisor.run(notify_ready).await
    });
    for path in pid_file.iter().chain(occtl_socket.iter()) {
        let _ = std::fs::remove_file(path);
    }
    Ok(result?)
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
