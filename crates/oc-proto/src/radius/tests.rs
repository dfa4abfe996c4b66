#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::*;

/// RFC 2865 section 7.1: nemo logs in with "arctangent", the shared secret "xyzzy5461".
const RFC_REQUEST: [u8; 56] = [
    0x01, 0x00, 0x00, 0x38, 0x0f, 0x40, 0x3f, 0x94, 0x73, 0x97, 0x80, 0x57, 0xbd, 0x83, 0xd5, 0xcb,
    0x98, 0xf4, 0x22, 0x7a, 0x01, 0x06, 0x6e, 0x65, 0x6d, 0x6f, 0x02, 0x12, 0x0d, 0xbe, 0x70, 0x8d,
    0x93, 0xd4, 0x13, 0xce, 0x31, 0x96, 0xe4, 0x3f, 0x78, 0x2a, 0x0a, 0xee, 0x04, 0x06, 0xc0, 0xa8,
    0x01, 0x10, 0x05, 0x06, 0x00, 0x00, 0x00, 0x03,
];
/// ... and the server's Access-Accept.
const RFC_ACCEPT: [u8; 38] = [
    0x02, 0x00, 0x00, 0x26, 0x86, 0xfe, 0x22, 0x0e, 0x76, 0x24, 0xba, 0x2a, 0x10, 0x05, 0xf6, 0xbf,
    0x9b, 0x55, 0xe0, 0xb2, 0x06, 0x06, 0x00, 0x00, 0x00, 0x01, 0x0f, 0x06, 0x00, 0x00, 0x00, 0x00,
    0x0e, 0x06, 0xc0, 0xa8, 0x01, 0x03,
];
const SECRET: &[u8] = b"xyzzy5461";

fn rfc_authenticator() -> [u8; 16] {
    RFC_REQUEST[4..20].try_into().unwrap()
}

#[test]
fn the_rfc_example_request_decodes_and_its_password_hides_as_the_rfc_shows() {
    let packet = Packet::decode(&RFC_REQUEST).unwrap();
    assert_eq!(packet.code, code::ACCESS_REQUEST);
    assert_eq!(packet.first(attr::USER_NAME), Some(&b"nemo"[..]));
    let hidden = hide_password(b"arctangent", SECRET, &rfc_authenticator()).unwrap();
    assert_eq!(Some(hidden.as_slice()), packet.first(attr::USER_PASSWORD));
    assert_eq!(packet.encode().unwrap(), RFC_REQUEST);
}

#[test]
fn the_rfc_example_accept_is_authentic_only_with_the_right_secret() {
    assert!(response_is_authentic(
        &RFC_ACCEPT,
        &rfc_authenticator(),
        SECRET
    ));
    assert!(!response_is_authentic(
        &RFC_ACCEPT,
        &rfc_authenticator(),
        b"xyzzy5460"
    ));
    let mut altered = RFC_ACCEPT;
    altered[37] ^= 1;
    assert!(!response_is_authentic(
        &altered,
        &rfc_authenticator(),
        SECRET
    ));
    // Service-Type Login is not a VPN session: refused as ocserv does.
    let err = read_access_reply(&RFC_ACCEPT, 0, &rfc_authenticator(), SECRET).unwrap_err();
    assert!(matches!(err, RadiusError::Unexpected(ref m) if m.contains("Service-Type")));
}

/// Builds a reply to `request` as a server would, signed with `secret`.
fn reply(code: u8, request: &[u8], attributes: Vec<Attribute>, secret: &[u8]) -> Vec<u8> {
    let request_auth: [u8; 16] = request[4..20].try_into().unwrap();
    let mut attributes = attributes;
    attributes.push(Attribute {
        kind: attr::MESSAGE_AUTHENTICATOR,
        value: vec![0; 16],
    });
    let packet = Packet {
        code,
        identifier: request[1],
        authenticator: request_auth,
        attributes,
    };
    let mut bytes = packet.encode().unwrap();
    assert!(sign_message_authenticator(
        &mut bytes,
        secret,
        Some(&request_auth)
    ));
    // The Response Authenticator covers the signed attributes.
    let digest = {
        use md5::{Digest, Md5};
        Md5::new()
            .chain_update(&bytes[..4])
            .chain_update(request_auth)
            .chain_update(&bytes[20..])
            .chain_update(secret)
            .finalize()
    };
    bytes[4..20].copy_from_slice(&digest);
    bytes
}

fn a(kind: u8, value: &[u8]) -> Attribute {
    Attribute {
        kind,
        value: value.to_vec(),
    }
}

fn request() -> Vec<u8> {
    let nas = NasIdentity {
        identifier: Some("ocserv1".into()),
        address: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
    };
    AccessRequest {
        user: "alice",
        password: "secret",
        state: None,
        nas: &nas,
        calling_station: "198.51.100.7",
        session_id: Some("a1b2"),
        connect_info: Some("AnyConnect"),
    }
    .encode(7, [9; 16], b"testing123")
    .unwrap()
}

#[test]
fn requests_carry_what_ocserv_sends_and_a_valid_message_authenticator() {
    let bytes = request();
    let packet = Packet::decode(&bytes).unwrap();
    assert_eq!(packet.attributes[0].kind, attr::MESSAGE_AUTHENTICATOR);
    for (kind, value) in [
        (attr::USER_NAME, &b"alice"[..]),
        (attr::NAS_IDENTIFIER, b"ocserv1"),
        (attr::NAS_IP_ADDRESS, &[192, 0, 2, 1]),
        (attr::CALLING_STATION_ID, b"198.51.100.7"),
        (attr::ACCT_SESSION_ID, b"a1b2"),
        (attr::SERVICE_TYPE, &[0, 0, 0, 8]),
    ] {
        assert_eq!(packet.first(kind), Some(value), "attribute {kind}");
    }
    // A server checks it as a reply check does, with the request's own authenticator.
    assert_eq!(
        message_authenticator_ok(&bytes, b"testing123", &[9; 16]),
        Some(true)
    );
    assert_eq!(
        message_authenticator_ok(&bytes, b"wrong", &[9; 16]),
        Some(false)
    );
}

#[test]
fn an_accept_gives_addresses_routes_dns_groups_and_timers() {
    let req = request();
    let ms_dns = [0, 0, 1, 55, 28, 6, 10, 0, 0, 53];
    let body = reply(
        code::ACCESS_ACCEPT,
        &req,
        vec![
            a(attr::SERVICE_TYPE, &[0, 0, 0, 2]),
            a(attr::FRAMED_IP_ADDRESS, &[192, 168, 7, 2]),
            a(attr::FRAMED_IP_NETMASK, &[255, 255, 255, 0]),
            a(attr::FRAMED_ROUTE, b"192.168.100.0/24 0.0.0.0 1"),
            a(
                attr::FRAMED_IPV6_PREFIX,
                &[0, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0],
            ),
            a(attr::CLASS, b"OU=admins;ops"),
            a(attr::SESSION_TIMEOUT, &[0, 0, 0x0e, 0x10]),
            a(attr::ACCT_INTERIM_INTERVAL, &[0, 0, 0, 60]),
            a(attr::VENDOR_SPECIFIC, &ms_dns),
            a(attr::FRAMED_IP_ADDRESS, &[1, 2, 3]),
        ],
        b"testing123",
    );
    let AccessReply::Accept(g) = read_access_reply(&body, 7, &[9; 16], b"testing123").unwrap()
    else {
        panic!("expected an accept");
    };
    assert_eq!(g.ipv4, Some(Ipv4Addr::new(192, 168, 7, 2)));
    assert_eq!(g.ipv4_netmask, Some(Ipv4Addr::new(255, 255, 255, 0)));
    let routes: Vec<ipnet::IpNet> = vec![
        "192.168.100.0/24".parse().unwrap(),
        "2001:db8:1::/64".parse().unwrap(),
    ];
    assert_eq!(g.routes, routes);
    assert_eq!(g.dns, vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 53))]);
    assert_eq!(g.groups(';'), vec!["admins", "ops"]);
    assert_eq!(g.session_timeout, Some(3600));
    assert_eq!(g.interim_interval, Some(60));
    assert_eq!(g.skipped.len(), 1, "{:?}", g.skipped);
    // The same reply under another secret is forged.
    assert_eq!(
        read_access_reply(&body, 7, &[9; 16], b"other"),
        Err(RadiusError::Forged)
    );
    // Another request's identifier is not ours.
    assert!(matches!(
        read_access_reply(&body, 8, &[9; 16], b"testing123"),
        Err(RadiusError::Unexpected(_))
    ));
}

#[test]
fn a_challenge_needs_state_and_a_message() {
    let req = request();
    let body = reply(
        code::ACCESS_CHALLENGE,
        &req,
        vec![
            a(attr::REPLY_MESSAGE, b"Enter your token code"),
            a(attr::STATE, b"s1"),
        ],
        b"testing123",
    );
    assert_eq!(
        read_access_reply(&body, 7, &[9; 16], b"testing123").unwrap(),
        AccessReply::Challenge {
            message: "Enter your token code".into(),
            state: b"s1".to_vec()
        }
    );
    let body = reply(
        code::ACCESS_CHALLENGE,
        &req,
        vec![a(attr::STATE, b"s1")],
        b"testing123",
    );
    assert!(read_access_reply(&body, 7, &[9; 16], b"testing123").is_err());
    let body = reply(code::ACCESS_REJECT, &req, vec![], b"testing123");
    assert_eq!(
        read_access_reply(&body, 7, &[9; 16], b"testing123").unwrap(),
        AccessReply::Reject { message: None }
    );
}

#[test]
fn accounting_requests_are_signed_and_count_past_four_gigabytes() {
    let nas = NasIdentity::default();
    let req = AccountingRequest {
        status: AcctStatus::Stop,
        user: "alice",
        session_id: "a1b2",
        nas: &nas,
        calling_station: "198.51.100.7",
        ipv4: Some(Ipv4Addr::new(192, 168, 7, 2)),
        ipv6: None,
        class: &[b"OU=admins".to_vec()],
        connect_info: None,
        session_time: Some(90),
        input: (5_000_000_000, 10),
        output: (1234, 5),
        terminate_cause: Some(TerminateCause::UserRequest),
    };
    let bytes = req.encode(3, b"testing123").unwrap();
    let packet = Packet::decode(&bytes).unwrap();
    assert_eq!(
        packet.first(attr::ACCT_STATUS_TYPE),
        Some(&[0, 0, 0, 2][..])
    );
    assert_eq!(
        packet.first(attr::ACCT_INPUT_GIGAWORDS),
        Some(&[0, 0, 0, 1][..])
    );
    let low = (5_000_000_000u64 & 0xffff_ffff) as u32;
    assert_eq!(
        packet.first(attr::ACCT_INPUT_OCTETS),
        Some(&low.to_be_bytes()[..])
    );
    assert_eq!(
        packet.first(attr::ACCT_TERMINATE_CAUSE),
        Some(&[0, 0, 0, 1][..])
    );
    assert_eq!(packet.first(attr::CLASS), Some(&b"OU=admins"[..]));
    // The authenticator is MD5 over the packet with zeros there, then the secret.
    let mut zeroed = bytes.clone();
    zeroed[4..20].fill(0);
    sign_accounting_request(&mut zeroed, b"testing123");
    assert_eq!(zeroed, bytes);
    // The server's answer.
    let answer = reply(code::ACCOUNTING_RESPONSE, &bytes, vec![], b"testing123");
    assert!(read_accounting_response(&answer, &bytes, b"testing123").is_ok());
    assert_eq!(
        read_accounting_response(&answer, &bytes, b"wrong"),
        Err(RadiusError::Forged)
    );
}

#[test]
fn hostile_packets_are_errors_not_panics() {
    assert!(Packet::decode(&[]).is_err());
    assert!(Packet::decode(&[1; 19]).is_err());
    // Length field past the datagram, or an attribute past the length.
    let mut bad = RFC_REQUEST;
    bad[3] = 0x40;
    assert!(Packet::decode(&bad).is_err());
    let mut bad = RFC_REQUEST;
    bad[21] = 0x40;
    assert!(Packet::decode(&bad).is_err());
    let mut bad = RFC_REQUEST;
    bad[21] = 1;
    assert!(Packet::decode(&bad).is_err());
    // The largest packet decodes; a longer encoding is refused.
    let mut big = vec![1, 0, 0x10, 0x00];
    big.extend([0; 16]);
    for len in [255usize; 15].into_iter().chain([251]) {
        big.extend([18, len as u8]);
        big.extend(vec![b'x'; len - 2]);
    }
    assert_eq!(big.len(), MAX_PACKET);
    assert_eq!(Packet::decode(&big).unwrap().attributes.len(), 16);
    let too_long = Packet {
        code: 1,
        identifier: 0,
        authenticator: [0; 16],
        attributes: vec![a(18, &[0; 253]); 17],
    };
    assert!(matches!(too_long.encode(), Err(RadiusError::TooLong(_))));
    assert!(hide_password(&[b'p'; 129], b"s", &[0; 16]).is_err());
    assert_eq!(hide_password(b"", b"s", &[0; 16]).unwrap().len(), 16);
}

#[test]
fn retries_then_the_next_server_then_give_up() {
    let mut x = Exchange::new(2, 2, Duration::from_secs(3));
    let wait = Duration::from_secs(3);
    let sends: Vec<Attempt> = std::iter::from_fn(|| match x.next_attempt() {
        Attempt::Exhausted => None,
        send => Some(send),
    })
    .collect();
    assert_eq!(
        sends,
        vec![
            Attempt::Send {
                server: 0,
                first: true,
                wait
            },
            Attempt::Send {
                server: 0,
                first: false,
                wait
            },
            Attempt::Send {
                server: 1,
                first: true,
                wait
            },
            Attempt::Send {
                server: 1,
                first: false,
                wait
            },
        ]
    );
    assert_eq!(x.next_attempt(), Attempt::Exhausted);
}

#[test]
fn radcli_files_as_ocservs_tests_write_them() {
    let text = "auth_order\tradius,local\nlogin_tries\t4\nauthserver \tlocalhost\n\
                acctserver 10.0.0.1:1645:s3cret, [::1]\nservers\t/etc/radcli/servers\n\
                dictionary /x\nseqfile ./radius.seq\ndefault_realm\nradius_timeout\t5\n\
                radius_retries\t2\nradius_deadtime\t0\nbindaddr *\n";
    let conf = parse_client_conf(text, "radiusclient.conf").unwrap();
    assert_eq!(conf.auth_servers[0].host, "localhost");
    assert_eq!(conf.auth_servers[0].port, 1812);
    assert_eq!(
        conf.acct_servers,
        vec![
            ServerAddr {
                host: "10.0.0.1".into(),
                port: 1645,
                secret: Some("s3cret".into())
            },
            ServerAddr {
                host: "::1".into(),
                port: 1813,
                secret: None
            }
        ]
    );
    assert_eq!((conf.timeout, conf.retries), (5, 2));
    assert_eq!(conf.bind_address, None);
    assert!(conf.ignored.is_empty(), "{:?}", conf.ignored);
    let servers = parse_servers_file("# host secret\nlocalhost/localhost\t\ttesting123\n");
    assert_eq!(
        ClientConf::secret_for(&conf.auth_servers[0], &servers),
        Some("testing123".into())
    );
    let err = parse_client_conf("radius_timeout soon\nauthserver x\n", "r.conf").unwrap_err();
    assert_eq!(
        err.to_string(),
        "r.conf:1: radius_timeout: expected a number, got \"soon\""
    );
    assert!(parse_client_conf("authserver x:0\n", "r.conf").is_err());
    assert!(parse_client_conf("# nothing\n", "r.conf").is_err());
}
