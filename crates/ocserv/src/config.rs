//! `ocserv.conf` and the per-user / per-group override files, read the way ocserv 1.x reads them.
//!
//! The syntax is ocserv's flavour of INI (inih as ocserv configures it):
//!
//! - `key = value` (ocserv's inih also accepts `key: value`, so do we);
//! - `#` or `;` at the start of a line is a comment; `#` after whitespace ends the value
//!   (an inline comment) — except inside double quotes (see the `lexer` module);
//! - a value may be wrapped in double quotes, which are removed;
//! - an *indented* line continues the previous key: it is one more value of that key;
//! - `[vhost:NAME]` starts a virtual-host section (see the `vhost` module for what it
//!   inherits and which keys it may not set).
//!
//! Everything is collected before failing: [`load`] and [`parse`] report every problem in the
//! file at once, each with its file and line, because an administrator fixing a config one
//! error per restart is a miserable experience.
//!
//! Unknown keys are warnings (ocserv does the same). Keys ocserv knows but we do not implement
//! yet are warnings too, unless ignoring them would make the server *less secure* than the
//! administrator asked for (`ocsp-response`, ...): those are errors, always (at start-up, on
//! reload and under `-t`), each naming its key and line and saying how to proceed (remove the
//! line, or set the key to its "off" value, which stays accepted). Keys that parse but have no
//! effect yet (`ban-time`, `try-mtu-discovery = true`, `server-stats-reset-time`,
//! `cisco-client-compat = true`, ...) are warnings naming key and line. Authentication methods we cannot perform (`pam`, `radius`,
//! `gssapi`, `oidc`) are always errors: nobody could log in.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

mod file_checks;
mod global;
mod lexer;
mod net;
mod overrides;
#[cfg(test)]
mod tests;
mod value;
mod vhost;

/// Values ocserv uses when a key is absent (ocserv 1.x `src/vpn.h` and `apply_default_conf`;
/// the numbers are the ones recent ocserv releases compile in, which are also what the
/// sample config spells out).
pub mod defaults {
    /// Tun device name prefix (`device`).
    pub const DEVICE: &str = "vpns";
    /// `dpd`, seconds.
    pub const DPD: u32 = 90;
    /// `mobile-dpd`, seconds.
    pub const MOBILE_DPD: u32 = 1800;
    /// `keepalive`, seconds.
    pub const KEEPALIVE: u32 = 32400;
    /// `cookie-timeout`, seconds.
    pub const COOKIE_TIMEOUT: u32 = 300;
    /// `auth-timeout`, seconds.
    pub const AUTH_TIMEOUT: u32 = 240;
    /// `ban-time` (formerly `min-reauth-time`), seconds (ocserv's `DEFAULT_BAN_TIME`).
    pub const MIN_REAUTH_TIME: u32 = 300;
    /// `max-ban-score`.
    pub const MAX_BAN_SCORE: u32 = 80;
    /// `ban-reset-time`, seconds.
    pub const BAN_RESET_TIME: u32 = 1200;
    /// `ban-points-wrong-password`.
    pub const BAN_POINTS_WRONG_PASSWORD: u32 = 10;
    /// `ban-points-connection`.
    pub const BAN_POINTS_CONNECTION: u32 = 1;
    /// `ban-points-kkdcp`.
    pub const BAN_POINTS_KKDCP: u32 = 1;
    /// `rekey-time`, seconds.
    pub const REKEY_TIME: u32 = 172_800;
    /// `switch-to-tcp-timeout`, seconds.
    pub const SWITCH_TO_TCP_TIMEOUT: u32 = 25;
    /// `no-compress-limit`, bytes.
    pub const NO_COMPRESS_LIMIT: u32 = 256;
    /// ocserv raises a smaller `no-compress-limit` to this.
    pub const MIN_NO_COMPRESS_LIMIT: u32 = 64;
    /// `server-stats-reset-time`, seconds (a week).
    pub const SERVER_STATS_RESET_TIME: u32 = 604_800;
    /// `ipv6-subnet-prefix`: one address per client.
    pub const IPV6_SUBNET_PREFIX: u8 = 128;
    /// `occtl-socket-file`.
    pub const OCCTL_SOCKET: &str = "/var/run/occtl.socket";
}

/// One thing wrong (or worth a warning) in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file the problem is in (the main config, or a per-user/group file).
    pub file: PathBuf,
    /// 1-based line number; 0 means the file as a whole (e.g. a missing required key).
    pub line: usize,
    /// What is wrong, naming the key and what was expected.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file we tried to read.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but has errors; every one found is listed.
    #[error("{}", list_problems(.0))]
    Invalid(Vec<Problem>),
}

fn list_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A successfully loaded main config and the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The settings, with ocserv's defaults filled in.
    pub config: Config,
    /// Non-fatal problems (unknown keys, ignored sections, unsupported options, ...).
    pub warnings: Vec<Problem>,
}

/// One `auth` / `enable-auth` method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// `plain[passwd=FILE,otp=FILE]` (or the legacy `plain[FILE]`): an ocpasswd file, a
    /// liboath users file for a one-time password after it, or both (at least one).
    Plain {
        /// The ocpasswd file.
        passwd: Option<PathBuf>,
        /// The HOTP/TOTP users file (liboath format).
        otp: Option<PathBuf>,
    },
    /// `certificate`: a client certificate signed by `ca-cert`.
    Certificate,
    /// `pam[service=NAME,gid-min=N]`: the system's PAM stack, its prompts as forms.
    Pam(PamMethod),
    /// `radius[config=FILE,groupconfig=true,nas-identifier=NAME]`: a RADIUS server
    /// through radcli's configuration file.
    Radius(RadiusMethod),
    /// `gssapi[keytab=FILE,require-local-user-map=BOOL,tgt-freshness-time=SECS]`:
    /// SPNEGO (Kerberos, NTLM) over `Authorization: Negotiate`.
    Gssapi(GssapiMethod),
    /// `oidc[config=FILE]`: an OpenID Connect bearer token in `Authorization: Bearer`,
    /// checked against the provider's keys and the claims FILE (JSON) requires.
    Oidc { config: PathBuf },
}

/// The options of `auth = gssapi[...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GssapiMethod {
    /// `keytab`: the service keys (else the system's default keytab).
    pub keytab: Option<PathBuf>,
    /// `require-local-user-map` (default true): the principal must map to a local account
    /// name, which becomes the user name.
    pub require_local_user_map: bool,
    /// `tgt-freshness-time`: a Kerberos ticket-granting ticket older than this is refused.
    pub tgt_freshness_time: Option<u32>,
}

/// The options of `auth = radius[...]` and `acct = radius[...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RadiusMethod {
    /// `config`: radcli's `radiusclient.conf`.
    pub config: PathBuf,
    /// `groupconfig`: the Access-Accept's addresses, routes, DNS and limits apply to the
    /// session (ocserv's "sup-config").
    pub groupconfig: bool,
    /// `nas-identifier`: sent as NAS-Identifier.
    pub nas_identifier: Option<String>,
    /// `group-separator`: between the groups of a Class `OU=a;b` (`;` or `,`).
    pub group_separator: char,
}

impl AuthMethod {
    /// The method asks for the password (only one such method may be required at once).
    pub fn asks_password(&self) -> bool {
        matches!(self, Self::Plain { .. } | Self::Pam(_) | Self::Radius(_))
    }
}

/// The options of `auth = pam[...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PamMethod {
    /// `service`: the PAM service (`/etc/pam.d/NAME`), `ocserv` unless set.
    pub service: String,
    /// `gid-min`: the lowest group id `auto-select-group` offers.
    pub gid_min: u32,
}

/// The PAM service ocserv uses when `service` is not given.
pub const DEFAULT_PAM_SERVICE: &str = "ocserv";

/// `acct`: what is told of sessions, or asked before one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcctMethod {
    /// `pam`: the PAM account check (`pam_acct_mgmt` of service `ocserv`) before a
    /// session's tunnel starts; a refusal ends the CONNECT with 401.
    Pam,
    /// `radius[config=FILE,...]`: Accounting-Request Start, Interim-Update and Stop.
    Radius(RadiusMethod),
}

/// Where the user (or group) name is taken from in a client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertOid {
    /// A DN attribute by dotted OID, e.g. `2.5.4.3` (CN) or `0.9.2342.19200300.100.1.1` (UID).
    Oid(String),
    /// `SAN(rfc822name)`: the e-mail address in the subject alternative name.
    SanRfc822Name,
}

/// `rekey-method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RekeyMethod {
    /// `ssl`: renegotiate / key-update on the existing channel.
    #[default]
    Ssl,
    /// `new-tunnel`: ask the client to set up a new channel.
    NewTunnel,
}

/// Settings that per-user / per-group files can override. `None` = "not set here".
///
/// In [`Config::net`] the fields ocserv has a default for are filled in; in an override file
/// only what the file sets is `Some`, so [`NetSettings::overlay`] can apply it on top.
#[derive(Clone, Default, Debug, PartialEq)]
pub struct NetSettings {
    /// `route` lines (split-include). Empty together with `default_route = Some(true)` means
    /// "send everything through the VPN" (`route = default`, or no `route` at all globally).
    pub routes: Option<Vec<ipnet::IpNet>>,
    /// Whether the client gets a default route.
    pub default_route: Option<bool>,
    /// `no-route` lines (split-exclude).
    pub no_routes: Option<Vec<ipnet::IpNet>>,
    /// `iroute` (per-user/group only): networks behind this client, routed by the server.
    pub iroutes: Option<Vec<ipnet::IpNet>>,
    /// `dns` (and `ipv4-dns`, `ipv6-dns`).
    pub dns: Option<Vec<IpAddr>>,
    /// `nbns` (and `ipv4-nbns`, `ipv6-nbns`).
    pub nbns: Option<Vec<IpAddr>>,
    /// `split-dns` domains.
    pub split_dns: Option<Vec<String>>,
    /// `default-domain` (may be a space-separated list, as ocserv sends it verbatim).
    pub default_domain: Option<String>,
    /// `tunnel-all-dns`.
    pub tunnel_all_dns: Option<bool>,
    /// `client-bypass-protocol`: the client may send a family it got no address for
    /// outside the tunnel.
    pub client_bypass_protocol: Option<bool>,
    /// `ipv4-network` + `ipv4-netmask` (or `a.b.c.d/len`), host bits cleared.
    pub ipv4_network: Option<ipnet::Ipv4Net>,
    /// `ipv6-network` (`x::/len`, or `ipv6-prefix` for the length), host bits cleared.
    pub ipv6_network: Option<ipnet::Ipv6Net>,
    /// `ipv6-subnet-prefix`: the size of the network handed to each client.
    pub ipv6_subnet_prefix: Option<u8>,
    /// `explicit-ipv4` (per-user/group only).
    pub explicit_ipv4: Option<Ipv4Addr>,
    /// `explicit-ipv6` (per-user/group only).
    pub explicit_ipv6: Option<Ipv6Addr>,
    /// `mtu`; unset = the tun device's default.
    pub mtu: Option<u32>,
    /// `dpd`, seconds.
    pub dpd: Option<u32>,
    /// `mobile-dpd`, seconds.
    pub mobile_dpd: Option<u32>,
    /// `keepalive`, seconds.
    pub keepalive: Option<u32>,
    /// `idle-timeout`, seconds; unset or 0 = no idle timeout.
    pub idle_timeout: Option<u32>,
    /// `mobile-idle-timeout`, seconds; unset or 0 = none.
    pub mobile_idle_timeout: Option<u32>,
    /// `session-timeout`, seconds; unset or 0 = none.
    pub session_timeout: Option<u32>,
    /// `max-same-clients`; 0 = unlimited.
    pub max_same_clients: Option<u32>,
    /// `restrict-user-to-routes`.
    pub restrict_user_to_routes: Option<bool>,
    /// `restrict-user-to-ports`: the protocols and ports a client may reach (or, negated,
    /// may not); implies `restrict-user-to-routes`.
    pub restrict_user_to_ports: Option<oc_proto::port_filter::PortRules>,
    /// `deny-roaming`.
    pub deny_roaming: Option<bool>,
    /// `rx-data-per-sec`, bytes per second (ocserv's unit in the file; it divides by 1000
    /// internally, we do not).
    pub rx_data_per_sec: Option<u64>,
    /// `tx-data-per-sec`, bytes per second.
    pub tx_data_per_sec: Option<u64>,
    /// `hostname` (per-user/group only): overrides the hostname the client proposes.
    pub hostname: Option<String>,
    /// `stats-report-time`, seconds.
    pub stats_report_time: Option<u32>,
    /// `no-udp`: no DTLS, for everyone (main config) or for this user or group.
    pub no_udp: Option<bool>,
}

impl NetSettings {
    /// `self` with every field that is `Some` in `over` replaced by `over`'s value.
    ///
    /// This is ocserv's rule for config-per-user/group: a list present in the override file
    /// (routes, DNS, ...) replaces the global list rather than extending it.
    pub fn overlay(&self, over: &NetSettings) -> NetSettings {
        fn pick<T: Clone>(base: &Option<T>, over: &Option<T>) -> Option<T> {
            over.clone().or_else(|| base.clone())
        }
        NetSettings {
            routes: pick(&self.routes, &over.routes),
            default_route: pick(&self.default_route, &over.default_route),
            no_routes: pick(&self.no_routes, &over.no_routes),
            iroutes: pick(&self.iroutes, &over.iroutes),
            dns: pick(&self.dns, &over.dns),
            nbns: pick(&self.nbns, &over.nbns),
            split_dns: pick(&self.split_dns, &over.split_dns),
            default_domain: pick(&self.default_domain, &over.default_domain),
            tunnel_all_dns: pick(&self.tunnel_all_dns, &over.tunnel_all_dns),
            client_bypass_protocol: pick(
                &self.client_bypass_protocol,
                &over.client_bypass_protocol,
            ),
            ipv4_network: pick(&self.ipv4_network, &over.ipv4_network),
            ipv6_network: pick(&self.ipv6_network, &over.ipv6_network),
            ipv6_subnet_prefix: pick(&self.ipv6_subnet_prefix, &over.ipv6_subnet_prefix),
            explicit_ipv4: pick(&self.explicit_ipv4, &over.explicit_ipv4),
            explicit_ipv6: pick(&self.explicit_ipv6, &over.explicit_ipv6),
            mtu: pick(&self.mtu, &over.mtu),
            dpd: pick(&self.dpd, &over.dpd),
            mobile_dpd: pick(&self.mobile_dpd, &over.mobile_dpd),
            keepalive: pick(&self.keepalive, &over.keepalive),
            idle_timeout: pick(&self.idle_timeout, &over.idle_timeout),
            mobile_idle_timeout: pick(&self.mobile_idle_timeout, &over.mobile_idle_timeout),
            session_timeout: pick(&self.session_timeout, &over.session_timeout),
            max_same_clients: pick(&self.max_same_clients, &over.max_same_clients),
            restrict_user_to_routes: pick(
                &self.restrict_user_to_routes,
                &over.restrict_user_to_routes,
            ),
            restrict_user_to_ports: pick(
                &self.restrict_user_to_ports,
                &over.restrict_user_to_ports,
            ),
            deny_roaming: pick(&self.deny_roaming, &over.deny_roaming),
            rx_data_per_sec: pick(&self.rx_data_per_sec, &over.rx_data_per_sec),
            tx_data_per_sec: pick(&self.tx_data_per_sec, &over.tx_data_per_sec),
            hostname: pick(&self.hostname, &over.hostname),
            stats_report_time: pick(&self.stats_report_time, &over.stats_report_time),
            no_udp: pick(&self.no_udp, &over.no_udp),
        }
    }
}

/// The main config (`ocserv.conf`), defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file this was read from.
    pub path: PathBuf,
    /// All `auth` lines: every method must succeed.
    pub auth: Vec<AuthMethod>,
    /// `enable-auth` lines: any one of these is enough on its own.
    pub enable_auth: Vec<AuthMethod>,
    /// `acct`: `pam` checks the account before each tunnel; `radius[...]` reports sessions.
    pub acct: Option<AcctMethod>,
    /// `tcp-port` (required).
    pub tcp_port: Option<u16>,
    /// `udp-port`; unset = no DTLS.
    pub udp_port: Option<u16>,
    /// `listen-host`; unset = all addresses.
    pub listen_host: Option<String>,
    /// `udp-listen-host`: the DTLS socket's address, when not `listen-host`'s.
    pub udp_listen_host: Option<String>,
    /// `listen-netns`: the network namespace the TCP and UDP listeners are made in (the tun
    /// device stays in the server's own).
    pub listen_netns: Option<String>,
    /// Every `server-cert`/`server-key` pair, in order (one per key type: the TLS
    /// handshake picks the one the client's signature algorithms allow, as ocserv does).
    pub server_pairs: Vec<(PathBuf, PathBuf)>,
    /// `ca-cert`: verifies client certificates.
    pub ca_cert: Option<PathBuf>,
    /// `crl`: revoked client certificates (PEM), checked at every handshake.
    pub crl: Option<PathBuf>,
    /// `ocsp-response`: a DER OCSP response stapled to the server certificate.
    pub ocsp_response: Option<PathBuf>,
    /// `cert-user-oid`.
    pub cert_user_oid: Option<CertOid>,
    /// `cert-group-oid`.
    pub cert_group_oid: Option<CertOid>,
    /// `device`: tun device name prefix (digits are appended).
    pub device: String,
    /// Global network settings with ocserv's defaults filled in.
    pub net: NetSettings,
    /// `predictable-ips`.
    pub predictable_ips: bool,
    /// `ping-leases`.
    pub ping_leases: bool,
    /// `listen-proxy-proto`: every TCP connection starts with a PROXY protocol header (v1 or
    /// v2) from a load balancer, whose client address is then the one used for bans,
    /// limits, logs, scripts and occtl.
    pub listen_proxy_proto: bool,
    /// `syslog-facility` (`daemon` when unset); `--syslog-facility` overrides it.
    pub syslog_facility: Option<String>,
    /// `key-pin`: unlocks encrypted `server-key` files (wins over `pin-file`). Only the
    /// security module uses it; the network process gets the configuration without it.
    pub key_pin: Option<String>,
    /// `pin-file`: a file whose first line is that PIN (read by the security module).
    pub pin_file: Option<PathBuf>,
    /// `expose-iroutes`: every user gets the iroutes of the `config-per-user` files (but
    /// its own) as routes.
    pub expose_iroutes: bool,
    /// `listen-host-is-dyndns`: clients are told to resolve the server again to reconnect.
    pub listen_host_is_dyndns: bool,
    /// `log-level` (as `-d`, which wins over it).
    pub log_level: Option<u32>,
    /// `append-routes`: a user or group file's routes add to the global ones instead of
    /// replacing them.
    pub append_routes: bool,
    /// `camouflage = true` (with `camouflage_secret` and `camouflage_realm`): look like a
    /// web server to anyone who does not know the secret.
    pub camouflage: Option<oc_proto::anyconnect::camouflage::Camouflage>,
    /// `cookie-timeout`, seconds.
    pub cookie_timeout: u32,
    /// `persistent-cookies`.
    pub persistent_cookies: bool,
    /// `max-clients`; 0 = unlimited.
    pub max_clients: u32,
    /// `rate-limit-ms`.
    pub rate_limit_ms: u64,
    /// `server-drain-ms`: on SIGTERM/SIGINT, stop accepting connections and keep serving
    /// this long before stopping (a load balancer's health probe notices meanwhile).
    pub server_drain_ms: u64,
    /// `auth-timeout`, seconds.
    pub auth_timeout: u32,
    /// `ban-time` (ocserv 1.5's name; `min-reauth-time` before), seconds: how long ocserv keeps
    /// an address banned. Not applied as such: a ban here lasts until `ban-reset-time` passes
    /// without new points, so a `ban-time` longer than `ban-reset-time` is refused at load.
    pub min_reauth_time: u32,
    /// `max-ban-score`; 0 disables banning.
    pub max_ban_score: u32,
    /// `ban-reset-time`, seconds.
    pub ban_reset_time: u32,
    /// `ban-points-wrong-password`.
    pub ban_points_wrong_password: u32,
    /// `ban-points-connection`.
    pub ban_points_connection: u32,
    /// `banner`: shown after login.
    pub banner: Option<String>,
    /// `pre-login-banner`.
    pub pre_login_banner: Option<String>,
    /// `select-group = name[Friendly name]` lines.
    pub select_groups: Vec<(String, Option<String>)>,
    /// `auto-select-group`.
    pub auto_select_group: bool,
    /// `default-select-group`.
    pub default_select_group: Option<String>,
    /// `select-group-by-url`.
    pub select_group_by_url: bool,
    /// `config-per-user` directory.
    pub config_per_user: Option<PathBuf>,
    /// `config-per-group` directory.
    pub config_per_group: Option<PathBuf>,
    /// `default-user-config` file.
    pub default_user_config: Option<PathBuf>,
    /// `default-group-config` file.
    pub default_group_config: Option<PathBuf>,
    /// `connect-script`.
    pub connect_script: Option<PathBuf>,
    /// `disconnect-script`.
    pub disconnect_script: Option<PathBuf>,
    /// `route-add-cmd`: run (as root, through /bin/sh) for each iroute of a connecting
    /// user instead of our `ip route replace`; `%{R}`/`%R` the route (IPv4 as
    /// address/netmask), `%{RI}` the route as address/prefix, `%{D}`/`%D` the device.
    pub route_add_cmd: Option<String>,
    /// `host-update-script`.
    pub host_update_script: Option<PathBuf>,
    /// `tls-priorities` (a GnuTLS priority string, kept verbatim).
    pub tls_priorities: Option<String>,
    /// `isolate-workers`.
    pub isolate_workers: bool,
    /// `run-as-user`.
    pub run_as_user: Option<String>,
    /// `run-as-group`.
    pub run_as_group: Option<String>,
    /// `metrics-listen` (ours, not ocserv's): where to serve Prometheus metrics over HTTP.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `worker-threads` (ours): threads running sessions; `None` is half the CPUs (at least
    /// one), which leaves the other half to the kernel's share of every packet.
    pub worker_threads: Option<u32>,
    /// `pid-file`.
    pub pid_file: Option<PathBuf>,
    /// `chroot-dir`: the network process's root once it has set up.
    pub chroot_dir: Option<PathBuf>,
    /// `socket-file`.
    pub socket_file: Option<PathBuf>,
    /// `occtl-socket-file`; unset = ocserv's default `/var/run/occtl.socket`.
    pub occtl_socket_file: Option<PathBuf>,
    /// `use-occtl`.
    pub use_occtl: bool,
    /// `cisco-client-compat`.
    pub cisco_client_compat: bool,
    /// `dtls-legacy` (forced on by `cisco-client-compat`, as in ocserv).
    pub dtls_legacy: bool,
    /// `dtls-psk`.
    pub dtls_psk: bool,
    /// `match-tls-dtls-ciphers`.
    pub match_tls_dtls_ciphers: bool,
    /// `rekey-time`, seconds; 0 disables rekeying.
    pub rekey_time: u32,
    /// `rekey-method`.
    pub rekey_method: RekeyMethod,
    /// `switch-to-tcp-timeout`, seconds.
    pub switch_to_tcp_timeout: u32,
    /// `try-mtu-discovery`.
    pub try_mtu_discovery: bool,
    /// `compression`.
    pub compression: bool,
    /// `no-compress-limit`, bytes (at least [`defaults::MIN_NO_COMPRESS_LIMIT`]).
    pub no_compress_limit: u32,
    /// `compression-algo-priority` lines applied to the defaults.
    pub compression_priorities: oc_proto::compress::Priorities,
    /// `server-stats-reset-time`, seconds.
    pub server_stats_reset_time: u32,
    /// `custom-header` lines, verbatim (`Name: value`).
    pub custom_headers: Vec<String>,
    /// `included-http-headers`: sent with every HTTP answer before the tunnel.
    pub included_http_headers: Vec<(String, String)>,
    /// `kkdcp`: Kerberos KDC proxy endpoints (MS-KKDCP), by path and realm.
    pub kkdcp: Vec<oc_proto::kkdcp::KdcRoute>,
    /// `ban-points-kkdcp`: points for each KDC proxy request.
    pub ban_points_kkdcp: u32,
    /// `user-profile` XML file.
    pub user_profile: Option<PathBuf>,
    /// The line each key was last set on, so later failures (a certificate that does not
    /// load, a script that cannot run) can point at the config line responsible.
    pub key_lines: BTreeMap<String, usize>,
    /// `[vhost:NAME]` sections, in file order (empty in a virtual host's own config).
    pub vhosts: Vec<VirtualHost>,
}

/// How occtl, scripts and logs name a host: its section name, or `default`.
pub fn vhost_label(name: Option<&str>) -> &str {
    name.unwrap_or("default")
}

/// A `[vhost:NAME]` section: the settings clients get when their TLS server name (SNI) is
/// `name`, ignoring case. Others get the default section's.
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualHost {
    /// The name as written in the section header, blanks around it removed.
    pub name: String,
    /// The line of the section header.
    pub line: usize,
    /// The default section's settings with this section's applied on top.
    pub config: Config,
}

impl Config {
    /// A certificate method is among `auth`/`enable-auth`: clients are asked for a
    /// certificate and `ca-cert` verifies it (ocserv loads the CA only then).
    pub fn uses_certificate_auth(&self) -> bool {
        self.auth
            .iter()
            .chain(self.enable_auth.iter())
            .any(|m| matches!(m, AuthMethod::Certificate))
    }

    /// Every host's settings: the default (`None`) first, then each virtual host's.
    pub fn hosts(&self) -> impl Iterator<Item = (Option<&str>, &Config)> {
        std::iter::once((None, self)).chain(
            self.vhosts
                .iter()
                .map(|v| (Some(v.name.as_str()), &v.config)),
        )
    }

    /// Where occtl connects, when `use-occtl` is on: `occtl-socket-file`, else ocserv's
    /// default path.
    pub fn occtl_socket(&self) -> Option<PathBuf> {
        self.use_occtl.then(|| {
            self.occtl_socket_file
                .clone()
                .unwrap_or_else(|| PathBuf::from(defaults::OCCTL_SOCKET))
        })
    }

    /// The line `key` was (last) set on, or 0 if it was not set.
    pub fn line_of(&self, key: &str) -> usize {
        self.key_lines.get(key).copied().unwrap_or(0)
    }

    /// A [`Problem`] pointing at `key`'s line in this config, for errors found after loading.
    pub fn problem_at(&self, key: &str, message: impl Into<String>) -> Problem {
        Problem {
            file: self.path.clone(),
            line: self.line_of(key),
            message: message.into(),
        }
    }
}

/// Reads and parses the main config. With `test_mode` (`ocserv -t`) it also checks that the
/// files and directories the config refers to exist, that users and groups exist, and
/// validates every file in `config-per-user` / `config-per-group`. Unsupported settings that
/// would weaken security are errors in both modes.
pub fn load(path: &Path, test_mode: bool) -> Result<Loaded, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut d = Diag::new(path, test_mode);
    let text = decode(&bytes, &mut d);
    global::parse(&text, d)
}

/// The value of `key` (`syslog-facility`, `log-level`) in the config at `path`, read before
/// logging starts (the full load reports any problem with the file or the value later,
/// with line numbers).
pub fn logging_setting_of(path: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut scratch = Diag::new(path, false);
    lexer::lex(&text, &mut scratch)
        .into_iter()
        .filter(|e| e.key == key)
        .map(|e| e.value)
        .next_back()
}

/// The configuration text with the values of `key-pin` and `srk-pin` withheld, for the
/// network process (which has no use for them). Line numbers stay the same. The lines are
/// found as the parser reads them (continuation lines and `[vhost:...]` sections too), and
/// any line that starts with either key besides.
pub fn without_pins(text: &str) -> String {
    const PINS: [&str; 2] = ["key-pin", "srk-pin"];
    let mut scratch = Diag::new(Path::new(""), false);
    let sections = lexer::lex_sections(text, &mut scratch, true);
    let pin_lines: Vec<usize> = sections
        .global
        .iter()
        .chain(sections.vhosts.iter().flat_map(|v| v.entries.iter()))
        .filter(|e| PINS.contains(&e.key.as_str()))
        .map(|e| e.line)
        .collect();
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let key = line
                .trim_start()
                .split(['=', ':'])
                .next()
                .unwrap_or_default()
                .trim();
            if PINS.contains(&key) {
                format!("{key} = withheld")
            } else if pin_lines.contains(&(i + 1)) {
                // One more value of a pin key on an indented line.
                "  withheld".to_owned()
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parses main-config text as if read from `path` (used for messages and [`Config::path`]).
/// See [`load`] for `test_mode`.
pub fn parse(text: &str, path: &Path, test_mode: bool) -> Result<Loaded, ConfigError> {
    global::parse(text, Diag::new(path, test_mode))
}

/// Reads `DIR/NAME`, a config-per-user or config-per-group file: its path and bytes.
///
/// Returns `Ok(None)` if there is no such file (the caller then falls back to
/// `default-user-config` / `default-group-config`, as ocserv does). `name` comes from the
/// client (a user or group name), so a name that could leave `dir` (containing `/`,
/// starting with `.`, containing control characters, or empty) is refused with an error
/// instead of being looked up.
pub fn read_override(dir: &Path, name: &str) -> Result<Option<(PathBuf, Vec<u8>)>, ConfigError> {
    if let Some(why) = oc_proto::ipc::file_name_problem(name) {
        return Err(ConfigError::Invalid(vec![Problem {
            file: dir.to_path_buf(),
            line: 0,
            message: format!("refusing to look up a per-user/group config for {name:?}: {why}"),
        }]));
    }
    let path = dir.join(name);
    match read_capped(&path) {
        Ok(bytes) => Ok(Some((path, bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigError::Io { path, source }),
    }
}

/// Reads one per-user/group file by path (`default-user-config`, `default-group-config`).
pub fn read_override_file(path: &Path) -> Result<Vec<u8>, ConfigError> {
    read_capped(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses per-user/group file text as if read from `path`.
pub fn parse_override(text: &str, path: &Path) -> Result<(NetSettings, Vec<Problem>), ConfigError> {
    overrides::parse(text, Diag::new(path, false))
}

/// Parses per-user/group file bytes read from `path`. Only the keys ocserv allows in these
/// files are applied; any other key is a warning naming it. Invalid values, and invalid
/// UTF-8, are errors at their line.
pub fn parse_override_bytes(
    bytes: &[u8],
    path: &Path,
) -> Result<(NetSettings, Vec<Problem>), ConfigError> {
    let mut d = Diag::new(path, false);
    let text = decode(bytes, &mut d);
    overrides::parse(&text, d)
}

/// Per-user/group files are small; refusing huge ones keeps a mistaken path (a device, a
/// log file) from being read into memory on every login.
const MAX_OVERRIDE_FILE: u64 = 1 << 20;

fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_OVERRIDE_FILE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_OVERRIDE_FILE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "file is larger than 1 MiB",
        ));
    }
    Ok(bytes)
}

/// Text from file bytes; invalid UTF-8 is an error at its line (the rest is still parsed,
/// lossily, so other problems are reported too).
fn decode(bytes: &[u8], d: &mut Diag) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(e) => {
            let good = bytes.get(..e.valid_up_to()).unwrap_or_default();
            let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
            d.error(line, "the line is not valid UTF-8");
            String::from_utf8_lossy(bytes).into_owned()
        }
    }
}

/// Collects problems for one file.
#[derive(Debug)]
struct Diag {
    file: PathBuf,
    test_mode: bool,
    errors: Vec<Problem>,
    warnings: Vec<Problem>,
}

impl Diag {
    fn new(file: &Path, test_mode: bool) -> Self {
        Diag {
            file: file.to_path_buf(),
            test_mode,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn problem(&self, line: usize, message: String) -> Problem {
        Problem {
            file: self.file.clone(),
            line,
            message,
        }
    }

    fn error(&mut self, line: usize, message: impl Into<String>) {
        let p = self.problem(line, message.into());
        self.errors.push(p);
    }

    fn warn(&mut self, line: usize, message: impl Into<String>) {
        let p = self.problem(line, message.into());
        self.warnings.push(p);
    }

    fn merge(&mut self, other: Diag) {
        self.errors.extend(other.errors);
        self.warnings.extend(other.warnings);
    }
}
