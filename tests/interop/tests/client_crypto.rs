//! Our client's own crypto choices against our server: a PKCS#12 password typed in a
//! legacy locale (upstream's `auth-nonascii`), and `--pfs` against a server that offers
//! only RSA key exchange (upstream's `pfs` runs Debian's ocserv for that; here `openssl
//! s_server`, since our server keeps to forward-secret key exchange whatever its
//! `tls-priorities` say).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ferroconnect_interop::{login_args, output_text, wait_until, Lab, Pki, ServerKind};

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
    let extra = format!(
        "ca-cert = {}\ncert-user-oid = 2.5.4.3\n",
        pki.ca_pem.display()
    );
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
