//! radcli's configuration (`radiusclient.conf`, as ocserv's `radius[config=FILE]` names
//! it) and its `servers` file of shared secrets.

use std::path::PathBuf;

use super::RadiusError;

/// radcli's default timeout and retries.
const DEFAULT_TIMEOUT: u32 = 10;
const DEFAULT_RETRIES: u32 = 3;
/// The RADIUS ports (radcli falls back to them when `/etc/services` has none).
pub const AUTH_PORT: u16 = 1812;
pub const ACCT_PORT: u16 = 1813;

/// A server as `authserver`/`acctserver` name it: `host[:port[:secret]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddr {
    pub host: String,
    pub port: u16,
    /// Given inline, else looked up in the `servers` file.
    pub secret: Option<String>,
}

/// The settings ocserv's RADIUS use takes from radcli's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConf {
    pub auth_servers: Vec<ServerAddr>,
    pub acct_servers: Vec<ServerAddr>,
    pub servers_file: Option<PathBuf>,
    /// Seconds to wait for each answer.
    pub timeout: u32,
    pub retries: u32,
    /// `bindaddr`: the local address requests leave from (`*`: any).
    pub bind_address: Option<String>,
    /// Keys read but not used by us (radcli's login program settings and the like).
    pub ignored: Vec<(usize, String)>,
}

/// Keys of radcli's file that only its login programs or its own bookkeeping use.
const INERT_KEYS: &[&str] = &[
    "auth_order",
    "login_tries",
    "login_timeout",
    "nologin",
    "issue",
    "login_radius",
    "login_local",
    "dictionary",
    "seqfile",
    "mapfile",
    "default_realm",
    "radius_deadtime",
    "clientdebug",
    "serv-type",
    "namespace",
    "use-public-addr",
];

fn error(file: &str, line: usize, message: String) -> RadiusError {
    RadiusError::Config {
        file: file.to_owned(),
        line,
        message,
    }
}

/// Parses `host[:port[:secret]]` (an IPv6 literal in brackets).
fn server_addr(entry: &str, default_port: u16) -> Result<ServerAddr, String> {
    let (host, rest) = match entry.strip_prefix('[') {
        Some(bracketed) => {
            let (host, rest) = bracketed
                .split_once(']')
                .ok_or_else(|| format!("unclosed '[' in {entry:?}"))?;
            (host, rest.strip_prefix(':').unwrap_or(rest))
        }
        None => entry.split_once(':').unwrap_or((entry, "")),
    };
    if host.is_empty() {
        return Err(format!("no host in {entry:?}"));
    }
    let (port, secret) = match rest.split_once(':') {
        Some((port, secret)) => (port, Some(secret.to_owned())),
        None => (rest, None),
    };
    let port = if port.is_empty() {
        default_port
    } else {
        port.parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("bad port {port:?} in {entry:?}"))?
    };
    Ok(ServerAddr {
        host: host.to_owned(),
        port,
        secret: secret.filter(|s| !s.is_empty()),
    })
}

/// Parses radcli's configuration text; `file` names it in errors.
pub fn parse_client_conf(text: &str, file: &str) -> Result<ClientConf, RadiusError> {
    let mut conf = ClientConf {
        auth_servers: Vec::new(),
        acct_servers: Vec::new(),
        servers_file: None,
        timeout: DEFAULT_TIMEOUT,
        retries: DEFAULT_RETRIES,
        bind_address: None,
        ignored: Vec::new(),
    };
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.split('#').next().unwrap_or_default().trim();
        if content.is_empty() {
            continue;
        }
        let (key, value) = content
            .split_once(char::is_whitespace)
            .map_or((content, ""), |(k, v)| (k, v.trim()));
        let number = |what: &str| {
            value.parse::<u32>().map_err(|_| {
                error(
                    file,
                    line,
                    format!("{what}: expected a number, got {value:?}"),
                )
            })
        };
        match key {
            "authserver" | "acctserver" => {
                let default_port = if key == "authserver" {
                    AUTH_PORT
                } else {
                    ACCT_PORT
                };
                let list = if key == "authserver" {
                    &mut conf.auth_servers
                } else {
                    &mut conf.acct_servers
                };
                for entry in value.split([',', ' ', '\t']).filter(|e| !e.is_empty()) {
                    let server = server_addr(entry, default_port)
                        .map_err(|m| error(file, line, format!("{key}: {m}")))?;
                    list.push(server);
                }
            }
            "servers" if !value.is_empty() => conf.servers_file = Some(PathBuf::from(value)),
            "radius_timeout" => conf.timeout = number(key)?.max(1),
            "radius_retries" => conf.retries = number(key)?.max(1),
            "bindaddr" => {
                conf.bind_address = (!value.is_empty() && value != "*").then(|| value.to_owned());
            }
            k if INERT_KEYS.contains(&k) || k == "servers" => {}
            other => conf.ignored.push((line, other.to_owned())),
        }
    }
    if conf.auth_servers.is_empty() && conf.acct_servers.is_empty() {
        return Err(error(file, 0, "no authserver or acctserver line".into()));
    }
    Ok(conf)
}

/// radcli's `servers` file: `host[/source] secret` per line; `(host, secret)` pairs.
pub fn parse_servers_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|raw| {
            let content = raw.split('#').next()?.trim();
            let mut words = content.split_whitespace();
            let host = words.next()?;
            let secret = words.next()?;
            let host = host.split('/').next().unwrap_or(host);
            Some((host.to_owned(), secret.to_owned()))
        })
        .collect()
}

impl ClientConf {
    /// The secret for `server`: inline, else the `servers` file's line for its host.
    pub fn secret_for(server: &ServerAddr, servers: &[(String, String)]) -> Option<String> {
        server.secret.clone().or_else(|| {
            servers
                .iter()
                .find(|(host, _)| host.eq_ignore_ascii_case(&server.host))
                .map(|(_, secret)| secret.clone())
        })
    }
}
