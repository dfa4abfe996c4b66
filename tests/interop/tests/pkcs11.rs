//! Client certificates on a PKCS#11 token (SoftHSM, reached through p11-kit), named by
//! URIs as upstream's `auth-pkcs11` test names them: `-c pkcs11:token=...;object=...` with
//! the PIN in the URI or in `-p`, an `id=` instead of the label, a certificate file with
//! the key on the token, and an EC key. Debian's openconnect logs in with the same token
//! first, proving the token's set-up; then ours, and a tunnel.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::Path;
use std::time::Duration;

use ferroconnect_interop::{output_text, run_to_end, sh, Lab, Pki, ServerKind};

const SECS: fn(u64) -> Duration = Duration::from_secs;
const TOKEN: &str = "openconnect-test";

/// A SoftHSM token in the lab with carol's RSA certificate and key (label RSA, id 01) and
/// her EC ones (label EC, id 02); returns the SOFTHSM2_CONF file.
fn token(lab: &Lab, pki: &Pki) -> String {
    let dir = lab.dir.join("softhsm");
    fs::create_dir_all(dir.join("tokens")).unwrap();
    let conf = dir.join("softhsm2.conf");
    fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.join("tokens").display()
        ),
    )
    .unwrap();
    let conf = conf.display().to_string();
    sh(&format!(
        "SOFTHSM2_CONF={conf} softhsm2-util --init-token --free --label {TOKEN} --pin 1234 \
         --so-pin 4321 >/dev/null"
    ));
    let (rsa_cert, rsa_key, _) = pki.client_cert(&lab.dir, "carol", "unused");
    let (ec_cert, ec_key) = pki.client_cert_ec(&lab.dir, "carol");
    store(&conf, "RSA", "01", &rsa_cert, &rsa_key);
    store(&conf, "EC", "02", &ec_cert, &ec_key);
    conf
}

/// Puts a key (PKCS#8 PEM) and its certificate on the token under one label and id.
fn store(conf: &str, label: &str, id: &str, cert: &Path, key: &Path) {
    sh(&format!(
        "SOFTHSM2_CONF={conf} softhsm2-util --import {} --token {TOKEN} --label {label} \
         --id {id} --pin 1234 >/dev/null && \
         SOFTHSM2_CONF={conf} p11tool --provider /usr/lib/softhsm/libsofthsm2.so --login \
         --set-pin=1234 --write --load-certificate {} --label {label} --id {id} \
         'pkcs11:token={TOKEN}' >/dev/null",
        key.display(),
        cert.display()
    ));
}

fn lab(test: &str) -> (Lab, Pki, String) {
    let mut lab = Lab::new(test);
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let extra = pki.certificate_login_config();
    lab.start_server(ServerKind::Ours, &pki, "certificate", &extra);
    let conf = token(&lab, &pki);
    (lab, pki, conf)
}

/// `client --authenticate` with `args`, the token's configuration in the environment.
fn authenticate(
    lab: &Lab,
    pki: &Pki,
    conf: &str,
    client: &str,
    args: &[&str],
) -> (Option<i32>, String) {
    let ca = pki.ca_pem.display().to_string();
    let u = format!("https://{}/", lab.server_ip);
    let mut cmd = std::process::Command::new("ip");
    cmd.args(["netns", "exec", &lab.client_ns, client])
        .args(["--authenticate", "--non-inter", "--cafile", &ca])
        .args(args)
        .arg(&u)
        .env("SOFTHSM2_CONF", conf);
    let out = run_to_end(cmd, "", SECS(30));
    (out.status.code(), output_text(&out))
}

#[test]
fn token_keys_log_in_as_upstream_names_them() {
    let (lab, pki, conf) = lab("pkcs11-login");
    let ours = lab.client_bin.display().to_string();
    let rsa = format!("pkcs11:token={TOKEN};object=RSA;pin-value=1234");
    let (code, text) = authenticate(&lab, &pki, &conf, "/usr/sbin/openconnect", &["-c", &rsa]);
    assert_eq!(code, Some(0), "openconnect 9.01: {text}");
    let cert_file = lab.dir.join("carol.pem").display().to_string();
    let by_id = format!("pkcs11:token={TOKEN};id=%02");
    let ec = format!("pkcs11:token={TOKEN};object=EC");
    let key_on_token = format!("pkcs11:token={TOKEN};object=RSA;type=private");
    for args in [
        vec!["-c", rsa.as_str()],
        vec!["-c", by_id.as_str(), "-p", "1234"],
        vec!["-c", ec.as_str(), "--key-password", "1234"],
        vec![
            "-c",
            cert_file.as_str(),
            "-k",
            key_on_token.as_str(),
            "-p",
            "1234",
        ],
    ] {
        let (code, text) = authenticate(&lab, &pki, &conf, &ours, &args);
        assert_eq!(code, Some(0), "{args:?}: {text}");
        assert!(text.contains("COOKIE='"), "{args:?}: {text}");
        assert!(!text.contains("1234"), "the PIN was shown: {text}");
    }
}

#[test]
fn token_errors_say_what_to_fix() {
    let (lab, pki, conf) = lab("pkcs11-errors");
    let ours = lab.client_bin.display().to_string();
    let missing = format!("pkcs11:token={TOKEN};object=DSA;pin-value=1234");
    let wrong_pin = format!("pkcs11:token={TOKEN};object=RSA;pin-value=9999");
    let no_pin = format!("pkcs11:token={TOKEN};object=RSA");
    for (uri, needle) in [
        (missing.as_str(), "no certificate matches on token"),
        (wrong_pin.as_str(), "is incorrect"),
        (no_pin.as_str(), "pin-value=... in the URI, or -p"),
    ] {
        let (code, text) = authenticate(&lab, &pki, &conf, &ours, &["-c", uri]);
        assert_eq!(code, Some(1), "{uri}: {text}");
        assert!(text.contains(needle), "{uri}: {text}");
        assert!(!text.contains("9999"), "the PIN was shown: {text}");
    }
}

#[test]
fn a_token_key_carries_a_tunnel() {
    let (mut lab, pki, conf) = lab("pkcs11-tunnel");
    let ca = pki.ca_pem.display().to_string();
    let u = format!("https://{}/", lab.server_ip);
    let uri = format!("pkcs11:token={TOKEN};object=EC;pin-value=1234");
    let mut cmd = lab.client_command(&["--non-inter", "--cafile", &ca, "-c", &uri, &u]);
    cmd.env("SOFTHSM2_CONF", &conf);
    let pid = lab.spawn_logged(cmd, "", "client.log");
    lab.assert_tunnel("the token's tunnel");
    lab.log_off(pid);
}
