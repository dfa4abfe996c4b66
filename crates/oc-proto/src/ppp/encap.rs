//! The vendors' encapsulations of PPP frames on a TLS or DTLS channel, and the deframer that
//! cuts a byte stream back into PPP frames.

use std::collections::VecDeque;

use thiserror::Error;

use super::hdlc::{self, HdlcError, FLAG};

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

/// Cuts the bytes read from the channel into PPP frames: keeps partial frames for the next
/// read, gives out several frames of one read one at a time, never holds more than one
/// frame's worth (`max_frame`) of unfinished bytes.
#[derive(Debug)]
pub struct Deframer {
    encapsulation: Encapsulation,
    max_frame: usize,
    buf: Vec<u8>,
    /// Start of the unread bytes in `buf`.
    start: usize,
    /// Bytes of `buf` (from `start`) taken by the frame last returned.
    taken: usize,
    /// Sync framing: the lengths of the reads not yet returned.
    reads: VecDeque<usize>,
    /// HDLC: the last frame unescaped.
    unescaped: Vec<u8>,
}

impl Deframer {
    /// `max_frame` bounds a frame without its vendor header (and, for HDLC, before
    /// unescaping it may be up to twice that).
    pub fn new(encapsulation: Encapsulation, max_frame: usize) -> Self {
        Self {
            encapsulation,
            max_frame,
            buf: Vec::new(),
            start: 0,
            taken: 0,
            reads: VecDeque::new(),
            unescaped: Vec::new(),
        }
    }

    /// Adds what one read of the channel returned.
    pub fn push(&mut self, bytes: &[u8]) {
        self.consume_taken();
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
        if self.encapsulation == Encapsulation::Sync && !bytes.is_empty() {
            self.reads.push_back(bytes.len());
        }
    }

    /// Bytes waiting for the rest of their frame.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start - self.taken
    }

    /// The next complete frame (PPP header and payload, unescaped and checked for HDLC),
    /// `None` when more bytes are needed. After an error that
    /// [`is_recoverable`](FrameError::is_recoverable), the bad bytes are gone and the next
    /// call goes on with the rest.
    pub fn next_frame(&mut self) -> Option<Result<&[u8], FrameError>> {
        self.consume_taken();
        match self.encapsulation {
            Encapsulation::F5 | Encapsulation::Fortinet => self.next_with_header(),
            Encapsulation::Sync => {
                let len = self.reads.pop_front()?;
                if len > self.max_frame {
                    self.start += len;
                    return Some(Err(FrameError::TooLong {
                        len,
                        max: self.max_frame,
                    }));
                }
                self.taken = len;
                self.buf.get(self.start..self.start + len).map(Ok)
            }
            Encapsulation::F5Hdlc | Encapsulation::Hdlc => self.next_hdlc(),
        }
    }

    fn consume_taken(&mut self) {
        self.start += std::mem::take(&mut self.taken);
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// Drops everything buffered (the stream is out of step) and reports why.
    fn drop_all(&mut self, header: &[u8]) -> FrameError {
        let dropped = self.buf.len() - self.start;
        let error = FrameError::BadHeader {
            encapsulation: self.encapsulation.name(),
            header: header.to_vec(),
            dropped,
        };
        self.buf.clear();
        self.start = 0;
        error
    }

    fn next_with_header(&mut self) -> Option<Result<&[u8], FrameError>> {
        let header_len = self.encapsulation.header_len();
        let (header, good, len) = {
            let header = self.buf.get(self.start..self.start + header_len)?;
            let be16 = |at: usize| {
                u16::from_be_bytes([
                    header.get(at).copied().unwrap_or(0),
                    header.get(at + 1).copied().unwrap_or(0),
                ])
            };
            let (good, len) = match self.encapsulation {
                Encapsulation::F5 => (be16(0) == 0xf500, usize::from(be16(2))),
                _ => {
                    let len = usize::from(be16(4));
                    (be16(2) == 0x5050 && usize::from(be16(0)) == len + 6, len)
                }
            };
            let mut copy = [0u8; 6];
            for (to, from) in copy.iter_mut().zip(header) {
                *to = *from;
            }
            (copy, good, len)
        };
        if !good {
            let header = header.get(..header_len).unwrap_or_default();
            return Some(Err(self.drop_all(header)));
        }
        if len > self.max_frame {
            self.buf.clear();
            self.start = 0;
            return Some(Err(FrameError::TooLong {
                len,
                max: self.max_frame,
            }));
        }
        let from = self.start + header_len;
        if self.buf.len() < from + len {
            return None;
        }
        self.taken = header_len + len;
        self.buf.get(from..from + len).map(Ok)
    }

    fn next_hdlc(&mut self) -> Option<Result<&[u8], FrameError>> {
        loop {
            let rest = self.buf.get(self.start..).unwrap_or_default();
            // Leading flags (and a missing one) are fine: a frame is what lies between.
            let skip = rest.iter().take_while(|b| **b == FLAG).count();
            let body = rest.get(skip..).unwrap_or_default();
            let Some(end) = body.iter().position(|b| *b == FLAG) else {
                if body.len() > 2 * self.max_frame + 2 * hdlc::FCS_LEN {
                    let len = body.len();
                    self.buf.clear();
                    self.start = 0;
                    return Some(Err(FrameError::TooLong {
                        len,
                        max: 2 * self.max_frame,
                    }));
                }
                self.start += skip;
                return None;
            };
            let escaped = body.get(..end).unwrap_or_default();
            let result = hdlc::decode(escaped, &mut self.unescaped);
            // The closing flag may open the next frame: leave it.
            self.start += skip + end;
            if escaped.is_empty() {
                continue;
            }
            return Some(match result {
                Ok(()) if self.unescaped.len() > self.max_frame => Err(FrameError::TooLong {
                    len: self.unescaped.len(),
                    max: self.max_frame,
                }),
                Ok(()) => Ok(self.unescaped.as_slice()),
                Err(e) => Err(e.into()),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [Encapsulation; 5] = [
        Encapsulation::F5,
        Encapsulation::F5Hdlc,
        Encapsulation::Fortinet,
        Encapsulation::Sync,
        Encapsulation::Hdlc,
    ];

    fn frames_of(d: &mut Deframer) -> Vec<Result<Vec<u8>, FrameError>> {
        let mut out = Vec::new();
        while let Some(r) = d.next_frame() {
            out.push(r.map(<[u8]>::to_vec));
        }
        out
    }

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

    #[test]
    fn frames_split_and_joined_across_reads_come_out_whole() {
        for encap in ALL {
            let frames: Vec<Vec<u8>> = vec![
                vec![0xff, 0x03, 0xc0, 0x21, 1, 1, 0, 4],
                vec![0x21, 0x45, 0x7e, 0x7d, 0x00],
            ];
            let mut wire = Vec::new();
            for f in &frames {
                encap.encapsulate(f, 0, &mut wire).unwrap();
            }
            let mut d = Deframer::new(encap, 1500);
            if encap == Encapsulation::Sync {
                // One frame per read, by definition.
                for f in &frames {
                    d.push(f);
                }
            } else {
                let (a, b) = wire.split_at(5);
                d.push(a);
                let first = frames_of(&mut d);
                d.push(b);
                let mut all: Vec<_> = first.into_iter().chain(frames_of(&mut d)).collect();
                assert_eq!(all.len(), 2, "{encap:?}");
                assert_eq!(all.remove(0).unwrap(), frames[0], "{encap:?}");
                assert_eq!(all.remove(0).unwrap(), frames[1], "{encap:?}");
                assert_eq!(d.pending(), 0);
                continue;
            }
            let got: Vec<_> = frames_of(&mut d).into_iter().map(Result::unwrap).collect();
            assert_eq!(got, frames);
        }
    }

    #[test]
    fn a_bad_vendor_header_drops_the_read_and_the_stream_goes_on() {
        let mut d = Deframer::new(Encapsulation::Fortinet, 1500);
        d.push(&[0x00, 0x09, 0x51, 0x50, 0x00, 0x03, 1, 2, 3]);
        let err = d.next_frame().unwrap().unwrap_err();
        assert!(err.is_recoverable());
        assert!(err.to_string().contains("Fortinet"), "{err}");
        assert!(d.next_frame().is_none());
        let mut good = Vec::new();
        Encapsulation::Fortinet
            .encapsulate(&[0x00, 0x21], 0, &mut good)
            .unwrap();
        d.push(&good);
        assert_eq!(d.next_frame().unwrap().unwrap(), &[0x00, 0x21]);
    }

    #[test]
    fn oversized_frames_are_refused_without_buffering_them() {
        let mut d = Deframer::new(Encapsulation::F5, 100);
        d.push(&[0xf5, 0x00, 0x10, 0x00]);
        let err = d.next_frame().unwrap().unwrap_err();
        assert_eq!(
            err,
            FrameError::TooLong {
                len: 4096,
                max: 100
            }
        );
        assert!(!err.is_recoverable());
        let mut h = Deframer::new(Encapsulation::Hdlc, 100);
        h.push(&[0x41; 300]);
        assert!(matches!(
            h.next_frame(),
            Some(Err(FrameError::TooLong { .. }))
        ));
        assert_eq!(h.pending(), 0);
        let mut s = Deframer::new(Encapsulation::Sync, 100);
        s.push(&[0; 101]);
        assert!(matches!(
            s.next_frame(),
            Some(Err(FrameError::TooLong { .. }))
        ));
        assert!(s.next_frame().is_none());
    }

    #[test]
    fn hdlc_skips_empty_frames_and_reports_bad_checksums() {
        let mut wire = vec![FLAG, FLAG, FLAG];
        wire.extend_from_slice(&[0x41, 0x42, 0x43, 0x44]);
        wire.push(FLAG);
        Encapsulation::Hdlc
            .encapsulate(&[0x00, 0x21, 9], 0, &mut wire)
            .unwrap();
        let mut d = Deframer::new(Encapsulation::Hdlc, 1500);
        d.push(&wire);
        let got = frames_of(&mut d);
        assert!(matches!(
            got[0],
            Err(FrameError::Hdlc(HdlcError::BadFcs { .. }))
        ));
        assert_eq!(got[1].as_deref().unwrap(), &[0x00, 0x21, 9]);
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn empty_reads_give_nothing() {
        for encap in ALL {
            let mut d = Deframer::new(encap, 1500);
            d.push(&[]);
            assert!(d.next_frame().is_none(), "{encap:?}");
        }
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

        #[test]
        fn any_bytes_never_panic_and_stay_bounded(reads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20), which in 0usize..5) {
            let encap = ALL[which];
            let mut d = Deframer::new(encap, 200);
            for r in &reads {
                d.push(r);
                while let Some(f) = d.next_frame() {
                    if let Ok(frame) = f {
                        prop_assert!(frame.len() <= 200);
                    }
                }
                prop_assert!(d.pending() <= 2 * 200 + 4 + 300);
            }
        }
    }
}
