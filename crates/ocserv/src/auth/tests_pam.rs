//! The PAM login conversation: prompts as forms, the first form's password for PAM's first
//! prompt, groups from the Unix account.

#![allow(clippy::unwrap_used)]

use oc_proto::ipc::PamEvent;

use super::tests::{forms, post};
use super::*;

fn pam() -> AuthMethod {
    AuthMethod::Pam(PamMethod {
        service: "ocserv".into(),
        gid_min: 1000,
    })
}

fn prompt(id: u64, message: &str, echo: bool) -> PamEvent {
    PamEvent::Prompt {
        id,
        message: message.into(),
        echo,
    }
}

fn accepted(user: &str, groups: Option<&[&str]>) -> PamEvent {
    PamEvent::Accepted {
        user: user.into(),
        groups: groups.map(|g| g.iter().map(|s| s.to_string()).collect()),
        ticket: [0; 16],
    }
}

/// A started conversation whose first prompt was answered with the first form's password.
fn answered_first_prompt(group: Option<&str>) -> Conversation {
    let mut c = Conversation::new(&[pam()], &[], CertStatus::None);
    let AuthStep::Form(first) = c.on_post(&post(None, None, None), &forms()) else {
        panic!("expected the login form");
    };
    assert_eq!(first.inputs, FormInputs::UsernamePassword);
    assert_eq!(first.message, FIRST_MESSAGE);
    let step = c.on_post(&post(Some("alice"), Some("secret"), group), &forms());
    assert_eq!(
        step,
        AuthStep::PamStart {
            service: "ocserv".into(),
            user: "alice".into()
        }
    );
    let step = c.pam_event(&prompt(7, "Password: ", false), &forms());
    assert_eq!(
        step,
        AuthStep::PamAnswer {
            id: 7,
            answer: "secret".into()
        }
    );
    c
}

#[test]
fn the_first_forms_password_answers_pams_first_prompt() {
    let mut c = answered_first_prompt(None);
    let done = c.pam_event(&accepted("alice", Some(&["staff", "ops"])), &forms());
    assert_eq!(
        done,
        AuthStep::Success {
            user: "alice".into(),
            group: Some("staff".into())
        }
    );
}

#[test]
fn a_second_prompt_is_a_form_with_pams_words() {
    let mut c = answered_first_prompt(None);
    let AuthStep::Form(code) = c.pam_event(&prompt(7, "Verification code: ", true), &forms())
    else {
        panic!("expected the code form");
    };
    assert_eq!(code.message, "Verification code:");
    // Echo on: shown as typed; the second distinct prompt is where token clients answer.
    assert_eq!(
        code.inputs,
        FormInputs::Text {
            name: "secondary_password".into(),
            label: "Password1:".into()
        }
    );
    assert_eq!(c.pam_waiting(), Some(7));
    // A post without the answer gets the same question again.
    let again = c.on_post(&post(None, None, None), &forms());
    assert_eq!(again, AuthStep::Form(code));
    let step = c.on_post(&post(None, Some("123456"), None), &forms());
    assert_eq!(
        step,
        AuthStep::PamAnswer {
            id: 7,
            answer: "123456".into()
        }
    );
    assert_eq!(c.pam_waiting(), None);
    let done = c.pam_event(&accepted("alice", Some(&["staff"])), &forms());
    assert!(matches!(done, AuthStep::Success { .. }));
}

#[test]
fn a_bare_password_prompt_gets_ocservs_sentence_and_notes_stay() {
    let mut c = Conversation::new(&[pam()], &[], CertStatus::None);
    // The first form came back without a password: PAM's prompt becomes a form.
    c.on_post(&post(Some("alice"), None, None), &forms());
    let AuthStep::Form(form) = c.pam_event(&prompt(3, "Password: ", false), &forms()) else {
        panic!("expected the password form");
    };
    assert_eq!(form.message, PASSWORD_MESSAGE);
    assert!(matches!(form.inputs, FormInputs::Password { ref name, .. } if name == "password"));
    c.on_post(&post(None, Some("secret"), None), &forms());
    let notes = "Your password expires in 3 days. New password: ";
    let AuthStep::Form(form) = c.pam_event(&prompt(3, notes, false), &forms()) else {
        panic!("expected the new-password form");
    };
    assert_eq!(form.message, notes.trim());
}

#[test]
fn a_refusal_ends_the_login() {
    let mut c = answered_first_prompt(None);
    let step = c.pam_event(
        &PamEvent::Rejected {
            reason: "authentication: Authentication failure".into(),
        },
        &forms(),
    );
    assert!(matches!(step, AuthStep::Failed { .. }));
    // Nothing more is asked of PAM after the verdict.
    let step = c.on_post(&post(None, Some("again"), None), &forms());
    assert!(matches!(step, AuthStep::Failed { .. }));
}

#[test]
fn an_event_nobody_waits_for_fails_the_login() {
    let mut c = Conversation::new(&[pam()], &[], CertStatus::None);
    let step = c.pam_event(&accepted("alice", Some(&["staff"])), &forms());
    assert!(matches!(step, AuthStep::Failed { .. }));
}

#[test]
fn groups_come_from_the_unix_account() {
    // A member gets the group asked for.
    let mut c = answered_first_prompt(Some("ops"));
    let done = c.pam_event(&accepted("alice", Some(&["staff", "ops"])), &forms());
    assert!(matches!(done, AuthStep::Success { group: Some(ref g), .. } if g == "ops"));
    // Not a member: refused, else the group's settings would be handed out.
    let mut c = answered_first_prompt(Some("ops"));
    let done = c.pam_event(&accepted("alice", Some(&["staff"])), &forms());
    assert!(matches!(done, AuthStep::Failed { .. }));
    // No Unix account (a directory user behind PAM): no group, as ocserv.
    let mut c = answered_first_prompt(Some("ops"));
    let done = c.pam_event(&accepted("alice", None), &forms());
    assert_eq!(
        done,
        AuthStep::Success {
            user: "alice".into(),
            group: None
        }
    );
}

#[test]
fn pam_may_settle_on_another_spelling_of_the_user() {
    let mut c = answered_first_prompt(None);
    let done = c.pam_event(&accepted("Alice", Some(&[])), &forms());
    assert!(matches!(done, AuthStep::Success { ref user, .. } if user == "Alice"));
}
