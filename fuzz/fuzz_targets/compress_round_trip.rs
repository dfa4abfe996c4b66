//! Packets through a sending `TunnelCompression` and a separate receiving one: every packet
//! that goes out compressed must come back unchanged.
//!
//! Input layout: byte 0 picks the algorithm (`% 3`: LZ4, LZS, deflate) and, for the
//! stateless ones, bit 2 picks DTLS instead of CSTP. The rest is a sequence of packets,
//! each a little-endian u16 length (reduced below 16 KiB, the receive bound) followed by
//! that many bytes (fewer for the last one if the input runs out).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oc_proto::anyconnect::frame::CSTP_HEADER_LEN;
use oc_proto::anyconnect::session::Channel;
use oc_proto::compress::{Algorithm, TunnelCompression, MIN_DECOMPRESS_LIMIT};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, mut rest)) = data.split_first() else {
        return;
    };
    let algorithm = [Algorithm::Lz4, Algorithm::Lzs, Algorithm::Deflate][usize::from(selector % 3)];
    let channel = if algorithm.is_stateless() && selector & 4 != 0 {
        Channel::Dtls
    } else {
        Channel::Cstp
    };
    let (cstp, dtls) = match channel {
        Channel::Cstp => (Some(algorithm), None),
        Channel::Dtls => (None, Some(algorithm)),
    };
    let mut tx = TunnelCompression::new(cstp, dtls, 0, 1400);
    let mut rx = TunnelCompression::new(cstp, dtls, 0, 1400);
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_le_bytes(*len)) % MIN_DECOMPRESS_LIMIT;
        let (packet, tail) = tail.split_at(len.min(tail.len()));
        rest = tail;
        let frame = match tx.compress(channel, packet) {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                // Only the stateless algorithms may decline; deflate sends everything.
                assert!(algorithm.is_stateless(), "deflate declined a packet");
                continue;
            }
            Err(e) => panic!("{algorithm} failed to compress {} bytes: {e}", packet.len()),
        };
        let payload = frame[CSTP_HEADER_LEN..].to_vec();
        if algorithm.is_stateless() {
            assert!(
                payload.len() < packet.len(),
                "{algorithm} sent a packet that grew"
            );
        }
        match rx.decompress(channel, &payload) {
            Ok(back) => assert_eq!(back, packet, "{algorithm} round trip changed the packet"),
            Err(e) => panic!("{algorithm} could not decompress its own output: {e}"),
        }
    }
});
