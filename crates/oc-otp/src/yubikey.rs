//! The YubiKey OATH applet (Yubico's "YKOATH" protocol) as openconnect's
//! `--token-mode=yubioath` drives it: select the applet, unlock it with a password when it
//! has one, list the credentials, pick one, and have the key calculate its code.
//!
//! Nothing here talks to a card. Command APDUs come out as byte vectors and the card's
//! answers (data followed by the two status bytes) go back in; the PC/SC shell in the
//! client moves them. Two layers:
//!
//! - building blocks: `*_command` builders, [`ResponseChain`] for answers split over
//!   several APDUs (status `61xx`, fetched with SEND REMAINING), and `parse_*` functions;
//! - [`OathExchange`], a small state machine that runs openconnect's whole sequence
//!   (SELECT, VALIDATE when locked, LIST, CALCULATE ALL to learn about touch, CALCULATE)
//!   and asks for a password through [`Action::NeedPassword`].
//!
//! Behaviour follows openconnect 9.x: the named credential or else the first one listed;
//! the password key is PBKDF2-HMAC-SHA1 over the applet's salt (1000 rounds, 16 bytes),
//! retried once with each character cut to its low byte (the old Android derivation);
//! codes come from the truncated response with the digit count the key reports. Two
//! differences: a TOTP credential named `NN/...` (yubikey-manager's convention for a
//! non-30-second period) is calculated with period NN, and the key's answer to our own
//! VALIDATE challenge is checked, as yubikey-manager does.

use sha1::Sha1;

use crate::oath::{self, totp_step, Algorithm, DEFAULT_PERIOD};

/// The OATH applet's application identifier.
pub const AID: [u8; 7] = [0xa0, 0x00, 0x00, 0x05, 0x27, 0x21, 0x01];

/// How large an answer (all chained parts together) may grow before we give up.
pub const MAX_RESPONSE: usize = 64 * 1024;

/// Status words the applet uses.
pub mod status {
    /// Success.
    pub const OK: u16 = 0x9000;
    /// Authentication required; after CALCULATE of a touch credential: no touch came.
    pub const AUTH_REQUIRED: u16 = 0x6982;
    /// No such credential; some applets also use it for a wrong VALIDATE response.
    pub const NO_SUCH_OBJECT: u16 = 0x6984;
    /// Conditions of use not satisfied.
    pub const CONDITIONS_NOT_SATISFIED: u16 = 0x6985;
    /// Wrong syntax; the answer to a VALIDATE with the wrong password.
    pub const WRONG_SYNTAX: u16 = 0x6a80;
    /// Application not found (SELECT of an applet the card does not have).
    pub const NOT_FOUND: u16 = 0x6a82;
    /// No space left on the key.
    pub const NO_SPACE: u16 = 0x6a84;
    /// Instruction not supported.
    pub const INS_NOT_SUPPORTED: u16 = 0x6d00;
    /// Class not supported.
    pub const CLA_NOT_SUPPORTED: u16 = 0x6e00;
    /// Generic error.
    pub const GENERIC_ERROR: u16 = 0x6581;
}

const TAG_NAME: u8 = 0x71;
const TAG_NAME_LIST: u8 = 0x72;
const TAG_CHALLENGE: u8 = 0x74;
const TAG_RESPONSE: u8 = 0x75;
const TAG_TRUNCATED: u8 = 0x76;
const TAG_HOTP: u8 = 0x77;
const TAG_VERSION: u8 = 0x79;
const TAG_ALGORITHM: u8 = 0x7b;
const TAG_TOUCH: u8 = 0x7c;

const INS_SELECT: u8 = 0xa4;
const INS_LIST: u8 = 0xa1;
const INS_CALCULATE: u8 = 0xa2;
const INS_VALIDATE: u8 = 0xa3;
const INS_CALCULATE_ALL: u8 = 0xa4;
const INS_SEND_REMAINING: u8 = 0xa5;

/// SW1 of "more data waiting; send SEND REMAINING".
const SW1_MORE_DATA: u8 = 0x61;

/// Digit counts a truncated answer may carry (the YubiKey stores 6, 7 or 8).
const CODE_DIGITS: std::ops::RangeInclusive<u8> = 6..=8;

/// Length of the HMAC-SHA1 answers exchanged by VALIDATE.
const SHA1_LEN: usize = 20;

/// A short description of a status word, for messages.
pub fn status_text(sw: u16) -> &'static str {
    match sw {
        status::OK => "success",
        status::AUTH_REQUIRED => "security status not satisfied",
        status::NO_SUCH_OBJECT => "no such object",
        status::CONDITIONS_NOT_SATISFIED => "conditions of use not satisfied",
        status::WRONG_SYNTAX => "wrong data",
        status::NOT_FOUND => "not found",
        status::NO_SPACE => "no space",
        status::INS_NOT_SUPPORTED => "instruction not supported",
        status::CLA_NOT_SUPPORTED => "class not supported",
        status::GENERIC_ERROR => "generic error",
        _ if sw >> 8 == u16::from(SW1_MORE_DATA) => "more data waiting",
        _ => "unknown status",
    }
}

fn quoted_names(names: &[String]) -> String {
    if names.is_empty() {
        "no credentials".to_string()
    } else {
        names
            .iter()
            .map(|n| format!("'{n}'"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A problem talking to the YubiKey OATH applet. Messages never contain the password.
#[derive(Debug, thiserror::Error)]
pub enum YubiKeyError {
    #[error("YubiKey answer is malformed: {0}")]
    Malformed(String),
    #[error("YubiKey answer to {command} is {len} byte(s), too short to hold a status word")]
    ShortResponse { command: &'static str, len: usize },
    #[error("YubiKey answer to {command} exceeds {MAX_RESPONSE} bytes")]
    ResponseTooLong { command: &'static str },
    #[error("YubiKey answered {command} with status {status:04X} ({})", status_text(*status))]
    Status { command: &'static str, status: u16 },
    #[error("no YubiKey OATH applet on this card (SELECT answered {status:04X}: {})", status_text(*status))]
    NoApplet { status: u16 },
    #[error("the YubiKey OATH applet needs a password")]
    PasswordRequired,
    #[error("wrong password for the YubiKey OATH applet")]
    WrongPassword,
    #[error("the YubiKey's answer to our VALIDATE challenge is wrong; not trusting this key")]
    DeviceProofMismatch,
    #[error(
        "token '{wanted}' not found on the YubiKey (it has {})",
        quoted_names(available)
    )]
    CredentialNotFound {
        wanted: String,
        available: Vec<String>,
    },
    #[error("the YubiKey holds no HOTP or TOTP credential")]
    NoCredentials,
    #[error("YubiKey credential '{name}' is of unsupported type {type_byte:#04x}")]
    UnsupportedCredential { name: String, type_byte: u8 },
    #[error("YubiKey credential '{name}' needs a touch of the key, and none came in time")]
    TouchTimeout { name: String },
    #[error("credential name of {0} bytes does not fit in a command APDU")]
    NameTooLong(usize),
    #[error("YubiKey exchange used out of order: {0}")]
    OutOfOrder(&'static str),
    // The rest are reported by the PC/SC shell in the client, which owns the device side.
    #[error("cannot reach the PC/SC service (is pcscd running?): {0}")]
    ServiceUnavailable(String),
    #[error("PC/SC failure while {what}: {why}")]
    Pcsc { what: &'static str, why: String },
    #[error("no smart card reader found (is the YubiKey plugged in?)")]
    NoReader,
    #[error("no YubiKey with the OATH applet found (tried {})", tried.join("; "))]
    NotFound { tried: Vec<String> },
    #[error("YubiKey in reader '{reader}': {what} failed: {why}")]
    Card {
        reader: String,
        what: &'static str,
        why: String,
    },
}

fn malformed(what: impl Into<String>) -> YubiKeyError {
    YubiKeyError::Malformed(what.into())
}

// ---------------------------------------------------------------------------------------
// TLV and APDU encoding

/// Splits one BER-style TLV off the front of `buf`: (tag, value, rest). Lengths take one
/// byte below 0x80, or 0x81 plus one byte, or 0x82 plus two bytes.
fn split_tlv(buf: &[u8]) -> Result<(u8, &[u8], &[u8]), YubiKeyError> {
    let (&tag, rest) = buf
        .split_first()
        .ok_or_else(|| malformed("TLV truncated before its tag"))?;
    let (&first, rest) = rest
        .split_first()
        .ok_or_else(|| malformed(format!("TLV {tag:#04x} has no length")))?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81 => match rest {
            [l, tail @ ..] => (usize::from(*l), tail),
            [] => return Err(malformed(format!("TLV {tag:#04x} length truncated"))),
        },
        0x82 => match rest {
            [hi, lo, tail @ ..] => (usize::from(u16::from_be_bytes([*hi, *lo])), tail),
            _ => return Err(malformed(format!("TLV {tag:#04x} length truncated"))),
        },
        other => {
            return Err(malformed(format!(
                "TLV {tag:#04x} has unsupported length form {other:#04x}"
            )))
        }
    };
    let (value, rest) = rest.split_at_checked(len).ok_or_else(|| {
        malformed(format!(
            "TLV {tag:#04x} claims {len} bytes but {} remain",
            rest.len()
        ))
    })?;
    Ok((tag, value, rest))
}

/// All TLVs of `buf`, in order.
fn parse_tlvs(mut buf: &[u8]) -> Result<Vec<(u8, &[u8])>, YubiKeyError> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (tag, value, rest) = split_tlv(buf)?;
        out.push((tag, value));
        buf = rest;
    }
    Ok(out)
}

fn push_tlv(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xff {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        // Callers keep values far below 64 KiB; saturate rather than wrap just in case.
        let len = u16::try_from(len).unwrap_or(u16::MAX);
        out.push(0x82);
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(value);
}

/// A short command APDU (CLA 0). No Lc when there is no data, and no Le, as openconnect
/// sends them.
fn command(ins: u8, p1: u8, p2: u8, data: &[u8]) -> Option<Vec<u8>> {
    let lc = u8::try_from(data.len()).ok()?;
    let mut apdu = vec![0x00, ins, p1, p2];
    if lc > 0 {
        apdu.push(lc);
        apdu.extend_from_slice(data);
    }
    Some(apdu)
}

/// SELECT of the OATH applet.
pub fn select_command() -> Vec<u8> {
    let mut apdu = vec![0x00, INS_SELECT, 0x04, 0x00, AID.len() as u8];
    apdu.extend_from_slice(&AID);
    apdu
}

/// LIST: the names and types of all credentials.
pub fn list_command() -> Vec<u8> {
    vec![0x00, INS_LIST, 0x00, 0x00]
}

/// SEND REMAINING: the next part of an answer that ended with status `61xx`.
pub fn send_remaining_command() -> Vec<u8> {
    vec![0x00, INS_SEND_REMAINING, 0x00, 0x00]
}

/// VALIDATE: our HMAC of the key's challenge, and a challenge of ours for the key.
pub fn validate_command(
    key: &PasswordKey,
    device_challenge: &[u8],
    host_challenge: &[u8; 8],
) -> Vec<u8> {
    let mut data = Vec::with_capacity(4 + SHA1_LEN + host_challenge.len());
    push_tlv(&mut data, TAG_RESPONSE, &key.respond(device_challenge));
    push_tlv(&mut data, TAG_CHALLENGE, host_challenge);
    // 32 bytes of data always fit a short APDU.
    command(INS_VALIDATE, 0x00, 0x00, &data).unwrap_or_default()
}

/// CALCULATE of one credential with a truncated answer. `time_step` is the TOTP counter
/// (sent as 8 bytes big endian); `None` for HOTP, which sends an empty challenge and makes
/// the key advance its own counter.
pub fn calculate_command(id: &[u8], time_step: Option<u64>) -> Result<Vec<u8>, YubiKeyError> {
    let mut data = Vec::with_capacity(id.len() + 14);
    push_tlv(&mut data, TAG_NAME, id);
    match time_step {
        Some(step) => push_tlv(&mut data, TAG_CHALLENGE, &step.to_be_bytes()),
        None => push_tlv(&mut data, TAG_CHALLENGE, &[]),
    }
    command(INS_CALCULATE, 0x00, 0x01, &data).ok_or(YubiKeyError::NameTooLong(id.len()))
}

/// CALCULATE ALL with truncated answers for the 30-second `time_step`. The answer also
/// tells which credentials need a touch and which are HOTP (neither is calculated).
pub fn calculate_all_command(time_step: u64) -> Vec<u8> {
    let mut data = Vec::with_capacity(10);
    push_tlv(&mut data, TAG_CHALLENGE, &time_step.to_be_bytes());
    command(INS_CALCULATE_ALL, 0x00, 0x01, &data).unwrap_or_default()
}

/// Splits a response APDU into its data and status word.
pub fn split_status<'a>(
    command: &'static str,
    raw: &'a [u8],
) -> Result<(&'a [u8], u16), YubiKeyError> {
    match raw.split_last_chunk::<2>() {
        Some((data, sw)) => Ok((data, u16::from_be_bytes(*sw))),
        None => Err(YubiKeyError::ShortResponse {
            command,
            len: raw.len(),
        }),
    }
}

/// What [`ResponseChain::push`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chained {
    /// More data is waiting: transmit this (SEND REMAINING) and push the answer.
    More(Vec<u8>),
    /// The answer is whole: all data parts joined, and the final status word.
    Complete { data: Vec<u8>, status: u16 },
}

/// Joins an answer the applet splits over several APDUs (status `61xx` means "more").
#[derive(Debug, Default)]
pub struct ResponseChain {
    data: Vec<u8>,
}

impl ResponseChain {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one response APDU of `command` (named for messages).
    pub fn push(&mut self, command: &'static str, raw: &[u8]) -> Result<Chained, YubiKeyError> {
        let (data, sw) = split_status(command, raw)?;
        if self.data.len() + data.len() > MAX_RESPONSE {
            self.data.clear();
            return Err(YubiKeyError::ResponseTooLong { command });
        }
        self.data.extend_from_slice(data);
        if sw >> 8 == u16::from(SW1_MORE_DATA) {
            return Ok(Chained::More(send_remaining_command()));
        }
        Ok(Chained::Complete {
            data: std::mem::take(&mut self.data),
            status: sw,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Password key

/// The 16-byte key the applet's password turns into. Its bytes are wiped on drop and never
/// printed.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordKey([u8; 16]);

impl std::fmt::Debug for PasswordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordKey(..)")
    }
}

impl Drop for PasswordKey {
    fn drop(&mut self) {
        self.0.fill(0);
        std::hint::black_box(&mut self.0);
    }
}

impl PasswordKey {
    /// PBKDF2-HMAC-SHA1 of the password's UTF-8 bytes, salted with the name the applet
    /// gives in its SELECT answer, 1000 rounds, 16 bytes.
    pub fn derive(password: &str, salt: &[u8]) -> Self {
        Self::derive_bytes(password.as_bytes(), salt)
    }

    /// As [`PasswordKey::derive`], from raw password bytes.
    pub fn derive_bytes(password: &[u8], salt: &[u8]) -> Self {
        Self(pbkdf2::pbkdf2_hmac_array::<Sha1, 16>(password, salt, 1000))
    }

    /// The key old Android apps derived from a non-ASCII password: each character cut to
    /// its low eight bits. `None` for an ASCII password, where it is the same key.
    pub fn truncated_char_variant(password: &str, salt: &[u8]) -> Option<Self> {
        if password.is_ascii() {
            return None;
        }
        let bytes: Vec<u8> = password
            .chars()
            .map(|c| (u32::from(c) & 0xff) as u8)
            .collect();
        Some(Self::derive_bytes(&bytes, salt))
    }

    /// A key from its raw bytes (one remembered from an earlier exchange).
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// HMAC-SHA1 of `challenge` under this key.
    pub fn respond(&self, challenge: &[u8]) -> [u8; SHA1_LEN] {
        let mut out = [0; SHA1_LEN];
        let digest = oath::hmac(Algorithm::Sha1, &self.0, challenge);
        if let Some(bytes) = digest.get(..SHA1_LEN) {
            out.copy_from_slice(bytes);
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// Parsed answers

/// The applet's answer to SELECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectInfo {
    /// Applet version, e.g. `[5, 4, 3]`.
    pub version: [u8; 3],
    /// The applet's name, which salts the password key.
    pub salt: Vec<u8>,
    /// Present when the applet is locked by a password.
    pub challenge: Option<Vec<u8>>,
    /// The HMAC the applet uses for VALIDATE, when it says (1 = SHA-1).
    pub algorithm: Option<u8>,
}

impl SelectInfo {
    /// Whether a password is needed before LIST and CALCULATE.
    pub fn locked(&self) -> bool {
        self.challenge.is_some()
    }

    /// `major.minor.patch`.
    pub fn version_string(&self) -> String {
        let [a, b, c] = self.version;
        format!("{a}.{b}.{c}")
    }
}

/// Parses the data of a successful SELECT: version, name, then optionally the challenge
/// and algorithm of a locked applet (other tags are ignored).
pub fn parse_select(data: &[u8]) -> Result<SelectInfo, YubiKeyError> {
    let tlvs = parse_tlvs(data)?;
    let version = match tlvs.first() {
        Some(&(TAG_VERSION, v)) => <[u8; 3]>::try_from(v)
            .map_err(|_| malformed(format!("applet version is {} bytes, not 3", v.len())))?,
        _ => return Err(malformed("SELECT answer does not start with the version")),
    };
    let salt = match tlvs.get(1) {
        Some(&(TAG_NAME, v)) => v.to_vec(),
        _ => {
            return Err(malformed(
                "SELECT answer has no applet name after the version",
            ))
        }
    };
    let mut info = SelectInfo {
        version,
        salt,
        challenge: None,
        algorithm: None,
    };
    for &(tag, value) in tlvs.iter().skip(2) {
        match tag {
            TAG_CHALLENGE if value.is_empty() => {
                return Err(malformed("SELECT answer has an empty challenge"))
            }
            TAG_CHALLENGE => info.challenge = Some(value.to_vec()),
            TAG_ALGORITHM => match value {
                [a] => info.algorithm = Some(*a),
                _ => return Err(malformed("SELECT algorithm is not one byte")),
            },
            _ => {}
        }
    }
    Ok(info)
}

/// Checks the key's VALIDATE answer: HMAC-SHA1 of our challenge under the same key.
pub fn verify_validate(
    data: &[u8],
    key: &PasswordKey,
    host_challenge: &[u8; 8],
) -> Result<(), YubiKeyError> {
    let tlvs = parse_tlvs(data)?;
    let response = tlvs
        .iter()
        .find(|(tag, _)| *tag == TAG_RESPONSE)
        .map(|(_, v)| *v)
        .ok_or_else(|| malformed("VALIDATE answer has no response"))?;
    let expected = key.respond(host_challenge);
    let same = response.len() == expected.len()
        && response
            .iter()
            .zip(expected.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(YubiKeyError::DeviceProofMismatch)
    }
}

/// HOTP or TOTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OathType {
    Hotp,
    Totp,
}

impl OathType {
    pub fn name(self) -> &'static str {
        match self {
            OathType::Hotp => "HOTP",
            OathType::Totp => "TOTP",
        }
    }
}

/// One credential from LIST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The name exactly as stored on the key (CALCULATE needs these bytes).
    pub id: Vec<u8>,
    /// The type (high nibble) and algorithm (low nibble) byte.
    pub type_byte: u8,
}

impl Credential {
    /// The name for messages (lossy UTF-8).
    pub fn name(&self) -> String {
        String::from_utf8_lossy(&self.id).into_owned()
    }

    /// HOTP or TOTP; `None` for a type this client does not know.
    pub fn oath_type(&self) -> Option<OathType> {
        match self.type_byte & 0xf0 {
            0x10 => Some(OathType::Hotp),
            0x20 => Some(OathType::Totp),
            _ => None,
        }
    }

    /// The HMAC hash; `None` for an algorithm this client does not know.
    pub fn algorithm(&self) -> Option<Algorithm> {
        match self.type_byte & 0x0f {
            0x01 => Some(Algorithm::Sha1),
            0x02 => Some(Algorithm::Sha256),
            0x03 => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    /// `TOTP/SHA1`-style description.
    pub fn kind(&self) -> String {
        format!(
            "{}/{}",
            self.oath_type().map_or("?", OathType::name),
            self.algorithm().map_or("?", Algorithm::name)
        )
    }

    /// The TOTP period: the decimal prefix of a name like `60/issuer:account`, as
    /// yubikey-manager stores non-default periods, else 30 seconds.
    pub fn period(&self) -> u64 {
        let digits = self.id.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || self.id.get(digits) != Some(&b'/') {
            return DEFAULT_PERIOD;
        }
        std::str::from_utf8(&self.id[..digits])
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|p| *p > 0)
            .unwrap_or(DEFAULT_PERIOD)
    }

    /// The CALCULATE challenge at `unix_time`: the time step for TOTP, none for HOTP.
    pub fn time_step(&self, unix_time: u64) -> Option<u64> {
        match self.oath_type() {
            Some(OathType::Totp) => Some(totp_step(unix_time, self.period())),
            _ => None,
        }
    }
}

/// Parses the data of a successful LIST. Every entry must be a name-list TLV holding the
/// type byte and a name; types are kept as they come (see [`Credential::oath_type`]).
pub fn parse_list(data: &[u8]) -> Result<Vec<Credential>, YubiKeyError> {
    parse_tlvs(data)?
        .into_iter()
        .map(|(tag, value)| match (tag, value) {
            (TAG_NAME_LIST, [type_byte, id @ ..]) => Ok(Credential {
                id: id.to_vec(),
                type_byte: *type_byte,
            }),
            (TAG_NAME_LIST, []) => Err(malformed("LIST entry is empty")),
            (other, _) => Err(malformed(format!("LIST answer has tag {other:#04x}"))),
        })
        .collect()
}

/// The credential openconnect would use: the one named `wanted` (exact bytes), or with no
/// name the first HOTP or TOTP credential.
pub fn choose_credential<'a>(
    credentials: &'a [Credential],
    wanted: Option<&str>,
) -> Result<&'a Credential, YubiKeyError> {
    match wanted {
        Some(w) => {
            let found = credentials
                .iter()
                .find(|c| c.id == w.as_bytes())
                .ok_or_else(|| YubiKeyError::CredentialNotFound {
                    wanted: w.to_string(),
                    available: credentials.iter().map(Credential::name).collect(),
                })?;
            match found.oath_type() {
                Some(_) => Ok(found),
                None => Err(YubiKeyError::UnsupportedCredential {
                    name: found.name(),
                    type_byte: found.type_byte,
                }),
            }
        }
        None => credentials
            .iter()
            .find(|c| c.oath_type().is_some())
            .ok_or(YubiKeyError::NoCredentials),
    }
}

/// The code in a truncated answer (digit count, then four big-endian bytes).
fn code_from_truncated(value: &[u8]) -> Result<String, YubiKeyError> {
    let [digits, a, b, c, d] = value else {
        return Err(malformed(format!(
            "truncated response is {} bytes, not 5",
            value.len()
        )));
    };
    if !CODE_DIGITS.contains(digits) {
        return Err(malformed(format!("code has {digits} digits")));
    }
    let number = u32::from_be_bytes([*a, *b, *c, *d]) & 0x7fff_ffff;
    let code = number % 10u32.pow(u32::from(*digits));
    Ok(format!("{code:0width$}", width = usize::from(*digits)))
}

/// Parses the data of a successful CALCULATE (truncated): the code as decimal digits.
pub fn parse_calculate(data: &[u8]) -> Result<String, YubiKeyError> {
    match parse_tlvs(data)?.as_slice() {
        [(TAG_TRUNCATED, value)] => code_from_truncated(value),
        _ => Err(malformed(
            "CALCULATE answer is not a single truncated response",
        )),
    }
}

/// What CALCULATE ALL says about one credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalculatedEntry {
    /// A TOTP code for the 30-second step that was sent.
    Code(String),
    /// HOTP: not calculated (that would advance the counter).
    Hotp,
    /// Needs a touch: not calculated.
    Touch,
}

/// Parses the data of a successful CALCULATE ALL (truncated): name, then its result.
pub fn parse_calculate_all(data: &[u8]) -> Result<Vec<(Vec<u8>, CalculatedEntry)>, YubiKeyError> {
    let tlvs = parse_tlvs(data)?;
    let mut out = Vec::with_capacity(tlvs.len() / 2);
    let mut it = tlvs.into_iter();
    while let Some((tag, name)) = it.next() {
        if tag != TAG_NAME {
            return Err(malformed(format!(
                "CALCULATE ALL answer has tag {tag:#04x} where a name belongs"
            )));
        }
        let entry = match it.next() {
            Some((TAG_TRUNCATED, v)) => CalculatedEntry::Code(code_from_truncated(v)?),
            Some((TAG_HOTP, _)) => CalculatedEntry::Hotp,
            Some((TAG_TOUCH, _)) => CalculatedEntry::Touch,
            Some((other, _)) => {
                return Err(malformed(format!(
                    "CALCULATE ALL answer has result tag {other:#04x}"
                )))
            }
            None => return Err(malformed("CALCULATE ALL answer ends after a name")),
        };
        out.push((name.to_vec(), entry));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// The whole exchange

/// What the exchange is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// Check the applet and find the credential, like openconnect does when the token mode
    /// is set; calculates nothing (an HOTP counter is left alone).
    Probe,
    /// Produce the code for `unix_time` (ignored for HOTP).
    Code { unix_time: u64 },
}

/// What the caller does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Transmit this APDU and hand the answer to [`OathExchange::handle_response`].
    Transmit(Vec<u8>),
    /// As `Transmit`, but the key will wait for a touch before it answers (up to about
    /// 15 s): tell the user to touch it.
    TransmitAwaitingTouch(Vec<u8>),
    /// The applet is locked: call [`OathExchange::provide_password`]. `wrong` is set when a
    /// password given earlier in this exchange was refused.
    NeedPassword { wrong: bool },
    /// Finished.
    Done(Outcome),
}

/// The result of a finished exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Applet version.
    pub version: [u8; 3],
    /// The credential used.
    pub credential: Credential,
    /// The code, for [`Goal::Code`].
    pub code: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Select,
    NeedPassword,
    Validate,
    List,
    CalculateAll,
    Calculate,
    Done,
    Failed,
}

/// openconnect's YubiKey sequence as a sans-IO state machine. Time and our VALIDATE
/// challenge (which should be random) come in from the caller.
#[derive(Debug)]
pub struct OathExchange {
    wanted: Option<String>,
    goal: Goal,
    host_challenge: [u8; 8],
    phase: Phase,
    chain: ResponseChain,
    select: Option<SelectInfo>,
    key: Option<PasswordKey>,
    fallback_key: Option<PasswordKey>,
    key_validated: bool,
    password_given: bool,
    reselect_before_validate: bool,
    credentials: Vec<Credential>,
    chosen: Option<Credential>,
}

impl OathExchange {
    /// `wanted` is the credential name from `--token-secret` (empty counts as none).
    pub fn new(wanted: Option<&str>, goal: Goal, host_challenge: [u8; 8]) -> Self {
        Self {
            wanted: wanted.filter(|w| !w.is_empty()).map(str::to_string),
            goal,
            host_challenge,
            phase: Phase::Idle,
            chain: ResponseChain::new(),
            select: None,
            key: None,
            fallback_key: None,
            key_validated: false,
            password_given: false,
            reselect_before_validate: false,
            credentials: Vec::new(),
            chosen: None,
        }
    }

    /// Tries `key` (one that unlocked this applet before) before asking for a password.
    pub fn with_key(mut self, key: PasswordKey) -> Self {
        self.key = Some(key);
        self
    }

    /// The key that unlocked the applet in this exchange, to remember for the next one.
    pub fn validated_key(&self) -> Option<&PasswordKey> {
        self.key.as_ref().filter(|_| self.key_validated)
    }

    /// The SELECT answer, once it came.
    pub fn select_info(&self) -> Option<&SelectInfo> {
        self.select.as_ref()
    }

    /// The credentials LIST returned, once it came.
    pub fn credentials(&self) -> &[Credential] {
        &self.credentials
    }

    /// The first action: SELECT.
    pub fn start(&mut self) -> Result<Action, YubiKeyError> {
        if self.phase != Phase::Idle {
            return Err(YubiKeyError::OutOfOrder("start after the exchange began"));
        }
        Ok(self.send(Phase::Select, select_command()))
    }

    fn send(&mut self, phase: Phase, apdu: Vec<u8>) -> Action {
        self.phase = phase;
        self.chain = ResponseChain::new();
        Action::Transmit(apdu)
    }

    /// Takes the card's answer to the last APDU transmitted.
    pub fn handle_response(&mut self, raw: &[u8]) -> Result<Action, YubiKeyError> {
        let command = match self.phase {
            Phase::Select => "SELECT",
            Phase::Validate => "VALIDATE",
            Phase::List => "LIST",
            Phase::CalculateAll => "CALCULATE ALL",
            Phase::Calculate => "CALCULATE",
            Phase::Idle | Phase::NeedPassword | Phase::Done | Phase::Failed => {
                return Err(YubiKeyError::OutOfOrder(
                    "no command is waiting for an answer",
                ))
            }
        };
        let result = match self.chain.push(command, raw) {
            Ok(Chained::More(apdu)) => return Ok(Action::Transmit(apdu)),
            Ok(Chained::Complete { data, status }) => self.on_complete(&data, status),
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.phase = Phase::Failed;
        }
        result
    }

    /// The password for a locked applet, after [`Action::NeedPassword`].
    pub fn provide_password(&mut self, password: &str) -> Result<Action, YubiKeyError> {
        if self.phase != Phase::NeedPassword {
            return Err(YubiKeyError::OutOfOrder(
                "password given when none was asked for",
            ));
        }
        let salt = self
            .select
            .as_ref()
            .map(|s| s.salt.clone())
            .unwrap_or_default();
        self.key = Some(PasswordKey::derive(password, &salt));
        self.fallback_key = PasswordKey::truncated_char_variant(password, &salt);
        self.password_given = true;
        self.next_after_key()
    }

    /// VALIDATE with the current key, or SELECT first when the applet's challenge is stale
    /// (after a refused VALIDATE).
    fn next_after_key(&mut self) -> Result<Action, YubiKeyError> {
        if self.reselect_before_validate {
            self.reselect_before_validate = false;
            return Ok(self.send(Phase::Select, select_command()));
        }
        let challenge = self
            .select
            .as_ref()
            .and_then(|s| s.challenge.clone())
            .ok_or(YubiKeyError::OutOfOrder("VALIDATE without a challenge"))?;
        let key = self
            .key
            .as_ref()
            .ok_or(YubiKeyError::OutOfOrder("VALIDATE without a key"))?;
        let apdu = validate_command(key, &challenge, &self.host_challenge);
        Ok(self.send(Phase::Validate, apdu))
    }

    fn on_complete(&mut self, data: &[u8], status: u16) -> Result<Action, YubiKeyError> {
        match self.phase {
            Phase::Select => self.on_select(data, status),
            Phase::Validate => self.on_validate(data, status),
            Phase::List => self.on_list(data, status),
            Phase::CalculateAll => self.on_calculate_all(data, status),
            Phase::Calculate => self.on_calculate(data, status),
            Phase::Idle | Phase::NeedPassword | Phase::Done | Phase::Failed => {
                Err(YubiKeyError::OutOfOrder("answer in the wrong phase"))
            }
        }
    }

    fn on_select(&mut self, data: &[u8], status: u16) -> Result<Action, YubiKeyError> {
        if status != status::OK {
            return Err(YubiKeyError::NoApplet { status });
        }
        let info = parse_select(data)?;
        let locked = info.locked();
        self.select = Some(info);
        if !locked {
            return Ok(self.send(Phase::List, list_command()));
        }
        if self.key.is_some() {
            return self.next_after_key();
        }
        self.phase = Phase::NeedPassword;
        Ok(Action::NeedPassword {
            wrong: self.password_given,
        })
    }

    fn on_validate(&mut self, data: &[u8], status: u16) -> Result<Action, YubiKeyError> {
        match status {
            status::OK => {
                let key = self
                    .key
                    .as_ref()
                    .ok_or(YubiKeyError::OutOfOrder("VALIDATE answer without a key"))?;
                verify_validate(data, key, &self.host_challenge)?;
                self.key_validated = true;
                self.fallback_key = None;
                Ok(self.send(Phase::List, list_command()))
            }
            status::WRONG_SYNTAX | status::NO_SUCH_OBJECT => {
                // The applet wants a fresh SELECT (new challenge) before the next try.
                self.reselect_before_validate = true;
                self.key = self.fallback_key.take();
                if self.key.is_some() {
                    return self.next_after_key();
                }
                self.phase = Phase::NeedPassword;
                Ok(Action::NeedPassword {
                    wrong: self.password_given,
                })
            }
            status => Err(YubiKeyError::Status {
                command: "VALIDATE",
                status,
            }),
        }
    }

    fn on_list(&mut self, data: &[u8], status: u16) -> Result<Action, YubiKeyError> {
        match status {
            status::OK => {}
            status::AUTH_REQUIRED => return Err(YubiKeyError::PasswordRequired),
            status => {
                return Err(YubiKeyError::Status {
                    command: "LIST",
                    status,
                })
            }
        }
        self.credentials = parse_list(data)?;
        let chosen = choose_credential(&self.credentials, self.wanted.as_deref())?.clone();
        match self.goal {
            Goal::Probe => {
                self.phase = Phase::Done;
                Ok(Action::Done(self.outcome(chosen, None)))
            }
            Goal::Code { unix_time } => {
                self.chosen = Some(chosen);
                let step = totp_step(unix_time, DEFAULT_PERIOD);
                Ok(self.send(Phase::CalculateAll, calculate_all_command(step)))
            }
        }
    }

    fn on_calculate_all(&mut self, data: &[u8], status: u16) -> Result<Action, YubiKeyError> {
        let chosen = self
            .chosen
            .clone()
            .ok_or(YubiKeyError::OutOfOrder("no credential chosen"))?;
        // Only a hint for the touch prompt: an applet without CALCULATE ALL, or an answer
        // we cannot read, just means no prompt.
        let touch = status == status::OK
            && parse_calculate_all(data).is_ok_and(|entries| {
                entries
                    .iter()
                    .any(|(id, e)| *id == chosen.id && *e == CalculatedEntry::Touch)
            });
        let unix_time = match self.goal {
            Goal::Code { unix_time } => unix_time,
            Goal::Probe => 0,
        };
        let apdu = calculate_command(&chosen.id, chosen.time_step(unix_time))?;
        let action = self.send(Phase::Calculate, apdu);
        Ok(match action {
            Action::Transmit(apdu) if touch => Action::TransmitAwaitingTouch(apdu),
            other => other,
        })
    }

    fn on_calculate(&mut self, data: &[u8], status: u16) -> Result<Action, YubiKeyError> {
        let chosen = self
            .chosen
            .take()
            .ok_or(YubiKeyError::OutOfOrder("no credential chosen"))?;
        match status {
            status::OK => {
                let code = parse_calculate(data)?;
                self.phase = Phase::Done;
                Ok(Action::Done(self.outcome(chosen, Some(code))))
            }
            status::AUTH_REQUIRED => Err(YubiKeyError::TouchTimeout {
                name: chosen.name(),
            }),
            status::NO_SUCH_OBJECT => Err(YubiKeyError::CredentialNotFound {
                wanted: chosen.name(),
                available: self.credentials.iter().map(Credential::name).collect(),
            }),
            status => Err(YubiKeyError::Status {
                command: "CALCULATE",
                status,
            }),
        }
    }

    fn outcome(&self, credential: Credential, code: Option<String>) -> Outcome {
        Outcome {
            version: self.select.as_ref().map_or([0; 3], |s| s.version),
            credential,
            code,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::oath::{hotp, totp};
    use hmac::{Hmac, KeyInit, Mac};
    use proptest::prelude::*;

    const SALT: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
    const DEVICE_CHALLENGE: [u8; 8] = [0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7];
    const HOST: [u8; 8] = [0xa5; 8];
    const SECRET: &[u8] = b"12345678901234567890";

    fn ok(data: &[u8]) -> Vec<u8> {
        let mut v = data.to_vec();
        v.extend_from_slice(&[0x90, 0x00]);
        v
    }

    fn sw(status: u16) -> Vec<u8> {
        status.to_be_bytes().to_vec()
    }

    fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        push_tlv(&mut v, tag, value);
        v
    }

    fn select_answer(challenge: Option<&[u8]>) -> Vec<u8> {
        let mut d = tlv(TAG_VERSION, &[5, 4, 3]);
        d.extend(tlv(TAG_NAME, &SALT));
        if let Some(c) = challenge {
            d.extend(tlv(TAG_CHALLENGE, c));
            d.extend(tlv(TAG_ALGORITHM, &[1]));
        }
        ok(&d)
    }

    fn list_entry(type_byte: u8, name: &str) -> Vec<u8> {
        let mut v = vec![type_byte];
        v.extend_from_slice(name.as_bytes());
        tlv(TAG_NAME_LIST, &v)
    }

    /// What a key holding SECRET answers to CALCULATE (truncated) for `counter`: RFC 4226
    /// dynamic truncation done here independently of `oath::hotp`.
    fn truncated_answer(counter: u64, digits: u8) -> Vec<u8> {
        let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(SECRET).unwrap();
        mac.update(&counter.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        let off = usize::from(digest[19] & 0x0f);
        let mut v = vec![digits];
        v.extend_from_slice(&digest[off..off + 4]);
        // The key masks the top bit itself; leave it set to check that we mask too.
        v[1] |= 0x80;
        ok(&tlv(TAG_TRUNCATED, &v))
    }

    fn expect_transmit(a: Action) -> Vec<u8> {
        match a {
            Action::Transmit(apdu) => apdu,
            other => panic!("expected Transmit, got {other:?}"),
        }
    }

    fn expect_done(a: Action) -> Outcome {
        match a {
            Action::Done(o) => o,
            other => panic!("expected Done, got {other:?}"),
        }
    }

    #[test]
    fn fixed_commands() {
        assert_eq!(
            select_command(),
            [0x00, 0xa4, 0x04, 0x00, 0x07, 0xa0, 0x00, 0x00, 0x05, 0x27, 0x21, 0x01]
        );
        assert_eq!(list_command(), [0x00, 0xa1, 0x00, 0x00]);
        assert_eq!(send_remaining_command(), [0x00, 0xa5, 0x00, 0x00]);
        let all = calculate_all_command(0x0102);
        assert_eq!(
            all,
            [0x00, 0xa4, 0x00, 0x01, 0x0a, 0x74, 0x08, 0, 0, 0, 0, 0, 0, 0x01, 0x02]
        );
    }

    #[test]
    fn calculate_command_layout() {
        let totp = calculate_command(b"vpn", Some(0x0102_0304_0506_0708)).unwrap();
        assert_eq!(
            totp,
            [
                0x00, 0xa2, 0x00, 0x01, 0x0f, 0x71, 0x03, b'v', b'p', b'n', 0x74, 0x08, 1, 2, 3, 4,
                5, 6, 7, 8
            ]
        );
        let hotp = calculate_command(b"vpn", None).unwrap();
        assert_eq!(
            hotp,
            [0x00, 0xa2, 0x00, 0x01, 0x07, 0x71, 0x03, b'v', b'p', b'n', 0x74, 0x00]
        );
        // A long name takes the 0x81 length form and still fits.
        let long = vec![b'x'; 200];
        let apdu = calculate_command(&long, None).unwrap();
        assert_eq!(&apdu[4..8], &[205, 0x71, 0x81, 200]);
        assert!(matches!(
            calculate_command(&[b'x'; 250], Some(1)),
            Err(YubiKeyError::NameTooLong(250))
        ));
    }

    #[test]
    fn unlocked_totp_code_matches_rfc_totp() {
        let now = 1_111_111_109;
        let mut ex = OathExchange::new(Some("Work VPN"), Goal::Code { unix_time: now }, HOST);
        assert_eq!(expect_transmit(ex.start().unwrap()), select_command());
        let a = ex.handle_response(&select_answer(None)).unwrap();
        assert_eq!(expect_transmit(a), list_command());
        let mut list = list_entry(0x21, "other");
        list.extend(list_entry(0x21, "Work VPN"));
        let a = ex.handle_response(&ok(&list)).unwrap();
        let step = now / 30;
        assert_eq!(expect_transmit(a), calculate_all_command(step));
        let mut all = tlv(TAG_NAME, b"other");
        all.extend(tlv(TAG_TRUNCATED, &[6, 0, 0, 0, 1]));
        all.extend(tlv(TAG_NAME, b"Work VPN"));
        all.extend(tlv(TAG_TRUNCATED, &[8, 0, 0, 0, 2]));
        let a = ex.handle_response(&ok(&all)).unwrap();
        assert_eq!(
            expect_transmit(a),
            calculate_command(b"Work VPN", Some(step)).unwrap()
        );
        let out = expect_done(ex.handle_response(&truncated_answer(step, 8)).unwrap());
        assert_eq!(out.code.as_deref(), Some("07081804"));
        assert_eq!(
            out.code.as_deref(),
            Some(totp(Algorithm::Sha1, SECRET, now, 30, 8).as_str())
        );
        assert_eq!(out.credential.name(), "Work VPN");
        assert_eq!(out.credential.kind(), "TOTP/SHA1");
        assert_eq!(out.version, [5, 4, 3]);
        assert!(ex.validated_key().is_none());
    }

    #[test]
    fn hotp_sends_empty_challenge_and_uses_the_digits_byte() {
        let mut ex = OathExchange::new(None, Goal::Code { unix_time: 99 }, HOST);
        ex.start().unwrap();
        ex.handle_response(&select_answer(None)).unwrap();
        // The first usable credential is taken; an unknown type is skipped.
        let mut list = list_entry(0x31, "weird");
        list.extend(list_entry(0x11, "counter"));
        list.extend(list_entry(0x21, "later"));
        ex.handle_response(&ok(&list)).unwrap();
        let mut all = tlv(TAG_NAME, b"counter");
        all.extend(tlv(TAG_HOTP, &[6]));
        let a = ex.handle_response(&ok(&all)).unwrap();
        assert_eq!(
            expect_transmit(a),
            calculate_command(b"counter", None).unwrap()
        );
        for (digits, expected) in [(6u8, "755224"), (7, "4755224"), (8, "84755224")] {
            let mut ex2 = OathExchange::new(Some("counter"), Goal::Code { unix_time: 0 }, HOST);
            ex2.start().unwrap();
            ex2.handle_response(&select_answer(None)).unwrap();
            ex2.handle_response(&ok(&list_entry(0x11, "counter")))
                .unwrap();
            ex2.handle_response(&sw(status::INS_NOT_SUPPORTED)).unwrap();
            let out = expect_done(ex2.handle_response(&truncated_answer(0, digits)).unwrap());
            assert_eq!(out.code.as_deref(), Some(expected));
            assert_eq!(
                out.code.unwrap(),
                hotp(Algorithm::Sha1, SECRET, 0, u32::from(digits))
            );
        }
        let out = expect_done(ex.handle_response(&truncated_answer(1, 6)).unwrap());
        assert_eq!(out.code.unwrap(), hotp(Algorithm::Sha1, SECRET, 1, 6));
    }

    #[test]
    fn period_prefix_sets_the_time_step() {
        let c = |name: &str| Credential {
            id: name.as_bytes().to_vec(),
            type_byte: 0x21,
        };
        assert_eq!(c("60/Issuer:me").period(), 60);
        assert_eq!(c("15/x").period(), 15);
        assert_eq!(c("Issuer:me").period(), 30);
        assert_eq!(c("0/x").period(), 30);
        assert_eq!(c("60x/y").period(), 30);
        assert_eq!(c("/x").period(), 30);
        assert_eq!(c("99999999999999999999999/x").period(), 30);
        assert_eq!(c("60/x").time_step(1200), Some(20));
        assert_eq!(c("x").time_step(1200), Some(40));
        let h = Credential {
            id: b"60/x".to_vec(),
            type_byte: 0x11,
        };
        assert_eq!(h.time_step(1200), None);

        let mut ex = OathExchange::new(Some("60/x"), Goal::Code { unix_time: 1200 }, HOST);
        ex.start().unwrap();
        ex.handle_response(&select_answer(None)).unwrap();
        ex.handle_response(&ok(&list_entry(0x22, "60/x"))).unwrap();
        let a = ex.handle_response(&sw(status::INS_NOT_SUPPORTED)).unwrap();
        assert_eq!(
            expect_transmit(a),
            calculate_command(b"60/x", Some(20)).unwrap()
        );
    }

    #[test]
    fn derived_keys_match_pbkdf2_reference() {
        // Reference values from Python's hashlib.pbkdf2_hmac('sha1', pw, salt, 1000, 16).
        let k = PasswordKey::derive("password", &SALT);
        assert_eq!(k.0, hex("ed1b5a43d3a86504dd13c9da7606bd35"));
        assert!(PasswordKey::truncated_char_variant("password", &SALT).is_none());
        let k = PasswordKey::derive("pässwörd", &SALT);
        assert_eq!(k.0, hex("48202fb796ac715dd26e3642dbecdb1a"));
        let t = PasswordKey::truncated_char_variant("pässwörd", &SALT).unwrap();
        assert_eq!(t.0, hex("6e21830dafd253ba9c3f05bbc54f02af"));
        assert_eq!(format!("{k:?}"), "PasswordKey(..)");
    }

    fn hex(s: &str) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    fn device_proof(key: &PasswordKey) -> Vec<u8> {
        ok(&tlv(TAG_RESPONSE, &key.respond(&HOST)))
    }

    #[test]
    fn locked_applet_asks_for_password_and_validates_both_ways() {
        let mut ex = OathExchange::new(None, Goal::Probe, HOST);
        ex.start().unwrap();
        let a = ex
            .handle_response(&select_answer(Some(&DEVICE_CHALLENGE)))
            .unwrap();
        assert_eq!(a, Action::NeedPassword { wrong: false });
        let apdu = expect_transmit(ex.provide_password("password").unwrap());
        let key = PasswordKey::derive("password", &SALT);
        let mut expected = vec![0x00, 0xa3, 0x00, 0x00, 32, 0x75, 20];
        expected.extend_from_slice(&key.respond(&DEVICE_CHALLENGE));
        expected.extend_from_slice(&[0x74, 8]);
        expected.extend_from_slice(&HOST);
        assert_eq!(apdu, expected);
        assert!(ex.validated_key().is_none());
        let a = ex.handle_response(&device_proof(&key)).unwrap();
        assert_eq!(expect_transmit(a), list_command());
        assert_eq!(ex.validated_key(), Some(&key));
        let out = expect_done(ex.handle_response(&ok(&list_entry(0x11, "h"))).unwrap());
        assert_eq!(out.code, None);
        assert_eq!(out.credential.kind(), "HOTP/SHA1");
    }

    #[test]
    fn device_with_wrong_proof_is_refused() {
        let mut ex = OathExchange::new(None, Goal::Probe, HOST);
        ex.start().unwrap();
        ex.handle_response(&select_answer(Some(&DEVICE_CHALLENGE)))
            .unwrap();
        ex.provide_password("password").unwrap();
        let other = PasswordKey::derive("other", &SALT);
        let err = ex.handle_response(&device_proof(&other)).unwrap_err();
        assert!(matches!(err, YubiKeyError::DeviceProofMismatch), "{err}");
        assert!(ex.validated_key().is_none());
        // Nothing more is accepted after a failure.
        assert!(matches!(
            ex.handle_response(&ok(&[])),
            Err(YubiKeyError::OutOfOrder(_))
        ));
    }

    #[test]
    fn wrong_password_reselects_and_asks_again() {
        let mut ex = OathExchange::new(None, Goal::Probe, HOST);
        ex.start().unwrap();
        ex.handle_response(&select_answer(Some(&DEVICE_CHALLENGE)))
            .unwrap();
        ex.provide_password("wrong").unwrap();
        let a = ex.handle_response(&sw(status::WRONG_SYNTAX)).unwrap();
        assert_eq!(a, Action::NeedPassword { wrong: true });
        // The next password starts with a fresh SELECT (new challenge).
        let a = ex.provide_password("password").unwrap();
        assert_eq!(expect_transmit(a), select_command());
        let fresh = [9u8; 8];
        let apdu = expect_transmit(ex.handle_response(&select_answer(Some(&fresh))).unwrap());
        let key = PasswordKey::derive("password", &SALT);
        assert_eq!(&apdu[7..27], &key.respond(&fresh));
        let a = ex.handle_response(&device_proof(&key)).unwrap();
        assert_eq!(expect_transmit(a), list_command());
    }

    #[test]
    fn non_ascii_password_falls_back_to_truncated_chars() {
        let mut ex = OathExchange::new(None, Goal::Probe, HOST);
        ex.start().unwrap();
        ex.handle_response(&select_answer(Some(&DEVICE_CHALLENGE)))
            .unwrap();
        ex.provide_password("pässwörd").unwrap();
        // The UTF-8 key is refused: reselect, then try the truncated-char key.
        let a = ex.handle_response(&sw(status::WRONG_SYNTAX)).unwrap();
        assert_eq!(expect_transmit(a), select_command());
        let apdu = expect_transmit(
            ex.handle_response(&select_answer(Some(&DEVICE_CHALLENGE)))
                .unwrap(),
        );
        let legacy = PasswordKey::truncated_char_variant("pässwörd", &SALT).unwrap();
        assert_eq!(&apdu[7..27], &legacy.respond(&DEVICE_CHALLENGE));
        let a = ex.handle_response(&device_proof(&legacy)).unwrap();
        assert_eq!(expect_transmit(a), list_command());
        assert_eq!(ex.validated_key(), Some(&legacy));
    }

    #[test]
    fn remembered_key_is_tried_first() {
        let key = PasswordKey::derive("password", &SALT);
        let mut ex = OathExchange::new(None, Goal::Probe, HOST).with_key(key.clone());
        ex.start().unwrap();
        let a = ex
            .handle_response(&select_answer(Some(&DEVICE_CHALLENGE)))
            .unwrap();
        assert_eq!(&expect_transmit(a)[..2], &[0x00, 0xa3]);
        // If it no longer works, the user is asked, without "wrong" (they typed nothing).
        let a = ex.handle_response(&sw(status::WRONG_SYNTAX)).unwrap();
        assert_eq!(a, Action::NeedPassword { wrong: false });
    }

    #[test]
    fn chained_list_is_joined_with_send_remaining() {
        let mut ex = OathExchange::new(Some("second"), Goal::Probe, HOST);
        ex.start().unwrap();
        ex.handle_response(&select_answer(None)).unwrap();
        let mut body = list_entry(0x21, "first");
        body.extend(list_entry(0x21, "second"));
        // Split in the middle of a TLV.
        let (a, b) = body.split_at(4);
        let mut part1 = a.to_vec();
        part1.extend_from_slice(&[0x61, b.len() as u8]);
        let next = ex.handle_response(&part1).unwrap();
        assert_eq!(expect_transmit(next), send_remaining_command());
        let out = expect_done(ex.handle_response(&ok(b)).unwrap());
        assert_eq!(out.credential.name(), "second");
        assert_eq!(ex.credentials().len(), 2);
    }

    #[test]
    fn missing_credential_lists_what_is_there() {
        let mut ex = OathExchange::new(Some("vpn"), Goal::Probe, HOST);
        ex.start().unwrap();
        ex.handle_response(&select_answer(None)).unwrap();
        let mut list = list_entry(0x21, "mail");
        list.extend(list_entry(0x12, "bank"));
        let err = ex.handle_response(&ok(&list)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "token 'vpn' not found on the YubiKey (it has 'mail', 'bank')"
        );
        let err = choose_credential(&[], Some("vpn")).unwrap_err();
        assert!(
            err.to_string().ends_with("(it has no credentials)"),
            "{err}"
        );
        assert!(matches!(
            choose_credential(&[], None),
            Err(YubiKeyError::NoCredentials)
        ));
        let weird = [Credential {
            id: b"w".to_vec(),
            type_byte: 0x31,
        }];
        assert!(matches!(
            choose_credential(&weird, Some("w")),
            Err(YubiKeyError::UnsupportedCredential {
                type_byte: 0x31,
                ..
            })
        ));
        assert!(matches!(
            choose_credential(&weird, None),
            Err(YubiKeyError::NoCredentials)
        ));
    }

    #[test]
    fn touch_credential_is_flagged_and_timeout_reported() {
        let mut ex = OathExchange::new(None, Goal::Code { unix_time: 3000 }, HOST);
        ex.start().unwrap();
        ex.handle_response(&select_answer(None)).unwrap();
        ex.handle_response(&ok(&list_entry(0x21, "touchy")))
            .unwrap();
        let mut all = tlv(TAG_NAME, b"touchy");
        all.extend(tlv(TAG_TOUCH, &[6]));
        let a = ex.handle_response(&ok(&all)).unwrap();
        assert_eq!(
            a,
            Action::TransmitAwaitingTouch(calculate_command(b"touchy", Some(100)).unwrap())
        );
        let err = ex.handle_response(&sw(status::AUTH_REQUIRED)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "YubiKey credential 'touchy' needs a touch of the key, and none came in time"
        );
    }

    #[test]
    fn error_statuses() {
        // No applet.
        let mut ex = OathExchange::new(None, Goal::Probe, HOST);
        ex.start().unwrap();
        let err = ex.handle_response(&sw(status::NOT_FOUND)).unwrap_err();
        assert!(matches!(err, YubiKeyError::NoApplet { status: 0x6a82 }));
        assert!(err.to_string().contains("6A82"), "{err}");

        // Unknown status word on LIST.
        let mut ex = OathExchange::new(None, Goal::Probe, HOST);
        ex.start().unwrap();
        ex.handle_response(&select_answer(None)).unwrap();
        let err = ex.handle_response(&sw(0x6f00)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "YubiKey answered LIST with status 6F00 (unknown status)"
        );

        // LIST refused for lack of authentication.
        let mut ex = OathExchange::new(None, Goal::Probe, HOST);
        ex.start().unwrap();
        ex.handle_response(&select_answer(None)).unwrap();
        let err = ex.handle_response(&sw(status::AUTH_REQUIRED)).unwrap_err();
        assert!(matches!(err, YubiKeyError::PasswordRequired));

        // VALIDATE with some other failure.
        let mut ex = OathExchange::new(None, Goal::Probe, HOST);
        ex.start().unwrap();
        ex.handle_response(&select_answer(Some(&DEVICE_CHALLENGE)))
            .unwrap();
        ex.provide_password("x").unwrap();
        let err = ex.handle_response(&sw(status::GENERIC_ERROR)).unwrap_err();
        assert!(matches!(
            err,
            YubiKeyError::Status {
                command: "VALIDATE",
                status: 0x6581
            }
        ));

        // CALCULATE of a credential deleted meanwhile.
        let mut ex = OathExchange::new(None, Goal::Code { unix_time: 0 }, HOST);
        ex.start().unwrap();
        ex.handle_response(&select_answer(None)).unwrap();
        ex.handle_response(&ok(&list_entry(0x21, "gone"))).unwrap();
        ex.handle_response(&ok(&[])).unwrap();
        let err = ex.handle_response(&sw(status::NO_SUCH_OBJECT)).unwrap_err();
        assert!(matches!(err, YubiKeyError::CredentialNotFound { .. }));
    }

    #[test]
    fn short_and_malformed_answers() {
        let mut ex = OathExchange::new(None, Goal::Probe, HOST);
        ex.start().unwrap();
        let err = ex.handle_response(&[0x90]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "YubiKey answer to SELECT is 1 byte(s), too short to hold a status word"
        );

        // A TLV claiming more than there is.
        let mut ex = OathExchange::new(None, Goal::Probe, HOST);
        ex.start().unwrap();
        ex.handle_response(&select_answer(None)).unwrap();
        let err = ex.handle_response(&ok(&[0x72, 0x05, 0x21])).unwrap_err();
        assert!(matches!(err, YubiKeyError::Malformed(_)), "{err}");

        assert!(parse_select(&[]).is_err());
        assert!(parse_select(&tlv(TAG_VERSION, &[1, 2])).is_err());
        let mut no_name = tlv(TAG_VERSION, &[1, 2, 3]);
        no_name.extend(tlv(TAG_CHALLENGE, &[1]));
        assert!(parse_select(&no_name).is_err());
        assert!(parse_list(&tlv(TAG_NAME, b"x")).is_err());
        assert!(parse_list(&tlv(TAG_NAME_LIST, b"")).is_err());
        assert!(parse_list(&[]).unwrap().is_empty());
        assert!(parse_calculate(&tlv(TAG_TRUNCATED, &[6, 0, 0, 1])).is_err());
        assert!(parse_calculate(&tlv(TAG_TRUNCATED, &[9, 0, 0, 0, 1])).is_err());
        assert!(parse_calculate(&tlv(TAG_TRUNCATED, &[5, 0, 0, 0, 1])).is_err());
        assert!(parse_calculate(&tlv(TAG_RESPONSE, &[6, 0, 0, 0, 1])).is_err());
        assert_eq!(
            parse_calculate(&tlv(TAG_TRUNCATED, &[6, 0xff, 0xff, 0xff, 0xff])).unwrap(),
            format!("{:06}", 0x7fff_ffffu32 % 1_000_000)
        );
        assert_eq!(
            parse_calculate(&tlv(TAG_TRUNCATED, &[7, 0, 0, 0, 42])).unwrap(),
            "0000042"
        );
        assert!(verify_validate(&[], &PasswordKey::from_bytes([0; 16]), &HOST).is_err());
        assert!(parse_calculate_all(&tlv(TAG_NAME, b"x")).is_err());
        assert!(parse_calculate_all(&tlv(TAG_TRUNCATED, &[6, 0, 0, 0, 1])).is_err());
        let mut bad = tlv(TAG_NAME, b"x");
        bad.extend(tlv(0x70, &[]));
        assert!(parse_calculate_all(&bad).is_err());
        // Indefinite and over-long length forms.
        assert!(split_tlv(&[0x71, 0x80]).is_err());
        assert!(split_tlv(&[0x71, 0x83, 0, 0, 0]).is_err());
        assert!(split_tlv(&[0x71, 0x81]).is_err());
        assert!(split_tlv(&[0x71, 0x82, 0]).is_err());
        assert!(split_tlv(&[0x71]).is_err());
        // Long forms that are fine.
        let (tag, v, rest) = split_tlv(&[0x71, 0x81, 2, 7, 8, 9]).unwrap();
        assert_eq!((tag, v, rest), (0x71, &[7u8, 8][..], &[9u8][..]));
        let (_, v, _) = split_tlv(&[0x71, 0x82, 0, 1, 7]).unwrap();
        assert_eq!(v, [7]);
    }

    #[test]
    fn select_info_fields() {
        let answer = select_answer(Some(&[1, 2]));
        let (data, status) = split_status("SELECT", &answer).unwrap();
        assert_eq!(status, status::OK);
        let info = parse_select(data).unwrap();
        assert!(info.locked());
        assert_eq!(info.version_string(), "5.4.3");
        assert_eq!(info.salt, SALT);
        assert_eq!(info.algorithm, Some(1));
        assert_eq!(info.challenge.as_deref(), Some(&[1u8, 2][..]));
    }

    #[test]
    fn calculate_all_entries() {
        let mut d = tlv(TAG_NAME, b"a");
        d.extend(tlv(TAG_TRUNCATED, &[6, 0, 0, 0, 7]));
        d.extend(tlv(TAG_NAME, b"b"));
        d.extend(tlv(TAG_HOTP, &[6]));
        d.extend(tlv(TAG_NAME, b"c"));
        d.extend(tlv(TAG_TOUCH, &[8]));
        assert_eq!(
            parse_calculate_all(&d).unwrap(),
            vec![
                (b"a".to_vec(), CalculatedEntry::Code("000007".into())),
                (b"b".to_vec(), CalculatedEntry::Hotp),
                (b"c".to_vec(), CalculatedEntry::Touch),
            ]
        );
    }

    #[test]
    fn out_of_order_use() {
        let mut ex = OathExchange::new(None, Goal::Probe, HOST);
        assert!(matches!(
            ex.handle_response(&ok(&[])),
            Err(YubiKeyError::OutOfOrder(_))
        ));
        assert!(matches!(
            ex.provide_password("x"),
            Err(YubiKeyError::OutOfOrder(_))
        ));
        ex.start().unwrap();
        assert!(matches!(ex.start(), Err(YubiKeyError::OutOfOrder(_))));
    }

    #[test]
    fn oversized_chain_is_refused() {
        let mut chain = ResponseChain::new();
        let mut part = vec![0u8; 256];
        part.extend_from_slice(&[0x61, 0x00]);
        let mut result = Ok(Chained::More(Vec::new()));
        for _ in 0..=(MAX_RESPONSE / 256) {
            result = chain.push("LIST", &part);
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(
            result,
            Err(YubiKeyError::ResponseTooLong { command: "LIST" })
        ));
    }

    proptest! {
        #[test]
        fn parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_select(&data);
            let _ = parse_list(&data);
            let _ = parse_calculate(&data);
            let _ = parse_calculate_all(&data);
            let _ = verify_validate(&data, &PasswordKey::from_bytes([7; 16]), &HOST);
            let _ = split_status("X", &data);
            let _ = ResponseChain::new().push("X", &data);
        }

        #[test]
        fn exchange_never_panics(
            answers in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..80), 1..8),
            locked in any::<bool>(),
        ) {
            let mut ex = OathExchange::new(Some("x"), Goal::Code { unix_time: 12345 }, HOST);
            ex.start().unwrap();
            // Start from a valid SELECT so the later phases see arbitrary bytes too.
            let first = select_answer(if locked { Some(&DEVICE_CHALLENGE) } else { None });
            let mut step = ex.handle_response(&first);
            for answer in answers {
                match step {
                    Ok(Action::NeedPassword { .. }) => step = ex.provide_password("pw"),
                    Ok(Action::Done(_)) | Err(_) => break,
                    Ok(_) => step = ex.handle_response(&answer),
                }
            }
        }
    }
}
