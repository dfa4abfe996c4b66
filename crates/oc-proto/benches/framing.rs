//! The CSTP and DTLS framing on the packet path, without sockets: a 1400-byte packet framed
//! in place for each channel, and a stream of CSTP frames decoded as they arrive from TLS
//! (whole records, and records split in two, which costs one copy).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use oc_proto::anyconnect::frame::{
    emit_cstp, frame_in_place, CstpDecoder, FrameError, PacketType, CSTP_HEADER_LEN,
};
use oc_proto::anyconnect::session::Channel;
use oc_proto::compress::TunnelCompression;

const PACKET: usize = 1400;
const STREAM: usize = 32;

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_out");
    group.throughput(Throughput::Bytes(PACKET as u64));
    let mut buf = vec![0x45u8; CSTP_HEADER_LEN + PACKET];
    for channel in [Channel::Cstp, Channel::Dtls] {
        group.bench_function(format!("{channel:?}"), |b| {
            b.iter(|| {
                black_box(
                    frame_in_place(channel, PacketType::Data, black_box(&mut buf))
                        .unwrap()
                        .len(),
                )
            });
        });
    }
    // The path every packet takes in both binaries: compression negotiated off.
    let mut none = TunnelCompression::default();
    group.bench_function("encode_packet_uncompressed", |b| {
        b.iter(|| {
            black_box(
                none.encode_packet(Channel::Cstp, black_box(&mut buf))
                    .unwrap()
                    .len(),
            )
        });
    });
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut wire = Vec::new();
    for i in 0..STREAM {
        emit_cstp(PacketType::Data, &vec![i as u8; PACKET], &mut wire).unwrap();
    }
    let frame_len = CSTP_HEADER_LEN + PACKET;
    let mut group = c.benchmark_group("frame_in");
    group.throughput(Throughput::Bytes((STREAM * PACKET) as u64));
    group.bench_function("cstp_whole_records", |b| {
        let mut decoder = CstpDecoder::new();
        b.iter(|| {
            let mut bytes = 0;
            for record in wire.chunks(frame_len) {
                decoder
                    .decode::<FrameError>(record, |f| {
                        bytes += f.payload.len();
                        Ok(())
                    })
                    .unwrap();
            }
            black_box(bytes)
        });
    });
    group.bench_function("cstp_split_records", |b| {
        let mut decoder = CstpDecoder::new();
        b.iter(|| {
            let mut bytes = 0;
            for record in wire.chunks(frame_len) {
                let (a, z) = record.split_at(frame_len / 2);
                for half in [a, z] {
                    decoder
                        .decode::<FrameError>(half, |f| {
                            bytes += f.payload.len();
                            Ok(())
                        })
                        .unwrap();
                }
            }
            black_box(bytes)
        });
    });
    group.finish();
}

criterion_group!(benches, encode, decode);
criterion_main!(benches);
