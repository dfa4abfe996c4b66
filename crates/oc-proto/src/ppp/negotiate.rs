//! What each side of the link asks for and accepts: the option handling of LCP, IPCP and
//! IPV6CP Configure-Requests, Naks and Rejects (RFC 1661, 1332, 1877, 5072), as upstream
//! openconnect negotiates them, plus the gateway side that assigns addresses.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::packet::{protocol, ConfigOption, ControlPacket};

/// LCP option types.
pub(super) mod lcp {
    pub const MRU: u8 = 1;
    pub const ACCM: u8 = 2;
    pub const AUTH_PROTOCOL: u8 = 3;
    pub const MAGIC: u8 = 5;
    pub const PFC: u8 = 7;
    pub const ACFC: u8 = 8;
}

/// IPCP option types.
pub(super) mod ipcp {
    /// RFC 1172's deprecated pair of addresses: ignored, as RFC 1332 says.
    pub const IP_ADDRESSES: u8 = 1;
    pub const IP_ADDRESS: u8 = 3;
    /// RFC 1877: primary DNS 129, primary NBNS 130, secondary DNS 131, secondary NBNS 132.
    pub const NAME_SERVERS: std::ops::RangeInclusive<u8> = 129..=132;
}

/// IPV6CP's one option.
pub(super) const IPV6CP_INTERFACE_ID: u8 = 1;

/// The side of the link: a client takes addresses, a gateway hands them out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Client,
    Gateway(Assignment),
}

/// What a gateway gives its peer in Naks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assignment {
    pub peer_ipv4: Option<Ipv4Addr>,
    /// Primary and secondary DNS servers offered when the peer asks.
    pub dns: Vec<Ipv4Addr>,
    pub peer_interface_id: Option<[u8; 8]>,
}

/// The options of a peer's Configure-Request up to the first malformed one (the rest is
/// ignored, and `log` says so).
fn request_options<'a>(
    packet: &ControlPacket<'a>,
    protocol: u16,
    log: &mut Vec<String>,
) -> Vec<ConfigOption<'a>> {
    let mut options = Vec::new();
    for option in packet.options(protocol) {
        match option {
            Ok(o) => options.push(o),
            Err(_) => {
                log.push(format!(
                    "{} Configure-Request with a malformed option; rest ignored",
                    super::packet::protocol_name(protocol)
                ));
                break;
            }
        }
    }
    options
}

/// Our answer to a peer's Configure-Request.
#[derive(Debug, Default)]
pub(super) struct Answer {
    rejected: Vec<u8>,
    naked: Vec<u8>,
}

impl Answer {
    fn reject(&mut self, option: &ConfigOption<'_>) {
        option.emit_self(&mut self.rejected);
    }

    fn nak(&mut self, kind: u8, value: &[u8]) {
        ConfigOption::emit(kind, value, &mut self.naked);
    }

    /// The reply's code and options: Reject if anything is rejected (RFC 1661: only the
    /// rejected options), else Nak, else Ack of the request as it came.
    pub(super) fn reply<'a>(&'a self, request: &'a [u8]) -> (u8, &'a [u8]) {
        use super::packet::code;
        if !self.rejected.is_empty() {
            (code::CONFIGURE_REJECT, &self.rejected)
        } else if !self.naked.is_empty() {
            (code::CONFIGURE_NAK, &self.naked)
        } else {
            (code::CONFIGURE_ACK, request)
        }
    }

    pub(super) fn acks(&self) -> bool {
        self.rejected.is_empty() && self.naked.is_empty()
    }
}

/// LCP options we ask for, and what the peer asked of us.
#[derive(Debug, Clone)]
pub(super) struct LcpState {
    pub mtu: u16,
    pub ask_mru: bool,
    pub ask_accm: bool,
    pub ask_magic: bool,
    pub ask_pfc: bool,
    pub ask_acfc: bool,
    /// Once, a peer MRU below our MTU is Nak'ed with our MTU (as upstream).
    pub coax_mru: bool,
    pub magic: u32,
    /// Agreed from the peer's request (applied on our Ack).
    pub peer: PeerLcp,
}

/// What the peer asked for in the Configure-Request we acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PeerLcp {
    pub mru: Option<u16>,
    /// Control bytes to escape in HDLC frames we send (all, unless the peer said).
    pub accm: u32,
    pub magic: Option<u32>,
    pub pfc: bool,
    pub acfc: bool,
}

impl Default for PeerLcp {
    fn default() -> Self {
        Self {
            mru: None,
            accm: super::hdlc::ACCM_ALL,
            magic: None,
            pfc: false,
            acfc: false,
        }
    }
}

impl LcpState {
    pub(super) fn request(&self, hdlc: bool, out: &mut Vec<u8>) {
        if self.ask_mru {
            ConfigOption::emit(lcp::MRU, &self.mtu.to_be_bytes(), out);
        }
        if hdlc && self.ask_accm {
            ConfigOption::emit(lcp::ACCM, &0u32.to_be_bytes(), out);
        }
        if self.ask_magic {
            ConfigOption::emit(lcp::MAGIC, &self.magic.to_be_bytes(), out);
        }
        if self.ask_pfc {
            ConfigOption::emit(lcp::PFC, &[], out);
        }
        if self.ask_acfc {
            ConfigOption::emit(lcp::ACFC, &[], out);
        }
    }

    /// Answers the peer's request; its values take effect when the answer is an Ack.
    pub(super) fn answer(&mut self, packet: &ControlPacket<'_>, log: &mut Vec<String>) -> Answer {
        let mut answer = Answer::default();
        let mut peer = PeerLcp::default();
        for option in request_options(packet, protocol::LCP, log) {
            match (option.kind, option.value.len()) {
                (lcp::MRU, 2) => {
                    let mru = option.be16().unwrap_or(0);
                    if self.coax_mru && mru < self.mtu {
                        self.coax_mru = false;
                        log.push(format!("peer MRU {mru}: offering our MTU {}", self.mtu));
                        answer.nak(lcp::MRU, &self.mtu.to_be_bytes());
                    } else {
                        peer.mru = Some(mru);
                    }
                }
                (lcp::ACCM, 4) => peer.accm = option.be32().unwrap_or(u32::MAX),
                (lcp::MAGIC, 4) => {
                    let magic = option.be32().unwrap_or(0);
                    if self.ask_magic && magic == self.magic && magic != 0 {
                        // RFC 1661 6.4: the same number both ways may be a looped-back
                        // line; propose another.
                        answer.nak(lcp::MAGIC, &(!magic).rotate_left(7).to_be_bytes());
                    } else {
                        peer.magic = Some(magic);
                    }
                }
                (lcp::PFC, 0) => peer.pfc = true,
                (lcp::ACFC, 0) => peer.acfc = true,
                _ => answer.reject(&option),
            }
        }
        if answer.acks() {
            self.peer = peer;
        }
        answer
    }

    /// Applies the peer's Nak or Reject of our request; an error names what cannot be
    /// agreed.
    pub(super) fn refused(
        &mut self,
        packet: &ControlPacket<'_>,
        nak: bool,
        log: &mut Vec<String>,
    ) -> Result<(), String> {
        for option in packet.options(protocol::LCP).flatten() {
            match option.kind {
                lcp::MRU => self.ask_mru = false,
                lcp::ACCM => self.ask_accm = false,
                lcp::MAGIC if nak => self.magic = self.magic.rotate_left(13) ^ 0x5bd1_e995,
                lcp::MAGIC => self.ask_magic = false,
                lcp::PFC => self.ask_pfc = false,
                lcp::ACFC => self.ask_acfc = false,
                lcp::AUTH_PROTOCOL if nak => {
                    return Err(
                        "the peer requires PPP authentication (PAP/CHAP), which is not supported"
                            .into(),
                    )
                }
                other => log.push(format!(
                    "peer {} LCP option {other} we did not ask for; ignored",
                    if nak { "Nak'ed" } else { "rejected" }
                )),
            }
        }
        Ok(())
    }
}

/// IPCP: our address and name servers, and the peer's.
#[derive(Debug, Clone, Default)]
pub(super) struct IpcpState {
    /// Ours: 0.0.0.0 asks the peer for one.
    pub address: Option<Ipv4Addr>,
    /// The address we were told before PPP (a client then refuses another).
    pub configured: bool,
    pub peer_address: Option<Ipv4Addr>,
    /// Name servers still asked for, by option type (129..=132).
    pub soliciting: Vec<u8>,
    /// DNS and NBNS servers learned, by option type.
    pub name_servers: Vec<(u8, Ipv4Addr)>,
}

impl IpcpState {
    pub(super) fn request(&self, out: &mut Vec<u8>) {
        let address = self.address.unwrap_or(Ipv4Addr::UNSPECIFIED);
        ConfigOption::emit(ipcp::IP_ADDRESS, &address.octets(), out);
        for kind in &self.soliciting {
            ConfigOption::emit(*kind, &[0; 4], out);
        }
    }

    pub(super) fn answer(
        &mut self,
        packet: &ControlPacket<'_>,
        role: &Role,
        log: &mut Vec<String>,
    ) -> Answer {
        let mut answer = Answer::default();
        let mut peer_address = None;
        for option in request_options(packet, protocol::IPCP, log) {
            let value = option.be32().map(Ipv4Addr::from);
            match (option.kind, value, role) {
                (ipcp::IP_ADDRESSES, _, _) if option.value.len() == 8 => {}
                (ipcp::IP_ADDRESS, Some(addr), Role::Client) => peer_address = Some(addr),
                (ipcp::IP_ADDRESS, Some(addr), Role::Gateway(assign)) => match assign.peer_ipv4 {
                    Some(assigned) if assigned != addr => {
                        answer.nak(ipcp::IP_ADDRESS, &assigned.octets());
                    }
                    Some(_) => peer_address = Some(addr),
                    None => answer.reject(&option),
                },
                (kind, Some(addr), Role::Gateway(assign)) if kind == 129 || kind == 131 => {
                    let index = usize::from(kind == 131);
                    match assign.dns.get(index) {
                        Some(dns) if *dns != addr => answer.nak(kind, &dns.octets()),
                        Some(_) => {}
                        None => answer.reject(&option),
                    }
                }
                _ => answer.reject(&option),
            }
        }
        if answer.acks() {
            self.peer_address = peer_address;
        }
        answer
    }

    pub(super) fn refused(
        &mut self,
        packet: &ControlPacket<'_>,
        nak: bool,
        role: &Role,
        log: &mut Vec<String>,
    ) -> Result<Refusal, String> {
        for option in packet.options(protocol::IPCP).flatten() {
            let value = option.be32().map(Ipv4Addr::from);
            match (option.kind, value) {
                (ipcp::IP_ADDRESS, Some(addr)) if nak && !addr.is_unspecified() => {
                    if matches!(role, Role::Gateway(_)) {
                        log.push(format!(
                            "peer proposed {addr} as our own address; kept ours"
                        ));
                    } else if self.configured && self.address != Some(addr) {
                        log.push(format!(
                            "peer refused our IPv4 address {} and offered {addr}: no IPv4",
                            self.address.unwrap_or(Ipv4Addr::UNSPECIFIED)
                        ));
                        return Ok(Refusal::DropFamily);
                    } else {
                        self.address = Some(addr);
                    }
                }
                (ipcp::IP_ADDRESS, _) => {
                    return Err(format!(
                        "the peer {} our IPv4 address request",
                        if nak {
                            "Nak'ed without an address"
                        } else {
                            "rejected"
                        }
                    ))
                }
                (kind, value) if ipcp::NAME_SERVERS.contains(&kind) => {
                    self.soliciting.retain(|k| *k != kind);
                    if let Some(addr) = value.filter(|a| nak && !a.is_unspecified()) {
                        self.name_servers.retain(|(k, _)| *k != kind);
                        self.name_servers.push((kind, addr));
                    }
                }
                (other, _) => log.push(format!("peer refused IPCP option {other}; ignored")),
            }
        }
        Ok(Refusal::AskAgain)
    }

    /// The name servers learned, DNS and NBNS, primary first.
    pub(super) fn servers(&self, dns: bool) -> Vec<Ipv4Addr> {
        let (primary, secondary) = if dns { (129, 131) } else { (130, 132) };
        [primary, secondary]
            .iter()
            .filter_map(|k| {
                self.name_servers
                    .iter()
                    .find(|(kind, _)| kind == k)
                    .map(|(_, a)| *a)
            })
            .collect()
    }
}

/// What a Nak or Reject of ours leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    AskAgain,
    /// The address family is given up.
    DropFamily,
}

/// IPV6CP: interface identifiers.
#[derive(Debug, Clone, Default)]
pub(super) struct Ipv6cpState {
    pub interface_id: [u8; 8],
    pub peer_interface_id: Option<[u8; 8]>,
}

impl Ipv6cpState {
    pub(super) fn request(&self, out: &mut Vec<u8>) {
        ConfigOption::emit(IPV6CP_INTERFACE_ID, &self.interface_id, out);
    }

    pub(super) fn answer(
        &mut self,
        packet: &ControlPacket<'_>,
        role: &Role,
        log: &mut Vec<String>,
    ) -> Answer {
        let mut answer = Answer::default();
        let mut peer = None;
        for option in request_options(packet, protocol::IPV6CP, log) {
            let id = <[u8; 8]>::try_from(option.value).ok();
            match (option.kind, id, role) {
                (IPV6CP_INTERFACE_ID, Some(id), Role::Client) => peer = Some(id),
                (IPV6CP_INTERFACE_ID, Some(id), Role::Gateway(assign)) => {
                    match assign.peer_interface_id {
                        Some(assigned) if id == [0; 8] || id == self.interface_id => {
                            answer.nak(IPV6CP_INTERFACE_ID, &assigned);
                        }
                        _ => peer = Some(id),
                    }
                }
                _ => answer.reject(&option),
            }
        }
        if answer.acks() {
            self.peer_interface_id = peer;
        }
        answer
    }

    pub(super) fn refused(&mut self, packet: &ControlPacket<'_>, nak: bool) -> Refusal {
        for option in packet.options(protocol::IPV6CP).flatten() {
            let id = <[u8; 8]>::try_from(option.value).ok();
            match (option.kind, id) {
                (IPV6CP_INTERFACE_ID, Some(id)) if nak && id != [0; 8] => self.interface_id = id,
                (IPV6CP_INTERFACE_ID, _) => return Refusal::DropFamily,
                _ => {}
            }
        }
        Refusal::AskAgain
    }

    /// The link-local address of an interface identifier.
    pub(super) fn link_local(id: [u8; 8]) -> Ipv6Addr {
        let mut bytes = [0u8; 16];
        bytes[0] = 0xfe;
        bytes[1] = 0x80;
        bytes[8..].copy_from_slice(&id);
        Ipv6Addr::from(bytes)
    }
}
