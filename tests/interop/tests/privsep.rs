//! Our `ocserv` started from ocserv's own configuration files as shipped (Debian's
//! `/etc/ocserv/ocserv.conf`, upstream's doc/sample.config), edited only for certificates,
//! addresses, ports and the lab's paths, with the key, password and OTP files
//! `root:root 0600` in a root-only directory and `run-as-user = nobody`: the set-up on which
//! a single unprivileged process refused every login. Debian's openconnect logs in with a
//! password, with a password and an OTP, and with a certificate; scripts run as root;
//! iroutes are installed; SIGHUP serves a replaced root-only key; and the network process
//! is checked from /proc: its user, no capabilities, no_new_privs, seccomp, and none of the
//! secret files among its open files or mappings. Killing the network process restarts it;
//! killing the security module stops the server with a failure, as ocserv does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferroconnect_interop::{
    authenticate_values, bin, login_args, output_text, process_alive, sh, wait_until, Lab, Pki,
    ServerKind,
};

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// RFC 4226's test key, as hex (users file) and base32 (`--token-secret`).
const KEY_HEX: &str = "3132333435363738393031323334353637383930";
const KEY_BASE32: &str = "base32:GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// The active settings of ocserv 1.5's doc/sample.config.
const UPSTREAM_SAMPLE: &str = include_str!("../fixtures/upstream-1.5-sample.conf");

/// Replaces the first active `key = ...` line of `text` with `key = value`, or adds it.
fn set(text: &str, key: &str, value: &str) -> String {
    let mut done = false;
    let out: Vec<String> = text
        .lines()
        .map(|line| {
            let active = line
                .split_once('=')
                .is_some_and(|(k, _)| k.trim() == key && !line.trim_start().starts_with('#'));
            if active && !done {
                done = true;
                format!("{key} = {value}")
            } else {
                line.to_string()
            }
        })
        .collect();
    if done {
        out.join("\n") + "\n"
    } else {
        add(text, key, value)
    }
}

/// Replaces every active `key = ...` line of `text` (in every section) with `key = value`,
/// or adds it to the default section.
fn set_every(text: &str, key: &str, value: &str) -> String {
    let is_key = |line: &str| {
        line.split_once('=')
            .is_some_and(|(k, _)| k.trim() == key && !line.trim_start().starts_with('#'))
    };
    if !text.lines().any(is_key) {
        return add(text, key, value);
    }
    let out: Vec<String> = text
        .lines()
        .map(|line| {
            if is_key(line) {
                format!("{key} = {value}")
            } else {
                line.to_string()
            }
        })
        .collect();
    out.join("\n") + "\n"
}

/// Adds `key = value` to the global section (before any `[vhost:...]` section, whose
/// settings would not apply to the lab's clients).
fn add(text: &str, key: &str, value: &str) -> String {
    let line = format!("{key} = {value}\n");
    match text.find("\n[vhost:") {
        Some(at) => format!("{}\n{line}{}", &text[..at], &text[at + 1..]),
        None => format!("{text}{line}"),
    }
}

/// A root-only directory (0700) in the lab holding the secrets, each `root:root 0600`.
struct Secrets {
    dir: PathBuf,
}

impl Secrets {
    fn create(lab: &Lab, pki: &Pki) -> Self {
        let dir = lab.dir.join("secret");
        std::fs::create_dir_all(&dir).unwrap();
        let secrets = Self { dir };
        secrets.install_key(pki);
        let passwd = secrets.path("passwd");
        assert_eq!(passwd, lab.dir.join("secret/passwd"));
        lab.make_passwd_at(
            "secret/passwd",
            &bin("ocpasswd"),
            &[("alice", "secret")],
            None,
        );
        std::fs::write(
            secrets.path("users.oath"),
            format!("HOTP/T30 alice - {KEY_HEX}\n"),
        )
        .unwrap();
        secrets.lock_down();
        secrets
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn install_key(&self, pki: &Pki) {
        std::fs::copy(&pki.server_key, self.path("server.key")).unwrap();
        self.lock_down();
    }

    fn lock_down(&self) {
        sh(&format!(
            "chown -R root:root {d} && chmod 700 {d} && chmod 600 {d}/*",
            d = self.dir.display()
        ));
    }
}

/// Edits for certificates, addresses, ports and the lab's own paths (so tests can run side
/// by side); everything else stays as shipped.
fn for_lab(shipped: &str, lab: &Lab, pki: &Pki, secrets: &Secrets, auth: &str) -> String {
    let d = lab.dir.display();
    let mut c = set(shipped, "auth", &format!("\"{auth}\""));
    // In the default section and in upstream's [vhost:www.example.com] alike.
    c = set_every(&c, "server-cert", &pki.server_cert.display().to_string());
    c = set_every(
        &c,
        "server-key",
        &secrets.path("server.key").display().to_string(),
    );
    c = set_every(&c, "ca-cert", &pki.ca_pem.display().to_string());
    c = set(&c, "run-as-user", "nobody");
    c = set(&c, "run-as-group", "nogroup");
    c = set(&c, "socket-file", &format!("{d}/ocserv-socket"));
    c = set(&c, "pid-file", &format!("{d}/ocserv.pid"));
    c = set(&c, "occtl-socket-file", &format!("{d}/occtl.sock"));
    c = set(&c, "device", &format!("{}v", lab.name));
    c = set(&c, "ipv4-network", &lab.pool);
    add(&c, "route", &format!("{}/32", lab.behind_ip))
}

/// A connect/disconnect script recording who ran it and the variables it got.
fn uid_script(lab: &Lab) -> String {
    let path = lab.dir.join("server-script.sh");
    let d = lab.dir.display();
    std::fs::write(
        &path,
        format!("#!/bin/sh\nid -u > {d}/script.$REASON.uid\nenv | sort > {d}/script.$REASON.env\n"),
    )
    .unwrap();
    sh(&format!("chmod 755 {}", path.display()));
    path.display().to_string()
}

/// The network process: the main process's child started with `--internal-role worker`.
fn child_with_role(main_pid: u32, role: &str) -> Option<u32> {
    let children =
        std::fs::read_to_string(format!("/proc/{main_pid}/task/{main_pid}/children")).ok()?;
    children.split_whitespace().find_map(|pid| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let has_role = args
            .windows(2)
            .any(|w| w[0] == b"--internal-role" && w[1] == role.as_bytes());
        has_role.then(|| pid.parse().ok()).flatten()
    })
}

fn status_field(pid: u32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{field}:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// What /proc says the network process may do and holds.
fn assert_confined(pid: u32, secrets: &Secrets, seccomp: bool) {
    let nobody = sh("id -u nobody").trim().to_string();
    let nogroup = sh("getent group nogroup | cut -d: -f3").trim().to_string();
    let ids = |field| {
        status_field(pid, field)
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert!(
        ids("Uid").iter().all(|u| *u == nobody),
        "Uid {:?}",
        ids("Uid")
    );
    assert!(
        ids("Gid").iter().all(|g| *g == nogroup),
        "Gid {:?}",
        ids("Gid")
    );
    for caps in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(pid, caps), "0000000000000000", "{caps}");
    }
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");
    assert_eq!(
        status_field(pid, "Seccomp"),
        if seccomp { "2" } else { "0" }
    );
    let secret = secrets.dir.display().to_string();
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    assert!(!maps.contains(&secret), "a secret file is mapped:\n{maps}");
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let target = std::fs::read_link(fd.unwrap().path()).unwrap_or_default();
        assert!(
            !target.starts_with(&secrets.dir),
            "a secret file is open: {}",
            target.display()
        );
    }
    // The key file is not even readable by it.
    let key_path = secrets.path("server.key");
    let readable = std::process::Command::new("setpriv")
        .args([
            "--reuid",
            &nobody,
            "--regid",
            &nogroup,
            "--clear-groups",
            "cat",
        ])
        .arg(&key_path)
        .output()
        .unwrap();
    assert!(!readable.status.success(), "nobody can read the key");
}

/// The occtl socket is a boundary of the network process too: a connection that sends
/// nothing, an empty line, and a line longer than any request each end on their own, and
/// occtl still gets answers.
fn hostile_control_socket(lab: &Lab) {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let socket = lab.dir.join("occtl.sock");
    drop(UnixStream::connect(&socket).unwrap());
    for input in [b"\n".to_vec(), vec![b'a'; 1 << 20]] {
        let mut stream = UnixStream::connect(&socket).unwrap();
        stream.set_read_timeout(Some(SECS(10))).unwrap();
        // The server may close before the whole line is written.
        let _ = stream.write_all(&input);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        assert!(answer.len() < 4096, "an answer of {} bytes", answer.len());
    }
    let out = lab.our_occtl("show status");
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("Sec-mod PID"),
        "{}",
        output_text(&out)
    );
}

/// The SHA-256 fingerprint of the certificate the server presents now.
fn served_fingerprint(lab: &Lab) -> String {
    let out = lab.in_client(&format!(
        "echo | openssl s_client -connect {}:443 2>/dev/null | openssl x509 -noout -fingerprint -sha256",
        lab.server_ip
    ));
    output_text(&out).trim().to_string()
}

fn file_fingerprint(cert: &Path) -> String {
    sh(&format!(
        "openssl x509 -in {} -noout -fingerprint -sha256",
        cert.display()
    ))
    .trim()
    .to_string()
}

#[test]
fn debian_stock_config_with_root_only_files() {
    let mut lab = Lab::new("privsep-debian");
    lab.use_real_client();
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let secrets = Secrets::create(&lab, &pki);
    let shipped = std::fs::read_to_string("/etc/ocserv/ocserv.conf")
        .expect("Debian's ocserv package (scripts/deps.sh installs it)");
    let auth = format!("plain[passwd={}]", secrets.path("passwd").display());
    let users = lab.dir.join("config-per-user");
    std::fs::create_dir_all(&users).unwrap();
    std::fs::write(users.join("alice"), "iroute = 198.19.250.0/24\n").unwrap();
    let script = uid_script(&lab);
    let mut config = for_lab(&shipped, &lab, &pki, &secrets, &auth);
    config = set(&config, "config-per-user", &users.display().to_string());
    config = set(&config, "connect-script", &script);
    config = set(&config, "disconnect-script", &script);
    let main_pid = {
        lab.start_server_with_config(ServerKind::Ours, &config);
        lab.server_pid()
    };
    let worker = child_with_role(main_pid, "worker").expect("a network process");
    assert_confined(worker, &secrets, true);
    assert_eq!(
        status_field(main_pid, "Uid").split_whitespace().next(),
        Some("0")
    );
    hostile_control_socket(&lab);

    // A password login, checked by the security module against the root-only file.
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    let client_script = lab.recording_script();
    lab.spawn_client(&login_args(&ca, &["-s", &client_script, &url]), "secret\n");
    lab.assert_tunnel("with a password");
    // The connect script ran as root, with ocserv's variables.
    let uid = wait_until(SECS(10), || {
        Some(lab.log("script.connect.uid")).filter(|s| !s.is_empty())
    })
    .unwrap_or_default();
    assert_eq!(uid.trim(), "0", "{}", lab.log("ocserv.log"));
    assert!(lab.log("script.connect.env").contains("USERNAME=alice"));
    // alice's iroute points at the tun device.
    let route = output_text(&lab.in_server("ip route show 198.19.250.0/24"));
    assert!(
        route.contains(&format!("dev {}v", lab.name)),
        "iroute not installed: {route:?}\n{}",
        lab.log("ocserv.log")
    );

    // SIGHUP with a new root-only key and certificate: new handshakes get the new one.
    let before = served_fingerprint(&lab);
    assert_eq!(before, file_fingerprint(&pki.server_cert));
    pki.renew_server_cert(&lab.server_ip);
    secrets.install_key(&pki);
    sh(&format!("kill -HUP {main_pid}"));
    lab.wait_for_log("ocserv.log", "configuration reloaded", SECS(10));
    let after = served_fingerprint(&lab);
    assert_eq!(after, file_fingerprint(&pki.server_cert));
    assert_ne!(before, after);
    // The tunnel of before the reload still carries traffic.
    assert!(lab.ping_behind(SECS(10)));
}

#[test]
fn upstream_sample_config_password_and_otp() {
    let mut lab = Lab::new("privsep-upstream-otp");
    lab.use_real_client();
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let secrets = Secrets::create(&lab, &pki);
    let auth = format!(
        "plain[passwd={},otp={}]",
        secrets.path("passwd").display(),
        secrets.path("users.oath").display()
    );
    let config = for_lab(UPSTREAM_SAMPLE, &lab, &pki, &secrets, &auth);
    lab.start_server_with_config(ServerKind::Ours, &config);
    let worker = child_with_role(lab.server_pid(), "worker").expect("a network process");
    assert_confined(worker, &secrets, true);
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    lab.spawn_client(
        &login_args(
            &ca,
            &["--token-mode", "totp", "--token-secret", KEY_BASE32, &url],
        ),
        "secret\n",
    );
    lab.assert_tunnel("with password + OTP");
    // The security module recorded the code in the root-only users file.
    let users = std::fs::read_to_string(secrets.path("users.oath")).unwrap();
    assert!(
        users.split_whitespace().count() > 4,
        "use not recorded: {users:?}"
    );
    assert_eq!(
        sh(&format!(
            "stat -c %U:%a {}",
            secrets.path("users.oath").display()
        ))
        .trim(),
        "root:600"
    );
}

/// Our server from upstream's sample with certificate authentication (user from the CN)
/// and Debian's client; the client certificate of carol.
struct CertLab {
    lab: Lab,
    config: String,
    path: PathBuf,
    ca: String,
    cert: String,
    key: String,
    url: String,
}

fn cert_lab(test: &str) -> CertLab {
    let mut lab = Lab::new(test);
    lab.use_real_client();
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let secrets = Secrets::create(&lab, &pki);
    let mut config = for_lab(UPSTREAM_SAMPLE, &lab, &pki, &secrets, "certificate");
    config = set(&config, "cert-user-oid", "2.5.4.3");
    let path = lab.start_server_with_config(ServerKind::Ours, &config);
    let (cert, key, _) = pki.client_cert(&lab.dir, "carol", "p12pass");
    CertLab {
        config,
        path,
        ca: pki.ca_pem.display().to_string(),
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        url: format!("https://{}/", lab.server_ip),
        lab,
    }
}

#[test]
fn upstream_sample_config_certificate_login() {
    let CertLab {
        mut lab,
        ca,
        cert,
        key,
        url,
        ..
    } = cert_lab("privsep-upstream-cert");
    lab.spawn_client(
        &[
            "--non-inter",
            "--cafile",
            &ca,
            "-c",
            &cert,
            "-k",
            &key,
            &url,
        ],
        "",
    );
    lab.assert_tunnel("with a certificate");
    assert!(lab.log("ocserv.log").contains("user 'carol' authenticated"));
}

#[test]
fn network_process_restarts_and_security_module_death_stops_the_server() {
    let mut lab = Lab::new("privsep-faults");
    lab.use_real_client();
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let secrets = Secrets::create(&lab, &pki);
    let auth = format!("plain[passwd={}]", secrets.path("passwd").display());
    let shipped = std::fs::read_to_string("/etc/ocserv/ocserv.conf").unwrap();
    let config = for_lab(&shipped, &lab, &pki, &secrets, &auth);
    lab.start_server_with_config(ServerKind::Ours, &config);
    let main_pid = lab.server_pid();
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    lab.spawn_client(&login_args(&ca, &[&url]), "secret\n");
    lab.assert_tunnel("with a password");

    // SIGHUP to the whole process group (as `kill -HUP -- -PID` or a service manager
    // sends it) reloads once; the other processes take orders from the main one only.
    let secmod = child_with_role(main_pid, "secmod").expect("a security module");
    sh(&format!("/bin/kill -s HUP -- -{main_pid}"));
    lab.wait_for_log("ocserv.log", "configuration reloaded", SECS(10));
    assert!(process_alive(secmod), "SIGHUP killed the security module");
    // SIGUSR2 (ocserv's maintenance signal, as upstream's test-maintenance sends it) to
    // the group: noted, nobody dies.
    let worker_before = child_with_role(main_pid, "worker").unwrap();
    sh(&format!("/bin/kill -s USR2 -- -{main_pid}"));
    lab.wait_for_log("ocserv.log", "performing maintenance cycle", SECS(10));
    for pid in [main_pid, secmod, worker_before] {
        assert!(process_alive(pid), "SIGUSR2 killed {pid}");
    }

    // The network process dies: the main process says so and starts another; the
    // client reconnects with its cookie.
    let worker = child_with_role(main_pid, "worker").unwrap();
    sh(&format!("kill -KILL {worker}"));
    lab.wait_for_log("ocserv.log", "network process restarted", SECS(15));
    assert!(lab
        .log("ocserv.log")
        .contains("the network process exited (signal: 9"));
    let new_worker = wait_until(SECS(10), || child_with_role(main_pid, "worker")).unwrap();
    assert_ne!(new_worker, worker);
    assert!(
        lab.ping_behind(SECS(60)),
        "no reconnect after the restart:\n{}\n{}",
        lab.log("client.log"),
        lab.log("ocserv.log")
    );

    // The security module dies: the server stops with a failure (upstream's
    // test-secmod-kill), saying why.
    sh(&format!("kill -KILL {secmod}"));
    let code = lab.wait_server(SECS(30));
    assert_eq!(
        code,
        Some(1),
        "the server kept running without its security module"
    );
    let log = lab.log("ocserv.log");
    assert!(
        log.contains("the security module exited (signal: 9"),
        "{log}"
    );
    assert!(
        !process_alive(new_worker),
        "the network process outlived the server"
    );
}

/// `cisco-client-compat = false` (ocserv's default): with certificate authentication each
/// connection that opens a tunnel must present the certificate again, so a cookie alone is
/// refused; upstream's `true` lets the cookie through.
#[test]
fn certificate_required_on_connect_unless_cisco_client_compat() {
    let CertLab {
        mut lab,
        config,
        path,
        ca,
        cert,
        key,
        url,
    } = cert_lab("privsep-cert-compat");
    let cookie = |lab: &Lab| {
        let out = lab.run_client(
            &[
                "--non-inter",
                "--cafile",
                &ca,
                "-c",
                &cert,
                "-k",
                &key,
                "--authenticate",
                &url,
            ],
            "",
            SECS(30),
        );
        assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let value = authenticate_values(&stdout);
        value("COOKIE")
    };
    // As shipped (true): the cookie opens the tunnel on a connection without certificate.
    let first = cookie(&lab);
    lab.spawn_client(
        &["--non-inter", "--cafile", &ca, "--cookie-on-stdin", &url],
        &format!("{first}\n"),
    );
    lab.assert_tunnel("with a cookie alone and cisco-client-compat = true");
    // false: a cookie without the certificate is refused (openconnect exits 2).
    std::fs::write(&path, set(&config, "cisco-client-compat", "false")).unwrap();
    sh(&format!("kill -HUP {}", lab.server_pid()));
    lab.wait_for_log("ocserv.log", "configuration reloaded", SECS(10));
    let second = cookie(&lab);
    let out = lab.run_client(
        &["--non-inter", "--cafile", &ca, "--cookie-on-stdin", &url],
        &format!("{second}\n"),
        SECS(30),
    );
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(lab
        .log("ocserv.log")
        .contains("no certificate provided for cookie authentication"));
}

/// Several `server-cert`/`server-key` pairs (RSA, ECDSA and Ed25519, all keys root-only):
/// each handshake gets the certificate the client's signature algorithms allow, signed by
/// the security module. A key whose signatures cannot be delegated (DSA) stops the server
/// at start with a message naming its certificate.
#[test]
fn rsa_ecdsa_and_ed25519_pairs_are_chosen_by_signature_algorithms() {
    let mut lab = Lab::new("privsep-pairs");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let secrets = Secrets::create(&lab, &pki);
    let ec_key = {
        use openssl::ec::{EcGroup, EcKey};
        let group = EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        openssl::pkey::PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
    };
    let (ec_cert, ec_key_path) =
        pki.server_cert_for(&lab.dir, "server-ec", &ec_key, &lab.server_ip);
    std::fs::rename(&ec_key_path, secrets.path("server-ec.key")).unwrap();
    let ed_key = openssl::pkey::PKey::generate_ed25519().unwrap();
    let (ed_cert, ed_key_path) =
        pki.server_cert_for(&lab.dir, "server-ed", &ed_key, &lab.server_ip);
    std::fs::rename(&ed_key_path, secrets.path("server-ed.key")).unwrap();
    secrets.lock_down();
    let auth = format!("plain[passwd={}]", secrets.path("passwd").display());
    let shipped = std::fs::read_to_string("/etc/ocserv/ocserv.conf").unwrap();
    let mut config = for_lab(&shipped, &lab, &pki, &secrets, &auth);
    config = add(&config, "server-cert", &ec_cert.display().to_string());
    config = add(
        &config,
        "server-key",
        &secrets.path("server-ec.key").display().to_string(),
    );
    config = add(&config, "server-cert", &ed_cert.display().to_string());
    config = add(
        &config,
        "server-key",
        &secrets.path("server-ed.key").display().to_string(),
    );
    let path = lab.start_server_with_config(ServerKind::Ours, &config);
    let served = |sigalgs: &str| {
        let out = lab.in_client(&format!(
            "echo | openssl s_client -connect {}:443 -sigalgs {sigalgs} 2>/dev/null \
             | openssl x509 -noout -fingerprint -sha256",
            lab.server_ip
        ));
        output_text(&out).trim().to_string()
    };
    assert_eq!(served("ECDSA+SHA256"), file_fingerprint(&ec_cert));
    assert_eq!(served("ed25519"), file_fingerprint(&ed_cert));
    assert_eq!(
        served("RSA-PSS+SHA256:RSA+SHA256"),
        file_fingerprint(&pki.server_cert)
    );
    // And a real client logs in (over the certificate its preferences pick).
    lab.use_real_client();
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    lab.spawn_client(&login_args(&ca, &[&url]), "secret\n");
    lab.assert_tunnel("with three certificates");

    // A DSA pair: refused at start, naming the certificate.
    let dsa_key =
        openssl::pkey::PKey::from_dsa(openssl::dsa::Dsa::generate(2048).unwrap()).unwrap();
    let (dsa_cert, dsa_key_path) =
        pki.server_cert_for(&lab.dir, "server-dsa", &dsa_key, &lab.server_ip);
    let mut broken = add(&config, "server-cert", &dsa_cert.display().to_string());
    broken = add(&broken, "server-key", &dsa_key_path.display().to_string());
    broken = set(&broken, "tcp-port", "4443");
    broken = set(&broken, "udp-port", "4443");
    broken = set(
        &broken,
        "pid-file",
        &format!("{}/dsa.pid", lab.dir.display()),
    );
    broken = set(
        &broken,
        "occtl-socket-file",
        &format!("{}/dsa.socket", lab.dir.display()),
    );
    broken = set(&broken, "device", &format!("{}e", lab.name));
    let dsa_config = path.with_file_name("dsa.conf");
    std::fs::write(&dsa_config, broken).unwrap();
    let out = lab.in_server(&format!(
        "timeout 20 {} -f -c {}",
        bin("ocserv").display(),
        dsa_config.display()
    ));
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("server-dsa.pem"),
        "{}",
        output_text(&out)
    );
    assert!(output_text(&out).contains("DSA"), "{}", output_text(&out));
}

/// `route-add-cmd` (upstream's test-iroute): run as root by the main process for each
/// iroute of a connecting user, with ocserv's substitutions, in place of our own route.
#[test]
fn route_add_cmd_runs_as_root_for_iroutes() {
    let mut lab = Lab::new("privsep-routecmd");
    lab.use_real_client();
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let secrets = Secrets::create(&lab, &pki);
    let shipped = std::fs::read_to_string("/etc/ocserv/ocserv.conf").unwrap();
    let auth = format!("plain[passwd={}]", secrets.path("passwd").display());
    let users = lab.dir.join("config-per-user");
    std::fs::create_dir_all(&users).unwrap();
    // The second iroute is the pool's own network, already routed: the command still runs.
    std::fs::write(
        users.join("alice"),
        format!("iroute = 198.19.251.0/24\niroute = {}/24\n", lab.pool),
    )
    .unwrap();
    let out = lab.dir.join("route-add.txt");
    let mut config = for_lab(&shipped, &lab, &pki, &secrets, &auth);
    config = set(&config, "config-per-user", &users.display().to_string());
    config = add(
        &config,
        "route-add-cmd",
        &format!(
            "\"echo %R %{{RI}} %D $(id -u) >> {}; ip route replace %{{RI}} dev %{{D}}\"",
            out.display()
        ),
    );
    lab.start_server_with_config(ServerKind::Ours, &config);
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    lab.spawn_client(&login_args(&ca, &[&url]), "secret\n");
    lab.assert_tunnel("with an iroute");
    let dev = format!("{}v0", lab.name);
    let want = format!(
        "198.19.251.0/255.255.255.0 198.19.251.0/24 {dev} 0\n\
         {pool}/255.255.255.0 {pool}/24 {dev} 0",
        pool = lab.pool
    );
    let written = wait_until(SECS(10), || {
        let now = std::fs::read_to_string(&out).unwrap_or_default();
        (now.lines().count() >= 2).then_some(now)
    })
    .unwrap_or_else(|| {
        panic!(
            "route-add-cmd did not run twice:\n{}",
            lab.log("ocserv.log")
        )
    });
    assert_eq!(written.trim(), want);
    let route = output_text(&lab.in_server("ip route show 198.19.251.0/24"));
    assert!(route.contains(&format!("dev {}v0", lab.name)), "{route:?}");
}

/// `server-drain-ms`: SIGTERM closes the listener at once while the tunnel keeps working
/// for the drain time, then the server stops cleanly (upstream's `drain-server`). SIGTERM
/// to the security module alone ends it as in ocserv, and the server stops with a failure
/// (`drain-server-fail`).
#[test]
fn drain_closes_the_listener_first_and_secmod_sigterm_stops_the_server() {
    let mut lab = Lab::new("privsep-drain");
    lab.use_real_client();
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    lab.start_our_server(&pki, &[("alice", "secret")], "server-drain-ms = 4000\n");
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    lab.spawn_client(&login_args(&ca, &[&url]), "secret\n");
    lab.assert_tunnel("before the drain");
    let main_pid = lab.server_pid();
    let secmod = child_with_role(main_pid, "secmod").unwrap();

    sh(&format!("kill -TERM {main_pid}"));
    lab.wait_for_log("ocserv.log", "stopping new connections", SECS(5));
    // The listener is gone: a new connection is refused, not served.
    let refused = wait_until(SECS(3), || {
        let out = lab.in_client(&format!(
            "timeout 3 bash -c 'exec 3<>/dev/tcp/{}/443' 2>&1; echo $?",
            lab.server_ip
        ));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("refused").then_some(text)
    });
    assert!(
        refused.is_some(),
        "the listener still accepts while draining"
    );
    // The tunnel still carries traffic, and the server is still there.
    assert!(lab.ping_behind(SECS(2)), "no tunnel while draining");
    assert!(process_alive(main_pid) && process_alive(secmod));
    let code = lab.wait_server(SECS(20));
    assert_eq!(code, Some(0), "{}", lab.log("ocserv.log"));
    lab.wait_for_log("ocserv.log", "waiting 4000 ms", SECS(1));

    // The security module on its own: SIGTERM ends it, and with it the server (exit 1).
    let mut lab = Lab::new("privsep-secmod-term");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    lab.start_our_server(&pki, &[("alice", "secret")], "server-drain-ms = 15000\n");
    let main_pid = lab.server_pid();
    let secmod = child_with_role(main_pid, "secmod").unwrap();
    sh(&format!("kill -TERM {secmod}"));
    assert_eq!(
        lab.wait_server(SECS(10)),
        Some(1),
        "{}",
        lab.log("ocserv.log")
    );
    assert!(lab
        .log("ocserv.log")
        .contains("security module: stopping on a signal"));
}
