//! Pages as upstream's fake Juniper servers and real gateways send them.

use super::*;

fn form_of(html: &str) -> NcForm {
    match read_page(html).unwrap() {
        NcPage::Form(form) => form,
        other => panic!("not a form: {other:?}"),
    }
}

fn names(form: &AuthForm) -> Vec<(&str, &FieldKind, bool)> {
    form.fields
        .iter()
        .map(|f| (f.name.as_str(), &f.kind, f.token))
        .collect()
}

#[test]
fn the_login_form_with_realms_a_token_field_and_its_button() {
    let page = r#"<html><body><form name="frmLogin" method="post" action="/dana-na/auth/url_default/login.cgi">
<input type="text" name="username"/>
<input type="password" name="password"/>
<input type="password" name="token_as_second_password"/>
<input type="submit" value="Sign In" name="btnSubmit"/>
<input type="submit" value="Other" name="btnOther"/>
<input type="checkbox" name="remember" value="yes"/>
<select name="realm"><option value="0">abc</option><option value="1">def</option></select></form></body></html>"#;
    let form = form_of(page);
    assert_eq!(form.kind, NcFormKind::Login);
    assert_eq!(
        form.action.as_deref(),
        Some("/dana-na/auth/url_default/login.cgi")
    );
    assert_eq!(form.form.id, "frmLogin");
    assert_eq!(form.form.group_select.as_deref(), Some("realm"));
    let fields = names(&form.form);
    assert_eq!(fields[0], ("username", &FieldKind::Text, false));
    assert_eq!(fields[1], ("password", &FieldKind::Password, false));
    assert_eq!(
        fields[2],
        ("token_as_second_password", &FieldKind::Password, true),
        "a second password is a token"
    );
    assert_eq!(form.form.fields[3].name, "btnSubmit");
    assert_eq!(form.form.fields[3].value.as_deref(), Some("Sign In"));
    assert!(!form.form.fields.iter().any(|f| f.name == "btnOther"));
    assert_eq!(form.form.fields[4].kind, FieldKind::Hidden, "a checkbox");
    let FieldKind::Select(options) = &form.form.fields[5].kind else {
        panic!("no realm select");
    };
    assert_eq!(options[1].label, "def");
    assert_eq!(options[1].value, "1");
}

#[test]
fn token_forms_confirmation_and_saml_hand_over() {
    for (name, button) in [
        ("frmDefender", "btnAction"),
        ("frmNextToken", "btnAction"),
        ("frmTotpToken", "totpactionEnter"),
    ] {
        let page = format!(
            r#"<form name="{name}" method="post" action="/t.cgi">
<input type="hidden" name="username" value="test"/>
<input type="password" name="token_code"/>
<input type="submit" name="{button}" value="Sign In"/></form>"#
        );
        let form = form_of(&page);
        assert_eq!(form.kind, NcFormKind::Token, "{name}");
        let fields = names(&form.form);
        assert_eq!(fields[1], ("token_code", &FieldKind::Password, true));
        assert_eq!(fields[2].0, button);
    }
    let confirm = r#"<form name="frmConfirmation" method="POST" action="/c">
<input type="hidden" name="password" value="p&amp;w"/>
<input type="submit" name="btnContinue" value="Confirm Login"/></form>"#;
    let form = form_of(confirm);
    assert_eq!(form.kind, NcFormKind::Pass);
    assert_eq!(form.form.fields[0].value.as_deref(), Some("p&w"));
    let saml = r#"<form action="/next" id="formSAMLSSO" method="post">
<input id="RelayState" name="RelayState" type="hidden">
<input type="submit" value="Continue"></form>"#;
    let form = form_of(saml);
    assert_eq!(form.kind, NcFormKind::Pass);
    assert_eq!(form.form.fields.len(), 1, "an unnamed button is not sent");
}

#[test]
fn adfs_login_form_and_its_verification_code() {
    let page = r#"<!doctype html>
<form id="loginForm" method="post">
  <input id="autheMethod" name="AuthMethod" type="hidden" value="AzureMfaAuthentication">
  <input id="verificationCodeInput" name="VerificationCode" type="text">
  <input id="signInButton" name="SignIn" type="submit" value="Sign in">
</form>
<form action="/adfs/ls/" id="options" method="post"></form>"#;
    let form = form_of(page);
    assert_eq!(form.kind, NcFormKind::Login);
    assert_eq!(form.action, None, "posts back to the page");
    let fields = names(&form.form);
    assert_eq!(fields[1], ("VerificationCode", &FieldKind::Password, true));
    assert_eq!(fields.len(), 2, "SignIn is not loginForm's button");
}

#[test]
fn roles_are_links_and_banners_come_from_the_notice() {
    let page = r#"<form name="frmSelectRoles"><table id="TABLE_SelectRole_1">
<tr><td>You have access to the following roles:</td></tr>
<tr><td><a href="/dana-na/auth/url_default/login.cgi?role=0">foo</a></td></tr>
<tr><td><a href="/dana-na/auth/url_default/login.cgi?role=1">bar</a></td></tr>
</table></form>"#;
    let NcPage::Roles(form) = read_page(page).unwrap() else {
        panic!("not roles");
    };
    assert_eq!(form.group_select.as_deref(), Some(ROLES_FIELD));
    let FieldKind::Select(options) = &form.fields[0].kind else {
        panic!("no select");
    };
    assert_eq!(options.len(), 2);
    assert_eq!(options[1].label, "bar");
    assert!(options[1].value.ends_with("role=1"));
    let notice = r#"<form name="frmLogin" method="post"><textarea name="sn-postauth-text">
Authorised use only.</textarea><input type="submit" name="sn-postauth-proceed" value="Proceed"></form>"#;
    let form = form_of(notice);
    assert_eq!(form.form.banner.as_deref(), Some("Authorised use only."));
    assert_eq!(form.form.fields[0].name, "sn-postauth-proceed");
}

#[test]
fn pages_without_a_known_form() {
    assert_eq!(read_page("some junk HTML webtop").unwrap(), NcPage::NoForm);
    assert_eq!(read_page("").unwrap(), NcPage::NoForm);
    let err = read_page(r#"<form name="frmRemediate" action="/dana-na/auth/remediate.cgi">"#)
        .unwrap_err();
    assert!(err.to_string().contains("TNCC/Host Checker"), "{err}");
    let get = read_page(r#"<form name="frmLogin" method="get">"#).unwrap_err();
    assert!(matches!(get, NcError::FormMethod { .. }), "{get}");
    assert!(matches!(
        read_page("<form></form>"),
        Err(NcError::UnknownForm { .. })
    ));
}

/// Found by the fuzzer: a select that is never closed is still a field (and the group).
#[test]
fn an_unclosed_select_is_kept() {
    let page = r#"<form name="frmLogin" method="post"><input type="password" name="password"/>
<select name="realm"><option value="0">a</option><input type="submit" name="btnSubmit"/></form>"#;
    let form = form_of(page).form;
    assert_eq!(form.group_select.as_deref(), Some("realm"));
    assert!(form.fields.iter().any(|f| f.name == "realm"));
}

#[test]
fn the_cookie_is_dsid_and_its_companions() {
    assert_eq!(session_cookie([("DSPREAUTH", "x")]), None);
    assert_eq!(session_cookie([("DSID", "")]), None);
    let cookie = session_cookie([
        ("DSLastAccess", "2"),
        ("DSID", "abc"),
        ("DSFirstAccess", "1"),
        ("other", "z"),
    ]);
    assert_eq!(cookie.as_deref(), Some("DSID=abc; DSFirst=1; DSLast=2"));
}
