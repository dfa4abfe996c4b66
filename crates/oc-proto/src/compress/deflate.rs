//! Cisco's `deflate` for CSTP: one raw deflate stream per direction and connection (4 KiB
//! window, as openconnect sets up zlib), a sync flush after every packet so each payload
//! ends on a byte boundary, and after the payload four bytes: the big-endian Adler-32 of all
//! uncompressed bytes this stream has carried so far (starting from 1, never reset).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use thiserror::Error;

/// openconnect's `windowBits` (-12): a peer's inflater refuses distances beyond 4 KiB.
const WINDOW_BITS: u8 = 12;
const TRAILER_LEN: usize = 4;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DeflateError {
    #[error("deflate payload of {0} bytes is shorter than its 4-byte checksum")]
    Short(usize),
    #[error("inflate failed: {0}")]
    Inflate(String),
    #[error("the deflate stream ended; peers never end it")]
    StreamEnded,
    #[error("inflated packet exceeds the {limit}-byte limit")]
    TooLarge { limit: usize },
    #[error("deflate checksum mismatch (Adler-32 {got:08x}, expected {expected:08x}): the streams are out of step")]
    Checksum { got: u32, expected: u32 },
    #[error("deflate failed: {0}")]
    Deflate(String),
}

/// Adler-32 (RFC 1950), continued from `sum`.
pub fn adler32(sum: u32, bytes: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    // The largest run before the sums must be reduced to stay within u32.
    const NMAX: usize = 5552;
    let (mut a, mut b) = (sum & 0xffff, sum >> 16);
    for chunk in bytes.chunks(NMAX) {
        for &byte in chunk {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// The sending half: compresses packets into the stream.
pub struct Deflater {
    stream: Compress,
    adler: u32,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater")
            .field("total_in", &self.stream.total_in())
            .finish_non_exhaustive()
    }
}

impl Default for Deflater {
    fn default() -> Self {
        Self::new()
    }
}

impl Deflater {
    pub fn new() -> Self {
        Self {
            stream: Compress::new_with_window_bits(Compression::default(), false, WINDOW_BITS),
            adler: 1,
        }
    }

    /// Appends the compressed packet and its trailer to `out`. Every packet must then be
    /// sent: the receiver's stream has to see exactly what ours did.
    pub fn compress(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), DeflateError> {
        let mut input = packet;
        loop {
            // Stored blocks cost 5 bytes per 16 KiB, the sync marker 5 more (zlib's bound).
            out.reserve(input.len() + input.len() / 16 + 64);
            let before = self.stream.total_in();
            self.stream
                .compress_vec(input, out, FlushCompress::Sync)
                .map_err(|e| DeflateError::Deflate(e.to_string()))?;
            let consumed = usize::try_from(self.stream.total_in() - before).unwrap_or(usize::MAX);
            input = input.get(consumed..).unwrap_or_default();
            // Done when all input went in and the flush did not run out of room.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        self.adler = adler32(self.adler, packet);
        out.extend_from_slice(&self.adler.to_be_bytes());
        Ok(())
    }
}

/// The receiving half: inflates payloads and checks the running checksum.
pub struct Inflater {
    stream: Decompress,
    adler: u32,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("total_out", &self.stream.total_out())
            .finish_non_exhaustive()
    }
}

impl Default for Inflater {
    fn default() -> Self {
        Self::new()
    }
}

impl Inflater {
    pub fn new() -> Self {
        Self {
            stream: Decompress::new_with_window_bits(false, WINDOW_BITS),
            adler: 1,
        }
    }

    /// Inflates one payload (compressed bytes + checksum) into `out`; returns the length.
    /// Any error leaves the stream unusable: the connection has to end.
    pub fn decompress(&mut self, payload: &[u8], out: &mut [u8]) -> Result<usize, DeflateError> {
        let Some(split) = payload.len().checked_sub(TRAILER_LEN) else {
            return Err(DeflateError::Short(payload.len()));
        };
        let (compressed, trailer) = payload.split_at(split);
        let in_before = self.stream.total_in();
        let out_before = self.stream.total_out();
        let status = self
            .stream
            .decompress(compressed, out, FlushDecompress::Sync)
            .map_err(|e| DeflateError::Inflate(e.to_string()))?;
        if status == Status::StreamEnd {
            return Err(DeflateError::StreamEnded);
        }
        let consumed = usize::try_from(self.stream.total_in() - in_before).unwrap_or(usize::MAX);
        let produced = usize::try_from(self.stream.total_out() - out_before).unwrap_or(usize::MAX);
        // A full buffer may hide more pending output: treat it as too large too.
        if consumed < compressed.len() || produced >= out.len() {
            return Err(DeflateError::TooLarge { limit: out.len() });
        }
        let inflated = out.get(..produced).unwrap_or_default();
        self.adler = adler32(self.adler, inflated);
        let expected = trailer
            .first_chunk::<TRAILER_LEN>()
            .map_or(0, |t| u32::from_be_bytes(*t));
        if self.adler != expected {
            return Err(DeflateError::Checksum {
                got: self.adler,
                expected,
            });
        }
        Ok(produced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn adler32_matches_rfc1950_examples() {
        assert_eq!(adler32(1, b""), 1);
        assert_eq!(adler32(1, b"Wikipedia"), 0x11e6_0398);
        // Continuation equals one pass.
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 31) as u8).collect();
        let (a, b) = data.split_at(7000);
        assert_eq!(adler32(adler32(1, a), b), adler32(1, &data));
        // All 0xff over many blocks exercises the reduction.
        let ff = vec![0xffu8; 100_000];
        let (mut a, mut b) = (1u64, 0u64);
        for &x in &ff {
            a = (a + u64::from(x)) % 65_521;
            b = (b + a) % 65_521;
        }
        assert_eq!(adler32(1, &ff), ((b << 16) | a) as u32);
    }

    fn pair() -> (Deflater, Inflater) {
        (Deflater::new(), Inflater::new())
    }

    #[test]
    fn each_payload_ends_with_the_sync_marker_and_running_checksum() {
        let (mut d, _) = pair();
        let mut out = Vec::new();
        d.compress(b"hello hello hello hello", &mut out).unwrap();
        let (body, trailer) = out.split_at(out.len() - 4);
        assert!(body.ends_with(&[0x00, 0x00, 0xff, 0xff]), "{body:02x?}");
        assert_eq!(
            trailer,
            adler32(1, b"hello hello hello hello").to_be_bytes()
        );
        out.clear();
        d.compress(b"world", &mut out).unwrap();
        let sum = adler32(adler32(1, b"hello hello hello hello"), b"world");
        assert_eq!(out[out.len() - 4..], sum.to_be_bytes());
    }

    #[test]
    fn stream_state_carries_across_packets() {
        let (mut d, mut i) = pair();
        let packet: Vec<u8> = (0..1400u32).map(|x| (x % 97) as u8).collect();
        let mut sizes = Vec::new();
        let mut buf = [0u8; 16384];
        for _ in 0..3 {
            let mut out = Vec::new();
            d.compress(&packet, &mut out).unwrap();
            sizes.push(out.len());
            let n = i.decompress(&out, &mut buf).unwrap();
            assert_eq!(&buf[..n], &packet[..]);
        }
        // The second copy refers back to the first: much smaller.
        assert!(sizes[1] < sizes[0] / 2, "{sizes:?}");
    }

    #[test]
    fn out_of_step_streams_and_bad_payloads_are_errors() {
        let (mut d, mut i) = pair();
        let mut first = Vec::new();
        d.compress(b"first packet first packet", &mut first)
            .unwrap();
        let mut second = Vec::new();
        d.compress(b"second packet", &mut second).unwrap();
        let mut buf = [0u8; 2048];
        // Skipping a packet: the checksum (or the back-references) no longer match.
        assert!(i.decompress(&second, &mut buf).is_err());
        let mut i = Inflater::new();
        assert_eq!(i.decompress(&[1, 2], &mut buf), Err(DeflateError::Short(2)));
        let mut i = Inflater::new();
        let mut corrupt = first.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        assert!(matches!(
            i.decompress(&corrupt, &mut buf),
            Err(DeflateError::Checksum { .. })
        ));
        // Output bound.
        let mut i = Inflater::new();
        let mut big = Vec::new();
        Deflater::new().compress(&[0u8; 4000], &mut big).unwrap();
        let mut small = [0u8; 1000];
        assert_eq!(
            i.decompress(&big, &mut small),
            Err(DeflateError::TooLarge { limit: 1000 })
        );
    }

    #[test]
    fn incompressible_and_large_packets_fit() {
        let (mut d, mut i) = pair();
        let noise = super::super::noise(65_535);
        let mut out = Vec::new();
        d.compress(&noise, &mut out).unwrap();
        let mut buf = vec![0u8; 70_000];
        let n = i.decompress(&out, &mut buf).unwrap();
        assert_eq!(&buf[..n], &noise[..]);
    }

    proptest! {
        #[test]
        fn round_trip_over_a_stream(packets in proptest::collection::vec(
            proptest::collection::vec(0u8..8, 0..2000), 1..8)) {
            let (mut d, mut i) = pair();
            let mut buf = vec![0u8; 4096];
            for p in packets {
                let mut out = Vec::new();
                d.compress(&p, &mut out).unwrap();
                let n = i.decompress(&out, &mut buf).unwrap();
                prop_assert_eq!(&buf[..n], &p[..]);
            }
        }

        #[test]
        fn arbitrary_payloads_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut buf = vec![0u8; 2048];
            let _ = Inflater::new().decompress(&payload, &mut buf);
        }
    }
}
