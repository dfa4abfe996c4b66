//! IF-T/TLS (TCG's IF-T binding to TLS, with Juniper's vendor messages): every message is
//! a 16-byte header — vendor (24 bits; the top byte is reserved), type, total length, the
//! sender's sequence number, all big-endian — then its payload. [`IftDecoder`] reads them
//! by their length whatever the TLS records are (servers split packets into many records
//! and put several packets in one); [`packet`] and [`frame_in_place`] write them.

use super::PulseError;

/// TCG's vendor id (the handshake and authentication).
pub const VENDOR_TCG: u32 = 0x5597;
/// Juniper's vendor id (configuration, data, control).
pub const VENDOR_JUNIPER: u32 = 0xa4c;
/// The header of every message.
pub const HEADER_LEN: usize = 16;

/// TCG message types.
pub const TCG_VERSION_REQUEST: u32 = 1;
pub const TCG_VERSION_RESPONSE: u32 = 2;
pub const TCG_AUTH_CHALLENGE: u32 = 5;
pub const TCG_AUTH_RESPONSE: u32 = 6;
pub const TCG_AUTH_SUCCESS: u32 = 7;

/// Juniper message types.
pub const JUNIPER_CONFIG: u32 = 1;
pub const JUNIPER_DATA: u32 = 4;
pub const JUNIPER_CONTROL: u32 = 5;
pub const JUNIPER_CLIENT_INFO: u32 = 0x88;
pub const JUNIPER_LOGOUT: u32 = 0x89;
pub const JUNIPER_SESSION_INFO_ACK: u32 = 0x8a;
pub const JUNIPER_END_OF_CONFIG: u32 = 0x8f;
pub const JUNIPER_FATAL: u32 = 0x93;
pub const JUNIPER_SESSION_INFO: u32 = 0x96;

/// The longest message read (upstream accepts configurations up to 1 MiB).
pub const MAX_PACKET_LEN: usize = 1 << 20;

/// One message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IftPacket<'a> {
    /// The vendor, its reserved top byte masked off.
    pub vendor: u32,
    pub kind: u32,
    pub seq: u32,
    pub payload: &'a [u8],
}

impl IftPacket<'_> {
    pub fn is(&self, vendor: u32, kind: u32) -> bool {
        self.vendor == vendor && self.kind == kind
    }
}

/// A message's bytes.
pub fn packet(vendor: u32, kind: u32, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&vendor.to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(
        &u32::try_from(HEADER_LEN + payload.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Writes the header of a Juniper data message (type 4) in place over the first 16 bytes
/// of `buf`, whose rest is the IP packet; returns the whole message.
pub fn frame_in_place(buf: &mut [u8], seq: u32) -> Result<&[u8], PulseError> {
    let len = u32::try_from(buf.len()).map_err(|_| PulseError::TooLong(buf.len()))?;
    let (head, _) = buf
        .split_first_chunk_mut::<HEADER_LEN>()
        .ok_or(PulseError::TooLong(0))?;
    head[..4].copy_from_slice(&VENDOR_JUNIPER.to_be_bytes());
    head[4..8].copy_from_slice(&JUNIPER_DATA.to_be_bytes());
    head[8..12].copy_from_slice(&len.to_be_bytes());
    head[12..16].copy_from_slice(&seq.to_be_bytes());
    Ok(buf)
}

/// The header at the front of `bytes`: vendor, type, total length, sequence number.
fn header(bytes: &[u8]) -> Option<(u32, u32, usize, u32)> {
    let h = bytes.first_chunk::<HEADER_LEN>()?;
    let word = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let len = usize::try_from(word(8)).unwrap_or(usize::MAX);
    Some((word(0) & 0x00ff_ffff, word(4), len, word(12)))
}

/// Reads messages from a TLS byte stream, however it is cut. It holds at most one
/// incomplete message (up to `max` bytes).
#[derive(Debug)]
pub struct IftDecoder {
    partial: Vec<u8>,
    max: usize,
}

impl Default for IftDecoder {
    fn default() -> Self {
        Self::new(MAX_PACKET_LEN)
    }
}

impl IftDecoder {
    /// A decoder refusing messages longer than `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            partial: Vec::new(),
            max,
        }
    }

    /// The whole length of the message starting `bytes`, once its header is in.
    fn message_len(&self, bytes: &[u8]) -> Result<Option<usize>, PulseError> {
        match header(bytes) {
            None => Ok(None),
            Some((_, _, len, _)) if len < HEADER_LEN || len > self.max => {
                Err(PulseError::BadLength(len))
            }
            Some((_, _, len, _)) => Ok(Some(len)),
        }
    }

    /// Calls `each` for every message complete after `input`, in order, stopping at the
    /// first error (a length that cannot be, or the callback's). After an error the stream
    /// cannot be trusted: the caller ends it.
    pub fn decode<E: From<PulseError>>(
        &mut self,
        mut input: &[u8],
        mut each: impl FnMut(IftPacket<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        while !self.partial.is_empty() && !input.is_empty() {
            let want = self.message_len(&self.partial)?.unwrap_or(HEADER_LEN);
            let take = want.saturating_sub(self.partial.len()).min(input.len());
            let (now, rest) = input.split_at(take);
            self.partial.extend_from_slice(now);
            input = rest;
            if self.message_len(&self.partial)? == Some(self.partial.len()) {
                let whole = std::mem::take(&mut self.partial);
                let result = each(split(&whole));
                self.partial = whole;
                self.partial.clear();
                result?;
            }
        }
        while let Some(len) = self.message_len(input)? {
            let Some((message, rest)) = input.split_at_checked(len) else {
                break;
            };
            each(split(message))?;
            input = rest;
        }
        self.partial.extend_from_slice(input);
        Ok(())
    }
}

/// A whole message as its parts.
fn split(message: &[u8]) -> IftPacket<'_> {
    let (vendor, kind, _, seq) = header(message).unwrap_or_default();
    IftPacket {
        vendor,
        kind,
        seq,
        payload: message.get(HEADER_LEN..).unwrap_or_default(),
    }
}

/// Every message in `bytes`, owned: (vendor, type, sequence number, payload). For the
/// tests of the login and configuration.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn decode_all(bytes: &[u8]) -> Vec<(u32, u32, u32, Vec<u8>)> {
    let mut got = Vec::new();
    IftDecoder::default()
        .decode(bytes, |p| {
            got.push((p.vendor, p.kind, p.seq, p.payload.to_vec()));
            Ok::<_, PulseError>(())
        })
        .unwrap();
    got
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_the_same_however_the_stream_is_cut() {
        let a = packet(
            VENDOR_TCG,
            TCG_AUTH_SUCCESS,
            0,
            &[0, 0x0a, 0x4c, 1, 3, 0, 0, 4],
        );
        let mut data = vec![0xee; HEADER_LEN];
        data.extend_from_slice(&[0x45; 84]);
        let b = frame_in_place(&mut data, 9).unwrap().to_vec();
        let c = packet(
            VENDOR_JUNIPER | 0x0100_0000,
            JUNIPER_END_OF_CONFIG,
            2,
            &[0; 4],
        );
        let wire = [a.clone(), b.clone(), c.clone()].concat();
        for cut in [1, 2, 3, 5, 16, 17, 50, wire.len()] {
            let mut decoder = IftDecoder::default();
            let mut got = Vec::new();
            for chunk in wire.chunks(cut) {
                decoder
                    .decode(chunk, |p| {
                        got.push((p.vendor, p.kind, p.seq, p.payload.to_vec()));
                        Ok::<_, PulseError>(())
                    })
                    .unwrap();
            }
            assert_eq!(got.len(), 3, "cut {cut}");
            assert_eq!(got[0], (VENDOR_TCG, TCG_AUTH_SUCCESS, 0, a[16..].to_vec()));
            assert_eq!(got[1], (VENDOR_JUNIPER, JUNIPER_DATA, 9, vec![0x45; 84]));
            assert_eq!(got[2].0, VENDOR_JUNIPER, "the reserved byte is masked");
        }
    }

    #[test]
    fn lengths_that_cannot_be_are_errors() {
        for len in [0u32, 15, (MAX_PACKET_LEN + 1) as u32] {
            let mut bad = packet(VENDOR_JUNIPER, JUNIPER_DATA, 0, &[]);
            bad[8..12].copy_from_slice(&len.to_be_bytes());
            let result = IftDecoder::default().decode(&bad, |_| Ok::<_, PulseError>(()));
            assert_eq!(result, Err(PulseError::BadLength(len as usize)));
        }
        // A small bound holds.
        let big = packet(VENDOR_JUNIPER, JUNIPER_DATA, 0, &[0; 100]);
        let result = IftDecoder::new(64).decode(&big[..20], |_| Ok::<_, PulseError>(()));
        assert_eq!(result, Err(PulseError::BadLength(116)));
        assert!(frame_in_place(&mut [0; 3], 0).is_err());
    }
}
