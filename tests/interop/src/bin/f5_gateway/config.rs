//! The network-access resource: the list of resources and one resource's tunnel settings
//! (the numbered XML configuration openconnect reads), each with a fresh grant.

use std::net::{Ipv4Addr, SocketAddr};

use ferroconnect_interop::gateway::{field, parse_query, text};
use oc_proto::http::server::{ServerRequest, ServerResponse};

use super::{bad_request, not_logged_in, xml, xml_wanted, Config, Gateway, Grant, RESOURCE};

/// The network-access resources.
pub fn favorites_xml() -> String {
    let name = RESOURCE.rsplit('/').next().unwrap_or(RESOURCE);
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <favorites type=\"VPN\" limited=\"YES\">\n  \
         <favorite id=\"{RESOURCE}\">\n    \
         <caption>{name}</caption>\n    \
         <name>{RESOURCE}</name>\n    \
         <params>resourcename={RESOURCE}</params>\n  \
         </favorite>\n\
         </favorites>\n"
    )
}

/// `GET /vdesk/vpn/connect.php3`: the resource's tunnel settings, with a fresh grant.
pub fn connect_php3(
    gateway: &Gateway,
    peer: SocketAddr,
    mrh: Option<&str>,
    request: &ServerRequest,
) -> ServerResponse {
    let Some(user) = gateway.user(mrh) else {
        return not_logged_in(peer);
    };
    let query = parse_query(&request.target);
    let resource = field(&query, "resourcename");
    if resource != Some(RESOURCE) {
        log!("{peer}: no such resource {resource:?}");
        return text(404, "Not Found", "text/plain", "no such resource");
    }
    if !xml_wanted(request) {
        return bad_request(peer, "outform=xml is missing");
    }
    let Some(grant) = mrh.and_then(|m| gateway.grant(m)) else {
        return not_logged_in(peer);
    };
    log!(
        "{peer}: tunnel settings for user {user:?}: Session_ID {}, hdlc_framing {}",
        grant.session_id,
        yes_no(gateway.config.hdlc)
    );
    xml(tunnel_xml(&gateway.config, &grant))
}

pub fn yes_no(b: bool) -> &'static str {
    match b {
        true => "yes",
        false => "no",
    }
}

/// The resource's `favorite` XML: only the gateway's own settings and random hex go in,
/// so nothing needs escaping.
fn tunnel_xml(config: &Config, grant: &Grant) -> String {
    let mut settings = vec![
        ("ur_Z", grant.z.clone()),
        ("Session_ID", grant.session_id.clone()),
        ("IPV4_0", "1".into()),
        (
            "IPV6_0",
            if config.common.ipv6.is_some() {
                "1"
            } else {
                "0"
            }
            .into(),
        ),
        ("hdlc_framing", yes_no(config.hdlc).into()),
        ("idle_session_timeout", "900".into()),
    ];
    match config.common.dtls {
        Some(dtls) => {
            settings.push(("tunnel_dtls", "1".into()));
            settings.push(("tunnel_port_dtls", dtls.port.to_string()));
            if !config.dtls10 {
                settings.push(("dtls_v1_2_supported", "1".into()));
            }
        }
        None => settings.push(("tunnel_dtls", "0".into())),
    }
    if config.common.routes.is_empty() {
        settings.push(("UseDefaultGateway0", "1".into()));
        settings.push(("SplitTunneling0", "0".into()));
    } else {
        let lan: Vec<String> = config
            .common
            .routes
            .iter()
            .map(|(net, prefix)| format!("{net}/{prefix}"))
            .collect();
        settings.push(("UseDefaultGateway0", "0".into()));
        settings.push(("SplitTunneling0", "2".into()));
        settings.push(("LAN0", lan.join(" ")));
    }
    if !config.common.routes6.is_empty() {
        let lan6: Vec<String> = config
            .common
            .routes6
            .iter()
            .map(|(net, prefix)| format!("{net}/{prefix}"))
            .collect();
        settings.push(("LAN6_0", lan6.join(" ")));
    }
    if !config.common.dns.is_empty() {
        let dns: Vec<String> = config.common.dns.iter().map(Ipv4Addr::to_string).collect();
        settings.push(("DNS0", dns.join(" ")));
    }
    if let Some(suffix) = &config.dns_suffix {
        settings.push(("DNSSuffix0", suffix.clone()));
    }
    let object: String = settings
        .iter()
        .map(|(tag, value)| format!("    <{tag}>{value}</{tag}>\n"))
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <favorite id=\"{RESOURCE}\">\n  \
         <object ID=\"ID_na\" CLASSID=\"CLSID:FERROCONNECT-F5-TEST\">\n\
         {object}  </object>\n\
         </favorite>\n"
    )
}
