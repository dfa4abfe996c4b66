//! AnyConnect's host scan (CSD): the `--csd-wrapper` script runs with openconnect's
//! arguments and environment (as `--csd-user` when given, its output on stderr), then the
//! gateway's wait page is polled once a second until it says the scan is judged, and the
//! login starts again with the scan's cookie. A scanner downloaded from the gateway is
//! never run (openconnect runs one only with `--csd-user` and no wrapper).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use oc_proto::anyconnect::auth::AuthExchange;
use oc_proto::anyconnect::host_scan::{CertHashes, HostScan};
use oc_proto::http::Request;
use tracing::{error, info, warn};

use crate::cli::Options;
use crate::error::ClientError;
use crate::transport::{Endpoint, HttpsConnection};

/// How long the script may take.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);
/// How many times the wait page is asked (once a second).
const MAX_WAITS: u32 = 300;

/// Runs the scan and waits for its verdict; returns the request that logs in again.
pub async fn scan_and_wait(
    opts: &Options,
    endpoint: &Endpoint,
    conn: &mut HttpsConnection,
    exchange: &mut AuthExchange,
    scan: &HostScan,
) -> Result<Request, ClientError> {
    let Some(wrapper) = &opts.csd_wrapper else {
        return Err(ClientError::AuthAborted(
            "Error: Server asked us to run CSD hostscan. You need to provide a suitable \
             --csd-wrapper argument (openconnect's csd-post.sh, for one)"
                .into(),
        ));
    };
    let host = endpoint.url.host_header();
    let (server_md5, client_md5) = &conn.peer.cert_md5;
    let hashes = CertHashes {
        server_md5,
        client_md5,
    };
    let group = opts.authgroup.as_deref().unwrap_or_default();
    let args = scan.wrapper_args(group, hashes, &host);
    let env = scan.wrapper_env(&conn.peer.fingerprint, &host);
    run_wrapper(wrapper, &args, &env, opts.csd_user.as_deref()).await?;
    for _ in 0..MAX_WAITS {
        if conn.closed {
            *conn = endpoint.connect().await?;
        }
        let request = exchange.wait_request(scan);
        let (response, _) = conn.exchange(&request, false).await?;
        if let Some(again) = exchange.wait_response(&response)? {
            return Ok(again);
        }
        info!("Refreshing {} after 1 second...", scan.wait_uri);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(ClientError::AuthAborted(format!(
        "the gateway's host scan wait page still asked to wait after {MAX_WAITS} seconds"
    )))
}

async fn run_wrapper(
    wrapper: &Path,
    args: &[String],
    env: &[(&str, String)],
    csd_user: Option<&str>,
) -> Result<(), ClientError> {
    let shown = wrapper.display().to_string();
    info!("Trying to run CSD Trojan script '{shown}'.");
    let mut command = tokio::process::Command::new(wrapper);
    command.args(args).envs(env.iter().map(|(k, v)| (k, v)));
    if let Some(user) = csd_user {
        let (uid, gid, home) = csd_user_ids(user)?;
        command.uid(uid).gid(gid).env("HOME", home);
    }
    // Its output must not mix with --authenticate's on stdout.
    let stdout = match std::os::fd::AsFd::as_fd(&std::io::stderr()).try_clone_to_owned() {
        Ok(fd) => Stdio::from(fd),
        Err(_) => Stdio::null(),
    };
    let failed = |why: String| ClientError::System(format!("CSD script '{shown}' {why}"));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(stdout)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("could not start: {e}")))?;
    let status = tokio::time::timeout(SCRIPT_TIMEOUT, child.wait())
        .await
        .map_err(|_| failed(format!("did not finish in {}s", SCRIPT_TIMEOUT.as_secs())))?
        .map_err(|e| failed(e.to_string()))?;
    match status.code() {
        Some(0) => info!("CSD script '{shown}' completed successfully."),
        // openconnect goes on too: some scripts exit non-zero and it never mattered.
        Some(code) => {
            error!("CSD script '{shown}' returned non-zero status: {code}");
            warn!("Authentication may fail. If your script is not returning zero, fix it.");
        }
        None => return Err(failed("exited abnormally".into())),
    }
    Ok(())
}

/// `--csd-user`'s user and group ids and home directory.
pub(crate) fn csd_user_ids(name: &str) -> Result<(u32, u32, std::path::PathBuf), ClientError> {
    let user = match name.parse::<u32>() {
        Ok(uid) => nix::unistd::User::from_uid(uid.into()),
        Err(_) => nix::unistd::User::from_name(name),
    }
    .map_err(|e| ClientError::System(format!("--csd-user {name}: {e}")))?
    .ok_or_else(|| ClientError::Usage(format!("--csd-user {name}: no such user")))?;
    Ok((user.uid.as_raw(), user.gid.as_raw(), user.dir))
}
