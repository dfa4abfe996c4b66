//! OpenID Connect bearer tokens, server side (ocserv's `auth = oidc[config=FILE]`), without
//! I/O: the JSON configuration file, the provider's discovery document and key set (JWKS),
//! and the checks on a token (a JWS in compact form, RFC 7515/7519): its header, the
//! signing key it names, its lifetime, the required claims and the user-name claim.
//!
//! The signature itself is checked by a [`SignatureCheck`] (OpenSSL's, in `oc-tls`); the
//! documents are fetched by the server's security module, which asks [`KeySet::may_refresh`]
//! when a token names a key it does not have.

mod jwk;
mod settings;
mod sso;
mod token;

pub use jwk::{Jwk, JwkError, KeyMaterial, KeySet};
pub use settings::{Discovery, DocumentUrl, OidcSettings, SsoClient};
pub use sso::{
    authorization_url, check_id_token, id_token_of, parse_callback, pkce_challenge,
    token_request_body, SsoCallback, CALLBACK_PATH, DONE_PATH, MAX_SSO_FIELD, TOKEN_COOKIE,
};
pub use token::{verify_token, Alg, Jwt, SignatureCheck, Verified};

/// Longest bearer token taken (provider tokens with many group claims reach a few KiB);
/// it fits in the server's 16 KiB request head with room for the other headers.
pub const MAX_TOKEN: usize = 12 * 1024;
/// Largest discovery document or key set read.
pub const MAX_DOCUMENT: usize = 1024 * 1024;
/// ocserv's default for `minimum_jwk_refresh_time`, in seconds.
pub const DEFAULT_REFRESH_INTERVAL: u64 = 900;

/// Why a configuration, document or token was refused; messages name the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    #[error("{file}: {message}")]
    Config { file: String, message: String },
    #[error("{what}: {message}")]
    Document { what: String, message: String },
    #[error("token malformed: {0}")]
    Malformed(String),
    #[error("token signed with {0:?}, which is not accepted (RS, PS, ES 256/384/512 or EdDSA)")]
    Algorithm(String),
    #[error("token's typ is {0:?}, not \"JWT\"")]
    Type(String),
    #[error("no key {kid:?} in the provider's key set")]
    UnknownKey { kid: String },
    #[error("token signature does not verify with key {kid:?}: {why}")]
    Signature { kid: String, why: String },
    #[error("token lifetime: {0}")]
    Lifetime(String),
    #[error("required claim {claim:?} is not {expected}")]
    Claim { claim: String, expected: String },
    #[error("token has no string claim {0:?} for the user name")]
    UserName(String),
    #[error("browser login: {0}")]
    Sso(String),
}

#[cfg(test)]
mod tests;
