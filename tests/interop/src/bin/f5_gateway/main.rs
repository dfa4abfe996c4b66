//! `f5_gateway`: a test gateway speaking F5 BIG-IP APM SSL VPN ("network access": an HTML
//! login form, an XML configuration, then PPP over DTLS or over a second TLS connection),
//! enough for openconnect's `--protocol=f5` to log in and pass traffic. It is test code: one
//! user, one network-access resource, one tunnel at a time, no persistence.
//!
//! ```text
//! f5_gateway --listen ADDR:PORT --cert PEM --key PEM --user NAME --password PASS
//!            --tunnel-addr IPV4 --client-addr IPV4 [--hdlc] [--otp CODE] [--domain NAME]...
//!            [--dns IPV4]... [--route NET/PREFIX]... [--dns-suffix NAME] [--banner TEXT]
//!            [--tun NAME] [--log FILE] [--no-dtls | --dtls-port N] [--dtls10]
//!            [--dtls-refuse] [--json-login]
//! ```
//!
//! Run it as root in the namespace that should own the tun device. It prints
//! `listening on https://ADDR:PORT` once it accepts connections, and logs every request,
//! login step, configuration, tunnel and PPP event to stderr (and to `--log FILE`).
//!
//! What it answers, as an APM does (all on one HTTPS port):
//! - `GET /`: `302` to `/my.policy`, starting an access-policy session: cookies
//!   `MRHSession` (a pre-login value, not yet proof of anything) and `LastMRH_Session`;
//! - `GET /my.policy`: the logon page, `<form id="auth_form" name="e1" method="post"
//!   action="/my.policy">` with `username`, `password`, a `domain` select when `--domain`
//!   is given, and a hidden `vhost=standard`; the banner in `credentials_table_header`;
//! - `POST /my.policy` (form-encoded, with the pre-login `MRHSession`): wrong credentials
//!   get the logon page again (200) with the error in `credentials_table_postheader`. The
//!   right ones get a new `MRHSession`, `LastMRH_Session` and `F5_ST=1z1z1z<now>z3600`, and
//!   a `302` to `/vdesk/webtop.eui?...` (a 200 page). With `--otp CODE` the right password
//!   first gets a second form (same form id `auth_form`, one password field `_F5_challenge`,
//!   the prompt in `credentials_table_postheader`); only the right code then logs in. After
//!   three wrong codes the policy session ends and the logon page starts a new one;
//! - with `--json-login` the logon and code pages hold no `<form>`: a script builds the
//!   form from the JSON given to `appLoader.configure({...})`, as BIG-IP's "modern" pages
//!   do (`{"pageType": "logon", ..., "logon": {"form": {"id": "auth_form", "title": ..,
//!   "fields": [{"type": "text"|"password", "name", "caption", "value", "disabled"}]}}}`,
//!   pretty-printed so that the object closes on a line of its own, `\n});`, which is how
//!   openconnect finds its end). Same fields (no `domain` select, no hidden `vhost`: the
//!   JSON has only text and password fields), same posts to `/my.policy`; the error or
//!   the prompt is the form's `title`, the only text openconnect reads from it;
//! - `GET /vdesk/vpn/index.php3?outform=xml&client_version=2.0` (logged-in `MRHSession`):
//!   the `favorites` XML listing one resource, `/Common/na`;
//! - `GET /vdesk/vpn/connect.php3?resourcename=/Common/na&outform=xml&client_version=2.0`:
//!   the resource's `favorite` XML with a fresh `Session_ID` and `ur_Z`, `IPV4_0=1`,
//!   `IPV6_0=0`, `hdlc_framing` (`yes` with `--hdlc`), `tunnel_dtls=1`, `tunnel_port_dtls`
//!   and `dtls_v1_2_supported=1` (`tunnel_dtls=0` with `--no-dtls`; no
//!   `dtls_v1_2_supported` with `--dtls10`, and the client offers DTLS 1.0 only), `DNS0`,
//!   `DNSSuffix0`, and `LAN0` with split tunnelling (`--route`), or `UseDefaultGateway0=1`
//!   without routes;
//! - `GET /myvpn?sess=..&hdlc_framing=..&ipv4=..&ipv6=..&Z=..&hostname=..` on any
//!   connection (openconnect 9.01 sends it on the kept-alive login connection when that
//!   is still open), no cookies needed: the `Session_ID` and `ur_Z` from
//!   connect.php3 must match, `hdlc_framing` must be what was announced and `ipv4=yes`. Then
//!   `HTTP/1.1 201 Created` with `X-VPN-client-IP`, `X-VPN-server-IP` and
//!   `Content-Length: 0` (openconnect reads a head without a length as a body running to
//!   the end of the connection), then PPP on the stream: `f5 00 LEN16` before each
//!   frame, or RFC 1662 HDLC framing with `--hdlc` (then each TLS record holds only whole
//!   frames: openconnect 9.01 un-HDLCs every record on its own and drops a frame that goes
//!   on in the next). The tun device gets its addresses once IPCP is open, and packets
//!   flow between it and PPP. A new tunnel replaces the old one. An unknown session gets
//!   `504 Gateway Timeout` and the connection is closed; a bad parameter `400`;
//! - `GET /vdesk/hangup.php3?hangup_error=1` (with `MRHSession`): the session is forgotten
//!   and its tunnel ended (log line `hangup: session forgotten`).
//!
//! Without a logged-in `MRHSession` the webtop and the XML pages redirect to `/my.policy`,
//! as an APM sends a browser back to the logon page.
//!
//! DTLS (UDP, `--dtls-port`, by default the HTTPS port): after a certificate handshake the
//! client's first record is the same `GET /myvpn?...` request, checked the same way; the
//! gateway answers one record, `HTTP/1.1 200 OK` with the `X-VPN-*` headers, then PPP runs
//! with one frame per record (and the session's TLS tunnel ends); an unknown session gets
//! the 504 (and with `--dtls-refuse` every request does: the client falls back to TLS).
//!
//! By concern: `login` (the policy's pages), `json_page` (the script-built pages of
//! `--json-login`), `config` (the resource and its settings), `tunnel` (the tunnel request
//! over TLS and DTLS).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Mutex;

use ferroconnect_interop::gateway::{
    self, field, lock, parse_command_line, parse_query, parse_value, random_hex, redirect,
    remember, text, Answer, Common, Site, TunLink, Upgraded,
};
use oc_proto::http::server::{Method, RequestLimits, ServerRequest, ServerResponse};
use oc_proto::ppp::Encapsulation;

const USAGE: &str = "\
usage: f5_gateway --listen ADDR:PORT --cert PEM --key PEM --user NAME --password PASS
                  --tunnel-addr IPV4 --client-addr IPV4 [options]

An F5 BIG-IP APM SSL VPN test gateway (HTML logon form at /my.policy, XML configuration
from /vdesk/vpn/, PPP over TLS at /myvpn) for openconnect --protocol=f5. Run as root in
the namespace that gets the tun device.

  --listen ADDR:PORT     where to accept HTTPS (e.g. 198.18.10.1:443)
  --cert PEM, --key PEM  the server certificate (chain) and its private key
  --user NAME            the one user that may log in
  --password PASS        its password
  --otp CODE             after the password, ask for this code in a second form
                         (form id auth_form, password field _F5_challenge)
  --domain NAME          offer NAME in the logon form's `domain` select (the authgroup) and
                         require one of them; may be repeated (none: no select)
  --hdlc                 announce hdlc_framing=yes: PPP in RFC 1662 HDLC framing (default
                         no: each frame behind `f5 00` and its length)
  --tunnel-addr IPV4     the gateway's own tunnel address (X-VPN-server-IP, PPP, tun)
  --client-addr IPV4     the address the client is given (X-VPN-client-IP, IPCP)
  --dns IPV4             a DNS server to announce (DNS0 and IPCP); may be repeated
  --dns-suffix NAME      the DNS search domain to announce (DNSSuffix0)
  --route NET/PREFIX     a split-tunnel route to announce (LAN0); may be repeated (none:
                         UseDefaultGateway0=1, everything goes through the tunnel)
  --tunnel-addr6 IPV6, --client-addr6 IPV6
                         IPv6 too (IPV6_0=1): the gateway's and the client's addresses in
                         one /64 (X-VPN-server-IPv6, X-VPN-client-IPv6, IPV6CP, tun)
  --route6 NET/PREFIX    an IPv6 split-tunnel route to announce (LAN6_0); may be repeated
  --banner TEXT          the logon page's header text (credentials_table_header)
  --no-dtls              no DTLS: tunnel_dtls=0, PPP runs over TLS
  --dtls-port N          the UDP port for DTLS (default: the HTTPS port)
  --dtls10               leave out dtls_v1_2_supported: the client offers DTLS 1.0 only
  --dtls-refuse          complete DTLS handshakes but answer every tunnel request there
                         with 504, so that clients fall back to PPP over TLS
  --json-login           serve the logon (and code) pages script-built, as BIG-IP's
                         modern pages: the form in appLoader.configure({...}) JSON, no
                         <form> (not with --domain)
  --tun NAME             the tun device to create (default f5gw0)
  --log FILE             also append the log to FILE (it always goes to stderr)
  --help                 this text

It prints `listening on https://ADDR:PORT` once ready.";

/// The one network-access resource.
const RESOURCE: &str = "/Common/na";
/// The second factor's field in its form.
const OTP_FIELD: &str = "_F5_challenge";
/// Wrong codes before the policy session ends.
const MAX_OTP_TRIES: u8 = 3;
/// What `F5_ST` says the session lasts, in seconds.
const SESSION_SECONDS: u64 = 3600;

macro_rules! log {
    ($($arg:tt)*) => { ::ferroconnect_interop::gateway::log_line(format_args!($($arg)*)) };
}

mod config;
mod json_page;
mod login;
mod tunnel;

use config::{connect_php3, favorites_xml};
use login::{code_page, logon_page, policy_post, with_session_cookies};
use tunnel::{run_tunnel, tunnel_request};

// ---------------------------------------------------------------------------------------
// Command line

/// The common options, and F5's own.
#[derive(Debug, Clone)]
struct Config {
    common: Common,
    domains: Vec<String>,
    hdlc: bool,
    dns_suffix: Option<String>,
    banner: String,
    /// No `dtls_v1_2_supported` in the configuration.
    dtls10: bool,
    /// The logon and code pages as `appLoader.configure` JSON instead of HTML forms.
    json_login: bool,
}

/// The configuration, or `None` when `--help` was asked for.
fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<Config>, String> {
    let (mut domains, mut hdlc, mut dns_suffix, mut banner) = (Vec::new(), false, None, None);
    let (mut dtls10, mut dtls_port, mut json_login) = (false, None, false);
    let flags = ["--hdlc", "--dtls10", "--json-login"];
    let common = parse_command_line(args, &flags, "f5gw0", |name, value| {
        match (name, value) {
            ("--hdlc", None) => hdlc = true,
            ("--dtls10", None) => dtls10 = true,
            ("--json-login", None) => json_login = true,
            ("--dtls-port", Some(value)) => dtls_port = Some(value.to_string()),
            ("--domain", Some(value)) => domains.push(value.to_string()),
            ("--dns-suffix", Some(value)) => dns_suffix = Some(value.to_string()),
            ("--banner", Some(value)) => banner = Some(value.to_string()),
            _ => return false,
        }
        true
    })?;
    let Some(mut common) = common else {
        return Ok(None);
    };
    if let (Some(dtls), Some(port)) = (common.dtls.as_mut(), dtls_port) {
        dtls.port = parse_value("--dtls-port", &port)?;
    }
    // The XML is built from these without escaping.
    let plain = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
    };
    if !dns_suffix.as_deref().is_none_or(plain) {
        return Err("--dns-suffix: letters, digits, '-', '.' and '_' only".into());
    }
    // openconnect reads only text and password fields from the JSON: a select would be a
    // text field it asks for, not the authgroup.
    if json_login && !domains.is_empty() {
        let why = "a script-built form has no domain select that openconnect reads";
        return Err(format!(
            "--json-login and --domain do not go together: {why}"
        ));
    }
    Ok(Some(Config {
        common,
        domains,
        hdlc,
        dns_suffix,
        banner: banner.unwrap_or_else(|| "ferroconnect F5 test gateway".to_string()),
        dtls10,
        json_login,
    }))
}

impl AsRef<Common> for Config {
    fn as_ref(&self) -> &Common {
        &self.common
    }
}

fn main() -> ExitCode {
    gateway::main("f5_gateway", USAGE, parse_args, Gateway::new)
}

// ---------------------------------------------------------------------------------------
// Shared state

/// Where a policy session (before login) stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    /// The logon form was shown.
    Password,
    /// The password was right; the code form was shown.
    Code { user: String, wrong: u8 },
}

#[derive(Debug)]
struct Pending {
    mrh: String,
    stage: Stage,
}

/// What connect.php3 handed out for the tunnel request.
#[derive(Debug, Clone)]
struct Grant {
    session_id: String,
    z: String,
}

/// A logged-in session.
#[derive(Debug)]
struct Login {
    mrh: String,
    user: String,
    grant: Option<Grant>,
}

#[derive(Debug, Default)]
struct State {
    pending: VecDeque<Pending>,
    logins: VecDeque<Login>,
    /// The session whose tunnel runs now, and its generation.
    tunnel: Option<(String, u64)>,
}

struct Gateway {
    config: Config,
    link: TunLink,
    state: Mutex<State>,
}

impl Gateway {
    /// The gateway serving `config` with the tun device `link`; it says so in the log.
    fn new(config: Config, link: TunLink) -> Self {
        log!(
            "listening on https://{} (tun {}, user {}, framing {}, second factor {}, domains {:?}, \
             logon pages {})",
            config.common.listen,
            link.name(),
            config.common.user,
            if config.hdlc { "HDLC" } else { "F5" },
            if config.common.otp.is_some() {
                "required"
            } else {
                "off"
            },
            config.domains,
            if config.json_login {
                "script-built (JSON)"
            } else {
                "HTML forms"
            },
        );
        Self {
            config,
            link,
            state: Mutex::new(State::default()),
        }
    }

    /// A new pre-login policy session: its `MRHSession`.
    fn start_policy(&self) -> String {
        let mrh = random_hex::<16>();
        remember(
            &mut lock(&self.state).pending,
            Pending {
                mrh: mrh.clone(),
                stage: Stage::Password,
            },
        );
        mrh
    }

    fn stage(&self, mrh: Option<&str>) -> Option<Stage> {
        let state = lock(&self.state);
        let mrh = mrh?;
        let pending = state.pending.iter().find(|p| p.mrh == mrh)?;
        Some(pending.stage.clone())
    }

    fn set_stage(&self, mrh: &str, stage: Stage) {
        let mut state = lock(&self.state);
        if let Some(pending) = state.pending.iter_mut().find(|p| p.mrh == mrh) {
            pending.stage = stage;
        }
    }

    fn end_policy(&self, mrh: &str) {
        lock(&self.state).pending.retain(|p| p.mrh != mrh);
    }

    /// Ends the policy session `pre` with a login: the new `MRHSession`.
    fn log_in(&self, pre: &str, user: &str) -> String {
        let mrh = random_hex::<16>();
        let mut state = lock(&self.state);
        state.pending.retain(|p| p.mrh != pre);
        remember(
            &mut state.logins,
            Login {
                mrh: mrh.clone(),
                user: user.to_string(),
                grant: None,
            },
        );
        mrh
    }

    /// The user logged in with this `MRHSession`.
    fn user(&self, mrh: Option<&str>) -> Option<String> {
        let mrh = mrh?;
        let state = lock(&self.state);
        let login = state.logins.iter().find(|l| l.mrh == mrh)?;
        Some(login.user.clone())
    }

    /// A fresh tunnel grant for the session (replacing any earlier one).
    fn grant(&self, mrh: &str) -> Option<Grant> {
        let mut state = lock(&self.state);
        let login = state.logins.iter_mut().find(|l| l.mrh == mrh)?;
        let grant = Grant {
            session_id: random_hex::<16>(),
            z: random_hex::<8>(),
        };
        login.grant = Some(grant.clone());
        Some(grant)
    }

    /// The session whose grant the tunnel request shows; it becomes the running tunnel.
    fn claim_tunnel(&self, session_id: &str, z: &str) -> Result<(String, u64), TunnelRefusal> {
        let mut state = lock(&self.state);
        let login = state
            .logins
            .iter()
            .find(|l| l.grant.as_ref().is_some_and(|g| g.session_id == session_id))
            .ok_or(TunnelRefusal::UnknownSession)?;
        if login.grant.as_ref().is_none_or(|g| g.z != z) {
            return Err(TunnelRefusal::WrongZ);
        }
        let mrh = login.mrh.clone();
        let generation = self.link.claim();
        state.tunnel = Some((mrh.clone(), generation));
        Ok((mrh, generation))
    }

    /// The tunnel `generation` ended on its own.
    fn tunnel_ended(&self, generation: u64) {
        let mut state = lock(&self.state);
        if state.tunnel.as_ref().is_some_and(|(_, g)| *g == generation) {
            state.tunnel = None;
        }
    }

    /// Forgets the session; ends its tunnel if it runs.
    fn hang_up(&self, mrh: &str) -> bool {
        let mut state = lock(&self.state);
        let before = state.logins.len();
        state.logins.retain(|l| l.mrh != mrh);
        if state.tunnel.as_ref().is_some_and(|(m, _)| m == mrh) {
            state.tunnel = None;
            self.link.end_current();
        }
        state.logins.len() != before
    }
}

#[derive(Debug, Clone, Copy)]
enum TunnelRefusal {
    UnknownSession,
    WrongZ,
}

/// The tunnel request's decisions, taken while answering it.
#[derive(Debug)]
struct TunnelStart {
    mrh: String,
    generation: u64,
    encapsulation: Encapsulation,
}

// ---------------------------------------------------------------------------------------
// The pages

impl Site for Gateway {
    type Upgrade = TunnelStart;

    fn limits(&self) -> RequestLimits {
        RequestLimits {
            // Logon forms are small.
            max_body_bytes: 16 * 1024,
            // The tunnel request carries the client's hostname in base64.
            max_target_bytes: 1024,
            ..RequestLimits::default()
        }
    }

    fn answer(&self, peer: SocketAddr, request: &ServerRequest) -> Answer<TunnelStart> {
        let mrh = request.cookie("MRHSession");
        let reply = match (&request.method, request.path()) {
            (Method::Get, "/") => {
                let mrh = self.start_policy();
                log!("{peer}: policy session started");
                with_session_cookies(redirect("/my.policy"), &mrh)
            }
            (Method::Get, "/my.policy") => match self.stage(mrh) {
                Some(Stage::Password) => logon_page(&self.config, None),
                Some(Stage::Code { .. }) => code_page(&self.config, None),
                None => {
                    let mrh = self.start_policy();
                    log!("{peer}: no policy session; a new one started");
                    with_session_cookies(logon_page(&self.config, None), &mrh)
                }
            },
            (Method::Post, "/my.policy") => policy_post(self, peer, mrh, &request.body),
            (Method::Get, "/vdesk/webtop.eui") => match self.user(mrh) {
                Some(_) => html(200, "OK", "webtop", "<p>Network access: na</p>"),
                None => not_logged_in(peer),
            },
            (Method::Get, "/vdesk/vpn/index.php3") => match self.user(mrh) {
                Some(_) if xml_wanted(request) => xml(favorites_xml()),
                Some(_) => bad_request(peer, "outform=xml is missing"),
                None => not_logged_in(peer),
            },
            (Method::Get, "/vdesk/vpn/connect.php3") => connect_php3(self, peer, mrh, request),
            (Method::Get, "/myvpn") => return tunnel_request(self, peer, request),
            (Method::Get, "/vdesk/hangup.php3") => {
                match mrh {
                    Some(m) if self.hang_up(m) => log!("{peer}: hangup: session forgotten"),
                    _ => log!("{peer}: hangup without a logged-in session"),
                }
                html(200, "OK", "logged out", "<p>Your session is finished.</p>")
            }
            _ => text(404, "Not Found", "text/plain", "not found"),
        };
        Answer::Reply(reply)
    }

    async fn tunnel(&self, tunnel: Upgraded<TunnelStart>) -> Result<String, String> {
        run_tunnel(self, tunnel).await
    }
}

fn html(status: u16, reason: &str, title: &str, body: &str) -> ServerResponse {
    let page = format!(
        "<!DOCTYPE html>\n<html><head><title>{title}</title></head>\n<body>\n{body}\n</body></html>\n"
    );
    text(status, reason, "text/html; charset=utf-8", &page)
}

fn xml(body: String) -> ServerResponse {
    text(200, "OK", "text/xml", &body)
}

fn bad_request(peer: SocketAddr, why: &str) -> ServerResponse {
    log!("{peer}: bad request: {why}");
    text(400, "Bad Request", "text/plain", why)
}

fn not_logged_in(peer: SocketAddr) -> ServerResponse {
    log!("{peer}: no logged-in MRHSession; back to the logon page");
    redirect("/my.policy")
}

fn xml_wanted(request: &ServerRequest) -> bool {
    field(&parse_query(&request.target), "outform") == Some("xml")
}
