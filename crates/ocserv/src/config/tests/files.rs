//! load(), -t and the sample configurations.

use super::*;

// ---------------------------------------------------------------------------------------
// load() and -t

#[test]
fn load_missing_file_is_io_error() {
    let e = load(Path::new("/nonexistent/ferroconnect/ocserv.conf"), false).unwrap_err();
    assert!(matches!(e, ConfigError::Io { .. }));
    assert!(e
        .to_string()
        .starts_with("cannot read /nonexistent/ferroconnect/ocserv.conf"));
}

#[test]
fn load_reports_invalid_utf8_at_its_line() {
    let dir = TempDir::new("utf8");
    let p = dir.0.join("ocserv.conf");
    let mut bytes = BASE.as_bytes().to_vec();
    bytes.extend_from_slice(b"banner = caf\xe9\n");
    std::fs::write(&p, bytes).unwrap();
    let e = load(&p, false).unwrap_err();
    let ConfigError::Invalid(problems) = e else {
        panic!()
    };
    assert_has(&problems, L, "not valid UTF-8");
    assert_eq!(problems[0].file, p);
}

/// A config in a temp dir whose referenced files all exist.
fn test_mode_setup(dir: &TempDir, extra: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let d = dir.0.display();
    dir.file("cert.pem", "");
    dir.file("key.pem", "");
    dir.file("ca.pem", "");
    dir.file("passwd", "");
    let script = dir.file("connect.sh", "#!/bin/sh\n");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(dir.0.join("users")).unwrap();
    dir.file("users/alice", "dpd = 10\n");
    dir.file("users/.swp", "garbage\n");
    dir.file(
        "ocserv.conf",
        &format!(
            "auth = \"plain[passwd={d}/passwd]\"\n\
             tcp-port = 443\n\
             server-cert = {d}/cert.pem\n\
             server-key = {d}/key.pem\n\
             ipv4-network = 192.168.1.0/24\n\
             ca-cert = {d}/ca.pem\n\
             connect-script = {d}/connect.sh\n\
             config-per-user = {d}/users\n\
             run-as-user = root\n\
             {extra}"
        ),
    )
}

#[test]
fn test_mode_accepts_existing_files() {
    let dir = TempDir::new("tmode-ok");
    let conf = test_mode_setup(&dir, "");
    let l = load(&conf, true).unwrap_or_else(|e| panic!("{e}"));
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    // Without -t the same config loads too, of course.
    load(&conf, false).unwrap();
}

#[test]
fn test_mode_reports_missing_files_at_their_lines() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("tmode-bad");
    let d = dir.0.display().to_string();
    let conf = test_mode_setup(
        &dir,
        &format!(
            "disconnect-script = {d}/ca.pem\n\
             host-update-script = {d}/nothere.sh\n\
             config-per-group = {d}/ca.pem\n\
             default-user-config = {d}/nothere.conf\n\
             run-as-group = no-such-group-ferroconnect\n\
             user-profile = {d}/profile.xml\n"
        ),
    );
    std::fs::remove_file(dir.0.join("key.pem")).unwrap();
    std::fs::remove_file(dir.0.join("passwd")).unwrap();
    std::fs::set_permissions(dir.0.join("ca.pem"), std::fs::Permissions::from_mode(0o644)).unwrap();
    dir.file("users/bob", "dpd = soon\n");

    let Err(ConfigError::Invalid(p)) = load(&conf, true) else {
        panic!("expected errors");
    };
    assert_has(&p, 1, "passwd:");
    assert_has(&p, 1, "passwd does not exist");
    assert_has(&p, 4, "server-key:");
    assert_has(&p, 10, "disconnect-script:");
    assert_has(&p, 10, "is not executable");
    assert_has(&p, 11, "host-update-script:");
    assert_has(&p, 12, "is not a directory");
    assert_has(&p, 13, "nothere.conf does not exist");
    assert_has(&p, 14, "no group no-such-group-ferroconnect");
    assert_has(&p, 15, "profile.xml does not exist");
    // The broken per-user file is reported with its own path and line.
    let bob = dir.0.join("users/bob");
    assert!(
        p.iter()
            .any(|x| x.file == bob && x.line == 1 && x.message.contains("dpd")),
        "{p:#?}"
    );
    // Without -t the files are not looked at.
    load(&conf, false).unwrap();
}

#[test]
fn test_mode_warns_about_bad_otp_lines() {
    let dir = TempDir::new("tmode-otp");
    let conf = test_mode_setup(&dir, "");
    let d = dir.0.display().to_string();
    let users = dir.file(
        "users.oath",
        "HOTP/T30 alice - 3132333435363738393031323334353637383930
HOTP/X bob - 00
",
    );
    let text = std::fs::read_to_string(&conf).unwrap().replace(
        &format!("plain[passwd={d}/passwd]"),
        &format!("plain[passwd={d}/passwd,otp={}]", users.display()),
    );
    std::fs::write(&conf, text).unwrap();
    let l = load(&conf, true).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        l.warnings.iter().any(|w| w.line == 1
            && w.message
                .contains("users.oath: line 2: unknown token type HOTP/X")),
        "{:?}",
        l.warnings
    );
}

#[test]
fn test_mode_checks_run_as_user() {
    let dir = TempDir::new("tmode-user");
    let conf = test_mode_setup(&dir, "run-as-user = no-such-user-ferroconnect\n");
    let Err(ConfigError::Invalid(p)) = load(&conf, true) else {
        panic!("expected errors");
    };
    assert_has(&p, 10, "no user no-such-user-ferroconnect");
}

/// Under -t a virtual host's own per-user files are checked too, each problem reported
/// with its file (the same line and words in another host's file are another problem).
#[test]
fn test_mode_checks_each_vhosts_own_files() {
    let dir = TempDir::new("tmode-vhost");
    let d = dir.0.display().to_string();
    std::fs::create_dir_all(dir.0.join("vhost-users")).unwrap();
    let conf = test_mode_setup(
        &dir,
        &format!("[vhost:a.example.com]\nconfig-per-user = {d}/vhost-users\n"),
    );
    let users = dir.file("users/alice", "dpd = soon\n");
    let vhost_users = dir.file("vhost-users/alice", "dpd = soon\n");
    let Err(ConfigError::Invalid(p)) = load(&conf, true) else {
        panic!("expected errors");
    };
    for file in [users, vhost_users] {
        let found: Vec<&Problem> = p.iter().filter(|p| p.file == file).collect();
        assert_eq!(found.len(), 1, "{file:?}: {p:#?}");
        assert_eq!(found[0].line, 1);
        assert!(!found[0].message.contains("[vhost:"), "{p:#?}");
    }
}

// ---------------------------------------------------------------------------------------
// Debian's sample config (ocserv's doc/sample.config)

#[test]
fn debian_sample_config() {
    let path = Path::new("/etc/ocserv/ocserv.conf");
    let Ok(text) = std::fs::read_to_string(path) else {
        eprintln!("skipping: {} is not installed", path.display());
        return;
    };
    // As shipped, server-cert and server-key are commented out; ocserv refuses that too.
    let p = errors_of(parse(&text, path, false), "sample as shipped");
    assert!(
        p.iter()
            .all(|p| p.message.contains("server-cert") || p.message.contains("server-key")),
        "{p:#?}"
    );

    let text = format!(
        "{text}\nserver-cert = /etc/ssl/certs/ssl-cert-snakeoil.pem\n\
         server-key = /etc/ssl/private/ssl-cert-snakeoil.key\n"
    );
    let l = parse(&text, path, false).unwrap_or_else(|e| panic!("{e}"));
    for w in &l.warnings {
        eprintln!("sample config warning: {w}");
    }
    assert!(!l.warnings.is_empty());
    assert!(l
        .warnings
        .iter()
        .all(|w| !w.message.contains("unknown key")));
    let c = l.config;
    assert_eq!(c.tcp_port, Some(443));
    assert_eq!(c.udp_port, Some(443));
    assert!(matches!(c.auth.as_slice(), [AuthMethod::Plain { .. }]));
    assert_eq!(c.net.ipv4_network, Some(net4("192.168.1.0/24")));
    assert_eq!(c.net.dns, Some(vec!["192.168.1.1".parse().unwrap()]));
    assert_eq!(c.device, "vpns");
    assert!(c.cisco_client_compat);
}
