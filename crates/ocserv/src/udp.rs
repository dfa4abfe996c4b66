//! The server's UDP side: one socket for every session's DTLS channel.
//!
//! A dispatcher task reads every datagram. A DTLS ClientHello names its tunnel by the id the
//! CONNECT answer granted (`X-DTLS-App-ID`), which maps the sender's address to that tunnel;
//! later datagrams follow the address. Anything else is dropped and counted by reason, without
//! logging per datagram (a summary line every 10 s at most). Each tunnel runs its own
//! [`TunnelDtls`] on the datagrams it is given, and sends through the shared socket.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oc_net::udp::{
    datagram_count, datagrams, effective_stride, last_datagram_len, BatchSocket, RecvBatch,
    SendBatch,
};
use oc_proto::anyconnect::dtls_cipher::Bulk;
use oc_proto::anyconnect::dtls_hello::{client_hello_id, DTLS_ID_LEN};
use oc_proto::anyconnect::frame::PacketType;
use oc_proto::anyconnect::server_session::ServerSession;
use oc_tls::dtls::{
    legacy_server_context, psk_server_context, DtlsChannel, DtlsError, DtlsState, LegacyCipher,
    PSK_LEN,
};
use openssl::ssl::SslContext;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};

use crate::addr::canonical_addr;

use crate::server::lock;

/// Datagrams from one sender: one, or a run of `stride`-byte datagrams (the last may be
/// shorter) that the kernel received together (GRO).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub peer: SocketAddr,
    pub bytes: Vec<u8>,
    pub stride: usize,
}

impl Datagram {
    /// The datagrams one by one.
    pub fn each(&self) -> impl Iterator<Item = &[u8]> {
        datagrams(&self.bytes, self.stride)
    }
}
pub type DtlsId = [u8; DTLS_ID_LEN];

/// Datagrams queued towards one tunnel before new ones are dropped.
pub const TUNNEL_QUEUE: usize = 1024;
/// After a tunnel's first DTLS handshake, a keepalive goes out this much later.
/// openconnect 9.x brings its tun device up only after a main-loop pass with work to do: when
/// the whole handshake completes inside its first DTLS call (a fast server), it then sleeps
/// 1 s with the tunnel down unless a packet arrives. The keepalive is that packet.
const FIRST_NUDGE: Duration = Duration::from_millis(25);
/// Smallest datagram that can be a DTLS record (its header alone is 13 bytes).
const MIN_DATAGRAM: usize = 13;
/// Largest datagram that can be a DTLS record: the 13-byte header and at most 2^14 + 2048
/// bytes of ciphertext (RFC 6347). Clients keep their datagrams under the path MTU, so
/// anything longer is junk and is dropped before the registry is even looked at.
const MAX_DATAGRAM: usize = 13 + (1 << 14) + 2048;
/// How often the dispatcher logs what it dropped (only when it dropped something).
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// Which tunnel owns which DTLS id and which client addresses: the address of its
/// established channel (active) and of a handshake in progress (pending). A new handshake
/// never takes the active address away; only its completion does (a replayed or spoofed
/// ClientHello cannot finish a handshake without the key).
#[derive(Debug, Default)]
pub struct DtlsRegistry {
    by_id: HashMap<DtlsId, Owner>,
    by_addr: HashMap<SocketAddr, DtlsId>,
}

#[derive(Debug)]
struct Owner {
    tx: mpsc::Sender<Datagram>,
    active: Option<SocketAddr>,
    pending: Option<SocketAddr>,
}

impl DtlsRegistry {
    pub fn register(&mut self, id: DtlsId, tx: mpsc::Sender<Datagram>) {
        self.by_id.insert(
            id,
            Owner {
                tx,
                active: None,
                pending: None,
            },
        );
    }

    pub fn unregister(&mut self, id: &DtlsId) {
        self.by_id.remove(id);
        self.by_addr.retain(|_, owner| owner != id);
    }

    /// Whether tunnel `id` has an established DTLS channel.
    pub fn established(&self, id: &DtlsId) -> bool {
        self.by_id.get(id).is_some_and(|o| o.active.is_some())
    }

    /// The handshake from `peer` completed: it becomes the tunnel's only address.
    pub fn promote(&mut self, id: &DtlsId, peer: SocketAddr) {
        let Some(owner) = self.by_id.get_mut(id) else {
            return;
        };
        for old in [owner.active, owner.pending].into_iter().flatten() {
            if old != peer {
                self.by_addr.remove(&old);
            }
        }
        owner.active = Some(peer);
        owner.pending = None;
        self.by_addr.insert(peer, *id);
    }

    /// The queue for a datagram from `peer`, learning a pending address from a ClientHello.
    fn route(&mut self, peer: SocketAddr, datagram: &[u8]) -> Option<&mpsc::Sender<Datagram>> {
        if let Some(id) = client_hello_id(datagram) {
            let id: DtlsId = id.try_into().ok()?;
            let owner = self.by_id.get_mut(&id)?;
            if owner.active != Some(peer) && owner.pending != Some(peer) {
                // One pending address per tunnel: the previous one is forgotten.
                if let Some(old) = owner.pending.replace(peer) {
                    self.by_addr.remove(&old);
                }
                self.by_addr.insert(peer, id);
            }
            return self.by_id.get(&id).map(|o| &o.tx);
        }
        let id = self.by_addr.get(&peer)?;
        self.by_id.get(id).map(|o| &o.tx)
    }
}

/// What the UDP port saw, for logs and metrics: datagrams handed to a tunnel, and the
/// dropped ones by reason. Every datagram the dispatcher reads is counted exactly once,
/// empty ones included.
#[derive(Debug, Default)]
pub struct UdpCounters {
    pub delivered: AtomicU64,
    /// Shorter than a DTLS record header (`MIN_DATAGRAM`, 13 bytes), empty ones included.
    pub too_short: AtomicU64,
    /// Longer than any DTLS record (`MAX_DATAGRAM`).
    pub oversized: AtomicU64,
    /// From an address no tunnel owns, and not a ClientHello naming a registered tunnel
    /// (or its tunnel is going away).
    pub unmatched: AtomicU64,
    /// The tunnel's queue ([`TUNNEL_QUEUE`]) was full.
    pub queue_full: AtomicU64,
}

/// What became of one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Delivered,
    TooShort,
    Oversized,
    Unmatched,
    QueueFull,
}

impl Fate {
    pub const ALL: [Self; 5] = [
        Self::Delivered,
        Self::TooShort,
        Self::Oversized,
        Self::Unmatched,
        Self::QueueFull,
    ];

    /// The name metrics use (`fate="..."`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::TooShort => "too_short",
            Self::Oversized => "oversized",
            Self::Unmatched => "unmatched",
            Self::QueueFull => "queue_full",
        }
    }
}

impl UdpCounters {
    pub fn count(&self, fate: Fate) {
        self.count_n(fate, 1);
    }

    /// `n` datagrams that met the same fate (a GRO run).
    pub fn count_n(&self, fate: Fate, n: u64) {
        let counter = match fate {
            Fate::Delivered => &self.delivered,
            Fate::TooShort => &self.too_short,
            Fate::Oversized => &self.oversized,
            Fate::Unmatched => &self.unmatched,
            Fate::QueueFull => &self.queue_full,
        };
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> UdpStats {
        UdpStats {
            delivered: self.delivered.load(Ordering::Relaxed),
            too_short: self.too_short.load(Ordering::Relaxed),
            oversized: self.oversized.load(Ordering::Relaxed),
            unmatched: self.unmatched.load(Ordering::Relaxed),
            queue_full: self.queue_full.load(Ordering::Relaxed),
        }
    }
}

/// The counters at one moment, or their change over a period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpStats {
    pub delivered: u64,
    pub too_short: u64,
    pub oversized: u64,
    pub unmatched: u64,
    pub queue_full: u64,
}

impl UdpStats {
    /// The datagrams that met `fate`.
    pub fn get(&self, fate: Fate) -> u64 {
        match fate {
            Fate::Delivered => self.delivered,
            Fate::TooShort => self.too_short,
            Fate::Oversized => self.oversized,
            Fate::Unmatched => self.unmatched,
            Fate::QueueFull => self.queue_full,
        }
    }

    pub fn dropped(&self) -> u64 {
        self.too_short + self.oversized + self.unmatched + self.queue_full
    }

    /// What changed since `earlier`.
    pub fn since(&self, earlier: &UdpStats) -> UdpStats {
        UdpStats {
            delivered: self.delivered.wrapping_sub(earlier.delivered),
            too_short: self.too_short.wrapping_sub(earlier.too_short),
            oversized: self.oversized.wrapping_sub(earlier.oversized),
            unmatched: self.unmatched.wrapping_sub(earlier.unmatched),
            queue_full: self.queue_full.wrapping_sub(earlier.queue_full),
        }
    }

    /// The log line for a change over `period`, or `None` when nothing was dropped.
    pub fn summary(&self, period: Duration) -> Option<String> {
        let dropped = self.dropped();
        (dropped > 0).then(|| {
            let secs = (period.as_millis() + 500) / 1000;
            format!(
                "UDP port: dropped {dropped} datagrams in the last {secs}s (unmatched {}, \
                 too short {}, oversized {}, queue full {}); {} delivered",
                self.unmatched, self.too_short, self.oversized, self.queue_full, self.delivered
            )
        })
    }
}

/// Hands one datagram, or a GRO run of `stride`-byte datagrams from one sender, to its
/// tunnel's queue, or says why not (for the whole run). Nothing is allocated unless the
/// datagrams are delivered, and nothing waits: a full queue drops them rather than stall
/// every other session. A run follows its first datagram.
///
/// Any sizes are taken as the kernel reports them, hostile ones included: an empty datagram
/// (length and stride 0), a stride of 0 or past the end of the run (one datagram).
fn dispatch(registry: &Mutex<DtlsRegistry>, peer: SocketAddr, run: &[u8], stride: usize) -> Fate {
    // Every datagram of the run is `stride` long but the last, which may be shorter: a run
    // is too short when its last datagram is (an empty run included), too long when its
    // stride is.
    if last_datagram_len(run.len(), stride) < MIN_DATAGRAM {
        return Fate::TooShort;
    }
    let stride = effective_stride(run.len(), stride);
    if stride > MAX_DATAGRAM {
        return Fate::Oversized;
    }
    let first = run.get(..stride).unwrap_or(run);
    let mut reg = lock(registry);
    let Some(tx) = reg.route(peer, first) else {
        return Fate::Unmatched;
    };
    let fate = match tx.try_reserve() {
        Ok(permit) => {
            permit.send(Datagram {
                peer,
                bytes: run.to_vec(),
                stride,
            });
            Fate::Delivered
        }
        Err(TrySendError::Full(())) => Fate::QueueFull,
        Err(TrySendError::Closed(())) => Fate::Unmatched,
    };
    fate
}

/// Dispatches one receive buffer (a datagram or a GRO run) and counts each of its datagrams
/// under the fate of the run; an empty datagram counts as one.
fn dispatch_and_count(
    registry: &Mutex<DtlsRegistry>,
    counters: &UdpCounters,
    peer: SocketAddr,
    run: &[u8],
    stride: usize,
) -> Fate {
    let fate = dispatch(registry, peer, run, stride);
    let count = u64::try_from(datagram_count(run.len(), stride)).unwrap_or(u64::MAX);
    counters.count_n(fate, count);
    fate
}

/// After a failed receive, the dispatcher waits this long before the next (a persistent
/// error must not spin a core).
const RECV_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// Reads the shared socket and hands each datagram to its tunnel. Runs for the server's life:
/// a failed receive is logged (at most once per [`SUMMARY_EVERY`] at warning level) and the
/// loop goes on; a bug in handling one datagram (or GRO run) loses it, not the port. Every
/// [`SUMMARY_EVERY`] it logs one line on what it dropped, if it dropped anything.
pub async fn run_dispatcher(
    socket: Arc<BatchSocket>,
    registry: Arc<Mutex<DtlsRegistry>>,
    counters: Arc<UdpCounters>,
) {
    let mut received = RecvBatch::new();
    let start = tokio::time::Instant::now() + SUMMARY_EVERY;
    let mut summary = tokio::time::interval_at(start, SUMMARY_EVERY);
    summary.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last = (tokio::time::Instant::now(), counters.snapshot());
    // Receive errors since the last summary (the first one is a warning).
    let mut recv_errors = 0u64;
    loop {
        let result = tokio::select! {
            biased;
            now = summary.tick() => {
                let stats = counters.snapshot();
                if let Some(line) = stats.since(&last.1).summary(now - last.0) {
                    info!("{line}");
                }
                if recv_errors > 1 {
                    warn!("UDP port: {recv_errors} failed receives in the last period");
                }
                recv_errors = 0;
                last = (now, stats);
                continue;
            }
            r = received.recv(&socket) => r,
        };
        let n = match result {
            Ok(n) => n,
            Err(e) => {
                recv_errors += 1;
                if recv_errors == 1 {
                    warn!("UDP port: receive failed (continuing): {e}");
                } else {
                    debug!("UDP port: receive failed: {e}");
                }
                tokio::time::sleep(RECV_ERROR_PAUSE).await;
                continue;
            }
        };
        dispatch_batch(&received, n, &registry, &counters);
    }
}

/// Dispatches the `n` buffers of one receive.
fn dispatch_batch(
    received: &RecvBatch,
    n: usize,
    registry: &Mutex<DtlsRegistry>,
    counters: &UdpCounters,
) {
    for i in 0..n {
        let Some((peer, run, stride)) = received.get(i) else {
            continue;
        };
        // A panic here ends the dispatcher task, which ends the network process loudly
        // (the main process starts a new one): no half-updated registry goes on serving.
        dispatch_and_count(registry, counters, peer, run, stride);
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

/// One tunnel's DTLS channel, with room for a second handshake (a rekey, or the client
/// moving to a new address) that replaces it only once complete.
pub struct TunnelDtls {
    keying: Keying,
    socket: Arc<BatchSocket>,
    /// Datagrams on their way out, packed for one send per run of equal sizes.
    outbox: SendBatch,
    rx: mpsc::Receiver<Datagram>,
    id: DtlsId,
    registry: Arc<Mutex<DtlsRegistry>>,
    active: Option<(SocketAddr, DtlsChannel)>,
    pending: Option<(SocketAddr, DtlsChannel)>,
    link_mtu: u32,
    /// Data goes over UDP only while the client was heard on it this recently.
    switch_to_tcp: Duration,
    last_rx: Option<Instant>,
    data_mtu: usize,
    /// When to send the keepalive of [`FIRST_NUDGE`].
    nudge_at: Option<Instant>,
}

impl std::fmt::Debug for TunnelDtls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelDtls")
            .field("active", &self.active.as_ref().map(|(p, _)| *p))
            .field("pending", &self.pending.as_ref().map(|(p, _)| *p))
            .finish()
    }
}

/// A record in epoch 0: a handshake starting from scratch. Renegotiation on the live
/// channel runs in a later epoch, so it stays with that channel even when a (possibly
/// replayed) hello opened a pending handshake from the same address.
fn is_epoch_zero(datagram: &[u8]) -> bool {
    datagram.get(3..5) == Some(&[0, 0][..])
}

impl TunnelDtls {
    pub fn new(
        keying: Keying,
        socket: Arc<BatchSocket>,
        (id, rx): (DtlsId, mpsc::Receiver<Datagram>),
        registry: Arc<Mutex<DtlsRegistry>>,
        link_mtu: u32,
        switch_to_tcp: Duration,
    ) -> Self {
        Self {
            keying,
            socket,
            outbox: SendBatch::new(),
            rx,
            id,
            registry,
            active: None,
            pending: None,
            link_mtu,
            switch_to_tcp,
            last_rx: None,
            data_mtu: 0,
            nudge_at: None,
        }
    }

    /// Next datagram for this tunnel (never ends while the registration lives).
    pub async fn recv(&mut self) -> Option<Datagram> {
        self.rx.recv().await
    }

    /// True while the DTLS channel is established and the client was heard on it within
    /// `switch-to-tcp-timeout`.
    pub fn is_live(&self, now: Instant) -> bool {
        let recent = self
            .last_rx
            .is_some_and(|t| now.saturating_duration_since(t) < self.switch_to_tcp);
        self.active.is_some() && recent
    }

    /// True when a tunnel packet of `len` bytes should go over DTLS now.
    pub fn carries(&self, len: usize, now: Instant) -> bool {
        self.is_live(now) && len <= self.data_mtu
    }

    pub async fn on_datagram(
        &mut self,
        peer: SocketAddr,
        datagram: &[u8],
        session: &mut ServerSession,
        on_packet: impl FnMut(&[u8]),
    ) {
        let active_peer = self.active.as_ref().map(|(p, _)| *p);
        let pending_peer = self.pending.as_ref().map(|(p, _)| *p);
        if client_hello_id(datagram).is_some() && pending_peer != Some(peer) {
            // A new handshake goes into the pending slot; the active channel keeps
            // carrying traffic until it completes.
            // A dual-stack socket shows IPv4 clients as ::ffff:a.b.c.d: their packets
            // carry IPv4 headers, and logs name them a.b.c.d.
            let shown = canonical_addr(peer);
            match self.keying.channel(self.link_mtu, shown.is_ipv6()) {
                Ok(c) => self.pending = Some((peer, c)),
                Err(e) => {
                    warn!("{shown}: cannot start DTLS: {e}");
                    return;
                }
            }
        }
        let to_pending = self.pending.as_ref().is_some_and(|(p, _)| *p == peer)
            && (active_peer != Some(peer) || is_epoch_zero(datagram));
        if to_pending {
            self.feed_pending(peer, datagram);
        } else if active_peer == Some(peer) {
            if let Some((_, channel)) = self.active.as_mut() {
                if let Err(e) = channel.handle_datagram(datagram) {
                    debug!("{}: DTLS record dropped: {e}", canonical_addr(peer));
                }
            }
        }
        self.flush().await;
        self.drain(session, on_packet);
    }

    fn feed_pending(&mut self, peer: SocketAddr, datagram: &[u8]) {
        let Some((_, channel)) = self.pending.as_mut() else {
            return;
        };
        if let Err(e) = channel.handle_datagram(datagram) {
            debug!("{}: DTLS handshake failed: {e}", canonical_addr(peer));
            self.pending = None;
            return;
        }
        if channel.state() == DtlsState::Established {
            self.data_mtu = channel.data_mtu().saturating_sub(1);
            info!(
                "{}: DTLS established ({})",
                canonical_addr(peer),
                channel.cipher()
            );
            match self.active.take() {
                Some((_, mut old)) => old.close(),
                None => self.nudge_at = Some(Instant::now() + FIRST_NUDGE),
            }
            self.active = self.pending.take();
            self.last_rx = Some(Instant::now());
            lock(&self.registry).promote(&self.id, peer);
        }
    }

    fn drain(&mut self, session: &mut ServerSession, mut on_packet: impl FnMut(&[u8])) {
        let Some((_, channel)) = self.active.as_mut() else {
            return;
        };
        let mut heard = false;
        let result = channel.drain(|record| {
            heard = true;
            if let Err(e) = session.handle_dtls(record, Instant::now(), &mut on_packet) {
                debug!("DTLS record ignored: {e}");
            }
        });
        if heard {
            self.last_rx = Some(Instant::now());
        }
        if let Err(e) = result {
            debug!("DTLS channel closed: {e}");
            self.active = None;
        }
    }

    /// Encrypts one record (type byte + payload) and sends it.
    pub async fn send_record(&mut self, record: &[u8]) -> bool {
        let queued = self.queue_record(record).await;
        self.flush().await;
        queued
    }

    /// Encrypts one record; it leaves with the next [`TunnelDtls::flush`] (or with this
    /// call when enough are waiting), in one send with the records queued before it.
    pub async fn queue_record(&mut self, record: &[u8]) -> bool {
        let Some((_, channel)) = self.active.as_mut() else {
            return false;
        };
        if channel.send(record).is_err() {
            return false;
        }
        if channel.transmit_due() {
            self.flush().await;
        }
        true
    }

    /// Sends what the channels have ready.
    pub async fn flush(&mut self) {
        let max = self.socket.max_segments();
        for (peer, channel) in [self.active.as_mut(), self.pending.as_mut()]
            .into_iter()
            .flatten()
        {
            let outbox = &mut self.outbox;
            channel.transmit(|datagram| outbox.push(datagram, max));
            if !outbox.is_empty() {
                // UDP is lossy by nature: a failed send is a lost datagram, nothing more.
                let _ = outbox.send(&self.socket, *peer).await;
            }
        }
    }

    /// When a handshake wants a retransmission, or the first keepalive is due.
    pub fn deadline(&self) -> Option<Instant> {
        let retransmit = [self.active.as_ref(), self.pending.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|(_, c)| c.poll_timeout())
            .min()
            .map(|d| Instant::now() + d);
        retransmit.into_iter().chain(self.nudge_at).min()
    }

    pub async fn on_deadline(&mut self) {
        if self.nudge_at.is_some_and(|at| at <= Instant::now()) {
            self.nudge_at = None;
            self.send_record(&[PacketType::Keepalive.code()]).await;
        }
        if let Some((_, channel)) = self.pending.as_mut() {
            if channel.handle_timeout().is_err() {
                self.pending = None;
            }
        }
        if let Some((_, channel)) = self.active.as_mut() {
            if channel.handle_timeout().is_err() {
                self.active = None;
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
        let one = Datagram {
            peer: a,
            bytes: vec![1],
            stride: 1,
        };
        reg.route(a, &hello(&id))
            .unwrap()
            .try_send(one.clone())
            .unwrap();
        assert!(reg.route(a, &[23u8; 40]).is_some());
        assert_eq!(rx.try_recv().unwrap(), one);
        // The client moved: the old address no longer routes.
        assert!(reg.route(b, &hello(&id)).is_some());
        assert!(reg.route(a, &[23u8; 40]).is_none());
        // Once a's handshake completed, a hello from elsewhere (a replay, or a rekey from a
        // new port) does not take the tunnel away from a until it completes itself.
        reg.promote(&id, a);
        assert!(reg.route(b, &hello(&id)).is_some());
        assert!(reg.route(a, &[23u8; 40]).is_some());
        assert!(reg.route(b, &[23u8; 40]).is_some());
        reg.promote(&id, b);
        assert!(reg.route(a, &[23u8; 40]).is_none());
        reg.unregister(&id);
        assert!(reg.route(b, &[23u8; 40]).is_none());
        assert!(reg.route(b, &hello(&id)).is_none());
    }

    #[test]
    fn dispatch_counts_each_drop_by_reason() {
        let registry = Mutex::new(DtlsRegistry::default());
        let (tx, mut rx) = mpsc::channel(1);
        let id = [7u8; 32];
        registry.lock().unwrap().register(id, tx);
        let a: SocketAddr = "198.18.0.2:5000".parse().unwrap();
        let counters = UdpCounters::default();
        let send = |datagram: &[u8]| {
            let fate = dispatch(&registry, a, datagram, datagram.len());
            counters.count(fate);
            fate
        };
        assert_eq!(send(&[22u8; 12]), Fate::TooShort);
        assert_eq!(send(&vec![23u8; MAX_DATAGRAM + 1]), Fate::Oversized);
        assert_eq!(send(&[23u8; 40]), Fate::Unmatched);
        assert_eq!(send(&hello(&[8u8; 32])), Fate::Unmatched);
        assert_eq!(send(&hello(&id)), Fate::Delivered);
        // The queue holds one datagram: the next is dropped, not waited for.
        assert_eq!(send(&vec![23u8; MAX_DATAGRAM]), Fate::QueueFull);
        assert!(rx.try_recv().is_ok());
        assert_eq!(send(&[23u8; MIN_DATAGRAM]), Fate::Delivered);
        // A tunnel going away: its datagrams have nowhere to go.
        drop(rx);
        assert_eq!(send(&[23u8; 40]), Fate::Unmatched);
        let stats = counters.snapshot();
        assert_eq!(
            stats,
            UdpStats {
                delivered: 2,
                too_short: 1,
                oversized: 1,
                unmatched: 3,
                queue_full: 1,
            }
        );
        assert_eq!(stats.dropped(), 6);
    }

    #[test]
    fn a_gro_run_goes_whole_to_the_tunnel_of_its_first_datagram() {
        let registry = Mutex::new(DtlsRegistry::default());
        let (tx, mut rx) = mpsc::channel(4);
        let id = [7u8; 32];
        registry.lock().unwrap().register(id, tx);
        let a: SocketAddr = "198.18.0.2:5000".parse().unwrap();
        assert_eq!(dispatch(&registry, a, &hello(&id), 0), Fate::Delivered);
        rx.try_recv().unwrap();
        let mut run = vec![23u8; 3 * 100];
        run.extend_from_slice(&[23u8; 20]);
        assert_eq!(dispatch(&registry, a, &run, 100), Fate::Delivered);
        let got = rx.try_recv().unwrap();
        let sizes: Vec<usize> = got.each().map(<[u8]>::len).collect();
        assert_eq!(sizes, vec![100, 100, 100, 20]);
        // A run whose last datagram cannot be a record, or whose stride is too long.
        run.truncate(305);
        assert_eq!(dispatch(&registry, a, &run, 100), Fate::TooShort);
        let long = vec![23u8; 2 * (MAX_DATAGRAM + 1)];
        assert_eq!(
            dispatch(&registry, a, &long, MAX_DATAGRAM + 1),
            Fate::Oversized
        );
        // From a stranger the whole run is unmatched.
        let b: SocketAddr = "198.18.0.3:5000".parse().unwrap();
        assert_eq!(dispatch(&registry, b, &[23u8; 300], 100), Fate::Unmatched);
    }

    /// Sizes a hostile sender (or a confused kernel) can produce: each is dropped or
    /// delivered without a panic, and each datagram is counted once under one reason.
    #[test]
    fn hostile_sizes_are_dropped_and_counted_without_panicking() {
        let registry = Mutex::new(DtlsRegistry::default());
        let (tx, mut rx) = mpsc::channel(16);
        let id = [7u8; 32];
        registry.lock().unwrap().register(id, tx);
        let a: SocketAddr = "198.18.0.2:5000".parse().unwrap();
        let stranger: SocketAddr = "198.18.0.3:5000".parse().unwrap();
        // The tunnel's address is known: short and long datagrams from it still go nowhere.
        assert_eq!(dispatch(&registry, a, &hello(&id), 0), Fate::Delivered);
        rx.try_recv().unwrap();
        let giant = vec![23u8; 65507];
        let cases: [(SocketAddr, &[u8], usize, Fate, u64); 14] = [
            // An empty datagram: length 0, stride 0 (the panic: 0 % 0).
            (stranger, &[], 0, Fate::TooShort, 1),
            (a, &[], 0, Fate::TooShort, 1),
            (a, &[], 1400, Fate::TooShort, 1),
            (stranger, &[1], 1, Fate::TooShort, 1),
            (a, &[1], 0, Fate::TooShort, 1),
            (
                a,
                &giant[..MIN_DATAGRAM - 1],
                MIN_DATAGRAM - 1,
                Fate::TooShort,
                1,
            ),
            // A run of 1-byte datagrams.
            (a, &giant[..300], 1, Fate::TooShort, 300),
            // The largest UDP payload, alone or with a stride past it.
            (stranger, &giant, 65507, Fate::Oversized, 1),
            (a, &giant, 65507, Fate::Oversized, 1),
            (a, &giant, 0, Fate::Oversized, 1),
            (a, &giant, usize::MAX, Fate::Oversized, 1),
            (
                a,
                &giant[..MAX_DATAGRAM + 1],
                1,
                Fate::TooShort,
                MAX_DATAGRAM as u64 + 1,
            ),
            // No stride, or one longer than the run (or the receive buffer): one datagram.
            (stranger, &giant[..300], 0, Fate::Unmatched, 1),
            (stranger, &giant[..300], 70_000, Fate::Unmatched, 1),
        ];
        let counters = UdpCounters::default();
        let mut want = UdpStats::default();
        for (peer, run, stride, fate, count) in cases {
            let got = dispatch_and_count(&registry, &counters, peer, run, stride);
            assert_eq!(got, fate, "{} bytes, stride {stride}", run.len());
            match fate {
                Fate::TooShort => want.too_short += count,
                Fate::Oversized => want.oversized += count,
                Fate::Unmatched => want.unmatched += count,
                Fate::Delivered | Fate::QueueFull => unreachable!(),
            }
            assert_eq!(
                counters.snapshot(),
                want,
                "{} bytes, stride {stride}",
                run.len()
            );
        }
        assert!(rx.try_recv().is_err(), "nothing reached the tunnel");
        // A record with a stride past its end is delivered as one datagram.
        let record = &giant[..200];
        assert_eq!(
            dispatch_and_count(&registry, &counters, a, record, 70_000),
            Fate::Delivered
        );
        let got = rx.try_recv().unwrap();
        assert_eq!(got.each().map(<[u8]>::len).collect::<Vec<_>>(), vec![200]);
        assert_eq!(counters.snapshot().delivered, 1);
    }

    /// The dispatcher on a real socket: an empty, a 1-byte and a largest datagram sent
    /// before anything else are counted, and the dispatcher is still there to deliver the
    /// ClientHello that follows.
    #[tokio::test]
    async fn the_dispatcher_survives_empty_tiny_and_giant_datagrams() {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = socket.local_addr().unwrap();
        let socket = Arc::new(BatchSocket::new(socket).unwrap());
        let registry = Arc::new(Mutex::new(DtlsRegistry::default()));
        let counters = Arc::new(UdpCounters::default());
        let (tx, mut rx) = mpsc::channel(4);
        let id = [9u8; 32];
        lock(&registry).register(id, tx);
        let dispatcher = tokio::spawn(run_dispatcher(socket, registry, counters.clone()));
        let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for d in [&[][..], &[0x17][..], &vec![0x17; 65507][..]] {
            client.send_to(d, port).await.unwrap();
        }
        let hello = hello(&id);
        client.send_to(&hello, port).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("the ClientHello was delivered")
            .unwrap();
        assert_eq!(got.bytes, hello);
        assert_eq!(got.peer, client.local_addr().unwrap());
        assert_eq!(
            counters.snapshot(),
            UdpStats {
                delivered: 1,
                too_short: 2,
                oversized: 1,
                unmatched: 0,
                queue_full: 0,
            }
        );
        dispatcher.abort();
    }

    #[test]
    fn fates_have_distinct_labels_and_counters() {
        let counters = UdpCounters::default();
        for (i, fate) in Fate::ALL.into_iter().enumerate() {
            counters.count_n(fate, 1 << i);
        }
        let stats = counters.snapshot();
        for (i, fate) in Fate::ALL.into_iter().enumerate() {
            assert_eq!(stats.get(fate), 1 << i, "{fate:?}");
        }
        let labels: std::collections::HashSet<_> = Fate::ALL.map(Fate::label).into();
        assert_eq!(labels.len(), Fate::ALL.len());
        assert_eq!(stats.dropped(), 0b11110);
    }

    #[test]
    fn summary_reports_the_change_and_only_drops() {
        let before = UdpStats {
            delivered: 100,
            too_short: 5,
            oversized: 1,
            unmatched: 7,
            queue_full: 0,
        };
        let after = UdpStats {
            delivered: 912,
            too_short: 205,
            oversized: 35,
            unmatched: 10007,
            queue_full: 0,
        };
        let change = after.since(&before);
        assert_eq!(change.dropped(), 10234);
        assert_eq!(
            change.summary(Duration::from_millis(10_003)).unwrap(),
            "UDP port: dropped 10234 datagrams in the last 10s (unmatched 10000, too short 200, \
             oversized 34, queue full 0); 812 delivered"
        );
        // Traffic without drops is not worth a line.
        let quiet = UdpStats {
            delivered: 5000,
            ..after
        };
        assert_eq!(quiet.since(&after).summary(SUMMARY_EVERY), None);
        assert_eq!(UdpStats::default().summary(SUMMARY_EVERY), None);
    }
}
