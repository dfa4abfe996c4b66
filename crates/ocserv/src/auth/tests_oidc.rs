//! The OIDC login conversation: the Bearer challenge, the token to the security module,
//! its verdict, and a certificate that must name the same user.

#![allow(clippy::unwrap_used)]

use oc_proto::anyconnect::server_auth::SsoForm;
use oc_proto::ipc::OidcVerdict;

use super::tests::{forms, post};
use super::*;

fn oidc() -> AuthMethod {
    AuthMethod::Oidc {
        config: "/etc/ocserv/oidc.json".into(),
    }
}

fn bearer(token: Option<Bearer>) -> HttpAuth {
    HttpAuth {
        bearer: token,
        ..HttpAuth::default()
    }
}

fn accepted(user: &str) -> OidcVerdict {
    OidcVerdict::Accepted {
        user: user.into(),
        ticket: [1; 16],
    }
}

#[test]
fn no_token_gets_the_bearer_challenge_and_a_good_one_logs_in() {
    let mut c = Conversation::new(&[oidc()], &[], CertStatus::None);
    assert_eq!(c.on_http_auth(&bearer(None)), None);
    // A password cannot replace the token.
    assert_eq!(
        c.on_post(&post(Some("alice"), Some("pw"), None), &forms()),
        AuthStep::BearerChallenge
    );
    let token = Bearer::Token("eyJ.eyJ.sig".into());
    assert_eq!(
        c.on_http_auth(&bearer(Some(token))),
        Some(AuthStep::OidcCheck {
            token: "eyJ.eyJ.sig".into()
        })
    );
    assert_eq!(
        c.oidc_verdict(&accepted("SomeUser")),
        AuthStep::Success {
            user: "SomeUser".into(),
            group: None
        }
    );
}

#[test]
fn refused_malformed_and_unusable_tokens_fail() {
    let mut c = Conversation::new(&[oidc()], &[], CertStatus::None);
    assert!(matches!(
        c.on_http_auth(&bearer(Some(Bearer::Malformed))),
        Some(AuthStep::Failed { .. })
    ));
    let refused = OidcVerdict::Rejected {
        reason: "expired".into(),
    };
    assert!(matches!(c.oidc_verdict(&refused), AuthStep::Failed { .. }));
    // A claim that is no usable user name (too long, control characters).
    for user in ["x".repeat(MAX_NAME_BYTES + 1), "a\nb".to_owned()] {
        let mut c = Conversation::new(&[oidc()], &[], CertStatus::None);
        assert!(matches!(
            c.oidc_verdict(&accepted(&user)),
            AuthStep::Failed { .. }
        ));
    }
}

#[test]
fn with_a_certificate_too_both_must_name_the_same_user() {
    let cert = |user: &str| {
        CertStatus::Valid(CertIdentity {
            user: Some(user.into()),
            groups: vec![],
        })
    };
    let both = [AuthMethod::Certificate, oidc()];
    let mut c = Conversation::new(&both, &[], cert("alice"));
    assert!(matches!(
        c.oidc_verdict(&accepted("alice")),
        AuthStep::Success { .. }
    ));
    let mut c = Conversation::new(&both, &[], cert("bob"));
    assert!(matches!(
        c.oidc_verdict(&accepted("alice")),
        AuthStep::Failed { .. }
    ));
    // Certificate required and missing: no challenge, a refusal.
    let mut c = Conversation::new(&both, &[], CertStatus::None);
    assert_eq!(c.on_http_auth(&bearer(None)), None);
    assert_eq!(
        c.on_post(&post(None, None, None), &forms()),
        AuthStep::Failed {
            reason: "No certificate"
        }
    );
}

fn sso_post(offers: bool, external: bool, token: Option<&str>) -> ClientAuth {
    ClientAuth {
        offers_sso: offers,
        offers_external_browser: external,
        sso_token: token.map(str::to_owned),
        ..ClientAuth::default()
    }
}

#[test]
fn a_client_offering_sso_gets_a_browser_login_unless_the_host_has_none() {
    let mut c = Conversation::new(&[oidc()], &[], CertStatus::None);
    // No bearer token: the body decides.
    assert_eq!(c.on_http_auth(&bearer(None)), None);
    assert_eq!(
        c.on_post(&sso_post(true, true, None), &forms()),
        AuthStep::SsoStart { external: true }
    );
    assert_eq!(
        c.on_post(&sso_post(true, false, None), &forms()),
        AuthStep::SsoStart { external: false }
    );
    // A client that cannot do browser logins is asked for a bearer token.
    assert_eq!(
        c.on_post(&sso_post(false, false, None), &forms()),
        AuthStep::BearerChallenge
    );
    // The token a browser login handed out.
    assert_eq!(
        c.on_post(&sso_post(false, false, Some("t0k")), &forms()),
        AuthStep::SsoRedeem {
            token: "t0k".into()
        }
    );
    // A bearer token wins over everything in the body.
    let token = Bearer::Token("a.b.c".into());
    assert_eq!(
        c.on_http_auth(&bearer(Some(token))),
        Some(AuthStep::OidcCheck {
            token: "a.b.c".into()
        })
    );
    // The security module has no browser login for this host: the challenge, from now on.
    assert_eq!(c.sso_unavailable(), AuthStep::BearerChallenge);
    assert_eq!(
        c.on_post(&sso_post(true, true, None), &forms()),
        AuthStep::BearerChallenge
    );
    let form = c.sso_form(
        &forms(),
        SsoForm {
            login_url: "https://idp/a".into(),
            final_url: "https://vpn/done".into(),
            token_cookie: "c".into(),
            external: false,
        },
    );
    assert_eq!(form.message, oidc_steps::SSO_MESSAGE);
    assert!(matches!(form.inputs, FormInputs::Sso(_)));
}
