//! The server's UDP side: one socket for every session's DTLS channel.
//!
//! A dispatcher task reads every datagram. A DTLS ClientHello names its tunnel by the id the
//! CONNECT answer granted (`X-DTLS-App-ID`), which maps the sender's address to that tunnel;
//! later datagrams follow the address. Anything else is dropped and counted, without
//! logging per datagram. Each tunnel runs its own [`TunnelDtls`] on the datagrams it is
//! given, and sends through the shared socket.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oc_proto::anyconnect::dtls_cipher::Bulk;
use oc_proto::anyconnect::dtls_hello::{client_hello_id, DTLS_ID_LEN};
use oc_proto::anyconnect::server_session::ServerSession;
use oc_tls::dtls::{
    legacy_server_context, psk_server_context, DtlsChannel, DtlsError, DtlsState, LegacyCipher,
    PSK_LEN,
};
use openssl::ssl::SslContext;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// A datagram and who sent it.
pub type Datagram = (SocketAddr, Vec<u8>);
pub type DtlsId = [u8; DTLS_ID_LEN];

/// Datagrams queued towards one tunnel before new ones are dropped.
pub const TUNNEL_QUEUE: usize = 256;
/// Smallest datagram that can be a DTLS record (its header alone is 13 bytes).
const MIN_DATAGRAM: usize = 13;

/// Which tunnel owns which DTLS id and which client address.
#[derive(Debug, Default)]
pub struct DtlsRegistry {
    by_id: HashMap<DtlsId, mpsc::Sender<Datagram>>,
    by_addr: HashMap<SocketAddr, DtlsId>,
}

impl DtlsRegistry {
    pub fn register(&mut self, id: DtlsId, tx: mpsc::Sender<Datagram>) {
        self.by_id.insert(id, tx);
    }

    pub fn unregister(&mut self, id: &DtlsId) {
        self.by_id.remove(id);
        self.by_addr.retain(|_, owner| owner != id);
    }

    /// The queue for a datagram from `peer`, learning the address from a ClientHello.
    fn route(&mut self, peer: SocketAddr, datagram: &[u8]) -> Option<&mpsc::Sender<Datagram>> {
        if let Some(id) = client_hello_id(datagram) {
            let id: DtlsId = id.try_into().ok()?;
            if self.by_id.contains_key(&id) {
                // A new handshake moves the tunnel to this address (e.g. after NAT rebinding).
                self.by_addr.retain(|_, owner| *owner != id);
                self.by_addr.insert(peer, id);
                return self.by_id.get(&id);
            }
            return None;
        }
        let id = self.by_addr.get(&peer)?;
        self.by_id.get(id)
    }
}

/// What the UDP port saw, for logs and (later) metrics.
#[derive(Debug, Default)]
pub struct UdpCounters {
    pub delivered: AtomicU64,
    pub dropped: AtomicU64,
}

/// Reads the shared socket and hands each datagram to its tunnel. Runs for the server's life.
pub async fn run_dispatcher(
    socket: Arc<UdpSocket>,
    registry: Arc<Mutex<DtlsRegistry>>,
    counters: Arc<UdpCounters>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                debug!("UDP receive: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let datagram = buf.get(..n).unwrap_or_default();
        let delivered = n >= MIN_DATAGRAM && {
            let mut reg = registry
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            reg.route(peer, datagram)
                .is_some_and(|tx| tx.try_send((peer, datagram.to_vec())).is_ok())
        };
        let counter = if delivered {
            &counters.delivered
        } else {
            &counters.dropped
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The server's DTLS contexts, built once.
#[allow(missing_debug_implementations)]
pub struct DtlsContexts {
    pub psk: SslContext,
    pub legacy: SslContext,
}

impl DtlsContexts {
    pub fn new() -> Result<Self, DtlsError> {
        Ok(Self {
            psk: psk_server_context()?,
            legacy: legacy_server_context()?,
        })
    }
}

/// How a tunnel's DTLS channels are keyed (no `Debug`: it holds keys).
#[allow(missing_debug_implementations)]
pub enum Keying {
    /// PSK-NEGOTIATE, optionally limited to one suite (`match-tls-dtls-ciphers`).
    Psk {
        ctx: SslContext,
        key: [u8; PSK_LEN],
        ciphers: Option<&'static str>,
    },
    /// Resumption of the client's master secret under the granted session id.
    Legacy {
        ctx: SslContext,
        session_id: DtlsId,
        master_secret: [u8; 48],
        cipher: LegacyCipher,
    },
}

impl Keying {
    fn channel(&self, link_mtu: u32, ipv6: bool) -> Result<DtlsChannel, DtlsError> {
        match self {
            Keying::Psk { ctx, key, ciphers } => {
                DtlsChannel::psk_server(ctx, key, *ciphers, link_mtu, ipv6)
            }
            Keying::Legacy {
                ctx,
                session_id,
                master_secret,
                cipher,
            } => {
                DtlsChannel::legacy_server(ctx, session_id, master_secret, *cipher, link_mtu, ipv6)
            }
        }
    }
}

/// The PSK suite with the TLS session's bulk cipher, for `match-tls-dtls-ciphers`.
pub fn psk_cipher_matching(tls: Bulk) -> Option<&'static str> {
    match tls {
        Bulk::Aes256Gcm => Some("PSK-AES256-GCM-SHA384"),
        Bulk::Aes128Gcm => Some("PSK-AES128-GCM-SHA256"),
        // TLS_CHACHA20_POLY1305_SHA256 is the only other TLS 1.3 suite.
        Bulk::Other => Some("PSK-CHACHA20-POLY1305"),
        Bulk::Aes128CbcSha1 | Bulk::Aes256CbcSha1 => None,
    }
}

/// One tunnel's DTLS channel.
pub struct TunnelDtls {
    keying: Keying,
    socket: Arc<UdpSocket>,
    rx: mpsc::Receiver<Datagram>,
    channel: Option<(SocketAddr, DtlsChannel)>,
    link_mtu: u32,
    /// Data goes over UDP only while the client was heard on it this recently.
    switch_to_tcp: Duration,
    last_rx: Option<Instant>,
    data_mtu: usize,
}

impl std::fmt::Debug for TunnelDtls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelDtls")
            .field("peer", &self.channel.as_ref().map(|(p, _)| *p))
            .finish()
    }
}

impl TunnelDtls {
    pub fn new(
        keying: Keying,
        socket: Arc<UdpSocket>,
        rx: mpsc::Receiver<Datagram>,
        link_mtu: u32,
        switch_to_tcp: Duration,
    ) -> Self {
        Self {
            keying,
            socket,
            rx,
            channel: None,
            link_mtu,
            switch_to_tcp,
            last_rx: None,
            data_mtu: 0,
        }
    }

    /// Next datagram for this tunnel (never ends while the registration lives).
    pub async fn recv(&mut self) -> Option<Datagram> {
        self.rx.recv().await
    }

    /// True when a tunnel packet of `len` bytes should go over DTLS now.
    pub fn carries(&self, len: usize, now: Instant) -> bool {
        let established = self
            .channel
            .as_ref()
            .is_some_and(|(_, c)| c.state() == DtlsState::Established);
        let recent = self
            .last_rx
            .is_some_and(|t| now.saturating_duration_since(t) < self.switch_to_tcp);
        established && recent && len < self.data_mtu
    }

    pub async fn on_datagram(
        &mut self,
        peer: SocketAddr,
        datagram: &[u8],
        session: &mut ServerSession,
        on_packet: impl FnMut(&[u8]),
    ) {
        let hello = client_hello_id(datagram).is_some();
        let same_handshake = self
            .channel
            .as_ref()
            .is_some_and(|(p, c)| *p == peer && c.state() == DtlsState::Handshaking);
        if hello && !same_handshake {
            // A (re)handshake: a fresh association replaces the old one.
            match self.keying.channel(self.link_mtu, peer.is_ipv6()) {
                Ok(c) => self.channel = Some((peer, c)),
                Err(e) => {
                    warn!("{peer}: cannot start DTLS: {e}");
                    return;
                }
            }
        }
        let Some((chan_peer, channel)) = self.channel.as_mut() else {
            return;
        };
        if *chan_peer != peer {
            return;
        }
        let was_handshaking = channel.state() == DtlsState::Handshaking;
        if let Err(e) = channel.handle_datagram(datagram) {
            debug!("{peer}: DTLS handshake failed: {e}");
            self.channel = None;
            return;
        }
        if was_handshaking && channel.state() == DtlsState::Established {
            self.data_mtu = channel.data_mtu().saturating_sub(1);
            info!("{peer}: DTLS established ({})", channel.cipher());
        }
        self.last_rx = Some(Instant::now());
        self.flush().await;
        self.drain(session, on_packet);
    }

    fn drain(&mut self, session: &mut ServerSession, mut on_packet: impl FnMut(&[u8])) {
        let Some((_, channel)) = self.channel.as_mut() else {
            return;
        };
        let result = channel.drain(|record| {
            if let Err(e) = session.handle_dtls(record, Instant::now(), &mut on_packet) {
                debug!("DTLS record ignored: {e}");
            }
        });
        if let Err(e) = result {
            debug!("DTLS channel closed: {e}");
            self.channel = None;
        }
    }

    /// Encrypts one record (type byte + payload) and sends it.
    pub async fn send_record(&mut self, record: &[u8]) -> bool {
        let Some((_, channel)) = self.channel.as_mut() else {
            return false;
        };
        if channel.send(record).is_err() {
            return false;
        }
        self.flush().await;
        true
    }

    async fn flush(&mut self) {
        let Some((peer, channel)) = self.channel.as_mut() else {
            return;
        };
        while let Some(datagram) = channel.poll_transmit() {
            // UDP is lossy by nature: a failed send is a lost datagram, nothing more.
            let _ = self.socket.send_to(&datagram, *peer).await;
        }
    }

    /// When the handshake wants a retransmission.
    pub fn deadline(&self) -> Option<Instant> {
        self.channel
            .as_ref()
            .and_then(|(_, c)| c.poll_timeout())
            .map(|d| Instant::now() + d)
    }

    pub async fn on_deadline(&mut self) {
        if let Some((_, channel)) = self.channel.as_mut() {
            if channel.handle_timeout().is_err() {
                self.channel = None;
                return;
            }
        }
        self.flush().await;
    }
}

/// Waits for the next datagram of a tunnel's DTLS channel, or forever without one.
pub async fn recv(dtls: Option<&mut TunnelDtls>) -> Option<Datagram> {
    match dtls {
        Some(d) => d.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// A real ClientHello naming `id`, from our DTLS client.
    fn hello(id: &DtlsId) -> Vec<u8> {
        let ctx = oc_tls::dtls::psk_client_context().unwrap();
        DtlsChannel::psk_client(&ctx, &[1; PSK_LEN], id, 1500, false)
            .unwrap()
            .poll_transmit()
            .unwrap()
    }

    #[test]
    fn hello_maps_the_address_and_strangers_are_dropped() {
        let mut reg = DtlsRegistry::default();
        let (tx, mut rx) = mpsc::channel(4);
        let id = [7u8; 32];
        reg.register(id, tx);
        let a: SocketAddr = "198.18.0.2:5000".parse().unwrap();
        let b: SocketAddr = "198.18.0.3:5000".parse().unwrap();
        // Unknown address, not a hello: dropped.
        assert!(reg.route(a, &[23u8; 40]).is_none());
        // A hello with a foreign id: dropped.
        assert!(reg.route(a, &hello(&[8u8; 32])).is_none());
        // Our id: mapped, then records from that address follow.
        reg.route(a, &hello(&id))
            .unwrap()
            .try_send((a, vec![1]))
            .unwrap();
        assert!(reg.route(a, &[23u8; 40]).is_some());
        assert_eq!(rx.try_recv().unwrap(), (a, vec![1]));
        // The client moved: the old address no longer routes.
        assert!(reg.route(b, &hello(&id)).is_some());
        assert!(reg.route(a, &[23u8; 40]).is_none());
        reg.unregister(&id);
        assert!(reg.route(b, &[23u8; 40]).is_none());
        assert!(reg.route(b, &hello(&id)).is_none());
    }
}
