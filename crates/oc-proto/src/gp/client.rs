//! The client's requests, with the strings upstream sends for each `--os`, the session
//! cookie they carry, and the two answers that are not GlobalProtect XML: the HIP check's
//! and the TLS tunnel's `START_TUNNEL`.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::reply::{excerpt, Reply};
use super::xml::Element;
use super::{GpError, CLIENT_VER, DEFAULT_APP_VERSION, START_TUNNEL, USER_AGENT};
use crate::http::Request;
use crate::url::percent_decode;

/// Which side of GlobalProtect a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interface {
    /// `/global-protect/`: authentication and the list of gateways.
    Portal,
    /// `/ssl-vpn/`: authentication, configuration and the tunnel.
    Gateway,
}

impl Interface {
    pub const fn directory(self) -> &'static str {
        match self {
            Self::Portal => "global-protect",
            Self::Gateway => "ssl-vpn",
        }
    }

    /// The login's path: the portal's configuration, or the gateway's login.
    pub const fn login_path(self) -> &'static str {
        match self {
            Self::Portal => "/global-protect/getconfig.esp",
            Self::Gateway => "/ssl-vpn/login.esp",
        }
    }
}

/// Who the client says it is: `--os` (upstream's "platname": `linux`, `linux-64`, `win`,
/// `mac-intel`, `android`, `apple-ios`), the computer's name, the version it reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// `--os` as given: sent as `os-version`.
    pub os: String,
    /// The local host name (`computer`).
    pub computer: String,
    /// `app-version` in getconfig: the portal's own version when it named one (upstream
    /// parrots it so that the gateway does not refuse an "old" client).
    pub app_version: String,
    /// `ipv6-support=yes` unless `--disable-ipv6`.
    pub ipv6: bool,
}

impl ClientInfo {
    pub fn new(os: &str, computer: &str) -> Self {
        Self {
            os: os.to_string(),
            computer: computer.to_string(),
            app_version: DEFAULT_APP_VERSION.to_string(),
            ipv6: true,
        }
    }

    /// `clientos`: what GlobalProtect's own clients call the platform.
    pub fn clientos(&self) -> &'static str {
        platform_name(&self.os)
    }
}

/// What GlobalProtect's and Pulse's own clients call the platform `--os` names (upstream's
/// `gpst_os_name`; 9.01 says `Mac` for `apple-ios` and `Linux` for `android`).
pub fn platform_name(os: &str) -> &'static str {
    match os {
        "mac-intel" => "Mac",
        "apple-ios" => "iOS",
        "linux" | "linux-64" => "Linux",
        "android" => "Android",
        _ => "Windows",
    }
}

/// The headers upstream sends every GlobalProtect request with.
fn base(method: &'static str, path: &str, host: &str) -> Request {
    Request::new(method, path)
        .header("Host", host)
        .header("User-Agent", USER_AGENT)
        .header("Accept", "*/*")
        .header("Accept-Encoding", "identity")
}

fn form_post(path: &str, host: &str, body: String) -> Request {
    let mut req =
        base("POST", path, host).header("Content-Type", "application/x-www-form-urlencoded");
    req.body = body.into_bytes();
    req
}

/// `name=value` appended to `body` (after `&` unless it is empty), both escaped as
/// upstream's `buf_append_urlencoded`: everything but ASCII letters, digits and `-_.~` as
/// `%XX` (a space too).
pub fn append_opt(body: &mut String, name: &str, value: &str) {
    if !body.is_empty() {
        body.push('&');
    }
    push_escaped(body, name);
    body.push('=');
    push_escaped(body, value);
}

fn push_escaped(out: &mut String, text: &str) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// `POST /{portal|gateway}/prelogin.esp?tmp=tmp&clientVer=4100&clientos=..`. Upstream
/// posts `cas-support=yes` unless `--no-external-auth` (9.01 posts nothing).
pub fn prelogin_request(
    host: &str,
    interface: Interface,
    client: &ClientInfo,
    cas_support: bool,
) -> Request {
    let path = format!(
        "/{}/prelogin.esp?tmp=tmp&clientVer={CLIENT_VER}&clientos={}",
        interface.directory(),
        client.clientos()
    );
    let body = if cas_support { "cas-support=yes" } else { "" };
    form_post(&path, host, body.to_string())
}

/// What a login post carries besides the client's identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginPost {
    /// The server's host name (`server`).
    pub server: String,
    /// From the portal's configuration, to continue on the gateway without asking again.
    pub portal_userauthcookie: Option<String>,
    pub portal_prelogonuserauthcookie: Option<String>,
    /// The addresses of an earlier tunnel, to get them again.
    pub preferred_ip: Option<Ipv4Addr>,
    pub preferred_ipv6: Option<Ipv6Addr>,
    /// A challenge's `inputStr`.
    pub input_str: Option<String>,
    /// The form's answers in the form's order (`user`, then `passwd` or the external
    /// secret's field).
    pub answers: Vec<(String, String)>,
}

/// The login post: the portal's `getconfig.esp` or the gateway's `login.esp`, with the
/// fields upstream sends, in its order. (9.01 and later send the IPv4 address as
/// `preferred-ipv6`; this sends the IPv6 one.)
pub fn login_request(
    host: &str,
    interface: Interface,
    client: &ClientInfo,
    post: &LoginPost,
) -> Request {
    let mut body = format!(
        "jnlpReady=jnlpReady&ok=Login&direct=yes&clientVer={CLIENT_VER}&prot=https:&internal=no"
    );
    append_opt(&mut body, "ipv6-support", yes_no(client.ipv6));
    append_opt(&mut body, "clientos", client.clientos());
    append_opt(&mut body, "os-version", &client.os);
    append_opt(&mut body, "server", &post.server);
    append_opt(&mut body, "computer", &client.computer);
    let optional = [
        ("portal-userauthcookie", post.portal_userauthcookie.clone()),
        (
            "portal-prelogonuserauthcookie",
            post.portal_prelogonuserauthcookie.clone(),
        ),
        ("preferred-ip", post.preferred_ip.map(|a| a.to_string())),
        ("preferred-ipv6", post.preferred_ipv6.map(|a| a.to_string())),
        ("inputStr", post.input_str.clone()),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            append_opt(&mut body, name, &value);
        }
    }
    for (name, value) in &post.answers {
        append_opt(&mut body, name, value);
    }
    form_post(interface.login_path(), host, body)
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// The session's cookie as upstream keeps it: a query string (`authcookie=..&portal=..&
/// user=..&domain=..&preferred-ip=..&computer=..`), which `--authenticate` prints and
/// `--cookie` takes. The pieces stay as they came so that what goes back to the gateway is
/// byte for byte what it gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpCookie {
    /// `(name, value)` still escaped.
    raw: Vec<(String, String)>,
}

impl GpCookie {
    /// Reads a cookie string (bounded: at most 64 fields) exactly as it is: the caller
    /// strips a line end it read it with.
    pub fn parse(text: &str) -> Self {
        let raw = text
            .split('&')
            .filter(|p| !p.is_empty())
            .take(64)
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (name.to_string(), value.to_string())
            })
            .collect();
        Self { raw }
    }

    /// Builds one from plain values (escaped here).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut text = String::new();
        for (name, value) in pairs {
            append_opt(&mut text, name, value);
        }
        Self::parse(&text)
    }

    /// The decoded value of the first field `name`.
    pub fn get(&self, name: &str) -> Option<String> {
        self.raw
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| percent_decode(v, true))
    }

    /// Whether it names the session (`authcookie` and `user`, which the tunnel request
    /// needs; getconfig also wants `portal`).
    pub fn check(&self) -> Result<(), GpError> {
        for name in ["authcookie", "user"] {
            if self.get(name).is_none_or(|v| v.is_empty()) {
                return Err(GpError::CookieLacks(name));
            }
        }
        Ok(())
    }

    /// The fields named in `names` (`keep`) or all others (`!keep`), in the cookie's
    /// order, as a query string (upstream's `filter_opts`).
    pub fn filtered(&self, names: &[&str], keep: bool) -> String {
        self.raw
            .iter()
            .filter(|(n, _)| names.contains(&n.as_str()) == keep)
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }

    pub fn as_query(&self) -> String {
        self.filtered(&[], false)
    }
}

impl std::fmt::Display for GpCookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_query())
    }
}

/// The algorithms the client offers in getconfig (upstream's lists).
pub const OFFERED_HMAC: &str = "sha1,md5,sha256";
pub const OFFERED_ENC: &str = "aes-128-cbc,aes-256-cbc";

/// `POST /ssl-vpn/getconfig.esp`: the client's identity and offers, then the cookie. On a
/// reconnect `previous` holds the addresses the tunnel had, asked for again in place of
/// the cookie's `preferred-ip`/`preferred-ipv6`.
pub fn getconfig_request(
    host: &str,
    client: &ClientInfo,
    cookie: &GpCookie,
    previous: Option<(Option<Ipv4Addr>, Option<Ipv6Addr>)>,
) -> Request {
    let mut body = "client-type=1&protocol-version=p1&internal=no".to_string();
    append_opt(&mut body, "app-version", &client.app_version);
    append_opt(&mut body, "ipv6-support", yes_no(client.ipv6));
    append_opt(&mut body, "clientos", client.clientos());
    append_opt(&mut body, "os-version", &client.os);
    append_opt(&mut body, "hmac-algo", OFFERED_HMAC);
    append_opt(&mut body, "enc-algo", OFFERED_ENC);
    let rest = match previous {
        Some((ip, ip6)) => {
            let show = |a: Option<String>| a.unwrap_or_default();
            append_opt(&mut body, "preferred-ip", &show(ip.map(|a| a.to_string())));
            append_opt(
                &mut body,
                "preferred-ipv6",
                &show(ip6.map(|a| a.to_string())),
            );
            cookie.filtered(&["preferred-ip", "preferred-ipv6"], false)
        }
        None => cookie.as_query(),
    };
    if !rest.is_empty() {
        body.push('&');
        body.push_str(&rest);
    }
    form_post("/ssl-vpn/getconfig.esp", host, body)
}

/// `POST /ssl-vpn/hipreportcheck.esp` (`report` `None`) or `/ssl-vpn/hipreport.esp` (the
/// HIP script's report). `md5` is the client's token for this host and gateway: an MD5 of
/// [`hip_token_input`] in hex.
pub fn hip_check_request(
    host: &str,
    cookie: &GpCookie,
    client_ip: Option<Ipv4Addr>,
    client_ipv6: Option<Ipv6Addr>,
    md5: &str,
    report: Option<&str>,
) -> Request {
    let mut body = format!("client-role=global-protect-full&{cookie}");
    if let Some(ip) = client_ip {
        append_opt(&mut body, "client-ip", &ip.to_string());
    }
    if let Some(ip) = client_ipv6 {
        append_opt(&mut body, "client-ipv6", &ip.to_string());
    }
    let path = match report {
        Some(report) => {
            append_opt(&mut body, "report", report);
            "/ssl-vpn/hipreport.esp"
        }
        None => {
            append_opt(&mut body, "md5", md5);
            "/ssl-vpn/hipreportcheck.esp"
        }
    };
    form_post(path, host, body)
}

/// What upstream hashes into the HIP token: the cookie without the fields that change
/// from one session to the next.
pub fn hip_token_input(cookie: &GpCookie) -> String {
    cookie.filtered(&["authcookie", "preferred-ip", "preferred-ipv6"], false)
}

/// The HIP check's answer: whether the gateway wants a report.
pub fn read_hip_check(reply: &Reply) -> Result<bool, GpError> {
    let Reply::Xml(root) = reply else {
        return Err(GpError::Malformed(
            "a challenge instead of the HIP check".into(),
        ));
    };
    check_root(root, "response")?;
    match root
        .child_text("hip-report-needed")
        .as_deref()
        .map(str::trim)
    {
        Some("no") => Ok(false),
        Some("yes") => Ok(true),
        other => Err(GpError::BadConfigValue {
            tag: "hip-report-needed",
            value: other.unwrap_or("(missing)").to_string(),
        }),
    }
}

pub(super) fn check_root(root: &Element, expected: &'static str) -> Result<(), GpError> {
    if root.name == expected {
        Ok(())
    } else {
        Err(GpError::UnexpectedRoot {
            expected,
            got: excerpt(&root.name),
        })
    }
}

/// `POST /ssl-vpn/logout.esp` with the whole cookie: the gateway ends the session only if
/// `portal`, `user`, `domain` and `computer` match what it gave out.
pub fn logout_request(host: &str, cookie: &GpCookie) -> Request {
    form_post("/ssl-vpn/logout.esp", host, cookie.as_query())
}

/// The TLS tunnel's request, byte for byte as upstream writes it: `GET path?` with the
/// cookie's `user` and `authcookie` (in the cookie's order), `HTTP/1.1` and no headers at
/// all.
pub fn tunnel_request(path: &str, cookie: &GpCookie) -> Vec<u8> {
    let query = cookie.filtered(&["user", "authcookie"], true);
    let path: String = path.chars().filter(|c| !c.is_control()).collect();
    format!("GET {path}?{query} HTTP/1.1\r\n\r\n").into_bytes()
}

/// The answer to the tunnel request so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelAnswer {
    /// `START_TUNNEL`: framed packets follow from `rest` (its offset in the input) on.
    Started { rest: usize },
    /// Too few bytes to tell.
    NeedMore,
}

/// Reads the first bytes of the tunnel's answer: `START_TUNNEL` (no HTTP head), or an
/// HTTP refusal (502 means the cookie is refused), or anything else.
pub fn read_tunnel_answer(bytes: &[u8]) -> Result<TunnelAnswer, GpError> {
    let n = bytes.len().min(START_TUNNEL.len());
    if bytes.get(..n) == START_TUNNEL.get(..n) {
        return Ok(if n == START_TUNNEL.len() {
            TunnelAnswer::Started { rest: n }
        } else {
            TunnelAnswer::NeedMore
        });
    }
    let text = String::from_utf8_lossy(bytes);
    let Some(status_line) = text.strip_prefix("HTTP/") else {
        return Err(GpError::TunnelRefused(excerpt(&text)));
    };
    let Some(line_end) = status_line.find('\n') else {
        return Ok(TunnelAnswer::NeedMore);
    };
    let status = status_line
        .get(..line_end)
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok());
    match status {
        Some(502) => Err(GpError::TunnelCookieRejected),
        _ => Err(GpError::TunnelRefused(excerpt(&text))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(req: &Request) -> String {
        String::from_utf8(req.body.clone()).unwrap_or_default()
    }

    #[test]
    fn client_strings_per_os() {
        for (os, name) in [
            ("linux", "Linux"),
            ("linux-64", "Linux"),
            ("win", "Windows"),
            ("mac-intel", "Mac"),
            ("android", "Android"),
            ("apple-ios", "iOS"),
            ("something", "Windows"),
        ] {
            assert_eq!(ClientInfo::new(os, "h").clientos(), name, "{os}");
        }
        let req = prelogin_request(
            "vpn.example",
            Interface::Portal,
            &ClientInfo::new("win", "h"),
            true,
        );
        assert_eq!(
            req.path,
            "/global-protect/prelogin.esp?tmp=tmp&clientVer=4100&clientos=Windows"
        );
        assert_eq!(body(&req), "cas-support=yes");
        assert!(req
            .headers
            .contains(&("User-Agent".into(), "PAN GlobalProtect".into())));
        let req = prelogin_request(
            "gw",
            Interface::Gateway,
            &ClientInfo::new("linux-64", "h"),
            false,
        );
        assert!(req.path.starts_with("/ssl-vpn/prelogin.esp?"));
        assert!(req.body.is_empty());
    }

    #[test]
    fn login_post_in_upstream_order() {
        let mut client = ClientInfo::new("linux-64", "my host");
        client.ipv6 = false;
        let post = LoginPost {
            server: "vpn.example.com".into(),
            portal_userauthcookie: Some("c/=1".into()),
            input_str: Some("1f2e".into()),
            answers: vec![
                ("user".into(), "al ice".into()),
                ("passwd".into(), "p&w".into()),
            ],
            ..LoginPost::default()
        };
        let req = login_request("vpn.example.com", Interface::Gateway, &client, &post);
        assert_eq!(req.path, "/ssl-vpn/login.esp");
        assert_eq!(
            body(&req),
            "jnlpReady=jnlpReady&ok=Login&direct=yes&clientVer=4100&prot=https:&internal=no\
             &ipv6-support=no&clientos=Linux&os-version=linux-64&server=vpn.example.com\
             &computer=my%20host&portal-userauthcookie=c%2F%3D1&inputStr=1f2e\
             &user=al%20ice&passwd=p%26w"
        );
        let req = login_request("h", Interface::Portal, &client, &LoginPost::default());
        assert_eq!(req.path, "/global-protect/getconfig.esp");
    }

    #[test]
    fn cookie_round_trips_and_filters() {
        let cookie = GpCookie::from_pairs([
            ("authcookie", "abc"),
            ("portal", "Portal 1"),
            ("user", "alice"),
            ("domain", "(empty_domain)"),
            ("preferred-ip", "10.0.0.5"),
            ("computer", "host"),
        ]);
        let text = cookie.to_string();
        assert_eq!(
            text,
            "authcookie=abc&portal=Portal%201&user=alice&domain=%28empty_domain%29\
             &preferred-ip=10.0.0.5&computer=host"
        );
        assert_eq!(GpCookie::parse(&text), cookie);
        assert_eq!(cookie.get("domain").as_deref(), Some("(empty_domain)"));
        assert!(cookie.check().is_ok());
        assert_eq!(
            GpCookie::parse("authcookie=x").check(),
            Err(GpError::CookieLacks("user"))
        );
        assert_eq!(
            tunnel_request("/ssl-tunnel-connect.sslvpn", &cookie),
            b"GET /ssl-tunnel-connect.sslvpn?authcookie=abc&user=alice HTTP/1.1\r\n\r\n"
        );
        assert_eq!(
            hip_token_input(&cookie),
            "portal=Portal%201&user=alice&domain=%28empty_domain%29&computer=host"
        );
        let req = getconfig_request(
            "gw",
            &ClientInfo::new("linux-64", "host"),
            &cookie,
            Some((Some(Ipv4Addr::new(10, 0, 0, 9)), None)),
        );
        assert_eq!(
            body(&req),
            "client-type=1&protocol-version=p1&internal=no&app-version=6.3.0-33\
             &ipv6-support=yes&clientos=Linux&os-version=linux-64\
             &hmac-algo=sha1%2Cmd5%2Csha256&enc-algo=aes-128-cbc%2Caes-256-cbc\
             &preferred-ip=10.0.0.9&preferred-ipv6=&authcookie=abc&portal=Portal%201\
             &user=alice&domain=%28empty_domain%29&computer=host"
        );
        let req = logout_request("gw", &cookie);
        assert_eq!(req.path, "/ssl-vpn/logout.esp");
        assert_eq!(body(&req), text);
    }

    #[test]
    fn tunnel_answers() {
        assert_eq!(
            read_tunnel_answer(b"START_TUNNEL\x1a\x2b"),
            Ok(TunnelAnswer::Started { rest: 12 })
        );
        assert_eq!(read_tunnel_answer(b"START"), Ok(TunnelAnswer::NeedMore));
        assert_eq!(read_tunnel_answer(b""), Ok(TunnelAnswer::NeedMore));
        assert_eq!(
            read_tunnel_answer(b"HTTP/1.1 502 Bad Gateway\r\n\r\n"),
            Err(GpError::TunnelCookieRejected)
        );
        assert_eq!(
            read_tunnel_answer(b"HTTP/1.1 502"),
            Ok(TunnelAnswer::NeedMore)
        );
        assert!(matches!(
            read_tunnel_answer(b"HTTP/1.0 404 Not Found\r\n"),
            Err(GpError::TunnelRefused(_))
        ));
        assert!(matches!(
            read_tunnel_answer(b"garbage!!!!!!!"),
            Err(GpError::TunnelRefused(_))
        ));
    }

    #[test]
    fn hip_check_requests_and_answers() {
        let cookie = GpCookie::parse("authcookie=a&user=u");
        let req = hip_check_request(
            "gw",
            &cookie,
            Some(Ipv4Addr::new(10, 1, 1, 1)),
            None,
            "d41d8cd98f00b204e9800998ecf8427e",
            None,
        );
        assert_eq!(req.path, "/ssl-vpn/hipreportcheck.esp");
        assert_eq!(
            body(&req),
            "client-role=global-protect-full&authcookie=a&user=u&client-ip=10.1.1.1\
             &md5=d41d8cd98f00b204e9800998ecf8427e"
        );
        let req = hip_check_request("gw", &cookie, None, None, "x", Some("<hip-report/>"));
        assert_eq!(req.path, "/ssl-vpn/hipreport.esp");
        assert!(body(&req).ends_with("report=%3Chip-report%2F%3E"));
        let answer = |xml: &str| {
            read_hip_check(&super::super::read_body(xml).unwrap_or(Reply::Xml(Element::new("x"))))
        };
        assert_eq!(
            answer("<response><hip-report-needed>no</hip-report-needed></response>"),
            Ok(false)
        );
        assert_eq!(
            answer("<response><hip-report-needed>yes</hip-report-needed></response>"),
            Ok(true)
        );
        assert!(answer("<response/>").is_err());
        assert!(answer("<other/>").is_err());
        assert_eq!(percent_decode("a%20b+c%2", true), "a b c%2");
    }
}
