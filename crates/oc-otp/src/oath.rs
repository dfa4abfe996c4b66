//! HOTP (RFC 4226) and TOTP (RFC 6238).

use hmac::{Hmac, KeyInit, Mac};

/// The HMAC hash of an OATH token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    #[default]
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    /// The name used in `otpauth://` URIs and `sha256:`-style prefixes, upper case.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    /// Parses `SHA1`, `sha256`, `SHA-512`, ... (case and one dash ignored).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Some(Algorithm::Sha1),
            "SHA256" => Some(Algorithm::Sha256),
            "SHA512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

/// Code lengths RFC 4226 allows (the dynamic truncation yields 31 bits, so at most 9 or
/// 10 digits carry information; tokens in the wild use 6 to 8).
pub const DIGITS: std::ops::RangeInclusive<u32> = 6..=10;

/// The standard TOTP time step.
pub const DEFAULT_PERIOD: u64 = 30;

/// HMAC of `message` under `key` with `algorithm`'s hash (the one HMAC of this crate:
/// OATH codes, the YubiKey's challenge responses, SecurID v3 MACs).
pub fn hmac(algorithm: Algorithm, key: &[u8], message: &[u8]) -> Vec<u8> {
    fn run<M: Mac + KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
        // HMAC takes keys of any length, so the empty fallback is never taken.
        let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
            return Vec::new();
        };
        mac.update(message);
        mac.finalize().into_bytes().to_vec()
    }
    match algorithm {
        Algorithm::Sha1 => run::<Hmac<sha1::Sha1>>(key, message),
        Algorithm::Sha256 => run::<Hmac<sha2::Sha256>>(key, message),
        Algorithm::Sha512 => run::<Hmac<sha2::Sha512>>(key, message),
    }
}

/// The HOTP value for `counter` as a zero-padded decimal string of `digits` digits.
/// `digits` outside [`DIGITS`] is clamped into it.
pub fn hotp(algorithm: Algorithm, key: &[u8], counter: u64, digits: u32) -> String {
    let digits = digits.clamp(*DIGITS.start(), *DIGITS.end());
    let digest = hmac(algorithm, key, &counter.to_be_bytes());
    // Dynamic truncation: the low nibble of the last byte picks 4 bytes.
    let offset = digest.last().map_or(0, |b| usize::from(b & 0x0f));
    let word = match digest.get(offset..offset + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a & 0x7f, b, c, d]),
        _ => 0,
    };
    let value = u64::from(word) % 10u64.pow(digits);
    format!("{value:0width$}", width = digits as usize)
}

/// The TOTP time step of `unix_time` (T0 = 0). A zero period counts as the default.
pub fn totp_step(unix_time: u64, period: u64) -> u64 {
    unix_time / if period == 0 { DEFAULT_PERIOD } else { period }
}

/// The TOTP value at `unix_time`.
pub fn totp(algorithm: Algorithm, key: &[u8], unix_time: u64, period: u64, digits: u32) -> String {
    hotp(algorithm, key, totp_step(unix_time, period), digits)
}

/// Compares two codes in time independent of where they differ.
pub fn codes_equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC4226_KEY: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc4226_appendix_d() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(hotp(Algorithm::Sha1, RFC4226_KEY, counter as u64, 6), *code);
        }
    }

    /// RFC 6238 appendix B: the seed is the ASCII digits repeated to the hash size.
    #[test]
    fn rfc6238_appendix_b() {
        let sha1 = b"12345678901234567890".as_slice();
        let sha256 = b"12345678901234567890123456789012".as_slice();
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234".as_slice();
        let table: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (time, c1, c256, c512) in table {
            assert_eq!(totp(Algorithm::Sha1, sha1, time, 30, 8), c1, "t={time}");
            assert_eq!(
                totp(Algorithm::Sha256, sha256, time, 30, 8),
                c256,
                "t={time}"
            );
            assert_eq!(
                totp(Algorithm::Sha512, sha512, time, 30, 8),
                c512,
                "t={time}"
            );
            // Six digits are the low six of the eight.
            assert_eq!(
                totp(Algorithm::Sha1, sha1, time, 30, 6),
                c1[2..],
                "t={time}"
            );
        }
    }

    #[test]
    fn steps_and_names() {
        assert_eq!(totp_step(59, 30), 1);
        assert_eq!(totp_step(59, 0), 1);
        assert_eq!(totp_step(120, 60), 2);
        assert_eq!(Algorithm::from_name("sha-256"), Some(Algorithm::Sha256));
        assert_eq!(Algorithm::from_name("md5"), None);
        assert!(codes_equal("123456", "123456"));
        assert!(!codes_equal("123456", "123457"));
        assert!(!codes_equal("123456", "1234567"));
    }
}
