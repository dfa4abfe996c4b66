//! Our `ocserv`'s shared DTLS port under attack from the client's own network: garbage,
//! runts, giants, forged and replayed handshakes and records, and a flood from many ports,
//! while Debian's openconnect keeps a DTLS session on the same port.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use ferroconnect_interop::{
    login_args, process_alive, udp_drop_summaries, vm_kib, wait_until, Lab, Pki, UdpDropSummary,
};

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// Records what the client namespace sends to the server's DTLS port (AF_PACKET: there is
/// no tcpdump in the test image).
const CAPTURE_PY: &str = r#"# Records the UDP datagrams the client namespace sends to the server's DTLS port, as
# "source-port hex-payload" lines, until the stop file appears.
import os, socket, struct, sys, time

iface, server, port, out, stop = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind((iface, 0))
s.settimeout(0.1)
dst = socket.inet_aton(server)
seen = []
open(out + ".ready", "w").close()
deadline = time.time() + 60
while not os.path.exists(stop) and time.time() < deadline:
    try:
        frame, addr = s.recvfrom(65535)
    except socket.timeout:
        continue
    if addr[2] != socket.PACKET_OUTGOING or frame[12:14] != b"\x08\x00":
        continue
    ip = frame[14:]
    ihl = (ip[0] & 15) * 4
    frag = struct.unpack("!H", ip[6:8])[0] & 0x3FFF
    if ip[9] != 17 or ip[16:20] != dst or frag:
        continue
    sport, dport, ulen = struct.unpack("!HHH", ip[ihl : ihl + 6])
    if dport == port:
        seen.append("%d %s\n" % (sport, ip[ihl + 8 : ihl + ulen].hex()))
with open(out + ".tmp", "w") as f:
    f.writelines(seen)
os.rename(out + ".tmp", out)
"#;

/// Sends the hostile datagrams of the kinds named in its last argument.
const HOSTILE_PY: &str = r#"# Everything a hostile network can throw at the server's DTLS port from the client's
# address; prints how many datagrams of each kind it sent, as JSON.
import json, os, random, socket, struct, sys, time

server, port, client_ip, captured = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
kinds = sys.argv[5].split(",")
caps = [(int(p), bytes.fromhex(h)) for p, h in (l.split() for l in open(captured))]
client_port = caps[-1][0]
is_hello = lambda d: len(d) > 92 and d[0] == 22 and d[13] == 1
hellos = [d for _, d in caps if is_hello(d)]
records = [d for p, d in caps if not is_hello(d) and p == client_port]
assert hellos and records, "capture holds no ClientHello or no records"
rnd = random.Random(1)
sent = {}
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(64)]
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
n = 0

def pace():
    global n
    n += 1
    if n % 200 == 0:
        time.sleep(0.002)

def send(kind, data, sock=None):
    (sock or rnd.choice(socks)).sendto(data, (server, port))
    sent[kind] = sent.get(kind, 0) + 1
    pace()

def spoof(kind, data, sport):
    # From the legitimate client's own address and port (IP_HDRINCL; the kernel fills in
    # the IP checksum and id, a zero UDP checksum means none).
    udp = struct.pack("!HHHH", sport, port, 8 + len(data), 0) + data
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                      socket.inet_aton(client_ip), socket.inet_aton(server))
    raw.sendto(hdr + udp, (server, 0))
    sent[kind] = sent.get(kind, 0) + 1
    pace()

garbage = lambda lo, hi: rnd.randbytes(rnd.randint(lo, hi))
for kind in kinds:
    if kind == "garbage":
        for _ in range(2000):
            send(kind, garbage(13, 1400))
    elif kind == "tiny":
        for i in range(1000):
            send(kind, b"\x17" * (1 + i % 12))
    elif kind == "huge":
        for _ in range(40):
            send(kind, garbage(65507, 65507))
            time.sleep(0.005)
    elif kind == "wrong_id":
        for _ in range(1000):
            d = bytearray(rnd.choice(hellos))
            d[60:92] = rnd.randbytes(32)
            send(kind, bytes(d))
    elif kind == "zero_random":
        for _ in range(1000):
            d = bytearray(rnd.choice(hellos))
            d[27:59] = bytes(32)
            send(kind, bytes(d))
    elif kind == "replay_other_port":
        for _ in range(10):
            for d in records:
                send(kind, d)
    elif kind == "replay_same_port":
        for _ in range(10):
            for d in records:
                spoof(kind, d, client_port)
    elif kind == "spoof_flood":
        for i in range(5000):
            spoof(kind, records[i % len(records)], client_port)
    elif kind == "hello_other_port":
        for d in hellos:
            send(kind, d)
    elif kind == "hello_same_port":
        for d in hellos:
            spoof(kind, d, client_port)
    elif kind == "flood":
        many = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(500)]
        for i in range(20000):
            send(kind, garbage(13, 300), many[i % len(many)])
    else:
        raise SystemExit("unknown kind " + kind)
print(json.dumps({"sent": sent, "client_port": client_port, "captured": len(caps),
                  "hellos": len(hellos), "records": len(records)}))
"#;

/// What a hostile network sends in the main test, in this order.
const KINDS: &str = "garbage,tiny,huge,wrong_id,zero_random,replay_other_port,replay_same_port,\
                     spoof_flood,flood";

/// Kinds the dispatcher hands to the tunnel or its full queue, not counted as dropped by it:
/// they come from the tunnel's address (the DTLS layer drops the replays), or name its id.
const DELIVERED_KINDS: &[&str] = &[
    "replay_same_port",
    "spoof_flood",
    "hello_same_port",
    "hello_other_port",
];

/// The dispatcher's summary lines in `log`, added up, and how many there were.
fn summaries(log: &str) -> (UdpDropSummary, usize) {
    let lines = udp_drop_summaries(log);
    let mut total = UdpDropSummary::default();
    for line in &lines {
        total += *line;
    }
    (total, lines.len())
}

/// `Udp:` counters of the server namespace: datagrams the kernel dropped before the
/// server could read them (receive buffer full).
fn server_udp_rcvbuf_errors(lab: &Lab) -> u64 {
    let out = lab.in_server("cat /proc/net/snmp");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        panic!("no Udp lines in /proc/net/snmp:\n{text}");
    };
    let at = names
        .split_whitespace()
        .position(|n| n == "RcvbufErrors")
        .unwrap();
    values.split_whitespace().nth(at).unwrap().parse().unwrap()
}

#[test]
fn hostile_datagrams_leave_a_dtls_session_alone() {
    attack("hostile-udp", KINDS);
}

// Known bug: the registry moves a tunnel to whatever address sends a ClientHello with its
// id, and the tunnel drops its established channel for the new handshake, so one replayed
// (or spoofed) ClientHello cuts the client's DTLS until its DPD notices (90 s here).

#[test]

fn replayed_client_hello_from_another_port_leaves_dtls_alone() {
    attack("hostile-hello-port", "hello_other_port");
}

#[test]

fn replayed_client_hello_from_its_own_port_leaves_dtls_alone() {
    attack("hostile-hello-same", "hello_same_port");
}

/// Connects Debian's openconnect over DTLS, has `hostile.py` send `kinds` from the client
/// namespace while the client pings, and checks the server and the session survived it
/// and the dispatcher's summary lines counted the drops.
fn attack(test: &str, kinds: &str) {
    let mut lab = Lab::new(test);
    lab.use_real_client();
    let pki = Pki::create(&lab.dir, &lab.server_ip);
    lab.start_our_server(&pki, &[("alice", "secret")], "udp-port = 443\n");
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    let dir = lab.dir.clone();
    let (capture_py, hostile_py) = (dir.join("capture.py"), dir.join("hostile.py"));
    std::fs::write(&capture_py, CAPTURE_PY).unwrap();
    std::fs::write(&hostile_py, HOSTILE_PY).unwrap();
    let (captured, stop) = (dir.join("captured"), dir.join("capture.stop"));

    // Capture the legitimate client's datagrams from its first ClientHello on.
    let mut capture = Command::new("ip")
        .args(["netns", "exec", &lab.client_ns, "python3"])
        .arg(&capture_py)
        .args([&format!("{}b", lab.name), &lab.server_ip, "443"])
        .args([&captured, &stop])
        .spawn()
        .expect("python3");
    let ready = dir.join("captured.ready");
    assert!(
        wait_until(SECS(10), || ready.exists().then_some(())).is_some(),
        "capture did not start"
    );
    lab.spawn_client(&login_args(&ca, &[&url]), "secret\n");
    lab.wait_for_log("ocserv.log", "DTLS established", SECS(20));
    lab.wait_for_log("client.log", "Established DTLS connection", SECS(10));
    assert!(lab.ping_behind(SECS(10)), "{}", lab.log("client.log"));
    lab.assert_pings_over_udp(5);
    std::fs::write(&stop, "").unwrap();
    assert!(
        wait_until(SECS(5), || capture.try_wait().unwrap()).is_some_and(|s| s.success()),
        "capture failed"
    );

    let pid = lab.server_pid();
    let rss_before = vm_kib(pid, "VmRSS");
    let rcvbuf_before = server_udp_rcvbuf_errors(&lab);
    let (_, lines_before) = summaries(&lab.log("ocserv.log"));
    // The legitimate client keeps pinging through it all.
    let pinging = lab.start_pinging("0.1");
    let started = Instant::now();
    let out = lab.in_client(&format!(
        "python3 {} {} 443 {} {} {kinds}",
        hostile_py.display(),
        lab.server_ip,
        lab.client_ip,
        captured.display()
    ));
    let flood_time = started.elapsed();
    assert!(
        out.status.success(),
        "hostile.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("hostile.py ({flood_time:.1?}): {report}");
    let sent: HashMap<String, u64> = parse_sent(&report);
    let total: u64 = sent.values().sum();
    let expected_drops: u64 = sent
        .iter()
        .filter(|(k, _)| !DELIVERED_KINDS.contains(&k.as_str()))
        .map(|(_, n)| n)
        .sum();
    let (pings, replies) = pinging.stop();
    println!("pings during the attack: {replies}/{pings} answered");

    // The next summary line covers the end of the attack.
    let log_after = wait_until(SECS(12), || {
        let log = lab.log("ocserv.log");
        let (sum, lines) = summaries(&log);
        let covered = expected_drops == 0 || lines > lines_before && sum.dropped >= expected_drops;
        covered.then_some(log)
    })
    .unwrap_or_else(|| lab.log("ocserv.log"));
    let (reported, lines) = summaries(&log_after);
    let rcvbuf_lost = server_udp_rcvbuf_errors(&lab) - rcvbuf_before;
    let (rss_after, peak) = (vm_kib(pid, "VmRSS"), vm_kib(pid, "VmHWM"));
    println!(
        "sent {total} hostile datagrams ({expected_drops} should be dropped by the dispatcher); \
         {lines} summary lines report {} dropped (unmatched {}, too short {}, oversized {}, \
         queue full {}; {} delivered); kernel receive-buffer drops {rcvbuf_lost}",
        reported.dropped,
        reported.unmatched,
        reported.too_short,
        reported.oversized,
        reported.queue_full,
        reported.delivered
    );
    println!(
        "server RSS {} KiB before, {} KiB after, peak {} KiB",
        rss_before, rss_after, peak
    );

    assert!(
        process_alive(pid),
        "the server died:\n{}",
        lab.log("ocserv.log")
    );
    assert!(
        reported.dropped * 2 >= expected_drops,
        "only {} drops reported of {expected_drops}:\n{log_after}",
        reported.dropped
    );
    assert!(
        reported.dropped <= total + 1000,
        "more drops reported ({}) than datagrams sent ({total})",
        reported.dropped
    );
    assert!(
        peak.saturating_sub(rss_before) < 32 * 1024,
        "server RSS grew from {rss_before} KiB to a peak of {peak} KiB"
    );
    // The session is the one from before the attack, and it still runs over DTLS.
    lab.assert_pings_over_udp(20);
    let log = lab.log("ocserv.log");
    assert_eq!(log.matches("tunnel up").count(), 1, "{log}");
    assert_eq!(log.matches("DTLS established").count(), 1, "{log}");
    assert!(process_alive(pid), "the server died:\n{log}");
}

/// The `"sent"` object of hostile.py's JSON report (flat: kind to count).
fn parse_sent(report: &str) -> HashMap<String, u64> {
    let (_, rest) = report.split_once("\"sent\": {").expect("sent in report");
    let (body, _) = rest.split_once('}').unwrap();
    body.split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once(':')?;
            Some((
                k.trim().trim_matches('"').to_string(),
                v.trim().parse().ok()?,
            ))
        })
        .collect()
}
