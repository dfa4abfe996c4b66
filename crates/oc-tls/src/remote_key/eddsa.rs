//! Ed25519 and Ed448 keys whose signatures run elsewhere.
//!
//! EdDSA keys have no `RSA_METHOD`-style hook. OpenSSL 3 still honours a key that names an
//! ENGINE: its contexts take the engine's `EVP_PKEY_METHOD` (the legacy code path), and
//! EdDSA signs through that method's one-shot `digestsign`. So this module builds, once
//! per process, an engine that offers a copy of OpenSSL's own Ed25519/Ed448 methods with
//! `digestsign` replaced by ours, and makes each delegated key from the certificate's raw
//! public key with that engine. The key carries its [`Holder`] in EVP_PKEY ex_data. The
//! engine is never registered in OpenSSL's engine list: only these keys use it.

#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::ffi::{c_char, c_int, c_uchar};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::OnceLock;

use foreign_types::{ForeignType, ForeignTypeRef};
use openssl::error::ErrorStack;
use openssl::pkey::{Id, PKey, PKeyRef, Public};
use openssl::sign::Verifier;
use openssl_sys as sys;

use super::ffi::{ask, attach, ex_index, holder_at, raise, Holder, CRYPTO_EX_INDEX_EVP_PKEY};
use super::SignRequest;
use crate::TlsError;

/// evp.h: the method signs in one shot (no digest set up by `EVP_DigestSignInit`).
const EVP_PKEY_FLAG_SIGCTX_CUSTOM: c_int = 4;
/// Signature sizes (RFC 8032).
const ED25519_SIGNATURE: usize = 64;
const ED448_SIGNATURE: usize = 114;

#[repr(C)]
struct Engine {
    _opaque: [u8; 0],
}
#[repr(C)]
struct PkeyMethod {
    _opaque: [u8; 0],
}

type DigestSignFn = unsafe extern "C" fn(
    ctx: *mut sys::EVP_MD_CTX,
    sig: *mut c_uchar,
    siglen: *mut usize,
    tbs: *const c_uchar,
    tbslen: usize,
) -> c_int;
type PkeyMethsFn = unsafe extern "C" fn(
    engine: *mut Engine,
    method: *mut *const PkeyMethod,
    nids: *mut *const c_int,
    nid: c_int,
) -> c_int;

// The ENGINE and legacy EVP_PKEY_METHOD API (deprecated in OpenSSL 3.0, still exported).
extern "C" {
    fn ENGINE_new() -> *mut Engine;
    fn ENGINE_set_id(engine: *mut Engine, id: *const c_char) -> c_int;
    fn ENGINE_set_name(engine: *mut Engine, name: *const c_char) -> c_int;
    fn ENGINE_set_pkey_meths(engine: *mut Engine, f: Option<PkeyMethsFn>) -> c_int;
    fn EVP_PKEY_meth_find(kind: c_int) -> *const PkeyMethod;
    fn EVP_PKEY_meth_new(id: c_int, flags: c_int) -> *mut PkeyMethod;
    fn EVP_PKEY_meth_copy(dst: *mut PkeyMethod, src: *const PkeyMethod);
    fn EVP_PKEY_meth_set_digestsign(method: *mut PkeyMethod, f: Option<DigestSignFn>);
    fn EVP_PKEY_new_raw_public_key(
        kind: c_int,
        engine: *mut Engine,
        public: *const c_uchar,
        len: usize,
    ) -> *mut sys::EVP_PKEY;
    fn EVP_MD_CTX_get_pkey_ctx(ctx: *const sys::EVP_MD_CTX) -> *mut sys::EVP_PKEY_CTX;
    fn EVP_PKEY_CTX_get0_pkey(ctx: *mut sys::EVP_PKEY_CTX) -> *mut sys::EVP_PKEY;
    fn EVP_PKEY_set_ex_data(
        key: *mut sys::EVP_PKEY,
        idx: c_int,
        arg: *mut std::ffi::c_void,
    ) -> c_int;
    fn EVP_PKEY_get_ex_data(key: *const sys::EVP_PKEY, idx: c_int) -> *mut std::ffi::c_void;
}

/// Objects built once and only read afterwards (by OpenSSL, from any thread).
struct Shared {
    engine: *mut Engine,
    ed25519: *const PkeyMethod,
    ed448: *const PkeyMethod,
}

// SAFETY: the engine and the two method tables are complete before they are published
// through the OnceLock and never written again; OpenSSL only reads them.
unsafe impl Send for Shared {}
// SAFETY: as above, shared access is read-only.
unsafe impl Sync for Shared {}

/// The NIDs the engine offers methods for, in the order `pkey_meths` reports them.
static NIDS: [c_int; 2] = [sys::NID_ED25519, sys::NID_ED448];

fn shared() -> Option<&'static Shared> {
    static SHARED: OnceLock<Option<Shared>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let ed25519 = method_for(sys::NID_ED25519)?;
            let ed448 = method_for(sys::NID_ED448)?;
            // SAFETY: ENGINE_new returns a new engine or NULL; the setters copy nothing
            // but the static strings' pointers and our callback into it. It is kept for
            // the life of the process (one structure).
            let engine = unsafe { ENGINE_new() };
            if engine.is_null() {
                return None;
            }
            // SAFETY: `engine` is the valid, unshared engine just made.
            let ok = unsafe {
                ENGINE_set_id(engine, c"ferroconnect-remote-eddsa".as_ptr()) == 1
                    && ENGINE_set_name(engine, c"ferroconnect remote EdDSA keys".as_ptr()) == 1
                    && ENGINE_set_pkey_meths(engine, Some(pkey_meths)) == 1
            };
            ok.then_some(Shared {
                engine,
                ed25519,
                ed448,
            })
        })
        .as_ref()
}

/// A copy of OpenSSL's method for `nid` whose one-shot signing is ours.
fn method_for(nid: c_int) -> Option<*const PkeyMethod> {
    // SAFETY: EVP_PKEY_meth_find returns libcrypto's static method or NULL; the new method
    // is ours, filled from it (the copy keeps our id and flags) before anyone sees it.
    unsafe {
        let builtin = EVP_PKEY_meth_find(nid);
        if builtin.is_null() {
            return None;
        }
        let method = EVP_PKEY_meth_new(nid, EVP_PKEY_FLAG_SIGCTX_CUSTOM);
        if method.is_null() {
            return None;
        }
        EVP_PKEY_meth_copy(method, builtin);
        EVP_PKEY_meth_set_digestsign(method, Some(digest_sign));
        Some(method.cast_const())
    }
}

/// The engine's method lookup: the list of NIDs when `method` is NULL, else the method.
unsafe extern "C" fn pkey_meths(
    _engine: *mut Engine,
    method: *mut *const PkeyMethod,
    nids: *mut *const c_int,
    nid: c_int,
) -> c_int {
    let Some(shared) = shared() else { return 0 };
    if method.is_null() {
        if !nids.is_null() {
            // SAFETY: OpenSSL passes a valid out-pointer for the list; NIDS is static.
            unsafe { *nids = NIDS.as_ptr() };
        }
        return NIDS.len() as c_int;
    }
    let found = match nid {
        sys::NID_ED25519 => shared.ed25519,
        sys::NID_ED448 => shared.ed448,
        _ => ptr::null(),
    };
    // SAFETY: `method` is a valid out-pointer (checked non-NULL above).
    unsafe { *method = found };
    c_int::from(!found.is_null())
}

/// `digestsign`: the signature size when `sig` is NULL, else the signature of `tbs`.
unsafe extern "C" fn digest_sign(
    ctx: *mut sys::EVP_MD_CTX,
    sig: *mut c_uchar,
    siglen: *mut usize,
    tbs: *const c_uchar,
    tbslen: usize,
) -> c_int {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: OpenSSL calls this with a live signing context for one of our keys,
        // `siglen` valid, `tbs` holding `tbslen` bytes, and `sig` NULL or with room for
        // `*siglen` bytes.
        unsafe { sign(ctx, sig, siglen, tbs, tbslen) }
    }));
    match outcome {
        Ok(Ok(())) => 1,
        Ok(Err(why)) => {
            raise(&why);
            0
        }
        Err(_) => {
            raise("the remote signer panicked");
            0
        }
    }
}

/// # Safety
/// As `digest_sign`.
unsafe fn sign(
    ctx: *mut sys::EVP_MD_CTX,
    sig: *mut c_uchar,
    siglen: *mut usize,
    tbs: *const c_uchar,
    tbslen: usize,
) -> Result<(), String> {
    if ctx.is_null() || siglen.is_null() || (tbs.is_null() && tbslen > 0) {
        return Err("EdDSA signature called without its buffers".into());
    }
    // SAFETY: `ctx` is live for the call; both getters only read it, and the key stays
    // referenced by the context while we use it.
    let pkey = unsafe { EVP_PKEY_CTX_get0_pkey(EVP_MD_CTX_get_pkey_ctx(ctx)) };
    if pkey.is_null() {
        return Err("EdDSA signature without a key".into());
    }
    // SAFETY: `pkey` is live for the call (above); the reference does not escape it.
    let key: &PKeyRef<Public> = unsafe { PKeyRef::from_ptr(pkey) };
    let size = match key.id() {
        Id::ED25519 => ED25519_SIGNATURE,
        Id::ED448 => ED448_SIGNATURE,
        _ => return Err("EdDSA signature with a key that is not Ed25519 or Ed448".into()),
    };
    if sig.is_null() {
        // SAFETY: `siglen` is valid (checked above).
        unsafe { *siglen = size };
        return Ok(());
    }
    // SAFETY: `siglen` is valid; on input it is the room in `sig`.
    if unsafe { *siglen } < size {
        return Err(format!("{size}-byte EdDSA signature for a smaller buffer"));
    }
    let index = ex_index(CRYPTO_EX_INDEX_EVP_PKEY).ok_or("no ex_data slot for EdDSA keys")?;
    // SAFETY: `pkey` is live (above); reading ex_data has no side effects.
    let holder = unsafe { holder_at(EVP_PKEY_get_ex_data(pkey, index)) }?;
    let message = if tbslen == 0 {
        Vec::new()
    } else {
        // SAFETY: `tbs` holds `tbslen` bytes (contract) and is not written during the call.
        unsafe { std::slice::from_raw_parts(tbs, tbslen) }.to_vec()
    };
    let request = SignRequest::EdDsa {
        key: holder.key,
        message: message.clone(),
    };
    let signature = ask(&holder, &request)?;
    // As for RSA and ECDSA: a wrong or broken key holder is caught before the signature
    // goes out.
    let verified = signature.len() == size
        && Verifier::new_without_digest(key)
            .and_then(|mut v| v.verify_oneshot(&signature, &message))
            .unwrap_or(false);
    if !verified {
        return Err(format!(
            "the key holder's signature does not verify with the public key of {} \
             (does it hold the matching key?)",
            holder.cert.display()
        ));
    }
    // SAFETY: `sig` has room for `*siglen` >= `size` bytes (checked), `signature` is
    // exactly `size` bytes, and the buffers are distinct allocations.
    unsafe {
        ptr::copy_nonoverlapping(signature.as_ptr(), sig, size);
        *siglen = size;
    }
    Ok(())
}

/// A delegated Ed25519/Ed448 key with `public`'s public key.
pub(super) fn eddsa_key(
    public: &PKeyRef<Public>,
    holder: Holder,
) -> Result<PKey<Public>, TlsError> {
    let shared = shared().ok_or_else(ErrorStack::get)?;
    let index = ex_index(CRYPTO_EX_INDEX_EVP_PKEY).ok_or_else(ErrorStack::get)?;
    let raw = public.raw_public_key()?;
    let nid = if public.id() == Id::ED25519 {
        sys::NID_ED25519
    } else {
        sys::NID_ED448
    };
    // SAFETY: `raw` holds the public key's bytes for the call; OpenSSL copies them into a
    // new key of ours (NULL on error) bound to our engine, which lives for the process.
    let pkey = unsafe { EVP_PKEY_new_raw_public_key(nid, shared.engine, raw.as_ptr(), raw.len()) };
    if pkey.is_null() {
        return Err(ErrorStack::get().into());
    }
    // SAFETY: `pkey` is a live EVP_PKEY whose one reference we now own.
    let key = unsafe { PKey::<Public>::from_ptr(pkey) };
    // SAFETY: `key` is live and `index` an EVP_PKEY ex_data slot; EVP_PKEY_set_ex_data
    // matches `attach`'s setter signature.
    unsafe { attach(key.as_ptr(), index, holder, EVP_PKEY_set_ex_data) }?;
    Ok(key)
}
