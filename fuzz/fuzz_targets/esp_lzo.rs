//! Juniper's LZO-compressed ESP (next header 5) from a hostile gateway: the fuzzer's bytes
//! are the payload of an authentic packet, opened by an ESP session. It is inflated or
//! dropped as a decompression failure, never a panic; what inflates fits the largest
//! packet, compresses again and inflates back to the same bytes.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use oc_proto::esp::{
    EspDrop, EspEncryption, EspInbound, EspIntegrity, EspKeys, EspOutbound, EspSession,
    EspSuite, Incoming, JuniperProber, NextHeader, MAX_ESP_PACKET_LEN,
};
use oc_tls::esp::OpenSslEspCipher;

const SPI: u32 = 0x4242;

fn cipher() -> OpenSslEspCipher {
    let suite = EspSuite::new(EspEncryption::Aes128Cbc, EspIntegrity::HmacSha1_96);
    let keys = EspKeys::new(SPI, suite, &[7; 16], &[9; 20]).expect("valid keys");
    OpenSslEspCipher::with_first_iv(&keys, [0x5a; 16]).expect("cipher")
}

/// `payload` sealed as the gateway would, with next header 5.
fn sealed(gateway: &mut EspOutbound<OpenSslEspCipher>, payload: &[u8]) -> Option<Vec<u8>> {
    let h = gateway.headroom();
    let mut buf = vec![0u8; h];
    buf.extend_from_slice(payload);
    buf.resize(h + payload.len() + gateway.tailroom(), 0);
    let range = gateway
        .seal(&mut buf, h..h + payload.len(), NextHeader::LzoIpv4)
        .ok()?;
    buf.get(range).map(<[u8]>::to_vec)
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() || data.len() > 4096 {
        return;
    }
    let now = Instant::now();
    let mut gateway = EspOutbound::new(SPI, cipher());
    let mut esp = EspSession::new(
        EspOutbound::new(SPI + 1, cipher()),
        EspInbound::new(SPI, cipher(), true),
        JuniperProber {
            gateway_is_ipv6: false,
        },
        None,
        now,
    );
    let Some(mut datagram) = sealed(&mut gateway, data) else {
        return;
    };
    match esp.open(&mut datagram, now) {
        Ok(Incoming::Inflated) => {}
        Err(EspDrop::Decompression { len }) => {
            assert_eq!(len, data.len());
            assert_eq!(esp.counters().decompression_failed, 1);
            return;
        }
        // The one-byte probe answer is told apart before anything inflates.
        Ok(Incoming::ProbeAnswer | Incoming::Established) => return,
        other => panic!("an authentic LZO packet opened as {other:?}"),
    }
    let packet = esp.inflated().to_vec();
    assert!(packet.len() <= MAX_ESP_PACKET_LEN);
    let again = lzo1x::compress(&packet, lzo1x::CompressLevel::default());
    let Some(mut datagram) = sealed(&mut gateway, &again) else {
        return;
    };
    assert_eq!(esp.open(&mut datagram, now), Ok(Incoming::Inflated));
    assert_eq!(esp.inflated(), packet, "LZO round trip changed the data");
});
