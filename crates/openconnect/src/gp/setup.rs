//! The gateway's requests around the tunnel, as upstream's `gpst_setup` makes them: the
//! configuration (`getconfig.esp`), the TLS tunnel's start, the logout (the HIP check is
//! `hip`'s).

use std::net::{Ipv4Addr, Ipv6Addr};

use oc_proto::gp::client::{getconfig_request, logout_request, tunnel_request};
use oc_proto::gp::{
    read_reply, read_tunnel_answer, ClientInfo, GatewayConfig, GpCookie, GpError, TunnelAnswer,
};
use oc_proto::http::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, info, warn};

use crate::cli::Options;
use crate::error::ClientError;
use crate::esp_channel::tunnel_mtu;
use crate::transport::{Endpoint, HttpsConnection};
use crate::web::{exchange, CookieJar};

/// The answer to the tunnel request is at most this long before `START_TUNNEL` or a
/// refusal's status line shows.
const MAX_TUNNEL_ANSWER: usize = 4096;

/// A GlobalProtect error as the client's: refusals end the session (exit 2).
pub(super) fn gp_error(e: GpError) -> ClientError {
    if e.is_refusal() {
        ClientError::CookieRejected(e.to_string())
    } else {
        ClientError::Gp(e)
    }
}

/// One request on a new connection, with the session's HTTP cookies; the answer's status
/// and body, and the connection.
pub(super) async fn post(
    endpoint: &Endpoint,
    jar: &mut CookieJar,
    request: &Request,
) -> Result<(u16, Vec<u8>, HttpsConnection), ClientError> {
    let mut conn = endpoint.connect().await?;
    let resp = exchange(endpoint, &mut conn, jar, request).await?;
    Ok((resp.head.status, resp.body, conn))
}

/// `getconfig.esp`: the tunnel's configuration and ESP keys. `previous` holds the
/// addresses of the tunnel being replaced, asked for again. The MTU is completed when the
/// gateway sent none (real gateways send 0), as upstream computes it.
pub(super) async fn get_config(
    opts: &Options,
    endpoint: &Endpoint,
    client: &ClientInfo,
    cookie: &GpCookie,
    jar: &mut CookieJar,
    previous: Option<(Option<Ipv4Addr>, Option<Ipv6Addr>)>,
) -> Result<GatewayConfig, ClientError> {
    let host = endpoint.url.host_header();
    let request = getconfig_request(&host, client, cookie, previous);
    let (status, body, conn) = post(endpoint, jar, &request).await?;
    let reply = read_reply(status, &body).map_err(gp_error)?;
    let mut config =
        GatewayConfig::parse(&reply, !opts.no_dtls, !opts.disable_ipv6).map_err(gp_error)?;
    for note in &config.notes {
        if note.starts_with("Server's ESP") || note.starts_with("Potential IPv6") {
            warn!("{note}");
        } else {
            debug!("{note}");
        }
    }
    if let Some(rekey) = config.rekey {
        info!(
            "Tunnel timeout (rekey interval) is {} minutes.",
            rekey.as_secs() / 60
        );
    }
    if let Some(mtu) = opts.mtu {
        config.ip.mtu = mtu;
    } else if config.ip.mtu == 0 {
        let esp = config.esp_magic().is_some();
        config.ip.mtu = tunnel_mtu(opts, &conn, esp);
        let over = if esp {
            "ESP tunnel".to_string()
        } else if opts.no_dtls {
            "SSL tunnel. ESP disabled".to_string()
        } else {
            "SSL tunnel. No ESP keys received".to_string()
        };
        warn!("No MTU received. Calculated {} for {over}", config.ip.mtu);
    }
    Ok(config)
}

/// Connects the TLS tunnel: the request, then `START_TUNNEL`; the connection and what
/// came after it (the first frames).
pub(super) async fn connect_tls_tunnel(
    endpoint: &Endpoint,
    path: &str,
    cookie: &GpCookie,
) -> Result<(HttpsConnection, Vec<u8>), ClientError> {
    debug!("Connecting to HTTPS tunnel endpoint ...");
    let mut conn = endpoint.connect().await?;
    conn.tls
        .write_all(&tunnel_request(path, cookie))
        .await
        .map_err(ClientError::io("sending the tunnel request"))?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = conn
            .tls
            .read(&mut buf)
            .await
            .map_err(ClientError::io("reading the tunnel's answer"))?;
        if n == 0 {
            return Err(gp_error(GpError::TunnelClosed));
        }
        answer.extend_from_slice(buf.get(..n).unwrap_or_default());
        match read_tunnel_answer(&answer).map_err(gp_error)? {
            TunnelAnswer::Started { rest } => {
                return Ok((conn, answer.split_off(rest.min(answer.len()))));
            }
            TunnelAnswer::NeedMore if answer.len() < MAX_TUNNEL_ANSWER => {}
            TunnelAnswer::NeedMore => {
                return Err(gp_error(GpError::TunnelRefused(
                    String::from_utf8_lossy(&answer).chars().take(80).collect(),
                )))
            }
        }
    }
}

/// `logout.esp`, so that the cookie dies with the session.
pub(super) async fn logout(endpoint: &Endpoint, cookie: &GpCookie, jar: &mut CookieJar) {
    let request = logout_request(&endpoint.url.host_header(), cookie);
    let result = match post(endpoint, jar, &request).await {
        Ok((status, body, _)) => read_reply(status, &body).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(_) => info!("Logout successful."),
        Err(e) => warn!("Logout failed. ({e})"),
    }
}
