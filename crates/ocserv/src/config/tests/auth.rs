//! Auth methods and the checks across keys.

use super::*;

// ---------------------------------------------------------------------------------------
// Auth and cross-checks

#[test]
fn auth_forms() {
    let text = "auth = \"plain[ passwd = ./p , otp=/etc/ocserv/users.otp ]\"\nauth = certificate\n\
                enable-auth = certificate\nca-cert = ca.pem\ncert-user-oid = 2.5.4.3\n\
                tcp-port = 443\nserver-cert = c\nserver-key = k\nipv4-network = 10.0.0.0/8\n";
    let c = parse(text, file(), false).unwrap().config;
    assert_eq!(
        c.auth,
        vec![
            AuthMethod::Plain {
                passwd: Some("./p".into()),
                otp: Some("/etc/ocserv/users.otp".into())
            },
            AuthMethod::Certificate
        ]
    );
    assert_eq!(c.enable_auth, vec![AuthMethod::Certificate]);
    let otp_only = text.replace("passwd = ./p , ", "");
    let c = parse(&otp_only, file(), false).unwrap().config;
    assert_eq!(
        c.auth[0],
        AuthMethod::Plain {
            passwd: None,
            otp: Some("/etc/ocserv/users.otp".into())
        }
    );

    let legacy = BASE.replace(
        "plain[passwd=/etc/ocserv/passwd]",
        "PLAIN[/etc/ocserv/ocpasswd]",
    );
    let c = parse(&legacy, file(), false).unwrap().config;
    assert_eq!(
        c.auth,
        vec![AuthMethod::Plain {
            passwd: Some("/etc/ocserv/ocpasswd".into()),
            otp: None
        }]
    );
}

#[test]
fn auth_combination_errors() {
    let p = errs("auth = \"plain[passwd=/other]\"\n");
    assert_has(&p, L, "only one password method");
    let p = errs("enable-auth = \"plain[passwd=/other]\"\n");
    assert_has(&p, L, "cannot be added as an alternative");
    let p = errs("enable-auth = certificate\n");
    assert_has(&p, L, "needs ca-cert");
    assert_has(&p, L, "needs cert-user-oid");
}

#[test]
fn dtls_option_interplay() {
    let p = errs("match-tls-dtls-ciphers = true\n");
    assert_has(&p, L, "cannot be used with dtls-legacy");
    let c = cfg("match-tls-dtls-ciphers = true\ndtls-legacy = false\n");
    assert!(c.match_tls_dtls_ciphers && !c.dtls_legacy);
    let l = ok("cisco-client-compat = true\ndtls-legacy = false\n");
    assert!(l.config.dtls_legacy);
    assert_has(&l.warnings, L + 1, "implies dtls-legacy = true");
}

#[test]
fn derived_defaults() {
    let c = cfg("dpd = 40\nmobile-dpd = 0\n");
    assert_eq!(c.net.mobile_dpd, Some(40));
    let l = ok("no-compress-limit = 10\n");
    assert_eq!(l.config.no_compress_limit, 64);
    assert_has(&l.warnings, L, "below the minimum");
}

#[test]
fn server_cert_pairs() {
    let l = ok("server-cert = /c2.pem\nserver-key = /k2.pem\n");
    assert_eq!(l.config.server_pairs[0].0, PathBuf::from("/c.pem"));
    assert_eq!(
        l.config.server_pairs,
        vec![
            (PathBuf::from("/c.pem"), PathBuf::from("/k.pem")),
            (PathBuf::from("/c2.pem"), PathBuf::from("/k2.pem")),
        ]
    );
    assert!(l.warnings.is_empty(), "{:#?}", l.warnings);
    let p = errs("server-cert = /c2.pem\n");
    assert_has(&p, 4, "2 server-cert lines but 1 server-key lines");
}

#[test]
fn key_lines_point_at_the_config() {
    let c = cfg("dpd = 1\n");
    assert_eq!(c.line_of("tcp-port"), 2);
    assert_eq!(c.line_of("dpd"), L);
    assert_eq!(c.line_of("banner"), 0);
    let p = c.problem_at("server-cert", "cannot load certificate");
    assert_eq!(p.to_string(), "t.conf:3: cannot load certificate");
}

#[test]
fn device_name_limits() {
    assert_eq!(cfg("device = abcdefghijklmn\n").device, "abcdefghijklmn");
    let l = ok("device = abcdefghijklm\n");
    assert_has(&l.warnings, L, "room for only 2 digit(s)");
}
