use std::collections::VecDeque;

use super::*;
use oc_proto::anyconnect::auth::parse_auth_document;

fn form(xml: &str) -> AuthForm {
    parse_auth_document(xml).unwrap().form
}

/// A prompter answering from `lines`, as stdin would.
fn prompter(non_interactive: bool, stdin_answers: bool, lines: &[&str]) -> Prompter {
    Prompter {
        non_interactive,
        stdin_answers,
        input: Box::new(ScriptedLines(
            lines.iter().map(|l| l.to_string()).collect::<VecDeque<_>>(),
        )),
    }
}

const LOGIN: &str = r#"<auth id="main"><form>
    <input type="text" name="username" label="Username:"/>
    <input type="password" name="password" label="Password:"/>
    <input type="hidden" name="tok" value="t1"/>
    <select name="group_list" label="Group:"><option value="a">Alpha</option><option value="b">Beta</option></select>
    </form></auth>"#;

/// ocserv's second factor: one password field after the password was accepted.
const OTP: &str = r#"<auth id="main"><message>Please enter your OTP</message><form>
    <input type="password" name="secondary_password" label="OTP:"/>
    </form></auth>"#;

fn filler(prompter: Prompter, password: Option<&str>) -> FormFiller {
    FormFiller {
        user: Some("alice".into()),
        password: password.map(str::to_string),
        prompter,
        ..FormFiller::default()
    }
}

#[test]
fn fills_from_options_and_password_once() {
    let mut f = filler(prompter(true, false, &[]), Some("pw"));
    f.authgroup = Some("Beta".into());
    let answers = f.fill(&form(LOGIN)).unwrap();
    assert_eq!(
        answers,
        vec![
            ("username".into(), "alice".into()),
            ("password".into(), "pw".into()),
            ("tok".into(), "t1".into()),
            ("group_list".into(), "b".into()),
        ]
    );
    // The retry form cannot reuse the password, and --non-inter alone never asks.
    let err = f.fill(&form(LOGIN)).unwrap_err().to_string();
    assert!(
        err.contains("User input required in non-interactive mode"),
        "{err}"
    );
    assert!(err.contains("--non-inter"), "{err}");
}

/// `printf 'pw\n123456\n' | openconnect --passwd-on-stdin --non-inter`: the first line
/// was read at start-up, the OTP prompt takes the next, and at the end of input the next
/// prompt has no answer.
#[test]
fn passwd_on_stdin_answers_later_prompts_under_non_inter() {
    let mut f = filler(prompter(true, true, &["123456"]), Some("pw"));
    f.authgroup = Some("alpha".into());
    assert_eq!(f.fill(&form(LOGIN)).unwrap()[1].1, "pw");
    assert_eq!(
        f.fill(&form(OTP)).unwrap(),
        vec![("secondary_password".into(), "123456".into())]
    );
    let err = f.fill(&form(OTP)).unwrap_err().to_string();
    assert!(
        err.contains("User input required in non-interactive mode"),
        "{err}"
    );
    assert!(err.contains("no more lines"), "{err}");
}

/// `--non-inter` without `--passwd-on-stdin` never reads stdin.
#[test]
fn non_inter_alone_leaves_stdin_unread() {
    let mut f = filler(prompter(true, false, &["never read"]), Some("pw"));
    f.authgroup = Some("Alpha".into());
    f.fill(&form(LOGIN)).unwrap();
    assert!(f.fill(&form(OTP)).is_err());
    let line = f.prompter.input.read_line(false).unwrap();
    assert_eq!(line.as_deref(), Some("never read"));
}

/// Without `--non-inter` every prompt reads stdin (terminal or not); the end of input
/// ends the login.
#[test]
fn interactive_prompts_read_stdin_until_its_end() {
    let mut f = filler(prompter(false, false, &["beta", "pw", "654321"]), None);
    f.user = None;
    f.entries = vec![("main".into(), "username".into(), "bob".into())];
    let answers = f.fill(&form(LOGIN)).unwrap();
    // The group is asked first (as openconnect), then the password.
    assert_eq!(answers[3].1, "b");
    assert_eq!(answers[1].1, "pw");
    assert_eq!(answers[0].1, "bob");
    assert_eq!(f.fill(&form(OTP)).unwrap()[0].1, "654321");
    let err = f.fill(&form(OTP)).unwrap_err().to_string();
    assert!(err.contains("standard input closed"), "{err}");
}

#[test]
fn stdin_password_goes_to_the_first_password_field_before_form_entries() {
    let mut f = filler(prompter(true, false, &[]), Some("from stdin"));
    f.authgroup = Some("Alpha".into());
    f.entries = vec![("main".into(), "password".into(), "from -F".into())];
    assert_eq!(f.fill(&form(LOGIN)).unwrap()[1].1, "from stdin");
    assert_eq!(f.fill(&form(LOGIN)).unwrap()[1].1, "from -F");
}

#[test]
fn group_choice_matches_labels_as_openconnect() {
    let options = |labels: &[(&str, &str)]| -> Vec<SelectOption> {
        labels
            .iter()
            .map(|(v, l)| SelectOption {
                value: v.to_string(),
                label: l.to_string(),
            })
            .collect()
    };
    let opts = options(&[("e", "Engineering"), ("o", "Ops"), ("x", "Operators")]);
    assert_eq!(match_choice(&opts, "engineering").unwrap().value, "e");
    assert_eq!(match_choice(&opts, "Eng").unwrap().value, "e");
    assert_eq!(match_choice(&opts, "ops").unwrap().value, "o");
    assert!(match_choice(&opts, "Op").unwrap_err().contains("multiple"));
    assert!(match_choice(&opts, "zzz")
        .unwrap_err()
        .contains("not available"));
    assert!(match_choice(&opts, "").is_err());
    // Beyond openconnect: a choice's value.
    assert_eq!(match_choice(&opts, "x").unwrap().value, "x");
}

/// A group that is not offered, or several offered without `--authgroup`: asked for, which
/// `--non-inter` alone cannot answer; a wrong answer from stdin is asked again.
#[test]
fn groups_are_asked_for_as_openconnect_asks() {
    let mut f = filler(prompter(true, false, &[]), Some("pw"));
    f.authgroup = Some("zzz".into());
    assert!(f.fill(&form(LOGIN)).is_err());
    let mut f = filler(prompter(true, false, &[]), Some("pw"));
    let err = f.fill(&form(LOGIN)).unwrap_err().to_string();
    assert!(err.contains("Group:"), "{err}");
    let mut f = filler(prompter(true, true, &["Gamma", "be"]), Some("pw"));
    assert_eq!(f.fill(&form(LOGIN)).unwrap()[3].1, "b");
    // One choice needs no answer.
    let single = r#"<auth id="main"><form><select name="group_list" label="Group:">
        <option value="only">Only</option></select></form></auth>"#;
    let mut f = filler(prompter(true, false, &[]), None);
    assert_eq!(f.fill(&form(single)).unwrap()[0].1, "only");
}

#[test]
fn answers_are_bounded_lines_of_utf8() {
    let mut input: &[u8] = b"pw\r\n\nlast";
    assert_eq!(read_answer(&mut input).unwrap().as_deref(), Some("pw\r"));
    assert_eq!(read_answer(&mut input).unwrap().as_deref(), Some(""));
    assert_eq!(read_answer(&mut input).unwrap().as_deref(), Some("last"));
    assert_eq!(read_answer(&mut input).unwrap(), None);
    let long = vec![b'a'; MAX_LINE as usize + 10];
    let mut input: &[u8] = &long;
    assert_eq!(read_answer(&mut input).unwrap().unwrap().len(), 4096);
    assert_eq!(read_answer(&mut input).unwrap().unwrap().len(), 10);
    let mut input: &[u8] = b"\xff\xfe\n";
    assert!(read_answer(&mut input).is_err());
}

#[test]
fn token_secrets_name_the_form_entry_that_answers_them() {
    let entries = vec![("stoken".to_string(), "pin".to_string(), "1234".to_string())];
    let mut p = prompter(true, false, &[]);
    assert_eq!(
        answer_secret(&entries, &mut p, "stoken", "pin", "PIN:").unwrap(),
        "1234"
    );
    let err = answer_secret(&entries, &mut p, "stoken", "password", "Password:")
        .unwrap_err()
        .to_string();
    assert!(err.contains("-F stoken:password=VALUE"), "{err}");
    let mut p = prompter(true, true, &["secret"]);
    assert_eq!(
        answer_secret(&entries, &mut p, "stoken", "password", "Password:").unwrap(),
        "secret"
    );
}

#[test]
fn no_passwd_refuses_every_form() {
    let mut f = filler(prompter(true, false, &[]), Some("pw"));
    f.no_passwd = true;
    let err = f.fill(&form(LOGIN)).unwrap_err().to_string();
    assert!(
        err.contains("Asked for password but '--no-passwd' set"),
        "{err}"
    );
}
