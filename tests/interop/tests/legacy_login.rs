//! `--no-xmlpost`: the legacy login (a GET of the login page, forms answered with
//! url-encoded posts) against Debian's ocserv and ours, both of which still serve it; the
//! cookie then carries a tunnel.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ferroconnect_interop::{authenticate_values, login_args, output_text, Lab, Pki, ServerKind};

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn legacy_login(kind: ServerKind, test: &str) {
    let mut lab = Lab::new(test);
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let auth = lab.make_passwd(
        std::path::Path::new("ocpasswd"),
        &[("alice", "secret")],
        None,
    );
    lab.start_server(kind, &pki, &auth, "");
    let ca = pki.ca_pem.display().to_string();
    let u = format!("https://{}/", lab.server_ip);
    let args = login_args(
        &ca,
        &["--no-xmlpost", "--dump-http-traffic", "--authenticate", &u],
    );
    let out = lab.run_client(&args, "secret\n", SECS(30));
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("> GET / HTTP/1.1"), "{text}");
    assert!(text.contains("application/x-www-form-urlencoded"), "{text}");
    let xml_sent = text
        .lines()
        .any(|l| l.starts_with("> <?xml") || l.starts_with("> <config-auth"));
    assert!(!xml_sent, "an XML post was sent: {text}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let cookie = authenticate_values(&stdout)("COOKIE");
    let script = lab.recording_script();
    lab.spawn_client(
        &["--cookie-on-stdin", "--cafile", &ca, "-s", &script, &u],
        &format!("{cookie}\n"),
    );
    lab.assert_tunnel("the legacy login's tunnel");
}

#[test]
fn legacy_login_to_debian_ocserv() {
    legacy_login(ServerKind::Debian, "legacy-debian");
}

#[test]
fn legacy_login_to_our_server() {
    legacy_login(ServerKind::Ours, "legacy-ours");
}
