//! The file side of `plain[otp=FILE]`: the liboath users file is locked, read, the code
//! checked by `oc-otp`, and the used line written back atomically, all under one lock so
//! two logins can never both use one code.
//!
//! The lock is the one liboath (and so pam_oath) takes: an fcntl write lock on `FILE.lock`.
//! The new text goes to `FILE.new` and is renamed over `FILE`, again as liboath does.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::fcntl::{fcntl, FcntlArg};
use oc_otp::usersfile::{Policy, UsersFile, Verdict};

use crate::passwd::{replace_file, sibling};

/// How codes are checked. ocserv passes liboath a window of 20 for both kinds; for TOTP
/// that means codes from 10 minutes ago stay good, so ours allows two steps (one minute)
/// of clock drift each way instead. HOTP keeps ocserv's look-ahead of 20.
pub const POLICY: Policy = Policy {
    hotp_window: 20,
    totp_window: 2,
    strict_digits: false,
    utc_offset_seconds: 0,
};

/// A users file larger than this is refused rather than read.
const MAX_FILE_BYTES: u64 = 4 << 20;

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtpOutcome {
    Accepted,
    /// Refused, with the reason for the server's log (liboath's wording where it has one).
    Refused(String),
}

/// Holds liboath's write lock on `FILE.lock` until dropped (closing the file releases it).
struct FileLock {
    _held: File,
}

impl FileLock {
    fn acquire(path: &Path) -> Result<Self, String> {
        let lock_path = sibling(path, ".lock");
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&lock_path)
            .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
        // Open-file-description locks conflict with liboath's classic fcntl locks and,
        // unlike those, also between threads of this process.
        let whole_file = libc::flock {
            l_type: libc::F_WRLCK as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        };
        fcntl(&file, FcntlArg::F_OFD_SETLKW(&whole_file))
            .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
        Ok(Self { _held: file })
    }
}

fn read_limited(path: &Path) -> Result<String, String> {
    let file = File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "{} is larger than {MAX_FILE_BYTES} bytes; refusing to read it",
            path.display()
        ));
    }
    Ok(text)
}

/// Checks `code` for `user` at `now` (Unix seconds) and records its use. Blocking: run it
/// off the async loop.
pub fn check_and_record(path: &Path, user: &str, code: &str, now: u64) -> OtpOutcome {
    match check_locked(path, user, code, now) {
        Ok(outcome) => outcome,
        Err(problem) => OtpOutcome::Refused(problem),
    }
}

fn check_locked(path: &Path, user: &str, code: &str, now: u64) -> Result<OtpOutcome, String> {
    let _lock = FileLock::acquire(path)?;
    let file = UsersFile::parse_lenient(&read_limited(path)?);
    let acceptance = match file.verify(user, code, now, &POLICY) {
        Verdict::Accepted(acceptance) => acceptance,
        Verdict::MalformedLine(problem) => {
            return Ok(OtpOutcome::Refused(format!(
                "{}: {problem}",
                path.display()
            )))
        }
        refused => return Ok(OtpOutcome::Refused(refused.liboath_message().to_string())),
    };
    let text = file
        .with_updated(&acceptance)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let new_path = sibling(path, ".new");
    let mut new_file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&new_path)
        .map_err(|e| format!("cannot write {}: {e}", new_path.display()))?;
    if let Err(e) = replace_file(&mut new_file, &new_path, path, text.as_bytes()) {
        let _ = fs::remove_file(&new_path);
        // A code whose use cannot be recorded could be used again: refuse it.
        return Err(e.to_string());
    }
    Ok(OtpOutcome::Accepted)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use oc_otp::oath::{hotp, Algorithm};
    use std::path::PathBuf;

    const KEY: &[u8] = b"12345678901234567890";
    const KEY_HEX: &str = "3132333435363738393031323334353637383930";

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("fc-otp-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn hotp_use_is_recorded_and_replay_refused() {
        let d = dir("hotp");
        let users = d.join("users");
        fs::write(&users, format!("# comment\nHOTP bob - {KEY_HEX} 0\n")).unwrap();
        let code = hotp(Algorithm::Sha1, KEY, 3, 6);
        assert_eq!(
            check_and_record(&users, "bob", &code, 0),
            OtpOutcome::Accepted
        );
        let text = fs::read_to_string(&users).unwrap();
        assert!(text.starts_with("# comment\n"), "{text}");
        let fields: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(fields[4], "3", "{text}");
        assert_eq!(fields[5], code, "{text}");
        match check_and_record(&users, "bob", &code, 0) {
            OtpOutcome::Refused(why) => assert!(why.contains("replayed"), "{why}"),
            other => panic!("replay accepted: {other:?}"),
        }
        assert!(!d.join("users.new").exists());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn totp_window_is_two_steps() {
        let d = dir("totp");
        let users = d.join("users");
        fs::write(&users, format!("HOTP/T30 carol - {KEY_HEX}\n")).unwrap();
        let now = 1_700_000_000;
        let step = now / 30;
        let too_old = hotp(Algorithm::Sha1, KEY, step - 3, 6);
        assert!(matches!(
            check_and_record(&users, "carol", &too_old, now),
            OtpOutcome::Refused(_)
        ));
        let drifted = hotp(Algorithm::Sha1, KEY, step - 2, 6);
        assert_eq!(
            check_and_record(&users, "carol", &drifted, now),
            OtpOutcome::Accepted
        );
        assert!(matches!(
            check_and_record(&users, "nobody", &drifted, now),
            OtpOutcome::Refused(_)
        ));
        let missing = check_and_record(&d.join("absent"), "carol", &drifted, now);
        assert!(
            matches!(&missing, OtpOutcome::Refused(why) if why.contains("absent")),
            "{missing:?}"
        );
        fs::remove_dir_all(&d).unwrap();
    }
}
