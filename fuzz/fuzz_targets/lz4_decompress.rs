//! Arbitrary bytes as the payload of an `oc-lz4` COMPRESSED frame on CSTP.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oc_proto::anyconnect::session::Channel;
use oc_proto::compress::{Algorithm, TunnelCompression, MIN_DECOMPRESS_LIMIT};

fuzz_target!(|data: &[u8]| {
    let mut tunnel = TunnelCompression::new(Some(Algorithm::Lz4), None, 0, 1400);
    let packet = match tunnel.decompress(Channel::Cstp, data) {
        Ok(packet) => packet.to_vec(),
        Err(_) => return,
    };
    assert!(packet.len() <= MIN_DECOMPRESS_LIMIT);
    // Whatever decoded encodes again and comes back unchanged through the same tunnel
    // (stateless: the first block leaves nothing behind).
    let mut block = vec![0u8; lz4_flex::block::get_maximum_output_size(packet.len())];
    let n = lz4_flex::block::compress_into(&packet, &mut block)
        .unwrap_or_else(|e| panic!("lz4_flex cannot re-encode {} bytes: {e}", packet.len()));
    let back = tunnel
        .decompress(Channel::Cstp, &block[..n])
        .unwrap_or_else(|e| panic!("re-encoded block does not decode: {e}"));
    assert_eq!(back, &packet[..], "LZ4 round trip changed the data");
    assert!(tunnel.decompress(Channel::Dtls, data).is_err());
});
