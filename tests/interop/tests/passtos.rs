//! `--passtos` against our server over DTLS: a ping marked AF11 (TOS 0x28) leaves the
//! client inside a DTLS datagram that carries the same DSCP, counted by an nftables rule
//! on the server's side; without the option the datagrams stay unmarked. The same through
//! the test gateways: Fortinet's PPP over DTLS, Network Connect's and GlobalProtect's ESP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ferroconnect_interop::gateway_lab::{GatewayLab, Vendor};
use ferroconnect_interop::{login_args, output_text, Lab, Pki, ServerKind};

/// Counts, in the server's namespace, UDP datagrams marked AF11 that match `selector`.
fn count_marked(lab: &Lab, selector: &str) {
    let out = lab.in_server(&format!(
        "nft add table inet tos && \
         nft add chain inet tos input '{{ type filter hook input priority 0; }}' && \
         nft add rule inet tos input {selector} ip dscp af11 counter"
    ));
    assert!(out.status.success(), "{}", output_text(&out));
}

/// How many UDP datagrams marked AF11 reached the server so far.
fn marked_datagrams(lab: &Lab) -> u64 {
    let out = lab.in_server("nft list chain inet tos input");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter in {text}"))
}

fn pings_marked_through(passtos: bool) -> u64 {
    let mut lab = Lab::new(if passtos { "passtos-on" } else { "passtos-off" });
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let auth = lab.make_passwd(
        std::path::Path::new("ocpasswd"),
        &[("alice", "secret")],
        None,
    );
    lab.start_server(ServerKind::Ours, &pki, &auth, "udp-port = 443\n");
    count_marked(&lab, "udp dport 443");
    let ca = pki.ca_pem.display().to_string();
    let u = format!("https://{}/", lab.server_ip);
    let mut rest = vec![u.as_str()];
    if passtos {
        rest.insert(0, "--passtos");
    }
    lab.spawn_client(&login_args(&ca, &rest), "secret\n");
    lab.assert_tunnel("the tunnel");
    lab.assert_pings_over_udp(3);
    let before = marked_datagrams(&lab);
    let ping = lab.in_client(&format!("ping -Q 0x28 -c 5 -i 0.05 {}", lab.behind_ip));
    assert!(ping.status.success(), "{}", lab.log("client.log"));
    marked_datagrams(&lab) - before
}

#[test]
fn passtos_copies_the_packets_tos_onto_dtls() {
    assert!(pings_marked_through(true) >= 5);
    assert_eq!(pings_marked_through(false), 0);
}

/// Our client (with `--passtos` when `passtos`) through a test gateway whose UDP channel
/// comes up when the client log says `up`: how many of 5 pings marked AF11 left marked.
fn gateway_marks(test: &str, vendor: Vendor, up: &str, passtos: bool) -> u64 {
    let mut gateway = GatewayLab::start(test, vendor, &[], false);
    let client_ip = gateway.lab.client_ip.clone();
    count_marked(
        &gateway.lab,
        &format!("ip saddr {client_ip} meta l4proto udp"),
    );
    gateway.spawn_client(if passtos { &["--passtos"] } else { &[] });
    gateway
        .lab
        .wait_for_log("client.log", up, Duration::from_secs(20));
    gateway.lab.assert_tunnel("");
    let before = marked_datagrams(&gateway.lab);
    let behind = gateway.lab.behind_ip.clone();
    let ping = gateway
        .lab
        .in_client(&format!("ping -Q 0x28 -c 5 -i 0.05 {behind}"));
    assert!(ping.status.success(), "{}", gateway.logs());
    marked_datagrams(&gateway.lab) - before
}

#[test]
fn passtos_marks_ppp_over_dtls_and_esp() {
    let dtls = "DTLS is enabled on port";
    let esp = "ESP session established with server";
    assert!(gateway_marks("passtos-forti", Vendor::Fortinet, dtls, true) >= 5);
    assert_eq!(
        gateway_marks("passtos-forti-off", Vendor::Fortinet, dtls, false),
        0
    );
    assert!(gateway_marks("passtos-nc", Vendor::Nc, esp, true) >= 5);
    assert!(gateway_marks("passtos-gp", Vendor::Gp, esp, true) >= 5);
}
