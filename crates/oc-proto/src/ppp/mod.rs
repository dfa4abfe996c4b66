//! PPP as openconnect's F5 and Fortinet protocols (and its `nullppp` test protocol) carry
//! it: LCP, IPCP and IPV6CP negotiation, echo keepalives, termination both ways, RFC 1662
//! HDLC framing and each vendor's encapsulation. A small client-and-gateway PPP: no
//! authentication protocols, no compression, as upstream.
//!
//! [`Ppp`] is sans-IO: the caller feeds what the channel read and the time, writes out
//! [`Ppp::poll_transmit`], sends IP packets through [`Ppp::encapsulate_ip`], and acts on
//! [`PppEvent`]s (the tunnel comes up with [`PppEvent::NetworkUp`]).

mod deframe;
mod encap;
mod engine;
pub mod hdlc;
mod negotiate;
pub mod packet;

pub use deframe::Deframer;
pub use encap::{Encapsulation, FrameError};
pub use engine::{Closed, Ppp, PppConfig, PppError, PppEvent, PppNetwork, MAX_CONFIGURE, RESTART};
pub use negotiate::{Assignment, Role};

#[cfg(test)]
mod tests;
