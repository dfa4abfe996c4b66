//! The GSSAPI login conversation: Negotiate round trips, the fallback to the other
//! methods, the switch from passwords to GSSAPI for clients that offer it.

#![allow(clippy::unwrap_used)]

use oc_proto::ipc::GssapiVerdict;

use super::tests::{forms, post};
use super::*;

fn gssapi() -> AuthMethod {
    AuthMethod::Gssapi(GssapiMethod {
        keytab: None,
        require_local_user_map: false,
        tgt_freshness_time: None,
    })
}

fn plain() -> AuthMethod {
    AuthMethod::Plain {
        passwd: Some("/etc/ocserv/ocpasswd".into()),
        otp: None,
    }
}

fn offered(token: Option<&[u8]>) -> HttpAuth {
    HttpAuth {
        offered: true,
        negotiate: token.map(<[u8]>::to_vec),
        bearer: None,
    }
}

#[test]
fn a_negotiate_round_trip_logs_the_user_in() {
    let mut c = Conversation::new(&[gssapi()], &[plain()], CertStatus::None);
    assert_eq!(
        c.on_http_auth(&offered(None)),
        Some(AuthStep::Negotiate {
            token: None,
            fallback: true
        })
    );
    assert_eq!(
        c.on_http_auth(&offered(Some(b"first"))),
        Some(AuthStep::GssapiAccept {
            id: None,
            token: b"first".to_vec()
        })
    );
    let more = GssapiVerdict::Continue {
        id: 9,
        token: b"challenge".to_vec(),
    };
    assert_eq!(
        c.gssapi_verdict(&more, &forms()),
        AuthStep::Negotiate {
            token: Some(b"challenge".to_vec()),
            fallback: true
        }
    );
    assert_eq!(
        c.on_http_auth(&offered(Some(b"second"))),
        Some(AuthStep::GssapiAccept {
            id: Some(9),
            token: b"second".to_vec()
        })
    );
    let done = GssapiVerdict::Accepted {
        user: "alice".into(),
        groups: vec!["staff".into()],
        token: Vec::new(),
        ticket: [0; 16],
    };
    assert_eq!(
        c.gssapi_verdict(&done, &forms()),
        AuthStep::Success {
            user: "alice".into(),
            group: Some("staff".into())
        }
    );
}

#[test]
fn forms_never_log_in_a_gssapi_method() {
    let mut c = Conversation::new(&[gssapi()], &[], CertStatus::None);
    let step = c.on_post(&post(Some("alice"), Some("secret"), None), &forms());
    assert!(matches!(step, AuthStep::Failed { .. }), "{step:?}");
    // No other method: a client without HTTP authentication is still asked to Negotiate.
    let mut c = Conversation::new(&[gssapi()], &[], CertStatus::None);
    assert_eq!(
        c.on_http_auth(&HttpAuth::default()),
        Some(AuthStep::Negotiate {
            token: None,
            fallback: false
        })
    );
}

#[test]
fn without_http_authentication_or_after_a_failure_the_password_follows() {
    let mut c = Conversation::new(&[gssapi()], &[plain()], CertStatus::None);
    assert_eq!(c.on_http_auth(&HttpAuth::default()), None);
    let AuthStep::Form(form) = c.on_post(&post(None, None, None), &forms()) else {
        panic!("expected the password form");
    };
    assert_eq!(form.inputs, FormInputs::UsernamePassword);
    let mut c = Conversation::new(&[gssapi()], &[plain()], CertStatus::None);
    c.on_http_auth(&offered(Some(b"bad")));
    let refused = GssapiVerdict::Rejected {
        reason: "Invalid token".into(),
    };
    let AuthStep::Form(form) = c.gssapi_verdict(&refused, &forms()) else {
        panic!("expected the password form");
    };
    assert_eq!(form.inputs, FormInputs::UsernamePassword);
    let step = c.on_post(&post(Some("alice"), Some("secret"), None), &forms());
    assert!(matches!(step, AuthStep::CheckPassword { .. }), "{step:?}");
    // With nothing to fall back to, the login ends.
    let mut c = Conversation::new(&[gssapi()], &[], CertStatus::None);
    c.on_http_auth(&offered(Some(b"bad")));
    assert!(matches!(
        c.gssapi_verdict(&refused, &forms()),
        AuthStep::Failed { .. }
    ));
}

#[test]
fn a_client_offering_http_authentication_switches_to_an_enabled_gssapi() {
    let mut c = Conversation::new(&[plain()], &[gssapi()], CertStatus::None);
    assert_eq!(
        c.on_http_auth(&offered(None)),
        Some(AuthStep::Negotiate {
            token: None,
            fallback: true
        })
    );
    // GSSAPI fails: back to the passwords.
    c.on_http_auth(&offered(Some(b"bad")));
    let refused = GssapiVerdict::Rejected {
        reason: "no ticket".into(),
    };
    let AuthStep::Form(form) = c.gssapi_verdict(&refused, &forms()) else {
        panic!("expected the password form");
    };
    assert_eq!(form.inputs, FormInputs::UsernamePassword);
    // Once the password login has begun, HTTP authentication changes nothing.
    let mut c = Conversation::new(&[plain()], &[gssapi()], CertStatus::None);
    c.on_post(&post(Some("alice"), None, None), &forms());
    assert_eq!(c.on_http_auth(&offered(None)), None);
}

#[test]
fn a_certificate_login_is_not_switched_to_gssapi() {
    let cert = CertStatus::Valid(CertIdentity {
        user: Some("alice".into()),
        groups: Vec::new(),
    });
    let mut c = Conversation::new(&[gssapi()], &[AuthMethod::Certificate], cert);
    assert_eq!(c.on_http_auth(&offered(None)), None);
    let step = c.on_post(&post(None, None, None), &forms());
    assert_eq!(
        step,
        AuthStep::Success {
            user: "alice".into(),
            group: None
        }
    );
}

#[test]
fn with_a_certificate_too_the_principal_must_be_its_user() {
    let cert = |user: &str| {
        CertStatus::Valid(CertIdentity {
            user: Some(user.into()),
            groups: vec![],
        })
    };
    let accepted = GssapiVerdict::Accepted {
        user: "alice".into(),
        groups: vec![],
        token: vec![],
        ticket: [0; 16],
    };
    let both = [AuthMethod::Certificate, gssapi()];
    let mut c = Conversation::new(&both, &[], cert("alice"));
    assert!(matches!(
        c.gssapi_verdict(&accepted, &forms()),
        AuthStep::Success { .. }
    ));
    let mut c = Conversation::new(&both, &[], cert("bob"));
    assert!(matches!(
        c.gssapi_verdict(&accepted, &forms()),
        AuthStep::Failed { .. }
    ));
}
