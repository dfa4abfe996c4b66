//! Browser logins through the provider (our step beyond ocserv): the server answers a
//! client that offers AnyConnect's `single-sign-on-v2` with the provider's authorization
//! URL (OpenID Connect's authorization code flow with PKCE, RFC 7636); the browser comes
//! back to [`CALLBACK_PATH`] with a code, which the server trades for an ID token at the
//! token endpoint; the token's user then gets a one-time token for the VPN client (as the
//! [`TOKEN_COOKIE`] cookie, or sealed to the client for an external browser).

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{OidcError, SsoClient, Verified};
use crate::url::percent_decode;

/// Where the provider sends the browser back (the redirect URI to register).
pub const CALLBACK_PATH: &str = "/+CSCOE+/oidc/callback";
/// The page that ends an embedded-browser login (`sso-v2-login-final`).
pub const DONE_PATH: &str = "/+CSCOE+/oidc/done";
/// The cookie holding the one-time token at the final page (`sso-v2-token-cookie-name`).
pub const TOKEN_COOKIE: &str = "ferroconnect-sso-token";
/// Longest code, state or error text taken from the browser.
pub const MAX_SSO_FIELD: usize = 2048;

/// PKCE's S256 challenge for `verifier`.
pub fn pkce_challenge(verifier: &str) -> String {
    B64URL.encode(Sha256::digest(verifier.as_bytes()))
}

fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    crate::form::push_encoded(&mut out, value);
    out
}

fn query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", form_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The provider's login page for this login.
pub fn authorization_url(
    endpoint: &str,
    client: &SsoClient,
    redirect_uri: &str,
    state: &str,
    nonce: &str,
    challenge: &str,
) -> String {
    let separator = if endpoint.contains('?') { '&' } else { '?' };
    let q = query(&[
        ("response_type", "code"),
        ("client_id", &client.client_id),
        ("redirect_uri", redirect_uri),
        ("scope", &client.scope),
        ("state", state),
        ("nonce", nonce),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]);
    format!("{endpoint}{separator}{q}")
}

/// The token request's body, and its `Authorization` header for a confidential client
/// (HTTP Basic of the form-encoded id and secret, RFC 6749 2.3.1).
pub fn token_request_body(
    code: &str,
    redirect_uri: &str,
    client: &SsoClient,
    verifier: &str,
) -> (String, Option<String>) {
    let body = query(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("client_id", &client.client_id),
        ("code_verifier", verifier),
    ]);
    let basic = client.client_secret.as_ref().map(|secret| {
        let pair = format!("{}:{}", form_encode(&client.client_id), form_encode(secret));
        format!("Basic {}", B64.encode(pair))
    });
    (body, basic)
}

/// The ID token in the token endpoint's answer, or the provider's error.
pub fn id_token_of(body: &[u8]) -> Result<String, OidcError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| OidcError::Sso(format!("the token endpoint's answer is not JSON: {e}")))?;
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        let description = value
            .get("error_description")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return Err(OidcError::Sso(format!(
            "the token endpoint refused the code: {error} {description}"
        )));
    }
    match value.get("id_token") {
        Some(Value::String(token)) => Ok(token.clone()),
        _ => Err(OidcError::Sso(
            "the token endpoint's answer has no id_token".into(),
        )),
    }
}

/// What an ID token must say beyond [`super::verify_token`]'s checks: the nonce of this
/// login, and our client id among its audiences.
pub fn check_id_token(verified: &Verified, nonce: &str, client_id: &str) -> Result<(), OidcError> {
    if verified.claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
        return Err(OidcError::Sso(
            "the ID token's nonce is not this login's".into(),
        ));
    }
    let ours = match verified.claims.get("aud") {
        Some(Value::String(aud)) => aud == client_id,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(client_id)),
        _ => false,
    };
    if !ours {
        return Err(OidcError::Sso(format!(
            "the ID token is not for client {client_id:?}"
        )));
    }
    Ok(())
}

/// The browser's return to [`CALLBACK_PATH`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoCallback {
    pub state: String,
    /// The authorization code, or the provider's error.
    pub code: Result<String, String>,
}

/// Reads the callback's request target (`/+CSCOE+/oidc/callback?code=..&state=..`).
pub fn parse_callback(target: &str) -> Result<SsoCallback, OidcError> {
    let bad = |why: &str| OidcError::Sso(why.to_owned());
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != CALLBACK_PATH {
        return Err(bad("not the login callback"));
    }
    let (mut state, mut code, mut error, mut description) = (None, None, None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
        if raw.len() > MAX_SSO_FIELD {
            return Err(bad("a callback field is too long"));
        }
        let value = percent_decode(raw, true);
        if value.chars().any(char::is_control) {
            return Err(bad("a callback field has control characters"));
        }
        let slot = match name {
            "state" => &mut state,
            "code" => &mut code,
            "error" => &mut error,
            "error_description" => &mut description,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(bad("a callback field is repeated"));
        }
    }
    let state = state
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("no state"))?;
    let code = match (code.filter(|c| !c.is_empty()), error) {
        (Some(code), None) => Ok(code),
        (None, Some(error)) => Err(format!("{error} {}", description.unwrap_or_default())
            .trim()
            .to_owned()),
        _ => return Err(bad("neither a code nor an error")),
    };
    Ok(SsoCallback { state, code })
}
