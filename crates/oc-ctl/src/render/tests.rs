//! Renderer tests. Expected text was written from ocserv 1.4's printf
//! formats (unix.c, print.c, time.c, nl.c) and the column layouts were
//! cross-checked against C's printf.

use proptest::prelude::*;
use serde_json::Value;

use super::*;
use crate::model::{state, BanInfo, Event, IrouteInfo, ServerStatus, SessionInfo, UserInfo};
use crate::proto::{Request, Response};

/// 2023-11-14 22:13:20 UTC.
const NOW: u64 = 1_700_000_000;

fn text() -> RenderOptions {
    RenderOptions::text(NOW)
}

fn json() -> RenderOptions {
    RenderOptions::json(NOW)
}

fn parse(s: &str) -> Value {
    match serde_json::from_str::<Value>(s) {
        Ok(v) => v,
        Err(e) => panic!("invalid JSON ({e}):\n{s}"),
    }
}

/// The keys of the JSON object `v`, in order.
fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

/// An [`Output`]'s stdout, stderr and exit status, to compare at once.
fn parts(o: &Output) -> (&str, &str, i32) {
    (o.stdout.as_str(), o.stderr.as_str(), o.exit_code)
}

fn alice() -> UserInfo {
    UserInfo {
        id: 4242,
        username: "alice".into(),
        groupname: String::new(),
        state: state::CONNECTED.into(),
        vhost: "default".into(),
        device: "vpns0".into(),
        mtu: Some(1434),
        remote_ip: "198.51.100.7".into(),
        local_device_ip: "203.0.113.1".into(),
        ipv4: Some("10.10.0.2".into()),
        ptp_ipv4: Some("10.10.0.1".into()),
        ipv6: None,
        ptp_ipv6: None,
        user_agent: "Open AnyConnect VPN Agent v9.12".into(),
        rx_bytes: 123_456,
        tx_bytes: 7_890_123,
        rx_limit_per_sec: 0,
        tx_limit_per_sec: 0,
        dpd: 90,
        keepalive: 32400,
        hostname: "laptop".into(),
        connected_at: NOW - 3725,
        session_started_at: NOW - 200_000,
        full_session: "Ab3dEfGhIjKlMnOpQrStUvWxYz0".into(),
        session: "Ab3dEf".into(),
        tls_ciphersuite: "(TLS1.3)-(ECDHE-SECP256R1)-(RSA-PSS-RSAE-SHA256)-(AES-256-GCM)".into(),
        dtls_cipher: "(DTLS1.2)-(PSK)-(AES-256-GCM)".into(),
        cstp_compression: None,
        dtls_compression: None,
        dns: vec!["192.0.2.53".into(), "192.0.2.54".into()],
        nbns: vec![],
        split_dns: vec!["corp.example".into()],
        routes: vec![],
        default_route: true,
        no_routes: vec!["192.168.0.0/16".into()],
        iroutes: vec![],
        restricted_to_routes: false,
        restricted_to_ports: vec![],
    }
}

fn v6user() -> UserInfo {
    UserInfo {
        id: 7,
        username: String::new(),
        state: state::CONNECTED.into(),
        vhost: "default".into(),
        device: "vpns1".into(),
        remote_ip: "2001:db8::7".into(),
        ipv6: Some("fd00::2".into()),
        ptp_ipv6: Some("fd00::1".into()),
        connected_at: NOW - 42,
        session_started_at: NOW - 42,
        dtls_cipher: String::new(),
        ..UserInfo::default()
    }
}

fn hostile() -> UserInfo {
    UserInfo {
        id: 1,
        username: "ev\"il\\user\n   99 root".into(),
        groupname: "g\u{0}r\u{1b}[2Jp".into(),
        vhost: "v\th".into(),
        user_agent: "Mozilla \"5.0\" \\ \u{7f}\u{85} é ü 中文 \u{fffd}".into(),
        hostname: "Ã©Ã¨".into(),
        dns: vec!["\"quoted\"".into(), "back\\slash".into(), "ctl\u{1}".into()],
        routes: vec!["10.0.0.0/8\n".into()],
        iroutes: vec!["\u{1f}".into()],
        restricted_to_ports: vec!["tcp(443)".into(), "!udp()".into()],
        cstp_compression: Some("lzs\"".into()),
        ..UserInfo::default()
    }
}

// --- helpers ---------------------------------------------------------------

#[test]
fn bytes_to_human_thresholds() {
    assert_eq!(bytes_to_human(0, ""), "0 bytes");
    assert_eq!(bytes_to_human(1000, ""), "1000 bytes");
    assert_eq!(bytes_to_human(1001, ""), "1.0 kB");
    assert_eq!(bytes_to_human(1250, ""), "1.2 kB"); // round half to even, as glibc
    assert_eq!(bytes_to_human(999_950, ""), "1000.0 kB");
    assert_eq!(bytes_to_human(1_000_000, "/s"), "1.0 MB/s");
    assert_eq!(bytes_to_human(7_890_123, ""), "7.9 MB");
    assert_eq!(bytes_to_human(1_000_000_000, ""), "1.0 GB");
    assert_eq!(bytes_to_human(u64::MAX, ""), "18446744073.7 GB");
}

#[test]
fn time_interval7_forms() {
    assert_eq!(time_interval7(100, 100), "    0s");
    assert_eq!(time_interval7(60, 0), "   60s");
    assert_eq!(time_interval7(61, 0), " 1m:01s");
    assert_eq!(time_interval7(3599, 0), "59m:59s");
    assert_eq!(time_interval7(3600, 0), " 1h:00m");
    assert_eq!(time_interval7(47 * 3600 + 59 * 60, 0), "47h:59m");
    assert_eq!(time_interval7(48 * 3600, 0), " 2days");
    assert_eq!(time_interval7(400 * 86400, 0), "400days");
    assert_eq!(time_interval7(0, 1), "   ?   ");
    assert_eq!(time_interval7(u64::MAX, 0).len(), 19);
}

#[test]
fn date_time_utc_and_offset() {
    assert_eq!(format_date_time(0, 0), "1970-01-01 00:00");
    assert_eq!(format_date_time(NOW, 0), "2023-11-14 22:13");
    assert_eq!(format_date_time(951_782_400, 0), "2000-02-29 00:00");
    assert_eq!(format_date_time(NOW, 3600), "2023-11-14 23:13");
    assert_eq!(format_date_time(0, -60), "1969-12-31 23:59");
    assert_eq!(format_date_time(253_402_300_799, 0), "9999-12-31 23:59");
    // Absurd values must not panic.
    let _ = format_date_time(u64::MAX, i32::MAX);
    let _ = format_date_time(0, i32::MIN);
}

#[test]
fn dtls_cipher_short_like_fix_ciphersuite() {
    assert_eq!(
        dtls_cipher_short("(DTLS1.2)-(PSK)-(AES-256-GCM)"),
        "(AES-256-GCM)"
    );
    assert_eq!(
        dtls_cipher_short("(DTLS1.2)-(RSA)-(AES-128-GCM)"),
        "(AES-128-GCM)"
    );
    assert_eq!(
        dtls_cipher_short("(DTLS1.2)-(ECDHE-RSA)-(AES-256-GCM)"),
        "(AES-256-GCM)"
    );
    assert_eq!(
        dtls_cipher_short("(DTLS0.9)-(AES-128-CBC)-(SHA1)"),
        "(AES-128-CBC)-(SHA1)"
    );
    assert_eq!(dtls_cipher_short(""), "(no-dtls)");
    assert_eq!(dtls_cipher_short("(no-dtls)"), "(no-dtls)");
    assert_eq!(dtls_cipher_short("AES-256-GCM-SHA384"), "(no-dtls)");
    // Multi-byte text where the C code would cut mid-character.
    assert_eq!(dtls_cipher_short("(DTLS€€€€€€€€€€€€"), "(no-dtls)");
    assert_eq!(latency_to_human(999), "<1ms");
    assert_eq!(latency_to_human(1500), "1ms");
    assert_eq!(latency_to_human(2_500_000), "2s");
}

// --- show users / user / id -------------------------------------------------

#[test]
fn users_table_matches_ocserv() {
    let out = users_table(&[alice(), v6user()], &text());
    assert_eq!(
        out,
        "      id     user    vhost             ip         vpn-ip device   since    dtls-cipher    status\n\
         \x20   4242    alice  default   198.51.100.7      10.10.0.2  vpns0  1h:02m  (AES-256-GCM) connected\n\
         \x20      7   (none)  default    2001:db8::7        fd00::2  vpns1    42s      (no-dtls) connected\n"
    );
    assert_eq!(users_table(&[], &text()), "");
}

const ALICE_TEXT: &str = "\tID: 4242
\tUsername: alice   Groupname: (none)
\tState: connected
\tvhost: default
\tDevice: vpns0   MTU: 1434
\tRemote IP: 198.51.100.7   Location: unknown
\tLocal Device IP: 203.0.113.1
\tIPv4: 10.10.0.2   P-t-P IPv4: 10.10.0.1
\tUser-Agent: Open AnyConnect VPN Agent v9.12
\tRX: 123456 (123.5 kB)   TX: 7890123 (7.9 MB)
\tAverage bandwidth RX: 33 bytes/s  TX: 2.1 kB/s
\tDPD: 90   KeepAlive: 32400
\tHostname: laptop
\tLast connected at: 2023-11-14 21:11 ( 1h:02m)
\tSession started at: 2023-11-12 14:40 ( 2days)
\tSession: Ab3dEf
\tTLS ciphersuite: (TLS1.3)-(ECDHE-SECP256R1)-(RSA-PSS-RSAE-SHA256)-(AES-256-GCM)
\tDTLS cipher: (DTLS1.2)-(PSK)-(AES-256-GCM)

\tDNS: 192.0.2.53
\t\t192.0.2.54
\tSplit-DNS-Domains: corp.example
\tRoutes: defaultroute
\tNo-routes: 192.168.0.0/16
\tRestricted to routes: False

";

#[test]
fn user_details_match_ocserv() {
    assert_eq!(user_details_text(&[alice()], &text()), ALICE_TEXT);
}

#[test]
fn user_details_optional_parts() {
    let mut u = v6user();
    u.rx_limit_per_sec = 125_000;
    u.tx_limit_per_sec = 0;
    u.cstp_compression = None;
    u.dtls_compression = Some("lzs".into());
    u.routes = vec!["10.0.0.0/8".into(), "172.16.0.0/12".into()];
    u.restricted_to_routes = true;
    u.restricted_to_ports = vec!["tcp(443)".into(), "!icmp()".into()];
    let out = user_details_text(&[u], &text());
    assert_eq!(
        out,
        "\tID: 7
\tUsername: (none)   Groupname: (none)
\tState: connected
\tvhost: default
\tDevice: vpns1
\tRemote IP: 2001:db8::7   Location: unknown
\tIPv6: fd00::2   P-t-P IPv6: fd00::1
\tLimit RX: 125.0 kB/s
\tRX: 0 (0 bytes)   TX: 0 (0 bytes)
\tAverage bandwidth RX: 0 bytes/s  TX: 0 bytes/s
\tDPD: 0   KeepAlive: 0
\tLast connected at: 2023-11-14 22:12 (   42s)
\tSession started at: 2023-11-14 22:12 (   42s)
   DTLS compression: lzs

\tRoutes: 10.0.0.0/8
\t\t172.16.0.0/12
\tRestricted to routes: True
\tRestricted to ports: tcp(443), !icmp()
"
    );
}

#[test]
fn user_details_several_and_none() {
    let out = user_details_text(&[alice(), alice()], &text());
    assert_eq!(out, format!("{ALICE_TEXT}\n{ALICE_TEXT}"));
    assert_eq!(user_details_text(&[], &text()), "user or ID not found\n");
}

#[test]
fn users_json_keys_order_and_types() {
    let out = users_json(&[alice()], &json());
    let v = parse(&out);
    assert_eq!(
        keys(&v[0]),
        [
            "ID",
            "Username",
            "Groupname",
            "State",
            "vhost",
            "Device",
            "MTU",
            "Remote IP",
            "Location",
            "Local Device IP",
            "IPv4",
            "P-t-P IPv4",
            "User-Agent",
            "RX",
            "TX",
            "_RX",
            "_TX",
            "Average RX",
            "Average TX",
            "DPD",
            "KeepAlive",
            "Hostname",
            "Last connected at",
            "_Last connected at",
            "Session started at",
            "_Session started at",
            "raw_connected_at",
            "raw_session_started_at",
            "Full session",
            "Session",
            "TLS ciphersuite",
            "DTLS cipher",
            "DNS",
            "NBNS",
            "Split-DNS-Domains",
            "Routes",
            "No-routes",
            "iRoutes",
            "Restricted to routes",
            "Restricted to ports",
        ]
    );
    assert_eq!(v[0]["ID"], 4242);
    assert_eq!(v[0]["MTU"], "1434");
    assert_eq!(v[0]["RX"], "123456");
    assert_eq!(v[0]["_TX"], "7.9 MB");
    assert_eq!(v[0]["DPD"], "90");
    assert_eq!(v[0]["_Last connected at"], " 1h:02m");
    assert_eq!(v[0]["raw_connected_at"], NOW - 3725);
    assert_eq!(v[0]["raw_session_started_at"], NOW - 200_000);
    assert_eq!(v[0]["Routes"], "defaultroute");
    assert_eq!(v[0]["NBNS"], Value::Array(vec![]));
    assert_eq!(v[0]["Restricted to routes"], "False");
    assert_eq!(v[0]["Location"], "unknown");
    // Layout follows ocserv's printf output.
    assert!(out.starts_with("[\n  {\n    \"ID\":  4242,\n    \"Username\":  \"alice\",\n"));
    assert!(out.contains("\n    \"DNS\":\t[\"192.0.2.53\", \"192.0.2.54\"],\n"));
    assert!(out.ends_with("    \"Restricted to ports\":\t[]\n  }\n]\n"));
}

#[test]
fn users_json_empty_and_missing_optionals() {
    assert_eq!(users_json(&[], &json()), "[\n]\n");
    assert_eq!(parse(&users_json(&[], &json())), Value::Array(vec![]));
    let v = parse(&users_json(&[UserInfo::default(), v6user()], &json()));
    let first = v[0].as_object().unwrap();
    for absent in [
        "MTU",
        "IPv4",
        "IPv6",
        "Hostname",
        "DTLS cipher",
        "CSTP compression",
        "vhost",
    ] {
        assert!(!first.contains_key(absent), "{absent} present");
    }
    assert_eq!(first["Username"], "(none)");
    assert_eq!(first["State"], "unknown");
    assert_eq!(first["Routes"], Value::Array(vec![]));
    assert_eq!(v[1]["IPv6"], "fd00::2");
    assert_eq!(v[1]["P-t-P IPv6"], "fd00::1");
}

#[test]
fn hostile_strings_stay_valid_json_and_safe_text() {
    let u = hostile();
    let out = users_json(std::slice::from_ref(&u), &json());
    let v = parse(&out);
    assert_eq!(v[0]["Username"], u.username.as_str());
    assert_eq!(v[0]["Groupname"], u.groupname.as_str());
    assert_eq!(v[0]["User-Agent"], u.user_agent.as_str());
    assert_eq!(v[0]["Hostname"], "Ã©Ã¨");
    assert_eq!(v[0]["DNS"][0], "\"quoted\"");
    assert_eq!(v[0]["DNS"][1], "back\\slash");
    assert_eq!(v[0]["DNS"][2], "ctl\u{1}");
    assert_eq!(v[0]["Routes"][0], "10.0.0.0/8\n");
    assert_eq!(v[0]["Restricted to ports"][1], "!udp()");
    assert!(out.contains(r#""ev\"il\\user\u000a   99 root""#));

    // Text: no raw control characters, so no forged rows or escapes.
    let t = users_table(std::slice::from_ref(&u), &text())
        + &user_details_text(std::slice::from_ref(&u), &text());
    assert!(
        !t.chars().any(|c| c.is_control() && c != '\n' && c != '\t'),
        "{t:?}"
    );
    assert!(t.contains("ev\"il\\user\\x0a   99 root"));
    assert!(t.contains("v\\x09h"));
    assert!(t.contains("\\u{85}"));
    assert_eq!(users_table(&[u], &text()).lines().count(), 2);
}

// --- show status ------------------------------------------------------------

fn status() -> ServerStatus {
    ServerStatus {
        server_pid: 812,
        sec_mod_pid: 812,
        sec_mod_instances: 1,
        up_since: NOW - 3 * 86400,
        active_sessions: 2,
        total_sessions: 40,
        total_auth_failures: 3,
        ips_in_ban_list: 1,
        secmod_client_entries: 5,
        tls_db_entries: 0,
        latency_median_us: None,
        latency_stdev_us: None,
        last_stats_reset: NOW - 600,
        sessions_handled: 12,
        timed_out_sessions: 1,
        timed_out_idle_sessions: 2,
        closed_due_to_error_sessions: 0,
        auth_failures: 1,
        avg_auth_time: 2,
        max_auth_time: 75,
        avg_session_time: 1800,
        max_session_time: 7260,
        min_mtu: Some(1280),
        max_mtu: Some(1434),
        rx_bytes: 5_000_000,
        tx_bytes: 42_000,
    }
}

#[test]
fn status_text_matches_ocserv() {
    assert_eq!(
        status_text(&status(), &text()),
        "Note: the printed statistics are not real-time; session time
as well as RX and TX data are updated on user disconnect

General info:
\tStatus: online
\tServer PID: 812
\tSec-mod PID: 812
\tSec-mod instance count: 1
\tUp since: 2023-11-11 22:13 ( 3days)
\tActive sessions: 2
\tTotal sessions: 40
\tTotal authentication failures: 3
\tIPs in ban list: 1

Current stats period:
\tLast stats reset: 2023-11-14 22:03 (10m:00s)
\tSessions handled: 12
\tTimed out sessions: 1
\tTimed out (idle) sessions: 2
\tClosed due to error sessions: 0
\tAuthentication failures: 1
\tAverage auth time:     2s
\tMax auth time:  1m:15s
\tAverage session time: 30m:00s
\tMax session time:  2h:01m
\tMin MTU: 1280
\tMax MTU: 1434
\tRX: 5.0 MB
\tTX: 42.0 kB
"
    );
}

#[test]
fn status_text_debug_latency_and_no_reset() {
    let mut s = status();
    s.last_stats_reset = 0;
    s.min_mtu = None;
    s.max_mtu = Some(0);
    s.latency_median_us = Some(1500);
    s.latency_stdev_us = Some(200);
    let opts = RenderOptions {
        debug: true,
        ..text()
    };
    let out = status_text(&s, &opts);
    assert!(out.contains(
        "\tIPs in ban list: 1\n\tSec-mod client entries: 5\n\tTLS DB entries: 0\n\tMedian latency: 1ms\n\tSTDEV latency: <1ms\n\nCurrent stats period:\n\tSessions handled: 12\n"
    ));
    assert!(!out.contains("MTU"));
}

#[test]
fn status_json_keys_and_numbers() {
    let out = status_json(&status(), &json());
    assert!(out.starts_with("  {\n    \"Status\":  \"online\",\n    \"Server PID\":  812,\n"));
    assert!(out.ends_with("    \"raw_tx\":  42000\n  }\n"));
    let v = parse(&out);
    assert_eq!(
        keys(&v),
        [
            "Status",
            "Server PID",
            "Sec-mod PID",
            "Sec-mod instance count",
            "Up since",
            "_Up since",
            "raw_up_since",
            "uptime",
            "Active sessions",
            "Total sessions",
            "Total authentication failures",
            "IPs in ban list",
            "Last stats reset",
            "_Last stats reset",
            "raw_last_stats_reset",
            "Sessions handled",
            "Timed out sessions",
            "Timed out (idle) sessions",
            "Closed due to error sessions",
            "Authentication failures",
            "Average auth time",
            "raw_avg_auth_time",
            "Max auth time",
            "raw_max_auth_time",
            "Average session time",
            "raw_avg_session_time",
            "Max session time",
            "raw_max_session_time",
            "Min MTU",
            "Max MTU",
            "RX",
            "raw_rx",
            "TX",
            "raw_tx",
        ]
    );
    assert_eq!(v["uptime"], 3 * 86400);
    assert_eq!(v["raw_up_since"], NOW - 3 * 86400);
    assert_eq!(v["_Up since"], " 3days");
    assert_eq!(v["raw_max_session_time"], 7260);
    assert_eq!(v["RX"], "5.0 MB");
    // Debug and latency keys appear when asked for / measured.
    let mut s = status();
    s.latency_median_us = Some(10);
    let opts = RenderOptions {
        debug: true,
        ..json()
    };
    let v = parse(&status_json(&s, &opts));
    assert_eq!(v["Sec-mod client entries"], 5);
    assert_eq!(v["raw_median_latency"], 10);
    assert_eq!(v["STDEV latency"], "<1ms");
    // An all-default status (server just started, clock at 0) is valid too.
    let v = parse(&status_json(
        &ServerStatus::default(),
        &RenderOptions::json(0),
    ));
    assert_eq!(v["uptime"], 0);
}

#[test]
fn status_offline_forms() {
    assert_eq!(
        status_offline(Format::Text),
        "Note: the printed statistics are not real-time; session time\n\
         as well as RX and TX data are updated on user disconnect\n\tStatus: offline\n"
    );
    let s = status_offline(Format::Json);
    assert_eq!(s, "  {\n    \"Status\":  \"offline\"\n  }\n");
    assert_eq!(parse(&s)["Status"], "offline");
}

// --- sessions ---------------------------------------------------------------

fn sessions() -> Vec<SessionInfo> {
    vec![
        SessionInfo {
            session: "Ab3dEf".into(),
            full_session: "Ab3dEfGhIjKlMnOpQrStUvWxYz0".into(),
            username: "alice".into(),
            groupname: "staff".into(),
            vhost: "default".into(),
            created: NOW - 300,
            expires: NOW + 3600,
            state: state::AUTHENTICATED.into(),
            remote_ip: "198.51.100.7".into(),
            user_agent: "Open AnyConnect VPN Agent v9.12".into(),
            in_use: 1,
            session_is_open: true,
            tls_auth_ok: false,
        },
        SessionInfo {
            session: "zz9Qw1".into(),
            full_session: "zz9Qw1aaaaaaaaaaaaaaaaaaaaa".into(),
            vhost: "default".into(),
            state: state::PRE_AUTH.into(),
            remote_ip: "192.0.2.9".into(),
            ..SessionInfo::default()
        },
    ]
}

#[test]
fn sessions_table_matches_ocserv() {
    let all = sessions_table(&sessions(), false, &text());
    assert_eq!(
        all,
        "session     user    vhost             ip               user agent  created   status\n\
         Ab3dEf    alice  default   198.51.100.7 Open AnyConnect VPN Agen   5m:00s authenticated\n\
         zz9Qw1   (none)  default      192.0.2.9           pre-auth\n"
    );
    let valid = sessions_table(&sessions(), true, &text());
    assert_eq!(valid.lines().count(), 2);
    assert!(!valid.contains("zz9Qw1"));
    // Header even when the first session is filtered out.
    let mut rev = sessions();
    rev.reverse();
    assert!(sessions_table(&rev, true, &text()).starts_with("session "));
    assert_eq!(sessions_table(&[], false, &text()), "");
}

#[test]
fn session_details_match_ocserv() {
    let out = session_details_text(&sessions(), Some("Ab3"), &text());
    assert_eq!(
        out,
        "\tSession: Ab3dEf
\tFull session ID: Ab3dEfGhIjKlMnOpQrStUvWxYz0
\tCreated: 2023-11-14 22:08   Expires: 2023-11-14 23:13
\tState: authenticated
\tUsername: alice   Groupname: staff
\tvhost: default   User-Agent: Open AnyConnect VPN Agent v9.12
\tRemote IP: 198.51.100.7   Location: unknown
\tIn use: True   Activated: True
\tCertificate auth: False
"
    );
    let second = session_details_text(&sessions(), Some("zz"), &text());
    assert!(second.starts_with(
        "\tSession: zz9Qw1\n\tFull session ID: zz9Qw1aaaaaaaaaaaaaaaaaaaaa\n\tState: pre-auth\n"
    ));
    assert_eq!(
        session_details_text(&sessions(), Some("Ab3dEfG"), &text()),
        "Session ID not found or expired\n"
    );
    let both = session_details_text(&sessions(), None, &text());
    assert!(both.contains("Certificate auth: False\n\n\tSession: zz9Qw1"));
}

#[test]
fn sessions_json_keys_and_filters() {
    let out = sessions_json(&sessions(), false, None, &json());
    let v = parse(&out);
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(
        keys(&v[0]),
        [
            "Session",
            "Full session",
            "Created",
            "Expires",
            "State",
            "Username",
            "Groupname",
            "vhost",
            "User-Agent",
            "Remote IP",
            "Location",
            "session_is_open",
            "tls_auth_ok",
            "in_use",
        ]
    );
    assert_eq!(v[0]["in_use"], 1);
    assert_eq!(v[0]["session_is_open"], 1);
    assert_eq!(v[1]["Username"], "(none)");
    assert!(v[1].get("Created").is_none());
    let valid = parse(&sessions_json(&sessions(), true, None, &json()));
    assert_eq!(valid.as_array().unwrap().len(), 1);
    let one = parse(&sessions_json(&sessions(), false, Some("zz9"), &json()));
    assert_eq!(one[0]["Session"], "zz9Qw1");
    assert_eq!(sessions_json(&[], false, None, &json()), "[\n]\n");
}

// --- bans -------------------------------------------------------------------

fn bans() -> Vec<BanInfo> {
    vec![
        BanInfo {
            ip: "192.0.2.66".into(),
            score: 80,
            banned_until: Some(NOW + 1200),
        },
        BanInfo {
            ip: "2001:db8::66".into(),
            score: 10,
            banned_until: None,
        },
        BanInfo {
            ip: "192.0.2.67".into(),
            score: 90,
            banned_until: Some(NOW - 1),
        },
    ]
}

#[test]
fn bans_text_matches_ocserv() {
    assert_eq!(
        bans_text(&bans(), &text()),
        "             IP      score                        expires\n\
         \x20    192.0.2.66         80               2023-11-14 22:33 (20m:00s)\n"
    );
    assert_eq!(bans_text(&bans()[1..], &text()), "");
    assert_eq!(
        ban_points_text(&bans()),
        "             IP      score\n\
         \x20    192.0.2.66         80\n\
         \x20  2001:db8::66         10\n\
         \x20    192.0.2.67         90\n"
    );
    assert_eq!(ban_points_text(&[]), "");
}

#[test]
fn bans_json_forms() {
    let v = parse(&bans_json(&bans(), &json()));
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(keys(&v[0]), ["IP", "Since", "_Since", "Score"]);
    assert_eq!(v[0]["Since"], "2023-11-14 22:33");
    assert_eq!(v[0]["_Since"], "20m:00s");
    assert_eq!(v[0]["Score"], 80);
    let p = parse(&ban_points_json(&bans()));
    assert_eq!(p.as_array().unwrap().len(), 3);
    assert_eq!(p[1]["IP"], "2001:db8::66");
    assert_eq!(p[1]["Score"], 10);
    assert_eq!(bans_json(&[], &json()), "[\n]\n");
    assert_eq!(ban_points_json(&[]), "[\n]\n");
    let weird = [BanInfo {
        ip: "\"\\\n".into(),
        score: u32::MAX,
        banned_until: Some(u64::MAX),
    }];
    assert_eq!(parse(&bans_json(&weird, &json()))[0]["IP"], "\"\\\n");
    assert_eq!(
        parse(&ban_points_json(&weird))[0]["Score"],
        u64::from(u32::MAX)
    );
}

// --- iroutes ----------------------------------------------------------------

#[test]
fn iroutes_forms() {
    let mut u = alice();
    u.iroutes = vec!["192.168.77.0/24".into(), "192.168.78.0/24".into()];
    let entries = [IrouteInfo::from_user(&u), IrouteInfo::from_user(&v6user())];
    assert_eq!(
        iroutes_text(&entries),
        "    id     user    vhost device           vpn-ip                       iroute\n\
         \x20 4242    alice  default  vpns0        10.10.0.2              192.168.77.0/24\n\
         \x20 4242    alice  default  vpns0        10.10.0.2              192.168.78.0/24\n"
    );
    assert_eq!(iroutes_text(&[]), "");
    let out = iroutes_json(&entries);
    let v = parse(&out);
    assert_eq!(
        keys(&v[0]),
        ["ID", "Username", "vhost", "Device", "IP", "iRoutes"]
    );
    assert_eq!(v[0]["iRoutes"][1], "192.168.78.0/24");
    assert_eq!(v[1]["Username"], "(none)");
    assert_eq!(v[1]["iRoutes"], Value::Array(vec![]));
    assert_eq!(iroutes_json(&[]), "[\n]\n");
}

// --- events -----------------------------------------------------------------

#[test]
fn event_lines_match_ocserv() {
    let c = Event::Connect { user: alice() };
    assert_eq!(
        event_text(&c, &text()),
        "default: connected user 'alice' (4242) from 198.51.100.7 with IP 10.10.0.2\n"
    );
    let d = Event::Disconnect {
        user: alice(),
        reason: "user disconnected".into(),
    };
    assert_eq!(
        event_text(&d, &text()),
        "default: disconnect user 'alice' (4242) from 198.51.100.7 with IP 10.10.0.2 (reason: user disconnected, time:  1h:02m)\n"
    );
    let d = Event::Disconnect {
        user: v6user(),
        reason: String::new(),
    };
    assert!(event_text(&d, &text()).ends_with("with IP fd00::2 (reason: unknown, time:    42s)\n"));
}

#[test]
fn event_json_is_one_user_array() {
    let d = Event::Disconnect {
        user: hostile(),
        reason: "idle \"timeout\"".into(),
    };
    let v = parse(&event_json(&d, &json()));
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["ID"], 1);
    assert_eq!(v[0]["Event"], "disconnect");
    assert_eq!(v[0]["Disconnect reason"], "idle \"timeout\"");
    let c = parse(&event_json(&Event::Connect { user: alice() }, &json()));
    assert_eq!(c[0]["Event"], "connect");
    assert!(c[0].get("Disconnect reason").is_none());
}

// --- dispatch ---------------------------------------------------------------

#[test]
fn render_dispatch_and_exit_codes() {
    let out = render(
        &Request::ShowUsers,
        &Response::Users(vec![alice()]),
        &text(),
    );
    assert_eq!(out.exit_code, 0);
    assert!(out.stdout.starts_with("      id     user"));

    let out = render(
        &Request::ShowUser("bob".into()),
        &Response::Users(vec![]),
        &text(),
    );
    assert_eq!(
        (out.stdout.as_str(), out.exit_code),
        ("user or ID not found\n", 2)
    );
    let out = render(&Request::ShowId(9), &Response::Users(vec![]), &json());
    assert_eq!((out.stdout.as_str(), out.exit_code), ("[\n]\n", 2));
    let out = render(
        &Request::ShowId(4242),
        &Response::Users(vec![alice()]),
        &text(),
    );
    assert_eq!((out.stdout.as_str(), out.exit_code), (ALICE_TEXT, 0));

    let out = render(&Request::ShowStatus, &Response::Status(status()), &json());
    assert_eq!(parse(&out.stdout)["Server PID"], 812);
    let out = render(
        &Request::ShowStatus,
        &Response::Error {
            message: "busy".into(),
        },
        &json(),
    );
    assert_eq!(parse(&out.stdout)["Status"], "offline");
    assert_eq!((out.stderr.as_str(), out.exit_code), ("busy\n", 1));

    let out = render(
        &Request::ShowSessions { valid_only: true },
        &Response::Sessions(sessions()),
        &text(),
    );
    assert_eq!(out.stdout.lines().count(), 2);
    let out = render(
        &Request::ShowSession("nope".into()),
        &Response::Sessions(sessions()),
        &text(),
    );
    assert_eq!(out.stdout, "Session ID not found or expired\n");
    assert_eq!(out.exit_code, 0);

    let out = render(&Request::ShowIpBans, &Response::Bans(bans()), &json());
    assert_eq!(parse(&out.stdout).as_array().unwrap().len(), 1);
    let out = render(&Request::ShowIpBanPoints, &Response::Bans(bans()), &json());
    assert_eq!(parse(&out.stdout).as_array().unwrap().len(), 3);
    let out = render(&Request::ShowIroutes, &Response::Iroutes(vec![]), &json());
    assert_eq!(out.stdout, "[\n]\n");

    // Wrong response kind.
    let out = render(&Request::ShowUsers, &Response::Bans(vec![]), &text());
    assert_eq!(out.exit_code, 1);
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        "unexpected 'bans' response from the server to 'show users'\n"
    );

    // Server error on a show command.
    let out = render(
        &Request::ShowIroutes,
        &Response::Error {
            message: "internal".into(),
        },
        &text(),
    );
    assert_eq!(parts(&out), ("", "internal\n", 1));
}

#[test]
fn render_events_stream() {
    let out = render(
        &Request::ShowEvents,
        &Response::Users(vec![alice()]),
        &text(),
    );
    assert!(out
        .stdout
        .ends_with(" connected\n\nPress 'q' or CTRL+C to quit\n\n"));
    let out = render(&Request::ShowEvents, &Response::Users(vec![]), &json());
    assert_eq!(out.stdout, "[\n]\n");
    assert_eq!(out.stderr, "Press 'q' or CTRL+C to quit\n\n");
    let out = render(
        &Request::ShowEvents,
        &Response::Event(Event::Connect { user: v6user() }),
        &text(),
    );
    assert_eq!(
        out.stdout,
        "default: connected user '' (7) from 2001:db8::7 with IP fd00::2\n"
    );
}

#[test]
fn render_actions_like_ocserv() {
    let done = Response::Done {
        message: String::new(),
    };
    let err = Response::Error {
        message: "no such user".into(),
    };
    let cases: [(Request, &str, &str); 8] = [
        (
            Request::DisconnectUser("alice".into()),
            "user 'alice' was disconnected\n",
            "could not disconnect user 'alice'\n",
        ),
        (
            Request::DisconnectId(12),
            "connection ID '12' was disconnected\n",
            "could not disconnect ID '12'\n",
        ),
        (
            Request::TerminateUser("alice".into()),
            "user 'alice' was terminated (session invalidated)\n",
            "could not terminate user 'alice'\n",
        ),
        (
            Request::TerminateId(12),
            "connection ID '12' was terminated (session invalidated)\n",
            "could not terminate ID '12'\n",
        ),
        (
            Request::TerminateSession("Ab3dEfGhIj".into()),
            "session 'Ab3dEf' was terminated\n",
            "could not terminate session 'Ab3dEf'\n",
        ),
        (
            Request::UnbanIp("192.0.2.66".into()),
            "IP '192.0.2.66' was unbanned\n",
            "could not unban IP '192.0.2.66'\n",
        ),
        (
            Request::Reload,
            "Server scheduled to reload\n",
            "Error scheduling reload\n",
        ),
        (
            Request::StopNow,
            "Server scheduled to stop\n",
            "Error scheduling server stop\n",
        ),
    ];
    for (req, ok, fail) in cases {
        for opts in [text(), json()] {
            assert_eq!(parts(&render(&req, &done, &opts)), (ok, "", 0));
            assert_eq!(
                parts(&render(&req, &err, &opts)),
                (fail, "no such user\n", 1)
            );
        }
        let o = render(&req, &Response::Users(vec![]), &text());
        assert_eq!(o.exit_code, 1);
    }
    assert!(action_message(&Request::ShowUsers, true).is_none());
}

#[test]
fn render_unreachable_like_ocserv() {
    let o = render_unreachable(&Request::ShowStatus, &json());
    assert_eq!(parse(&o.stdout)["Status"], "offline");
    assert_eq!(o.exit_code, 1);
    let o = render_unreachable(&Request::Reload, &text());
    assert_eq!(o.stdout, "Error scheduling reload\n");
    let o = render_unreachable(&Request::ShowUsers, &text());
    assert_eq!(
        (o.stdout.as_str(), o.stderr.as_str()),
        ("", ERR_SERVER_UNREACHABLE)
    );
}

// --- property tests ---------------------------------------------------------

fn any_string() -> impl Strategy<Value = String> {
    prop_oneof![".{0,12}", "[\\x00-\\x1f\"\\\\]{0,6}", any::<String>(),]
}

prop_compose! {
    fn any_user()(
        id in any::<u64>(),
        strs in proptest::collection::vec(any_string(), 12),
        opt in proptest::collection::vec(proptest::option::of(any_string()), 6),
        nums in proptest::collection::vec(any::<u64>(), 6),
        lists in proptest::collection::vec(proptest::collection::vec(any_string(), 0..3), 7),
        mtu in proptest::option::of(any::<u32>()),
        flags in any::<(bool, bool)>(),
    ) -> UserInfo {
        let s = |i: usize| strs.get(i).cloned().unwrap_or_default();
        let o = |i: usize| opt.get(i).cloned().flatten();
        let n = |i: usize| nums.get(i).copied().unwrap_or_default();
        let l = |i: usize| lists.get(i).cloned().unwrap_or_default();
        UserInfo {
            id,
            username: s(0), groupname: s(1), state: s(2), vhost: s(3), device: s(4),
            mtu,
            remote_ip: s(5), local_device_ip: s(6),
            ipv4: o(0), ptp_ipv4: o(1), ipv6: o(2), ptp_ipv6: o(3),
            user_agent: s(7),
            rx_bytes: n(0), tx_bytes: n(1), rx_limit_per_sec: n(2), tx_limit_per_sec: n(3),
            dpd: 0, keepalive: u32::MAX,
            hostname: s(8),
            connected_at: n(4), session_started_at: n(5),
            full_session: s(9), session: s(10), tls_ciphersuite: s(11),
            dtls_cipher: s(0),
            cstp_compression: o(4), dtls_compression: o(5),
            dns: l(0), nbns: l(1), split_dns: l(2), routes: l(3),
            default_route: flags.0,
            no_routes: l(4), iroutes: l(5),
            restricted_to_routes: flags.1,
            restricted_to_ports: l(6),
        }
    }
}

proptest! {
    #[test]
    fn any_user_renders_valid_json(users in proptest::collection::vec(any_user(), 0..3), now in any::<u64>(), off in any::<i32>()) {
        let opts = RenderOptions { format: Format::Json, now_unix: now, debug: true, utc_offset_secs: off };
        let v = parse(&users_json(&users, &opts));
        prop_assert_eq!(v.as_array().map(Vec::len), Some(users.len()));
        for (u, j) in users.iter().zip(v.as_array().into_iter().flatten()) {
            prop_assert_eq!(&j["ID"], &Value::from(u.id));
            if !u.user_agent.is_empty() {
                prop_assert_eq!(&j["User-Agent"], &Value::from(u.user_agent.clone()));
            }
        }
        for u in &users {
            let _ = parse(&event_json(&Event::Disconnect { user: u.clone(), reason: u.username.clone() }, &opts));
            let it = [IrouteInfo::from_user(u)];
            let _ = parse(&iroutes_json(&it));
            // Text renderers never emit raw control characters from data.
            let t = users_table(std::slice::from_ref(u), &opts)
                + &user_details_text(std::slice::from_ref(u), &opts)
                + &iroutes_text(&it)
                + &event_text(&Event::Connect { user: u.clone() }, &opts);
            prop_assert!(!t.chars().any(|c| c.is_control() && c != '\n' && c != '\t'));
        }
    }

    #[test]
    fn any_status_and_sessions_render_valid_json(
        nums in proptest::collection::vec(any::<u64>(), 20),
        strs in proptest::collection::vec(any_string(), 8),
        now in any::<u64>(),
        q in any_string(),
    ) {
        let n = |i: usize| nums.get(i).copied().unwrap_or_default();
        let s = |i: usize| strs.get(i).cloned().unwrap_or_default();
        let st = ServerStatus {
            up_since: n(0), active_sessions: n(1), last_stats_reset: n(2),
            avg_auth_time: n(3), max_auth_time: n(4), avg_session_time: n(5),
            max_session_time: n(6), rx_bytes: n(7), tx_bytes: n(8),
            latency_median_us: Some(n(9)), latency_stdev_us: None,
            min_mtu: Some(7), max_mtu: None,
            ..ServerStatus::default()
        };
        let opts = RenderOptions { format: Format::Json, now_unix: now, debug: true, utc_offset_secs: 0 };
        let _ = parse(&status_json(&st, &opts));
        let _ = status_text(&st, &opts);
        let sess = vec![SessionInfo {
            session: s(0), full_session: s(1), username: s(2), groupname: s(3), vhost: s(4),
            state: s(5), remote_ip: s(6), user_agent: s(7),
            created: n(10), expires: n(11), in_use: u32::MAX, session_is_open: true, tls_auth_ok: true,
        }];
        let _ = parse(&sessions_json(&sess, false, Some(&q), &opts));
        let _ = parse(&sessions_json(&sess, true, None, &opts));
        let _ = sessions_table(&sess, false, &opts);
        let _ = session_details_text(&sess, Some(&q), &opts);
        let bans = vec![BanInfo { ip: s(0), score: 3, banned_until: Some(n(12)) }];
        let _ = parse(&bans_json(&bans, &opts));
        let _ = parse(&ban_points_json(&bans));
        let _ = bans_text(&bans, &opts);
    }
}
