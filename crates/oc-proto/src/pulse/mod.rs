//! Pulse Connect Secure / Ivanti Connect Secure (`--protocol=pulse`), as openconnect speaks
//! it, without I/O. One TLS connection carries everything: an HTTP upgrade to IF-T/TLS
//! ([`ift`]), then EAP inside IF-T for the login ([`eap`], [`auth`]), the configuration
//! and ESP keys ([`config`]), and the packets (Juniper/4) while ESP does not carry them.

pub mod auth;
pub mod client;
pub mod config;
pub mod eap;
pub mod ift;
pub mod server;
pub mod ttls;

use thiserror::Error;

/// The answer to the upgrade: 101 switches to IF-T/TLS (a dead cookie shows only later,
/// in the login).
pub fn upgrade_verdict(status: u16) -> crate::http::TunnelVerdict {
    use crate::http::TunnelVerdict;
    TunnelVerdict::or_unavailable(
        status,
        if status == 101 {
            TunnelVerdict::Accepted
        } else {
            TunnelVerdict::Unexpected
        },
    )
}

/// A fatal error's (0x93) text: `errorType=N errorString=URL-encoded text`, as upstream
/// says it.
pub fn fatal_text(payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(payload);
    let text = text.trim_end_matches(['\0', '\n']);
    let reason = text
        .strip_prefix("errorType=")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or("?");
    let message = text
        .split_once(" errorString=")
        .map(|(_, m)| crate::url::percent_decode(m, false))
        .unwrap_or_default();
    format!("Pulse fatal error (reason: {reason}): {message}")
}

/// What cannot be read from, or done with, a Pulse server's messages.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PulseError {
    #[error("an IF-T/TLS message of impossible length {0}")]
    BadLength(usize),
    #[error("a message of {0} bytes is too long to send")]
    TooLong(usize),
    #[error("bad EAP packet: {0}")]
    BadEap(&'static str),
    #[error("Failed to parse AVP ({0} bytes left)")]
    BadAvp(usize),
    #[error("Unexpected Pulse config packet: {0}")]
    BadConfig(&'static str),
    #[error("Unexpected IF-T/TLS authentication challenge: {0}")]
    Unexpected(String),
    #[error("Authentication failure: {0}")]
    Refused(String),
    #[error("Pulse authentication cookie not accepted")]
    CookieRejected,
    #[error("{0}")]
    Unsupported(String),
    #[error("bad EAP-TTLS packet: {0}")]
    BadTtls(&'static str),
    #[error("EAP-TTLS: {0}")]
    Ttls(String),
    /// The server ended the session (its fatal error, in upstream's words).
    #[error("{0}")]
    Terminated(String),
}
