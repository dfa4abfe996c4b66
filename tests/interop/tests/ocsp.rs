//! `ocsp-response`: the server staples the OCSP response from the file (made here by
//! `openssl ocsp` as an administrator's cron job would) for clients that ask, is refused
//! at start with a file that is not one, and serves a new one after SIGHUP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ferroconnect_interop::{login_args, sh, Lab, Pki, ServerKind};

/// What `openssl s_client -status` shows of the stapled response.
fn stapled(lab: &Lab, ca: &str) -> String {
    let out = lab.in_client(&format!(
        "echo | timeout 10 openssl s_client -status -CAfile {ca} -connect {}:443 2>&1",
        lab.server_ip
    ));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_ocsp_response_is_stapled_refused_when_bad_and_reloaded() {
    let mut lab = Lab::new("ocsp");
    lab.use_real_client();
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let ca = pki.ca_pem.display().to_string();
    let good = pki.ocsp_response(&lab.dir, "good", false);
    let live = lab.dir.join("ocsp.der");
    std::fs::copy(&good, &live).unwrap();

    // Not an OCSP response: the server does not start, and says which file.
    let garbage = lab.dir.join("garbage.der");
    std::fs::write(&garbage, b"not DER").unwrap();
    let auth = lab.make_passwd(
        &ferroconnect_interop::bin("ocpasswd"),
        &[("alice", "secret")],
        None,
    );
    let bad = lab.server_config(
        &pki,
        &auth,
        &format!("ocsp-response = {}\n", garbage.display()),
    );
    let config = lab.dir.join("bad.conf");
    std::fs::write(&config, &bad).unwrap();
    let (code, text) = lab.start_refused(&config);
    assert!(
        text.contains("garbage.der") && text.contains("OCSP response"),
        "{text}"
    );
    assert_eq!(code, Some(1), "{text}");

    let config = lab.server_config(
        &pki,
        &auth,
        &format!("ocsp-response = {}\n", live.display()),
    );
    lab.start_server_with_config(ServerKind::Ours, &config);
    let shown = stapled(&lab, &ca);
    assert!(
        shown.contains("OCSP Response Status: successful"),
        "{shown}"
    );
    assert!(shown.contains("Cert Status: good"), "{shown}");
    // Clients that do not ask get none, and still log in.
    let url = format!("https://{}/", lab.server_ip);
    let login = lab.run_client(
        &login_args(&ca, &["--authenticate", &url]),
        "secret\n",
        Duration::from_secs(30),
    );
    assert_eq!(login.status.code(), Some(0));

    // The administrator's job writes a new response (here: revoked) and sends SIGHUP.
    let revoked = pki.ocsp_response(&lab.dir, "revoked", true);
    std::fs::copy(&revoked, &live).unwrap();
    sh(&format!("kill -HUP {}", lab.server_pid()));
    lab.wait_for_log(
        "ocserv.log",
        "configuration reloaded",
        Duration::from_secs(10),
    );
    let shown = stapled(&lab, &ca);
    assert!(shown.contains("Cert Status: revoked"), "{shown}");
}
