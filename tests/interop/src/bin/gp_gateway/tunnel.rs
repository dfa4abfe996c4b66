//! The TLS tunnel: `GET /ssl-tunnel-connect.sslvpn?user=..&authcookie=..`, answered by
//! `START_TUNNEL` and then packets in GlobalProtect's 16-byte framing between the
//! connection and the tun device.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ferroconnect_interop::gateway::{
    flush_tun, lock, text, Answer, Throttle, Tls, TunHold, Upgraded,
};
use oc_net::{Coalescer, TunReader, TunWriter};
use oc_proto::gp::frame::{
    frame_in_place, FrameDecoder, FrameError, FrameKind, HEADER_LEN, KEEPALIVE,
};
use oc_proto::gp::server::TunnelRequest;
use oc_proto::gp::START_TUNNEL;
use oc_proto::http::server::ServerRequest;
use oc_proto::ip::source;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{is_ipv6, Gateway};

/// A client that says nothing (not even a keepalive, which upstream sends every 10 s) for
/// this long is gone.
const SILENCE: Duration = Duration::from_secs(60);

/// What the tunnel request decided.
#[derive(Debug)]
pub struct TunnelStart {
    authcookie: String,
    user: String,
    generation: u64,
}

/// A GET for the tunnel's path: `None` for any other path (not ours to answer).
pub fn request(
    gw: &Gateway,
    peer: SocketAddr,
    request: &ServerRequest,
) -> Option<Answer<TunnelStart>> {
    let tunnel = TunnelRequest::parse(&request.target, None)?;
    log!(
        "{peer}: tunnel request: user {:?}, {} headers",
        tunnel.user.as_deref().unwrap_or("-"),
        request.headers.len()
    );
    let session = gw
        .session(tunnel.authcookie.as_deref())
        .filter(|s| tunnel.user.as_deref() == Some(s.user.as_str()));
    let Some(session) = session else {
        log!("{peer}: tunnel refused: unknown session");
        // What real gateways answer a cookie they do not like.
        return Some(Answer::Final(text(502, "Bad Gateway", "text/plain", "")));
    };
    // Connecting the TLS tunnel ends the session's ESP keys, as on real gateways.
    if let Some(spi) = Gateway::drop_esp(&mut lock(&gw.state), &session.authcookie) {
        log!("{peer}: the TLS tunnel ends the session's ESP keys (SPI {spi:#010x})");
    }
    let generation = gw.link.claim_for(&session.authcookie);
    Some(Answer::Upgrade(TunnelStart {
        authcookie: session.authcookie,
        user: session.user,
        generation,
    }))
}

/// Answers `START_TUNNEL` and carries packets until the client goes, the session is
/// logged out or another tunnel replaces this one.
pub async fn run(gw: &Gateway, tunnel: Upgraded<TunnelStart>) -> Result<String, String> {
    let Upgraded {
        mut tls,
        peer,
        upgrade: start,
        early,
    } = tunnel;
    // On its own record: upstream reads exactly these 12 bytes first.
    tls.write_all(START_TUNNEL)
        .await
        .map_err(|e| format!("sending START_TUNNEL: {e}"))?;
    let common = &gw.config.common;
    log!(
        "{peer}: TLS tunnel {} for user {:?}: client {}, gateway {}",
        start.generation,
        start.user,
        common.client_addr,
        common.tunnel_addr
    );
    let result = match gw.link.hold(start.generation).await {
        Some(hold) => {
            hold.configure(
                common.tunnel_addr,
                common.client_addr,
                gw.config.tun_mtu(),
                None,
            )
            .await?;
            carry(gw, hold, &mut tls, peer, &early).await
        }
        None => Ok("replaced before it started".to_string()),
    };
    gw.link.released(start.generation);
    let _ = tls.shutdown().await;
    let end = result?;
    log!(
        "{peer}: TLS tunnel {} of session {}... ended: {end}",
        start.generation,
        start.authcookie.get(..6).unwrap_or_default()
    );
    Ok(format!("TLS tunnel ended: {end}"))
}

/// The packet loop.
async fn carry(
    gw: &Gateway,
    mut hold: TunHold<'_>,
    tls: &mut Tls,
    peer: SocketAddr,
    early: &[u8],
) -> Result<String, String> {
    let client = IpAddr::V4(gw.config.common.client_addr);
    let mut decoder = FrameDecoder::new();
    let mut from_tun = TunReader::new(HEADER_LEN);
    let mut to_tun = Link {
        writer: TunWriter::new(),
        coalescer: Box::default(),
        client,
        peer,
        keepalives: 0,
        spoofed: Throttle::default(),
    };
    let mut buf = vec![0u8; 64 * 1024];
    let device = hold.device();
    to_tun.input(&mut decoder, early, device, tls).await?;
    loop {
        tokio::select! {
            () = hold.replaced() => return Ok("replaced by a newer tunnel or logged out".into()),
            read = tokio::time::timeout(SILENCE, tls.read(&mut buf)) => {
                let n = match read {
                    Err(_) => return Ok(format!("the client was silent for {SILENCE:?}")),
                    Ok(Err(e)) => return Err(format!("reading from the client: {e}")),
                    Ok(Ok(0)) => return Ok(format!("closed by the client ({} keepalives)", to_tun.keepalives)),
                    Ok(Ok(n)) => n,
                };
                let bytes = buf.get(..n).unwrap_or_default();
                to_tun.input(&mut decoder, bytes, device, tls).await?;
            }
            read = from_tun.recv(device) => {
                let count = read.map_err(|e| format!("reading tun: {e}"))?;
                for i in 0..count {
                    let Some(packet) = from_tun.framed_mut(i) else { continue };
                    if packet.get(HEADER_LEN..).is_some_and(is_ipv6) {
                        continue;
                    }
                    let Ok(frame) = frame_in_place(packet) else { continue };
                    // One frame a record: upstream reads each record as one frame.
                    tls.write_all(frame).await.map_err(|e| format!("sending to the client: {e}"))?;
                }
            }
        }
    }
}

/// The client's side of the loop: frames to the tun device, keepalives answered.
struct Link {
    writer: TunWriter,
    coalescer: Box<Coalescer>,
    client: IpAddr,
    peer: SocketAddr,
    keepalives: u64,
    spoofed: Throttle,
}

impl Link {
    async fn input(
        &mut self,
        decoder: &mut FrameDecoder,
        bytes: &[u8],
        tun: &tun_rs::AsyncDevice,
        tls: &mut Tls,
    ) -> Result<(), String> {
        let mut answers = 0;
        let decoded = decoder.decode(bytes, |frame| {
            if frame.odd_tail {
                log!(
                    "{}: frame with unexpected header bytes 8..16 (taken)",
                    self.peer
                );
            }
            match frame.kind {
                FrameKind::Keepalive => answers += 1,
                FrameKind::Ipv4 | FrameKind::Ipv6 => {
                    let sender = source(frame.payload);
                    if sender != Some(self.client) {
                        self.spoofed.log(format_args!(
                            "{}: packet from {} (not the client's address); dropped",
                            self.peer,
                            sender.map_or("nowhere".to_string(), |a| a.to_string())
                        ));
                        return Ok::<_, FrameError>(());
                    }
                    if self.writer.is_full() {
                        flush_tun(&mut self.writer, tun, &mut self.coalescer);
                    }
                    self.writer.push(frame.payload);
                }
            }
            Ok(())
        });
        flush_tun(&mut self.writer, tun, &mut self.coalescer);
        if let Err(e) = decoded {
            log!(
                "{}: bad frame from the client: {e}; closing the tunnel",
                self.peer
            );
            return Err(format!("bad frame from the client: {e}"));
        }
        for _ in 0..answers {
            self.keepalives += 1;
            tls.write_all(&KEEPALIVE)
                .await
                .map_err(|e| format!("answering a keepalive: {e}"))?;
        }
        Ok(())
    }
}
