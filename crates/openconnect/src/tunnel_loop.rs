//! The one packet loop every protocol's tunnel runs (upstream's main loop over
//! `vpn_proto`): it waits on the signals, the tun device, the TLS connection, the UDP
//! channel and the protocol's next deadline, and hands each wake-up to the protocol
//! ([`TunnelProtocol`]); then it ends the tunnel as the stop asks (log off, detach, or
//! reconnect and go on). A protocol plugs in by implementing the trait: AnyConnect
//! (`tunnel.rs`) and the PPP protocols (`ppp_tunnel.rs`) do.

use std::io;
use std::time::Instant;

use oc_net::udp::{BatchSocket, RecvBatch};
use oc_net::{PacketDevice, TunReader};
use oc_tls::TlsStream;
use tokio::io::AsyncReadExt;
use tracing::{info, warn};

use crate::cli::Options;
use crate::error::ClientError;
use crate::shell::{Backoff, Sig, Signals, CANCELLED, DETACHED};
use crate::Finished;

/// Why the packet loop stopped.
pub(crate) enum Stop {
    /// SIGINT/SIGTERM: log off.
    Cancelled,
    /// SIGHUP: leave without logging off.
    Detached,
    /// The connection is gone for this reason: reconnect.
    Lost(String),
    /// The tunnel ended (a log-off completed).
    Done(Finished),
    /// The `-S` script is gone: log off, then end with this reason (exit 1, as
    /// openconnect's "Client connection terminated").
    Terminated(String),
}

/// What the loop waits on, lent by the protocol for one wait.
pub(crate) struct Waits<'a> {
    /// The tun device, once it exists.
    pub tun: Option<&'a PacketDevice>,
    /// The TLS connection, while one carries the tunnel.
    pub tls: Option<&'a mut TlsStream>,
    /// The UDP channel's socket, while there is one.
    pub udp: Option<&'a BatchSocket>,
    /// The protocol's next deadline.
    pub deadline: Option<Instant>,
}

/// A protocol's side of the loop. Each handler returns `Some(stop)` to end the loop.
pub(crate) trait TunnelProtocol {
    /// Room before each packet read from the tun device, for the protocol's header.
    const HEADROOM: usize;
    /// Room after each packet read from the tun device, for the protocol's trailer.
    const TAILROOM: usize = 0;

    /// Runs before each wait: sends what the protocol queued, acts on its events.
    async fn step(&mut self) -> Result<Option<Stop>, ClientError>;

    fn waits(&mut self) -> Waits<'_>;

    /// Sends the `count` packets read from the tun device into `up`; an error loses the
    /// connection.
    async fn send_packets(&mut self, up: &mut TunReader, count: usize) -> Result<(), ClientError>;

    /// Bytes read from the TLS connection.
    async fn on_tls(&mut self, bytes: &[u8]) -> Result<Option<Stop>, ClientError>;

    /// The TLS connection closed or failed, for this reason.
    fn tls_ended(&mut self, why: String) -> Option<Stop> {
        Some(Stop::Lost(why))
    }

    /// A receive on the UDP channel: `count` runs in `batch`, or the error.
    async fn on_udp(
        &mut self,
        batch: &mut RecvBatch,
        read: io::Result<usize>,
    ) -> Result<Option<Stop>, ClientError>;

    /// The deadline passed.
    async fn on_deadline(&mut self, now: Instant) -> Result<Option<Stop>, ClientError>;

    /// SIGUSR1.
    fn print_stats(&self);

    /// Ends the session with the gateway (SIGINT/SIGTERM).
    async fn log_off(&mut self);

    /// Leaves without ending the session (SIGHUP).
    async fn detach(&mut self);

    /// The error that ends the tunnel instead of a reconnect after a loss, if any.
    fn give_up(&self, _why: &str) -> Option<ClientError> {
        None
    }

    /// The options (for the reconnect's time limit).
    fn options(&self) -> &Options;

    /// After a loss, before the attempts: the old connection closed, the script's
    /// `attempt-reconnect`.
    async fn prepare_reconnect(&mut self, why: &str);

    /// One attempt to reconnect (the loop around it, its waits and its time limit are
    /// [`run`]'s).
    async fn reconnect_once(&mut self) -> Result<(), ClientError>;
}

/// Runs `protocol`'s tunnel until it ends.
pub(crate) async fn run<P: TunnelProtocol>(protocol: &mut P) -> Result<Finished, ClientError> {
    let mut signals = Signals::new()?;
    loop {
        match packet_loop(protocol, &mut signals).await? {
            Stop::Done(done) => return Ok(done),
            Stop::Detached => {
                protocol.detach().await;
                return Ok(Finished(DETACHED.into()));
            }
            Stop::Cancelled => {
                info!("User cancelled (SIGINT/SIGTERM), sending logoff");
                protocol.log_off().await;
                return Ok(Finished(CANCELLED.into()));
            }
            Stop::Terminated(why) => {
                info!("Client connection terminated ({why}), sending logoff");
                protocol.log_off().await;
                return Err(ClientError::System(format!(
                    "Client connection terminated ({why}); exiting"
                )));
            }
            Stop::Lost(why) => {
                if let Some(e) = protocol.give_up(&why) {
                    return Err(e);
                }
                if let Some(done) = reconnect(protocol, &why, &mut signals).await? {
                    return Ok(done);
                }
            }
        }
    }
}

/// Reconnects after a loss, attempt after attempt with openconnect's growing waits, until
/// one works, the error lasts, time is up or a signal ends the wait (`Some`).
async fn reconnect<P: TunnelProtocol>(
    protocol: &mut P,
    why: &str,
    signals: &mut Signals,
) -> Result<Option<Finished>, ClientError> {
    warn!("{why}; reconnecting");
    protocol.prepare_reconnect(why).await;
    let mut backoff = Backoff::new(protocol.options());
    loop {
        match protocol.reconnect_once().await {
            Ok(()) => return Ok(None),
            Err(e) => {
                if let Some(done) = backoff
                    .failed(e, signals, &|| protocol.print_stats())
                    .await?
                {
                    return Ok(Some(done));
                }
            }
        }
    }
}

/// What one wait ended with.
enum Wake {
    Signal(Sig),
    Tun(io::Result<usize>),
    Tls(io::Result<usize>),
    Udp(io::Result<usize>),
    Deadline,
}

async fn packet_loop<P: TunnelProtocol>(
    protocol: &mut P,
    signals: &mut Signals,
) -> Result<Stop, ClientError> {
    let mut up = TunReader::with_tailroom(P::HEADROOM, P::TAILROOM);
    let mut down = vec![0u8; 64 * 1024];
    let mut received = RecvBatch::new();
    loop {
        if let Some(stop) = protocol.step().await? {
            return Ok(stop);
        }
        let wake = wait(protocol.waits(), signals, &mut up, &mut down, &mut received).await;
        let stop = match wake {
            Wake::Signal(Sig::Cancel) => Some(Stop::Cancelled),
            Wake::Signal(Sig::Detach) => Some(Stop::Detached),
            Wake::Signal(Sig::Reconnect) => Some(Stop::Lost("User requested reconnect".into())),
            Wake::Signal(Sig::Stats) => {
                protocol.print_stats();
                None
            }
            Wake::Tun(Err(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
                Some(Stop::Terminated(e.to_string()))
            }
            Wake::Tun(read) => {
                let n = read.map_err(ClientError::io("reading from the tun device"))?;
                match protocol.send_packets(&mut up, n).await {
                    Ok(()) => None,
                    Err(e) => Some(Stop::Lost(e.to_string())),
                }
            }
            Wake::Tls(Ok(0)) => protocol.tls_ended("server closed the connection".into()),
            Wake::Tls(Ok(n)) => {
                lost_if_transient(protocol.on_tls(down.get(..n).unwrap_or_default()).await)?
            }
            Wake::Tls(Err(e)) => protocol.tls_ended(format!("read error on TLS connection: {e}")),
            Wake::Udp(read) => lost_if_transient(protocol.on_udp(&mut received, read).await)?,
            Wake::Deadline => lost_if_transient(protocol.on_deadline(Instant::now()).await)?,
        };
        if let Some(stop) = stop {
            return Ok(stop);
        }
    }
}

/// A handler's error that a reconnect may cure (a write that failed on a connection gone
/// bad) is a loss, not the end.
fn lost_if_transient(
    handled: Result<Option<Stop>, ClientError>,
) -> Result<Option<Stop>, ClientError> {
    match handled {
        Err(e) if e.is_transient() => Ok(Some(Stop::Lost(e.to_string()))),
        other => other,
    }
}

async fn wait(
    waits: Waits<'_>,
    signals: &mut Signals,
    up: &mut TunReader,
    down: &mut [u8],
    received: &mut RecvBatch,
) -> Wake {
    let Waits {
        tun,
        tls,
        udp,
        deadline,
    } = waits;
    tokio::select! {
        sig = signals.recv() => Wake::Signal(sig),
        read = async {
            match tun {
                Some(tun) => up.recv_from(tun).await,
                None => std::future::pending().await,
            }
        } => Wake::Tun(read),
        read = async {
            match tls {
                Some(tls) => tls.read(down).await,
                None => std::future::pending().await,
            }
        } => Wake::Tls(read),
        read = async {
            match udp {
                Some(socket) => received.recv(socket).await,
                None => std::future::pending().await,
            }
        } => Wake::Udp(read),
        () = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        } => Wake::Deadline,
    }
}
