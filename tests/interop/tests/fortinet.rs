//! `--protocol=fortinet` against our FortiGate test gateway (`src/bin/fortinet_gateway.rs`):
//! Debian's openconnect 9.01 first proves the gateway (login with and without the token
//! challenge, the XML configuration, PPP over TLS, ping and iperf3 through the tunnel),
//! then our client passes the same tests against it, plus the two-step NetworkManager flow.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::Duration;

use ferroconnect_interop::{bin, output_text, pin_sha256, ping_counts, Lab, Pki};

const SECS: fn(u64) -> Duration = Duration::from_secs;
const USER: &str = "alice";
const PASSWORD: &str = "s3cret pass";
const TOKEN: &str = "123456";

/// A lab with Debian's openconnect and the gateway running in the server namespace.
struct Forti {
    lab: Lab,
    pin: String,
    /// The address the gateway gives the client.
    client_addr: String,
}

impl Forti {
    /// Starts the gateway with `extra` options and waits until it listens; the client is
    /// Debian's openconnect when `real_client`, else ours.
    fn start(test: &str, extra: &[&str], real_client: bool) -> Self {
        let mut lab = Lab::new(test);
        if real_client {
            lab.use_real_client();
        }
        let pki = Pki::create(&lab.dir, &lab.server_ip);
        // The lab's pool is 198.19.M.0: the gateway is .1 in it and the client .2.
        let pool = lab.pool.strip_suffix('0').unwrap().to_string();
        let (tunnel_addr, client_addr) = (format!("{pool}1"), format!("{pool}2"));
        let gateway = bin("fortinet_gateway").display().to_string();
        let listen = format!("{}:443", lab.server_ip);
        let route = format!("{}/32", lab.behind_ip);
        let tun = format!("{}g", lab.name);
        let dns = lab.server_ip.clone();
        let (cert, key) = (
            pki.server_cert.display().to_string(),
            pki.server_key.display().to_string(),
        );
        let mut argv = vec![
            gateway.as_str(),
            "--listen",
            &listen,
            "--cert",
            &cert,
            "--key",
            &key,
            "--user",
            USER,
            "--password",
            PASSWORD,
            "--tunnel-addr",
            &tunnel_addr,
            "--client-addr",
            &client_addr,
            "--dns",
            &dns,
            "--route",
            &route,
            "--tun",
            &tun,
        ];
        argv.extend_from_slice(extra);
        let ns = lab.server_ns.clone();
        lab.spawn_in(&ns, &argv, "gateway.log");
        lab.wait_for_log("gateway.log", "listening on https://", SECS(10));
        Self {
            pin: pin_sha256(&pki.server_cert),
            lab,
            client_addr,
        }
    }

    /// openconnect's arguments: the Fortinet protocol, our user, the pinned certificate,
    /// the recording vpnc-script, then `rest` and the server URL.
    fn client_args(&self, script: &str, rest: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "--protocol=fortinet",
            "-u",
            USER,
            "--passwd-on-stdin",
            "--servercert",
            &self.pin,
            "-s",
            script,
        ]
        .map(str::to_string)
        .to_vec();
        args.extend(rest.iter().map(|a| a.to_string()));
        args.push(format!("https://{}/", self.lab.server_ip));
        args
    }

    /// Both logs, for a failed assertion.
    fn logs(&self) -> String {
        format!(
            "client:\n{}\ngateway:\n{}",
            self.lab.log("client.log"),
            self.lab.log("gateway.log")
        )
    }

    /// Waits for the tunnel, then checks what the vpnc-script was given and that the host
    /// behind the gateway answers 3 pings of 3.
    fn assert_tunnel_up(&self) {
        assert!(
            self.lab.ping_behind(SECS(20)),
            "no tunnel:\n{}",
            self.logs()
        );
        let env = env_file(&self.lab, "connect");
        assert_eq!(
            env.get("INTERNAL_IP4_ADDRESS"),
            Some(&self.client_addr),
            "{}",
            self.logs()
        );
        assert_eq!(env.get("CISCO_SPLIT_INC"), Some(&"1".to_string()));
        assert_eq!(env.get("CISCO_SPLIT_INC_0_ADDR"), Some(&self.lab.behind_ip));
        assert_eq!(env.get("INTERNAL_IP4_DNS"), Some(&self.lab.server_ip));
        let ping = self
            .lab
            .in_client(&format!("ping -c 3 -i 0.2 -W 2 {}", self.lab.behind_ip));
        assert_eq!(
            ping_counts(&output_text(&ping)),
            (3, 3),
            "{}",
            output_text(&ping)
        );
        let gateway = self.lab.log("gateway.log");
        assert!(
            gateway.contains(&format!("client {}", self.client_addr)),
            "the gateway's PPP did not come up with the client's address:\n{gateway}"
        );
    }
}

fn env_file(lab: &Lab, reason: &str) -> HashMap<String, String> {
    lab.log(&format!("env.{reason}"))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Bytes iperf3 (`-J`) says the receiving side got.
fn iperf_received_bytes(lab: &Lab, args: &str) -> u64 {
    let out = lab.iperf(&format!("-J {args}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "iperf3 {args} failed:\n{}",
        output_text(&out)
    );
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["end"]["sum_received"]["bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("no received bytes in iperf3's report:\n{text}"))
}

#[test]
fn debian_openconnect_logs_in_and_passes_traffic_through_the_fortinet_gateway() {
    let mut forti = Forti::start("forti-traffic", &[], true);
    let script = forti.lab.recording_script();
    let args = forti.client_args(&script, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let pid = forti.lab.spawn_client(&args, &format!("{PASSWORD}\n"));
    forti.assert_tunnel_up();

    // TCP both ways: a megabyte is far below what two seconds move even over a slow tun.
    for direction in ["", "-R"] {
        let bytes = iperf_received_bytes(&forti.lab, &format!("-t 2 {direction}"));
        assert!(
            bytes > 1_000_000,
            "iperf3 {direction} moved only {bytes} bytes:\n{}",
            forti.logs()
        );
    }

    // SIGINT: openconnect ends PPP, logs out and exits 0; the gateway saw both.
    forti.lab.signal_client(pid, "INT");
    assert_eq!(forti.lab.wait_client(SECS(10)), Some(0), "{}", forti.logs());
    let gateway = forti
        .lab
        .wait_for_log("gateway.log", "logout: cookie forgotten", SECS(5));
    assert!(gateway.contains("PPP closed"), "{gateway}");
    assert_eq!(forti.lab.log("reasons"), "pre-init\nconnect\ndisconnect\n");
}

/// openconnect 9.01 puts FortiGate's token challenge in a form called `_challenge` whose
/// field is `code`, so `-F` answers it without a prompt.
#[test]
fn debian_openconnect_answers_the_gateways_token_challenge() {
    let mut forti = Forti::start("forti-token", &["--otp", TOKEN], true);
    let script = forti.lab.recording_script();

    // A wrong code, typed at the prompt: refused. (Not with -F: after a refused code
    // openconnect 9.01 posts its form again, now with `code` for `credential`, and fills
    // it from -F for ever. From stdin it stops when stdin ends.)
    let args = forti.client_args(&script, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = forti
        .lab
        .run_client(&args, &format!("{PASSWORD}\n654321\n"), SECS(20));
    // It asks again, finds stdin at its end, and gives up.
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let gateway = forti.lab.log("gateway.log");
    assert!(gateway.contains("token challenge sent"), "{gateway}");
    assert!(
        gateway.contains("token refused for user \"alice\": wrong code"),
        "{gateway}"
    );
    assert!(!gateway.contains("GET /remote/sslvpn-tunnel"), "{gateway}");

    // The right code, non-interactively: `-F FORM:FIELD=VALUE`.
    let entry = format!("_challenge:code={TOKEN}");
    let args = forti.client_args(&script, &["--non-inter", "-F", &entry]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    forti.lab.spawn_client(&args, &format!("{PASSWORD}\n"));
    forti.assert_tunnel_up();
    let gateway = forti.lab.log("gateway.log");
    assert!(
        gateway.contains("token accepted for user \"alice\""),
        "{gateway}"
    );
}

/// A FortiGate answers wrong credentials with 405. openconnect 9.01 calls that an
/// unexpected result, asks for the password again and, being non-interactive, gives up.
#[test]
fn wrong_password_is_refused_with_exit_code_1() {
    let forti = Forti::start("forti-refused", &[], true);
    let script = forti.lab.recording_script();
    let args = forti.client_args(&script, &["--non-inter"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = forti.lab.run_client(&args, "not the password\n", SECS(20));
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("Unexpected 405 result from server"), "{text}");
    assert!(text.contains("Failed to complete authentication"), "{text}");
    let gateway = forti.lab.log("gateway.log");
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
    assert!(
        forti.lab.log("reasons").is_empty(),
        "the script ran: {}",
        forti.lab.log("reasons")
    );
}

#[test]
fn our_client_logs_in_and_passes_traffic_through_the_fortinet_gateway() {
    let mut forti = Forti::start("forti-ours", &[], false);
    let script = forti.lab.recording_script();
    let args = forti.client_args(&script, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let pid = forti.lab.spawn_client(&args, &format!("{PASSWORD}\n"));
    forti.assert_tunnel_up();
    for direction in ["", "-R"] {
        let bytes = iperf_received_bytes(&forti.lab, &format!("-t 2 {direction}"));
        assert!(
            bytes > 1_000_000,
            "iperf3 {direction} moved only {bytes} bytes:\n{}",
            forti.logs()
        );
    }
    // SIGINT: PPP ends, /remote/logout is called, exit 0, the script ran its three reasons.
    forti.lab.signal_client(pid, "INT");
    assert_eq!(forti.lab.wait_client(SECS(10)), Some(0), "{}", forti.logs());
    let gateway = forti
        .lab
        .wait_for_log("gateway.log", "logout: cookie forgotten", SECS(5));
    assert!(gateway.contains("PPP closed"), "{gateway}");
    assert_eq!(forti.lab.log("reasons"), "pre-init\nconnect\ndisconnect\n");
}

#[test]
fn our_client_answers_the_token_challenge_from_a_form_entry() {
    let mut forti = Forti::start("forti-ours-token", &["--otp", TOKEN], false);
    let script = forti.lab.recording_script();
    // A wrong code first: refused, and without a terminal the client gives up (exit 1).
    let args = forti.client_args(&script, &["--non-inter", "-F", "_challenge:code=654321"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = forti
        .lab
        .run_client(&args, &format!("{PASSWORD}\n"), SECS(20));
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let gateway = forti.lab.log("gateway.log");
    assert!(gateway.contains("wrong code"), "{gateway}");
    assert!(!gateway.contains("GET /remote/sslvpn-tunnel"), "{gateway}");
    let entry = format!("_challenge:code={TOKEN}");
    let args = forti.client_args(&script, &["--non-inter", "-F", &entry]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    forti.lab.spawn_client(&args, &format!("{PASSWORD}\n"));
    forti.assert_tunnel_up();
    let gateway = forti.lab.log("gateway.log");
    assert!(
        gateway.contains("token accepted for user \"alice\""),
        "{gateway}"
    );
}

#[test]
fn our_client_gives_up_on_a_wrong_password_without_a_terminal() {
    let forti = Forti::start("forti-ours-refused", &[], false);
    let script = forti.lab.recording_script();
    let args = forti.client_args(&script, &["--non-inter"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = forti.lab.run_client(&args, "not the password\n", SECS(20));
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let gateway = forti.lab.log("gateway.log");
    assert_eq!(
        gateway.matches("POST /remote/logincheck").count(),
        1,
        "{gateway}"
    );
    assert!(
        !gateway.contains("GET /remote/fortisslvpn_xml"),
        "{gateway}"
    );
    assert!(forti.lab.log("reasons").is_empty());
}

/// NetworkManager's two steps: `--authenticate` prints the cookie, which then brings the
/// tunnel up from standard input.
#[test]
fn our_client_authenticates_then_connects_with_the_cookie() {
    let mut forti = Forti::start("forti-ours-cookie", &[], false);
    let script = forti.lab.recording_script();
    let args = forti.client_args(&script, &["--authenticate"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = forti
        .lab
        .run_client(&args, &format!("{PASSWORD}\n"), SECS(20));
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let cookie = stdout
        .lines()
        .find_map(|l| l.strip_prefix("COOKIE='"))
        .and_then(|c| c.strip_suffix('\''))
        .unwrap_or_else(|| panic!("no COOKIE in {stdout}"))
        .to_string();
    assert!(cookie.starts_with("SVPNCOOKIE="), "{cookie}");
    assert!(!forti
        .lab
        .log("gateway.log")
        .contains("GET /remote/sslvpn-tunnel"));
    let args: Vec<String> = [
        "--protocol=fortinet",
        "--cookie-on-stdin",
        "--servercert",
        &forti.pin,
        "-s",
        &script,
    ]
    .map(str::to_string)
    .into_iter()
    .chain([format!("https://{}/", forti.lab.server_ip)])
    .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    forti.lab.spawn_client(&args, &format!("{cookie}\n"));
    forti.assert_tunnel_up();
}

/// A gateway that refuses the tunnel request answers in HTTP and closes at once: the client
/// must read that answer (not fail writing PPP into the closed connection) and exit with
/// status 2, the cookie being refused. Upstream's fortinet-auth-and-config checks the same.
#[test]
fn our_client_exits_2_when_the_tunnel_request_is_refused() {
    let forti = Forti::start("forti-ours-refuse-tunnel", &["--refuse-tunnel"], false);
    let script = forti.lab.recording_script();
    let args = forti.client_args(&script, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = forti
        .lab
        .run_client(&args, &format!("{PASSWORD}\n"), SECS(20));
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}\n{}", forti.logs());
    assert!(text.contains("cookie was rejected by server"), "{text}");
    assert!(forti.lab.log("reasons").is_empty(), "no tunnel, no script");
}
