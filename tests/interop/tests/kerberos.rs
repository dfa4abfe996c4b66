//! GSSAPI (Kerberos) logins: a realm with MIT's KDC in the lab, a ticket from `kinit` in
//! the client's namespace, and Debian's ocserv with `auth = "gssapi[...]"`, which answers
//! `X-Support-HTTP-Auth` with a Negotiate challenge. Debian's openconnect 9.01 logs in with
//! the ticket first; then ours, through a tunnel that pings; without a ticket, ours names
//! what is missing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ferroconnect_interop::kdc::{assert_no_ticket_error, Kdc, ALICE_PASSWORD, REALM};
use ferroconnect_interop::{output_text, run_to_end, Lab, Pki, ServerKind};

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// The lab's realm, with the server told where it is: the KDC and the server's keytab.
fn realm(lab: &mut Lab) -> (Kdc, std::path::PathBuf) {
    let (kdc, keytab) = Kdc::start_with_alice(lab, "http.keytab");
    lab.server_env
        .push(("KRB5_CONFIG".into(), kdc.config.display().to_string()));
    (kdc, keytab)
}

/// The line each server logs for alice's Kerberos login.
fn gssapi_login_line(kind: ServerKind) -> String {
    match kind {
        ServerKind::Debian => format!("authenticated GSSAPI user: alice@{REALM}"),
        ServerKind::Ours => format!("GSSAPI: principal alice@{REALM} authenticated"),
    }
}

#[test]
fn a_kerberos_ticket_logs_in_to_ocserv() {
    a_kerberos_ticket_logs_in(ServerKind::Debian);
}

#[test]
fn a_kerberos_ticket_logs_in_to_our_server() {
    a_kerberos_ticket_logs_in(ServerKind::Ours);
}

fn a_kerberos_ticket_logs_in(kind: ServerKind) {
    let mut lab = Lab::new("krb5");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let (kdc, keytab) = realm(&mut lab);
    let auth = format!(
        "gssapi[keytab={},require-local-user-map=false]",
        keytab.display()
    );
    lab.start_server(kind, &pki, &auth, "");
    let cache = kdc.kinit(&lab, "alice", ALICE_PASSWORD);
    let ca = pki.ca_pem.display().to_string();
    let u = format!("https://{}/", lab.server_ip);
    let client_ns = lab.client_ns.clone();
    let client = |bin: &str, cache: &str, rest: &[&str]| {
        let mut cmd = std::process::Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &client_ns,
            bin,
            "--non-inter",
            "--cafile",
            &ca,
        ])
        .args(rest)
        .arg(&u)
        .env("KRB5_CONFIG", &kdc.config)
        .env("KRB5CCNAME", cache);
        cmd
    };
    for bin in [
        "/usr/sbin/openconnect",
        &lab.client_bin.display().to_string(),
    ] {
        let out = run_to_end(client(bin, &cache, &["--authenticate"]), "", SECS(30));
        let text = output_text(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{bin}: {text}\n{}",
            lab.log("ocserv.log")
        );
        assert!(text.contains("COOKIE='"), "{bin}: {text}");
    }
    let log = lab.log("ocserv.log");
    assert_eq!(log.matches(&gssapi_login_line(kind)).count(), 2, "{log}");
    let ours = lab.client_bin.display().to_string();
    let cmd = client(&ours, &cache, &[]);
    lab.spawn_logged(cmd, "", "client.log");
    lab.assert_tunnel("logged in with a Kerberos ticket");
    // No ticket: GSSAPI's reason, and what to do.
    let out = run_to_end(
        client(&ours, &kdc.no_ticket(), &["--authenticate"]),
        "",
        SECS(30),
    );
    assert_no_ticket_error(&out);
}

/// ocserv with passwords first and GSSAPI enabled beside them (`enable-auth`): offered
/// HTTP authentication, it asks for Negotiate and allows the fallback. With a ticket the
/// login is Kerberos; without one, the password form, for Debian's openconnect and ours.
#[test]
fn without_a_ticket_the_login_falls_back_to_the_password() {
    falls_back_without_a_ticket(ServerKind::Debian);
}

#[test]
fn without_a_ticket_our_server_falls_back_to_the_password() {
    falls_back_without_a_ticket(ServerKind::Ours);
}

fn falls_back_without_a_ticket(kind: ServerKind) {
    let mut lab = Lab::new("krb5-fallback");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let (kdc, keytab) = realm(&mut lab);
    let tool = match kind {
        ServerKind::Debian => std::path::PathBuf::from("ocpasswd"),
        ServerKind::Ours => ferroconnect_interop::bin("ocpasswd"),
    };
    let passwd = lab.make_passwd(&tool, &[("alice", "secret")], None);
    let extra = format!(
        "enable-auth = \"gssapi[keytab={},require-local-user-map=false]\"\n",
        keytab.display()
    );
    lab.start_server(kind, &pki, &passwd, &extra);
    let cache = kdc.kinit(&lab, "alice", ALICE_PASSWORD);
    let empty = kdc.no_ticket();
    let ca = pki.ca_pem.display().to_string();
    let u = format!("https://{}/", lab.server_ip);
    let authenticate = |bin: &str, cache: &str| {
        let mut cmd = std::process::Command::new("ip");
        cmd.args(["netns", "exec", &lab.client_ns, bin])
            .args([
                "--authenticate",
                "-u",
                "alice",
                "--passwd-on-stdin",
                "--cafile",
                &ca,
                &u,
            ])
            .env("KRB5_CONFIG", &kdc.config)
            .env("KRB5CCNAME", cache);
        let out = run_to_end(cmd, "secret\n", SECS(30));
        (out.status.code(), output_text(&out))
    };
    let ours = lab.client_bin.display().to_string();
    for bin in ["/usr/sbin/openconnect", ours.as_str()] {
        let (code, text) = authenticate(bin, &empty);
        assert_eq!(
            code,
            Some(0),
            "{bin} without a ticket: {text}\n{}",
            lab.log("ocserv.log")
        );
    }
    let (code, text) = authenticate(&ours, &cache);
    assert_eq!(code, Some(0), "with a ticket: {text}");
    let log = lab.log("ocserv.log");
    assert_eq!(log.matches(&gssapi_login_line(kind)).count(), 1, "{log}");
    if kind == ServerKind::Ours {
        // A token the acceptor refuses: the login's context is closed at once, and the log
        // says so once in ocserv's words (upstream's test-gssapi-opt-pass counts them).
        let closes = |log: &str| log.matches("permanently closing session").count();
        assert_eq!(closes(&log), 0, "{log}");
        lab.in_client(&format!(
            "curl -sS -o /dev/null --cacert {ca} -H 'X-Support-HTTP-Auth: true' \
             -H 'Authorization: Negotiate YIIBAA==' {u}"
        ));
        lab.wait_for_log("ocserv.log", "permanently closing session", SECS(5));
        assert_eq!(closes(&lab.log("ocserv.log")), 1);
    }
}

#[test]
fn kinit_through_ocservs_kdc_proxy() {
    kinit_through_the_kdc_proxy(ServerKind::Debian);
}

#[test]
fn kinit_through_our_kdc_proxy() {
    kinit_through_the_kdc_proxy(ServerKind::Ours);
}

/// `kkdcp`: MIT's kinit in the client namespace gets a ticket through the server's HTTPS
/// port (MS-KKDCP) from the realm's KDC, which the client cannot reach itself; over TCP
/// for both servers, over UDP too for ours (ocserv 1.1.6 sends the framed message as the
/// datagram, which a KDC ignores). A wrong password is the KDC's refusal, relayed; a body
/// that is no KDC-PROXY-MESSAGE gets 502.
fn kinit_through_the_kdc_proxy(kind: ServerKind) {
    let mut lab = Lab::new("krb5-kkdcp");
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let (kdc, keytab) = realm(&mut lab);
    // The client reaches only the VPN's HTTPS port on the server.
    lab.in_client(&format!(
        "iptables -A OUTPUT -d {} -p tcp --dport 88 -j REJECT && \
         iptables -A OUTPUT -d {} -p udp --dport 88 -j REJECT",
        lab.server_ip, lab.server_ip
    ));
    let auth = format!(
        "gssapi[keytab={},require-local-user-map=false]",
        keytab.display()
    );
    let ip = lab.server_ip.clone();
    let extra = format!(
        "kkdcp = \"/KdcProxy {REALM} tcp@{ip}:88\"\n\
         kkdcp = \"/KdcProxyUdp {REALM} udp@{ip}:88\"\n\
         run-as-user = nobody\nrun-as-group = nogroup\n"
    );
    lab.start_server(kind, &pki, &auth, &extra);
    let mut paths = vec!["KdcProxy"];
    if kind == ServerKind::Ours {
        paths.push("KdcProxyUdp");
    }
    for path in paths {
        let config = kdc.proxy_config(
            &format!("{path}.conf"),
            &format!("https://{ip}/{path}"),
            &pki.ca_pem,
        );
        let cache = format!("FILE:{}/ccache-{path}", lab.dir.display());
        let out = kdc.kinit_with(&lab, &config, &cache, "alice", ALICE_PASSWORD);
        assert!(
            out.status.success(),
            "kinit through /{path}: {}\n{}",
            output_text(&out),
            lab.log("ocserv.log")
        );
        let out = kdc.kinit_with(&lab, &config, &cache, "alice", "wrong");
        let text = output_text(&out);
        assert!(
            !out.status.success(),
            "a wrong password got a ticket: {text}"
        );
        assert!(text.contains("Password incorrect"), "{text}");
    }
    if kind == ServerKind::Ours {
        let out = lab.in_client(&format!(
            "curl -sS -o /dev/null -w '%{{http_code}}' --cacert {} --data-binary 'garbage' \
             https://{ip}/KdcProxy",
            pki.ca_pem.display()
        ));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "502");
        lab.wait_for_log(
            "ocserv.log",
            "KDC proxy request failed: KDC-PROXY-MESSAGE malformed",
            SECS(5),
        );
    }
}
