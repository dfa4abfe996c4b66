//! Parsing what an administrator types into occtl.
//!
//! # Matching rules (from ocserv's `occtl.c`)
//!
//! ocserv joins the command-line words with single spaces, strips the line,
//! collapses runs of whitespace, and then walks its command table in order:
//! an entry matches when the line starts with the entry's full name,
//! compared ASCII-case-insensitively (`c_strncasecmp`). Words are never
//! abbreviated (`sh us` is not `show users`). Whatever follows the name,
//! with leading whitespace skipped, is the argument; an argument of `?` (or
//! none, for commands that need one) prints the help lines of the matching
//! commands instead of running anything. Unmatched lines print the commands
//! whose names start with the typed text, or "unknown command".
//!
//! This parser follows those rules with three deliberate differences, all
//! of which only turn ocserv's silent surprises into errors:
//!
//! * the name must end at a word boundary: ocserv runs `show users` for
//!   `show usersXYZ` and `show session s` for `show sessions`;
//! * commands without an argument refuse trailing text (ocserv ignores it,
//!   so `show ip bans points` silently showed bans);
//! * `stop` requires the word `now` (ocserv's table documents `stop now` but
//!   stops the server on a bare `stop`).
//!
//! IDs must be decimal numbers above zero (ocserv uses `atoi` and refuses
//! 0), IPs must parse as IPv4 or IPv6 and are normalised to their canonical
//! text (as ocserv does via `inet_pton`), and arguments are capped at
//! [`MAX_ARG_LEN`] bytes.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::error::CtlError;
use crate::proto::Request;

/// Longest accepted command argument (user name, session id, IP) in bytes.
pub const MAX_ARG_LEN: usize = 4096;

/// What a command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Send this request to the server.
    Remote(Request),
    /// Print help: use [`help_output`] with the same line.
    Help,
    /// Leave the interactive shell (`exit`, `quit`).
    Exit,
    /// Reset the terminal (`reset`).
    Reset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArgKind {
    None,
    Name,
    Id,
    Ip,
    Sid,
    Now,
}

impl ArgKind {
    fn expected(self) -> &'static str {
        match self {
            ArgKind::None => "no argument",
            ArgKind::Name => "a user NAME",
            ArgKind::Id => "a connection ID (a number above 0, see show users)",
            ArgKind::Ip => "an IP address",
            ArgKind::Sid => "a session ID (SID, see show sessions)",
            ArgKind::Now => "the word 'now' (type: stop now)",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    DisconnectUser,
    DisconnectId,
    TerminateUser,
    TerminateId,
    TerminateSession,
    UnbanIp,
    Reload,
    ShowStatus,
    ShowUsers,
    ShowIpBans,
    ShowIpBanPoints,
    ShowIroutes,
    ShowSessionsAll,
    ShowSessionsValid,
    ShowSession,
    ShowUser,
    ShowId,
    ShowEvents,
    Stop,
    Reset,
    Help,
    Exit,
}

/// Where a table entry shows up in help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    /// Always (also in the non-interactive usage text).
    Always,
    /// Only in interactive help.
    Interactive,
    /// Never listed (aliases); still matched by partial-input help.
    Hidden,
}

#[derive(Debug)]
struct Entry {
    name: &'static str,
    /// Argument text as shown in help.
    arg_help: Option<&'static str>,
    arg: ArgKind,
    action: Action,
    doc: &'static str,
    shown: Shown,
}

const fn e(
    name: &'static str,
    arg_help: Option<&'static str>,
    arg: ArgKind,
    action: Action,
    doc: &'static str,
    shown: Shown,
) -> Entry {
    Entry {
        name,
        arg_help,
        arg,
        action,
        doc,
        shown,
    }
}

/// ocserv 1.4's command table, in its order.
#[rustfmt::skip]
static COMMANDS: &[Entry] = &[
    e("disconnect user", Some("[NAME]"), ArgKind::Name, Action::DisconnectUser, "Disconnect the specified user", Shown::Always),
    e("disconnect id", Some("[ID]"), ArgKind::Id, Action::DisconnectId, "Disconnect the specified ID", Shown::Always),
    e("terminate user", Some("[NAME]"), ArgKind::Name, Action::TerminateUser, "Disconnect user and invalidate session cookies", Shown::Always),
    e("terminate id", Some("[ID]"), ArgKind::Id, Action::TerminateId, "Disconnect ID and invalidate session cookies", Shown::Always),
    e("terminate session", Some("[SID]"), ArgKind::Sid, Action::TerminateSession, "Invalidate the specified session", Shown::Always),
    e("unban ip", Some("[IP]"), ArgKind::Ip, Action::UnbanIp, "Unban the specified IP", Shown::Always),
    e("reload", None, ArgKind::None, Action::Reload, "Reloads the server configuration", Shown::Always),
    e("show status", None, ArgKind::None, Action::ShowStatus, "Prints the status and statistics of the server", Shown::Always),
    e("show users", None, ArgKind::None, Action::ShowUsers, "Prints the connected users", Shown::Always),
    e("show ip bans", None, ArgKind::None, Action::ShowIpBans, "Prints the banned IP addresses", Shown::Always),
    e("show ip ban points", None, ArgKind::None, Action::ShowIpBanPoints, "Prints all the known IP addresses which have points", Shown::Always),
    e("show iroutes", None, ArgKind::None, Action::ShowIroutes, "Prints the routes provided by users of the server", Shown::Always),
    e("show sessions all", None, ArgKind::None, Action::ShowSessionsAll, "Prints all the session IDs", Shown::Always),
    e("show sessions valid", None, ArgKind::None, Action::ShowSessionsValid, "Prints all the valid for reconnection sessions", Shown::Always),
    e("show session", Some("[SID]"), ArgKind::Sid, Action::ShowSession, "Prints information on the specified session", Shown::Always),
    e("show user", Some("[NAME]"), ArgKind::Name, Action::ShowUser, "Prints information on the specified user", Shown::Always),
    e("show id", Some("[ID]"), ArgKind::Id, Action::ShowId, "Prints information on the specified ID", Shown::Always),
    e("show events", None, ArgKind::None, Action::ShowEvents, "Provides information about connecting users", Shown::Always),
    e("stop", Some("now"), ArgKind::Now, Action::Stop, "Terminates the server", Shown::Always),
    e("reset", None, ArgKind::None, Action::Reset, "Resets the screen and terminal", Shown::Interactive),
    e("help", Some("or ?"), ArgKind::None, Action::Help, "Prints this help", Shown::Interactive),
    e("exit", None, ArgKind::None, Action::Exit, "Exits this application", Shown::Interactive),
    e("?", None, ArgKind::None, Action::Help, "Prints this help", Shown::Hidden),
    e("quit", None, ArgKind::None, Action::Exit, "Exits this application", Shown::Hidden),
    e("show cookies all", None, ArgKind::None, Action::ShowSessionsAll, "Alias for show sessions all", Shown::Hidden),
    e("show cookies valid", None, ArgKind::None, Action::ShowSessionsValid, "Alias for show sessions valid", Shown::Hidden),
];

/// C `isspace` in the C locale (includes vertical tab, unlike
/// `char::is_ascii_whitespace`).
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

fn words(line: &str) -> Vec<&str> {
    line.split(is_c_space).filter(|w| !w.is_empty()).collect()
}

/// The line with every run of whitespace replaced by one space, trimmed.
fn normalise(line: &str) -> String {
    words(line).join(" ")
}

/// Parses occtl's command words as given on its command line, e.g.
/// `["disconnect", "user", "alice"]`. Like ocserv, the words are joined with
/// spaces first, so `["show users"]` works too.
pub fn parse_words<S: AsRef<str>>(words: &[S]) -> Result<Command, CtlError> {
    let line = words
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<&str>>()
        .join(" ");
    parse_line(&line)
}

/// Parses one line typed at the interactive prompt (or the joined
/// command-line words).
pub fn parse_line(line: &str) -> Result<Command, CtlError> {
    let input = normalise(line);
    let toks = words(line);
    if toks.is_empty() {
        return Err(CtlError::EmptyCommand);
    }
    // A trailing "?" asks for help on what was typed, as in ocserv.
    if toks.last() == Some(&"?") {
        return Ok(Command::Help);
    }

    // Longest table entry whose words all match the first words of the line.
    let mut best: Option<(&Entry, usize)> = None;
    for entry in COMMANDS {
        let name_words: Vec<&str> = entry.name.split(' ').collect();
        if name_words.len() <= toks.len()
            && name_words
                .iter()
                .zip(&toks)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
            && best.is_none_or(|(_, n)| name_words.len() > n)
        {
            best = Some((entry, name_words.len()));
        }
    }

    let Some((entry, nwords)) = best else {
        return Err(no_match(&input, &toks));
    };
    let rest = toks.get(nwords..).unwrap_or_default().join(" ");
    build(entry, rest)
}

fn build(entry: &Entry, rest: String) -> Result<Command, CtlError> {
    let command = entry.name.to_string();
    if rest.len() > MAX_ARG_LEN {
        return Err(CtlError::ArgumentTooLong {
            command,
            len: rest.len(),
            max: MAX_ARG_LEN,
        });
    }
    let missing = || CtlError::MissingArgument {
        command: entry.name.to_string(),
        expected: entry.arg.expected().to_string(),
    };
    let invalid = |got: &str| CtlError::InvalidArgument {
        command: entry.name.to_string(),
        expected: entry.arg.expected().to_string(),
        got: got.to_string(),
    };

    // Local commands ignore any argument, as ocserv does.
    match entry.action {
        Action::Help => return Ok(Command::Help),
        Action::Exit => return Ok(Command::Exit),
        Action::Reset => return Ok(Command::Reset),
        _ => {}
    }

    match entry.arg {
        ArgKind::None => {
            if !rest.is_empty() {
                return Err(CtlError::UnexpectedArgument { command, got: rest });
            }
        }
        ArgKind::Now => {
            if rest.is_empty() {
                return Err(missing());
            }
            if !rest.eq_ignore_ascii_case("now") {
                return Err(invalid(&rest));
            }
        }
        ArgKind::Name | ArgKind::Sid | ArgKind::Id | ArgKind::Ip => {
            if rest.is_empty() {
                return Err(missing());
            }
        }
    }

    let id = |s: &str| -> Result<u64, CtlError> {
        match s.parse::<u64>() {
            Ok(n) if n > 0 && s.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
            _ => Err(invalid(s)),
        }
    };

    let request = match entry.action {
        Action::DisconnectUser => Request::DisconnectUser(rest),
        Action::DisconnectId => Request::DisconnectId(id(&rest)?),
        Action::TerminateUser => Request::TerminateUser(rest),
        Action::TerminateId => Request::TerminateId(id(&rest)?),
        Action::TerminateSession => Request::TerminateSession(rest),
        Action::UnbanIp => match rest.parse::<IpAddr>() {
            Ok(ip) => Request::UnbanIp(ip.to_string()),
            Err(_) => return Err(invalid(&rest)),
        },
        Action::Reload => Request::Reload,
        Action::ShowStatus => Request::ShowStatus,
        Action::ShowUsers => Request::ShowUsers,
        Action::ShowIpBans => Request::ShowIpBans,
        Action::ShowIpBanPoints => Request::ShowIpBanPoints,
        Action::ShowIroutes => Request::ShowIroutes,
        Action::ShowSessionsAll => Request::ShowSessions { valid_only: false },
        Action::ShowSessionsValid => Request::ShowSessions { valid_only: true },
        Action::ShowSession => Request::ShowSession(rest),
        Action::ShowUser => Request::ShowUser(rest),
        Action::ShowId => Request::ShowId(id(&rest)?),
        Action::ShowEvents => Request::ShowEvents,
        Action::Stop => Request::StopNow,
        Action::Reset => return Ok(Command::Reset),
        Action::Help => return Ok(Command::Help),
        Action::Exit => return Ok(Command::Exit),
    };
    Ok(Command::Remote(request))
}

/// Builds the error for a line no entry matches: either it is a strict
/// prefix of some commands (incomplete) or some word is unknown.
fn no_match(input: &str, toks: &[&str]) -> CtlError {
    // How many leading words agree with at least one entry.
    let mut matched = 0;
    for entry in COMMANDS {
        let n = entry
            .name
            .split(' ')
            .zip(toks)
            .take_while(|(a, b)| a.eq_ignore_ascii_case(b))
            .count();
        matched = matched.max(n);
    }
    // Next words of the entries sharing those `matched` words (visible
    // entries first, aliases are not advertised).
    let mut next: Vec<String> = Vec::new();
    for entry in COMMANDS.iter().filter(|e| e.shown != Shown::Hidden) {
        let name_words: Vec<&str> = entry.name.split(' ').collect();
        if name_words.len() > matched
            && name_words
                .iter()
                .zip(toks)
                .take(matched)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
        {
            // Unknown word: offer the next single words; incomplete line:
            // offer the complete remainders (`bans`, `ban points`).
            let rest = if toks.len() > matched {
                name_words
                    .get(matched)
                    .copied()
                    .unwrap_or_default()
                    .to_string()
            } else {
                name_words.get(matched..).unwrap_or_default().join(" ")
            };
            if !next.contains(&rest) {
                next.push(rest);
            }
        }
    }
    let expected = if next.is_empty() {
        "a command (use help or '?' to get a list of the available commands)".to_string()
    } else {
        format!("one of: {}", next.join(", "))
    };
    let prefix = toks.get(..matched).unwrap_or_default().join(" ");
    match toks.get(matched) {
        Some(word) => CtlError::UnknownCommand {
            input: input.to_string(),
            word: (*word).to_string(),
            position: if matched == 0 {
                String::new()
            } else {
                format!(" after '{prefix}'")
            },
            expected,
        },
        None => CtlError::IncompleteCommand {
            input: input.to_string(),
            expected,
        },
    }
}

fn help_line(out: &mut String, entry: &Entry) {
    // ocserv: " %12s %s\t%16s\n" with an argument, " %16s\t%16s\n" without.
    let _ = match entry.arg_help {
        Some(arg) => writeln!(out, " {:>12} {}\t{:>16}", entry.name, arg, entry.doc),
        None => writeln!(out, " {:>16}\t{:>16}", entry.name, entry.doc),
    };
}

/// ocserv's command list: `Available Commands` followed by one line per
/// command. `interactive` adds the shell-only commands (`reset`, `help`,
/// `exit`), as ocserv does for the `help` command but not for its usage
/// text.
pub fn help_text(interactive: bool) -> String {
    let mut out = String::from("Available Commands\n");
    for entry in COMMANDS {
        let show = match entry.shown {
            Shown::Always => true,
            Shown::Interactive => interactive,
            Shown::Hidden => false,
        };
        if show {
            help_line(&mut out, entry);
        }
    }
    out
}

/// The help lines of the commands whose names start with what was typed
/// (ocserv's `check_cmd_help`): trailing `?` and whitespace are ignored and
/// a line longer than a command name matches when it starts with the whole
/// name. `None` when nothing matches (ocserv then says "unknown command").
pub fn help_for(line: &str) -> Option<String> {
    let input = normalise(line.trim_end_matches(|c: char| c == '?' || is_c_space(c)));
    let mut out = String::new();
    for entry in COMMANDS {
        let n = input.len().min(entry.name.len());
        let matches = match (input.as_bytes().get(..n), entry.name.as_bytes().get(..n)) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        };
        if matches {
            help_line(&mut out, entry);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// What to print for a line that parsed to [`Command::Help`] (or failed to
/// parse): the full list for `help`/`?`, otherwise the commands matching the
/// typed text, falling back to the full list.
pub fn help_output(line: &str, interactive: bool) -> String {
    let toks = words(line);
    match toks.first() {
        Some(first) if first.eq_ignore_ascii_case("help") || first.starts_with('?') => {
            help_text(interactive)
        }
        None => help_text(interactive),
        Some(_) => help_for(line).unwrap_or_else(|| help_text(interactive)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(line: &str) -> Result<Command, CtlError> {
        parse_line(line)
    }

    fn remote(line: &str) -> Request {
        match p(line) {
            Ok(Command::Remote(r)) => r,
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    /// The name of the [`CtlError`] variant `line` fails with.
    fn err_kind(line: &str) -> String {
        let e = p(line).unwrap_err();
        format!("{e:?}")
            .split([' ', '('])
            .next()
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn all_remote_commands() {
        let cases = [
            ("show status", Request::ShowStatus),
            ("show users", Request::ShowUsers),
            ("show user alice", Request::ShowUser("alice".into())),
            ("show id 42", Request::ShowId(42)),
            (
                "show sessions all",
                Request::ShowSessions { valid_only: false },
            ),
            (
                "show sessions valid",
                Request::ShowSessions { valid_only: true },
            ),
            ("show session AbC12", Request::ShowSession("AbC12".into())),
            ("show ip bans", Request::ShowIpBans),
            ("show ip ban points", Request::ShowIpBanPoints),
            ("show iroutes", Request::ShowIroutes),
            ("show events", Request::ShowEvents),
            ("disconnect user bob", Request::DisconnectUser("bob".into())),
            ("disconnect id 7", Request::DisconnectId(7)),
            ("terminate user bob", Request::TerminateUser("bob".into())),
            ("terminate id 7", Request::TerminateId(7)),
            (
                "terminate session xYz",
                Request::TerminateSession("xYz".into()),
            ),
            ("unban ip 192.0.2.1", Request::UnbanIp("192.0.2.1".into())),
            ("reload", Request::Reload),
            ("stop now", Request::StopNow),
        ];
        for (line, want) in cases {
            assert_eq!(remote(line), want, "{line:?}");
        }
    }

    #[test]
    fn words_form_and_aliases() {
        let cases: [(&[&str], Request); 6] = [
            (&["show", "ip", "ban", "points"], Request::ShowIpBanPoints),
            (
                &["disconnect", "user", "alice"],
                Request::DisconnectUser("alice".into()),
            ),
            (
                &["show", "cookies", "all"],
                Request::ShowSessions { valid_only: false },
            ),
            (
                &["show", "cookies", "valid"],
                Request::ShowSessions { valid_only: true },
            ),
            (&["stop", "now"], Request::StopNow),
            (&["show users"], Request::ShowUsers),
        ];
        for (words, want) in cases {
            assert_eq!(
                parse_words(words).unwrap(),
                Command::Remote(want),
                "{words:?}"
            );
        }
    }

    #[test]
    fn local_commands() {
        let cases = [
            ("help", Command::Help),
            ("?", Command::Help),
            ("exit", Command::Exit),
            ("quit", Command::Exit),
            ("reset", Command::Reset),
            ("show ?", Command::Help),
            ("disconnect user ?", Command::Help),
        ];
        for (line, want) in cases {
            assert_eq!(p(line).unwrap(), want, "{line:?}");
        }
    }

    #[test]
    fn case_insensitive_and_whitespace() {
        assert_eq!(remote("SHOW Users"), Request::ShowUsers);
        assert_eq!(
            remote("  show \t  ip   BAN points  "),
            Request::ShowIpBanPoints
        );
        assert_eq!(remote("Stop NOW"), Request::StopNow);
        // The argument keeps its case; inner whitespace runs collapse.
        assert_eq!(
            remote("show user  John   Doe "),
            Request::ShowUser("John Doe".into())
        );
    }

    #[test]
    fn no_abbreviations_and_word_boundaries() {
        for (line, kind) in [
            ("sh users", "UnknownCommand"),
            ("show usersX", "UnknownCommand"),
            ("show sessions", "IncompleteCommand"),
        ] {
            assert_eq!(err_kind(line), kind, "{line:?}");
        }
    }

    #[test]
    fn error_messages() {
        let messages = [
            ("disconnect user", "disconnect user needs a user NAME"),
            (
                "show id abc",
                "show id needs a connection ID (a number above 0, see show users), got 'abc'",
            ),
            (
                "unban ip 300.1.1.1",
                "unban ip needs an IP address, got '300.1.1.1'",
            ),
            ("stop", "stop needs the word 'now' (type: stop now)"),
            (
                "show users extra",
                "show users takes no argument, got 'extra'",
            ),
            (
                "show foo",
                "unknown command: show foo: unexpected word 'foo' after 'show'; expected one of: \
                 status, users, ip, iroutes, sessions, session, user, id, events",
            ),
            (
                "frobnicate now",
                "unknown command: frobnicate now: unexpected word 'frobnicate'; expected one of: \
                 disconnect, terminate, unban, reload, show, stop, reset, help, exit",
            ),
            (
                "show ip",
                "incomplete command 'show ip': it must be followed by one of: bans, ban points",
            ),
        ];
        for (line, message) in messages {
            assert_eq!(p(line).unwrap_err().to_string(), message, "{line:?}");
        }
        for line in [
            "show id 0",
            "disconnect id -3",
            "disconnect id +3",
            "stop later",
        ] {
            assert_eq!(err_kind(line), "InvalidArgument", "{line:?}");
        }
        assert_eq!(p("   ").unwrap_err(), CtlError::EmptyCommand);
        assert_eq!(p("").unwrap_err(), CtlError::EmptyCommand);
    }

    #[test]
    fn ip_is_canonicalised() {
        assert_eq!(
            remote("unban ip 2001:DB8:0:0::1"),
            Request::UnbanIp("2001:db8::1".into())
        );
        assert_eq!(err_kind("unban ip 10.0.0.1/24"), "InvalidArgument");
    }

    #[test]
    fn argument_length_cap() {
        let long = "a".repeat(MAX_ARG_LEN + 1);
        assert_eq!(err_kind(&format!("show user {long}")), "ArgumentTooLong");
        let ok = "a".repeat(MAX_ARG_LEN);
        assert_eq!(remote(&format!("show user {ok}")), Request::ShowUser(ok));
    }

    #[test]
    fn help_text_matches_ocserv_layout() {
        let h = help_text(false);
        let mut lines = h.lines();
        assert_eq!(lines.next(), Some("Available Commands"));
        assert_eq!(
            lines.next(),
            Some(" disconnect user [NAME]\tDisconnect the specified user")
        );
        assert!(h.contains("\n     unban ip [IP]\tUnban the specified IP\n"));
        assert!(h.contains("\n           reload\tReloads the server configuration\n"));
        assert!(h.contains("\n      show status\tPrints the status and statistics of the server\n"));
        assert!(h.contains("\n         stop now\tTerminates the server\n"));
        assert!(!h.contains("reset"));
        assert!(!h.contains("show cookies"));
        let hi = help_text(true);
        assert!(hi.contains("\n         help or ?\tPrints this help\n"));
        assert!(hi.contains("\n            reset\tResets the screen and terminal\n"));
        assert!(hi.ends_with("             exit\tExits this application\n"));
        assert_eq!(hi.lines().count(), 1 + 22);
    }

    #[test]
    fn help_for_partial_input() {
        let h = help_for("show ip").unwrap();
        assert_eq!(
            h,
            "     show ip bans\tPrints the banned IP addresses\n show ip ban points\tPrints all the known IP addresses which have points\n"
        );
        let h = help_for("disconnect user ?").unwrap();
        assert_eq!(
            h,
            " disconnect user [NAME]\tDisconnect the specified user\n"
        );
        // "show" lists every show command, aliases included (as ocserv).
        let h = help_for("SHOW").unwrap();
        assert_eq!(h.lines().count(), 13);
        assert!(help_for("frob").is_none());
        assert_eq!(help_output("help", true), help_text(true));
        assert_eq!(help_output("?", false), help_text(false));
        assert_eq!(help_output("show ip ?", true), help_for("show ip").unwrap());
    }

    #[test]
    fn command_line_round_trips() {
        let reqs = [
            Request::ShowStatus,
            Request::ShowUsers,
            Request::ShowUser("alice smith".into()),
            Request::ShowId(12),
            Request::ShowSessions { valid_only: true },
            Request::ShowSessions { valid_only: false },
            Request::ShowSession("abc".into()),
            Request::ShowIpBans,
            Request::ShowIpBanPoints,
            Request::ShowIroutes,
            Request::ShowEvents,
            Request::DisconnectUser("bob".into()),
            Request::DisconnectId(3),
            Request::TerminateUser("bob".into()),
            Request::TerminateId(3),
            Request::TerminateSession("xyz".into()),
            Request::UnbanIp("::1".into()),
            Request::Reload,
            Request::StopNow,
        ];
        for r in reqs {
            assert_eq!(parse_line(&r.command_line()).unwrap(), Command::Remote(r));
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(line in ".*") {
            let _ = parse_line(&line);
            let _ = help_for(&line);
            let _ = help_output(&line, true);
        }

        #[test]
        fn parse_words_never_panics(words in proptest::collection::vec(".*", 0..6)) {
            let _ = parse_words(&words);
        }

        #[test]
        fn name_arguments_survive(name in "[^\\s?][^\\s]{0,30}") {
            let r = remote_of(&format!("show user {name}"));
            prop_assert_eq!(r, Some(Request::ShowUser(name.clone())));
            let r = remote_of(&format!("disconnect user {name}"));
            prop_assert_eq!(r, Some(Request::DisconnectUser(name)));
        }

        #[test]
        fn ids_round_trip(id in 1u64..) {
            prop_assert_eq!(remote_of(&format!("show id {id}")), Some(Request::ShowId(id)));
        }
    }

    fn remote_of(line: &str) -> Option<Request> {
        match parse_line(line) {
            Ok(Command::Remote(r)) => Some(r),
            _ => None,
        }
    }
}
