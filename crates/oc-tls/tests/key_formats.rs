//! Client keys in every form openconnect reads (upstream's `auth-certificate` walks them):
//! PEM, and DER as PKCS#8 (plain or encrypted) and as the key type's own structure
//! (PKCS#1 RSA, SEC1 EC); each must match its certificate.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

mod common;

use common::openssl;
use oc_tls::{ClientCertSpec, TlsClient, TlsClientConfig};

fn client(cert: &Path, key: &Path, password: Option<&str>) -> Result<TlsClient, String> {
    TlsClient::new(TlsClientConfig {
        client_cert: Some(ClientCertSpec {
            cert: cert.to_path_buf(),
            key: Some(key.to_path_buf()),
            password: password.map(str::to_string),
        }),
        ..TlsClientConfig::default()
    })
    .map_err(|e| e.to_string())
}

/// A self-signed certificate for a fresh key of `algorithm` (`rsa:2048`, `ec`), and the
/// key in each form: (certificate, [(form, key file)]); the encrypted one's password is
/// `password`.
fn forms(dir: &Path, name: &str, algorithm: &str) -> (PathBuf, Vec<(String, PathBuf)>) {
    let file = |n: &str| dir.join(format!("{name}-{n}"));
    let s = |p: &PathBuf| p.display().to_string();
    let (pem, cert) = (file("key.pem"), file("cert.pem"));
    let mut req = vec!["req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=user"];
    let params = file("params");
    let params_arg;
    if algorithm == "ec" {
        openssl(&["ecparam", "-name", "prime256v1", "-out", &s(&params)]);
        params_arg = format!("ec:{}", s(&params));
        req.extend(["-newkey", &params_arg]);
    } else {
        req.extend(["-newkey", algorithm]);
    }
    let (keyout, out) = (s(&pem), s(&cert));
    req.extend(["-keyout", &keyout, "-out", &out]);
    openssl(&req);
    let kind = if algorithm == "ec" { "ec" } else { "rsa" };
    let own = file("key-own.der");
    openssl(&[kind, "-in", &keyout, "-outform", "DER", "-out", &s(&own)]);
    let pkcs8 = file("key-pkcs8.der");
    openssl(&[
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        &keyout,
        "-outform",
        "DER",
        "-out",
        &s(&pkcs8),
    ]);
    let encrypted = file("key-pkcs8-aes.der");
    openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-passout",
        "pass:password",
        "-in",
        &keyout,
        "-outform",
        "DER",
        "-out",
        &s(&encrypted),
    ]);
    let forms = vec![
        ("PEM".to_string(), pem),
        (format!("{kind} DER"), own),
        ("PKCS#8 DER".into(), pkcs8),
        ("encrypted PKCS#8 DER".into(), encrypted),
    ];
    (cert, forms)
}

#[test]
fn pem_and_der_keys_of_each_form_load_and_match() {
    let dir = std::env::temp_dir().join(format!("oc-tls-key-forms-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, algorithm) in [("rsa", "rsa:2048"), ("ec", "ec")] {
        let (cert, keys) = forms(&dir, name, algorithm);
        for (form, key) in &keys {
            // openconnect's tests pass --key-password to every form; the plain ones ignore it.
            let result = client(&cert, key, Some("password"));
            assert!(result.is_ok(), "{name} {form}: {:?}", result.err());
        }
        let (_, encrypted) = keys.last().unwrap();
        let err = client(&cert, encrypted, Some("wrong")).err().unwrap();
        assert!(err.contains("key-pkcs8-aes.der"), "{err}");
        let err = client(&cert, encrypted, None).err().unwrap();
        assert!(err.contains("give its password with -p"), "{err}");
    }
    // A key of another certificate is refused, naming the key file.
    let (rsa_cert, _) = (dir.join("rsa-cert.pem"), ());
    let err = client(&rsa_cert, &dir.join("ec-key-own.der"), None)
        .err()
        .unwrap();
    assert!(err.contains("does not match the certificate"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
