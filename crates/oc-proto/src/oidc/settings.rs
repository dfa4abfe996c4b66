//! ocserv's OIDC configuration file and the provider's discovery document.

use serde_json::{Map, Value};

use super::{OidcError, DEFAULT_REFRESH_INTERVAL};

/// The JSON file `auth = oidc[config=FILE]` names, as ocserv reads it, plus `ca_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSettings {
    /// `openid_configuration_url`: the provider's discovery document.
    pub discovery: DocumentUrl,
    /// `user_name_claim`: the claim whose string becomes the user name.
    pub user_name_claim: String,
    /// `required_claims`: each must be in the token with this value (`aud` may also be an
    /// array holding it).
    pub required_claims: Map<String, Value>,
    /// `minimum_jwk_refresh_time`: seconds between key set downloads caused by tokens
    /// naming an unknown key.
    pub refresh_interval: u64,
    /// `ca_file` (ours): the CA certificates that sign the provider's HTTPS certificate,
    /// instead of the system's.
    pub ca_file: Option<String>,
    /// `sso` (ours): the server's client registration at the provider, for AnyConnect's
    /// browser login (`single-sign-on-v2`).
    pub sso: Option<SsoClient>,
}

/// `"sso": {"client_id": ..., "client_secret": ..., "scope": ...}`.
#[derive(Clone, PartialEq, Eq)]
pub struct SsoClient {
    pub client_id: String,
    /// A confidential client's secret (sent with HTTP Basic); none for a public client,
    /// which PKCE alone protects.
    pub client_secret: Option<String>,
    /// `openid` and whatever else the user-name claim needs (default `openid profile`).
    pub scope: String,
}

impl std::fmt::Debug for SsoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoClient")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "(set)"),
            )
            .field("scope", &self.scope)
            .finish()
    }
}

/// What the provider's discovery document says: its key set, and for browser logins its
/// authorization and token endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    pub jwks_uri: DocumentUrl,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<DocumentUrl>,
}

/// Where a document comes from: HTTPS, plain HTTP to this host only (a provider on
/// loopback), or a local file (`file://[localhost]/path`, as upstream's tests use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentUrl {
    File(String),
    Https {
        host: String,
        port: u16,
        path: String,
    },
    HttpLoopback {
        host: String,
        port: u16,
        path: String,
    },
}

impl DocumentUrl {
    /// Parses `url`; `what` names it in errors.
    pub fn parse(url: &str, what: &str) -> Result<Self, OidcError> {
        let bad = |message: String| OidcError::Document {
            what: what.to_owned(),
            message,
        };
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad(format!("{url:?} has spaces or control characters")));
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad(format!("{url:?} is not a URL")))?;
        match scheme.to_ascii_lowercase().as_str() {
            "file" => {
                let path = rest.strip_prefix("localhost").unwrap_or(rest);
                if !path.starts_with('/') {
                    return Err(bad(format!("{url:?}: a file URL needs an absolute path")));
                }
                Ok(Self::File(path.to_owned()))
            }
            "https" => {
                let (host, port, path) = authority(rest, 443).map_err(bad)?;
                Ok(Self::Https { host, port, path })
            }
            "http" => {
                let (host, port, path) = authority(rest, 80).map_err(bad)?;
                if !is_loopback(&host) {
                    return Err(bad(format!(
                        "{url:?}: plain HTTP is only taken from this host (localhost, \
                         127.0.0.1, ::1); use https:// so the keys cannot be forged on the way"
                    )));
                }
                Ok(Self::HttpLoopback { host, port, path })
            }
            other => Err(bad(format!(
                "{url:?}: scheme {other:?} is not supported (https, file)"
            ))),
        }
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `host[:port][/path]` of a URL: host (IPv6 without brackets), port, path with its `/`.
fn authority(rest: &str, default_port: u16) -> Result<(String, u16, String), String> {
    let (auth, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(v6) = auth.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("unterminated IPv6 address in {rest:?}"))?;
        (host, after.strip_prefix(':'))
    } else {
        match auth.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (auth, None),
        }
    };
    if host.is_empty() || host.contains('@') {
        return Err(format!("no usable host name in {rest:?}"));
    }
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|n| *n != 0)
            .ok_or_else(|| format!("invalid port {p:?}"))?,
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    Ok((host.to_owned(), port, path))
}

impl OidcSettings {
    /// Reads the configuration file's text; `file` names it in errors.
    pub fn parse(text: &[u8], file: &str) -> Result<Self, OidcError> {
        let bad = |message: String| OidcError::Config {
            file: file.to_owned(),
            message,
        };
        let value: Value =
            serde_json::from_slice(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let Value::Object(mut object) = value else {
            return Err(bad("the file must hold a JSON object".into()));
        };
        let mut string = |key: &str| match object.remove(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
            None => Ok(None),
            Some(_) => Err(bad(format!("{key} must be a non-empty string"))),
        };
        let url = string("openid_configuration_url")?
            .ok_or_else(|| bad("missing openid_configuration_url".into()))?;
        let user_name_claim =
            string("user_name_claim")?.ok_or_else(|| bad("missing user_name_claim".into()))?;
        let ca_file = string("ca_file")?;
        let sso = match object.remove("sso") {
            None => None,
            Some(Value::Object(sso)) => Some(parse_sso(sso).map_err(bad)?),
            Some(_) => return Err(bad("sso must be a JSON object".into())),
        };
        let discovery =
            DocumentUrl::parse(&url, "openid_configuration_url").map_err(|e| bad(e.to_string()))?;
        let required_claims = match object.remove("required_claims") {
            Some(Value::Object(claims)) => claims,
            Some(_) => return Err(bad("required_claims must be a JSON object".into())),
            None => return Err(bad("missing required_claims".into())),
        };
        let refresh_interval = match object.remove("minimum_jwk_refresh_time") {
            None => DEFAULT_REFRESH_INTERVAL,
            Some(v) => v.as_u64().ok_or_else(|| {
                bad("minimum_jwk_refresh_time must be a whole number of seconds".into())
            })?,
        };
        Ok(Self {
            discovery,
            user_name_claim,
            required_claims,
            refresh_interval,
            ca_file,
            sso,
        })
    }
}

fn parse_sso(mut sso: Map<String, Value>) -> Result<SsoClient, String> {
    let mut string = |key: &str| match sso.remove(key) {
        Some(Value::String(s)) if !s.is_empty() && !s.chars().any(char::is_control) => Ok(Some(s)),
        None => Ok(None),
        Some(_) => Err(format!("sso.{key} must be a non-empty string")),
    };
    let client_id = string("client_id")?.ok_or("sso needs client_id")?;
    let client_secret = string("client_secret")?;
    let scope = string("scope")?.unwrap_or_else(|| "openid profile".to_owned());
    if !scope.split(' ').any(|s| s == "openid") {
        return Err(format!("sso.scope {scope:?} must include openid"));
    }
    Ok(SsoClient {
        client_id,
        client_secret,
        scope,
    })
}

impl Discovery {
    /// Reads a discovery document; `what` names it in errors.
    pub fn parse(document: &[u8], what: &str) -> Result<Self, OidcError> {
        let bad = |message: String| OidcError::Document {
            what: what.to_owned(),
            message,
        };
        let value: Value =
            serde_json::from_slice(document).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let text = |key: &str| value.get(key).and_then(Value::as_str);
        let jwks_uri = match text("jwks_uri") {
            Some(uri) => DocumentUrl::parse(uri, &format!("{what}'s jwks_uri"))?,
            None => return Err(bad("no jwks_uri string in it".into())),
        };
        let authorization_endpoint = match text("authorization_endpoint") {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                DocumentUrl::parse(url, &format!("{what}'s authorization_endpoint"))?;
                Some(url.to_owned())
            }
            Some(url) => {
                return Err(bad(format!(
                    "authorization_endpoint {url:?} is not an http(s) URL"
                )))
            }
            None => None,
        };
        let token_endpoint = text("token_endpoint")
            .map(|url| DocumentUrl::parse(url, &format!("{what}'s token_endpoint")))
            .transpose()?;
        Ok(Self {
            jwks_uri,
            authorization_endpoint,
            token_endpoint,
        })
    }
}
