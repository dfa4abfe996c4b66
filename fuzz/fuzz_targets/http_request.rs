//! The server's request parser, `RequestReader`, fed a hostile client's bytes in arbitrary
//! chunks, polled after every read as the server does, until it fails or the input ends.
//! Every request it yields must keep to its `RequestLimits` (`RequestLimits::default()`:
//! head at most 16 KiB, body at most 256 KiB, target at most 256 bytes, each `Cookie` at
//! most 4 KiB, at most 64 headers; or small ones, so that short inputs reach the bounds),
//! have a body of exactly what `Content-Length` says, no `Transfer-Encoding`, header values
//! trimmed and free of CR/LF, and the body must be the last bytes received. Every refusal
//! must map to one of the statuses the server sends. Each request is then read the way the
//! server reads it: `ClientConnect::from_request` (whose host name, user agent, platform and
//! master secret must come out sanitised and bounded) and `parse_client_auth` on its body
//! (values at most 1024 characters).
//!
//! Input layout: byte 0 gives the number of cuts, `byte0 & 15`, and bit 4 picks the small
//! limits (512-byte head, 8 headers, 64-byte body, 32-byte target, 64-byte cookie); then
//! one byte per cut, the length of the next chunk (clamped to what is left); the last
//! chunk takes the rest.
//! Several requests may follow each other on one connection.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oc_proto::anyconnect::server_auth::parse_client_auth;
use oc_proto::anyconnect::server_connect::ClientConnect;
use oc_proto::http::server::{Method, RequestLimits, RequestReader, ServerRequest};

/// The most characters `parse_client_auth` keeps of one value.
const MAX_AUTH_VALUE_CHARS: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let cuts = usize::from(head & 15);
    let Some((lengths, mut body)) = rest.split_at_checked(cuts) else {
        return;
    };
    let limits = if head & 0x10 != 0 {
        RequestLimits {
            max_head_bytes: 512,
            max_headers: 8,
            max_body_bytes: 64,
            max_target_bytes: 32,
            max_cookie_bytes: 64,
        }
    } else {
        RequestLimits::default()
    };
    let mut reader = RequestReader::new(limits);
    // Bytes received since the last complete request.
    let mut pending: Vec<u8> = Vec::new();
    let lengths = lengths
        .iter()
        .map(|&n| usize::from(n))
        .chain(std::iter::once(usize::MAX));
    for length in lengths {
        let (chunk, tail) = body.split_at(length.min(body.len()));
        body = tail;
        pending.extend_from_slice(chunk);
        if let Err(e) = reader.feed(chunk) {
            assert!(matches!(e.status().0, 400 | 413 | 414 | 431), "{e}");
            return;
        }
        match reader.poll() {
            Ok(Some(request)) => {
                check_request(&request, &pending, &limits);
                pending.clear();
                assert!(
                    reader.is_idle(),
                    "reader kept bytes after a complete request"
                );
            }
            Ok(None) => {}
            Err(e) => {
                assert!(matches!(e.status().0, 400 | 413 | 414 | 431), "{e}");
                return;
            }
        }
    }
});

fn check_request(request: &ServerRequest, received: &[u8], limits: &RequestLimits) {
    assert!(
        request.target.len() <= limits.max_target_bytes,
        "target of {} bytes",
        request.target.len()
    );
    assert!(request.body.len() <= limits.max_body_bytes);
    assert!(request.headers.len() <= limits.max_headers);
    assert!(
        received.ends_with(&request.body),
        "the body is not the last bytes received"
    );
    let head_len = received.len() - request.body.len();
    assert!(
        head_len <= limits.max_head_bytes,
        "request head of {head_len} bytes accepted"
    );
    if let Method::Other(name) = &request.method {
        assert!(!name.is_empty() && !matches!(name.as_str(), "GET" | "POST" | "CONNECT"));
    }
    assert!(request.target.starts_with(request.path()));
    assert!(request.header("Transfer-Encoding").is_none());
    for h in &request.headers {
        assert!(!h.name.is_empty());
        assert_eq!(h.value, h.value.trim(), "header {} not trimmed", h.name);
        assert!(
            !h.value.contains(['\r', '\n']),
            "header {} holds CR/LF",
            h.name
        );
        if h.name.eq_ignore_ascii_case("Cookie") {
            assert!(h.value.len() <= limits.max_cookie_bytes);
        }
    }
    let lengths: Vec<&str> = request.headers_named("Content-Length").collect();
    match lengths.as_slice() {
        [] => assert!(request.body.is_empty(), "body without Content-Length"),
        [n] => assert_eq!(n.parse::<usize>().ok(), Some(request.body.len())),
        more => panic!("{} Content-Length headers accepted", more.len()),
    }

    let connect = ClientConnect::from_request(request);
    if let Some(host) = &connect.hostname {
        assert!((1..=63).contains(&host.len()), "host name {host:?}");
        assert!(
            host.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "host name {host:?}"
        );
    }
    assert!(connect.user_agent.len() <= 63);
    assert!(connect.device_type.as_ref().is_none_or(|v| v.len() <= 63));
    assert!(connect.platform.as_ref().is_none_or(|v| v.len() <= 63));
    assert_eq!(connect.cookie.as_deref(), request.cookie("webvpn"));
    if let Some(secret) = connect.master_secret {
        let sent = request.header("X-DTLS-Master-Secret").unwrap_or_default();
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        assert!(
            sent.trim().eq_ignore_ascii_case(&hex),
            "master secret {hex} from {sent:?}"
        );
    }
    if request.header("X-CSTP-Address-Type").is_none() {
        assert!(connect.wants_ipv4 && connect.wants_ipv6);
    }
    let _ = connect.is_mobile();

    let auth = parse_client_auth(&request.body);
    for value in [&auth.username, &auth.password, &auth.group]
        .into_iter()
        .flatten()
    {
        assert!(value.chars().count() <= MAX_AUTH_VALUE_CHARS);
    }
}
