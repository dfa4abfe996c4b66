//! The binary's `--autocomplete` as upstream's `tests/autocompletion` runs it: words on
//! the command line, the index in COMP_CWORD, the answer on stdout.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn run(cword: Option<&str>, words: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_openconnect"));
    cmd.arg("--autocomplete")
        .args(words)
        .env_remove("COMP_CWORD");
    if let Some(c) = cword {
        cmd.env("COMP_CWORD", c);
    }
    cmd.output().unwrap()
}

#[test]
fn upstream_autocompletion_test_cases() {
    let cases: &[(&str, &[&str], &str)] = &[
        ("1", &[""], "HOSTNAME"),
        ("1", &["-c"], "--certificate"),
        ("3", &["foo", "-k", ""], "FILENAME\n!*.@(pem|der|p12|crt)"),
        ("2", &["somehost", "--proto"], "--protocol"),
        ("1", &["somehost", "--proto"], "HOSTNAME"),
        ("3", &["foo", "--cafile", ""], "FILENAME\n!*.@(pem|der|crt)"),
        (
            "4",
            &["-k", "foo", "--compr", ""],
            "none\noff\nall\nstateless",
        ),
        ("1", &["-s/bin"], "EXECUTABLE\n''\n-s"),
    ];
    for (cword, words, expected) in cases {
        let out = run(Some(cword), words);
        assert!(out.status.success(), "{words:?}: {out:?}");
        // The shell's $(...) drops the trailing newline.
        let got = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            got.trim_end_matches('\n'),
            *expected,
            "word {cword} of {words:?}"
        );
    }
}

#[test]
fn without_an_index_it_fails_and_says_why() {
    let out = run(None, &["foo"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("COMP_CWORD"));
    let out = run(Some("5"), &["foo"]);
    assert_eq!(out.status.code(), Some(1));
    // `--autocomplete` alone is no completion request: an unknown option, as upstream.
    let out = Command::new(env!("CARGO_BIN_EXE_openconnect"))
        .arg("--autocomplete")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
