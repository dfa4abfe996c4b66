//! GlobalProtect's framing on the TLS tunnel (after `START_TUNNEL`): a 16-byte header in
//! front of each packet.
//!
//! ```text
//! 0   magic 1a 2b 3c 4d
//! 4   EtherType, big-endian: 0800 (IPv4), 86dd (IPv6), 0000 (keepalive)
//! 6   payload length, big-endian (the header not counted)
//! 8   01 00 00 00 00 00 00 00 for a packet, all zero for a keepalive
//! 16  the packet
//! ```
//!
//! A keepalive is the header alone; each side answers the other's (upstream sends one
//! after 10 s of silence and calls the answer "DPD/keepalive response"). Upstream reads
//! each TLS record as one frame, so a sender writes one frame per record. Upstream only
//! logs other bytes than the expected ones at offset 8; so does [`Frame::odd_tail`].

use thiserror::Error;

/// The header's length.
pub const HEADER_LEN: usize = 16;
/// The header's first four bytes.
pub const MAGIC: [u8; 4] = [0x1a, 0x2b, 0x3c, 0x4d];
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// The largest payload a header can announce.
pub const MAX_PAYLOAD: usize = u16::MAX as usize;
/// A keepalive, both ways.
pub const KEEPALIVE: [u8; HEADER_LEN] =
    [0x1a, 0x2b, 0x3c, 0x4d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// Bytes 8 to 15 of a packet's header.
const DATA_TAIL: [u8; 8] = [1, 0, 0, 0, 0, 0, 0, 0];

/// What a frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// An IPv4 packet.
    Ipv4,
    /// An IPv6 packet.
    Ipv6,
    /// A keepalive (or its answer): no payload.
    Keepalive,
}

/// One received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub kind: FrameKind,
    pub payload: &'a [u8],
    /// Bytes 8 to 15 were not what the kind has (upstream logs it and goes on).
    pub odd_tail: bool,
}

/// A header that cannot be read: the stream is not GlobalProtect framing (upstream quits
/// with "Unknown packet received").
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("unknown GlobalProtect frame: header {0:02x?}")]
    BadHeader([u8; HEADER_LEN]),
    #[error("a packet of {0} bytes does not fit in a GlobalProtect frame")]
    TooLong(usize),
    #[error("{0} bytes before the packet; the GlobalProtect header needs 16")]
    NoHeadroom(usize),
}

/// The header for a packet of `len` bytes whose first byte is `first` (its IP version
/// picks the EtherType, as upstream: version 6 is IPv6, anything else IPv4).
pub fn header(first: Option<u8>, len: usize) -> Result<[u8; HEADER_LEN], FrameError> {
    let len16 = u16::try_from(len).map_err(|_| FrameError::TooLong(len))?;
    let ethertype = match first {
        Some(b) if b >> 4 == 6 => ETHERTYPE_IPV6,
        _ => ETHERTYPE_IPV4,
    };
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(&MAGIC);
    h[4..6].copy_from_slice(&ethertype.to_be_bytes());
    h[6..8].copy_from_slice(&len16.to_be_bytes());
    h[8..].copy_from_slice(&DATA_TAIL);
    Ok(h)
}

/// Frames the packet at `buf[HEADER_LEN..]` in place: the header goes into the 16 bytes
/// of headroom in front of it. Returns the whole frame (all of `buf`).
pub fn frame_in_place(buf: &mut [u8]) -> Result<&[u8], FrameError> {
    let Some((head, packet)) = buf.split_first_chunk_mut::<HEADER_LEN>() else {
        return Err(FrameError::NoHeadroom(buf.len()));
    };
    *head = header(packet.first().copied(), packet.len())?;
    Ok(buf)
}

/// Appends a frame holding `packet` to `out`.
pub fn push_frame(packet: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    out.extend_from_slice(&header(packet.first().copied(), packet.len())?);
    out.extend_from_slice(packet);
    Ok(())
}

/// The frame's length once its header is there.
fn frame_len(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    let Some(h) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let ethertype = u16::from_be_bytes([h[4], h[5]]);
    let len = usize::from(u16::from_be_bytes([h[6], h[7]]));
    let known =
        matches!(ethertype, ETHERTYPE_IPV4 | ETHERTYPE_IPV6) || (ethertype == 0 && len == 0);
    if h[..4] != MAGIC || !known {
        return Err(FrameError::BadHeader(*h));
    }
    Ok(Some(HEADER_LEN + len))
}

/// `frame` is exactly one frame whose header [`frame_len`] accepted.
fn split(frame: &[u8]) -> Frame<'_> {
    let (h, payload) = frame.split_at(HEADER_LEN.min(frame.len()));
    let ethertype = h.get(4..6).map_or(0, |e| u16::from_be_bytes([e[0], e[1]]));
    let tail = h.get(8..).unwrap_or_default();
    let (kind, expected) = match ethertype {
        ETHERTYPE_IPV4 => (FrameKind::Ipv4, DATA_TAIL),
        ETHERTYPE_IPV6 => (FrameKind::Ipv6, DATA_TAIL),
        _ => (FrameKind::Keepalive, [0; 8]),
    };
    Frame {
        kind,
        payload,
        odd_tail: tail != expected,
    }
}

/// Reads one frame that is a whole TLS record, as upstream does: the record must hold
/// exactly the header and the length it announces. `Ok(None)` for a record of another
/// length (upstream logs "Unexpected packet length" and drops it).
pub fn read_record(record: &[u8]) -> Result<Option<Frame<'_>>, FrameError> {
    match frame_len(record)? {
        Some(len) if len == record.len() => Ok(Some(split(record))),
        Some(_) => Ok(None),
        None => Err(FrameError::BadHeader(padded(record))),
    }
}

fn padded(bytes: &[u8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    let n = bytes.len().min(HEADER_LEN);
    h[..n].copy_from_slice(&bytes[..n]);
    h
}

/// Splits the TLS byte stream into frames whatever the records: frames wholly inside a
/// read are handed out straight from it; only a frame split across reads is kept, and
/// only the bytes it lacks are copied (at most one frame, 16 + 65535 bytes, is held).
#[derive(Debug, Default)]
pub struct FrameDecoder {
    partial: Vec<u8>,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held of a frame not yet complete.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    /// Calls `on_frame` for each frame complete after `input`, stopping at the first error
    /// (a bad header, or the callback's). After an error the stream cannot be trusted:
    /// the caller ends it.
    pub fn decode<E: From<FrameError>>(
        &mut self,
        mut input: &[u8],
        mut on_frame: impl FnMut(Frame<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        while !self.partial.is_empty() && !input.is_empty() {
            let want = match frame_len(&self.partial)? {
                Some(total) => total,
                None => HEADER_LEN,
            };
            let take = want.saturating_sub(self.partial.len()).min(input.len());
            let (head, rest) = input.split_at(take);
            self.partial.extend_from_slice(head);
            input = rest;
            if let Some(total) = frame_len(&self.partial)? {
                if self.partial.len() == total {
                    let whole = std::mem::take(&mut self.partial);
                    let result = on_frame(split(&whole));
                    // Keep the allocation for the next split frame.
                    self.partial = whole;
                    self.partial.clear();
                    result?;
                }
            }
        }
        while let Some(total) = frame_len(input)? {
            let Some((frame, rest)) = input.split_at_checked(total) else {
                break;
            };
            on_frame(split(frame))?;
            input = rest;
        }
        self.partial.extend_from_slice(input);
        // A header that is already bad is reported now rather than with the next read.
        frame_len(&self.partial)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PING: [u8; 5] = [0x45, 1, 2, 3, 4];

    fn collect(
        dec: &mut FrameDecoder,
        input: &[u8],
    ) -> Result<Vec<(FrameKind, Vec<u8>, bool)>, FrameError> {
        let mut out = Vec::new();
        dec.decode(input, |f| {
            out.push((f.kind, f.payload.to_vec(), f.odd_tail));
            Ok::<_, FrameError>(())
        })?;
        Ok(out)
    }

    #[test]
    fn headers_as_upstream_writes_them() {
        assert_eq!(
            header(Some(0x45), 0x54).unwrap(),
            [0x1a, 0x2b, 0x3c, 0x4d, 0x08, 0x00, 0x00, 0x54, 1, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(header(Some(0x60), 1).unwrap()[4..6], [0x86, 0xdd]);
        assert_eq!(header(None, 0).unwrap()[4..6], [0x08, 0x00]);
        assert_eq!(header(None, 65_536), Err(FrameError::TooLong(65_536)));
        let mut buf = [0u8; HEADER_LEN + 5];
        buf[HEADER_LEN..].copy_from_slice(&PING);
        let framed = frame_in_place(&mut buf).unwrap().to_vec();
        let mut pushed = Vec::new();
        push_frame(&PING, &mut pushed).unwrap();
        assert_eq!(framed, pushed);
        assert_eq!(
            frame_in_place(&mut [0u8; 3]),
            Err(FrameError::NoHeadroom(3))
        );
    }

    #[test]
    fn records_are_frames() {
        let mut frame = Vec::new();
        push_frame(&PING, &mut frame).unwrap();
        let f = read_record(&frame).unwrap().unwrap();
        assert_eq!(
            (f.kind, f.payload, f.odd_tail),
            (FrameKind::Ipv4, &PING[..], false)
        );
        let f = read_record(&KEEPALIVE).unwrap().unwrap();
        assert_eq!(
            (f.kind, f.payload.len(), f.odd_tail),
            (FrameKind::Keepalive, 0, false)
        );
        // Two frames in one record: upstream drops it.
        let two = [frame.clone(), frame.clone()].concat();
        assert_eq!(read_record(&two), Ok(None));
        assert!(read_record(&frame[..10]).is_err());
        // A packet whose tail is zero (as some gateways send) is odd, not refused.
        let mut odd = frame.clone();
        odd[8] = 0;
        assert!(read_record(&odd).unwrap().unwrap().odd_tail);
        // Unknown EtherTypes and a keepalive with a payload are not GlobalProtect.
        let mut arp = frame.clone();
        arp[4..6].copy_from_slice(&[0x08, 0x06]);
        assert!(read_record(&arp).is_err());
        let mut long_keepalive = KEEPALIVE.to_vec();
        long_keepalive[7] = 1;
        long_keepalive.push(0);
        assert!(read_record(&long_keepalive).is_err());
    }

    #[test]
    fn stream_decoding_splits_and_joins() {
        let mut stream = Vec::new();
        push_frame(&PING, &mut stream).unwrap();
        stream.extend_from_slice(&KEEPALIVE);
        push_frame(&[0x60; 40], &mut stream).unwrap();
        let mut dec = FrameDecoder::new();
        let all = collect(&mut dec, &stream).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[1].0, FrameKind::Keepalive);
        assert_eq!(all[2].0, FrameKind::Ipv6);
        // Byte by byte gives the same.
        let mut dec = FrameDecoder::new();
        let mut one_by_one = Vec::new();
        for b in &stream {
            one_by_one.extend(collect(&mut dec, std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(one_by_one, all);
        assert_eq!(dec.pending(), 0);
        // Garbage is refused as soon as its header is in.
        let mut dec = FrameDecoder::new();
        assert!(collect(&mut dec, b"GET / HTTP/1.1\r\n").is_err());
        let mut dec = FrameDecoder::new();
        assert!(collect(&mut dec, b"GET / HT").unwrap().is_empty());
        assert!(collect(&mut dec, b"TP/1.1\r\n").is_err());
    }

    proptest! {
        #[test]
        fn any_split_gives_the_frames(
            packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
            cuts in proptest::collection::vec(0usize..3000, 0..6),
        ) {
            let mut stream = Vec::new();
            for p in &packets {
                if p.is_empty() {
                    stream.extend_from_slice(&KEEPALIVE);
                } else {
                    push_frame(p, &mut stream).unwrap();
                }
            }
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
            cuts.sort_unstable();
            let mut dec = FrameDecoder::new();
            let mut got = Vec::new();
            let mut start = 0;
            for cut in cuts.into_iter().chain([stream.len()]) {
                got.extend(collect(&mut dec, &stream[start..cut]).unwrap());
                start = cut;
            }
            let payloads: Vec<Vec<u8>> = got.into_iter().map(|(_, p, odd)| { assert!(!odd); p }).collect();
            prop_assert_eq!(payloads, packets);
        }

        #[test]
        fn hostile_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut dec = FrameDecoder::new();
            let _ = collect(&mut dec, &data);
            // Only a frame still incomplete is held, never more than came in.
            prop_assert!(dec.pending() <= data.len());
            let _ = read_record(&data);
        }
    }
}
