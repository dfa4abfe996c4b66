//! Pulse's configuration, after authentication succeeds: Juniper/1 messages until the
//! end-of-configuration (0x8f). Each payload (offsets below are the payload's, 16 less
//! than upstream's, which count the IF-T header) starts with 16 zero bytes, a sub-type at
//! 0x10, zero at 0x14 and the payload's length at 0x18:
//!
//! - the main configuration (`2c 20 f0 00`, or `2e 20 f0 00` from 9.1R14 with leading
//!   attribute blocks): the routes block (`2e 00`, its length, the count; 16-byte entries:
//!   include `07 00 00 10` or exclude `f1 00 00 10`, `00 00 ff ff`, the first and last
//!   address of the range), then the attributes (a length, `03 00 00 00`, then 16-bit type,
//!   16-bit length, value);
//! - the ESP configuration (`21 20 24 00`): at 0x20 `01 00 00 00`, at 0x24 the SPI the
//!   client sends with (little-endian, as no other field is), at 0x28 the secrets' length
//!   (0x40), at 0x2a the secrets (encryption key, then HMAC key). The client answers with
//!   the same family ([`esp_reply`]): its own SPI and secrets, then the server's copied,
//!   and turns ESP on with the control text `ncmo=1`. A later ESP configuration is a rekey.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use super::ift::{packet, JUNIPER_CONFIG, JUNIPER_CONTROL, VENDOR_JUNIPER};
use super::PulseError;
use crate::esp::{EspEncryption, EspIntegrity, EspParams};
use crate::ip_config::IpConfig;

/// Sub-types of a configuration message.
pub const MAIN_CONFIG: u32 = 0x2c20_f000;
pub const MAIN_CONFIG_R14: u32 = 0x2e20_f000;
pub const ESP_CONFIG: u32 = 0x2120_2400;
/// Where the configuration's own content starts in the payload.
const CONTENT: usize = 0x1c;
/// ESP secrets come as one block: the encryption key, then the HMAC key.
pub const ESP_SECRETS_LEN: usize = crate::esp::SECRETS_BLOCK_LEN;
/// An ESP configuration's payload (upstream's `len >= 0x6a`, less the header).
const ESP_CONFIG_MIN: usize = 0x5a;
const ROUTE_INCLUDE: u32 = 0x0700_0010;
const ROUTE_EXCLUDE: u32 = 0xf100_0010;
const ROUTE_MARK: u32 = 0x0000_ffff;
const ATTRS_MARK: u32 = 0x0300_0000;
const MAX_NAME_SERVERS: usize = 3;
const MAX_ROUTES: usize = 1024;
const MAX_UNKNOWN: usize = 64;

/// What the main configuration says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PulseConfig {
    pub ip: IpConfig,
    pub esp: EspParams,
    /// The server carries IPv6 over IPv4 ESP and the reverse (attribute 0x4024);
    /// otherwise packets of the other family go over TLS.
    pub esp_any_family: bool,
    /// Attributes upstream does not know, for the log: (type, length).
    pub unknown: Vec<(u16, usize)>,
}

/// The sub-type of a configuration payload, after the common checks.
pub fn sub_type(payload: &[u8]) -> Result<u32, PulseError> {
    let word = |at: usize| {
        payload
            .get(at..at + 4)
            .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
    };
    let zeros = payload
        .get(..0x10)
        .is_some_and(|z| z.iter().all(|b| *b == 0));
    let len_ok = word(0x18).and_then(|l| usize::try_from(l).ok()) == Some(payload.len());
    if payload.len() < CONTENT || !zeros || word(0x14) != Some(0) || !len_ok {
        return Err(PulseError::BadConfig(
            "not a configuration message's layout",
        ));
    }
    word(0x10).ok_or(PulseError::BadConfig("no sub-type"))
}

fn be16(bytes: &[u8], at: usize) -> Option<usize> {
    bytes
        .get(at..at + 2)
        .map(|w| usize::from(u16::from_be_bytes([w[0], w[1]])))
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    bytes
        .get(at..at + 4)
        .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
}

impl PulseConfig {
    /// Reads a main configuration's payload.
    pub fn parse(payload: &[u8]) -> Result<Self, PulseError> {
        let bad = PulseError::BadConfig;
        let kind = sub_type(payload)?;
        let mut config = Self::default();
        let mut at = CONTENT;
        if kind == MAIN_CONFIG_R14 {
            // Attribute blocks, the last one flagged 0x2c00.
            loop {
                let flag = be16(payload, at).ok_or(bad("a truncated attribute block"))?;
                let len = be16(payload, at + 2).ok_or(bad("a truncated attribute block"))?;
                let block = payload
                    .get(at..at + len)
                    .ok_or(bad("an attribute block past the end"))?;
                config.attributes(block.get(4..).unwrap_or_default())?;
                at += len;
                if flag == 0x2c00 {
                    break;
                }
            }
        } else if kind != MAIN_CONFIG {
            return Err(bad("not a main configuration"));
        }
        if be16(payload, at) != Some(0x2e00) {
            return Err(bad("no routes block"));
        }
        let routes_len = be16(payload, at + 2).ok_or(bad("a truncated routes block"))?;
        let count = usize::from(*payload.get(at + 4).ok_or(bad("a truncated routes block"))?);
        if routes_len != count * 16 + 8 {
            return Err(bad("the routes block's length is not its count's"));
        }
        let routes = payload
            .get(at + 8..at + routes_len)
            .ok_or(bad("routes past the end"))?;
        for entry in routes.chunks_exact(16) {
            config.route(entry)?;
        }
        at += routes_len;
        let attrs_len = be32(payload, at).and_then(|l| usize::try_from(l).ok());
        if attrs_len.map(|l| at + l) != Some(payload.len()) {
            return Err(bad("the attributes' length is not the rest of the message"));
        }
        config.attributes(payload.get(at + 4..).unwrap_or_default())?;
        Ok(config)
    }

    fn route(&mut self, entry: &[u8]) -> Result<(), PulseError> {
        let bad = PulseError::BadConfig;
        let kind = be32(entry, 0).ok_or(bad("a short route"))?;
        if be32(entry, 4) != Some(ROUTE_MARK) {
            return Err(bad("a route of an unknown form"));
        }
        let first = Ipv4Addr::from(be32(entry, 8).ok_or(bad("a short route"))?);
        let last = Ipv4Addr::from(be32(entry, 12).ok_or(bad("a short route"))?);
        let mask = !(u32::from(first) ^ u32::from(last));
        let prefix = u8::try_from(mask.leading_ones()).unwrap_or(32);
        let net = Ipv4Net::new(first, prefix)
            .map_err(|_| bad("a route's range"))?
            .trunc();
        let list = match kind {
            ROUTE_INCLUDE => &mut self.ip.split_include4,
            ROUTE_EXCLUDE => &mut self.ip.split_exclude4,
            _ => return Err(bad("a route neither included nor excluded")),
        };
        if list.len() < MAX_ROUTES {
            list.push(net);
        }
        Ok(())
    }

    /// `03 00 00 00`, then the attributes.
    fn attributes(&mut self, section: &[u8]) -> Result<(), PulseError> {
        let bad = PulseError::BadConfig;
        if be32(section, 0) != Some(ATTRS_MARK) {
            return Err(bad("an attribute section without its mark"));
        }
        let mut rest = section.get(4..).unwrap_or_default();
        while !rest.is_empty() {
            let kind = be16(rest, 0).ok_or(bad("a truncated attribute"))?;
            let len = be16(rest, 2).ok_or(bad("a truncated attribute"))?;
            let value = rest
                .get(4..4 + len)
                .ok_or(bad("an attribute past the end"))?;
            self.attribute(u16::try_from(kind).unwrap_or(0), value);
            rest = rest.get(4 + len..).unwrap_or_default();
        }
        Ok(())
    }

    /// One attribute; one of an unexpected length is noted and skipped, as upstream does.
    fn attribute(&mut self, kind: u16, v: &[u8]) {
        let v4 = || {
            v.first_chunk::<4>()
                .filter(|_| v.len() == 4)
                .map(|a| Ipv4Addr::from(*a))
        };
        let num =
            |n: usize| (v.len() == n).then(|| v.iter().fold(0u32, |a, b| a << 8 | u32::from(*b)));
        let v6 = |n: usize| {
            (v.len() == n)
                .then(|| v.first_chunk::<16>().map(|a| Ipv6Addr::from(*a)))
                .flatten()
        };
        let net6 = || Ipv6Net::new(v6(17)?, *v.get(16)?).ok();
        let ip = &mut self.ip;
        let known = match kind {
            0x0001 => v4().map(|a| ip.ipv4 = Some(a)),
            0x0002 => v4().map(|a| ip.ipv4_netmask = Some(a)),
            0x0003 => v4().map(|a| push_server(&mut ip.dns, a.into())),
            0x0004 => v4().map(|a| push_server(&mut ip.nbns, a.into())),
            0x000a => v6(16).map(|a| push_server(&mut ip.dns, a.into())),
            0x0008 => net6().map(|n| ip.ipv6 = Some(n)),
            0x000f => net6().map(|n| ip.split_include6.push(n)),
            0x0010 => net6().map(|n| ip.split_exclude6.push(n)),
            0x4005 => num(4).map(|m| ip.mtu = u16::try_from(m).unwrap_or(0)),
            0x4006 => {
                let text = String::from_utf8_lossy(v);
                ip.default_domain = Some(text.trim_end_matches('\0').to_string());
                Some(())
            }
            0x4010 => num(2).map(|c| self.esp.encryption = EspEncryption::from_juniper_code(c)),
            0x4011 => num(2).map(|c| self.esp.integrity = EspIntegrity::from_juniper_code(c)),
            0x4012 => num(4).map(|s| self.esp.lifetime_seconds = Some(s)),
            0x4013 => num(4).map(|b| self.esp.lifetime_bytes = Some(b)),
            0x4014 => num(4).map(|r| self.esp.replay_protection = Some(r != 0)),
            0x4016 => num(2).map(|p| self.esp.port = u16::try_from(p).ok()),
            0x4017 => num(4).map(|s| self.esp.ssl_fallback = Some(s)),
            0x4024 => num(1).map(|f| self.esp_any_family = f != 0),
            0x4023 => {
                ip.proxy_pac = Some(String::from_utf8_lossy(v).trim_end_matches('\0').into());
                Some(())
            }
            // The internal gateways, the PAC script, "ESP only": nothing to do with them.
            0x400b | 0x401e | 0x4009 | 0x401a => Some(()),
            _ => None,
        };
        if known.is_none() && self.unknown.len() < MAX_UNKNOWN {
            self.unknown.push((kind, v.len()));
        }
    }
}

impl PulseConfig {
    /// The IP version ESP may carry alone (that of its transport, the gateway's address),
    /// unless the server takes both on it (`None`); the other family goes over TLS.
    pub fn esp_only_family(&self, gateway_is_ipv6: bool) -> Option<u8> {
        (!self.esp_any_family).then_some(if gateway_is_ipv6 { 6 } else { 4 })
    }
}

fn push_server(list: &mut Vec<IpAddr>, addr: IpAddr) {
    if list.len() < MAX_NAME_SERVERS {
        list.push(addr);
    }
}

/// The SPI the client sends with and the secrets block of an ESP configuration's payload.
pub fn parse_esp_config(payload: &[u8]) -> Result<(u32, &[u8]), PulseError> {
    let bad = PulseError::BadConfig;
    if sub_type(payload)? != ESP_CONFIG || payload.len() < ESP_CONFIG_MIN {
        return Err(bad("not an ESP configuration"));
    }
    if be32(payload, 0x1c).and_then(|l| usize::try_from(l).ok()) != Some(payload.len() - 0x1c)
        || be32(payload, 0x20) != Some(0x0100_0000)
        || be16(payload, 0x28) != Some(ESP_SECRETS_LEN)
    {
        return Err(bad("an ESP configuration of an unknown layout"));
    }
    let spi = payload
        .get(0x24..0x28)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(bad("no SPI"))?;
    let secrets = payload
        .get(0x2a..0x2a + ESP_SECRETS_LEN)
        .ok_or(bad("short ESP secrets"))?;
    Ok((spi, secrets))
}

/// An ESP configuration message's payload: `spi` and `secrets` for the other side to send
/// with; `copied` the other side's own (a client's answer), or six zero bytes (a server's).
fn esp_config_payload(spi: u32, secrets: &[u8; ESP_SECRETS_LEN], copied: Option<&[u8]>) -> Vec<u8> {
    let tail = copied.map_or(6, |c| c.len());
    let total = 0x2a + ESP_SECRETS_LEN + tail;
    let mut p = vec![0u8; 0x10];
    p.extend_from_slice(&ESP_CONFIG.to_be_bytes());
    p.extend_from_slice(&[0; 4]);
    p.extend_from_slice(&u32::try_from(total).unwrap_or(0).to_be_bytes());
    p.extend_from_slice(&u32::try_from(total - 0x1c).unwrap_or(0).to_be_bytes());
    p.extend_from_slice(&0x0100_0000u32.to_be_bytes());
    p.extend_from_slice(&spi.to_le_bytes());
    p.extend_from_slice(&u16::try_from(ESP_SECRETS_LEN).unwrap_or(0).to_be_bytes());
    p.extend_from_slice(secrets);
    match copied {
        Some(copied) => p.extend_from_slice(copied),
        None => p.resize(total, 0),
    }
    p
}

/// A server's ESP configuration (or rekey): what the client is to send with.
pub fn esp_config(seq: u32, spi: u32, secrets: &[u8; ESP_SECRETS_LEN]) -> Vec<u8> {
    packet(
        VENDOR_JUNIPER,
        JUNIPER_CONFIG,
        seq,
        &esp_config_payload(spi, secrets, None),
    )
}

/// The client's answer to an ESP configuration `payload`: the SPI and secrets it
/// receives with, then the server's own copied.
pub fn esp_reply(
    seq: u32,
    payload: &[u8],
    spi: u32,
    secrets: &[u8; ESP_SECRETS_LEN],
) -> Result<Vec<u8>, PulseError> {
    parse_esp_config(payload)?;
    let copied = payload
        .get(0x24..0x2a + ESP_SECRETS_LEN)
        .ok_or(PulseError::BadConfig("short ESP secrets"))?;
    Ok(packet(
        VENDOR_JUNIPER,
        JUNIPER_CONFIG,
        seq,
        &esp_config_payload(spi, secrets, Some(copied)),
    ))
}

/// The control text that turns ESP on (`ncmo=1`) or off (`ncmo=0`).
pub fn esp_control(seq: u32, on: bool) -> Vec<u8> {
    let text: &[u8] = if on { b"ncmo=1\n\0" } else { b"ncmo=0\n\0" };
    packet(VENDOR_JUNIPER, JUNIPER_CONTROL, seq, text)
}

/// Whether a control message turns ESP on (`Some(true)`), off, or says something else.
pub fn parse_esp_control(payload: &[u8]) -> Option<bool> {
    match payload {
        b"ncmo=1\n\0" => Some(true),
        b"ncmo=0\n\0" => Some(false),
        _ => None,
    }
}

/// A server's main configuration (the 9.1R14 form, with one leading attribute block):
/// `config`'s addresses, routes, name servers, domain, MTU and ESP parameters.
pub fn main_config(seq: u32, config: &PulseConfig) -> Vec<u8> {
    let ip = &config.ip;
    let mut attrs = ATTRS_MARK.to_be_bytes().to_vec();
    let mut attr = |kind: u16, value: &[u8]| {
        attrs.extend_from_slice(&kind.to_be_bytes());
        attrs.extend_from_slice(&u16::try_from(value.len()).unwrap_or(0).to_be_bytes());
        attrs.extend_from_slice(value);
    };
    if let Some(a) = ip.ipv4 {
        attr(0x0001, &a.octets());
    }
    if let Some(m) = ip.ipv4_netmask {
        attr(0x0002, &m.octets());
    }
    for server in &ip.dns {
        match server {
            IpAddr::V4(a) => attr(0x0003, &a.octets()),
            IpAddr::V6(a) => attr(0x000a, &a.octets()),
        }
    }
    for server in &ip.nbns {
        if let IpAddr::V4(a) = server {
            attr(0x0004, &a.octets());
        }
    }
    if let Some(net) = ip.ipv6 {
        attr(
            0x0008,
            &[&net.addr().octets()[..], &[net.prefix_len()]].concat(),
        );
    }
    attr(0x4005, &u32::from(ip.mtu).to_be_bytes());
    if let Some(domain) = &ip.default_domain {
        attr(0x4006, domain.as_bytes());
    }
    let esp = &config.esp;
    if let (Some(e), Some(i)) = (esp.encryption, esp.integrity) {
        attr(0x4010, &u16::from(e.juniper_code()).to_be_bytes());
        attr(0x4011, &u16::from(i.juniper_code()).to_be_bytes());
    }
    if let Some(port) = esp.port {
        attr(0x4016, &port.to_be_bytes());
    }
    if let Some(s) = esp.ssl_fallback {
        attr(0x4017, &s.to_be_bytes());
    }
    if let Some(r) = esp.replay_protection {
        attr(0x4014, &u32::from(r).to_be_bytes());
    }
    if let Some(s) = esp.lifetime_seconds {
        attr(0x4012, &s.to_be_bytes());
    }
    if let Some(b) = esp.lifetime_bytes {
        attr(0x4013, &b.to_be_bytes());
    }
    let mut routes = Vec::new();
    let entries = ip
        .split_include4
        .iter()
        .map(|n| (ROUTE_INCLUDE, n))
        .chain(ip.split_exclude4.iter().map(|n| (ROUTE_EXCLUDE, n)))
        .take(255);
    let mut count = 0u8;
    for (kind, net) in entries {
        routes.extend_from_slice(&kind.to_be_bytes());
        routes.extend_from_slice(&ROUTE_MARK.to_be_bytes());
        routes.extend_from_slice(&net.network().octets());
        routes.extend_from_slice(&net.broadcast().octets());
        count += 1;
    }
    let mut content = vec![0x2c, 0x00, 0x00, 0x0d, 3, 0, 0, 0, 0x40, 0x26, 0, 1, 0];
    content.extend_from_slice(&[0x2e, 0x00]);
    content.extend_from_slice(&u16::try_from(routes.len() + 8).unwrap_or(0).to_be_bytes());
    content.extend_from_slice(&[count, 0, 0, 0]);
    content.extend_from_slice(&routes);
    content.extend_from_slice(&u32::try_from(attrs.len() + 4).unwrap_or(0).to_be_bytes());
    content.extend_from_slice(&attrs);
    let total = CONTENT + content.len();
    let mut payload = vec![0u8; 0x10];
    payload.extend_from_slice(&MAIN_CONFIG_R14.to_be_bytes());
    payload.extend_from_slice(&[0; 4]);
    payload.extend_from_slice(&u32::try_from(total).unwrap_or(0).to_be_bytes());
    payload.extend_from_slice(&content);
    packet(VENDOR_JUNIPER, JUNIPER_CONFIG, seq, &payload)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests;
