//! How our `ocserv` meets its clients in front-end set-ups: behind a real load balancer
//! (Debian's HAProxy) that speaks the PROXY protocol, v2 and v1, as upstream's `haproxy-*`
//! tests set it up (the client's address in the header, not the balancer's, is what logins,
//! bans, scripts and occtl see), with `udp-listen-host` apart from `listen-host`, and with
//! its listeners in another network namespace (`listen-netns`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ferroconnect_interop::{bin, wait_until, Lab, Pki, ServerKind};

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// HAProxy in TCP mode on the public address: port 8443 forwards with a v2 header, 8444
/// with a v1 header, both to our server on 127.0.0.1:443.
fn start_haproxy(lab: &mut Lab) {
    let ip = &lab.server_ip;
    let config = format!(
        "global\n  maxconn 64\n\
         defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
         frontend v2\n  bind {ip}:8443\n  default_backend ocserv_v2\n\
         frontend v1\n  bind {ip}:8444\n  default_backend ocserv_v1\n\
         backend ocserv_v2\n  server vpn 127.0.0.1:443 send-proxy-v2\n\
         backend ocserv_v1\n  server vpn 127.0.0.1:443 send-proxy\n"
    );
    let path = lab.dir.join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    let ns = lab.server_ns.clone();
    lab.spawn_in(
        &ns,
        &["haproxy", "-f", &path.display().to_string(), "-d"],
        "haproxy.log",
    );
    let listening = wait_until(SECS(10), || {
        let out = lab.in_server("ss -ltn");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (text.contains(":8443") && text.contains(":8444")).then_some(())
    });
    assert!(listening.is_some(), "haproxy:\n{}", lab.log("haproxy.log"));
}

#[test]
fn haproxy_v2_and_v1_headers_give_the_client_address_to_bans_scripts_and_occtl() {
    let mut lab = Lab::new("haproxy");
    lab.use_real_client();
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let d = lab.dir.display().to_string();
    let script = lab.script(
        "connect.sh",
        &format!("echo \"$IP_REAL $IP_REAL_LOCAL\" >> {d}/ip-real"),
    );
    let extra = format!(
        "listen-proxy-proto = true\nudp-port = 443\nconnect-script = {}\n\
         max-ban-score = 50\nban-points-wrong-password = 10\nban-reset-time = 300\n",
        script.display()
    );
    let auth = lab.make_passwd(&bin("ocpasswd"), &[("alice", "secret")], None);
    let config = lab.server_config(&pki, &auth, &extra).replace(
        &format!("listen-host = {}\n", lab.server_ip),
        &format!(
            "listen-host = 127.0.0.1\nudp-listen-host = {}\n",
            lab.server_ip
        ),
    );
    lab.start_server_with_config(ServerKind::Ours, &config);
    start_haproxy(&mut lab);
    let ca = pki.ca_pem.display().to_string();

    // A client that bypasses the balancer sends no header: closed before TLS.
    let direct = lab.in_server("echo | timeout 10 openssl s_client -connect 127.0.0.1:443 2>&1");
    let direct_text = String::from_utf8_lossy(&direct.stdout).into_owned();
    assert_eq!(direct.status.code(), Some(1), "{direct_text}");
    assert!(
        direct_text.contains("no peer certificate available"),
        "{direct_text}"
    );
    assert!(!direct_text.contains("BEGIN CERTIFICATE"), "{direct_text}");
    lab.wait_for_log(
        "ocserv.log",
        "does not start with a PROXY protocol header",
        SECS(10),
    );

    // Through the v2 balancer: the tunnel works, DTLS included (UDP goes straight to the
    // server, matched by session), and everyone sees the client's address.
    let url_v2 = format!("https://{}:8443/", lab.server_ip);
    lab.spawn_client(
        &["--cafile", &ca, "-u", "alice", "--passwd-on-stdin", &url_v2],
        "secret\n",
    );
    lab.assert_tunnel("through haproxy (PROXY v2)");
    lab.assert_pings_over_udp(3);
    let shown = lab.our_occtl("-j show user alice");
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains(&format!("\"Remote IP\":  \"{}\"", lab.client_ip))
            || shown.contains(&format!("\"Remote IP\": \"{}\"", lab.client_ip)),
        "{shown}"
    );
    let ip_real = lab.wait_for_log("ip-real", " ", SECS(10));
    assert_eq!(
        ip_real.trim(),
        format!("{} {}", lab.client_ip, lab.server_ip),
        "IP_REAL and IP_REAL_LOCAL"
    );

    // Wrong passwords through the v1 balancer earn the client ban points, not the balancer.
    let url_v1 = format!("https://{}:8444/", lab.server_ip);
    for _ in 0..2 {
        let out = lab.run_in(
            &lab.client_ns.clone(),
            &[
                "/usr/sbin/openconnect",
                "--cafile",
                &ca,
                "--authenticate",
                "-u",
                "alice",
                "--passwd-on-stdin",
                &url_v1,
            ],
            "wrong\n",
            SECS(30),
        );
        assert_ne!(out.status.code(), Some(0));
    }
    let points = lab.our_occtl("show ip ban points");
    let points = String::from_utf8_lossy(&points.stdout).into_owned();
    let client_points: u32 = points
        .lines()
        .find(|l| l.contains(&lab.client_ip))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or_else(|| panic!("no points for {}:\n{points}", lab.client_ip));
    assert!(client_points >= 20, "{points}");
    // HAProxy reaches the server from 127.0.0.1: that address must earn nothing.
    assert!(
        !points.contains("127.0.0.1"),
        "the balancer was punished:\n{points}"
    );
    let log = lab.log("ocserv.log");
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("wrong password for user 'alice'"))
        .collect();
    assert_eq!(refusals.len(), 2, "{log}");
    for line in refusals {
        assert!(line.contains(&format!(" {}:", lab.client_ip)), "{line}");
    }
}

/// Deletes a network namespace the test made, even when it fails.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

/// `listen-netns` (upstream's `test-namespace-listen`): the server runs in a namespace of
/// its own, with its tun device there, while its TCP and UDP listeners are made in the
/// lab's server namespace, where the clients reach them.
#[test]
fn listen_netns_puts_the_listeners_in_another_namespace_and_the_tun_device_stays_home() {
    let mut lab = Lab::new("listen-netns");
    lab.use_real_client();
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let home = Netns(format!("{}h", lab.name));
    ferroconnect_interop::sh(&format!(
        "ip netns add {0} && ip -n {0} link set lo up",
        home.0
    ));
    let auth = lab.make_passwd(&bin("ocpasswd"), &[("alice", "secret")], None);
    let listen_ns = lab.server_ns.clone();
    let config = lab.server_config(
        &pki,
        &auth,
        &format!("udp-port = 443\nlisten-netns = {listen_ns}\n"),
    );
    // Started in `home`; the lab's own namespace only holds the listeners.
    lab.server_ns = home.0.clone();
    lab.start_server_with_config(ServerKind::Ours, &config);
    lab.server_ns = listen_ns.clone();

    // The local addresses (fifth column) of a namespace's TCP and UDP listeners on port 443.
    let listeners = |ns: &str| -> Vec<String> {
        let out = ferroconnect_interop::sh(&format!("ss -N {ns} -Hltnu"));
        out.lines()
            .filter_map(|l| l.split_whitespace().nth(4))
            .filter(|local| local.ends_with(":443"))
            .map(str::to_string)
            .collect()
    };
    let public = format!("{}:443", lab.server_ip);
    let outside = listeners(&listen_ns);
    assert_eq!(
        outside.iter().filter(|a| **a == public).count(),
        2,
        "no TCP and UDP listener on {public} in {listen_ns}: {outside:?}"
    );
    let inside = listeners(&home.0);
    assert!(
        inside.is_empty(),
        "listeners in the server's own namespace: {inside:?}"
    );
    let device = format!("{}v0", lab.name);
    let links = |ns: &str| ferroconnect_interop::sh(&format!("ip -n {ns} -o link"));
    assert!(links(&home.0).contains(&device), "{}", links(&home.0));
    assert!(!links(&listen_ns).contains(&device));

    // Debian's openconnect logs in through the listener and gets its tunnel, DTLS too.
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    lab.spawn_client(
        &["--cafile", &ca, "-u", "alice", "--passwd-on-stdin", &url],
        "secret\n",
    );
    // The host behind the lab's server namespace is not reachable from `home`: ping the
    // server's end of the tunnel, its tun device there, and count the replies as datagrams.
    lab.wait_for_log("ocserv.log", "DTLS established", SECS(20));
    let gateway = format!("{}.1", lab.pool.rsplit_once('.').unwrap().0);
    let pinged = wait_until(SECS(10), || {
        let out = lab.in_client(&format!("ping -c 1 -W 1 {gateway}"));
        out.status.success().then_some(())
    });
    assert!(
        pinged.is_some(),
        "no ping to {gateway}:\n{}",
        lab.log("client.log")
    );
    lab.assert_pings_over_udp_to(&gateway, 5);
}
