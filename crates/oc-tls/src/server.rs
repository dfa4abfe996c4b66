//! The server TLS context: certificate and key (read from a file, or held by another
//! process: [`TlsServer::with_remote_keys`]), optional client-certificate request, and
//! ocserv's GnuTLS `tls-priorities` strings mapped onto OpenSSL settings.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::nid::Nid;
use openssl::ocsp::{OcspResponse, OcspResponseStatus};
use openssl::pkey::Id;
use openssl::ssl::{
    NameType, SniError, Ssl, SslAcceptor, SslAcceptorBuilder, SslContext, SslMethod, SslOptions,
    SslRef, SslVerifyMode, SslVersion,
};
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{
    X509Crl, X509Ref, X509StoreContext, X509StoreContextRef, X509VerifyResult, X509,
};
use tokio::net::TcpStream;

use crate::remote_key::{add_chain_cert, cert_chain, remote_private_key, RemoteCert, RemoteSigner};
use crate::{describe_ssl_error, read, SslStream, TlsError, TlsStream};

/// What the server presents and asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsServerConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA that signs client certificates (`ca-cert`).
    pub ca: Option<PathBuf>,
    /// The CA file's contents, when read already (by a process that could read it): used
    /// instead of reading `ca`, which then only names it in messages.
    pub ca_pem: Option<Vec<u8>>,
    /// Ask clients for a certificate (certificate authentication is configured).
    pub request_client_cert: bool,
    /// `crl`: revocation lists (PEM) for the client CA; a revoked client certificate then
    /// fails verification. The path names it in messages.
    pub crl: Option<(PathBuf, Vec<u8>)>,
    /// ocserv's `tls-priorities` (a GnuTLS priority string).
    pub priorities: Option<String>,
    /// `ocsp-response`: a DER OCSP response for the server certificate, stapled for
    /// clients that ask (status_request). The path names it in messages.
    pub ocsp_response: Option<(PathBuf, Vec<u8>)>,
}

/// OpenSSL settings derived from a GnuTLS priority string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPolicy {
    pub min_version: SslVersion,
    pub max_version: Option<SslVersion>,
    pub server_preference: bool,
    /// TLS 1.2 cipher list, when the base keyword asks for something other than defaults.
    pub cipher_list: Option<&'static str>,
    /// Tokens we could not map, for a warning.
    pub ignored: Vec<String>,
}

impl Default for TlsPolicy {
    fn default() -> Self {
        Self {
            // ocserv's default priorities drop SSL 3.0, TLS 1.0 and 1.1.
            min_version: SslVersion::TLS1_2,
            max_version: None,
            server_preference: false,
            cipher_list: None,
            ignored: Vec::new(),
        }
    }
}

fn version_of(token: &str) -> Option<(u8, SslVersion)> {
    Some(match token {
        "TLS1.0" => (0, SslVersion::TLS1),
        "TLS1.1" => (1, SslVersion::TLS1_1),
        "TLS1.2" => (2, SslVersion::TLS1_2),
        "TLS1.3" => (3, SslVersion::TLS1_3),
        _ => return None,
    })
}

/// Maps a GnuTLS priority string (`NORMAL:%SERVER_PRECEDENCE:-VERS-TLS1.3`, ...) to OpenSSL
/// settings: the protocol versions left enabled, server cipher preference, and the strength
/// class of the base keyword. Versions below TLS 1.2 stay off even if the string enables
/// them, since no current client needs them.
pub fn map_priorities(priorities: &str) -> TlsPolicy {
    let mut policy = TlsPolicy::default();
    let mut enabled = [false, false, true, true];
    for token in priorities
        .split(':')
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        match token {
            "NORMAL" | "PFS" | "PERFORMANCE" | "SYSTEM" => {}
            "SECURE128" | "SECURE192" => policy.cipher_list = Some("HIGH:!aNULL:!MD5:!3DES"),
            "SECURE256" | "SUITEB192" => {
                policy.cipher_list = Some("AESGCM+AES256:CHACHA20:HIGH:!aNULL:!MD5:!3DES:!AES128")
            }
            "%SERVER_PRECEDENCE" => policy.server_preference = true,
            "%COMPAT" | "%NO_EXTENSIONS" | "%SAFE_RENEGOTIATION" | "%UNSAFE_RENEGOTIATION" => {}
            t if t.starts_with("-VERS-") || t.starts_with("+VERS-") => {
                let on = t.starts_with('+');
                match t.get(6..) {
                    Some("ALL") | Some("TLS-ALL") => enabled = [on; 4],
                    Some("SSL3.0") | Some("DTLS-ALL") | Some("DTLS1.0") | Some("DTLS1.2") => {}
                    Some(v) => match version_of(v) {
                        Some((i, _)) => {
                            if let Some(slot) = enabled.get_mut(usize::from(i)) {
                                *slot = on;
                            }
                        }
                        None => policy.ignored.push(t.to_string()),
                    },
                    None => policy.ignored.push(t.to_string()),
                }
            }
            // Cipher, MAC, group and signature tokens: OpenSSL's defaults are already the
            // modern set GnuTLS's NORMAL describes.
            t if t.starts_with('-') || t.starts_with('+') || t.starts_with('!') => {}
            other => policy.ignored.push(other.to_string()),
        }
    }
    let versions = ["TLS1.0", "TLS1.1", "TLS1.2", "TLS1.3"];
    let lowest = enabled.iter().position(|on| *on).unwrap_or(2).max(2);
    let highest = enabled.iter().rposition(|on| *on).unwrap_or(3).max(lowest);
    if let Some((_, v)) = versions.get(lowest).and_then(|t| version_of(t)) {
        policy.min_version = v;
    }
    if highest < 3 {
        policy.max_version = versions
            .get(highest)
            .and_then(|t| version_of(t))
            .map(|(_, v)| v);
    }
    policy
}

/// A reusable server context.
pub struct TlsServer {
    acceptor: SslAcceptor,
    /// The server certificate, for the `webvpnc` cookie hash and logs.
    pub certificate: X509,
    pub policy: TlsPolicy,
    /// Other servers' contexts by TLS server name, set once by
    /// [`with_virtual_hosts`](Self::with_virtual_hosts).
    virtual_hosts: VirtualHosts,
}

/// Server names and their contexts, read by the server-name callback of every handshake.
type VirtualHosts = Arc<OnceLock<Vec<(String, SslContext)>>>;

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer")
            .field("policy", &self.policy)
            .finish()
    }
}

fn load_error(what: &'static str, path: &Path, why: impl ToString) -> TlsError {
    TlsError::Load {
        what,
        path: path.to_path_buf(),
        why: why.to_string(),
    }
}

fn policy_of(config: &TlsServerConfig) -> TlsPolicy {
    config
        .priorities
        .as_deref()
        .map(map_priorities)
        .unwrap_or_default()
}

/// A server context with the protocol versions and ciphers of `policy`.
fn base_builder(policy: &TlsPolicy) -> Result<SslAcceptorBuilder, TlsError> {
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    builder.set_min_proto_version(Some(policy.min_version))?;
    builder.set_max_proto_version(policy.max_version)?;
    if policy.server_preference {
        builder.set_options(SslOptions::CIPHER_SERVER_PREFERENCE);
    } else {
        builder.clear_options(SslOptions::CIPHER_SERVER_PREFERENCE);
    }
    if let Some(list) = policy.cipher_list {
        builder.set_cipher_list(list)?;
    }
    Ok(builder)
}

/// Adds the client-certificate settings of `config` and builds the server.
fn finish(
    mut builder: SslAcceptorBuilder,
    config: &TlsServerConfig,
    certificate: X509,
    policy: TlsPolicy,
) -> Result<TlsServer, TlsError> {
    let ca = match (&config.ca, &config.ca_pem) {
        (Some(path), Some(pem)) => Some((path.as_path(), pem.clone())),
        (Some(path), None) => Some((path.as_path(), read(path, "CA certificate")?)),
        (None, _) => None,
    };
    let ca_certs = match &ca {
        Some((path, pem)) => {
            X509::stack_from_pem(pem).map_err(|e| load_error("CA certificate", path, e))?
        }
        None => Vec::new(),
    };
    if let Some((path, _)) = &ca {
        if ca_certs.is_empty() {
            return Err(load_error(
                "CA certificate",
                path,
                "no PEM certificate found",
            ));
        }
    }
    for cert in &ca_certs {
        builder.cert_store_mut().add_cert(cert.clone())?;
    }
    if let Some((path, pem)) = &config.crl {
        add_crls(&mut builder, path, pem)?;
    }
    if let Some((path, der)) = &config.ocsp_response {
        staple_ocsp(&mut builder, path, der)?;
    }
    if config.request_client_cert {
        builder.set_verify_callback(SslVerifyMode::PEER, tolerant_verify);
        if !ca_certs.is_empty() {
            let mut stack = openssl::stack::Stack::new()?;
            for cert in &ca_certs {
                stack.push(cert.subject_name().to_owned()?)?;
            }
            builder.set_client_ca_list(stack);
        }
    } else {
        builder.set_verify(SslVerifyMode::NONE);
    }
    let virtual_hosts = VirtualHosts::default();
    let table = virtual_hosts.clone();
    builder.set_servername_callback(move |ssl, _| switch_to_named_host(ssl, &table));
    Ok(TlsServer {
        acceptor: builder.build(),
        certificate,
        policy,
        virtual_hosts,
    })
}

/// Asks, but lets the handshake finish without a client certificate or with a bad one:
/// the auth layer then answers with a clear reason instead of a bare TLS alert. A CRL past
/// its next update, or from a CA certificate without the CRL-signing key usage, still
/// revokes what it lists and rejects nothing else, as with ocserv (GnuTLS): a CRL can only
/// take trust away.
/// OpenSSL keeps only the last error, which a later ignored one would wipe out, so the
/// first real one is kept in the connection's [`FirstVerifyError`].
fn tolerant_verify(preverified: bool, ctx: &mut X509StoreContextRef) -> bool {
    let error = ctx.error();
    if CRL_ERRORS_IGNORED.contains(&error.as_raw()) {
        ctx.set_error(X509VerifyResult::OK);
    } else if !preverified {
        let slot = X509StoreContext::ssl_idx()
            .ok()
            .and_then(|idx| ctx.ex_data(idx))
            .zip(first_error_index().ok())
            .and_then(|(ssl, idx)| ssl.ex_data(idx));
        if let Some(first) = slot {
            let _ = first.0.set(error.error_string());
        }
    }
    true
}

/// The first client-certificate verification error of a connection.
#[derive(Debug, Default)]
struct FirstVerifyError(OnceLock<&'static str>);

/// The connections' slot for their [`FirstVerifyError`], allocated once.
fn first_error_index() -> Result<Index<Ssl, FirstVerifyError>, ErrorStack> {
    static INDEX: OnceLock<Result<Index<Ssl, FirstVerifyError>, ErrorStack>> = OnceLock::new();
    INDEX.get_or_init(Ssl::new_ex_index).clone()
}

/// The virtual host a connection's server name names, ignoring case (as ocserv).
fn named_host<'a>(table: &'a VirtualHosts, ssl: &SslRef) -> Option<(&'a str, &'a SslContext)> {
    let name = ssl.servername(NameType::HOST_NAME)?;
    table
        .get()?
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(n, ctx)| (n.as_str(), ctx))
}

/// The server-name callback: a client naming a virtual host (ignoring case, as ocserv)
/// gets that host's certificates, CAs, CRLs, OCSP staple and client-certificate request.
fn switch_to_named_host(ssl: &mut SslRef, table: &VirtualHosts) -> Result<(), SniError> {
    let Some((_, ctx)) = named_host(table, ssl) else {
        return Ok(());
    };
    ssl.set_ssl_context(ctx)
        .map_err(|_| SniError::ALERT_FATAL)?;
    // The connection keeps the verify settings it was made with; take the host's.
    if ctx.verify_mode().contains(SslVerifyMode::PEER) {
        ssl.set_verify_callback(SslVerifyMode::PEER, tolerant_verify);
    } else {
        ssl.set_verify(SslVerifyMode::NONE);
    }
    Ok(())
}

/// The next update of the CRL has passed; the issuer's key usage lacks cRLSign.
const CRL_ERRORS_IGNORED: [std::ffi::c_int; 2] = [
    openssl_sys::X509_V_ERR_CRL_HAS_EXPIRED,
    openssl_sys::X509_V_ERR_KEYUSAGE_NO_CRL_SIGN,
];

/// Staples the OCSP response in `der` for clients that ask; a file that is not a
/// successful OCSP response is refused at load, as GnuTLS refuses it for ocserv.
fn staple_ocsp(builder: &mut SslAcceptorBuilder, path: &Path, der: &[u8]) -> Result<(), TlsError> {
    let response = OcspResponse::from_der(der).map_err(|e| load_error("OCSP response", path, e))?;
    if response.status() != OcspResponseStatus::SUCCESSFUL {
        return Err(load_error(
            "OCSP response",
            path,
            format!("status {} (not successful)", response.status().as_raw()),
        ));
    }
    let der = der.to_vec();
    builder.set_status_callback(move |ssl| {
        ssl.set_ocsp_status(&der)?;
        Ok(true)
    })?;
    Ok(())
}

/// Adds the CRLs in `pem` to the context's store and checks client certificates against
/// them (the leaf's issuer must then have a CRL, as with ocserv's `crl`).
fn add_crls(builder: &mut SslAcceptorBuilder, path: &Path, pem: &[u8]) -> Result<(), TlsError> {
    const BEGIN: &str = "-----BEGIN X509 CRL-----";
    let text = String::from_utf8_lossy(pem);
    let mut found = 0;
    for (at, _) in text.match_indices(BEGIN) {
        let crl =
            X509Crl::from_pem(text[at..].as_bytes()).map_err(|e| load_error("CRL", path, e))?;
        crate::ffi::add_crl(builder.cert_store_mut(), &crl)?;
        found += 1;
    }
    if found == 0 {
        return Err(load_error("CRL", path, "no PEM CRL found"));
    }
    builder
        .cert_store_mut()
        .set_flags(X509VerifyFlags::CRL_CHECK)?;
    Ok(())
}

impl TlsServer {
    /// A context with the certificate and private key read from the files `config` names.
    pub fn new(config: &TlsServerConfig) -> Result<Self, TlsError> {
        let policy = policy_of(config);
        let mut builder = base_builder(&policy)?;
        let pem = read(&config.cert, "server certificate")?;
        let mut chain = X509::stack_from_pem(&pem)
            .map_err(|e| load_error("server certificate", &config.cert, e))?
            .into_iter();
        let certificate = chain.next().ok_or_else(|| {
            load_error(
                "server certificate",
                &config.cert,
                "no PEM certificate found",
            )
        })?;
        builder.set_certificate(&certificate)?;
        for extra in chain {
            builder.add_extra_chain_cert(extra)?;
        }
        let key_pem = read(&config.key, "server key")?;
        let key = openssl::pkey::PKey::private_key_from_pem(&key_pem)
            .map_err(|e| load_error("server key", &config.key, e))?;
        builder.set_private_key(&key)?;
        builder.check_private_key().map_err(|e| {
            load_error(
                "server key",
                &config.key,
                format!(
                    "it does not match the certificate in {} ({e})",
                    config.cert.display()
                ),
            )
        })?;
        finish(builder, config, certificate, policy)
    }

    /// A context whose private keys live in another process (privilege separation): each
    /// certificate's key is an OpenSSL key built from its public key whose signatures
    /// `signer` makes, as [`SignRequest`](crate::remote_key::SignRequest)s for that
    /// certificate's key index. `config.cert` and `config.key` are not used; the rest of
    /// `config` applies as in [`new`](Self::new).
    ///
    /// Several certificates may be given, one per key type (RSA, RSA-PSS, ECDSA, Ed25519,
    /// Ed448): OpenSSL picks the one the client's signature algorithms allow. Keys that
    /// cannot be delegated (DSA, RSA-PSS with parameters) are refused with an error
    /// naming the certificate. There is no private decryption, so static-RSA key exchange
    /// is not available (TLS 1.2 and 1.3 ECDHE suites are unaffected).
    ///
    /// The signer is called synchronously inside the handshake, on the thread that drives
    /// [`accept`](Self::accept); its error fails that handshake.
    pub fn with_remote_keys(
        config: &TlsServerConfig,
        certs: &[RemoteCert],
        signer: Arc<dyn RemoteSigner>,
    ) -> Result<Self, TlsError> {
        let policy = policy_of(config);
        let mut builder = base_builder(&policy)?;
        let mut first = None;
        let mut slots: Vec<(Id, &Path)> = Vec::new();
        for remote in certs {
            let path = remote.path.as_path();
            let mut chain = cert_chain(path, &remote.pem)?.into_iter();
            let certificate = chain.next().ok_or_else(|| {
                load_error("server certificate", path, "no PEM certificate found")
            })?;
            let key = remote_private_key(&certificate, path, remote.key, signer.clone())?;
            if let Some((_, other)) = slots.iter().find(|(id, _)| *id == key.id()) {
                return Err(load_error(
                    "server certificate",
                    path,
                    format!(
                        "its key type is the same as that of {}; only one certificate per \
                         key type can be served",
                        other.display()
                    ),
                ));
            }
            slots.push((key.id(), path));
            builder.set_certificate(&certificate)?;
            for extra in chain {
                add_chain_cert(&mut builder, &extra)?;
            }
            builder.set_private_key(&key)?;
            builder.check_private_key().map_err(|e| {
                load_error(
                    "server certificate",
                    path,
                    format!("OpenSSL refused its delegated key ({e})"),
                )
            })?;
            first.get_or_insert(certificate);
        }
        let certificate = first.ok_or_else(|| {
            load_error("server certificate", &config.cert, "no certificate given")
        })?;
        finish(builder, config, certificate, policy)
    }

    /// This server, serving `hosts` by TLS server name (SNI) too: a client naming one of
    /// them, ignoring case, gets its certificates and client-certificate settings; any
    /// other name, or none, gets this server's. The protocol versions and ciphers stay
    /// this server's.
    #[must_use]
    pub fn with_virtual_hosts(self, hosts: Vec<(String, &TlsServer)>) -> Self {
        let table = hosts
            .into_iter()
            .map(|(name, server)| (name, server.acceptor.context().to_owned()))
            .collect();
        // The table is this server's own and set only here, before any handshake.
        let _ = self.virtual_hosts.set(table);
        self
    }

    /// The virtual host (as named to [`with_virtual_hosts`](Self::with_virtual_hosts))
    /// whose settings served `stream`, or `None` for this server's own.
    pub fn virtual_host_of(&self, stream: &TlsStream) -> Option<&str> {
        named_host(&self.virtual_hosts, stream.ssl()).map(|(name, _)| name)
    }

    /// Runs the server handshake.
    pub async fn accept(&self, tcp: TcpStream, peer: &str) -> Result<TlsStream, TlsError> {
        let mut ssl = Ssl::new(self.acceptor.context())?;
        ssl.set_ex_data(first_error_index()?, FirstVerifyError::default());
        let mut stream = SslStream::new(ssl, crate::TcpSocket::new(tcp))?;
        Pin::new(&mut stream)
            .accept()
            .await
            .map_err(|e| TlsError::Handshake {
                peer: peer.to_string(),
                why: describe_ssl_error(&e),
            })?;
        Ok(stream)
    }
}

/// The client certificate of a connection, if it sent one that chains to our CA.
pub fn verified_client_cert(stream: &TlsStream) -> Result<Option<X509>, String> {
    let ssl = stream.ssl();
    let Some(cert) = ssl.peer_certificate() else {
        return Ok(None);
    };
    let result = ssl.verify_result();
    if result != X509VerifyResult::OK {
        return Err(result.error_string().to_string());
    }
    let first = first_error_index()
        .ok()
        .and_then(|idx| ssl.ex_data(idx))
        .and_then(|first| first.0.get());
    if let Some(why) = first {
        return Err((*why).to_owned());
    }
    Ok(Some(cert))
}

/// Values of a certificate field named by ocserv's `cert-user-oid`/`cert-group-oid`: a
/// dotted OID in the subject, or `SAN(rfc822name)` for e-mail alternative names.
pub fn cert_field(cert: &X509Ref, oid: &str) -> Vec<String> {
    if oid.eq_ignore_ascii_case("SAN(rfc822name)") {
        return cert
            .subject_alt_names()
            .map(|names| {
                names
                    .iter()
                    .filter_map(|n| n.email().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
    }
    let Ok(wanted) = openssl::asn1::Asn1Object::from_str(oid) else {
        return Vec::new();
    };
    let wanted_nid = wanted.nid();
    cert.subject_name()
        .entries()
        .filter(|e| {
            let obj = e.object();
            if wanted_nid != Nid::UNDEF {
                obj.nid() == wanted_nid
            } else {
                obj.to_string() == oid
            }
        })
        .filter_map(|e| e.data().to_string().ok())
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn maps_ocserv_priority_strings() {
        let p = map_priorities(
            "NORMAL:%SERVER_PRECEDENCE:%COMPAT:-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1:-VERS-TLS1.3",
        );
        assert_eq!(p.min_version, SslVersion::TLS1_2);
        assert_eq!(p.max_version, Some(SslVersion::TLS1_2));
        assert!(p.server_preference);
        assert!(p.ignored.is_empty());
        let p = map_priorities("SECURE256:-VERS-TLS-ALL:+VERS-TLS1.3:+AES-256-GCM");
        assert_eq!(p.min_version, SslVersion::TLS1_3);
        assert_eq!(p.max_version, None);
        assert!(p.cipher_list.is_some());
        let p = map_priorities("NORMAL:WHATEVER");
        assert_eq!(p.ignored, vec!["WHATEVER".to_string()]);
        // Old versions are never enabled.
        let p = map_priorities("NORMAL:+VERS-TLS1.0");
        assert_eq!(p.min_version, SslVersion::TLS1_2);
    }
}
