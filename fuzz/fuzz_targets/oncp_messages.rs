//! oNCP from a hostile server, through `oc_proto::nc::oncp`: the input, cut where its first
//! byte says, is the TLS byte stream. The record reader never panics and holds no more than
//! it was given; every complete KMP message is read as a configuration (any of its
//! types), a data message is split into packets that lie inside it, and keys from a
//! configuration have the suite's lengths.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oc_proto::nc::oncp::{data_packets, next_message, NcConfig, RecordReader, KMP_DATA};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, wire)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).max(1);
    let mut reader = RecordReader::default();
    let mut stream = Vec::new();
    for chunk in wire.chunks(cut) {
        let Ok(event) = reader.feed(chunk, &mut stream) else {
            return;
        };
        assert!(stream.len() <= wire.len());
        while let Some(message) = next_message(&mut stream) {
            if message.kind == KMP_DATA {
                if let Ok(packets) = data_packets(&message.payload) {
                    let total: usize = packets.iter().map(|p| p.len()).sum();
                    assert_eq!(total, message.payload.len());
                }
            }
            if let Ok(config) = NcConfig::parse(message.kind, &message.payload) {
                if let Ok(Some(keys)) = config.outbound_keys() {
                    let suite = keys.suite();
                    assert_eq!(keys.encryption_key().len(), suite.encryption.key_len());
                }
            }
        }
        if event.is_some() {
            return;
        }
    }
});
