//! Single sign-on through a web browser (AnyConnect's `single-sign-on-v2`).
//!
//! In the external-browser mode, the client listens on `localhost:29786`, starts the browser
//! (`--external-browser`, else `xdg-open`) at the gateway's login URL, and waits for the
//! browser's `GET /api/sso/<sealed token>`; stray requests get a 404, as in openconnect. The
//! URL is printed too, so a user without a browser here can log in elsewhere and forward
//! the port. For the embedded-browser mode, which openconnect's command line cannot do,
//! the token is asked for (the value of the gateway's token cookie at the final page), so
//! headless helpers can give it on stdin or as `-F FORM:FIELD=TOKEN`, which also
//! answers the external mode without a browser.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use oc_proto::anyconnect::auth::AuthForm;
use oc_proto::anyconnect::sso::{self, EncryptedToken, SsoError, SsoLogin, CALLBACK_PORT};
use oc_tls::sso::StrapKeys;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use crate::auth_ui::FormFiller;
use crate::error::ClientError;

/// How long one browser connection may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The headers after the request line: read and dropped, up to this much.
const MAX_REQUEST_BYTES: u64 = 64 * 1024;

/// The token for `form`: from `-F`, the browser's callback, or a prompt.
pub async fn obtain_token(
    form: &AuthForm,
    login: &SsoLogin,
    keys: Option<&StrapKeys>,
    browser: Option<&Path>,
    filler: &mut FormFiller,
) -> Result<String, ClientError> {
    let given = filler
        .entries
        .iter()
        .find(|(id, name, _)| *id == form.id && *name == login.token_field)
        .map(|(_, _, value)| value.clone());
    if let Some(token) = given {
        return Ok(token);
    }
    match (login.external_browser, keys) {
        (true, Some(keys)) => external_browser(login, keys, browser).await,
        (true, None) => Err(ClientError::AuthAborted(
            "the server asks for an external-browser login, which --no-external-auth \
             turned off"
                .into(),
        )),
        (false, _) => ask_for_token(login, filler),
    }
}

/// The embedded-browser mode: the user (or a helper) logs in and gives the cookie's value.
fn ask_for_token(login: &SsoLogin, filler: &mut FormFiller) -> Result<String, ClientError> {
    let cookie = login.token_cookie.as_deref().unwrap_or("acSamlv2Token");
    info!("Single sign-on: log in at {}", login.login_url);
    match &login.final_url {
        Some(end) => info!(
            "When the browser reaches {end}, give the value of its {cookie} cookie \
             (or pass it as -F)"
        ),
        None => info!("Then give the value of the {cookie} cookie (or pass it as -F)"),
    }
    let token = filler
        .prompter
        .ask(&format!("SSO token ({cookie}):"), true)?;
    let token = token.trim();
    sso::check_token(token.as_bytes())
        .map_err(|e| ClientError::AuthAborted(format!("the SSO token given: {e}")))
}

async fn external_browser(
    login: &SsoLogin,
    keys: &StrapKeys,
    browser: Option<&Path>,
) -> Result<String, ClientError> {
    let listeners = listen().await?;
    info!(
        "Single sign-on: log in with your browser at {}\n(this client waits for it on \
         http://localhost:{CALLBACK_PORT}/)",
        login.login_url
    );
    match browser_command(browser) {
        Some(command) => start_browser(&command, &login.login_url),
        None => warn!(
            "No browser to start (--external-browser, or xdg-open in PATH): open the URL \
             yourself"
        ),
    }
    loop {
        let stream = accept(&listeners).await?;
        match answer_callback(stream, keys).await {
            Ok(Some(token)) => return Ok(token),
            Ok(None) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `localhost:29786` on both loopback addresses: openconnect takes `[::1]` only, but a
/// browser may try `127.0.0.1` first. One of the two is enough.
async fn listen() -> Result<Vec<TcpListener>, ClientError> {
    let mut listeners = Vec::new();
    let mut last_error = None;
    for ip in [Ipv6Addr::LOCALHOST.into(), Ipv4Addr::LOCALHOST.into()] {
        match TcpListener::bind(SocketAddr::new(ip, CALLBACK_PORT)).await {
            Ok(listener) => listeners.push(listener),
            Err(e) => last_error = Some(e),
        }
    }
    match (listeners.is_empty(), last_error) {
        (true, Some(e)) => Err(ClientError::AuthAborted(format!(
            "Failed to listen on local port {CALLBACK_PORT} for the browser's single-sign-on \
             answer: {e} (is another VPN client waiting for one?)"
        ))),
        _ => Ok(listeners),
    }
}

async fn accept(listeners: &[TcpListener]) -> Result<TcpStream, ClientError> {
    let on = |index: usize| async move {
        match listeners.get(index) {
            Some(listener) => listener.accept().await,
            None => std::future::pending().await,
        }
    };
    let accepted = tokio::select! {
        accepted = on(0) => accepted,
        accepted = on(1) => accepted,
    };
    accepted
        .map(|(stream, _)| stream)
        .map_err(|source| ClientError::Io {
            what: "waiting for the browser's single-sign-on answer",
            source,
        })
}

/// One browser connection: `Some(token)` for the callback, `None` for a stray request
/// (answered with 404), an error for a callback whose token does not open.
async fn answer_callback(
    stream: TcpStream,
    keys: &StrapKeys,
) -> Result<Option<String>, ClientError> {
    let mut reader = BufReader::new(stream);
    let request = tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut reader)).await;
    let Ok(Ok(line)) = request else {
        debug!("A connection to the single-sign-on port sent no request");
        return Ok(None);
    };
    let callback = match sso::parse_callback(&line) {
        Ok(callback) => callback,
        Err(e) => {
            debug!("Not the single-sign-on answer: {e}");
            let _ = reader.get_mut().write_all(&sso::not_found_reply()).await;
            return Ok(None);
        }
    };
    debug!("Got a sealed SSO token of {} bytes", callback.blob.len());
    let token = open(&callback.blob, keys);
    let reply = match &token {
        Ok(_) => sso::callback_reply(callback.return_url.as_deref()),
        Err(_) => sso::not_found_reply(),
    };
    let _ = reader.get_mut().write_all(&reply).await;
    token.map(Some)
}

fn open(blob: &[u8], keys: &StrapKeys) -> Result<String, ClientError> {
    let bad = |e: SsoError| ClientError::AuthAborted(format!("Failed to decode SSO token: {e}"));
    let sealed = EncryptedToken::parse(blob).map_err(bad)?;
    let token = keys.open_token(&sealed)?;
    sso::check_token(&token).map_err(bad)
}

/// The request line (at most [`sso::MAX_CALLBACK_LINE`] bytes), the headers read past.
async fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Vec<u8>> {
    let mut limited = reader.take(MAX_REQUEST_BYTES);
    let mut line = Vec::new();
    (&mut limited)
        .take(sso::MAX_CALLBACK_LINE as u64)
        .read_until(b'\n', &mut line)
        .await?;
    let mut header = Vec::new();
    loop {
        header.clear();
        let n = limited.read_until(b'\n', &mut header).await?;
        if n == 0 || header.trim_ascii().is_empty() {
            break;
        }
    }
    while line.last().is_some_and(|b| matches!(b, b'\r' | b'\n')) {
        line.pop();
    }
    Ok(line)
}

/// `--external-browser`, else `xdg-open` when it is in `PATH` (openconnect's default).
fn browser_command(given: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = given {
        return Some(path.to_path_buf());
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join("xdg-open"))
        .find(|candidate| candidate.is_file())
}

/// Starts the browser with the URL; its output goes to stderr, since stdout may carry
/// `--authenticate`'s answer (as openconnect 9.x does). It is not waited for.
fn start_browser(command: &Path, url: &str) {
    let stdout = match std::io::stderr().as_fd().try_clone_to_owned() {
        Ok(fd) => Stdio::from(fd),
        Err(_) => Stdio::null(),
    };
    match tokio::process::Command::new(command)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(stdout)
        .spawn()
    {
        Ok(mut child) => {
            debug!("Started browser {}", command.display());
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
        }
        Err(e) => warn!(
            "Failed to start the browser {} for {url}: {e}; open the URL yourself",
            command.display()
        ),
    }
}
