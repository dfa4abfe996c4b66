//! The ferroconnect server: an ocserv-compatible AnyConnect VPN server in one async process.

pub mod config;
pub mod passwd;
