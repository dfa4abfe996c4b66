//! Single sign-on through the system's GSSAPI library (MIT krb5's `libgssapi_krb5`).
//! Client side (here): tokens for `HTTP@host`, as openconnect makes them for proxies and
//! servers:
//! SPNEGO (Negotiate) with the desktop's Kerberos ticket (`kinit`, `KRB5CCNAME`), and raw
//! NTLMSSP with the mechanism gss-ntlmssp plugs in (`NTLM_USER_FILE`, `NTLMUSER`, or
//! winbind). Server side: [`Acceptor`], for `auth = gssapi`.

#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::ffi::{c_int, c_void};
use std::ptr;

use oc_proto::client_proxy::auth::{Mechanism, Negotiator, SecurityContext};

mod acceptor;
pub use acceptor::{AcceptStep, AcceptedPeer, Acceptor};

type OmUint32 = u32;

#[repr(C)]
struct GssOidDesc {
    length: OmUint32,
    elements: *mut c_void,
}

#[repr(C)]
struct GssBufferDesc {
    length: usize,
    value: *mut c_void,
}

impl GssBufferDesc {
    fn empty() -> Self {
        Self {
            length: 0,
            value: ptr::null_mut(),
        }
    }
}

/// gssapi.h's opaque handles.
type GssName = *mut c_void;
type GssCtx = *mut c_void;

#[link(name = "gssapi_krb5")]
extern "C" {
    fn gss_import_name(
        minor: *mut OmUint32,
        input: *mut GssBufferDesc,
        name_type: *mut GssOidDesc,
        output: *mut GssName,
    ) -> OmUint32;
    fn gss_init_sec_context(
        minor: *mut OmUint32,
        cred: *mut c_void,
        context: *mut GssCtx,
        target: GssName,
        mech: *mut GssOidDesc,
        flags: OmUint32,
        time_req: OmUint32,
        bindings: *mut c_void,
        input: *mut GssBufferDesc,
        actual_mech: *mut *mut GssOidDesc,
        output: *mut GssBufferDesc,
        ret_flags: *mut OmUint32,
        time_rec: *mut OmUint32,
    ) -> OmUint32;
    fn gss_release_buffer(minor: *mut OmUint32, buffer: *mut GssBufferDesc) -> OmUint32;
    fn gss_release_name(minor: *mut OmUint32, name: *mut GssName) -> OmUint32;
    fn gss_delete_sec_context(
        minor: *mut OmUint32,
        context: *mut GssCtx,
        output: *mut GssBufferDesc,
    ) -> OmUint32;
    fn gss_display_status(
        minor: *mut OmUint32,
        status: OmUint32,
        status_type: c_int,
        mech: *mut GssOidDesc,
        message_context: *mut OmUint32,
        string: *mut GssBufferDesc,
    ) -> OmUint32;
}

/// GSS_C_NT_HOSTBASED_SERVICE, 1.2.840.113554.1.2.1.4.
const HOSTBASED_SERVICE: [u8; 10] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x01, 0x04];
/// SPNEGO, 1.3.6.1.5.5.2.
const SPNEGO: [u8; 6] = [0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];
/// NTLMSSP, 1.3.6.1.4.1.311.2.2.10 (gss-ntlmssp's).
const NTLMSSP: [u8; 10] = [0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a];
const GSS_C_MUTUAL_FLAG: OmUint32 = 2;
const GSS_C_GSS_CODE: c_int = 1;
const GSS_C_MECH_CODE: c_int = 2;
/// GSS_ERROR(): the calling and routine error bits.
const GSS_ERROR_MASK: OmUint32 = 0xffff_0000;

/// Security contexts with the user's own credentials.
#[derive(Debug, Default)]
pub struct DesktopCredentials;

impl Negotiator for DesktopCredentials {
    fn start(&self, mechanism: Mechanism, host: &str) -> Result<Box<dyn SecurityContext>, String> {
        let mut service = format!("HTTP@{host}").into_bytes();
        let mut name_buffer = GssBufferDesc {
            length: service.len(),
            value: service.as_mut_ptr().cast(),
        };
        let mut name_type = oid(&HOSTBASED_SERVICE);
        let mut minor = 0;
        let mut target: GssName = ptr::null_mut();
        // SAFETY: the buffer and OID point into live locals for the call; `target`
        // receives a name the context releases.
        let major =
            unsafe { gss_import_name(&mut minor, &mut name_buffer, &mut name_type, &mut target) };
        if major & GSS_ERROR_MASK != 0 {
            return Err(describe(major, minor));
        }
        let mechanism = match mechanism {
            Mechanism::Spnego => &SPNEGO[..],
            Mechanism::Ntlm => &NTLMSSP[..],
        };
        Ok(Box::new(Context {
            target,
            context: ptr::null_mut(),
            mechanism,
        }))
    }
}

/// One GSSAPI security context and its target name.
struct Context {
    target: GssName,
    context: GssCtx,
    mechanism: &'static [u8],
}

// SAFETY: the handles are used by one thread at a time (through `&mut self`), which
// GSSAPI allows for a context moved between threads.
unsafe impl Send for Context {}

impl SecurityContext for Context {
    fn step(&mut self, input: Option<&[u8]>) -> Result<Vec<u8>, String> {
        let mut mech = oid(self.mechanism);
        let mut input = match input {
            Some(bytes) => GssBufferDesc {
                length: bytes.len(),
                // GSSAPI only reads the input token.
                value: bytes.as_ptr().cast_mut().cast(),
            },
            None => GssBufferDesc::empty(),
        };
        let mut output = GssBufferDesc::empty();
        let mut minor = 0;
        // SAFETY: every pointer is to a live local, a handle this context owns, or NULL as
        // GSSAPI allows (default credentials, no channel bindings, no outputs we do not
        // want); `output` is released below.
        let major = unsafe {
            gss_init_sec_context(
                &mut minor,
                ptr::null_mut(),
                &mut self.context,
                self.target,
                &mut mech,
                GSS_C_MUTUAL_FLAG,
                0,
                ptr::null_mut(),
                &mut input,
                ptr::null_mut(),
                &mut output,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        let made = !output.value.is_null();
        let token = take_buffer(&mut output);
        match major & GSS_ERROR_MASK {
            0 if made => Ok(token),
            0 => Err("GSSAPI made no token".into()),
            _ => Err(describe(major, minor)),
        }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        let mut minor = 0;
        // SAFETY: the handles were made by GSSAPI (or are NULL) and are released once.
        unsafe {
            if !self.context.is_null() {
                gss_delete_sec_context(&mut minor, &mut self.context, ptr::null_mut());
            }
            gss_release_name(&mut minor, &mut self.target);
        }
    }
}

/// The bytes of a buffer GSSAPI allocated, which is then released.
fn take_buffer(buffer: &mut GssBufferDesc) -> Vec<u8> {
    let bytes = if buffer.value.is_null() {
        Vec::new()
    } else {
        // SAFETY: GSSAPI wrote `length` bytes at `value`.
        unsafe { std::slice::from_raw_parts(buffer.value.cast::<u8>(), buffer.length) }.to_vec()
    };
    let mut minor = 0;
    // SAFETY: the buffer was allocated by GSSAPI (or is empty) and is released once.
    unsafe { gss_release_buffer(&mut minor, buffer) };
    bytes
}

fn oid(bytes: &'static [u8]) -> GssOidDesc {
    GssOidDesc {
        length: bytes.len() as OmUint32,
        // GSSAPI only reads an OID's elements.
        elements: bytes.as_ptr().cast_mut().cast(),
    }
}

/// GSSAPI's own words for a failure: the major status, then the mechanism's (krb5's).
fn describe(major: OmUint32, minor: OmUint32) -> String {
    let mut words = status_text(major, GSS_C_GSS_CODE);
    if minor != 0 {
        words.push_str(": ");
        words.push_str(&status_text(minor, GSS_C_MECH_CODE));
    }
    words
}

fn status_text(status: OmUint32, kind: c_int) -> String {
    let mut out = Vec::new();
    let mut message_context = 0;
    for _ in 0..8 {
        let mut text = GssBufferDesc::empty();
        let mut minor = 0;
        // SAFETY: all pointers are to live locals; `text` is released below.
        let major = unsafe {
            gss_display_status(
                &mut minor,
                status,
                kind,
                ptr::null_mut(),
                &mut message_context,
                &mut text,
            )
        };
        if major & GSS_ERROR_MASK != 0 {
            break;
        }
        if !text.value.is_null() {
            // SAFETY: GSSAPI wrote `length` bytes at `value`.
            let bytes = unsafe { std::slice::from_raw_parts(text.value.cast::<u8>(), text.length) };
            out.push(String::from_utf8_lossy(bytes).into_owned());
        }
        // SAFETY: `text` was allocated by GSSAPI (or is empty).
        unsafe { gss_release_buffer(&mut minor, &mut text) };
        if message_context == 0 {
            break;
        }
    }
    out.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a ticket (the test runs with no `kinit`), the error is GSSAPI's own.
    #[test]
    fn no_credentials_is_a_clear_error() {
        let mut context = DesktopCredentials
            .start(Mechanism::Spnego, "vpn.example.invalid")
            .unwrap();
        let err = context.step(None).unwrap_err();
        assert!(!err.is_empty());
        assert!(
            err.to_ascii_lowercase().contains("credential") || err.contains("No Kerberos"),
            "{err}"
        );
    }
}
