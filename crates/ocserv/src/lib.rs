//! The ferroconnect server: an ocserv-compatible AnyConnect VPN server in one async process.
//!
//! Sans-IO parts: [`config`] (ocserv.conf), [`passwd`] (ocpasswd files), [`auth`] (the login
//! conversation), [`pool`] (address leases), [`sessions`] (cookies), [`ban`] (ban points), [`routes`] (which tunnel owns an address).
//! I/O: [`server`] (sockets, TLS, tun, tunnels), [`script`] (connect/disconnect scripts) and
//! [`otp`] (the locked check-and-record of one-time passwords in a liboath users file).

pub mod addr;
pub mod auth;
pub mod ban;
pub mod config;
pub mod metrics;
pub mod otp;
pub mod packets;
pub mod passwd;
pub mod pool;
pub mod routes;
pub mod script;
pub mod server;
pub mod sessions;
pub mod udp;
