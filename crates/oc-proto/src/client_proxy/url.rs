//! The proxy URL: `[http|socks|socks5]://[USER[:PASSWORD]@]host[:port][/]`.

use std::fmt;

use super::{Credentials, ProxyError};

/// How the proxy is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    /// HTTP `CONNECT`.
    Http,
    /// SOCKS version 5 (`socks://` means the same, as in openconnect).
    Socks5,
}

/// A parsed `--proxy` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    pub kind: ProxyKind,
    pub host: String,
    pub port: u16,
    pub credentials: Option<Credentials>,
}

impl ProxyUrl {
    /// Parses a proxy URL. Without a scheme it is an HTTP proxy; without a port, 80 for
    /// HTTP (openconnect's default) and 1080 for SOCKS (SOCKS's registered port, where
    /// openconnect also assumes 80). The user name and password are percent-decoded.
    pub fn parse(input: &str) -> Result<Self, ProxyError> {
        let bad = |why: &str| ProxyError::Url {
            input: redact(input),
            why: why.to_string(),
        };
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(bad("empty"));
        }
        if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains whitespace or control characters"));
        }
        let (kind, rest) = match trimmed.split_once("://") {
            None => (ProxyKind::Http, trimmed),
            Some((scheme, rest)) => (kind_of(scheme)?, rest),
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = rest.get(..authority_end).unwrap_or(rest);
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let credentials = match userinfo {
            None => None,
            Some(u) => {
                let (user, password) = u.split_once(':').unwrap_or((u, ""));
                Some(Credentials {
                    user: percent_decode(user).ok_or_else(|| bad("bad %-escape in user name"))?,
                    password: percent_decode(password)
                        .ok_or_else(|| bad("bad %-escape in password"))?,
                })
            }
        };
        let (host, port) = split_host_port(hostport).map_err(bad)?;
        if host.is_empty() {
            return Err(bad("no host name"));
        }
        let default_port = match kind {
            ProxyKind::Http => 80,
            ProxyKind::Socks5 => 1080,
        };
        Ok(Self {
            kind,
            host: host.to_string(),
            port: port.unwrap_or(default_port),
            credentials,
        })
    }
}

impl fmt::Display for ProxyUrl {
    /// The URL without its password, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.kind {
            ProxyKind::Http => "http",
            ProxyKind::Socks5 => "socks5",
        };
        let user = match &self.credentials {
            Some(c) => format!("{}@", c.user),
            None => String::new(),
        };
        let host = super::authority(&self.host, self.port);
        write!(f, "{scheme}://{user}{host}")
    }
}

fn kind_of(scheme: &str) -> Result<ProxyKind, ProxyError> {
    match scheme.to_ascii_lowercase().as_str() {
        "http" => Ok(ProxyKind::Http),
        "socks" | "socks5" | "socks5h" => Ok(ProxyKind::Socks5),
        _ => Err(ProxyError::Scheme(scheme.to_string())),
    }
}

fn split_host_port(hostport: &str) -> Result<(&str, Option<u16>), &'static str> {
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("unterminated [IPv6 address]")?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or("junk after ]")?)),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n != 0 => Some(n),
            _ => return Err("bad port number"),
        },
    };
    Ok((host, port))
}

fn percent_decode(text: &str) -> Option<String> {
    String::from_utf8(crate::url::percent_decode_strict(text)?).ok()
}

/// The input with any password replaced, for error messages.
fn redact(input: &str) -> String {
    let from = input.find("://").map_or(0, |i| i + 3);
    let tail = input.get(from..).unwrap_or_default();
    let authority_end = tail.find(['/', '?', '#']).unwrap_or(tail.len());
    let authority = tail.get(..authority_end).unwrap_or_default();
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!(
                "{}{user}:***@{host}{}",
                input.get(..from).unwrap_or_default(),
                tail.get(authority_end..).unwrap_or_default()
            )
        }
        _ => input.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_ports_and_credentials() {
        let p = ProxyUrl::parse("proxy.example:3128").unwrap();
        assert_eq!(
            (p.kind, p.host.as_str(), p.port),
            (ProxyKind::Http, "proxy.example", 3128)
        );
        assert_eq!(p.credentials, None);
        let p = ProxyUrl::parse("http://proxy/").unwrap();
        assert_eq!(p.port, 80);
        let p = ProxyUrl::parse("SOCKS://a%40b:p%3Ass@[fd00::1]").unwrap();
        assert_eq!(
            (p.kind, p.host.as_str(), p.port),
            (ProxyKind::Socks5, "fd00::1", 1080)
        );
        let c = p.credentials.clone().unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("a@b", "p:ss"));
        assert_eq!(p.to_string(), "socks5://a@b@[fd00::1]:1080");
        assert!(!format!("{p:?}").contains("p:ss"));
        let p = ProxyUrl::parse("socks5://u@h:9").unwrap();
        assert_eq!(p.credentials.unwrap().password, "");
    }

    #[test]
    fn bad_urls_are_named_without_the_password() {
        let e = ProxyUrl::parse("https://proxy:3128").unwrap_err();
        assert_eq!(e, ProxyError::Scheme("https".into()));
        for bad in [
            "",
            "http://",
            "http://h:0",
            "http://h:x",
            "http://[::1",
            "http://a b",
        ] {
            assert!(
                matches!(ProxyUrl::parse(bad), Err(ProxyError::Url { .. })),
                "{bad}"
            );
        }
        let e = ProxyUrl::parse("http://me:secret@h:99999").unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("me:***@h:99999") && !text.contains("secret"),
            "{text}"
        );
        let e = ProxyUrl::parse("http://me:%zz@h").unwrap_err();
        assert!(!e.to_string().contains("%zz"), "{e}");
    }
}
