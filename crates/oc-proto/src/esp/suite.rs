//! The algorithms of an ESP security association and the keys of one direction.
//!
//! openconnect speaks the same suites to GlobalProtect, Pulse and Juniper NC: AES-128-CBC
//! or AES-256-CBC (RFC 3602) with HMAC-MD5-96 (RFC 2403), HMAC-SHA-1-96 (RFC 2404) or
//! HMAC-SHA-256-128 (RFC 4868). None of those vendors gets AES-GCM from upstream, so there
//! is none here either.

use std::fmt;

use super::EspError;

/// The largest integrity key upstream keeps (`hmac_key[0x40]`); longer keys are refused.
pub const MAX_INTEGRITY_KEY_LEN: usize = 64;

/// AES-CBC's IV and block: the IV travels in each packet, the payload is padded to blocks.
pub const AES_BLOCK_LEN: usize = 16;

/// The encryption half of a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EspEncryption {
    /// AES-128-CBC with an explicit IV (RFC 3602).
    Aes128Cbc,
    /// AES-256-CBC with an explicit IV (RFC 3602).
    Aes256Cbc,
}

impl EspEncryption {
    /// Bytes of key.
    pub const fn key_len(self) -> usize {
        match self {
            Self::Aes128Cbc => 16,
            Self::Aes256Cbc => 32,
        }
    }

    /// Bytes of IV at the front of each packet's encrypted part.
    pub const fn iv_len(self) -> usize {
        AES_BLOCK_LEN
    }

    /// The payload with its trailer is padded to a multiple of this.
    pub const fn block_len(self) -> usize {
        AES_BLOCK_LEN
    }

    /// The value Pulse and Juniper NC send for it in their ESP attributes (upstream's
    /// `ENC_AES_128_CBC` = 2, `ENC_AES_256_CBC` = 5).
    pub const fn from_juniper_code(code: u32) -> Option<Self> {
        match code {
            2 => Some(Self::Aes128Cbc),
            5 => Some(Self::Aes256Cbc),
            _ => None,
        }
    }

    /// The value a Pulse or NC gateway sends for it.
    pub const fn juniper_code(self) -> u8 {
        match self {
            Self::Aes128Cbc => 2,
            Self::Aes256Cbc => 5,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Aes128Cbc => "AES-128-CBC",
            Self::Aes256Cbc => "AES-256-CBC",
        }
    }
}

/// The integrity half of a suite: an HMAC truncated to its ICV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EspIntegrity {
    /// HMAC-MD5 truncated to 96 bits (RFC 2403); all three vendors may still pick it.
    HmacMd5_96,
    /// HMAC-SHA-1 truncated to 96 bits (RFC 2404).
    HmacSha1_96,
    /// HMAC-SHA-256 truncated to 128 bits (RFC 4868).
    HmacSha256_128,
}

impl EspIntegrity {
    /// Bytes of ICV at the end of each packet.
    pub const fn icv_len(self) -> usize {
        match self {
            Self::HmacMd5_96 | Self::HmacSha1_96 => 12,
            Self::HmacSha256_128 => 16,
        }
    }

    /// The key length of the RFC (the hash's output length); Pulse and NC send keys of
    /// this length, and a client making its own inbound keys uses it.
    pub const fn standard_key_len(self) -> usize {
        match self {
            Self::HmacMd5_96 => 16,
            Self::HmacSha1_96 => 20,
            Self::HmacSha256_128 => 32,
        }
    }

    /// The value Pulse and Juniper NC send for it (upstream's `HMAC_MD5` = 1,
    /// `HMAC_SHA1` = 2, `HMAC_SHA256` = 3).
    pub const fn from_juniper_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(Self::HmacMd5_96),
            2 => Some(Self::HmacSha1_96),
            3 => Some(Self::HmacSha256_128),
            _ => None,
        }
    }

    /// The value a Pulse or NC gateway sends for it.
    pub const fn juniper_code(self) -> u8 {
        match self {
            Self::HmacMd5_96 => 1,
            Self::HmacSha1_96 => 2,
            Self::HmacSha256_128 => 3,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::HmacMd5_96 => "HMAC-MD5-96",
            Self::HmacSha1_96 => "HMAC-SHA-1-96",
            Self::HmacSha256_128 => "HMAC-SHA-256-128",
        }
    }
}

/// Encryption and integrity together: what both ends of an association agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EspSuite {
    pub encryption: EspEncryption,
    pub integrity: EspIntegrity,
}

impl EspSuite {
    pub const fn new(encryption: EspEncryption, integrity: EspIntegrity) -> Self {
        Self {
            encryption,
            integrity,
        }
    }

    /// Every suite upstream can use, for tests and benches.
    pub const ALL: [Self; 6] = [
        Self::new(EspEncryption::Aes128Cbc, EspIntegrity::HmacMd5_96),
        Self::new(EspEncryption::Aes128Cbc, EspIntegrity::HmacSha1_96),
        Self::new(EspEncryption::Aes128Cbc, EspIntegrity::HmacSha256_128),
        Self::new(EspEncryption::Aes256Cbc, EspIntegrity::HmacMd5_96),
        Self::new(EspEncryption::Aes256Cbc, EspIntegrity::HmacSha1_96),
        Self::new(EspEncryption::Aes256Cbc, EspIntegrity::HmacSha256_128),
    ];

    pub const fn iv_len(self) -> usize {
        self.encryption.iv_len()
    }

    pub const fn block_len(self) -> usize {
        self.encryption.block_len()
    }

    pub const fn icv_len(self) -> usize {
        self.integrity.icv_len()
    }
}

impl fmt::Display for EspSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} with {}",
            self.encryption.name(),
            self.integrity.name()
        )
    }
}

/// The secrets block in which Pulse and Network Connect hand over one direction's keys.
pub const SECRETS_BLOCK_LEN: usize = 0x40;

/// One direction of a security association: its SPI, suite and keys. What a vendor's
/// configuration hands over (or, for the direction the client chooses, what the shell
/// generated); the cipher is built from it.
#[derive(Clone, PartialEq, Eq)]
pub struct EspKeys {
    spi: u32,
    suite: EspSuite,
    encryption_key: KeyBytes,
    integrity_key: KeyBytes,
}

impl EspKeys {
    /// Checks the key lengths: the encryption key exactly as the cipher needs, the
    /// integrity key 1 to 64 bytes (HMAC takes any length; GlobalProtect states its own).
    pub fn new(
        spi: u32,
        suite: EspSuite,
        encryption_key: &[u8],
        integrity_key: &[u8],
    ) -> Result<Self, EspError> {
        let wanted = suite.encryption.key_len();
        if encryption_key.len() != wanted {
            return Err(EspError::EncryptionKeyLength {
                cipher: suite.encryption.name(),
                got: encryption_key.len(),
                wanted,
            });
        }
        if integrity_key.is_empty() || integrity_key.len() > MAX_INTEGRITY_KEY_LEN {
            return Err(EspError::IntegrityKeyLength {
                got: integrity_key.len(),
            });
        }
        Ok(Self {
            spi,
            suite,
            encryption_key: KeyBytes::copy(encryption_key),
            integrity_key: KeyBytes::copy(integrity_key),
        })
    }

    /// One direction's keys from a secrets block as Pulse and Network Connect send them:
    /// the encryption key, then the integrity key of the hash's own length.
    pub fn from_block(spi: u32, suite: EspSuite, block: &[u8]) -> Result<Self, EspError> {
        let enc_len = suite.encryption.key_len();
        let mac_len = suite.integrity.standard_key_len();
        let short = || EspError::ShortSecrets {
            got: block.len(),
            wanted: enc_len + mac_len,
        };
        let enc = block.get(..enc_len).ok_or_else(short)?;
        let mac = block.get(enc_len..enc_len + mac_len).ok_or_else(short)?;
        Self::new(spi, suite, enc, mac)
    }

    /// The SPI as a number (it travels big-endian).
    pub fn spi(&self) -> u32 {
        self.spi
    }

    pub fn suite(&self) -> EspSuite {
        self.suite
    }

    pub fn encryption_key(&self) -> &[u8] {
        self.encryption_key.as_slice()
    }

    pub fn integrity_key(&self) -> &[u8] {
        self.integrity_key.as_slice()
    }
}

/// Keys stay out of logs: only the SPI and suite show.
impl fmt::Debug for EspKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EspKeys")
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

/// Up to 64 key bytes inline (no allocation, nothing to free).
#[derive(Clone, PartialEq, Eq)]
struct KeyBytes {
    bytes: [u8; MAX_INTEGRITY_KEY_LEN],
    len: usize,
}

impl KeyBytes {
    /// `key` is at most 64 bytes (the callers checked).
    fn copy(key: &[u8]) -> Self {
        let mut bytes = [0; MAX_INTEGRITY_KEY_LEN];
        let len = key.len().min(MAX_INTEGRITY_KEY_LEN);
        bytes[..len].copy_from_slice(&key[..len]);
        Self { bytes, len }
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The ESP parameters a Network Connect or Pulse gateway sends with its configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EspParams {
    pub encryption: Option<EspEncryption>,
    pub integrity: Option<EspIntegrity>,
    /// LZO compression of ESP payloads (next header 5).
    pub compression: bool,
    pub port: Option<u16>,
    pub lifetime_bytes: Option<u32>,
    pub lifetime_seconds: Option<u32>,
    /// Seconds without ESP before falling back to TLS.
    pub ssl_fallback: Option<u32>,
    pub replay_protection: Option<bool>,
}

impl EspParams {
    pub fn suite(&self) -> Option<EspSuite> {
        Some(EspSuite::new(self.encryption?, self.integrity?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lengths_are_checked() {
        let suite = EspSuite::new(EspEncryption::Aes256Cbc, EspIntegrity::HmacSha1_96);
        assert!(EspKeys::new(1, suite, &[0; 32], &[0; 20]).is_ok());
        assert!(matches!(
            EspKeys::new(1, suite, &[0; 16], &[0; 20]),
            Err(EspError::EncryptionKeyLength {
                got: 16,
                wanted: 32,
                ..
            })
        ));
        assert!(EspKeys::new(1, suite, &[0; 32], &[]).is_err());
        assert!(EspKeys::new(1, suite, &[0; 32], &[0; 65]).is_err());
        assert!(EspKeys::new(1, suite, &[0; 32], &[0; 64]).is_ok());
    }

    #[test]
    fn debug_hides_keys() {
        let suite = EspSuite::new(EspEncryption::Aes128Cbc, EspIntegrity::HmacMd5_96);
        let keys = EspKeys::new(0xdead_beef, suite, &[0xab; 16], &[0xcd; 16]).unwrap();
        let shown = format!("{keys:?}");
        assert!(shown.contains("0xdeadbeef"), "{shown}");
        assert!(
            !shown.contains("171") && !shown.contains("ab, ab"),
            "{shown}"
        );
    }

    #[test]
    fn a_secrets_block_splits_by_the_suites_key_lengths() {
        let mut secrets = [0u8; SECRETS_BLOCK_LEN];
        for (i, b) in secrets.iter_mut().enumerate() {
            *b = i as u8;
        }
        let suite = EspSuite::new(EspEncryption::Aes256Cbc, EspIntegrity::HmacSha256_128);
        let keys = EspKeys::from_block(9, suite, &secrets).unwrap();
        assert_eq!(keys.encryption_key(), &secrets[..32]);
        assert_eq!(keys.integrity_key(), &secrets[32..64]);
        assert_eq!(
            EspKeys::from_block(9, suite, &secrets[..40]),
            Err(EspError::ShortSecrets {
                got: 40,
                wanted: 64
            })
        );
    }

    #[test]
    fn juniper_codes() {
        assert_eq!(
            EspEncryption::from_juniper_code(5),
            Some(EspEncryption::Aes256Cbc)
        );
        assert_eq!(EspEncryption::from_juniper_code(3), None);
        assert_eq!(
            EspIntegrity::from_juniper_code(3),
            Some(EspIntegrity::HmacSha256_128)
        );
        assert_eq!(EspIntegrity::from_juniper_code(0), None);
        for e in [EspEncryption::Aes128Cbc, EspEncryption::Aes256Cbc] {
            assert_eq!(
                EspEncryption::from_juniper_code(e.juniper_code().into()),
                Some(e)
            );
        }
        for i in [
            EspIntegrity::HmacMd5_96,
            EspIntegrity::HmacSha1_96,
            EspIntegrity::HmacSha256_128,
        ] {
            assert_eq!(
                EspIntegrity::from_juniper_code(i.juniper_code().into()),
                Some(i)
            );
        }
    }
}
