//! The gateway's `getconfig.esp` answer: the tunnel's addresses, routes and name servers
//! (an [`IpConfig`] for the vpnc-script), its timers, the TLS tunnel's path, and the ESP
//! association (`<ipsec>`: SPIs, keys, algorithms, port) with the "magic" address its
//! probes go to. Read by the client, written by the gateway.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ipnet::{Ipv4Net, Ipv6Net};

use super::auth::xml_of;
use super::reply::Reply;
use super::xml::Element;
use super::{GpError, TUNNEL_PATH};
use crate::esp::{EspEncryption, EspIntegrity, EspKeys, EspSuite};
use crate::ip_config::IpConfig;

/// Name servers (and WINS servers) upstream takes from one configuration.
pub const MAX_NAME_SERVERS: usize = 3;
/// Routes read from one configuration at most.
const MAX_ROUTES: usize = 1024;

/// The ESP association the gateway hands out: both directions' keys (the client makes
/// none), the port, the mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspConfig {
    /// Client to server: `c2s-spi`, `ekey-c2s`, `akey-c2s`.
    pub client_to_server: EspKeys,
    /// Server to client: `s2c-spi`, `ekey-s2c`, `akey-s2c`.
    pub server_to_client: EspKeys,
    /// `udp-port` (real gateways: 4501). Upstream sends no ESP without it.
    pub port: Option<u16>,
    /// `ipsec-mode`: `esp-tunnel` is the only one known.
    pub mode: Option<String>,
}

/// What the gateway's `getconfig.esp` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayConfig {
    /// Addresses (`ip-address`, `netmask`, `ip-address-v6`), `dns`/`dns-v6` (three,
    /// without repeats), `wins`, `dns-suffix`, `access-routes`(`-v6`) as includes,
    /// `exclude-access-routes`(`-v6`) as excludes, `mtu` (0: none; the client computes
    /// one), `disconnect-on-idle` as the idle timeout.
    pub ip: IpConfig,
    /// `lifetime`: how long the login lasts.
    pub lifetime: Option<Duration>,
    /// `timeout`: the tunnel's rekey interval (upstream reconnects a minute before it).
    pub rekey: Option<Duration>,
    /// `ssl-tunnel-url`.
    pub tunnel_path: String,
    /// `gw-address` and `gw-address-v6`: where the ESP probes go.
    pub magic4: Option<Ipv4Addr>,
    pub magic6: Option<Ipv6Addr>,
    /// `ipsec`, when complete and in algorithms upstream knows.
    pub esp: Option<EspConfig>,
    /// `quarantine` other than `no`.
    pub quarantine: Option<String>,
    /// What upstream would say about the configuration (unknown tags, an incomplete
    /// `ipsec`, a mode other than `esp-tunnel`), for the log.
    pub notes: Vec<String>,
}

/// Tags upstream knows and has no use for.
const IGNORED: &[&str] = &[
    "need-tunnel",
    "bw-c2s",
    "bw-s2c",
    "default-gateway",
    "default-gateway-v6",
    "no-direct-access-to-local-network",
    "ip-address-preferred",
    "ip-address-v6-preferred",
    "ipv6-connection",
    "portal",
    "user",
    "connected-gw-ip",
];

impl GatewayConfig {
    /// Reads `<response>`. `with_esp`: whether the client wants ESP at all (upstream reads
    /// no `ipsec` with ESP off); `with_ipv6`: whether it takes the IPv6 address.
    pub fn parse(reply: &Reply, with_esp: bool, with_ipv6: bool) -> Result<Self, GpError> {
        let root = xml_of(reply, "response")?;
        let mut config = Self {
            tunnel_path: TUNNEL_PATH.to_string(),
            ..Self::default()
        };
        for child in root.elements() {
            config.read(child, with_esp, with_ipv6)?;
        }
        // No tunnel without an address (upstream's install_vpn_opts aborts too).
        if config.ip.ipv4.is_none() && config.ip.ipv6.is_none() {
            return Err(GpError::NoAddress);
        }
        Ok(config)
    }

    fn read(&mut self, e: &Element, with_esp: bool, with_ipv6: bool) -> Result<(), GpError> {
        let text = e.content();
        let value = text.trim();
        let ip = &mut self.ip;
        match e.name.as_str() {
            "ip-address" => ip.ipv4 = Some(parse_value("ip-address", value)?),
            "ip-address-v6" if with_ipv6 => {
                let addr: Ipv6Addr = parse_value("ip-address-v6", value)?;
                ip.ipv6 = Ipv6Net::new(addr, 128).ok();
            }
            "ip-address-v6" => {}
            "netmask" => ip.ipv4_netmask = Some(parse_value("netmask", value)?),
            "mtu" => ip.mtu = leading_number(value).try_into().unwrap_or(0),
            "lifetime" => self.lifetime = seconds(value),
            "timeout" => self.rekey = seconds(value),
            "disconnect-on-idle" => ip.idle_timeout = seconds(value),
            "quarantine" => self.quarantine = Some(value.to_string()).filter(|v| v != "no"),
            "ssl-tunnel-url" => self.tunnel_path = value.to_string(),
            "gw-address" => self.magic4 = value.parse().ok(),
            "gw-address-v6" => self.magic6 = value.parse().ok(),
            "dns" | "dns-v6" => {
                for addr in members(e).filter_map(|m| m.parse::<IpAddr>().ok()) {
                    if ip.dns.len() < MAX_NAME_SERVERS && !ip.dns.contains(&addr) {
                        ip.dns.push(addr);
                    }
                }
            }
            "wins" => {
                let room = MAX_NAME_SERVERS.saturating_sub(ip.nbns.len());
                ip.nbns.extend(
                    members(e)
                        .filter_map(|m| m.parse::<IpAddr>().ok())
                        .take(room),
                );
            }
            "dns-suffix" => {
                let domains: Vec<String> = members(e).collect();
                if !domains.is_empty() {
                    ip.default_domain = Some(domains.join(" "));
                }
            }
            "access-routes"
            | "access-routes-v6"
            | "exclude-access-routes"
            | "exclude-access-routes-v6" => {
                // Whether a route is IPv4 or IPv6 is its own business (9.01 took
                // access-routes-v6 for excludes).
                let exclude = e.name.starts_with('e');
                for route in members(e).take(MAX_ROUTES) {
                    add_route(ip, &route, exclude);
                }
            }
            "ipsec" if with_esp => match esp_config(e, &mut self.notes) {
                Ok(esp) => self.esp = Some(esp),
                Err(why) => self.notes.push(format!(
                    "Server's ESP configuration is incomplete or uses unknown algorithms: {why}"
                )),
            },
            "ipsec" => {}
            name if IGNORED.contains(&name) => {}
            name => {
                if self.notes.len() < 64 {
                    let ipv6 = if name.contains('6') {
                        "Potential IPv6-related "
                    } else {
                        "Unknown "
                    };
                    let shown: String = value.chars().take(100).collect();
                    self.notes
                        .push(format!("{ipv6}GlobalProtect config tag <{name}>: {shown}"));
                }
            }
        }
        Ok(())
    }

    /// Where ESP's probes go, if ESP can run: the IPv6 magic when the client has an IPv6
    /// address (so that both families work over the tunnel), else the IPv4 one when it has
    /// an IPv4 address.
    pub fn esp_magic(&self) -> Option<IpAddr> {
        self.esp.as_ref()?;
        match (self.magic6, self.ip.ipv6, self.magic4, self.ip.ipv4) {
            (Some(m), Some(_), _, _) => Some(IpAddr::V6(m)),
            (_, _, Some(m), Some(_)) => Some(IpAddr::V4(m)),
            _ => None,
        }
    }

    /// The gateway's answer.
    pub fn to_xml(&self) -> String {
        let ip = &self.ip;
        let mut root = Element::new("response");
        let mut text = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                root.push_text(name, &value);
            }
        };
        text("need-tunnel", Some("yes".into()));
        text("ssl-tunnel-url", Some(self.tunnel_path.clone()));
        text("portal", None);
        text("ip-address", ip.ipv4.map(|a| a.to_string()));
        text("netmask", ip.ipv4_netmask.map(|a| a.to_string()));
        text("ip-address-v6", ip.ipv6.map(|n| n.addr().to_string()));
        text("mtu", Some(ip.mtu.to_string()));
        text("gw-address", self.magic4.map(|a| a.to_string()));
        text("gw-address-v6", self.magic6.map(|a| a.to_string()));
        text("lifetime", self.lifetime.map(|d| d.as_secs().to_string()));
        text("timeout", self.rekey.map(|d| d.as_secs().to_string()));
        text(
            "disconnect-on-idle",
            ip.idle_timeout.map(|d| d.as_secs().to_string()),
        );
        text(
            "quarantine",
            Some(self.quarantine.clone().unwrap_or_else(|| "no".into())),
        );
        let list = |name: &str, members: Vec<String>| {
            let mut e = Element::new(name);
            for m in members {
                e.push_text("member", &m);
            }
            e
        };
        let show = |v: &[IpAddr]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        root.push(list("dns", show(&ip.dns)));
        root.push(list("wins", show(&ip.nbns)));
        let domains = ip.default_domain.iter().flat_map(|d| d.split_whitespace());
        root.push(list("dns-suffix", domains.map(str::to_string).collect()));
        let nets = |v4: &[Ipv4Net], v6: &[Ipv6Net]| {
            let v4 = v4.iter().map(ToString::to_string);
            v4.chain(v6.iter().map(ToString::to_string)).collect()
        };
        root.push(list(
            "access-routes",
            nets(&ip.split_include4, &ip.split_include6),
        ));
        root.push(list(
            "exclude-access-routes",
            nets(&ip.split_exclude4, &ip.split_exclude6),
        ));
        if let Some(esp) = &self.esp {
            root.push(esp_element(esp));
        }
        root.to_xml()
    }
}

fn parse_value<T: std::str::FromStr>(tag: &'static str, value: &str) -> Result<T, GpError> {
    value.parse().map_err(|_| GpError::BadConfigValue {
        tag,
        value: value.chars().take(100).collect(),
    })
}

/// `atoi`: the leading digits (0 without any).
fn leading_number(value: &str) -> u64 {
    let digits = value.len() - value.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    value
        .get(..digits)
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

/// A positive number of seconds.
fn seconds(value: &str) -> Option<Duration> {
    Some(leading_number(value))
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
}

/// The trimmed `<member>` texts of a list.
fn members(e: &Element) -> impl Iterator<Item = String> + '_ {
    e.children_named("member")
        .map(|m| m.content().trim().to_string())
        .filter(|m| !m.is_empty())
}

/// A route: `NET/LEN` or a bare address, IPv4 or IPv6 (anything else is skipped).
fn add_route(ip: &mut IpConfig, route: &str, exclude: bool) {
    if let Some(net) = route
        .parse::<Ipv4Net>()
        .ok()
        .or_else(|| route.parse::<Ipv4Addr>().ok().map(Ipv4Net::from))
    {
        let list = if exclude {
            &mut ip.split_exclude4
        } else {
            &mut ip.split_include4
        };
        list.push(net.trunc());
    } else if let Some(net) = route
        .parse::<Ipv6Net>()
        .ok()
        .or_else(|| route.parse::<Ipv6Addr>().ok().map(Ipv6Net::from))
    {
        let list = if exclude {
            &mut ip.split_exclude6
        } else {
            &mut ip.split_include6
        };
        list.push(net.trunc());
    }
}

/// `enc-algo` names upstream knows.
fn encryption(name: &str) -> Option<EspEncryption> {
    match name {
        "aes128" | "aes-128-cbc" => Some(EspEncryption::Aes128Cbc),
        "aes-256-cbc" => Some(EspEncryption::Aes256Cbc),
        _ => None,
    }
}

fn encryption_name(e: EspEncryption) -> &'static str {
    match e {
        EspEncryption::Aes128Cbc => "aes-128-cbc",
        EspEncryption::Aes256Cbc => "aes-256-cbc",
    }
}

/// `hmac-algo` names upstream knows.
fn integrity(name: &str) -> Option<EspIntegrity> {
    match name {
        "sha1" => Some(EspIntegrity::HmacSha1_96),
        "md5" => Some(EspIntegrity::HmacMd5_96),
        "sha256" => Some(EspIntegrity::HmacSha256_128),
        _ => None,
    }
}

fn integrity_name(i: EspIntegrity) -> &'static str {
    match i {
        EspIntegrity::HmacSha1_96 => "sha1",
        EspIntegrity::HmacMd5_96 => "md5",
        EspIntegrity::HmacSha256_128 => "sha256",
    }
}

/// A key: `<bits>N</bits><val>hex</val>`, its length exactly `N / 8` bytes.
fn key(e: Option<&Element>, tag: &'static str) -> Result<Vec<u8>, GpError> {
    let e = e.ok_or(GpError::BadConfigValue {
        tag,
        value: "(missing)".into(),
    })?;
    let bits = e.child_text("bits").unwrap_or_default();
    let hex = e.child_text("val").unwrap_or_default();
    let hex = hex.trim();
    let bytes: Vec<u8> = hex
        .as_bytes()
        .chunks_exact(2)
        .take(64)
        .map(crate::hex::byte)
        .collect::<Option<_>>()
        .ok_or_else(|| GpError::BadConfigValue {
            tag,
            value: hex.chars().take(140).collect(),
        })?;
    let wanted = bits
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|b| b % 8 == 0)
        .map(|b| b / 8);
    if wanted != Some(bytes.len()) || hex.len() != 2 * bytes.len() {
        return Err(GpError::KeyLength {
            tag,
            got: hex.len() / 2,
            bits: bits.trim().chars().take(20).collect(),
        });
    }
    Ok(bytes)
}

fn spi(e: &Element, tag: &'static str) -> Result<u32, GpError> {
    let text = e.child_text(tag).unwrap_or_default();
    let hex = text.trim();
    let digits = hex
        .strip_prefix("0x")
        .or_else(|| hex.strip_prefix("0X"))
        .unwrap_or(hex);
    crate::hex::number(digits)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| GpError::BadConfigValue {
            tag,
            value: hex.chars().take(20).collect(),
        })
}

fn esp_config(e: &Element, notes: &mut Vec<String>) -> Result<EspConfig, GpError> {
    let name = |tag: &str| {
        e.child_text(tag)
            .map(|t| t.trim().to_string())
            .unwrap_or_default()
    };
    let enc_name = name("enc-algo");
    let encryption = encryption(&enc_name).ok_or(GpError::UnknownAlgorithm {
        what: "encryption",
        name: enc_name,
    })?;
    let mac_name = name("hmac-algo");
    let integrity = integrity(&mac_name).ok_or(GpError::UnknownAlgorithm {
        what: "MAC",
        name: mac_name,
    })?;
    let suite = EspSuite::new(encryption, integrity);
    let mode = e.child_text("ipsec-mode").map(|m| m.trim().to_string());
    if let Some(m) = mode.as_deref().filter(|m| *m != "esp-tunnel") {
        notes.push(format!(
            "GlobalProtect config sent ipsec-mode={m} (expected esp-tunnel)"
        ));
    }
    let c2s = EspKeys::new(
        spi(e, "c2s-spi")?,
        suite,
        &key(e.child("ekey-c2s"), "ekey-c2s")?,
        &key(e.child("akey-c2s"), "akey-c2s")?,
    )?;
    let s2c = EspKeys::new(
        spi(e, "s2c-spi")?,
        suite,
        &key(e.child("ekey-s2c"), "ekey-s2c")?,
        &key(e.child("akey-s2c"), "akey-s2c")?,
    )?;
    let port = e
        .child_text("udp-port")
        .map(|p| parse_value::<u16>("udp-port", p.trim()))
        .transpose()?;
    Ok(EspConfig {
        client_to_server: c2s,
        server_to_client: s2c,
        port,
        mode,
    })
}

fn esp_element(esp: &EspConfig) -> Element {
    let suite = esp.client_to_server.suite();
    let key = |tag: &str, bytes: &[u8]| {
        Element::new(tag)
            .with_text("bits", &(bytes.len() * 8).to_string())
            .with_text("val", &crate::hex::encode(bytes))
    };
    let (c2s, s2c) = (&esp.client_to_server, &esp.server_to_client);
    let mut e = Element::new("ipsec");
    if let Some(port) = esp.port {
        e.push_text("udp-port", &port.to_string());
    }
    if let Some(mode) = &esp.mode {
        e.push_text("ipsec-mode", mode);
    }
    e.push_text("enc-algo", encryption_name(suite.encryption));
    e.push_text("hmac-algo", integrity_name(suite.integrity));
    e.push_text("c2s-spi", &format!("0x{:08x}", c2s.spi()));
    e.push_text("s2c-spi", &format!("0x{:08x}", s2c.spi()));
    e.push(key("akey-s2c", s2c.integrity_key()));
    e.push(key("ekey-s2c", s2c.encryption_key()));
    e.push(key("akey-c2s", c2s.integrity_key()));
    e.push(key("ekey-c2s", c2s.encryption_key()));
    e
}
