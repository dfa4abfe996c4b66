//! Our `openconnect` against Debian's real ocserv, in network namespaces with real tun
//! devices.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ferroconnect_interop::{authenticate_values, login_args, output_text, wait_until, Lab, Pki};

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn lab_with_ocserv(test: &str) -> (Lab, Pki) {
    let mut lab = Lab::new(test);
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    lab.start_ocserv(&pki, &[("alice", "secret")], "");
    (lab, pki)
}

#[test]
fn login_tunnel_ping_and_logoff() {
    let (mut lab, pki) = lab_with_ocserv("login");
    let script = lab.recording_script();
    let url = format!("https://{}/", lab.server_ip);
    let ca = pki.ca_pem.display().to_string();
    let pid = lab.spawn_client(&login_args(&ca, &["-s", &script, &url]), "secret\n");
    assert!(
        lab.ping_behind(SECS(20)),
        "no ping over the tunnel:\n{}",
        lab.log("client.log")
    );

    // Address, routes and DNS came from ocserv through the stock vpnc-script.
    let env = lab.env_file("connect");
    let vpn_ip = env
        .get("INTERNAL_IP4_ADDRESS")
        .expect("INTERNAL_IP4_ADDRESS")
        .clone();
    assert!(
        vpn_ip.starts_with(&lab.pool[..lab.pool.len() - 1]),
        "{vpn_ip} not in {}",
        lab.pool
    );
    assert_eq!(env.get("VPNGATEWAY"), Some(&lab.server_ip));
    assert_eq!(env.get("CISCO_SPLIT_INC"), Some(&"1".to_string()));
    let behind_net = format!("{}0", &lab.behind_ip[..lab.behind_ip.len() - 1]);
    assert_eq!(env.get("CISCO_SPLIT_INC_0_ADDR"), Some(&behind_net));
    assert_eq!(
        env.get("INTERNAL_IP4_DNS"),
        Some(&"198.19.0.53".to_string())
    );
    assert_eq!(
        env.get("CISCO_DEF_DOMAIN"),
        Some(&"example.test".to_string())
    );
    // Multi-line: one X-CSTP header per line.
    assert!(env
        .get("CISCO_CSTP_OPTIONS")
        .is_some_and(|o| o.starts_with("X-CSTP-")));
    assert!(lab.log("env.connect").contains("\nX-CSTP-DPD=90\n"));
    let tundev = env.get("TUNDEV").expect("TUNDEV").clone();
    let addr = lab.in_client(&format!("ip -4 addr show dev {tundev}"));
    assert!(
        output_text(&addr).contains(&vpn_ip),
        "tun has no VPN address: {}",
        output_text(&addr)
    );

    // The server lists the session; SIGINT logs off and the server forgets it.
    assert!(lab.occtl("show users").contains("alice"));
    lab.signal_client(pid, "INT");
    assert_eq!(
        lab.wait_client(SECS(10)),
        Some(0),
        "{}",
        lab.log("client.log")
    );
    let gone = wait_until(SECS(5), || {
        (!lab.occtl("show users").contains("alice")).then_some(())
    });
    assert!(
        gone.is_some(),
        "ocserv still lists the user: {}",
        lab.occtl("show users")
    );
    lab.wait_for_log("ocserv.log", "user disconnected", SECS(5));
    assert_eq!(lab.log("reasons"), "pre-init\nconnect\ndisconnect\n");
    assert!(lab.log("client.log").contains("User cancelled"));
}

#[test]
fn wrong_password_fails_then_good_login_works() {
    let (lab, pki) = lab_with_ocserv("badpass");
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    let args = [
        "-u",
        "alice",
        "--passwd-on-stdin",
        "--non-inter",
        "--cafile",
        &ca,
        "--authenticate",
        &url,
    ];
    let bad = lab.run_client(&args, "wrong\n", SECS(30));
    assert_eq!(bad.status.code(), Some(1), "{}", output_text(&bad));
    assert!(
        output_text(&bad).contains("Failed to complete authentication")
            || output_text(&bad).contains("failed to complete authentication"),
        "{}",
        output_text(&bad)
    );

    let good = lab.run_client(&args, "secret\n", SECS(30));
    assert_eq!(good.status.code(), Some(0), "{}", output_text(&good));
    let stdout = String::from_utf8_lossy(&good.stdout);
    assert!(stdout.starts_with("COOKIE='webvpn="), "{stdout}");
    assert!(stdout.contains(&format!("HOST='{}'", lab.server_ip)));
    assert!(stdout.contains(&format!("CONNECT_URL='https://{}/'", lab.server_ip)));
    assert!(stdout.contains("FINGERPRINT='pin-sha256:"));
}

#[test]
fn authenticate_then_cookie_on_stdin() {
    let (mut lab, pki) = lab_with_ocserv("cookie");
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    let auth = lab.run_client(
        &login_args(&ca, &["--authenticate", &url]),
        "secret\n",
        SECS(30),
    );
    assert_eq!(auth.status.code(), Some(0), "{}", output_text(&auth));
    let stdout = String::from_utf8_lossy(&auth.stdout).into_owned();
    let value = authenticate_values(&stdout);
    let (cookie, fingerprint) = (value("COOKIE"), value("FINGERPRINT"));
    // As NetworkManager does: the cookie on stdin, the server pinned by FINGERPRINT.
    let script = lab.recording_script();
    lab.spawn_client(
        &[
            "--cookie-on-stdin",
            "--servercert",
            &fingerprint,
            "-s",
            &script,
            &value("CONNECT_URL"),
        ],
        &format!("{cookie}\n"),
    );
    assert!(
        lab.ping_behind(SECS(20)),
        "no ping with the cookie:\n{}",
        lab.log("client.log")
    );
}

#[test]
fn server_certificate_checks() {
    let (lab, pki) = lab_with_ocserv("servercert");
    let authenticate = |extra: &[&str], url: &str| {
        let base = [
            "--non-inter",
            "--authenticate",
            "-u",
            "alice",
            "--passwd-on-stdin",
        ];
        lab.run_client(&[&base[..], extra, &[url]].concat(), "secret\n", SECS(30))
    };
    let url = format!("https://{}/", lab.server_ip);
    // Unknown CA: refused, and the message names the pin to use.
    let out = authenticate(&[], &url);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        output_text(&out).contains("--servercert pin-sha256:"),
        "{}",
        output_text(&out)
    );
    // A wrong pin: refused.
    let out = authenticate(&["--servercert", "sha256:00000000"], &url);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        output_text(&out).contains("does not match"),
        "{}",
        output_text(&out)
    );
    // The right CA, but the wrong host name (SAN has vpn.test and the IP only).
    let ca = pki.ca_pem.display().to_string();
    let resolve = format!("other.test:{}", lab.server_ip);
    let out = authenticate(
        &["--cafile", &ca, "--resolve", &resolve],
        "https://other.test/",
    );
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("verification failed"),
        "{}",
        output_text(&out)
    );
    // The right name through --resolve: accepted.
    let resolve = format!("vpn.test:{}", lab.server_ip);
    let out = authenticate(
        &["--cafile", &ca, "--resolve", &resolve],
        "https://vpn.test/",
    );
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let resolved = format!("RESOLVE='vpn.test:{}'", lab.server_ip);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&resolved));
}

#[test]
fn rejected_cookie_exits_2() {
    let (lab, pki) = lab_with_ocserv("badcookie");
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    let bogus = "webvpn=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let out = lab.run_client(&["-C", bogus, "--cafile", &ca, &url], "", SECS(30));
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("rejected"),
        "{}",
        output_text(&out)
    );
}

#[test]
fn tcp_loss_reconnects_with_cookie_and_server_kick_exits_1() {
    let (mut lab, pki) = lab_with_ocserv("reconnect");
    let script = lab.recording_script();
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    lab.spawn_client(&login_args(&ca, &["-s", &script, &url]), "secret\n");
    assert!(lab.ping_behind(SECS(20)), "{}", lab.log("client.log"));
    let first_ip = lab.env_file("connect").get("INTERNAL_IP4_ADDRESS").cloned();

    // Kill the TCP connection under the client; it reconnects with its cookie.
    let killed = lab.in_client(&format!("ss -K dst {} dport = 443", lab.server_ip));
    assert!(killed.status.success(), "{}", output_text(&killed));
    lab.wait_for_log("reasons", "reconnect\nreconnect", SECS(30));
    assert!(
        lab.log("reasons")
            .contains("attempt-reconnect\nreconnect\n"),
        "{}",
        lab.log("reasons")
    );
    assert_eq!(
        lab.env_file("reconnect")
            .get("INTERNAL_IP4_ADDRESS")
            .cloned(),
        first_ip
    );
    assert!(
        lab.ping_behind(SECS(20)),
        "no traffic after reconnect:\n{}",
        lab.log("client.log")
    );

    // An admin kick ends the session with status 1 and no reconnect.
    let users = lab.occtl("show users");
    let id = users
        .lines()
        .find(|l| l.contains("alice"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("alice not in {users}"))
        .to_string();
    lab.occtl(&format!("disconnect id {id}"));
    assert_eq!(
        lab.wait_client(SECS(15)),
        Some(1),
        "{}",
        lab.log("client.log")
    );
    assert!(
        lab.log("client.log").contains("terminated by server"),
        "{}",
        lab.log("client.log")
    );
}

#[test]
fn unreachable_server_fails_fast() {
    let lab = Lab::new("unreach");
    // Nothing listens on the server address: connection refused, exit 1, no hang.
    let url = format!("https://{}:4443/", lab.server_ip);
    let out = lab.run_client(&["--non-inter", "--authenticate", &url], "", SECS(20));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        output_text(&out).contains("failed to connect"),
        "{}",
        output_text(&out)
    );
}

#[test]
fn background_pidfile_sigusr2_and_sighup_keeps_cookie() {
    let (mut lab, pki) = lab_with_ocserv("signals");
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    let auth = lab.run_client(
        &login_args(&ca, &["--cookieonly", &url]),
        "secret\n",
        SECS(30),
    );
    assert_eq!(auth.status.code(), Some(0), "{}", output_text(&auth));
    let cookie = String::from_utf8_lossy(&auth.stdout).trim().to_string();
    assert!(cookie.starts_with("webvpn="), "{cookie}");

    let script = lab.recording_script();
    let pid_file = lab.dir.join("oc.pid").display().to_string();
    let args = [
        "--cookie-on-stdin",
        "--cafile",
        &ca,
        "-s",
        &script,
        "-b",
        "--pid-file",
        &pid_file,
        &url,
    ];
    lab.spawn_client(&args, &format!("{cookie}\n"));
    // The foreground process exits 0 once the tunnel is up; the daemon carries on.
    assert_eq!(
        lab.wait_client(SECS(20)),
        Some(0),
        "{}",
        lab.log("client.log")
    );
    assert!(lab.ping_behind(SECS(10)), "{}", lab.log("client.log"));
    let pid = lab.log("oc.pid").trim().parse::<u32>().expect("pid file");
    assert!(lab.log("client.log").contains("Continuing in background"));

    // SIGUSR2: drop the connection and reconnect with the cookie.
    lab.signal_client(pid, "USR2");
    lab.wait_for_log("reasons", "attempt-reconnect\nreconnect\n", SECS(20));
    assert!(lab.ping_behind(SECS(10)), "{}", lab.log("client.log"));

    // SIGHUP: leave without logging off; the pid file goes, the cookie stays valid.
    lab.signal_client(pid, "HUP");
    let gone = wait_until(SECS(10), || {
        (!lab.dir.join("oc.pid").exists()).then_some(())
    });
    assert!(gone.is_some(), "{}", lab.log("client.log"));
    assert!(
        lab.log("client.log").contains("User detached"),
        "{}",
        lab.log("client.log")
    );
    assert!(lab.log("reasons").ends_with("disconnect\n"));
    lab.spawn_client(
        &["--cookie-on-stdin", "--cafile", &ca, "-s", &script, &url],
        &format!("{cookie}\n"),
    );
    assert!(
        lab.ping_behind(SECS(20)),
        "cookie not reusable after SIGHUP:\n{}",
        lab.log("client.log")
    );
}

#[test]
fn client_certificate_login_pem_and_pkcs12() {
    let mut lab = Lab::new("clientcert");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let extra = pki.certificate_login_config();
    lab.start_ocserv_with_auth(&pki, "certificate", &extra);
    let (cert, key, p12) = pki.client_cert(&lab.dir, "alice", "p12pass");
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    let pem = lab.run_client(
        &[
            "--non-inter",
            "--cafile",
            &ca,
            "-c",
            &cert.display().to_string(),
            "-k",
            &key.display().to_string(),
            "--authenticate",
            &url,
        ],
        "",
        SECS(30),
    );
    assert_eq!(
        pem.status.code(),
        Some(0),
        "{}\n{}",
        output_text(&pem),
        lab.log("ocserv.log")
    );
    let script = lab.recording_script();
    lab.spawn_client(
        &[
            "--non-inter",
            "--cafile",
            &ca,
            "-c",
            &p12.display().to_string(),
            "-p",
            "p12pass",
            "-s",
            &script,
            &url,
        ],
        "",
    );
    assert!(lab.ping_behind(SECS(20)), "{}", lab.log("client.log"));
    assert!(lab.occtl("show users").contains("alice"));
    // A wrong PKCS#12 password is a clear local error.
    let bad = lab.run_client(
        &[
            "--non-inter",
            "-c",
            &p12.display().to_string(),
            "-p",
            "nope",
            "--authenticate",
            &url,
        ],
        "",
        SECS(10),
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        output_text(&bad).contains("PKCS#12"),
        "{}",
        output_text(&bad)
    );
}

#[test]
fn interactive_prompts_on_a_terminal() {
    let (lab, pki) = lab_with_ocserv("interactive");
    // `script` gives the client a pseudo-terminal; the answers are typed into it.
    let client = format!(
        "ip netns exec {} {} --cafile {} --authenticate https://{}/",
        lab.client_ns,
        ferroconnect_interop::bin("openconnect").display(),
        pki.ca_pem.display(),
        lab.server_ip
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &client, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    let mut input = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut input, b"alice\n").unwrap();
    std::thread::sleep(SECS(2));
    std::io::Write::write_all(&mut input, b"secret\n").unwrap();
    let done = wait_until(SECS(20), || child.try_wait().ok().flatten());
    drop(input);
    if done.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    let shown = output_text(&out);
    assert!(shown.contains("Username:"), "{shown}");
    assert!(shown.contains("Password:"), "{shown}");
    assert!(
        !shown.contains("secret"),
        "the password was echoed: {shown}"
    );
    assert!(shown.contains("COOKIE='webvpn="), "{shown}");
}

#[test]
fn dtls_psk_with_ocserv_carries_the_traffic() {
    let mut lab = Lab::new("dtls-psk");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    lab.start_ocserv(&pki, &[("alice", "secret")], "udp-port = 443\n");
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    lab.spawn_client(&login_args(&ca, &[&url]), "secret\n");
    lab.wait_for_log("client.log", "Established DTLS connection", SECS(20));
    assert!(lab.ping_behind(SECS(10)), "{}", lab.log("client.log"));
    lab.assert_pings_over_udp(20);
    let log = lab.log("ocserv.log");
    assert!(log.contains("DTLS"), "{log}");
}

/// Legacy DTLS against ocserv with `dtls-psk = false`: `cipher_args` picks the suite (none:
/// our default offer, which ocserv answers from X-DTLS12-CipherSuite), and `expect` is
/// what our client must log for the established channel.
fn legacy_dtls_with_ocserv(test: &str, cipher_args: &[&str], expect: &str) {
    let mut lab = Lab::new(test);
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    lab.start_ocserv(
        &pki,
        &[("alice", "secret")],
        "udp-port = 443\ndtls-psk = false\n",
    );
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    let mut rest = cipher_args.to_vec();
    rest.push(&url);
    lab.spawn_client(&login_args(&ca, &rest), "secret\n");
    let log = lab.wait_for_log("client.log", "Established DTLS connection", SECS(20));
    assert!(log.contains(expect), "{log}");
    assert!(lab.ping_behind(SECS(10)), "{}", lab.log("client.log"));
    lab.assert_traffic_over_udp();
    let server = lab.log("ocserv.log");
    assert!(!server.contains("PSK-NEGOTIATE"), "{server}");
}

#[test]
fn dtls_legacy_gcm_with_ocserv() {
    legacy_dtls_with_ocserv(
        "dtls-legacy-gcm",
        &[],
        "DTLSv1.2-AES256-GCM-SHA384 (OC-DTLS1_2-AES256-GCM)",
    );
}

#[test]
fn dtls_legacy_cbc_bad_ver_with_ocserv() {
    legacy_dtls_with_ocserv(
        "dtls-legacy-cbc",
        &["--dtls-ciphers", "AES128-SHA"],
        "AES128-SHA (AES128-SHA)",
    );
}

/// With UDP blocked from the start the tunnel comes up over TLS after the DTLS attempt
/// gives up; once UDP is allowed again, the periodic retry brings DTLS in.
#[test]
fn dtls_blocked_then_recovered_with_ocserv() {
    let mut lab = Lab::new("dtls-recover");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    lab.start_ocserv(&pki, &[("alice", "secret")], "udp-port = 443\n");
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    lab.block_udp();
    lab.spawn_client(&login_args(&ca, &[&url]), "secret\n");
    assert!(lab.ping_behind(SECS(20)), "{}", lab.log("client.log"));
    lab.wait_for_log("client.log", "retrying DTLS in 60s", SECS(20));
    let out = lab.iperf("-t 2");
    assert!(out.status.success(), "{}", output_text(&out));
    lab.unblock_udp();
    lab.wait_for_log("client.log", "Established DTLS connection", SECS(80));
    lab.assert_pings_over_udp(10);
    assert!(!lab.log("client.log").contains("Reconnected"));
}

/// A path that silently drops large UDP datagrams: path-MTU detection finds the limit,
/// and packets above it go over TLS instead of vanishing.
#[test]
fn dtls_path_mtu_detection_with_ocserv() {
    let mut lab = Lab::new("dtls-pmtu");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    lab.start_ocserv(&pki, &[("alice", "secret")], "udp-port = 443\n");
    lab.black_hole_large_udp(1200);
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    lab.spawn_client(&login_args(&ca, &[&url]), "secret\n");
    // 1200 - 20 (IP) - 8 (UDP) - 37 (DTLS 1.2 AES-GCM record) - 1 (type byte).
    let log = lab.wait_for_log("client.log", "Detected MTU of", SECS(30));
    assert!(log.contains("Detected MTU of 1134 bytes"), "{log}");
    assert!(lab.ping_behind(SECS(10)), "{}", lab.log("client.log"));
    lab.assert_pings_over_udp(10);
    // Pings larger than the path carries still answer (over TLS).
    let out = lab.in_client(&format!("ping -c 3 -s 1300 -W 2 {}", lab.behind_ip));
    assert!(out.status.success(), "{}", output_text(&out));
    // Full-size TCP segments upstream: without the fallback they would all be lost.
    let out = lab.iperf("-t 2");
    assert!(out.status.success(), "{}", output_text(&out));
}

/// A server that speaks only TLS 1.0 (Debian's ocserv with a GnuTLS priority string) is
/// refused with an error naming `--allow-insecure-crypto`, and logged into with it, as
/// upstream's obsolete-server-crypto test asks of openconnect.
#[test]
fn tls_1_0_server_is_reached_only_with_allow_insecure_crypto() {
    let mut lab = Lab::new("insecure-tls");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let priorities = "tls-priorities = \"NORMAL:%COMPAT:-VERS-TLS-ALL:+VERS-TLS1.0\"\n";
    lab.start_ocserv(&pki, &[("alice", "secret")], priorities);
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);

    let out = lab.run_client(
        &login_args(&ca, &["--cookieonly", &url]),
        "secret\n",
        SECS(20),
    );
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("--allow-insecure-crypto"), "{text}");
    assert!(!text.contains("webvpn="), "{text}");

    let args = ["--allow-insecure-crypto", "--cookieonly", &url];
    let out = lab.run_client(&login_args(&ca, &args), "secret\n", SECS(20));
    let text = output_text(&out);
    assert!(out.status.success(), "{text}\n{}", lab.log("ocserv.log"));
    assert!(text.contains("(TLSv1,"), "{text}");
    assert!(text.contains("webvpn="), "{text}");
}
