//! A tunnel as the server sees it: control frames, dead-peer detection and the idle and
//! session timeouts, driven by a caller-supplied clock.
//!
//! The rules follow ocserv: a client silent for more than twice its DPD interval is probed
//! with DPD requests, and dropped after three times the interval; the idle timeout counts
//! only real traffic (ICMP and IGMP don't keep a session alive); the session timeout is an
//! absolute deadline that survives reconnects, so the shell passes it in.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::frame::{parse_dtls, CstpDecoder, Frame, FrameError, PacketType, DISCONNECT_USER};
use super::session::{control_frame, Channel};
use crate::compress::{CompressError, TunnelCompression};

/// Why the session ended, as the shell should log and account it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// The client sent DISCONNECT. `user_requested` is Cisco's 0xb0 reason: the user logged
    /// off, so the cookie must be invalidated (unless persistent cookies are configured).
    ClientDisconnect {
        user_requested: bool,
        reason: String,
    },
    /// Nothing received for three DPD intervals.
    DpdTimeout,
    IdleTimeout,
    SessionTimeout,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerTimers {
    pub dpd: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    /// When the session as a whole expires (`session-timeout` from its first login).
    pub session_deadline: Option<Instant>,
    /// How often the TLS 1.3 keys are refreshed by the server (a KeyUpdate).
    pub tls_rekey: Option<Duration>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ServerSessionError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Compression(#[from] CompressError),
    #[error("client sent unknown CSTP packet type 0x{0:02x}")]
    UnknownPacket(u8),
}

#[derive(Debug)]
pub struct ServerSession {
    timers: ServerTimers,
    decoder: CstpDecoder,
    last_rx: Instant,
    last_activity: Instant,
    next_probe: Option<Instant>,
    compression: TunnelCompression,
    /// Framed control bytes per channel (CSTP frames, or DTLS type byte + payload).
    out: VecDeque<(Channel, Vec<u8>)>,
    events: VecDeque<ServerEvent>,
    closed: bool,
    next_rekey: Option<Instant>,
    rekey_due: bool,
}

/// True when a tunnelled IP packet counts as activity for the idle timeout.
pub fn counts_as_activity(packet: &[u8]) -> bool {
    match packet.first().map(|b| b >> 4) {
        // IPv4 protocol byte: ICMP 1, IGMP 2.
        Some(4) => !matches!(packet.get(9), Some(1 | 2)),
        // IPv6 next header: ICMPv6 58 (extension headers are rare enough to ignore here).
        Some(6) => packet.get(6) != Some(&58),
        _ => false,
    }
}

impl ServerSession {
    pub fn new(timers: ServerTimers, now: Instant) -> Self {
        let next_rekey = timers.tls_rekey.map(|every| now + every);
        Self {
            timers,
            decoder: CstpDecoder::new(),
            last_rx: now,
            last_activity: now,
            next_probe: None,
            compression: TunnelCompression::default(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            closed: false,
            next_rekey,
            rekey_due: false,
        }
    }

    /// Whether the TLS keys are to be refreshed now (once per call that says so). A
    /// KEEPALIVE is queued with it, so the KeyUpdate leaves at once with that write.
    pub fn take_rekey_due(&mut self) -> bool {
        std::mem::take(&mut self.rekey_due)
    }

    /// Uses the compression negotiated in this CONNECT.
    pub fn with_compression(mut self, compression: TunnelCompression) -> Self {
        self.compression = compression;
        self
    }

    /// Compresses outgoing packets (see [`TunnelCompression::compress`]).
    pub fn compression(&mut self) -> &mut TunnelCompression {
        &mut self.compression
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Feeds bytes read from the TLS connection; each data packet goes to `on_packet`.
    pub fn handle_cstp(
        &mut self,
        bytes: &[u8],
        now: Instant,
        mut on_packet: impl FnMut(&[u8]),
    ) -> Result<(), ServerSessionError> {
        if bytes.is_empty() || self.closed {
            return Ok(());
        }
        self.last_rx = now;
        self.next_probe = None;
        let mut decoder = std::mem::take(&mut self.decoder);
        let result = decoder.decode(bytes, |frame: Frame<'_>| {
            self.handle_frame(Channel::Cstp, frame, now, &mut on_packet)
        });
        self.decoder = decoder;
        result
    }

    /// Feeds one decrypted DTLS record (type byte + payload).
    pub fn handle_dtls(
        &mut self,
        record: &[u8],
        now: Instant,
        mut on_packet: impl FnMut(&[u8]),
    ) -> Result<(), ServerSessionError> {
        if self.closed {
            return Ok(());
        }
        self.last_rx = now;
        self.next_probe = None;
        match parse_dtls(record) {
            Some(frame) => self.handle_frame(Channel::Dtls, frame, now, &mut on_packet),
            None => Ok(()),
        }
    }

    fn handle_frame(
        &mut self,
        channel: Channel,
        frame: Frame<'_>,
        now: Instant,
        on_packet: &mut impl FnMut(&[u8]),
    ) -> Result<(), ServerSessionError> {
        if self.closed {
            return Ok(());
        }
        match frame.packet_type() {
            Some(PacketType::Data) => {
                if counts_as_activity(frame.payload) {
                    self.last_activity = now;
                }
                on_packet(frame.payload);
            }
            Some(PacketType::Compressed) => {
                let packet = self.compression.decompress(channel, frame.payload)?;
                if counts_as_activity(packet) {
                    self.last_activity = now;
                }
                on_packet(packet);
            }
            // The payload is echoed: clients use padded probes to measure the path MTU.
            Some(PacketType::DpdRequest) => {
                self.queue(channel, PacketType::DpdResponse, frame.payload);
            }
            Some(PacketType::DpdResponse | PacketType::Keepalive) => {}
            Some(PacketType::Disconnect | PacketType::Terminate) => {
                let user_requested = frame.payload.first() == Some(&DISCONNECT_USER);
                let text = frame.payload.get(1..).unwrap_or_default();
                self.finish(ServerEvent::ClientDisconnect {
                    user_requested,
                    // Client text goes to logs: no control characters, bounded length.
                    reason: String::from_utf8_lossy(text)
                        .chars()
                        .take(128)
                        .map(|c| if c.is_control() { '.' } else { c })
                        .collect(),
                });
            }
            None => return Err(ServerSessionError::UnknownPacket(frame.code)),
        }
        Ok(())
    }

    /// A data packet from the tun device was sent to this client.
    pub fn on_packet_sent(&mut self, packet: &[u8], now: Instant) {
        if counts_as_activity(packet) {
            self.last_activity = now;
        }
    }

    /// Ends the session from the server side (admin kick, shutdown): a DISCONNECT frame.
    pub fn disconnect(&mut self) {
        if self.closed {
            return;
        }
        self.out.clear();
        self.queue(Channel::Cstp, PacketType::Disconnect, &[]);
        self.closed = true;
    }

    /// Control bytes to send next, and the channel they go on.
    pub fn poll_transmit(&mut self) -> Option<(Channel, Vec<u8>)> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let dpd = self.timers.dpd.map(|d| {
            let dead = self.last_rx + d * 3;
            match self.next_probe {
                Some(probe) => probe.min(dead),
                None => self.last_rx + d * 2,
            }
        });
        let idle = self.timers.idle_timeout.map(|t| self.last_activity + t);
        [dpd, idle, self.timers.session_deadline, self.next_rekey]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        // The server's own ends are announced, as ocserv does: the client then stops
        // instead of reconnecting (its cookie stays valid after an idle timeout).
        if self.timers.session_deadline.is_some_and(|d| now >= d) {
            self.queue(Channel::Cstp, PacketType::Disconnect, &[]);
            self.finish(ServerEvent::SessionTimeout);
            return;
        }
        if self
            .timers
            .idle_timeout
            .is_some_and(|t| now >= self.last_activity + t)
        {
            self.queue(Channel::Cstp, PacketType::Disconnect, &[]);
            self.finish(ServerEvent::IdleTimeout);
            return;
        }
        if let (Some(at), Some(every)) = (self.next_rekey, self.timers.tls_rekey) {
            if now >= at {
                self.next_rekey = Some(now + every);
                self.rekey_due = true;
                self.queue(Channel::Cstp, PacketType::Keepalive, &[]);
            }
        }
        if let Some(dpd) = self.timers.dpd {
            let silent = now.saturating_duration_since(self.last_rx);
            if silent >= dpd * 3 {
                self.finish(ServerEvent::DpdTimeout);
            } else if silent >= dpd * 2 && self.next_probe.is_none_or(|p| now >= p) {
                self.queue(Channel::Cstp, PacketType::DpdRequest, &[]);
                self.next_probe = Some(now + (dpd / 2).max(Duration::from_secs(1)));
            }
        }
    }

    fn finish(&mut self, event: ServerEvent) {
        self.closed = true;
        self.events.push_back(event);
    }

    fn queue(&mut self, channel: Channel, ptype: PacketType, payload: &[u8]) {
        if let Some(frame) = control_frame(channel, ptype, payload) {
            self.out.push_back((channel, frame));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::anyconnect::frame::emit_cstp;

    fn frame(ptype: PacketType, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        emit_cstp(ptype, payload, &mut out).unwrap();
        out
    }

    #[test]
    fn compressed_packets_reach_the_tun_and_count_as_activity() {
        use crate::compress::Algorithm;
        let t0 = Instant::now();
        let timers = ServerTimers {
            idle_timeout: Some(Duration::from_secs(60)),
            ..ServerTimers::default()
        };
        let mut packet = udp_packet();
        packet.extend_from_slice(&[b'z'; 300]);
        let mut client = TunnelCompression::new(Some(Algorithm::Lz4), None, 0, 1400);
        let payload = client.compress(Channel::Cstp, &packet).unwrap().unwrap()[8..].to_vec();
        let mut s = ServerSession::new(timers, t0).with_compression(TunnelCompression::new(
            Some(Algorithm::Lz4),
            None,
            257,
            1400,
        ));
        let later = t0 + Duration::from_secs(50);
        let mut got = Vec::new();
        s.handle_cstp(&frame(PacketType::Compressed, &payload), later, |p| {
            got.push(p.to_vec())
        })
        .unwrap();
        assert_eq!(got, vec![packet]);
        // Activity at 50 s: not idle at 100 s.
        s.handle_timeout(t0 + Duration::from_secs(100));
        assert!(s.poll_event().is_none());
        // Nothing negotiated on DTLS: a compressed record there is a protocol error.
        let mut record = vec![PacketType::Compressed.code()];
        record.extend_from_slice(&payload);
        assert!(matches!(
            s.handle_dtls(&record, later, |_| {}),
            Err(ServerSessionError::Compression(_))
        ));
    }

    fn udp_packet() -> Vec<u8> {
        let mut p = vec![0u8; 28];
        p[0] = 0x45;
        p[9] = 17;
        p
    }

    #[test]
    fn echoes_dpd_and_delivers_data() {
        let t0 = Instant::now();
        let mut s = ServerSession::new(ServerTimers::default(), t0);
        let mut input = frame(PacketType::DpdRequest, b"probe");
        input.extend(frame(PacketType::Data, &udp_packet()));
        let mut got = Vec::new();
        s.handle_cstp(&input, t0, |p| got.push(p.to_vec())).unwrap();
        assert_eq!(got, vec![udp_packet()]);
        assert_eq!(
            s.poll_transmit().unwrap(),
            (Channel::Cstp, frame(PacketType::DpdResponse, b"probe"))
        );
    }

    #[test]
    fn user_disconnect_and_kick() {
        let t0 = Instant::now();
        let mut s = ServerSession::new(ServerTimers::default(), t0);
        s.handle_cstp(
            &frame(PacketType::Disconnect, b"\xb0Aborted by caller"),
            t0,
            |_| {},
        )
        .unwrap();
        assert_eq!(
            s.poll_event(),
            Some(ServerEvent::ClientDisconnect {
                user_requested: true,
                reason: "Aborted by caller".into()
            })
        );
        let mut kicked = ServerSession::new(ServerTimers::default(), t0);
        kicked.disconnect();
        assert_eq!(
            kicked.poll_transmit().unwrap(),
            (Channel::Cstp, frame(PacketType::Disconnect, &[]))
        );
        assert!(kicked.is_closed() && kicked.poll_timeout().is_none());
    }

    #[test]
    fn dpd_probes_then_drops() {
        let t0 = Instant::now();
        let dpd = Duration::from_secs(10);
        let timers = ServerTimers {
            dpd: Some(dpd),
            ..Default::default()
        };
        let mut s = ServerSession::new(timers, t0);
        assert_eq!(s.poll_timeout(), Some(t0 + dpd * 2));
        s.handle_timeout(t0 + dpd * 2);
        assert_eq!(
            s.poll_transmit().unwrap(),
            (Channel::Cstp, frame(PacketType::DpdRequest, &[]))
        );
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(25)));
        // An answer resets everything.
        s.handle_cstp(&frame(PacketType::DpdResponse, &[]), t0 + dpd * 2, |_| {})
            .unwrap();
        assert_eq!(s.poll_timeout(), Some(t0 + dpd * 4));
        let mut now = t0 + dpd * 2;
        while let Some(deadline) = s.poll_timeout() {
            now = deadline;
            s.handle_timeout(now);
        }
        assert_eq!(now, t0 + dpd * 5);
        assert_eq!(s.poll_event(), Some(ServerEvent::DpdTimeout));
    }

    #[test]
    fn tls_keys_are_refreshed_every_interval_with_a_keepalive_to_carry_it() {
        let t0 = Instant::now();
        let every = Duration::from_secs(20);
        let mut s = ServerSession::new(
            ServerTimers {
                tls_rekey: Some(every),
                ..Default::default()
            },
            t0,
        );
        assert_eq!(s.poll_timeout(), Some(t0 + every));
        s.handle_timeout(t0 + Duration::from_secs(19));
        assert!(!s.take_rekey_due());
        s.handle_timeout(t0 + every);
        assert!(s.take_rekey_due());
        assert!(!s.take_rekey_due(), "once per interval");
        assert_eq!(
            s.poll_transmit(),
            Some((Channel::Cstp, frame(PacketType::Keepalive, &[])))
        );
        assert_eq!(s.poll_event(), None, "the tunnel goes on");
        assert_eq!(s.poll_timeout(), Some(t0 + every * 2));
    }

    #[test]
    fn idle_ignores_ping_and_session_deadline_wins() {
        let t0 = Instant::now();
        let timers = ServerTimers {
            idle_timeout: Some(Duration::from_secs(60)),
            session_deadline: Some(t0 + Duration::from_secs(100)),
            ..Default::default()
        };
        let mut s = ServerSession::new(timers, t0);
        let mut ping = udp_packet();
        ping[9] = 1;
        s.on_packet_sent(&ping, t0 + Duration::from_secs(50));
        s.handle_timeout(t0 + Duration::from_secs(60));
        assert_eq!(s.poll_event(), Some(ServerEvent::IdleTimeout));
        // The client is told, so that it does not reconnect.
        assert_eq!(
            s.poll_transmit(),
            Some((Channel::Cstp, frame(PacketType::Disconnect, &[])))
        );

        let mut busy = ServerSession::new(timers_with_deadline(t0), t0);
        busy.on_packet_sent(&udp_packet(), t0 + Duration::from_secs(50));
        busy.handle_timeout(t0 + Duration::from_secs(60));
        assert_eq!(busy.poll_event(), None);
        busy.handle_timeout(t0 + Duration::from_secs(100));
        assert_eq!(busy.poll_event(), Some(ServerEvent::SessionTimeout));
        assert_eq!(
            busy.poll_transmit(),
            Some((Channel::Cstp, frame(PacketType::Disconnect, &[])))
        );
    }

    fn timers_with_deadline(t0: Instant) -> ServerTimers {
        ServerTimers {
            idle_timeout: Some(Duration::from_secs(60)),
            session_deadline: Some(t0 + Duration::from_secs(100)),
            ..Default::default()
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let t0 = Instant::now();
        let mut s = ServerSession::new(ServerTimers::default(), t0);
        assert!(s.handle_cstp(b"GET / HTTP/1.1\r\n", t0, |_| {}).is_err());
    }

    #[test]
    fn dtls_records_share_the_session() {
        let t0 = Instant::now();
        let mut s = ServerSession::new(ServerTimers::default(), t0);
        let mut got = Vec::new();
        let mut data = vec![PacketType::Data.code()];
        data.extend(udp_packet());
        s.handle_dtls(&data, t0, |p| got.push(p.to_vec())).unwrap();
        assert_eq!(got, vec![udp_packet()]);
        // MTU probes are echoed on the channel they came on.
        s.handle_dtls(&[PacketType::DpdRequest.code(), 1, 2, 3], t0, |_| {})
            .unwrap();
        assert_eq!(
            s.poll_transmit(),
            Some((Channel::Dtls, vec![PacketType::DpdResponse.code(), 1, 2, 3]))
        );
        s.handle_dtls(&[PacketType::Disconnect.code(), 0xb0], t0, |_| {})
            .unwrap();
        assert!(matches!(
            s.poll_event(),
            Some(ServerEvent::ClientDisconnect {
                user_requested: true,
                ..
            })
        ));
    }
}
