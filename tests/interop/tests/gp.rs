//! `--protocol=gp` against our GlobalProtect test gateway (`src/bin/gp_gateway/`): Debian's
//! openconnect 9.01 proves the gateway — prelogin, the portal's configuration and its
//! gateway list (`--authgroup` choosing one), the gateway's login with a challenge (XML and
//! JavaScript) answered by `-F`, a wrong password refused, getconfig with ESP keys, the HIP
//! check, ESP (the magic probe answered, packets both ways as UDP datagrams), the TLS
//! tunnel when UDP is blocked or ESP is refused, `--authenticate` then `--cookie-on-stdin`,
//! the logout on SIGINT — and hostile input to the gateway is logged and dropped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ferroconnect_interop::gateway_lab::{GatewayLab, Vendor, PASSWORD};
use ferroconnect_interop::output_text;

const CODE: &str = "123456";

const DNS_SUFFIX: &str = "example.test";
/// What the gateway logs when a client logs out.
const LOGGED_OUT: &str = "logout: session forgotten";

/// A lab with the gateway started with a DNS suffix and `extra` options; the client is
/// Debian's openconnect when `real_client`, else ours.
fn start(test: &str, extra: &[&str], real_client: bool) -> GatewayLab {
    let mut gp = GatewayLab::new(test, Vendor::Gp, real_client);
    let mut args = vec!["--dns-suffix", DNS_SUFFIX];
    args.extend_from_slice(extra);
    gp.start_gateway(&args);
    gp
}

/// [`GatewayLab::assert_tunnel_up`], and what GlobalProtect adds: the DNS suffix became the
/// search domain, the gateway logged in through the portal and the HIP check said no report
/// is needed.
fn assert_gp_tunnel_up(gp: &GatewayLab) {
    let env = gp.assert_tunnel_up();
    let get = |name: &str| env.get(name).map(String::as_str);
    assert_eq!(get("CISCO_SPLIT_INC_0_MASKLEN"), Some("32"), "{env:?}");
    assert_eq!(get("CISCO_DEF_DOMAIN"), Some(DNS_SUFFIX), "{env:?}");
    let gateway = gp.gateway_log();
    assert!(gateway.contains("report not needed"), "{gateway}");
}

/// The tunnel is up over ESP: openconnect 9.01 says the ESP session is established and it
/// leaves the HTTPS main loop; the gateway answered its probe and runs the ESP tunnel; 20
/// pings come back as UDP datagrams.
fn assert_esp_tunnel_up(gp: &GatewayLab) {
    assert_gp_tunnel_up(gp);
    let client = gp.lab.log("client.log");
    let configured = format!(
        "Configured as {}, with SSL disconnected and ESP established",
        gp.client_addr
    );
    for line in [
        "ESP session established with server",
        "ESP tunnel connected; exiting HTTPS mainloop.",
        &configured,
    ] {
        assert!(client.contains(line), "no {line:?}:\n{}", gp.logs());
    }
    let gateway = gp.gateway_log();
    assert!(gateway.contains("ESP tunnel "), "{gateway}");
    assert!(gateway.contains("answered"), "{gateway}");
    assert!(
        !gateway.contains("GET /ssl-tunnel-connect.sslvpn"),
        "{gateway}"
    );
    gp.lab.assert_pings_over_udp(20);
}

/// Portal, then gateway; ESP up; ping and iperf3 both ways as UDP datagrams; SIGINT logs
/// out.
#[test]
fn debian_openconnect_logs_in_through_the_portal_and_tunnels_over_esp() {
    let mut gp = start("gp-esp", &[], true);
    let pid = gp.spawn_client(&[]);
    assert_esp_tunnel_up(&gp);
    for direction in ["", "-R"] {
        gp.assert_iperf_moves_a_megabyte_over_udp(direction);
    }
    let gateway = gp.disconnect(pid, LOGGED_OUT);
    assert!(gateway.contains("POST /ssl-vpn/logout.esp"), "{gateway}");
}

/// The TLS tunnel is up in place of ESP: the gateway started it (and ended the session's
/// ESP keys), ping and iperf3 pass both ways.
fn assert_tls_tunnel_passes_traffic(gp: &GatewayLab) {
    assert_gp_tunnel_up(gp);
    let gateway = gp.gateway_log();
    assert!(
        gateway.contains("GET /ssl-tunnel-connect.sslvpn?authcookie="),
        "{gateway}"
    );
    assert!(
        gateway.contains("TLS tunnel 1 for user \"alice\""),
        "{gateway}"
    );
    for direction in ["", "-R"] {
        gp.assert_iperf_moves_a_megabyte(direction);
    }
}

/// UDP blocked: openconnect 9.01 probes, hears nothing for 5 s, says so and connects the
/// TLS tunnel, which carries the traffic; SIGINT logs out.
#[test]
fn with_udp_blocked_debian_openconnect_tunnels_over_tls() {
    let mut gp = start("gp-udp-blocked", &[], true);
    gp.lab.block_udp();
    let pid = gp.spawn_client(&[]);
    assert_tls_tunnel_passes_traffic(&gp);
    let client = gp.lab.log("client.log");
    for line in [
        "Failed to connect ESP tunnel; using HTTPS instead.".to_string(),
        format!(
            "Configured as {}, with SSL connected and ESP unsuccessful",
            gp.client_addr
        ),
    ] {
        assert!(client.contains(&line), "no {line:?}:\n{}", gp.logs());
    }
    assert!(!client.contains("ESP session established"), "{client}");
    let gateway = gp.gateway_log();
    assert!(
        gateway.contains("the TLS tunnel ends the session's ESP keys"),
        "{gateway}"
    );
    assert!(!gateway.contains("ESP tunnel "), "{gateway}");
    gp.disconnect(pid, LOGGED_OUT);
}

/// `--refuse-esp`: the keys are handed out and the probes arrive, but none is answered;
/// openconnect 9.01 falls back to the TLS tunnel as with UDP blocked.
#[test]
fn debian_openconnect_falls_back_to_tls_when_the_probes_go_unanswered() {
    let mut gp = start("gp-esp-refused", &["--refuse-esp"], true);
    let pid = gp.spawn_client(&[]);
    assert_tls_tunnel_passes_traffic(&gp);
    let gateway = gp.gateway_log();
    assert!(
        gateway.contains("left unanswered (--refuse-esp)"),
        "{gateway}"
    );
    assert!(
        gp.lab
            .log("client.log")
            .contains("Failed to connect ESP tunnel; using HTTPS instead."),
        "{}",
        gp.logs()
    );
    gp.disconnect(pid, LOGGED_OUT);
}

/// `--no-esp`: no `<ipsec>` in the configuration; openconnect 9.01 says the tunnel will be
/// TLS only and connects it at once.
#[test]
fn without_esp_keys_debian_openconnect_connects_the_tls_tunnel_at_once() {
    let mut gp = start("gp-no-esp", &["--no-esp"], true);
    let pid = gp.spawn_client(&[]);
    assert_tls_tunnel_passes_traffic(&gp);
    let client = gp.lab.log("client.log");
    assert!(
        client.contains("Did not receive ESP keys and matching gateway in GlobalProtect config"),
        "{}",
        gp.logs()
    );
    assert!(!client.contains("Failed to connect ESP tunnel"), "{client}");
    gp.disconnect(pid, LOGGED_OUT);
}

/// `--otp` with the challenge as `style` (`xml` or `js`): the portal takes the password,
/// openconnect 9.01 replays it on the gateway (its "blind retry"), which answers with the
/// challenge; `-F _challenge:passwd=CODE` answers it (the challenge form keeps the field
/// name `passwd`, and without a software token it is a password field that `-F` fills),
/// posted back with the `inputStr`, and the tunnel comes up. A wrong code first: the
/// gateway's JavaScript error ends the login (9.01 prints the message and gives up).
fn answers_the_challenge(test: &str, style: &str) {
    let mut gp = start(test, &["--otp", CODE, "--challenge", style], true);
    let out = gp.run_client(
        &["--non-inter", "-F", "_challenge:passwd=654321"],
        &format!("{PASSWORD}\n"),
    );
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", gp.gateway_log());
    assert!(text.contains("Authentication failed: wrong code"), "{text}");
    let gateway = gp.gateway_log();
    assert!(
        gateway.contains("challenge refused for user \"alice\": wrong code"),
        "{gateway}"
    );
    assert!(
        !gateway.contains("POST /ssl-vpn/getconfig.esp"),
        "{gateway}"
    );
    gp.assert_script_did_not_run();

    let entry = format!("_challenge:passwd={CODE}");
    let pid = gp.spawn_client(&["--non-inter", "-F", &entry]);
    assert_esp_tunnel_up(&gp);
    let gateway = gp.gateway_log();
    let sent = match style {
        "js" => "JavaScript challenge sent",
        _ => "XML challenge sent",
    };
    assert!(gateway.contains(sent), "{gateway}");
    assert!(
        gateway.contains("challenge code accepted for user \"alice\""),
        "{gateway}"
    );
    assert!(
        gp.lab
            .log("client.log")
            .contains("Enter the code from your token"),
        "{}",
        gp.logs()
    );
    gp.disconnect(pid, LOGGED_OUT);
}

#[test]
fn debian_openconnect_answers_an_xml_challenge() {
    answers_the_challenge("gp-2fa-xml", "xml");
}

#[test]
fn debian_openconnect_answers_a_javascript_challenge() {
    answers_the_challenge("gp-2fa-js", "js");
}

/// A wrong password gets HTTP 512 from the portal: openconnect 9.01 takes it for "invalid
/// username or password", asks again and, non-interactive, gives up (exit 1).
#[test]
fn a_wrong_password_is_refused() {
    let gp = start("gp-refused", &[], true);
    let out = gp.run_client(&["--non-inter"], "not the password\n");
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("Unexpected 512 result from server"), "{text}");
    let gateway = gp.gateway_log();
    assert!(
        gateway
            .contains("portal login refused for user Some(\"alice\"): wrong user name or password"),
        "{gateway}"
    );
    assert!(gateway.contains("-> 512 Custom error"), "{gateway}");
    assert!(!gateway.contains("POST /ssl-vpn/"), "{gateway}");
    gp.assert_script_did_not_run();
}

/// Two gateways in the portal's list, both this server under other names (`--resolve`
/// gives their address): `--authgroup` picks the second by its description, and
/// openconnect 9.01 logs in there (its `server` field and Host header name it).
#[test]
fn authgroup_chooses_a_gateway_from_the_portals_list() {
    let mut gp = GatewayLab::new("gp-authgroup", Vendor::Gp, true);
    gp.start_gateway(&[
        "--dns-suffix",
        DNS_SUFFIX,
        "--gateway",
        "gw1.example.test=First gateway",
        "--gateway",
        "gw2.example.test=Second gateway",
    ]);
    let resolve: Vec<String> = ["gw1", "gw2"]
        .iter()
        .map(|gw| format!("--resolve={gw}.example.test:{}", gp.lab.server_ip))
        .collect();
    let pid = gp.spawn_client(&[&resolve[0], &resolve[1], "--authgroup", "Second"]);
    assert_esp_tunnel_up(&gp);
    let client = gp.lab.log("client.log");
    assert!(client.contains("2 gateway servers available:"), "{client}");
    assert!(
        client.contains("Second gateway (gw2.example.test)"),
        "{client}"
    );
    let gateway = gp.gateway_log();
    assert!(
        gateway.contains(
            "gateway login for server \"gw2.example.test\", host header \"gw2.example.test\""
        ),
        "{gateway}"
    );
    gp.disconnect(pid, LOGGED_OUT);
}

/// NetworkManager's flow: `--authenticate` logs in (portal, gateway) and prints the cookie;
/// `--cookie-on-stdin` then needs no login: getconfig, the HIP check and ESP, and the
/// logout on SIGINT matches the cookie's fields.
#[test]
fn authenticate_then_connect_with_the_cookie() {
    let mut gp = start("gp-cookie", &[], true);
    let cookie = gp.authenticate();
    for field in [
        "authcookie=",
        "&portal=ferroconnect-portal",
        "&user=alice",
        "&domain=%28empty_domain%29",
        "&computer=",
    ] {
        assert!(cookie.contains(field), "{field} not in {cookie:?}");
    }
    let gateway = gp.gateway_log();
    assert!(gateway.contains("session started"), "{gateway}");
    assert!(!gateway.contains("getconfig form"), "{gateway}");
    let logins = gateway.matches("POST /ssl-vpn/login.esp").count();

    let pid = gp.spawn_with_cookie(&cookie);
    assert_esp_tunnel_up(&gp);
    let gateway = gp.gateway_log();
    assert_eq!(
        gateway.matches("POST /ssl-vpn/login.esp").count(),
        logins,
        "{gateway}"
    );
    gp.disconnect(pid, LOGGED_OUT);
}
