//! Filling login forms: from `-F`, `--user`, `--authgroup`, `--passwd-on-stdin`, or by
//! asking on the terminal (unless `--non-inter`).

use std::io::{BufRead, IsTerminal, Write};

use nix::sys::termios::{self, LocalFlags, SetArg};
use oc_proto::anyconnect::auth::{AuthForm, FieldKind, FormField};
use tracing::{error, info};

use crate::error::ClientError;
use crate::token::SoftToken;

/// What the user gave us up front.
#[derive(Debug, Default)]
pub struct FormFiller {
    pub user: Option<String>,
    /// Used once, then the user is asked (a retry after a wrong password must not loop).
    pub password: Option<String>,
    pub authgroup: Option<String>,
    /// `-F` entries: (form id, field name, value).
    pub entries: Vec<(String, String, String)>,
    pub non_interactive: bool,
    /// `--token-mode`: fills the password fields its codes belong in.
    pub token: Option<SoftToken>,
}

impl FormFiller {
    /// Answers every field of `form`, in form order.
    pub fn fill(&mut self, form: &AuthForm) -> Result<Vec<(String, String)>, ClientError> {
        if let Some(b) = &form.banner {
            info!("{b}");
        }
        if let Some(m) = &form.message {
            info!("{m}");
        }
        if let Some(e) = &form.error {
            error!("{e}");
        }
        form.fields
            .iter()
            .map(|field| Ok((field.name.clone(), self.answer(form, field)?)))
            .collect()
    }

    fn answer(&mut self, form: &AuthForm, field: &FormField) -> Result<String, ClientError> {
        if let Some((_, _, v)) = self
            .entries
            .iter()
            .find(|(f, n, _)| *f == form.id && *n == field.name)
        {
            return Ok(v.clone());
        }
        match &field.kind {
            FieldKind::Hidden => Ok(field.value.clone().unwrap_or_default()),
            FieldKind::Select(options) => self.choose(form, field, options),
            FieldKind::Text => {
                if field.name == "username" {
                    if let Some(u) = &self.user {
                        return Ok(u.clone());
                    }
                }
                self.ask(&field.label, false)
            }
            FieldKind::Password if self.token.as_ref().is_some_and(|t| t.fills(form, field)) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let Self {
                    token,
                    entries,
                    non_interactive,
                    ..
                } = self;
                let code = match token.as_mut() {
                    Some(token) => token.next_code(form, now, &mut |form, name, label| {
                        answer_secret(entries, *non_interactive, form, name, label)
                    })?,
                    None => None,
                };
                match code {
                    Some(code) => Ok(code),
                    None => self.ask(&field.label, true),
                }
            }
            FieldKind::Password => match self.password.take() {
                Some(p) => Ok(p),
                None => self.ask(&field.label, true),
            },
        }
    }

    fn choose(
        &mut self,
        form: &AuthForm,
        field: &FormField,
        options: &[oc_proto::anyconnect::auth::SelectOption],
    ) -> Result<String, ClientError> {
        let wanted = if form.group_field().is_some_and(|g| g.name == field.name) {
            self.authgroup.clone()
        } else {
            None
        };
        if let Some(w) = wanted {
            if let Some(o) = options.iter().find(|o| o.value == w || o.label == w) {
                return Ok(o.value.clone());
            }
            return Err(ClientError::AuthAborted(format!(
                "group {w:?} is not offered by the server (choices: {})",
                options
                    .iter()
                    .map(|o| o.label.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let first = options
            .first()
            .ok_or_else(|| ClientError::AuthAborted(format!("{} has no choices", field.label)))?;
        if self.non_interactive || options.len() == 1 {
            return Ok(first.value.clone());
        }
        let labels: Vec<&str> = options.iter().map(|o| o.label.as_str()).collect();
        let answer = self.ask(&format!("{} [{}]", field.label, labels.join("|")), false)?;
        options
            .iter()
            .find(|o| o.label == answer || o.value == answer)
            .map(|o| o.value.clone())
            .ok_or_else(|| {
                ClientError::AuthAborted(format!("{answer:?} is not one of the choices"))
            })
    }

    fn ask(&self, label: &str, secret: bool) -> Result<String, ClientError> {
        if self.non_interactive {
            return Err(ClientError::AuthAborted(format!(
                "the server asks for {label:?} but --non-inter forbids asking"
            )));
        }
        prompt(label, secret)
    }
}

/// A secret a software token needs (PIN, token password), as openconnect asks for it: a
/// `-F FORM:FIELD=VALUE` entry for its form, else the terminal (without echo).
pub fn answer_secret(
    entries: &[(String, String, String)],
    non_interactive: bool,
    form: &str,
    field: &str,
    label: &str,
) -> Result<String, ClientError> {
    if let Some((_, _, value)) = entries.iter().find(|(f, n, _)| f == form && n == field) {
        return Ok(value.clone());
    }
    if non_interactive {
        return Err(ClientError::AuthAborted(format!(
            "the software token needs {label:?} but --non-inter forbids asking \
             (give it with -F {form}:{field}=VALUE)"
        )));
    }
    prompt(label, true)
}

/// Asks on stderr and reads a line from stdin, without echo for secrets on a terminal.
fn prompt(label: &str, secret: bool) -> Result<String, ClientError> {
    let stdin = std::io::stdin();
    let mut stderr = std::io::stderr();
    let _ = write!(stderr, "{label} ");
    let _ = stderr.flush();
    let saved = if secret && stdin.is_terminal() {
        termios::tcgetattr(&stdin).ok().inspect(|orig| {
            let mut quiet = orig.clone();
            quiet.local_flags.remove(LocalFlags::ECHO);
            let _ = termios::tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
        })
    } else {
        None
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(orig) = saved {
        let _ = termios::tcsetattr(&stdin, SetArg::TCSANOW, &orig);
        let _ = writeln!(stderr);
    }
    match read {
        Ok(0) => Err(ClientError::AuthAborted(format!(
            "standard input closed while asking for {label:?}"
        ))),
        Ok(_) => Ok(line.trim_end_matches(['\n', '\r']).to_string()),
        Err(e) => Err(ClientError::Io {
            what: "reading from the terminal",
            source: e,
        }),
    }
}

/// Reads one line from stdin (for `--passwd-on-stdin` and `--cookie-on-stdin`).
pub fn read_stdin_line(what: &'static str) -> Result<String, ClientError> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(ClientError::io(what))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oc_proto::anyconnect::auth::parse_auth_document;

    fn form(xml: &str) -> AuthForm {
        parse_auth_document(xml).unwrap().form
    }

    const LOGIN: &str = r#"<auth id="main"><form>
        <input type="text" name="username" label="Username:"/>
        <input type="password" name="password" label="Password:"/>
        <input type="hidden" name="tok" value="t1"/>
        <select name="group_list" label="Group:"><option value="a">A</option><option value="b">B</option></select>
        </form></auth>"#;

    #[test]
    fn fills_from_options_and_password_once() {
        let mut f = FormFiller {
            user: Some("alice".into()),
            password: Some("pw".into()),
            authgroup: Some("B".into()),
            non_interactive: true,
            ..FormFiller::default()
        };
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
        // The retry form cannot reuse the password.
        let err = f.fill(&form(LOGIN)).unwrap_err();
        assert!(err.to_string().contains("--non-inter"), "{err}");
    }

    #[test]
    fn form_entries_win_and_unknown_group_fails() {
        let mut f = FormFiller {
            entries: vec![
                ("main".into(), "username".into(), "bob".into()),
                ("main".into(), "password".into(), "x".into()),
            ],
            non_interactive: true,
            ..FormFiller::default()
        };
        let answers = f.fill(&form(LOGIN)).unwrap();
        assert_eq!(answers[0].1, "bob");
        assert_eq!(answers[3].1, "a", "first group by default");
        f.authgroup = Some("zzz".into());
        assert!(f
            .fill(&form(LOGIN))
            .unwrap_err()
            .to_string()
            .contains("zzz"));
    }
}
