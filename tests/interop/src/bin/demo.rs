//! The README demo in network namespaces: Debian's ocserv with our client, then our ocserv
//! with Debian's openconnect, traffic across each.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ferroconnect_interop::{login_args, Lab, Pki};

fn step(text: &str) {
    println!("\n=== {text}");
}

fn main() {
    step("Part 1: Debian's ocserv, our openconnect client");
    let mut lab = Lab::new("demo");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    describe(&lab);
    lab.start_ocserv(&pki, &[("alice", "secret")], "");
    println!("Debian's ocserv is listening on https://{}/", lab.server_ip);
    let pid = show_tunnel(&mut lab, &pki, "our openconnect");
    step("ocserv's view (occtl show users)");
    print!("{}", lab.occtl("show users"));
    log_off(&mut lab, pid);
    drop(lab);

    step("Part 2: our ocserv (password file made by our ocpasswd), Debian's openconnect client");
    let mut lab = Lab::new("demo2");
    lab.use_real_client();
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    describe(&lab);
    lab.start_our_server(&pki, &[("alice", "secret")], "");
    println!("our ocserv is listening on https://{}/", lab.server_ip);
    let pid = show_tunnel(&mut lab, &pki, "Debian's openconnect");
    step("our server's log");
    print!("{}", lab.log("ocserv.log"));
    log_off(&mut lab, pid);
    println!("\nDemo finished; namespaces removed.");
}

fn describe(lab: &Lab) {
    println!(
        "server namespace {} ({}), client namespace {} ({}), host behind the VPN at {}",
        lab.server_ns, lab.server_ip, lab.client_ns, lab.client_ip, lab.behind_ip
    );
}

/// Brings the tunnel up with `client` and shows traffic; returns the client pid.
fn show_tunnel(lab: &mut Lab, pki: &Pki, client: &str) -> u32 {
    step(&format!(
        "{client} logs in as alice and brings up the tunnel"
    ));
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    let pid = lab.spawn_client(&login_args(&ca, &[&url]), "secret\n");
    if !lab.ping_behind(Duration::from_secs(20)) {
        panic!("the tunnel did not come up:\n{}", lab.log("client.log"));
    }
    print!("{}", lab.log("client.log"));

    step("client routes");
    print!(
        "{}",
        String::from_utf8_lossy(&lab.in_client("ip route").stdout)
    );

    step(&format!("ping {} through the tunnel", lab.behind_ip));
    let ping = lab.in_client(&format!("ping -c 3 {}", lab.behind_ip));
    print!("{}", String::from_utf8_lossy(&ping.stdout));

    step("iperf3 for 3 seconds through the tunnel (CSTP over TLS)");
    let iperf = lab.iperf("-t 3");
    print!("{}", String::from_utf8_lossy(&iperf.stdout));
    pid
}

fn log_off(lab: &mut Lab, pid: u32) {
    step("SIGINT: the client logs off and exits");
    lab.signal_client(pid, "INT");
    let code = lab.wait_client(Duration::from_secs(10));
    print!(
        "{}",
        lab.log("client.log").lines().last().unwrap_or_default()
    );
    println!("\nclient exit status: {code:?}");
}
