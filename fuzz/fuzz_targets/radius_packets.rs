//! A RADIUS server's (or a forger's) datagram as the security module reads it: decoding
//! must never panic, a decoded packet must encode back to the bytes it came from (up to
//! its length field), and the reply readers must refuse anything not signed with the
//! secret. The radcli configuration reader takes the same bytes as a file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oc_proto::radius::{
    parse_client_conf, parse_servers_file, read_access_reply, read_accounting_response, Packet,
    RadiusError,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = Packet::decode(data) {
        let length = usize::from(u16::from_be_bytes([data[2], data[3]]));
        assert_eq!(packet.encode().as_deref(), Ok(&data[..length]));
        let _ = packet.vendor(311);
    }
    let authenticator = [7u8; 16];
    match read_access_reply(
        data,
        data.get(1).copied().unwrap_or(0),
        &authenticator,
        b"s",
    ) {
        Ok(_)
        | Err(RadiusError::Forged | RadiusError::Malformed(_) | RadiusError::Unexpected(_)) => {}
        Err(other) => panic!("unexpected error {other}"),
    }
    let mut request = vec![4, 9, 0, 20];
    request.extend(authenticator);
    let _ = read_accounting_response(data, &request, b"s");
    let text = String::from_utf8_lossy(data);
    let _ = parse_client_conf(&text, "fuzz.conf");
    let _ = parse_servers_file(&text);
});
