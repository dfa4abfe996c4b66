//! Client addresses as the server shows and compares them.
//!
//! A dual-stack listener (`::`) sees an IPv4 client as the IPv4-mapped IPv6 address
//! `::ffff:a.b.c.d`. ocserv listens on separate sockets and sees `a.b.c.d`; administrators
//! (logs, `occtl unban ip`, scripts' `IP_REAL`) expect that form too, so every place that
//! shows or keys on a client address goes through [`canonical_ip`].

use std::net::{IpAddr, SocketAddr};

/// `ip` with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) turned into the IPv4 address
/// `a.b.c.d`; any other address unchanged (IPv4-compatible `::a.b.c.d` included, which is
/// not a mapping).
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// `addr` with its IP made canonical by [`canonical_ip`]; the port is kept.
pub fn canonical_addr(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical_ip(addr.ip()), addr.port())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn mapped_ipv4_becomes_ipv4() {
        assert_eq!(canonical_ip(ip("::ffff:198.18.0.9")), ip("198.18.0.9"));
        assert_eq!(canonical_ip(ip("::ffff:c612:9")), ip("198.18.0.9"));
        assert_eq!(
            canonical_addr("[::ffff:198.18.0.9]:443".parse().unwrap()),
            "198.18.0.9:443".parse::<SocketAddr>().unwrap()
        );
    }

    #[test]
    fn other_addresses_are_unchanged() {
        for s in [
            "198.18.0.9",
            "2001:db8::1",
            "::1",
            "::",
            // IPv4-compatible (deprecated), not mapped.
            "::198.18.0.9",
            // NAT64's well-known prefix is a different network.
            "64:ff9b::c612:9",
        ] {
            assert_eq!(canonical_ip(ip(s)), ip(s), "{s}");
        }
    }
}
