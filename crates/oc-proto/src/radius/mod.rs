//! RADIUS, client side (RFC 2865 authentication, RFC 2866 accounting, RFC 3579's
//! Message-Authenticator), without I/O: packets and their authenticators, the requests
//! ocserv sends and the replies it reads, the retry and fail-over schedule, and radcli's
//! configuration files. The server's security module sends and receives the datagrams.

mod access;
mod accounting;
mod client_conf;
mod exchange;
mod packet;

pub use access::{
    read_access_reply, AccessReply, AccessRequest, Grants, NasIdentity, MAX_CHALLENGES,
};
pub use accounting::{read_accounting_response, AccountingRequest, AcctStatus, TerminateCause};
pub use client_conf::{parse_client_conf, parse_servers_file, ClientConf, ServerAddr};
pub use exchange::{Attempt, Exchange};
pub use packet::{
    attr, code, hide_password, message_authenticator_ok, response_is_authentic,
    sign_accounting_request, sign_message_authenticator, Attribute, Packet, MAX_PACKET,
    MAX_PASSWORD,
};

/// What can go wrong with a RADIUS packet or file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RadiusError {
    #[error("malformed RADIUS packet: {0}")]
    Malformed(String),
    #[error("too long for RADIUS: {0}")]
    TooLong(String),
    #[error("RADIUS reply not for our request: {0}")]
    Unexpected(String),
    #[error("RADIUS reply failed its authenticator check (wrong shared secret, or forged)")]
    Forged,
    #[error("{file}:{line}: {message}")]
    Config {
        file: String,
        line: usize,
        message: String,
    },
}

#[cfg(test)]
mod tests;
