//! The client's errors and the exit codes openconnect gives them.

use std::net::SocketAddr;

use oc_proto::anyconnect::auth::AuthError;
use oc_proto::anyconnect::connect::ConnectError;
use oc_proto::anyconnect::session::SessionError;
use oc_proto::http::HttpError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("{0}")]
    Usage(String),
    #[error("failed to resolve host {host:?}: {why}")]
    Resolve { host: String, why: String },
    #[error("failed to connect to {addr}: {why}")]
    Connect { addr: SocketAddr, why: String },
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("failed to connect to proxy {proxy}: {why}")]
    ProxyConnect { proxy: String, why: String },
    #[error("proxy {proxy}: {source}")]
    Proxy {
        proxy: String,
        source: oc_proto::client_proxy::ProxyError,
    },
    #[error(transparent)]
    Tls(#[from] oc_tls::TlsError),
    #[error("bad HTTP response from server: {0}")]
    Http(#[from] HttpError),
    #[error("I/O error while {what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("{0}\nFailed to complete authentication")]
    Auth(#[from] AuthError),
    #[error("{0}; failed to complete authentication")]
    AuthAborted(String),
    #[error("cookie was rejected by server; exiting ({0})")]
    CookieRejected(String),
    #[error("reconnect gave different addresses ({0}); treating the cookie as rejected")]
    AddressChanged(String),
    #[error("{0}")]
    Tunnel(ConnectError),
    #[error("protocol error on the tunnel: {0}")]
    Session(#[from] SessionError),
    #[error("session terminated by server ({0}); exiting")]
    ServerTerminated(String),
    /// The server could not serve the request now (HTTP 5xx): worth another try.
    #[error("the server is unavailable: {0}")]
    Unavailable(String),
    #[error("reconnect failed for {secs}s ({last}); exiting")]
    ReconnectTimeout { secs: u64, last: String },
    #[error(transparent)]
    Tun(#[from] oc_net::TunError),
    #[error(transparent)]
    Script(#[from] oc_net::ScriptError),
    #[error("{0}")]
    System(String),
    #[error("software token: {0}")]
    Token(#[from] oc_otp::OtpError),
    #[error(transparent)]
    Ppp(#[from] oc_proto::ppp::PppError),
    #[error("failed to establish PPP: {0}")]
    PppNotEstablished(String),
    #[error(transparent)]
    Gp(oc_proto::gp::GpError),
    #[error(transparent)]
    GpFrame(#[from] oc_proto::gp::frame::FrameError),
    #[error(transparent)]
    Nc(#[from] oc_proto::nc::NcError),
    #[error(transparent)]
    Pulse(oc_proto::pulse::PulseError),
}

impl ClientError {
    /// openconnect's exit status: 2 when the cookie was rejected, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::CookieRejected(_) | Self::AddressChanged(_) => 2,
            Self::Gp(e) if e.is_refusal() => 2,
            _ => 1,
        }
    }

    /// Whether a reconnect may help (the server or the path had a hiccup).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. }
                | Self::ProxyConnect { .. }
                | Self::Unavailable(_)
                | Self::Timeout(_)
                | Self::Io { .. }
                | Self::Http(_)
                | Self::Resolve { .. }
        ) || matches!(
            self,
            Self::Tls(oc_tls::TlsError::Handshake { .. } | oc_tls::TlsError::ObsoleteCrypto { .. })
        ) || matches!(self, Self::Tunnel(ConnectError::Refused { .. }))
            || matches!(self, Self::Proxy { source, .. } if proxy_hiccup(source))
    }

    pub fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io { what, source }
    }
}

impl ClientError {
    /// A tunnel request's verdict (the protocol's rule) as the run goes on (`Ok`), or the
    /// error that ends or retries it.
    pub fn from_verdict(verdict: oc_proto::http::TunnelVerdict, status: u16) -> Result<(), Self> {
        use oc_proto::http::TunnelVerdict;
        let unexpected = format!("Unexpected {status} result from server");
        match verdict {
            TunnelVerdict::Accepted => Ok(()),
            TunnelVerdict::CookieRejected => Err(Self::CookieRejected(unexpected)),
            TunnelVerdict::Unavailable => Err(Self::Unavailable(format!("HTTP {status}"))),
            TunnelVerdict::Unexpected => Err(Self::AuthAborted(unexpected)),
        }
    }
}

/// A proxy that cannot reach the server now (a 5xx answer, a SOCKS failure to connect) may
/// manage later; refused credentials will not get better.
fn proxy_hiccup(e: &oc_proto::client_proxy::ProxyError) -> bool {
    use oc_proto::client_proxy::ProxyError;
    matches!(e, ProxyError::SocksReply { .. } | ProxyError::Http(_))
        || matches!(e, ProxyError::Refused { status, .. } if *status >= 500)
}

impl ClientError {
    /// A session page's status (`oc_proto::http::session_page_verdict`), with `what` the
    /// page in the message.
    pub fn from_session_page(status: u16, what: &str) -> Result<(), Self> {
        use oc_proto::http::TunnelVerdict;
        let text = format!("HTTP {status} for {what}");
        match oc_proto::http::session_page_verdict(status) {
            TunnelVerdict::Accepted => Ok(()),
            TunnelVerdict::CookieRejected => Err(Self::CookieRejected(text)),
            TunnelVerdict::Unavailable => Err(Self::Unavailable(text)),
            TunnelVerdict::Unexpected => Err(Self::AuthAborted(text)),
        }
    }
}

impl From<ConnectError> for ClientError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::CookieRejected { status, reason } => {
                Self::CookieRejected(format!("HTTP {status} {reason}"))
            }
            other => Self::Tunnel(other),
        }
    }
}
