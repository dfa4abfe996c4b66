//! The sample configurations admins start from must keep loading: Debian's stock
//! `/etc/ocserv/ocserv.conf` (ocserv 1.1.6) and ocserv 1.5's doc/sample.config. Both are
//! checked from fixtures holding their active settings (comments left out), so the checks run
//! everywhere; Debian's file is also run through `ocserv -t` as installed, when it is.
//!
//! Each keeps loading because its security settings are off or enforced here: what they set
//! that we do not apply is a warning naming key and line, never silence. Turning one of their
//! security settings on (`deny-roaming = true`, `camouflage = true`, ...) enforces it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use ocserv::config::{self, AuthMethod, ConfigError, Loaded, Problem};

const SAMPLE: &str = "/etc/ocserv/ocserv.conf";

/// The active lines of Debian's `/etc/ocserv/ocserv.conf` from package ocserv 1.1.6-3, in
/// order. The shipped file has `server-cert`/`server-key` commented out.
const DEBIAN_1_1_6: &str = r#"auth = "plain[passwd=/etc/ocserv/passwd]"
tcp-port = 443
udp-port = 443
run-as-user = ocserv
run-as-group = ocserv
socket-file = /run/ocserv-socket
chroot-dir = /var/lib/ocserv
isolate-workers = true
max-clients = 16
max-same-clients = 2
rate-limit-ms = 100
server-stats-reset-time = 604800
keepalive = 32400
dpd = 90
mobile-dpd = 1800
switch-to-tcp-timeout = 25
try-mtu-discovery = false
cert-user-oid = 0.9.2342.19200300.100.1.1
tls-priorities = "NORMAL:%SERVER_PRECEDENCE:%COMPAT:-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1:-VERS-TLS1.3"
auth-timeout = 240
min-reauth-time = 300
max-ban-score = 80
ban-reset-time = 1200
cookie-timeout = 300
deny-roaming = false
rekey-time = 172800
rekey-method = ssl
use-occtl = true
pid-file = /run/ocserv.pid
log-level = 1
device = vpns
predictable-ips = true
default-domain = example.com
ipv4-network = 192.168.1.0
ipv4-netmask = 255.255.255.0
dns = 192.168.1.1
ping-leases = false
route = 10.0.0.0/8
route = 172.16.0.0/12
route = 192.168.0.0/16
cisco-client-compat = true
dtls-legacy = true
client-bypass-protocol = false
"#;

/// The active settings of ocserv 1.5.0's doc/sample.config, in order (its virtual-host
/// section's list of HTTP headers shortened).
const UPSTREAM_1_5_0: &str =
    include_str!("../../../tests/interop/fixtures/upstream-1.5-sample.conf");

/// The 1-based line of `text` that starts with `prefix`.
fn line_of(text: &str, prefix: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(prefix))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no line starting with {prefix:?}"))
}

fn parse(text: &str) -> Result<Loaded, ConfigError> {
    config::parse(text, Path::new("ocserv.conf"), false)
}

fn loads(text: &str) -> Loaded {
    parse(text).unwrap_or_else(|e| panic!("should load:\n{e}"))
}

fn errors(text: &str) -> Vec<Problem> {
    match parse(text) {
        Err(ConfigError::Invalid(p)) => p,
        Err(e) => panic!("unexpected error {e}"),
        Ok(l) => panic!("expected errors, loaded with {:#?}", l.warnings),
    }
}

#[track_caller]
fn assert_at(problems: &[Problem], line: usize, needle: &str) {
    assert!(
        problems
            .iter()
            .any(|p| p.line == line && p.message.contains(needle)),
        "no problem at line {line} containing {needle:?} in {problems:#?}"
    );
}

/// Debian's file as an admin deploys it: the certificate lines filled in.
fn debian_deployed() -> String {
    format!("{DEBIAN_1_1_6}server-cert = /etc/ocserv/server-cert.pem\nserver-key = /etc/ocserv/server-key.pem\n")
}

#[test]
fn debian_stock_config_loads_with_warnings_naming_what_is_not_applied() {
    // As shipped: only the missing certificate stops it.
    let p = errors(DEBIAN_1_1_6);
    assert!(
        p.iter()
            .all(|p| p.message.contains("server-cert") || p.message.contains("server-key")),
        "{p:#?}"
    );

    let text = debian_deployed();
    let l = loads(&text);
    let w = &l.warnings;
    let at = |prefix: &str| line_of(&text, prefix);
    assert_at(w, at("server-stats-reset-time"), "server-stats-reset-time");
    assert_at(w, at("min-reauth-time"), "old name of ban-time");
    assert_at(w, at("cisco-client-compat"), "cisco-client-compat");
    // Off values are silent: try-mtu-discovery, deny-roaming, client-bypass-protocol.
    for key in [
        "try-mtu-discovery",
        "deny-roaming",
        "client-bypass-protocol",
        "isolate-workers",
        "log-level",
    ] {
        assert!(!w.iter().any(|p| p.line == at(key)), "{key}: {w:#?}");
    }
    assert_eq!(w.len(), 3, "{w:#?}");
    assert!(!l.config.net.deny_roaming.unwrap_or(true));
}

#[test]
fn upstream_sample_config_loads_with_warnings_naming_what_is_not_applied() {
    let text = UPSTREAM_1_5_0;
    let l = loads(text);
    let w = &l.warnings;
    let at = |prefix: &str| line_of(text, prefix);
    assert_at(w, at("server-stats-reset-time"), "server-stats-reset-time");
    assert_at(w, at("cisco-client-compat"), "cisco-client-compat");
    // Its [vhost:www.example.com] section: certificate logins with the section's own
    // certificate and pool, everything else inherited.
    let www = &l.config.vhosts[0];
    assert_eq!(
        (www.name.as_str(), www.line),
        ("www.example.com", at("[vhost:"))
    );
    assert_eq!(www.config.auth, vec![AuthMethod::Certificate]);
    assert_eq!(
        www.config.net.ipv4_network,
        Some("192.168.2.0/24".parse().unwrap())
    );
    assert_ne!(www.config.server_pairs, l.config.server_pairs);
    assert_eq!(www.config.net.dpd, l.config.net.dpd);
    for key in [
        "try-mtu-discovery",
        "deny-roaming",
        "ban-time",
        "log-level",
        "camouflage =",
        "camouflage_secret",
        "camouflage_realm",
        "cisco-svc-client-compat",
        "client-bypass-protocol",
        "isolate-workers",
    ] {
        assert!(!w.iter().any(|p| p.line == at(key)), "{key}: {w:#?}");
    }
    assert_eq!(w.len(), 2, "{w:#?}");
}

#[test]
fn turning_on_the_stock_configs_security_settings_enforces_them() {
    let debian = debian_deployed().replace("deny-roaming = false", "deny-roaming = true");
    assert_eq!(loads(&debian).config.net.deny_roaming, Some(true));
    let upstream = UPSTREAM_1_5_0
        .replace("camouflage = false", "camouflage = true")
        .replace(
            "client-bypass-protocol = false",
            "restrict-user-to-ports = \"tcp(443), icmp()\"",
        );
    let c = loads(&upstream).config;
    let camouflage = c.camouflage.expect("camouflage on");
    assert_eq!(camouflage.secret, "mysecretkey");
    assert_eq!(camouflage.realm.as_deref(), Some("Restricted Content"));
    let ports = c.net.restrict_user_to_ports.expect("ports restricted");
    assert_eq!(ports.rules.len(), 2);
    // Camouflage without its secret would refuse everyone: an error, at its line.
    let no_secret = UPSTREAM_1_5_0
        .replace("camouflage = false", "camouflage = true")
        .replace("camouflage_secret = \"mysecretkey\"", "");
    let p = errors(&no_secret);
    assert_at(
        &p,
        line_of(&no_secret, "camouflage = true"),
        "camouflage = true needs camouflage_secret",
    );
}

fn run_test_mode(config: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ocserv"))
        .arg("-t")
        .arg("-c")
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ocserv-sample-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn debian_sample_config_passes_test_mode_with_warnings() {
    let Ok(sample) = std::fs::read_to_string(SAMPLE) else {
        eprintln!("skipping: {SAMPLE} is not installed (apt-get install ocserv)");
        return;
    };
    let dir = temp_dir("installed");
    // As shipped, the certificate lines are commented out: -t names what is missing.
    let as_shipped = dir.join("as-shipped.conf");
    std::fs::write(&as_shipped, &sample).unwrap();
    let (code, _, stderr) = run_test_mode(&as_shipped);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("server-cert"), "{stderr}");
    assert!(!stderr.contains("not supported;"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=vpn.test", "-keyout"])
        .arg(dir.join("server-key.pem"))
        .arg("-out")
        .arg(dir.join("server-cert.pem"))
        .output()
        .unwrap();
    assert!(status.status.success());
    std::fs::write(dir.join("passwd"), "").unwrap();
    let d = dir.display();
    let deployed: String = sample
        .lines()
        .map(|line| {
            if line.starts_with("#server-cert = ") {
                format!("server-cert = {d}/server-cert.pem")
            } else if line.starts_with("#server-key = ") {
                format!("server-key = {d}/server-key.pem")
            } else {
                line.replace("/etc/ocserv/passwd", &format!("{d}/passwd"))
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let config = dir.join("ocserv.conf");
    std::fs::write(&config, &deployed).unwrap();
    let (code, stdout, stderr) = run_test_mode(&config);
    // The package creates the ocserv user that run-as-user names; without it, that is the
    // one complaint.
    let has_user = Command::new("id")
        .arg("ocserv")
        .output()
        .is_ok_and(|o| o.status.success());
    if has_user {
        assert_eq!(code, Some(0), "{stdout}{stderr}");
        assert!(stdout.contains("configuration is valid"), "{stdout}");
    } else {
        assert_eq!(code, Some(1), "{stdout}{stderr}");
        assert!(stderr.contains("run-as-user: no user ocserv"), "{stderr}");
    }
    // Keys we do not apply are named, with their line.
    let line = |prefix: &str| {
        deployed
            .lines()
            .position(|l| l.starts_with(prefix))
            .unwrap()
            + 1
    };
    for (key, needle) in [
        (
            "min-reauth-time",
            "min-reauth-time is the old name of ban-time",
        ),
        (
            "cisco-client-compat",
            "cisco-client-compat: only partly supported",
        ),
        (
            "server-stats-reset-time",
            "server-stats-reset-time: not supported yet",
        ),
    ] {
        let shown = format!("warning: {}:{}: ", config.display(), line(key));
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&shown) && l.contains(needle)),
            "{key}: {stderr}"
        );
    }

    // -t checks the files a security setting needs, naming file, line and key.
    let refused = dir.join("refused.conf");
    std::fs::write(
        &refused,
        format!("{deployed}\nocsp-response = {d}/ocsp.der\n"),
    )
    .unwrap();
    let (code, _, stderr) = run_test_mode(&refused);
    assert_eq!(code, Some(1), "{stderr}");
    let line = deployed.lines().count() + 1;
    assert!(
        stderr.contains(&format!("{}:{line}: ocsp-response", refused.display())),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
