//! `deny-roaming = true`: a cookie opens a tunnel only from the address it was obtained
//! from. Debian's openconnect gets a cookie with `--authenticate`, then connects with it
//! from another address (refused, as a rejected cookie) and from its own (accepted).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ferroconnect_interop::{authenticate_values, login_args, Lab, Pki};

const SECS: fn(u64) -> Duration = Duration::from_secs;

#[test]
fn deny_roaming_refuses_a_cookie_from_another_address() {
    let mut lab = Lab::new("roaming");
    lab.use_real_client();
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    lab.start_our_server(&pki, &[("alice", "secret")], "deny-roaming = true\n");
    let other_ns = lab.add_client_ns();
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    let out = lab.run_client(
        &login_args(&ca, &["--authenticate", &url]),
        "secret\n",
        SECS(30),
    );
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let cookie = authenticate_values(&stdout)("COOKIE");

    // From the other namespace's address: refused as a bad cookie (openconnect exits 2).
    let args = [
        "--cafile",
        ca.as_str(),
        "--cookie-on-stdin",
        "--non-inter",
        url.as_str(),
    ];
    let mut argv = vec!["/usr/sbin/openconnect"];
    argv.extend(args);
    let roamed = lab.run_in(&other_ns, &argv, &format!("{cookie}\n"), SECS(30));
    assert_eq!(
        roamed.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&roamed.stderr)
    );
    lab.wait_for_log("ocserv.log", "deny-roaming", SECS(5));

    // From the login's address the same cookie opens the tunnel.
    lab.spawn_client(&args, &format!("{cookie}\n"));
    lab.assert_tunnel("with the cookie from its own address");
}
