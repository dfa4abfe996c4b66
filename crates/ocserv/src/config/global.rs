//! The main config file: keys, defaults, cross-checks and the `-t` file checks.

use std::collections::BTreeMap;
use std::path::PathBuf;

use oc_proto::anyconnect::camouflage::Camouflage;
use oc_proto::compress::Priorities;

use super::file_checks::{
    check_account, check_oidc, check_override_dir, check_override_file, check_path, check_radius,
    check_users_file, Kind,
};
use super::lexer::{self, Entry};
use super::net::{self, boolean, checked, num, secs, set, NetBuilder, Scope};
use super::{
    defaults, value, AcctMethod, AuthMethod, CertOid, Config, ConfigError, Diag, GssapiMethod,
    Loaded, NetSettings, RekeyMethod,
};

/// Main-config keys that may be given several times (each line adds a value); the
/// [`NetSettings`] lists are in [`net::is_list`].
const MULTI_KEYS: &[&str] = &[
    "auth",
    "enable-auth",
    "select-group",
    "custom-header",
    "included-http-headers",
    "compression-algo-priority",
    "server-cert",
    "server-key",
    "kkdcp",
];

/// Main-config keys handled by [`Draft::handle`] (the [`NetSettings`] ones are in
/// [`net::GLOBAL_NET_KEYS`]).
const GLOBAL_KEYS: &[&str] = &[
    "auth",
    "enable-auth",
    "tcp-port",
    "udp-port",
    "listen-host",
    "udp-listen-host",
    "listen-netns",
    "server-cert",
    "server-key",
    "ca-cert",
    "crl",
    "ocsp-response",
    "cert-user-oid",
    "cert-group-oid",
    "device",
    "predictable-ips",
    "ping-leases",
    "listen-proxy-proto",
    "syslog-facility",
    "key-pin",
    "pin-file",
    "expose-iroutes",
    "append-routes",
    "listen-host-is-dyndns",
    "log-level",
    "camouflage",
    "camouflage_secret",
    "camouflage_realm",
    "cookie-timeout",
    "persistent-cookies",
    "max-clients",
    "rate-limit-ms",
    "server-drain-ms",
    "auth-timeout",
    "ban-time",
    "min-reauth-time",
    "max-ban-score",
    "ban-reset-time",
    "ban-points-wrong-password",
    "ban-points-connection",
    "banner",
    "pre-login-banner",
    "select-group",
    "auto-select-group",
    "default-select-group",
    "acct",
    "select-group-by-url",
    "config-per-user",
    "config-per-group",
    "default-user-config",
    "default-group-config",
    "connect-script",
    "disconnect-script",
    "host-update-script",
    "tls-priorities",
    "isolate-workers",
    "use-seccomp",
    "run-as-user",
    "run-as-group",
    "metrics-listen",
    "worker-threads",
    "pid-file",
    "chroot-dir",
    "socket-file",
    "occtl-socket-file",
    "use-occtl",
    "route-add-cmd",
    "use-dbus",
    "cisco-client-compat",
    "always-require-cert",
    "dtls-legacy",
    "dtls-psk",
    "match-tls-dtls-ciphers",
    "rekey-time",
    "rekey-method",
    "switch-to-tcp-timeout",
    "try-mtu-discovery",
    "compression",
    "no-compress-limit",
    "compression-algo-priority",
    "server-stats-reset-time",
    "custom-header",
    "included-http-headers",
    "user-profile",
    "kkdcp",
    "ban-points-kkdcp",
];

const FALSE: &[&str] = &["false", "no"];

/// An ocserv key we know but do not implement yet; ignoring it costs a feature (the
/// security-relevant keys are all enforced, or errors where they are parsed).
#[derive(Debug)]
pub(super) struct Unsupported {
    pub(super) key: &'static str,
    /// Values (any case) that ask for what we do anyway, e.g. `false` for a feature switch;
    /// these are accepted without a warning.
    pub(super) inert: &'static [&'static str],
}

/// A warning whatever its value.
pub(super) const fn plain(key: &'static str) -> Unsupported {
    Unsupported { key, inert: &[] }
}

/// A feature switch that is off by default: a warning when turned on.
const fn switch(key: &'static str) -> Unsupported {
    Unsupported { key, inert: FALSE }
}

/// Known ocserv 1.x main-config keys we do not implement yet (ocserv 1.5's sample.config,
/// plus keys older releases accepted). The keys we implement are in [`GLOBAL_KEYS`] and
/// [`net::GLOBAL_NET_KEYS`]; `isolate-workers`, `udp-listen-host` and the ban, MTU, stats
/// and Cisco settings that parse but are not (fully) applied are handled in [`Draft`].
pub(super) const UNSUPPORTED: &[Unsupported] = &[
    plain("dh-params"),
    // TPM keys are not supported: a TPM key fails to load, which fails closed.
    plain("srk-pin-file"),
    plain("srk-pin"),
    plain("sec-mod-scale"),
    switch("debug-no-secmod-stats"),
    // Sandboxing of ocserv's own worker processes, like isolate-workers: a hardening of the
    // server, not a promise to clients.
    switch("limit-worker-memory"),
    switch("use-utmp"),
    plain("net-priority"),
    plain("output-buffer"),
    plain("cgroup"),
    plain("proxy-url"),
    plain("route-del-cmd"),
    // Would weaken tls-priorities for old IP phones; without it we are stricter.
    switch("cisco-svc-client-compat"),
    // Advice to browsers (HSTS, framing); it restricts nothing the server allows.
    plain("session-control"),
];

/// Reports `e` if it is a known-but-unsupported key of `table`; returns whether it was one.
pub(super) fn unsupported(table: &[Unsupported], e: &Entry, d: &mut Diag) -> bool {
    let Some(u) = table.iter().find(|u| u.key == e.key) else {
        return false;
    };
    if u.inert.iter().any(|v| v.eq_ignore_ascii_case(&e.value)) {
        return true;
    }
    d.warn(e.line, format!("not supported yet: {}; ignored", u.key));
    true
}

/// Warns about an unknown key, suggesting a known one it may be a misspelling of.
pub(super) fn unknown(e: &Entry, d: &mut Diag, known: &[&[&str]]) {
    let norm = |k: &str| k.to_ascii_lowercase().replace('_', "-");
    let wanted = norm(&e.key);
    let suggestion = known
        .iter()
        .flat_map(|list| list.iter())
        .find(|k| norm(k) == wanted);
    match suggestion {
        Some(k) => d.warn(
            e.line,
            format!("unknown key {:?} (ignored); did you mean {k}?", e.key),
        ),
        None => d.warn(e.line, format!("unknown key {:?} (ignored)", e.key)),
    }
}

/// Records that `e`'s key was set on `e`'s line. A key that takes one value and was set
/// before is warned about: the later line wins, as in ocserv.
pub(super) fn note_line(lines: &mut BTreeMap<String, usize>, e: &Entry, d: &mut Diag) {
    let multi = MULTI_KEYS.contains(&e.key.as_str()) || net::is_list(&e.key);
    if let (false, Some(prev)) = (multi, lines.get(&e.key)) {
        d.warn(
            e.line,
            format!(
                "{} is set again; this replaces the value on line {prev}",
                e.key
            ),
        );
    }
    lines.insert(e.key.clone(), e.line);
}

/// Every main-config key we recognise (for suggestions and tests).
pub(super) fn all_keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = GLOBAL_KEYS.to_vec();
    keys.extend(net::GLOBAL_NET_KEYS.concat());
    keys.extend(UNSUPPORTED.iter().map(|u| u.key));
    keys.push("listen-clear-file");
    keys
}

pub(super) fn parse(text: &str, mut d: Diag) -> Result<Loaded, ConfigError> {
    let sections = lexer::lex_sections(text, &mut d, true);
    super::vhost::parse_hosts(&sections, d)
}

/// One host's settings: `inherited` entries (a virtual host's copy of the default
/// section) and then its `own`. Setting a key again warns only within `own`.
pub(super) fn parse_entries(
    inherited: &[Entry],
    own: &[Entry],
    mut d: Diag,
) -> Result<Loaded, ConfigError> {
    let mut draft = Draft::default();
    let mut net = NetBuilder::default();
    let mut lines: BTreeMap<String, usize> = BTreeMap::new();
    let mut own_lines: BTreeMap<String, usize> = BTreeMap::new();
    let unsupported_keys: Vec<&str> = UNSUPPORTED.iter().map(|u| u.key).collect();
    let mut known: Vec<&[&str]> = vec![GLOBAL_KEYS];
    known.extend_from_slice(net::GLOBAL_NET_KEYS);
    known.extend([net::OVERRIDE_ONLY_KEYS, &unsupported_keys]);

    let tagged = inherited
        .iter()
        .map(|e| (e, true))
        .chain(own.iter().map(|e| (e, false)));
    for (e, was_inherited) in tagged {
        lines.insert(e.key.clone(), e.line);
        if !was_inherited {
            note_line(&mut own_lines, e, &mut d);
        }
        if net.handle(e, Scope::Global, &mut d) || draft.handle(e, &mut d) {
            continue;
        }
        if e.key == "listen-clear-file" {
            d.error(
                e.line,
                "listen-clear-file was removed in ocserv 1.1.2 and is not supported",
            );
            continue;
        }
        if !unsupported(UNSUPPORTED, e, &mut d) {
            unknown(e, &mut d, &known);
        }
    }
    let net = net.finish(Scope::Global, &mut d);
    draft.finish(net, lines, d)
}

/// The main-config values as read, before defaults and cross-checks.
#[derive(Debug, Default)]
struct Draft {
    auth: Vec<(AuthMethod, usize)>,
    enable_auth: Vec<(AuthMethod, usize)>,
    acct: Option<(AcctMethod, usize)>,
    tcp_port: Option<u16>,
    udp_port: Option<u16>,
    listen_host: Option<String>,
    udp_listen_host: Option<String>,
    listen_netns: Option<String>,
    server_certs: Vec<(PathBuf, usize)>,
    server_keys: Vec<(PathBuf, usize)>,
    ca_cert: Option<PathBuf>,
    crl: Option<PathBuf>,
    ocsp_response: Option<PathBuf>,
    cert_user_oid: Option<CertOid>,
    cert_group_oid: Option<CertOid>,
    device: Option<String>,
    predictable_ips: Option<bool>,
    ping_leases: Option<bool>,
    listen_proxy_proto: Option<bool>,
    syslog_facility: Option<String>,
    key_pin: Option<String>,
    pin_file: Option<PathBuf>,
    expose_iroutes: Option<bool>,
    listen_host_is_dyndns: Option<bool>,
    log_level: Option<u32>,
    append_routes: Option<bool>,
    camouflage: Option<bool>,
    camouflage_secret: Option<String>,
    camouflage_realm: Option<String>,
    cookie_timeout: Option<u32>,
    persistent_cookies: Option<bool>,
    max_clients: Option<u32>,
    rate_limit_ms: Option<u64>,
    server_drain_ms: Option<u64>,
    auth_timeout: Option<u32>,
    min_reauth_time: Option<u32>,
    max_ban_score: Option<u32>,
    ban_reset_time: Option<u32>,
    ban_points_wrong_password: Option<u32>,
    ban_points_connection: Option<u32>,
    banner: Option<String>,
    pre_login_banner: Option<String>,
    select_groups: Vec<(String, Option<String>)>,
    auto_select_group: Option<bool>,
    default_select_group: Option<String>,
    select_group_by_url: Option<bool>,
    config_per_user: Option<PathBuf>,
    config_per_group: Option<PathBuf>,
    default_user_config: Option<PathBuf>,
    default_group_config: Option<PathBuf>,
    connect_script: Option<PathBuf>,
    disconnect_script: Option<PathBuf>,
    route_add_cmd: Option<String>,
    host_update_script: Option<PathBuf>,
    tls_priorities: Option<String>,
    isolate_workers: Option<bool>,
    run_as_user: Option<String>,
    run_as_group: Option<String>,
    metrics_listen: Option<std::net::SocketAddr>,
    worker_threads: Option<u32>,
    pid_file: Option<PathBuf>,
    chroot_dir: Option<PathBuf>,
    socket_file: Option<PathBuf>,
    occtl_socket_file: Option<PathBuf>,
    /// `occtl-socket-file` given empty.
    occtl_disabled: bool,
    use_occtl: Option<bool>,
    cisco_client_compat: Option<bool>,
    dtls_legacy: Option<bool>,
    dtls_psk: Option<bool>,
    match_tls_dtls_ciphers: Option<bool>,
    rekey_time: Option<u32>,
    rekey_method: Option<RekeyMethod>,
    switch_to_tcp_timeout: Option<u32>,
    try_mtu_discovery: Option<bool>,
    compression: Option<bool>,
    no_compress_limit: Option<u32>,
    compression_priorities: Priorities,
    server_stats_reset_time: Option<u32>,
    custom_headers: Vec<String>,
    included_http_headers: Vec<(String, String)>,
    kkdcp: Vec<oc_proto::kkdcp::KdcRoute>,
    ban_points_kkdcp: Option<u32>,
    user_profile: Option<PathBuf>,
}

/// A path value (taken as written; ocserv resolves relative paths against its cwd).
fn path(e: &Entry, d: &mut Diag) -> Option<PathBuf> {
    if e.value.is_empty() {
        d.error(
            e.line,
            format!("{}: expected a path, got an empty value", e.key),
        );
        None
    } else {
        Some(PathBuf::from(&e.value))
    }
}

/// A non-empty single-word value (user names, group names, hosts).
fn word(e: &Entry, d: &mut Diag, what: &str) -> Option<String> {
    if e.value.is_empty() || e.value.contains(char::is_whitespace) {
        d.error(
            e.line,
            format!("{}: expected {what}, got {:?}", e.key, e.value),
        );
        None
    } else {
        Some(e.value.clone())
    }
}

/// Key files given as a URL (PKCS#11, TPM) rather than a path.
fn is_key_url(v: &str) -> bool {
    ["pkcs11:", "tpmkey:", "tpm2:", "system:"]
        .iter()
        .any(|p| v.starts_with(p))
}

impl Draft {
    fn handle(&mut self, e: &Entry, d: &mut Diag) -> bool {
        let line = e.line;
        let v = e.value.as_str();
        match e.key.as_str() {
            "auth" | "enable-auth" => {
                if let Some(m) = checked(e, d, value::parse_auth(v)) {
                    if e.key == "auth" {
                        self.auth.push((m, line));
                    } else {
                        self.enable_auth.push((m, line));
                    }
                }
            }
            "tcp-port" => set(&mut self.tcp_port, port(e, d)),
            // 0 turns DTLS off, as in ocserv (its test suite appends it to disable UDP).
            "udp-port" if v == "0" => self.udp_port = None,
            "udp-port" => set(&mut self.udp_port, port(e, d)),
            "listen-host" => set(&mut self.listen_host, word(e, d, "an address or host name")),
            "udp-listen-host" => set(
                &mut self.udp_listen_host,
                word(e, d, "an address or host name"),
            ),
            "listen-netns" => set(
                &mut self.listen_netns,
                word(e, d, "a network namespace name (as `ip netns` lists them)"),
            ),
            "server-cert" | "server-key" => {
                if is_key_url(v) {
                    d.error(
                        line,
                        format!(
                            "{}: PKCS#11 / TPM URLs are not supported yet; give a file",
                            e.key
                        ),
                    );
                } else if let Some(p) = path(e, d) {
                    if e.key == "server-cert" {
                        self.server_certs.push((p, line));
                    } else {
                        self.server_keys.push((p, line));
                    }
                }
            }
            "ca-cert" => set(&mut self.ca_cert, path(e, d)),
            "crl" => set(&mut self.crl, path(e, d)),
            "ocsp-response" => set(&mut self.ocsp_response, path(e, d)),
            "cert-user-oid" => set(&mut self.cert_user_oid, checked(e, d, value::parse_oid(v))),
            "cert-group-oid" => set(&mut self.cert_group_oid, checked(e, d, value::parse_oid(v))),
            "device" => match value::parse_device(v) {
                Ok(dev) => {
                    if dev.len() > 12 {
                        d.warn(
                            line,
                            format!(
                                "device name {dev:?} leaves room for only {} digit(s) of device \
                                 number (interface names have at most 15 characters)",
                                15usize.saturating_sub(dev.len())
                            ),
                        );
                    }
                    self.device = Some(dev);
                }
                Err(m) => d.error(line, format!("device: {m}")),
            },
            "predictable-ips" => set(&mut self.predictable_ips, boolean(e, d)),
            "ping-leases" => set(&mut self.ping_leases, boolean(e, d)),
            "listen-proxy-proto" => set(&mut self.listen_proxy_proto, boolean(e, d)),
            "key-pin" => self.key_pin = Some(v.to_owned()),
            "expose-iroutes" => set(&mut self.expose_iroutes, boolean(e, d)),
            "listen-host-is-dyndns" => set(&mut self.listen_host_is_dyndns, boolean(e, d)),
            "log-level" => match v.parse::<u32>() {
                Ok(level) if level <= 9999 => self.log_level = Some(level),
                _ => d.error(
                    line,
                    format!("log-level: expected a level (0-9999), got {v:?}"),
                ),
            },
            "append-routes" => set(&mut self.append_routes, boolean(e, d)),
            "pin-file" => set(&mut self.pin_file, path(e, d)),
            "syslog-facility" => {
                if oc_net::log::facility_code(v).is_some() {
                    self.syslog_facility = Some(v.to_owned());
                } else {
                    d.error(
                        line,
                        format!(
                            "syslog-facility: unknown facility {v:?} (daemon, user, auth, \
                             authpriv, local0 to local7)"
                        ),
                    );
                }
            }
            "camouflage" => set(&mut self.camouflage, boolean(e, d)),
            "camouflage_secret" => self.camouflage_secret = Some(v.to_owned()),
            "camouflage_realm" => self.camouflage_realm = Some(v.to_owned()),
            "cookie-timeout" => set(&mut self.cookie_timeout, secs(e, d)),
            "persistent-cookies" => set(&mut self.persistent_cookies, boolean(e, d)),
            "max-clients" => set(
                &mut self.max_clients,
                num(e, d, "a number of clients (0 = unlimited)"),
            ),
            "rate-limit-ms" => set(
                &mut self.rate_limit_ms,
                num(e, d, "a number of milliseconds"),
            ),
            "server-drain-ms" => set(
                &mut self.server_drain_ms,
                num(e, d, "a number of milliseconds"),
            ),
            "auth-timeout" => set(&mut self.auth_timeout, secs(e, d)),
            "ban-time" => set(&mut self.min_reauth_time, secs(e, d)),
            "min-reauth-time" => {
                d.warn(line, "min-reauth-time is the old name of ban-time");
                set(&mut self.min_reauth_time, secs(e, d));
            }
            "max-ban-score" => set(
                &mut self.max_ban_score,
                num(e, d, "a score (0 = no banning)"),
            ),
            "ban-reset-time" => set(&mut self.ban_reset_time, secs(e, d)),
            "ban-points-wrong-password" => {
                set(
                    &mut self.ban_points_wrong_password,
                    num(e, d, "a number of points"),
                );
            }
            "ban-points-connection" => {
                set(
                    &mut self.ban_points_connection,
                    num(e, d, "a number of points"),
                );
            }
            "banner" => self.banner = Some(v.to_owned()),
            "pre-login-banner" => self.pre_login_banner = Some(v.to_owned()),
            "select-group" => match value::parse_select_group(v) {
                Ok(g) => {
                    if g.0.len() > crate::auth::MAX_NAME_BYTES {
                        // ocserv's wording, which its test suite looks for.
                        d.warn(
                            line,
                            format!(
                                "'select-group' entry '{}' is {} bytes or longer and exceeds \
                                 the maximum supported group name length ({}); it can never \
                                 be selected",
                                g.0,
                                g.0.len(),
                                crate::auth::MAX_NAME_BYTES
                            ),
                        );
                    }
                    if self.select_groups.iter().any(|(n, _)| *n == g.0) {
                        d.warn(line, format!("select-group {} is listed twice", g.0));
                    } else {
                        self.select_groups.push(g);
                    }
                }
                Err(m) => d.error(line, format!("select-group: {m}")),
            },
            "auto-select-group" => set(&mut self.auto_select_group, boolean(e, d)),
            "acct" => match value::parse_acct(v) {
                Ok(method) => self.acct = Some((method, e.line)),
                Err(why) => d.error(e.line, format!("acct: {why}")),
            },
            "default-select-group" => {
                set(&mut self.default_select_group, word(e, d, "a group name"));
            }
            "select-group-by-url" => set(&mut self.select_group_by_url, boolean(e, d)),
            "config-per-user" => set(&mut self.config_per_user, path(e, d)),
            "config-per-group" => set(&mut self.config_per_group, path(e, d)),
            "default-user-config" => set(&mut self.default_user_config, path(e, d)),
            "default-group-config" => set(&mut self.default_group_config, path(e, d)),
            "connect-script" => set(&mut self.connect_script, path(e, d)),
            "disconnect-script" => set(&mut self.disconnect_script, path(e, d)),
            "host-update-script" => set(&mut self.host_update_script, path(e, d)),
            "route-add-cmd" if !v.is_empty() => self.route_add_cmd = Some(v.to_owned()),
            "route-add-cmd" => d.error(
                line,
                "route-add-cmd: expected a command, got an empty value",
            ),
            "tls-priorities" => {
                if v.is_empty() {
                    d.error(
                        line,
                        "tls-priorities: expected a priority string, got an empty value",
                    );
                } else {
                    self.tls_priorities = Some(v.to_owned());
                }
            }
            "isolate-workers" => set(&mut self.isolate_workers, boolean(e, d)),
            "use-seccomp" => {
                d.warn(line, "use-seccomp is the old name of isolate-workers");
                set(&mut self.isolate_workers, boolean(e, d));
            }
            "run-as-user" => set(&mut self.run_as_user, word(e, d, "a user name")),
            "run-as-group" => set(&mut self.run_as_group, word(e, d, "a group name")),
            "metrics-listen" => match v.parse::<std::net::SocketAddr>() {
                Ok(addr) => self.metrics_listen = Some(addr),
                Err(_) => d.error(
                    line,
                    format!(
                        "metrics-listen: expected ADDRESS:PORT (e.g. 127.0.0.1:9616 or \
                         [::1]:9616), got {v:?}"
                    ),
                ),
            },
            "worker-threads" => set(
                &mut self.worker_threads,
                num(e, d, "a number of threads (0 = half the CPUs)"),
            ),
            "pid-file" => set(&mut self.pid_file, path(e, d)),
            "chroot-dir" => set(&mut self.chroot_dir, path(e, d)),
            "socket-file" => set(&mut self.socket_file, path(e, d)),
            // An empty value (a test harness's unset variable) leaves occtl without a
            // socket, as ocserv then serves none; said, not an error.
            "occtl-socket-file" if v.is_empty() => {
                d.warn(
                    line,
                    "occtl-socket-file is empty: no control socket, occtl cannot reach this server",
                );
                self.occtl_disabled = true;
            }
            "occtl-socket-file" => set(&mut self.occtl_socket_file, path(e, d)),
            "use-occtl" => set(&mut self.use_occtl, boolean(e, d)),
            // As ocserv: only `use-dbus = true` means use-occtl; `false` changes nothing
            // (configs say `use-dbus = no` next to `use-occtl = true`).
            "use-dbus" => {
                if boolean(e, d) == Some(true) {
                    d.warn(line, "use-dbus is the old name of use-occtl");
                    self.use_occtl = Some(true);
                }
            }
            "cisco-client-compat" => set(&mut self.cisco_client_compat, boolean(e, d)),
            "always-require-cert" => {
                // Replaced by cisco-client-compat (with the opposite meaning) in ocserv 0.11.
                d.warn(
                    line,
                    "always-require-cert was replaced by cisco-client-compat",
                );
                if boolean(e, d) == Some(false) {
                    self.cisco_client_compat = Some(true);
                }
            }
            "dtls-legacy" => set(&mut self.dtls_legacy, boolean(e, d)),
            "dtls-psk" => set(&mut self.dtls_psk, boolean(e, d)),
            "match-tls-dtls-ciphers" => set(&mut self.match_tls_dtls_ciphers, boolean(e, d)),
            "rekey-time" => set(&mut self.rekey_time, secs(e, d)),
            "rekey-method" => match v {
                "ssl" => self.rekey_method = Some(RekeyMethod::Ssl),
                "new-tunnel" => self.rekey_method = Some(RekeyMethod::NewTunnel),
                _ => d.error(
                    line,
                    format!("rekey-method: expected ssl or new-tunnel, got {v:?}"),
                ),
            },
            "switch-to-tcp-timeout" => set(&mut self.switch_to_tcp_timeout, secs(e, d)),
            "try-mtu-discovery" => set(&mut self.try_mtu_discovery, boolean(e, d)),
            "compression" => set(&mut self.compression, boolean(e, d)),
            "no-compress-limit" => {
                if let Some(n) = num::<u32>(e, d, "a number of bytes") {
                    if n < defaults::MIN_NO_COMPRESS_LIMIT {
                        d.warn(
                            line,
                            format!(
                                "no-compress-limit {n} is below the minimum; using {}",
                                defaults::MIN_NO_COMPRESS_LIMIT
                            ),
                        );
                        self.no_compress_limit = Some(defaults::MIN_NO_COMPRESS_LIMIT);
                    } else {
                        self.no_compress_limit = Some(n);
                    }
                }
            }
            // ocserv warns about a bad setting and keeps its defaults.
            "compression-algo-priority" => {
                if let Err(why) = self.compression_priorities.apply(v) {
                    d.warn(line, format!("compression-algo-priority: {why}; ignored"));
                }
            }
            "server-stats-reset-time" => set(&mut self.server_stats_reset_time, secs(e, d)),
            "custom-header" => {
                if header_line(v).is_some() {
                    self.custom_headers.push(v.to_owned());
                } else {
                    d.error(
                        line,
                        format!("custom-header: expected \"Name: value\", got {v:?}"),
                    );
                }
            }
            "kkdcp" => match oc_proto::kkdcp::parse_route(v) {
                Ok(route) => self.kkdcp.push(route),
                Err(e) => d.error(line, format!("kkdcp: {e}")),
            },
            "ban-points-kkdcp" => set(&mut self.ban_points_kkdcp, num(e, d, "a number of points")),
            "included-http-headers" => match header_line(v) {
                Some(header) => self.included_http_headers.push(header),
                None => d.error(
                    line,
                    format!("included-http-headers: expected \"Name: value\", got {v:?}"),
                ),
            },
            "user-profile" => set(&mut self.user_profile, path(e, d)),
            _ => return false,
        }
        true
    }

    /// `camouflage = true` needs the secret that clients put after `?` in the URL; the
    /// realm ends up in a `WWW-Authenticate` header, so it cannot hold quotes.
    fn camouflage_settings(
        &self,
        line_of: &dyn Fn(&str) -> usize,
        d: &mut Diag,
    ) -> Option<Camouflage> {
        if self.camouflage != Some(true) {
            return None;
        }
        let Some(secret) = self.camouflage_secret.clone().filter(|s| !s.is_empty()) else {
            d.error(
                line_of("camouflage"),
                "camouflage = true needs camouflage_secret (clients connect to \
                 https://server/?SECRET); without it every client would be refused",
            );
            return None;
        };
        let realm = self.camouflage_realm.clone().filter(|r| !r.is_empty());
        if realm
            .as_deref()
            .is_some_and(|r| r.chars().any(|c| c == '"' || c == '\\' || c.is_control()))
        {
            d.error(
                line_of("camouflage_realm"),
                "camouflage_realm cannot contain quotes, backslashes or control characters",
            );
        }
        Some(Camouflage { secret, realm })
    }

    fn finish(
        self,
        mut net: NetSettings,
        lines: BTreeMap<String, usize>,
        mut d: Diag,
    ) -> Result<Loaded, ConfigError> {
        let line_of = |key: &str| lines.get(key).copied().unwrap_or(0);

        // Required keys (ocserv refuses to start without them too). A key that is present
        // but invalid has its own error already.
        let missing = |key: &str| line_of(key) == 0;
        if self.auth.is_empty() && missing("auth") {
            d.error(
                0,
                "no auth method: add e.g. auth = \"plain[passwd=/etc/ocserv/ocpasswd]\"",
            );
        }
        for key in ["server-cert", "server-key", "tcp-port"] {
            if missing(key) {
                d.error(0, format!("{key} is required"));
            }
        }
        if net.ipv4_network.is_none()
            && net.ipv6_network.is_none()
            && line_of("ipv4-network") == 0
            && line_of("ipv6-network") == 0
        {
            d.error(
                0,
                "no addresses to hand out: set ipv4-network and/or ipv6-network",
            );
        }

        if self.server_certs.len() != self.server_keys.len()
            && !self.server_certs.is_empty()
            && !self.server_keys.is_empty()
        {
            d.error(
                line_of("server-key"),
                format!(
                    "{} server-cert lines but {} server-key lines; each certificate needs its key",
                    self.server_certs.len(),
                    self.server_keys.len()
                ),
            );
        }

        // Two password methods cannot both ask for the password (ocserv rejects this too).
        let plain_auth = self.auth.iter().filter(|(m, _)| m.asks_password()).count();
        if plain_auth > 1 {
            if let Some((_, line)) = self.auth.iter().filter(|(m, _)| m.asks_password()).nth(1) {
                d.error(*line, "auth: only one password method can be required");
            }
        }
        if plain_auth > 0 {
            for (m, line) in &self.enable_auth {
                if m.asks_password() {
                    d.error(
                        *line,
                        "enable-auth: a password method cannot be added as an alternative to \
                         the password method in auth",
                    );
                }
            }
        }

        // The token alone decides an OIDC login: a password or GSSAPI method beside it in
        // `auth` would never be asked, so the combination is refused.
        if let Some((_, line)) = self
            .auth
            .iter()
            .find(|(m, _)| matches!(m, AuthMethod::Oidc { .. }))
        {
            let others = self
                .auth
                .iter()
                .any(|(m, _)| m.asks_password() || matches!(m, AuthMethod::Gssapi(_)));
            if others {
                d.error(
                    *line,
                    "auth: oidc cannot be combined with password or gssapi methods (only with \
                     certificate)",
                );
            }
        }

        // A bearer token is sent with the first request, before any method is chosen.
        for (m, line) in &self.enable_auth {
            if matches!(m, AuthMethod::Oidc { .. }) {
                d.error(
                    *line,
                    "enable-auth: oidc can only be the main method (auth = oidc[config=FILE])",
                );
            }
        }

        // Certificate authentication needs a CA to verify against and a field to name the user.
        let cert_line = self
            .auth
            .iter()
            .chain(&self.enable_auth)
            .find(|(m, _)| *m == AuthMethod::Certificate)
            .map(|(_, line)| *line);
        if let Some(line) = cert_line {
            if self.ca_cert.is_none() {
                d.error(line, "certificate authentication needs ca-cert");
            }
            if self.cert_user_oid.is_none() {
                d.error(
                    line,
                    "certificate authentication needs cert-user-oid (e.g. 2.5.4.3 for the CN)",
                );
            }
        }

        // DTLS options, as ocserv's check_cfg combines them.
        let cisco_client_compat = self.cisco_client_compat.unwrap_or(false);
        let mut dtls_legacy = self.dtls_legacy.unwrap_or(true);
        if cisco_client_compat && !dtls_legacy {
            d.warn(
                line_of("dtls-legacy"),
                "cisco-client-compat = true implies dtls-legacy = true; enabling it",
            );
            dtls_legacy = true;
        }
        let match_tls_dtls_ciphers = self.match_tls_dtls_ciphers.unwrap_or(false);
        if match_tls_dtls_ciphers && dtls_legacy {
            d.error(
                line_of("match-tls-dtls-ciphers"),
                "match-tls-dtls-ciphers cannot be used with dtls-legacy (on by default, and \
                 implied by cisco-client-compat); set dtls-legacy = false",
            );
        }

        self.check_not_applied(&lines, &mut d);
        let camouflage = self.camouflage_settings(&line_of, &mut d);

        if let Some(group) = &self.default_select_group {
            if !self.select_groups.is_empty() && !self.select_groups.iter().any(|(n, _)| n == group)
            {
                // ocserv adds it as an extra "group" meaning "my default group"; fine, but
                // worth knowing it is not one of the listed ones.
                d.warn(
                    line_of("default-select-group"),
                    format!(
                        "default-select-group {group} is not one of the select-group entries; \
                         it selects the user's default group"
                    ),
                );
            }
        }

        // Defaults ocserv fills in.
        let dpd = *net.dpd.get_or_insert(defaults::DPD);
        match net.mobile_dpd {
            None => net.mobile_dpd = Some(defaults::MOBILE_DPD),
            // ocserv: mobile-dpd = 0 means "same as dpd".
            Some(0) => net.mobile_dpd = Some(dpd),
            Some(_) => {}
        }
        net.keepalive.get_or_insert(defaults::KEEPALIVE);
        net.tunnel_all_dns.get_or_insert(false);
        net.ipv6_subnet_prefix
            .get_or_insert(defaults::IPV6_SUBNET_PREFIX);
        net.max_same_clients.get_or_insert(0);
        net.restrict_user_to_routes.get_or_insert(false);
        net.deny_roaming.get_or_insert(false);
        if net.mobile_idle_timeout.is_none() {
            net.mobile_idle_timeout = net.idle_timeout;
        }

        if d.test_mode {
            self.check_files(&lines, &mut d);
        }

        let server_pairs: Vec<(PathBuf, PathBuf)> = self
            .server_certs
            .iter()
            .zip(&self.server_keys)
            .map(|((c, _), (k, _))| (c.clone(), k.clone()))
            .collect();
        let config = Config {
            path: d.file.clone(),
            auth: self.auth.into_iter().map(|(m, _)| m).collect(),
            enable_auth: self.enable_auth.into_iter().map(|(m, _)| m).collect(),
            acct: self.acct.map(|(m, _)| m),
            tcp_port: self.tcp_port,
            udp_port: self.udp_port,
            listen_host: self.listen_host,
            udp_listen_host: self.udp_listen_host,
            listen_netns: self.listen_netns,
            server_pairs,
            ca_cert: self.ca_cert,
            crl: self.crl,
            ocsp_response: self.ocsp_response,
            cert_user_oid: self.cert_user_oid,
            cert_group_oid: self.cert_group_oid,
            device: self.device.unwrap_or_else(|| defaults::DEVICE.to_owned()),
            net,
            predictable_ips: self.predictable_ips.unwrap_or(true),
            ping_leases: self.ping_leases.unwrap_or(false),
            listen_proxy_proto: self.listen_proxy_proto.unwrap_or(false),
            syslog_facility: self.syslog_facility,
            key_pin: self.key_pin,
            pin_file: self.pin_file,
            expose_iroutes: self.expose_iroutes.unwrap_or(false),
            listen_host_is_dyndns: self.listen_host_is_dyndns.unwrap_or(false),
            log_level: self.log_level,
            append_routes: self.append_routes.unwrap_or(false),
            camouflage,
            cookie_timeout: self.cookie_timeout.unwrap_or(defaults::COOKIE_TIMEOUT),
            persistent_cookies: self.persistent_cookies.unwrap_or(false),
            max_clients: self.max_clients.unwrap_or(0),
            rate_limit_ms: self.rate_limit_ms.unwrap_or(0),
            server_drain_ms: self.server_drain_ms.unwrap_or(0),
            auth_timeout: self.auth_timeout.unwrap_or(defaults::AUTH_TIMEOUT),
            min_reauth_time: self.min_reauth_time.unwrap_or(defaults::MIN_REAUTH_TIME),
            max_ban_score: self.max_ban_score.unwrap_or(defaults::MAX_BAN_SCORE),
            ban_reset_time: self.ban_reset_time.unwrap_or(defaults::BAN_RESET_TIME),
            ban_points_wrong_password: self
                .ban_points_wrong_password
                .unwrap_or(defaults::BAN_POINTS_WRONG_PASSWORD),
            ban_points_connection: self
                .ban_points_connection
                .unwrap_or(defaults::BAN_POINTS_CONNECTION),
            banner: self.banner,
            pre_login_banner: self.pre_login_banner,
            select_groups: self.select_groups,
            auto_select_group: self.auto_select_group.unwrap_or(false),
            default_select_group: self.default_select_group,
            select_group_by_url: self.select_group_by_url.unwrap_or(false),
            config_per_user: self.config_per_user,
            config_per_group: self.config_per_group,
            default_user_config: self.default_user_config,
            default_group_config: self.default_group_config,
            connect_script: self.connect_script,
            disconnect_script: self.disconnect_script,
            route_add_cmd: self.route_add_cmd,
            host_update_script: self.host_update_script,
            tls_priorities: self.tls_priorities,
            isolate_workers: self.isolate_workers.unwrap_or(false),
            run_as_user: self.run_as_user,
            run_as_group: self.run_as_group,
            metrics_listen: self.metrics_listen,
            worker_threads: self.worker_threads.filter(|n| *n > 0),
            pid_file: self.pid_file,
            chroot_dir: self.chroot_dir,
            socket_file: self.socket_file,
            occtl_socket_file: self.occtl_socket_file,
            use_occtl: self.use_occtl.unwrap_or(false) && !self.occtl_disabled,
            cisco_client_compat,
            dtls_legacy,
            dtls_psk: self.dtls_psk.unwrap_or(true),
            match_tls_dtls_ciphers,
            rekey_time: self.rekey_time.unwrap_or(defaults::REKEY_TIME),
            rekey_method: self.rekey_method.unwrap_or_default(),
            switch_to_tcp_timeout: self
                .switch_to_tcp_timeout
                .unwrap_or(defaults::SWITCH_TO_TCP_TIMEOUT),
            try_mtu_discovery: self.try_mtu_discovery.unwrap_or(false),
            compression: self.compression.unwrap_or(false),
            no_compress_limit: self
                .no_compress_limit
                .unwrap_or(defaults::NO_COMPRESS_LIMIT),
            compression_priorities: self.compression_priorities,
            server_stats_reset_time: self
                .server_stats_reset_time
                .unwrap_or(defaults::SERVER_STATS_RESET_TIME),
            custom_headers: self.custom_headers,
            included_http_headers: self.included_http_headers,
            kkdcp: self.kkdcp,
            ban_points_kkdcp: self.ban_points_kkdcp.unwrap_or(defaults::BAN_POINTS_KKDCP),
            user_profile: self.user_profile,
            key_lines: lines,
            vhosts: Vec::new(),
        };

        // Report in file order: this file's lines, then whole-file problems, then other
        // files (per-user/group files checked under -t).
        let main_file = d.file.clone();
        let order = |p: &super::Problem| (p.file != main_file, p.line == 0, p.line);
        d.errors.sort_by_key(order);
        d.warnings.sort_by_key(order);
        if d.errors.is_empty() {
            Ok(Loaded {
                config,
                warnings: d.warnings,
            })
        } else {
            Err(ConfigError::Invalid(d.errors))
        }
    }

    /// Settings that parse but are not applied (fully): an error where that would enforce
    /// less than asked, a warning naming key and line otherwise.
    fn check_not_applied(&self, lines: &BTreeMap<String, usize>, d: &mut Diag) {
        let line_of = |key: &str| lines.get(key).copied().unwrap_or(0);

        if self.try_mtu_discovery == Some(true) {
            d.warn(
                line_of("try-mtu-discovery"),
                "try-mtu-discovery: not supported yet; ignored (the server does not probe the \
                 path MTU; set it to false to silence this)",
            );
        }
        if self.server_stats_reset_time.is_some_and(|t| t != 0) {
            d.warn(
                line_of("server-stats-reset-time"),
                "server-stats-reset-time: not supported yet; ignored (the statistics occtl shows \
                 count from server start and are never reset)",
            );
        }
        if self.cisco_client_compat == Some(true) {
            let key = if line_of("cisco-client-compat") != 0 {
                "cisco-client-compat"
            } else {
                "always-require-cert"
            };
            d.warn(
                line_of(key),
                format!(
                    "{key}: only partly supported; it implies dtls-legacy = true, but TLS 1.3 is \
                     not turned off for Cisco clients (add :-VERS-TLS1.3 to tls-priorities if \
                     they need that)"
                ),
            );
        }
    }

    /// `-t`: everything the config points at must exist (and scripts must be executable);
    /// per-user/group files are validated too, since at run time a broken one only shows up
    /// when that user logs in.
    fn check_files(&self, lines: &BTreeMap<String, usize>, d: &mut Diag) {
        let line_of = |key: &str| lines.get(key).copied().unwrap_or(0);
        for (p, line) in &self.server_certs {
            check_path(d, *line, "server-cert", p, Kind::File);
        }
        for (p, line) in &self.server_keys {
            check_path(d, *line, "server-key", p, Kind::File);
        }
        for (m, line) in self.auth.iter().chain(&self.enable_auth) {
            match m {
                AuthMethod::Plain { passwd, otp } => {
                    if let Some(passwd) = passwd {
                        check_path(d, *line, "passwd", passwd, Kind::File);
                    }
                    if let Some(otp) = otp {
                        check_path(d, *line, "otp", otp, Kind::File);
                        check_users_file(d, *line, otp);
                    }
                }
                AuthMethod::Radius(radius) => check_radius(d, *line, radius),
                AuthMethod::Gssapi(GssapiMethod {
                    keytab: Some(keytab),
                    ..
                }) => check_path(d, *line, "keytab", keytab, Kind::File),
                AuthMethod::Oidc { config } => check_oidc(d, *line, config),
                AuthMethod::Certificate | AuthMethod::Pam(_) | AuthMethod::Gssapi(_) => {}
            }
        }
        if let Some((AcctMethod::Radius(radius), line)) = &self.acct {
            check_radius(d, *line, radius);
        }
        let files = [
            ("ca-cert", &self.ca_cert, Kind::File),
            ("crl", &self.crl, Kind::File),
            ("ocsp-response", &self.ocsp_response, Kind::File),
            ("pin-file", &self.pin_file, Kind::File),
            ("connect-script", &self.connect_script, Kind::Exec),
            ("disconnect-script", &self.disconnect_script, Kind::Exec),
            ("host-update-script", &self.host_update_script, Kind::Exec),
            ("config-per-user", &self.config_per_user, Kind::Dir),
            ("config-per-group", &self.config_per_group, Kind::Dir),
            ("default-user-config", &self.default_user_config, Kind::File),
            (
                "default-group-config",
                &self.default_group_config,
                Kind::File,
            ),
            ("user-profile", &self.user_profile, Kind::File),
        ];
        for (key, p, kind) in files {
            if let Some(p) = p {
                check_path(d, line_of(key), key, p, kind);
            }
        }
        for (key, dir) in [
            ("config-per-user", &self.config_per_user),
            ("config-per-group", &self.config_per_group),
        ] {
            if let Some(dir) = dir {
                check_override_dir(d, line_of(key), key, dir);
            }
        }
        for (key, file) in [
            ("default-user-config", &self.default_user_config),
            ("default-group-config", &self.default_group_config),
        ] {
            if let Some(file) = file {
                check_override_file(d, line_of(key), key, file);
            }
        }
        if let Some(user) = &self.run_as_user {
            check_account(
                d,
                line_of("run-as-user"),
                "run-as-user",
                "user",
                user,
                |n| nix::unistd::User::from_name(n).map(|u| u.is_some()),
            );
        }
        if let Some(group) = &self.run_as_group {
            check_account(
                d,
                line_of("run-as-group"),
                "run-as-group",
                "group",
                group,
                |n| nix::unistd::Group::from_name(n).map(|g| g.is_some()),
            );
        }
    }
}

fn port(e: &Entry, d: &mut Diag) -> Option<u16> {
    checked(e, d, value::parse_port(&e.value))
}

/// `Name: value` with a header name of token characters (RFC 9110); the value trimmed.
fn header_line(text: &str) -> Option<(String, String)> {
    let (name, value) = text.split_once(':')?;
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    (!name.is_empty() && name.chars().all(token))
        .then(|| (name.to_owned(), value.trim().to_owned()))
}
