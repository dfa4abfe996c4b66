//! The two directions of an ESP tunnel: sealing with the outgoing sequence counter, and
//! opening with the incoming window, including the previous association that stays
//! valid for a while after new keys arrive.

use std::ops::Range;

use super::packet::{
    pad_len, padded_len, read_trailer, write_trailer, EspHeader, NextHeader, ESP_HEADER_LEN,
    ESP_TRAILER_LEN, MAX_ESP_PACKET_LEN,
};
use super::replay::{Arrival, ReplayWindow};
use super::{CipherFailure, EspCipher, EspDrop, EspError, EspSuite};

/// After new inbound keys, the old association stays open for packets whose sequence
/// number plus the new one's next expected number stays below the old one's next
/// expected number at the change plus this (upstream's `old_esp_maxseq`).
pub const PREVIOUS_SA_GRACE: u64 = 32;

/// The outgoing direction: the peer's SPI, our sequence counter and the cipher.
#[derive(Debug)]
pub struct EspOutbound<C> {
    spi: u32,
    /// The next sequence number to send; reaching 2^32 ends the association.
    next_sequence: u64,
    cipher: C,
}

impl<C: EspCipher> EspOutbound<C> {
    /// Starts at sequence number 0, as upstream does (not RFC 4303's 1; gateways accept
    /// it because their windows start the same way).
    pub fn new(spi: u32, cipher: C) -> Self {
        Self {
            spi,
            next_sequence: 0,
            cipher,
        }
    }

    /// New keys: the new SPI, and the count starts again at 0.
    pub fn rekey(&mut self, spi: u32, cipher: C) {
        *self = Self::new(spi, cipher);
    }

    pub fn spi(&self) -> u32 {
        self.spi
    }

    /// The sequence number the next packet gets.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    #[cfg(test)]
    pub(crate) fn skip_to(&mut self, sequence: u64) {
        self.next_sequence = sequence;
    }

    /// Bytes the caller keeps free before a payload: SPI, sequence number and IV.
    pub fn headroom(&self) -> usize {
        ESP_HEADER_LEN + self.cipher.suite().iv_len()
    }

    /// Bytes the caller keeps free after a payload for any length of it: the most padding,
    /// the trailer and the ICV.
    pub fn tailroom(&self) -> usize {
        let suite = self.cipher.suite();
        suite.block_len() - 1 + ESP_TRAILER_LEN + suite.icv_len()
    }

    /// The length of the packet that `payload_len` bytes of payload make.
    pub fn sealed_len(&self, payload_len: usize) -> usize {
        let suite = self.cipher.suite();
        self.headroom() + padded_len(payload_len, suite.block_len()) + suite.icv_len()
    }

    /// The largest payload whose packet fits in `packet_len` bytes (an MTU question).
    pub fn max_payload(&self, packet_len: usize) -> usize {
        let suite = self.cipher.suite();
        let block = suite.block_len();
        let room = packet_len.saturating_sub(self.headroom() + suite.icv_len());
        (room - room % block).saturating_sub(ESP_TRAILER_LEN)
    }

    /// Seals the IP packet in `buf[payload]` where it lies: the header and IV go into the
    /// headroom before it, padding, trailer and ICV into the room after it. Returns where
    /// the ESP packet now is in `buf`.
    pub fn seal(
        &mut self,
        buf: &mut [u8],
        payload: Range<usize>,
        next_header: NextHeader,
    ) -> Result<Range<usize>, EspError> {
        let suite = self.cipher.suite();
        if payload.start > payload.end || payload.end > buf.len() {
            return Err(EspError::PayloadOutsideBuffer {
                start: payload.start,
                end: payload.end,
                buffer: buf.len(),
            });
        }
        let payload_len = payload.end - payload.start;
        if payload_len == 0 {
            // The receiver (upstream's too) refuses a packet without payload.
            return Err(EspError::EmptyPayload);
        }
        let headroom = self.headroom();
        let Some(start) = payload.start.checked_sub(headroom) else {
            return Err(EspError::NoHeadroom {
                needed: headroom,
                available: payload.start,
            });
        };
        let trailer = pad_len(payload_len, suite.block_len()) + ESP_TRAILER_LEN;
        let end = payload.end + trailer + suite.icv_len();
        if end > buf.len() {
            return Err(EspError::NoTailroom {
                needed: end - payload.end,
                available: buf.len() - payload.end,
            });
        }
        if end - start > MAX_ESP_PACKET_LEN {
            return Err(EspError::PacketTooLong { len: end - start });
        }
        let sequence = u32::try_from(self.next_sequence)
            .map_err(|_| EspError::SequenceExhausted { spi: self.spi })?;
        // The checks above make this slice and the trailer's fit; the error arms are
        // never taken.
        let Some(packet) = buf.get_mut(start..end) else {
            return Err(EspError::PacketTooLong { len: end - start });
        };
        EspHeader {
            spi: self.spi,
            sequence,
        }
        .emit(packet);
        let encrypted = headroom..packet.len() - suite.icv_len();
        let written = packet.get_mut(encrypted).is_some_and(|plain| {
            write_trailer(plain, payload_len, next_header.byte(), suite.block_len())
        });
        if !written {
            return Err(EspError::PacketTooLong { len: end - start });
        }
        self.cipher
            .seal(packet)
            .map_err(|e| EspError::Cipher(e.to_string()))?;
        self.next_sequence += 1;
        Ok(start..end)
    }

    /// [`Self::seal`] with the next header the IP version of the payload says.
    pub fn seal_ip(
        &mut self,
        buf: &mut [u8],
        payload: Range<usize>,
    ) -> Result<Range<usize>, EspError> {
        let next_header = NextHeader::of_ip_packet(buf.get(payload.clone()).unwrap_or_default());
        self.seal(buf, payload, next_header)
    }
}

/// What an accepted packet holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Where the payload (an IP packet, or Juniper's LZO block) lies in the buffer.
    pub payload: Range<usize>,
    pub next_header: NextHeader,
    pub spi: u32,
    pub sequence: u32,
    /// How it stood against the window (replays and old packets arrive only when replay
    /// protection is off: upstream's "Tolerating ..." cases).
    pub arrival: Arrival,
    /// It came under the previous keys, in the grace after a rekey.
    pub previous_keys: bool,
}

/// Counts of what arrived, by outcome; each drop counts once, under its reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboundCounters {
    pub accepted: u64,
    /// Accepted although replayed or too old (replay protection off).
    pub tolerated: u64,
    /// Too short, too long, or not whole blocks.
    pub malformed: u64,
    /// An SPI we do not have (or no longer take).
    pub unknown_spi: u64,
    pub replayed: u64,
    pub too_old: u64,
    pub integrity_failed: u64,
    /// Authentic but with an unknown next header or wrong padding.
    pub bad_trailer: u64,
    pub cipher_failed: u64,
    /// Authentic LZO-compressed packets that did not inflate.
    pub decompression_failed: u64,
}

impl InboundCounters {
    fn count(&mut self, drop: &EspDrop) {
        let counter = match drop {
            EspDrop::TooShort { .. } | EspDrop::TooLong { .. } | EspDrop::NotWholeBlocks { .. } => {
                &mut self.malformed
            }
            EspDrop::UnknownSpi { .. } | EspDrop::RetiredSpi { .. } => &mut self.unknown_spi,
            EspDrop::Replayed { .. } => &mut self.replayed,
            EspDrop::TooOld { .. } => &mut self.too_old,
            EspDrop::IntegrityCheckFailed { .. } => &mut self.integrity_failed,
            EspDrop::UnknownNextHeader { .. }
            | EspDrop::BadPadLength { .. }
            | EspDrop::BadPadding => &mut self.bad_trailer,
            EspDrop::Cipher(_) => &mut self.cipher_failed,
            EspDrop::Decompression { .. } => &mut self.decompression_failed,
        };
        *counter += 1;
    }

    /// Everything dropped.
    pub fn dropped(&self) -> u64 {
        self.malformed
            + self.unknown_spi
            + self.replayed
            + self.too_old
            + self.integrity_failed
            + self.bad_trailer
            + self.cipher_failed
            + self.decompression_failed
    }
}

/// One incoming association: its SPI, window and cipher.
#[derive(Debug)]
struct InboundSa<C> {
    spi: u32,
    window: ReplayWindow,
    cipher: C,
}

impl<C> InboundSa<C> {
    fn new(spi: u32, cipher: C) -> Self {
        Self {
            spi,
            window: ReplayWindow::new(),
            cipher,
        }
    }
}

/// The incoming direction: the current association and, after a rekey, the previous one.
#[derive(Debug)]
pub struct EspInbound<C> {
    current: InboundSa<C>,
    previous: Option<InboundSa<C>>,
    /// The bound on previous-SA sequence numbers (upstream's `old_esp_maxseq`).
    previous_limit: u64,
    /// Drop replays and old packets (GlobalProtect always; Pulse and NC as the gateway
    /// says). Off, they are accepted and reported.
    replay_protection: bool,
    counters: InboundCounters,
}

impl<C: EspCipher> EspInbound<C> {
    pub fn new(spi: u32, cipher: C, replay_protection: bool) -> Self {
        Self {
            current: InboundSa::new(spi, cipher),
            previous: None,
            previous_limit: 0,
            replay_protection,
            counters: InboundCounters::default(),
        }
    }

    /// New keys under a new SPI. The current association becomes the previous one and
    /// keeps accepting its packets while their sequence number plus the new window's
    /// next expected number is below its own next expected number now plus 32: a few
    /// late packets, fewer as the new keys carry traffic.
    pub fn rekey(&mut self, spi: u32, cipher: C) {
        let retired = std::mem::replace(&mut self.current, InboundSa::new(spi, cipher));
        self.previous_limit = retired.window.next_expected() + PREVIOUS_SA_GRACE;
        self.previous = Some(retired);
    }

    pub fn set_replay_protection(&mut self, on: bool) {
        self.replay_protection = on;
    }

    pub fn spi(&self) -> u32 {
        self.current.spi
    }

    pub fn previous_spi(&self) -> Option<u32> {
        self.previous.as_ref().map(|sa| sa.spi)
    }

    /// A drop decided after the packet was opened (its payload would not inflate).
    pub fn note_drop(&mut self, drop: &EspDrop) {
        self.counters.count(drop);
    }

    pub fn counters(&self) -> &InboundCounters {
        &self.counters
    }

    /// Opens one received datagram in place. On success the payload lies decrypted at
    /// `Opened::payload` inside `packet`; on a drop `packet` may hold anything.
    pub fn open(&mut self, packet: &mut [u8]) -> Result<Opened, EspDrop> {
        let result = self.open_counted(packet);
        match &result {
            Ok(opened) if opened.arrival.is_new() => self.counters.accepted += 1,
            Ok(_) => {
                self.counters.accepted += 1;
                self.counters.tolerated += 1;
            }
            Err(drop) => self.counters.count(drop),
        }
        result
    }

    fn open_counted(&mut self, packet: &mut [u8]) -> Result<Opened, EspDrop> {
        let len = packet.len();
        if len > MAX_ESP_PACKET_LEN {
            return Err(EspDrop::TooLong { len });
        }
        let Some(EspHeader { spi, sequence }) = EspHeader::parse(packet) else {
            return Err(EspDrop::TooShort {
                len,
                min: min_packet_len(self.current.cipher.suite()),
            });
        };
        let current_next = self.current.window.next_expected();
        let (sa, previous_keys) = if spi == self.current.spi {
            (&mut self.current, false)
        } else {
            match &mut self.previous {
                Some(old) if old.spi == spi => {
                    if u64::from(sequence) + current_next >= self.previous_limit {
                        return Err(EspDrop::RetiredSpi { spi, sequence });
                    }
                    (old, true)
                }
                _ => return Err(EspDrop::UnknownSpi { spi }),
            }
        };
        // Each association lays packets out by its own suite (a rekey may change it).
        let encrypted = encrypted_part(sa.cipher.suite(), len)?;
        // The window is asked before the ICV (cheap, and a forgery cannot move it) and
        // moved only after it.
        let arrival = sa.window.classify(sequence);
        if !arrival.is_new() && self.replay_protection {
            return Err(match arrival {
                Arrival::TooOld => EspDrop::TooOld {
                    sequence,
                    expected: sa.window.next_expected(),
                },
                _ => EspDrop::Replayed { sequence },
            });
        }
        sa.cipher.open(packet).map_err(|e| match e {
            CipherFailure::IntegrityCheck => EspDrop::IntegrityCheckFailed { spi, sequence },
            CipherFailure::Library(why) => EspDrop::Cipher(why),
        })?;
        sa.window.accept(sequence);
        let plain = packet.get(encrypted.clone()).unwrap_or_default();
        let (payload_len, next_header) = read_trailer(plain)?;
        Ok(Opened {
            payload: encrypted.start..encrypted.start + payload_len,
            next_header,
            spi,
            sequence,
            arrival,
            previous_keys,
        })
    }
}

/// The smallest packet of a suite: header, IV, one block, ICV.
fn min_packet_len(suite: EspSuite) -> usize {
    ESP_HEADER_LEN + suite.iv_len() + suite.block_len() + suite.icv_len()
}

/// Where the encrypted part of a `len`-byte packet lies, if it is whole blocks.
fn encrypted_part(suite: EspSuite, len: usize) -> Result<Range<usize>, EspDrop> {
    let min = min_packet_len(suite);
    if len < min {
        return Err(EspDrop::TooShort { len, min });
    }
    let encrypted = ESP_HEADER_LEN + suite.iv_len()..len - suite.icv_len();
    if !encrypted.len().is_multiple_of(suite.block_len()) {
        return Err(EspDrop::NotWholeBlocks {
            len: encrypted.len(),
            block: suite.block_len(),
        });
    }
    Ok(encrypted)
}
