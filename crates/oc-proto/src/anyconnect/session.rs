//! The running tunnel, without I/O: liveness timers, control frames and disconnects.
//!
//! Data packets do not pass through this object's buffers: the shell frames outgoing packets
//! itself (see [`super::frame::cstp_header`]) and receives incoming ones through the callback
//! of [`Session::handle_cstp`]. The session only learns *that* traffic flowed, which is all
//! DPD and keepalive need. Control frames it wants sent come out of
//! [`Session::poll_transmit`]; decisions (peer dead, server disconnect, rekey due) come out of
//! [`Session::poll_event`]. Each channel (CSTP now, DTLS later) keeps its own [`Liveness`].

use std::collections::VecDeque;
use std::time::Instant;

use thiserror::Error;

use super::frame::{
    emit_cstp, parse_dtls, CstpDecoder, Frame, FrameError, PacketType, DISCONNECT_USER,
};
use super::mtu_probe::MtuProbe;
use crate::compress::{CompressError, TunnelCompression};
pub use crate::liveness::{Liveness, LivenessAction, Timers, MAX_INTERVAL};

/// The transport a frame travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Cstp,
    Dtls,
}

/// Something the shell must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Nothing heard from the peer on this channel for twice the DPD interval.
    PeerDead(Channel),
    /// The server ended the session (DISCONNECT or TERMINATE frame), with its reason text.
    ServerDisconnect(String),
    /// The rekey interval elapsed on this channel.
    RekeyDue(Channel),
    /// Path-MTU detection finished: DTLS carries packets up to this many bytes.
    DtlsMtu(usize),
    /// A compressed packet of a stateless algorithm did not decompress; it was dropped and
    /// the tunnel goes on, as openconnect does. (A broken deflate stream is an error.)
    BadCompressedPacket(CompressError),
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SessionError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Compression(#[from] CompressError),
    #[error("unknown packet type 0x{0:02x} received on the CSTP channel")]
    UnknownPacket(u8),
}

/// One tunnel's control state.
#[derive(Debug)]
pub struct Session {
    cstp: Liveness,
    /// Present while the DTLS channel is up.
    dtls: Option<Liveness>,
    /// A path-MTU search running on the DTLS channel.
    mtu_probe: Option<MtuProbe>,
    decoder: CstpDecoder,
    compression: TunnelCompression,
    control_out: VecDeque<(Channel, Vec<u8>)>,
    events: VecDeque<Event>,
    closed: bool,
}

impl Session {
    pub fn new(cstp_timers: Timers, now: Instant) -> Self {
        Self {
            cstp: Liveness::new(cstp_timers, now),
            dtls: None,
            mtu_probe: None,
            decoder: CstpDecoder::new(),
            compression: TunnelCompression::default(),
            control_out: VecDeque::new(),
            events: VecDeque::new(),
            closed: false,
        }
    }

    /// Uses the compression negotiated for this connection (a new connection starts fresh,
    /// which resets deflate's streams as the peers expect).
    pub fn with_compression(mut self, compression: TunnelCompression) -> Self {
        self.compression = compression;
        self
    }

    /// Compresses outgoing packets (see [`TunnelCompression::compress`]).
    pub fn compression(&mut self) -> &mut TunnelCompression {
        &mut self.compression
    }

    /// Feeds bytes read from the TLS connection. Each data packet is passed to `on_packet`
    /// (the caller writes it to the tun device).
    pub fn handle_cstp(
        &mut self,
        bytes: &[u8],
        now: Instant,
        mut on_packet: impl FnMut(&[u8]),
    ) -> Result<(), SessionError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.cstp.on_receive(now);
        let mut decoder = std::mem::take(&mut self.decoder);
        let result = decoder.decode(bytes, |frame: Frame<'_>| {
            self.handle_frame(Channel::Cstp, frame, &mut on_packet)
        });
        self.decoder = decoder;
        result
    }

    fn handle_frame(
        &mut self,
        channel: Channel,
        frame: Frame<'_>,
        on_packet: &mut impl FnMut(&[u8]),
    ) -> Result<(), SessionError> {
        match frame.packet_type() {
            Some(PacketType::Data) => on_packet(frame.payload),
            Some(PacketType::DpdRequest) => {
                // openconnect answers with an empty response; the server echoes probes.
                self.queue(channel, PacketType::DpdResponse, &[]);
            }
            Some(PacketType::DpdResponse) => {
                if let (Channel::Dtls, Some(probe)) = (channel, self.mtu_probe.as_mut()) {
                    probe.on_response(frame.payload);
                }
            }
            Some(PacketType::Keepalive) => {}
            Some(PacketType::Disconnect | PacketType::Terminate) => {
                self.closed = true;
                self.events
                    .push_back(Event::ServerDisconnect(disconnect_reason(frame.payload)));
            }
            Some(PacketType::Compressed) => {
                match self.compression.decompress(channel, frame.payload) {
                    Ok(packet) => on_packet(packet),
                    Err(e @ (CompressError::Lzs(_) | CompressError::Lz4(_))) => {
                        self.events.push_back(Event::BadCompressedPacket(e));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            None => return Err(SessionError::UnknownPacket(frame.code)),
        }
        Ok(())
    }

    /// The DTLS channel came up: from now on it has its own DPD and keepalive.
    pub fn start_dtls(&mut self, timers: Timers, now: Instant) {
        self.dtls = Some(Liveness::new(timers, now));
    }

    /// Searches for the largest packet DTLS carries on this path, between `min` and `max`
    /// bytes; the answer comes as [`Event::DtlsMtu`].
    pub fn start_mtu_probe(&mut self, min: usize, max: usize, now: Instant) {
        if self.dtls.is_some() {
            self.mtu_probe = Some(MtuProbe::new(min, max, now));
            self.run_mtu_probe(now);
        }
    }

    fn run_mtu_probe(&mut self, now: Instant) {
        let Some(probe) = self.mtu_probe.as_mut() else {
            return;
        };
        let payload = probe.poll_probe(now);
        if let Some(mtu) = probe.result() {
            self.mtu_probe = None;
            self.events.push_back(Event::DtlsMtu(mtu));
        }
        if let Some(payload) = payload {
            self.queue(Channel::Dtls, PacketType::DpdRequest, &payload);
        }
    }

    /// The DTLS channel is gone (dead peer, error, reconnect): its queued control frames too.
    pub fn stop_dtls(&mut self) {
        self.dtls = None;
        self.mtu_probe = None;
        self.control_out
            .retain(|(channel, _)| *channel == Channel::Cstp);
    }

    pub fn dtls_up(&self) -> bool {
        self.dtls.is_some()
    }

    /// Feeds one decrypted DTLS record (type byte + payload).
    pub fn handle_dtls(
        &mut self,
        record: &[u8],
        now: Instant,
        mut on_packet: impl FnMut(&[u8]),
    ) -> Result<(), SessionError> {
        let Some(liveness) = self.dtls.as_mut() else {
            return Ok(());
        };
        liveness.on_receive(now);
        let result = match parse_dtls(record) {
            Some(frame) => self.handle_frame(Channel::Dtls, frame, &mut on_packet),
            None => Ok(()),
        };
        // An echoed probe moves the MTU search on at once.
        self.run_mtu_probe(now);
        result
    }

    /// The shell sent a data packet on this channel.
    pub fn on_data_sent(&mut self, channel: Channel, now: Instant) {
        match channel {
            Channel::Cstp => self.cstp.on_send(now),
            Channel::Dtls => {
                if let Some(l) = self.dtls.as_mut() {
                    l.on_send(now);
                }
            }
        }
    }

    /// Ends the session from our side: a DISCONNECT with Cisco's "user" reason and `reason`
    /// as text, which makes ocserv drop the session and its cookie.
    pub fn disconnect(&mut self, reason: &str) {
        let mut payload = Vec::with_capacity(1 + reason.len());
        payload.push(DISCONNECT_USER);
        payload.extend_from_slice(reason.as_bytes());
        self.control_out.clear();
        self.queue(Channel::Cstp, PacketType::Disconnect, &payload);
        self.closed = true;
    }

    /// Control bytes to send next (already framed for their channel).
    pub fn poll_transmit(&mut self) -> Option<(Channel, Vec<u8>)> {
        self.control_out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        [
            self.cstp.next_deadline(),
            self.dtls.as_ref().and_then(Liveness::next_deadline),
            self.mtu_probe.as_ref().and_then(MtuProbe::poll_timeout),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        self.run_mtu_probe(now);
        while let Some(action) = self.dtls.as_mut().and_then(|l| l.check(now)) {
            match action {
                LivenessAction::SendDpd => self.queue(Channel::Dtls, PacketType::DpdRequest, &[]),
                LivenessAction::SendKeepalive => {
                    self.queue(Channel::Dtls, PacketType::Keepalive, &[]);
                }
                LivenessAction::Rekey => self.events.push_back(Event::RekeyDue(Channel::Dtls)),
                // A dead DTLS channel is not a dead tunnel: traffic falls back to CSTP.
                LivenessAction::Dead => {
                    self.stop_dtls();
                    self.events.push_back(Event::PeerDead(Channel::Dtls));
                }
            }
        }
        while let Some(action) = self.cstp.check(now) {
            match action {
                LivenessAction::SendDpd => self.queue(Channel::Cstp, PacketType::DpdRequest, &[]),
                LivenessAction::SendKeepalive => {
                    self.queue(Channel::Cstp, PacketType::Keepalive, &[]);
                }
                LivenessAction::Rekey => self.events.push_back(Event::RekeyDue(Channel::Cstp)),
                LivenessAction::Dead => {
                    self.closed = true;
                    self.events.push_back(Event::PeerDead(Channel::Cstp));
                    return;
                }
            }
        }
    }

    fn queue(&mut self, channel: Channel, ptype: PacketType, payload: &[u8]) {
        if let Some(frame) = control_frame(channel, ptype, payload) {
            self.control_out.push_back((channel, frame));
        }
    }
}

/// A control packet framed for its channel: the 8-byte CSTP header, or the one DTLS type
/// byte, in front of `payload`. `None` only for a payload over 64 KiB.
pub fn control_frame(channel: Channel, ptype: PacketType, payload: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(8 + payload.len());
    match channel {
        Channel::Cstp => emit_cstp(ptype, payload, &mut out).ok()?,
        Channel::Dtls => {
            out.push(ptype.code());
            out.extend_from_slice(payload);
        }
    }
    Some(out)
}

/// openconnect's wording: the reason byte and text when the server sent them.
fn disconnect_reason(payload: &[u8]) -> String {
    match payload.split_first() {
        Some((code, text)) if !text.is_empty() => format!(
            "reason 0x{code:02x}: {}",
            String::from_utf8_lossy(text).trim_end_matches('\0')
        ),
        Some((code, _)) => format!("reason 0x{code:02x}"),
        None => "no reason given".to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::anyconnect::frame::cstp_header;
    use std::time::Duration;

    const S: Duration = Duration::from_secs(1);

    fn timers(dpd: u64, keepalive: u64) -> Timers {
        Timers {
            dpd: Some(S * dpd as u32),
            keepalive: Some(S * keepalive as u32),
            rekey: None,
        }
    }

    fn drain(s: &mut Session) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| s.poll_transmit().map(|(_, b)| b)).collect()
    }

    fn frame(ptype: PacketType, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        emit_cstp(ptype, payload, &mut v).unwrap();
        v
    }

    #[test]
    fn dpd_schedule_then_dead() {
        let t0 = Instant::now();
        let mut s = Session::new(timers(30, 1000), t0);
        assert_eq!(s.poll_timeout(), Some(t0 + S * 30));
        s.handle_timeout(t0 + S * 29);
        assert!(drain(&mut s).is_empty());
        s.handle_timeout(t0 + S * 30);
        assert_eq!(drain(&mut s), vec![frame(PacketType::DpdRequest, &[])]);
        // Repeated every dpd/2 while unanswered.
        assert_eq!(s.poll_timeout(), Some(t0 + S * 45));
        s.handle_timeout(t0 + S * 45);
        assert_eq!(drain(&mut s).len(), 1);
        assert_eq!(s.poll_timeout(), Some(t0 + S * 60));
        s.handle_timeout(t0 + S * 60);
        assert_eq!(s.poll_event(), Some(Event::PeerDead(Channel::Cstp)));
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn traffic_defers_dpd() {
        let t0 = Instant::now();
        let mut s = Session::new(timers(30, 1000), t0);
        s.handle_cstp(&frame(PacketType::DpdResponse, &[]), t0 + S * 25, |_| {})
            .unwrap();
        s.handle_timeout(t0 + S * 30);
        assert!(drain(&mut s).is_empty());
        assert_eq!(s.poll_timeout(), Some(t0 + S * 55));
        s.handle_timeout(t0 + S * 70);
        assert_eq!(s.poll_event(), None);
    }

    #[test]
    fn keepalive_only_when_idle() {
        let t0 = Instant::now();
        let mut s = Session::new(
            Timers {
                keepalive: Some(S * 20),
                ..Timers::default()
            },
            t0,
        );
        s.on_data_sent(Channel::Cstp, t0 + S * 15);
        s.handle_timeout(t0 + S * 20);
        assert!(drain(&mut s).is_empty());
        s.handle_timeout(t0 + S * 35);
        assert_eq!(drain(&mut s), vec![frame(PacketType::Keepalive, &[])]);
        assert_eq!(s.poll_timeout(), Some(t0 + S * 55));
    }

    #[test]
    fn rekey_fires_once_per_interval() {
        let t0 = Instant::now();
        let mut s = Session::new(
            Timers {
                rekey: Some(S * 100),
                ..Timers::default()
            },
            t0,
        );
        s.handle_timeout(t0 + S * 100);
        assert_eq!(s.poll_event(), Some(Event::RekeyDue(Channel::Cstp)));
        s.handle_timeout(t0 + S * 150);
        assert_eq!(s.poll_event(), None);
        assert_eq!(s.poll_timeout(), Some(t0 + S * 200));
        s.handle_timeout(t0 + S * 200);
        assert_eq!(s.poll_event(), Some(Event::RekeyDue(Channel::Cstp)));
    }

    #[test]
    fn dtls_rekey_counts_from_the_dtls_handshake() {
        let t0 = Instant::now();
        let mut s = Session::new(Timers::default(), t0);
        s.start_dtls(
            Timers {
                rekey: Some(S * 16),
                ..Timers::default()
            },
            t0 + S * 4,
        );
        s.handle_timeout(t0 + S * 16);
        assert_eq!(s.poll_event(), None);
        s.handle_timeout(t0 + S * 20);
        assert_eq!(s.poll_event(), Some(Event::RekeyDue(Channel::Dtls)));
        // A new handshake restarts the interval; none without DTLS.
        s.stop_dtls();
        s.handle_timeout(t0 + S * 100);
        assert_eq!(s.poll_event(), None);
    }

    #[test]
    fn mtu_probe_runs_on_dtls_and_reports() {
        let t0 = Instant::now();
        let mut s = Session::new(Timers::default(), t0);
        s.start_dtls(Timers::default(), t0);
        s.start_mtu_probe(576, 1400, t0);
        let (channel, probe) = s.poll_transmit().unwrap();
        assert_eq!(channel, Channel::Dtls);
        assert_eq!(probe[0], PacketType::DpdRequest.code());
        assert_eq!(probe.len(), 1 + 1400);
        // The server echoes the payload in a DPD response.
        let mut echo = probe.clone();
        echo[0] = PacketType::DpdResponse.code();
        s.handle_dtls(&echo, t0, |_| {}).unwrap();
        assert_eq!(s.poll_event(), Some(Event::DtlsMtu(1400)));
        assert!(s.poll_transmit().is_none());
    }

    #[test]
    fn data_control_and_disconnect() {
        let t0 = Instant::now();
        let mut s = Session::new(Timers::default(), t0);
        let mut stream = frame(PacketType::Data, b"\x45packet");
        stream.extend(frame(PacketType::DpdRequest, b"pad"));
        stream.extend(frame(PacketType::Keepalive, &[]));
        stream.extend(frame(PacketType::Disconnect, b"\xb0bye"));
        let mut packets = Vec::new();
        s.handle_cstp(&stream, t0, |p| packets.push(p.to_vec()))
            .unwrap();
        assert_eq!(packets, vec![b"\x45packet".to_vec()]);
        assert_eq!(drain(&mut s), vec![frame(PacketType::DpdResponse, &[])]);
        assert_eq!(
            s.poll_event(),
            Some(Event::ServerDisconnect("reason 0xb0: bye".into()))
        );
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn empty_server_disconnect() {
        let mut s = Session::new(Timers::default(), Instant::now());
        s.handle_cstp(&frame(PacketType::Terminate, &[]), Instant::now(), |_| {})
            .unwrap();
        assert_eq!(
            s.poll_event(),
            Some(Event::ServerDisconnect("no reason given".into()))
        );
    }

    #[test]
    fn our_disconnect_frame() {
        let mut s = Session::new(timers(30, 20), Instant::now());
        s.disconnect("Aborted by caller");
        let out = drain(&mut s);
        let mut want = cstp_header(PacketType::Disconnect, 18).unwrap().to_vec();
        want.push(0xb0);
        want.extend_from_slice(b"Aborted by caller");
        assert_eq!(out, vec![want]);
    }

    #[test]
    fn hostile_frames_are_errors() {
        let t0 = Instant::now();
        let mut s = Session::new(Timers::default(), t0);
        let err = s
            .handle_cstp(&frame(PacketType::Compressed, b"x"), t0, |_| {})
            .unwrap_err();
        assert_eq!(
            err,
            SessionError::Compression(CompressError::NotNegotiated(Channel::Cstp))
        );
        let mut s = Session::new(Timers::default(), t0);
        let err = s
            .handle_cstp(b"STF\x01\x00\x00\x02\x00", t0, |_| {})
            .unwrap_err();
        assert_eq!(err, SessionError::UnknownPacket(2));
    }

    #[test]
    fn compressed_frames_are_decompressed_on_their_channel() {
        use crate::compress::Algorithm;
        let t0 = Instant::now();
        let packet = b"compressible compressible compressible compressible".to_vec();
        let mut peer = TunnelCompression::new(Some(Algorithm::Lzs), Some(Algorithm::Lz4), 0, 1400);
        let cstp_frame = frame(
            PacketType::Compressed,
            &peer.compress(Channel::Cstp, &packet).unwrap().unwrap()[8..],
        );
        let mut dtls_record = vec![PacketType::Compressed.code()];
        dtls_record
            .extend_from_slice(&peer.compress(Channel::Dtls, &packet).unwrap().unwrap()[8..]);
        let mut s = Session::new(Timers::default(), t0).with_compression(TunnelCompression::new(
            Some(Algorithm::Lzs),
            Some(Algorithm::Lz4),
            0,
            1400,
        ));
        s.start_dtls(Timers::default(), t0);
        let mut got = Vec::new();
        s.handle_cstp(&cstp_frame, t0, |p| got.push(p.to_vec()))
            .unwrap();
        s.handle_dtls(&dtls_record, t0, |p| got.push(p.to_vec()))
            .unwrap();
        assert_eq!(got, vec![packet.clone(), packet]);
        // Garbage in an LZS frame: that packet is dropped and reported, the tunnel goes on.
        s.handle_cstp(&frame(PacketType::Compressed, &[0xff; 3]), t0, |_| {
            panic!("nothing to deliver")
        })
        .unwrap();
        assert!(matches!(
            s.poll_event(),
            Some(Event::BadCompressedPacket(CompressError::Lzs(_)))
        ));
    }

    #[test]
    fn dtls_channel_has_its_own_liveness_and_falls_back() {
        let t0 = Instant::now();
        let mut s = Session::new(timers(30, 0), t0);
        s.start_dtls(timers(10, 0), t0);
        assert!(s.dtls_up());
        // A DPD request over DTLS is answered over DTLS; data reaches the tun.
        let mut got = Vec::new();
        s.handle_dtls(&[PacketType::DpdRequest.code()], t0, |p| {
            got.push(p.to_vec())
        })
        .unwrap();
        s.handle_dtls(&[0x00, 0x45, 0x00], t0, |p| got.push(p.to_vec()))
            .unwrap();
        assert_eq!(got, vec![vec![0x45, 0x00]]);
        assert_eq!(
            s.poll_transmit(),
            Some((Channel::Dtls, vec![PacketType::DpdResponse.code()]))
        );
        s.handle_timeout(t0 + 10 * S);
        assert_eq!(
            s.poll_transmit(),
            Some((Channel::Dtls, vec![PacketType::DpdRequest.code()]))
        );
        // Twice the DTLS DPD without an answer: DTLS is dead, the tunnel is not.
        s.handle_timeout(t0 + 20 * S);
        assert_eq!(s.poll_event(), Some(Event::PeerDead(Channel::Dtls)));
        assert!(!s.dtls_up());
        assert!(s.poll_timeout().is_some());
        assert_eq!(s.poll_transmit(), None);
    }

    /// Found by the `http_response` fuzz target: a server's timer headers go into
    /// `Instant` arithmetic unchecked, so a huge value panics the client.
    #[test]
    fn huge_timers_from_the_server_do_not_panic() {
        use crate::anyconnect::connect::TunnelConfig;
        use crate::http::{Limits, ResponseReader};
        for header in [
            "X-CSTP-DPD",
            "X-CSTP-Keepalive",
            "X-CSTP-Rekey-Time",
            "X-DTLS-DPD",
            "X-DTLS-Keepalive",
            "X-DTLS-Rekey-Time",
        ] {
            let text = format!(
                "HTTP/1.1 200 CONNECTED\r\nX-CSTP-MTU: 1400\r\nX-CSTP-Address: 10.0.0.2\r\n\
                 {header}: 18446744073709551615\r\n\r\n"
            );
            let mut reader = ResponseReader::new(Limits::default(), true);
            reader.feed(text.as_bytes()).unwrap();
            let head = reader.poll().unwrap().unwrap().head;
            // Refusing the value is a fix too.
            let Ok(cfg) = TunnelConfig::from_response(&head, None) else {
                continue;
            };
            let t0 = Instant::now();
            let mut s = Session::new(cfg.cstp_timers, t0);
            s.start_dtls(cfg.dtls.timers, t0);
            let due = s.poll_timeout();
            s.handle_timeout(t0 + S * 3600);
            if let Some(due) = due {
                s.handle_timeout(due);
            }
            let _ = s.poll_timeout();
        }
    }
}
