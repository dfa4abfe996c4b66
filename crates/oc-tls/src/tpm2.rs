//! TPM 2.0 keys for `-k`/`-c` (`-----BEGIN TSS2 PRIVATE KEY-----` files, as
//! openssl_tpm2_engine, tpm2-tss-engine and tpm2-openssl write them), through the tpm2
//! OpenSSL provider (Debian's tpm2-openssl).
//!
//! The provider lives in a library context of its own: loaded into the default one, it
//! takes over operations the TLS stack does with ordinary keys. The key is used as a
//! delegated key ([`crate::remote_key`]): the handshake's signature comes here and the TPM
//! signs the digest. The TPM signs ECDSA digests and RSA with PKCS#1 v1.5 over a digest,
//! but not a pre-encoded RSA-PSS block, so a connection with an RSA key on a TPM uses
//! TLS 1.2 with PKCS#1 signatures ([`needs_pkcs1_tls12`]). The TPM is found as the TSS
//! library finds it (`TPM2OPENSSL_TCTI`, else the kernel's `/dev/tpmrm0` and the usual
//! simulators).

#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::ffi::{c_char, c_int, c_uchar, c_void, CStr};
use std::path::Path;
use std::ptr;
use std::sync::{Arc, Mutex, OnceLock};

use openssl::pkey::Id;
use openssl::ssl::{SslContextBuilder, SslVersion};
use openssl::x509::X509Ref;
use openssl_sys as sys;

use crate::remote_key::{remote_private_key, RemoteSigner, SignRequest};
use crate::TlsError;

/// The PEM label of TPM 2.0 key files.
const TSS2_PEM: &[u8] = b"-----BEGIN TSS2 PRIVATE KEY-----";
/// rsa.h's PKCS#1 v1.5 padding.
const RSA_PKCS1_PADDING: c_int = 1;

extern "C" {
    fn EVP_PKEY_CTX_new_from_pkey(
        libctx: *mut sys::OSSL_LIB_CTX,
        pkey: *mut sys::EVP_PKEY,
        propquery: *const c_char,
    ) -> *mut sys::EVP_PKEY_CTX;
}

/// Whether the key file holds a TPM 2.0 key.
pub fn is_tpm_key(data: &[u8]) -> bool {
    let start = data
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(data.len());
    data.get(start..).is_some_and(|d| d.starts_with(TSS2_PEM))
}

/// A connection that signs with this certificate's TPM key must use TLS 1.2 and PKCS#1
/// signatures: true for RSA keys.
pub fn needs_pkcs1_tls12(cert: &X509Ref) -> bool {
    cert.public_key()
        .is_ok_and(|k| matches!(k.id(), Id::RSA | Id::RSA_PSS))
}

/// The library context with the tpm2 and default providers, made once per process.
struct TpmLibrary(*mut sys::OSSL_LIB_CTX);

// SAFETY: an OSSL_LIB_CTX is safe to use from several threads at once (OpenSSL 3's
// threading rules); this one is never freed.
unsafe impl Send for TpmLibrary {}
// SAFETY: as above.
unsafe impl Sync for TpmLibrary {}

fn library() -> Result<&'static TpmLibrary, String> {
    static LIBRARY: OnceLock<Result<TpmLibrary, String>> = OnceLock::new();
    LIBRARY
        .get_or_init(|| {
            // SAFETY: OSSL_LIB_CTX_new has no preconditions; NULL means failure.
            let ctx = unsafe { sys::OSSL_LIB_CTX_new() };
            if ctx.is_null() {
                return Err("cannot create an OpenSSL library context".into());
            }
            for name in [c"tpm2", c"default"] {
                // SAFETY: `ctx` is a live library context and `name` a C string; the
                // provider stays loaded for the process.
                let provider = unsafe { sys::OSSL_PROVIDER_load(ctx, name.as_ptr()) };
                if provider.is_null() {
                    let name = name.to_string_lossy();
                    return Err(format!(
                        "cannot start OpenSSL's {name} provider ({}): is the TPM there \
                         (TPM2OPENSSL_TCTI, /dev/tpmrm0), and tpm2-openssl installed?",
                        openssl::error::ErrorStack::get()
                    ));
                }
            }
            Ok(TpmLibrary(ctx))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A key in the TPM, as the provider holds it.
struct TpmKey {
    pkey: Mutex<KeyHandle>,
}

struct KeyHandle(*mut sys::EVP_PKEY);

// SAFETY: the EVP_PKEY is only used under the mutex, and freed once, in Drop.
unsafe impl Send for KeyHandle {}

impl Drop for KeyHandle {
    fn drop(&mut self) {
        // SAFETY: the handle owns one reference to a live EVP_PKEY.
        unsafe { sys::EVP_PKEY_free(self.0) };
    }
}

/// The TPM key in `data` (the file `path`) for the certificate `cert`, as a delegated
/// OpenSSL key.
pub fn private_key(
    path: &Path,
    data: &[u8],
    cert: &X509Ref,
) -> Result<openssl::pkey::PKey<openssl::pkey::Private>, TlsError> {
    let failed = |why: String| TlsError::Load {
        what: "TPM 2.0 key",
        path: path.to_path_buf(),
        why,
    };
    let library = library().map_err(&failed)?;
    let handle = decode(library, data).map_err(&failed)?;
    let public = public_der(&handle).map_err(&failed)?;
    if public != cert.public_key()?.public_key_to_der()? {
        return Err(failed(
            "it is not the key of the certificate given with -c".into(),
        ));
    }
    let key = TpmKey {
        pkey: Mutex::new(handle),
    };
    remote_private_key(cert, path, 0, Arc::new(key))
}

fn decode(library: &TpmLibrary, data: &[u8]) -> Result<KeyHandle, String> {
    let mut pkey: *mut sys::EVP_PKEY = ptr::null_mut();
    // SAFETY: `library.0` is a live library context; the strings are C strings; `pkey`
    // receives the decoded key (owned by us) when decoding succeeds.
    let decoder = unsafe {
        sys::OSSL_DECODER_CTX_new_for_pkey(
            &mut pkey,
            c"PEM".as_ptr(),
            ptr::null(),
            ptr::null(),
            sys::EVP_PKEY_KEYPAIR,
            library.0,
            ptr::null(),
        )
    };
    if decoder.is_null() {
        return Err(format!(
            "no decoder for TPM keys ({})",
            openssl::error::ErrorStack::get()
        ));
    }
    let mut input = data.as_ptr();
    let mut left = data.len();
    // SAFETY: `decoder` is live; `input`/`left` describe `data`, which outlives the call.
    let decoded = unsafe { sys::OSSL_DECODER_from_data(decoder, &mut input, &mut left) };
    // SAFETY: `decoder` is ours and no longer used.
    unsafe { sys::OSSL_DECODER_CTX_free(decoder) };
    if decoded != 1 || pkey.is_null() {
        return Err(format!(
            "the TPM cannot load it ({}); is the TPM there (TPM2OPENSSL_TCTI, /dev/tpmrm0) and \
             is this its key?",
            openssl::error::ErrorStack::get()
        ));
    }
    Ok(KeyHandle(pkey))
}

/// The key's SubjectPublicKeyInfo, as the provider exports it.
fn public_der(handle: &KeyHandle) -> Result<Vec<u8>, String> {
    let mut out: *mut c_uchar = ptr::null_mut();
    // SAFETY: the key is live; i2d_PUBKEY allocates `out` (freed below) on success.
    let len = unsafe { sys::i2d_PUBKEY(handle.0, &mut out) };
    let Ok(len) = usize::try_from(len) else {
        return Err(format!(
            "cannot read its public key ({})",
            openssl::error::ErrorStack::get()
        ));
    };
    if out.is_null() {
        return Err("cannot read its public key".into());
    }
    // SAFETY: `out` holds `len` bytes written by i2d_PUBKEY.
    let der = unsafe { std::slice::from_raw_parts(out, len) }.to_vec();
    // SAFETY: `out` was allocated by OpenSSL for us.
    unsafe { sys::CRYPTO_free(out.cast::<c_void>(), c"tpm2.rs".as_ptr(), 0) };
    Ok(der)
}

/// The digest algorithm of a PKCS#1 `DigestInfo` and the digest in it.
fn split_digest_info(info: &[u8]) -> Option<(&'static CStr, &[u8])> {
    const PREFIXES: [(&CStr, &[u8]); 4] = [
        (
            c"SHA1",
            &[
                0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
                0x14,
            ],
        ),
        (
            c"SHA256",
            &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
        ),
        (
            c"SHA384",
            &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
        ),
        (
            c"SHA512",
            &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        ),
    ];
    PREFIXES.iter().find_map(|(name, prefix)| {
        let digest = info.strip_prefix(*prefix)?;
        let wanted = usize::from(*prefix.last()?);
        (digest.len() == wanted).then_some((*name, digest))
    })
}

impl RemoteSigner for TpmKey {
    fn sign(&self, request: &SignRequest) -> Result<Vec<u8>, String> {
        let handle = self
            .pkey
            .lock()
            .map_err(|_| "the TPM key's lock is poisoned")?;
        match request {
            SignRequest::Ecdsa { digest, .. } => {
                let md = digest_by_size(digest.len())
                    .ok_or("the TPM signs SHA-1 and SHA-2 digests only")?;
                sign_digest(&handle, digest, md, false)
            }
            SignRequest::RsaPkcs1 { digest_info, .. } => {
                let (md, digest) = split_digest_info(digest_info)
                    .ok_or("the TPM signs SHA-1 and SHA-2 DigestInfos only")?;
                sign_digest(&handle, digest, md, true)
            }
            SignRequest::RsaPss { .. } => Err(
                "the TPM cannot sign a pre-encoded RSA-PSS block (TLS 1.2 with PKCS#1 is used \
                 for TPM RSA keys)"
                    .into(),
            ),
            SignRequest::EdDsa { .. } => Err("EdDSA keys in a TPM are not supported".into()),
        }
    }
}

/// The SHA algorithm of a digest of this size: the TPM must be told (it takes a P-384
/// key's digest for SHA-256 otherwise).
fn digest_by_size(len: usize) -> Option<&'static CStr> {
    match len {
        20 => Some(c"SHA1"),
        32 => Some(c"SHA256"),
        48 => Some(c"SHA384"),
        64 => Some(c"SHA512"),
        _ => None,
    }
}

/// Signs a digest made with `md` with the TPM: ECDSA (a DER `ECDSA-Sig-Value`), or RSA
/// PKCS#1 v1.5 (`pkcs1`).
fn sign_digest(
    handle: &KeyHandle,
    digest: &[u8],
    md: &CStr,
    pkcs1: bool,
) -> Result<Vec<u8>, String> {
    let library = library()?;
    let tpm_error = |what: &str| {
        format!(
            "the TPM refused to sign ({what}: {})",
            openssl::error::ErrorStack::get()
        )
    };
    // SAFETY: the library context and key are live; the context made here is freed below.
    let ctx = unsafe { EVP_PKEY_CTX_new_from_pkey(library.0, handle.0, ptr::null()) };
    if ctx.is_null() {
        return Err(tpm_error("no signing context"));
    }
    let signed = (|| {
        // SAFETY: `ctx` is a live EVP_PKEY_CTX for the calls below; the md is fetched
        // from our library context and freed after use.
        unsafe {
            if sys::EVP_PKEY_sign_init(ctx) != 1 {
                return Err(tpm_error("sign init"));
            }
            let md = sys::EVP_MD_fetch(library.0, md.as_ptr(), ptr::null());
            if md.is_null() {
                return Err(tpm_error("digest"));
            }
            let set = (!pkcs1 || sys::EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1)
                && sys::EVP_PKEY_CTX_set_signature_md(ctx, md) == 1;
            sys::EVP_MD_free(md);
            if !set {
                return Err(tpm_error("digest algorithm"));
            }
            let mut len = 0;
            if sys::EVP_PKEY_sign(
                ctx,
                ptr::null_mut(),
                &mut len,
                digest.as_ptr(),
                digest.len(),
            ) != 1
            {
                return Err(tpm_error("size"));
            }
            let mut signature = vec![0u8; len];
            if sys::EVP_PKEY_sign(
                ctx,
                signature.as_mut_ptr(),
                &mut len,
                digest.as_ptr(),
                digest.len(),
            ) != 1
            {
                return Err(tpm_error("sign"));
            }
            signature.truncate(len);
            Ok(signature)
        }
    })();
    // SAFETY: `ctx` is ours and no longer used.
    unsafe { sys::EVP_PKEY_CTX_free(ctx) };
    signed
}

/// TLS 1.2 at most, and PKCS#1 v1.5 client signatures: for RSA keys in a TPM.
pub(crate) fn pkcs1_tls12_only(builder: &mut SslContextBuilder) -> Result<(), TlsError> {
    /// ssl.h's `SSL_CTRL_SET_CLIENT_SIGALGS_LIST`.
    const SET_CLIENT_SIGALGS_LIST: c_int = 102;
    let older = [SslVersion::SSL3, SslVersion::TLS1, SslVersion::TLS1_1];
    let limit = match builder.max_proto_version() {
        Some(max) if older.contains(&max) => max,
        _ => SslVersion::TLS1_2,
    };
    builder.set_max_proto_version(Some(limit))?;
    let list = c"RSA+SHA256:RSA+SHA384:RSA+SHA512:RSA+SHA1";
    // SAFETY: the builder's SSL_CTX is live; the control copies the C string.
    let set = unsafe {
        sys::SSL_CTX_ctrl(
            builder.as_ptr(),
            SET_CLIENT_SIGALGS_LIST,
            0,
            list.as_ptr().cast_mut().cast(),
        )
    };
    match set {
        1 => Ok(()),
        _ => Err(openssl::error::ErrorStack::get().into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tpm_key_files_and_digest_infos() {
        assert!(is_tpm_key(b"\n-----BEGIN TSS2 PRIVATE KEY-----\nMII"));
        assert!(!is_tpm_key(b"-----BEGIN PRIVATE KEY-----\n"));
        assert!(!is_tpm_key(b""));
        let mut info = vec![
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ];
        info.extend_from_slice(&[7; 32]);
        let (md, digest) = split_digest_info(&info).unwrap();
        assert_eq!((md, digest), (c"SHA256", &[7u8; 32][..]));
        assert!(split_digest_info(&info[..info.len() - 1]).is_none());
        assert!(split_digest_info(&[]).is_none());
    }
}
