//! Access-Request as ocserv sends it, and the Access-Accept/Reject/Challenge it reads:
//! the attributes ocserv applies from an Accept become [`Grants`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv6Net};

use super::packet::{
    attr, code, hide_password, message_authenticator_ok, response_is_authentic,
    sign_message_authenticator, Attribute, Packet,
};
use super::RadiusError;

/// Service-Type values.
const SERVICE_FRAMED: u32 = 2;
const SERVICE_AUTHENTICATE_ONLY: u32 = 8;
/// NAS-Port-Type Async, as ocserv sends.
const NAS_PORT_ASYNC: u32 = 0;
/// Microsoft's vendor id and its DNS server attributes (RFC 2548).
const VENDOR_MICROSOFT: u32 = 311;
const MS_PRIMARY_DNS: u8 = 28;
const MS_SECONDARY_DNS: u8 = 29;
/// Roaring Penguin's speed limits, which ocserv applies as rx/tx-data-per-sec in its own
/// unit, kilobytes per second.
const VENDOR_ROARING_PENGUIN: u32 = 10055;
const RP_UPSTREAM_SPEED_LIMIT: u8 = 1;
const RP_DOWNSTREAM_SPEED_LIMIT: u8 = 2;
/// Challenges in one login before it fails (ocserv's limit).
pub const MAX_CHALLENGES: u32 = 16;

/// Who is asking, in every request: the NAS-Identifier and the address the client reached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NasIdentity {
    pub identifier: Option<String>,
    pub address: Option<IpAddr>,
}

impl NasIdentity {
    fn push(&self, attrs: &mut Vec<Attribute>) {
        match self.address {
            Some(IpAddr::V4(a)) => push(attrs, attr::NAS_IP_ADDRESS, a.octets().to_vec()),
            Some(IpAddr::V6(a)) => push(attrs, attr::NAS_IPV6_ADDRESS, a.octets().to_vec()),
            None => {}
        }
        if let Some(id) = &self.identifier {
            push(attrs, attr::NAS_IDENTIFIER, id.as_bytes().to_vec());
        }
    }
}

/// One Access-Request: the user's answer (password, or the response to a challenge with
/// its State).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequest<'a> {
    pub user: &'a str,
    pub password: &'a str,
    pub state: Option<&'a [u8]>,
    pub nas: &'a NasIdentity,
    /// The client's address (Calling-Station-Id).
    pub calling_station: &'a str,
    /// Acct-Session-Id, the same the session's accounting will use (RFC 2866 5.5).
    pub session_id: Option<&'a str>,
    /// The client's User-Agent (Connect-Info).
    pub connect_info: Option<&'a str>,
}

fn push(attrs: &mut Vec<Attribute>, kind: u8, value: Vec<u8>) {
    attrs.push(Attribute { kind, value });
}

/// Text attributes are cut to what one attribute holds.
fn text(value: &str) -> Vec<u8> {
    let bytes = value.as_bytes();
    bytes[..bytes.len().min(253)].to_vec()
}

impl AccessRequest<'_> {
    /// The request's bytes for a server holding `secret`; `authenticator` must be
    /// unpredictable (16 random bytes). Message-Authenticator comes first, as RFC 3579
    /// and the BlastRADIUS advice want.
    pub fn encode(
        &self,
        identifier: u8,
        authenticator: [u8; 16],
        secret: &[u8],
    ) -> Result<Vec<u8>, RadiusError> {
        let mut attributes = Vec::new();
        push(&mut attributes, attr::MESSAGE_AUTHENTICATOR, vec![0; 16]);
        push(&mut attributes, attr::USER_NAME, text(self.user));
        let hidden = hide_password(self.password.as_bytes(), secret, &authenticator)?;
        push(&mut attributes, attr::USER_PASSWORD, hidden);
        self.nas.push(&mut attributes);
        push(
            &mut attributes,
            attr::CALLING_STATION_ID,
            text(self.calling_station),
        );
        if let Some(id) = self.session_id {
            push(&mut attributes, attr::ACCT_SESSION_ID, text(id));
        }
        if let Some(agent) = self.connect_info {
            push(&mut attributes, attr::CONNECT_INFO, text(agent));
        }
        let service = SERVICE_AUTHENTICATE_ONLY.to_be_bytes().to_vec();
        push(&mut attributes, attr::SERVICE_TYPE, service);
        let port_type = NAS_PORT_ASYNC.to_be_bytes().to_vec();
        push(&mut attributes, attr::NAS_PORT_TYPE, port_type);
        if let Some(state) = self.state {
            push(&mut attributes, attr::STATE, state.to_vec());
        }
        let packet = Packet {
            code: code::ACCESS_REQUEST,
            identifier,
            authenticator,
            attributes,
        };
        let mut bytes = packet.encode()?;
        sign_message_authenticator(&mut bytes, secret, None);
        Ok(bytes)
    }
}

/// What a successful login brings from the RADIUS server, as ocserv applies it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Class values as text (the groups with `groupconfig`), and as sent, for accounting.
    pub class: Vec<Vec<u8>>,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv4_netmask: Option<Ipv4Addr>,
    /// Framed-IPv6-Address (the client's /64) or Delegated-IPv6-Prefix (the client's
    /// prefix), as ocserv reads them.
    pub ipv6: Option<Ipv6Net>,
    /// Framed-Route, Framed-IPv6-Route (their first word, the network) and
    /// Framed-IPv6-Prefix.
    pub routes: Vec<IpNet>,
    pub dns: Vec<IpAddr>,
    pub session_timeout: Option<u32>,
    pub idle_timeout: Option<u32>,
    pub interim_interval: Option<u32>,
    /// Speed limits in bytes per second (from the client, to the client).
    pub rx_per_sec: Option<u64>,
    pub tx_per_sec: Option<u64>,
    /// Attributes in a form we could not read: `(type, why)`, for the log.
    pub skipped: Vec<(u8, String)>,
}

/// The verdict in a reply to an Access-Request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessReply {
    Accept(Grants),
    /// Reply-Message, if any, for the log (ocserv does not show it to the user).
    Reject {
        message: Option<String>,
    },
    /// Ask the user `message`; the answer goes back with `state`.
    Challenge {
        message: String,
        state: Vec<u8>,
    },
}

/// Reads a reply to the request with `identifier` and `request_authenticator`: it must
/// prove the shared secret, or it is ignored as forged.
pub fn read_access_reply(
    datagram: &[u8],
    identifier: u8,
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> Result<AccessReply, RadiusError> {
    let packet = Packet::decode(datagram)?;
    if packet.identifier != identifier {
        return Err(RadiusError::Unexpected(format!(
            "identifier {} (ours {identifier})",
            packet.identifier
        )));
    }
    if !response_is_authentic(datagram, request_authenticator, secret)
        || message_authenticator_ok(datagram, secret, request_authenticator) == Some(false)
    {
        return Err(RadiusError::Forged);
    }
    let message = reply_message(&packet);
    match packet.code {
        code::ACCESS_ACCEPT => grants(&packet).map(AccessReply::Accept),
        code::ACCESS_REJECT => Ok(AccessReply::Reject { message }),
        code::ACCESS_CHALLENGE => match (packet.first(attr::STATE), message) {
            (Some(state), Some(message)) if !state.is_empty() => Ok(AccessReply::Challenge {
                message,
                state: state.to_vec(),
            }),
            _ => Err(RadiusError::Malformed(
                "an Access-Challenge without State or Reply-Message".into(),
            )),
        },
        other => Err(RadiusError::Unexpected(format!("code {other}"))),
    }
}

/// The Reply-Message attributes joined, as text.
fn reply_message(packet: &Packet) -> Option<String> {
    let parts: Vec<String> = packet
        .all(attr::REPLY_MESSAGE)
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    (!parts.is_empty()).then(|| parts.concat())
}

fn u32_of(value: &[u8]) -> Option<u32> {
    value.try_into().ok().map(u32::from_be_bytes)
}

fn ipv4_of(value: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(value).ok().map(Ipv4Addr::from)
}

fn ipv6_of(value: &[u8]) -> Option<Ipv6Addr> {
    <[u8; 16]>::try_from(value).ok().map(Ipv6Addr::from)
}

/// An IPv6 prefix attribute: reserved byte, prefix length, then only the prefix's bytes
/// (RFC 3162 2.3).
fn ipv6_prefix_of(value: &[u8]) -> Option<Ipv6Net> {
    let (&[_, len], bytes) = value.split_first_chunk::<2>()?;
    if len > 128 || bytes.len() > 16 || bytes.len() * 8 < usize::from(len) {
        return None;
    }
    let mut octets = [0u8; 16];
    octets[..bytes.len()].copy_from_slice(bytes);
    Ipv6Net::new(Ipv6Addr::from(octets), len)
        .ok()
        .map(|n| n.trunc())
}

/// A Framed-Route's network: its first word (`10.0.0.0/8 0.0.0.0 1`).
fn route_of(value: &[u8]) -> Option<IpNet> {
    let text = std::str::from_utf8(value).ok()?;
    let first = text.split_whitespace().next()?;
    first.parse::<IpNet>().ok().map(|n| n.trunc())
}

fn grants(packet: &Packet) -> Result<Grants, RadiusError> {
    let mut g = Grants::default();
    for a in &packet.attributes {
        let v = a.value.as_slice();
        let read = match a.kind {
            attr::SERVICE_TYPE => match u32_of(v) {
                Some(SERVICE_FRAMED | SERVICE_AUTHENTICATE_ONLY) => true,
                other => {
                    return Err(RadiusError::Unexpected(format!(
                        "Service-Type {other:?} in the Access-Accept (ocserv accepts Framed-User)"
                    )))
                }
            },
            attr::CLASS => {
                g.class.push(v.to_vec());
                true
            }
            // All ones and all ones but one ask for an address from the pool.
            attr::FRAMED_IP_ADDRESS => ipv4_of(v)
                .map(|a| {
                    if u32::from(a) < 0xffff_fffe {
                        g.ipv4 = Some(a);
                    }
                })
                .is_some(),
            attr::FRAMED_IP_NETMASK => ipv4_of(v).map(|a| g.ipv4_netmask = Some(a)).is_some(),
            attr::FRAMED_IPV6_ADDRESS => ipv6_of(v)
                .and_then(|a| Ipv6Net::new(a, 64).ok())
                .map(|n| g.ipv6 = Some(n))
                .is_some(),
            attr::DELEGATED_IPV6_PREFIX => ipv6_prefix_of(v).map(|p| g.ipv6 = Some(p)).is_some(),
            attr::FRAMED_IPV6_PREFIX => ipv6_prefix_of(v)
                .map(|p| g.routes.push(IpNet::V6(p)))
                .is_some(),
            attr::FRAMED_ROUTE | attr::FRAMED_IPV6_ROUTE => {
                route_of(v).map(|r| g.routes.push(r)).is_some()
            }
            attr::DNS_SERVER_IPV6_ADDRESS => {
                ipv6_of(v).map(|a| g.dns.push(IpAddr::V6(a))).is_some()
            }
            attr::SESSION_TIMEOUT => u32_of(v).map(|t| g.session_timeout = Some(t)).is_some(),
            attr::IDLE_TIMEOUT => u32_of(v).map(|t| g.idle_timeout = Some(t)).is_some(),
            attr::ACCT_INTERIM_INTERVAL => {
                u32_of(v).map(|t| g.interim_interval = Some(t)).is_some()
            }
            _ => true,
        };
        if !read {
            g.skipped.push((
                a.kind,
                format!("a {}-byte value of the wrong form", v.len()),
            ));
        }
    }
    for (kind, value) in packet.vendor(VENDOR_MICROSOFT) {
        if matches!(kind, MS_PRIMARY_DNS | MS_SECONDARY_DNS) {
            if let Some(a) = ipv4_of(value) {
                g.dns.push(IpAddr::V4(a));
            }
        }
    }
    for (kind, value) in packet.vendor(VENDOR_ROARING_PENGUIN) {
        let bytes_per_sec = u32_of(value).map(|kilobytes| u64::from(kilobytes) * 1000);
        match kind {
            RP_UPSTREAM_SPEED_LIMIT => g.rx_per_sec = bytes_per_sec,
            RP_DOWNSTREAM_SPEED_LIMIT => g.tx_per_sec = bytes_per_sec,
            _ => {}
        }
    }
    Ok(g)
}

impl Grants {
    /// The groups in the Class attributes, as ocserv's `groupconfig` reads them:
    /// `OU=a;b;c` names several (split at `separator`), anything else one.
    pub fn groups(&self, separator: char) -> Vec<String> {
        let mut out = Vec::new();
        for class in &self.class {
            let text = String::from_utf8_lossy(class);
            match text.strip_prefix("OU=") {
                Some(list) => out.extend(
                    list.split(separator)
                        .filter(|g| !g.is_empty())
                        .map(str::to_owned),
                ),
                None if !text.is_empty() => out.push(text.into_owned()),
                None => {}
            }
        }
        out
    }
}
