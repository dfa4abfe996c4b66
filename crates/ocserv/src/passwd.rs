//! The `plain` authentication password file, as written by `ocpasswd` and read by ocserv's
//! `plain[passwd=...]` method.
//!
//! One entry per line: `username:group1,group2:password-hash`.
//!
//! - The group field is a comma-separated list; whitespace around each name is dropped and
//!   names of one byte (`*`, `x`) are ignored, so `*` (what `ocpasswd` writes without `-g`)
//!   and an empty field both mean "no group". At most [`MAX_GROUPS`] groups count.
//! - The hash is a crypt(3) string. SHA-256-crypt (`$5$`, what `ocpasswd` writes) and
//!   SHA-512-crypt (`$6$`), with or without `rounds=`, are verified. A hash starting with
//!   `!` is a locked account. Anything after a fourth `:` is ignored, as ocserv does.
//! - The first line naming a user is the one that counts.
//! - Blank lines and lines starting with `#` are kept but ignored. ocserv itself has no comment
//!   syntax (it ignores every line that does not parse as an entry); here any other malformed line is an
//!   error naming the file and line, so a typo cannot silently lock a user out.
//!
//! Rewrites keep every line that is not touched byte for byte (including `\r\n` endings),
//! and go through `FILE.tmp`, which ocpasswd also uses as its lock file: the temporary file is
//! created exclusively, written, fsynced and renamed over the original.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where ocserv and ocpasswd look for the file when none is given.
pub const DEFAULT_PATH: &str = "/etc/ocserv/ocpasswd";
/// Largest password file read (ocserv reads the whole file at every login).
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Longest line accepted, line ending excluded.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// ocserv keeps user names in a 64-byte buffer (63 bytes and a NUL).
pub const MAX_USERNAME_BYTES: usize = 63;
/// ocserv keeps at most this many groups per user.
pub const MAX_GROUPS: usize = 32;
/// Longest password hashed or verified. SHA-crypt costs grow with the square of the password
/// length, so an unbounded password is a denial of service.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Everything that can go wrong reading, changing or writing a password file.
#[derive(Debug, thiserror::Error)]
pub enum PasswdError {
    #[error("Cannot open '{}' for reading: no such file", path.display())]
    NotFound { path: PathBuf },
    #[error("Cannot open '{}' for reading: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("Cannot open '{}' for reading: not a regular file", path.display())]
    NotRegular { path: PathBuf },
    #[error("Cannot open '{}' for writing: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("Cannot write to '{}': {source}", path.display())]
    Replace { path: PathBuf, source: io::Error },
    #[error(
        "file '{}' is locked: '{}' exists (remove it if no other ocpasswd is running)",
        path.display(),
        tmp.display()
    )]
    Locked { path: PathBuf, tmp: PathBuf },
    #[error("'{}' is larger than {limit} bytes; refusing to read it", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{}:{line}: {reason}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("invalid user name {user:?}: {reason}")]
    InvalidUsername { user: String, reason: &'static str },
    #[error("invalid group {group:?}: {reason}")]
    InvalidGroup { group: String, reason: &'static str },
    #[error("invalid password hash: {reason}")]
    InvalidHash { reason: &'static str },
    #[error("the new line for user {user:?} would be longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong { user: String },
    #[error("the password is longer than {MAX_PASSWORD_BYTES} bytes")]
    PasswordTooLong,
    #[error("the password is empty")]
    EmptyPassword,
    #[error("cannot generate a salt: {0}")]
    Random(#[from] openssl::error::ErrorStack),
}

/// One user of the file, as ocserv sees it.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub user: String,
    /// Effective groups: trimmed, one-byte names dropped, at most [`MAX_GROUPS`].
    pub groups: Vec<String>,
    /// The crypt(3) string; `!` in front when locked; may be empty.
    pub hash: String,
}

impl fmt::Debug for PasswdEntry {
    // The hash stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswdEntry")
            .field("user", &self.user)
            .field("groups", &self.groups)
            .field("locked", &self.is_locked())
            .finish_non_exhaustive()
    }
}

impl PasswdEntry {
    /// Locked by `ocpasswd -l` (a `!` in front of the hash).
    pub fn is_locked(&self) -> bool {
        self.hash.starts_with('!')
    }

    /// Whether the entry has a password at all. ocserv lets an empty password field stand
    /// for "OTP only"; [`check_plain`] reports such users as [`PlainAuth::NoPasswordSet`].
    pub fn has_password(&self) -> bool {
        !self.hash.is_empty()
    }

    /// The group field ocpasswd would write for these groups: the names joined by `,`, or
    /// `*` for none.
    pub fn group_field(&self) -> String {
        if self.groups.is_empty() {
            "*".to_string()
        } else {
            self.groups.join(",")
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    /// A user line; `raw` is the text as it stands in the file (without `\n`).
    Entry { raw: String, entry: PasswdEntry },
    /// Blank line or comment, kept verbatim.
    Other(String),
}

/// A password file in memory: its entries and the lines around them.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswdFile {
    pub path: PathBuf,
    lines: Vec<Line>,
}

impl fmt::Debug for PasswdFile {
    // Users only: hashes stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswdFile")
            .field("path", &self.path)
            .field("lines", &self.lines.len())
            .field(
                "users",
                &self.entries().map(|e| &e.user).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl PasswdFile {
    /// A file with no lines yet (saving it creates the file).
    pub fn empty(path: &Path) -> Self {
        PasswdFile {
            path: path.to_path_buf(),
            lines: Vec::new(),
        }
    }

    /// Reads and parses `path`. A missing file is [`PasswdError::NotFound`].
    pub fn load(path: &Path) -> Result<Self, PasswdError> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(PasswdError::NotFound {
                    path: path.to_path_buf(),
                })
            }
            Err(source) => {
                return Err(PasswdError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let read_err = |source| PasswdError::Read {
            path: path.to_path_buf(),
            source,
        };
        let meta = file.metadata().map_err(read_err)?;
        if !meta.is_file() {
            return Err(PasswdError::NotRegular {
                path: path.to_path_buf(),
            });
        }
        let too_large = || PasswdError::TooLarge {
            path: path.to_path_buf(),
            limit: MAX_FILE_BYTES,
        };
        if meta.len() > MAX_FILE_BYTES {
            return Err(too_large());
        }
        let mut buf = Vec::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut buf)
            .map_err(read_err)?;
        if buf.len() as u64 > MAX_FILE_BYTES {
            return Err(too_large());
        }
        match String::from_utf8(buf) {
            Ok(text) => Self::parse(&text, path),
            Err(e) => {
                let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
                Err(PasswdError::Parse {
                    path: path.to_path_buf(),
                    line,
                    reason: "not valid UTF-8".to_string(),
                })
            }
        }
    }

    /// Parses the text of a password file; `path` is where it came from (for errors, and
    /// where [`save`](Self::save) writes).
    pub fn parse(text: &str, path: &Path) -> Result<Self, PasswdError> {
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(PasswdError::TooLarge {
                path: path.to_path_buf(),
                limit: MAX_FILE_BYTES,
            });
        }
        let body = text.strip_suffix('\n').unwrap_or(text);
        let mut lines = Vec::new();
        if !text.is_empty() {
            for (index, raw) in body.split('\n').enumerate() {
                let line = parse_line(raw).map_err(|reason| PasswdError::Parse {
                    path: path.to_path_buf(),
                    line: index + 1,
                    reason,
                })?;
                lines.push(line);
            }
        }
        Ok(PasswdFile {
            path: path.to_path_buf(),
            lines,
        })
    }

    /// The entries in file order (duplicates included).
    pub fn entries(&self) -> impl Iterator<Item = &PasswdEntry> {
        self.lines.iter().filter_map(|l| match l {
            Line::Entry { entry, .. } => Some(entry),
            Line::Other(_) => None,
        })
    }

    /// The entry that counts for `user`: the first one.
    pub fn find(&self, user: &str) -> Option<&PasswdEntry> {
        self.entries().find(|e| e.user == user)
    }

    /// The group field of `user`'s line as written (`"a, b"`, `"*"`, ...).
    pub fn group_field(&self, user: &str) -> Option<&str> {
        self.lines.iter().find_map(|l| match l {
            Line::Entry { raw, entry } if entry.user == user => raw.split(':').nth(1),
            _ => None,
        })
    }

    /// Every group named in the file, once each, in order of first appearance (ocserv's
    /// `select-group` list for the plain method).
    pub fn all_groups(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for entry in self.entries() {
            for g in &entry.groups {
                if !out.contains(g) {
                    out.push(g.clone());
                }
            }
        }
        out
    }

    /// Adds `entry`, or replaces the user's line (later duplicates of the user are dropped).
    /// Groups are written joined by `,`, `*` when there are none.
    pub fn set(&mut self, entry: PasswdEntry) -> Result<(), PasswdError> {
        for g in &entry.groups {
            validate_group_name(g)?;
        }
        self.set_line(&entry.user, &entry.group_field(), &entry.hash)
    }

    /// Like [`set`](Self::set) with the group field given verbatim, as `ocpasswd -g` does
    /// (`"a, b"` is written as is).
    pub fn set_line(
        &mut self,
        user: &str,
        group_field: &str,
        hash: &str,
    ) -> Result<(), PasswdError> {
        validate_username(user)?;
        validate_group_field(group_field)?;
        validate_hash(hash)?;
        let raw = format!("{user}:{group_field}:{hash}");
        if raw.len() > MAX_LINE_BYTES {
            return Err(PasswdError::LineTooLong {
                user: user.to_string(),
            });
        }
        let entry = PasswdEntry {
            user: user.to_string(),
            groups: parse_groups(group_field),
            hash: hash.to_string(),
        };
        let new = Line::Entry { raw, entry };
        match self.position(user) {
            Some(first) => {
                self.lines[first] = new;
                let mut index = 0;
                self.lines.retain(|l| {
                    let keep = index <= first || !is_user_line(l, user);
                    index += 1;
                    keep
                });
            }
            None => self.lines.push(new),
        }
        Ok(())
    }

    /// Removes every line of `user`; false when there was none.
    pub fn remove(&mut self, user: &str) -> bool {
        let before = self.lines.len();
        self.lines.retain(|l| !is_user_line(l, user));
        self.lines.len() != before
    }

    /// Locks `user` by putting `!` in front of the hash, once (as ocpasswd 1.1 does).
    /// Returns false when the user is not in the file. Applies to every line of the user.
    pub fn lock(&mut self, user: &str) -> bool {
        self.edit_hash(user, |raw, start| {
            if !raw[start..].starts_with('!') {
                raw.insert(start, '!');
            }
        })
    }

    /// Removes one leading `!` from the hash of `user`. False when the user is not in the file.
    pub fn unlock(&mut self, user: &str) -> bool {
        self.edit_hash(user, |raw, start| {
            if raw[start..].starts_with('!') {
                raw.remove(start);
            }
        })
    }

    /// The file's text as [`save`](Self::save) writes it: every line ends in `\n`.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            match line {
                Line::Entry { raw, .. } | Line::Other(raw) => out.push_str(raw),
            }
            out.push('\n');
        }
        out
    }

    /// Writes the file atomically (see [`PasswdLock`]): a new file is mode 0600, an existing
    /// one keeps its mode and, when we are allowed to, its owner.
    pub fn save(&self) -> Result<(), PasswdError> {
        PasswdLock::acquire(&self.path)?.commit(self)
    }

    fn position(&self, user: &str) -> Option<usize> {
        self.lines.iter().position(|l| is_user_line(l, user))
    }

    fn edit_hash(&mut self, user: &str, edit: impl Fn(&mut String, usize)) -> bool {
        let mut found = false;
        for line in &mut self.lines {
            let Line::Entry { raw, entry } = line else {
                continue;
            };
            if entry.user != user {
                continue;
            }
            found = true;
            // Entries always have two colons; the hash starts after the second.
            let Some(start) = nth_colon_end(raw, 2) else {
                continue;
            };
            edit(raw, start);
            if let Ok(Line::Entry { entry: fresh, .. }) = parse_line(raw) {
                *entry = fresh;
            }
        }
        found
    }
}

fn is_user_line(line: &Line, user: &str) -> bool {
    matches!(line, Line::Entry { entry, .. } if entry.user == user)
}

/// Byte index just past the `n`th colon of `s`.
fn nth_colon_end(s: &str, n: usize) -> Option<usize> {
    s.match_indices(':').nth(n - 1).map(|(i, _)| i + 1)
}

fn parse_line(raw: &str) -> Result<Line, String> {
    if raw.len() > MAX_LINE_BYTES {
        return Err(format!("line longer than {MAX_LINE_BYTES} bytes"));
    }
    if raw.contains('\0') {
        return Err("NUL byte in line".to_string());
    }
    let content = raw.strip_suffix('\r').unwrap_or(raw);
    let trimmed = content.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(Line::Other(raw.to_string()));
    }
    let mut fields = content.splitn(4, ':');
    let (Some(user), Some(group_field), Some(hash)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err("expected 'username:groups:password-hash'".to_string());
    };
    if let Err(e) = check_username(user) {
        return Err(format!("user name {user:?}: {e}"));
    }
    Ok(Line::Entry {
        raw: raw.to_string(),
        entry: PasswdEntry {
            user: user.to_string(),
            groups: parse_groups(group_field),
            hash: hash.to_string(),
        },
    })
}

/// ocserv's reading of the group field.
fn parse_groups(field: &str) -> Vec<String> {
    field
        .split(',')
        .map(str::trim)
        .filter(|g| g.len() > 1)
        .take(MAX_GROUPS)
        .map(str::to_string)
        .collect()
}

fn check_username(user: &str) -> Result<(), &'static str> {
    if user.is_empty() {
        return Err("empty");
    }
    if user.len() > MAX_USERNAME_BYTES {
        return Err("longer than 63 bytes (ocserv's limit)");
    }
    if user.contains(':') {
        return Err("contains ':'");
    }
    if user.chars().any(char::is_control) {
        return Err("contains a control character");
    }
    if user.trim_start().starts_with('#') {
        return Err("starts with '#' (a comment in this file)");
    }
    Ok(())
}

/// Whether `user` can be stored in the file: not empty, at most 63 bytes, no `:`, no
/// control characters, no leading `#`.
pub fn validate_username(user: &str) -> Result<(), PasswdError> {
    check_username(user).map_err(|reason| PasswdError::InvalidUsername {
        user: user.to_string(),
        reason,
    })
}

/// Whether `field` can be written as a group field (the `-g` argument of ocpasswd).
pub fn validate_group_field(field: &str) -> Result<(), PasswdError> {
    let bad = |reason| {
        Err(PasswdError::InvalidGroup {
            group: field.to_string(),
            reason,
        })
    };
    if field.contains(':') {
        return bad("contains ':'");
    }
    if field.chars().any(char::is_control) {
        return bad("contains a control character");
    }
    Ok(())
}

fn validate_group_name(group: &str) -> Result<(), PasswdError> {
    let bad = |reason| {
        Err(PasswdError::InvalidGroup {
            group: group.to_string(),
            reason,
        })
    };
    if group.contains(',') {
        return bad("contains ','");
    }
    if group.trim() != group {
        return bad("has leading or trailing white space");
    }
    if group.len() < 2 {
        return bad("ocserv ignores group names shorter than two bytes");
    }
    validate_group_field(group)
}

fn validate_hash(hash: &str) -> Result<(), PasswdError> {
    if hash.contains(':') {
        return Err(PasswdError::InvalidHash {
            reason: "contains ':'",
        });
    }
    if hash.chars().any(char::is_control) {
        return Err(PasswdError::InvalidHash {
            reason: "contains a control character",
        });
    }
    Ok(())
}

/// An exclusive claim on rewriting a password file: `FILE.tmp`, created with `O_EXCL`, the
/// same lock file ocpasswd uses. Load after acquiring, change, then [`commit`](Self::commit);
/// dropping without committing removes the temporary file.
#[derive(Debug)]
pub struct PasswdLock {
    path: PathBuf,
    tmp_path: PathBuf,
    tmp: Option<File>,
}

impl PasswdLock {
    /// Creates `path` + `.tmp` (mode 0600); [`PasswdError::Locked`] if it already exists.
    pub fn acquire(path: &Path) -> Result<Self, PasswdError> {
        let tmp_path = sibling(path, ".tmp");
        let tmp = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp_path);
        match tmp {
            Ok(f) => Ok(PasswdLock {
                path: path.to_path_buf(),
                tmp_path,
                tmp: Some(f),
            }),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(PasswdError::Locked {
                path: path.to_path_buf(),
                tmp: tmp_path,
            }),
            Err(source) => Err(PasswdError::Write {
                path: tmp_path,
                source,
            }),
        }
    }

    /// The file this lock guards.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the guarded file.
    pub fn load(&self) -> Result<PasswdFile, PasswdError> {
        PasswdFile::load(&self.path)
    }

    /// Writes `contents` to the temporary file, copies the old file's mode (and owner, where
    /// permitted), fsyncs and renames it over the guarded path.
    pub fn commit(mut self, contents: &PasswdFile) -> Result<(), PasswdError> {
        let Some(tmp) = self.tmp.as_mut() else {
            return Err(PasswdError::Write {
                path: self.tmp_path.clone(),
                source: io::Error::other("lock already released"),
            });
        };
        replace_file(
            tmp,
            &self.tmp_path,
            &self.path,
            contents.to_text().as_bytes(),
        )?;
        self.tmp = None;
        Ok(())
    }
}

/// `path` with `suffix` appended to its file name (`FILE.tmp`, `FILE.lock`, ...).
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// Finishes replacing `path` with `contents` through the temporary file `tmp` (already
/// created next to it): writes, copies the old file's mode (and owner, where permitted),
/// fsyncs and renames it over `path`, then makes the rename durable.
pub(crate) fn replace_file(
    tmp: &mut File,
    tmp_path: &Path,
    path: &Path,
    contents: &[u8],
) -> Result<(), PasswdError> {
    let write_err = |source| PasswdError::Write {
        path: tmp_path.to_path_buf(),
        source,
    };
    tmp.write_all(contents).map_err(write_err)?;
    if let Ok(old) = fs::metadata(path) {
        tmp.set_permissions(fs::Permissions::from_mode(old.mode() & 0o7777))
            .map_err(write_err)?;
        let mine = tmp.metadata().map_err(write_err)?;
        if mine.uid() != old.uid() || mine.gid() != old.gid() {
            // Root editing a file owned by the server's user keeps that owner; anyone
            // else cannot give files away and keeps the file as their own.
            match std::os::unix::fs::fchown(&*tmp, Some(old.uid()), Some(old.gid())) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
                Err(e) => return Err(write_err(e)),
            }
            // chown may clear set-id bits; restore the mode.
            tmp.set_permissions(fs::Permissions::from_mode(old.mode() & 0o7777))
                .map_err(write_err)?;
        }
    }
    tmp.sync_all().map_err(write_err)?;
    fs::rename(tmp_path, path).map_err(|source| PasswdError::Replace {
        path: path.to_path_buf(),
        source,
    })?;
    // Make the rename durable; some file systems cannot fsync a directory.
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

impl Drop for PasswdLock {
    fn drop(&mut self) {
        if self.tmp.take().is_some() {
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}

// ---------------------------------------------------------------------------------------
// SHA-crypt

/// crypt(3)'s base-64 alphabet.
const CRYPT_B64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const DEFAULT_ROUNDS: u32 = 5000;
const MIN_ROUNDS: u32 = 1000;
const MAX_ROUNDS: u32 = 999_999_999;
const SALT_MAX: usize = 16;
/// The salt of the dummy setting (16 characters, the most any SHA-crypt salt counts).
const DUMMY_SALT: &str = "ferroconnectdumm";

/// Output byte order of SHA-256-crypt, as (high, middle, low) triples of digest indexes.
const SHA256_ORDER: [(usize, usize, usize); 10] = [
    (0, 10, 20),
    (21, 1, 11),
    (12, 22, 2),
    (3, 13, 23),
    (24, 4, 14),
    (15, 25, 5),
    (6, 16, 26),
    (27, 7, 17),
    (18, 28, 8),
    (9, 19, 29),
];

/// Output byte order of SHA-512-crypt.
const SHA512_ORDER: [(usize, usize, usize); 21] = [
    (0, 21, 42),
    (22, 43, 1),
    (44, 2, 23),
    (3, 24, 45),
    (25, 46, 4),
    (47, 5, 26),
    (6, 27, 48),
    (28, 49, 7),
    (50, 8, 29),
    (9, 30, 51),
    (31, 52, 10),
    (53, 11, 32),
    (12, 33, 54),
    (34, 55, 13),
    (56, 14, 35),
    (15, 36, 57),
    (37, 58, 16),
    (59, 17, 38),
    (18, 39, 60),
    (40, 61, 19),
    (62, 20, 41),
];

fn push_b64(out: &mut String, high: u8, mid: u8, low: u8, chars: usize) {
    let mut w = (u32::from(high) << 16) | (u32::from(mid) << 8) | u32::from(low);
    for _ in 0..chars {
        out.push(char::from(CRYPT_B64[(w & 0x3f) as usize]));
        w >>= 6;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Sha256,
    Sha512,
}

/// A parsed `$5$[rounds=N$]salt[$...]` prefix.
#[derive(Debug)]
struct Setting<'a> {
    scheme: Scheme,
    rounds: Option<u32>,
    salt: &'a str,
}

/// libxcrypt's reading of a SHA-crypt setting: printable ASCII without `!*:;\`, rounds in
/// 1000..=999999999 without leading zeros (never clamped), salt up to the next `$`, of which
/// the first 16 characters count.
fn parse_setting(setting: &str) -> Option<Setting<'_>> {
    if setting
        .bytes()
        .any(|b| b <= b' ' || b >= 0x7f || b"!*:;\\".contains(&b))
    {
        return None;
    }
    let (scheme, mut rest) = if let Some(r) = setting.strip_prefix("$5$") {
        (Scheme::Sha256, r)
    } else if let Some(r) = setting.strip_prefix("$6$") {
        (Scheme::Sha512, r)
    } else {
        return None;
    };
    let mut rounds = None;
    if let Some(r) = rest.strip_prefix("rounds=") {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        let (num, after) = r.split_at(digits);
        if num.is_empty() || num.starts_with('0') {
            return None;
        }
        let after = after.strip_prefix('$')?;
        let n: u32 = num.parse().ok()?;
        if !(MIN_ROUNDS..=MAX_ROUNDS).contains(&n) {
            return None;
        }
        rounds = Some(n);
        rest = after;
    }
    let salt = rest.split('$').next().unwrap_or("");
    // ASCII only (checked above), so byte slicing is on a character boundary.
    let salt = &salt[..salt.len().min(SALT_MAX)];
    Some(Setting {
        scheme,
        rounds,
        salt,
    })
}

/// crypt(3) for SHA-256-crypt (`$5$`) and SHA-512-crypt (`$6$`), as libxcrypt computes it:
/// the full hash string for `password` under `setting` (a salt or a whole hash), or `None`
/// for a setting libxcrypt refuses or a scheme other than these two.
pub fn sha_crypt(password: &[u8], setting: &str) -> Option<String> {
    let s = parse_setting(setting)?;
    let rounds = s.rounds.unwrap_or(DEFAULT_ROUNDS);
    let params = sha_crypt::Params::new(rounds).ok()?;
    let mut out = String::with_capacity(128);
    out.push_str(match s.scheme {
        Scheme::Sha256 => "$5$",
        Scheme::Sha512 => "$6$",
    });
    if let Some(r) = s.rounds {
        out.push_str(&format!("rounds={r}$"));
    }
    out.push_str(s.salt);
    out.push('$');
    match s.scheme {
        Scheme::Sha256 => {
            let d = sha_crypt::sha256_crypt(password, s.salt.as_bytes(), params);
            for &(h, m, l) in &SHA256_ORDER {
                push_b64(&mut out, d[h], d[m], d[l], 4);
            }
            push_b64(&mut out, 0, d[31], d[30], 3);
        }
        Scheme::Sha512 => {
            let d = sha_crypt::sha512_crypt(password, s.salt.as_bytes(), params);
            for &(h, m, l) in &SHA512_ORDER {
                push_b64(&mut out, d[h], d[m], d[l], 4);
            }
            push_b64(&mut out, 0, 0, d[63], 2);
        }
    }
    Some(out)
}

/// Whether [`verify_password`] can check this hash (`$5$` or `$6$` with a valid setting).
pub fn is_supported_hash(hash: &str) -> bool {
    parse_setting(hash).is_some()
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a, b)
}

/// Checks `password` against a crypt(3) `hash` like ocserv: recompute with the hash as the
/// setting and compare the whole string (in constant time). Locked (`!`), empty and
/// unsupported hashes, and passwords over [`MAX_PASSWORD_BYTES`], never match.
pub fn verify_password(hash: &str, password: &str) -> bool {
    if hash.starts_with('!') || password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    match sha_crypt(password.as_bytes(), hash) {
        Some(computed) => ct_eq(computed.as_bytes(), hash.as_bytes()),
        None => false,
    }
}

/// Hashes `password` the way ocpasswd does: SHA-256-crypt, default rounds, a 16-character
/// random salt (`$5$` + 16 + `$` + 43 characters).
pub fn hash_password(password: &str) -> Result<String, PasswdError> {
    if password.is_empty() {
        return Err(PasswdError::EmptyPassword);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswdError::PasswordTooLong);
    }
    let mut random = [0u8; SALT_MAX];
    openssl::rand::rand_bytes(&mut random)?;
    let mut setting = String::from("$5$");
    for b in random {
        // 256 is a multiple of 64: no bias.
        setting.push(char::from(CRYPT_B64[usize::from(b) % 64]));
    }
    setting.push('$');
    sha_crypt(password.as_bytes(), &setting).ok_or(PasswdError::InvalidHash {
        reason: "internal error: generated setting refused",
    })
}

/// Outcome of a plain (password file) login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlainAuth {
    /// The password matched; the user's groups from the file (possibly none).
    Accepted {
        groups: Vec<String>,
    },
    /// The user's entry has no password (ocserv: the one-time password alone decides).
    NoPasswordSet {
        groups: Vec<String>,
    },
    Rejected,
}

/// Why a plain login was refused, for the server's log (never for the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// Empty, too long, or otherwise not a name the file can hold.
    InvalidUsername,
    UnknownUser,
    Locked,
    /// The entry has an empty password field (ocserv's "OTP only"; not supported).
    NoPassword,
    /// The hash is not `$5$`/`$6$` (or is malformed).
    UnsupportedHash,
    WrongPassword,
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RejectReason::InvalidUsername => "invalid user name",
            RejectReason::UnknownUser => "no such user",
            RejectReason::Locked => "account locked",
            RejectReason::NoPassword => {
                "empty password field (only a one-time password can log this user in)"
            }
            RejectReason::UnsupportedHash => "unsupported password hash (only $5$ and $6$)",
            RejectReason::WrongPassword => "wrong password",
        })
    }
}

/// What a SHA-crypt check costs: the scheme, the rounds (`None` = the default) and the salt
/// length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HashKind {
    scheme: Scheme,
    rounds: Option<u32>,
    salt_len: usize,
}

impl PasswdFile {
    /// The setting a login that cannot succeed (unknown user, locked account, ...) is hashed
    /// with, so it costs what checking a real entry of this file costs: the scheme (`$5$` or
    /// `$6$`), rounds and salt length shared by most of the file's entries (the first of them
    /// on a tie), with a fixed salt. A file without a usable hash gets ocpasswd's kind:
    /// `$5$`, default rounds, a 16-character salt.
    pub fn dummy_setting(&self) -> String {
        // Each kind with its count, in order of first appearance.
        let mut kinds: Vec<(HashKind, usize)> = Vec::new();
        for entry in self.entries() {
            let hash = entry.hash.strip_prefix('!').unwrap_or(&entry.hash);
            let Some(s) = parse_setting(hash) else {
                continue;
            };
            let kind = HashKind {
                scheme: s.scheme,
                rounds: s.rounds,
                salt_len: s.salt.len(),
            };
            match kinds.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, count)) => *count += 1,
                None => kinds.push((kind, 1)),
            }
        }
        // max_by_key keeps the last maximum; iterate in reverse to keep the first.
        let kind = kinds.iter().rev().max_by_key(|(_, count)| *count).map_or(
            HashKind {
                scheme: Scheme::Sha256,
                rounds: None,
                salt_len: SALT_MAX,
            },
            |(kind, _)| *kind,
        );
        let mut setting = String::from(match kind.scheme {
            Scheme::Sha256 => "$5$",
            Scheme::Sha512 => "$6$",
        });
        if let Some(r) = kind.rounds {
            setting.push_str(&format!("rounds={r}$"));
        }
        setting.push_str(&DUMMY_SALT[..kind.salt_len.min(SALT_MAX)]);
        setting.push('$');
        setting
    }
}

/// Spends the same work as checking a real entry of `file`, so the reply time does not tell
/// whether a user exists.
fn dummy_hash(file: &PasswdFile, password: &str) {
    let pw = &password.as_bytes()[..password.len().min(MAX_PASSWORD_BYTES)];
    let setting = file.dummy_setting();
    std::hint::black_box(sha_crypt(std::hint::black_box(pw), &setting));
}

/// [`check_plain`] with the reason for a refusal.
pub fn check_plain_reason(
    file: &PasswdFile,
    user: &str,
    password: &str,
) -> Result<Vec<String>, RejectReason> {
    if password.len() > MAX_PASSWORD_BYTES {
        // Refused on length alone, whoever the user is.
        return Err(RejectReason::WrongPassword);
    }
    let refuse = |reason| {
        dummy_hash(file, password);
        Err(reason)
    };
    if check_username(user).is_err() {
        return refuse(RejectReason::InvalidUsername);
    }
    let Some(entry) = file.find(user) else {
        return refuse(RejectReason::UnknownUser);
    };
    if !entry.has_password() {
        return refuse(RejectReason::NoPassword);
    }
    if entry.is_locked() {
        return refuse(RejectReason::Locked);
    }
    if !is_supported_hash(&entry.hash) {
        return refuse(RejectReason::UnsupportedHash);
    }
    if verify_password(&entry.hash, password) {
        Ok(entry.groups.clone())
    } else {
        Err(RejectReason::WrongPassword)
    }
}

/// A plain login: the user's first entry, its password checked. An unknown user costs one
/// hash computation like a known one.
pub fn check_plain(file: &PasswdFile, user: &str, password: &str) -> PlainAuth {
    match check_plain_reason(file, user, password) {
        Ok(groups) => PlainAuth::Accepted { groups },
        Err(RejectReason::NoPassword) => match file.find(user) {
            Some(entry) => PlainAuth::NoPasswordSet {
                groups: entry.groups.clone(),
            },
            None => PlainAuth::Rejected,
        },
        Err(_) => PlainAuth::Rejected,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use proptest::prelude::*;

    fn p() -> &'static Path {
        Path::new("/etc/ocserv/ocpasswd")
    }

    fn parse(text: &str) -> PasswdFile {
        PasswdFile::parse(text, p()).unwrap()
    }

    fn parse_err(text: &str) -> (usize, String) {
        match PasswdFile::parse(text, p()) {
            Err(PasswdError::Parse { line, reason, .. }) => (line, reason),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    /// Vectors from libxcrypt 4.4.33 (perl's crypt()) and the real ocpasswd 1.1.6.
    const VECTORS: &[(&str, &str, &str)] = &[
        (
            "pw",
            "$5$saltsalt",
            "$5$saltsalt$0rl.MZtoLLPP3X0Rdl8riRnphIcAXJY27/aOAyK2hB5",
        ),
        (
            "pw",
            "$5$rounds=1000$saltsalt",
            "$5$rounds=1000$saltsalt$eNI.02a9Kos9UxzxjTLpNZ6kYHkRe9Z8OsGkDDoW/X2",
        ),
        (
            "pw",
            "$5$rounds=5000$saltsalt",
            "$5$rounds=5000$saltsalt$0rl.MZtoLLPP3X0Rdl8riRnphIcAXJY27/aOAyK2hB5",
        ),
        (
            "pw",
            "$6$saltsalt",
            "$6$saltsalt$pauPrmdmG4BTE9h2HPmywiw152IFch6BJCEsaY6D.PLTfpV8sqvXwWdyfsgVgozkYH9B80bAip/08R2BPH2xk/",
        ),
        (
            "pw",
            "$6$rounds=1000$abc$",
            "$6$rounds=1000$abc$yxe0KSjmoHd8rpohJgwvF5lnIQ/9t.klcz24a1cca3nWm.PLUmhXgcGgKWCoRFHRHYxXj4SVEtjCnCAwaFY0V0",
        ),
        (
            "pw",
            "$5$",
            "$5$$EPxZX4DoQWu4KoghxUArtr9dmHmQzOXFqq.aJMdG0bA",
        ),
        (
            "pw",
            "$6$",
            "$6$$Z7WSO9A8tKGD2oGB9t2ViKdYTIHgnjMZIbdOJElGnO.QoZE5zDsfnF1WHM.IL2KPxhNG4/v/zU9LBcGhxg5Uy.",
        ),
        (
            "pw",
            "$5$saltsaltsaltsaltsalt$xx",
            "$5$saltsaltsaltsalt$zjTLfLaH9duFBTcEYa3b3d99z3jRlh2J6dtAKvgBfX3",
        ),
        (
            "pw",
            "$5$saltsalt-$",
            "$5$saltsalt-$seoZVYAFcXa9Bn82xRoUk1MDzmhK0iKmkGRsx/MbyIA",
        ),
        (
            "Hello world!",
            "$5$saltstring",
            "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5",
        ),
        (
            "Hello world!",
            "$5$rounds=10000$saltstringsaltstring",
            "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA",
        ),
        (
            "Hello world!",
            "$6$saltstring",
            "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
        ),
        (
            "Hello world!",
            "$6$rounds=10000$saltstringsaltstring",
            "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.",
        ),
        (
            "pässwörd",
            "$5$abcdefgh",
            "$5$abcdefgh$vl6a2mAodUYEe3Mhai26AyjORet86eVRC5bBAu6c/n9",
        ),
        (
            "pw",
            "$5$5VdqfNK0gTflK7ao$",
            "$5$5VdqfNK0gTflK7ao$F.eoZYGMOfie96DS2MwfAkZeR48/ivztjT8DHibvPA7",
        ),
    ];

    #[test]
    fn crypt_matches_libxcrypt() {
        for (pw, setting, want) in VECTORS {
            assert_eq!(
                sha_crypt(pw.as_bytes(), setting).as_deref(),
                Some(*want),
                "{setting}"
            );
            assert!(verify_password(want, pw), "{want}");
            assert!(!verify_password(want, "wrong"), "{want}");
        }
    }

    #[test]
    fn long_password_vector() {
        let pw = "x".repeat(300);
        let want = "$6$longpw$hZJW8sZ2wd64Nf7uz82quTRLSkyiF3YAC/bFiFfrc96kyzcIbrB7xMP1LULFNAoEnn5VFrqSusPRchFjYpbbS1";
        assert!(verify_password(want, &pw));
        assert!(!verify_password(want, &"x".repeat(299)));
    }

    #[test]
    fn settings_libxcrypt_refuses() {
        for s in [
            "$5$rounds=10$saltsalt",
            "$5$rounds=01000$saltsalt",
            "$5$rounds=1000000000$ab",
            "$5$rounds=4294967297$ab",
            "$5$rounds=+1000$ab",
            "$5$rounds=$abc",
            "$5$rounds=1000",
            "$5$sa!t$",
            "!$5$abc$",
            "$5$ab:c$",
            "$5$ab*c",
            "$5$ab c$",
            "$5$abc$!!!",
            "$5$ab\nc$",
            "$1$abc$",
            "$y$j9T$abc$",
            "$2b$10$abc",
            "abc",
            "",
        ] {
            assert_eq!(sha_crypt(b"pw", s), None, "{s:?}");
            assert!(!is_supported_hash(s), "{s:?}");
            assert!(!verify_password(s, "pw"), "{s:?}");
        }
    }

    #[test]
    fn verify_needs_the_whole_string() {
        let good = "$5$saltsalt$0rl.MZtoLLPP3X0Rdl8riRnphIcAXJY27/aOAyK2hB5";
        assert!(verify_password(good, "pw"));
        // Truncated, extended, or bare setting: never equal to crypt()'s output.
        assert!(!verify_password(&good[..good.len() - 1], "pw"));
        assert!(!verify_password(&format!("{good}x"), "pw"));
        assert!(!verify_password("$5$saltsalt", "pw"));
        assert!(!verify_password("$5$saltsalt$", "pw"));
        // Locked.
        assert!(!verify_password(&format!("!{good}"), "pw"));
        // Over-long password.
        assert!(!verify_password(good, &"p".repeat(MAX_PASSWORD_BYTES + 1)));
    }

    #[test]
    fn hash_password_round_trip() {
        let h = hash_password("s3cret pass").unwrap();
        assert_eq!(h.len(), 3 + 16 + 1 + 43);
        assert!(h.starts_with("$5$"));
        assert_eq!(h.as_bytes()[19], b'$');
        assert!(h[3..19].bytes().all(|b| CRYPT_B64.contains(&b)));
        assert!(verify_password(&h, "s3cret pass"));
        assert!(!verify_password(&h, "s3cret pas"));
        assert_ne!(h, hash_password("s3cret pass").unwrap(), "salt is random");
        assert!(matches!(hash_password(""), Err(PasswdError::EmptyPassword)));
        assert!(matches!(
            hash_password(&"a".repeat(MAX_PASSWORD_BYTES + 1)),
            Err(PasswdError::PasswordTooLong)
        ));
        assert!(hash_password(&"a".repeat(MAX_PASSWORD_BYTES)).is_ok());
    }

    #[test]
    fn parse_entries_and_groups() {
        let f = parse(
            "alice:*:$5$a$b\n\
             bob:admins,users:$6$x$y\n\
             carol:a, b ,  staff ,x,,*:h\n\
             dave::\n\
             eve:g1:h:extra:fields\r\n\
             # a comment: with colons\n\
             \n   \n\
             alice:dup:second\n",
        );
        let users: Vec<_> = f.entries().map(|e| e.user.as_str()).collect();
        assert_eq!(users, ["alice", "bob", "carol", "dave", "eve", "alice"]);
        assert_eq!(f.find("alice").unwrap().groups, Vec::<String>::new());
        assert_eq!(f.find("alice").unwrap().hash, "$5$a$b", "first line counts");
        assert_eq!(f.find("bob").unwrap().groups, ["admins", "users"]);
        assert_eq!(f.find("carol").unwrap().groups, ["staff"]);
        let dave = f.find("dave").unwrap();
        assert!(dave.groups.is_empty() && !dave.has_password());
        let eve = f.find("eve").unwrap();
        assert_eq!(
            (eve.groups.as_slice(), eve.hash.as_str()),
            (&["g1".to_string()][..], "h")
        );
        assert!(f.find("nobody").is_none());
        assert_eq!(f.group_field("carol"), Some("a, b ,  staff ,x,,*"));
        assert_eq!(f.group_field("alice"), Some("*"));
        assert_eq!(f.group_field("nobody"), None);
        assert_eq!(f.all_groups(), ["admins", "users", "staff", "g1", "dup"]);
    }

    #[test]
    fn group_limit() {
        let groups: Vec<String> = (0..40).map(|i| format!("g{i:02}")).collect();
        let f = parse(&format!("u:{}:h\n", groups.join(",")));
        assert_eq!(f.find("u").unwrap().groups, groups[..MAX_GROUPS]);
    }

    #[test]
    fn parse_errors_name_the_line() {
        assert_eq!(parse_err("alice:*:h\nbroken\n").0, 2);
        assert_eq!(parse_err("a:b:c\n\n# x\nonly:one\n").0, 4);
        let (line, reason) = parse_err(":*:h\n");
        assert_eq!(line, 1);
        assert!(reason.contains("empty"), "{reason}");
        let (line, reason) = parse_err(&format!("ok:*:h\n{}:*:h\n", "u".repeat(64)));
        assert_eq!(line, 2);
        assert!(reason.contains("63"), "{reason}");
        assert_eq!(parse_err("a\0b:c:d\n").0, 1);
        assert_eq!(parse_err("a\x01b:c:d\n").0, 1);
        let (line, reason) = parse_err(&format!("a:b:c\n{}\n", "x".repeat(MAX_LINE_BYTES + 1)));
        assert_eq!(line, 2);
        assert!(reason.contains("longer"), "{reason}");
        // The message names file and line.
        let e = PasswdFile::parse("x\n", Path::new("/tmp/pw")).unwrap_err();
        assert!(e.to_string().starts_with("/tmp/pw:1: "), "{e}");
        // Exactly at the limits is fine.
        parse(&format!("{}:*:h\n", "u".repeat(63)));
    }

    #[test]
    fn text_round_trip_keeps_lines() {
        let text = "# users\nalice:a, b:h1\r\n\nbob:*:!h2\n";
        let f = parse(text);
        assert_eq!(f.to_text(), text);
        // A missing final newline is added; an empty file stays empty.
        assert_eq!(parse("a:b:c").to_text(), "a:b:c\n");
        assert_eq!(parse("").to_text(), "");
        assert_eq!(parse("\n").to_text(), "\n");
    }

    #[test]
    fn set_remove_lock_unlock() {
        let mut f = parse("# head\nalice:a, b:h1\r\nbob:*:h2\nalice:x:dup\ncarol:*:h3\n");
        assert!(f.lock("alice"));
        assert!(f.lock("alice"), "locking twice adds one '!'");
        assert_eq!(
            f.to_text(),
            "# head\nalice:a, b:!h1\r\nbob:*:h2\nalice:x:!dup\ncarol:*:h3\n"
        );
        assert!(f.find("alice").unwrap().is_locked());
        assert!(f.unlock("alice"));
        assert!(f.unlock("alice"));
        assert_eq!(
            f.to_text(),
            "# head\nalice:a, b:h1\r\nbob:*:h2\nalice:x:dup\ncarol:*:h3\n"
        );
        assert!(!f.lock("nobody") && !f.unlock("nobody") && !f.remove("nobody"));

        f.set_line("alice", "g1, g2", "new").unwrap();
        assert_eq!(
            f.to_text(),
            "# head\nalice:g1, g2:new\nbob:*:h2\ncarol:*:h3\n",
            "replaced in place, duplicate dropped"
        );
        f.set(PasswdEntry {
            user: "dave".into(),
            groups: vec![],
            hash: "h4".into(),
        })
        .unwrap();
        f.set(PasswdEntry {
            user: "bob".into(),
            groups: vec!["ops".into(), "dev".into()],
            hash: "h5".into(),
        })
        .unwrap();
        assert_eq!(
            f.to_text(),
            "# head\nalice:g1, g2:new\nbob:ops,dev:h5\ncarol:*:h3\ndave:*:h4\n"
        );
        assert_eq!(f.find("alice").unwrap().groups, ["g1", "g2"]);
        assert!(f.remove("carol"));
        assert_eq!(
            f.to_text(),
            "# head\nalice:g1, g2:new\nbob:ops,dev:h5\ndave:*:h4\n"
        );
        // The in-memory view follows the text.
        assert_eq!(f, parse(&f.to_text()));
    }

    #[test]
    fn set_validates() {
        let mut f = parse("");
        for bad in ["", "a:b", "a\nb", "#x", &"u".repeat(64)] {
            assert!(
                matches!(
                    f.set_line(bad, "*", "h"),
                    Err(PasswdError::InvalidUsername { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            f.set_line("u", "a:b", "h"),
            Err(PasswdError::InvalidGroup { .. })
        ));
        assert!(matches!(
            f.set_line("u", "a\n", "h"),
            Err(PasswdError::InvalidGroup { .. })
        ));
        assert!(matches!(
            f.set_line("u", "*", "h:x"),
            Err(PasswdError::InvalidHash { .. })
        ));
        for g in ["x", "a,b", " a", ""] {
            let e = PasswdEntry {
                user: "u".into(),
                groups: vec![g.into()],
                hash: "h".into(),
            };
            assert!(
                matches!(f.set(e), Err(PasswdError::InvalidGroup { .. })),
                "{g:?}"
            );
        }
        assert!(matches!(
            f.set_line("u", &"g".repeat(MAX_LINE_BYTES), "h"),
            Err(PasswdError::LineTooLong { .. })
        ));
        assert_eq!(f.to_text(), "");
    }

    #[test]
    fn plain_login() {
        let mut f = parse("");
        f.set_line("alice", "admins, users", &hash_password("a-pass").unwrap())
            .unwrap();
        f.set_line("bob", "*", &hash_password("b-pass").unwrap())
            .unwrap();
        f.set_line("carol", "*", "").unwrap();
        f.set_line("dave", "*", "$1$abc$def").unwrap();
        f.set_line("eve", "*", &hash_password("e-pass").unwrap())
            .unwrap();
        f.lock("eve");

        assert_eq!(
            check_plain(&f, "alice", "a-pass"),
            PlainAuth::Accepted {
                groups: vec!["admins".into(), "users".into()]
            }
        );
        assert_eq!(
            check_plain(&f, "bob", "b-pass"),
            PlainAuth::Accepted { groups: vec![] }
        );
        assert_eq!(check_plain(&f, "alice", "b-pass"), PlainAuth::Rejected);
        let r = |u, pw| check_plain_reason(&f, u, pw).unwrap_err();
        assert_eq!(r("alice", "b-pass"), RejectReason::WrongPassword);
        assert_eq!(r("nobody", "a-pass"), RejectReason::UnknownUser);
        assert_eq!(r("", "a-pass"), RejectReason::InvalidUsername);
        assert_eq!(r("a:b", "a-pass"), RejectReason::InvalidUsername);
        assert_eq!(r("carol", ""), RejectReason::NoPassword);
        assert_eq!(r("carol", "x"), RejectReason::NoPassword);
        assert_eq!(
            check_plain(&f, "carol", "123456"),
            PlainAuth::NoPasswordSet { groups: vec![] }
        );
        assert_eq!(r("dave", "x"), RejectReason::UnsupportedHash);
        assert_eq!(r("eve", "e-pass"), RejectReason::Locked);
        assert_eq!(
            r("alice", &"a".repeat(MAX_PASSWORD_BYTES + 1)),
            RejectReason::WrongPassword
        );
        f.unlock("eve");
        assert_eq!(
            check_plain(&f, "eve", "e-pass"),
            PlainAuth::Accepted { groups: vec![] }
        );
    }

    #[test]
    fn dummy_setting_follows_the_file() {
        let kind = |text: &str| {
            let f = parse(text);
            let d = f.dummy_setting();
            assert!(is_supported_hash(&d), "{d}");
            let s = parse_setting(&d).unwrap();
            (s.scheme, s.rounds, s.salt.len())
        };
        // No usable hash: what ocpasswd writes.
        assert_eq!(kind(""), (Scheme::Sha256, None, 16));
        assert_eq!(kind("a:*:\nb:*:$1$x$y\n"), (Scheme::Sha256, None, 16));
        assert_eq!(parse("").dummy_setting(), "$5$ferroconnectdumm$");
        // One kind: that kind, rounds and salt length included.
        assert_eq!(
            kind("a:*:$6$rounds=20000$saltsalt$xyz\n"),
            (Scheme::Sha512, Some(20000), 8)
        );
        assert_eq!(
            parse("a:*:$6$rounds=20000$saltsalt$xyz\n").dummy_setting(),
            "$6$rounds=20000$ferrocon$"
        );
        assert_eq!(
            kind("a:*:$5$rounds=80000$0123456789abcdef$x\n"),
            (Scheme::Sha256, Some(80000), 16)
        );
        // The most common kind wins; locked entries count (their cost is the same).
        assert_eq!(
            kind(
                "a:*:$5$0123456789abcdef$x\n\
                 b:*:$6$rounds=9000$0123456789abcdef$x\n\
                 c:*:!$6$rounds=9000$0123456789abcdef$x\n\
                 d:*:\n"
            ),
            (Scheme::Sha512, Some(9000), 16)
        );
        // A tie goes to the first kind in the file.
        assert_eq!(
            kind("a:*:$6$0123456789abcdef$x\nb:*:$5$0123456789abcdef$x\n"),
            (Scheme::Sha512, None, 16)
        );
        // What ocpasswd writes today is what the dummy uses for its files.
        let mut f = parse("");
        f.set_line("alice", "*", &hash_password("pw").unwrap())
            .unwrap();
        assert_eq!(f.dummy_setting(), "$5$ferroconnectdumm$");
    }

    #[test]
    fn unknown_user_costs_what_a_known_one_costs() {
        // A file whose entries cost 5x the default: the refusal of an unknown user must take
        // about as long as a wrong password for a known one, not a default-cost hash.
        let hash = sha_crypt(b"secret", "$6$rounds=25000$0123456789abcdef$").unwrap();
        let f = parse(&format!("alice:*:{hash}\n"));
        // The best of two runs (noise only adds time).
        let best = |run: &dyn Fn()| {
            (0..2)
                .map(|_| {
                    let t = std::time::Instant::now();
                    run();
                    t.elapsed()
                })
                .min()
                .unwrap()
        };
        let known = best(&|| assert_eq!(check_plain(&f, "alice", "wrong"), PlainAuth::Rejected));
        let unknown = best(&|| assert_eq!(check_plain(&f, "bob", "wrong"), PlainAuth::Rejected));
        let default_cost = best(&|| {
            sha_crypt(b"wrong", "$6$0123456789abcdef$").unwrap();
        });
        assert!(
            unknown * 2 > known && known * 2 > unknown,
            "known user {known:?}, unknown user {unknown:?}"
        );
        assert!(
            unknown * 2 > default_cost * 5,
            "unknown user {unknown:?}, a default-cost hash {default_cost:?}"
        );
    }

    #[test]
    fn debug_hides_the_hash() {
        let f = parse("alice:*:$5$secret$hash\n");
        let shown = format!("{f:?}");
        assert!(
            shown.contains("alice") && !shown.contains("secret"),
            "{shown}"
        );
        let e = format!("{:?}", f.find("alice").unwrap());
        assert!(!e.contains("secret"), "{e}");
    }

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> Self {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let d = std::env::temp_dir()
                .join(format!("ferro-passwd-{tag}-{}-{nanos}", std::process::id()));
            fs::create_dir(&d).unwrap();
            TempDir(d)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn save_load_and_permissions() {
        let dir = TempDir::new("save");
        let path = dir.0.join("ocpasswd");
        assert!(matches!(
            PasswdFile::load(&path),
            Err(PasswdError::NotFound { .. })
        ));

        let mut f = PasswdFile::empty(&path);
        f.set_line("alice", "*", "$5$a$b").unwrap();
        f.save().unwrap();
        assert_eq!(mode(&path), 0o600, "new file");
        assert_eq!(fs::read_to_string(&path).unwrap(), "alice:*:$5$a$b\n");
        assert!(!dir.0.join("ocpasswd.tmp").exists());

        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let mut f = PasswdFile::load(&path).unwrap();
        f.set_line("bob", "g1", "$5$c$d").unwrap();
        f.save().unwrap();
        assert_eq!(mode(&path), 0o640, "existing mode kept");
        assert_eq!(PasswdFile::load(&path).unwrap(), f);

        // The lock file: a second writer is refused; dropping releases it.
        let lock = PasswdLock::acquire(&path).unwrap();
        match f.save() {
            Err(e @ PasswdError::Locked { .. }) => {
                assert!(e.to_string().contains("is locked"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        let loaded = lock.load().unwrap();
        drop(lock);
        assert!(!dir.0.join("ocpasswd.tmp").exists());
        f.save().unwrap();

        // Commit through an explicit lock.
        let lock = PasswdLock::acquire(&path).unwrap();
        let mut g = loaded;
        g.remove("alice");
        lock.commit(&g).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "bob:g1:$5$c$d\n");
        assert!(!dir.0.join("ocpasswd.tmp").exists());

        // A dangling symlink where the lock file goes is not followed.
        std::os::unix::fs::symlink(dir.0.join("elsewhere"), dir.0.join("ocpasswd.tmp")).unwrap();
        assert!(matches!(f.save(), Err(PasswdError::Locked { .. })));
        assert!(!dir.0.join("elsewhere").exists());
        fs::remove_file(dir.0.join("ocpasswd.tmp")).unwrap();

        // Missing directory.
        let e = PasswdFile::empty(&dir.0.join("no/such/file"))
            .save()
            .unwrap_err();
        assert!(e.to_string().contains("no/such/file.tmp"), "{e}");
    }

    #[test]
    fn load_errors() {
        let dir = TempDir::new("load");
        let path = dir.0.join("f");
        fs::write(&path, b"alice:*:h\nb\xffob:*:h\n").unwrap();
        match PasswdFile::load(&path) {
            Err(e @ PasswdError::Parse { line: 2, .. }) => {
                assert!(e.to_string().contains(&*path.to_string_lossy()), "{e}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            PasswdFile::load(&dir.0),
            Err(PasswdError::NotRegular { .. })
        ));
        let big = File::create(&path).unwrap();
        big.set_len(MAX_FILE_BYTES + 1).unwrap();
        assert!(matches!(
            PasswdFile::load(&path),
            Err(PasswdError::TooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in "(?s).{0,400}") {
            if let Ok(f) = PasswdFile::parse(&text, p()) {
                // What parses re-parses to the same thing.
                let again = PasswdFile::parse(&f.to_text(), p()).unwrap();
                prop_assert_eq!(again, f);
            }
        }

        #[test]
        fn parse_colon_heavy_lines(lines in proptest::collection::vec("[a-c:,!# \r*$]{0,12}", 0..8)) {
            let text = lines.join("\n");
            if let Ok(mut f) = PasswdFile::parse(&text, p()) {
                let users: Vec<String> = f.entries().map(|e| e.user.clone()).collect();
                for u in users {
                    f.lock(&u);
                    prop_assert!(f.find(&u).unwrap().is_locked());
                    f.unlock(&u);
                    f.remove(&u);
                    prop_assert!(f.find(&u).is_none());
                }
            }
        }

        #[test]
        fn crypt_never_panics(setting in "\\$[56]\\$(rounds=[0-9]{0,4}\\$)?[ -~]{0,24}", pw in ".{0,20}") {
            if let Some(h) = sha_crypt(pw.as_bytes(), &setting) {
                prop_assert!(verify_password(&h, &pw));
            }
        }
    }
}
