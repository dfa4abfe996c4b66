//! A client that freezes mid-tunnel (upstream's test-cstp-send-hang, issue #638): while the
//! server floods it over TLS its socket fills up, and the server must give the tunnel up
//! within 20 s as upstream's test asks: a small unsent queue (TCP_NOTSENT_LOWAT) makes
//! the write wait soon, then ocserv's 10 s write limit ends it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use ferroconnect_interop::{login_args, sh, wait_until, Lab, Pki};

/// The users occtl lists: it must answer, with a JSON list.
fn online(lab: &Lab) -> Vec<String> {
    let out = lab.our_occtl("-j show users");
    assert!(
        out.status.success(),
        "occtl failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let users: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "occtl -j show users: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    users
        .as_array()
        .expect("a JSON list of users")
        .iter()
        .map(|u| u["Username"].as_str().expect("a Username").to_owned())
        .collect()
}

#[test]
fn a_frozen_client_is_dropped_while_the_server_floods_it() {
    let mut lab = Lab::new("stalled");
    lab.use_real_client();
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    lab.start_our_server(&pki, &[("alice", "secret")], "no-udp = true\ndpd = 3600\n");
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    let pid = lab.spawn_client(&login_args(&ca, &[&url]), "secret\n");
    lab.assert_tunnel("before the freeze");
    let shown = String::from_utf8_lossy(&lab.our_occtl("-j show user alice").stdout).into_owned();
    let json: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let vpn_ip = json[0]["IPv4"].as_str().unwrap().to_owned();

    assert!(
        online(&lab).iter().any(|u| u == "alice"),
        "alice is not listed"
    );

    sh(&format!("kill -STOP {pid}"));
    let frozen = Instant::now();
    let flood = format!("timeout 30 ping -f -s 1400 -c 100000 {vpn_ip} >/dev/null 2>&1 &");
    lab.in_server(&flood);
    // Upstream's test gives the server 20 s from the flood's start.
    let gone = wait_until(Duration::from_secs(20), || {
        (!online(&lab).iter().any(|u| u == "alice")).then_some(())
    });
    sh(&format!("kill -CONT {pid}"));
    assert!(
        gone.is_some(),
        "the frozen client was kept:\n{}",
        lab.log("ocserv.log")
    );
    eprintln!("dropped {:?} after the freeze", frozen.elapsed());
    assert!(
        lab.log("ocserv.log")
            .contains("TLS write failed or stalled"),
        "{}",
        lab.log("ocserv.log")
    );
}
