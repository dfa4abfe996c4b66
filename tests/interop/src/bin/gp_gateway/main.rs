//! `gp_gateway`: a test gateway speaking Palo Alto GlobalProtect (portal and gateway on one
//! HTTPS listener, the TLS tunnel, ESP over UDP), enough for openconnect's `--protocol=gp`
//! to log in and pass traffic. It is test code: one user, one tunnel at a time, no
//! persistence. Every message is `oc_proto::gp`'s (the gateway's side of the same types
//! the client reads), and ESP is `oc_proto::esp` with OpenSSL's cipher.
//!
//! ```text
//! gp_gateway --listen ADDR:PORT --cert PEM --key PEM --user NAME --password PASS
//!            --tunnel-addr IPV4 --client-addr IPV4 [--otp CODE [--challenge xml|js|html]]
//!            [--dns IPV4]... [--route NET/PREFIX]... [--dns-suffix NAME]
//!            [--gateway HOST[:PORT]=DESCRIPTION]... [--region NAME] [--portal-cookie]
//!            [--no-esp | --refuse-esp] [--esp-port N] [--esp-suite ENC/MAC]
//!            [--esp-magic IPV4] [--mtu N] [--rekey SECONDS] [--hip-report-needed]
//!            [--web-cookie] [--saml COOKIE] [--esp-junk] [--tun NAME] [--log FILE]
//! ```
//!
//! Run it as root in the namespace that should own the tun device. It prints
//! `listening on https://ADDR:PORT` once it accepts connections, and logs every request,
//! login step, configuration, tunnel and ESP event to stderr (and to `--log FILE`).
//!
//! What it answers (all on one HTTPS port; every `.esp` page also by GET, as servers do):
//! - `POST /global-protect/prelogin.esp`, `/ssl-vpn/prelogin.esp`: `<prelogin-response>`
//!   with status `Success`, the message, the labels `Username`/`Password` and the
//!   `--region` (default `US`);
//! - `POST /global-protect/getconfig.esp` (the portal's login: `user`, `passwd`): the
//!   `<policy>` listing the `--gateway` entries (by default one, the listening address,
//!   described "ferroconnect GP gateway"), each with a priority rule for `Any` (its place
//!   in the list), the HIP report interval, and with `--portal-cookie` a fresh
//!   `portal-userauthcookie` that the gateway's login then takes instead of the password
//!   and the code. A wrong password gets HTTP 512;
//! - `POST /ssl-vpn/login.esp`: a wrong password gets HTTP 512 ("Invalid username or
//!   password"). The right one gets the JNLP arguments (`authcookie`, `portal`, the user,
//!   `%28empty_domain%29` as the domain, `tunnel`, `4100`, the client's address as
//!   `preferred-ip`); with `--otp CODE` it first gets a challenge (`--challenge xml`, the
//!   default: `<challenge>`; `js`: the JavaScript answer, one statement a line as 9.01
//!   reads it; `html`: that JavaScript escaped in an HTML page's body, which upstream
//!   reads from 9.10 on) with a fresh `inputStr`, and only the code posted back with that `inputStr`
//!   (in `passwd`) logs in; a wrong code gets the JavaScript `respStatus = "Error"` and
//!   the challenge is spent. The fixed fields upstream sends are checked and irregular
//!   ones logged;
//! - `POST /ssl-vpn/getconfig.esp` (the cookie's `authcookie`, `user`, `portal`,
//!   `domain`, `computer` must match the login; else the body `errors getting SSL/VPN
//!   config`): `<response>` with the client's address, netmask 255.255.255.255, the DNS
//!   servers and suffix, `--route`s as `access-routes` (`0.0.0.0/0` without any), `--mtu`
//!   (default 1400; 0 leaves it to the client), `timeout` (`--rekey`, default a day),
//!   `gw-address` (the ESP magic, by default the listening address), and fresh ESP keys
//!   in `<ipsec>` (`--esp-suite`, default `aes-128-cbc/sha1`, if the client offered it;
//!   `udp-port` `--esp-port`, default 4501).
//!   New keys replace the session's old ones. No `<ipsec>` with `--no-esp`;
//! - `POST /ssl-vpn/hipreportcheck.esp`: `hip-report-needed` `no` (`yes` with
//!   `--hip-report-needed` until the session submitted a report); `POST
//!   /ssl-vpn/hipreport.esp`: success for a `<hip-report>` document, an error otherwise;
//! - `GET /ssl-tunnel-connect.sslvpn?user=..&authcookie=..` (no headers needed): for a
//!   logged-in session `START_TUNNEL`, then packets in GP's 16-byte framing, one frame per
//!   TLS record (9.01 reads each record as one frame), keepalives answered; connecting it
//!   ends the session's ESP keys, as real gateways do. An unknown session gets `502`;
//! - `POST /ssl-vpn/logout.esp` (the whole cookie, which must match): the session is
//!   forgotten, its tunnel and keys ended (log line `logout: session forgotten`);
//! - anything else: 404.
//!
//! With `--esp-junk`, when a session's ESP tunnel starts the client gets, from the ESP port:
//! an empty datagram, a truncated one, one with an unknown SPI, one with a forged ICV, and
//! a genuine packet twice (the second a replay).
//!
//! With `--saml COOKIE` every prelogin asks for a SAML login (REDIRECT to an identity
//! provider that is never reached) and the logins take `user` with `prelogin-cookie`
//! `COOKIE` (what an external SAML helper hands the client) instead of the password.
//!
//! With `--web-cookie` the prelogin sets an HTTP cookie (`GPWEB`, as a load balancer in
//! front of a gateway does) and every later page but the TLS tunnel's refuses a request
//! without it (403): a client must keep the cookies a server sets, as upstream does.
//!
//! ESP (UDP `--esp-port` on the listening address): datagrams are sorted by SPI to the
//! session whose keys they use, opened with the client-to-server keys (replays, bad ICVs,
//! unknown SPIs logged and dropped); the client's probe (an ICMP echo to the magic address)
//! is answered over ESP with the echo reply, and the first one makes ESP the session's
//! tunnel (the tun device carries its packets both ways). Probes keep coming as the
//! client's keepalive (one per 10 s of silence from the gateway); a client silent for a
//! minute is dropped. With `--refuse-esp` the keys are handed out but probes are never
//! answered, so the client falls back to TLS.
//!
//! The gateway hands out no IPv6: the IPv6 its tun device says (neighbour discovery) stays
//! off both tunnels, and IPv6 from the client is dropped as not from its address.
//!
//! By concern: `login` (prelogin, portal, gateway login, challenges), `config` (getconfig,
//! HIP, logout), `tunnel` (the TLS tunnel), `esp` (the UDP side).

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Mutex;

use ferroconnect_interop::gateway::{
    self, lock, parse_esp_suite, parse_value, parse_with_own, random_hex, remember, text, Answer,
    Common, EspMode, Site, TunLink, Upgraded,
};
use oc_proto::esp::{EspEncryption, EspIntegrity, EspSuite};
use oc_proto::gp::config::EspConfig;
use oc_proto::gp::server::error_xml;
use oc_proto::gp::ESP_PORT;
use oc_proto::http::server::{Method, RequestLimits, ServerRequest, ServerResponse};

const USAGE: &str = "\
usage: gp_gateway --listen ADDR:PORT --cert PEM --key PEM --user NAME --password PASS
                  --tunnel-addr IPV4 --client-addr IPV4 [options]

A Palo Alto GlobalProtect test gateway (portal and gateway on one HTTPS port, the TLS
tunnel, ESP over UDP) for openconnect --protocol=gp. Run as root in the namespace that gets
the tun device.

  --listen ADDR:PORT     where to accept HTTPS (e.g. 198.18.10.1:443)
  --cert PEM, --key PEM  the server certificate (chain) and its private key
  --user NAME            the one user that may log in
  --password PASS        its password
  --otp CODE             after the password, a challenge asks for this code
  --challenge xml|js|html
                         how the challenge comes: <challenge> XML (default), the
                         JavaScript answer (respStatus = \"Challenge\"), or that
                         JavaScript inside an HTML page
  --tunnel-addr IPV4     the gateway's own tunnel address (tun)
  --client-addr IPV4     the address the client is given (ip-address, preferred-ip)
  --dns IPV4             a DNS server to announce; may be repeated
  --dns-suffix NAME      the DNS search domain to announce
  --route NET/PREFIX     a split-tunnel route to announce (access-routes); may be repeated
                         (none: 0.0.0.0/0, everything through the tunnel)
  --gateway HOST[:PORT]=DESCRIPTION
                         a gateway for the portal to list (all are this server); may be
                         repeated (none: this listener, \"ferroconnect GP gateway\")
  --region NAME          the client's region in the prelogin answer (default US)
  --portal-cookie        the portal hands out a portal-userauthcookie, which the gateway's
                         login takes instead of the password and code
  --no-esp               no <ipsec> in the configuration: the tunnel runs over TLS
  --refuse-esp           hand out ESP keys but never answer the probes, so that clients
                         fall back to the TLS tunnel
  --esp-port N           the UDP port for ESP (default 4501)
  --esp-suite ENC/MAC    aes-128-cbc or aes-256-cbc / sha1, md5 or sha256
                         (default aes-128-cbc/sha1)
  --esp-magic IPV4       the magic address the probes go to (gw-address; default the
                         listening address)
  --mtu N                the MTU to announce (default 1400; 0: none, the client computes)
  --rekey SECONDS        the tunnel's timeout (default a day): openconnect reconnects a
                         minute before it, fetching the configuration and new ESP keys
  --hip-report-needed    the HIP check says a report is needed
  --web-cookie           the prelogin sets an HTTP cookie; later pages require it (403)
  --saml COOKIE          prelogins ask for SAML; logins take prelogin-cookie=COOKIE
  --esp-junk             send the client hostile ESP datagrams when its ESP tunnel starts
  --tun NAME             the tun device to create (default gpgw0)
  --log FILE             also append the log to FILE (it always goes to stderr)
  --help                 this text

It prints `listening on https://ADDR:PORT` once ready.";

macro_rules! log {
    ($($arg:tt)*) => { ::ferroconnect_interop::gateway::log_line(format_args!($($arg)*)) };
}

mod config;
mod esp;
mod login;
mod tunnel;

// ---------------------------------------------------------------------------------------
// Command line

/// How the challenge is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChallengeStyle {
    Xml,
    JavaScript,
    /// The JavaScript inside an HTML page (9.01 cannot read it; upstream can since 9.10).
    Html,
}

#[derive(Debug, Clone)]
struct Config {
    common: Common,
    challenge: ChallengeStyle,
    dns_suffix: Option<String>,
    /// `(name, description)` for the portal's list.
    gateways: Vec<(String, String)>,
    region: String,
    portal_cookie: bool,
    esp: EspMode,
    esp_port: u16,
    suite: EspSuite,
    magic: Ipv4Addr,
    mtu: u16,
    /// The tunnel's `timeout`, in seconds: upstream reconnects (new keys) a minute before.
    rekey: u64,
    hip_needed: bool,
    /// Set an HTTP cookie at prelogin and require it on the later pages.
    web_cookie: bool,
    /// SAML logins: the prelogin asks for SAML, the logins take this `prelogin-cookie`.
    saml: Option<String>,
    /// Send the client hostile ESP datagrams when its ESP tunnel starts.
    esp_junk: bool,
}

/// The HTTP cookie `--web-cookie` sets.
const WEB_COOKIE: &str = "GPWEB";

/// A day: tests do not reach it unless they ask for less.
const DEFAULT_REKEY: u64 = 86_400;

/// The gateway's tun MTU when the configuration announces none (`--mtu 0`).
const DEFAULT_TUN_MTU: u16 = 1400;

impl Config {
    /// The MTU of the gateway's own tun device: the one announced, or a usual one.
    fn tun_mtu(&self) -> u16 {
        match self.mtu {
            0 => DEFAULT_TUN_MTU,
            mtu => mtu.max(576),
        }
    }
}

impl AsRef<Common> for Config {
    fn as_ref(&self) -> &Common {
        &self.common
    }
}

/// The configuration, or `None` when `--help` was asked for.
fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<Config>, String> {
    let flags = [
        "--portal-cookie",
        "--no-esp",
        "--refuse-esp",
        "--hip-report-needed",
        "--web-cookie",
        "--esp-junk",
    ];
    let known = [
        "--challenge",
        "--dns-suffix",
        "--gateway",
        "--region",
        "--esp-port",
        "--esp-suite",
        "--esp-magic",
        "--mtu",
        "--rekey",
        "--saml",
    ];
    let Some((mut common, own)) = parse_with_own(args, &flags, &known, "gpgw0")? else {
        return Ok(None);
    };
    if common.dtls.is_some_and(|d| d.refuse) {
        return Err(
            "GlobalProtect has no DTLS: --dtls-refuse does not apply (--refuse-esp)".into(),
        );
    }
    // ESP is this gateway's UDP side; the shared DTLS server is not started.
    common.dtls = None;
    let mut config = Config {
        challenge: ChallengeStyle::Xml,
        dns_suffix: None,
        gateways: Vec::new(),
        region: "US".into(),
        portal_cookie: false,
        esp: EspMode::On,
        esp_port: ESP_PORT,
        suite: EspSuite::new(EspEncryption::Aes128Cbc, EspIntegrity::HmacSha1_96),
        magic: match common.listen.ip() {
            std::net::IpAddr::V4(ip) => ip,
            std::net::IpAddr::V6(_) => return Err("--listen: an IPv4 address, please".into()),
        },
        mtu: DEFAULT_TUN_MTU,
        rekey: DEFAULT_REKEY,
        hip_needed: false,
        web_cookie: false,
        saml: None,
        esp_junk: false,
        common,
    };
    for (name, value) in own {
        match name.as_str() {
            "--portal-cookie" => config.portal_cookie = true,
            "--no-esp" => config.esp = EspMode::Off,
            "--refuse-esp" => config.esp = EspMode::Refuse,
            "--hip-report-needed" => config.hip_needed = true,
            "--web-cookie" => config.web_cookie = true,
            "--saml" => config.saml = Some(value),
            "--esp-junk" => config.esp_junk = true,
            "--challenge" => {
                config.challenge = match value.as_str() {
                    "xml" => ChallengeStyle::Xml,
                    "js" => ChallengeStyle::JavaScript,
                    "html" => ChallengeStyle::Html,
                    other => return Err(format!("--challenge {other:?}: xml, js or html")),
                }
            }
            "--dns-suffix" => config.dns_suffix = Some(value),
            "--gateway" => {
                let (host, description) = value
                    .split_once('=')
                    .ok_or_else(|| format!("--gateway {value:?}: HOST[:PORT]=DESCRIPTION"))?;
                config
                    .gateways
                    .push((host.to_string(), description.to_string()));
            }
            "--region" => config.region = value,
            "--esp-port" => config.esp_port = parse_value(&name, &value)?,
            "--esp-suite" => config.suite = parse_esp_suite(&value)?,
            "--esp-magic" => config.magic = parse_value(&name, &value)?,
            "--mtu" => config.mtu = parse_value(&name, &value)?,
            "--rekey" => config.rekey = parse_value(&name, &value)?,
            _ => return Err(format!("unknown option {name}")),
        }
    }
    if config.gateways.is_empty() {
        let listen = config.common.listen;
        let name = match listen.port() {
            443 => listen.ip().to_string(),
            port => format!("{}:{port}", listen.ip()),
        };
        config
            .gateways
            .push((name, "ferroconnect GP gateway".into()));
    }
    Ok(Some(config))
}

fn main() -> ExitCode {
    gateway::main_with("gp_gateway", USAGE, parse_args, Gateway::new, |gw, _| {
        esp::serve(gw)
    })
}

// ---------------------------------------------------------------------------------------
// Shared state

/// A challenge sent and not yet answered.
#[derive(Debug)]
struct Pending {
    input_str: String,
    user: String,
}

/// A logged-in session: what the cookie must show.
#[derive(Debug, Clone)]
struct Session {
    authcookie: String,
    user: String,
    portal: String,
    domain: String,
    computer: String,
    /// The client-to-server SPI of its current ESP keys.
    esp_spi: Option<u32>,
}

/// A session's ESP keys, by client-to-server SPI, and the task that runs them once the
/// first datagram came.
#[derive(Debug)]
struct EspEntry {
    authcookie: String,
    keys: EspConfig,
    task: Option<tokio::sync::mpsc::Sender<esp::Datagram>>,
}

#[derive(Debug, Default)]
struct State {
    challenges: VecDeque<Pending>,
    portal_cookies: VecDeque<(String, String)>,
    sessions: VecDeque<Session>,
    esp: HashMap<u32, EspEntry>,
    /// `--web-cookie` values handed out.
    web_cookies: VecDeque<String>,
    /// Sessions (their authcookies) that submitted a HIP report: no more is needed.
    hip_reported: VecDeque<String>,
}

struct Gateway {
    config: Config,
    link: TunLink,
    state: Mutex<State>,
    /// The ESP socket, bound before the gateway says it listens; the UDP side takes it.
    esp_socket: Mutex<Option<std::net::UdpSocket>>,
}

impl Gateway {
    fn new(config: Config, link: TunLink) -> Self {
        let esp_socket = config.esp.bind(config.common.listen.ip(), config.esp_port);
        log!(
            "listening on https://{} (tun {}, user {}, second factor {}, gateways {:?}, ESP {})",
            config.common.listen,
            link.name(),
            config.common.user,
            match (&config.common.otp, config.challenge) {
                (None, _) => "off",
                (Some(_), ChallengeStyle::Xml) => "XML challenge",
                (Some(_), ChallengeStyle::JavaScript) => "JavaScript challenge",
                (Some(_), ChallengeStyle::Html) => "JavaScript-in-HTML challenge",
            },
            config.gateways,
            config
                .esp
                .describe(esp_socket.is_some(), config.suite, config.esp_port)
        );
        Self {
            config,
            link,
            state: Mutex::new(State::default()),
            esp_socket: Mutex::new(esp_socket),
        }
    }

    /// The session this `authcookie` logged in, if any.
    fn session(&self, authcookie: Option<&str>) -> Option<Session> {
        let authcookie = authcookie?;
        let state = lock(&self.state);
        state
            .sessions
            .iter()
            .find(|s| s.authcookie == authcookie)
            .cloned()
    }

    fn add_session(&self, session: Session) {
        let mut state = lock(&self.state);
        remember(&mut state.sessions, session);
        // Keys of sessions forgotten (the oldest, past the bound) go with them.
        let live: Vec<String> = state
            .sessions
            .iter()
            .map(|s| s.authcookie.clone())
            .collect();
        state.esp.retain(|_, e| live.contains(&e.authcookie));
    }

    /// The session's ESP keys end (a TLS tunnel, new keys, a logout): its ESP task, if
    /// any, stops when its queue closes.
    fn drop_esp(state: &mut State, authcookie: &str) -> Option<u32> {
        let spi = state
            .sessions
            .iter_mut()
            .find(|s| s.authcookie == authcookie)
            .and_then(|s| s.esp_spi.take())?;
        state.esp.remove(&spi).map(|_| spi)
    }

    /// Forgets the session: its keys and its tunnel end.
    fn forget(&self, authcookie: &str) {
        let mut state = lock(&self.state);
        Self::drop_esp(&mut state, authcookie);
        state.sessions.retain(|s| s.authcookie != authcookie);
        self.link.end_session(authcookie);
    }
}

// ---------------------------------------------------------------------------------------
// The pages

impl Site for Gateway {
    type Upgrade = tunnel::TunnelStart;

    fn limits(&self) -> RequestLimits {
        RequestLimits {
            // Login posts are small; a HIP report may be some kilobytes.
            max_body_bytes: 64 * 1024,
            max_target_bytes: 1024,
            ..RequestLimits::default()
        }
    }

    fn answer(&self, peer: SocketAddr, request: &ServerRequest) -> Answer<tunnel::TunnelStart> {
        let path = request.path();
        let posted = matches!(request.method, Method::Post | Method::Get);
        let prelogin = matches!(
            path,
            "/global-protect/prelogin.esp" | "/ssl-vpn/prelogin.esp"
        );
        if self.config.web_cookie && posted && !prelogin && !self.has_web_cookie(request) {
            log!("{peer}: {path}: no {WEB_COOKIE} cookie from the prelogin; refused");
            return Answer::Reply(text(403, "Forbidden", "text/plain", "forbidden"));
        }
        let reply = match path {
            _ if prelogin && posted => {
                self.with_web_cookie(peer, login::prelogin(self, peer, request))
            }
            "/global-protect/getconfig.esp" if posted => login::portal(self, peer, request),
            "/ssl-vpn/login.esp" if posted => login::gateway(self, peer, request),
            "/ssl-vpn/getconfig.esp" if posted => config::getconfig(self, peer, request),
            "/ssl-vpn/hipreportcheck.esp" | "/ssl-vpn/hipreport.esp" if posted => {
                config::hip(self, peer, request)
            }
            "/ssl-vpn/logout.esp" if posted => config::logout(self, peer, request),
            _ if request.method == Method::Get => match tunnel::request(self, peer, request) {
                Some(answer) => return answer,
                None => not_found(peer, request),
            },
            _ => not_found(peer, request),
        };
        Answer::Reply(reply)
    }

    async fn tunnel(&self, tunnel: Upgraded<tunnel::TunnelStart>) -> Result<String, String> {
        tunnel::run(self, tunnel).await
    }
}

impl Gateway {
    /// The prelogin's answer, with a fresh web cookie when `--web-cookie` asks for one.
    fn with_web_cookie(&self, peer: SocketAddr, reply: ServerResponse) -> ServerResponse {
        if !self.config.web_cookie {
            return reply;
        }
        let value = random_hex::<8>();
        log!("{peer}: {WEB_COOKIE} cookie set");
        remember(&mut lock(&self.state).web_cookies, value.clone());
        reply.header(
            "Set-Cookie",
            format!("{WEB_COOKIE}={value}; Path=/; Secure; HttpOnly"),
        )
    }

    fn hip_reported(&self, authcookie: &str) {
        remember(&mut lock(&self.state).hip_reported, authcookie.to_string());
    }

    fn has_hip_report(&self, authcookie: &str) -> bool {
        lock(&self.state)
            .hip_reported
            .iter()
            .any(|a| a == authcookie)
    }

    fn has_web_cookie(&self, request: &ServerRequest) -> bool {
        request
            .cookie(WEB_COOKIE)
            .is_some_and(|v| lock(&self.state).web_cookies.iter().any(|c| c == v))
    }
}

fn not_found(peer: SocketAddr, request: &ServerRequest) -> ServerResponse {
    log!("{peer}: no such page: {}", request.path().escape_debug());
    text(404, "Not Found", "text/plain", "not found")
}

fn xml(body: &str) -> ServerResponse {
    text(200, "OK", "application/xml; charset=UTF-8", body)
}

/// GlobalProtect's refusal of a cookie it does not know, as XML.
fn refuse_cookie(peer: SocketAddr, why: &str) -> ServerResponse {
    log!("{peer}: {why}");
    xml(&error_xml("Invalid authentication cookie"))
}

/// Whether a packet from the tun device is IPv6. The gateway hands out no IPv6, so the
/// kernel's IPv6 chatter on its tun device (neighbour discovery, router solicitations)
/// stays off the tunnel: it would keep the client's DPD from ever seeing the link idle.
fn is_ipv6(packet: &[u8]) -> bool {
    packet.first().is_some_and(|b| b >> 4 == 6)
}
