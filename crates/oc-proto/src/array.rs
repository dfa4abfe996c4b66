//! Array Networks SSL VPN (`--protocol=array`), as upstream's array.c speaks it, without
//! I/O: the login form (`method`, `uname`, `pwd`) ending with an `ANsession` cookie; the
//! tunnel request (`GET /vpntunnel` with the client's id); then on that connection two
//! binary requests answered by 16 bytes and a JSON object each (whether UDP may carry the
//! tunnel and the DPD interval; the interface: address and mask as little-endian integers,
//! name servers, search domains, split routes), and the DTLS request (a pseudo IPv4
//! header of type 4 and the id) answered with the port and `DTLS SPEED TUNNEL`. Packets are
//! raw IP, on TLS one after another and on DTLS one a record; control packets are IPv4
//! headers of protocol 0xff whose would-be source address holds the type (1 DPD, 4 the
//! DTLS request, 5 DTLS off). Over DTLS the client's first record is its id and `13`,
//! answered `200 OK`.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::form::{AuthForm, FieldKind, FormField};
use crate::http::{Request, TunnelVerdict};
use crate::ip::{packet_len, PacketLen};
use crate::ip_config::IpConfig;

/// Where the login form posts.
pub const LOGIN_PATH: &str = "/prx/000/http/localhost/login";
/// The logout page.
pub const LOGOUT_PATH: &str = "/prx/000/http/localhost/logout";
/// The tunnel request's path.
pub const TUNNEL_PATH: &str = "/vpntunnel";
/// The prefix of the session cookie's name.
pub const COOKIE_PREFIX: &str = "ANsession";
/// The first binary request: whether UDP may carry the tunnel, and DPD.
pub const SPEED_TUNNEL_REQUEST: [u8; 16] = [0x50, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// The second: the interface (upstream's constant, from a virtual machine's addresses).
pub const INTERFACE_REQUEST: [u8; 48] = [
    0x54, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 0x01, 0, 0, 0, 0x0a, 0, 0x02, 0x0f, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x52, 0x54, 0, 0xde, 0xa2, 0xa6, 0, 0,
];
/// The bytes before each JSON answer (their meaning is not known; they are not read).
pub const JSON_HEADER_LEN: usize = 16;
/// The DTLS answer's length and where its port and text are.
pub const DTLS_ANSWER_LEN: usize = 0x25;
const DTLS_ANSWER_TEXT: &[u8] = b"DTLS SPEED TUNNEL";
/// The MTU upstream always uses.
pub const MTU: u16 = 1400;
/// A control packet: an IPv4 header of protocol 0xff.
pub const CONTROL_LEN: usize = 20;
pub const CONTROL_DPD: u16 = 1;
pub const CONTROL_DTLS: u16 = 4;
pub const CONTROL_DTLS_OFF: u16 = 5;
/// What the client adds to its id in its first DTLS record.
pub const DTLS_GREETING_SUFFIX: &str = "13";
/// The gateway's answer to it.
pub const DTLS_ACCEPTED: &[u8] = b"200 OK";
const MAX_NAME_SERVERS: usize = 3;
const MAX_ROUTES: usize = 1024;

/// What an Array server's answers cannot be.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ArrayError {
    #[error("Unexpected response to Array JSON request ({0} bytes)")]
    NotJson(usize),
    #[error("Failed to parse Array JSON response: {0}")]
    BadJson(String),
    #[error("No IP address received. Aborting")]
    NoAddress,
    #[error("Unrecognised data packet ({0} bytes)")]
    BadPacket(usize),
}

/// The login form, as upstream asks it: the method (Array's authentication method; it
/// is not `--authgroup`'s), the user, the password.
pub fn login_form() -> AuthForm {
    let field = |name: &str, label: &str, kind| FormField {
        name: name.into(),
        label: label.into(),
        kind,
        value: None,
        token: false,
    };
    AuthForm {
        id: "form".into(),
        fields: vec![
            field("method", "authgroup:", FieldKind::Text),
            field("uname", "username:", FieldKind::Text),
            field("pwd", "password:", FieldKind::Password),
        ],
        ..AuthForm::default()
    }
}

/// The session cookie among the server's (`name=value`).
pub fn session_cookie<'a>(mut cookies: impl Iterator<Item = (&'a str, &'a str)>) -> Option<String> {
    cookies
        .find(|(name, _)| name.starts_with(COOKIE_PREFIX))
        .map(|(name, value)| format!("{name}={value}"))
}

/// The client's id from 16 random bytes, as upstream formats it (uppercase, 8-4-4-4-12).
pub fn client_id(random: [u8; 16]) -> String {
    let hex = crate::hex::encode(&random).to_ascii_uppercase();
    let part = |r: std::ops::Range<usize>| hex.get(r).unwrap_or_default().to_string();
    format!(
        "{}-{}-{}-{}-{}",
        part(0..8),
        part(8..12),
        part(12..16),
        part(16..20),
        part(20..32)
    )
}

/// The tunnel request, with every cookie of the session.
pub fn tunnel_request(
    host: &str,
    user_agent: &str,
    cookies: &str,
    id: &str,
    hostname: &str,
) -> Request {
    Request::new("GET", TUNNEL_PATH)
        .header("Host", host)
        .header("User-Agent", user_agent)
        .header("Cookie", cookies)
        .header("appid", "SSPVPN")
        .header("clientid", id)
        .header("cpuid", id)
        .header("hostname", hostname)
        .header("payload-ip-version", "6")
        .header("x-devtype", "6")
}

/// The tunnel request's answer: 200 or 201 start the tunnel; a redirect (to the cookie
/// test page) means the cookie is dead, as upstream reads it since 9.10.
pub fn tunnel_verdict(status: u16, has_location: bool) -> TunnelVerdict {
    TunnelVerdict::or_unavailable(
        status,
        match status {
            200 | 201 => TunnelVerdict::Accepted,
            _ if status == 302 || has_location => TunnelVerdict::CookieRejected,
            _ => TunnelVerdict::Unexpected,
        },
    )
}

/// The JSON object of an answer (after its 16 bytes).
fn json_object(answer: &[u8]) -> Result<Map<String, Value>, ArrayError> {
    let json = answer
        .get(JSON_HEADER_LEN..)
        .filter(|j| j.first() == Some(&b'{'))
        .ok_or(ArrayError::NotJson(answer.len()))?;
    let end = json.iter().position(|b| *b == 0).unwrap_or(json.len());
    match serde_json::from_slice(json.get(..end).unwrap_or_default()) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ArrayError::BadJson("not an object".into())),
        Err(e) => Err(ArrayError::BadJson(e.to_string())),
    }
}

/// An answer: 16 bytes, then `json`.
pub fn json_answer(json: &Value) -> Vec<u8> {
    let mut out = vec![0u8; JSON_HEADER_LEN];
    out.extend_from_slice(json.to_string().as_bytes());
    out
}

/// The answer to [`SPEED_TUNNEL_REQUEST`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpeedTunnel {
    /// UDP (DTLS) may carry the tunnel.
    pub allowed: bool,
    pub encryption: i64,
    /// Seconds of silence before a DPD (0: none).
    pub keepalive: u64,
}

impl SpeedTunnel {
    pub fn parse(answer: &[u8]) -> Result<Self, ArrayError> {
        let map = json_object(answer)?;
        let int = |key: &str| map.get(key).and_then(Value::as_i64).unwrap_or(0);
        Ok(Self {
            allowed: int("allow_speed_tunnel") != 0,
            encryption: int("speed_tunnel_encryption"),
            keepalive: u64::try_from(int("keepalive_interval")).unwrap_or(0),
        })
    }
}

/// An address as Array writes it: the integer whose little-endian bytes it is.
pub fn address_from_int(value: u64) -> Ipv4Addr {
    Ipv4Addr::from((value as u32).to_le_bytes())
}

/// An address as Array writes it.
pub fn address_to_int(addr: Ipv4Addr) -> u64 {
    u64::from(u32::from_le_bytes(addr.octets()))
}

/// The answer to [`INTERFACE_REQUEST`]: the tunnel's configuration, and the keys upstream
/// does not know (for the log).
pub fn parse_interface(answer: &[u8]) -> Result<(IpConfig, Vec<String>), ArrayError> {
    let map = json_object(answer)?;
    let mut ip = IpConfig {
        mtu: MTU,
        ..IpConfig::default()
    };
    let mut unknown = Vec::new();
    let int_addr = |v: &Value| v.as_u64().map(address_from_int);
    for (key, value) in &map {
        match key.as_str() {
            "client_ipv4" => ip.ipv4 = int_addr(value),
            "client_ipv4_mask" => ip.ipv4_netmask = int_addr(value),
            "dns_servers" => {
                for server in value.as_array().into_iter().flatten() {
                    let v4 = server.get("ipv4").and_then(Value::as_array);
                    let v6 = server.get("ipv6").and_then(Value::as_array);
                    let found = v4
                        .into_iter()
                        .flatten()
                        .filter_map(|a| int_addr(a).map(IpAddr::V4))
                        .chain(
                            v6.into_iter()
                                .flatten()
                                .filter_map(|a| a.as_str()?.parse().ok()),
                        );
                    for addr in found {
                        if ip.dns.len() < MAX_NAME_SERVERS {
                            ip.dns.push(addr);
                        }
                    }
                }
            }
            "search_domains" => {
                let domains: Vec<&str> = value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                if !domains.is_empty() {
                    ip.default_domain = Some(domains.join(" "));
                }
            }
            "include_network_resource" => ip.split_include4 = routes(value)?,
            "exclude_network_resource" => ip.split_exclude4 = routes(value)?,
            _ => unknown.push(key.clone()),
        }
    }
    if ip.ipv4.is_none() {
        return Err(ArrayError::NoAddress);
    }
    Ok((ip, unknown))
}

/// `{"ipv4": [{"ip": N, "mask": N}, ...]}` as routes.
fn routes(value: &Value) -> Result<Vec<Ipv4Net>, ArrayError> {
    let mut out = Vec::new();
    for entry in value
        .get("ipv4")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(entry) = entry.as_object() else {
            return Err(ArrayError::BadJson("Include not object".into()));
        };
        let get = |k: &str| entry.get(k).and_then(Value::as_u64).map(address_from_int);
        let (Some(net), Some(mask)) = (get("ip"), get("mask")) else {
            continue;
        };
        let prefix = u8::try_from(u32::from(mask).leading_ones()).unwrap_or(32);
        if let Ok(route) = Ipv4Net::new(net, prefix) {
            if out.len() < MAX_ROUTES {
                out.push(route.trunc());
            }
        }
    }
    Ok(out)
}

/// A gateway's interface answer for `ip`.
pub fn interface_answer(ip: &IpConfig) -> Vec<u8> {
    let int = |a: Ipv4Addr| Value::from(address_to_int(a));
    let mut map = Map::new();
    if let Some(a) = ip.ipv4 {
        map.insert("client_ipv4".into(), int(a));
    }
    if let Some(m) = ip.ipv4_netmask {
        map.insert("client_ipv4_mask".into(), int(m));
    }
    let v4: Vec<Value> = ip
        .dns
        .iter()
        .filter_map(|a| match a {
            IpAddr::V4(a) => Some(int(*a)),
            IpAddr::V6(_) => None,
        })
        .collect();
    map.insert(
        "dns_servers".into(),
        serde_json::json!([{ "ipv4": v4, "ipv6": [] }]),
    );
    if let Some(domain) = &ip.default_domain {
        let domains: Vec<&str> = domain.split(' ').collect();
        map.insert("search_domains".into(), serde_json::json!(domains));
    }
    for (key, routes) in [
        ("include_network_resource", &ip.split_include4),
        ("exclude_network_resource", &ip.split_exclude4),
    ] {
        let list: Vec<Value> = routes
            .iter()
            .map(|r| serde_json::json!({ "ip": address_to_int(r.network()), "mask": address_to_int(r.netmask()) }))
            .collect();
        map.insert(key.into(), serde_json::json!({ "ipv4": list, "ipv6": [] }));
    }
    json_answer(&Value::Object(map))
}

/// A control packet of `kind`, `extra` after its 16 bytes (the id of the DTLS request).
pub fn control(kind: u16, extra: &[u8]) -> Vec<u8> {
    let header_len = if extra.is_empty() { CONTROL_LEN } else { 16 };
    let mut p = vec![0u8; header_len];
    p[0] = 0x45;
    p[9] = 0xff;
    p[12..14].copy_from_slice(&kind.to_be_bytes());
    p.extend_from_slice(extra);
    let len = u16::try_from(p.len()).unwrap_or(u16::MAX);
    p[2..4].copy_from_slice(&len.to_be_bytes());
    p
}

/// The DTLS request: a control packet of type 4 with the client's id.
pub fn dtls_request(id: &str) -> Vec<u8> {
    control(CONTROL_DTLS, id.as_bytes())
}

/// The port of a DTLS answer that grants UDP, or `None` (no DTLS then).
pub fn parse_dtls_answer(answer: &[u8]) -> Option<u16> {
    if answer.len() != DTLS_ANSWER_LEN || answer.get(0x14..0x25) != Some(DTLS_ANSWER_TEXT) {
        return None;
    }
    answer
        .get(0x12..0x14)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
}

/// A gateway's DTLS answer granting `port`.
pub fn dtls_answer(port: u16) -> Vec<u8> {
    let mut out = vec![0u8; 0x12];
    out.extend_from_slice(&port.to_be_bytes());
    out.extend_from_slice(DTLS_ANSWER_TEXT);
    out
}

/// How the gateway answered our DTLS greeting: `200 OK`, or any well-formed IP packet
/// (the answer may be lost; data proves the channel as well).
pub fn read_dtls_answer(record: &[u8]) -> crate::udp_link::ProbeAnswer {
    let packet = packet_len(record) == PacketLen::Len(record.len());
    if record.starts_with(DTLS_ACCEPTED) || packet {
        crate::udp_link::ProbeAnswer::Accepted {
            ipv4: None,
            ipv6: None,
        }
    } else {
        crate::udp_link::ProbeAnswer::Unrecognised
    }
}

/// The client's first DTLS record: its id and `13` (without which the server's worker
/// fails once it has data to send, as upstream notes).
pub fn dtls_greeting(id: &str) -> Vec<u8> {
    format!("{id}{DTLS_GREETING_SUFFIX}").into_bytes()
}

/// The type of a control packet (an IPv4 header of protocol 0xff as long as it says), or
/// `None` for an ordinary packet.
pub fn control_type(packet: &[u8]) -> Option<u16> {
    let len = packet
        .get(2..4)
        .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])));
    (packet.first() == Some(&0x45) && packet.get(9) == Some(&0xff) && len == Some(packet.len()))
        .then(|| packet.get(12..14).map(|t| u16::from_be_bytes([t[0], t[1]])))
        .flatten()
}

/// Reads the raw IP packets of a TLS stream, however it is cut; a packet that is not IP
/// (or claims more than `max` bytes) loses what is buffered, as upstream drops it.
#[derive(Debug)]
pub struct PacketStream {
    partial: Vec<u8>,
    max: usize,
}

impl PacketStream {
    pub fn new(max: usize) -> Self {
        Self {
            partial: Vec::new(),
            max,
        }
    }

    /// Calls `each` with every packet complete after `input`; the count of bytes thrown
    /// away as not IP. Whole packets are handed out where they lie in `input`; only a
    /// packet cut by the read is copied, to be finished by the next.
    pub fn decode(&mut self, mut input: &[u8], mut each: impl FnMut(&[u8])) -> usize {
        let mut dropped = 0;
        while !self.partial.is_empty() && !input.is_empty() {
            let wanted = match packet_len(&self.partial) {
                // Six bytes hold either family's length.
                PacketLen::Incomplete => 6,
                PacketLen::Len(len) if len <= self.max => len,
                PacketLen::Len(_) | PacketLen::NotIp => {
                    dropped += self.partial.len() + input.len();
                    self.partial.clear();
                    return dropped;
                }
            };
            let take = wanted.saturating_sub(self.partial.len()).min(input.len());
            let (now, rest) = input.split_at(take);
            self.partial.extend_from_slice(now);
            input = rest;
            if packet_len(&self.partial) == PacketLen::Len(self.partial.len()) {
                each(&self.partial);
                self.partial.clear();
            }
        }
        loop {
            match packet_len(input) {
                PacketLen::Len(len) if len <= self.max => match input.split_at_checked(len) {
                    Some((packet, rest)) => {
                        each(packet);
                        input = rest;
                    }
                    None => break,
                },
                PacketLen::Incomplete => break,
                PacketLen::Len(_) | PacketLen::NotIp => {
                    return dropped + input.len();
                }
            }
        }
        self.partial.extend_from_slice(input);
        dropped
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests;
