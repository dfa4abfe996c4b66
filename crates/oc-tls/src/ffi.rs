//! The few OpenSSL calls DTLS, the TLS rekey and CRLs need that the `openssl` crate does not
//! wrap. Each one is a plain C call on an `SSL` we own; the safe functions below are the
//! only way in.

#![allow(unsafe_code)]

use std::time::Duration;

use foreign_types::ForeignTypeRef;
use openssl::error::ErrorStack;
use openssl::ssl::{SslContextBuilder, SslRef, SslSession, SslSessionRef};

/// `DTLS_CTRL_GET_TIMEOUT` / `DTLS_CTRL_HANDLE_TIMEOUT` from ssl.h: `DTLSv1_get_timeout` and
/// `DTLSv1_handle_timeout` are macros over `SSL_ctrl`, so openssl-sys has no binding.
const DTLS_CTRL_GET_TIMEOUT: libc::c_int = 73;
const DTLS_CTRL_HANDLE_TIMEOUT: libc::c_int = 74;

/// `SSL_KEY_UPDATE_REQUESTED` from ssl.h: update our keys and ask the peer to update its.
const SSL_KEY_UPDATE_REQUESTED: libc::c_int = 1;

/// `SSL_OP_ALLOW_CLIENT_RENEGOTIATION` from OpenSSL 3's ssl.h (bit 8): a server accepts a
/// TLS 1.2 renegotiation its client starts (secure renegotiation, RFC 5746, still applies).
const SSL_OP_ALLOW_CLIENT_RENEGOTIATION: u64 = 1 << 8;

extern "C" {
    fn X509_STORE_add_crl(
        store: *mut openssl_sys::X509_STORE,
        crl: *mut openssl_sys::X509_CRL,
    ) -> libc::c_int;
    fn DTLS_get_data_mtu(ssl: *const openssl_sys::SSL) -> libc::size_t;
    fn SSL_key_update(ssl: *mut openssl_sys::SSL, updatetype: libc::c_int) -> libc::c_int;
    fn SSL_set_options(ssl: *mut openssl_sys::SSL, options: u64) -> u64;
}

/// Lets the client of this connection renegotiate TLS 1.2 (its "ssl" rekey).
pub fn allow_client_renegotiation(ssl: &SslRef) {
    // SAFETY: `ssl` is a live SSL owned by the caller's stream; setting an option bit on it
    // touches nothing else.
    unsafe {
        SSL_set_options(ssl.as_ptr(), SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
    }
}

/// Schedules a TLS 1.3 KeyUpdate (sent with the next write). False when the session is not
/// TLS 1.3 or OpenSSL refuses.
pub fn request_key_update(ssl: &SslRef) -> bool {
    // SAFETY: `ssl` is a live SSL owned by the caller's stream; the call only queues a
    // handshake message on it and takes no pointers besides the SSL itself.
    unsafe { SSL_key_update(ssl.as_ptr(), SSL_KEY_UPDATE_REQUESTED) == 1 }
}

/// Adds `crl` to `store` (the store takes its own reference).
pub fn add_crl(
    store: &mut openssl::x509::store::X509StoreBuilderRef,
    crl: &openssl::x509::X509CrlRef,
) -> Result<(), ErrorStack> {
    // SAFETY: both objects are live for the call; X509_STORE_add_crl takes its own
    // reference to the CRL and only adds it to the store's list.
    if unsafe { X509_STORE_add_crl(store.as_ptr(), crl.as_ptr()) } == 1 {
        Ok(())
    } else {
        Err(ErrorStack::get())
    }
}

/// Time until OpenSSL wants to retransmit a handshake flight, if a timer runs.
pub fn retransmit_timeout(ssl: &SslRef) -> Option<Duration> {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    // SAFETY: `ssl` is a live SSL; for this command SSL_ctrl writes one `struct timeval`
    // through the pointer, which points at our local `tv` for the duration of the call.
    let running = unsafe {
        openssl_sys::SSL_ctrl(
            ssl.as_ptr(),
            DTLS_CTRL_GET_TIMEOUT,
            0,
            (&mut tv as *mut libc::timeval).cast(),
        )
    };
    if running != 1 {
        return None;
    }
    let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
    let micros = u64::try_from(tv.tv_usec).unwrap_or(0);
    Some(Duration::from_secs(secs) + Duration::from_micros(micros))
}

/// Lets OpenSSL retransmit if its timer expired. Returns false on a fatal error (too many
/// retransmissions).
pub fn handle_retransmit(ssl: &SslRef) -> bool {
    // SAFETY: `ssl` is a live SSL; this command takes no argument pointer.
    let rc = unsafe {
        openssl_sys::SSL_ctrl(
            ssl.as_ptr(),
            DTLS_CTRL_HANDLE_TIMEOUT,
            0,
            std::ptr::null_mut(),
        )
    };
    rc >= 0
}

/// Largest payload one DTLS record can carry with the current cipher and MTU.
pub fn data_mtu(ssl: &SslRef) -> usize {
    // SAFETY: `ssl` is a live SSL; the call only reads it.
    unsafe { DTLS_get_data_mtu(ssl.as_ptr()) }
}

/// Offers `session` in the next ClientHello: its id goes into the `session_id` field, which
/// is how an AnyConnect client names its tunnel (App-ID or legacy session id).
pub fn offer_session(ssl: &mut SslRef, session: &SslSessionRef) -> Result<(), ErrorStack> {
    // SAFETY: `set_session` requires the session to come from a context compatible with
    // this SSL's; ours is decoded from DER (no context attached) and OpenSSL copies what it
    // needs and takes its own reference.
    unsafe { ssl.set_session(session) }
}

/// `DTLS1_BAD_VER` from prov_ssl.h: Cisco's pre-standard DTLS 1.0, absent from openssl-sys.
const DTLS1_BAD_VER: libc::c_int = 0x0100;

/// Pins a (DTLS client) context to `DTLS1_BAD_VER`, which `SslVersion` cannot name.
pub fn pin_dtls_bad_ver(ctx: &mut SslContextBuilder) -> Result<(), ErrorStack> {
    // SAFETY: `ctx` is a live SSL_CTX we hold exclusively; both calls are
    // `SSL_CTX_ctrl(ctx, SSL_CTRL_SET_{MIN,MAX}_PROTO_VERSION, version, NULL)`, which only
    // store an integer and take no pointer argument.
    let (min, max) = unsafe {
        (
            openssl_sys::SSL_CTX_set_min_proto_version(ctx.as_ptr(), DTLS1_BAD_VER),
            openssl_sys::SSL_CTX_set_max_proto_version(ctx.as_ptr(), DTLS1_BAD_VER),
        )
    };
    if min == 1 && max == 1 {
        Ok(())
    } else {
        Err(ErrorStack::get())
    }
}

/// Installs a server get-session callback that answers with a session decoded from the DER
/// `lookup` returns (or none). Decoding here, at lookup time, matters: `d2i_SSL_SESSION`
/// stamps the session `time = now, timeout = 3 s`, so it is fresh when OpenSSL checks it.
pub fn set_session_lookup<F>(ctx: &mut SslContextBuilder, lookup: F)
where
    F: Fn(&mut SslRef, &[u8]) -> Option<Vec<u8>> + 'static + Sync + Send,
{
    let callback = move |ssl: &mut SslRef, id: &[u8]| {
        lookup(ssl, id).and_then(|der| SslSession::from_der(&der).ok())
    };
    // SAFETY: the requirement is that a returned session is not tied to another
    // SslContext; every session returned here was just decoded from DER, which attaches
    // none, and `lookup` cannot hand back a session object of its own.
    unsafe { ctx.set_get_session_callback(callback) }
}

/// OpenSSL's compiled-in directory of hashed CA certificates (`OPENSSLDIR/certs`; on Debian
/// a link to /etc/ssl/certs).
pub fn default_cert_dir() -> std::path::PathBuf {
    // SAFETY: the call takes no arguments and returns a pointer to a static, NUL-terminated
    // string inside libcrypto, which lives as long as the process; it is copied at once.
    let dir = unsafe { std::ffi::CStr::from_ptr(openssl_sys::X509_get_default_cert_dir()) };
    std::path::PathBuf::from(dir.to_string_lossy().into_owned())
}
