//! `--allow-insecure-crypto` also opens client certificates under old encryptions (a
//! PKCS#12 file with RC2-40, as `openssl pkcs12 -legacy` and old exports make them): its
//! own test binary, since OpenSSL's legacy provider, once loaded, stays for the process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::openssl;
use oc_tls::{ClientCertSpec, TlsClient, TlsClientConfig};

#[test]
fn legacy_pkcs12_opens_only_with_the_option() {
    let dir = std::env::temp_dir().join(format!("oc-tls-legacy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |name: &str| dir.join(name).display().to_string();
    let (key, cert, p12) = (path("key.pem"), path("cert.pem"), path("legacy.p12"));
    openssl(&[
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=user",
        "-keyout", &key, "-out", &cert,
    ]);
    openssl(&[
        "pkcs12", "-export", "-legacy", "-in", &cert, "-inkey", &key, "-passout", "pass:pw",
        "-out", &p12,
    ]);
    let config = |allow_insecure_crypto| TlsClientConfig {
        client_cert: Some(ClientCertSpec {
            cert: p12.clone().into(),
            key: None,
            password: Some("pw".into()),
        }),
        allow_insecure_crypto,
        ..TlsClientConfig::default()
    };
    let err = TlsClient::new(config(false)).unwrap_err().to_string();
    assert!(err.contains("legacy.p12"), "{err}");
    TlsClient::new(config(true)).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
