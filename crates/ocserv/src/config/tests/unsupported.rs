//! Sections, unknown keys, keys we do not apply (warnings) and security keys we do not enforce (errors).

use super::*;

// ---------------------------------------------------------------------------------------
// Sections, unknown and unsupported keys

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
    let l = ok(
        "srk-pin-file = /pin\nnet-priority = 1\ndh-params = /dh.pem\n\
                client-bypass-protocol = false\nuse-utmp = false\nlisten-proxy-proto = false\n\
                camouflage = false\nclient-bypass-protocol = true\n",
    );
    assert_has(&l.warnings, L, "not supported yet: srk-pin-file");
    assert_has(&l.warnings, L + 1, "not supported yet: net-priority");
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
    // client-bypass-protocol is applied (as a header), so no warning either way.
    assert_eq!(l.config.net.client_bypass_protocol, Some(true));
    assert!(!has(&l.warnings, L + 7, "not supported"));
}

#[test]
fn plain_unsupported_keys_stay_warnings_under_test_mode() {
    let text = format!("{BASE}net-priority = 3\n");
    let p = errors_of(parse(&text, file(), true), "net-priority");
    assert!(!has(&p, L, "net-priority"), "{p:#?}");
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
fn bad_values_in_per_user_files_refuse_the_file() {
    for (line, key) in [
        (
            "restrict-user-to-ports = \"tcp(22\"",
            "restrict-user-to-ports: expected a port number and ')' at character 7",
        ),
        (
            "deny-roaming = maybe",
            "deny-roaming: expected true or false",
        ),
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
                cisco-client-compat = true\nmin-reauth-time = 300\nuse-utmp = true\n\
                limit-worker-memory = true\n",
    );
    let w = &l.warnings;
    assert_has(w, L, "try-mtu-discovery: not supported yet");
    assert_has(w, L + 1, "server-stats-reset-time: not supported yet");
    assert_has(w, L + 2, "cisco-client-compat: only partly supported");
    assert_has(w, L + 3, "min-reauth-time is the old name of ban-time");
    assert_has(w, L + 4, "not supported yet: use-utmp");
    assert_has(w, L + 5, "not supported yet: limit-worker-memory");
    assert_eq!(l.config.min_reauth_time, 300);
    // ban-time applies as such (longer than ban-reset-time too).
    let l = ok("ban-time = 60\nban-reset-time = 10\n");
    assert!(l.warnings.is_empty(), "{:#?}", l.warnings);
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
