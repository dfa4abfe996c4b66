//! Whole links: our client against our gateway side in memory with a simulated clock, and
//! scripted peers for what a gateway of ours would never send.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use super::encap::ALL;
use super::packet::{code, protocol, write_header, ControlPacket, PppFrame};
use super::*;

const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
const GATEWAY_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);
const CLIENT_IID: [u8; 8] = [0, 0, 0, 0, 0, 0, 0x12, 0x34];

fn client(encapsulation: Encapsulation) -> PppConfig {
    PppConfig {
        encapsulation,
        role: Role::Client,
        want_ipv4: true,
        want_ipv6: true,
        mtu: 1400,
        magic: 0x1122_3344,
        ipv4: None,
        ipv6: None,
        ask_name_servers: true,
        reliable: true,
        dpd: None,
        keepalive: None,
    }
}

fn gateway(encapsulation: Encapsulation) -> PppConfig {
    PppConfig {
        role: Role::Gateway(Assignment {
            peer_ipv4: Some(CLIENT_ADDR),
            dns: vec![DNS],
            peer_interface_id: Some(CLIENT_IID),
        }),
        magic: 0x5566_7788,
        mtu: 1500,
        ipv4: Some(GATEWAY_ADDR),
        ask_name_servers: false,
        ..client(encapsulation)
    }
}

/// Everything `from` has to send, a write at a time (sync framing needs one frame a read).
fn drain(from: &mut Ppp) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| from.poll_transmit()).collect()
}

fn events(ppp: &mut Ppp) -> Vec<PppEvent> {
    std::iter::from_fn(|| ppp.poll_event())
        .filter(|e| !matches!(e, PppEvent::Log(_)))
        .collect()
}

fn feed(to: &mut Ppp, wire: &[u8], now: Instant) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    to.handle_input(wire, now, &mut |p| got.push(p.to_vec()))
        .unwrap();
    got
}

fn feed_all(to: &mut Ppp, writes: &[Vec<u8>], now: Instant) {
    for w in writes {
        feed(to, w, now);
    }
}

/// Passes frames both ways until both sides are quiet.
fn settle(a: &mut Ppp, b: &mut Ppp, now: Instant) {
    for _ in 0..50 {
        let ab = drain(a);
        let ba = drain(b);
        if ab.is_empty() && ba.is_empty() {
            return;
        }
        feed_all(b, &ab, now);
        feed_all(a, &ba, now);
    }
    panic!("the link never settled");
}

fn network_of(events: &[PppEvent]) -> PppNetwork {
    events
        .iter()
        .find_map(|e| match e {
            PppEvent::NetworkUp(n) => Some(n.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no network in {events:?}"))
}

/// An IPv4 packet header's first bytes, enough for the version nibble.
fn ipv4_packet(fill: u8) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 28];
    p.extend(std::iter::repeat_n(fill, 24));
    p
}

#[test]
fn client_and_gateway_agree_on_addresses_and_carry_packets_in_every_encapsulation() {
    let now = Instant::now();
    for encap in ALL {
        let mut c = Ppp::new(client(encap), now);
        let mut g = Ppp::new(gateway(encap), now);
        settle(&mut c, &mut g, now);
        let net = network_of(&events(&mut c));
        assert_eq!(net.ipv4, Some(CLIENT_ADDR), "{encap:?}");
        assert_eq!(net.peer_ipv4, Some(GATEWAY_ADDR), "{encap:?}");
        assert_eq!(net.dns, vec![DNS], "{encap:?}");
        assert!(net.nbns.is_empty(), "{encap:?}: the gateway rejects NBNS");
        assert_eq!(
            net.ipv6,
            Some(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x1234)),
            "{encap:?}"
        );
        // The gateway's MRU (1500) is not below ours (1400), so it is taken.
        assert_eq!(net.mtu, 1500, "{encap:?}");
        let gnet = network_of(&events(&mut g));
        assert_eq!(gnet.peer_ipv4, Some(CLIENT_ADDR));
        assert_eq!(gnet.mtu, 1400);
        for packet in [ipv4_packet(0x7e), vec![0x60, 0x7d, 0x11, 0]] {
            let mut wire = Vec::new();
            c.encapsulate_ip(&packet, now, &mut wire).unwrap();
            assert_eq!(feed(&mut g, &wire, now), vec![packet.clone()], "{encap:?}");
            wire.clear();
            g.encapsulate_ip(&packet, now, &mut wire).unwrap();
            assert_eq!(feed(&mut c, &wire, now), vec![packet], "{encap:?}");
        }
    }
}

#[test]
fn headers_are_compressed_only_where_the_peer_asked() {
    let now = Instant::now();
    let packet = ipv4_packet(1);
    for (encap, header) in [
        (Encapsulation::F5, &[0x21u8][..]),
        (Encapsulation::Fortinet, &[0xff, 0x03, 0x00, 0x21][..]),
    ] {
        let mut c = Ppp::new(client(encap), now);
        let mut g = Ppp::new(gateway(encap), now);
        settle(&mut c, &mut g, now);
        let mut wire = Vec::new();
        c.encapsulate_ip(&packet, now, &mut wire).unwrap();
        let frame = &wire[encap.header_len()..];
        assert_eq!(&frame[..header.len()], header, "{encap:?}");
        assert_eq!(&frame[header.len()..], &packet[..]);
    }
}

/// A peer scripted frame by frame: LCP always in full form, IPCP/IPV6CP too.
fn control(encap: Encapsulation, proto: u16, code: u8, id: u8, data: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    write_header(proto, false, false, &mut frame);
    ControlPacket::emit(code, id, data, &mut frame);
    let mut wire = Vec::new();
    encap
        .encapsulate(&frame, hdlc::ACCM_ALL, &mut wire)
        .unwrap();
    wire
}

/// The control packets in what `ppp` sent: (protocol, code, id, data).
fn sent(ppp: &mut Ppp, encap: Encapsulation) -> Vec<(u16, u8, u8, Vec<u8>)> {
    let mut d = Deframer::new(encap, 65_535);
    let mut out = Vec::new();
    for write in drain(ppp) {
        d.push(&write);
        while let Some(frame) = d.next_frame() {
            let frame = PppFrame::parse(frame.unwrap()).unwrap();
            let p = ControlPacket::parse(frame.protocol, frame.payload).unwrap();
            out.push((frame.protocol, p.code, p.id, p.data.to_vec()));
        }
    }
    out
}

/// Brings `c` to LCP open against a scripted peer that acks everything.
fn open_lcp(c: &mut Ppp, encap: Encapsulation, now: Instant) -> Vec<(u16, u8, u8, Vec<u8>)> {
    let first = sent(c, encap);
    let (_, _, id, data) = first[0].clone();
    feed(
        c,
        &control(encap, protocol::LCP, code::CONFIGURE_ACK, id, &data),
        now,
    );
    feed(
        c,
        &control(encap, protocol::LCP, code::CONFIGURE_REQUEST, 1, &[]),
        now,
    );
    sent(c, encap)
}

#[test]
fn what_slirp_offers_is_answered_as_upstream_does() {
    let now = Instant::now();
    let encap = Encapsulation::Hdlc;
    let mut c = Ppp::new(client(encap), now);
    let request = sent(&mut c, encap);
    assert_eq!(request.len(), 1);
    let (proto, code_, _, options) = &request[0];
    assert_eq!((*proto, *code_), (protocol::LCP, code::CONFIGURE_REQUEST));
    // MRU 1400, ACCM 0 (HDLC), magic, PFC, ACFC.
    assert_eq!(
        options,
        &[1, 4, 0x05, 0x78, 2, 6, 0, 0, 0, 0, 5, 6, 0x11, 0x22, 0x33, 0x44, 7, 2, 8, 2]
    );
    // slirp's request: MRU 1500, ACCM 0, an auth protocol (PAP), magic, PFC, ACFC.
    let offer = [
        1, 4, 0x05, 0xdc, 2, 6, 0, 0, 0, 0, 3, 4, 0xc0, 0x23, 5, 6, 9, 9, 9, 9, 7, 2, 8, 2,
    ];
    feed(
        &mut c,
        &control(encap, protocol::LCP, code::CONFIGURE_REQUEST, 7, &offer),
        now,
    );
    let answer = sent(&mut c, encap);
    assert_eq!(
        answer,
        vec![(
            protocol::LCP,
            code::CONFIGURE_REJECT,
            7,
            vec![3, 4, 0xc0, 0x23]
        )]
    );
    // Van Jacobson compression is refused; the address is taken.
    let mut c = Ppp::new(client(encap), now);
    let after_open = open_lcp(&mut c, encap, now);
    assert!(after_open
        .iter()
        .any(|(p, c, ..)| *p == protocol::IPCP && *c == code::CONFIGURE_REQUEST));
    let vj = [2, 6, 0x00, 0x2d, 0x0f, 0x01, 3, 6, 10, 0, 2, 2];
    feed(
        &mut c,
        &control(encap, protocol::IPCP, code::CONFIGURE_REQUEST, 1, &vj),
        now,
    );
    let answer = sent(&mut c, encap);
    assert_eq!(
        answer,
        vec![(
            protocol::IPCP,
            code::CONFIGURE_REJECT,
            1,
            vec![2, 6, 0x00, 0x2d, 0x0f, 0x01]
        )]
    );
    // CCP is not spoken: Protocol-Reject with the protocol number first.
    feed(
        &mut c,
        &control(encap, 0x80fd, code::CONFIGURE_REQUEST, 1, &[]),
        now,
    );
    let reject = sent(&mut c, encap);
    assert_eq!(reject.len(), 1);
    assert_eq!(
        (reject[0].0, reject[0].1),
        (protocol::LCP, code::PROTOCOL_REJECT)
    );
    assert_eq!(&reject[0].3[..6], &[0x80, 0xfd, 1, 1, 0, 4]);
}

#[test]
fn an_ipcp_nak_assigns_the_address_and_the_name_servers() {
    let now = Instant::now();
    let encap = Encapsulation::Sync;
    let mut c = Ppp::new(
        PppConfig {
            want_ipv6: false,
            ..client(encap)
        },
        now,
    );
    let after_open = open_lcp(&mut c, encap, now);
    let (_, _, id, ipcp_req) = after_open
        .iter()
        .find(|(p, ..)| *p == protocol::IPCP)
        .cloned()
        .unwrap();
    // 0.0.0.0 and the four name servers asked for.
    assert_eq!(ipcp_req.len(), 5 * 6);
    let nak = [3, 6, 10, 0, 2, 15, 129, 6, 10, 0, 2, 3];
    let rej = [130, 6, 0, 0, 0, 0, 131, 6, 0, 0, 0, 0, 132, 6, 0, 0, 0, 0];
    feed(
        &mut c,
        &control(encap, protocol::IPCP, code::CONFIGURE_NAK, id, &nak),
        now,
    );
    let again = sent(&mut c, encap);
    let (_, _, id2, req2) = again[0].clone();
    assert_eq!(
        req2,
        [3, 6, 10, 0, 2, 15, 130, 6, 0, 0, 0, 0, 131, 6, 0, 0, 0, 0, 132, 6, 0, 0, 0, 0]
    );
    feed(
        &mut c,
        &control(encap, protocol::IPCP, code::CONFIGURE_REJECT, id2, &rej),
        now,
    );
    let (_, _, id3, req3) = sent(&mut c, encap)[0].clone();
    assert_eq!(req3, [3, 6, 10, 0, 2, 15]);
    // A stale answer (an old id) changes nothing.
    feed(
        &mut c,
        &control(encap, protocol::IPCP, code::CONFIGURE_ACK, id2, &req2),
        now,
    );
    assert!(!c.is_network());
    feed(
        &mut c,
        &control(encap, protocol::IPCP, code::CONFIGURE_ACK, id3, &req3),
        now,
    );
    feed(
        &mut c,
        &control(
            encap,
            protocol::IPCP,
            code::CONFIGURE_REQUEST,
            2,
            &[3, 6, 10, 0, 2, 2],
        ),
        now,
    );
    let net = network_of(&events(&mut c));
    assert_eq!(net.ipv4, Some(CLIENT_ADDR));
    assert_eq!(net.peer_ipv4, Some(GATEWAY_ADDR));
    assert_eq!(net.dns, vec![DNS]);
    assert_eq!(net.ipv6, None);
}

#[test]
fn a_known_address_refused_by_the_peer_gives_up_ipv4_and_then_the_link() {
    let now = Instant::now();
    let encap = Encapsulation::F5;
    let config = PppConfig {
        want_ipv6: false,
        ipv4: Some(Ipv4Addr::new(192, 0, 2, 9)),
        ..client(encap)
    };
    let mut c = Ppp::new(config, now);
    let after_open = open_lcp(&mut c, encap, now);
    let (_, _, id, _) = after_open
        .iter()
        .find(|(p, ..)| *p == protocol::IPCP)
        .cloned()
        .unwrap();
    let nak = control(
        encap,
        protocol::IPCP,
        code::CONFIGURE_NAK,
        id,
        &[3, 6, 10, 0, 2, 15],
    );
    let err = c.handle_input(&nak, now, &mut |_| {}).unwrap_err();
    assert_eq!(err, PppError::NoNetworkProtocols);
}

#[test]
fn an_unanswered_lcp_is_sent_every_three_seconds_then_given_up() {
    let start = Instant::now();
    let encap = Encapsulation::Fortinet;
    let mut c = Ppp::new(client(encap), start);
    let mut now = start;
    let mut requests = sent(&mut c, encap).len();
    let error = loop {
        let next = c.poll_timeout().unwrap();
        assert_eq!(next - now, RESTART);
        now = next;
        match c.handle_timeout(now) {
            Ok(()) => requests += sent(&mut c, encap).len(),
            Err(e) => break e,
        }
    };
    assert_eq!(requests, MAX_CONFIGURE as usize);
    assert_eq!(
        error,
        PppError::NoAgreement {
            layer: "LCP",
            tries: MAX_CONFIGURE
        }
    );
    assert_eq!(now - start, RESTART * MAX_CONFIGURE);
}

#[test]
fn ipv6cp_ignored_by_the_peer_is_given_up_and_ipv4_comes_up() {
    let start = Instant::now();
    let encap = Encapsulation::Hdlc;
    let mut c = Ppp::new(client(encap), start);
    let mut g = Ppp::new(
        PppConfig {
            want_ipv6: false,
            ..gateway(encap)
        },
        start,
    );
    let mut now = start;
    // A gateway that never sees IPV6CP (as slirp ignores it).
    let pass = |c: &mut Ppp, g: &mut Ppp, now: Instant| {
        for _ in 0..20 {
            let mut d = Deframer::new(encap, 65_535);
            d.push(&drain(c).concat());
            let mut to_g = Vec::new();
            while let Some(f) = d.next_frame() {
                let f = f.unwrap().to_vec();
                if PppFrame::parse(&f).unwrap().protocol != protocol::IPV6CP {
                    encap.encapsulate(&f, hdlc::ACCM_ALL, &mut to_g).unwrap();
                }
            }
            feed(g, &to_g, now);
            feed_all(c, &drain(g), now);
        }
    };
    pass(&mut c, &mut g, now);
    assert!(!c.is_network());
    while !c.is_network() {
        now = c.poll_timeout().unwrap();
        c.handle_timeout(now).unwrap();
        pass(&mut c, &mut g, now);
        assert!(now - start < Duration::from_secs(30), "never up");
    }
    assert_eq!(now - start, RESTART * 3);
    let net = network_of(&events(&mut c));
    assert_eq!((net.ipv4, net.ipv6), (Some(CLIENT_ADDR), None));
}

#[test]
fn termination_both_ways() {
    let now = Instant::now();
    let encap = Encapsulation::F5;
    let mut c = Ppp::new(client(encap), now);
    let mut g = Ppp::new(gateway(encap), now);
    settle(&mut c, &mut g, now);
    events(&mut c);
    events(&mut g);
    c.terminate(now);
    settle(&mut c, &mut g, now);
    assert_eq!(
        events(&mut g),
        vec![PppEvent::Closed(Closed::ByPeer { reason: None })]
    );
    assert_eq!(
        events(&mut c),
        vec![PppEvent::Closed(Closed::ByUs { acked: true })]
    );
    assert!(c.is_closed() && g.is_closed());
    assert_eq!(c.poll_timeout(), None);
    // The peer's reason text is kept.
    let mut c = Ppp::new(client(encap), now);
    open_lcp(&mut c, encap, now);
    feed(
        &mut c,
        &control(
            encap,
            protocol::LCP,
            code::TERMINATE_REQUEST,
            9,
            b"session ended",
        ),
        now,
    );
    assert_eq!(
        events(&mut c),
        vec![PppEvent::Closed(Closed::ByPeer {
            reason: Some("session ended".into())
        })]
    );
    assert_eq!(
        sent(&mut c, encap),
        vec![(protocol::LCP, code::TERMINATE_ACK, 9, vec![])]
    );
    let mut wire = Vec::new();
    assert_eq!(
        c.encapsulate_ip(&ipv4_packet(0), now, &mut wire),
        Err(PppError::NotReady)
    );
}

#[test]
fn an_unanswered_terminate_is_tried_once_on_tls_and_three_times_on_dtls() {
    for (reliable, tries) in [(true, 1), (false, 3)] {
        let start = Instant::now();
        let encap = Encapsulation::F5;
        let mut c = Ppp::new(
            PppConfig {
                reliable,
                ..client(encap)
            },
            start,
        );
        open_lcp(&mut c, encap, start);
        c.terminate(start);
        let mut sent_requests = sent(&mut c, encap).len();
        let mut now = start;
        while !c.is_closed() {
            now = c.poll_timeout().unwrap();
            c.handle_timeout(now).unwrap();
            sent_requests += sent(&mut c, encap).len();
        }
        assert_eq!(sent_requests, tries);
        assert_eq!(now - start, TERMINATE_WAIT_FOR_TEST * tries as u32);
        assert_eq!(
            events(&mut c),
            vec![PppEvent::Closed(Closed::ByUs { acked: false })]
        );
    }
}

const TERMINATE_WAIT_FOR_TEST: Duration = Duration::from_secs(1);

#[test]
fn dead_peer_detection_and_keepalives() {
    let start = Instant::now();
    let encap = Encapsulation::Fortinet;
    let dpd = Duration::from_secs(10);
    let config = PppConfig {
        dpd: Some(dpd),
        keepalive: Some(Duration::from_secs(4)),
        ..client(encap)
    };
    let mut c = Ppp::new(config, start);
    let mut g = Ppp::new(gateway(encap), start);
    settle(&mut c, &mut g, start);
    assert!(c.is_network());
    // Idle sending: a Discard-Request after the keepalive interval.
    let at = c.poll_timeout().unwrap();
    assert_eq!(at - start, Duration::from_secs(4));
    c.handle_timeout(at).unwrap();
    let keepalive = sent(&mut c, encap);
    assert_eq!(keepalive.len(), 1);
    assert_eq!(
        (keepalive[0].0, keepalive[0].1),
        (protocol::LCP, code::DISCARD_REQUEST)
    );
    // Silence from the peer: an Echo-Request at 10 s, carrying our magic.
    c.handle_timeout(start + dpd).unwrap();
    let echo = sent(&mut c, encap);
    let (_, c_, id, data) = echo
        .iter()
        .find(|e| e.1 == code::ECHO_REQUEST)
        .cloned()
        .unwrap();
    assert_eq!(
        (c_, data),
        (code::ECHO_REQUEST, 0x1122_3344u32.to_be_bytes().to_vec())
    );
    // The gateway answers with its own magic; the link is alive again.
    let mut wire = Vec::new();
    ControlPacket::emit(
        code::ECHO_REQUEST,
        id,
        &0x1122_3344u32.to_be_bytes(),
        &mut wire,
    );
    let mut frame = Vec::new();
    write_header(protocol::LCP, false, false, &mut frame);
    frame.extend_from_slice(&wire);
    let mut to_g = Vec::new();
    encap.encapsulate(&frame, 0, &mut to_g).unwrap();
    feed(&mut g, &to_g, start + dpd);
    let reply = sent(&mut g, encap);
    assert_eq!(
        reply,
        vec![(
            protocol::LCP,
            code::ECHO_REPLY,
            id,
            0x5566_7788u32.to_be_bytes().to_vec()
        )]
    );
    // Nothing heard: the Echo-Request again every half interval (openconnect's DPD timers,
    // shared with AnyConnect), dead at twice the interval after the last frame heard.
    let mut c2 = Ppp::new(
        PppConfig {
            dpd: Some(dpd),
            ..client(encap)
        },
        start,
    );
    let mut g2 = Ppp::new(gateway(encap), start);
    settle(&mut c2, &mut g2, start);
    c2.handle_timeout(start + dpd).unwrap();
    let again = start + dpd + dpd / 2;
    assert_eq!(c2.poll_timeout(), Some(again));
    c2.handle_timeout(again).unwrap();
    let echoes = sent(&mut c2, encap);
    assert_eq!(
        echoes.iter().filter(|e| e.1 == code::ECHO_REQUEST).count(),
        2,
        "{echoes:?}"
    );
    assert_eq!(c2.poll_timeout(), Some(start + 2 * dpd));
    assert_eq!(
        c2.handle_timeout(start + 2 * dpd),
        Err(PppError::PeerDead(2 * dpd))
    );
}

#[test]
fn ip_before_the_network_phase_and_broken_packets_are_dropped() {
    let now = Instant::now();
    let encap = Encapsulation::F5;
    let mut c = Ppp::new(client(encap), now);
    let mut frame = Vec::new();
    write_header(protocol::IPV4, false, false, &mut frame);
    frame.extend_from_slice(&ipv4_packet(3));
    let mut wire = Vec::new();
    encap.encapsulate(&frame, 0, &mut wire).unwrap();
    // Also an LCP packet shorter than its header and a bad F5 header.
    wire.extend_from_slice(&[0xf5, 0x00, 0x00, 0x04, 0xc0, 0x21, 1, 1]);
    assert!(feed(&mut c, &wire, now).is_empty());
    assert!(feed(&mut c, &[0x12, 0x34, 0, 0], now).is_empty());
    let logs: Vec<_> = std::iter::from_fn(|| c.poll_event()).collect();
    assert_eq!(logs.len(), 3, "{logs:?}");
    assert!(logs.iter().all(|e| matches!(e, PppEvent::Log(_))));
}

#[test]
fn a_peer_demanding_authentication_is_a_clear_error() {
    let now = Instant::now();
    let encap = Encapsulation::Sync;
    let mut c = Ppp::new(client(encap), now);
    let (_, _, id, _) = sent(&mut c, encap)[0].clone();
    let nak = control(
        encap,
        protocol::LCP,
        code::CONFIGURE_NAK,
        id,
        &[3, 4, 0xc0, 0x23],
    );
    let err = c.handle_input(&nak, now, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("authentication"), "{err}");
}

proptest::proptest! {
    #[test]
    fn any_input_at_any_time_never_panics(reads in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), 0..30), which in 0usize..5) {
        let encap = ALL[which];
        let start = Instant::now();
        let mut c = Ppp::new(client(encap), start);
        for (i, r) in reads.iter().enumerate() {
            let now = start + Duration::from_millis(700 * i as u64);
            if c.handle_input(r, now, &mut |_| {}).is_err() || c.handle_timeout(now).is_err() {
                break;
            }
            while c.poll_transmit().is_some() {}
            while c.poll_event().is_some() {}
        }
    }
}

#[test]
fn dead_peer_detection_waits_for_lcp_to_open() {
    // Found by the fuzzer: a DPD deadline before LCP was open was due again at once.
    let start = Instant::now();
    let encap = Encapsulation::Hdlc;
    let config = PppConfig {
        dpd: Some(Duration::from_secs(1)),
        keepalive: Some(Duration::from_secs(1)),
        ..client(encap)
    };
    let mut c = Ppp::new(config, start);
    sent(&mut c, encap);
    assert_eq!(c.poll_timeout(), Some(start + RESTART));
    c.handle_timeout(start + RESTART).unwrap();
    assert_eq!(
        sent(&mut c, encap).len(),
        1,
        "only the Configure-Request again"
    );
    assert_eq!(c.poll_timeout(), Some(start + 2 * RESTART));
}

#[test]
fn a_request_with_a_malformed_option_is_answered_for_the_options_before_it() {
    let now = Instant::now();
    let encap = Encapsulation::Sync;
    let mut c = Ppp::new(client(encap), now);
    sent(&mut c, encap);
    // PFC, then an option whose length runs past the packet.
    let request = [7, 2, 1, 9, 0, 0];
    feed(
        &mut c,
        &control(encap, protocol::LCP, code::CONFIGURE_REQUEST, 4, &request),
        now,
    );
    let logs: Vec<_> = std::iter::from_fn(|| c.poll_event()).collect();
    assert!(
        logs.iter().any(|e| matches!(e, PppEvent::Log(l) if l.contains("LCP Configure-Request with a malformed option"))),
        "{logs:?}"
    );
    // The Ack echoes the request as it came, as upstream does.
    let answer = sent(&mut c, encap);
    assert_eq!(
        answer,
        vec![(protocol::LCP, code::CONFIGURE_ACK, 4, request.to_vec())]
    );
}
