//! Every key with a good and a bad value.

use super::*;

// ---------------------------------------------------------------------------------------
// Every key: a good value lands in its field

type Check = fn(&Config) -> bool;

const GOOD: &[(&str, Check)] = &[
    ("udp-port = 4443", |c| c.udp_port == Some(4443)),
    ("udp-port = 4443\nudp-port = 0", |c| c.udp_port.is_none()),
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
    ("listen-proxy-proto = true", |c| c.listen_proxy_proto),
    ("udp-listen-host = 192.0.2.1", |c| {
        c.udp_listen_host.as_deref() == Some("192.0.2.1")
    }),
    ("server-drain-ms = 15000", |c| c.server_drain_ms == 15000),
    ("key-pin = 1234\npin-file = /etc/ocserv/pin.txt", |c| {
        c.key_pin.as_deref() == Some("1234") && c.pin_file == Some("/etc/ocserv/pin.txt".into())
    }),
    ("log-level = 3", |c| c.log_level == Some(3)),
    ("syslog-facility = local3", |c| {
        c.syslog_facility.as_deref() == Some("local3")
    }),
    (
        "included-http-headers = X-Frame-Options: deny\nincluded-http-headers = Cache-control: no-store, no-cache\n\
         included-http-headers = Clear-Site-Data: \"cache\",\"cookies\"",
        |c| {
            c.included_http_headers
                == [
                    ("X-Frame-Options".to_owned(), "deny".to_owned()),
                    ("Cache-control".to_owned(), "no-store, no-cache".to_owned()),
                    (
                        "Clear-Site-Data".to_owned(),
                        "\"cache\",\"cookies\"".to_owned(),
                    ),
                ]
        },
    ),
    ("restrict-user-to-ports = \"!(tcp(25), udp())\"", |c| {
        c.net
            .restrict_user_to_ports
            .as_ref()
            .is_some_and(|r| r.negated && r.rules.len() == 2)
    }),
    ("listen-netns = outside", |c| {
        c.listen_netns.as_deref() == Some("outside")
    }),
    (
        "camouflage = true\ncamouflage_secret = \"s3cret\"\ncamouflage_realm = \"Members\"",
        |c| {
            c.camouflage
                == Some(oc_proto::anyconnect::camouflage::Camouflage {
                    secret: "s3cret".into(),
                    realm: Some("Members".into()),
                })
        },
    ),
    // As sample.config ships it: secret and realm set, camouflage off.
    (
        "camouflage = false\ncamouflage_secret = \"mysecretkey\"\ncamouflage_realm = \"x\"",
        |c| c.camouflage.is_none(),
    ),
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
    ("acct = \"pam\"", |c| c.acct == Some(AcctMethod::Pam)),
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
    ("auth = \"pam[gid-min=x]\"", "pam gid-min"),
    ("auth = \"pam[service=../x]\"", "not a file name in /etc/pam.d"),
    ("auth = \"pam[service=a/b]\"", "not a file name in /etc/pam.d"),
    ("auth = \"pam[group=1]\"", "unknown pam option"),
    ("auth = \"pam[gid-min]\"", "expected name=value in pam[...]"),
    ("acct = \"pam[x=1]\"", "acct: pam takes no options"),
    ("acct = ldap", "acct: unknown accounting method"),
    ("auth = radius", "radius needs its radcli file"),
    ("auth = \"radius[config=/r,groupconfig=maybe]\"", "expected true or false"),
    ("auth = \"radius[config=/r,group-separator=pipe]\"", "use semicolon or comma"),
    ("auth = \"radius[config=/r,realm=x]\"", "unknown radius option"),
    ("acct = \"radius[groupconfig=true]\"", "acct: radius needs its radcli file"),
    ("auth = \"gssapi[tgt-freshness-time=0]\"", "more than 0 seconds"),
    ("auth = \"gssapi[realm=X]\"", "unknown gssapi option"),
    ("auth = \"gssapi[require-local-user-map=perhaps]\"", "expected true or false"),
    ("auth = oidc", "oidc needs its JSON file"),
    ("auth = \"oidc[file=/x]\"", "unknown oidc option"),
    ("auth = password", "unknown auth method"),
    ("auth = plain", "plain needs a password file"),
    ("auth = \"plain[passwd=/x,foo=1]\"", "unknown plain option"),
    ("auth = \"plain[passwd=,otp=]\"", "empty value"),
    ("auth = \"plain[passwd=/x\"", "missing ']'"),
    ("auth = certificate[x=1]", "certificate takes no options"),
    (
        "enable-auth = oidc",
        "enable-auth: oidc needs its JSON file",
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
    ("log-level = loud", "log-level: expected a level (0-9999)"),
    (
        "syslog-facility = local8",
        "syslog-facility: unknown facility \"local8\"",
    ),
    (
        "included-http-headers = Bad Name: x",
        "included-http-headers: expected \"Name: value\"",
    ),
    (
        "restrict-user-to-ports = \"tcp(443), gre(1)\"",
        "restrict-user-to-ports: unknown protocol (tcp, udp, sctp, icmp, icmpv6 or esp) at character 11",
    ),
    (
        "camouflage = true",
        "camouflage = true needs camouflage_secret",
    ),
    (
        "camouflage = true\ncamouflage_secret = \"\"",
        "camouflage = true needs camouflage_secret",
    ),
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
    ("route-add-cmd = \"\"", "route-add-cmd: expected a command"),
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
fn an_overlong_select_group_is_named_as_ocserv_words_it() {
    let long = "G".repeat(64);
    let l = ok(&format!(
        "select-group = \"{long}\"\nselect-group = short\n"
    ));
    assert_has(
        &l.warnings,
        L,
        &format!("'select-group' entry '{long}' is 64 bytes or longer and exceeds the maximum"),
    );
    assert!(!has(&l.warnings, L + 1, "exceeds"), "{:#?}", l.warnings);
}

#[test]
fn the_syslog_facility_is_read_before_logging_starts() {
    let dir = TempDir::new("facility");
    let path = dir.0.join("ocserv.conf");
    std::fs::write(
        &path,
        format!("{BASE}syslog-facility = local0\nsyslog-facility = auth\n"),
    )
    .unwrap();
    assert_eq!(
        logging_setting_of(&path, "syslog-facility").as_deref(),
        Some("auth")
    );
    std::fs::write(&path, BASE).unwrap();
    assert_eq!(logging_setting_of(&path, "syslog-facility"), None);
    assert_eq!(
        logging_setting_of(&dir.0.join("missing.conf"), "log-level"),
        None
    );
}

#[test]
fn pins_are_withheld_from_the_network_process_copy() {
    let text = "key-pin = 1234\nsrk-pin: 99\n  key-pin=5\nbanner = key-pin = 7\n";
    let out = without_pins(text);
    assert_eq!(
        out,
        "key-pin = withheld\nsrk-pin = withheld\nkey-pin = withheld\nbanner = key-pin = 7"
    );
    assert!(!out.contains("1234") && !out.contains("99"));
    let c = cfg(&without_pins("key-pin = 1234\n"));
    assert_eq!(c.key_pin.as_deref(), Some("withheld"));
    // An indented line is one more value of the key before it: the last one wins.
    let continued = "key-pin = 1234\n  5678\n[vhost:a.example.com]\nsrk-pin = 42\n  43\n";
    assert_eq!(cfg(continued).key_pin.as_deref(), Some("5678"));
    let out = without_pins(continued);
    assert!(
        !["1234", "5678", "42", "43"]
            .iter()
            .any(|pin| out.contains(pin)),
        "{out}"
    );
    assert_eq!(cfg(&out).key_pin.as_deref(), Some("withheld"));
}

#[test]
fn bad_value_keeps_the_default() {
    // The error fails the load, but the value is not half-applied in between: a following
    // good value for the same key is still taken (and reported as a repeat).
    let p = errs("dpd = x\ndpd = 10\n");
    assert_eq!(p.len(), 1);
}

#[test]
fn pam_methods_take_a_service_and_a_lowest_gid() {
    let cases = [
        ("auth = pam", "ocserv", 0),
        ("auth = \"pam[gid-min=1000]\"", "ocserv", 1000),
        (
            "auth = \"pam[service=ocserv-vhost1, gid-min=5]\"",
            "ocserv-vhost1",
            5,
        ),
    ];
    let rest = BASE.split_once('\n').map(|(_, r)| r).unwrap();
    for (line, service, gid_min) in cases {
        let loaded = parse(&format!("{line}\n{rest}"), file(), false)
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        let want = AuthMethod::Pam(PamMethod {
            service: service.into(),
            gid_min,
        });
        assert_eq!(loaded.config.auth, vec![want], "{line}");
    }
    // PAM asks for the password: it cannot be required next to a password file.
    assert_has(&errs("auth = pam\n"), L, "only one password method");
}

#[test]
fn radius_methods_read_ocservs_options_and_the_legacy_form() {
    let rest = BASE.split_once('\n').map(|(_, r)| r).unwrap();
    let cases = [
        (
            "auth = \"radius[config=/etc/radcli/radiusclient.conf,groupconfig=true,\
             nas-identifier=ocserv1,group-separator=comma]\"",
            RadiusMethod {
                config: "/etc/radcli/radiusclient.conf".into(),
                groupconfig: true,
                nas_identifier: Some("ocserv1".into()),
                group_separator: ',',
            },
        ),
        (
            "auth = \"radius[/etc/radiusclient/radiusclient.conf,groupconfig]\"",
            RadiusMethod {
                config: "/etc/radiusclient/radiusclient.conf".into(),
                groupconfig: true,
                nas_identifier: None,
                group_separator: ';',
            },
        ),
    ];
    for (line, want) in cases {
        let loaded = parse(&format!("{line}\n{rest}"), file(), false)
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(
            loaded.config.auth,
            vec![AuthMethod::Radius(want.clone())],
            "{line}"
        );
    }
    let acct = cfg("acct = \"radius[config=/etc/radcli/radiusclient.conf]\"\n");
    assert!(matches!(acct.acct, Some(AcctMethod::Radius(ref m)) if !m.groupconfig));
}

#[test]
fn gssapi_methods_take_a_keytab_a_local_map_and_a_ticket_age() {
    let rest = BASE.split_once('\n').map(|(_, r)| r).unwrap();
    let cases = [
        ("auth = gssapi", None, true, None),
        (
            "auth = \"gssapi[keytab=/etc/krb5.keytab,require-local-user-map=false,\
             tgt-freshness-time=900]\"",
            Some("/etc/krb5.keytab"),
            false,
            Some(900),
        ),
    ];
    for (line, keytab, map, fresh) in cases {
        let loaded = parse(&format!("{line}\n{rest}"), file(), false)
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        let want = AuthMethod::Gssapi(GssapiMethod {
            keytab: keytab.map(PathBuf::from),
            require_local_user_map: map,
            tgt_freshness_time: fresh,
        });
        assert_eq!(loaded.config.auth, vec![want], "{line}");
    }
    // GSSAPI next to the password files, as an alternative.
    let c = cfg("enable-auth = \"gssapi[require-local-user-map=false]\"\n");
    assert!(matches!(c.enable_auth[..], [AuthMethod::Gssapi(_)]));
}

#[test]
fn oidc_is_a_main_method_with_its_json_file_checked_by_t() {
    let rest = BASE.split_once('\n').map(|(_, r)| r).unwrap();
    let text = format!("auth = \"oidc[config=/etc/ocserv/oidc.json]\"\n{rest}");
    let loaded = parse(&text, file(), false).unwrap();
    assert_eq!(
        loaded.config.auth,
        vec![AuthMethod::Oidc {
            config: PathBuf::from("/etc/ocserv/oidc.json")
        }]
    );
    // The token alone decides: a password beside it would never be asked.
    let p = errs("auth = \"oidc[config=/x]\"\n");
    assert!(
        p.iter()
            .any(|p| p.message.contains("oidc cannot be combined")),
        "{p:?}"
    );
    let p = errs("enable-auth = \"oidc[config=/x]\"\n");
    assert!(
        p.iter()
            .any(|p| p.message.contains("oidc can only be the main method")),
        "{p:?}"
    );
    // `-t` reads the file: a broken one is named with what is wrong in it.
    let dir = std::env::temp_dir().join(format!("oidc-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("oidc.json");
    std::fs::write(&json, r#"{"openid_configuration_url": "file:///k"}"#).unwrap();
    let text = format!("auth = \"oidc[config={}]\"\n{rest}", json.display());
    let p = errors_of(parse(&text, file(), true), "oidc -t");
    assert!(
        p.iter()
            .any(|p| p.message.contains("oidc:") && p.message.contains("missing user_name_claim")),
        "{p:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn kkdcp_routes_by_path_and_realm() {
    let c = cfg("kkdcp = \"/KdcProxy R1 udp@127.0.0.1:88\"\n\
                 kkdcp = \"/KdcProxy R2 tcp@[::1]:88\"\nban-points-kkdcp = 3\n");
    assert_eq!(c.kkdcp.len(), 2);
    assert_eq!(c.kkdcp[1].realm, "R2");
    assert_eq!(c.ban_points_kkdcp, 3);
    assert_eq!(cfg("").ban_points_kkdcp, 1);
    let p = errs("kkdcp = \"/KdcProxy R udp@kdc.example.com:88\"\n");
    assert!(
        p.iter()
            .any(|p| p.message.starts_with("kkdcp:") && p.message.contains("IP address")),
        "{p:?}"
    );
}
