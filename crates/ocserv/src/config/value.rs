//! Parsers for single config values. Each returns a message saying what was expected; the
//! caller adds the key and line.
//!
//! ocserv itself is lax (`strtol` turns "abc" into 0, anything but true/yes is false); we
//! reject what ocserv would silently misread, since a typo in `dpd` or `deny-roaming` should
//! not quietly become 0 or false.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::str::FromStr;

use ipnet::IpNet;

use super::net::Family;
use super::{
    AcctMethod, AuthMethod, CertOid, GssapiMethod, PamMethod, RadiusMethod, DEFAULT_PAM_SERVICE,
};

/// `true`/`yes` or `false`/`no`, any case (ocserv's spellings of true; it reads anything else
/// as false, we refuse it).
pub(super) fn parse_bool(v: &str) -> Result<bool, String> {
    if v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("yes") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("false") || v.eq_ignore_ascii_case("no") {
        Ok(false)
    } else {
        Err(format!("expected true or false, got {v:?}"))
    }
}

/// A non-negative decimal number; `what` describes it ("a number of seconds").
pub(super) fn parse_uint<T: FromStr>(v: &str, what: &str) -> Result<T, String> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("expected {what}, got {v:?}"));
    }
    v.parse::<T>()
        .map_err(|_| format!("expected {what}, got {v:?} which is too large"))
}

/// A TCP/UDP port, 1-65535.
pub(super) fn parse_port(v: &str) -> Result<u16, String> {
    match parse_uint::<u16>(v, "a port number (1-65535)") {
        Ok(0) => Err(format!("expected a port number (1-65535), got {v:?}")),
        other => other,
    }
}

/// A dotted IPv4 netmask with contiguous ones, as a prefix length.
pub(super) fn parse_netmask(v: &str) -> Result<u8, String> {
    let mask: Ipv4Addr = v
        .parse()
        .map_err(|_| format!("expected a netmask such as 255.255.255.0, got {v:?}"))?;
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    if ones + bits.trailing_zeros() != 32 {
        return Err(format!(
            "netmask {v} is not contiguous (ones followed by zeros)"
        ));
    }
    u8::try_from(ones).map_err(|_| format!("bad netmask {v:?}"))
}

/// A prefix length after `/`: decimal, or (IPv4 only) a dotted netmask.
fn parse_len(is_v4: bool, s: &str) -> Result<u8, String> {
    let max: u32 = if is_v4 { 32 } else { 128 };
    if s.contains('.') {
        if !is_v4 {
            return Err(format!(
                "an IPv6 network needs a prefix length after '/', got {s:?}"
            ));
        }
        return parse_netmask(s);
    }
    let n: u32 = parse_uint(s, "a prefix length")?;
    if n > max {
        return Err(format!("prefix length {n} is out of range 0-{max}"));
    }
    u8::try_from(n).map_err(|_| format!("prefix length {n} is out of range 0-{max}"))
}

/// A parsed `route` / `no-route` / `iroute` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// `default` or `0.0.0.0/0`: everything through the VPN.
    Default,
    /// A network, host bits cleared; `given` is what was written if it had host bits set.
    Net { net: IpNet, given: Option<IpNet> },
}

/// `a.b.c.d/len`, `a.b.c.d/a.b.c.d`, `x::/len` or `default`.
pub(super) fn parse_route(v: &str) -> Result<Route, String> {
    if v.eq_ignore_ascii_case("default") {
        return Ok(Route::Default);
    }
    let Some((addr_s, len_s)) = v.split_once('/') else {
        return Err(format!(
            "expected a network such as 10.0.0.0/8, 10.0.0.0/255.0.0.0, fd00::/64 or \
             default, got {v:?}"
        ));
    };
    let addr: IpAddr = addr_s
        .trim()
        .parse()
        .map_err(|_| format!("expected an IP address before '/', got {:?}", addr_s.trim()))?;
    let len = parse_len(addr.is_ipv4(), len_s.trim())?;
    let given = IpNet::new(addr, len).map_err(|e| format!("{v:?}: {e}"))?;
    let net = given.trunc();
    if len == 0 && addr.is_ipv4() {
        // ocserv treats 0.0.0.0/0 exactly like `default` (and only the IPv4 form).
        return Ok(Route::Default);
    }
    Ok(Route::Net {
        net,
        given: (net != given).then_some(given),
    })
}

/// `ipv4-network` (`a.b.c.d`, `a.b.c.d/len` or `a.b.c.d/a.b.c.d`) or `ipv6-network` (`x::` or
/// `x::/len`): the address, and the prefix length if one is given (it may come from
/// `ipv4-netmask` / `ipv6-prefix` instead).
pub(super) fn parse_network<A: Family>(v: &str) -> Result<(A, Option<u8>), String> {
    let (addr_s, len_s) = match v.split_once('/') {
        Some((a, l)) => (a.trim(), Some(l.trim())),
        None => (v, None),
    };
    let addr: A = addr_s
        .parse()
        .map_err(|_| format!("expected {}, got {v:?}", A::EXPECTED))?;
    let len = len_s.map(|l| parse_len(A::IS_V4, l)).transpose()?;
    Ok((addr, len))
}

/// An IPv6 prefix length as ocserv accepts it for `ipv6-prefix` and `ipv6-subnet-prefix`.
pub(super) fn parse_ipv6_prefix(v: &str) -> Result<u8, String> {
    let n: u32 = parse_uint(v, "an IPv6 prefix length (11-128)")?;
    if !(11..=128).contains(&n) {
        return Err(format!("expected an IPv6 prefix length (11-128), got {n}"));
    }
    u8::try_from(n).map_err(|_| format!("expected an IPv6 prefix length (11-128), got {n}"))
}

/// `dns` / `nbns`: an IPv4 or IPv6 address.
pub(super) fn parse_ip(v: &str) -> Result<IpAddr, String> {
    if v == "local" {
        return Err("the 'local' keyword is no longer supported (ocserv dropped it too)".into());
    }
    v.parse()
        .map_err(|_| format!("expected an IP address, got {v:?}"))
}

/// A domain name as sent to clients (`split-dns`): one name, no spaces or commas.
pub(super) fn parse_domain(v: &str) -> Result<String, String> {
    if v.is_empty() {
        return Err("expected a domain name, got an empty value".into());
    }
    if v.contains(|c: char| c.is_whitespace() || c == ',') {
        return Err(format!(
            "expected one domain name, got {v:?}; use one line per domain"
        ));
    }
    Ok(v.to_owned())
}

/// `cert-user-oid` / `cert-group-oid`.
pub(super) fn parse_oid(v: &str) -> Result<CertOid, String> {
    if v == "SAN(rfc822name)" {
        return Ok(CertOid::SanRfc822Name);
    }
    let arcs: Vec<&str> = v.split('.').collect();
    if arcs.len() >= 2
        && arcs
            .iter()
            .all(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()))
    {
        return Ok(CertOid::Oid(v.to_owned()));
    }
    Err(format!(
        "expected a dotted OID such as 2.5.4.3 or SAN(rfc822name), got {v:?}"
    ))
}

/// `name` or `name[inner]` (the form of `select-group` and `auth` values): both parts
/// trimmed; nothing may follow the `]`.
fn split_brackets(v: &str) -> Result<(&str, Option<&str>), String> {
    let Some((name, rest)) = v.split_once('[') else {
        return Ok((v.trim(), None));
    };
    let Some((inner, after)) = rest.split_once(']') else {
        return Err(format!("missing ']' in {v:?}"));
    };
    if !after.trim().is_empty() {
        return Err(format!("unexpected text after ']' in {v:?}"));
    }
    Ok((name.trim(), Some(inner.trim())))
}

/// `select-group = name[Friendly name]`.
pub(super) fn parse_select_group(v: &str) -> Result<(String, Option<String>), String> {
    let (name, inner) = split_brackets(v)?;
    let friendly = inner.filter(|i| !i.is_empty()).map(str::to_owned);
    if name.is_empty() {
        return Err(format!("expected a group name, got {v:?}"));
    }
    Ok((name.to_owned(), friendly))
}

const SUPPORTED_AUTH: &str = "plain, certificate, pam, radius, gssapi, oidc";

/// `auth` / `enable-auth`: `plain[passwd=FILE,otp=FILE]`, legacy `plain[FILE]`,
/// `certificate`, `pam[service=NAME,gid-min=N]`.
pub(super) fn parse_auth(v: &str) -> Result<AuthMethod, String> {
    let (name, options) = split_brackets(v)?;
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "plain" => parse_plain(options.unwrap_or_default()),
        "certificate" => match options {
            Some(o) if !o.is_empty() => Err(format!("certificate takes no options, got [{o}]")),
            _ => Ok(AuthMethod::Certificate),
        },
        "pam" => parse_pam(options.unwrap_or_default()),
        "radius" => parse_radius(options.unwrap_or_default()).map(AuthMethod::Radius),
        "gssapi" => parse_gssapi(options.unwrap_or_default()).map(AuthMethod::Gssapi),
        "oidc" => parse_oidc(options.unwrap_or_default()),
        _ => Err(format!(
            "unknown auth method {name:?} (supported: {SUPPORTED_AUTH})"
        )),
    }
}

/// `pam[service=NAME,gid-min=N]`, both optional.
fn parse_pam(options: &str) -> Result<AuthMethod, String> {
    let mut method = PamMethod {
        service: DEFAULT_PAM_SERVICE.to_owned(),
        gid_min: 0,
    };
    for opt in options.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let Some((k, val)) = opt.split_once('=') else {
            return Err(format!("expected name=value in pam[...], got {opt:?}"));
        };
        let (k, val) = (k.trim(), val.trim());
        if k.eq_ignore_ascii_case("gid-min") {
            method.gid_min = parse_uint(val, "pam gid-min")?;
        } else if k.eq_ignore_ascii_case("service") {
            // The name becomes a path under /etc/pam.d.
            if val.is_empty() || val.contains(['/', '\0']) || val.starts_with('.') {
                return Err(format!(
                    "pam service {val:?} is not a file name in /etc/pam.d"
                ));
            }
            method.service = val.to_owned();
        } else {
            return Err(format!(
                "unknown pam option {k:?} (known: service, gid-min)"
            ));
        }
    }
    Ok(AuthMethod::Pam(method))
}

/// `radius[config=FILE,groupconfig=true,nas-identifier=NAME,group-separator=comma]`, or
/// the legacy `radius[FILE]` and `radius[FILE,groupconfig]`.
fn parse_radius(options: &str) -> Result<RadiusMethod, String> {
    let mut method = RadiusMethod {
        config: PathBuf::new(),
        groupconfig: false,
        nas_identifier: None,
        group_separator: ';',
    };
    let legacy = options.starts_with('/') || options.starts_with('.');
    for (i, opt) in options.split(',').map(str::trim).enumerate() {
        if opt.is_empty() {
            continue;
        }
        if legacy && i == 0 {
            method.config = PathBuf::from(opt);
            continue;
        }
        if legacy && opt.eq_ignore_ascii_case("groupconfig") {
            method.groupconfig = true;
            continue;
        }
        let Some((k, val)) = opt.split_once('=') else {
            return Err(format!("expected name=value in radius[...], got {opt:?}"));
        };
        let (k, val) = (k.trim().to_ascii_lowercase(), val.trim());
        match k.as_str() {
            "config" => method.config = PathBuf::from(val),
            "groupconfig" => method.groupconfig = parse_bool(val)?,
            "nas-identifier" if !val.is_empty() => method.nas_identifier = Some(val.to_owned()),
            "group-separator" => {
                method.group_separator = match val.to_ascii_lowercase().as_str() {
                    "comma" => ',',
                    "semicolon" => ';',
                    _ => {
                        return Err(format!(
                            "unknown group-separator {val:?}; use semicolon or comma"
                        ))
                    }
                }
            }
            _ => {
                return Err(format!(
                    "unknown radius option {k:?} (known: config, groupconfig, nas-identifier, \
                     group-separator)"
                ))
            }
        }
    }
    if method.config.as_os_str().is_empty() {
        return Err(
            "radius needs its radcli file: radius[config=/etc/radcli/radiusclient.conf]".into(),
        );
    }
    Ok(method)
}

/// `gssapi[keytab=FILE,require-local-user-map=BOOL,tgt-freshness-time=SECS]`.
fn parse_gssapi(options: &str) -> Result<GssapiMethod, String> {
    let mut method = GssapiMethod {
        keytab: None,
        require_local_user_map: true,
        tgt_freshness_time: None,
    };
    for opt in options.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let Some((k, val)) = opt.split_once('=') else {
            return Err(format!("expected name=value in gssapi[...], got {opt:?}"));
        };
        let (k, val) = (k.trim().to_ascii_lowercase(), val.trim());
        match k.as_str() {
            "keytab" if !val.is_empty() => method.keytab = Some(PathBuf::from(val)),
            "require-local-user-map" => method.require_local_user_map = parse_bool(val)?,
            "tgt-freshness-time" => {
                let secs: u32 = parse_uint(val, "gssapi tgt-freshness-time")?;
                if secs == 0 {
                    return Err("gssapi tgt-freshness-time must be more than 0 seconds".into());
                }
                method.tgt_freshness_time = Some(secs);
            }
            _ => {
                return Err(format!(
                    "unknown gssapi option {k:?} (known: keytab, require-local-user-map, \
                     tgt-freshness-time)"
                ))
            }
        }
    }
    Ok(method)
}

/// `oidc[config=FILE]`.
fn parse_oidc(options: &str) -> Result<AuthMethod, String> {
    let mut config = None;
    for opt in options.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        match opt.split_once('=') {
            Some((k, val)) if k.trim().eq_ignore_ascii_case("config") && !val.trim().is_empty() => {
                config = Some(PathBuf::from(val.trim()));
            }
            _ => return Err(format!("unknown oidc option {opt:?} (known: config=FILE)")),
        }
    }
    config
        .map(|config| AuthMethod::Oidc { config })
        .ok_or_else(|| "oidc needs its JSON file: oidc[config=/etc/ocserv/oidc.json]".into())
}

/// `acct`: `pam` or `radius[...]`.
pub(super) fn parse_acct(v: &str) -> Result<AcctMethod, String> {
    let (name, options) = split_brackets(v)?;
    match name.to_ascii_lowercase().as_str() {
        "pam" => match options {
            Some(o) if !o.is_empty() => Err(format!("pam takes no options, got [{o}]")),
            _ => Ok(AcctMethod::Pam),
        },
        "radius" => parse_radius(options.unwrap_or_default()).map(AcctMethod::Radius),
        _ => Err(format!(
            "unknown accounting method {name:?} (known: pam, radius)"
        )),
    }
}

fn parse_plain(options: &str) -> Result<AuthMethod, String> {
    if options.is_empty() {
        return Err("plain needs a password file: plain[passwd=/etc/ocserv/ocpasswd]".into());
    }
    if options.starts_with('/') || options.starts_with('.') {
        // Pre-0.11 form: plain[/etc/ocserv/ocpasswd].
        return Ok(AuthMethod::Plain {
            passwd: Some(PathBuf::from(options)),
            otp: None,
        });
    }
    let mut passwd = None;
    let mut otp = None;
    for opt in options.split(',') {
        let Some((k, val)) = opt.split_once('=') else {
            return Err(format!(
                "expected name=value in plain[...], got {:?}",
                opt.trim()
            ));
        };
        let (k, val) = (k.trim(), val.trim());
        if val.is_empty() {
            return Err(format!("plain option {k} has an empty value"));
        }
        if k.eq_ignore_ascii_case("passwd") {
            passwd = Some(PathBuf::from(val));
        } else if k.eq_ignore_ascii_case("otp") {
            otp = Some(PathBuf::from(val));
        } else {
            return Err(format!("unknown plain option {k:?} (known: passwd, otp)"));
        }
    }
    if passwd.is_none() && otp.is_none() {
        return Err("plain needs passwd=FILE, otp=FILE or both".into());
    }
    Ok(AuthMethod::Plain { passwd, otp })
}

/// A tun device name prefix: the kernel limit is 15 bytes including the digits we append.
pub(super) fn parse_device(v: &str) -> Result<String, String> {
    if v.is_empty() {
        return Err("expected a device name such as vpns, got an empty value".into());
    }
    if v.len() > 14 {
        return Err(format!(
            "device name {v:?} is too long: interface names have at most 15 characters \
             including the number appended to it"
        ));
    }
    if v.contains(|c: char| !c.is_ascii_graphic() || c == '/' || c == ':' || c == '%') {
        return Err(format!(
            "device name {v:?} may not contain spaces, '/', ':', '%' or non-ASCII characters"
        ));
    }
    Ok(v.to_owned())
}
