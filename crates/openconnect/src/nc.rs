//! `--protocol=nc` (Juniper Network Connect): the `dana-na` web login read by
//! `oc_proto::nc` (forms, realms, tokens, roles, SAML hand-overs, the host checker through
//! `--csd-wrapper`), the `DSID` cookie, and the tunnel request. The oNCP tunnel itself is
//! not spoken yet: a session the server accepts ends with an error that says so.

use std::os::unix::net::UnixStream as StdUnixStream;
use std::process::Stdio;
use std::time::Duration;

use oc_proto::http::Request;
use oc_proto::nc::{self, read_page, NcPage};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tracing::{debug, info, warn};

use crate::auth_ui::FormFiller;
use crate::cli::Options;
use crate::error::ClientError;
use crate::transport::{Endpoint, HttpsConnection};
use crate::web::{follow, session_cookie, CookieJar, WebLogin};
use crate::{user_agent, Finished};

/// Pages in one login (forms, redirects' ends, roles, the host checker) before giving up.
const MAX_PAGES: usize = 32;
/// Redirects followed after one request.
const MAX_REDIRECTS: usize = 10;
/// How long the host checker may take to answer.
const TNCC_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines after the host checker's cookie that are tolerated before its blank line.
const TNCC_MAX_EXTRA_LINES: usize = 10;

/// Logs in (unless a cookie was given), then asks for the tunnel.
pub(crate) async fn run(
    opts: &Options,
    endpoint: &Endpoint,
    cookie: Option<String>,
    filler: impl FnOnce() -> Result<FormFiller, ClientError>,
) -> Result<Finished, ClientError> {
    let login = || async { login(opts, endpoint, &mut filler()?).await };
    let Some(cookie) = session_cookie(opts, endpoint, cookie, login).await? else {
        return Ok(Finished(String::new()));
    };
    tunnel(opts, endpoint, &cookie).await
}

/// A request with the headers upstream sends Network Connect servers.
fn request(opts: &Options, endpoint: &Endpoint, method: &'static str, path: &str) -> Request {
    Request::new(method, path)
        .header("Host", endpoint.url.host_header())
        .header("User-Agent", user_agent(opts))
        .header("NCP-Version", "3")
}

async fn login(
    opts: &Options,
    endpoint: &Endpoint,
    filler: &mut FormFiller,
) -> Result<WebLogin, ClientError> {
    let mut conn = endpoint.connect().await?;
    let mut jar = CookieJar::default();
    let mut path = endpoint.url.request_path();
    let mut post: Option<String> = None;
    let mut host_checker = opts.csd_wrapper.is_some();
    let mut tncc: Option<Tncc> = None;
    for _ in 0..MAX_PAGES {
        let mut req = request(
            opts,
            endpoint,
            if post.is_some() { "POST" } else { "GET" },
            &path,
        );
        if let Some(body) = post.take() {
            req = req.header("Content-Type", "application/x-www-form-urlencoded");
            req.body = body.into_bytes();
        }
        let (resp, landed) = follow(endpoint, &mut conn, &mut jar, req, MAX_REDIRECTS).await?;
        // The cookie counts whatever the page that carried it says (some landing pages are
        // 403s, as upstream notes).
        if let Some(cookie) = nc::session_cookie(jar.pairs()) {
            if let (Some(tncc), Some(preauth)) = (tncc.as_mut(), jar.get("DSPREAUTH")) {
                tncc.set_cookie(preauth).await;
            }
            info!("Got the DSID session cookie");
            return Ok(WebLogin::new(cookie, &conn));
        }
        path = landed;
        let html = String::from_utf8_lossy(&resp.body);
        match read_page(&html).map_err(|e| ClientError::AuthAborted(e.to_string()))? {
            NcPage::NoForm if std::mem::take(&mut host_checker) => {
                tncc = Some(Tncc::preauth(opts, endpoint, &conn, &mut jar).await?);
            }
            NcPage::NoForm => {
                return Err(ClientError::AuthAborted(format!(
                    "Failed to find or parse web form in login page (HTTP {} for {path})",
                    resp.head.status
                )));
            }
            NcPage::Form(form) => {
                let answers = filler.fill(&form.form)?;
                post = Some(oc_proto::form::urlencode(&answers));
                if let Some(action) = &form.action {
                    path = same_server(endpoint, &path, action)?;
                }
            }
            NcPage::Roles(form) => {
                let answers = filler.fill(&form)?;
                let link = answers
                    .into_iter()
                    .find(|(name, _)| name == nc::ROLES_FIELD)
                    .map(|(_, link)| link)
                    .unwrap_or_default();
                path = same_server(endpoint, &path, &link)?;
            }
        }
    }
    Err(ClientError::AuthAborted(format!(
        "no DSID cookie after {MAX_PAGES} pages"
    )))
}

/// Where a form posts or a link leads, as a path on this server: an absolute path, a URL
/// of this server, or a path relative to the page's.
fn same_server(endpoint: &Endpoint, page: &str, target: &str) -> Result<String, ClientError> {
    if target.starts_with('/') {
        return Ok(target.to_string());
    }
    if let Some(rest) = target.strip_prefix("https://") {
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let url = &endpoint.url;
        let ours = authority.eq_ignore_ascii_case(&url.host_header())
            || (url.port == 443 && authority.eq_ignore_ascii_case(&format!("{}:443", url.host)));
        if ours {
            return Ok(if path.is_empty() { "/" } else { path }.to_string());
        }
        return Err(ClientError::AuthAborted(format!(
            "the login goes on at another server ({target}); only this server's pages are \
             followed"
        )));
    }
    if target.contains("://") {
        return Err(ClientError::AuthAborted(format!(
            "the login goes on at {target}; only this server's HTTPS pages are followed"
        )));
    }
    let base = page.split('?').next().unwrap_or(page);
    let dir = base.rsplit_once('/').map_or("", |(dir, _)| dir);
    Ok(format!("{dir}/{target}"))
}

/// The host checker (`--csd-wrapper`, openconnect's TNCC protocol): started with the
/// server's name, our end of a socket pair on its standard input; it takes the
/// `DSPREAUTH` cookie and answers with the one that says the host passed.
struct Tncc {
    socket: BufReader<UnixStream>,
    /// Kept so that the checker lives as long as the login (it is not waited for).
    _child: tokio::process::Child,
}

impl Tncc {
    async fn preauth(
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
    async fn set_cookie(&mut self, preauth: &str) {
        if let Err(e) = self.send(&format!("setcookie\nCookie={preauth}\n")).await {
            warn!("{e}");
        }
    }
}

/// The tunnel request: refused means the cookie is no good (exit 2); accepted means the
/// server speaks oNCP to us, which this version cannot yet.
async fn tunnel(
    opts: &Options,
    endpoint: &Endpoint,
    cookie: &str,
) -> Result<Finished, ClientError> {
    let mut conn = endpoint.connect().await?;
    let req = nc::tunnel_request(&endpoint.url.host_header(), cookie, &user_agent(opts));
    let (resp, _) = conn.exchange(&req, true).await?;
    let status = resp.head.status;
    match status {
        200 => Err(ClientError::System(format!(
            "the server ({}) accepted the session, but this version does not speak Network \
             Connect's oNCP tunnel yet (its login and cookie work: --authenticate, \
             --cookieonly)",
            conn.addr.ip()
        ))),
        302 | 400..=499 => Err(ClientError::CookieRejected(format!(
            "Unexpected {status} result from server"
        ))),
        other => Err(ClientError::AuthAborted(format!(
            "Unexpected {other} result from server"
        ))),
    }
}
