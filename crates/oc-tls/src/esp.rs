//! ESP's cryptography on OpenSSL: the [`EspCipher`] of `oc_proto::esp` for AES-CBC with
//! HMAC-MD5-96, HMAC-SHA-1-96 or HMAC-SHA-256-128.
//!
//! Each association keys its contexts once; per packet only the IV is set and the data
//! runs through in place, so nothing is allocated per packet. The HMAC is RFC 2104 built
//! on one reused digest context with an algorithm fetched once (OpenSSL 3's HMAC objects
//! and `PKey` signers cost an allocation and a lookup per message, about four times the
//! whole HMAC of a 1400-byte packet). ICVs are compared in constant time.
//!
//! IVs follow upstream's `encrypt_esp_packet`: the first is random, and each next one is
//! the last 16 bytes of the packet just sent run through the same CBC chain, that is
//! AES(key, those bytes XOR the last ciphertext block): unpredictable without the key,
//! and one block of work instead of a call for random bytes.

use std::fmt;

use oc_proto::esp::{
    CipherFailure, EspCipher, EspEncryption, EspError, EspIntegrity, EspKeys, EspSuite,
    ESP_HEADER_LEN, MAX_ESP_PACKET_LEN,
};
use openssl::cipher::Cipher;
use openssl::cipher_ctx::CipherCtx;
use openssl::error::ErrorStack;
use openssl::md::Md;
use openssl::md_ctx::MdCtx;
use thiserror::Error;

/// AES's block, which is also its IV.
const BLOCK: usize = 16;
/// MD5, SHA-1 and SHA-256 all hash 64-byte blocks, so HMAC pads keys to 64 bytes.
const HMAC_BLOCK: usize = 64;
/// Room for the longest digest used.
const MAX_DIGEST: usize = 64;

/// Why a cipher could not be made.
#[derive(Debug, Error)]
pub enum EspCipherError {
    #[error("cannot set up ESP {suite}: {source}")]
    Setup { suite: EspSuite, source: ErrorStack },
    #[error("no random bytes for ESP: {0}")]
    Random(ErrorStack),
    #[error(transparent)]
    Keys(#[from] EspError),
}

/// One direction's AES-CBC and HMAC, keyed.
pub struct OpenSslEspCipher {
    suite: EspSuite,
    encrypt: CipherCtx,
    decrypt: CipherCtx,
    mac: Hmac,
    next_iv: [u8; BLOCK],
}

impl fmt::Debug for OpenSslEspCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenSslEspCipher")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl OpenSslEspCipher {
    /// A cipher for `keys` whose first IV is random.
    pub fn new(keys: &EspKeys) -> Result<Self, EspCipherError> {
        let mut iv = [0u8; BLOCK];
        openssl::rand::rand_bytes(&mut iv).map_err(EspCipherError::Random)?;
        Self::with_first_iv(keys, iv)
    }

    /// A cipher whose first packet gets `first_iv` (known-answer tests; use [`Self::new`]).
    pub fn with_first_iv(keys: &EspKeys, first_iv: [u8; BLOCK]) -> Result<Self, EspCipherError> {
        let suite = keys.suite();
        let setup = |source| EspCipherError::Setup { suite, source };
        let algorithm = Cipher::fetch(None, cipher_name(suite.encryption), None).map_err(setup)?;
        let mut encrypt = CipherCtx::new().map_err(setup)?;
        encrypt
            .encrypt_init(Some(&algorithm), Some(keys.encryption_key()), None)
            .map_err(setup)?;
        encrypt.set_padding(false);
        let mut decrypt = CipherCtx::new().map_err(setup)?;
        decrypt
            .decrypt_init(Some(&algorithm), Some(keys.encryption_key()), None)
            .map_err(setup)?;
        decrypt.set_padding(false);
        Ok(Self {
            suite,
            encrypt,
            decrypt,
            mac: Hmac::new(suite.integrity, keys.integrity_key()).map_err(setup)?,
            next_iv: first_iv,
        })
    }

    /// Where the IV ends and the ICV starts in a `len`-byte packet, if it has the shape
    /// of one: header, IV, whole blocks (at least one), ICV, at most 64 KiB.
    fn layout(&self, len: usize) -> Result<(usize, usize), CipherFailure> {
        let iv_end = ESP_HEADER_LEN + BLOCK;
        let icv_start = len.saturating_sub(self.suite.icv_len());
        let encrypted = icv_start.saturating_sub(iv_end);
        if len > MAX_ESP_PACKET_LEN || encrypted == 0 || !encrypted.is_multiple_of(BLOCK) {
            return Err(CipherFailure::Library(format!(
                "an ESP packet of {len} bytes does not fit {}",
                self.suite
            )));
        }
        Ok((iv_end, icv_start))
    }
}

impl EspCipher for OpenSslEspCipher {
    fn suite(&self) -> EspSuite {
        self.suite
    }

    fn seal(&mut self, packet: &mut [u8]) -> Result<(), CipherFailure> {
        // After `layout`, every index below is inside `packet`.
        let (iv_end, icv_start) = self.layout(packet.len())?;
        let iv = self.next_iv;
        packet[ESP_HEADER_LEN..iv_end].copy_from_slice(&iv);
        self.encrypt
            .encrypt_init(None, None, Some(&iv))
            .map_err(library)?;
        cbc_in_place(&mut self.encrypt, &mut packet[iv_end..icv_start])?;
        let mut digest = [0u8; MAX_DIGEST];
        self.mac
            .compute(&packet[..icv_start], &mut digest)
            .map_err(library)?;
        let icv_len = packet.len() - icv_start;
        packet[icv_start..].copy_from_slice(&digest[..icv_len]);
        // The chain continues over the packet's last block into the next IV.
        let mut tail = [0u8; BLOCK];
        tail.copy_from_slice(&packet[packet.len() - BLOCK..]);
        let mut next = [0u8; 2 * BLOCK];
        let written = self
            .encrypt
            .cipher_update(&tail, Some(&mut next))
            .map_err(library)?;
        if written != BLOCK {
            return Err(short_output(written, BLOCK));
        }
        self.next_iv.copy_from_slice(&next[..BLOCK]);
        Ok(())
    }

    fn open(&mut self, packet: &mut [u8]) -> Result<(), CipherFailure> {
        let (iv_end, icv_start) = self.layout(packet.len())?;
        let mut digest = [0u8; MAX_DIGEST];
        self.mac
            .compute(&packet[..icv_start], &mut digest)
            .map_err(library)?;
        let icv = &packet[icv_start..];
        if !openssl::memcmp::eq(&digest[..icv.len()], icv) {
            return Err(CipherFailure::IntegrityCheck);
        }
        let mut iv = [0u8; BLOCK];
        iv.copy_from_slice(&packet[ESP_HEADER_LEN..iv_end]);
        self.decrypt
            .decrypt_init(None, None, Some(&iv))
            .map_err(library)?;
        cbc_in_place(&mut self.decrypt, &mut packet[iv_end..icv_start])
    }
}

/// Fresh keys for the direction a client chooses itself (Pulse and NC let the client
/// pick its inbound SPI and keys): a random SPI, the cipher's key length and the
/// integrity algorithm's standard key length, all from OpenSSL's generator.
pub fn generate_keys(suite: EspSuite) -> Result<EspKeys, EspCipherError> {
    let mut spi = [0u8; 4];
    let mut encryption = [0u8; 32];
    let mut integrity = [0u8; 32];
    let encryption = &mut encryption[..suite.encryption.key_len()];
    let integrity = &mut integrity[..suite.integrity.standard_key_len()];
    for buf in [&mut spi[..], encryption, integrity] {
        openssl::rand::rand_bytes(buf).map_err(EspCipherError::Random)?;
    }
    Ok(EspKeys::new(
        u32::from_be_bytes(spi),
        suite,
        encryption,
        integrity,
    )?)
}

fn cipher_name(encryption: EspEncryption) -> &'static str {
    match encryption {
        EspEncryption::Aes128Cbc => "AES-128-CBC",
        EspEncryption::Aes256Cbc => "AES-256-CBC",
    }
}

fn library(e: ErrorStack) -> CipherFailure {
    CipherFailure::Library(e.to_string())
}

fn short_output(written: usize, wanted: usize) -> CipherFailure {
    CipherFailure::Library(format!("AES-CBC gave {written} bytes for {wanted}"))
}

/// Runs whole blocks through a CBC context where they lie. The safe in-place call wants
/// a block of slack after its input, so the last block goes through a stack buffer.
fn cbc_in_place(ctx: &mut CipherCtx, data: &mut [u8]) -> Result<(), CipherFailure> {
    let Some(head) = data.len().checked_sub(BLOCK) else {
        return Err(short_output(0, data.len()));
    };
    if head > 0 {
        let written = ctx.cipher_update_inplace(data, head).map_err(library)?;
        if written != head {
            return Err(short_output(written, head));
        }
    }
    let mut last = [0u8; BLOCK];
    last.copy_from_slice(&data[head..]);
    let mut out = [0u8; 2 * BLOCK];
    let written = ctx.cipher_update(&last, Some(&mut out)).map_err(library)?;
    if written != BLOCK {
        return Err(short_output(written, BLOCK));
    }
    data[head..].copy_from_slice(&out[..BLOCK]);
    Ok(())
}

/// HMAC (RFC 2104) on one reused digest context: H(K ^ opad, H(K ^ ipad, message)).
struct Hmac {
    md: Md,
    ctx: MdCtx,
    inner_pad: [u8; HMAC_BLOCK],
    outer_pad: [u8; HMAC_BLOCK],
}

impl Hmac {
    fn new(integrity: EspIntegrity, key: &[u8]) -> Result<Self, ErrorStack> {
        let name = match integrity {
            EspIntegrity::HmacMd5_96 => "MD5",
            EspIntegrity::HmacSha1_96 => "SHA1",
            EspIntegrity::HmacSha256_128 => "SHA256",
        };
        let md = Md::fetch(None, name, None)?;
        let mut ctx = MdCtx::new()?;
        // A key longer than a block is hashed first; a shorter one is zero-padded.
        let mut key_block = [0u8; HMAC_BLOCK];
        if key.len() > HMAC_BLOCK {
            ctx.digest_init(&md)?;
            ctx.digest_update(key)?;
            ctx.digest_final(&mut key_block)?;
        } else {
            key_block[..key.len()].copy_from_slice(key);
        }
        let mut inner_pad = [0x36; HMAC_BLOCK];
        let mut outer_pad = [0x5c; HMAC_BLOCK];
        for ((inner, outer), k) in inner_pad.iter_mut().zip(&mut outer_pad).zip(key_block) {
            *inner ^= k;
            *outer ^= k;
        }
        Ok(Self {
            md,
            ctx,
            inner_pad,
            outer_pad,
        })
    }

    /// The whole HMAC of `message` into `out`; its length.
    fn compute(&mut self, message: &[u8], out: &mut [u8; MAX_DIGEST]) -> Result<usize, ErrorStack> {
        self.ctx.digest_init(&self.md)?;
        self.ctx.digest_update(&self.inner_pad)?;
        self.ctx.digest_update(message)?;
        let inner_len = self.ctx.digest_final(out)?;
        let inner = *out;
        self.ctx.digest_init(&self.md)?;
        self.ctx.digest_update(&self.outer_pad)?;
        self.ctx
            .digest_update(&inner[..inner_len.min(MAX_DIGEST)])?;
        self.ctx.digest_final(out)
    }
}

#[cfg(test)]
mod tests;
