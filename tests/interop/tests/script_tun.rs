//! `-S/--script-tun` against our server: no tun device, the script takes the packets on
//! `VPNFD`. Run as an unprivileged user (no tun could be made), with ocproxy (Debian's, a
//! real lwIP stack forwarding a TCP port through the tunnel) and with a script of ours that
//! pings through the socket pair and then exits, which ends the session.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::time::Duration;

use ferroconnect_interop::{login_args, output_text, sh, wait_until, Lab, Pki};

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// A lab with our server, and the lab's files readable by `nobody`.
fn lab(test: &str) -> (Lab, Pki) {
    let mut lab = Lab::new(test);
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    lab.start_our_server(&pki, &[("alice", "secret")], "");
    sh(&format!("chmod o+rx {}", lab.dir.display()));
    (lab, pki)
}

/// Our client as `nobody`, with `-S -s script`, logging to `client.log`.
fn spawn_unprivileged(lab: &mut Lab, pki: &Pki, script: &str) -> u32 {
    let ca = pki.ca_pem.display().to_string();
    let u = format!("https://{}/", lab.server_ip);
    // A copy in the lab directory: `nobody` may not reach the build tree (a checkout under
    // a private home directory).
    let copy = lab.dir.join("openconnect");
    fs::copy(&lab.client_bin, &copy).unwrap();
    let client = copy.display().to_string();
    let mut argv = vec![
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        client.as_str(),
    ];
    let rest = ["-S", "-s", script, u.as_str()];
    argv.extend(login_args(&ca, &rest));
    let mut cmd = std::process::Command::new("ip");
    cmd.args(["netns", "exec", &lab.client_ns]).args(&argv);
    lab.spawn_logged(cmd, "secret\n", "client.log")
}

#[test]
fn ocproxy_forwards_a_port_through_the_tunnel() {
    let (mut lab, pki) = lab("script-tun-ocproxy");
    let behind = lab.behind_ip.clone();
    let ns = lab.server_ns.clone();
    let listen = format!("TCP-LISTEN:8080,bind={behind},fork,reuseaddr");
    lab.spawn_in(
        &ns,
        &["socat", &listen, "SYSTEM:echo hello-from-behind"],
        "socat.log",
    );
    let pid = spawn_unprivileged(&mut lab, &pki, &format!("ocproxy -L 2222:{behind}:8080"));
    let answer = wait_until(SECS(20), || {
        let out = lab.in_client("timeout 5 socat -u TCP:127.0.0.1:2222 STDOUT");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("hello-from-behind").then_some(text)
    });
    assert!(
        answer.is_some(),
        "no answer through ocproxy:\n{}\n{}\n{}",
        lab.log("client.log"),
        output_text(&lab.in_client("ps -ef | grep ocprox[y]; ss -tlnp")),
        lab.log("socat.log")
    );
    let log = lab.log("client.log");
    assert!(log.contains("(script)"), "{log}");
    // No tun device appeared in the client's namespace.
    let links = output_text(&lab.in_client("ip -o link show"));
    assert!(!links.contains("tun"), "{links}");
    // SIGINT logs off and hangs up on ocproxy.
    lab.log_off(pid);
    let gone = wait_until(SECS(5), || {
        (!lab.in_client("pgrep -x ocproxy").status.success()).then_some(())
    });
    assert!(gone.is_some(), "ocproxy outlived the client");
}

/// Sends one ICMP echo request from the tunnel address to the host behind the server over
/// VPNFD, waits for the reply and records it.
const PING_SCRIPT: &str = r#"
import os, socket, struct, sys
def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xffff)
    total += total >> 16
    return ~total & 0xffff
fd = socket.socket(fileno=int(os.environ["VPNFD"]))
src = socket.inet_aton(os.environ["INTERNAL_IP4_ADDRESS"])
dst = socket.inet_aton(sys.argv[1])
icmp = struct.pack("!BBHHH", 8, 0, 0, 0x4242, 1) + b"ferroconnect"
icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 1, 0, 64, 1, 0, src, dst)
header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
fd.settimeout(1)
for attempt in range(10):
    fd.send(header + icmp)
    try:
        reply = fd.recv(2000)
    except socket.timeout:
        continue
    if reply[9] == 1 and reply[20] == 0 and reply[12:16] == dst:
        open(sys.argv[2], "w").write("echo reply from %s\n" % sys.argv[1])
        sys.exit(0)
sys.exit(1)
"#;

#[test]
fn a_script_pings_through_the_socket_pair_and_its_exit_ends_the_session() {
    let (mut lab, pki) = lab("script-tun-ping");
    let program = lab.dir.join("ping.py");
    fs::write(&program, PING_SCRIPT).unwrap();
    let result = lab.dir.join("ping-result");
    sh(&format!("chmod 777 {}", lab.dir.display()));
    let script = format!(
        "python3 {} {} {}",
        program.display(),
        lab.behind_ip,
        result.display()
    );
    spawn_unprivileged(&mut lab, &pki, &script);
    // The script exits after its reply: the client logs off and exits 1, as openconnect.
    let code = lab.wait_client(SECS(30));
    let log = lab.log("client.log");
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("Client connection terminated"), "{log}");
    let recorded = fs::read_to_string(&result).unwrap_or_default();
    assert_eq!(
        recorded,
        format!("echo reply from {}\n", lab.behind_ip),
        "{log}"
    );
    lab.wait_for_log("ocserv.log", "user disconnected", SECS(10));
}
