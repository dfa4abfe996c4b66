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

/// The packet's IPv4 TOS or IPv6 traffic class byte (`--passtos` copies it outside).
pub fn traffic_class(packet: &[u8]) -> Option<u8> {
    match packet.first()? >> 4 {
        4 => packet.get(1).copied(),
        6 => {
            let (high, low) = (*packet.first()?, *packet.get(1)?);
            Some((high << 4) | (low >> 4))
        }
        _ => None,
    }
}

/// What the header at the front of a byte stream says of the packet there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketLen {
    /// Not enough bytes yet to read the length.
    Incomplete,
    /// The whole packet's length (IPv4's total length, IPv6's payload length and header).
    Len(usize),
    /// Not IPv4 or IPv6, or an IPv4 length shorter than its header.
    NotIp,
}

/// The length of the packet at the front of `bytes`, by its own header (protocols that
/// send packets back to back with no framing of their own: oNCP's KMP 300, Array).
pub fn packet_len(bytes: &[u8]) -> PacketLen {
    let field = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
    };
    match (bytes.first().map(|b| b >> 4), field(2), field(4)) {
        (None, ..) | (Some(4), None, _) | (Some(6), _, None) => PacketLen::Incomplete,
        (Some(4), Some(len), _) if len >= 20 => PacketLen::Len(len),
        (Some(6), _, Some(payload)) => PacketLen::Len(payload + 40),
        _ => PacketLen::NotIp,
    }
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
    fn traffic_classes() {
        assert_eq!(traffic_class(&[0x45, 0x28, 0, 20]), Some(0x28));
        // IPv6: version 6, traffic class 0xab across the first two bytes.
        assert_eq!(traffic_class(&[0x6a, 0xb0, 0, 0]), Some(0xab));
        assert_eq!(traffic_class(&[0x45]), None);
        assert_eq!(traffic_class(&[0x15, 0]), None);
        assert_eq!(traffic_class(&[]), None);
    }

    #[test]
    fn lengths_by_the_header() {
        assert_eq!(packet_len(&[]), PacketLen::Incomplete);
        assert_eq!(packet_len(&[0x45, 0, 0]), PacketLen::Incomplete);
        assert_eq!(packet_len(&[0x45, 0, 0, 84]), PacketLen::Len(84));
        assert_eq!(packet_len(&[0x45, 0, 0, 19]), PacketLen::NotIp);
        assert_eq!(packet_len(&[0x60, 0, 0, 0, 0, 8]), PacketLen::Len(48));
        assert_eq!(packet_len(&[0x12, 0, 0, 0]), PacketLen::NotIp);
    }

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
