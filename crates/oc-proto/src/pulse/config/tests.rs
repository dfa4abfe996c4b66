//! Pulse configurations: upstream's own examples read as upstream reads them, and what the
//! gateway side writes read back.

use super::*;
use crate::pulse::ift::{IftDecoder, HEADER_LEN};

fn unhex(text: &str) -> Vec<u8> {
    let digits: String = text.split_whitespace().collect();
    crate::hex::decode(&digits).unwrap()
}

/// The example in upstream's pulse.c (a 9.1 server, the older form with routes).
const UPSTREAM_EXAMPLE: &str = "
    00 00 0a 4c 00 00 00 01  00 00 01 80 00 00 01 fb 00 00 00 00 00 00 00 00
    00 00 00 00 00 00 00 00  2c 20 f0 00 00 00 00 00 00 00 01 70 2e 00 00 78
    07 00 00 00 07 00 00 10  00 00 ff ff 05 05 00 00 05 05 ff ff 07 00 00 10
    00 00 ff ff 07 00 00 00  07 00 00 ff 07 00 00 10 00 00 ff ff 08 08 08 08
    08 08 08 08 f1 00 00 10  00 00 ff ff 06 06 06 06 06 06 06 07 f1 00 00 10
    00 00 ff ff 09 09 09 09  09 09 09 09 f1 00 00 10 00 00 ff ff 0a 0a 0a 0a
    0a 0a 0a 0a f1 00 00 10  00 00 ff ff 0b 0b 0b 0b 0b 0b 0b 0b 00 00 00 dc
    03 00 00 00 40 00 00 01  00 40 01 00 01 00 40 1f 00 01 00 40 20 00 01 00
    40 21 00 01 00 40 05 00  04 00 00 05 78 00 03 00 04 08 08 08 08 00 03 00
    04 08 08 04 04 40 06 00  0c 70 73 65 63 75 72 65 2e 6e 65 74 00 40 07 00
    04 00 00 00 00 00 04 00  04 01 01 01 01 40 19 00 01 01 40 1a 00 01 00 40
    0f 00 02 00 00 40 10 00  02 00 05 40 11 00 02 00 02 40 12 00 04 00 00 04
    b0 40 13 00 04 00 00 00  00 40 14 00 04 00 00 00 01 40 15 00 04 00 00 00
    00 40 16 00 02 11 94 40  17 00 04 00 00 00 0f 40 18 00 04 00 00 00 3c 00
    01 00 04 0a 14 03 01 00  02 00 04 ff ff ff ff 40 0b 00 04 0a c8 c8 c8 40
    0c 00 01 00 40 0d 00 01  00 40 0e 00 01 00 40 1b 00 01 00 40 1c 00 01 00";

/// What upstream's fake Pulse server sends (the 9.1R14 form).
const FAKE_SERVER: &str = "
    00 00 0a 4c 00 00 00 01 00 00 00 73 00 00 00 00 00 00 00 00 00 00 00 00
    00 00 00 00 00 00 00 00 2e 20 f0 00 00 00 00 00 00 00 00 63 2c 00 00 0d
    03 00 00 00 40 26 00 01 00 2e 00 00 08 00 00 00 00 00 00 00 32 03 00 00
    00 00 01 00 04 c0 a8 03 00 00 02 00 04 ff ff ff 00 40 05 00 04 00 00 05
    78 40 10 00 02 00 02 40 11 00 02 00 02 40 16 00 02 11 94";

fn payload_of(packet: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    IftDecoder::default()
        .decode(packet, |p| {
            out = p.payload.to_vec();
            Ok::<_, PulseError>(())
        })
        .unwrap();
    out
}

#[test]
fn upstreams_example_reads_as_upstream_reads_it() {
    let config = PulseConfig::parse(&payload_of(&unhex(UPSTREAM_EXAMPLE))).unwrap();
    let ip = &config.ip;
    assert_eq!(ip.ipv4, Some(Ipv4Addr::new(10, 20, 3, 1)));
    assert_eq!(ip.ipv4_netmask, Some(Ipv4Addr::BROADCAST));
    assert_eq!(ip.mtu, 1400);
    assert_eq!(
        ip.dns,
        vec![IpAddr::from([8, 8, 8, 8]), IpAddr::from([8, 8, 4, 4])]
    );
    assert_eq!(ip.default_domain.as_deref(), Some("psecure.net"));
    let nets = |l: &[Ipv4Net]| l.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(
        nets(&ip.split_include4),
        ["5.5.0.0/16", "7.0.0.0/24", "8.8.8.8/32"]
    );
    assert_eq!(
        nets(&ip.split_exclude4),
        [
            "6.6.6.6/31",
            "9.9.9.9/32",
            "10.10.10.10/32",
            "11.11.11.11/32"
        ]
    );
    let esp = &config.esp;
    assert_eq!(esp.encryption, Some(EspEncryption::Aes256Cbc));
    assert_eq!(esp.integrity, Some(EspIntegrity::HmacSha1_96));
    assert_eq!(esp.port, Some(4500));
    assert_eq!(esp.ssl_fallback, Some(15));
    assert_eq!(esp.lifetime_seconds, Some(1200));
    assert_eq!(esp.replay_protection, Some(true));
    assert!(config.unknown.iter().any(|(kind, _)| *kind == 0x4000));
}

#[test]
fn the_fake_servers_configuration_reads() {
    let config = PulseConfig::parse(&payload_of(&unhex(FAKE_SERVER))).unwrap();
    assert_eq!(config.ip.ipv4, Some(Ipv4Addr::new(192, 168, 3, 0)));
    assert_eq!(config.ip.mtu, 1400);
    assert_eq!(config.esp.port, Some(4500));
    assert_eq!(config.unknown, vec![(0x4026, 1)]);
}

#[test]
fn a_gateways_configuration_reads_back() {
    let mut config = PulseConfig::parse(&payload_of(&unhex(UPSTREAM_EXAMPLE))).unwrap();
    config.unknown.clear();
    config.esp.lifetime_seconds = None;
    config.ip.ipv6 = Some("fd00::2/64".parse().unwrap());
    let written = main_config(3, &config);
    let mut back = PulseConfig::parse(&payload_of(&written)).unwrap();
    assert_eq!(back.unknown, vec![(0x4026, 1)]);
    back.unknown.clear();
    assert_eq!(back, config);
}

#[test]
fn esp_configuration_and_the_clients_reply() {
    let server_secrets = [0x65; ESP_SECRETS_LEN];
    let config = esp_config(0, 0x1234_5678, &server_secrets);
    assert_eq!(config.len(), 0x80, "what real servers send");
    assert_eq!(
        &config[0x34..0x38],
        &[0x78, 0x56, 0x34, 0x12],
        "the SPI little-endian"
    );
    let payload = payload_of(&config);
    let (spi, secrets) = parse_esp_config(&payload).unwrap();
    assert_eq!((spi, secrets), (0x1234_5678, &server_secrets[..]));
    let ours = [0x11; ESP_SECRETS_LEN];
    let reply = esp_reply(7, &payload, 0xabcd_ef01, &ours).unwrap();
    assert_eq!(reply.len(), 0xc0);
    assert_eq!(&reply[0x28..0x30], &[0, 0, 0, 0xb0, 0, 0, 0, 0x94]);
    assert_eq!(
        &reply[0x7a..0xc0],
        &config[0x34..0x7a],
        "the server's copied"
    );
    let reply_payload = payload_of(&reply);
    let (spi, secrets) = parse_esp_config(&reply_payload).unwrap();
    assert_eq!((spi, secrets), (0xabcd_ef01, &ours[..]));
    assert_eq!(
        parse_esp_control(&esp_control(1, true)[HEADER_LEN..]),
        Some(true)
    );
    assert_eq!(
        parse_esp_control(&esp_control(1, false)[HEADER_LEN..]),
        Some(false)
    );
    assert_eq!(parse_esp_control(b"ncmo=2\n\0"), None);
}

#[test]
fn fatal_errors_read_as_upstream_says_them() {
    assert_eq!(
        crate::pulse::fatal_text(b"errorType=7 errorString=Session%20expired\n\0"),
        "Pulse fatal error (reason: 7): Session expired"
    );
    assert_eq!(
        crate::pulse::fatal_text(b""),
        "Pulse fatal error (reason: ?): "
    );
}

#[test]
fn esp_carries_one_family_unless_the_server_takes_both() {
    let mut config = PulseConfig::default();
    assert_eq!(config.esp_only_family(false), Some(4));
    assert_eq!(config.esp_only_family(true), Some(6));
    config.attribute(0x4024, &[1]);
    assert_eq!(config.esp_only_family(false), None);
}

#[test]
fn bad_configurations_are_errors_not_panics() {
    let good = payload_of(&unhex(FAKE_SERVER));
    for cut in [0, 0x10, 0x1c, 0x30, good.len() - 1] {
        let mut short = good[..cut].to_vec();
        if short.len() >= 0x1c {
            short[0x18..0x1c].copy_from_slice(&(cut as u32).to_be_bytes());
        }
        assert!(PulseConfig::parse(&short).is_err(), "cut at {cut}");
    }
    let mut lying = good.clone();
    lying[0x1f] = 0xff;
    assert!(PulseConfig::parse(&lying).is_err());
    let mut routes = good.clone();
    routes[0x2d] = 3;
    assert!(
        PulseConfig::parse(&routes).is_err(),
        "a count its length does not hold"
    );
    assert!(parse_esp_config(&good).is_err());
    assert!(parse_esp_config(&[]).is_err());
    // An attribute of an unexpected length is skipped, as upstream does.
    let mut odd = PulseConfig::default();
    odd.attribute(0x0001, &[1, 2, 3]);
    assert_eq!((odd.ip.ipv4, odd.unknown), (None, vec![(0x0001, 3)]));
}
