//! oNCP, Network Connect's tunnel over TLS, as upstream's `oncp.c` reads and writes it,
//! without I/O. Encapsulations within encapsulations:
//!
//! 1. **Records**: a 16-bit little-endian length, then that many bytes. They mean nothing
//!    to the data (a record boundary may fall inside a message), so [`RecordReader`]
//!    strips them and hands on one byte stream. A record of length 0 followed by one byte
//!    is the server ending the session (1: expired, 8: idle timeout).
//! 2. **KMP messages** in that stream: a 20-byte header (6 zero bytes, the message type
//!    big-endian at 6, 10 bytes upstream does not understand, the payload length
//!    big-endian at 18), then the payload. 300 carries IP packets, 301 the configuration,
//!    302 ESP keys, 303 the client's settings.
//! 3. **TLVs** in 301/302/303: groups (16-bit id, 32-bit length) of attributes (16-bit
//!    id, 32-bit length, value), all big-endian.
//! 4. **IP packets** in a KMP 300, one after another, each as long as its header says.
//!
//! The session starts (after `POST /dana/js` got 200) with the client's hostname packet
//! ([`hostname_packet`]); the server answers with a record whose first byte is a status
//! (0: go on; 8: oNCP disabled, Pulse only), and the rest of that record and the records
//! after it carry KMP 301 ([`NcConfig::parse`]). The client answers with KMP 303 (its MTU)
//! and, with ESP, KMP 302 (the keys it receives with) in one record
//! ([`client_settings`]); [`esp_control`] turns ESP on or off.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::NcError;
use crate::esp::{EspEncryption, EspIntegrity, EspKeys, EspSuite};
use crate::ip_config::IpConfig;

/// KMP message types.
pub const KMP_DATA: u16 = 300;
pub const KMP_CONFIG: u16 = 301;
pub const KMP_ESP_KEYS: u16 = 302;
pub const KMP_CLIENT: u16 = 303;
/// A KMP message's header.
pub const KMP_HEADER_LEN: usize = 20;
/// A record's length prefix.
pub const RECORD_HEADER_LEN: usize = 2;
/// The bytes in front of an IP packet that the client sends: record length and KMP 300
/// header.
pub const DATA_HEADROOM: usize = RECORD_HEADER_LEN + KMP_HEADER_LEN;
/// ESP secrets come as one block: the encryption key, then the HMAC key.
pub const ESP_SECRETS_LEN: usize = 0x40;
/// Name servers and WINS servers kept from one configuration.
const MAX_NAME_SERVERS: usize = 3;
/// Routes read from one configuration at most.
const MAX_ROUTES: usize = 1024;

/// Bytes upstream sends after the message type of its own KMP messages.
const KMP_TAIL_OUT: [u8; 10] = [1, 0, 0, 0, 1, 0, 0, 0, 0, 0];
/// What the server's configuration has there (upstream checks it).
const KMP_TAIL_IN: [u8; 10] = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
const AUTH_HEAD: [u8; 5] = [0x00, 0x04, 0x00, 0x00, 0x00];
const AUTH_TAIL: [u8; 6] = [0xbb, 0x01, 0x00, 0x00, 0x00, 0x00];

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

/// The client's first record on the tunnel: its host name.
pub fn hostname_packet(hostname: &str) -> Vec<u8> {
    // A host name longer than a record can hold is cut (nothing real comes close).
    let name = hostname.as_bytes();
    let name = name.get(..1024).unwrap_or(name);
    let mut body = Vec::with_capacity(AUTH_HEAD.len() + 2 + name.len() + AUTH_TAIL.len());
    body.extend_from_slice(&AUTH_HEAD);
    body.extend_from_slice(&u16::try_from(name.len()).unwrap_or(0).to_le_bytes());
    body.extend_from_slice(name);
    body.extend_from_slice(&AUTH_TAIL);
    record(&body)
}

/// `body` as one record.
fn record(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_HEADER_LEN + body.len());
    out.extend_from_slice(&u16::try_from(body.len()).unwrap_or(u16::MAX).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// What the record stream gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordEvent {
    /// The server ended the session (a zero-length record and this reason).
    Terminated(u8),
}

/// Strips the records' length prefixes from the TLS byte stream, keeping the bytes they
/// carry in one buffer for [`KmpReader`]-style reading. Bounded: at most one KMP message
/// and a record are held.
#[derive(Debug, Default)]
pub struct RecordReader {
    /// Bytes still to come of the current record.
    remaining: usize,
    /// A length prefix split across reads, or a zero length awaiting its reason byte.
    prefix: Vec<u8>,
}

impl RecordReader {
    /// Moves the payload bytes of `input` to `out`.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Option<RecordEvent>, NcError> {
        while !input.is_empty() {
            if self.remaining > 0 {
                let take = self.remaining.min(input.len());
                let (now, rest) = input.split_at(take);
                out.extend_from_slice(now);
                self.remaining -= take;
                input = rest;
                continue;
            }
            let need = if self.prefix.len() >= 2 { 3 } else { 2 };
            let take = (need - self.prefix.len()).min(input.len());
            let (now, rest) = input.split_at(take);
            self.prefix.extend_from_slice(now);
            input = rest;
            match self.prefix.as_slice() {
                [lo, hi] => {
                    let len = usize::from(u16::from_le_bytes([*lo, *hi]));
                    if len > 0 {
                        self.remaining = len;
                        self.prefix.clear();
                    }
                }
                [0, 0, reason] => return Ok(Some(RecordEvent::Terminated(*reason))),
                _ => {}
            }
        }
        Ok(None)
    }
}

/// One KMP message taken from the byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmpMessage {
    pub kind: u16,
    pub payload: Vec<u8>,
}

/// Takes the next complete KMP message off the front of `stream`, if it is all there.
pub fn next_message(stream: &mut Vec<u8>) -> Option<KmpMessage> {
    let header = KmpHeader::parse(stream)?;
    let end = KMP_HEADER_LEN + header.len;
    if stream.len() < end {
        return None;
    }
    let payload = stream.get(KMP_HEADER_LEN..end)?.to_vec();
    stream.drain(..end);
    Some(KmpMessage {
        kind: header.kind,
        payload,
    })
}

/// Splits a KMP 300 payload into its IP packets (each as long as its IP header says).
pub fn data_packets(payload: &[u8]) -> Result<Vec<&[u8]>, NcError> {
    let mut packets = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        let len = match rest.first().map(|b| b >> 4) {
            Some(4) => rest
                .get(2..4)
                .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]]))),
            Some(6) => rest
                .get(4..6)
                .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])) + 40),
            _ => None,
        };
        let Some(len) = len.filter(|l| *l > 0 && *l <= rest.len()) else {
            return Err(NcError::BadDataPacket(rest.len()));
        };
        let (packet, after) = rest.split_at(len);
        packets.push(packet);
        rest = after;
    }
    Ok(packets)
}

/// One IP packet as a record carrying a KMP 300 message.
pub fn data_record(packet: &[u8]) -> Result<Vec<u8>, NcError> {
    let mut out = Vec::with_capacity(DATA_HEADROOM + packet.len());
    let body_len = KMP_HEADER_LEN + packet.len();
    let record_len = u16::try_from(body_len).map_err(|_| NcError::TooLong(packet.len()))?;
    out.extend_from_slice(&record_len.to_le_bytes());
    out.extend_from_slice(&KmpHeader::emit(KMP_DATA, packet.len())?);
    out.extend_from_slice(packet);
    Ok(out)
}

/// The ESP parameters of a configuration (group 8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EspParams {
    pub encryption: Option<EspEncryption>,
    pub integrity: Option<EspIntegrity>,
    /// LZO compression of ESP payloads (next header 5).
    pub compression: bool,
    pub port: Option<u16>,
    pub lifetime_bytes: Option<u32>,
    pub lifetime_seconds: Option<u32>,
    /// Seconds without ESP before falling back to TLS.
    pub ssl_fallback: Option<u32>,
    pub replay_protection: Option<bool>,
}

impl EspParams {
    pub fn suite(&self) -> Option<EspSuite> {
        Some(EspSuite::new(self.encryption?, self.integrity?))
    }
}

/// What a KMP 301 (or 302) says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NcConfig {
    /// Address, netmask, DNS, search domain, WINS, split routes, MTU.
    pub ip: IpConfig,
    pub esp: EspParams,
    /// The server's outbound SPI and its 64 bytes of secrets (group 7): the keys we
    /// send with once the suite is known.
    pub outbound: Option<(u32, Vec<u8>)>,
    /// Attributes upstream does not know, for the log: (group, attribute, length).
    pub unknown: Vec<(u16, u16, usize)>,
}

impl NcConfig {
    /// Reads the TLV groups of a KMP 301 or 302 payload. A 302 may hold only ESP groups
    /// (7 and 8), as upstream insists.
    pub fn parse(kind: u16, payload: &[u8]) -> Result<Self, NcError> {
        let mut config = Self::default();
        let mut groups = payload;
        while !groups.is_empty() {
            let (group, body, rest) = tlv(groups)?;
            if kind == KMP_ESP_KEYS && group != 7 && group != 8 {
                return Err(NcError::NonEspGroup(group));
            }
            let mut attrs = body;
            while !attrs.is_empty() {
                let (attr, value, more) = tlv(attrs)?;
                config.attribute(group, attr, value)?;
                attrs = more;
            }
            groups = rest;
        }
        Ok(config)
    }

    fn attribute(&mut self, group: u16, attr: u16, v: &[u8]) -> Result<(), NcError> {
        let ip = &mut self.ip;
        let bad = || NcError::BadAttribute {
            group,
            attr,
            len: v.len(),
        };
        let addr = || {
            v.first_chunk::<4>()
                .filter(|_| v.len() == 4)
                .map(|a| Ipv4Addr::from(*a))
        };
        let be32 = || {
            v.first_chunk::<4>()
                .filter(|_| v.len() == 4)
                .map(|a| u32::from_be_bytes(*a))
        };
        let byte = || v.first().copied().filter(|_| v.len() == 1);
        match (group, attr) {
            (6, 2) => ip.mtu = be32().ok_or_else(bad)?.try_into().unwrap_or(0),
            (2, 1) => {
                let a = addr().ok_or_else(bad)?;
                if ip.dns.len() < MAX_NAME_SERVERS {
                    ip.dns.push(a.into());
                }
            }
            (2, 2) => ip.default_domain = Some(String::from_utf8_lossy(v).into_owned()),
            (1, 1) => ip.ipv4 = Some(addr().ok_or_else(bad)?),
            (1, 2) => ip.ipv4_netmask = Some(addr().ok_or_else(bad)?),
            // The internal gateway address: meaningless on a tunnel (upstream keeps it
            // unused).
            (1, 3) => {
                addr().ok_or_else(bad)?;
            }
            (3, 3) | (3, 4) => {
                let (net, mask) = v
                    .split_first_chunk::<4>()
                    .filter(|_| v.len() == 8)
                    .ok_or_else(bad)?;
                let mask: [u8; 4] = mask.try_into().map_err(|_| bad())?;
                let prefix = u32::from_be_bytes(mask).leading_ones();
                let route = Ipv4Net::new(Ipv4Addr::from(*net), u8::try_from(prefix).unwrap_or(32))
                    .map_err(|_| bad())?
                    .trunc();
                let list = if attr == 3 {
                    &mut ip.split_include4
                } else {
                    &mut ip.split_exclude4
                };
                if list.len() < MAX_ROUTES {
                    list.push(route);
                }
            }
            (4, 1) => {
                let a = addr().ok_or_else(bad)?;
                if ip.nbns.len() < MAX_NAME_SERVERS {
                    ip.nbns.push(a.into());
                }
            }
            (8, 1) => {
                self.esp.encryption =
                    EspEncryption::from_juniper_code(byte().ok_or_else(bad)?.into())
            }
            (8, 2) => {
                self.esp.integrity = EspIntegrity::from_juniper_code(byte().ok_or_else(bad)?.into())
            }
            (8, 3) => self.esp.compression = byte().ok_or_else(bad)? != 0,
            (8, 4) => {
                let port = v
                    .first_chunk::<2>()
                    .filter(|_| v.len() == 2)
                    .ok_or_else(bad)?;
                self.esp.port = Some(u16::from_be_bytes(*port));
            }
            (8, 5) => self.esp.lifetime_bytes = Some(be32().ok_or_else(bad)?),
            (8, 6) => self.esp.lifetime_seconds = Some(be32().ok_or_else(bad)?),
            (8, 9) => self.esp.ssl_fallback = Some(be32().ok_or_else(bad)?),
            (8, 10) => self.esp.replay_protection = Some(be32().ok_or_else(bad)? != 0),
            (7, 1) => {
                let spi = be32().ok_or_else(bad)?;
                let secrets = self.outbound.take().map(|(_, s)| s).unwrap_or_default();
                self.outbound = Some((spi, secrets));
            }
            (7, 2) => {
                if v.len() != ESP_SECRETS_LEN {
                    return Err(bad());
                }
                let spi = self.outbound.take().map_or(0, |(spi, _)| spi);
                self.outbound = Some((spi, v.to_vec()));
            }
            _ => {
                if self.unknown.len() < 64 {
                    self.unknown.push((group, attr, v.len()));
                }
            }
        }
        Ok(())
    }

    /// The keys we send with: the server's SPI, its secrets split by the suite's key
    /// lengths (the encryption key first).
    pub fn outbound_keys(&self) -> Result<Option<EspKeys>, NcError> {
        let (Some((spi, secrets)), Some(suite)) = (&self.outbound, self.esp.suite()) else {
            return Ok(None);
        };
        split_secrets(*spi, suite, secrets).map(Some)
    }
}

/// One direction's keys from a 64-byte secrets block.
pub fn split_secrets(spi: u32, suite: EspSuite, secrets: &[u8]) -> Result<EspKeys, NcError> {
    let enc_len = suite.encryption.key_len();
    let mac_len = suite.integrity.standard_key_len();
    let enc = secrets.get(..enc_len).ok_or(NcError::ShortSecrets)?;
    let mac = secrets
        .get(enc_len..enc_len + mac_len)
        .ok_or(NcError::ShortSecrets)?;
    EspKeys::new(spi, suite, enc, mac).map_err(|e| NcError::Keys(e.to_string()))
}

/// A TLV: its id, value and what follows it.
fn tlv(bytes: &[u8]) -> Result<(u16, &[u8], &[u8]), NcError> {
    let (head, rest) = bytes
        .split_first_chunk::<6>()
        .ok_or(NcError::Truncated(bytes.len()))?;
    let id = u16::from_be_bytes([head[0], head[1]]);
    let len = usize::try_from(u32::from_be_bytes([head[2], head[3], head[4], head[5]]))
        .map_err(|_| NcError::Truncated(bytes.len()))?;
    if len > rest.len() {
        return Err(NcError::Truncated(bytes.len()));
    }
    let (value, after) = rest.split_at(len);
    Ok((id, value, after))
}

fn push_tlv(out: &mut Vec<u8>, id: u16, value: &[u8]) {
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&u32::try_from(value.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(value);
}

/// One KMP message (header and payload).
fn message(kind: u16, payload: &[u8]) -> Result<Vec<u8>, NcError> {
    let mut out = KmpHeader::emit(kind, payload.len())?.to_vec();
    out.extend_from_slice(payload);
    Ok(out)
}

/// The client's answer to the configuration, as one record: KMP 303 with its MTU and,
/// when it wants ESP, KMP 302 with the SPI and secrets the server is to send with.
pub fn client_settings(
    mtu: u16,
    inbound: Option<(u32, &[u8; ESP_SECRETS_LEN])>,
) -> Result<Vec<u8>, NcError> {
    let mut group = Vec::new();
    push_tlv(&mut group, 2, &u32::from(mtu).to_be_bytes());
    let mut settings = Vec::new();
    push_tlv(&mut settings, 6, &group);
    let mut body = message(KMP_CLIENT, &settings)?;
    if let Some((spi, secrets)) = inbound {
        body.extend_from_slice(&esp_keys_message(spi, secrets)?);
    }
    Ok(record(&body))
}

/// KMP 302: the SPI and secrets the other side is to send with.
pub fn esp_keys_message(spi: u32, secrets: &[u8; ESP_SECRETS_LEN]) -> Result<Vec<u8>, NcError> {
    let mut group = Vec::new();
    push_tlv(&mut group, 1, &spi.to_be_bytes());
    push_tlv(&mut group, 2, secrets);
    let mut payload = Vec::new();
    push_tlv(&mut payload, 7, &group);
    message(KMP_ESP_KEYS, &payload)
}

/// KMP 303 turning ESP on (the probes answered) or off, as one record.
pub fn esp_control(enable: bool) -> Result<Vec<u8>, NcError> {
    let mut group = Vec::new();
    push_tlv(&mut group, 1, &[u8::from(enable)]);
    let mut payload = Vec::new();
    push_tlv(&mut payload, 6, &group);
    Ok(record(&message(KMP_CLIENT, &payload)?))
}

/// Whether a configuration message's header is the one upstream accepts (zero head, the
/// known tail).
pub fn is_config_header(bytes: &[u8]) -> bool {
    bytes.get(..6).is_some_and(|h| h.iter().all(|b| *b == 0))
        && bytes.get(8..18) == Some(&KMP_TAIL_IN[..])
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests;
