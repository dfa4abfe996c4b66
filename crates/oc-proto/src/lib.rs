//! Sans-IO protocol cores for ferroconnect.
//!
//! Nothing in this crate opens a socket, reads a clock or touches a file: callers feed bytes
//! and the current time in, and take bytes, deadlines and events out. That keeps every
//! protocol decision testable with a simulated clock and an in-memory link.

pub mod anyconnect;
pub mod array;
pub mod client_proxy;
pub mod compress;
pub mod esp;
pub mod f5;
pub mod form;
pub mod fortinet;
pub mod gp;
pub mod hex;
pub mod http;
pub mod ip;
pub mod ip_config;
pub mod ipc;
pub mod kkdcp;
pub mod liveness;
pub mod nc;
pub mod oidc;
pub mod port_filter;
pub mod ppp;
pub mod proxy_proto;
pub mod pulse;
pub mod radius;
pub mod rate_limit;
pub mod udp_link;
pub mod url;
