//! Palo Alto GlobalProtect, as openconnect speaks it (`--protocol=gp`), both sides: the
//! client's requests and its reading of the answers, and the gateway's reading of the
//! requests and its answers, built from the same types so that the client and the test
//! gateway share one implementation.
//!
//! A session, as the client runs it ([`LoginFlow`] drives steps 1 to 3 as upstream's
//! `gpst_login` does: which request next, which form, the portal's choice, the result):
//!
//! 1. `prelogin.esp` on the portal (`/global-protect/`) or the gateway (`/ssl-vpn/`):
//!    [`client::prelogin_request`], then [`read_reply`] and [`Prelogin::parse`]: the
//!    labels, the message, the region, or a SAML request. [`Prelogin::form`] is the login
//!    form (`_login`: `user`, `passwd` or the external secret's field).
//! 2. The portal's `getconfig.esp` ([`client::login_request`] with
//!    [`Interface::Portal`]): [`PortalConfig::parse`] lists the gateways (with priorities
//!    for the prelogin's region) and may hand out `portal-userauthcookie`; the client
//!    picks one ([`PortalConfig::choose`], `--authgroup`) and goes on there, replaying the
//!    credentials.
//! 3. The gateway's `login.esp` ([`Interface::Gateway`]): either a [`Challenge`] (the
//!    second factor: [`challenge_form`], posted back with its `inputStr`) or the JNLP
//!    arguments ([`LoginArgs::parse`]) whose [`LoginArgs::cookie`] is the session's
//!    cookie (`authcookie`, `portal`, `user`, `domain`, `preferred-ip`, `computer`).
//! 4. The gateway's `getconfig.esp` ([`client::getconfig_request`]):
//!    [`GatewayConfig::parse`] gives the [`IpConfig`](crate::ip_config::IpConfig) for the
//!    vpnc-script and, when the gateway offers ESP, the keys ([`EspConfig`]) and the magic
//!    address ([`GatewayConfig::esp_magic`]). Then `hipreportcheck.esp`
//!    ([`client::hip_check_request`], [`read_hip_check`]).
//! 5. With ESP: the probe ([`probe::echo_request`]) sealed with the client's keys, sent to
//!    the `udp-port`, until the gateway's echo reply ([`probe::is_echo_reply`]) arrives;
//!    then IP packets as ESP. Without ESP, or when no reply comes within 5 s: the TLS
//!    tunnel, [`client::tunnel_request`] answered by `START_TUNNEL`
//!    ([`read_tunnel_answer`]), then packets in GP's 16-byte framing ([`frame`]). The
//!    TLS tunnel and ESP exclude each other: connecting the first ends the second's keys.
//! 6. `logout.esp` ([`client::logout_request`]) on exit.
//!
//! Behaviour follows upstream openconnect (its newest reading where it changed since 9.01:
//! the lenient XML, JavaScript challenges across lines or inside HTML, prelogin's region and
//! the gateways' priorities, `access-routes-v6` as includes, the portal's version parroted
//! as `app-version`); the notes at each item say where 9.01 differs.

pub mod auth;
pub mod client;
pub mod config;
pub mod flow;
pub mod frame;
pub mod probe;
pub mod reply;
pub mod server;
pub mod xml;

#[cfg(test)]
mod tests;

pub use auth::{
    challenge_form, GatewayEntry, LoginArgs, PortalConfig, Prelogin, Saml, SamlMethod,
    CHALLENGE_FORM, LOGIN_FORM,
};
pub use client::{
    read_hip_check, read_tunnel_answer, ClientInfo, GpCookie, Interface, TunnelAnswer,
};
pub use config::{EspConfig, GatewayConfig};
pub use flow::{LoginFlow, Next, Start};
pub use reply::{read_body, read_reply, Challenge, ErrorKind, Reply};

use thiserror::Error;

use crate::esp::EspError;

/// The User-Agent upstream sends GlobalProtect servers (older ones require it).
pub const USER_AGENT: &str = "PAN GlobalProtect";
/// The client version every request states.
pub const CLIENT_VER: &str = "4100";
/// The `app-version` sent when the portal named none (upstream's fallback; 9.01 always
/// sends `5.1.5-8`).
pub const DEFAULT_APP_VERSION: &str = "6.3.0-33";
/// The TLS tunnel's path unless the configuration names another.
pub const TUNNEL_PATH: &str = "/ssl-tunnel-connect.sslvpn";
/// The gateway's answer that starts the TLS tunnel (no HTTP head).
pub const START_TUNNEL: &[u8; 12] = b"START_TUNNEL";
/// The UDP port real gateways take ESP on.
pub const ESP_PORT: u16 = 4501;
/// The DPD and keepalive interval upstream uses unless `--force-dpd` says otherwise (the
/// Windows client's), for both the TLS tunnel and ESP's probes.
pub const DPD_SECONDS: u64 = 10;

/// What cannot be read from, or done with, a GlobalProtect exchange.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GpError {
    #[error("empty answer from the GlobalProtect server")]
    Empty,
    /// HTTP 512: GlobalProtect's "Invalid username or password".
    #[error("invalid username or password (HTTP 512)")]
    BadCredentials,
    #[error("the GlobalProtect server refused the request (HTTP {0})")]
    HttpRefused(u16),
    #[error("unexpected HTTP {status} from the GlobalProtect server: {body}")]
    Http { status: u16, body: String },
    /// An error message from the server (`<error>`, prelogin's `<msg>`, JavaScript's
    /// `respMsg`), with what it means for the client.
    #[error("{message}")]
    Server { kind: ErrorKind, message: String },
    #[error("failed to parse the server's answer: {0:?}")]
    Malformed(String),
    #[error("expected a <{expected}> document, got <{got}>")]
    UnexpectedRoot { expected: &'static str, got: String },
    #[error("unknown SAML method {0:?}")]
    UnknownSamlMethod(String),
    /// A SAML login, and no external login's cookie to go on with (upstream's legacy flow
    /// asks for the field after a `:` in the URL's path).
    #[error(
        "SAML {method} authentication is required via {target}\nWhen SAML authentication is \
         complete, specify destination form field by appending field_name to login URL \
         (:prelogin-cookie or :portal-userauthcookie, or --usergroup portal:prelogin-cookie)"
    )]
    SamlRequired { method: SamlMethod, target: String },
    #[error("could not decode the SAML request as base64")]
    BadSamlRequest,
    #[error("GlobalProtect portal configuration lists no gateway servers")]
    NoGateways,
    #[error("gateway choice {0:?} matches none of the portal's gateways")]
    NoSuchGateway(String),
    #[error("gateway choice {0:?} matches several of the portal's gateways")]
    AmbiguousGateway(String),
    #[error("GlobalProtect login returned empty or missing {0}")]
    MissingLoginArgument(&'static str),
    #[error("GlobalProtect login returned {name}={value:?} (expected {expected})")]
    UnexpectedLoginArgument {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("the session cookie lacks {0}")]
    CookieLacks(&'static str),
    #[error("No IP address received in the GlobalProtect configuration. Aborting")]
    NoAddress,
    #[error("the GlobalProtect configuration has a bad <{tag}>: {value:?}")]
    BadConfigValue { tag: &'static str, value: String },
    #[error("unknown ESP {what} algorithm {name:?}")]
    UnknownAlgorithm { what: &'static str, name: String },
    #[error("ESP key <{tag}> has {got} bytes where <bits> says {bits} bits")]
    KeyLength {
        tag: &'static str,
        got: usize,
        bits: String,
    },
    #[error(transparent)]
    Esp(#[from] EspError),
    #[error("the gateway disconnected right after the tunnel request")]
    TunnelClosed,
    /// HTTP 502: the gateway does not like the cookie (retrying will not help).
    #[error("the gateway refused the session cookie (HTTP 502)")]
    TunnelCookieRejected,
    #[error("unexpected answer to the tunnel request: {0:?}")]
    TunnelRefused(String),
}

impl GpError {
    /// Whether retrying (a reconnect with the same cookie) cannot help: the cookie,
    /// certificate or session is refused.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::HttpRefused(_)
                | Self::TunnelCookieRejected
                | Self::Server {
                    kind: ErrorKind::Refused,
                    ..
                }
        )
    }
}
