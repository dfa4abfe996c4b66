//! EAP-TTLS (RFC 5281) as Pulse runs it inside its Juniper/1 EAP when a realm wants a
//! client certificate: the server's request of type 21 with the Start flag opens a TLS
//! connection whose records travel in EAP-TTLS packets (flags: L, the whole message's
//! length follows; M, more fragments follow; S, start; version 0). A message longer than
//! [`MAX_FRAGMENT`] goes in pieces, each acknowledged by an empty packet from the other
//! side. Inside that TLS connection each EAP packet of the login travels in an EAP-Message
//! AVP (code 79): the same Juniper/1 requests and answers as without TTLS.
//!
//! The TLS connection itself is the caller's ([`InnerTls`]); this module frames, cuts and
//! joins. Inside it AVPs go unpadded: upstream sends them so, and takes a server's record
//! only when it is exactly one AVP, which is what Pulse servers send. (Padding could not
//! be told from the zeros that start the next AVP's code in a stream cut anywhere.)

use super::eap::{AVP_EAP_MESSAGE, EAP_TYPE_TTLS};
use super::PulseError;

/// The L flag: the whole message's length (4 bytes) follows the flags.
pub const FLAG_LENGTH: u8 = 0x80;
/// The M flag: more fragments follow.
pub const FLAG_MORE: u8 = 0x40;
/// The S flag: the server starts EAP-TTLS.
pub const FLAG_START: u8 = 0x20;
/// The longest piece of a message in one packet (upstream's).
pub const MAX_FRAGMENT: usize = 8192;
/// The longest message (one TLS flight) reassembled: a certificate chain with room.
pub const MAX_MESSAGE: usize = 256 * 1024;
/// The longest AVP read from inside the TLS connection (an EAP packet's 16-bit length
/// and the AVP header).
const MAX_AVP: usize = 0xffff + 12;

/// A TLS connection that runs over no socket: ciphertext in and out as bytes.
pub trait InnerTls: Send {
    /// Ciphertext from the peer (empty to start the handshake); it moves the handshake on
    /// and decrypts what it can. An error is fatal: the handshake failed, or the peer is
    /// not the one trusted.
    fn receive(&mut self, ciphertext: &[u8]) -> Result<(), String>;
    /// Plaintext for the peer (held until the handshake is done).
    fn send(&mut self, plaintext: &[u8]) -> Result<(), String>;
    /// The ciphertext to send, taken.
    fn take_ciphertext(&mut self) -> Vec<u8>;
    /// The plaintext received, taken.
    fn take_plaintext(&mut self) -> Vec<u8>;
    fn is_established(&self) -> bool;
    /// The common name of the peer's certificate, once established (a server that asked
    /// for a client certificate: the client's).
    fn peer_name(&self) -> Option<String> {
        None
    }
}

/// One EAP-TTLS packet's body (what follows the EAP type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment<'a> {
    pub flags: u8,
    /// The whole message's length, when the L flag says it follows.
    pub total: Option<usize>,
    pub data: &'a [u8],
}

impl<'a> Fragment<'a> {
    /// Reads the body of an EAP-TTLS packet; the version must be 0 and the reserved bits
    /// clear.
    pub fn parse(body: &'a [u8]) -> Result<Self, PulseError> {
        let (&flags, rest) = body
            .split_first()
            .ok_or(PulseError::BadTtls("a packet without its flags"))?;
        if flags & !(FLAG_LENGTH | FLAG_MORE | FLAG_START) != 0 {
            return Err(PulseError::BadTtls(
                "a version other than 0, or reserved bits",
            ));
        }
        if flags & FLAG_LENGTH == 0 {
            return Ok(Self {
                flags,
                total: None,
                data: rest,
            });
        }
        let (length, data) = rest
            .split_first_chunk::<4>()
            .ok_or(PulseError::BadTtls("the L flag without a length"))?;
        let total = usize::try_from(u32::from_be_bytes(*length)).unwrap_or(usize::MAX);
        Ok(Self {
            flags,
            total: Some(total),
            data,
        })
    }

    pub fn is_start(&self) -> bool {
        self.flags & FLAG_START != 0
    }

    /// An acknowledgement of a fragment: no flags, no data.
    pub fn is_ack(&self) -> bool {
        self.flags == 0 && self.data.is_empty()
    }
}

/// The bodies of the EAP-TTLS packets that carry `message`, in pieces of at most `max`
/// bytes: one packet without flags when it fits, else the first with L and M, the middle
/// ones with M, the last with neither.
pub fn fragments(message: &[u8], max: usize) -> Vec<Vec<u8>> {
    let max = max.max(1);
    if message.len() <= max {
        return vec![[&[0u8][..], message].concat()];
    }
    let total = u32::try_from(message.len()).unwrap_or(u32::MAX);
    let pieces: Vec<&[u8]> = message.chunks(max).collect();
    let last = pieces.len() - 1;
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, piece)| {
            let mut body = Vec::with_capacity(piece.len() + 5);
            match i {
                0 => {
                    body.push(FLAG_LENGTH | FLAG_MORE);
                    body.extend_from_slice(&total.to_be_bytes());
                }
                i if i == last => body.push(0),
                _ => body.push(FLAG_MORE),
            }
            body.extend_from_slice(piece);
            body
        })
        .collect()
}

/// An EAP-TTLS packet of `code` (request or response) and `id` around `body`.
pub fn ttls_packet(code: u8, id: u8, body: &[u8]) -> Vec<u8> {
    super::eap::eap(code, id, EAP_TYPE_TTLS, body)
}

/// Joins the fragments of the peer's messages, with RFC 5281's rules: the first of
/// several carries L and the whole length, later ones do not, and the pieces add up to
/// that length exactly.
#[derive(Debug, Default)]
pub struct Reassembly {
    buf: Vec<u8>,
    expected: Option<usize>,
}

impl Reassembly {
    /// The next fragment: the whole message when it is complete, `None` when more must
    /// come (after our acknowledgement).
    pub fn push(&mut self, fragment: Fragment<'_>) -> Result<Option<Vec<u8>>, PulseError> {
        let more = fragment.flags & FLAG_MORE != 0;
        let Some(expected) = self.expected else {
            if !more {
                if fragment.total.is_some_and(|t| t != fragment.data.len()) {
                    return Err(PulseError::BadTtls("a length that is not the packet's"));
                }
                return Ok(Some(fragment.data.to_vec()));
            }
            let total = fragment
                .total
                .ok_or(PulseError::BadTtls("a first fragment without the L flag"))?;
            if total > MAX_MESSAGE {
                return Err(PulseError::BadTtls("a message longer than 256 KiB"));
            }
            if fragment.data.is_empty() || total <= fragment.data.len() {
                return Err(PulseError::BadTtls(
                    "a first fragment that is all or nothing",
                ));
            }
            self.buf = fragment.data.to_vec();
            self.expected = Some(total);
            return Ok(None);
        };
        if fragment.total.is_some() {
            return Err(PulseError::BadTtls("the L flag on a later fragment"));
        }
        let have = self.buf.len() + fragment.data.len();
        if (more && (have >= expected || fragment.data.is_empty())) || (!more && have != expected) {
            return Err(PulseError::BadTtls(
                "fragments that do not add up to the length",
            ));
        }
        self.buf.extend_from_slice(fragment.data);
        if more {
            return Ok(None);
        }
        self.expected = None;
        Ok(Some(std::mem::take(&mut self.buf)))
    }
}

/// An EAP-Message AVP around `eap`, as upstream sends it: flags `flags` (upstream's
/// client 0, servers the M bit), the length, no padding.
pub fn eap_message_avp(eap: &[u8], flags: u8) -> Vec<u8> {
    let len = u32::try_from(8 + eap.len()).unwrap_or(0xff_ffff) & 0xff_ffff;
    let mut out = Vec::with_capacity(8 + eap.len());
    out.extend_from_slice(&AVP_EAP_MESSAGE.to_be_bytes());
    out.extend_from_slice(&(u32::from(flags) << 24 | len).to_be_bytes());
    out.extend_from_slice(eap);
    out
}

/// The EAP packets in EAP-Message AVPs of the plaintext inside the TLS connection,
/// however it is cut. Other AVPs are skipped.
#[derive(Debug, Default)]
pub struct AvpStream {
    buf: Vec<u8>,
}

impl AvpStream {
    pub fn push(&mut self, plaintext: &[u8]) {
        self.buf.extend_from_slice(plaintext);
    }

    /// True when nothing is buffered.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next whole EAP packet, if one is in.
    pub fn next_eap(&mut self) -> Result<Option<Vec<u8>>, PulseError> {
        loop {
            let Some(head) = self.buf.first_chunk::<8>() else {
                return Ok(None);
            };
            let code = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            let vendor = head[4] & 0x80 != 0;
            let len = usize::from(head[5]) << 16 | usize::from(head[6]) << 8 | usize::from(head[7]);
            let header = if vendor { 12 } else { 8 };
            if len < header || len > MAX_AVP {
                return Err(PulseError::BadTtls("an AVP of impossible length"));
            }
            if self.buf.len() < len {
                return Ok(None);
            }
            let data = self.buf.get(header..len).unwrap_or_default().to_vec();
            self.buf.drain(..len);
            if code == AVP_EAP_MESSAGE && !vendor {
                return Ok(Some(data));
            }
        }
    }
}

/// One side of an EAP-TTLS connection: the TLS connection, the fragments of our message
/// that wait for the peer's acknowledgements, the peer's message being joined, and the
/// EAP packets that came out of the TLS connection. The caller wraps each body it is
/// given in an EAP-TTLS packet of its direction (the client's responses, the server's
/// requests) and hands in the body of each of the peer's.
pub struct TtlsLink {
    tls: Box<dyn InnerTls>,
    max_fragment: usize,
    /// Our message's pieces after the one sent, each sent on the peer's acknowledgement.
    outgoing: std::collections::VecDeque<Vec<u8>>,
    incoming: Reassembly,
    avps: AvpStream,
    /// Flags of the EAP-Message AVPs we send (upstream's client 0, servers the M bit).
    avp_flags: u8,
}

impl std::fmt::Debug for TtlsLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtlsLink")
            .field("established", &self.tls.is_established())
            .field("outgoing", &self.outgoing.len())
            .finish()
    }
}

impl TtlsLink {
    pub fn new(tls: Box<dyn InnerTls>, max_fragment: usize, avp_flags: u8) -> Self {
        Self {
            tls,
            max_fragment,
            outgoing: Default::default(),
            incoming: Reassembly::default(),
            avps: AvpStream::default(),
            avp_flags,
        }
    }

    /// The body of the peer's EAP-TTLS packet. `Some` is the body to send back at once:
    /// our next fragment (the peer acknowledged the last), or our acknowledgement of the
    /// peer's fragment. `None`: a whole message went into the TLS connection; send
    /// [`TtlsLink::flush`] (or an EAP packet first) when it is our turn.
    pub fn on_packet(&mut self, body: &[u8]) -> Result<Option<Vec<u8>>, PulseError> {
        let fragment = Fragment::parse(body)?;
        if let Some(next) = self.outgoing.pop_front() {
            if !fragment.is_ack() {
                return Err(PulseError::BadTtls(
                    "something other than an acknowledgement of our fragment",
                ));
            }
            return Ok(Some(next));
        }
        let Some(message) = self.incoming.push(fragment)? else {
            return Ok(Some(vec![0]));
        };
        self.tls.receive(&message).map_err(PulseError::Ttls)?;
        self.avps.push(&self.tls.take_plaintext());
        Ok(None)
    }

    /// The client's first step: its ClientHello, for [`TtlsLink::flush`].
    pub fn start(&mut self) -> Result<(), PulseError> {
        self.tls.receive(&[]).map_err(PulseError::Ttls)
    }

    /// An EAP packet for the peer, inside the TLS connection.
    pub fn send_eap(&mut self, eap: &[u8]) -> Result<(), PulseError> {
        self.tls
            .send(&eap_message_avp(eap, self.avp_flags))
            .map_err(PulseError::Ttls)
    }

    /// The next EAP packet from the peer, once one is whole.
    pub fn next_eap(&mut self) -> Result<Option<Vec<u8>>, PulseError> {
        self.avps.next_eap()
    }

    /// The body of our next packet: what the TLS connection has to send (an empty
    /// message when it has nothing), or its first piece when it is long; the rest go on
    /// the peer's acknowledgements.
    pub fn flush(&mut self) -> Vec<u8> {
        let ciphertext = self.tls.take_ciphertext();
        let mut pieces: std::collections::VecDeque<Vec<u8>> =
            fragments(&ciphertext, self.max_fragment).into();
        let first = pieces.pop_front().unwrap_or_else(|| vec![0]);
        self.outgoing = pieces;
        first
    }

    pub fn is_established(&self) -> bool {
        self.tls.is_established()
    }

    /// The TLS connection (what it learnt of the peer).
    pub fn tls(&self) -> &dyn InnerTls {
        self.tls.as_ref()
    }
}

/// A stand-in for TLS in tests and fuzzing: the "handshake" is `HELLO` answered by
/// `WELCOME`, and then the ciphertext is the plaintext.
#[derive(Debug, Default)]
pub struct PlainTls {
    server: bool,
    established: bool,
    out: Vec<u8>,
    held: Vec<u8>,
    plain: Vec<u8>,
}

impl PlainTls {
    /// The server's end (the client's is the default).
    pub fn server() -> Self {
        Self {
            server: true,
            ..Self::default()
        }
    }
}

impl InnerTls for PlainTls {
    fn receive(&mut self, ciphertext: &[u8]) -> Result<(), String> {
        match (self.established, self.server, ciphertext) {
            (true, _, data) => self.plain.extend_from_slice(data),
            (false, false, b"") => self.out.extend_from_slice(b"HELLO"),
            (false, true, b"HELLO") | (false, false, b"WELCOME") => {
                if self.server {
                    self.out.extend_from_slice(b"WELCOME");
                }
                self.established = true;
                self.out.append(&mut self.held);
            }
            (false, _, other) => return Err(format!("a handshake of {} bytes", other.len())),
        }
        Ok(())
    }

    fn send(&mut self, plaintext: &[u8]) -> Result<(), String> {
        let to = if self.established {
            &mut self.out
        } else {
            &mut self.held
        };
        to.extend_from_slice(plaintext);
        Ok(())
    }

    fn take_ciphertext(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    fn take_plaintext(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.plain)
    }

    fn is_established(&self) -> bool {
        self.established
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(bodies: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, PulseError> {
        let mut joined = Reassembly::default();
        let mut out = Vec::new();
        for body in bodies {
            if let Some(message) = joined.push(Fragment::parse(body)?)? {
                out.push(message);
            }
        }
        Ok(out)
    }

    #[test]
    fn a_short_message_goes_whole_and_a_long_one_in_acknowledged_pieces() {
        assert_eq!(fragments(b"hello", 8192), vec![b"\0hello".to_vec()]);
        let message: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
        let bodies = fragments(&message, MAX_FRAGMENT);
        assert_eq!(bodies.len(), 3);
        assert_eq!(bodies[0][0], FLAG_LENGTH | FLAG_MORE);
        assert_eq!(&bodies[0][1..5], &20_000u32.to_be_bytes());
        assert_eq!(bodies[1][0], FLAG_MORE);
        assert_eq!(bodies[2][0], 0);
        assert_eq!(parse_all(&bodies).unwrap(), vec![message]);
    }

    #[test]
    fn fragments_that_lie_are_refused() {
        let message = vec![7u8; 100];
        let mut bodies = fragments(&message, 40);
        // The last piece is one byte short of the announced length.
        bodies[2].pop();
        assert!(parse_all(&bodies).is_err());
        // A later fragment with L.
        let mut bodies = fragments(&message, 40);
        bodies[1] = [&[FLAG_LENGTH | FLAG_MORE, 0, 0, 0, 100][..], &[7; 40]].concat();
        assert!(parse_all(&bodies).is_err());
        // A first fragment without L, one beyond the limit, one that is the whole.
        assert!(parse_all(&[vec![FLAG_MORE, 1, 2]]).is_err());
        assert!(parse_all(&[vec![FLAG_LENGTH | FLAG_MORE, 0x10, 0, 0, 0, 1]]).is_err());
        assert!(parse_all(&[vec![FLAG_LENGTH | FLAG_MORE, 0, 0, 0, 2, 1, 2]]).is_err());
        // Version 1, and a length of an unfragmented packet that is not its size.
        assert!(parse_all(&[vec![1, 2]]).is_err());
        assert!(parse_all(&[vec![FLAG_LENGTH, 0, 0, 0, 9, 1]]).is_err());
        assert!(Fragment::parse(&[]).is_err());
        assert!(Fragment::parse(&[FLAG_LENGTH, 0, 0]).is_err());
    }

    #[test]
    fn start_and_acknowledgements_are_told_apart() {
        let start = Fragment::parse(&[FLAG_START]).unwrap();
        assert!(start.is_start() && !start.is_ack());
        assert!(Fragment::parse(&[0]).unwrap().is_ack());
        assert!(!Fragment::parse(&[0, 1]).unwrap().is_ack());
    }

    #[test]
    fn eap_messages_come_out_of_the_stream_however_it_is_cut() {
        let first = eap_message_avp(b"\x01\x02\x00\x07\x01ab", 0);
        let second = eap_message_avp(b"\x01\x03\x00\x05\x01", 0x40);
        // A Juniper AVP between them is skipped.
        let mut other = Vec::new();
        super::super::eap::push_avp(&mut other, 0xd5e, b"Linux!!!");
        let stream = [first.clone(), other, second.clone()].concat();
        for cut in 1..stream.len() {
            let mut avps = AvpStream::default();
            let mut got = Vec::new();
            for piece in stream.chunks(cut) {
                avps.push(piece);
                while let Some(eap) = avps.next_eap().unwrap() {
                    got.push(eap);
                }
            }
            assert_eq!(
                got,
                vec![first[8..].to_vec(), second[8..].to_vec()],
                "{cut}"
            );
            assert!(avps.is_empty());
        }
    }

    #[test]
    fn impossible_lengths_are_refused() {
        let mut bad = AvpStream::default();
        bad.push(&[0, 0, 0, 79, 0, 0, 0, 4]);
        assert!(bad.next_eap().is_err());
        let mut huge = AvpStream::default();
        huge.push(&[0, 0, 0, 79, 0, 0xff, 0xff, 0xff]);
        assert!(huge.next_eap().is_err());
    }
}
