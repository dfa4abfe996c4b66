//! Known answers (RFC 3602's AES-CBC and ESP cases, RFC 2202/4231 HMACs truncated as
//! RFC 2403/2404/4868 say), round trips of every suite through the engine, tampering.

use oc_proto::esp::packet::{padded_len, write_trailer};
use oc_proto::esp::{
    EspDrop, EspHeader, EspInbound, EspOutbound, NextHeader, Opened, MAX_ESP_PACKET_LEN,
};

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn suite(encryption: EspEncryption, integrity: EspIntegrity) -> EspSuite {
    EspSuite::new(encryption, integrity)
}

const AES128_SHA1: EspSuite = EspSuite::new(EspEncryption::Aes128Cbc, EspIntegrity::HmacSha1_96);

fn keys(suite: EspSuite, spi: u32, seed: u8) -> EspKeys {
    let enc: Vec<u8> = (0..suite.encryption.key_len() as u8)
        .map(|i| i ^ seed)
        .collect();
    let integ: Vec<u8> = (0..suite.integrity.standard_key_len() as u8)
        .map(|i| i.wrapping_mul(3) ^ seed)
        .collect();
    EspKeys::new(spi, suite, &enc, &integ).unwrap()
}

#[test]
fn rfc3602_cbc_cases_1_to_4() {
    let cases = [
        (
            "06a9214036b8a15b512e03d534120006",
            "3dafba429d9eb430b422da802c9fac41",
            b"Single block msg".to_vec(),
            "e353779c1079aeb82708942dbe77181a",
        ),
        (
            "c286696d887c9aa0611bbb3e2025a45a",
            "562e17996d093d28ddb3ba695a2e6f58",
            (0u8..32).collect(),
            "d296cd94c2cccf8a3a863028b5e1dc0a 7586602d253cfff91b8266bea6d61ab1",
        ),
        (
            "6c3ea0477630ce21a2ce334aa746c2cd",
            "c782dc4c098c66cbd9cd27d825682c81",
            b"This is a 48-byte message (exactly 3 AES blocks)".to_vec(),
            "d0a02b3836451753d493665d33f0e886 2dea54cdb293abc7506939276772f8d5
             021c19216bad525c8579695d83ba2684",
        ),
        (
            "56e47a38c5598974bc46903dba290349",
            "8ce82eefbea0da3c44699ed7db51b7d9",
            (0xa0u8..0xe0).collect(),
            "c30e32ffedc0774e6aff6af0869f71aa 0f3af07a9a31a9c684db207eb0ef8e4e
             35907aa632c3ffdf868bb7b29d3d46ad 83ce9f9a102ee99d49a53e87f4c3da55",
        ),
    ];
    for (key, iv, plain, cipher) in cases {
        let algorithm = Cipher::fetch(None, "AES-128-CBC", None).unwrap();
        let mut ctx = CipherCtx::new().unwrap();
        ctx.encrypt_init(Some(&algorithm), Some(&hex(key)), Some(&hex(iv)))
            .unwrap();
        ctx.set_padding(false);
        let mut data = plain.clone();
        cbc_in_place(&mut ctx, &mut data).unwrap();
        assert_eq!(data, hex(cipher));
        ctx.decrypt_init(Some(&algorithm), Some(&hex(key)), Some(&hex(iv)))
            .unwrap();
        ctx.set_padding(false);
        cbc_in_place(&mut ctx, &mut data).unwrap();
        assert_eq!(data, plain);
    }
}

/// RFC 3602 section 4 cases 5 to 8: whole ESP packets (without ICV, which the RFC
/// leaves out): key, SPI, sequence, IV, payload, next header, packet.
const ESP_CASES: [(&str, u32, u32, &str, &str, u8, &str); 4] = [
    (
        "90d382b410eeba7ad938c46cec1a82bf",
        0x4321,
        1,
        "e96e8c08ab465763fd098d45dd3ff893",
        "08000ebda70a00008e9c083db95b070008090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
         202122232425262728292a2b2c2d2e2f3031323334353637",
        1,
        "0000432100000001e96e8c08ab465763fd098d45dd3ff893f663c25d325c18c6a9453e194e120849
         a4870b66cc6b9965330013b4898dc856a4699e523a55db080b59ec3a8e4b7e52775b07d1db34ed9c
         538ab50c551b874aa269add047ad2d5913ac19b7cfbad4a6",
    ),
    (
        "90d382b410eeba7ad938c46cec1a82bf",
        0x4321,
        8,
        "69d08df7d203329db093fc4924e5bd80",
        "0800b5e8a80a0500a69c083d0b660e00777777777777777777777777",
        1,
        "000043210000000869d08df7d203329db093fc4924e5bd80f51995881ec4e0c4488987ce742e8109
         689bb379d2d750c0d915dca346a89f75",
    ),
    (
        "0123456789abcdef0123456789abcdef",
        0x8765,
        2,
        "f4e765244f6407adf13dc1380f673f37",
        "45000054090400004001f988c0a87b03c0a87bc808009f76a90a0100b49c083d02a2040008090a0b
         0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f30313233
         34353637",
        4,
        "0000876500000002f4e765244f6407adf13dc1380f673f37773b5241a4c449225e4f3ce5ed611b0c
         237ca96cf74a93013c1b0ea1a0cf70f8e4ecaec78ac53aad7a0f022b859243c647752e94a859352b
         8a4d4d2decd136e5c177f132ad3fbfb2201ac9904c74ee0a109e0ca1e4dfe9d5a100b842f1c22f0d",
    ),
    (
        "0123456789abcdef0123456789abcdef",
        0x8765,
        5,
        "85d47224b5f3dd5d2101d4ea8dffab22",
        "45000044090c00004001f990c0a87b03c0a87bc80800d63caa0a0200c69c083da3de0300ffffffff
         ffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        4,
        "000087650000000585d47224b5f3dd5d2101d4ea8dffab2215b92683819596a8047232cc00f7048f
         e45318e11f8a0f62ede3c3fc61203bb50f980a08c9843fd3a1b06d5c07ff9639b7eb7dfb3512e5de
         435e7207ed971ef3d2726d9b5ef6affc6d17a0decbb13892",
    ),
];

#[test]
fn rfc3602_esp_cases_5_to_8_seal_and_open() {
    for (key, spi, sequence, iv, payload, next_header, expected) in ESP_CASES {
        let (payload, expected) = (hex(payload), hex(expected));
        let keys = EspKeys::new(spi, AES128_SHA1, &hex(key), &[0x11; 20]).unwrap();
        let mut iv_bytes = [0u8; 16];
        iv_bytes.copy_from_slice(&hex(iv));
        let mut cipher = OpenSslEspCipher::with_first_iv(&keys, iv_bytes).unwrap();
        // The packet as the engine lays it out, sealed by the cipher.
        let plain_len = padded_len(payload.len(), 16);
        let mut packet = vec![0u8; 24 + plain_len + 12];
        EspHeader { spi, sequence }.emit(&mut packet);
        packet[24..24 + payload.len()].copy_from_slice(&payload);
        assert!(write_trailer(
            &mut packet[24..24 + plain_len],
            payload.len(),
            next_header,
            16
        ));
        cipher.seal(&mut packet).unwrap();
        assert_eq!(
            packet[..packet.len() - 12],
            expected[..],
            "SPI {spi:#x} seq {sequence}"
        );

        // Upstream's next IV: the packet's last 16 bytes through the same CBC chain.
        let last_block = &packet[packet.len() - 12 - 16..packet.len() - 12];
        let mut xored = [0u8; 16];
        for (i, byte) in xored.iter_mut().enumerate() {
            *byte = packet[packet.len() - 16 + i] ^ last_block[i];
        }
        let ecb = openssl::symm::Cipher::aes_128_ecb();
        let mut next = openssl::symm::encrypt(ecb, &hex(key), None, &xored).unwrap();
        next.truncate(16);
        assert_eq!(cipher.next_iv[..], next[..]);

        // The engine opens it; ICMP (next header 1, transport mode) is not a tunnel payload
        // and upstream drops it too.
        let opener = OpenSslEspCipher::new(&keys).unwrap();
        let mut inbound = EspInbound::new(spi, opener, true);
        match (next_header, inbound.open(&mut packet)) {
            (4, Ok(Opened { payload: at, .. })) => assert_eq!(packet[at], payload[..]),
            (1, Err(EspDrop::UnknownNextHeader { next_header: 1, .. })) => {}
            (_, other) => panic!("case {sequence}: {other:?}"),
        }
    }
}

#[test]
fn hmac_known_answers_truncated_to_the_icv() {
    let hi = b"Hi There".as_slice();
    let jefe = b"what do ya want for nothing?".as_slice();
    let big = b"Test Using Larger Than Block-Size Key - Hash Key First".as_slice();
    let cases: [(EspIntegrity, Vec<u8>, &[u8], &str); 10] = [
        // RFC 2202 (HMAC-MD5 and HMAC-SHA-1) cases 1, 2 and 6.
        (
            EspIntegrity::HmacMd5_96,
            vec![0x0b; 16],
            hi,
            "9294727a3638bb1c13f48ef8158bfc9d",
        ),
        (
            EspIntegrity::HmacMd5_96,
            b"Jefe".to_vec(),
            jefe,
            "750c783e6ab0b503eaa86e310a5db738",
        ),
        (
            EspIntegrity::HmacMd5_96,
            vec![0xaa; 80],
            big,
            "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd",
        ),
        (
            EspIntegrity::HmacSha1_96,
            vec![0x0b; 20],
            hi,
            "b617318655057264e28bc0b6fb378c8ef146be00",
        ),
        (
            EspIntegrity::HmacSha1_96,
            b"Jefe".to_vec(),
            jefe,
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
        ),
        (
            EspIntegrity::HmacSha1_96,
            vec![0xaa; 80],
            big,
            "aa4ae5e15272d00e95705637ce8a3b55ed402112",
        ),
        // RFC 4231 cases 1, 2 and 6, and RFC 4868's AUTH256-1 (a 32-byte key).
        (
            EspIntegrity::HmacSha256_128,
            vec![0x0b; 20],
            hi,
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        ),
        (
            EspIntegrity::HmacSha256_128,
            b"Jefe".to_vec(),
            jefe,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            EspIntegrity::HmacSha256_128,
            vec![0xaa; 131],
            big,
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
        (
            EspIntegrity::HmacSha256_128,
            vec![0x0b; 32],
            hi,
            "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7",
        ),
    ];
    for (integrity, key, message, expected) in cases {
        let mut mac = Hmac::new(integrity, &key).unwrap();
        let mut out = [0u8; MAX_DIGEST];
        // Twice: the reused context must start clean each time.
        for _ in 0..2 {
            let len = mac.compute(message, &mut out).unwrap();
            assert_eq!(out[..len], hex(expected)[..], "{integrity:?}");
        }
        // The ICV is the leading 96 or 128 bits.
        assert_eq!(
            out[..integrity.icv_len()],
            hex(expected)[..integrity.icv_len()]
        );
    }
}

fn pair(suite: EspSuite) -> (EspOutbound<OpenSslEspCipher>, EspInbound<OpenSslEspCipher>) {
    let keys = keys(suite, 0x0102_0304, 0x42);
    (
        EspOutbound::new(keys.spi(), OpenSslEspCipher::new(&keys).unwrap()),
        EspInbound::new(keys.spi(), OpenSslEspCipher::new(&keys).unwrap(), true),
    )
}

fn sealed(out: &mut EspOutbound<OpenSslEspCipher>, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; out.headroom() + payload.len() + out.tailroom()];
    let at = out.headroom();
    buf[at..at + payload.len()].copy_from_slice(payload);
    let range = out.seal_ip(&mut buf, at..at + payload.len()).unwrap();
    buf[range].to_vec()
}

#[test]
fn every_suite_round_trips_every_length() {
    for suite in EspSuite::ALL {
        let (mut out, mut inb) = pair(suite);
        let lengths =
            (1..=suite.block_len() + 1).chain([1400, out.max_payload(MAX_ESP_PACKET_LEN)]);
        for len in lengths {
            let mut payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            payload[0] = 0x60;
            let mut packet = sealed(&mut out, &payload);
            assert!(packet.len() <= MAX_ESP_PACKET_LEN);
            let opened = inb
                .open(&mut packet)
                .unwrap_or_else(|e| panic!("{suite} {len}: {e}"));
            assert_eq!(packet[opened.payload], payload[..], "{suite} {len}");
            assert_eq!(opened.next_header, NextHeader::Ipv6);
        }
        assert_eq!(inb.counters().dropped(), 0);
    }
}

#[test]
fn any_flipped_bit_is_refused() {
    for suite in [
        AES128_SHA1,
        suite(EspEncryption::Aes256Cbc, EspIntegrity::HmacSha256_128),
        suite(EspEncryption::Aes128Cbc, EspIntegrity::HmacMd5_96),
    ] {
        let (mut out, mut inb) = pair(suite);
        let packet = sealed(&mut out, &[0x45; 60]);
        for at in 0..packet.len() {
            let mut bad = packet.clone();
            bad[at] ^= 0x10;
            let drop = inb.open(&mut bad).unwrap_err();
            let expected = if at < 4 {
                matches!(drop, EspDrop::UnknownSpi { .. })
            } else {
                matches!(drop, EspDrop::IntegrityCheckFailed { .. })
            };
            assert!(expected, "{suite}: byte {at}: {drop:?}");
        }
        let mut good = packet;
        assert!(inb.open(&mut good).is_ok());
    }
}

#[test]
fn other_keys_and_other_integrity_keys_fail() {
    let (mut out, _) = pair(AES128_SHA1);
    let packet = sealed(&mut out, &[0x45; 100]);
    for other in [keys(AES128_SHA1, 0x0102_0304, 0x43), {
        let k = keys(AES128_SHA1, 0x0102_0304, 0x42);
        EspKeys::new(k.spi(), AES128_SHA1, k.encryption_key(), &[0; 20]).unwrap()
    }] {
        let mut inb = EspInbound::new(other.spi(), OpenSslEspCipher::new(&other).unwrap(), true);
        let mut p = packet.clone();
        assert!(matches!(
            inb.open(&mut p),
            Err(EspDrop::IntegrityCheckFailed { .. })
        ));
    }
}

#[test]
fn ivs_differ_between_packets_and_ciphers() {
    let keys = keys(AES128_SHA1, 7, 1);
    let mut a = EspOutbound::new(7, OpenSslEspCipher::new(&keys).unwrap());
    let mut b = EspOutbound::new(7, OpenSslEspCipher::new(&keys).unwrap());
    let first = sealed(&mut a, &[0x45; 32]);
    let second = sealed(&mut a, &[0x45; 32]);
    let other = sealed(&mut b, &[0x45; 32]);
    assert_ne!(first[8..24], second[8..24]);
    assert_ne!(first[8..24], other[8..24]);
    assert_ne!(first[24..], second[24..]);
}

#[test]
fn the_cipher_refuses_odd_shapes_without_panicking() {
    let keys = keys(AES128_SHA1, 7, 1);
    let mut cipher = OpenSslEspCipher::new(&keys).unwrap();
    for len in (0..120).chain([MAX_ESP_PACKET_LEN + 4]) {
        let mut packet = vec![0u8; len];
        let shaped = len >= 52 && (len - 36) % 16 == 0 && len <= MAX_ESP_PACKET_LEN;
        assert_eq!(cipher.seal(&mut packet).is_ok(), shaped, "{len}");
        let mut packet = vec![0u8; len];
        match cipher.open(&mut packet) {
            Err(CipherFailure::IntegrityCheck) => assert!(shaped, "{len}"),
            Err(CipherFailure::Library(_)) => assert!(!shaped, "{len}"),
            Ok(()) => panic!("zeros opened at {len}"),
        }
    }
}

#[test]
fn generated_keys_have_the_standard_lengths() {
    for suite in EspSuite::ALL {
        let a = generate_keys(suite).unwrap();
        let b = generate_keys(suite).unwrap();
        assert_eq!(a.encryption_key().len(), suite.encryption.key_len());
        assert_eq!(a.integrity_key().len(), suite.integrity.standard_key_len());
        assert_ne!(a.encryption_key(), b.encryption_key());
        assert!(OpenSslEspCipher::new(&a).is_ok());
    }
}
