//! The login conversation of one connection, without I/O: which form to show next, when to
//! check a password (the shell does that off the async loop, it costs a SHA-crypt), and
//! the final verdict with user and group.
//!
//! Method selection follows ocserv: the `auth` lines must all pass (e.g. certificate *and*
//! password); `enable-auth` lines are alternatives tried when the client cannot satisfy
//! the primary set (typically: no certificate, so fall back to a password).

use std::path::PathBuf;

use oc_proto::anyconnect::server_auth::{ClientAuth, FormInputs, LoginForm};

use crate::config::AuthMethod;
use crate::passwd::PlainAuth;

/// Password attempts per connection before the final 401 (ocserv's plain module allows 3).
pub const MAX_PASSWORD_ATTEMPTS: u32 = 3;
/// ocserv's limit for user and group names.
pub const MAX_NAME_BYTES: usize = 63;

pub const FIRST_MESSAGE: &str = "Please enter your username and password.";
pub const PASSWORD_MESSAGE: &str = "Please enter your password.";
pub const RETRY_MESSAGE: &str = "Login failed.\nPlease enter your password.";
/// ocserv's prompt for the one-time password.
pub const OTP_MESSAGE: &str = "Please enter your OTP password.";
/// The first form when the method has no password file: the code goes in the password
/// field (a `--token-mode` client recognises the OTP in the message).
pub const FIRST_OTP_MESSAGE: &str = "Please enter your username and OTP password.";
/// ocserv's prompt when a certificate offers several groups.
pub const GROUP_MESSAGE: &str = "Please select your group.";

/// What the client certificate says about the user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertIdentity {
    pub user: Option<String>,
    pub groups: Vec<String>,
}

/// The client certificate situation of this connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertStatus {
    None,
    Invalid(String),
    Valid(CertIdentity),
}

/// How forms look on this server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormSettings {
    pub pre_login_banner: Option<String>,
    /// `(value, label)` options of the group list; empty = no list.
    pub groups: Vec<(String, String)>,
    /// `default-select-group`: the option meaning "my default group".
    pub default_group: Option<String>,
}

/// The next thing the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    Form(LoginForm),
    /// Verify `password` for `user` against this password file, then call
    /// [`Conversation::password_checked`].
    CheckPassword {
        passwd: PathBuf,
        user: String,
        password: String,
    },
    /// Verify the one-time `code` for `user` against this liboath users file, then call
    /// [`Conversation::otp_checked`].
    CheckOtp {
        otp: PathBuf,
        user: String,
        code: String,
    },
    Success {
        user: String,
        group: Option<String>,
    },
    /// Answer `401 <reason>` and close.
    Failed {
        reason: &'static str,
    },
}

/// The password part of the chosen method.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plain {
    passwd: Option<PathBuf>,
    otp: Option<PathBuf>,
}

impl std::fmt::Debug for Conversation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conversation")
            .field("plain", &self.plain)
            .field("otp_due", &self.otp_due.is_some())
            .field("username", &self.username)
            .field("group", &self.group)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

pub struct Conversation {
    plain: Option<Plain>,
    /// The password while it is being checked: when the user's entry has no password, the
    /// same answer is their one-time password (ocserv's OTP-only users).
    pending_secret: Option<String>,
    /// Set once the password part passed and the OTP is due: the groups it gave.
    otp_due: Option<Vec<String>>,
    cert: Option<CertIdentity>,
    /// Set when no method set can work (e.g. certificate required but missing).
    unusable: Option<&'static str>,
    username: Option<String>,
    group: Option<String>,
    /// The group came from the URL (`select-group-by-url`): forms do not change it.
    group_forced: bool,
    /// The client answered the group choice (the default group leaves `group` unset).
    group_answered: bool,
    attempts: u32,
}

/// A user or group name we accept: non-empty, at most [`MAX_NAME_BYTES`], no control
/// characters (names end up in logs, scripts and headers).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_BYTES && !name.chars().any(char::is_control)
}

impl Conversation {
    /// Picks the first method set this client can satisfy. As in ocserv, a client with a
    /// valid certificate gets the first set that uses it (`enable-auth = certificate` next
    /// to a password `auth` logs it in without a password).
    pub fn new(primary: &[AuthMethod], alternatives: &[AuthMethod], cert: CertStatus) -> Self {
        let mut candidates: Vec<Vec<&AuthMethod>> = vec![primary.iter().collect()];
        candidates.extend(alternatives.iter().map(|m| vec![m]));
        if matches!(&cert, CertStatus::Valid(id) if id.user.is_some()) {
            let uses_cert =
                |set: &Vec<&AuthMethod>| set.iter().any(|m| matches!(m, AuthMethod::Certificate));
            // Stable: among each kind the configured order stays.
            candidates.sort_by_key(|set| !uses_cert(set));
        }
        let mut unusable = Some("Authentication failed");
        let mut chosen = None;
        for set in candidates.into_iter().filter(|s| !s.is_empty()) {
            let wants_cert = set.iter().any(|m| matches!(m, AuthMethod::Certificate));
            if wants_cert {
                match &cert {
                    CertStatus::None => {
                        unusable = Some("No certificate");
                        continue;
                    }
                    CertStatus::Invalid(_) => {
                        unusable = Some("Could not read certificate");
                        continue;
                    }
                    CertStatus::Valid(id) if id.user.is_none() => {
                        unusable = Some("Could not read certificate");
                        continue;
                    }
                    CertStatus::Valid(_) => {}
                }
            }
            chosen = Some((wants_cert, set));
            unusable = None;
            break;
        }
        let (plain, cert) = match chosen {
            Some((wants_cert, set)) => (
                set.iter().find_map(|m| match m {
                    AuthMethod::Plain { passwd, otp } => Some(Plain {
                        passwd: passwd.clone(),
                        otp: otp.clone(),
                    }),
                    AuthMethod::Certificate => None,
                }),
                match (&cert, wants_cert) {
                    (CertStatus::Valid(id), true) => Some(id.clone()),
                    _ => None,
                },
            ),
            None => (None, None),
        };
        Self {
            plain,
            pending_secret: None,
            otp_due: None,
            cert,
            unusable,
            username: None,
            group: None,
            group_forced: false,
            group_answered: false,
            attempts: 0,
        }
    }

    /// `select-group-by-url`: the group the URL named (`https://server/GROUP`); it wins over
    /// what the forms would ask (membership is still checked at the end).
    pub fn force_group(&mut self, group: &str) {
        self.group = Some(group.to_owned());
        self.group_forced = true;
    }

    /// A POST (or GET) to an auth URL arrived with this content.
    pub fn on_post(&mut self, msg: &ClientAuth, forms: &FormSettings) -> AuthStep {
        if let Some(reason) = self.unusable {
            return AuthStep::Failed { reason };
        }
        if let Some(group) = msg
            .group
            .as_deref()
            .filter(|g| !g.is_empty() && !self.group_forced)
        {
            if !valid_name(group) {
                return AuthStep::Failed {
                    reason: "Authentication failed",
                };
            }
            let is_default = forms.default_group.as_deref() == Some(group);
            self.group = (!is_default).then(|| canonical_group(group, forms));
            self.group_answered = true;
        }
        let Some(plain) = self.plain.clone() else {
            // Certificate only: no form, unless the certificate offers several groups and
            // the client chose none (then the choice is asked for, as ocserv does).
            return match self.certificate_group_choice(forms) {
                Some(form) => AuthStep::Form(form),
                None => self.finish(Vec::new()),
            };
        };
        if self.username.is_none() {
            if let Some(cert_user) = self.cert.as_ref().and_then(|c| c.user.clone()) {
                // Certificate plus password: the certificate names the user.
                self.username = Some(cert_user);
            }
        }
        if let Some(user) = msg.username.as_deref().filter(|u| !u.is_empty()) {
            if !valid_name(user) {
                return AuthStep::Failed {
                    reason: "Authentication failed",
                };
            }
            match &self.username {
                None => self.username = Some(user.to_string()),
                Some(known) if known != user => {
                    return AuthStep::Failed {
                        reason: "Authentication failed",
                    }
                }
                Some(_) => {}
            }
        }
        let Some(user) = self.username.clone() else {
            let message = if plain.passwd.is_some() {
                FIRST_MESSAGE
            } else {
                FIRST_OTP_MESSAGE
            };
            return AuthStep::Form(self.form(forms, message, FormInputs::UsernamePassword));
        };
        let Some(answer) = msg.password.clone() else {
            // A post without a secret: ask for whatever is due.
            return if self.otp_due.is_some() {
                AuthStep::Form(self.form(forms, OTP_MESSAGE, otp_input()))
            } else {
                AuthStep::Form(self.form(forms, PASSWORD_MESSAGE, password_input()))
            };
        };
        if self.otp_due.is_some() {
            return match plain.otp {
                Some(otp) => AuthStep::CheckOtp {
                    otp,
                    user,
                    code: answer,
                },
                None => AuthStep::Failed {
                    reason: "Authentication failed",
                },
            };
        }
        match (plain.passwd, plain.otp) {
            (Some(passwd), otp) => {
                if otp.is_some() {
                    // Kept in case the entry has no password: then this is the OTP.
                    self.pending_secret = Some(answer.clone());
                }
                AuthStep::CheckPassword {
                    passwd,
                    user,
                    password: answer,
                }
            }
            (None, Some(otp)) => {
                self.otp_due = Some(Vec::new());
                AuthStep::CheckOtp {
                    otp,
                    user,
                    code: answer,
                }
            }
            (None, None) => AuthStep::Failed {
                reason: "Authentication failed",
            },
        }
    }

    /// The shell checked the one-time password it was asked to. ocserv allows one try.
    pub fn otp_checked(&mut self, accepted: bool) -> AuthStep {
        match self.otp_due.take() {
            Some(groups) if accepted => self.finish(groups),
            _ => AuthStep::Failed {
                reason: "Authentication failed",
            },
        }
    }

    /// The shell checked the password it was asked to.
    pub fn password_checked(&mut self, result: PlainAuth, forms: &FormSettings) -> AuthStep {
        let pending = self.pending_secret.take();
        let otp = self.plain.as_ref().and_then(|p| p.otp.clone());
        let user = self.username.clone().unwrap_or_default();
        match (result, otp) {
            (PlainAuth::Accepted { groups }, None) => self.finish(groups),
            (PlainAuth::Accepted { groups }, Some(_)) => {
                self.otp_due = Some(groups);
                AuthStep::Form(self.form(forms, OTP_MESSAGE, otp_input()))
            }
            // No password in the entry: what was typed is the one-time password.
            (PlainAuth::NoPasswordSet { groups }, Some(otp)) => {
                self.otp_due = Some(groups);
                AuthStep::CheckOtp {
                    otp,
                    user,
                    code: pending.unwrap_or_default(),
                }
            }
            (PlainAuth::Rejected | PlainAuth::NoPasswordSet { .. }, _) => {
                self.attempts += 1;
                if self.attempts >= MAX_PASSWORD_ATTEMPTS {
                    AuthStep::Failed {
                        reason: "Authentication failed",
                    }
                } else {
                    AuthStep::Form(self.form(forms, RETRY_MESSAGE, password_input()))
                }
            }
        }
    }

    fn finish(&mut self, password_groups: Vec<String>) -> AuthStep {
        let user = match (
            &self.username,
            self.cert.as_ref().and_then(|c| c.user.clone()),
        ) {
            (Some(u), _) => u.clone(),
            (None, Some(u)) => u,
            (None, None) => {
                return AuthStep::Failed {
                    reason: "Authentication failed",
                }
            }
        };
        // The password method's groups when it takes part (as ocserv's security module
        // checks them), else the certificate's.
        let allowed = match (&self.plain, &self.cert) {
            (None, Some(cert)) => cert.groups.clone(),
            _ => password_groups,
        };
        let group = match self.group.take() {
            Some(g) if allowed.contains(&g) => Some(g),
            // A group the user is not a member of would hand out that group's settings.
            Some(_) => {
                return AuthStep::Failed {
                    reason: "Authentication failed",
                }
            }
            None => allowed.first().cloned(),
        };
        AuthStep::Success { user, group }
    }

    /// With no group asked for: the certificate's groups that may be chosen (those in
    /// `select-group` when it lists any). One is taken as chosen; several make a form
    /// asking which (ocserv issue #692).
    fn certificate_group_choice(&mut self, forms: &FormSettings) -> Option<LoginForm> {
        let cert_groups = self.cert.as_ref().map_or(&[][..], |c| c.groups.as_slice());
        if self.group.is_some() || self.group_answered || cert_groups.is_empty() {
            return None;
        }
        let eligible: Vec<&String> = cert_groups
            .iter()
            .filter(|g| forms.groups.is_empty() || forms.groups.iter().any(|(v, _)| v == *g))
            .collect();
        if let [only] = eligible.as_slice() {
            self.group = Some((*only).clone());
            return None;
        }
        // Several, or none on the select-group list: asked for, with every group the login
        // form offers (the certificate's included, as ocserv lists them).
        Some(self.form(forms, GROUP_MESSAGE, FormInputs::None))
    }

    fn form(&self, forms: &FormSettings, message: &str, inputs: FormInputs) -> LoginForm {
        LoginForm {
            banner: forms.pre_login_banner.clone(),
            message: message.to_string(),
            inputs,
            groups: self.offered_groups(forms),
            action: "/auth".into(),
        }
    }

    /// The `(value, label)` groups a form offers, as ocserv lists them: the one asked for
    /// first, then the default group, the certificate's groups (when it is used) and the
    /// select-group list; a group from the URL alone (no dialog on the client).
    fn offered_groups(&self, forms: &FormSettings) -> Vec<(String, String)> {
        let label_of = |group: &String| {
            forms
                .groups
                .iter()
                .find(|(v, _)| v == group)
                .map_or_else(|| group.clone(), |(_, l)| l.clone())
        };
        if let (true, Some(group)) = (self.group_forced, &self.group) {
            return vec![(group.clone(), label_of(group))];
        }
        let mut groups: Vec<(String, String)> = forms
            .default_group
            .iter()
            .map(|d| (d.clone(), d.clone()))
            .collect();
        for group in self.cert.iter().flat_map(|c| &c.groups) {
            if !forms.groups.iter().any(|(v, _)| v == group) {
                groups.push((group.clone(), group.clone()));
            }
        }
        groups.extend(forms.groups.iter().cloned());
        if let Some(pos) = self
            .group
            .as_ref()
            .and_then(|g| groups.iter().position(|(v, _)| v == g))
        {
            let chosen = groups.remove(pos);
            groups.insert(0, chosen);
        }
        groups
    }
}

fn password_input() -> FormInputs {
    FormInputs::Password {
        name: "password".into(),
        label: "Password:".into(),
    }
}

/// ocserv names the OTP field `password` too; `secondary_password` is where openconnect's
/// `--token-mode` puts OATH codes, so a token client logs in without help.
fn otp_input() -> FormInputs {
    FormInputs::Password {
        name: "secondary_password".into(),
        label: "OTP:".into(),
    }
}

/// Maps a friendly group label back to its name.
fn canonical_group(requested: &str, forms: &FormSettings) -> String {
    forms
        .groups
        .iter()
        .find(|(value, label)| value == requested || label == requested)
        .map(|(value, _)| value.clone())
        .unwrap_or_else(|| requested.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn plain() -> AuthMethod {
        AuthMethod::Plain {
            passwd: Some("/etc/ocserv/ocpasswd".into()),
            otp: None,
        }
    }

    fn post(user: Option<&str>, password: Option<&str>, group: Option<&str>) -> ClientAuth {
        ClientAuth {
            is_init: user.is_none() && password.is_none(),
            username: user.map(str::to_string),
            password: password.map(str::to_string),
            group: group.map(str::to_string),
        }
    }

    fn forms() -> FormSettings {
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
        assert!(
            matches!(step, AuthStep::CheckPassword { ref password, .. } if password == "right")
        );
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
}
