//! Cross-checks `oc_otp::securid` against the real `stoken` binary (Debian's 0.92).
//!
//! Tokens are made fresh on every run with `stoken export --random` and re-exported in
//! every form (password, device ID, smartphone URIs, v3, sdtid with templates for
//! 6 digits / 30 s, stokenrc with saved PINs), plus tokens built by us and handed to
//! stoken. For each, codes at many times and PINs must match `stoken tokencode`.
//!
//! `stoken` must be installed (scripts/deps.sh does it); without it these tests fail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use oc_otp::securid::{PinMode, SecurIdToken, TokenFormat, TokenParams};
use sha2::{Digest, Sha256};

/// A private HOME for stoken (it reads and writes ~/.stokenrc), removed on drop.
struct Home {
    dir: PathBuf,
}

impl Home {
    fn new(tag: &str) -> Home {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "oc-otp-securid-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Home { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, contents).unwrap();
        p
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `stoken <args> --batch` with HOME set to `home` and no stdin; returns stdout.
fn stoken(home: &Home, args: &[&str]) -> String {
    let out = Command::new("stoken")
        .args(args)
        .arg("--batch")
        .env("HOME", &home.dir)
        .env_remove("USERPROFILE")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `stoken` ({e}); it is required for this test (scripts/deps.sh installs it)")
        });
    assert!(
        out.status.success(),
        "stoken {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

/// `stoken show` as key -> value.
fn stoken_show(home: &Home, source: &[&str]) -> Vec<(String, String)> {
    let mut args = vec!["show"];
    args.extend_from_slice(source);
    stoken(home, &args)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn field<'a>(show: &'a [(String, String)], key: &str) -> &'a str {
    show.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("stoken show has no {key:?}: {show:?}"))
}

/// Times around interval edges, old and far-future dates, and now.
fn test_times() -> Vec<u64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    vec![
        0,
        86_399,
        951_782_400, // 2000-02-29
        1_000_000_000,
        1_409_757_465,
        1_700_000_000,
        1_700_000_029,
        1_700_000_030,
        1_700_000_059,
        1_700_000_060,
        1_700_000_119,
        1_700_000_180,
        2_147_483_647,
        2_147_483_648,
        4_102_444_799, // 2099-12-31 23:59:59
        now,
        now + 60,
    ]
}

/// Where a token comes from, for stoken's command line.
enum Source<'a> {
    Token(&'a str),
    File(&'a Path),
    Rcfile(&'a Path),
}

struct Case<'a> {
    name: &'a str,
    source: Source<'a>,
    password: Option<&'a str>,
    devid: Option<&'a str>,
}

/// Compares our code with stoken's for every test time and each PIN (None = no --pin).
fn compare_codes(home: &Home, case: &Case<'_>, ours: &SecurIdToken, pins: &[Option<&str>]) {
    let mut checked = 0;
    for &t in &test_times() {
        for &pin in pins {
            let when = t.to_string();
            let mut args: Vec<String> = vec![
                "tokencode".into(),
                "--force".into(),
                format!("--use-time={when}"),
            ];
            match &case.source {
                Source::Token(s) => args.push(format!("--token={s}")),
                Source::File(p) => args.push(format!("--file={}", p.display())),
                Source::Rcfile(p) => args.push(format!("--rcfile={}", p.display())),
            }
            if let Some(p) = case.password {
                args.push(format!("--password={p}"));
            }
            if let Some(d) = case.devid {
                args.push(format!("--devid={d}"));
            }
            if let Some(p) = pin {
                args.push(format!("--pin={p}"));
            }
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let theirs = last_line(&stoken(home, &argv));
            let mine = ours.code(t, pin).unwrap_or_else(|e| {
                panic!(
                    "{}: our code at {t} with pin {pin:?} failed: {e}",
                    case.name
                )
            });
            assert_eq!(mine, theirs, "{}: time {t}, pin {pin:?}", case.name);
            checked += 1;
        }
    }
    assert!(checked > 0);
}

/// Imports `input`, decrypts with the case's credentials, checks the parameters against
/// `stoken show`, and returns the unlocked token.
fn import_and_unlock(home: &Home, case: &Case<'_>, input: &str) -> SecurIdToken {
    let mut token =
        SecurIdToken::import(input).unwrap_or_else(|e| panic!("{}: import: {e}", case.name));
    assert_eq!(
        token.needs_password(),
        case.password.is_some(),
        "{}",
        case.name
    );
    assert_eq!(token.needs_devid(), case.devid.is_some(), "{}", case.name);
    if !token.is_unlocked() {
        token
            .decrypt(case.password, case.devid)
            .unwrap_or_else(|e| panic!("{}: decrypt: {e}", case.name));
    }
    let mut source: Vec<String> = match &case.source {
        Source::Token(s) => vec![format!("--token={s}")],
        Source::File(p) => vec![format!("--file={}", p.display())],
        Source::Rcfile(p) => vec![format!("--rcfile={}", p.display())],
    };
    if let Some(p) = case.password {
        source.push(format!("--password={p}"));
    }
    if let Some(d) = case.devid {
        source.push(format!("--devid={d}"));
    }
    let argv: Vec<&str> = source.iter().map(String::as_str).collect();
    let show = stoken_show(home, &argv);
    assert_eq!(
        Some(field(&show, "Serial number")),
        token.serial().as_deref(),
        "{}",
        case.name
    );
    assert_eq!(
        field(&show, "Tokencode digits"),
        token.digits().unwrap().to_string(),
        "{}",
        case.name
    );
    assert_eq!(
        field(&show, "Seconds per tokencode"),
        token.interval().unwrap().to_string(),
        "{}",
        case.name
    );
    assert_eq!(
        field(&show, "PIN mode"),
        token.pin_mode_raw().unwrap().to_string(),
        "{}",
        case.name
    );
    // "Expiration date : YYYY/MM/DD" is the day after the last valid one, at 00:00 UTC.
    let exp = token.expires_unix().unwrap();
    let (y, m, d) = oc_otp::calendar::civil_from_days(exp.div_euclid(86_400));
    assert_eq!(
        field(&show, "Expiration date"),
        format!("{y:04}/{m:02}/{d:02}"),
        "{}",
        case.name
    );
    token
}

/// A fresh random token from stoken (8 digits, 60 s, PIN mode 3).
fn random_token(home: &Home) -> String {
    last_line(&stoken(home, &["export", "--random"]))
}

const MIXED_PINS: [Option<&str>; 3] = [Some("1234"), Some("98765432"), Some("0000")];

#[test]
fn numeric_tokens_in_every_protection() {
    let home = Home::new("numeric");
    let plain = random_token(&home);
    let uri = |prefix: &str, tail: String| format!("{prefix}{tail}");

    let with_password = last_line(&stoken(
        &home,
        &[
            "export",
            &format!("--token={plain}"),
            "--new-password=correct horse",
        ],
    ));
    let with_devid = last_line(&stoken(
        &home,
        &[
            "export",
            &format!("--token={plain}"),
            "--new-devid=1234567890ABCDEF1234567890abcdef",
        ],
    ));
    let android = last_line(&stoken(
        &home,
        &[
            "export",
            "--android",
            &format!("--token={plain}"),
            "--new-devid=a01c4380-fc01-4df0-b113-7fb98ec74694",
            "--new-password=pw",
        ],
    ));
    let iphone = last_line(&stoken(
        &home,
        &[
            "export",
            "--iphone",
            &format!("--token={plain}"),
            "--new-password=Secret!",
        ],
    ));
    let blocks = last_line(&stoken(
        &home,
        &["export", "--blocks", &format!("--token={plain}")],
    ));
    assert!(android.starts_with("http://127.0.0.1/securid/ctf?ctfData="));
    assert!(iphone.starts_with("com.rsa.securid.iphone://ctf?ctfData="));

    let cases = [
        (plain.clone(), None, None),
        (blocks, None, None),
        (with_password, Some("correct horse"), None),
        (with_devid, None, Some("1234567890ABCDEF1234567890abcdef")),
        (
            android.clone(),
            Some("pw"),
            Some("a01c4380-fc01-4df0-b113-7fb98ec74694"),
        ),
        (iphone, Some("Secret!"), None),
        (
            uri("com.rsa.securid://ctf?ctfData=", plain.clone()),
            None,
            None,
        ),
    ];
    for (i, (s, password, devid)) in cases.iter().enumerate() {
        let name = format!("numeric case {i}");
        let case = Case {
            name: &name,
            source: Source::Token(s),
            password: *password,
            devid: *devid,
        };
        let token = import_and_unlock(&home, &case, s);
        assert!(matches!(
            token.format(),
            TokenFormat::Numeric { version: 2, .. }
        ));
        assert_eq!(token.pin_mode(), Some(PinMode::Mixed));
        compare_codes(&home, &case, &token, &MIXED_PINS);
    }

    // The class GUID stoken would pick by itself is found too.
    let token = SecurIdToken::import(&android).unwrap();
    assert_eq!(token.find_class_guid().map(|g| g.tag), Some("android"));

    // Our exports equal stoken's (v2 encoding is deterministic).
    let token = SecurIdToken::import(&plain).unwrap();
    assert_eq!(token.export_v2(None, None, false).unwrap(), plain);
    let theirs = last_line(&stoken(
        &home,
        &[
            "export",
            &format!("--token={plain}"),
            "--new-password=pw",
            "--new-devid=0123456789abcdef",
        ],
    ));
    assert_eq!(
        token
            .export_v2(Some("pw"), Some("0123456789abcdef"), false)
            .unwrap(),
        theirs
    );
    let theirs = last_line(&stoken(
        &home,
        &[
            "export",
            "--android",
            &format!("--token={plain}"),
            "--new-password=pw",
            "--new-devid=a01c4380-fc01-4df0-b113-7fb98ec74694",
        ],
    ));
    let ours = token
        .export_v2(
            Some("pw"),
            Some("a01c4380-fc01-4df0-b113-7fb98ec74694"),
            true,
        )
        .unwrap();
    assert_eq!(
        format!("http://127.0.0.1/securid/ctf?ctfData={ours}"),
        theirs
    );
}

#[test]
fn v3_tokens() {
    let home = Home::new("v3");
    let plain = random_token(&home);
    let locked = last_line(&stoken(
        &home,
        &[
            "export",
            "--v3",
            &format!("--token={plain}"),
            "--new-password=v3 password",
            "--new-devid=MY-DEVICE-0042",
        ],
    ));
    let open = last_line(&stoken(
        &home,
        &["export", "--v3", &format!("--token={plain}")],
    ));
    let pass_only = last_line(&stoken(
        &home,
        &[
            "export",
            "--v3",
            &format!("--token={plain}"),
            "--new-password=x",
        ],
    ));
    for (i, (s, password, devid)) in [
        (locked.as_str(), Some("v3 password"), Some("MY-DEVICE-0042")),
        (open.as_str(), None, None),
        (pass_only.as_str(), Some("x"), None),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("v3 case {i}");
        let case = Case {
            name: &name,
            source: Source::Token(s),
            password,
            devid,
        };
        let token = import_and_unlock(&home, &case, s);
        assert_eq!(token.format(), TokenFormat::V3);
        compare_codes(&home, &case, &token, &MIXED_PINS);
    }
}

const TEMPLATE: &str = r#"<?xml version="1.0"?>
<TKNBatch>
  <TKNHeader>
    <DefDigits>DIGITS</DefDigits>
    <DefInterval>INTERVAL</DefInterval>
    <DefAddPIN>ADDPIN</DefAddPIN>
    <DefLocalPIN>LOCALPIN</DefLocalPIN>
    <DefDeath>2033/12/31</DefDeath>
  </TKNHeader>
</TKNBatch>
"#;

#[test]
fn sdtid_files_with_various_parameters() {
    let home = Home::new("sdtid");
    let plain = random_token(&home);
    let variants = [
        ("6", "30", "0", "0", None),
        ("6", "60", "1", "0", Some("p@ss <&> word")),
        ("8", "30", "0", "1", None),
        ("8", "60", "1", "1", Some("short")),
        ("7", "30", "1", "0", None),
    ];
    for (i, (digits, interval, addpin, localpin, password)) in variants.into_iter().enumerate() {
        let tpl = TEMPLATE
            .replace("DIGITS", digits)
            .replace("INTERVAL", interval)
            .replace("ADDPIN", addpin)
            .replace("LOCALPIN", localpin);
        let tpl_path = home.write(&format!("tpl{i}.xml"), &tpl);
        let mut args = vec![
            "export".to_string(),
            "--sdtid".into(),
            format!("--token={plain}"),
            format!("--template={}", tpl_path.display()),
        ];
        if let Some(p) = password {
            args.push(format!("--new-password={p}"));
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let xml = stoken(&home, &argv);
        let file = home.write(&format!("t{i}.sdtid"), &xml);
        let name =
            format!("sdtid {digits} digits {interval} s addpin {addpin} localpin {localpin}");
        let case = Case {
            name: &name,
            source: Source::File(&file),
            password,
            devid: None,
        };
        let token = import_and_unlock(&home, &case, &xml);
        assert_eq!(token.format(), TokenFormat::Sdtid);
        assert_eq!(token.digits().unwrap().to_string(), digits);
        assert_eq!(token.interval().unwrap().to_string(), interval);
        let pins: &[Option<&str>] = if addpin == "1" {
            &MIXED_PINS
        } else {
            // Without a mixed-in PIN, stoken ignores --pin; so do we.
            &[None, Some("1234")]
        };
        compare_codes(&home, &case, &token, pins);

        // The same token as a v2 string, exported by us, read by stoken.
        let v2 = token.export_v2(None, None, false).unwrap();
        let case = Case {
            name: &format!("{name}, exported"),
            source: Source::Token(&v2),
            password: None,
            devid: None,
        };
        let again = import_and_unlock(&home, &case, &v2);
        compare_codes(&home, &case, &again, pins);
    }
}

#[test]
fn stokenrc_with_saved_pins() {
    let home = Home::new("rcfile");
    let plain = random_token(&home);
    let rc = home.path(".stokenrc");

    // Password-protected token: the PIN is saved encrypted with the password.
    stoken(
        &home,
        &[
            "import",
            &format!("--token={plain}"),
            "--new-password=rc pass",
            "--force",
        ],
    );
    stoken(&home, &["setpin", "--new-pin=24680", "--password=rc pass"]);
    let text = home.read(".stokenrc");
    assert!(
        text.lines()
            .any(|l| l.starts_with("pin ") && l.len() == 4 + 64),
        "{text}"
    );
    let case = Case {
        name: "rcfile, encrypted PIN",
        source: Source::Rcfile(&rc),
        password: Some("rc pass"),
        devid: None,
    };
    let token = import_and_unlock(&home, &case, &text);
    assert!(token.from_rcfile() && token.has_saved_pin() && !token.needs_pin());
    compare_codes(&home, &case, &token, &[None, Some("1357")]);

    // No password: the PIN is saved in clear.
    stoken(
        &home,
        &[
            "import",
            &format!("--token={plain}"),
            "--new-password=",
            "--force",
        ],
    );
    stoken(&home, &["setpin", "--new-pin=97531864"]);
    let text = home.read(".stokenrc");
    assert!(text.contains("pin 97531864"), "{text}");
    let case = Case {
        name: "rcfile, clear PIN",
        source: Source::Rcfile(&rc),
        password: None,
        devid: None,
    };
    let token = import_and_unlock(&home, &case, &text);
    compare_codes(&home, &case, &token, &[None, Some("1111")]);

    // A token that does not mix PINs in still gets the saved PIN mixed in by stoken.
    let tpl = TEMPLATE
        .replace("DIGITS", "6")
        .replace("INTERVAL", "30")
        .replace("ADDPIN", "0")
        .replace("LOCALPIN", "0");
    let tpl_path = home.write("tpl.xml", &tpl);
    let xml = stoken(
        &home,
        &[
            "export",
            "--sdtid",
            &format!("--token={plain}"),
            &format!("--template={}", tpl_path.display()),
        ],
    );
    let file = home.write("t.sdtid", &xml);
    stoken(
        &home,
        &[
            "import",
            &format!("--file={}", file.display()),
            "--new-password=",
            "--force",
        ],
    );
    stoken(&home, &["setpin", "--new-pin=5555"]);
    let text = home.read(".stokenrc");
    let case = Case {
        name: "rcfile, PIN on a PIN mode 0 token",
        source: Source::Rcfile(&rc),
        password: None,
        devid: None,
    };
    let token = import_and_unlock(&home, &case, &text);
    assert_eq!(token.pin_mode(), Some(PinMode::Prepend));
    compare_codes(&home, &case, &token, &[None, Some("1234")]);
}

#[test]
fn tokens_built_here_are_read_by_stoken() {
    let home = Home::new("built");
    let mut entropy = Sha256::new();
    entropy.update(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            .to_le_bytes(),
    );
    entropy.update(std::process::id().to_le_bytes());
    let mut state: [u8; 32] = entropy.finalize().into();
    let mut next = || {
        state = Sha256::digest(state).into();
        state
    };
    for (digits, interval, pin_mode) in [(6u8, 30u32, 0u8), (8, 30, 3), (6, 60, 2), (8, 60, 1)] {
        let r = next();
        let mut seed = [0u8; 16];
        seed.copy_from_slice(&r[..16]);
        let serial: String = r[16..28]
            .iter()
            .map(|b| char::from(b'0' + b % 10))
            .collect();
        let params = TokenParams {
            serial,
            seed,
            digits,
            interval,
            pin_mode,
            expiry_days: 12_000 + u16::from(r[28]),
        };
        let token = SecurIdToken::from_params(&params).unwrap();
        let pins: &[Option<&str>] = if pin_mode >= 2 { &MIXED_PINS } else { &[None] };
        for (password, devid) in [
            (None, None),
            (Some("built pw"), Some("00112233445566778899aabbccddeeff")),
        ] {
            let s = token.export_v2(password, devid, false).unwrap();
            let name = format!(
                "built {digits}/{interval}/{pin_mode} pw={}",
                password.is_some()
            );
            let case = Case {
                name: &name,
                source: Source::Token(&s),
                password,
                devid,
            };
            let imported = import_and_unlock(&home, &case, &s);
            compare_codes(&home, &case, &imported, pins);
        }
    }
}
