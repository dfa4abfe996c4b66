//! `--protocol=fortinet` against our FortiGate test gateway (`src/bin/fortinet_gateway.rs`):
//! Debian's openconnect 9.01 first proves the gateway (login with and without the token
//! challenge or the HTML token form, the XML configuration, PPP over TLS and over DTLS, the fall-back to TLS when
//! the gateway refuses DTLS, ping and iperf3 through the tunnel, hostile datagrams), then our
//! client passes the same tests against it, plus the two-step NetworkManager flow.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ferroconnect_interop::gateway_lab::{GatewayLab, Vendor, PASSWORD};
use std::time::Duration;

use ferroconnect_interop::output_text;

const SECS: fn(u64) -> Duration = Duration::from_secs;

const TOKEN: &str = "123456";
/// What the gateway logs when a client logs out.
const LOGGED_OUT: &str = "logout: cookie forgotten";

/// A lab with the gateway started with `extra` options; the client is Debian's openconnect
/// when `real_client`, else ours.
fn start(test: &str, extra: &[&str], real_client: bool) -> GatewayLab {
    GatewayLab::start(test, Vendor::Fortinet, extra, real_client)
}

/// The client logs in and brings the tunnel up (the gateway started with `extra`); TCP moves
/// a megabyte each way; SIGINT ends PPP, logs out (`/remote/logout`) and exits 0, the script
/// having run its three reasons.
fn logs_in_and_passes_traffic(test: &str, extra: &[&str], real_client: bool) {
    let mut forti = start(test, extra, real_client);
    let pid = forti.spawn_client(&[]);
    forti.assert_tunnel_up();
    for direction in ["", "-R"] {
        forti.assert_iperf_moves_a_megabyte(direction);
    }
    forti.disconnect(pid, LOGGED_OUT);
}

/// A wrong code (the client run with `rest` and `stdin`) is refused: the client gives up
/// (exit 1) and never asks for the tunnel.
fn assert_wrong_code_refused(forti: &GatewayLab, rest: &[&str], stdin: &str) {
    let out = forti.run_client(rest, stdin);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let gateway = forti.gateway_log();
    assert!(gateway.contains("token challenge sent"), "{gateway}");
    assert!(
        gateway.contains("token refused for user \"alice\": wrong code"),
        "{gateway}"
    );
    assert!(!gateway.contains("GET /remote/sslvpn-tunnel"), "{gateway}");
}

/// The right code, non-interactively (`-F FORM:FIELD=VALUE`), brings the tunnel up.
fn answers_the_token_from_a_form_entry(forti: &mut GatewayLab) {
    let entry = format!("_challenge:code={TOKEN}");
    forti.spawn_client(&["--non-inter", "-F", &entry]);
    forti.assert_tunnel_up();
    let gateway = forti.gateway_log();
    assert!(
        gateway.contains("token accepted for user \"alice\""),
        "{gateway}"
    );
}

/// What the gateway logs when it sends the token challenge as an HTML form.
const HTML_FORM_SENT: &str = "token challenge sent as an HTML form (401";
/// The HTML form's id for `-F`: upstream's `parse_form_node` reads no id for Fortinet and
/// names every such form `unknown`.
const HTML_FORM: &str = "unknown";

/// `--otp --html-2fa`: a wrong code is refused (the client run with `rest` and `stdin`,
/// [`assert_wrong_code_refused`]); then the right one from `-F unknown:credential=CODE`
/// brings the tunnel up. The gateway saw the HTML form's hidden fields come back with the
/// code as `credential`, and the form's `ajax=1&just_logged_in=1` after the realm.
fn answers_the_html_form(forti: &mut GatewayLab, rest: &[&str], stdin: &str) {
    assert_wrong_code_refused(forti, rest, stdin);
    assert!(
        forti.gateway_log().contains(HTML_FORM_SENT),
        "{}",
        forti.logs()
    );
    let entry = format!("{HTML_FORM}:credential={TOKEN}");
    forti.spawn_client(&["--non-inter", "-F", &entry]);
    forti.assert_tunnel_up();
    let gateway = forti.gateway_log();
    assert!(
        gateway.contains("token accepted for user \"alice\""),
        "{gateway}"
    );
    let posted = gateway
        .lines()
        .rev()
        .find(|l| l.contains("logincheck form: magic="))
        .unwrap_or_else(|| panic!("no post of the HTML form:\n{gateway}"));
    for part in [
        "&username=alice&reqid=",
        "&grpid=0,",
        "&credential=<6 bytes>&realm=&ajax=1&just_logged_in=1",
    ] {
        assert!(posted.contains(part), "no {part:?} in {posted}");
    }
}

/// A wrong password, non-interactively: one login post, refused with 405, the client gives
/// up (exit 1) before the configuration and no script runs. The client's output.
fn wrong_password_is_refused(test: &str, real_client: bool) -> String {
    let forti = start(test, &[], real_client);
    let out = forti.run_client(&["--non-inter"], "not the password\n");
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let gateway = forti.gateway_log();
    assert_eq!(
        gateway.matches("POST /remote/logincheck").count(),
        1,
        "{gateway}"
    );
    assert!(
        gateway.contains("login refused for user \"alice\": wrong credentials"),
        "{gateway}"
    );
    assert!(gateway.contains("-> 405 Method Not Allowed"), "{gateway}");
    assert!(
        !gateway.contains("GET /remote/fortisslvpn_xml"),
        "{gateway}"
    );
    forti.assert_script_did_not_run();
    text
}

/// PPP over TLS: without DTLS in the configuration openconnect 9.01 asks for the tunnel on
/// `/remote/sslvpn-tunnel`.
#[test]
fn debian_openconnect_logs_in_and_passes_traffic_through_the_fortinet_gateway() {
    logs_in_and_passes_traffic("forti-traffic", &["--no-dtls"], true);
}

/// DTLS on (as FortiGates ship): the client does the certificate handshake on UDP 443
/// (checking the certificate as for HTTPS: the pin), names its session in a `clthello`, gets
/// `svrhello ok` and runs PPP over DTLS only (it never asks for the tunnel over TLS); ping
/// and iperf3 both ways come as datagrams; SIGINT ends PPP on DTLS and logs out.
fn tunnels_ppp_over_dtls(test: &str, real_client: bool) {
    let mut forti = start(test, &[], real_client);
    let pid = forti.spawn_client(&[]);
    forti.assert_dtls_tunnel_up("DTLSv1.2");
    for direction in ["", "-R"] {
        forti.assert_iperf_moves_a_megabyte_over_udp(direction);
    }
    let client = forti.lab.log("client.log");
    assert!(client.contains("DTLS is enabled on port 443"), "{client}");
    let gateway = forti.gateway_log();
    assert!(
        gateway.contains("(Fortinet encapsulation over DTLS)"),
        "{gateway}"
    );
    assert!(!gateway.contains("GET /remote/sslvpn-tunnel"), "{gateway}");
    let gateway = forti.disconnect(pid, LOGGED_OUT);
    assert!(gateway.contains("PPP closed: ByPeer"), "{gateway}");
}

#[test]
fn debian_openconnect_tunnels_ppp_over_dtls_through_the_fortinet_gateway() {
    tunnels_ppp_over_dtls("forti-dtls", true);
}

/// `--dtls-refuse`: the handshake completes but the `clthello` gets `svrhello fail`;
/// openconnect 9.01 gives up on DTLS for now (it means to disable it, but its caller's
/// `dtls_close` puts it back to sleeping, to be tried again after a minute) and runs PPP
/// over TLS, and traffic passes.
#[test]
fn debian_openconnect_falls_back_to_tls_when_the_fortinet_gateway_refuses_dtls() {
    let mut forti = start("forti-dtls-refused", &["--dtls-refuse"], true);
    let pid = forti.spawn_client(&[]);
    forti.assert_tunnel_up();
    for direction in ["", "-R"] {
        forti.assert_iperf_moves_a_megabyte(direction);
    }
    let client = forti.lab.log("client.log");
    for line in [
        "Established DTLS connection (using GnuTLS)",
        "svrhello status was \"fail\" rather than \"ok\"",
        "Failed to connect DTLS tunnel; using HTTPS instead",
        &format!(
            "Configured as {}, with SSL connected and DTLS in progress",
            forti.client_addr
        ),
    ] {
        assert!(client.contains(line), "no {line:?}:\n{}", forti.logs());
    }
    let gateway = forti.gateway_log();
    assert!(gateway.contains("refused: --dtls-refuse"), "{gateway}");
    assert!(gateway.contains("GET /remote/sslvpn-tunnel"), "{gateway}");
    assert!(
        gateway.contains("(no HTTP answer, as a FortiGate)"),
        "{gateway}"
    );
    forti.disconnect(pid, LOGGED_OUT);
}

/// One session, the client's tunnel moving between DTLS and TLS, one tunnel at a time.
/// UDP blocked under a DTLS tunnel (its sends refused): the client gives up DTLS and asks
/// for the tunnel over TLS (for the script a reconnect), which replaces the DTLS one at the
/// gateway. UDP back: a minute after its last DTLS attempt it tries again, the greeting is
/// accepted, the DTLS tunnel replaces the TLS one, the client closes its TLS connection
/// (upstream's `exiting HTTPS mainloop`), and the move back is no reconnect for the script.
fn moves_its_tunnel_between_dtls_and_tls(test: &str, real_client: bool) {
    let mut forti = start(test, &[], real_client);
    let pid = forti.spawn_client(&[]);
    forti.assert_dtls_tunnel_up("DTLSv1.2");

    forti.lab.block_udp();
    // Traffic makes the client notice (its sends are refused).
    let _ = forti.lab.ping_behind(SECS(2));
    forti
        .lab
        .wait_for_log("gateway.log", "GET /remote/sslvpn-tunnel", SECS(60));
    forti.lab.wait_for_log(
        "gateway.log",
        "DTLS association ended: replaced by a newer tunnel",
        SECS(5),
    );
    assert!(
        forti.lab.ping_behind(SECS(20)),
        "no tunnel over TLS:\n{}",
        forti.logs()
    );
    assert!(
        forti
            .gateway_log()
            .contains("(no HTTP answer, as a FortiGate)"),
        "{}",
        forti.logs()
    );

    forti.lab.unblock_udp();
    forti
        .lab
        .wait_for_log_count("gateway.log", "DTLS tunnel for session", 2, SECS(90));
    forti.lab.wait_for_log(
        "gateway.log",
        "connection ended: replaced by a newer tunnel",
        SECS(10),
    );
    forti.lab.wait_for_log(
        "client.log",
        "DTLS tunnel connected; exiting HTTPS mainloop",
        SECS(5),
    );
    assert!(
        forti.lab.ping_behind(SECS(20)),
        "no tunnel over DTLS again:\n{}",
        forti.logs()
    );
    forti.lab.assert_pings_over_udp(10);
    forti.lab.signal_client(pid, "INT");
    assert_eq!(forti.lab.wait_client(SECS(10)), Some(0), "{}", forti.logs());
    forti.lab.wait_for_log("gateway.log", LOGGED_OUT, SECS(5));
    assert_eq!(
        forti.lab.log("reasons"),
        "pre-init\nconnect\nattempt-reconnect\nreconnect\ndisconnect\n"
    );
}

#[test]
fn debian_openconnect_moves_its_tunnel_between_dtls_and_tls() {
    moves_its_tunnel_between_dtls_and_tls("forti-dtls-handover", true);
}

/// `clthello` naming `cookie`, as upstream builds it.
fn clthello(cookie: &str) -> Vec<u8> {
    oc_proto::fortinet::dtls_client_hello(cookie)
}

/// What a client may throw at the DTLS port before a real one connects: an empty datagram,
/// garbage, a broken ClientHello; after real handshakes a PPP frame before the greeting, a
/// greeting of 8000 bytes, a greeting naming no session (answered `fail`). Each gets a log
/// line and, at worst, its association dropped; then openconnect 9.01 tunnels over DTLS.
#[test]
fn hostile_dtls_input_is_dropped_and_the_fortinet_gateway_serves_on() {
    let mut forti = start("forti-dtls-hostile", &[], true);
    // A ClientHello whose session id runs past its end.
    let mut broken_hello = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 52, 1, 0, 0, 40];
    broken_hello.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 40, 0xfe, 0xfd]);
    broken_hello.extend_from_slice(&[0x5a; 32]);
    broken_hello.extend_from_slice(&[0xff, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a]);
    forti.send_datagrams(&[b"", b"\x17\xfe\xfd garbage", &broken_hello]);
    let gateway = forti
        .lab
        .wait_for_log("gateway.log", "DTLS association dropped", SECS(15));
    assert!(gateway.contains("without an association"), "{gateway}");

    // A PPP frame (LCP Configure-Request in Fortinet's header) where the greeting should be.
    let frame = [0x00, 0x0a, 0x50, 0x50, 0x00, 0x04, 0xc0, 0x21, 0x01, 0x01];
    let answer = forti.dtls_exchange(&[&frame]);
    assert!(answer.is_empty(), "{answer:?}");
    forti
        .lab
        .wait_for_log("gateway.log", "is not the greeting", SECS(5));
    // A greeting past the gateway's bound for one (8000 bytes of cookie; one write of
    // s_client's input, so one record), then one naming no session.
    let huge = clthello(&"x".repeat(8000));
    forti.dtls_exchange(&[&huge]);
    let answer = forti.dtls_exchange(&[&clthello("0123456789abcdef")]);
    assert_eq!(answer, oc_proto::fortinet::dtls_server_hello(false));
    let gateway = forti.lab.wait_for_log(
        "gateway.log",
        "refused: no session has this SVPNCOOKIE",
        SECS(5),
    );
    assert_eq!(
        gateway.matches("is not the greeting").count(),
        2,
        "{gateway}"
    );

    let pid = forti.spawn_client(&[]);
    forti.assert_dtls_tunnel_up("DTLSv1.2");
    forti.disconnect(pid, LOGGED_OUT);
}

/// openconnect 9.01 puts FortiGate's token challenge in a form called `_challenge` whose
/// field is `code`, so `-F` answers it without a prompt.
#[test]
fn debian_openconnect_answers_the_gateways_token_challenge() {
    let mut forti = start("forti-token", &["--otp", TOKEN], true);
    // A wrong code, typed at the prompt: refused. (Not with -F: after a refused code
    // openconnect 9.01 posts its form again, now with `code` for `credential`, and fills
    // it from -F for ever. From stdin it stops when stdin ends.) It asks again, finds stdin
    // at its end, and gives up.
    assert_wrong_code_refused(&forti, &[], &format!("{PASSWORD}\n654321\n"));
    answers_the_token_from_a_form_entry(&mut forti);
}

/// `--html-2fa`: the good password gets a 401 with an HTML form (hidden `magic`,
/// `username`, `reqid`, `grpid`, the code in `credential`). openconnect 9.01 (which reads
/// these since v8.20) asks the form's `credential`: a wrong code, typed, is refused with 405
/// and it gives up when stdin ends (not with `-F`: it would post the refused form again for
/// ever); `-F unknown:credential=CODE` answers the form and the tunnel comes up.
#[test]
fn debian_openconnect_answers_the_gateways_html_token_form() {
    let mut forti = start("forti-html", &["--otp", TOKEN, "--html-2fa"], true);
    answers_the_html_form(&mut forti, &[], &format!("{PASSWORD}\n654321\n"));
    assert!(
        forti
            .lab
            .log("client.log")
            .contains("Please enter your token code"),
        "{}",
        forti.logs()
    );
}

/// A FortiGate answers wrong credentials with 405. openconnect 9.01 calls that an
/// unexpected result, asks for the password again and, being non-interactive, gives up.
#[test]
fn wrong_password_is_refused_with_exit_code_1() {
    let text = wrong_password_is_refused("forti-refused", true);
    assert!(text.contains("Unexpected 405 result from server"), "{text}");
    assert!(text.contains("Failed to complete authentication"), "{text}");
}

#[test]
fn our_client_logs_in_and_passes_traffic_through_the_fortinet_gateway() {
    logs_in_and_passes_traffic("forti-ours", &[], false);
}

#[test]
fn our_client_answers_the_token_challenge_from_a_form_entry() {
    let mut forti = start("forti-ours-token", &["--otp", TOKEN], false);
    // A wrong code first: refused, and without a terminal the client gives up (exit 1).
    let wrong = ["--non-inter", "-F", "_challenge:code=654321"];
    assert_wrong_code_refused(&forti, &wrong, &format!("{PASSWORD}\n"));
    answers_the_token_from_a_form_entry(&mut forti);
}

/// `--html-2fa`: our client answers the HTML form as openconnect does, the same `-F`
/// naming it (`unknown:credential`); a wrong code from `-F` is refused with 405 and,
/// without a terminal for the password again, the client gives up (exit 1).
#[test]
fn our_client_answers_the_html_token_form_from_a_form_entry() {
    let mut forti = start("forti-ours-html", &["--otp", TOKEN, "--html-2fa"], false);
    let wrong = format!("{HTML_FORM}:credential=654321");
    answers_the_html_form(
        &mut forti,
        &["--non-inter", "-F", &wrong],
        &format!("{PASSWORD}\n"),
    );
    assert!(
        forti
            .lab
            .log("client.log")
            .contains("Please enter your token code"),
        "{}",
        forti.logs()
    );
}

#[test]
fn our_client_gives_up_on_a_wrong_password_without_a_terminal() {
    wrong_password_is_refused("forti-ours-refused", false);
}

/// NetworkManager's two steps: `--authenticate` prints the cookie, which then brings the
/// tunnel up from standard input.
#[test]
fn our_client_authenticates_then_connects_with_the_cookie() {
    let mut forti = start("forti-ours-cookie", &[], false);
    let cookie = forti.authenticate();
    assert!(cookie.starts_with("SVPNCOOKIE="), "{cookie}");
    assert!(!forti.gateway_log().contains("GET /remote/sslvpn-tunnel"));
    forti.spawn_with_cookie(&cookie);
    forti.assert_tunnel_up();
}

/// A gateway that refuses the tunnel request answers in HTTP and closes at once: the client
/// must read that answer (not fail writing PPP into the closed connection) and exit with
/// status 2, the cookie being refused. Upstream's fortinet-auth-and-config checks the same.
#[test]
fn our_client_exits_2_when_the_tunnel_request_is_refused() {
    let forti = start(
        "forti-ours-refuse-tunnel",
        &["--refuse-tunnel", "--no-dtls"],
        false,
    );
    let out = forti.run_client(&[], &format!("{PASSWORD}\n"));
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}\n{}", forti.logs());
    assert!(text.contains("cookie was rejected by server"), "{text}");
    // No tunnel, no script.
    forti.assert_script_did_not_run();
}

/// SIGUSR2: our client reconnects with the same cookie (the gateway allows it), PPP comes up
/// again with the same address, and the script runs its reconnect reasons.
#[test]
fn our_client_reconnects_with_the_same_session() {
    // The TLS tunnel request is what is counted.
    let mut forti = start("forti-ours-reconnect", &["--no-dtls"], false);
    let pid = forti.spawn_client(&[]);
    forti.assert_tunnel_up();
    forti.assert_reconnects(pid, "GET /remote/sslvpn-tunnel");
    // SIGINT after the reconnect still logs off: exit 0, logout, the whole script story.
    forti.lab.signal_client(pid, "INT");
    assert_eq!(forti.lab.wait_client(SECS(10)), Some(0), "{}", forti.logs());
    forti.lab.wait_for_log("gateway.log", LOGGED_OUT, SECS(5));
    assert_eq!(
        forti.lab.log("reasons"),
        "pre-init\nconnect\nattempt-reconnect\nreconnect\ndisconnect\n"
    );
}

#[test]
fn our_client_tunnels_ppp_over_dtls_through_the_fortinet_gateway() {
    tunnels_ppp_over_dtls("forti-ours-dtls", false);
}

/// `--dtls-refuse` (`svrhello fail`): our client disables DTLS for the session, as upstream
/// means to, runs PPP over TLS and says so; traffic passes.
#[test]
fn our_client_falls_back_to_tls_when_the_fortinet_gateway_refuses_dtls() {
    let mut forti = start("forti-ours-dtls-refused", &["--dtls-refuse"], false);
    let pid = forti.spawn_client(&[]);
    forti.assert_tunnel_up();
    forti.assert_iperf_moves_a_megabyte("-R");
    let client = forti.lab.log("client.log");
    for line in [
        "Established DTLS connection (using OpenSSL)",
        "svrhello status was \"fail\" rather than \"ok\"",
        "Failed to connect DTLS tunnel; using HTTPS instead",
        &format!(
            "Configured as {}, with SSL connected and DTLS disabled",
            forti.client_addr
        ),
    ] {
        assert!(client.contains(line), "no {line:?}:\n{}", forti.logs());
    }
    assert!(forti.gateway_log().contains("GET /remote/sslvpn-tunnel"));
    forti.disconnect(pid, LOGGED_OUT);
}

/// UDP dropped from the start: the DTLS attempt fails and the tunnel comes up over TLS
/// within the 5 s that upstream gives DTLS first.
#[test]
fn our_client_uses_tls_when_udp_is_blocked() {
    let mut forti = start("forti-ours-udp-blocked", &[], false);
    forti.lab.block_udp();
    forti.spawn_client(&[]);
    forti.assert_tunnel_up();
    let client = forti.lab.log("client.log");
    assert!(
        client.contains("Failed to connect DTLS tunnel; using HTTPS instead"),
        "{}",
        forti.logs()
    );
    assert!(forti.gateway_log().contains("GET /remote/sslvpn-tunnel"));
}

#[test]
fn our_client_moves_its_tunnel_between_dtls_and_tls() {
    moves_its_tunnel_between_dtls_and_tls("forti-ours-dtls-handover", false);
}

/// `printf 'PASSWORD\nCODE\n' | openconnect --passwd-on-stdin --non-inter`: the token
/// challenge after the password takes stdin's next line, as upstream reads later prompts
/// once `--passwd-on-stdin` was given; with no line left the non-interactive client cannot
/// answer it (exit 1). Without `--non-inter` the same lines answer too.
#[test]
fn our_client_answers_the_token_challenge_from_stdin_after_the_password() {
    let forti = start("forti-ours-stdin", &["--otp", TOKEN], false);
    let out = forti.run_client(&["--non-inter", "--authenticate"], &format!("{PASSWORD}\n"));
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("User input required in non-interactive mode"),
        "{text}"
    );
    let gateway = forti.gateway_log();
    assert!(gateway.contains("token challenge sent"), "{gateway}");
    assert!(!gateway.contains("token refused"), "{gateway}");

    for rest in [&["--non-inter", "--authenticate"][..], &["--authenticate"]] {
        let out = forti.run_client(rest, &format!("{PASSWORD}\n{TOKEN}\n"));
        let text = output_text(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{text}\n{}",
            forti.gateway_log()
        );
        assert!(text.contains("COOKIE='SVPNCOOKIE="), "{text}");
    }
    let gateway = forti.gateway_log();
    assert_eq!(
        gateway.matches("token accepted for user \"alice\"").count(),
        2,
        "{gateway}"
    );
}
