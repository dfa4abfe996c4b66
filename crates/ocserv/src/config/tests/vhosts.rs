//! `[vhost:NAME]` sections: inheritance from the default section and scope rules.

use super::*;

fn vhost<'a>(config: &'a Config, name: &str) -> &'a Config {
    &config
        .vhosts
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no vhost {name} in {:?}", config.vhosts))
        .config
}

#[test]
fn a_vhost_inherits_the_default_section_and_overrides_what_it_sets() {
    let l = ok("dpd = 60\n\
                keepalive = 300\n\
                route = 10.1.0.0/16\n\
                banner = welcome\n\
                [vhost: cert.example.com\t ]\n\
                auth = \"certificate\"\n\
                ca-cert = /etc/ocserv/ca.pem\n\
                cert-user-oid = 2.5.4.3\n\
                dpd = 5\n\
                route = 10.2.0.0/16\n\
                ipv4-network = 192.168.2.0/24\n");
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let default = &l.config;
    assert_eq!(default.net.dpd, Some(60));
    assert_eq!(default.auth.len(), 1);
    assert_eq!(default.ca_cert, None);
    assert_eq!(default.vhosts.len(), 1);
    assert_eq!(default.vhosts[0].line, L + 4);
    let cert = vhost(default, "cert.example.com");
    // Set in the section: the section's value; `auth` replaces the default's methods.
    assert_eq!(cert.net.dpd, Some(5));
    assert_eq!(cert.auth, vec![AuthMethod::Certificate]);
    assert_eq!(cert.ca_cert, Some(PathBuf::from("/etc/ocserv/ca.pem")));
    assert_eq!(
        cert.net.ipv4_network,
        Some("192.168.2.0/24".parse().unwrap())
    );
    // Not set: inherited, certificates included; list keys add to the default's.
    assert_eq!(cert.net.keepalive, Some(300));
    assert_eq!(cert.banner.as_deref(), Some("welcome"));
    assert_eq!(cert.server_pairs, default.server_pairs);
    assert_eq!(cert.tcp_port, Some(443));
    let routes: Vec<IpNet> = cert.net.routes.clone().unwrap();
    assert_eq!(
        routes,
        vec![
            "10.1.0.0/16".parse::<IpNet>().unwrap(),
            "10.2.0.0/16".parse().unwrap()
        ]
    );
    assert!(cert.vhosts.is_empty());
}

#[test]
fn certificates_and_keys_are_replaced_one_by_one() {
    let c = cfg("[vhost:a.example.com]\nserver-cert = /a.pem\n");
    let a = vhost(&c, "a.example.com");
    assert_eq!(
        a.server_pairs,
        vec![(PathBuf::from("/a.pem"), PathBuf::from("/k.pem"))]
    );
    let c = cfg("[vhost:k.example.com]\nserver-key = /other.key\n");
    assert_eq!(
        vhost(&c, "k.example.com").server_pairs,
        vec![(PathBuf::from("/c.pem"), PathBuf::from("/other.key"))]
    );
    // enable-auth alone replaces the default's auth lines too, as ocserv: this section
    // has no auth method left, and the whole-section problem names it at its header.
    let e = errs("[vhost:b.example.com]\nenable-auth = \"certificate\"\n");
    assert_has(&e, L, "[vhost:b.example.com]: no auth method");
}

#[test]
fn server_wide_keys_cannot_be_set_in_a_vhost() {
    let e = errs(
        "[vhost:x.example.com]\ntcp-port = 444\nrun-as-user = nobody\nconnect-script = /bin/true\n",
    );
    for (line, key) in [
        (L + 1, "tcp-port"),
        (L + 2, "run-as-user"),
        (L + 3, "connect-script"),
    ] {
        assert_has(&e, line, key);
        assert_has(
            &e,
            line,
            "cannot be set inside a virtual host section ([vhost:x.example.com])",
        );
    }
    let l = ok("[vhost:x.example.com]\npid-file = /run/x.pid\n");
    assert_has(&l.warnings, L + 1, "ignored inside [vhost:x.example.com]");
}

#[test]
fn a_vhost_problem_names_the_vhost_and_default_ones_are_not_repeated() {
    // The default's unknown key is reported once, not again for each vhost.
    let l =
        ok("frobnicate = 1\n[vhost:a.example.com]\nbogus = 2\n[vhost:b.example.com]\ndpd = 3\n");
    let unknown = l
        .warnings
        .iter()
        .filter(|p| p.message.contains("frobnicate"))
        .count();
    assert_eq!(unknown, 1, "{:?}", l.warnings);
    assert_has(&l.warnings, L + 2, "unknown key \"bogus\"");
    assert_eq!(l.warnings.len(), 2, "{:?}", l.warnings);
    // A problem at the section's own line is reported there.
    let e = errs("[vhost:c.example.com]\nauth = \"certificate\"\n");
    assert_has(&e, L + 1, "certificate authentication needs ca-cert");
}

#[test]
fn sections_of_the_same_name_are_one_vhost() {
    let c = cfg(
        "[vhost:A.example.com]\ndpd = 7\n[vhost:a.example.com]\nkeepalive = 8\n[]\nmtu = 1300\n",
    );
    assert_eq!(c.vhosts.len(), 1);
    let a = vhost(&c, "A.example.com");
    assert_eq!((a.net.dpd, a.net.keepalive), (Some(7), Some(8)));
    // `[]` returns to the default section.
    assert_eq!(c.net.mtu, Some(1300));
    assert_eq!(
        c.hosts().map(|(n, _)| n).collect::<Vec<_>>(),
        vec![None, Some("A.example.com")]
    );
}

#[test]
fn override_files_ignore_vhost_sections() {
    let (settings, warnings) =
        parse_override("dpd = 5\n[vhost:a.example.com]\ndpd = 9\n", Path::new("u")).unwrap();
    assert_eq!(settings.dpd, Some(5));
    assert_has(&warnings, 2, "belongs in the main config");
}

#[test]
fn a_vhost_cannot_ask_for_other_tls_priorities() {
    let e = errs("tls-priorities = NORMAL\n[vhost:a.example.com]\ntls-priorities = \"SECURE256:-VERS-ALL:+VERS-TLS1.3\"\n");
    assert_has(&e, L + 2, "tls-priorities in [vhost:a.example.com] differs");
    let c = cfg("tls-priorities = NORMAL\n[vhost:a.example.com]\ntls-priorities = NORMAL\n");
    assert_eq!(c.vhosts[0].config.tls_priorities.as_deref(), Some("NORMAL"));
}

#[test]
fn a_vhost_adds_its_own_kdc_proxy() {
    let c = cfg("kkdcp = \"/KdcProxy A udp@127.0.0.1:88\"\n\
                 [vhost:b.example.com]\n\
                 kkdcp = \"/KdcProxy B tcp@127.0.0.2:88\"\n");
    assert_eq!(c.kkdcp.len(), 1);
    let realms: Vec<&str> = vhost(&c, "b.example.com")
        .kkdcp
        .iter()
        .map(|r| r.realm.as_str())
        .collect();
    assert_eq!(realms, ["A", "B"]);
}
