//! `--protocol=fortinet`: the login (`oc_proto::fortinet` reads and builds the messages),
//! the XML configuration, then the PPP tunnel of `ppp_tunnel` with Fortinet's encapsulation.

use oc_proto::fortinet::{
    self, challenge_request, login_form, login_request, login_response, parse_config, with_cookie,
    FortinetConfig, LoginStep, COOKIE,
};
use oc_proto::http::Request;
use oc_proto::ppp::Encapsulation;
use oc_tls::dtls::DtlsVersions;
use tracing::{info, warn};

use crate::auth_ui::FormFiller;
use crate::cli::Options;
use crate::error::ClientError;
use crate::ppp_link::{PppLink, TunnelAnswer};
use crate::ppp_tunnel;
use crate::ppp_udp::UdpGrant;
use crate::transport::{Endpoint, HttpsConnection};
use crate::web::{exchange, redirect_target, session_cookie, CookieJar, WebLogin};
use crate::Finished;

/// Login rounds (password, second factors, retries after a wrong password) before giving up.
const MAX_ROUNDS: usize = 16;
/// Redirects followed on the way to the login page.
const MAX_REDIRECTS: usize = 5;

/// Logs in (unless a cookie was given), then runs the tunnel as the options ask.
pub(crate) async fn run(
    opts: &Options,
    endpoint: &Endpoint,
    cookie: Option<String>,
    filler: impl FnOnce() -> Result<FormFiller, ClientError>,
) -> Result<Finished, ClientError> {
    let login = || async { login(endpoint, &mut filler()?).await };
    let Some(printable) = session_cookie(opts, endpoint, cookie, login).await? else {
        return Ok(Finished(String::new()));
    };
    // `SVPNCOOKIE=value`, alone or among other cookies, or the bare value.
    let cookie = printable
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("SVPNCOOKIE="))
        .unwrap_or(&printable)
        .to_string();
    let host = endpoint.url.host_header();
    let config = fetch_config(endpoint, &host, &cookie, !opts.disable_ipv6).await?;
    if let Some(v) = &config.version {
        info!("Fortinet gateway {v}");
    }
    // DTLS on the HTTPS port number, as upstream assumes.
    let udp = config.dtls.then(|| {
        info!("DTLS is enabled on port {}", endpoint.url.port);
        UdpGrant {
            port: endpoint.url.port,
            versions: DtlsVersions::Any,
            probe: fortinet::dtls_client_hello(&cookie),
            read_answer: fortinet::read_dtls_server_hello,
        }
    });
    let link = PppLink {
        encapsulation: Encapsulation::Fortinet,
        want_ipv4: config.ip.ipv4.is_some(),
        want_ipv6: config.ip.ipv6.is_some() && !opts.disable_ipv6,
        terminate_at_network: false,
        request: Some(with_cookie("GET", "/remote/sslvpn-tunnel", &host, &cookie)),
        answer: TunnelAnswer::PppOrHttpRefusal,
        dpd: config.dpd,
        logout: Some(with_cookie("GET", "/remote/logout", &host, &cookie)),
        base: config.ip,
        udp,
    };
    ppp_tunnel::run(opts, endpoint, link).await
}

/// The login: the fixed username/password form, then whatever second factors the gateway
/// asks for. Returns the cookie, the server's address and certificate fingerprint.
async fn login(endpoint: &Endpoint, filler: &mut FormFiller) -> Result<WebLogin, ClientError> {
    let host = endpoint.url.host_header();
    let mut conn = endpoint.connect().await?;
    let mut jar = CookieJar::default();
    let realm = login_page(endpoint, &mut conn, &mut jar, &host).await?;
    let mut request = login_request(&host, &realm, &filler.fill(&login_form())?);
    for _ in 0..MAX_ROUNDS {
        let resp = exchange(endpoint, &mut conn, &mut jar, &request).await?;
        match login_response(&resp).map_err(|e| ClientError::AuthAborted(e.to_string()))? {
            LoginStep::Success(cookie) => {
                info!("Logged in");
                return Ok(WebLogin::new(format!("{COOKIE}={cookie}"), &conn));
            }
            LoginStep::BadCredentials => {
                warn!("Invalid credentials");
                request = login_request(&host, &realm, &filler.fill(&login_form())?);
            }
            LoginStep::Challenge { form, echo } => {
                // The token challenge wants the user name again.
                let mut answers = vec![(
                    "username".to_string(),
                    filler.user.clone().unwrap_or_default(),
                )];
                answers.extend(filler.fill(&form)?);
                request = challenge_request(&host, &realm, &answers, &echo);
            }
            // An HTML second factor carries the user name among its hidden fields.
            LoginStep::HtmlForm(form) => {
                request = login_request(&host, &realm, &filler.fill(&form)?);
            }
        }
    }
    Err(ClientError::AuthAborted(format!(
        "no login after {MAX_ROUNDS} rounds"
    )))
}

/// `GET /` (or the URL's path, a realm), following redirects on the same server, as
/// upstream does; the realm is the `realm=` of where it ends.
async fn login_page(
    endpoint: &Endpoint,
    conn: &mut HttpsConnection,
    jar: &mut CookieJar,
    host: &str,
) -> Result<String, ClientError> {
    let mut path = endpoint.url.request_path();
    let mut realm = endpoint.url.path.clone();
    for _ in 0..MAX_REDIRECTS {
        let req = Request::new("GET", path.clone())
            .header("Host", host)
            .header("User-Agent", fortinet::USER_AGENT);
        let resp = exchange(endpoint, conn, jar, &req).await?;
        let next = redirect_target(endpoint, &path, &resp);
        if let Some(r) = path
            .split_once("realm=")
            .map(|(_, r)| r.split('&').next().unwrap_or(r))
        {
            realm = oc_proto::url::percent_decode(r, true);
        }
        match next {
            Some(target) => path = target,
            None => return Ok(realm),
        }
    }
    Ok(realm)
}

async fn fetch_config(
    endpoint: &Endpoint,
    host: &str,
    cookie: &str,
    dual_stack: bool,
) -> Result<FortinetConfig, ClientError> {
    let path = if dual_stack {
        "/remote/fortisslvpn_xml?dual_stack=1"
    } else {
        "/remote/fortisslvpn_xml"
    };
    let mut conn = endpoint.connect().await?;
    let mut jar = CookieJar::default();
    let request = with_cookie("GET", path, host, cookie);
    let resp = exchange(endpoint, &mut conn, &mut jar, &request).await?;
    ClientError::from_session_page(resp.head.status, "the Fortinet configuration")?;
    let xml = String::from_utf8_lossy(&resp.body);
    parse_config(&xml).map_err(|e| ClientError::AuthAborted(e.to_string()))
}
