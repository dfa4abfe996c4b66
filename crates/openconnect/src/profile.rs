//! `-x/--xmlconfig`: the AnyConnect XML profile. Its server list turns a host's display
//! name into the server's address and user group; after a login, a newer profile the
//! server offers is downloaded into the file, as openconnect does. A missing or broken
//! profile leaves the server argument a raw host name (openconnect's rule), said in the
//! log.

use std::path::{Path, PathBuf};

use oc_proto::anyconnect::profile::{find_host, host_entries, ProfileManifest};
use oc_proto::http::Request;
use tracing::{debug, info, warn};

use crate::error::ClientError;
use crate::transport::{Endpoint, HttpsConnection};

/// The `-x` file and the SHA-1 of what it held at the start.
#[derive(Debug, Clone)]
pub(crate) struct LocalProfile {
    path: PathBuf,
    sha1: Option<String>,
}

/// What SERVER means under the profile at `path`: the server to reach, the user group to
/// log in to (if the profile names one), and the profile to keep up to date.
pub(crate) fn resolve(path: &Path, server: &str) -> (String, Option<String>, LocalProfile) {
    let raw = |sha1| {
        (
            server.to_string(),
            None,
            LocalProfile {
                path: path.to_path_buf(),
                sha1,
            },
        )
    };
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) => {
            info!(
                "XML config file {}: {e}; treating host \"{server}\" as a raw hostname",
                path.display()
            );
            return raw(None);
        }
    };
    let sha1 = oc_proto::hex::encode(&openssl::sha::sha1(&data));
    debug!("XML config file SHA1: {sha1}");
    let entries = match host_entries(&data) {
        Ok(e) => e,
        Err(e) => {
            warn!(
                "Failed to parse XML config file {} ({e}); treating host \"{server}\" as a raw hostname",
                path.display()
            );
            return raw(Some(sha1));
        }
    };
    let Some(entry) = find_host(&entries, server) else {
        info!("Host \"{server}\" not listed in config; treating as raw hostname");
        return raw(Some(sha1));
    };
    let address = entry.address.clone().unwrap_or_else(|| server.to_string());
    info!("Host \"{server}\" has address \"{address}\"");
    if let Some(group) = &entry.user_group {
        info!("Host \"{server}\" has UserGroup \"{group}\"");
    }
    let local = LocalProfile {
        path: path.to_path_buf(),
        sha1: Some(sha1),
    };
    (address, entry.user_group.clone(), local)
}

/// After a login: downloads the profile the server offers into the `-x` file unless it
/// already holds it. Failures are logged; the session goes on (as openconnect).
pub(crate) async fn update(
    local: &LocalProfile,
    offered: &ProfileManifest,
    endpoint: &Endpoint,
    conn: &mut Option<HttpsConnection>,
    cookie: &str,
    user_agent: &str,
) {
    if local
        .sha1
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case(&offered.sha1))
    {
        debug!("Not downloading XML profile because SHA1 already matches");
        return;
    }
    let downloaded = fetch(&offered.uri, endpoint, conn, cookie, user_agent).await;
    match downloaded.and_then(|body| store(local, offered, &body)) {
        Ok(()) => info!("Downloaded new XML profile {}", local.path.display()),
        Err(e) => warn!("Failed to download the XML profile {}: {e}", offered.uri),
    }
}

/// GETs `uri` on the login's connection (or a new one), with the session cookie.
async fn fetch(
    uri: &str,
    endpoint: &Endpoint,
    conn: &mut Option<HttpsConnection>,
    cookie: &str,
    user_agent: &str,
) -> Result<Vec<u8>, ClientError> {
    let live = match conn.take() {
        Some(c) if !c.closed => c,
        _ => endpoint.connect().await?,
    };
    let connection = conn.insert(live);
    let request = Request::new("GET", uri.to_string())
        .header("Host", endpoint.url.host_header())
        .header("User-Agent", user_agent)
        .header("Cookie", format!("webvpn={cookie}"));
    let (response, _) = connection.exchange(&request, false).await?;
    if connection.closed {
        *conn = None;
    }
    match response.head.status {
        200 => Ok(response.body),
        status => Err(ClientError::System(format!(
            "the server answered HTTP {status}"
        ))),
    }
}

/// Writes the downloaded profile into the `-x` file once its size and SHA-1 are right.
fn store(local: &LocalProfile, offered: &ProfileManifest, body: &[u8]) -> Result<(), ClientError> {
    if body.len() > oc_proto::anyconnect::profile::MAX_PROFILE_BYTES {
        return Err(ClientError::System(
            "the profile is larger than 1 MiB".into(),
        ));
    }
    let got = oc_proto::hex::encode(&openssl::sha::sha1(body));
    if !got.eq_ignore_ascii_case(&offered.sha1) {
        return Err(ClientError::System(format!(
            "Downloaded config file did not match intended SHA1 ({got}, not {})",
            offered.sha1
        )));
    }
    write_atomically(&local.path, body)
}

/// Writes `data` to a temporary file beside `path`, then renames it over `path`.
fn write_atomically(path: &Path, data: &[u8]) -> Result<(), ClientError> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".new");
    let temporary = PathBuf::from(temporary);
    let failed = |e: std::io::Error| {
        ClientError::System(format!(
            "cannot write the XML profile {}: {e}",
            path.display()
        ))
    };
    std::fs::write(&temporary, data).map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(failed)
}
