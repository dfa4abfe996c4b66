//! Unit tests of the command line, form decoding and HTML escaping.

use std::net::Ipv4Addr;

use super::*;

#[test]
fn options_take_values_inline_or_next_and_flags_alone() {
    let args = ["--a", "1", "--b=2", "--flag", "--c", "x=y"].map(str::to_string);
    let got = split_options(args.into_iter(), &["--flag"])
        .unwrap()
        .unwrap();
    let want: Vec<OptionArg> = vec![
        ("--a".into(), Some("1".into())),
        ("--b".into(), Some("2".into())),
        ("--flag".into(), None),
        ("--c".into(), Some("x=y".into())),
    ];
    assert_eq!(got, want);
    assert!(split_options(["--a".to_string()].into_iter(), &[]).is_err());
    assert!(split_options(["stray".to_string()].into_iter(), &[]).is_err());
    assert!(split_options(["-h".to_string()].into_iter(), &[])
        .unwrap()
        .is_none());
}

#[test]
fn the_command_line_splits_into_common_and_own_options() {
    let args = |line: &str| line.split(' ').map(str::to_string).collect::<Vec<_>>();
    let required = "--listen 10.0.0.1:443 --cert c.pem --key k.pem --user u --password p \
                    --tunnel-addr 10.1.0.1 --client-addr 10.1.0.2";
    let parse = |line: &str| {
        let mut own = Vec::new();
        let parsed = parse_command_line(args(line).into_iter(), &["--flag"], "tun9", |n, v| {
            own.push((n.to_string(), v.map(str::to_string)));
            n == "--flag" || n == "--mine"
        });
        (parsed, own)
    };
    let (common, own) = parse(&format!("{required} --dns=10.2.0.1 --flag --mine x"));
    let common = common.unwrap().unwrap();
    assert_eq!(common.user, "u");
    assert_eq!(common.dns, [Ipv4Addr::new(10, 2, 0, 1)]);
    assert_eq!(common.tun, "tun9");
    let want = [("--flag".into(), None), ("--mine".into(), Some("x".into()))];
    assert_eq!(own, want);
    let error = |line: &str| parse(line).0.unwrap_err();
    assert_eq!(
        error(&format!("{required} --other 1")),
        "unknown option --other"
    );
    assert_eq!(error("--user u"), "--listen is required");
    let same = format!("{required} --client-addr 10.1.0.1");
    assert_eq!(error(&same), "--tunnel-addr and --client-addr must differ");
    assert!(parse("--help").0.unwrap().is_none());
}

#[test]
fn dtls_is_on_by_default_on_the_https_port_and_the_common_flags_turn_it_off_or_refusing() {
    let args = |extra: &str| {
        format!(
            "--listen 10.0.0.1:8443 --cert c.pem --key k.pem --user u --password p \
             --tunnel-addr 10.1.0.1 --client-addr 10.1.0.2{extra}"
        )
        .split(' ')
        .map(str::to_string)
        .collect::<Vec<_>>()
    };
    let parse = |extra: &str| {
        parse_command_line(args(extra).into_iter(), &[], "tun9", |_, _| false)
            .unwrap()
            .unwrap()
            .dtls
    };
    let on = DtlsOptions {
        port: 8443,
        refuse: false,
    };
    assert_eq!(parse(""), Some(on));
    assert_eq!(parse(" --no-dtls"), None);
    let refusing = DtlsOptions { refuse: true, ..on };
    assert_eq!(parse(" --dtls-refuse"), Some(refusing));
    // Common flags take no value: what follows is the next option.
    let next = parse_command_line(
        args(" --dtls-refuse --tun t0").into_iter(),
        &[],
        "x",
        |_, _| false,
    );
    assert_eq!(next.unwrap().unwrap().tun, "t0");
}

#[test]
fn forms_and_queries_decode() {
    let form = parse_form(b"username=al+ice&password=a%26b%3D&bad=%zz&empty");
    assert_eq!(field(&form, "username"), Some("al ice"));
    assert_eq!(field(&form, "password"), Some("a&b="));
    assert_eq!(field(&form, "bad"), Some("%zz"));
    assert_eq!(field(&form, "empty"), Some(""));
    let query = parse_query("/myvpn?sess=ab&Z=1%2F2");
    assert_eq!(field(&query, "Z"), Some("1/2"));
    assert!(parse_query("/myvpn").is_empty());
    assert_eq!(
        describe_form(&form[..2], &["password"]),
        "username=al ice&password=<4 bytes>"
    );
}

#[test]
fn html_is_escaped_and_masks_are_computed() {
    assert_eq!(
        html_escape("<a href=\"x\">&'"),
        "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
    );
    assert_eq!(netmask(24), Ipv4Addr::new(255, 255, 255, 0));
    assert_eq!(netmask(0), Ipv4Addr::UNSPECIFIED);
    assert_eq!(
        parse_route("10.0.0.0/8").unwrap(),
        (Ipv4Addr::new(10, 0, 0, 0), 8)
    );
    assert!(parse_route("10.0.0.0/33").is_err());
}
