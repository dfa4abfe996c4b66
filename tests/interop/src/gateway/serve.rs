//! Serving connections: the TLS acceptor and handshake, the accept loop, the [`Site`] a
//! gateway plugs in, and HTTP on each connection (bounded request reading, responses) until
//! it closes or a request turns it into a tunnel.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use oc_proto::http::server::{
    Method, RequestError, RequestLimits, RequestReader, ServerRequest, ServerResponse,
};
use openssl::ssl::{Ssl, SslAcceptor, SslFiletype, SslMethod};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_openssl::SslStream;

use super::{MAX_CONNECTIONS, REQUEST_TIMEOUT};

/// A client's TLS connection.
pub type Tls = SslStream<TcpStream>;

/// A gateway's own part of serving a connection: its pages, and the tunnel a request may
/// turn the connection into.
pub trait Site: Send + Sync + 'static {
    /// What [`Site::answer`] hands [`Site::tunnel`] when a request asks for the tunnel.
    type Upgrade: Send;

    /// The bounds of each request read.
    fn limits(&self) -> RequestLimits;

    /// Whether the request of this request line is a tunnel's whose announced body is the
    /// tunnel's stream, not a body to wait for (Network Connect's `POST /dana/js` says
    /// `Content-Length: 256` and then speaks oNCP).
    fn streams_after_head(&self, _request_line: &str) -> bool {
        false
    }

    fn answer(&self, peer: SocketAddr, request: &ServerRequest) -> Answer<Self::Upgrade>;

    /// Runs the tunnel on the connection; the reason it ended.
    fn tunnel(
        &self,
        tunnel: Upgraded<Self::Upgrade>,
    ) -> impl Future<Output = Result<String, String>> + Send;
}

/// Accepts connections for ever ([`accept_loop`]), serving each: the TLS handshake with
/// `acceptor`, then `site`'s pages until the connection closes or a request turns it into a
/// tunnel.
pub async fn serve_site<S: Site>(listener: &TcpListener, acceptor: SslAcceptor, site: Arc<S>) {
    let acceptor = Arc::new(acceptor);
    accept_loop(listener, |tcp, peer| {
        let (acceptor, site) = (Arc::clone(&acceptor), Arc::clone(&site));
        async move { serve_connection(&acceptor, &*site, tcp, peer).await }
    })
    .await;
}

async fn serve_connection<S: Site>(
    acceptor: &SslAcceptor,
    site: &S,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Result<String, String> {
    let tls = accept_tls(acceptor, tcp).await?;
    let framing = Framing {
        limits: site.limits(),
        streams_after_head: &|line| site.streams_after_head(line),
    };
    let served = serve_http(tls, peer, framing, |request| site.answer(peer, request)).await?;
    match served {
        Served::Closed(why) => Ok(why),
        Served::Upgraded(tunnel) => site.tunnel(tunnel).await,
    }
}

pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<SslAcceptor, String> {
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
        .map_err(|e| format!("TLS set-up: {e}"))?;
    builder
        .set_certificate_chain_file(cert)
        .map_err(|e| format!("certificate {}: {e}", cert.display()))?;
    builder
        .set_private_key_file(key, SslFiletype::PEM)
        .map_err(|e| format!("key {}: {e}", key.display()))?;
    builder
        .check_private_key()
        .map_err(|e| format!("the key does not match the certificate: {e}"))?;
    Ok(builder.build())
}

/// The server side of the TLS handshake, bounded by [`REQUEST_TIMEOUT`].
pub async fn accept_tls(acceptor: &SslAcceptor, tcp: TcpStream) -> Result<Tls, String> {
    let ssl = Ssl::new(acceptor.context()).map_err(|e| format!("TLS: {e}"))?;
    let mut tls = SslStream::new(ssl, tcp).map_err(|e| format!("TLS: {e}"))?;
    tokio::time::timeout(REQUEST_TIMEOUT, Pin::new(&mut tls).accept())
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS handshake: {e}"))?;
    Ok(tls)
}

/// Accepts connections for ever, each served by `serve` in its own task (at most
/// [`MAX_CONNECTIONS`] at once); logs how each ended.
pub async fn accept_loop<F, Fut>(listener: &TcpListener, serve: F)
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = Result<String, String>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: wait rather than spin.
                log!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            log!("{peer}: refused, {MAX_CONNECTIONS} connections already open");
            continue;
        };
        let served = serve(tcp, peer);
        tokio::spawn(async move {
            let _slot = slot;
            match served.await {
                Ok(end) => log!("{peer}: connection ended: {end}"),
                Err(e) => log!("{peer}: connection failed: {e}"),
            }
        });
    }
}

// ---------------------------------------------------------------------------------------
// HTTP

/// What to do with a request.
#[derive(Debug)]
pub enum Answer<T> {
    /// Send this and wait for the next request.
    Reply(ServerResponse),
    /// Send this and close the connection.
    Final(ServerResponse),
    /// The connection becomes a tunnel: the caller takes it over with `T`.
    Upgrade(T),
}

/// How [`serve_http`] ended without an error.
#[derive(Debug)]
pub enum Served<T> {
    /// The connection is over (the reason).
    Closed(String),
    /// A request asked for the tunnel.
    Upgraded(Upgraded<T>),
}

/// A connection whose request asked for the tunnel.
#[derive(Debug)]
pub struct Upgraded<T> {
    pub tls: Tls,
    pub peer: SocketAddr,
    /// What the answer to the request decided.
    pub upgrade: T,
    /// What the client sent after its request.
    pub early: Vec<u8>,
}

/// How requests are read: their bounds, and which request lines announce a body that is
/// the tunnel's stream ([`Site::streams_after_head`]).
#[derive(Clone, Copy)]
pub struct Framing<'a> {
    pub limits: RequestLimits,
    pub streams_after_head: &'a (dyn Fn(&str) -> bool + Sync),
}

impl std::fmt::Debug for Framing<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Framing")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Serves requests on one connection, logging each, until it closes, an answer is final,
/// or one becomes a tunnel.
pub async fn serve_http<T>(
    mut tls: Tls,
    peer: SocketAddr,
    framing: Framing<'_>,
    mut answer: impl FnMut(&ServerRequest) -> Answer<T>,
) -> Result<Served<T>, String> {
    let mut pending = Vec::new();
    loop {
        let read = tokio::time::timeout(
            REQUEST_TIMEOUT,
            read_request(&mut tls, &mut pending, framing),
        )
        .await
        .map_err(|_| "no complete request in time".to_string())?;
        let (request, early) = match read {
            Ok(Some(read)) => read,
            Ok(None) => return Ok(Served::Closed("closed by the client".into())),
            Err(ReadError::Http(e)) => {
                let (status, reason) = e.status();
                send(&mut tls, peer, &ServerResponse::new(status, reason)).await?;
                return Err(format!("bad request: {e}"));
            }
            Err(ReadError::Io(e)) => return Err(e),
        };
        log!(
            "{peer}: {} {}",
            method_name(&request.method),
            request.target.escape_debug()
        );
        match answer(&request) {
            Answer::Reply(response) => send(&mut tls, peer, &response).await?,
            Answer::Final(response) => {
                send(&mut tls, peer, &response).await?;
                let _ = tls.shutdown().await;
                return Ok(Served::Closed("closed after the answer".into()));
            }
            Answer::Upgrade(upgrade) => {
                return Ok(Served::Upgraded(Upgraded {
                    tls,
                    peer,
                    upgrade,
                    early,
                }))
            }
        }
        // A request without a body may have been followed by the next one.
        pending = early;
    }
}

pub fn method_name(method: &Method) -> &str {
    match method {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Connect => "CONNECT",
        Method::Other(name) => name,
    }
}

/// Writes `response` (logging its status line).
pub async fn send(
    tls: &mut Tls,
    peer: SocketAddr,
    response: &ServerResponse,
) -> Result<(), String> {
    log!("{peer}: -> {} {}", response.status, response.reason);
    let mut out = Vec::new();
    response.emit(&mut out);
    tls.write_all(&out)
        .await
        .map_err(|e| format!("sending the response: {e}"))?;
    tls.flush()
        .await
        .map_err(|e| format!("sending the response: {e}"))
}

pub fn text(status: u16, reason: &str, content_type: &str, body: &str) -> ServerResponse {
    ServerResponse::new(status, reason)
        .header("Content-Type", content_type)
        .body(body.as_bytes().to_vec())
}

pub fn redirect(to: &str) -> ServerResponse {
    ServerResponse::new(302, "Found").header("Location", to)
}

#[derive(Debug)]
pub enum ReadError {
    /// A request the codec refused: answer with its status, then close.
    Http(RequestError),
    Io(String),
}

impl From<RequestError> for ReadError {
    fn from(e: RequestError) -> Self {
        Self::Http(e)
    }
}

/// Reads one request; `None` if the client closed between requests. Also returns what
/// came after a request without a body: a tunnel request may be followed by PPP at once,
/// which the codec (rightly, for HTTP) would refuse as pipelining, so the head is framed
/// here and only the head and body go to the codec.
pub async fn read_request(
    tls: &mut Tls,
    pending: &mut Vec<u8>,
    framing: Framing<'_>,
) -> Result<Option<(ServerRequest, Vec<u8>)>, ReadError> {
    let limits = framing.limits;
    let max_head = limits.max_head_bytes;
    let head_len = loop {
        if let Some(at) = find(pending, b"\r\n\r\n") {
            break at + 4;
        }
        if pending.len() > max_head {
            return Err(RequestError::HeadTooLarge { limit: max_head }.into());
        }
        if read_more(tls, pending).await? == 0 {
            return match pending.is_empty() {
                true => Ok(None),
                false => Err(ReadError::Io("connection closed mid-request".into())),
            };
        }
    };
    let after_head = pending.split_off(head_len);
    let line_end = find(pending, b"\r\n").unwrap_or(0);
    let line = String::from_utf8_lossy(pending.get(..line_end).unwrap_or_default());
    if (framing.streams_after_head)(&line) {
        // The announced body is the tunnel: the head goes to the codec without its length.
        *pending = without_content_length(pending);
    }
    let mut reader = RequestReader::new(limits);
    reader.feed(pending)?;
    pending.clear();
    if let Some(request) = reader.poll()? {
        return Ok(Some((request, after_head)));
    }
    // A body follows: the codec frames it by Content-Length (and bounds it).
    reader.feed(&after_head)?;
    loop {
        if let Some(request) = reader.poll()? {
            return Ok(Some((request, Vec::new())));
        }
        let mut more = Vec::new();
        if read_more(tls, &mut more).await? == 0 {
            return Err(ReadError::Io("connection closed mid-body".into()));
        }
        reader.feed(&more)?;
    }
}

async fn read_more(tls: &mut Tls, into: &mut Vec<u8>) -> Result<usize, ReadError> {
    let mut chunk = [0u8; 4096];
    let n = tls
        .read(&mut chunk)
        .await
        .map_err(|e| ReadError::Io(format!("reading: {e}")))?;
    into.extend_from_slice(chunk.get(..n).unwrap_or_default());
    Ok(n)
}

/// A request head without its `Content-Length` lines.
fn without_content_length(head: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len());
    for line in head.split_inclusive(|b| *b == b'\n') {
        let name = line.split(|b| *b == b':').next().unwrap_or_default();
        if !name.eq_ignore_ascii_case(b"content-length") {
            out.extend_from_slice(line);
        }
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
