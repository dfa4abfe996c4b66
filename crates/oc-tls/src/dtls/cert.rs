//! Plain DTLS with certificates, as Fortinet, F5 and Array gateways speak it: a full
//! handshake in which the client checks the server's certificate exactly as it checked the
//! HTTPS one (the client's context and checks live in `TlsClient`; this module has the
//! channel constructors and the server context).

use std::path::Path;

use openssl::ssl::{Ssl, SslContext, SslContextBuilder, SslFiletype, SslMethod, SslOptions};
use openssl::ssl::{SslRef, SslVersion};

use super::{DtlsChannel, DtlsError, Side};
use crate::insecure::LEGACY_SERVER_CONNECT;

/// The DTLS versions a vendor's gateway takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsVersions {
    /// DTLS 1.0 or 1.2, the best both ends have (Fortinet; F5 with `dtls_v1_2_supported`).
    Any,
    /// DTLS 1.0 only: F5 BIG-IP before v16 fails a handshake that offers 1.2 (upstream's rule).
    Dtls10Only,
}

/// Options every certificate DTLS context gets: the shell sets the MTU, and a data
/// channel has no use for tickets.
fn options() -> SslOptions {
    SslOptions::NO_QUERY_MTU | SslOptions::NO_TICKET
}

/// A client context for [`DtlsChannel::cert_client`]: `versions`, then whatever the
/// caller adds (trust store, client certificate).
pub(crate) fn cert_client_builder(versions: DtlsVersions) -> Result<SslContextBuilder, DtlsError> {
    let mut b = SslContextBuilder::new(SslMethod::dtls_client())?;
    b.set_options(options());
    if versions == DtlsVersions::Dtls10Only {
        b.set_min_proto_version(Some(SslVersion::DTLS1))?;
        b.set_max_proto_version(Some(SslVersion::DTLS1))?;
        // OpenSSL 3.1 and later refuse DTLS 1.0 at the default security level; such
        // gateways leave no choice (upstream lowers it the same way).
        b.set_security_level(0);
        // Those gateways do not cope with secure renegotiation either.
        b.set_options(LEGACY_SERVER_CONNECT);
    }
    Ok(b)
}

/// A server context presenting `cert` (a PEM chain) and `key`, for DTLS 1.0 to 1.2 as the
/// vendors' gateways take them (test gateways play those; nothing of ours serves it).
pub fn cert_server_context(cert: &Path, key: &Path) -> Result<SslContext, DtlsError> {
    let mut b = SslContextBuilder::new(SslMethod::dtls_server())?;
    b.set_options(options() | SslOptions::CIPHER_SERVER_PREFERENCE);
    // DTLS 1.0 signs with MD5+SHA-1, which the default security level refuses.
    b.set_security_level(0);
    b.set_certificate_chain_file(cert)?;
    b.set_private_key_file(key, SslFiletype::PEM)?;
    b.check_private_key()?;
    Ok(b.build())
}

impl DtlsChannel {
    /// A client on `ssl` (made from a [`cert_client_builder`] context, with the host name
    /// to check set). The ClientHello is ready in [`DtlsChannel::poll_transmit`] right
    /// away; once established, the caller checks the peer through [`DtlsChannel::ssl`].
    pub(crate) fn cert_client(ssl: Ssl, link_mtu: u32, ipv6: bool) -> Result<Self, DtlsError> {
        let mut channel = Self::from_ssl(ssl, link_mtu, ipv6, Side::Client(None), None)?;
        channel.drive_handshake()?;
        Ok(channel)
    }

    /// The server side of a certificate handshake; `ctx` comes from
    /// [`cert_server_context`].
    pub fn cert_server(ctx: &SslContext, link_mtu: u32, ipv6: bool) -> Result<Self, DtlsError> {
        Self::from_ssl(Ssl::new(ctx)?, link_mtu, ipv6, Side::Server, None)
    }

    /// The OpenSSL connection, for checks after the handshake (the peer's certificate).
    pub fn ssl(&self) -> &SslRef {
        self.stream.ssl()
    }
}
