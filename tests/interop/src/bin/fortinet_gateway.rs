//! `fortinet_gateway`: a test gateway speaking FortiGate SSL-VPN tunnel mode (HTTPS login,
//! the XML configuration, then PPP over DTLS on the same port number, or over TLS), enough
//! for openconnect's `--protocol=fortinet` to log in and pass traffic. It is test code: one
//! user, one tunnel at a time, no persistence.
//!
//! ```text
//! fortinet_gateway --listen ADDR:PORT --cert PEM --key PEM --user NAME --password PASS
//!                  --tunnel-addr IPV4 --client-addr IPV4 [--otp CODE] [--dns IPV4]...
//!                  [--route NET/PREFIX]... [--tun NAME] [--log FILE]
//!                  [--no-dtls | --dtls-refuse] [--html-2fa]
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
//!   with `--html-2fa` too, the good password gets `401` and an HTML page instead, as
//!   some FortiGates send (openconnect's "HTML-type 2FA", since v8.20):
//!   `<form action="/remote/logincheck" method="POST">`, the prompt in a `<b>`, hidden
//!   `magic`, `username`, `reqid` and `grpid`, the code's password field `credential` and
//!   a submit button; only a post of those hidden fields as they came, with
//!   `credential=CODE`, gets the cookie. A wrong code gets `405`, as a wrong password;
//! - `GET /remote/fortisslvpn_xml` with the cookie: the tunnel configuration (the client's
//!   address, DNS servers, split routes; `dtls="1"` and the `dtls-config` heartbeats, or
//!   `dtls="0"` with `--no-dtls`);
//! - `GET /remote/sslvpn-tunnel` with the cookie: no HTTP answer at all, PPP starts on the
//!   stream (Fortinet encapsulation). The tun device gets its addresses and MTU once IPCP
//!   is open, and packets flow between it and PPP. A new tunnel replaces the old one;
//! - `GET /remote/logout`: the cookie is forgotten (and its tunnel ended).
//!
//! Without a valid cookie the XML and tunnel requests get `403`.
//!
//! DTLS (UDP, the HTTPS port): after a certificate handshake the client's first record is
//! its `clthello` naming the session by its `SVPNCOOKIE`; the gateway answers `svrhello`
//! `ok` for a live session (then PPP, Fortinet encapsulation, one frame per record, and the
//! session's TLS tunnel ends) or `fail` (and with `--dtls-refuse`, always `fail`: the
//! client falls back to PPP over TLS).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Mutex;

use ferroconnect_interop::gateway::{
    self, describe_form, field, gateway_ppp, html_escape, lock, log_line, netmask,
    parse_command_line, parse_form, random_bytes, random_hex, redirect, remember, text, Answer,
    Common, DtlsSite, Greeting, Site, TunLink, Upgraded,
};
use oc_proto::fortinet::{dtls_server_hello, read_dtls_client_hello};
use oc_proto::http::server::{Method, RequestLimits, ServerRequest, ServerResponse};
use oc_proto::ppp::Encapsulation;

const USAGE: &str = "\
usage: fortinet_gateway --listen ADDR:PORT --cert PEM --key PEM --user NAME --password PASS
                        --tunnel-addr IPV4 --client-addr IPV4 [options]

A FortiGate SSL-VPN test gateway (tunnel mode: HTTPS login, XML configuration, PPP over
DTLS on the HTTPS port number, or over TLS) for openconnect --protocol=fortinet. Run as root
in the namespace that gets the tun device.

  --listen ADDR:PORT     where to accept HTTPS (e.g. 198.18.10.1:443)
  --cert PEM, --key PEM  the server certificate (chain) and its private key
  --user NAME            the one user that may log in
  --password PASS        its password
  --otp CODE             also require this token code (FortiGate's tokeninfo challenge)
  --html-2fa             with --otp: ask for the code in an HTML form (401) instead
  --refuse-tunnel        answer every tunnel request with 403, as a gateway that no longer
                         accepts the session (the client must exit with status 2)
  --tunnel-addr IPV4     the gateway's own tunnel address (PPP, tun device)
  --client-addr IPV4     the address the client is given (XML assigned-addr, IPCP)
  --dns IPV4             a DNS server to announce (XML and IPCP); may be repeated
  --route NET/PREFIX     a split-tunnel route to announce; may be repeated (none: the
                         client routes everything through the tunnel)
  --no-dtls              no DTLS: the XML says dtls=\"0\" and PPP runs over TLS
  --dtls-refuse          complete DTLS handshakes but answer every clthello `fail`, so that
                         clients fall back to PPP over TLS
  --tun NAME             the tun device to create (default fortigw0)
  --log FILE             also append the log to FILE (it always goes to stderr)
  --help                 this text

It prints `listening on https://ADDR:PORT` once ready.";

/// Login forms and the like are small.
const MAX_BODY: usize = 16 * 1024;

macro_rules! log {
    ($($arg:tt)*) => { log_line(format_args!($($arg)*)) };
}

// ---------------------------------------------------------------------------------------
// Command line

/// The common options, and Fortinet's own.
#[derive(Debug, Clone)]
struct Config {
    common: Common,
    refuse_tunnel: bool,
    /// The second factor as an HTML form (`401`) instead of the `tokeninfo` challenge.
    html_2fa: bool,
}

/// The configuration, or `None` when `--help` was asked for.
fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<Config>, String> {
    let (mut refuse_tunnel, mut html_2fa) = (false, false);
    let flags = ["--refuse-tunnel", "--html-2fa"];
    let common = parse_command_line(args, &flags, "fortigw0", |name, value| {
        match (name, value) {
            ("--refuse-tunnel", None) => refuse_tunnel = true,
            ("--html-2fa", None) => html_2fa = true,
            _ => return false,
        }
        true
    })?;
    let Some(common) = common else {
        return Ok(None);
    };
    if html_2fa && common.otp.is_none() {
        return Err("--html-2fa asks for the --otp code: give --otp CODE".into());
    }
    Ok(Some(Config {
        common,
        refuse_tunnel,
        html_2fa,
    }))
}

impl AsRef<Common> for Config {
    fn as_ref(&self) -> &Common {
        &self.common
    }
}

fn main() -> ExitCode {
    gateway::main("fortinet_gateway", USAGE, parse_args, Gateway::new)
}

// ---------------------------------------------------------------------------------------
// Shared state

/// A token challenge sent and not yet answered.
#[derive(Debug)]
struct Challenge {
    reqid: String,
    magic: String,
    user: String,
    /// The HTML form's `grpid`, which must come back too.
    grpid: Option<String>,
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
    link: TunLink,
    state: Mutex<State>,
}

impl Gateway {
    /// The gateway serving `config` with the tun device `link`; it says so in the log.
    fn new(config: Config, link: TunLink) -> Self {
        let common = &config.common;
        log!(
            "listening on https://{} (tun {}, user {}, token {})",
            common.listen,
            link.name(),
            common.user,
            match (&common.otp, config.html_2fa) {
                (None, _) => "off",
                (Some(_), false) => "required (tokeninfo challenge)",
                (Some(_), true) => "required (HTML form)",
            }
        );
        Self {
            config,
            link,
            state: Mutex::new(State::default()),
        }
    }

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
            self.link.end_current();
        }
        state.cookies.len() != before
    }

    /// Makes the caller the current tunnel: its generation number.
    fn claim_tunnel(&self, cookie: &str) -> u64 {
        let mut state = lock(&self.state);
        state.tunnel_cookie = Some(cookie.to_string());
        self.link.claim()
    }
}

// ---------------------------------------------------------------------------------------
// The FortiGate pages

impl Site for Gateway {
    /// The cookie of the session whose tunnel starts.
    type Upgrade = String;

    fn limits(&self) -> RequestLimits {
        RequestLimits {
            max_body_bytes: MAX_BODY,
            ..RequestLimits::default()
        }
    }

    fn answer(&self, _peer: SocketAddr, request: &ServerRequest) -> Answer<String> {
        let cookie = request.cookie("SVPNCOOKIE");
        let reply = match (&request.method, request.path()) {
            (Method::Get, "/") => redirect("/remote/login"),
            (Method::Get, "/remote/login") => text(200, "OK", "text/html", "login page"),
            (Method::Post, "/remote/logincheck") => login(self, &parse_form(&request.body)),
            (Method::Get, "/remote/fortisslvpn_xml") if self.cookie_is_valid(cookie) => text(
                200,
                "OK",
                "application/xml",
                &tunnel_xml(&self.config.common),
            ),
            (Method::Get, "/remote/sslvpn-tunnel")
                if self.cookie_is_valid(cookie) && !self.config.refuse_tunnel =>
            {
                return Answer::Upgrade(cookie.unwrap_or_default().to_string());
            }
            (Method::Get, "/remote/fortisslvpn_xml" | "/remote/sslvpn-tunnel") => {
                log!("no valid SVPNCOOKIE");
                text(403, "Forbidden", "text/plain", "forbidden")
            }
            (Method::Get, "/remote/logout") => logout(self, cookie),
            _ => text(404, "Not Found", "text/plain", "not found"),
        };
        Answer::Reply(reply)
    }

    /// Runs PPP on the connection that asked for the tunnel, with no HTTP answer, as a
    /// FortiGate: `early` is what the client sent after its request (it starts LCP without
    /// waiting for an answer).
    async fn tunnel(&self, tunnel: Upgraded<String>) -> Result<String, String> {
        let Upgraded {
            tls,
            peer,
            upgrade: cookie,
            early,
        } = tunnel;
        let generation = self.claim_tunnel(&cookie);
        let ppp = gateway_ppp(Encapsulation::Fortinet, &self.config.common, true);
        let how = "no HTTP answer, as a FortiGate";
        self.link.run(tls, peer, &early, ppp, generation, how).await
    }
}

impl DtlsSite for Gateway {
    fn link(&self) -> &TunLink {
        &self.link
    }

    fn common(&self) -> &Common {
        &self.config.common
    }

    fn is_greeting(record: &[u8]) -> bool {
        read_dtls_client_hello(record).is_some()
    }

    fn refusal(&self) -> Vec<u8> {
        dtls_server_hello(false)
    }

    /// `ok` when the `clthello` names a live session (whose tunnel moves to DTLS), else
    /// `fail`.
    fn greet(&self, _peer: SocketAddr, record: &[u8]) -> Greeting {
        let cookie = read_dtls_client_hello(record).unwrap_or_default();
        if !self.cookie_is_valid(Some(cookie)) {
            return Greeting::Refuse {
                answer: dtls_server_hello(false),
                why: "no session has this SVPNCOOKIE".into(),
            };
        }
        Greeting::Accept {
            answer: dtls_server_hello(true),
            session: format!("SVPNCOOKIE {}...", cookie.get(..8).unwrap_or(cookie)),
            generation: self.claim_tunnel(cookie),
            encapsulation: Encapsulation::Fortinet,
        }
    }
}

fn logout(gateway: &Gateway, cookie: Option<&str>) -> ServerResponse {
    match cookie {
        Some(c) if gateway.log_out(c) => log!("logout: cookie forgotten"),
        _ => log!("logout without a valid cookie"),
    }
    text(200, "OK", "text/html", "successful logout")
}

/// `POST /remote/logincheck`: the password step, or the token step when the form carries
/// a `code` (or, with `--html-2fa`, the HTML form's `magic`: the code is its `credential`).
fn login(gateway: &Gateway, form: &[(String, String)]) -> ServerResponse {
    log!(
        "logincheck form: {}",
        describe_form(form, &["credential", "code"])
    );
    let config = &gateway.config;
    let user = field(form, "username").unwrap_or_default();
    if let Some(code) = field(form, "code") {
        return token_step(gateway, form, user, code);
    }
    if config.html_2fa && field(form, "magic").is_some() {
        let code = field(form, "credential").unwrap_or_default();
        return token_step(gateway, form, user, code);
    }
    let password_ok =
        user == config.common.user && field(form, "credential") == Some(&config.common.password);
    if !password_ok {
        log!("login refused for user {user:?}: wrong credentials");
        return refused();
    }
    if config.common.otp.is_some() {
        return match config.html_2fa {
            true => html_challenge(gateway, user),
            false => challenge(gateway, user),
        };
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

/// A new pending challenge for `user` (with the HTML form's `grpid`): its `reqid` and
/// `magic`.
fn open_challenge(gateway: &Gateway, user: &str, grpid: Option<String>) -> (String, String) {
    let reqid = u32::from_be_bytes(random_bytes()).to_string();
    let magic = format!("1-{}", random_hex::<8>());
    remember(
        &mut lock(&gateway.state).challenges,
        Challenge {
            reqid: reqid.clone(),
            magic: magic.clone(),
            user: user.to_string(),
            grpid,
        },
    );
    (reqid, magic)
}

/// The password was right: ask for the token code (FortiGate's `tokeninfo` answer).
fn challenge(gateway: &Gateway, user: &str) -> ServerResponse {
    let (reqid, magic) = open_challenge(gateway, user, None);
    let body = format!(
        "ret=2,reqid={reqid},polid=1-1-1,grp=ferroconnect,portal=full-access,magic={magic},\
         tokeninfo=,chal_msg=Please enter your token code"
    );
    log!("password accepted for user {user:?}; token challenge sent (reqid {reqid})");
    text(200, "OK", "text/plain", &body)
}

/// The password was right: ask for the token code in an HTML form, with `401` (FortiGate's
/// "HTML-type" second factor, as openconnect reads it).
fn html_challenge(gateway: &Gateway, user: &str) -> ServerResponse {
    let grpid = format!("0,{},1", u16::from_be_bytes(random_bytes()));
    let (reqid, magic) = open_challenge(gateway, user, Some(grpid.clone()));
    let body = format!(
        "<html><body><form action=\"/remote/logincheck\" method=\"POST\">\n\
         <b>Please enter your token code</b>\n\
         <input type=\"hidden\" name=\"magic\" value=\"{magic}\">\n\
         <input type=\"hidden\" name=\"username\" value=\"{user}\">\n\
         <input type=\"hidden\" name=\"reqid\" value=\"{reqid}\">\n\
         <input type=\"hidden\" name=\"grpid\" value=\"{grpid}\">\n\
         <input type=\"password\" name=\"credential\">\n\
         <input class=\"button\" type=\"submit\" value=\"OK\">\n\
         </form></body></html>\n",
        user = html_escape(user),
    );
    log!(
        "password accepted for user {user:?}; token challenge sent as an HTML form (401, \
         reqid {reqid})"
    );
    text(401, "Unauthorized", "text/html", &body)
}

/// The second post: a pending challenge's `reqid` and `magic` (and the HTML form's
/// `grpid`), its user, and the code.
fn token_step(
    gateway: &Gateway,
    form: &[(String, String)],
    user: &str,
    code: &str,
) -> ServerResponse {
    let reqid = field(form, "reqid").unwrap_or_default();
    let magic = field(form, "magic").unwrap_or_default();
    let grpid = field(form, "grpid");
    let pending = {
        let mut state = lock(&gateway.state);
        let at = state.challenges.iter().position(|c| {
            c.reqid == reqid
                && c.magic == magic
                && c.user == user
                && c.grpid.as_deref().is_none_or(|g| grpid == Some(g))
        });
        at.and_then(|i| state.challenges.remove(i))
    };
    if pending.is_none() {
        log!("token refused for user {user:?}: no such challenge (reqid {reqid:?})");
        return refused();
    }
    if gateway.config.common.otp.as_deref() != Some(code) {
        log!("token refused for user {user:?}: wrong code");
        return refused();
    }
    log!("token accepted for user {user:?}");
    logged_in(gateway)
}

/// The tunnel configuration: only the gateway's own settings go in, so nothing needs
/// escaping.
fn tunnel_xml(config: &Common) -> String {
    let dtls = u8::from(config.dtls.is_some());
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
         <sslvpn-tunnel ver=\"2\" dtls=\"{dtls}\" patch=\"1\">\n  \
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
