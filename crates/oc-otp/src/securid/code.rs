//! Tokencode computation from a decrypted seed, the serial number and the time.

use super::crypto::{aes128_encrypt, Block};
use crate::calendar::civil_from_days;

/// Broken-down UTC time, the fields the tokencode algorithm uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UtcTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

pub(crate) fn utc(unix_time: u64) -> UtcTime {
    let days = (unix_time / 86_400) as i64;
    let secs = (unix_time % 86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    UtcTime {
        year,
        month,
        day,
        hour: secs / 3600,
        minute: secs / 60 % 60,
        second: secs % 60,
    }
}

/// Writes `value` as packed BCD into `out`, least significant digits last.
fn bcd(out: &mut [u8], mut value: i64) {
    for byte in out.iter_mut().rev() {
        let low = value.rem_euclid(10) as u8;
        value /= 10;
        let high = value.rem_euclid(10) as u8;
        value /= 10;
        *byte = (high << 4) | low;
    }
}

/// The 16-byte block that is encrypted at each step: the first `time_bytes` bytes of the
/// BCD time (the rest 0xaa), then serial digits 5-12 as BCD, then four 0xbb bytes.
fn time_block(bcd_time: &[u8; 8], time_bytes: usize, serial: &[u8; 12]) -> Block {
    let mut block = [0xaau8; 16];
    block[..time_bytes].copy_from_slice(&bcd_time[..time_bytes]);
    for (i, pair) in serial[4..12].chunks_exact(2).enumerate() {
        // stoken does plain byte arithmetic here, so non-digits give garbage, not errors.
        block[8 + i] = (pair[0].wrapping_sub(b'0') << 4) | pair[1].wrapping_sub(b'0');
    }
    block[12..].copy_from_slice(&[0xbb; 4]);
    block
}

/// The bare tokencode (no PIN) as a number: 4 consecutive codes come out of one AES
/// chain per 2 minutes (30 s tokens) or 4 minutes (60 s tokens).
pub(crate) fn raw_tokencode(
    seed: &Block,
    serial: &[u8; 12],
    unix_time: u64,
    interval_60: bool,
) -> u32 {
    let t = utc(unix_time);
    let minute_mask = if interval_60 { !3u32 } else { !1u32 };
    let mut bcd_time = [0u8; 8];
    bcd(&mut bcd_time[0..2], t.year);
    bcd(&mut bcd_time[2..3], i64::from(t.month));
    bcd(&mut bcd_time[3..4], i64::from(t.day));
    bcd(&mut bcd_time[4..5], i64::from(t.hour));
    bcd(&mut bcd_time[5..6], i64::from(t.minute & minute_mask));

    let k0 = aes128_encrypt(seed, &time_block(&bcd_time, 2, serial));
    let k1 = aes128_encrypt(&k0, &time_block(&bcd_time, 3, serial));
    let k0 = aes128_encrypt(&k1, &time_block(&bcd_time, 4, serial));
    let k1 = aes128_encrypt(&k0, &time_block(&bcd_time, 5, serial));
    let codes = aes128_encrypt(&k1, &time_block(&bcd_time, 8, serial));

    let index = if interval_60 {
        ((t.minute & 3) << 2) as usize
    } else {
        (((t.minute & 1) << 3) | (u32::from(t.second >= 30) << 2)) as usize
    };
    let mut word = [0u8; 4];
    word.copy_from_slice(&codes[index..index + 4]);
    u32::from_be_bytes(word)
}

/// Formats the low `digits` decimal digits of `code`, adding the PIN's digits to the
/// rightmost ones, each modulo 10 (no carries). A PIN longer than the code only
/// contributes its last `digits` digits.
pub(crate) fn mix_pin(mut code: u32, digits: usize, pin: &[u8]) -> String {
    let mut out = vec![b'0'; digits];
    for (i, slot) in out.iter_mut().rev().enumerate() {
        let mut c = (code % 10) as u8;
        code /= 10;
        if let Some(p) = pin.len().checked_sub(i + 1).and_then(|k| pin.get(k)) {
            c = c.wrapping_add(p.wrapping_sub(b'0'));
        }
        *slot = b'0' + c % 10;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_fields() {
        // 2014-09-14 15:55:32 UTC
        let t = utc(1_410_710_132);
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second),
            (2014, 9, 14, 15, 55, 32)
        );
    }

    #[test]
    fn bcd_encoding() {
        let mut b = [0u8; 2];
        bcd(&mut b, 2024);
        assert_eq!(b, [0x20, 0x24]);
        let mut b = [0u8; 1];
        bcd(&mut b, 7);
        assert_eq!(b, [0x07]);
    }

    #[test]
    fn pin_mixing() {
        assert_eq!(mix_pin(12_345_678, 8, b""), "12345678");
        assert_eq!(mix_pin(12_345_678, 8, b"9999"), "12344567");
        assert_eq!(mix_pin(1_234_567_890, 6, b"1"), "567891");
        assert_eq!(mix_pin(5, 6, b"123456789"), "456784");
    }
}
