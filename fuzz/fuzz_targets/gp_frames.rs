//! GlobalProtect's TLS framing and ESP probes from a hostile peer.
//!
//! - The input, cut where its first byte says, goes through one `FrameDecoder` in pieces:
//!   no panic, every frame's payload is as long as its header says (none for a
//!   keepalive), the bytes held never exceed one frame, and the frames are exactly those
//!   of decoding the input whole (until the first error).
//! - The input as one TLS record (`read_record`) gives a frame only when the record is
//!   exactly one frame.
//! - The input framed by us decodes back to itself.
//! - The input as a decrypted ESP packet: if the gateway takes it for a probe, its reply
//!   is one the client recognises; nothing panics.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use oc_proto::gp::frame::{
    push_frame, read_record, FrameDecoder, FrameError, FrameKind, HEADER_LEN, MAX_PAYLOAD,
};
use oc_proto::gp::probe::{is_echo_reply, reply_to_probe};

type Frames = Vec<(FrameKind, Vec<u8>)>;

fn decode(dec: &mut FrameDecoder, input: &[u8], out: &mut Frames) -> Result<(), FrameError> {
    dec.decode(input, |f| {
        if f.kind == FrameKind::Keepalive {
            assert!(f.payload.is_empty());
        }
        out.push((f.kind, f.payload.to_vec()));
        Ok::<_, FrameError>(())
    })
}

fuzz_target!(|data: &[u8]| {
    let step = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut pieces = FrameDecoder::new();
    let mut by_pieces = Vec::new();
    let mut piece_error = false;
    for chunk in data.chunks(step) {
        if decode(&mut pieces, chunk, &mut by_pieces).is_err() {
            piece_error = true;
            break;
        }
        assert!(pieces.pending() <= HEADER_LEN + MAX_PAYLOAD);
    }
    let mut whole = FrameDecoder::new();
    let mut at_once = Vec::new();
    let whole_error = decode(&mut whole, data, &mut at_once).is_err();
    assert_eq!(by_pieces, at_once);
    assert_eq!(piece_error, whole_error);

    if let Ok(Some(frame)) = read_record(data) {
        assert_eq!(frame.payload.len() + HEADER_LEN, data.len());
    }

    if !data.is_empty() && data.len() <= MAX_PAYLOAD {
        let mut framed = Vec::new();
        push_frame(data, &mut framed).expect("fits");
        let frame = read_record(&framed).expect("ours").expect("one frame");
        assert_eq!(frame.payload, data);
        assert!(!frame.odd_tail);
    }

    for magic in [
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
    ] {
        let _ = is_echo_reply(data, magic);
        if let Some((_, reply)) = reply_to_probe(data, magic) {
            assert!(is_echo_reply(&reply, magic));
        }
    }
});
