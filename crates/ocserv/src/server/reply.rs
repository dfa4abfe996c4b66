//! Answers on a client's TLS stream that never wait on a stalled peer for long.

use std::net::SocketAddr;
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
    let mut out = Vec::new();
    resp.emit(&mut out);
    stream.write_all(&out).await
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
    let mut out = Vec::new();
    resp.emit(&mut out);
    let _ = write_limited(stream, &out, GOODBYE_LIMIT).await;
    let _ = tokio::time::timeout(GOODBYE_LIMIT, stream.shutdown()).await;
}
