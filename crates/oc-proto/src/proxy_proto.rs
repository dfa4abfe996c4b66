//! The PROXY protocol header (HAProxy's v1 text and v2 binary forms) that a load balancer
//! sends before the client's first byte, naming the client's and the balancer's addresses.
//!
//! The server reads it with [`parse`] one step at a time: each call says how many bytes the
//! buffer must hold before the next call can decide more ([`Parse::Incomplete`]), so the
//! caller never reads past the header into the TLS handshake that follows it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature: the first 12 bytes of every v2 header.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest v1 line the specification allows, CR LF included.
pub const MAX_V1_LEN: usize = 107;
/// The most address and TLV bytes we accept after a v2 header's first 16 bytes. The
/// specification allows 65,535; balancers send at most a few hundred (addresses plus
/// TLVs such as the authority or unique id).
pub const MAX_V2_PAYLOAD: usize = 4096;
const V2_FIXED_LEN: usize = 16;

/// What a header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// 1 or 2.
    pub version: u8,
    /// The client's and the balancer's addresses, or `None` when the header carries none
    /// that apply (a v2 `LOCAL` health check, v1 `UNKNOWN`, or a family other than IPv4
    /// and IPv6): the connection's own addresses are then used, as the specification says.
    pub addresses: Option<ProxiedAddrs>,
}

/// The addresses of a proxied TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxiedAddrs {
    /// The client, as the balancer saw it.
    pub source: SocketAddr,
    /// The address the client connected to, on the balancer.
    pub destination: SocketAddr,
}

/// One step of [`parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse {
    /// Call again once the buffer holds `need` bytes (always more than it holds now).
    Incomplete { need: usize },
    /// The header, which was the buffer's first `len` bytes; what follows is the client's.
    Complete { header: ProxyHeader, len: usize },
}

/// Why a header was refused; the connection should be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("the connection does not start with a PROXY protocol header (first bytes {0:02x?})")]
    NotProxy(Vec<u8>),
    #[error("PROXY v1 line longer than {MAX_V1_LEN} bytes")]
    V1TooLong,
    #[error("PROXY v1 line: {0}")]
    V1Syntax(&'static str),
    #[error("PROXY v2 header of unsupported version {0}")]
    V2Version(u8),
    #[error("PROXY v2 header with unknown command {0:#x}")]
    V2Command(u8),
    #[error("PROXY v2 header with unknown address family/transport byte {0:#04x}")]
    V2Family(u8),
    #[error("PROXY v2 header says {len} address bytes, too few for its address family")]
    V2Short { len: usize },
    #[error("PROXY v2 header of {0} bytes after the fixed part (at most {MAX_V2_PAYLOAD})")]
    V2TooLong(usize),
}

/// Reads the header at the start of `buf` as far as `buf` goes.
pub fn parse(buf: &[u8]) -> Result<Parse, ProxyError> {
    let start = &buf[..buf.len().min(V1_PREFIX.len())];
    if start.len() < V1_PREFIX.len() {
        if !V1_PREFIX.starts_with(start) && !V2_SIGNATURE.starts_with(start) {
            return Err(ProxyError::NotProxy(start.to_vec()));
        }
        return Ok(Parse::Incomplete {
            need: V1_PREFIX.len(),
        });
    }
    if start == V1_PREFIX {
        return parse_v1(buf);
    }
    let signature = &buf[..buf.len().min(V2_SIGNATURE.len())];
    if !V2_SIGNATURE.starts_with(signature) {
        return Err(ProxyError::NotProxy(signature.to_vec()));
    }
    parse_v2(buf)
}

fn parse_v1(buf: &[u8]) -> Result<Parse, ProxyError> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() >= MAX_V1_LEN {
            return Err(ProxyError::V1TooLong);
        }
        if buf[V1_PREFIX.len()..].contains(&b'\n') {
            return Err(ProxyError::V1Syntax("line feed without carriage return"));
        }
        // One byte at a time: the line's end is found only by reading it.
        return Ok(Parse::Incomplete {
            need: buf.len() + 1,
        });
    };
    let line = std::str::from_utf8(&buf[V1_PREFIX.len()..end])
        .map_err(|_| ProxyError::V1Syntax("not ASCII"))?;
    let header = ProxyHeader {
        version: 1,
        addresses: v1_addresses(line)?,
    };
    Ok(Parse::Complete {
        header,
        len: end + 2,
    })
}

/// The fields after `PROXY `: `TCP4|TCP6 SRC DST SPORT DPORT`, or `UNKNOWN` and anything.
fn v1_addresses(line: &str) -> Result<Option<ProxiedAddrs>, ProxyError> {
    let mut fields = line.split(' ');
    let family = fields.next().unwrap_or_default();
    if family == "UNKNOWN" {
        return Ok(None);
    }
    let ip = |text: Option<&str>| -> Result<IpAddr, ProxyError> {
        let text = text.ok_or(ProxyError::V1Syntax("missing address"))?;
        let ip = match family {
            "TCP4" => text.parse::<Ipv4Addr>().map(IpAddr::V4),
            "TCP6" => text.parse::<Ipv6Addr>().map(IpAddr::V6),
            _ => {
                return Err(ProxyError::V1Syntax(
                    "protocol is not TCP4, TCP6 or UNKNOWN",
                ))
            }
        };
        ip.map_err(|_| ProxyError::V1Syntax("address does not match the protocol"))
    };
    let (source_ip, destination_ip) = (ip(fields.next())?, ip(fields.next())?);
    let (source_port, destination_port) = (v1_port(fields.next())?, v1_port(fields.next())?);
    if fields.next().is_some() {
        return Err(ProxyError::V1Syntax("extra fields after the ports"));
    }
    Ok(Some(ProxiedAddrs {
        source: SocketAddr::new(source_ip, source_port),
        destination: SocketAddr::new(destination_ip, destination_port),
    }))
}

fn v1_port(text: Option<&str>) -> Result<u16, ProxyError> {
    let text = text.ok_or(ProxyError::V1Syntax("missing port"))?;
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ProxyError::V1Syntax("port is not a decimal number"));
    }
    text.parse()
        .map_err(|_| ProxyError::V1Syntax("port is above 65535"))
}

fn parse_v2(buf: &[u8]) -> Result<Parse, ProxyError> {
    if buf.len() < V2_FIXED_LEN {
        return Ok(Parse::Incomplete { need: V2_FIXED_LEN });
    }
    let (version, command) = (buf[12] >> 4, buf[12] & 0x0f);
    if version != 2 {
        return Err(ProxyError::V2Version(version));
    }
    let payload_len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if payload_len > MAX_V2_PAYLOAD {
        return Err(ProxyError::V2TooLong(payload_len));
    }
    let len = V2_FIXED_LEN + payload_len;
    if buf.len() < len {
        return Ok(Parse::Incomplete { need: len });
    }
    let addresses = match command {
        // LOCAL: the balancer's own connection (a health check); its address block, if
        // any, is skipped.
        0 => None,
        1 => v2_addresses(buf[13], &buf[V2_FIXED_LEN..len])?,
        other => return Err(ProxyError::V2Command(other)),
    };
    let header = ProxyHeader {
        version: 2,
        addresses,
    };
    Ok(Parse::Complete { header, len })
}

/// The address block of a v2 `PROXY` command; TLVs after it are ignored.
fn v2_addresses(family_byte: u8, payload: &[u8]) -> Result<Option<ProxiedAddrs>, ProxyError> {
    let (family, transport) = (family_byte >> 4, family_byte & 0x0f);
    // Transport 0 is unspecified and 1 is TCP; a datagram transport cannot describe this
    // TCP connection.
    if family > 3 || transport > 2 {
        return Err(ProxyError::V2Family(family_byte));
    }
    if transport == 2 {
        return Ok(None);
    }
    let ip_len = match family {
        1 => 4,
        2 => 16,
        // Unspecified or a Unix socket: nothing that names a network client.
        _ => return Ok(None),
    };
    // Source and destination addresses, then source and destination ports.
    let block = payload
        .get(..2 * ip_len + 4)
        .ok_or(ProxyError::V2Short { len: payload.len() })?;
    let ip = |at: usize| -> IpAddr {
        let bytes = &block[at..at + ip_len];
        if ip_len == 4 {
            let mut octets = [0u8; 4];
            octets.copy_from_slice(bytes);
            IpAddr::from(octets)
        } else {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(bytes);
            IpAddr::from(octets)
        }
    };
    let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
    let addresses = ProxiedAddrs {
        source: SocketAddr::new(ip(0), port(2 * ip_len)),
        destination: SocketAddr::new(ip(ip_len), port(2 * ip_len + 2)),
    };
    Ok(Some(addresses))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` the way the server reads: exactly up to each `need`.
    fn read_stepwise(input: &[u8]) -> Result<(ProxyHeader, usize), ProxyError> {
        let mut have = 0;
        loop {
            match parse(&input[..have])? {
                Parse::Incomplete { need } => {
                    assert!(need > have, "need {need} with {have} bytes");
                    assert!(
                        need <= input.len(),
                        "asked for {need} of {} bytes",
                        input.len()
                    );
                    have = need;
                }
                Parse::Complete { header, len } => return Ok((header, len)),
            }
        }
    }

    fn addrs(source: &str, destination: &str) -> Option<ProxiedAddrs> {
        Some(ProxiedAddrs {
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
        })
    }

    fn v2(command: u8, family: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.extend([0x20 | command, family]);
        out.extend(u16::try_from(payload.len()).unwrap().to_be_bytes());
        out.extend(payload);
        out
    }

    #[test]
    fn v1_tcp4_and_tcp6_name_both_ends_and_stop_at_the_line_end() {
        let mut input = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n".to_vec();
        let line = input.len();
        input.extend(b"\x16\x03\x01");
        let (header, len) = read_stepwise(&input).unwrap();
        assert_eq!(len, line);
        assert_eq!(header.version, 1);
        assert_eq!(
            header.addresses,
            addrs("192.0.2.7:56324", "198.51.100.1:443")
        );

        let input = b"PROXY TCP6 2001:db8::7 2001:db8::1 65535 443\r\n";
        let (header, _) = read_stepwise(input).unwrap();
        assert_eq!(
            header.addresses,
            addrs("[2001:db8::7]:65535", "[2001:db8::1]:443")
        );
    }

    #[test]
    fn v1_unknown_keeps_the_connection_addresses() {
        let (header, len) = read_stepwise(b"PROXY UNKNOWN\r\n").unwrap();
        assert_eq!((header.addresses, len), (None, 15));
        let (header, _) = read_stepwise(b"PROXY UNKNOWN ::1 ::1 1 2\r\n").unwrap();
        assert_eq!(header.addresses, None);
    }

    #[test]
    fn v1_malformed_lines_are_refused() {
        for bad in [
            &b"PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\n"[..],
            b"PROXY TCP4 2001:db8::7 198.51.100.1 1 2\r\n",
            b"PROXY TCP6 192.0.2.7 ::1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 65536 443\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 +1 443\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1  1 443\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 1 443 x\r\n",
            b"PROXY UDP4 192.0.2.7 198.51.100.1 1 443\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 1 443\n",
            b"PROXY TCP4 192.0.2.\xff 198.51.100.1 1 443\r\n",
        ] {
            assert!(
                matches!(read_stepwise(bad), Err(ProxyError::V1Syntax(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let endless = [b"PROXY ".as_slice(), &[b'1'; 200]].concat();
        assert_eq!(read_stepwise(&endless), Err(ProxyError::V1TooLong));
    }

    #[test]
    fn v2_ipv4_and_ipv6_with_tlvs_after_the_addresses() {
        let mut payload = vec![192, 0, 2, 7, 198, 51, 100, 1, 0xdc, 0x04, 0x01, 0xbb];
        payload.extend([0x04, 0x00, 0x03, b'a', b'b', b'c']); // a TLV (NOOP)
        let mut input = v2(1, 0x11, &payload);
        let header_len = input.len();
        input.extend(b"\x16\x03\x01\x00");
        let (header, len) = read_stepwise(&input).unwrap();
        assert_eq!(len, header_len);
        assert_eq!(header.version, 2);
        assert_eq!(
            header.addresses,
            addrs("192.0.2.7:56324", "198.51.100.1:443")
        );

        let mut payload = Vec::new();
        payload.extend("2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        payload.extend("2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        payload.extend([0, 80, 1, 0xbb]);
        let (header, _) = read_stepwise(&v2(1, 0x21, &payload)).unwrap();
        assert_eq!(
            header.addresses,
            addrs("[2001:db8::7]:80", "[2001:db8::1]:443")
        );
    }

    #[test]
    fn v2_local_unspec_unix_and_datagram_keep_the_connection_addresses() {
        for (command, family, payload) in [
            (0, 0x11, vec![1; 12]),
            (0, 0x00, vec![]),
            (1, 0x00, vec![]),
            (1, 0x31, vec![0; 216]),
            (1, 0x12, vec![1; 12]),
        ] {
            let (header, _) = read_stepwise(&v2(command, family, &payload)).unwrap();
            assert_eq!(
                header.addresses, None,
                "command {command} family {family:#x}"
            );
        }
    }

    #[test]
    fn v2_bad_version_command_family_or_length_are_refused() {
        let mut wrong_version = v2(1, 0x11, &[0; 12]);
        wrong_version[12] = 0x11;
        assert_eq!(read_stepwise(&wrong_version), Err(ProxyError::V2Version(1)));
        assert_eq!(
            read_stepwise(&v2(2, 0x11, &[0; 12])),
            Err(ProxyError::V2Command(2))
        );
        assert_eq!(
            read_stepwise(&v2(1, 0x41, &[0; 12])),
            Err(ProxyError::V2Family(0x41))
        );
        assert_eq!(
            read_stepwise(&v2(1, 0x13, &[0; 12])),
            Err(ProxyError::V2Family(0x13))
        );
        assert_eq!(
            read_stepwise(&v2(1, 0x11, &[0; 11])),
            Err(ProxyError::V2Short { len: 11 })
        );
        assert_eq!(
            read_stepwise(&v2(1, 0x21, &[0; 35])),
            Err(ProxyError::V2Short { len: 35 })
        );
        let mut huge = v2(1, 0x11, &[]);
        huge[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(parse(&huge), Err(ProxyError::V2TooLong(65535)));
    }

    #[test]
    fn anything_else_is_refused_early_and_the_empty_start_waits() {
        assert_eq!(parse(b""), Ok(Parse::Incomplete { need: 6 }));
        assert_eq!(parse(b"\r\n"), Ok(Parse::Incomplete { need: 6 }));
        assert_eq!(parse(b"PRO"), Ok(Parse::Incomplete { need: 6 }));
        // A TLS ClientHello, as from a client that bypassed the balancer.
        assert!(matches!(parse(b"\x16"), Err(ProxyError::NotProxy(_))));
        assert!(matches!(
            parse(b"GET / HTTP/1.1"),
            Err(ProxyError::NotProxy(_))
        ));
        assert!(matches!(
            parse(b"\r\n\r\n\0\r\nQUIX\n\x21\x11\0\x0c"),
            Err(ProxyError::NotProxy(_))
        ));
    }
}
