//! What the vendor test gateways (`src/bin/*_gateway.rs`) have in common: logging to stderr
//! and a file, the options they all take and `main` around them, the TLS listener serving
//! each connection's pages until one becomes a tunnel ([`Site`]), bounded HTTP request
//! reading (the tunnel request may be followed by PPP at once), form decoding, and the PPP
//! session that carries packets between a client's TLS connection and a tun device.
//!
//! Each gateway keeps its own pages, sessions and cookies; this module knows nothing of any
//! vendor. Nothing here panics on what a client sends.

use std::collections::VecDeque;
use std::fmt::{self, Display};
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use oc_net::{open_tun, Coalescer, TunReader, TunWriter};
use oc_proto::http::server::{
    Method, RequestError, RequestLimits, RequestReader, ServerRequest, ServerResponse,
};
use oc_proto::ppp::{Assignment, Encapsulation, Ppp, PppConfig, PppEvent, PppNetwork, Role};
use openssl::ssl::{Ssl, SslAcceptor, SslFiletype, SslMethod};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_openssl::SslStream;
use tun_rs::AsyncDevice;

/// A client's TLS connection.
pub type Tls = SslStream<TcpStream>;

/// The TLS handshake and each HTTP request must finish within this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; more are closed on arrival.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a connection whose PPP closed may stay open for the client to close it.
pub const LINGER: Duration = Duration::from_secs(10);
/// Form fields read from one body or query string.
pub const MAX_FORM_FIELDS: usize = 32;
/// The gateways' PPP MRU: the tunnel MTU they ask the client for.
pub const PPP_MTU: u16 = 1400;
/// Sessions, cookies and pending challenges a gateway remembers (oldest forgotten first).
pub const MAX_REMEMBERED: usize = 64;
/// The most plaintext one TLS record carries: a write of at most this is one record.
const TLS_RECORD: usize = 16 * 1024;

// ---------------------------------------------------------------------------------------
// Logging

static START: OnceLock<Instant> = OnceLock::new();
static PROGRAM: OnceLock<&'static str> = OnceLock::new();
static LOG_FILE: OnceLock<Mutex<File>> = OnceLock::new();

/// Names the program in every log line and opens `file` (appending) when given. Call once,
/// first thing in `main`.
pub fn init_log(program: &'static str, file: Option<&Path>) -> Result<(), String> {
    START.get_or_init(Instant::now);
    let _ = PROGRAM.set(program);
    if let Some(path) = file {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let _ = LOG_FILE.set(Mutex::new(file));
    }
    Ok(())
}

/// One log line, with seconds since start, to stderr and the log file.
pub fn log_line(args: fmt::Arguments<'_>) {
    let elapsed = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    let program = PROGRAM.get().copied().unwrap_or("gateway");
    let line = format!("[{elapsed:8.3}] {program}: {args}");
    // Not eprintln!: a closed stderr must not panic the gateway.
    let _ = writeln!(std::io::stderr(), "{line}");
    if let Some(file) = LOG_FILE.get() {
        let _ = writeln!(lock(file), "{line}");
    }
}

macro_rules! log {
    ($($arg:tt)*) => { log_line(format_args!($($arg)*)) };
}

/// A poisoned lock only means another task panicked mid-update; the data is still usable
/// for a test gateway, and refusing service would hide the first failure.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------
// Command line

/// An option's name and its value (`None` for a flag).
pub type OptionArg = (String, Option<String>);

/// The arguments as `(name, value)` pairs: `--name value` and `--name=value` both give a
/// value, the names in `flags` take none. `None` when `--help` (or `-h`) was asked for.
pub fn split_options(
    mut args: impl Iterator<Item = String>,
    flags: &[&str],
) -> Result<Option<Vec<OptionArg>>, String> {
    let mut options = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "--help" || arg == "-h" {
            return Ok(None);
        }
        if flags.contains(&arg.as_str()) {
            options.push((arg, None));
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (arg, None),
        };
        if !name.starts_with("--") {
            return Err(format!("unexpected argument {name:?}"));
        }
        let value = match inline.or_else(|| args.next()) {
            Some(v) => v,
            None => return Err(format!("{name} needs a value")),
        };
        options.push((name, Some(value)));
    }
    Ok(Some(options))
}

pub fn parse_value<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, String>
where
    T::Err: Display,
{
    value.parse().map_err(|e| format!("{name} {value:?}: {e}"))
}

/// `NET/PREFIX` (a bare address is a /32).
pub fn parse_route(value: &str) -> Result<(Ipv4Addr, u8), String> {
    let (net, prefix) = value.split_once('/').unwrap_or((value, "32"));
    let net: Ipv4Addr = parse_value("--route", net)?;
    let prefix: u8 = parse_value("--route prefix", prefix)?;
    if prefix > 32 {
        return Err(format!("--route {value:?}: the prefix is longer than 32"));
    }
    Ok((net, prefix))
}

pub fn netmask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0))
}

/// The options every gateway takes: where it listens and with which certificate, the one
/// user, the addresses and routes it hands out, its tun device and log file.
#[derive(Debug, Clone)]
pub struct Common {
    pub listen: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The one user that may log in, and its password.
    pub user: String,
    pub password: String,
    /// The second factor's code, when one is asked for.
    pub otp: Option<String>,
    /// The gateway's own tunnel address (PPP, tun device).
    pub tunnel_addr: Ipv4Addr,
    /// The address the client is given.
    pub client_addr: Ipv4Addr,
    pub dns: Vec<Ipv4Addr>,
    /// Split-tunnel routes (none: everything goes through the tunnel).
    pub routes: Vec<(Ipv4Addr, u8)>,
    pub tun: String,
    pub log: Option<PathBuf>,
}

/// The common options as given, before the required ones are checked.
#[derive(Debug, Default)]
struct CommonOptions {
    listen: Option<SocketAddr>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    user: Option<String>,
    password: Option<String>,
    otp: Option<String>,
    tunnel_addr: Option<Ipv4Addr>,
    client_addr: Option<Ipv4Addr>,
    dns: Vec<Ipv4Addr>,
    routes: Vec<(Ipv4Addr, u8)>,
    tun: Option<String>,
    log: Option<PathBuf>,
}

impl CommonOptions {
    /// Takes the option `name` if it is a common one; `false` if it is not.
    fn set(&mut self, name: &str, value: &str) -> Result<bool, String> {
        let text = || value.to_string();
        match name {
            "--listen" => self.listen = Some(parse_value(name, value)?),
            "--cert" => self.cert = Some(PathBuf::from(value)),
            "--key" => self.key = Some(PathBuf::from(value)),
            "--user" => self.user = Some(text()),
            "--password" => self.password = Some(text()),
            "--otp" => self.otp = Some(text()),
            "--tunnel-addr" => self.tunnel_addr = Some(parse_value(name, value)?),
            "--client-addr" => self.client_addr = Some(parse_value(name, value)?),
            "--dns" => self.dns.push(parse_value(name, value)?),
            "--route" => self.routes.push(parse_route(value)?),
            "--tun" => self.tun = Some(text()),
            "--log" => self.log = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn finish(self, default_tun: &str) -> Result<Common, String> {
        fn required<T>(value: Option<T>, name: &str) -> Result<T, String> {
            value.ok_or_else(|| format!("{name} is required"))
        }
        let common = Common {
            listen: required(self.listen, "--listen")?,
            cert: required(self.cert, "--cert")?,
            key: required(self.key, "--key")?,
            user: required(self.user, "--user")?,
            password: required(self.password, "--password")?,
            otp: self.otp,
            tunnel_addr: required(self.tunnel_addr, "--tunnel-addr")?,
            client_addr: required(self.client_addr, "--client-addr")?,
            dns: self.dns,
            routes: self.routes,
            tun: self.tun.unwrap_or_else(|| default_tun.to_string()),
            log: self.log,
        };
        if common.tunnel_addr == common.client_addr {
            return Err("--tunnel-addr and --client-addr must differ".into());
        }
        Ok(common)
    }
}

/// Parses a gateway's command line ([`split_options`]): the common options, and the
/// gateway's own through `own` (the name, and the value unless the name is one of `flags`),
/// which says whether it knew the name. The tun device is `default_tun` unless `--tun` names
/// one. `None` when `--help` was asked for.
pub fn parse_command_line(
    args: impl Iterator<Item = String>,
    flags: &[&str],
    default_tun: &str,
    mut own: impl FnMut(&str, Option<&str>) -> bool,
) -> Result<Option<Common>, String> {
    let Some(options) = split_options(args, flags)? else {
        return Ok(None);
    };
    let mut common = CommonOptions::default();
    for (name, value) in options {
        let known = match &value {
            Some(value) => common.set(&name, value)?,
            None => false,
        };
        if !known && !own(&name, value.as_deref()) {
            return Err(format!("unknown option {name}"));
        }
    }
    common.finish(default_tun).map(Some)
}

/// A gateway's `main`: `parse` reads the command line; its usage goes out for `--help` (to
/// stdout) or after an error (to stderr, exit status 2). Then the log starts (to stderr and
/// the configuration's log file), the gateway opens what it needs ([`listen`]), `make`
/// builds its site from the configuration and the tun device, and it serves
/// ([`serve_site`]) for ever on a single-threaded runtime: it returns only on a fatal error.
pub fn main<C, S>(
    program: &'static str,
    usage: &str,
    parse: impl FnOnce(std::iter::Skip<std::env::Args>) -> Result<Option<C>, String>,
    make: impl FnOnce(C, TunLink) -> S,
) -> ExitCode
where
    C: AsRef<Common>,
    S: Site,
{
    let config = match parse(std::env::args().skip(1)) {
        Ok(Some(config)) => config,
        Ok(None) => {
            let _ = writeln!(std::io::stdout(), "{usage}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "{program}: {e}\n\n{usage}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = init_log(program, config.as_ref().log.as_deref()) {
        log!("{e}");
        return ExitCode::FAILURE;
    }
    let serve = async {
        let (acceptor, link, listener) = listen(config.as_ref()).await?;
        let site = Arc::new(make(config, link));
        serve_site(&listener, acceptor, site).await;
        Ok(())
    };
    match runtime().and_then(|runtime| runtime.block_on(serve)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log!("fatal: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A single-threaded runtime for `main` to block on.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

// ---------------------------------------------------------------------------------------
// Randomness and memory

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // OpenSSL fails here only when it cannot seed, and then the TLS handshakes would fail
    // too; zeroes would still make a working test value.
    let _ = openssl::rand::rand_bytes(&mut buf);
    buf
}

pub fn random_hex<const N: usize>() -> String {
    random_bytes::<N>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Appends `item`, forgetting the oldest when [`MAX_REMEMBERED`] are already there.
pub fn remember<T>(list: &mut VecDeque<T>, item: T) {
    if list.len() >= MAX_REMEMBERED {
        list.pop_front();
    }
    list.push_back(item);
}

// ---------------------------------------------------------------------------------------
// Listening

/// What a gateway opens before it serves, in this order: the TLS acceptor for its
/// certificate, its tun device, and the listening socket.
pub async fn listen(common: &Common) -> Result<(SslAcceptor, TunLink, TcpListener), String> {
    let acceptor = tls_acceptor(&common.cert, &common.key)?;
    let link = TunLink::open(&common.tun)?;
    let listener = TcpListener::bind(common.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", common.listen))?;
    Ok((acceptor, link, listener))
}

/// A gateway's own part of serving a connection: its pages, and the tunnel a request may
/// turn the connection into.
pub trait Site: Send + Sync + 'static {
    /// What [`Site::answer`] hands [`Site::tunnel`] when a request asks for the tunnel.
    type Upgrade: Send;

    /// The bounds of each request read.
    fn limits(&self) -> RequestLimits;

    fn answer(&self, peer: SocketAddr, request: &ServerRequest) -> Answer<Self::Upgrade>;

    /// Runs the tunnel on the connection; the reason it ended.
    fn tunnel(
        &self,
        tunnel: Upgraded<Self::Upgrade>,
    ) -> impl Future<Output = Result<String, String>> + Send;
}

/// Accepts connections for ever ([`accept_loop`]), serving each: the TLS handshake with
/// `acceptor`, then `site`'s pages until the connection closes or a request turns it into a
/// tunnel.
pub async fn serve_site<S: Site>(listener: &TcpListener, acceptor: SslAcceptor, site: Arc<S>) {
    let acceptor = Arc::new(acceptor);
    accept_loop(listener, |tcp, peer| {
        let (acceptor, site) = (Arc::clone(&acceptor), Arc::clone(&site));
        async move { serve_connection(&acceptor, &*site, tcp, peer).await }
    })
    .await;
}

async fn serve_connection<S: Site>(
    acceptor: &SslAcceptor,
    site: &S,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Result<String, String> {
    let tls = accept_tls(acceptor, tcp).await?;
    let served = serve_http(tls, peer, site.limits(), |request| {
        site.answer(peer, request)
    })
    .await?;
    match served {
        Served::Closed(why) => Ok(why),
        Served::Upgraded(tunnel) => site.tunnel(tunnel).await,
    }
}

pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<SslAcceptor, String> {
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
        .map_err(|e| format!("TLS set-up: {e}"))?;
    builder
        .set_certificate_chain_file(cert)
        .map_err(|e| format!("certificate {}: {e}", cert.display()))?;
    builder
        .set_private_key_file(key, SslFiletype::PEM)
        .map_err(|e| format!("key {}: {e}", key.display()))?;
    builder
        .check_private_key()
        .map_err(|e| format!("the key does not match the certificate: {e}"))?;
    Ok(builder.build())
}

/// The server side of the TLS handshake, bounded by [`REQUEST_TIMEOUT`].
pub async fn accept_tls(acceptor: &SslAcceptor, tcp: TcpStream) -> Result<Tls, String> {
    let ssl = Ssl::new(acceptor.context()).map_err(|e| format!("TLS: {e}"))?;
    let mut tls = SslStream::new(ssl, tcp).map_err(|e| format!("TLS: {e}"))?;
    tokio::time::timeout(REQUEST_TIMEOUT, Pin::new(&mut tls).accept())
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS handshake: {e}"))?;
    Ok(tls)
}

/// Accepts connections for ever, each served by `serve` in its own task (at most
/// [`MAX_CONNECTIONS`] at once); logs how each ended.
pub async fn accept_loop<F, Fut>(listener: &TcpListener, serve: F)
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = Result<String, String>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: wait rather than spin.
                log!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            log!("{peer}: refused, {MAX_CONNECTIONS} connections already open");
            continue;
        };
        let served = serve(tcp, peer);
        tokio::spawn(async move {
            let _slot = slot;
            match served.await {
                Ok(end) => log!("{peer}: connection ended: {end}"),
                Err(e) => log!("{peer}: connection failed: {e}"),
            }
        });
    }
}

// ---------------------------------------------------------------------------------------
// HTTP

/// What to do with a request.
#[derive(Debug)]
pub enum Answer<T> {
    /// Send this and wait for the next request.
    Reply(ServerResponse),
    /// Send this and close the connection.
    Final(ServerResponse),
    /// The connection becomes a tunnel: the caller takes it over with `T`.
    Upgrade(T),
}

/// How [`serve_http`] ended without an error.
#[derive(Debug)]
pub enum Served<T> {
    /// The connection is over (the reason).
    Closed(String),
    /// A request asked for the tunnel.
    Upgraded(Upgraded<T>),
}

/// A connection whose request asked for the tunnel.
#[derive(Debug)]
pub struct Upgraded<T> {
    pub tls: Tls,
    pub peer: SocketAddr,
    /// What the answer to the request decided.
    pub upgrade: T,
    /// What the client sent after its request.
    pub early: Vec<u8>,
}

/// Serves requests on one connection, logging each, until it closes, an answer is final,
/// or one becomes a tunnel.
pub async fn serve_http<T>(
    mut tls: Tls,
    peer: SocketAddr,
    limits: RequestLimits,
    mut answer: impl FnMut(&ServerRequest) -> Answer<T>,
) -> Result<Served<T>, String> {
    let mut pending = Vec::new();
    loop {
        let read = tokio::time::timeout(
            REQUEST_TIMEOUT,
            read_request(&mut tls, &mut pending, limits),
        )
        .await
        .map_err(|_| "no complete request in time".to_string())?;
        let (request, early) = match read {
            Ok(Some(read)) => read,
            Ok(None) => return Ok(Served::Closed("closed by the client".into())),
            Err(ReadError::Http(e)) => {
                let (status, reason) = e.status();
                send(&mut tls, peer, &ServerResponse::new(status, reason)).await?;
                return Err(format!("bad request: {e}"));
            }
            Err(ReadError::Io(e)) => return Err(e),
        };
        log!(
            "{peer}: {} {}",
            method_name(&request.method),
            request.target.escape_debug()
        );
        match answer(&request) {
            Answer::Reply(response) => send(&mut tls, peer, &response).await?,
            Answer::Final(response) => {
                send(&mut tls, peer, &response).await?;
                let _ = tls.shutdown().await;
                return Ok(Served::Closed("closed after the answer".into()));
            }
            Answer::Upgrade(upgrade) => {
                return Ok(Served::Upgraded(Upgraded {
                    tls,
                    peer,
                    upgrade,
                    early,
                }))
            }
        }
        // A request without a body may have been followed by the next one.
        pending = early;
    }
}

pub fn method_name(method: &Method) -> &str {
    match method {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Connect => "CONNECT",
        Method::Other(name) => name,
    }
}

/// Writes `response` (logging its status line).
pub async fn send(
    tls: &mut Tls,
    peer: SocketAddr,
    response: &ServerResponse,
) -> Result<(), String> {
    log!("{peer}: -> {} {}", response.status, response.reason);
    let mut out = Vec::new();
    response.emit(&mut out);
    tls.write_all(&out)
        .await
        .map_err(|e| format!("sending the response: {e}"))?;
    tls.flush()
        .await
        .map_err(|e| format!("sending the response: {e}"))
}

pub fn text(status: u16, reason: &str, content_type: &str, body: &str) -> ServerResponse {
    ServerResponse::new(status, reason)
        .header("Content-Type", content_type)
        .body(body.as_bytes().to_vec())
}

pub fn redirect(to: &str) -> ServerResponse {
    ServerResponse::new(302, "Found").header("Location", to)
}

#[derive(Debug)]
pub enum ReadError {
    /// A request the codec refused: answer with its status, then close.
    Http(RequestError),
    Io(String),
}

impl From<RequestError> for ReadError {
    fn from(e: RequestError) -> Self {
        Self::Http(e)
    }
}

/// Reads one request; `None` if the client closed between requests. Also returns what
/// came after a request without a body: a tunnel request may be followed by PPP at once,
/// which the codec (rightly, for HTTP) would refuse as pipelining, so the head is framed
/// here and only the head and body go to the codec.
pub async fn read_request(
    tls: &mut Tls,
    pending: &mut Vec<u8>,
    limits: RequestLimits,
) -> Result<Option<(ServerRequest, Vec<u8>)>, ReadError> {
    let max_head = limits.max_head_bytes;
    let head_len = loop {
        if let Some(at) = find(pending, b"\r\n\r\n") {
            break at + 4;
        }
        if pending.len() > max_head {
            return Err(RequestError::HeadTooLarge { limit: max_head }.into());
        }
        if read_more(tls, pending).await? == 0 {
            return match pending.is_empty() {
                true => Ok(None),
                false => Err(ReadError::Io("connection closed mid-request".into())),
            };
        }
    };
    let after_head = pending.split_off(head_len);
    let mut reader = RequestReader::new(limits);
    reader.feed(pending)?;
    pending.clear();
    if let Some(request) = reader.poll()? {
        return Ok(Some((request, after_head)));
    }
    // A body follows: the codec frames it by Content-Length (and bounds it).
    reader.feed(&after_head)?;
    loop {
        if let Some(request) = reader.poll()? {
            return Ok(Some((request, Vec::new())));
        }
        let mut more = Vec::new();
        if read_more(tls, &mut more).await? == 0 {
            return Err(ReadError::Io("connection closed mid-body".into()));
        }
        reader.feed(&more)?;
    }
}

async fn read_more(tls: &mut Tls, into: &mut Vec<u8>) -> Result<usize, ReadError> {
    let mut chunk = [0u8; 4096];
    let n = tls
        .read(&mut chunk)
        .await
        .map_err(|e| ReadError::Io(format!("reading: {e}")))?;
    into.extend_from_slice(chunk.get(..n).unwrap_or_default());
    Ok(n)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------
// Forms

/// `application/x-www-form-urlencoded` fields (a body or a query string), decoded, at most
/// [`MAX_FORM_FIELDS`].
pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .take(MAX_FORM_FIELDS)
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(name), form_decode(value))
        })
        .collect()
}

/// The fields of a request target's query string.
pub fn parse_query(target: &str) -> Vec<(String, String)> {
    target
        .split_once('?')
        .map(|(_, query)| parse_form(query.as_bytes()))
        .unwrap_or_default()
}

/// `+` is a space and `%XX` a byte; a malformed escape is kept as it came.
pub fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|_| b == b'%')
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (b, escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
                continue;
            }
            (b'+', None) => out.push(b' '),
            (other, None) => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The form's field names and values for the log, those named in `secret` masked, all
/// escaped (a client's newline must not forge a log line).
pub fn describe_form(form: &[(String, String)], secret: &[&str]) -> String {
    form.iter()
        .map(|(name, value)| match secret.contains(&name.as_str()) {
            true => format!("{}=<{} bytes>", name.escape_debug(), value.len()),
            false => format!("{}={}", name.escape_debug(), value.escape_debug()),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// `text` safe inside HTML text and attribute values.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// The tunnel: PPP between a TLS connection and the tun device

/// The gateway's tun device and which tunnel session owns it. One tunnel runs at a time: a
/// new one (or a logout) bumps the generation, and a session whose number is no longer
/// current ends.
pub struct TunLink {
    tun: AsyncDevice,
    name: String,
    /// Held by the session reading the tun device, so a replacing session only starts
    /// reading once the old one has let go.
    owner: tokio::sync::Mutex<()>,
    generation: watch::Sender<u64>,
}

impl fmt::Debug for TunLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunLink")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The PPP configuration of a gateway on a reliable channel: its own tunnel address, the
/// client's, the DNS servers offered, no IPv6, a random magic.
pub fn gateway_ppp(encapsulation: Encapsulation, common: &Common) -> PppConfig {
    PppConfig {
        encapsulation,
        role: Role::Gateway(Assignment {
            peer_ipv4: Some(common.client_addr),
            dns: common.dns.clone(),
            peer_interface_id: None,
        }),
        want_ipv4: true,
        want_ipv6: false,
        mtu: PPP_MTU,
        magic: u32::from_be_bytes(random_bytes()),
        ipv4: Some(common.tunnel_addr),
        ipv6: None,
        ask_name_servers: false,
        reliable: true,
        dpd: None,
        keepalive: None,
    }
}

impl TunLink {
    /// Creates the tun device `name` (it gets its addresses when PPP comes up).
    pub fn open(name: &str) -> Result<Self, String> {
        let (tun, name) = open_tun(Some(name)).map_err(|e| format!("tun device {name}: {e}"))?;
        let (generation, _) = watch::channel(0);
        Ok(Self {
            tun,
            name,
            owner: tokio::sync::Mutex::new(()),
            generation,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Makes the caller the current tunnel: its generation number for [`TunLink::run`].
    pub fn claim(&self) -> u64 {
        self.generation.send_modify(|g| *g += 1);
        *self.generation.borrow()
    }

    /// Ends the running tunnel, if any (a logout).
    pub fn end_current(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// Runs PPP with `config` on the connection until the link closes, the client goes, or
    /// a newer tunnel replaces this one (`generation` from [`TunLink::claim`]); `early` is
    /// what the client sent after its tunnel request, `how` the note on the log line that
    /// says the tunnel starts. After the link closes it lets the client close the
    /// connection first: openconnect takes the server closing first as a lost link and
    /// reconnects instead of logging out.
    pub async fn run(
        &self,
        tls: Tls,
        peer: SocketAddr,
        early: &[u8],
        config: PppConfig,
        generation: u64,
        how: &str,
    ) -> Result<String, String> {
        let mut changes = self.generation.subscribe();
        log!("{peer}: tunnel {generation} starting PPP ({how})");
        let (end, tls) = {
            // Waits for a replaced session to stop reading the tun device.
            let _owner = self.owner.lock().await;
            let mut session = Session::new(self, tls, peer, config);
            session.input(early)?;
            match session.run(generation, &mut changes).await? {
                Ended::Closed(why) => (why, session.tls),
                Ended::Replaced => {
                    return Ok(session
                        .end("replaced by a newer tunnel or logged out")
                        .await)
                }
            }
        };
        log!("{peer}: {end}; waiting for the client to close the connection");
        Ok(format!("{end}, then {}", linger(tls).await))
    }
}

/// Reads until the client closes (at most [`LINGER`]), then closes.
async fn linger(mut tls: Tls) -> String {
    let mut buf = vec![0u8; 16 * 1024];
    let drain = async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) => return "closed by the client".to_string(),
                Ok(_) => {}
                Err(e) => return format!("read error {e}"),
            }
        }
    };
    let why = tokio::time::timeout(LINGER, drain)
        .await
        .unwrap_or_else(|_| format!("still open after {LINGER:?}, closed"));
    let _ = tls.shutdown().await;
    why
}

/// How a session's PPP loop ended.
enum Ended {
    /// The link closed: the client's Terminate-Request, acknowledged.
    Closed(String),
    /// A newer tunnel (or the session's logout) took over.
    Replaced,
}

struct Session<'t> {
    link: &'t TunLink,
    tls: Tls,
    peer: SocketAddr,
    ppp: Ppp,
    /// Packets from the client, written to tun a batch at a time.
    to_tun: TunWriter,
    coalescer: Box<Coalescer>,
    from_tun: TunReader,
    /// Encapsulated packets for the client.
    out: Vec<u8>,
    read_buf: Vec<u8>,
    /// HDLC framing: openconnect 9.01 un-HDLCs each TLS record it reads on its own and
    /// drops a frame that goes on in the next record, so packets are written as records of
    /// whole frames.
    whole_frames_per_record: bool,
    /// Whether IPV6CP came up: until then the kernel's IPv6 chatter on the tun device
    /// (router solicitations) stays off the link.
    ipv6: bool,
}

impl<'t> Session<'t> {
    fn new(link: &'t TunLink, tls: Tls, peer: SocketAddr, config: PppConfig) -> Self {
        Self {
            whole_frames_per_record: config.encapsulation.is_hdlc(),
            link,
            tls,
            peer,
            ppp: Ppp::new(config, Instant::now()),
            to_tun: TunWriter::new(),
            coalescer: Box::default(),
            from_tun: TunReader::new(0),
            out: Vec::new(),
            read_buf: vec![0; 64 * 1024],
            ipv6: false,
        }
    }

    async fn run(
        &mut self,
        generation: u64,
        changes: &mut watch::Receiver<u64>,
    ) -> Result<Ended, String> {
        loop {
            self.flush_transmit().await?;
            if let Some(end) = self.handle_events().await? {
                return Ok(Ended::Closed(end));
            }
            if *changes.borrow_and_update() != generation {
                return Ok(Ended::Replaced);
            }
            self.step(changes).await?;
        }
    }

    /// Waits for one thing to happen: bytes from the client, packets from tun, a PPP timer
    /// or a newer tunnel.
    async fn step(&mut self, changes: &mut watch::Receiver<u64>) -> Result<(), String> {
        let sleep = sleep_until(self.ppp.poll_timeout());
        let tun = &self.link.tun;
        let network = self.ppp.is_network();
        tokio::select! {
            changed = changes.changed() => {
                // The sender lives in the link: an error cannot happen, but if it did
                // there would be no more replacement to wait for.
                let _ = changed;
            }
            read = self.tls.read(&mut self.read_buf) => {
                let n = read.map_err(|e| format!("reading from the client: {e}"))?;
                if n == 0 {
                    return Err("the client closed the connection".into());
                }
                let bytes = self.read_buf.get(..n).unwrap_or_default().to_vec();
                self.input(&bytes)?;
            }
            read = self.from_tun.recv(tun), if network => {
                let count = read.map_err(|e| format!("reading tun: {e}"))?;
                self.send_packets(count).await?;
            }
            () = sleep => {
                self.ppp
                    .handle_timeout(Instant::now())
                    .map_err(|e| format!("PPP: {e}"))?;
            }
        }
        Ok(())
    }

    /// Feeds PPP what the client sent; IP packets go to tun.
    fn input(&mut self, bytes: &[u8]) -> Result<(), String> {
        let Self {
            link,
            ppp,
            to_tun,
            coalescer,
            ..
        } = self;
        let tun = &link.tun;
        let result = ppp.handle_input(bytes, Instant::now(), &mut |packet| {
            if to_tun.is_full() {
                flush_tun(to_tun, tun, coalescer);
            }
            to_tun.push(packet);
        });
        flush_tun(to_tun, tun, coalescer);
        result.map_err(|e| format!("PPP: {e}"))
    }

    async fn send_packets(&mut self, count: usize) -> Result<(), String> {
        self.out.clear();
        let now = Instant::now();
        for i in 0..count {
            let Some(packet) = self.from_tun.framed_mut(i) else {
                continue;
            };
            if packet.first().map(|b| b >> 4) == Some(6) && !self.ipv6 {
                continue;
            }
            let start = self.out.len();
            // Only fails before the network phase, which `step` already waits for.
            let _ = self.ppp.encapsulate_ip(packet, now, &mut self.out);
            if self.whole_frames_per_record && self.out.len() > TLS_RECORD && start > 0 {
                // The frames before this one fill a record of their own.
                let rest = self.out.split_off(start);
                self.write_out().await?;
                self.out = rest;
            }
        }
        self.write_out().await
    }

    /// Writes (and empties) `out`: one TLS record when it holds at most [`TLS_RECORD`]
    /// bytes.
    async fn write_out(&mut self) -> Result<(), String> {
        self.tls
            .write_all(&self.out)
            .await
            .map_err(|e| format!("sending to the client: {e}"))?;
        self.out.clear();
        Ok(())
    }

    async fn flush_transmit(&mut self) -> Result<(), String> {
        while let Some(frame) = self.ppp.poll_transmit() {
            self.tls
                .write_all(&frame)
                .await
                .map_err(|e| format!("sending PPP to the client: {e}"))?;
        }
        Ok(())
    }

    /// Acts on PPP's events; the reason to stop once the link closed.
    async fn handle_events(&mut self) -> Result<Option<String>, String> {
        while let Some(event) = self.ppp.poll_event() {
            match event {
                PppEvent::Log(line) => log!("{}: PPP: {line}", self.peer),
                PppEvent::NetworkUp(network) => {
                    log!("{}: PPP network up: {}", self.peer, describe(&network));
                    self.ipv6 = network.ipv6.is_some();
                    configure_tun(&self.link.name, &network).await?;
                }
                PppEvent::Closed(closed) => {
                    return Ok(Some(format!("PPP closed: {closed:?}")));
                }
            }
        }
        Ok(None)
    }

    /// Ends the link politely (a Terminate-Request) and gives `why`.
    async fn end(mut self, why: &str) -> String {
        self.ppp.terminate(Instant::now());
        let _ = self.flush_transmit().await;
        let _ = self.tls.shutdown().await;
        why.to_string()
    }
}

fn flush_tun(to_tun: &mut TunWriter, tun: &AsyncDevice, coalescer: &mut Coalescer) {
    if to_tun.is_empty() {
        return;
    }
    // A refused write loses the batch, as a router would; say so for the test's log.
    if let Err(e) = to_tun.flush(tun, coalescer) {
        log!("writing to tun: {e}");
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

fn describe(network: &PppNetwork) -> String {
    let show = |ip: Option<Ipv4Addr>| ip.map_or("-".to_string(), |ip| ip.to_string());
    format!(
        "gateway {}, client {}, dns {:?}, mtu {}",
        show(network.ipv4),
        show(network.peer_ipv4),
        network.dns,
        network.mtu
    )
}

/// Gives the tun device the agreed point-to-point addresses and MTU, and brings it up.
async fn configure_tun(tun: &str, network: &PppNetwork) -> Result<(), String> {
    let (Some(local), Some(peer)) = (network.ipv4, network.peer_ipv4) else {
        return Err("PPP came up without IPv4 addresses".into());
    };
    let mtu = network.mtu.to_string();
    let (local, peer) = (local.to_string(), format!("{peer}/32"));
    run_ip(&["addr", "replace", &local, "peer", &peer, "dev", tun]).await?;
    run_ip(&["link", "set", "dev", tun, "mtu", &mtu, "up"]).await
}

async fn run_ip(args: &[&str]) -> Result<(), String> {
    let out = tokio::process::Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("running ip: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    log!("ip {}", args.join(" "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_take_values_inline_or_next_and_flags_alone() {
        let args = ["--a", "1", "--b=2", "--flag", "--c", "x=y"].map(str::to_string);
        let got = split_options(args.into_iter(), &["--flag"])
            .unwrap()
            .unwrap();
        let want: Vec<OptionArg> = vec![
            ("--a".into(), Some("1".into())),
            ("--b".into(), Some("2".into())),
            ("--flag".into(), None),
            ("--c".into(), Some("x=y".into())),
        ];
        assert_eq!(got, want);
        assert!(split_options(["--a".to_string()].into_iter(), &[]).is_err());
        assert!(split_options(["stray".to_string()].into_iter(), &[]).is_err());
        assert!(split_options(["-h".to_string()].into_iter(), &[])
            .unwrap()
            .is_none());
    }

    #[test]
    fn the_command_line_splits_into_common_and_own_options() {
        let args = |line: &str| line.split(' ').map(str::to_string).collect::<Vec<_>>();
        let required = "--listen 10.0.0.1:443 --cert c.pem --key k.pem --user u --password p \
                        --tunnel-addr 10.1.0.1 --client-addr 10.1.0.2";
        let parse = |line: &str| {
            let mut own = Vec::new();
            let parsed = parse_command_line(args(line).into_iter(), &["--flag"], "tun9", |n, v| {
                own.push((n.to_string(), v.map(str::to_string)));
                n == "--flag" || n == "--mine"
            });
            (parsed, own)
        };
        let (common, own) = parse(&format!("{required} --dns=10.2.0.1 --flag --mine x"));
        let common = common.unwrap().unwrap();
        assert_eq!(common.user, "u");
        assert_eq!(common.dns, [Ipv4Addr::new(10, 2, 0, 1)]);
        assert_eq!(common.tun, "tun9");
        let want = [("--flag".into(), None), ("--mine".into(), Some("x".into()))];
        assert_eq!(own, want);
        let error = |line: &str| parse(line).0.unwrap_err();
        assert_eq!(
            error(&format!("{required} --other 1")),
            "unknown option --other"
        );
        assert_eq!(error("--user u"), "--listen is required");
        let same = format!("{required} --client-addr 10.1.0.1");
        assert_eq!(error(&same), "--tunnel-addr and --client-addr must differ");
        assert!(parse("--help").0.unwrap().is_none());
    }

    #[test]
    fn forms_and_queries_decode() {
        let form = parse_form(b"username=al+ice&password=a%26b%3D&bad=%zz&empty");
        assert_eq!(field(&form, "username"), Some("al ice"));
        assert_eq!(field(&form, "password"), Some("a&b="));
        assert_eq!(field(&form, "bad"), Some("%zz"));
        assert_eq!(field(&form, "empty"), Some(""));
        let query = parse_query("/myvpn?sess=ab&Z=1%2F2");
        assert_eq!(field(&query, "Z"), Some("1/2"));
        assert!(parse_query("/myvpn").is_empty());
        assert_eq!(
            describe_form(&form[..2], &["password"]),
            "username=al ice&password=<4 bytes>"
        );
    }

    #[test]
    fn html_is_escaped_and_masks_are_computed() {
        assert_eq!(
            html_escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(netmask(0), Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            parse_route("10.0.0.0/8").unwrap(),
            (Ipv4Addr::new(10, 0, 0, 0), 8)
        );
        assert!(parse_route("10.0.0.0/33").is_err());
    }
}
