//! `~/.stokenrc` contents and the PIN saved in them.
//!
//! The file is lines of `key value`: `version 1`, `token <v2 CTF digits>` and optionally
//! `pin <PIN>`. When the token is password protected, stoken saves the PIN encrypted
//! with that password (see [`encrypt_saved_pin`]); otherwise it is saved in clear.

use super::crypto::{aes128_decrypt, aes128_encrypt, securid_hash, xor_into};
use super::SecurIdError;

/// Shortest and longest PIN (digits).
pub const MIN_PIN: usize = 4;
pub const MAX_PIN: usize = 8;

/// What an rcfile says.
pub(crate) struct RcFile {
    pub token: String,
    pub pin: Option<String>,
}

fn rc_error(line: usize, reason: impl Into<String>) -> SecurIdError {
    SecurIdError::Rcfile {
        line,
        reason: reason.into(),
    }
}

/// The first two blank-separated words of a line; a CR ends the line.
fn words(line: &str) -> (Option<&str>, Option<&str>) {
    let line = line.split(['\r', '\n']).next().unwrap_or_default();
    let mut it = line.split([' ', '\t']).filter(|w| !w.is_empty());
    (it.next(), it.next())
}

/// Whether `text` looks like an rcfile: its first meaningful line starts with one of the
/// rcfile keys (no token string or sdtid file does).
pub(crate) fn looks_like_rcfile(text: &str) -> bool {
    for line in text.lines() {
        match words(line) {
            (None, _) => continue,
            (Some(key), _) if key.starts_with('#') => continue,
            (Some(key), _) => {
                return ["version", "token", "pin"]
                    .iter()
                    .any(|k| key.eq_ignore_ascii_case(k))
            }
        }
    }
    false
}

/// Parses rcfile text as stoken does: `#` comments, case-insensitive keys, unknown keys
/// ignored, the last occurrence of a key wins, `version` must be 1 and `token` present.
pub(crate) fn parse(text: &str) -> Result<RcFile, SecurIdError> {
    let mut version = None;
    let mut token = None;
    let mut pin = None;
    for (index, line) in text.split('\n').enumerate() {
        let number = index + 1;
        let (key, value) = match words(line) {
            (None, _) => continue,
            (Some(key), _) if key.starts_with('#') => continue,
            (Some(key), value) => (key, value),
        };
        let value = value.ok_or_else(|| rc_error(number, format!("missing value for '{key}'")))?;
        if key.eq_ignore_ascii_case("version") {
            version = Some(value);
        } else if key.eq_ignore_ascii_case("token") {
            token = Some(value);
        } else if key.eq_ignore_ascii_case("pin") {
            pin = Some(value);
        }
    }
    let version = version.ok_or_else(|| SecurIdError::RcfileContent("no 'version' line".into()))?;
    if c_atoi(version) != 1 {
        return Err(SecurIdError::RcfileContent(format!(
            "version {version:?} is not supported (expected 1)"
        )));
    }
    let token = token.ok_or_else(|| SecurIdError::RcfileContent("no 'token' line".into()))?;
    Ok(RcFile {
        token: token.to_string(),
        pin: pin.map(str::to_string),
    })
}

/// C `atoi`: optional blanks and sign, then leading digits; 0 when there are none.
fn c_atoi(s: &str) -> i64 {
    let s = s.trim_start();
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let value = rest
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0i64, |acc, d| {
            acc.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        });
    if negative {
        -value
    } else {
        value
    }
}

/// Checks a PIN the way stoken does: 4 to 8 ASCII digits. `"0000"` is a valid PIN that
/// leaves the tokencode unchanged (stoken's advice for "no PIN").
pub fn validate_pin(pin: &str) -> Result<(), SecurIdError> {
    if !(MIN_PIN..=MAX_PIN).contains(&pin.len()) {
        return Err(SecurIdError::PinLength(pin.len()));
    }
    if !pin.bytes().all(|c| c.is_ascii_digit()) {
        return Err(SecurIdError::PinNotNumeric);
    }
    Ok(())
}

/// Encrypts `pin` the way stoken saves it in the rcfile of a password-protected token:
/// block = PIN, zero padded, with its length in the last byte; XOR with `iv`; AES-128
/// encrypt with RSA's hash of the password as key; write 32 hex digits of `iv` then 32
/// of the ciphertext. `iv` should be 16 random bytes (stoken reads them from
/// /dev/urandom); it is an argument so that this stays free of I/O.
pub fn encrypt_saved_pin(pin: &str, password: &str, iv: [u8; 16]) -> Result<String, SecurIdError> {
    validate_pin(pin)?;
    let mut block = [0u8; 16];
    block[..pin.len()].copy_from_slice(pin.as_bytes());
    block[15] = pin.len() as u8;
    xor_into(&mut block, &iv);
    let key = securid_hash(password.as_bytes());
    let ct = aes128_encrypt(&key, &block);
    Ok(iv
        .iter()
        .chain(ct.iter())
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// stoken's lenient hex digit: anything that is not 0-9 is read as a letter.
fn loose_nibble(c: u8) -> u8 {
    let d = c.wrapping_sub(b'0');
    if d <= 9 {
        d
    } else {
        10u8.wrapping_add(c.to_ascii_uppercase()).wrapping_sub(b'A')
    }
}

/// Reverses [`encrypt_saved_pin`]. Fails if the text is not 64 characters long or the
/// decrypted block is not a well-formed PIN (wrong password or corrupt text).
pub fn decrypt_saved_pin(saved: &str, password: &str) -> Result<String, SecurIdError> {
    let text = saved.as_bytes();
    if text.len() != 64 {
        return Err(SecurIdError::SavedPin("it is not 64 hex digits"));
    }
    let mut bytes = [0u8; 32];
    for (out, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
        *out = (loose_nibble(pair[0]) << 4) | loose_nibble(pair[1]);
    }
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&bytes[..16]);
    let mut ct = [0u8; 16];
    ct.copy_from_slice(&bytes[16..]);
    let key = securid_hash(password.as_bytes());
    let mut block = aes128_decrypt(&key, &ct);
    xor_into(&mut block, &iv);
    let len = block.iter().position(|&b| b == 0).unwrap_or(16);
    if block[14] != 0 || usize::from(block[15]) != len {
        return Err(SecurIdError::SavedPin(
            "it does not decrypt with this password",
        ));
    }
    let pin = std::str::from_utf8(&block[..len])
        .map_err(|_| SecurIdError::SavedPin("it does not decrypt with this password"))?;
    validate_pin(pin)
        .map_err(|_| SecurIdError::SavedPin("it does not decrypt with this password"))?;
    Ok(pin.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pin_rules() {
        assert!(validate_pin("0000").is_ok());
        assert!(validate_pin("12345678").is_ok());
        assert!(matches!(
            validate_pin("123"),
            Err(SecurIdError::PinLength(3))
        ));
        assert!(matches!(
            validate_pin("123456789"),
            Err(SecurIdError::PinLength(9))
        ));
        assert!(matches!(
            validate_pin("12a4"),
            Err(SecurIdError::PinNotNumeric)
        ));
        assert!(matches!(validate_pin(""), Err(SecurIdError::PinLength(0))));
    }

    #[test]
    fn saved_pin_round_trip() {
        let enc = encrypt_saved_pin("123456", "hunter2", [0x42; 16]).unwrap();
        assert_eq!(enc.len(), 64);
        assert!(enc.starts_with("4242"));
        assert_eq!(decrypt_saved_pin(&enc, "hunter2").unwrap(), "123456");
        assert!(matches!(
            decrypt_saved_pin(&enc, "hunter3"),
            Err(SecurIdError::SavedPin(_))
        ));
        assert!(matches!(
            decrypt_saved_pin("abcd", "x"),
            Err(SecurIdError::SavedPin(_))
        ));
        assert!(matches!(
            decrypt_saved_pin(&"z".repeat(64), "x"),
            Err(SecurIdError::SavedPin(_))
        ));
    }

    #[test]
    fn rcfile_parsing() {
        let rc = parse("# comment\nversion 1\r\nTOKEN 123 extra\npin 1234\nfoo bar\n").unwrap();
        assert_eq!(rc.token, "123");
        assert_eq!(rc.pin.as_deref(), Some("1234"));
        assert!(matches!(
            parse("version 2\ntoken 1\n"),
            Err(SecurIdError::RcfileContent(_))
        ));
        assert!(matches!(
            parse("token 1\n"),
            Err(SecurIdError::RcfileContent(_))
        ));
        assert!(matches!(
            parse("version 1\n"),
            Err(SecurIdError::RcfileContent(_))
        ));
        assert!(matches!(
            parse("version 1\ntoken\n"),
            Err(SecurIdError::Rcfile { line: 2, .. })
        ));
        assert!(looks_like_rcfile("\n  # hi\n version 1\n"));
        assert!(!looks_like_rcfile(
            "2584917508172107523671750010732612773466"
        ));
        assert_eq!(c_atoi(" 1abc"), 1);
        assert_eq!(c_atoi("x"), 0);
    }
}
