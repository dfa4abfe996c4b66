//! oNCP's layers, each read back from what the other side writes.

use super::*;

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

#[test]
fn records_are_stripped_whatever_the_reads() {
    let mut stream = message(KMP_CONFIG, &config_payload()).unwrap();
    stream.extend_from_slice(&message(KMP_DATA, &[]).unwrap());
    // The stream cut into records of 7 bytes, then fed a byte at a time.
    let mut wire = Vec::new();
    for chunk in stream.chunks(7) {
        wire.extend_from_slice(&record(chunk));
    }
    let mut reader = RecordReader::default();
    let mut out = Vec::new();
    for b in &wire {
        assert_eq!(
            reader.feed(std::slice::from_ref(b), &mut out).unwrap(),
            None
        );
    }
    assert_eq!(out, stream);
    let first = next_message(&mut out).unwrap();
    assert_eq!(first.kind, KMP_CONFIG);
    assert_eq!(next_message(&mut out).unwrap().kind, KMP_DATA);
    assert!(out.is_empty() && next_message(&mut out).is_none());
    // The server's end: a zero-length record and its reason.
    let mut tail = Vec::new();
    assert_eq!(
        reader.feed(&[0, 0, 8], &mut tail).unwrap(),
        Some(RecordEvent::Terminated(8))
    );
}

#[test]
fn the_configuration_as_upstream_reads_it() {
    let config = NcConfig::parse(KMP_CONFIG, &config_payload()).unwrap();
    let ip = &config.ip;
    assert_eq!(ip.ipv4, Some(Ipv4Addr::new(10, 0, 0, 7)));
    assert_eq!(ip.ipv4_netmask, Some(Ipv4Addr::new(255, 255, 255, 0)));
    assert_eq!(ip.dns, vec![std::net::IpAddr::from([10, 0, 0, 53])]);
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
}

#[test]
fn data_packets_split_by_their_ip_lengths() {
    let mut v4 = vec![0x45, 0, 0, 24];
    v4.resize(24, 7);
    let mut v6 = vec![0x60, 0, 0, 0, 0, 4];
    v6.resize(44, 9);
    let payload = [v4.clone(), v6.clone()].concat();
    assert_eq!(data_packets(&payload).unwrap(), vec![&v4[..], &v6[..]]);
    assert!(
        data_packets(&[0x45, 0, 0, 99, 1]).is_err(),
        "longer than the rest"
    );
    assert!(data_packets(&[0x45, 0, 0, 0]).is_err(), "zero length");
    assert!(data_packets(&[0x12]).is_err());
    assert!(data_packets(&[]).unwrap().is_empty());
    let record = data_record(&v4).unwrap();
    let mut reader = RecordReader::default();
    let mut stream = Vec::new();
    reader.feed(&record, &mut stream).unwrap();
    let message = next_message(&mut stream).unwrap();
    assert_eq!((message.kind, message.payload), (KMP_DATA, v4));
}

#[test]
fn the_clients_messages_read_back() {
    let hello = hostname_packet("laptop");
    assert_eq!(&hello[..2], &(hello.len() as u16 - 2).to_le_bytes());
    assert!(hello.windows(6).any(|w| w == b"laptop"));
    let secrets = [0x11; ESP_SECRETS_LEN];
    let settings = client_settings(1380, Some((0xabcd, &secrets))).unwrap();
    let mut stream = Vec::new();
    RecordReader::default()
        .feed(&settings, &mut stream)
        .unwrap();
    let mtu = next_message(&mut stream).unwrap();
    assert_eq!(mtu.kind, KMP_CLIENT);
    assert_eq!(
        NcConfig::parse(KMP_CLIENT, &mtu.payload).unwrap().ip.mtu,
        1380
    );
    let keys = next_message(&mut stream).unwrap();
    assert_eq!(keys.kind, KMP_ESP_KEYS);
    let parsed = NcConfig::parse(KMP_ESP_KEYS, &keys.payload).unwrap();
    assert_eq!(parsed.outbound, Some((0xabcd, secrets.to_vec())));
    let on = esp_control(true).unwrap();
    assert_eq!(*on.last().unwrap(), 1);
    assert!(is_config_header(&{
        let mut h = KmpHeader::emit(KMP_CONFIG, 0).unwrap();
        h[12] = 0;
        h
    }));
    assert!(!is_config_header(&[1; 20]));
}
