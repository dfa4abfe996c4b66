//! `array_gateway`: a test gateway speaking Array Networks SSL VPN (the login form, the
//! tunnel request with its binary exchanges and JSON answers, raw IP over TLS and over DTLS
//! 1.0), enough for openconnect's `--protocol=array` to log in and pass traffic. It is test
//! code: one user, one tunnel at a time, no persistence. The messages are
//! `oc_proto::array`'s (the gateway's side of the same answers the client reads).
//!
//! ```text
//! array_gateway --listen ADDR:PORT --cert PEM --key PEM --user NAME --password PASS
//!               --tunnel-addr IPV4 --client-addr IPV4 [--method NAME] [--keepalive N]
//!               [--no-dtls | --dtls-refuse] [--dns IPV4]... [--route NET/PREFIX]...
//!               [--dns-suffix NAME] [--tun NAME] [--log FILE]
//! ```
//!
//! What it answers ([`tunnel`] for the tunnel):
//! - `POST /prx/000/http/localhost/login` (`method`, `uname`, `pwd`): the right user and
//!   password (and `--method`, when given) get a page and an `ANsession` cookie; a wrong
//!   one a page without it;
//! - `GET /vpntunnel` with a known cookie: `200 OK`, then on the connection the answers to
//!   the speed-tunnel request (UDP allowed unless `--no-dtls`, `--keepalive` seconds of
//!   DPD) and to the interface request (the client's address, `--dns`, `--dns-suffix`,
//!   `--route`s), and to the DTLS request the port (this one, on UDP) or, with
//!   `--dtls-refuse`, a refusal; then raw IP packets, one a TLS record, DPDs echoed. An
//!   unknown cookie gets a redirect to the cookie test page (the client's cue that it
//!   expired);
//! - DTLS 1.0 on UDP: after the handshake the client's id and `13` is answered `200 OK`
//!   and the association joins the session's tunnel, which sends its packets there until
//!   the client says DTLS is off;
//! - `GET /prx/000/http/localhost/logout` forgets the session.
//!
//! Every step is logged, wrong answers too; nothing a client sends panics it.

macro_rules! log {
    ($($arg:tt)*) => { ::ferroconnect_interop::gateway::log_line(format_args!($($arg)*)) };
}

mod tunnel;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Mutex;

use ferroconnect_interop::gateway::{
    self, describe_form, field, lock, parse_form, parse_value, parse_with_own, random_hex,
    redirect, remember, text, Answer, Common, DtlsCarrier, DtlsSite, Greeting, Site, TunLink,
    Upgraded,
};
use oc_proto::array::{DTLS_ACCEPTED, DTLS_GREETING_SUFFIX, LOGIN_PATH, LOGOUT_PATH, TUNNEL_PATH};
use oc_proto::http::server::{Method, RequestLimits, ServerRequest};
use tokio::sync::mpsc;

const USAGE: &str = "\
usage: array_gateway --listen ADDR:PORT --cert PEM --key PEM --user NAME --password PASS
                     --tunnel-addr IPV4 --client-addr IPV4 [options]

An Array Networks SSL VPN test gateway: the login form, the tunnel request and its
answers, raw IP over TLS and DTLS 1.0, for openconnect --protocol=array.

  --listen ADDR:PORT     where to accept HTTPS (and DTLS on the same UDP port)
  --cert PEM, --key PEM  the server certificate (chain) and its private key
  --user NAME            the one user that may log in
  --password PASS        its password
  --method NAME          the login's method field must be this
  --keepalive N          the DPD interval the client is given (default 10 s)
  --dns-suffix NAME      the search domain
  --no-dtls              UDP not allowed: the tunnel is TLS only
  --dtls-refuse          the DTLS request is answered without a port
  --tunnel-addr, --client-addr, --dns, --route, --tun, --log: as every test gateway

It prints `listening on https://ADDR:PORT` once ready.";

/// Where an expired cookie is sent.
const COOKIE_TEST: &str = "/prx/000/http/localhost/cookietest";
/// The length of a DTLS greeting: the 36-character id and `13`.
const GREETING_LEN: usize = 38;

#[derive(Debug, Clone)]
struct Config {
    common: Common,
    method: Option<String>,
    keepalive: u64,
    dns_suffix: Option<String>,
}

impl AsRef<Common> for Config {
    fn as_ref(&self) -> &Common {
        &self.common
    }
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<Config>, String> {
    let known = ["--method", "--keepalive", "--dns-suffix"];
    let Some((common, own)) = parse_with_own(args, &[], &known, "arraygw0")? else {
        return Ok(None);
    };
    let mut config = Config {
        common,
        method: None,
        keepalive: 10,
        dns_suffix: None,
    };
    for (name, value) in own {
        match name.as_str() {
            "--method" => config.method = Some(value),
            "--keepalive" => config.keepalive = parse_value(&name, &value)?,
            "--dns-suffix" => config.dns_suffix = Some(value),
            _ => return Err(format!("unknown option {name}")),
        }
    }
    Ok(Some(config))
}

fn main() -> ExitCode {
    gateway::main("array_gateway", USAGE, parse_args, Gateway::new)
}

#[derive(Default)]
struct State {
    /// Cookies (`name=value`) of sessions logged in.
    sessions: VecDeque<String>,
    /// Tunnels that take DTLS associations, by the client's id.
    dtls_waiting: HashMap<String, (String, mpsc::Sender<DtlsCarrier>)>,
}

struct Gateway {
    config: Config,
    link: TunLink,
    state: Mutex<State>,
}

impl Gateway {
    fn new(config: Config, link: TunLink) -> Self {
        log!(
            "listening on https://{} (tun {}, user {}, method {:?}, keepalive {} s, DTLS {})",
            config.common.listen,
            link.name(),
            config.common.user,
            config.method,
            config.keepalive,
            match config.common.dtls {
                None => "off".to_string(),
                Some(d) if d.refuse => "refused".to_string(),
                Some(d) => format!("on udp port {}", d.port),
            }
        );
        Self {
            config,
            link,
            state: Mutex::new(State::default()),
        }
    }

    /// The session of a request's `ANsession` cookie, as `name=value`.
    fn session_of(&self, request: &ServerRequest) -> Option<String> {
        let header = request.header("Cookie")?;
        let state = lock(&self.state);
        header
            .split(';')
            .map(str::trim)
            .find(|c| state.sessions.iter().any(|s| s == c))
            .map(str::to_string)
    }

    fn login(&self, peer: SocketAddr, request: &ServerRequest) -> Answer<tunnel::TunnelStart> {
        let form = parse_form(&request.body);
        log!("{peer}: login post: {}", describe_form(&form, &["pwd"]));
        let common = &self.config.common;
        let method_ok = self
            .config
            .method
            .as_deref()
            .is_none_or(|m| field(&form, "method") == Some(m));
        if field(&form, "uname") != Some(common.user.as_str())
            || field(&form, "pwd") != Some(common.password.as_str())
            || !method_ok
        {
            log!("{peer}: login refused (user, password or method)");
            return Answer::Reply(text(200, "OK", "text/html", "<html>Login failed</html>"));
        }
        let cookie = format!("ANsession{}={}", random_hex::<4>(), random_hex::<16>());
        remember(&mut lock(&self.state).sessions, cookie.clone());
        log!("{peer}: session started");
        Answer::Reply(
            text(200, "OK", "text/html", "<html>Welcome</html>")
                .header("Set-Cookie", format!("{cookie}; path=/; secure")),
        )
    }

    /// Forgets the session: its tunnel ends.
    fn forget(&self, cookie: &str) {
        lock(&self.state).sessions.retain(|s| s != cookie);
        self.link.end_session(cookie);
    }
}

impl Site for Gateway {
    type Upgrade = tunnel::TunnelStart;

    fn limits(&self) -> RequestLimits {
        RequestLimits {
            max_body_bytes: 4 * 1024,
            max_target_bytes: 1024,
            ..RequestLimits::default()
        }
    }

    fn answer(&self, peer: SocketAddr, request: &ServerRequest) -> Answer<tunnel::TunnelStart> {
        let get = request.method == Method::Get;
        match request.path() {
            LOGIN_PATH if request.method == Method::Post => self.login(peer, request),
            TUNNEL_PATH if get => match self.session_of(request) {
                Some(cookie) => tunnel::request(self, peer, request, cookie),
                None => {
                    log!("{peer}: tunnel request with an unknown cookie; sent to the cookie test");
                    Answer::Final(redirect(COOKIE_TEST))
                }
            },
            LOGOUT_PATH if get => {
                if let Some(cookie) = self.session_of(request) {
                    self.forget(&cookie);
                    log!("{peer}: logout: session forgotten");
                }
                Answer::Reply(text(200, "OK", "text/html", "<html>Logged out</html>"))
            }
            other => {
                log!("{peer}: no such page: {}", other.escape_debug());
                Answer::Reply(text(404, "Not Found", "text/plain", "not found"))
            }
        }
    }

    async fn tunnel(&self, tunnel: Upgraded<tunnel::TunnelStart>) -> Result<String, String> {
        tunnel::run(self, tunnel).await
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
        record.len() == GREETING_LEN && record.ends_with(DTLS_GREETING_SUFFIX.as_bytes())
    }

    fn refusal(&self) -> Vec<u8> {
        b"500 no".to_vec()
    }

    fn greet(&self, peer: SocketAddr, record: &[u8]) -> Greeting {
        let id = String::from_utf8_lossy(record.get(..GREETING_LEN - 2).unwrap_or_default())
            .into_owned();
        // Kept for the client's later handshakes (a DTLS retry) until the tunnel ends.
        let waiting = lock(&self.state).dtls_waiting.get(&id).cloned();
        match waiting {
            Some((session, tunnel)) => Greeting::HandOver {
                answer: DTLS_ACCEPTED.to_vec(),
                session,
                tunnel,
            },
            None => Greeting::Refuse {
                answer: self.refusal(),
                why: format!("{peer}: no tunnel waits for client id {id:?}"),
            },
        }
    }
}
