//! Routes, address pools and DNS.

use super::*;

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
