//! `--protocol=f5` against our F5 BIG-IP APM test gateway (`src/bin/f5_gateway.rs`):
//! Debian's openconnect 9.01 proves the gateway — the HTML logon form (with the `domain`
//! select as authgroup), the second-factor form, the XML configuration, the cookie-less
//! tunnel request, PPP in F5 framing and in HDLC framing, ping and iperf3 through the
//! tunnel, the hangup — and the gateway's own refusals are checked on the wire.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::Duration;

use ferroconnect_interop::{bin, output_text, pin_sha256, ping_counts, Lab, Pki};

const SECS: fn(u64) -> Duration = Duration::from_secs;
const USER: &str = "alice";
const PASSWORD: &str = "s3cret pass";
const CODE: &str = "123456";
const DNS_SUFFIX: &str = "example.test";

/// A lab with Debian's openconnect and the gateway running in the server namespace.
struct F5 {
    lab: Lab,
    pin: String,
    /// The address the gateway gives the client.
    client_addr: String,
}

impl F5 {
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
        let gateway = bin("f5_gateway").display().to_string();
        let listen = format!("{}:443", lab.server_ip);
        let route = format!("{}/32", lab.behind_ip);
        let tun = format!("{}g", lab.name);
        let dns = lab.server_ip.clone();
        let log = lab.dir.join("gateway.file.log").display().to_string();
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
            "--dns-suffix",
            DNS_SUFFIX,
            "--route",
            &route,
            "--tun",
            &tun,
            "--log",
            &log,
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

    /// openconnect's arguments: the F5 protocol, our user, the pinned certificate, the
    /// recording vpnc-script, then `rest` and the server URL.
    fn client_args(&self, script: &str, rest: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "--protocol=f5",
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

    /// Starts openconnect in the background with the password on stdin.
    fn spawn_client(&mut self, rest: &[&str]) -> u32 {
        let script = self.lab.recording_script();
        let args = self.client_args(&script, rest);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.lab.spawn_client(&args, &format!("{PASSWORD}\n"))
    }

    fn gateway_log(&self) -> String {
        self.lab.log("gateway.log")
    }

    /// Both logs, for a failed assertion.
    fn logs(&self) -> String {
        format!(
            "client:\n{}\ngateway:\n{}",
            self.lab.log("client.log"),
            self.gateway_log()
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
        let get = |name: &str| env.get(name).map(String::as_str);
        assert_eq!(
            get("INTERNAL_IP4_ADDRESS"),
            Some(self.client_addr.as_str()),
            "{}",
            self.logs()
        );
        // LAN0 became the one split-include route, DNS0 and DNSSuffix0 the resolver.
        assert_eq!(get("CISCO_SPLIT_INC"), Some("1"), "{env:?}");
        assert_eq!(
            get("CISCO_SPLIT_INC_0_ADDR"),
            Some(self.lab.behind_ip.as_str())
        );
        assert_eq!(get("CISCO_SPLIT_INC_0_MASKLEN"), Some("32"));
        assert_eq!(get("INTERNAL_IP4_DNS"), Some(self.lab.server_ip.as_str()));
        assert_eq!(get("CISCO_DEF_DOMAIN"), Some(DNS_SUFFIX));
        let ping = self
            .lab
            .in_client(&format!("ping -c 3 -i 0.2 -W 2 {}", self.lab.behind_ip));
        assert_eq!(
            ping_counts(&output_text(&ping)),
            (3, 3),
            "{}",
            output_text(&ping)
        );
        let gateway = self.gateway_log();
        assert!(
            gateway.contains(&format!("client {}", self.client_addr)),
            "the gateway's PPP did not come up with the client's address:\n{gateway}"
        );
        // The tunnel request carries no cookies: the session and Z in its query say who.
        assert!(
            gateway.contains("cookies=none"),
            "the tunnel request carried cookies:\n{gateway}"
        );
    }

    /// Bytes iperf3 (`-J`) says the receiving side got, at least a megabyte.
    fn assert_iperf_moves_a_megabyte(&self, direction: &str) {
        let args = format!("-J -t 2 {direction}");
        let out = self.lab.iperf(&args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "iperf3 {args} failed:\n{}\n{}",
            output_text(&out),
            self.logs()
        );
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let bytes = json["end"]["sum_received"]["bytes"]
            .as_u64()
            .unwrap_or_else(|| panic!("no received bytes in iperf3's report:\n{text}"));
        // A megabyte is far below what two seconds move even over a slow tun.
        assert!(
            bytes > 1_000_000,
            "iperf3 {direction} moved only {bytes} bytes:\n{}",
            self.logs()
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

#[test]
fn debian_openconnect_logs_in_and_passes_traffic_through_the_f5_gateway() {
    // Two domains in the logon form's select: `--authgroup` picks the second.
    let mut f5 = F5::start("f5-traffic", &["--domain", "corp", "--domain", "lab"], true);
    let pid = f5.spawn_client(&["--authgroup", "lab"]);
    f5.assert_tunnel_up();
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
    f5.lab.signal_client(pid, "INT");
    assert_eq!(f5.lab.wait_client(SECS(10)), Some(0), "{}", f5.logs());
    let gateway = f5
        .lab
        .wait_for_log("gateway.log", "hangup: session forgotten", SECS(5));
    assert!(gateway.contains("PPP closed: ByPeer"), "{gateway}");
    assert!(gateway.contains("then closed by the client"), "{gateway}");
    assert!(
        gateway.contains("GET /vdesk/hangup.php3?hangup_error=1"),
        "{gateway}"
    );
    assert_eq!(f5.lab.log("reasons"), "pre-init\nconnect\ndisconnect\n");
    // `--log FILE` got the same lines as stderr.
    assert!(f5
        .lab
        .log("gateway.file.log")
        .contains("hangup: session forgotten"));
}

#[test]
fn debian_openconnect_over_hdlc_framing() {
    let mut f5 = F5::start("f5-hdlc", &["--hdlc"], true);
    f5.spawn_client(&[]);
    f5.assert_tunnel_up();
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

/// openconnect 9.01 keys `-F` on the form's `id` (`auth_form`, not its name `e1`), so the
/// second form's `_F5_challenge` is answered without a prompt.
#[test]
fn debian_openconnect_answers_a_second_factor_form() {
    let mut f5 = F5::start("f5-code", &["--otp", CODE], true);
    let script = f5.lab.recording_script();

    // A wrong code from -F is posted again for every new form: after three the gateway
    // ends the policy session, the logon page comes back, and without a terminal
    // openconnect cannot give the password a second time.
    let args = f5.client_args(
        &script,
        &["--non-inter", "-F", "auth_form:_F5_challenge=654321"],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = f5.lab.run_client(&args, &format!("{PASSWORD}\n"), SECS(20));
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", f5.gateway_log());
    assert!(text.contains("Enter the code from your token"), "{text}");
    assert!(
        text.contains("User input required in non-interactive mode"),
        "{text}"
    );
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

    // The right code, non-interactively.
    let entry = format!("auth_form:_F5_challenge={CODE}");
    f5.spawn_client(&["--non-inter", "-F", &entry]);
    f5.assert_tunnel_up();
    let gateway = f5.gateway_log();
    assert!(
        gateway.contains("password accepted for user \"alice\" (domain None); code form sent"),
        "{gateway}"
    );
    assert!(
        gateway.contains("policy form: _F5_challenge=<6 bytes>&vhost=standard"),
        "{gateway}"
    );
    assert!(
        gateway.contains("code accepted for user \"alice\""),
        "{gateway}"
    );
}

/// The gateway answers a wrong password with the logon page and its error; openconnect
/// shows the error, asks for the password again and, being non-interactive, exits 1.
#[test]
fn wrong_password_gets_the_form_again_and_a_non_interactive_client_gives_up() {
    let f5 = F5::start("f5-refused", &[], true);
    let script = f5.lab.recording_script();
    let args = f5.client_args(&script, &["--non-inter"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = f5.lab.run_client(&args, "not the password\n", SECS(20));
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
    assert!(
        f5.lab.log("reasons").is_empty(),
        "the script ran: {}",
        f5.lab.log("reasons")
    );
}

/// What the gateway does with tunnel requests it cannot place, seen on the wire: an
/// unknown session gets `504` and the connection is closed; the wrong framing `400`.
#[test]
fn tunnel_requests_for_unknown_sessions_get_504_and_the_connection_closes() {
    let f5 = F5::start("f5-504", &[], true);
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
    let mut f5 = F5::start("f5-ours", &["--domain", "corp", "--domain", "lab"], false);
    let pid = f5.spawn_client(&["--authgroup", "lab"]);
    f5.assert_tunnel_up();
    assert!(
        f5.gateway_log().contains("domain=lab"),
        "{}",
        f5.gateway_log()
    );
    f5.assert_iperf_moves_a_megabyte("");
    f5.assert_iperf_moves_a_megabyte("-R");
    f5.lab.signal_client(pid, "INT");
    assert_eq!(f5.lab.wait_client(SECS(10)), Some(0), "{}", f5.logs());
    let gateway = f5
        .lab
        .wait_for_log("gateway.log", "hangup: session forgotten", SECS(5));
    assert!(gateway.contains("PPP closed"), "{gateway}");
    assert_eq!(f5.lab.log("reasons"), "pre-init\nconnect\ndisconnect\n");
}

#[test]
fn our_client_over_hdlc_framing() {
    let mut f5 = F5::start("f5-ours-hdlc", &["--hdlc"], false);
    f5.spawn_client(&[]);
    f5.assert_tunnel_up();
    assert!(
        f5.gateway_log().contains("hdlc_framing=yes"),
        "{}",
        f5.gateway_log()
    );
    f5.assert_iperf_moves_a_megabyte("");
    f5.assert_iperf_moves_a_megabyte("-R");
}

#[test]
fn our_client_answers_the_second_factor_form_from_a_form_entry() {
    let mut f5 = F5::start("f5-ours-code", &["--otp", CODE], false);
    let entry = format!("auth_form:_F5_challenge={CODE}");
    f5.spawn_client(&["--non-inter", "-F", &entry]);
    f5.assert_tunnel_up();
    assert!(
        f5.gateway_log()
            .contains("code accepted for user \"alice\""),
        "{}",
        f5.gateway_log()
    );
}

/// NetworkManager's two steps: `--authenticate` prints the session cookies, which then bring
/// the tunnel up from standard input.
#[test]
fn our_client_authenticates_then_connects_with_the_cookie() {
    let mut f5 = F5::start("f5-ours-cookie", &[], false);
    let script = f5.lab.recording_script();
    let args = f5.client_args(&script, &["--authenticate"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = f5.lab.run_client(&args, &format!("{PASSWORD}\n"), SECS(20));
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let cookie = stdout
        .lines()
        .find_map(|l| l.strip_prefix("COOKIE='"))
        .and_then(|c| c.strip_suffix('\''))
        .unwrap_or_else(|| panic!("no COOKIE in {stdout}"))
        .to_string();
    assert!(
        cookie.contains("MRHSession=") && cookie.contains("F5_ST="),
        "{cookie}"
    );
    assert!(!f5.gateway_log().contains("GET /myvpn"));
    let args: Vec<String> = [
        "--protocol=f5",
        "--cookie-on-stdin",
        "--servercert",
        &f5.pin,
        "-s",
        &script,
    ]
    .map(str::to_string)
    .into_iter()
    .chain([format!("https://{}/", f5.lab.server_ip)])
    .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    f5.lab.spawn_client(&args, &format!("{cookie}\n"));
    f5.assert_tunnel_up();
}
