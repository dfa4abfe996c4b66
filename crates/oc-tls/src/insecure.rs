//! `--allow-insecure-crypto`, as openconnect's OpenSSL build gives it: OpenSSL's legacy
//! provider loaded (after checking that 3DES and RC4 exist), and on the client's TLS and
//! certificate-DTLS contexts security level 0 (TLS 1.0 and 1.1, DTLS 1.0, SHA-1 and MD5
//! signatures, small keys), every cipher suite the library has (`ALL`) and servers without
//! secure renegotiation (`SSL_OP_LEGACY_SERVER_CONNECT`).
//!
//! Without the option such servers fail the handshake; [`obsolete_crypto_hint`] tells the
//! failures that look like it, so the error can name the option.

use std::sync::OnceLock;

use openssl::error::ErrorStack;
use openssl::provider::Provider;
use openssl::ssl::{SslContextBuilder, SslMethod, SslOptions, SslVersion};
use openssl::x509::X509VerifyResult;

use crate::TlsError;

/// `SSL_OP_LEGACY_SERVER_CONNECT`, not in the `openssl` crate's option names.
pub(crate) const LEGACY_SERVER_CONNECT: SslOptions = SslOptions::from_bits_retain(1 << 2);

/// The cipher list with the option: upstream's `ALL`, less the suites without
/// authentication (the server's certificate is always checked) or encryption.
const INSECURE_CIPHERS: &str = "ALL:!aNULL:!eNULL";

/// What `--allow-insecure-crypto` could enable in this process's OpenSSL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InsecureCrypto {
    /// The TLS library has 3DES or RC4 cipher suites (Debian's OpenSSL 3 is built
    /// without them: servers offering only those stay out of reach).
    pub weak_suites: bool,
}

/// Loads OpenSSL's legacy provider for the whole process (once; the default provider
/// stays), as openconnect's `can_enable_insecure_crypto`, and reports what the library
/// offers. Fails when the provider, 3DES or RC4 is missing.
pub fn enable_insecure_crypto() -> Result<InsecureCrypto, TlsError> {
    // Both explicitly, as upstream: the legacy provider's own algorithms (PBKDF1 for old
    // PKCS#12 and PKCS#8 encryptions) fetch their digests through a child library context
    // that sees only explicitly loaded providers, not the implicit default one.
    static PROVIDERS: OnceLock<Result<[Provider; 2], String>> = OnceLock::new();
    let loaded = PROVIDERS.get_or_init(|| {
        let load = |name| {
            Provider::try_load(None, name, true)
                .map_err(|e| format!("OpenSSL's {name} provider does not load ({e})"))
        };
        Ok([load("default")?, load("legacy")?])
    });
    if let Err(why) = loaded {
        return Err(TlsError::InsecureCryptoUnavailable(why.clone()));
    }
    for name in ["DES-EDE3-CBC", "RC4"] {
        openssl::cipher::Cipher::fetch(None, name, None).map_err(|e| {
            TlsError::InsecureCryptoUnavailable(format!("OpenSSL has no {name} ({e})"))
        })?;
    }
    Ok(InsecureCrypto {
        weak_suites: has_weak_suites(),
    })
}

/// Whether a client context can be given a 3DES or RC4 suite.
fn has_weak_suites() -> bool {
    SslContextBuilder::new(SslMethod::tls_client())
        .and_then(|mut b| {
            b.set_security_level(0);
            b.set_cipher_list("3DES:RC4")
        })
        .is_ok()
}

/// Opens a client context (`dtls`: a DTLS one) to what the option allows.
pub(crate) fn relax(builder: &mut SslContextBuilder, dtls: bool) -> Result<(), ErrorStack> {
    builder.set_security_level(0);
    builder.set_options(LEGACY_SERVER_CONNECT);
    builder.set_min_proto_version(Some(if dtls {
        SslVersion::DTLS1
    } else {
        SslVersion::TLS1
    }))?;
    builder.set_cipher_list(INSECURE_CIPHERS)
}

/// OpenSSL's reasons for a failed handshake that an obsolete server causes: an old
/// version, no common cipher, SHA-1/MD5 signatures, small keys, no secure renegotiation.
const OBSOLETE_REASONS: &[&str] = &[
    "unsupported protocol",
    "no protocols available",
    "alert protocol version",
    "alert handshake failure",
    "alert insufficient security",
    "no shared cipher",
    "no cipher match",
    "unsafe legacy renegotiation disabled",
    "legacy sigalg disallowed or unsupported",
    "wrong signature type",
    "no suitable signature algorithm",
    "dh key too small",
    "ee key too small",
    "ca key too small",
    "ca md too weak",
];

/// For a failed handshake's description `why`: what to tell the user when it looks like a
/// server with obsolete crypto, given whether `--allow-insecure-crypto` was on and what the
/// library has. `None` for other failures.
pub(crate) fn obsolete_crypto_hint(why: &str, allowed: bool) -> Option<&'static str> {
    let why = why.to_ascii_lowercase();
    if !OBSOLETE_REASONS.iter().any(|r| why.contains(r)) {
        return None;
    }
    if !allowed {
        return Some(
            "The server may offer only obsolete crypto (TLS 1.0/1.1, 3DES or RC4, SHA-1 or MD5 \
             signatures, small keys, legacy renegotiation), which this client refuses; \
             --allow-insecure-crypto re-enables what this build of OpenSSL still has.",
        );
    }
    (!has_weak_suites()).then_some(
        "The server may offer only 3DES or RC4 cipher suites: this build of OpenSSL has none, \
         even with --allow-insecure-crypto.",
    )
}

/// Certificate verification results that security level 0 (the option) accepts: keys or
/// signature digests too weak for the default level.
pub(crate) fn is_weak_certificate(result: X509VerifyResult) -> bool {
    // X509_V_ERR_EE_KEY_TOO_SMALL, X509_V_ERR_CA_KEY_TOO_SMALL, X509_V_ERR_CA_MD_TOO_WEAK.
    matches!(result.as_raw(), 66..=68)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_enables_the_legacy_provider() {
        enable_insecure_crypto().unwrap();
        // DES (single) comes only with the legacy provider. (Whether 3DES or RC4 suites
        // exist depends on the OpenSSL build; `weak_suites` reports the build's answer.)
        openssl::cipher::Cipher::fetch(None, "DES-CBC", None).unwrap();
    }

    #[test]
    fn hints_name_the_option_only_for_obsolete_servers() {
        let hint = obsolete_crypto_hint("sslv3 alert handshake failure", false).unwrap();
        assert!(hint.contains("--allow-insecure-crypto"), "{hint}");
        assert!(obsolete_crypto_hint("Unsupported Protocol", false).is_some());
        assert!(obsolete_crypto_hint("connection closed by the server", false).is_none());
        assert!(obsolete_crypto_hint("certificate verify failed", false).is_none());
        if !has_weak_suites() {
            let hint = obsolete_crypto_hint("no cipher match", true).unwrap();
            assert!(hint.contains("has none"), "{hint}");
        }
    }

    #[test]
    fn relaxed_contexts_take_tls_1_0_and_level_0() {
        let mut b = SslContextBuilder::new(SslMethod::tls_client()).unwrap();
        relax(&mut b, false).unwrap();
        assert_eq!(b.min_proto_version(), Some(SslVersion::TLS1));
        assert_eq!(b.build().security_level(), 0);
        let mut b = SslContextBuilder::new(SslMethod::dtls_client()).unwrap();
        relax(&mut b, true).unwrap();
        assert_eq!(b.min_proto_version(), Some(SslVersion::DTLS1));
    }
}
