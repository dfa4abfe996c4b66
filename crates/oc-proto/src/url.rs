//! The server argument: `[https://]host[:port][/path]`, as openconnect accepts it.

use std::fmt;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("server URL is empty")]
    Empty,
    #[error("protocol {0:?} is not supported in server URL (use https://)")]
    Scheme(String),
    #[error("server URL {0:?} has no host name")]
    NoHost(String),
    #[error("invalid port {port:?} in server URL {url:?}")]
    Port { url: String, port: String },
    #[error("unterminated IPv6 address in server URL {0:?}")]
    Bracket(String),
    #[error("server URL {0:?} contains whitespace or control characters")]
    BadCharacter(String),
}

/// A parsed server URL. `path` has no leading slash (`""` for the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl ServerUrl {
    pub fn parse(input: &str) -> Result<Self, UrlError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(UrlError::Empty);
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(UrlError::BadCharacter(input.to_string()));
        }
        let rest = match input.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => rest,
            Some((scheme, _)) => return Err(UrlError::Scheme(scheme.to_string())),
            None => input,
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], rest[i..].trim_start_matches('/')),
            None => (rest, ""),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| UrlError::Bracket(input.to_string()))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(UrlError::NoHost(input.to_string()));
        }
        let port = match port {
            None => 443,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n != 0 => n,
                _ => {
                    return Err(UrlError::Port {
                        url: input.to_string(),
                        port: p.to_string(),
                    })
                }
            },
        };
        Ok(Self {
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }

    /// The host as it goes in a URL or `Host:` header: IPv6 literals in brackets.
    pub fn host_for_url(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }

    /// The `Host:` header value: the port only when it is not 443.
    pub fn host_header(&self) -> String {
        if self.port == 443 {
            self.host_for_url()
        } else {
            format!("{}:{}", self.host_for_url(), self.port)
        }
    }

    /// Where a link, form action or redirect `target` on `page` (a path on this server)
    /// leads, as a path on this server: an absolute path, a URL of this server, or a path
    /// relative to the page's. `Err` with why, when it leads to another server.
    pub fn path_on_server(&self, page: &str, target: &str) -> Result<String, String> {
        if target.starts_with('/') {
            return Ok(target.to_string());
        }
        if let Some(rest) = target.strip_prefix("https://") {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let ours = authority.eq_ignore_ascii_case(&self.host_header())
                || (self.port == 443
                    && authority.eq_ignore_ascii_case(&format!("{}:443", self.host_for_url())));
            return if ours {
                Ok(if path.is_empty() { "/" } else { path }.to_string())
            } else {
                Err(format!("{target} is another server"))
            };
        }
        if target.contains("://") {
            return Err(format!("{target} is not this server's HTTPS"));
        }
        let base = page.split('?').next().unwrap_or(page);
        let dir = base.rsplit_once('/').map_or("", |(dir, _)| dir);
        Ok(format!("{dir}/{target}"))
    }

    /// `https://host[:port]/` with no path, as openconnect prints `CONNECT_URL`.
    pub fn base_url(&self) -> String {
        format!("https://{}/", self.host_header())
    }

    /// The request path for this URL: `/` plus the path.
    pub fn request_path(&self) -> String {
        format!("/{}", self.path)
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "https://{}/{}", self.host_header(), self.path)
    }
}

/// Strict %-decoding to bytes: `None` for a `%` not followed by two hex digits (the
/// proxy URL's user name and password, PKCS#11 URIs).
pub fn percent_decode_strict(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            out.push(crate::hex::byte(bytes.get(i + 1..i + 3)?)?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Some(out)
}

/// Decodes `%XX` escapes; malformed escapes stay as they are. With `plus_is_space`
/// (form-encoded bodies) `+` becomes a space.
pub fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes.get(i + 1..i + 3).and_then(crate::hex::byte);
        match (b, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            (b'+', _) if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn targets_resolve_on_this_server_only() {
        let url = ServerUrl::parse("https://vpn.example.com/dana-na/").unwrap();
        let page = "/dana-na/auth/url_default/welcome.cgi?p=1";
        for (target, path) in [
            ("/x", "/x"),
            ("login.cgi", "/dana-na/auth/url_default/login.cgi"),
            ("https://vpn.example.com/y?z", "/y?z"),
            ("https://VPN.example.com:443", "/"),
        ] {
            assert_eq!(
                url.path_on_server(page, target).as_deref(),
                Ok(path),
                "{target}"
            );
        }
        for elsewhere in [
            "https://idp.example.net/sso",
            "http://vpn.example.com/",
            "ftp://x",
        ] {
            assert!(url.path_on_server(page, elsewhere).is_err(), "{elsewhere}");
        }
    }

    use super::*;

    #[test]
    fn forms() {
        let u = ServerUrl::parse("vpn.example.com").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("vpn.example.com", 443, "")
        );
        let u = ServerUrl::parse("https://vpn:8443/sales").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("vpn", 8443, "sales")
        );
        assert_eq!(u.host_header(), "vpn:8443");
        assert_eq!(u.base_url(), "https://vpn:8443/");
        assert_eq!(u.to_string(), "https://vpn:8443/sales");
        let u = ServerUrl::parse("[2001:db8::1]:444/g").unwrap();
        assert_eq!(u.host, "2001:db8::1");
        assert_eq!(u.host_header(), "[2001:db8::1]:444");
        let u = ServerUrl::parse("HTTPS://h/").unwrap();
        assert_eq!(u.path, "");
    }

    #[test]
    fn errors() {
        assert_eq!(ServerUrl::parse(""), Err(UrlError::Empty));
        assert!(matches!(
            ServerUrl::parse("http://h"),
            Err(UrlError::Scheme(_))
        ));
        assert!(matches!(
            ServerUrl::parse("h:0"),
            Err(UrlError::Port { .. })
        ));
        assert!(matches!(
            ServerUrl::parse("h:99999"),
            Err(UrlError::Port { .. })
        ));
        assert!(matches!(
            ServerUrl::parse("https://:443"),
            Err(UrlError::NoHost(_))
        ));
        assert!(matches!(
            ServerUrl::parse("[::1"),
            Err(UrlError::Bracket(_))
        ));
        assert!(matches!(
            ServerUrl::parse("a b"),
            Err(UrlError::BadCharacter(_))
        ));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("100%", false), "100%");
        assert_eq!(percent_decode("a%2", false), "a%2");
        assert_eq!(percent_decode("%zz%41", false), "%zzA");
        assert_eq!(percent_decode("a+b%2B", true), "a b+");
        assert_eq!(percent_decode("a+b", false), "a+b");
    }
}
