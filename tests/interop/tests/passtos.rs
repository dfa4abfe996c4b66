//! `--passtos` against our server over DTLS: a ping marked AF11 (TOS 0x28) leaves the
//! client inside a DTLS datagram that carries the same DSCP, counted by an nftables rule
//! on the server's side; without the option the datagrams stay unmarked.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ferroconnect_interop::{login_args, output_text, Lab, Pki, ServerKind};

/// How many UDP datagrams marked AF11 reached the server's DTLS port so far.
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
    let out = lab.in_server(
        "nft add table inet tos && \
         nft add chain inet tos input '{ type filter hook input priority 0; }' && \
         nft add rule inet tos input udp dport 443 ip dscp af11 counter",
    );
    assert!(out.status.success(), "{}", output_text(&out));
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
