//! Stac LZS (ANSI X3.241, as RFC 1974 carries it in PPP), the way AnyConnect peers use it:
//! every packet is one independent block whose history is only the bytes already produced
//! for that packet.
//!
//! The bit stream is read most significant bit first. Tokens:
//!
//! | bits | meaning |
//! |---|---|
//! | `0` + 8 bits | a literal byte |
//! | `11` + 7 bits (not 0) | a match 1..=127 bytes back |
//! | `11 0000000` | end of the block |
//! | `10` + 11 bits (not 0) | a match 1..=2047 bytes back |
//!
//! A length follows every match: `00` `01` `10` are 2, 3, 4; `1100` `1101` `1110` are 5, 6,
//! 7; `1111` starts at 8 and is followed by nibbles, each `1111` adding 15 and the first
//! smaller nibble adding its value and ending the length. After the end marker the block is
//! padded with zero bits to a byte boundary.

use thiserror::Error;

/// The farthest back a match can reach (11 offset bits).
pub const WINDOW: usize = 2047;
/// Shortest match worth a token: two literals cost 18 bits, a 2-byte match at most 15.
const MIN_MATCH: usize = 2;
/// How many earlier positions of the same hash the compressor tries per byte. Bounds the
/// work per packet whatever the input; beyond this the gain is tiny on IP traffic.
const MAX_CHAIN: usize = 48;
/// A match this long is taken at once without looking for a longer one.
const GOOD_ENOUGH: usize = 64;
const HASH_BITS: u32 = 12;
const NO_POSITION: u16 = u16::MAX;
/// Largest input the compressor accepts (positions are kept in 16 bits).
pub const MAX_INPUT: usize = u16::MAX as usize;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LzsError {
    #[error("LZS block ends without its end marker (after {produced} bytes of output)")]
    Truncated { produced: usize },
    #[error("LZS match reaches {offset} bytes back but only {produced} bytes were produced")]
    BadOffset { offset: usize, produced: usize },
    #[error("LZS block expands past the {limit}-byte limit")]
    TooLarge { limit: usize },
}

/// Reads bits most significant first.
struct BitReader<'a> {
    input: &'a [u8],
    next: usize,
    acc: u64,
    acc_bits: u32,
}

impl BitReader<'_> {
    /// The next `count` bits (count <= 24), or `None` at the end of the input.
    fn take(&mut self, count: u32) -> Option<u32> {
        while self.acc_bits < count {
            let byte = *self.input.get(self.next)?;
            self.next += 1;
            self.acc = (self.acc << 8) | u64::from(byte);
            self.acc_bits += 8;
        }
        self.acc_bits -= count;
        let value = (self.acc >> self.acc_bits) & ((1 << count) - 1);
        u32::try_from(value).ok()
    }
}

/// Decompresses one block into `out`, returning the length produced. Bytes after the end
/// marker are ignored, as the peers do.
pub fn decompress(input: &[u8], out: &mut [u8]) -> Result<usize, LzsError> {
    let mut bits = BitReader {
        input,
        next: 0,
        acc: 0,
        acc_bits: 0,
    };
    let mut produced = 0usize;
    let truncated = |produced| LzsError::Truncated { produced };
    let too_large = LzsError::TooLarge { limit: out.len() };
    loop {
        if bits.take(1).ok_or(truncated(produced))? == 0 {
            let literal = bits.take(8).ok_or(truncated(produced))?;
            let slot = out.get_mut(produced).ok_or(too_large.clone())?;
            // Eight bits always fit in a byte.
            *slot = literal.to_be_bytes()[3];
            produced += 1;
            continue;
        }
        let offset = if bits.take(1).ok_or(truncated(produced))? == 1 {
            let short = bits.take(7).ok_or(truncated(produced))?;
            if short == 0 {
                return Ok(produced);
            }
            short
        } else {
            bits.take(11).ok_or(truncated(produced))?
        } as usize;
        let length = read_length(&mut bits).ok_or(truncated(produced))?;
        if offset == 0 || offset > produced {
            return Err(LzsError::BadOffset { offset, produced });
        }
        let end = produced + length;
        if end > out.len() {
            return Err(too_large);
        }
        // Byte by byte: an offset shorter than the length repeats the bytes just written.
        for i in produced..end {
            out[i] = out[i - offset];
        }
        produced = end;
    }
}

fn read_length(bits: &mut BitReader<'_>) -> Option<usize> {
    let two = bits.take(2)? as usize;
    if two < 3 {
        return Some(two + 2);
    }
    let four = bits.take(2)? as usize;
    if four < 3 {
        return Some(four + 5);
    }
    let mut length = 8usize;
    loop {
        let nibble = bits.take(4)? as usize;
        length += nibble;
        if nibble < 15 {
            return Some(length);
        }
    }
}

/// Writes bits most significant first into a bounded output.
struct BitWriter<'a> {
    out: &'a mut [u8],
    len: usize,
    acc: u32,
    acc_bits: u32,
}

impl BitWriter<'_> {
    /// Appends the low `count` bits of `value` (count <= 24); `None` when the output is full.
    fn put(&mut self, count: u32, value: u32) -> Option<()> {
        self.acc = (self.acc << count) | (value & ((1 << count) - 1));
        self.acc_bits += count;
        while self.acc_bits >= 8 {
            self.acc_bits -= 8;
            *self.out.get_mut(self.len)? = (self.acc >> self.acc_bits).to_be_bytes()[3];
            self.len += 1;
        }
        // Only the bits not yet written need keeping.
        self.acc &= (1 << self.acc_bits) - 1;
        Some(())
    }

    fn finish(mut self) -> Option<usize> {
        if self.acc_bits > 0 {
            self.put(8 - self.acc_bits, 0)?;
        }
        Some(self.len)
    }
}

/// LZS compressor with its match-finding tables, reused from packet to packet.
#[derive(Clone)]
pub struct Compressor {
    /// Latest position of each 2-byte hash.
    head: Box<[u16; 1 << HASH_BITS]>,
    /// For each position (mod the window), the previous position with the same hash.
    chain: Box<[u16; WINDOW + 1]>,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("lzs::Compressor")
    }
}

impl Default for Compressor {
    fn default() -> Self {
        Self::new()
    }
}

fn hash(pair: [u8; 2]) -> usize {
    (u32::from(u16::from_be_bytes(pair)).wrapping_mul(0x9E37_79B1) >> (32 - HASH_BITS)) as usize
}

impl Compressor {
    pub fn new() -> Self {
        Self {
            head: Box::new([NO_POSITION; 1 << HASH_BITS]),
            chain: Box::new([NO_POSITION; WINDOW + 1]),
        }
    }

    /// Compresses `input` as one block into `out`. Returns `None` when the block does not
    /// fit (the caller then sends the packet uncompressed) or the input is over 64 KiB.
    pub fn compress(&mut self, input: &[u8], out: &mut [u8]) -> Option<usize> {
        if input.len() > MAX_INPUT {
            return None;
        }
        self.head.fill(NO_POSITION);
        let mut w = BitWriter {
            out,
            len: 0,
            acc: 0,
            acc_bits: 0,
        };
        let mut pos = 0usize;
        while pos < input.len() {
            match self.longest_match(input, pos) {
                Some((offset, length)) => {
                    put_match(&mut w, offset, length)?;
                    for p in pos..pos + length {
                        self.insert(input, p);
                    }
                    pos += length;
                }
                None => {
                    w.put(9, u32::from(*input.get(pos)?))?;
                    self.insert(input, pos);
                    pos += 1;
                }
            }
        }
        // End marker: `11` and a zero 7-bit offset.
        w.put(9, 0x180)?;
        w.finish()
    }

    fn insert(&mut self, input: &[u8], pos: usize) {
        let Some(&[a, b]) = input.get(pos..pos + 2).and_then(|s| s.first_chunk::<2>()) else {
            return;
        };
        let h = hash([a, b]);
        // `pos` < 64 KiB, checked on entry.
        let here = u16::try_from(pos).unwrap_or(NO_POSITION);
        self.chain[pos % (WINDOW + 1)] = self.head[h];
        self.head[h] = here;
    }

    /// The longest earlier occurrence of the bytes at `pos` within the window, as
    /// (offset, length).
    fn longest_match(&self, input: &[u8], pos: usize) -> Option<(usize, usize)> {
        let pair = input.get(pos..pos + 2)?.first_chunk::<2>()?;
        let here = input.get(pos..)?;
        let mut best: Option<(usize, usize)> = None;
        let mut candidate = self.head[hash(*pair)];
        for _ in 0..MAX_CHAIN {
            if candidate == NO_POSITION {
                break;
            }
            let start = usize::from(candidate);
            // Older than the window (or a stale entry from a wrapped chain slot).
            if start >= pos || pos - start > WINDOW {
                break;
            }
            let length = common_prefix(input.get(start..)?, here);
            if length >= MIN_MATCH && best.is_none_or(|(_, l)| length > l) {
                best = Some((pos - start, length));
                if length >= GOOD_ENOUGH || pos + length == input.len() {
                    break;
                }
            }
            let next = self.chain[start % (WINDOW + 1)];
            // Chains only point backwards; anything else is a slot reused by a newer byte.
            if next != NO_POSITION && usize::from(next) >= start {
                break;
            }
            candidate = next;
        }
        best
    }
}

/// Length of the common prefix; overlapping matches (source running into `here`) are fine
/// because the decoder copies byte by byte.
fn common_prefix(earlier: &[u8], here: &[u8]) -> usize {
    earlier.iter().zip(here).take_while(|(a, b)| a == b).count()
}

fn put_match(w: &mut BitWriter<'_>, offset: usize, length: usize) -> Option<()> {
    let offset = u32::try_from(offset).ok()?;
    if offset < 128 {
        w.put(9, 0x180 | offset)?;
    } else {
        w.put(13, 0x1000 | offset)?;
    }
    match length {
        2..=4 => w.put(2, (length - 2) as u32),
        5..=7 => w.put(4, 0b1100 | (length - 5) as u32),
        _ => {
            w.put(4, 0b1111)?;
            let mut rest = length - 8;
            while rest >= 15 {
                w.put(4, 0b1111)?;
                rest -= 15;
            }
            w.put(4, rest as u32)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn compress(input: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; input.len() * 9 / 8 + 4];
        let n = Compressor::new().compress(input, &mut out).unwrap();
        out.truncate(n);
        out
    }

    fn decompress_vec(input: &[u8]) -> Result<Vec<u8>, LzsError> {
        let mut out = vec![0u8; 65536];
        let n = decompress(input, &mut out)?;
        out.truncate(n);
        Ok(out)
    }

    // Hand-assembled from the token table above (ANSI X3.241 / RFC 1974 section 2):
    //   0 01100001 | 0 01100010 | 0 01100011   literals a b c
    //   11 0000011 | 1111 0001                  offset 3, length 8+1 = 9
    //   11 0000000 | 0000000                    end marker, pad
    const ABC_X4: &[u8] = &[0x30, 0x98, 0x8c, 0x78, 0x3f, 0x1c, 0x00];
    // Literal 'A', offset 1 length 53 (1111 1111 1111 1111 0000 = 8+15+15+15+0), end marker.
    const A_X54: &[u8] = &[0x20, 0xe0, 0x7f, 0xff, 0xc3, 0x00];

    #[test]
    fn known_vectors_decode_and_encode_identically() {
        assert_eq!(decompress_vec(ABC_X4).unwrap(), b"abcabcabcabc");
        assert_eq!(compress(b"abcabcabcabc"), ABC_X4);
        assert_eq!(decompress_vec(A_X54).unwrap(), vec![b'A'; 54]);
        assert_eq!(compress(&[b'A'; 54]), A_X54);
    }

    #[test]
    fn every_length_form_and_the_long_offset() {
        // Lengths 2..=40 cover the 2-bit, 4-bit and nibble-chain forms (incl. 23 = 1111 1111
        // 0000); a 300-byte gap forces the 11-bit offset form.
        for length in 2..=40usize {
            let mut input: Vec<u8> = (0..300u32).map(|i| (i * 7 % 251) as u8).collect();
            let copied: Vec<u8> = input[..length].to_vec();
            input.extend_from_slice(&copied);
            let packed = compress(&input);
            assert_eq!(decompress_vec(&packed).unwrap(), input, "length {length}");
        }
    }

    #[test]
    fn empty_block_is_just_the_end_marker() {
        assert_eq!(compress(b""), [0xc0, 0x00]);
        assert_eq!(decompress_vec(&[0xc0, 0x00]).unwrap(), b"");
    }

    #[test]
    fn hostile_blocks_are_refused_with_a_reason() {
        // No end marker.
        assert_eq!(
            decompress_vec(&[0x30, 0x80]),
            Err(LzsError::Truncated { produced: 1 })
        );
        // A match before any output: 11 0000001 00.
        assert_eq!(
            decompress_vec(&[0xc0, 0x80, 0x00]),
            Err(LzsError::BadOffset {
                offset: 1,
                produced: 0
            })
        );
        // An 11-bit offset of 0 is not the end marker and is invalid.
        assert!(matches!(
            decompress_vec(&[0x30, 0xc0, 0x00, 0xc0, 0x00]),
            Err(LzsError::BadOffset { offset: 0, .. })
        ));
        // Output limit: 54 bytes do not fit in 53.
        let mut small = [0u8; 53];
        assert_eq!(
            decompress(A_X54, &mut small),
            Err(LzsError::TooLarge { limit: 53 })
        );
        // An endless length (all 1111 nibbles) runs out of input, not memory.
        let mut endless = vec![0x20, 0xe0, 0x7f];
        endless.extend(std::iter::repeat_n(0xff, 1000));
        assert!(decompress_vec(&endless).is_err());
    }

    #[test]
    fn output_that_does_not_fit_is_reported_not_truncated() {
        let random = super::super::noise(200);
        let mut out = vec![0u8; random.len() - 1];
        assert_eq!(Compressor::new().compress(&random, &mut out), None);
    }

    #[test]
    fn the_window_limit_is_respected() {
        // The same 16 bytes 3000 bytes apart must not be matched (2047 is the reach).
        let mut input = b"0123456789abcdef".to_vec();
        input.extend((0..3000u32).map(|i| (i % 200 + 30) as u8 ^ 0x80));
        input.extend_from_slice(b"0123456789abcdef");
        assert_eq!(decompress_vec(&compress(&input)).unwrap(), input);
    }

    proptest! {
        #[test]
        fn round_trip(input in proptest::collection::vec(any::<u8>(), 0..3000)) {
            prop_assert_eq!(decompress_vec(&compress(&input)).unwrap(), input);
        }

        #[test]
        fn round_trip_repetitive(seed in proptest::collection::vec(0u8..4, 1..40), reps in 1usize..200) {
            let input: Vec<u8> = seed.iter().cycle().take(seed.len() * reps).copied().collect();
            prop_assert_eq!(decompress_vec(&compress(&input)).unwrap(), input);
        }

        #[test]
        fn arbitrary_input_never_panics(input in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut out = [0u8; 1500];
            let _ = decompress(&input, &mut out);
        }
    }
}
