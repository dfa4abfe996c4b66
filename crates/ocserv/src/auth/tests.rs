#![allow(clippy::unwrap_used)]

use super::*;

fn plain() -> AuthMethod {
    AuthMethod::Plain {
        passwd: Some("/etc/ocserv/ocpasswd".into()),
        otp: None,
    }
}

pub(super) fn post(user: Option<&str>, password: Option<&str>, group: Option<&str>) -> ClientAuth {
    ClientAuth {
        is_init: user.is_none() && password.is_none(),
        username: user.map(str::to_string),
        password: password.map(str::to_string),
        group: group.map(str::to_string),
        ..ClientAuth::default()
    }
}

pub(super) fn forms() -> FormSettings {
    FormSettings {
        pre_login_banner: Some("Authorised use only".into()),
        groups: vec![
            ("staff".into(), "Staff".into()),
            ("ops".into(), "ops".into()),
        ],
        default_group: None,
    }
}

#[test]
fn password_login_with_retries() {
    let mut c = Conversation::new(&[plain()], &[], CertStatus::None);
    let AuthStep::Form(first) = c.on_post(&post(None, None, None), &forms()) else {
        panic!("expected the login form");
    };
    assert_eq!(first.inputs, FormInputs::UsernamePassword);
    assert_eq!(first.banner.as_deref(), Some("Authorised use only"));
    let step = c.on_post(&post(Some("alice"), Some("wrong"), None), &forms());
    assert!(matches!(step, AuthStep::CheckPassword { ref user, .. } if user == "alice"));
    let AuthStep::Form(retry) = c.password_checked(PlainAuth::Rejected, &forms()) else {
        panic!("expected a retry form");
    };
    assert_eq!(retry.message, RETRY_MESSAGE);
    assert!(matches!(retry.inputs, FormInputs::Password { .. }));
    // The retry posts only the password.
    let step = c.on_post(&post(None, Some("right"), None), &forms());
    assert!(matches!(step, AuthStep::CheckPassword { ref password, .. } if password == "right"));
    let done = c.password_checked(
        PlainAuth::Accepted {
            groups: vec!["staff".into()],
        },
        &forms(),
    );
    assert_eq!(
        done,
        AuthStep::Success {
            user: "alice".into(),
            group: Some("staff".into())
        }
    );
}

#[test]
fn third_wrong_password_fails() {
    let mut c = Conversation::new(&[plain()], &[], CertStatus::None);
    for _ in 0..2 {
        c.on_post(&post(Some("bob"), Some("x"), None), &forms());
        assert!(matches!(
            c.password_checked(PlainAuth::Rejected, &forms()),
            AuthStep::Form(_)
        ));
    }
    c.on_post(&post(None, Some("x"), None), &forms());
    assert_eq!(
        c.password_checked(PlainAuth::Rejected, &forms()),
        AuthStep::Failed {
            reason: "Authentication failed"
        }
    );
}

#[test]
fn group_membership_is_enforced() {
    let mut c = Conversation::new(&[plain()], &[], CertStatus::None);
    c.on_post(&post(Some("bob"), Some("pw"), Some("Staff")), &forms());
    let step = c.password_checked(
        PlainAuth::Accepted {
            groups: vec!["ops".into()],
        },
        &forms(),
    );
    assert!(matches!(step, AuthStep::Failed { .. }));
    let mut c = Conversation::new(&[plain()], &[], CertStatus::None);
    // Friendly name maps back to the canonical one.
    c.on_post(&post(Some("bob"), Some("pw"), Some("Staff")), &forms());
    let step = c.password_checked(
        PlainAuth::Accepted {
            groups: vec!["staff".into()],
        },
        &forms(),
    );
    assert!(matches!(step, AuthStep::Success { group: Some(ref g), .. } if g == "staff"));
}

/// `auth = plain` with `enable-auth = certificate` (upstream's test-pass-opt-cert): a
/// valid certificate logs in on its own, no certificate means the password form.
#[test]
fn a_valid_certificate_takes_the_certificate_alternative() {
    let id = CertIdentity {
        user: Some("carol".into()),
        groups: vec![],
    };
    let mut with_cert = Conversation::new(
        &[plain()],
        &[AuthMethod::Certificate],
        CertStatus::Valid(id),
    );
    assert!(matches!(
        with_cert.on_post(&post(None, None, None), &forms()),
        AuthStep::Success { ref user, .. } if user == "carol"
    ));
    for cert in [CertStatus::None, CertStatus::Invalid("expired".into())] {
        let mut without = Conversation::new(&[plain()], &[AuthMethod::Certificate], cert);
        assert!(matches!(
            without.on_post(&post(None, None, None), &forms()),
            AuthStep::Form(_)
        ));
    }
}

/// ocserv issue #692: one eligible certificate group is taken; several are asked for;
/// `select-group` narrows the eligible ones.
#[test]
fn certificate_groups_are_chosen_or_asked_for() {
    let cert = |groups: &[&str]| {
        CertStatus::Valid(CertIdentity {
            user: Some("carol".into()),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        })
    };
    let only_cert = [AuthMethod::Certificate];
    let no_list = FormSettings {
        groups: Vec::new(),
        ..forms()
    };
    let mut one = Conversation::new(&only_cert, &[], cert(&["onlygroup"]));
    assert!(matches!(
        one.on_post(&post(None, None, None), &no_list),
        AuthStep::Success { group: Some(ref g), .. } if g == "onlygroup"
    ));
    let mut two = Conversation::new(&only_cert, &[], cert(&["g1", "g2"]));
    let AuthStep::Form(form) = two.on_post(&post(None, None, None), &no_list) else {
        panic!("no group question")
    };
    assert_eq!(form.message, GROUP_MESSAGE);
    assert_eq!(form.inputs, FormInputs::None);
    assert_eq!(form.groups.len(), 2, "{form:?}");
    assert!(matches!(
        two.on_post(&post(None, None, Some("g2")), &no_list),
        AuthStep::Success { group: Some(ref g), .. } if g == "g2"
    ));
    // select-group lists g2 only: it is taken without asking.
    let filtered = FormSettings {
        groups: vec![("g2".into(), "Group two".into())],
        ..no_list.clone()
    };
    let mut narrowed = Conversation::new(&only_cert, &[], cert(&["g1", "g2"]));
    assert!(matches!(
        narrowed.on_post(&post(None, None, None), &filtered),
        AuthStep::Success { group: Some(ref g), .. } if g == "g2"
    ));
    // No certificate group on the list: the choice is asked for.
    let mut unlisted = Conversation::new(&only_cert, &[], cert(&["g1"]));
    assert!(matches!(
        unlisted.on_post(&post(None, None, None), &filtered),
        AuthStep::Form(LoginForm { ref message, .. }) if message == GROUP_MESSAGE
    ));
    // Choosing the default group answers the question (it is not asked again).
    let with_default = FormSettings {
        default_group: Some("Default".into()),
        ..no_list
    };
    let mut default = Conversation::new(&only_cert, &[], cert(&["g1", "g2"]));
    assert!(matches!(
        default.on_post(&post(None, None, None), &with_default),
        AuthStep::Form(_)
    ));
    assert!(matches!(
        default.on_post(&post(None, None, Some("Default")), &with_default),
        AuthStep::Success { .. }
    ));
}

/// upstream's test-pass-group-cert: certificate and password together; the form offers
/// the certificate's groups too, and the password file decides membership.
#[test]
fn certificate_and_password_groups_come_from_the_password_file() {
    let id = CertIdentity {
        user: Some("test".into()),
        groups: vec!["group3".into(), "group4".into()],
    };
    let both = [AuthMethod::Certificate, plain()];
    let mut c = Conversation::new(&both, &[], CertStatus::Valid(id.clone()));
    let AuthStep::Form(form) = c.on_post(&post(None, None, None), &forms()) else {
        panic!("no form")
    };
    let offered: Vec<&str> = form.groups.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(offered, ["group3", "group4", "staff", "ops"]);
    for (group, ok) in [("group3", true), ("group4", false)] {
        let mut c = Conversation::new(&both, &[], CertStatus::Valid(id.clone()));
        c.on_post(&post(None, Some("pw"), Some(group)), &forms());
        let step = c.password_checked(
            PlainAuth::Accepted {
                groups: vec!["group1".into(), "group3".into()],
            },
            &forms(),
        );
        assert_eq!(
            matches!(step, AuthStep::Success { group: Some(ref g), .. } if g == group),
            ok,
            "{group}: {step:?}"
        );
    }
}

/// `select-group-by-url`: the URL's group wins over the form's; membership still counts.
#[test]
fn a_group_from_the_url_wins_and_must_be_the_users() {
    for (groups, ok) in [(vec!["ops".to_string()], true), (vec![], false)] {
        let mut c = Conversation::new(&[plain()], &[], CertStatus::None);
        c.force_group("ops");
        c.on_post(&post(Some("bob"), Some("pw"), Some("staff")), &forms());
        let step = c.password_checked(PlainAuth::Accepted { groups }, &forms());
        assert_eq!(
            matches!(step, AuthStep::Success { group: Some(ref g), .. } if g == "ops"),
            ok,
            "{step:?}"
        );
    }
}

#[test]
fn certificate_only_and_fallback() {
    let id = CertIdentity {
        user: Some("carol".into()),
        groups: vec!["eng".into()],
    };
    let mut c = Conversation::new(
        &[AuthMethod::Certificate],
        &[],
        CertStatus::Valid(id.clone()),
    );
    // (No select-group list here: with one, "eng" not on it would be asked about.)
    let no_list = FormSettings {
        groups: Vec::new(),
        ..forms()
    };
    assert_eq!(
        c.on_post(&post(None, None, None), &no_list),
        AuthStep::Success {
            user: "carol".into(),
            group: Some("eng".into())
        }
    );
    let mut missing = Conversation::new(&[AuthMethod::Certificate], &[], CertStatus::None);
    assert_eq!(
        missing.on_post(&post(None, None, None), &forms()),
        AuthStep::Failed {
            reason: "No certificate"
        }
    );
    // enable-auth = plain as the alternative.
    let mut alt = Conversation::new(&[AuthMethod::Certificate], &[plain()], CertStatus::None);
    assert!(matches!(
        alt.on_post(&post(None, None, None), &forms()),
        AuthStep::Form(_)
    ));
    // certificate + password: the user comes from the certificate, a different typed
    // name is refused.
    let mut both = Conversation::new(
        &[AuthMethod::Certificate, plain()],
        &[],
        CertStatus::Valid(id),
    );
    assert!(matches!(
        both.on_post(&post(None, None, None), &forms()),
        AuthStep::Form(LoginForm {
            inputs: FormInputs::Password { .. },
            ..
        })
    ));
    assert!(matches!(
        both.on_post(&post(Some("mallory"), Some("pw"), None), &forms()),
        AuthStep::Failed { .. }
    ));
}

fn with_otp(passwd: bool) -> AuthMethod {
    AuthMethod::Plain {
        passwd: passwd.then(|| "/etc/ocserv/ocpasswd".into()),
        otp: Some("/etc/ocserv/users.oath".into()),
    }
}

fn check_otp(step: &AuthStep) -> (&str, &str) {
    match step {
        AuthStep::CheckOtp { user, code, otp } => {
            assert_eq!(otp, &PathBuf::from("/etc/ocserv/users.oath"));
            (user.as_str(), code.as_str())
        }
        other => panic!("expected an OTP check, got {other:?}"),
    }
}

#[test]
fn password_then_otp() {
    let mut c = Conversation::new(&[with_otp(true)], &[], CertStatus::None);
    let step = c.on_post(&post(Some("alice"), Some("pw"), None), &forms());
    assert!(matches!(step, AuthStep::CheckPassword { .. }));
    let groups = vec!["staff".into()];
    let AuthStep::Form(otp_form) = c.password_checked(PlainAuth::Accepted { groups }, &forms())
    else {
        panic!("expected the OTP form");
    };
    assert_eq!(otp_form.message, OTP_MESSAGE);
    assert_eq!(
        otp_form.inputs,
        FormInputs::Password {
            name: "secondary_password".into(),
            label: "OTP:".into()
        }
    );
    // A post without the code shows the OTP form again, not the password form.
    let AuthStep::Form(again) = c.on_post(&post(None, None, None), &forms()) else {
        panic!("expected the OTP form again");
    };
    assert_eq!(again.message, OTP_MESSAGE);
    let step = c.on_post(&post(None, Some("123456"), None), &forms());
    assert_eq!(check_otp(&step), ("alice", "123456"));
    assert_eq!(
        c.otp_checked(true),
        AuthStep::Success {
            user: "alice".into(),
            group: Some("staff".into())
        }
    );
}

#[test]
fn a_wrong_otp_ends_the_login() {
    let mut c = Conversation::new(&[with_otp(true)], &[], CertStatus::None);
    c.on_post(&post(Some("alice"), Some("pw"), None), &forms());
    c.password_checked(PlainAuth::Accepted { groups: vec![] }, &forms());
    c.on_post(&post(None, Some("000000"), None), &forms());
    assert_eq!(
        c.otp_checked(false),
        AuthStep::Failed {
            reason: "Authentication failed"
        }
    );
    // A wrong password before the OTP still gets ocserv's retries.
    let mut c = Conversation::new(&[with_otp(true)], &[], CertStatus::None);
    c.on_post(&post(Some("alice"), Some("bad"), None), &forms());
    let AuthStep::Form(retry) = c.password_checked(PlainAuth::Rejected, &forms()) else {
        panic!("expected a retry");
    };
    assert_eq!(retry.message, RETRY_MESSAGE);
}

#[test]
fn users_without_a_password_give_the_otp_at_once() {
    // An entry with an empty password: the typed secret is the OTP.
    let mut c = Conversation::new(&[with_otp(true)], &[], CertStatus::None);
    c.on_post(&post(Some("otto"), Some("654321"), None), &forms());
    let step = c.password_checked(PlainAuth::NoPasswordSet { groups: vec![] }, &forms());
    assert_eq!(check_otp(&step), ("otto", "654321"));
    assert!(matches!(c.otp_checked(true), AuthStep::Success { .. }));
    // Without an OTP file such an entry cannot log in.
    let mut c = Conversation::new(&[plain()], &[], CertStatus::None);
    c.on_post(&post(Some("otto"), Some("x"), None), &forms());
    assert!(matches!(
        c.password_checked(PlainAuth::NoPasswordSet { groups: vec![] }, &forms()),
        AuthStep::Form(LoginForm { ref message, .. }) if message == RETRY_MESSAGE
    ));
    // plain[otp=FILE]: no password file at all.
    let mut c = Conversation::new(&[with_otp(false)], &[], CertStatus::None);
    let AuthStep::Form(first) = c.on_post(&post(None, None, None), &forms()) else {
        panic!("expected the first form");
    };
    assert_eq!(first.message, FIRST_OTP_MESSAGE);
    let step = c.on_post(&post(Some("otto"), Some("111111"), None), &forms());
    assert_eq!(check_otp(&step), ("otto", "111111"));
    assert!(matches!(c.otp_checked(true), AuthStep::Success { .. }));
}

#[test]
fn hostile_names_refused() {
    let mut c = Conversation::new(&[plain()], &[], CertStatus::None);
    let long = "a".repeat(64);
    assert!(matches!(
        c.on_post(&post(Some(&long), Some("pw"), None), &forms()),
        AuthStep::Failed { .. }
    ));
    let mut c = Conversation::new(&[plain()], &[], CertStatus::None);
    assert!(matches!(
        c.on_post(&post(Some("a\nb"), Some("pw"), None), &forms()),
        AuthStep::Failed { .. }
    ));
}
