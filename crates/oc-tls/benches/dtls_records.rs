//! The DTLS record path through OpenSSL as both binaries run it, without sockets: a
//! PSK-NEGOTIATE association (AES-256-GCM) set up in memory, then 1400-byte tunnel packets
//! sealed by one side and opened by the other, one record per packet.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use oc_tls::dtls::{psk_client_context, psk_server_context, DtlsChannel, PSK_LEN};

const PACKET: usize = 1400;

/// Moves every pending datagram from one side to the other; how many moved.
fn shuttle(from: &mut DtlsChannel, to: &mut DtlsChannel) -> usize {
    let mut n = 0;
    while let Some(d) = from.poll_transmit() {
        to.handle_datagram(&d).unwrap();
        n += 1;
    }
    n
}

fn established() -> (DtlsChannel, DtlsChannel) {
    let key = [7u8; PSK_LEN];
    let mut client =
        DtlsChannel::psk_client(&psk_client_context().unwrap(), &key, &[1; 32], 1500, false)
            .unwrap();
    let mut server =
        DtlsChannel::psk_server(&psk_server_context().unwrap(), &key, None, 1500, false).unwrap();
    for _ in 0..10 {
        if shuttle(&mut client, &mut server) + shuttle(&mut server, &mut client) == 0 {
            break;
        }
    }
    (client, server)
}

fn records(c: &mut Criterion) {
    let (mut client, mut server) = established();
    let mut record = vec![0x45u8; PACKET + 1];
    record[0] = 0; // DATA
    let mut group = c.benchmark_group("dtls_record");
    group.throughput(Throughput::Bytes(PACKET as u64));
    group.bench_function("seal", |b| {
        b.iter(|| {
            client.send(black_box(&record)).unwrap();
            black_box(client.poll_transmit().unwrap().len())
        });
    });
    group.bench_function("seal_and_open", |b| {
        b.iter(|| {
            client.send(black_box(&record)).unwrap();
            let datagram = client.poll_transmit().unwrap();
            server.handle_datagram(&datagram).unwrap();
            let mut got = 0;
            server.drain(|r| got += r.len()).unwrap();
            black_box(got)
        });
    });
    group.finish();
}

criterion_group!(benches, records);
criterion_main!(benches);
