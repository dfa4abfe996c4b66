//! `--protocol=f5`: the HTML login (`oc_proto::f5` reads the pages and builds the
//! messages), the VPN resource and its configuration, then the PPP tunnel of `ppp_tunnel`
//! with F5's framing (or HDLC, as the gateway says).

use oc_proto::f5::{
    self, config_path, login_form, login_request, parse_config, tunnel_request, vpn_resource,
    F5Config, F5Error, DONE_COOKIE, SESSION_COOKIE,
};
use oc_proto::http::{Request, ResponseHead};
use oc_proto::ppp::Encapsulation;
use oc_tls::dtls::DtlsVersions;
use tracing::{info, warn};

use crate::auth_ui::FormFiller;
use crate::cli::Options;
use crate::error::ClientError;
use crate::ppp_link::{PppLink, Proposed, TunnelAnswer};
use crate::ppp_tunnel;
use crate::ppp_udp::UdpGrant;
use crate::transport::Endpoint;
use crate::web::{exchange, follow, session_cookie, CookieJar, WebLogin};
use crate::{user_agent, Finished};

/// Login pages (the first, retries, second factors) before giving up.
const MAX_ROUNDS: usize = 16;
/// Redirects followed after each request.
const MAX_REDIRECTS: usize = 8;

/// Logs in (unless a cookie was given), then runs the tunnel as the options ask.
pub(crate) async fn run(
    opts: &Options,
    endpoint: &Endpoint,
    cookie: Option<String>,
    filler: impl FnOnce() -> Result<FormFiller, ClientError>,
) -> Result<Finished, ClientError> {
    let ua = user_agent(opts);
    let login = || async { login(endpoint, &mut filler()?, &ua).await };
    let Some(printable) = session_cookie(opts, endpoint, cookie, login).await? else {
        return Ok(Finished(String::new()));
    };
    let jar = CookieJar::parse(&printable);
    if jar.get(SESSION_COOKIE).is_none() {
        return Err(ClientError::Usage(format!(
            "the F5 cookie must hold {SESSION_COOKIE}=..."
        )));
    }
    let config = fetch_config(endpoint, &jar, &ua).await?;
    let host = endpoint.url.host_header();
    let hostname = opts.hostname();
    let want_ipv6 = !opts.disable_ipv6;
    let logout = with_jar(Request::new("GET", f5::LOGOUT_PATH), &host, &ua, &jar);
    let request = tunnel_request(&host, &ua, &config, want_ipv6, &hostname);
    let udp = udp_grant(&config, &request);
    let link = PppLink {
        encapsulation: if config.hdlc {
            Encapsulation::F5Hdlc
        } else {
            Encapsulation::F5
        },
        want_ipv4: config.ipv4,
        want_ipv6: config.ipv6 && want_ipv6,
        terminate_at_network: false,
        request: Some(request),
        answer: TunnelAnswer::HttpHead(tunnel_answer),
        dpd: None,
        logout: Some(logout),
        base: config.ip,
        udp,
    };
    ppp_tunnel::run(opts, endpoint, link).await
}

/// The DTLS channel the configuration offers, on which the tunnel request goes as one
/// record. None with HDLC framing, as upstream: its escaping can double a packet, so no
/// datagram size holds.
fn udp_grant(config: &F5Config, request: &Request) -> Option<UdpGrant> {
    let port = config.dtls_port?;
    info!("DTLS is enabled on port {port}");
    if config.hdlc {
        warn!("WARNING: Server enables DTLS, but also requires HDLC. Disabling DTLS,\n    because HDLC prevents determination of efficient and consistent MTU.");
        return None;
    }
    let mut probe = Vec::new();
    request.emit(&mut probe);
    Some(UdpGrant {
        port,
        // BIG-IP before v16 fails a handshake that even offers DTLS 1.2.
        versions: if config.dtls12 {
            DtlsVersions::Any
        } else {
            DtlsVersions::Dtls10Only
        },
        probe,
        read_answer: f5::read_dtls_answer,
    })
}

/// The `/myvpn` answer: a refused session is a refused cookie (exit 2).
fn tunnel_answer(head: &ResponseHead) -> Result<Proposed, ClientError> {
    f5::tunnel_response(head).map_err(|e| match e {
        F5Error::SessionRejected => ClientError::CookieRejected(e.to_string()),
        other => ClientError::PppNotEstablished(other.to_string()),
    })
}

fn with_jar(request: Request, host: &str, ua: &str, jar: &CookieJar) -> Request {
    jar.apply(&request.header("Host", host).header("User-Agent", ua))
}

/// The login pages until both the session cookie and `F5_ST` are set.
async fn login(
    endpoint: &Endpoint,
    filler: &mut FormFiller,
    ua: &str,
) -> Result<WebLogin, ClientError> {
    let host = endpoint.url.host_header();
    let mut conn = endpoint.connect().await?;
    let mut jar = CookieJar::default();
    let first = Request::new("GET", endpoint.url.request_path())
        .header("Host", host.as_str())
        .header("User-Agent", ua);
    let (mut resp, mut page) = follow(endpoint, &mut conn, &mut jar, first, MAX_REDIRECTS).await?;
    for _ in 0..MAX_ROUNDS {
        if jar.get(SESSION_COOKIE).is_some() && jar.get(DONE_COOKIE).is_some() {
            info!("Logged in");
            return Ok(WebLogin::new(jar.header(), &conn));
        }
        let form = login_form(&String::from_utf8_lossy(&resp.body));
        let answers = filler.fill(&form.form)?;
        let post = login_request(&host, ua, form.action.as_deref(), &page, &answers);
        (resp, page) = follow(endpoint, &mut conn, &mut jar, post, MAX_REDIRECTS).await?;
    }
    Err(ClientError::AuthAborted(format!(
        "no F5 session after {MAX_ROUNDS} login pages"
    )))
}

/// The first VPN resource, then its configuration.
async fn fetch_config(
    endpoint: &Endpoint,
    jar: &CookieJar,
    ua: &str,
) -> Result<F5Config, ClientError> {
    let host = endpoint.url.host_header();
    let mut conn = endpoint.connect().await?;
    let mut jar = CookieJar::parse(&jar.header());
    let plain = |path: String| {
        Request::new("GET", path)
            .header("Host", host.as_str())
            .header("User-Agent", ua)
    };
    // `exchange` adds the jar's cookies (and keeps what the gateway sets on the way).
    let list = plain(f5::RESOURCES_PATH.to_string());
    let resp = exchange(endpoint, &mut conn, &mut jar, &list).await?;
    ClientError::from_session_page(resp.head.status, "the VPN resource list")?;
    let params = vpn_resource(&String::from_utf8_lossy(&resp.body))
        .map_err(|e| ClientError::AuthAborted(e.to_string()))?;
    let get = plain(config_path(&params));
    let resp = exchange(endpoint, &mut conn, &mut jar, &get).await?;
    ClientError::from_session_page(resp.head.status, "the VPN configuration")?;
    parse_config(&String::from_utf8_lossy(&resp.body))
        .map_err(|e| ClientError::AuthAborted(e.to_string()))
}
