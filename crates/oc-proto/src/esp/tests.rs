//! The engine with a fake cipher: layout, padding, errors, drops, replay and rekey. The
//! real cipher's vectors and round trips are in `oc_tls::esp`.

use proptest::prelude::*;

use super::packet::{padded_len, write_trailer};
use super::*;

/// Not cryptography: XOR with the key and IV, and a keyed FNV-1a checksum as the ICV,
/// enough to tell a tampered byte or a wrong key.
#[derive(Debug)]
pub(super) struct FakeCipher {
    suite: EspSuite,
    key: u8,
    next_iv: u8,
}

impl FakeCipher {
    pub(super) fn new(suite: EspSuite, key: u8) -> Self {
        Self {
            suite,
            key,
            next_iv: 1,
        }
    }

    fn checksum(&self, bytes: &[u8]) -> u64 {
        bytes
            .iter()
            .fold(0xcbf2_9ce4_8422_2325 ^ u64::from(self.key), |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            })
    }

    fn icv(&self, bytes: &[u8], out: &mut [u8]) {
        let sum = self.checksum(bytes).to_be_bytes();
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = sum[i % 8];
        }
    }

    fn xor(&self, iv: &[u8], data: &mut [u8]) {
        for (i, byte) in data.iter_mut().enumerate() {
            *byte ^= self.key ^ iv[i % iv.len()];
        }
    }

    fn split(&self, len: usize) -> Result<(usize, usize), CipherFailure> {
        let iv_end = ESP_HEADER_LEN + self.suite.iv_len();
        let icv_start = len
            .checked_sub(self.suite.icv_len())
            .filter(|&at| at >= iv_end)
            .ok_or_else(|| CipherFailure::Library("short".into()))?;
        Ok((iv_end, icv_start))
    }
}

impl EspCipher for FakeCipher {
    fn suite(&self) -> EspSuite {
        self.suite
    }

    fn seal(&mut self, packet: &mut [u8]) -> Result<(), CipherFailure> {
        let (iv_end, icv_start) = self.split(packet.len())?;
        packet[ESP_HEADER_LEN..iv_end].fill(self.next_iv);
        self.next_iv = self.next_iv.wrapping_add(1);
        let (head, rest) = packet.split_at_mut(iv_end);
        self.xor(&head[ESP_HEADER_LEN..], &mut rest[..icv_start - iv_end]);
        let mut tag = [0u8; 16];
        self.icv(&packet[..icv_start], &mut tag[..self.suite.icv_len()]);
        packet[icv_start..].copy_from_slice(&tag[..self.suite.icv_len()]);
        Ok(())
    }

    fn open(&mut self, packet: &mut [u8]) -> Result<(), CipherFailure> {
        let (iv_end, icv_start) = self.split(packet.len())?;
        let mut tag = [0u8; 16];
        self.icv(&packet[..icv_start], &mut tag[..self.suite.icv_len()]);
        if tag[..self.suite.icv_len()] != packet[icv_start..] {
            return Err(CipherFailure::IntegrityCheck);
        }
        let (head, rest) = packet.split_at_mut(iv_end);
        self.xor(&head[ESP_HEADER_LEN..], &mut rest[..icv_start - iv_end]);
        Ok(())
    }
}

const SHA1: EspSuite = EspSuite::new(EspEncryption::Aes128Cbc, EspIntegrity::HmacSha1_96);
const SPI_OUT: u32 = 0x1000_0001;

/// The suite the session tests use.
pub(super) const TEST_SUITE: EspSuite = SHA1;

fn pair(suite: EspSuite) -> (EspOutbound<FakeCipher>, EspInbound<FakeCipher>) {
    (
        EspOutbound::new(SPI_OUT, FakeCipher::new(suite, 0x5a)),
        EspInbound::new(SPI_OUT, FakeCipher::new(suite, 0x5a), true),
    )
}

/// `payload` in a buffer with exactly the room `out` needs; the sealed packet.
fn seal(out: &mut EspOutbound<FakeCipher>, payload: &[u8], next: NextHeader) -> Vec<u8> {
    let mut buf = vec![0u8; out.headroom() + payload.len() + out.tailroom()];
    let at = out.headroom();
    buf[at..at + payload.len()].copy_from_slice(payload);
    let range = out.seal(&mut buf, at..at + payload.len(), next).unwrap();
    assert_eq!(range.len(), out.sealed_len(payload.len()));
    buf[range].to_vec()
}

fn open(inb: &mut EspInbound<FakeCipher>, mut packet: Vec<u8>) -> Result<Vec<u8>, EspDrop> {
    let opened = inb.open(&mut packet)?;
    Ok(packet[opened.payload].to_vec())
}

#[test]
fn every_suite_and_length_round_trips() {
    for suite in EspSuite::ALL {
        let (mut out, mut inb) = pair(suite);
        for len in (1..=suite.block_len() + 1).chain([1400, 1500]) {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let packet = seal(&mut out, &payload, NextHeader::Ipv6);
            let encrypted = packet.len() - ESP_HEADER_LEN - suite.iv_len() - suite.icv_len();
            assert_eq!(encrypted, padded_len(len, 16));
            assert_eq!(encrypted % 16, 0);
            let mut copy = packet.clone();
            let opened = inb.open(&mut copy).unwrap();
            assert_eq!(&copy[opened.payload.clone()], payload.as_slice());
            assert_eq!(opened.next_header, NextHeader::Ipv6);
            assert_eq!(opened.spi, SPI_OUT);
            assert_eq!(opened.arrival, Arrival::InOrder);
        }
    }
}

#[test]
fn header_carries_spi_and_sequence_from_zero() {
    let (mut out, _) = pair(SHA1);
    for expected in 0..3u32 {
        let packet = seal(&mut out, &[0x45; 20], NextHeader::Ipv4);
        let header = EspHeader::parse(&packet).unwrap();
        assert_eq!(header.spi, SPI_OUT);
        assert_eq!(header.sequence, expected);
    }
    assert_eq!(out.next_sequence(), 3);
}

#[test]
fn seal_needs_payload_and_room() {
    let (mut out, _) = pair(SHA1);
    let mut buf = [0u8; 100];
    assert_eq!(
        out.seal(&mut buf, 40..40, NextHeader::Ipv4),
        Err(EspError::EmptyPayload)
    );
    assert_eq!(
        out.seal(&mut buf, 23..40, NextHeader::Ipv4),
        Err(EspError::NoHeadroom {
            needed: 24,
            available: 23
        })
    );
    // 17 bytes pad to 32 (15 of padding and trailer) plus a 12-byte ICV.
    assert_eq!(
        out.seal(&mut buf[..67], 24..41, NextHeader::Ipv4),
        Err(EspError::NoTailroom {
            needed: 27,
            available: 26
        })
    );
    assert_eq!(
        out.seal(&mut buf[..68], 24..41, NextHeader::Ipv4),
        Ok(0..68)
    );
    assert!(matches!(
        out.seal(
            &mut buf,
            std::ops::Range { start: 50, end: 40 },
            NextHeader::Ipv4
        ),
        Err(EspError::PayloadOutsideBuffer { .. })
    ));
    assert!(matches!(
        out.seal(&mut buf, 30..101, NextHeader::Ipv4),
        Err(EspError::PayloadOutsideBuffer { .. })
    ));
    // Failed seals use no sequence number.
    assert_eq!(out.next_sequence(), 1);
}

#[test]
fn the_largest_packet() {
    let (mut out, mut inb) = pair(SHA1);
    let most = out.max_payload(MAX_ESP_PACKET_LEN);
    assert_eq!(most, 65_486);
    assert!(out.sealed_len(most) <= MAX_ESP_PACKET_LEN);
    assert!(out.sealed_len(most + 1) > MAX_ESP_PACKET_LEN);
    let packet = seal(&mut out, &vec![0x60; most], NextHeader::Ipv6);
    assert_eq!(open(&mut inb, packet).unwrap().len(), most);
    let mut buf = vec![0u8; 70_000];
    assert!(matches!(
        out.seal(&mut buf, 24..24 + most + 1, NextHeader::Ipv6),
        Err(EspError::PacketTooLong { len: 65_540 })
    ));
    assert_eq!(
        inb.open(&mut buf[..MAX_ESP_PACKET_LEN + 1]),
        Err(EspDrop::TooLong { len: 65_536 })
    );
    // An MTU question: 1400 bytes leave 1364 for the encrypted part, 85 whole blocks.
    assert_eq!(out.max_payload(1400), 85 * 16 - 2);
    assert_eq!(out.sealed_len(1358), 1396);
    assert_eq!(out.sealed_len(1359), 1412);
    assert_eq!(out.max_payload(10), 0);
}

/// What a drop must look like.
type DropCheck = fn(&EspDrop) -> bool;

#[test]
fn tampering_is_dropped_and_counted() {
    let (mut out, mut inb) = pair(SHA1);
    let packet = seal(&mut out, &[0x45; 40], NextHeader::Ipv4);
    let icv_at = packet.len() - 12;
    let mut cases: Vec<(Vec<u8>, DropCheck)> = Vec::new();
    for at in [icv_at, packet.len() - 1, 30, 8, 4] {
        let mut bad = packet.clone();
        bad[at] ^= 1;
        cases.push((bad, |d| matches!(d, EspDrop::IntegrityCheckFailed { .. })));
    }
    let mut other_spi = packet.clone();
    other_spi[0] ^= 0x80;
    cases.push((other_spi, |d| {
        matches!(d, EspDrop::UnknownSpi { spi: 0x9000_0001 })
    }));
    cases.push((packet[..packet.len() - 1].to_vec(), |d| {
        matches!(d, EspDrop::NotWholeBlocks { len: 47, .. })
    }));
    cases.push((packet[..packet.len() - 16].to_vec(), |d| {
        matches!(d, EspDrop::IntegrityCheckFailed { .. })
    }));
    cases.push((packet[..51].to_vec(), |d| {
        matches!(d, EspDrop::TooShort { len: 51, min: 52 })
    }));
    cases.push((packet[..5].to_vec(), |d| {
        matches!(d, EspDrop::TooShort { len: 5, .. })
    }));
    cases.push((Vec::new(), |d| {
        matches!(d, EspDrop::TooShort { len: 0, .. })
    }));
    let count = cases.len() as u64;
    for (bad, expected) in cases {
        let drop = open(&mut inb, bad).unwrap_err();
        assert!(expected(&drop), "{drop:?}");
        assert_eq!(drop.severity(), DropSeverity::Routine);
    }
    // None of them moved the window: the original still opens, in order.
    let mut good = packet;
    assert_eq!(inb.open(&mut good).unwrap().arrival, Arrival::InOrder);
    let counters = inb.counters();
    assert_eq!(counters.accepted, 1);
    assert_eq!(counters.dropped(), count);
    assert_eq!(counters.integrity_failed, 6);
    assert_eq!(counters.unknown_spi, 1);
    assert_eq!(counters.malformed, 4);
}

#[test]
fn wrong_keys_fail_the_icv() {
    let (mut out, _) = pair(SHA1);
    let mut inb = EspInbound::new(SPI_OUT, FakeCipher::new(SHA1, 0x33), true);
    let packet = seal(&mut out, &[1; 30], NextHeader::Ipv4);
    assert!(matches!(
        open(&mut inb, packet),
        Err(EspDrop::IntegrityCheckFailed { sequence: 0, .. })
    ));
}

/// An authentic packet with a bad trailer: built by hand, sealed by the cipher itself.
fn hand_sealed(payload_len: usize, next_header: u8, pad: Option<(usize, u8)>) -> Vec<u8> {
    let mut cipher = FakeCipher::new(SHA1, 0x5a);
    let plain_len = padded_len(payload_len, 16);
    let mut packet = vec![0u8; 24 + plain_len + 12];
    EspHeader {
        spi: SPI_OUT,
        sequence: 0,
    }
    .emit(&mut packet);
    assert!(write_trailer(
        &mut packet[24..24 + plain_len],
        payload_len,
        next_header,
        16
    ));
    if let Some((at, value)) = pad {
        packet[24 + at] = value;
    }
    cipher.seal(&mut packet).unwrap();
    packet
}

#[test]
fn authentic_packets_with_bad_trailers() {
    let (_, mut inb) = pair(SHA1);
    // ICMP as next header: not a tunnel payload.
    let drop = open(&mut inb, hand_sealed(14, 1, None)).unwrap_err();
    assert_eq!(
        drop,
        EspDrop::UnknownNextHeader {
            next_header: 1,
            len: 16
        }
    );
    assert_eq!(drop.severity(), DropSeverity::Fault);
    // Padding byte changed (payload 10: padding 1, 2, 3, 4 at 10..14).
    let (_, mut inb) = pair(SHA1);
    let drop = open(&mut inb, hand_sealed(10, 4, Some((12, 9)))).unwrap_err();
    assert_eq!(drop, EspDrop::BadPadding);
    // Pad length covering the payload too.
    let (_, mut inb) = pair(SHA1);
    let drop = open(&mut inb, hand_sealed(10, 4, Some((14, 14)))).unwrap_err();
    assert_eq!(drop, EspDrop::BadPadLength { pad_len: 14 });
    assert_eq!(inb.counters().bad_trailer, 1);
    // The packet was authentic, so its sequence number is spent (as upstream).
    assert_eq!(
        open(&mut inb, hand_sealed(10, 4, None)),
        Err(EspDrop::Replayed { sequence: 0 })
    );
    // Juniper's LZO next header passes through for the caller to decompress.
    let (_, mut inb) = pair(SHA1);
    let mut packet = hand_sealed(20, 5, None);
    assert_eq!(
        inb.open(&mut packet).unwrap().next_header,
        NextHeader::LzoIpv4
    );
}

#[test]
fn seal_ip_and_the_juniper_probe() {
    let (mut out, mut inb) = pair(SHA1);
    let mut buf = [0u8; 128];
    buf[24] = 0x60;
    let range = out.seal_ip(&mut buf, 24..64).unwrap();
    let opened = inb.open(&mut buf[range]).unwrap();
    assert_eq!(opened.next_header, NextHeader::Ipv6);

    let probe = seal(&mut out, &JUNIPER_PROBE, NextHeader::for_family(false));
    let mut packet = probe;
    let opened = inb.open(&mut packet).unwrap();
    assert_eq!(opened.next_header, NextHeader::Ipv4);
    assert!(is_juniper_probe(&packet[opened.payload]));
    assert!(!is_juniper_probe(&[0, 0]));
}

#[test]
fn replays_dropped_or_tolerated() {
    let (mut out, mut inb) = pair(SHA1);
    let packets: Vec<Vec<u8>> = (0..80)
        .map(|_| seal(&mut out, &[9; 50], NextHeader::Ipv4))
        .collect();
    // 0, then 70 (a gap), then 5 (reordered, inside), 5 again, 4 (too old now).
    assert!(open(&mut inb, packets[0].clone()).is_ok());
    let mut p = packets[70].clone();
    assert_eq!(
        inb.open(&mut p).unwrap().arrival,
        Arrival::AfterGap { missed: 69 }
    );
    let mut p = packets[6].clone();
    assert_eq!(inb.open(&mut p).unwrap().arrival, Arrival::Reordered);
    assert_eq!(
        open(&mut inb, packets[6].clone()),
        Err(EspDrop::Replayed { sequence: 6 })
    );
    assert_eq!(
        open(&mut inb, packets[5].clone()),
        Err(EspDrop::TooOld {
            sequence: 5,
            expected: 71
        })
    );
    assert_eq!((inb.counters().replayed, inb.counters().too_old), (1, 1));

    // Without replay protection (a Pulse or NC gateway may say so) both are accepted.
    inb.set_replay_protection(false);
    let mut p = packets[6].clone();
    assert_eq!(inb.open(&mut p).unwrap().arrival, Arrival::Replayed);
    let mut p = packets[5].clone();
    assert_eq!(inb.open(&mut p).unwrap().arrival, Arrival::TooOld);
    assert_eq!(inb.counters().tolerated, 2);
    assert_eq!(inb.counters().accepted, 5);
}

#[test]
fn forged_packets_do_not_move_the_window() {
    let (mut out, mut inb) = pair(SHA1);
    let first = seal(&mut out, &[1; 20], NextHeader::Ipv4);
    let mut far = seal(&mut out, &[1; 20], NextHeader::Ipv4);
    // A forgery claiming sequence 1000 (the ICV no longer matches).
    far[4..8].copy_from_slice(&1000u32.to_be_bytes());
    assert!(matches!(
        open(&mut inb, far),
        Err(EspDrop::IntegrityCheckFailed { sequence: 1000, .. })
    ));
    let mut p = first;
    assert_eq!(inb.open(&mut p).unwrap().arrival, Arrival::InOrder);
}

#[test]
fn rekey_keeps_the_previous_keys_for_a_while() {
    let old_suite = SHA1;
    let new_suite = EspSuite::new(EspEncryption::Aes256Cbc, EspIntegrity::HmacSha256_128);
    let mut old_out = EspOutbound::new(0xaaaa, FakeCipher::new(old_suite, 1));
    let mut inb = EspInbound::new(0xaaaa, FakeCipher::new(old_suite, 1), true);
    let old: Vec<Vec<u8>> = (0..60)
        .map(|_| seal(&mut old_out, &[4; 64], NextHeader::Ipv4))
        .collect();
    for p in &old[..10] {
        open(&mut inb, p.clone()).unwrap();
    }
    // New keys (another suite too); the old window expected 10, so its packets are
    // taken while seq + new_next < 10 + 32.
    inb.rekey(0xbbbb, FakeCipher::new(new_suite, 2));
    assert_eq!((inb.spi(), inb.previous_spi()), (0xbbbb, Some(0xaaaa)));
    let mut new_out = EspOutbound::new(0xbbbb, FakeCipher::new(new_suite, 2));
    let mut late = old[12].clone();
    let opened = inb.open(&mut late).unwrap();
    assert!(opened.previous_keys);
    assert_eq!(opened.arrival, Arrival::AfterGap { missed: 2 });
    assert_eq!(&late[opened.payload], &[4; 64]);
    // The previous window still refuses its replays.
    assert_eq!(
        open(&mut inb, old[12].clone()),
        Err(EspDrop::Replayed { sequence: 12 })
    );
    for _ in 0..20 {
        let p = seal(&mut new_out, &[5; 64], NextHeader::Ipv4);
        let mut q = p;
        assert!(!inb.open(&mut q).unwrap().previous_keys);
    }
    // new_next = 20: old seq 21 is the last (21 + 20 = 41 < 42); 22 is too late.
    assert!(open(&mut inb, old[21].clone()).is_ok());
    assert_eq!(
        open(&mut inb, old[22].clone()),
        Err(EspDrop::RetiredSpi {
            spi: 0xaaaa,
            sequence: 22
        })
    );
    assert!(open(&mut inb, old[11].clone()).is_ok());
    // A second rekey forgets the first keys.
    inb.rekey(0xcccc, FakeCipher::new(old_suite, 3));
    assert_eq!(
        open(&mut inb, old[13].clone()),
        Err(EspDrop::UnknownSpi { spi: 0xaaaa })
    );
    assert_eq!(inb.previous_spi(), Some(0xbbbb));
}

#[test]
fn outbound_rekey_restarts_the_count_and_exhaustion_is_an_error() {
    let (mut out, _) = pair(SHA1);
    out.skip_to(u64::from(u32::MAX));
    let last = seal(&mut out, &[1; 8], NextHeader::Ipv4);
    assert_eq!(EspHeader::parse(&last).unwrap().sequence, u32::MAX);
    let mut buf = [0u8; 64];
    assert_eq!(
        out.seal(&mut buf, 24..32, NextHeader::Ipv4),
        Err(EspError::SequenceExhausted { spi: SPI_OUT })
    );
    out.rekey(0x77, FakeCipher::new(SHA1, 9));
    assert_eq!((out.spi(), out.next_sequence()), (0x77, 0));
    assert!(out.seal(&mut buf, 24..32, NextHeader::Ipv4).is_ok());
}

proptest! {
    #[test]
    fn round_trip_anywhere_in_a_buffer(
        suite in 0..EspSuite::ALL.len(),
        payload in proptest::collection::vec(any::<u8>(), 1..1600),
        extra_head in 0..40usize,
        extra_tail in 0..40usize,
    ) {
        let (mut out, mut inb) = pair(EspSuite::ALL[suite]);
        let start = out.headroom() + extra_head;
        let mut buf = vec![0u8; start + payload.len() + out.tailroom() + extra_tail];
        buf[start..start + payload.len()].copy_from_slice(&payload);
        let sealed = out.seal(&mut buf, start..start + payload.len(), NextHeader::Ipv4).unwrap();
        prop_assert_eq!(sealed.start, extra_head);
        let opened = inb.open(&mut buf[sealed.clone()]).unwrap();
        let at = sealed.start + opened.payload.start;
        prop_assert_eq!(&buf[at..at + opened.payload.len()], payload.as_slice());
    }

    #[test]
    fn hostile_bytes_are_dropped_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let (_, mut inb) = pair(SHA1);
        let mut packet = bytes;
        prop_assert!(inb.open(&mut packet).is_err());
    }
}
