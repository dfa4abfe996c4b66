//! oNCP from a hostile peer, through `oc_proto::nc::oncp`: the input after its first two
//! bytes is the TLS byte stream, read by a client's decoder (a server's when the second
//! byte is odd). The decoder never panics, and what it hands out does not depend on how the
//! stream is cut into reads (the first byte picks the cut): the same events and the same
//! error come out fed whole and fed in pieces. Each data packet is as long as its own IP
//! header says; each configuration or settings message is read without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oc_proto::nc::config::NcConfig;
use oc_proto::nc::oncp::{parse_hostname_packet, OncpDecoder, OncpEvent};
use oc_proto::nc::NcError;

#[derive(Debug, PartialEq)]
enum Got {
    Hello(Option<String>),
    Status(u8),
    Packet(Vec<u8>),
    Message(u16, Vec<u8>),
    Terminated(u8),
}

fn read(wire: &[u8], cut: usize, server: bool) -> (Vec<Got>, Option<NcError>) {
    let mut decoder = if server {
        OncpDecoder::server()
    } else {
        OncpDecoder::client()
    };
    let mut got = Vec::new();
    for chunk in wire.chunks(cut) {
        let result = decoder.decode(chunk, |event| {
            got.push(match event {
                OncpEvent::Hello(h) => Got::Hello(parse_hostname_packet(h)),
                OncpEvent::Status(s) => Got::Status(s),
                OncpEvent::Packet(p) => Got::Packet(p.to_vec()),
                OncpEvent::Message { kind, payload } => {
                    // Keys from a configuration are its secrets block: the encryption key,
                    // then the HMAC key.
                    if let Ok(config) = NcConfig::parse(kind, payload) {
                        if let (Ok(Some(keys)), Some((_, secrets))) =
                            (config.outbound_keys(), &config.outbound)
                        {
                            let both = [keys.encryption_key(), keys.integrity_key()].concat();
                            assert_eq!(secrets.get(..both.len()), Some(&both[..]));
                        }
                    }
                    Got::Message(kind, payload.to_vec())
                }
                OncpEvent::Terminated(r) => Got::Terminated(r),
            });
            Ok::<_, NcError>(())
        });
        if let Err(e) = result {
            return (got, Some(e));
        }
    }
    (got, None)
}

fuzz_target!(|data: &[u8]| {
    let [cut, side, wire @ ..] = data else {
        return;
    };
    let server = side % 2 == 1;
    let whole = read(wire, wire.len().max(1), server);
    let pieces = read(wire, usize::from(*cut).max(1), server);
    assert_eq!(whole, pieces);
    for got in &whole.0 {
        if let Got::Packet(packet) = got {
            let said = match packet[0] >> 4 {
                4 => usize::from(u16::from_be_bytes([packet[2], packet[3]])),
                _ => usize::from(u16::from_be_bytes([packet[4], packet[5]])) + 40,
            };
            assert_eq!(said, packet.len());
        }
    }
});
