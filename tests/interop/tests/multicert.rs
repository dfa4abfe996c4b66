//! Multiple-certificate authentication (`--mca-certificate`) against our test gateway
//! (`src/bin/mca_gateway.rs`), which checks the second certificate's chain and its
//! signature over the request: Debian's openconnect 9.01 first proves the gateway, then
//! ours with RSA and EC second certificates; without one, or with a key that is not the
//! certificate's, the client says what is wrong.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ferroconnect_interop::{output_text, Lab, Pki};

const SECS: fn(u64) -> Duration = Duration::from_secs;

#[test]
fn second_certificates_sign_the_request() {
    let mut lab = Lab::new("mca");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let listen = format!("{}:443", lab.server_ip);
    let ca = pki.ca_pem.display().to_string();
    lab.start_login_gateway(&pki, "mca_gateway", &listen, &["--ca", &ca]);
    let (rsa_cert, rsa_key, _) = pki.client_cert(&lab.dir, "machine-user", "unused");
    let (ec_cert, ec_key) = pki.client_cert_ec(&lab.dir, "machine-user");
    let ca = pki.ca_pem.display().to_string();
    let u = format!("https://{}/", lab.server_ip);
    let run = |client: &str, extra: &[&str]| {
        let mut argv = vec![client, "--authenticate", "--non-inter", "--cafile", &ca];
        argv.extend_from_slice(extra);
        argv.push(&u);
        let out = lab.run_in(&lab.client_ns, &argv, "", SECS(30));
        (out.status.code(), output_text(&out))
    };
    let (rsa_cert, rsa_key) = (
        rsa_cert.display().to_string(),
        rsa_key.display().to_string(),
    );
    let (ec_cert, ec_key) = (ec_cert.display().to_string(), ec_key.display().to_string());
    let rsa = [
        "--mca-certificate",
        rsa_cert.as_str(),
        "--mca-key",
        rsa_key.as_str(),
    ];
    let (code, text) = run("/usr/sbin/openconnect", &rsa);
    assert_eq!(
        code,
        Some(0),
        "openconnect 9.01: {text}\n{}",
        lab.log("gateway.log")
    );
    let ours = lab.client_bin.display().to_string();
    let ec = [
        "--mca-certificate",
        ec_cert.as_str(),
        "--mca-key",
        ec_key.as_str(),
    ];
    for args in [&rsa, &ec] {
        let (code, text) = run(&ours, args);
        assert_eq!(
            code,
            Some(0),
            "{args:?}: {text}\n{}",
            lab.log("gateway.log")
        );
        assert!(
            text.contains("COOKIE='webvpn=MCA-SESSION-TOKEN-4242'"),
            "{text}"
        );
    }
    let not_offered = "the init does not offer multiple-cert";
    assert!(
        !lab.log("gateway.log").contains(not_offered),
        "{}",
        lab.log("gateway.log")
    );
    let (code, text) = run(&ours, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("--mca-certificate"), "{text}");
    assert!(lab.log("gateway.log").contains(not_offered));
    let mismatched = [
        "--mca-certificate",
        rsa_cert.as_str(),
        "--mca-key",
        ec_key.as_str(),
    ];
    let (code, text) = run(&ours, &mismatched);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("does not match --mca-certificate"), "{text}");
}
