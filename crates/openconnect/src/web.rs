//! What the web-login protocols share: a cookie jar through the login, one exchange on
//! the login connection (reopened when the server closed it), same-server redirects.

use std::future::Future;
use std::net::IpAddr;

use oc_proto::http::{Request, Response};

use crate::cli::Options;
use crate::error::ClientError;
use crate::print_authenticate;
use crate::transport::{Endpoint, HttpsConnection};

/// A finished web login: the session cookie as the protocol prints it (and takes it back
/// with `-C`), and the server's address and certificate for `--authenticate`.
#[derive(Debug)]
pub(crate) struct WebLogin {
    pub cookie: String,
    pub addr: IpAddr,
    pub fingerprint: String,
}

impl WebLogin {
    /// The login that ended on `conn` with `cookie`.
    pub(crate) fn new(cookie: String, conn: &HttpsConnection) -> Self {
        Self {
            cookie,
            addr: conn.addr.ip(),
            fingerprint: conn.peer.fingerprint.clone(),
        }
    }
}

/// The session cookie: `-C`/`--cookie-on-stdin`'s, or a `login`; `--authenticate`,
/// `--cookieonly` and `--printcookie` as openconnect does them. `None` when the run ends
/// there.
pub(crate) async fn session_cookie<F, Fut>(
    opts: &Options,
    endpoint: &Endpoint,
    given: Option<String>,
    login: F,
) -> Result<Option<String>, ClientError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<WebLogin, ClientError>>,
{
    let cookie = match given {
        Some(c) => c.trim().to_string(),
        None => {
            let done = login().await?;
            if opts.authenticate {
                print_authenticate(
                    endpoint,
                    &done.cookie,
                    Some(done.addr),
                    Some(&done.fingerprint),
                );
                return Ok(None);
            }
            done.cookie
        }
    };
    if opts.cookieonly || opts.printcookie {
        println!("{cookie}");
        if opts.cookieonly {
            return Ok(None);
        }
    }
    Ok(Some(cookie))
}

/// Cookies the gateway sets during the login, sent back with every later request (a
/// browser's jar, which gateways keep their login state in).
#[derive(Debug, Default)]
pub(crate) struct CookieJar(Vec<(String, String)>);

impl CookieJar {
    pub(crate) fn update(&mut self, resp: &Response) {
        for (name, value) in resp.head.set_cookies() {
            self.0.retain(|(n, _)| n != name);
            if !value.is_empty() {
                self.0.push((name.to_string(), value.to_string()));
            }
        }
    }

    pub(crate) fn apply(&self, request: &Request) -> Request {
        let mut request = request.clone();
        if !self.0.is_empty() {
            let header: Vec<String> = self.0.iter().map(|(n, v)| format!("{n}={v}")).collect();
            request.headers.push(("Cookie".into(), header.join("; ")));
        }
        request
    }
}

pub(crate) async fn exchange(
    endpoint: &Endpoint,
    conn: &mut HttpsConnection,
    jar: &mut CookieJar,
    request: &Request,
) -> Result<Response, ClientError> {
    if conn.closed {
        *conn = endpoint.connect().await?;
    }
    let resp = conn.exchange(&jar.apply(request), false).await?.0;
    jar.update(&resp);
    Ok(resp)
}

/// Ends a session with the vendor's logout `request` on a new connection, saying how it
/// went as openconnect does.
pub(crate) async fn logout(endpoint: &Endpoint, request: &Request) {
    let result = match endpoint.connect().await {
        Ok(mut conn) => conn.exchange(request, false).await.map(|(resp, _)| resp),
        Err(e) => Err(e),
    };
    match result {
        Ok(resp) if resp.head.status < 400 => tracing::info!("Logout successful."),
        Ok(resp) => tracing::warn!("Logout failed (HTTP {}).", resp.head.status),
        Err(e) => tracing::warn!("Logout failed. ({e})"),
    }
}

/// A same-server redirect from `page`: `Location`, or FortiOS 7.4's `top.location="..."`
/// page; one to another server is not followed.
pub(crate) fn redirect_target(endpoint: &Endpoint, page: &str, resp: &Response) -> Option<String> {
    let location = match resp.head.status {
        301..=303 | 307 | 308 => resp.head.header("Location").map(str::to_string),
        _ => {
            let body = String::from_utf8_lossy(&resp.body);
            body.split_once("top.location=\"")
                .and_then(|(_, r)| r.split_once('"'))
                .map(|(l, _)| l.to_string())
        }
    }?;
    endpoint.url.path_on_server(page, &location).ok()
}

impl CookieJar {
    /// A cookie's value.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every cookie, as `(name, value)`.
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Sets a cookie as the server would (the host checker's `DSPREAUTH`).
    pub(crate) fn set(&mut self, name: &str, value: &str) {
        self.0.retain(|(n, _)| n != name);
        self.0.push((name.to_string(), value.to_string()));
    }

    /// `name=value; ...` of every cookie, as a `Cookie` header or a printable cookie.
    pub(crate) fn header(&self) -> String {
        let pairs: Vec<String> = self.0.iter().map(|(n, v)| format!("{n}={v}")).collect();
        pairs.join("; ")
    }

    /// A jar holding the cookies of a `name=value; ...` string (`-C`).
    pub(crate) fn parse(text: &str) -> Self {
        Self(
            text.split(';')
                .filter_map(|p| p.trim().split_once('='))
                .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                .filter(|(n, _)| !n.is_empty())
                .collect(),
        )
    }
}

/// Sends `request` and follows same-server redirects (with GET, as browsers do after a
/// POST), up to `limit` of them; returns the last response and the path it came from.
pub(crate) async fn follow(
    endpoint: &Endpoint,
    conn: &mut HttpsConnection,
    jar: &mut CookieJar,
    request: Request,
    limit: usize,
) -> Result<(Response, String), ClientError> {
    let mut path = request.path.clone();
    let mut resp = exchange(endpoint, conn, jar, &request).await?;
    for _ in 0..limit {
        let Some(target) = redirect_target(endpoint, &path, &resp) else {
            break;
        };
        path = target;
        let host = endpoint.url.host_header();
        let next = Request::new("GET", path.clone())
            .header("Host", host)
            .header("User-Agent", user_agent_of(&request));
        resp = exchange(endpoint, conn, jar, &next).await?;
    }
    Ok((resp, path))
}

fn user_agent_of(request: &Request) -> String {
    request
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("User-Agent"))
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oc_proto::http::ResponseHead;

    fn with_cookies(cookies: &[&str]) -> Response {
        let headers: Vec<(&str, &str)> = cookies.iter().map(|c| ("Set-Cookie", *c)).collect();
        Response {
            head: ResponseHead::with_headers(200, &headers),
            body: Vec::new(),
        }
    }

    #[test]
    fn the_jar_keeps_the_latest_value_and_drops_emptied_cookies() {
        let mut jar = CookieJar::default();
        jar.update(&with_cookies(&[
            "MRHSession=one; path=/",
            "LastMRH_Session=x",
        ]));
        jar.update(&with_cookies(&[
            "MRHSession=two; secure",
            "LastMRH_Session=; expires=0",
        ]));
        assert_eq!(jar.get("MRHSession"), Some("two"));
        assert_eq!(jar.get("LastMRH_Session"), None);
        assert_eq!(jar.header(), "MRHSession=two");
        let req = jar.apply(&Request::new("GET", "/"));
        assert!(req
            .headers
            .contains(&("Cookie".into(), "MRHSession=two".into())));
        let parsed = CookieJar::parse("MRHSession=a; F5_ST=1z2z3; junk");
        assert_eq!(parsed.get("F5_ST"), Some("1z2z3"));
        assert_eq!(parsed.header(), "MRHSession=a; F5_ST=1z2z3");
    }
}
