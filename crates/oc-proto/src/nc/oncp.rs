//! oNCP, Network Connect's tunnel over TLS, as upstream's `oncp.c` reads and writes it,
//! without I/O. Encapsulations within encapsulations:
//!
//! 1. **Records**: a 16-bit little-endian length, then that many bytes. They mean nothing
//!    to the data (a record boundary may fall inside a message), so [`OncpDecoder`]
//!    strips them and reads one byte stream. A record of length 0 followed by one byte
//!    is the server ending the session (1: expired, 8: idle timeout).
//! 2. **KMP messages** in that stream: a 20-byte header (6 zero bytes, the message type
//!    big-endian at 6, 10 bytes upstream does not understand, the payload length
//!    big-endian at 18), then the payload. 300 carries IP packets, 301 the configuration,
//!    302 ESP keys, 303 the client's settings (their TLVs are [`super::config`]'s).
//! 3. **IP packets** in a KMP 300, one after another, each as long as its header says.
//!
//! Servers sometimes put a record holding a whole KMP 300 with a Legacy IP packet in the
//! middle of a message spread over records (the configuration): upstream skips such a
//! record; [`OncpDecoder`] hands its packet out on its own and joins the message around it.
//!
//! The session starts (after `POST /dana/js` got 200) with the client's hostname packet
//! ([`hostname_packet`]), one record that is not KMP. The server answers with a record
//! whose first byte is a status (0: go on; 8: oNCP disabled, Pulse only); the rest of that
//! record and the records after it carry the KMP stream, the configuration first.

use super::NcError;
use crate::ip::{packet_len, PacketLen};

/// KMP message types.
pub const KMP_DATA: u16 = 300;
pub const KMP_CONFIG: u16 = 301;
pub const KMP_ESP_KEYS: u16 = 302;
pub const KMP_CLIENT: u16 = 303;
/// A KMP message's header.
pub const KMP_HEADER_LEN: usize = 20;
/// A record's length prefix.
pub const RECORD_HEADER_LEN: usize = 2;
/// The bytes in front of an IP packet on the wire: record length and KMP 300 header.
pub const DATA_HEADROOM: usize = RECORD_HEADER_LEN + KMP_HEADER_LEN;
/// The longest IP packet one record can carry.
pub const MAX_DATA_PACKET: usize = u16::MAX as usize - KMP_HEADER_LEN;
/// The server's status byte: carry on.
pub const STATUS_OK: u8 = 0;
/// The server's status byte: oNCP is disabled (the server speaks only Pulse).
pub const STATUS_ONCP_DISABLED: u8 = 8;

/// Bytes upstream sends after the message type of its own KMP messages.
const KMP_TAIL_OUT: [u8; 10] = [1, 0, 0, 0, 1, 0, 0, 0, 0, 0];
/// What a server's messages have there.
pub(super) const KMP_TAIL_IN: [u8; 10] = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
const HELLO_HEAD: [u8; 5] = [0x00, 0x04, 0x00, 0x00, 0x00];
const HELLO_TAIL: [u8; 6] = [0xbb, 0x01, 0x00, 0x00, 0x00, 0x00];
/// The longest host name the hello carries (nothing real comes close).
const MAX_HOSTNAME: usize = 1024;

/// A KMP message's header: its type and payload length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KmpHeader {
    pub kind: u16,
    pub len: usize,
}

impl KmpHeader {
    /// Reads a header at the start of `bytes` (at least 20 of them).
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let h = bytes.first_chunk::<KMP_HEADER_LEN>()?;
        Some(Self {
            kind: u16::from_be_bytes([h[6], h[7]]),
            len: usize::from(u16::from_be_bytes([h[18], h[19]])),
        })
    }

    /// The header of a message we send.
    pub fn emit(kind: u16, len: usize) -> Result<[u8; KMP_HEADER_LEN], NcError> {
        let len = u16::try_from(len).map_err(|_| NcError::TooLong(len))?;
        let mut h = [0u8; KMP_HEADER_LEN];
        h[6..8].copy_from_slice(&kind.to_be_bytes());
        h[8..18].copy_from_slice(&KMP_TAIL_OUT);
        h[18..20].copy_from_slice(&len.to_be_bytes());
        Ok(h)
    }
}

/// One KMP message (header and payload).
pub(super) fn message(kind: u16, payload: &[u8]) -> Result<Vec<u8>, NcError> {
    let mut out = KmpHeader::emit(kind, payload.len())?.to_vec();
    out.extend_from_slice(payload);
    Ok(out)
}

/// `body` as one record (its length must fit the 16-bit prefix).
pub(super) fn record(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_HEADER_LEN + body.len());
    out.extend_from_slice(&u16::try_from(body.len()).unwrap_or(u16::MAX).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// The client's first record on the tunnel: its host name.
pub fn hostname_packet(hostname: &str) -> Vec<u8> {
    let name = hostname.as_bytes();
    let name = name.get(..MAX_HOSTNAME).unwrap_or(name);
    let mut body = Vec::with_capacity(HELLO_HEAD.len() + 2 + name.len() + HELLO_TAIL.len());
    body.extend_from_slice(&HELLO_HEAD);
    body.extend_from_slice(&u16::try_from(name.len()).unwrap_or(0).to_le_bytes());
    body.extend_from_slice(name);
    body.extend_from_slice(&HELLO_TAIL);
    record(&body)
}

/// The host name in a client's hello (the body of its first record), if it is one.
pub fn parse_hostname_packet(body: &[u8]) -> Option<String> {
    let rest = body.strip_prefix(&HELLO_HEAD[..])?;
    let (len, rest) = rest.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_le_bytes(*len));
    let name = rest.get(..len)?;
    (rest.get(len..)? == HELLO_TAIL).then(|| String::from_utf8_lossy(name).into_owned())
}

/// A server's answer to the hello, as its own record.
pub fn status_record(status: u8) -> Vec<u8> {
    record(&[status])
}

/// A server's end of the session: a zero-length record and the reason.
pub fn termination(reason: u8) -> [u8; 3] {
    [0, 0, reason]
}

/// Frames the IP packet at `buf[DATA_HEADROOM..]` in place as one record carrying a KMP
/// 300, and returns the whole frame.
pub fn frame_in_place(buf: &mut [u8]) -> Result<&[u8], NcError> {
    let packet_len = buf.len().saturating_sub(DATA_HEADROOM);
    if packet_len > MAX_DATA_PACKET {
        return Err(NcError::TooLong(packet_len));
    }
    let header = KmpHeader::emit(KMP_DATA, packet_len)?;
    let record_len =
        u16::try_from(KMP_HEADER_LEN + packet_len).map_err(|_| NcError::TooLong(packet_len))?;
    let (head, _) = buf
        .split_first_chunk_mut::<DATA_HEADROOM>()
        .ok_or(NcError::TooLong(0))?;
    let (len, kmp) = head.split_at_mut(RECORD_HEADER_LEN);
    len.copy_from_slice(&record_len.to_le_bytes());
    kmp.copy_from_slice(&header);
    Ok(buf)
}

/// One IP packet as a record carrying a KMP 300 message (a copy; the packet path frames
/// in place with [`frame_in_place`]).
pub fn data_record(packet: &[u8]) -> Result<Vec<u8>, NcError> {
    let mut buf = vec![0u8; DATA_HEADROOM];
    buf.extend_from_slice(packet);
    frame_in_place(&mut buf)?;
    Ok(buf)
}

/// Splits a KMP 300 payload into its IP packets.
pub fn data_packets(payload: &[u8]) -> impl Iterator<Item = Result<&[u8], NcError>> {
    let mut rest = payload;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let len = match packet_len(rest) {
            PacketLen::Len(len) => Some(len),
            PacketLen::Incomplete | PacketLen::NotIp => None,
        };
        let Some(len) = len.filter(|l| *l <= rest.len()) else {
            let left = rest.len();
            rest = &[];
            return Some(Err(NcError::BadDataPacket(left)));
        };
        let (packet, after) = rest.split_at(len);
        rest = after;
        Some(Ok(packet))
    })
}

/// The Legacy IP packet of `record` when the whole record is one KMP 300 as servers put
/// them in the middle of another message (upstream's test: zeros around the type, the
/// length the record's, a Legacy IP packet).
fn interjected_packet(record: &[u8]) -> Option<&[u8]> {
    let header = record.first_chunk::<KMP_HEADER_LEN>()?;
    let kmp = KmpHeader::parse(header)?;
    let zeros = header.get(..6)?.iter().chain(header.get(8..18)?);
    let packet = record.get(KMP_HEADER_LEN..)?;
    (kmp.kind == KMP_DATA
        && zeros.into_iter().all(|b| *b == 0)
        && kmp.len == packet.len()
        && packet.first() == Some(&0x45))
    .then_some(packet)
}

/// What the stream carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OncpEvent<'a> {
    /// The client's hello (a server's decoder): the body of the first record.
    Hello(&'a [u8]),
    /// The server's answer to the hello (a client's decoder).
    Status(u8),
    /// An IP packet of a KMP 300.
    Packet(&'a [u8]),
    /// Any other KMP message.
    Message { kind: u16, payload: &'a [u8] },
    /// The server ended the session for this reason; nothing more is read.
    Terminated(u8),
}

/// What the first record of a stream is.
#[derive(Debug)]
enum Opening {
    /// A status byte, then KMP.
    Status,
    /// A hello, collected until the record ends.
    Hello(Vec<u8>),
    Done,
}

/// Reads one direction of an oNCP stream, however it is cut into reads: records stripped,
/// KMP messages and the IP packets of KMP 300s handed out where they lie. It holds at most
/// one incomplete KMP message (64 KiB) beyond the read it is given.
#[derive(Debug)]
pub struct OncpDecoder {
    opening: Opening,
    /// Bytes still to come of the current record.
    remaining: usize,
    /// A length prefix split across reads, or a zero length awaiting its reason byte.
    prefix: Vec<u8>,
    /// The KMP stream not yet handed out.
    stream: Vec<u8>,
    /// A record collected whole because it began in the middle of a message: it may be
    /// a packet the server put there ([`interjected_packet`]).
    record: Option<Vec<u8>>,
    ended: bool,
}

impl OncpDecoder {
    /// A client's decoder: the server's status byte comes first.
    pub fn client() -> Self {
        Self::new(Opening::Status)
    }

    /// A server's decoder: the client's hello comes first.
    pub fn server() -> Self {
        Self::new(Opening::Hello(Vec::new()))
    }

    fn new(opening: Opening) -> Self {
        Self {
            opening,
            remaining: 0,
            prefix: Vec::with_capacity(3),
            stream: Vec::new(),
            record: None,
            ended: false,
        }
    }

    /// Calls `each` for everything complete after `input`, in order, stopping at the first
    /// error (a packet whose length does not fit its message, or the callback's). After an
    /// error, or [`OncpEvent::Terminated`], the stream is over: nothing more is read.
    pub fn decode<E: From<NcError>>(
        &mut self,
        mut input: &[u8],
        mut each: impl FnMut(OncpEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.ended {
            return Ok(());
        }
        while !input.is_empty() {
            if self.remaining == 0 {
                input = self.read_prefix(input);
                if let [0, 0, reason] = self.prefix[..] {
                    self.ended = true;
                    self.hand_out(&mut each)?;
                    return each(OncpEvent::Terminated(reason));
                }
                if self.remaining > 0 && matches!(self.opening, Opening::Done) {
                    self.hand_out(&mut each)?;
                    if !self.stream.is_empty() {
                        self.record = Some(Vec::with_capacity(self.remaining));
                    }
                }
                continue;
            }
            let take = self.remaining.min(input.len());
            let (now, rest) = input.split_at(take);
            self.remaining -= take;
            input = rest;
            match &mut self.opening {
                Opening::Done => {
                    let Some(record) = self.record.as_mut() else {
                        self.stream.extend_from_slice(now);
                        continue;
                    };
                    record.extend_from_slice(now);
                    if self.remaining > 0 {
                        continue;
                    }
                    let record = self.record.take().unwrap_or_default();
                    match interjected_packet(&record) {
                        Some(packet) => self.guard(each(OncpEvent::Packet(packet)))?,
                        None => self.stream.extend_from_slice(&record),
                    }
                }
                Opening::Status => {
                    if let Some((status, more)) = now.split_first() {
                        self.opening = Opening::Done;
                        self.stream.extend_from_slice(more);
                        self.guard(each(OncpEvent::Status(*status)))?;
                    }
                }
                Opening::Hello(hello) => {
                    hello.extend_from_slice(now);
                    if self.remaining == 0 {
                        let hello = std::mem::take(hello);
                        self.opening = Opening::Done;
                        self.guard(each(OncpEvent::Hello(&hello)))?;
                    }
                }
            }
        }
        self.hand_out(&mut each)
    }

    /// Takes what is missing of a record's length prefix from `input`.
    fn read_prefix<'i>(&mut self, input: &'i [u8]) -> &'i [u8] {
        let need = if self.prefix.len() >= 2 { 3 } else { 2 };
        let take = (need - self.prefix.len()).min(input.len());
        let (now, rest) = input.split_at(take);
        self.prefix.extend_from_slice(now);
        if let [lo, hi] = self.prefix[..] {
            let len = usize::from(u16::from_le_bytes([lo, hi]));
            if len > 0 {
                self.remaining = len;
                self.prefix.clear();
            }
        }
        rest
    }

    /// Ends the stream when `result` is an error.
    fn guard<E>(&mut self, result: Result<(), E>) -> Result<(), E> {
        if result.is_err() {
            self.ended = true;
            self.stream = Vec::new();
        }
        result
    }

    /// Hands out every complete KMP message of the stream and keeps the rest.
    fn hand_out<E: From<NcError>>(
        &mut self,
        each: &mut impl FnMut(OncpEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut at = 0;
        let result = loop {
            let Some(header) = self.stream.get(at..).and_then(KmpHeader::parse) else {
                break Ok(());
            };
            let end = at + KMP_HEADER_LEN + header.len;
            let Some(payload) = self.stream.get(at + KMP_HEADER_LEN..end) else {
                break Ok(());
            };
            at = end;
            let handed = if header.kind == KMP_DATA {
                data_packets(payload).try_for_each(|p| each(OncpEvent::Packet(p?)))
            } else {
                each(OncpEvent::Message {
                    kind: header.kind,
                    payload,
                })
            };
            if let Err(e) = handed {
                break Err(e);
            }
        };
        self.stream.drain(..at);
        self.guard(result)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests;
