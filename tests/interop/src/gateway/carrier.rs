//! What carries a tunnel's PPP frames between the gateway and a client: its TLS connection
//! (a byte stream) or an established DTLS association (one frame per record). The PPP
//! session ([`super::TunLink::run`]) is the same over both; only reading, writing and
//! closing differ, and they are here.

use std::net::SocketAddr;
use std::sync::Arc;

use oc_tls::dtls::DtlsChannel;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::{Tls, LINGER};

/// The most plaintext one TLS record carries: a write of at most this is one record.
const TLS_RECORD: usize = 16 * 1024;

/// A tunnel's channel to its client.
#[derive(Debug)]
pub enum Carrier {
    Tls(Tls),
    Dtls(DtlsCarrier),
}

impl From<Tls> for Carrier {
    fn from(tls: Tls) -> Self {
        Self::Tls(tls)
    }
}

impl From<DtlsCarrier> for Carrier {
    fn from(dtls: DtlsCarrier) -> Self {
        Self::Dtls(dtls)
    }
}

/// An established DTLS association whose greeting was accepted: its channel, the shared
/// UDP socket and the client's address, the datagrams the dispatcher routes to it, and the
/// answer to give the greeting again (the client resends it until an answer arrives).
pub struct DtlsCarrier {
    pub channel: DtlsChannel,
    pub socket: Arc<UdpSocket>,
    pub peer: SocketAddr,
    pub datagrams: mpsc::Receiver<Vec<u8>>,
    /// Whether a record is the client's greeting (and not a PPP frame).
    pub is_greeting: fn(&[u8]) -> bool,
    pub answer: Vec<u8>,
}

impl std::fmt::Debug for DtlsCarrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsCarrier")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl DtlsCarrier {
    /// Sends what the channel has queued, without waiting: a full socket buffer loses the
    /// datagram, as a congested router would.
    pub fn transmit_now(&mut self) {
        let (socket, peer) = (&self.socket, self.peer);
        self.channel.transmit(|datagram| {
            let _ = socket.try_send_to(datagram, peer);
        });
    }

    /// Sends what the channel has queued, waiting for room in the socket buffer.
    async fn flush(&mut self) -> Result<(), String> {
        while let Some(datagram) = self.channel.poll_transmit() {
            self.socket
                .send_to(&datagram, self.peer)
                .await
                .map_err(|e| format!("sending DTLS to the client: {e}"))?;
        }
        Ok(())
    }

    fn send(&mut self, frame: &[u8]) -> Result<(), String> {
        self.channel
            .send(frame)
            .map_err(|e| format!("sending DTLS to the client: {e}"))
    }

    /// Waits for a datagram with PPP in it; its records, one after another, go into `buf`
    /// (their count of bytes returned). A repeated greeting gets its answer again and is not
    /// PPP. Cancel-safe: the only wait is for the next datagram.
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, String> {
        loop {
            let datagram = self
                .datagrams
                .recv()
                .await
                .ok_or("a new DTLS handshake from the client's address replaced this one")?;
            self.channel
                .handle_datagram(&datagram)
                .map_err(|e| format!("DTLS: {e}"))?;
            let (mut len, mut greetings, mut lost) = (0, 0, 0);
            let is_greeting = self.is_greeting;
            let drained = self.channel.drain(|record| {
                if is_greeting(record) {
                    greetings += 1;
                    return;
                }
                match buf.get_mut(len..len + record.len()) {
                    Some(room) => {
                        room.copy_from_slice(record);
                        len += record.len();
                    }
                    None => lost += 1,
                }
            });
            for _ in 0..greetings {
                let answer = std::mem::take(&mut self.answer);
                let sent = self.send(&answer);
                self.answer = answer;
                sent?;
            }
            // Handshake retransmissions (a lost Finished) and the answers leave now.
            self.transmit_now();
            drained.map_err(|e| format!("DTLS: {e}"))?;
            if greetings > 0 {
                log!("{}: the DTLS greeting again; answered again", self.peer);
            }
            if lost > 0 {
                log!(
                    "{}: {lost} DTLS records past the read buffer dropped",
                    self.peer
                );
            }
            if len > 0 {
                return Ok(len);
            }
        }
    }
}

impl Carrier {
    /// Waits for bytes from the client (into `buf`; how many). Cancel-safe.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, String> {
        match self {
            Self::Tls(tls) => {
                let n = tls
                    .read(buf)
                    .await
                    .map_err(|e| format!("reading from the client: {e}"))?;
                if n == 0 {
                    return Err("closed by the client".into());
                }
                Ok(n)
            }
            Self::Dtls(dtls) => dtls.read(buf).await,
        }
    }

    /// Sends one PPP control frame.
    pub async fn write_frame(&mut self, frame: &[u8]) -> Result<(), String> {
        match self {
            Self::Tls(tls) => tls
                .write_all(frame)
                .await
                .map_err(|e| format!("sending PPP to the client: {e}")),
            Self::Dtls(dtls) => {
                dtls.send(frame)?;
                dtls.flush().await
            }
        }
    }

    /// A frame was appended to `out` at `start`. On DTLS it leaves as its own record (and
    /// `out` is emptied); on TLS the frames collect in `out` for one write, except that with
    /// `whole_frames_per_record` the frames before this one are written once they fill a
    /// record: openconnect 9.01 un-HDLCs each TLS record it reads on its own and drops a
    /// frame that goes on in the next record.
    pub async fn frame_added(
        &mut self,
        out: &mut Vec<u8>,
        start: usize,
        whole_frames_per_record: bool,
    ) -> Result<(), String> {
        match self {
            Self::Tls(_) => {
                if whole_frames_per_record && out.len() > TLS_RECORD && start > 0 {
                    let rest = out.split_off(start);
                    self.write_out(out).await?;
                    *out = rest;
                }
                Ok(())
            }
            Self::Dtls(dtls) => {
                let frame = out.get(start..).unwrap_or_default();
                if !frame.is_empty() {
                    dtls.send(frame)?;
                }
                out.truncate(start);
                if dtls.channel.transmit_due() {
                    dtls.flush().await?;
                }
                Ok(())
            }
        }
    }

    /// Writes (and empties) `out`; on TLS one record when it holds at most [`TLS_RECORD`]
    /// bytes. On DTLS the records queued leave.
    pub async fn write_out(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        match self {
            Self::Tls(tls) => {
                tls.write_all(out)
                    .await
                    .map_err(|e| format!("sending to the client: {e}"))?;
                out.clear();
                Ok(())
            }
            Self::Dtls(dtls) => {
                out.clear();
                dtls.flush().await
            }
        }
    }

    /// Closes the channel at once (TLS close_notify, or DTLS's).
    pub async fn close(&mut self) {
        match self {
            Self::Tls(tls) => {
                let _ = tls.shutdown().await;
            }
            Self::Dtls(dtls) => {
                dtls.channel.close();
                let _ = dtls.flush().await;
            }
        }
    }

    /// After PPP closed, waits for the client to close the channel first (at most
    /// [`LINGER`]), dropping what it still sends: openconnect takes the server closing first
    /// as a lost link and reconnects instead of logging out (on DTLS, where openconnect 9.01
    /// sends no close_notify, the wait just ends). How it ended.
    pub async fn linger(mut self) -> String {
        let mut buf = vec![0u8; 64 * 1024];
        let drain = async {
            loop {
                if let Err(why) = self.read(&mut buf).await {
                    return why;
                }
            }
        };
        let why = tokio::time::timeout(LINGER, drain)
            .await
            .unwrap_or_else(|_| format!("still open after {LINGER:?}, closed"));
        self.close().await;
        why
    }
}
