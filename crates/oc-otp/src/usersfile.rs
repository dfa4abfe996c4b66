//! liboath's users file, as ocserv's `enable-auth = "plain[passwd=FILE,otp=FILE]"` uses it.
//!
//! ocserv calls `oath_authenticate_usersfile(file, user, code, 20, NULL, &last)`: a code is
//! checked against the user's line(s) and, when it is good, the line is rewritten with the
//! new moving factor, the code and a timestamp. This module is the sans-IO part of that:
//! [`UsersFile::parse`] the text, [`UsersFile::verify`] a code at a given time, and
//! [`UsersFile::with_updated`] the whole new file text. Reading, locking and replacing the
//! file belong to the caller (see "What the caller does" below).
//!
//! # The format (as liboath 2.6 reads it)
//!
//! One token per line, fields separated by runs of space, tab or CR:
//! `TYPE USER PIN SECRET [COUNTER [LASTOTP [TIMESTAMP]]]`.
//! - `TYPE` is exactly one of `HOTP`, `HOTP/E`, `HOTP/E/6`, `HOTP/E/7`, `HOTP/E/8` (event
//!   based) or `HOTP/T30`, `HOTP/T60`, each optionally followed by `/6`, `/7` or `/8` (time
//!   based, 30 or 60 second steps). Anything else, `#` comments included, is a line liboath
//!   skips; we keep such lines verbatim.
//! - `PIN` is only looked at when a password is checked too (ocserv passes none): `-` means
//!   an empty password, `+` a password verified elsewhere, anything else the password itself.
//! - `SECRET` is hex, at most 32 bytes, HMAC-SHA1 only (liboath's users file has no way to
//!   name another hash).
//! - `COUNTER` is read like C `strtoull` base 10 (`+5` is 5, `-1` wraps, overflow saturates).
//! - `TIMESTAMP` must match `strptime("%Y-%m-%dT%H:%M:%SL")`.
//! - More fields after the timestamp are ignored (and dropped when the line is rewritten).
//!
//! # Verification, exactly as liboath 2.6.7 does it
//!
//! Lines are tried in order; those with another user name, an unknown type, or fewer than
//! four fields are passed over. For each candidate line:
//! 1. With a password: a PIN mismatch passes over the line ("bad password" if no later
//!    line verifies).
//! 2. A bad secret, counter or timestamp ends the whole check with an error, even if a later
//!    line would verify ([`Verdict::MalformedLine`]).
//! 3. A code equal to the line's LASTOTP is a replay (for TOTP too), again ending the check.
//! 4. The code's own length (6, 7 or 8) sets the digit count: the TYPE's `/d` is not used
//!    for checking, so an 8-digit code works on a 6-digit line. Other lengths end the check
//!    ([`Rejection::BadCodeLength`]). [`Policy::strict_digits`] turns on the TYPE's count.
//! 5. HOTP: counters `COUNTER ..= COUNTER + window` are tried; the counter written back is
//!    the one the code matched (not the next one: the LASTOTP check stops a second use).
//! 6. TOTP: steps `now, now+1, now-1, ..., now+w, now-w` are tried. If LASTOTP is set and
//!    is found in the same window at a position not older than the new code's, the new code
//!    is a replay. The COUNTER written back is `COUNTER + |drift|` (liboath's arithmetic;
//!    nothing reads it for TOTP).
//! 7. A code that matches nothing passes over the line; if no line verifies, the result is
//!    a wrong code (or bad password, see 1), or unknown user when no line was tried.
//!
//! The line is rewritten as `TYPE\tUSER\tPIN\tSECRET\tCOUNTER\tCODE\tTIMESTAMP`, the
//! timestamp being local time as `2006-09-23T20:53:13L` (the `L` says "local").
//!
//! Where we differ on purpose:
//! - liboath rewrites the N-th line of the user, counting lines it passed over without
//!   trying (a line missing its secret); with such a line before the good one it rewrites
//!   the wrong line and the good one never records its use. We rewrite the line that
//!   verified.
//! - A CRLF line keeps its CRLF when rewritten (liboath writes LF).
//! - Windows are capped at [`MAX_WINDOW`].
//!
//! # What the caller does
//!
//! Take an exclusive lock, read the file, parse, verify, write [`UsersFile::with_updated`]
//! to a temporary file in the same directory with mode 0600 and the old file's owner, fsync,
//! rename it over the file, then unlock. liboath locks `FILE.lock` with `fcntl(F_SETLKW)`
//! and writes `FILE.new`; using the same names keeps other liboath users (pam_oath) out
//! while we write. Unlike liboath, read and verify under the lock: liboath verifies before
//! locking, so two simultaneous logins can both use one code.

use std::fmt;

use crate::calendar::civil_from_days;
use crate::oath::{codes_equal, hotp, Algorithm};

/// The largest secret liboath's users file holds, in bytes.
pub const MAX_SECRET_BYTES: usize = 32;

/// Windows larger than this are treated as this (each step costs an HMAC, twice for TOTP).
pub const MAX_WINDOW: u64 = 1000;

/// Characters that separate fields (liboath's `strtok` set; LF ends the line anyway).
const DELIMITERS: [char; 4] = [' ', '\t', '\r', '\n'];

/// A problem with a liboath users file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsersFileError {
    /// Line `line` (1-based) is not a valid users-file line.
    #[error("line {line}: {problem}")]
    Malformed { line: usize, problem: LineProblem },
    /// [`UsersFile::with_updated`] got an [`Acceptance`] from another file.
    #[error("line {line}: the accepted entry is not in this file")]
    StaleAcceptance { line: usize },
}

/// What is wrong with one line. Never contains the secret, the PIN or field values that
/// could be parts of a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineProblem {
    /// The first field is not a token type liboath knows (the line is skipped by liboath).
    #[error("unknown token type {}", .0.as_deref().unwrap_or("(first field is not HOTP, HOTP/E[/d] or HOTP/T30|T60[/d])"))]
    UnknownType(Option<String>),
    #[error("no user name after the token type")]
    MissingUser,
    #[error("no PIN field (use - for none)")]
    MissingPin,
    #[error("no secret field")]
    MissingSecret,
    /// `position` counts characters of the secret field from 1.
    #[error("bad hex in secret at position {position}")]
    BadHex { position: usize },
    #[error("secret has an odd number of hex digits")]
    OddHex,
    #[error("secret is {bytes} bytes, liboath allows at most {MAX_SECRET_BYTES}")]
    SecretTooLong { bytes: usize },
    #[error("counter (field 5) is not a decimal number")]
    BadCounter,
    #[error("timestamp (field 7) is not like 2006-09-23T20:53:13L")]
    BadTimestamp,
    #[error("{count} unexpected field(s) after the timestamp")]
    ExtraFields { count: usize },
}

impl LineProblem {
    fn unknown_type(field: &str) -> Self {
        // Echo the field only when it plainly is a (mistyped) type, never a possible secret.
        let upper = field.to_ascii_uppercase();
        let looks_like_type = field.len() <= 16
            && (upper.starts_with("HOTP") || upper.starts_with("TOTP"))
            && field.chars().all(|c| c.is_ascii_graphic());
        LineProblem::UnknownType(looks_like_type.then(|| field.to_string()))
    }

    /// Lines liboath passes over rather than failing on.
    fn is_incomplete(&self) -> bool {
        matches!(self, LineProblem::MissingPin | LineProblem::MissingSecret)
    }

    /// liboath's error code name and `oath_strerror` text for a line with this problem.
    fn liboath_error(&self) -> (&'static str, &'static str) {
        match self {
            LineProblem::BadHex { .. } | LineProblem::OddHex => {
                ("OATH_INVALID_HEX", "Hex string is invalid")
            }
            LineProblem::SecretTooLong { .. } => {
                ("OATH_TOO_SMALL_BUFFER", "The output buffer is too small")
            }
            LineProblem::BadCounter => ("OATH_INVALID_COUNTER", "The counter value is corrupt"),
            LineProblem::BadTimestamp => ("OATH_INVALID_TIMESTAMP", "The timestamp is corrupt"),
            LineProblem::UnknownType(_)
            | LineProblem::MissingUser
            | LineProblem::MissingPin
            | LineProblem::MissingSecret
            | LineProblem::ExtraFields { .. } => {
                ("OATH_UNKNOWN_USER", "Cannot find information about user")
            }
        }
    }
}

/// Event (counter) or time based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// `HOTP`, `HOTP/E[/d]`.
    Event,
    /// `HOTP/T30[/d]`, `HOTP/T60[/d]`: TOTP with this step in seconds.
    Time { step: u64 },
}

/// A users-file token type: kind and digit count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenType {
    pub kind: TokenKind,
    /// 6, 7 or 8. Only checked against codes with [`Policy::strict_digits`].
    pub digits: u32,
}

impl TokenType {
    /// The types liboath 2.6 accepts, spelled exactly (case matters).
    pub fn parse(field: &str) -> Option<Self> {
        let (kind, digits) = match field.strip_prefix("HOTP") {
            Some("" | "/E" | "/E/6") => (TokenKind::Event, 6),
            Some("/E/7") => (TokenKind::Event, 7),
            Some("/E/8") => (TokenKind::Event, 8),
            Some(rest) => {
                let (step, rest) = if let Some(r) = rest.strip_prefix("/T30") {
                    (30, r)
                } else if let Some(r) = rest.strip_prefix("/T60") {
                    (60, r)
                } else {
                    return None;
                };
                let digits = match rest {
                    "" | "/6" => 6,
                    "/7" => 7,
                    "/8" => 8,
                    _ => return None,
                };
                (TokenKind::Time { step }, digits)
            }
            None => return None,
        };
        Some(TokenType { kind, digits })
    }
}

/// How codes are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// HOTP look-ahead: counters `stored ..= stored + hotp_window` are tried.
    pub hotp_window: u64,
    /// TOTP drift, in steps, each way: `now - w ..= now + w`.
    pub totp_window: u64,
    /// Require the code to have the TYPE's digit count (liboath uses the code's length).
    pub strict_digits: bool,
    /// Added to the time for the written timestamp. liboath writes local time; pass the
    /// local UTC offset for `now` to match it exactly, or 0 for UTC (liboath reads either).
    pub utc_offset_seconds: i32,
}

impl Policy {
    /// What ocserv asks of liboath: one window of 20 for both kinds (for TOTP that is
    /// +/- 10 minutes with 30-second steps), digits from the code, UTC timestamps.
    pub const OCSERV: Policy = Policy {
        hotp_window: 20,
        totp_window: 20,
        strict_digits: false,
        utc_offset_seconds: 0,
    };
}

impl Default for Policy {
    fn default() -> Self {
        Policy::OCSERV
    }
}

/// Why a code was refused without a file problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No line of the user accepted the code (`OATH_INVALID_OTP`).
    WrongCode,
    /// Password checking was asked for and no PIN matched (`OATH_BAD_PASSWORD`).
    WrongPassword,
    /// The code is not 6 to 8 characters long (`OATH_INVALID_DIGITS`).
    BadCodeLength,
    /// The time gives a year outside 1000..=9999, which the timestamp cannot hold
    /// (`OATH_TIME_ERROR`).
    ClockOutOfRange,
}

/// A good code: where it matched and the rewritten line.
#[derive(Clone, PartialEq, Eq)]
pub struct Acceptance {
    /// Index of the rewritten line (0-based; the error messages' line numbers are this + 1).
    pub line_index: usize,
    /// The HOTP counter, or the TOTP time step, the code was made for.
    pub counter: u64,
    /// HOTP: how far ahead of the stored counter (0 ..= window). TOTP: signed steps from now.
    pub drift: i64,
    /// The value written to the COUNTER field.
    pub moving_factor: u64,
    user: String,
    /// The new line without its line ending. Contains the secret.
    new_line: String,
}

impl Acceptance {
    /// The rewritten line, without line ending. It holds the secret: do not log it.
    pub fn new_line(&self) -> &str {
        &self.new_line
    }

    /// The user the line belongs to.
    pub fn user(&self) -> &str {
        &self.user
    }
}

impl fmt::Debug for Acceptance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acceptance")
            .field("line_index", &self.line_index)
            .field("counter", &self.counter)
            .field("drift", &self.drift)
            .field("moving_factor", &self.moving_factor)
            .field("user", &self.user)
            .field("new_line", &"<redacted>")
            .finish()
    }
}

/// The outcome of [`UsersFile::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The code is good; write [`UsersFile::with_updated`] back.
    Accepted(Acceptance),
    /// The code was used already, or is older than the last used one (`OATH_REPLAYED_OTP`).
    Replayed {
        line_index: usize,
        /// The line's TIMESTAMP field, as written.
        last_used: Option<String>,
    },
    Rejected(Rejection),
    /// No usable line for this user (`OATH_UNKNOWN_USER`).
    UnknownUser,
    /// The user's line is broken; liboath fails the login rather than skipping it.
    MalformedLine(UsersFileError),
}

impl Verdict {
    pub fn is_accepted(&self) -> bool {
        matches!(self, Verdict::Accepted(_))
    }

    /// liboath's error code name for this outcome (`OATH_OK`, `OATH_REPLAYED_OTP`, ...).
    pub fn liboath_name(&self) -> &'static str {
        self.liboath_error().0
    }

    /// liboath's `oath_strerror` text, which ocserv logs ("OTP auth failed for 'u': ...").
    pub fn liboath_message(&self) -> &'static str {
        self.liboath_error().1
    }

    fn liboath_error(&self) -> (&'static str, &'static str) {
        match self {
            Verdict::Accepted(_) => ("OATH_OK", "Successful return"),
            Verdict::Replayed { .. } => ("OATH_REPLAYED_OTP", "The OTP has been replayed"),
            Verdict::Rejected(Rejection::WrongCode) => ("OATH_INVALID_OTP", "The OTP is not valid"),
            Verdict::Rejected(Rejection::WrongPassword) => {
                ("OATH_BAD_PASSWORD", "The password does not match")
            }
            Verdict::Rejected(Rejection::BadCodeLength) => {
                ("OATH_INVALID_DIGITS", "Unsupported number of OTP digits")
            }
            Verdict::Rejected(Rejection::ClockOutOfRange) => {
                ("OATH_TIME_ERROR", "System error when getting time")
            }
            Verdict::UnknownUser => ("OATH_UNKNOWN_USER", "Cannot find information about user"),
            Verdict::MalformedLine(UsersFileError::Malformed { problem, .. }) => {
                problem.liboath_error()
            }
            Verdict::MalformedLine(UsersFileError::StaleAcceptance { .. }) => {
                ("OATH_UNKNOWN_USER", "Cannot find information about user")
            }
        }
    }
}

/// A public view of one token line, without its secret or PIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryInfo<'a> {
    /// 0-based line index.
    pub line_index: usize,
    pub token: TokenType,
    pub user: &'a str,
    /// The COUNTER field (0 when absent), if the line is well formed.
    pub counter: Option<u64>,
    /// The LASTOTP field.
    pub last_otp: Option<&'a str>,
    /// The TIMESTAMP field as written.
    pub last_used: Option<&'a str>,
    /// Why the line cannot be used, if it cannot.
    pub problem: Option<&'a LineProblem>,
}

/// The secret bytes and the field as written; Debug never shows either.
#[derive(Clone, PartialEq, Eq)]
struct Secret {
    key: Vec<u8>,
    text: String,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes redacted>)", self.key.len())
    }
}

/// The PIN field; Debug never shows it.
#[derive(Clone, PartialEq, Eq)]
struct Pin(String);

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

/// Fields 4 to 7 of a well-formed line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Body {
    secret: Secret,
    counter: u64,
    last_otp: Option<String>,
    last_used: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// The TYPE field as written.
    type_field: String,
    token: TokenType,
    user: String,
    pin: Option<Pin>,
    body: Result<Body, LineProblem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LineKind {
    Blank,
    Comment,
    /// A line liboath skips: unknown type or no user name.
    Other,
    Entry(Box<Entry>),
}

#[derive(Clone, PartialEq, Eq)]
struct Line {
    /// The line as read, with its LF (if any). May contain the secret.
    raw: String,
    kind: LineKind,
}

impl fmt::Debug for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

/// A parsed users file. Keeps every line as read, so a rewrite changes only the used line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersFile {
    lines: Vec<Line>,
    problems: Vec<UsersFileError>,
}

impl UsersFile {
    /// Parses strictly: any line that is not blank, a `#` comment or a complete, well-formed
    /// token line is an error (the first one is returned). Suits a configuration check.
    pub fn parse(text: &str) -> Result<UsersFile, UsersFileError> {
        let file = UsersFile::parse_lenient(text);
        match file.problems.first() {
            Some(problem) => Err(problem.clone()),
            None => Ok(file),
        }
    }

    /// Parses as liboath reads: never fails. Lines liboath would skip are kept and skipped;
    /// a broken line of a user makes [`UsersFile::verify`] for that user fail, as in
    /// liboath. Every problem found is listed in [`UsersFile::problems`] for logging.
    pub fn parse_lenient(text: &str) -> UsersFile {
        let mut lines = Vec::new();
        let mut problems = Vec::new();
        for (index, raw) in text.split_inclusive('\n').enumerate() {
            let (kind, problem) = classify(raw);
            if let Some(problem) = problem {
                problems.push(UsersFileError::Malformed {
                    line: index + 1,
                    problem,
                });
            }
            lines.push(Line {
                raw: raw.to_string(),
                kind,
            });
        }
        UsersFile { lines, problems }
    }

    /// The problems [`UsersFile::parse_lenient`] found, in line order.
    pub fn problems(&self) -> &[UsersFileError] {
        &self.problems
    }

    /// Number of lines, comments and blank lines included.
    pub fn line_count(&self) -> usize {
        self.lines.len()
    }

    /// Every token line (known TYPE and a user name), in file order.
    pub fn entries(&self) -> impl Iterator<Item = EntryInfo<'_>> + '_ {
        self.lines
            .iter()
            .enumerate()
            .filter_map(|(line_index, line)| match &line.kind {
                LineKind::Entry(entry) => {
                    let body = entry.body.as_ref().ok();
                    Some(EntryInfo {
                        line_index,
                        token: entry.token,
                        user: &entry.user,
                        counter: body.map(|b| b.counter),
                        last_otp: body.and_then(|b| b.last_otp.as_deref()),
                        last_used: body.and_then(|b| b.last_used.as_deref()),
                        problem: entry.body.as_ref().err(),
                    })
                }
                _ => None,
            })
    }

    /// The user names with a token line, each once, in order of first appearance.
    pub fn users(&self) -> Vec<&str> {
        let mut users: Vec<&str> = Vec::new();
        for entry in self.entries() {
            if !users.contains(&entry.user) {
                users.push(entry.user);
            }
        }
        users
    }

    /// Whether `user` has a line liboath would try (known TYPE, PIN and secret fields, even
    /// if malformed). Without one, OTP authentication of the user fails (unknown user).
    pub fn has_user(&self, user: &str) -> bool {
        self.entries()
            .any(|e| e.user == user && !matches!(e.problem, Some(p) if p.is_incomplete()))
    }

    /// Checks `code` for `user` at `now_unix` without a password, as ocserv does.
    pub fn verify(&self, user: &str, code: &str, now_unix: u64, policy: &Policy) -> Verdict {
        self.verify_with_password(user, code, None, now_unix, policy)
    }

    /// Checks `code` and, when `password` is given, the PIN field too (liboath's `passwd`).
    pub fn verify_with_password(
        &self,
        user: &str,
        code: &str,
        password: Option<&str>,
        now_unix: u64,
        policy: &Policy,
    ) -> Verdict {
        let mut passed_over = 0usize;
        let mut bad_password = false;
        for (line_index, line) in self.lines.iter().enumerate() {
            let LineKind::Entry(entry) = &line.kind else {
                continue;
            };
            if entry.user != user {
                continue;
            }
            if let Some(password) = password {
                let Some(Pin(pin)) = &entry.pin else {
                    continue;
                };
                let matches = match pin.as_str() {
                    "-" => password.is_empty(),
                    "+" => true,
                    pin => codes_equal(pin, password),
                };
                if !matches {
                    bad_password = true;
                    passed_over += 1;
                    continue;
                }
                bad_password = false;
            }
            let body = match &entry.body {
                Ok(body) => body,
                Err(problem) if problem.is_incomplete() => continue,
                Err(problem) => {
                    return Verdict::MalformedLine(UsersFileError::Malformed {
                        line: line_index + 1,
                        problem: problem.clone(),
                    })
                }
            };
            if body.last_otp.as_deref() == Some(code) {
                return Verdict::Replayed {
                    line_index,
                    last_used: body.last_used.clone(),
                };
            }
            let Some(digits) = code_digits(code) else {
                return Verdict::Rejected(Rejection::BadCodeLength);
            };
            if policy.strict_digits && digits != entry.token.digits {
                passed_over += 1;
                continue;
            }
            let key = &body.secret.key;
            let (counter, drift, moving_factor) = match entry.token.kind {
                TokenKind::Event => {
                    let window = policy.hotp_window.min(MAX_WINDOW);
                    let Some(ahead) = (0..=window).find(|&ahead| {
                        let counter = body.counter.wrapping_add(ahead);
                        codes_equal(&hotp(Algorithm::Sha1, key, counter, digits), code)
                    }) else {
                        passed_over += 1;
                        continue;
                    };
                    let counter = body.counter.wrapping_add(ahead);
                    (counter, signed(ahead), counter)
                }
                TokenKind::Time { step } => {
                    let window = policy.totp_window.min(MAX_WINDOW);
                    let now_step = now_unix / step;
                    let Some(drift) = totp_position(key, now_step, window, code) else {
                        passed_over += 1;
                        continue;
                    };
                    if let Some(previous) = &body.last_otp {
                        if totp_position(key, now_step, window, previous)
                            .is_some_and(|previous| previous >= drift)
                        {
                            return Verdict::Replayed {
                                line_index,
                                last_used: body.last_used.clone(),
                            };
                        }
                    }
                    let counter = now_step.wrapping_add_signed(drift);
                    let moving_factor = body.counter.wrapping_add(drift.unsigned_abs());
                    (counter, drift, moving_factor)
                }
            };
            let Some(stamp) = format_timestamp(now_unix, policy.utc_offset_seconds) else {
                return Verdict::Rejected(Rejection::ClockOutOfRange);
            };
            let pin = entry.pin.as_ref().map_or("-", |p| p.0.as_str());
            let new_line = format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                entry.type_field, entry.user, pin, body.secret.text, moving_factor, code, stamp
            );
            return Verdict::Accepted(Acceptance {
                line_index,
                counter,
                drift,
                moving_factor,
                user: entry.user.clone(),
                new_line,
            });
        }
        match (passed_over, bad_password) {
            (0, _) => Verdict::UnknownUser,
            (_, true) => Verdict::Rejected(Rejection::WrongPassword),
            (_, false) => Verdict::Rejected(Rejection::WrongCode),
        }
    }

    /// The file text as read.
    pub fn render(&self) -> String {
        self.lines.iter().map(|l| l.raw.as_str()).collect()
    }

    /// The whole new file text: every line as read except the accepted one, which is
    /// replaced by [`Acceptance::new_line`] (keeping a CRLF ending; LF if it had none).
    pub fn with_updated(&self, accepted: &Acceptance) -> Result<String, UsersFileError> {
        let stale = UsersFileError::StaleAcceptance {
            line: accepted.line_index.saturating_add(1),
        };
        let Some(line) = self.lines.get(accepted.line_index) else {
            return Err(stale);
        };
        match &line.kind {
            LineKind::Entry(entry) if entry.user == accepted.user && entry.body.is_ok() => {}
            _ => return Err(stale),
        }
        let mut out = String::with_capacity(self.lines.iter().map(|l| l.raw.len() + 40).sum());
        for (index, line) in self.lines.iter().enumerate() {
            if index == accepted.line_index {
                out.push_str(&accepted.new_line);
                out.push_str(if line.raw.ends_with("\r\n") {
                    "\r\n"
                } else {
                    "\n"
                });
            } else {
                out.push_str(&line.raw);
            }
        }
        Ok(out)
    }
}

/// Splits a line into fields the way liboath's `strtok` sees it (the C string ends at NUL).
fn fields(raw: &str) -> impl Iterator<Item = &str> {
    let content = raw.split('\0').next().unwrap_or_default();
    content.split(DELIMITERS).filter(|f| !f.is_empty())
}

fn classify(raw: &str) -> (LineKind, Option<LineProblem>) {
    let mut fields = fields(raw);
    let Some(first) = fields.next() else {
        return (LineKind::Blank, None);
    };
    if first.starts_with('#') {
        return (LineKind::Comment, None);
    }
    let Some(token) = TokenType::parse(first) else {
        return (LineKind::Other, Some(LineProblem::unknown_type(first)));
    };
    let Some(user) = fields.next() else {
        return (LineKind::Other, Some(LineProblem::MissingUser));
    };
    let pin = fields.next();
    let (body, problem) = match (pin, fields.next()) {
        (None, _) => (Err(LineProblem::MissingPin), None),
        (Some(_), None) => (Err(LineProblem::MissingSecret), None),
        (Some(_), Some(secret)) => match parse_body(secret, &mut fields) {
            Ok(body) => {
                let extra = fields.count();
                let problem = (extra > 0).then_some(LineProblem::ExtraFields { count: extra });
                (Ok(body), problem)
            }
            Err(problem) => (Err(problem), None),
        },
    };
    let problem = problem.or_else(|| body.as_ref().err().cloned());
    let entry = Entry {
        type_field: first.to_string(),
        token,
        user: user.to_string(),
        pin: pin.map(|p| Pin(p.to_string())),
        body,
    };
    (LineKind::Entry(Box::new(entry)), problem)
}

fn parse_body<'a>(
    secret: &str,
    rest: &mut impl Iterator<Item = &'a str>,
) -> Result<Body, LineProblem> {
    let key = decode_hex(secret)?;
    let counter = match rest.next() {
        Some(field) => parse_counter(field).ok_or(LineProblem::BadCounter)?,
        None => 0,
    };
    let last_otp = rest.next().map(str::to_string);
    let last_used = match rest.next() {
        Some(field) if timestamp_is_valid(field) => Some(field.to_string()),
        Some(_) => return Err(LineProblem::BadTimestamp),
        None => None,
    };
    Ok(Body {
        secret: Secret {
            key,
            text: secret.to_string(),
        },
        counter,
        last_otp,
        last_used,
    })
}

/// Hex to bytes with liboath's checks, in its order: bad digit, odd count, too long.
fn decode_hex(text: &str) -> Result<Vec<u8>, LineProblem> {
    let mut nibbles = Vec::with_capacity(text.len());
    for (index, c) in text.chars().enumerate() {
        let Some(value) = c.to_digit(16) else {
            return Err(LineProblem::BadHex {
                position: index + 1,
            });
        };
        // to_digit(16) is below 16, so this cannot truncate.
        nibbles.push(value as u8);
    }
    if nibbles.len() % 2 != 0 {
        return Err(LineProblem::OddHex);
    }
    let bytes = nibbles.len() / 2;
    if bytes > MAX_SECRET_BYTES {
        return Err(LineProblem::SecretTooLong { bytes });
    }
    Ok(nibbles
        .chunks_exact(2)
        .map(|p| (p[0] << 4) | p[1])
        .collect())
}

/// C `strtoull(field, &end, 10)` with `*end == '\0'` required: optional sign, digits;
/// a minus wraps, overflow gives `u64::MAX`.
fn parse_counter(field: &str) -> Option<u64> {
    let (negative, digits) = match field.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, field.strip_prefix('+').unwrap_or(field)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value = digits.bytes().try_fold(0u64, |acc, b| {
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    });
    Some(match value {
        None => u64::MAX,
        Some(v) if negative => v.wrapping_neg(),
        Some(v) => v,
    })
}

/// What glibc `strptime(field, "%Y-%m-%dT%H:%M:%SL")` accepts with nothing left over:
/// up to 4 year digits (0-9999), then 1-2 digits each for month 1-12, day 1-31, hour 0-23,
/// minute 0-59, second 0-61 (day and month are not checked against each other).
fn timestamp_is_valid(field: &str) -> bool {
    // (literal before the number, most digits, allowed values)
    let parts: [(Option<u8>, usize, std::ops::RangeInclusive<u32>); 6] = [
        (None, 4, 0..=9999),
        (Some(b'-'), 2, 1..=12),
        (Some(b'-'), 2, 1..=31),
        (Some(b'T'), 2, 0..=23),
        (Some(b':'), 2, 0..=59),
        (Some(b':'), 2, 0..=61),
    ];
    let mut rest = field.as_bytes();
    for (literal, max_digits, range) in parts {
        if let Some(literal) = literal {
            match rest.split_first() {
                Some((&first, tail)) if first == literal => rest = tail,
                _ => return false,
            }
        }
        let count = rest
            .iter()
            .take(max_digits)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if count == 0 {
            return false;
        }
        let (number, tail) = rest.split_at(count);
        let value = number
            .iter()
            .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
        if !range.contains(&value) {
            return false;
        }
        rest = tail;
    }
    rest == b"L"
}

/// liboath's timestamp, `%Y-%m-%dT%H:%M:%SL`, for `unix` shifted by `utc_offset_seconds`.
/// `None` when the year is outside 1000..=9999 (liboath insists on exactly 20 characters).
pub fn format_timestamp(unix: u64, utc_offset_seconds: i32) -> Option<String> {
    let local = i128::from(unix) + i128::from(utc_offset_seconds);
    let days = i64::try_from(local.div_euclid(86_400)).ok()?;
    let seconds_of_day = i64::try_from(local.rem_euclid(86_400)).ok()?;
    let (year, month, day) = civil_from_days(days);
    if !(1000..=9999).contains(&year) {
        return None;
    }
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}L",
        seconds_of_day / 3600,
        seconds_of_day / 60 % 60,
        seconds_of_day % 60
    ))
}

/// liboath takes the digit count from the code's length: 6, 7 or 8.
fn code_digits(code: &str) -> Option<u32> {
    match code.len() {
        6 => Some(6),
        7 => Some(7),
        8 => Some(8),
        _ => None,
    }
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Where `code` is in the TOTP window around `now_step`, searched as liboath does:
/// 0, +1, -1, +2, -2, ... A code of unusable length is nowhere.
fn totp_position(key: &[u8], now_step: u64, window: u64, code: &str) -> Option<i64> {
    let digits = code_digits(code)?;
    let matches = |step: Option<u64>| {
        step.is_some_and(|s| codes_equal(&hotp(Algorithm::Sha1, key, s, digits), code))
    };
    (0..=window).find_map(|offset| {
        if matches(now_step.checked_add(offset)) {
            Some(signed(offset))
        } else if offset > 0 && matches(now_step.checked_sub(offset)) {
            Some(-signed(offset))
        } else {
            None
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    //! Behaviour notes below marked "liboath 2.6.7" were observed with Debian's liboath0
    //! 2.6.7-3.1+deb12u1 through a small C probe calling
    //! `oath_authenticate_usersfile(file, user, otp, 20, passwd_or_NULL, &last)` and with
    //! `oathtool` computing the codes.

    use super::*;
    use proptest::prelude::*;

    /// RFC 4226's key "12345678901234567890".
    const KEY_HEX: &str = "3132333435363738393031323334353637383930";
    const KEY: &[u8] = b"12345678901234567890";
    const OTHER_HEX: &str = "00112233445566778899aabbccddeeff00112233";
    /// 2023-11-14T22:13:20Z, step 56666666 for 30 s.
    const NOW: u64 = 1_700_000_000;

    fn code(counter: u64) -> String {
        hotp(Algorithm::Sha1, KEY, counter, 6)
    }

    fn accepted(verdict: Verdict) -> Acceptance {
        match verdict {
            Verdict::Accepted(a) => a,
            other => panic!("expected acceptance, got {other:?}"),
        }
    }

    fn hotp_file(counter_fields: &str) -> UsersFile {
        UsersFile::parse(&format!(
            "# users\nHOTP/E\tbob\t-\t{OTHER_HEX}\nHOTP alice - {KEY_HEX} {counter_fields}\n"
        ))
        .unwrap()
    }

    #[test]
    fn every_token_type() {
        let table = [
            ("HOTP", TokenKind::Event, 6),
            ("HOTP/E", TokenKind::Event, 6),
            ("HOTP/E/6", TokenKind::Event, 6),
            ("HOTP/E/7", TokenKind::Event, 7),
            ("HOTP/E/8", TokenKind::Event, 8),
            ("HOTP/T30", TokenKind::Time { step: 30 }, 6),
            ("HOTP/T30/6", TokenKind::Time { step: 30 }, 6),
            ("HOTP/T30/7", TokenKind::Time { step: 30 }, 7),
            ("HOTP/T30/8", TokenKind::Time { step: 30 }, 8),
            ("HOTP/T60", TokenKind::Time { step: 60 }, 6),
            ("HOTP/T60/6", TokenKind::Time { step: 60 }, 6),
            ("HOTP/T60/7", TokenKind::Time { step: 60 }, 7),
            ("HOTP/T60/8", TokenKind::Time { step: 60 }, 8),
        ];
        for (field, kind, digits) in table {
            assert_eq!(
                TokenType::parse(field),
                Some(TokenType { kind, digits }),
                "{field}"
            );
            let file = UsersFile::parse(&format!("{field} u - {KEY_HEX}\n")).unwrap();
            let entry = file.entries().next().unwrap();
            assert_eq!((entry.token.kind, entry.token.digits), (kind, digits));
            assert_eq!(entry.counter, Some(0));
        }
        // liboath 2.6.7 skips all of these lines (OATH_UNKNOWN_USER for their user).
        for field in [
            "hotp",
            "HOTP/X",
            "HOTP/E/5",
            "HOTP/E/9",
            "HOTP/T300",
            "HOTP/T30/9",
            "HOTP/T15",
            "TOTP",
            "HOTP/",
            "HOTP/T30/",
        ] {
            assert_eq!(TokenType::parse(field), None, "{field}");
            let file = UsersFile::parse_lenient(&format!("{field} u - {KEY_HEX}\n"));
            assert!(!file.has_user("u"), "{field}");
            assert_eq!(
                file.verify("u", &code(0), NOW, &Policy::OCSERV),
                Verdict::UnknownUser
            );
        }
    }

    #[test]
    fn strict_errors_name_line_and_problem() {
        let cases = [
            ("# c\n\nHOTP a - 3132z\n", "line 3: bad hex in secret at position 5"),
            ("#\n#\n#\nHOTP/X bob - 00\n", "line 4: unknown token type HOTP/X"),
            (
                &format!("{KEY_HEX} HOTP bob - 00\n"),
                "line 1: unknown token type (first field is not HOTP, HOTP/E[/d] or HOTP/T30|T60[/d])",
            ),
            ("HOTP\n", "line 1: no user name after the token type"),
            ("HOTP a\n", "line 1: no PIN field (use - for none)"),
            ("HOTP a -\n", "line 1: no secret field"),
            ("HOTP a - 313\n", "line 1: secret has an odd number of hex digits"),
            (
                &format!("HOTP a - {KEY_HEX}{KEY_HEX}0011\n"),
                "line 1: secret is 42 bytes, liboath allows at most 32",
            ),
            (
                &format!("HOTP a - {KEY_HEX} 1x\n"),
                "line 1: counter (field 5) is not a decimal number",
            ),
            (
                &format!("HOTP a - {KEY_HEX} 1 123456 2006-09-23T20:53:13\n"),
                "line 1: timestamp (field 7) is not like 2006-09-23T20:53:13L",
            ),
            (
                &format!("HOTP a - {KEY_HEX} 1 123456 2006-09-23T20:53:13L x y\n"),
                "line 1: 2 unexpected field(s) after the timestamp",
            ),
        ];
        for (text, message) in cases {
            let error = UsersFile::parse(text).unwrap_err();
            assert_eq!(error.to_string(), message);
            assert!(!error.to_string().contains(KEY_HEX));
            // The lenient parse keeps the text and lists the same problem.
            let lenient = UsersFile::parse_lenient(text);
            assert_eq!(lenient.problems().first(), Some(&error));
            assert_eq!(lenient.render(), text);
        }
        // A secret-looking misplaced field is never echoed, nor part of one in a counter.
        let error = UsersFile::parse("HOTP a - 3132 3334abcd\n").unwrap_err();
        assert!(!error.to_string().contains("3334"), "{error}");
    }

    #[test]
    fn keeps_every_line_verbatim() {
        let text = format!(
            "# comment\r\n\r\n   \t\nnot a token line\nHOTP/T30 carol - {KEY_HEX}\r\n  HOTP\talice\t-\t{KEY_HEX}   7 \r\nHOTP dave - {KEY_HEX}"
        );
        let file = UsersFile::parse_lenient(&text);
        assert_eq!(file.render(), text);
        assert_eq!(file.line_count(), 7);
        assert_eq!(file.users(), ["carol", "alice", "dave"]);
        assert!(file.has_user("alice") && !file.has_user("bob"));
        let alice = file.entries().find(|e| e.user == "alice").unwrap();
        assert_eq!((alice.line_index, alice.counter), (5, Some(7)));
        // Only the unknown line is a problem; CR is a field separator, not part of a field.
        assert_eq!(file.problems().len(), 1);
        assert!(UsersFile::parse(&text).is_err());
        assert!(UsersFile::parse(&text.replace("not a token line\n", "")).is_ok());
    }

    #[test]
    fn hotp_accepts_within_window_and_writes_used_counter() {
        let file = hotp_file("");
        // liboath 2.6.7: code for counter 2 on a fresh line is accepted and the line becomes
        // "HOTP\talice\t-\t<secret>\t2\t359152\t<time>L" (tabs; the USED counter, not 3).
        let a = accepted(file.verify("alice", "359152", NOW, &Policy::OCSERV));
        assert_eq!(
            (a.line_index, a.counter, a.drift, a.moving_factor),
            (2, 2, 2, 2)
        );
        assert_eq!(
            a.new_line(),
            format!("HOTP\talice\t-\t{KEY_HEX}\t2\t359152\t2023-11-14T22:13:20L")
        );
        let text = file.with_updated(&a).unwrap();
        assert_eq!(
            text,
            format!(
                "# users\nHOTP/E\tbob\t-\t{OTHER_HEX}\nHOTP\talice\t-\t{KEY_HEX}\t2\t359152\t2023-11-14T22:13:20L\n"
            )
        );
        let file = UsersFile::parse(&text).unwrap();
        // liboath 2.6.7: the same code again is OATH_REPLAYED_OTP; counter 1 is
        // OATH_INVALID_OTP; counter 3 is accepted and written as 3.
        assert_eq!(
            file.verify("alice", "359152", NOW + 5, &Policy::OCSERV),
            Verdict::Replayed {
                line_index: 2,
                last_used: Some("2023-11-14T22:13:20L".into())
            }
        );
        assert_eq!(
            file.verify("alice", &code(1), NOW, &Policy::OCSERV),
            Verdict::Rejected(Rejection::WrongCode)
        );
        let a = accepted(file.verify("alice", &code(3), NOW, &Policy::OCSERV));
        assert_eq!((a.counter, a.drift, a.moving_factor), (3, 1, 3));
    }

    #[test]
    fn hotp_window_edges() {
        // liboath 2.6.7 with window 20 and stored counter 3: counter 24 is
        // OATH_INVALID_OTP, counter 23 (= 3 + 20, code 574561) is accepted.
        let file = hotp_file("3 969429 2006-09-23T20:53:13L");
        assert_eq!(code(23), "574561");
        assert_eq!(
            file.verify("alice", &code(24), NOW, &Policy::OCSERV),
            Verdict::Rejected(Rejection::WrongCode)
        );
        let a = accepted(file.verify("alice", &code(23), NOW, &Policy::OCSERV));
        assert_eq!((a.counter, a.drift), (23, 20));
        let narrow = Policy {
            hotp_window: 1,
            ..Policy::OCSERV
        };
        assert!(file.verify("alice", &code(4), NOW, &narrow).is_accepted());
        assert!(!file.verify("alice", &code(5), NOW, &narrow).is_accepted());
        let zero = Policy {
            hotp_window: 0,
            ..Policy::OCSERV
        };
        // code(3) is this line's LASTOTP: a replay whatever the window.
        assert!(matches!(
            file.verify("alice", &code(3), NOW, &zero),
            Verdict::Replayed { .. }
        ));
        assert!(hotp_file("3")
            .verify("alice", &code(3), NOW, &zero)
            .is_accepted());
        assert!(!file.verify("alice", &code(4), NOW, &zero).is_accepted());
    }

    #[test]
    fn digits_come_from_the_code() {
        // liboath 2.6.7: an 8-digit code (95396619, counter 25) is accepted on a plain HOTP
        // (6-digit) line and written as is; 7 digits too; 5 and 9 digits and the empty
        // string are OATH_INVALID_DIGITS; "abcdef" is OATH_INVALID_OTP.
        let file = hotp_file("23");
        let eight = hotp(Algorithm::Sha1, KEY, 25, 8);
        assert_eq!(eight, "95396619");
        let a = accepted(file.verify("alice", &eight, NOW, &Policy::OCSERV));
        assert!(a.new_line().contains("\t25\t95396619\t"));
        let seven = hotp(Algorithm::Sha1, KEY, 26, 7);
        assert!(file
            .verify("alice", &seven, NOW, &Policy::OCSERV)
            .is_accepted());
        for bad in ["12345", "123456789", ""] {
            assert_eq!(
                file.verify("alice", bad, NOW, &Policy::OCSERV),
                Verdict::Rejected(Rejection::BadCodeLength),
                "{bad:?}"
            );
        }
        assert_eq!(
            file.verify("alice", "abcdef", NOW, &Policy::OCSERV),
            Verdict::Rejected(Rejection::WrongCode)
        );
        let strict = Policy {
            strict_digits: true,
            ..Policy::OCSERV
        };
        assert_eq!(
            file.verify("alice", &eight, NOW, &strict),
            Verdict::Rejected(Rejection::WrongCode)
        );
        assert!(file.verify("alice", &code(25), NOW, &strict).is_accepted());
        // And a 6-digit code on an 8-digit line (liboath 2.6.7: accepted, dave's "3" -> "4").
        let dave = UsersFile::parse(&format!("HOTP/E/8   dave   +   {KEY_HEX}   3 \n")).unwrap();
        let a = accepted(dave.verify("dave", "338314", NOW, &Policy::OCSERV));
        assert_eq!(
            a.new_line(),
            format!("HOTP/E/8\tdave\t+\t{KEY_HEX}\t4\t338314\t2023-11-14T22:13:20L")
        );
    }

    fn totp_line(fields: &str) -> UsersFile {
        UsersFile::parse(&format!("HOTP/T30 carol - {KEY_HEX} {fields}\n")).unwrap()
    }

    fn step_code(drift: i64) -> String {
        code((NOW / 30).checked_add_signed(drift).unwrap())
    }

    #[test]
    fn totp_drift_window() {
        let file = totp_line("");
        for drift in [-1, 0, 1, -20, 20] {
            let a = accepted(file.verify("carol", &step_code(drift), NOW, &Policy::OCSERV));
            assert_eq!(a.drift, drift);
            assert_eq!(a.counter, (NOW / 30).checked_add_signed(drift).unwrap());
            // liboath 2.6.7 writes COUNTER + |drift| for time-based lines.
            assert_eq!(a.moving_factor, drift.unsigned_abs());
        }
        for drift in [-21, 21] {
            assert_eq!(
                file.verify("carol", &step_code(drift), NOW, &Policy::OCSERV),
                Verdict::Rejected(Rejection::WrongCode)
            );
        }
        let one = Policy {
            totp_window: 1,
            ..Policy::OCSERV
        };
        for drift in [-1, 0, 1] {
            assert!(file
                .verify("carol", &step_code(drift), NOW, &one)
                .is_accepted());
        }
        for drift in [-2, 2] {
            assert!(!file
                .verify("carol", &step_code(drift), NOW, &one)
                .is_accepted());
        }
        // Steps are whole periods: the last second of a step still takes its code.
        assert!(file
            .verify(
                "carol",
                &step_code(0),
                NOW / 30 * 30 + 29,
                &Policy {
                    totp_window: 0,
                    ..Policy::OCSERV
                }
            )
            .is_accepted());
    }

    #[test]
    fn totp_replay_and_older_steps() {
        // liboath 2.6.7, fresh T30 line: drift -3 accepted (counter field 3); drift -5 then
        // OATH_REPLAYED_OTP (older than the last one); -3 again replayed; +2 accepted
        // (counter 3 + 2 = 5); +1 replayed; +20 accepted (counter 25); +21 invalid.
        let file = totp_line("");
        let a = accepted(file.verify("carol", &step_code(-3), NOW, &Policy::OCSERV));
        assert_eq!(a.moving_factor, 3);
        let file = UsersFile::parse(&file.with_updated(&a).unwrap()).unwrap();
        for drift in [-5, -3] {
            assert!(
                matches!(
                    file.verify("carol", &step_code(drift), NOW, &Policy::OCSERV),
                    Verdict::Replayed { line_index: 0, .. }
                ),
                "{drift}"
            );
        }
        let a = accepted(file.verify("carol", &step_code(2), NOW, &Policy::OCSERV));
        assert_eq!(a.moving_factor, 5);
        let file = UsersFile::parse(&file.with_updated(&a).unwrap()).unwrap();
        assert!(matches!(
            file.verify("carol", &step_code(1), NOW, &Policy::OCSERV),
            Verdict::Replayed { .. }
        ));
        let a = accepted(file.verify("carol", &step_code(20), NOW, &Policy::OCSERV));
        assert_eq!(a.moving_factor, 25);
        // Later, the last code has left the window: no replay check, normal acceptance.
        let later = NOW + 30 * 60;
        let fresh = code(later / 30);
        assert!(file
            .verify("carol", &fresh, later, &Policy::OCSERV)
            .is_accepted());
        // The same 6 digits as LASTOTP are always a replay, even from another step.
        let last = step_code(2);
        assert!(matches!(
            file.verify("carol", &last, later, &Policy::OCSERV),
            Verdict::Replayed { .. }
        ));
    }

    #[test]
    fn totp_sixty_seconds_and_eight_digits() {
        // RFC 6238 appendix B, SHA-1, T = 59: 94287082.
        let file = UsersFile::parse(&format!("HOTP/T30/8 r - {KEY_HEX} 100\n")).unwrap();
        let a = accepted(file.verify("r", "94287082", 59, &Policy::OCSERV));
        assert_eq!((a.counter, a.drift, a.moving_factor), (1, 0, 100));
        assert_eq!(
            a.new_line(),
            format!("HOTP/T30/8\tr\t-\t{KEY_HEX}\t100\t94287082\t1970-01-01T00:00:59L")
        );
        let file = UsersFile::parse(&format!("HOTP/T60 erin - {KEY_HEX}\n")).unwrap();
        let now = NOW;
        let previous_minute = code(now / 60 - 1);
        let a = accepted(file.verify("erin", &previous_minute, now, &Policy::OCSERV));
        assert_eq!((a.drift, a.moving_factor), (-1, 1));
        // Near the epoch, steps before 0 do not exist (liboath would wrap around).
        let file = UsersFile::parse(&format!("HOTP/T30 e - {KEY_HEX}\n")).unwrap();
        assert!(file
            .verify("e", &code(0), 10, &Policy::OCSERV)
            .is_accepted());
    }

    #[test]
    fn several_lines_for_one_user() {
        // liboath 2.6.7: the first line with another secret fails, the second verifies and
        // is the one rewritten.
        let text = format!("HOTP alice - {OTHER_HEX}\nHOTP alice - {KEY_HEX}\n");
        let file = UsersFile::parse(&text).unwrap();
        let a = accepted(file.verify("alice", "755224", NOW, &Policy::OCSERV));
        assert_eq!(a.line_index, 1);
        let new = file.with_updated(&a).unwrap();
        assert!(new.starts_with(&format!("HOTP alice - {OTHER_HEX}\n")));
        // liboath 2.6.7: a replay on the first line ends the check even though the second
        // line would verify.
        let text = format!("HOTP alice - {OTHER_HEX} 0 755224\nHOTP alice - {KEY_HEX}\n");
        let file = UsersFile::parse(&text).unwrap();
        assert!(matches!(
            file.verify("alice", "755224", NOW, &Policy::OCSERV),
            Verdict::Replayed { line_index: 0, .. }
        ));
        // liboath 2.6.7 rewrites the WRONG line here ("HOTP\talice\t-\t-\t1\t287082\t..."
        // in place of the incomplete first line, leaving the real one unchanged so the
        // code could be used again). We rewrite the line that verified.
        let text = format!("HOTP alice -\nHOTP alice - {KEY_HEX} 0 111111\n");
        let file = UsersFile::parse_lenient(&text);
        let a = accepted(file.verify("alice", "287082", NOW, &Policy::OCSERV));
        assert_eq!(a.line_index, 1);
        let new = file.with_updated(&a).unwrap();
        assert!(new.starts_with("HOTP alice -\nHOTP\talice\t-\t"), "{new}");
        // An incomplete line alone is no line at all (liboath 2.6.7: OATH_UNKNOWN_USER).
        let file = UsersFile::parse_lenient("HOTP carl\nHOTP alice -\n");
        assert!(!file.has_user("carl") && !file.has_user("alice"));
        assert_eq!(
            file.verify("alice", "755224", NOW, &Policy::OCSERV),
            Verdict::UnknownUser
        );
    }

    #[test]
    fn malformed_lines_fail_only_their_user() {
        // liboath 2.6.7: bad hex on the user's line -> OATH_INVALID_HEX (also odd length);
        // 33+ bytes -> OATH_TOO_SMALL_BUFFER; bad counter -> OATH_INVALID_COUNTER; bad
        // timestamp -> OATH_INVALID_TIMESTAMP; bad hex on another user's line: no effect.
        let cases = [
            ("HOTP alice - 31zz\n".to_string(), "OATH_INVALID_HEX"),
            ("HOTP alice - 313\n".to_string(), "OATH_INVALID_HEX"),
            (
                format!("HOTP alice - {KEY_HEX}{KEY_HEX}00112233\n"),
                "OATH_TOO_SMALL_BUFFER",
            ),
            (
                format!("HOTP alice - {KEY_HEX} x\n"),
                "OATH_INVALID_COUNTER",
            ),
            (
                format!("HOTP alice - {KEY_HEX} 0 111111 2006-09-23T20:53:62L\n"),
                "OATH_INVALID_TIMESTAMP",
            ),
        ];
        for (text, name) in cases {
            let file = UsersFile::parse_lenient(&format!("{text}HOTP alice - {KEY_HEX}\n"));
            let verdict = file.verify("alice", "755224", NOW, &Policy::OCSERV);
            assert!(matches!(
                verdict,
                Verdict::MalformedLine(UsersFileError::Malformed { line: 1, .. })
            ));
            assert_eq!(verdict.liboath_name(), name, "{text}");
            assert!(file.has_user("alice"));
        }
        let file = UsersFile::parse_lenient(&format!("HOTP bob - zz\nHOTP alice - {KEY_HEX}\n"));
        assert!(file
            .verify("alice", "755224", NOW, &Policy::OCSERV)
            .is_accepted());
        assert_eq!(file.problems().len(), 1);
    }

    #[test]
    fn counter_is_read_like_strtoull() {
        // liboath 2.6.7: "+5" is 5; "-1" and 99999999999999999999999 (overflow) start the
        // search at u64::MAX, so counter 0's code is found one step later and written as 0.
        assert_eq!(parse_counter("+5"), Some(5));
        assert_eq!(parse_counter("007"), Some(7));
        assert_eq!(parse_counter("-1"), Some(u64::MAX));
        assert_eq!(parse_counter("99999999999999999999999"), Some(u64::MAX));
        for bad in ["", "+", "-", "1x", "x", "0x10", "1.0"] {
            assert_eq!(parse_counter(bad), None, "{bad:?}");
        }
        for counter in ["-1", "99999999999999999999999"] {
            let a = accepted(hotp_file(counter).verify("alice", "755224", NOW, &Policy::OCSERV));
            assert_eq!((a.counter, a.drift, a.moving_factor), (0, 1, 0));
        }
        let file = hotp_file("+5");
        assert!(!file
            .verify("alice", "755224", NOW, &Policy::OCSERV)
            .is_accepted());
    }

    #[test]
    fn timestamps_are_read_like_strptime() {
        // liboath 2.6.7 (glibc strptime) accepts the first group, rejects the second.
        for good in [
            "2006-09-23T20:53:13L",
            "2006-9-3T2:5:1L",
            "2006-09-23T20:53:61L",
            "2006-02-31T00:00:00L",
            "0-01-01T00:00:00L",
        ] {
            assert!(timestamp_is_valid(good), "{good}");
        }
        for bad in [
            "2006-09-23T20:53:13",
            "2006-09-23T20:53:62L",
            "2006-13-01T00:00:00L",
            "20060-01-01T00:00:00L",
            "2006-09-23T20:53:13Lx",
            "2006-09-23t20:53:13L",
            "2006-00-23T20:53:13L",
            "2006-09-23T24:00:00L",
            "",
            "L",
        ] {
            assert!(!timestamp_is_valid(bad), "{bad}");
        }
    }

    #[test]
    fn timestamp_format() {
        assert_eq!(format_timestamp(0, 0).unwrap(), "1970-01-01T00:00:00L");
        assert_eq!(
            format_timestamp(1_700_000_000, 0).unwrap(),
            "2023-11-14T22:13:20L"
        );
        assert_eq!(
            format_timestamp(951_782_400, 0).unwrap(),
            "2000-02-29T00:00:00L"
        );
        assert_eq!(
            format_timestamp(951_868_799, 0).unwrap(),
            "2000-02-29T23:59:59L"
        );
        assert_eq!(
            format_timestamp(4_107_542_400, 0).unwrap(),
            "2100-03-01T00:00:00L"
        );
        // liboath 2.6.7 writes local time: at 05:25:30 UTC with TZ=Asia/Kolkata it wrote
        // 10:55:30L. The offset reproduces that.
        assert_eq!(
            format_timestamp(1_700_000_000, 19_800).unwrap(),
            "2023-11-15T03:43:20L"
        );
        assert_eq!(format_timestamp(0, -3600).unwrap(), "1969-12-31T23:00:00L");
        assert_eq!(
            format_timestamp(253_402_300_799, 0).unwrap(),
            "9999-12-31T23:59:59L"
        );
        assert_eq!(format_timestamp(253_402_300_800, 0), None);
        assert_eq!(format_timestamp(u64::MAX, i32::MAX), None);
        for t in [0, 951_782_400, 1_700_000_000, 4_107_542_400] {
            assert!(timestamp_is_valid(&format_timestamp(t, 0).unwrap()));
        }
        // A clock the timestamp cannot hold fails the login, as OATH_TIME_ERROR does.
        let file = hotp_file("");
        let verdict = file.verify("alice", "755224", 253_402_300_800, &Policy::OCSERV);
        assert_eq!(verdict, Verdict::Rejected(Rejection::ClockOutOfRange));
        let file = UsersFile::parse(&format!("HOTP/T30 z - {KEY_HEX}\n")).unwrap();
        let policy = Policy {
            utc_offset_seconds: 19_800,
            ..Policy::OCSERV
        };
        let a = accepted(file.verify("z", &step_code(0), NOW, &policy));
        assert!(a.new_line().ends_with("\t2023-11-15T03:43:20L"));
    }

    #[test]
    fn passwords_when_asked() {
        // liboath 2.6.7 with passwd given: "-" takes only "", "+" takes anything, other PINs
        // must match (else OATH_BAD_PASSWORD); a wrong code with the right PIN is
        // OATH_INVALID_OTP; a mismatching line is passed over for the next one.
        let file = UsersFile::parse(&format!(
            "HOTP alice - {KEY_HEX}\nHOTP bob + {KEY_HEX}\nHOTP carl pw {KEY_HEX}\n"
        ))
        .unwrap();
        let check = |user: &str, code: &str, pw: &str| {
            file.verify_with_password(user, code, Some(pw), NOW, &Policy::OCSERV)
        };
        assert!(check("alice", "755224", "").is_accepted());
        assert_eq!(
            check("alice", "755224", "x"),
            Verdict::Rejected(Rejection::WrongPassword)
        );
        assert!(check("bob", "755224", "anything").is_accepted());
        assert!(check("carl", "755224", "pw").is_accepted());
        assert_eq!(
            check("carl", "755224", "pX"),
            Verdict::Rejected(Rejection::WrongPassword)
        );
        assert_eq!(
            check("carl", "111111", "pw"),
            Verdict::Rejected(Rejection::WrongCode)
        );
        let file = UsersFile::parse(&format!(
            "HOTP carl pw1 {KEY_HEX}\nHOTP carl pw2 {KEY_HEX}\n"
        ))
        .unwrap();
        let a = accepted(file.verify_with_password(
            "carl",
            "755224",
            Some("pw2"),
            NOW,
            &Policy::OCSERV,
        ));
        assert_eq!(a.line_index, 1);
        assert!(a.new_line().starts_with("HOTP\tcarl\tpw2\t"));
        // Without a password (ocserv) the PIN is not looked at.
        assert!(file
            .verify("carl", "755224", NOW, &Policy::OCSERV)
            .is_accepted());
    }

    #[test]
    fn rewrite_changes_only_the_used_line() {
        // liboath 2.6.7 keeps the other lines byte for byte (CRLF too), writes the used
        // line with tabs and an LF, drops fields after the timestamp, and adds the LF when
        // the used line was the last one without one.
        let text = format!(
            "# c\r\nHOTP bob - {KEY_HEX}\r\n  HOTP alice - {KEY_HEX} 0 111111 2006-09-23T20:53:13L extra\r\n\nHOTP eve - {KEY_HEX}"
        );
        let file = UsersFile::parse_lenient(&text);
        let a = accepted(file.verify("alice", "755224", NOW, &Policy::OCSERV));
        let new = file.with_updated(&a).unwrap();
        let expected = format!(
            "# c\r\nHOTP bob - {KEY_HEX}\r\nHOTP\talice\t-\t{KEY_HEX}\t0\t755224\t2023-11-14T22:13:20L\r\n\nHOTP eve - {KEY_HEX}"
        );
        assert_eq!(new, expected);
        let a = accepted(file.verify("eve", "755224", NOW, &Policy::OCSERV));
        let new = file.with_updated(&a).unwrap();
        assert!(new.ends_with(&format!("\t{KEY_HEX}\t0\t755224\t2023-11-14T22:13:20L\n")));
        assert!(new.starts_with(&text[..text.len() - format!("HOTP eve - {KEY_HEX}").len()]));
        // An acceptance from another file is refused.
        let other = hotp_file("");
        assert!(matches!(
            other.with_updated(&a),
            Err(UsersFileError::StaleAcceptance { line: 5 })
        ));
    }

    #[test]
    fn secrets_stay_out_of_debug_and_errors() {
        let text = format!("HOTP alice s3cretpin {KEY_HEX}\nHOTP bob - 31zz{KEY_HEX}\n");
        let file = UsersFile::parse_lenient(&text);
        let a = file.verify("alice", "755224", NOW, &Policy::OCSERV);
        assert!(a.is_accepted());
        for shown in [
            format!("{file:?}"),
            format!("{a:?}"),
            format!("{:?}", file.problems()),
            file.problems()[0].to_string(),
            format!("{:?}", file.entries().collect::<Vec<_>>()),
            format!("{:?}", file.verify("bob", "755224", NOW, &Policy::OCSERV)),
        ] {
            assert!(!shown.contains(KEY_HEX), "{shown}");
            assert!(!shown.contains("s3cretpin"), "{shown}");
        }
    }

    #[test]
    fn liboath_messages() {
        let file = hotp_file("0 755224");
        let replay = file.verify("alice", "755224", NOW, &Policy::OCSERV);
        assert_eq!(replay.liboath_name(), "OATH_REPLAYED_OTP");
        assert_eq!(replay.liboath_message(), "The OTP has been replayed");
        let unknown = file.verify("nobody", "755224", NOW, &Policy::OCSERV);
        assert_eq!(
            unknown.liboath_message(),
            "Cannot find information about user"
        );
        let wrong = file.verify("alice", "000000", NOW, &Policy::OCSERV);
        assert_eq!(wrong.liboath_message(), "The OTP is not valid");
    }

    #[test]
    fn nul_ends_the_line_for_fields() {
        // C sees the line end at NUL; the rest is kept verbatim.
        let text = format!("HOTP alice - {KEY_HEX}\0 garbage here\n");
        let file = UsersFile::parse(&text).unwrap();
        assert_eq!(file.render(), text);
        assert!(file
            .verify("alice", "755224", NOW, &Policy::OCSERV)
            .is_accepted());
    }

    fn line_strategy() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            Just("HOTP".to_string()),
            Just("HOTP/E/8".to_string()),
            Just("HOTP/T30".to_string()),
            Just("HOTP/T60/7".to_string()),
            Just("#".to_string()),
            "[A-Za-z/0-9]{0,10}",
        ];
        (
            token,
            "(alice|bob)",
            "[-+a-z]{0,3}",
            prop_oneof![Just(KEY_HEX.to_string()), "[0-9a-fA-Fz]{0,70}"],
            "[-+0-9x]{0,22}",
            prop_oneof![Just("755224".to_string()), "[0-9]{0,9}"],
            prop_oneof![Just("2006-09-23T20:53:13L".to_string()), "[-0-9T:L]{0,22}"],
            "[ \t\r]{1,2}",
            0usize..8,
            "(\r?\n)?",
        )
            .prop_map(|(t, u, p, s, c, o, ts, sep, n, end)| {
                let all = [t, u.to_string(), p, s, c, o, ts];
                let mut line = all[..n.min(all.len())].join(&sep);
                line.push_str(&end);
                line
            })
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,300}", code in "\\PC{0,10}", now in any::<u64>(), off in any::<i32>()) {
            let policy = Policy { utc_offset_seconds: off, ..Policy::OCSERV };
            let _ = UsersFile::parse(&text);
            let file = UsersFile::parse_lenient(&text);
            prop_assert_eq!(file.render(), text);
            for user in file.users() {
                if let Verdict::Accepted(a) = file.verify(user, &code, now, &policy) {
                    prop_assert!(file.with_updated(&a).is_ok());
                }
            }
            let _ = file.verify("alice", &code, now, &policy);
            let _ = file.verify_with_password("alice", &code, Some(&code), now, &policy);
        }

        #[test]
        fn structured_lines_never_panic(lines in proptest::collection::vec(line_strategy(), 0..6), code in prop_oneof![Just("755224".to_string()), "[0-9]{5,9}"], now in 0u64..300_000_000_000) {
            let text: String = lines.concat();
            let file = UsersFile::parse_lenient(&text);
            prop_assert_eq!(file.render(), text.clone());
            for user in ["alice", "bob"] {
                let verdict = file.verify(user, &code, now, &Policy::OCSERV);
                if let Verdict::Accepted(a) = verdict {
                    let new = file.with_updated(&a).unwrap();
                    let again = UsersFile::parse_lenient(&new);
                    // The rewritten line parses, and the same code now replays.
                    let line_ok = again.problems().iter().all(|p| {
                        !matches!(p, UsersFileError::Malformed { line, .. } if *line == a.line_index + 1)
                    });
                    prop_assert!(line_ok);
                    let replay = again.verify(user, &code, now, &Policy::OCSERV);
                    prop_assert!(matches!(replay, Verdict::Replayed { .. }), "{:?}", replay);
                    prop_assert_eq!(new.lines().count(), text.lines().count());
                }
            }
        }
    }
}
