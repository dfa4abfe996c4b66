//! The probe that starts and keeps up GlobalProtect's ESP: an ICMP echo request, from the
//! client's tunnel address to the "magic" address of the configuration's `gw-address`
//! (`gw-address-v6`), whose payload begins with the 16 bytes `monitor\0\0pan ha `. The
//! gateway answers with an echo reply from the magic address carrying the same payload;
//! until one arrives the ESP channel is not up, and once up the client sends one probe per
//! DPD interval as its keepalive.
//!
//! Built as upstream builds it (`gpst_esp_send_probes`): IPv4 with identification 0x4747,
//! don't-fragment, TTL 64, ICMP identifier 0x4747; IPv6 with hop limit 128 and the
//! identifier the caller picks (upstream: random). The ESP next header of a probe is the
//! magic address's family ([`crate::esp::NextHeader::for_family`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::esp::{EspProber, NextHeader};

/// The payload's first 16 bytes, which the gateway requires and echoes.
pub const MAGIC_PAYLOAD: [u8; 16] = *b"monitor\x00\x00pan ha ";
/// ICMP's header (type, code, checksum, identifier, sequence).
const ICMP_HEADER: usize = 8;
const IPV4_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
/// The identifier (and IPv4 identification) the Windows client uses.
pub const WINDOWS_ID: u16 = 0x4747;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;
const PROTO_ICMP: u8 = 1;
const PROTO_ICMPV6: u8 = 58;

/// An echo's identity: who sent it where, and its identifier and sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Echo {
    /// The sender (the client's tunnel address for a request).
    pub source: IpAddr,
    /// The receiver (the magic address for a request).
    pub destination: IpAddr,
    pub id: u16,
    pub sequence: u16,
}

/// The client's probe: an echo request from `source` to `magic` (both of one family;
/// `None` otherwise). `id` is used for IPv6 only (IPv4 always says 0x4747).
pub fn echo_request(source: IpAddr, magic: IpAddr, id: u16, sequence: u16) -> Option<Vec<u8>> {
    let echo = Echo {
        source,
        destination: magic,
        id,
        sequence,
    };
    build(&echo, true, &MAGIC_PAYLOAD)
}

/// The packet of an echo `request` or reply with `payload`.
fn build(echo: &Echo, request: bool, payload: &[u8]) -> Option<Vec<u8>> {
    let icmp_len = ICMP_HEADER + payload.len();
    match (echo.source, echo.destination) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let total = u16::try_from(IPV4_HEADER + icmp_len).ok()?;
            let mut p = vec![0u8; usize::from(total)];
            p[0] = 0x45;
            p[2..4].copy_from_slice(&total.to_be_bytes());
            p[4..6].copy_from_slice(&WINDOWS_ID.to_be_bytes());
            p[6] = 0x40; // don't fragment
            p[8] = 64;
            p[9] = PROTO_ICMP;
            p[12..16].copy_from_slice(&src.octets());
            p[16..20].copy_from_slice(&dst.octets());
            let sum = checksum(0, &p[..IPV4_HEADER]);
            p[10..12].copy_from_slice(&sum.to_be_bytes());
            let icmp = &mut p[IPV4_HEADER..];
            icmp[0] = if request {
                ICMP_ECHO_REQUEST
            } else {
                ICMP_ECHO_REPLY
            };
            let id = if request { WINDOWS_ID } else { echo.id };
            icmp[4..6].copy_from_slice(&id.to_be_bytes());
            icmp[6..8].copy_from_slice(&echo.sequence.to_be_bytes());
            icmp[ICMP_HEADER..].copy_from_slice(payload);
            let sum = checksum(0, icmp);
            icmp[2..4].copy_from_slice(&sum.to_be_bytes());
            Some(p)
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let plen = u16::try_from(icmp_len).ok()?;
            let mut p = vec![0u8; IPV6_HEADER + icmp_len];
            p[0] = 0x60;
            p[4..6].copy_from_slice(&plen.to_be_bytes());
            p[6] = PROTO_ICMPV6;
            p[7] = 128;
            p[8..24].copy_from_slice(&src.octets());
            p[24..40].copy_from_slice(&dst.octets());
            let icmp = &mut p[IPV6_HEADER..];
            icmp[0] = if request {
                ICMPV6_ECHO_REQUEST
            } else {
                ICMPV6_ECHO_REPLY
            };
            icmp[4..6].copy_from_slice(&echo.id.to_be_bytes());
            icmp[6..8].copy_from_slice(&echo.sequence.to_be_bytes());
            icmp[ICMP_HEADER..].copy_from_slice(payload);
            let sum = icmpv6_checksum(src, dst, icmp);
            icmp[2..4].copy_from_slice(&sum.to_be_bytes());
            Some(p)
        }
        _ => None,
    }
}

/// The one's complement sum of `data` (a trailing odd byte padded with zero) added to
/// `initial`, folded and complemented: the Internet checksum.
fn checksum(initial: u32, data: &[u8]) -> u16 {
    let mut sum = u64::from(initial);
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(u16::from_be_bytes([*last, 0]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // Folded: at most 16 bits.
    !u16::try_from(sum).unwrap_or(u16::MAX)
}

/// ICMPv6's checksum over the pseudo-header (RFC 8200 section 8.1) and `icmp`.
fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, icmp: &[u8]) -> u16 {
    let mut pseudo = [0u8; 40];
    pseudo[..16].copy_from_slice(&src.octets());
    pseudo[16..32].copy_from_slice(&dst.octets());
    let len = u32::try_from(icmp.len()).unwrap_or(u32::MAX);
    pseudo[32..36].copy_from_slice(&len.to_be_bytes());
    pseudo[39] = PROTO_ICMPV6;
    let partial = !checksum(0, &pseudo);
    checksum(u32::from(partial), icmp)
}

/// Reads an ICMP echo (`request`: an echo request, else a reply) whose payload starts
/// with [`MAGIC_PAYLOAD`]: its addresses, identifier and sequence, and the payload.
/// Checksums are not checked (upstream does not either; ESP's ICV covers the packet).
fn read_echo(packet: &[u8], request: bool) -> Option<(Echo, &[u8])> {
    let version = packet.first()? >> 4;
    let (source, destination, icmp) = match version {
        4 => {
            let ihl = usize::from(packet.first()? & 0x0f) * 4;
            if ihl < IPV4_HEADER || *packet.get(9)? != PROTO_ICMP {
                return None;
            }
            let total = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
            let end = total.min(packet.len());
            let src: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
            let wanted = if request {
                ICMP_ECHO_REQUEST
            } else {
                ICMP_ECHO_REPLY
            };
            let icmp = packet.get(ihl..end)?;
            if *icmp.first()? != wanted {
                return None;
            }
            (
                IpAddr::V4(Ipv4Addr::from(src)),
                IpAddr::V4(Ipv4Addr::from(dst)),
                icmp,
            )
        }
        6 => {
            if *packet.get(6)? != PROTO_ICMPV6 {
                return None;
            }
            let plen = usize::from(u16::from_be_bytes([*packet.get(4)?, *packet.get(5)?]));
            let end = (IPV6_HEADER + plen).min(packet.len());
            let src: [u8; 16] = packet.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = packet.get(24..40)?.try_into().ok()?;
            let wanted = if request {
                ICMPV6_ECHO_REQUEST
            } else {
                ICMPV6_ECHO_REPLY
            };
            let icmp = packet.get(IPV6_HEADER..end)?;
            if *icmp.first()? != wanted {
                return None;
            }
            (
                IpAddr::V6(Ipv6Addr::from(src)),
                IpAddr::V6(Ipv6Addr::from(dst)),
                icmp,
            )
        }
        _ => return None,
    };
    let payload = icmp.get(ICMP_HEADER..)?;
    if !payload.starts_with(&MAGIC_PAYLOAD) {
        return None;
    }
    let echo = Echo {
        source,
        destination,
        id: u16::from_be_bytes([*icmp.get(4)?, *icmp.get(5)?]),
        sequence: u16::from_be_bytes([*icmp.get(6)?, *icmp.get(7)?]),
    };
    Some((echo, payload))
}

/// Whether a packet that came over ESP is the gateway's answer to a probe (upstream's
/// `gpst_esp_catch_probe`): an echo reply from `magic` with the magic payload. Such a
/// packet is not for the tun device.
pub fn is_echo_reply(packet: &[u8], magic: IpAddr) -> bool {
    read_echo(packet, false).is_some_and(|(echo, _)| echo.source == magic)
}

/// The gateway's side: if `packet` is a probe to `magic`, the reply to send back over
/// ESP (from `magic` to the prober, same identifier, sequence and payload).
pub fn reply_to_probe(packet: &[u8], magic: IpAddr) -> Option<(Echo, Vec<u8>)> {
    let (echo, payload) = read_echo(packet, true)?;
    if echo.destination != magic {
        return None;
    }
    let answer = Echo {
        source: magic,
        destination: echo.source,
        ..echo
    };
    let reply = build(&answer, false, payload)?;
    Some((echo, reply))
}

/// The client's [`EspProber`]: echo requests from its tunnel address to the magic address
/// (IPv6 identifier 0x4747 too, sequence numbers counting up), answered by the magic
/// address's echo reply.
#[derive(Debug, Clone)]
pub struct GpProber {
    source: IpAddr,
    magic: IpAddr,
    sequence: u16,
}

impl GpProber {
    /// `None` when the two addresses are of different families.
    pub fn new(source: IpAddr, magic: IpAddr) -> Option<Self> {
        (source.is_ipv4() == magic.is_ipv4()).then_some(Self {
            source,
            magic,
            sequence: 0,
        })
    }
}

impl EspProber for GpProber {
    fn next_probe(&mut self) -> Option<(Vec<u8>, NextHeader)> {
        self.sequence = self.sequence.wrapping_add(1);
        let packet = echo_request(self.source, self.magic, WINDOWS_ID, self.sequence)?;
        Some((packet, NextHeader::for_family(self.magic.is_ipv6())))
    }

    fn is_answer(&self, payload: &[u8]) -> bool {
        is_echo_reply(payload, self.magic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT4: Ipv4Addr = Ipv4Addr::new(10, 1, 2, 3);
    const MAGIC4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

    #[test]
    fn ipv4_probe_as_upstream_builds_it() {
        let p = echo_request(IpAddr::V4(CLIENT4), IpAddr::V4(MAGIC4), 9, 2).unwrap();
        assert_eq!(p.len(), 44);
        assert_eq!(&p[..10], &[0x45, 0, 0, 44, 0x47, 0x47, 0x40, 0, 64, 1]);
        assert_eq!(&p[12..20], &[10, 1, 2, 3, 192, 0, 2, 1]);
        // The header's and ICMP's checksums verify (sum to all ones).
        assert_eq!(checksum(0, &p[..20]), 0);
        assert_eq!(checksum(0, &p[20..]), 0);
        assert_eq!(&p[20..28], &[8, 0, p[22], p[23], 0x47, 0x47, 0, 2]);
        assert_eq!(&p[28..], &MAGIC_PAYLOAD);
    }

    #[test]
    fn the_gateway_answers_and_the_client_recognises_it() {
        let magic = IpAddr::V4(MAGIC4);
        let probe = echo_request(IpAddr::V4(CLIENT4), magic, 0, 3).unwrap();
        assert!(!is_echo_reply(&probe, magic), "a request is no reply");
        let (echo, reply) = reply_to_probe(&probe, magic).unwrap();
        assert_eq!(echo.sequence, 3);
        assert_eq!(echo.source, IpAddr::V4(CLIENT4));
        assert!(is_echo_reply(&reply, magic));
        assert_eq!(&reply[12..20], &[192, 0, 2, 1, 10, 1, 2, 3]);
        assert_eq!(checksum(0, &reply[20..]), 0);
        // Another magic address, or a probe to another address, is not it.
        let other = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));
        assert!(!is_echo_reply(&reply, other));
        assert!(reply_to_probe(&probe, other).is_none());
        // An ordinary ping is not a probe.
        let mut ping = probe.clone();
        ping[28] = b'x';
        assert!(reply_to_probe(&ping, magic).is_none());
        // The Windows client's 56-byte payload is echoed whole.
        let mut long = probe.clone();
        long.extend_from_slice(b"0123456789:;<=>?");
        let total = long.len() as u16;
        long[2..4].copy_from_slice(&total.to_be_bytes());
        let (_, reply) = reply_to_probe(&long, magic).unwrap();
        assert_eq!(reply.len(), long.len());
    }

    #[test]
    fn ipv6_probes() {
        let client: Ipv6Addr = "fd00::5".parse().unwrap();
        let magic: Ipv6Addr = "fd00::1".parse().unwrap();
        let p = echo_request(IpAddr::V6(client), IpAddr::V6(magic), 0xbeef, 1).unwrap();
        assert_eq!(p.len(), 64);
        assert_eq!(&p[..8], &[0x60, 0, 0, 0, 0, 24, 58, 128]);
        assert_eq!(icmpv6_checksum(client, magic, &p[40..]), 0);
        let (echo, reply) = reply_to_probe(&p, IpAddr::V6(magic)).unwrap();
        assert_eq!(echo.id, 0xbeef);
        assert!(is_echo_reply(&reply, IpAddr::V6(magic)));
        assert_eq!(icmpv6_checksum(magic, client, &reply[40..]), 0);
        // Mixed families make no probe.
        assert!(echo_request(IpAddr::V6(client), IpAddr::V4(MAGIC4), 0, 1).is_none());
    }

    #[test]
    fn hostile_packets_are_nothing() {
        let magic = IpAddr::V4(MAGIC4);
        for junk in [&[][..], &[0x45], &[0x4f; 30], &[0x60; 39], &[0x41; 60]] {
            assert!(!is_echo_reply(junk, magic));
            assert!(reply_to_probe(junk, magic).is_none());
        }
        let mut probe = echo_request(IpAddr::V4(CLIENT4), magic, 0, 1).unwrap();
        probe.truncate(40);
        assert!(reply_to_probe(&probe, magic).is_none());
    }
}
