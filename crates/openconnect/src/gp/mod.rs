//! `--protocol=gp`: GlobalProtect's login (portal, gateway choice, gateway; driven by
//! `oc_proto::gp::LoginFlow`), the session cookie as openconnect prints and takes it, then
//! the tunnel of [`tunnel`]: the gateway's configuration, the HIP check, ESP when the
//! gateway answers its probes, else GlobalProtect's TLS tunnel.

mod hip;
mod setup;
mod tunnel;

use std::net::IpAddr;
use std::time::Duration;

use oc_proto::form::AuthForm;
use oc_proto::gp::{ClientInfo, GpCookie, GpError, LoginFlow, Next, PortalConfig, Start};
use oc_proto::url::ServerUrl;
use tracing::{info, warn};

use crate::auth_ui::FormFiller;
use crate::cli::Options;
use crate::error::ClientError;
use crate::print_authenticate;
use crate::transport::Endpoint;
use crate::web::{exchange, CookieJar};
use crate::Finished;

/// Requests in one login (forms, challenges, retries, the gateway) before giving up.
const MAX_ROUNDS: usize = 24;

/// Logs in (unless a cookie was given), then runs the tunnel as the options ask.
pub(crate) async fn run(
    opts: &Options,
    endpoint: &Endpoint,
    given: Option<String>,
    filler: impl FnOnce() -> Result<FormFiller, ClientError>,
) -> Result<Finished, ClientError> {
    let client = client_info(opts);
    let (cookie, gateway, jar, hip_interval) = match given {
        Some(text) => (
            GpCookie::parse(text.trim()),
            endpoint.clone(),
            CookieJar::default(),
            None,
        ),
        None => {
            let login = login(
                endpoint,
                client.clone(),
                !opts.no_external_auth,
                &mut filler()?,
            )
            .await?;
            if opts.authenticate {
                print_authenticate(
                    &login.gateway,
                    &login.cookie.to_string(),
                    Some(login.addr),
                    Some(&login.fingerprint),
                );
                return Ok(Finished(String::new()));
            }
            (login.cookie, login.gateway, login.jar, login.hip_interval)
        }
    };
    cookie.check().map_err(ClientError::Gp)?;
    if opts.cookieonly || opts.printcookie {
        println!("{cookie}");
        if opts.cookieonly {
            return Ok(Finished(String::new()));
        }
    }
    let hip = hip::Hip::new(opts, hip_interval);
    tunnel::run(opts, &gateway, client, cookie, jar, hip).await
}

/// Who we say we are: `--os` (openconnect's default `linux-64`), the host name.
fn client_info(opts: &Options) -> ClientInfo {
    let computer = opts.hostname();
    let mut client = ClientInfo::new(opts.os.as_deref().unwrap_or("linux-64"), &computer);
    client.ipv6 = !opts.disable_ipv6;
    client
}

/// A finished login: the cookie and the gateway it is for.
struct GpLogin {
    cookie: GpCookie,
    gateway: Endpoint,
    /// The HTTP cookies the servers set, sent with every later request (as upstream).
    jar: CookieJar,
    /// The portal's HIP report interval, when the login went through a portal.
    hip_interval: Option<Duration>,
    addr: IpAddr,
    fingerprint: String,
}

async fn login(
    endpoint: &Endpoint,
    client: ClientInfo,
    cas_support: bool,
    filler: &mut FormFiller,
) -> Result<GpLogin, ClientError> {
    let (start, alt_secret) = Start::from_path(&endpoint.url.path);
    let computer = client.computer.clone();
    let mut flow = LoginFlow::new(
        client,
        &endpoint.url.host_header(),
        start,
        alt_secret,
        cas_support,
    );
    let mut server = endpoint.clone();
    let mut conn = server.connect().await?;
    let mut jar = CookieJar::default();
    let mut hip_interval = None;
    let mut request = flow.start();
    for _ in 0..MAX_ROUNDS {
        let resp = exchange(&server, &mut conn, &mut jar, &request).await?;
        let next = flow
            .handle(resp.head.status, &resp.body)
            .map_err(login_error)?;
        request = match next {
            Next::Send(next) => next,
            Next::Fill(form) => {
                if let Some(e) = &form.error {
                    warn!("{e}");
                }
                let answers = filler.fill(&form)?;
                flow.submit(&filled(&form, &answers))
            }
            Next::Choose(portal) => {
                hip_interval = portal.hip_report_interval;
                let chosen = choose_gateway(&portal, filler.authgroup.as_deref())?;
                server = endpoint.with_url(ServerUrl::parse(&chosen).map_err(|e| {
                    ClientError::AuthAborted(format!("the portal's gateway {chosen:?}: {e}"))
                })?);
                if server.url.host != endpoint.url.host || server.url.port != endpoint.url.port {
                    conn = server.connect().await?;
                }
                flow.gateway_chosen(&server.url.host_header())
            }
            Next::Done(args) => {
                let source = args.authentication_source.as_deref().unwrap_or("");
                info!("GlobalProtect login returned authentication-source={source}");
                return Ok(GpLogin {
                    cookie: args.cookie(&computer),
                    gateway: server,
                    jar,
                    hip_interval,
                    addr: conn.addr.ip(),
                    fingerprint: conn.peer.fingerprint.clone(),
                });
            }
        };
    }
    Err(ClientError::AuthAborted(format!(
        "no GlobalProtect login after {MAX_ROUNDS} requests"
    )))
}

/// A wrong password, a refusal or a server's message ends the login as openconnect ends
/// it; SAML without an external login's cookie says what to do.
fn login_error(e: GpError) -> ClientError {
    match e {
        GpError::SamlRequired { .. } | GpError::Server { .. } | GpError::BadCredentials => {
            ClientError::AuthAborted(e.to_string())
        }
        other => ClientError::Gp(other),
    }
}

/// The form with the filler's answers as its values.
fn filled(form: &AuthForm, answers: &[(String, String)]) -> AuthForm {
    let mut form = form.clone();
    for field in &mut form.fields {
        if let Some((_, value)) = answers.iter().find(|(name, _)| *name == field.name) {
            field.value = Some(value.clone());
        }
    }
    form
}

/// The portal's list as openconnect prints it, and the gateway `--authgroup` names (the
/// first by priority without one): its URL.
fn choose_gateway(portal: &PortalConfig, choice: Option<&str>) -> Result<String, ClientError> {
    info!("{} gateway servers available:", portal.gateways.len());
    for g in &portal.gateways {
        match g.priority {
            Some(p) => info!("  {} ({}) [priority {p}]", g.description, g.name),
            None => info!("  {} ({}) [unprioritized]", g.description, g.name),
        }
    }
    let chosen = portal.choose(choice).map_err(ClientError::Gp)?;
    info!("Chose gateway {} ({})", chosen.description, chosen.name);
    Ok(chosen.url())
}
