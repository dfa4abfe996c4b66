//! The `dana-na` web login of Juniper Network Connect (and of Pulse servers' web side), as
//! upstream's `oncp_obtain_cookie` reads it: each page's first form, known by its name or
//! id, becomes an [`NcPage`]; the session is done once the server has set `DSID`.
//!
//! | form | what it is | its submit button |
//! |---|---|---|
//! | `frmLogin` (name), `loginForm` (id, ADFS) | user name, password, realm select; a second password field is a token | `btnSubmit`, `submitButton` |
//! | `frmDefender`, `frmNextToken`, `frmTotpToken` | a token code | `btnAction`, `totpactionEnter` |
//! | `frmConfirmation` | "confirm your login": posted back as it is | `btnContinue` |
//! | `frmSelectRoles` | links in `TABLE_SelectRole_1`, one per role | (a link to follow) |
//! | `hiddenform`, `formSAMLSSO` (id) | a SAML assertion passed on | `submit` |
//!
//! Only the named submit button of each form (and `sn-postauth-proceed`,
//! `sn-preauth-proceed`, `secidactionEnter`) goes with the post, as the button a browser
//! user would press; checkboxes go with their value; `realm` (or the roles list) is what
//! `--authgroup` chooses; a `sn-postauth-text` or `sn-preauth-text` text area is the banner.

use crate::form::{attr_of, tags, AuthForm, FieldKind, FormField, SelectOption, SelectReader};

use super::NcError;

/// The cookie that ends the login.
pub const DSID: &str = "DSID";
/// The roles list's field, which `--authgroup` answers.
pub const ROLES_FIELD: &str = "frmSelectRoles";
/// The table the roles are listed in.
const ROLES_TABLE: &str = "TABLE_SelectRole_1";
/// Tags read from one page at most.
const MAX_TAGS: usize = 8192;
/// Fields and choices kept from one form at most.
const MAX_FIELDS: usize = 64;
const MAX_CHOICES: usize = 1024;

/// What a form asks of the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NcFormKind {
    /// Credentials: fill it (user, password, realm; a second password is a token).
    Login,
    /// A token code.
    Token,
    /// Nothing to ask: post it back as it is (a confirmation, a SAML hand-over).
    Pass,
}

/// A form of the login, read from a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NcForm {
    pub kind: NcFormKind,
    /// Its fields, the named submit button among them as a hidden field.
    pub form: AuthForm,
    /// Where it posts (relative to the page); `None`: back to the page.
    pub action: Option<String>,
}

/// What a page of the login is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NcPage {
    Form(NcForm),
    /// The roles: choose one (a select named [`ROLES_FIELD`] whose values are the links),
    /// then follow its link with a GET.
    Roles(AuthForm),
    /// No form at all (a host checker's waiting page, a landing page).
    NoForm,
}

/// The form names and ids upstream knows: (name or id, matched by id, kind, its submit
/// button).
const KNOWN: &[(&str, bool, NcFormKind, &str)] = &[
    ("frmLogin", false, NcFormKind::Login, "btnSubmit"),
    ("loginForm", true, NcFormKind::Login, "submitButton"),
    ("frmDefender", false, NcFormKind::Token, "btnAction"),
    ("frmNextToken", false, NcFormKind::Token, "btnAction"),
    ("frmTotpToken", false, NcFormKind::Token, "totpactionEnter"),
    ("frmConfirmation", false, NcFormKind::Pass, "btnContinue"),
    ("hiddenform", false, NcFormKind::Pass, "submit"),
    ("formSAMLSSO", true, NcFormKind::Pass, "submit"),
];

/// Submit buttons that go with any form (the sign-in notices' and SecurID's).
const ALWAYS_PRESSED: &[&str] = &[
    "sn-postauth-proceed",
    "sn-preauth-proceed",
    "secidactionEnter",
];

type Tag = (String, Vec<(String, String)>);

/// Reads a login page: its first form, as upstream reads it.
pub fn read_page(html: &str) -> Result<NcPage, NcError> {
    let mut tags = tags(html).take(MAX_TAGS);
    let Some(((_, attrs), _)) = tags.by_ref().find(|((name, _), _)| name == "form") else {
        return Ok(NcPage::NoForm);
    };
    let name = attr_of(&attrs, "name");
    let id = attr_of(&attrs, "id");
    if name.as_deref() == Some(ROLES_FIELD) {
        return Ok(NcPage::Roles(roles(tags)));
    }
    let known = KNOWN.iter().find(|(n, by_id, _, _)| {
        let attr = if *by_id { &id } else { &name };
        attr.as_deref() == Some(n)
    });
    let Some(&(form_id, _, kind, button)) = known else {
        let action = attr_of(&attrs, "action").unwrap_or_default();
        return Err(NcError::UnknownForm {
            name: name.unwrap_or_default(),
            id: id.unwrap_or_default(),
            host_checker: action.contains("remediate.cgi"),
        });
    };
    let method = attr_of(&attrs, "method").unwrap_or_default();
    if !method.eq_ignore_ascii_case("post") {
        return Err(NcError::FormMethod {
            form: form_id.to_string(),
            method,
        });
    }
    let mut form = AuthForm {
        id: form_id.to_string(),
        ..AuthForm::default()
    };
    read_fields(&mut form, tags, button);
    Ok(NcPage::Form(NcForm {
        kind,
        form,
        action: attr_of(&attrs, "action").filter(|a| !a.is_empty()),
    }))
}

/// The form's fields up to its end.
fn read_fields(form: &mut AuthForm, tags: impl Iterator<Item = (Tag, String)>, button: &str) {
    let mut selects = SelectReader::default();
    for ((tag, attrs), text) in tags {
        if selects.tag(&tag, &attrs, &text, &mut |s| add_select(form, s)) {
            continue;
        }
        match tag.as_str() {
            "/form" => break,
            "input" => {
                if let Some(field) = input(form, &attrs, button) {
                    add(form, field);
                }
            }
            "textarea" => {
                let name = attr_of(&attrs, "name")
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                if name == "sn-postauth-text" || name == "sn-preauth-text" {
                    form.banner = Some(text.trim().to_string()).filter(|t| !t.is_empty());
                }
            }
            _ => {}
        }
    }
    if let Some(select) = selects.finish() {
        add_select(form, select);
    }
}

/// A select once read; `realm` is the group `--authgroup` chooses.
fn add_select(form: &mut AuthForm, select: FormField) {
    let name = select.name.clone();
    add(form, select);
    if name == "realm" && form.fields.iter().any(|f| f.name == name) {
        form.group_select = Some(name);
    }
}

/// A field; duplicates of a name are dropped, as upstream.
fn add(form: &mut AuthForm, field: FormField) {
    if form.fields.len() < MAX_FIELDS && !form.fields.iter().any(|f| f.name == field.name) {
        form.fields.push(field);
    }
}

fn field(name: &str, kind: FieldKind, value: Option<String>) -> FormField {
    FormField {
        name: name.to_string(),
        label: format!("{name}:"),
        kind,
        value,
        token: false,
    }
}

/// An `<input>` as upstream's `parse_input_node` takes it for Juniper.
fn input(form: &AuthForm, attrs: &[(String, String)], button: &str) -> Option<FormField> {
    let kind = attr_of(attrs, "type")?.to_ascii_lowercase();
    let name = attr_of(attrs, "name")?;
    let value = attr_of(attrs, "value");
    let hidden_style = attr_of(attrs, "style").is_some_and(|s| s == "display: none;");
    if hidden_style || kind == "hidden" || kind == "checkbox" {
        return Some(field(&name, FieldKind::Hidden, value));
    }
    match kind.as_str() {
        "password" => {
            let mut f = field(&name, FieldKind::Password, None);
            f.token = is_token(form);
            Some(f)
        }
        "text" | "username" | "email" => {
            // ADFS's verification code is a token code.
            if form.id == "loginForm" && name == "VerificationCode" {
                let mut f = field(&name, FieldKind::Password, None);
                f.token = true;
                return Some(f);
            }
            Some(field(&name, FieldKind::Text, None))
        }
        "submit" if name == button || ALWAYS_PRESSED.contains(&name.as_str()) => {
            Some(field(&name, FieldKind::Hidden, value))
        }
        _ => None,
    }
}

/// Upstream's `oncp_can_gen_tokencode`: in a login form, a password field after another
/// one is a token; in a token form, every one is.
fn is_token(form: &AuthForm) -> bool {
    match form.id.as_str() {
        "frmLogin" | "loginForm" => form.fields.iter().any(|f| f.kind == FieldKind::Password),
        "frmDefender" | "frmNextToken" | "frmTotpToken" => true,
        _ => false,
    }
}

/// The roles page: each link in the roles table, as a choice of the roles select.
fn roles(tags: impl Iterator<Item = (Tag, String)>) -> AuthForm {
    let mut options = Vec::new();
    let mut in_table = false;
    for ((tag, attrs), text) in tags {
        match tag.as_str() {
            "table" => in_table = attr_of(&attrs, "id").as_deref() == Some(ROLES_TABLE),
            "/table" | "/form" if in_table => break,
            "a" if in_table && options.len() < MAX_CHOICES => {
                if let Some(href) = attr_of(&attrs, "href") {
                    options.push(SelectOption {
                        value: href,
                        label: text.trim().to_string(),
                    });
                }
            }
            _ => {}
        }
    }
    AuthForm {
        id: ROLES_FIELD.to_string(),
        fields: vec![field(ROLES_FIELD, FieldKind::Select(options), None)],
        group_select: Some(ROLES_FIELD.to_string()),
        ..AuthForm::default()
    }
}

/// The session's cookie from the cookies the server set, as upstream prints it: `DSID`,
/// then `DSFirst`, `DSLast` and `DSSignInUrl` when set. `None` until `DSID` is there.
pub fn session_cookie<'a>(cookies: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<String> {
    let mut dsid = None;
    let mut rest: [Option<&str>; 3] = [None; 3];
    for (name, value) in cookies {
        match name {
            DSID => dsid = Some(value),
            "DSFirstAccess" => rest[0] = Some(value),
            "DSLastAccess" => rest[1] = Some(value),
            "DSSignInUrl" => rest[2] = Some(value),
            _ => {}
        }
    }
    let mut cookie = format!("{DSID}={}", dsid.filter(|v| !v.is_empty())?);
    for (name, value) in ["DSFirst", "DSLast", "DSSignInUrl"].iter().zip(rest) {
        if let Some(v) = value {
            cookie.push_str(&format!("; {name}={v}"));
        }
    }
    Some(cookie)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests;
