//! The addresses of an IP packet (IPv4 or IPv6, by its version nibble).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The source address; `None` for a packet too short or not IPv4/IPv6.
pub fn source(packet: &[u8]) -> Option<IpAddr> {
    address(packet, 12, 8)
}

/// The destination address; `None` for a packet too short or not IPv4/IPv6.
pub fn destination(packet: &[u8]) -> Option<IpAddr> {
    address(packet, 16, 24)
}

/// The address at `v4_at` (IPv4) or `v6_at` (IPv6).
fn address(packet: &[u8], v4_at: usize, v6_at: usize) -> Option<IpAddr> {
    match packet.first()? >> 4 {
        4 => {
            let b: [u8; 4] = packet.get(v4_at..v4_at + 4)?.try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(b)))
        }
        6 => {
            let b: [u8; 16] = packet.get(v6_at..v6_at + 16)?.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_both_families_and_nothing_of_garbage() {
        let mut v4 = vec![0x45u8; 20];
        v4[12..16].copy_from_slice(&[10, 9, 0, 5]);
        v4[16..20].copy_from_slice(&[192, 0, 2, 7]);
        assert_eq!(source(&v4), Some("10.9.0.5".parse().unwrap()));
        assert_eq!(destination(&v4), Some("192.0.2.7".parse().unwrap()));
        let mut v6 = vec![0u8; 40];
        v6[0] = 0x60;
        v6[8..24].copy_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        v6[24..40].copy_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(source(&v6), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(destination(&v6), Some("2001:db8::2".parse().unwrap()));
        for garbage in [&[][..], &[0x45; 15], &[0x60; 23], &[0x20; 60]] {
            assert_eq!((source(garbage), destination(garbage)), (None, None));
        }
    }
}
