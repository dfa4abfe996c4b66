//! `auth = radius` and `acct = radius` on our server against Debian's FreeRADIUS in the
//! lab (tests/interop/src/radius_server.rs): the Access-Accept's address, routes, DNS and
//! groups reach the client; a two-step login answers an Access-Challenge; accounting
//! records Start, Interim-Update and Stop with byte counts in FreeRADIUS's detail file;
//! a server that never answers (wrong secret) fails the login with a clear log line.
//! Debian's openconnect and ours log in, answering from stdin.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ferroconnect_interop::radius_server::RadiusServer;
use ferroconnect_interop::{bin, output_text, pin_sha256, wait_until, Lab, Pki, ServerKind};

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// alice gets .77 of the lab pool's network, routes to the lab's host behind the server
/// and 10.77.0.0/16, a DNS server, groups staff and ops, interim reports every 2 s.
fn users(lab: &Lab) -> String {
    let net = lab.pool.trim_end_matches(".0");
    let behind = lab.behind_ip.rsplit_once('.').unwrap().0;
    format!(
        "alice\tCleartext-Password := \"secret\"\n\
         \tService-Type = Framed-User,\n\
         \tFramed-IP-Address = {net}.77,\n\
         \tFramed-IP-Netmask = 255.255.255.0,\n\
         \tFramed-Route = \"{behind}.0/24 0.0.0.0 1\",\n\
         \tFramed-Route = \"10.77.0.0/16\",\n\
         \tClass = \"OU=staff;ops\",\n\
         \tAcct-Interim-Interval = 2,\n\
         \tMS-Primary-DNS-Server = 10.0.0.53\n\n\
         carol\tCleartext-Password := \"secret\"\n\
         \tService-Type = Framed-User\n"
    )
}

/// Our server with RADIUS for the default host and, on `bad.example.com`, a radcli file
/// with the wrong secret (FreeRADIUS drops those requests unanswered).
fn radius_lab(test: &str, real_client: bool) -> (Lab, RadiusServer, String) {
    let mut lab = Lab::new(test);
    if real_client {
        lab.use_real_client();
    }
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let users = users(&lab);
    let radius = RadiusServer::start(&mut lab, &users);
    let good = radius.radcli_conf("radiusclient", None, 1);
    // Never answered: each login waits the whole 6 s.
    let bad = radius.radcli_conf("wrong-secret", Some("not-the-secret"), 6);
    let files = lab.make_passwd(&bin("ocpasswd"), &[("dave", "secret")], Some("ops"));
    let auth = format!(
        "radius[config={},groupconfig=true,nas-identifier=lab-vpn]",
        good.display()
    );
    let extra = format!(
        "acct = \"radius[config={},nas-identifier=lab-vpn]\"\n\
         select-group = staff\n\
         select-group = ops\n\
         [vhost:bad.example.com]\n\
         auth = \"radius[config={}]\"\n\
         [vhost:files.example.com]\n\
         auth = \"{files}\"\n",
        good.display(),
        bad.display()
    );
    lab.start_server(ServerKind::Ours, &pki, &auth, &extra);
    (lab, radius, pin_sha256(&pki.server_cert))
}

/// The detail file's records of `status` (Start, Interim-Update, Stop).
fn records<'a>(detail: &'a str, status: &str) -> Vec<&'a str> {
    detail
        .split("\n\n")
        .filter(|r| r.contains(&format!("Acct-Status-Type = {status}")))
        .collect()
}

fn value<'a>(record: &'a str, name: &str) -> Option<&'a str> {
    record
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name} = ")))
        .map(|v| v.trim_matches('"'))
}

#[test]
fn the_real_openconnect_gets_what_radius_grants_and_is_accounted() {
    let (mut lab, radius, pin) = radius_lab("radius-real", true);
    let host = "vpn.example.com";
    let ops = ["--authgroup", "ops"];
    let (ok, out) = lab.authenticate_as(host, &pin, "alice", &ops, "wrong\n");
    assert!(!ok, "a wrong password was accepted:\n{out}");
    lab.wait_for_log(
        "ocserv.log",
        "RADIUS refused the login: Access-Reject",
        SECS(5),
    );

    // A whole tunnel: RADIUS's address, routes and DNS, the group from its Class.
    let resolve = format!("--resolve={host}:{}", lab.server_ip);
    let servercert = format!("--servercert={pin}");
    let script = lab.recording_script();
    lab.spawn_client(
        &[
            &resolve,
            &servercert,
            "-u",
            "alice",
            "--authgroup",
            "ops",
            "-s",
            &script,
            host,
        ],
        "secret\n",
    );
    lab.assert_tunnel("a RADIUS login");
    let env = lab.env_file("connect");
    let net = lab.pool.trim_end_matches(".0");
    assert_eq!(env["INTERNAL_IP4_ADDRESS"], format!("{net}.77"), "{env:?}");
    assert_eq!(env["INTERNAL_IP4_DNS"], "10.0.0.53", "{env:?}");
    let routes: Vec<String> = (0..env["CISCO_SPLIT_INC"].parse().unwrap())
        .map(|i| env[&format!("CISCO_SPLIT_INC_{i}_ADDR")].clone())
        .collect();
    assert!(routes.contains(&"10.77.0.0".to_string()), "{routes:?}");
    let show = output_text(&lab.our_occtl("show user alice"));
    assert!(show.contains("Groupname: ops"), "{show}");

    // Accounting: Start, then interim reports with the bytes the pings moved.
    let detail = wait_until(SECS(20), || {
        let d = radius.detail();
        records(&d, "Interim-Update")
            .iter()
            .any(|r| value(r, "Acct-Input-Octets").is_some_and(|v| v != "0"))
            .then_some(d)
    })
    .unwrap_or_else(|| panic!("no interim update with bytes:\n{}", radius.detail()));
    let start = records(&detail, "Start");
    assert_eq!(start.len(), 1, "{detail}");
    assert_eq!(value(start[0], "User-Name"), Some("alice"));
    assert_eq!(
        value(start[0], "Framed-IP-Address"),
        Some(format!("{net}.77").as_str())
    );
    assert_eq!(value(start[0], "NAS-Identifier"), Some("lab-vpn"));
    assert_eq!(value(start[0], "Class"), Some("0x4f553d73746166663b6f7073"));
    let session = value(start[0], "Acct-Session-Id").unwrap().to_owned();

    // The client leaves: Stop, same session, its bytes and the cause.
    lab.in_client("pkill -INT -f 'openconnect.*vpn.example.com'");
    let stop = wait_until(SECS(15), || {
        let d = radius.detail();
        records(&d, "Stop").first().map(|r| r.to_string())
    })
    .unwrap_or_else(|| panic!("no Stop:\n{}", radius.detail()));
    assert_eq!(value(&stop, "Acct-Session-Id"), Some(session.as_str()));
    assert_eq!(value(&stop, "Acct-Terminate-Cause"), Some("User-Request"));
    assert!(
        value(&stop, "Acct-Output-Octets").is_some_and(|v| v != "0"),
        "{stop}"
    );

    // Password, then the code the Access-Challenge asks for.
    let (ok, out) = lab.authenticate_as(host, &pin, "carol", &ops, "secret\n123456\n");
    assert!(
        ok,
        "carol's two-step login failed:\n{out}\n{}",
        lab.log("ocserv.log")
    );
    assert!(out.contains("Enter the code from your token"), "{out}");
    let (ok, _) = lab.authenticate_as(host, &pin, "carol", &ops, "secret\n999999\n");
    assert!(!ok, "a wrong code was accepted");

    // A RADIUS server that never answers (the wrong secret): refused, and the log says why.
    let (ok, _) = lab.authenticate_as("bad.example.com", &pin, "alice", &ops, "secret\n");
    assert!(!ok, "logged in through a server that never answered");
    lab.wait_for_log("ocserv.log", "(last: no answer within 6 s)", SECS(5));

    // Six logins wait on it at once; a password-file user of another host is not held up.
    let resolve = format!("--resolve=bad.example.com:{}", lab.server_ip);
    for _ in 0..6 {
        lab.spawn_client(
            &[
                "--authenticate",
                &resolve,
                &servercert,
                "-u",
                "alice",
                "--authgroup",
                "ops",
                "bad.example.com",
            ],
            "secret\n",
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    let (ok, out) = lab.authenticate_as("files.example.com", &pin, "dave", &ops, "secret\n");
    assert!(ok, "dave was refused:\n{out}");
    // When dave is in, the silent server's logins are still waiting (each takes 6 s, four
    // at a time): he did not queue behind them.
    let log = lab.log("ocserv.log");
    let given_up = log
        .matches("RADIUS refused the login: no valid answer from any RADIUS server")
        .count();
    assert!(given_up < 7, "dave waited for all six:\n{log}");
    lab.wait_for_log_count(
        "ocserv.log",
        "RADIUS refused the login: no valid answer from any RADIUS server",
        7,
        SECS(30),
    );
}

#[test]
fn our_client_answers_the_challenge_from_stdin() {
    let (lab, _radius, pin) = radius_lab("radius-ours", false);
    let (ok, out) = lab.authenticate_as(
        "vpn.example.com",
        &pin,
        "carol",
        &["--passwd-on-stdin", "--non-inter", "--authgroup", "staff"],
        "secret\n123456\n",
    );
    assert!(
        ok,
        "carol's two-step login failed:\n{out}\n{}",
        lab.log("ocserv.log")
    );
}

/// A hostile RADIUS server answers each request with junk first (a short datagram, a reply
/// signed with another secret, an oversized one, a truncated attribute), then a signed
/// reject: the junk is dropped and logged, the reject decides.
#[test]
fn hostile_radius_replies_are_dropped_and_logged() {
    let mut lab = Lab::new("radius-hostile");
    lab.use_real_client();
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/hostile_radius.py");
    let ns = lab.server_ns.clone();
    lab.spawn_in(&ns, &["python3", script, "18120", "s3cret"], "hostile.log");
    lab.wait_for_log("hostile.log", "ready", SECS(10));
    let conf = lab.dir.join("radiusclient.conf");
    std::fs::write(
        &conf,
        "authserver 127.0.0.1:18120:s3cret\nradius_timeout 3\nradius_retries 1\n",
    )
    .unwrap();
    let auth = format!("radius[config={}]", conf.display());
    lab.start_server(ServerKind::Ours, &pki, &auth, "");
    let pin = pin_sha256(&pki.server_cert);
    let (ok, out) = lab.authenticate_as("vpn.example.com", &pin, "alice", &[], "secret\n");
    assert!(!ok, "logged in through a hostile server:\n{out}");
    lab.wait_for_log(
        "ocserv.log",
        "RADIUS refused the login: Access-Reject (go away)",
        SECS(5),
    );
    let log = lab.log("ocserv.log");
    let dropped = log.matches("RADIUS: ignored a reply").count();
    assert_eq!(dropped, 4, "{log}");
    assert!(
        log.contains("authenticator check"),
        "the forged reply is not named:\n{log}"
    );
}
