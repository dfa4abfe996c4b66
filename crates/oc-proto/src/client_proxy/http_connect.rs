//! HTTP `CONNECT` through a proxy, with its authentication rounds.

use super::auth::{parse_challenges, Fresh, ProxyAuth, RequestLine};
use super::{authority, ProxyError};
use crate::http::{Limits, Response, ResponseReader};

/// How many 407 answers we take before giving up (each method is tried once; a stale
/// Digest nonce may add rounds).
const MAX_ROUNDS: u32 = 8;

/// What the shell does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpStep {
    /// Read more bytes and feed them.
    NeedMore,
    /// The connection now leads to the server: start TLS on it.
    Connected,
    /// Send [`HttpConnect::request`] again, on a new TCP connection to the proxy when
    /// `reconnect` (the proxy closes this one).
    Retry { reconnect: bool },
}

/// One `CONNECT` exchange, over as many proxy connections as authentication takes.
#[derive(Debug)]
pub struct HttpConnect {
    target: String,
    host_header: String,
    user_agent: String,
    auth: ProxyAuth,
    authorization: Option<String>,
    reader: ResponseReader,
    rounds: u32,
}

impl HttpConnect {
    pub fn new(host: &str, port: u16, user_agent: &str, auth: ProxyAuth) -> Self {
        let target = authority(host, port);
        let host_header = match port {
            443 => authority(host, port)
                .strip_suffix(":443")
                .unwrap_or(host)
                .to_string(),
            _ => target.clone(),
        };
        Self {
            target,
            host_header,
            user_agent: user_agent.to_string(),
            auth,
            authorization: None,
            reader: new_reader(),
            rounds: 0,
        }
    }

    /// The `host:port` asked for.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The request to send now (with the proxy's credentials after a 407).
    pub fn request(&self) -> Vec<u8> {
        let mut out = format!(
            "CONNECT {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive\r\nAccept-Encoding: identity\r\n",
            self.target,
            self.host_header,
            self.user_agent.replace(['\r', '\n'], ""),
        );
        if let Some(value) = &self.authorization {
            out.push_str(&format!("Proxy-Authorization: {value}\r\n"));
        }
        out.push_str("\r\n");
        out.into_bytes()
    }

    /// Bytes from the proxy; `fresh` serves an authentication answer, if one is due.
    pub fn feed(&mut self, bytes: &[u8], fresh: &Fresh) -> Result<HttpStep, ProxyError> {
        self.reader.feed(bytes)?;
        match self.reader.poll()? {
            None => Ok(HttpStep::NeedMore),
            Some(response) => self.on_response(response, fresh),
        }
    }

    /// The proxy closed the connection.
    pub fn eof(&mut self, fresh: &Fresh) -> Result<HttpStep, ProxyError> {
        let response = self.reader.finish_eof()?;
        match self.on_response(response, fresh)? {
            HttpStep::Retry { .. } => Ok(HttpStep::Retry { reconnect: true }),
            other => Ok(other),
        }
    }

    fn on_response(&mut self, response: Response, fresh: &Fresh) -> Result<HttpStep, ProxyError> {
        let head = response.head;
        if (200..300).contains(&head.status) {
            let rest = self.reader.take_rest();
            return match rest.is_empty() {
                true => Ok(HttpStep::Connected),
                false => Err(ProxyError::TrailingData(rest.len())),
            };
        }
        if head.status == 401 {
            if let Some(method) = self.auth.in_progress() {
                // tinyproxy's answer to wrong credentials.
                return Err(ProxyError::Rejected {
                    method: method.scheme(),
                });
            }
        }
        if head.status != 407 {
            return Err(ProxyError::Refused {
                status: head.status,
                reason: head.reason,
            });
        }
        self.rounds += 1;
        if self.rounds > MAX_ROUNDS {
            return Err(ProxyError::TooManyRounds(MAX_ROUNDS));
        }
        let challenges: Vec<_> = head
            .headers_named("Proxy-Authenticate")
            .flat_map(parse_challenges)
            .collect();
        let request = RequestLine {
            method: "CONNECT",
            uri: &self.target,
        };
        self.authorization = Some(self.auth.answer(&challenges, request, fresh)?);
        // A body with no length runs to the close (HTTP/1.0 proxies such as tinyproxy):
        // the next try needs a new connection, as when the proxy says it closes.
        let unframed =
            head.header("Content-Length").is_none() && head.header("Transfer-Encoding").is_none();
        let closing = unframed
            || head.wants_close()
            || head
                .header("Proxy-Connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        self.reader = new_reader();
        Ok(HttpStep::Retry { reconnect: closing })
    }
}

fn new_reader() -> ResponseReader {
    ResponseReader::new(
        Limits {
            max_head_bytes: 16 * 1024,
            max_headers: 100,
            max_body_bytes: 256 * 1024,
        },
        true,
    )
}
