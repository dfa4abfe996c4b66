//! Per-user and per-group files.

use super::*;

/// The per-user lookup as the server does it: the main process reads, the network process
/// parses.
fn load_override(
    dir: &Path,
    name: &str,
) -> Result<Option<(NetSettings, Vec<Problem>)>, ConfigError> {
    read_override(dir, name)?
        .map(|(path, bytes)| parse_override_bytes(&bytes, &path))
        .transpose()
}

fn load_override_file(path: &Path) -> Result<(NetSettings, Vec<Problem>), ConfigError> {
    parse_override_bytes(&read_override_file(path)?, path)
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
    assert_eq!(s.client_bypass_protocol, Some(true));
    // Bandwidth limits apply per user: no warning.
    assert_eq!(s.tx_data_per_sec, Some(2000));
    assert!(!w.iter().any(|p| p.line == 16 || p.line == 23), "{w:#?}");
    // deny-roaming = false asks for what we do: accepted, no warning.
    assert_eq!(s.deny_roaming, Some(false));
    assert!(!w.iter().any(|p| p.line == 22), "{w:#?}");
    assert_eq!(w.len(), 4, "{w:#?}");
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
