//! OpenSSL glue: the client TLS context, the server context ([`server`]), server-certificate pins (`--servercert`), client
//! certificates (PEM and PKCS#12) and the async TLS stream.
//!
//! Server keys can also live in another process ([`remote_key`]: privilege separation).
//!
//! This is the one crate allowed `unsafe` (for the DTLS calls OpenSSL has no safe API
//! and the TLS 1.3 key update, all in `ffi.rs`, the delegated-key methods in
//! `remote_key/ffi.rs` and `remote_key/eddsa.rs`, and the `TCP_INFO` read in `os.rs`);
//! each block carries a
//! `// SAFETY:` comment.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use base64::Engine;
use openssl::error::ErrorStack;
use openssl::hash::{hash, MessageDigest};
use openssl::ssl::{
    Ssl, SslContext, SslContextBuilder, SslFiletype, SslMethod, SslMode, SslOptions, SslRef,
    SslVerifyMode, SslVersion,
};
use openssl::x509::store::{X509Lookup, X509Store, X509StoreBuilder};
use openssl::x509::verify::X509CheckFlags;
use openssl::x509::{X509Ref, X509VerifyResult};
use thiserror::Error;
use tokio::net::TcpStream;

mod client_cert;
pub mod dtls;
pub mod esp;
mod ffi;
pub mod gssapi;
mod insecure;
pub mod jose;
pub mod mca;
pub mod memory;
pub mod os;
pub mod pkcs11;
pub mod remote_key;
pub mod server;
pub mod socket;
pub mod sso;
pub mod tpm2;

pub use client_cert::ClientCertSpec;
pub use insecure::{enable_insecure_crypto, InsecureCrypto};
pub use socket::TcpSocket;
pub use tokio_openssl::SslStream;

/// The TLS stream of a CSTP connection (client and server).
pub type TlsStream = SslStream<TcpSocket>;

/// The in-place rekey of a running TLS session (`X-CSTP-Rekey-Method: ssl`): a TLS 1.3
/// KeyUpdate, sent with the next write. False when the session is older than TLS 1.3
/// (renegotiation is not offered; the caller opens a new tunnel instead).
pub fn rekey_in_place(ssl: &SslRef) -> bool {
    ssl.version2() == Some(SslVersion::TLS1_3) && ffi::request_key_update(ssl)
}

/// The server side of a TLS 1.2 "ssl" rekey: the client renegotiates. Allowed once the
/// tunnel is up (not before login); [`Renegotiations`] tells when one completed.
pub fn allow_client_renegotiation(ssl: &SslRef) {
    ffi::allow_client_renegotiation(ssl);
}

/// Notices completed TLS 1.2 renegotiations by the change of the Finished message they
/// bring (OpenSSL has no counter for them).
#[derive(Debug, Default)]
pub struct Renegotiations {
    finished: Vec<u8>,
}

impl Renegotiations {
    pub fn new(ssl: &SslRef) -> Self {
        let mut watch = Self::default();
        watch.completed(ssl);
        watch
    }

    /// Whether a handshake completed since the last call.
    pub fn completed(&mut self, ssl: &SslRef) -> bool {
        let mut buf = [0u8; 64];
        let len = ssl.finished(&mut buf).min(buf.len());
        let now = buf.get(..len).unwrap_or_default();
        if now == self.finished.as_slice() {
            return false;
        }
        self.finished.clear();
        self.finished.extend_from_slice(now);
        true
    }
}

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("invalid --servercert {value:?}: {why}")]
    BadPin { value: String, why: &'static str },
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot load {what} from {path}: {why}")]
    Load {
        what: &'static str,
        path: PathBuf,
        why: String,
    },
    #[error("TLS setup failed: {0}")]
    Setup(#[from] ErrorStack),
    #[error("TLS handshake with {peer} failed: {why}")]
    Handshake { peer: String, why: String },
    /// A handshake failure that looks like a server with obsolete crypto; `hint` says what
    /// `--allow-insecure-crypto` can do about it.
    #[error("TLS handshake with {peer} failed: {why}\n{hint}")]
    ObsoleteCrypto {
        peer: String,
        why: String,
        hint: &'static str,
    },
    /// `--allow-insecure-crypto` cannot be given in this process.
    #[error("cannot enable insecure 3DES or RC4 ciphers (--allow-insecure-crypto): {0}")]
    InsecureCryptoUnavailable(String),
    #[error("server certificate verification failed: {reason}\nTo trust this server, add to the command line:\n    --servercert {pin}")]
    NotTrusted { reason: String, pin: String },
    /// Verification failed on a key or signature digest too weak for the default security
    /// level, which `--allow-insecure-crypto` accepts.
    #[error("server certificate verification failed: {reason}\nThe certificate's key or signature is too weak for the default security level; --allow-insecure-crypto accepts it, or pin it:\n    --servercert {pin}")]
    WeakCertificate { reason: String, pin: String },
    #[error("server certificate does not match any --servercert pin; its key is {pin}")]
    PinMismatch { pin: String },
    #[error("server sent no certificate")]
    NoPeerCertificate,
    #[error("cipher list {list:?} selects no cipher OpenSSL has ({why})")]
    Ciphers { list: String, why: String },
    #[error("DTLS set-up failed: {0}")]
    Dtls(String),
    /// A certificate whose key cannot be held by another process (privilege separation).
    #[error("the key of certificate {path} ({key_type}) cannot be used with privilege separation: only RSA, ECDSA and EdDSA signatures can be made by another process; use an RSA, ECDSA or Ed25519 certificate")]
    RemoteKeyType {
        path: PathBuf,
        key_type: &'static str,
    },
    /// The key holder refused a private-key operation.
    #[error("refused to sign: {0}")]
    SignRefused(#[from] remote_key::SignRefusal),
    /// The external browser's single-sign-on token cannot be opened.
    #[error("cannot open the single-sign-on token from the browser: {0}")]
    SsoToken(String),
    /// A private-key operation failed inside OpenSSL.
    #[error("private-key operation failed: {0}")]
    KeyOperation(ErrorStack),
}

/// One `--servercert` value.
#[derive(Clone, PartialEq, Eq)]
pub enum CertPin {
    /// `sha1:<hex>`: SHA-1 of the SubjectPublicKeyInfo.
    Sha1Spki(String),
    /// `sha256:<hex>`: SHA-256 of the SubjectPublicKeyInfo.
    Sha256Spki(String),
    /// `pin-sha256:<base64>`: SHA-256 of the SubjectPublicKeyInfo.
    PinSha256(String),
    /// Bare hex: SHA-1 of the whole certificate (openconnect's legacy form).
    Sha1Cert(String),
}

impl fmt::Debug for CertPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string())
    }
}

impl fmt::Display for CertPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sha1Spki(h) => write!(f, "sha1:{h}"),
            Self::Sha256Spki(h) => write!(f, "sha256:{h}"),
            Self::PinSha256(b) => write!(f, "pin-sha256:{b}"),
            Self::Sha1Cert(h) => write!(f, "{h}"),
        }
    }
}

impl CertPin {
    /// Parses a pin. Like openconnect, a pin may be a prefix of the fingerprint (at least 4
    /// characters); hex is case-insensitive, base64 is not.
    pub fn parse(value: &str) -> Result<Self, TlsError> {
        let bad = |why| TlsError::BadPin {
            value: value.to_string(),
            why,
        };
        let (kind, body) = match value.split_once(':') {
            Some((kind, body)) => (Some(kind), body),
            None => (None, value),
        };
        if body.len() < 4 {
            return Err(bad("a pin needs at least 4 characters"));
        }
        let hex = |max: usize| -> Result<String, TlsError> {
            if !body.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad("expected hexadecimal digits"));
            }
            if body.len() > max {
                return Err(bad("longer than the fingerprint"));
            }
            Ok(body.to_ascii_lowercase())
        };
        Ok(match kind.map(str::to_ascii_lowercase).as_deref() {
            None => Self::Sha1Cert(hex(40)?),
            Some("sha1") => Self::Sha1Spki(hex(40)?),
            Some("sha256") => Self::Sha256Spki(hex(64)?),
            Some("pin-sha256") => {
                let ok = body
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='));
                if !ok {
                    return Err(bad("expected base64"));
                }
                Self::PinSha256(body.to_string())
            }
            Some(_) => return Err(bad("unknown hash; use sha1:, sha256: or pin-sha256:")),
        })
    }

    pub fn matches(&self, cert: &X509Ref) -> Result<bool, TlsError> {
        let fingerprint = match self {
            Self::Sha1Spki(_) => {
                oc_proto::hex::encode(&hash(MessageDigest::sha1(), &spki_der(cert)?)?)
            }
            Self::Sha256Spki(_) => {
                oc_proto::hex::encode(&hash(MessageDigest::sha256(), &spki_der(cert)?)?)
            }
            Self::PinSha256(_) => pin_sha256_base64(cert)?,
            Self::Sha1Cert(_) => oc_proto::hex::encode(&cert.digest(MessageDigest::sha1())?),
        };
        let (Self::Sha1Spki(p) | Self::Sha256Spki(p) | Self::PinSha256(p) | Self::Sha1Cert(p)) =
            self;
        Ok(fingerprint.starts_with(p.as_str()))
    }
}

fn spki_der(cert: &X509Ref) -> Result<Vec<u8>, TlsError> {
    Ok(cert.public_key()?.public_key_to_der()?)
}

fn pin_sha256_base64(cert: &X509Ref) -> Result<String, TlsError> {
    let digest = hash(MessageDigest::sha256(), &spki_der(cert)?)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(digest))
}

/// `pin-sha256:<base64>` for a certificate: what openconnect prints as `FINGERPRINT`.
pub fn fingerprint(cert: &X509Ref) -> Result<String, TlsError> {
    Ok(format!("pin-sha256:{}", pin_sha256_base64(cert)?))
}

pub(crate) fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// How to verify and present ourselves to the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsClientConfig {
    /// `--cafile`: extra trusted CAs.
    pub ca_file: Option<PathBuf>,
    /// `--no-system-trust` turns this off.
    pub system_trust: bool,
    /// `--servercert`: when any is given, only these pins decide.
    pub pins: Vec<CertPin>,
    pub client_cert: Option<ClientCertSpec>,
    /// `--sni`: the name to send instead of the host name.
    pub sni: Option<String>,
    /// `--allow-insecure-crypto`: TLS 1.0/1.1 (DTLS 1.0), every cipher suite the library
    /// has, security level 0, legacy renegotiation, OpenSSL's legacy provider (old key and
    /// PKCS#12 encryptions).
    pub allow_insecure_crypto: bool,
    /// `--pfs`: only key exchanges with forward secrecy (upstream's OpenSSL build's list,
    /// `HIGH:!aNULL:!eNULL:-RSA`, which takes the place of the insecure one too).
    pub pfs: bool,
    /// `--openssl-ciphers` (or `--gnutls-priority`'s mapping): the TLS 1.2 cipher list.
    pub cipher_list: Option<String>,
    /// `--gnutls-priority`'s protocol versions: the lowest and (when bounded) the highest.
    pub versions: Option<(SslVersion, Option<SslVersion>)>,
}

/// `--pfs`'s cipher list for TLS 1.2 and older.
const PFS_CIPHERS: &str = "HIGH:!aNULL:!eNULL:-kRSA:!PSK:!SRP";

/// A reusable client context (a clone shares OpenSSL's context).
#[derive(Clone)]
pub struct TlsClient {
    ctx: SslContext,
    config: TlsClientConfig,
    /// The client certificate's end of validity: seconds from when it was loaded (negative
    /// once expired), and as OpenSSL prints it.
    client_cert_expiry: Option<(i64, String)>,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient")
            .field("config", &self.config)
            .finish()
    }
}

/// What we learnt about the server during the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// `pin-sha256:...` of the server certificate.
    pub fingerprint: String,
    pub version: String,
    pub cipher: String,
    /// MD5 of the server certificate and of ours (empty without one), upper-case hex:
    /// the `-certhash` AnyConnect's host scan is given.
    pub cert_md5: (String, String),
}

/// A TLS client context with the `openssl` crate's `SslConnector` defaults (no SSLv2/3, no
/// compression, its cipher list), but an empty trust store: [`system_trust`] fills it
/// without the connector's eager load of the whole CA bundle.
fn client_context() -> Result<SslContextBuilder, ErrorStack> {
    let mut ctx = SslContextBuilder::new(SslMethod::tls_client())?;
    let mut options = SslOptions::ALL
        | SslOptions::NO_COMPRESSION
        | SslOptions::NO_SSLV2
        | SslOptions::NO_SSLV3
        | SslOptions::SINGLE_DH_USE
        | SslOptions::SINGLE_ECDH_USE;
    options &= !SslOptions::DONT_INSERT_EMPTY_FRAGMENTS;
    ctx.set_options(options);
    ctx.set_mode(
        SslMode::AUTO_RETRY
            | SslMode::ACCEPT_MOVING_WRITE_BUFFER
            | SslMode::ENABLE_PARTIAL_WRITE
            | SslMode::RELEASE_BUFFERS,
    );
    ctx.set_cipher_list("DEFAULT:!aNULL:!eNULL:!MD5:!3DES:!DES:!RC4:!IDEA:!SEED:!aDSS:!SRP:!PSK")?;
    Ok(ctx)
}

/// The system's trusted CAs. Where the system keeps a hashed certificate directory
/// (Debian's /etc/ssl/certs, or `SSL_CERT_DIR`), OpenSSL reads from it only the issuers a
/// chain needs; parsing the whole bundle file instead costs every start 10-20 ms. Without
/// hash links, or with `SSL_CERT_FILE` set, the bundle is loaded as OpenSSL would.
fn system_trust() -> Result<X509Store, ErrorStack> {
    let dirs = std::env::var("SSL_CERT_DIR")
        .unwrap_or_else(|_| ffi::default_cert_dir().to_string_lossy().into_owned());
    trust_store(&dirs, std::env::var_os("SSL_CERT_FILE").is_some())
}

/// [`system_trust`] for the directories `dirs` (colon-separated); `file_named` when
/// `SSL_CERT_FILE` asks for a bundle file.
fn trust_store(dirs: &str, file_named: bool) -> Result<X509Store, ErrorStack> {
    let mut store = X509StoreBuilder::new()?;
    let hashed = !file_named && dirs.split(':').any(|d| has_hash_links(Path::new(d)));
    if hashed {
        store
            .add_lookup(X509Lookup::hash_dir())?
            .add_dir(dirs, SslFiletype::PEM)?;
    } else {
        store.set_default_paths()?;
    }
    Ok(store.build())
}

/// True when `dir` holds OpenSSL's `HASH.N` certificate links (as `c_rehash` and
/// `update-ca-certificates` make them).
fn has_hash_links(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        name.split_once('.').is_some_and(|(hash, n)| {
            hash.len() == 8
                && hash.bytes().all(|b| b.is_ascii_hexdigit())
                && !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
        })
    })
}

/// What a client context of ours trusts and presents: verification happens after the
/// handshake (see [`TlsClient::check_peer`]), so that a pin can override the chain and a
/// failure can name the pin to use. Returns the client certificate's expiry, if any.
fn add_trust_and_identity(
    builder: &mut SslContextBuilder,
    config: &TlsClientConfig,
) -> Result<Option<(i64, String)>, TlsError> {
    builder.set_verify(SslVerifyMode::NONE);
    if config.system_trust {
        builder.set_cert_store(system_trust()?);
    }
    if let Some(ca) = &config.ca_file {
        read(ca, "CA file")?;
        builder.set_ca_file(ca).map_err(|e| TlsError::Load {
            what: "CA certificates",
            path: ca.clone(),
            why: e.to_string(),
        })?;
    }
    let Some(spec) = &config.client_cert else {
        return Ok(None);
    };
    {
        let loaded = client_cert::load_client_cert(spec)?;
        let expiry = client_cert::expiry(&loaded.cert)?;
        builder.set_certificate(&loaded.cert)?;
        for extra in loaded.chain {
            builder.add_extra_chain_cert(extra)?;
        }
        builder.set_private_key(&loaded.key)?;
        if loaded.pkcs1_tls12 {
            tpm2::pkcs1_tls12_only(builder)?;
        }
        builder.check_private_key().map_err(|e| TlsError::Load {
            what: "private key",
            path: spec.key.clone().unwrap_or_else(|| spec.cert.clone()),
            why: format!("it does not match the certificate ({e})"),
        })?;
        Ok(Some(expiry))
    }
}

impl TlsClient {
    pub fn new(config: TlsClientConfig) -> Result<Self, TlsError> {
        let mut builder = client_context()?;
        if config.allow_insecure_crypto {
            // Before the keys are read: the legacy provider decrypts old key formats.
            enable_insecure_crypto()?;
            insecure::relax(&mut builder, false)?;
        }
        if config.pfs {
            builder.set_cipher_list(PFS_CIPHERS)?;
        }
        if let Some(list) = &config.cipher_list {
            builder
                .set_cipher_list(list)
                .map_err(|e| TlsError::Ciphers {
                    list: list.clone(),
                    why: e.to_string(),
                })?;
        }
        if let Some((min, max)) = config.versions {
            builder.set_min_proto_version(Some(min))?;
            builder.set_max_proto_version(max)?;
        }
        let client_cert_expiry = add_trust_and_identity(&mut builder, &config)?;
        Ok(Self {
            ctx: builder.build(),
            config,
            client_cert_expiry,
        })
    }

    /// openconnect's warning about the client certificate, if it has expired or expires
    /// within `warn_within` (`-e`, 60 days by default).
    pub fn client_cert_warning(&self, warn_within: std::time::Duration) -> Option<String> {
        let (left, when) = self.client_cert_expiry.as_ref()?;
        let within = i64::try_from(warn_within.as_secs()).unwrap_or(i64::MAX);
        if *left < 0 {
            Some(format!("Client certificate has expired at: {when}"))
        } else if *left < within {
            Some(format!("Client certificate expires soon at: {when}"))
        } else {
            None
        }
    }

    /// A connection on `ctx` that names `host` by SNI (or `--sni`) and whose certificate
    /// must name `host` (or the address we connected to).
    fn new_ssl(&self, ctx: &SslContext, host: &str) -> Result<Ssl, TlsError> {
        let mut ssl = Ssl::new(ctx)?;
        // SNI names a host, never an address; `--sni` replaces it.
        match (&self.config.sni, host.parse::<IpAddr>()) {
            (Some(sni), _) => ssl.set_hostname(sni)?,
            (None, Err(_)) => ssl.set_hostname(host)?,
            (None, Ok(_)) => {}
        }
        let param = ssl.param_mut();
        param.set_hostflags(X509CheckFlags::NO_PARTIAL_WILDCARDS);
        match host.parse::<IpAddr>() {
            Ok(ip) => param.set_ip(ip)?,
            Err(_) => param.set_host(host)?,
        }
        Ok(ssl)
    }

    /// Runs the TLS handshake on `tcp` and checks the server certificate against `host`
    /// (or the pins).
    pub async fn connect(
        &self,
        tcp: TcpStream,
        host: &str,
    ) -> Result<(TlsStream, PeerInfo), TlsError> {
        let ssl = self.new_ssl(&self.ctx, host)?;
        let mut stream = SslStream::new(ssl, TcpSocket::new(tcp))?;
        Pin::new(&mut stream).connect().await.map_err(|e| {
            let why = describe_ssl_error(&e);
            let peer = host.to_string();
            match insecure::obsolete_crypto_hint(&why, self.config.allow_insecure_crypto) {
                Some(hint) => TlsError::ObsoleteCrypto { peer, why, hint },
                None => TlsError::Handshake { peer, why },
            }
        })?;
        let info = self.check_peer(stream.ssl())?;
        Ok((stream, info))
    }

    /// A certificate DTLS client for `host` with the trust, pins and client certificate
    /// of the TLS connection (Fortinet, F5). Once it is established, [`TlsClient::check_peer`]
    /// decides whether the server is the one we trust.
    pub fn dtls_client(
        &self,
        host: &str,
        versions: dtls::DtlsVersions,
        link_mtu: u32,
        ipv6: bool,
    ) -> Result<dtls::DtlsChannel, TlsError> {
        let mut builder =
            dtls::cert_client_builder(versions).map_err(|e| TlsError::Dtls(e.to_string()))?;
        if self.config.allow_insecure_crypto {
            insecure::relax(&mut builder, true)?;
        }
        add_trust_and_identity(&mut builder, &self.config)?;
        let ssl = self.new_ssl(&builder.build(), host)?;
        dtls::DtlsChannel::cert_client(ssl, link_mtu, ipv6)
            .map_err(|e| TlsError::Dtls(e.to_string()))
    }

    /// Checks the server certificate of a completed handshake: the pins when any were
    /// given, else the chain and name as OpenSSL verified them.
    pub fn check_peer(&self, ssl: &SslRef) -> Result<PeerInfo, TlsError> {
        let cert = ssl.peer_certificate().ok_or(TlsError::NoPeerCertificate)?;
        let fingerprint = fingerprint(&cert)?;
        if !self.config.pins.is_empty() {
            let mut matched = false;
            for pin in &self.config.pins {
                matched |= pin.matches(&cert)?;
            }
            if !matched {
                return Err(TlsError::PinMismatch { pin: fingerprint });
            }
        } else {
            let result = ssl.verify_result();
            if result != X509VerifyResult::OK && insecure::is_weak_certificate(result) {
                return Err(TlsError::WeakCertificate {
                    reason: result.error_string().to_string(),
                    pin: fingerprint,
                });
            }
            if result != X509VerifyResult::OK {
                return Err(TlsError::NotTrusted {
                    reason: result.error_string().to_string(),
                    pin: fingerprint,
                });
            }
        }
        let md5 = |cert: &X509Ref| -> Result<String, TlsError> {
            let digest = cert.digest(MessageDigest::md5())?;
            Ok(digest.iter().map(|b| format!("{b:02X}")).collect())
        };
        let ours = ssl.certificate().map(md5).transpose()?.unwrap_or_default();
        Ok(PeerInfo {
            fingerprint,
            cert_md5: (md5(&cert)?, ours),
            version: ssl.version_str().to_string(),
            cipher: ssl
                .current_cipher()
                .map(|c| c.name().to_string())
                .unwrap_or_default(),
        })
    }
}

pub(crate) fn describe_ssl_error(e: &openssl::ssl::Error) -> String {
    if let Some(io) = e.io_error() {
        return io.to_string();
    }
    match e.ssl_error() {
        Some(stack) => stack
            .errors()
            .iter()
            .map(|er| match (er.library_code(), er.data()) {
                // Our own errors (the remote signer's) carry their text as data.
                (remote_key::ERR_LIB_USER, Some(data)) if !data.is_empty() => data.to_string(),
                _ => er.reason().unwrap_or("unknown error").to_string(),
            })
            .collect::<Vec<_>>()
            .join("; "),
        None => match e.code() {
            openssl::ssl::ErrorCode::ZERO_RETURN | openssl::ssl::ErrorCode::SYSCALL => {
                "connection closed by the server".into()
            }
            code => format!("SSL error code {}", code.as_raw()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::pkey::{PKey, Private};
    use openssl::rsa::Rsa;
    use openssl::x509::X509NameBuilder;
    use openssl::x509::X509;

    fn self_signed() -> X509 {
        self_signed_with_key().0
    }

    fn self_signed_with_key() -> (X509, PKey<Private>) {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "test").unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        (b.build(), key)
    }

    /// A certificate DTLS handshake of `client` with a server presenting `cert`, and the
    /// client's verdict on the server.
    fn dtls_handshake(
        client: &TlsClient,
        server_ctx: &SslContext,
        versions: dtls::DtlsVersions,
    ) -> Result<PeerInfo, TlsError> {
        let mut c = client.dtls_client("test", versions, 1500, false).unwrap();
        let mut s = dtls::DtlsChannel::cert_server(server_ctx, 1500, false).unwrap();
        for _ in 0..10 {
            while let Some(d) = c.poll_transmit() {
                if let Err(e) = s.handle_datagram(&d) {
                    eprintln!("server: {e}");
                }
            }
            while let Some(d) = s.poll_transmit() {
                if let Err(e) = c.handle_datagram(&d) {
                    eprintln!("client: {e}");
                }
            }
        }
        assert_eq!(c.state(), dtls::DtlsState::Established);
        assert_eq!(s.state(), dtls::DtlsState::Established);
        c.send(b"ping").unwrap();
        while let Some(d) = c.poll_transmit() {
            s.handle_datagram(&d).unwrap();
        }
        let mut got = Vec::new();
        s.drain(|r| got.extend_from_slice(r)).unwrap();
        assert_eq!(got, b"ping");
        client.check_peer(c.ssl())
    }

    #[test]
    fn dtls_client_checks_the_server_certificate_as_tls_does() {
        let (cert, key) = self_signed_with_key();
        let dir = std::env::temp_dir().join(format!("oc-tls-dtls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_path, cert.to_pem().unwrap()).unwrap();
        std::fs::write(&key_path, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let server_ctx = dtls::cert_server_context(&cert_path, &key_path).unwrap();
        let pin = fingerprint(&cert).unwrap();
        let any = dtls::DtlsVersions::Any;

        let untrusted = TlsClient::new(TlsClientConfig::default()).unwrap();
        match dtls_handshake(&untrusted, &server_ctx, any) {
            Err(TlsError::NotTrusted { pin: named, .. }) => assert_eq!(named, pin),
            other => panic!("an unknown server was accepted: {other:?}"),
        }
        let pinned = TlsClient::new(TlsClientConfig {
            pins: vec![CertPin::parse(&pin).unwrap()],
            ..TlsClientConfig::default()
        })
        .unwrap();
        assert_eq!(
            dtls_handshake(&pinned, &server_ctx, any).unwrap().version,
            "DTLSv1.2"
        );
        let trusted = TlsClient::new(TlsClientConfig {
            ca_file: Some(cert_path.clone()),
            ..TlsClientConfig::default()
        })
        .unwrap();
        let old = dtls_handshake(&trusted, &server_ctx, dtls::DtlsVersions::Dtls10Only).unwrap();
        assert_eq!(old.version, "DTLSv1");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn hashed_trust_directory_is_read_on_demand() {
        let ca = self_signed();
        let dir = std::env::temp_dir().join(format!("oc-tls-trust-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let verifies = |store: &X509Store| {
            let chain = openssl::stack::Stack::new().unwrap();
            let mut ctx = openssl::x509::X509StoreContext::new().unwrap();
            ctx.init(store, &ca, &chain, |c| c.verify_cert()).unwrap()
        };
        // No hash links: not a hashed directory (the bundle file would be loaded instead).
        std::fs::write(dir.join("test.pem"), ca.to_pem().unwrap()).unwrap();
        assert!(!has_hash_links(&dir));
        let name = format!("{:08x}.0", ca.subject_name_hash());
        std::fs::write(dir.join(&name), ca.to_pem().unwrap()).unwrap();
        assert!(has_hash_links(&dir));
        let dirs = format!("/nonexistent:{}", dir.display());
        assert!(verifies(&trust_store(&dirs, false).unwrap()));
        // A CA that is not in the directory is not trusted.
        std::fs::remove_file(dir.join(&name)).unwrap();
        std::fs::write(dir.join("0badc0de.0"), b"not a certificate").unwrap();
        assert!(!verifies(&trust_store(&dirs, false).unwrap()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pin_forms_match_by_prefix() {
        let cert = self_signed();
        let spki = spki_der(&cert).unwrap();
        let sha256 = oc_proto::hex::encode(&hash(MessageDigest::sha256(), &spki).unwrap());
        let sha1 = oc_proto::hex::encode(&hash(MessageDigest::sha1(), &spki).unwrap());
        let whole = oc_proto::hex::encode(&cert.digest(MessageDigest::sha1()).unwrap());
        let b64 = fingerprint(&cert).unwrap();
        for good in [
            format!("sha256:{}", sha256.to_uppercase()),
            format!("sha256:{}", &sha256[..8]),
            format!("sha1:{sha1}"),
            whole.clone(),
            b64.clone(),
            b64[..20].to_string(),
        ] {
            assert!(
                CertPin::parse(&good).unwrap().matches(&cert).unwrap(),
                "{good}"
            );
        }
        let wrong = format!(
            "sha256:{}",
            if sha256.starts_with('0') {
                "1111"
            } else {
                "0000"
            }
        );
        assert!(!CertPin::parse(&wrong).unwrap().matches(&cert).unwrap());
        // Case matters for base64.
        let flipped: String = b64["pin-sha256:".len()..]
            .chars()
            .map(|c| {
                if c.is_ascii_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect();
        if flipped != b64["pin-sha256:".len()..] {
            let pin = CertPin::parse(&format!("pin-sha256:{flipped}")).unwrap();
            assert!(!pin.matches(&cert).unwrap());
        }
    }

    #[test]
    fn bad_pins() {
        for bad in [
            "sha256:abc",
            "md5:abcdef",
            "sha1:xyzw1234",
            "pin-sha256:ab!c#",
            &"a".repeat(41),
        ] {
            assert!(CertPin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn client_certificates_that_expire_soon_or_did_are_named() {
        let dir = std::env::temp_dir().join(format!("oc-tls-expiry-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = self_signed_with_key();
        let cert_path = dir.join("c.pem");
        let key_path = dir.join("k.pem");
        std::fs::write(&cert_path, cert.to_pem().unwrap()).unwrap();
        std::fs::write(&key_path, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let client = TlsClient::new(TlsClientConfig {
            client_cert: Some(ClientCertSpec {
                cert: cert_path,
                key: Some(key_path),
                password: None,
            }),
            ..TlsClientConfig::default()
        })
        .unwrap();
        let days = |d: u64| std::time::Duration::from_secs(d * 86_400);
        let soon = client.client_cert_warning(days(60)).unwrap();
        assert!(
            soon.starts_with("Client certificate expires soon at: "),
            "{soon}"
        );
        assert_eq!(client.client_cert_warning(days(0)), None, "a day is left");
        let mut past = client.clone();
        past.client_cert_expiry = Some((-5, "Jan  1 00:00:00 2020 GMT".into()));
        assert_eq!(
            past.client_cert_warning(days(0)).as_deref(),
            Some("Client certificate has expired at: Jan  1 00:00:00 2020 GMT")
        );
        let none = TlsClient::new(TlsClientConfig::default()).unwrap();
        assert_eq!(none.client_cert_warning(days(60)), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_files_name_the_path() {
        let err = TlsClient::new(TlsClientConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsClientConfig::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        let err = TlsClient::new(TlsClientConfig {
            client_cert: Some(ClientCertSpec {
                cert: "/nonexistent/c.pem".into(),
                key: None,
                password: None,
            }),
            ..TlsClientConfig::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/c.pem"), "{err}");
    }
}
