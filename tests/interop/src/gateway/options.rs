//! The command line: `--name value` pairs, value parsers, and the options every gateway
//! takes ([`Common`]) next to its own.

use std::fmt::Display;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use oc_proto::esp::{EspEncryption, EspIntegrity, EspSuite};

/// An option's name and its value (`None` for a flag).
pub type OptionArg = (String, Option<String>);

/// The arguments as `(name, value)` pairs: `--name value` and `--name=value` both give a
/// value, the names in `flags` take none. `None` when `--help` (or `-h`) was asked for.
pub fn split_options(
    mut args: impl Iterator<Item = String>,
    flags: &[&str],
) -> Result<Option<Vec<OptionArg>>, String> {
    let mut options = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "--help" || arg == "-h" {
            return Ok(None);
        }
        if flags.contains(&arg.as_str()) {
            options.push((arg, None));
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (arg, None),
        };
        if !name.starts_with("--") {
            return Err(format!("unexpected argument {name:?}"));
        }
        let value = match inline.or_else(|| args.next()) {
            Some(v) => v,
            None => return Err(format!("{name} needs a value")),
        };
        options.push((name, Some(value)));
    }
    Ok(Some(options))
}

pub fn parse_value<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, String>
where
    T::Err: Display,
{
    value.parse().map_err(|e| format!("{name} {value:?}: {e}"))
}

/// `NET/PREFIX` (a bare address is a /32).
pub fn parse_route(value: &str) -> Result<(Ipv4Addr, u8), String> {
    let (net, prefix) = value.split_once('/').unwrap_or((value, "32"));
    let net: Ipv4Addr = parse_value("--route", net)?;
    let prefix: u8 = parse_value("--route prefix", prefix)?;
    if prefix > 32 {
        return Err(format!("--route {value:?}: the prefix is longer than 32"));
    }
    Ok((net, prefix))
}

pub fn netmask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0))
}

/// The options every gateway takes: where it listens and with which certificate, the one
/// user, the addresses and routes it hands out, its tun device and log file.
#[derive(Debug, Clone)]
pub struct Common {
    pub listen: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The one user that may log in, and its password.
    pub user: String,
    pub password: String,
    /// The second factor's code, when one is asked for.
    pub otp: Option<String>,
    /// The gateway's own tunnel address (PPP, tun device).
    pub tunnel_addr: Ipv4Addr,
    /// The address the client is given.
    pub client_addr: Ipv4Addr,
    pub dns: Vec<Ipv4Addr>,
    /// Split-tunnel routes (none: everything goes through the tunnel).
    pub routes: Vec<(Ipv4Addr, u8)>,
    /// IPv6 too: the gateway's and the client's addresses (in one /64), and IPv6 routes.
    pub ipv6: Option<(Ipv6Addr, Ipv6Addr)>,
    pub routes6: Vec<(Ipv6Addr, u8)>,
    pub tun: String,
    pub log: Option<PathBuf>,
    /// PPP over DTLS too, as the real products ship (`None` with `--no-dtls`).
    pub dtls: Option<DtlsOptions>,
}

/// How a gateway serves DTLS: where, and whether it refuses every tunnel there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtlsOptions {
    /// The UDP port (the HTTPS port unless the gateway takes `--dtls-port`).
    pub port: u16,
    /// `--dtls-refuse`: complete handshakes, then refuse the client's greeting, so that the
    /// client falls back to TLS.
    pub refuse: bool,
}

/// The flags (options without a value) every gateway takes.
const COMMON_FLAGS: [&str; 2] = ["--no-dtls", "--dtls-refuse"];

/// The common options as given, before the required ones are checked.
#[derive(Debug, Default)]
struct CommonOptions {
    listen: Option<SocketAddr>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    user: Option<String>,
    password: Option<String>,
    otp: Option<String>,
    tunnel_addr: Option<Ipv4Addr>,
    client_addr: Option<Ipv4Addr>,
    dns: Vec<Ipv4Addr>,
    routes: Vec<(Ipv4Addr, u8)>,
    tunnel_addr6: Option<Ipv6Addr>,
    client_addr6: Option<Ipv6Addr>,
    routes6: Vec<(Ipv6Addr, u8)>,
    tun: Option<String>,
    log: Option<PathBuf>,
    no_dtls: bool,
    dtls_refuse: bool,
}

impl CommonOptions {
    /// Takes the flag `name` if it is a common one; `false` if it is not.
    fn flag(&mut self, name: &str) -> bool {
        match name {
            "--no-dtls" => self.no_dtls = true,
            "--dtls-refuse" => self.dtls_refuse = true,
            _ => return false,
        }
        true
    }

    /// Takes the option `name` if it is a common one; `false` if it is not.
    fn set(&mut self, name: &str, value: &str) -> Result<bool, String> {
        let text = || value.to_string();
        match name {
            "--listen" => self.listen = Some(parse_value(name, value)?),
            "--cert" => self.cert = Some(PathBuf::from(value)),
            "--key" => self.key = Some(PathBuf::from(value)),
            "--user" => self.user = Some(text()),
            "--password" => self.password = Some(text()),
            "--otp" => self.otp = Some(text()),
            "--tunnel-addr" => self.tunnel_addr = Some(parse_value(name, value)?),
            "--client-addr" => self.client_addr = Some(parse_value(name, value)?),
            "--dns" => self.dns.push(parse_value(name, value)?),
            "--route" => self.routes.push(parse_route(value)?),
            "--tunnel-addr6" => self.tunnel_addr6 = Some(parse_value(name, value)?),
            "--client-addr6" => self.client_addr6 = Some(parse_value(name, value)?),
            "--route6" => self.routes6.push(parse_route6(value)?),
            "--tun" => self.tun = Some(text()),
            "--log" => self.log = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn finish(self, default_tun: &str) -> Result<Common, String> {
        fn required<T>(value: Option<T>, name: &str) -> Result<T, String> {
            value.ok_or_else(|| format!("{name} is required"))
        }
        let listen: SocketAddr = required(self.listen, "--listen")?;
        let common = Common {
            listen,
            cert: required(self.cert, "--cert")?,
            key: required(self.key, "--key")?,
            user: required(self.user, "--user")?,
            password: required(self.password, "--password")?,
            otp: self.otp,
            tunnel_addr: required(self.tunnel_addr, "--tunnel-addr")?,
            client_addr: required(self.client_addr, "--client-addr")?,
            dns: self.dns,
            routes: self.routes,
            ipv6: match (self.tunnel_addr6, self.client_addr6) {
                (Some(t), Some(c)) => Some((t, c)),
                (None, None) => None,
                _ => return Err("--tunnel-addr6 and --client-addr6 go together".into()),
            },
            routes6: self.routes6,
            tun: self.tun.unwrap_or_else(|| default_tun.to_string()),
            log: self.log,
            dtls: (!self.no_dtls).then_some(DtlsOptions {
                port: listen.port(),
                refuse: self.dtls_refuse,
            }),
        };
        if common.tunnel_addr == common.client_addr {
            return Err("--tunnel-addr and --client-addr must differ".into());
        }
        Ok(common)
    }
}

/// `NET/PREFIX` for IPv6 (a bare address is a /128).
fn parse_route6(value: &str) -> Result<(Ipv6Addr, u8), String> {
    let (net, prefix) = value.split_once('/').unwrap_or((value, "128"));
    let net: Ipv6Addr = parse_value("--route6", net)?;
    let prefix: u8 = parse_value("--route6 prefix", prefix)?;
    if prefix > 128 {
        return Err(format!("--route6 {value:?}: the prefix is longer than 128"));
    }
    Ok((net, prefix))
}

/// The gateway's own options of a command line, in order: each name with its value
/// (empty for a flag).
pub type OwnOptions = Vec<(String, String)>;

/// [`parse_command_line`] for a gateway whose own options are `flags` and `valued`: the
/// common options, and its own in order, for it to apply. `None` when `--help` was asked
/// for.
pub fn parse_with_own(
    args: impl Iterator<Item = String>,
    flags: &[&str],
    valued: &[&str],
    default_tun: &str,
) -> Result<Option<(Common, OwnOptions)>, String> {
    let mut own = Vec::new();
    let common = parse_command_line(args, flags, default_tun, |name, value| {
        let known = match value {
            None => flags.contains(&name),
            Some(_) => valued.contains(&name),
        };
        if known {
            own.push((name.to_string(), value.unwrap_or_default().to_string()));
        }
        known
    })?;
    Ok(common.map(|common| (common, own)))
}

/// Parses a gateway's command line ([`split_options`]): the common options (`--no-dtls` and
/// `--dtls-refuse` among them), and the gateway's own through `own` (the name, and the value
/// unless the name is one of `flags`), which says whether it knew the name. The tun device is `default_tun` unless `--tun` names
/// one. `None` when `--help` was asked for.
pub fn parse_command_line(
    args: impl Iterator<Item = String>,
    flags: &[&str],
    default_tun: &str,
    mut own: impl FnMut(&str, Option<&str>) -> bool,
) -> Result<Option<Common>, String> {
    let flags = [flags, &COMMON_FLAGS].concat();
    let Some(options) = split_options(args, &flags)? else {
        return Ok(None);
    };
    let mut common = CommonOptions::default();
    for (name, value) in options {
        let known = match &value {
            Some(value) => common.set(&name, value)?,
            None => common.flag(&name),
        };
        if !known && !own(&name, value.as_deref()) {
            return Err(format!("unknown option {name}"));
        }
    }
    common.finish(default_tun).map(Some)
}

/// `--esp-suite ENC/MAC`: `aes-128-cbc` or `aes-256-cbc`, and `md5`, `sha1` or `sha256`.
pub fn parse_esp_suite(value: &str) -> Result<EspSuite, String> {
    let (enc, mac) = value
        .split_once('/')
        .ok_or_else(|| format!("--esp-suite {value:?}: ENC/MAC"))?;
    let encryption = match enc {
        "aes-128-cbc" => EspEncryption::Aes128Cbc,
        "aes-256-cbc" => EspEncryption::Aes256Cbc,
        other => return Err(format!("--esp-suite: unknown encryption {other:?}")),
    };
    let integrity = match mac {
        "sha1" => EspIntegrity::HmacSha1_96,
        "md5" => EspIntegrity::HmacMd5_96,
        "sha256" => EspIntegrity::HmacSha256_128,
        other => return Err(format!("--esp-suite: unknown MAC {other:?}")),
    };
    Ok(EspSuite::new(encryption, integrity))
}
