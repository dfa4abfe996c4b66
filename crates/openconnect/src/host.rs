//! What the GlobalProtect and PPP tunnels do around their packets, the same way: the
//! vpnc-script with one environment, the tun device once the network is known (then the
//! move to the background and the pid file), the script's reconnect reasons, the
//! addresses a reconnect must give back, and the end.

use std::net::IpAddr;
use std::path::PathBuf;

use oc_net::{Reason, ScriptContext};
use oc_proto::ip_config::IpConfig;
use tracing::{debug, info};

use crate::cli::Options;
use crate::error::ClientError;
use crate::shell::{settle_in, Stats, TunSink, VpncScript};

pub(crate) struct TunnelHost<'a> {
    opts: &'a Options,
    script: VpncScript,
    /// The gateway's address (the script's VPNGATEWAY).
    gateway: IpAddr,
    /// Made when the network first comes up, with its name.
    pub tun: Option<(TunSink, String)>,
    /// What the script was told.
    pub ip: IpConfig,
    pub stats: Stats,
    pid_file: Option<PathBuf>,
    /// `VPNPID` as the connect script saw it (kept after `-b` forks: vpnc-script names its
    /// backups after it).
    script_pid: u32,
    /// `attempt-reconnect` ran; `reconnect` runs when the network is up again.
    reconnecting: bool,
}

impl<'a> TunnelHost<'a> {
    pub(crate) fn new(opts: &'a Options, gateway: IpAddr) -> Self {
        Self {
            opts,
            script: VpncScript::new(opts),
            gateway,
            tun: None,
            ip: IpConfig::default(),
            stats: Stats::default(),
            pid_file: None,
            script_pid: std::process::id(),
            reconnecting: false,
        }
    }

    pub(crate) fn is_up(&self) -> bool {
        self.tun.is_some()
    }

    pub(crate) fn script_context(&self) -> ScriptContext<'_> {
        ScriptContext {
            // Before the device exists (pre-init), the name asked for, as upstream.
            tundev: self
                .tun
                .as_ref()
                .map(|(_, name)| name.as_str())
                .or(self.opts.interface.as_deref()),
            gateway: Some(self.gateway),
            pid: self.script_pid,
            log_level: self.opts.log_level(),
            tunnel: Some(&self.ip),
        }
    }

    /// The network is up with `ip`; `links` says how (`SSL connected and DTLS in
    /// progress`). The first time: the scripts, the tun device, openconnect's `Configured
    /// as` line, the background and pid file. Later (a reconnect): the same addresses or
    /// the session is treated as lost, and `reconnect` once after `attempt-reconnect`.
    pub(crate) fn network_up(&mut self, ip: IpConfig, links: &str) -> Result<(), ClientError> {
        if self.tun.is_some() {
            if ip.addresses() != self.ip.addresses() {
                return Err(ClientError::AddressChanged(format!(
                    "had {:?}, got {:?}",
                    self.ip.addresses(),
                    ip.addresses()
                )));
            }
            if std::mem::take(&mut self.reconnecting) {
                info!("Reconnected");
                self.run_script(Reason::Reconnect);
            }
            return Ok(());
        }
        self.ip = ip;
        let opened = self
            .script
            .open_device(self.opts.interface.as_deref(), &self.script_context())?;
        self.tun = Some(opened);
        let addrs: Vec<String> = self.ip.addresses().iter().map(IpAddr::to_string).collect();
        info!("Configured as {}, with {links}", addrs.join(" + "));
        debug!("Tunnel MTU {}", self.ip.mtu);
        self.pid_file = settle_in(self.opts)?;
        Ok(())
    }

    /// A loss before the tunnel ever came up is not worth a reconnect: the error that ends
    /// the run instead.
    pub(crate) fn give_up(&self, why: &str) -> Option<ClientError> {
        (!self.is_up()).then(|| ClientError::System(format!("the tunnel did not come up: {why}")))
    }

    /// The script's `attempt-reconnect`, once per loss, when the tunnel exists.
    pub(crate) fn attempt_reconnect(&mut self) {
        if self.tun.is_some() && !self.reconnecting {
            self.reconnecting = true;
            self.run_script(Reason::AttemptReconnect);
        }
    }

    /// Packets for the tun device (dropped before it exists); [`TunnelHost::flush`] writes
    /// them.
    pub(crate) fn deliver(&mut self, packet: &[u8]) {
        if let Some((sink, _)) = self.tun.as_mut() {
            sink.push(packet, &mut self.stats);
        }
    }

    pub(crate) fn flush(&mut self) {
        if let Some((sink, _)) = self.tun.as_mut() {
            sink.flush(&mut self.stats);
        }
    }

    /// The end: `disconnect` if the tunnel was ever up, the pid file removed.
    pub(crate) fn finish(&self) {
        if self.tun.is_some() {
            self.run_script(Reason::Disconnect);
        }
        if let Some(p) = &self.pid_file {
            let _ = std::fs::remove_file(p);
        }
    }

    fn run_script(&self, reason: Reason) {
        self.script.run(reason, &self.script_context());
    }
}
