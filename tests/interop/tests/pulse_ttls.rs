//! `--protocol=pulse` with EAP-TTLS: the gateway (`--ttls`) asks the login's questions
//! inside a TLS connection carried in EAP, cut into fragments that each wait for an
//! acknowledgement (`--ttls-fragment`), and with `--ttls-client-ca` a client certificate
//! logs in instead of the password. Debian's openconnect 9.01 proves each gateway mode
//! first (password and token inside; a certificate inside), then our client passes the
//! same; a client without the certificate is refused with a reason.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ferroconnect_interop::gateway_lab::{GatewayLab, Vendor, USER};
use ferroconnect_interop::output_text;

const CODE: &str = "246810";
const GOODBYE: &str = "the client said goodbye";

/// A gateway whose lab has a client certificate for [`USER`] from the lab's CA: the
/// lab, the CA file, and the client's `-c`/`-k` files.
fn lab(test: &str, real_client: bool) -> (GatewayLab, String, String, String) {
    let pulse = GatewayLab::new(test, Vendor::Pulse, real_client);
    let ca = pulse.pki.ca_pem.display().to_string();
    let (cert, key, _) = pulse.pki.client_cert(&pulse.lab.dir, USER, "unused");
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    (pulse, ca, cert, key)
}

fn assert_logged(gateway: &str, lines: &[&str]) {
    for line in lines {
        assert!(gateway.contains(line), "no {line:?}:\n{gateway}");
    }
}

/// The password and a token code inside EAP-TTLS, the gateway's messages in pieces of
/// 300 bytes (its certificate takes several); the tunnel carries pings over ESP.
/// `extra` options for the gateway.
fn password_and_token_inside(test: &str, real_client: bool, extra: &[&str]) {
    let (mut pulse, ..) = lab(test, real_client);
    let mut args = vec!["--ttls", "--ttls-fragment", "300", "--otp", CODE];
    args.extend_from_slice(extra);
    pulse.start_gateway(&args);
    let token = format!("pulse_gtc:tokencode={CODE}");
    let pid = pulse.spawn_client(&["-F", &token]);
    pulse.assert_tunnel_up();
    let gateway = pulse.disconnect(pid, GOODBYE);
    assert_logged(
        &gateway,
        &[
            "EAP-TTLS established (no client certificate)",
            "password accepted for \"alice\"",
            "token code accepted",
            "session started",
        ],
    );
}

#[test]
fn debian_openconnect_logs_in_inside_eap_ttls() {
    password_and_token_inside("pulse-ttls", true, &[]);
}

#[test]
fn our_client_logs_in_inside_eap_ttls() {
    password_and_token_inside("pulse-ours-ttls", false, &[]);
}

/// TLS 1.3 inside, with the session tickets that come after its handshake (openconnect
/// 9.01 fails there: its GnuTLS read returns no EAP packet for them).
#[test]
fn our_client_logs_in_inside_eap_ttls_over_tls_1_3() {
    password_and_token_inside("pulse-ours-ttls13", false, &["--ttls-tls13"]);
}

/// A client certificate inside EAP-TTLS logs in (no password asked); the client's
/// messages, with its certificate, go in pieces too when they are long.
fn certificate_inside(test: &str, real_client: bool) {
    let (mut pulse, ca, cert, key) = lab(test, real_client);
    pulse.start_gateway(&["--ttls-client-ca", &ca, "--ttls-fragment", "500"]);
    let pid = pulse.spawn_client(&["-c", &cert, "-k", &key]);
    pulse.assert_tunnel_up();
    let gateway = pulse.disconnect(pid, GOODBYE);
    assert_logged(
        &gateway,
        &[
            "EAP-TTLS established (client certificate CN=alice)",
            "certificate login for \"alice\"",
            "session started",
        ],
    );
    assert!(!gateway.contains("password accepted"), "{gateway}");
}

#[test]
fn debian_openconnect_logs_in_with_a_certificate_inside_eap_ttls() {
    certificate_inside("pulse-ttls-cert", true);
}

#[test]
fn our_client_logs_in_with_a_certificate_inside_eap_ttls() {
    certificate_inside("pulse-ours-ttls-cert", false);
}

/// Without the certificate the gateway's TLS connection inside refuses ours: the client
/// exits 1 saying the handshake inside EAP-TTLS failed and that a certificate may be what
/// the server wants; no script runs.
#[test]
fn our_client_without_the_certificate_is_refused_with_a_reason() {
    let (mut pulse, ca, ..) = lab("pulse-ours-ttls-nocert", false);
    pulse.start_gateway(&["--ttls-client-ca", &ca]);
    let out = pulse.run_client(&[], "s3cret pass\n");
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("TLS handshake with the server inside EAP-TTLS failed")
            && text.contains("give it with -c and -k"),
        "{text}"
    );
    pulse.assert_script_did_not_run();
}
