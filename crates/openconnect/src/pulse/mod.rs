//! `--protocol=pulse` (Pulse Connect Secure / Ivanti Connect Secure), as upstream's
//! pulse.c runs it: one TLS connection, upgraded to IF-T/TLS, carries the login (EAP,
//! `oc_proto::pulse::auth`), the configuration and ESP keys, then the tunnel
//! ([`tunnel`]). A login in this run goes on into the tunnel on its own connection; a
//! cookie (`-C`, `--cookie-on-stdin`, a reconnect) is presented on a new one, and anything
//! but a cookie back means it is dead (exit 2).

mod setup;
mod tunnel;

use oc_proto::pulse::PulseError;

use crate::auth_ui::FormFiller;
use crate::cli::Options;
use crate::error::ClientError;
use crate::transport::Endpoint;
use crate::web::{session_cookie, WebLogin};
use crate::Finished;

use self::setup::Session;

/// Logs in (unless a cookie was given), then runs the tunnel.
pub(crate) async fn run(
    opts: &Options,
    endpoint: &Endpoint,
    cookie: Option<String>,
    filler: impl FnOnce() -> Result<FormFiller, ClientError>,
) -> Result<Finished, ClientError> {
    let mut logged_in: Option<Session> = None;
    let login = || async {
        let mut filler = filler()?;
        let session = Session::login(opts, endpoint, None, Some(&mut filler)).await?;
        let login = WebLogin::new(session.cookie.clone(), &session.conn);
        logged_in = Some(session);
        Ok(login)
    };
    let Some(cookie) = session_cookie(opts, endpoint, cookie, login).await? else {
        return Ok(Finished(String::new()));
    };
    // A cookie of Network Connect's form is the same session's.
    let cookie = cookie.strip_prefix("DSID=").unwrap_or(&cookie).to_string();
    let session = match logged_in {
        Some(session) => session,
        None => Session::login(opts, endpoint, Some(&cookie), None).await?,
    };
    tunnel::run(opts, endpoint, session).await
}

/// A Pulse error as the client's: a dead cookie ends the run with exit 2.
fn pulse_error(e: PulseError) -> ClientError {
    match e {
        PulseError::CookieRejected => ClientError::CookieRejected(e.to_string()),
        PulseError::Refused(_) => ClientError::AuthAborted(e.to_string()),
        PulseError::Terminated(reason) => ClientError::ServerTerminated(reason),
        other => ClientError::Pulse(other),
    }
}
