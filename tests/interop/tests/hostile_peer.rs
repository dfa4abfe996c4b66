//! Our `ocserv` under attack from a hostile peer on the client's network (slowloris,
//! oversized and smuggled requests, garbage inside a tunnel, a connection flood, garbage
//! datagrams), while Debian's openconnect keeps a DTLS session up and pings through it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferroconnect_interop::{
    authenticate_values, bin, login_args, poll_until, process_alive, vm_kib, wait_until, Lab,
    UdpFates,
};
use serde_json::{json, Value};

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// attack.py's bad requests and the status each must be answered with before the close.
const BAD_REQUESTS: [(&str, &str); 8] = [
    ("oversized_header", "HTTP/1.1 431"),
    ("oversized_webvpn_cookie", "HTTP/1.1 400"),
    ("oversized_context_cookie", "HTTP/1.1 400"),
    ("long_url", "HTTP/1.1 414"),
    ("cl_and_te", "HTTP/1.1 400"),
    ("two_content_lengths", "HTTP/1.1 400"),
    ("obs_fold", "HTTP/1.1 400"),
    ("pipelined", "HTTP/1.1 400"),
];

/// The attacker: every attack against the server's TCP port 443, one JSON report on stdout
/// (the datagrams for UDP port 443 come from [`UDP_GARBAGE_PY`], at the same time).
/// Arguments: server address, webvpn cookie of a logged-in user (mallory).
const ATTACK_PY: &str = r#"# A hostile peer: attacks the server's port 443 and prints what it saw, as JSON.
import errno, json, random, selectors, socket, ssl, struct, sys, threading, time

SERVER, PORT, COOKIE = sys.argv[1], 443, sys.argv[2]
SECURITY = ["strict-transport-security", "x-frame-options", "x-content-type-options",
            "content-security-policy", "referrer-policy", "cache-control"]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
rnd = random.Random(7)  # cstp_garbage's; udp_garbage has its own
INIT_XML = ('<?xml version="1.0" encoding="UTF-8"?><config-auth client="vpn" type="init">'
            '<version who="vpn">v9.01</version></config-auth>')

def tls(timeout=10):
    s = socket.create_connection((SERVER, PORT), timeout=timeout)
    return ctx.wrap_socket(s)

def parse_head(data):
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    lines = head.split("\r\n")
    headers = {}
    for l in lines[1:]:
        if ":" in l:
            k, v = l.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return lines[0], headers

def answer(data):
    # What the report says about one HTTP answer.
    if b"\r\n\r\n" not in data:
        return {"status": None, "raw": data[:200].decode("latin-1")}
    status, headers = parse_head(data)
    return {"status": status, "missing_security_headers": [h for h in SECURITY if h not in headers],
            "security_headers": {h: headers[h] for h in SECURITY if h in headers}}

def read_response(s, limit=10):
    # One response: head and Content-Length body.
    s.settimeout(limit)
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(65536)
        if not d:
            return data
        data += d
    _, headers = parse_head(data)
    need = data.index(b"\r\n\r\n") + 4 + int(headers.get("content-length", "0"))
    while len(data) < need:
        d = s.recv(65536)
        if not d:
            break
        data += d
    return data

def until_closed(s, limit):
    # Reads until the server closes: ("eof" | "reset" | "open", seconds, bytes read).
    t0 = time.time()
    data = b""
    while True:
        left = limit - (time.time() - t0)
        if left <= 0:
            return "open", time.time() - t0, data
        s.settimeout(left)
        try:
            d = s.recv(65536)
        except (socket.timeout, TimeoutError):
            continue
        except ssl.SSLEOFError:
            return "eof", time.time() - t0, data
        except (ConnectionResetError, BrokenPipeError):
            return "reset", time.time() - t0, data
        except ssl.SSLError as e:
            return "tls-error:" + str(e), time.time() - t0, data
        if not d:
            return "eof", time.time() - t0, data
        data += d

def exchange(name, payload, expect_close=True):
    # Sends one payload in one write; the first answer, and whether the server then closed.
    r = {"attack": name}
    try:
        s = tls()
        s.sendall(payload)
        data = read_response(s)
        r.update(answer(data))
        if expect_close:
            how, secs, more = until_closed(s, 5)
            r.update(closed=how, close_secs=round(secs, 2), trailing_bytes=len(more))
        else:
            r["body_has_auth_form"] = b"<auth id=" in data and b"config-auth" in data
        s.close()
    except Exception as e:
        r["error"] = repr(e)
    return r

def http_attacks(out):
    host = "Host: %s\r\n" % SERVER
    big = "a" * 20480
    cases = [
        ("oversized_header", "GET / HTTP/1.1\r\n" + host + "X-Big: " + big + "\r\n\r\n"),
        ("oversized_webvpn_cookie", "GET / HTTP/1.1\r\n" + host + "Cookie: webvpn=" + "c" * 5000 + "\r\n\r\n"),
        ("oversized_context_cookie", "GET / HTTP/1.1\r\n" + host + "Cookie: webvpncontext=" + "c" * 5000 + "\r\n\r\n"),
        ("long_url", "GET /" + "u" * 8192 + " HTTP/1.1\r\n" + host + "\r\n"),
        ("cl_and_te", "POST / HTTP/1.1\r\n" + host + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc"),
        ("two_content_lengths", "POST / HTTP/1.1\r\n" + host + "Content-Length: 3\r\nContent-Length: 0\r\n\r\nabc"),
        ("obs_fold", "GET / HTTP/1.1\r\n" + host + "X-Folded: a\r\n b\r\n\r\n"),
        ("pipelined", "GET / HTTP/1.1\r\n" + host + "\r\nGET / HTTP/1.1\r\n" + host + "\r\n"),
    ]
    for name, payload in cases:
        out.append(exchange(name, payload.encode()))
    body = INIT_XML.encode()
    post = ("POST /?a=b HTTP/1.1\r\n" + host + "User-Agent: Open AnyConnect VPN Agent v9.01\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n" % len(body))
    out.append(exchange("post_with_query", post.encode() + body, expect_close=False))

def slowloris_one(out, i):
    r = {"attack": "slowloris", "n": i}
    try:
        s = tls()
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        t0 = time.time()
        trickle = b"X-Slow-Header-%d: %s" % (i, b"z" * 64)
        sent, data, how = 0, b"", "open"
        while time.time() - t0 < 25:
            s.settimeout(2)
            try:
                d = s.recv(65536)
            except (socket.timeout, TimeoutError):
                try:
                    s.sendall(trickle[sent % len(trickle):][:1])
                    sent += 1
                except OSError:
                    pass
                continue
            except ssl.SSLEOFError:
                how = "eof"
                break
            except (ConnectionResetError, BrokenPipeError):
                how = "reset"
                break
            if not d:
                how = "eof"
                break
            data += d
            if "answer_secs" not in r:
                r["answer_secs"] = round(time.time() - t0, 2)
        r.update(answer(data))
        r.update(closed=how, close_secs=round(time.time() - t0, 2), bytes_trickled=sent)
        s.close()
    except Exception as e:
        r["error"] = repr(e)
    out.append(r)

def no_tls_one(out, i):
    # A TCP connection that never starts TLS.
    r = {"attack": "no_tls", "n": i}
    try:
        s = socket.create_connection((SERVER, PORT), timeout=10)
        how, secs, data = until_closed(s, 20)
        r.update(closed=how, close_secs=round(secs, 2), bytes=len(data))
        s.close()
    except Exception as e:
        r["error"] = repr(e)
    out.append(r)

def cstp_garbage(out):
    # Logs in with mallory's cookie, then sends random bytes inside the tunnel.
    r = {"attack": "cstp_garbage"}
    try:
        s = tls()
        req = ("CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nHost: %s\r\n"
               "User-Agent: Open AnyConnect VPN Agent v9.01\r\nCookie: %s\r\n"
               "X-CSTP-Version: 1\r\nX-CSTP-Hostname: mallory\r\nX-CSTP-Address-Type: IPv4\r\n"
               "X-CSTP-Base-MTU: 1500\r\nX-CSTP-MTU: 1400\r\n\r\n" % (SERVER, COOKIE))
        s.sendall(req.encode())
        s.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data:
            d = s.recv(65536)
            if not d:
                break
            data += d
        r["status"] = parse_head(data)[0] if b"\r\n\r\n" in data else None
        t0 = time.time()
        garbage = rnd.randbytes(65536)
        sent = 0
        try:
            for i in range(0, len(garbage), 4096):
                s.sendall(garbage[i:i + 4096])
                sent += 4096
        except (OSError, ssl.SSLError) as e:
            r["send_error"] = repr(e)
        how, _, more = until_closed(s, 10)
        r.update(garbage_sent=sent, closed=how, close_secs=round(time.time() - t0, 2))
        s.close()
    except Exception as e:
        r["error"] = repr(e)
    out.append(r)

def flood(out, total=2000, hold=500, keep=1.0, limit=20):
    # Non-blocking connects as fast as possible, at most `hold` open at once; each is kept
    # `keep` seconds to see whether the server closes it. A connection whose final ACK found
    # the server's accept queue full looks open here until the kernel hands it over.
    sel = selectors.DefaultSelector()
    st = {"tried": 0, "connected": 0, "refused": 0, "connect_timeout": 0, "local_error": 0,
          "closed_by_server": 0, "reset_by_server": 0, "sent_data": 0, "open_after_hold": 0}
    live = {}
    t0 = time.time()
    while (st["tried"] < total or live) and time.time() - t0 < limit:
        while st["tried"] < total and len(live) < hold:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            st["tried"] += 1
            err = s.connect_ex((SERVER, PORT))
            if err not in (0, errno.EINPROGRESS):
                st["refused" if err == errno.ECONNREFUSED else "local_error"] += 1
                s.close()
                continue
            live[s] = ["connecting", time.time()]
            sel.register(s, selectors.EVENT_WRITE)
        now = time.time()
        for key, _ in sel.select(timeout=0.02):
            s = key.fileobj
            state = live[s][0]
            if state == "connecting":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err == 0:
                    st["connected"] += 1
                    live[s] = ["connected", now]
                    sel.modify(s, selectors.EVENT_READ)
                    continue
                st["refused" if err == errno.ECONNREFUSED else
                   "reset_by_server" if err == errno.ECONNRESET else "local_error"] += 1
            else:
                try:
                    d = s.recv(1)
                    st["closed_by_server" if not d else "sent_data"] += 1
                except ConnectionResetError:
                    st["reset_by_server"] += 1
                except OSError:
                    st["local_error"] += 1
            sel.unregister(s)
            del live[s]
            s.close()
        for s, (state, since) in list(live.items()):
            if state == "connecting" and now - since > 3:
                st["connect_timeout"] += 1
            elif state == "connected" and now - since > keep:
                st["open_after_hold"] += 1
            else:
                continue
            sel.unregister(s)
            del live[s]
            s.close()
    st["left_at_limit"] = len(live)
    for s in live:
        s.close()
    st["secs"] = round(time.time() - t0, 2)
    out.append(dict(attack="flood", **st))

def run(threads):
    for t in threads:
        t.start()
    for t in threads:
        t.join()

results = []
phases = {}
t0 = time.time()
# Phase 1: slowloris over TLS, bad requests, garbage in a tunnel. At most
# 32 connections per address may be logging in at once, so the 20 connections that never
# start TLS come in phase 2, and the flood (which gets this address banned) last.
run([threading.Thread(target=slowloris_one, args=(results, i)) for i in range(20)]
    + [threading.Thread(target=f, args=(results,)) for f in (http_attacks, cstp_garbage)])
phases["tls_and_http"] = round(time.time() - t0, 2)
t1 = time.time()
run([threading.Thread(target=no_tls_one, args=(results, i)) for i in range(20)])
phases["no_tls"] = round(time.time() - t1, 2)
t2 = time.time()
flood(results)
phases["flood"] = round(time.time() - t2, 2)
print(json.dumps({"results": results, "phases": phases}))
"#;

/// Garbage datagrams for the server's UDP port 443, from 16 ports: each line on stdin asks
/// for a burst of that many, each burst is answered with one JSON line of what was sent so
/// far (`done` once all are out).
const UDP_GARBAGE_PY: &str = r#"# Garbage for the server's DTLS port, in bursts asked for on stdin.
import json, random, socket, struct, sys

server, port = sys.argv[1], int(sys.argv[2])
rnd = random.Random(13)
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(16)]

def datagrams():
    for _ in range(1000):
        yield "garbage", rnd.randbytes(rnd.randint(1, 1500))
    for _ in range(200):
        payload = rnd.randbytes(rnd.randint(16, 200))
        yield "dtls_like", struct.pack("!BHH6sH", 0x17, 0xFEFD, rnd.getrandbits(16),
                                       rnd.randbytes(6), len(payload)) + payload

left = enumerate(datagrams())
sent = {"garbage": 0, "dtls_like": 0, "shorter_than_13": 0}
for line in sys.stdin:
    done = False
    for _ in range(int(line)):
        item = next(left, None)
        if item is None:
            done = True
            break
        i, (kind, d) = item
        socks[i % 16].sendto(d, (server, port))
        sent[kind] += 1
        sent["shorter_than_13"] += len(d) < 13
    done = done or sent["garbage"] + sent["dtls_like"] == 1200
    print(json.dumps({"sent": sent, "done": done}), flush=True)
    if done:
        break
"#;

/// Where the lab servers of this suite serve `/metrics` (inside the server namespace).
const METRICS: &str = ferroconnect_interop::HOSTILE_METRICS;

/// Datagrams in flight at once from [`UDP_GARBAGE_PY`]: few enough for the server socket's
/// default receive buffer (208 KiB, 1500-byte datagrams), so the kernel drops none.
const UDP_BURST: u64 = 25;

/// What [`send_udp_garbage`] sent, and the server counters after it.
#[derive(Debug)]
struct UdpGarbage {
    /// `{"garbage": N, "dtls_like": N, "shorter_than_13": N}`.
    sent: Value,
    bursts: u32,
    /// A burst the server had not counted in full after 10 s: (sent so far, counted).
    stalled: Option<(u64, UdpFates)>,
}

impl UdpGarbage {
    fn total(&self) -> u64 {
        self.sent["garbage"].as_u64().unwrap() + self.sent["dtls_like"].as_u64().unwrap()
    }
}

/// Runs [`UDP_GARBAGE_PY`] in namespace `ns`, a burst of [`UDP_BURST`] at a time: the next
/// burst goes out once the server's counters show every datagram of the last one dropped.
/// The server's counting is what the test checks, so the kernel must not drop any on the
/// way (a burst only ever meets an empty receive buffer), however busy the machine is.
fn send_udp_garbage(lab: &Lab, ns: &str, before: UdpFates) -> UdpGarbage {
    let script = lab.dir.join("udp_garbage.py");
    std::fs::write(&script, UDP_GARBAGE_PY).unwrap();
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-u"])
        .arg(&script)
        .args([lab.server_ip.as_str(), "443"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut input = child.stdin.take().unwrap();
    let mut output = BufReader::new(child.stdout.take().unwrap());
    let mut garbage = UdpGarbage {
        sent: Value::Null,
        bursts: 0,
        stalled: None,
    };
    loop {
        writeln!(input, "{UDP_BURST}").unwrap();
        let mut line = String::new();
        output.read_line(&mut line).unwrap();
        let report: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("udp_garbage.py said {line:?} ({e})"));
        garbage.sent = report["sent"].clone();
        garbage.bursts += 1;
        let total = garbage.total();
        let counted = poll_until(SECS(10), Duration::from_millis(20), || {
            let now = lab.udp_fates(METRICS).since(&before);
            (now.dropped() >= total).then_some(now)
        });
        if counted.is_none() {
            garbage.stalled = Some((total, lab.udp_fates(METRICS).since(&before)));
            break;
        }
        if report["done"] == true {
            break;
        }
    }
    drop(input);
    let _ = child.kill();
    let _ = child.wait();
    garbage
}

/// The `webvpn=...` part of a cookie as `--authenticate` prints it.
fn webvpn_cookie(printed: &str) -> String {
    printed
        .split(';')
        .map(str::trim)
        .find(|p| p.starts_with("webvpn="))
        .map(str::to_string)
        .unwrap_or_else(|| format!("webvpn={printed}"))
}

/// The results of attack `name`.
fn of<'a>(report: &'a Value, name: &str) -> Vec<&'a Value> {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["attack"] == name)
        .collect()
}

fn status(r: &Value) -> &str {
    r["status"].as_str().unwrap_or("(none)")
}

fn secs(r: &Value, key: &str) -> f64 {
    r[key].as_f64().unwrap_or(f64::NAN)
}

/// A `TcpExt:` counter of the server namespace (/proc/net/netstat is per namespace).
fn tcp_ext(lab: &Lab, name: &str) -> u64 {
    let out = lab.in_server("cat /proc/net/netstat");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut ext = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (ext.next(), ext.next()) else {
        panic!("no TcpExt lines in /proc/net/netstat:\n{text}");
    };
    let at = names.split_whitespace().position(|n| n == name).unwrap();
    values.split_whitespace().nth(at).unwrap().parse().unwrap()
}

#[test]
fn hostile_peers_do_not_hurt_a_connected_client() {
    let test_started = Instant::now();
    let (mut lab, pki) = Lab::hostile("hostile-peer", &[("alice", "secret"), ("mallory", "evil")]);
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    let attacker = lab.add_client_ns();

    // Alice, with Debian's openconnect, over DTLS.
    lab.spawn_client(&login_args(&ca, &[&url]), "secret\n");
    lab.wait_for_log("ocserv.log", "DTLS established", SECS(20));
    assert!(lab.ping_behind(SECS(10)), "{}", lab.log("client.log"));
    lab.assert_pings_over_udp(3);

    // Mallory's cookie, from our client in the attacker's namespace.
    let ours = bin("openconnect").display().to_string();
    let out = lab.run_in(
        &attacker,
        &[
            &ours,
            "--authenticate",
            "-u",
            "mallory",
            "--passwd-on-stdin",
            "--non-inter",
            "--cafile",
            &ca,
            &url,
        ],
        "evil\n",
        SECS(30),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "mallory's login failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = authenticate_values(&String::from_utf8_lossy(&out.stdout))("COOKIE");
    let cookie = webvpn_cookie(&printed);

    let pid = lab.server_pid();
    let (rss_before, peak_before) = (vm_kib(pid, "VmRSS"), vm_kib(pid, "VmHWM"));
    let udp_before = lab.udp_fates(METRICS);
    let kernel_udp_errors_before = lab.server_udp_snmp("InErrors");
    let overflows_before = tcp_ext(&lab, "ListenOverflows");
    // Alice pings through it all.
    let pinging = lab.start_pinging("0.2");

    let script = lab.dir.join("attack.py");
    std::fs::write(&script, ATTACK_PY).unwrap();
    let attack_started = Instant::now();
    // The garbage datagrams go out while attack.py runs.
    let (out, garbage) = std::thread::scope(|scope| {
        let attack = scope.spawn(|| {
            lab.run_in(
                &attacker,
                &[
                    "/usr/bin/python3",
                    &script.display().to_string(),
                    &lab.server_ip,
                    &cookie,
                ],
                "",
                SECS(80),
            )
        });
        let garbage = send_udp_garbage(&lab, &attacker, udp_before);
        (attack.join().expect("attack.py thread"), garbage)
    });
    let attack_time = attack_started.elapsed();
    assert!(
        out.status.success(),
        "attack.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "attack.py printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let (pings, replies) = pinging.stop();

    // The server's own counters, after the attack.
    let udp = garbage.sent.clone();
    let udp_sent = garbage.total();
    let udp_dropped = lab.udp_fates(METRICS).since(&udp_before);
    let kernel_udp_errors = lab.server_udp_snmp("InErrors") - kernel_udp_errors_before;
    // Connections of the attacker the server closed unread (banned, or 32 logging in). The
    // flood overflows the accept queue: the kernel hands the server some connections only
    // once the attacker closes them, so wait for those too.
    let attacker_ip = format!("{}3:", &lab.server_ip[..lab.server_ip.len() - 1]);
    let refused_in = |log: &str| {
        log.lines()
            .filter(|l| l.contains(&attacker_ip))
            .filter(|l| l.contains("address is banned") || l.contains("already logging in"))
            .count()
    };
    let flood_refused = wait_until(SECS(10), || {
        let n = refused_in(&lab.log("ocserv.log"));
        (n >= 2000 - 32).then_some(n)
    })
    .unwrap_or_else(|| refused_in(&lab.log("ocserv.log")));
    let listen_overflows = tcp_ext(&lab, "ListenOverflows") - overflows_before;
    // Send-Q of a listening socket is its accept queue's size.
    let listener = lab.in_server(&format!("ss -Hltn src {}:443", lab.server_ip));
    let listen_backlog: Option<u64> = String::from_utf8_lossy(&listener.stdout)
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.parse().ok());
    let (rss_after, peak_after) = (vm_kib(pid, "VmRSS"), vm_kib(pid, "VmHWM"));

    // Right after: the same session still answers, over DTLS, and a new login from Alice's
    // address still works (only the attacker's address is banned).
    lab.assert_pings_over_udp(5);
    let users = lab.our_occtl("-j show users");
    let users = String::from_utf8_lossy(&users.stdout).into_owned();
    let fresh_login = lab.run_client(
        &login_args(&ca, &["--authenticate", &url]),
        "secret\n",
        SECS(30),
    );

    let summary = |name: &str| -> Value {
        let rs = of(&report, name);
        let mut statuses = std::collections::BTreeMap::<String, u64>::new();
        let mut closed = std::collections::BTreeMap::<String, u64>::new();
        for r in &rs {
            *statuses.entry(status(r).to_string()).or_default() += 1;
            *closed
                .entry(r["closed"].as_str().unwrap_or("-").to_string())
                .or_default() += 1;
        }
        let times: Vec<f64> = rs
            .iter()
            .map(|r| secs(r, "close_secs"))
            .filter(|t| !t.is_nan())
            .collect();
        json!({
            "tried": rs.len(),
            "statuses": statuses,
            "closed": closed,
            "close_secs_min": times.iter().copied().fold(f64::INFINITY, f64::min),
            "close_secs_max": times.iter().copied().fold(0.0, f64::max),
        })
    };
    let full = json!({
        "attacks": {
            "slowloris_tls": summary("slowloris"),
            "no_tls": summary("no_tls"),
            "http": BAD_REQUESTS.iter().map(|(n, _)| *n).chain(["post_with_query"])
                .flat_map(|n| of(&report, n))
                .map(|r| json!({"attack": r["attack"], "status": status(r),
                                "closed": r["closed"], "close_secs": r["close_secs"]}))
                .collect::<Vec<_>>(),
            "cstp_garbage": of(&report, "cstp_garbage")[0],
            "flood": of(&report, "flood")[0],
            "flood_refused_in_server_log": flood_refused,
            "listen_queue_overflows": listen_overflows,
            "listen_backlog": listen_backlog,
        },
        "udp": {
            "sent": udp,
            "bursts": garbage.bursts,
            "stalled": garbage.stalled.map(|(n, f)| format!("{n} sent, {f:?} counted")),
            "kernel_udp_errors": kernel_udp_errors,
            "dropped": udp_dropped.dropped(),
            "unmatched": udp_dropped.unmatched,
            "too_short": udp_dropped.too_short,
            "oversized": udp_dropped.oversized,
            "queue_full": udp_dropped.queue_full,
            "delivered": udp_dropped.delivered,
        },
        "phases_secs": report["phases"],
        "attack_secs": attack_time.as_secs_f64(),
        "server_kib": {"rss_before": rss_before, "rss_after": rss_after,
                       "peak_before": peak_before, "peak_after": peak_after},
        "ping": {"sent": pings, "received": replies},
    });
    let pretty = serde_json::to_string_pretty(&full).unwrap();
    std::fs::write(lab.dir.join("hostile_peer_report.json"), &pretty).unwrap();
    std::fs::write(lab.dir.join("attack_raw.json"), &out.stdout).unwrap();
    println!(
        "hostile peer report ({:.1?} in all):\n{pretty}",
        test_started.elapsed()
    );

    let raw = || String::from_utf8_lossy(&out.stdout).into_owned();
    let server_log = lab.log("ocserv.log");
    assert!(process_alive(pid), "the server died:\n{server_log}");

    // 1. Slowloris: 408 within 10-14 s of the first byte; no TLS at all: closed at 10 s.
    let slow = of(&report, "slowloris");
    assert_eq!(slow.len(), 20, "{}", raw());
    for r in &slow {
        assert!(status(r).starts_with("HTTP/1.1 408"), "slowloris: {r}");
        assert!(
            ["eof", "reset"].contains(&r["closed"].as_str().unwrap_or("")),
            "{r}"
        );
        let t = secs(r, "close_secs");
        assert!(
            (9.0..=14.0).contains(&t),
            "slowloris closed after {t} s: {r}"
        );
    }
    let no_tls = of(&report, "no_tls");
    assert_eq!(no_tls.len(), 20, "{}", raw());
    for r in &no_tls {
        assert!(
            ["eof", "reset"].contains(&r["closed"].as_str().unwrap_or("")),
            "{r}"
        );
        let t = secs(r, "close_secs");
        assert!(
            (9.0..=12.0).contains(&t),
            "no-TLS connection closed after {t} s: {r}"
        );
    }
    assert!(
        server_log.contains("no TLS handshake within 10 s"),
        "{server_log}"
    );

    // 2 and 3. Bad requests: their status, then closed; the query string is ignored.
    let mut answers = slow.clone();
    for (name, want) in BAD_REQUESTS {
        let r = of(&report, name)[0];
        assert!(status(r).starts_with(want), "{name}: wanted {want}: {r}");
        assert!(
            ["eof", "reset"].contains(&r["closed"].as_str().unwrap_or("")),
            "{name} not closed: {r}"
        );
        answers.push(r);
    }
    let post = of(&report, "post_with_query")[0];
    assert!(status(post).starts_with("HTTP/1.1 200"), "{post}");
    assert_eq!(post["body_has_auth_form"], true, "{post}");
    answers.push(post);
    // Security headers on every answer collected (the tunnel grant is not among them).
    for r in answers {
        assert_eq!(r["missing_security_headers"], json!([]), "{r}");
        let got = &r["security_headers"];
        assert!(
            got["strict-transport-security"]
                .as_str()
                .is_some_and(|v| v.starts_with("max-age=")),
            "{r}"
        );
        assert_eq!(got["x-frame-options"], "DENY", "{r}");
        assert_eq!(got["x-content-type-options"], "nosniff", "{r}");
        assert_eq!(got["content-security-policy"], "default-src 'none'", "{r}");
        assert!(got["referrer-policy"].is_string(), "{r}");
        assert_eq!(got["cache-control"], "no-store", "{r}");
    }

    // 4. Random bytes inside a tunnel end it within a few seconds.
    let cstp = of(&report, "cstp_garbage")[0];
    assert!(status(cstp).starts_with("HTTP/1.1 200 CONNECTED"), "{cstp}");
    assert!(
        ["eof", "reset"].contains(&cstp["closed"].as_str().unwrap_or("")),
        "{cstp}"
    );
    assert!(secs(cstp, "close_secs") < 5.0, "{cstp}");
    assert!(server_log.contains("protocol error"), "{server_log}");

    // 5. The flood: the server let at most 32 of its connections start logging in (the
    // address gets banned on the way: a ban point per connection) and closed the rest
    // unread.
    let flood = of(&report, "flood")[0];
    let n = |k: &str| flood[k].as_u64().unwrap();
    assert_eq!(n("tried"), 2000, "{flood}");
    // Connections the kernel had not handed to the server yet look open to the attacker.
    assert!(
        n("closed_by_server") + n("reset_by_server") + n("refused") >= 1000,
        "{flood}"
    );
    assert!(server_log.contains("address is banned"), "{server_log}");
    assert!(
        flood_refused >= 2000 - 32,
        "the server refused only {flood_refused} of the flood's 2000 connections"
    );

    // 6. Every datagram was dropped and counted, exactly, each under its reason.
    let short = udp["shorter_than_13"].as_u64().unwrap();
    assert_eq!(udp_sent, 1200, "{garbage:?}");
    assert_eq!(
        udp_dropped,
        UdpFates {
            delivered: udp_dropped.delivered,
            too_short: short,
            oversized: 0,
            unmatched: udp_sent - short,
            queue_full: 0,
        },
        "{udp_sent} datagrams sent ({short} shorter than 13 bytes), the server counted \
         {udp_dropped:?} (the kernel's UDP errors: {kernel_udp_errors}):\n{server_log}"
    );
    assert_eq!(udp_dropped.dropped(), udp_sent);

    // And the legitimate client did not notice.
    assert!(
        peak_after.saturating_sub(peak_before) < 64 * 1024,
        "server peak RSS grew from {peak_before} KiB to {peak_after} KiB"
    );
    assert!(
        pings >= 20 && replies * 100 >= pings * 95,
        "{replies}/{pings} pings answered during the attack"
    );
    assert!(users.contains("\"alice\""), "alice gone: {users}");
    assert_eq!(
        server_log.matches("DTLS established").count(),
        1,
        "alice's session was disturbed:\n{server_log}"
    );
    assert_eq!(
        fresh_login.status.code(),
        Some(0),
        "a new login from alice's address failed: {}",
        String::from_utf8_lossy(&fresh_login.stderr)
    );
    assert!(process_alive(pid), "the server died:\n{server_log}");
}

/// Empty TCP connections to the TLS port: closed at once, aborted (RST), or half-closed
/// without a byte (then read until the server closes); one JSON report.
const EMPTY_TCP_PY: &str = r#"# Empty connections to the server's TLS port.
import json, socket, struct, sys, time

server = sys.argv[1]
out = {"closed_at_once": 0, "aborted": 0, "half_closed": []}
for _ in range(5):
    s = socket.create_connection((server, 443), timeout=5)
    s.close()
    out["closed_at_once"] += 1
for _ in range(5):
    s = socket.create_connection((server, 443), timeout=5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    out["aborted"] += 1
for _ in range(5):
    s = socket.create_connection((server, 443), timeout=5)
    s.sendall(b"")
    s.shutdown(socket.SHUT_WR)
    t0 = time.time()
    s.settimeout(20)
    try:
        how = "eof" if not s.recv(65536) else "data"
    except ConnectionResetError:
        how = "reset"
    except socket.timeout:
        how = "open"
    out["half_closed"].append({"closed": how, "secs": round(time.time() - t0, 2)})
    s.close()
print(json.dumps(out))
"#;

/// Connections to the TLS port that carry nothing (closed at once, aborted, or half-closed
/// after 0 bytes) before anyone logs in: the server closes the half-closed ones without
/// answering, stays up, and the next client logs in and gets DTLS.
#[test]
fn empty_tcp_connections_leave_the_server_serving() {
    let (mut lab, pki) = Lab::hostile("hostile-empty-tcp", &[("alice", "secret")]);
    let pid = lab.server_pid();
    let script = lab.dir.join("empty_tcp.py");
    std::fs::write(&script, EMPTY_TCP_PY).unwrap();
    let out = lab.run_in(
        &lab.client_ns,
        &["python3", &script.display().to_string(), &lab.server_ip],
        "",
        SECS(90),
    );
    assert!(
        out.status.success(),
        "empty_tcp.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    println!("empty TCP connections: {report}");
    assert_eq!(report["closed_at_once"], 5, "{report}");
    assert_eq!(report["aborted"], 5, "{report}");
    let half = report["half_closed"].as_array().unwrap();
    assert_eq!(half.len(), 5, "{report}");
    for r in half {
        // The server closes without a byte (nothing to answer), at once: the client has
        // said it will send nothing.
        assert!(
            ["eof", "reset"].contains(&r["closed"].as_str().unwrap_or("")),
            "{r}"
        );
        assert!(secs(r, "secs") < 5.0, "half-closed connection held: {r}");
    }
    assert!(
        process_alive(pid),
        "the server died:\n{}",
        lab.log("ocserv.log")
    );

    // The next client, from the same address, logs in and gets DTLS.
    let ca = pki.ca_pem.display().to_string();
    let url = format!("https://{}/", lab.server_ip);
    lab.spawn_client(&login_args(&ca, &[&url]), "secret\n");
    lab.wait_for_log("ocserv.log", "DTLS established", SECS(20));
    lab.wait_for_log("client.log", "Established DTLS connection", SECS(10));
    assert!(lab.ping_behind(SECS(10)), "{}", lab.log("client.log"));
    lab.assert_pings_over_udp(5);
    let udp = lab.udp_fates(METRICS);
    assert!(udp.delivered >= 5, "DTLS carried nothing: {udp:?}");
    let log = lab.log("ocserv.log");
    assert!(!log.contains("panicked"), "{log}");
    assert!(process_alive(pid), "the server died:\n{log}");
}
