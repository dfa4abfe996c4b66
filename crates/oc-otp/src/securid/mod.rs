//! RSA SecurID software tokens, compatible with `stoken` (0.92).
//!
//! [`SecurIdToken::import`] takes anything `stoken import --token=…`/`--file=…` takes,
//! plus the contents of a `~/.stokenrc`:
//!
//! - numeric CTF strings (v1/v2): 81 digits (81 to 85 accepted), dashes allowed anywhere;
//! - v3 CTF strings: base64 of 291 bytes, always starting with `A`, `%XX`-escaped or not
//!   (stoken takes a bare one only from an rcfile, and no line breaks; we take both);
//! - smartphone URIs carrying either: `com.rsa.securid.iphone://ctf?ctfData=…`,
//!   `com.rsa.securid://ctf?ctfData=…`, `http://127.0.0.1/securid/ctf?ctfData=…` (and any
//!   other text with `ctfData=` in it, including the quoted-printable `ctfData=3D…`);
//! - `.sdtid` XML files holding one token;
//! - stokenrc text (`version 1`, `token <string>`, optional `pin <PIN>`).
//!
//! A token may be protected by a password and/or bound to a device ID. Check
//! [`needs_password`](SecurIdToken::needs_password) and
//! [`needs_devid`](SecurIdToken::needs_devid), then call
//! [`decrypt`](SecurIdToken::decrypt); unprotected tokens are decrypted by `import`.
//! Then [`code`](SecurIdToken::code) gives the tokencode at a given time.
//!
//! Nothing here reads a clock, a file or a random source: times, file contents and
//! random bytes are arguments. Secrets never appear in errors or `Debug` output.

mod code;
mod crypto;
mod ctf;
mod rcfile;
mod sdtid;

use std::fmt;

pub use rcfile::{decrypt_saved_pin, encrypt_saved_pin, validate_pin, MAX_PIN, MIN_PIN};

use crypto::Block;
use ctf::{V2Token, V3Token, FL_128BIT, FL_PASSPROT, FL_SNPROT, FL_TIMESEEDS};

/// 2000-01-01 00:00:00 UTC, the epoch of SecurID expiry dates.
pub(crate) const SECURID_EPOCH: i64 = 946_684_800;
pub(crate) const SECURID_EPOCH_DAYS: u64 = 10_957;
/// The largest expiry date (days since 2000-01-01) stoken keeps; it stands for "never"
/// (the last day a 32-bit `time_t` can show).
pub(crate) const MAX_EXP_DATE: u16 = 13_897;
const MAX_TIME_T: i64 = 0x7fff_ffff;

/// Longest input a token string may have after the `ctfData=` (stoken's buffer).
const MAX_TOKEN_STRING: usize = 2047;

/// A problem with a SecurID token. Messages never contain secrets (seeds, passwords,
/// PINs, token strings).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecurIdError {
    /// The input is none of the formats [`SecurIdToken::import`] knows.
    #[error(
        "unknown SecurID token format: expected an 81-digit token string, a v3 token string \
         starting with 'A', a URI with ctfData=, sdtid XML or stokenrc contents"
    )]
    UnknownFormat,
    /// A numeric token string has the wrong number of digits.
    #[error("SecurID token string has {found} digits, expected 81 (up to 85 are accepted)")]
    BadDigitCount { found: usize },
    /// A numeric token string fails its checksum (mistyped or damaged).
    #[error("SecurID token string fails its checksum (mistyped or damaged)")]
    BadChecksum,
    /// A v3 (base64) token string cannot be decoded.
    #[error("SecurID v3 token string is malformed: {0}")]
    BadV3(String),
    /// An sdtid file is not well-formed XML.
    #[error("sdtid XML is malformed: {0}")]
    Xml(String),
    /// An sdtid file lacks an element stoken requires.
    #[error("sdtid file lacks a usable <{0}> element")]
    SdtidMissing(String),
    /// An sdtid element has a value stoken cannot use.
    #[error("sdtid <{node}> is invalid: {reason}")]
    SdtidValue { node: &'static str, reason: String },
    /// The sdtid file holds more than one `<TKN>`.
    #[error("sdtid file holds several tokens; split it into one file per token")]
    SdtidMultipleTokens,
    /// Exactly one of the two sdtid MACs fails: the file was altered or damaged.
    #[error("sdtid {0} MAC does not match: the file is damaged")]
    SdtidMac(&'static str),
    /// A line of an stokenrc cannot be used.
    #[error("stokenrc line {line}: {reason}")]
    Rcfile { line: usize, reason: String },
    /// An stokenrc as a whole cannot be used.
    #[error("stokenrc: {0}")]
    RcfileContent(String),
    /// The token is encrypted with a password and none was given.
    #[error("this SecurID token is protected by a password; one is needed to decrypt it")]
    PasswordRequired,
    /// The token is bound to a device and no device ID was given.
    #[error("this SecurID token is bound to a device; its device ID is needed to decrypt it")]
    DevidRequired,
    /// Passwords are limited to 40 bytes.
    #[error("the password is longer than 40 bytes")]
    PasswordTooLong,
    /// The password does not decrypt the token.
    #[error("wrong password for this SecurID token")]
    WrongPassword,
    /// The device ID is not the one the token is bound to.
    #[error("wrong device ID for this SecurID token")]
    WrongDevid,
    /// The decrypted seed fails its check value although no password was involved.
    #[error("the token's decrypted seed fails its check value: the token string is damaged")]
    SeedChecksum,
    /// A v3 token's integrity checks fail although the credentials were accepted.
    #[error("the v3 token's {0} check fails: the token string is damaged")]
    V3Corrupt(&'static str),
    /// A PIN-protected stokenrc PIN cannot be recovered.
    #[error("the PIN saved in the stokenrc is unusable: {0}")]
    SavedPin(&'static str),
    /// [`SecurIdToken::code`] (or export) was called before a successful decrypt.
    #[error("the SecurID token is still encrypted; decrypt it first")]
    Locked,
    /// The token mixes a PIN into its code and no PIN was given or saved.
    #[error("this SecurID token needs a PIN")]
    PinRequired,
    /// PINs are 4 to 8 digits.
    #[error("a SecurID PIN must be 4 to 8 digits long, not {0}")]
    PinLength(usize),
    /// PINs are digits only.
    #[error("a SecurID PIN must contain only digits")]
    PinNotNumeric,
    /// A token cannot be built or exported with these parameters.
    #[error("cannot build SecurID token: {0}")]
    Export(&'static str),
}

/// The form a token was imported from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFormat {
    /// A numeric CTF string; `version` is its first digit (1 or 2). `smartphone_uri` is
    /// true when it came inside an iPhone/Android URI, which changes how a device ID is
    /// hashed (40 hex digits instead of 32).
    Numeric { version: u8, smartphone_uri: bool },
    /// A base64 v3 CTF string (Android/iPhone app provisioning).
    V3,
    /// An `.sdtid` XML file.
    Sdtid,
}

/// How a PIN relates to the tokencode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinMode {
    /// PIN mode 0 or 1: the token does not use a PIN itself. If the server wants a PIN,
    /// the user types it in front of the tokencode (openconnect prompts for an optional
    /// PIN and prepends it; see [`SecurIdToken::passcode`]).
    Prepend,
    /// PIN mode 2 or 3: each PIN digit is added (mod 10, no carry) to the tokencode digit
    /// at the same position counted from the right; the result is the whole passcode.
    Mixed,
}

/// A device class GUID the RSA apps use as device ID for class-bound tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassGuid {
    pub tag: &'static str,
    pub name: &'static str,
    pub guid: &'static str,
}

/// The class GUIDs `stoken` tries, in order, when a device-bound token is used without
/// `--devid`.
pub const CLASS_GUIDS: [ClassGuid; 7] = [
    ClassGuid {
        tag: "iphone",
        name: "iPhone",
        guid: "556f1985-33dd-442c-9155-3a0e994f21b1",
    },
    ClassGuid {
        tag: "android",
        name: "Android",
        guid: "a01c4380-fc01-4df0-b113-7fb98ec74694",
    },
    ClassGuid {
        tag: "bb",
        name: "BlackBerry",
        guid: "868c28f8-31bf-4911-9876-ebece5c3f2ab",
    },
    ClassGuid {
        tag: "bb10",
        name: "BlackBerry 10",
        guid: "b77a1d06-d505-4200-90d3-1bb397748704",
    },
    ClassGuid {
        tag: "winphone",
        name: "Windows Phone",
        guid: "c483b592-63f0-4f19-b4cb-a6bce8e57159",
    },
    ClassGuid {
        tag: "win",
        name: "Windows",
        guid: "8f94b226-d362-4204-ac52-3b21fa333b6f",
    },
    ClassGuid {
        tag: "mac",
        name: "Mac OSX",
        guid: "d0955a53-569b-4ecc-9cf7-6c2a59d4e775",
    },
];

/// Parameters of a token built from a known seed (for tests and for issuing tokens).
#[derive(Clone, PartialEq, Eq)]
pub struct TokenParams {
    /// 12 decimal digits.
    pub serial: String,
    /// The AES-128 seed.
    pub seed: [u8; 16],
    /// Tokencode length, 1 to 8 (6 or 8 in practice).
    pub digits: u8,
    /// Seconds per tokencode: 30 or 60.
    pub interval: u32,
    /// 0 to 3; 2 and 3 mix the PIN into the code (see [`PinMode`]).
    pub pin_mode: u8,
    /// Last valid day, counted in days after 2000-01-01 (at most 16383).
    pub expiry_days: u16,
}

impl fmt::Debug for TokenParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenParams")
            .field("serial", &self.serial)
            .field("seed", &"<redacted>")
            .field("digits", &self.digits)
            .field("interval", &self.interval)
            .field("pin_mode", &self.pin_mode)
            .field("expiry_days", &self.expiry_days)
            .finish()
    }
}

#[derive(Clone)]
enum Kind {
    V2(V2Token),
    V3(V3Token),
    Sdtid(Box<sdtid::Sdtid>),
    Built,
}

#[derive(Clone, PartialEq, Eq)]
enum SavedPin {
    None,
    Clear(String),
    Encrypted(String),
}

/// One SecurID software token.
#[derive(Clone)]
pub struct SecurIdToken {
    kind: Kind,
    format: TokenFormat,
    from_rcfile: bool,
    smartphone: bool,
    /// Serial number; unknown for a v3 token until it is decrypted.
    serial: Option<[u8; 12]>,
    /// stoken's flag word; for a locked v3 token only the protection bits are known.
    flags: u16,
    /// Days after 2000-01-01 (see `expires_unix`).
    exp_date: u16,
    seed: Option<Block>,
    saved_pin: SavedPin,
    /// The saved PIN in clear, once known.
    pin: Option<String>,
}

impl fmt::Debug for SecurIdToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurIdToken")
            .field("format", &self.format)
            .field("from_rcfile", &self.from_rcfile)
            .field("serial", &self.serial())
            .field("digits", &self.digits())
            .field("interval", &self.interval())
            .field("pin_mode", &self.pin_mode())
            .field("needs_password", &self.needs_password())
            .field("needs_devid", &self.needs_devid())
            .field("unlocked", &self.is_unlocked())
            .field("saved_pin", &(self.saved_pin != SavedPin::None))
            .field("seed", &"<redacted>")
            .finish()
    }
}

/// Case-insensitive ASCII search.
fn find_ci(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// C-string view: text up to the first NUL.
fn c_str(s: &str) -> &[u8] {
    let b = s.as_bytes();
    b.iter().position(|&c| c == 0).map_or(b, |n| &b[..n])
}

/// Result of trying one string the way `__stoken_parse_and_decode_token` does.
enum Parsed {
    Token(Box<SecurIdToken>),
    Unrecognized,
}

impl SecurIdToken {
    fn new(
        kind: Kind,
        format: TokenFormat,
        serial: Option<[u8; 12]>,
        flags: u16,
        exp_date: u16,
    ) -> Self {
        SecurIdToken {
            kind,
            format,
            from_rcfile: false,
            smartphone: matches!(
                format,
                TokenFormat::Numeric {
                    smartphone_uri: true,
                    ..
                }
            ),
            serial,
            flags,
            exp_date,
            seed: None,
            saved_pin: SavedPin::None,
            pin: None,
        }
    }

    /// Imports a token from any form `stoken` accepts (see the module documentation),
    /// telling the form from the content. Leading and trailing whitespace is ignored. If
    /// the first line is not a token, later lines are tried, as `stoken --file` does.
    ///
    /// A token that needs neither password nor device ID is decrypted right away, so
    /// [`code`](Self::code) works at once; otherwise call [`decrypt`](Self::decrypt).
    pub fn import(input: &str) -> Result<SecurIdToken, SecurIdError> {
        let text = input.trim();
        let mut token = if rcfile::looks_like_rcfile(text) {
            Self::import_rcfile(text)?
        } else {
            let mut rest = text;
            loop {
                match Self::parse_string(rest)? {
                    Parsed::Token(t) => break *t,
                    Parsed::Unrecognized => match rest.find('\n') {
                        Some(nl) => rest = rest.get(nl + 1..).unwrap_or_default(),
                        None => return Err(SecurIdError::UnknownFormat),
                    },
                }
            }
        };
        if !token.needs_password() && !token.needs_devid() && !token.is_unlocked() {
            token.decrypt(None, None)?;
        }
        Ok(token)
    }

    fn import_rcfile(text: &str) -> Result<SecurIdToken, SecurIdError> {
        let rc = rcfile::parse(text)?;
        let mut token = match Self::parse_string(rc.token.trim())? {
            Parsed::Token(t) => *t,
            Parsed::Unrecognized => {
                return Err(SecurIdError::RcfileContent(
                    "the token line holds no token string".into(),
                ))
            }
        };
        token.from_rcfile = true;
        if let Some(pin) = rc.pin {
            if token.needs_password() {
                token.saved_pin = SavedPin::Encrypted(pin);
            } else {
                validate_pin(&pin).map_err(|_| {
                    SecurIdError::RcfileContent("the saved PIN is not 4 to 8 digits".into())
                })?;
                token.pin = Some(pin.clone());
                token.saved_pin = SavedPin::Clear(pin);
            }
        }
        Ok(token)
    }

    fn parse_string(s: &str) -> Result<Parsed, SecurIdError> {
        let bytes = s.as_bytes();
        let start = if let Some(i) = find_ci(bytes, b"ctfData=3D") {
            i + 10
        } else if let Some(i) = find_ci(bytes, b"ctfData=") {
            i + 8
        } else if let Some(i) = find_ci(bytes, b"<?xml ") {
            let xml = s.get(i..).ok_or(SecurIdError::UnknownFormat)?;
            return Ok(Parsed::Token(Box::new(Self::from_sdtid(xml)?)));
        } else if bytes.first().is_some_and(u8::is_ascii_digit)
            || (bytes.first() == Some(&b'A') && bytes.len() >= ctf::V3_MIN_CHARS)
        {
            // stoken itself only takes v3 strings after "ctfData=" (or in an rcfile);
            // a bare one is accepted here too.
            0
        } else {
            return Ok(Parsed::Unrecognized);
        };
        let p = bytes.get(start..).unwrap_or_default();
        let smartphone = [
            "com.rsa.securid.iphone://ctf",
            "com.rsa.securid://ctf",
            "http://127.0.0.1/securid/ctf",
        ]
        .iter()
        .any(|prefix| s.starts_with(prefix));

        match p.first() {
            Some(b'1' | b'2') => {
                let digits: Vec<u8> = p
                    .iter()
                    .take_while(|c| c.is_ascii_digit() || **c == b'-')
                    .filter(|c| c.is_ascii_digit())
                    .copied()
                    .collect();
                if digits.len() > MAX_TOKEN_STRING {
                    return Err(SecurIdError::BadDigitCount {
                        found: digits.len(),
                    });
                }
                let tok = ctf::decode_v2(&digits)?;
                let format = TokenFormat::Numeric {
                    version: tok.version,
                    smartphone_uri: smartphone,
                };
                let (serial, flags, exp) = (tok.serial, tok.flags, tok.exp_date);
                Ok(Parsed::Token(Box::new(Self::new(
                    Kind::V2(tok),
                    format,
                    Some(serial),
                    flags,
                    exp,
                ))))
            }
            Some(b'A') => {
                if p.len() > MAX_TOKEN_STRING {
                    return Err(SecurIdError::BadV3("string is too long".into()));
                }
                if p.len() < ctf::V3_MIN_CHARS {
                    return Err(SecurIdError::BadV3(format!(
                        "string has {} characters, expected at least {}",
                        p.len(),
                        ctf::V3_MIN_CHARS
                    )));
                }
                let tok = ctf::decode_v3(p)?;
                let mut flags = 0;
                if tok.password_locked() {
                    flags |= FL_PASSPROT;
                }
                if tok.devid_locked() {
                    flags |= FL_SNPROT;
                }
                Ok(Parsed::Token(Box::new(Self::new(
                    Kind::V3(tok),
                    TokenFormat::V3,
                    None,
                    flags,
                    0,
                ))))
            }
            _ => Ok(Parsed::Unrecognized),
        }
    }

    fn from_sdtid(xml: &str) -> Result<SecurIdToken, SecurIdError> {
        let t = sdtid::decode(xml)?;
        let mut token = Self::new(
            Kind::Sdtid(Box::new(t.doc)),
            TokenFormat::Sdtid,
            Some(t.serial),
            t.flags,
            t.exp_date,
        );
        token.seed = t.seed;
        Ok(token)
    }

    /// Builds a token from its seed and parameters (stoken's `--random` tokens use
    /// 8 digits, 60 s and PIN mode 3). Export it with [`export_v2`](Self::export_v2).
    pub fn from_params(params: &TokenParams) -> Result<SecurIdToken, SecurIdError> {
        let serial: [u8; 12] = params
            .serial
            .as_bytes()
            .try_into()
            .ok()
            .filter(|s: &[u8; 12]| s.iter().all(u8::is_ascii_digit))
            .ok_or(SecurIdError::Export("the serial number must be 12 digits"))?;
        if !(1..=8).contains(&params.digits) {
            return Err(SecurIdError::Export("digits must be 1 to 8"));
        }
        let interval_bit = match params.interval {
            30 => 0,
            60 => 1,
            _ => {
                return Err(SecurIdError::Export(
                    "the interval must be 30 or 60 seconds",
                ))
            }
        };
        if params.pin_mode > 3 {
            return Err(SecurIdError::Export("the PIN mode must be 0 to 3"));
        }
        if params.expiry_days >= 1 << 14 {
            return Err(SecurIdError::Export("the expiry date must fit in 14 bits"));
        }
        let flags = FL_TIMESEEDS
            | FL_128BIT
            | (u16::from(params.digits - 1) << ctf::DIGIT_SHIFT)
            | (u16::from(params.pin_mode) << ctf::PINMODE_SHIFT)
            | interval_bit;
        let format = TokenFormat::Numeric {
            version: 2,
            smartphone_uri: false,
        };
        let mut token = Self::new(Kind::Built, format, Some(serial), flags, params.expiry_days);
        token.seed = Some(params.seed);
        Ok(token)
    }

    /// The form the token was imported from.
    pub fn format(&self) -> TokenFormat {
        self.format
    }

    /// Whether the token came from stokenrc contents.
    pub fn from_rcfile(&self) -> bool {
        self.from_rcfile
    }

    /// Whether [`decrypt`](Self::decrypt) needs a password.
    pub fn needs_password(&self) -> bool {
        self.flags & FL_PASSPROT != 0
    }

    /// Whether [`decrypt`](Self::decrypt) needs a device ID. (sdtid files are never
    /// treated as device-bound: their seed does not depend on it.)
    pub fn needs_devid(&self) -> bool {
        self.flags & FL_SNPROT != 0
    }

    /// Whether the seed is decrypted, so that [`code`](Self::code) works.
    pub fn is_unlocked(&self) -> bool {
        self.seed.is_some() && self.serial.is_some()
    }

    /// Whether `devid` is the device ID the token is bound to (true when it is not bound).
    /// This needs no password, so a UI can check the device ID first.
    pub fn devid_matches(&self, devid: &str) -> bool {
        if !self.needs_devid() {
            return true;
        }
        let devid = c_str(devid);
        if devid.is_empty() {
            return false;
        }
        match &self.kind {
            Kind::V2(t) => ctf::v2_devid_matches(t, self.smartphone, Some(devid)),
            Kind::V3(t) => ctf::v3_devid_matches(t, Some(devid)),
            Kind::Sdtid(_) | Kind::Built => true,
        }
    }

    /// For a device-bound token, the first device class GUID it is bound to, if any: stoken
    /// uses it without asking ("Using class GUID for Android; use --devid to override").
    pub fn find_class_guid(&self) -> Option<&'static ClassGuid> {
        if !self.needs_devid() {
            return None;
        }
        CLASS_GUIDS.iter().find(|g| self.devid_matches(g.guid))
    }

    /// Decrypts the seed. `password` is used only if [`needs_password`](Self::needs_password),
    /// `devid` only if [`needs_devid`](Self::needs_devid); empty strings count as absent.
    /// For a device ID, v2 tokens look at its hex digits (case-insensitive), v3 tokens at
    /// its letters and digits, so GUID dashes do not matter.
    ///
    /// A password-protected stokenrc's saved PIN is decrypted with the same password; if
    /// that fails, so does this call. On error the token is left unchanged.
    pub fn decrypt(
        &mut self,
        password: Option<&str>,
        devid: Option<&str>,
    ) -> Result<(), SecurIdError> {
        let password = password.map(c_str).filter(|p| !p.is_empty());
        let devid = devid.map(c_str).filter(|d| !d.is_empty());
        let devid = if self.needs_devid() {
            Some(devid.ok_or(SecurIdError::DevidRequired)?)
        } else {
            None
        };
        let pass = if self.needs_password() {
            let p = password.ok_or(SecurIdError::PasswordRequired)?;
            if p.len() > ctf::MAX_PASS {
                return Err(SecurIdError::PasswordTooLong);
            }
            Some(p)
        } else {
            None
        };

        let (seed, serial, flags, exp_date) = match &self.kind {
            Kind::V2(t) => {
                let seed = ctf::decrypt_v2(t, self.smartphone, pass, devid)?;
                (seed, self.serial, self.flags, self.exp_date)
            }
            Kind::V3(t) => {
                let payload = ctf::decrypt_v3(t, pass, devid)?;
                let flags = (self.flags & (FL_PASSPROT | FL_SNPROT)) | payload.flags;
                (payload.seed, Some(payload.serial), flags, payload.exp_date)
            }
            Kind::Sdtid(doc) => {
                let seed = match doc.decrypt(pass) {
                    Ok(seed) => seed,
                    Err(sdtid::DecryptFailure::BothMacs) => {
                        return Err(if pass.is_some() {
                            SecurIdError::WrongPassword
                        } else {
                            SecurIdError::SeedChecksum
                        })
                    }
                    Err(sdtid::DecryptFailure::Error(e)) => return Err(e),
                };
                (seed, self.serial, self.flags, self.exp_date)
            }
            Kind::Built => match self.seed {
                Some(seed) => (seed, self.serial, self.flags, self.exp_date),
                None => return Err(SecurIdError::Locked),
            },
        };

        let pin = match &self.saved_pin {
            SavedPin::Encrypted(enc) => {
                let pw = String::from_utf8_lossy(pass.unwrap_or_default());
                Some(decrypt_saved_pin(enc, &pw)?)
            }
            SavedPin::Clear(pin) => Some(pin.clone()),
            SavedPin::None => None,
        };

        self.seed = Some(seed);
        self.serial = serial;
        self.flags = flags;
        self.exp_date = exp_date;
        self.pin = pin;
        Ok(())
    }

    /// Known once the parameters are: always, except for a v3 token before
    /// [`decrypt`](Self::decrypt) (v3 encrypts them along with the seed).
    fn params_known(&self) -> bool {
        self.serial.is_some()
    }

    /// The 12-character serial number (`None` for a v3 token not yet decrypted).
    pub fn serial(&self) -> Option<String> {
        self.serial
            .map(|s| String::from_utf8_lossy(&s).into_owned())
    }

    /// Tokencode length in digits (`None` for a v3 token not yet decrypted).
    pub fn digits(&self) -> Option<u8> {
        self.params_known()
            .then(|| ((self.flags & ctf::DIGIT_MASK) >> ctf::DIGIT_SHIFT) as u8 + 1)
    }

    /// Seconds per tokencode, 30 or 60 (`None` for a v3 token not yet decrypted).
    pub fn interval(&self) -> Option<u32> {
        self.params_known()
            .then_some(if self.flags & ctf::INTERVAL_MASK == 0 {
                30
            } else {
                60
            })
    }

    /// stoken's raw PIN mode, 0 to 3 (`None` for a v3 token not yet decrypted).
    pub fn pin_mode_raw(&self) -> Option<u8> {
        self.params_known()
            .then_some(((self.flags & ctf::PINMODE_MASK) >> ctf::PINMODE_SHIFT) as u8)
    }

    /// How a PIN combines with the code (`None` for a v3 token not yet decrypted).
    pub fn pin_mode(&self) -> Option<PinMode> {
        self.pin_mode_raw().map(|m| {
            if m >= 2 {
                PinMode::Mixed
            } else {
                PinMode::Prepend
            }
        })
    }

    /// Whether a stokenrc supplied a PIN.
    pub fn has_saved_pin(&self) -> bool {
        self.saved_pin != SavedPin::None
    }

    /// Whether [`code`](Self::code) needs a PIN argument: the token mixes a PIN into its
    /// code and none was saved (libstoken's `stoken_pin_required`). False while unknown
    /// (v3 token not yet decrypted).
    pub fn needs_pin(&self) -> bool {
        self.pin_mode() == Some(PinMode::Mixed) && !self.has_saved_pin()
    }

    /// The expiry as a Unix time (the end of the last valid day), as stoken computes
    /// it; 2^31-1 means "never". `None` for a v3 token not yet decrypted.
    pub fn expires_unix(&self) -> Option<i64> {
        if !self.params_known() {
            return None;
        }
        if (matches!(self.kind, Kind::V3(_)) && self.exp_date == 0) || self.exp_date > MAX_EXP_DATE
        {
            return Some(MAX_TIME_T);
        }
        Some(SECURID_EPOCH + (i64::from(self.exp_date) + 1) * 86_400)
    }

    /// Whole days left until expiry at `now`, with stoken's 12-hour grace, rounded toward
    /// zero. `None` for a v3 token not yet decrypted.
    pub fn days_until_expiry(&self, now: u64) -> Option<i64> {
        let exp = self.expires_unix()?;
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        Some(exp.saturating_add(43_200).saturating_sub(now) / 86_400)
    }

    /// Whether stoken would refuse to show a code at `now` without `--force`. Codes are
    /// still computed for expired tokens; refusing is the caller's choice.
    pub fn is_expired(&self, now: u64) -> bool {
        self.days_until_expiry(now).is_some_and(|d| d < 0)
    }

    /// The tokencode at `unix_time`, exactly as `stoken tokencode --use-time=<unix_time>`.
    ///
    /// PIN handling follows libstoken: if the token mixes a PIN in
    /// ([`PinMode::Mixed`]), `pin` (4 to 8 digits) is used, or else the saved one, or else
    /// this fails with [`SecurIdError::PinRequired`]. If it does not, `pin` is ignored, but
    /// a PIN saved in a stokenrc is still mixed in (stoken does that too).
    pub fn code(&self, unix_time: u64, pin: Option<&str>) -> Result<String, SecurIdError> {
        let (Some(seed), Some(serial)) = (self.seed, self.serial) else {
            return Err(SecurIdError::Locked);
        };
        let given = pin.filter(|p| !p.is_empty());
        let pin_used: &str = if self.pin_mode() == Some(PinMode::Mixed) {
            match given {
                Some(p) => {
                    validate_pin(p)?;
                    p
                }
                None => self.pin.as_deref().ok_or(SecurIdError::PinRequired)?,
            }
        } else {
            self.pin.as_deref().unwrap_or_default()
        };
        let digits = usize::from(self.digits().unwrap_or(8));
        let interval_60 = self.interval() == Some(60);
        let raw = code::raw_tokencode(&seed, &serial, unix_time, interval_60);
        Ok(code::mix_pin(raw, digits, pin_used.as_bytes()))
    }

    /// What to send as the passcode, as openconnect does it: for [`PinMode::Mixed`] the
    /// same as [`code`](Self::code); otherwise `pin` (if any, taken as typed) followed by
    /// the tokencode.
    pub fn passcode(&self, unix_time: u64, pin: Option<&str>) -> Result<String, SecurIdError> {
        if self.pin_mode() == Some(PinMode::Mixed) {
            return self.code(unix_time, pin);
        }
        let code = self.code(unix_time, None)?;
        Ok(format!("{}{code}", pin.unwrap_or_default()))
    }

    /// Exports the decrypted token as a numeric v2 CTF string (81 digits), encrypted with
    /// `password` and bound to `devid` if given (`stoken export --new-password=…
    /// --new-devid=…`). With `smartphone`, the device ID is hashed as the iPhone/Android
    /// apps do (wrap the string in a smartphone URI to match); without, as `stoken` does
    /// for plain strings.
    pub fn export_v2(
        &self,
        password: Option<&str>,
        devid: Option<&str>,
        smartphone: bool,
    ) -> Result<String, SecurIdError> {
        let (Some(seed), Some(serial)) = (self.seed, self.serial) else {
            return Err(SecurIdError::Locked);
        };
        ctf::encode_v2(
            &serial,
            &seed,
            self.flags,
            self.exp_date,
            2,
            smartphone,
            password.map(c_str),
            devid.map(c_str),
        )
    }
}

#[cfg(test)]
mod tests;
