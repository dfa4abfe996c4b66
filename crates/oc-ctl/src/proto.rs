//! The control protocol between `occtl` and the server.
//!
//! This is our own protocol, not ocserv's protobuf one: newline-delimited
//! JSON over a stream (the server's unix control socket). Each message is one
//! line holding an envelope
//!
//! ```text
//! {"version":1,"request":{"cmd":"show_user","arg":"alice"}}
//! {"version":1,"response":{"type":"users","data":[{...}]}}
//! ```
//!
//! JSON string escaping guarantees that no `'\n'` byte appears inside a
//! message, so a newline always ends one. A client sends one request and
//! reads one response line; for [`Request::ShowEvents`] the server first
//! answers with [`Response::Users`] (the current list) and then sends one
//! [`Response::Event`] line per connect/disconnect until either side closes.
//!
//! Limits: request lines may be at most [`MAX_REQUEST_LINE`] bytes, response
//! lines [`MAX_RESPONSE_LINE`] bytes (excluding the newline). Decoders refuse
//! longer lines and any envelope whose `version` is not
//! [`PROTOCOL_VERSION`]; [`LineBuffer`] enforces the bound while reading so
//! a hostile peer cannot make the reader buffer without limit.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::CtlError;
use crate::model::{BanInfo, Event, IrouteInfo, ServerStatus, SessionInfo, UserInfo};

/// Version carried in every envelope. Bump on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest accepted request line in bytes, excluding the newline (64 KiB).
pub const MAX_REQUEST_LINE: usize = 64 * 1024;

/// Longest accepted response line in bytes, excluding the newline (16 MiB).
pub const MAX_RESPONSE_LINE: usize = 16 * 1024 * 1024;

/// What occtl asks the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", content = "arg", rename_all = "snake_case")]
pub enum Request {
    /// `show status` → [`Response::Status`].
    ShowStatus,
    /// `show users` → [`Response::Users`].
    ShowUsers,
    /// `show user NAME` → [`Response::Users`] (every tunnel of that user;
    /// empty if none).
    ShowUser(String),
    /// `show id ID` → [`Response::Users`] (zero or one entry).
    ShowId(u64),
    /// `show sessions all|valid` → [`Response::Sessions`]. With
    /// `valid_only` the server should send only sessions whose state is
    /// `authenticated` (occtl filters again).
    ShowSessions {
        /// `valid` rather than `all`.
        valid_only: bool,
    },
    /// `show session SID` → [`Response::Sessions`]: sessions whose short id
    /// starts with SID (see [`crate::model::session_id_matches`]); the
    /// server may also send all sessions, occtl filters.
    ShowSession(String),
    /// `show ip bans` → [`Response::Bans`] (entries with `banned_until`).
    ShowIpBans,
    /// `show ip ban points` → [`Response::Bans`] (every entry with points).
    ShowIpBanPoints,
    /// `show iroutes` → [`Response::Iroutes`].
    ShowIroutes,
    /// `show events` → [`Response::Users`], then a stream of
    /// [`Response::Event`].
    ShowEvents,
    /// `disconnect user NAME` → [`Response::Done`] / [`Response::Error`].
    DisconnectUser(String),
    /// `disconnect id ID` → Done / Error.
    DisconnectId(u64),
    /// `terminate user NAME` (ocserv ≥ 1.4): disconnect and invalidate the
    /// user's session cookies → Done / Error.
    TerminateUser(String),
    /// `terminate id ID` (ocserv ≥ 1.4): disconnect and invalidate the
    /// session → Done / Error.
    TerminateId(u64),
    /// `terminate session SID` (ocserv ≥ 1.4): invalidate a session →
    /// Done / Error.
    TerminateSession(String),
    /// `unban ip IP` (IP in canonical text form) → Done / Error.
    UnbanIp(String),
    /// `reload` → Done / Error.
    Reload,
    /// `stop now` → Done / Error.
    StopNow,
}

impl Request {
    /// The occtl command line that produces this request, e.g.
    /// `disconnect user alice`. [`crate::parse_line`] maps it back.
    pub fn command_line(&self) -> String {
        match self {
            Request::ShowStatus => "show status".into(),
            Request::ShowUsers => "show users".into(),
            Request::ShowUser(name) => format!("show user {name}"),
            Request::ShowId(id) => format!("show id {id}"),
            Request::ShowSessions { valid_only: true } => "show sessions valid".into(),
            Request::ShowSessions { valid_only: false } => "show sessions all".into(),
            Request::ShowSession(sid) => format!("show session {sid}"),
            Request::ShowIpBans => "show ip bans".into(),
            Request::ShowIpBanPoints => "show ip ban points".into(),
            Request::ShowIroutes => "show iroutes".into(),
            Request::ShowEvents => "show events".into(),
            Request::DisconnectUser(name) => format!("disconnect user {name}"),
            Request::DisconnectId(id) => format!("disconnect id {id}"),
            Request::TerminateUser(name) => format!("terminate user {name}"),
            Request::TerminateId(id) => format!("terminate id {id}"),
            Request::TerminateSession(sid) => format!("terminate session {sid}"),
            Request::UnbanIp(ip) => format!("unban ip {ip}"),
            Request::Reload => "reload".into(),
            Request::StopNow => "stop now".into(),
        }
    }

    /// Whether the server keeps the connection open and streams
    /// [`Response::Event`] lines after the first response.
    pub fn is_streaming(&self) -> bool {
        matches!(self, Request::ShowEvents)
    }

    /// Whether this request changes server state (answered with
    /// [`Response::Done`] or [`Response::Error`]).
    pub fn is_action(&self) -> bool {
        matches!(
            self,
            Request::DisconnectUser(_)
                | Request::DisconnectId(_)
                | Request::TerminateUser(_)
                | Request::TerminateId(_)
                | Request::TerminateSession(_)
                | Request::UnbanIp(_)
                | Request::Reload
                | Request::StopNow
        )
    }
}

/// What the server answers.
// One response is built per message; boxing the event would only make
// matching on it clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Response {
    /// Answer to [`Request::ShowStatus`].
    Status(ServerStatus),
    /// Answer to show users / user / id / events (initial list).
    Users(Vec<UserInfo>),
    /// Answer to show sessions / session.
    Sessions(Vec<SessionInfo>),
    /// Answer to show ip bans / ban points.
    Bans(Vec<BanInfo>),
    /// Answer to show iroutes.
    Iroutes(Vec<IrouteInfo>),
    /// One line of the `show events` stream.
    Event(Event),
    /// An action succeeded; `message` is informational (may be empty).
    Done {
        /// Human-readable detail.
        message: String,
    },
    /// The request failed (unknown user, nothing to unban, internal error…).
    Error {
        /// Human-readable reason.
        message: String,
    },
}

impl Response {
    /// Short name of the variant, for diagnostics.
    pub fn kind(&self) -> &'static str {
        match self {
            Response::Status(_) => "status",
            Response::Users(_) => "users",
            Response::Sessions(_) => "sessions",
            Response::Bans(_) => "bans",
            Response::Iroutes(_) => "iroutes",
            Response::Event(_) => "event",
            Response::Done { .. } => "done",
            Response::Error { .. } => "error",
        }
    }
}

#[derive(Serialize)]
struct RequestEnvelope<'a> {
    version: u32,
    request: &'a Request,
}

#[derive(Serialize)]
struct ResponseEnvelope<'a> {
    version: u32,
    response: &'a Response,
}

/// Encodes `request` as one line (terminated by `'\n'`).
///
/// Requests built by [`crate::parse_line`] are always far below
/// [`MAX_REQUEST_LINE`] because arguments are capped at
/// [`crate::MAX_ARG_LEN`]; a request built by hand with a huge argument
/// produces a line the server refuses.
pub fn encode_request(request: &Request) -> Vec<u8> {
    let env = RequestEnvelope {
        version: PROTOCOL_VERSION,
        request,
    };
    finish_line(serde_json::to_vec(&env).ok())
}

/// Encodes `response` as one line (terminated by `'\n'`).
///
/// If the encoding would exceed [`MAX_RESPONSE_LINE`] (which the peer would
/// refuse), a [`Response::Error`] saying so is encoded instead, so the client
/// gets a clear message rather than a dropped connection.
pub fn encode_response(response: &Response) -> Vec<u8> {
    let env = ResponseEnvelope {
        version: PROTOCOL_VERSION,
        response,
    };
    match serde_json::to_vec(&env) {
        Ok(v) if v.len() <= MAX_RESPONSE_LINE => finish_line(Some(v)),
        Ok(v) => {
            let err = Response::Error {
                message: format!(
                    "response of {} bytes exceeds the control protocol limit of {} bytes",
                    v.len(),
                    MAX_RESPONSE_LINE
                ),
            };
            let env = ResponseEnvelope {
                version: PROTOCOL_VERSION,
                response: &err,
            };
            finish_line(serde_json::to_vec(&env).ok())
        }
        Err(_) => finish_line(None),
    }
}

fn finish_line(encoded: Option<Vec<u8>>) -> Vec<u8> {
    // Serialising these types cannot fail (no maps with non-string keys, no
    // floats); should it ever, send an envelope the peer reports as
    // malformed instead of panicking.
    let mut v =
        encoded.unwrap_or_else(|| format!("{{\"version\":{PROTOCOL_VERSION}}}").into_bytes());
    v.push(b'\n');
    v
}

/// Decodes one request line (with or without its trailing newline).
pub fn decode_request(line: &[u8]) -> Result<Request, CtlError> {
    let body = decode_envelope(line, MAX_REQUEST_LINE, "request")?;
    serde_json::from_value(body).map_err(|e| CtlError::Malformed(format!("bad request: {e}")))
}

/// Decodes one response line (with or without its trailing newline).
pub fn decode_response(line: &[u8]) -> Result<Response, CtlError> {
    let body = decode_envelope(line, MAX_RESPONSE_LINE, "response")?;
    serde_json::from_value(body).map_err(|e| CtlError::Malformed(format!("bad response: {e}")))
}

fn decode_envelope(line: &[u8], max: usize, field: &str) -> Result<Value, CtlError> {
    let line = strip_newline(line);
    if line.len() > max {
        return Err(CtlError::LineTooLong {
            len: line.len(),
            max,
        });
    }
    let value: Value = serde_json::from_slice(line)
        .map_err(|e| CtlError::Malformed(format!("not a JSON envelope: {e}")))?;
    let Value::Object(mut map) = value else {
        return Err(CtlError::Malformed("envelope is not a JSON object".into()));
    };
    match map.get("version") {
        None => {
            return Err(CtlError::MissingVersion {
                expected: PROTOCOL_VERSION,
            })
        }
        Some(v) => match v.as_u64() {
            Some(got) if got == u64::from(PROTOCOL_VERSION) => {}
            Some(got) => {
                return Err(CtlError::VersionMismatch {
                    got,
                    expected: PROTOCOL_VERSION,
                })
            }
            None => {
                return Err(CtlError::Malformed(format!(
                    "\"version\" must be a non-negative integer, got {v}"
                )))
            }
        },
    }
    map.remove(field)
        .ok_or_else(|| CtlError::Malformed(format!("envelope has no \"{field}\" field")))
}

fn strip_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Accumulates bytes from a stream and yields complete lines, never holding
/// a partial line longer than its bound.
///
/// Feed whatever a read returned to [`push`](Self::push), then call
/// [`next_line`](Self::next_line) until it returns `Ok(None)`. Lines are
/// returned without their `'\n'`. A line longer than the bound is an error;
/// after it the buffer is poisoned (the stream cannot be resynchronised) and
/// every further call fails, so close the connection.
///
/// Memory use is bounded by the bound plus whatever was pushed since the
/// last time the complete lines were drained.
#[derive(Debug, Clone)]
pub struct LineBuffer {
    buf: Vec<u8>,
    /// Start of unconsumed data in `buf`.
    start: usize,
    /// `buf[start..complete]` consists of complete lines (ends with '\n').
    complete: usize,
    max_line: usize,
    poisoned: bool,
}

impl LineBuffer {
    /// A buffer refusing lines longer than `max_line` bytes (excluding the
    /// newline).
    pub fn new(max_line: usize) -> Self {
        LineBuffer {
            buf: Vec::new(),
            start: 0,
            complete: 0,
            max_line,
            poisoned: false,
        }
    }

    /// A buffer for the server side: lines up to [`MAX_REQUEST_LINE`].
    pub fn for_requests() -> Self {
        Self::new(MAX_REQUEST_LINE)
    }

    /// A buffer for the occtl side: lines up to [`MAX_RESPONSE_LINE`].
    pub fn for_responses() -> Self {
        Self::new(MAX_RESPONSE_LINE)
    }

    /// The line bound.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Appends bytes read from the stream.
    ///
    /// Fails (and poisons the buffer) if they would make any line longer
    /// than the bound; nothing of `data` is kept in that case.
    pub fn push(&mut self, data: &[u8]) -> Result<(), CtlError> {
        if self.poisoned {
            return Err(CtlError::StreamPoisoned);
        }
        // Length of the partial line already buffered.
        let mut current = self.buf.len() - self.complete;
        let mut last_newline = None;
        for (i, &b) in data.iter().enumerate() {
            if b == b'\n' {
                last_newline = Some(i);
                current = 0;
            } else {
                current += 1;
                if current > self.max_line {
                    self.poisoned = true;
                    return Err(CtlError::LineTooLong {
                        len: current,
                        max: self.max_line,
                    });
                }
            }
        }
        let old_len = self.buf.len();
        self.buf.extend_from_slice(data);
        if let Some(i) = last_newline {
            self.complete = old_len + i + 1;
        }
        Ok(())
    }

    /// Takes the next complete line (without its newline), or `Ok(None)` if
    /// no complete line is buffered.
    pub fn next_line(&mut self) -> Result<Option<Vec<u8>>, CtlError> {
        if self.poisoned {
            return Err(CtlError::StreamPoisoned);
        }
        let Some(pos) = self
            .buf
            .get(self.start..self.complete)
            .and_then(|s| s.iter().position(|&b| b == b'\n'))
        else {
            return Ok(None);
        };
        let end = self.start + pos;
        let line = self
            .buf
            .get(self.start..end)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        self.start = end + 1;
        self.compact();
        Ok(Some(line))
    }

    /// Whether bytes of an unterminated line are buffered (at end of stream
    /// this means the peer sent a truncated message).
    pub fn has_partial_line(&self) -> bool {
        self.buf.len() > self.complete
    }

    /// Number of buffered bytes not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    fn compact(&mut self) {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            self.complete = 0;
        } else if self.start > 4096 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.complete -= self.start;
            self.start = 0;
        }
    }
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self::for_requests()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::model::{state, BanInfo, Event, IrouteInfo, ServerStatus, SessionInfo, UserInfo};
    use proptest::prelude::*;

    fn all_requests() -> Vec<Request> {
        vec![
            Request::ShowStatus,
            Request::ShowUsers,
            Request::ShowUser("al\"ice\n\\".into()),
            Request::ShowId(u64::MAX),
            Request::ShowSessions { valid_only: true },
            Request::ShowSessions { valid_only: false },
            Request::ShowSession("Ab3".into()),
            Request::ShowIpBans,
            Request::ShowIpBanPoints,
            Request::ShowIroutes,
            Request::ShowEvents,
            Request::DisconnectUser("bob".into()),
            Request::DisconnectId(1),
            Request::TerminateUser("bob".into()),
            Request::TerminateId(2),
            Request::TerminateSession("xyz".into()),
            Request::UnbanIp("2001:db8::1".into()),
            Request::Reload,
            Request::StopNow,
        ]
    }

    fn all_responses() -> Vec<Response> {
        let user = UserInfo {
            id: 3,
            username: "u\u{0}\u{1b}".into(),
            state: state::CONNECTED.into(),
            mtu: Some(1400),
            ipv4: Some("10.0.0.2".into()),
            dns: vec!["192.0.2.1".into()],
            ..UserInfo::default()
        };
        vec![
            Response::Status(ServerStatus {
                server_pid: 9,
                rx_bytes: u64::MAX,
                min_mtu: Some(1280),
                ..ServerStatus::default()
            }),
            Response::Users(vec![]),
            Response::Users(vec![user.clone(), UserInfo::default()]),
            Response::Sessions(vec![SessionInfo {
                session: "abcdef".into(),
                state: state::AUTHENTICATED.into(),
                ..SessionInfo::default()
            }]),
            Response::Bans(vec![BanInfo {
                ip: "192.0.2.9".into(),
                score: 5,
                banned_until: Some(17),
            }]),
            Response::Iroutes(vec![IrouteInfo::from_user(&user)]),
            Response::Event(Event::Connect { user: user.clone() }),
            Response::Event(Event::Disconnect {
                user,
                reason: "idle timeout".into(),
            }),
            Response::Done {
                message: String::new(),
            },
            Response::Error {
                message: "no such user".into(),
            },
        ]
    }

    #[test]
    fn requests_round_trip_as_single_lines() {
        for r in all_requests() {
            let line = encode_request(&r);
            assert_eq!(line.last(), Some(&b'\n'));
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            assert_eq!(decode_request(&line).unwrap(), r);
            // Also without the newline, and with CRLF.
            assert_eq!(decode_request(&line[..line.len() - 1]).unwrap(), r);
            let mut crlf = line[..line.len() - 1].to_vec();
            crlf.extend_from_slice(b"\r\n");
            assert_eq!(decode_request(&crlf).unwrap(), r);
        }
    }

    #[test]
    fn responses_round_trip_as_single_lines() {
        for r in all_responses() {
            let line = encode_response(&r);
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            assert_eq!(decode_response(&line).unwrap(), r);
        }
    }

    #[test]
    fn wire_format_is_documented_shape() {
        assert_eq!(
            encode_request(&Request::ShowUser("alice".into())),
            b"{\"version\":1,\"request\":{\"cmd\":\"show_user\",\"arg\":\"alice\"}}\n"
        );
        assert_eq!(
            encode_request(&Request::ShowStatus),
            b"{\"version\":1,\"request\":{\"cmd\":\"show_status\"}}\n"
        );
        assert_eq!(
            encode_request(&Request::ShowSessions { valid_only: true }),
            b"{\"version\":1,\"request\":{\"cmd\":\"show_sessions\",\"arg\":{\"valid_only\":true}}}\n"
        );
        assert_eq!(
            encode_response(&Response::Done {
                message: "ok".into()
            }),
            b"{\"version\":1,\"response\":{\"type\":\"done\",\"data\":{\"message\":\"ok\"}}}\n"
        );
        // Fields missing in an older peer's message take defaults.
        let r = decode_response(
            br#"{"version":1,"response":{"type":"users","data":[{"id":5,"username":"x"}]}}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            Response::Users(vec![UserInfo {
                id: 5,
                username: "x".into(),
                ..UserInfo::default()
            }])
        );
    }

    #[test]
    fn version_errors_are_clear() {
        let e = decode_request(br#"{"version":2,"request":{"cmd":"show_status"}}"#).unwrap_err();
        assert_eq!(
            e,
            CtlError::VersionMismatch {
                got: 2,
                expected: 1
            }
        );
        assert!(e
            .to_string()
            .contains("unsupported control protocol version 2"));
        // A newer version is reported as such even if its body is unknown.
        let e = decode_response(br#"{"version":7,"response":{"type":"hologram"}}"#).unwrap_err();
        assert!(matches!(e, CtlError::VersionMismatch { got: 7, .. }));
        let e = decode_request(br#"{"request":{"cmd":"show_status"}}"#).unwrap_err();
        assert_eq!(e, CtlError::MissingVersion { expected: 1 });
        for bad in [
            &br#"{"version":"1","request":{"cmd":"show_status"}}"#[..],
            br#"{"version":1.5,"request":{"cmd":"show_status"}}"#,
            br#"{"version":-1,"request":{"cmd":"show_status"}}"#,
            br#"{"version":1}"#,
            br#"{"version":1,"request":{"cmd":"format_disk"}}"#,
            br#"{"version":1,"request":{"cmd":"show_id","arg":"12"}}"#,
            br#"[1]"#,
            b"",
            b"\xff\xfe",
            br#"{"version":1,"request":{"cmd":"show_status"}} trailing"#,
        ] {
            assert!(
                matches!(decode_request(bad), Err(CtlError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn oversized_lines_are_refused() {
        let mut line = br#"{"version":1,"request":{"cmd":"show_user","arg":""#.to_vec();
        line.extend(std::iter::repeat_n(b'a', MAX_REQUEST_LINE));
        line.extend_from_slice(b"\"}}\n");
        assert!(matches!(
            decode_request(&line),
            Err(CtlError::LineTooLong {
                max: MAX_REQUEST_LINE,
                ..
            })
        ));
        // Deep nesting is an error, not a stack overflow.
        let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
        assert!(matches!(
            decode_request(deep.as_bytes()),
            Err(CtlError::Malformed(_))
        ));
    }

    #[test]
    fn too_large_response_becomes_an_error_response() {
        let big = Response::Users(vec![UserInfo {
            user_agent: "x".repeat(MAX_RESPONSE_LINE),
            ..UserInfo::default()
        }]);
        let line = encode_response(&big);
        assert!(line.len() < 1024);
        match decode_response(&line).unwrap() {
            Response::Error { message } => assert!(message.contains("exceeds")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn line_buffer_splits_and_bounds() {
        let mut lb = LineBuffer::new(8);
        assert_eq!(lb.max_line(), 8);
        lb.push(b"ab").unwrap();
        assert_eq!(lb.next_line().unwrap(), None);
        assert!(lb.has_partial_line());
        lb.push(b"c\n\ndef\r\n12345678").unwrap();
        assert_eq!(lb.next_line().unwrap().as_deref(), Some(&b"abc"[..]));
        assert_eq!(lb.next_line().unwrap().as_deref(), Some(&b""[..]));
        assert_eq!(lb.next_line().unwrap().as_deref(), Some(&b"def\r"[..]));
        assert_eq!(lb.next_line().unwrap(), None);
        assert_eq!(lb.buffered(), 8);
        lb.push(b"\n").unwrap();
        assert_eq!(lb.next_line().unwrap().as_deref(), Some(&b"12345678"[..]));
        assert!(!lb.has_partial_line());
        assert_eq!(lb.buffered(), 0);
        // Nine bytes without a newline: refused, nothing kept, poisoned.
        let e = lb.push(b"123456789").unwrap_err();
        assert_eq!(e, CtlError::LineTooLong { len: 9, max: 8 });
        assert_eq!(lb.buffered(), 0);
        assert_eq!(lb.push(b"\n").unwrap_err(), CtlError::StreamPoisoned);
        assert_eq!(lb.next_line().unwrap_err(), CtlError::StreamPoisoned);
        // An oversized line in the middle of a chunk is caught too.
        let mut lb = LineBuffer::new(4);
        assert!(lb.push(b"ok\ntoolong\nok\n").is_err());
        // Partial lines accumulated over several pushes are bounded.
        let mut lb = LineBuffer::new(4);
        lb.push(b"ab").unwrap();
        lb.push(b"cd").unwrap();
        assert!(lb.push(b"e").is_err());
    }

    #[test]
    fn line_buffer_feeds_decoder() {
        let mut wire = Vec::new();
        for r in all_requests() {
            wire.extend(encode_request(&r));
        }
        let mut lb = LineBuffer::for_requests();
        let mut got = Vec::new();
        for chunk in wire.chunks(7) {
            lb.push(chunk).unwrap();
            while let Some(line) = lb.next_line().unwrap() {
                got.push(decode_request(&line).unwrap());
            }
        }
        assert_eq!(got, all_requests());
        let mut lb = LineBuffer::for_responses();
        assert_eq!(lb.max_line(), MAX_RESPONSE_LINE);
        for r in all_responses() {
            lb.push(&encode_response(&r)).unwrap();
            assert_eq!(
                decode_response(&lb.next_line().unwrap().unwrap()).unwrap(),
                r
            );
        }
    }

    #[test]
    fn request_classification() {
        assert!(Request::ShowEvents.is_streaming());
        assert!(!Request::ShowUsers.is_streaming());
        assert!(Request::StopNow.is_action());
        assert!(!Request::ShowIpBans.is_action());
        assert_eq!(Response::Users(vec![]).kind(), "users");
    }

    fn any_request() -> impl Strategy<Value = Request> {
        prop_oneof![
            Just(Request::ShowStatus),
            Just(Request::ShowUsers),
            any::<String>().prop_map(Request::ShowUser),
            any::<u64>().prop_map(Request::ShowId),
            any::<bool>().prop_map(|valid_only| Request::ShowSessions { valid_only }),
            any::<String>().prop_map(Request::ShowSession),
            Just(Request::ShowIpBans),
            Just(Request::ShowIpBanPoints),
            Just(Request::ShowIroutes),
            Just(Request::ShowEvents),
            any::<String>().prop_map(Request::DisconnectUser),
            any::<u64>().prop_map(Request::DisconnectId),
            any::<String>().prop_map(Request::TerminateUser),
            any::<u64>().prop_map(Request::TerminateId),
            any::<String>().prop_map(Request::TerminateSession),
            any::<String>().prop_map(Request::UnbanIp),
            Just(Request::Reload),
            Just(Request::StopNow),
        ]
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_request(&bytes);
            let _ = decode_response(&bytes);
        }

        #[test]
        fn decode_never_panics_on_jsonish(s in r#"[{}\[\]":,0-9a-z_ \\]{0,200}"#) {
            let _ = decode_request(s.as_bytes());
            let _ = decode_response(s.as_bytes());
            let with_version = format!("{{\"version\":1,\"request\":{s}}}");
            let _ = decode_request(with_version.as_bytes());
            let with_version = format!("{{\"version\":1,\"response\":{s}}}");
            let _ = decode_response(with_version.as_bytes());
        }

        #[test]
        fn any_request_round_trips(r in any_request()) {
            let line = encode_request(&r);
            prop_assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            prop_assert_eq!(decode_request(&line).unwrap(), r);
        }

        #[test]
        fn line_buffer_reassembles_any_chunking(
            lines in proptest::collection::vec(proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..20), 0..10),
            cuts in proptest::collection::vec(1usize..16, 1..50),
        ) {
            let mut wire = Vec::new();
            for l in &lines {
                wire.extend_from_slice(l);
                wire.push(b'\n');
            }
            let mut lb = LineBuffer::new(20);
            let mut got = Vec::new();
            let mut rest = &wire[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = cuts[i % cuts.len()].min(rest.len());
                lb.push(&rest[..n]).unwrap();
                rest = &rest[n..];
                i += 1;
                while let Some(l) = lb.next_line().unwrap() {
                    got.push(l);
                }
            }
            prop_assert_eq!(got, lines);
            prop_assert_eq!(lb.buffered(), 0);
        }

        #[test]
        fn line_buffer_never_exceeds_bound(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..40),
            max in 1usize..32,
        ) {
            let mut lb = LineBuffer::new(max);
            for c in &chunks {
                match lb.push(c) {
                    Ok(()) => {
                        prop_assert!(lb.buf.len() - lb.complete <= max);
                        while let Ok(Some(l)) = lb.next_line() {
                            prop_assert!(l.len() <= max);
                        }
                    }
                    Err(_) => {
                        prop_assert!(lb.push(b"x").is_err());
                        break;
                    }
                }
            }
        }
    }
}
