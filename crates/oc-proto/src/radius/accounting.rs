//! Accounting-Request (RFC 2866) as ocserv sends it: Start when a tunnel comes up,
//! Interim-Update while it runs, Stop with the totals and the cause.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::access::NasIdentity;
use super::packet::{
    attr, code, response_is_authentic, sign_accounting_request, Attribute, Packet,
};
use super::RadiusError;

/// Acct-Status-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcctStatus {
    Start,
    Stop,
    InterimUpdate,
}

impl AcctStatus {
    fn value(self) -> u32 {
        match self {
            Self::Start => 1,
            Self::Stop => 2,
            Self::InterimUpdate => 3,
        }
    }
}

/// Acct-Terminate-Cause (RFC 2866 5.10), the ones ocserv reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminateCause {
    UserRequest,
    LostCarrier,
    LostService,
    IdleTimeout,
    SessionTimeout,
    AdminReset,
    UserError,
}

impl TerminateCause {
    fn value(self) -> u32 {
        match self {
            Self::UserRequest => 1,
            Self::LostCarrier => 2,
            Self::LostService => 3,
            Self::IdleTimeout => 4,
            Self::SessionTimeout => 5,
            Self::AdminReset => 6,
            Self::UserError => 17,
        }
    }
}

/// Service-Type Framed and Framed-Protocol PPP, as ocserv describes its sessions.
const SERVICE_FRAMED: u32 = 2;
const FRAMED_PROTOCOL: u8 = 7;
const PROTOCOL_PPP: u32 = 1;
/// Acct-Authentic RADIUS.
const AUTHENTIC_RADIUS: u32 = 1;

/// One Accounting-Request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountingRequest<'a> {
    pub status: AcctStatus,
    pub user: &'a str,
    pub session_id: &'a str,
    pub nas: &'a NasIdentity,
    pub calling_station: &'a str,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    /// The Class values of the Access-Accept, echoed (RFC 2865 5.25).
    pub class: &'a [Vec<u8>],
    pub connect_info: Option<&'a str>,
    /// Seconds since the session started (not in a Start).
    pub session_time: Option<u32>,
    /// Bytes and packets from the client, and to it.
    pub input: (u64, u64),
    pub output: (u64, u64),
    pub terminate_cause: Option<TerminateCause>,
}

fn push_u32(attrs: &mut Vec<Attribute>, kind: u8, value: u32) {
    attrs.push(Attribute {
        kind,
        value: value.to_be_bytes().to_vec(),
    });
}

fn push_bytes(attrs: &mut Vec<Attribute>, kind: u8, value: &[u8]) {
    attrs.push(Attribute {
        kind,
        value: value[..value.len().min(253)].to_vec(),
    });
}

/// A 64-bit counter as RADIUS carries it: the low 32 bits and the gigawords.
fn split(count: u64) -> (u32, u32) {
    let low = u32::try_from(count & 0xffff_ffff).unwrap_or(0);
    let high = u32::try_from(count >> 32).unwrap_or(u32::MAX);
    (low, high)
}

impl AccountingRequest<'_> {
    /// The signed request's bytes for a server holding `secret`.
    pub fn encode(&self, identifier: u8, secret: &[u8]) -> Result<Vec<u8>, RadiusError> {
        let mut a = Vec::new();
        push_u32(&mut a, attr::ACCT_STATUS_TYPE, self.status.value());
        push_bytes(&mut a, attr::USER_NAME, self.user.as_bytes());
        push_bytes(&mut a, attr::ACCT_SESSION_ID, self.session_id.as_bytes());
        match self.nas.address {
            Some(IpAddr::V4(x)) => push_bytes(&mut a, attr::NAS_IP_ADDRESS, &x.octets()),
            Some(IpAddr::V6(x)) => push_bytes(&mut a, attr::NAS_IPV6_ADDRESS, &x.octets()),
            None => {}
        }
        if let Some(id) = &self.nas.identifier {
            push_bytes(&mut a, attr::NAS_IDENTIFIER, id.as_bytes());
        }
        push_u32(&mut a, attr::SERVICE_TYPE, SERVICE_FRAMED);
        push_u32(&mut a, FRAMED_PROTOCOL, PROTOCOL_PPP);
        push_u32(&mut a, attr::ACCT_AUTHENTIC, AUTHENTIC_RADIUS);
        push_bytes(
            &mut a,
            attr::CALLING_STATION_ID,
            self.calling_station.as_bytes(),
        );
        if let Some(ip) = self.ipv4 {
            push_bytes(&mut a, attr::FRAMED_IP_ADDRESS, &ip.octets());
        }
        if let Some(ip) = self.ipv6 {
            push_bytes(&mut a, attr::FRAMED_IPV6_ADDRESS, &ip.octets());
        }
        for class in self.class {
            push_bytes(&mut a, attr::CLASS, class);
        }
        if let Some(info) = self.connect_info {
            push_bytes(&mut a, attr::CONNECT_INFO, info.as_bytes());
        }
        if self.status != AcctStatus::Start {
            push_u32(
                &mut a,
                attr::ACCT_SESSION_TIME,
                self.session_time.unwrap_or(0),
            );
            let (in_low, in_high) = split(self.input.0);
            let (out_low, out_high) = split(self.output.0);
            push_u32(&mut a, attr::ACCT_INPUT_OCTETS, in_low);
            push_u32(&mut a, attr::ACCT_INPUT_GIGAWORDS, in_high);
            push_u32(&mut a, attr::ACCT_OUTPUT_OCTETS, out_low);
            push_u32(&mut a, attr::ACCT_OUTPUT_GIGAWORDS, out_high);
            push_u32(&mut a, attr::ACCT_INPUT_PACKETS, split(self.input.1).0);
            push_u32(&mut a, attr::ACCT_OUTPUT_PACKETS, split(self.output.1).0);
        }
        if let Some(cause) = self.terminate_cause {
            push_u32(&mut a, attr::ACCT_TERMINATE_CAUSE, cause.value());
        }
        let packet = Packet {
            code: code::ACCOUNTING_REQUEST,
            identifier,
            authenticator: [0; 16],
            attributes: a,
        };
        let mut bytes = packet.encode()?;
        sign_accounting_request(&mut bytes, secret);
        Ok(bytes)
    }
}

/// Checks the Accounting-Response to the request `request` (its bytes as sent).
pub fn read_accounting_response(
    datagram: &[u8],
    request: &[u8],
    secret: &[u8],
) -> Result<(), RadiusError> {
    let packet = Packet::decode(datagram)?;
    let (Some(&identifier), Some(authenticator)) = (
        request.get(1),
        request
            .get(4..20)
            .and_then(|a| <&[u8; 16]>::try_from(a).ok()),
    ) else {
        return Err(RadiusError::Unexpected("no request to match".into()));
    };
    if packet.code != code::ACCOUNTING_RESPONSE || packet.identifier != identifier {
        return Err(RadiusError::Unexpected(format!(
            "code {} identifier {} (ours {identifier})",
            packet.code, packet.identifier
        )));
    }
    if !response_is_authentic(datagram, authenticator, secret) {
        return Err(RadiusError::Forged);
    }
    Ok(())
}
