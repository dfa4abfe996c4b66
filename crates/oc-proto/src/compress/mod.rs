//! Per-packet compression of tunnelled packets, as openconnect and ocserv negotiate it with
//! `X-CSTP-Accept-Encoding` / `X-DTLS-Accept-Encoding` and answer with
//! `X-CSTP-Content-Encoding` / `X-DTLS-Content-Encoding`. A compressed packet travels as a
//! COMPRESSED (0x08) frame on the channel whose encoding was agreed; plain DATA stays legal
//! at any time, so a packet that does not shrink simply goes uncompressed.
//!
//! - `oc-lz4`: one LZ4 block per packet, stateless.
//! - `lzs`: one Stac LZS block per packet, stateless ([`lzs`]).
//! - `deflate`: a raw deflate stream per direction on CSTP only, with a running Adler-32
//!   after each packet ([`deflate`]).
//!
//! Compression before encryption lets an observer who can inject traffic learn secrets from
//! packet sizes (CRIME/VORACLE); servers keep it off unless the admin enables it.

pub mod deflate;
pub mod lzs;

use thiserror::Error;

use crate::anyconnect::frame::{frame_in_place, FrameError, PacketType, CSTP_HEADER_LEN};
use crate::anyconnect::session::Channel;

/// The compression algorithms AnyConnect peers negotiate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Lz4,
    Lzs,
    Deflate,
}

impl Algorithm {
    /// The token on the wire.
    pub const fn token(self) -> &'static str {
        match self {
            Self::Lz4 => "oc-lz4",
            Self::Lzs => "lzs",
            Self::Deflate => "deflate",
        }
    }

    /// Reads a token, ignoring case (as ocserv does) and any `;q=` parameter.
    pub fn from_token(token: &str) -> Option<Self> {
        let name = token.split(';').next().unwrap_or_default().trim();
        [Self::Lz4, Self::Lzs, Self::Deflate]
            .into_iter()
            .find(|a| a.token().eq_ignore_ascii_case(name))
    }

    /// Stateful algorithms keep history across packets, so they need a reliable, ordered
    /// channel: CSTP only.
    pub const fn is_stateless(self) -> bool {
        !matches!(self, Self::Deflate)
    }

    /// The name openconnect prints in its messages.
    pub const fn display_name(self) -> &'static str {
        match self {
            Self::Lz4 => "LZ4",
            Self::Lzs => "LZS",
            Self::Deflate => "Deflate",
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.token())
    }
}

/// The client's `--compression` setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Nothing offered (`--compression none`, `-D`).
    None,
    /// LZ4 and LZS (openconnect's default).
    #[default]
    Stateless,
    /// Deflate on CSTP as well (`--compression all`, `-d`).
    All,
}

impl Mode {
    /// What to offer on a channel, in openconnect's order; empty means no header.
    pub fn offer(self, channel: Channel) -> Vec<Algorithm> {
        match (self, channel) {
            (Self::None, _) => Vec::new(),
            (Self::All, Channel::Cstp) => vec![Algorithm::Lz4, Algorithm::Lzs, Algorithm::Deflate],
            (Self::Stateless | Self::All, _) => vec![Algorithm::Lz4, Algorithm::Lzs],
        }
    }

    /// The header value for an offer: `oc-lz4,lzs` and so on.
    pub fn offer_header(self, channel: Channel) -> Option<String> {
        let offer = self.offer(channel);
        (!offer.is_empty()).then(|| {
            offer
                .iter()
                .map(|a| a.token())
                .collect::<Vec<_>>()
                .join(",")
        })
    }
}

/// The server's preference between algorithms (`compression-algo-priority`). ocserv's
/// defaults are oc-lz4 90 and lzs 80; deflate, which ocserv lacks, defaults to 70 so it is
/// chosen only for clients offering nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priorities {
    lz4: u32,
    lzs: u32,
    deflate: u32,
}

impl Default for Priorities {
    fn default() -> Self {
        Self {
            lz4: 90,
            lzs: 80,
            deflate: 70,
        }
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PriorityError {
    #[error("expected ALGORITHM:PRIORITY (e.g. lzs:95), got {0:?}")]
    Syntax(String),
    #[error("unknown compression algorithm {0:?} (known: oc-lz4, lzs, deflate)")]
    UnknownAlgorithm(String),
    #[error("priority must be a number above 0, got {0:?}")]
    BadPriority(String),
}

impl Priorities {
    pub fn get(&self, algorithm: Algorithm) -> u32 {
        match algorithm {
            Algorithm::Lz4 => self.lz4,
            Algorithm::Lzs => self.lzs,
            Algorithm::Deflate => self.deflate,
        }
    }

    /// Applies one `ALGORITHM:PRIORITY` setting.
    pub fn apply(&mut self, spec: &str) -> Result<(), PriorityError> {
        let (name, priority) = spec
            .split_once(':')
            .ok_or_else(|| PriorityError::Syntax(spec.to_string()))?;
        let algorithm = Algorithm::from_token(name)
            .ok_or_else(|| PriorityError::UnknownAlgorithm(name.into()))?;
        let value = priority
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| PriorityError::BadPriority(priority.to_string()))?;
        match algorithm {
            Algorithm::Lz4 => self.lz4 = value,
            Algorithm::Lzs => self.lzs = value,
            Algorithm::Deflate => self.deflate = value,
        }
        Ok(())
    }

    /// The server's choice from a client's `Accept-Encoding` list for `channel`: the highest
    /// priority, the client's earlier token on a tie (ocserv's rule). Deflate is never chosen
    /// for DTLS, and tokens with `q=0` are skipped.
    pub fn select(&self, offered: &str, channel: Channel) -> Option<Algorithm> {
        let mut best: Option<Algorithm> = None;
        for token in offered.split(',') {
            let refused = token
                .split(';')
                .skip(1)
                .any(|param| matches!(param.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            let Some(algorithm) = Algorithm::from_token(token).filter(|_| !refused) else {
                continue;
            };
            if channel == Channel::Dtls && !algorithm.is_stateless() {
                continue;
            }
            if best.is_none_or(|b| self.get(b) < self.get(algorithm)) {
                best = Some(algorithm);
            }
        }
        best
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CompressError {
    #[error("received a compressed packet on {0:?} but no compression was negotiated there")]
    NotNegotiated(Channel),
    #[error("LZ4 decompression failed: {0}")]
    Lz4(String),
    #[error("LZS decompression failed: {0}")]
    Lzs(#[from] lzs::LzsError),
    #[error(transparent)]
    Deflate(#[from] deflate::DeflateError),
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Decompressed packets may exceed the tunnel MTU (some servers send such packets);
/// openconnect allows max(16 KiB, MTU) and so do we. Nothing can expand past this.
pub const MIN_DECOMPRESS_LIMIT: usize = 16 * 1024;

/// openconnect leaves packets under 40 bytes alone: nothing to gain.
pub const CLIENT_MIN_PACKET: usize = 40;

/// `len` bytes after the frame header room in `out`, which only ever grows: no clearing
/// or zeroing per packet.
fn room_after_header(out: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if out.len() < CSTP_HEADER_LEN + len {
        out.resize(CSTP_HEADER_LEN + len, 0);
    }
    out.get_mut(CSTP_HEADER_LEN..CSTP_HEADER_LEN + len)
        .unwrap_or_default()
}

enum Encoder {
    Lz4,
    Lzs(Box<lzs::Compressor>),
    Deflate(Box<deflate::Deflater>),
}

enum Decoder {
    Lz4,
    Lzs,
    Deflate(Box<deflate::Inflater>),
}

impl Encoder {
    fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Lz4 => Self::Lz4,
            Algorithm::Lzs => Self::Lzs(Box::default()),
            Algorithm::Deflate => Self::Deflate(Box::default()),
        }
    }
}

impl Decoder {
    fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Lz4 => Self::Lz4,
            Algorithm::Lzs => Self::Lzs,
            Algorithm::Deflate => Self::Deflate(Box::default()),
        }
    }
}

/// One channel's negotiated algorithm and its state in each direction.
struct ChannelCodec {
    algorithm: Algorithm,
    encoder: Encoder,
    decoder: Decoder,
}

/// Compression for one tunnel connection: what each channel negotiated, the codec state and
/// the two buffers (allocated on first use, so an uncompressed tunnel costs nothing).
pub struct TunnelCompression {
    cstp: Option<ChannelCodec>,
    dtls: Option<ChannelCodec>,
    /// Packets shorter than this go out uncompressed.
    min_packet: usize,
    decompress_limit: usize,
    /// Decompressed packet.
    inflated: Vec<u8>,
    /// Compressed payload after `CSTP_HEADER_LEN` bytes of room for the frame header.
    deflated: Vec<u8>,
}

impl std::fmt::Debug for TunnelCompression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelCompression")
            .field("cstp", &self.algorithm(Channel::Cstp))
            .field("dtls", &self.algorithm(Channel::Dtls))
            .field("min_packet", &self.min_packet)
            .finish_non_exhaustive()
    }
}

impl Default for TunnelCompression {
    fn default() -> Self {
        Self::new(None, None, CLIENT_MIN_PACKET, 0)
    }
}

impl TunnelCompression {
    /// `min_packet`: the shortest packet worth compressing; `mtu`: the tunnel MTU, which
    /// raises the decompression limit above [`MIN_DECOMPRESS_LIMIT`] if larger.
    pub fn new(
        cstp: Option<Algorithm>,
        dtls: Option<Algorithm>,
        min_packet: usize,
        mtu: usize,
    ) -> Self {
        let codec = |algorithm: Algorithm| ChannelCodec {
            algorithm,
            encoder: Encoder::new(algorithm),
            decoder: Decoder::new(algorithm),
        };
        Self {
            cstp: cstp.map(codec),
            // A stateful algorithm on DTLS would break on the first lost datagram.
            dtls: dtls.filter(|a| a.is_stateless()).map(codec),
            min_packet,
            decompress_limit: mtu.max(MIN_DECOMPRESS_LIMIT),
            inflated: Vec::new(),
            deflated: Vec::new(),
        }
    }

    pub fn algorithm(&self, channel: Channel) -> Option<Algorithm> {
        self.codec(channel).map(|c| c.algorithm)
    }

    fn codec(&self, channel: Channel) -> Option<&ChannelCodec> {
        match channel {
            Channel::Cstp => self.cstp.as_ref(),
            Channel::Dtls => self.dtls.as_ref(),
        }
    }

    /// Compresses a packet for `channel`. `Ok(Some(frame))`: send it as COMPRESSED; the
    /// compressed payload starts at `CSTP_HEADER_LEN` in `frame`, leaving room to write the
    /// CSTP header (or the DTLS type byte just before the payload). `Ok(None)`: send the
    /// packet as plain DATA (nothing negotiated, too short, or it did not shrink).
    /// An error means the deflate stream broke and the connection must end.
    pub fn compress(
        &mut self,
        channel: Channel,
        packet: &[u8],
    ) -> Result<Option<&mut [u8]>, CompressError> {
        let codec = match channel {
            Channel::Cstp => self.cstp.as_mut(),
            Channel::Dtls => self.dtls.as_mut(),
        };
        let Some(codec) = codec else { return Ok(None) };
        if packet.len() < self.min_packet {
            return Ok(None);
        }
        let out = &mut self.deflated;
        let compressed_len = match &mut codec.encoder {
            Encoder::Lz4 => {
                let room =
                    room_after_header(out, lz4_flex::block::get_maximum_output_size(packet.len()));
                match lz4_flex::block::compress_into(packet, room) {
                    Ok(n) if n < packet.len() => n,
                    _ => return Ok(None),
                }
            }
            // Room for one byte less than the packet: anything longer is no gain.
            Encoder::Lzs(compressor) => {
                let room = room_after_header(out, packet.len().saturating_sub(1));
                match compressor.compress(packet, room) {
                    Some(n) => n,
                    None => return Ok(None),
                }
            }
            Encoder::Deflate(deflater) => {
                // Every packet run through the stream must be sent: no shrink test.
                out.truncate(CSTP_HEADER_LEN);
                out.resize(CSTP_HEADER_LEN, 0);
                deflater.compress(packet, out)?;
                out.len() - CSTP_HEADER_LEN
            }
        };
        Ok(out.get_mut(..CSTP_HEADER_LEN + compressed_len))
    }

    /// Turns the packet in `buf` (after `CSTP_HEADER_LEN` bytes of room) into the bytes to
    /// send on `channel`: a COMPRESSED frame when compression applies, else a DATA frame
    /// written in place.
    pub fn encode_packet<'a>(
        &'a mut self,
        channel: Channel,
        buf: &'a mut [u8],
    ) -> Result<&'a [u8], CompressError> {
        let packet = buf.get(CSTP_HEADER_LEN..).unwrap_or_default();
        Ok(match self.compress(channel, packet)? {
            Some(compressed) => frame_in_place(channel, PacketType::Compressed, compressed)?,
            None => frame_in_place(channel, PacketType::Data, buf)?,
        })
    }

    /// Decompresses the payload of a COMPRESSED frame received on `channel`.
    pub fn decompress(&mut self, channel: Channel, payload: &[u8]) -> Result<&[u8], CompressError> {
        let codec = match channel {
            Channel::Cstp => self.cstp.as_mut(),
            Channel::Dtls => self.dtls.as_mut(),
        };
        let Some(codec) = codec else {
            return Err(CompressError::NotNegotiated(channel));
        };
        if self.inflated.len() != self.decompress_limit {
            self.inflated.resize(self.decompress_limit, 0);
        }
        let out = self.inflated.as_mut_slice();
        let n = match &mut codec.decoder {
            Decoder::Lz4 => lz4_flex::block::decompress_into(payload, out)
                .map_err(|e| CompressError::Lz4(e.to_string()))?,
            Decoder::Lzs => lzs::decompress(payload, out)?,
            Decoder::Deflate(inflater) => inflater.decompress(payload, out)?,
        };
        Ok(self.inflated.get(..n).unwrap_or_default())
    }
}

/// Incompressible test bytes (xorshift32).
#[cfg(test)]
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9u32;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn offers_follow_openconnect() {
        assert_eq!(
            Mode::Stateless.offer_header(Channel::Cstp).as_deref(),
            Some("oc-lz4,lzs")
        );
        assert_eq!(
            Mode::All.offer_header(Channel::Cstp).as_deref(),
            Some("oc-lz4,lzs,deflate")
        );
        assert_eq!(
            Mode::All.offer_header(Channel::Dtls).as_deref(),
            Some("oc-lz4,lzs")
        );
        assert_eq!(Mode::None.offer_header(Channel::Cstp), None);
    }

    #[test]
    fn selection_follows_ocserv_priorities() {
        let p = Priorities::default();
        assert_eq!(p.select("oc-lz4,lzs", Channel::Cstp), Some(Algorithm::Lz4));
        assert_eq!(p.select(" lzs,oc-lz4", Channel::Dtls), Some(Algorithm::Lz4));
        assert_eq!(p.select("LZS", Channel::Cstp), Some(Algorithm::Lzs));
        assert_eq!(
            p.select("oc-lz4,lzs,deflate", Channel::Cstp),
            Some(Algorithm::Lz4)
        );
        // Cisco's form: deflate with a q parameter; never on DTLS.
        assert_eq!(
            p.select("deflate;q=1.0", Channel::Cstp),
            Some(Algorithm::Deflate)
        );
        assert_eq!(p.select("deflate", Channel::Dtls), None);
        assert_eq!(p.select("lzs;q=0,gzip", Channel::Cstp), None);
        assert_eq!(p.select("", Channel::Cstp), None);
        let mut forced = Priorities::default();
        forced.apply("lzs:95").unwrap();
        assert_eq!(
            forced.select("oc-lz4,lzs", Channel::Cstp),
            Some(Algorithm::Lzs)
        );
        forced.apply("deflate:100").unwrap();
        assert_eq!(
            forced.select("oc-lz4,lzs,deflate", Channel::Cstp),
            Some(Algorithm::Deflate)
        );
        assert_eq!(
            forced.select("oc-lz4,lzs,deflate", Channel::Dtls),
            Some(Algorithm::Lzs)
        );
        // Equal priorities: the client's first.
        let mut tie = Priorities::default();
        tie.apply("oc-lz4:80").unwrap();
        assert_eq!(
            tie.select("lzs,oc-lz4", Channel::Cstp),
            Some(Algorithm::Lzs)
        );
    }

    #[test]
    fn priority_settings_are_checked() {
        let mut p = Priorities::default();
        assert!(matches!(p.apply("lzs"), Err(PriorityError::Syntax(_))));
        assert!(matches!(
            p.apply("gzip:5"),
            Err(PriorityError::UnknownAlgorithm(_))
        ));
        assert!(matches!(
            p.apply("lzs:0"),
            Err(PriorityError::BadPriority(_))
        ));
        assert!(matches!(
            p.apply("lzs:x"),
            Err(PriorityError::BadPriority(_))
        ));
        assert_eq!(p, Priorities::default());
    }

    fn text_packet(len: usize) -> Vec<u8> {
        b"GET /index.html HTTP/1.1\r\nHost: example\r\n"
            .iter()
            .cycle()
            .take(len)
            .copied()
            .collect()
    }

    #[test]
    fn thresholds_and_incompressible_packets_go_plain() {
        let mut t = TunnelCompression::new(Some(Algorithm::Lzs), Some(Algorithm::Lz4), 40, 1400);
        assert!(t
            .compress(Channel::Cstp, &text_packet(39))
            .unwrap()
            .is_none());
        assert!(t
            .compress(Channel::Cstp, &text_packet(400))
            .unwrap()
            .is_some());
        let noise = noise(400);
        assert!(t.compress(Channel::Cstp, &noise).unwrap().is_none());
        assert!(t.compress(Channel::Dtls, &noise).unwrap().is_none());
        let none = &mut TunnelCompression::default();
        assert!(none
            .compress(Channel::Cstp, &text_packet(400))
            .unwrap()
            .is_none());
        assert_eq!(
            none.decompress(Channel::Dtls, b"x").unwrap_err(),
            CompressError::NotNegotiated(Channel::Dtls)
        );
    }

    #[test]
    fn packets_are_framed_compressed_or_plain() {
        let mut t = TunnelCompression::new(Some(Algorithm::Lzs), None, 40, 1400);
        let mut buf = vec![0u8; CSTP_HEADER_LEN];
        buf.extend_from_slice(&text_packet(400));
        let frame = t.encode_packet(Channel::Cstp, &mut buf).unwrap().to_vec();
        assert_eq!(frame[..4], *b"STF\x01");
        assert_eq!(frame[6], PacketType::Compressed.code());
        assert_eq!(
            usize::from(u16::from_be_bytes([frame[4], frame[5]])),
            frame.len() - CSTP_HEADER_LEN
        );
        assert!(frame.len() < 200);
        // Nothing negotiated on DTLS: a DATA record, the packet itself after the type byte.
        let record = t.encode_packet(Channel::Dtls, &mut buf).unwrap();
        assert_eq!(record[0], PacketType::Data.code());
        assert_eq!(record[1..], text_packet(400)[..]);
    }

    #[test]
    fn deflate_is_never_used_on_dtls() {
        let t = TunnelCompression::new(Some(Algorithm::Deflate), Some(Algorithm::Deflate), 0, 1400);
        assert_eq!(t.algorithm(Channel::Cstp), Some(Algorithm::Deflate));
        assert_eq!(t.algorithm(Channel::Dtls), None);
    }

    #[test]
    fn decompression_is_bounded() {
        let mut sender = TunnelCompression::new(Some(Algorithm::Lz4), None, 0, 0);
        let big = vec![0u8; 60_000];
        let frame = sender
            .compress(Channel::Cstp, &big)
            .unwrap()
            .unwrap()
            .to_vec();
        let mut receiver = TunnelCompression::new(Some(Algorithm::Lz4), None, 0, 1400);
        assert!(receiver
            .decompress(Channel::Cstp, &frame[CSTP_HEADER_LEN..])
            .is_err());
    }

    proptest! {
        #[test]
        fn every_algorithm_round_trips(
            packets in proptest::collection::vec(proptest::collection::vec(0u8..16, 0..1500), 1..6),
            algorithm in prop_oneof![Just(Algorithm::Lz4), Just(Algorithm::Lzs), Just(Algorithm::Deflate)],
        ) {
            let mut tx = TunnelCompression::new(Some(algorithm), None, 0, 1500);
            let mut rx = TunnelCompression::new(Some(algorithm), None, 0, 1500);
            for packet in packets {
                if let Some(frame) = tx.compress(Channel::Cstp, &packet).unwrap() {
                    let payload = frame[CSTP_HEADER_LEN..].to_vec();
                    prop_assert!(algorithm == Algorithm::Deflate || payload.len() < packet.len());
                    prop_assert_eq!(rx.decompress(Channel::Cstp, &payload).unwrap(), &packet[..]);
                }
            }
        }
    }
}
