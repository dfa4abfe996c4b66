//! Packet framing. Over TLS (CSTP) every packet has an 8-byte header
//! `'S' 'T' 'F' 0x01 | length (BE16) | type | 0x00`; over DTLS a single type byte. The type
//! codes are the same on both channels.

use thiserror::Error;

use super::session::Channel;

/// Size of the CSTP header in front of every payload.
pub const CSTP_HEADER_LEN: usize = 8;
const CSTP_MAGIC: [u8; 4] = *b"STF\x01";

/// Largest payload a CSTP frame can carry (the length field is 16 bits).
pub const CSTP_MAX_PAYLOAD: usize = u16::MAX as usize;

/// Frame type byte, shared by CSTP and DTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    Data,
    DpdRequest,
    DpdResponse,
    Disconnect,
    Keepalive,
    Compressed,
    Terminate,
}

impl PacketType {
    pub const fn code(self) -> u8 {
        match self {
            Self::Data => 0x00,
            Self::DpdRequest => 0x03,
            Self::DpdResponse => 0x04,
            Self::Disconnect => 0x05,
            Self::Keepalive => 0x07,
            Self::Compressed => 0x08,
            Self::Terminate => 0x09,
        }
    }

    pub const fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0x00 => Self::Data,
            0x03 => Self::DpdRequest,
            0x04 => Self::DpdResponse,
            0x05 => Self::Disconnect,
            0x07 => Self::Keepalive,
            0x08 => Self::Compressed,
            0x09 => Self::Terminate,
            _ => return None,
        })
    }
}

/// Reason byte Cisco clients put first in a DISCONNECT payload.
pub const DISCONNECT_USER: u8 = 0xb0;

/// A received frame: its raw type code and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub code: u8,
    pub payload: &'a [u8],
}

impl Frame<'_> {
    pub fn packet_type(&self) -> Option<PacketType> {
        PacketType::from_code(self.code)
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    #[error("bad CSTP frame header {0:02x?} (expected 'STF' 01)")]
    BadMagic([u8; 4]),
    #[error("CSTP payload of {0} bytes does not fit in one frame")]
    TooLarge(usize),
}

/// Writes a CSTP header for a payload of `len` bytes.
pub fn cstp_header(ptype: PacketType, len: usize) -> Result<[u8; CSTP_HEADER_LEN], FrameError> {
    let len16 = u16::try_from(len).map_err(|_| FrameError::TooLarge(len))?;
    let [hi, lo] = len16.to_be_bytes();
    let [m0, m1, m2, m3] = CSTP_MAGIC;
    Ok([m0, m1, m2, m3, hi, lo, ptype.code(), 0])
}

/// Frames a payload that sits at `CSTP_HEADER_LEN` in `buf` (the bytes before it are room
/// for the header) and returns what to send on `channel`: the whole CSTP frame, or the DTLS
/// type byte and payload.
pub fn frame_in_place(
    channel: Channel,
    ptype: PacketType,
    buf: &mut [u8],
) -> Result<&[u8], FrameError> {
    let payload_len = buf.len().saturating_sub(CSTP_HEADER_LEN);
    match channel {
        Channel::Cstp => {
            let header = cstp_header(ptype, payload_len)?;
            if let Some(room) = buf.get_mut(..CSTP_HEADER_LEN) {
                room.copy_from_slice(&header);
            }
            Ok(buf)
        }
        Channel::Dtls => {
            let record = buf.get_mut(CSTP_HEADER_LEN - 1..).unwrap_or_default();
            if let Some(t) = record.first_mut() {
                *t = ptype.code();
            }
            Ok(record)
        }
    }
}

/// Appends a whole CSTP frame (header and payload) to `out`.
pub fn emit_cstp(ptype: PacketType, payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    out.extend_from_slice(&cstp_header(ptype, payload.len())?);
    out.extend_from_slice(payload);
    Ok(())
}

/// Splits a TLS byte stream into CSTP frames. Complete frames are handed out straight from
/// the input slice; only a trailing partial frame is copied, so the common case (one frame
/// per TLS record) costs no copy.
#[derive(Debug, Default)]
pub struct CstpDecoder {
    partial: Vec<u8>,
}

impl CstpDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes every complete frame in `input` (after any bytes kept from earlier calls) and
    /// calls `on_frame` for each, stopping at the first error the callback or the framing
    /// reports.
    pub fn decode<E: From<FrameError>>(
        &mut self,
        mut input: &[u8],
        mut on_frame: impl FnMut(Frame<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        // Finish a frame left over from an earlier read first.
        if !self.partial.is_empty() {
            let need = match frame_len(&self.partial)? {
                Some(total) => total - self.partial.len(),
                None => CSTP_HEADER_LEN - self.partial.len(),
            };
            let take = need.min(input.len());
            let (head, rest) = input.split_at(take);
            self.partial.extend_from_slice(head);
            input = rest;
            match frame_len(&self.partial)? {
                Some(total) if self.partial.len() == total => {
                    let whole = std::mem::take(&mut self.partial);
                    on_frame(split_frame(&whole))?;
                    self.partial = whole;
                    self.partial.clear();
                }
                // A header just completed: go round again for its payload.
                Some(_) if !input.is_empty() => return self.decode(input, on_frame),
                _ => return Ok(()),
            }
        }
        while let Some(total) = frame_len(input)? {
            if input.len() < total {
                break;
            }
            let (frame, rest) = input.split_at(total);
            on_frame(split_frame(frame))?;
            input = rest;
        }
        self.partial.extend_from_slice(input);
        Ok(())
    }
}

/// Total frame length once the header is available.
fn frame_len(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    let Some(header) = buf.first_chunk::<CSTP_HEADER_LEN>() else {
        return Ok(None);
    };
    let [m0, m1, m2, m3, hi, lo, _, _] = *header;
    if [m0, m1, m2, m3] != CSTP_MAGIC {
        return Err(FrameError::BadMagic([m0, m1, m2, m3]));
    }
    Ok(Some(
        CSTP_HEADER_LEN + usize::from(u16::from_be_bytes([hi, lo])),
    ))
}

/// `frame` is exactly one frame whose header was validated by [`frame_len`].
fn split_frame(frame: &[u8]) -> Frame<'_> {
    let (header, payload) = frame.split_at(CSTP_HEADER_LEN.min(frame.len()));
    Frame {
        code: header.get(6).copied().unwrap_or_default(),
        payload,
    }
}

/// Parses a DTLS application record: type byte and payload.
pub fn parse_dtls(record: &[u8]) -> Option<Frame<'_>> {
    let (&code, payload) = record.split_first()?;
    Some(Frame { code, payload })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn framing_in_place_for_each_channel() {
        let mut buf = *b"........payload";
        assert_eq!(
            frame_in_place(Channel::Cstp, PacketType::Compressed, &mut buf).unwrap(),
            b"STF\x01\x00\x07\x08\x00payload"
        );
        let mut buf = *b"........payload";
        assert_eq!(
            frame_in_place(Channel::Dtls, PacketType::Data, &mut buf).unwrap(),
            b"\x00payload"
        );
        let mut huge = vec![0u8; CSTP_HEADER_LEN + CSTP_MAX_PAYLOAD + 1];
        assert!(frame_in_place(Channel::Cstp, PacketType::Data, &mut huge).is_err());
    }

    fn collect(dec: &mut CstpDecoder, input: &[u8]) -> Result<Vec<(u8, Vec<u8>)>, FrameError> {
        let mut out = Vec::new();
        dec.decode(input, |f: Frame<'_>| {
            out.push((f.code, f.payload.to_vec()));
            Ok::<_, FrameError>(())
        })?;
        Ok(out)
    }

    #[test]
    fn header_layout() {
        assert_eq!(
            cstp_header(PacketType::DpdRequest, 0x0102).unwrap(),
            [b'S', b'T', b'F', 1, 1, 2, 3, 0]
        );
        assert_eq!(
            cstp_header(PacketType::Data, 70_000),
            Err(FrameError::TooLarge(70_000))
        );
    }

    #[test]
    fn bad_magic_is_an_error() {
        let mut dec = CstpDecoder::new();
        let err = collect(&mut dec, b"GET / HTTP/1.1\r\n").unwrap_err();
        assert_eq!(err, FrameError::BadMagic(*b"GET "));
    }

    #[test]
    fn unknown_types_are_passed_up() {
        let mut dec = CstpDecoder::new();
        let got = collect(&mut dec, b"STF\x01\x00\x00\x42\x00").unwrap();
        assert_eq!(got, vec![(0x42, vec![])]);
        assert_eq!(PacketType::from_code(0x42), None);
    }

    #[test]
    fn dtls_records() {
        assert_eq!(parse_dtls(&[]), None);
        let f = parse_dtls(&[3, 0x5a]).unwrap();
        assert_eq!(
            (f.packet_type(), f.payload),
            (Some(PacketType::DpdRequest), &[0x5a][..])
        );
    }

    proptest! {
        /// Any split of a stream of frames decodes to the same frames.
        #[test]
        fn any_split_round_trips(
            payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..8),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            let mut stream = Vec::new();
            for p in &payloads {
                emit_cstp(PacketType::Data, p, &mut stream).unwrap();
            }
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            points.sort_unstable();
            let mut dec = CstpDecoder::new();
            let mut got = Vec::new();
            let mut start = 0;
            for p in points.into_iter().chain([stream.len()]) {
                got.extend(collect(&mut dec, &stream[start..p]).unwrap());
                start = p;
            }
            let want: Vec<_> = payloads.iter().map(|p| (0u8, p.clone())).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn garbage_never_panics(data in prop::collection::vec(any::<u8>(), 0..200)) {
            let mut dec = CstpDecoder::new();
            let _ = collect(&mut dec, &data);
        }
    }
}
