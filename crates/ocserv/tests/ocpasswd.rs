//! Our `ocpasswd` binary, side by side with Debian's `/usr/bin/ocpasswd` (ocserv 1.1) where it
//! is installed: same command, same resulting file (apart from the random salt).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ocserv::passwd::{check_plain, verify_password, PasswdFile, PlainAuth};

const OURS: &str = env!("CARGO_BIN_EXE_ocpasswd");
const REAL: &str = "/usr/bin/ocpasswd";

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let d = std::env::temp_dir().join(format!(
            "ferro-ocpasswd-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir(&d).unwrap();
        TempDir(d)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The real tool, or a note saying why the comparison is skipped.
fn real() -> Option<&'static str> {
    if Path::new(REAL).exists() {
        Some(REAL)
    } else {
        eprintln!("note: {REAL} not installed; skipping the comparison with the real ocpasswd");
        None
    }
}

/// Runs `bin` with `stdin` piped in (so not a terminal).
fn run(bin: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e}"));
    let mut input = child.stdin.take().unwrap();
    // The tool may exit before reading (usage errors); ignore a broken pipe.
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A line's shape with the salt and digest reduced to their lengths.
fn shape(line: &str) -> String {
    let f: Vec<&str> = line.splitn(3, ':').collect();
    assert_eq!(f.len(), 3, "{line:?}");
    let hash = f[2];
    let (lock, hash) = match hash.strip_prefix('!') {
        Some(h) => ("!", h),
        None => ("", hash),
    };
    let parts: Vec<&str> = hash.split('$').collect();
    assert_eq!(parts.len(), 4, "{hash:?}");
    assert_eq!(parts[0], "");
    format!(
        "{}:{}:{lock}${}$<{}>$<{}>",
        f[0],
        f[1],
        parts[1],
        parts[2].len(),
        parts[3].len()
    )
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn add_user_with_groups_from_stdin() {
    let dir = TempDir::new("add");
    let ours = dir.path("ours");
    let o = run(
        OURS,
        &["-c", p(&ours), "-g", "admins,users", "alice"],
        "s3cret\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.is_empty() && o.stderr.is_empty());
    let got = lines(&ours);
    assert_eq!(got.len(), 1);
    assert_eq!(shape(&got[0]), "alice:admins,users:$5$<16>$<43>");
    assert_eq!(
        fs::metadata(&ours).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!dir.path("ours.tmp").exists());

    let file = PasswdFile::load(&ours).unwrap();
    assert_eq!(
        check_plain(&file, "alice", "s3cret"),
        PlainAuth::Accepted {
            groups: vec!["admins".into(), "users".into()]
        }
    );
    assert_eq!(check_plain(&file, "alice", "s3cret\n"), PlainAuth::Rejected);

    // More users, with the default group field and a spaced group list.
    assert!(run(OURS, &["-c", p(&ours), "bob"], "pw-b\n")
        .status
        .success());
    assert!(run(
        OURS,
        &["-c", p(&ours), "--groupname", "a, b", "carol"],
        "pw-c"
    )
    .status
    .success());
    let got: Vec<String> = lines(&ours).iter().map(|l| shape(l)).collect();
    assert_eq!(
        got,
        [
            "alice:admins,users:$5$<16>$<43>",
            "bob:*:$5$<16>$<43>",
            "carol:a, b:$5$<16>$<43>"
        ]
    );

    let Some(real) = real() else { return };
    let theirs = dir.path("theirs");
    for (args, pw) in [
        (vec!["-g", "admins,users", "alice"], "s3cret\n"),
        (vec!["bob"], "pw-b\n"),
        (vec!["-g", "a, b", "carol"], "pw-c"),
    ] {
        let mut a = vec!["-c", p(&theirs)];
        a.extend(args);
        assert!(run(real, &a, pw).status.success());
    }
    let real_shapes: Vec<String> = lines(&theirs).iter().map(|l| shape(l)).collect();
    assert_eq!(got, real_shapes);
    assert_eq!(
        fs::metadata(&theirs).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn hashes_interoperate() {
    let Some(real) = real() else { return };
    let dir = TempDir::new("interop");
    let path = dir.path("f");
    // Written by the real tool, checked by our verifier.
    assert!(run(
        real,
        &["-c", p(&path), "-g", "staff", "alice"],
        "pässwörd 1\n"
    )
    .status
    .success());
    let file = PasswdFile::load(&path).unwrap();
    assert_eq!(
        check_plain(&file, "alice", "pässwörd 1"),
        PlainAuth::Accepted {
            groups: vec!["staff".into()]
        }
    );
    assert_eq!(check_plain(&file, "alice", "pässwörd"), PlainAuth::Rejected);

    // Written by us, changed by the real tool (lock, unlock), still ours to verify.
    assert!(run(OURS, &["-c", p(&path), "bob"], "bob's pw\n")
        .status
        .success());
    assert!(run(real, &["-c", p(&path), "-l", "bob"], "")
        .status
        .success());
    let file = PasswdFile::load(&path).unwrap();
    assert_eq!(check_plain(&file, "bob", "bob's pw"), PlainAuth::Rejected);
    assert!(run(real, &["-c", p(&path), "-u", "bob"], "")
        .status
        .success());
    let file = PasswdFile::load(&path).unwrap();
    assert_eq!(
        check_plain(&file, "bob", "bob's pw"),
        PlainAuth::Accepted { groups: vec![] }
    );
}

/// crypt(3) from the system's libcrypt (libxcrypt on Debian) through python3 or perl.
fn system_crypt_accepts(password: &str, hash: &str) -> Option<bool> {
    let py = Command::new("python3")
        .args([
            "-W",
            "ignore",
            "-c",
            "import crypt,sys; print(crypt.crypt(sys.argv[1], sys.argv[2]) == sys.argv[2])",
            password,
            hash,
        ])
        .output();
    if let Ok(o) = py {
        if o.status.success() {
            return Some(String::from_utf8_lossy(&o.stdout).trim() == "True");
        }
    }
    let pl = Command::new("perl")
        .args([
            "-e",
            "print crypt($ARGV[0], $ARGV[1]) eq $ARGV[1] ? 'True' : 'False'",
            password,
            hash,
        ])
        .output();
    match pl {
        Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).trim() == "True"),
        _ => None,
    }
}

#[test]
fn system_crypt_accepts_our_hashes() {
    let dir = TempDir::new("crypt");
    let path = dir.path("f");
    for (user, pw) in [
        ("alice", "simple"),
        ("bob", "with spaces and ünïcödé"),
        ("carol", "x"),
    ] {
        assert!(run(OURS, &["-c", p(&path), user], &format!("{pw}\n"))
            .status
            .success());
    }
    let file = PasswdFile::load(&path).unwrap();
    for (user, pw) in [
        ("alice", "simple"),
        ("bob", "with spaces and ünïcödé"),
        ("carol", "x"),
    ] {
        let hash = &file.find(user).unwrap().hash;
        assert!(verify_password(hash, pw));
        match system_crypt_accepts(pw, hash) {
            Some(ok) => assert!(ok, "libcrypt refused {hash} for {pw:?}"),
            None => {
                eprintln!("note: neither python3's crypt nor perl available; skipping");
                return;
            }
        }
        assert_eq!(system_crypt_accepts("wrong", hash), Some(false));
    }
}

#[test]
fn lock_unlock_delete_like_the_real_tool() {
    let dir = TempDir::new("edit");
    let ours = dir.path("ours");
    for (user, group) in [
        ("alice", "*"),
        ("bob", "admins,users"),
        ("carol", "a, b"),
        ("dave", "ops"),
    ] {
        assert!(run(OURS, &["-c", p(&ours), "-g", group, user], "pw\n")
            .status
            .success());
    }
    let theirs = dir.path("theirs");
    fs::copy(&ours, &theirs).unwrap();
    let real = real();

    let steps: &[&[&str]] = &[
        &["-l", "bob"],
        &["-l", "bob"],
        &["--lock", "carol"],
        &["-u", "bob"],
        &["-u", "bob"],
        &["--unlock", "carol"],
        &["-l", "dave"],
        &["-d", "alice"],
        &["--delete", "carol"],
        &["-l", "nobody"],
        &["-u", "nobody"],
        &["-d", "nobody"],
        &["-g", "ignored", "-l", "bob"],
    ];
    for step in steps {
        let mut a = vec!["-c", p(&ours)];
        a.extend_from_slice(step);
        let o = run(OURS, &a, "");
        assert!(o.status.success(), "{step:?}: {}", stderr(&o));
        if let Some(real) = real {
            let mut a = vec!["-c", p(&theirs)];
            a.extend_from_slice(step);
            let r = run(real, &a, "");
            assert_eq!(o.status.code(), r.status.code(), "{step:?}");
            assert_eq!(
                fs::read_to_string(&ours).unwrap(),
                fs::read_to_string(&theirs).unwrap(),
                "after {step:?}"
            );
        }
        assert!(!dir.path("ours.tmp").exists());
    }
    let got: Vec<String> = lines(&ours).iter().map(|l| shape(l)).collect();
    assert_eq!(
        got,
        ["bob:admins,users:!$5$<16>$<43>", "dave:ops:!$5$<16>$<43>"]
    );
    // Not-found users are reported, as a note.
    let o = run(OURS, &["-c", p(&ours), "-d", "nobody"], "");
    assert!(o.status.success());
    assert!(stderr(&o).contains("nobody"), "{}", stderr(&o));
}

#[test]
fn changing_a_password() {
    let dir = TempDir::new("change");
    let path = dir.path("f");
    assert!(
        run(OURS, &["-c", p(&path), "-g", "g1,g2", "alice"], "old\n")
            .status
            .success()
    );
    assert!(run(OURS, &["-c", p(&path), "bob"], "bob\n")
        .status
        .success());
    let before = lines(&path);
    assert!(run(OURS, &["-c", p(&path), "-g", "g3", "alice"], "new\n")
        .status
        .success());
    let after = lines(&path);
    assert_eq!(after.len(), 2);
    assert_eq!(after[1], before[1], "other users untouched");
    assert_eq!(shape(&after[0]), "alice:g3:$5$<16>$<43>");
    let file = PasswdFile::load(&path).unwrap();
    assert_eq!(check_plain(&file, "alice", "old"), PlainAuth::Rejected);
    assert!(matches!(
        check_plain(&file, "alice", "new"),
        PlainAuth::Accepted { .. }
    ));
    // Without -g the groups stay (the real tool would reset them to '*').
    assert!(run(OURS, &["-c", p(&path), "alice"], "newer\n")
        .status
        .success());
    assert_eq!(shape(&lines(&path)[0]), "alice:g3:$5$<16>$<43>");

    // An existing file keeps its mode.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    assert!(run(OURS, &["-c", p(&path), "carol"], "c\n")
        .status
        .success());
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o640
    );
}

#[test]
fn errors_like_the_real_tool() {
    let dir = TempDir::new("errors");
    let missing = dir.path("missing");
    let existing = dir.path("existing");
    assert!(run(OURS, &["-c", p(&existing), "alice"], "pw\n")
        .status
        .success());
    let real = real();

    struct Case {
        args: Vec<String>,
        stdin: &'static str,
        /// Part of the message on stderr (ours).
        message: &'static str,
        /// Whether the real tool also fails. It does not for an empty standard input (it
        /// stores a password anyway) nor for an unknown option (it warns and goes on).
        real_fails: bool,
    }
    let m = p(&missing).to_string();
    let e = p(&existing).to_string();
    let case = |args: &[&str], stdin, message, real_fails| Case {
        args: args.iter().map(|s| s.to_string()).collect(),
        stdin,
        message,
        real_fails,
    };
    let cases = [
        case(&["-c", &m, "-l", "alice"], "", "Cannot open", true),
        case(&["-c", &m, "-u", "alice"], "", "Cannot open", true),
        case(&["-c", &m, "-d", "alice"], "", "Cannot open", true),
        case(&["-c", &e, "bob"], "", "Please specify a password", false),
        case(&["-c", &e, "bob"], "\n", "Please specify a password", true),
        case(&["-c", &e], "", "USERNAME", true),
        case(&["-c", &e, "a", "b"], "", "unexpected argument", true),
        case(
            &["-c", &e, "-l", "-d", "a"],
            "",
            "cannot be used with",
            true,
        ),
        case(
            &["-c", &e, "-c", &e, "a"],
            "",
            "cannot be used multiple times",
            true,
        ),
        case(&["-c", &e, "--bogus", "a"], "", "--bogus", false),
    ];
    for c in &cases {
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let o = run(OURS, &args, c.stdin);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = stderr(&o);
        assert!(err.contains(c.message), "{args:?}: {err}");
        if err.contains("Cannot open") {
            assert!(err.contains(&m), "names the file: {err}");
        }
        if let (Some(real), true) = (real, c.real_fails) {
            let r = run(real, &args, c.stdin);
            assert_eq!(r.status.code(), Some(1), "real {args:?}");
        }
    }
    assert!(!missing.exists(), "no file created by -l/-u/-d");
    assert_eq!(fs::read_dir(&dir.0).unwrap().count(), 1, "no .tmp left");
    assert_eq!(lines(&existing).len(), 1);

    // User names the file cannot hold.
    for bad in ["a:b", "#x", &"u".repeat(64)] {
        let o = run(OURS, &["-c", &e, bad], "pw\n");
        assert_eq!(o.status.code(), Some(1), "{bad}");
        assert!(stderr(&o).contains("invalid user name"), "{}", stderr(&o));
    }
    let o = run(OURS, &["-c", &e, "-g", "a:b", "bob"], "pw\n");
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(lines(&existing).len(), 1);

    // A malformed file is refused with file and line; it is not rewritten.
    fs::write(&existing, "alice:*:h\nbroken line\n").unwrap();
    let o = run(OURS, &["-c", &e, "-l", "alice"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(&format!("{e}:2:")), "{}", stderr(&o));
    assert_eq!(
        fs::read_to_string(&existing).unwrap(),
        "alice:*:h\nbroken line\n"
    );
}

#[test]
fn lock_file_is_respected() {
    let dir = TempDir::new("lockfile");
    let path = dir.path("f");
    assert!(run(OURS, &["-c", p(&path), "alice"], "pw\n")
        .status
        .success());
    let before = fs::read_to_string(&path).unwrap();
    fs::write(dir.path("f.tmp"), "").unwrap();
    for args in [vec!["-l", "alice"], vec!["bob"]] {
        let mut a = vec!["-c", p(&path)];
        a.extend(args);
        let o = run(OURS, &a, "pw\n");
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains("is locked"), "{}", stderr(&o));
        if let Some(real) = real() {
            let r = run(real, &a, "pw\n");
            assert_eq!(r.status.code(), Some(1));
            assert!(stderr(&r).contains("is locked"));
        }
    }
    assert!(
        dir.path("f.tmp").exists(),
        "someone else's lock is left alone"
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), before);
}

#[test]
fn comments_and_crlf_survive() {
    let dir = TempDir::new("comments");
    let path = dir.path("f");
    fs::write(&path, "# VPN users\n\nalice:*:$5$a$b\r\nbob:x:$5$c$d\n").unwrap();
    assert!(run(OURS, &["-c", p(&path), "-l", "alice"], "")
        .status
        .success());
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "# VPN users\n\nalice:*:!$5$a$b\r\nbob:x:$5$c$d\n"
    );
}

#[test]
fn help_and_version() {
    let o = run(OURS, &["--help"], "");
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    for want in [
        "--passwd",
        "--groupname",
        "--delete",
        "--lock",
        "--unlock",
        "username:groupname1,groupname2:encoded-password",
        "EXAMPLES",
        "/etc/ocserv/ocpasswd",
    ] {
        assert!(text.contains(want), "help lacks {want}");
    }
    let o = run(OURS, &["-h"], "");
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("FILE FORMAT"));
    let o = run(OURS, &["-v"], "");
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("ocpasswd "));
}

// ---------------------------------------------------------------------------------------
// Terminal input, through a pseudo-terminal.

struct Pty {
    master: fs::File,
    output: Arc<Mutex<Vec<u8>>>,
}

impl Pty {
    /// Starts `bin args` in a new session (no controlling terminal) with the pty's slave as
    /// stdin, stdout and stderr. None when `setsid` is unavailable.
    fn spawn(bin: &str, args: &[&str]) -> Option<(Pty, std::process::Child)> {
        let setsid = ["/usr/bin/setsid", "/bin/setsid"]
            .into_iter()
            .find(|p| Path::new(p).exists())?;
        let pty = nix::pty::openpty(None, None).unwrap();
        let child = Command::new(setsid)
            .arg("-w")
            .arg(bin)
            .args(args)
            .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
            .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
            .stderr(Stdio::from(pty.slave))
            .spawn()
            .unwrap();
        let master = fs::File::from(pty.master);
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().unwrap();
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            // Ends with EIO once the child closes the slave.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Some((Pty { master, output }, child))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Waits until `needle` has appeared `count` times in the output.
    fn wait_for(&self, needle: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.text().matches(needle).count() < count {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in {:?}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn type_line(&mut self, s: &str) {
        self.master.write_all(s.as_bytes()).unwrap();
        self.master.write_all(b"\n").unwrap();
    }
}

fn wait_child(child: &mut std::process::Child) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ocpasswd did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Types the two passwords at the prompts; returns exit code and what the terminal showed.
fn terminal_session(
    bin: &str,
    file: &Path,
    first: &str,
    second: &str,
) -> Option<(Option<i32>, String)> {
    let (mut pty, mut child) = Pty::spawn(bin, &["-c", p(file), "alice"])?;
    pty.wait_for("Enter password: ", 1);
    pty.type_line(first);
    pty.wait_for("password: ", 2);
    pty.type_line(second);
    let code = wait_child(&mut child);
    std::thread::sleep(Duration::from_millis(50));
    Some((code, pty.text()))
}

#[test]
fn terminal_prompts_without_echo() {
    let dir = TempDir::new("tty");
    let path = dir.path("f");
    let Some((code, shown)) = terminal_session(OURS, &path, "tty-secret", "tty-secret") else {
        eprintln!("note: no setsid; skipping the terminal test");
        return;
    };
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("Enter password: "), "{shown:?}");
    assert!(shown.contains("Re-enter password: "), "{shown:?}");
    assert!(!shown.contains("tty-secret"), "echoed: {shown:?}");
    let file = PasswdFile::load(&path).unwrap();
    assert!(matches!(
        check_plain(&file, "alice", "tty-secret"),
        PlainAuth::Accepted { .. }
    ));

    let before = fs::read_to_string(&path).unwrap();
    let (code, shown) = terminal_session(OURS, &path, "one", "two").unwrap();
    assert_eq!(code, Some(1));
    assert!(shown.contains("Passwords do not match"), "{shown:?}");
    assert_eq!(fs::read_to_string(&path).unwrap(), before);

    if let Some(real) = real() {
        let theirs = dir.path("theirs");
        let (code, real_shown) =
            terminal_session(real, &theirs, "tty-secret", "tty-secret").unwrap();
        assert_eq!(code, Some(0), "{real_shown}");
        assert!(!real_shown.contains("tty-secret"));
        assert_eq!(shape(&lines(&theirs)[0]), shape(&lines(&path)[0]));
        let (code, real_shown) = terminal_session(real, &theirs, "one", "two").unwrap();
        assert_eq!(code, Some(1));
        assert!(real_shown.contains("Passwords do not match"));
    }
}
