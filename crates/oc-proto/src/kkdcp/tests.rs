#![allow(clippy::unwrap_used)]

use super::*;

/// A message as MIT's client posts it: the framed Kerberos message, and the realm.
fn posted(kerb: &[u8], realm: Option<&str>, hint: bool) -> Vec<u8> {
    let mut framed = (kerb.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(kerb);
    let mut octets = Vec::new();
    push_element(&mut octets, OCTET_STRING, &framed);
    let mut fields = Vec::new();
    push_element(&mut fields, context(0), &octets);
    if let Some(realm) = realm {
        let mut name = Vec::new();
        push_element(&mut name, GENERAL_STRING, realm.as_bytes());
        push_element(&mut fields, context(1), &name);
    }
    if hint {
        push_element(&mut fields, context(2), &[INTEGER, 1, 0]);
    }
    let mut out = Vec::new();
    push_element(&mut out, SEQUENCE, &fields);
    out
}

#[test]
fn a_posted_message_and_the_reply() {
    let as_req = [0x6a, 0x81, 0x05, 1, 2, 3, 4, 5];
    for (realm, hint) in [(Some("FERRO.TEST"), false), (None, true), (Some("A"), true)] {
        let msg = ProxyMessage::decode(&posted(&as_req, realm, hint)).unwrap();
        assert_eq!(msg.target_domain.as_deref(), realm);
        assert_eq!(msg.udp_payload(), as_req);
        assert_eq!(&msg.kerb_message[..4], &[0, 0, 0, 8]);
    }
    // The reply wraps the framed message, and decodes as a request would.
    let framed = frame_udp_reply(&[0x6b; 300]).unwrap();
    assert_eq!(&framed[..4], &[0, 0, 1, 44]);
    let reply = ProxyMessage::encode_reply(&framed);
    assert_eq!(&reply[..4], &[0x30, 0x82, 0x01, 0x38]);
    let back = ProxyMessage::decode(&reply).unwrap();
    assert_eq!(back.kerb_message, framed);
}

#[test]
fn the_largest_message_passes_and_one_more_byte_does_not() {
    let big = vec![7u8; MAX_MESSAGE];
    let msg = ProxyMessage::decode(&posted(&big, None, false)).unwrap();
    assert_eq!(msg.udp_payload().len(), MAX_MESSAGE);
    let over = vec![7u8; MAX_MESSAGE + 1];
    assert_eq!(
        ProxyMessage::decode(&posted(&over, None, false)),
        Err(KkdcpError::TooLong(MAX_MESSAGE + 1))
    );
    assert!(frame_udp_reply(&over).is_err());
    assert!(frame_udp_reply(&[]).is_err());
}

#[test]
fn hostile_bodies_are_refused() {
    let good = posted(&[1, 2, 3], Some("R"), false);
    let mut trailing = good.clone();
    trailing.push(0);
    let mut wrong_prefix = posted(&[1, 2, 3], None, false);
    wrong_prefix[9] = 9; // the 4-byte length says 9, 3 follow
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("truncated", good[..good.len() - 1].to_vec()),
        ("trailing bytes", trailing),
        ("not a sequence", vec![0x04, 0x00]),
        ("indefinite length", vec![0x30, 0x80, 0x00, 0x00]),
        (
            "non-minimal length",
            vec![0x30, 0x81, 0x05, 0xa0, 0x03, 0x04, 0x01, 0x00],
        ),
        ("huge length", vec![0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
        ("length prefix mismatch", wrong_prefix),
        ("empty message", posted(&[], None, false)),
        ("no kerb-message", vec![0x30, 0x03, 0xa1, 0x01, 0x00]),
        ("realm with a space", posted(&[1], Some("A B"), false)),
    ];
    for (what, body) in cases {
        assert!(ProxyMessage::decode(&body).is_err(), "{what} was taken");
    }
}

#[test]
fn kkdcp_lines_as_ocserv_writes_them() {
    let r = parse_route("/KdcProxy KERBEROS.REALM udp@127.0.0.1:88").unwrap();
    assert_eq!(
        r,
        KdcRoute {
            path: "/KdcProxy".into(),
            realm: "KERBEROS.REALM".into(),
            transport: KdcTransport::Udp,
            kdc: "127.0.0.1:88".parse().unwrap(),
        }
    );
    let r = parse_route("  /kerberos  R   tcp@[::1]:8888 ").unwrap();
    assert_eq!((r.transport, r.kdc.port()), (KdcTransport::Tcp, 8888));
    for (bad, says) in [
        ("/KdcProxy R", "expected"),
        ("KdcProxy R udp@1.2.3.4:88", "must start with /"),
        ("/k R sctp@1.2.3.4:88", "udp@ADDRESS:PORT"),
        ("/k R udp@kdc.example.com:88", "IP address"),
        ("/k R udp@1.2.3.4", "no port"),
        ("/k R udp@1.2.3.4:0", "port 0"),
        ("/k R udp@1.2.3.4:88 extra", "expected"),
    ] {
        let err = parse_route(bad).unwrap_err();
        assert!(err.contains(says), "{bad}: {err}");
    }
}
