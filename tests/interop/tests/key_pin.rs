//! Encrypted server keys (upstream's `test-enc-key`): `key-pin` or `pin-file` unlocks an
//! encrypted PKCS #8 or traditional OpenSSL key in the security module, and Debian's
//! openconnect logs in; without the PIN the server refuses to start, naming the key file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ferroconnect_interop::{bin, login_args, Lab, Pki, ServerKind};
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
    let out = lab.in_server(&format!(
        "timeout 20 {} -f -c {} 2>&1; echo rc=$?",
        bin("ocserv").display(),
        config.display()
    ));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("server-key-p8.pem") && text.contains("set key-pin or pin-file"),
        "{text}"
    );
    assert!(!text.contains("rc=0"), "{text}");

    // key-pin with the traditional OpenSSL form, then pin-file with PKCS #8 after a reload.
    lab.start_server_with_config(ServerKind::Ours, &config_with(&ossl, "key-pin = 1234\n"));
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    let login = |lab: &Lab| {
        let out = lab.run_client(
            &login_args(&ca, &["--authenticate", &url]),
            "secret\n",
            Duration::from_secs(30),
        );
        assert_eq!(out.status.code(), Some(0), "{}", lab.log("ocserv.log"));
    };
    login(&lab);
    std::fs::write(
        lab.dir.join("ocserv.conf"),
        config_with(&p8, &format!("pin-file = {}\n", pin_file.display())),
    )
    .unwrap();
    ferroconnect_interop::sh(&format!("kill -HUP {}", lab.server_pid()));
    lab.wait_for_log(
        "ocserv.log",
        "configuration reloaded",
        Duration::from_secs(10),
    );
    login(&lab);
}
