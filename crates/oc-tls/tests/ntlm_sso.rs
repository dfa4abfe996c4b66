//! NTLM single sign-on through GSSAPI against a real NTLMSSP acceptor: gss-ntlmssp (the
//! mechanism Debian's gss-ntlmssp plugs into MIT's GSSAPI) accepts, in this process, the
//! NEGOTIATE and AUTHENTICATE our client side makes with the credentials in
//! `NTLM_USER_FILE`, and refuses an altered AUTHENTICATE. Its own test binary: the
//! credentials come from the environment, set once before any GSSAPI call.

#![allow(unsafe_code, clippy::unwrap_used, clippy::panic)]

use std::ffi::c_void;
use std::ptr;

use oc_proto::client_proxy::auth::{Mechanism, Negotiator};
use oc_tls::gssapi::DesktopCredentials;

#[repr(C)]
struct Buffer {
    length: usize,
    value: *mut c_void,
}

#[link(name = "gssapi_krb5")]
extern "C" {
    fn gss_accept_sec_context(
        minor: *mut u32,
        context: *mut *mut c_void,
        cred: *mut c_void,
        input: *mut Buffer,
        bindings: *mut c_void,
        source: *mut *mut c_void,
        mech: *mut *mut c_void,
        output: *mut Buffer,
        flags: *mut u32,
        time: *mut u32,
        delegated: *mut *mut c_void,
    ) -> u32;
    fn gss_display_name(
        minor: *mut u32,
        name: *mut c_void,
        output: *mut Buffer,
        name_type: *mut *mut c_void,
    ) -> u32;
}

/// One acceptor step: the major status, its answer, and (when complete) the client's name.
fn accept(context: &mut *mut c_void, token: &[u8]) -> (u32, Vec<u8>, Option<String>) {
    let mut input = Buffer {
        length: token.len(),
        value: token.as_ptr().cast_mut().cast(),
    };
    let mut output = Buffer {
        length: 0,
        value: ptr::null_mut(),
    };
    let (mut minor, mut source) = (0, ptr::null_mut());
    // SAFETY: every pointer is to a live local or NULL as GSSAPI allows; the buffers it
    // fills are read at once (and leaked: this is a short test process).
    let major = unsafe {
        gss_accept_sec_context(
            &mut minor,
            context,
            ptr::null_mut(),
            &mut input,
            ptr::null_mut(),
            &mut source,
            ptr::null_mut(),
            &mut output,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    let bytes = |b: &Buffer| match b.value.is_null() {
        true => Vec::new(),
        // SAFETY: GSSAPI wrote `length` bytes at `value`.
        false => unsafe { std::slice::from_raw_parts(b.value.cast::<u8>(), b.length) }.to_vec(),
    };
    let answer = bytes(&output);
    let name = (!source.is_null()).then(|| {
        let mut shown = Buffer {
            length: 0,
            value: ptr::null_mut(),
        };
        // SAFETY: `source` is a name GSSAPI made; `shown` receives its text.
        unsafe { gss_display_name(&mut minor, source, &mut shown, ptr::null_mut()) };
        String::from_utf8_lossy(&bytes(&shown)).into_owned()
    });
    (major, answer, name)
}

#[test]
fn gss_ntlmssp_accepts_our_ntlm_and_refuses_an_altered_one() {
    let dir = std::env::temp_dir().join(format!("ntlm-sso-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let users = dir.join("users");
    std::fs::write(&users, "CORP:carol:carol-pw\n").unwrap();
    std::env::set_var("NTLM_USER_FILE", &users);
    std::env::set_var("NTLMUSER", "carol");
    std::env::set_var("NTLMDOMAIN", "CORP");

    let run = |alter: bool| {
        let mut ours = DesktopCredentials
            .start(Mechanism::Ntlm, "proxy.example")
            .unwrap();
        let negotiate = ours.step(None).unwrap();
        assert!(
            negotiate.starts_with(b"NTLMSSP\0\x01\0\0\0"),
            "{negotiate:?}"
        );
        let mut theirs = ptr::null_mut();
        let (major, challenge, _) = accept(&mut theirs, &negotiate);
        assert_eq!(major, 1, "the acceptor continues with a CHALLENGE");
        let mut authenticate = ours.step(Some(&challenge)).unwrap();
        assert!(authenticate.starts_with(b"NTLMSSP\0\x03\0\0\0"));
        if alter {
            // A byte of NTProofStr (the NT response's first 16 bytes; its offset at 24).
            let at = u32::from_le_bytes(authenticate[24..28].try_into().unwrap()) as usize;
            authenticate[at + 5] ^= 0x55;
        }
        accept(&mut theirs, &authenticate)
    };
    let (major, _, name) = run(false);
    assert_eq!(major, 0, "the acceptor completes");
    let name = name.unwrap_or_default().to_ascii_lowercase();
    assert!(name.contains("carol"), "{name}");
    let (major, _, _) = run(true);
    assert_ne!(major & 0xffff_0000, 0, "an altered AUTHENTICATE is refused");
    let _ = std::fs::remove_dir_all(dir);
}
