//! ESP through OpenSSL as the UDP path runs it: 1400-byte IP packets sealed in place in
//! a buffer with headroom and tailroom, and opened in place, one packet per call, for
//! every suite upstream speaks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use oc_proto::esp::{EspInbound, EspKeys, EspOutbound, EspSuite, NextHeader};
use oc_tls::esp::OpenSslEspCipher;

const PACKET: usize = 1400;

fn keys(suite: EspSuite) -> EspKeys {
    let encryption = vec![0x11; suite.encryption.key_len()];
    let integrity = vec![0x22; suite.integrity.standard_key_len()];
    EspKeys::new(0x1234_5678, suite, &encryption, &integrity).unwrap()
}

fn short_name(suite: EspSuite) -> String {
    let cipher = match suite.encryption {
        oc_proto::esp::EspEncryption::Aes128Cbc => "aes128",
        oc_proto::esp::EspEncryption::Aes256Cbc => "aes256",
    };
    let mac = match suite.integrity {
        oc_proto::esp::EspIntegrity::HmacMd5_96 => "md5",
        oc_proto::esp::EspIntegrity::HmacSha1_96 => "sha1",
        oc_proto::esp::EspIntegrity::HmacSha256_128 => "sha256",
    };
    format!("{cipher}-{mac}")
}

fn packets(c: &mut Criterion) {
    let mut group = c.benchmark_group("esp_1400");
    group.throughput(Throughput::Bytes(PACKET as u64));
    for suite in EspSuite::ALL {
        let keys = keys(suite);
        let mut outbound = EspOutbound::new(keys.spi(), OpenSslEspCipher::new(&keys).unwrap());
        // Replays tolerated: the bench opens the same packet again and again.
        let mut inbound = EspInbound::new(keys.spi(), OpenSslEspCipher::new(&keys).unwrap(), false);
        let head = outbound.headroom();
        let mut buf = vec![0x45u8; head + PACKET + outbound.tailroom()];
        let payload = head..head + PACKET;

        group.bench_function(format!("seal/{}", short_name(suite)), |b| {
            b.iter(|| {
                let sealed = outbound
                    .seal(black_box(&mut buf), payload.clone(), NextHeader::Ipv4)
                    .unwrap();
                black_box(sealed.len())
            });
        });

        let sealed = outbound
            .seal(&mut buf, payload.clone(), NextHeader::Ipv4)
            .unwrap();
        let packet = buf[sealed].to_vec();
        let mut scratch = packet.clone();
        group.bench_function(format!("open/{}", short_name(suite)), |b| {
            b.iter(|| {
                // Opening decrypts in place, so each round starts from the sealed bytes.
                scratch.copy_from_slice(&packet);
                let opened = inbound.open(black_box(&mut scratch)).unwrap();
                black_box(opened.payload.len())
            });
        });
    }
    group.finish();
}

criterion_group!(benches, packets);
criterion_main!(benches);
