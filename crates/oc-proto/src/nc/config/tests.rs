//! The configuration TLVs, each read back from what the other side writes.

use std::net::IpAddr;

use super::*;
use crate::esp::EspParams;
use crate::nc::oncp::{OncpDecoder, OncpEvent};

fn config_payload() -> Vec<u8> {
    let mut ip = Vec::new();
    push_tlv(&mut ip, 1, &[10, 0, 0, 7]);
    push_tlv(&mut ip, 2, &[255, 255, 255, 0]);
    push_tlv(&mut ip, 3, &[10, 0, 0, 1]);
    let mut dns = Vec::new();
    push_tlv(&mut dns, 1, &[10, 0, 0, 53]);
    push_tlv(&mut dns, 2, b"corp.example");
    let mut routes = Vec::new();
    push_tlv(&mut routes, 3, &[10, 1, 0, 0, 255, 255, 0, 0]);
    push_tlv(&mut routes, 4, &[10, 1, 2, 0, 255, 255, 255, 0]);
    let mut mtu = Vec::new();
    push_tlv(&mut mtu, 2, &1400u32.to_be_bytes());
    let mut esp = Vec::new();
    push_tlv(&mut esp, 1, &[2]);
    push_tlv(&mut esp, 2, &[2]);
    push_tlv(&mut esp, 3, &[0]);
    push_tlv(&mut esp, 4, &4500u16.to_be_bytes());
    push_tlv(&mut esp, 10, &1u32.to_be_bytes());
    push_tlv(&mut esp, 99, &[1, 2, 3]);
    let mut keys = Vec::new();
    push_tlv(&mut keys, 1, &0x1234_5678u32.to_be_bytes());
    push_tlv(&mut keys, 2, &[0x5a; ESP_SECRETS_LEN]);
    let mut payload = Vec::new();
    for (group, body) in [
        (1, ip),
        (2, dns),
        (3, routes),
        (6, mtu),
        (8, esp),
        (7, keys),
    ] {
        push_tlv(&mut payload, group, &body);
    }
    payload
}

/// The KMP messages in records a client or server sent.
fn messages(wire: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut decoder = OncpDecoder::server();
    let mut out = Vec::new();
    // A hello first, as the decoder expects.
    let hello = crate::nc::oncp::hostname_packet("x");
    decoder
        .decode([&hello[..], wire].concat().as_slice(), |event| {
            if let OncpEvent::Message { kind, payload } = event {
                out.push((kind, payload.to_vec()));
            }
            Ok::<_, NcError>(())
        })
        .unwrap();
    out
}

#[test]
fn the_configuration_as_upstream_reads_it() {
    let config = NcConfig::parse(KMP_CONFIG, &config_payload()).unwrap();
    let ip = &config.ip;
    assert_eq!(ip.ipv4, Some(Ipv4Addr::new(10, 0, 0, 7)));
    assert_eq!(ip.ipv4_netmask, Some(Ipv4Addr::new(255, 255, 255, 0)));
    assert_eq!(ip.dns, vec![IpAddr::from([10, 0, 0, 53])]);
    assert_eq!(ip.default_domain.as_deref(), Some("corp.example"));
    assert_eq!(
        ip.split_include4,
        vec!["10.1.0.0/16".parse::<Ipv4Net>().unwrap()]
    );
    assert_eq!(
        ip.split_exclude4,
        vec!["10.1.2.0/24".parse::<Ipv4Net>().unwrap()]
    );
    assert_eq!(ip.mtu, 1400);
    assert_eq!(config.esp.port, Some(4500));
    assert_eq!(config.esp.replay_protection, Some(true));
    assert!(!config.esp.compression);
    assert_eq!(config.unknown, vec![(8, 99, 3)]);
    let keys = config.outbound_keys().unwrap().unwrap();
    assert_eq!(keys.spi(), 0x1234_5678);
    assert_eq!(keys.encryption_key(), &[0x5a; 16][..]);
    assert_eq!(keys.integrity_key(), &[0x5a; 20][..]);
}

#[test]
fn a_gateways_configuration_reads_back_whole() {
    let mut config = NcConfig::parse(KMP_CONFIG, &config_payload()).unwrap();
    config.unknown.clear();
    config.ip.nbns.clear();
    config.esp.lifetime_seconds = Some(3600);
    config.esp.ssl_fallback = Some(15);
    let wire = config_record(&config).unwrap();
    let read = messages(&wire);
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].0, KMP_CONFIG);
    assert_eq!(NcConfig::parse(KMP_CONFIG, &read[0].1).unwrap(), config);
    // The header is the one a gateway sends, which upstream checks.
    assert_eq!(&wire[2 + 8..2 + 18], &crate::nc::oncp::KMP_TAIL_IN[..]);
    // What upstream reads: groups starting before the payload's last 20 bytes. The MTU,
    // the routes and the address are all among them.
    let payload = &read[0].1;
    let mut at = 0;
    let mut seen = Vec::new();
    while at < payload.len() - 20 {
        let group = u16::from_be_bytes([payload[at], payload[at + 1]]);
        let len = u32::from_be_bytes(payload[at + 2..at + 6].try_into().unwrap()) as usize;
        seen.push(group);
        at += 6 + len;
    }
    for group in [1, 2, 3, 6, 7, 8] {
        assert!(seen.contains(&group), "group {group} not read: {seen:?}");
    }
    // Without ESP there is no group 7 or 8.
    let plain = NcConfig {
        ip: config.ip.clone(),
        ..NcConfig::default()
    };
    let read = messages(&config_record(&plain).unwrap());
    let back = NcConfig::parse(KMP_CONFIG, &read[0].1).unwrap();
    assert_eq!((back.esp, back.outbound), (EspParams::default(), None));
}

#[test]
fn bad_configurations_are_errors_not_panics() {
    let mut short = Vec::new();
    push_tlv(&mut short, 1, &[10, 0, 0]);
    let mut payload = Vec::new();
    push_tlv(&mut payload, 1, &short);
    assert!(matches!(
        NcConfig::parse(KMP_CONFIG, &payload),
        Err(NcError::BadAttribute {
            group: 1,
            attr: 1,
            len: 3
        })
    ));
    // A length that lies, at both levels.
    let mut lying = config_payload();
    lying[5] = 0xff;
    assert!(matches!(
        NcConfig::parse(KMP_CONFIG, &lying),
        Err(NcError::Truncated(_))
    ));
    assert!(NcConfig::parse(KMP_CONFIG, &[0, 1, 0]).is_err());
    // ESP negotiation with other groups.
    assert_eq!(
        NcConfig::parse(KMP_ESP_KEYS, &config_payload()),
        Err(NcError::NonEspGroup(1))
    );
    assert_eq!(
        NcConfig::parse(KMP_CONFIG, &[]).unwrap(),
        NcConfig::default()
    );
    // A route without a mask is skipped, as upstream: 0.0.0.0/0 would take over routing.
    let mut routes = Vec::new();
    push_tlv(&mut routes, 3, &[10, 9, 0, 0, 0, 0, 0, 0]);
    push_tlv(&mut routes, 4, &[10, 8, 0, 0, 255, 255, 0, 0]);
    let mut payload = Vec::new();
    push_tlv(&mut payload, 3, &routes);
    let config = NcConfig::parse(KMP_CONFIG, &payload).unwrap();
    assert!(config.ip.split_include4.is_empty());
    assert_eq!(config.ip.split_exclude4.len(), 1);
    // Secrets of the wrong size.
    let mut keys = Vec::new();
    push_tlv(&mut keys, 2, &[1; 63]);
    let mut payload = Vec::new();
    push_tlv(&mut payload, 7, &keys);
    assert!(NcConfig::parse(KMP_ESP_KEYS, &payload).is_err());
}

#[test]
fn the_clients_messages_read_back() {
    let secrets = [0x11; ESP_SECRETS_LEN];
    let read = messages(&client_settings(1380, Some((0xabcd, &secrets))).unwrap());
    assert_eq!(read.len(), 2, "two messages in one record");
    assert_eq!(read[0].0, KMP_CLIENT);
    let settings = NcConfig::parse(KMP_CLIENT, &read[0].1).unwrap();
    assert_eq!((settings.ip.mtu, settings.esp_enable), (1380, None));
    assert_eq!(read[1].0, KMP_ESP_KEYS);
    let parsed = NcConfig::parse(KMP_ESP_KEYS, &read[1].1).unwrap();
    assert_eq!(parsed.outbound, Some((0xabcd, secrets.to_vec())));
    let rekey = messages(&esp_keys_record(7, &secrets).unwrap());
    assert_eq!(
        NcConfig::parse(rekey[0].0, &rekey[0].1).unwrap().outbound,
        Some((7, secrets.to_vec()))
    );
    for on in [true, false] {
        let read = messages(&esp_control(on).unwrap());
        let control = NcConfig::parse(KMP_CLIENT, &read[0].1).unwrap();
        assert_eq!(control.esp_enable, Some(on));
    }
    let read = messages(&client_settings(1400, None).unwrap());
    assert_eq!(read.len(), 1, "no keys without ESP");
}
