//! NTLM single sign-on through GSSAPI against a real NTLMSSP acceptor: gss-ntlmssp (the
//! mechanism Debian's gss-ntlmssp plugs into MIT's GSSAPI) accepts, in this process, the
//! NEGOTIATE and AUTHENTICATE our client side makes with the credentials in
//! `NTLM_USER_FILE`, and refuses an altered AUTHENTICATE; the accepting side is our
//! server's [`Acceptor`] (ocserv's `auth = gssapi`). Its own test binary: the
//! credentials come from the environment, set once before any GSSAPI call.

#![allow(clippy::unwrap_used, clippy::panic)]

use oc_proto::client_proxy::auth::{Mechanism, Negotiator};
use oc_tls::gssapi::{AcceptStep, Acceptor, DesktopCredentials};

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
        let mut theirs = Acceptor::new(None).unwrap();
        let AcceptStep::Continue(challenge) = theirs.step(&negotiate).unwrap() else {
            panic!("the acceptor continues with a CHALLENGE");
        };
        let mut authenticate = ours.step(Some(&challenge)).unwrap();
        assert!(authenticate.starts_with(b"NTLMSSP\0\x03\0\0\0"));
        if alter {
            // A byte of NTProofStr (the NT response's first 16 bytes; its offset at 24).
            let at = u32::from_le_bytes(authenticate[24..28].try_into().unwrap()) as usize;
            authenticate[at + 5] ^= 0x55;
        }
        theirs.step(&authenticate)
    };
    let AcceptStep::Complete { peer, .. } = run(false).unwrap() else {
        panic!("the acceptor does not complete");
    };
    assert!(
        peer.principal.to_ascii_lowercase().contains("carol"),
        "{peer:?}"
    );
    assert_eq!(peer.auth_time, None, "NTLM has no Kerberos ticket");
    let refused = run(true).unwrap_err();
    assert!(!refused.is_empty(), "an altered AUTHENTICATE is refused");
    let _ = std::fs::remove_dir_all(dir);
}
