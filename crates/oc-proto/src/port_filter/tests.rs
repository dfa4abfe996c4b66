use super::*;

fn rules(text: &str) -> PortRules {
    PortRules::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

/// An IPv4 packet of `protocol` to `dst` with `port` as destination port (when the
/// protocol has ports) and a fragment offset in 8-byte units.
fn v4(protocol: u8, dst: [u8; 4], port: u16, fragment_offset: u16) -> Vec<u8> {
    let mut p = vec![0u8; 28];
    p[0] = 0x45;
    p[6..8].copy_from_slice(&fragment_offset.to_be_bytes());
    p[9] = protocol;
    p[12..16].copy_from_slice(&[10, 9, 0, 5]);
    p[16..20].copy_from_slice(&dst);
    p[22..24].copy_from_slice(&port.to_be_bytes());
    p
}

/// An IPv6 packet with `extensions` (next-header, length byte) before `protocol`.
fn v6(protocol: u8, port: u16, extensions: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut p = vec![0u8; 40];
    p[0] = 0x60;
    p[24..40].copy_from_slice(
        &"2001:db8::53"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    let mut headers: Vec<u8> = Vec::new();
    let mut next_of_previous = 6usize; // offset of the field naming the next header
    for (kind, body) in extensions {
        let here = p.len() + headers.len();
        if next_of_previous == 6 {
            p[6] = *kind;
        } else {
            headers[next_of_previous - 40] = *kind;
        }
        headers.extend(body);
        next_of_previous = here;
    }
    if next_of_previous == 6 {
        p[6] = protocol;
    } else {
        headers[next_of_previous - 40] = protocol;
    }
    p.extend(headers);
    let mut l4 = vec![0u8; 8];
    l4[2..4].copy_from_slice(&port.to_be_bytes());
    p.extend(l4);
    p
}

#[test]
fn sample_config_values_parse() {
    let r = rules("tcp(443), tcp(80), udp(443), sctp(99), tcp(583), icmp(), icmpv6()");
    assert!(!r.negated);
    assert_eq!(r.rules.len(), 7);
    assert_eq!(
        r.rules[3],
        PortRule {
            protocol: Protocol::Sctp,
            port: Some(99)
        }
    );
    assert_eq!(r.rules[5].port, None);
    assert_eq!(
        r.script_form(),
        "tcp 443 tcp 80 udp 443 sctp 99 tcp 583 icmp all icmpv6 all "
    );
    let r = rules("!(tcp(443), tcp(80))");
    assert!(r.negated);
    assert_eq!(r.to_string(), "!(tcp(443), tcp(80))");
    // Case, spacing and port 0 as ocserv reads them.
    let r = rules("  ! ( TCP ( 22 ) ,Esp( ) , udp(0) )  ");
    assert_eq!(r.rules[1].protocol, Protocol::Esp);
    assert_eq!(r.rules[2].port, None);
}

#[test]
fn malformed_values_name_what_and_where() {
    for (text, what, at) in [
        ("", "unknown protocol", 0),
        ("gre(1)", "unknown protocol", 0),
        ("tcp 443", "expected '('", 4),
        ("tcp(443", "expected a port number and ')'", 7),
        ("tcp(x)", "expected a port number and ')'", 4),
        ("tcp(70000)", "port above 65535", 4),
        ("tcp(1) udp(2)", "expected ',' between items", 7),
        ("tcp(1),", "unknown protocol", 7),
        ("!tcp(1)", "expected '(' after '!'", 1),
        ("!(tcp(1)", "closing ')'", 8),
        ("!(tcp(1)) x", "expected ',' between items", 10),
    ] {
        let e = PortRules::parse(text).unwrap_err();
        assert!(e.what.contains(what), "{text:?}: {e}");
        assert_eq!(e.at, at, "{text:?}: {e}");
    }
    let many = vec!["tcp(1)"; 300].join(",");
    assert!(PortRules::parse(&many).is_err());
}

#[test]
fn an_allow_list_passes_listed_ports_and_dns_only() {
    let r = rules("tcp(443), udp(443), icmp()");
    let dns: Vec<IpAddr> = vec!["192.0.2.53".parse().unwrap()];
    assert!(r.allows(&v4(6, [198, 51, 100, 1], 443, 0), &dns));
    assert!(r.allows(&v4(17, [198, 51, 100, 1], 443, 0), &dns));
    assert!(r.allows(&v4(1, [198, 51, 100, 1], 0, 0), &dns));
    assert!(!r.allows(&v4(6, [198, 51, 100, 1], 22, 0), &dns));
    assert!(!r.allows(&v4(132, [198, 51, 100, 1], 443, 0), &dns));
    assert!(!r.allows(&v4(58, [198, 51, 100, 1], 0, 0), &dns));
    // DNS to the given servers, not to others.
    assert!(r.allows(&v4(17, [192, 0, 2, 53], 53, 0), &dns));
    assert!(r.allows(&v4(6, [192, 0, 2, 53], 53, 0), &dns));
    assert!(!r.allows(&v4(17, [192, 0, 2, 54], 53, 0), &dns));
    // A later fragment carries no port: only whole-protocol items let it through.
    assert!(!r.allows(&v4(6, [198, 51, 100, 1], 443, 185), &dns));
    assert!(r.allows(&v4(1, [198, 51, 100, 1], 0, 185), &dns));
    // Unreadable input never passes an allow list.
    for bad in [
        &[][..],
        &[0x45],
        &[0x45, 0, 0, 0, 0, 0, 0, 0, 0, 6],
        &[0x70; 40],
    ] {
        assert!(!r.allows(bad, &dns), "{bad:?}");
    }
}

#[test]
fn a_block_list_drops_listed_ports_only() {
    let r = rules("!(tcp(25), udp())");
    assert!(!r.allows(&v4(6, [198, 51, 100, 1], 25, 0), &[]));
    assert!(!r.allows(&v4(17, [198, 51, 100, 1], 53, 0), &[]));
    assert!(r.allows(&v4(6, [198, 51, 100, 1], 443, 0), &[]));
    assert!(r.allows(&v4(1, [198, 51, 100, 1], 0, 0), &[]));
    // A later TCP fragment cannot be told from port 25's: the first one decided.
    assert!(r.allows(&v4(6, [198, 51, 100, 1], 25, 185), &[]));
    assert!(!r.allows(&v4(17, [198, 51, 100, 1], 53, 185), &[]));
}

#[test]
fn ipv6_extension_headers_are_walked_to_the_transport() {
    let r = rules("tcp(443), icmpv6()");
    assert!(r.allows(&v6(6, 443, &[]), &[]));
    assert!(!r.allows(&v6(6, 22, &[]), &[]));
    assert!(r.allows(&v6(58, 0, &[]), &[]));
    // Hop-by-hop options (8 bytes), then destination options (16 bytes).
    let hop = vec![0, 0, 1, 4, 0, 0, 0, 0];
    let dest = vec![0, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert!(r.allows(&v6(6, 443, &[(0, hop.clone()), (60, dest)]), &[]));
    assert!(!r.allows(&v6(6, 22, &[(0, hop)]), &[]));
    // First fragment (offset 0) has the port; a later one does not.
    let first = vec![0, 0, 0, 1, 0, 0, 0, 7];
    let later = vec![0, 0, 0x05, 0x01, 0, 0, 0, 7];
    assert!(r.allows(&v6(6, 443, &[(44, first)]), &[]));
    assert!(!r.allows(&v6(6, 443, &[(44, later)]), &[]));
    // A chain that runs off the end of the packet.
    let mut cut = v6(6, 443, &[(0, vec![0, 200, 0, 0, 0, 0, 0, 0])]);
    cut.truncate(50);
    assert!(!r.allows(&cut, &[]));
}

#[test]
fn ipv4_options_and_ipv6_authentication_headers_are_stepped_over() {
    let r = rules("tcp(443)");
    // IHL 6: four bytes of options before the TCP header.
    let mut with_options = v4(6, [192, 0, 2, 7], 0, 0);
    with_options[0] = 0x46;
    with_options.splice(20..20, [1, 1, 1, 1]);
    with_options[24 + 2..24 + 4].copy_from_slice(&443u16.to_be_bytes());
    assert!(r.allows(&with_options, &[]));
    with_options[24 + 2..24 + 4].copy_from_slice(&22u16.to_be_bytes());
    assert!(!r.allows(&with_options, &[]));
    // AH counts its length in 4-byte words, minus two: length 2 is 16 bytes.
    let ah = vec![0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert!(r.allows(&v6(6, 443, &[(51, ah.clone())]), &[]));
    assert!(!r.allows(&v6(6, 22, &[(51, ah)]), &[]));
}

#[test]
fn a_chain_longer_than_the_walk_is_dropped_by_either_list() {
    let dest = vec![0, 0, 1, 4, 0, 0, 0, 0];
    let chain: Vec<(u8, Vec<u8>)> = (0..9).map(|_| (60, dest.clone())).collect();
    let long = v6(6, 25, &chain);
    assert!(!rules("!(tcp(25))").allows(&long, &[]));
    assert!(!rules("tcp(25)").allows(&long, &[]));
    // Eight are walked: the port is known.
    let eight = v6(6, 25, &chain[..8]);
    assert!(!rules("!(tcp(25))").allows(&eight, &[]));
    assert!(rules("!(tcp(443))").allows(&eight, &[]));
}
