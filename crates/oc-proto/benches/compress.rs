//! Throughput of the three tunnel compression algorithms on typical 1400-byte packets.
//!
//! Two kinds of traffic, each a stream of 16 packets of 1400 bytes:
//! - `http`: a web page coming down a TCP connection: a 40-byte IPv4+TCP header (id and
//!   sequence number advancing) in front of the next 1360 bytes of an HTTP response (status
//!   line and headers, then HTML table rows). The first packet is the response head.
//! - `random`: bytes from a fixed-seed xorshift, standing in for already-encrypted or
//!   compressed traffic that no algorithm can shrink.
//!
//! Every iteration runs the whole 16-packet stream, so all algorithms see the same bytes, and
//! throughput is counted in uncompressed bytes (16 × 1400) in both directions.
//!
//! - `lz4`, `lzs`: each packet is an independent block (as on the wire). Compression writes
//!   the complete block even where the tunnel would give up and send the packet plain, so
//!   `random` measures the worst case.
//! - `deflate` is one stream per direction, so a stream is only meaningful from its start:
//!   `compress` runs the 16 packets through a fresh `Deflater` per iteration, and
//!   `decompress` feeds payloads prepared once by a fresh `Deflater` to a fresh `Inflater`
//!   per iteration (`iter_batched`; creating the codec is outside the timing). Later packets
//!   of `http` profit from the history of earlier ones, as in a real tunnel.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use oc_proto::compress::deflate::{Deflater, Inflater};
use oc_proto::compress::{lzs, MIN_DECOMPRESS_LIMIT};

const PACKET: usize = 1400;
const HEADERS: usize = 40;
const STREAM: usize = 16;

/// IPv4 (20 bytes, no options) + TCP (20 bytes, no options) from 93.184.216.34:80 to
/// 10.0.0.2:49232; checksums left at zero (nothing here checks them).
fn ipv4_tcp_header(index: usize) -> [u8; HEADERS] {
    let total = u16::try_from(PACKET).unwrap().to_be_bytes();
    let id = u16::try_from(0x1c46 + index).unwrap().to_be_bytes();
    let seq = u32::try_from(0x3a9f_0001 + index * (PACKET - HEADERS))
        .unwrap()
        .to_be_bytes();
    let mut h = [0u8; HEADERS];
    h[..20].copy_from_slice(&[
        0x45, 0x00, total[0], total[1], id[0], id[1], 0x40, 0x00, 0x3a, 0x06, 0x00, 0x00, 93, 184,
        216, 34, 10, 0, 0, 2,
    ]);
    h[20..].copy_from_slice(&[
        0x00, 0x50, 0xc0, 0x50, seq[0], seq[1], seq[2], seq[3], 0x5e, 0x21, 0x07, 0xc4, 0x50, 0x18,
        0x01, 0xf5, 0x00, 0x00, 0x00, 0x00,
    ]);
    h
}

/// An HTTP response with an HTML table, long enough for the whole stream.
fn http_response() -> Vec<u8> {
    const WORDS: [&str; 8] = [
        "Stainless steel kettle, 1.7 l",
        "Wireless keyboard (US layout)",
        "Cotton T-shirt, navy blue",
        "USB-C charging cable, 2 m",
        "Ceramic coffee mug, 350 ml",
        "LED desk lamp with dimmer",
        "Paperback notebook, A5, dotted",
        "Noise-cancelling headphones",
    ];
    let mut page = String::from(
        "HTTP/1.1 200 OK\r\nDate: Tue, 24 Nov 2026 06:15:40 GMT\r\nServer: nginx/1.26.3\r\n\
         Content-Type: text/html; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\
         Connection: keep-alive\r\nCache-Control: private, max-age=0\r\n\
         Set-Cookie: session=7f3e9c21a4b85d06; Path=/; HttpOnly; Secure\r\n\r\n\
         <!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Catalogue - page 3</title>\n<link rel=\"stylesheet\" href=\"/static/site.css\">\n\
         </head>\n<body>\n<table class=\"catalogue\">\n",
    );
    let mut n = 1200usize;
    while page.len() < STREAM * (PACKET - HEADERS) {
        let name = WORDS[n * 7 % WORDS.len()];
        let (euros, cents) = (n * 7919 % 250, n * 31 % 100);
        page.push_str(&format!(
            "<tr class=\"item\" id=\"item-{n}\"><td><a href=\"/item/{n}\">{name}</a></td>\
             <td class=\"price\">{euros}.{cents:02} EUR</td></tr>\n"
        ));
        n += 1;
    }
    page.into_bytes()
}

fn http_stream() -> Vec<Vec<u8>> {
    let body = http_response();
    body.chunks_exact(PACKET - HEADERS)
        .take(STREAM)
        .enumerate()
        .map(|(i, chunk)| [&ipv4_tcp_header(i)[..], chunk].concat())
        .collect()
}

fn random_stream() -> Vec<Vec<u8>> {
    let mut x = 0x2545_f491u32;
    (0..STREAM)
        .map(|_| {
            (0..PACKET)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x.to_le_bytes()[0]
                })
                .collect()
        })
        .collect()
}

fn lz4_block(packet: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; lz4_flex::block::get_maximum_output_size(packet.len())];
    let n = lz4_flex::block::compress_into(packet, &mut out).unwrap();
    out.truncate(n);
    out
}

/// Room for any LZS block: 9 bits per literal, the end marker and padding.
fn lzs_room(len: usize) -> usize {
    len + len / 8 + 4
}

fn lzs_block(compressor: &mut lzs::Compressor, packet: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; lzs_room(packet.len())];
    let n = compressor.compress(packet, &mut out).unwrap();
    out.truncate(n);
    out
}

fn deflate_payloads(stream: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut deflater = Deflater::new();
    stream
        .iter()
        .map(|p| {
            let mut out = Vec::new();
            deflater.compress(p, &mut out).unwrap();
            out
        })
        .collect()
}

/// Checks that the prepared blocks decode to the packets and prints the ratios once.
fn check_and_report(kind: &str, stream: &[Vec<u8>]) {
    let plain: usize = stream.iter().map(Vec::len).sum();
    let mut buf = vec![0u8; MIN_DECOMPRESS_LIMIT];
    let mut sizes = Vec::new();

    let mut total = 0;
    for p in stream {
        let block = lz4_block(p);
        let n = lz4_flex::block::decompress_into(&block, &mut buf).unwrap();
        assert_eq!(&buf[..n], &p[..]);
        total += block.len();
    }
    sizes.push(("lz4", total));

    let mut compressor = lzs::Compressor::new();
    let mut total = 0;
    for p in stream {
        let block = lzs_block(&mut compressor, p);
        let n = lzs::decompress(&block, &mut buf).unwrap();
        assert_eq!(&buf[..n], &p[..]);
        total += block.len();
    }
    sizes.push(("lzs", total));

    let mut inflater = Inflater::new();
    let mut total = 0;
    for (p, payload) in stream.iter().zip(deflate_payloads(stream)) {
        let n = inflater.decompress(&payload, &mut buf).unwrap();
        assert_eq!(&buf[..n], &p[..]);
        total += payload.len();
    }
    sizes.push(("deflate", total));

    let ratios: Vec<String> = sizes
        .iter()
        .map(|(name, size)| {
            format!(
                "{name} {size} B ({:.1} %)",
                100.0 * *size as f64 / plain as f64
            )
        })
        .collect();
    eprintln!("{kind}: {plain} B -> {}", ratios.join(", "));
}

fn streams() -> [(&'static str, Vec<Vec<u8>>); 2] {
    [("http", http_stream()), ("random", random_stream())]
}

fn stream_bytes() -> Throughput {
    Throughput::Bytes(u64::try_from(STREAM * PACKET).unwrap())
}

fn bench_lz4(c: &mut Criterion) {
    let mut group = c.benchmark_group("lz4");
    group.throughput(stream_bytes());
    for (kind, stream) in streams() {
        check_and_report(kind, &stream);
        let mut out = vec![0u8; lz4_flex::block::get_maximum_output_size(PACKET)];
        group.bench_function(format!("compress/{kind}"), |b| {
            b.iter(|| {
                for p in &stream {
                    let n = lz4_flex::block::compress_into(black_box(p), &mut out).unwrap();
                    black_box(&out[..n]);
                }
            });
        });
        let blocks: Vec<Vec<u8>> = stream.iter().map(|p| lz4_block(p)).collect();
        let mut buf = vec![0u8; MIN_DECOMPRESS_LIMIT];
        group.bench_function(format!("decompress/{kind}"), |b| {
            b.iter(|| {
                for block in &blocks {
                    let n = lz4_flex::block::decompress_into(black_box(block), &mut buf).unwrap();
                    black_box(&buf[..n]);
                }
            });
        });
    }
    group.finish();
}

fn bench_lzs(c: &mut Criterion) {
    let mut group = c.benchmark_group("lzs");
    group.throughput(stream_bytes());
    for (kind, stream) in streams() {
        // One compressor reused from packet to packet, as the tunnel keeps it.
        let mut compressor = lzs::Compressor::new();
        let mut out = vec![0u8; lzs_room(PACKET)];
        group.bench_function(format!("compress/{kind}"), |b| {
            b.iter(|| {
                for p in &stream {
                    let n = compressor.compress(black_box(p), &mut out).unwrap();
                    black_box(&out[..n]);
                }
            });
        });
        let blocks: Vec<Vec<u8>> = stream
            .iter()
            .map(|p| lzs_block(&mut compressor, p))
            .collect();
        let mut buf = vec![0u8; MIN_DECOMPRESS_LIMIT];
        group.bench_function(format!("decompress/{kind}"), |b| {
            b.iter(|| {
                for block in &blocks {
                    let n = lzs::decompress(black_box(block), &mut buf).unwrap();
                    black_box(&buf[..n]);
                }
            });
        });
    }
    group.finish();
}

fn bench_deflate(c: &mut Criterion) {
    let mut group = c.benchmark_group("deflate");
    group.throughput(stream_bytes());
    for (kind, stream) in streams() {
        // A deflater holds ~150 KiB of zlib state: LargeInput keeps fewer of them alive.
        group.bench_function(format!("compress/{kind}"), |b| {
            b.iter_batched(
                || (Deflater::new(), Vec::with_capacity(2 * PACKET)),
                |(mut deflater, mut out)| {
                    for p in &stream {
                        out.clear();
                        deflater.compress(black_box(p), &mut out).unwrap();
                        black_box(&out);
                    }
                    deflater
                },
                BatchSize::LargeInput,
            );
        });
        let payloads = deflate_payloads(&stream);
        let mut buf = vec![0u8; MIN_DECOMPRESS_LIMIT];
        group.bench_function(format!("decompress/{kind}"), |b| {
            b.iter_batched(
                Inflater::new,
                |mut inflater| {
                    for payload in &payloads {
                        let n = inflater.decompress(black_box(payload), &mut buf).unwrap();
                        black_box(&buf[..n]);
                    }
                    inflater
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, bench_lz4, bench_lzs, bench_deflate);
criterion_main!(benches);
