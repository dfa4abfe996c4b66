//! Cryptographic building blocks shared by the SecurID token formats: single-block AES,
//! the AES-based hash RSA uses for checksums and key derivation, SHA-256 helpers and the
//! lenient base64 decoder `stoken` relies on (libtomcrypt's "relaxed" mode).

use crate::oath::{self, Algorithm};
use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use aes::{Aes128, Aes256};
use sha2::{Digest, Sha256};

pub(crate) type Block = [u8; 16];

/// AES-128 encryption of one block.
pub(crate) fn aes128_encrypt(key: &Block, block: &Block) -> Block {
    let cipher = Aes128::new(&(*key).into());
    let mut b = (*block).into();
    cipher.encrypt_block(&mut b);
    b.into()
}

/// AES-128 decryption of one block.
pub(crate) fn aes128_decrypt(key: &Block, block: &Block) -> Block {
    let cipher = Aes128::new(&(*key).into());
    let mut b = (*block).into();
    cipher.decrypt_block(&mut b);
    b.into()
}

/// AES-256-CBC decryption without any padding handling. `data.len()` should be a multiple
/// of 16; a trailing partial block is left as it is.
pub(crate) fn aes256_cbc_decrypt(key: &[u8; 32], iv: &Block, data: &mut [u8]) {
    let cipher = Aes256::new(&(*key).into());
    let mut chain = *iv;
    for chunk in data.chunks_exact_mut(16) {
        let mut ct = [0u8; 16];
        ct.copy_from_slice(chunk);
        let mut b = ct.into();
        cipher.decrypt_block(&mut b);
        let pt: Block = b.into();
        for ((out, p), c) in chunk.iter_mut().zip(pt).zip(chain) {
            *out = p ^ c;
        }
        chain = ct;
    }
}

pub(crate) fn xor_into(dst: &mut Block, src: &Block) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= s;
    }
}

/// `state ^= AES_key(state)`: one Davies-Meyer style compression step.
fn absorb(key: &Block, state: &mut Block) {
    let enc = aes128_encrypt(key, state);
    xor_into(state, &enc);
}

/// RSA's AES-128 based hash of arbitrary bytes, as used for the CTF checksum, the seed
/// check value, the key derived from password and device ID, and the saved-PIN key.
///
/// Each 16-byte block of input is used as an AES key to encrypt the running state, which
/// is then XORed with the result. The last (zero-padded) block is always absorbed; an
/// extra all-zero block follows when an odd number of full blocks came before it; then a
/// block carrying the input length in bits, big-endian. A final step absorbs the state
/// keyed by itself.
pub(crate) fn securid_hash(input: &[u8]) -> Block {
    let mut state = [0xffu8; 16];
    let mut length_block = [0u8; 16];
    let bits = (input.len() as u64).wrapping_mul(8).to_be_bytes();
    length_block[8..].copy_from_slice(&bits);

    let mut rest = input;
    let mut odd = false;
    while rest.len() > 16 {
        let (head, tail) = rest.split_at(16);
        let mut key = [0u8; 16];
        key.copy_from_slice(head);
        absorb(&key, &mut state);
        rest = tail;
        odd = !odd;
    }
    let mut last = [0u8; 16];
    last[..rest.len()].copy_from_slice(rest);
    absorb(&last, &mut state);
    if odd {
        absorb(&[0u8; 16], &mut state);
    }
    absorb(&length_block, &mut state);

    let key = state;
    absorb(&key, &mut state);
    state
}

/// The 15-bit check value derived from [`securid_hash`].
pub(crate) fn securid_short_hash(input: &[u8]) -> u16 {
    let h = securid_hash(input);
    (u16::from(h[0]) << 7) | u16::from(h[1] >> 1)
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let digest = oath::hmac(Algorithm::Sha256, key, data);
    if let Some(bytes) = digest.get(..32) {
        out.copy_from_slice(bytes);
    }
    out
}

pub(crate) fn pbkdf2_sha256(password: &[u8], salt: &[u8], rounds: u32) -> [u8; 32] {
    pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, rounds)
}

/// Why [`base64_decode_relaxed`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Base64Error {
    /// A lone base64 character at the end (6 bits cannot make a byte).
    Truncated,
    /// More data than the caller's limit.
    TooLong,
}

/// Base64 decoding as libtomcrypt's relaxed decoder does it, which is what Debian's
/// `stoken` uses: characters outside the alphabet (whitespace, `&`, ...) are skipped, `=`
/// is ignored wherever it appears, and a trailing group of 2 or 3 characters yields 1 or 2
/// bytes. Output longer than `max` is an error.
pub(crate) fn base64_decode_relaxed(input: &[u8], max: usize) -> Result<Vec<u8>, Base64Error> {
    let mut out = Vec::with_capacity(max.min(input.len()));
    let mut acc: u32 = 0;
    let mut count = 0u32;
    for &c in input {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        count += 1;
        if count == 4 {
            if out.len() + 3 > max {
                return Err(Base64Error::TooLong);
            }
            out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            acc = 0;
            count = 0;
        }
    }
    match count {
        0 => {}
        1 => return Err(Base64Error::Truncated),
        n => {
            acc <<= 6 * (4 - n);
            let extra = (n - 1) as usize;
            if out.len() + extra > max {
                return Err(Base64Error::TooLong);
            }
            out.push((acc >> 16) as u8);
            if n == 3 {
                out.push((acc >> 8) as u8);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relaxed_base64_matches_standard_on_clean_input() {
        assert_eq!(
            base64_decode_relaxed(b"aGVsbG8=", 100),
            Ok(b"hello".to_vec())
        );
        assert_eq!(
            base64_decode_relaxed(b"aGVsbA==", 100),
            Ok(b"hell".to_vec())
        );
        assert_eq!(base64_decode_relaxed(b"aGVs", 100), Ok(b"hel".to_vec()));
        assert_eq!(base64_decode_relaxed(b"", 100), Ok(Vec::new()));
    }

    #[test]
    fn relaxed_base64_skips_junk_and_checks_limits() {
        assert_eq!(
            base64_decode_relaxed(b" aG\nVs=b G8 ", 100),
            Ok(b"hello".to_vec())
        );
        assert_eq!(
            base64_decode_relaxed(b"aGVsb", 100),
            Err(Base64Error::Truncated)
        );
        assert_eq!(
            base64_decode_relaxed(b"aGVsbG8=", 4),
            Err(Base64Error::TooLong)
        );
        assert_eq!(base64_decode_relaxed(b"aGVsbG8=", 5), Ok(b"hello".to_vec()));
    }

    #[test]
    fn cbc_decrypt_inverts_manual_cbc_encrypt() {
        let key = [7u8; 32];
        let iv = [9u8; 16];
        let plain: Vec<u8> = (0u8..48).collect();
        let cipher = Aes256::new(&key.into());
        let mut chain = iv;
        let mut ct = Vec::new();
        for chunk in plain.chunks(16) {
            let mut b = [0u8; 16];
            for (o, (p, c)) in b.iter_mut().zip(chunk.iter().zip(chain)) {
                *o = p ^ c;
            }
            let mut arr = b.into();
            cipher.encrypt_block(&mut arr);
            chain = arr.into();
            ct.extend_from_slice(&chain);
        }
        aes256_cbc_decrypt(&key, &iv, &mut ct);
        assert_eq!(ct, plain);
    }
}
