//! F5 BIG-IP APM network access, as openconnect speaks it: the HTML login at `/my.policy`
//! (done when both `MRHSession` and `F5_ST` cookies are set), the VPN resource list and its
//! flat XML configuration, and the `/myvpn` tunnel request whose `201` answer names the
//! addresses before PPP starts (`ppp::Encapsulation::F5`, or `F5Hdlc` with HDLC framing).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ipnet::{Ipv4Net, Ipv6Net};
use quick_xml::events::Event;
use quick_xml::Reader;
use thiserror::Error;

use crate::form::{parse_html_form, AuthForm, FieldKind, HtmlForm};
use crate::http::{Limits, Request, ResponseHead, ResponseReader};
use crate::ip_config::IpConfig;
use crate::udp_link::ProbeAnswer;

pub const LOGIN_PATH: &str = "/my.policy";
pub const SESSION_COOKIE: &str = "MRHSession";
/// Set only once the login is complete: `1z1z1z<start>z<duration>`.
pub const DONE_COOKIE: &str = "F5_ST";
pub const RESOURCES_PATH: &str = "/vdesk/vpn/index.php3?outform=xml&client_version=2.0";
pub const LOGOUT_PATH: &str = "/vdesk/hangup.php3?hangup_error=1";
/// The form F5 pages carry the login in.
const FORM_ID: &str = "auth_form";

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum F5Error {
    #[error("F5 configuration is not valid XML: {0}")]
    BadXml(String),
    #[error("the F5 gateway offers no VPN resource (network access) to this user")]
    NoVpnResource,
    #[error("the F5 VPN configuration lacks {0}")]
    Missing(&'static str),
    #[error("the F5 gateway refused the tunnel session (HTTP 504)")]
    SessionRejected,
    #[error("the F5 gateway answered the tunnel request with HTTP {0}")]
    TunnelRefused(u16),
}

/// The login form of an F5 page: its `auth_form` (or, lacking one, any form; a page with
/// none asks for `username` and `password`, as upstream assumes), and where it goes.
pub fn login_form(html: &str) -> HtmlForm {
    // A form with nothing to fill (buttons only, a script-built page) counts as none;
    // newer gateways describe the form in a script's `appLoader.configure({...})`.
    let found = parse_html_form(html, Some(FORM_ID), Some("credentials_table_header"))
        .or_else(|| parse_html_form(html, None, Some("credentials_table_header")))
        .filter(|f| !f.form.fields.is_empty())
        .or_else(|| json_form(html));
    let mut form = found.unwrap_or_else(|| HtmlForm {
        form: AuthForm {
            id: FORM_ID.into(),
            fields: ["username", "password"]
                .iter()
                .map(|n| crate::form::FormField {
                    name: n.to_string(),
                    label: format!("{n}:"),
                    kind: if *n == "password" {
                        FieldKind::Password
                    } else {
                        FieldKind::Text
                    },
                    value: None,
                    token: false,
                })
                .collect(),
            ..AuthForm::default()
        },
        action: None,
    });
    if form.form.id.is_empty() {
        form.form.id = FORM_ID.into();
    }
    // F5's login domain is the authentication group, as upstream treats it.
    form.form.group_select = Some("domain".into());
    if let Some(e) = parse_html_form(html, Some(FORM_ID), Some("credentials_table_postheader"))
        .and_then(|f| f.form.message)
    {
        form.form.error = Some(e);
    }
    // A second form asking only for a code is a second factor.
    let secrets = form
        .form
        .fields
        .iter()
        .filter(|f| f.kind == FieldKind::Password)
        .count();
    let has_user = form.form.fields.iter().any(|f| f.name == "username");
    for field in &mut form.form.fields {
        if field.kind == FieldKind::Password && secrets == 1 && !has_user {
            field.token = true;
        }
    }
    form
}

/// The largest `appLoader.configure` argument read.
const MAX_JSON: usize = 64 * 1024;

/// The form of `appLoader.configure({"logon": {"form": {"id", "title", "fields": [{"type",
/// "name", "caption", "value"}]}}})`, as upstream reads it: password fields are passwords,
/// every other type is text.
fn json_form(html: &str) -> Option<HtmlForm> {
    let start = html.find("appLoader.configure(")? + "appLoader.configure(".len();
    let text = html.get(start..)?;
    let text = text.get(..text.len().min(MAX_JSON))?;
    // The argument runs to the `);` that closes the call; let the parser find its end.
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
    let config = values.next()?.ok()?;
    let form = config.get("logon")?.get("form")?;
    let str_of =
        |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let fields = form
        .get("fields")?
        .as_array()?
        .iter()
        .take(64)
        .filter_map(|f| {
            let name = str_of(f, "name")?;
            let kind = match str_of(f, "type").as_deref() {
                Some("password") => FieldKind::Password,
                _ => FieldKind::Text,
            };
            Some(crate::form::FormField {
                label: str_of(f, "caption").map_or_else(|| format!("{name}:"), |c| format!("{c}:")),
                value: str_of(f, "value").filter(|v| !v.is_empty()),
                name,
                kind,
                token: false,
            })
        })
        .collect::<Vec<_>>();
    if fields.is_empty() {
        return None;
    }
    Some(HtmlForm {
        form: AuthForm {
            id: str_of(form, "id").unwrap_or_else(|| FORM_ID.into()),
            banner: str_of(form, "title"),
            fields,
            ..AuthForm::default()
        },
        action: None,
    })
}

/// The POST of the form's answers: to the form's action on this server, else (a form
/// built by a script has none, and so may an odd one) back to `page`, the path the form
/// came from, as upstream does.
pub fn login_request(
    host: &str,
    user_agent: &str,
    action: Option<&str>,
    page: &str,
    answers: &[(String, String)],
) -> Request {
    let on_this_server = |p: &&str| p.starts_with('/') && !p.starts_with("//");
    let path = action
        .filter(on_this_server)
        .or(Some(page).filter(on_this_server))
        .unwrap_or(LOGIN_PATH);
    let mut req = Request::new("POST", path)
        .header("Host", host)
        .header("User-Agent", user_agent)
        .header("Content-Type", "application/x-www-form-urlencoded");
    req.body = crate::form::urlencode(answers).into_bytes();
    req
}

/// The first VPN resource's `params` in `/vdesk/vpn/index.php3`'s favourites.
pub fn vpn_resource(xml: &str) -> Result<String, F5Error> {
    let mut reader = Reader::from_str(xml);
    let mut in_vpn = false;
    let mut in_params = false;
    loop {
        match reader
            .read_event()
            .map_err(|e| F5Error::BadXml(e.to_string()))?
        {
            Event::Start(s) if s.name().0 == "favorites" => {
                in_vpn = crate::form::xml_attr(&s, "type").is_none_or(|t| t == "VPN");
            }
            Event::Start(s) if s.name().0 == "params" => in_params = in_vpn,
            Event::Text(t) if in_params => {
                let text = t.xml10_content().trim().to_string();
                if !text.is_empty() {
                    return Ok(text);
                }
            }
            Event::End(e) if e.name().0 == "params" => in_params = false,
            Event::Eof => return Err(F5Error::NoVpnResource),
            _ => {}
        }
    }
}

/// The configuration request for a resource's `params`.
pub fn config_path(params: &str) -> String {
    format!("/vdesk/vpn/connect.php3?{params}&outform=xml&client_version=2.0")
}

/// What `connect.php3` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct F5Config {
    pub session_id: String,
    pub ur_z: String,
    pub ipv4: bool,
    pub ipv6: bool,
    pub hdlc: bool,
    /// DTLS on this UDP port.
    pub dtls_port: Option<u16>,
    /// `dtls_v1_2_supported`: without it the gateway takes DTLS 1.0 only.
    pub dtls12: bool,
    pub ip: IpConfig,
}

/// Reads `connect.php3`'s flat XML (numbered tags under `<object>`).
pub fn parse_config(xml: &str) -> Result<F5Config, F5Error> {
    let values = leaf_values(xml)?;
    let get = |name: &str| {
        values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let yes = |name: &str| get(name).is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("yes"));
    let mut cfg = F5Config {
        session_id: get("Session_ID")
            .ok_or(F5Error::Missing("Session_ID"))?
            .to_string(),
        ur_z: get("ur_Z").ok_or(F5Error::Missing("ur_Z"))?.to_string(),
        ipv4: get("IPV4_0").is_none_or(|v| v == "1"),
        ipv6: yes("IPV6_0"),
        hdlc: yes("hdlc_framing"),
        dtls_port: yes("tunnel_dtls")
            .then(|| get("tunnel_port_dtls").and_then(|p| p.parse().ok()))
            .flatten(),
        dtls12: yes("dtls_v1_2_supported"),
        ip: IpConfig::default(),
    };
    let ip = &mut cfg.ip;
    ip.idle_timeout = get("idle_session_timeout")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs);
    let full_tunnel = yes("UseDefaultGateway0");
    for (name, value) in &values {
        numbered(ip, name, value, full_tunnel);
    }
    Ok(cfg)
}

/// One numbered setting: DNS0.., DNS6_0.., WINS0.., DNSSuffix0.., LAN0.., LAN6_0..,
/// ExcludeSubnets0.., ExcludeSubnets6_0.. (routes are space-separated CIDRs).
fn numbered(ip: &mut IpConfig, name: &str, value: &str, full_tunnel: bool) {
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit());
    if base.len() == name.len() {
        return;
    }
    match base {
        "DNS" | "DNS6_" => {
            if let Ok(a) = value.trim().parse::<IpAddr>() {
                ip.dns.push(a);
            }
        }
        "WINS" => {
            if let Ok(a) = value.trim().parse::<IpAddr>() {
                ip.nbns.push(a);
            }
        }
        "DNSSuffix" if !value.trim().is_empty() => {
            let suffix = value.trim().replace(',', " ");
            ip.default_domain = Some(match ip.default_domain.take() {
                Some(d) => format!("{d} {suffix}"),
                None => suffix,
            });
        }
        "LAN" if !full_tunnel => ip.split_include4.extend(v4_nets(value)),
        "LAN6_" if !full_tunnel => ip.split_include6.extend(v6_nets(value)),
        "ExcludeSubnets" => ip.split_exclude4.extend(v4_nets(value)),
        "ExcludeSubnets6_" => ip.split_exclude6.extend(v6_nets(value)),
        _ => {}
    }
}

fn v4_nets(value: &str) -> impl Iterator<Item = Ipv4Net> + '_ {
    value.split_whitespace().take(256).filter_map(|n| {
        n.parse::<Ipv4Net>()
            .ok()
            .or_else(|| n.parse::<Ipv4Addr>().ok().map(Ipv4Net::from))
            .map(|n| n.trunc())
    })
}

fn v6_nets(value: &str) -> impl Iterator<Item = Ipv6Net> + '_ {
    value.split_whitespace().take(256).filter_map(|n| {
        n.parse::<Ipv6Net>()
            .ok()
            .or_else(|| n.parse::<Ipv6Addr>().ok().map(Ipv6Net::from))
            .map(|n| n.trunc())
    })
}

/// Every element's text, by element name, in document order (bounded).
fn leaf_values(xml: &str) -> Result<Vec<(String, String)>, F5Error> {
    let mut reader = Reader::from_str(xml);
    let mut values = Vec::new();
    let mut current: Option<String> = None;
    loop {
        match reader
            .read_event()
            .map_err(|e| F5Error::BadXml(e.to_string()))?
        {
            Event::Start(s) => current = Some(s.name().0.to_string()),
            Event::Text(t) => {
                if let Some(name) = current.take() {
                    if values.len() < 1024 {
                        values.push((name, t.xml10_content().trim().to_string()));
                    }
                }
            }
            Event::End(_) => current = None,
            Event::Eof => return Ok(values),
            _ => {}
        }
    }
}

/// `GET /myvpn?...`: deliberately without cookies (the same bytes go over DTLS), as
/// upstream.
pub fn tunnel_request(
    host: &str,
    user_agent: &str,
    cfg: &F5Config,
    want_ipv6: bool,
    hostname: &str,
) -> Request {
    use base64::Engine as _;
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let path = format!(
        "/myvpn?sess={}&hdlc_framing={}&ipv4={}&ipv6={}&Z={}&hostname={}",
        cfg.session_id,
        yes_no(cfg.hdlc),
        yes_no(cfg.ipv4),
        yes_no(cfg.ipv6 && want_ipv6),
        cfg.ur_z,
        base64::engine::general_purpose::STANDARD.encode(hostname)
    );
    Request::new("GET", path)
        .header("Host", host)
        .header("User-Agent", user_agent)
}

/// The tunnel request's answer: the addresses to propose in IPCP/IPV6CP.
pub fn tunnel_response(
    head: &ResponseHead,
) -> Result<(Option<Ipv4Addr>, Option<Ipv6Addr>), F5Error> {
    match head.status {
        200 | 201 => Ok((
            head.header("X-VPN-client-IP")
                .and_then(|v| v.trim().parse().ok()),
            head.header("X-VPN-client-IPv6")
                .and_then(|v| v.trim().parse().ok()),
        )),
        504 => Err(F5Error::SessionRejected),
        other => Err(F5Error::TunnelRefused(other)),
    }
}

/// The answer to the tunnel request sent over DTLS, one record: an HTTP head as over TLS.
/// A record that is no HTTP answer (a PPP frame that overtook a lost answer) is
/// [`ProbeAnswer::Unrecognised`]; a refusal leaves DTLS to be tried again later.
pub fn read_dtls_answer(record: &[u8]) -> ProbeAnswer {
    if !record.starts_with(b"HTTP/") {
        return ProbeAnswer::Unrecognised;
    }
    let mut reader = ResponseReader::new(Limits::default(), true);
    let head = match reader.feed(record).and_then(|()| reader.poll()) {
        Ok(Some(resp)) => resp.head,
        Ok(None) => {
            return ProbeAnswer::Refused {
                why: "the F5 gateway's DTLS answer is cut short".into(),
                permanent: false,
            }
        }
        Err(e) => {
            return ProbeAnswer::Refused {
                why: format!("the F5 gateway's DTLS answer is not valid HTTP: {e}"),
                permanent: false,
            }
        }
    };
    match tunnel_response(&head) {
        Ok((ipv4, ipv6)) if head.status == 200 => ProbeAnswer::Accepted { ipv4, ipv6 },
        Ok(_) => ProbeAnswer::Refused {
            why: format!(
                "the F5 gateway answered the DTLS request with HTTP {}",
                head.status
            ),
            permanent: false,
        },
        Err(e) => ProbeAnswer::Refused {
            why: e.to_string(),
            permanent: false,
        },
    }
}

#[cfg(test)]
mod tests;
