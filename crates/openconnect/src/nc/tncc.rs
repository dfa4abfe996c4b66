//! The host checker (`--csd-wrapper`, openconnect's TNCC protocol) for Network Connect
//! and Pulse logins.

use std::os::unix::net::UnixStream as StdUnixStream;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tracing::{debug, info, warn};

use crate::cli::Options;
use crate::error::ClientError;
use crate::transport::{Endpoint, HttpsConnection};
use crate::web::CookieJar;

/// How long the host checker may take to answer.
const TNCC_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines after the host checker's cookie that are tolerated before its blank line.
const TNCC_MAX_EXTRA_LINES: usize = 10;

/// The host checker (`--csd-wrapper`, openconnect's TNCC protocol): started with the
/// server's name, our end of a socket pair on its standard input; it takes the
/// `DSPREAUTH` cookie and answers with the one that says the host passed.
pub(super) struct Tncc {
    socket: BufReader<UnixStream>,
    /// Kept so that the checker lives as long as the login (it is not waited for).
    _child: tokio::process::Child,
}

impl Tncc {
    pub(super) async fn preauth(
        opts: &Options,
        endpoint: &Endpoint,
        conn: &HttpsConnection,
        jar: &mut CookieJar,
    ) -> Result<Self, ClientError> {
        let failed = |why: String| ClientError::AuthAborted(format!("TNCC: {why}"));
        let preauth = jar
            .get("DSPREAUTH")
            .ok_or_else(|| failed("No DSPREAUTH cookie; not attempting TNCC".into()))?
            .to_string();
        let wrapper = opts.csd_wrapper.clone().unwrap_or_default();
        info!(
            "Trying to run TNCC/Host Checker Trojan script '{}'.",
            wrapper.display()
        );
        let (ours, theirs) = StdUnixStream::pair().map_err(|e| failed(e.to_string()))?;
        let pin = conn.peer.fingerprint.trim_start_matches("pin-sha256:");
        let local = opts.hostname();
        let mut command = tokio::process::Command::new(&wrapper);
        command
            .arg(&endpoint.url.host)
            .env("TNCC_SHA256", pin)
            .env("TNCC_HOSTNAME", local)
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            // Nothing from it on our standard output.
            .stdout(Stdio::from(std::io::stderr()));
        if let Some(interval) = opts.force_trojan {
            command.env("TNCC_INTERVAL", interval.to_string());
        }
        let child = command
            .spawn()
            .map_err(|e| failed(format!("cannot run {}: {e}", wrapper.display())))?;
        ours.set_nonblocking(true)
            .map_err(|e| failed(e.to_string()))?;
        let socket = UnixStream::from_std(ours).map_err(|e| failed(e.to_string()))?;
        let mut tncc = Self {
            socket: BufReader::new(socket),
            _child: child,
        };
        let signin = jar.get("DSSIGNIN").unwrap_or("null").to_string();
        let start = format!(
            "start\nIC={}\nCookie={preauth}\nDSSIGNIN={signin}\n",
            endpoint.url.host
        );
        tncc.send(&start).await.map_err(failed)?;
        debug!("Sent start; waiting for response from TNCC");
        let answer = tokio::time::timeout(TNCC_TIMEOUT, tncc.answer())
            .await
            .map_err(|_| failed(format!("no answer in {}s", TNCC_TIMEOUT.as_secs())))?
            .map_err(failed)?;
        debug!("Got new DSPREAUTH cookie from TNCC: {answer}");
        jar.set("DSPREAUTH", &answer);
        Ok(tncc)
    }

    async fn send(&mut self, text: &str) -> Result<(), String> {
        self.socket
            .get_mut()
            .write_all(text.as_bytes())
            .await
            .map_err(|e| format!("Failed to send command to TNCC: {e}"))
    }

    async fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        let n = (&mut self.socket)
            .take(4096)
            .read_line(&mut line)
            .await
            .map_err(|e| format!("Failed to read response from TNCC: {e}"))?;
        if n == 0 {
            return Err("Failed to read response from TNCC: it closed the socket".into());
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }

    /// `200`, a line upstream ignores, the new `DSPREAUTH`, an optional interval, then a
    /// blank line.
    async fn answer(&mut self) -> Result<String, String> {
        let status = self.line().await?;
        if status != "200" {
            return Err(format!("Received unsuccessful {status} response from TNCC"));
        }
        let _ = self.line().await?;
        let cookie = self.line().await?;
        let mut extra = 0;
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                return Ok(cookie);
            }
            extra += 1;
            if extra > TNCC_MAX_EXTRA_LINES {
                return Err("Too many non-empty lines from TNCC after DSPREAUTH cookie".into());
            }
            debug!("TNCC: {line}");
        }
    }

    /// Once `DSID` is set: the checker gets the session's `DSPREAUTH` (best effort).
    pub(super) async fn set_cookie(&mut self, preauth: &str) {
        if let Err(e) = self.send(&format!("setcookie\nCookie={preauth}\n")).await {
            warn!("{e}");
        }
    }
}
