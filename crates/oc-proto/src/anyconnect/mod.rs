//! The Cisco AnyConnect / OpenConnect protocol (draft-mavrogiannopoulos-openconnect).
//!
//! - [`auth`]: the XML aggregate-auth exchange that ends with the `webvpn` cookie;
//! - [`camouflage`]: the server's web-site disguise for clients without its secret;
//! - [`connect`]: the `CONNECT /CSCOSSLC/tunnel` request and the tunnel parameters in its
//!   response;
//! - [`dtls_cipher`]: DTLS suite offers and ocserv's choice among them;
//! - [`dtls_hello`]: the tunnel id in a DTLS ClientHello (server-side dispatch);
//! - [`mtu_probe`]: path-MTU detection over DTLS with echoed DPD probes;
//! - [`host_scan`]: the host scan (CSD) a gateway asks for, run by `--csd-wrapper`;
//! - [`http_auth`]: Negotiate and Bearer answers to a login's `401`;
//! - [`frame`]: packet framing on the CSTP (TLS) and DTLS channels;
//! - [`session`]: liveness (DPD, keepalive), control frames and disconnects of a running
//!   tunnel, driven by a caller-supplied clock;
//! - [`server_auth`], [`server_connect`], [`server_session`]: the same exchange from the
//!   server's side;
//! - [`sso`]: single sign-on through a web browser (`single-sign-on-v2`) and the sealed
//!   token of its external-browser mode;
//! - [`tunnel_plan`]: the server's decisions for one CONNECT (grant, timers, routes, MTU,
//!   compression, rekey), without I/O or a clock.

pub mod auth;
pub mod camouflage;
pub mod connect;
pub mod dtls_cipher;
pub mod dtls_hello;
pub mod frame;
pub mod host_scan;
pub mod http_auth;
pub mod mtu_probe;
pub mod multicert;
pub mod profile;
pub mod server_auth;
pub mod server_connect;
pub mod server_session;
pub mod session;
pub mod sso;
pub mod tunnel_plan;
