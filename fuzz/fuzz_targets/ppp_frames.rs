//! PPP framing and the PPP link fed a hostile peer's bytes.
//!
//! - A `Deframer` fed the stream in the input's chunks yields the same frames, up to the
//!   first error, as one fed the whole stream at once, for the four stream encapsulations,
//!   and no frame is longer than its limit.
//! - A client `Ppp` gets the same chunks with a clock: it may end with an error but never
//!   panics; every frame it queues is one well-formed frame of its encapsulation carrying
//!   a well-formed control packet; after `handle_timeout(now)` it is never due again at
//!   `now` or earlier; once it reports the network up, an IP packet encapsulates and
//!   deframes back to itself.
//!
//! Input layout: byte 0 picks the encapsulation (`% 5`: F5, F5 HDLC, Fortinet, sync,
//! HDLC), byte 1 the DPD and keepalive seconds (`% 16`, `/ 16`; 0 = off). Then records
//! `[op][len: u16 LE]`, op `% 3`: 0: `len` bytes of stream; 1: the clock advances
//! `len` × 10 ms; 2: the clock jumps to the next deadline.
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use oc_proto::ppp::packet::{ControlPacket, PppFrame};
use oc_proto::ppp::{Deframer, Encapsulation, FrameError, Ppp, PppConfig, PppEvent, Role};

const LIMIT: usize = 2000;

fn frames(d: &mut Deframer, out: &mut Vec<Result<Vec<u8>, FrameError>>) {
    while let Some(f) = d.next_frame() {
        let f = f.map(<[u8]>::to_vec);
        if let Ok(frame) = &f {
            assert!(frame.len() <= LIMIT, "frame of {} bytes", frame.len());
        }
        out.push(f);
    }
}

/// Each queued write is exactly one frame with a control packet inside.
fn check_queued(ppp: &mut Ppp, encap: Encapsulation) {
    while let Some(write) = ppp.poll_transmit() {
        let mut d = Deframer::new(encap, 65_535);
        d.push(&write);
        let frame = d.next_frame().expect("a queued write holds a frame");
        let frame = frame.expect("a queued frame deframes").to_vec();
        assert!(d.next_frame().is_none(), "one write, one frame");
        let ppp_frame = PppFrame::parse(&frame).expect("a queued frame has a PPP header");
        ControlPacket::parse(ppp_frame.protocol, ppp_frame.payload)
            .expect("a queued frame is a control packet");
    }
}

fn secs(n: u8) -> Option<Duration> {
    (n != 0).then(|| Duration::from_secs(u64::from(n)))
}

fuzz_target!(|data: &[u8]| {
    let Some((&[which, timers], mut ops)) = data.split_first_chunk::<2>() else {
        return;
    };
    let encap = [
        Encapsulation::F5,
        Encapsulation::F5Hdlc,
        Encapsulation::Fortinet,
        Encapsulation::Sync,
        Encapsulation::Hdlc,
    ][usize::from(which % 5)];
    let start = Instant::now();
    let mut now = start;
    let mut ppp = Ppp::new(
        PppConfig {
            encapsulation: encap,
            role: Role::Client,
            want_ipv4: true,
            want_ipv6: which & 0x80 != 0,
            mtu: 1400,
            magic: 0x0102_0304,
            ipv4: (which & 0x40 != 0).then_some(Ipv4Addr::new(10, 1, 2, 3)),
            ipv6: None,
            ask_name_servers: true,
            reliable: which & 0x20 != 0,
            dpd: secs(timers % 16),
            keepalive: secs(timers / 16),
        },
        now,
    );
    let mut alive = true;
    let mut stream = Vec::new();
    let mut chunked = Deframer::new(encap, LIMIT);
    let mut chunked_frames = Vec::new();
    let mut network = false;
    while let Some(([op, lo, hi], rest)) = ops.split_first_chunk::<3>().map(|(h, r)| (*h, r)) {
        let len = usize::from(u16::from_le_bytes([lo, hi]));
        match op % 3 {
            0 => {
                let (bytes, tail) = rest.split_at(len.min(rest.len()));
                ops = tail;
                stream.extend_from_slice(bytes);
                chunked.push(bytes);
                frames(&mut chunked, &mut chunked_frames);
                if alive {
                    alive = ppp.handle_input(bytes, now, &mut |_| {}).is_ok();
                }
            }
            1 => {
                ops = rest;
                now += Duration::from_millis(10 * len as u64);
                if alive {
                    alive = ppp.handle_timeout(now).is_ok();
                }
            }
            _ => {
                ops = rest;
                if let Some(at) = ppp.poll_timeout() {
                    now = now.max(at);
                    if alive {
                        alive = ppp.handle_timeout(now).is_ok();
                    }
                }
            }
        }
        if alive {
            assert!(
                ppp.poll_timeout().is_none_or(|t| t > now),
                "due again at once"
            );
        }
        check_queued(&mut ppp, encap);
        while let Some(event) = ppp.poll_event() {
            network |= matches!(event, PppEvent::NetworkUp(_));
        }
    }
    if alive && network && ppp.is_network() {
        let packet = [0x45u8, 0, 0, 20, 0x7e, 0x7d, 0x00, 0x11];
        let mut wire = Vec::new();
        ppp.encapsulate_ip(&packet, now, &mut wire)
            .expect("a packet encapsulates");
        let mut d = Deframer::new(encap, LIMIT);
        d.push(&wire);
        let frame = d
            .next_frame()
            .expect("one frame")
            .expect("deframes")
            .to_vec();
        assert_eq!(PppFrame::parse(&frame).expect("header").payload, packet);
    }
    // Sync framing is one frame per read, so only the stream encapsulations compare.
    if encap != Encapsulation::Sync {
        let mut whole = Deframer::new(encap, LIMIT);
        whole.push(&stream);
        let mut whole_frames = Vec::new();
        frames(&mut whole, &mut whole_frames);
        // Up to the first error (which may drop what is buffered, and so depends on the
        // chunks), the frames are the same.
        let first_error = |f: &[Result<Vec<u8>, FrameError>]| f.iter().position(Result::is_err);
        let end = [first_error(&whole_frames), first_error(&chunked_frames)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(usize::MAX);
        let good = |f: &[Result<Vec<u8>, FrameError>]| -> Vec<Vec<u8>> {
            f.iter()
                .take(end)
                .filter_map(|r| r.as_ref().ok().cloned())
                .collect()
        };
        assert_eq!(
            good(&whole_frames),
            good(&chunked_frames),
            "chunking changed the frames"
        );
    }
});
