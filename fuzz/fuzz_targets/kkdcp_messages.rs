//! A client's KDC-PROXY-MESSAGE as the network process reads it: decoding never panics,
//! a decoded message's Kerberos part is framed as its length prefix says, and the reply
//! wrapper decodes back to what it wrapped. The `kkdcp` config value takes the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oc_proto::kkdcp::{frame_udp_reply, parse_route, ProxyMessage, MAX_MESSAGE};

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = ProxyMessage::decode(data) {
        let payload = message.udp_payload();
        assert!(!payload.is_empty() && payload.len() <= MAX_MESSAGE);
        assert_eq!(message.kerb_message.len(), payload.len() + 4);
        let reply = ProxyMessage::encode_reply(&message.kerb_message);
        let back = ProxyMessage::decode(&reply).expect("our reply decodes");
        assert_eq!(back.kerb_message, message.kerb_message);
        assert_eq!(frame_udp_reply(payload).as_deref(), Ok(&message.kerb_message[..]));
    }
    let _ = parse_route(&String::from_utf8_lossy(data));
});
