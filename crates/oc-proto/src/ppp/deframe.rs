//! Cutting what the channel reads back into PPP frames: frames wholly inside a read are
//! handed out straight from it; only a frame split across reads (and HDLC, which must be
//! unescaped anyway) goes through a buffer, which never holds more than one frame's worth.

use std::collections::VecDeque;
use std::ops::Range;

use super::encap::{Encapsulation, FrameError};
use super::hdlc::{self, FLAG};

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

    /// Cuts one read into frames and hands each to `on_frame`, in order, as
    /// [`Deframer::push`] then [`Deframer::next_frame`] would; an error from `on_frame` stops
    /// it. Frames wholly inside `bytes` are not copied (F5, Fortinet and sync framing); a
    /// frame split across reads is completed in the buffer with only the bytes it lacks.
    pub fn feed<E>(
        &mut self,
        bytes: &[u8],
        mut on_frame: impl FnMut(Result<&[u8], FrameError>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.consume_taken();
        let buffered = self.buf.len() > self.start || !self.reads.is_empty();
        let in_place = match self.encapsulation {
            Encapsulation::F5 | Encapsulation::Fortinet => true,
            Encapsulation::Sync => !buffered,
            Encapsulation::F5Hdlc | Encapsulation::Hdlc => false,
        };
        if !in_place {
            self.push(bytes);
            while let Some(frame) = self.next_frame() {
                on_frame(frame)?;
            }
            return Ok(());
        }
        if self.encapsulation == Encapsulation::Sync {
            if bytes.is_empty() {
                return Ok(());
            }
            return on_frame(if bytes.len() > self.max_frame {
                Err(FrameError::TooLong {
                    len: bytes.len(),
                    max: self.max_frame,
                })
            } else {
                Ok(bytes)
            });
        }
        let Some(rest) = self.complete_buffered(bytes, &mut on_frame)? else {
            return Ok(());
        };
        self.feed_in_place(rest, on_frame)
    }

    /// Completes a frame left over from earlier reads with the bytes of `bytes` it lacks,
    /// and hands it out. The bytes of `bytes` after it, or `None` when nothing is left to
    /// read in place (all taken, or dropped with a bad header).
    fn complete_buffered<'b, E>(
        &mut self,
        mut bytes: &'b [u8],
        on_frame: &mut impl FnMut(Result<&[u8], FrameError>) -> Result<(), E>,
    ) -> Result<Option<&'b [u8]>, E> {
        loop {
            self.consume_taken();
            let have = self.buf.len() - self.start;
            if have == 0 {
                return Ok(Some(bytes));
            }
            let rest = self.buf.get(self.start..).unwrap_or_default();
            match parse_header_frame(self.encapsulation, rest, self.max_frame) {
                HeaderParse::NeedMore { total } => {
                    let want = total.unwrap_or(self.encapsulation.header_len());
                    let (take, after) = bytes.split_at((want - have).min(bytes.len()));
                    if take.is_empty() {
                        return Ok(None);
                    }
                    self.buf.extend_from_slice(take);
                    bytes = after;
                }
                HeaderParse::Frame { .. } => {
                    if let Some(frame) = self.next_frame() {
                        on_frame(frame)?;
                    }
                }
                HeaderParse::Bad(_) => {
                    // The stream is out of step: this read goes with the rest.
                    self.buf.extend_from_slice(bytes);
                    if let Some(frame) = self.next_frame() {
                        on_frame(frame)?;
                    }
                    return Ok(None);
                }
            }
        }
    }

    /// Hands out the frames of `bytes` straight from it; a partial last frame is kept.
    fn feed_in_place<E>(
        &mut self,
        mut bytes: &[u8],
        mut on_frame: impl FnMut(Result<&[u8], FrameError>) -> Result<(), E>,
    ) -> Result<(), E> {
        loop {
            match parse_header_frame(self.encapsulation, bytes, self.max_frame) {
                HeaderParse::Frame { payload, consumed } => {
                    on_frame(Ok(bytes.get(payload).unwrap_or_default()))?;
                    bytes = bytes.get(consumed..).unwrap_or_default();
                }
                HeaderParse::NeedMore { .. } => {
                    self.buf.clear();
                    self.start = 0;
                    self.buf.extend_from_slice(bytes);
                    return Ok(());
                }
                HeaderParse::Bad(error) => return on_frame(Err(error)),
            }
        }
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

    fn next_with_header(&mut self) -> Option<Result<&[u8], FrameError>> {
        let rest = self.buf.get(self.start..).unwrap_or_default();
        match parse_header_frame(self.encapsulation, rest, self.max_frame) {
            HeaderParse::Frame { payload, consumed } => {
                let from = self.start;
                self.taken = consumed;
                self.buf
                    .get(from + payload.start..from + payload.end)
                    .map(Ok)
            }
            HeaderParse::NeedMore { .. } => None,
            HeaderParse::Bad(error) => {
                self.buf.clear();
                self.start = 0;
                Some(Err(error))
            }
        }
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

/// What the front of some bytes holds, for the encapsulations with a vendor header.
enum HeaderParse {
    /// A whole frame: its PPP part, and the bytes it takes with the header.
    Frame {
        payload: Range<usize>,
        consumed: usize,
    },
    /// Not all there yet: how many bytes the frame takes once the header says so.
    NeedMore { total: Option<usize> },
    /// The stream is out of step (or the frame too long): everything goes.
    Bad(FrameError),
}

/// Reads a vendor header (F5 or Fortinet) and its frame from the front of `bytes`.
fn parse_header_frame(encapsulation: Encapsulation, bytes: &[u8], max: usize) -> HeaderParse {
    let header_len = encapsulation.header_len();
    let Some(header) = bytes.get(..header_len) else {
        return HeaderParse::NeedMore { total: None };
    };
    let be16 = |at: usize| {
        u16::from_be_bytes([
            header.get(at).copied().unwrap_or(0),
            header.get(at + 1).copied().unwrap_or(0),
        ])
    };
    let (good, len) = match encapsulation {
        Encapsulation::F5 => (be16(0) == 0xf500, usize::from(be16(2))),
        _ => {
            let len = usize::from(be16(4));
            (be16(2) == 0x5050 && usize::from(be16(0)) == len + 6, len)
        }
    };
    if !good {
        return HeaderParse::Bad(FrameError::BadHeader {
            encapsulation: encapsulation.name(),
            header: header.to_vec(),
            dropped: bytes.len(),
        });
    }
    if len > max {
        return HeaderParse::Bad(FrameError::TooLong { len, max });
    }
    let total = header_len + len;
    if bytes.len() < total {
        return HeaderParse::NeedMore { total: Some(total) };
    }
    HeaderParse::Frame {
        payload: header_len..total,
        consumed: total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ppp::encap::ALL;
    use crate::ppp::hdlc::HdlcError;
    use proptest::prelude::*;

    fn frames_of(d: &mut Deframer) -> Vec<Result<Vec<u8>, FrameError>> {
        let mut out = Vec::new();
        while let Some(r) = d.next_frame() {
            out.push(r.map(<[u8]>::to_vec));
        }
        out
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

    /// The frames (or errors) of `reads` through [`Deframer::feed`].
    fn fed(
        encap: Encapsulation,
        max: usize,
        reads: &[Vec<u8>],
    ) -> Vec<Result<Vec<u8>, FrameError>> {
        let mut d = Deframer::new(encap, max);
        let mut out = Vec::new();
        for r in reads {
            d.feed(r, |f| {
                out.push(f.map(<[u8]>::to_vec));
                Ok::<(), ()>(())
            })
            .unwrap();
        }
        out
    }

    /// The same through [`Deframer::push`] and [`Deframer::next_frame`].
    fn pushed(
        encap: Encapsulation,
        max: usize,
        reads: &[Vec<u8>],
    ) -> Vec<Result<Vec<u8>, FrameError>> {
        let mut d = Deframer::new(encap, max);
        let mut out = Vec::new();
        for r in reads {
            d.push(r);
            out.extend(frames_of(&mut d));
        }
        out
    }

    #[test]
    fn feed_reads_frames_in_place_and_completes_split_ones() {
        for encap in [Encapsulation::F5, Encapsulation::Fortinet] {
            let mut wire = Vec::new();
            for f in [
                &[0x00, 0x21, 1][..],
                &[0x00, 0x21, 2, 2],
                &[0xc0, 0x21, 9, 1, 0, 4],
            ] {
                encap.encapsulate(f, 0, &mut wire).unwrap();
            }
            // Every way of cutting the stream in two or three reads gives the same frames.
            for i in 0..=wire.len() {
                for j in i..=wire.len() {
                    let reads = vec![wire[..i].to_vec(), wire[i..j].to_vec(), wire[j..].to_vec()];
                    let got = fed(encap, 1500, &reads);
                    assert_eq!(got.len(), 3, "{encap:?} cut at {i}/{j}: {got:?}");
                    assert_eq!(got, pushed(encap, 1500, &reads));
                }
            }
        }
        // An error from the caller stops the read.
        let mut d = Deframer::new(Encapsulation::F5, 1500);
        let mut wire = Vec::new();
        Encapsulation::F5
            .encapsulate(&[0x00, 0x21], 0, &mut wire)
            .unwrap();
        Encapsulation::F5
            .encapsulate(&[0x00, 0x21], 0, &mut wire)
            .unwrap();
        let mut seen = 0;
        let stopped = d.feed(&wire, |_| {
            seen += 1;
            Err("stop")
        });
        assert_eq!((stopped, seen), (Err("stop"), 1));
    }

    proptest! {
        #[test]
        fn feed_gives_what_push_and_next_frame_give(reads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..12), which in 0usize..5, frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..150), 0..6), cut in any::<usize>()) {
            let encap = ALL[which];
            // Garbage, and well-formed frames cut somewhere.
            prop_assert_eq!(fed(encap, 200, &reads), pushed(encap, 200, &reads));
            if encap != Encapsulation::Sync {
                let mut wire = Vec::new();
                for f in &frames {
                    encap.encapsulate(f, 0, &mut wire).unwrap();
                }
                let at = if wire.is_empty() { 0 } else { cut % wire.len() };
                let split = vec![wire[..at].to_vec(), wire[at..].to_vec()];
                prop_assert_eq!(fed(encap, 200, &split), pushed(encap, 200, &split));
            }
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
