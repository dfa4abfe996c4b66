//! The ferroconnect server: an ocserv-compatible AnyConnect VPN server, privilege-separated
//! into three processes: [`supervisor`] (the privileged main process), [`secmod`] (keys,
//! password and OTP files) and [`worker`] (the unprivileged, sandboxed network process,
//! confined by [`sandbox`]); they talk through [`channel`] in `oc_proto::ipc` messages.
//!
//! Sans-IO parts: [`config`] (ocserv.conf), [`passwd`] (ocpasswd files), [`auth`] (the login
//! conversation), [`pool`] (address leases), [`sessions`] (cookies), [`ban`] (ban points), [`routes`] (which tunnel owns an address).
//! I/O: [`server`] (sockets, TLS, tun, tunnels), [`script`] (connect/disconnect scripts) and
//! [`otp`] (the locked check-and-record of one-time passwords in a liboath users file).

pub mod addr;
pub mod auth;
pub mod ban;
pub mod channel;
pub mod config;
pub mod gssapi_login;
pub mod listen;
pub mod metrics;
pub mod oidc_login;
pub mod otp;
pub mod packets;
pub mod pam;
pub mod passwd;
pub mod pool;
pub mod radius;
pub mod radius_acct;
pub mod radius_login;
pub mod routes;
pub mod sandbox;
pub mod script;
pub mod secmod;
pub mod server;
pub mod session_service;
pub mod sessions;
pub mod supervisor;
pub mod udp;
pub mod worker;
