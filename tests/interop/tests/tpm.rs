//! TPM 2.0 keys for client certificates (`-c CERT -k KEY.tss`), in a software TPM (swtpm)
//! started in the client's namespace, with keys made by Debian's tpm2-openssl provider:
//! RSA (TLS 1.2 with PKCS#1 signatures), EC P-256 and P-384 log in to our server with
//! certificate authentication, one of them through a tunnel that pings. A key file whose
//! TPM is not there, and a TPM key that is not the certificate's, are clear errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use ferroconnect_interop::{output_text, run_to_end, wait_until, Lab, Pki, ServerKind};

const SECS: fn(u64) -> Duration = Duration::from_secs;
const TCTI: &str = "swtpm:host=127.0.0.1,port=2321";

/// swtpm in the client namespace (its loopback), with a fresh state.
fn start_tpm(lab: &mut Lab) {
    let state = lab.dir.join("tpm-state");
    std::fs::create_dir_all(&state).unwrap();
    let dir = format!("dir={}", state.display());
    let ns = lab.client_ns.clone();
    let argv = [
        "swtpm",
        "socket",
        "--tpm2",
        "--server",
        "type=tcp,port=2321",
        "--ctrl",
        "type=tcp,port=2322",
        "--tpmstate",
        &dir,
        "--flags",
        "not-need-init,startup-clear",
    ];
    lab.spawn_in(&ns, &argv, "swtpm.log");
    let up = wait_until(SECS(10), || {
        let probe =
            lab.in_client("timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/2321' && echo open");
        output_text(&probe).contains("open").then_some(())
    });
    assert!(up.is_some(), "swtpm: {}", lab.log("swtpm.log"));
}

/// openssl with the tpm2 provider in the client namespace.
fn tpm_openssl(lab: &Lab, args: &str) {
    let out = lab.in_client(&format!(
        "TPM2OPENSSL_TCTI={TCTI} openssl {args} -provider tpm2 -provider default"
    ));
    assert!(
        out.status.success(),
        "openssl {args}: {}",
        output_text(&out)
    );
}

/// A key in the TPM and a certificate for it: (certificate, key file).
fn tpm_key(lab: &Lab, pki: &Pki, name: &str, algorithm: &str) -> (PathBuf, PathBuf) {
    let key = lab.dir.join(format!("{name}.tss"));
    let public = lab.dir.join(format!("{name}.pub"));
    tpm_openssl(lab, &format!("genpkey {algorithm} -out {}", key.display()));
    tpm_openssl(
        lab,
        &format!(
            "pkey -in {} -pubout -out {}",
            key.display(),
            public.display()
        ),
    );
    let cert = pki.client_cert_for_public_key(&lab.dir, name, &public);
    (cert, key)
}

fn client(lab: &Lab, pki: &Pki, args: &[&str]) -> Command {
    let ca = pki.ca_pem.display().to_string();
    let mut cmd = lab.client_command(&["--non-inter", "--cafile", &ca]);
    cmd.args(args)
        .arg(format!("https://{}/", lab.server_ip))
        .env("TPM2OPENSSL_TCTI", TCTI);
    cmd
}

#[test]
fn tpm_keys_sign_the_handshake() {
    let mut lab = Lab::new("tpm");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let extra = pki.certificate_login_config();
    lab.start_server(ServerKind::Ours, &pki, "certificate", &extra);
    start_tpm(&mut lab);
    let rsa = tpm_key(&lab, &pki, "tpm-rsa", "-algorithm RSA -pkeyopt bits:2048");
    let p256 = tpm_key(&lab, &pki, "tpm-p256", "-algorithm EC -pkeyopt group:P-256");
    let p384 = tpm_key(&lab, &pki, "tpm-p384", "-algorithm EC -pkeyopt group:P-384");
    for (cert, key) in [&rsa, &p256, &p384] {
        let (cert, key) = (cert.display().to_string(), key.display().to_string());
        let cmd = client(&lab, &pki, &["--authenticate", "-c", &cert, "-k", &key]);
        let out = run_to_end(cmd, "", SECS(30));
        let text = output_text(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{key}: {text}\n{}",
            lab.log("ocserv.log")
        );
        assert!(text.contains("COOKIE='"), "{key}: {text}");
    }
    let (cert, key) = (p384.0.display().to_string(), p384.1.display().to_string());
    let cmd = client(&lab, &pki, &["-c", &cert, "-k", &key]);
    lab.spawn_logged(cmd, "", "client.log");
    lab.assert_tunnel("with a P-384 key in the TPM");

    // The RSA key with the P-256 certificate: refused before any connection.
    let (cert, key) = (p256.0.display().to_string(), rsa.1.display().to_string());
    let out = run_to_end(
        client(&lab, &pki, &["--authenticate", "-c", &cert, "-k", &key]),
        "",
        SECS(30),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        output_text(&out).contains("not the key of the certificate"),
        "{}",
        output_text(&out)
    );
    // A TPM key file for a TPM that is not there (another port).
    let mut cmd = client(&lab, &pki, &["--authenticate", "-c", &cert, "-k", &key]);
    cmd.env("TPM2OPENSSL_TCTI", "swtpm:host=127.0.0.1,port=2999");
    let out = run_to_end(cmd, "", SECS(30));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        output_text(&out).contains("is the TPM there"),
        "{}",
        output_text(&out)
    );
}
