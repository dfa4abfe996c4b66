//! The vendors' encapsulations of PPP frames on a TLS or DTLS channel (the deframer that
//! cuts a byte stream back into PPP frames is in `deframe.rs`).

use thiserror::Error;

use super::hdlc::{self, HdlcError};

/// How PPP frames travel on the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encapsulation {
    /// F5: `f5 00`, the frame's length (BE16), the frame.
    F5,
    /// F5 with `hdlc_framing=yes`: RFC 1662 framing, no header.
    F5Hdlc,
    /// Fortinet: the length of header and frame (BE16), `50 50`, the frame's length (BE16).
    Fortinet,
    /// RFC 1661 frames as they are, one per read of the channel (upstream's test protocol).
    Sync,
    /// RFC 1662 asynchronous HDLC framing (upstream's test protocol with `hdlc`; slirp).
    Hdlc,
}

impl Encapsulation {
    /// Bytes of vendor header in front of each frame.
    pub const fn header_len(self) -> usize {
        match self {
            Self::F5 => 4,
            Self::Fortinet => 6,
            Self::F5Hdlc | Self::Sync | Self::Hdlc => 0,
        }
    }

    pub const fn is_hdlc(self) -> bool {
        matches!(self, Self::F5Hdlc | Self::Hdlc)
    }

    /// Whether LCP offers address/control and protocol field compression (Fortinet's
    /// gateways reject both).
    pub const fn offers_header_compression(self) -> bool {
        !matches!(self, Self::Fortinet)
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::F5 => "F5",
            Self::F5Hdlc => "F5 HDLC",
            Self::Fortinet => "Fortinet",
            Self::Sync => "RFC1661",
            Self::Hdlc => "RFC1662 HDLC",
        }
    }

    /// Appends `frame` (PPP header and payload) to `out` in this encapsulation; `accm` is
    /// the control character map for HDLC.
    pub fn encapsulate(self, frame: &[u8], accm: u32, out: &mut Vec<u8>) -> Result<(), FrameError> {
        self.encapsulate_parts(&[frame], accm, out)
    }

    /// [`encapsulate`](Self::encapsulate) of the frame made of `parts` (a PPP header and a
    /// packet) without joining them first: the packet is copied once, into `out`.
    pub fn encapsulate_parts(
        self,
        parts: &[&[u8]],
        accm: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), FrameError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let too_long = || FrameError::TooLong {
            len,
            max: usize::from(u16::MAX) - self.header_len(),
        };
        match self {
            Self::F5 => {
                let len = u16::try_from(len).map_err(|_| too_long())?;
                out.extend_from_slice(&[0xf5, 0x00]);
                out.extend_from_slice(&len.to_be_bytes());
            }
            Self::Fortinet => {
                let total = u16::try_from(len + 6).map_err(|_| too_long())?;
                out.extend_from_slice(&total.to_be_bytes());
                out.extend_from_slice(&[0x50, 0x50]);
                out.extend_from_slice(&(total - 6).to_be_bytes());
            }
            Self::Sync => {}
            Self::F5Hdlc | Self::Hdlc => {
                hdlc::encode_parts(parts, accm, out);
                return Ok(());
            }
        }
        for part in parts {
            out.extend_from_slice(part);
        }
        Ok(())
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    #[error("bad {encapsulation} header {header:02x?}; {dropped} bytes dropped")]
    BadHeader {
        encapsulation: &'static str,
        header: Vec<u8>,
        dropped: usize,
    },
    #[error("PPP frame of {len} bytes is larger than the {max} allowed")]
    TooLong { len: usize, max: usize },
    #[error(transparent)]
    Hdlc(#[from] HdlcError),
}

impl FrameError {
    /// Whether the channel can go on after this error (the bad frame is dropped); a frame
    /// too long means the stream cannot be trusted any more.
    pub fn is_recoverable(&self) -> bool {
        !matches!(self, Self::TooLong { .. })
    }
}

/// Every encapsulation, for the tests that go through them all.
#[cfg(test)]
pub(crate) const ALL: [Encapsulation; 5] = [
    Encapsulation::F5,
    Encapsulation::F5Hdlc,
    Encapsulation::Fortinet,
    Encapsulation::Sync,
    Encapsulation::Hdlc,
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn vendor_headers_are_as_the_vendors_send_them() {
        let mut out = Vec::new();
        Encapsulation::F5
            .encapsulate(&[0xff, 0x03, 0xc0, 0x21], 0, &mut out)
            .unwrap();
        assert_eq!(out, [0xf5, 0x00, 0x00, 0x04, 0xff, 0x03, 0xc0, 0x21]);
        out.clear();
        Encapsulation::Fortinet
            .encapsulate(&[0x00, 0x21, 0x45], 0, &mut out)
            .unwrap();
        assert_eq!(out, [0x00, 0x09, 0x50, 0x50, 0x00, 0x03, 0x00, 0x21, 0x45]);
        let big = vec![0u8; 65_535];
        assert!(Encapsulation::Fortinet
            .encapsulate(&big, 0, &mut out)
            .is_err());
    }

    proptest! {
        #[test]
        fn a_frame_in_parts_is_the_frame_joined(head in proptest::collection::vec(any::<u8>(), 0..8), body in proptest::collection::vec(any::<u8>(), 0..600), which in 0usize..5, accm in any::<u32>()) {
            let encap = ALL[which];
            let (mut parts, mut joined) = (Vec::new(), Vec::new());
            encap.encapsulate_parts(&[&head, &body], accm, &mut parts).unwrap();
            encap.encapsulate(&[head.as_slice(), body.as_slice()].concat(), accm, &mut joined).unwrap();
            prop_assert_eq!(parts, joined);
        }
    }
}
