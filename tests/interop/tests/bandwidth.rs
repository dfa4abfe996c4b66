//! `rx-data-per-sec` and `tx-data-per-sec` as upstream's `bandwidth` test checks them:
//! iperf3 through a tunnel of our `ocserv` with Debian's openconnect moves data but is held
//! under twice 100 kB/s in each direction, over DTLS and over TLS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ferroconnect_interop::{login_args, Lab, Pki};

const RATE_BYTES: f64 = 100_000.0;

/// What iperf3's receiver counted, from its JSON report: (bytes, bytes per second).
fn received(lab: &Lab, args: &str) -> (u64, f64) {
    let out = lab.iperf(&format!("-t 4 -J {args}"));
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "iperf3 {args}:\n{report}");
    let json: serde_json::Value = serde_json::from_str(&report).unwrap();
    let sum = &json["end"]["sum_received"];
    let bytes = sum["bytes"].as_u64().unwrap_or_else(|| panic!("{report}"));
    let rate = sum["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("{report}"))
        / 8.0;
    (bytes, rate)
}

/// The transfer succeeds and moves data, and the limit holds it down.
fn assert_held_to_the_limit(lab: &Lab, what: &str, args: &str) {
    let (bytes, rate) = received(lab, args);
    eprintln!("{what}: {bytes} B, {rate:.0} B/s (limit {RATE_BYTES})");
    assert!(bytes > 0, "{what}: nothing received");
    assert!(rate <= 2.0 * RATE_BYTES, "{what}: {rate:.0} B/s");
}

#[test]
fn rx_and_tx_data_per_sec_hold_uploads_and_downloads_to_the_limit() {
    let mut lab = Lab::new("bandwidth");
    lab.use_real_client();
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let extra = "udp-port = 443\nrx-data-per-sec = 100000\ntx-data-per-sec = 100000\n";
    lab.start_our_server(&pki, &[("alice", "secret")], extra);
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    let pid = lab.spawn_client(&login_args(&ca, &[&url]), "secret\n");
    lab.assert_tunnel("with bandwidth limits");
    lab.assert_pings_over_udp(3);
    assert_held_to_the_limit(&lab, "upload over DTLS", "");
    assert_held_to_the_limit(&lab, "download over DTLS", "-R");

    // The same limits on the TLS channel, with a client that does not use DTLS.
    lab.signal_client(pid, "TERM");
    lab.wait_client(Duration::from_secs(10));
    lab.wait_for_log("ocserv.log", "disconnected", Duration::from_secs(10));
    lab.spawn_client(&login_args(&ca, &["--no-dtls", &url]), "secret\n");
    lab.assert_tunnel("over TLS only with bandwidth limits");
    assert_held_to_the_limit(&lab, "upload over TLS", "");
    assert_held_to_the_limit(&lab, "download over TLS", "-R");
}
