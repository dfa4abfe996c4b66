//! The TLVs inside oNCP's KMP 301 (the configuration), 302 (ESP keys) and 303 (the
//! client's settings): groups (16-bit id, 32-bit length) of attributes (16-bit id, 32-bit
//! length, value), all big-endian. [`NcConfig::parse`] reads what either side sends;
//! [`config_record`] is a gateway's configuration, [`client_settings`], [`esp_keys_record`]
//! and [`esp_control`] the messages a client sends.
//!
//! The attributes, as upstream's `process_attr` reads them: group 1 the address (1), the
//! netmask (2) and the internal gateway (3); group 2 name servers (1) and the search
//! domain (2); group 3 split includes (3) and excludes (4), network and mask; group 4 WINS
//! servers (1); group 6 the MTU (2) and, from a client, ESP on or off (1); group 7 an SPI
//! (1) and 64 bytes of secrets (2); group 8 the ESP suite, compression, port, lifetimes,
//! the fallback to TLS and replay protection.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::oncp::{message, record, KMP_CLIENT, KMP_CONFIG, KMP_ESP_KEYS};
use super::NcError;
use crate::esp::{EspEncryption, EspIntegrity, EspKeys, EspParams, EspSuite};
use crate::ip_config::IpConfig;

/// ESP secrets come as one block: the encryption key, then the HMAC key.
pub const ESP_SECRETS_LEN: usize = crate::esp::SECRETS_BLOCK_LEN;
/// Name servers and WINS servers kept from one configuration.
const MAX_NAME_SERVERS: usize = 3;
/// Routes read from one configuration at most.
const MAX_ROUTES: usize = 1024;
/// Unknown attributes remembered for the log.
const MAX_UNKNOWN: usize = 64;

/// What a KMP 301 (or 302) says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NcConfig {
    /// Address, netmask, DNS, search domain, WINS, split routes, MTU.
    pub ip: IpConfig,
    pub esp: EspParams,
    /// The server's outbound SPI and its 64 bytes of secrets (group 7): the keys we
    /// send with once the suite is known.
    pub outbound: Option<(u32, Vec<u8>)>,
    /// A client's KMP 303: ESP to carry the tunnel (or not).
    pub esp_enable: Option<bool>,
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
            (6, 1) => self.esp_enable = Some(byte().ok_or_else(bad)? != 0),
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
                // Upstream skips a route without a mask: 0.0.0.0/0 would turn a split
                // tunnel into a full one (or, excluded, take everything off the VPN).
                if mask == [0; 4] {
                    return Ok(());
                }
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
                if self.unknown.len() < MAX_UNKNOWN {
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
        EspKeys::from_block(*spi, suite, secrets)
            .map(Some)
            .map_err(|e| NcError::Keys(e.to_string()))
    }
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
fn esp_keys_message(spi: u32, secrets: &[u8; ESP_SECRETS_LEN]) -> Result<Vec<u8>, NcError> {
    let mut group = Vec::new();
    push_tlv(&mut group, 1, &spi.to_be_bytes());
    push_tlv(&mut group, 2, secrets);
    let mut payload = Vec::new();
    push_tlv(&mut payload, 7, &group);
    message(KMP_ESP_KEYS, &payload)
}

/// KMP 302 as one record: a gateway's new keys for the client (a rekey), or the client's
/// answer with the keys it receives with from now on.
pub fn esp_keys_record(spi: u32, secrets: &[u8; ESP_SECRETS_LEN]) -> Result<Vec<u8>, NcError> {
    Ok(record(&esp_keys_message(spi, secrets)?))
}

/// KMP 303 turning ESP on (the probes answered) or off, as one record.
pub fn esp_control(enable: bool) -> Result<Vec<u8>, NcError> {
    let mut group = Vec::new();
    push_tlv(&mut group, 1, &[u8::from(enable)]);
    let mut payload = Vec::new();
    push_tlv(&mut payload, 6, &group);
    Ok(record(&message(KMP_CLIENT, &payload)?))
}

/// A gateway's KMP 301 as one record: `config`'s addresses, name servers, routes and MTU,
/// its ESP parameters and the keys the client is to send with (`outbound`).
///
/// Upstream (9.01 to 9.21) stops reading groups 20 bytes before the payload's end (it
/// takes the payload's length for the message's), so a short group last would be lost:
/// the MTU's group goes first and the addresses' (26 bytes) last, where only its tail
/// falls in those 20 bytes.
pub fn config_record(config: &NcConfig) -> Result<Vec<u8>, NcError> {
    let ip = &config.ip;
    let mut payload = Vec::new();
    let mut group = Vec::new();
    push_tlv(&mut group, 2, &u32::from(ip.mtu).to_be_bytes());
    push_tlv(&mut payload, 6, &group);
    group.clear();
    for server in ip.dns.iter().filter_map(|a| match a {
        std::net::IpAddr::V4(v4) => Some(v4),
        std::net::IpAddr::V6(_) => None,
    }) {
        push_tlv(&mut group, 1, &server.octets());
    }
    if let Some(domain) = &ip.default_domain {
        push_tlv(&mut group, 2, domain.as_bytes());
    }
    push_tlv(&mut payload, 2, &group);
    group.clear();
    for (attr, routes) in [(3, &ip.split_include4), (4, &ip.split_exclude4)] {
        for route in routes {
            let value = [route.network().octets(), route.netmask().octets()].concat();
            push_tlv(&mut group, attr, &value);
        }
    }
    push_tlv(&mut payload, 3, &group);
    if let Some(suite) = config.esp.suite() {
        push_tlv(&mut payload, 8, &esp_params(&config.esp, suite));
    }
    if let Some((spi, secrets)) = &config.outbound {
        group.clear();
        push_tlv(&mut group, 1, &spi.to_be_bytes());
        push_tlv(&mut group, 2, secrets);
        push_tlv(&mut payload, 7, &group);
    }
    group.clear();
    if let Some(addr) = ip.ipv4 {
        push_tlv(&mut group, 1, &addr.octets());
    }
    if let Some(mask) = ip.ipv4_netmask {
        push_tlv(&mut group, 2, &mask.octets());
    }
    push_tlv(&mut payload, 1, &group);
    let mut body = message(KMP_CONFIG, &payload)?;
    // What a gateway has after the type (the client's own messages differ).
    if let Some(tail) = body.get_mut(8..18) {
        tail.copy_from_slice(&super::oncp::KMP_TAIL_IN);
    }
    Ok(record(&body))
}

/// Group 8's attributes.
fn esp_params(esp: &EspParams, suite: EspSuite) -> Vec<u8> {
    let mut group = Vec::new();
    push_tlv(&mut group, 1, &[suite.encryption.juniper_code()]);
    push_tlv(&mut group, 2, &[suite.integrity.juniper_code()]);
    push_tlv(&mut group, 3, &[u8::from(esp.compression)]);
    if let Some(port) = esp.port {
        push_tlv(&mut group, 4, &port.to_be_bytes());
    }
    let numbers = [
        (5, esp.lifetime_bytes),
        (6, esp.lifetime_seconds),
        (9, esp.ssl_fallback),
        (10, esp.replay_protection.map(u32::from)),
    ];
    for (attr, value) in numbers {
        if let Some(value) = value {
            push_tlv(&mut group, attr, &value.to_be_bytes());
        }
    }
    group
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests;
