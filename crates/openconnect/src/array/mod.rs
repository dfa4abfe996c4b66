//! `--protocol=array` (Array Networks SSL VPN), as upstream's array.c runs it: the login
//! form (`method`, `uname`, `pwd`; `-F form:method=` picks Array's authentication method)
//! until the server sets an `ANsession` cookie, then the tunnel ([`tunnel`]): `GET
//! /vpntunnel` with our id, the two binary requests and their JSON answers, the DTLS
//! request, then raw IP packets over TLS and DTLS 1.0.

mod tunnel;

use oc_proto::array::{self, login_form, LOGIN_PATH};
use oc_proto::form::urlencode;
use oc_proto::http::Request;
use tracing::info;

use crate::auth_ui::FormFiller;
use crate::cli::Options;
use crate::error::ClientError;
use crate::transport::Endpoint;
use crate::web::{follow, session_cookie, CookieJar, WebLogin};
use crate::{user_agent, Finished};

/// Redirects followed after the login's post.
const MAX_REDIRECTS: usize = 10;

/// Logs in (unless a cookie was given), then runs the tunnel.
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

/// The one login post; the `ANsession` cookie it sets.
async fn login(
    opts: &Options,
    endpoint: &Endpoint,
    filler: &mut FormFiller,
) -> Result<WebLogin, ClientError> {
    let answers = filler.fill(&login_form())?;
    let mut conn = endpoint.connect().await?;
    let mut jar = CookieJar::default();
    let mut req = Request::new("POST", LOGIN_PATH)
        .header("Host", endpoint.url.host_header())
        .header("User-Agent", user_agent(opts))
        .header("Content-Type", "application/x-www-form-urlencoded");
    req.body = urlencode(&answers).into_bytes();
    let (resp, _) = follow(endpoint, &mut conn, &mut jar, req, MAX_REDIRECTS).await?;
    let status = resp.head.status;
    if status != 200 || resp.body.is_empty() {
        return Err(ClientError::AuthAborted(format!(
            "Unexpected {status} result from server"
        )));
    }
    let cookie = array::session_cookie(jar.pairs())
        .ok_or_else(|| ClientError::AuthAborted("No ANsession cookie found".into()))?;
    info!("Got the ANsession cookie");
    Ok(WebLogin::new(cookie, &conn))
}
