//! Reaching the VPN server through a proxy (`-P`, `https_proxy`): the proxy URL, HTTP
//! `CONNECT` with the proxy's authentication (NTLMv2, Digest, Basic), and SOCKS5 (no
//! authentication, or a user name and password), as openconnect 9.x speaks them.
//!
//! Sans-IO: the shell opens TCP connections, moves the bytes each state machine asks for,
//! and supplies the randomness and time that Digest and NTLM answers need.

pub mod auth;
mod digest;
pub mod environment;
pub mod http_connect;
mod ntlm;
pub mod socks5;
mod url;

use thiserror::Error;

use crate::http::HttpError;
pub use url::{ProxyKind, ProxyUrl};

/// A user name and password for the proxy, from the proxy URL.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Why the proxy could not take us to the server.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProxyError {
    #[error("proxy {input:?}: {why}")]
    Url { input: String, why: String },
    #[error(
        "proxy type {0:?} is not supported: use http://, socks:// or socks5:// (as openconnect)"
    )]
    Scheme(String),
    #[error(
        "--proxy-auth: unknown method {0:?} (use a comma-separated list of basic, digest, \
         ntlm, gssapi)"
    )]
    UnknownMethod(String),
    #[error("proxy's reply: {0}")]
    Http(#[from] HttpError),
    #[error("Proxy CONNECT request failed: {status} {reason}")]
    Refused { status: u16, reason: String },
    #[error(
        "Proxy requested Basic authentication which is disabled by default: add \
         --proxy-auth=basic to send the password in the clear"
    )]
    BasicDisabled,
    #[error(
        "proxy asks for {method} authentication but has no user name and password: give them \
         in the proxy URL (http://USER:PASSWORD@host:port)"
    )]
    NoCredentials { method: &'static str },
    #[error(
        "proxy asks for GSSAPI (Negotiate) and no Kerberos token could be made: {0} (kinit \
         first?)"
    )]
    Negotiate(String),
    #[error("proxy rejected the {method} credentials (check the user name and password)")]
    Rejected { method: &'static str },
    #[error(
        "proxy requires authentication and offers no method we may use (offered: {offered}; \
         allowed by --proxy-auth: {allowed})"
    )]
    NoUsableMethod { offered: String, allowed: String },
    #[error("proxy asked to authenticate more than {0} times; giving up")]
    TooManyRounds(u32),
    #[error("proxy closed the connection in the middle of its handshake")]
    Closed,
    #[error("proxy sent {0} bytes after its reply, before the VPN server spoke")]
    TrailingData(usize),
    #[error("Unexpected {stage} response from SOCKS proxy: {bytes}")]
    SocksUnexpected { stage: &'static str, bytes: String },
    #[error("SOCKS server requires authentication, and no user name and password were given (socks5://USER:PASSWORD@host:port)")]
    SocksNoAcceptableMethod,
    #[error("SOCKS server requested unknown authentication type {0:02x}")]
    SocksMethod(u8),
    #[error("Password authentication to SOCKS server failed")]
    SocksPasswordRejected,
    #[error("SOCKS user name and password must be 1 to 255 bytes each")]
    SocksCredentialLength,
    #[error("server name {0:?} is too long for SOCKS (255 bytes at most)")]
    SocksHostLength(String),
    #[error("SOCKS proxy error {code:02x}: {text}")]
    SocksReply { code: u8, text: &'static str },
    #[error("Unexpected address type {0:02x} in SOCKS connect response")]
    SocksAddressType(u8),
}

/// A host name as it appears in an authority (`host:port`): IPv6 literals in brackets.
pub(crate) fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
