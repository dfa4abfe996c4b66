//! Our `ocserv` in network namespaces with real tun devices, against Debian's openconnect
//! and against our own client: every scenario runs with both.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::Duration;

use ferroconnect_interop::{
    authenticate_values, login_args, output_text, sh, wait_until, Lab, Pki,
};

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// Runs a scenario as two tests: with Debian's openconnect and with ours.
macro_rules! with_both_clients {
    ($scenario:ident: $debian:ident, $ours:ident) => {
        #[test]
        fn $debian() {
            $scenario(Client::Debian);
        }

        #[test]
        fn $ours() {
            $scenario(Client::Ours);
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Debian,
    Ours,
}

fn lab(test: &str, client: Client, extra: &str) -> (Lab, Pki) {
    let mut lab = Lab::new(test);
    if client == Client::Debian {
        lab.use_real_client();
    }
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    lab.start_our_server(&pki, &[("alice", "secret"), ("bob", "hunter2")], extra);
    (lab, pki)
}

/// The tunnel address the client's script was given.
fn vpn_address(lab: &Lab) -> String {
    wait_until(SECS(15), || {
        lab.env_file("connect").get("INTERNAL_IP4_ADDRESS").cloned()
    })
    .unwrap_or_else(|| panic!("no connect script run:\n{}", lab.log("client.log")))
}

/// Logs alice in with `--authenticate` and returns the cookie it printed.
fn authenticate(lab: &Lab, ca: &str, url: &str) -> String {
    let out = lab.run_client(
        &login_args(ca, &["--authenticate", url]),
        "secret\n",
        SECS(30),
    );
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let value = authenticate_values(&stdout);
    value("COOKIE")
}

/// Starts a client (per the lab) logging in as alice, with `extra` options before the URL.
fn connect_alice(lab: &mut Lab, pki: &Pki, extra: &[&str]) {
    let ca = pki.ca_pem.display().to_string();
    let u = url(lab);
    let mut rest = extra.to_vec();
    rest.push(&u);
    lab.spawn_client(&login_args(&ca, &rest), "secret\n");
}

fn url(lab: &Lab) -> String {
    format!("https://{}/", lab.server_ip)
}

fn password_login_and_ping(client: Client) {
    let (mut lab, pki) = lab("srv-login", client, "");
    let script = lab.recording_script();
    let ca = pki.ca_pem.display().to_string();
    let u = url(&lab);
    let pid = lab.spawn_client(&login_args(&ca, &["-s", &script, &u]), "secret\n");
    assert!(
        lab.ping_behind(SECS(20)),
        "no ping over the tunnel:\nclient:\n{}\nserver:\n{}",
        lab.log("client.log"),
        lab.log("ocserv.log")
    );
    let env = lab.env_file("connect");
    let ip = vpn_address(&lab);
    assert!(
        ip.starts_with(&lab.pool[..lab.pool.len() - 1]),
        "{ip} not in {}",
        lab.pool
    );
    assert_eq!(
        env.get("CISCO_DEF_DOMAIN").map(String::as_str),
        Some("example.test")
    );
    assert_eq!(
        env.get("INTERNAL_IP4_DNS").map(String::as_str),
        Some("198.19.0.53")
    );
    assert_eq!(env.get("CISCO_SPLIT_INC").map(String::as_str), Some("1"));
    assert_eq!(
        env.get("CISCO_SPLIT_INC_0_ADDR"),
        Some(&format!("{}0", &lab.behind_ip[..lab.behind_ip.len() - 1]))
    );
    assert_eq!(
        env.get("CISCO_BANNER").map(String::as_str),
        Some("Welcome to the test VPN")
    );
    // Logoff: the client exits 0 and the server logs the user's disconnect.
    lab.signal_client(pid, "INT");
    assert_eq!(
        lab.wait_client(SECS(10)),
        Some(0),
        "{}",
        lab.log("client.log")
    );
    lab.wait_for_log("ocserv.log", "user disconnected", SECS(10));
}

with_both_clients!(password_login_and_ping: debian_client_password_login_and_ping, our_client_password_login_and_ping);

fn wrong_password_then_right(client: Client) {
    let (lab, pki) = lab("srv-badpw", client, "");
    let ca = pki.ca_pem.display().to_string();
    let u = url(&lab);
    let wrong = lab.run_client(
        &login_args(&ca, &["--authenticate", &u]),
        "nope\n",
        SECS(30),
    );
    assert_eq!(wrong.status.code(), Some(1), "{}", output_text(&wrong));
    assert!(
        lab.log("ocserv.log")
            .contains("wrong password for user 'alice'"),
        "{}",
        lab.log("ocserv.log")
    );
    let good = lab.run_client(
        &login_args(&ca, &["--authenticate", &u]),
        "secret\n",
        SECS(30),
    );
    assert_eq!(good.status.code(), Some(0), "{}", output_text(&good));
    assert!(String::from_utf8_lossy(&good.stdout).contains("COOKIE='"));
}

with_both_clients!(wrong_password_then_right: debian_client_wrong_password_then_right, our_client_wrong_password_then_right);

fn certificate_login(client: Client) {
    let mut lab = Lab::new("srv-cert");
    if client == Client::Debian {
        lab.use_real_client();
    }
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let extra = pki.certificate_login_config();
    lab.start_server(
        ferroconnect_interop::ServerKind::Ours,
        &pki,
        "certificate",
        &extra,
    );
    let (cert, key, _) = pki.client_cert(&lab.dir, "carol", "p12pass");
    let script = lab.recording_script();
    let ca = pki.ca_pem.display().to_string();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let u = url(&lab);
    lab.spawn_client(
        &[
            "--non-inter",
            "--cafile",
            &ca,
            "-c",
            &cert,
            "-k",
            &key,
            "-s",
            &script,
            &u,
        ],
        "",
    );
    assert!(
        lab.ping_behind(SECS(20)),
        "no ping with a certificate login:\n{}\n{}",
        lab.log("client.log"),
        lab.log("ocserv.log")
    );
    assert!(lab.log("ocserv.log").contains("user 'carol' authenticated"));
    // Without a certificate: refused.
    let out = lab.run_client(
        &["--non-inter", "--cafile", &ca, "--authenticate", &u],
        "",
        SECS(30),
    );
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
}

with_both_clients!(certificate_login: debian_client_certificate_login, our_client_certificate_login);

fn two_clients_get_different_addresses(client: Client) {
    let (mut lab, pki) = lab("srv-two", client, "");
    let ca = pki.ca_pem.display().to_string();
    let u = url(&lab);
    // Two clients in the one client namespace would fight over routes.
    let second_ns = lab.add_client_ns();
    let script = lab.recording_script();
    lab.spawn_client(&login_args(&ca, &["-s", &script, &u]), "secret\n");
    assert!(lab.ping_behind(SECS(20)), "{}", lab.log("client.log"));
    let first = vpn_address(&lab);

    let script2 = lab.dir.join("script2.sh");
    std::fs::write(
        &script2,
        format!(
            "#!/bin/sh\nenv | sort > {}/env2.$reason\nexec /usr/share/vpnc-scripts/vpnc-script\n",
            lab.dir.display()
        ),
    )
    .unwrap();
    sh(&format!("chmod +x {}", script2.display()));
    let script2 = script2.display().to_string();
    let bob = [
        "-u",
        "bob",
        "--passwd-on-stdin",
        "--non-inter",
        "--cafile",
        &ca,
        "-s",
        &script2,
        &u,
    ];
    lab.spawn_client_in(&second_ns, &bob, "hunter2\n", "client2.log");
    let ping2 = wait_until(SECS(20), || {
        let out = lab.in_ns(&second_ns, &format!("ping -c 1 -W 1 {}", lab.behind_ip));
        out.status.success().then_some(())
    });
    let second_ip_vpn = lab
        .log("env2.connect")
        .lines()
        .find_map(|l| l.strip_prefix("INTERNAL_IP4_ADDRESS=").map(str::to_string));
    assert!(
        ping2.is_some(),
        "second client cannot ping:\n{}\n{}",
        lab.log("client2.log"),
        lab.log("ocserv.log")
    );
    let second_vpn = second_ip_vpn.expect("second client got an address");
    assert_ne!(first, second_vpn, "both clients got {first}");
    // The first client still works.
    assert!(lab.ping_behind(SECS(10)));
}

with_both_clients!(two_clients_get_different_addresses: debian_clients_get_different_addresses, our_clients_get_different_addresses);

fn cookie_reconnect_keeps_address(client: Client) {
    let (mut lab, pki) = lab("srv-cookie", client, "");
    let ca = pki.ca_pem.display().to_string();
    let u = url(&lab);
    let cookie = authenticate(&lab, &ca, &u);
    let script = lab.recording_script();
    let connect = |lab: &mut Lab| {
        let _ = std::fs::remove_file(lab.dir.join("env.connect"));
        let pid = lab.spawn_client(
            &[
                "--cookie-on-stdin",
                "--non-inter",
                "--cafile",
                &ca,
                "-s",
                &script,
                &u,
            ],
            &format!("{cookie}\n"),
        );
        assert!(
            lab.ping_behind(SECS(20)),
            "{}\n{}",
            lab.log("client.log"),
            lab.log("ocserv.log")
        );
        (pid, vpn_address(lab))
    };
    let (pid, first) = connect(&mut lab);
    // SIGHUP: the client leaves without logging off, so the cookie stays valid.
    lab.signal_client(pid, "HUP");
    assert_eq!(
        lab.wait_client(SECS(10)),
        Some(0),
        "{}",
        lab.log("client.log")
    );
    let (pid, again) = connect(&mut lab);
    assert_eq!(
        first, again,
        "a reconnect with the cookie must keep the address"
    );
    assert!(lab.log("ocserv.log").contains("session reused"));
    // A logoff ends the session: the cookie no longer opens a tunnel (exit 2).
    lab.signal_client(pid, "INT");
    assert_eq!(lab.wait_client(SECS(10)), Some(0));
    let refused = lab.run_client(
        &["--cookie-on-stdin", "--non-inter", "--cafile", &ca, &u],
        &format!("{cookie}\n"),
        SECS(30),
    );
    assert_eq!(refused.status.code(), Some(2), "{}", output_text(&refused));
}

with_both_clients!(cookie_reconnect_keeps_address: debian_client_cookie_reconnect_keeps_address, our_client_cookie_reconnect_keeps_address);

fn sighup_serves_new_routes(client: Client) {
    let (mut lab, pki) = lab("srv-hup", client, "");
    let script = lab.recording_script();
    let ca = pki.ca_pem.display().to_string();
    let u = url(&lab);
    lab.spawn_client(&login_args(&ca, &["-s", &script, &u]), "secret\n");
    assert!(lab.ping_behind(SECS(20)), "{}", lab.log("client.log"));
    assert_eq!(
        lab.env_file("connect")
            .get("CISCO_SPLIT_INC")
            .map(String::as_str),
        Some("1")
    );
    // Add a route and reload.
    let config_path = lab.dir.join("ocserv.conf");
    let mut config = std::fs::read_to_string(&config_path).unwrap();
    config.push_str("route = 203.0.113.0/24\n");
    std::fs::write(&config_path, config).unwrap();
    sh(&format!("kill -HUP {}", lab.server_pid()));
    lab.wait_for_log("ocserv.log", "configuration reloaded", SECS(10));
    // The connected user keeps working.
    assert!(
        lab.ping_behind(SECS(10)),
        "first client lost its tunnel on reload"
    );
    // The next client gets both routes.
    let cookie = authenticate(&lab, &ca, &u);
    // Connect the second session from the server namespace's point of view: the split
    // routes are what the CONNECT response lists, so dump them with a no-op script.
    let dump = lab.dir.join("dump.sh");
    std::fs::write(
        &dump,
        format!(
            "#!/bin/sh\n[ \"$reason\" = connect ] && env | sort > {}/env2.connect\nexit 0\n",
            lab.dir.display()
        ),
    )
    .unwrap();
    sh(&format!("chmod +x {}", dump.display()));
    let dump = dump.display().to_string();
    lab.spawn_client_logged(
        &[
            "--cookie-on-stdin",
            "--non-inter",
            "--cafile",
            &ca,
            "-s",
            &dump,
            "-i",
            "tunx",
            &u,
        ],
        &format!("{cookie}\n"),
        "client2.log",
    );
    let env2 = wait_until(SECS(15), || {
        let text = lab.log("env2.connect");
        (!text.is_empty()).then_some(text)
    })
    .unwrap_or_else(|| panic!("second client never connected:\n{}", lab.log("client2.log")));
    assert!(env2.contains("CISCO_SPLIT_INC=2"), "{env2}");
    assert!(env2.contains("=203.0.113.0"), "{env2}");
}

with_both_clients!(sighup_serves_new_routes: debian_client_sighup_serves_new_routes, our_client_sighup_serves_new_routes);

#[test]
fn scripts_get_ocserv_environment_and_sigterm_tells_clients() {
    let mut lab = Lab::new("srv-scripts");
    lab.use_real_client();
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let d = lab.dir.display().to_string();
    for reason in ["connect", "disconnect", "host-update"] {
        lab.script(
            &format!("{reason}.sh"),
            &format!("env | sort > {d}/server-env.{reason}"),
        );
    }
    let extra = format!(
        "connect-script = {d}/connect.sh\ndisconnect-script = {d}/disconnect.sh\n\
         host-update-script = {d}/host-update.sh\n"
    );
    lab.start_our_server(&pki, &[("alice", "secret")], &extra);
    let ca = pki.ca_pem.display().to_string();
    let u = url(&lab);
    let script = lab.recording_script();
    lab.spawn_client(
        &login_args(&ca, &["-s", &script, "--local-hostname", "mylaptop", &u]),
        "secret\n",
    );
    assert!(lab.ping_behind(SECS(20)), "{}", lab.log("client.log"));
    // The client named its host: host-update-script ran, with ocserv's environment.
    let host_update = lab.wait_for_log("server-env.host-update", "REASON=", SECS(10));
    for want in ["REASON=host-update", "HOSTNAME=mylaptop", "USERNAME=alice"] {
        assert!(
            host_update.lines().any(|l| l == want),
            "{want}:\n{host_update}"
        );
    }
    let env: HashMap<String, String> = lab
        .log("server-env.connect")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let client_vpn_ip = vpn_address(&lab);
    assert_eq!(env.get("REASON").map(String::as_str), Some("connect"));
    assert_eq!(env.get("USERNAME").map(String::as_str), Some("alice"));
    assert_eq!(env.get("IP_REAL"), Some(&lab.client_ip));
    assert_eq!(env.get("IP_REAL_LOCAL"), Some(&lab.server_ip));
    assert_eq!(env.get("IP_REMOTE"), Some(&client_vpn_ip));
    // ocserv's form, which firewall scripts parse: address/netmask, a space after each.
    assert_eq!(
        env.get("OCSERV_ROUTES4"),
        Some(&format!(
            "{}0/255.255.255.0 ",
            &lab.behind_ip[..lab.behind_ip.len() - 1]
        ))
    );
    assert_eq!(
        env.get("OCSERV_DNS").map(String::as_str),
        Some("198.19.0.53 ")
    );
    assert!(env.get("DEVICE").is_some_and(|d| d.starts_with(&lab.name)));
    assert!(env
        .get("USER_AGENT")
        .is_some_and(|ua| ua.contains("AnyConnect")));

    // SIGTERM: the client is told (it exits 1, "terminated by server"), the disconnect
    // script runs with statistics, and the tun device goes away.
    let device = env.get("DEVICE").unwrap().clone();
    sh(&format!("kill -TERM {}", lab.server_pid()));
    assert_eq!(
        lab.wait_client(SECS(15)),
        Some(1),
        "{}",
        lab.log("client.log")
    );
    let bye = wait_until(SECS(10), || {
        let text = lab.log("server-env.disconnect");
        (!text.is_empty()).then_some(text)
    })
    .expect("disconnect script ran");
    assert!(bye.contains("REASON=disconnect"));
    let bytes_in: u64 = bye
        .lines()
        .find_map(|l| l.strip_prefix("STATS_BYTES_IN="))
        .and_then(|v| v.parse().ok())
        .expect("STATS_BYTES_IN");
    assert!(bytes_in > 0, "the ping's bytes were counted");
    let gone = wait_until(SECS(10), || {
        let out = lab.in_server(&format!("ip link show {device}"));
        (!out.status.success()).then_some(())
    });
    assert!(
        gone.is_some(),
        "tun device {device} still exists after shutdown"
    );
}

#[test]
fn sd_notify_ready_pid_file_and_test_mode() {
    use std::os::unix::net::UnixDatagram;
    let mut lab = Lab::new("srv-notify");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let socket_path = lab.dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(SECS(15))).unwrap();
    lab.server_env
        .push(("NOTIFY_SOCKET".into(), socket_path.display().to_string()));
    lab.start_our_server(&pki, &[("alice", "secret")], "");
    let mut buf = [0u8; 64];
    let n = socket.recv(&mut buf).expect("READY=1 from the server");
    assert_eq!(&buf[..n], b"READY=1\n");
    let pid = std::fs::read_to_string(lab.dir.join("ocserv.pid")).unwrap();
    assert_eq!(pid.trim(), lab.server_pid().to_string());

    // -t: valid file exits 0; broken values are listed with file and line, exit 1.
    let config = lab.dir.join("ocserv.conf");
    let ok = std::process::Command::new(ferroconnect_interop::bin("ocserv"))
        .arg("-t")
        .arg("-c")
        .arg(&config)
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", output_text(&ok));
    let broken = lab.dir.join("broken.conf");
    let mut body = std::fs::read_to_string(&config).unwrap();
    body.push_str("dpd = soon\nroute = 10.0.0.0/99\n");
    std::fs::write(&broken, &body).unwrap();
    let bad = std::process::Command::new(ferroconnect_interop::bin("ocserv"))
        .arg("-t")
        .arg("-c")
        .arg(&broken)
        .output()
        .unwrap();
    let report = output_text(&bad);
    assert_eq!(bad.status.code(), Some(1), "{report}");
    let lines = body.lines().count();
    assert!(
        report.contains(&format!("broken.conf:{}", lines - 1)),
        "{report}"
    );
    assert!(report.contains(&format!("broken.conf:{lines}")), "{report}");
}

/// Sends `request` (printf escapes allowed) over TLS from the client namespace and returns
/// the server's answer.
fn raw_request(lab: &Lab, request: &str) -> String {
    let out = lab.in_client(&format!(
        "printf '{request}' | timeout 10 openssl s_client -quiet -connect {}:443 2>/dev/null",
        lab.server_ip
    ));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn pre_auth_limits_and_ban_points() {
    let extra = "max-ban-score = 20\nban-points-wrong-password = 10\nban-reset-time = 300\nauth-timeout = 3\n";
    let (lab, pki) = lab("srv-limits", Client::Ours, extra);
    let ca = pki.ca_pem.display().to_string();
    let u = url(&lab);
    // An oversized header is answered with 431 and the connection closed.
    let big = "a".repeat(20_000);
    let answer = raw_request(
        &lab,
        &format!("GET / HTTP/1.1\\r\\nHost: x\\r\\nX-Big: {big}\\r\\n\\r\\n"),
    );
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    // A smuggling attempt gets 400.
    let answer = raw_request(
        &lab,
        "POST / HTTP/1.1\\r\\nContent-Length: 3\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\nabc",
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    // A connection that never even starts TLS is cut at auth-timeout (3 s here).
    let out = lab.in_client(&format!(
        "timeout 20 bash -c 'exec 3<>/dev/tcp/{}/443; cat <&3 >/dev/null'; echo $?",
        lab.server_ip
    ));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "server did not close the idle connection"
    );
    assert!(
        lab.log("ocserv.log").contains("auth-timeout"),
        "{}",
        lab.log("ocserv.log")
    );

    // Two wrong passwords (10 points each, plus 1 per connection) pass max-ban-score 20: the
    // next attempt is refused even with the right password.
    for _ in 0..2 {
        let out = lab.run_client(
            &login_args(&ca, &["--authenticate", &u]),
            "wrong\n",
            SECS(30),
        );
        assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    }
    let out = lab.run_client(
        &login_args(&ca, &["--authenticate", &u]),
        "secret\n",
        SECS(30),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "banned address got in: {}",
        output_text(&out)
    );
    assert!(
        lab.log("ocserv.log").contains("address is banned"),
        "{}",
        lab.log("ocserv.log")
    );
}

#[test]
fn ping_leases_skips_addresses_in_use() {
    let (mut lab, pki) = lab("srv-ping", Client::Ours, "");
    let ca = pki.ca_pem.display().to_string();
    let u = url(&lab);
    let script = lab.recording_script();
    let pid = lab.spawn_client(&login_args(&ca, &["-s", &script, &u]), "secret\n");
    assert!(lab.ping_behind(SECS(20)), "{}", lab.log("client.log"));
    let predicted = vpn_address(&lab);
    lab.signal_client(pid, "INT");
    assert_eq!(lab.wait_client(SECS(10)), Some(0));
    // Someone else on the server's network now uses alice's usual address.
    sh(&format!(
        "ip -n {} addr add {predicted}/32 dev lo",
        lab.server_ns
    ));
    let config_path = lab.dir.join("ocserv.conf");
    let mut config = std::fs::read_to_string(&config_path).unwrap();
    config.push_str("ping-leases = true\n");
    std::fs::write(&config_path, config).unwrap();
    sh(&format!("kill -HUP {}", lab.server_pid()));
    lab.wait_for_log("ocserv.log", "configuration reloaded", SECS(10));
    let _ = std::fs::remove_file(lab.dir.join("env.connect"));
    lab.spawn_client(&login_args(&ca, &["-s", &script, &u]), "secret\n");
    assert!(lab.ping_behind(SECS(20)), "{}", lab.log("client.log"));
    let got = vpn_address(&lab);
    assert_ne!(got, predicted, "an address answering pings was leased");
    assert!(lab.log("ocserv.log").contains("answers pings"));
}

#[test]
fn per_user_file_overrides_and_broken_file_refuses() {
    let mut lab = Lab::new("srv-peruser");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let users = lab.dir.join("users");
    std::fs::create_dir_all(&users).unwrap();
    std::fs::write(
        users.join("alice"),
        format!(
            "route = {}/32\nroute = 203.0.113.0/24\ndns = 198.19.0.54\n",
            lab.behind_ip
        ),
    )
    .unwrap();
    // Another user's network, which expose-iroutes makes a route for everyone else.
    std::fs::write(users.join("bob"), "iroute = 192.0.2.0/24\n").unwrap();
    let extra = format!(
        "config-per-user = {}/\nexpose-iroutes = true\n",
        users.display()
    );
    lab.start_our_server(&pki, &[("alice", "secret")], &extra);
    let script = lab.recording_script();
    let ca = pki.ca_pem.display().to_string();
    let u = url(&lab);
    let pid = lab.spawn_client(&login_args(&ca, &["-s", &script, &u]), "secret\n");
    assert!(lab.ping_behind(SECS(20)), "{}", lab.log("client.log"));
    let env = lab.env_file("connect");
    assert_eq!(
        env.get("CISCO_SPLIT_INC").map(String::as_str),
        Some("3"),
        "{env:?}"
    );
    assert!(
        env.values().any(|v| v == "192.0.2.0"),
        "bob's iroute is not among alice's routes: {env:?}"
    );
    assert_eq!(
        env.get("INTERNAL_IP4_DNS").map(String::as_str),
        Some("198.19.0.54")
    );
    lab.signal_client(pid, "INT");
    assert_eq!(lab.wait_client(SECS(10)), Some(0));

    // A broken per-user file refuses the login instead of falling back to the global
    // settings (which the file may have meant to restrict).
    std::fs::write(users.join("alice"), "route = not-a-route\n").unwrap();
    let out = lab.run_client(
        &login_args(&ca, &["--authenticate", &u]),
        "secret\n",
        SECS(30),
    );
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let log = lab.log("ocserv.log");
    assert!(log.contains("refused") && log.contains("alice:1"), "{log}");
}

fn group_selection_and_ipv6(client: Client) {
    let mut lab = Lab::new("srv-group");
    if client == Client::Debian {
        lab.use_real_client();
    }
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    // alice belongs to two groups; the form lists both with friendly names.
    let auth = lab.make_passwd(
        &ferroconnect_interop::bin("ocpasswd"),
        &[("alice", "secret")],
        Some("staff,ops"),
    );
    let d = lab.dir.display().to_string();
    let connect = lab.dir.join("connect.sh");
    std::fs::write(
        &connect,
        format!("#!/bin/sh\nenv | sort > {d}/server-env.connect\n"),
    )
    .unwrap();
    sh(&format!("chmod +x {}", connect.display()));
    let n = lab.behind_ip.split('.').nth(2).unwrap().to_string();
    let behind6 = format!("fd00:b{n}::1");
    sh(&format!(
        "ip -n {} addr add {behind6}/128 dev lo",
        lab.server_ns
    ));
    let extra = format!(
        "select-group = staff[Staff members]\nselect-group = ops[Operations]\n\
         ipv6-network = fd00:a{n}::/64\nroute = fd00:b{n}::/64\n\
         connect-script = {}\n",
        connect.display()
    );
    lab.start_server(ferroconnect_interop::ServerKind::Ours, &pki, &auth, &extra);
    let script = lab.recording_script();
    let ca = pki.ca_pem.display().to_string();
    let u = url(&lab);
    lab.spawn_client(
        &login_args(&ca, &["--authgroup", "Operations", "-s", &script, &u]),
        "secret\n",
    );
    assert!(
        lab.ping_behind(SECS(20)),
        "{}\n{}",
        lab.log("client.log"),
        lab.log("ocserv.log")
    );
    let server_env = lab.log("server-env.connect");
    assert!(server_env.contains("GROUPNAME=ops\n"), "{server_env}");
    let env = lab.env_file("connect");
    let v6 = env.get("INTERNAL_IP6_ADDRESS").cloned().unwrap_or_default();
    assert!(
        v6.starts_with(&format!("fd00:a{n}:")),
        "no IPv6 address: {env:?}"
    );
    let ping6 = wait_until(SECS(10), || {
        lab.in_client(&format!("ping -6 -c 1 -W 1 {behind6}"))
            .status
            .success()
            .then_some(())
    });
    assert!(ping6.is_some(), "no IPv6 ping over the tunnel: {env:?}");
}

with_both_clients!(group_selection_and_ipv6: debian_client_group_selection_and_ipv6, our_client_group_selection_and_ipv6);

#[test]
fn max_same_clients_refuses_a_second_tunnel() {
    let (mut lab, pki) = lab("srv-same", Client::Ours, "max-same-clients = 1\n");
    connect_alice(&mut lab, &pki, &[]);
    let ca = pki.ca_pem.display().to_string();
    let u = url(&lab);
    assert!(lab.ping_behind(SECS(20)), "{}", lab.log("client.log"));
    // A second login works, but its tunnel would be alice's second one.
    let cookie = authenticate(&lab, &ca, &u);
    let second = lab.run_client(
        &[
            "--cookie-on-stdin",
            "--non-inter",
            "--cafile",
            &ca,
            "-i",
            "tunx",
            &u,
        ],
        &format!("{cookie}\n"),
        SECS(30),
    );
    assert_eq!(second.status.code(), Some(2), "{}", output_text(&second));
    assert!(lab.log("ocserv.log").contains("max-same-clients"));
    assert!(
        lab.ping_behind(SECS(5)),
        "the first tunnel must keep working"
    );
}

#[test]
fn connect_script_refusal_frees_the_slot() {
    let mut lab = Lab::new("srv-deny");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let d = lab.dir.display().to_string();
    let script = lab.dir.join("gate.sh");
    std::fs::write(&script, format!("#!/bin/sh\n[ ! -e {d}/deny ]\n")).unwrap();
    sh(&format!("chmod +x {} && touch {d}/deny", script.display()));
    let extra = format!("connect-script = {}\nmax-clients = 1\n", script.display());
    lab.start_our_server(&pki, &[("alice", "secret")], &extra);
    let ca = pki.ca_pem.display().to_string();
    let u = url(&lab);
    let refused = lab.run_client(&login_args(&ca, &[&u]), "secret\n", SECS(30));
    assert_eq!(refused.status.code(), Some(1), "{}", output_text(&refused));
    assert!(
        lab.log("ocserv.log").contains("connect-script refused"),
        "{}",
        lab.log("ocserv.log")
    );
    // The refused attempt must not keep the only slot (max-clients = 1).
    std::fs::remove_file(lab.dir.join("deny")).unwrap();
    lab.spawn_client(&login_args(&ca, &[&u]), "secret\n");
    assert!(
        lab.ping_behind(SECS(20)),
        "{}\n{}",
        lab.log("client.log"),
        lab.log("ocserv.log")
    );
}

fn bulk_transfer_both_ways(client: Client) {
    let (mut lab, pki) = lab("srv-iperf", client, "");
    connect_alice(&mut lab, &pki, &[]);
    assert!(lab.ping_behind(SECS(20)), "{}", lab.log("client.log"));
    for reverse in [false, true] {
        let out = lab.iperf(&format!("-t 2 -J {}", if reverse { "-R" } else { "" }));
        let report = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "iperf3 failed (reverse={reverse}):\n{report}"
        );
        assert!(report.contains("\"sum_received\""), "{report}");
    }
    // Bulk traffic must not break the framing: no protocol errors, no reconnects.
    let server_log = lab.log("ocserv.log");
    assert!(!server_log.contains("protocol error"), "{server_log}");
    assert_eq!(server_log.matches("tunnel up").count(), 1, "{server_log}");
    let client_log = lab.log("client.log");
    assert!(
        !client_log.to_lowercase().contains("reconnect"),
        "{client_log}"
    );
}

with_both_clients!(bulk_transfer_both_ways: debian_client_bulk_transfer_both_ways, our_client_bulk_transfer_both_ways);

fn dtls_psk_carries_the_traffic(client: Client) {
    let (mut lab, pki) = lab("srv-dtls", client, "udp-port = 443\n");
    connect_alice(&mut lab, &pki, &[]);
    lab.wait_for_log("ocserv.log", "DTLS established", SECS(20));
    lab.wait_for_log("client.log", "Established DTLS connection", SECS(10));
    assert!(lab.ping_behind(SECS(10)), "{}", lab.log("client.log"));
    lab.assert_traffic_over_udp();
}

with_both_clients!(dtls_psk_carries_the_traffic: debian_client_dtls_psk, our_client_dtls_psk);

/// openconnect 9.x sleeps 1 s with its tun device down when the DTLS handshake completes
/// before its main loop runs; the keepalive our server sends just after the first handshake
/// wakes it (the bench saw 1 s connects without it).
#[test]
fn first_dtls_handshake_is_followed_by_a_keepalive() {
    let (mut lab, pki) = lab("srv-dtls-nudge", Client::Debian, "udp-port = 443\n");
    connect_alice(&mut lab, &pki, &["-v", "-v"]);
    lab.wait_for_log("client.log", "Established DTLS connection", SECS(20));
    lab.wait_for_log("client.log", "Got DTLS Keepalive", SECS(5));
    assert!(lab.ping_behind(SECS(10)), "{}", lab.log("client.log"));
}

fn dtls_blocked_mid_session_falls_back_to_tls(client: Client) {
    // Short timers so the loss of UDP is noticed within seconds.
    let extra = "udp-port = 443\ndpd = 3\nswitch-to-tcp-timeout = 3\n";
    let (mut lab, pki) = lab("srv-dtls-block", client, extra);
    connect_alice(&mut lab, &pki, &[]);
    lab.wait_for_log("client.log", "Established DTLS connection", SECS(20));
    assert!(lab.ping_behind(SECS(10)), "{}", lab.log("client.log"));
    lab.assert_pings_over_udp(5);
    // A TCP transfer running while UDP disappears finishes: the tunnel moves to TLS
    // under it and TCP retransmits what was lost on the way.
    let out = lab.iperf_while("-t 12", || {
        std::thread::sleep(SECS(3));
        lab.block_udp();
    });
    assert!(
        out.status.success(),
        "transfer died when UDP was blocked:\n{}\nclient:\n{}\nserver:\n{}",
        output_text(&out),
        lab.log("client.log"),
        lab.log("ocserv.log")
    );
    assert!(
        lab.in_client(&format!("ping -c 3 -i 0.2 -W 1 {}", lab.behind_ip))
            .status
            .success(),
        "no traffic over TLS with UDP blocked"
    );
    assert_eq!(lab.log("ocserv.log").matches("tunnel up").count(), 1);
    // Unblocked, the client's periodic retry (60 s) brings DTLS back.
    lab.unblock_udp();
    lab.wait_for_log_count("ocserv.log", "DTLS established", 2, SECS(100));
    assert!(lab.ping_behind(SECS(10)));
    lab.assert_pings_over_udp(10);
    assert_eq!(lab.log("ocserv.log").matches("tunnel up").count(), 1);
}

fn dtls_legacy_carries_the_traffic(client: Client) {
    let (mut lab, pki) = lab(
        "srv-dtls-legacy",
        client,
        "udp-port = 443\ndtls-psk = false\n",
    );
    connect_alice(&mut lab, &pki, &[]);
    let log = lab.wait_for_log("ocserv.log", "DTLS established", SECS(20));
    assert!(log.contains("(legacy resumption)"), "{log}");
    assert!(!log.contains("DTLS established (PSK"), "{log}");
    lab.wait_for_log("client.log", "Established DTLS connection", SECS(10));
    assert!(lab.ping_behind(SECS(10)), "{}", lab.log("client.log"));
    lab.assert_traffic_over_udp();
}

with_both_clients!(dtls_legacy_carries_the_traffic: debian_client_dtls_legacy, our_client_dtls_legacy);

/// Cisco's pre-standard DTLS 1.0 (the CBC suites) has no OpenSSL server: a client that
/// offers only those gets a tunnel without DTLS, and traffic goes over TLS.
#[test]
fn cbc_only_dtls_offer_gets_tls_only() {
    let (mut lab, pki) = lab(
        "srv-dtls-cbc",
        Client::Debian,
        "udp-port = 443\ndtls-psk = false\n",
    );
    connect_alice(&mut lab, &pki, &["--dtls-ciphers", "AES128-SHA"]);
    assert!(lab.ping_behind(SECS(20)), "{}", lab.log("client.log"));
    let log = lab.log("ocserv.log");
    assert!(!log.contains("DTLS ciphersuite"), "{log}");
    let before = lab.client_udp_in();
    let out = lab.in_client(&format!("ping -c 5 -i 0.1 {}", lab.behind_ip));
    assert!(out.status.success());
    assert!(
        lab.client_udp_in() - before < 5,
        "no DTLS was granted, yet UDP carried pings"
    );
}

/// `dtls-legacy = false` and a client without PSK-NEGOTIATE: no DTLS, TLS works.
#[test]
fn dtls_legacy_off_and_no_psk_offer_gets_tls_only() {
    let extra = "udp-port = 443\ndtls-legacy = false\n";
    let (mut lab, pki) = lab("srv-dtls-nolegacy", Client::Ours, extra);
    connect_alice(&mut lab, &pki, &["--dtls-ciphers", "OC-DTLS1_2-AES256-GCM"]);
    assert!(lab.ping_behind(SECS(20)), "{}", lab.log("client.log"));
    assert!(!lab.log("ocserv.log").contains("DTLS ciphersuite"));
    assert!(!lab.log("client.log").contains("Established DTLS"));
}

/// Our client asking for one legacy suite gets exactly that one from our server, and
/// the DTLS rekey interval replaces the channel without disturbing the tunnel.
#[test]
fn chosen_legacy_suite_and_dtls_rekey() {
    let extra = "udp-port = 443\nrekey-time = 6\n";
    let (mut lab, pki) = lab("srv-dtls-rekey", Client::Ours, extra);
    connect_alice(&mut lab, &pki, &["--dtls-ciphers", "OC-DTLS1_2-AES128-GCM"]);
    let log = lab.wait_for_log("client.log", "Established DTLS connection", SECS(20));
    assert!(log.contains("AES128-GCM-SHA256"), "{log}");
    assert!(lab
        .log("ocserv.log")
        .contains("DTLS ciphersuite: OC-DTLS1_2-AES128-GCM (legacy resumption)"));
    // X-DTLS-Rekey-Time is rekey-time + 10 s: a second handshake after ~16 s.
    lab.wait_for_log_count("client.log", "Established DTLS connection", 2, SECS(40));
    assert!(lab.log("client.log").contains("DTLS rekey due"));
    lab.assert_pings_over_udp(10);
    assert_eq!(lab.log("ocserv.log").matches("tunnel up").count(), 1);
}

with_both_clients!(dtls_blocked_mid_session_falls_back_to_tls: debian_client_dtls_blocked_falls_back, our_client_dtls_blocked_falls_back);

fn session_timeout_ends_the_session(client: Client) {
    let (mut lab, pki) = lab("srv-stimeout", client, "session-timeout = 4\n");
    let ca = pki.ca_pem.display().to_string();
    let u = url(&lab);
    let cookie = authenticate(&lab, &ca, &u);
    // Before any tunnel, and after the last, the server's pool address is not there (as
    // ocserv's per-client devices): upstream's timeout tests ping it to tell.
    assert!(!lab.server_pool_address_answers(), "before the tunnel");
    let with_cookie = ["--cafile", ca.as_str(), "--cookie-on-stdin", u.as_str()];
    lab.spawn_client(&with_cookie, &format!("{cookie}\n"));
    assert!(lab.ping_behind(SECS(10)), "{}", lab.log("client.log"));
    // The server ends the tunnel and tells the client (a DISCONNECT, as ocserv 1.5), which
    // exits with a failure instead of reconnecting; the cookie is refused from now on.
    let code = lab.wait_client(SECS(30));
    assert!(
        code.is_some_and(|c| c != 0),
        "{code:?}\n{}\n{}",
        lab.log("client.log"),
        lab.log("ocserv.log")
    );
    assert!(lab.log("ocserv.log").contains("session timeout"));
    assert_eq!(lab.log("ocserv.log").matches("tunnel up").count(), 1);
    assert!(!lab.server_pool_address_answers(), "after the tunnel");
    // openconnect's "cookie rejected" (exit 2), and no new tunnel.
    let again = lab.run_client(&with_cookie, &format!("{cookie}\n"), SECS(30));
    assert_eq!(
        again.status.code(),
        Some(2),
        "{}\n{}",
        output_text(&again),
        lab.log("ocserv.log")
    );
    assert_eq!(lab.log("ocserv.log").matches("tunnel up").count(), 1);
}

with_both_clients!(session_timeout_ends_the_session: debian_client_session_timeout, our_client_session_timeout);

fn idle_timeout_keeps_the_cookie(client: Client) {
    let (mut lab, pki) = lab("srv-idle", client, "idle-timeout = 3\n");
    let ca = pki.ca_pem.display().to_string();
    let u = url(&lab);
    let cookie = authenticate(&lab, &ca, &u);
    let with_cookie = ["--cafile", ca.as_str(), "--cookie-on-stdin", u.as_str()];
    lab.spawn_client(&with_cookie, &format!("{cookie}\n"));
    lab.wait_for_log("ocserv.log", "tunnel up", SECS(10));
    let before = alice_ipv4(&lab);
    // Pings do not count as activity: the server ends the idle tunnel and tells the client
    // (as ocserv, with a DISCONNECT), which stops instead of reconnecting.
    lab.wait_for_log("ocserv.log", "idle timeout", SECS(20));
    let code = lab.wait_client(SECS(20));
    assert!(
        code.is_some_and(|c| c != 0),
        "{code:?}\n{}",
        lab.log("client.log")
    );
    assert_eq!(lab.log("ocserv.log").matches("tunnel up").count(), 1);
    // The session stays: the cookie opens it again, with the same address.
    lab.spawn_client(&with_cookie, &format!("{cookie}\n"));
    lab.wait_for_log("ocserv.log", "session reused", SECS(20));
    assert!(lab.ping_behind(SECS(10)), "{}", lab.log("client.log"));
    assert_eq!(alice_ipv4(&lab), before, "another address after the reuse");
}

/// alice's tunnel address as occtl shows it (`-j show user alice`).
fn alice_ipv4(lab: &Lab) -> String {
    let out = lab.our_occtl("-j show user alice");
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("occtl: {e}: {}", output_text(&out)));
    shown[0]["IPv4"]
        .as_str()
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| panic!("no IPv4 in {shown}"))
        .to_owned()
}

with_both_clients!(idle_timeout_keeps_the_cookie: debian_client_idle_timeout, our_client_idle_timeout);

#[test]
fn tls_priorities_limit_the_protocol_version() {
    let extra = "tls-priorities = \"NORMAL:%SERVER_PRECEDENCE:%COMPAT:-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1:-VERS-TLS1.3\"\n";
    let (lab, pki) = lab("srv-prio", Client::Debian, extra);
    let ca = pki.ca_pem.display().to_string();
    let u = url(&lab);
    let out = lab.run_client(
        &login_args(&ca, &["--authenticate", &u]),
        "secret\n",
        SECS(30),
    );
    let report = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(report.contains("(TLS1.2)"), "{report}");
}

/// Our server echoes DPD probes, so our client's path-MTU detection works against it, and
/// packets above the detected size go over TLS.
#[test]
fn dtls_path_mtu_detection_against_our_server() {
    let (mut lab, pki) = lab("srv-dtls-pmtu", Client::Ours, "udp-port = 443\n");
    lab.black_hole_large_udp(1200);
    connect_alice(&mut lab, &pki, &[]);
    let log = lab.wait_for_log("client.log", "Detected MTU of", SECS(30));
    assert!(log.contains("Detected MTU of 1134 bytes"), "{log}");
    lab.assert_pings_over_udp(10);
    let out = lab.in_client(&format!("ping -c 3 -s 1300 -W 2 {}", lab.behind_ip));
    assert!(out.status.success(), "{}", output_text(&out));
    let out = lab.iperf("-t 2");
    assert!(out.status.success(), "{}", output_text(&out));
}

/// `rekey-method = ssl` on TLS 1.3: CSTP rekeys in place (KeyUpdate) and DTLS rekeys
/// without the tunnel being re-established.
fn rekey_keeps_the_tunnel(client: Client) {
    let (mut lab, pki) = lab("srv-rekey", client, "udp-port = 443\nrekey-time = 5\n");
    connect_alice(&mut lab, &pki, &[]);
    lab.wait_for_log("client.log", "Established DTLS connection", SECS(20));
    std::thread::sleep(SECS(12));
    assert!(lab.ping_behind(SECS(20)), "{}", lab.log("client.log"));
    // Debian's client renegotiates DTLS in place, ours opens a fresh handshake: either
    // way a second DTLS session, while the server refreshes the TLS 1.3 keys itself
    // (KeyUpdates, as ocserv 1.5; the client is told a year) and the tunnel stays up.
    lab.wait_for_log_count("client.log", "Established DTLS connection", 2, SECS(20));
    lab.assert_pings_over_udp(5);
    let log = lab.log("ocserv.log");
    assert_eq!(log.matches("tunnel up").count(), 1);
    assert!(
        log.contains("TLS 1.3 session keys refreshed (rekey)"),
        "{log}"
    );
}

with_both_clients!(rekey_keeps_the_tunnel: debian_client_rekey, our_client_rekey);

/// `rekey-method = ssl` on TLS 1.2 (upstream's test-rekey-tls12): Debian's openconnect
/// renegotiates in place at `rekey-time`, and the tunnel is not rebuilt.
#[test]
fn tls12_rekey_is_the_clients_renegotiation() {
    let extra = "rekey-time = 5\nrekey-method = ssl\n\
                 tls-priorities = \"NORMAL:%SERVER_PRECEDENCE:-VERS-TLS1.3\"\n";
    let (mut lab, pki) = lab("srv-rekey12", Client::Debian, extra);
    connect_alice(&mut lab, &pki, &["--no-dtls"]);
    assert!(lab.ping_behind(SECS(20)), "{}", lab.log("client.log"));
    lab.wait_for_log("ocserv.log", "TLS rehandshake completed", SECS(30));
    assert!(lab.ping_behind(SECS(10)), "{}", lab.log("client.log"));
    let log = lab.log("ocserv.log");
    assert_eq!(log.matches("tunnel up").count(), 1, "{log}");
    assert!(!log.contains("TLS 1.3 session keys refreshed"), "{log}");
}

/// The tunnel MTU Debian's openconnect ends up with is the same from our server as from
/// Debian's ocserv, with DTLS (the AES-GCM record overhead comes off) and without (only
/// IP and UDP headers do).
#[test]
fn tunnel_mtu_matches_ocserv() {
    let mut mtus = Vec::new();
    for ours in [false, true] {
        for dtls in [true, false] {
            let mut lab = Lab::new("srv-mtu");
            lab.use_real_client();
            let pki = Pki::create(&lab.dir, &lab.server_ip);
            if ours {
                lab.start_our_server(&pki, &[("alice", "secret")], "udp-port = 443\n");
            } else {
                lab.start_ocserv(&pki, &[("alice", "secret")], "udp-port = 443\n");
            }
            let extra: &[&str] = if dtls { &[] } else { &["--no-dtls"] };
            connect_alice(&mut lab, &pki, extra);
            assert!(lab.ping_behind(SECS(20)), "{}", lab.log("client.log"));
            mtus.push((ours, dtls, lab.client_tun_mtu()));
        }
    }
    let theirs: Vec<u32> = mtus.iter().filter(|m| !m.0).map(|m| m.2).collect();
    let ours: Vec<u32> = mtus.iter().filter(|m| m.0).map(|m| m.2).collect();
    assert_eq!(ours, theirs, "(ours, dtls, mtu): {mtus:?}");
    // Over this 1500-byte IPv4 link: 1500 - 28 - 38 with DTLS, 1500 - 28 without.
    assert_eq!(theirs, vec![1434, 1472]);
}

/// A cookie already carrying a tunnel, used by a second client (upstream's
/// test-multi-cookie): the newer connection gets the session and the first client is told
/// to disconnect and exits, instead of reconnecting and taking the session back.
#[test]
fn a_cookie_taken_over_disconnects_the_first_client() {
    let (mut lab, pki) = lab("srv-cookie-takeover", Client::Debian, "");
    let ca = pki.ca_pem.display().to_string();
    let auth = lab.run_client(
        &login_args(&ca, &["--authenticate", &url(&lab)]),
        "secret\n",
        SECS(30),
    );
    assert_eq!(auth.status.code(), Some(0), "{}", output_text(&auth));
    let stdout = String::from_utf8_lossy(&auth.stdout).into_owned();
    let value = authenticate_values(&stdout);
    let (cookie, fingerprint, connect_url) =
        (value("COOKIE"), value("FINGERPRINT"), value("CONNECT_URL"));
    let args = [
        "--cookie-on-stdin",
        "--servercert",
        &fingerprint,
        "--script",
        "/bin/true",
        &connect_url,
    ];
    let first = lab.spawn_client(&args, &format!("{cookie}\n"));
    lab.wait_for_log("ocserv.log", "tunnel up", SECS(20));
    let second_ns = lab.add_client_ns();
    let second = lab.spawn_client_in(&second_ns, &args, &format!("{cookie}\n"), "second.log");
    let first_gone = wait_until(SECS(20), || {
        let stat = std::fs::read_to_string(format!("/proc/{first}/stat")).unwrap_or_default();
        (stat.is_empty() || stat.contains(") Z")).then_some(())
    });
    assert!(
        first_gone.is_some(),
        "the first client still runs:\n{}\n{}",
        lab.log("client.log"),
        lab.log("ocserv.log")
    );
    assert!(
        lab.log("client.log").contains("disconnect"),
        "{}",
        lab.log("client.log")
    );
    // The second keeps the session: still running a few seconds later, one tunnel listed.
    std::thread::sleep(SECS(3));
    assert!(
        std::path::Path::new(&format!("/proc/{second}")).exists(),
        "{}",
        lab.log("second.log")
    );
    let log = lab.log("ocserv.log");
    assert_eq!(
        log.matches("tunnel up").count(),
        2,
        "{log}\n{}\n{}",
        lab.log("client.log"),
        lab.log("second.log")
    );
}
