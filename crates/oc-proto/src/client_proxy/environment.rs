//! The proxy the environment names when there is no `-P`: `https_proxy`, as openconnect
//! reads it, and with `--libproxy` also `HTTPS_PROXY`, `http_proxy` and `HTTP_PROXY`, as
//! libproxy's environment module does. `no_proxy` (or `NO_PROXY`) exempts servers in both
//! cases (openconnect itself ignores it without libproxy).

use std::net::IpAddr;

use ipnet::IpNet;

/// Where to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// `https_proxy` only.
    Openconnect,
    /// `--libproxy`: the upper-case forms and `http_proxy` too.
    Libproxy,
}

/// The proxy URL for `host` from the variables `get` returns, if any applies.
pub fn proxy_for(
    get: impl Fn(&str) -> Option<String>,
    host: &str,
    lookup: Lookup,
) -> Option<String> {
    let names: &[&str] = match lookup {
        Lookup::Openconnect => &["https_proxy"],
        Lookup::Libproxy => &["https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"],
    };
    let proxy = names
        .iter()
        .filter_map(|n| get(n))
        .find(|v| !v.trim().is_empty())?;
    let exempt = ["no_proxy", "NO_PROXY"]
        .iter()
        .filter_map(|n| get(n))
        .any(|list| is_exempt(&list, host));
    (!exempt).then_some(proxy)
}

/// Whether `no_proxy`'s list names `host`: `*`, the host or a parent domain (with or
/// without a leading dot or `*.`), or a network (`10.0.0.0/8`) holding an address.
pub fn is_exempt(list: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let address = host.parse::<IpAddr>().ok();
    list.split([',', ' ', '\t'])
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            if let (Some(ip), Ok(net)) = (address, entry.parse::<IpNet>()) {
                return net.contains(&ip);
            }
            let name = entry
                .trim_start_matches("*.")
                .trim_start_matches('.')
                .trim_end_matches('.');
            let name = strip_port(name);
            !name.is_empty() && (host == name || host.ends_with(&format!(".{name}")))
        })
}

/// `name:port` entries match the name on any port (we only ever go to one port).
fn strip_port(entry: &str) -> &str {
    match entry.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.parse::<u16>().is_ok() => name,
        _ => entry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn which_variables_count() {
        let vars = [
            ("HTTPS_PROXY", "http://upper:1"),
            ("http_proxy", "http://plain:2"),
        ];
        assert_eq!(proxy_for(env(&vars), "vpn", Lookup::Openconnect), None);
        assert_eq!(
            proxy_for(env(&vars), "vpn", Lookup::Libproxy).as_deref(),
            Some("http://upper:1")
        );
        let vars = [
            ("https_proxy", "socks5://s:1080"),
            ("HTTPS_PROXY", "http://u:1"),
        ];
        assert_eq!(
            proxy_for(env(&vars), "vpn", Lookup::Openconnect).as_deref(),
            Some("socks5://s:1080")
        );
        let vars = [("https_proxy", "  ")];
        assert_eq!(proxy_for(env(&vars), "vpn", Lookup::Libproxy), None);
    }

    #[test]
    fn no_proxy_exempts() {
        let vars = [
            ("https_proxy", "http://p:3128"),
            ("NO_PROXY", "corp.example, 10.0.0.0/8"),
        ];
        assert_eq!(
            proxy_for(env(&vars), "vpn.corp.example", Lookup::Openconnect),
            None
        );
        assert_eq!(proxy_for(env(&vars), "10.1.2.3", Lookup::Openconnect), None);
        assert!(proxy_for(env(&vars), "othercorp.example", Lookup::Openconnect).is_some());
        assert!(proxy_for(env(&vars), "11.0.0.1", Lookup::Openconnect).is_some());
        for list in [
            "*",
            ".example",
            "*.example",
            "vpn.example:443",
            "VPN.EXAMPLE.",
        ] {
            assert!(is_exempt(list, "vpn.example"), "{list}");
        }
        for list in ["", ",", "xample", "n.example", "[::1]", "fd00::/8"] {
            assert!(!is_exempt(list, "vpn.example"), "{list}");
        }
        assert!(is_exempt("fd00::/8", "fd00::1"));
    }
}
