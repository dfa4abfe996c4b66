//! `--protocol=nc` against our Network Connect test gateway (`src/bin/nc_gateway/`):
//! Debian's openconnect 9.01 proves each page flow — the login form with realms, token
//! forms, the confirmation, roles, the sign-in notice, the host checker through
//! `--csd-wrapper` — and each tunnel feature — oNCP over TLS, ESP (ping and iperf3 both
//! ways), UDP blocked or probes refused, rekeys, reconnects by cookie, the session's
//! expiry, another suite and MTU, hostile oNCP and ESP — then our client runs the same,
//! and what 9.01 cannot: ESP again at once after a reconnect, ESP dropped on the way,
//! records split across TLS records. A refused cookie exits 2. (What upstream's fake Juniper
//! servers check, `juniper-auth`, `juniper-sso-auth` and `oath-token`, is here too: the
//! ADFS and SAML pages are `oc_proto::nc`'s unit tests, the token secrets `oc-otp`'s.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ferroconnect_interop::gateway_lab::{GatewayLab, Vendor, PASSWORD};
use ferroconnect_interop::output_text;
use std::time::Duration;

const SECS: fn(u64) -> Duration = Duration::from_secs;

const CODE: &str = "246810";

fn start(test: &str, extra: &[&str], real_client: bool) -> GatewayLab {
    GatewayLab::start(test, Vendor::Nc, extra, real_client)
}

/// Runs the client with `rest` and `--cookieonly`, the password on stdin: it must print
/// the DSID cookie and exit 0; the gateway's log.
fn cookie_only(nc: &GatewayLab, rest: &[&str]) -> String {
    let mut args = vec!["--cookieonly", "--non-inter"];
    args.extend_from_slice(rest);
    let out = nc.run_client(&args, &format!("{PASSWORD}\n"));
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", nc.gateway_log());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.trim().starts_with("DSID="), "{stdout:?}");
    let gateway = nc.gateway_log();
    assert!(gateway.contains("session started"), "{gateway}");
    gateway
}

fn realm_and_notice(test: &str, real_client: bool) {
    let nc = start(
        test,
        &[
            "--realm",
            "Users",
            "--realm",
            "Staff",
            "--notice",
            "Authorised use only.",
        ],
        real_client,
    );
    let gateway = cookie_only(&nc, &["--authgroup", "Staff"]);
    assert!(
        gateway.contains("password accepted for \"alice\" in realm Some(\"1\")"),
        "{gateway}"
    );
}

/// The login form's realm select chosen by `--authgroup`, its sign-in notice's button
/// pressed.
#[test]
fn debian_openconnect_chooses_the_realm_and_proceeds_past_the_notice() {
    realm_and_notice("nc-realm", true);
}

#[test]
fn our_client_chooses_the_realm_and_proceeds_past_the_notice() {
    realm_and_notice("nc-ours-realm", false);
}

/// A token form after the password (`form`), answered by `-F FORM:token_code=CODE`; a
/// wrong code first: back to the login, which a client without a terminal cannot answer.
fn token_form(test: &str, form: &str, real_client: bool) {
    let nc = start(test, &["--otp", CODE, "--token-form", form], real_client);
    let wrong = format!("{form}:token_code=135791");
    let out = nc.run_client(
        &["--cookieonly", "--non-inter", "-F", &wrong],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        nc.gateway_log().contains("wrong token code"),
        "{}",
        nc.logs()
    );
    let entry = format!("{form}:token_code={CODE}");
    let gateway = cookie_only(&nc, &["-F", &entry]);
    assert!(
        gateway.contains(&format!("token form {form} sent")),
        "{gateway}"
    );
    assert!(gateway.contains("token code accepted"), "{gateway}");
}

#[test]
fn debian_openconnect_answers_the_defender_token_form() {
    token_form("nc-defender", "frmDefender", true);
}

#[test]
fn our_client_answers_the_defender_token_form() {
    token_form("nc-ours-defender", "frmDefender", false);
}

#[test]
fn our_client_answers_the_totp_token_form() {
    token_form("nc-ours-totp", "frmTotpToken", false);
}

/// A confirmation, then the roles: the confirmation is posted back as it is, the role
/// `--authgroup` names is the link followed.
fn confirmation_and_roles(test: &str, real_client: bool) {
    let nc = start(
        test,
        &["--confirm", "--role", "Staff", "--role", "Admins"],
        real_client,
    );
    let gateway = cookie_only(&nc, &["--authgroup", "Admins"]);
    for line in [
        "confirmation form sent",
        "login confirmed",
        "roles sent",
        "session started (role Some(\"Admins\"))",
    ] {
        assert!(gateway.contains(line), "no {line:?}:\n{gateway}");
    }
}

#[test]
fn debian_openconnect_confirms_and_chooses_a_role() {
    confirmation_and_roles("nc-roles", true);
}

#[test]
fn our_client_confirms_and_chooses_a_role() {
    confirmation_and_roles("nc-ours-roles", false);
}

/// A host checker as openconnect's TNCC protocol wants it: it reads `start`, `IC=`,
/// `Cookie=` and `DSSIGNIN=` on its standard input (a socket), answers on the same socket
/// `200`, a line, the new cookie, the interval line (empty: none) and the blank line that
/// ends the answer, then keeps reading until the client goes.
const TNCC: &str = "#!/bin/sh
while read -r line; do
  case \"$line\" in
    Cookie=*) cookie=${line#Cookie=} ;;
    DSSIGNIN=*) printf '200\\n3\\nchecked-%s\\n\\n\\n' \"$cookie\" >&0; break ;;
  esac
done
echo \"tncc: answered for $1 (cert $TNCC_SHA256)\" >&2
cat >/dev/null
";

fn host_checker(test: &str, real_client: bool) {
    let nc = start(test, &["--host-checker"], real_client);
    let script = nc.lab.dir.join("tncc.sh");
    std::fs::write(&script, TNCC).unwrap();
    std::process::Command::new("chmod")
        .arg("755")
        .arg(&script)
        .status()
        .unwrap();
    let gateway = cookie_only(&nc, &["--csd-wrapper", &script.display().to_string()]);
    assert!(gateway.contains("host checker needed"), "{gateway}");
    assert!(gateway.contains("host checker passed"), "{gateway}");
}

#[test]
fn debian_openconnect_runs_the_host_checker() {
    host_checker("nc-tncc", true);
}

#[test]
fn our_client_runs_the_host_checker() {
    host_checker("nc-ours-tncc", false);
}

/// The client with `-C cookie` and nothing on stdin.
fn with_cookie(nc: &GatewayLab, cookie: &str) -> std::process::Output {
    let url = format!("https://{}/", nc.lab.server_ip);
    let args = ["--protocol=nc", "--servercert", &nc.pin, "-C", cookie, &url];
    nc.lab.run_client(&args, "", SECS(20))
}

/// A cookie the gateway does not know: the tunnel request gets 401, exit status 2.
fn refused_cookie(test: &str, real_client: bool) -> String {
    let nc = start(test, &[], real_client);
    let out = with_cookie(&nc, "DSID=0123456789abcdef");
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}\n{}", nc.gateway_log());
    assert!(
        nc.gateway_log()
            .contains("tunnel request with an unknown DSID; refused"),
        "{}",
        nc.logs()
    );
    text
}

#[test]
fn debian_openconnect_exits_2_when_the_cookie_is_refused() {
    refused_cookie("nc-refused", true);
}

#[test]
fn our_client_exits_2_when_the_cookie_is_refused() {
    refused_cookie("nc-ours-refused", false);
}

/// What the gateway logs when a client logs out.
const LOGGED_OUT: &str = "logout: session forgotten";

/// The tunnel is up over ESP: the client says the ESP session is established, the gateway
/// answered its probe and was told to send on ESP; 20 pings come back as UDP datagrams.
fn assert_esp_tunnel_up(nc: &GatewayLab) {
    nc.assert_tunnel_up();
    nc.lab
        .wait_for_log("gateway.log", "the client turned ESP on", SECS(10));
    let client = nc.lab.log("client.log");
    assert!(
        client.contains("ESP session established with server"),
        "{}",
        nc.logs()
    );
    let gateway = nc.gateway_log();
    assert!(gateway.contains("ESP probe answered"), "{gateway}");
    nc.lab.assert_pings_over_udp(20);
}

/// oNCP's setup, then ESP: ping and iperf3 both ways as UDP datagrams; SIGINT logs out.
/// `extra` options for the gateway; its log.
fn tunnels_over_esp(test: &str, real_client: bool, extra: &[&str]) -> String {
    let mut nc = start(test, extra, real_client);
    let pid = nc.spawn_client(&[]);
    assert_esp_tunnel_up(&nc);
    for direction in ["", "-R"] {
        nc.assert_iperf_moves_a_megabyte_over_udp(direction);
    }
    let gateway = nc.disconnect(pid, LOGGED_OUT);
    assert!(gateway.contains("oNCP hello from host"), "{gateway}");
    assert!(
        gateway.contains("GET /dana-na/auth/logout.cgi"),
        "{gateway}"
    );
    gateway
}

#[test]
fn debian_openconnect_tunnels_over_esp() {
    tunnels_over_esp("nc-esp", true, &[]);
}

#[test]
fn our_client_tunnels_over_esp() {
    tunnels_over_esp("nc-ours-esp", false, &[]);
}

/// `--esp-lzo`: the configuration says LZO and the gateway's Legacy IP packets come
/// LZO-compressed (next header 5); the client inflates them (ping and iperf3's download
/// pass), and ESP stays up.
fn reads_lzo_compressed_esp(test: &str, real_client: bool) {
    let gateway = tunnels_over_esp(test, real_client, &["--esp-lzo"]);
    let sent: u64 = gateway
        .split(" sent LZO-compressed")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_default();
    assert!(sent > 100, "{gateway}");
}

#[test]
fn debian_openconnect_reads_lzo_compressed_esp() {
    reads_lzo_compressed_esp("nc-esp-lzo", true);
}

#[test]
fn our_client_reads_lzo_compressed_esp() {
    reads_lzo_compressed_esp("nc-ours-esp-lzo", false);
}

/// The tunnel is up with TLS carrying the packets: ping, and iperf3 both ways; the
/// gateway never heard that ESP should carry them.
fn assert_tls_tunnel_passes_traffic(nc: &GatewayLab) {
    nc.assert_tunnel_up();
    for direction in ["", "-R"] {
        nc.assert_iperf_moves_a_megabyte(direction);
    }
    let gateway = nc.gateway_log();
    assert!(!gateway.contains("the client turned ESP on"), "{gateway}");
}

/// `--no-esp`: no ESP in the configuration; the tunnel is TLS only from the start.
fn tunnels_over_tls_without_esp(test: &str, real_client: bool) {
    let mut nc = start(test, &["--no-esp"], real_client);
    let pid = nc.spawn_client(&[]);
    assert_tls_tunnel_passes_traffic(&nc);
    let configured = format!(
        "Configured as {}, with SSL connected and ESP disabled",
        nc.client_addr
    );
    assert!(
        nc.lab.log("client.log").contains(&configured),
        "{}",
        nc.logs()
    );
    nc.disconnect(pid, LOGGED_OUT);
}

#[test]
fn without_esp_debian_openconnect_tunnels_over_tls() {
    tunnels_over_tls_without_esp("nc-no-esp", true);
}

#[test]
fn without_esp_our_client_tunnels_over_tls() {
    tunnels_over_tls_without_esp("nc-ours-no-esp", false);
}

/// UDP blocked, or the probes left unanswered (`--refuse-esp`): TLS carries the packets
/// while ESP stays in progress.
fn tunnels_over_tls_when_esp_fails(test: &str, refuse: bool, real_client: bool) {
    let extra: &[&str] = if refuse { &["--refuse-esp"] } else { &[] };
    let mut nc = start(test, extra, real_client);
    if !refuse {
        nc.lab.block_udp();
    }
    let pid = nc.spawn_client(&[]);
    assert_tls_tunnel_passes_traffic(&nc);
    let gateway = nc.gateway_log();
    if refuse {
        assert!(
            gateway.contains("left unanswered (--refuse-esp)"),
            "{gateway}"
        );
    }
    assert!(
        !nc.lab.log("client.log").contains("ESP session established"),
        "{}",
        nc.logs()
    );
    nc.disconnect(pid, LOGGED_OUT);
}

#[test]
fn with_udp_blocked_debian_openconnect_tunnels_over_tls() {
    tunnels_over_tls_when_esp_fails("nc-udp-blocked", false, true);
}

#[test]
fn with_udp_blocked_our_client_tunnels_over_tls() {
    tunnels_over_tls_when_esp_fails("nc-ours-udp-blocked", false, false);
}

#[test]
fn debian_openconnect_tunnels_over_tls_when_the_probes_go_unanswered() {
    tunnels_over_tls_when_esp_fails("nc-esp-refused", true, true);
}

#[test]
fn our_client_tunnels_over_tls_when_the_probes_go_unanswered() {
    tunnels_over_tls_when_esp_fails("nc-ours-esp-refused", true, false);
}

/// `--esp-rekey 2`: every two seconds the gateway sends new keys for the client to send
/// with; the client answers each with its own new keys, and pings keep coming back over
/// ESP.
fn rekeys_esp(test: &str, real_client: bool) {
    let mut nc = start(test, &["--esp-rekey", "2"], real_client);
    let pid = nc.spawn_client(&[]);
    assert_esp_tunnel_up(&nc);
    nc.lab
        .wait_for_log_count("gateway.log", "the client's ESP keys", 3, SECS(10));
    nc.lab.assert_pings_over_udp(10);
    let gateway = nc.disconnect(pid, LOGGED_OUT);
    assert!(gateway.contains("ESP rekey 2: new SPI"), "{gateway}");
    assert!(gateway.contains(" 0 dropped,"), "{gateway}");
}

#[test]
fn debian_openconnect_takes_new_esp_keys() {
    rekeys_esp("nc-rekey", true);
}

#[test]
fn our_client_takes_new_esp_keys() {
    rekeys_esp("nc-ours-rekey", false);
}

/// `--authenticate`, then the cookie on stdin: the tunnel comes up without a second
/// login; SIGUSR2 reconnects with the same cookie (a new tunnel request, the same
/// address). Ours probes ESP again at once and ESP carries the pings again; 9.01 turns ESP
/// off on the new connection and waits a minute before it probes (upstream reworked that
/// in 9.10), so TLS carries them meanwhile.
fn reconnects_with_the_cookie(test: &str, esp: bool, real_client: bool) {
    let extra: &[&str] = if esp { &[] } else { &["--no-esp"] };
    let mut nc = start(test, extra, real_client);
    let cookie = nc.authenticate();
    let pid = nc.spawn_with_cookie(&cookie);
    if esp {
        assert_esp_tunnel_up(&nc);
    } else {
        nc.assert_tunnel_up();
    }
    nc.assert_reconnects(pid, "POST /dana/js?prot=1&svc=4");
    if esp && !real_client {
        nc.lab
            .wait_for_log_count("gateway.log", "the client turned ESP on", 2, SECS(15));
        nc.lab.assert_pings_over_udp(10);
    }
    let gateway = nc.gateway_log();
    assert_eq!(gateway.matches("password accepted").count(), 1, "{gateway}");
    nc.lab.signal_client(pid, "INT");
    assert_eq!(nc.lab.wait_client(SECS(10)), Some(0), "{}", nc.logs());
    nc.lab.wait_for_log("gateway.log", LOGGED_OUT, SECS(5));
}

#[test]
fn debian_openconnect_reconnects_with_the_cookie() {
    reconnects_with_the_cookie("nc-cookie", true, true);
}

#[test]
fn our_client_reconnects_with_the_cookie() {
    reconnects_with_the_cookie("nc-ours-cookie", true, false);
}

#[test]
fn our_client_reconnects_with_the_cookie_over_tls() {
    reconnects_with_the_cookie("nc-ours-cookie-tls", false, false);
}

/// UDP dropped on the way once ESP is up: ESP's dead-peer detection (the gateway's
/// fallback time) gives it up, the gateway is told to stop, TLS carries the pings.
#[test]
fn our_client_moves_to_tls_when_udp_drops() {
    let mut nc = start("nc-ours-udp-drop", &[], false);
    let pid = nc.spawn_client(&["--force-dpd", "2"]);
    assert_esp_tunnel_up(&nc);
    nc.lab.black_hole_large_udp(0);
    let client = nc
        .lab
        .wait_for_log("client.log", "using HTTPS instead", SECS(15));
    assert!(client.contains("ESP detected dead peer"), "{}", nc.logs());
    nc.lab
        .wait_for_log("gateway.log", "the client turned ESP off", SECS(5));
    assert!(
        nc.lab.ping_behind(SECS(10)),
        "no tunnel over TLS:\n{}",
        nc.logs()
    );
    nc.assert_iperf_moves_a_megabyte("-R");
    nc.disconnect(pid, LOGGED_OUT);
}

/// `--split-writes`: every record the gateway sends comes in two TLS records, cut at a
/// different place each time (in the length, the KMP header, the packet): the status, the
/// configuration and every packet still read whole.
#[test]
fn our_client_reads_records_split_across_tls_records() {
    let mut nc = start("nc-ours-split", &["--split-writes", "--no-esp"], false);
    let pid = nc.spawn_client(&[]);
    assert_tls_tunnel_passes_traffic(&nc);
    nc.disconnect(pid, LOGGED_OUT);
}

/// `--packet-mid-config` (with `--split-writes`): a record holding an IP packet comes
/// between the configuration's two records, as some servers send; the client sets the
/// packet aside (it comes before the configuration) and reads the configuration whole.
/// (openconnect 9.01 predates upstream's handling of this and fails.)
#[test]
fn our_client_sets_aside_a_packet_in_the_middle_of_the_configuration() {
    let args = ["--packet-mid-config", "--split-writes", "--no-esp"];
    let mut nc = start("nc-ours-midconfig", &args, false);
    let pid = nc.spawn_client(&[]);
    assert_tls_tunnel_passes_traffic(&nc);
    let client = nc.lab.log("client.log");
    assert!(
        client.contains("Discarding an IP packet sent before the configuration"),
        "{}",
        nc.logs()
    );
    nc.disconnect(pid, LOGGED_OUT);
}

/// `--expire 3`: the gateway ends the session (a zero-length record, reason 1); the
/// client says the session expired and exits 1 without reconnecting.
fn the_session_expires(test: &str, real_client: bool) -> String {
    let mut nc = start(test, &["--expire", "3", "--no-esp"], real_client);
    nc.spawn_client(&[]);
    nc.assert_tunnel_up();
    let code = nc.lab.wait_client(SECS(15));
    let client = nc.lab.log("client.log");
    assert_eq!(code, Some(1), "{}", nc.logs());
    assert!(
        client.contains("Server terminated connection (session expired)"),
        "{}",
        nc.logs()
    );
    assert_eq!(
        nc.gateway_log().matches("POST /dana/js").count(),
        1,
        "no reconnect:\n{}",
        nc.logs()
    );
    client
}

#[test]
fn debian_openconnect_stops_when_the_session_expires() {
    the_session_expires("nc-expire", true);
}

#[test]
fn our_client_stops_when_the_session_expires() {
    the_session_expires("nc-ours-expire", false);
}

fn octal(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:03o}")).collect()
}

/// `body` as one oNCP record.
fn record(body: &[u8]) -> Vec<u8> {
    let mut r = (body.len() as u16).to_le_bytes().to_vec();
    r.extend_from_slice(body);
    r
}

/// `packet` in a KMP 300 message of one record.
fn data_record(packet: &[u8]) -> Vec<u8> {
    let mut kmp = vec![0, 0, 0, 0, 0, 0, 0x01, 0x2c, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0];
    kmp.extend_from_slice(&(packet.len() as u16).to_be_bytes());
    kmp.extend_from_slice(packet);
    record(&kmp)
}

/// Hostile oNCP on the tunnel of a real session (from `--authenticate`), through
/// `openssl s_client`: a first record that is not a hello ends that tunnel; on another, a
/// packet from an address not the client's is dropped and a KMP 300 whose packet runs past
/// its end ends it. Hostile ESP (too short, an SPI nobody has) is logged and dropped.
/// Then openconnect 9.01 still connects over ESP.
#[test]
fn hostile_oncp_and_esp_are_logged_and_dropped() {
    let mut nc = start("nc-hostile", &[], true);
    let ip = nc.lab.server_ip.clone();
    let cookie = nc.authenticate();
    let request = format!(
        "POST /dana/js?prot=1&svc=4 HTTP/1.1\\r\\nHost: {ip}\\r\\nCookie: {cookie}\\r\\n\
         Connection: close\\r\\nContent-Length: 256\\r\\n\\r\\n"
    );
    let tunnel = |records: &[Vec<u8>]| {
        let sends: String = records
            .iter()
            .map(|r| format!("printf '{}'; sleep 0.3; ", octal(r)))
            .collect();
        nc.lab.in_client(&format!(
            "(printf '{request}'; sleep 0.3; {sends} sleep 1) | \
             timeout 10 openssl s_client -quiet -connect {ip}:443 2>/dev/null"
        ))
    };
    let out = tunnel(&[record(b"not a hello")]);
    assert!(
        out.stdout.starts_with(b"HTTP/1.1 200 OK"),
        "{}",
        output_text(&out)
    );
    nc.lab
        .wait_for_log("gateway.log", "the first record is not a hello", SECS(5));
    let hello = record(&[
        0, 4, 0, 0, 0, 4, 0, b'h', b'o', b's', b't', 0xbb, 1, 0, 0, 0, 0,
    ]);
    let mut spoofed = vec![0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 9, 9, 9];
    spoofed.extend_from_slice(&[198, 19, 0, 1]);
    let mut lying = spoofed.clone();
    lying[3] = 200;
    let out = tunnel(&[hello, data_record(&spoofed), data_record(&lying)]);
    // The status byte and the configuration came before the end.
    assert!(out.stdout.len() > 100, "{}", output_text(&out));
    let gateway = nc
        .lab
        .wait_for_log("gateway.log", "bad oNCP from the client", SECS(5));
    for line in [
        "oNCP hello from host \"host\"",
        "packet from 10.9.9.9 (not the client's address); dropped",
        "Unrecognised data packet",
    ] {
        assert!(gateway.contains(line), "no {line:?}:\n{gateway}");
    }
    let mut stranger = 0xdead_beef_u32.to_be_bytes().to_vec();
    stranger.extend_from_slice(&[0; 60]);
    // One throttled line a second: a batch each.
    nc.send_datagrams_to(4500, &[&[], &[1, 2, 3]]);
    std::thread::sleep(SECS(1) + Duration::from_millis(100));
    nc.send_datagrams_to(4500, &[&stranger]);
    let gateway = nc.lab.wait_for_log(
        "gateway.log",
        "ESP datagram for SPI 0xdeadbeef (64 bytes) has no tunnel",
        SECS(5),
    );
    assert!(
        gateway.contains("is too short for a header; dropped"),
        "{gateway}"
    );
    let pid = nc.spawn_client(&[]);
    assert_esp_tunnel_up(&nc);
    nc.disconnect(pid, LOGGED_OUT);
}

/// Another ESP suite and port, and another MTU: AES-256-CBC with HMAC-MD5 (9.01; upstream
/// reads no other HMAC for Network Connect) or HMAC-SHA-256 (ours) on UDP 4600, MTU 1300
/// (the script is given it).
fn another_suite_port_and_mtu(test: &str, suite: &str, real_client: bool) {
    let args = ["--esp-suite", suite, "--esp-port", "4600", "--mtu", "1300"];
    let mut nc = start(test, &args, real_client);
    let pid = nc.spawn_client(&[]);
    assert_esp_tunnel_up(&nc);
    let env = nc.lab.env_file("connect");
    assert_eq!(
        env.get("INTERNAL_IP4_MTU").map(String::as_str),
        Some("1300")
    );
    nc.assert_iperf_moves_a_megabyte_over_udp("-R");
    let gateway = nc.disconnect(pid, LOGGED_OUT);
    assert!(gateway.contains("client's MTU 1300"), "{gateway}");
}

#[test]
fn debian_openconnect_takes_another_esp_suite_port_and_mtu() {
    another_suite_port_and_mtu("nc-variants", "aes-256-cbc/md5", true);
}

#[test]
fn our_client_takes_another_esp_suite_port_and_mtu() {
    another_suite_port_and_mtu("nc-ours-variants", "aes-256-cbc/sha256", false);
}

/// `--dump-http-traffic` logs each request and response head; `--no-http-keepalive` opens
/// a connection for each request (the gateway sees each on its own port).
#[test]
fn our_client_dumps_http_traffic_and_reconnects_for_each_request() {
    let nc = start("nc-ours-dump", &[], false);
    let out = nc.run_client(
        &[
            "--cookieonly",
            "--non-inter",
            "--dump-http-traffic",
            "--no-http-keepalive",
        ],
        &format!("{PASSWORD}\n"),
    );
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for line in [
        "> GET / HTTP/1.1",
        "> POST /dana-na/auth/url_default/login.cgi HTTP/1.1",
        "< HTTP/1.1 302 Found",
        "< Set-Cookie: DSID=",
        "Disabling all HTTP connection reuse",
    ] {
        assert!(text.contains(line), "no {line:?}:\n{text}");
    }
    let gateway = nc.gateway_log();
    let requests = gateway.matches(": GET ").count() + gateway.matches(": POST ").count();
    let connections = gateway.matches("connection ended").count();
    assert!(requests >= 4, "{gateway}");
    assert_eq!(
        connections, requests,
        "one connection a request:\n{gateway}"
    );
}
