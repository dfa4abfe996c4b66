//! `[vhost:NAME]` sections (upstream's test-vhost): Debian's openconnect names a host with
//! `--resolve`, and the server answers as that virtual host: its certificate, its
//! credentials, its address pool; occtl and scripts name it; a cookie works only on the
//! host it was issued by; SIGHUP adds a host.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ferroconnect_interop::{
    authenticate_values, bin, output_text, pin_sha256, sh, wait_until, Lab, Pki, ServerKind,
};

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// Debian's openconnect logging in to `host` (resolved to the lab server) with
/// `--authenticate`: its output and whether it printed a cookie.
fn authenticate(lab: &Lab, host: &str, pin: &str, extra: &[&str], stdin: &str) -> (bool, String) {
    let resolve = format!("--resolve={host}:{}", lab.server_ip);
    let servercert = format!("--servercert={pin}");
    let mut args = vec!["--authenticate", "--non-inter", &resolve, &servercert];
    if !stdin.is_empty() {
        args.push("--passwd-on-stdin");
    }
    args.extend_from_slice(extra);
    args.push(host);
    let out = lab.run_client(&args, stdin, SECS(30));
    let text = output_text(&out);
    (out.status.success() && text.contains("COOKIE="), text)
}

#[test]
fn virtual_hosts_answer_with_their_own_certificate_credentials_and_pool() {
    let mut lab = Lab::new("vhosts");
    lab.use_real_client();
    // Namespaces for the tunnels after bob's: one with pass2's cookie, one for dave.
    let cookie_ns = lab.add_client_ns();
    let dave_ns = lab.add_client_ns();
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let default_auth = lab.make_passwd_at(
        "default.passwd",
        &bin("ocpasswd"),
        &[("alice", "secret")],
        None,
    );
    let pass2_auth =
        lab.make_passwd_at("pass2.passwd", &bin("ocpasswd"), &[("bob", "other")], None);
    let ec = openssl::pkey::PKey::from_ec_key(
        openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let (vhost_cert, vhost_key) = pki.server_cert_for(&lab.dir, "vhost", &ec, &lab.server_ip);
    let (user_cert, user_key, _) = pki.client_cert(&lab.dir, "carol", "p12");
    let script = lab.script(
        "connect.sh",
        &format!(
            "echo \"$USERNAME $VHOST $IP_REMOTE\" >> {}/connected",
            lab.dir.display()
        ),
    );
    // pass2's own per-user files: bob's moves him to another pool.
    let users = lab.dir.join("pass2-users");
    std::fs::create_dir_all(&users).unwrap();
    std::fs::write(users.join("bob"), "ipv4-network = 192.168.206.0/24\n").unwrap();
    let extra = format!(
        "connect-script = {script}\n\
         [vhost: pass2.example.com ]\n\
         auth = \"{pass2_auth}\"\n\
         server-cert = {cert}\n\
         server-key = {key}\n\
         ipv4-network = 192.168.203.0/24\n\
         config-per-user = {users}/\n\
         [vhost:cert.example.com]\n\
         auth = \"certificate\"\n\
         ca-cert = {ca}\n\
         cert-user-oid = 2.5.4.3\n\
         server-cert = {cert}\n\
         server-key = {key}\n\
         ipv4-network = 192.168.204.0/24\n",
        script = script.display(),
        cert = vhost_cert.display(),
        key = vhost_key.display(),
        ca = pki.ca_pem.display(),
        users = users.display(),
    );
    let config = lab.server_config(&pki, &default_auth, &extra);
    let config_path = lab.start_server_with_config(ServerKind::Ours, &config);
    let (default_pin, vhost_pin) = (pin_sha256(&pki.server_cert), pin_sha256(&vhost_cert));

    // Each host's users, each host's certificate (the pin must match it).
    assert!(
        authenticate(
            &lab,
            "default.example.com",
            &default_pin,
            &["-u", "alice"],
            "secret\n"
        )
        .0
    );
    let (ok, out) = authenticate(
        &lab,
        "pass2.example.com",
        &default_pin,
        &["-u", "bob"],
        "other\n",
    );
    assert!(!ok, "pass2 served the default certificate: {out}");
    let (ok, out) = authenticate(
        &lab,
        "pass2.example.com",
        &vhost_pin,
        &["-u", "alice"],
        "secret\n",
    );
    assert!(!ok, "alice of the default host logged in to pass2: {out}");
    let (ok, out) = authenticate(
        &lab,
        "PASS2.example.com",
        &vhost_pin,
        &["-u", "bob"],
        "other\n",
    );
    assert!(
        ok,
        "bob could not log in to pass2: {out}\n{}",
        lab.log("ocserv.log")
    );

    // Certificates: only where the host takes them.
    let cert_args = [
        "-c",
        user_cert.to_str().unwrap(),
        "-k",
        user_key.to_str().unwrap(),
    ];
    let (ok, out) = authenticate(&lab, "cert.example.com", &vhost_pin, &cert_args, "");
    assert!(ok, "certificate login to cert.example.com: {out}");
    let (ok, _) = authenticate(&lab, "default.example.com", &default_pin, &cert_args, "");
    assert!(
        !ok,
        "certificate login to the default host, which takes passwords"
    );

    // A tunnel on pass2: its per-user file, and occtl and the connect script name the host.
    let resolve = format!("--resolve=pass2.example.com:{}", lab.server_ip);
    let servercert = format!("--servercert={vhost_pin}");
    lab.spawn_client(
        &[
            "-u",
            "bob",
            "--passwd-on-stdin",
            "--non-inter",
            &resolve,
            &servercert,
            "pass2.example.com",
        ],
        "other\n",
    );
    let connected = wait_until(SECS(20), || {
        std::fs::read_to_string(lab.dir.join("connected")).ok()
    })
    .unwrap_or_else(|| panic!("no connect script run\n{}", lab.log("ocserv.log")));
    assert!(
        connected.starts_with("bob pass2.example.com 192.168.206."),
        "{connected}"
    );
    let user = lab.our_occtl("show user bob");
    let shown = String::from_utf8_lossy(&user.stdout).into_owned();
    assert!(shown.contains("vhost: pass2.example.com"), "{shown}");
    lab.assert_tunnel("through the pass2 virtual host");

    // A cookie of pass2 is refused by the default host ("cookie rejected") and then
    // accepted by pass2.
    let (ok, out) = authenticate(
        &lab,
        "pass2.example.com",
        &vhost_pin,
        &["-u", "bob"],
        "other\n",
    );
    assert!(ok, "{out}");
    let cookie = authenticate_values(&out)("COOKIE");
    let resolve = format!("--resolve=default.example.com:{}", lab.server_ip);
    let servercert = format!("--servercert={default_pin}");
    let refused = lab.run_client(
        &[
            "--cookie-on-stdin",
            "--non-inter",
            &resolve,
            &servercert,
            "default.example.com",
        ],
        &format!("{cookie}\n"),
        SECS(30),
    );
    assert_eq!(refused.status.code(), Some(2), "{}", output_text(&refused));
    lab.wait_for_log(
        "ocserv.log",
        "from a login to virtual host pass2.example.com, not default",
        SECS(5),
    );
    let resolve = format!("--resolve=pass2.example.com:{}", lab.server_ip);
    let servercert = format!("--servercert={vhost_pin}");
    lab.spawn_client_in(
        &cookie_ns,
        &[
            "--cookie-on-stdin",
            "--non-inter",
            &resolve,
            &servercert,
            "pass2.example.com",
        ],
        &format!("{cookie}\n"),
        "cookie.log",
    );
    assert_ping_from(&lab, &cookie_ns, "cookie.log");

    // SIGHUP adds a host.
    let pass3_auth =
        lab.make_passwd_at("pass3.passwd", &bin("ocpasswd"), &[("dave", "third")], None);
    let mut text = std::fs::read_to_string(&config_path).unwrap();
    text.push_str(&format!(
        "[vhost:pass3.example.com]\nauth = \"{pass3_auth}\"\nipv4-network = 192.168.205.0/24\n"
    ));
    std::fs::write(&config_path, text).unwrap();
    sh(&format!("kill -HUP {}", lab.server_pid()));
    let added = wait_until(SECS(15), || {
        authenticate(
            &lab,
            "pass3.example.com",
            &default_pin,
            &["-u", "dave"],
            "third\n",
        )
        .0
        .then_some(())
    });
    assert!(
        added.is_some(),
        "pass3 not served after SIGHUP\n{}",
        lab.log("ocserv.log")
    );

    // dave has no per-user file: his tunnel gets an address of pass3's own pool.
    let resolve = format!("--resolve=pass3.example.com:{}", lab.server_ip);
    let servercert = format!("--servercert={default_pin}");
    lab.spawn_client_in(
        &dave_ns,
        &[
            "-u",
            "dave",
            "--passwd-on-stdin",
            "--non-inter",
            &resolve,
            &servercert,
            "pass3.example.com",
        ],
        "third\n",
        "dave.log",
    );
    let connected = lab.wait_for_log("connected", "dave ", SECS(20));
    assert!(
        connected
            .lines()
            .any(|l| l.starts_with("dave pass3.example.com 192.168.205.")),
        "{connected}"
    );
    let user = lab.our_occtl("-j show user dave");
    let shown: serde_json::Value = serde_json::from_slice(&user.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&user.stdout)));
    let ipv4 = shown[0]["IPv4"].as_str().unwrap_or_default();
    assert!(ipv4.starts_with("192.168.205."), "{shown}");
    assert_ping_from(&lab, &dave_ns, "dave.log");
}

/// Asserts that the host behind the server answers pings from namespace `ns` (through the
/// tunnel of the client logging to `log`) within 20 s.
fn assert_ping_from(lab: &Lab, ns: &str, log: &str) {
    let pinged = wait_until(SECS(20), || {
        let out = lab.in_ns(ns, &format!("ping -c 1 -W 1 {}", lab.behind_ip));
        out.status.success().then_some(())
    });
    assert!(
        pinged.is_some(),
        "no tunnel from {ns}:\n{}\n{}",
        lab.log(log),
        lab.log("ocserv.log")
    );
}
