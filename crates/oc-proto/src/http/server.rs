//! The server side of the HTTP codec: a strict request parser and a response builder.
//!
//! The parser faces the internet before anyone has logged in, so it refuses rather than
//! guesses: bounded head, body, target and cookie sizes; `Content-Length` framing only
//! (chunked or ambiguous framing is a smuggling vector and no AnyConnect client sends it);
//! obsolete line folding rejected; bytes after a complete request (pipelining) rejected.
//! Every refusal maps to a status code the shell sends before closing the connection.

use thiserror::Error;

use super::Header;

/// Hard bounds on what a client may make the server buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Request line plus all header lines, in bytes.
    pub max_head_bytes: usize,
    /// Number of header lines.
    pub max_headers: usize,
    /// Body size in bytes (auth XML is small; ocserv allows 256 KiB).
    pub max_body_bytes: usize,
    /// Request-target length in bytes.
    pub max_target_bytes: usize,
    /// Length of any single `Cookie` header value.
    pub max_cookie_bytes: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_head_bytes: 16 * 1024,
            max_headers: 64,
            max_body_bytes: 256 * 1024,
            // An identity provider's return to the browser-login callback carries its code
            // and state in the query (some providers' codes are over a kilobyte).
            max_target_bytes: 8 * 1024,
            max_cookie_bytes: 4096,
        }
    }
}

/// Why a request was refused. [`RequestError::status`] is the answer to send.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("request header is larger than {limit} bytes")]
    HeadTooLarge { limit: usize },
    #[error("request has more than {limit} header lines")]
    TooManyHeaders { limit: usize },
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("request target is longer than {limit} bytes")]
    TargetTooLong { limit: usize },
    #[error("Cookie header is longer than {limit} bytes")]
    CookieTooLong { limit: usize },
    #[error("request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("invalid Content-Length {0:?}")]
    BadContentLength(String),
    #[error("request framing is ambiguous (Transfer-Encoding, or several Content-Length headers)")]
    AmbiguousFraming,
    #[error("a second request arrived before the first was answered (pipelining is not allowed)")]
    Pipelined,
}

impl RequestError {
    /// The HTTP status (code and reason) to answer with before closing.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            Self::HeadTooLarge { .. } | Self::TooManyHeaders { .. } => {
                (431, "Request Header Fields Too Large")
            }
            Self::TargetTooLong { .. } => (414, "URI Too Long"),
            Self::BodyTooLarge { .. } => (413, "Content Too Large"),
            _ => (400, "Bad Request"),
        }
    }
}

/// Request methods the AnyConnect server distinguishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Connect,
    Other(String),
}

/// A parsed, complete request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRequest {
    pub method: Method,
    /// The request target exactly as sent (`/auth`, `/CSCOSSLC/tunnel`, ...).
    pub target: String,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
    /// An HTTP/1.0 request (MIT Kerberos's KDC proxy client sends them): the connection
    /// ends after the answer.
    pub http10: bool,
}

impl ServerRequest {
    /// The first header with exactly this name. ocserv matches header names
    /// case-sensitively; clients all use the canonical spelling, so we accept either case.
    pub fn header(&self, name: &str) -> Option<&str> {
        super::find_header(&self.headers, name)
    }

    /// Every header with this name, in order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        super::headers_named(&self.headers, name)
    }

    /// The value of cookie `name` from the `Cookie` headers.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers_named("Cookie")
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    /// The path without any query string (ocserv ignores query strings).
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
}

/// Incremental request parser for one connection.
#[derive(Debug)]
pub struct RequestReader {
    limits: RequestLimits,
    buf: Vec<u8>,
    head: Option<(ServerRequest, usize, usize)>,
}

impl RequestReader {
    pub fn new(limits: RequestLimits) -> Self {
        Self {
            limits,
            buf: Vec::new(),
            head: None,
        }
    }

    /// Appends received bytes; fails as soon as the buffered data already breaks a limit.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), RequestError> {
        self.buf.extend_from_slice(data);
        if self.head.is_none() {
            self.parse_head()?;
            if self.head.is_none() && self.buf.len() > self.limits.max_head_bytes {
                return Err(RequestError::HeadTooLarge {
                    limit: self.limits.max_head_bytes,
                });
            }
        }
        if let Some((_, head_len, body_len)) = &self.head {
            if self.buf.len() > head_len + body_len {
                return Err(RequestError::Pipelined);
            }
        }
        Ok(())
    }

    /// The request, once complete. The reader is then ready for the next one.
    pub fn poll(&mut self) -> Result<Option<ServerRequest>, RequestError> {
        let Some((_, head_len, body_len)) = &self.head else {
            return Ok(None);
        };
        let end = head_len + body_len;
        if self.buf.len() < end {
            return Ok(None);
        }
        if self.buf.len() > end {
            return Err(RequestError::Pipelined);
        }
        let Some((mut request, head_len, _)) = self.head.take() else {
            return Ok(None);
        };
        request.body = self.buf.get(head_len..end).unwrap_or_default().to_vec();
        self.buf.clear();
        Ok(Some(request))
    }

    /// True when nothing of a next request has been received.
    pub fn is_idle(&self) -> bool {
        self.buf.is_empty() && self.head.is_none()
    }

    fn parse_head(&mut self) -> Result<(), RequestError> {
        let window_len = self.buf.len().min(self.limits.max_head_bytes);
        let window = self.buf.get(..window_len).unwrap_or_default();
        let mut storage = vec![httparse::EMPTY_HEADER; self.limits.max_headers];
        let mut parsed = httparse::Request::new(&mut storage);
        let head_len = match parsed.parse(window) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(()),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(RequestError::TooManyHeaders {
                    limit: self.limits.max_headers,
                })
            }
            Err(e) => return Err(RequestError::Malformed(e.to_string())),
        };
        let http10 = match parsed.version {
            Some(1) => false,
            Some(0) => true,
            _ => {
                return Err(RequestError::Malformed(
                    "only HTTP/1.1 and 1.0 are spoken here".into(),
                ))
            }
        };
        let target = parsed.path.unwrap_or_default();
        if target.len() > self.limits.max_target_bytes {
            return Err(RequestError::TargetTooLong {
                limit: self.limits.max_target_bytes,
            });
        }
        let method = match parsed.method.unwrap_or_default() {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "CONNECT" => Method::Connect,
            other => Method::Other(other.to_string()),
        };
        let mut headers = Vec::with_capacity(parsed.headers.len());
        for h in parsed.headers.iter() {
            let value = std::str::from_utf8(h.value)
                .map_err(|_| RequestError::Malformed(format!("header {} is not UTF-8", h.name)))?
                .trim();
            if h.name.eq_ignore_ascii_case("Cookie") && value.len() > self.limits.max_cookie_bytes {
                return Err(RequestError::CookieTooLong {
                    limit: self.limits.max_cookie_bytes,
                });
            }
            headers.push(Header {
                name: h.name.to_string(),
                value: value.to_string(),
            });
        }
        let request = ServerRequest {
            method,
            target: target.to_string(),
            headers,
            body: Vec::new(),
            http10,
        };
        let body_len = self.body_length(&request)?;
        self.head = Some((request, head_len, body_len));
        Ok(())
    }

    fn body_length(&self, request: &ServerRequest) -> Result<usize, RequestError> {
        if request.header("Transfer-Encoding").is_some() {
            return Err(RequestError::AmbiguousFraming);
        }
        let mut lengths = request.headers_named("Content-Length");
        let Some(text) = lengths.next() else {
            return Ok(0);
        };
        if lengths.next().is_some() {
            return Err(RequestError::AmbiguousFraming);
        }
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RequestError::BadContentLength(text.to_string()));
        }
        let n: usize = text
            .parse()
            .map_err(|_| RequestError::BadContentLength(text.to_string()))?;
        if n > self.limits.max_body_bytes {
            return Err(RequestError::BodyTooLarge {
                limit: self.limits.max_body_bytes,
            });
        }
        Ok(n)
    }
}

/// A response to serialise. Header order is kept as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerResponse {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The successful CONNECT answer carries neither a body nor `Content-Length`.
    pub tunnel: bool,
}

impl ServerResponse {
    pub fn new(status: u16, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            headers: Vec::new(),
            body: Vec::new(),
            tunnel: false,
        }
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn push_header(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.headers.push((name.into(), value.into()));
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Writes the response. CR and LF are stripped from every header so a value derived
    /// from client input (a hostname, a user name) cannot inject lines.
    pub fn emit(&self, out: &mut Vec<u8>) {
        self.emit_with(out, &[]);
    }

    /// Writes the response with the administrator's `included` headers (ocserv's
    /// `included-http-headers`) after its own; [`SECURITY_HEADERS`] fill in the names
    /// neither has. The tunnel grant gets none of them.
    pub fn emit_with(&self, out: &mut Vec<u8>, included: &[(String, String)]) {
        out.extend_from_slice(format!("HTTP/1.1 {} ", self.status).as_bytes());
        super::push_sanitised(out, &self.reason);
        out.extend_from_slice(b"\r\n");
        let mut push = |name: &str, value: &str| {
            super::push_sanitised(out, name);
            out.extend_from_slice(b": ");
            super::push_sanitised(out, value);
            out.extend_from_slice(b"\r\n");
        };
        for (name, value) in &self.headers {
            push(name, value);
        }
        if !self.tunnel {
            let has = |headers: &[(String, String)], name: &str| {
                headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
            };
            for (name, value) in included {
                if !has(&self.headers, name) {
                    push(name, value);
                }
            }
            for (name, value) in SECURITY_HEADERS {
                if !has(&self.headers, name) && !has(included, name) {
                    push(name, value);
                }
            }
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }
}

/// Sent with every HTTP answer (not the `200 CONNECTED` tunnel grant, whose header set Cisco
/// clients expect as ocserv sends it): nothing here is a web page to frame, sniff, cache or
/// load resources for. AnyConnect and openconnect clients ignore them.
pub const SECURITY_HEADERS: [(&str, &str); 6] = [
    (
        "Strict-Transport-Security",
        "max-age=31536000; includeSubDomains",
    ),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Content-Security-Policy", "default-src 'none'"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
];

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An administrator's header replaces the default of the same name; the response's own
    /// header wins over both.
    #[test]
    fn included_headers_replace_the_defaults_of_their_name() {
        let included = vec![("cache-control".to_owned(), "private".to_owned())];
        let mut out = Vec::new();
        ServerResponse::new(200, "OK").emit_with(&mut out, &included);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.to_ascii_lowercase().matches("cache-control").count(),
            1,
            "{text}"
        );
        assert!(text.contains("cache-control: private\r\n"), "{text}");
        let mut out = Vec::new();
        ServerResponse::new(200, "OK")
            .header("Cache-Control", "max-age=5")
            .emit_with(&mut out, &included);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.to_ascii_lowercase().matches("cache-control").count(),
            1,
            "{text}"
        );
        assert!(text.contains("Cache-Control: max-age=5\r\n"), "{text}");
    }

    #[test]
    fn security_headers_on_answers_but_not_on_the_tunnel_grant() {
        let mut out = Vec::new();
        ServerResponse::new(200, "OK")
            .header("Cache-Control", "private")
            .body("x")
            .emit(&mut out);
        let text = String::from_utf8(out).unwrap();
        for (name, value) in SECURITY_HEADERS {
            if name != "Cache-Control" {
                assert!(text.contains(&format!("{name}: {value}\r\n")), "{text}");
            }
        }
        // A header the response sets itself is not sent twice.
        assert_eq!(text.matches("Cache-Control").count(), 1, "{text}");
        let mut grant = ServerResponse::new(200, "CONNECTED");
        grant.tunnel = true;
        let mut out = Vec::new();
        grant.emit(&mut out);
        assert_eq!(out, b"HTTP/1.1 200 CONNECTED\r\n\r\n");
    }

    fn parse(input: &[u8]) -> Result<Option<ServerRequest>, RequestError> {
        let mut r = RequestReader::new(RequestLimits::default());
        r.feed(input)?;
        r.poll()
    }

    #[test]
    fn post_with_body_byte_by_byte() {
        let input = b"POST /auth?x=1 HTTP/1.1\r\nHost: vpn\r\nCookie: webvpncontext=abc; webvpn=x=\r\nContent-Length: 5\r\n\r\nhello";
        let mut r = RequestReader::new(RequestLimits::default());
        let mut got = None;
        for b in input {
            r.feed(&[*b]).unwrap();
            if let Some(req) = r.poll().unwrap() {
                got = Some(req);
            }
        }
        let req = got.unwrap();
        assert_eq!(req.method, Method::Post);
        assert_eq!(req.path(), "/auth");
        assert_eq!(req.body, b"hello");
        assert_eq!(req.cookie("webvpn"), Some("x="));
        assert_eq!(req.cookie("webvpncontext"), Some("abc"));
        assert!(r.is_idle());
    }

    #[test]
    fn connect_without_body() {
        let req = parse(b"CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nX-CSTP-MTU: 1400\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(req.method, Method::Connect);
        assert_eq!(req.header("x-cstp-mtu"), Some("1400"));
    }

    #[test]
    fn smuggling_and_pipelining_refused() {
        let cases: &[(&[u8], RequestError)] = &[
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                RequestError::AmbiguousFraming,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
                RequestError::AmbiguousFraming,
            ),
            (
                b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n",
                RequestError::Pipelined,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\nx",
                RequestError::BadContentLength("+1".into()),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse(input).unwrap_err(),
                *want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n"),
            Err(RequestError::Malformed(_))
        ));
        assert!(parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap().http10);
        assert!(!parse(b"GET / HTTP/1.1\r\n\r\n").unwrap().unwrap().http10);
    }

    #[test]
    fn limits_give_their_status() {
        let long_target = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(8 * 1024));
        let err = parse(long_target.as_bytes()).unwrap_err();
        assert_eq!(err.status().0, 414);
        let big_cookie = format!(
            "GET / HTTP/1.1\r\nCookie: webvpn={}\r\n\r\n",
            "a".repeat(5000)
        );
        // An oversized cookie is a bad request, not just a large header (ocserv's overflow).
        assert_eq!(parse(big_cookie.as_bytes()).unwrap_err().status().0, 400);
        let big_body = b"POST / HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n";
        assert_eq!(parse(big_body).unwrap_err().status().0, 413);
        let mut r = RequestReader::new(RequestLimits::default());
        let err = r.feed(&vec![b'a'; 17 * 1024]).unwrap_err();
        assert_eq!(err.status().0, 431);
    }

    #[test]
    fn response_emit_strips_injection() {
        let mut out = Vec::new();
        ServerResponse::new(200, "OK")
            .header("X-CSTP-Hostname", "evil\r\nSet-Cookie: x=y")
            .body("hi")
            .emit(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\nX-CSTP-Hostname: evilSet-Cookie: x=y\r\n"));
        assert!(text.ends_with("Content-Length: 2\r\n\r\nhi"));
        assert_eq!(text.matches("\r\n").count(), 2 + SECURITY_HEADERS.len() + 2);
        let mut tunnel = ServerResponse::new(200, "CONNECTED");
        tunnel.tunnel = true;
        let mut out = Vec::new();
        tunnel.emit(&mut out);
        assert_eq!(out, b"HTTP/1.1 200 CONNECTED\r\n\r\n");
    }

    proptest! {
        #[test]
        fn never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..8)) {
            let mut r = RequestReader::new(RequestLimits::default());
            for c in chunks {
                if r.feed(&c).is_err() { break; }
                if r.poll().is_err() { break; }
            }
        }
    }
}
