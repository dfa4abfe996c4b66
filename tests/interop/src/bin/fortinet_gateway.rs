//! `fortinet_gateway`: a test gateway speaking FortiGate SSL-VPN tunnel mode (HTTPS login,
//! the XML configuration, then PPP over the same TLS port), enough for openconnect's
//! `--protocol=fortinet` to log in and pass traffic. It is test code: one user, one tunnel
//! at a time, no DTLS, no persistence.
//!
//! ```text
//! fortinet_gateway --listen ADDR:PORT --cert PEM --key PEM --user NAME --password PASS
//!                  --tunnel-addr IPV4 --client-addr IPV4 [--otp CODE] [--dns IPV4]...
//!                  [--route NET/PREFIX]... [--tun NAME] [--log FILE]
//! ```
//!
//! Run it as root in the namespace that should own the tun device. It prints
//! `listening on https://ADDR:PORT` once it accepts connections, and logs every request,
//! login outcome and PPP event to stderr (and to `--log FILE` when given).
//!
//! What it answers, as a FortiGate does:
//! - `GET /` redirects to `/remote/login`, a plain page;
//! - `POST /remote/logincheck` (`username`, `credential`): `200 ret=1,...` with the
//!   `SVPNCOOKIE` cookie, or `405` for wrong credentials. With `--otp CODE` a good password
//!   gets the token challenge (`ret=2,reqid=..,...,tokeninfo=,chal_msg=..`) and only a
//!   second post carrying `code=CODE` and the parroted `reqid` and `magic` gets the cookie;
//! - `GET /remote/fortisslvpn_xml` with the cookie: the tunnel configuration (the client's
//!   address, DNS servers, split routes; `dtls="0"`, so the client stays on TLS);
//! - `GET /remote/sslvpn-tunnel` with the cookie: no HTTP answer at all, PPP starts on the
//!   stream (Fortinet encapsulation). The tun device gets its addresses and MTU once IPCP
//!   is open, and packets flow between it and PPP. A new tunnel replaces the old one;
//! - `GET /remote/logout`: the cookie is forgotten (and its tunnel ended).
//!
//! Without a valid cookie the XML and tunnel requests get `403`.

use std::collections::VecDeque;
use std::fmt::{self, Display};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use oc_net::{open_tun, Coalescer, TunReader, TunWriter};
use oc_proto::http::server::ServerResponse;
use oc_proto::http::server::{Method, RequestError, RequestLimits, RequestReader, ServerRequest};
use oc_proto::ppp::{Assignment, Encapsulation, Ppp, PppConfig, PppEvent, PppNetwork, Role};
use openssl::ssl::{Ssl, SslAcceptor, SslFiletype, SslMethod};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_openssl::SslStream;
use tun_rs::AsyncDevice;

const USAGE: &str = "\
usage: fortinet_gateway --listen ADDR:PORT --cert PEM --key PEM --user NAME --password PASS
                        --tunnel-addr IPV4 --client-addr IPV4 [options]

A FortiGate SSL-VPN test gateway (tunnel mode: HTTPS login, XML configuration, PPP over TLS)
for openconnect --protocol=fortinet. Run as root in the namespace that gets the tun device.

  --listen ADDR:PORT     where to accept HTTPS (e.g. 198.18.10.1:443)
  --cert PEM, --key PEM  the server certificate (chain) and its private key
  --user NAME            the one user that may log in
  --password PASS        its password
  --otp CODE             also require this token code (FortiGate's tokeninfo challenge)
  --refuse-tunnel        answer every tunnel request with 403, as a gateway that no longer
                         accepts the session (the client must exit with status 2)
  --tunnel-addr IPV4     the gateway's own tunnel address (PPP, tun device)
  --client-addr IPV4     the address the client is given (XML assigned-addr, IPCP)
  --dns IPV4             a DNS server to announce (XML and IPCP); may be repeated
  --route NET/PREFIX     a split-tunnel route to announce; may be repeated (none: the
                         client routes everything through the tunnel)
  --tun NAME             the tun device to create (default fortigw0)
  --log FILE             also append the log to FILE (it always goes to stderr)
  --help                 this text

It prints `listening on https://ADDR:PORT` once ready.";

/// The gateway's PPP MRU: the tunnel MTU it asks the client for.
const PPP_MTU: u16 = 1400;
/// TLS handshake and each HTTP request must finish within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; more are closed on arrival.
const MAX_CONNECTIONS: usize = 64;
/// How long a connection whose PPP closed may stay open.
const LINGER: Duration = Duration::from_secs(10);
/// Cookies and pending token challenges remembered (oldest forgotten first).
const MAX_REMEMBERED: usize = 64;
/// Login forms and the like are small.
const MAX_BODY: usize = 16 * 1024;
/// Form fields read from one body.
const MAX_FORM_FIELDS: usize = 32;

// ---------------------------------------------------------------------------------------
// Logging

static START: OnceLock<Instant> = OnceLock::new();
static LOG_FILE: OnceLock<Mutex<File>> = OnceLock::new();

/// One log line, with seconds since start, to stderr and the `--log` file.
fn log_line(args: fmt::Arguments<'_>) {
    let elapsed = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    let line = format!("[{elapsed:8.3}] fortinet_gateway: {args}");
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
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------
// Command line

#[derive(Debug, Clone)]
struct Config {
    listen: SocketAddr,
    cert: PathBuf,
    key: PathBuf,
    user: String,
    password: String,
    otp: Option<String>,
    refuse_tunnel: bool,
    tunnel_addr: Ipv4Addr,
    client_addr: Ipv4Addr,
    dns: Vec<Ipv4Addr>,
    routes: Vec<(Ipv4Addr, u8)>,
    tun: String,
    log: Option<PathBuf>,
}

/// The options as given, before the required ones are checked.
#[derive(Debug, Default)]
struct Options {
    listen: Option<SocketAddr>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    user: Option<String>,
    password: Option<String>,
    otp: Option<String>,
    refuse_tunnel: bool,
    tunnel_addr: Option<Ipv4Addr>,
    client_addr: Option<Ipv4Addr>,
    dns: Vec<Ipv4Addr>,
    routes: Vec<(Ipv4Addr, u8)>,
    tun: Option<String>,
    log: Option<PathBuf>,
}

/// The configuration, or `None` when `--help` was asked for.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Config>, String> {
    let mut o = Options::default();
    while let Some(arg) = args.next() {
        if arg == "--help" || arg == "-h" {
            return Ok(None);
        }
        if arg == "--refuse-tunnel" {
            o.refuse_tunnel = true;
            continue;
        }
        // Both `--name value` and `--name=value`.
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (arg, None),
        };
        let value = match inline.or_else(|| args.next()) {
            Some(v) => v,
            None => return Err(format!("{name} needs a value")),
        };
        set_option(&mut o, &name, &value)?;
    }
    finish_options(o).map(Some)
}

fn set_option(o: &mut Options, name: &str, value: &str) -> Result<(), String> {
    let text = || value.to_string();
    match name {
        "--listen" => o.listen = Some(parse_value(name, value)?),
        "--cert" => o.cert = Some(PathBuf::from(value)),
        "--key" => o.key = Some(PathBuf::from(value)),
        "--user" => o.user = Some(text()),
        "--password" => o.password = Some(text()),
        "--otp" => o.otp = Some(text()),
        "--tunnel-addr" => o.tunnel_addr = Some(parse_value(name, value)?),
        "--client-addr" => o.client_addr = Some(parse_value(name, value)?),
        "--dns" => o.dns.push(parse_value(name, value)?),
        "--route" => o.routes.push(parse_route(value)?),
        "--tun" => o.tun = Some(text()),
        "--log" => o.log = Some(PathBuf::from(value)),
        other => return Err(format!("unknown option {other}")),
    }
    Ok(())
}

fn parse_value<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, String>
where
    T::Err: Display,
{
    value.parse().map_err(|e| format!("{name} {value:?}: {e}"))
}

/// `NET/PREFIX` (a bare address is a /32).
fn parse_route(value: &str) -> Result<(Ipv4Addr, u8), String> {
    let (net, prefix) = value.split_once('/').unwrap_or((value, "32"));
    let net: Ipv4Addr = parse_value("--route", net)?;
    let prefix: u8 = parse_value("--route prefix", prefix)?;
    if prefix > 32 {
        return Err(format!("--route {value:?}: the prefix is longer than 32"));
    }
    Ok((net, prefix))
}

fn finish_options(o: Options) -> Result<Config, String> {
    fn required<T>(value: Option<T>, name: &str) -> Result<T, String> {
        value.ok_or_else(|| format!("{name} is required"))
    }
    let config = Config {
        listen: required(o.listen, "--listen")?,
        cert: required(o.cert, "--cert")?,
        key: required(o.key, "--key")?,
        user: required(o.user, "--user")?,
        password: required(o.password, "--password")?,
        otp: o.otp,
        refuse_tunnel: o.refuse_tunnel,
        tunnel_addr: required(o.tunnel_addr, "--tunnel-addr")?,
        client_addr: required(o.client_addr, "--client-addr")?,
        dns: o.dns,
        routes: o.routes,
        tun: o.tun.unwrap_or_else(|| "fortigw0".to_string()),
        log: o.log,
    };
    if config.tunnel_addr == config.client_addr {
        return Err("--tunnel-addr and --client-addr must differ".into());
    }
    Ok(config)
}

fn main() -> ExitCode {
    START.get_or_init(Instant::now);
    let config = match parse_args(std::env::args().skip(1)) {
        Ok(Some(config)) => config,
        Ok(None) => {
            let _ = writeln!(std::io::stdout(), "{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "fortinet_gateway: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = &config.log {
        match OpenOptions::new().create(true).append(true).open(path) {
            Ok(file) => {
                let _ = LOG_FILE.set(Mutex::new(file));
            }
            Err(e) => {
                log!("cannot open {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log!("fatal: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------
// Shared state

/// A token challenge sent and not yet answered.
#[derive(Debug)]
struct Challenge {
    reqid: String,
    magic: String,
    user: String,
}

#[derive(Debug, Default)]
struct State {
    /// Valid `SVPNCOOKIE` values, oldest first.
    cookies: VecDeque<String>,
    challenges: VecDeque<Challenge>,
    /// The cookie of the tunnel running now.
    tunnel_cookie: Option<String>,
}

struct Gateway {
    config: Config,
    acceptor: SslAcceptor,
    tun: AsyncDevice,
    tun_name: String,
    /// Held by the tunnel session that reads the tun device, so a replacing session only
    /// starts reading once the old one has let go.
    tun_owner: tokio::sync::Mutex<()>,
    /// Bumped for each new tunnel (and a logout of the running one): a session whose
    /// number is no longer current ends.
    tunnel_generation: watch::Sender<u64>,
    state: Mutex<State>,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("config", &self.config)
            .field("tun_name", &self.tun_name)
            .finish_non_exhaustive()
    }
}

fn remember<T>(list: &mut VecDeque<T>, item: T) {
    if list.len() >= MAX_REMEMBERED {
        list.pop_front();
    }
    list.push_back(item);
}

impl Gateway {
    fn cookie_is_valid(&self, cookie: Option<&str>) -> bool {
        cookie.is_some_and(|c| lock(&self.state).cookies.iter().any(|k| k == c))
    }

    fn issue_cookie(&self) -> String {
        let cookie = random_hex::<16>();
        remember(&mut lock(&self.state).cookies, cookie.clone());
        cookie
    }

    /// Forgets `cookie`; ends its tunnel if it runs.
    fn log_out(&self, cookie: &str) -> bool {
        let mut state = lock(&self.state);
        let before = state.cookies.len();
        state.cookies.retain(|c| c != cookie);
        if state.tunnel_cookie.as_deref() == Some(cookie) {
            state.tunnel_cookie = None;
            self.tunnel_generation.send_modify(|g| *g += 1);
        }
        state.cookies.len() != before
    }

    /// Makes the caller the current tunnel: its generation number.
    fn claim_tunnel(&self, cookie: &str) -> u64 {
        let mut state = lock(&self.state);
        state.tunnel_cookie = Some(cookie.to_string());
        self.tunnel_generation.send_modify(|g| *g += 1);
        *self.tunnel_generation.borrow()
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // OpenSSL fails here only when it cannot seed, and then the TLS handshakes that came
    // before would have failed too; zeroes would still make a working test value.
    let _ = openssl::rand::rand_bytes(&mut buf);
    buf
}

fn random_hex<const N: usize>() -> String {
    random_bytes::<N>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Listening

async fn serve(config: Config) -> Result<(), String> {
    let acceptor = tls_acceptor(&config)?;
    let (tun, tun_name) =
        open_tun(Some(&config.tun)).map_err(|e| format!("tun device {}: {e}", config.tun))?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let (tunnel_generation, _) = watch::channel(0);
    let gateway = Arc::new(Gateway {
        config,
        acceptor,
        tun,
        tun_name,
        tun_owner: tokio::sync::Mutex::new(()),
        tunnel_generation,
        state: Mutex::new(State::default()),
    });
    log!(
        "listening on https://{} (tun {}, user {}, token {})",
        gateway.config.listen,
        gateway.tun_name,
        gateway.config.user,
        if gateway.config.otp.is_some() {
            "required"
        } else {
            "off"
        }
    );
    accept_loop(&gateway, &listener).await
}

fn tls_acceptor(config: &Config) -> Result<SslAcceptor, String> {
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
        .map_err(|e| format!("TLS set-up: {e}"))?;
    builder
        .set_certificate_chain_file(&config.cert)
        .map_err(|e| format!("certificate {}: {e}", config.cert.display()))?;
    builder
        .set_private_key_file(&config.key, SslFiletype::PEM)
        .map_err(|e| format!("key {}: {e}", config.key.display()))?;
    builder
        .check_private_key()
        .map_err(|e| format!("the key does not match the certificate: {e}"))?;
    Ok(builder.build())
}

async fn accept_loop(gateway: &Arc<Gateway>, listener: &TcpListener) -> Result<(), String> {
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
        let gateway = Arc::clone(gateway);
        tokio::spawn(async move {
            let _slot = slot;
            match connection(&gateway, tcp, peer).await {
                Ok(end) => log!("{peer}: connection ended: {end}"),
                Err(e) => log!("{peer}: connection failed: {e}"),
            }
        });
    }
}

// ---------------------------------------------------------------------------------------
// HTTP

type Tls = SslStream<TcpStream>;

async fn accept_tls(gateway: &Gateway, tcp: TcpStream) -> Result<Tls, String> {
    let ssl = Ssl::new(gateway.acceptor.context()).map_err(|e| format!("TLS: {e}"))?;
    let mut tls = SslStream::new(ssl, tcp).map_err(|e| format!("TLS: {e}"))?;
    tokio::time::timeout(REQUEST_TIMEOUT, Pin::new(&mut tls).accept())
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS handshake: {e}"))?;
    Ok(tls)
}

/// Serves requests on one connection until it closes or becomes a tunnel.
async fn connection(gateway: &Gateway, tcp: TcpStream, peer: SocketAddr) -> Result<String, String> {
    let mut tls = accept_tls(gateway, tcp).await?;
    let mut pending = Vec::new();
    loop {
        let read = tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut tls, &mut pending))
            .await
            .map_err(|_| "no complete request in time".to_string())?;
        let (request, early) = match read {
            Ok(Some(read)) => read,
            Ok(None) => return Ok("closed by the client".into()),
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
            request.target
        );
        match answer(gateway, &request) {
            Answer::Reply(response) => send(&mut tls, peer, &response).await?,
            Answer::Tunnel(cookie) => return tunnel(gateway, tls, peer, &early, cookie).await,
        }
        // A request without a body may have been followed by the next one.
        pending = early;
    }
}

fn method_name(method: &Method) -> &str {
    match method {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Connect => "CONNECT",
        Method::Other(name) => name,
    }
}

async fn send(tls: &mut Tls, peer: SocketAddr, response: &ServerResponse) -> Result<(), String> {
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

#[derive(Debug)]
enum ReadError {
    /// A request the codec refused: answer with its status, then close.
    Http(RequestError),
    Io(String),
}

impl From<RequestError> for ReadError {
    fn from(e: RequestError) -> Self {
        Self::Http(e)
    }
}

fn limits() -> RequestLimits {
    RequestLimits {
        max_body_bytes: MAX_BODY,
        ..RequestLimits::default()
    }
}

/// Reads one request; `None` if the client closed between requests. Also returns what
/// came after a request without a body: the tunnel request is followed by PPP at once,
/// which the codec (rightly, for HTTP) would refuse as pipelining, so the head is framed
/// here and only the head and body go to the codec.
async fn read_request(
    tls: &mut Tls,
    pending: &mut Vec<u8>,
) -> Result<Option<(ServerRequest, Vec<u8>)>, ReadError> {
    let max_head = limits().max_head_bytes;
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
    let mut reader = RequestReader::new(limits());
    reader.feed(pending)?;
    pending.clear();
    if let Some(request) = reader.poll()? {
        return Ok(Some((request, after_head)));
    }
    // A body follows: the codec frames it by Content-Length.
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
// The FortiGate pages

enum Answer {
    Reply(ServerResponse),
    /// Start PPP on this connection for the session with this cookie.
    Tunnel(String),
}

fn answer(gateway: &Gateway, request: &ServerRequest) -> Answer {
    let cookie = request.cookie("SVPNCOOKIE");
    let reply = match (&request.method, request.path()) {
        (Method::Get, "/") => redirect("/remote/login"),
        (Method::Get, "/remote/login") => text(200, "OK", "text/html", "login page"),
        (Method::Post, "/remote/logincheck") => login(gateway, &parse_form(&request.body)),
        (Method::Get, "/remote/fortisslvpn_xml") if gateway.cookie_is_valid(cookie) => {
            text(200, "OK", "application/xml", &tunnel_xml(&gateway.config))
        }
        (Method::Get, "/remote/sslvpn-tunnel")
            if gateway.cookie_is_valid(cookie) && !gateway.config.refuse_tunnel =>
        {
            return Answer::Tunnel(cookie.unwrap_or_default().to_string());
        }
        (Method::Get, "/remote/fortisslvpn_xml" | "/remote/sslvpn-tunnel") => {
            log!("no valid SVPNCOOKIE");
            text(403, "Forbidden", "text/plain", "forbidden")
        }
        (Method::Get, "/remote/logout") => logout(gateway, cookie),
        _ => text(404, "Not Found", "text/plain", "not found"),
    };
    Answer::Reply(reply)
}

fn text(status: u16, reason: &str, content_type: &str, body: &str) -> ServerResponse {
    ServerResponse::new(status, reason)
        .header("Content-Type", content_type)
        .body(body.as_bytes().to_vec())
}

fn redirect(to: &str) -> ServerResponse {
    ServerResponse::new(302, "Found").header("Location", to)
}

fn logout(gateway: &Gateway, cookie: Option<&str>) -> ServerResponse {
    match cookie {
        Some(c) if gateway.log_out(c) => log!("logout: cookie forgotten"),
        _ => log!("logout without a valid cookie"),
    }
    text(200, "OK", "text/html", "successful logout")
}

/// `application/x-www-form-urlencoded` fields, decoded (bounded in number).
fn parse_form(body: &[u8]) -> Vec<(String, String)> {
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

/// `+` is a space and `%XX` a byte; a malformed escape is kept as it came.
fn form_decode(text: &str) -> String {
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

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The form's field names and values, the secret ones masked, for the log (escaped: a
/// client's newline must not forge a log line).
fn describe_form(form: &[(String, String)]) -> String {
    form.iter()
        .map(|(name, value)| {
            let name = name.escape_debug();
            match name.to_string().as_str() {
                "credential" | "code" => format!("{name}=<{} bytes>", value.len()),
                _ => format!("{name}={}", value.escape_debug()),
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// `POST /remote/logincheck`: the password step, or the token step when the form carries
/// a `code`.
fn login(gateway: &Gateway, form: &[(String, String)]) -> ServerResponse {
    log!("logincheck form: {}", describe_form(form));
    let config = &gateway.config;
    let user = field(form, "username").unwrap_or_default();
    if let Some(code) = field(form, "code") {
        return token_step(gateway, form, user, code);
    }
    let password_ok = user == config.user && field(form, "credential") == Some(&config.password);
    if !password_ok {
        log!("login refused for user {user:?}: wrong credentials");
        return refused();
    }
    if config.otp.is_some() {
        return challenge(gateway, user);
    }
    log!("login accepted for user {user:?}");
    logged_in(gateway)
}

/// What a FortiGate answers to wrong credentials.
fn refused() -> ServerResponse {
    text(405, "Method Not Allowed", "text/plain", "login failed")
}

fn logged_in(gateway: &Gateway) -> ServerResponse {
    let cookie = gateway.issue_cookie();
    text(
        200,
        "OK",
        "text/plain",
        "ret=1,redir=/remote/fortisslvpn_xml\n",
    )
    .header(
        "Set-Cookie",
        format!("SVPNCOOKIE={cookie}; path=/; secure; httponly"),
    )
}

/// The password was right: ask for the token code (FortiGate's `tokeninfo` answer).
fn challenge(gateway: &Gateway, user: &str) -> ServerResponse {
    let reqid = u32::from_be_bytes(random_bytes()).to_string();
    let magic = format!("1-{}", random_hex::<8>());
    let body = format!(
        "ret=2,reqid={reqid},polid=1-1-1,grp=ferroconnect,portal=full-access,magic={magic},\
         tokeninfo=,chal_msg=Please enter your token code"
    );
    remember(
        &mut lock(&gateway.state).challenges,
        Challenge {
            reqid: reqid.clone(),
            magic,
            user: user.to_string(),
        },
    );
    log!("password accepted for user {user:?}; token challenge sent (reqid {reqid})");
    text(200, "OK", "text/plain", &body)
}

/// The second post: a pending challenge's `reqid` and `magic`, its user, and the code.
fn token_step(
    gateway: &Gateway,
    form: &[(String, String)],
    user: &str,
    code: &str,
) -> ServerResponse {
    let reqid = field(form, "reqid").unwrap_or_default();
    let magic = field(form, "magic").unwrap_or_default();
    let pending = {
        let mut state = lock(&gateway.state);
        let at = state
            .challenges
            .iter()
            .position(|c| c.reqid == reqid && c.magic == magic && c.user == user);
        at.and_then(|i| state.challenges.remove(i))
    };
    if pending.is_none() {
        log!("token refused for user {user:?}: no such challenge (reqid {reqid:?})");
        return refused();
    }
    if gateway.config.otp.as_deref() != Some(code) {
        log!("token refused for user {user:?}: wrong code");
        return refused();
    }
    log!("token accepted for user {user:?}");
    logged_in(gateway)
}

fn netmask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0))
}

/// The tunnel configuration: only the gateway's own settings go in, so nothing needs
/// escaping.
fn tunnel_xml(config: &Config) -> String {
    let dns: String = config
        .dns
        .iter()
        .map(|ip| format!("    <dns ip=\"{ip}\"/>\n"))
        .collect();
    let split = match config.routes.is_empty() {
        true => String::new(),
        false => {
            let addrs: String = config
                .routes
                .iter()
                .map(|(net, p)| format!("<addr ip=\"{net}\" mask=\"{}\"/>", netmask(*p)))
                .collect();
            format!("    <split-tunnel-info>{addrs}</split-tunnel-info>\n")
        }
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <sslvpn-tunnel ver=\"2\" dtls=\"0\" patch=\"1\">\n  \
         <dtls-config heartbeat-interval=\"10\" heartbeat-fail-count=\"10\" \
         heartbeat-idle-timeout=\"10\" client-hello-timeout=\"10\"/>\n  \
         <tunnel-method value=\"ppp\"/>\n  \
         <fos platform=\"ferroconnect-test\" major=\"7\" minor=\"0\" patch=\"0\" build=\"1\" \
         branch=\"1\"/>\n  \
         <auth-ses tun-connect-without-reauth=\"1\" check-src-ip=\"0\" \
         tun-user-ses-timeout=\"240\"/>\n  \
         <ipv4>\n{dns}    <assigned-addr ipv4=\"{client}\"/>\n{split}  </ipv4>\n  \
         <idle-timeout val=\"3600\"/>\n  \
         <auth-timeout val=\"18000\"/>\n\
         </sslvpn-tunnel>\n",
        client = config.client_addr,
    )
}

// ---------------------------------------------------------------------------------------
// The tunnel

/// Runs PPP on the connection that asked for the tunnel: `early` is what the client sent
/// after its request (it starts LCP without waiting for an answer).
async fn tunnel(
    gateway: &Gateway,
    tls: Tls,
    peer: SocketAddr,
    early: &[u8],
    cookie: String,
) -> Result<String, String> {
    let generation = gateway.claim_tunnel(&cookie);
    let mut changes = gateway.tunnel_generation.subscribe();
    log!("{peer}: tunnel {generation} starting PPP (no HTTP answer, as a FortiGate)");
    let (end, tls) = {
        // Waits for a replaced session to stop reading the tun device.
        let _owner = gateway.tun_owner.lock().await;
        let mut session = Session::new(gateway, tls, peer);
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

/// After PPP closed, lets the client close the connection: openconnect takes the server
/// closing first as a lost link and reconnects instead of logging out.
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

struct Session<'g> {
    gateway: &'g Gateway,
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
}

impl<'g> Session<'g> {
    fn new(gateway: &'g Gateway, tls: Tls, peer: SocketAddr) -> Self {
        let config = &gateway.config;
        let ppp = Ppp::new(
            PppConfig {
                encapsulation: Encapsulation::Fortinet,
                role: Role::Gateway(Assignment {
                    peer_ipv4: Some(config.client_addr),
                    dns: config.dns.clone(),
                    peer_interface_id: None,
                }),
                want_ipv4: true,
                want_ipv6: false,
                mtu: PPP_MTU,
                magic: u32::from_be_bytes(random_bytes()),
                ipv4: Some(config.tunnel_addr),
                ipv6: None,
                ask_name_servers: false,
                reliable: true,
                dpd: None,
                keepalive: None,
            },
            Instant::now(),
        );
        Self {
            gateway,
            tls,
            peer,
            ppp,
            to_tun: TunWriter::new(),
            coalescer: Box::default(),
            from_tun: TunReader::new(0),
            out: Vec::new(),
            read_buf: vec![0; 64 * 1024],
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
        let tun = &self.gateway.tun;
        let network = self.ppp.is_network();
        tokio::select! {
            changed = changes.changed() => {
                // The sender lives in the gateway: an error cannot happen, but if it did
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
            gateway,
            ppp,
            to_tun,
            coalescer,
            ..
        } = self;
        let tun = &gateway.tun;
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
            if let Some(packet) = self.from_tun.framed_mut(i) {
                // Only fails before the network phase, which `step` already waits for.
                let _ = self.ppp.encapsulate_ip(packet, now, &mut self.out);
            }
        }
        self.tls
            .write_all(&self.out)
            .await
            .map_err(|e| format!("sending to the client: {e}"))
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
                    configure_tun(&self.gateway.tun_name, &network).await?;
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
