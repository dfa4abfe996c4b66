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
use std::time::Duration;

const SECS: fn(u64) -> Duration = Duration::from_secs;
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
    let answered = format!("from {} answered", gp.client_addr);
    assert!(gateway.contains(&answered), "{gateway}");
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
    tunnels_over_tls_with_udp_blocked("gp-udp-blocked", true);
}

fn tunnels_over_tls_with_udp_blocked(test: &str, real_client: bool) {
    let mut gp = start(test, &[], real_client);
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
    falls_back_to_tls_when_the_probes_go_unanswered("gp-esp-refused", true);
}

fn falls_back_to_tls_when_the_probes_go_unanswered(test: &str, real_client: bool) {
    let mut gp = start(test, &["--refuse-esp"], real_client);
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
    connects_the_tls_tunnel_at_once_without_esp_keys("gp-no-esp", true);
}

fn connects_the_tls_tunnel_at_once_without_esp_keys(test: &str, real_client: bool) {
    let mut gp = start(test, &["--no-esp"], real_client);
    let pid = gp.spawn_client(&[]);
    assert_tls_tunnel_passes_traffic(&gp);
    let client = gp.lab.log("client.log");
    assert!(
        client.contains("Did not receive ESP keys and matching gateway in GlobalProtect config"),
        "{}",
        gp.logs()
    );
    assert!(!client.contains("Failed to connect ESP tunnel"), "{client}");
    let configured = format!(
        "Configured as {}, with SSL connected and ESP disabled",
        gp.client_addr
    );
    assert!(client.contains(&configured), "{client}");
    gp.disconnect(pid, LOGGED_OUT);
}

/// `--otp` with the challenge as `style` (`xml` or `js`): the portal takes the password,
/// openconnect 9.01 replays it on the gateway (its "blind retry"), which answers with the
/// challenge; `-F _challenge:passwd=CODE` answers it (the challenge form keeps the field
/// name `passwd`, and without a software token it is a password field that `-F` fills),
/// posted back with the `inputStr`, and the tunnel comes up. A wrong code first: the
/// gateway's JavaScript error ends the login (9.01 prints the message and gives up).
fn answers_the_challenge(test: &str, style: &str, real_client: bool) {
    let mut gp = start(test, &["--otp", CODE, "--challenge", style], real_client);
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
        "html" => "JavaScript-in-HTML challenge sent",
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
    answers_the_challenge("gp-2fa-xml", "xml", true);
}

#[test]
fn debian_openconnect_answers_a_javascript_challenge() {
    answers_the_challenge("gp-2fa-js", "js", true);
}

/// A wrong password gets HTTP 512 from the portal: openconnect 9.01 takes it for "invalid
/// username or password", asks again and, non-interactive, gives up (exit 1).
#[test]
fn a_wrong_password_is_refused() {
    let text = wrong_password_is_refused("gp-refused", true);
    assert!(text.contains("Unexpected 512 result from server"), "{text}");
}

/// The wrong password's run: exit 1, the portal refused it and nothing else was tried.
fn wrong_password_is_refused(test: &str, real_client: bool) -> String {
    let gp = start(test, &[], real_client);
    let out = gp.run_client(&["--non-inter"], "not the password\n");
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let gateway = gp.gateway_log();
    assert!(
        gateway
            .contains("portal login refused for user Some(\"alice\"): wrong user name or password"),
        "{gateway}"
    );
    assert!(gateway.contains("-> 512 Custom error"), "{gateway}");
    assert!(!gateway.contains("POST /ssl-vpn/"), "{gateway}");
    gp.assert_script_did_not_run();
    text
}

/// Two gateways in the portal's list, both this server under other names (`--resolve`
/// gives their address): `--authgroup` picks the second by its description, and
/// openconnect 9.01 logs in there (its `server` field and Host header name it).
#[test]
fn authgroup_chooses_a_gateway_from_the_portals_list() {
    chooses_a_gateway_from_the_portals_list("gp-authgroup", true);
}

fn chooses_a_gateway_from_the_portals_list(test: &str, real_client: bool) {
    let mut gp = GatewayLab::new(test, Vendor::Gp, real_client);
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
    connects_with_the_cookie_of_authenticate("gp-cookie", true);
}

fn connects_with_the_cookie_of_authenticate(test: &str, real_client: bool) {
    let mut gp = start(test, &[], real_client);
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
    // Idle, openconnect 9.01 probes once per DPD interval (10 s) as ESP's keepalive; the
    // gateway answers and the tunnel stays. (9.01 counts any packet from the gateway as a
    // sign of life: the IPv6 neighbour discovery of the gateway's tun device, which the
    // gateway once forwarded, kept it from ever probing. It keeps that off the tunnel.)
    let answered = format!("from {} answered (", gp.client_addr);
    let before = gateway.matches(&answered).count();
    gp.lab
        .wait_for_log_count("gateway.log", &answered, before + 1, SECS(15));
    gp.lab.assert_pings_over_udp(5);
    assert!(
        !gp.lab.log("client.log").contains("ESP detected dead peer"),
        "{}",
        gp.logs()
    );
    gp.disconnect(pid, LOGGED_OUT);
}

/// `printf` octal escapes for `bytes`.
fn octal(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:03o}")).collect()
}

/// A frame as the client sends it: the 16-byte header, then `packet`.
fn frame(packet: &[u8]) -> Vec<u8> {
    let mut f = vec![0x1a, 0x2b, 0x3c, 0x4d, 0x08, 0x00];
    f.extend_from_slice(&(packet.len() as u16).to_be_bytes());
    f.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(packet);
    f
}

/// Hostile HTTPS: garbage login posts get 512 and a log line, an unknown cookie gets
/// "errors getting SSL/VPN config" from getconfig, an error from logout and the HIP check,
/// 502 for the tunnel; an oversized body 413, an unknown page 404. On a tunnel of a real
/// session (from `--authenticate`): a keepalive is answered, a packet with another source
/// is dropped, garbage ends the tunnel. Then openconnect 9.01 still connects.
#[test]
fn hostile_posts_and_frames_are_logged_and_dropped() {
    let mut gp = start("gp-hostile-https", &[], true);
    let ip = gp.lab.server_ip.clone();
    let curl = |path: &str, body: &str| -> (String, String) {
        let out = gp.lab.in_client(&format!(
            "printf '{body}' | curl -sk -w '\\n%{{http_code}}' --data-binary @- \
             -H 'Content-Type: application/x-www-form-urlencoded' https://{ip}{path}"
        ));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
        (status.to_string(), body.to_string())
    };
    let (status, _) = curl(
        "/ssl-vpn/login.esp",
        "\\000\\377<<<&&&===user=alice&&passwd",
    );
    assert_eq!(status, "512");
    let (status, body) = curl(
        "/ssl-vpn/getconfig.esp",
        "authcookie=0123&user=alice&portal=x&domain=y&computer=z",
    );
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("200", "errors getting SSL/VPN config")
    );
    for page in ["/ssl-vpn/logout.esp", "/ssl-vpn/hipreportcheck.esp"] {
        let (status, body) = curl(page, "authcookie=0123&user=alice");
        assert_eq!(status, "200");
        assert!(body.contains("Invalid authentication cookie"), "{body}");
    }
    let (status, _) = curl("/nowhere.esp", "");
    assert_eq!(status, "404");
    // A body announced too large is refused on its head (nothing unread left behind, so
    // the close cannot overtake the answer with a reset).
    let out = gp.lab.in_client(&format!(
        "printf 'POST /ssl-vpn/login.esp HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 100000\\r\\n\\r\\n' | \
         timeout 10 openssl s_client -quiet -connect {ip}:443 2>/dev/null"
    ));
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer:?}");
    let out = gp.lab.in_client(&format!(
        "curl -sk -o /dev/null -w '%{{http_code}}' \
         'https://{ip}/ssl-tunnel-connect.sslvpn?authcookie=00&user=alice'"
    ));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "502");
    let gateway = gp.gateway_log();
    for line in [
        "gateway login post lacks upstream's fixed fields",
        "getconfig: unknown authcookie; refused",
        "logout: unknown authcookie",
        "HIP check: unknown authcookie",
        "no such page: /nowhere.esp",
        "bad request: request body is larger than",
        "tunnel refused: unknown session",
    ] {
        assert!(gateway.contains(line), "no {line:?}:\n{gateway}");
    }

    // Frames on a real session's tunnel.
    let cookie = gp.authenticate();
    let authcookie = cookie
        .split('&')
        .find_map(|f| f.strip_prefix("authcookie="))
        .unwrap()
        .to_string();
    let keepalive = [0x1a, 0x2b, 0x3c, 0x4d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let mut spoofed = vec![0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 9, 9, 9];
    spoofed.extend_from_slice(&[198, 19, 0, 1]);
    let request = format!(
        "GET /ssl-tunnel-connect.sslvpn?authcookie={authcookie}&user=alice HTTP/1.1\\r\\n\\r\\n"
    );
    let out = gp.lab.in_client(&format!(
        "(printf '{request}'; sleep 0.5; printf '{}'; sleep 0.3; printf '{}'; sleep 0.3; \
         printf 'this is not a frame at all'; sleep 1) | \
         timeout 10 openssl s_client -quiet -connect {ip}:443 2>/dev/null",
        octal(&keepalive),
        octal(&frame(&spoofed)),
    ));
    assert!(
        out.stdout.starts_with(b"START_TUNNEL"),
        "{}",
        output_text(&out)
    );
    assert!(
        out.stdout.windows(16).any(|w| w == keepalive),
        "no keepalive answered: {:02x?}",
        out.stdout
    );
    let gateway = gp
        .lab
        .wait_for_log("gateway.log", "bad frame from the client", SECS(5));
    assert!(
        gateway.contains("packet from 10.9.9.9 (not the client's address); dropped"),
        "{gateway}"
    );
    assert!(gateway.contains("unknown GlobalProtect frame"), "{gateway}");

    // (The probe's tunnel above was a TLS one: the ESP checks of the others do not fit.)
    let pid = gp.spawn_client(&[]);
    assert_gp_tunnel_up(&gp);
    gp.lab.assert_pings_over_udp(10);
    gp.disconnect(pid, LOGGED_OUT);
}

/// Hostile ESP while a tunnel runs: datagrams too short for a header, an SPI nobody
/// negotiated, the session's own SPI with a forged ICV, all logged and dropped; the
/// tunnel carries pings over UDP after them.
#[test]
fn hostile_esp_is_logged_and_dropped() {
    let mut gp = start("gp-hostile-esp", &[], true);
    let pid = gp.spawn_client(&[]);
    assert_esp_tunnel_up(&gp);
    let gateway = gp.gateway_log();
    let spi = gateway
        .split("c2s SPI 0x")
        .nth(1)
        .and_then(|rest| rest.get(..8))
        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
        .unwrap_or_else(|| panic!("no SPI in the log:\n{gateway}"));
    // One throttled kind of line per batch (a second apart).
    gp.send_datagrams_to(4501, &[&[], &[1, 2, 3]]);
    std::thread::sleep(SECS(1) + Duration::from_millis(100));
    let mut forged = spi.to_be_bytes().to_vec();
    // A sequence number far ahead, so that the window passes it to the ICV check.
    forged.extend_from_slice(&0x7fff_0000_u32.to_be_bytes());
    forged.extend_from_slice(&[0x5a; 16 + 32 + 12]);
    let mut stranger = 0xdead_beef_u32.to_be_bytes().to_vec();
    stranger.extend_from_slice(&[0; 60]);
    gp.send_datagrams_to(4501, &[&forged, &stranger]);
    let gateway = gp
        .lab
        .wait_for_log("gateway.log", "with unknown SPI 0xdeadbeef", SECS(5));
    let gateway = if gateway.contains("invalid HMAC") {
        gateway
    } else {
        gp.lab.wait_for_log("gateway.log", "invalid HMAC", SECS(5))
    };
    assert!(
        gateway.contains("is too short for a header; dropped"),
        "{gateway}"
    );
    assert!(
        gateway.contains(&format!(
            "ESP packet dropped: Received ESP packet with invalid HMAC (SPI {spi:#010x}, seq {})",
            0x7fff_0000_u32
        )),
        "{gateway}"
    );
    gp.lab.assert_pings_over_udp(10);
    gp.disconnect(pid, LOGGED_OUT);
}

/// The other settings a gateway may have: `--portal-cookie` (the portal hands out a
/// `portal-userauthcookie`, which openconnect 9.01 replays on the gateway, where it stands
/// in for the password and the challenge), `--hip-report-needed` (9.01 without a HIP
/// script warns and goes on), `--mtu 0` (as real gateways send: 9.01 computes one for ESP),
/// ESP on another port in AES-256-CBC with HMAC-SHA-256.
#[test]
fn portal_cookie_hip_request_no_mtu_and_another_esp_port_and_suite() {
    takes_a_portal_cookie_hip_request_no_mtu_and_another_esp_port_and_suite("gp-variants", true);
}

fn takes_a_portal_cookie_hip_request_no_mtu_and_another_esp_port_and_suite(
    test: &str,
    real_client: bool,
) {
    let extra = [
        "--portal-cookie",
        "--otp",
        CODE,
        "--hip-report-needed",
        "--mtu",
        "0",
        "--esp-port",
        "4600",
        "--esp-suite",
        "aes-256-cbc/sha256",
    ];
    let mut gp = GatewayLab::new(test, Vendor::Gp, real_client);
    let mut args = vec!["--dns-suffix", DNS_SUFFIX];
    args.extend_from_slice(&extra);
    gp.start_gateway(&args);
    let pid = gp.spawn_client(&["--non-inter"]);
    assert!(gp.lab.ping_behind(SECS(20)), "no tunnel:\n{}", gp.logs());
    let gateway = gp.gateway_log();
    for line in [
        "portal-userauthcookie handed out",
        "gateway login by portal-userauthcookie for user \"alice\"",
        "ESP keys: c2s SPI",
        "(AES-256-CBC with HMAC-SHA-256-128, port 4600)",
        "report needed",
        "ESP tunnel 1 for user \"alice\"",
    ] {
        assert!(gateway.contains(line), "no {line:?}:\n{gateway}");
    }
    assert!(!gateway.contains("challenge sent"), "{gateway}");
    let client = gp.lab.log("client.log");
    for line in [
        "WARNING: Server asked us to submit HIP report with md5sum",
        "No MTU received. Calculated ",
        "ESP session established with server",
    ] {
        assert!(client.contains(line), "no {line:?}:\n{}", gp.logs());
    }
    gp.lab.assert_pings_over_udp(10);
    gp.disconnect(pid, LOGGED_OUT);
}

/// `--rekey 70`: the configuration's `timeout` of 70 s makes openconnect 9.01 "rekey" after
/// 10 s (a minute before the timeout): it reconnects with its cookie, fetches the
/// configuration again (asking for its address back) and so new ESP keys, which replace
/// the old ones at the gateway; the probe of the new keys starts the next ESP tunnel, and
/// traffic goes on over UDP under the new SPI. (9.01 treats the rekey as a reconnect: the
/// vpnc-script runs `attempt-reconnect` and `reconnect`.)
#[test]
fn a_rekey_brings_new_esp_keys() {
    rekeys_with_new_esp_keys("gp-rekey", true);
}

fn rekeys_with_new_esp_keys(test: &str, real_client: bool) {
    let mut gp = start(test, &["--rekey", "70"], real_client);
    let pid = gp.spawn_client(&[]);
    assert_esp_tunnel_up(&gp);
    let gateway = gp
        .lab
        .wait_for_log("gateway.log", "ESP tunnel 2 for user", SECS(20));
    assert!(gateway.contains(", replacing SPI 0x"), "{gateway}");
    assert!(
        gateway.contains("ended: the session's keys ended"),
        "{gateway}"
    );
    assert_eq!(
        gateway.matches("POST /ssl-vpn/login.esp").count(),
        1,
        "{gateway}"
    );
    let client = gp.lab.log("client.log");
    assert!(client.contains("GlobalProtect rekey due"), "{}", gp.logs());
    gp.lab.assert_pings_over_udp(10);
    // SIGINT logs out; the script also ran for the reconnect.
    gp.lab.signal_client(pid, "INT");
    assert_eq!(gp.lab.wait_client(SECS(10)), Some(0), "{}", gp.logs());
    gp.lab.wait_for_log("gateway.log", LOGGED_OUT, SECS(5));
    assert_eq!(
        gp.lab.log("reasons"),
        "pre-init\nconnect\nattempt-reconnect\nreconnect\ndisconnect\n"
    );
}

/// `--challenge html`: the JavaScript challenge inside an HTML page, as some gateways send
/// it. openconnect 9.01 reads an answer as XML or as bare JavaScript only (the HTML
/// wrapping came in 9.10): it cannot parse the page and gives up (exit 1) without posting
/// a code. (`oc_proto::gp` reads it: its unit tests.)
#[test]
fn debian_openconnect_9_01_cannot_read_a_challenge_wrapped_in_html() {
    let gp = start("gp-2fa-html", &["--otp", CODE, "--challenge", "html"], true);
    let entry = format!("_challenge:passwd={CODE}");
    let out = gp.run_client(&["--non-inter", "-F", &entry], &format!("{PASSWORD}\n"));
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", gp.gateway_log());
    assert!(text.contains("Failed to parse server response"), "{text}");
    let gateway = gp.gateway_log();
    assert!(
        gateway.contains("JavaScript-in-HTML challenge sent"),
        "{gateway}"
    );
    assert!(!gateway.contains("challenge code accepted"), "{gateway}");
    gp.assert_script_did_not_run();
}

/// Our client through the portal to the gateway over ESP, as openconnect 9.01 above: the
/// same log lines, ping and iperf3 both ways as UDP datagrams, the logout on SIGINT.
#[test]
fn our_client_logs_in_through_the_portal_and_tunnels_over_esp() {
    let mut gp = start("gp-ours-esp", &[], false);
    let pid = gp.spawn_client(&[]);
    assert_esp_tunnel_up(&gp);
    for direction in ["", "-R"] {
        gp.assert_iperf_moves_a_megabyte_over_udp(direction);
    }
    let gateway = gp.disconnect(pid, LOGGED_OUT);
    assert!(gateway.contains("POST /ssl-vpn/logout.esp"), "{gateway}");
    assert!(
        gp.lab.log("client.log").contains("Logout successful."),
        "{}",
        gp.logs()
    );
}

#[test]
fn with_udp_blocked_our_client_tunnels_over_tls() {
    tunnels_over_tls_with_udp_blocked("gp-ours-udp-blocked", false);
}

#[test]
fn our_client_falls_back_to_tls_when_the_probes_go_unanswered() {
    falls_back_to_tls_when_the_probes_go_unanswered("gp-ours-esp-refused", false);
}

#[test]
fn without_esp_keys_our_client_connects_the_tls_tunnel_at_once() {
    connects_the_tls_tunnel_at_once_without_esp_keys("gp-ours-no-esp", false);
}

#[test]
fn our_client_answers_an_xml_challenge() {
    answers_the_challenge("gp-ours-2fa-xml", "xml", false);
}

#[test]
fn our_client_answers_a_javascript_challenge() {
    answers_the_challenge("gp-ours-2fa-js", "js", false);
}

/// What openconnect 9.01 cannot read (above), ours does, as openconnect 9.10 and later.
#[test]
fn our_client_answers_a_challenge_wrapped_in_html() {
    answers_the_challenge("gp-ours-2fa-html", "html", false);
}

#[test]
fn our_client_gives_up_on_a_wrong_password_without_a_terminal() {
    let text = wrong_password_is_refused("gp-ours-refused", false);
    assert!(text.contains("nvalid username or password"), "{text}");
}

#[test]
fn authgroup_chooses_a_gateway_for_our_client() {
    chooses_a_gateway_from_the_portals_list("gp-ours-authgroup", false);
}

#[test]
fn our_client_authenticates_then_connects_with_the_cookie() {
    connects_with_the_cookie_of_authenticate("gp-ours-cookie", false);
}

#[test]
fn our_client_takes_a_portal_cookie_hip_request_no_mtu_and_another_esp_port_and_suite() {
    takes_a_portal_cookie_hip_request_no_mtu_and_another_esp_port_and_suite(
        "gp-ours-variants",
        false,
    );
}

#[test]
fn our_client_rekeys_with_new_esp_keys() {
    rekeys_with_new_esp_keys("gp-ours-rekey", false);
}

/// UDP dropped mid-session on the way to the gateway (`--force-dpd 2`): our client's ESP probes go unanswered, it
/// declares the peer dead within two intervals and moves the tunnel to TLS, which carries
/// the pings. SIGUSR2 then reconnects with the cookie: the configuration is fetched again
/// (no second login), UDP is back, so new ESP keys carry the tunnel; the script sees
/// `attempt-reconnect` and `reconnect` for the same address.
#[test]
fn our_client_moves_to_tls_when_udp_drops_then_reconnects_with_the_cookie() {
    let mut gp = start("gp-ours-udp-drop", &[], false);
    let pid = gp.spawn_client(&["--force-dpd", "2"]);
    assert_esp_tunnel_up(&gp);
    // Dropped on the way, not refused here: the client's sends succeed.
    gp.lab.black_hole_large_udp(0);
    let client = gp
        .lab
        .wait_for_log("client.log", "using HTTPS instead", SECS(15));
    assert!(client.contains("ESP detected dead peer"), "{}", gp.logs());
    assert!(
        gp.lab.ping_behind(SECS(10)),
        "no tunnel over TLS:\n{}",
        gp.logs()
    );
    // The tunnels of a session are counted together: ESP's was the first.
    let gateway = gp.gateway_log();
    assert!(
        gateway.contains("TLS tunnel 2 for user \"alice\""),
        "{gateway}"
    );
    gp.lab.in_server("nft delete table inet fcmtu");
    gp.assert_reconnects(pid, "POST /ssl-vpn/getconfig.esp");
    gp.lab
        .wait_for_log_count("client.log", "ESP tunnel connected", 2, SECS(10));
    gp.lab.assert_pings_over_udp(10);
    assert_eq!(
        gp.gateway_log().matches("POST /ssl-vpn/login.esp").count(),
        1,
        "{}",
        gp.logs()
    );
    gp.lab.signal_client(pid, "INT");
    assert_eq!(gp.lab.wait_client(SECS(10)), Some(0), "{}", gp.logs());
    gp.lab.wait_for_log("gateway.log", LOGGED_OUT, SECS(5));
    assert_eq!(
        gp.lab.log("reasons"),
        "pre-init\nconnect\nattempt-reconnect\nreconnect\ndisconnect\n"
    );
}

/// `--web-cookie`: the prelogin sets an HTTP cookie that every later page requires (as a
/// load balancer's, or upstream's fake server's session): the client keeps it through the
/// portal, the gateway, getconfig, the HIP check and the logout.
fn keeps_the_servers_http_cookies(test: &str, real_client: bool) {
    let mut gp = start(test, &["--web-cookie"], real_client);
    let out = gp.lab.in_client(&format!(
        "curl -sk -o /dev/null -w '%{{http_code}}' -d user=alice https://{}/ssl-vpn/login.esp",
        gp.lab.server_ip
    ));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "403",
        "without the cookie"
    );
    let pid = gp.spawn_client(&[]);
    assert_esp_tunnel_up(&gp);
    let gateway = gp.disconnect(pid, LOGGED_OUT);
    assert!(gateway.contains("GPWEB cookie set"), "{gateway}");
    // Only curl's request was refused.
    assert_eq!(
        gateway.matches("cookie from the prelogin; refused").count(),
        1,
        "{gateway}"
    );
}

#[test]
fn debian_openconnect_keeps_the_servers_http_cookies() {
    keeps_the_servers_http_cookies("gp-web-cookie", true);
}

#[test]
fn our_client_keeps_the_servers_http_cookies() {
    keeps_the_servers_http_cookies("gp-ours-web-cookie", false);
}

/// Debian's HIP report script (openconnect's `hipreport.sh`).
const HIP_SCRIPT: &str = "/usr/libexec/openconnect/hipreport.sh";

/// `--hip-report-needed`: the client runs `--csd-wrapper` (Debian's `hipreport.sh`, with
/// openconnect's arguments), submits the report (which states the check's md5), and the
/// gateway then needs none; `--force-trojan 3` repeats the check every 3 s while the
/// tunnel runs over ESP.
fn submits_the_hip_report_and_repeats_the_check(test: &str, real_client: bool) {
    let mut gp = start(test, &["--hip-report-needed"], real_client);
    let pid = gp.spawn_client(&["--csd-wrapper", HIP_SCRIPT, "--force-trojan", "3"]);
    assert!(gp.lab.ping_behind(SECS(20)), "no tunnel:\n{}", gp.logs());
    let gateway = gp.gateway_log();
    let md5 = gateway
        .split("HIP check (md5 ")
        .nth(1)
        .and_then(|rest| rest.get(..32))
        .unwrap_or_else(|| panic!("no HIP check:\n{gateway}"))
        .to_string();
    assert!(
        gateway.contains(&format!("bytes, md5 {md5})")),
        "the report states another md5:\n{gateway}"
    );
    let client = gp.lab.log("client.log");
    for line in [
        "Trying to run HIP Trojan script",
        "HIP report submitted successfully.",
    ] {
        assert!(client.contains(line), "no {line:?}:\n{}", gp.logs());
    }
    gp.lab
        .wait_for_log("gateway.log", "report not needed", SECS(10));
    assert!(
        gp.lab
            .log("client.log")
            .contains("GlobalProtect HIP check due"),
        "{}",
        gp.logs()
    );
    gp.lab.assert_pings_over_udp(5);
    gp.disconnect(pid, LOGGED_OUT);
}

#[test]
fn debian_openconnect_submits_the_hip_report_and_repeats_the_check() {
    submits_the_hip_report_and_repeats_the_check("gp-hip", true);
}

#[test]
fn our_client_submits_the_hip_report_and_repeats_the_check() {
    submits_the_hip_report_and_repeats_the_check("gp-ours-hip", false);
}

/// The `prelogin-cookie` an external SAML helper obtained (`--saml` takes it).
const SAML_COOKIE: &str = "saml-result-0123";

/// `--saml`: the prelogin asks for SAML. Without an external login's result the client
/// says where SAML would go and how to pass the result, and stops (exit 1, no login
/// post). Then as gp-saml-gui runs it: `--usergroup gateway:prelogin-cookie` and the
/// result on stdin in place of the password: the gateway takes it and the tunnel is up.
fn logs_in_with_an_external_saml_result(test: &str, real_client: bool) {
    let mut gp = start(test, &["--saml", SAML_COOKIE], real_client);
    let out = gp.run_client(&["--non-inter"], "not a cookie\n");
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("SAML REDIRECT authentication is required via https://idp.example.test/sso"),
        "{text}"
    );
    let gateway = gp.gateway_log();
    assert!(!gateway.contains("POST /ssl-vpn/login.esp"), "{gateway}");
    assert!(
        !gateway.contains("POST /global-protect/getconfig.esp"),
        "{gateway}"
    );
    let args = gp.client_args(&["--usergroup", "gateway:prelogin-cookie"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let pid = gp.lab.spawn_client(&args, &format!("{SAML_COOKIE}\n"));
    assert_esp_tunnel_up(&gp);
    let gateway = gp.gateway_log();
    assert!(
        gateway.contains("SAML prelogin-cookie accepted for user \"alice\""),
        "{gateway}"
    );
    gp.disconnect(pid, LOGGED_OUT);
}

#[test]
fn debian_openconnect_logs_in_with_an_external_saml_result() {
    logs_in_with_an_external_saml_result("gp-saml", true);
}

#[test]
fn our_client_logs_in_with_an_external_saml_result() {
    logs_in_with_an_external_saml_result("gp-ours-saml", false);
}

/// Prelogin offers external (SAML) logins (`cas-support=yes`) unless `--no-external-auth`.
#[test]
fn our_client_offers_external_auth_unless_told_not_to() {
    let gp = start("gp-ours-no-external-auth", &[], false);
    gp.run_client(&["--non-inter", "--no-external-auth"], "wrong\n");
    let gateway = gp.gateway_log();
    assert!(gateway.contains("body \"\" user-agent"), "{gateway}");
    assert!(!gateway.contains("cas-support"), "{gateway}");
    gp.run_client(&["--non-inter"], "wrong\n");
    assert!(
        gp.gateway_log().contains("body \"cas-support=yes\""),
        "{}",
        gp.gateway_log()
    );
}

/// `--esp-junk`: as the ESP tunnel starts the gateway's port sends the client an empty
/// datagram, a truncated one, an unknown SPI, a forged ICV and a replay. The tunnel goes on
/// over UDP; our client counts each drop by reason (SIGUSR1's line).
fn survives_hostile_esp(test: &str, real_client: bool) {
    let mut gp = start(test, &["--esp-junk"], real_client);
    let pid = gp.spawn_client(&[]);
    assert_esp_tunnel_up(&gp);
    assert!(
        gp.gateway_log().contains("sent 6 hostile ESP datagrams"),
        "{}",
        gp.logs()
    );
    gp.lab.assert_pings_over_udp(10);
    if !real_client {
        gp.lab.signal_client(pid, "USR1");
        let client = gp.lab.wait_for_log("client.log", "ESP dropped", SECS(5));
        assert!(
            client.contains(
                "ESP dropped 4 (malformed 1, unknown SPI 1, replayed 1, too old 0, bad ICV 1, \
                 bad trailer 0, bad LZO 0)"
            ),
            "{client}"
        );
    }
    gp.disconnect(pid, LOGGED_OUT);
}

#[test]
fn debian_openconnect_survives_hostile_esp() {
    survives_hostile_esp("gp-esp-junk", true);
}

#[test]
fn our_client_counts_and_drops_hostile_esp() {
    survives_hostile_esp("gp-ours-esp-junk", false);
}
