//! Our client's own crypto choices against our server: a PKCS#12 password typed in a
//! legacy locale (upstream's `auth-nonascii`), and `--pfs` against a server that offers
//! only RSA key exchange (upstream's `pfs` runs Debian's ocserv for that; here `openssl
//! s_server`, since our server keeps to forward-secret key exchange whatever its
//! `tls-priorities` say).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ferroconnect_interop::{login_args, output_text, sh, wait_until, Lab, Pki, ServerKind};

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn url(lab: &Lab) -> String {
    format!("https://{}/", lab.server_ip)
}

/// A PKCS#12 password typed in a legacy locale (upstream's `auth-nonascii`): the bytes
/// `c3 af` are "ĂŻ" in ISO-8859-2, the file's password, so our client converts them to
/// UTF-8 under `cs_CZ.ISO8859-2` and logs in; in a UTF-8 locale they are "ï", the wrong
/// password.
#[test]
fn our_client_reads_a_pkcs12_password_in_the_locales_charset() {
    let mut lab = Lab::new("srv-latin2");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let extra = pki.certificate_login_config();
    lab.start_server(ServerKind::Ours, &pki, "certificate", &extra);
    let (_, _, p12) = pki.client_cert(&lab.dir, "carol", "ĂŻ");
    let (ca, p12, u) = (
        pki.ca_pem.display().to_string(),
        p12.display().to_string(),
        url(&lab),
    );
    let client = lab.client_bin.display().to_string();
    let run = |locale: &str| {
        let argv = [
            "env",
            locale,
            &client,
            "--authenticate",
            "--non-inter",
            "--cafile",
            &ca,
            "-c",
            &p12,
            "-p",
            "\u{ef}",
            &u,
        ];
        lab.run_in(&lab.client_ns, &argv, "", SECS(30))
    };
    let latin2 = run("LC_ALL=cs_CZ.ISO8859-2");
    assert_eq!(latin2.status.code(), Some(0), "{}", output_text(&latin2));
    assert!(String::from_utf8_lossy(&latin2.stdout).contains("COOKIE="));
    let utf8 = run("LC_ALL=C.UTF-8");
    let text = output_text(&utf8);
    assert_eq!(utf8.status.code(), Some(1), "{text}");
    assert!(text.contains("PKCS#12"), "{text}");
}

/// `--pfs` with a TLS server that offers only RSA key exchange (`openssl s_server`,
/// TLS 1.2, `kRSA`): the handshake fails and the client exits 1 saying so. Without it the
/// handshake succeeds (and the login then fails on the page, which is no VPN's).
#[test]
fn pfs_refuses_a_server_without_forward_secrecy() {
    let lab = Lab::new("cli-pfs");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    lab.in_server(&format!(
        "nohup timeout 60 openssl s_server -accept 443 -cert {} -key {} -tls1_2 -cipher kRSA \
         -www >/dev/null 2>&1 &",
        pki.server_cert.display(),
        pki.server_key.display()
    ));
    let ca = pki.ca_pem.display().to_string();
    let u = url(&lab);
    let client = lab.client_bin.display().to_string();
    // At most five seconds each: past the handshake, s_server never answers the login.
    let login = |extra: &[&str]| {
        let mut argv = vec!["timeout", "5", client.as_str()];
        argv.extend(login_args(&ca, extra));
        argv.extend(["--authenticate", u.as_str()]);
        let out = lab.run_in(&lab.client_ns, &argv, "secret\n", SECS(30));
        (out.status.code(), output_text(&out))
    };
    let text = wait_until(SECS(10), || {
        let (_, text) = login(&[]);
        (!text.contains("Connection refused")).then_some(text)
    })
    .expect("openssl s_server never listened");
    assert!(text.contains("SSL negotiation with"), "{text}");
    let (code, text) = login(&["--pfs"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("TLS handshake with"), "{text}");
}

/// Options scripts pass, against our server: `--server` in place of the argument,
/// `--gnutls-priority` (mapped: TLS 1.2 at most) with `--openssl-ciphers` choosing the
/// suite, and a cipher list that selects nothing refused with a clear error.
#[test]
fn server_option_and_cipher_choices_as_openconnect_takes_them() {
    let mut lab = Lab::new("cli-ciphers");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    lab.start_our_server(&pki, &[("alice", "secret")], "");
    let ca = pki.ca_pem.display().to_string();
    let u = url(&lab);
    let login = |rest: &[&str]| {
        let out = lab.run_client(&login_args(&ca, rest), "secret\n", SECS(30));
        (out.status.code(), output_text(&out))
    };
    let (code, text) = login(&["--server", &u, "--authenticate"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("COOKIE="), "{text}");
    let suite = "ECDHE-RSA-AES256-GCM-SHA384";
    let chosen = [
        "--gnutls-priority",
        "NORMAL:%SERVER_PRECEDENCE:-VERS-TLS1.3",
        "--openssl-ciphers",
        suite,
        "--authenticate",
        &u,
    ];
    let (code, text) = login(&chosen);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(&format!("(TLSv1.2, {suite})")), "{text}");
    let (code, text) = login(&["--openssl-ciphers", "NO-SUCH-CIPHER", "--authenticate", &u]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("cipher list \"NO-SUCH-CIPHER\" selects no cipher"),
        "{text}"
    );
}

/// `--tcp-keepalive=7`: the tunnel's TLS connection carries TCP keepalive with a 7 s idle
/// time, as `ss` shows it in the client's namespace.
#[test]
fn tcp_keepalive_is_set_on_the_tls_connection() {
    let mut lab = Lab::new("cli-keepalive");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    lab.start_our_server(&pki, &[("alice", "secret")], "");
    let ca = pki.ca_pem.display().to_string();
    let u = url(&lab);
    let script = lab.recording_script();
    let args = login_args(&ca, &["--tcp-keepalive=7", "-s", &script, &u]);
    lab.spawn_client(&args, "secret\n");
    assert!(lab.ping_behind(SECS(20)), "{}", lab.log("client.log"));
    let out = lab.in_client(&format!("ss -tno state established dst {}", lab.server_ip));
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(shown.contains("timer:(keepalive,"), "{shown}");
}

/// `--key-password-from-fsid`: a client key encrypted with the ID of the file system it
/// lies on (as `stat -f -c %i` prints it) opens without `-p`, and the certificate logs in.
#[test]
fn key_password_from_the_file_systems_id() {
    let mut lab = Lab::new("cli-fsid");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let extra = pki.certificate_login_config();
    lab.start_server(ServerKind::Ours, &pki, "certificate", &extra);
    let (cert, key, _) = pki.client_cert(&lab.dir, "carol", "unused");
    let encrypted = lab.dir.join("carol-fsid.key");
    sh(&format!(
        "openssl pkcs8 -topk8 -v2 aes-256-cbc -in {key} -out {out} \
         -passout pass:$(stat -f -c %i {dir})",
        key = key.display(),
        out = encrypted.display(),
        dir = lab.dir.display()
    ));
    let (ca, cert, encrypted, u) = (
        pki.ca_pem.display().to_string(),
        cert.display().to_string(),
        encrypted.display().to_string(),
        url(&lab),
    );
    let login = |extra: &[&str]| {
        let mut args = vec![
            "--non-inter",
            "--cafile",
            &ca,
            "-c",
            &cert,
            "-k",
            &encrypted,
        ];
        args.extend_from_slice(extra);
        args.extend(["--authenticate", u.as_str()]);
        let out = lab.run_client(&args, "", SECS(30));
        (out.status.code(), output_text(&out))
    };
    let (code, text) = login(&["--key-password-from-fsid"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("COOKIE="), "{text}");
    let (code, text) = login(&[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("give its password with -p"), "{text}");
}
