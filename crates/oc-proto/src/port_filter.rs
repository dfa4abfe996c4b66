//! `restrict-user-to-ports`: which transport protocols and destination ports a VPN client
//! may send to, as ocserv's firewall script applies it to the client's packets, here
//! decided per packet without a firewall.
//!
//! The setting lists `proto(port)` items (`tcp`, `udp`, `sctp` with a port; `icmp`,
//! `icmpv6` and `esp` with none), separated by commas: only those pass, plus DNS to the
//! configured servers. Written `!( ... )` the list says what is blocked instead.

use std::fmt;
use std::net::IpAddr;

/// The protocols the setting can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
    Icmp,
    Icmpv6,
    Esp,
}

impl Protocol {
    const NAMES: [(&'static str, Protocol); 6] = [
        // icmpv6 before icmp: the longer name first.
        ("icmpv6", Protocol::Icmpv6),
        ("icmp", Protocol::Icmp),
        ("tcp", Protocol::Tcp),
        ("udp", Protocol::Udp),
        ("sctp", Protocol::Sctp),
        ("esp", Protocol::Esp),
    ];

    /// The IP protocol number.
    fn number(self) -> u8 {
        match self {
            Protocol::Icmp => 1,
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Esp => 50,
            Protocol::Icmpv6 => 58,
            Protocol::Sctp => 132,
        }
    }

    fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("?", |(n, _)| n)
    }
}

/// One `proto(port)` item; no port (or 0) means every port of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRule {
    pub protocol: Protocol,
    pub port: Option<u16>,
}

/// The parsed setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRules {
    /// `!( ... )`: the rules name what is blocked.
    pub negated: bool,
    pub rules: Vec<PortRule>,
}

/// Why a `restrict-user-to-ports` value was refused; `at` is a byte offset (shown from 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("restrict-user-to-ports: {what} at character {}", .at + 1)]
pub struct PortRulesError {
    pub what: &'static str,
    pub at: usize,
}

/// The items of one value, at most this many (ocserv's firewall script gets one rule each).
const MAX_RULES: usize = 256;

impl PortRules {
    pub fn parse(text: &str) -> Result<Self, PortRulesError> {
        let mut cursor = Cursor { text, at: 0 };
        cursor.skip_space();
        let negated = cursor.eat("!");
        if negated {
            cursor.skip_space();
            if !cursor.eat("(") {
                return Err(cursor.error("expected '(' after '!'"));
            }
        }
        let mut rules = Vec::new();
        loop {
            cursor.skip_space();
            rules.push(cursor.rule()?);
            if rules.len() > MAX_RULES {
                return Err(cursor.error("more than 256 items"));
            }
            cursor.skip_space();
            if cursor.eat(",") {
                continue;
            }
            if negated && !cursor.eat(")") {
                return Err(cursor.error("expected ',' or the closing ')' of '!('"));
            }
            cursor.skip_space();
            if !cursor.rest().is_empty() {
                return Err(cursor.error("expected ',' between items"));
            }
            return Ok(Self { negated, rules });
        }
    }

    /// Whether a packet from the client may go on. `dns` are the servers the client was
    /// given: DNS to them (UDP or TCP port 53) always passes, as in ocserv's script.
    pub fn allows(&self, packet: &[u8], dns: &[IpAddr]) -> bool {
        let Some(t) = transport(packet) else {
            // Not a packet we can read: only a block list lets it through.
            return self.negated;
        };
        if t.undecided {
            // Its transport header lies past the extension headers we walk: a block list
            // cannot tell it is not a listed port, so neither list lets it through.
            return false;
        }
        let listed = self.rules.iter().any(|r| r.matches(&t));
        if self.negated {
            return !listed;
        }
        let is_dns = (t.protocol == 6 || t.protocol == 17)
            && t.port == Some(53)
            && dns.contains(&t.destination);
        listed || is_dns
    }

    /// ocserv's connect-script form (`OCSERV_ALLOW_PORTS` / `OCSERV_DENY_PORTS`), each item
    /// followed by a space: "tcp 443 udp 53 icmp all ".
    pub fn script_form(&self) -> String {
        self.rules
            .iter()
            .map(|r| match r.protocol {
                Protocol::Icmp | Protocol::Icmpv6 | Protocol::Esp => {
                    format!("{} all ", r.protocol.name())
                }
                _ => format!("{} {} ", r.protocol.name(), r.port.unwrap_or(0)),
            })
            .collect()
    }
}

impl fmt::Display for PortRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self
            .rules
            .iter()
            .map(|r| format!("{}({})", r.protocol.name(), r.port.unwrap_or(0)))
            .collect();
        if self.negated {
            write!(f, "!({})", items.join(", "))
        } else {
            write!(f, "{}", items.join(", "))
        }
    }
}

impl PortRule {
    fn matches(&self, t: &Transport) -> bool {
        if t.protocol != self.protocol.number() {
            return false;
        }
        match self.port {
            None => true,
            // A later fragment has no ports: it matches only whole-protocol rules.
            Some(p) => t.port == Some(p),
        }
    }
}

struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl Cursor<'_> {
    fn rest(&self) -> &str {
        self.text.get(self.at..).unwrap_or_default()
    }

    fn skip_space(&mut self) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start().len();
    }

    fn eat(&mut self, token: &str) -> bool {
        let found = self.rest().starts_with(token);
        if found {
            self.at += token.len();
        }
        found
    }

    fn error(&self, what: &'static str) -> PortRulesError {
        PortRulesError { what, at: self.at }
    }

    /// `proto ( port )`.
    fn rule(&mut self) -> Result<PortRule, PortRulesError> {
        let rest = self.rest();
        let Some((name, protocol)) = Protocol::NAMES.iter().find(|(name, _)| {
            rest.get(..name.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(name))
        }) else {
            return Err(self.error("unknown protocol (tcp, udp, sctp, icmp, icmpv6 or esp)"));
        };
        self.at += name.len();
        self.skip_space();
        if !self.eat("(") {
            return Err(self.error("expected '(' after the protocol"));
        }
        self.skip_space();
        let digits = self.rest().bytes().take_while(u8::is_ascii_digit).count();
        let number = &self.rest()[..digits];
        let port = if number.is_empty() {
            0
        } else {
            number
                .parse::<u16>()
                .map_err(|_| self.error("port above 65535"))?
        };
        self.at += digits;
        self.skip_space();
        if !self.eat(")") {
            return Err(self.error("expected a port number and ')'"));
        }
        Ok(PortRule {
            protocol: *protocol,
            port: (port != 0).then_some(port),
        })
    }
}

/// What the filter reads of a packet.
#[derive(Debug, PartialEq, Eq)]
struct Transport {
    destination: IpAddr,
    protocol: u8,
    /// The destination port; none for protocols without ports and for later fragments.
    port: Option<u16>,
    /// The walk over IPv6 extension headers gave up before the transport header.
    undecided: bool,
}

/// IPv6 extension headers the walk steps over (hop-by-hop, routing, destination options,
/// authentication); the fragment header is handled on its own.
const IPV6_EXTENSIONS: [u8; 4] = [0, 43, 60, 51];
const IPV6_FRAGMENT: u8 = 44;

fn transport(packet: &[u8]) -> Option<Transport> {
    let destination = crate::ip::destination(packet)?;
    match packet.first()? >> 4 {
        4 => {
            let header_len = usize::from(packet.first()? & 0x0f) * 4;
            let fragment_offset = u16::from_be_bytes([*packet.get(6)?, *packet.get(7)?]) & 0x1fff;
            let protocol = *packet.get(9)?;
            let port = (fragment_offset == 0)
                .then(|| dst_port(protocol, packet.get(header_len..)?))
                .flatten();
            Some(Transport {
                destination,
                protocol,
                port,
                undecided: false,
            })
        }
        6 => {
            let (mut next, mut at, mut first_fragment) = (*packet.get(6)?, 40usize, true);
            // A bounded walk: at most 8 extension headers.
            for _ in 0..8 {
                if IPV6_EXTENSIONS.contains(&next) {
                    let len = if next == 51 {
                        (usize::from(*packet.get(at + 1)?) + 2) * 4
                    } else {
                        (usize::from(*packet.get(at + 1)?) + 1) * 8
                    };
                    next = *packet.get(at)?;
                    at += len;
                } else if next == IPV6_FRAGMENT {
                    let offset =
                        u16::from_be_bytes([*packet.get(at + 2)?, *packet.get(at + 3)?]) >> 3;
                    first_fragment &= offset == 0;
                    next = *packet.get(at)?;
                    at += 8;
                } else {
                    break;
                }
            }
            let port = first_fragment
                .then(|| dst_port(next, packet.get(at..)?))
                .flatten();
            Some(Transport {
                destination,
                protocol: next,
                port,
                undecided: IPV6_EXTENSIONS.contains(&next) || next == IPV6_FRAGMENT,
            })
        }
        _ => None,
    }
}

/// TCP, UDP and SCTP put the destination port in bytes 2-3 of their header.
fn dst_port(protocol: u8, header: &[u8]) -> Option<u16> {
    matches!(protocol, 6 | 17 | 132)
        .then(|| Some(u16::from_be_bytes([*header.get(2)?, *header.get(3)?])))
        .flatten()
}

#[cfg(test)]
mod tests;
