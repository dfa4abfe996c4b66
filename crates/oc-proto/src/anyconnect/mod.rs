//! The Cisco AnyConnect / OpenConnect protocol (draft-mavrogiannopoulos-openconnect).
//!
//! - [`auth`]: the XML aggregate-auth exchange that ends with the `webvpn` cookie;
//! - [`connect`]: the `CONNECT /CSCOSSLC/tunnel` request and the tunnel parameters in its
//!   response;
//! - [`frame`]: packet framing on the CSTP (TLS) and DTLS channels;
//! - [`session`]: liveness (DPD, keepalive), control frames and disconnects of a running
//!   tunnel, driven by a caller-supplied clock.

pub mod auth;
pub mod connect;
pub mod frame;
pub mod session;
