//! One ESP channel's life beside the TLS one, without a clock or a socket: the probes that
//! bring it up (five, a second apart), the gateway's answer that makes it carry the
//! tunnel, its dead-peer detection (a probe after `dpd` of silence, the peer dead after
//! `2 * dpd`), and both directions' associations. The shell owns the socket and the
//! buffers; it seals and opens through the session and asks
//! [`EspSession::handle_timeout`] what is due.
//!
//! When to start, give up and try again is [`UdpLink`]'s, with [`UdpTimers::ESP`]; how a
//! probe looks and how its answer is told apart is the vendor's [`EspProber`]
//! (GlobalProtect's ICMP echo to its magic address, Pulse/NC's single byte).

use std::ops::Range;
use std::time::{Duration, Instant};

use super::{EspCipher, EspDrop, EspError, EspInbound, EspOutbound, InboundCounters, NextHeader};
use crate::liveness::{Liveness, LivenessAction, Timers};
use crate::udp_link::{ProbeAnswer, UdpAction, UdpLink, UdpTimers};

/// A vendor's probe: what to send, and which opened payload is the gateway's answer.
pub trait EspProber {
    /// The next probe's payload and its next-header field.
    fn next_probe(&mut self) -> Option<(Vec<u8>, NextHeader)>;

    /// Whether an opened payload answers a probe (it is then not for the tun device).
    fn is_answer(&self, payload: &[u8]) -> bool;
}

/// What the shell is to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EspAction {
    /// Seal and send a probe ([`EspSession::seal_probe`]).
    SendProbe,
    /// The channel is given up for this reason (not answered in time, or a dead peer):
    /// the traffic goes over TLS.
    Abandon(String),
}

/// What an opened datagram was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// An IP packet at this range of the datagram.
    Packet(Range<usize>),
    /// The answer to a probe that made the channel carry the tunnel.
    Established,
    /// The answer to a probe (a keepalive's, or a late one).
    ProbeAnswer,
    /// Juniper's LZO-compressed Legacy IP packet (next header 5), inflated into
    /// [`EspSession::inflated`] (the receive side only, as upstream: nothing sends it).
    Inflated,
}

/// The largest packet an LZO payload may inflate to.
const MAX_INFLATED: usize = super::MAX_ESP_PACKET_LEN;

/// One ESP channel: its state, its liveness and its associations.
#[derive(Debug)]
pub struct EspSession<C, P> {
    link: UdpLink,
    /// DPD while the channel carries the tunnel.
    liveness: Liveness,
    prober: P,
    outbound: EspOutbound<C>,
    inbound: EspInbound<C>,
    /// The last inflated packet: the buffer (allocated on the first LZO packet) and the
    /// length used.
    inflated: Vec<u8>,
    inflated_len: usize,
}

impl<C: EspCipher, P: EspProber> EspSession<C, P> {
    /// A channel not yet started; `dpd` is the probe interval once up (`None`: none).
    pub fn new(
        outbound: EspOutbound<C>,
        inbound: EspInbound<C>,
        prober: P,
        dpd: Option<Duration>,
        now: Instant,
    ) -> Self {
        Self {
            link: UdpLink::new(UdpTimers::ESP),
            liveness: Liveness::new(
                Timers {
                    dpd,
                    ..Timers::default()
                },
                now,
            ),
            prober,
            outbound,
            inbound,
            inflated: Vec::new(),
            inflated_len: 0,
        }
    }

    /// An attempt starts now: send a probe ([`EspAction::SendProbe`]), unless the channel
    /// is disabled for the session (`None`).
    pub fn start(&mut self, now: Instant) -> Option<EspAction> {
        self.link.start(now);
        self.link.handshake_done(now).map(|_| EspAction::SendProbe)
    }

    pub fn is_up(&self) -> bool {
        self.link.is_up()
    }

    pub fn is_connecting(&self) -> bool {
        self.link.is_connecting()
    }

    /// openconnect's words for the state (`SIGUSR1`).
    pub fn status(&self) -> &'static str {
        self.link.status()
    }

    /// The channel failed outside the session's sight (the socket): down now, tried again
    /// after the pause.
    pub fn lost(&mut self, now: Instant) {
        self.link.failed(now);
    }

    /// No ESP for the rest of these keys' life (a TLS tunnel made them void).
    pub fn disable(&mut self) {
        self.link.disable();
    }

    pub fn counters(&self) -> &InboundCounters {
        self.inbound.counters()
    }

    /// The gateway's new keys for what we send (Pulse's and NC's rekey).
    pub fn rekey_outbound(&mut self, spi: u32, cipher: C) {
        self.outbound.rekey(spi, cipher);
    }

    /// Our new keys for what we receive; the previous ones stay for late packets.
    pub fn rekey_inbound(&mut self, spi: u32, cipher: C) {
        self.inbound.rekey(spi, cipher);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let dpd = self
            .link
            .is_up()
            .then(|| self.liveness.next_deadline())
            .flatten();
        [self.link.poll_timeout(), dpd].into_iter().flatten().min()
    }

    /// What is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<EspAction> {
        if let Some(action) = self.link.handle_timeout(now) {
            return match action {
                UdpAction::SendProbe => Some(EspAction::SendProbe),
                UdpAction::Abandon(_) => Some(EspAction::Abandon(
                    "the gateway did not answer the ESP probes".into(),
                )),
                // A retry after the pause: ESP has no handshake, the probes start at once.
                UdpAction::StartHandshake => {
                    self.link.handshake_done(now).map(|_| EspAction::SendProbe)
                }
            };
        }
        if !self.link.is_up() {
            return None;
        }
        match self.liveness.check(now)? {
            LivenessAction::SendDpd => Some(EspAction::SendProbe),
            LivenessAction::Dead => {
                self.link.failed(now);
                Some(EspAction::Abandon("ESP detected dead peer".into()))
            }
            LivenessAction::SendKeepalive | LivenessAction::Rekey => None,
        }
    }

    /// Builds the next probe into `buf` (cleared first) and seals it; the packet is at the
    /// returned range.
    pub fn seal_probe(&mut self, buf: &mut Vec<u8>) -> Result<Range<usize>, EspError> {
        let Some((probe, next_header)) = self.prober.next_probe() else {
            return Err(EspError::EmptyPayload);
        };
        let headroom = self.outbound.headroom();
        buf.clear();
        buf.resize(headroom, 0);
        buf.extend_from_slice(&probe);
        buf.resize(headroom + probe.len() + self.outbound.tailroom(), 0);
        self.outbound
            .seal(buf, headroom..headroom + probe.len(), next_header)
    }

    /// Seals the IP packet at `buf[payload]` in place (see [`EspOutbound::seal`]).
    pub fn seal(
        &mut self,
        buf: &mut [u8],
        payload: Range<usize>,
        now: Instant,
    ) -> Result<Range<usize>, EspError> {
        let sealed = self.outbound.seal_ip(buf, payload)?;
        self.liveness.on_send(now);
        Ok(sealed)
    }

    /// Opens one received datagram in place.
    pub fn open(&mut self, datagram: &mut [u8], now: Instant) -> Result<Incoming, EspDrop> {
        let opened = self.inbound.open(datagram)?;
        self.liveness.on_receive(now);
        let payload = datagram.get(opened.payload.clone()).unwrap_or_default();
        if !self.prober.is_answer(payload) {
            if opened.next_header == NextHeader::LzoIpv4 {
                return self.inflate(opened.payload, datagram);
            }
            return Ok(Incoming::Packet(opened.payload));
        }
        if self.link.is_connecting() {
            let accepted = ProbeAnswer::Accepted {
                ipv4: None,
                ipv6: None,
            };
            // Silence counts from this answer on: `on_receive` above.
            self.link.probe_answered(&accepted, now);
            return Ok(Incoming::Established);
        }
        Ok(Incoming::ProbeAnswer)
    }

    /// The IP packet of the last [`Incoming::Inflated`].
    pub fn inflated(&self) -> &[u8] {
        self.inflated.get(..self.inflated_len).unwrap_or_default()
    }

    /// Inflates the LZO payload at `datagram[payload]` (a drop when it does not).
    fn inflate(&mut self, payload: Range<usize>, datagram: &[u8]) -> Result<Incoming, EspDrop> {
        let compressed = datagram.get(payload).unwrap_or_default();
        if self.inflated.len() < MAX_INFLATED {
            self.inflated.resize(MAX_INFLATED, 0);
        }
        match lzo::decompress_into(compressed, &mut self.inflated) {
            Ok(len) => {
                self.inflated_len = len;
                Ok(Incoming::Inflated)
            }
            Err(_) => {
                self.inflated_len = 0;
                let drop = EspDrop::Decompression {
                    len: compressed.len(),
                };
                self.inbound.note_drop(&drop);
                Err(drop)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::esp::tests::{FakeCipher, TEST_SUITE};

    /// Probes of one byte, answered by a payload of `[0xaa]`.
    struct OneByte;

    impl EspProber for OneByte {
        fn next_probe(&mut self) -> Option<(Vec<u8>, NextHeader)> {
            Some((vec![0], NextHeader::Ipv4))
        }

        fn is_answer(&self, payload: &[u8]) -> bool {
            payload == [0xaa]
        }
    }

    const SPI_OUT: u32 = 0x1111;
    const SPI_IN: u32 = 0x2222;

    fn session(now: Instant) -> EspSession<FakeCipher, OneByte> {
        EspSession::new(
            EspOutbound::new(SPI_OUT, FakeCipher::new(TEST_SUITE, 7)),
            EspInbound::new(SPI_IN, FakeCipher::new(TEST_SUITE, 7), true),
            OneByte,
            Some(Duration::from_secs(10)),
            now,
        )
    }

    /// What the gateway sends: `payload` sealed under our inbound SPI.
    fn from_gateway(gateway: &mut EspOutbound<FakeCipher>, payload: &[u8]) -> Vec<u8> {
        sealed_as(gateway, payload, NextHeader::Ipv4)
    }

    fn sealed_as(
        gateway: &mut EspOutbound<FakeCipher>,
        payload: &[u8],
        next_header: NextHeader,
    ) -> Vec<u8> {
        let h = gateway.headroom();
        let mut buf = vec![0; h];
        buf.extend_from_slice(payload);
        buf.resize(h + payload.len() + gateway.tailroom(), 0);
        let range = gateway
            .seal(&mut buf, h..h + payload.len(), next_header)
            .unwrap();
        buf[range].to_vec()
    }

    #[test]
    fn juniper_lzo_packets_inflate_and_bad_ones_are_counted_drops() {
        let t0 = Instant::now();
        let mut esp = session(t0);
        let mut gateway = EspOutbound::new(SPI_IN, FakeCipher::new(TEST_SUITE, 7));
        let packet: Vec<u8> = [0x45u8, 0, 5, 0xdc]
            .into_iter()
            .chain((0..1496u32).map(|i| (i % 23) as u8))
            .collect();
        let compressed = lzo1x::compress(&packet, lzo1x::CompressLevel::default());
        assert!(compressed.len() < packet.len() / 4);
        let mut datagram = sealed_as(&mut gateway, &compressed, NextHeader::LzoIpv4);
        assert_eq!(esp.open(&mut datagram, t0), Ok(Incoming::Inflated));
        assert_eq!(esp.inflated(), packet);
        // Truncated and garbage blocks are drops of their own kind.
        for bad in [&compressed[..compressed.len() - 3], &[0xff, 1, 2][..]] {
            let mut datagram = sealed_as(&mut gateway, bad, NextHeader::LzoIpv4);
            assert_eq!(
                esp.open(&mut datagram, t0),
                Err(EspDrop::Decompression { len: bad.len() })
            );
            assert!(esp.inflated().is_empty());
        }
        assert_eq!(esp.counters().decompression_failed, 2);
        assert_eq!(esp.counters().dropped(), 2);
    }

    #[test]
    fn probes_each_second_then_up_on_the_answer_then_dpd() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut esp = session(t0);
        assert_eq!(esp.start(t0), Some(EspAction::SendProbe));
        assert!(esp.is_connecting());
        let mut buf = Vec::new();
        let sealed = esp.seal_probe(&mut buf).unwrap();
        assert!(sealed.len() > 8 && buf[sealed.start..sealed.start + 4] == SPI_OUT.to_be_bytes());
        assert_eq!(esp.poll_timeout(), Some(t0 + secs(1)));
        assert_eq!(esp.handle_timeout(t0 + secs(1)), Some(EspAction::SendProbe));

        let mut gateway = EspOutbound::new(SPI_IN, FakeCipher::new(TEST_SUITE, 7));
        // A data packet before the answer goes to the tun device.
        let mut data = from_gateway(&mut gateway, &[0x45, 1, 2, 3]);
        let Ok(Incoming::Packet(range)) = esp.open(&mut data, t0 + secs(2)) else {
            panic!("not a packet");
        };
        assert_eq!(data[range], [0x45, 1, 2, 3]);
        assert!(!esp.is_up());
        let mut answer = from_gateway(&mut gateway, &[0xaa]);
        assert_eq!(
            esp.open(&mut answer, t0 + secs(2)),
            Ok(Incoming::Established)
        );
        assert!(esp.is_up());
        // Up: a probe after 10 s of silence, again every 5 s, dead at 20 s.
        assert_eq!(esp.poll_timeout(), Some(t0 + secs(12)));
        assert_eq!(
            esp.handle_timeout(t0 + secs(12)),
            Some(EspAction::SendProbe)
        );
        let mut late = from_gateway(&mut gateway, &[0xaa]);
        assert_eq!(
            esp.open(&mut late, t0 + secs(13)),
            Ok(Incoming::ProbeAnswer)
        );
        assert_eq!(
            esp.handle_timeout(t0 + secs(23)),
            Some(EspAction::SendProbe)
        );
        assert_eq!(
            esp.handle_timeout(t0 + secs(28)),
            Some(EspAction::SendProbe)
        );
        assert_eq!(
            esp.handle_timeout(t0 + secs(33)),
            Some(EspAction::Abandon("ESP detected dead peer".into()))
        );
        assert!(!esp.is_up());
    }

    #[test]
    fn a_rekey_moves_both_directions_to_new_spis() {
        let t0 = Instant::now();
        let mut esp = session(t0);
        esp.rekey_outbound(0x3333, FakeCipher::new(TEST_SUITE, 7));
        let mut buf = Vec::new();
        let sealed = esp.seal_probe(&mut buf).unwrap();
        assert_eq!(buf[sealed.start..sealed.start + 4], 0x3333u32.to_be_bytes());
        let mut old_gateway = EspOutbound::new(SPI_IN, FakeCipher::new(TEST_SUITE, 7));
        let mut late = from_gateway(&mut old_gateway, &[0x45, 9]);
        esp.rekey_inbound(0x4444, FakeCipher::new(TEST_SUITE, 7));
        let mut gateway = EspOutbound::new(0x4444, FakeCipher::new(TEST_SUITE, 7));
        let mut new = from_gateway(&mut gateway, &[0x45, 8]);
        assert!(matches!(esp.open(&mut new, t0), Ok(Incoming::Packet(_))));
        assert!(
            matches!(esp.open(&mut late, t0), Ok(Incoming::Packet(_))),
            "the previous keys still open late packets"
        );
        let mut stranger = EspOutbound::new(0x5555, FakeCipher::new(TEST_SUITE, 7));
        let mut foreign = from_gateway(&mut stranger, &[0x45, 7]);
        assert!(esp.open(&mut foreign, t0).is_err());
    }

    #[test]
    fn the_juniper_probe_is_answered_by_its_echo() {
        let mut prober = crate::esp::JuniperProber {
            gateway_is_ipv6: true,
        };
        assert_eq!(prober.next_probe(), Some((vec![0], NextHeader::Ipv6)));
        assert!(prober.is_answer(&[0]));
        assert!(!prober.is_answer(&[0, 0]) && !prober.is_answer(&[]));
    }

    #[test]
    fn unanswered_probes_abandon_after_five_seconds_and_retry_a_minute_later() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut esp = session(t0);
        esp.start(t0);
        let sent = (1..5)
            .filter(|s| esp.handle_timeout(t0 + secs(*s)) == Some(EspAction::SendProbe))
            .count();
        assert_eq!(sent, 4, "a probe each second besides the first");
        let Some(EspAction::Abandon(why)) = esp.handle_timeout(t0 + secs(5)) else {
            panic!("not abandoned");
        };
        assert!(why.contains("did not answer"), "{why}");
        assert_eq!(esp.status(), "waiting to retry");
        assert_eq!(
            esp.handle_timeout(t0 + secs(65)),
            Some(EspAction::SendProbe)
        );
        assert!(esp.is_connecting());
        esp.disable();
        assert_eq!(esp.poll_timeout(), None);
        assert_eq!(esp.start(t0 + secs(70)), None, "disabled for good");
    }

    #[test]
    fn forged_and_foreign_datagrams_are_dropped_without_changing_state() {
        let t0 = Instant::now();
        let mut esp = session(t0);
        esp.start(t0);
        let mut stranger = EspOutbound::new(0x9999, FakeCipher::new(TEST_SUITE, 7));
        let mut foreign = from_gateway(&mut stranger, &[0xaa]);
        assert!(matches!(
            esp.open(&mut foreign, t0),
            Err(EspDrop::UnknownSpi { spi: 0x9999 })
        ));
        assert!(matches!(
            esp.open(&mut [], t0),
            Err(EspDrop::TooShort { .. })
        ));
        let mut gateway = EspOutbound::new(SPI_IN, FakeCipher::new(TEST_SUITE, 7));
        let mut forged = from_gateway(&mut gateway, &[0xaa]);
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert!(matches!(
            esp.open(&mut forged, t0),
            Err(EspDrop::IntegrityCheckFailed { .. })
        ));
        assert!(esp.is_connecting() && !esp.is_up());
        assert_eq!(esp.counters().dropped(), 3);
    }
}
