use super::*;

fn args(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

#[test]
fn openconnect_style_command_line() {
    let o = Options::from_args(args(&[
        "openconnect",
        "-u",
        "alice",
        "--passwd-on-stdin",
        "--servercert",
        "pin-sha256:AAAA",
        "-F",
        "main:group_list=eng",
        "-vv",
        "--reconnect-timeout",
        "60",
        "https://vpn/eng",
    ]))
    .unwrap();
    assert_eq!(o.user.as_deref(), Some("alice"));
    assert_eq!(o.log_level(), 3);
    assert_eq!(o.reconnect_timeout, 60);
    assert_eq!(o.server.as_deref(), Some("https://vpn/eng"));
    assert_eq!(
        o.form_entries().unwrap(),
        vec![("main".into(), "group_list".into(), "eng".into())]
    );
}

#[test]
fn config_file_expands_in_place() {
    let dir = std::env::temp_dir().join(format!("oc-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("conf");
    std::fs::write(
        &f,
        "# comment\n  user=bob\nno-dtls\nservercert sha256:abcd\n\nmtu=1300\r\n",
    )
    .unwrap();
    let o = Options::from_args(args(&[
        "openconnect",
        "--config",
        f.to_str().unwrap(),
        "-u",
        "carol",
        "--servercert",
        "sha1:1234",
        "vpn",
    ]))
    .unwrap();
    // Later command-line options win over the file's.
    assert_eq!(o.user.as_deref(), Some("carol"));
    assert!(o.no_dtls);
    // Repeatable options accumulate.
    assert_eq!(
        o.servercert,
        vec!["sha256:abcd".to_string(), "sha1:1234".to_string()]
    );
    assert_eq!(o.mtu, Some(1300));
    std::fs::write(&f, "--user=x\n").unwrap();
    let err =
        Options::from_args(args(&["openconnect", "--config", f.to_str().unwrap()])).unwrap_err();
    assert!(err.to_string().contains("conf:1"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn compression_flags_last_one_wins() {
    use oc_proto::compress::Mode;
    let mode = |a: &[&str]| {
        let mut v = vec!["openconnect"];
        v.extend_from_slice(a);
        v.push("vpn");
        Options::from_args(args(&v)).unwrap().compression_mode()
    };
    assert_eq!(mode(&[]), Mode::Stateless);
    assert_eq!(mode(&["-d"]), Mode::All);
    assert_eq!(mode(&["--deflate"]), Mode::All);
    assert_eq!(mode(&["-D"]), Mode::None);
    assert_eq!(mode(&["--compression=all"]), Mode::All);
    assert_eq!(mode(&["--compression", "none"]), Mode::None);
    assert_eq!(mode(&["-d", "--compression=stateless"]), Mode::Stateless);
    assert_eq!(mode(&["--compression=none", "-d"]), Mode::All);
    assert_eq!(mode(&["-d", "-D"]), Mode::None);
    assert!(Options::from_args(args(&["openconnect", "--compression=lzo", "vpn"])).is_err());
}

#[test]
fn queue_len_is_accepted_in_range() {
    let o = Options::from_args(args(&["openconnect", "-Q16", "vpn"])).unwrap();
    assert_eq!(o.queue_len, Some(16));
    let o = Options::from_args(args(&["openconnect", "--queue-len=32", "vpn"])).unwrap();
    assert_eq!(o.queue_len, Some(32));
    assert!(Options::from_args(args(&["openconnect", "-Q0", "vpn"])).is_err());
}

#[test]
fn server_keepalive_and_cipher_options_parse_as_openconnects() {
    let o = Options::from_args(args(&["openconnect", "--server", "vpn.example.com"])).unwrap();
    assert_eq!(o.server_option.as_deref(), Some("vpn.example.com"));
    assert_eq!(o.server, None);
    // Without a value (openconnect's optional argument takes `=`), then with one.
    let o = Options::from_args(args(&["openconnect", "--tcp-keepalive", "vpn"])).unwrap();
    assert_eq!(
        (o.tcp_keepalive, o.server.as_deref()),
        (Some(0), Some("vpn"))
    );
    let o = Options::from_args(args(&["openconnect", "--tcp-keepalive=30", "vpn"])).unwrap();
    assert_eq!(o.tcp_keepalive, Some(30));
    let o = Options::from_args(args(&[
        "openconnect",
        "--openssl-ciphers",
        "ECDHE+AESGCM",
        "--gnutls-priority",
        "NORMAL:-VERS-TLS1.3",
        "--key-password-from-fsid",
        "--pfs",
        "vpn",
    ]))
    .unwrap();
    assert_eq!(o.openssl_ciphers.as_deref(), Some("ECDHE+AESGCM"));
    assert_eq!(o.gnutls_priority.as_deref(), Some("NORMAL:-VERS-TLS1.3"));
    assert!(o.key_password_from_fsid && o.pfs);
    assert_eq!(o.tcp_keepalive, None);
}

#[test]
fn juniper_is_network_connect_and_login_switches_parse() {
    let o = Options::from_args(args(&["openconnect", "--juniper", "vpn"])).unwrap();
    assert_eq!(o.protocol_name(), Some("nc"));
    assert!(o.validate().is_ok());
    let o = Options::from_args(args(&[
        "openconnect",
        "--juniper",
        "--protocol=gp",
        "--no-passwd",
        "--no-http-keepalive",
        "--dump-http-traffic",
        "vpn",
    ]))
    .unwrap();
    assert_eq!(o.protocol_name(), Some("gp"), "--protocol wins");
    assert!(o.no_passwd && o.no_http_keepalive && o.dump_http_traffic);
    assert_eq!(o.cert_expire_warning, 60, "openconnect's default");
    let o = Options::from_args(args(&["openconnect", "-e", "14", "vpn"])).unwrap();
    assert_eq!(o.cert_expire_warning, 14);
}

#[test]
fn unsupported_options_are_named() {
    let o = Options::from_args(args(&["openconnect", "--http-auth=Bearer,gssapi", "vpn"]));
    assert!(o.unwrap().validate().is_ok());
    let o = Options::from_args(args(&["openconnect", "--http-auth=kerberos", "vpn"])).unwrap();
    let err = o.validate().unwrap_err().to_string();
    assert!(
        err.contains("--http-auth") && err.contains("kerberos"),
        "{err}"
    );
    let o = Options::from_args(args(&["openconnect", "--os=beos", "vpn"])).unwrap();
    assert!(o.validate().is_err());
    let wrapper = ["openconnect", "--csd-wrapper=/bin/true", "vpn"];
    assert!(Options::from_args(args(&wrapper))
        .unwrap()
        .validate()
        .is_ok());
    let fortinet = [
        "openconnect",
        "--protocol=fortinet",
        "--csd-wrapper=/bin/true",
        "vpn",
    ];
    let o = Options::from_args(args(&fortinet)).unwrap();
    let err = o.validate().unwrap_err().to_string();
    assert!(err.contains("this protocol has none"), "{err}");
    let gp = [
        "openconnect",
        "--protocol=gp",
        "--csd-wrapper=/bin/true",
        "vpn",
    ];
    assert!(Options::from_args(args(&gp)).unwrap().validate().is_ok());
}

#[test]
fn bad_entries() {
    let o = Options::from_args(args(&[
        "openconnect",
        "-F",
        "nocolon",
        "--resolve",
        "h:notip",
        "vpn",
    ]))
    .unwrap();
    assert!(o.form_entries().is_err());
    assert!(o.resolve_entries().is_err());
    let o = Options::from_args(args(&[
        "openconnect",
        "--resolve",
        "vpn.example:[2001:db8::1]",
        "vpn",
    ]))
    .unwrap();
    assert_eq!(
        o.resolve_entries().unwrap()[0].1,
        "2001:db8::1".parse::<IpAddr>().unwrap()
    );
}
