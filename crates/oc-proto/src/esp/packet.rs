//! The ESP packet as openconnect lays it out (RFC 4303, UDP-encapsulated without the
//! non-ESP marker: the UDP payload starts with the SPI):
//!
//! ```text
//! SPI (4) | sequence (4) | IV | payload | pad 1, 2, 3 ... | pad length | next header | ICV
//!                              \______________ encrypted _______________________/
//! ```
//!
//! The ICV covers everything before it. Padding is the minimum that makes the encrypted
//! part whole blocks, with RFC 4303's default contents 1, 2, 3 ...; a receiver accepts up
//! to 255 bytes of it but checks every byte, as upstream does.

use super::EspDrop;

/// SPI and sequence number.
pub const ESP_HEADER_LEN: usize = 8;
/// Pad length and next header.
pub const ESP_TRAILER_LEN: usize = 2;
/// The largest ESP packet sealed or opened (a UDP datagram cannot carry more).
pub const MAX_ESP_PACKET_LEN: usize = 65_535;

/// What the decrypted payload is: the ESP next-header field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NextHeader {
    /// 4, IP-in-IP: a Legacy IP packet.
    Ipv4,
    /// 5: Juniper's LZO-compressed Legacy IP packet (the field means ST otherwise).
    LzoIpv4,
    /// 41: an IPv6 packet.
    Ipv6,
}

impl NextHeader {
    /// The values upstream accepts on receipt; anything else is dropped.
    pub const fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            4 => Some(Self::Ipv4),
            5 => Some(Self::LzoIpv4),
            41 => Some(Self::Ipv6),
            _ => None,
        }
    }

    pub const fn byte(self) -> u8 {
        match self {
            Self::Ipv4 => 4,
            Self::LzoIpv4 => 5,
            Self::Ipv6 => 41,
        }
    }

    /// The field for an IP packet from the tun device: IPv6 when its version nibble says
    /// 6, IPv4 for anything else (upstream's choice, so even an empty packet has one).
    pub fn of_ip_packet(packet: &[u8]) -> Self {
        match packet.first() {
            Some(first) if first >> 4 == 6 => Self::Ipv6,
            _ => Self::Ipv4,
        }
    }

    /// The field of a probe: the address family it is about (the gateway's UDP address
    /// for Pulse and NC, GlobalProtect's magic ping address), not its contents.
    pub const fn for_family(ipv6: bool) -> Self {
        if ipv6 {
            Self::Ipv6
        } else {
            Self::Ipv4
        }
    }
}

/// The clear header of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspHeader {
    pub spi: u32,
    pub sequence: u32,
}

impl EspHeader {
    /// The first 8 bytes; `None` when there are fewer.
    pub fn parse(packet: &[u8]) -> Option<Self> {
        let (spi, rest) = packet.split_first_chunk::<4>()?;
        let (sequence, _) = rest.split_first_chunk::<4>()?;
        Some(Self {
            spi: u32::from_be_bytes(*spi),
            sequence: u32::from_be_bytes(*sequence),
        })
    }

    /// Writes the header over the first 8 bytes of `out` (which has them: the caller
    /// checked the headroom).
    pub fn emit(&self, out: &mut [u8]) {
        if let Some((head, _)) = out.split_first_chunk_mut::<ESP_HEADER_LEN>() {
            head[..4].copy_from_slice(&self.spi.to_be_bytes());
            head[4..].copy_from_slice(&self.sequence.to_be_bytes());
        }
    }
}

/// Bytes of padding for `payload_len` bytes: the fewest that make payload, padding and
/// trailer whole `block`s (0 to `block - 1`).
pub const fn pad_len(payload_len: usize, block: usize) -> usize {
    let block = if block == 0 { 1 } else { block };
    (block - (payload_len + ESP_TRAILER_LEN) % block) % block
}

/// Bytes of the encrypted part for `payload_len` bytes of payload.
pub const fn padded_len(payload_len: usize, block: usize) -> usize {
    payload_len + pad_len(payload_len, block) + ESP_TRAILER_LEN
}

/// Writes padding and trailer after the first `payload_len` bytes of `plain`, which
/// holds exactly the padded length; returns false (writing nothing) when it does not.
pub fn write_trailer(plain: &mut [u8], payload_len: usize, next_header: u8, block: usize) -> bool {
    let pad = pad_len(payload_len, block);
    if plain.len() != payload_len + pad + ESP_TRAILER_LEN {
        return false;
    }
    let Some(tail) = plain.get_mut(payload_len..) else {
        return false;
    };
    for (i, byte) in tail.iter_mut().take(pad).enumerate() {
        // pad < block <= 255 here, so the contents 1, 2, 3 ... fit a byte.
        *byte = (i + 1) as u8;
    }
    if let [.., pad_field, next_field] = tail {
        *pad_field = pad as u8;
        *next_field = next_header;
    }
    true
}

/// Reads the trailer of decrypted `plain` (payload, padding, trailer) as upstream does:
/// the next header must be one it knows, at least one payload byte must precede the
/// padding, and the padding must read 1, 2, 3 ... Returns the payload length.
pub fn read_trailer(plain: &[u8]) -> Result<(usize, NextHeader), EspDrop> {
    let [.., pad_field, next_field] = plain else {
        return Err(EspDrop::BadPadLength { pad_len: 0 });
    };
    let next_header = NextHeader::from_byte(*next_field).ok_or(EspDrop::UnknownNextHeader {
        next_header: *next_field,
        len: plain.len(),
    })?;
    let pad = usize::from(*pad_field);
    // Upstream refuses `len <= 2 + pad`: an empty payload is as wrong as too much pad.
    let Some(payload_len) = plain
        .len()
        .checked_sub(ESP_TRAILER_LEN + pad)
        .filter(|&n| n > 0)
    else {
        return Err(EspDrop::BadPadLength {
            pad_len: *pad_field,
        });
    };
    let padding = plain
        .get(payload_len..payload_len + pad)
        .ok_or(EspDrop::BadPadLength {
            pad_len: *pad_field,
        })?;
    let monotonic = padding
        .iter()
        .enumerate()
        .all(|(i, &byte)| usize::from(byte) == i + 1);
    if !monotonic {
        return Err(EspDrop::BadPadding);
    }
    Ok((payload_len, next_header))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pad_matches_upstream_formula() {
        // Upstream: padlen = blksize - 1 - ((len + 1) % blksize).
        for len in 0..100 {
            assert_eq!(pad_len(len, 16), 15 - ((len + 1) % 16), "{len}");
            assert_eq!(padded_len(len, 16) % 16, 0);
        }
    }

    #[test]
    fn trailer_round_trips_for_every_length_around_a_block() {
        for len in 1..=17 {
            let mut plain = vec![0xee; padded_len(len, 16)];
            assert!(write_trailer(&mut plain, len, 41, 16));
            let pad = pad_len(len, 16);
            let expected_pad: Vec<u8> = (1..=pad as u8).collect();
            assert_eq!(&plain[len..len + pad], expected_pad.as_slice());
            assert_eq!(plain[plain.len() - 2], pad as u8);
            assert_eq!(read_trailer(&plain), Ok((len, NextHeader::Ipv6)));
        }
        // The wrong size of buffer is refused, not overrun.
        assert!(!write_trailer(&mut [0; 15], 1, 4, 16));
    }

    #[test]
    fn trailer_checks_as_upstream() {
        // 14 payload bytes, no padding: the smallest packet with one block.
        let mut plain = [0u8; 16];
        plain[15] = 4;
        assert_eq!(read_trailer(&plain), Ok((14, NextHeader::Ipv4)));
        // Juniper's LZO is recognised; ICMP (1) is not a tunnel payload.
        plain[15] = 5;
        assert_eq!(read_trailer(&plain), Ok((14, NextHeader::LzoIpv4)));
        plain[15] = 1;
        assert_eq!(
            read_trailer(&plain),
            Err(EspDrop::UnknownNextHeader {
                next_header: 1,
                len: 16
            })
        );
        // Padding that leaves no payload, or more padding than packet.
        plain[15] = 4;
        plain[14] = 14;
        assert_eq!(
            read_trailer(&plain),
            Err(EspDrop::BadPadLength { pad_len: 14 })
        );
        plain[14] = 200;
        assert_eq!(
            read_trailer(&plain),
            Err(EspDrop::BadPadLength { pad_len: 200 })
        );
        // Longer padding than needed is fine if it reads 1, 2, 3 ...
        let mut long = [0u8; 32];
        for (i, b) in long[1..30].iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        long[30] = 29;
        long[31] = 41;
        assert_eq!(read_trailer(&long), Ok((1, NextHeader::Ipv6)));
        long[29] = 0;
        assert_eq!(read_trailer(&long), Err(EspDrop::BadPadding));
        assert_eq!(read_trailer(&[]), Err(EspDrop::BadPadLength { pad_len: 0 }));
    }

    #[test]
    fn next_header_of_a_packet() {
        assert_eq!(NextHeader::of_ip_packet(&[0x45, 0]), NextHeader::Ipv4);
        assert_eq!(NextHeader::of_ip_packet(&[0x60, 0]), NextHeader::Ipv6);
        assert_eq!(NextHeader::of_ip_packet(&[]), NextHeader::Ipv4);
        assert_eq!(NextHeader::for_family(true).byte(), 41);
    }

    #[test]
    fn header_round_trip() {
        let header = EspHeader {
            spi: 0x0102_0304,
            sequence: 0xfffe_fdfc,
        };
        let mut out = [0u8; 8];
        header.emit(&mut out);
        assert_eq!(out, [1, 2, 3, 4, 0xff, 0xfe, 0xfd, 0xfc]);
        assert_eq!(EspHeader::parse(&out), Some(header));
        assert_eq!(EspHeader::parse(&out[..7]), None);
    }
}
