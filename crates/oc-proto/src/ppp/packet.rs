//! PPP frames (RFC 1661): the header with its optional address/control field and one- or
//! two-byte protocol, and the control packets of LCP, IPCP and IPV6CP with their options.

use thiserror::Error;

/// Protocol numbers this engine knows.
pub mod protocol {
    pub const IPV4: u16 = 0x0021;
    pub const IPV6: u16 = 0x0057;
    pub const IPCP: u16 = 0x8021;
    pub const IPV6CP: u16 = 0x8057;
    pub const LCP: u16 = 0xc021;
}

/// Control packet codes (RFC 1661 section 5).
pub mod code {
    pub const CONFIGURE_REQUEST: u8 = 1;
    pub const CONFIGURE_ACK: u8 = 2;
    pub const CONFIGURE_NAK: u8 = 3;
    pub const CONFIGURE_REJECT: u8 = 4;
    pub const TERMINATE_REQUEST: u8 = 5;
    pub const TERMINATE_ACK: u8 = 6;
    pub const CODE_REJECT: u8 = 7;
    pub const PROTOCOL_REJECT: u8 = 8;
    pub const ECHO_REQUEST: u8 = 9;
    pub const ECHO_REPLY: u8 = 10;
    pub const DISCARD_REQUEST: u8 = 11;
}

const ADDRESS_CONTROL: [u8; 2] = [0xff, 0x03];
/// Code, identifier and length.
pub const CONTROL_HEADER_LEN: usize = 4;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PacketError {
    #[error("PPP frame of {0} bytes has no complete protocol field")]
    NoProtocol(usize),
    #[error("{protocol} packet of {len} bytes is shorter than its 4-byte header")]
    ShortControl { protocol: &'static str, len: usize },
    #[error("{protocol} packet says {said} bytes but {len} arrived")]
    TruncatedControl {
        protocol: &'static str,
        said: usize,
        len: usize,
    },
    #[error("{protocol} option at byte {at} has a bad length")]
    BadOption { protocol: &'static str, at: usize },
}

/// The name of a protocol number, for messages.
pub fn protocol_name(protocol: u16) -> &'static str {
    match protocol {
        protocol::IPV4 => "IPv4",
        protocol::IPV6 => "IPv6",
        protocol::IPCP => "IPCP",
        protocol::IPV6CP => "IPV6CP",
        protocol::LCP => "LCP",
        0x80fd => "CCP",
        0xc023 => "PAP",
        0xc223 => "CHAP",
        _ => "unknown protocol",
    }
}

/// A PPP frame: its protocol and what follows the protocol field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PppFrame<'a> {
    pub protocol: u16,
    pub payload: &'a [u8],
}

impl<'a> PppFrame<'a> {
    /// Reads the header, compressed or not (a receiver accepts both forms always).
    pub fn parse(frame: &'a [u8]) -> Result<Self, PacketError> {
        let rest = frame.strip_prefix(&ADDRESS_CONTROL).unwrap_or(frame);
        let first = *rest.first().ok_or(PacketError::NoProtocol(frame.len()))?;
        // A protocol number's low byte is odd and its high byte even: an odd first byte
        // is a compressed one-byte protocol field.
        if first & 1 == 1 {
            return Ok(Self {
                protocol: u16::from(first),
                payload: rest.get(1..).unwrap_or_default(),
            });
        }
        let second = *rest.get(1).ok_or(PacketError::NoProtocol(frame.len()))?;
        Ok(Self {
            protocol: u16::from_be_bytes([first, second]),
            payload: rest.get(2..).unwrap_or_default(),
        })
    }
}

/// Appends a PPP header for `protocol`: without the address/control field when `acfc`,
/// with a one-byte protocol when `pfc` and the protocol allows it.
pub fn write_header(protocol: u16, acfc: bool, pfc: bool, out: &mut Vec<u8>) {
    if !acfc {
        out.extend_from_slice(&ADDRESS_CONTROL);
    }
    let [high, low] = protocol.to_be_bytes();
    if !(pfc && high == 0) {
        out.push(high);
    }
    out.push(low);
}

/// A control packet of LCP, IPCP or IPV6CP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlPacket<'a> {
    pub code: u8,
    pub id: u8,
    /// Options, data or reason text, as the code says; bytes past the packet's own length
    /// field (padding) are not included.
    pub data: &'a [u8],
}

impl<'a> ControlPacket<'a> {
    pub fn parse(protocol: u16, payload: &'a [u8]) -> Result<Self, PacketError> {
        let name = protocol_name(protocol);
        let header = payload
            .get(..CONTROL_HEADER_LEN)
            .ok_or(PacketError::ShortControl {
                protocol: name,
                len: payload.len(),
            })?;
        let said = usize::from(u16::from_be_bytes([
            header.get(2).copied().unwrap_or(0),
            header.get(3).copied().unwrap_or(0),
        ]));
        if said < CONTROL_HEADER_LEN || said > payload.len() {
            return Err(PacketError::TruncatedControl {
                protocol: name,
                said,
                len: payload.len(),
            });
        }
        Ok(Self {
            code: header.first().copied().unwrap_or(0),
            id: header.get(1).copied().unwrap_or(0),
            data: payload.get(CONTROL_HEADER_LEN..said).unwrap_or_default(),
        })
    }

    /// Appends the packet (code, id, length, data) to `out`; data is cut to what the
    /// length field can say.
    pub fn emit(code: u8, id: u8, data: &[u8], out: &mut Vec<u8>) {
        let data = data
            .get(..usize::from(u16::MAX) - CONTROL_HEADER_LEN)
            .unwrap_or(data);
        let len = u16::try_from(data.len() + CONTROL_HEADER_LEN).unwrap_or(u16::MAX);
        out.extend_from_slice(&[code, id]);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(data);
    }

    /// The options of a Configure-Request/Ack/Nak/Reject.
    pub fn options(&self, protocol: u16) -> Options<'a> {
        Options {
            protocol: protocol_name(protocol),
            data: self.data,
            at: 0,
        }
    }
}

/// One configuration option: type and value (without the type and length bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigOption<'a> {
    pub kind: u8,
    pub value: &'a [u8],
}

impl ConfigOption<'_> {
    /// The whole option as it goes on the wire.
    pub fn emit(kind: u8, value: &[u8], out: &mut Vec<u8>) {
        let len = u8::try_from(value.len() + 2).unwrap_or(u8::MAX);
        out.extend_from_slice(&[kind, len]);
        out.extend_from_slice(value.get(..usize::from(len) - 2).unwrap_or(value));
    }

    pub fn emit_self(&self, out: &mut Vec<u8>) {
        Self::emit(self.kind, self.value, out);
    }

    /// The value as a big-endian u16/u32, if it has exactly that length.
    pub fn be16(&self) -> Option<u16> {
        <[u8; 2]>::try_from(self.value).ok().map(u16::from_be_bytes)
    }

    pub fn be32(&self) -> Option<u32> {
        <[u8; 4]>::try_from(self.value).ok().map(u32::from_be_bytes)
    }
}

/// Iterates over options; a bad length ends it with an error.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    protocol: &'static str,
    data: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<ConfigOption<'a>, PacketError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.data.get(self.at..).filter(|r| !r.is_empty())?;
        let kind = rest.first().copied().unwrap_or(0);
        let len = rest.get(1).map(|l| usize::from(*l));
        let Some(value) = len.filter(|l| *l >= 2).and_then(|l| rest.get(2..l)) else {
            let at = self.at;
            self.at = self.data.len();
            return Some(Err(PacketError::BadOption {
                protocol: self.protocol,
                at,
            }));
        };
        self.at += value.len() + 2;
        Some(Ok(ConfigOption { kind, value }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_in_every_compressed_form() {
        for (bytes, proto, payload) in [
            (&[0xff, 0x03, 0xc0, 0x21, 9][..], protocol::LCP, &[9u8][..]),
            (&[0xc0, 0x21, 9], protocol::LCP, &[9]),
            (&[0xff, 0x03, 0x21, 0x45], protocol::IPV4, &[0x45]),
            (&[0x21, 0x45], protocol::IPV4, &[0x45]),
            (&[0x00, 0x57, 0x60], protocol::IPV6, &[0x60]),
        ] {
            let f = PppFrame::parse(bytes).unwrap();
            assert_eq!((f.protocol, f.payload), (proto, payload), "{bytes:02x?}");
        }
        assert_eq!(PppFrame::parse(&[]), Err(PacketError::NoProtocol(0)));
        assert_eq!(
            PppFrame::parse(&[0xff, 0x03, 0xc0]),
            Err(PacketError::NoProtocol(3))
        );
        let mut out = Vec::new();
        write_header(protocol::IPV4, true, true, &mut out);
        write_header(protocol::LCP, false, true, &mut out);
        write_header(protocol::IPV6, false, false, &mut out);
        assert_eq!(out, [0x21, 0xff, 0x03, 0xc0, 0x21, 0xff, 0x03, 0x00, 0x57]);
    }

    #[test]
    fn control_packets_keep_to_their_length_field() {
        let p = ControlPacket::parse(protocol::LCP, &[1, 7, 0, 6, 7, 2, 0xaa, 0xbb]).unwrap();
        assert_eq!((p.code, p.id, p.data), (1, 7, &[7u8, 2][..]));
        let opts: Vec<_> = p.options(protocol::LCP).collect();
        assert_eq!(
            opts,
            [Ok(ConfigOption {
                kind: 7,
                value: &[]
            })]
        );
        assert!(matches!(
            ControlPacket::parse(protocol::LCP, &[1, 7, 0, 9, 0]),
            Err(PacketError::TruncatedControl {
                said: 9,
                len: 5,
                ..
            })
        ));
        assert!(matches!(
            ControlPacket::parse(protocol::IPCP, &[1, 7, 0, 2]),
            Err(PacketError::TruncatedControl { said: 2, .. })
        ));
        assert!(matches!(
            ControlPacket::parse(protocol::IPCP, &[1, 7]),
            Err(PacketError::ShortControl { len: 2, .. })
        ));
        let mut out = Vec::new();
        ControlPacket::emit(code::ECHO_REPLY, 3, &[1, 2, 3, 4], &mut out);
        assert_eq!(out, [10, 3, 0, 8, 1, 2, 3, 4]);
    }

    #[test]
    fn options_with_bad_lengths_end_in_an_error() {
        for data in [&[1u8, 0][..], &[1, 1], &[1, 4, 0], &[5]] {
            let p = ControlPacket {
                code: 1,
                id: 1,
                data,
            };
            let all: Vec<_> = p.options(protocol::LCP).collect();
            assert!(
                matches!(all.last(), Some(Err(PacketError::BadOption { .. }))),
                "{data:?}"
            );
        }
        let mut out = Vec::new();
        ConfigOption::emit(1, &[0x05, 0xdc], &mut out);
        let p = ControlPacket {
            code: 1,
            id: 1,
            data: &out,
        };
        let opt = p.options(protocol::LCP).next().unwrap().unwrap();
        assert_eq!(opt.be16(), Some(1500));
        assert_eq!(opt.be32(), None);
    }
}
