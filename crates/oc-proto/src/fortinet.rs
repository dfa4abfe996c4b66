//! Fortinet FortiGate SSL VPN in tunnel mode, as openconnect speaks it: the login at
//! `/remote/logincheck` (password, then a token challenge or an HTML second factor), the
//! XML configuration at `/remote/fortisslvpn_xml`, and the tunnel request after which the
//! server starts PPP (`ppp::Encapsulation::Fortinet`) on the stream with no HTTP answer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use ipnet::{Ipv4Net, Ipv6Net};
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use thiserror::Error;

use crate::form::{parse_html_form, urlencode, xml_attr, AuthForm, FieldKind, FormField, HtmlForm};
use crate::http::{Request, Response};
use crate::ip_config::IpConfig;

/// openfortivpn's User-Agent, which openconnect sends too: gateways answer it with
/// machine-friendly replies rather than browser pages.
pub const USER_AGENT: &str = "Mozilla/5.0 SV1";
/// The session cookie.
pub const COOKIE: &str = "SVPNCOOKIE";
pub const LOGIN_PATH: &str = "/remote/logincheck";
/// Form ids, as upstream names them (`-F _login:username=...`, `-F _challenge:code=...`).
pub const LOGIN_FORM: &str = "_login";
pub const CHALLENGE_FORM: &str = "_challenge";
/// An HTML second factor's form id: upstream's `parse_form_node` reads no id for Fortinet
/// pages and names every such form `unknown` (`-F unknown:credential=...`).
pub const HTML_FORM: &str = "unknown";
/// The body's size limit for login answers and the configuration.
const MAX_FIELDS: usize = 32;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FortinetError {
    #[error("Fortinet login: unexpected answer HTTP {status}: {body}")]
    Unexpected { status: u16, body: String },
    #[error("Fortinet configuration is not valid XML: {0}")]
    BadXml(String),
    #[error("Fortinet configuration has no <sslvpn-tunnel> element (FortiOS 4's HTML configuration is not supported)")]
    NotTunnelConfig,
    #[error("the gateway offers no PPP tunnel (tunnel methods: {0}); FortiOS's newer non-PPP tunnel is not supported")]
    NoPpp(String),
    #[error("the gateway gave neither an IPv4 nor an IPv6 address")]
    NoAddress,
    #[error("the gateway refused the session cookie (HTTP {0})")]
    CookieRejected(u16),
}

/// The first form: upstream does not read the login page and asks for these two.
pub fn login_form() -> AuthForm {
    AuthForm {
        id: LOGIN_FORM.to_string(),
        fields: vec![
            field("username", "Username:", FieldKind::Text),
            field("credential", "Password:", FieldKind::Password),
        ],
        ..AuthForm::default()
    }
}

fn field(name: &str, label: &str, kind: FieldKind) -> FormField {
    FormField {
        name: name.to_string(),
        label: label.to_string(),
        kind,
        value: None,
        token: false,
    }
}

/// A POST to `/remote/logincheck` with a form's answers (the login form's, or an HTML
/// second factor's), the realm, then `ajax=1&just_logged_in=1`, as upstream sends them.
pub fn login_request(host: &str, realm: &str, answers: &[(String, String)]) -> Request {
    let mut pairs = with_realm(answers, realm);
    pairs.push(("ajax".into(), "1".into()));
    pairs.push(("just_logged_in".into(), "1".into()));
    logincheck(host, &pairs)
}

/// A POST to `/remote/logincheck` answering a token challenge: the answers, the realm,
/// then what the server asked to have sent back ([`challenge_answers`]), as upstream.
pub fn challenge_request(
    host: &str,
    realm: &str,
    answers: &[(String, String)],
    echo: &[(String, String)],
) -> Request {
    logincheck(host, &challenge_answers(with_realm(answers, realm), echo))
}

fn with_realm(answers: &[(String, String)], realm: &str) -> Vec<(String, String)> {
    let mut pairs = answers.to_vec();
    if !pairs.iter().any(|(n, _)| n == "realm") {
        pairs.push(("realm".into(), realm.to_string()));
    }
    pairs
}

fn logincheck(host: &str, pairs: &[(String, String)]) -> Request {
    let mut req = get_like("POST", LOGIN_PATH, host)
        .header("Content-Type", "application/x-www-form-urlencoded");
    req.body = urlencode(pairs).into_bytes();
    req
}

fn get_like(method: &'static str, path: &str, host: &str) -> Request {
    Request::new(method, path)
        .header("Host", host)
        .header("User-Agent", USER_AGENT)
        .header("Accept", "*/*")
}

/// A request carrying the session cookie.
pub fn with_cookie(method: &'static str, path: &str, host: &str, cookie: &str) -> Request {
    get_like(method, path, host).header("Cookie", format!("{COOKIE}={cookie}"))
}

/// What a `/remote/logincheck` answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginStep {
    /// Logged in: the `SVPNCOOKIE` value.
    Success(String),
    /// The token challenge: fill `form` and send its answers with `echo` (as given),
    /// [`challenge_request`].
    Challenge {
        form: Box<AuthForm>,
        echo: Vec<(String, String)>,
    },
    /// An HTML second factor (HTTP 401): fill the form (its hidden fields go back as they
    /// came) and post it as the login form, [`login_request`].
    HtmlForm(Box<AuthForm>),
    /// Wrong username or password (HTTP 405).
    BadCredentials,
}

/// Reads a `/remote/logincheck` answer.
pub fn login_response(resp: &Response) -> Result<LoginStep, FortinetError> {
    if let Some((_, cookie)) = resp
        .head
        .set_cookies()
        .find(|(name, value)| *name == COOKIE && !value.is_empty())
    {
        return Ok(LoginStep::Success(cookie.to_string()));
    }
    let body = String::from_utf8_lossy(&resp.body);
    match resp.head.status {
        405 => Ok(LoginStep::BadCredentials),
        200 if body.starts_with("ret=2") => Ok(token_challenge(&body)),
        401 => html_challenge(&body).ok_or_else(|| unexpected(resp)),
        _ => Err(unexpected(resp)),
    }
}

fn unexpected(resp: &Response) -> FortinetError {
    let body = String::from_utf8_lossy(&resp.body);
    FortinetError::Unexpected {
        status: resp.head.status,
        body: body.chars().take(200).collect(),
    }
}

/// `ret=2,reqid=..,polid=..,grp=..,portal=..,peer=..,magic=..,tokeninfo=..,chal_msg=..`:
/// a code for `code`; the other values go back as they came. FortiToken Mobile push
/// (`tokeninfo=ftm_push`): an empty code asks for the push instead (`ftmpush=1`, no magic).
fn token_challenge(body: &str) -> LoginStep {
    let mut values: Vec<(String, String)> = Vec::new();
    let mut message = None;
    // chal_msg is last and may contain commas.
    let (fields, chal_msg) = match body.split_once(",chal_msg=") {
        Some((f, m)) => (f, Some(m)),
        None => (body, None),
    };
    for pair in fields.split(',').take(MAX_FIELDS) {
        if let Some((k, v)) = pair.split_once('=') {
            values.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    if let Some(m) = chal_msg {
        message = Some(m.trim().to_string());
    }
    let value_of = |name: &str| values.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let push = value_of("tokeninfo").is_some_and(|t| t == "ftm_push");
    let echo: Vec<(String, String)> = ["reqid", "polid", "grp", "portal", "peer", "magic"]
        .iter()
        .filter_map(|k| value_of(k).map(|v| (k.to_string(), v.clone())))
        .collect();
    let label = message.clone().unwrap_or_else(|| "Token code:".into());
    let mut code = field("code", &label, FieldKind::Password);
    code.token = true;
    let mut form = AuthForm {
        id: CHALLENGE_FORM.to_string(),
        message,
        fields: vec![code],
        ..AuthForm::default()
    };
    if push {
        form.title =
            Some("FortiToken Mobile push: leave the code empty to be asked on the phone".into());
    }
    LoginStep::Challenge {
        form: Box::new(form),
        echo,
    }
}

/// A 401 with an HTML form (hidden `magic`, `username`, `reqid`, `grpid`; the password
/// field `credential`; the prompt in a `<b>`): the hidden fields go back as they are, the
/// other one takes the code.
fn html_challenge(body: &str) -> Option<LoginStep> {
    let HtmlForm { mut form, .. } = parse_html_form(body, None, None)?;
    let prompt = body
        .split_once("<b>")
        .and_then(|(_, r)| r.split_once("</b>"))
        .map(|(p, _)| p.trim().to_string())
        .filter(|p| !p.is_empty());
    // The code goes in the password field (`credential`), else the first one shown.
    let at = form
        .fields
        .iter()
        .position(|f| matches!(f.kind, FieldKind::Password))
        .or_else(|| {
            form.fields
                .iter()
                .position(|f| !matches!(f.kind, FieldKind::Hidden))
        })?;
    let code = form.fields.get_mut(at)?;
    code.kind = FieldKind::Password;
    code.token = true;
    if let Some(p) = &prompt {
        code.label.clone_from(p);
    }
    form.id = HTML_FORM.to_string();
    form.message = prompt;
    Some(LoginStep::HtmlForm(Box::new(form)))
}

/// The answers for a challenge: the form's, then what the server asked back (without
/// `magic` for an FTM push with an empty code).
pub fn challenge_answers(
    answers: Vec<(String, String)>,
    echo: &[(String, String)],
) -> Vec<(String, String)> {
    let push = answers.iter().any(|(n, v)| n == "code" && v.is_empty());
    let mut all = answers;
    for (k, v) in echo {
        if push && k == "magic" {
            continue;
        }
        all.push((k.clone(), v.clone()));
    }
    if push {
        all.push(("ftmpush".into(), "1".into()));
    }
    all
}

/// What `/remote/fortisslvpn_xml` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FortinetConfig {
    pub ip: IpConfig,
    /// DTLS offered on the HTTPS port.
    pub dtls: bool,
    /// The heartbeat interval: DPD for both channels.
    pub dpd: Option<Duration>,
    /// `platform major.minor.patch build`, for the log.
    pub version: Option<String>,
    /// The tunnel may be resumed with the same cookie, within this long.
    pub resume_within: Option<Duration>,
}

/// Reads the XML configuration.
pub fn parse_config(xml: &str) -> Result<FortinetConfig, FortinetError> {
    let mut reader = Reader::from_str(xml);
    let mut cfg = FortinetConfig::default();
    let mut seen_root = false;
    let mut methods: Vec<String> = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut negate = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| FortinetError::BadXml(e.to_string()))?;
        let (start, empty) = match &event {
            Event::Start(s) => (s, false),
            Event::Empty(s) => (s, true),
            Event::End(_) => {
                stack.pop();
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let name = start.name().0.to_string();
        let in_v6 = stack.iter().any(|s| s == "ipv6");
        match name.as_str() {
            "sslvpn-tunnel" => {
                seen_root = true;
                cfg.dtls = xml_attr(start, "dtls").as_deref() == Some("1");
            }
            "split-tunnel-info" => negate = xml_attr(start, "negate").as_deref() == Some("1"),
            _ => element(&mut cfg, start, &name, in_v6, negate, &mut methods),
        }
        if !empty {
            stack.push(name);
            if stack.len() > 16 {
                return Err(FortinetError::BadXml("elements nested too deep".into()));
            }
        }
    }
    if !seen_root {
        return Err(FortinetError::NotTunnelConfig);
    }
    if !methods.is_empty() && !methods.iter().any(|m| m == "ppp") {
        return Err(FortinetError::NoPpp(methods.join(", ")));
    }
    if cfg.ip.ipv4.is_none() && cfg.ip.ipv6.is_none() {
        return Err(FortinetError::NoAddress);
    }
    Ok(cfg)
}

fn seconds(start: &BytesStart<'_>, name: &str) -> Option<Duration> {
    xml_attr(start, name)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
}

fn element(
    cfg: &mut FortinetConfig,
    start: &BytesStart<'_>,
    name: &str,
    in_v6: bool,
    negate: bool,
    methods: &mut Vec<String>,
) {
    let ip = &mut cfg.ip;
    match (name, in_v6) {
        ("dtls-config", _) => cfg.dpd = seconds(start, "heartbeat-interval"),
        ("tunnel-method", _) => methods.extend(xml_attr(start, "value")),
        ("fos", _) => {
            let part = |n| xml_attr(start, n).unwrap_or_default();
            cfg.version = Some(format!(
                "{} {}.{}.{} build {}",
                part("platform"),
                part("major"),
                part("minor"),
                part("patch"),
                part("build")
            ));
        }
        ("auth-ses", _)
            if xml_attr(start, "tun-connect-without-reauth").as_deref() == Some("1") =>
        {
            cfg.resume_within =
                seconds(start, "tun-user-ses-timeout").or(Some(Duration::from_secs(30)));
        }
        ("idle-timeout", _) => ip.idle_timeout = seconds(start, "val"),
        ("assigned-addr", false) => {
            ip.ipv4 = xml_attr(start, "ipv4").and_then(|a| a.parse().ok());
        }
        ("assigned-addr", true) => {
            let addr = xml_attr(start, "ipv6").and_then(|a| a.parse::<Ipv6Addr>().ok());
            let len = xml_attr(start, "prefix-len").and_then(|l| l.parse::<u8>().ok());
            ip.ipv6 = addr.and_then(|a| Ipv6Net::new(a, len.unwrap_or(128)).ok());
        }
        ("dns", _) => dns(ip, start, in_v6),
        ("addr", false) => {
            let net = xml_attr(start, "ip")
                .and_then(|a| a.parse::<Ipv4Addr>().ok())
                .zip(xml_attr(start, "mask").and_then(|m| m.parse::<Ipv4Addr>().ok()))
                .and_then(|(a, m)| Ipv4Net::with_netmask(a, m).ok())
                .map(|n| n.trunc());
            if let Some(net) = net {
                if negate {
                    ip.split_exclude4.push(net);
                } else {
                    ip.split_include4.push(net);
                }
            }
        }
        ("addr", true) => {
            let net = xml_attr(start, "ipv6")
                .and_then(|a| a.parse::<Ipv6Addr>().ok())
                .zip(xml_attr(start, "prefix-len").and_then(|l| l.parse::<u8>().ok()))
                .and_then(|(a, l)| Ipv6Net::new(a, l).ok())
                .map(|n| n.trunc());
            if let Some(net) = net {
                if negate {
                    ip.split_exclude6.push(net);
                } else {
                    ip.split_include6.push(net);
                }
            }
        }
        _ => {}
    }
}

/// `<dns ip=".." domain="..">` / `<dns ipv6="..">`; domains may come with `;` escaped as
/// `\059`.
fn dns(ip: &mut IpConfig, start: &BytesStart<'_>, in_v6: bool) {
    let key = if in_v6 { "ipv6" } else { "ip" };
    if let Some(addr) = xml_attr(start, key).and_then(|a| a.parse::<IpAddr>().ok()) {
        if ip.dns.len() < 3 {
            ip.dns.push(addr);
        }
    }
    if let Some(domain) = xml_attr(start, "domain") {
        let domain = domain.replace("\\059", ";").replace([';', ','], " ");
        let domain = domain.trim();
        if !domain.is_empty() {
            ip.default_domain = Some(match ip.default_domain.take() {
                Some(d) => format!("{d} {domain}"),
                None => domain.to_string(),
            });
        }
    }
}

/// How long PPP waits for the gateway's first bytes after the tunnel request.
const FIRST_BYTES_WAIT: Duration = Duration::from_secs(1);

/// The start of a TLS tunnel after `GET /remote/sslvpn-tunnel`: the gateway either starts
/// PPP or answers in HTTP and closes at once. PPP written into that close fails before the
/// answer can be read, so our PPP waits for the gateway's first bytes, or a second for
/// gateways that wait for us; the first bytes say which answer it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelStart {
    /// Until when PPP holds back; `None` once the first bytes were seen.
    hold_until: Option<Instant>,
}

impl TunnelStart {
    /// The tunnel request went out at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            hold_until: Some(now + FIRST_BYTES_WAIT),
        }
    }

    /// When PPP may write, if it may not yet at `now`.
    pub fn holding_until(&self, now: Instant) -> Option<Instant> {
        self.hold_until.filter(|t| now < *t)
    }

    /// The first bytes read after the request (later reads pass): `Err(status)` when they
    /// are an HTTP answer instead of PPP.
    pub fn first_bytes(&mut self, bytes: &[u8]) -> Result<(), u16> {
        if self.hold_until.take().is_none() {
            return Ok(());
        }
        match http_status_instead_of_ppp(bytes) {
            Some(status) => Err(status),
            None => Ok(()),
        }
    }
}

/// `Some(status)` when the first bytes after the tunnel request are an HTTP answer.
fn http_status_instead_of_ppp(first: &[u8]) -> Option<u16> {
    let line = first.strip_prefix(b"HTTP/")?;
    let text = String::from_utf8_lossy(line.get(..line.len().min(64)).unwrap_or_default());
    Some(
        text.split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(500),
    )
}

mod dtls;
pub use dtls::{
    dtls_client_hello, dtls_server_hello, read_dtls_client_hello, read_dtls_server_hello,
};

#[cfg(test)]
mod tests;
