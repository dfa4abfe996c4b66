//! The tunnel: the tun device shared by the tunnels ([`TunLink`]), the gateways' PPP
//! configuration, and the session that runs PPP between a client's channel (its TLS
//! connection or a DTLS association, see [`Carrier`]) and the tun device, configuring the
//! device when the network comes up.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use oc_net::{open_tun, Coalescer, TunReader, TunWriter};
use oc_proto::ppp::{Assignment, Encapsulation, Ppp, PppConfig, PppEvent, PppNetwork, Role};
use tokio::sync::watch;
use tun_rs::AsyncDevice;

use super::{lock, random_bytes, Carrier, Common, PPP_MTU};

/// On DTLS, where a vanished client leaves no connection to close, the gateway's PPP asks
/// for an LCP echo after this long without a word (and gives up after twice that).
const DATAGRAM_DPD: Duration = Duration::from_secs(30);

/// The gateway's tun device and which tunnel session owns it. One tunnel runs at a time: a
/// new one (or a logout) bumps the generation, and a session whose number is no longer
/// current ends.
pub struct TunLink {
    tun: AsyncDevice,
    name: String,
    /// Held by the session reading the tun device, so a replacing session only starts
    /// reading once the old one has let go.
    owner: tokio::sync::Mutex<()>,
    generation: watch::Sender<u64>,
    /// The session whose tunnel runs now, and its generation ([`TunLink::claim_for`]).
    session: std::sync::Mutex<Option<(String, u64)>>,
}

impl fmt::Debug for TunLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunLink")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The PPP configuration of a gateway: its own tunnel address, the client's, the DNS
/// servers offered, IPv6 when configured, a random magic. On a reliable channel (TLS) one
/// Terminate-Request and no echoes; on DTLS three, and echoes to notice a client gone.
pub fn gateway_ppp(encapsulation: Encapsulation, common: &Common, reliable: bool) -> PppConfig {
    PppConfig {
        encapsulation,
        role: Role::Gateway(Assignment {
            peer_ipv4: Some(common.client_addr),
            dns: common.dns.clone(),
            peer_interface_id: common.ipv6.map(|(_, client)| interface_id(client)),
        }),
        want_ipv4: true,
        want_ipv6: common.ipv6.is_some(),
        mtu: PPP_MTU,
        magic: u32::from_be_bytes(random_bytes()),
        ipv4: Some(common.tunnel_addr),
        ipv6: common.ipv6.map(|(gateway, _)| gateway),
        ask_name_servers: false,
        reliable,
        dpd: (!reliable).then_some(DATAGRAM_DPD),
        keepalive: None,
    }
}

/// The low 64 bits of an address: its IPV6CP interface identifier.
fn interface_id(addr: Ipv6Addr) -> [u8; 8] {
    let mut id = [0u8; 8];
    id.copy_from_slice(&addr.octets()[8..]);
    id
}

impl TunLink {
    /// Creates the tun device `name` (it gets its addresses when PPP comes up).
    pub fn open(name: &str) -> Result<Self, String> {
        let (tun, name) = open_tun(Some(name)).map_err(|e| format!("tun device {name}: {e}"))?;
        let (generation, _) = watch::channel(0);
        Ok(Self {
            tun,
            name,
            owner: tokio::sync::Mutex::new(()),
            generation,
            session: std::sync::Mutex::new(None),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Makes the caller the current tunnel: its generation number for [`TunLink::run`].
    pub fn claim(&self) -> u64 {
        self.generation.send_modify(|g| *g += 1);
        *self.generation.borrow()
    }

    /// Ends the running tunnel, if any (a logout).
    pub fn end_current(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// [`TunLink::claim`] for a tunnel of `session` (a cookie), which
    /// [`TunLink::end_session`] ends.
    pub fn claim_for(&self, session: &str) -> u64 {
        let mut current = lock(&self.session);
        let generation = self.claim();
        *current = Some((session.to_string(), generation));
        generation
    }

    /// The tunnel `generation` ended on its own.
    pub fn released(&self, generation: u64) {
        let mut current = lock(&self.session);
        if current.as_ref().is_some_and(|(_, g)| *g == generation) {
            *current = None;
        }
    }

    /// A logout of `session`: its tunnel, if it runs, ends.
    pub fn end_session(&self, session: &str) {
        let mut current = lock(&self.session);
        if current.as_ref().is_some_and(|(s, _)| s == session) {
            *current = None;
            self.end_current();
        }
    }

    /// Runs PPP with `config` on the client's channel until the link closes, the client
    /// goes, or a newer tunnel replaces this one (`generation` from [`TunLink::claim`]);
    /// `early` is what the client sent after its tunnel request, `how` the note on the log
    /// line that says the tunnel starts. After the link closes it lets the client close the
    /// channel first ([`Carrier::linger`]).
    pub async fn run(
        &self,
        carrier: impl Into<Carrier>,
        peer: SocketAddr,
        early: &[u8],
        config: PppConfig,
        generation: u64,
        how: &str,
    ) -> Result<String, String> {
        let mut changes = self.generation.subscribe();
        log!("{peer}: tunnel {generation} starting PPP ({how})");
        let (end, carrier) = {
            // Waits for a replaced session to stop reading the tun device.
            let _owner = self.owner.lock().await;
            let mut session = Session::new(self, carrier.into(), peer, config);
            session.input(early)?;
            match session.run(generation, &mut changes).await? {
                Ended::Closed(why) => (why, session.carrier),
                Ended::Replaced => {
                    return Ok(session
                        .end("replaced by a newer tunnel or logged out")
                        .await)
                }
            }
        };
        log!("{peer}: {end}; waiting for the client to close the connection");
        Ok(format!("{end}, then {}", carrier.linger().await))
    }
}

/// A tunnel that is not PPP (GlobalProtect's) holding the tun device: it reads and writes
/// the device itself, until a newer tunnel (or a logout) takes over.
pub struct TunHold<'t> {
    link: &'t TunLink,
    _owner: tokio::sync::MutexGuard<'t, ()>,
    changes: watch::Receiver<u64>,
    generation: u64,
}

impl fmt::Debug for TunHold<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunHold")
            .field("link", &self.link.name)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl TunLink {
    /// Waits until older tunnels let go of the device, then holds it for tunnel
    /// `generation` ([`TunLink::claim`]); `None` when a newer one was claimed meanwhile.
    pub async fn hold(&self, generation: u64) -> Option<TunHold<'_>> {
        let changes = self.generation.subscribe();
        let owner = self.owner.lock().await;
        if *changes.borrow() != generation {
            return None;
        }
        Some(TunHold {
            link: self,
            _owner: owner,
            changes,
            generation,
        })
    }
}

impl<'t> TunHold<'t> {
    /// The device (borrowed from the link, not the hold: a loop can wait on it and on
    /// [`TunHold::replaced`] at once).
    pub fn device(&self) -> &'t AsyncDevice {
        &self.link.tun
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Resolves once a newer tunnel or a logout replaced this one. Cancel-safe.
    pub async fn replaced(&mut self) {
        loop {
            if *self.changes.borrow_and_update() != self.generation {
                return;
            }
            if self.changes.changed().await.is_err() {
                // The sender lives in the link, which outlives this hold.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Gives the device the point-to-point addresses (`local`, and `peer` as a /32), the
    /// MTU, the global IPv6 address when given, and brings it up.
    pub async fn configure(
        &self,
        local: Ipv4Addr,
        peer: Ipv4Addr,
        mtu: u16,
        global6: Option<Ipv6Addr>,
    ) -> Result<(), String> {
        configure_addresses(&self.link.name, local, peer, mtu, global6).await
    }
}

/// How a session's PPP loop ended.
enum Ended {
    /// The link closed: the client's Terminate-Request, acknowledged.
    Closed(String),
    /// A newer tunnel (or the session's logout) took over.
    Replaced,
}

struct Session<'t> {
    link: &'t TunLink,
    carrier: Carrier,
    peer: SocketAddr,
    ppp: Ppp,
    /// Packets from the client, written to tun a batch at a time.
    to_tun: TunWriter,
    coalescer: Box<Coalescer>,
    from_tun: TunReader,
    /// Encapsulated packets for the client.
    out: Vec<u8>,
    read_buf: Vec<u8>,
    /// HDLC framing: TLS records hold whole frames ([`Carrier::frame_added`]).
    whole_frames_per_record: bool,
    /// Whether IPV6CP came up: until then the kernel's IPv6 chatter on the tun device
    /// (router solicitations) stays off the link.
    ipv6: bool,
    /// The gateway's global IPv6 address, put on the tun device when IPV6CP comes up.
    global6: Option<Ipv6Addr>,
}

impl<'t> Session<'t> {
    fn new(link: &'t TunLink, carrier: Carrier, peer: SocketAddr, config: PppConfig) -> Self {
        let global6 = config.ipv6;
        Self {
            whole_frames_per_record: config.encapsulation.is_hdlc(),
            link,
            carrier,
            peer,
            ppp: Ppp::new(config, Instant::now()),
            to_tun: TunWriter::new(),
            coalescer: Box::default(),
            from_tun: TunReader::new(0),
            out: Vec::new(),
            read_buf: vec![0; 64 * 1024],
            ipv6: false,
            global6,
        }
    }

    async fn run(
        &mut self,
        generation: u64,
        changes: &mut watch::Receiver<u64>,
    ) -> Result<Ended, String> {
        loop {
            self.flush_transmit().await?;
            if let Some(end) = self.handle_events().await? {
                return Ok(Ended::Closed(end));
            }
            if *changes.borrow_and_update() != generation {
                return Ok(Ended::Replaced);
            }
            self.step(changes).await?;
        }
    }

    /// Waits for one thing to happen: bytes from the client, packets from tun, a PPP timer
    /// or a newer tunnel.
    async fn step(&mut self, changes: &mut watch::Receiver<u64>) -> Result<(), String> {
        let sleep = sleep_until(self.ppp.poll_timeout());
        let tun = &self.link.tun;
        let network = self.ppp.is_network();
        tokio::select! {
            changed = changes.changed() => {
                // The sender lives in the link: an error cannot happen, but if it did
                // there would be no more replacement to wait for.
                let _ = changed;
            }
            read = self.carrier.read(&mut self.read_buf) => {
                let n = read?;
                let bytes = self.read_buf.get(..n).unwrap_or_default().to_vec();
                self.input(&bytes)?;
            }
            read = self.from_tun.recv(tun), if network => {
                let count = read.map_err(|e| format!("reading tun: {e}"))?;
                self.send_packets(count).await?;
            }
            () = sleep => {
                self.ppp
                    .handle_timeout(Instant::now())
                    .map_err(|e| format!("PPP: {e}"))?;
            }
        }
        Ok(())
    }

    /// Feeds PPP what the client sent; IP packets go to tun.
    fn input(&mut self, bytes: &[u8]) -> Result<(), String> {
        let Self {
            link,
            ppp,
            to_tun,
            coalescer,
            ..
        } = self;
        let tun = &link.tun;
        let result = ppp.handle_input(bytes, Instant::now(), &mut |packet| {
            if to_tun.is_full() {
                flush_tun(to_tun, tun, coalescer);
            }
            to_tun.push(packet);
        });
        flush_tun(to_tun, tun, coalescer);
        result.map_err(|e| format!("PPP: {e}"))
    }

    async fn send_packets(&mut self, count: usize) -> Result<(), String> {
        self.out.clear();
        let now = Instant::now();
        for i in 0..count {
            let Some(packet) = self.from_tun.framed_mut(i) else {
                continue;
            };
            if packet.first().map(|b| b >> 4) == Some(6) && !self.ipv6 {
                continue;
            }
            let start = self.out.len();
            // Only fails before the network phase, which `step` already waits for.
            let _ = self.ppp.encapsulate_ip(packet, now, &mut self.out);
            self.carrier
                .frame_added(&mut self.out, start, self.whole_frames_per_record)
                .await?;
        }
        self.carrier.write_out(&mut self.out).await
    }

    async fn flush_transmit(&mut self) -> Result<(), String> {
        while let Some(frame) = self.ppp.poll_transmit() {
            self.carrier.write_frame(&frame).await?;
        }
        Ok(())
    }

    /// Acts on PPP's events; the reason to stop once the link closed.
    async fn handle_events(&mut self) -> Result<Option<String>, String> {
        while let Some(event) = self.ppp.poll_event() {
            match event {
                PppEvent::Log(line) => log!("{}: PPP: {line}", self.peer),
                PppEvent::NetworkUp(network) => {
                    log!("{}: PPP network up: {}", self.peer, describe(&network));
                    self.ipv6 = network.ipv6.is_some();
                    configure_tun(&self.link.name, &network, self.global6).await?;
                }
                PppEvent::Closed(closed) => {
                    return Ok(Some(format!("PPP closed: {closed:?}")));
                }
            }
        }
        Ok(None)
    }

    /// Ends the link politely (a Terminate-Request) and gives `why`.
    async fn end(mut self, why: &str) -> String {
        self.ppp.terminate(Instant::now());
        let _ = self.flush_transmit().await;
        self.carrier.close().await;
        why.to_string()
    }
}

/// Writes the packets `to_tun` holds to the device (none: nothing to do).
pub fn flush_tun(to_tun: &mut TunWriter, tun: &AsyncDevice, coalescer: &mut Coalescer) {
    if to_tun.is_empty() {
        return;
    }
    // A refused write loses the batch, as a router would; say so for the test's log.
    if let Err(e) = to_tun.flush(tun, coalescer) {
        log!("writing to tun: {e}");
    }
}

/// Sleeps until `deadline`, for ever without one.
pub(super) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

fn describe(network: &PppNetwork) -> String {
    let show = |ip: Option<Ipv4Addr>| ip.map_or("-".to_string(), |ip| ip.to_string());
    format!(
        "gateway {}, client {}, dns {:?}, mtu {}",
        show(network.ipv4),
        show(network.peer_ipv4),
        network.dns,
        network.mtu
    )
}

/// Gives the tun device the agreed point-to-point addresses and MTU, and brings it up.
async fn configure_tun(
    tun: &str,
    network: &PppNetwork,
    global6: Option<Ipv6Addr>,
) -> Result<(), String> {
    let (Some(local), Some(peer)) = (network.ipv4, network.peer_ipv4) else {
        return Err("PPP came up without IPv4 addresses".into());
    };
    let global6 = global6.filter(|_| network.ipv6.is_some());
    configure_addresses(tun, local, peer, network.mtu, global6).await
}

async fn configure_addresses(
    tun: &str,
    local: Ipv4Addr,
    peer: Ipv4Addr,
    mtu: u16,
    global6: Option<Ipv6Addr>,
) -> Result<(), String> {
    let mtu = mtu.to_string();
    let (local, peer) = (local.to_string(), format!("{peer}/32"));
    run_ip(&["addr", "replace", &local, "peer", &peer, "dev", tun]).await?;
    run_ip(&["link", "set", "dev", tun, "mtu", &mtu, "up"]).await?;
    if let Some(addr) = global6 {
        let addr = format!("{addr}/64");
        run_ip(&["-6", "addr", "replace", &addr, "dev", tun, "nodad"]).await?;
    }
    Ok(())
}

async fn run_ip(args: &[&str]) -> Result<(), String> {
    let out = tokio::process::Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("running ip: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    log!("ip {}", args.join(" "));
    Ok(())
}
