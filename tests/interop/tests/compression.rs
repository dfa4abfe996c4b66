//! Compression against the real peers, in network namespaces: our client with Debian's
//! ocserv (`compression = true`, each algorithm forced by priority), Debian's openconnect
//! with our server (LZS, LZ4, and deflate with `--compression all --no-dtls`), and ours
//! with ours. Each run proves the packets really shrank on the wire: compressible pings
//! move far fewer bytes over the veth than their size, in both directions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ferroconnect_interop::{login_args, Lab, Pki, ServerKind};

const SECS: fn(u64) -> Duration = Duration::from_secs;
/// Payload of each compressible ping (above ocserv's 256-byte no-compress-limit).
const PING_BYTES: u64 = 1200;
const PINGS: u64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    Debian,
    Ours,
}

fn start_lab(test: &str, server: Peer, client: Peer, server_extra: &str) -> (Lab, Pki) {
    let mut lab = Lab::new(test);
    if client == Peer::Debian {
        lab.use_real_client();
    }
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    let kind = match server {
        Peer::Debian => ServerKind::Debian,
        Peer::Ours => ServerKind::Ours,
    };
    let tool = match server {
        Peer::Debian => std::path::PathBuf::from("ocpasswd"),
        Peer::Ours => ferroconnect_interop::bin("ocpasswd"),
    };
    let auth = lab.make_passwd(&tool, &[("alice", "secret")], None);
    lab.start_server(kind, &pki, &auth, server_extra);
    (lab, pki)
}

/// Pings with a repeated byte pattern; asserts the veth saw well under half of what an
/// uncompressed tunnel would carry, each way.
fn assert_pings_compressed(lab: &Lab, what: &str) {
    let (rx0, tx0) = lab.client_link_bytes();
    let out = lab.in_client(&format!(
        "ping -c {PINGS} -i 0.05 -s {PING_BYTES} -p 61 {}",
        lab.behind_ip
    ));
    assert!(
        out.status.success(),
        "{what}: compressible pings failed:\n{}\nserver:\n{}",
        lab.log("client.log"),
        lab.log("ocserv.log")
    );
    let (rx1, tx1) = lab.client_link_bytes();
    let plain = PINGS * PING_BYTES;
    assert!(
        rx1 - rx0 < plain / 2 && tx1 - tx0 < plain / 2,
        "{what}: {PINGS} pings of {PING_BYTES} bytes moved {} bytes in, {} out: not compressed\n\
         client:\n{}\nserver:\n{}",
        rx1 - rx0,
        tx1 - tx0,
        lab.log("client.log"),
        lab.log("ocserv.log")
    );
}

/// iperf3 both ways with a repeating (compressible) payload, then random payload (which
/// does not shrink and must pass uncompressed).
fn assert_iperf(lab: &Lab, what: &str) {
    for args in [
        "-t 2 --repeating-payload",
        "-t 2 -R --repeating-payload",
        "-t 1",
    ] {
        let out = lab.iperf(args);
        assert!(
            out.status.success(),
            "{what}: iperf3 {args} failed:\n{}{}\nclient:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            lab.log("client.log")
        );
    }
}

/// Connects a client with `args`, checks the tunnel carries compressed traffic and that
/// `expect` appears in its log (the negotiated algorithm as the client reports it), then
/// logs off.
fn session(lab: &mut Lab, pki: &Pki, args: &[&str], dtls: bool, expect: &str) {
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    let mut rest = args.to_vec();
    rest.push(&url);
    let pid = lab.spawn_client(&login_args(&ca, &rest), "secret\n");
    if dtls {
        lab.wait_for_log("client.log", "Established DTLS connection", SECS(20));
    }
    assert!(lab.ping_behind(SECS(20)), "{}", lab.log("client.log"));
    lab.wait_for_log("client.log", expect, SECS(10));
    let channel = if dtls { "DTLS" } else { "CSTP" };
    assert_pings_compressed(lab, channel);
    if dtls {
        lab.assert_pings_over_udp(5);
    }
    assert_iperf(lab, channel);
    lab.signal_client(pid, "INT");
    assert_eq!(
        lab.wait_client(SECS(15)),
        Some(0),
        "{}",
        lab.log("client.log")
    );
}

const COMPRESSION_ON: &str = "udp-port = 443\ncompression = true\n";

/// A DTLS session whose client reports `dtls_line`, the server's log naming the algorithm
/// (`server_line`), then a TLS-only session (`--no-dtls`) reporting `tls_line`.
fn dtls_then_tls(lab: &mut Lab, pki: &Pki, dtls_line: &str, server_line: &str, tls_line: &str) {
    session(lab, pki, &[], true, dtls_line);
    lab.wait_for_log("ocserv.log", server_line, SECS(5));
    session(lab, pki, &["--no-dtls"], false, tls_line);
}

const LZS_FIRST: &str = "compression-algo-priority = lzs:100\n";

#[test]
fn our_client_with_debian_ocserv_lzs() {
    let extra = format!("{COMPRESSION_ON}{LZS_FIRST}");
    let (mut lab, pki) = start_lab("compr-oc-lzs", Peer::Debian, Peer::Ours, &extra);
    dtls_then_tls(
        &mut lab,
        &pki,
        "using SSL + LZS, with DTLS + LZS",
        "selected DTLS compression method lzs",
        "using SSL + LZS,",
    );
}

#[test]
fn our_client_with_debian_ocserv_lz4() {
    let (mut lab, pki) = start_lab("compr-oc-lz4", Peer::Debian, Peer::Ours, COMPRESSION_ON);
    dtls_then_tls(
        &mut lab,
        &pki,
        "using SSL + LZ4, with DTLS + LZ4",
        "selected CSTP compression method oc-lz4",
        "using SSL + LZ4,",
    );
}

#[test]
fn debian_openconnect_with_our_server_lzs() {
    let extra = format!("{COMPRESSION_ON}{LZS_FIRST}");
    let (mut lab, pki) = start_lab("compr-ours-lzs", Peer::Ours, Peer::Debian, &extra);
    dtls_then_tls(
        &mut lab,
        &pki,
        "with SSL + LZS",
        "selected DTLS compression method lzs",
        "with SSL + LZS",
    );
}

#[test]
fn debian_openconnect_with_our_server_lz4() {
    let (mut lab, pki) = start_lab("compr-ours-lz4", Peer::Ours, Peer::Debian, COMPRESSION_ON);
    dtls_then_tls(
        &mut lab,
        &pki,
        "and DTLS + LZ4",
        "selected CSTP compression method oc-lz4",
        "with SSL + LZ4",
    );
}

#[test]
fn deflate_on_tls_both_clients_with_our_server() {
    let (mut lab, pki) = start_lab(
        "compr-deflate",
        Peer::Ours,
        Peer::Debian,
        &format!("{COMPRESSION_ON}compression-algo-priority = deflate:100\n"),
    );
    session(
        &mut lab,
        &pki,
        &["--compression", "all", "--no-dtls"],
        false,
        "with SSL + Deflate",
    );
    lab.wait_for_log(
        "ocserv.log",
        "selected CSTP compression method deflate",
        SECS(5),
    );
    lab.client_bin = ferroconnect_interop::bin("openconnect");
    session(
        &mut lab,
        &pki,
        &["-d", "--no-dtls"],
        false,
        "using SSL + Deflate,",
    );
}

#[test]
fn our_server_keeps_compression_off_by_default() {
    // Our server without `compression = true`: our client offers, nothing is chosen.
    let (mut lab, pki) = start_lab("compr-off", Peer::Ours, Peer::Ours, "udp-port = 443\n");
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    let pid = lab.spawn_client(&login_args(&ca, &[&url]), "secret\n");
    let log = lab.wait_for_log("client.log", ", using SSL", SECS(20));
    assert!(log.contains("using SSL, with DTLS "), "{log}");
    lab.signal_client(pid, "INT");
    assert_eq!(lab.wait_client(SECS(15)), Some(0));
    assert!(!lab.log("ocserv.log").contains("compression method"));
}

#[test]
fn no_deflate_flag_offers_nothing() {
    // Our client with -D against Debian's ocserv with compression on: no offer, none used.
    let (mut lab, pki) = start_lab("compr-none", Peer::Debian, Peer::Ours, COMPRESSION_ON);
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    let pid = lab.spawn_client(&login_args(&ca, &["-D", &url]), "secret\n");
    let log = lab.wait_for_log("client.log", ", using SSL", SECS(20));
    assert!(log.contains("using SSL, with DTLS "), "{log}");
    assert!(lab.ping_behind(SECS(20)));
    lab.signal_client(pid, "INT");
    assert_eq!(lab.wait_client(SECS(15)), Some(0));
    assert!(!lab.log("ocserv.log").contains("compression method"));
}
