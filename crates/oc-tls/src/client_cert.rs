//! Client certificates (`-c`, `-k`, `-p`): a PEM certificate with its chain and a PEM or
//! DER key, a PKCS#12 file, objects on a PKCS#11 token (`pkcs11:` URIs, either or both), or
//! a key in the TPM (a `TSS2 PRIVATE KEY` file).

use std::path::{Path, PathBuf};

use openssl::error::ErrorStack;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use crate::{pkcs11, read, tpm2, TlsError};

/// A client certificate and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertSpec {
    /// `-c`: PEM certificate (chain) or PKCS#12 file.
    pub cert: PathBuf,
    /// `-k`: PEM key file; defaults to the certificate file.
    pub key: Option<PathBuf>,
    /// `-p`: key or PKCS#12 password.
    pub password: Option<String>,
}

pub(crate) struct LoadedCert {
    pub(crate) cert: X509,
    pub(crate) chain: Vec<X509>,
    pub(crate) key: PKey<Private>,
    /// The key signs only with PKCS#1 v1.5 (an RSA key in a TPM): TLS 1.2 at most.
    pub(crate) pkcs1_tls12: bool,
}

pub(crate) fn load_client_cert(spec: &ClientCertSpec) -> Result<LoadedCert, TlsError> {
    let key_source = spec.key.as_deref().unwrap_or(&spec.cert);
    if token_uri(&spec.cert).is_some() || token_uri(key_source).is_some() {
        return load_with_token(spec, key_source);
    }
    let data = read(&spec.cert, "certificate")?;
    if !data.starts_with(b"-----") && !data.windows(5).any(|w| w == b"-----") {
        return pkcs12(&spec.cert, &data, spec.password.as_deref().unwrap_or(""));
    }
    let (cert, chain) = pem_chain(&spec.cert, &data)?;
    let key_data = read(key_source, "private key")?;
    if tpm2::is_tpm_key(&key_data) {
        let key = tpm2::private_key(key_source, &key_data, &cert)?;
        let pkcs1_tls12 = tpm2::needs_pkcs1_tls12(&cert);
        return Ok(LoadedCert {
            cert,
            chain,
            key,
            pkcs1_tls12,
        });
    }
    let key = file_key(key_source, &key_data, spec.password.as_deref())?;
    Ok(LoadedCert::new(cert, chain, key))
}

impl LoadedCert {
    fn new(cert: X509, chain: Vec<X509>, key: PKey<Private>) -> Self {
        Self {
            cert,
            chain,
            key,
            pkcs1_tls12: false,
        }
    }
}

/// A certificate and key of which one or both are on a PKCS#11 token.
fn load_with_token(spec: &ClientCertSpec, key_source: &Path) -> Result<LoadedCert, TlsError> {
    let pin = spec.password.as_deref();
    let (cert, chain, cert_id) = match token_uri(&spec.cert) {
        Some(uri) => {
            let found = pkcs11::certificate(&uri, pin)?;
            (found.cert, Vec::new(), Some(found.id))
        }
        None => {
            let (cert, chain) = pem_chain(&spec.cert, &read(&spec.cert, "certificate")?)?;
            (cert, chain, None)
        }
    };
    let key = match token_uri(key_source) {
        Some(uri) => pkcs11::private_key(&uri, pin, &cert, cert_id.as_deref())?,
        None => file_key(key_source, &read(key_source, "private key")?, pin)?,
    };
    Ok(LoadedCert::new(cert, chain, key))
}

/// The PKCS#11 URI a `-c`/`-k` value is, if it is one.
fn token_uri(path: &Path) -> Option<String> {
    pkcs11::is_uri(path).then(|| path.to_string_lossy().into_owned())
}

fn load_err(what: &'static str, path: &Path, why: String) -> TlsError {
    TlsError::Load {
        what,
        path: path.to_path_buf(),
        why,
    }
}

/// A PKCS#12 file's certificate, chain and key.
fn pkcs12(path: &Path, data: &[u8], password: &str) -> Result<LoadedCert, TlsError> {
    let parsed = Pkcs12::from_der(data)
        .and_then(|p| p.parse2(password))
        .map_err(|e| {
            load_err(
                "PKCS#12 certificate",
                path,
                format!("{e} (wrong or missing -p password?)"),
            )
        })?;
    let (Some(cert), Some(key)) = (parsed.cert, parsed.pkey) else {
        return Err(load_err(
            "PKCS#12 certificate",
            path,
            "the file has no certificate or no key".into(),
        ));
    };
    let chain = parsed
        .ca
        .map(|s| s.into_iter().collect())
        .unwrap_or_default();
    Ok(LoadedCert::new(cert, chain, key))
}

/// The first PEM certificate in `data` and the chain after it.
fn pem_chain(path: &Path, data: &[u8]) -> Result<(X509, Vec<X509>), TlsError> {
    let mut certs = X509::stack_from_pem(data)
        .map_err(|e| load_err("certificate", path, e.to_string()))?
        .into_iter();
    let cert = certs
        .next()
        .ok_or_else(|| load_err("certificate", path, "no PEM certificate found".into()))?;
    Ok((cert, certs.collect()))
}

/// The private key `data` read from the file at `path`.
fn file_key(path: &Path, data: &[u8], password: Option<&str>) -> Result<PKey<Private>, TlsError> {
    private_key(data, password).map_err(|e| {
        load_err(
            "private key",
            path,
            format!("{e} (is it encrypted? give its password with -p)"),
        )
    })
}

/// A private key in PEM, or in DER as openconnect also takes it: PKCS#8 (encrypted with
/// `password`, or not) or the key type's own form (PKCS#1 RSA, SEC1 EC, DSA).
fn private_key(data: &[u8], password: Option<&str>) -> Result<PKey<Private>, ErrorStack> {
    let pem = data.windows(5).any(|w| w == b"-----");
    match (pem, password) {
        (true, Some(p)) => PKey::private_key_from_pem_passphrase(data, p.as_bytes()),
        (true, None) => PKey::private_key_from_pem(data),
        (false, Some(p)) => PKey::private_key_from_pkcs8_passphrase(data, p.as_bytes())
            .or_else(|_| PKey::private_key_from_der(data)),
        (false, None) => PKey::private_key_from_der(data),
    }
}

/// The certificate's end of validity: seconds from now (negative once past) and as
/// OpenSSL prints it.
pub(crate) fn expiry(cert: &X509) -> Result<(i64, String), TlsError> {
    let now = openssl::asn1::Asn1Time::days_from_now(0)?;
    let not_after = cert.not_after();
    let diff = now.diff(not_after)?;
    let seconds = i64::from(diff.days) * 86_400 + i64::from(diff.secs);
    Ok((seconds, not_after.to_string()))
}
