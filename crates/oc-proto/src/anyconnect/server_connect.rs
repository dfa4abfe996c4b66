//! The server side of `CONNECT /CSCOSSLC/tunnel`: what the client asked for, and the
//! response that grants the tunnel, with the headers ocserv sends in the order it sends
//! them (Cisco clients are known to work with exactly that set).

use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv6Net};

use crate::compress::Algorithm;
use crate::http::server::{ServerRequest, ServerResponse};

use super::dtls_cipher::{offers_psk, LegacySuite, PSK_NEGOTIATE};

/// The request targets that open a tunnel.
pub fn is_tunnel_target(path: &str) -> bool {
    path == "/CSCOSSLC/tunnel" || path == "CSCOSSLC/tunnel"
}

/// Smallest link MTU accepted from a client; IPv6 needs 1280 on the tunnel itself.
const MIN_LINK_MTU: u32 = 800;
const MIN_IPV6_MTU: u32 = 1280;

/// The client's tunnel request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientConnect {
    /// The `webvpn` cookie value.
    pub cookie: Option<String>,
    /// `X-CSTP-Hostname`, reduced to a safe host label.
    pub hostname: Option<String>,
    pub base_mtu: Option<u32>,
    pub mtu: Option<u32>,
    /// From `X-CSTP-Address-Type`; both true when the header is absent.
    pub wants_ipv4: bool,
    pub wants_ipv6: bool,
    /// `X-CSTP-Full-IPv6-Capability: true`.
    pub full_ipv6: bool,
    pub user_agent: String,
    /// `X-AnyConnect-Identifier-DeviceType` / `-Platform`.
    pub device_type: Option<String>,
    pub platform: Option<String>,
    /// `PSK-NEGOTIATE` is among the DTLS suites the client offered.
    pub dtls_psk: bool,
    /// `X-DTLS-CipherSuite` and `X-DTLS12-CipherSuite` as sent.
    pub dtls_ciphers: Option<String>,
    pub dtls12_ciphers: Option<String>,
    /// `X-DTLS-Master-Secret`, for legacy (resumption) DTLS; `None` unless 96 hex digits.
    pub master_secret: Option<[u8; 48]>,
    /// `X-CSTP-Accept-Encoding` and `X-DTLS-Accept-Encoding` as sent (compression offers).
    pub cstp_accept_encoding: Option<String>,
    pub dtls_accept_encoding: Option<String>,
}

impl ClientConnect {
    pub fn from_request(req: &ServerRequest) -> Self {
        let (wants_ipv4, wants_ipv6) = match req.header("X-CSTP-Address-Type") {
            Some(types) => (
                types
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("IPv4")),
                types
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("IPv6")),
            ),
            None => (true, true),
        };
        let number = |name: &str| req.header(name).and_then(|v| v.trim().parse::<u32>().ok());
        Self {
            cookie: req.cookie("webvpn").map(str::to_string),
            hostname: req.header("X-CSTP-Hostname").and_then(sanitise_hostname),
            base_mtu: number("X-CSTP-Base-MTU"),
            mtu: number("X-CSTP-MTU"),
            wants_ipv4,
            wants_ipv6,
            // openconnect v3 and older claim it but mishandle IPv6 routes (ocserv too
            // withholds them).
            full_ipv6: req
                .header("X-CSTP-Full-IPv6-Capability")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
                && !is_openconnect_v3(req.header("User-Agent").unwrap_or_default()),
            user_agent: truncate(req.header("User-Agent").unwrap_or_default(), 63),
            device_type: req
                .header("X-AnyConnect-Identifier-DeviceType")
                .map(|v| truncate(v, 63)),
            platform: req
                .header("X-AnyConnect-Identifier-Platform")
                .map(|v| truncate(v, 63)),
            dtls_psk: ["X-DTLS-CipherSuite", "X-DTLS12-CipherSuite"]
                .iter()
                .any(|h| req.header(h).is_some_and(offers_psk)),
            dtls_ciphers: req.header("X-DTLS-CipherSuite").map(str::to_string),
            dtls12_ciphers: req.header("X-DTLS12-CipherSuite").map(str::to_string),
            master_secret: req.header("X-DTLS-Master-Secret").and_then(master_secret),
            cstp_accept_encoding: req.header("X-CSTP-Accept-Encoding").map(str::to_string),
            dtls_accept_encoding: req.header("X-DTLS-Accept-Encoding").map(str::to_string),
        }
    }

    /// AnyConnect (or openconnect `--os=apple-ios`) on an iPhone or iPad, as ocserv tells:
    /// by platform, or by Cisco's iOS user agent.
    pub fn is_ios(&self) -> bool {
        let platform_ios = self.platform.as_deref().is_some_and(|p| {
            p.get(..9)
                .is_some_and(|h| h.eq_ignore_ascii_case("apple-ios"))
        });
        let agent_ios = self
            .user_agent
            .get(..36)
            .is_some_and(|h| h.eq_ignore_ascii_case("Cisco AnyConnect VPN Agent for Apple"));
        platform_ios || agent_ios
    }

    /// Mobile clients get `mobile-dpd` and `mobile-idle-timeout`, as in ocserv.
    pub fn is_mobile(&self) -> bool {
        self.platform
            .as_deref()
            .map(str::to_ascii_lowercase)
            .is_some_and(|p| p.starts_with("apple-ios") || p.starts_with("android"))
    }
}

/// `Open AnyConnect VPN Agent vN` with N at most 3 (ocserv reads the number as `atoi` does).
fn is_openconnect_v3(user_agent: &str) -> bool {
    const PREFIX: &str = "Open AnyConnect VPN Agent v";
    let Some(rest) = user_agent
        .get(..PREFIX.len())
        .filter(|head| head.eq_ignore_ascii_case(PREFIX))
        .and_then(|_| user_agent.get(PREFIX.len()..))
    else {
        return false;
    };
    let digits: String = rest
        .chars()
        .take_while(char::is_ascii_digit)
        .take(9)
        .collect();
    digits.parse::<u32>().unwrap_or(0) <= 3
}

fn master_secret(hex: &str) -> Option<[u8; 48]> {
    let hex = hex.trim().as_bytes();
    if hex.len() != 96 {
        return None;
    }
    let mut out = [0u8; 48];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = crate::hex::byte(pair)?;
    }
    Some(out)
}

fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default().to_string()
}

/// The host label of a client-supplied hostname (domain stripped, as ocserv does), or
/// `None` when it is not a plausible name: it lands in scripts and logs.
fn sanitise_hostname(raw: &str) -> Option<String> {
    let label = raw.trim().split('.').next()?;
    let ok = !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| label.to_string())
}

/// How the user agent affects the response (ocserv's agent classes that matter here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentKind {
    /// Cisco AnyConnect / Secure Client: IPv6 DNS goes in `X-CSTP-DNS-IP6`.
    Cisco,
    Other,
}

impl AgentKind {
    pub fn from_user_agent(ua: &str) -> Self {
        let lower = ua.to_ascii_lowercase();
        if lower.starts_with("cisco anyconnect") || lower.starts_with("anyconnect ") {
            Self::Cisco
        } else {
            Self::Other
        }
    }
}

/// Everything the server grants in its `200 CONNECTED` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TunnelGrant {
    pub hostname: Option<String>,
    pub dpd: Option<u32>,
    pub default_domain: Option<String>,
    /// Client address and pool netmask.
    pub ipv4: Option<(Ipv4Addr, Ipv4Addr)>,
    /// Client address with the prefix it owns.
    pub ipv6: Option<Ipv6Net>,
    /// The pool the IPv6 address comes from (legacy form's netmask header).
    pub ipv6_network: Option<Ipv6Net>,
    pub full_ipv6: bool,
    /// AnyConnect on iOS uses IPv6 only with a `2000::/3` split route (ocserv sends it).
    pub ios_ipv6_route: bool,
    pub cisco_agent: bool,
    pub dns: Vec<IpAddr>,
    pub nbns: Vec<IpAddr>,
    pub split_dns: Vec<String>,
    pub routes: Vec<IpNet>,
    pub no_routes: Vec<IpNet>,
    pub default_route: bool,
    pub tunnel_all_dns: bool,
    pub client_bypass_protocol: bool,
    /// `listen-host-is-dyndns`: the client resolves the server's name again to reconnect.
    pub dyndns: bool,
    pub keepalive: u32,
    pub idle_timeout: Option<u32>,
    pub rekey_time: Option<u32>,
    pub rekey_method: &'static str,
    pub session_timeout: Option<u32>,
    pub session_remaining: Option<u32>,
    pub base_mtu: u32,
    pub mtu: u32,
    pub banner: Option<String>,
    /// Configured `custom-header` lines, already substituted.
    pub custom_headers: Vec<(String, String)>,
    pub dtls: Option<DtlsGrant>,
    /// Compression chosen for CSTP (`X-CSTP-Content-Encoding`).
    pub cstp_compression: Option<Algorithm>,
}

/// The DTLS part of the grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtlsGrant {
    pub port: u16,
    /// The id the client puts in its ClientHello: `X-DTLS-App-ID` in PSK mode,
    /// `X-DTLS-Session-ID` in legacy mode.
    pub id: [u8; 32],
    pub dpd: Option<u32>,
    pub keepalive: u32,
    /// `rekey-time`; the client is told 10 s more, as ocserv does, so that a TLS rekey
    /// at the same interval goes first.
    pub rekey_time: Option<u32>,
    /// `rekey-method = ssl`: the client re-handshakes DTLS in place (ours answers that
    /// with a fresh handshake).
    pub rekey_ssl: bool,
    pub mode: DtlsMode,
    /// Compression chosen for DTLS (`X-DTLS-Content-Encoding`).
    pub compression: Option<Algorithm>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DtlsMode {
    /// PSK-NEGOTIATE.
    Psk,
    /// Resumption of the client's master secret with this suite; the DTLS data MTU is
    /// announced (`X-DTLS-MTU`), since the client cannot derive it.
    Legacy {
        suite: &'static LegacySuite,
        data_mtu: u32,
    },
}

/// ocserv's `CSTP_DTLS_OVERHEAD`: the AnyConnect packet-type byte in front of each DTLS
/// payload.
const DTLS_TYPE_BYTE: u32 = 1;
/// DTLS 1.x record header.
const DTLS_RECORD_HEADER: u32 = 13;
/// Record overhead of our DTLS 1.2 AES-GCM suites (PSK and legacy): header, 8-byte explicit
/// nonce, 16-byte tag. What GnuTLS estimates for any AES-GCM suite.
pub const DTLS_AES_GCM_OVERHEAD: u32 = DTLS_RECORD_HEADER + 8 + 16;
/// ocserv's worst case (`MAX_DTLS_CRYPTO_OVERHEAD` less the type byte): DTLS 1.0
/// AES-128-CBC + HMAC-SHA1 with GnuTLS's maximum padding (header, MAC, IV, full block).
pub const DTLS_MAX_OVERHEAD: u32 = DTLS_RECORD_HEADER + 20 + 16 + 16;

/// IP and UDP headers in front of a DTLS record (ocserv's `dtls_proto_overhead`); the
/// address family of the TCP connection is assumed for UDP too.
fn ip_udp(ipv6_peer: bool) -> u32 {
    if ipv6_peer {
        40 + 8
    } else {
        20 + 8
    }
}

/// DTLS record overhead ocserv derives from the CSTP session's suite (an OpenSSL name such
/// as `TLS_AES_256_GCM_SHA384` or `ECDHE-RSA-AES128-SHA`): GnuTLS's
/// `gnutls_est_record_overhead_size(GNUTLS_DTLS1_0, cipher, mac)`, i.e. the 13-byte header
/// plus explicit nonce and tag for AEAD suites, or MAC plus IV plus a full padding block for
/// CBC ones. An unknown suite gets ocserv's worst case.
pub fn dtls_overhead_for_tls_cipher(tls_cipher: &str) -> u32 {
    let n = tls_cipher.to_ascii_uppercase().replace('_', "-");
    if n.contains("CHACHA20") {
        // No explicit nonce, 16-byte Poly1305 tag.
        DTLS_RECORD_HEADER + 16
    } else if n.contains("GCM") {
        DTLS_AES_GCM_OVERHEAD
    } else if n.contains("CCM-8") || n.contains("CCM8") {
        DTLS_RECORD_HEADER + 8 + 8
    } else if n.contains("CCM") {
        DTLS_RECORD_HEADER + 8 + 16
    } else if n.contains("AES") {
        // CBC: MAC, explicit IV and up to a block of padding (16-byte blocks).
        let mac = if n.ends_with("-SHA384") {
            48
        } else if n.ends_with("-SHA256") {
            32
        } else if n.ends_with("-SHA") {
            20
        } else {
            return DTLS_MAX_OVERHEAD;
        };
        DTLS_RECORD_HEADER + mac + 16 + 16
    } else {
        DTLS_MAX_OVERHEAD
    }
}

/// The DTLS channel a tunnel is granted, as far as the MTU computation cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsPlan<'a> {
    /// No DTLS: no UDP port, `no-udp`, or nothing the client offered.
    Off,
    /// PSK-NEGOTIATE. `tls_cipher` is the CSTP session's suite (OpenSSL name); `pinned`
    /// when `match-tls-dtls-ciphers` restricts DTLS to the matching PSK suite.
    Psk { tls_cipher: &'a str, pinned: bool },
    /// Legacy resumption: our legacy suites are all DTLS 1.2 AES-GCM.
    Legacy,
}

impl DtlsPlan<'_> {
    /// The DTLS record overhead to plan for (without the type byte); `None` without DTLS.
    ///
    /// ocserv takes the PSK overhead from the CSTP session's suite whether or not DTLS is
    /// pinned to it. Unpinned, our PSK list (and the usual client preference) puts AES-GCM
    /// first, so the estimate never goes below the AES-GCM overhead: a ChaCha20 TLS session
    /// would otherwise promise 8 bytes the DTLS channel cannot carry.
    pub fn record_overhead(&self) -> Option<u32> {
        match *self {
            DtlsPlan::Off => None,
            DtlsPlan::Psk { tls_cipher, pinned } => {
                let upstream = dtls_overhead_for_tls_cipher(tls_cipher);
                Some(if pinned {
                    upstream
                } else {
                    upstream.max(DTLS_AES_GCM_OVERHEAD)
                })
            }
            DtlsPlan::Legacy => Some(DTLS_AES_GCM_OVERHEAD),
        }
    }
}

/// Data MTU of a legacy DTLS 1.2 AES-GCM channel over a link MTU: IP and UDP headers, the
/// 13-byte record header, 8-byte explicit nonce, 16-byte tag and the AnyConnect type byte
/// (ocserv's `X-DTLS-MTU`, `DATA_MTU(link_mtu)`).
pub fn legacy_data_mtu(link_mtu: u32, ipv6_peer: bool) -> u32 {
    data_mtu(link_mtu, ipv6_peer, DtlsPlan::Legacy)
}

/// The link MTU (`X-CSTP-Base-MTU`), as ocserv's `connect_handler` sets it: the `mtu` key
/// (`configured`; unset means the tun device's, 1500), lowered to the client's
/// `X-CSTP-Base-MTU`. A client that sends only `X-CSTP-MTU` (old clients: the payload it can
/// carry) lowers it to that plus IP/UDP and ocserv's worst-case DTLS overhead. When
/// `X-CSTP-Base-MTU` is present, `X-CSTP-MTU` is ignored, as ocserv does.
///
/// Values no real client sends (a link below 800 bytes) are ignored rather than trusted.
pub fn link_mtu(configured: Option<u32>, client: &ClientConnect, ipv6_peer: bool) -> u32 {
    let link = configured.filter(|m| *m > 0).unwrap_or(1500);
    if let Some(base) = client.base_mtu.filter(|b| *b > 0) {
        if base >= MIN_LINK_MTU {
            return link.min(base);
        }
        return link;
    }
    match client.mtu.filter(|m| *m >= MIN_LINK_MTU - 100) {
        // Saturating: the header is the client's, and u32::MAX must not overflow.
        Some(asked) => {
            link.min(asked.saturating_add(ip_udp(ipv6_peer) + DTLS_TYPE_BYTE + DTLS_MAX_OVERHEAD))
        }
        None => link,
    }
}

/// The data MTU (`X-CSTP-MTU`, the tunnel MTU) over a link MTU, ocserv's
/// `DATA_MTU(ws, link_mtu)`: the link less IP and UDP headers and, when DTLS is granted,
/// its record overhead and the AnyConnect type byte. Without DTLS only the IP and UDP
/// headers come off (ocserv leaves its DTLS crypto overhead at zero then).
pub fn data_mtu(link_mtu: u32, ipv6_peer: bool, dtls: DtlsPlan<'_>) -> u32 {
    let crypto = dtls.record_overhead().map_or(0, |o| o + DTLS_TYPE_BYTE);
    link_mtu.saturating_sub(ip_udp(ipv6_peer) + crypto)
}

/// True when a data MTU is too small to carry IPv6.
pub fn mtu_allows_ipv6(data_mtu: u32) -> bool {
    data_mtu >= MIN_IPV6_MTU
}

impl TunnelGrant {
    pub fn to_response(&self) -> ServerResponse {
        let mut r = ServerResponse::new(200, "CONNECTED");
        r.tunnel = true;
        let mut h = |name: &str, value: String| r.push_header(name, value);
        h("X-CSTP-Version", "1".into());
        h("X-CSTP-Server-Name", "ocserv".into());
        if let Some(host) = &self.hostname {
            h("X-CSTP-Hostname", host.clone());
        }
        if let Some(dpd) = self.dpd.filter(|d| *d > 0) {
            h("X-CSTP-DPD", dpd.to_string());
        }
        if let Some(domain) = &self.default_domain {
            h("X-CSTP-Default-Domain", domain.clone());
        }
        if let Some((addr, mask)) = self.ipv4 {
            h("X-CSTP-Address", addr.to_string());
            h("X-CSTP-Netmask", mask.to_string());
        }
        if let Some(v6) = self.ipv6 {
            if self.full_ipv6 {
                h("X-CSTP-Address-IP6", v6.to_string());
            } else {
                h("X-CSTP-Address", v6.addr().to_string());
                h(
                    "X-CSTP-Netmask",
                    self.ipv6_network.unwrap_or(v6).trunc().to_string(),
                );
            }
        }
        for dns in &self.dns {
            let name = if dns.is_ipv6() && self.cisco_agent {
                "X-CSTP-DNS-IP6"
            } else {
                "X-CSTP-DNS"
            };
            if dns.is_ipv4() || self.ipv6.is_some() {
                h(name, dns.to_string());
            }
        }
        for nbns in &self.nbns {
            h("X-CSTP-NBNS", nbns.to_string());
        }
        for domain in &self.split_dns {
            h("X-CSTP-Split-DNS", domain.clone());
        }
        if self.ios_ipv6_route {
            h("X-CSTP-Split-Include-IP6", "2000::/3".into());
        }
        if !self.default_route {
            for route in &self.routes {
                route_header(&mut h, "Include", route, self.full_ipv6);
            }
        }
        h(
            "X-CSTP-Tunnel-All-DNS",
            (self.tunnel_all_dns || self.default_route).to_string(),
        );
        h(
            "X-CSTP-Client-Bypass-Protocol",
            self.client_bypass_protocol.to_string(),
        );
        for route in &self.no_routes {
            route_header(&mut h, "Exclude", route, self.full_ipv6);
        }
        h("X-CSTP-Keepalive", self.keepalive.to_string());
        h("X-CSTP-Idle-Timeout", seconds_or_none(self.idle_timeout));
        h("X-CSTP-Smartcard-Removal-Disconnect", "true".into());
        if self.dyndns {
            h("X-CSTP-DynDNS", "true".into());
        }
        if let Some(rekey) = self.rekey_time.filter(|t| *t > 0) {
            h("X-CSTP-Rekey-Time", rekey.to_string());
            h("X-CSTP-Rekey-Method", self.rekey_method.into());
        }
        h(
            "X-CSTP-Session-Timeout",
            seconds_or_none(self.session_timeout),
        );
        if let Some(remaining) = self.session_remaining {
            h("X-CSTP-Session-Timeout-Remaining", remaining.to_string());
        }
        h("X-CSTP-Disconnected-Timeout", "none".into());
        h("X-CSTP-Keep", "true".into());
        h("X-CSTP-TCP-Keepalive", "true".into());
        h("X-CSTP-License", "accept".into());
        for (name, value) in &self.custom_headers {
            h(name, value.clone());
        }
        if let Some(dtls) = &self.dtls {
            if let Some(dpd) = dtls.dpd.filter(|d| *d > 0) {
                h("X-DTLS-DPD", dpd.to_string());
            }
            h("X-DTLS-Port", dtls.port.to_string());
            if let Some(rekey) = dtls.rekey_time.filter(|t| *t > 0) {
                h("X-DTLS-Rekey-Time", rekey.saturating_add(10).to_string());
                if dtls.rekey_ssl {
                    h("X-DTLS-Rekey-Method", "ssl".into());
                }
            }
            h("X-DTLS-Keepalive", dtls.keepalive.to_string());
            let id = crate::hex::encode(&dtls.id);
            match &dtls.mode {
                DtlsMode::Psk => {
                    h("X-DTLS-App-ID", id);
                    h("X-DTLS-CipherSuite", PSK_NEGOTIATE.into());
                }
                DtlsMode::Legacy { suite, data_mtu } => {
                    h("X-DTLS-Session-ID", id);
                    h(suite.header(), suite.name.into());
                    h("X-DTLS-MTU", data_mtu.to_string());
                }
            }
        }
        h("X-CSTP-Base-MTU", self.base_mtu.to_string());
        h("X-CSTP-MTU", self.mtu.to_string());
        if let Some(banner) = &self.banner {
            h("X-CSTP-Banner", banner.replace('\n', " "));
        }
        if let Some(algorithm) = self.dtls.as_ref().and_then(|d| d.compression) {
            h("X-DTLS-Content-Encoding", algorithm.token().into());
        }
        if let Some(algorithm) = self.cstp_compression {
            h("X-CSTP-Content-Encoding", algorithm.token().into());
        }
        r
    }
}

fn seconds_or_none(value: Option<u32>) -> String {
    match value.filter(|v| *v > 0) {
        Some(v) => v.to_string(),
        None => "none".into(),
    }
}

fn route_header(h: &mut impl FnMut(&str, String), kind: &str, route: &IpNet, full_ipv6: bool) {
    match route {
        IpNet::V4(net) => h(
            &format!("X-CSTP-Split-{kind}"),
            format!("{}/{}", net.network(), net.netmask()),
        ),
        // Without full IPv6 capability the client cannot install IPv6 routes.
        IpNet::V6(net) if full_ipv6 => h(&format!("X-CSTP-Split-{kind}-IP6"), net.to_string()),
        IpNet::V6(_) => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// Link and data MTU for a tunnel with an AES-GCM DTLS channel (PSK or legacy).
    fn tunnel_mtu(configured: Option<u32>, client: &ClientConnect, ipv6: bool) -> (u32, u32) {
        let link = link_mtu(configured, client, ipv6);
        (link, data_mtu(link, ipv6, DtlsPlan::Legacy))
    }
    use crate::anyconnect::connect::TunnelConfig;
    use crate::http::server::RequestReader;
    use crate::http::{Limits, ResponseReader};

    fn request(text: &str) -> ServerRequest {
        let mut r = RequestReader::new(Default::default());
        r.feed(text.as_bytes()).unwrap();
        r.poll().unwrap().unwrap()
    }

    #[test]
    fn reads_openconnect_connect() {
        let req = request(
            "CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nHost: vpn\r\nUser-Agent: Open AnyConnect VPN Agent v9.01\r\nCookie: webvpn=abc=\r\nX-CSTP-Hostname: laptop.example.com\r\nX-CSTP-Accept-Encoding: oc-lz4,lzs,deflate\r\nX-CSTP-Base-MTU: 1400\r\nX-CSTP-Address-Type: IPv6,IPv4\r\nX-CSTP-Full-IPv6-Capability: true\r\nX-DTLS-CipherSuite: OC-DTLS1_2-AES128-GCM:PSK-NEGOTIATE\r\n\r\n",
        );
        let c = ClientConnect::from_request(&req);
        assert_eq!(c.cookie.as_deref(), Some("abc="));
        assert_eq!(c.hostname.as_deref(), Some("laptop"));
        assert_eq!(c.base_mtu, Some(1400));
        assert!(c.wants_ipv4 && c.wants_ipv6 && c.full_ipv6 && c.dtls_psk);
        assert!(!c.is_mobile());
        assert_eq!(
            c.cstp_accept_encoding.as_deref(),
            Some("oc-lz4,lzs,deflate")
        );
        assert_eq!(c.dtls_accept_encoding, None);
        let hostile = request(
            "CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nX-CSTP-Hostname: $(reboot)\r\nX-CSTP-Address-Type: IPv4\r\n\r\n",
        );
        let c = ClientConnect::from_request(&hostile);
        assert_eq!(c.hostname, None);
        assert!(c.wants_ipv4 && !c.wants_ipv6);
    }

    #[test]
    fn mtu_from_base_and_config() {
        let client = ClientConnect {
            base_mtu: Some(1400),
            ..Default::default()
        };
        assert_eq!(tunnel_mtu(None, &client, false), (1400, 1334));
        assert_eq!(tunnel_mtu(Some(1300), &client, false).0, 1300);
        // `mtu = 0` in ocserv means unset.
        assert_eq!(tunnel_mtu(Some(0), &client, false).0, 1400);
        let tiny = ClientConnect {
            base_mtu: Some(100),
            mtu: Some(50),
            ..Default::default()
        };
        assert_eq!(tunnel_mtu(None, &tiny, false).0, 1500);
        assert!(!mtu_allows_ipv6(1200));
    }

    /// What openconnect 9 sends over a 1500-byte IPv4 path: the TCP path MTU as
    /// `X-CSTP-Base-MTU` and `1500 - 82 - 8 - 20` as `X-CSTP-MTU`.
    fn openconnect_request(base: u32, ipv6: bool) -> ClientConnect {
        ClientConnect {
            base_mtu: Some(base),
            mtu: Some(base - 82 - 8 - if ipv6 { 40 } else { 20 }),
            ..Default::default()
        }
    }

    #[test]
    fn mtu_matches_ocserv_over_ipv4() {
        // ocserv 1.1: link 1500; DATA_MTU = 1500 - (20 + 8) - (1 + 13 + 8 + 16) = 1434,
        // whatever X-CSTP-MTU asked for (1390).
        let client = openconnect_request(1500, false);
        assert_eq!(tunnel_mtu(None, &client, false), (1500, 1434));
        let link = link_mtu(None, &client, false);
        for tls in [
            "TLS_AES_256_GCM_SHA384",
            "ECDHE-RSA-AES256-GCM-SHA384",
            "TLS_AES_128_GCM_SHA256",
        ] {
            for pinned in [false, true] {
                let plan = DtlsPlan::Psk {
                    tls_cipher: tls,
                    pinned,
                };
                assert_eq!(data_mtu(link, false, plan), 1434, "{tls}");
            }
        }
        assert_eq!(legacy_data_mtu(link, false), 1434);
        // No DTLS: ocserv leaves the crypto overhead at zero.
        assert_eq!(data_mtu(link, false, DtlsPlan::Off), 1472);
        // A CBC + SHA-1 TLS session: GnuTLS's 13 + 20 + 2 * 16.
        let cbc = DtlsPlan::Psk {
            tls_cipher: "ECDHE-RSA-AES256-SHA",
            pinned: false,
        };
        assert_eq!(data_mtu(link, false, cbc), 1500 - 28 - 66);
        // A client whose base MTU came from the MSS with timestamps (1448 + 40).
        assert_eq!(
            tunnel_mtu(None, &openconnect_request(1488, false), false).1,
            1422
        );
        // The `mtu` key still caps the link.
        assert_eq!(tunnel_mtu(Some(1400), &client, false), (1400, 1334));
    }

    #[test]
    fn mtu_matches_ocserv_over_ipv6() {
        let client = openconnect_request(1500, true);
        assert_eq!(client.mtu, Some(1370));
        assert_eq!(tunnel_mtu(None, &client, true), (1500, 1414));
        assert!(mtu_allows_ipv6(tunnel_mtu(None, &client, true).1));
        // An old client with only X-CSTP-MTU: link = 1370 + 48 + 66.
        let old = ClientConnect {
            mtu: Some(1370),
            ..Default::default()
        };
        assert_eq!(tunnel_mtu(None, &old, true), (1484, 1398));
        assert_eq!(tunnel_mtu(None, &old, false), (1464, 1398));
    }

    #[test]
    fn dtls_overhead_follows_the_tls_suite() {
        assert_eq!(dtls_overhead_for_tls_cipher("TLS_AES_256_GCM_SHA384"), 37);
        assert_eq!(
            dtls_overhead_for_tls_cipher("TLS_CHACHA20_POLY1305_SHA256"),
            29
        );
        assert_eq!(
            dtls_overhead_for_tls_cipher("ECDHE-RSA-CHACHA20-POLY1305"),
            29
        );
        assert_eq!(dtls_overhead_for_tls_cipher("TLS_AES_128_CCM_SHA256"), 37);
        assert_eq!(dtls_overhead_for_tls_cipher("TLS_AES_128_CCM_8_SHA256"), 29);
        assert_eq!(dtls_overhead_for_tls_cipher("AES128-SHA"), 65);
        assert_eq!(dtls_overhead_for_tls_cipher("ECDHE-RSA-AES128-SHA256"), 77);
        assert_eq!(dtls_overhead_for_tls_cipher("ECDHE-RSA-AES256-SHA384"), 93);
        assert_eq!(dtls_overhead_for_tls_cipher(""), DTLS_MAX_OVERHEAD);
        // ChaCha20 pinned to the TLS suite: ocserv's 1500 - 28 - 30. Unpinned, our PSK
        // list picks AES-GCM first, so the AES-GCM overhead stands.
        let chacha = "TLS_CHACHA20_POLY1305_SHA256";
        let pinned = DtlsPlan::Psk {
            tls_cipher: chacha,
            pinned: true,
        };
        let free = DtlsPlan::Psk {
            tls_cipher: chacha,
            pinned: false,
        };
        assert_eq!(data_mtu(1500, false, pinned), 1442);
        assert_eq!(data_mtu(1500, false, free), 1434);
    }

    #[test]
    fn openconnect_v3_and_older_get_no_ipv6_routes() {
        for (agent, v3) in [
            ("Open AnyConnect VPN Agent v3", true),
            ("Open AnyConnect VPN Agent v2.26", true),
            ("open anyconnect vpn agent v", true),
            ("Open AnyConnect VPN Agent v4.99", false),
            ("Open AnyConnect VPN Agent v9.01-3", false),
            ("Open AnyConnect VPN Agent", false),
            ("/* An unknown user agent */", false),
            ("AnyConnect Linux_64 4.10", false),
        ] {
            assert_eq!(is_openconnect_v3(agent), v3, "{agent}");
        }
    }

    #[test]
    fn response_is_understood_by_our_client() {
        let grant = TunnelGrant {
            hostname: Some("laptop".into()),
            dpd: Some(90),
            ipv4: Some((
                "10.1.0.5".parse().unwrap(),
                "255.255.255.0".parse().unwrap(),
            )),
            ipv6: Some("fd00::5/128".parse().unwrap()),
            full_ipv6: true,
            dns: vec!["10.1.0.1".parse().unwrap(), "fd00::1".parse().unwrap()],
            split_dns: vec!["corp.example".into()],
            routes: vec![
                "192.0.2.0/24".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
            no_routes: vec!["192.0.2.128/25".parse().unwrap()],
            keepalive: 32400,
            idle_timeout: None,
            rekey_time: Some(172800),
            rekey_method: "new-tunnel",
            base_mtu: 1400,
            mtu: 1306,
            banner: Some("hello".into()),
            dtls: Some(DtlsGrant {
                port: 443,
                id: [0xab; 32],
                dpd: Some(30),
                keepalive: 20,
                rekey_time: Some(100),
                rekey_ssl: true,
                mode: DtlsMode::Psk,
                compression: Some(Algorithm::Lz4),
            }),
            cstp_compression: Some(Algorithm::Lzs),
            ..Default::default()
        };
        let mut bytes = Vec::new();
        grant.to_response().emit(&mut bytes);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 CONNECTED\r\nX-CSTP-Version: 1\r\n"));
        assert!(!text.contains("Content-Length"));
        assert!(text.contains("X-CSTP-Idle-Timeout: none\r\n"));
        let mut reader = ResponseReader::new(Limits::default(), true);
        reader.feed(&bytes).unwrap();
        let head = reader.poll().unwrap().unwrap().head;
        let cfg = TunnelConfig::from_response(&head, None).unwrap();
        assert_eq!(cfg.ip.mtu, 1306);
        assert_eq!(cfg.ip.ipv4, Some("10.1.0.5".parse().unwrap()));
        assert_eq!(cfg.ip.ipv6, Some("fd00::5/128".parse().unwrap()));
        assert_eq!(cfg.ip.dns.len(), 2);
        assert_eq!(cfg.ip.split_include4, vec!["192.0.2.0/24".parse().unwrap()]);
        assert_eq!(
            cfg.ip.split_include6,
            vec!["2001:db8::/32".parse().unwrap()]
        );
        assert_eq!(
            cfg.ip.split_exclude4,
            vec!["192.0.2.128/25".parse().unwrap()]
        );
        assert_eq!(cfg.ip.banner.as_deref(), Some("hello"));
        assert_eq!(cfg.dtls.port, Some(443));
        assert_eq!(cfg.dtls.app_id, Some(vec![0xab; 32]));
        assert_eq!(cfg.dtls.cipher_suite.as_deref(), Some("PSK-NEGOTIATE"));
        assert_eq!(
            cfg.dtls.timers.rekey,
            Some(std::time::Duration::from_secs(110))
        );
        assert_eq!(cfg.dtls.rekey_method.as_deref(), Some("ssl"));
        // ocserv's order: DTLS encoding, then CSTP encoding, after the banner.
        assert!(text.ends_with(
            "X-CSTP-Banner: hello\r\nX-DTLS-Content-Encoding: oc-lz4\r\nX-CSTP-Content-Encoding: lzs\r\n\r\n"
        ));
        assert_eq!(cfg.dtls_compression, Some(Algorithm::Lz4));
        assert_eq!(cfg.cstp_compression, Some(Algorithm::Lzs));
    }

    #[test]
    fn legacy_grant_names_session_suite_and_mtu_in_ocserv_order() {
        let suite = crate::anyconnect::dtls_cipher::select_legacy(
            None,
            Some("AES256-GCM-SHA384"),
            crate::anyconnect::dtls_cipher::Bulk::Other,
        )
        .unwrap();
        let grant = TunnelGrant {
            ipv4: Some((
                "10.1.0.5".parse().unwrap(),
                "255.255.255.0".parse().unwrap(),
            )),
            mtu: 1306,
            dtls: Some(DtlsGrant {
                port: 4443,
                id: [0x01; 32],
                dpd: None,
                keepalive: 20,
                rekey_time: None,
                rekey_ssl: false,
                mode: DtlsMode::Legacy {
                    suite,
                    data_mtu: legacy_data_mtu(1500, false),
                },
                compression: None,
            }),
            ..Default::default()
        };
        let mut bytes = Vec::new();
        grant.to_response().emit(&mut bytes);
        let text = String::from_utf8(bytes.clone()).unwrap();
        let port = text.find("X-DTLS-Port: 4443\r\n").unwrap();
        let sid = text
            .find(&format!("X-DTLS-Session-ID: {}\r\n", "01".repeat(32)))
            .unwrap();
        let cs = text
            .find("X-DTLS12-CipherSuite: AES256-GCM-SHA384\r\n")
            .unwrap();
        let mtu = text.find("X-DTLS-MTU: 1434\r\n").unwrap();
        assert!(port < sid && sid < cs && cs < mtu);
        assert!(!text.contains("App-ID") && !text.contains("Rekey"));
        let mut reader = ResponseReader::new(Limits::default(), true);
        reader.feed(&bytes).unwrap();
        let cfg = TunnelConfig::from_response(&reader.poll().unwrap().unwrap().head, None).unwrap();
        assert_eq!(cfg.dtls.session_id, Some(vec![1; 32]));
        assert_eq!(cfg.dtls.mtu, Some(1434));
        // openconnect raises the tunnel MTU to the DTLS one.
        assert_eq!(cfg.ip.mtu, 1434);
    }

    #[test]
    fn master_secret_must_be_96_hex_digits() {
        let secret = "0A".repeat(48);
        let req = request(&format!(
            "CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nX-DTLS-Master-Secret: {secret}\r\nX-DTLS-CipherSuite: AES128-SHA\r\n\r\n"
        ));
        let c = ClientConnect::from_request(&req);
        assert_eq!(c.master_secret, Some([0x0a; 48]));
        assert!(!c.dtls_psk);
        assert_eq!(c.dtls_ciphers.as_deref(), Some("AES128-SHA"));
        for bad in [
            "0A".repeat(47),
            "ZZ".repeat(48),
            format!("{secret}00"),
            "é".repeat(48),
        ] {
            let req = request(&format!(
                "CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nX-DTLS-Master-Secret: {bad}\r\n\r\n"
            ));
            assert_eq!(
                ClientConnect::from_request(&req).master_secret,
                None,
                "{bad}"
            );
        }
    }

    /// Found by the `http_request` fuzz target: `u8::from_str_radix` takes a leading `+`,
    /// so a pair like `+A` passes for a hex byte.
    #[test]
    fn master_secret_refuses_signs() {
        let bad = format!("+A{}", "0A".repeat(47));
        let req = request(&format!(
            "CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nX-DTLS-Master-Secret: {bad}\r\n\r\n"
        ));
        assert_eq!(ClientConnect::from_request(&req).master_secret, None);
    }

    #[test]
    fn default_route_sends_no_includes_and_cisco_gets_dns_ip6() {
        let grant = TunnelGrant {
            ipv6: Some("fd00::5/128".parse().unwrap()),
            full_ipv6: true,
            ios_ipv6_route: false,
            cisco_agent: true,
            default_route: true,
            routes: vec!["192.0.2.0/24".parse().unwrap()],
            dns: vec!["fd00::1".parse().unwrap()],
            ..Default::default()
        };
        let mut bytes = Vec::new();
        grant.to_response().emit(&mut bytes);
        let text = String::from_utf8(bytes).unwrap();
        assert!(!text.contains("Split-Include"));
        assert!(text.contains("X-CSTP-Tunnel-All-DNS: true"));
        assert!(text.contains("X-CSTP-DNS-IP6: fd00::1"));
        assert_eq!(
            AgentKind::from_user_agent("Cisco AnyConnect VPN Agent for Windows 4.10"),
            AgentKind::Cisco
        );
        assert_eq!(
            AgentKind::from_user_agent("Open AnyConnect VPN Agent v9.01"),
            AgentKind::Other
        );
    }

    #[test]
    fn huge_mtu_headers_do_not_overflow() {
        for mtu in [u32::MAX, u32::MAX - 10, 4_000_000_000] {
            let client = ClientConnect {
                mtu: Some(mtu),
                ..ClientConnect::default()
            };
            assert_eq!(link_mtu(Some(1400), &client, true), 1400);
            let client = ClientConnect {
                base_mtu: Some(mtu),
                ..ClientConnect::default()
            };
            assert_eq!(link_mtu(None, &client, false), 1500);
        }
    }
}
