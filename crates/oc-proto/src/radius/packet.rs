//! RADIUS packets (RFC 2865 section 3, RFC 2866 section 3): the header, attributes as
//! type-length-value, and the authenticators that tie a packet to the shared secret:
//! the hidden User-Password (RFC 2865 5.2), the Response Authenticator, the Accounting
//! Request Authenticator and Message-Authenticator (RFC 3579 3.2, HMAC-MD5).

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};

use super::RadiusError;

/// The largest packet RFC 2865 allows (and the most we read).
pub const MAX_PACKET: usize = 4096;
const HEADER: usize = 20;
/// The longest User-Password before hiding (RFC 2865 5.2).
pub const MAX_PASSWORD: usize = 128;

/// Packet codes.
pub mod code {
    pub const ACCESS_REQUEST: u8 = 1;
    pub const ACCESS_ACCEPT: u8 = 2;
    pub const ACCESS_REJECT: u8 = 3;
    pub const ACCOUNTING_REQUEST: u8 = 4;
    pub const ACCOUNTING_RESPONSE: u8 = 5;
    pub const ACCESS_CHALLENGE: u8 = 11;
}

/// Attribute types this crate reads or writes.
pub mod attr {
    pub const USER_NAME: u8 = 1;
    pub const USER_PASSWORD: u8 = 2;
    pub const NAS_IP_ADDRESS: u8 = 4;
    pub const SERVICE_TYPE: u8 = 6;
    pub const FRAMED_IP_ADDRESS: u8 = 8;
    pub const FRAMED_IP_NETMASK: u8 = 9;
    pub const REPLY_MESSAGE: u8 = 18;
    pub const FRAMED_ROUTE: u8 = 22;
    pub const STATE: u8 = 24;
    pub const CLASS: u8 = 25;
    pub const VENDOR_SPECIFIC: u8 = 26;
    pub const SESSION_TIMEOUT: u8 = 27;
    pub const IDLE_TIMEOUT: u8 = 28;
    pub const CALLING_STATION_ID: u8 = 31;
    pub const NAS_IDENTIFIER: u8 = 32;
    pub const ACCT_STATUS_TYPE: u8 = 40;
    pub const ACCT_DELAY_TIME: u8 = 41;
    pub const ACCT_INPUT_OCTETS: u8 = 42;
    pub const ACCT_OUTPUT_OCTETS: u8 = 43;
    pub const ACCT_SESSION_ID: u8 = 44;
    pub const ACCT_AUTHENTIC: u8 = 45;
    pub const ACCT_SESSION_TIME: u8 = 46;
    pub const ACCT_INPUT_PACKETS: u8 = 47;
    pub const ACCT_OUTPUT_PACKETS: u8 = 48;
    pub const ACCT_TERMINATE_CAUSE: u8 = 49;
    pub const ACCT_INPUT_GIGAWORDS: u8 = 52;
    pub const ACCT_OUTPUT_GIGAWORDS: u8 = 53;
    pub const NAS_PORT_TYPE: u8 = 61;
    pub const CONNECT_INFO: u8 = 77;
    pub const MESSAGE_AUTHENTICATOR: u8 = 80;
    pub const ACCT_INTERIM_INTERVAL: u8 = 85;
    pub const NAS_IPV6_ADDRESS: u8 = 95;
    pub const FRAMED_IPV6_PREFIX: u8 = 97;
    pub const FRAMED_IPV6_ROUTE: u8 = 99;
    pub const DELEGATED_IPV6_PREFIX: u8 = 123;
    pub const FRAMED_IPV6_ADDRESS: u8 = 168;
    pub const DNS_SERVER_IPV6_ADDRESS: u8 = 169;
}

/// One attribute: its type and value (at most 253 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub kind: u8,
    pub value: Vec<u8>,
}

/// A decoded packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub code: u8,
    pub identifier: u8,
    pub authenticator: [u8; 16],
    pub attributes: Vec<Attribute>,
}

impl Packet {
    /// Reads a packet: the length field must fit the datagram (bytes past it are padding,
    /// RFC 2865 3) and every attribute its own length.
    pub fn decode(datagram: &[u8]) -> Result<Self, RadiusError> {
        if datagram.len() < HEADER {
            return Err(RadiusError::Malformed(format!(
                "{} bytes, shorter than a RADIUS header",
                datagram.len()
            )));
        }
        let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
        if !(HEADER..=MAX_PACKET).contains(&length) || length > datagram.len() {
            return Err(RadiusError::Malformed(format!(
                "length field {length} for a {}-byte datagram",
                datagram.len()
            )));
        }
        let mut authenticator = [0u8; 16];
        authenticator.copy_from_slice(&datagram[4..HEADER]);
        let mut attributes = Vec::new();
        let mut rest = &datagram[HEADER..length];
        while !rest.is_empty() {
            let (kind, len) = match rest {
                [kind, len, ..] => (*kind, usize::from(*len)),
                _ => return Err(RadiusError::Malformed("a truncated attribute".into())),
            };
            if len < 2 || len > rest.len() {
                return Err(RadiusError::Malformed(format!(
                    "attribute {kind} claims {len} bytes, {} left",
                    rest.len()
                )));
            }
            attributes.push(Attribute {
                kind,
                value: rest[2..len].to_vec(),
            });
            rest = &rest[len..];
        }
        Ok(Self {
            code: datagram[0],
            identifier: datagram[1],
            authenticator,
            attributes,
        })
    }

    /// The packet's bytes.
    pub fn encode(&self) -> Result<Vec<u8>, RadiusError> {
        let mut out = vec![self.code, self.identifier, 0, 0];
        out.extend_from_slice(&self.authenticator);
        for a in &self.attributes {
            let len = u8::try_from(a.value.len() + 2)
                .map_err(|_| RadiusError::TooLong(format!("attribute {}", a.kind)))?;
            out.extend_from_slice(&[a.kind, len]);
            out.extend_from_slice(&a.value);
        }
        if out.len() > MAX_PACKET {
            return Err(RadiusError::TooLong(format!("a {}-byte packet", out.len())));
        }
        let len = u16::try_from(out.len()).unwrap_or(u16::MAX).to_be_bytes();
        out[2..4].copy_from_slice(&len);
        Ok(out)
    }

    /// The first value of attribute `kind`.
    pub fn first(&self, kind: u8) -> Option<&[u8]> {
        self.attributes
            .iter()
            .find(|a| a.kind == kind)
            .map(|a| a.value.as_slice())
    }

    /// Every value of attribute `kind`, in order.
    pub fn all(&self, kind: u8) -> impl Iterator<Item = &[u8]> {
        self.attributes
            .iter()
            .filter(move |a| a.kind == kind)
            .map(|a| a.value.as_slice())
    }

    /// The vendor-specific sub-attributes of `vendor`: `(type, value)` pairs.
    pub fn vendor(&self, vendor: u32) -> Vec<(u8, &[u8])> {
        let mut found = Vec::new();
        for value in self.all(attr::VENDOR_SPECIFIC) {
            let Some((id, mut rest)) = value.split_first_chunk::<4>() else {
                continue;
            };
            if u32::from_be_bytes(*id) != vendor {
                continue;
            }
            while let [kind, len, ..] = rest {
                let len = usize::from(*len);
                if len < 2 || len > rest.len() {
                    break;
                }
                found.push((*kind, &rest[2..len]));
                rest = &rest[len..];
            }
        }
        found
    }
}

/// Hides a User-Password (RFC 2865 5.2): padded to 16 bytes, each block XORed with
/// MD5(secret + the previous block), the first with the Request Authenticator.
pub fn hide_password(
    password: &[u8],
    secret: &[u8],
    authenticator: &[u8; 16],
) -> Result<Vec<u8>, RadiusError> {
    if password.len() > MAX_PASSWORD {
        return Err(RadiusError::TooLong(format!(
            "a {}-byte password (RADIUS allows {MAX_PASSWORD})",
            password.len()
        )));
    }
    let padded_len = password.len().div_ceil(16).max(1) * 16;
    let mut out = password.to_vec();
    out.resize(padded_len, 0);
    let mut previous: [u8; 16] = *authenticator;
    for block in out.chunks_mut(16) {
        let mask = Md5::new()
            .chain_update(secret)
            .chain_update(previous)
            .finalize();
        for (b, m) in block.iter_mut().zip(mask.iter()) {
            *b ^= m;
        }
        previous.copy_from_slice(block);
    }
    Ok(out)
}

/// MD5 over the packet with `authenticator` in place of its own, then the secret: the
/// Response Authenticator (with the request's) and the Accounting-Request's (zeros).
fn md5_authenticator(packet: &[u8], authenticator: &[u8; 16], secret: &[u8]) -> [u8; 16] {
    let digest = Md5::new()
        .chain_update(&packet[..4])
        .chain_update(authenticator)
        .chain_update(&packet[HEADER..])
        .chain_update(secret)
        .finalize();
    digest.into()
}

/// Whether a reply's Response Authenticator proves it came from the server holding
/// `secret` in answer to the request whose authenticator was `request_authenticator`.
pub fn response_is_authentic(
    reply: &[u8],
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> bool {
    if reply.len() < HEADER {
        return false;
    }
    let expected = md5_authenticator(reply, request_authenticator, secret);
    constant_time_eq(&expected, &reply[4..HEADER])
}

/// Signs an encoded Accounting-Request in place: its authenticator is MD5 over the packet
/// with 16 zero bytes there, then the secret (RFC 2866 3).
pub fn sign_accounting_request(packet: &mut [u8], secret: &[u8]) {
    if packet.len() < HEADER {
        return;
    }
    let signature = md5_authenticator(packet, &[0; 16], secret);
    packet[4..HEADER].copy_from_slice(&signature);
}

/// Fills the Message-Authenticator attribute of an encoded packet in place: HMAC-MD5
/// keyed by the secret over the packet with that attribute's value zeroed (and, for a
/// reply, `request_authenticator` in the header, RFC 3579 3.2). False when the packet
/// has no such attribute.
pub fn sign_message_authenticator(
    packet: &mut [u8],
    secret: &[u8],
    request_authenticator: Option<&[u8; 16]>,
) -> bool {
    let Some(offset) = message_authenticator_offset(packet) else {
        return false;
    };
    packet[offset..offset + 16].fill(0);
    let mac = message_authenticator(packet, secret, request_authenticator);
    packet[offset..offset + 16].copy_from_slice(&mac);
    true
}

/// Whether a reply's Message-Authenticator is right. `None` when it has none.
pub fn message_authenticator_ok(
    reply: &[u8],
    secret: &[u8],
    request_authenticator: &[u8; 16],
) -> Option<bool> {
    let offset = message_authenticator_offset(reply)?;
    let mut copy = reply.to_vec();
    copy[offset..offset + 16].fill(0);
    let expected = message_authenticator(&copy, secret, Some(request_authenticator));
    Some(constant_time_eq(&expected, &reply[offset..offset + 16]))
}

fn message_authenticator(
    packet: &[u8],
    secret: &[u8],
    request_authenticator: Option<&[u8; 16]>,
) -> [u8; 16] {
    let Ok(mut mac) = <Hmac<Md5> as KeyInit>::new_from_slice(secret) else {
        return [0; 16];
    };
    mac.update(&packet[..4]);
    mac.update(request_authenticator.map_or(&packet[4..HEADER], |a| a.as_slice()));
    mac.update(&packet[HEADER..]);
    mac.finalize().into_bytes().into()
}

/// Where the value of the (first) 18-byte Message-Authenticator attribute starts.
fn message_authenticator_offset(packet: &[u8]) -> Option<usize> {
    let length = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
    let end = length.min(packet.len());
    let mut at = HEADER;
    while at + 2 <= end {
        let (kind, len) = (packet[at], usize::from(packet[at + 1]));
        if len < 2 || at + len > end {
            return None;
        }
        if kind == attr::MESSAGE_AUTHENTICATOR && len == 18 {
            return Some(at + 2);
        }
        at += len;
    }
    None
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
