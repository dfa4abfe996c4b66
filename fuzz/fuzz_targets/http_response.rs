//! The client's response parser, `ResponseReader`, fed a hostile server's bytes in
//! arbitrary chunks and polled after every read, then told the connection closed
//! (`finish_eof`). Every response it yields must keep to its `Limits` (`Limits::default()`:
//! at most 100 headers, body at most 1 MiB; or small ones, so that short inputs reach the
//! bounds), carry trimmed header values, a body of exactly `Content-Length` bytes when that
//! frames it, and no body where HTTP allows none. In CONNECT mode (`head_only`) the bytes
//! after the head must come back from `take_rest` unchanged, and the head must be within
//! the head limit.
//!
//! Every head then goes through `TunnelConfig::from_response`, as openconnect reads a
//! CONNECT answer; a granted tunnel must have an MTU, an address, the larger of the CSTP and
//! DTLS MTUs, split routes without host bits, DTLS app and session ids that are exactly the
//! hex digits sent (a session id of 32 bytes), and one `cstp_options` entry per `X-CSTP-*`
//! header. The client then starts its session with
//! the granted timers and compression (`Session::new`, `start_dtls`, timeouts) and feeds
//! it the bytes after the head, as `openconnect` does: nothing a server sends may panic.
//!
//! Input layout: byte 0: bit 4 picks CONNECT mode (`head_only`), bit 5 a `--force-dpd` of
//! 30 s, bit 6 the small limits (512-byte head, 8 headers, 64-byte body), and `byte0 & 15`
//! is the number of cuts; then one byte per cut, the length of the next chunk (clamped to
//! what is left); the last chunk takes the rest.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use oc_proto::anyconnect::connect::TunnelConfig;
use oc_proto::anyconnect::session::Session;
use oc_proto::compress::{TunnelCompression, CLIENT_MIN_PACKET};
use oc_proto::http::{Limits, Response, ResponseHead, ResponseReader};

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let head_only = head & 0x10 != 0;
    let forced_dpd = (head & 0x20 != 0).then_some(Duration::from_secs(30));
    let cuts = usize::from(head & 15);
    let Some((lengths, mut body)) = rest.split_at_checked(cuts) else {
        return;
    };
    let limits = if head & 0x40 != 0 {
        Limits {
            max_head_bytes: 512,
            max_headers: 8,
            max_body_bytes: 64,
        }
    } else {
        Limits::default()
    };
    let mut reader = ResponseReader::new(limits, head_only);
    // Bytes received so far (in CONNECT mode the first response ends the exchange).
    let mut pending: Vec<u8> = Vec::new();
    let lengths = lengths
        .iter()
        .map(|&n| usize::from(n))
        .chain(std::iter::once(usize::MAX));
    for length in lengths {
        let (chunk, tail) = body.split_at(length.min(body.len()));
        body = tail;
        pending.extend_from_slice(chunk);
        if reader.feed(chunk).is_err() {
            return;
        }
        loop {
            match reader.poll() {
                Ok(Some(response)) => {
                    check_response(&response, &limits, head_only);
                    if head_only {
                        // A CONNECT answer: what follows is the tunnel.
                        let tunnel = reader.take_rest();
                        assert!(
                            pending.ends_with(&tunnel),
                            "take_rest lost or changed bytes"
                        );
                        if (200..300).contains(&response.head.status) {
                            // Nothing but the head was consumed.
                            let head_len = pending.len() - tunnel.len();
                            assert!(
                                head_len <= limits.max_head_bytes,
                                "head of {head_len} bytes"
                            );
                        }
                        let mut stream = tunnel;
                        stream.extend_from_slice(body);
                        check_tunnel(&response.head, forced_dpd, Some(&stream));
                        return;
                    }
                    check_tunnel(&response.head, forced_dpd, None);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    if let Ok(response) = reader.finish_eof() {
        check_response(&response, &limits, head_only);
        check_tunnel(&response.head, forced_dpd, None);
    }
});

fn check_response(response: &Response, limits: &Limits, head_only: bool) {
    let head = &response.head;
    assert!(head.headers.len() <= limits.max_headers);
    assert!(
        response.body.len() <= limits.max_body_bytes,
        "body of {} bytes over the {}-byte limit",
        response.body.len(),
        limits.max_body_bytes
    );
    for h in &head.headers {
        assert!(!h.name.is_empty());
        assert_eq!(h.value, h.value.trim(), "header {} not trimmed", h.name);
    }
    let no_body = (100..200).contains(&head.status)
        || head.status == 204
        || head.status == 304
        || (head_only && (200..300).contains(&head.status));
    if no_body {
        assert!(
            response.body.is_empty(),
            "status {} with a body",
            head.status
        );
    } else if head.header("Transfer-Encoding").is_none() {
        if let Some(n) = head.header("Content-Length") {
            assert_eq!(
                n.parse::<usize>().ok(),
                Some(response.body.len()),
                "Content-Length {n:?}"
            );
        }
    }
    let _ = head.set_cookies().count();
    let _ = head.wants_close();
}

/// Reads `head` as a CONNECT answer and, when it grants a tunnel, runs the client's session
/// with what it granted, feeding it `stream` (the bytes after the head) if given.
fn check_tunnel(head: &ResponseHead, forced_dpd: Option<Duration>, stream: Option<&[u8]>) {
    let Ok(cfg) = TunnelConfig::from_response(head, forced_dpd) else {
        return;
    };
    assert_eq!(head.status, 200);
    assert!(cfg.ip.mtu > 0);
    assert!(cfg.ip.ipv4.is_some() || cfg.ip.ipv6.is_some());
    assert!(cfg.ip.mtu >= cfg.dtls.mtu.unwrap_or(0));
    assert!(cfg.dtls.session_id.as_ref().is_none_or(|id| id.len() == 32));
    assert!(cfg.dtls.app_id.as_ref().is_none_or(|id| id.len() <= 64));
    for (name, id) in [
        ("X-DTLS-App-ID", &cfg.dtls.app_id),
        ("X-DTLS-Session-ID", &cfg.dtls.session_id),
    ] {
        if let Some(id) = id {
            // The last such header wins; its value must be exactly these bytes in hex.
            let sent = head.headers_named(name).last().unwrap_or_default();
            let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
            assert!(
                sent.eq_ignore_ascii_case(&hex),
                "{name} {sent:?} read as {hex}"
            );
        }
    }
    assert!(cfg.ip.split_include4.iter().all(|n| *n == n.trunc()));
    assert!(cfg.ip.split_exclude4.iter().all(|n| *n == n.trunc()));
    assert!(cfg.ip.split_include6.iter().all(|n| *n == n.trunc()));
    assert!(cfg.ip.split_exclude6.iter().all(|n| *n == n.trunc()));
    assert!(cfg.dtls_compression.is_none_or(|a| a.is_stateless()));
    let cstp_headers = head
        .headers
        .iter()
        .filter(|h| h.name.to_ascii_lowercase().starts_with("x-cstp-"))
        .count();
    assert_eq!(cfg.ip.options.len(), cstp_headers);
    if let Some(dpd) = forced_dpd {
        assert_eq!(cfg.cstp_timers.dpd, Some(dpd));
        assert_eq!(cfg.dtls.timers.dpd, Some(dpd));
    }
    let _ = cfg.ip.ipv4_net();

    // What openconnect's tunnel does with the grant.
    let now = Instant::now();
    let mut session = Session::new(cfg.cstp_timers, now).with_compression(TunnelCompression::new(
        cfg.cstp_compression,
        cfg.dtls_compression,
        CLIENT_MIN_PACKET,
        usize::from(cfg.ip.mtu),
    ));
    session.start_dtls(cfg.dtls.timers, now);
    if let Some(stream) = stream {
        let _ = session.handle_cstp(stream, now, |_| {});
    }
    if let Some(deadline) = session.poll_timeout() {
        session.handle_timeout(deadline);
        assert!(
            session.poll_timeout().is_none_or(|next| next > deadline),
            "session due again at once after handling its timeout"
        );
    }
    while session.poll_transmit().is_some() {}
    while session.poll_event().is_some() {}
}
