//! The tunnel request (`CONNECT /CSCOSSLC/tunnel`) and what the server grants in its answer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ipnet::{Ipv4Net, Ipv6Net};
use thiserror::Error;

use crate::compress::{self, Algorithm};
use crate::http::{Request, ResponseHead};
use crate::ip_config::IpConfig;

use super::session::{Channel, Timers};

/// What the client asks for in its CONNECT request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    /// `Host:` header value.
    pub host: String,
    pub user_agent: String,
    /// The `webvpn` cookie value.
    pub cookie: String,
    /// Our host name, sent as `X-CSTP-Hostname`.
    pub local_hostname: String,
    /// Link MTU towards the server (`X-CSTP-Base-MTU`).
    pub base_mtu: u16,
    /// Tunnel MTU we would like (`X-CSTP-MTU`).
    pub mtu: u16,
    pub ipv6: bool,
    /// Addresses from the previous connection, on reconnect.
    pub previous_addresses: Vec<IpAddr>,
    /// DTLS offer; `None` with `--no-dtls`.
    pub dtls: Option<DtlsOffer>,
    /// What compression to offer (`--compression`).
    pub compression: compress::Mode,
}

/// The DTLS part of a CONNECT request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtlsOffer {
    /// 48 random bytes for legacy (resumption) DTLS, sent as upper-case hex.
    pub master_secret: [u8; 48],
    /// `X-DTLS-CipherSuite` value (not sent when empty).
    pub ciphers: String,
    /// `X-DTLS12-CipherSuite` value (not sent when empty).
    pub dtls12_ciphers: String,
}

impl ConnectRequest {
    pub fn to_request(&self) -> Request {
        let mut req = Request::new("CONNECT", "/CSCOSSLC/tunnel")
            .header("Host", &self.host)
            .header("User-Agent", &self.user_agent)
            .header("Cookie", format!("webvpn={}", self.cookie))
            .header("X-CSTP-Version", "1")
            .header("X-CSTP-Hostname", &self.local_hostname)
            .header("X-CSTP-Protocol", "Copyright (c) 2004 Cisco Systems, Inc.");
        if let Some(offer) = self.compression.offer_header(Channel::Cstp) {
            req = req.header("X-CSTP-Accept-Encoding", offer);
        }
        req = req.header("X-CSTP-Base-MTU", self.base_mtu.to_string());
        if self.mtu != 0 {
            req = req.header("X-CSTP-MTU", self.mtu.to_string());
        }
        req = req.header(
            "X-CSTP-Address-Type",
            if self.ipv6 { "IPv6,IPv4" } else { "IPv4" },
        );
        for addr in &self.previous_addresses {
            req = req.header("X-CSTP-Address", addr.to_string());
        }
        if self.ipv6 {
            req = req.header("X-CSTP-Full-IPv6-Capability", "true");
        }
        if let Some(dtls) = &self.dtls {
            let hex: String = dtls
                .master_secret
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect();
            req = req.header("X-DTLS-Master-Secret", hex);
            if !dtls.ciphers.is_empty() {
                req = req.header("X-DTLS-CipherSuite", &dtls.ciphers);
            }
            if !dtls.dtls12_ciphers.is_empty() {
                req = req.header("X-DTLS12-CipherSuite", &dtls.dtls12_ciphers);
            }
            if let Some(offer) = self.compression.offer_header(Channel::Dtls) {
                req = req.header("X-DTLS-Accept-Encoding", offer);
            }
        }
        req
    }
}

/// The tunnel MTU openconnect requests for a link MTU: room for the worst-case DTLS
/// overhead (type byte, record header, SHA-1 MAC, IV, padding), UDP and IP.
pub fn default_tunnel_mtu(base_mtu: u16, server_is_ipv6: bool) -> u16 {
    let ip = if server_is_ipv6 { 40 } else { 20 };
    base_mtu.saturating_sub(82 + 8 + ip)
}

/// The MTU fields of Linux's `TCP_INFO` for the connection to the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpInfoMtu {
    /// `tcpi_pmtu`: the path MTU, IP and TCP headers included.
    pub pmtu: u32,
    pub rcv_mss: u32,
    pub snd_mss: u32,
}

/// openconnect's base MTU (`X-CSTP-Base-MTU`) when `--base-mtu` is not given
/// (`calculate_dtls_mtu` in cstp.c): the TCP path MTU from `TCP_INFO`; without one, the
/// smaller MSS less 13, else `TCP_MAXSEG` less 13; 1406 when nothing is known; never
/// below 1280. The MSS is not the place to start: with TCP timestamps it is 12 bytes short
/// of MTU - 40, which costs the tunnel those 12 bytes.
pub fn base_mtu_from_tcp(info: Option<TcpInfoMtu>, maxseg: Option<u32>) -> u16 {
    // C `int` arithmetic, so a zero MSS gives -13 and then the 1280 floor, as upstream.
    let mut base: i64 = 0;
    if let Some(ti) = info {
        base = i64::from(ti.pmtu);
        if base == 0 {
            base = i64::from(ti.rcv_mss.min(ti.snd_mss)) - 13;
        }
    }
    if base == 0 {
        if let Some(mss) = maxseg {
            base = i64::from(mss) - 13;
        }
    }
    if base == 0 {
        base = 1406;
    }
    base.clamp(1280, i64::from(u16::MAX)) as u16
}

/// Why the CONNECT response cannot start a tunnel.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConnectError {
    #[error("server rejected the cookie (HTTP {status} {reason})")]
    CookieRejected { status: u16, reason: String },
    #[error("server refused the tunnel: HTTP {status} {reason}{}", x_reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default())]
    Refused {
        status: u16,
        reason: String,
        x_reason: Option<String>,
    },
    #[error("no MTU received from the server (X-CSTP-MTU)")]
    NoMtu,
    #[error("no IP address received from the server (X-CSTP-Address)")]
    NoAddress,
    #[error("invalid {header} value {value:?}: {expected}")]
    BadHeader {
        header: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("unknown {header} {value:?} (this client knows {known})")]
    UnknownEncoding {
        header: &'static str,
        value: String,
        known: &'static str,
    },
}

/// The DTLS parameters granted by the server (used by the DTLS channel).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DtlsGrant {
    pub port: Option<u16>,
    /// `X-DTLS-App-ID` (PSK mode) as raw bytes.
    pub app_id: Option<Vec<u8>>,
    /// `X-DTLS-Session-ID` (legacy mode) as raw bytes.
    pub session_id: Option<Vec<u8>>,
    pub cipher_suite: Option<String>,
    pub dtls12_cipher_suite: Option<String>,
    pub mtu: Option<u16>,
    pub timers: Timers,
    /// `X-DTLS-Rekey-Method` (`ssl`: re-handshake DTLS in place; otherwise a new tunnel).
    pub rekey_method: Option<String>,
}

/// Tunnel settings from a successful CONNECT response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TunnelConfig {
    /// Addresses, routes, name servers, MTU, banner: what the script and the tun device
    /// get (`options` holds every `X-CSTP-*` header, for `CISCO_CSTP_OPTIONS`).
    pub ip: IpConfig,
    pub base_mtu: Option<u16>,
    pub session_timeout: Option<Duration>,
    pub rekey_method: Option<String>,
    pub cstp_timers: Timers,
    pub dtls: DtlsGrant,
    /// `X-CSTP-Content-Encoding`: compression the server chose for CSTP.
    pub cstp_compression: Option<Algorithm>,
    /// `X-DTLS-Content-Encoding`: compression the server chose for DTLS (stateless only).
    pub dtls_compression: Option<Algorithm>,
    pub server_name: Option<String>,
    /// Entries we skipped, each with the reason, for the log.
    pub warnings: Vec<String>,
}

impl TunnelConfig {
    /// Reads a CONNECT response. `forced_dpd` (`--force-dpd`) overrides the server's DPD.
    pub fn from_response(
        head: &ResponseHead,
        forced_dpd: Option<Duration>,
    ) -> Result<Self, ConnectError> {
        if head.status != 200 {
            if head.status == 401 || head.status == 403 {
                return Err(ConnectError::CookieRejected {
                    status: head.status,
                    reason: head.reason.clone(),
                });
            }
            return Err(ConnectError::Refused {
                status: head.status,
                reason: head.reason.clone(),
                x_reason: head.header("X-Reason").map(str::to_string),
            });
        }
        let mut cfg = TunnelConfig::default();
        let mut cstp_mtu = 0u16;
        for h in &head.headers {
            let name = h.name.to_ascii_lowercase();
            let value = h.value.as_str();
            if name.starts_with("x-cstp-") {
                cfg.ip.options.push((h.name.clone(), h.value.clone()));
            }
            match name.as_str() {
                "x-cstp-mtu" => cstp_mtu = parse_num(value, "X-CSTP-MTU")?,
                "x-dtls-mtu" => cfg.dtls.mtu = Some(parse_num(value, "X-DTLS-MTU")?),
                "x-cstp-base-mtu" => cfg.base_mtu = Some(parse_num(value, "X-CSTP-Base-MTU")?),
                "x-cstp-address" => match value.parse::<IpAddr>() {
                    Ok(IpAddr::V4(a)) => cfg.ip.ipv4 = Some(a),
                    // Legacy IPv6 form: address here, prefix in X-CSTP-Netmask.
                    Ok(IpAddr::V6(a)) if cfg.ip.ipv6.is_none() => {
                        cfg.ip.ipv6 = Ipv6Net::new(a, 128).ok();
                    }
                    Ok(IpAddr::V6(_)) => {}
                    Err(_) => return Err(bad("X-CSTP-Address", value, "an IP address")),
                },
                "x-cstp-netmask" => {
                    if let Ok(mask) = value.parse::<Ipv4Addr>() {
                        cfg.ip.ipv4_netmask = Some(mask);
                    } else if let Some((_, len)) = value.split_once('/') {
                        let len: u8 = len.parse().map_err(|_| {
                            bad("X-CSTP-Netmask", value, "a netmask or IPv6 prefix")
                        })?;
                        if let Some(net) = cfg.ip.ipv6 {
                            cfg.ip.ipv6 = Ipv6Net::new(net.addr(), len).ok();
                        }
                    } else {
                        return Err(bad("X-CSTP-Netmask", value, "a netmask"));
                    }
                }
                "x-cstp-address-ip6" => {
                    cfg.ip.ipv6 = Some(
                        value
                            .parse::<Ipv6Net>()
                            .map_err(|_| bad("X-CSTP-Address-IP6", value, "addr/prefix"))?,
                    );
                }
                "x-cstp-dns" => push_addr(&mut cfg.ip.dns, &mut cfg.warnings, "X-CSTP-DNS", value),
                "x-cstp-dns-ip6" => {
                    push_addr(&mut cfg.ip.dns, &mut cfg.warnings, "X-CSTP-DNS-IP6", value)
                }
                "x-cstp-nbns" => {
                    push_addr(&mut cfg.ip.nbns, &mut cfg.warnings, "X-CSTP-NBNS", value)
                }
                "x-cstp-default-domain" => {
                    cfg.ip.default_domain = Some(value.replace([',', ';'], " "))
                }
                "x-cstp-split-dns" => cfg.ip.split_dns.push(value.to_string()),
                "x-cstp-split-include" => {
                    push_route(&mut cfg, value, true);
                }
                "x-cstp-split-exclude" => {
                    push_route(&mut cfg, value, false);
                }
                "x-cstp-split-include-ip6" => push_route6(&mut cfg, value, true),
                "x-cstp-split-exclude-ip6" => push_route6(&mut cfg, value, false),
                "x-cstp-banner" => cfg.ip.banner = Some(value.to_string()),
                "x-cstp-msie-proxy-pac-url" => cfg.ip.proxy_pac = Some(value.to_string()),
                "x-cstp-idle-timeout" => cfg.ip.idle_timeout = seconds(value),
                "x-cstp-session-timeout" => cfg.session_timeout = seconds(value),
                "x-cstp-dpd" => cfg.cstp_timers.dpd = seconds(value),
                "x-cstp-keepalive" => cfg.cstp_timers.keepalive = seconds(value),
                "x-cstp-rekey-time" => cfg.cstp_timers.rekey = seconds(value),
                "x-cstp-rekey-method" => cfg.rekey_method = Some(value.to_string()),
                "x-cstp-server-name" => cfg.server_name = Some(value.to_string()),
                // openconnect quits on a token it does not know: the server would send
                // packets we cannot read.
                "x-cstp-content-encoding" => {
                    cfg.cstp_compression = Some(Algorithm::from_token(value).ok_or_else(|| {
                        ConnectError::UnknownEncoding {
                            header: "X-CSTP-Content-Encoding",
                            value: value.to_string(),
                            known: "oc-lz4, lzs, deflate",
                        }
                    })?);
                }
                "x-dtls-content-encoding" => {
                    let algorithm = Algorithm::from_token(value).filter(|a| a.is_stateless());
                    cfg.dtls_compression =
                        Some(algorithm.ok_or_else(|| ConnectError::UnknownEncoding {
                            header: "X-DTLS-Content-Encoding",
                            value: value.to_string(),
                            known: "oc-lz4, lzs",
                        })?);
                }
                "x-dtls-port" => cfg.dtls.port = Some(parse_num(value, "X-DTLS-Port")?),
                "x-dtls-app-id" => cfg.dtls.app_id = Some(parse_hex(value, "X-DTLS-App-ID")?),
                "x-dtls-session-id" => {
                    let id = parse_hex(value, "X-DTLS-Session-ID")?;
                    if id.len() != 32 {
                        return Err(bad("X-DTLS-Session-ID", value, "64 hex digits"));
                    }
                    cfg.dtls.session_id = Some(id);
                }
                "x-dtls-ciphersuite" => cfg.dtls.cipher_suite = Some(value.to_string()),
                "x-dtls12-ciphersuite" => cfg.dtls.dtls12_cipher_suite = Some(value.to_string()),
                "x-dtls-dpd" => cfg.dtls.timers.dpd = seconds(value),
                "x-dtls-keepalive" => cfg.dtls.timers.keepalive = seconds(value),
                "x-dtls-rekey-time" => cfg.dtls.timers.rekey = seconds(value),
                "x-dtls-rekey-method" => cfg.dtls.rekey_method = Some(value.to_string()),
                _ => {}
            }
        }
        if let Some(dpd) = forced_dpd {
            cfg.cstp_timers.dpd = Some(dpd);
            cfg.dtls.timers.dpd = Some(dpd);
        }
        cfg.ip.mtu = cstp_mtu.max(cfg.dtls.mtu.unwrap_or(0));
        if cfg.ip.mtu == 0 {
            return Err(ConnectError::NoMtu);
        }
        if cfg.ip.ipv4.is_none() && cfg.ip.ipv6.is_none() {
            return Err(ConnectError::NoAddress);
        }
        Ok(cfg)
    }
}

fn bad(header: &'static str, value: &str, expected: &'static str) -> ConnectError {
    ConnectError::BadHeader {
        header,
        value: value.to_string(),
        expected,
    }
}

fn parse_num<T: std::str::FromStr>(value: &str, header: &'static str) -> Result<T, ConnectError> {
    value
        .trim()
        .parse()
        .map_err(|_| bad(header, value, "a number"))
}

fn parse_hex(value: &str, header: &'static str) -> Result<Vec<u8>, ConnectError> {
    let value = value.trim();
    if !value.len().is_multiple_of(2) || value.len() > 128 {
        return Err(bad(header, value, "an even number of hex digits"));
    }
    crate::hex::decode(value).ok_or_else(|| bad(header, value, "hex digits"))
}

/// A timer value in seconds; 0, `none` or junk mean "off", as openconnect's `atol` reads it.
fn seconds(value: &str) -> Option<Duration> {
    match value.trim().parse::<u64>() {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(Duration::from_secs(n)),
    }
}

fn push_addr(list: &mut Vec<IpAddr>, warnings: &mut Vec<String>, header: &str, value: &str) {
    match value.trim().parse() {
        Ok(a) => list.push(a),
        Err(_) => warnings.push(format!("ignoring {header} {value:?}: not an IP address")),
    }
}

/// IPv4 routes come as `net/len`, `net/a.b.c.d` or a bare address; IPv6 ones may arrive in
/// the non-`-IP6` header too. Host bits are cleared, as the script expects a network.
fn push_route(cfg: &mut TunnelConfig, value: &str, include: bool) {
    if value.contains(':') {
        return push_route6(cfg, value, include);
    }
    let (addr, mask) = value.split_once('/').unwrap_or((value, "32"));
    let net = addr.trim().parse::<Ipv4Addr>().ok().and_then(|addr| {
        if let Ok(len) = mask.parse::<u8>() {
            Ipv4Net::new(addr, len).ok()
        } else {
            let mask = mask.parse::<Ipv4Addr>().ok()?;
            Ipv4Net::with_netmask(addr, mask).ok()
        }
    });
    match net {
        Some(net) if include => cfg.ip.split_include4.push(net.trunc()),
        Some(net) => cfg.ip.split_exclude4.push(net.trunc()),
        None => cfg.warnings.push(format!(
            "ignoring split route {value:?}: not a valid IPv4 network"
        )),
    }
}

fn push_route6(cfg: &mut TunnelConfig, value: &str, include: bool) {
    let net = value
        .parse::<Ipv6Net>()
        .or_else(|_| value.parse::<Ipv6Addr>().map(Ipv6Net::from));
    match net {
        Ok(net) if include => cfg.ip.split_include6.push(net.trunc()),
        Ok(net) => cfg.ip.split_exclude6.push(net.trunc()),
        Err(_) => cfg.warnings.push(format!(
            "ignoring split route {value:?}: not a valid IPv6 network"
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::http::{Limits, ResponseReader};

    fn head(text: &str) -> ResponseHead {
        let mut r = ResponseReader::new(Limits::default(), true);
        r.feed(text.replace('\n', "\r\n").as_bytes()).unwrap();
        r.poll().unwrap().unwrap().head
    }

    const OCSERV: &str = "HTTP/1.1 200 CONNECTED
X-CSTP-Version: 1
X-CSTP-Server-Name: ocserv 1.1.6
X-CSTP-DPD: 90
X-CSTP-Default-Domain: example.com
X-CSTP-Address: 198.18.100.7
X-CSTP-Netmask: 255.255.255.0
X-CSTP-Address-IP6: fd00:1::7/64
X-CSTP-DNS: 198.18.1.53
X-CSTP-DNS: fd00::53
X-CSTP-Split-DNS: corp.example
X-CSTP-Split-Include: 10.1.2.3/255.255.0.0
X-CSTP-Split-Include: 198.19.0.0/16
X-CSTP-Split-Include: bogus
X-CSTP-Split-Include-IP6: fd00:2::1/48
X-CSTP-Split-Exclude: 10.1.9.0/24
X-CSTP-Tunnel-All-DNS: false
X-CSTP-Keepalive: 32400
X-CSTP-Idle-Timeout: none
X-CSTP-Rekey-Time: 172800
X-CSTP-Rekey-Method: ssl
X-CSTP-Session-Timeout: none
X-DTLS-DPD: 90
X-DTLS-Port: 443
X-DTLS-Keepalive: 32400
X-DTLS-App-ID: 0102030405060708091011121314151617181920212223242526272829303132
X-DTLS-CipherSuite: PSK-NEGOTIATE
X-CSTP-Base-MTU: 1500
X-CSTP-MTU: 1434
X-CSTP-Banner: Welcome%0Ain

";

    #[test]
    fn ocserv_response() {
        let cfg = TunnelConfig::from_response(&head(OCSERV), None).unwrap();
        assert_eq!(cfg.ip.mtu, 1434);
        assert_eq!(cfg.ip.ipv4, Some(Ipv4Addr::new(198, 18, 100, 7)));
        assert_eq!(cfg.ip.ipv4_net().unwrap().to_string(), "198.18.100.7/24");
        assert_eq!(cfg.ip.ipv6.unwrap().to_string(), "fd00:1::7/64");
        assert_eq!(cfg.ip.dns.len(), 2);
        assert_eq!(
            cfg.ip
                .split_include4
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>(),
            vec!["10.1.0.0/16", "198.19.0.0/16"]
        );
        assert_eq!(cfg.ip.split_include6[0].to_string(), "fd00:2::/48");
        assert_eq!(cfg.ip.split_exclude4[0].to_string(), "10.1.9.0/24");
        assert_eq!(cfg.warnings.len(), 1);
        assert_eq!(cfg.cstp_timers.dpd, Some(Duration::from_secs(90)));
        assert_eq!(cfg.ip.idle_timeout, None);
        assert_eq!(cfg.dtls.app_id.as_ref().unwrap().len(), 32);
        assert_eq!(cfg.ip.banner.as_deref(), Some("Welcome%0Ain"));
        assert!(cfg
            .ip
            .options
            .contains(&("X-CSTP-Tunnel-All-DNS".into(), "false".into())));
        let forced = TunnelConfig::from_response(&head(OCSERV), Some(Duration::from_secs(5)));
        assert_eq!(
            forced.unwrap().cstp_timers.dpd,
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn legacy_ipv6_form() {
        let cfg = TunnelConfig::from_response(
            &head("HTTP/1.1 200 OK\nX-CSTP-MTU: 1300\nX-CSTP-Address: fd00::5\nX-CSTP-Netmask: fd00::/64\n\n"),
            None,
        )
        .unwrap();
        assert_eq!(cfg.ip.ipv6.unwrap().to_string(), "fd00::5/64");
        assert_eq!(cfg.ip.ipv4, None);
    }

    #[test]
    fn required_fields_and_errors() {
        let no_mtu = head("HTTP/1.1 200 OK\nX-CSTP-Address: 1.2.3.4\n\n");
        assert_eq!(
            TunnelConfig::from_response(&no_mtu, None),
            Err(ConnectError::NoMtu)
        );
        let no_addr = head("HTTP/1.1 200 OK\nX-CSTP-MTU: 1400\n\n");
        assert_eq!(
            TunnelConfig::from_response(&no_addr, None),
            Err(ConnectError::NoAddress)
        );
        let rejected = head("HTTP/1.1 401 Cookie is not acceptable\n\n");
        assert!(matches!(
            TunnelConfig::from_response(&rejected, None),
            Err(ConnectError::CookieRejected { status: 401, .. })
        ));
        let refused =
            head("HTTP/1.1 503 Service Unavailable\nX-Reason: Server configuration error\n\n");
        let err = TunnelConfig::from_response(&refused, None).unwrap_err();
        assert!(err.to_string().contains("Server configuration error"));
        let bad_id = head("HTTP/1.1 200 OK\nX-CSTP-MTU: 1400\nX-CSTP-Address: 1.2.3.4\nX-DTLS-Session-ID: abcd\n\n");
        assert!(matches!(
            TunnelConfig::from_response(&bad_id, None),
            Err(ConnectError::BadHeader {
                header: "X-DTLS-Session-ID",
                ..
            })
        ));
        let bad_mtu = head("HTTP/1.1 200 OK\nX-CSTP-MTU: lots\n\n");
        assert!(matches!(
            TunnelConfig::from_response(&bad_mtu, None),
            Err(ConnectError::BadHeader { .. })
        ));
    }

    #[test]
    fn request_headers() {
        let req = ConnectRequest {
            host: "vpn:8443".into(),
            user_agent: "UA".into(),
            cookie: "abc=".into(),
            local_hostname: "laptop".into(),
            base_mtu: 1500,
            mtu: default_tunnel_mtu(1500, false),
            ipv6: true,
            previous_addresses: vec!["198.18.0.9".parse().unwrap()],
            dtls: Some(DtlsOffer {
                master_secret: [0xab; 48],
                ciphers: "PSK-NEGOTIATE".into(),
                dtls12_ciphers: "AES128-GCM-SHA256".into(),
            }),
            compression: compress::Mode::All,
        }
        .to_request();
        let mut out = Vec::new();
        req.emit(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nHost: vpn:8443\r\n"));
        assert!(text.contains("Cookie: webvpn=abc=\r\n"));
        assert!(text.contains("X-CSTP-MTU: 1390\r\n"));
        assert!(text.contains("X-CSTP-Address-Type: IPv6,IPv4\r\n"));
        assert!(text.contains("X-CSTP-Address: 198.18.0.9\r\n"));
        assert!(text.contains(&format!("X-DTLS-Master-Secret: {}\r\n", "AB".repeat(48))));
        // openconnect's place for the offers: CSTP before Base-MTU, DTLS after the ciphers.
        assert!(text
            .contains("X-CSTP-Accept-Encoding: oc-lz4,lzs,deflate\r\nX-CSTP-Base-MTU: 1500\r\n"));
        assert!(text.contains(
            "X-DTLS12-CipherSuite: AES128-GCM-SHA256\r\nX-DTLS-Accept-Encoding: oc-lz4,lzs\r\n"
        ));
    }

    #[test]
    fn base_mtu_follows_openconnect() {
        // veth MTU 1500, IPv4, TCP timestamps on: pmtu 1500, MSS 1448.
        let veth4 = TcpInfoMtu {
            pmtu: 1500,
            rcv_mss: 1448,
            snd_mss: 1448,
        };
        let base = base_mtu_from_tcp(Some(veth4), Some(1448));
        assert_eq!(base, 1500);
        assert_eq!(default_tunnel_mtu(base, false), 1390);
        // IPv6 over the same link: MSS 1428, same path MTU.
        let veth6 = TcpInfoMtu {
            pmtu: 1500,
            rcv_mss: 1428,
            snd_mss: 1428,
        };
        let base = base_mtu_from_tcp(Some(veth6), Some(1428));
        assert_eq!(base, 1500);
        assert_eq!(default_tunnel_mtu(base, true), 1370);
        // Fallbacks: the smaller MSS less 13, TCP_MAXSEG less 13, 1406, and the 1280 floor.
        let no_pmtu = TcpInfoMtu {
            pmtu: 0,
            rcv_mss: 1448,
            snd_mss: 1460,
        };
        assert_eq!(base_mtu_from_tcp(Some(no_pmtu), Some(1448)), 1435);
        assert_eq!(base_mtu_from_tcp(None, Some(1448)), 1435);
        assert_eq!(base_mtu_from_tcp(None, None), 1406);
        assert_eq!(base_mtu_from_tcp(None, Some(536)), 1280);
        assert_eq!(
            base_mtu_from_tcp(Some(TcpInfoMtu::default()), Some(1448)),
            1280
        );
        assert_eq!(
            base_mtu_from_tcp(
                Some(TcpInfoMtu {
                    pmtu: 70000,
                    ..veth4
                }),
                None
            ),
            65535
        );
    }

    #[test]
    fn tunnel_mtu_is_the_larger_of_cstp_and_dtls() {
        // ocserv over IPv6 with PSK: no X-DTLS-MTU, X-CSTP-MTU = 1500 - 48 - 38.
        let v6 = head("HTTP/1.1 200 OK\nX-CSTP-Address: 10.0.0.2\nX-CSTP-Base-MTU: 1500\nX-CSTP-MTU: 1414\n\n");
        let cfg = TunnelConfig::from_response(&v6, None).unwrap();
        assert_eq!((cfg.ip.mtu, cfg.base_mtu), (1414, Some(1500)));
        // Legacy DTLS: X-DTLS-MTU wins when larger, as in openconnect.
        let legacy = head(
            "HTTP/1.1 200 OK\nX-CSTP-Address: 10.0.0.2\nX-DTLS-MTU: 1434\nX-CSTP-MTU: 1400\n\n",
        );
        assert_eq!(
            TunnelConfig::from_response(&legacy, None).unwrap().ip.mtu,
            1434
        );
    }

    /// Found by the `http_response` fuzz target: `u8::from_str_radix` takes a leading `+`,
    /// so `+1` passes for the hex byte `01` in the DTLS ids.
    #[test]
    fn dtls_ids_refuse_signs() {
        let app_id = head(
            "HTTP/1.1 200 OK\nX-CSTP-MTU: 1400\nX-CSTP-Address: 1.2.3.4\nX-DTLS-App-ID: +1\n\n",
        );
        assert!(matches!(
            TunnelConfig::from_response(&app_id, None),
            Err(ConnectError::BadHeader {
                header: "X-DTLS-App-ID",
                ..
            })
        ));
        let session_id = head(&format!(
            "HTTP/1.1 200 OK\nX-CSTP-MTU: 1400\nX-CSTP-Address: 1.2.3.4\nX-DTLS-Session-ID: {}\n\n",
            "+1".repeat(32)
        ));
        assert!(matches!(
            TunnelConfig::from_response(&session_id, None),
            Err(ConnectError::BadHeader {
                header: "X-DTLS-Session-ID",
                ..
            })
        ));
    }

    #[test]
    fn content_encodings() {
        let granted = head("HTTP/1.1 200 OK\nX-CSTP-MTU: 1400\nX-CSTP-Address: 1.2.3.4\nX-DTLS-Content-Encoding: oc-lz4\nX-CSTP-Content-Encoding: deflate\n\n");
        let cfg = TunnelConfig::from_response(&granted, None).unwrap();
        assert_eq!(cfg.cstp_compression, Some(Algorithm::Deflate));
        assert_eq!(cfg.dtls_compression, Some(Algorithm::Lz4));
        let none = head("HTTP/1.1 200 OK\nX-CSTP-MTU: 1400\nX-CSTP-Address: 1.2.3.4\n\n");
        let cfg = TunnelConfig::from_response(&none, None).unwrap();
        assert_eq!((cfg.cstp_compression, cfg.dtls_compression), (None, None));
        for bad in [
            "X-CSTP-Content-Encoding: gzip",
            "X-DTLS-Content-Encoding: deflate",
        ] {
            let h = head(&format!(
                "HTTP/1.1 200 OK\nX-CSTP-MTU: 1400\nX-CSTP-Address: 1.2.3.4\n{bad}\n\n"
            ));
            let err = TunnelConfig::from_response(&h, None).unwrap_err();
            assert!(
                matches!(err, ConnectError::UnknownEncoding { .. }),
                "{bad}: {err}"
            );
        }
    }
}
