//! The forms openconnect's `--token-secret` takes for TOTP and HOTP tokens, and writing an
//! HOTP secret back with its advanced counter in the form it came in.
//!
//! As openconnect does, after trailing white space is dropped:
//! - `<?xml ...`: a PSKC (RFC 6030) key container; its first key package is used and must
//!   be of the token's kind. Only plain (unencrypted) values are read.
//! - an optional `sha1:`, `sha256:` or `sha512:` prefix picks the HMAC;
//! - for HOTP, `,COUNTER` at the end gives the counter (C `strtol` base 0: decimal, `0x`
//!   hex, leading-zero octal);
//! - `base32:SECRET` is base32 (we also accept any case, spaces and missing padding);
//! - `0xHEX` is hex (an odd digit count gets a leading zero);
//! - anything else is the raw bytes of the string itself (not base32: openconnect's rule).
//!
//! Beyond openconnect: `otpauth://totp/...` and `otpauth://hotp/...` URIs (the Key Uri
//! Format: `secret`, `algorithm`, `digits`, `period`, `counter`), and the digits and period
//! a PSKC file gives.

use std::fmt;

use base64::Engine;
use quick_xml::events::Event;

use crate::oath::{self, Algorithm, DEFAULT_PERIOD};

/// What went wrong reading a token secret. Never contains the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the token secret is empty")]
    Empty,
    #[error("bad base32 character {found:?} at position {position} of the secret")]
    Base32Char { position: usize, found: char },
    #[error("base32 secret has an impossible length ({chars} characters of data)")]
    Base32Length { chars: usize },
    #[error("bad hex digit {found:?} at position {position} of the secret")]
    HexChar { position: usize, found: char },
    #[error("the hex secret after 0x is empty")]
    HexEmpty,
    #[error("HOTP counter {0:?} is not a non-negative number")]
    Counter(String),
    #[error("unknown algorithm {0:?} (use SHA1, SHA256 or SHA512)")]
    Algorithm(String),
    #[error("{what} {value:?} is out of range ({range})")]
    Range {
        what: &'static str,
        value: String,
        range: &'static str,
    },
    #[error("otpauth URI: {0}")]
    Uri(String),
    #[error("the secret is for a {found} token but --token-mode is {wanted}")]
    WrongKind {
        found: &'static str,
        wanted: &'static str,
    },
    #[error("PSKC file: {0}")]
    Pskc(String),
}

/// TOTP or HOTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OathKind {
    Totp,
    Hotp,
}

impl OathKind {
    pub fn name(self) -> &'static str {
        match self {
            OathKind::Totp => "totp",
            OathKind::Hotp => "hotp",
        }
    }
}

/// How the secret was written, so a counter update keeps the form.
#[derive(Clone, PartialEq, Eq)]
enum Form {
    Raw,
    Base32,
    Hex,
    /// The URI with the counter parameter's value span (if there was one).
    OtpAuth {
        uri: String,
        counter_span: Option<(usize, usize)>,
    },
    /// The document and the byte span of the counter's text, or where to insert one.
    Pskc {
        xml: String,
        counter: PskcCounter,
    },
}

#[derive(Clone, PartialEq, Eq)]
enum PskcCounter {
    Text(usize, usize),
    /// No counter element: insert one at this offset, with this namespace prefix.
    InsertAt(usize, String),
}

/// A parsed TOTP or HOTP token.
#[derive(Clone, PartialEq, Eq)]
pub struct OathSecret {
    kind: OathKind,
    key: Vec<u8>,
    algorithm: Algorithm,
    /// Whether an explicit `shaN:` prefix was given (kept on write-back).
    prefixed: bool,
    digits: u32,
    period: u64,
    /// HOTP: the counter of the next code.
    counter: u64,
    form: Form,
}

impl fmt::Debug for OathSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OathSecret")
            .field("kind", &self.kind)
            .field("key", &format_args!("<{} bytes>", self.key.len()))
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("period", &self.period)
            .field("counter", &self.counter)
            .finish()
    }
}

impl OathSecret {
    /// Reads `text` as a secret for a token of `kind`.
    pub fn parse(text: &str, kind: OathKind) -> Result<Self, SecretError> {
        let text = text.trim_end();
        if text.is_empty() {
            return Err(SecretError::Empty);
        }
        if text.starts_with("<?xml") {
            return parse_pskc(text, kind);
        }
        if starts_with_ignore_case(text, "otpauth://") {
            return parse_otpauth(text, kind);
        }
        let (algorithm, prefixed, rest) = split_algorithm(text);
        let (body, counter) = match kind {
            OathKind::Hotp => match rest.rfind(',') {
                Some(comma) => (&rest[..comma], parse_c_integer(&rest[comma + 1..])?),
                None => (rest.trim_end(), 0),
            },
            OathKind::Totp => (rest, 0),
        };
        let (key, form) = if starts_with_ignore_case(body, "base32:") {
            (decode_base32(&body["base32:".len()..])?, Form::Base32)
        } else if let Some(hex) = body.strip_prefix("0x") {
            (decode_hex(hex)?, Form::Hex)
        } else {
            (body.as_bytes().to_vec(), Form::Raw)
        };
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self {
            kind,
            key,
            algorithm,
            prefixed,
            digits: 6,
            period: DEFAULT_PERIOD,
            counter,
            form,
        })
    }

    pub fn kind(&self) -> OathKind {
        self.kind
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn digits(&self) -> u32 {
        self.digits
    }

    pub fn period(&self) -> u64 {
        self.period
    }

    /// HOTP: the counter the next code uses.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// The TOTP code at `unix_time`.
    pub fn totp(&self, unix_time: u64) -> String {
        oath::totp(
            self.algorithm,
            &self.key,
            unix_time,
            self.period,
            self.digits,
        )
    }

    /// The next HOTP code; the counter moves on (write the secret back afterwards).
    pub fn next_hotp(&mut self) -> String {
        let code = oath::hotp(self.algorithm, &self.key, self.counter, self.digits);
        self.counter = self.counter.saturating_add(1);
        code
    }

    /// The secret in the form it was given, with the current counter (for HOTP files).
    pub fn render(&self) -> String {
        let prefix = if self.prefixed {
            format!("{}:", self.algorithm.name().to_ascii_lowercase())
        } else {
            String::new()
        };
        let counter = match self.kind {
            OathKind::Hotp => format!(",{}", self.counter),
            OathKind::Totp => String::new(),
        };
        match &self.form {
            Form::Raw => format!("{prefix}{}{counter}", String::from_utf8_lossy(&self.key)),
            Form::Base32 => format!("{prefix}base32:{}{counter}", encode_base32(&self.key)),
            Form::Hex => format!("{prefix}0x{}{counter}", encode_hex(&self.key)),
            Form::OtpAuth { uri, counter_span } => match (self.kind, counter_span) {
                (OathKind::Totp, _) => uri.clone(),
                (OathKind::Hotp, Some((start, end))) => {
                    format!("{}{}{}", &uri[..*start], self.counter, &uri[*end..])
                }
                (OathKind::Hotp, None) => {
                    let joiner = if uri.contains('?') { '&' } else { '?' };
                    format!("{uri}{joiner}counter={}", self.counter)
                }
            },
            Form::Pskc { xml, counter } => match counter {
                PskcCounter::Text(start, end) => {
                    format!("{}{}{}", &xml[..*start], self.counter, &xml[*end..])
                }
                PskcCounter::InsertAt(at, ns) => format!(
                    "{}<{ns}Counter><{ns}PlainValue>{}</{ns}PlainValue></{ns}Counter>{}",
                    &xml[..*at],
                    self.counter,
                    &xml[*at..]
                ),
            },
        }
    }
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

fn split_algorithm(text: &str) -> (Algorithm, bool, &str) {
    for (prefix, algorithm) in [
        ("sha1:", Algorithm::Sha1),
        ("sha256:", Algorithm::Sha256),
        ("sha512:", Algorithm::Sha512),
    ] {
        if starts_with_ignore_case(text, prefix) {
            return (algorithm, true, &text[prefix.len()..]);
        }
    }
    (Algorithm::Sha1, false, text)
}

/// C's `strtol(s, .., 0)` for a non-negative number followed only by white space.
fn parse_c_integer(text: &str) -> Result<u64, SecretError> {
    let bad = || SecretError::Counter(text.to_string());
    let trimmed = text.trim();
    let (digits, radix) = if let Some(hex) = trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
    {
        (hex, 16)
    } else if trimmed.len() > 1 && trimmed.starts_with('0') {
        (&trimmed[1..], 8)
    } else {
        (trimmed.strip_prefix('+').unwrap_or(trimmed), 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(bad());
    }
    u64::from_str_radix(digits, radix).map_err(|_| bad())
}

const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32, any case; spaces and dashes between groups and `=` padding optional.
pub fn decode_base32(text: &str) -> Result<Vec<u8>, SecretError> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    let mut data_chars = 0usize;
    let mut padding_started = false;
    for (position, c) in text.chars().enumerate() {
        if c == ' ' || c == '-' || c == '\t' {
            continue;
        }
        if c == '=' {
            padding_started = true;
            continue;
        }
        let value = BASE32_ALPHABET
            .iter()
            .position(|&a| a == c.to_ascii_uppercase() as u8)
            .filter(|_| c.is_ascii() && !padding_started)
            .ok_or(SecretError::Base32Char {
                position: position + 1,
                found: c,
            })?;
        data_chars += 1;
        buffer = (buffer << 5) | value as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    // Lengths 1, 3 and 6 (mod 8) cannot come from whole bytes.
    if matches!(data_chars % 8, 1 | 3 | 6) {
        return Err(SecretError::Base32Length { chars: data_chars });
    }
    Ok(out)
}

/// Base32 with padding, as openconnect writes it back.
pub fn encode_base32(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    for chunk in data.chunks(5) {
        let mut block = [0u8; 5];
        block[..chunk.len()].copy_from_slice(chunk);
        let value = block.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < chars {
                let index = (value >> (35 - 5 * i)) & 31;
                out.push(BASE32_ALPHABET[index as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn decode_hex(text: &str) -> Result<Vec<u8>, SecretError> {
    if text.is_empty() {
        return Err(SecretError::HexEmpty);
    }
    if let Some((position, found)) = text
        .chars()
        .enumerate()
        .find(|(_, c)| !c.is_ascii_hexdigit())
    {
        return Err(SecretError::HexChar {
            position: position + 3,
            found,
        });
    }
    let padded = if text.len() % 2 == 1 {
        format!("0{text}")
    } else {
        text.to_string()
    };
    Ok((0..padded.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&padded[i..i + 2], 16).ok())
        .collect())
}

fn encode_hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

fn percent_decode(text: &str) -> Result<String, SecretError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text
                    .get(i + 1..i + 3)
                    // Digits only: from_str_radix would also take a sign ("%+A").
                    .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| SecretError::Uri(format!("bad %-escape at byte {}", i + 1)))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| SecretError::Uri("parameter is not UTF-8".into()))
}

fn parse_number<T: std::str::FromStr + PartialOrd>(
    what: &'static str,
    value: &str,
    range: std::ops::RangeInclusive<T>,
    range_text: &'static str,
) -> Result<T, SecretError> {
    value
        .parse::<T>()
        .ok()
        .filter(|v| range.contains(v))
        .ok_or(SecretError::Range {
            what,
            value: value.to_string(),
            range: range_text,
        })
}

fn parse_otpauth(uri: &str, wanted: OathKind) -> Result<OathSecret, SecretError> {
    let rest = &uri["otpauth://".len()..];
    let (kind_text, after) = rest
        .split_once('/')
        .ok_or_else(|| SecretError::Uri("expected otpauth://totp/LABEL?... or hotp".into()))?;
    let found = match kind_text.to_ascii_lowercase().as_str() {
        "totp" => OathKind::Totp,
        "hotp" => OathKind::Hotp,
        other => {
            return Err(SecretError::Uri(format!(
                "unknown token type {other:?} (expected totp or hotp)"
            )))
        }
    };
    if found != wanted {
        return Err(SecretError::WrongKind {
            found: found.name(),
            wanted: wanted.name(),
        });
    }
    let query_start = uri.len() - after.len() + after.find('?').map_or(after.len(), |q| q + 1);
    let query = &uri[query_start..];
    let mut key = None;
    let mut algorithm = Algorithm::Sha1;
    let mut digits = 6;
    let mut period = DEFAULT_PERIOD;
    let mut counter = None;
    let mut counter_span = None;
    let mut offset = query_start;
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value_start = offset + name.len() + 1;
        offset += pair.len() + 1;
        let value = percent_decode(value)?;
        match name.to_ascii_lowercase().as_str() {
            "secret" => key = Some(decode_base32(&value)?),
            "algorithm" => {
                algorithm =
                    Algorithm::from_name(&value).ok_or(SecretError::Algorithm(value.clone()))?
            }
            "digits" => digits = parse_number("digits", &value, oath::DIGITS, "6 to 10")?,
            "period" => period = parse_number("period", &value, 1..=86_400, "1 to 86400 s")?,
            "counter" => {
                counter = Some(parse_number("counter", &value, 0..=u64::MAX, "0 or more")?);
                counter_span = Some((value_start, value_start + pair.len() - name.len() - 1));
            }
            _ => {}
        }
    }
    let key = key
        .filter(|k| !k.is_empty())
        .ok_or_else(|| SecretError::Uri("no secret= parameter".into()))?;
    if found == OathKind::Hotp && counter.is_none() {
        return Err(SecretError::Uri(
            "an hotp URI needs a counter= parameter".into(),
        ));
    }
    Ok(OathSecret {
        kind: found,
        key,
        algorithm,
        prefixed: false,
        digits,
        period,
        counter: counter.unwrap_or(0),
        form: Form::OtpAuth {
            uri: uri.to_string(),
            counter_span,
        },
    })
}

const PSKC_HOTP: &str = "urn:ietf:params:xml:ns:keyprov:pskc:hotp";
const PSKC_TOTP: &str = "urn:ietf:params:xml:ns:keyprov:pskc:totp";

fn parse_pskc(xml: &str, wanted: OathKind) -> Result<OathSecret, SecretError> {
    let err = |m: &str| SecretError::Pskc(m.to_string());
    let mut reader = quick_xml::Reader::from_str(xml);
    // Local element names from the root, e.g. [KeyContainer, KeyPackage, Key, Data, ...].
    let mut path: Vec<String> = Vec::new();
    let mut algorithm_uri: Option<String> = None;
    let mut key = None;
    let mut digits = 6;
    let mut period = DEFAULT_PERIOD;
    let mut counter = None;
    let mut counter_span = None;
    let mut secret_end = None;
    let mut prefix = String::new();
    let mut in_first_key = false;
    let mut keys_seen = 0;
    loop {
        let before = reader.buffer_position() as usize;
        let event = reader
            .read_event()
            .map_err(|e| SecretError::Pskc(format!("not well-formed XML: {e}")))?;
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                let name = start.local_name().as_ref().to_string();
                let full = start.name().as_ref().to_string();
                if name == "Key" {
                    keys_seen += 1;
                    in_first_key = keys_seen == 1;
                    if in_first_key {
                        prefix = full.strip_suffix("Key").unwrap_or("").to_string();
                        for attr in start.attributes().flatten() {
                            if attr.key.local_name().as_ref() == "Algorithm" {
                                algorithm_uri = Some(attr.value.to_string());
                            }
                        }
                    }
                }
                if in_first_key && name == "ResponseFormat" {
                    for attr in start.attributes().flatten() {
                        if attr.key.local_name().as_ref() == "Length" {
                            let value = attr.value.to_string();
                            digits = parse_number("digits", &value, oath::DIGITS, "6 to 10")?;
                        }
                    }
                }
                if in_first_key && name == "EncryptedValue" {
                    return Err(err(
                        "encrypted key values are not supported; export the token with plain values",
                    ));
                }
                if matches!(event, Event::Start(_)) {
                    path.push(name);
                } else if name == "Key" {
                    in_first_key = false;
                }
            }
            Event::End(_) => {
                let closed = path.pop();
                if in_first_key && closed.as_deref() == Some("Secret") {
                    secret_end = Some(reader.buffer_position() as usize);
                }
                if closed.as_deref() == Some("Key") {
                    in_first_key = false;
                }
            }
            Event::Text(text) if in_first_key => {
                let raw: String = text.as_ref().to_string();
                let value = raw.trim();
                let parent = path.len().checked_sub(2).and_then(|i| path.get(i));
                let leaf = path.last().map(String::as_str);
                match (parent.map(String::as_str), leaf) {
                    (Some("Secret"), Some("PlainValue")) => {
                        let cleaned: String = value.split_whitespace().collect();
                        key = Some(
                            base64::engine::general_purpose::STANDARD
                                .decode(cleaned)
                                .map_err(|_| err("the secret's PlainValue is not base64"))?,
                        );
                    }
                    (Some("Counter"), Some("PlainValue")) => {
                        counter = Some(parse_number("counter", value, 0..=u64::MAX, "0 or more")?);
                        let lead = raw.len() - raw.trim_start().len();
                        let start = before + lead;
                        counter_span = Some((start, start + value.len()));
                    }
                    (Some("TimeInterval"), Some("PlainValue")) => {
                        period = parse_number("period", value, 1..=86_400, "1 to 86400 s")?;
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if keys_seen == 0 {
        return Err(err("no <Key> element"));
    }
    let found = match algorithm_uri.as_deref() {
        Some(PSKC_HOTP) => OathKind::Hotp,
        Some(PSKC_TOTP) => OathKind::Totp,
        Some(other) => {
            return Err(SecretError::Pskc(format!(
                "unknown key algorithm {other:?}"
            )))
        }
        None => return Err(err("the key has no Algorithm attribute")),
    };
    if found != wanted {
        return Err(SecretError::WrongKind {
            found: found.name(),
            wanted: wanted.name(),
        });
    }
    let key = key
        .filter(|k| !k.is_empty())
        .ok_or_else(|| err("no <Secret><PlainValue> in the first key"))?;
    let counter_place = match (counter_span, secret_end) {
        (Some((start, end)), _) => PskcCounter::Text(start, end),
        (None, Some(at)) => PskcCounter::InsertAt(at, prefix),
        (None, None) => return Err(err("no <Secret> element")),
    };
    Ok(OathSecret {
        kind: found,
        key,
        algorithm: Algorithm::Sha1,
        prefixed: false,
        digits,
        period,
        counter: counter.unwrap_or(0),
        form: Form::Pskc {
            xml: xml.to_string(),
            counter: counter_place,
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RFC_KEY: &[u8] = b"12345678901234567890";

    fn totp(text: &str) -> OathSecret {
        OathSecret::parse(text, OathKind::Totp).unwrap()
    }

    fn hotp(text: &str) -> OathSecret {
        OathSecret::parse(text, OathKind::Hotp).unwrap()
    }

    #[test]
    fn every_plain_form_gives_the_same_key() {
        let b32 = encode_base32(RFC_KEY);
        assert_eq!(b32, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let forms = [
            "12345678901234567890".to_string(),
            format!("base32:{b32}"),
            format!("BASE32:{}", b32.to_lowercase()),
            "base32:GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ".to_string(),
            "0x3132333435363738393031323334353637383930".to_string(),
            "sha1:0x3132333435363738393031323334353637383930".to_string(),
            "12345678901234567890 \n".to_string(),
        ];
        for form in forms {
            let secret = totp(&form);
            assert_eq!(secret.key, RFC_KEY, "{form}");
            assert_eq!(secret.totp(59), "287082", "{form}");
        }
    }

    #[test]
    fn base32_padding_is_optional_and_positions_are_reported() {
        assert_eq!(decode_base32("MZXW6===").unwrap(), b"foo");
        assert_eq!(decode_base32("mzxw6").unwrap(), b"foo");
        assert_eq!(decode_base32("MZXW6YQ").unwrap(), b"foob");
        assert_eq!(
            decode_base32("MZX1W6").unwrap_err(),
            SecretError::Base32Char {
                position: 4,
                found: '1'
            }
        );
        assert_eq!(
            decode_base32("MZX").unwrap_err(),
            SecretError::Base32Length { chars: 3 }
        );
        assert!(matches!(
            decode_base32("MZ=XW").unwrap_err(),
            SecretError::Base32Char { position: 4, .. }
        ));
        let err = OathSecret::parse("base32:ABC!DEFG", OathKind::Totp).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad base32 character '!' at position 4 of the secret"
        );
        for data in [
            &b""[..],
            b"a",
            b"ab",
            b"abc",
            b"abcd",
            b"abcde",
            b"abcdefghijk",
        ] {
            assert_eq!(decode_base32(&encode_base32(data)).unwrap(), data);
        }
    }

    #[test]
    fn algorithms_by_prefix() {
        let key256 = "0x3132333435363738393031323334353637383930313233343536373839303132";
        let secret = totp(&format!("SHA256:{key256}"));
        assert_eq!(secret.algorithm(), Algorithm::Sha256);
        assert_eq!(secret.totp(59), "119246");
        assert_eq!(totp("sha512:abc").algorithm(), Algorithm::Sha512);
    }

    #[test]
    fn hex_forms() {
        assert_eq!(totp("0xabc").key, vec![0x0a, 0xbc]);
        assert_eq!(
            OathSecret::parse("0x12zz", OathKind::Totp).unwrap_err(),
            SecretError::HexChar {
                position: 5,
                found: 'z'
            }
        );
        assert_eq!(
            OathSecret::parse("0x", OathKind::Totp).unwrap_err(),
            SecretError::HexEmpty
        );
    }

    #[test]
    fn hotp_counters_and_write_back_keep_the_form() {
        let mut secret = hotp("0x3132333435363738393031323334353637383930,5");
        assert_eq!(secret.counter(), 5);
        assert_eq!(secret.next_hotp(), "254676");
        assert_eq!(
            secret.render(),
            "0x3132333435363738393031323334353637383930,6"
        );
        let mut b32 = hotp("sha1:base32:GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,0x10");
        assert_eq!(b32.counter(), 16);
        b32.next_hotp();
        assert_eq!(
            b32.render(),
            "sha1:base32:GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,17"
        );
        let mut raw = hotp("12345678901234567890");
        assert_eq!(raw.next_hotp(), "755224");
        assert_eq!(raw.render(), "12345678901234567890,1");
        assert_eq!(hotp("abc,010").counter(), 8, "strtol base 0: octal");
        assert_eq!(hotp("abc, 7 ").counter(), 7);
        for bad in ["abc,-1", "abc,x", "abc,", "abc,7z"] {
            assert!(
                matches!(
                    OathSecret::parse(bad, OathKind::Hotp).unwrap_err(),
                    SecretError::Counter(_)
                ),
                "{bad}"
            );
        }
        // TOTP keeps commas as key bytes.
        assert_eq!(totp("abc,1").key, b"abc,1");
    }

    #[test]
    fn otpauth_uris() {
        let uri = "otpauth://totp/ACME:alice@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME&algorithm=SHA1&digits=8&period=30";
        let secret = totp(uri);
        assert_eq!(secret.digits(), 8);
        assert_eq!(secret.totp(59), "94287082");
        assert_eq!(secret.render(), uri);
        let sixty = totp("otpauth://totp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&period=60");
        assert_eq!(sixty.totp(119), oath::hotp(Algorithm::Sha1, RFC_KEY, 1, 6));

        let mut h = hotp("otpauth://hotp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&counter=2&x=1");
        assert_eq!(h.next_hotp(), "359152");
        assert_eq!(
            h.render(),
            "otpauth://hotp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&counter=3&x=1"
        );
        let errors = [
            (
                "otpauth://hotp/x?secret=GEZDGNBV",
                OathKind::Totp,
                "hotp token",
            ),
            (
                "otpauth://totp/x?secret=GEZD&algorithm=MD5",
                OathKind::Totp,
                "MD5",
            ),
            (
                "otpauth://totp/x?secret=GEZD&digits=5",
                OathKind::Totp,
                "digits",
            ),
            ("otpauth://totp/x?issuer=a", OathKind::Totp, "secret="),
            (
                "otpauth://hotp/x?secret=GEZDGNBV",
                OathKind::Hotp,
                "counter=",
            ),
            ("otpauth://totp/x?secret=GE%ZZ", OathKind::Totp, "%-escape"),
            ("otpauth://yotp/x?secret=GEZD", OathKind::Totp, "yotp"),
            ("otpauth://totp", OathKind::Totp, "LABEL"),
        ];
        for (uri, kind, needle) in errors {
            let err = OathSecret::parse(uri, kind).unwrap_err().to_string();
            assert!(err.contains(needle), "{uri}: {err}");
        }
    }

    const PSKC: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<pskc:KeyContainer Version="1.0" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc">
  <pskc:KeyPackage>
    <pskc:Key Id="12345678" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp">
      <pskc:AlgorithmParameters><pskc:ResponseFormat Length="8" Encoding="DECIMAL"/></pskc:AlgorithmParameters>
      <pskc:Data>
        <pskc:Secret><pskc:PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</pskc:PlainValue></pskc:Secret>
        <pskc:Counter><pskc:PlainValue> 0 </pskc:PlainValue></pskc:Counter>
      </pskc:Data>
    </pskc:Key>
  </pskc:KeyPackage>
</pskc:KeyContainer>
"#;

    #[test]
    fn pskc_files() {
        let mut secret = hotp(PSKC);
        assert_eq!(secret.digits(), 8);
        assert_eq!(secret.key, RFC_KEY);
        assert_eq!(secret.next_hotp(), "84755224");
        let rewritten = secret.render();
        assert!(
            rewritten.contains("<pskc:PlainValue> 1 </pskc:PlainValue>"),
            "{rewritten}"
        );
        let mut again = hotp(&rewritten);
        assert_eq!(again.next_hotp(), "94287082");

        // No counter element: one is added after the secret.
        let no_counter = PSKC.replace(
            "<pskc:Counter><pskc:PlainValue> 0 </pskc:PlainValue></pskc:Counter>",
            "",
        );
        let mut secret = hotp(&no_counter);
        secret.next_hotp();
        let rewritten = secret.render();
        assert_eq!(hotp(&rewritten).counter(), 1, "{rewritten}");

        let totp_pskc = PSKC.replace("pskc:hotp", "pskc:totp").replace(
            "<pskc:Counter><pskc:PlainValue> 0 </pskc:PlainValue></pskc:Counter>",
            "<pskc:TimeInterval><pskc:PlainValue>60</pskc:PlainValue></pskc:TimeInterval>",
        );
        assert_eq!(totp(&totp_pskc).period(), 60);

        let errors = [
            (PSKC.to_string(), OathKind::Totp, "hotp token"),
            (
                PSKC.replace("MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=", "!!"),
                OathKind::Hotp,
                "base64",
            ),
            (
                PSKC.replace("pskc:hotp", "pskc:ocra"),
                OathKind::Hotp,
                "unknown key algorithm",
            ),
            (
                PSKC.replace(
                    "<pskc:Secret><pskc:PlainValue>",
                    "<pskc:Secret><pskc:EncryptedValue>",
                )
                .replace(
                    "</pskc:PlainValue></pskc:Secret>",
                    "</pskc:EncryptedValue></pskc:Secret>",
                ),
                OathKind::Hotp,
                "encrypted",
            ),
            (
                "<?xml version=\"1.0\"?><a><b></a>".to_string(),
                OathKind::Hotp,
                "XML",
            ),
            (
                "<?xml version=\"1.0\"?><a/>".to_string(),
                OathKind::Hotp,
                "no <Key>",
            ),
        ];
        for (xml, kind, needle) in errors {
            let err = OathSecret::parse(&xml, kind).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn debug_hides_the_key() {
        let shown = format!("{:?}", totp("supersecretvalue"));
        assert!(!shown.contains("supersecret"), "{shown}");
        assert!(shown.contains("16 bytes"), "{shown}");
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,200}") {
            for kind in [OathKind::Totp, OathKind::Hotp] {
                if let Ok(mut secret) = OathSecret::parse(&text, kind) {
                    let _ = secret.totp(1_700_000_000);
                    let _ = secret.next_hotp();
                    let _ = secret.render();
                }
            }
        }

        #[test]
        fn prefixed_arbitrary_text_never_panics(text in ".{0,120}", which in 0usize..5) {
            let prefix = ["base32:", "0x", "otpauth://totp/a?", "otpauth://hotp/a?secret=AA&", "<?xml "][which];
            let _ = OathSecret::parse(&format!("{prefix}{text}"), OathKind::Hotp);
            let _ = OathSecret::parse(&format!("{prefix}{text}"), OathKind::Totp);
        }

        #[test]
        fn hotp_write_back_round_trips(key in proptest::collection::vec(any::<u8>(), 1..40), counter in 0u64..1_000_000, form in 0usize..2) {
            let text = match form {
                0 => format!("base32:{},{counter}", encode_base32(&key)),
                _ => format!("sha256:0x{},{counter}", encode_hex(&key)),
            };
            let mut secret = OathSecret::parse(&text, OathKind::Hotp).unwrap();
            let first = secret.next_hotp();
            let mut reread = OathSecret::parse(&secret.render(), OathKind::Hotp).unwrap();
            prop_assert_eq!(reread.counter(), counter + 1);
            prop_assert_eq!(reread.algorithm(), secret.algorithm());
            prop_assert_ne!(reread.next_hotp().len(), 0);
            prop_assert_eq!(first, oath::hotp(secret.algorithm(), &key, counter, 6));
        }
    }
}
