//! `--protocol=nc` (Juniper Network Connect): the `dana-na` web login read by
//! `oc_proto::nc` (forms, realms, tokens, roles, SAML hand-overs, the host checker through
//! `--csd-wrapper`, [`tncc`]), the `DSID` cookie, then the oNCP tunnel ([`tunnel`]) over
//! TLS and ESP.

mod tncc;
mod tunnel;

use oc_proto::http::Request;
use oc_proto::nc::{self, read_page, NcPage};
use tracing::info;

use self::tncc::Tncc;
use crate::auth_ui::FormFiller;
use crate::cli::Options;
use crate::error::ClientError;
use crate::transport::Endpoint;
use crate::web::{follow, session_cookie, CookieJar, WebLogin};
use crate::{user_agent, Finished};

/// Pages in one login (forms, redirects' ends, roles, the host checker) before giving up.
const MAX_PAGES: usize = 32;
/// Redirects followed after one request.
const MAX_REDIRECTS: usize = 10;

/// Logs in (unless a cookie was given), then asks for the tunnel.
pub(crate) async fn run(
    opts: &Options,
    endpoint: &Endpoint,
    cookie: Option<String>,
    filler: impl FnOnce() -> Result<FormFiller, ClientError>,
) -> Result<Finished, ClientError> {
    let login = || async { login(opts, endpoint, &mut filler()?).await };
    let Some(cookie) = session_cookie(opts, endpoint, cookie, login).await? else {
        return Ok(Finished(String::new()));
    };
    tunnel::run(opts, endpoint, &cookie).await
}

/// A request with the headers upstream sends Network Connect servers.
fn request(opts: &Options, endpoint: &Endpoint, method: &'static str, path: &str) -> Request {
    Request::new(method, path)
        .header("Host", endpoint.url.host_header())
        .header("User-Agent", user_agent(opts))
        .header("NCP-Version", "3")
}

async fn login(
    opts: &Options,
    endpoint: &Endpoint,
    filler: &mut FormFiller,
) -> Result<WebLogin, ClientError> {
    let mut conn = endpoint.connect().await?;
    let mut jar = CookieJar::default();
    let mut path = endpoint.url.request_path();
    let mut post: Option<String> = None;
    let mut host_checker = opts.csd_wrapper.is_some();
    let mut tncc: Option<Tncc> = None;
    for _ in 0..MAX_PAGES {
        let mut req = request(
            opts,
            endpoint,
            if post.is_some() { "POST" } else { "GET" },
            &path,
        );
        if let Some(body) = post.take() {
            req = req.header("Content-Type", "application/x-www-form-urlencoded");
            req.body = body.into_bytes();
        }
        let (resp, landed) = follow(endpoint, &mut conn, &mut jar, req, MAX_REDIRECTS).await?;
        // The cookie counts whatever the page that carried it says (some landing pages are
        // 403s, as upstream notes).
        if let Some(cookie) = nc::session_cookie(jar.pairs()) {
            if let (Some(tncc), Some(preauth)) = (tncc.as_mut(), jar.get("DSPREAUTH")) {
                tncc.set_cookie(preauth).await;
            }
            info!("Got the DSID session cookie");
            return Ok(WebLogin::new(cookie, &conn));
        }
        path = landed;
        let html = String::from_utf8_lossy(&resp.body);
        match read_page(&html).map_err(|e| ClientError::AuthAborted(e.to_string()))? {
            NcPage::NoForm if std::mem::take(&mut host_checker) => {
                tncc = Some(Tncc::preauth(opts, endpoint, &conn, &mut jar).await?);
            }
            NcPage::NoForm => {
                return Err(ClientError::AuthAborted(format!(
                    "Failed to find or parse web form in login page (HTTP {} for {path})",
                    resp.head.status
                )));
            }
            NcPage::Form(form) => {
                let answers = filler.fill(&form.form)?;
                post = Some(oc_proto::form::urlencode(&answers));
                if let Some(action) = &form.action {
                    path = same_server(endpoint, &path, action)?;
                }
            }
            NcPage::Roles(form) => {
                let answers = filler.fill(&form)?;
                let link = answers
                    .into_iter()
                    .find(|(name, _)| name == nc::ROLES_FIELD)
                    .map(|(_, link)| link)
                    .unwrap_or_default();
                path = same_server(endpoint, &path, &link)?;
            }
        }
    }
    Err(ClientError::AuthAborted(format!(
        "no DSID cookie after {MAX_PAGES} pages"
    )))
}

/// Where a form posts or a link leads, as a path on this server.
fn same_server(endpoint: &Endpoint, page: &str, target: &str) -> Result<String, ClientError> {
    endpoint.url.path_on_server(page, target).map_err(|why| {
        ClientError::AuthAborted(format!(
            "the login goes on at {why}; only this server's pages are followed"
        ))
    })
}
