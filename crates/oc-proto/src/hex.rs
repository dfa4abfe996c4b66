//! Strict hexadecimal: digits only. (`u8::from_str_radix` also takes a leading `+`, so `+A`
//! would pass for a byte; the fuzzers found that in the DTLS ids and secrets.)

/// The value of one hex digit.
pub fn digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte two hex digits spell.
pub fn byte(pair: &[u8]) -> Option<u8> {
    match pair {
        [hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
        _ => None,
    }
}

/// Lower-case hex digits of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// Decodes an even-length run of hex digits.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes.chunks_exact(2).map(byte).collect()
}

/// A number in hex digits (at least one, no sign), refusing overflow.
pub fn number(text: &str) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    text.bytes().try_fold(0u64, |n, b| {
        n.checked_mul(16)?.checked_add(u64::from(digit(b)?))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn digits_only() {
        assert_eq!(decode("00aBfF"), Some(vec![0, 0xab, 0xff]));
        for bad in ["+1", "-1", " 1", "1", "0x", "g0"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
        assert_eq!(number("1F"), Some(31));
        assert_eq!(number("ffffffffffffffff"), Some(u64::MAX));
        for bad in ["", "+5", "10000000000000000", "5 "] {
            assert_eq!(number(bad), None, "{bad}");
        }
    }

    #[test]
    fn encode_is_lower_case_and_decodes_back() {
        assert_eq!(encode(&[0, 0xab, 0xff, 0x10]), "00abff10");
        assert_eq!(encode(&[]), "");
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&all)), Some(all));
    }
}
