//! `oidc_idp`: a test OpenID Connect provider for browser logins, on the keys of
//! `oidc_provider::Provider`: its discovery document and key set, the authorization
//! endpoint (HTTP Basic with `alice`/`wonderland` or `bob`/`builder` stands in for the
//! login page; `deny` as the user refuses the login), and the token endpoint, which trades
//! a code once for an ID token after checking the client's secret, the redirect URI and
//! PKCE. It is test code.
//!
//! ```text
//! oidc_idp --listen ADDR:PORT --cert PEM --key PEM --dir DIR --client ID:SECRET [--log FILE]
//! ```

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Mutex;

use base64::Engine;
use ferroconnect_interop::gateway::{
    self, field, log_line, parse_form, parse_query, redirect, text, LoginPages,
};
use ferroconnect_interop::oidc_provider::{unix_now, Provider, ISSUER};
use oc_proto::http::server::{Method, ServerRequest, ServerResponse};
use oc_proto::oidc::pkce_challenge;
use serde_json::json;

macro_rules! log {
    ($($arg:tt)*) => { log_line(format_args!($($arg)*)) };
}

const USERS: &[(&str, &str)] = &[("alice", "wonderland"), ("bob", "builder")];

/// A code handed out, until the token endpoint takes it.
#[derive(Debug)]
struct Grant {
    user: String,
    redirect_uri: String,
    nonce: String,
    challenge: String,
}

struct Idp {
    provider: Provider,
    client_id: String,
    client_secret: String,
    codes: Mutex<HashMap<String, Grant>>,
}

impl LoginPages for Idp {
    fn page(&self, request: &ServerRequest) -> Result<ServerResponse, String> {
        match (&request.method, request.path()) {
            (Method::Get, "/discovery.json" | "/keys.json") => {
                let file = self
                    .provider
                    .dir
                    .join(request.path().trim_start_matches('/'));
                let body = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
                Ok(text(200, "OK", "application/json", &body))
            }
            (Method::Get, "/authorize") => self.authorize(request),
            (Method::Post, "/token") => self.token(request),
            (_, path) => Err(format!("no such page: {path}")),
        }
    }
}

impl Idp {
    fn authorize(&self, request: &ServerRequest) -> Result<ServerResponse, String> {
        let query = parse_query(&request.target);
        let need = |name: &str| {
            field(&query, name)
                .map(str::to_owned)
                .ok_or(format!("authorize: no {name}"))
        };
        if need("client_id")? != self.client_id || need("response_type")? != "code" {
            return Err("authorize: another client or response type".into());
        }
        if need("code_challenge_method")? != "S256" {
            return Err("authorize: PKCE must be S256".into());
        }
        let (redirect_uri, state) = (need("redirect_uri")?, need("state")?);
        let Some(user) = self.basic_user(request) else {
            log!("authorize: asking for credentials");
            return Ok(text(401, "Unauthorized", "text/plain", "log in\n")
                .header("WWW-Authenticate", "Basic realm=\"idp\""));
        };
        if user == "deny" {
            log!("authorize: the user refused");
            return Ok(redirect(&format!(
                "{redirect_uri}?error=access_denied&error_description=refused&state={state}"
            )));
        }
        let code = hex(16);
        let grant = Grant {
            user: user.clone(),
            redirect_uri: redirect_uri.clone(),
            nonce: need("nonce")?,
            challenge: need("code_challenge")?,
        };
        self.codes
            .lock()
            .map_err(|_| "lock")?
            .insert(code.clone(), grant);
        log!("authorize: code for {user}");
        Ok(redirect(&format!(
            "{redirect_uri}?code={code}&state={state}"
        )))
    }

    fn basic_user(&self, request: &ServerRequest) -> Option<String> {
        let given = request.header("Authorization")?.strip_prefix("Basic ")?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(given.trim())
            .ok()?;
        let (user, password) = std::str::from_utf8(&raw).ok()?.split_once(':')?.to_owned();
        let known = USERS.iter().any(|(u, p)| *u == user && *p == password);
        (known || (user == "deny")).then(|| user.to_owned())
    }

    fn token(&self, request: &ServerRequest) -> Result<ServerResponse, String> {
        let form = parse_form(&request.body);
        let expected = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.client_id, self.client_secret));
        if request.header("Authorization") != Some(&format!("Basic {expected}")) {
            return Ok(token_error("invalid_client", "wrong client credentials"));
        }
        let code = field(&form, "code").unwrap_or_default();
        let Some(grant) = self.codes.lock().map_err(|_| "lock")?.remove(code) else {
            return Ok(token_error("invalid_grant", "unknown or used code"));
        };
        if field(&form, "redirect_uri") != Some(grant.redirect_uri.as_str()) {
            return Ok(token_error("invalid_grant", "another redirect_uri"));
        }
        let verifier = field(&form, "code_verifier").unwrap_or_default();
        if pkce_challenge(verifier) != grant.challenge {
            return Ok(token_error("invalid_grant", "PKCE verifier does not match"));
        }
        let now = unix_now();
        let claims = json!({"iss": ISSUER, "aud": self.client_id, "sub": grant.user,
            "preferred_username": grant.user, "nonce": grant.nonce,
            "iat": now, "nbf": now, "exp": now + 300});
        let id_token = self.provider.mint(0, &json!({}), &claims);
        log!("token: ID token for {}", grant.user);
        let body = json!({"id_token": id_token, "access_token": hex(16), "token_type": "Bearer"});
        Ok(text(200, "OK", "application/json", &body.to_string()))
    }
}

fn token_error(error: &str, description: &str) -> ServerResponse {
    log!("token: {error}: {description}");
    let body = json!({"error": error, "error_description": description});
    text(400, "Bad Request", "application/json", &body.to_string())
}

fn hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    openssl::rand::rand_bytes(&mut raw).unwrap_or_default();
    oc_proto::hex::encode(&raw)
}

const USAGE: &str = "usage: oidc_idp --listen ADDR:PORT --cert PEM --key PEM --dir DIR \
    --client ID:SECRET [--log FILE]";

fn main() -> ExitCode {
    gateway::login_only_main("oidc_idp", USAGE, |options| {
        let (mut dir, mut client) = (None, None);
        for (name, value) in &options.own {
            let value = value.clone().unwrap_or_default();
            match name.as_str() {
                "--dir" => dir = Some(std::path::PathBuf::from(value)),
                "--client" => client = Some(value),
                other => return Err(gateway::unknown_option(other)),
            }
        }
        let dir = dir.ok_or("--dir is required")?;
        let client = client.ok_or("--client is required")?;
        let (client_id, client_secret) = client.split_once(':').ok_or("--client ID:SECRET")?;
        let base = format!("https://{}", options.listen);
        Ok(Idp {
            provider: Provider::create(&dir, Some(&base)),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            codes: Mutex::default(),
        })
    })
}
