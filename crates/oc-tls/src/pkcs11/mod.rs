//! Client certificates and keys on PKCS#11 tokens (smart cards, HSMs, SoftHSM), named by
//! RFC 7512 URIs as openconnect takes them for `-c` and `-k`
//! (`pkcs11:token=...;object=...;id=%01;pin-value=...`).
//!
//! The tokens are reached through p11-kit's proxy module (every module the system
//! registers, as openconnect's GnuTLS build reaches them) or the URI's `module-path`. The
//! key never leaves its token: OpenSSL's handshake hands each signature to it through a
//! delegated key ([`crate::remote_key`]), raw RSA for PSS blocks, RSA PKCS#1 for
//! DigestInfos, ECDSA for digests. Objects of kinds we do not use (DSA keys, data) are
//! skipped rather than failing the search.

mod uri;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use openssl::pkey::{Id, PKey, Private};
use openssl::x509::X509;

use crate::remote_key::{RemoteSigner, SignRequest};
use crate::TlsError;
pub use uri::{redact_pin, ObjectType, Pkcs11Uri, UriError};

/// p11-kit's proxy: every module the system registers.
const DEFAULT_MODULE: &str = "p11-kit-proxy.so";

/// Whether a `-c`/`-k` value names a PKCS#11 object rather than a file.
pub fn is_uri(path: &Path) -> bool {
    path.to_str().is_some_and(|s| s.starts_with("pkcs11:"))
}

/// A certificate read from a token, with its CKA_ID (the key beside it shares it).
#[derive(Debug)]
pub struct TokenCert {
    pub cert: X509,
    pub id: Vec<u8>,
}

/// The certificate `uri` names. A token that shows its certificates only after login
/// gets `pin` (or the URI's `pin-value`).
pub fn certificate(uri: &str, pin: Option<&str>) -> Result<TokenCert, TlsError> {
    let failed = |why: String| load_error("PKCS#11 certificate", uri, why);
    let parsed = Pkcs11Uri::parse(uri).map_err(|e| failed(e.to_string()))?;
    let token = Token::open(&parsed).map_err(&failed)?;
    let pin = parsed.pin_value.as_deref().or(pin);
    let mut found = token
        .find(&parsed, ObjectClass::CERTIFICATE, None)
        .map_err(&failed)?;
    if found.is_none() && pin.is_some() {
        token.login(pin).map_err(&failed)?;
        found = token
            .find(&parsed, ObjectClass::CERTIFICATE, None)
            .map_err(&failed)?;
    }
    let handle = found.ok_or_else(|| {
        failed(format!(
            "no certificate matches on token {:?}; check the object= or id= in the URI{}",
            token.label,
            if pin.is_none() {
                " (or give a PIN if the token hides certificates until login)"
            } else {
                ""
            }
        ))
    })?;
    let (value, id) = token.value_and_id(handle).map_err(&failed)?;
    let cert =
        X509::from_der(&value).map_err(|e| failed(format!("the certificate is not DER: {e}")))?;
    Ok(TokenCert { cert, id })
}

/// An OpenSSL key for `cert` whose signatures the token's private key makes: the key
/// `uri` names, else the one sharing the token certificate's `cert_id`.
pub fn private_key(
    uri: &str,
    pin: Option<&str>,
    cert: &X509,
    cert_id: Option<&[u8]>,
) -> Result<PKey<Private>, TlsError> {
    let failed = |why: String| load_error("PKCS#11 private key", uri, why);
    let kind = cert.public_key()?.id();
    if ![Id::RSA, Id::RSA_PSS, Id::EC].contains(&kind) {
        return Err(failed(
            "only RSA and EC keys on tokens can sign (neither openconnect's GnuTLS nor its \
             OpenSSL build signs with DSA ones); use an RSA or EC certificate"
                .into(),
        ));
    }
    let parsed = Pkcs11Uri::parse(uri).map_err(|e| failed(e.to_string()))?;
    let token = Token::open(&parsed).map_err(&failed)?;
    let pin = parsed.pin_value.as_deref().or(pin);
    token.login(pin).map_err(&failed)?;
    let mut found = token
        .find(&parsed, ObjectClass::PRIVATE_KEY, None)
        .map_err(&failed)?;
    if found.is_none() {
        if let Some(id) = cert_id {
            found = token
                .find(&parsed, ObjectClass::PRIVATE_KEY, Some(id))
                .map_err(&failed)?;
        }
    }
    let key = found.ok_or_else(|| {
        failed(format!(
            "no private key matches on token {:?}; check the object= or id= in the URI{}",
            token.label,
            if pin.is_none() {
                ", and give the PIN (pin-value=... in the URI, or -p)"
            } else {
                ""
            }
        ))
    })?;
    let signer = TokenKey {
        session: Mutex::new(token.session),
        key,
    };
    crate::remote_key::remote_private_key(cert, Path::new(&redact_pin(uri)), 0, Arc::new(signer))
}

/// An open session on the token a URI names.
struct Token {
    session: Session,
    label: String,
}

impl Token {
    fn open(uri: &Pkcs11Uri) -> Result<Self, String> {
        let context = module(uri.module_path.as_deref().unwrap_or(DEFAULT_MODULE))?;
        let slots = context
            .get_slots_with_token()
            .map_err(|e| format!("cannot list the PKCS#11 slots: {e}"))?;
        let mut seen = Vec::new();
        for slot in slots {
            let Ok(info) = context.get_token_info(slot) else {
                continue;
            };
            let label = info.label().trim_end().to_string();
            let matches = |want: &Option<String>, have: &str| {
                want.as_deref().is_none_or(|w| w == have.trim_end())
            };
            if matches(&uri.token, &label)
                && matches(&uri.manufacturer, info.manufacturer_id())
                && matches(&uri.serial, info.serial_number())
                && matches(&uri.model, info.model())
            {
                return Self::on_slot(&context, slot, label);
            }
            seen.push(label);
        }
        Err(match seen.is_empty() {
            true => "no PKCS#11 token is present".to_string(),
            false => format!("no token matches the URI (present: {})", seen.join(", ")),
        })
    }

    fn on_slot(context: &Pkcs11, slot: Slot, label: String) -> Result<Self, String> {
        let session = context
            .open_ro_session(slot)
            .map_err(|e| format!("cannot open a session on token {label:?}: {e}"))?;
        Ok(Self { session, label })
    }

    fn login(&self, pin: Option<&str>) -> Result<(), String> {
        let Some(pin) = pin else {
            return Ok(());
        };
        match self
            .session
            .login(UserType::User, Some(&AuthPin::from(pin.to_string())))
        {
            Ok(()) | Err(P11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
            Err(P11Error::Pkcs11(RvError::PinIncorrect, _)) => {
                Err(format!("the PIN for token {:?} is incorrect", self.label))
            }
            Err(P11Error::Pkcs11(RvError::PinLocked, _)) => {
                Err(format!("the PIN for token {:?} is locked", self.label))
            }
            Err(e) => Err(format!("cannot log in to token {:?}: {e}", self.label)),
        }
    }

    /// The first object of `class` matching the URI's label and id (or `id` instead).
    fn find(
        &self,
        uri: &Pkcs11Uri,
        class: ObjectClass,
        id: Option<&[u8]>,
    ) -> Result<Option<ObjectHandle>, String> {
        let mut template = vec![Attribute::Class(class)];
        match id {
            Some(id) => template.push(Attribute::Id(id.to_vec())),
            None => {
                if let Some(label) = &uri.object {
                    template.push(Attribute::Label(label.as_bytes().to_vec()));
                }
                if let Some(id) = &uri.id {
                    template.push(Attribute::Id(id.clone()));
                }
            }
        }
        let found = self
            .session
            .find_objects(&template)
            .map_err(|e| format!("cannot search token {:?}: {e}", self.label))?;
        Ok(found.into_iter().next())
    }

    fn value_and_id(&self, object: ObjectHandle) -> Result<(Vec<u8>, Vec<u8>), String> {
        let attributes = self
            .session
            .get_attributes(object, &[AttributeType::Value, AttributeType::Id])
            .map_err(|e| format!("cannot read the certificate: {e}"))?;
        let (mut value, mut id) = (Vec::new(), Vec::new());
        for attribute in attributes {
            match attribute {
                Attribute::Value(v) => value = v,
                Attribute::Id(i) => id = i,
                _ => {}
            }
        }
        Ok((value, id))
    }
}

/// A private key on a token, signing for OpenSSL.
struct TokenKey {
    session: Mutex<Session>,
    key: ObjectHandle,
}

impl RemoteSigner for TokenKey {
    fn sign(&self, request: &SignRequest) -> Result<Vec<u8>, String> {
        let session = self
            .session
            .lock()
            .map_err(|_| "the token's session is poisoned")?;
        let token_error = |e: P11Error| format!("the token refused to sign: {e}");
        match request {
            SignRequest::RsaPkcs1 { digest_info, .. } => session
                .sign(&Mechanism::RsaPkcs, self.key, digest_info)
                .map_err(token_error),
            SignRequest::RsaPss { encoded, .. } => session
                .sign(&Mechanism::RsaX509, self.key, encoded)
                .map_err(token_error),
            SignRequest::Ecdsa { digest, .. } => {
                let raw = session
                    .sign(&Mechanism::Ecdsa, self.key, digest)
                    .map_err(token_error)?;
                ecdsa_der(&raw)
            }
            SignRequest::EdDsa { .. } => Err("EdDSA keys on tokens are not supported".into()),
        }
    }
}

/// PKCS#11's ECDSA signature (r and s, each half of it) as TLS's DER `ECDSA-Sig-Value`.
fn ecdsa_der(raw: &[u8]) -> Result<Vec<u8>, String> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return Err(format!(
            "the token's ECDSA signature has {} bytes",
            raw.len()
        ));
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let der = BigNum::from_slice(r)
        .and_then(|r| Ok((r, BigNum::from_slice(s)?)))
        .and_then(|(r, s)| EcdsaSig::from_private_components(r, s))
        .and_then(|sig| sig.to_der());
    der.map_err(|e| format!("cannot encode the ECDSA signature: {e}"))
}

/// The module at `path`, loaded and initialised once per process.
fn module(path: &str) -> Result<Pkcs11, String> {
    static LOADED: Mutex<Vec<(String, Pkcs11)>> = Mutex::new(Vec::new());
    let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, context)) = loaded.iter().find(|(p, _)| p == path) {
        return Ok(context.clone());
    }
    let context = Pkcs11::new(path).map_err(|e| {
        format!("cannot load the PKCS#11 module {path}: {e} (install p11-kit-modules, or give module-path= in the URI)")
    })?;
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(P11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(format!("the PKCS#11 module {path} did not start: {e}")),
    }
    loaded.push((path.to_string(), context.clone()));
    Ok(context)
}

/// A load error naming the URI without its PIN.
fn load_error(what: &'static str, uri: &str, why: String) -> TlsError {
    TlsError::Load {
        what,
        path: PathBuf::from(redact_pin(uri)),
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_signatures_become_der() {
        let der = ecdsa_der(&[0x01; 64]).unwrap();
        let sig = EcdsaSig::from_der(&der).unwrap();
        assert_eq!(sig.r().to_vec(), vec![0x01; 32]);
        assert!(ecdsa_der(&[]).is_err());
        assert!(ecdsa_der(&[1, 2, 3]).is_err());
        assert!(is_uri(Path::new("pkcs11:token=t")) && !is_uri(Path::new("/etc/key.pem")));
    }
}
