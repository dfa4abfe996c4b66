//! `auth = pam` and `acct = pam` on our server, with the real PAM library: Debian's
//! pam_wrapper points libpam at a test service directory, so the modules run are real
//! ones (pam_matrix for passwords, Debian's pam_oath for a one-time password, pam_listfile
//! for a locked account) without touching the host's /etc/pam.d. nss_wrapper gives alice
//! her Unix groups. Debian's openconnect and ours log in through it, answering every
//! prompt from stdin as scripts do.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ferroconnect_interop::{bin, output_text, pin_sha256, sh, wait_until, Lab, Pki, ServerKind};

const SECS: fn(u64) -> Duration = Duration::from_secs;
/// With several groups offered, openconnect asks which unless told.
const STAFF: &[&str] = &["--authgroup", "staff"];
const PAM_WRAPPER_MODULES: &str = "/usr/lib/x86_64-linux-gnu/pam_wrapper";
const SYSTEM_MODULES: &str = "/usr/lib/x86_64-linux-gnu/security";
/// RFC 4226's test key: its HOTP code at counter 0 is 755224, at 1 287082.
const OATH_KEY_HEX: &str = "3132333435363738393031323334353637383930";

/// Writes the PAM services, their password and OTP databases and the Unix accounts into
/// `dir`, and points the lab server's libpam and NSS at them.
fn pam_world(lab: &mut Lab) {
    let dir = lab.dir.join("pam");
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    let matrix = format!("{PAM_WRAPPER_MODULES}/pam_matrix.so passdb={d}/passdb");
    let matrix_otp = format!("{PAM_WRAPPER_MODULES}/pam_matrix.so passdb={d}/passdb-otp");
    let write = |name: &str, text: String| std::fs::write(dir.join(name), text).unwrap();
    // Passwords, a database per service (pam_matrix's user:password:service lines).
    write(
        "passdb",
        "alice:secret:ocserv\nmallory:secret:ocserv\ncarol:secret:ocserv\n".into(),
    );
    write("passdb-otp", "alice:secret:ocserv-otp\n".into());
    write("locked", "mallory\n".into());
    write("users.oath", format!("HOTP alice - {OATH_KEY_HEX}\n"));
    // Sessions are recorded by a script (pam_exec gives it PAM_TYPE, PAM_USER, PAM_RHOST).
    write(
        "session.sh",
        format!("#!/bin/sh\necho \"$PAM_TYPE $PAM_USER $PAM_RHOST\" >> {d}/sessions\n"),
    );
    sh(&format!("chmod +x {d}/session.sh"));
    write(
        "ocserv",
        format!(
            "auth required {matrix}\n\
             account requisite {SYSTEM_MODULES}/pam_listfile.so item=user sense=deny \
             file={d}/locked onerr=succeed\n\
             account required {matrix}\n\
             session required {SYSTEM_MODULES}/pam_exec.so {d}/session.sh\n"
        ),
    );
    write(
        "ocserv-otp",
        format!(
            "auth required {matrix_otp}\n\
             auth required {SYSTEM_MODULES}/pam_oath.so usersfile={d}/users.oath window=5\n\
             account required {matrix_otp}\n"
        ),
    );
    // A module that never returns (a dead directory server behind PAM).
    write(
        "ocserv-hang",
        format!("auth required {SYSTEM_MODULES}/pam_exec.so /bin/sleep 60\n"),
    );
    // alice is a Unix user in staff (primary) and ops; carol is known only to PAM.
    write(
        "passwd",
        "root:x:0:0:root:/root:/bin/false\nalice:x:1000:5000:Alice:/home/alice:/bin/false\n".into(),
    );
    write(
        "group",
        "root:x:0:\nstaff:x:5000:\nops:x:5001:alice\nsales:x:5002:\n".into(),
    );
    lab.server_env.extend(
        [
            (
                "LD_PRELOAD",
                "libnss_wrapper.so:libpam_wrapper.so".to_owned(),
            ),
            ("PAM_WRAPPER", "1".to_owned()),
            ("PAM_WRAPPER_SERVICE_DIR", format!("{d}/")),
            ("NSS_WRAPPER_PASSWD", format!("{d}/passwd")),
            ("NSS_WRAPPER_GROUP", format!("{d}/group")),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
}

fn pam_lab(test: &str, real_client: bool) -> (Lab, String) {
    let mut lab = Lab::new(test);
    if real_client {
        lab.use_real_client();
    }
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    pam_world(&mut lab);
    let extra = "auto-select-group = true\n\
                 [vhost:otp.example.com]\n\
                 auth = \"pam[service=ocserv-otp]\"\n\
                 [vhost:hang.example.com]\n\
                 auth = \"pam[service=ocserv-hang]\"\n";
    lab.start_server(ServerKind::Ours, &pki, "pam[gid-min=5000]", extra);
    (lab, pin_sha256(&pki.server_cert))
}

#[test]
fn the_real_openconnect_logs_in_through_pam() {
    let (mut lab, pin) = pam_lab("pam-real", true);
    let host = "vpn.example.com";

    // The group list is the system's groups from gid-min up; alice may pick hers.
    let extra = ["--authgroup", "ops", "--dump-http-traffic"];
    let (ok, out) = lab.authenticate_as(host, &pin, "alice", &extra, "secret\n");
    assert!(ok, "alice was refused:\n{out}\n{}", lab.log("ocserv.log"));
    for group in ["staff", "ops", "sales"] {
        let option = format!("<option value=\"{group}\">");
        assert!(out.contains(&option), "group {group} not offered:\n{out}");
    }
    let root = "<option value=\"root\">";
    assert!(!out.contains(root), "a group under gid-min offered:\n{out}");
    // A group she is not in is refused: its settings are not hers.
    let (ok, out) = lab.authenticate_as(host, &pin, "alice", &["--authgroup", "sales"], "secret\n");
    assert!(!ok, "alice got group sales:\n{out}");

    // Wrong password, unknown user, locked account: refused, and the log names PAM's word.
    let (ok, out) = lab.authenticate_as(host, &pin, "alice", STAFF, "wrong\n");
    assert!(!ok, "a wrong password was accepted:\n{out}");
    lab.wait_for_log(
        "ocserv.log",
        "PAM refused the login: authentication:",
        SECS(5),
    );
    let (ok, _) = lab.authenticate_as(host, &pin, "nobody", STAFF, "secret\n");
    assert!(!ok, "an unknown user was accepted");
    let (ok, out) = lab.authenticate_as(host, &pin, "mallory", STAFF, "secret\n");
    assert!(!ok, "a locked account was accepted:\n{out}");
    lab.wait_for_log("ocserv.log", "PAM refused the login: account:", SECS(5));

    // A user PAM knows but the system does not: logged in, with no group (the one asked
    // for cannot be checked, so it is not given).
    let (ok, out) = lab.authenticate_as(host, &pin, "carol", STAFF, "secret\n");
    assert!(ok, "carol was refused:\n{out}");

    // Password and one-time password: two prompts, the second with pam_oath's words.
    let (ok, out) =
        lab.authenticate_as("otp.example.com", &pin, "alice", STAFF, "secret\n755224\n");
    assert!(
        ok,
        "password + OTP refused:\n{out}\n{}",
        lab.log("ocserv.log")
    );
    assert!(
        out.contains("One-time password"),
        "pam_oath's prompt not shown:\n{out}"
    );
    // The same code again is a replay: pam_oath refuses it.
    let (ok, _) = lab.authenticate_as("otp.example.com", &pin, "alice", STAFF, "secret\n755224\n");
    assert!(!ok, "a used OTP was accepted again");

    // A whole tunnel with the group PAM's account gave.
    let resolve = format!("--resolve={host}:{}", lab.server_ip);
    let servercert = format!("--servercert={pin}");
    lab.spawn_client(
        &[
            &resolve,
            &servercert,
            "-u",
            "alice",
            "--authgroup",
            "ops",
            host,
        ],
        "secret\n",
    );
    lab.assert_tunnel("a PAM login");
    let show = output_text(&lab.our_occtl("show user alice"));
    assert!(
        show.contains("ops"),
        "occtl does not show group ops:\n{show}"
    );
}

#[test]
fn our_client_answers_each_pam_prompt_from_stdin() {
    let (lab, pin) = pam_lab("pam-ours", false);
    let (ok, out) = lab.authenticate_as(
        "otp.example.com",
        &pin,
        "alice",
        &["--passwd-on-stdin", "--non-inter", "--authgroup", "ops"],
        "secret\n287082\n",
    );
    assert!(
        ok,
        "password + OTP refused:\n{out}\n{}",
        lab.log("ocserv.log")
    );
}

#[test]
fn acct_pam_refuses_the_tunnel_of_an_account_pam_does_not_allow() {
    let mut lab = Lab::new("pam-acct");
    lab.use_real_client();
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    pam_world(&mut lab);
    // Password files decide the login; PAM's account check decides the tunnel.
    let auth = lab.make_passwd(
        &bin("ocpasswd"),
        &[("alice", "secret"), ("mallory", "secret")],
        None,
    );
    lab.start_server(ServerKind::Ours, &pki, &auth, "acct = \"pam\"\n");
    let pin = pin_sha256(&pki.server_cert);
    let servercert = format!("--servercert={pin}");
    let out = lab.run_client(
        &[
            &servercert,
            "-u",
            "mallory",
            "--passwd-on-stdin",
            &lab.server_ip,
        ],
        "secret\n",
        SECS(40),
    );
    let text = output_text(&out);
    assert!(!out.status.success(), "mallory's tunnel came up:\n{text}");
    assert!(
        text.contains("401"),
        "no 401 for the refused account:\n{text}"
    );
    lab.wait_for_log("ocserv.log", "account refused: PAM account check", SECS(5));
    let server_ip = lab.server_ip.clone();
    lab.spawn_client(
        &[&servercert, "-u", "alice", "--passwd-on-stdin", &server_ip],
        "secret\n",
    );
    lab.assert_tunnel("alice, whose account PAM allows");
}

#[test]
fn a_hanging_pam_module_is_cut_off_and_holds_up_nobody() {
    let (mut lab, pin) = pam_lab("pam-hang", true);
    let mut args = alice_at(&lab, &pin, "hang.example.com");
    args.insert(0, "--authenticate".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    lab.spawn_client(&args, "secret\n");
    std::thread::sleep(SECS(1));
    // Meanwhile alice logs in on the default host through PAM at once.
    let (ok, out) = lab.authenticate_as("vpn.example.com", &pin, "alice", STAFF, "secret\n");
    assert!(ok, "alice waited for the hanging module:\n{out}");
    let log = lab.log("ocserv.log");
    assert!(!log.contains("gave no prompt or verdict"), "{log}");
    // The hanging one is refused once PAM's step limit passes, with the reason logged.
    lab.wait_for_log(
        "ocserv.log",
        "PAM refused the login: the PAM stack gave no prompt or verdict within 20 s",
        SECS(40),
    );
}

/// A PAM login's VPN session opens a PAM session (pam_open_session, with the client's
/// address as PAM_RHOST) and closes it when the user logs off.
#[test]
fn a_pam_session_lasts_as_long_as_the_vpn_session() {
    let (mut lab, pin) = pam_lab("pam-session", false);
    let sessions = lab.dir.join("pam/sessions");
    let args = alice_at(&lab, &pin, "vpn.example.com");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let pid = lab.spawn_client(&args, "secret\n");
    lab.assert_tunnel("a PAM login with a session");
    let read = || std::fs::read_to_string(&sessions).unwrap_or_default();
    let opened = format!("open_session alice {}", lab.client_ip);
    assert!(
        wait_until(SECS(10), || read().contains(&opened).then_some(())).is_some(),
        "no session opened: {:?}\n{}",
        read(),
        lab.log("ocserv.log")
    );
    assert!(!read().contains("close_session"), "{}", read());
    lab.log_off(pid);
    assert!(
        wait_until(SECS(10), || read()
            .contains("close_session alice")
            .then_some(()))
        .is_some(),
        "no session closed: {:?}\n{}",
        read(),
        lab.log("ocserv.log")
    );
    lab.wait_for_log("ocserv.log", "PAM: session closed for 'alice'", SECS(5));
}

/// The client's arguments for alice in group staff at `host` (the lab server).
fn alice_at(lab: &Lab, pin: &str, host: &str) -> Vec<String> {
    [
        &format!("--resolve={host}:{}", lab.server_ip),
        &format!("--servercert={pin}"),
        "-u",
        "alice",
        "--authgroup",
        "staff",
        host,
    ]
    .map(str::to_owned)
    .to_vec()
}
