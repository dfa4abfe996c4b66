//! MS-KKDCP, the Kerberos KDC proxy over HTTPS (ocserv's `kkdcp` option), without I/O:
//! the `KDC-PROXY-MESSAGE` a client posts (DER: a SEQUENCE of `[0] kerb-message OCTET
//! STRING`, `[1] target-domain` and `[2] dclocator-hint`, both optional), the Kerberos
//! message inside it (framed as on TCP: a 4-byte big-endian length first), what goes to a
//! KDC over UDP (the bare message) and the reply wrapped back. Also the `kkdcp` config
//! value, `PATH REALM udp|tcp@ADDRESS:PORT`.

use std::net::{IpAddr, SocketAddr};

use thiserror::Error;

/// The largest Kerberos message relayed either way (a UDP datagram's worth, as ocserv).
pub const MAX_MESSAGE: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KkdcpError {
    #[error("KDC-PROXY-MESSAGE malformed: {0}")]
    Malformed(&'static str),
    #[error("Kerberos message of {0} bytes is over the {MAX_MESSAGE}-byte limit")]
    TooLong(usize),
}

/// What a client posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyMessage {
    /// The Kerberos message with its 4-byte length prefix.
    pub kerb_message: Vec<u8>,
    /// The realm the client asks for, when it names one.
    pub target_domain: Option<String>,
}

/// One DER element: its tag byte and contents; the rest of the input after it.
fn element(input: &[u8]) -> Result<(u8, &[u8], &[u8]), KkdcpError> {
    let bad = KkdcpError::Malformed;
    let (&tag, rest) = input.split_first().ok_or(bad("truncated element"))?;
    if tag & 0x1f == 0x1f {
        return Err(bad("multi-byte tags are not used here"));
    }
    let (&first, rest) = rest.split_first().ok_or(bad("no length"))?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 3 {
            return Err(bad("indefinite or oversized length"));
        }
        let bytes = rest.get(..count).ok_or(bad("truncated length"))?;
        if bytes.first() == Some(&0) {
            return Err(bad("non-minimal length"));
        }
        let len = bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b));
        if len < 0x80 {
            return Err(bad("non-minimal length"));
        }
        (len, &rest[count..])
    };
    if len > rest.len() {
        return Err(bad("element longer than the message"));
    }
    let (contents, after) = rest.split_at(len);
    Ok((tag, contents, after))
}

fn push_element(out: &mut Vec<u8>, tag: u8, contents: &[u8]) {
    out.push(tag);
    let len = contents.len();
    match len {
        0..=0x7f => out.push(len as u8),
        0x80..=0xff => out.extend([0x81, len as u8]),
        0x100..=0xffff => out.extend([0x82, (len >> 8) as u8, len as u8]),
        _ => out.extend([0x83, (len >> 16) as u8, (len >> 8) as u8, len as u8]),
    }
    out.extend_from_slice(contents);
}

const SEQUENCE: u8 = 0x30;
const OCTET_STRING: u8 = 0x04;
const GENERAL_STRING: u8 = 0x1b;
const INTEGER: u8 = 0x02;
/// `[n]` EXPLICIT, constructed.
const fn context(n: u8) -> u8 {
    0xa0 | n
}

impl ProxyMessage {
    /// Reads a posted body.
    pub fn decode(der: &[u8]) -> Result<Self, KkdcpError> {
        let bad = KkdcpError::Malformed;
        let (tag, mut fields, rest) = element(der)?;
        if tag != SEQUENCE || !rest.is_empty() {
            return Err(bad("not one SEQUENCE"));
        }
        let (tag, message, after) = element(fields)?;
        if tag != context(0) {
            return Err(bad("no kerb-message"));
        }
        let (tag, kerb_message, inner_rest) = element(message)?;
        if tag != OCTET_STRING || !inner_rest.is_empty() {
            return Err(bad("kerb-message is not an OCTET STRING"));
        }
        fields = after;
        let mut target_domain = None;
        if let Ok((tag, domain, after)) = element(fields) {
            if tag == context(1) {
                let (tag, name, inner_rest) = element(domain)?;
                if tag != GENERAL_STRING || !inner_rest.is_empty() {
                    return Err(bad("target-domain is not a GeneralString"));
                }
                let name = std::str::from_utf8(name)
                    .ok()
                    .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic()))
                    .ok_or(bad("target-domain is not a realm name"))?;
                target_domain = Some(name.to_owned());
                fields = after;
            }
        }
        if let Ok((tag, hint, after)) = element(fields) {
            if tag == context(2) && element(hint)?.0 == INTEGER {
                fields = after;
            }
        }
        if !fields.is_empty() {
            return Err(bad("unexpected fields after the message"));
        }
        check_framed(kerb_message)?;
        Ok(Self {
            kerb_message: kerb_message.to_vec(),
            target_domain,
        })
    }

    /// The reply to send back: `kerb_message` (framed) wrapped, as ocserv sends it (no
    /// realm, no hint).
    pub fn encode_reply(kerb_message: &[u8]) -> Vec<u8> {
        let mut octets = Vec::with_capacity(kerb_message.len() + 4);
        push_element(&mut octets, OCTET_STRING, kerb_message);
        let mut field = Vec::with_capacity(octets.len() + 4);
        push_element(&mut field, context(0), &octets);
        let mut out = Vec::with_capacity(field.len() + 4);
        push_element(&mut out, SEQUENCE, &field);
        out
    }

    /// The message for a KDC over UDP: without the length prefix.
    pub fn udp_payload(&self) -> &[u8] {
        self.kerb_message.get(4..).unwrap_or_default()
    }
}

/// A 4-byte length that matches what follows it, within the limit.
fn check_framed(message: &[u8]) -> Result<(), KkdcpError> {
    let Some((len, body)) = message.split_first_chunk::<4>() else {
        return Err(KkdcpError::Malformed("kerb-message has no length prefix"));
    };
    let len = u32::from_be_bytes(*len) as usize;
    if len > MAX_MESSAGE {
        return Err(KkdcpError::TooLong(len));
    }
    if len != body.len() || len == 0 {
        return Err(KkdcpError::Malformed(
            "kerb-message's length prefix does not match it",
        ));
    }
    Ok(())
}

/// A KDC's UDP reply, framed as the client expects it (the length first).
pub fn frame_udp_reply(reply: &[u8]) -> Result<Vec<u8>, KkdcpError> {
    if reply.is_empty() || reply.len() > MAX_MESSAGE {
        return Err(KkdcpError::TooLong(reply.len()));
    }
    let mut out = Vec::with_capacity(reply.len() + 4);
    out.extend_from_slice(&(reply.len() as u32).to_be_bytes());
    out.extend_from_slice(reply);
    Ok(out)
}

/// How the server reaches a KDC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KdcTransport {
    Udp,
    Tcp,
}

/// One `kkdcp` line: requests posted to `path` for `realm` go to `kdc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KdcRoute {
    pub path: String,
    pub realm: String,
    pub transport: KdcTransport,
    pub kdc: SocketAddr,
}

/// Parses `PATH REALM udp|tcp@ADDRESS:PORT` (an IPv6 address in brackets).
pub fn parse_route(value: &str) -> Result<KdcRoute, String> {
    let mut words = value.split_whitespace();
    let (Some(path), Some(realm), Some(server), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(format!(
            "expected \"PATH REALM udp|tcp@ADDRESS:PORT\", got {value:?}"
        ));
    };
    if !path.starts_with('/') {
        return Err(format!("the path {path:?} must start with /"));
    }
    let (transport, address) = if let Some(a) = server.strip_prefix("udp@") {
        (KdcTransport::Udp, a)
    } else if let Some(a) = server.strip_prefix("tcp@") {
        (KdcTransport::Tcp, a)
    } else {
        return Err(format!(
            "{server:?}: the KDC must be udp@ADDRESS:PORT or tcp@ADDRESS:PORT"
        ));
    };
    let kdc = address.parse::<SocketAddr>().or_else(|_| {
        let (host, port) = address.rsplit_once(':').ok_or("no port")?;
        let ip = host.parse::<IpAddr>().map_err(|_| "not an IP address")?;
        let port = port.parse::<u16>().map_err(|_| "bad port")?;
        Ok::<_, &str>(SocketAddr::new(ip, port))
    });
    let kdc = kdc.map_err(|why| {
        format!("{address:?}: {why}; the KDC is given as an IP address and port (no names)")
    })?;
    if kdc.port() == 0 {
        return Err(format!("{address:?}: port 0"));
    }
    Ok(KdcRoute {
        path: path.to_owned(),
        realm: realm.to_owned(),
        transport,
        kdc,
    })
}

#[cfg(test)]
mod tests;
