//! `sso_gateway`: an AnyConnect gateway that logs in only by single sign-on
//! (`single-sign-on-v2`), with a stand-in identity provider on the same port. It is test
//! code: enough for a client to get a cookie, no tunnel.
//!
//! ```text
//! sso_gateway --listen ADDR:PORT --cert PEM --key PEM [--mode external|embedded]
//!             [--bearer TOKEN] [--redirect-to URL] [--log FILE]
//! ```
//!
//! With `--redirect-to`, it is an ASA that balances its load: every login POST is
//! redirected (302) to URL, another server that takes the login over.
//!
//! With `--bearer`, the gateway is an OpenID Connect resource server instead, as ocserv's
//! `oidc` back end: every XML request without `Authorization: Bearer TOKEN` gets `401` with
//! `WWW-Authenticate: Bearer`, and the `init` that carries it completes the login
//! (`OIDC-SESSION-<n>`).
//!
//! The `init` must offer `single-sign-on-v2`. In the external mode (the default, when the
//! client also offers `single-sign-on-external-browser` and sends its
//! `X-AnyConnect-STRAP-DH-Pubkey`), the form asks for an external browser; else for an
//! embedded one. The browser's path: `/+CSCOE+/saml/sp/login?ctx=N` redirects to the
//! provider, `/idp/authorize?ctx=N`, which wants the user `alice`, password `wonderland`
//! (HTTP Basic); it sends the browser back to `/+CSCOE+/saml/sp/acs` with an assertion
//! signed with the gateway's secret. The gateway checks it and hands out a one-time
//! token: sealed to the client's key and sent to `http://localhost:29786/api/sso/...`
//! (external), or as the `acSamlv2Token` cookie on the way to the final page (embedded).
//! The `auth-reply` carrying that token gets the session cookie `SSO-SESSION-<ctx>`;
//! anything else is refused with a log line saying why.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Mutex;

use ferroconnect_interop::gateway::{self, log_line, parse_query, redirect, text, LoginPages};
use oc_proto::anyconnect::sso::EncryptedToken;
use oc_proto::http::server::{Method, ServerRequest, ServerResponse};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

macro_rules! log {
    ($($arg:tt)*) => { log_line(format_args!($($arg)*)) };
}

const USER: &str = "alice";
const PASSWORD: &str = "wonderland";
const FINAL_PAGE: &str = "/+CSCOE+/saml_ac_login.html";

/// One login in progress.
#[derive(Debug, Default)]
struct Login {
    /// The client's ECDH key (DER), for the external mode.
    client_dh: Option<Vec<u8>>,
    /// The token handed to the browser, until the client posts it.
    token: Option<String>,
}

struct Gateway {
    host: String,
    bearer: Option<String>,
    redirect_to: Option<String>,
    embedded_only: bool,
    secret: Vec<u8>,
    logins: Mutex<HashMap<u64, Login>>,
    next_ctx: Mutex<u64>,
}

impl LoginPages for Gateway {
    fn page(&self, request: &ServerRequest) -> Result<ServerResponse, String> {
        match (&request.method, request.path()) {
            (Method::Post, _) if self.redirect_to.is_some() => {
                let to = self.redirect_to.as_deref().unwrap_or_default();
                log!("sent the login to {to}");
                Ok(redirect(to))
            }
            (Method::Post, _) if self.bearer.is_some() => self.resource_server(request),
            (Method::Post, _) => self.xml(request),
            (Method::Get, "/+CSCOE+/saml/sp/login") => self.start_login(request),
            (Method::Get, "/idp/authorize") => self.identity_provider(request),
            (Method::Get, "/+CSCOE+/saml/sp/acs") => self.assertion(request),
            (Method::Get, FINAL_PAGE) => Ok(page("You are logged in; return to the VPN client.")),
            (_, path) => Err(format!("no such page: {path}")),
        }
    }
}

fn page(body: &str) -> ServerResponse {
    text(
        200,
        "OK",
        "text/html",
        &format!("<html><body>{body}</body></html>\n"),
    )
}

fn xml_reply(document: String) -> ServerResponse {
    text(200, "OK", "text/xml", &document)
}

impl Gateway {
    fn resource_server(&self, request: &ServerRequest) -> Result<ServerResponse, String> {
        let given = request
            .header("Authorization")
            .and_then(|a| a.strip_prefix("Bearer "));
        if given.is_none() || given != self.bearer.as_deref() {
            log!(
                "bearer token {}",
                if given.is_some() {
                    "refused"
                } else {
                    "asked for"
                }
            );
            return Ok(
                text(401, "Unauthorized", "text/plain", "").header("WWW-Authenticate", "Bearer")
            );
        }
        let ctx = {
            let mut next = self.next_ctx.lock().map_err(|_| "lock")?;
            *next += 1;
            *next
        };
        log!("login {ctx}: the bearer token matched");
        Ok(xml_reply(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" \
             type=\"complete\" aggregate-auth-version=\"2\"><session-id>{ctx}</session-id>\
             <session-token>OIDC-SESSION-{ctx}</session-token><auth id=\"success\"/>\
             </config-auth>"
        )))
    }

    fn xml(&self, request: &ServerRequest) -> Result<ServerResponse, String> {
        let body = String::from_utf8_lossy(&request.body);
        if body.contains("type=\"init\"") {
            return self.init(request, &body).map(xml_reply);
        }
        let token = between(&body, "<sso-token>", "</sso-token>")
            .ok_or("the auth-reply carries no <sso-token>")?;
        let mut logins = self.logins.lock().map_err(|_| "lock")?;
        let ctx = logins
            .iter()
            .find(|(_, login)| login.token.as_deref() == Some(token))
            .map(|(ctx, _)| *ctx)
            .ok_or_else(|| format!("unknown or used SSO token {token:?}"))?;
        logins.remove(&ctx);
        log!("login {ctx}: complete, the token matched");
        Ok(xml_reply(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" \
             type=\"complete\" aggregate-auth-version=\"2\"><session-id>{ctx}</session-id>\
             <session-token>SSO-SESSION-{ctx}</session-token><auth id=\"success\"/>\
             </config-auth>"
        )))
    }

    fn init(&self, request: &ServerRequest, body: &str) -> Result<String, String> {
        if !body.contains("<auth-method>single-sign-on-v2</auth-method>") {
            return Err("the init does not offer single-sign-on-v2".into());
        }
        let offers_external =
            body.contains("<auth-method>single-sign-on-external-browser</auth-method>");
        let client_dh = match (
            offers_external && !self.embedded_only,
            request.header("X-AnyConnect-STRAP-DH-Pubkey"),
        ) {
            (true, Some(key)) => Some(
                openssl::base64::decode_block(key.trim())
                    .map_err(|e| format!("X-AnyConnect-STRAP-DH-Pubkey is not base64: {e}"))?,
            ),
            (true, None) => return Err("external browser offered without a STRAP DH key".into()),
            (false, _) => None,
        };
        let ctx = {
            let mut next = self.next_ctx.lock().map_err(|_| "lock")?;
            *next += 1;
            *next
        };
        let external = client_dh.is_some();
        self.logins.lock().map_err(|_| "lock")?.insert(
            ctx,
            Login {
                client_dh,
                token: None,
            },
        );
        log!(
            "login {ctx}: single sign-on, {} browser",
            if external { "external" } else { "embedded" }
        );
        let host = &self.host;
        let mode = if external {
            "<sso-v2-browser-mode>external</sso-v2-browser-mode>"
        } else {
            ""
        };
        Ok(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" \
             type=\"auth-request\" aggregate-auth-version=\"2\"><opaque is-for=\"sg\">\
             <tunnel-group>sso</tunnel-group></opaque><auth id=\"main\"><title>Login</title>\
             <message>Please complete the authentication process in the browser.</message>\
             <sso-v2-login>https://{host}/+CSCOE+/saml/sp/login?ctx={ctx}&amp;acsamlcap=v2\
             </sso-v2-login><sso-v2-login-final>https://{host}{FINAL_PAGE}</sso-v2-login-final>\
             <sso-v2-token-cookie-name>acSamlv2Token</sso-v2-token-cookie-name>\
             <sso-v2-error-cookie-name>acSamlv2Error</sso-v2-error-cookie-name>{mode}\
             <form><input type=\"sso\" name=\"sso-token\"></input></form></auth></config-auth>"
        ))
    }

    fn start_login(&self, request: &ServerRequest) -> Result<ServerResponse, String> {
        let ctx = self.known_ctx(request)?;
        Ok(redirect(&format!(
            "https://{}/idp/authorize?ctx={ctx}",
            self.host
        )))
    }

    /// The stand-in identity provider: HTTP Basic with the one user it knows.
    fn identity_provider(&self, request: &ServerRequest) -> Result<ServerResponse, String> {
        let ctx = self.known_ctx(request)?;
        let expected = openssl::base64::encode_block(format!("{USER}:{PASSWORD}").as_bytes());
        let given = request
            .header("Authorization")
            .and_then(|a| a.strip_prefix("Basic "));
        if given.map(str::trim) != Some(expected.as_str()) {
            log!("login {ctx}: the identity provider asks for credentials");
            return Ok(text(401, "Unauthorized", "text/plain", "log in\n")
                .header("WWW-Authenticate", "Basic realm=\"idp\""));
        }
        let assertion = self.sign(&format!("{USER}|{ctx}"))?;
        log!("login {ctx}: the identity provider vouches for {USER}");
        Ok(redirect(&format!(
            "https://{}/+CSCOE+/saml/sp/acs?ctx={ctx}&assertion={assertion}",
            self.host
        )))
    }

    /// The provider's assertion comes back: hand out the token.
    fn assertion(&self, request: &ServerRequest) -> Result<ServerResponse, String> {
        let ctx = self.known_ctx(request)?;
        let query = parse_query(&request.target);
        let assertion = gateway::field(&query, "assertion").ok_or("no assertion")?;
        if assertion != self.sign(&format!("{USER}|{ctx}"))? {
            return Err(format!("login {ctx}: the assertion is forged"));
        }
        let mut raw = [0u8; 24];
        openssl::rand::rand_bytes(&mut raw).map_err(|e| e.to_string())?;
        let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let mut logins = self.logins.lock().map_err(|_| "lock")?;
        let login = logins.get_mut(&ctx).ok_or("login vanished")?;
        login.token = Some(token.clone());
        let final_url = format!("https://{}{FINAL_PAGE}", self.host);
        match &login.client_dh {
            Some(dh) => {
                let sealed: EncryptedToken =
                    oc_tls::sso::seal_token(dh, token.as_bytes()).map_err(|e| e.to_string())?;
                log!("login {ctx}: token sealed for the client, browser sent to localhost");
                Ok(redirect(&sealed.callback_url(&final_url)))
            }
            None => {
                log!("login {ctx}: token set as the acSamlv2Token cookie");
                Ok(redirect(&final_url).header(
                    "Set-Cookie",
                    format!("acSamlv2Token={token}; Path=/; Secure"),
                ))
            }
        }
    }

    fn known_ctx(&self, request: &ServerRequest) -> Result<u64, String> {
        let query = parse_query(&request.target);
        let ctx = gateway::field(&query, "ctx")
            .and_then(|c| c.parse().ok())
            .ok_or("no ctx")?;
        match self.logins.lock().map_err(|_| "lock")?.contains_key(&ctx) {
            true => Ok(ctx),
            false => Err(format!("unknown login {ctx}")),
        }
    }

    fn sign(&self, what: &str) -> Result<String, String> {
        let key = PKey::hmac(&self.secret).map_err(|e| e.to_string())?;
        let mut signer = Signer::new(MessageDigest::sha256(), &key).map_err(|e| e.to_string())?;
        let mac = signer
            .sign_oneshot_to_vec(what.as_bytes())
            .map_err(|e| e.to_string())?;
        Ok(mac.iter().map(|b| format!("{b:02x}")).collect())
    }
}

fn between<'a>(body: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = body.find(open)? + open.len();
    let len = body.get(start..)?.find(close)?;
    body.get(start..start + len)
}

const USAGE: &str = "usage: sso_gateway --listen ADDR:PORT --cert PEM --key PEM \
    [--mode external|embedded] [--bearer TOKEN] [--redirect-to URL] [--log FILE]";

fn main() -> ExitCode {
    gateway::login_only_main("sso_gateway", USAGE, |options| {
        let (mut embedded_only, mut bearer, mut redirect_to) = (false, None, None);
        for (name, value) in &options.own {
            let value = value.clone().unwrap_or_default();
            match name.as_str() {
                "--mode" if value == "embedded" => embedded_only = true,
                "--mode" if value == "external" => embedded_only = false,
                "--mode" => return Err(format!("--mode {value}: external or embedded")),
                "--bearer" => bearer = Some(value),
                "--redirect-to" => redirect_to = Some(value),
                other => return Err(gateway::unknown_option(other)),
            }
        }
        let mut secret = vec![0; 32];
        openssl::rand::rand_bytes(&mut secret).map_err(|e| e.to_string())?;
        Ok(Gateway {
            host: options.listen.to_string(),
            bearer,
            redirect_to,
            embedded_only,
            secret,
            logins: Mutex::default(),
            next_ctx: Mutex::default(),
        })
    })
}
