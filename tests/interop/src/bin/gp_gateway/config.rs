//! The session's pages: the gateway's configuration with fresh ESP keys, the HIP check,
//! the logout.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ferroconnect_interop::gateway::{describe_form, lock, netmask, random_bytes, text};
use ipnet::Ipv4Net;
use oc_proto::esp::{EspKeys, EspSuite};
use oc_proto::gp::config::EspConfig;
use oc_proto::gp::reply::BAD_COOKIE_BODY;
use oc_proto::gp::server::{error_xml, hip_check_xml, parse_form, success_xml, SessionRequest};
use oc_proto::gp::{GatewayConfig, TUNNEL_PATH};
use oc_proto::http::server::{ServerRequest, ServerResponse};
use oc_proto::ip_config::IpConfig;

use super::{refuse_cookie, xml, EspEntry, EspMode, Gateway, Session};

/// How long a login lasts.
const LIFETIME: Duration = Duration::from_secs(86_400);

/// The session a post's cookie fields name, if they all match what the login gave out
/// (`what` names the page for the log).
fn session_of(
    gw: &Gateway,
    peer: SocketAddr,
    post: &SessionRequest,
    what: &str,
) -> Result<Session, String> {
    let session = gw
        .session(post.authcookie.as_deref())
        .ok_or_else(|| format!("{what}: unknown authcookie"))?;
    let fields = [
        ("user", &post.user, &session.user),
        ("portal", &post.portal, &session.portal),
        ("domain", &post.domain, &session.domain),
        ("computer", &post.computer, &session.computer),
    ];
    for (name, given, expected) in fields {
        if given.as_deref() != Some(expected.as_str()) {
            log!("{peer}: {what}: {name} is {given:?}, the login said {expected:?}");
            return Err(format!("{what}: the cookie's {name} does not match"));
        }
    }
    Ok(session)
}

/// `POST /ssl-vpn/getconfig.esp`.
pub fn getconfig(gw: &Gateway, peer: SocketAddr, request: &ServerRequest) -> ServerResponse {
    let form = parse_form(&request.body);
    log!(
        "{peer}: getconfig form: {}",
        describe_form(&form, &["authcookie"])
    );
    let post = SessionRequest::from_form(&form);
    let session = match session_of(gw, peer, &post, "getconfig") {
        Ok(session) => session,
        Err(why) => {
            log!("{peer}: {why}; refused");
            return text(200, "OK", "text/plain", BAD_COOKIE_BODY);
        }
    };
    let common = &gw.config.common;
    let routes: Vec<Ipv4Net> = match common.routes.is_empty() {
        true => vec![Ipv4Net::default()],
        false => common
            .routes
            .iter()
            .filter_map(|(net, prefix)| Ipv4Net::new(*net, *prefix).ok())
            .collect(),
    };
    let mut config = GatewayConfig {
        ip: IpConfig {
            mtu: gw.config.mtu,
            ipv4: Some(common.client_addr),
            ipv4_netmask: Some(netmask(32)),
            dns: common.dns.iter().map(|d| IpAddr::V4(*d)).collect(),
            default_domain: gw.config.dns_suffix.clone(),
            split_include4: routes,
            ..IpConfig::default()
        },
        lifetime: Some(LIFETIME),
        rekey: Some(Duration::from_secs(gw.config.rekey)),
        tunnel_path: TUNNEL_PATH.into(),
        magic4: Some(gw.config.magic),
        ..GatewayConfig::default()
    };
    let esp_note = match esp_keys(gw, &post) {
        Ok(Some(keys)) => {
            let spis = (keys.client_to_server.spi(), keys.server_to_client.spi());
            config.esp = Some(keys.clone());
            let mut state = lock(&gw.state);
            let old = Gateway::drop_esp(&mut state, &session.authcookie);
            if let Some(s) = state
                .sessions
                .iter_mut()
                .find(|s| s.authcookie == session.authcookie)
            {
                s.esp_spi = Some(spis.0);
            }
            state.esp.insert(
                spis.0,
                EspEntry {
                    authcookie: session.authcookie.clone(),
                    keys,
                    task: None,
                },
            );
            format!(
                "ESP keys: c2s SPI {:#010x}, s2c SPI {:#010x} ({}, port {}{})",
                spis.0,
                spis.1,
                gw.config.suite,
                gw.config.esp_port,
                old.map(|o| format!(", replacing SPI {o:#010x}"))
                    .unwrap_or_default()
            )
        }
        Ok(None) => "no ESP (--no-esp)".to_string(),
        Err(why) => why,
    };
    log!(
        "{peer}: configuration for user {:?}: client {}, app-version {:?}, clientos {:?}, \
         os-version {:?}; {esp_note}",
        session.user,
        common.client_addr,
        post.app_version.as_deref().unwrap_or("-"),
        post.clientos.as_deref().unwrap_or("-"),
        post.os_version.as_deref().unwrap_or("-"),
    );
    xml(&config.to_xml())
}

/// Fresh keys in the configured suite, if ESP is on and the client offers the suite.
fn esp_keys(gw: &Gateway, post: &SessionRequest) -> Result<Option<EspConfig>, String> {
    if gw.config.esp == EspMode::Off {
        return Ok(None);
    }
    let suite = gw.config.suite;
    if !post.offers(suite) {
        return Err(format!(
            "no ESP: the client offers {:?}/{:?}, not {suite}",
            post.enc_offer, post.hmac_offer
        ));
    }
    let keys = |spi| new_keys(spi, suite);
    Ok(Some(EspConfig {
        client_to_server: keys(random_spi())?,
        server_to_client: keys(random_spi())?,
        port: Some(gw.config.esp_port),
        mode: Some("esp-tunnel".into()),
    }))
}

/// An SPI of the range peers may use (256 and up).
fn random_spi() -> u32 {
    u32::from_be_bytes(random_bytes()).max(256)
}

fn new_keys(spi: u32, suite: EspSuite) -> Result<EspKeys, String> {
    let enc: [u8; 32] = random_bytes();
    let mac: [u8; 32] = random_bytes();
    EspKeys::new(
        spi,
        suite,
        &enc[..suite.encryption.key_len()],
        &mac[..suite.integrity.standard_key_len()],
    )
    .map_err(|e| format!("no ESP: {e}"))
}

/// `POST /ssl-vpn/hipreportcheck.esp` and `/ssl-vpn/hipreport.esp`.
pub fn hip(gw: &Gateway, peer: SocketAddr, request: &ServerRequest) -> ServerResponse {
    let form = parse_form(&request.body);
    let post = SessionRequest::from_form(&form);
    let report = request.path().ends_with("/hipreport.esp");
    let what = if report { "HIP report" } else { "HIP check" };
    let session = match session_of(gw, peer, &post, what) {
        Ok(session) => session,
        Err(why) => return refuse_cookie(peer, &why),
    };
    if report {
        let document = form
            .iter()
            .find(|(name, _)| name == "report")
            .map(|(_, value)| value.as_str())
            .unwrap_or_default();
        if !document.contains("<hip-report") {
            log!("{peer}: HIP report without a <hip-report> document; refused");
            return xml(&error_xml("Invalid HIP report"));
        }
        log!(
            "{peer}: HIP report taken ({} bytes, md5 {})",
            document.len(),
            hip_report_md5(document)
        );
        gw.hip_reported(&session.authcookie);
        return xml(&success_xml());
    }
    let needed = gw.config.hip_needed && !gw.has_hip_report(&session.authcookie);
    log!(
        "{peer}: HIP check (md5 {}, client-ip {}): report {}needed",
        post.md5.as_deref().unwrap_or("-"),
        post.client_ip.as_deref().unwrap_or("-"),
        if needed { "" } else { "not " }
    );
    xml(&hip_check_xml(needed))
}

/// The `<md5-sum>` a HIP report states (the check's token it answers), for the log.
fn hip_report_md5(document: &str) -> &str {
    document
        .split_once("<md5-sum>")
        .and_then(|(_, rest)| rest.split_once("</md5-sum>"))
        .map_or("-", |(md5, _)| md5)
}

/// `POST /ssl-vpn/logout.esp`: the whole cookie must match, as on real gateways.
pub fn logout(gw: &Gateway, peer: SocketAddr, request: &ServerRequest) -> ServerResponse {
    let form = parse_form(&request.body);
    log!(
        "{peer}: logout form: {}",
        describe_form(&form, &["authcookie"])
    );
    let post = SessionRequest::from_form(&form);
    match session_of(gw, peer, &post, "logout") {
        Ok(session) => {
            gw.forget(&session.authcookie);
            log!(
                "{peer}: logout: session forgotten (user {:?})",
                session.user
            );
            xml(&success_xml())
        }
        Err(why) => refuse_cookie(peer, &why),
    }
}
