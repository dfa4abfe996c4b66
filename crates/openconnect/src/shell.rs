//! What every protocol's tunnel shares in the client: signals, the vpnc-script runs, the
//! tun device's outgoing batch, privilege drop, going to the background and the pid file.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use oc_net::{run_script, Coalescer, PacketDevice, Reason, ScriptContext, ScriptTun, TunWriter};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing::{debug, error, info, warn};

use crate::cli::Options;
use crate::error::ClientError;
use crate::{next_reconnect_interval, Finished};

/// openconnect's signals: SIGINT/SIGTERM log off, SIGHUP detaches without logging off,
/// SIGUSR1 prints statistics, SIGUSR2 reconnects.
pub(crate) struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
    usr1: Signal,
    usr2: Signal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sig {
    Cancel,
    Detach,
    Stats,
    Reconnect,
}

impl Signals {
    pub(crate) fn new() -> Result<Self, ClientError> {
        let make = |kind| {
            signal(kind)
                .map_err(|e| ClientError::System(format!("cannot install signal handler: {e}")))
        };
        Ok(Self {
            int: make(SignalKind::interrupt())?,
            term: make(SignalKind::terminate())?,
            hup: make(SignalKind::hangup())?,
            usr1: make(SignalKind::user_defined1())?,
            usr2: make(SignalKind::user_defined2())?,
        })
    }

    pub(crate) async fn recv(&mut self) -> Sig {
        tokio::select! {
            _ = self.int.recv() => Sig::Cancel,
            _ = self.term.recv() => Sig::Cancel,
            _ = self.hup.recv() => Sig::Detach,
            _ = self.usr1.recv() => Sig::Stats,
            _ = self.usr2.recv() => Sig::Reconnect,
        }
    }
}

pub(crate) const CANCELLED: &str = "User cancelled (SIGINT/SIGTERM); exiting.";
pub(crate) const DETACHED: &str = "User detached from session (SIGHUP); exiting.";

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Stats {
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tun_drops: u64,
}

impl Stats {
    pub(crate) fn sent(&mut self, len: usize) {
        self.tx_packets += 1;
        self.tx_bytes += len as u64;
    }

    pub(crate) fn received(&mut self, len: usize) {
        self.rx_packets += 1;
        self.rx_bytes += len as u64;
    }

    /// SIGUSR1's line; `channels` describes the protocol's channels.
    pub(crate) fn log(&self, channels: &str) {
        info!(
            "TX: {} packets ({} bytes), RX: {} packets ({} bytes), tun drops: {}; {channels}",
            self.tx_packets, self.tx_bytes, self.rx_packets, self.rx_bytes, self.tun_drops,
        );
    }
}

/// The vpnc-script as a tunnel uses it: run at each reason, or with `-S` started once as
/// the tunnel's packet device (then no reason runs, as in openconnect).
#[derive(Debug, Clone)]
pub(crate) struct VpncScript {
    command: String,
    is_device: bool,
}

impl VpncScript {
    pub(crate) fn new(opts: &Options) -> Self {
        Self {
            command: opts
                .script
                .clone()
                .unwrap_or_else(|| crate::DEFAULT_SCRIPT.to_string()),
            is_device: opts.script_tun,
        }
    }

    /// Runs the script for `reason`; a failure is logged, as openconnect does.
    pub(crate) fn run(&self, reason: Reason, ctx: &ScriptContext<'_>) {
        if self.is_device {
            return;
        }
        let script = &self.command;
        match run_script(script, reason, ctx) {
            Ok(status) if !status.success() => {
                error!(
                    "Script '{script}' returned error {}",
                    status.code().unwrap_or(-1)
                );
            }
            Ok(_) => {}
            Err(e) => error!("{e}"),
        }
    }

    /// The tunnel's packet device and its name: a tun device between the script's
    /// `pre-init` and `connect` runs, or the `-S` script itself (named `(script)`), given
    /// `ctx`'s variables and `VPNFD`.
    pub(crate) fn open_device(
        &self,
        interface: Option<&str>,
        ctx: &ScriptContext<'_>,
    ) -> Result<(TunSink, String), ClientError> {
        if self.is_device {
            let mut env = oc_net::script::script_env(Reason::Connect, ctx);
            env.retain(|(name, _)| name != "reason" && name != "TUNDEV");
            let script = ScriptTun::spawn(&self.command, env)?;
            return Ok((
                TunSink::new(PacketDevice::Script(script)),
                "(script)".into(),
            ));
        }
        self.run(
            Reason::PreInit,
            &ScriptContext {
                tundev: interface,
                ..*ctx
            },
        );
        let (tun, name) = oc_net::open_tun(interface)?;
        self.run(
            Reason::Connect,
            &ScriptContext {
                tundev: Some(&name),
                ..*ctx
            },
        );
        Ok((TunSink::new(PacketDevice::Tun(tun)), name))
    }
}

fn drop_privileges(name: &str) -> Result<(), ClientError> {
    use nix::unistd::{initgroups, setgid, setuid, User};
    let user = User::from_name(name)
        .map_err(|e| ClientError::System(format!("cannot look up user {name:?}: {e}")))?
        .ok_or_else(|| ClientError::Usage(format!("invalid user {name:?} for --setuid")))?;
    let cname = std::ffi::CString::new(name)
        .map_err(|_| ClientError::Usage(format!("invalid user {name:?} for --setuid")))?;
    initgroups(&cname, user.gid)
        .and_then(|()| setgid(user.gid))
        .and_then(|()| setuid(user.uid))
        .map_err(|e| ClientError::System(format!("failed to drop privileges to {name}: {e}")))
}

/// Once the tunnel is up: `--setuid`, `-b` and `--pid-file`, in openconnect's order.
/// Returns the pid file to remove at the end.
pub(crate) fn settle_in(opts: &Options) -> Result<Option<PathBuf>, ClientError> {
    if let Some(user) = &opts.setuid {
        drop_privileges(user)?;
    }
    if opts.background {
        nix::unistd::daemon(true, true)
            .map_err(|e| ClientError::System(format!("cannot continue in background: {e}")))?;
        info!("Continuing in background; pid {}", std::process::id());
    }
    let pid_file = opts.pid_file.clone();
    if let Some(p) = &pid_file {
        std::fs::write(p, format!("{}\n", std::process::id())).map_err(|e| {
            ClientError::System(format!("cannot write pid file {}: {e}", p.display()))
        })?;
    }
    Ok(pid_file)
}

/// Packets for the tun device, written a batch at a time.
pub(crate) struct TunSink {
    pub tun: PacketDevice,
    out: TunWriter,
    /// Made on the first write (about a megabyte of flow tables).
    coalescer: Option<Box<Coalescer>>,
}

impl TunSink {
    pub(crate) fn new(tun: PacketDevice) -> Self {
        Self {
            tun,
            out: TunWriter::new(),
            coalescer: None,
        }
    }

    /// Queues a received packet, writing the batch first when it is full.
    pub(crate) fn push(&mut self, packet: &[u8], stats: &mut Stats) {
        if self.out.is_full() {
            self.flush(stats);
        }
        stats.received(packet.len());
        self.out.push(packet);
    }

    /// Writes the queued packets. A refused write drops them, as a router would.
    pub(crate) fn flush(&mut self, stats: &mut Stats) {
        if self.out.is_empty() {
            return;
        }
        let coalescer = self.coalescer.get_or_insert_with(Box::default);
        if let Err(e) = self.out.flush_to(&self.tun, coalescer) {
            debug!("writing to the tun device: {e}");
            stats.tun_drops += 1;
        }
    }
}

/// The reconnect attempts after one loss: openconnect's growing interval between them,
/// given up on a lasting error or once `--reconnect-timeout` has passed.
pub(crate) struct Backoff {
    started: Instant,
    limit: Duration,
    interval: Duration,
}

impl Backoff {
    pub(crate) fn new(opts: &Options) -> Self {
        Self {
            started: Instant::now(),
            limit: Duration::from_secs(opts.reconnect_timeout),
            interval: Duration::ZERO,
        }
    }

    /// After a failed attempt: the error when it is lasting or time is up, else the wait
    /// before the next one. A signal can end the wait (`Some`, how the run ends); SIGUSR1
    /// prints `stats`.
    pub(crate) async fn failed(
        &mut self,
        e: ClientError,
        signals: &mut Signals,
        stats: &dyn Fn(),
    ) -> Result<Option<Finished>, ClientError> {
        if !e.is_transient() {
            return Err(e);
        }
        let elapsed = self.started.elapsed();
        if elapsed >= self.limit {
            return Err(ClientError::ReconnectTimeout {
                secs: self.limit.as_secs(),
                last: e.to_string(),
            });
        }
        self.interval = next_reconnect_interval(self.interval);
        let wait = self.interval.min(self.limit - elapsed);
        warn!("Reconnect failed ({e}); retrying in {}s", wait.as_secs());
        tokio::select! {
            () = tokio::time::sleep(wait) => Ok(None),
            sig = signals.recv() => Ok(match sig {
                Sig::Cancel => Some(Finished(CANCELLED.into())),
                Sig::Detach => Some(Finished(DETACHED.into())),
                Sig::Stats => {
                    stats();
                    None
                }
                Sig::Reconnect => {
                    debug!("already reconnecting");
                    None
                }
            }),
        }
    }
}
