//! Client certificates (`-c`, `-k`, `-p`): a PEM certificate with its chain and a PEM key,
//! or a PKCS#12 file.

use std::path::{Path, PathBuf};

use openssl::error::ErrorStack;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use crate::{read, TlsError};

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
}

pub(crate) fn load_client_cert(spec: &ClientCertSpec) -> Result<LoadedCert, TlsError> {
    let data = read(&spec.cert, "certificate")?;
    let load_err = |what, path: &Path, why: String| TlsError::Load {
        what,
        path: path.to_path_buf(),
        why,
    };
    let password = spec.password.as_deref().unwrap_or("");
    if !data.starts_with(b"-----") && !data.windows(5).any(|w| w == b"-----") {
        // Binary: PKCS#12.
        let parsed = Pkcs12::from_der(&data)
            .and_then(|p| p.parse2(password))
            .map_err(|e| {
                load_err(
                    "PKCS#12 certificate",
                    &spec.cert,
                    format!("{e} (wrong or missing -p password?)"),
                )
            })?;
        let (Some(cert), Some(key)) = (parsed.cert, parsed.pkey) else {
            return Err(load_err(
                "PKCS#12 certificate",
                &spec.cert,
                "the file has no certificate or no key".into(),
            ));
        };
        let chain = parsed
            .ca
            .map(|s| s.into_iter().collect())
            .unwrap_or_default();
        return Ok(LoadedCert { cert, chain, key });
    }
    let mut certs = X509::stack_from_pem(&data)
        .map_err(|e| load_err("certificate", &spec.cert, e.to_string()))?
        .into_iter();
    let cert = certs
        .next()
        .ok_or_else(|| load_err("certificate", &spec.cert, "no PEM certificate found".into()))?;
    let key_path = spec.key.as_deref().unwrap_or(&spec.cert);
    let key_data = read(key_path, "private key")?;
    let key = private_key(&key_data, spec.password.as_deref()).map_err(|e| {
        load_err(
            "private key",
            key_path,
            format!("{e} (is it encrypted? give its password with -p)"),
        )
    })?;
    Ok(LoadedCert {
        cert,
        chain: certs.collect(),
        key,
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
