//! Encrypted server keys (upstream's `test-enc-key`): `key-pin` or `pin-file` unlocks an
//! encrypted PKCS #8 or traditional OpenSSL key in the security module, and Debian's
//! openconnect logs in; without the PIN the server refuses to start, naming the key file.
//! A reload to another encrypted key and certificate serves the new ones.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ferroconnect_interop::{
    authenticate_values, bin, login_args, pin_sha256, Lab, Pki, ServerKind,
};
use openssl::pkey::PKey;

#[test]
fn encrypted_keys_open_with_key_pin_or_pin_file() {
    let mut lab = Lab::new("key-pin");
    lab.use_real_client();
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let key = PKey::private_key_from_pem(&std::fs::read(&pki.server_key).unwrap()).unwrap();
    let cipher = openssl::symm::Cipher::aes_256_cbc();
    let p8 = lab.dir.join("server-key-p8.pem");
    std::fs::write(
        &p8,
        key.private_key_to_pem_pkcs8_passphrase(cipher, b"1234")
            .unwrap(),
    )
    .unwrap();
    let ossl = lab.dir.join("server-key-ossl.pem");
    let rsa = key.rsa().unwrap();
    std::fs::write(
        &ossl,
        rsa.private_key_to_pem_passphrase(cipher, b"1234").unwrap(),
    )
    .unwrap();
    // The key and certificate the reload switches to: a new key, PKCS #8 encrypted.
    let new_key = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let (new_cert, _) = pki.server_cert_for(&lab.dir, "renewed", &new_key, &lab.server_ip);
    let new_p8 = lab.dir.join("renewed-key-p8.pem");
    std::fs::write(
        &new_p8,
        new_key
            .private_key_to_pem_pkcs8_passphrase(cipher, b"1234")
            .unwrap(),
    )
    .unwrap();
    let pin_file = lab.dir.join("pin.txt");
    std::fs::write(&pin_file, "1234\n").unwrap();
    let auth = lab.make_passwd(&bin("ocpasswd"), &[("alice", "secret")], None);
    let plain_key = format!("server-key = {}\n", pki.server_key.display());
    let base = lab.server_config(&pki, &auth, "");
    let config_with = |key: &std::path::Path, pin: &str| {
        base.replace(
            &plain_key,
            &format!("server-key = {}\n{pin}", key.display()),
        )
    };

    // Without a PIN: a clear refusal naming the file.
    let config = lab.dir.join("nopin.conf");
    std::fs::write(&config, config_with(&p8, "")).unwrap();
    let (code, text) = lab.start_refused(&config);
    assert!(
        text.contains("server-key-p8.pem") && text.contains("set key-pin or pin-file"),
        "{text}"
    );
    assert_eq!(code, Some(1), "{text}");

    // key-pin with the traditional OpenSSL form, then pin-file with PKCS #8 after a reload.
    lab.start_server_with_config(ServerKind::Ours, &config_with(&ossl, "key-pin = 1234\n"));
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    // A login; openconnect prints the served certificate's pin as FINGERPRINT, which must
    // be `cert`'s.
    let login = |lab: &Lab, cert: &std::path::Path| {
        let out = lab.run_client(
            &login_args(&ca, &["--authenticate", &url]),
            "secret\n",
            Duration::from_secs(30),
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{stdout}{}\nserver:\n{}",
            String::from_utf8_lossy(&out.stderr),
            lab.log("ocserv.log")
        );
        assert_eq!(
            authenticate_values(&stdout)("FINGERPRINT"),
            pin_sha256(cert),
            "served certificate"
        );
    };
    assert_ne!(pin_sha256(&pki.server_cert), pin_sha256(&new_cert));
    login(&lab, &pki.server_cert);
    let plain_cert = format!("server-cert = {}\n", pki.server_cert.display());
    std::fs::write(
        lab.dir.join("ocserv.conf"),
        config_with(&new_p8, &format!("pin-file = {}\n", pin_file.display())).replace(
            &plain_cert,
            &format!("server-cert = {}\n", new_cert.display()),
        ),
    )
    .unwrap();
    ferroconnect_interop::sh(&format!("kill -HUP {}", lab.server_pid()));
    lab.wait_for_log(
        "ocserv.log",
        "configuration reloaded",
        Duration::from_secs(10),
    );
    // The new encrypted key is served (the handshake proves its possession).
    login(&lab, &new_cert);
}
