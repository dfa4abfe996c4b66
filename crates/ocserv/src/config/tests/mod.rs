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

mod auth;
mod files;
mod networks;
mod per_user;
mod syntax;
mod unsupported;
mod values;
mod vhosts;
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
    assert_eq!(
        c.server_pairs,
        vec![(PathBuf::from("/c.pem"), PathBuf::from("/k.pem"))]
    );
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
    let p = errs("dpd = soon\nroute = nowhere\nauth = oidc\nmtu = 5\n");
    assert_has(&p, L, "dpd: expected a number of seconds, got \"soon\"");
    assert_has(&p, L + 1, "route:");
    assert_has(&p, L + 2, "oidc needs its JSON file");
    assert_has(&p, L + 3, "mtu");
    assert_eq!(p.len(), 4, "{p:#?}");
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
