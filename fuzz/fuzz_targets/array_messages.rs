//! Array from a hostile server, through `oc_proto::array`: the input is read as each of its
//! answers (speed tunnel, interface, DTLS) and, after its first byte, as a TLS stream of raw
//! packets cut into pieces (the first byte picks the cut). Nothing panics; a stream with
//! nothing to drop gives the same packets however it is cut (a drop loses what is buffered,
//! so after one the cut matters), and each packet is as long as its own header says.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oc_proto::array::{control_type, parse_dtls_answer, parse_interface, PacketStream, SpeedTunnel};

fn read(wire: &[u8], cut: usize) -> (Vec<Vec<u8>>, usize) {
    let mut stream = PacketStream::new(16384);
    let mut packets = Vec::new();
    let mut dropped = 0;
    for chunk in wire.chunks(cut) {
        dropped += stream.decode(chunk, |p| packets.push(p.to_vec()));
    }
    (packets, dropped)
}

fuzz_target!(|data: &[u8]| {
    let _ = SpeedTunnel::parse(data);
    let _ = parse_interface(data);
    let _ = parse_dtls_answer(data);
    let Some((&cut, wire)) = data.split_first() else {
        return;
    };
    let whole = read(wire, wire.len().max(1));
    let pieces = read(wire, usize::from(cut).max(1));
    // Dropping loses what was buffered, so a cut can only change what follows a drop.
    if whole.1 == 0 {
        assert_eq!(whole, pieces);
    }
    for packet in &whole.0 {
        let said = match packet[0] >> 4 {
            4 => usize::from(u16::from_be_bytes([packet[2], packet[3]])),
            _ => usize::from(u16::from_be_bytes([packet[4], packet[5]])) + 40,
        };
        assert_eq!(said, packet.len());
        let _ = control_type(packet);
    }
});
