//! `--protocol=f5` against our F5 BIG-IP APM test gateway (`src/bin/f5_gateway/`):
//! Debian's openconnect 9.01 proves the gateway — the HTML logon form (with the `domain`
//! select as authgroup), the second-factor form, the script-built logon page (through
//! 9.01's username/password fallback; the JSON itself is checked against upstream's
//! reading in the gateway's unit tests), the XML configuration, the cookie-less
//! tunnel request, PPP in F5 framing and in HDLC framing over TLS, PPP over DTLS 1.2 and
//! 1.0, the fall-back to TLS when the gateway refuses DTLS, ping and iperf3 through the
//! tunnel, the hangup — and the gateway's own refusals are checked on the wire.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ferroconnect_interop::gateway::MAX_ASSOCIATIONS;
use ferroconnect_interop::gateway_lab::{GatewayLab, Vendor, PASSWORD};
use ferroconnect_interop::output_text;
use std::time::Duration;

const SECS: fn(u64) -> Duration = Duration::from_secs;

const CODE: &str = "123456";
const DNS_SUFFIX: &str = "example.test";
/// What the gateway logs when a client hangs up.
const HUNG_UP: &str = "hangup: session forgotten";

/// A lab with the gateway started with a DNS suffix, a log file (`gateway.file.log`) and
/// `extra` options; the client is Debian's openconnect when `real_client`, else ours.
fn start(test: &str, extra: &[&str], real_client: bool) -> GatewayLab {
    let mut f5 = GatewayLab::new(test, Vendor::F5, real_client);
    let log = f5.lab.dir.join("gateway.file.log").display().to_string();
    let mut args = vec!["--dns-suffix", DNS_SUFFIX, "--log", &log];
    args.extend_from_slice(extra);
    f5.start_gateway(&args);
    f5
}

/// [`GatewayLab::assert_tunnel_up`], and what F5 adds: LAN0 became the one split-include
/// route (a /32) and DNSSuffix0 the search domain, and the tunnel request carried no
/// cookies (the session and Z in its query say who).
fn assert_f5_tunnel_up(f5: &GatewayLab) {
    let env = f5.assert_tunnel_up();
    let get = |name: &str| env.get(name).map(String::as_str);
    assert_eq!(get("CISCO_SPLIT_INC_0_MASKLEN"), Some("32"), "{env:?}");
    assert_eq!(get("CISCO_DEF_DOMAIN"), Some(DNS_SUFFIX), "{env:?}");
    let gateway = f5.gateway_log();
    assert!(
        gateway.contains("cookies=none"),
        "the tunnel request carried cookies:\n{gateway}"
    );
}

/// PPP over TLS (`--no-dtls`: `tunnel_dtls=0`).
#[test]
fn debian_openconnect_logs_in_and_passes_traffic_through_the_f5_gateway() {
    // Two domains in the logon form's select: `--authgroup` picks the second.
    let domains = ["--domain", "corp", "--domain", "lab", "--no-dtls"];
    let mut f5 = start("f5-traffic", &domains, true);
    let pid = f5.spawn_client(&["--authgroup", "lab"]);
    assert_f5_tunnel_up(&f5);
    let gateway = f5.gateway_log();
    assert!(
        gateway
            .contains("policy form: domain=lab&username=alice&password=<11 bytes>&vhost=standard"),
        "openconnect did not post the form as expected:\n{gateway}"
    );
    assert!(
        gateway.contains("login accepted for user \"alice\" (domain Some(\"lab\"))"),
        "{gateway}"
    );
    assert!(
        gateway.contains("hdlc_framing=no ipv4=yes ipv6=no"),
        "{gateway}"
    );
    assert!(gateway.contains("(F5 encapsulation)"), "{gateway}");

    for direction in ["", "-R"] {
        f5.assert_iperf_moves_a_megabyte(direction);
    }
    let client = f5.lab.log("client.log");
    assert!(
        !client.contains("Unexpected pre-PPP packet header"),
        "{client}"
    );

    // SIGINT: openconnect ends PPP (Terminate-Request, acknowledged), closes the tunnel
    // connection, calls hangup.php3 on a new one and exits 0.
    let gateway = f5.disconnect(pid, HUNG_UP);
    assert!(gateway.contains("PPP closed: ByPeer"), "{gateway}");
    assert!(gateway.contains("then closed by the client"), "{gateway}");
    assert!(
        gateway.contains("GET /vdesk/hangup.php3?hangup_error=1"),
        "{gateway}"
    );
    // `--log FILE` got the same lines as stderr.
    assert!(f5.lab.log("gateway.file.log").contains(HUNG_UP));
}

/// HDLC framing over TLS. The gateway offers DTLS too, but openconnect 9.01 will not run
/// HDLC over it (it cannot size packets whose framing may double them) and says so.
#[test]
fn debian_openconnect_over_hdlc_framing() {
    let mut f5 = start("f5-hdlc", &["--hdlc"], true);
    f5.spawn_client(&[]);
    assert_f5_tunnel_up(&f5);
    assert!(
        f5.lab
            .log("client.log")
            .contains("Server enables DTLS, but also requires HDLC. Disabling DTLS"),
        "{}",
        f5.logs()
    );
    let gateway = f5.gateway_log();
    assert!(
        gateway.contains("hdlc_framing=yes ipv4=yes ipv6=no"),
        "{gateway}"
    );
    assert!(gateway.contains("(F5 HDLC encapsulation)"), "{gateway}");
    // Bulk data from the gateway: many frames a read, flag and escape bytes in them.
    f5.assert_iperf_moves_a_megabyte("-R");
    // openconnect 9.01 drops a frame that goes on in the next TLS record (and says so):
    // the gateway must write whole frames into each record.
    let client = f5.lab.log("client.log");
    assert!(
        !client.contains("HDLC buffer ended") && !client.contains("Bad HDLC packet FCS"),
        "openconnect dropped frames:\n{}",
        client.lines().take(40).collect::<Vec<_>>().join("\n")
    );
}

/// DTLS on (`tunnel_dtls=1` and `dtls_v1_2_supported=1`, as a BIG-IP from v16 on): openconnect
/// 9.01 does the certificate handshake in DTLS 1.2, sends its tunnel request as one record,
/// gets `200 OK` with its address and runs PPP over DTLS only; ping and iperf3 both ways
/// come as datagrams; SIGINT ends PPP on DTLS and hangs up.
#[test]
fn debian_openconnect_tunnels_ppp_over_dtls_through_the_f5_gateway() {
    let mut f5 = start("f5-dtls", &[], true);
    let pid = f5.spawn_client(&[]);
    assert_f5_dtls_tunnel_up(&f5, "DTLSv1.2", "(DTLS1.2)");
    for direction in ["", "-R"] {
        f5.assert_iperf_moves_a_megabyte_over_udp(direction);
    }
    let gateway = f5.disconnect(pid, HUNG_UP);
    assert!(gateway.contains("PPP closed: ByPeer"), "{gateway}");
}

/// `--dtls10` (no `dtls_v1_2_supported`, as a BIG-IP before v16) and DTLS on its own port:
/// openconnect 9.01 offers DTLS 1.0 only, to that port, and the tunnel runs over it.
#[test]
fn debian_openconnect_tunnels_ppp_over_dtls_1_0_on_its_own_port() {
    let mut f5 = start("f5-dtls10", &["--dtls10", "--dtls-port", "4433"], true);
    let pid = f5.spawn_client(&[]);
    assert_f5_dtls_tunnel_up(&f5, "DTLSv1", "(DTLS1.0)");
    let client = f5.lab.log("client.log");
    assert!(client.contains("DTLS is enabled on port 4433"), "{client}");
    assert!(
        f5.gateway_log()
            .contains(&format!("DTLS on udp://{}:4433", f5.lab.server_ip)),
        "{}",
        f5.gateway_log()
    );
    for direction in ["", "-R"] {
        f5.assert_iperf_moves_a_megabyte_over_udp(direction);
    }
    f5.disconnect(pid, HUNG_UP);
}

/// `--dtls-refuse`: the handshake completes but the tunnel request over DTLS gets the 504;
/// openconnect 9.01 closes DTLS (to try again later), asks for the tunnel over TLS, and
/// traffic passes.
#[test]
fn debian_openconnect_falls_back_to_tls_when_the_f5_gateway_refuses_dtls() {
    let mut f5 = start("f5-dtls-refused", &["--dtls-refuse"], true);
    let pid = f5.spawn_client(&[]);
    assert_f5_tunnel_up(&f5);
    for direction in ["", "-R"] {
        f5.assert_iperf_moves_a_megabyte(direction);
    }
    let client = f5.lab.log("client.log");
    for line in [
        "Established DTLS connection (using GnuTLS)",
        "Failed to connect DTLS tunnel; using HTTPS instead",
        &format!(
            "Configured as {}, with SSL connected and DTLS in progress",
            f5.client_addr
        ),
    ] {
        assert!(client.contains(line), "no {line:?}:\n{}", f5.logs());
    }
    let gateway = f5.gateway_log();
    assert!(gateway.contains("refused: --dtls-refuse"), "{gateway}");
    assert!(gateway.contains("-> 201 Created"), "{gateway}");
    assert!(gateway.contains("(F5 encapsulation)"), "{gateway}");
    f5.disconnect(pid, HUNG_UP);
}

/// The tunnel request over DTLS is read and checked as over TLS: one for an unknown session
/// gets the 504 in a record, one too long for the gateway's limits the codec's refusal, a
/// PPP frame before it nothing (the association is dropped); each is logged. Handshakes
/// beyond the bound on associations are ignored. Then openconnect 9.01 tunnels over DTLS.
#[test]
fn hostile_dtls_tunnel_requests_are_refused_and_the_f5_gateway_serves_on() {
    let mut f5 = start("f5-dtls-hostile", &[], true);
    let request = |target: &str| format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
    let unknown = request("/myvpn?sess=0123&hdlc_framing=no&ipv4=yes&ipv6=no&Z=ab&hostname=dm0=");
    let answer = String::from_utf8_lossy(&f5.dtls_exchange(&[unknown.as_bytes()])).into_owned();
    assert!(
        answer.starts_with("HTTP/1.1 504 Gateway Timeout\r\n"),
        "{answer:?}"
    );
    let long = request(&format!("/myvpn?sess={}", "0".repeat(4000)));
    let answer = String::from_utf8_lossy(&f5.dtls_exchange(&[long.as_bytes()])).into_owned();
    assert!(answer.starts_with("HTTP/1.1 414 "), "{answer:?}");
    let frame = [0xf5, 0x00, 0x00, 0x06, 0xc0, 0x21, 0x01, 0x01, 0x00, 0x04];
    assert!(f5.dtls_exchange(&[&frame]).is_empty());
    let gateway = f5
        .lab
        .wait_for_log("gateway.log", "is not the greeting", SECS(5));
    assert!(
        gateway.contains("refused: HTTP 504 Gateway Timeout"),
        "{gateway}"
    );
    assert!(gateway.contains("refused: HTTP 414"), "{gateway}");

    // More handshakes at once than the gateway keeps associations: the extra ones are
    // ignored; the silent ones are dropped when their time for a greeting is up.
    let many = format!(
        "for i in $(seq {}); do sleep 4 | timeout 6 openssl s_client -dtls1_2 -quiet \
         -connect {}:443 >/dev/null 2>&1 & done; wait",
        MAX_ASSOCIATIONS + 4,
        f5.lab.server_ip
    );
    f5.lab.in_client(&many);
    f5.lab.wait_for_log_count(
        "gateway.log",
        "no DTLS handshake and greeting within",
        MAX_ASSOCIATIONS,
        SECS(15),
    );
    assert!(
        f5.gateway_log().contains(&format!(
            "DTLS ClientHello ignored: {MAX_ASSOCIATIONS} associations already"
        )),
        "{}",
        f5.gateway_log()
    );

    let pid = f5.spawn_client(&[]);
    assert_f5_dtls_tunnel_up(&f5, "DTLSv1.2", "(DTLS1.2)");
    f5.disconnect(pid, HUNG_UP);
}

/// [`assert_f5_tunnel_up`] over DTLS ([`GatewayLab::assert_dtls_tunnel_up`]): the gateway's
/// handshake was `gateway_version`, openconnect's ciphersuite names `client_version`, and
/// the tunnel request came over DTLS.
fn assert_f5_dtls_tunnel_up(f5: &GatewayLab, gateway_version: &str, client_version: &str) {
    assert_f5_tunnel_up(f5);
    f5.assert_dtls_tunnel_up(gateway_version);
    let client = f5.lab.log("client.log");
    assert!(
        client.contains(&format!("Ciphersuite {client_version}")),
        "{client}"
    );
    let gateway = f5.gateway_log();
    assert!(gateway.contains("over DTLS: GET /myvpn?sess="), "{gateway}");
    assert!(
        gateway.contains("(F5 encapsulation over DTLS)"),
        "{gateway}"
    );
    assert!(!gateway.contains("-> 201 Created"), "{gateway}");
}

/// openconnect 9.01 keys `-F` on the form's `id` (`auth_form`, not its name `e1`), so the
/// second form's `_F5_challenge` is answered without a prompt.
#[test]
fn debian_openconnect_answers_a_second_factor_form() {
    let mut f5 = start("f5-code", &["--otp", CODE], true);

    // A wrong code from -F is posted again for every new form: after three the gateway
    // ends the policy session, the logon page comes back, and without a terminal
    // openconnect cannot give the password a second time.
    let text = wrong_codes_end_the_policy_session(&f5);
    assert!(text.contains("Enter the code from your token"), "{text}");
    assert!(
        text.contains("User input required in non-interactive mode"),
        "{text}"
    );

    // The right code, non-interactively.
    answers_the_code_from_a_form_entry(&mut f5);
    assert!(
        f5.gateway_log()
            .contains("policy form: _F5_challenge=<6 bytes>&vhost=standard"),
        "{}",
        f5.gateway_log()
    );
}

/// A wrong code from `-F` (the password on stdin) is posted again for every new form:
/// after three the gateway ends the policy session and the logon page comes back, where
/// the client, without a terminal, cannot give the password a second time: exit 1, no
/// tunnel. The client's output.
fn wrong_codes_end_the_policy_session(f5: &GatewayLab) -> String {
    let wrong = ["--non-inter", "-F", "auth_form:_F5_challenge=654321"];
    let out = f5.run_client(&wrong, &format!("{PASSWORD}\n"));
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", f5.gateway_log());
    let gateway = f5.gateway_log();
    assert!(
        gateway.contains("code refused for user \"alice\": wrong code (3 of 3)"),
        "{gateway}"
    );
    assert!(
        gateway.contains("too many wrong codes; the policy session ended"),
        "{gateway}"
    );
    assert!(!gateway.contains("GET /myvpn"), "{gateway}");
    text
}

/// The right code from `-F auth_form:_F5_challenge=CODE`, the password on stdin, brings
/// the tunnel up.
fn answers_the_code_from_a_form_entry(f5: &mut GatewayLab) {
    let entry = format!("auth_form:_F5_challenge={CODE}");
    f5.spawn_client(&["--non-inter", "-F", &entry]);
    assert_f5_tunnel_up(f5);
    let gateway = f5.gateway_log();
    assert!(
        gateway.contains("password accepted for user \"alice\" (domain None); code form sent"),
        "{gateway}"
    );
    assert!(
        gateway.contains("code accepted for user \"alice\""),
        "{gateway}"
    );
}

/// What `--json-login` logs when it starts.
const SCRIPT_BUILT: &str = "logon pages script-built (JSON)";

/// `--json-login`: the logon page has no `<form>`, a script builds it from
/// `appLoader.configure({...})` JSON (BIG-IP's modern pages). openconnect 9.01 predates
/// reading that JSON (v9.10) and says it found no form, but its fallback, a username and
/// a password field posted to the page's URL, is what the page asks: it logs in and the
/// tunnel comes up.
#[test]
fn debian_openconnect_logs_in_through_a_script_built_logon_page() {
    let mut f5 = start("f5-json", &["--json-login"], true);
    let pid = f5.spawn_client(&[]);
    assert_f5_tunnel_up(&f5);
    let client = f5.lab.log("client.log");
    assert!(
        client.contains("no HTML login form found; assuming username and password fields"),
        "{client}"
    );
    let gateway = f5.gateway_log();
    assert!(gateway.contains(SCRIPT_BUILT), "{gateway}");
    assert!(
        gateway.contains("policy form: username=alice&password=<11 bytes>\n"),
        "{gateway}"
    );
    f5.disconnect(pid, HUNG_UP);
}

/// A script-built second factor is beyond openconnect 9.01: past the first page it looks
/// for an HTML form only, finds none and gives up (exit 1) without posting a code. (From
/// v9.10 openconnect reads the JSON on every page; our client does, below.)
#[test]
fn debian_openconnect_9_01_cannot_read_a_script_built_second_factor() {
    let f5 = start("f5-json-code", &["--json-login", "--otp", CODE], true);
    let entry = format!("auth_form:_F5_challenge={CODE}");
    let out = f5.run_client(&["--non-inter", "-F", &entry], &format!("{PASSWORD}\n"));
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", f5.gateway_log());
    assert!(text.contains("Cannot handle form method"), "{text}");
    let gateway = f5.gateway_log();
    assert!(gateway.contains("code form sent"), "{gateway}");
    assert_eq!(gateway.matches("POST /my.policy").count(), 1, "{gateway}");
    f5.assert_script_did_not_run();
}

/// The gateway answers a wrong password with the logon page and its error; openconnect
/// shows the error, asks for the password again and, being non-interactive, exits 1.
#[test]
fn wrong_password_gets_the_form_again_and_a_non_interactive_client_gives_up() {
    let f5 = start("f5-refused", &[], true);
    let out = f5.run_client(&["--non-inter"], "not the password\n");
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("The username or password is not correct. Please try again."),
        "{text}"
    );
    assert!(
        text.contains("User input required in non-interactive mode"),
        "{text}"
    );
    assert!(text.contains("Failed to complete authentication"), "{text}");
    let gateway = f5.gateway_log();
    assert_eq!(gateway.matches("POST /my.policy").count(), 1, "{gateway}");
    assert!(
        gateway.contains("login refused for user \"alice\": wrong credentials"),
        "{gateway}"
    );
    assert!(!gateway.contains("GET /vdesk/vpn/"), "{gateway}");
    assert!(!gateway.contains("GET /myvpn"), "{gateway}");
    f5.assert_script_did_not_run();
}

/// What the gateway does with tunnel requests it cannot place, seen on the wire: an
/// unknown session gets `504` and the connection is closed; the wrong framing `400`.
#[test]
fn tunnel_requests_for_unknown_sessions_get_504_and_the_connection_closes() {
    let f5 = start("f5-504", &[], true);
    let request = |query: &str| {
        let cmd = format!(
            "printf 'GET /myvpn?{query} HTTP/1.1\\r\\nHost: {ip}\\r\\n\\r\\n' | \
             timeout 10 openssl s_client -quiet -connect {ip}:443 2>/dev/null",
            ip = f5.lab.server_ip
        );
        let out = f5.lab.in_client(&cmd);
        // `timeout` exits 124 if the gateway kept the connection open.
        assert_ne!(out.status.code(), Some(124), "the connection stayed open");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let answer = request("sess=0123&hdlc_framing=no&ipv4=yes&ipv6=no&Z=abcd&hostname=dm0=");
    assert!(
        answer.starts_with("HTTP/1.1 504 Gateway Timeout\r\n"),
        "{answer}"
    );
    let answer = request("sess=0123&hdlc_framing=yes&ipv4=yes&ipv6=no&Z=abcd&hostname=dm0=");
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    let gateway = f5.gateway_log();
    assert!(
        gateway.contains("tunnel refused: UnknownSession"),
        "{gateway}"
    );
    assert!(gateway.contains("hdlc_framing is not no"), "{gateway}");
    assert!(!gateway.contains("starting PPP"), "{gateway}");
}

#[test]
fn our_client_logs_in_and_passes_traffic_through_the_f5_gateway() {
    let mut f5 = start("f5-ours", &["--domain", "corp", "--domain", "lab"], false);
    let pid = f5.spawn_client(&["--authgroup", "lab"]);
    assert_f5_tunnel_up(&f5);
    assert!(
        f5.gateway_log().contains("domain=lab"),
        "{}",
        f5.gateway_log()
    );
    f5.assert_iperf_moves_a_megabyte("");
    f5.assert_iperf_moves_a_megabyte("-R");
    f5.disconnect(pid, HUNG_UP);
}

/// HDLC framing (the gateway also offering DTLS): our client leaves DTLS off, as upstream,
/// and runs HDLC over TLS.
#[test]
fn our_client_over_hdlc_framing() {
    let mut f5 = start("f5-ours-hdlc", &["--hdlc"], false);
    f5.spawn_client(&[]);
    assert_f5_tunnel_up(&f5);
    assert!(
        f5.gateway_log().contains("hdlc_framing=yes"),
        "{}",
        f5.gateway_log()
    );
    let client = f5.lab.log("client.log");
    assert!(
        client.contains("Server enables DTLS, but also requires HDLC. Disabling DTLS"),
        "{client}"
    );
    f5.assert_iperf_moves_a_megabyte("");
    f5.assert_iperf_moves_a_megabyte("-R");
}

#[test]
fn our_client_answers_the_second_factor_form_from_a_form_entry() {
    let mut f5 = start("f5-ours-code", &["--otp", CODE], false);
    answers_the_code_from_a_form_entry(&mut f5);
}

/// `--json-login --otp`: our client reads both script-built pages as upstream from v9.10
/// does (the form `auth_form` from the JSON, its title shown): the logon page's username
/// and password, then the code page, whose one password field is the second factor. Wrong
/// codes are refused (exit 1); the right one from `-F` brings the tunnel up.
#[test]
fn our_client_logs_in_through_script_built_pages_and_their_second_factor() {
    let mut f5 = start("f5-ours-json", &["--json-login", "--otp", CODE], false);
    let text = wrong_codes_end_the_policy_session(&f5);
    assert!(
        text.contains("The code is not correct. Please try again."),
        "{text}"
    );
    assert!(
        text.contains("User input required in non-interactive mode"),
        "{text}"
    );
    answers_the_code_from_a_form_entry(&mut f5);
    let gateway = f5.gateway_log();
    assert!(gateway.contains(SCRIPT_BUILT), "{gateway}");
    for posted in [
        "policy form: username=alice&password=<11 bytes>\n",
        "policy form: _F5_challenge=<6 bytes>\n",
    ] {
        assert!(gateway.contains(posted), "no {posted:?}:\n{gateway}");
    }
    let client = f5.lab.log("client.log");
    assert!(
        client.contains("Enter the code from your token"),
        "{client}"
    );
}

/// NetworkManager's two steps: `--authenticate` prints the session cookies, which then bring
/// the tunnel up from standard input.
#[test]
fn our_client_authenticates_then_connects_with_the_cookie() {
    let mut f5 = start("f5-ours-cookie", &[], false);
    let cookie = f5.authenticate();
    assert!(
        cookie.contains("MRHSession=") && cookie.contains("F5_ST="),
        "{cookie}"
    );
    assert!(!f5.gateway_log().contains("GET /myvpn"));
    f5.spawn_with_cookie(&cookie);
    assert_f5_tunnel_up(&f5);
}

/// SIGUSR2: our client reopens the tunnel with the same session id, PPP comes up again with
/// the same address, and the script runs its reconnect reasons.
#[test]
fn our_client_reconnects_with_the_same_session() {
    // The TLS tunnel request is what is counted.
    let mut f5 = GatewayLab::start("f5-ours-reconnect", Vendor::F5, &["--no-dtls"], false);
    let pid = f5.spawn_client(&[]);
    f5.assert_tunnel_up();
    f5.assert_reconnects(pid, "GET /myvpn");
}

/// IPv6 over PPP end to end: the gateway offers IPv6 (`IPV6_0=1`, `X-VPN-client-IPv6`, an
/// IPv6 split route); the client negotiates IPV6CP, the script gives the tun device the
/// address and the route, and ping6 reaches an IPv6 host behind the gateway. Debian's
/// openconnect first, then ours.
fn carries_ipv6(test: &str, real_client: bool) {
    let mut f5 = GatewayLab::new(test, Vendor::F5, real_client);
    // The lab's own /64s, from its pool's third byte (unique per lab).
    let n = f5.lab.pool.split('.').nth(2).unwrap().to_string();
    let (gateway6, client6, behind6) = (
        format!("fd00:{n}::1"),
        format!("fd00:{n}::2"),
        format!("fd01:{n}::1"),
    );
    let added = f5
        .lab
        .in_server(&format!("ip -6 addr add {behind6}/128 dev lo nodad"));
    assert!(added.status.success(), "{}", output_text(&added));
    let route6 = format!("{behind6}/128");
    f5.start_gateway(&[
        "--tunnel-addr6",
        &gateway6,
        "--client-addr6",
        &client6,
        "--route6",
        &route6,
    ]);
    f5.spawn_client(&[]);
    f5.assert_tunnel_up();
    let env = f5.lab.env_file("connect");
    assert_eq!(
        env.get("INTERNAL_IP6_ADDRESS").map(String::as_str),
        Some(client6.as_str()),
        "{env:?}"
    );
    assert_eq!(
        env.get("CISCO_IPV6_SPLIT_INC_0_ADDR").map(String::as_str),
        Some(behind6.as_str()),
        "{env:?}"
    );
    let answered = (0..20).any(|_| {
        let ping = f5.lab.in_client(&format!("ping -6 -c 1 -W 1 {behind6}"));
        ping.status.success() || {
            std::thread::sleep(Duration::from_millis(500));
            false
        }
    });
    assert!(answered, "no IPv6 through the tunnel:\n{}", f5.logs());
    assert!(
        f5.gateway_log().contains("ip -6 addr replace"),
        "{}",
        f5.gateway_log()
    );
}

#[test]
fn debian_openconnect_carries_ipv6_over_ipv6cp() {
    carries_ipv6("f5-v6-debian", true);
}

#[test]
fn our_client_carries_ipv6_over_ipv6cp() {
    carries_ipv6("f5-v6-ours", false);
}

/// Our client over DTLS 1.2: the tunnel request as one record, `200 OK`, PPP over DTLS
/// only; traffic both ways as datagrams; SIGINT ends PPP on DTLS and hangs up.
#[test]
fn our_client_tunnels_ppp_over_dtls_through_the_f5_gateway() {
    let mut f5 = start("f5-ours-dtls", &[], false);
    let pid = f5.spawn_client(&[]);
    assert_f5_dtls_tunnel_up(&f5, "DTLSv1.2", "DTLSv1.2-");
    for direction in ["", "-R"] {
        f5.assert_iperf_moves_a_megabyte_over_udp(direction);
    }
    let gateway = f5.disconnect(pid, HUNG_UP);
    assert!(gateway.contains("PPP closed: ByPeer"), "{gateway}");
}

/// `--dtls10 --dtls-port 4433` (a BIG-IP before v16): our client offers DTLS 1.0 only, to
/// that port, and the tunnel runs over it.
#[test]
fn our_client_tunnels_ppp_over_dtls_1_0_on_its_own_port() {
    let mut f5 = start(
        "f5-ours-dtls10",
        &["--dtls10", "--dtls-port", "4433"],
        false,
    );
    f5.spawn_client(&[]);
    assert_f5_dtls_tunnel_up(&f5, "DTLSv1", "DTLSv1-");
    let client = f5.lab.log("client.log");
    assert!(client.contains("DTLS is enabled on port 4433"), "{client}");
    f5.assert_iperf_moves_a_megabyte_over_udp("-R");
}

/// `--dtls-refuse` (504 over DTLS): our client leaves DTLS for a later try, asks for the
/// tunnel over TLS and traffic passes.
#[test]
fn our_client_falls_back_to_tls_when_the_f5_gateway_refuses_dtls() {
    let mut f5 = start("f5-ours-dtls-refused", &["--dtls-refuse"], false);
    let pid = f5.spawn_client(&[]);
    assert_f5_tunnel_up(&f5);
    f5.assert_iperf_moves_a_megabyte("-R");
    let client = f5.lab.log("client.log");
    for line in [
        "Established DTLS connection (using OpenSSL)",
        "the F5 gateway refused the tunnel session (HTTP 504)",
        "Failed to connect DTLS tunnel; using HTTPS instead",
        &format!(
            "Configured as {}, with SSL connected and DTLS in progress",
            f5.client_addr
        ),
    ] {
        assert!(client.contains(line), "no {line:?}:\n{}", f5.logs());
    }
    assert!(f5.gateway_log().contains("-> 201 Created"));
    f5.disconnect(pid, HUNG_UP);
}
