//! `--protocol=array` against our Array Networks test gateway (`src/bin/array_gateway/`):
//! Debian's openconnect 9.01 proves each gateway feature — the login form and its cookie,
//! the tunnel request's exchanges, raw IP over DTLS 1.0 (ping and iperf3 both ways) and over
//! TLS (UDP not allowed, refused, or blocked), reconnects by cookie, the logout — then our
//! client passes the same, and what 9.01 does not: an expired cookie ends with exit 2 (9.01
//! says exit 1), and DTLS lost on the way falls back to TLS with the DTLS-off packet.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ferroconnect_interop::gateway_lab::{GatewayLab, Vendor, ARRAY_METHOD};
use ferroconnect_interop::output_text;
use std::time::Duration;

const SECS: fn(u64) -> Duration = Duration::from_secs;
const LOGGED_OUT: &str = "logout: session forgotten";

fn start(test: &str, extra: &[&str], real_client: bool) -> GatewayLab {
    let mut args = vec!["--method", ARRAY_METHOD, "--dns-suffix", "corp.example"];
    args.extend_from_slice(extra);
    GatewayLab::start(test, Vendor::Array, &args, real_client)
}

/// DTLS carries the tunnel: the client's handshake is done, the gateway handed the
/// association to the tunnel, 20 pings come back as UDP datagrams.
fn assert_dtls_tunnel_up(array: &GatewayLab) {
    let env = array.assert_tunnel_up();
    assert_eq!(
        env.get("CISCO_DEF_DOMAIN").map(String::as_str),
        Some("corp.example"),
        "{env:?}"
    );
    // 9.01 says "DTLS session established" only when verbose.
    array
        .lab
        .wait_for_log("client.log", "Established DTLS connection", SECS(15));
    let gateway = array.gateway_log();
    for line in ["DTLS request: port 443 granted", "DTLS carries the tunnel"] {
        assert!(gateway.contains(line), "no {line:?}:\n{gateway}");
    }
    array.lab.assert_pings_over_udp(20);
}

fn tunnels_over_dtls(test: &str, real_client: bool) {
    let mut array = start(test, &[], real_client);
    let pid = array.spawn_client(&[]);
    assert_dtls_tunnel_up(&array);
    for direction in ["", "-R"] {
        array.assert_iperf_moves_a_megabyte_over_udp(direction);
    }
    let gateway = array.disconnect(pid, LOGGED_OUT);
    assert!(
        gateway.contains("tunnel request: appid Some(\"SSPVPN\")"),
        "{gateway}"
    );
}

#[test]
fn debian_openconnect_tunnels_over_dtls() {
    tunnels_over_dtls("array-dtls", true);
}

#[test]
fn our_client_tunnels_over_dtls() {
    tunnels_over_dtls("array-ours-dtls", false);
}

/// UDP not allowed, the DTLS request refused, or UDP blocked: TLS carries the tunnel.
fn tunnels_over_tls(test: &str, how: &str, real_client: bool) {
    let extra: &[&str] = match how {
        "no-dtls" => &["--no-dtls"],
        "refuse" => &["--dtls-refuse"],
        _ => &[],
    };
    let mut array = start(test, extra, real_client);
    if how == "blocked" {
        array.lab.block_udp();
    }
    let pid = array.spawn_client(&[]);
    array.assert_tunnel_up();
    for direction in ["", "-R"] {
        array.assert_iperf_moves_a_megabyte(direction);
    }
    let gateway = array.gateway_log();
    assert!(!gateway.contains("DTLS carries the tunnel"), "{gateway}");
    // Each case for its own reason.
    let (granted, refused) = (
        gateway.contains("port 443 granted"),
        gateway.contains("DTLS request refused"),
    );
    match how {
        "no-dtls" => assert!(!granted && !refused, "no DTLS request at all:\n{gateway}"),
        "refuse" => assert!(refused && !granted, "{gateway}"),
        _ => assert!(granted, "granted, but the handshake never came:\n{gateway}"),
    }
    array.disconnect(pid, LOGGED_OUT);
}

#[test]
fn without_dtls_debian_openconnect_tunnels_over_tls() {
    tunnels_over_tls("array-no-dtls", "no-dtls", true);
}

#[test]
fn without_dtls_our_client_tunnels_over_tls() {
    tunnels_over_tls("array-ours-no-dtls", "no-dtls", false);
}

#[test]
fn debian_openconnect_tunnels_over_tls_when_dtls_is_refused() {
    tunnels_over_tls("array-refuse", "refuse", true);
}

#[test]
fn our_client_tunnels_over_tls_when_dtls_is_refused() {
    tunnels_over_tls("array-ours-refuse", "refuse", false);
}

#[test]
fn with_udp_blocked_debian_openconnect_tunnels_over_tls() {
    tunnels_over_tls("array-blocked", "blocked", true);
}

#[test]
fn with_udp_blocked_our_client_tunnels_over_tls() {
    tunnels_over_tls("array-ours-blocked", "blocked", false);
}

/// `--authenticate`, then the cookie on stdin; SIGUSR2 reconnects with it (the same
/// address, a second tunnel request, no second login).
fn reconnects_with_the_cookie(test: &str, real_client: bool) {
    let mut array = start(test, &["--no-dtls"], real_client);
    let cookie = array.authenticate();
    assert!(cookie.starts_with("ANsession"), "{cookie}");
    let pid = array.spawn_with_cookie(&cookie);
    array.assert_tunnel_up();
    array.assert_reconnects(pid, "tunnel request: appid");
    let gateway = array.gateway_log();
    assert_eq!(gateway.matches("session started").count(), 1, "{gateway}");
    array.lab.signal_client(pid, "INT");
    assert_eq!(array.lab.wait_client(SECS(10)), Some(0), "{}", array.logs());
}

#[test]
fn debian_openconnect_reconnects_with_the_cookie() {
    reconnects_with_the_cookie("array-cookie", true);
}

#[test]
fn our_client_reconnects_with_the_cookie() {
    reconnects_with_the_cookie("array-ours-cookie", false);
}

/// A cookie the gateway does not know: the tunnel request is sent to the cookie test page;
/// ours exits 2 (as upstream does since 9.10), 9.01 exits 1.
fn refused_cookie(test: &str, real_client: bool) -> i32 {
    let array = start(test, &[], real_client);
    let url = format!("https://{}/", array.lab.server_ip);
    let args = [
        "--protocol=array",
        "--servercert",
        &array.pin,
        "-C",
        "ANsessionX=0123",
        &url,
    ];
    let out = array.lab.run_client(&args, "", SECS(20));
    assert!(
        array
            .gateway_log()
            .contains("unknown cookie; sent to the cookie test"),
        "{}",
        array.logs()
    );
    out.status.code().unwrap_or(-1)
}

#[test]
fn debian_openconnect_stops_when_the_cookie_is_refused() {
    assert_eq!(refused_cookie("array-bad-cookie", true), 1);
}

#[test]
fn our_client_exits_2_when_the_cookie_is_refused() {
    assert_eq!(refused_cookie("array-ours-bad-cookie", false), 2);
}

/// A wrong password: no cookie, the client says so and exits 1.
#[test]
fn our_client_gives_up_without_a_cookie() {
    let array = start("array-ours-wrong", &[], false);
    let out = array.run_client(&[], "wrong\n");
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("No ANsession cookie found"), "{text}");
    array.assert_script_did_not_run();
}

/// UDP dropped on the way once DTLS is up: DTLS's DPD gives it up, the gateway gets the
/// DTLS-off packet on TLS, which carries the pings.
#[test]
fn our_client_moves_to_tls_when_udp_drops() {
    let mut array = start("array-ours-udp-drop", &["--keepalive", "2"], false);
    let pid = array.spawn_client(&[]);
    assert_dtls_tunnel_up(&array);
    array.lab.black_hole_large_udp(0);
    array
        .lab
        .wait_for_log("gateway.log", "the client turned DTLS off", SECS(15));
    let client = array.lab.log("client.log");
    assert!(
        client.contains("DTLS Dead Peer Detection"),
        "{}",
        array.logs()
    );
    assert!(array.lab.ping_behind(SECS(10)), "{}", array.logs());
    array.assert_iperf_moves_a_megabyte("-R");
    array.disconnect(pid, LOGGED_OUT);
}
