//! `restrict-user-to-ports`, which ocserv enforces with its firewall script and we with the
//! server's packet filter: Debian's openconnect reaches the listed ports behind the VPN and
//! nothing else, and the connect script sees ocserv's `OCSERV_ALLOW_PORTS`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ferroconnect_interop::{login_args, wait_until, Lab, Pki};

/// Whether a TCP connection from the client namespace to `ip:port` opens within 3 s.
fn connects(lab: &Lab, ip: &str, port: u16) -> bool {
    let out = lab.in_client(&format!(
        "timeout 3 bash -c 'exec 3<>/dev/tcp/{ip}/{port}' && echo open"
    ));
    String::from_utf8_lossy(&out.stdout).contains("open")
}

#[test]
fn only_the_listed_ports_are_reachable_through_the_tunnel() {
    let mut lab = Lab::new("ports");
    lab.use_real_client();
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let d = lab.dir.display().to_string();
    let script = lab.script(
        "connect.sh",
        &format!(
            "printf '%s|%s' \"$OCSERV_ALLOW_PORTS\" \"$OCSERV_RESTRICT_TO_ROUTES\" > {d}/ports"
        ),
    );
    let extra = format!(
        "udp-port = 443\nconnect-script = {}\nrestrict-user-to-ports = \"tcp(8080), icmp()\"\n",
        script.display()
    );
    lab.start_our_server(&pki, &[("alice", "secret")], &extra);
    // Two listeners on the host behind the server.
    let behind = lab.behind_ip.clone();
    for port in [8080, 8081] {
        let ns = lab.server_ns.clone();
        lab.spawn_in(
            &ns,
            &[
                "python3",
                "-m",
                "http.server",
                "-b",
                &behind,
                &port.to_string(),
            ],
            &format!("http-{port}.log"),
        );
    }
    // Both listeners must be up before the filter is judged (python starts slowly on a
    // busy machine, and a refused connection would look like the filter's doing).
    let listening = wait_until(Duration::from_secs(15), || {
        let out = lab.in_server("ss -ltn");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (text.contains(":8080") && text.contains(":8081")).then_some(())
    });
    assert!(listening.is_some(), "the test's HTTP servers did not start");
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    lab.spawn_client(&login_args(&ca, &[&url]), "secret\n");
    // icmp() is listed: the tunnel answers pings (over DTLS too).
    lab.assert_tunnel("with restrict-user-to-ports");
    lab.assert_pings_over_udp(3);
    assert!(connects(&lab, &behind, 8080), "tcp(8080) is listed");
    assert!(!connects(&lab, &behind, 8081), "tcp(8081) is not listed");
    // From the server's own namespace both listen (the filter, not the listener, said no).
    let direct = lab.in_server(&format!(
        "timeout 3 bash -c 'exec 3<>/dev/tcp/{behind}/8081' && echo open"
    ));
    assert!(String::from_utf8_lossy(&direct.stdout).contains("open"));
    assert_eq!(
        lab.wait_for_log("ports", "|", Duration::from_secs(5)),
        "tcp 8080 icmp all |1"
    );
}
