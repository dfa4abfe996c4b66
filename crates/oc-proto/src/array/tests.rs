//! Array's messages as upstream writes and reads them, both sides.

use super::*;

#[test]
fn the_id_and_the_requests_as_upstream_sends_them() {
    let id = client_id([
        0x42, 0x2c, 0x5a, 0x91, 0x59, 0xbf, 0x4f, 0x77, 0xcb, 0x78, 0x83, 0xd7, 0x7f, 0x06, 0xef,
        0x39,
    ]);
    assert_eq!(id, "422C5A91-59BF-4F77-CB78-83D77F06EF39");
    let request = dtls_request(&id);
    assert_eq!(
        &request[..16],
        &[0x45, 0, 0, 0x34, 0, 0, 0, 0, 0, 0xff, 0, 0, 0, 4, 0, 0]
    );
    assert_eq!(request.len(), 0x34);
    assert_eq!(
        control(CONTROL_DPD, &[]),
        [0x45, 0, 0, 0x14, 0, 0, 0, 0, 0, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(
        control_type(&control(CONTROL_DTLS_OFF, &[])),
        Some(CONTROL_DTLS_OFF)
    );
    assert_eq!(control_type(&request), Some(CONTROL_DTLS));
    let mut ping = vec![0x45, 0, 0, 20, 0, 0, 0, 0, 64, 1];
    ping.resize(20, 0);
    assert_eq!(control_type(&ping), None);
    let cookies = [("JSESSION", "x"), ("ANsessionABC", "deadbeef")];
    assert_eq!(
        session_cookie(cookies.iter().map(|(n, v)| (*n, *v))).as_deref(),
        Some("ANsessionABC=deadbeef")
    );
    assert_eq!(session_cookie(std::iter::empty()), None);
}

#[test]
fn tunnel_answers_as_upstream_reads_them() {
    use crate::http::TunnelVerdict::*;
    assert_eq!(tunnel_verdict(200, false), Accepted);
    assert_eq!(tunnel_verdict(201, false), Accepted);
    assert_eq!(tunnel_verdict(302, true), CookieRejected);
    assert_eq!(tunnel_verdict(303, true), CookieRejected);
    assert_eq!(tunnel_verdict(503, false), Unavailable);
    assert_eq!(tunnel_verdict(404, false), Unexpected);
    use crate::pulse::upgrade_verdict;
    assert_eq!(upgrade_verdict(101), Accepted);
    assert_eq!(upgrade_verdict(502), Unavailable);
    assert_eq!(upgrade_verdict(200), Unexpected);
    use crate::nc::tunnel_verdict as nc;
    assert_eq!(nc(200), Accepted);
    assert_eq!(nc(401), CookieRejected);
    assert_eq!(nc(302), CookieRejected);
    assert_eq!(nc(500), Unavailable);
    assert_eq!(nc(301), Unexpected);
}

#[test]
fn the_answers_read_back() {
    let speed = json_answer(&serde_json::json!({
        "allow_speed_tunnel": 1, "speed_tunnel_encryption": 1, "keepalive_interval": 30
    }));
    assert_eq!(
        SpeedTunnel::parse(&speed).unwrap(),
        SpeedTunnel {
            allowed: true,
            encryption: 1,
            keepalive: 30
        }
    );
    // 10.0.0.2 and 255.255.255.0 as Array writes them.
    assert_eq!(address_to_int(Ipv4Addr::new(10, 0, 0, 2)), 33_554_442);
    assert_eq!(address_to_int(Ipv4Addr::new(255, 255, 255, 0)), 16_777_215);
    let ip = IpConfig {
        mtu: MTU,
        ipv4: Some(Ipv4Addr::new(10, 0, 0, 2)),
        ipv4_netmask: Some(Ipv4Addr::new(255, 255, 255, 0)),
        dns: vec![IpAddr::from([10, 0, 0, 53])],
        default_domain: Some("corp.example lab.example".into()),
        split_include4: vec!["10.1.0.0/16".parse().unwrap()],
        split_exclude4: vec!["10.1.2.0/24".parse().unwrap()],
        ..IpConfig::default()
    };
    let (back, unknown) = parse_interface(&interface_answer(&ip)).unwrap();
    assert_eq!(back, ip);
    assert!(unknown.is_empty(), "{unknown:?}");
    assert_eq!(parse_dtls_answer(&dtls_answer(4433)), Some(4433));
    assert_eq!(parse_dtls_answer(b"no UDP for you"), None);
    use crate::udp_link::ProbeAnswer;
    let accepted = |r: &[u8]| matches!(read_dtls_answer(r), ProbeAnswer::Accepted { .. });
    assert!(accepted(b"200 OK"));
    assert!(
        accepted(&control(CONTROL_DPD, &[])),
        "a DPD echo proves the channel too"
    );
    assert!(!accepted(b"500 no"));
    assert_eq!(dtls_greeting("AB"), b"AB13");
}

#[test]
fn bad_answers_are_errors_not_panics() {
    assert_eq!(SpeedTunnel::parse(&[0; 16]), Err(ArrayError::NotJson(16)));
    assert!(SpeedTunnel::parse(&[&[0u8; 16][..], b"{nope"].concat()).is_err());
    assert!(SpeedTunnel::parse(&[&[0u8; 16][..], b"{}\0junk"].concat()).is_ok());
    let no_address = json_answer(&serde_json::json!({"client_ipv4_mask": 1}));
    assert_eq!(parse_interface(&no_address), Err(ArrayError::NoAddress));
    let bad_route = json_answer(&serde_json::json!({
        "client_ipv4": 1, "include_network_resource": {"ipv4": [7]}
    }));
    assert!(parse_interface(&bad_route).is_err());
    let odd = json_answer(&serde_json::json!({"client_ipv4": "ten", "extra": true}));
    assert!(parse_interface(&odd).is_err());
}

#[test]
fn packets_split_from_the_stream_however_it_is_cut() {
    let mut a = vec![0x45, 0, 0, 24];
    a.resize(24, 1);
    let mut b = vec![0x60, 0, 0, 0, 0, 2];
    b.resize(42, 2);
    let dpd = control(CONTROL_DPD, &[]);
    let wire = [a.clone(), b.clone(), dpd.clone()].concat();
    for cut in [1, 3, 20, wire.len()] {
        let mut stream = PacketStream::new(16384);
        let mut got = Vec::new();
        for chunk in wire.chunks(cut) {
            assert_eq!(stream.decode(chunk, |p| got.push(p.to_vec())), 0);
        }
        assert_eq!(got, vec![a.clone(), b.clone(), dpd.clone()], "cut {cut}");
    }
    let mut stream = PacketStream::new(16384);
    let mut got = 0;
    assert_eq!(stream.decode(&[0x12, 1, 2, 3], |_| got += 1), 4);
    assert_eq!(
        stream.decode(&[0x45, 0, 0, 5, 0], |_| got += 1),
        5,
        "shorter than a header"
    );
    assert_eq!(
        PacketStream::new(100).decode(&[0x45, 0, 1, 0], |_| got += 1),
        4,
        "too long"
    );
    assert_eq!(got, 0);
    assert_eq!(login_form().fields.len(), 3);
}
