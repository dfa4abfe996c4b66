//! oNCP from a hostile server, through `oc_proto::nc::oncp`: the input after its first byte
//! is the TLS byte stream. The record reader never panics, and what it yields does not
//! depend on how the stream is cut into reads (the first byte picks the cut): the same KMP
//! messages and the same end come out fed whole and fed in pieces. Each data packet found
//! is as long as its own IP header says; each configuration is read without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oc_proto::nc::oncp::{
    data_packets, next_message, KmpMessage, NcConfig, RecordEvent, RecordReader, KMP_DATA,
};

/// The messages and the end of the stream, fed `cut` bytes at a time.
fn read(wire: &[u8], cut: usize) -> (Vec<KmpMessage>, Option<RecordEvent>) {
    let mut reader = RecordReader::default();
    let mut stream = Vec::new();
    let mut messages = Vec::new();
    for chunk in wire.chunks(cut) {
        let event = reader.feed(chunk, &mut stream).ok().flatten();
        while let Some(message) = next_message(&mut stream) {
            messages.push(message);
        }
        if event.is_some() {
            return (messages, event);
        }
    }
    (messages, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, wire)) = data.split_first() else {
        return;
    };
    let whole = read(wire, wire.len().max(1));
    let pieces = read(wire, usize::from(cut).max(1));
    assert_eq!(whole, pieces);
    for message in &whole.0 {
        if message.kind == KMP_DATA {
            for packet in data_packets(&message.payload).unwrap_or_default() {
                let said = match packet[0] >> 4 {
                    4 => usize::from(u16::from_be_bytes([packet[2], packet[3]])),
                    _ => usize::from(u16::from_be_bytes([packet[4], packet[5]])) + 40,
                };
                assert_eq!(said, packet.len());
            }
        }
        let _ = NcConfig::parse(message.kind, &message.payload);
    }
});
