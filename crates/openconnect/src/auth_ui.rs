//! Filling login forms: from `-F`, `--user`, `--authgroup`, `--passwd-on-stdin`, or by
//! asking (unless `--non-inter`).
//!
//! When stdin is read follows openconnect's main.c: `--passwd-on-stdin` reads the first
//! line at start-up; every later prompt reads the next line of stdin, terminal or not,
//! unless `--non-inter` is given, in which case only a `--passwd-on-stdin` client still
//! reads further lines (and runs out of answers at the end of input). Prompts go to stderr;
//! a secret's echo is turned off on a terminal.

use std::io::{BufRead, IsTerminal, Read, Write};

use nix::sys::termios::{self, LocalFlags, SetArg};
use oc_proto::anyconnect::auth::{AuthForm, FieldKind, FormField, SelectOption};
use tracing::{error, info};

use crate::error::ClientError;
use crate::token::SoftToken;

/// The longest line one read takes from stdin, as openconnect's `fgets`; the rest of a
/// longer line is the next answer.
const MAX_LINE: u64 = 4096;

/// Where answers to prompts come from: one line per call, `None` at the end of input.
pub trait LineInput: Send {
    /// Reads the next line, without its newline; `secret` turns echo off on a terminal.
    fn read_line(&mut self, secret: bool) -> Result<Option<String>, ClientError>;
}

/// The process's standard input, terminal or not.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stdin;

impl LineInput for Stdin {
    fn read_line(&mut self, secret: bool) -> Result<Option<String>, ClientError> {
        let stdin = std::io::stdin();
        let saved = if secret && stdin.is_terminal() {
            termios::tcgetattr(&stdin).ok().inspect(|orig| {
                let mut quiet = orig.clone();
                quiet.local_flags.remove(LocalFlags::ECHO);
                let _ = termios::tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
            })
        } else {
            None
        };
        let read = read_answer(&mut stdin.lock());
        if let Some(orig) = saved {
            let _ = termios::tcsetattr(&stdin, SetArg::TCSANOW, &orig);
        }
        if secret {
            // The user's Enter was not echoed; openconnect ends the prompt's line itself.
            eprintln!();
        }
        read
    }
}

/// One answer from `reader`: up to [`MAX_LINE`] bytes through the newline, the newline
/// removed (a carriage return is kept, as openconnect keeps it); `None` at the end of
/// input. Answers must be UTF-8.
fn read_answer(reader: &mut impl BufRead) -> Result<Option<String>, ClientError> {
    let mut line = Vec::new();
    let read = reader
        .take(MAX_LINE)
        .read_until(b'\n', &mut line)
        .map_err(ClientError::io("reading from standard input"))?;
    if read == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| ClientError::Usage("a line read from standard input is not UTF-8 text".into()))
}

/// Lines given up front (tests, and anything that scripts the answers).
#[derive(Debug, Default, Clone)]
pub struct ScriptedLines(pub std::collections::VecDeque<String>);

impl LineInput for ScriptedLines {
    fn read_line(&mut self, _secret: bool) -> Result<Option<String>, ClientError> {
        Ok(self.0.pop_front())
    }
}

/// Asks the user: whether and when stdin answers, as openconnect's `prompt_for_input`.
pub struct Prompter {
    /// `--non-inter`.
    pub non_interactive: bool,
    /// `--passwd-on-stdin` (openconnect's `allow_stdin_read`): under `--non-inter`, later
    /// prompts still take the next line of stdin.
    pub stdin_answers: bool,
    pub input: Box<dyn LineInput>,
}

impl std::fmt::Debug for Prompter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prompter")
            .field("non_interactive", &self.non_interactive)
            .field("stdin_answers", &self.stdin_answers)
            .finish_non_exhaustive()
    }
}

impl Default for Prompter {
    fn default() -> Self {
        Self::new(false, false)
    }
}

impl Prompter {
    /// Prompts answered from the process's stdin.
    pub fn new(non_interactive: bool, stdin_answers: bool) -> Self {
        Self {
            non_interactive,
            stdin_answers,
            input: Box::new(Stdin),
        }
    }

    /// Prints `label` on stderr and reads the answer. Without `--non-inter` the next line
    /// of stdin answers, and the end of input is an error; with it, only a
    /// `--passwd-on-stdin` client reads a line, and no line means no answer.
    pub fn ask(&mut self, label: &str, secret: bool) -> Result<String, ClientError> {
        let mut stderr = std::io::stderr();
        let _ = write!(stderr, "{label} ");
        let _ = stderr.flush();
        if self.non_interactive && !self.stdin_answers {
            let _ = writeln!(stderr, "***");
            return Err(input_required(
                label,
                "--non-inter forbids asking (--passwd-on-stdin lets later lines of \
                 standard input answer)",
            ));
        }
        match self.input.read_line(secret)? {
            Some(line) => Ok(line),
            None if self.non_interactive => {
                let _ = writeln!(stderr, "***");
                Err(input_required(
                    label,
                    "standard input has no more lines to answer it (--non-inter)",
                ))
            }
            None => Err(ClientError::AuthAborted(format!(
                "standard input closed while asking for {label:?}"
            ))),
        }
    }
}

/// Reads the line `--passwd-on-stdin` or `--cookie-on-stdin` (`option`) takes, at start-up.
/// The end of input is an error, as in openconnect.
pub fn read_stdin_line(option: &str) -> Result<String, ClientError> {
    Stdin.read_line(false)?.ok_or_else(|| {
        ClientError::Usage(format!(
            "standard input is empty: {option} expects a line on it"
        ))
    })
}

fn input_required(label: &str, why: &str) -> ClientError {
    ClientError::AuthAborted(format!(
        "User input required in non-interactive mode: the server asks for {label:?} and {why}"
    ))
}

/// The form's banner, message and error, as openconnect shows them before its fields.
pub fn show_texts(form: &AuthForm) {
    if let Some(b) = &form.banner {
        info!("{b}");
    }
    if let Some(m) = &form.message {
        info!("{m}");
    }
    if let Some(e) = &form.error {
        error!("{e}");
    }
}

/// What the user gave us up front.
#[derive(Debug, Default)]
pub struct FormFiller {
    /// `--no-passwd`: any login form is an error (certificate logins only).
    pub no_passwd: bool,
    pub user: Option<String>,
    /// `--passwd-on-stdin`'s line: used once, for the first password field; then the user
    /// is asked (a retry after a wrong password must not loop).
    pub password: Option<String>,
    pub authgroup: Option<String>,
    /// `-F` entries: (form id, field name, value).
    pub entries: Vec<(String, String, String)>,
    pub prompter: Prompter,
    /// `--token-mode`: fills the password fields its codes belong in.
    pub token: Option<SoftToken>,
}

impl FormFiller {
    /// Answers every field of `form`, in form order. The authentication group is chosen
    /// first, as openconnect asks for it before the other fields.
    pub fn fill(&mut self, form: &AuthForm) -> Result<Vec<(String, String)>, ClientError> {
        if self.no_passwd {
            return Err(ClientError::AuthAborted(
                "Asked for password but '--no-passwd' set".into(),
            ));
        }
        show_texts(form);
        let group = match form.group_field() {
            Some(
                field @ FormField {
                    kind: FieldKind::Select(options),
                    ..
                },
            ) => Some((field.name.clone(), self.choose_group(form, field, options)?)),
            _ => None,
        };
        let mut answers = Vec::with_capacity(form.fields.len());
        for field in &form.fields {
            let value = match &group {
                Some((name, value)) if *name == field.name => value.clone(),
                _ => self.answer(form, field)?,
            };
            answers.push((field.name.clone(), value));
        }
        Ok(answers)
    }

    fn entry(&self, form: &AuthForm, field: &FormField) -> Option<String> {
        self.entries
            .iter()
            .find(|(f, n, _)| *f == form.id && *n == field.name)
            .map(|(_, _, v)| v.clone())
    }

    fn answer(&mut self, form: &AuthForm, field: &FormField) -> Result<String, ClientError> {
        match &field.kind {
            FieldKind::Hidden => Ok(self
                .entry(form, field)
                .unwrap_or_else(|| field.value.clone().unwrap_or_default())),
            FieldKind::Select(options) => {
                let wanted = self.entry(form, field);
                self.choose(field, options, wanted)
            }
            FieldKind::Text => {
                let name = field.name.to_ascii_lowercase();
                if name.starts_with("user") || name.starts_with("uname") {
                    if let Some(u) = &self.user {
                        return Ok(u.clone());
                    }
                }
                match self.entry(form, field) {
                    Some(v) => Ok(v),
                    None => self.prompter.ask(&field.label, false),
                }
            }
            // openconnect: the `--passwd-on-stdin` line first, then `-F`, then a prompt; a
            // field a software token fills takes its code (or a `-F` answer) instead.
            FieldKind::Password => {
                let entry = self.entry(form, field);
                if self.token.as_ref().is_some_and(|t| t.fills(form, field)) {
                    return match entry {
                        Some(v) => Ok(v),
                        None => self.token_code(form, field),
                    };
                }
                match (self.password.take(), entry) {
                    (Some(p), _) | (None, Some(p)) => Ok(p),
                    (None, None) => self.prompter.ask(&field.label, true),
                }
            }
        }
    }

    fn token_code(&mut self, form: &AuthForm, field: &FormField) -> Result<String, ClientError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let Self {
            token,
            entries,
            prompter,
            ..
        } = self;
        let code = match token.as_mut() {
            Some(token) => token.next_code(form, now, &mut |form, name, label| {
                answer_secret(entries, prompter, form, name, label)
            })?,
            None => None,
        };
        match code {
            Some(code) => Ok(code),
            None => self.prompter.ask(&field.label, true),
        }
    }

    /// The group select: `--authgroup` (or `-F`) when it names a choice, else asked.
    fn choose_group(
        &mut self,
        form: &AuthForm,
        field: &FormField,
        options: &[SelectOption],
    ) -> Result<String, ClientError> {
        let wanted = self.authgroup.clone().or_else(|| self.entry(form, field));
        self.choose(field, options, wanted)
    }

    /// A select's value: `wanted` when it names a choice, else asked (a single choice is
    /// taken without asking), again after an answer that names none.
    fn choose(
        &mut self,
        field: &FormField,
        options: &[SelectOption],
        wanted: Option<String>,
    ) -> Result<String, ClientError> {
        if let Some(w) = wanted {
            match match_choice(options, &w) {
                Ok(o) => return Ok(o.value.clone()),
                Err(e) => error!("{e}"),
            }
        }
        let first = options
            .first()
            .ok_or_else(|| ClientError::AuthAborted(format!("{} has no choices", field.label)))?;
        if options.len() == 1 {
            return Ok(first.value.clone());
        }
        let labels: Vec<&str> = options.iter().map(|o| o.label.as_str()).collect();
        let prompt = format!("{} [{}]:", field.label, labels.join("|"));
        loop {
            let answer = self.prompter.ask(&prompt, false)?;
            match match_choice(options, &answer) {
                Ok(o) => return Ok(o.value.clone()),
                Err(_) if answer.is_empty() => {}
                Err(e) => error!("{e}"),
            }
        }
    }
}

/// openconnect's choice matching: a label equal to `answer` (ignoring case), else the one
/// label it begins (ignoring case); beyond openconnect, a choice's exact value.
pub fn match_choice<'a>(
    options: &'a [SelectOption],
    answer: &str,
) -> Result<&'a SelectOption, String> {
    let n = answer.len();
    let begins = |o: &&SelectOption| {
        o.label
            .get(..n)
            .is_some_and(|head| head.eq_ignore_ascii_case(answer))
    };
    if n > 0 {
        if let Some(o) = options
            .iter()
            .find(|o| o.label.eq_ignore_ascii_case(answer))
        {
            return Ok(o);
        }
        let partial: Vec<&SelectOption> = options.iter().filter(begins).collect();
        match partial.as_slice() {
            [one] => return Ok(one),
            [] => {}
            _ => return Err(format!("Auth choice \"{answer}\" matches multiple options")),
        }
    }
    options
        .iter()
        .find(|o| o.value == answer && n > 0)
        .ok_or_else(|| format!("Auth choice \"{answer}\" not available"))
}

/// A secret a software token needs (PIN, token password), as openconnect asks for it: a
/// `-F FORM:FIELD=VALUE` entry for its form, else a prompt (without echo).
pub fn answer_secret(
    entries: &[(String, String, String)],
    prompter: &mut Prompter,
    form: &str,
    field: &str,
    label: &str,
) -> Result<String, ClientError> {
    if let Some((_, _, value)) = entries.iter().find(|(f, n, _)| f == form && n == field) {
        return Ok(value.clone());
    }
    prompter.ask(label, true).map_err(|e| match e {
        ClientError::AuthAborted(why) => ClientError::AuthAborted(format!(
            "{why} (the software token's secret can be given with -F {form}:{field}=VALUE)"
        )),
        other => other,
    })
}

#[cfg(test)]
mod tests;
