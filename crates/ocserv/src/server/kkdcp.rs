//! The Kerberos KDC proxy (`kkdcp`, MS-KKDCP): a client's Kerberos message posted over
//! HTTPS goes to the realm's KDC over UDP or TCP, and the KDC's answer comes back in the
//! HTTP reply, so users get tickets where only the VPN's HTTPS port is reachable.

use std::time::Duration;

use oc_proto::http::server::{ServerRequest, ServerResponse};
use oc_proto::kkdcp::{frame_udp_reply, KdcRoute, KdcTransport, ProxyMessage, MAX_MESSAGE};
use oc_tls::TlsStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tracing::{debug, info};

use super::login::Login;
use super::reply::{answer_and_close, send};
use super::Server;

/// How long a KDC may take to answer (ocserv's 20 s).
const KDC_TIMEOUT: Duration = Duration::from_secs(20);

impl Server {
    /// A KDC proxy request to `routes`' path; false when the connection is done.
    pub(super) async fn kkdcp_request(
        &self,
        stream: &mut TlsStream,
        request: &ServerRequest,
        routes: &[&KdcRoute],
        login: &Login<'_>,
    ) -> bool {
        let peer = login.peer;
        let points = login.rt.config.ban_points_kkdcp;
        self.add_ban_points(peer, points, "KDC proxy requests");
        match relay(request, routes).await {
            Ok((reply, route)) => {
                debug!(
                    "{peer}: KDC proxy: {} reply bytes from {}",
                    reply.len(),
                    route.kdc
                );
                let mut response = ServerResponse::new(200, "OK")
                    .header("Content-Type", "application/kerberos")
                    .body(ProxyMessage::encode_reply(&reply));
                if request.http10 {
                    response = response.header("Connection", "close");
                    answer_and_close(stream, &response).await;
                    return false;
                }
                send(stream, &response).await.is_ok()
            }
            Err(why) => {
                info!("{peer}: KDC proxy request failed: {why}");
                answer_and_close(stream, &ServerResponse::new(502, "Bad Gateway")).await;
                false
            }
        }
    }
}

/// The posted message to the realm's KDC (the one asked for, else the path's first); its
/// answer, framed for the client.
async fn relay<'r>(
    request: &ServerRequest,
    routes: &[&'r KdcRoute],
) -> Result<(Vec<u8>, &'r KdcRoute), String> {
    let message = ProxyMessage::decode(&request.body).map_err(|e| e.to_string())?;
    let route = message
        .target_domain
        .as_deref()
        .and_then(|realm| routes.iter().find(|r| r.realm == realm))
        .or_else(|| routes.first())
        .ok_or("no KDC for this path")?;
    let exchange = async {
        match route.transport {
            KdcTransport::Udp => udp_exchange(route, &message).await,
            KdcTransport::Tcp => tcp_exchange(route, &message).await,
        }
    };
    let reply = tokio::time::timeout(KDC_TIMEOUT, exchange)
        .await
        .map_err(|_| {
            format!(
                "the KDC {} did not answer in {} s",
                route.kdc,
                KDC_TIMEOUT.as_secs()
            )
        })??;
    Ok((reply, route))
}

async fn udp_exchange(route: &KdcRoute, message: &ProxyMessage) -> Result<Vec<u8>, String> {
    let failed = |e: std::io::Error| format!("UDP to the KDC {}: {e}", route.kdc);
    let local = if route.kdc.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = UdpSocket::bind(local).await.map_err(failed)?;
    socket.connect(route.kdc).await.map_err(failed)?;
    socket.send(message.udp_payload()).await.map_err(failed)?;
    let mut buf = vec![0u8; MAX_MESSAGE + 1];
    let n = socket.recv(&mut buf).await.map_err(failed)?;
    frame_udp_reply(buf.get(..n).unwrap_or_default()).map_err(|e| e.to_string())
}

async fn tcp_exchange(route: &KdcRoute, message: &ProxyMessage) -> Result<Vec<u8>, String> {
    let failed = |e: std::io::Error| format!("TCP to the KDC {}: {e}", route.kdc);
    let mut kdc = TcpStream::connect(route.kdc).await.map_err(failed)?;
    kdc.write_all(&message.kerb_message).await.map_err(failed)?;
    let mut prefix = [0u8; 4];
    kdc.read_exact(&mut prefix).await.map_err(failed)?;
    let len = usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX);
    if len == 0 || len > MAX_MESSAGE {
        return Err(format!("the KDC {} sent a {len}-byte message", route.kdc));
    }
    let mut reply = vec![0u8; 4 + len];
    reply[..4].copy_from_slice(&prefix);
    kdc.read_exact(&mut reply[4..]).await.map_err(failed)?;
    Ok(reply)
}
