//! The RADIUS login conversation: answers to the server, challenges as forms, retries.

#![allow(clippy::unwrap_used)]

use oc_proto::ipc::RadiusVerdict;

use super::tests::{forms, post};
use super::*;

fn radius() -> AuthMethod {
    AuthMethod::Radius(RadiusMethod {
        config: "/etc/radcli/radiusclient.conf".into(),
        groupconfig: true,
        nas_identifier: None,
        group_separator: ';',
    })
}

fn check(answer: &str, challenge: Option<u64>) -> AuthStep {
    AuthStep::RadiusCheck {
        config: "/etc/radcli/radiusclient.conf".into(),
        user: "alice".into(),
        answer: answer.into(),
        challenge,
    }
}

fn accepted(groups: &[&str]) -> RadiusVerdict {
    RadiusVerdict::Accepted {
        groups: groups.iter().map(|g| g.to_string()).collect(),
        ticket: [0; 16],
    }
}

fn started(group: Option<&str>) -> Conversation {
    let mut c = Conversation::new(&[radius()], &[], CertStatus::None);
    let AuthStep::Form(first) = c.on_post(&post(None, None, None), &forms()) else {
        panic!("expected the login form");
    };
    assert_eq!(first.inputs, FormInputs::UsernamePassword);
    let step = c.on_post(&post(Some("alice"), Some("secret"), group), &forms());
    assert_eq!(step, check("secret", None));
    c
}

#[test]
fn challenges_become_forms_and_their_answers_go_back_with_the_challenge() {
    let mut c = started(None);
    let challenge = RadiusVerdict::Challenge {
        id: 5,
        message: "Enter your token code".into(),
    };
    let AuthStep::Form(form) = c.radius_verdict(&challenge, &forms()) else {
        panic!("expected the challenge form");
    };
    assert_eq!(form.message, "Enter your token code");
    assert_eq!(
        form.inputs,
        FormInputs::Password {
            name: "secondary_password".into(),
            label: "Password1:".into()
        }
    );
    assert!(!c.take_answer_refused());
    // A post without an answer gets the question again.
    assert_eq!(
        c.on_post(&post(None, None, None), &forms()),
        AuthStep::Form(form.clone())
    );
    assert_eq!(
        c.on_post(&post(None, Some("111"), None), &forms()),
        check("111", Some(5))
    );
    // The same question again: the answer was wrong (ban points), the form unchanged.
    let again = RadiusVerdict::Challenge {
        id: 6,
        message: "Enter your token code".into(),
    };
    assert_eq!(c.radius_verdict(&again, &forms()), AuthStep::Form(form));
    assert!(c.take_answer_refused());
    assert!(!c.take_answer_refused(), "counted once");
    assert_eq!(
        c.on_post(&post(None, Some("222"), None), &forms()),
        check("222", Some(6))
    );
    let done = c.radius_verdict(&accepted(&["staff"]), &forms());
    assert_eq!(
        done,
        AuthStep::Success {
            user: "alice".into(),
            group: Some("staff".into())
        }
    );
}

#[test]
fn a_wrong_password_may_be_tried_three_times_a_wrong_challenge_answer_once() {
    let mut c = started(None);
    let reject = |retry| RadiusVerdict::Rejected {
        reason: "Access-Reject".into(),
        retry,
    };
    for _ in 0..2 {
        let AuthStep::Form(form) = c.radius_verdict(&reject(true), &forms()) else {
            panic!("expected a retry form");
        };
        assert_eq!(form.message, RETRY_MESSAGE);
        assert_eq!(
            c.on_post(&post(None, Some("again"), None), &forms()),
            check("again", None)
        );
    }
    assert!(matches!(
        c.radius_verdict(&reject(true), &forms()),
        AuthStep::Failed { .. }
    ));
    let mut c = started(None);
    assert!(matches!(
        c.radius_verdict(&reject(false), &forms()),
        AuthStep::Failed { .. }
    ));
}

#[test]
fn groups_come_from_the_class_attribute() {
    let mut c = started(Some("ops"));
    let done = c.radius_verdict(&accepted(&["staff", "ops"]), &forms());
    assert!(matches!(done, AuthStep::Success { group: Some(ref g), .. } if g == "ops"));
    let mut c = started(Some("ops"));
    assert!(matches!(
        c.radius_verdict(&accepted(&["staff"]), &forms()),
        AuthStep::Failed { .. }
    ));
    // No Class at all: the group asked for cannot be checked and is not given.
    let mut c = started(Some("ops"));
    let done = c.radius_verdict(&accepted(&[]), &forms());
    assert_eq!(
        done,
        AuthStep::Success {
            user: "alice".into(),
            group: None
        }
    );
}
