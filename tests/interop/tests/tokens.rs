//! One-time passwords end to end: `--token-mode` clients (ours and Debian's openconnect)
//! against servers asking for an OTP after the password (Debian's ocserv with liboath, and
//! ours), in network namespaces with real tunnels.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferroconnect_interop::{bin, login_args, output_text, Lab, Pki, ServerKind};

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// RFC 4226's test key, as hex (users file) and base32 (`--token-secret`).
const KEY_HEX: &str = "3132333435363738393031323334353637383930";
const KEY_BASE32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A server of `kind` asking alice (password "secret") for a password and then an OTP
/// from the liboath users file holding `otp_line`. Returns the lab, PKI and users file.
fn otp_lab(test: &str, kind: ServerKind, otp_line: &str) -> (Lab, Pki, PathBuf) {
    otp_lab_with(test, kind, otp_line, "")
}

/// [`otp_lab`] with `extra` configuration lines.
fn otp_lab_with(test: &str, kind: ServerKind, otp_line: &str, extra: &str) -> (Lab, Pki, PathBuf) {
    let mut lab = Lab::new(test);
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let tool = match kind {
        ServerKind::Debian => PathBuf::from("ocpasswd"),
        ServerKind::Ours => bin("ocpasswd"),
    };
    let passwd = lab.make_passwd(&tool, &[("alice", "secret")], None);
    let users = lab.dir.join("users.oath");
    std::fs::write(&users, format!("# OTP users\n{otp_line}\n")).unwrap();
    let auth = passwd.replace(']', &format!(",otp={}]", users.display()));
    lab.start_server(kind, &pki, &auth, extra);
    (lab, pki, users)
}

fn users_line(users: &Path) -> String {
    std::fs::read_to_string(users)
        .unwrap()
        .lines()
        .find(|l| l.contains("alice"))
        .unwrap_or_default()
        .to_string()
}

/// The moving factor and code liboath (or we) stored for alice after a login: HOTP keeps
/// the counter it accepted, TOTP keeps 0 and the code.
fn stored(users: &Path) -> (u64, String) {
    let line = users_line(users);
    let fields: Vec<&str> = line.split_whitespace().collect();
    match (fields.get(4).and_then(|c| c.parse().ok()), fields.get(5)) {
        (Some(counter), Some(code)) => (counter, code.to_string()),
        _ => panic!("no counter and code in {line:?}"),
    }
}

/// The code of the RFC key at an HOTP counter or TOTP step.
fn oath_code(counter: u64) -> String {
    oc_otp::oath::hotp(
        oc_otp::oath::Algorithm::Sha1,
        b"12345678901234567890",
        counter,
        6,
    )
}

fn assert_tunnel(lab: &Lab) {
    assert!(
        lab.ping_behind(SECS(20)),
        "no ping over the tunnel:\nclient:\n{}\nserver:\n{}",
        lab.log("client.log"),
        lab.log("ocserv.log")
    );
}

/// Starts the lab's client as alice with `--token-mode totp` and waits for the tunnel;
/// returns the TOTP step before it started.
fn connect_totp_client(lab: &mut Lab, pki: &Pki, secret: &str) -> u64 {
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    let before = now() / 30;
    lab.spawn_client(
        &login_args(
            &ca,
            &["--token-mode", "totp", "--token-secret", secret, &url],
        ),
        "secret\n",
    );
    assert_tunnel(lab);
    before
}

#[test]
fn our_totp_client_logs_into_debian_ocserv_with_an_otp_file() {
    let (mut lab, pki, users) = otp_lab(
        "tok-totp-oc",
        ServerKind::Debian,
        &format!("HOTP/T30 alice - {KEY_HEX}"),
    );
    let before = connect_totp_client(
        &mut lab,
        &pki,
        &format!("base32:{}", KEY_BASE32.to_lowercase()),
    );
    assert!(lab
        .log("client.log")
        .contains("Generating OATH TOTP token code"));
    // liboath stored the code it accepted: the one for the current step.
    let (_, code) = stored(&users);
    assert!(
        (before..=now() / 30).any(|step| oath_code(step) == code),
        "{code} is not the code of a step since {before}: {}",
        users_line(&users)
    );
}

#[test]
fn our_hotp_client_advances_its_counter_file_against_debian_ocserv() {
    let (lab, pki, users) = otp_lab(
        "tok-hotp-oc",
        ServerKind::Debian,
        &format!("HOTP alice - {KEY_HEX} 0"),
    );
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    let token = lab.dir.join("hotp.token");
    std::fs::write(&token, format!("0x{KEY_HEX},5\n")).unwrap();
    let secret = format!("@{}", token.display());
    let args = [
        "--token-mode",
        "hotp",
        "--token-secret",
        &secret,
        "--authenticate",
        &url,
    ];
    let out = lab.run_client(&login_args(&ca, &args), "secret\n", SECS(30));
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("COOKIE="),
        "{}",
        output_text(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&token).unwrap(),
        format!("0x{KEY_HEX},6\n"),
        "counter written back in the same form"
    );
    // liboath's look-ahead found counter 5 and stored it.
    assert_eq!(stored(&users), (5, oath_code(5)), "{}", users_line(&users));
    // The next login uses counter 6 from the file.
    let out = lab.run_client(&login_args(&ca, &args), "secret\n", SECS(30));
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(
        std::fs::read_to_string(&token).unwrap(),
        format!("0x{KEY_HEX},7\n")
    );
    assert_eq!(stored(&users).0, 6);
}

#[test]
fn debian_openconnect_totp_logs_into_our_server() {
    let (mut lab, pki, users) = otp_lab(
        "tok-totp-ours",
        ServerKind::Ours,
        &format!("HOTP/T30 alice - {KEY_HEX}"),
    );
    lab.use_real_client();
    let before = connect_totp_client(&mut lab, &pki, &format!("base32:{KEY_BASE32}"));
    // The code was recorded in liboath's format: counter, code and timestamp.
    let (_, code) = stored(&users);
    assert!(
        (before..=now() / 30).any(|step| oath_code(step) == code),
        "{code} is not the code of a step since {before}: {}",
        users_line(&users)
    );
    assert!(users_line(&users).ends_with('L'), "{}", users_line(&users));
}

#[test]
fn our_hotp_client_logs_into_our_server_and_both_counters_move() {
    let (lab, pki, users) = otp_lab(
        "tok-hotp-ours",
        ServerKind::Ours,
        &format!("HOTP alice - {KEY_HEX} 0"),
    );
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    let token = lab.dir.join("hotp.uri");
    std::fs::write(
        &token,
        format!("otpauth://hotp/ACME:alice?secret={KEY_BASE32}&counter=2"),
    )
    .unwrap();
    let secret = format!("@{}", token.display());
    let args = [
        "--token-mode",
        "hotp",
        "--token-secret",
        &secret,
        "--authenticate",
        &url,
    ];
    for expected in [2, 3] {
        let out = lab.run_client(&login_args(&ca, &args), "secret\n", SECS(30));
        assert!(out.status.success(), "{}", output_text(&out));
        assert_eq!(stored(&users), (expected, oath_code(expected)));
        assert_eq!(
            std::fs::read_to_string(&token).unwrap(),
            format!(
                "otpauth://hotp/ACME:alice?secret={KEY_BASE32}&counter={}",
                expected + 1
            )
        );
    }
}

#[test]
fn our_server_refuses_a_reused_code() {
    let (mut lab, pki, users) = otp_lab(
        "tok-replay",
        ServerKind::Ours,
        &format!("HOTP/T30 alice - {KEY_HEX}"),
    );
    lab.use_real_client();
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    let entry = format!("main:secondary_password={}", oath_code(now() / 30));
    let args = ["-F", &entry, "--authenticate", &url];
    let first = lab.run_client(&login_args(&ca, &args), "secret\n", SECS(30));
    assert!(first.status.success(), "{}", output_text(&first));
    let recorded = users_line(&users);
    let second = lab.run_client(&login_args(&ca, &args), "secret\n", SECS(30));
    assert_eq!(second.status.code(), Some(1), "{}", output_text(&second));
    assert!(
        !output_text(&second).contains("COOKIE="),
        "{}",
        output_text(&second)
    );
    lab.wait_for_log(
        "ocserv.log",
        "OTP auth failed for 'alice': The OTP has been replayed",
        SECS(5),
    );
    assert_eq!(
        users_line(&users),
        recorded,
        "a refused code changes nothing"
    );
    // A wrong code is refused as well, with its own reason.
    let wrong = format!(
        "main:secondary_password={:06}",
        (oath_code(now() / 30).parse::<u32>().unwrap() + 1) % 1_000_000
    );
    let out = lab.run_client(
        &login_args(&ca, &["-F", &wrong, "--authenticate", &url]),
        "secret\n",
        SECS(30),
    );
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    lab.wait_for_log("ocserv.log", "The OTP is not valid", SECS(5));
}

#[test]
fn yubioath_without_a_pcsc_service_fails_before_logging_in() {
    let out = std::process::Command::new(bin("openconnect"))
        .args([
            "--token-mode",
            "yubioath",
            "--non-inter",
            "https://192.0.2.1/",
        ])
        .env("PCSCLITE_CSOCK_NAME", "/nonexistent/pcscd.comm")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("cannot reach the PC/SC service (is pcscd running?)"),
        "{}",
        output_text(&out)
    );
}

/// Runs Debian's `stoken` with HOME in `home`; the last line of its output.
fn stoken(home: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("stoken")
        .args(args)
        .env("HOME", home)
        .output()
        .expect("stoken (apt-get install stoken)");
    assert!(
        out.status.success(),
        "stoken {args:?}: {}",
        output_text(&out)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn our_rsa_client_logs_in_with_the_code_stoken_computes() {
    let mut lab = Lab::new("tok-rsa");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    lab.start_our_server(&pki, &[("alice", "placeholder")], "");
    // A token without PIN (mode 0), stored in ~/.stokenrc by stoken itself.
    let token = oc_otp::securid::SecurIdToken::from_params(&oc_otp::securid::TokenParams {
        serial: "000123456789".into(),
        seed: *b"ferroconnect-key",
        digits: 8,
        interval: 60,
        pin_mode: 0,
        expiry_days: 16000,
    })
    .unwrap()
    .export_v2(None, None, false)
    .unwrap();
    let home = lab.dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    stoken(&home, &["import", &format!("--token={token}"), "--force"]);
    // Stay inside one 60 s interval from computing the code to logging in.
    while now() % 60 > 40 {
        std::thread::sleep(SECS(1));
    }
    let code = stoken(&home, &["tokencode", "--force"]);
    assert_eq!(code.len(), 8, "{code}");
    lab.make_passwd(&bin("ocpasswd"), &[("alice", &code)], None);

    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    let args = [
        "-u",
        "alice",
        "--non-inter",
        "--cafile",
        &ca,
        "--token-mode",
        "rsa",
        "-F",
        "stoken:pin=",
        "--authenticate",
        &url,
    ];
    let out = lab
        .client_command(&args)
        .env("HOME", &home)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("COOKIE="),
        "{}",
        output_text(&out)
    );
    assert!(
        output_text(&out).contains("Generating RSA token code"),
        "{}",
        output_text(&out)
    );
}

/// A PSKC file goes back and forth between Debian's openconnect (libpskc reads it and writes
/// the new counter) and ours (reads libpskc's output, writes the next counter).
#[test]
fn pskc_hotp_file_shared_by_debian_openconnect_and_ours() {
    let (mut lab, pki, users) = otp_lab(
        "tok-pskc",
        ServerKind::Ours,
        &format!("HOTP alice - {KEY_HEX} 0"),
    );
    let pskc = lab.dir.join("token.pskc");
    std::fs::write(
        &pskc,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <KeyContainer Version=\"1.0\" xmlns=\"urn:ietf:params:xml:ns:keyprov:pskc\">\
         <KeyPackage><Key Id=\"1\" Algorithm=\"urn:ietf:params:xml:ns:keyprov:pskc:hotp\">\
         <AlgorithmParameters><ResponseFormat Length=\"6\" Encoding=\"DECIMAL\"/></AlgorithmParameters>\
         <Data><Secret><PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</PlainValue></Secret>\
         <Counter><PlainValue>0</PlainValue></Counter></Data></Key></KeyPackage></KeyContainer>\n",
    )
    .unwrap();
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    let secret = format!("@{}", pskc.display());
    let args = [
        "--token-mode",
        "hotp",
        "--token-secret",
        &secret,
        "--authenticate",
        &url,
    ];
    lab.use_real_client();
    let out = lab.run_client(&login_args(&ca, &args), "secret\n", SECS(30));
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(stored(&users).0, 0);
    let after_debian = std::fs::read_to_string(&pskc).unwrap();
    assert!(
        after_debian.contains("<Counter>") || after_debian.contains(":Counter>"),
        "{after_debian}"
    );

    lab.client_bin = bin("openconnect");
    let out = lab.run_client(&login_args(&ca, &args), "secret\n", SECS(30));
    assert!(
        out.status.success(),
        "our client on libpskc's file: {}",
        output_text(&out)
    );
    assert_eq!(stored(&users), (1, oath_code(1)), "{after_debian}");
    let ours = std::fs::read_to_string(&pskc).unwrap();
    let mut reread =
        oc_otp::secret::OathSecret::parse(&ours, oc_otp::secret::OathKind::Hotp).unwrap();
    assert_eq!(reread.counter(), 2, "{ours}");
    assert_eq!(reread.next_hotp(), oath_code(2));
}

/// ocserv's OTP-only users: an entry without a password gives the code as its password.
#[test]
fn a_user_without_a_password_logs_in_with_the_code_alone() {
    let (mut lab, pki, users) = otp_lab(
        "tok-otp-only",
        ServerKind::Ours,
        &format!("HOTP/T30 alice - {KEY_HEX}\nHOTP/T30 otto - {KEY_HEX}"),
    );
    let passwd = lab.dir.join("ocpasswd");
    let mut entries = std::fs::read_to_string(&passwd).unwrap();
    entries.push_str("otto:*:\n");
    std::fs::write(&passwd, entries).unwrap();
    lab.use_real_client();
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    let args = [
        "-u",
        "otto",
        "--passwd-on-stdin",
        "--non-inter",
        "--cafile",
        &ca,
        "--authenticate",
        &url,
    ];
    let code = oath_code(now() / 30);
    let out = lab.run_client(&args, &format!("{code}\n"), SECS(30));
    assert!(out.status.success(), "{}", output_text(&out));
    let text_now = std::fs::read_to_string(&users).unwrap();
    assert!(
        text_now
            .lines()
            .any(|l| l.contains("otto") && l.contains(&code)),
        "{text_now}"
    );
    // The same code again is a replay.
    let out = lab.run_client(&args, &format!("{code}\n"), SECS(30));
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
}

/// `printf 'secret\nCODE\n' | openconnect -u alice --passwd-on-stdin --non-inter`, no token
/// mode: the OTP prompt Debian's ocserv sends after the password takes stdin's next line,
/// as upstream's main.c reads it (`allow_stdin_read`). With no line left the
/// non-interactive client has no answer and gives up (exit 1) without posting one; without
/// `--non-inter` the lines answer the same way.
#[test]
fn our_client_answers_the_otp_prompt_from_stdin_after_the_password() {
    // ocserv 1.1.6 counts each OTP prompt after a right password as a retry (10 ban
    // points): without this the fourth login of the test would be banned.
    let (lab, pki, users) = otp_lab_with(
        "tok-stdin-oc",
        ServerKind::Debian,
        &format!("HOTP alice - {KEY_HEX} 0"),
        "max-ban-score = 0\n",
    );
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    let non_inter = login_args(&ca, &["--authenticate", &url]);

    let out = lab.run_client(&non_inter, "secret\n", SECS(30));
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("User input required in non-interactive mode"),
        "{text}"
    );
    assert!(!text.contains("COOKIE="), "{text}");

    let code = oath_code(1);
    let out = lab.run_client(&non_inter, &format!("secret\n{code}\n"), SECS(30));
    let text = output_text(&out);
    assert!(out.status.success(), "{text}\n{}", lab.log("ocserv.log"));
    assert!(text.contains("COOKIE="), "{text}");
    assert_eq!(stored(&users), (1, code), "{}", users_line(&users));

    let interactive = [
        "-u",
        "alice",
        "--passwd-on-stdin",
        "--cafile",
        &ca,
        "--authenticate",
        &url,
    ];
    let code = oath_code(2);
    let out = lab.run_client(&interactive, &format!("secret\n{code}\n"), SECS(30));
    let text = output_text(&out);
    assert!(out.status.success(), "{text}\n{}", lab.log("ocserv.log"));
    assert_eq!(stored(&users), (2, code), "{}", users_line(&users));
    // Interactive, the end of stdin at the OTP prompt ends the login (exit 1).
    let out = lab.run_client(&interactive, "secret\n", SECS(30));
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("standard input closed"), "{text}");
}
