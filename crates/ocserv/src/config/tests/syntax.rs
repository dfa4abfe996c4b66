//! Syntax: quotes, comments, separators, continuation lines.

use super::*;

#[test]
fn quotes_comments_and_whitespace() {
    let l = ok("# a comment\n   ; another comment\n\n\
                banner = \"Hello # world\"   # trailing comment\n\
                dns = 1.1.1.1 # comment\n\
                default-domain = example.com   \t\n\
                pre-login-banner = \"unbalanced\n\
                split-dns:example.org\n\
                default-select-group =#grp\n");
    let c = &l.config;
    assert_eq!(c.banner.as_deref(), Some("Hello # world"));
    assert_has(
        &l.warnings,
        L + 3,
        "ocserv 1.x would treat it as the start of a comment",
    );
    assert_eq!(c.net.dns, Some(vec!["1.1.1.1".parse().unwrap()]));
    assert_eq!(c.net.default_domain.as_deref(), Some("example.com"));
    assert_eq!(c.pre_login_banner.as_deref(), Some("unbalanced"));
    assert_has(&l.warnings, L + 6, "missing closing quote");
    // inih takes ':' as a separator too.
    assert_eq!(c.net.split_dns, Some(vec!["example.org".to_owned()]));
    // '#' right after '=' (no whitespace before it) is not a comment: it is the value.
    assert_eq!(c.default_select_group.as_deref(), Some("#grp"));
    assert_eq!(l.warnings.len(), 2, "{:?}", l.warnings);
}

#[test]
fn hash_after_equals_with_space_is_an_empty_value() {
    let p = errs("banner = ok\ntls-priorities = # nothing\n");
    assert_has(&p, L + 1, "tls-priorities: expected a priority string");
}

#[test]
fn crlf_and_bom_are_accepted() {
    let text = format!("\u{feff}{}", BASE.replace('\n', "\r\n"));
    let c = parse(&text, file(), false).unwrap().config;
    assert_eq!(c.tcp_port, Some(443));
    assert_eq!(c.server_pairs[0].1, PathBuf::from("/k.pem"));
}

#[test]
fn repeated_keys_accumulate_or_replace() {
    let l = ok(
        "route = 10.0.0.0/8\nroute = 172.16.0.0/12\nroute = 192.168.0.0/16\n\
                dns = 192.168.1.1\ndns = fc00::4be0\n\
                select-group = group1\nselect-group = group2[My special group]\n\
                custom-header = \"X-A: 1\"\ncustom-header = \"X-B: 2\"\n\
                split-dns = a.example\nsplit-dns = b.example\n\
                nbns = 10.0.0.1\nnbns = 10.0.0.2\n\
                no-route = 10.1.0.0/16\nno-route = 10.2.0.0/16\n\
                dpd = 10\ndpd = 20\n",
    );
    let c = &l.config;
    assert_eq!(
        c.net.routes,
        Some(vec![
            net("10.0.0.0/8"),
            net("172.16.0.0/12"),
            net("192.168.0.0/16")
        ])
    );
    assert_eq!(c.net.dns.as_ref().map(Vec::len), Some(2));
    assert_eq!(c.select_groups.len(), 2);
    assert_eq!(c.custom_headers, vec!["X-A: 1", "X-B: 2"]);
    assert_eq!(c.net.split_dns.as_ref().map(Vec::len), Some(2));
    assert_eq!(c.net.nbns.as_ref().map(Vec::len), Some(2));
    assert_eq!(c.net.no_routes.as_ref().map(Vec::len), Some(2));
    // A scalar given twice: the last wins, with a warning naming both lines.
    assert_eq!(c.net.dpd, Some(20));
    assert_has(
        &l.warnings,
        L + 16,
        "dpd is set again; this replaces the value on line 21",
    );
    assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
}

#[test]
fn indented_line_continues_the_previous_key() {
    let l = ok("route = 10.0.0.0/8\n    192.168.0.0/16\n  fd00::/64\n");
    assert_eq!(
        l.config.net.routes,
        Some(vec![
            net("10.0.0.0/8"),
            net("192.168.0.0/16"),
            net("fd00::/64")
        ])
    );
    assert_has(&l.warnings, L + 1, "continues the previous key");
    assert_has(&l.warnings, L + 2, "continues the previous key");
}

#[test]
fn indented_setting_is_an_error() {
    let p = errs("route = 10.0.0.0/8\n  dns = 1.1.1.1\n");
    assert_has(&p, L + 1, "indented setting");
}

#[test]
fn indentation_at_the_top_is_fine() {
    let text = BASE.lines().map(|l| format!("  {l}\n")).collect::<String>();
    // Only the first line can be indented without continuing a key.
    let p = errors_of(parse(&text, file(), false), "indented");
    assert_has(&p, 2, "indented setting");
    let c = parse(&format!("  {BASE}"), file(), false).unwrap().config;
    assert_eq!(c.auth.len(), 1);
}

#[test]
fn key_name_lookup_is_exact() {
    let l = ok("DPD = 10\n");
    assert_eq!(l.config.net.dpd, Some(90));
    assert_has(
        &l.warnings,
        L,
        "unknown key \"DPD\" (ignored); did you mean dpd?",
    );
}

/// An empty `occtl-socket-file =` (an unset variable in upstream's test configs) runs the
/// server without a control socket and says so, where a path is required otherwise.
#[test]
fn empty_occtl_socket_file_turns_occtl_off_with_a_warning() {
    let l = ok("use-occtl = true\nocctl-socket-file =\n");
    assert!(!l.config.use_occtl);
    assert!(
        l.warnings
            .iter()
            .any(|w| w.message.contains("occtl-socket-file is empty")),
        "{:?}",
        l.warnings
    );
    let with_path = cfg("use-occtl = true\nocctl-socket-file = /run/x.socket\n");
    assert!(with_path.use_occtl);
    assert_eq!(
        with_path.occtl_socket_file.as_deref(),
        Some(Path::new("/run/x.socket"))
    );
}
