//! `ocpasswd`: manage the password file of ocserv's `plain` authentication, with the command
//! line, file format and messages of ocserv 1.x's tool.

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgAction, ArgGroup, Parser};
use nix::sys::termios::{self, LocalFlags, SetArg, Termios};

use ocserv::passwd::{self, PasswdError, PasswdFile, PasswdLock, MAX_PASSWORD_BYTES};

const ABOUT: &str = "OpenConnect server password utility";

const LONG_ABOUT: &str = "\
OpenConnect server password utility.

Generates and edits the 'plain' password file used by ocserv \
(auth = \"plain[passwd=/etc/ocserv/ocpasswd]\"). Without -d, -l or -u it sets the password \
of USERNAME, adding the user if needed and creating the file if it does not exist.

On a terminal the password is asked twice with echo off. Otherwise one line is read from \
standard input (without its newline), so `echo secret | ocpasswd -c FILE user` works.";

const AFTER_HELP: &str = "\
FILE FORMAT
    One user per line:

        username:groupname1,groupname2:encoded-password

    The encoded password is a crypt(3) string; ocpasswd writes SHA-256-crypt ($5$) with a \
16-character random salt, and the server also accepts SHA-512-crypt ($6$). A '!' in front of \
it marks a locked user. A group field of '*' (written when no -g is given) means no group; \
group names of one character such as '*' and 'x' are ignored. Blank lines and lines starting \
with '#' are kept and ignored.

    The file is rewritten through FILE.tmp, which also serves as a lock: while it exists \
other ocpasswd runs refuse to change the file. A new file gets mode 0600; an existing file \
keeps its mode.

EXAMPLES
    Add a user, or change a password:
        $ ocpasswd -c /etc/ocserv/ocpasswd my_username

    Add a user in two groups, password from a script:
        $ echo 'secret' | ocpasswd -c ocpasswd -g admins,users my_username

    Lock and unlock a user:
        $ ocpasswd -c ocpasswd -l my_username
        $ ocpasswd -c ocpasswd -u my_username

    Delete a user:
        $ ocpasswd -c ocpasswd -d my_username

EXIT STATUS
    0   Successful program execution.
    1   The operation failed or the command syntax was not valid.

Changing the password of an existing user without -g keeps the user's groups (ocserv's own \
ocpasswd resets them to '*').";

#[derive(Debug, Parser)]
#[command(
    name = "ocpasswd",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = AFTER_HELP,
    disable_help_flag = true,
    disable_version_flag = true,
    group(ArgGroup::new("action").args(["delete", "lock", "unlock"]).multiple(false)),
)]
struct Args {
    /// Password file [default: /etc/ocserv/ocpasswd]
    #[arg(short = 'c', long = "passwd", value_name = "FILE")]
    passwd: Option<PathBuf>,

    /// User's group name(s), comma-separated (written as given)
    #[arg(
        short = 'g',
        long = "groupname",
        visible_alias = "group",
        value_name = "GROUPS"
    )]
    groupname: Option<String>,

    /// Delete user
    #[arg(short = 'd', long)]
    delete: bool,

    /// Lock user
    #[arg(short = 'l', long)]
    lock: bool,

    /// Unlock user
    #[arg(short = 'u', long)]
    unlock: bool,

    /// Display extended usage information and exit
    #[arg(short = 'h', long = "help", action = ArgAction::HelpLong)]
    help: Option<bool>,

    /// Output version information and exit
    #[arg(short = 'v', long = "version", action = ArgAction::Version)]
    version: Option<bool>,

    /// The user to add, change, lock, unlock or delete
    #[arg(value_name = "USERNAME")]
    username: String,
}

/// A failure, printed on stderr as is.
struct Failure(String);

impl From<PasswdError> for Failure {
    fn from(e: PasswdError) -> Self {
        Failure(e.to_string())
    }
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(msg)) => {
            eprintln!("{msg}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &Args) -> Result<(), Failure> {
    let path = args
        .passwd
        .as_deref()
        .unwrap_or(Path::new(passwd::DEFAULT_PATH));
    passwd::validate_username(&args.username)?;
    if args.lock || args.unlock || args.delete {
        return edit(path, args);
    }
    if let Some(g) = &args.groupname {
        passwd::validate_group_field(g)?;
    }
    let password = read_password()?;
    let hashed = passwd::hash_password(&password);
    wipe(password);
    let hash = hashed?;

    let lock = PasswdLock::acquire(path)?;
    let mut file = match lock.load() {
        Ok(f) => f,
        Err(PasswdError::NotFound { .. }) => PasswdFile::empty(path),
        Err(e) => return Err(e.into()),
    };
    let group_field = match (&args.groupname, file.find(&args.username)) {
        (Some(g), _) => g.clone(),
        (None, _) => file.group_field(&args.username).unwrap_or("*").to_string(),
    };
    file.set_line(&args.username, &group_field, &hash)?;
    lock.commit(&file)?;
    Ok(())
}

/// -l, -u, -d: the file must exist.
fn edit(path: &Path, args: &Args) -> Result<(), Failure> {
    // Report a missing file as ocpasswd does, before trying to create the lock beside it.
    if let Err(e) = std::fs::metadata(path) {
        if e.kind() == io::ErrorKind::NotFound {
            let path = path.to_path_buf();
            return Err(PasswdError::NotFound { path }.into());
        }
    }
    let lock = PasswdLock::acquire(path)?;
    let mut file = lock.load()?;
    let user = args.username.as_str();
    let found = if args.lock {
        file.lock(user)
    } else if args.unlock {
        file.unlock(user)
    } else {
        file.remove(user)
    };
    if !found {
        // ocpasswd succeeds silently here; say so, but keep the exit status.
        eprintln!("user '{user}' is not in '{}'", path.display());
        return Ok(());
    }
    lock.commit(&file)?;
    Ok(())
}

fn no_password() -> Failure {
    Failure("Please specify a password".to_string())
}

fn read_password() -> Result<String, Failure> {
    if io::stdin().is_terminal() {
        read_password_terminal()
    } else {
        let line = read_line(&mut io::stdin().lock())?.ok_or_else(no_password)?;
        if line.is_empty() {
            return Err(no_password());
        }
        Ok(line)
    }
}

/// Asks twice on the controlling terminal (stdin and stderr when there is none), echo off.
fn read_password_terminal() -> Result<String, Failure> {
    let tty = OpenOptions::new().read(true).write(true).open("/dev/tty");
    match tty {
        Ok(tty) => {
            let mut reader: &File = &tty;
            let mut writer: &File = &tty;
            ask_twice(&tty, &mut reader, &mut writer)
        }
        Err(_) => {
            let stdin = io::stdin();
            ask_twice(&stdin, &mut stdin.lock(), &mut io::stderr())
        }
    }
}

fn ask_twice(
    term: &impl AsFd,
    input: &mut impl Read,
    prompt: &mut impl Write,
) -> Result<String, Failure> {
    let _echo = EchoOff::new(term);
    let first = ask(input, prompt, "Enter password: ")?;
    let second = match ask(input, prompt, "Re-enter password: ") {
        Ok(s) => s,
        Err(e) => {
            wipe(first);
            return Err(e);
        }
    };
    let same = first == second;
    wipe(second);
    if !same {
        wipe(first);
        return Err(Failure("Passwords do not match".to_string()));
    }
    if first.is_empty() {
        return Err(no_password());
    }
    Ok(first)
}

fn ask(input: &mut impl Read, prompt: &mut impl Write, text: &str) -> Result<String, Failure> {
    let _ = prompt.write_all(text.as_bytes());
    let _ = prompt.flush();
    let line = read_line(input);
    // The newline the user typed was not echoed.
    let _ = prompt.write_all(b"\n");
    let _ = prompt.flush();
    let line = line?.ok_or_else(no_password)?;
    // With ISIG off, Ctrl-C arrives as a character: treat it as an interrupt.
    if line.contains('\u{3}') {
        wipe(line);
        return Err(Failure("Interrupted".to_string()));
    }
    Ok(line)
}

/// One line without its `\n` (a `\r` stays, as in ocpasswd); `None` at end of input.
/// Reads byte by byte so nothing past the line is consumed.
fn read_line(input: &mut impl Read) -> Result<Option<String>, Failure> {
    let mut buf: Vec<u8> = Vec::new();
    let mut byte = [0u8; 1];
    let mut too_long = false;
    let mut seen_any = false;
    loop {
        match input.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => {
                seen_any = true;
                if byte[0] == b'\n' {
                    break;
                }
                if buf.len() < MAX_PASSWORD_BYTES {
                    buf.push(byte[0]);
                } else {
                    too_long = true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                wipe_bytes(buf);
                return Err(Failure(format!("Cannot read the password: {e}")));
            }
        }
    }
    if too_long {
        wipe_bytes(buf);
        return Err(PasswdError::PasswordTooLong.into());
    }
    if !seen_any {
        return Ok(None);
    }
    match String::from_utf8(buf) {
        Ok(s) => Ok(Some(s)),
        Err(e) => {
            wipe_bytes(e.into_bytes());
            Err(Failure("The password is not valid UTF-8".to_string()))
        }
    }
}

/// Echo (and signal keys, like getpass(3)) off until dropped.
struct EchoOff<'a, F: AsFd> {
    term: &'a F,
    saved: Option<Termios>,
}

impl<'a, F: AsFd> EchoOff<'a, F> {
    fn new(term: &'a F) -> Self {
        let saved = termios::tcgetattr(term.as_fd()).ok();
        if let Some(orig) = &saved {
            let mut quiet = orig.clone();
            quiet
                .local_flags
                .remove(LocalFlags::ECHO | LocalFlags::ISIG);
            let _ = termios::tcsetattr(term.as_fd(), SetArg::TCSAFLUSH, &quiet);
        }
        EchoOff { term, saved }
    }
}

impl<F: AsFd> Drop for EchoOff<'_, F> {
    fn drop(&mut self) {
        if let Some(orig) = &self.saved {
            let _ = termios::tcsetattr(self.term.as_fd(), SetArg::TCSAFLUSH, orig);
        }
    }
}

/// Best-effort overwrite of a secret before its memory is freed.
fn wipe(s: String) {
    wipe_bytes(s.into_bytes());
}

fn wipe_bytes(mut v: Vec<u8>) {
    v.fill(0);
    std::hint::black_box(&v);
}
