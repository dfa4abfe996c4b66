//! Server private keys held by another process (privilege separation, as ocserv's
//! security module).
//!
//! The network process presents the certificates but never sees the keys: its OpenSSL keys
//! are built from each certificate's public key with a key method that hands every private
//! operation of a handshake to a [`RemoteSigner`] (see [`crate::server::TlsServer::with_remote_keys`]).
//! The signer carries a [`SignRequest`] to the process that holds the key, which answers with
//! [`perform`].
//!
//! `perform` is deliberately narrow, so that a compromised network process cannot turn the
//! key holder into a decryption oracle: it signs a PKCS#1 v1.5 `DigestInfo` of a SHA-1/SHA-2
//! digest, raises to the private exponent only blocks that are structurally valid EMSA-PSS
//! encodings (salt as long as the digest, as TLS uses), signs ECDSA digests, and signs with
//! EdDSA only messages shaped like what a TLS server signs. There is no private
//! decryption, so static-RSA key exchange cannot be used.

use std::path::{Path, PathBuf};

use openssl::ecdsa::EcdsaSig;
use openssl::hash::{Hasher, MessageDigest};
use openssl::pkey::{Id, PKey, PKeyRef, Private};
use openssl::rsa::Padding;
use openssl::sign::Signer;
use openssl::x509::{X509Ref, X509};
use thiserror::Error;

use crate::{read, TlsError};

mod eddsa;
mod ffi;

pub(crate) use ffi::{add_chain_cert, remote_private_key, ERR_LIB_USER};

/// Performs private-key operations for a key held elsewhere.
///
/// `sign` is a synchronous round trip: it is called inside the TLS handshake (on the thread
/// that drives it) and must return the finished signature. An `Err` makes that handshake
/// fail; its text ends up in the handshake error.
pub trait RemoteSigner: Send + Sync + 'static {
    fn sign(&self, request: &SignRequest) -> Result<Vec<u8>, String>;
}

/// One private-key operation. `key` is the index of the certificate/key pair, as given to
/// [`RemoteCert`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignRequest {
    /// RSA PKCS#1 v1.5 signature of a DER `DigestInfo`; the key holder adds the padding.
    RsaPkcs1 { key: u32, digest_info: Vec<u8> },
    /// RSA-PSS: the already encoded block (EMSA-PSS, modulus-sized), to be raised to the
    /// private exponent.
    RsaPss { key: u32, encoded: Vec<u8> },
    /// ECDSA over a digest; the answer is the DER `ECDSA-Sig-Value`.
    Ecdsa { key: u32, digest: Vec<u8> },
    /// EdDSA (Ed25519, Ed448) over the message itself, which must be what a TLS server
    /// signs (see [`perform`]).
    EdDsa { key: u32, message: Vec<u8> },
}

impl SignRequest {
    /// The index of the certificate/key pair this request is for.
    pub fn key(&self) -> u32 {
        match self {
            Self::RsaPkcs1 { key, .. }
            | Self::RsaPss { key, .. }
            | Self::Ecdsa { key, .. }
            | Self::EdDsa { key, .. } => *key,
        }
    }

    /// The bytes to sign (DigestInfo, PSS block, digest or message).
    pub fn payload(&self) -> &[u8] {
        match self {
            Self::RsaPkcs1 { digest_info, .. } => digest_info,
            Self::RsaPss { encoded, .. } => encoded,
            Self::Ecdsa { digest, .. } => digest,
            Self::EdDsa { message, .. } => message,
        }
    }

    /// A short name of the operation, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RsaPkcs1 { .. } => "RSA PKCS#1 v1.5",
            Self::RsaPss { .. } => "RSA-PSS",
            Self::Ecdsa { .. } => "ECDSA",
            Self::EdDsa { .. } => "EdDSA",
        }
    }
}

/// Why the key holder refused a request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignRefusal {
    #[error("a {request} request cannot use a {key} key")]
    KeyType {
        request: &'static str,
        key: &'static str,
    },
    #[error("the input ({len} bytes) is not a DER DigestInfo of a SHA-1/224/256/384/512 digest")]
    NotDigestInfo { len: usize },
    #[error("a {len}-byte DigestInfo is too long for a {bits}-bit RSA key")]
    DigestInfoTooLong { len: usize, bits: u32 },
    #[error("the block is {len} bytes but the {bits}-bit RSA key needs {expected}")]
    PssLength {
        len: usize,
        bits: u32,
        expected: usize,
    },
    #[error("the block is not an EMSA-PSS encoding: {0}")]
    NotPss(&'static str),
    #[error("a {len}-byte digest is not a digest (20 to 64 bytes)")]
    DigestLength { len: usize },
    #[error(
        "the {len}-byte message is not what a TLS server signs (TLS 1.3 server \
         CertificateVerify content, or TLS 1.2 randoms with ECDHE parameters)"
    )]
    NotTlsContent { len: usize },
    #[error("malformed request: {0}")]
    Malformed(&'static str),
}

fn key_type_name(id: Id) -> &'static str {
    match id {
        Id::RSA => "RSA",
        Id::RSA_PSS => "RSA-PSS",
        Id::EC => "EC",
        Id::ED25519 => "Ed25519",
        Id::ED448 => "Ed448",
        Id::DSA => "DSA",
        _ => "unsupported",
    }
}

/// Runs one request with the private key (the key holder's side). Refuses anything that
/// is not a signature of the expected shape; see the module documentation.
pub fn perform(key: &PKeyRef<Private>, request: &SignRequest) -> Result<Vec<u8>, TlsError> {
    let wrong_key = || SignRefusal::KeyType {
        request: request.kind(),
        key: key_type_name(key.id()),
    };
    match request {
        SignRequest::RsaPkcs1 { digest_info, .. } => {
            // An RSA-PSS key must never make a PKCS#1 v1.5 signature.
            if key.id() != Id::RSA {
                return Err(wrong_key().into());
            }
            check_digest_info(digest_info)?;
            let rsa = key.rsa().map_err(TlsError::KeyOperation)?;
            let size = rsa.size() as usize;
            if digest_info.len() + 11 > size {
                return Err(SignRefusal::DigestInfoTooLong {
                    len: digest_info.len(),
                    bits: key.bits(),
                }
                .into());
            }
            let mut out = vec![0; size];
            let n = rsa
                .private_encrypt(digest_info, &mut out, Padding::PKCS1)
                .map_err(TlsError::KeyOperation)?;
            out.truncate(n);
            Ok(out)
        }
        SignRequest::RsaPss { encoded, .. } => {
            if key.id() != Id::RSA && key.id() != Id::RSA_PSS {
                return Err(wrong_key().into());
            }
            let rsa = key.rsa().map_err(TlsError::KeyOperation)?;
            check_pss_block(encoded, rsa.n().num_bits().unsigned_abs())?;
            let mut out = vec![0; rsa.size() as usize];
            let n = rsa
                .private_encrypt(encoded, &mut out, Padding::NONE)
                .map_err(TlsError::KeyOperation)?;
            out.truncate(n);
            Ok(out)
        }
        SignRequest::Ecdsa { digest, .. } => {
            if key.id() != Id::EC {
                return Err(wrong_key().into());
            }
            if !(20..=64).contains(&digest.len()) {
                return Err(SignRefusal::DigestLength { len: digest.len() }.into());
            }
            let ec = key.ec_key().map_err(TlsError::KeyOperation)?;
            let sig = EcdsaSig::sign(digest, &ec).map_err(TlsError::KeyOperation)?;
            sig.to_der().map_err(TlsError::KeyOperation)
        }
        SignRequest::EdDsa { message, .. } => {
            if key.id() != Id::ED25519 && key.id() != Id::ED448 {
                return Err(wrong_key().into());
            }
            if !is_tls_server_signed_content(message) {
                return Err(SignRefusal::NotTlsContent { len: message.len() }.into());
            }
            let mut signer = Signer::new_without_digest(key).map_err(TlsError::KeyOperation)?;
            signer
                .sign_oneshot_to_vec(message)
                .map_err(TlsError::KeyOperation)
        }
    }
}

/// The context string of a TLS 1.3 server's CertificateVerify (RFC 8446, 4.4.3).
const TLS13_SERVER_CONTEXT: &[u8] = b"TLS 1.3, server CertificateVerify\0";

/// True for the two things a TLS server signs with an EdDSA key: the TLS 1.3
/// CertificateVerify content (64 spaces, the server context string, a SHA-256 or SHA-384
/// transcript hash), or TLS 1.2's client and server randoms followed by the ECDHE
/// parameters of its ServerKeyExchange (named curve, one public point, nothing after).
pub fn is_tls_server_signed_content(message: &[u8]) -> bool {
    if let Some(rest) = message.strip_prefix(&[0x20; 64][..]) {
        if let Some(hash) = rest.strip_prefix(TLS13_SERVER_CONTEXT) {
            return hash.len() == 32 || hash.len() == 48;
        }
    }
    match message.get(64..) {
        // ECParameters: curve_type named_curve (3), a 2-byte group; then the point<1..255>.
        Some([3, _, _, len, point @ ..]) => *len > 0 && point.len() == usize::from(*len),
        _ => false,
    }
}

/// DER `DigestInfo ::= SEQUENCE { SEQUENCE { OID, NULL }, OCTET STRING }` for a digest of
/// `len` bytes under the algorithm whose OID body is `oid`.
fn digest_info_prefix(oid: &[u8], len: u8) -> Vec<u8> {
    // Every length here is below 128, so each DER length is one byte.
    let algorithm_len = 2 + oid.len() + 2;
    let total = 2 + algorithm_len + 2 + usize::from(len);
    let mut prefix = vec![0x30, total as u8, 0x30, algorithm_len as u8, 0x06];
    prefix.push(oid.len() as u8);
    prefix.extend_from_slice(oid);
    prefix.extend_from_slice(&[0x05, 0x00, 0x04, len]);
    prefix
}

/// The hash OIDs (bodies) a TLS 1.2 PKCS#1 signature may use, with their digest lengths.
const DIGEST_INFO_HASHES: [(&[u8], u8); 5] = [
    // 1.3.14.3.2.26 sha1
    (&[0x2b, 0x0e, 0x03, 0x02, 0x1a], 20),
    // 2.16.840.1.101.3.4.2.4 sha224
    (&[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04], 28),
    // 2.16.840.1.101.3.4.2.1 sha256
    (&[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01], 32),
    // 2.16.840.1.101.3.4.2.2 sha384
    (&[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02], 48),
    // 2.16.840.1.101.3.4.2.3 sha512
    (&[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03], 64),
];

fn check_digest_info(input: &[u8]) -> Result<(), SignRefusal> {
    let matches = DIGEST_INFO_HASHES.iter().any(|(oid, len)| {
        let prefix = digest_info_prefix(oid, *len);
        input.len() == prefix.len() + usize::from(*len) && input.starts_with(&prefix)
    });
    if matches {
        Ok(())
    } else {
        Err(SignRefusal::NotDigestInfo { len: input.len() })
    }
}

/// MGF1 (RFC 8017 B.2.1) of `seed` with `md`, `len` bytes.
fn mgf1(md: MessageDigest, seed: &[u8], len: usize) -> Result<Vec<u8>, SignRefusal> {
    let failed = |_| SignRefusal::Malformed("hash computation failed");
    let mut out = Vec::with_capacity(len + md.size());
    let mut counter: u32 = 0;
    while out.len() < len {
        let mut hasher = Hasher::new(md).map_err(failed)?;
        hasher.update(seed).map_err(failed)?;
        hasher.update(&counter.to_be_bytes()).map_err(failed)?;
        out.extend_from_slice(&hasher.finish().map_err(failed)?);
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    Ok(out)
}

/// Checks that `block` (modulus-sized, as OpenSSL hands it to a raw private operation) is
/// an EMSA-PSS encoding (RFC 8017 9.1.1) for a key of `mod_bits`: zero bits above emBits, a
/// 0xbc trailer, and a DB that unmasks (MGF1 with SHA-256/384/512 or SHA-1) to zero padding,
/// 0x01 and a salt as long as the digest. The message hash itself cannot be checked here.
pub(crate) fn check_pss_block(block: &[u8], mod_bits: u32) -> Result<(), SignRefusal> {
    let k = mod_bits.div_ceil(8) as usize;
    if block.len() != k || mod_bits < 512 {
        return Err(SignRefusal::PssLength {
            len: block.len(),
            bits: mod_bits,
            expected: k,
        });
    }
    let em_bits = mod_bits - 1;
    let em_len = em_bits.div_ceil(8) as usize;
    // When emBits is a multiple of 8 the encoding is one byte shorter than the modulus and
    // the block starts with a zero byte.
    let em = match block.split_at_checked(k - em_len) {
        Some((lead, em)) if lead.iter().all(|b| *b == 0) => em,
        _ => return Err(SignRefusal::NotPss("the leading byte is not zero")),
    };
    let unused_bits = (8 * em_len as u32) - em_bits;
    let top_mask = 0xffu8 >> unused_bits;
    let (&first, _) = em
        .split_first()
        .ok_or(SignRefusal::NotPss("empty encoding"))?;
    if first & !top_mask != 0 {
        return Err(SignRefusal::NotPss("the bits above emBits are not zero"));
    }
    if em.last() != Some(&0xbc) {
        return Err(SignRefusal::NotPss("the trailer is not 0xbc"));
    }
    for md in [
        MessageDigest::sha256(),
        MessageDigest::sha384(),
        MessageDigest::sha512(),
        MessageDigest::sha1(),
    ] {
        let h_len = md.size();
        if em_len < 2 * h_len + 2 {
            continue;
        }
        let db_len = em_len - h_len - 1;
        let (Some(masked), Some(h)) = (em.get(..db_len), em.get(db_len..db_len + h_len)) else {
            continue;
        };
        let mask = mgf1(md, h, db_len)?;
        let mut db: Vec<u8> = masked.iter().zip(&mask).map(|(a, b)| a ^ b).collect();
        if let Some(b) = db.first_mut() {
            *b &= top_mask;
        }
        // DB = PS (zeros) || 0x01 || salt, with the salt as long as the digest.
        let ps_len = db_len - h_len - 1;
        let (Some(ps), Some(&one)) = (db.get(..ps_len), db.get(ps_len)) else {
            continue;
        };
        if one == 0x01 && ps.iter().all(|b| *b == 0) {
            return Ok(());
        }
    }
    Err(SignRefusal::NotPss(
        "DB does not unmask to zero padding, 0x01 and a digest-length salt (SHA-1/256/384/512)",
    ))
}

/// Loads a PEM private key (PKCS#1, SEC1 or PKCS#8; encrypted ones, PKCS#8 or OpenSSL's
/// traditional form, with `pin`), for the process that holds the keys.
pub fn load_private_key(path: &Path, pin: Option<&str>) -> Result<PKey<Private>, TlsError> {
    let pem = read(path, "server key")?;
    let encrypted = pem.windows(9).any(|w| w == b"ENCRYPTED");
    let loaded = match pin {
        Some(pin) => PKey::private_key_from_pem_passphrase(&pem, pin.as_bytes()),
        // No prompt on a terminal: without a PIN an encrypted key is an error.
        None if encrypted => {
            return Err(TlsError::Load {
                what: "server key",
                path: path.to_path_buf(),
                why: "the key is encrypted: set key-pin or pin-file".into(),
            })
        }
        None => PKey::private_key_from_pem(&pem),
    };
    loaded.map_err(|e| TlsError::Load {
        what: "server key",
        path: path.to_path_buf(),
        why: if encrypted {
            format!("cannot decrypt it with the PIN (key-pin or pin-file): {e}")
        } else {
            e.to_string()
        },
    })
}

/// Loads the key (decrypted with `pin` if it is encrypted) for the certificate in
/// `cert_path` (its first PEM certificate) and checks
/// that they belong together and that the key can sign through [`perform`].
pub fn load_key_for_cert(
    cert_path: &Path,
    key_path: &Path,
    pin: Option<&str>,
) -> Result<PKey<Private>, TlsError> {
    let key = load_private_key(key_path, pin)?;
    let cert = first_certificate(cert_path, &read(cert_path, "server certificate")?)?;
    check_key_matches(&cert, cert_path, &key, key_path)?;
    if !matches!(
        key.id(),
        Id::RSA | Id::RSA_PSS | Id::EC | Id::ED25519 | Id::ED448
    ) {
        return Err(TlsError::RemoteKeyType {
            path: cert_path.to_path_buf(),
            key_type: key_type_name(key.id()),
        });
    }
    Ok(key)
}

/// Checks that `key` is the private half of `cert`'s public key; the error names both files.
pub fn check_key_matches(
    cert: &X509Ref,
    cert_path: &Path,
    key: &PKeyRef<Private>,
    key_path: &Path,
) -> Result<(), TlsError> {
    let public = cert.public_key()?;
    if public.public_eq(key) {
        Ok(())
    } else {
        Err(TlsError::Load {
            what: "server key",
            path: key_path.to_path_buf(),
            why: format!(
                "it does not match the certificate in {}",
                cert_path.display()
            ),
        })
    }
}

pub(crate) fn first_certificate(path: &Path, pem: &[u8]) -> Result<X509, TlsError> {
    cert_chain(path, pem)?
        .into_iter()
        .next()
        .ok_or_else(|| TlsError::Load {
            what: "server certificate",
            path: path.to_path_buf(),
            why: "no PEM certificate found".into(),
        })
}

pub(crate) fn cert_chain(path: &Path, pem: &[u8]) -> Result<Vec<X509>, TlsError> {
    let chain = X509::stack_from_pem(pem).map_err(|e| TlsError::Load {
        what: "server certificate",
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    if chain.is_empty() {
        return Err(TlsError::Load {
            what: "server certificate",
            path: path.to_path_buf(),
            why: "no PEM certificate found".into(),
        });
    }
    Ok(chain)
}

/// A certificate (chain) whose key another process holds: the certificate first, then
/// its chain, in PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCert {
    /// Where the PEM came from, for messages.
    pub path: PathBuf,
    pub pem: Vec<u8>,
    /// The key index [`SignRequest`]s for this certificate carry.
    pub key: u32,
}

impl RemoteCert {
    /// Reads the certificate chain from a PEM file.
    pub fn from_file(path: impl Into<PathBuf>, key: u32) -> Result<Self, TlsError> {
        let path = path.into();
        let pem = read(&path, "server certificate")?;
        Ok(Self { path, pem, key })
    }
}

#[cfg(test)]
mod tests;
