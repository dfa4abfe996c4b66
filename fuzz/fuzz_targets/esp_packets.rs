//! The ESP engine with OpenSSL's cipher and real keys, fed a hostile peer's datagrams.
//!
//! - Hostile bytes opened as a datagram never panic; whatever is accepted lies inside the
//!   datagram (forging the ICV is not expected, but nothing is assumed about it).
//! - A payload sealed by our side opens back to the same bytes and next header, in order,
//!   with one count more accepted; the same packet again is a replay (with protection);
//!   one bit flipped anywhere (the fuzzer picks where) is dropped and moves nothing.
//! - Authentic packets with any decrypted contents (the fuzzer writes the plaintext and
//!   trailer, the key holder seals it) are accepted with a payload inside the packet and
//!   a known next header, or dropped for their trailer.
//! - A rekey leaves the previous keys' packets to the engine's grace rule, never a panic.
//! - Memory stays bounded: one datagram buffer, reused.
//!
//! Input layout: byte 0 picks the suite (`% 6`), byte 1 bit 0 turns replay protection
//! off. Then records `[op][len: u16 LE][len bytes]`, op `% 5`: 0: the bytes as a
//! datagram; 1: the bytes sealed and opened (next header from the first byte); 2: sealed,
//! then a bit flipped at the position the first two bytes give; 3: the bytes as the
//! plaintext (rounded down to whole blocks) of an authentic packet; 4: both sides rekey.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oc_proto::esp::packet::EspHeader;
use oc_proto::esp::{
    Arrival, EspCipher, EspDrop, EspInbound, EspKeys, EspOutbound, EspSuite, NextHeader,
    MAX_ESP_PACKET_LEN,
};
use oc_tls::esp::OpenSslEspCipher;

fn keys(suite: EspSuite, generation: u8) -> EspKeys {
    let encryption: Vec<u8> = (0..suite.encryption.key_len() as u8)
        .map(|i| i ^ generation)
        .collect();
    let integrity: Vec<u8> = (0..suite.integrity.standard_key_len() as u8)
        .map(|i| i.wrapping_mul(7) ^ generation)
        .collect();
    let spi = 0x1000 + u32::from(generation);
    EspKeys::new(spi, suite, &encryption, &integrity).expect("valid keys")
}

/// A cipher with a fixed first IV, so that a crashing input replays exactly.
fn cipher(keys: &EspKeys) -> OpenSslEspCipher {
    OpenSslEspCipher::with_first_iv(keys, [0x5a; 16]).expect("cipher")
}

struct Link {
    suite: EspSuite,
    generation: u8,
    outbound: EspOutbound<OpenSslEspCipher>,
    inbound: EspInbound<OpenSslEspCipher>,
    /// The key holder sealing hand-made plaintext under the current keys, and its own
    /// receiver (so its numbers do not move the main window).
    raw_sealer: OpenSslEspCipher,
    raw_inbound: EspInbound<OpenSslEspCipher>,
    raw_sequence: u32,
    buf: Vec<u8>,
}

impl Link {
    fn new(suite: EspSuite, replay_protection: bool) -> Self {
        let keys = keys(suite, 0);
        Self {
            suite,
            generation: 0,
            outbound: EspOutbound::new(keys.spi(), cipher(&keys)),
            inbound: EspInbound::new(keys.spi(), cipher(&keys), replay_protection),
            raw_sealer: cipher(&keys),
            raw_inbound: EspInbound::new(keys.spi(), cipher(&keys), replay_protection),
            raw_sequence: 0,
            buf: vec![0; 70_000],
        }
    }

    fn rekey(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        let keys = keys(self.suite, self.generation);
        self.outbound.rekey(keys.spi(), cipher(&keys));
        self.inbound.rekey(keys.spi(), cipher(&keys));
        self.raw_sealer = cipher(&keys);
        self.raw_inbound.rekey(keys.spi(), cipher(&keys));
        self.raw_sequence = 0;
    }

    /// Seals `payload`; the packet's range in `buf`, if it fits.
    fn seal(&mut self, payload: &[u8], next_header: NextHeader) -> Option<std::ops::Range<usize>> {
        let head = self.outbound.headroom();
        if payload.is_empty() || head + payload.len() + self.outbound.tailroom() > self.buf.len() {
            return None;
        }
        self.buf[head..head + payload.len()].copy_from_slice(payload);
        let sealed = self
            .outbound
            .seal(&mut self.buf, head..head + payload.len(), next_header)
            .ok()?;
        assert_eq!(sealed.len(), self.outbound.sealed_len(payload.len()));
        Some(sealed)
    }

    fn hostile(&mut self, bytes: &[u8]) {
        let packet = &mut self.buf[..bytes.len()];
        packet.copy_from_slice(bytes);
        if let Ok(opened) = self.inbound.open(packet) {
            assert!(opened.payload.end <= bytes.len() && !opened.payload.is_empty());
        }
    }

    fn round_trip(&mut self, payload: &[u8]) {
        let next_header = match payload.first().map(|b| b % 3) {
            Some(0) => NextHeader::Ipv4,
            Some(1) => NextHeader::Ipv6,
            _ => NextHeader::LzoIpv4,
        };
        let Some(sealed) = self.seal(payload, next_header) else {
            return;
        };
        let copy = self.buf[sealed.clone()].to_vec();
        let before = *self.inbound.counters();
        let opened = self
            .inbound
            .open(&mut self.buf[sealed.clone()])
            .expect("our own packet opens");
        let at = sealed.start + opened.payload.start;
        assert_eq!(&self.buf[at..at + opened.payload.len()], payload);
        assert_eq!(opened.next_header, next_header);
        assert!(!opened.previous_keys);
        assert!(matches!(
            opened.arrival,
            Arrival::InOrder | Arrival::AfterGap { .. }
        ));
        assert_eq!(self.inbound.counters().accepted, before.accepted + 1);
        // The same packet again.
        let mut again = copy;
        match self.inbound.open(&mut again) {
            Err(EspDrop::Replayed { .. }) => {}
            Ok(o) => assert_eq!(o.arrival, Arrival::Replayed, "replay protection is off"),
            Err(other) => panic!("a replay dropped as {other:?}"),
        }
    }

    fn flipped(&mut self, bytes: &[u8]) {
        let Some((&[hi, lo], payload)) = bytes.split_first_chunk::<2>() else {
            return;
        };
        let Some(sealed) = self.seal(payload, NextHeader::Ipv4) else {
            return;
        };
        let mut packet = self.buf[sealed].to_vec();
        let position = usize::from(u16::from_le_bytes([hi, lo]));
        let bit = position % 8;
        let index = (position / 8) % packet.len();
        packet[index] ^= 1 << bit;
        let window_before = self.inbound.counters().accepted;
        assert!(
            self.inbound.open(&mut packet).is_err(),
            "a flipped bit passed"
        );
        assert_eq!(self.inbound.counters().accepted, window_before);
    }

    fn authentic_plaintext(&mut self, plain: &[u8]) {
        let block = self.suite.block_len();
        let plain = &plain[..plain.len() - plain.len() % block];
        if plain.is_empty() {
            return;
        }
        let iv_end = 8 + self.suite.iv_len();
        let len = iv_end + plain.len() + self.suite.icv_len();
        if len > MAX_ESP_PACKET_LEN {
            return;
        }
        let packet = &mut self.buf[..len];
        EspHeader {
            spi: self.inbound.spi(),
            sequence: self.raw_sequence,
        }
        .emit(packet);
        packet[iv_end..iv_end + plain.len()].copy_from_slice(plain);
        self.raw_sealer.seal(packet).expect("the key holder seals");
        self.raw_sequence = self.raw_sequence.saturating_add(1);
        match self.raw_inbound.open(packet) {
            Ok(opened) => {
                assert!(opened.payload.start == iv_end && opened.payload.end <= len);
                assert_eq!(
                    NextHeader::from_byte(plain[plain.len() - 1]),
                    Some(opened.next_header)
                );
            }
            Err(
                EspDrop::UnknownNextHeader { .. }
                | EspDrop::BadPadLength { .. }
                | EspDrop::BadPadding
                | EspDrop::Replayed { .. }
                | EspDrop::TooOld { .. },
            ) => {}
            Err(other) => panic!("an authentic packet dropped as {other:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&[which, flags], mut ops)) = data.split_first_chunk::<2>() else {
        return;
    };
    let suite = EspSuite::ALL[usize::from(which) % EspSuite::ALL.len()];
    let mut link = Link::new(suite, flags & 1 == 0);
    while let Some((&[op, lo, hi], rest)) = ops.split_first_chunk::<3>() {
        let len = usize::from(u16::from_le_bytes([lo, hi])).min(rest.len());
        let (bytes, rest) = rest.split_at(len);
        ops = rest;
        match op % 5 {
            0 => link.hostile(bytes),
            1 => link.round_trip(bytes),
            2 => link.flipped(bytes),
            3 => link.authentic_plaintext(bytes),
            _ => link.rekey(),
        }
    }
});
