//! The vendor test gateways (`src/bin/*_gateway.rs`, built on [`crate::gateway`]) in a
//! [`Lab`]: one started in the server namespace with the lab's certificate and addresses, and
//! a client — Debian's openconnect or ours — logging in to it as [`USER`], with the checks the
//! vendors' tests share (the tunnel up, traffic through it, the logout).

use std::collections::HashMap;
use std::process::Output;
use std::time::Duration;

use crate::{
    authenticate_values, bin, output_text, pin_sha256, ping_counts, poll_until, wait_until, Lab,
    Pki,
};

/// The one user every gateway is started with, and its password.
pub const USER: &str = "alice";
pub const PASSWORD: &str = "s3cret pass";

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// Which test gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    Fortinet,
    F5,
    /// GlobalProtect (`gp_gateway`): no PPP, ESP for its UDP channel.
    Gp,
    /// Juniper Network Connect (`nc_gateway`): no PPP, ESP for its UDP channel.
    Nc,
    /// Pulse Connect Secure (`pulse_gateway`): no PPP, ESP for its UDP channel.
    Pulse,
    /// Array Networks (`array_gateway`): no PPP, raw IP over TLS and DTLS.
    Array,
}

impl Vendor {
    /// The gateway's binary.
    pub fn gateway(self) -> &'static str {
        match self {
            Self::Fortinet => "fortinet_gateway",
            Self::F5 => "f5_gateway",
            Self::Gp => "gp_gateway",
            Self::Nc => "nc_gateway",
            Self::Pulse => "pulse_gateway",
            Self::Array => "array_gateway",
        }
    }

    /// openconnect's `--protocol` for it.
    pub fn protocol(self) -> &'static str {
        match self {
            Self::Fortinet => "fortinet",
            Self::F5 => "f5",
            Self::Gp => "gp",
            Self::Nc => "nc",
            Self::Pulse => "pulse",
            Self::Array => "array",
        }
    }

    /// Whether its tunnel runs PPP (and the gateway logs PPP's end).
    pub fn carries_ppp(self) -> bool {
        !matches!(self, Self::Gp | Self::Nc | Self::Pulse | Self::Array)
    }
}

/// The method Array test gateways are started with (`--method`), as the client's `-F`
/// gives it.
pub const ARRAY_METHOD: &str = "local";

/// A lab for a vendor gateway and the client that logs in to it.
#[derive(Debug)]
pub struct GatewayLab {
    pub lab: Lab,
    pub vendor: Vendor,
    pub pki: Pki,
    /// The `--servercert` pin of the gateway's certificate.
    pub pin: String,
    /// The gateway's own tunnel address and the one it gives the client: .1 and .2 of the
    /// lab's pool.
    pub tunnel_addr: String,
    pub client_addr: String,
    /// The recording vpnc-script (`-s`) every client runs.
    pub script: String,
}

impl GatewayLab {
    /// The lab, its PKI and the recording script; the client is Debian's openconnect when
    /// `real_client`, else ours. [`GatewayLab::start_gateway`] starts the gateway.
    pub fn new(test: &str, vendor: Vendor, real_client: bool) -> Self {
        let mut lab = Lab::new(test);
        if real_client {
            lab.use_real_client();
        }
        let pki = Pki::create(&lab.dir, &lab.server_ip);
        // The lab's pool is 198.19.M.0: the gateway is .1 in it and the client .2.
        let pool = lab.pool.strip_suffix('0').unwrap().to_string();
        Self {
            pin: pin_sha256(&pki.server_cert),
            tunnel_addr: format!("{pool}1"),
            client_addr: format!("{pool}2"),
            script: lab.recording_script(),
            lab,
            vendor,
            pki,
        }
    }

    /// [`GatewayLab::new`], then [`GatewayLab::start_gateway`] with `args`.
    pub fn start(test: &str, vendor: Vendor, args: &[&str], real_client: bool) -> Self {
        let mut gateway = Self::new(test, vendor, real_client);
        gateway.start_gateway(args);
        gateway
    }

    /// Starts the gateway in the server namespace, its output going to `gateway.log`, and
    /// waits until it listens: on port 443 of the server's address with the lab's
    /// certificate, for [`USER`], the DNS server the server's address, the one split route
    /// the host behind it, the tun device `NAMEg`; then `args`.
    pub fn start_gateway(&mut self, args: &[&str]) {
        let lab = &self.lab;
        let gateway = bin(self.vendor.gateway()).display().to_string();
        let listen = format!("{}:443", lab.server_ip);
        let route = format!("{}/32", lab.behind_ip);
        let tun = format!("{}g", lab.name);
        let dns = lab.server_ip.clone();
        let (cert, key) = (
            self.pki.server_cert.display().to_string(),
            self.pki.server_key.display().to_string(),
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
            &self.tunnel_addr,
            "--client-addr",
            &self.client_addr,
            "--dns",
            &dns,
            "--route",
            &route,
            "--tun",
            &tun,
        ];
        argv.extend_from_slice(args);
        let ns = lab.server_ns.clone();
        self.lab.spawn_in(&ns, &argv, "gateway.log");
        self.lab
            .wait_for_log("gateway.log", "listening on https://", SECS(10));
    }

    /// The client's arguments: the vendor's protocol, [`USER`] with the password on stdin,
    /// the pinned certificate, the recording vpnc-script, then `rest` and the gateway's URL.
    pub fn client_args(&self, rest: &[&str]) -> Vec<String> {
        match self.vendor {
            // Array's login asks for its method too (not an authgroup: a form field).
            Vendor::Array => {
                let entry = format!("form:method={ARRAY_METHOD}");
                self.args(&["-u", USER, "--passwd-on-stdin", "-F", &entry], rest)
            }
            _ => self.args(&["-u", USER, "--passwd-on-stdin"], rest),
        }
    }

    /// The vendor's protocol, `login`, the pinned certificate, the recording vpnc-script,
    /// `rest` and the gateway's URL.
    fn args(&self, login: &[&str], rest: &[&str]) -> Vec<String> {
        let protocol = format!("--protocol={}", self.vendor.protocol());
        let server = ["--servercert", &self.pin, "-s", &self.script];
        let url = format!("https://{}/", self.lab.server_ip);
        [protocol.as_str()]
            .iter()
            .chain(login)
            .chain(&server)
            .chain(rest)
            .map(|a| a.to_string())
            .chain([url])
            .collect()
    }

    /// Runs the client with [`GatewayLab::client_args`] and `stdin` to its end (at most
    /// 20 s).
    pub fn run_client(&self, rest: &[&str], stdin: &str) -> Output {
        let args = self.client_args(rest);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.lab.run_client(&args, stdin, SECS(20))
    }

    /// Starts the client with [`GatewayLab::client_args`] in the background, the password
    /// on stdin; its pid.
    pub fn spawn_client(&mut self, rest: &[&str]) -> u32 {
        let args = self.client_args(rest);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.lab.spawn_client(&args, &format!("{PASSWORD}\n"))
    }

    /// NetworkManager's first step: `--authenticate` (exit 0) and the `COOKIE` it prints.
    pub fn authenticate(&self) -> String {
        let out = self.run_client(&["--authenticate"], &format!("{PASSWORD}\n"));
        assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let cookie = authenticate_values(&stdout)("COOKIE");
        cookie
    }

    /// NetworkManager's second step: the client in the background with `cookie` on stdin
    /// (`--cookie-on-stdin`), no user or password; its pid.
    pub fn spawn_with_cookie(&mut self, cookie: &str) -> u32 {
        let args = self.args(&["--cookie-on-stdin"], &[]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.lab.spawn_client(&args, &format!("{cookie}\n"))
    }

    pub fn gateway_log(&self) -> String {
        self.lab.log("gateway.log")
    }

    /// Both logs, for a failed assertion.
    pub fn logs(&self) -> String {
        format!(
            "client:\n{}\ngateway:\n{}",
            self.lab.log("client.log"),
            self.gateway_log()
        )
    }

    /// Waits for the tunnel, then checks what the vpnc-script was given (the client's
    /// address, the one split-include route, the DNS server), that the host behind the
    /// gateway answers 3 pings of 3, and that the gateway's PPP gave the client its address.
    /// The script's environment, for the vendor's own checks.
    pub fn assert_tunnel_up(&self) -> HashMap<String, String> {
        assert!(
            self.lab.ping_behind(SECS(20)),
            "no tunnel:\n{}",
            self.logs()
        );
        let env = self.lab.env_file("connect");
        let get = |name: &str| env.get(name).map(String::as_str);
        assert_eq!(
            get("INTERNAL_IP4_ADDRESS"),
            Some(self.client_addr.as_str()),
            "{}",
            self.logs()
        );
        assert_eq!(get("CISCO_SPLIT_INC"), Some("1"), "{env:?}");
        assert_eq!(
            get("CISCO_SPLIT_INC_0_ADDR"),
            Some(self.lab.behind_ip.as_str())
        );
        assert_eq!(get("INTERNAL_IP4_DNS"), Some(self.lab.server_ip.as_str()));
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
        env
    }

    /// iperf3 (TCP, 2 s, `direction` "" or "-R") moves more than a megabyte, by the
    /// receiving side's count (`-J`).
    pub fn assert_iperf_moves_a_megabyte(&self, direction: &str) {
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

    /// The tunnel is up ([`GatewayLab::assert_tunnel_up`]) and runs PPP over DTLS: Debian's
    /// openconnect says so (`Established DTLS connection`, then `with SSL disconnected and
    /// DTLS established`), the gateway logged the handshake (of `dtls_version`, `DTLSv1.2`
    /// or `DTLSv1`) and the DTLS tunnel, and 20 pings come back as UDP datagrams. The
    /// script's environment.
    pub fn assert_dtls_tunnel_up(&self, dtls_version: &str) -> HashMap<String, String> {
        let env = self.assert_tunnel_up();
        let client = self.lab.log("client.log");
        for line in [
            "Established DTLS connection (using ",
            &format!(
                "Configured as {}, with SSL disconnected and DTLS established",
                self.client_addr
            ),
        ] {
            assert!(client.contains(line), "no {line:?}:\n{}", self.logs());
        }
        let gateway = self.gateway_log();
        for line in [
            format!("DTLS handshake from {}:", self.lab.client_ip),
            format!("({dtls_version}, "),
            "DTLS tunnel for session ".to_string(),
            "encapsulation over DTLS)".to_string(),
        ] {
            assert!(gateway.contains(&line), "no {line:?}:\n{gateway}");
        }
        self.lab.assert_pings_over_udp(20);
        env
    }

    /// [`GatewayLab::assert_iperf_moves_a_megabyte`], the data (or, uploading, its
    /// acknowledgements) reaching the client as UDP datagrams: over DTLS.
    pub fn assert_iperf_moves_a_megabyte_over_udp(&self, direction: &str) {
        let before = self.lab.client_udp_in();
        self.assert_iperf_moves_a_megabyte(direction);
        let datagrams = self.lab.client_udp_in() - before;
        // A megabyte down is some 700 full packets; the acknowledgements of one up, some 100.
        let least = if direction == "-R" { 700 } else { 100 };
        assert!(
            datagrams > least,
            "iperf3 {direction}: only {datagrams} datagrams reached the client:\n{}",
            self.logs()
        );
    }

    /// Sends each of `datagrams` as it is (empty ones too) from the client namespace to the
    /// gateway's UDP port 443.
    pub fn send_datagrams(&self, datagrams: &[&[u8]]) {
        self.send_datagrams_to(443, datagrams);
    }

    /// [`GatewayLab::send_datagrams`] to UDP port `port`.
    pub fn send_datagrams_to(&self, port: u16, datagrams: &[&[u8]]) {
        let hex: Vec<String> = datagrams
            .iter()
            .map(|d| {
                format!(
                    "'{}'",
                    d.iter().map(|b| format!("{b:02x}")).collect::<String>()
                )
            })
            .collect();
        let script = "import socket, sys\n\
                      s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                      for h in sys.argv[3:]: s.sendto(bytes.fromhex(h), (sys.argv[1], int(sys.argv[2])))";
        let out = self.lab.in_client(&format!(
            "python3 -c '{}' {} {port} {}",
            script.replace('\'', "\""),
            self.lab.server_ip,
            hex.join(" ")
        ));
        assert!(out.status.success(), "{}", output_text(&out));
    }

    /// A DTLS 1.2 handshake with the gateway's port 443 from the client namespace (`openssl
    /// s_client`, told the link takes 9000 bytes so that a record of up to 8 KiB leaves
    /// whole, in IP fragments), then each of `records` as one record (one write to
    /// s_client's input), half a second apart; what the gateway sent back.
    pub fn dtls_exchange(&self, records: &[&[u8]]) -> Vec<u8> {
        let octal =
            |record: &[u8]| -> String { record.iter().map(|b| format!("\\{b:03o}")).collect() };
        let writes: Vec<String> = records
            .iter()
            .map(|r| format!("printf '{}'; sleep 0.5", octal(r)))
            .collect();
        let out = self.lab.in_client(&format!(
            "(sleep 0.5; {}; sleep 1) | timeout 10 openssl s_client -dtls1_2 -mtu 9000 -quiet \
             -no_ign_eof -connect {}:443 2>/dev/null",
            writes.join("; "),
            self.lab.server_ip
        ));
        out.stdout
    }

    /// SIGINT to the client `pid`: it ends PPP (for the vendors that run it), logs out (the
    /// gateway logs `logged_out`) and exits 0, and the script ran for its three reasons.
    /// The gateway's log.
    pub fn disconnect(&mut self, pid: u32, logged_out: &str) -> String {
        self.wait_until_tunnel_is_quiet();
        self.lab.signal_client(pid, "INT");
        assert_eq!(self.lab.wait_client(SECS(10)), Some(0), "{}", self.logs());
        let gateway = self.lab.wait_for_log("gateway.log", logged_out, SECS(5));
        if self.vendor.carries_ppp() {
            assert!(gateway.contains("PPP closed"), "{gateway}");
        }
        assert_eq!(self.lab.log("reasons"), "pre-init\nconnect\ndisconnect\n");
        gateway
    }

    /// Waits until the gateway's tun device has sent nothing for 300 ms (at most 5 s).
    /// openconnect 9.01 closes its socket without reading what is left: a packet for it
    /// still unread turns the close into a reset, which drops its goodbye when that is
    /// still queued behind an unacknowledged segment. A quiet tunnel leaves nothing unread.
    fn wait_until_tunnel_is_quiet(&self) {
        let counter = format!("/sys/class/net/{}g/statistics/tx_packets", self.lab.name);
        let sent = || {
            let out = self.lab.in_server(&format!("cat {counter}"));
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        let mut last = sent();
        poll_until(SECS(5), Duration::ZERO, || {
            // A whole quiet period between the two readings.
            std::thread::sleep(Duration::from_millis(300));
            let now = sent();
            let quiet = now == last;
            last = now;
            quiet.then_some(())
        });
    }

    /// SIGUSR2 to the client `pid`: it drops the tunnel connection, opens a new one with
    /// the same session (the gateway sees `tunnel_request` once more), negotiates PPP again
    /// (for the vendors that run it) for the same address and runs the script's
    /// `attempt-reconnect` and `reconnect`; the tunnel carries pings again.
    pub fn assert_reconnects(&mut self, pid: u32, tunnel_request: &str) {
        let before = self.gateway_log().matches(tunnel_request).count();
        self.lab.signal_client(pid, "USR2");
        self.lab
            .wait_for_log("reasons", "reconnect\nreconnect", SECS(20));
        let gateway = self.gateway_log();
        assert_eq!(
            gateway.matches(tunnel_request).count(),
            before + 1,
            "{}",
            self.logs()
        );
        // The script notes the reason before it writes the environment: wait for both.
        let again = wait_until(SECS(10), || {
            let env = self.lab.env_file("reconnect");
            env.contains_key("INTERNAL_IP4_ADDRESS").then_some(env)
        })
        .unwrap_or_default();
        assert_eq!(
            again.get("INTERNAL_IP4_ADDRESS"),
            Some(&self.client_addr),
            "{again:?}"
        );
        assert!(
            self.lab.ping_behind(SECS(10)),
            "no tunnel after the reconnect:\n{}",
            self.logs()
        );
        // 9.01 prints "Reconnected" only for the protocols its reconnect goes through
        // cstp's and ppp's code; after NC, Pulse and Array reconnects it says nothing.
        let quiet_9_01 = matches!(self.vendor, Vendor::Nc | Vendor::Pulse | Vendor::Array)
            && self.lab.client_bin.ends_with("sbin/openconnect");
        assert!(
            quiet_9_01 || self.lab.log("client.log").contains("Reconnected"),
            "{}",
            self.logs()
        );
    }

    /// No client ran the vpnc-script (there was no tunnel).
    pub fn assert_script_did_not_run(&self) {
        let reasons = self.lab.log("reasons");
        assert!(reasons.is_empty(), "the script ran: {reasons}");
    }
}
