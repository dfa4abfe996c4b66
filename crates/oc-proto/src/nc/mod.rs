//! Juniper Network Connect (`--protocol=nc`), as openconnect speaks it: the `dana-na` web
//! login ([`login`]) that ends with the `DSID` cookie, the tunnel request, and the oNCP
//! tunnel: its framing ([`oncp`]) and its configuration messages ([`config`]).

pub mod config;
pub mod login;
pub mod oncp;

pub use login::{read_page, session_cookie, NcForm, NcFormKind, NcPage, DSID, ROLES_FIELD};

use thiserror::Error;

use crate::http::{Request, TunnelVerdict};

/// The tunnel's request (upstream's `oncp_connect`): a POST to `/dana/js` with the
/// session's cookie, which the server answers with 200 and the oNCP stream, or refuses.
pub fn tunnel_request(host: &str, cookie: &str, user_agent: &str) -> Request {
    Request::new("POST", "/dana/js?prot=1&svc=4")
        .header("Host", host)
        .header("User-Agent", user_agent)
        .header("Cookie", cookie)
        .header("Connection", "close")
        .header("Content-Length", "256")
}

/// The tunnel request's answer (upstream's `oncp_connect`): 200 starts oNCP; a redirect or
/// a 4xx means the cookie is dead.
pub fn tunnel_verdict(status: u16) -> TunnelVerdict {
    TunnelVerdict::or_unavailable(
        status,
        match status {
            200 => TunnelVerdict::Accepted,
            302 | 400..=499 => TunnelVerdict::CookieRejected,
            _ => TunnelVerdict::Unexpected,
        },
    )
}

/// What cannot be read from, or done with, a Network Connect login.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NcError {
    /// A form upstream does not know either (its action names the host checker's
    /// remediation page when TNCC failed).
    #[error(
        "Unknown form (name '{name}', id '{id}'){}",
        if *host_checker {
            "; its action likely indicates that TNCC/Host Checker failed"
        } else {
            ""
        }
    )]
    UnknownForm {
        name: String,
        id: String,
        host_checker: bool,
    },
    #[error("Cannot handle form method='{method}' of form '{form}'")]
    FormMethod { form: String, method: String },
    #[error("an oNCP message of {0} bytes does not fit in a record")]
    TooLong(usize),
    #[error("Unrecognised data packet ({0} bytes left in a KMP 300 message)")]
    BadDataPacket(usize),
    #[error("Received non-ESP TLVs (group {0}) in ESP negotiation KMP")]
    NonEspGroup(u16),
    #[error("Unexpected length {len} for TLV {group}/{attr}")]
    BadAttribute { group: u16, attr: u16, len: usize },
    #[error("Failed to parse KMP message: a TLV runs past its end ({0} bytes left)")]
    Truncated(usize),
    #[error("unusable ESP keys: {0}")]
    Keys(String),
}
