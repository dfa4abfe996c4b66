//! PPP over DTLS, as FortiGates and BIG-IPs carry it: plain certificate DTLS (the gateway's
//! HTTPS certificate, a full handshake) on one UDP socket. Datagrams are dispatched to an
//! association per client address; a ClientHello with a new random from a known address
//! replaces that address's association, and at most [`MAX_ASSOCIATIONS`] live at once.
//!
//! An association runs the handshake (OpenSSL's retransmissions included), then reads the
//! client's greeting, its first record: Fortinet's `clthello`, F5's `GET /myvpn?...`. The
//! gateway ([`DtlsSite`]) answers it in one record; when it accepts, the association becomes
//! the session's tunnel ([`super::TunLink::run`] over a [`DtlsCarrier`]), PPP starting
//! afresh with one frame per record. A tunnel claims the tun device as a TLS one does, so
//! the session's TLS tunnel ends when its DTLS one starts, and the other way round.
//!
//! Whatever a client sends, the worst it gets is a log line and its association dropped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oc_proto::ppp::Encapsulation;
use oc_tls::dtls::{DtlsChannel, DtlsState};
use openssl::ssl::SslContext;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::session::sleep_until;
use super::{gateway_ppp, Common, DtlsCarrier, Throttle, TunLink};

/// Associations (handshaking, greeting or tunnelling) at once; more new clients are
/// turned away until one ends.
pub const MAX_ASSOCIATIONS: usize = 16;
/// The handshake and the greeting must be done within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The path MTU the gateway assumes (the labs' veth links).
const LINK_MTU: u32 = 1500;
/// Datagrams waiting for an association's task; more are dropped.
const QUEUE: usize = 256;
/// Why an association's datagrams stopped coming.
const REPLACED: &str = "a new DTLS handshake from the client's address replaced this one";

/// A gateway's part in DTLS: its greeting and how it answers it.
pub trait DtlsSite: Send + Sync + 'static {
    fn link(&self) -> &TunLink;

    fn common(&self) -> &Common;

    /// Whether `record` is the client's greeting: its first record after the handshake,
    /// which it resends until an answer arrives.
    fn is_greeting(record: &[u8]) -> bool;

    /// The answer that refuses any greeting (`--dtls-refuse`).
    fn refusal(&self) -> Vec<u8>;

    /// Decides on a greeting from `peer`; an accepted one has claimed the tunnel.
    fn greet(&self, peer: SocketAddr, record: &[u8]) -> Greeting;

    /// The tunnel `generation` that an accepted greeting started has ended.
    fn tunnel_ended(&self, generation: u64) {
        let _ = generation;
    }
}

/// The decision on a client's greeting.
#[derive(Debug)]
pub enum Greeting {
    /// Send `answer`, then run PPP in `encapsulation` as the tunnel `generation` of
    /// `session` (named so in the log).
    Accept {
        answer: Vec<u8>,
        session: String,
        generation: u64,
        encapsulation: Encapsulation,
    },
    /// Send `answer` and drop the association.
    Refuse { answer: Vec<u8>, why: String },
    /// Send `answer`, then hand the association to the session's tunnel (which carries its
    /// packets next to its TLS connection: Array's).
    HandOver {
        answer: Vec<u8>,
        session: String,
        tunnel: mpsc::Sender<DtlsCarrier>,
    },
}

/// The UDP socket and DTLS server context, opened before serving.
pub async fn open_dtls(common: &Common) -> Result<Option<(UdpSocket, SslContext)>, String> {
    let Some(dtls) = common.dtls else {
        return Ok(None);
    };
    let ctx = oc_tls::dtls::cert_server_context(&common.cert, &common.key)
        .map_err(|e| format!("DTLS set-up: {e}"))?;
    let addr = SocketAddr::new(common.listen.ip(), dtls.port);
    let socket = UdpSocket::bind(addr)
        .await
        .map_err(|e| format!("cannot bind udp {addr}: {e}"))?;
    Ok(Some((socket, ctx)))
}

/// Serves DTLS on `socket` for ever: reads datagrams and dispatches them.
pub async fn serve_dtls<S: DtlsSite>(socket: UdpSocket, ctx: SslContext, site: Arc<S>) {
    let mut dispatcher = Dispatcher {
        socket: Arc::new(socket),
        ctx,
        site,
        associations: HashMap::new(),
        stray: Stray::default(),
    };
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, peer) = match dispatcher.socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => {
                log!("DTLS receive: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        dispatcher.dispatch(buf.get(..n).unwrap_or_default(), peer);
    }
}

/// The datagrams of a client address go to its association's task.
struct Association {
    /// The random of the ClientHello that started it: a retransmission carries the same.
    random: [u8; 32],
    datagrams: mpsc::Sender<Vec<u8>>,
}

struct Dispatcher<S> {
    socket: Arc<UdpSocket>,
    ctx: SslContext,
    site: Arc<S>,
    associations: HashMap<SocketAddr, Association>,
    stray: Stray,
}

impl<S: DtlsSite> Dispatcher<S> {
    fn dispatch(&mut self, datagram: &[u8], peer: SocketAddr) {
        let live = self
            .associations
            .get(&peer)
            .filter(|a| !a.datagrams.is_closed());
        match (client_hello_random(datagram), live) {
            (Some(random), Some(known)) if known.random == random => forward(known, datagram),
            (Some(random), _) => self.start(peer, random, datagram),
            (None, Some(known)) => forward(known, datagram),
            (None, None) => self.stray.note(peer, datagram.len()),
        }
    }

    /// A ClientHello with a new random: a new association (replacing the address's old
    /// one), if there is room.
    fn start(&mut self, peer: SocketAddr, random: [u8; 32], datagram: &[u8]) {
        if let Some(old) = self.associations.remove(&peer) {
            if !old.datagrams.is_closed() {
                log!("{peer}: a new DTLS ClientHello replaces this address's association");
            }
        }
        self.associations.retain(|_, a| !a.datagrams.is_closed());
        if self.associations.len() >= MAX_ASSOCIATIONS {
            log!("{peer}: DTLS ClientHello ignored: {MAX_ASSOCIATIONS} associations already");
            return;
        }
        let (sender, datagrams) = mpsc::channel(QUEUE);
        let association = Association {
            random,
            datagrams: sender,
        };
        forward(&association, datagram);
        self.associations.insert(peer, association);
        let (site, socket) = (Arc::clone(&self.site), Arc::clone(&self.socket));
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            match associate(&*site, &ctx, socket, peer, datagrams).await {
                Ok(end) => log!("{peer}: DTLS association ended: {end}"),
                Err(e) => log!("{peer}: DTLS association dropped: {e}"),
            }
        });
    }
}

/// Hands the association a datagram; a full queue loses it, as a full socket buffer would.
fn forward(association: &Association, datagram: &[u8]) {
    let _ = association.datagrams.try_send(datagram.to_vec());
}

/// Datagrams from addresses without an association: logged at most once a second.
#[derive(Default)]
struct Stray(Throttle);

impl Stray {
    fn note(&mut self, peer: SocketAddr, len: usize) {
        self.0.log(format_args!(
            "{peer}: DTLS datagram of {len} bytes without an association (not a ClientHello); \
             dropped"
        ));
    }
}

/// The random of a DTLS ClientHello's first fragment, if `datagram` starts with one: a
/// handshake record of epoch 0 holding a client_hello at offset 0.
fn client_hello_random(datagram: &[u8]) -> Option<[u8; 32]> {
    // Record: type, version(2), epoch(2), sequence(6), length(2). Handshake: type,
    // length(3), message_seq(2), fragment_offset(3), fragment_length(3). ClientHello:
    // version(2), random(32).
    let handshake = datagram.first() == Some(&22) && datagram.get(13) == Some(&1);
    let epoch0 = datagram.get(3..5) == Some(&[0, 0]);
    let first_fragment = datagram.get(19..22) == Some(&[0, 0, 0]);
    if !(handshake && epoch0 && first_fragment) {
        return None;
    }
    datagram.get(27..59)?.try_into().ok()
}

/// One association: the handshake, the greeting, and the tunnel if it is accepted. How it
/// ended, or why it was dropped.
async fn associate<S: DtlsSite>(
    site: &S,
    ctx: &SslContext,
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
    datagrams: mpsc::Receiver<Vec<u8>>,
) -> Result<String, String> {
    let channel = DtlsChannel::cert_server(ctx, LINK_MTU, peer.is_ipv6())
        .map_err(|e| format!("DTLS set-up: {e}"))?;
    let mut dtls = DtlsCarrier {
        channel,
        socket,
        peer,
        datagrams,
        is_greeting: S::is_greeting,
        answer: Vec::new(),
    };
    let greeting = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        handshake(&mut dtls).await?;
        log!(
            "DTLS handshake from {peer} ({}, {})",
            dtls.channel.version(),
            dtls.channel.cipher()
        );
        first_record(&mut dtls).await
    })
    .await
    .map_err(|_| format!("no DTLS handshake and greeting within {HANDSHAKE_TIMEOUT:?}"))??;
    if !S::is_greeting(&greeting) {
        return Err(format!(
            "the first record ({} bytes) is not the greeting",
            greeting.len()
        ));
    }
    let decision = match site.common().dtls.is_some_and(|d| d.refuse) {
        true => Greeting::Refuse {
            answer: site.refusal(),
            why: "--dtls-refuse".into(),
        },
        false => site.greet(peer, &greeting),
    };
    match decision {
        Greeting::Refuse { answer, why } => {
            log!("DTLS greeting from {peer} refused: {why}");
            dtls.channel
                .send(&answer)
                .map_err(|e| format!("DTLS: {e}"))?;
            dtls.transmit_now();
            Ok(format!("greeting refused ({why})"))
        }
        Greeting::HandOver {
            answer,
            session,
            tunnel,
        } => {
            dtls.channel
                .send(&answer)
                .map_err(|e| format!("DTLS: {e}"))?;
            dtls.transmit_now();
            dtls.answer = answer;
            log!("DTLS association of session {session} handed to its tunnel ({peer})");
            tunnel
                .send(dtls)
                .await
                .map_err(|_| "the session's tunnel ended".to_string())?;
            Ok("handed to the session's tunnel".into())
        }
        Greeting::Accept {
            answer,
            session,
            generation,
            encapsulation,
        } => {
            dtls.channel
                .send(&answer)
                .map_err(|e| format!("DTLS: {e}"))?;
            dtls.transmit_now();
            dtls.answer = answer;
            log!("DTLS tunnel for session {session} up ({peer}, tunnel {generation})");
            let ppp = gateway_ppp(encapsulation, site.common(), false);
            let how = format!("{} encapsulation over DTLS", encapsulation.name());
            let result = site
                .link()
                .run(dtls, peer, &[], ppp, generation, &how)
                .await;
            site.tunnel_ended(generation);
            result
        }
    }
}

/// Runs the handshake to its end: datagrams in, flights out, OpenSSL's retransmissions.
async fn handshake(dtls: &mut DtlsCarrier) -> Result<(), String> {
    loop {
        dtls.transmit_now();
        match dtls.channel.state() {
            DtlsState::Established => return Ok(()),
            DtlsState::Closed => return Err("the DTLS handshake failed".into()),
            DtlsState::Handshaking => {}
        }
        let retransmit = dtls
            .channel
            .poll_timeout()
            .map(|wait| Instant::now() + wait);
        tokio::select! {
            datagram = dtls.datagrams.recv() => {
                let datagram = datagram.ok_or(REPLACED)?;
                dtls.channel
                    .handle_datagram(&datagram)
                    .map_err(|e| format!("DTLS handshake: {e}"))?;
            }
            () = sleep_until(retransmit) => {
                dtls.channel
                    .handle_timeout()
                    .map_err(|e| format!("DTLS handshake: {e}"))?;
            }
        }
    }
}

/// The first record after the handshake (any after it in the same datagram are dropped).
async fn first_record(dtls: &mut DtlsCarrier) -> Result<Vec<u8>, String> {
    loop {
        let mut first = None;
        let drained = dtls.channel.drain(|record| {
            first.get_or_insert_with(|| record.to_vec());
        });
        dtls.transmit_now();
        drained.map_err(|e| format!("DTLS: {e}"))?;
        if let Some(record) = first {
            return Ok(record);
        }
        let datagram = dtls.datagrams.recv().await.ok_or(REPLACED)?;
        dtls.channel
            .handle_datagram(&datagram)
            .map_err(|e| format!("DTLS: {e}"))?;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::client_hello_random;

    #[test]
    fn client_hellos_are_told_by_their_first_fragment() {
        let mut hello = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 100];
        hello.extend_from_slice(&[1, 0, 0, 90, 0, 0, 0, 0, 0, 0, 0, 90, 0xfe, 0xfd]);
        hello.extend((0..32).map(|i| i as u8 + 1));
        hello.extend_from_slice(&[0; 20]);
        let random = client_hello_random(&hello).unwrap();
        assert_eq!(random[0], 1);
        assert_eq!(random[31], 32);
        // Another epoch, another message, a later fragment, or too short: not a hello.
        for (at, value) in [(4, 1), (13, 2), (21, 1), (0, 23)] {
            let mut other = hello.clone();
            other[at] = value;
            assert_eq!(client_hello_random(&other), None, "byte {at}");
        }
        assert_eq!(client_hello_random(&hello[..58]), None);
        assert_eq!(client_hello_random(&[]), None);
    }
}
