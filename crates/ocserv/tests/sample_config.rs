//! `ocserv -t` on the sample configuration Debian installs with ocserv (its copy of ocserv's
//! doc/sample.config), as an admin would deploy it: only the key material and the password
//! file path are filled in.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

const SAMPLE: &str = "/etc/ocserv/ocserv.conf";

fn run_test_mode(config: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ocserv"))
        .arg("-t")
        .arg("-c")
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ocserv-sample-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn debian_sample_config_passes_test_mode_with_warnings() {
    let Ok(sample) = std::fs::read_to_string(SAMPLE) else {
        eprintln!("skipping: {SAMPLE} is not installed (apt-get install ocserv)");
        return;
    };
    let dir = temp_dir();
    // As shipped, the certificate lines are commented out: -t names what is missing.
    let as_shipped = dir.join("as-shipped.conf");
    std::fs::write(&as_shipped, &sample).unwrap();
    let (code, _, stderr) = run_test_mode(&as_shipped);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("server-cert"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=vpn.test", "-keyout"])
        .arg(dir.join("server-key.pem"))
        .arg("-out")
        .arg(dir.join("server-cert.pem"))
        .output()
        .unwrap();
    assert!(status.status.success());
    std::fs::write(dir.join("passwd"), "").unwrap();
    let d = dir.display();
    let deployed: String = sample
        .lines()
        .map(|line| {
            if line.starts_with("#server-cert = ") {
                format!("server-cert = {d}/server-cert.pem")
            } else if line.starts_with("#server-key = ") {
                format!("server-key = {d}/server-key.pem")
            } else {
                line.replace("/etc/ocserv/passwd", &format!("{d}/passwd"))
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let config = dir.join("ocserv.conf");
    std::fs::write(&config, deployed).unwrap();
    let (code, stdout, stderr) = run_test_mode(&config);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("configuration is valid"), "{stdout}");
    // Keys we do not implement yet are named, with their line.
    assert!(
        stderr.contains("warning:") && stderr.contains("ocserv.conf:"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
