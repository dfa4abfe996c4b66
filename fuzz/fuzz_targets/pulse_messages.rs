//! Pulse from a hostile server, through `oc_proto::pulse`: the input after its first byte
//! is the TLS byte stream. IF-T messages come out the same fed whole and fed in pieces
//! (the first byte picks the cut); each one goes to a client's login in progress and to
//! the configuration readers; none panics, and the login never asks more than its bound.
//! A server that starts EAP-TTLS gets a stand-in TLS connection (`PlainTls`), so the
//! fragments, acknowledgements and AVPs inside are read too; and the AVP stream and
//! fragment joiner read the payloads on their own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oc_proto::pulse::auth::{AuthStep, ClientInfo, PulseAuth};
use oc_proto::pulse::config::{parse_esp_config, parse_esp_control, PulseConfig};
use oc_proto::pulse::ift::{IftDecoder, IftPacket};
use oc_proto::pulse::server::Answer;
use oc_proto::pulse::ttls::{AvpStream, Fragment, PlainTls, Reassembly};
use oc_proto::pulse::PulseError;

type Message = (u32, u32, u32, Vec<u8>);

fn read(wire: &[u8], cut: usize) -> (Vec<Message>, Option<PulseError>) {
    let mut decoder = IftDecoder::default();
    let mut got = Vec::new();
    for chunk in wire.chunks(cut) {
        let result = decoder.decode(chunk, |p| {
            got.push((p.vendor, p.kind, p.seq, p.payload.to_vec()));
            Ok::<_, PulseError>(())
        });
        if let Err(e) = result {
            return (got, Some(e));
        }
    }
    (got, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, wire)) = data.split_first() else {
        return;
    };
    let whole = read(wire, wire.len().max(1));
    assert_eq!(whole, read(wire, usize::from(cut).max(1)));
    let (mut auth, _) = PulseAuth::new(ClientInfo::default(), None);
    let mut asked = 0;
    for (vendor, kind, seq, payload) in &whole.0 {
        let msg = IftPacket {
            vendor: *vendor,
            kind: *kind,
            seq: *seq,
            payload,
        };
        let mut step = auth.on_message(msg);
        if step == Ok(AuthStep::StartTls) {
            step = auth.start_tls(Box::new(PlainTls::default()));
        }
        if let Ok(AuthStep::Ask(form)) = step {
            asked += 1;
            let answers: Vec<(String, String)> = form
                .fields
                .iter()
                .map(|f| (f.name.clone(), "x".repeat(300)))
                .collect();
            let _ = auth.answer(&answers);
            let _ = auth.answer(&[]);
        }
        let _ = PulseConfig::parse(payload);
        let _ = parse_esp_config(payload);
        let _ = parse_esp_control(payload);
        let _ = Answer::parse(payload);
        let mut avps = AvpStream::default();
        avps.push(payload);
        while let Ok(Some(_)) = avps.next_eap() {}
        let mut joined = Reassembly::default();
        for piece in payload.chunks(usize::from(cut).max(1)) {
            if let Ok(fragment) = Fragment::parse(piece) {
                let _ = joined.push(fragment);
            }
        }
    }
    assert!(asked <= 32);
});
