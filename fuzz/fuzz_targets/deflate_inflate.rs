//! A fresh `deflate` inflater fed arbitrary data cut into several payloads, as a CSTP
//! receiver would see a hostile stream.
//!
//! Input layout: byte 0 gives the number of payloads, `(byte0 & 7) + 1`; then one
//! little-endian u16 per cut (payloads minus one), each the length of the next payload
//! (clamped to what is left); the last payload takes the rest.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oc_proto::compress::deflate::Inflater;
use oc_proto::compress::MIN_DECOMPRESS_LIMIT;

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let payloads = usize::from(head & 7) + 1;
    let cuts = payloads - 1;
    let Some((lengths, mut body)) = rest.split_at_checked(cuts * 2) else {
        return;
    };
    let mut inflater = Inflater::new();
    let mut out = vec![0u8; MIN_DECOMPRESS_LIMIT];
    let lengths = lengths
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])))
        .chain(std::iter::once(usize::MAX));
    for length in lengths {
        let (payload, tail) = body.split_at(length.min(body.len()));
        body = tail;
        match inflater.decompress(payload, &mut out) {
            Ok(n) => assert!(n < out.len()),
            // The stream is unusable after an error; the connection ends there.
            Err(_) => return,
        }
    }
});
