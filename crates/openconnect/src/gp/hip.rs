//! The HIP check, as upstream's `check_and_maybe_submit_hip_report`: `hipreportcheck.esp`
//! with the client's token (an MD5 of the cookie's lasting fields); when the gateway wants a
//! report, the `--csd-wrapper` script (upstream's `hipreport.sh` is the reference) writes
//! it with openconnect's arguments and environment, and it goes to `hipreport.esp`.
//! Without a script, openconnect's warning, once. The check repeats every `--force-trojan`
//! seconds, else the portal's interval, else an hour.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use oc_proto::gp::client::{hip_check_request, hip_token_input};
use oc_proto::gp::{read_hip_check, read_reply, ClientInfo, GatewayConfig, GpCookie};
use tokio::io::AsyncReadExt;
use tracing::{debug, error, info, warn};

use super::setup::{gp_error, post};
use crate::cli::Options;
use crate::error::ClientError;
use crate::transport::Endpoint;
use crate::web::CookieJar;

/// The HIP check's interval unless the user or the portal set one (upstream's default).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);
/// The most of a report read from the script.
const MAX_REPORT: u64 = 4 * 1024 * 1024;
/// How long the script may take.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// The HIP settings of a session.
#[derive(Debug, Clone)]
pub(super) struct Hip {
    wrapper: Option<PathBuf>,
    csd_user: Option<String>,
    pub interval: Duration,
    /// openconnect warns about a missing script only once.
    warned: bool,
}

impl Hip {
    /// `portal_interval`: the portal's `hip-report-interval`, which `--force-trojan`
    /// overrides.
    pub(super) fn new(opts: &Options, portal_interval: Option<Duration>) -> Self {
        let forced = opts
            .force_trojan
            .filter(|s| *s > 0)
            .map(Duration::from_secs);
        let interval = match (forced, portal_interval) {
            (Some(forced), Some(portal)) => {
                info!(
                    "Ignoring portal's HIP report interval ({} minutes), because interval is \
                     already set to {} minutes.",
                    portal.as_secs() / 60,
                    forced.as_secs() / 60
                );
                forced
            }
            (Some(forced), None) => forced,
            (None, Some(portal)) => {
                info!(
                    "Portal set HIP report interval to {} minutes).",
                    portal.as_secs() / 60
                );
                portal
            }
            (None, None) => DEFAULT_INTERVAL,
        };
        Self {
            wrapper: opts.csd_wrapper.clone(),
            csd_user: opts.csd_user.clone(),
            interval,
            warned: false,
        }
    }

    /// Asks whether a report is needed and, when it is, submits the script's.
    pub(super) async fn check(
        &mut self,
        endpoint: &Endpoint,
        jar: &mut CookieJar,
        client: &ClientInfo,
        cookie: &GpCookie,
        config: &GatewayConfig,
    ) -> Result<(), ClientError> {
        let digest = openssl::hash::hash(
            openssl::hash::MessageDigest::md5(),
            hip_token_input(cookie).as_bytes(),
        )
        .map_err(|e| ClientError::System(format!("MD5 for the HIP check: {e}")))?;
        let md5 = oc_proto::hex::encode(&digest);
        let host = endpoint.url.host_header();
        let ipv4 = config.ip.ipv4;
        let ipv6 = config.ip.ipv6.map(|n| n.addr());
        let request = hip_check_request(&host, cookie, ipv4, ipv6, &md5, None);
        let (status, body, _) = post(endpoint, jar, &request).await?;
        let reply = read_reply(status, &body).map_err(gp_error)?;
        if !read_hip_check(&reply).map_err(gp_error)? {
            debug!("Gateway says no HIP report submission is needed.");
            return Ok(());
        }
        debug!("Gateway says HIP report submission is needed.");
        let Some(wrapper) = self.wrapper.clone() else {
            if !std::mem::replace(&mut self.warned, true) {
                warn!(
                    "WARNING: Server asked us to submit HIP report with md5sum {md5}.\n    VPN \
                     connectivity may be disabled or limited without HIP report \
                     submission.\n    You need to provide a --csd-wrapper argument with the \
                     HIP report submission script."
                );
            }
            return Ok(());
        };
        let report = self
            .run_script(&wrapper, client, cookie, config, &md5)
            .await?;
        let request = hip_check_request(&host, cookie, ipv4, ipv6, &md5, Some(&report));
        let (status, body, _) = post(endpoint, jar, &request).await?;
        match read_reply(status, &body) {
            Ok(_) => {
                info!("HIP report submitted successfully.");
                Ok(())
            }
            Err(e) => {
                error!("HIP report submission failed.");
                Err(gp_error(e))
            }
        }
    }

    /// Runs the HIP script as upstream does: `--cookie`, `--client-ip`, `--client-ipv6`,
    /// `--md5`, `--client-os`, and `APP_VERSION` when the portal named its version; the
    /// report is what it writes to standard output.
    async fn run_script(
        &self,
        wrapper: &PathBuf,
        client: &ClientInfo,
        cookie: &GpCookie,
        config: &GatewayConfig,
        md5: &str,
    ) -> Result<String, ClientError> {
        let shown = wrapper.display().to_string();
        info!("Trying to run HIP Trojan script '{shown}'.");
        let mut command = tokio::process::Command::new(wrapper);
        command.arg("--cookie").arg(cookie.to_string());
        if let Some(ip) = config.ip.ipv4 {
            command.arg("--client-ip").arg(ip.to_string());
        }
        if let Some(ip) = config.ip.ipv6 {
            command.arg("--client-ipv6").arg(ip.addr().to_string());
        }
        command.args(["--md5", md5, "--client-os", client.clientos()]);
        command.env_remove("APP_VERSION");
        if client.app_version != oc_proto::gp::DEFAULT_APP_VERSION {
            command.env("APP_VERSION", &client.app_version);
        }
        if let Some(user) = &self.csd_user {
            let (uid, gid, home) = crate::host_scan::csd_user_ids(user)?;
            command.uid(uid).gid(gid).env("HOME", home);
        }
        let failed = |why: String| ClientError::System(format!("HIP script '{shown}' {why}"));
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed(format!("could not start: {e}")))?;
        let mut report = Vec::new();
        let run = async {
            if let Some(out) = child.stdout.take() {
                out.take(MAX_REPORT).read_to_end(&mut report).await?;
            }
            child.wait().await
        };
        let status = tokio::time::timeout(SCRIPT_TIMEOUT, run)
            .await
            .map_err(|_| failed(format!("did not finish in {}s", SCRIPT_TIMEOUT.as_secs())))?
            .map_err(|e| failed(e.to_string()))?;
        match status.code() {
            Some(0) => {}
            Some(code) => return Err(failed(format!("returned non-zero status: {code}"))),
            None => return Err(failed("exited abnormally".into())),
        }
        info!(
            "HIP script '{shown}' completed successfully (report is {} bytes).",
            report.len()
        );
        String::from_utf8(report).map_err(|_| failed("wrote a report that is not UTF-8".into()))
    }
}
