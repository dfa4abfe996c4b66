//! Our client against a server that answers with broken or hostile data: every case must end
//! in a one-line specific error and exit status 1, never a panic or a hang.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ferroconnect_interop::{bin, Pki};
use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod};

/// Serves `replies` (one per request, in order) on a TLS port; returns the port.
fn fake_server(pki: &Pki, replies: Vec<Vec<u8>>) -> u16 {
    let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    acceptor
        .set_certificate_chain_file(&pki.server_cert)
        .unwrap();
    acceptor
        .set_private_key_file(&pki.server_key, SslFiletype::PEM)
        .unwrap();
    let acceptor = acceptor.build();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        let mut replies = replies.into_iter().peekable();
        // The client may use a fresh connection per phase (auth, then CONNECT).
        for stream in listener.incoming().take(4) {
            let Ok(stream) = stream else { return };
            let Ok(mut tls) = acceptor.accept(stream) else {
                continue;
            };
            loop {
                if read_request(&mut tls).is_none() {
                    break;
                }
                let Some(reply) = replies.next() else { return };
                if tls.write_all(&reply).is_err() {
                    break;
                }
                // An empty entry closes this connection after the reply before it.
                if replies.peek().is_some_and(Vec::is_empty) {
                    replies.next();
                    let _ = tls.shutdown();
                    break;
                }
            }
        }
    });
    port
}

/// Reads one request head and its Content-Length body.
fn read_request(stream: &mut impl Read) -> Option<()> {
    let mut data = Vec::new();
    let mut byte = [0u8; 1];
    while !data.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        data.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&data).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).ok()
}

fn run(pki: &Pki, port: u16, extra: &[&str]) -> (Option<i32>, String) {
    let url = format!("https://127.0.0.1:{port}/");
    let mut child = Command::new(bin("openconnect"))
        .args(["--non-inter", "--cafile"])
        .arg(&pki.ca_pem)
        .args(["-u", "alice", "--passwd-on-stdin", "-s", "/bin/true"])
        .args(extra)
        .arg(&url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"secret\n").unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("client hung");
        }
        thread::sleep(Duration::from_millis(50));
    }
    let out: Output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("panicked"), "client panicked:\n{text}");
    (out.status.code(), text)
}

fn http(status: &str, headers: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn pki() -> (Pki, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "ferroconnect-hostile-{}-{:?}",
        std::process::id(),
        thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    (Pki::create(&dir, "127.0.0.1"), dir)
}

#[test]
fn malformed_auth_replies_fail_cleanly() {
    let (pki, dir) = pki();
    let mut oversized = b"HTTP/1.1 200 OK\r\nX-Junk: ".to_vec();
    oversized.extend(std::iter::repeat_n(b'a', 40_000));
    oversized.extend_from_slice(b"\r\n\r\n");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (oversized, "larger than 16384 bytes"),
        (b"SSH-2.0-OpenSSH\r\n\r\n".to_vec(), "malformed HTTP"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n".to_vec(),
            "body is larger than",
        ),
        (
            http("200 OK", "", "<html><body>Login</body></html>"),
            "not AnyConnect XML",
        ),
        (
            http("200 OK", "", "<config-auth><auth id=\"main\"><form><input"),
            "malformed",
        ),
        (http("500 Internal Server Error", "", ""), "HTTP 500"),
        (
            http("302 Found", "Location: https://elsewhere.example/\r\n", ""),
            "failed to resolve host \"elsewhere.example\"",
        ),
        (
            http("302 Found", "Location: http://elsewhere.example/\r\n", ""),
            "redirected to a URL this client does not follow",
        ),
    ];
    for (reply, expect) in cases {
        let port = fake_server(&pki, vec![reply]);
        let (code, text) = run(&pki, port, &["--authenticate"]);
        assert_eq!(code, Some(1), "{expect}: {text}");
        assert!(text.contains(expect), "expected {expect:?} in:\n{text}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn broken_connect_replies_fail_cleanly() {
    let (pki, dir) = pki();
    let cookie = ["-C", "webvpn=COOKIE"];
    let no_mtu = http("200 CONNECTED", "X-CSTP-Address: 198.18.200.2\r\n", "");
    let port = fake_server(&pki, vec![no_mtu]);
    let (code, text) = run(&pki, port, &cookie);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("no MTU received"), "{text}");

    let bad_id = b"HTTP/1.1 200 CONNECTED\r\nX-CSTP-MTU: 1400\r\nX-CSTP-Address: 198.18.200.2\r\nX-DTLS-Session-ID: zz\r\n\r\n".to_vec();
    let port = fake_server(&pki, vec![bad_id]);
    let (code, text) = run(&pki, port, &cookie);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("X-DTLS-Session-ID"), "{text}");

    // A good CONNECT followed by bytes that are not CSTP frames.
    let mut garbage =
        b"HTTP/1.1 200 CONNECTED\r\nX-CSTP-MTU: 1400\r\nX-CSTP-Address: 198.18.200.2\r\n\r\n"
            .to_vec();
    garbage.extend_from_slice(b"GARBAGE!GARBAGE!");
    let port = fake_server(&pki, vec![garbage]);
    let (code, text) = run(&pki, port, &cookie);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("bad CSTP frame header"), "{text}");

    let refused = http(
        "503 Service Unavailable",
        "X-Reason: Server configuration error\r\n",
        "",
    );
    let port = fake_server(&pki, vec![refused.clone(), refused.clone(), refused]);
    let (code, text) = run(&pki, port, &cookie);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("Server configuration error"), "{text}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// CONNECT goes over the login's connection, as openconnect does; when the server closed it
/// meanwhile (without saying so), a new connection carries it.
#[test]
fn connect_reuses_the_login_connection_or_opens_a_new_one() {
    let (pki, dir) = pki();
    let success = http(
        "200 OK",
        "Content-Type: text/xml\r\nSet-Cookie: webvpn=COOKIE; Secure\r\n",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" \
         type=\"complete\" aggregate-auth-version=\"2\"><auth id=\"success\">\
         <banner>hi</banner></auth></config-auth>",
    );
    // A good CONNECT answer, then bytes that are not CSTP: the client got that far.
    let mut connected =
        b"HTTP/1.1 200 CONNECTED\r\nX-CSTP-MTU: 1400\r\nX-CSTP-Address: 198.18.200.2\r\n\r\n"
            .to_vec();
    connected.extend_from_slice(b"GARBAGE!GARBAGE!");
    let port = fake_server(&pki, vec![success.clone(), connected.clone()]);
    let (code, text) = run(&pki, port, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("bad CSTP frame header"), "{text}");
    assert_eq!(text.matches("Connected to").count(), 1, "{text}");

    let port = fake_server(&pki, vec![success, Vec::new(), connected]);
    let (code, text) = run(&pki, port, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("bad CSTP frame header"), "{text}");
    assert_eq!(text.matches("Connected to").count(), 2, "{text}");
    std::fs::remove_dir_all(dir).unwrap();
}
