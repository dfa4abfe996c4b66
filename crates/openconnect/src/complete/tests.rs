use super::*;

/// The answer for `words` with COMP_CWORD `cword`, as text.
fn complete(cword: &str, words: &[&str]) -> String {
    let words: Vec<OsString> = words.iter().map(OsString::from).collect();
    let out = autocomplete(&words, Some(OsStr::new(cword))).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn option_names_come_from_the_clap_definitions() {
    let all = complete("1", &["--"]);
    let names: Vec<&str> = all.lines().collect();
    for expected in [
        "--certificate",
        "--passwd-on-stdin",
        "--allow-insecure-crypto",
        "--log-format",
        "--queue-len",
        "--proxy",
        "--no-proxy",
        "--http-auth",
        "--external-browser",
        "--help",
        "--version",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    assert_eq!(complete("1", &["-"]), all);
    assert_eq!(complete("1", &["--no-d"]), "--no-dtls\n--no-deflate\n");
    assert_eq!(complete("1", &["-U"]), "--setuid\n");
    // A letter that is no option, or an option without a value, completes to nothing.
    assert_eq!(complete("1", &["-Z"]), "");
    assert_eq!(complete("1", &["-bq"]), "");
}

#[test]
fn values_after_the_option_or_its_equals_sign() {
    assert_eq!(
        complete("2", &["--compression=st", "x"]),
        "HOSTNAME\n",
        "the second word is a host name"
    );
    assert_eq!(
        complete("1", &["--compression=st"]),
        "--compression=stateless\n"
    );
    assert_eq!(complete("1", &["--compr=o"]), "--compr=off\n");
    assert_eq!(complete("2", &["--os", "linux"]), "linux-64\nlinux\n");
    assert_eq!(complete("2", &["--protocol", "f"]), "f5\nfortinet\n");
    assert_eq!(
        complete("1", &["--token-mode="]),
        "--token-mode=totp\n--token-mode=hotp\n--token-mode=oidc\n--token-mode=rsa\n--token-mode=yubioath\n"
    );
    assert_eq!(complete("2", &["--log-format", ""]), "text\njson\n");
    assert_eq!(complete("2", &["-U", "r"]), "USERNAME\n''\n");
    assert_eq!(complete("1", &["--setuid=r"]), "USERNAME\n''\n--setuid=\n");
    assert_eq!(complete("2", &["--local-hostname", ""]), "HOSTNAME\n''\n");
    assert_eq!(complete("1", &["--config=/e"]), "FILENAME\n''\n--config=\n");
    assert_eq!(
        complete("1", &["-cfoo"]),
        "FILENAME\n!*.@(pem|der|p12|crt)\n-c\n"
    );
    // PKCS#11 URIs and free text get nothing.
    assert_eq!(complete("2", &["-c", "pkcs11:token=x"]), "");
    assert_eq!(complete("2", &["-u", ""]), "");
    assert_eq!(complete("2", &["--mtu", ""]), "");
    assert_eq!(complete("1", &["--verbose=x"]), "");
}

#[test]
fn token_secrets_complete_files_after_at_or_slash() {
    assert_eq!(
        complete("2", &["--token-secret", "@to"]),
        "FILENAME\n''\n@\n"
    );
    assert_eq!(complete("2", &["--token-secret", "/etc"]), "FILENAME\n''\n");
    assert_eq!(complete("2", &["--token-secret", ""]), "FILENAME\n''\n");
    assert_eq!(complete("2", &["--token-secret", "base32:"]), "");
    assert_eq!(
        complete("1", &["--token-secret=@x"]),
        "FILENAME\n''\n--token-secret=@\n"
    );
}

/// The walk takes values where getopt would: refused options, clusters, `--`.
#[test]
fn earlier_words_are_walked_as_getopt_does() {
    // -u takes "alice", so the third word is the host name.
    assert_eq!(complete("3", &["-u", "alice", ""]), "HOSTNAME\n");
    // A cluster ending in an option with a value takes the next word.
    assert_eq!(
        complete("2", &["-bk", ""]),
        "FILENAME\n!*.@(pem|der|p12|crt)\n"
    );
    assert_eq!(complete("2", &["-kfoo", ""]), "HOSTNAME\n");
    // A refused option still takes its value.
    assert!(complete("3", &["--proxy", "http://p", "-"]).contains("--certificate"));
    assert_eq!(complete("2", &["--proxy", ""]), "");
    // After `--` only the host name is left; an attached value takes nothing more.
    assert_eq!(complete("3", &["--", "-k", ""]), "HOSTNAME\n");
    assert_eq!(complete("2", &["--cafile=x", ""]), "HOSTNAME\n");
}

#[test]
fn bad_word_indexes_are_errors() {
    let words = [OsString::from("x")];
    assert_eq!(autocomplete(&words, None), Err(CompleteError::NoWordIndex));
    for bad in ["0", "2", "-1", "x", ""] {
        assert!(
            autocomplete(&words, Some(OsStr::new(bad))).is_err(),
            "{bad}"
        );
    }
    // C's atoi: leading blanks, trailing junk.
    assert!(autocomplete(&words, Some(OsStr::new(" 1x"))).is_ok());
}

#[test]
fn any_bytes_complete_without_panicking() {
    use std::os::unix::ffi::OsStringExt;
    let odd: Vec<OsString> = [
        b"--\xff=".to_vec(),
        b"-\xff".to_vec(),
        b"-c\xff".to_vec(),
        b"--token-secret=@\xff".to_vec(),
        b"=".to_vec(),
    ]
    .into_iter()
    .map(OsString::from_vec)
    .collect();
    for i in 1..=odd.len() {
        autocomplete(&odd, Some(OsStr::new(&i.to_string()))).unwrap();
    }
}
