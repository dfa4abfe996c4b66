//! RFC 1662 asynchronous HDLC-like framing: `7e`, the frame and its FCS-16 with control
//! bytes escaped (`7d`, byte XOR `20`), `7e`.

use thiserror::Error;

/// The flag byte between frames.
pub const FLAG: u8 = 0x7e;
/// The escape byte: the next byte is XORed with [`ESCAPE_XOR`].
pub const ESCAPE: u8 = 0x7d;
const ESCAPE_XOR: u8 = 0x20;
/// The asynchronous control character map that escapes every byte below `0x20`: the
/// default before LCP agrees on another, and always used for LCP frames.
pub const ACCM_ALL: u32 = 0xffff_ffff;
/// FCS-16 before any byte (RFC 1662 `PPPINITFCS16`).
const FCS_INIT: u16 = 0xffff;
/// FCS-16 over a frame and its own (complemented) FCS (RFC 1662 `PPPGOODFCS16`).
const FCS_GOOD: u16 = 0xf0b8;
/// Bytes of the FCS at the end of a frame.
pub const FCS_LEN: usize = 2;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HdlcError {
    #[error("HDLC frame of {0} bytes is shorter than its checksum")]
    TooShort(usize),
    #[error(
        "HDLC frame of {len} bytes has a bad FCS (checksum {found:#06x}, expected {FCS_GOOD:#06x})"
    )]
    BadFcs { len: usize, found: u16 },
    #[error("HDLC frame ends with an escape byte")]
    DanglingEscape,
}

/// The reflected CRC-CCITT table (polynomial 0x8408) of RFC 1662's FCS-16.
const FCS_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut v = i as u16;
        let mut bit = 0;
        while bit < 8 {
            v = if v & 1 != 0 {
                (v >> 1) ^ 0x8408
            } else {
                v >> 1
            };
            bit += 1;
        }
        table[i] = v;
        i += 1;
    }
    table
};

/// Continues the FCS-16 `fcs` over `data`.
pub fn fcs16(mut fcs: u16, data: &[u8]) -> u16 {
    for &b in data {
        let index = usize::from((fcs ^ u16::from(b)) & 0xff);
        fcs = (fcs >> 8) ^ FCS_TABLE.get(index).copied().unwrap_or(0);
    }
    fcs
}

/// Whether `b` is sent escaped under the control character map `accm`.
fn needs_escape(b: u8, accm: u32) -> bool {
    b == FLAG || b == ESCAPE || (b < 0x20 && accm & (1 << b) != 0)
}

fn push_escaped(b: u8, accm: u32, out: &mut Vec<u8>) {
    if needs_escape(b, accm) {
        out.extend_from_slice(&[ESCAPE, b ^ ESCAPE_XOR]);
    } else {
        out.push(b);
    }
}

/// Appends `frame` (PPP header and payload) to `out` as one HDLC frame, flags included,
/// escaping the control bytes of `accm`.
pub fn encode(frame: &[u8], accm: u32, out: &mut Vec<u8>) {
    encode_parts(&[frame], accm, out);
}

/// [`encode`] of the frame made of `parts` one after the other (a header and a packet),
/// without joining them first.
pub fn encode_parts(parts: &[&[u8]], accm: u32, out: &mut Vec<u8>) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    out.reserve(len + len / 8 + 8);
    out.push(FLAG);
    let mut fcs = FCS_INIT;
    for part in parts {
        for &b in *part {
            push_escaped(b, accm, out);
        }
        fcs = fcs16(fcs, part);
    }
    for b in (!fcs).to_le_bytes() {
        push_escaped(b, accm, out);
    }
    out.push(FLAG);
}

/// Unescapes the bytes of one frame (between two flags) into `out` (cleared first), checks
/// the FCS and leaves the frame without it.
pub fn decode(escaped: &[u8], out: &mut Vec<u8>) -> Result<(), HdlcError> {
    out.clear();
    let mut bytes = escaped.iter();
    while let Some(&b) = bytes.next() {
        if b == ESCAPE {
            let next = bytes.next().ok_or(HdlcError::DanglingEscape)?;
            out.push(next ^ ESCAPE_XOR);
        } else {
            out.push(b);
        }
    }
    if out.len() < FCS_LEN {
        return Err(HdlcError::TooShort(out.len()));
    }
    let found = fcs16(FCS_INIT, out);
    if found != FCS_GOOD {
        return Err(HdlcError::BadFcs {
            len: out.len(),
            found,
        });
    }
    out.truncate(out.len() - FCS_LEN);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn between_flags(encoded: &[u8]) -> &[u8] {
        assert_eq!(encoded.first(), Some(&FLAG));
        assert_eq!(encoded.last(), Some(&FLAG));
        &encoded[1..encoded.len() - 1]
    }

    #[test]
    fn fcs_over_a_frame_and_its_checksum_is_the_good_value() {
        // An LCP Configure-Request as slirp sends it; the check RFC 1662 describes.
        let frame = [0xff, 0x03, 0xc0, 0x21, 0x01, 0x01, 0x00, 0x04];
        let fcs = !fcs16(FCS_INIT, &frame);
        let mut with_fcs = frame.to_vec();
        with_fcs.extend_from_slice(&fcs.to_le_bytes());
        assert_eq!(fcs16(FCS_INIT, &with_fcs), FCS_GOOD);
        // The check value of the CRC-16/X-25 catalogue entry ("123456789" -> 0x906e).
        assert_eq!(!fcs16(FCS_INIT, b"123456789"), 0x906e);
    }

    #[test]
    fn flags_escapes_and_mapped_control_bytes_are_escaped() {
        let mut out = Vec::new();
        encode(&[0x7e, 0x7d, 0x01, 0x11, 0x20], 1 << 0x11, &mut out);
        let body = between_flags(&out);
        assert_eq!(&body[..7], &[0x7d, 0x5e, 0x7d, 0x5d, 0x01, 0x7d, 0x31]);
        assert_eq!(body[7], 0x20);
        let mut all = Vec::new();
        encode(&[0x01], ACCM_ALL, &mut all);
        assert_eq!(&between_flags(&all)[..2], &[0x7d, 0x21]);
    }

    #[test]
    fn corrupted_frames_are_refused() {
        let mut out = Vec::new();
        encode(b"\xff\x03\x00\x21hello", 0, &mut out);
        let mut body = between_flags(&out).to_vec();
        body[4] ^= 1;
        let mut frame = Vec::new();
        assert!(matches!(
            decode(&body, &mut frame),
            Err(HdlcError::BadFcs { .. })
        ));
        assert_eq!(decode(&[0x41], &mut frame), Err(HdlcError::TooShort(1)));
        assert_eq!(
            decode(&[0x41, 0x42, ESCAPE], &mut frame),
            Err(HdlcError::DanglingEscape)
        );
        assert_eq!(decode(&[], &mut frame), Err(HdlcError::TooShort(0)));
    }

    proptest! {
        #[test]
        fn frames_round_trip_under_any_map(frame in proptest::collection::vec(any::<u8>(), 0..2000), accm in any::<u32>()) {
            let mut out = Vec::new();
            encode(&frame, accm, &mut out);
            let body = between_flags(&out);
            prop_assert!(!body.contains(&FLAG));
            prop_assert!(body.iter().all(|b| *b >= 0x20 || accm & (1 << b) == 0));
            let mut back = Vec::new();
            decode(body, &mut back).unwrap();
            prop_assert_eq!(back, frame);
        }
    }
}
