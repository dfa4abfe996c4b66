//! OpenID Connect logins in the security module (`auth = oidc[config=FILE]`): the
//! provider's keys fetched at start (as ocserv, the server does not start without them)
//! and again when a token names a key not yet known (at most every
//! `minimum_jwk_refresh_time`), and each bearer token checked by `oc_proto::oidc`.
//!
//! Documents come from `file://` paths, HTTPS (the system's CAs, or the settings'
//! `ca_file`), or plain HTTP on loopback; each fetch is bounded in time and size.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use oc_proto::http::{Limits, Request, ResponseReader};
use oc_proto::oidc::{
    authorization_url, check_id_token, id_token_of, token_request_body, verify_token, Discovery,
    DocumentUrl, KeySet as JwkSet, OidcError, OidcSettings, MAX_DOCUMENT,
};
use oc_tls::jose::OpensslJose;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use tracing::{info, warn};

use crate::server::lock;

/// How long one document may take to arrive, connection included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// One `oidc` method: its settings, the provider's endpoints and current keys.
#[derive(Debug)]
pub struct OidcProvider {
    config: PathBuf,
    settings: OidcSettings,
    discovery: Discovery,
    keys: Mutex<JwkSet>,
}

/// One browser login's parameters, as the network process made them.
#[derive(Debug, Clone, Copy)]
pub struct SsoParams<'a> {
    pub redirect_uri: &'a str,
    pub nonce: &'a str,
}

impl OidcProvider {
    /// Reads the settings file and fetches the provider's keys.
    pub fn load(config: &Path) -> Result<Self, String> {
        let name = config.display().to_string();
        let text = read_limited(config).map_err(|e| format!("oidc config {name}: {e}"))?;
        let settings = OidcSettings::parse(&text, &name).map_err(|e| e.to_string())?;
        let failed = |e: String| format!("oidc ({name}): {e}");
        let discovery = fetch_discovery(&settings).map_err(failed)?;
        if settings.sso.is_some()
            && (discovery.authorization_endpoint.is_none() || discovery.token_endpoint.is_none())
        {
            return Err(failed(
                "sso is set, but the discovery document names no authorization_endpoint and \
                 token_endpoint"
                    .into(),
            ));
        }
        let keys = fetch_keys(&settings, &discovery).map_err(failed)?;
        Ok(Self {
            config: config.to_owned(),
            settings,
            discovery,
            keys: Mutex::new(keys),
        })
    }

    /// The provider's login page for a browser login, when `sso` is configured.
    pub fn sso_login_url(
        &self,
        params: SsoParams<'_>,
        state: &str,
        challenge: &str,
    ) -> Option<String> {
        let client = self.settings.sso.as_ref()?;
        let endpoint = self.discovery.authorization_endpoint.as_deref()?;
        Some(authorization_url(
            endpoint,
            client,
            params.redirect_uri,
            state,
            params.nonce,
            challenge,
        ))
    }

    /// Trades a browser login's code for an ID token at the token endpoint and checks it:
    /// the user it names.
    pub fn redeem_code(
        &self,
        params: SsoParams<'_>,
        code: &str,
        verifier: &str,
    ) -> Result<String, String> {
        let (Some(client), Some(endpoint)) = (
            self.settings.sso.as_ref(),
            self.discovery.token_endpoint.as_ref(),
        ) else {
            return Err("browser logins are not configured (no sso in the oidc settings)".into());
        };
        let (body, authorization) = token_request_body(code, params.redirect_uri, client, verifier);
        let mut request = Request::new("POST", "")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json");
        if let Some(authorization) = authorization {
            request = request.header("Authorization", authorization);
        }
        request.body = body.into_bytes();
        let answer = send(endpoint, request, self.settings.ca_file.as_deref())
            .map_err(|e| format!("token_endpoint: {e}"))?;
        let id_token = id_token_of(&answer).map_err(|e| e.to_string())?;
        let verified = self.verify_checked(&id_token)?;
        check_id_token(&verified, params.nonce, &client.client_id).map_err(|e| e.to_string())?;
        Ok(verified.user)
    }

    /// The settings file this provider was loaded from.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// The user a bearer token names, or why it is refused. A token naming an unknown key
    /// is refused too (ocserv's behaviour: the client tries again), after fetching the
    /// keys anew when the refresh interval allows.
    pub fn verify(&self, token: &str) -> Result<String, String> {
        self.verify_checked(token).map(|v| v.user)
    }

    fn verify_checked(&self, token: &str) -> Result<oc_proto::oidc::Verified, String> {
        let now = unix_now();
        let outcome = {
            let keys = lock(&self.keys);
            verify_token(token, &self.settings, &keys, now, &OpensslJose)
        };
        match outcome {
            Ok(verified) => Ok(verified),
            Err(e @ OidcError::UnknownKey { .. }) => {
                self.refresh(now);
                Err(e.to_string())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn refresh(&self, now: u64) {
        let interval = self.settings.refresh_interval;
        if !lock(&self.keys).may_refresh(now, interval) {
            info!("oidc: key set fetched less than {interval} s ago; not fetching it again");
            return;
        }
        match fetch_keys(&self.settings, &self.discovery) {
            Ok(keys) => *lock(&self.keys) = keys,
            Err(e) => {
                warn!("oidc: fetching the provider's keys again failed: {e}");
                // Not again before the interval: a provider that is down is not hammered.
                lock(&self.keys).fetched_at = now;
            }
        }
    }
}

fn unix_now() -> u64 {
    crate::server::unix_seconds(SystemTime::now())
}

/// The provider's discovery document.
fn fetch_discovery(settings: &OidcSettings) -> Result<Discovery, String> {
    let document = fetch(&settings.discovery, settings.ca_file.as_deref())
        .map_err(|e| format!("openid_configuration_url: {e}"))?;
    Discovery::parse(&document, "openid_configuration_url").map_err(|e| e.to_string())
}

/// The key set the discovery document points to.
fn fetch_keys(settings: &OidcSettings, discovery: &Discovery) -> Result<JwkSet, String> {
    let ca = settings.ca_file.as_deref();
    let document = fetch(&discovery.jwks_uri, ca).map_err(|e| format!("jwks_uri: {e}"))?;
    let (keys, skipped) =
        JwkSet::parse(&document, "jwks_uri", unix_now()).map_err(|e| e.to_string())?;
    for s in skipped {
        warn!(
            "oidc: key {} skipped: {}",
            s.kid.as_deref().unwrap_or("(no kid)"),
            s.why
        );
    }
    let kids: Vec<&str> = keys
        .keys
        .iter()
        .map(|k| k.kid.as_deref().unwrap_or("(no kid)"))
        .collect();
    info!(
        "oidc: fetched {} signing keys: {}",
        kids.len(),
        kids.join(", ")
    );
    Ok(keys)
}

fn fetch(url: &DocumentUrl, ca_file: Option<&str>) -> Result<Vec<u8>, String> {
    match url {
        DocumentUrl::File(path) => {
            read_limited(Path::new(path)).map_err(|e| format!("{path}: {e}"))
        }
        _ => send(
            url,
            Request::new("GET", "").header("Accept", "application/json"),
            ca_file,
        ),
    }
}

/// `request` (its path and Host filled in from `url`) over HTTPS or loopback HTTP: the
/// body of a 200 answer.
fn send(url: &DocumentUrl, mut request: Request, ca_file: Option<&str>) -> Result<Vec<u8>, String> {
    match url {
        DocumentUrl::File(path) => Err(format!("{path}: a file cannot take a request")),
        DocumentUrl::Https { host, port, path } => {
            let tcp = connect(host, *port)?;
            let tls = tls_connector(ca_file)?
                .connect(host, tcp)
                .map_err(|e| format!("TLS with {host}:{port}: {e}"))?;
            request.path.clone_from(path);
            exchange(tls, host, *port, request)
        }
        DocumentUrl::HttpLoopback { host, port, path } => {
            request.path.clone_from(path);
            exchange(connect(host, *port)?, host, *port, request)
        }
    }
}

fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    std::fs::File::open(path)?
        .take(u64::try_from(MAX_DOCUMENT + 1).unwrap_or(u64::MAX))
        .read_to_end(&mut out)?;
    if out.len() > MAX_DOCUMENT {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_DOCUMENT} bytes"
        )));
    }
    Ok(out)
}

fn connect(host: &str, port: u16) -> Result<TcpStream, String> {
    let failed = |e: std::io::Error| format!("connecting to {host}:{port}: {e}");
    let addrs = (host, port).to_socket_addrs().map_err(failed)?;
    let mut last = std::io::Error::other("the name has no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, FETCH_TIMEOUT) {
            Ok(stream) => {
                stream
                    .set_read_timeout(Some(FETCH_TIMEOUT))
                    .map_err(failed)?;
                stream
                    .set_write_timeout(Some(FETCH_TIMEOUT))
                    .map_err(failed)?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(failed(last))
}

fn tls_connector(ca_file: Option<&str>) -> Result<SslConnector, String> {
    let failed = |e: openssl::error::ErrorStack| format!("TLS set-up: {e}");
    let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(failed)?;
    builder.set_verify(SslVerifyMode::PEER);
    if let Some(ca) = ca_file {
        builder
            .set_ca_file(ca)
            .map_err(|e| format!("ca_file {ca}: {e}"))?;
    }
    Ok(builder.build())
}

/// One request over `stream`: the body of a 200 answer, within the time and size limits.
fn exchange(
    mut stream: impl Read + Write,
    host: &str,
    port: u16,
    request: Request,
) -> Result<Vec<u8>, String> {
    let started = Instant::now();
    let host_header = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut bytes = Vec::new();
    request
        .header("Host", host_header)
        .header("Connection", "close")
        .emit(&mut bytes);
    stream
        .write_all(&bytes)
        .map_err(|e| format!("sending the request: {e}"))?;
    let limits = Limits {
        max_body_bytes: MAX_DOCUMENT,
        ..Limits::default()
    };
    let mut reader = ResponseReader::new(limits, false);
    let mut buf = vec![0u8; 16 * 1024];
    let response = loop {
        if started.elapsed() > FETCH_TIMEOUT {
            return Err(format!(
                "no complete answer in {} s",
                FETCH_TIMEOUT.as_secs()
            ));
        }
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            // A TLS peer that closes without close_notify still ended its answer.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(format!("reading the answer: {e}")),
        };
        if n == 0 {
            break reader.finish_eof().map_err(|e| e.to_string())?;
        }
        reader
            .feed(buf.get(..n).unwrap_or_default())
            .map_err(|e| e.to_string())?;
        if let Some(response) = reader.poll().map_err(|e| e.to_string())? {
            break response;
        }
    };
    if response.head.status != 200 {
        return Err(format!("the server answered {}", response.head.status));
    }
    Ok(response.body)
}
