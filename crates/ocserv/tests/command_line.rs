//! ocserv's command line as upstream's test suite and admins' scripts use it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn ocserv(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ocserv"))
        .args(args)
        .output()
        .unwrap()
}

fn both(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn version_lists_the_features_upstream_tests_look_for() {
    for flag in ["--version", "-v"] {
        let out = ocserv(&[flag]);
        assert!(out.status.success());
        let text = both(&out);
        assert!(text.starts_with("ocserv "), "{text}");
        let compiled = text
            .lines()
            .find_map(|l| l.strip_prefix("Compiled with: "))
            .unwrap_or_default();
        for present in ["oath", "radius", "gssapi", "PAM", "oidc_auth"] {
            assert!(compiled.split(", ").any(|f| f == present), "{text}");
        }
    }
}

#[test]
fn debug_level_repeats_and_is_bounded_as_in_ocserv() {
    let missing = "/nonexistent/ocserv.conf";
    // Repeated -d is accepted (the last counts) and up to 9999: the run fails only on the
    // missing file.
    let out = ocserv(&["-d", "1", "-d", "9999", "-t", "-c", missing]);
    assert!(both(&out).contains(missing), "{}", both(&out));
    let out = ocserv(&["-d", "10000", "-t", "-c", missing]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(both(&out).contains("0..=9999"), "{}", both(&out));
    for flag in [["--no-chdir"], ["-e"], ["-s"], ["-x"]] {
        let out = ocserv(&[flag[0], "-t", "-c", missing]);
        assert!(both(&out).contains(missing), "{flag:?}: {}", both(&out));
    }
    let out = ocserv(&["--syslog-facility", "local8", "-t", "-c", missing]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(
        both(&out).contains("unknown syslog facility"),
        "{}",
        both(&out)
    );
    let out = ocserv(&["--syslog-facility", "local7", "-t", "-c", missing]);
    assert!(both(&out).contains(missing), "{}", both(&out));
}
