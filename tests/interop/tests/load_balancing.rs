//! An ASA that balances its load redirects the login to another server, which then serves
//! the whole session: our test gateway (`src/bin/sso_gateway.rs --redirect-to`) sends the
//! login from port 4443 to our ocserv on 443. Debian's openconnect 9.01 follows it first
//! (`--authenticate` names the new server); then ours, through a tunnel that pings.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ferroconnect_interop::{authenticate_values, login_args, Lab, Pki};

const SECS: fn(u64) -> Duration = Duration::from_secs;

#[test]
fn a_redirect_to_another_server_moves_the_session_there() {
    let mut lab = Lab::new("balance");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    lab.start_our_server(&pki, &[("alice", "secret")], "");
    let target = format!("https://{}:443/", lab.server_ip);
    let listen = format!("{}:4443", lab.server_ip);
    lab.start_login_gateway(&pki, "sso_gateway", &listen, &["--redirect-to", &target]);
    let ca = pki.ca_pem.display().to_string();
    let first = format!("https://{listen}/");
    for client in [
        "/usr/sbin/openconnect",
        &lab.client_bin.display().to_string(),
    ] {
        let argv: Vec<&str> = [client, "--authenticate"]
            .into_iter()
            .chain(login_args(&ca, &[&first]))
            .collect();
        let out = lab.run_in(&lab.client_ns, &argv, "secret\n", SECS(30));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{client}: {stdout}\n{}",
            lab.log("gateway.log")
        );
        let value = authenticate_values(&stdout);
        let connect_url = format!("https://{}/", lab.server_ip);
        assert_eq!(value("CONNECT_URL"), connect_url, "{client}");
        assert_eq!(value("HOST"), lab.server_ip, "{client}");
    }
    assert_eq!(
        lab.log("gateway.log").matches("sent the login to").count(),
        2
    );
    lab.spawn_client(&login_args(&ca, &[&first]), "secret\n");
    lab.assert_tunnel("after the redirect to the other server");
    assert!(
        lab.log("client.log")
            .contains("The server moved the login to"),
        "{}",
        lab.log("client.log")
    );
}
