//! What a PPP protocol (nullppp, fortinet, f5) hands the PPP tunnel: its encapsulation,
//! the tunnel request and its answer, the vendor's IP configuration, the UDP grant; and how
//! the PPP engine is configured from it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ipnet::Ipv6Net;
use oc_proto::http::{Request, ResponseHead};
use oc_proto::ip_config::IpConfig;
use oc_proto::ppp::{Encapsulation, PppConfig, PppNetwork, Role};
use tokio::io::AsyncWriteExt;

use crate::cli::Options;
use crate::error::ClientError;
use crate::ppp_udp::UdpGrant;
use crate::transport::{Endpoint, HttpsConnection};

/// TLS record overhead openconnect allows for when it computes the MTU it asks for.
pub(crate) const TLS_OVERHEAD: u16 = 5 + 16 + 8;
/// The link MTU taken when no TCP connection tells it (openconnect's default).
const DEFAULT_LINK_MTU: u16 = 1406;

/// The addresses a tunnel request's answer gives, to propose in IPCP/IPV6CP.
pub(crate) type Proposed = (Option<Ipv4Addr>, Option<Ipv6Addr>);

/// What the server sends before PPP on a new connection.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TunnelAnswer {
    /// Nothing: PPP starts at once (nullppp).
    Nothing,
    /// Nothing, or an HTTP refusal instead of PPP (Fortinet).
    PppOrHttpRefusal,
    /// An HTTP head, read by the protocol's function (F5).
    HttpHead(fn(&ResponseHead) -> Result<Proposed, ClientError>),
}

/// How one PPP protocol runs its link.
#[derive(Debug, Clone)]
pub(crate) struct PppLink {
    pub encapsulation: Encapsulation,
    pub want_ipv4: bool,
    pub want_ipv6: bool,
    /// Log off as soon as the network is up (upstream's nullppp `term` option, for tests).
    pub terminate_at_network: bool,
    /// Sent on each new connection before PPP starts (Fortinet's tunnel request).
    pub request: Option<Request>,
    /// What comes back before PPP.
    pub answer: TunnelAnswer,
    /// What the vendor's configuration said: addresses (proposed in IPCP), routes, DNS.
    pub base: IpConfig,
    /// LCP echo interval (the vendor's heartbeat, or `--force-dpd`).
    pub dpd: Option<Duration>,
    /// Sent on a new connection after logging off (Fortinet's `/remote/logout`).
    pub logout: Option<Request>,
    /// The gateway's DTLS offer, if any.
    pub udp: Option<UdpGrant>,
}

impl PppLink {
    /// nullppp's options come in the cookie, as upstream reads them: `hdlc`, `noipv4`,
    /// `noipv6`, `term`, separated by anything.
    pub(crate) fn nullppp(cookie: &str, opts: &Options) -> Self {
        Self {
            encapsulation: if cookie.contains("hdlc") {
                Encapsulation::Hdlc
            } else {
                Encapsulation::Sync
            },
            want_ipv4: !cookie.contains("noipv4"),
            want_ipv6: !cookie.contains("noipv6") && !opts.disable_ipv6,
            terminate_at_network: cookie.contains("term"),
            request: None,
            answer: TunnelAnswer::Nothing,
            base: IpConfig::default(),
            dpd: None,
            logout: None,
            udp: None,
        }
    }
}

/// The MRU to ask for: `--mtu`, else the link MTU less TLS, encapsulation, HDLC and PPP
/// overhead (and 1/32 more for HDLC escaping), as upstream computes it.
fn requested_mtu(opts: &Options, link: &PppLink, conn: Option<&HttpsConnection>) -> u16 {
    if let Some(mtu) = opts.mtu {
        return mtu;
    }
    let encap = link.encapsulation;
    let overhead = TLS_OVERHEAD
        + u16::try_from(encap.header_len()).unwrap_or(0)
        + if encap.is_hdlc() { 4 } else { 0 }
        + 4;
    let base = opts
        .base_mtu
        .or(conn.map(HttpsConnection::link_mtu))
        .unwrap_or(DEFAULT_LINK_MTU);
    let mtu = base.saturating_sub(overhead).max(576);
    if encap.is_hdlc() {
        mtu - (mtu >> 5)
    } else {
        mtu
    }
}

/// The PPP engine's configuration; `conn` is the TLS connection when there is one yet.
pub(crate) fn ppp_config(
    opts: &Options,
    link: &PppLink,
    conn: Option<&HttpsConnection>,
) -> PppConfig {
    PppConfig {
        encapsulation: link.encapsulation,
        role: Role::Client,
        want_ipv4: link.want_ipv4,
        want_ipv6: link.want_ipv6,
        mtu: requested_mtu(opts, link, conn),
        magic: random_magic(),
        ipv4: link.base.ipv4,
        ipv6: link.base.ipv6.map(|n| n.addr()),
        ask_name_servers: link.base.dns.is_empty(),
        reliable: true,
        dpd: opts.forced_dpd().or(link.dpd),
        keepalive: None,
    }
}

fn random_magic() -> u32 {
    let mut bytes = [0u8; 4];
    if openssl::rand::rand_bytes(&mut bytes).is_err() {
        // Only loop-back detection depends on it; any non-zero value will do.
        return std::process::id() | 1;
    }
    u32::from_be_bytes(bytes).max(1)
}

/// The script's view: the vendor's configuration, completed by what PPP agreed.
pub(crate) fn ip_config(base: &IpConfig, net: &PppNetwork) -> IpConfig {
    let mut ip = base.clone();
    ip.mtu = net.mtu;
    ip.ipv4 = net.ipv4;
    if net.ipv6.is_none() {
        ip.ipv6 = None;
    } else if ip.ipv6.is_none() {
        ip.ipv6 = net.ipv6.and_then(|a| Ipv6Net::new(a, 64).ok());
    }
    if ip.dns.is_empty() {
        ip.dns = net.dns.iter().copied().map(IpAddr::V4).collect();
    }
    if ip.nbns.is_empty() {
        ip.nbns = net.nbns.iter().copied().map(IpAddr::V4).collect();
    }
    ip
}

/// A new connection with the protocol's tunnel request sent and, when the protocol has
/// one, its answer read: the connection, PPP bytes that came with the answer, and the
/// addresses it proposed.
pub(crate) async fn open_link(
    endpoint: &Endpoint,
    link: &PppLink,
) -> Result<(HttpsConnection, Vec<u8>, Option<Proposed>), ClientError> {
    let mut conn = endpoint.connect().await?;
    let Some(request) = &link.request else {
        return Ok((conn, Vec::new(), None));
    };
    if let TunnelAnswer::HttpHead(read) = link.answer {
        let (resp, rest) = conn.exchange(request, true).await?;
        let proposed = read(&resp.head)?;
        return Ok((conn, rest, Some(proposed)));
    }
    let mut bytes = Vec::new();
    request.emit(&mut bytes);
    conn.tls
        .write_all(&bytes)
        .await
        .map_err(ClientError::io("sending the tunnel request"))?;
    Ok((conn, Vec::new(), None))
}
