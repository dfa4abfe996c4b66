//! `openconnect --autocomplete WORD...`: bash completion as openconnect's `autocomplete()`
//! answers it. Bash's completion function passes the words of the command line (the first,
//! the command, replaced by `--autocomplete`) and `COMP_CWORD`, the index of the word being
//! completed; the answer is one candidate per line, or a class for bash's `compgen` to
//! expand: `FILENAME` (then a `compgen -X` filter or `''`), `EXECUTABLE`, `HOSTNAME` or
//! `USERNAME`, followed by the prefix the candidates keep (`--opt=`, `-s`) when there is
//! one.
//!
//! The options, their short letters, whether they take a value and what kind of value
//! come from the clap definitions ([`Options`]).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use clap::builder::ValueHint;
use clap::CommandFactory;
use thiserror::Error;

use crate::cli::{Options, OS_NAMES};
use crate::protocol::PROTOCOLS;
use crate::token::TokenMode;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CompleteError {
    #[error("--autocomplete needs COMP_CWORD, the index of the word to complete (bash sets it)")]
    NoWordIndex,
    #[error("--autocomplete: COMP_CWORD {0:?} is not the index of one of the words given")]
    BadWordIndex(String),
}

/// What a value of an option completes to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Values {
    /// No completion (free text, numbers, secrets).
    Nothing,
    /// A file, with bash's `compgen -X` filter; `pkcs11:` URIs get no completion when
    /// `pkcs11` is set.
    File {
        filter: Option<&'static str>,
        pkcs11: bool,
    },
    Executable,
    Hostname,
    Username,
    Words(Vec<String>),
    /// `--token-secret`: a file after `@` or `/`, else nothing.
    TokenSecret,
}

/// One option as getopt sees it.
#[derive(Debug, Clone)]
struct OptionSpec {
    long: String,
    short: Option<char>,
    takes_value: bool,
    values: Values,
}

/// Certificates and keys, as upstream filters them.
const CERT_FILES: &str = "!*.@(pem|der|p12|crt)";
/// CA files.
const CA_FILES: &str = "!*.@(pem|der|crt)";
/// `-x`: XML profiles.
const XML_FILES: &str = "!*.xml";

/// The option table, from clap, in definition order.
fn option_table() -> Vec<OptionSpec> {
    Options::command()
        .get_arguments()
        .filter(|a| !a.is_hide_set())
        .flat_map(|arg| {
            let takes_value = arg.get_action().takes_values();
            let values = if takes_value {
                values_of(arg)
            } else {
                Values::Nothing
            };
            let short = arg.get_short();
            arg.get_long_and_visible_aliases()
                .into_iter()
                .flatten()
                .map(move |long| OptionSpec {
                    long: long.to_string(),
                    short,
                    takes_value,
                    values: values.clone(),
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The completion of `arg`'s values: its value hint, its possible values, or what the
/// option's own module lists.
fn values_of(arg: &clap::Arg) -> Values {
    let id = arg.get_id().as_str();
    match arg.get_value_hint() {
        ValueHint::FilePath | ValueHint::AnyPath => {
            let (filter, pkcs11) = match id {
                "certificate" | "sslkey" => (Some(CERT_FILES), true),
                "cafile" => (Some(CA_FILES), false),
                "xmlconfig" => (Some(XML_FILES), false),
                _ => (None, false),
            };
            return Values::File { filter, pkcs11 };
        }
        ValueHint::ExecutablePath | ValueHint::CommandName => return Values::Executable,
        ValueHint::Hostname => return Values::Hostname,
        ValueHint::Username => return Values::Username,
        _ => {}
    }
    let words: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .flat_map(|v| v.get_name_and_aliases().map(str::to_string))
        .collect();
    if !words.is_empty() {
        return Values::Words(words);
    }
    let words = |list: &[&str]| Values::Words(list.iter().map(|w| w.to_string()).collect());
    match id {
        "os" => words(OS_NAMES),
        "token_mode" => words(TokenMode::NAMES),
        "token_secret" => Values::TokenSecret,
        "protocol" => Values::Words(
            PROTOCOLS
                .iter()
                .filter(|p| p.supported && !p.hidden)
                .map(|p| p.name.to_string())
                .collect(),
        ),
        _ => Values::Nothing,
    }
}

/// C's `atoi`: optional blanks and sign, then digits up to the first other character.
fn atoi(text: &[u8]) -> i64 {
    let mut rest = text
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .peekable();
    let negative = match rest.peek() {
        Some(b'-') => {
            rest.next();
            true
        }
        Some(b'+') => {
            rest.next();
            false
        }
        _ => false,
    };
    let value = rest.take_while(|b| b.is_ascii_digit()).fold(0i64, |n, d| {
        n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
    });
    if negative {
        -value
    } else {
        value
    }
}

/// The answer for the words after `--autocomplete` (`words[0]` is bash's word 1) and
/// `COMP_CWORD`.
pub fn autocomplete(
    words: &[OsString],
    comp_cword: Option<&OsStr>,
) -> Result<Vec<u8>, CompleteError> {
    let cword = comp_cword.ok_or(CompleteError::NoWordIndex)?;
    let index = atoi(cword.as_bytes());
    let bad = || CompleteError::BadWordIndex(cword.to_string_lossy().into_owned());
    let index = usize::try_from(index).map_err(|_| bad())?;
    if index == 0 || index > words.len() {
        return Err(bad());
    }
    let words: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
    let mut out = Completion {
        table: option_table(),
        out: Vec::new(),
    };
    out.run(&words, index - 1);
    Ok(out.out)
}

struct Completion {
    table: Vec<OptionSpec>,
    out: Vec<u8>,
}

impl Completion {
    fn line(&mut self, parts: &[&[u8]]) {
        for p in parts {
            self.out.extend_from_slice(p);
        }
        self.out.push(b'\n');
    }

    /// Walks the words as getopt would (non-options skipped, values taken by the options
    /// that want them) until the word being completed.
    fn run(&mut self, words: &[&[u8]], target: usize) {
        let mut i = 0;
        while let Some(&word) = words.get(i) {
            if i == target {
                return self.complete_word(word);
            }
            i += 1;
            if word == b"--" {
                break;
            }
            if word.first() != Some(&b'-') || word == b"-" {
                continue;
            }
            // The option (or cluster) takes the next word as its value?
            let wants_next = match word.strip_prefix(b"--") {
                Some(long) => match self.find_long(long.split(|&b| b == b'=').next()) {
                    Some(spec) => spec.takes_value && !long.contains(&b'='),
                    None => false,
                },
                None => self.cluster_wants_next(&word[1..]),
            };
            if wants_next && i < words.len() {
                if i == target {
                    let spec = self.option_of(word);
                    return self.complete_value(spec, word_at(words, i), 0);
                }
                i += 1;
            }
        }
        self.line(&[b"HOSTNAME"]);
    }

    /// getopt_long's lookup: an exact name, else the one option the text begins.
    fn find_long(&self, name: Option<&[u8]>) -> Option<&OptionSpec> {
        let name = name?;
        if let Some(spec) = self.table.iter().find(|s| s.long.as_bytes() == name) {
            return Some(spec);
        }
        let mut matches = self
            .table
            .iter()
            .filter(|s| s.long.as_bytes().starts_with(name));
        match (matches.next(), matches.next()) {
            (Some(one), None) => Some(one),
            _ => None,
        }
    }

    fn find_short(&self, c: u8) -> Option<&OptionSpec> {
        self.table
            .iter()
            .find(|s| s.short.is_some_and(|s| u32::from(s) == u32::from(c)))
    }

    /// Whether a cluster of short options ends with one that takes the next word.
    fn cluster_wants_next(&self, letters: &[u8]) -> bool {
        for (n, &c) in letters.iter().enumerate() {
            if let Some(spec) = self.find_short(c) {
                if spec.takes_value {
                    return n + 1 == letters.len();
                }
            }
        }
        false
    }

    /// The option whose value the word after `word` is.
    fn option_of(&self, word: &[u8]) -> Values {
        let spec = match word.strip_prefix(b"--") {
            Some(long) => self.find_long(Some(long)),
            None => word[1..]
                .iter()
                .filter_map(|&c| self.find_short(c))
                .find(|s| s.takes_value),
        };
        spec.map_or(Values::Nothing, |s| s.values.clone())
    }

    /// The word being completed, seen on its own.
    fn complete_word(&mut self, word: &[u8]) {
        if let Some(long) = word.strip_prefix(b"--") {
            match long.iter().position(|&b| b == b'=') {
                // --option=VALUE: the first option whose name begins with what is typed.
                Some(eq) => {
                    let typed = &long[..eq];
                    let spec = self
                        .table
                        .iter()
                        .find(|s| s.long.as_bytes().starts_with(typed))
                        .filter(|s| s.takes_value)
                        .map(|s| s.values.clone());
                    if let Some(values) = spec {
                        self.complete_value(values, word, eq + 3);
                    }
                }
                None => self.option_names(long),
            }
        } else if let Some(rest) = word.strip_prefix(b"-") {
            match rest.split_first() {
                None => self.option_names(b""),
                Some((&c, value)) => {
                    let Some(spec) = self.find_short(c).cloned() else {
                        return;
                    };
                    if value.is_empty() {
                        self.line(&[b"--", spec.long.as_bytes()]);
                    } else if spec.takes_value {
                        self.complete_value(spec.values, word, 2);
                    }
                }
            }
        } else {
            self.line(&[b"HOSTNAME"]);
        }
    }

    fn option_names(&mut self, typed: &[u8]) {
        let names: Vec<String> = self
            .table
            .iter()
            .filter(|s| s.long.as_bytes().starts_with(typed))
            .map(|s| s.long.clone())
            .collect();
        for name in names {
            self.line(&[b"--", name.as_bytes()]);
        }
    }

    /// Completes the value in `word` after its first `prefix` bytes (`--opt=`, `-s`).
    fn complete_value(&mut self, values: Values, word: &[u8], prefix: usize) {
        let prefix = prefix.min(word.len());
        let (head, typed) = word.split_at(prefix);
        match values {
            Values::Nothing => {}
            Values::File { pkcs11: true, .. } if typed.starts_with(b"pkcs11:") => {}
            Values::File { filter, .. } => self.special(b"FILENAME", filter, head),
            Values::Executable => self.special(b"EXECUTABLE", None, head),
            Values::Hostname => self.special(b"HOSTNAME", None, head),
            Values::Username => self.special(b"USERNAME", None, head),
            Values::Words(words) => {
                for w in words.iter().filter(|w| w.as_bytes().starts_with(typed)) {
                    self.line(&[head, w.as_bytes()]);
                }
            }
            Values::TokenSecret => match typed.first() {
                Some(b'@') => self.special(b"FILENAME", None, word_prefix(word, prefix + 1)),
                None | Some(b'/') => self.special(b"FILENAME", None, head),
                Some(_) => {}
            },
        }
    }

    /// A class for bash's `compgen`, its filter (or `''`) and the prefix kept, if any.
    fn special(&mut self, class: &[u8], filter: Option<&str>, head: &[u8]) {
        self.line(&[class]);
        self.line(&[filter.map_or(b"''".as_slice(), str::as_bytes)]);
        if !head.is_empty() {
            self.line(&[head]);
        }
    }
}

fn word_at<'a>(words: &[&'a [u8]], i: usize) -> &'a [u8] {
    words.get(i).copied().unwrap_or_default()
}

fn word_prefix(word: &[u8], len: usize) -> &[u8] {
    &word[..len.min(word.len())]
}

#[cfg(test)]
mod tests;
