//! `--protocol=pulse` against our Pulse Connect Secure test gateway
//! (`src/bin/pulse_gateway/`): Debian's openconnect 9.01 proves each gateway feature — the
//! IF-T/TLS login with realms, a banner and token codes, the tunnel over ESP (ping and
//! iperf3 both ways) and over TLS (no ESP, UDP blocked, probes refused), rekeys, reconnects
//! by cookie, a refused cookie (exit 2), the session's end by a fatal error — then our
//! client passes the same, and what 9.01 cannot: the newer Juniper/5 password, records split
//! across TLS records, ESP dropped on the way (`ncmo=0` back to TLS), the session
//! information acknowledged. (Upstream's own `pulse-ping`, which CI cannot run, goes
//! through ../shared/upstream's harness; the closing note gives the result.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ferroconnect_interop::gateway_lab::{GatewayLab, Vendor, PASSWORD};
use ferroconnect_interop::output_text;
use std::time::Duration;

const SECS: fn(u64) -> Duration = Duration::from_secs;
const CODE: &str = "135790";
/// What the gateway logs when a client says goodbye on SIGINT.
const GOODBYE: &str = "the client said goodbye";

fn start(test: &str, extra: &[&str], real_client: bool) -> GatewayLab {
    GatewayLab::start(test, Vendor::Pulse, extra, real_client)
}

/// The tunnel is up over ESP: the client says so, the gateway answered its probe and was
/// told `ncmo=1`; 20 pings come back as UDP datagrams.
fn assert_esp_tunnel_up(pulse: &GatewayLab) {
    pulse.assert_tunnel_up();
    let client = pulse.lab.wait_for_log(
        "client.log",
        "ESP session established with server",
        SECS(10),
    );
    assert!(client.contains("Configured as"), "{}", pulse.logs());
    let gateway = pulse.gateway_log();
    for line in ["ESP probe answered", "the client said ncmo=1"] {
        assert!(gateway.contains(line), "no {line:?}:\n{gateway}");
    }
    pulse.lab.assert_pings_over_udp(20);
    // Nothing ESP carried came over TLS as well (sealed bytes are no IP packet).
    let gateway = pulse.gateway_log();
    assert!(!gateway.contains("packet from nowhere"), "{gateway}");
}

/// The tunnel is up with TLS carrying the packets both ways.
fn assert_tls_tunnel_passes_traffic(pulse: &GatewayLab) {
    pulse.assert_tunnel_up();
    for direction in ["", "-R"] {
        pulse.assert_iperf_moves_a_megabyte(direction);
    }
}

/// SIGINT: the client says goodbye on the tunnel and exits 0; the script ran its three
/// reasons.
fn says_goodbye(pulse: &mut GatewayLab, pid: u32) -> String {
    pulse.disconnect(pid, GOODBYE)
}

fn tunnels_over_esp(test: &str, real_client: bool) {
    let mut pulse = start(test, &[], real_client);
    let pid = pulse.spawn_client(&[]);
    assert_esp_tunnel_up(&pulse);
    for direction in ["", "-R"] {
        pulse.assert_iperf_moves_a_megabyte_over_udp(direction);
    }
    let gateway = says_goodbye(&mut pulse, pid);
    for line in [
        "upgrade to IF-T/TLS",
        "password accepted for \"alice\"",
        "the client's ESP keys: SPI",
    ] {
        assert!(gateway.contains(line), "no {line:?}:\n{gateway}");
    }
}

#[test]
fn debian_openconnect_tunnels_over_esp() {
    tunnels_over_esp("pulse-esp", true);
}

#[test]
fn our_client_tunnels_over_esp() {
    tunnels_over_esp("pulse-ours-esp", false);
}

/// No ESP offered, UDP blocked, or the probes left unanswered: TLS carries the tunnel.
fn tunnels_over_tls(test: &str, how: &str, real_client: bool) {
    let extra: &[&str] = match how {
        "no-esp" => &["--no-esp"],
        "refuse" => &["--refuse-esp"],
        _ => &[],
    };
    let mut pulse = start(test, extra, real_client);
    if how == "blocked" {
        pulse.lab.block_udp();
    }
    let pid = pulse.spawn_client(&[]);
    assert_tls_tunnel_passes_traffic(&pulse);
    let client = pulse.lab.log("client.log");
    assert!(
        !client.contains("ESP session established"),
        "{}",
        pulse.logs()
    );
    if how == "refuse" {
        assert!(
            pulse
                .gateway_log()
                .contains("left unanswered (--refuse-esp)"),
            "{}",
            pulse.logs()
        );
    }
    says_goodbye(&mut pulse, pid);
}

#[test]
fn without_esp_debian_openconnect_tunnels_over_tls() {
    tunnels_over_tls("pulse-no-esp", "no-esp", true);
}

#[test]
fn without_esp_our_client_tunnels_over_tls() {
    tunnels_over_tls("pulse-ours-no-esp", "no-esp", false);
}

#[test]
fn with_udp_blocked_debian_openconnect_tunnels_over_tls() {
    tunnels_over_tls("pulse-blocked", "blocked", true);
}

#[test]
fn with_udp_blocked_our_client_tunnels_over_tls() {
    tunnels_over_tls("pulse-ours-blocked", "blocked", false);
}

#[test]
fn debian_openconnect_tunnels_over_tls_when_the_probes_go_unanswered() {
    tunnels_over_tls("pulse-refused", "refuse", true);
}

#[test]
fn our_client_tunnels_over_tls_when_the_probes_go_unanswered() {
    tunnels_over_tls("pulse-ours-refused", "refuse", false);
}

/// Realms (`--authgroup` picks one), a sign-in banner, the password, then a token code
/// (`-F pulse_gtc:tokencode=`).
fn logs_in_with_realm_banner_and_token(test: &str, real_client: bool) {
    let args = [
        "--realm",
        "Users",
        "--realm",
        "Staff",
        "--banner",
        "Authorised use only",
        "--otp",
        CODE,
    ];
    let mut pulse = start(test, &args, real_client);
    let token = format!("pulse_gtc:tokencode={CODE}");
    let pid = pulse.spawn_client(&["--authgroup", "Staff", "-F", &token]);
    pulse.assert_tunnel_up();
    let gateway = says_goodbye(&mut pulse, pid);
    for line in [
        "realm \"Staff\" chosen",
        "banner acknowledged",
        "password accepted",
        "token code accepted",
    ] {
        assert!(gateway.contains(line), "no {line:?}:\n{gateway}");
    }
}

#[test]
fn debian_openconnect_logs_in_with_realm_banner_and_token() {
    logs_in_with_realm_banner_and_token("pulse-login", true);
}

#[test]
fn our_client_logs_in_with_realm_banner_and_token() {
    logs_in_with_realm_banner_and_token("pulse-ours-login", false);
}

/// `--esp-rekey 2`: new keys every two seconds, each answered; pings keep coming over ESP.
fn rekeys_esp(test: &str, real_client: bool) {
    let mut pulse = start(test, &["--esp-rekey", "2"], real_client);
    let pid = pulse.spawn_client(&[]);
    assert_esp_tunnel_up(&pulse);
    pulse
        .lab
        .wait_for_log_count("gateway.log", "the client's ESP keys", 3, SECS(10));
    pulse.lab.assert_pings_over_udp(10);
    let gateway = says_goodbye(&mut pulse, pid);
    assert!(gateway.contains("ESP rekey 2: new SPI"), "{gateway}");
}

#[test]
fn debian_openconnect_takes_new_esp_keys() {
    rekeys_esp("pulse-rekey", true);
}

#[test]
fn our_client_takes_new_esp_keys() {
    rekeys_esp("pulse-ours-rekey", false);
}

/// `--authenticate`, then the cookie on stdin: presented on a new connection, it resumes
/// the session; SIGUSR2 reconnects with it again (the same address).
fn reconnects_with_the_cookie(test: &str, real_client: bool) {
    let mut pulse = start(test, &[], real_client);
    let cookie = pulse.authenticate();
    let pid = pulse.spawn_with_cookie(&cookie);
    pulse.assert_tunnel_up();
    pulse.assert_reconnects(pid, "the client's cookie resumes its session");
    let gateway = pulse.gateway_log();
    assert_eq!(gateway.matches("password accepted").count(), 1, "{gateway}");
    pulse.lab.signal_client(pid, "INT");
    assert_eq!(pulse.lab.wait_client(SECS(10)), Some(0), "{}", pulse.logs());
}

#[test]
fn debian_openconnect_reconnects_with_the_cookie() {
    reconnects_with_the_cookie("pulse-cookie", true);
}

#[test]
fn our_client_reconnects_with_the_cookie() {
    reconnects_with_the_cookie("pulse-ours-cookie", false);
}

/// A cookie the gateway does not know: asked for a password instead, the client ends
/// with exit status 2.
fn refused_cookie(test: &str, real_client: bool) {
    let pulse = start(test, &[], real_client);
    let url = format!("https://{}/", pulse.lab.server_ip);
    let args = [
        "--protocol=pulse",
        "--servercert",
        &pulse.pin,
        "-C",
        "0123456789abcdef",
        &url,
    ];
    let out = pulse.lab.run_client(&args, "", SECS(20));
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(
        pulse
            .gateway_log()
            .contains("unknown cookie; asking for the password"),
        "{}",
        pulse.logs()
    );
}

#[test]
fn debian_openconnect_exits_2_when_the_cookie_is_refused() {
    refused_cookie("pulse-bad-cookie", true);
}

#[test]
fn our_client_exits_2_when_the_cookie_is_refused() {
    refused_cookie("pulse-ours-bad-cookie", false);
}

/// `--expire 3`: a fatal error (0x93) ends the session; the client says why and exits 1
/// without reconnecting.
fn the_session_expires(test: &str, real_client: bool) {
    let mut pulse = start(test, &["--expire", "3", "--no-esp"], real_client);
    pulse.spawn_client(&[]);
    pulse.assert_tunnel_up();
    let code = pulse.lab.wait_client(SECS(15));
    assert_eq!(code, Some(1), "{}", pulse.logs());
    let client = pulse.lab.log("client.log");
    assert!(
        client.contains("Pulse fatal error (reason: 7): Session expired (--expire)"),
        "{}",
        pulse.logs()
    );
    assert_eq!(
        pulse.gateway_log().matches("upgrade to IF-T/TLS").count(),
        1,
        "no reconnect:\n{}",
        pulse.logs()
    );
}

#[test]
fn debian_openconnect_stops_when_the_session_ends() {
    the_session_expires("pulse-expire", true);
}

#[test]
fn our_client_stops_when_the_session_ends() {
    the_session_expires("pulse-ours-expire", false);
}

/// The newer password request (Juniper/5: 18 bytes, zero-padded), data messages cut into
/// records of 1, 2, 4, ... bytes (9.01 fails on the first), and the session information
/// newer servers send, acknowledged.
#[test]
fn our_client_reads_split_records_the_newer_password_and_session_information() {
    let args = ["--juniper5", "--split-writes", "--no-esp", "--session-info"];
    let mut pulse = start("pulse-ours-newer", &args, false);
    let pid = pulse.spawn_client(&[]);
    assert_tls_tunnel_passes_traffic(&pulse);
    let gateway = says_goodbye(&mut pulse, pid);
    for line in [
        "password accepted for \"alice\" (Juniper/5)",
        "session information acknowledged",
    ] {
        assert!(gateway.contains(line), "no {line:?}:\n{gateway}");
    }
}

/// UDP dropped on the way once ESP is up: ESP's dead-peer detection gives it up, the
/// gateway is told `ncmo=0`, TLS carries the pings.
#[test]
fn our_client_moves_to_tls_when_udp_drops() {
    let mut pulse = start("pulse-ours-udp-drop", &[], false);
    let pid = pulse.spawn_client(&["--force-dpd", "2"]);
    assert_esp_tunnel_up(&pulse);
    pulse.lab.black_hole_large_udp(0);
    let client = pulse
        .lab
        .wait_for_log("client.log", "using HTTPS instead", SECS(15));
    assert!(
        client.contains("ESP detected dead peer"),
        "{}",
        pulse.logs()
    );
    pulse
        .lab
        .wait_for_log("gateway.log", "the client said ncmo=0", SECS(5));
    assert!(pulse.lab.ping_behind(SECS(10)), "{}", pulse.logs());
    pulse.assert_iperf_moves_a_megabyte("-R");
    says_goodbye(&mut pulse, pid);
}

/// A wrong password: asked again (the line on stdin served once, the retry takes the
/// next), three times, then the gateway refuses the login (AVP 0xd60); the client says so
/// and exits 1 without a tunnel. With the right one second, it gets in.
#[test]
fn our_client_retries_a_wrong_password_then_gives_up_when_refused() {
    let pulse = start("pulse-ours-wrong", &[], false);
    let out = pulse.run_client(&["--cookieonly"], &format!("wrong\n{PASSWORD}\n"));
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).trim().is_empty());
    let out = pulse.run_client(&[], "wrong\nwrong\nwrong\n");
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("Authentication failure: Code 0x01"), "{text}");
    assert!(
        text.contains("Invalid username or password; try again."),
        "{text}"
    );
    let gateway = pulse.gateway_log();
    assert!(
        gateway.contains("login refused: too many wrong passwords"),
        "{gateway}"
    );
    pulse.assert_script_did_not_run();
}

fn octal(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:03o}")).collect()
}

/// Hostile IF-T through `openssl s_client` after the upgrade: a message whose length is
/// shorter than its header ends that connection, as does one that is not the version
/// request; an unknown page gets 404. Then openconnect 9.01 still logs in.
#[test]
fn hostile_if_t_is_logged_and_dropped() {
    let mut pulse = start("pulse-hostile", &[], true);
    let ip = pulse.lab.server_ip.clone();
    let upgrade = "GET / HTTP/1.1\\r\\nHost: x\\r\\nUpgrade: IF-T/TLS 1.0\\r\\n\
                   Content-Length: 0\\r\\n\\r\\n";
    let send = |bytes: &[u8]| {
        pulse.lab.in_client(&format!(
            "(printf '{upgrade}'; sleep 0.3; printf '{}'; sleep 1) | \
             timeout 10 openssl s_client -quiet -connect {ip}:443 2>/dev/null",
            octal(bytes)
        ))
    };
    let mut short = vec![0, 0, 0x55, 0x97, 0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 0];
    let out = send(&short);
    assert!(
        out.stdout.starts_with(b"HTTP/1.1 101 Switching Protocols"),
        "{}",
        output_text(&out)
    );
    short[7] = 9;
    short[11] = 16;
    send(&short);
    let gateway = pulse
        .lab
        .wait_for_log("gateway.log", "expected the version request", SECS(5));
    assert!(
        gateway.contains("an IF-T/TLS message of impossible length 5"),
        "{gateway}"
    );
    let out = pulse.lab.in_client(&format!(
        "curl -sk -o /dev/null -w '%{{http_code}}' https://{ip}/nowhere"
    ));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");
    let pid = pulse.spawn_client(&[]);
    assert_esp_tunnel_up(&pulse);
    says_goodbye(&mut pulse, pid);
}
