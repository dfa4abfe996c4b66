//! The PPP link state machine: LCP, then IPCP and IPV6CP, data, keepalives and termination.
//! Bytes and `now` in; encapsulated frames, events and the next deadline out.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use thiserror::Error;

use super::deframe::Deframer;
use super::encap::{Encapsulation, FrameError};
use super::hdlc::ACCM_ALL;
use super::negotiate::{IpcpState, Ipv6cpState, LcpState, PeerLcp, Refusal, Role};
use super::packet::{code, protocol, protocol_name, write_header, ControlPacket, PppFrame};
use crate::liveness::{Liveness, LivenessAction, Timers};

/// Configure-Requests are sent again after this long without an answer (RFC 1661's
/// restart timer; upstream's 3 s).
pub const RESTART: Duration = Duration::from_secs(3);
/// Configure-Requests before LCP gives up (RFC 1661's Max-Configure).
pub const MAX_CONFIGURE: u32 = 10;
/// Configure-Requests before an address family the peer never answered is given up, once
/// another family is up (slirp ignores IPV6CP, for one).
pub const MAX_CONFIGURE_SILENT: u32 = 3;
/// How long a Terminate-Request waits for its Ack.
pub const TERMINATE_WAIT: Duration = Duration::from_secs(1);
/// Terminate-Requests sent on a datagram channel (one on TLS, which does not lose them).
pub const TERMINATE_TRIES_DATAGRAM: u32 = 3;
/// Frames larger than this (or the MTU, if larger) end the link.
const MIN_RECEIVE_LIMIT: usize = 16384;

#[derive(Debug, Clone)]
pub struct PppConfig {
    pub encapsulation: Encapsulation,
    pub role: Role,
    pub want_ipv4: bool,
    pub want_ipv6: bool,
    /// The MRU we ask for: the tunnel MTU the channel allows.
    pub mtu: u16,
    /// A random LCP magic number (the caller's randomness).
    pub magic: u32,
    /// A client's address known before PPP, or a gateway's own.
    pub ipv4: Option<Ipv4Addr>,
    /// A client's global IPv6 address known before PPP, or a gateway's own.
    pub ipv6: Option<Ipv6Addr>,
    /// Ask the peer for DNS and NBNS servers (a client that knows none yet).
    pub ask_name_servers: bool,
    /// TLS (a Terminate-Request is sent once) rather than DTLS (up to three).
    pub reliable: bool,
    /// Echo-Request after this long without hearing from the peer; dead after twice that.
    pub dpd: Option<Duration>,
    /// Discard-Request after this long without sending anything.
    pub keepalive: Option<Duration>,
}

/// The addresses PPP agreed, once every wanted network protocol is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PppNetwork {
    pub ipv4: Option<Ipv4Addr>,
    pub peer_ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    pub peer_ipv6: Option<Ipv6Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub nbns: Vec<Ipv4Addr>,
    /// The peer's MRU if it gave one, else ours.
    pub mtu: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PppEvent {
    /// Every wanted network protocol is open: packets can flow.
    NetworkUp(PppNetwork),
    /// The link is closed; nothing more will be sent.
    Closed(Closed),
    /// Something worth a debug line (what the peer asked for, what was refused).
    Log(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// The peer sent a Terminate-Request (acknowledged), with its reason text if any.
    ByPeer { reason: Option<String> },
    /// Our Terminate-Request was acknowledged, or went unanswered (`acked` false).
    ByUs { acked: bool },
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PppError {
    #[error("PPP {layer} negotiation did not finish after {tries} Configure-Requests")]
    NoAgreement { layer: &'static str, tries: u32 },
    #[error("no PPP network protocol left: IPv4 and IPv6 were refused or turned off")]
    NoNetworkProtocols,
    #[error("PPP negotiation failed: {0}")]
    Refused(String),
    #[error("PPP peer silent for {0:?} (dead peer detection)")]
    PeerDead(Duration),
    #[error("an IP packet cannot be sent before the PPP network phase")]
    NotReady,
    #[error(transparent)]
    Frame(#[from] FrameError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// LCP negotiating.
    Establish,
    /// LCP open, network protocols negotiating.
    Opened,
    Network,
    Terminating {
        sent_at: Instant,
        tries: u32,
    },
    Closed,
}

/// One control protocol's progress.
#[derive(Debug, Clone, Default)]
struct Cp {
    wanted: bool,
    /// The id of our current Configure-Request.
    request_id: u8,
    next_id: u8,
    requested_at: Option<Instant>,
    tries: u32,
    ack_received: bool,
    ack_sent: bool,
    /// Any packet of this protocol from the peer.
    heard: bool,
}

impl Cp {
    fn new(wanted: bool) -> Self {
        Self {
            wanted,
            ..Self::default()
        }
    }

    fn is_open(&self) -> bool {
        self.ack_received && self.ack_sent
    }

    fn take_id(&mut self) -> u8 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }
}

/// A PPP link over one channel.
#[derive(Debug)]
pub struct Ppp {
    deframer: Deframer,
    link: Link,
}

#[derive(Debug)]
struct Link {
    config: PppConfig,
    phase: Phase,
    lcp_cp: Cp,
    ipcp_cp: Cp,
    ipv6cp_cp: Cp,
    lcp: LcpState,
    ipcp: IpcpState,
    ipv6cp: Ipv6cpState,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<PppEvent>,
    /// Echo DPD and Discard keepalives, on openconnect's timers.
    liveness: Liveness,
    /// Scratch for building control packets.
    scratch: Vec<u8>,
}

impl Ppp {
    /// A link that starts negotiating at once (its first LCP Configure-Request is ready to
    /// send).
    pub fn new(config: PppConfig, now: Instant) -> Self {
        let limit = usize::from(config.mtu).max(MIN_RECEIVE_LIMIT) + 8;
        let deframer = Deframer::new(config.encapsulation, limit);
        let mut link = Link::new(config, now);
        link.establish(now);
        Self { deframer, link }
    }

    /// Starts negotiating again from nothing on a new channel (upstream restarts PPP when
    /// it moves between TLS and DTLS), keeping the addresses learned.
    pub fn restart(&mut self, reliable: bool, now: Instant) {
        let limit = usize::from(self.link.config.mtu).max(MIN_RECEIVE_LIMIT) + 8;
        self.deframer = Deframer::new(self.link.config.encapsulation, limit);
        self.link.config.reliable = reliable;
        self.link.reset(now);
        self.link.establish(now);
    }

    /// Feeds what the channel read; IP packets go to `deliver`. Bad frames are dropped (and
    /// logged as events); an error ends the link.
    pub fn handle_input(
        &mut self,
        bytes: &[u8],
        now: Instant,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<(), PppError> {
        let link = &mut self.link;
        self.deframer.feed(bytes, |frame| match frame {
            Ok(frame) => link.handle_frame(frame, now, deliver),
            Err(e) if e.is_recoverable() => {
                link.log(format!("dropped: {e}"));
                Ok(())
            }
            Err(e) => Err(e.into()),
        })
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), PppError> {
        self.link.handle_timeout(now)
    }

    /// The next deadline to call [`handle_timeout`](Self::handle_timeout) at.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.link.poll_timeout()
    }

    /// Encapsulated control frames to write to the channel.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.link.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<PppEvent> {
        self.link.events.pop_front()
    }

    /// Appends `packet` (IPv4 or IPv6) to `out`, encapsulated for the channel.
    pub fn encapsulate_ip(
        &mut self,
        packet: &[u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<(), PppError> {
        if self.link.phase != Phase::Network {
            return Err(PppError::NotReady);
        }
        let proto = match packet.first().map(|b| b >> 4) {
            Some(6) => protocol::IPV6,
            _ => protocol::IPV4,
        };
        let peer = self.link.lcp.peer;
        let header = &mut self.link.scratch;
        header.clear();
        write_header(proto, peer.acfc, peer.pfc, header);
        self.link
            .config
            .encapsulation
            .encapsulate_parts(&[header, packet], peer.accm, out)?;
        self.link.liveness.on_send(now);
        Ok(())
    }

    /// Ends the link: a Terminate-Request, then [`PppEvent::Closed`] when it is
    /// acknowledged or given up on.
    pub fn terminate(&mut self, now: Instant) {
        match self.link.phase {
            Phase::Closed | Phase::Terminating { .. } => {}
            _ => self.link.send_terminate(0, now),
        }
    }

    pub fn is_network(&self) -> bool {
        self.link.phase == Phase::Network
    }

    pub fn is_closed(&self) -> bool {
        self.link.phase == Phase::Closed
    }
}

impl Link {
    fn new(config: PppConfig, now: Instant) -> Self {
        let offers = config.encapsulation.offers_header_compression();
        let client = matches!(config.role, Role::Client);
        let lcp = LcpState {
            mtu: config.mtu,
            ask_mru: true,
            ask_accm: true,
            ask_magic: true,
            ask_pfc: offers,
            ask_acfc: offers,
            coax_mru: client,
            magic: config.magic,
            peer: PeerLcp::default(),
        };
        let ipcp = IpcpState {
            address: config.ipv4,
            configured: client && config.ipv4.is_some(),
            soliciting: if client && config.ask_name_servers {
                vec![129, 130, 131, 132]
            } else {
                Vec::new()
            },
            ..IpcpState::default()
        };
        let mut ipv6cp = Ipv6cpState::default();
        if let Some(addr) = config.ipv6 {
            ipv6cp
                .interface_id
                .copy_from_slice(addr.octets().get(8..).unwrap_or(&[0; 8]));
        }
        Self {
            phase: Phase::Establish,
            lcp_cp: Cp::new(true),
            ipcp_cp: Cp::new(config.want_ipv4),
            ipv6cp_cp: Cp::new(config.want_ipv6),
            lcp,
            ipcp,
            ipv6cp,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            liveness: Liveness::new(liveness_timers(&config), now),
            scratch: Vec::new(),
            config,
        }
    }

    fn reset(&mut self, now: Instant) {
        self.phase = Phase::Establish;
        self.lcp_cp = Cp::new(true);
        self.ipcp_cp = Cp::new(self.config.want_ipv4);
        self.ipv6cp_cp = Cp::new(self.config.want_ipv6);
        self.lcp.peer = PeerLcp::default();
        self.lcp.coax_mru = matches!(self.config.role, Role::Client);
        self.transmit.clear();
        self.liveness = Liveness::new(liveness_timers(&self.config), now);
    }

    fn log(&mut self, line: String) {
        self.events.push_back(PppEvent::Log(line));
    }

    fn cp_mut(&mut self, proto: u16) -> &mut Cp {
        match proto {
            protocol::IPCP => &mut self.ipcp_cp,
            protocol::IPV6CP => &mut self.ipv6cp_cp,
            _ => &mut self.lcp_cp,
        }
    }

    /// Queues a control packet. LCP always goes with the full header and, in HDLC, every
    /// control byte escaped (RFC 1662 7.1); the rest as the peer agreed.
    fn send_control(&mut self, proto: u16, code: u8, id: u8, data: &[u8], now: Instant) {
        let peer = self.lcp.peer;
        let is_lcp = proto == protocol::LCP;
        let mut frame = std::mem::take(&mut self.scratch);
        frame.clear();
        write_header(proto, peer.acfc && !is_lcp, peer.pfc && !is_lcp, &mut frame);
        ControlPacket::emit(code, id, data, &mut frame);
        let accm = if is_lcp { ACCM_ALL } else { peer.accm };
        let mut wire = Vec::with_capacity(frame.len() + 16);
        match self
            .config
            .encapsulation
            .encapsulate(&frame, accm, &mut wire)
        {
            Ok(()) => {
                self.transmit.push_back(wire);
                self.liveness.on_send(now);
            }
            Err(e) => self.log(format!("{} packet not sent: {e}", protocol_name(proto))),
        }
        self.scratch = frame;
    }

    fn send_request(&mut self, proto: u16, now: Instant) {
        let mut options = Vec::new();
        match proto {
            protocol::LCP => self
                .lcp
                .request(self.config.encapsulation.is_hdlc(), &mut options),
            protocol::IPCP => self.ipcp.request(&mut options),
            _ => self.ipv6cp.request(&mut options),
        }
        let cp = self.cp_mut(proto);
        let id = cp.take_id();
        cp.request_id = id;
        cp.requested_at = Some(now);
        cp.tries += 1;
        self.send_control(proto, code::CONFIGURE_REQUEST, id, &options, now);
    }

    fn establish(&mut self, now: Instant) {
        self.send_request(protocol::LCP, now);
    }

    fn send_terminate(&mut self, tries: u32, now: Instant) {
        let id = self.lcp_cp.take_id();
        self.send_control(protocol::LCP, code::TERMINATE_REQUEST, id, &[], now);
        self.phase = Phase::Terminating {
            sent_at: now,
            tries: tries + 1,
        };
    }

    fn close(&mut self, how: Closed) {
        self.phase = Phase::Closed;
        self.events.push_back(PppEvent::Closed(how));
    }

    fn handle_frame(
        &mut self,
        frame: &[u8],
        now: Instant,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<(), PppError> {
        let frame = match PppFrame::parse(frame) {
            Ok(f) => f,
            Err(e) => {
                self.log(format!("dropped: {e}"));
                return Ok(());
            }
        };
        self.liveness.on_receive(now);
        match frame.protocol {
            protocol::IPV4 | protocol::IPV6 if self.phase == Phase::Network => {
                deliver(frame.payload);
                Ok(())
            }
            protocol::IPV4 | protocol::IPV6 => {
                self.log(format!(
                    "{} packet before the network phase dropped",
                    protocol_name(frame.protocol)
                ));
                Ok(())
            }
            protocol::LCP => self.handle_control(protocol::LCP, frame.payload, now),
            protocol::IPCP | protocol::IPV6CP if self.phase == Phase::Establish => Ok(()),
            protocol::IPCP | protocol::IPV6CP if self.cp_mut(frame.protocol).wanted => {
                self.handle_control(frame.protocol, frame.payload, now)
            }
            other => {
                if !matches!(self.phase, Phase::Establish | Phase::Closed) {
                    self.log(format!("{} ({other:#06x}) rejected", protocol_name(other)));
                    let mut data = other.to_be_bytes().to_vec();
                    let room = usize::from(self.config.mtu).saturating_sub(6);
                    data.extend_from_slice(frame.payload.get(..room).unwrap_or(frame.payload));
                    let id = self.lcp_cp.take_id();
                    self.send_control(protocol::LCP, code::PROTOCOL_REJECT, id, &data, now);
                }
                Ok(())
            }
        }
    }

    fn handle_control(&mut self, proto: u16, payload: &[u8], now: Instant) -> Result<(), PppError> {
        let packet = match ControlPacket::parse(proto, payload) {
            Ok(p) => p,
            Err(e) => {
                self.log(format!("dropped: {e}"));
                return Ok(());
            }
        };
        self.cp_mut(proto).heard = true;
        if self.phase == Phase::Closed {
            return Ok(());
        }
        match packet.code {
            code::CONFIGURE_REQUEST => self.configure_request(proto, &packet, now),
            code::CONFIGURE_ACK => {
                let cp = self.cp_mut(proto);
                if packet.id == cp.request_id && cp.requested_at.is_some() {
                    cp.ack_received = true;
                }
            }
            code::CONFIGURE_NAK | code::CONFIGURE_REJECT => {
                if packet.id == self.cp_mut(proto).request_id {
                    self.refused(proto, &packet, now)?;
                }
            }
            code::TERMINATE_REQUEST => {
                self.send_control(proto, code::TERMINATE_ACK, packet.id, &[], now);
                if proto == protocol::LCP {
                    let reason = (!packet.data.is_empty())
                        .then(|| String::from_utf8_lossy(packet.data).into_owned());
                    self.close(Closed::ByPeer { reason });
                } else {
                    self.network_closed(proto)?;
                }
                return Ok(());
            }
            code::TERMINATE_ACK => {
                if proto == protocol::LCP && matches!(self.phase, Phase::Terminating { .. }) {
                    self.close(Closed::ByUs { acked: true });
                }
                return Ok(());
            }
            code::ECHO_REQUEST if proto == protocol::LCP => {
                if self.phase != Phase::Establish {
                    let mut data = self.our_magic().to_be_bytes().to_vec();
                    data.extend_from_slice(packet.data.get(4..).unwrap_or_default());
                    self.send_control(proto, code::ECHO_REPLY, packet.id, &data, now);
                }
                return Ok(());
            }
            code::ECHO_REPLY | code::DISCARD_REQUEST if proto == protocol::LCP => return Ok(()),
            code::PROTOCOL_REJECT if proto == protocol::LCP => {
                let rejected = packet
                    .data
                    .get(..2)
                    .map(|p| u16::from_be_bytes([p[0], p[1]]));
                match rejected {
                    Some(p @ (protocol::IPCP | protocol::IPV6CP)) => self.network_closed(p)?,
                    Some(p) => self.log(format!("peer rejected protocol {p:#06x}")),
                    None => {}
                }
            }
            code::CODE_REJECT => self.log(format!(
                "peer rejected {} code {}",
                protocol_name(proto),
                packet.data.first().copied().unwrap_or(0)
            )),
            other => {
                self.log(format!("{} code {other} rejected", protocol_name(proto)));
                let mut data = Vec::new();
                ControlPacket::emit(other, packet.id, packet.data, &mut data);
                let id = self.lcp_cp.take_id();
                self.send_control(proto, code::CODE_REJECT, id, &data, now);
                return Ok(());
            }
        }
        self.advance(now)
    }

    fn our_magic(&self) -> u32 {
        if self.lcp.ask_magic {
            self.lcp.magic
        } else {
            0
        }
    }

    fn configure_request(&mut self, proto: u16, packet: &ControlPacket<'_>, now: Instant) {
        let mut log = Vec::new();
        let answer = match proto {
            protocol::LCP => self.lcp.answer(packet, &mut log),
            protocol::IPCP => self.ipcp.answer(packet, &self.config.role, &mut log),
            _ => self.ipv6cp.answer(packet, &self.config.role, &mut log),
        };
        for line in log {
            self.log(line);
        }
        let (reply, data) = answer.reply(packet.data);
        self.send_control(proto, reply, packet.id, data, now);
        self.cp_mut(proto).ack_sent = answer.acks();
    }

    fn refused(
        &mut self,
        proto: u16,
        packet: &ControlPacket<'_>,
        now: Instant,
    ) -> Result<(), PppError> {
        let nak = packet.code == code::CONFIGURE_NAK;
        let mut log = Vec::new();
        let outcome = match proto {
            protocol::LCP => self
                .lcp
                .refused(packet, nak, &mut log)
                .map(|()| Refusal::AskAgain),
            protocol::IPCP => self.ipcp.refused(packet, nak, &self.config.role, &mut log),
            _ => Ok(self.ipv6cp.refused(packet, nak)),
        };
        for line in log {
            self.log(line);
        }
        match outcome.map_err(PppError::Refused)? {
            Refusal::AskAgain => {
                self.send_request(proto, now);
                Ok(())
            }
            Refusal::DropFamily => self.network_closed(proto),
        }
    }

    /// The peer refused or closed a network protocol: that family is given up.
    fn network_closed(&mut self, proto: u16) -> Result<(), PppError> {
        let cp = self.cp_mut(proto);
        if !cp.wanted {
            return Ok(());
        }
        cp.wanted = false;
        let family = if proto == protocol::IPCP {
            "IPv4"
        } else {
            "IPv6"
        };
        self.log(format!("peer refused {family}; going on without it"));
        if !self.ipcp_cp.wanted && !self.ipv6cp_cp.wanted {
            return Err(PppError::NoNetworkProtocols);
        }
        Ok(())
    }

    /// Moves on once the layer below is open.
    fn advance(&mut self, now: Instant) -> Result<(), PppError> {
        if self.phase == Phase::Establish && self.lcp_cp.is_open() {
            self.phase = Phase::Opened;
            self.log("LCP open".into());
            for proto in [protocol::IPCP, protocol::IPV6CP] {
                if self.cp_mut(proto).wanted {
                    self.send_request(proto, now);
                }
            }
        }
        if self.phase != Phase::Opened {
            return Ok(());
        }
        if !self.ipcp_cp.wanted && !self.ipv6cp_cp.wanted {
            return Err(PppError::NoNetworkProtocols);
        }
        let pending = [&self.ipcp_cp, &self.ipv6cp_cp]
            .iter()
            .any(|cp| cp.wanted && !cp.is_open());
        if !pending {
            self.phase = Phase::Network;
            let network = self.network();
            self.events.push_back(PppEvent::NetworkUp(network));
        }
        Ok(())
    }

    fn network(&self) -> PppNetwork {
        let v4 = self.ipcp_cp.wanted;
        let v6 = self.ipv6cp_cp.wanted;
        let ipv6 = match self.config.ipv6 {
            Some(global) if matches!(self.config.role, Role::Client) => global,
            _ => Ipv6cpState::link_local(self.ipv6cp.interface_id),
        };
        PppNetwork {
            ipv4: self.ipcp.address.filter(|_| v4),
            peer_ipv4: self.ipcp.peer_address.filter(|_| v4),
            ipv6: v6.then_some(ipv6),
            peer_ipv6: self
                .ipv6cp
                .peer_interface_id
                .filter(|_| v6)
                .map(Ipv6cpState::link_local),
            dns: if v4 {
                self.ipcp.servers(true)
            } else {
                Vec::new()
            },
            nbns: if v4 {
                self.ipcp.servers(false)
            } else {
                Vec::new()
            },
            mtu: self.lcp.peer.mru.unwrap_or(self.lcp.mtu),
        }
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), PppError> {
        match self.phase {
            Phase::Closed => return Ok(()),
            Phase::Terminating { sent_at, tries } => {
                if now >= sent_at + TERMINATE_WAIT {
                    let limit = if self.config.reliable {
                        1
                    } else {
                        TERMINATE_TRIES_DATAGRAM
                    };
                    if tries >= limit {
                        self.close(Closed::ByUs { acked: false });
                    } else {
                        self.send_terminate(tries, now);
                    }
                }
                return Ok(());
            }
            Phase::Establish => self.retransmit(protocol::LCP, now)?,
            Phase::Opened => {
                for proto in [protocol::IPCP, protocol::IPV6CP] {
                    self.retransmit(proto, now)?;
                }
                self.advance(now)?;
            }
            Phase::Network => {}
        }
        self.liveness(now)
    }

    /// Sends a Configure-Request again if it went unanswered, within the limits.
    fn retransmit(&mut self, proto: u16, now: Instant) -> Result<(), PppError> {
        let other_up = match proto {
            protocol::IPCP => self.ipv6cp_cp.wanted && self.ipv6cp_cp.is_open(),
            protocol::IPV6CP => self.ipcp_cp.wanted && self.ipcp_cp.is_open(),
            _ => false,
        };
        let cp = self.cp_mut(proto);
        if !cp.wanted || cp.is_open() {
            return Ok(());
        }
        let due = cp.requested_at.is_none_or(|at| now >= at + RESTART);
        if !due {
            return Ok(());
        }
        let limit = if other_up && !cp.heard {
            MAX_CONFIGURE_SILENT
        } else {
            MAX_CONFIGURE
        };
        if cp.tries >= limit {
            if proto == protocol::LCP {
                return Err(PppError::NoAgreement {
                    layer: "LCP",
                    tries: cp.tries,
                });
            }
            return self.network_closed(proto);
        }
        self.send_request(proto, now);
        Ok(())
    }

    /// Dead peer detection and keepalives, once LCP is open (before, the Configure-Request
    /// limit decides): an Echo-Request for each DPD, a Discard-Request for each keepalive.
    fn liveness(&mut self, now: Instant) -> Result<(), PppError> {
        if !matches!(self.phase, Phase::Opened | Phase::Network) {
            return Ok(());
        }
        while let Some(action) = self.liveness.check(now) {
            match action {
                LivenessAction::Dead => {
                    return Err(PppError::PeerDead(self.liveness.silent_for(now)));
                }
                LivenessAction::SendDpd => {
                    self.log("Send PPP echo request as DPD".into());
                    let id = self.lcp_cp.take_id();
                    let magic = self.our_magic().to_be_bytes();
                    self.send_control(protocol::LCP, code::ECHO_REQUEST, id, &magic, now);
                }
                LivenessAction::SendKeepalive => {
                    self.log("Send PPP discard request as keepalive".into());
                    let id = self.lcp_cp.take_id();
                    self.send_control(protocol::LCP, code::DISCARD_REQUEST, id, &[], now);
                }
                LivenessAction::Rekey => {}
            }
        }
        Ok(())
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let restart = |cp: &Cp| {
            (cp.wanted && !cp.is_open())
                .then_some(cp.requested_at)
                .flatten()
                .map(|at| at + RESTART)
        };
        let mut next = match self.phase {
            Phase::Closed => return None,
            Phase::Terminating { sent_at, .. } => return Some(sent_at + TERMINATE_WAIT),
            Phase::Establish => restart(&self.lcp_cp),
            Phase::Opened => [restart(&self.ipcp_cp), restart(&self.ipv6cp_cp)]
                .into_iter()
                .flatten()
                .min(),
            Phase::Network => None,
        };
        let mut consider = |at: Instant| next = Some(next.map_or(at, |n| n.min(at)));
        if matches!(self.phase, Phase::Opened | Phase::Network) {
            if let Some(at) = self.liveness.next_deadline() {
                consider(at);
            }
        }
        next
    }
}

/// The liveness timers of a link: DPD and keepalive, no rekey.
fn liveness_timers(config: &PppConfig) -> Timers {
    Timers {
        dpd: config.dpd,
        keepalive: config.keepalive,
        rekey: None,
    }
}
