//! Compressed Token Format strings: the numeric v1/v2 form (81-85 octal-ish digits) and
//! the base64 v3 form used by the Android and iPhone apps.

use super::crypto::{
    aes128_decrypt, aes128_encrypt, aes256_cbc_decrypt, base64_decode_relaxed, hmac_sha256,
    pbkdf2_sha256, securid_hash, securid_short_hash, sha256, Block,
};
use super::SecurIdError;

pub(crate) const FL_128BIT: u16 = 1 << 14;
pub(crate) const FL_PASSPROT: u16 = 1 << 13;
pub(crate) const FL_SNPROT: u16 = 1 << 12;
pub(crate) const FL_APPSEEDS: u16 = 1 << 11;
pub(crate) const FL_FEAT4: u16 = 1 << 10;
pub(crate) const FL_TIMESEEDS: u16 = 1 << 9;
pub(crate) const DIGIT_SHIFT: u16 = 6;
pub(crate) const DIGIT_MASK: u16 = 0x07 << DIGIT_SHIFT;
pub(crate) const PINMODE_SHIFT: u16 = 3;
pub(crate) const PINMODE_MASK: u16 = 0x03 << PINMODE_SHIFT;
pub(crate) const INTERVAL_MASK: u16 = 0x03;

/// Longest password the formats take (bytes).
pub(crate) const MAX_PASS: usize = 40;

/// Numeric CTF lengths: 1 version digit, 12 serial digits, 63 data digits, 5 checksum
/// digits make the usual 81; up to 4 extra digits before the checksum are tolerated.
pub(crate) const V2_MIN_DIGITS: usize = 81;
pub(crate) const V2_MAX_DIGITS: usize = 85;
const DATA_OFFSET: usize = 13;
const DATA_DIGITS: usize = 63;
const CHECKSUM_DIGITS: usize = 5;

/// Binary size of a v3 token, and the limits on its (URL-decoded) base64 text.
pub(crate) const V3_BYTES: usize = 291;
pub(crate) const V3_MIN_CHARS: usize = V3_BYTES * 4 / 3;
const V3_DEVID_CHARS: usize = 48;

/// Fields of a decoded numeric token (the seed is still encrypted).
#[derive(Clone)]
pub(crate) struct V2Token {
    pub version: u8,
    pub serial: [u8; 12],
    pub enc_seed: Block,
    pub flags: u16,
    pub exp_date: u16,
    pub seed_check: u16,
    pub devid_check: u16,
}

/// Packs 3 bits per character, most significant first. Digits 8 and 9 wrap to 0 and 1,
/// as in stoken.
fn digits_to_bits(digits: &[u8], out: &mut [u8]) {
    for (i, &c) in digits.iter().enumerate() {
        let v = c.wrapping_sub(b'0') & 7;
        for b in 0..3 {
            if v & (4 >> b) != 0 {
                let bit = i * 3 + b;
                if let Some(byte) = out.get_mut(bit / 8) {
                    *byte |= 0x80 >> (bit % 8);
                }
            }
        }
    }
}

fn bits_to_digits(bits: &[u8], n_digits: usize) -> String {
    (0..n_digits)
        .map(|i| char::from(b'0' + get_bits(bits, i * 3, 3) as u8))
        .collect()
}

fn get_bits(data: &[u8], start: usize, count: usize) -> u32 {
    (start..start + count).fold(0u32, |acc, bit| {
        let set = data
            .get(bit / 8)
            .is_some_and(|b| b & (0x80 >> (bit % 8)) != 0);
        (acc << 1) | u32::from(set)
    })
}

fn set_bits(data: &mut [u8], start: usize, count: usize, value: u32) {
    for i in 0..count {
        let bit = start + i;
        let on = (value >> (count - 1 - i)) & 1 != 0;
        if let Some(byte) = data.get_mut(bit / 8) {
            let mask = 0x80u8 >> (bit % 8);
            if on {
                *byte |= mask;
            } else {
                *byte &= !mask;
            }
        }
    }
}

/// Decodes a numeric CTF string made only of ASCII digits (dashes already removed).
pub(crate) fn decode_v2(digits: &[u8]) -> Result<V2Token, SecurIdError> {
    let len = digits.len();
    if !(V2_MIN_DIGITS..=V2_MAX_DIGITS).contains(&len) {
        return Err(SecurIdError::BadDigitCount { found: len });
    }
    let (body, check) = digits.split_at(len - CHECKSUM_DIGITS);
    let mut check_bits = [0u8; 2];
    digits_to_bits(check, &mut check_bits);
    if get_bits(&check_bits, 0, 15) != u32::from(securid_short_hash(body)) {
        return Err(SecurIdError::BadChecksum);
    }

    let mut serial = [0u8; 12];
    serial.copy_from_slice(&digits[1..DATA_OFFSET]);
    let mut bits = [0u8; 24];
    digits_to_bits(&digits[DATA_OFFSET..DATA_OFFSET + DATA_DIGITS], &mut bits);
    let mut enc_seed = [0u8; 16];
    enc_seed.copy_from_slice(&bits[..16]);
    Ok(V2Token {
        version: digits[0].wrapping_sub(b'0'),
        serial,
        enc_seed,
        flags: get_bits(&bits, 128, 16) as u16,
        exp_date: get_bits(&bits, 144, 14) as u16,
        seed_check: get_bits(&bits, 159, 15) as u16,
        devid_check: get_bits(&bits, 174, 15) as u16,
    })
}

/// The AES key protecting a numeric token's seed, and the check value of the device ID.
///
/// The key is RSA's hash of: password bytes, then the device ID's characters (upper-cased;
/// for v2+ only hex digits count, for v1 only non-digits; at most 32 characters are
/// examined, 40 for tokens that came as smartphone URIs), then a fixed 6-byte magic. The
/// device ID check value is the short hash of the 32 (or 40) device ID bytes, zero padded.
pub(crate) fn v2_key(
    version: u8,
    smartphone: bool,
    pass: Option<&[u8]>,
    devid: Option<&[u8]>,
) -> Result<(Block, u16), SecurIdError> {
    const MAGIC: [u8; 6] = [0xd8, 0xf5, 0x32, 0x53, 0x82, 0x89];
    let devid_len = if smartphone { 40 } else { 32 };
    let pass = pass.unwrap_or_default();
    if pass.len() > MAX_PASS {
        return Err(SecurIdError::PasswordTooLong);
    }
    let mut key = Vec::with_capacity(MAX_PASS + 40 + MAGIC.len());
    key.extend_from_slice(pass);
    let devid_start = key.len();
    for &c in devid.unwrap_or_default().iter().take(devid_len) {
        let skip = if version == 1 {
            c.is_ascii_digit()
        } else {
            !c.is_ascii_hexdigit()
        };
        if !skip {
            key.push(c.to_ascii_uppercase());
        }
    }
    let mut devid_bytes = key[devid_start..].to_vec();
    devid_bytes.resize(devid_len, 0);
    let devid_check = securid_short_hash(&devid_bytes);
    key.extend_from_slice(&MAGIC);
    Ok((securid_hash(&key), devid_check))
}

/// Checks the device ID against a numeric token; `Ok(false)` when it does not match.
pub(crate) fn v2_devid_matches(tok: &V2Token, smartphone: bool, devid: Option<&[u8]>) -> bool {
    if tok.flags & FL_SNPROT == 0 {
        return true;
    }
    // Only the device ID part matters here; the password cannot make this fail.
    v2_key(tok.version, smartphone, None, devid).is_ok_and(|(_, check)| check == tok.devid_check)
}

/// Decrypts a numeric token's seed.
pub(crate) fn decrypt_v2(
    tok: &V2Token,
    smartphone: bool,
    pass: Option<&[u8]>,
    devid: Option<&[u8]>,
) -> Result<Block, SecurIdError> {
    let (key, devid_check) = v2_key(tok.version, smartphone, pass, devid)?;
    if tok.flags & FL_SNPROT != 0 && devid_check != tok.devid_check {
        return Err(SecurIdError::WrongDevid);
    }
    let seed = aes128_decrypt(&key, &tok.enc_seed);
    if securid_short_hash(&seed) != tok.seed_check {
        return Err(if pass.is_some() {
            SecurIdError::WrongPassword
        } else {
            SecurIdError::SeedChecksum
        });
    }
    Ok(seed)
}

/// Builds a numeric v2 CTF string (81 digits).
#[allow(clippy::too_many_arguments)]
pub(crate) fn encode_v2(
    serial: &[u8; 12],
    seed: &Block,
    flags: u16,
    exp_date: u16,
    version: u8,
    smartphone: bool,
    pass: Option<&[u8]>,
    devid: Option<&[u8]>,
) -> Result<String, SecurIdError> {
    if !serial.iter().all(u8::is_ascii_digit) {
        return Err(SecurIdError::Export("the serial number is not 12 digits"));
    }
    let pass = pass.filter(|p| !p.is_empty());
    let devid = devid.filter(|d| !d.is_empty());
    let mut flags = flags & !(FL_PASSPROT | FL_SNPROT);
    if pass.is_some() {
        flags |= FL_PASSPROT;
    }
    if devid.is_some() {
        flags |= FL_SNPROT;
    }
    let (key, devid_check) = v2_key(version, smartphone, pass, devid)?;
    let mut bits = [0u8; 25];
    bits[..16].copy_from_slice(&aes128_encrypt(&key, seed));
    set_bits(&mut bits, 128, 16, u32::from(flags));
    set_bits(&mut bits, 144, 14, u32::from(exp_date));
    set_bits(&mut bits, 159, 15, u32::from(securid_short_hash(seed)));
    set_bits(&mut bits, 174, 15, u32::from(devid_check));

    let mut out = String::with_capacity(V2_MIN_DIGITS);
    out.push('2');
    out.extend(serial.iter().map(|&c| char::from(c)));
    out.push_str(&bits_to_digits(&bits, DATA_DIGITS));
    let mut check = [0u8; 2];
    set_bits(
        &mut check,
        0,
        15,
        u32::from(securid_short_hash(out.as_bytes())),
    );
    out.push_str(&bits_to_digits(&check, CHECKSUM_DIGITS));
    Ok(out)
}

/// A v3 token as decoded from base64 (seed and parameters still encrypted).
#[derive(Clone)]
pub(crate) struct V3Token(pub Box<[u8; V3_BYTES]>);

impl V3Token {
    pub fn password_locked(&self) -> bool {
        self.0[1] != 0
    }
    pub fn devid_locked(&self) -> bool {
        self.0[2] != 0
    }
    fn devid_hash(&self) -> &[u8] {
        &self.0[3..35]
    }
    fn devid_pass_hash(&self) -> &[u8] {
        &self.0[35..67]
    }
    fn nonce(&self) -> [u8; 16] {
        let mut n = [0u8; 16];
        n.copy_from_slice(&self.0[67..83]);
        n
    }
    fn mac(&self) -> &[u8] {
        &self.0[259..291]
    }
}

fn hex_value(c: u8) -> Option<u8> {
    char::from(c).to_digit(16).map(|v| v as u8)
}

/// Decodes a v3 string: `%XX` URL escapes are undone, then the base64 is decoded
/// leniently (characters outside the alphabet are skipped) and must give exactly 291
/// bytes starting with the version byte 3.
pub(crate) fn decode_v3(text: &[u8]) -> Result<V3Token, SecurIdError> {
    let mut decoded = Vec::with_capacity(text.len());
    let mut i = 0;
    // stoken also refuses more than 390 characters after unescaping, which rules out
    // line breaks; the exact decoded size is checked below anyway, so that limit is
    // not kept.
    while let Some(&c) = text.get(i) {
        if c == b'%' {
            let hi = text.get(i + 1).copied().and_then(hex_value);
            let lo = text.get(i + 2).copied().and_then(hex_value);
            match (hi, lo) {
                (Some(hi), Some(lo)) => decoded.push((hi << 4) | lo),
                _ => return Err(SecurIdError::BadV3("bad %-escape".into())),
            }
            i += 3;
        } else {
            decoded.push(c);
            i += 1;
        }
    }
    // stoken handles this as a C string: an escaped NUL ends it.
    if let Some(nul) = decoded.iter().position(|&b| b == 0) {
        decoded.truncate(nul);
    }
    let bytes = base64_decode_relaxed(&decoded, V3_BYTES)
        .map_err(|_| SecurIdError::BadV3("not valid base64 of the right size".into()))?;
    let arr: [u8; V3_BYTES] = bytes.as_slice().try_into().map_err(|_| {
        SecurIdError::BadV3(format!(
            "decodes to {} bytes, expected {V3_BYTES}",
            bytes.len()
        ))
    })?;
    if arr[0] != 3 {
        return Err(SecurIdError::BadV3(format!(
            "version byte is {}, expected 3",
            arr[0]
        )));
    }
    Ok(V3Token(Box::new(arr)))
}

/// Device IDs for v3 tokens: alphanumerics only, upper-cased, at most 48.
fn scrub_v3_devid(devid: Option<&[u8]>) -> Vec<u8> {
    devid
        .unwrap_or_default()
        .iter()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(u8::to_ascii_uppercase)
        .take(V3_DEVID_CHARS)
        .collect()
}

/// SHA-256 over nonce, device ID (zero padded to 48 bytes) and password.
fn v3_check_hash(nonce: &[u8; 16], devid: &[u8], pass: &[u8]) -> [u8; 32] {
    let mut buf = Vec::with_capacity(16 + V3_DEVID_CHARS + pass.len());
    buf.extend_from_slice(nonce);
    buf.extend_from_slice(devid);
    buf.resize(16 + V3_DEVID_CHARS, 0);
    buf.extend_from_slice(pass);
    sha256(&buf)
}

/// PBKDF2-HMAC-SHA256 (1000 rounds, salt = nonce) keyed by every second byte of
/// password || device ID (zero padded to 48) || a 16-byte constant || nonce.
fn v3_derive_key(pass: &[u8], devid: &[u8], nonce: &[u8; 16], for_encryption: bool) -> [u8; 32] {
    const MAC_CONST: [u8; 16] = [
        0xd0, 0x14, 0x43, 0x3c, 0x6d, 0x17, 0x9f, 0xeb, 0xda, 0x09, 0xab, 0xfc, 0x32, 0x49, 0x63,
        0x4c,
    ];
    const ENC_CONST: [u8; 16] = [
        0x3b, 0xaf, 0xff, 0x4d, 0x91, 0x8d, 0x89, 0xb6, 0x81, 0x60, 0xde, 0x44, 0x4e, 0x05, 0xc0,
        0xdd,
    ];
    let mut buf = Vec::with_capacity(pass.len() + V3_DEVID_CHARS + 32);
    buf.extend_from_slice(pass);
    buf.extend_from_slice(devid);
    buf.resize(pass.len() + V3_DEVID_CHARS, 0);
    buf.extend_from_slice(if for_encryption {
        &ENC_CONST
    } else {
        &MAC_CONST
    });
    buf.extend_from_slice(nonce);
    let odd: Vec<u8> = buf.iter().skip(1).step_by(2).copied().collect();
    pbkdf2_sha256(&odd, nonce, 1000)
}

/// What a v3 token's encrypted payload holds.
pub(crate) struct V3Payload {
    pub serial: [u8; 12],
    pub seed: Block,
    pub flags: u16,
    pub exp_date: u16,
}

/// Days since 2000-01-01 from a v3 date (40-bit count of 1/337500 days since 1970),
/// clamped like stoken to the largest date a 32-bit time_t can show.
fn v3_date(bytes: &[u8]) -> u16 {
    let ticks = bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let days = (ticks / 337_500).wrapping_sub(super::SECURID_EPOCH_DAYS);
    if days <= u64::from(super::MAX_EXP_DATE) {
        days as u16
    } else {
        super::MAX_EXP_DATE
    }
}

/// Whether `devid` is the one a v3 token is bound to (always true if it is not bound).
pub(crate) fn v3_devid_matches(tok: &V3Token, devid: Option<&[u8]>) -> bool {
    let devid = if tok.devid_locked() { devid } else { None };
    let scrubbed = scrub_v3_devid(devid);
    v3_check_hash(&tok.nonce(), &scrubbed, b"") == tok.devid_hash()
}

/// Decrypts a v3 token. `pass` and `devid` are `None` when the token does not use them.
pub(crate) fn decrypt_v3(
    tok: &V3Token,
    pass: Option<&[u8]>,
    devid: Option<&[u8]>,
) -> Result<V3Payload, SecurIdError> {
    let nonce = tok.nonce();
    let devid = scrub_v3_devid(devid);
    let password = pass.unwrap_or_default();
    if password.len() > MAX_PASS {
        return Err(SecurIdError::PasswordTooLong);
    }
    if v3_check_hash(&nonce, &devid, b"") != tok.devid_hash() {
        return Err(if tok.devid_locked() {
            SecurIdError::WrongDevid
        } else {
            SecurIdError::V3Corrupt("device ID check")
        });
    }
    if v3_check_hash(&nonce, &devid, password) != tok.devid_pass_hash() {
        return Err(if tok.password_locked() {
            SecurIdError::WrongPassword
        } else {
            SecurIdError::V3Corrupt("password check")
        });
    }
    let mac_key = v3_derive_key(password, &devid, &nonce, false);
    if hmac_sha256(&mac_key, &tok.0[..V3_BYTES - 32]) != tok.mac() {
        return Err(SecurIdError::V3Corrupt("MAC"));
    }
    let enc_key = v3_derive_key(password, &devid, &nonce, true);
    let mut payload = [0u8; 176];
    payload.copy_from_slice(&tok.0[83..259]);
    aes256_cbc_decrypt(&enc_key, &nonce, &mut payload);

    // The serial is a NUL-terminated string of exactly 12 characters.
    if payload[..12].contains(&0) || payload[12] != 0 {
        return Err(SecurIdError::V3Corrupt("payload serial number"));
    }
    let mut serial = [0u8; 12];
    serial.copy_from_slice(&payload[..12]);
    let mut seed = [0u8; 16];
    seed.copy_from_slice(&payload[16..32]);
    let (mode, digits, addpin, interval) = (payload[34], payload[35], payload[36], payload[37]);

    let mut flags = FL_TIMESEEDS | FL_128BIT;
    if mode != 0 {
        flags |= FL_FEAT4;
    }
    flags |= (u16::from(digits.wrapping_sub(1)) << DIGIT_SHIFT) & DIGIT_MASK;
    if addpin != 0x1f {
        flags |= 0x2 << PINMODE_SHIFT;
    }
    if interval == 60 {
        flags |= 1;
    }
    Ok(V3Payload {
        serial,
        seed,
        flags,
        exp_date: v3_date(&payload[48..53]),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TOK0: &[u8] =
        b"258491750817210752367175001073261277346642631755724762324173166222072472716737543";

    #[test]
    fn bit_helpers_round_trip() {
        let mut data = [0u8; 4];
        set_bits(&mut data, 3, 15, 0x5a5a);
        assert_eq!(get_bits(&data, 3, 15), 0x5a5a & 0x7fff);
        let digits = bits_to_digits(&data, 10);
        let mut back = [0u8; 4];
        digits_to_bits(digits.as_bytes(), &mut back);
        assert_eq!(back[..3], data[..3]);
    }

    #[test]
    fn v2_reference_token_decodes_and_reencodes() {
        let tok = decode_v2(TOK0).unwrap();
        assert_eq!(tok.version, 2);
        assert_eq!(&tok.serial, b"584917508172");
        let seed = decrypt_v2(&tok, false, None, None).unwrap();
        let again = encode_v2(
            &tok.serial,
            &seed,
            tok.flags,
            tok.exp_date,
            2,
            false,
            None,
            None,
        );
        assert_eq!(again.unwrap().as_bytes(), TOK0);
    }

    #[test]
    fn v2_checksum_and_length_errors() {
        let mut bad = TOK0.to_vec();
        bad[20] = if bad[20] == b'1' { b'2' } else { b'1' };
        assert!(matches!(decode_v2(&bad), Err(SecurIdError::BadChecksum)));
        assert!(matches!(
            decode_v2(&TOK0[..79]),
            Err(SecurIdError::BadDigitCount { found: 79 })
        ));
    }
}
