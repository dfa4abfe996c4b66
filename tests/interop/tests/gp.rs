//! `--protocol=gp` against our GlobalProtect test gateway (`src/bin/gp_gateway/`): Debian's
//! openconnect 9.01 proves the gateway — prelogin, the portal's configuration and its
//! gateway list (`--authgroup` choosing one), the gateway's login with a challenge (XML and
//! JavaScript) answered by `-F`, a wrong password refused, getconfig with ESP keys, the HIP
//! check, ESP (the magic probe answered, packets both ways as UDP datagrams), the TLS
//! tunnel when UDP is blocked or ESP is refused, `--authenticate` then `--cookie-on-stdin`,
//! the logout on SIGINT — and hostile input to the gateway is logged and dropped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ferroconnect_interop::gateway_lab::{GatewayLab, Vendor};

const DNS_SUFFIX: &str = "example.test";
/// What the gateway logs when a client logs out.
const LOGGED_OUT: &str = "logout: session forgotten";

/// A lab with the gateway started with a DNS suffix and `extra` options; the client is
/// Debian's openconnect when `real_client`, else ours.
fn start(test: &str, extra: &[&str], real_client: bool) -> GatewayLab {
    let mut gp = GatewayLab::new(test, Vendor::Gp, real_client);
    let mut args = vec!["--dns-suffix", DNS_SUFFIX];
    args.extend_from_slice(extra);
    gp.start_gateway(&args);
    gp
}

/// [`GatewayLab::assert_tunnel_up`], and what GlobalProtect adds: the DNS suffix became the
/// search domain, the gateway logged in through the portal and the HIP check said no report
/// is needed.
fn assert_gp_tunnel_up(gp: &GatewayLab) {
    let env = gp.assert_tunnel_up();
    let get = |name: &str| env.get(name).map(String::as_str);
    assert_eq!(get("CISCO_SPLIT_INC_0_MASKLEN"), Some("32"), "{env:?}");
    assert_eq!(get("CISCO_DEF_DOMAIN"), Some(DNS_SUFFIX), "{env:?}");
    let gateway = gp.gateway_log();
    assert!(gateway.contains("report not needed"), "{gateway}");
}

/// The tunnel is up over ESP: openconnect 9.01 says the ESP session is established and it
/// leaves the HTTPS main loop; the gateway answered its probe and runs the ESP tunnel; 20
/// pings come back as UDP datagrams.
fn assert_esp_tunnel_up(gp: &GatewayLab) {
    assert_gp_tunnel_up(gp);
    let client = gp.lab.log("client.log");
    for line in [
        "ESP session established with server",
        "ESP tunnel connected; exiting HTTPS mainloop.",
    ] {
        assert!(client.contains(line), "no {line:?}:\n{}", gp.logs());
    }
    let gateway = gp.gateway_log();
    assert!(gateway.contains("ESP tunnel "), "{gateway}");
    assert!(gateway.contains("answered"), "{gateway}");
    assert!(
        !gateway.contains("GET /ssl-tunnel-connect.sslvpn"),
        "{gateway}"
    );
    gp.lab.assert_pings_over_udp(20);
}

/// Portal, then gateway; ESP up; ping and iperf3 both ways as UDP datagrams; SIGINT logs
/// out.
#[test]
fn debian_openconnect_logs_in_through_the_portal_and_tunnels_over_esp() {
    let mut gp = start("gp-esp", &[], true);
    let pid = gp.spawn_client(&[]);
    assert_esp_tunnel_up(&gp);
    for direction in ["", "-R"] {
        gp.assert_iperf_moves_a_megabyte_over_udp(direction);
    }
    let gateway = gp.disconnect(pid, LOGGED_OUT);
    assert!(gateway.contains("POST /ssl-vpn/logout.esp"), "{gateway}");
}
