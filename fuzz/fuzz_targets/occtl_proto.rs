//! The occtl control protocol and command line, from both ends of the socket.
//!
//! - `LineBuffer`s (a small bound picked by the input, and the server's request bound) fed
//!   the input in chunks: they return exactly the lines that were sent, each within the
//!   bound and without its newline, fail with `LineTooLong` exactly when a line outgrows
//!   the bound (and are poisoned after), and never hold more than the bound plus the last
//!   read (at most the bound once the complete lines are taken).
//! - Every line through `decode_request` and `decode_response`. A decoded request encodes
//!   (`encode_request`) to one line that decodes to the same request; so does a decoded
//!   response. Every decoded response is rendered (`render`) as the answer to every request,
//!   as text and as JSON: the JSON output of the requests it answers must be valid JSON
//!   (ocserv's was not), with one entry per listed item, and text output must show no
//!   control character but newline and tab.
//! - Every line as typed at the occtl prompt (`parse_line`): a command that parses gives
//!   a request whose `command_line` parses back to it, and whose encoding fits the
//!   server's line bound.
//!
//! Input layout: byte 0 is the small buffer's line bound minus one; byte 1 + 1 is the read
//! size; the rest is the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oc_ctl::{
    decode_request, decode_response, encode_request, encode_response, help_output, parse_line,
    render, Command, CtlError, LineBuffer, RenderOptions, Request, Response, MAX_REQUEST_LINE,
};
use serde_json::Value;

const NOW: u64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let Some(([bound, read], stream)) = data.split_first_chunk::<2>().map(|(h, r)| (*h, r)) else {
        return;
    };
    let read = usize::from(read) + 1;
    line_buffer(LineBuffer::new(usize::from(bound) + 1), stream, read);
    for line in line_buffer(LineBuffer::for_requests(), stream, read) {
        if let Ok(request) = decode_request(&line) {
            request_round_trip(&request);
        }
        if let Ok(response) = decode_response(&line) {
            response_round_trip(&response);
            render_everything(&response);
        }
        let typed = String::from_utf8_lossy(&line);
        match parse_line(&typed) {
            Ok(Command::Remote(request)) => {
                let again = parse_line(&request.command_line());
                assert_eq!(
                    again.ok(),
                    Some(Command::Remote(request.clone())),
                    "command_line does not parse back"
                );
                let wire = encode_request(&request);
                assert!(
                    wire.len() <= MAX_REQUEST_LINE + 1,
                    "request line of {} bytes",
                    wire.len()
                );
                request_round_trip(&request);
            }
            // What occtl prints then.
            Ok(Command::Help) | Err(_) => {
                let _ = help_output(&typed, true);
            }
            Ok(Command::Exit | Command::Reset) => {}
        }
    }
});

/// Feeds `stream` in reads of `read` bytes; returns the lines taken.
fn line_buffer(mut buffer: LineBuffer, stream: &[u8], read: usize) -> Vec<Vec<u8>> {
    let max = buffer.max_line();
    let mut lines = Vec::new();
    // Length of the line being received, as the reader should count it.
    let mut current = 0usize;
    let mut sent = 0usize;
    // Bytes of the lines taken, newlines included.
    let mut taken = 0usize;
    for chunk in stream.chunks(read) {
        let mut too_long = false;
        let mut len = current;
        for &b in chunk {
            if b == b'\n' {
                len = 0;
            } else {
                len += 1;
                too_long |= len > max;
            }
        }
        match buffer.push(chunk) {
            Ok(()) => assert!(!too_long, "a line over {max} bytes was accepted"),
            Err(CtlError::LineTooLong { len, max: m }) => {
                assert!(too_long, "LineTooLong({len}) for lines within {max}");
                assert_eq!(m, max);
                assert!(matches!(buffer.push(b"\n"), Err(CtlError::StreamPoisoned)));
                assert!(matches!(buffer.next_line(), Err(CtlError::StreamPoisoned)));
                break;
            }
            Err(e) => panic!("push failed with {e}"),
        }
        sent += chunk.len();
        current = len;
        assert!(
            buffer.buffered() <= max + chunk.len(),
            "buffer grew past the bound"
        );
        loop {
            match buffer.next_line() {
                Ok(Some(line)) => {
                    assert!(line.len() <= max);
                    assert!(!line.contains(&b'\n'));
                    taken += line.len() + 1;
                    lines.push(line);
                }
                Ok(None) => break,
                Err(e) => panic!("next_line failed with {e}"),
            }
        }
        assert!(
            buffer.buffered() <= max,
            "a drained buffer holds {}",
            buffer.buffered()
        );
        assert_eq!(buffer.buffered(), current, "partial line miscounted");
        assert_eq!(buffer.has_partial_line(), current > 0);
        // Lines taken plus the partial one are exactly what was sent.
        assert_eq!(taken + current, sent);
    }
    let mut joined = Vec::new();
    for l in &lines {
        joined.extend_from_slice(l);
        joined.push(b'\n');
    }
    assert!(stream.starts_with(&joined), "lines differ from the stream");
    lines
}

fn request_round_trip(request: &Request) {
    let wire = encode_request(request);
    assert_eq!(wire.last(), Some(&b'\n'));
    assert_eq!(wire.iter().filter(|&&b| b == b'\n').count(), 1);
    let back = decode_request(&wire).unwrap_or_else(|e| panic!("own request line: {e}"));
    assert_eq!(&back, request);
}

fn response_round_trip(response: &Response) {
    let wire = encode_response(response);
    assert_eq!(wire.last(), Some(&b'\n'));
    assert_eq!(wire.iter().filter(|&&b| b == b'\n').count(), 1);
    let back = decode_response(&wire).unwrap_or_else(|e| panic!("own response line: {e}"));
    assert_eq!(&back, response);
}

fn all_requests() -> Vec<Request> {
    vec![
        Request::ShowStatus,
        Request::ShowUsers,
        Request::ShowUser("alice".into()),
        Request::ShowId(1),
        Request::ShowSessions { valid_only: true },
        Request::ShowSessions { valid_only: false },
        Request::ShowSession("a".into()),
        Request::ShowIpBans,
        Request::ShowIpBanPoints,
        Request::ShowIroutes,
        Request::ShowEvents,
        Request::DisconnectUser("alice".into()),
        Request::DisconnectId(1),
        Request::TerminateUser("alice".into()),
        Request::TerminateId(1),
        Request::TerminateSession("abcdef".into()),
        Request::UnbanIp("192.0.2.1".into()),
        Request::Reload,
        Request::StopNow,
    ]
}

/// Whether `request` shows `response` as JSON in `--json` mode (actions print text).
fn json_answer(request: &Request, response: &Response) -> bool {
    matches!(
        (request, response),
        (
            Request::ShowStatus,
            Response::Status(_) | Response::Error { .. }
        ) | (
            Request::ShowUsers | Request::ShowUser(_) | Request::ShowId(_) | Request::ShowEvents,
            Response::Users(_)
        ) | (
            Request::ShowSessions { .. } | Request::ShowSession(_),
            Response::Sessions(_)
        ) | (
            Request::ShowIpBans | Request::ShowIpBanPoints,
            Response::Bans(_)
        ) | (Request::ShowIroutes, Response::Iroutes(_))
            | (Request::ShowEvents, Response::Event(_))
    )
}

fn no_controls(text: &str, what: &str) {
    assert!(
        !text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "{what}: control character in text output {text:?}"
    );
}

fn render_everything(response: &Response) {
    for request in all_requests() {
        let text = render(&request, response, &RenderOptions::text(NOW));
        no_controls(&text.stdout, "stdout");
        no_controls(&text.stderr, "stderr");

        let out = render(&request, response, &RenderOptions::json(NOW));
        if !json_answer(&request, response) {
            continue;
        }
        let value: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{} answer to {:?} is not JSON: {e}\n{}",
                response.kind(),
                request,
                out.stdout
            )
        });
        let listed = match response {
            Response::Users(users) => Some(users.len()),
            Response::Iroutes(entries) => Some(entries.len()),
            Response::Bans(bans) if request == Request::ShowIpBanPoints => Some(bans.len()),
            _ => None,
        };
        if let Some(n) = listed {
            let items = value.as_array().map(Vec::len);
            assert_eq!(items, Some(n), "{} entries listed as {}", n, out.stdout);
        }
    }
}
