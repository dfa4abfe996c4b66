//! Tunnel framing and the two tunnel state machines, fed a hostile peer's bytes.
//!
//! - `CstpDecoder` fed the CSTP stream in the input's chunks yields the same frames, and
//!   the same error, as one decoder fed the whole stream at once. Every frame of a known
//!   type re-encodes (`emit_cstp`) to the bytes it came from (the ignored 8th header byte
//!   aside) and decodes back to itself; `frame_in_place` frames the same way on CSTP and
//!   gives back the DTLS record.
//! - `parse_dtls` splits any non-empty record into its type byte and payload.
//! - The client's `Session` and the server's `ServerSession`, each with the compression
//!   picked by byte 0, get the same CSTP chunks, DTLS records and clock. Neither may
//!   panic; each must deliver exactly the data packets (decompressed with a separate codec
//!   of the same algorithm) that the frames carry, in order, until it reports an error; the
//!   server must echo every DPD request's payload; every control frame they queue must be a
//!   well-formed frame for its channel; and after `handle_timeout(now)` neither may be due
//!   again at `now` or earlier.
//!
//! Input layout: byte 0 picks CSTP compression (`% 4`: none, LZ4, LZS, deflate) and DTLS
//! compression (`/ 4 % 3`: none, LZ4, LZS); bytes 1-3 the client's CSTP DPD, keepalive and
//! rekey, bytes 4-6 its DTLS ones, bytes 7-9 the server's DPD, idle timeout and session
//! timeout (seconds, 0 = off). Then records `[op][len: u16 LE]`, op `% 6`:
//! 0: `len` bytes of CSTP stream; 1: a DTLS record of `len` bytes; 2: the clock advances
//! `len` × 10 ms; 3: the clock jumps to the first deadline; 4: the client starts DTLS
//! (`len % 4 == 0`), an MTU search up to `len / 4` bytes (1), stops DTLS (2) or
//! disconnects (3); 5: `len` bytes sent to the client (server activity), or the server
//! disconnects when `len` is 0.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use oc_proto::anyconnect::frame::{
    emit_cstp, frame_in_place, parse_dtls, CstpDecoder, Frame, FrameError, PacketType,
    CSTP_HEADER_LEN,
};
use oc_proto::anyconnect::server_session::{ServerSession, ServerTimers};
use oc_proto::anyconnect::session::{Channel, Session, Timers};
use oc_proto::compress::{Algorithm, CompressError, TunnelCompression, CLIENT_MIN_PACKET};

const MTU: usize = 1400;

type Frames = Vec<(u8, Vec<u8>)>;

fn decode_all(decoder: &mut CstpDecoder, input: &[u8], out: &mut Frames) -> Result<(), FrameError> {
    decoder.decode(input, |f: Frame<'_>| {
        out.push((f.code, f.payload.to_vec()));
        Ok::<_, FrameError>(())
    })
}

fn secs(b: u8) -> Option<Duration> {
    (b != 0).then(|| Duration::from_secs(u64::from(b)))
}

/// Which side a model plays: they differ in what ends the connection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

/// The protocol as the draft tells it, for one side: which packets the frames of one read
/// deliver, which DPD payloads the server echoes, and whether the read is an error.
/// `closed`: the server ignores everything once a DISCONNECT came; `failed`: the
/// connection ended at an error and is fed nothing more.
struct Model {
    side: Side,
    codec: TunnelCompression,
    closed: bool,
    failed: bool,
}

/// What a [`Model`] expects of one read.
#[derive(Default)]
struct Expect {
    packets: Vec<Vec<u8>>,
    echoes: Vec<Vec<u8>>,
    error: bool,
}

impl Model {
    fn frames(
        &mut self,
        channel: Channel,
        frames: &[(u8, Vec<u8>)],
        framing_error: bool,
    ) -> Expect {
        let mut e = Expect::default();
        if self.closed {
            // A closed server session reads nothing more.
            return e;
        }
        for (code, payload) in frames {
            if self.closed {
                // Decoded, but ignored.
                continue;
            }
            match PacketType::from_code(*code) {
                Some(PacketType::Data) => e.packets.push(payload.clone()),
                Some(PacketType::Compressed) => match self.codec.decompress(channel, payload) {
                    Ok(packet) => e.packets.push(packet.to_vec()),
                    Err(CompressError::Lzs(_) | CompressError::Lz4(_))
                        if self.side == Side::Client => {}
                    Err(_) => {
                        e.error = true;
                        return e;
                    }
                },
                Some(PacketType::DpdRequest) => e.echoes.push(payload.clone()),
                Some(PacketType::DpdResponse | PacketType::Keepalive) => {}
                Some(PacketType::Disconnect | PacketType::Terminate) => {
                    if self.side == Side::Server {
                        self.closed = true;
                    }
                }
                None => {
                    e.error = true;
                    return e;
                }
            }
        }
        e.error = framing_error;
        e
    }
}

/// A control frame queued by a session must be one well-formed frame for its channel.
fn check_control(channel: Channel, bytes: &[u8]) -> (PacketType, Vec<u8>) {
    let (code, payload) = match channel {
        Channel::Cstp => {
            let mut frames = Vec::new();
            let mut decoder = CstpDecoder::new();
            decode_all(&mut decoder, bytes, &mut frames).expect("queued CSTP frame decodes");
            assert_eq!(
                frames.len(),
                1,
                "one queued CSTP frame is {} frames",
                frames.len()
            );
            frames.remove(0)
        }
        Channel::Dtls => {
            let f = parse_dtls(bytes).expect("queued DTLS record is empty");
            (f.code, f.payload.to_vec())
        }
    };
    let ptype = PacketType::from_code(code).expect("queued frame of unknown type");
    (ptype, payload)
}

struct Sides {
    client: Session,
    client_model: Model,
    /// The client's DTLS channel is up (and fed records).
    client_dtls: bool,
    server: ServerSession,
    server_model: Model,
}

impl Sides {
    fn deliver(
        &mut self,
        channel: Channel,
        frames: &[(u8, Vec<u8>)],
        framing_error: bool,
        bytes: &[u8],
        now: Instant,
    ) {
        // The client.
        let client_live = match channel {
            Channel::Cstp => !self.client_model.failed,
            Channel::Dtls => self.client_dtls,
        };
        if client_live {
            let want = self.client_model.frames(channel, frames, framing_error);
            let mut got = Vec::new();
            let result = match channel {
                Channel::Cstp => self
                    .client
                    .handle_cstp(bytes, now, |p| got.push(p.to_vec())),
                Channel::Dtls => self
                    .client
                    .handle_dtls(bytes, now, |p| got.push(p.to_vec())),
            };
            assert_eq!(got, want.packets, "client delivered other packets");
            assert_eq!(result.is_err(), want.error, "client result {result:?}");
            if result.is_err() {
                // The connection ends here.
                self.client_model.failed = true;
                self.client_dtls = false;
            }
        }
        // The server.
        if !self.server_model.failed {
            let want = self.server_model.frames(channel, frames, framing_error);
            let mut got = Vec::new();
            let result = match channel {
                Channel::Cstp => self
                    .server
                    .handle_cstp(bytes, now, |p| got.push(p.to_vec())),
                Channel::Dtls => self
                    .server
                    .handle_dtls(bytes, now, |p| got.push(p.to_vec())),
            };
            assert_eq!(got, want.packets, "server delivered other packets");
            assert_eq!(result.is_err(), want.error, "server result {result:?}");
            let mut echoes = Vec::new();
            while let Some((ch, bytes)) = self.server.poll_transmit() {
                let (ptype, payload) = check_control(ch, &bytes);
                if ptype == PacketType::DpdResponse {
                    assert_eq!(ch, channel, "DPD answered on the other channel");
                    echoes.push(payload);
                }
            }
            assert_eq!(echoes, want.echoes, "server did not echo the DPD payloads");
            assert_eq!(self.server.is_closed(), self.server_model.closed);
            if result.is_err() {
                self.server_model.failed = true;
            }
        }
        self.drain();
    }

    /// Takes (and checks) whatever both sides queued.
    fn drain(&mut self) {
        while let Some((ch, bytes)) = self.client.poll_transmit() {
            check_control(ch, &bytes);
        }
        while self.client.poll_event().is_some() {}
        while let Some((ch, bytes)) = self.server.poll_transmit() {
            check_control(ch, &bytes);
        }
        while self.server.poll_event().is_some() {}
    }

    fn timeout(&mut self, now: Instant) {
        self.client.handle_timeout(now);
        self.server.handle_timeout(now);
        assert!(
            self.client.poll_timeout().is_none_or(|t| t > now),
            "client due again at once"
        );
        assert!(
            self.server.poll_timeout().is_none_or(|t| t > now),
            "server due again at once"
        );
        if !self.client.dtls_up() {
            self.client_dtls = false;
        }
        self.server_model.closed |= self.server.is_closed();
        self.drain();
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((header, mut ops)) = data.split_first_chunk::<10>() else {
        return;
    };
    let cstp_alg = [
        None,
        Some(Algorithm::Lz4),
        Some(Algorithm::Lzs),
        Some(Algorithm::Deflate),
    ][usize::from(header[0] % 4)];
    let dtls_alg =
        [None, Some(Algorithm::Lz4), Some(Algorithm::Lzs)][usize::from(header[0] / 4 % 3)];
    let compression = |min| TunnelCompression::new(cstp_alg, dtls_alg, min, MTU);
    let timers = |b: &[u8]| Timers {
        dpd: secs(b[0]),
        keepalive: secs(b[1]),
        rekey: secs(b[2]),
    };
    let cstp_timers = timers(&header[1..4]);
    let dtls_timers = timers(&header[4..7]);
    let start = Instant::now();
    let mut now = start;
    let server_timers = ServerTimers {
        dpd: secs(header[7]),
        idle_timeout: secs(header[8]),
        session_deadline: secs(header[9]).map(|d| start + d),
        // The server's own TLS 1.3 rekey only queues keepalives; not modelled here.
        tls_rekey: None,
    };
    let mut sides = Sides {
        client: Session::new(cstp_timers, now).with_compression(compression(CLIENT_MIN_PACKET)),
        client_model: Model {
            side: Side::Client,
            codec: compression(CLIENT_MIN_PACKET),
            closed: false,
            failed: false,
        },
        client_dtls: false,
        server: ServerSession::new(server_timers, now).with_compression(compression(256)),
        server_model: Model {
            side: Side::Server,
            codec: compression(256),
            closed: false,
            failed: false,
        },
    };

    // The CSTP stream as a whole, and a decoder fed it in the input's chunks.
    let mut stream = Vec::new();
    let mut chunked = CstpDecoder::new();
    let mut chunked_frames = Vec::new();
    let mut chunked_error = None;

    while let Some(([op, lo, hi], rest)) = ops.split_first_chunk::<3>().map(|(h, r)| (*h, r)) {
        let len = usize::from(u16::from_le_bytes([lo, hi]));
        match op % 6 {
            0 | 1 | 5 => {
                let (bytes, tail) = rest.split_at(len.min(rest.len()));
                ops = tail;
                match op % 6 {
                    0 => {
                        if chunked_error.is_some() {
                            // The connection ended at the framing error.
                            continue;
                        }
                        stream.extend_from_slice(bytes);
                        let before = chunked_frames.len();
                        let result = decode_all(&mut chunked, bytes, &mut chunked_frames);
                        let framing_error = result.is_err();
                        chunked_error = result.err();
                        let frames = chunked_frames[before..].to_vec();
                        sides.deliver(Channel::Cstp, &frames, framing_error, bytes, now);
                    }
                    1 => {
                        check_dtls_record(bytes);
                        let frames: Vec<_> = parse_dtls(bytes)
                            .map(|f| (f.code, f.payload.to_vec()))
                            .into_iter()
                            .collect();
                        sides.deliver(Channel::Dtls, &frames, false, bytes, now);
                    }
                    _ => {
                        if bytes.is_empty() {
                            sides.server.disconnect();
                            sides.server_model.closed = true;
                            let queued: Vec<_> =
                                std::iter::from_fn(|| sides.server.poll_transmit()).collect();
                            if let Some((ch, frame)) = queued.first() {
                                assert_eq!(check_control(*ch, frame).0, PacketType::Disconnect);
                            }
                        } else {
                            sides.server.on_packet_sent(bytes, now);
                        }
                    }
                }
            }
            2 => {
                ops = rest;
                now += Duration::from_millis(10 * len as u64);
                sides.timeout(now);
            }
            3 => {
                ops = rest;
                let next = [sides.client.poll_timeout(), sides.server.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min();
                if let Some(t) = next {
                    // The clock never goes back.
                    now = now.max(t);
                    sides.timeout(now);
                }
            }
            _ => {
                ops = rest;
                match len % 4 {
                    0 => {
                        sides.client.start_dtls(dtls_timers, now);
                        sides.client_dtls = !sides.client_model.failed;
                        if sides.client_model.failed {
                            sides.client.stop_dtls();
                        }
                    }
                    1 => sides.client.start_mtu_probe(576, len / 4, now),
                    2 => {
                        sides.client.stop_dtls();
                        sides.client_dtls = false;
                    }
                    _ => {
                        sides.client.disconnect("Aborted by caller");
                        let queued: Vec<_> =
                            std::iter::from_fn(|| sides.client.poll_transmit()).collect();
                        assert_eq!(queued.len(), 1, "disconnect queued {} frames", queued.len());
                        let (ptype, payload) = check_control(queued[0].0, &queued[0].1);
                        assert_eq!(ptype, PacketType::Disconnect);
                        assert_eq!(payload, b"\xb0Aborted by caller");
                    }
                }
                sides.drain();
            }
        }
    }

    // Whole stream at once: same frames, same error.
    let mut whole = CstpDecoder::new();
    let mut whole_frames = Vec::new();
    let whole_error = decode_all(&mut whole, &stream, &mut whole_frames).err();
    assert_eq!(
        whole_error, chunked_error,
        "chunking changed the framing error"
    );
    assert_eq!(whole_frames, chunked_frames, "chunking changed the frames");

    // Re-encoding each frame gives back its bytes.
    let mut offset = 0;
    for (code, payload) in &whole_frames {
        let original = &stream[offset..offset + CSTP_HEADER_LEN + payload.len()];
        offset += original.len();
        let Some(ptype) = PacketType::from_code(*code) else {
            continue;
        };
        let mut encoded = Vec::new();
        emit_cstp(ptype, payload, &mut encoded).expect("a decoded payload fits a frame");
        let mut want = original.to_vec();
        want[7] = 0;
        assert_eq!(
            encoded, want,
            "emit_cstp differs from the frame it came from"
        );
        let mut in_place = vec![0u8; CSTP_HEADER_LEN];
        in_place.extend_from_slice(payload);
        let framed = frame_in_place(Channel::Cstp, ptype, &mut in_place).expect("fits");
        assert_eq!(framed, &encoded[..]);
        let mut again = Vec::new();
        decode_all(&mut CstpDecoder::new(), &encoded, &mut again).expect("re-encoded frame");
        assert_eq!(again, vec![(*code, payload.clone())]);
    }
});

fn check_dtls_record(record: &[u8]) {
    let Some(frame) = parse_dtls(record) else {
        assert!(record.is_empty());
        return;
    };
    assert_eq!(frame.code, record[0]);
    assert_eq!(frame.payload, &record[1..]);
    if let Some(ptype) = frame.packet_type() {
        let mut buf = vec![0u8; CSTP_HEADER_LEN];
        buf.extend_from_slice(frame.payload);
        let framed = frame_in_place(Channel::Dtls, ptype, &mut buf).expect("DTLS framing");
        assert_eq!(framed, record, "frame_in_place on DTLS");
    }
}
