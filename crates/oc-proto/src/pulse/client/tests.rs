//! The configuration phase against the gateway side's messages.

use std::net::Ipv4Addr;

use super::*;
use crate::esp::{EspEncryption, EspIntegrity};
use crate::ip_config::IpConfig;
use crate::pulse::config::{esp_config, main_config, parse_esp_control};
use crate::pulse::ift::decode_all;

fn feed<'a>(phase: &mut ConfigPhase, bytes: &'a [u8]) -> Result<ConfigStep<'a>, PulseError> {
    // The IF-T header is 16 bytes; the payload follows.
    phase.on_message(IftPacket {
        vendor: u32::from_be_bytes(bytes[0..4].try_into().unwrap()),
        kind: u32::from_be_bytes(bytes[4..8].try_into().unwrap()),
        seq: u32::from_be_bytes(bytes[12..16].try_into().unwrap()),
        payload: &bytes[HEADER_LEN..],
    })
}

fn config(esp: bool) -> PulseConfig {
    PulseConfig {
        ip: IpConfig {
            mtu: 1400,
            ipv4: Some(Ipv4Addr::new(10, 1, 2, 3)),
            ipv4_netmask: Some(Ipv4Addr::BROADCAST),
            ..IpConfig::default()
        },
        esp: if esp {
            EspParams {
                encryption: Some(EspEncryption::Aes128Cbc),
                integrity: Some(EspIntegrity::HmacSha1_96),
                port: Some(4500),
                ..EspParams::default()
            }
        } else {
            EspParams::default()
        },
        ..PulseConfig::default()
    }
}

#[test]
fn a_configuration_with_esp_keys_and_session_information() {
    let mut phase = ConfigPhase::default();
    let info = packet(VENDOR_JUNIPER, JUNIPER_SESSION_INFO, 0, b"sessionId=x\n\0");
    assert_eq!(
        feed(&mut phase, &info),
        Ok(ConfigStep::AcknowledgeSessionInfo)
    );
    let main = main_config(0, &config(true));
    assert!(matches!(
        feed(&mut phase, &main),
        Ok(ConfigStep::Continue(_))
    ));
    let keys = esp_config(0, 0x1234_5678, &[7; ESP_SECRETS_LEN]);
    let Ok(ConfigStep::EspKeys {
        outbound,
        params,
        payload,
    }) = feed(&mut phase, &keys)
    else {
        panic!("no ESP keys");
    };
    assert_eq!(outbound.unwrap().spi(), 0x1234_5678);
    assert_eq!(params, config(true).esp);
    // Our answer: our keys, then ncmo=1, numbered on.
    let mut out = Outgoing::new(7);
    let answer = out
        .esp_answer(payload, 0x0bad_cafe, &[9; ESP_SECRETS_LEN], true)
        .unwrap();
    let sent = decode_all(&answer);
    assert_eq!(sent.len(), 2);
    assert_eq!((sent[0].1, sent[0].2), (JUNIPER_CONFIG, 7));
    assert_eq!(parse_esp_config(&sent[0].3).unwrap().0, 0x0bad_cafe);
    assert_eq!((sent[1].2, parse_esp_control(&sent[1].3)), (8, Some(true)));
    assert_eq!(decode_all(&out.session_info_ack())[0].2, 9);
    let end = packet(VENDOR_JUNIPER, JUNIPER_END_OF_CONFIG, 0, &[0; 4]);
    let Ok(ConfigStep::Done(done)) = feed(&mut phase, &end) else {
        panic!("not done");
    };
    assert_eq!(done.ip.ipv4, Some(Ipv4Addr::new(10, 1, 2, 3)));
}

#[test]
fn esp_keys_without_a_suite_say_why_esp_cannot_be() {
    let mut phase = ConfigPhase::default();
    feed(&mut phase, &main_config(0, &config(false))).unwrap();
    let keys = esp_config(0, 0x1234_5678, &[7; ESP_SECRETS_LEN]);
    let Ok(ConfigStep::EspKeys { outbound, .. }) = feed(&mut phase, &keys) else {
        panic!("no ESP keys");
    };
    assert_eq!(outbound, Err("no ESP suite in the configuration".into()));
    // Answered all the same, with ncmo=0.
    let answer = Outgoing::new(0)
        .esp_answer(&keys[HEADER_LEN..], 1, &[0; ESP_SECRETS_LEN], false)
        .unwrap();
    assert_eq!(parse_esp_control(&decode_all(&answer)[1].3), Some(false));
}

#[test]
fn out_of_order_insufficient_and_fatal_configurations_are_errors() {
    let keys = esp_config(0, 1, &[7; ESP_SECRETS_LEN]);
    assert!(feed(&mut ConfigPhase::default(), &keys).is_err());
    let end = packet(VENDOR_JUNIPER, JUNIPER_END_OF_CONFIG, 0, &[0; 4]);
    assert!(feed(&mut ConfigPhase::default(), &end).is_err());
    let mut no_address = config(false);
    no_address.ip.ipv4 = None;
    let mut phase = ConfigPhase::default();
    feed(&mut phase, &main_config(0, &no_address)).unwrap();
    assert!(feed(&mut phase, &end).is_err());
    let fatal = packet(
        VENDOR_JUNIPER,
        JUNIPER_FATAL,
        0,
        b"errorType=7 errorString=Session%20expired\n",
    );
    assert_eq!(
        feed(&mut ConfigPhase::default(), &fatal),
        Err(PulseError::Terminated(
            "Pulse fatal error (reason: 7): Session expired".into()
        ))
    );
}

#[test]
fn packets_and_strangers_are_only_logged() {
    let mut phase = ConfigPhase::default();
    let data = packet(VENDOR_JUNIPER, JUNIPER_DATA, 0, &[0x45, 0, 0, 20]);
    assert!(matches!(
        feed(&mut phase, &data),
        Ok(ConfigStep::Continue(Some(_)))
    ));
    let stranger = packet(0x1234, 9, 0, b"?");
    assert!(matches!(
        feed(&mut phase, &stranger),
        Ok(ConfigStep::Continue(Some(line))) if line.contains("vendor 0x1234")
    ));
}
