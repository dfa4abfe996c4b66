//! What the vendor test gateways (`src/bin/*_gateway*`) have in common: logging to stderr
//! and a file, the options they all take and `main` around them, the TLS listener serving
//! each connection's pages until one becomes a tunnel ([`Site`]), bounded HTTP request
//! reading (the tunnel request may be followed by PPP at once), form decoding, the DTLS
//! server whose associations become tunnels after the vendor's greeting ([`DtlsSite`]), and
//! the PPP session that carries packets between a client's TLS connection or DTLS
//! association and a tun device.
//!
//! Each gateway keeps its own pages, sessions and cookies; this module knows nothing of any
//! vendor. Nothing here panics on what a client sends.
//!
//! By concern, each re-exported here:
//! - `logging`: the log lines, to stderr and the log file;
//! - `state`: the poison-tolerant lock, random tokens, bounded lists of what a gateway
//!   remembers;
//! - `options`: the command line, and the options every gateway takes ([`Common`]);
//! - `program`: a gateway's `main`, its runtime, and what it opens before serving;
//! - `serve`: TLS accept, the [`Site`] trait, serving HTTP requests until one becomes a
//!   tunnel, and bounded request reading;
//! - `form`: form and query decoding, HTML escaping;
//! - `dtls`: the UDP socket, its dispatch to associations, their handshake and greeting;
//! - `esp`: the ESP socket of the gateways whose UDP is ESP, its datagrams routed by SPI;
//! - `juniper_esp`: Pulse's and Network Connect's ESP (keys, probes, rekeys) on it;
//! - `carrier`: a tunnel's channel, TLS or DTLS ([`Carrier`]): reading, writing, closing;
//! - `session`: the PPP session between a client's channel and the tun device
//!   ([`TunLink`]);
//! - `sink`: a tunnel's packets from its client to the tun device ([`TunSink`]).

use std::time::Duration;

/// The TLS handshake and each HTTP request must finish within this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; more are closed on arrival.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a connection whose PPP closed may stay open for the client to close it.
pub const LINGER: Duration = Duration::from_secs(10);
/// Form fields read from one body or query string.
pub const MAX_FORM_FIELDS: usize = 32;
/// The gateways' PPP MRU: the tunnel MTU they ask the client for.
pub const PPP_MTU: u16 = 1400;
/// Sessions, cookies and pending challenges a gateway remembers (oldest forgotten first).
pub const MAX_REMEMBERED: usize = 64;

/// One log line ([`log_line`]); defined before the submodules so that they all see it.
macro_rules! log {
    ($($arg:tt)*) => { $crate::gateway::log_line(format_args!($($arg)*)) };
}

mod carrier;
mod dtls;
mod esp;
mod form;
mod juniper_esp;
mod logging;
mod login_only;
mod options;
mod program;
mod serve;
mod session;
mod sink;
mod state;
#[cfg(test)]
mod tests;

pub use carrier::{Carrier, DtlsCarrier};
pub use dtls::{open_dtls, serve_dtls, DtlsSite, Greeting, MAX_ASSOCIATIONS};
pub use esp::{open_logged, serve_esp, EspMode, Sealer};
pub use form::{describe_form, field, form_decode, html_escape, parse_form, parse_query};
pub use juniper_esp::{
    esp_input, next_datagram, Datagram, JuniperEsp, JuniperEspServer, Opened, Opening,
};
pub use logging::{init_log, log_line, Throttle};
pub use login_only::{login_only_main, unknown_option, LoginOnly, LoginPages};
pub use options::{
    netmask, parse_command_line, parse_esp_suite, parse_route, parse_value, parse_with_own,
    split_options, Common, DtlsOptions, OptionArg, OwnOptions,
};
pub use program::{listen, main, main_with, runtime, Listening};
pub use serve::{
    accept_loop, accept_tls, method_name, read_request, redirect, send, serve_http, serve_site,
    text, tls_acceptor, Answer, Framing, ReadError, Served, Site, Tls, Upgraded,
};
pub use session::{flush_tun, gateway_ppp, TunHold, TunLink};
pub use sink::TunSink;
pub use state::{lock, random_bytes, random_hex, remember};
