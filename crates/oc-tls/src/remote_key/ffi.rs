//! OpenSSL keys whose private operations run elsewhere: an `RSA_METHOD` and an
//! `EC_KEY_METHOD` whose signing entry points hand the input to a [`RemoteSigner`].
//!
//! OpenSSL 3 keeps keys with a non-default method ("foreign" keys) on its legacy code path,
//! so a handshake signature reaches `priv_enc` (RSA: the DigestInfo with PKCS#1 padding, or
//! the finished PSS block with no padding) or `sign_sig` (ECDSA: the digest). Each key
//! carries its signer and key index in ex_data, freed by OpenSSL's free callback when the
//! key goes away (and copied on a dup), so a key may outlive the context that made it.
//! The two method tables are built once per process and never freed.

#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::ffi::{c_char, c_int, c_long, c_uchar, c_uint, c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::{Arc, OnceLock};

use foreign_types::{ForeignType, ForeignTypeRef};
use openssl::ec::{EcKey, EcKeyRef};
use openssl::ecdsa::EcdsaSig;
use openssl::error::ErrorStack;
use openssl::pkey::{Id, PKey, PKeyRef, Private, Public};
use openssl::rsa::{Padding, Rsa, RsaRef};
use openssl::ssl::SslContextBuilder;
use openssl::x509::X509Ref;
use openssl_sys as sys;

use super::{RemoteSigner, SignRequest};
use crate::TlsError;

/// `CRYPTO_EX_INDEX_EC_KEY` / `CRYPTO_EX_INDEX_RSA` from crypto.h.
const CRYPTO_EX_INDEX_EC_KEY: c_int = 8;
const CRYPTO_EX_INDEX_RSA: c_int = 9;
pub(super) const CRYPTO_EX_INDEX_EVP_PKEY: c_int = 17;
/// Paddings from rsa.h that reach `priv_enc`.
const RSA_PKCS1_PADDING: c_int = 1;
const RSA_NO_PADDING: c_int = 3;
/// rsa.h: private operations do not need the private components.
const RSA_FLAG_EXT_PKEY: c_int = 0x0020;
/// rsa.h: the key is an RSASSA-PSS key.
const RSA_FLAG_TYPE_RSASSAPSS: c_int = 0x1000;
/// err.h: `ERR_LIB_USER` and `ERR_R_OPERATION_FAIL` (263 | ERR_R_FATAL).
pub(crate) const ERR_LIB_USER: c_int = 128;
const ERR_R_OPERATION_FAIL: c_int = 263 | (0x3 << 18);

/// ec.h's `EC_KEY_METHOD`, which openssl-sys does not declare.
#[repr(C)]
struct EcKeyMethod {
    _opaque: [u8; 0],
}

type RsaPrivFn = unsafe extern "C" fn(
    flen: c_int,
    from: *const c_uchar,
    to: *mut c_uchar,
    rsa: *mut sys::RSA,
    padding: c_int,
) -> c_int;
type EcSignFn = unsafe extern "C" fn(
    kind: c_int,
    dgst: *const c_uchar,
    dlen: c_int,
    sig: *mut c_uchar,
    siglen: *mut c_uint,
    kinv: *const sys::BIGNUM,
    r: *const sys::BIGNUM,
    eckey: *mut sys::EC_KEY,
) -> c_int;
type EcSignSetupFn = unsafe extern "C" fn(
    eckey: *mut sys::EC_KEY,
    ctx: *mut sys::BN_CTX,
    kinvp: *mut *mut sys::BIGNUM,
    rp: *mut *mut sys::BIGNUM,
) -> c_int;
type EcSignSigFn = unsafe extern "C" fn(
    dgst: *const c_uchar,
    dlen: c_int,
    kinv: *const sys::BIGNUM,
    r: *const sys::BIGNUM,
    eckey: *mut sys::EC_KEY,
) -> *mut sys::ECDSA_SIG;

// The legacy method API (deprecated in OpenSSL 3.0, still exported by libcrypto 3.x).
extern "C" {
    fn RSA_PKCS1_OpenSSL() -> *const sys::RSA_METHOD;
    fn RSA_meth_dup(meth: *const sys::RSA_METHOD) -> *mut sys::RSA_METHOD;
    fn RSA_meth_set1_name(meth: *mut sys::RSA_METHOD, name: *const c_char) -> c_int;
    fn RSA_meth_get_flags(meth: *const sys::RSA_METHOD) -> c_int;
    fn RSA_meth_set_flags(meth: *mut sys::RSA_METHOD, flags: c_int) -> c_int;
    fn RSA_meth_set_priv_enc(meth: *mut sys::RSA_METHOD, f: Option<RsaPrivFn>) -> c_int;
    fn RSA_meth_set_priv_dec(meth: *mut sys::RSA_METHOD, f: Option<RsaPrivFn>) -> c_int;
    fn RSA_set_method(rsa: *mut sys::RSA, meth: *const sys::RSA_METHOD) -> c_int;
    fn RSA_set_flags(rsa: *mut sys::RSA, flags: c_int);
    fn RSA_set_ex_data(rsa: *mut sys::RSA, idx: c_int, arg: *mut c_void) -> c_int;
    fn RSA_get_ex_data(rsa: *const sys::RSA, idx: c_int) -> *mut c_void;

    fn EC_KEY_OpenSSL() -> *const EcKeyMethod;
    fn EC_KEY_METHOD_new(meth: *const EcKeyMethod) -> *mut EcKeyMethod;
    fn EC_KEY_METHOD_get_sign(
        meth: *const EcKeyMethod,
        psign: *mut Option<EcSignFn>,
        psign_setup: *mut Option<EcSignSetupFn>,
        psign_sig: *mut Option<EcSignSigFn>,
    );
    fn EC_KEY_METHOD_set_sign(
        meth: *mut EcKeyMethod,
        sign: Option<EcSignFn>,
        sign_setup: Option<EcSignSetupFn>,
        sign_sig: Option<EcSignSigFn>,
    );
    fn EC_KEY_set_method(key: *mut sys::EC_KEY, meth: *const EcKeyMethod) -> c_int;
    fn EC_KEY_set_ex_data(key: *mut sys::EC_KEY, idx: c_int, arg: *mut c_void) -> c_int;
    fn EC_KEY_get_ex_data(key: *const sys::EC_KEY, idx: c_int) -> *mut c_void;
}

/// Releases an owned OpenSSL object without freeing it (its reference passes to the caller).
pub(super) fn into_raw<T: ForeignType>(object: T) -> *mut T::CType {
    let raw = object.as_ptr();
    std::mem::forget(object);
    raw
}

/// What a remote key's ex_data slot holds (as a `Box<Holder>`).
#[derive(Clone)]
pub(super) struct Holder {
    pub(super) signer: Arc<dyn RemoteSigner>,
    pub(super) key: u32,
    pub(super) cert: PathBuf,
}

/// A method table built once and only read afterwards.
struct Table<T>(*mut T);

// SAFETY: the table is filled in before it is published through the OnceLock and never
// written again; OpenSSL only reads it, from whichever thread runs a handshake.
unsafe impl<T> Send for Table<T> {}
// SAFETY: as above, shared access is read-only.
unsafe impl<T> Sync for Table<T> {}

fn rsa_method() -> Option<*const sys::RSA_METHOD> {
    static METHOD: OnceLock<Option<Table<sys::RSA_METHOD>>> = OnceLock::new();
    METHOD
        .get_or_init(|| {
            // SAFETY: RSA_PKCS1_OpenSSL returns libcrypto's static default table, which
            // RSA_meth_dup copies into a new allocation that we own (and keep forever).
            let meth = unsafe { RSA_meth_dup(RSA_PKCS1_OpenSSL()) };
            if meth.is_null() {
                return None;
            }
            // SAFETY: `meth` is the valid table just allocated and not yet shared; the
            // setters only store the name copy, flags and function pointers in it. The
            // callbacks have exactly the C signatures OpenSSL calls them with.
            let ok = unsafe {
                RSA_meth_set1_name(meth, c"ferroconnect remote key".as_ptr()) == 1
                    && RSA_meth_set_flags(meth, RSA_meth_get_flags(meth) | RSA_FLAG_EXT_PKEY) == 1
                    && RSA_meth_set_priv_enc(meth, Some(rsa_priv_enc)) == 1
                    && RSA_meth_set_priv_dec(meth, Some(rsa_priv_dec)) == 1
            };
            // On failure the table is leaked rather than freed: it is a one-off.
            ok.then_some(Table(meth))
        })
        .as_ref()
        .map(|t| t.0.cast_const())
}

fn ec_method() -> Option<*const EcKeyMethod> {
    static METHOD: OnceLock<Option<Table<EcKeyMethod>>> = OnceLock::new();
    METHOD
        .get_or_init(|| {
            // SAFETY: EC_KEY_OpenSSL returns libcrypto's static default table, which
            // EC_KEY_METHOD_new copies into a new allocation that we own (and keep forever).
            let meth = unsafe { EC_KEY_METHOD_new(EC_KEY_OpenSSL()) };
            if meth.is_null() {
                return None;
            }
            let mut sign: Option<EcSignFn> = None;
            let mut setup: Option<EcSignSetupFn> = None;
            let mut sign_sig: Option<EcSignSigFn> = None;
            // SAFETY: `meth` is valid and unshared; the getter writes the three current
            // function pointers through pointers to our locals, the setter stores them back
            // with our `sign_sig`. The default `sign` DER-encodes what `sign_sig` returns.
            unsafe {
                EC_KEY_METHOD_get_sign(meth, &mut sign, &mut setup, &mut sign_sig);
                EC_KEY_METHOD_set_sign(meth, sign, setup, Some(ec_sign_sig));
            }
            Some(Table(meth))
        })
        .as_ref()
        .map(|t| t.0.cast_const())
}

/// The ex_data slot for [`Holder`]s in objects of `class` (RSA, EC_KEY or EVP_PKEY), allocated once.
pub(super) fn ex_index(class: c_int) -> Option<c_int> {
    static RSA: OnceLock<c_int> = OnceLock::new();
    static EC: OnceLock<c_int> = OnceLock::new();
    static PKEY: OnceLock<c_int> = OnceLock::new();
    let cell = match class {
        CRYPTO_EX_INDEX_RSA => &RSA,
        CRYPTO_EX_INDEX_EC_KEY => &EC,
        _ => &PKEY,
    };
    let index = *cell.get_or_init(|| {
        // SAFETY: registers a slot with our dup and free callbacks, whose signatures are
        // the ones openssl-sys declares for OpenSSL 3; no argument pointer is passed.
        unsafe {
            sys::CRYPTO_get_ex_new_index(
                class,
                0,
                ptr::null_mut(),
                None,
                Some(dup_holder),
                Some(free_holder),
            )
        }
    });
    (index >= 0).then_some(index)
}

/// ex_data free callback: drops the key's `Box<Holder>` (called for every RSA/EC_KEY
/// freed in the process, with NULL when the slot is empty).
unsafe extern "C" fn free_holder(
    _parent: *mut c_void,
    ptr: *mut c_void,
    _ad: *mut sys::CRYPTO_EX_DATA,
    _idx: c_int,
    _argl: c_long,
    _argp: *mut c_void,
) {
    if ptr.is_null() {
        return;
    }
    // SAFETY: a non-NULL value in our slot is always a `Box<Holder>` made by
    // `Box::into_raw` (in `attach` or `dup_holder`); OpenSSL frees each object, and so
    // calls this for each value, once.
    let holder = unsafe { Box::from_raw(ptr.cast::<Holder>()) };
    // A signer whose destructor panics must not unwind into C.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(holder)));
}

/// ex_data dup callback (`RSA_dup`, `EC_KEY_dup`): the copy gets its own `Box<Holder>`, so
/// each object frees exactly its own.
unsafe extern "C" fn dup_holder(
    _to: *mut sys::CRYPTO_EX_DATA,
    _from: *const sys::CRYPTO_EX_DATA,
    from_d: *mut *mut c_void,
    _idx: c_int,
    _argl: c_long,
    _argp: *mut c_void,
) -> c_int {
    if from_d.is_null() {
        return 1;
    }
    // SAFETY: OpenSSL passes a pointer to the value it is about to store in the copy.
    let value = unsafe { *from_d };
    if value.is_null() {
        return 1;
    }
    // SAFETY: a non-NULL value in our slot is a live `Box<Holder>` owned by the source
    // object, which outlives this call; we only read it to clone it.
    let copy = catch_unwind(AssertUnwindSafe(|| unsafe {
        (*value.cast::<Holder>()).clone()
    }));
    match copy {
        Ok(copy) => {
            // SAFETY: replaces the value OpenSSL will store in the copy with the new box.
            unsafe { *from_d = Box::into_raw(Box::new(copy)).cast() };
            1
        }
        Err(_) => {
            // SAFETY: as above; the copy gets no holder rather than a shared one.
            unsafe { *from_d = ptr::null_mut() };
            0
        }
    }
}

/// Puts `message` on OpenSSL's error queue, where the handshake error picks it up.
pub(super) fn raise(message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    // SAFETY: ERR_new/ERR_set_debug/ERR_set_error record an error in this thread's queue;
    // the strings are NUL-terminated and live across the calls, and the format "%s" takes
    // exactly the one string argument given (OpenSSL copies it).
    unsafe {
        sys::ERR_new();
        sys::ERR_set_debug(c"oc-tls remote key".as_ptr(), 0, c"remote signer".as_ptr());
        sys::ERR_set_error(
            ERR_LIB_USER,
            ERR_R_OPERATION_FAIL,
            c"%s".as_ptr(),
            text.as_ptr(),
        );
    }
}

/// The holder in `ptr` (an ex_data value), cloned.
///
/// # Safety
/// `ptr` is NULL or a value of our ex_data slot of an object that is alive for the call.
pub(super) unsafe fn holder_at(ptr: *mut c_void) -> Result<Holder, String> {
    if ptr.is_null() {
        return Err("the key has no remote signer attached".into());
    }
    // SAFETY: per the contract, a live `Box<Holder>` owned by the object.
    Ok(unsafe { (*ptr.cast::<Holder>()).clone() })
}

pub(super) fn ask(holder: &Holder, request: &SignRequest) -> Result<Vec<u8>, String> {
    holder.signer.sign(request).map_err(|why| {
        format!(
            "the key holder refused to sign for {} (key {}): {why}",
            holder.cert.display(),
            holder.key
        )
    })
}

/// `priv_enc`: the only private RSA operation a TLS server signature needs.
unsafe extern "C" fn rsa_priv_enc(
    flen: c_int,
    from: *const c_uchar,
    to: *mut c_uchar,
    rsa: *mut sys::RSA,
    padding: c_int,
) -> c_int {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: OpenSSL calls this with `from` holding `flen` bytes, `to` room for
        // RSA_size(rsa) bytes, and `rsa` a live key with this method.
        unsafe { rsa_sign(flen, from, to, rsa, padding) }
    }));
    match outcome {
        Ok(Ok(len)) => len,
        Ok(Err(why)) => {
            raise(&why);
            -1
        }
        Err(_) => {
            raise("the remote signer panicked");
            -1
        }
    }
}

/// # Safety
/// As RSA_METHOD's `priv_enc`: `from` holds `flen` bytes, `to` has room for
/// RSA_size(rsa) bytes, `rsa` is a live RSA key using our method.
unsafe fn rsa_sign(
    flen: c_int,
    from: *const c_uchar,
    to: *mut c_uchar,
    rsa: *mut sys::RSA,
    padding: c_int,
) -> Result<c_int, String> {
    if rsa.is_null() || from.is_null() || to.is_null() {
        return Err("RSA signature called without its buffers".into());
    }
    let index = ex_index(CRYPTO_EX_INDEX_RSA).ok_or("no ex_data slot for RSA keys")?;
    // SAFETY: `rsa` is live for the call (contract); reading ex_data has no side effects.
    let holder = unsafe { holder_at(RSA_get_ex_data(rsa, index)) }?;
    // SAFETY: `rsa` is a live RSA for the duration of this call; the reference does not
    // escape it. Only public operations are used through it.
    let key: &RsaRef<Public> = unsafe { RsaRef::from_ptr(rsa) };
    let size = key.size() as usize;
    let len = usize::try_from(flen).map_err(|_| "negative input length")?;
    if len > size {
        return Err(format!("{len}-byte input for a {size}-byte RSA key"));
    }
    // SAFETY: `from` holds `flen` bytes (contract) and is not written during the call.
    let input = unsafe { std::slice::from_raw_parts(from, len) }.to_vec();
    let request = match padding {
        RSA_PKCS1_PADDING => SignRequest::RsaPkcs1 {
            key: holder.key,
            digest_info: input.clone(),
        },
        RSA_NO_PADDING => SignRequest::RsaPss {
            key: holder.key,
            encoded: input.clone(),
        },
        other => return Err(format!("RSA padding {other} is not delegated")),
    };
    let signature = ask(&holder, &request)?;
    if signature.len() != size {
        return Err(format!(
            "the key holder answered {} bytes for a {size}-byte RSA key ({})",
            signature.len(),
            holder.cert.display()
        ));
    }
    // Check the answer with the public key before it goes out: a key holder with the
    // wrong key (or a broken one) gives a clear error here instead of a bad signature.
    let mut recovered = vec![0u8; size];
    let pad = if padding == RSA_PKCS1_PADDING {
        Padding::PKCS1
    } else {
        Padding::NONE
    };
    let verified = key
        .public_decrypt(&signature, &mut recovered, pad)
        .is_ok_and(|n| recovered.get(..n) == Some(&input[..]));
    if !verified {
        return Err(format!(
            "the key holder's signature does not verify with the public key of {} \
             (does it hold the matching key?)",
            holder.cert.display()
        ));
    }
    // SAFETY: `to` has room for RSA_size(rsa) = `size` bytes (contract), `signature` is
    // exactly `size` bytes, and the two buffers are distinct allocations.
    unsafe { ptr::copy_nonoverlapping(signature.as_ptr(), to, size) };
    c_int::try_from(size).map_err(|_| "RSA size out of range".into())
}

/// `priv_dec`: refused. Without it, static-RSA key exchange cannot work, and the key
/// holder is never asked to decrypt.
unsafe extern "C" fn rsa_priv_dec(
    _flen: c_int,
    _from: *const c_uchar,
    _to: *mut c_uchar,
    _rsa: *mut sys::RSA,
    _padding: c_int,
) -> c_int {
    raise("RSA decryption with a remote key is not supported (no static-RSA key exchange)");
    -1
}

/// `sign_sig`: the ECDSA signature of a digest, as a fresh `ECDSA_SIG` (NULL on error).
unsafe extern "C" fn ec_sign_sig(
    dgst: *const c_uchar,
    dlen: c_int,
    _kinv: *const sys::BIGNUM,
    _r: *const sys::BIGNUM,
    eckey: *mut sys::EC_KEY,
) -> *mut sys::ECDSA_SIG {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: OpenSSL calls this with `dgst` holding `dlen` bytes and `eckey` a live
        // key with this method.
        unsafe { ec_sign(dgst, dlen, eckey) }
    }));
    match outcome {
        Ok(Ok(sig)) => into_raw(sig),
        Ok(Err(why)) => {
            raise(&why);
            ptr::null_mut()
        }
        Err(_) => {
            raise("the remote signer panicked");
            ptr::null_mut()
        }
    }
}

/// # Safety
/// As EC_KEY_METHOD's `sign_sig`: `dgst` holds `dlen` bytes, `eckey` is a live EC key
/// using our method.
unsafe fn ec_sign(
    dgst: *const c_uchar,
    dlen: c_int,
    eckey: *mut sys::EC_KEY,
) -> Result<EcdsaSig, String> {
    if eckey.is_null() || dgst.is_null() {
        return Err("ECDSA signature called without its buffers".into());
    }
    let index = ex_index(CRYPTO_EX_INDEX_EC_KEY).ok_or("no ex_data slot for EC keys")?;
    // SAFETY: `eckey` is live for the call (contract); reading ex_data has no side effects.
    let holder = unsafe { holder_at(EC_KEY_get_ex_data(eckey, index)) }?;
    let len = usize::try_from(dlen).map_err(|_| "negative digest length")?;
    // SAFETY: `dgst` holds `dlen` bytes (contract) and is not written during the call.
    let digest = unsafe { std::slice::from_raw_parts(dgst, len) }.to_vec();
    let request = SignRequest::Ecdsa {
        key: holder.key,
        digest: digest.clone(),
    };
    let der = ask(&holder, &request)?;
    let sig = EcdsaSig::from_der(&der).map_err(|_| {
        format!(
            "the key holder's answer for {} is not a DER ECDSA signature",
            holder.cert.display()
        )
    })?;
    // SAFETY: `eckey` is a live EC_KEY for the duration of this call; the reference does
    // not escape it and is only used to verify (a public operation).
    let key: &EcKeyRef<Public> = unsafe { EcKeyRef::from_ptr(eckey) };
    // Verifying also bounds r and s by the group order, so OpenSSL's DER encoding of the
    // result fits the buffer it sized for this key.
    if !sig.verify(&digest, key).unwrap_or(false) {
        return Err(format!(
            "the key holder's signature does not verify with the public key of {} \
             (does it hold the matching key?)",
            holder.cert.display()
        ));
    }
    Ok(sig)
}

/// Boxes the holder into the ex_data slot `index` of `object` with `set`.
///
/// # Safety
/// `object` is a live object of the class `index` was registered for, and `set` is that
/// class's `*_set_ex_data`.
pub(super) unsafe fn attach<T>(
    object: *mut T,
    index: c_int,
    holder: Holder,
    set: unsafe extern "C" fn(*mut T, c_int, *mut c_void) -> c_int,
) -> Result<(), ErrorStack> {
    let raw = Box::into_raw(Box::new(holder));
    // SAFETY: `object` is live (contract); on success the object owns the box, which our
    // free callback drops when OpenSSL frees it.
    if unsafe { set(object, index, raw.cast()) } == 1 {
        Ok(())
    } else {
        // SAFETY: the slot did not take the box, so it is still ours alone.
        drop(unsafe { Box::from_raw(raw) });
        Err(ErrorStack::get())
    }
}

/// The error for certificates whose keys cannot be delegated.
fn unsupported(path: &Path, key_type: &'static str) -> TlsError {
    TlsError::RemoteKeyType {
        path: path.to_path_buf(),
        key_type,
    }
}

/// An OpenSSL private key for `cert` whose signatures `signer` makes (as key `key`).
/// RSA, RSA-PSS (without parameter restrictions), ECDSA, Ed25519 and Ed448 keys can be
/// delegated;
/// anything else is refused with an error naming `path`.
pub(crate) fn remote_private_key(
    cert: &X509Ref,
    path: &Path,
    key: u32,
    signer: Arc<dyn RemoteSigner>,
) -> Result<PKey<Private>, TlsError> {
    let public = cert.public_key()?;
    let holder = Holder {
        signer,
        key,
        cert: path.to_path_buf(),
    };
    let pkey = match public.id() {
        Id::RSA => rsa_key(&public, holder, false)?,
        Id::RSA_PSS => {
            if pss_key_has_parameters(&public)? {
                return Err(unsupported(path, "RSA-PSS with parameter restrictions"));
            }
            rsa_key(&public, holder, true)?
        }
        Id::EC => ec_key(&public, holder)?,
        Id::ED25519 | Id::ED448 => super::eddsa::eddsa_key(&public, holder)?,
        Id::DSA => return Err(unsupported(path, "DSA")),
        _ => return Err(unsupported(path, "an unsupported key type")),
    };
    // SAFETY: the `Private` marker only says that private operations are available; they
    // are, through the key's method. The pointer is an owned EVP_PKEY just released.
    Ok(unsafe { PKey::<Private>::from_ptr(into_raw(pkey)) })
}

fn rsa_key(public: &PKeyRef<Public>, holder: Holder, pss: bool) -> Result<PKey<Public>, TlsError> {
    let method = rsa_method().ok_or_else(ErrorStack::get)?;
    let index = ex_index(CRYPTO_EX_INDEX_RSA).ok_or_else(ErrorStack::get)?;
    let cert_rsa = public.rsa()?;
    // A fresh RSA object of our own: the one above may be shared with the certificate.
    let rsa = Rsa::from_public_components(cert_rsa.n().to_owned()?, cert_rsa.e().to_owned()?)?;
    // SAFETY: `rsa` is a live RSA we own exclusively; RSA_set_method finishes the default
    // method and installs ours (a table that lives for the process).
    if unsafe { RSA_set_method(rsa.as_ptr(), method) } != 1 {
        return Err(ErrorStack::get().into());
    }
    // SAFETY: `rsa` is live and `index` an RSA ex_data slot; RSA_set_ex_data matches
    // `attach`'s setter signature.
    unsafe { attach(rsa.as_ptr(), index, holder, RSA_set_ex_data) }?;
    if !pss {
        return Ok(PKey::from_rsa(rsa)?);
    }
    // SAFETY: `rsa` is live and ours; the flag marks it as an RSASSA-PSS key as OpenSSL's
    // own decoder does.
    unsafe { RSA_set_flags(rsa.as_ptr(), RSA_FLAG_TYPE_RSASSAPSS) };
    // SAFETY: EVP_PKEY_new returns a new empty key or NULL.
    let pkey = unsafe { sys::EVP_PKEY_new() };
    if pkey.is_null() {
        return Err(ErrorStack::get().into());
    }
    // SAFETY: `pkey` is ours and empty; on success EVP_PKEY_assign takes over our
    // reference to `rsa` (released below), on failure it takes nothing.
    if unsafe { sys::EVP_PKEY_assign(pkey, sys::EVP_PKEY_RSA_PSS, rsa.as_ptr().cast()) } != 1 {
        let err = ErrorStack::get();
        // SAFETY: `pkey` is ours and holds nothing.
        unsafe { sys::EVP_PKEY_free(pkey) };
        return Err(err.into());
    }
    let _owned_by_pkey = into_raw(rsa);
    // SAFETY: `pkey` is a live EVP_PKEY whose one reference we own.
    Ok(unsafe { PKey::from_ptr(pkey) })
}

fn ec_key(public: &PKeyRef<Public>, holder: Holder) -> Result<PKey<Public>, TlsError> {
    let method = ec_method().ok_or_else(ErrorStack::get)?;
    let index = ex_index(CRYPTO_EX_INDEX_EC_KEY).ok_or_else(ErrorStack::get)?;
    let cert_ec = public.ec_key()?;
    // A fresh EC_KEY of our own: the one above may be shared with the certificate.
    let ec = EcKey::from_public_key(cert_ec.group(), cert_ec.public_key())?;
    // SAFETY: `ec` is a live EC_KEY we own exclusively; EC_KEY_set_method finishes the
    // default method and installs ours (a table that lives for the process).
    if unsafe { EC_KEY_set_method(ec.as_ptr(), method) } != 1 {
        return Err(ErrorStack::get().into());
    }
    // SAFETY: `ec` is live and `index` an EC_KEY ex_data slot; EC_KEY_set_ex_data matches
    // `attach`'s setter signature.
    unsafe { attach(ec.as_ptr(), index, holder, EC_KEY_set_ex_data) }?;
    Ok(PKey::from_ec_key(ec)?)
}

/// True when an RSA-PSS public key's AlgorithmIdentifier carries parameters (hash, salt
/// restrictions), which a delegated key could not honour.
fn pss_key_has_parameters(public: &PKeyRef<Public>) -> Result<bool, ErrorStack> {
    let spki = public.public_key_to_der()?;
    // SubjectPublicKeyInfo ::= SEQUENCE { SEQUENCE { OID, params OPTIONAL }, BIT STRING }
    let inner = der_contents(&spki).and_then(der_contents);
    // With no parameters the AlgorithmIdentifier holds just the OID's TLV (06 09 ...).
    let bare_oid = inner.is_some_and(|alg| alg.len() == 11 && alg.starts_with(&[0x06, 0x09]));
    Ok(!bare_oid)
}

/// The contents of the DER SEQUENCE at the start of `der` (ignoring anything after it).
fn der_contents(der: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = der.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let (bytes, rest) = rest.split_at_checked(n)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, rest)
    };
    rest.get(..len)
}

/// `SSL_CTX_add1_chain_cert`: adds `cert` to the chain of the context's current
/// certificate (the one set last), so that each certificate keeps its own chain.
pub(crate) fn add_chain_cert(
    ctx: &mut SslContextBuilder,
    cert: &X509Ref,
) -> Result<(), ErrorStack> {
    // SAFETY: `ctx` is a live SSL_CTX we hold exclusively and `cert` a live X509; with
    // larg = 1 OpenSSL takes its own reference to the certificate.
    let rc = unsafe {
        sys::SSL_CTX_ctrl(
            ctx.as_ptr(),
            sys::SSL_CTRL_CHAIN_CERT,
            1,
            cert.as_ptr().cast::<c_void>(),
        )
    };
    if rc == 1 {
        Ok(())
    } else {
        Err(ErrorStack::get())
    }
}
