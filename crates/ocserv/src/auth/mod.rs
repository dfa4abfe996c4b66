//! The login conversation of one connection, without I/O: which form to show next, when to
//! check a password (the shell does that off the async loop, it costs a SHA-crypt), and
//! the final verdict with user and group.
//!
//! Method selection follows ocserv: the `auth` lines must all pass (e.g. certificate *and*
//! password); `enable-auth` lines are alternatives tried when the client cannot satisfy
//! the primary set (typically: no certificate, so fall back to a password).

use std::path::PathBuf;

use oc_proto::anyconnect::server_auth::{ClientAuth, FormInputs, LoginForm};

use crate::config::{AuthMethod, GssapiMethod, PamMethod, RadiusMethod};
use crate::passwd::PlainAuth;

mod gssapi_steps;
mod oidc_steps;
mod pam_login;
use gssapi_steps::gssapi_switches;
pub use gssapi_steps::HttpAuth;
pub use oidc_steps::Bearer;
mod radius_steps;
use pam_login::PamProgress;

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
    /// Start PAM service `service` for `user` in the security module, then call
    /// [`Conversation::pam_event`].
    PamStart {
        service: String,
        user: String,
    },
    /// Give PAM conversation `id` the client's answer, then call
    /// [`Conversation::pam_event`].
    PamAnswer {
        id: u64,
        answer: String,
    },
    /// Answer `401` with `WWW-Authenticate: Negotiate` (and this token, when there is
    /// one); `fallback`: other methods follow if the client cannot (`X-HTTP-Auth-Support`).
    Negotiate {
        token: Option<Vec<u8>>,
        fallback: bool,
    },
    /// Give the client's Negotiate token to the security module (continuing context `id`),
    /// then call [`Conversation::gssapi_verdict`].
    GssapiAccept {
        id: Option<u64>,
        token: Vec<u8>,
    },
    /// Answer `401` with `WWW-Authenticate: Bearer`: the client must send its OpenID
    /// Connect token.
    BearerChallenge,
    /// Give the client's bearer token to the security module, then call
    /// [`Conversation::oidc_verdict`].
    OidcCheck {
        token: String,
    },
    /// Start a browser login (`single-sign-on-v2`) and send its form, or call
    /// [`Conversation::sso_unavailable`] when the host has none; `external`: the client
    /// takes the token through its localhost callback.
    SsoStart {
        external: bool,
    },
    /// Look up the one-time token a browser login handed out, then call
    /// [`Conversation::oidc_verdict`] with its user.
    SsoRedeem {
        token: String,
    },
    /// Send the user's answer to the RADIUS server of radcli file `config` (answering
    /// `challenge`), then call [`Conversation::radius_verdict`].
    RadiusCheck {
        config: PathBuf,
        user: String,
        answer: String,
        challenge: Option<u64>,
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

/// A user name that is invalid, or another than the one already known.
#[derive(Debug)]
struct NameRefused;

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
            .field("pam", &self.pam)
            .field("gssapi", &self.gssapi)
            .field("otp_due", &self.otp_due.is_some())
            .field("username", &self.username)
            .field("group", &self.group)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

pub struct Conversation {
    plain: Option<Plain>,
    /// `auth = pam`: the PAM stack asks instead of the password files.
    pam: Option<PamMethod>,
    pam_progress: PamProgress,
    /// PAM's last prompt and its number among the distinct ones.
    pam_last_prompt: Option<(String, u32)>,
    /// `auth = radius`: the RADIUS server checks the answers.
    radius: Option<RadiusMethod>,
    /// The RADIUS challenge the next answer is for: its id, message and number.
    radius_challenge: Option<(u64, String, u32)>,
    /// `auth = gssapi`: the client logs in with `Authorization: Negotiate`.
    gssapi: Option<GssapiMethod>,
    /// The security module's context this login continues.
    gss_context: Option<u64>,
    /// `auth = oidc`: the client logs in with `Authorization: Bearer`.
    oidc: bool,
    /// The security module said this host has no browser login.
    sso_unavailable: bool,
    /// With GSSAPI chosen: the login the remaining methods make, for a client that cannot
    /// (or failed to) do GSSAPI.
    fallback: Option<Box<Conversation>>,
    /// Without GSSAPI chosen but with `enable-auth = gssapi`: the login a client offering
    /// HTTP authentication switches to.
    upgrade: Option<Box<Conversation>>,
    /// A back end asked the same question again: the last answer was wrong.
    answer_refused: bool,
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
        let find = |f: fn(&AuthMethod) -> bool| {
            chosen
                .as_ref()
                .and_then(|(_, set)| set.iter().find(|m| f(m)).map(|m| (*m).clone()))
        };
        let plain = find(|m| matches!(m, AuthMethod::Plain { .. })).and_then(|m| match m {
            AuthMethod::Plain { passwd, otp } => Some(Plain { passwd, otp }),
            _ => None,
        });
        let pam = match find(|m| matches!(m, AuthMethod::Pam(_))) {
            Some(AuthMethod::Pam(p)) => Some(p),
            _ => None,
        };
        let radius = match find(|m| matches!(m, AuthMethod::Radius(_))) {
            Some(AuthMethod::Radius(r)) => Some(r),
            _ => None,
        };
        let gssapi = match find(|m| matches!(m, AuthMethod::Gssapi(_))) {
            Some(AuthMethod::Gssapi(g)) => Some(g),
            _ => None,
        };
        let oidc = find(|m| matches!(m, AuthMethod::Oidc { .. })).is_some();
        let wants_cert = chosen.as_ref().is_some_and(|(w, _)| *w);
        let cert_identity = match (&cert, wants_cert) {
            (CertStatus::Valid(id), true) => Some(id.clone()),
            _ => None,
        };
        let (fallback, upgrade) =
            gssapi_switches(gssapi.is_some(), wants_cert, alternatives, &cert);
        Self {
            plain,
            pam,
            pam_progress: PamProgress::default(),
            pam_last_prompt: None,
            radius,
            radius_challenge: None,
            gssapi,
            gss_context: None,
            oidc,
            sso_unavailable: false,
            fallback,
            upgrade,
            answer_refused: false,
            pending_secret: None,
            otp_due: None,
            cert: cert_identity,
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
        if self.oidc {
            return self.oidc_post(msg);
        }
        if self.gssapi.is_some() {
            // GSSAPI logins happen in the HTTP headers (on_http_auth), never in forms.
            return AuthStep::Failed {
                reason: "Authentication failed",
            };
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
        if !self.asks_password() {
            // Certificate only: no form, unless the certificate offers several groups and
            // the client chose none (then the choice is asked for, as ocserv does).
            return match self.certificate_group_choice(forms) {
                Some(form) => AuthStep::Form(form),
                None => self.finish(Vec::new()),
            };
        }
        let user = match self.settle_user(msg) {
            Ok(Some(user)) => user,
            Ok(None) => {
                return AuthStep::Form(self.first_form(forms));
            }
            Err(NameRefused) => {
                return AuthStep::Failed {
                    reason: "Authentication failed",
                }
            }
        };
        if let Some(pam) = self.pam.clone() {
            return self.pam_post(&pam, user, msg, forms);
        }
        if let Some(radius) = self.radius.clone() {
            return self.radius_post(&radius, user, msg, forms);
        }
        let Some(plain) = self.plain.clone() else {
            return AuthStep::Failed {
                reason: "Authentication failed",
            };
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

    /// Whether the back end just asked the same question again (a wrong answer, for ban
    /// points); cleared by asking.
    pub fn take_answer_refused(&mut self) -> bool {
        std::mem::take(&mut self.answer_refused)
    }

    /// A password method takes part (else the certificate alone decides).
    fn asks_password(&self) -> bool {
        self.plain.is_some() || self.pam.is_some() || self.radius.is_some()
    }

    /// The user this login is for: the certificate's, else the one the client names (it
    /// may not change once known). `Ok(None)` while nobody is named yet; `Err` for a name
    /// that is refused.
    fn settle_user(&mut self, msg: &ClientAuth) -> Result<Option<String>, NameRefused> {
        if self.username.is_none() {
            // Certificate plus password: the certificate names the user.
            self.username = self.cert.as_ref().and_then(|c| c.user.clone());
        }
        if let Some(user) = msg.username.as_deref().filter(|u| !u.is_empty()) {
            if !valid_name(user) {
                return Err(NameRefused);
            }
            match &self.username {
                None => self.username = Some(user.to_string()),
                Some(known) if known != user => return Err(NameRefused),
                Some(_) => {}
            }
        }
        Ok(self.username.clone())
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
                self.wrong_password(forms)
            }
        }
    }

    /// A refused password: the retry form, or the end after ocserv's three attempts.
    fn wrong_password(&mut self, forms: &FormSettings) -> AuthStep {
        self.attempts += 1;
        if self.attempts >= MAX_PASSWORD_ATTEMPTS {
            AuthStep::Failed {
                reason: "Authentication failed",
            }
        } else {
            AuthStep::Form(self.form(forms, RETRY_MESSAGE, password_input()))
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
        let allowed = match (self.asks_password(), &self.cert) {
            (false, Some(cert)) => cert.groups.clone(),
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

    /// The login's first form: user name and password for a password method, else only
    /// the group choice (a certificate login).
    fn first_form(&self, forms: &FormSettings) -> LoginForm {
        let message = match &self.plain {
            Some(Plain { passwd: None, .. }) => FIRST_OTP_MESSAGE,
            _ => FIRST_MESSAGE,
        };
        let inputs = if self.asks_password() {
            FormInputs::UsernamePassword
        } else {
            FormInputs::None
        };
        self.form(forms, message, inputs)
    }

    /// A back end's prompt (PAM's, a RADIUS challenge's) as a form: a bare "Password:"
    /// gets ocserv's sentence, anything else is shown as written. The second and later
    /// distinct prompts are `secondary_password`, as ocserv names them.
    fn prompt_form(
        &self,
        forms: &FormSettings,
        message: &str,
        echo: bool,
        distinct: u32,
    ) -> LoginForm {
        let trimmed = message.trim();
        let shown = if trimmed.is_empty() || starts_with_ignore_case(trimmed, "password:") {
            PASSWORD_MESSAGE
        } else {
            trimmed
        };
        let (name, label) = if distinct == 0 {
            ("password".to_owned(), "Password:".to_owned())
        } else {
            (
                "secondary_password".to_owned(),
                format!("Password{distinct}:"),
            )
        };
        let inputs = if echo {
            FormInputs::Text { name, label }
        } else {
            FormInputs::Password { name, label }
        };
        self.form(forms, shown, inputs)
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

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
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
mod tests;
#[cfg(test)]
mod tests_gssapi;
#[cfg(test)]
mod tests_oidc;
#[cfg(test)]
mod tests_pam;
#[cfg(test)]
mod tests_radius;
