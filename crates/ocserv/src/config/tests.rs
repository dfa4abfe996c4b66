#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::*;

/// A valid minimal config: 5 lines, so the first extra line is line 6.
const BASE: &str = "auth = \"plain[passwd=/etc/ocserv/passwd]\"
tcp-port = 443
server-cert = /c.pem
server-key = /k.pem
ipv4-network = 192.168.1.0/24
";
const L: usize = 6;

fn file() -> &'static Path {
    Path::new("t.conf")
}

fn try_parse(extra: &str) -> Result<Loaded, ConfigError> {
    parse(&format!("{BASE}{extra}"), file(), false)
}

fn ok(extra: &str) -> Loaded {
    try_parse(extra).unwrap_or_else(|e| panic!("{extra:?} should parse:\n{e}"))
}

fn cfg(extra: &str) -> Config {
    ok(extra).config
}

fn errors_of(r: Result<Loaded, ConfigError>, what: &str) -> Vec<Problem> {
    match r {
        Err(ConfigError::Invalid(p)) => p,
        Err(e) => panic!("{what}: unexpected error {e}"),
        Ok(l) => panic!("{what}: expected errors, parsed fine: {:?}", l.warnings),
    }
}

fn errs(extra: &str) -> Vec<Problem> {
    errors_of(try_parse(extra), extra)
}

/// Whether some problem is at `line` and mentions `needle`.
fn has(problems: &[Problem], line: usize, needle: &str) -> bool {
    problems
        .iter()
        .any(|p| p.line == line && p.message.contains(needle))
}

#[track_caller]
fn assert_has(problems: &[Problem], line: usize, needle: &str) {
    assert!(
        has(problems, line, needle),
        "no problem at line {line} containing {needle:?} in {problems:#?}"
    );
}

fn net4(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!(
            "ferroconnect-config-{tag}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------
// Defaults and the minimal config

#[test]
fn minimal_config_gets_ocserv_defaults() {
    let l = ok("");
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let c = l.config;
    assert_eq!(c.path, PathBuf::from("t.conf"));
    assert_eq!(
        c.auth,
        vec![AuthMethod::Plain {
            passwd: Some("/etc/ocserv/passwd".into()),
            otp: None
        }]
    );
    assert!(c.enable_auth.is_empty());
    assert_eq!(c.tcp_port, Some(443));
    assert_eq!(c.udp_port, None);
    assert_eq!(c.listen_host, None);
    assert_eq!(c.server_cert, PathBuf::from("/c.pem"));
    assert_eq!(c.server_key, PathBuf::from("/k.pem"));
    assert_eq!(c.device, "vpns");
    assert!(c.predictable_ips);
    assert!(!c.ping_leases);
    assert_eq!(c.cookie_timeout, 300);
    assert!(!c.persistent_cookies);
    assert_eq!(c.max_clients, 0);
    assert_eq!(c.rate_limit_ms, 0);
    assert_eq!(c.auth_timeout, 240);
    assert_eq!(c.min_reauth_time, 300);
    assert_eq!(
        (
            c.max_ban_score,
            c.ban_reset_time,
            c.ban_points_wrong_password,
            c.ban_points_connection
        ),
        (80, 1200, 10, 1)
    );
    assert!(!c.isolate_workers);
    assert!(!c.use_occtl);
    assert!(!c.cisco_client_compat);
    assert!(c.dtls_legacy);
    assert!(c.dtls_psk);
    assert!(!c.match_tls_dtls_ciphers);
    assert_eq!(c.rekey_time, 172_800);
    assert_eq!(c.rekey_method, RekeyMethod::Ssl);
    assert_eq!(c.switch_to_tcp_timeout, 25);
    assert!(!c.try_mtu_discovery);
    assert!(!c.compression);
    assert_eq!(c.no_compress_limit, 256);
    assert_eq!(c.server_stats_reset_time, 604_800);
    assert!(c.custom_headers.is_empty());

    let n = &c.net;
    assert_eq!(n.ipv4_network, Some(net4("192.168.1.0/24")));
    assert_eq!(n.ipv6_network, None);
    assert_eq!(n.routes, Some(vec![]));
    assert_eq!(n.default_route, Some(true));
    assert_eq!(n.no_routes, Some(vec![]));
    assert_eq!(n.iroutes, None);
    assert_eq!(n.dns, Some(vec![]));
    assert_eq!(n.nbns, Some(vec![]));
    assert_eq!(n.split_dns, Some(vec![]));
    assert_eq!(n.dpd, Some(90));
    assert_eq!(n.mobile_dpd, Some(1800));
    assert_eq!(n.keepalive, Some(32400));
    assert_eq!(n.tunnel_all_dns, Some(false));
    assert_eq!(n.ipv6_subnet_prefix, Some(128));
    assert_eq!(n.max_same_clients, Some(0));
    assert_eq!(n.restrict_user_to_routes, Some(false));
    assert_eq!(n.deny_roaming, Some(false));
    assert_eq!(n.idle_timeout, None);
    assert_eq!(n.mobile_idle_timeout, None);
    assert_eq!(n.session_timeout, None);
    assert_eq!(n.mtu, None);
    assert_eq!(n.hostname, None);
}

#[test]
fn missing_required_keys_are_all_reported() {
    let p = errors_of(parse("", file(), false), "empty");
    for needle in [
        "auth",
        "server-cert",
        "server-key",
        "tcp-port",
        "ipv4-network",
    ] {
        assert_has(&p, 0, needle);
    }
    assert_eq!(p.len(), 5, "{p:#?}");
    // The error's Display lists every problem, one per line.
    let shown = ConfigError::Invalid(p).to_string();
    assert_eq!(shown.lines().count(), 5);
    assert!(shown.lines().all(|l| l.starts_with("t.conf: ")), "{shown}");
}

#[test]
fn only_ipv6_is_enough() {
    let text = BASE.replace(
        "ipv4-network = 192.168.1.0/24",
        "ipv6-network = fd00:1:2::/48",
    );
    let c = parse(&text, file(), false).unwrap().config;
    assert_eq!(c.net.ipv4_network, None);
    assert_eq!(c.net.ipv6_network, Some("fd00:1:2::/48".parse().unwrap()));
}

#[test]
fn problem_display() {
    let p = Problem {
        file: "/etc/ocserv/ocserv.conf".into(),
        line: 12,
        message: "dpd: expected a number of seconds, got \"x\"".into(),
    };
    assert_eq!(
        p.to_string(),
        "/etc/ocserv/ocserv.conf:12: dpd: expected a number of seconds, got \"x\""
    );
    let whole = Problem { line: 0, ..p };
    assert!(whole
        .to_string()
        .starts_with("/etc/ocserv/ocserv.conf: dpd"));
}

#[test]
fn every_problem_is_reported() {
    let p = errs("dpd = soon\nroute = nowhere\nauth = pam\nmtu = 5\n");
    assert_has(&p, L, "dpd: expected a number of seconds, got \"soon\"");
    assert_has(&p, L + 1, "route:");
    assert_has(&p, L + 2, "pam is not supported yet");
    assert_has(&p, L + 3, "mtu");
    assert_eq!(p.len(), 4, "{p:#?}");
}

// ---------------------------------------------------------------------------------------
// Every key: a good value lands in its field

type Check = fn(&Config) -> bool;

const GOOD: &[(&str, Check)] = &[
    ("udp-port = 4443", |c| c.udp_port == Some(4443)),
    ("listen-host = 127.0.0.1", |c| {
        c.listen_host.as_deref() == Some("127.0.0.1")
    }),
    ("ca-cert = /etc/ocserv/ca.pem", |c| {
        c.ca_cert == Some("/etc/ocserv/ca.pem".into())
    }),
    ("cert-user-oid = 2.5.4.3", |c| {
        c.cert_user_oid == Some(CertOid::Oid("2.5.4.3".into()))
    }),
    ("cert-user-oid = SAN(rfc822name)", |c| {
        c.cert_user_oid == Some(CertOid::SanRfc822Name)
    }),
    ("cert-group-oid = 2.5.4.11", |c| {
        c.cert_group_oid == Some(CertOid::Oid("2.5.4.11".into()))
    }),
    ("device = tun", |c| c.device == "tun"),
    ("predictable-ips = false", |c| !c.predictable_ips),
    ("ping-leases = true", |c| c.ping_leases),
    ("cookie-timeout = 600", |c| c.cookie_timeout == 600),
    ("persistent-cookies = Yes", |c| c.persistent_cookies),
    ("max-clients = 16", |c| c.max_clients == 16),
    ("rate-limit-ms = 100", |c| c.rate_limit_ms == 100),
    ("auth-timeout = 30", |c| c.auth_timeout == 30),
    ("min-reauth-time = 5", |c| c.min_reauth_time == 5),
    ("max-ban-score = 0", |c| c.max_ban_score == 0),
    ("ban-reset-time = 10", |c| c.ban_reset_time == 10),
    ("ban-points-wrong-password = 3", |c| {
        c.ban_points_wrong_password == 3
    }),
    ("ban-points-connection = 2", |c| {
        c.ban_points_connection == 2
    }),
    ("banner = \"Welcome to the VPN\"", |c| {
        c.banner.as_deref() == Some("Welcome to the VPN")
    }),
    ("pre-login-banner = Authorised use only", |c| {
        c.pre_login_banner.as_deref() == Some("Authorised use only")
    }),
    ("select-group = group2[My special group]", |c| {
        c.select_groups == vec![("group2".into(), Some("My special group".into()))]
    }),
    ("select-group = group1", |c| {
        c.select_groups == vec![("group1".into(), None)]
    }),
    ("auto-select-group = true", |c| c.auto_select_group),
    ("default-select-group = DEFAULT", |c| {
        c.default_select_group.as_deref() == Some("DEFAULT")
    }),
    ("select-group-by-url = true", |c| c.select_group_by_url),
    ("config-per-user = /etc/ocserv/config-per-user/", |c| {
        c.config_per_user == Some("/etc/ocserv/config-per-user/".into())
    }),
    ("config-per-group = groups", |c| {
        c.config_per_group == Some("groups".into())
    }),
    (
        "default-user-config = /etc/ocserv/defaults/user.conf",
        |c| c.default_user_config == Some("/etc/ocserv/defaults/user.conf".into()),
    ),
    ("default-group-config = ../group.conf", |c| {
        c.default_group_config == Some("../group.conf".into())
    }),
    ("connect-script = /usr/bin/myscript", |c| {
        c.connect_script == Some("/usr/bin/myscript".into())
    }),
    ("disconnect-script = /usr/bin/myscript", |c| {
        c.disconnect_script == Some("/usr/bin/myscript".into())
    }),
    ("host-update-script = ./hu.sh", |c| {
        c.host_update_script == Some("./hu.sh".into())
    }),
    (
        "tls-priorities = \"NORMAL:%SERVER_PRECEDENCE:%COMPAT:-VERS-SSL3.0\"",
        |c| c.tls_priorities.as_deref() == Some("NORMAL:%SERVER_PRECEDENCE:%COMPAT:-VERS-SSL3.0"),
    ),
    ("isolate-workers = true", |c| c.isolate_workers),
    ("run-as-user = ocserv", |c| {
        c.run_as_user.as_deref() == Some("ocserv")
    }),
    ("run-as-group = ocserv", |c| {
        c.run_as_group.as_deref() == Some("ocserv")
    }),
    ("pid-file = /run/ocserv.pid", |c| {
        c.pid_file == Some("/run/ocserv.pid".into())
    }),
    ("socket-file = /run/ocserv-socket", |c| {
        c.socket_file == Some("/run/ocserv-socket".into())
    }),
    ("occtl-socket-file = /run/occtl.socket", |c| {
        c.occtl_socket_file == Some("/run/occtl.socket".into())
    }),
    ("use-occtl = true", |c| c.use_occtl),
    ("cisco-client-compat = true", |c| {
        c.cisco_client_compat && c.dtls_legacy
    }),
    ("dtls-legacy = false", |c| !c.dtls_legacy),
    ("dtls-psk = false", |c| !c.dtls_psk),
    ("rekey-time = 0", |c| c.rekey_time == 0),
    ("rekey-method = new-tunnel", |c| {
        c.rekey_method == RekeyMethod::NewTunnel
    }),
    ("rekey-method = ssl", |c| c.rekey_method == RekeyMethod::Ssl),
    ("switch-to-tcp-timeout = 0", |c| {
        c.switch_to_tcp_timeout == 0
    }),
    ("try-mtu-discovery = true", |c| c.try_mtu_discovery),
    ("compression = true", |c| c.compression),
    ("no-compress-limit = 512", |c| c.no_compress_limit == 512),
    ("server-stats-reset-time = 86400", |c| {
        c.server_stats_reset_time == 86400
    }),
    ("custom-header = \"X-My-Header: hi there\"", |c| {
        c.custom_headers == vec!["X-My-Header: hi there".to_owned()]
    }),
    ("user-profile = profile.xml", |c| {
        c.user_profile == Some("profile.xml".into())
    }),
    (
        "enable-auth = certificate\nca-cert = /ca.pem\ncert-user-oid = 2.5.4.3",
        |c| c.enable_auth == vec![AuthMethod::Certificate],
    ),
    // NetSettings keys.
    ("route = 10.0.0.0/8", |c| {
        c.net.routes == Some(vec![net("10.0.0.0/8")]) && c.net.default_route == Some(false)
    }),
    ("route = fef4:db8:1000:1001::/64", |c| {
        c.net.routes == Some(vec![net("fef4:db8:1000:1001::/64")])
    }),
    ("no-route = 192.168.5.0/255.255.255.0", |c| {
        c.net.no_routes == Some(vec![net("192.168.5.0/24")])
    }),
    ("dns = 192.168.1.2", |c| {
        c.net.dns == Some(vec![IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2))])
    }),
    ("dns = fc00::4be0", |c| {
        c.net.dns == Some(vec!["fc00::4be0".parse().unwrap()])
    }),
    ("ipv4-dns = 10.0.0.53", |c| {
        c.net.dns == Some(vec!["10.0.0.53".parse().unwrap()])
    }),
    ("ipv6-dns = fd00::53", |c| {
        c.net.dns == Some(vec!["fd00::53".parse().unwrap()])
    }),
    ("nbns = 192.168.1.3", |c| {
        c.net.nbns == Some(vec!["192.168.1.3".parse().unwrap()])
    }),
    ("ipv4-nbns = 192.168.1.4", |c| {
        c.net.nbns == Some(vec!["192.168.1.4".parse().unwrap()])
    }),
    ("ipv6-nbns = fd00::4", |c| {
        c.net.nbns == Some(vec!["fd00::4".parse().unwrap()])
    }),
    ("split-dns = example.com", |c| {
        c.net.split_dns == Some(vec!["example.com".to_owned()])
    }),
    ("default-domain = \"example.com one.example.com\"", |c| {
        c.net.default_domain.as_deref() == Some("example.com one.example.com")
    }),
    ("tunnel-all-dns = true", |c| {
        c.net.tunnel_all_dns == Some(true)
    }),
    // (The sample config's example; it has host bits set, which are cleared with a warning.)
    ("ipv6-network = fda9:4efe:7e3b:03ea::/48", |c| {
        c.net.ipv6_network == Some("fda9:4efe:7e3b::/48".parse().unwrap())
    }),
    ("ipv6-network = fda9:4efe:7e3b:03ea::/64", |c| {
        c.net.ipv6_network == Some("fda9:4efe:7e3b:3ea::/64".parse().unwrap())
    }),
    ("ipv6-network = fd00::/48\nipv6-subnet-prefix = 64", |c| {
        c.net.ipv6_subnet_prefix == Some(64)
    }),
    ("ipv6-network = fd00::\nipv6-prefix = 48", |c| {
        c.net.ipv6_network == Some("fd00::/48".parse().unwrap())
    }),
    ("mtu = 1420", |c| c.net.mtu == Some(1420)),
    ("dpd = 30", |c| c.net.dpd == Some(30)),
    ("mobile-dpd = 60", |c| c.net.mobile_dpd == Some(60)),
    ("keepalive = 10", |c| c.net.keepalive == Some(10)),
    ("idle-timeout = 1200", |c| {
        c.net.idle_timeout == Some(1200) && c.net.mobile_idle_timeout == Some(1200)
    }),
    ("mobile-idle-timeout = 2400", |c| {
        c.net.mobile_idle_timeout == Some(2400)
    }),
    ("session-timeout = 86400", |c| {
        c.net.session_timeout == Some(86400)
    }),
    ("max-same-clients = 2", |c| {
        c.net.max_same_clients == Some(2)
    }),
    ("restrict-user-to-routes = false", |c| {
        c.net.restrict_user_to_routes == Some(false)
    }),
    ("restrict-user-to-routes = true", |c| {
        c.net.restrict_user_to_routes == Some(true)
    }),
    ("deny-roaming = false", |c| {
        c.net.deny_roaming == Some(false)
    }),
    ("rx-data-per-sec = 40000", |c| {
        c.net.rx_data_per_sec == Some(40000)
    }),
    ("tx-data-per-sec = 50000", |c| {
        c.net.tx_data_per_sec == Some(50000)
    }),
    ("stats-report-time = 360", |c| {
        c.net.stats_report_time == Some(360)
    }),
    ("ipv4-network = 10.1.0.0\nipv4-netmask = 255.255.0.0", |c| {
        c.net.ipv4_network == Some(net4("10.1.0.0/16"))
    }),
];

#[test]
fn every_key_parses_a_good_value() {
    for (line, check) in GOOD {
        // ipv4-network is in BASE; a test that sets it again replaces it (with a warning).
        let l = ok(line);
        assert!(check(&l.config), "{line:?} did not land in its field");
        assert!(
            l.warnings.iter().all(|w| !w.message.contains("unknown")),
            "{line:?}: {:?}",
            l.warnings
        );
    }
}

// ---------------------------------------------------------------------------------------
// Every key: a bad value is an error at its line, naming the key

const BAD: &[(&str, &str)] = &[
    ("auth = pam", "auth: auth method pam is not supported yet"),
    ("auth = \"pam[gid-min=1000]\"", "pam is not supported yet"),
    (
        "auth = \"radius[config=/etc/radiusclient/radiusclient.conf]\"",
        "radius",
    ),
    ("auth = gssapi", "gssapi is not supported yet"),
    ("auth = oidc[config=/x]", "oidc is not supported yet"),
    ("auth = password", "unknown auth method"),
    ("auth = plain", "plain needs a password file"),
    ("auth = \"plain[passwd=/x,foo=1]\"", "unknown plain option"),
    ("auth = \"plain[passwd=,otp=]\"", "empty value"),
    ("auth = \"plain[passwd=/x\"", "missing ']'"),
    ("auth = certificate[x=1]", "certificate takes no options"),
    (
        "enable-auth = radius",
        "enable-auth: auth method radius is not supported yet",
    ),
    ("tcp-port = 0", "tcp-port: expected a port number"),
    ("udp-port = https", "udp-port: expected a port number"),
    ("udp-port = 70000", "udp-port: expected a port number"),
    ("listen-host = \"a b\"", "listen-host"),
    ("server-cert = pkcs11:object=key", "PKCS#11"),
    ("server-key = \"\"", "server-key: expected a path"),
    ("ca-cert = \"\"", "ca-cert: expected a path"),
    ("cert-user-oid = CN", "cert-user-oid: expected a dotted OID"),
    (
        "cert-group-oid = 2..5",
        "cert-group-oid: expected a dotted OID",
    ),
    ("device = vpn-devices-are-long", "device: device name"),
    ("device = vpn/x", "device: device name"),
    (
        "predictable-ips = maybe",
        "predictable-ips: expected true or false, got \"maybe\"",
    ),
    ("ping-leases = 1", "ping-leases: expected true or false"),
    (
        "cookie-timeout = abc",
        "cookie-timeout: expected a number of seconds, got \"abc\"",
    ),
    (
        "cookie-timeout = -1",
        "cookie-timeout: expected a number of seconds",
    ),
    (
        "persistent-cookies = on",
        "persistent-cookies: expected true or false",
    ),
    ("max-clients = many", "max-clients: expected a number"),
    (
        "rate-limit-ms = 1.5",
        "rate-limit-ms: expected a number of milliseconds",
    ),
    (
        "auth-timeout = 4m",
        "auth-timeout: expected a number of seconds",
    ),
    (
        "min-reauth-time = x",
        "min-reauth-time: expected a number of seconds",
    ),
    ("max-ban-score = x", "max-ban-score: expected a score"),
    (
        "ban-reset-time = x",
        "ban-reset-time: expected a number of seconds",
    ),
    (
        "ban-points-wrong-password = x",
        "ban-points-wrong-password: expected a number",
    ),
    (
        "ban-points-connection = x",
        "ban-points-connection: expected a number",
    ),
    ("select-group = \"g[Friendly\"", "select-group: missing ']'"),
    (
        "select-group = [Friendly]",
        "select-group: expected a group name",
    ),
    (
        "auto-select-group = 2",
        "auto-select-group: expected true or false",
    ),
    (
        "default-select-group = \"\"",
        "default-select-group: expected a group name",
    ),
    (
        "select-group-by-url = x",
        "select-group-by-url: expected true or false",
    ),
    ("config-per-user = \"\"", "config-per-user: expected a path"),
    (
        "config-per-group = \"\"",
        "config-per-group: expected a path",
    ),
    (
        "default-user-config = \"\"",
        "default-user-config: expected a path",
    ),
    (
        "default-group-config = \"\"",
        "default-group-config: expected a path",
    ),
    ("connect-script = \"\"", "connect-script: expected a path"),
    (
        "disconnect-script = \"\"",
        "disconnect-script: expected a path",
    ),
    (
        "host-update-script = \"\"",
        "host-update-script: expected a path",
    ),
    (
        "tls-priorities = \"\"",
        "tls-priorities: expected a priority string",
    ),
    (
        "isolate-workers = 1",
        "isolate-workers: expected true or false",
    ),
    ("run-as-user = \"a b\"", "run-as-user: expected a user name"),
    ("run-as-group = \"\"", "run-as-group: expected a group name"),
    ("pid-file = \"\"", "pid-file: expected a path"),
    ("socket-file = \"\"", "socket-file: expected a path"),
    (
        "occtl-socket-file = \"\"",
        "occtl-socket-file: expected a path",
    ),
    ("use-occtl = enabled", "use-occtl: expected true or false"),
    (
        "cisco-client-compat = y",
        "cisco-client-compat: expected true or false",
    ),
    ("dtls-legacy = x", "dtls-legacy: expected true or false"),
    ("dtls-psk = x", "dtls-psk: expected true or false"),
    (
        "match-tls-dtls-ciphers = x",
        "match-tls-dtls-ciphers: expected true or false",
    ),
    (
        "rekey-time = 2d",
        "rekey-time: expected a number of seconds",
    ),
    (
        "rekey-method = tls",
        "rekey-method: expected ssl or new-tunnel",
    ),
    (
        "switch-to-tcp-timeout = x",
        "switch-to-tcp-timeout: expected a number of seconds",
    ),
    (
        "try-mtu-discovery = x",
        "try-mtu-discovery: expected true or false",
    ),
    ("compression = lz4", "compression: expected true or false"),
    (
        "no-compress-limit = x",
        "no-compress-limit: expected a number of bytes",
    ),
    (
        "server-stats-reset-time = x",
        "server-stats-reset-time: expected a number of seconds",
    ),
    (
        "custom-header = \"no colon here\"",
        "custom-header: expected \"Name: value\"",
    ),
    ("user-profile = \"\"", "user-profile: expected a path"),
    ("route = 10.0.0.0", "route: expected a network"),
    (
        "route = 10.0.0.0/33",
        "route: prefix length 33 is out of range 0-32",
    ),
    (
        "route = 10.0.0.0/255.0.255.0",
        "route: netmask 255.0.255.0 is not contiguous",
    ),
    (
        "route = fd00::/255.255.0.0",
        "route: an IPv6 network needs a prefix length",
    ),
    (
        "route = fd00::/129",
        "route: prefix length 129 is out of range 0-128",
    ),
    (
        "route = nowhere/8",
        "route: expected an IP address before '/'",
    ),
    (
        "no-route = default",
        "no-route: 'default' is only valid for route",
    ),
    ("no-route = 10.0.0.0", "no-route: expected a network"),
    (
        "dns = local",
        "dns: the 'local' keyword is no longer supported",
    ),
    ("dns = 1.2.3", "dns: expected an IP address"),
    ("ipv4-dns = x", "ipv4-dns: expected an IP address"),
    ("ipv6-dns = x", "ipv6-dns: expected an IP address"),
    ("nbns = x", "nbns: expected an IP address"),
    ("ipv4-nbns = x", "ipv4-nbns: expected an IP address"),
    ("ipv6-nbns = x", "ipv6-nbns: expected an IP address"),
    (
        "split-dns = \"a.com b.com\"",
        "split-dns: expected one domain name",
    ),
    ("split-dns = \"\"", "split-dns: expected a domain name"),
    (
        "default-domain = \"\"",
        "default-domain: expected a domain name",
    ),
    (
        "tunnel-all-dns = x",
        "tunnel-all-dns: expected true or false",
    ),
    (
        "ipv4-network = 192.168.1",
        "ipv4-network: expected an IPv4 network",
    ),
    (
        "ipv4-netmask = 255.0.255.0",
        "ipv4-netmask: netmask 255.0.255.0 is not contiguous",
    ),
    ("ipv4-netmask = 24", "ipv4-netmask: expected a netmask"),
    (
        "ipv6-network = zz::/48",
        "ipv6-network: expected an IPv6 network",
    ),
    (
        "ipv6-prefix = 5",
        "ipv6-prefix: expected an IPv6 prefix length (11-128)",
    ),
    (
        "ipv6-subnet-prefix = 200",
        "ipv6-subnet-prefix: expected an IPv6 prefix length",
    ),
    ("mtu = 10", "mtu: expected an MTU of 68-65535 bytes"),
    ("mtu = big", "mtu: expected an MTU in bytes"),
    ("dpd = x", "dpd: expected a number of seconds"),
    ("mobile-dpd = x", "mobile-dpd: expected a number of seconds"),
    ("keepalive = x", "keepalive: expected a number of seconds"),
    (
        "idle-timeout = x",
        "idle-timeout: expected a number of seconds",
    ),
    (
        "mobile-idle-timeout = x",
        "mobile-idle-timeout: expected a number of seconds",
    ),
    (
        "session-timeout = x",
        "session-timeout: expected a number of seconds",
    ),
    (
        "max-same-clients = x",
        "max-same-clients: expected a number",
    ),
    (
        "restrict-user-to-routes = x",
        "restrict-user-to-routes: expected true or false",
    ),
    ("deny-roaming = x", "deny-roaming: expected true or false"),
    (
        "rx-data-per-sec = -5",
        "rx-data-per-sec: expected a number of bytes per second",
    ),
    (
        "tx-data-per-sec = 1e6",
        "tx-data-per-sec: expected a number of bytes per second",
    ),
    (
        "stats-report-time = x",
        "stats-report-time: expected a number of seconds",
    ),
    ("dpd = 99999999999", "too large"),
    (
        "listen-clear-file = /run/x",
        "listen-clear-file was removed",
    ),
    (
        "banner = \"a\" b",
        "unexpected text after the closing quote",
    ),
    ("banner = \"a\rb\"", "control character"),
    ("just some words", "expected KEY = VALUE"),
    ("= value", "missing key"),
    ("[vhost:", "section header without a closing ']'"),
    ("[vhost:]", "virtual host section without a name"),
];

#[test]
fn every_key_reports_a_bad_value_at_its_line() {
    for (line, needle) in BAD {
        let p = errs(line);
        assert!(
            has(&p, L, needle),
            "{line:?}: no error at line {L} containing {needle:?} in {p:#?}"
        );
    }
}

#[test]
fn bad_value_keeps_the_default() {
    // The error fails the load, but the value is not half-applied in between: a following
    // good value for the same key is still taken (and reported as a repeat).
    let p = errs("dpd = x\ndpd = 10\n");
    assert_eq!(p.len(), 1);
}

// ---------------------------------------------------------------------------------------
// Syntax: quotes, comments, separators, continuation lines

#[test]
fn quotes_comments_and_whitespace() {
    let l = ok("# a comment\n   ; another comment\n\n\
                banner = \"Hello # world\"   # trailing comment\n\
                dns = 1.1.1.1 # comment\n\
                default-domain = example.com   \t\n\
                pre-login-banner = \"unbalanced\n\
                split-dns:example.org\n\
                default-select-group =#grp\n");
    let c = &l.config;
    assert_eq!(c.banner.as_deref(), Some("Hello # world"));
    assert_has(
        &l.warnings,
        L + 3,
        "ocserv 1.x would treat it as the start of a comment",
    );
    assert_eq!(c.net.dns, Some(vec!["1.1.1.1".parse().unwrap()]));
    assert_eq!(c.net.default_domain.as_deref(), Some("example.com"));
    assert_eq!(c.pre_login_banner.as_deref(), Some("unbalanced"));
    assert_has(&l.warnings, L + 6, "missing closing quote");
    // inih takes ':' as a separator too.
    assert_eq!(c.net.split_dns, Some(vec!["example.org".to_owned()]));
    // '#' right after '=' (no whitespace before it) is not a comment: it is the value.
    assert_eq!(c.default_select_group.as_deref(), Some("#grp"));
    assert_eq!(l.warnings.len(), 2, "{:?}", l.warnings);
}

#[test]
fn hash_after_equals_with_space_is_an_empty_value() {
    let p = errs("banner = ok\ntls-priorities = # nothing\n");
    assert_has(&p, L + 1, "tls-priorities: expected a priority string");
}

#[test]
fn crlf_and_bom_are_accepted() {
    let text = format!("\u{feff}{}", BASE.replace('\n', "\r\n"));
    let c = parse(&text, file(), false).unwrap().config;
    assert_eq!(c.tcp_port, Some(443));
    assert_eq!(c.server_key, PathBuf::from("/k.pem"));
}

#[test]
fn repeated_keys_accumulate_or_replace() {
    let l = ok(
        "route = 10.0.0.0/8\nroute = 172.16.0.0/12\nroute = 192.168.0.0/16\n\
                dns = 192.168.1.1\ndns = fc00::4be0\n\
                select-group = group1\nselect-group = group2[My special group]\n\
                custom-header = \"X-A: 1\"\ncustom-header = \"X-B: 2\"\n\
                split-dns = a.example\nsplit-dns = b.example\n\
                nbns = 10.0.0.1\nnbns = 10.0.0.2\n\
                no-route = 10.1.0.0/16\nno-route = 10.2.0.0/16\n\
                dpd = 10\ndpd = 20\n",
    );
    let c = &l.config;
    assert_eq!(
        c.net.routes,
        Some(vec![
            net("10.0.0.0/8"),
            net("172.16.0.0/12"),
            net("192.168.0.0/16")
        ])
    );
    assert_eq!(c.net.dns.as_ref().map(Vec::len), Some(2));
    assert_eq!(c.select_groups.len(), 2);
    assert_eq!(c.custom_headers, vec!["X-A: 1", "X-B: 2"]);
    assert_eq!(c.net.split_dns.as_ref().map(Vec::len), Some(2));
    assert_eq!(c.net.nbns.as_ref().map(Vec::len), Some(2));
    assert_eq!(c.net.no_routes.as_ref().map(Vec::len), Some(2));
    // A scalar given twice: the last wins, with a warning naming both lines.
    assert_eq!(c.net.dpd, Some(20));
    assert_has(
        &l.warnings,
        L + 16,
        "dpd is set again; this replaces the value on line 21",
    );
    assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
}

#[test]
fn indented_line_continues_the_previous_key() {
    let l = ok("route = 10.0.0.0/8\n    192.168.0.0/16\n  fd00::/64\n");
    assert_eq!(
        l.config.net.routes,
        Some(vec![
            net("10.0.0.0/8"),
            net("192.168.0.0/16"),
            net("fd00::/64")
        ])
    );
    assert_has(&l.warnings, L + 1, "continues the previous key");
    assert_has(&l.warnings, L + 2, "continues the previous key");
}

#[test]
fn indented_setting_is_an_error() {
    let p = errs("route = 10.0.0.0/8\n  dns = 1.1.1.1\n");
    assert_has(&p, L + 1, "indented setting");
}

#[test]
fn indentation_at_the_top_is_fine() {
    let text = BASE.lines().map(|l| format!("  {l}\n")).collect::<String>();
    // Only the first line can be indented without continuing a key.
    let p = errors_of(parse(&text, file(), false), "indented");
    assert_has(&p, 2, "indented setting");
    let c = parse(&format!("  {BASE}"), file(), false).unwrap().config;
    assert_eq!(c.auth.len(), 1);
}

#[test]
fn key_name_lookup_is_exact() {
    let l = ok("DPD = 10\n");
    assert_eq!(l.config.net.dpd, Some(90));
    assert_has(
        &l.warnings,
        L,
        "unknown key \"DPD\" (ignored); did you mean dpd?",
    );
}

// ---------------------------------------------------------------------------------------
// Routes and networks

#[test]
fn route_host_bits_are_cleared_with_a_warning() {
    let l = ok("route = 192.168.1.1/24\nno-route = 10.0.0.1/255.0.0.0\n");
    assert_eq!(l.config.net.routes, Some(vec![net("192.168.1.0/24")]));
    assert_eq!(l.config.net.no_routes, Some(vec![net("10.0.0.0/8")]));
    assert_has(
        &l.warnings,
        L,
        "route 192.168.1.1/24 has host bits set; using 192.168.1.0/24",
    );
    assert_has(&l.warnings, L, "Cisco clients reject");
    assert_has(&l.warnings, L + 1, "no-route 10.0.0.1/8 has host bits set");
}

#[test]
fn route_netmask_forms() {
    let c = cfg(
        "route = 10.10.10.0/255.255.255.0\nroute = 192.168.0.0/255.255.0.0\n\
                 route = fef4:db8:1000:1001::/64\nroute = 172.16.0.0 / 12\n",
    );
    assert_eq!(
        c.net.routes,
        Some(vec![
            net("10.10.10.0/24"),
            net("192.168.0.0/16"),
            net("fef4:db8:1000:1001::/64"),
            net("172.16.0.0/12"),
        ])
    );
    assert_eq!(c.net.default_route, Some(false));
}

#[test]
fn route_default_wins_over_other_routes() {
    for default in ["default", "0.0.0.0/0", "0.0.0.0/0.0.0.0"] {
        let l = ok(&format!("route = 10.0.0.0/8\nroute = {default}\n"));
        assert_eq!(l.config.net.routes, Some(vec![]), "{default}");
        assert_eq!(l.config.net.default_route, Some(true));
        assert_has(
            &l.warnings,
            L,
            "route 10.0.0.0/8 is ignored: route = default on line 7",
        );
    }
}

#[test]
fn duplicate_route_is_warned() {
    let l = ok("route = 10.0.0.0/8\nroute = 10.0.0.0/255.0.0.0\n");
    assert_eq!(l.config.net.routes, Some(vec![net("10.0.0.0/8")]));
    assert_has(&l.warnings, L + 1, "listed twice");
}

#[test]
fn ipv4_network_forms() {
    // Netmask before the network works too.
    let text = BASE.replace(
        "ipv4-network = 192.168.1.0/24",
        "ipv4-netmask = 255.255.255.0\nipv4-network = 192.168.1.0",
    );
    let c = parse(&text, file(), false).unwrap().config;
    assert_eq!(c.net.ipv4_network, Some(net4("192.168.1.0/24")));

    let l = ok("ipv4-network = 10.1.2.3/16\n");
    assert_eq!(l.config.net.ipv4_network, Some(net4("10.1.0.0/16")));
    assert_has(&l.warnings, L, "host bits set; using 10.1.0.0/16");

    let c = cfg("ipv4-network = 10.1.0.0/255.255.0.0\n");
    assert_eq!(c.net.ipv4_network, Some(net4("10.1.0.0/16")));

    let c = cfg("ipv4-network = 10.1.0.0/16\nipv4-netmask = 255.255.0.0\n");
    assert_eq!(c.net.ipv4_network, Some(net4("10.1.0.0/16")));

    let l = ok("ipv4-network = 10.1.0.0/31\n");
    assert_has(&l.warnings, L, "too small");
}

#[test]
fn ipv4_network_problems() {
    let p = errs("ipv4-network = 10.1.0.0/16\nipv4-netmask = 255.255.255.0\n");
    assert_has(
        &p,
        L + 1,
        "disagrees with the prefix length in ipv4-network on line 6",
    );
    let p = errs("ipv4-network = 10.1.0.0\n");
    assert_has(&p, L, "ipv4-network has no netmask");

    let text = BASE.replace("ipv4-network = 192.168.1.0/24", "ipv4-netmask = 255.0.0.0");
    let p = errors_of(parse(&text, file(), false), "mask only");
    assert_has(&p, 0, "no addresses to hand out");
}

#[test]
fn ipv6_network_checks() {
    let c = cfg("ipv6-network = fd00::1/48\n");
    assert_eq!(
        c.net.ipv6_network,
        Some("fd00::/48".parse::<Ipv6Net>().unwrap())
    );
    assert_eq!(c.net.ipv6_subnet_prefix, Some(128));

    let p = errs("ipv6-network = fd00::\n");
    assert_has(&p, L, "ipv6-network has no prefix length");
    let p = errs("ipv6-network = fd00::/64\nipv6-subnet-prefix = 64\n");
    assert_has(
        &p,
        L + 1,
        "must be longer than the ipv6-network prefix (/64)",
    );
    let p = errs("ipv6-network = fd00::/128\n");
    assert_has(&p, L, "ipv6-subnet-prefix (128) must be longer");
    let p = errs("ipv6-network = fd00::/48\nipv6-prefix = 56\n");
    assert_has(&p, L + 1, "disagrees");
}

#[test]
fn dns_family_aliases_warn_on_mismatch() {
    let l = ok("ipv4-dns = fd00::1\n");
    assert_has(
        &l.warnings,
        L,
        "ipv4-dns has an address of the other family",
    );
}

// ---------------------------------------------------------------------------------------
// Sections, unknown and unsupported keys

#[test]
fn vhost_section_is_warned_and_skipped() {
    let l = ok("dpd = 60\n\
                [vhost:www.example.com]\n\
                auth = \"certificate\"\n\
                ca-cert = /etc/ocserv/ca.pem\n\
                dpd = 5\n\
                bogus = x\n");
    assert_has(&l.warnings, L + 1, "virtual hosts are not supported yet");
    assert_has(&l.warnings, L + 1, "[vhost:www.example.com]");
    // Nothing from the section applies, and nothing in it is even looked at.
    assert_eq!(l.config.auth.len(), 1);
    assert_eq!(l.config.ca_cert, None);
    assert_eq!(l.config.net.dpd, Some(60));
    assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
}

#[test]
fn unknown_section_and_return_to_global() {
    let l = ok("[extras]\ndpd = 5\n[]\nkeepalive = 7\n");
    assert_has(&l.warnings, L, "unknown section [extras]");
    assert_eq!(l.config.net.dpd, Some(90));
    assert_eq!(l.config.net.keepalive, Some(7));
}

#[test]
fn unknown_key_is_a_warning_with_a_suggestion() {
    let l = ok("frobnicate = yes\ntunnel_all_dns = true\n");
    assert_has(&l.warnings, L, "unknown key \"frobnicate\" (ignored)");
    assert_has(&l.warnings, L + 1, "did you mean tunnel-all-dns?");
    assert_eq!(l.config.net.tunnel_all_dns, Some(false));
}

#[test]
fn per_user_only_keys_are_ignored_globally() {
    let l = ok("iroute = 10.9.0.0/16\nexplicit-ipv4 = 10.0.0.9\nhostname = x\nno-udp = true\n");
    for i in 0..3 {
        assert_has(&l.warnings, L + i, "only used in config-per-user");
    }
    assert_eq!(l.config.net.iroutes, None);
    assert_eq!(l.config.net.explicit_ipv4, None);
    // no-udp is global too (ocserv 1.4+): everyone gets CSTP only.
    assert_eq!(l.config.net.no_udp, Some(true));
    assert_eq!(l.warnings.len(), 3, "{:#?}", l.warnings);
}

#[test]
fn unsupported_keys_warn_by_name() {
    let l = ok("pin-file = /pin\nlog-level = 1\ndh-params = /dh.pem\n\
                client-bypass-protocol = false\nuse-utmp = false\nlisten-proxy-proto = false\n\
                camouflage = false\nclient-bypass-protocol = true\n");
    assert_has(&l.warnings, L, "not supported yet: pin-file");
    assert_has(&l.warnings, L + 1, "not supported yet: log-level");
    assert_has(&l.warnings, L + 2, "not supported yet: dh-params");
    // Setting a feature we lack to "off" asks for what we do anyway: no warning.
    for line in L + 3..L + 7 {
        assert!(
            !l.warnings
                .iter()
                .any(|w| w.line == line && w.message.contains("not supported")),
            "line {line}: {:?}",
            l.warnings
        );
    }
    assert_has(
        &l.warnings,
        L + 7,
        "not supported yet: client-bypass-protocol",
    );
}

/// Security-relevant settings we cannot enforce, with the key the error must name and what it
/// must suggest: errors at start-up, on reload and under `-t` alike.
const INSECURE: &[(&str, &str, &str)] = &[
    (
        "crl = /etc/ocserv/crl.pem",
        "crl: not supported",
        "remove the line",
    ),
    (
        "ocsp-response = /etc/ocserv/ocsp.der",
        "ocsp-response: not supported",
        "remove the line",
    ),
    (
        "restrict-user-to-ports = \"tcp(443), tcp(80)\"",
        "restrict-user-to-ports: not supported",
        "remove the line",
    ),
    (
        "deny-roaming = true",
        "deny-roaming = true: not supported",
        "set deny-roaming = false",
    ),
    (
        "camouflage = true",
        "camouflage = true: not supported",
        "set camouflage = false",
    ),
    (
        "listen-proxy-proto = true",
        "listen-proxy-proto = true: not supported",
        "set listen-proxy-proto = false",
    ),
    (
        "listen-netns = foo",
        "listen-netns: not supported",
        "remove the line",
    ),
    (
        "udp-listen-host = 198.18.0.1",
        "udp-listen-host: not supported",
        "set listen-host to the same address",
    ),
    (
        "ban-time = 1201",
        "ban-time = 1201: not supported",
        "set ban-time to at most ban-reset-time",
    ),
    (
        "min-reauth-time = 3600",
        "min-reauth-time = 3600: not supported",
        "raise ban-reset-time to 3600",
    ),
];

#[test]
fn insecure_unsupported_keys_are_errors_naming_key_and_line() {
    for (line, key, fix) in INSECURE {
        for test_mode in [false, true] {
            // Not the last line; udp-port so that udp-listen-host has a socket to restrict.
            let text = format!("{BASE}udp-port = 443\n{line}\ndpd = 30\n");
            let p = errors_of(parse(&text, file(), test_mode), line);
            // (Under -t the files in BASE do not exist either; those are other errors.)
            assert_has(&p, L + 1, key);
            assert_has(&p, L + 1, fix);
            let shown = p.iter().find(|p| p.line == L + 1).unwrap().to_string();
            assert!(shown.starts_with(&format!("t.conf:{}: ", L + 1)), "{shown}");
        }
    }
    // Nothing else in the file is an error at run time.
    let p = errors_of(try_parse("crl = /x\n"), "crl");
    assert_eq!(p.len(), 1, "{p:#?}");
    // Without udp-port there is no UDP socket for udp-listen-host to restrict.
    let l = ok("udp-listen-host = 198.18.0.1\n");
    assert!(l.warnings.is_empty(), "{:#?}", l.warnings);
    // A plain unsupported key stays a warning under -t.
    let text = format!("{BASE}log-level = 3\n");
    let p = errors_of(parse(&text, file(), true), "log-level");
    assert!(!has(&p, L, "log-level"), "{p:#?}");
}

#[test]
fn off_values_of_security_keys_are_accepted_silently() {
    let l = ok(
        "deny-roaming = false\ncamouflage = false\nlisten-proxy-proto = false\n\
                camouflage = no\ndeny-roaming = no\nlisten-host = 198.18.0.1\nudp-port = 443\n\
                udp-listen-host = 198.18.0.1\nban-time = 1200\nmax-ban-score = 0\n\
                ban-time = 99999\nisolate-workers = true\nisolate-workers = false\n",
    );
    assert_eq!(l.config.net.deny_roaming, Some(false));
    // Only the "set again" notes; nothing about support.
    assert!(
        l.warnings
            .iter()
            .all(|w| w.message.contains("is set again")),
        "{:#?}",
        l.warnings
    );
    // Per user too.
    let (s, w) = parse_override(
        "deny-roaming = false\nclient-bypass-protocol = false\n",
        Path::new("u"),
    )
    .unwrap();
    assert_eq!(s.deny_roaming, Some(false));
    assert!(w.is_empty(), "{w:#?}");
}

#[test]
fn insecure_keys_in_per_user_files_refuse_the_file() {
    for (line, key) in [
        (
            "restrict-user-to-ports = \"tcp(22)\"",
            "restrict-user-to-ports: not supported",
        ),
        ("deny-roaming = true", "deny-roaming = true: not supported"),
    ] {
        let Err(ConfigError::Invalid(p)) =
            parse_override(&format!("dns = 1.1.1.1\n{line}\n"), Path::new("alice"))
        else {
            panic!("{line}: expected an error");
        };
        assert_has(&p, 2, key);
        assert!(p[0].to_string().starts_with("alice:2: "), "{p:#?}");
    }
}

#[test]
fn keys_without_effect_are_warned_about_by_name_and_line() {
    let l = ok(
        "try-mtu-discovery = true\nserver-stats-reset-time = 604800\n\
                cisco-client-compat = true\nmin-reauth-time = 300\nsyslog-facility = local0\n\
                limit-worker-memory = true\n",
    );
    let w = &l.warnings;
    assert_has(w, L, "try-mtu-discovery: not supported yet");
    assert_has(w, L + 1, "server-stats-reset-time: not supported yet");
    assert_has(w, L + 2, "cisco-client-compat: only partly supported");
    assert_has(w, L + 3, "min-reauth-time is the old name of ban-time");
    assert_has(w, L + 3, "min-reauth-time: not applied as such");
    assert_has(w, L + 4, "not supported yet: syslog-facility");
    assert_has(w, L + 5, "not supported yet: limit-worker-memory");
    assert_eq!(l.config.min_reauth_time, 300);
    let l = ok("ban-time = 60\n");
    assert_has(&l.warnings, L, "ban-time: not applied as such");
    assert_eq!(l.config.min_reauth_time, 60);
    // The values that ask for nothing we lack are silent.
    let l = ok("try-mtu-discovery = false\nserver-stats-reset-time = 0\n\
                cisco-client-compat = false\nlimit-worker-memory = false\n");
    assert!(l.warnings.is_empty(), "{:#?}", l.warnings);
    // The old spelling of cisco-client-compat gets the same note, at its own line.
    let l = ok("always-require-cert = false\n");
    assert_has(&l.warnings, L, "always-require-cert: only partly supported");
}

/// Every key of ocserv 1.5's doc/sample.config (names only), for [`sample_config_keys_are_all_classified`].
const OCSERV_1_5_SAMPLE_KEYS: &[&str] = &[
    "acct",
    "auth",
    "auth-timeout",
    "auto-select-group",
    "ban-points-connection",
    "ban-points-kkdcp",
    "ban-points-wrong-password",
    "ban-reset-time",
    "ban-time",
    "banner",
    "ca-cert",
    "camouflage",
    "camouflage_realm",
    "camouflage_secret",
    "cert-group-oid",
    "cert-user-oid",
    "chroot-dir",
    "cisco-client-compat",
    "cisco-svc-client-compat",
    "client-bypass-protocol",
    "compression",
    "compression-algo-priority",
    "config-per-group",
    "config-per-user",
    "connect-script",
    "cookie-timeout",
    "crl",
    "custom-header",
    "default-domain",
    "default-group-config",
    "default-select-group",
    "default-user-config",
    "deny-roaming",
    "device",
    "dh-params",
    "disconnect-script",
    "dns",
    "dpd",
    "dtls-legacy",
    "dtls-psk",
    "enable-auth",
    "expose-iroutes",
    "host-update-script",
    "idle-timeout",
    "included-http-headers",
    "ipv4-netmask",
    "ipv4-network",
    "ipv6-network",
    "ipv6-subnet-prefix",
    "isolate-workers",
    "keepalive",
    "key-pin",
    "kkdcp",
    "limit-worker-memory",
    "listen-host",
    "listen-host-is-dyndns",
    "listen-netns",
    "listen-proxy-proto",
    "log-level",
    "match-tls-dtls-ciphers",
    "max-ban-score",
    "max-clients",
    "max-same-clients",
    "mobile-dpd",
    "mobile-idle-timeout",
    "mtu",
    "nbns",
    "net-priority",
    "no-compress-limit",
    "no-route",
    "no-udp",
    "occtl-socket-file",
    "ocsp-response",
    "output-buffer",
    "persistent-cookies",
    "pid-file",
    "pin-file",
    "ping-leases",
    "pre-login-banner",
    "predictable-ips",
    "proxy-url",
    "rate-limit-ms",
    "rekey-method",
    "rekey-time",
    "restrict-user-to-ports",
    "restrict-user-to-routes",
    "route",
    "route-add-cmd",
    "route-del-cmd",
    "run-as-group",
    "run-as-user",
    "rx-data-per-sec",
    "sec-mod-scale",
    "select-group",
    "select-group-by-url",
    "server-cert",
    "server-drain-ms",
    "server-key",
    "server-stats-reset-time",
    "session-timeout",
    "socket-file",
    "split-dns",
    "srk-pin",
    "srk-pin-file",
    "stats-report-time",
    "switch-to-tcp-timeout",
    "syslog-facility",
    "tcp-port",
    "tls-priorities",
    "try-mtu-discovery",
    "tunnel-all-dns",
    "tx-data-per-sec",
    "udp-listen-host",
    "udp-port",
    "use-occtl",
    "use-utmp",
    "user-profile",
];

#[test]
fn sample_config_keys_are_all_classified() {
    let known = global::all_keys();
    for key in OCSERV_1_5_SAMPLE_KEYS {
        assert!(known.contains(key), "{key} is not classified");
    }
}

#[test]
fn deprecated_aliases() {
    let l = ok("use-seccomp = true\nuse-dbus = true\nalways-require-cert = false\n");
    assert!(l.config.isolate_workers);
    assert!(l.config.use_occtl);
    assert!(l.config.cisco_client_compat);
    assert_has(&l.warnings, L, "old name of isolate-workers");
    assert_has(&l.warnings, L + 1, "old name of use-occtl");
    assert_has(&l.warnings, L + 2, "replaced by cisco-client-compat");
    // `use-dbus = no` next to `use-occtl = true` (upstream's test configs) keeps occtl on.
    let l = ok("use-occtl = true\nuse-dbus = no\n");
    assert!(l.config.use_occtl);
    assert!(l.warnings.is_empty(), "{:#?}", l.warnings);
}

#[test]
fn every_known_key_is_recognised() {
    for key in global::all_keys() {
        let r = try_parse(&format!("{key} = x\n"));
        let problems = match r {
            Ok(l) => l.warnings,
            Err(ConfigError::Invalid(p)) => p,
            Err(e) => panic!("{e}"),
        };
        assert!(
            !problems.iter().any(|p| p.message.contains("unknown key")),
            "{key}: {problems:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Auth and cross-checks

#[test]
fn auth_forms() {
    let text = "auth = \"plain[ passwd = ./p , otp=/etc/ocserv/users.otp ]\"\nauth = certificate\n\
                enable-auth = certificate\nca-cert = ca.pem\ncert-user-oid = 2.5.4.3\n\
                tcp-port = 443\nserver-cert = c\nserver-key = k\nipv4-network = 10.0.0.0/8\n";
    let c = parse(text, file(), false).unwrap().config;
    assert_eq!(
        c.auth,
        vec![
            AuthMethod::Plain {
                passwd: Some("./p".into()),
                otp: Some("/etc/ocserv/users.otp".into())
            },
            AuthMethod::Certificate
        ]
    );
    assert_eq!(c.enable_auth, vec![AuthMethod::Certificate]);
    let otp_only = text.replace("passwd = ./p , ", "");
    let c = parse(&otp_only, file(), false).unwrap().config;
    assert_eq!(
        c.auth[0],
        AuthMethod::Plain {
            passwd: None,
            otp: Some("/etc/ocserv/users.otp".into())
        }
    );

    let legacy = BASE.replace(
        "plain[passwd=/etc/ocserv/passwd]",
        "PLAIN[/etc/ocserv/ocpasswd]",
    );
    let c = parse(&legacy, file(), false).unwrap().config;
    assert_eq!(
        c.auth,
        vec![AuthMethod::Plain {
            passwd: Some("/etc/ocserv/ocpasswd".into()),
            otp: None
        }]
    );
}

#[test]
fn auth_combination_errors() {
    let p = errs("auth = \"plain[passwd=/other]\"\n");
    assert_has(&p, L, "only one password method");
    let p = errs("enable-auth = \"plain[passwd=/other]\"\n");
    assert_has(&p, L, "cannot be added as an alternative");
    let p = errs("enable-auth = certificate\n");
    assert_has(&p, L, "needs ca-cert");
    assert_has(&p, L, "needs cert-user-oid");
}

#[test]
fn dtls_option_interplay() {
    let p = errs("match-tls-dtls-ciphers = true\n");
    assert_has(&p, L, "cannot be used with dtls-legacy");
    let c = cfg("match-tls-dtls-ciphers = true\ndtls-legacy = false\n");
    assert!(c.match_tls_dtls_ciphers && !c.dtls_legacy);
    let l = ok("cisco-client-compat = true\ndtls-legacy = false\n");
    assert!(l.config.dtls_legacy);
    assert_has(&l.warnings, L + 1, "implies dtls-legacy = true");
}

#[test]
fn derived_defaults() {
    let c = cfg("dpd = 40\nmobile-dpd = 0\n");
    assert_eq!(c.net.mobile_dpd, Some(40));
    let l = ok("no-compress-limit = 10\n");
    assert_eq!(l.config.no_compress_limit, 64);
    assert_has(&l.warnings, L, "below the minimum");
}

#[test]
fn server_cert_pairs() {
    let l = ok("server-cert = /c2.pem\nserver-key = /k2.pem\n");
    assert_eq!(l.config.server_cert, PathBuf::from("/c.pem"));
    assert_eq!(
        l.config.server_pairs,
        vec![
            (PathBuf::from("/c.pem"), PathBuf::from("/k.pem")),
            (PathBuf::from("/c2.pem"), PathBuf::from("/k2.pem")),
        ]
    );
    assert!(l.warnings.is_empty(), "{:#?}", l.warnings);
    let p = errs("server-cert = /c2.pem\n");
    assert_has(&p, 4, "2 server-cert lines but 1 server-key lines");
}

#[test]
fn key_lines_point_at_the_config() {
    let c = cfg("dpd = 1\n");
    assert_eq!(c.line_of("tcp-port"), 2);
    assert_eq!(c.line_of("dpd"), L);
    assert_eq!(c.line_of("banner"), 0);
    let p = c.problem_at("server-cert", "cannot load certificate");
    assert_eq!(p.to_string(), "t.conf:3: cannot load certificate");
}

#[test]
fn device_name_limits() {
    assert_eq!(cfg("device = abcdefghijklmn\n").device, "abcdefghijklmn");
    let l = ok("device = abcdefghijklm\n");
    assert_has(&l.warnings, L, "room for only 2 digit(s)");
}

// ---------------------------------------------------------------------------------------
// Per-user / per-group files

const USER_FILE: &str = "route = 10.10.0.0/16\n\
                         route = fd00:10::/64\n\
                         iroute = 192.168.50.0/24\n\
                         dns = 10.10.0.53\n\
                         split-dns = corp.example\n\
                         ipv4-network = 10.20.0.0\n\
                         ipv4-netmask = 255.255.255.0\n\
                         explicit-ipv4 = 10.20.0.7\n\
                         explicit-ipv6 = fd00:20::7\n\
                         dpd = 15\n\
                         keepalive = 20\n\
                         max-same-clients = 1\n\
                         hostname = alice-laptop\n\
                         no-udp = true\n\
                         tunnel_all_dns = true\n\
                         rx-data-per-sec = 1000\n\
                         banner = hi\n\
                         ipv6-prefix = 64\n\
                         frob = 1\n\
                         net-priority = 3\n\
                         client-bypass-protocol = true\n\
                         deny-roaming = false\n\
                         tx-data-per-sec = 2000\n";

#[test]
fn per_user_file_sets_only_what_it_has() {
    let (s, w) = parse_override(USER_FILE, Path::new("alice")).unwrap();
    assert_eq!(
        s.routes,
        Some(vec![net("10.10.0.0/16"), net("fd00:10::/64")])
    );
    assert_eq!(s.default_route, Some(false));
    assert_eq!(s.iroutes, Some(vec![net("192.168.50.0/24")]));
    assert_eq!(s.dns, Some(vec!["10.10.0.53".parse().unwrap()]));
    assert_eq!(s.split_dns, Some(vec!["corp.example".to_owned()]));
    assert_eq!(s.ipv4_network, Some(net4("10.20.0.0/24")));
    assert_eq!(s.explicit_ipv4, Some(Ipv4Addr::new(10, 20, 0, 7)));
    assert_eq!(
        s.explicit_ipv6,
        Some("fd00:20::7".parse::<Ipv6Addr>().unwrap())
    );
    assert_eq!(s.dpd, Some(15));
    assert_eq!(s.keepalive, Some(20));
    assert_eq!(s.max_same_clients, Some(1));
    assert_eq!(s.hostname.as_deref(), Some("alice-laptop"));
    assert_eq!(s.no_udp, Some(true));
    assert_eq!(s.tunnel_all_dns, Some(true));
    assert_eq!(s.rx_data_per_sec, Some(1000));
    // Not set in the file: None, so the global value stays.
    assert_eq!(s.nbns, None);
    assert_eq!(s.no_routes, None);
    assert_eq!(s.mobile_dpd, None);
    assert_eq!(s.ipv6_subnet_prefix, None);

    let alice = Path::new("alice");
    assert!(w.iter().all(|p| p.file == alice));
    assert_has(&w, 17, "banner cannot be set per user or group");
    assert_has(&w, 18, "ipv6-prefix cannot be set per user or group");
    assert_has(&w, 19, "unknown key \"frob\"");
    assert_has(&w, 20, "not supported yet: net-priority");
    assert_has(&w, 21, "not supported yet: client-bypass-protocol");
    // Bandwidth limits parse but are not enforced: named, with their lines.
    assert_eq!(s.tx_data_per_sec, Some(2000));
    assert_has(
        &w,
        16,
        "rx-data-per-sec: bandwidth limits are not enforced yet",
    );
    assert_has(
        &w,
        23,
        "tx-data-per-sec: bandwidth limits are not enforced yet",
    );
    // deny-roaming = false asks for what we do: accepted, no warning.
    assert_eq!(s.deny_roaming, Some(false));
    assert!(!w.iter().any(|p| p.line == 22), "{w:#?}");
    assert_eq!(w.len(), 7, "{w:#?}");
}

#[test]
fn per_user_route_default() {
    let (s, _) = parse_override("route = default\n", Path::new("u")).unwrap();
    assert_eq!(s.routes, Some(vec![]));
    assert_eq!(s.default_route, Some(true));
    let (s, w) = parse_override("", Path::new("u")).unwrap();
    assert_eq!(s, NetSettings::default());
    assert!(w.is_empty());
}

#[test]
fn per_user_file_errors_fail_it() {
    let Err(ConfigError::Invalid(p)) =
        parse_override("dns = 1.1.1.1\ndpd = never\nroute = x\n", Path::new("bob"))
    else {
        panic!("expected errors");
    };
    assert_has(&p, 2, "dpd: expected a number of seconds");
    assert_has(&p, 3, "route:");
    assert!(p.iter().all(|p| p.file == Path::new("bob")));
}

#[test]
fn overlay_replaces_only_what_is_set() {
    let global =
        cfg("route = 10.0.0.0/8\ndns = 192.168.1.1\nnbns = 192.168.1.3\nidle-timeout = 100\n").net;
    let (user, _) = parse_override(USER_FILE, Path::new("alice")).unwrap();
    let eff = global.overlay(&user);
    // Lists present in the user file replace the global ones (ocserv's rule).
    assert_eq!(eff.routes, user.routes);
    assert_eq!(eff.dns, user.dns);
    assert_eq!(eff.default_route, Some(false));
    // Absent in the user file: the global value.
    assert_eq!(eff.nbns, Some(vec!["192.168.1.3".parse().unwrap()]));
    assert_eq!(eff.idle_timeout, Some(100));
    assert_eq!(eff.mobile_dpd, Some(1800));
    assert_eq!(eff.dpd, Some(15));
    assert_eq!(eff.keepalive, Some(20));
    assert_eq!(eff.ipv4_network, Some(net4("10.20.0.0/24")));
    assert_eq!(eff.ipv6_subnet_prefix, Some(128));
    // Overlaying nothing changes nothing; overlaying onto nothing gives the override.
    assert_eq!(global.overlay(&NetSettings::default()), global);
    assert_eq!(NetSettings::default().overlay(&user), user);

    // A user with `route = default` gets full tunnel even if the global config splits.
    let (full, _) = parse_override("route = default\n", Path::new("u")).unwrap();
    let eff = global.overlay(&full);
    assert_eq!(eff.routes, Some(vec![]));
    assert_eq!(eff.default_route, Some(true));
}

#[test]
fn load_override_refuses_unsafe_names() {
    let dir = TempDir::new("names");
    // A file the unsafe names would reach if they were used.
    dir.file("secret", "dns = 9.9.9.9\n");
    let sub = dir.0.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    for name in ["", "../secret", "a/b", ".hidden", "..", ".", "a\0b", "a\nb"] {
        match load_override(&sub, name) {
            Err(ConfigError::Invalid(p)) => {
                assert_eq!(p.len(), 1);
                assert!(p[0].message.contains("refusing"), "{name:?}: {p:?}");
            }
            other => panic!("{name:?}: expected a refusal, got {other:?}"),
        }
    }
    assert!(load_override(&sub, "nobody").unwrap().is_none());
    dir.file("sub/alice", "dpd = 12\nbogus = 1\n");
    let (s, w) = load_override(&sub, "alice").unwrap().unwrap();
    assert_eq!(s.dpd, Some(12));
    assert_has(&w, 2, "unknown key");
    // Names that merely contain dots are fine.
    dir.file("sub/alice.smith", "dpd = 13\n");
    let (s, _) = load_override(&sub, "alice.smith").unwrap().unwrap();
    assert_eq!(s.dpd, Some(13));
}

#[test]
fn load_override_file_reports_io_and_errors() {
    let dir = TempDir::new("ovfile");
    let missing = dir.0.join("missing");
    assert!(matches!(
        load_override_file(&missing),
        Err(ConfigError::Io { .. })
    ));
    let bad = dir.file("bad", "dpd = x\n");
    match load_override_file(&bad) {
        Err(ConfigError::Invalid(p)) => {
            assert_eq!(p[0].file, bad);
            assert_eq!(p[0].line, 1);
        }
        other => panic!("{other:?}"),
    }
    let big = dir.file("big", &"# padding\n".repeat(200_000));
    assert!(matches!(
        load_override_file(&big),
        Err(ConfigError::Io { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// load() and -t

#[test]
fn load_missing_file_is_io_error() {
    let e = load(Path::new("/nonexistent/ferroconnect/ocserv.conf"), false).unwrap_err();
    assert!(matches!(e, ConfigError::Io { .. }));
    assert!(e
        .to_string()
        .starts_with("cannot read /nonexistent/ferroconnect/ocserv.conf"));
}

#[test]
fn load_reports_invalid_utf8_at_its_line() {
    let dir = TempDir::new("utf8");
    let p = dir.0.join("ocserv.conf");
    let mut bytes = BASE.as_bytes().to_vec();
    bytes.extend_from_slice(b"banner = caf\xe9\n");
    std::fs::write(&p, bytes).unwrap();
    let e = load(&p, false).unwrap_err();
    let ConfigError::Invalid(problems) = e else {
        panic!()
    };
    assert_has(&problems, L, "not valid UTF-8");
    assert_eq!(problems[0].file, p);
}

/// A config in a temp dir whose referenced files all exist.
fn test_mode_setup(dir: &TempDir, extra: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let d = dir.0.display();
    dir.file("cert.pem", "");
    dir.file("key.pem", "");
    dir.file("ca.pem", "");
    dir.file("passwd", "");
    let script = dir.file("connect.sh", "#!/bin/sh\n");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(dir.0.join("users")).unwrap();
    dir.file("users/alice", "dpd = 10\n");
    dir.file("users/.swp", "garbage\n");
    dir.file(
        "ocserv.conf",
        &format!(
            "auth = \"plain[passwd={d}/passwd]\"\n\
             tcp-port = 443\n\
             server-cert = {d}/cert.pem\n\
             server-key = {d}/key.pem\n\
             ipv4-network = 192.168.1.0/24\n\
             ca-cert = {d}/ca.pem\n\
             connect-script = {d}/connect.sh\n\
             config-per-user = {d}/users\n\
             run-as-user = root\n\
             {extra}"
        ),
    )
}

#[test]
fn test_mode_accepts_existing_files() {
    let dir = TempDir::new("tmode-ok");
    let conf = test_mode_setup(&dir, "");
    let l = load(&conf, true).unwrap_or_else(|e| panic!("{e}"));
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    // Without -t the same config loads too, of course.
    load(&conf, false).unwrap();
}

#[test]
fn test_mode_reports_missing_files_at_their_lines() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("tmode-bad");
    let d = dir.0.display().to_string();
    let conf = test_mode_setup(
        &dir,
        &format!(
            "disconnect-script = {d}/ca.pem\n\
             host-update-script = {d}/nothere.sh\n\
             config-per-group = {d}/ca.pem\n\
             default-user-config = {d}/nothere.conf\n\
             run-as-group = no-such-group-ferroconnect\n\
             user-profile = {d}/profile.xml\n"
        ),
    );
    std::fs::remove_file(dir.0.join("key.pem")).unwrap();
    std::fs::remove_file(dir.0.join("passwd")).unwrap();
    std::fs::set_permissions(dir.0.join("ca.pem"), std::fs::Permissions::from_mode(0o644)).unwrap();
    dir.file("users/bob", "dpd = soon\n");

    let Err(ConfigError::Invalid(p)) = load(&conf, true) else {
        panic!("expected errors");
    };
    assert_has(&p, 1, "passwd:");
    assert_has(&p, 1, "passwd does not exist");
    assert_has(&p, 4, "server-key:");
    assert_has(&p, 10, "disconnect-script:");
    assert_has(&p, 10, "is not executable");
    assert_has(&p, 11, "host-update-script:");
    assert_has(&p, 12, "is not a directory");
    assert_has(&p, 13, "nothere.conf does not exist");
    assert_has(&p, 14, "no group no-such-group-ferroconnect");
    assert_has(&p, 15, "profile.xml does not exist");
    // The broken per-user file is reported with its own path and line.
    let bob = dir.0.join("users/bob");
    assert!(
        p.iter()
            .any(|x| x.file == bob && x.line == 1 && x.message.contains("dpd")),
        "{p:#?}"
    );
    // Without -t the files are not looked at.
    load(&conf, false).unwrap();
}

#[test]
fn test_mode_warns_about_bad_otp_lines() {
    let dir = TempDir::new("tmode-otp");
    let conf = test_mode_setup(&dir, "");
    let d = dir.0.display().to_string();
    let users = dir.file(
        "users.oath",
        "HOTP/T30 alice - 3132333435363738393031323334353637383930
HOTP/X bob - 00
",
    );
    let text = std::fs::read_to_string(&conf).unwrap().replace(
        &format!("plain[passwd={d}/passwd]"),
        &format!("plain[passwd={d}/passwd,otp={}]", users.display()),
    );
    std::fs::write(&conf, text).unwrap();
    let l = load(&conf, true).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        l.warnings.iter().any(|w| w.line == 1
            && w.message
                .contains("users.oath: line 2: unknown token type HOTP/X")),
        "{:?}",
        l.warnings
    );
}

#[test]
fn test_mode_checks_run_as_user() {
    let dir = TempDir::new("tmode-user");
    let conf = test_mode_setup(&dir, "run-as-user = no-such-user-ferroconnect\n");
    let Err(ConfigError::Invalid(p)) = load(&conf, true) else {
        panic!("expected errors");
    };
    assert_has(&p, 10, "no user no-such-user-ferroconnect");
}

// ---------------------------------------------------------------------------------------
// Debian's sample config (ocserv's doc/sample.config)

#[test]
fn debian_sample_config() {
    let path = Path::new("/etc/ocserv/ocserv.conf");
    let Ok(text) = std::fs::read_to_string(path) else {
        eprintln!("skipping: {} is not installed", path.display());
        return;
    };
    // As shipped, server-cert and server-key are commented out; ocserv refuses that too.
    let p = errors_of(parse(&text, path, false), "sample as shipped");
    assert!(
        p.iter()
            .all(|p| p.message.contains("server-cert") || p.message.contains("server-key")),
        "{p:#?}"
    );

    let text = format!(
        "{text}\nserver-cert = /etc/ssl/certs/ssl-cert-snakeoil.pem\n\
         server-key = /etc/ssl/private/ssl-cert-snakeoil.key\n"
    );
    let l = parse(&text, path, false).unwrap_or_else(|e| panic!("{e}"));
    for w in &l.warnings {
        eprintln!("sample config warning: {w}");
    }
    assert!(!l.warnings.is_empty());
    assert!(l
        .warnings
        .iter()
        .all(|w| !w.message.contains("unknown key")));
    let c = l.config;
    assert_eq!(c.tcp_port, Some(443));
    assert_eq!(c.udp_port, Some(443));
    assert!(matches!(c.auth.as_slice(), [AuthMethod::Plain { .. }]));
    assert_eq!(c.net.ipv4_network, Some(net4("192.168.1.0/24")));
    assert_eq!(c.net.dns, Some(vec!["192.168.1.1".parse().unwrap()]));
    assert_eq!(c.device, "vpns");
    assert!(c.cisco_client_compat);
}

// ---------------------------------------------------------------------------------------
// Never panic

mod fuzz {
    use proptest::prelude::*;

    use super::*;

    fn line() -> impl Strategy<Value = String> {
        let keys = global::all_keys();
        let values = prop_oneof![
            Just(String::new()),
            Just("true".to_owned()),
            Just("default".to_owned()),
            Just("\"".to_owned()),
            Just("10.0.0.0/8".to_owned()),
            Just("fd00::/300".to_owned()),
            Just("255.255.255.255".to_owned()),
            Just("plain[".to_owned()),
            Just("plain[passwd=]".to_owned()),
            Just("[x]".to_owned()),
            "[0-9./:a-f\\[\\],=\"# ]{0,24}",
            any::<String>(),
        ];
        (
            prop::sample::select(keys),
            values,
            "[ \t]{0,2}",
            prop::bool::ANY,
        )
            .prop_map(|(k, v, indent, colon)| {
                let sep = if colon { ":" } else { " = " };
                format!("{indent}{k}{sep}{v}")
            })
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_text(text in any::<String>()) {
            let _ = parse(&text, Path::new("fuzz.conf"), false);
            let _ = parse_override(&text, Path::new("fuzz-user"));
        }

        #[test]
        fn parse_never_panics_on_config_like_text(
            lines in prop::collection::vec(
                prop_oneof![
                    4 => line(),
                    1 => "[\\[\\]a-z:#; ]{0,12}",
                    1 => any::<String>(),
                ],
                0..30,
            )
        ) {
            let text = lines.join("\n");
            let _ = parse(&text, Path::new("fuzz.conf"), false);
            let _ = parse(&format!("{BASE}{text}"), Path::new("fuzz.conf"), false);
            let _ = parse_override(&text, Path::new("fuzz-user"));
        }
    }
}

#[test]
fn compression_algo_priority_lines_add_up_and_bad_ones_warn() {
    use oc_proto::anyconnect::session::Channel;
    use oc_proto::compress::Algorithm;
    let l = ok("compression = true\n\
                compression-algo-priority = lzs:95\n\
                compression-algo-priority = deflate:99\n\
                compression-algo-priority = lzo:5\n\
                compression-algo-priority = oc-lz4\n");
    let p = l.config.compression_priorities;
    assert_eq!(p.select("oc-lz4,lzs", Channel::Dtls), Some(Algorithm::Lzs));
    assert_eq!(
        p.select("oc-lz4,lzs,deflate", Channel::Cstp),
        Some(Algorithm::Deflate)
    );
    assert_has(&l.warnings, L + 3, "unknown compression algorithm \"lzo\"");
    assert_has(&l.warnings, L + 4, "expected ALGORITHM:PRIORITY");
    // No warning for the valid lines, and no "not supported" note for compression itself.
    assert_eq!(l.warnings.len(), 2, "{:?}", l.warnings);
    assert!(crate::server::not_yet_used(&l.config).is_empty());
}

#[test]
fn worker_threads_is_a_count_and_zero_means_the_default() {
    assert_eq!(cfg("").worker_threads, None);
    assert_eq!(cfg("worker-threads = 3\n").worker_threads, Some(3));
    assert_eq!(cfg("worker-threads = 0\n").worker_threads, None);
    let p = errs("worker-threads = many\n");
    assert!(
        p.iter().any(|e| e.to_string().contains("worker-threads")),
        "{p:#?}"
    );
}
