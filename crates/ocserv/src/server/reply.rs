//! Answers on a client's TLS stream that never wait on a stalled peer for long.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use oc_proto::http::server::ServerResponse;
use oc_tls::TlsStream;
use tokio::io::AsyncWriteExt;
use tracing::info;

/// Time allowed for a goodbye (DISCONNECT, TLS close) to a client.
pub(super) const GOODBYE_LIMIT: Duration = Duration::from_secs(2);

/// Writes `bytes`, or fails with `TimedOut` once `limit` has passed.
pub(super) async fn write_limited(
    stream: &mut TlsStream,
    bytes: &[u8],
    limit: Duration,
) -> std::io::Result<()> {
    match tokio::time::timeout(limit, stream.write_all(bytes)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

pub(super) async fn send(stream: &mut TlsStream, resp: &ServerResponse) -> std::io::Result<()> {
    stream.write_all(&emitted(resp)).await
}

tokio::task_local! {
    /// `included-http-headers` for the answers of the connection this task serves (set
    /// when it is accepted; a reload applies to new connections).
    pub(super) static INCLUDED_HEADERS: Arc<Vec<(String, String)>>;
}

/// The bytes of `resp`, with the connection's `included-http-headers`.
fn emitted(resp: &ServerResponse) -> Vec<u8> {
    let mut out = Vec::new();
    let written = INCLUDED_HEADERS.try_with(|included| resp.emit_with(&mut out, included));
    if written.is_err() {
        resp.emit(&mut out);
    }
    out
}

/// Refuses a request with `status` and closes the connection; `why` goes to the log.
pub(super) async fn refuse(
    stream: &mut TlsStream,
    peer: SocketAddr,
    why: &str,
    status: (u16, &str),
) {
    info!("{peer}: request refused: {why}");
    let resp = ServerResponse::new(status.0, status.1).header("Connection", "close");
    answer_and_close(stream, &resp).await;
}

/// Sends a final answer and closes the TLS connection, without waiting on a stalled peer.
pub(super) async fn answer_and_close(stream: &mut TlsStream, resp: &ServerResponse) {
    let out = emitted(resp);
    let _ = write_limited(stream, &out, GOODBYE_LIMIT).await;
    let _ = tokio::time::timeout(GOODBYE_LIMIT, stream.shutdown()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_carry_the_connections_included_headers() {
        let resp = ServerResponse::new(200, "OK").header("X-Frame-Options", "SAMEORIGIN");
        let text = |out: Vec<u8>| String::from_utf8(out).unwrap();
        let included = Arc::new(vec![
            ("X-Frame-Options".to_owned(), "deny".to_owned()),
            ("Pragma".to_owned(), "no-cache".to_owned()),
        ]);
        let out = INCLUDED_HEADERS
            .scope(included, async { emitted(&resp) })
            .await;
        let out = text(out);
        // The response's own header wins; the others are added once.
        assert!(out.contains("X-Frame-Options: SAMEORIGIN\r\n"), "{out}");
        assert!(!out.contains("X-Frame-Options: deny"), "{out}");
        assert!(!out.contains("X-Frame-Options: DENY"), "{out}");
        assert!(out.contains("Pragma: no-cache\r\n"), "{out}");
        // Outside a connection's scope: the defaults only.
        let out = text(emitted(&ServerResponse::new(404, "Not Found")));
        assert!(
            out.contains("X-Frame-Options: DENY\r\n") && !out.contains("Pragma"),
            "{out}"
        );
    }
}
