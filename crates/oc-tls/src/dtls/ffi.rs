//! The few OpenSSL calls DTLS needs that the `openssl` crate does not wrap. Each one is a
//! plain C call on an `SSL` we own; the safe functions below are the only way in.

#![allow(unsafe_code)]

use std::time::Duration;

use foreign_types::ForeignTypeRef;
use openssl::ssl::{SslRef, SslSessionRef};

/// `DTLS_CTRL_GET_TIMEOUT` / `DTLS_CTRL_HANDLE_TIMEOUT` from ssl.h: `DTLSv1_get_timeout` and
/// `DTLSv1_handle_timeout` are macros over `SSL_ctrl`, so openssl-sys has no binding.
const DTLS_CTRL_GET_TIMEOUT: libc::c_int = 73;
const DTLS_CTRL_HANDLE_TIMEOUT: libc::c_int = 74;

extern "C" {
    fn DTLS_get_data_mtu(ssl: *const openssl_sys::SSL) -> libc::size_t;
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
pub fn offer_session(
    ssl: &mut SslRef,
    session: &SslSessionRef,
) -> Result<(), openssl::error::ErrorStack> {
    // SAFETY: `set_session` requires the session to come from a context compatible with
    // this SSL's; ours is decoded from DER (no context attached) and OpenSSL copies what it
    // needs and takes its own reference.
    unsafe { ssl.set_session(session) }
}
