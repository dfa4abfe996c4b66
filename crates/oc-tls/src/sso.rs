//! The keys and ciphers of AnyConnect's single sign-on (see `oc_proto::anyconnect::sso`):
//! the client's STRAP key pair (P-256), and the token sealed to its ECDH key with
//! P-256 ECDH, HKDF-SHA256 (`AC_ECIES`) and AES-256-GCM.

use base64::Engine;
use oc_proto::anyconnect::auth::StrapPublicKeys;
use oc_proto::anyconnect::sso::{EncryptedToken, TOKEN_KDF_INFO};
use openssl::derive::Deriver;
use openssl::ec::{EcGroup, EcKey};
use openssl::md::Md;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private, Public};
use openssl::pkey_ctx::PkeyCtx;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};

use crate::TlsError;

/// The client's STRAP keys, made fresh for each run: the signing key and the ECDH key.
pub struct StrapKeys {
    signing: PKey<Private>,
    dh: PKey<Private>,
}

impl std::fmt::Debug for StrapKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StrapKeys(P-256, P-256)")
    }
}

fn p256_key() -> Result<PKey<Private>, TlsError> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    Ok(PKey::from_ec_key(EcKey::generate(&group)?)?)
}

fn base64_spki(key: &PKey<Private>) -> Result<String, TlsError> {
    Ok(base64::engine::general_purpose::STANDARD.encode(key.public_key_to_der()?))
}

/// The AES-256-GCM key for a shared ECDH secret.
fn token_key(ours: &PKey<Private>, theirs: &PKey<Public>) -> Result<Vec<u8>, TlsError> {
    let mut deriver = Deriver::new(ours)?;
    deriver.set_peer(theirs)?;
    let secret = deriver.derive_to_vec()?;
    let mut hkdf = PkeyCtx::new_id(Id::HKDF)?;
    hkdf.derive_init()?;
    hkdf.set_hkdf_md(Md::sha256())?;
    hkdf.set_hkdf_key(&secret)?;
    hkdf.add_hkdf_info(TOKEN_KDF_INFO)?;
    let mut key = vec![0; 32];
    hkdf.derive(Some(&mut key))?;
    Ok(key)
}

fn p256_public(der: &[u8], whose: &str) -> Result<PKey<Public>, TlsError> {
    let key = PKey::public_key_from_der(der)
        .map_err(|e| TlsError::SsoToken(format!("{whose} public key is not DER: {e}")))?;
    let on_p256 = key
        .ec_key()
        .ok()
        .and_then(|k| k.group().curve_name())
        .is_some_and(|nid| nid == Nid::X9_62_PRIME256V1);
    if !on_p256 {
        return Err(TlsError::SsoToken(format!(
            "{whose} key is not a P-256 key"
        )));
    }
    Ok(key)
}

impl StrapKeys {
    pub fn generate() -> Result<Self, TlsError> {
        Ok(Self {
            signing: p256_key()?,
            dh: p256_key()?,
        })
    }

    /// The public halves, as the auth requests' headers carry them.
    pub fn public_keys(&self) -> Result<StrapPublicKeys, TlsError> {
        Ok(StrapPublicKeys {
            signing: base64_spki(&self.signing)?,
            dh: base64_spki(&self.dh)?,
        })
    }

    /// Opens a token the gateway sealed to our ECDH key.
    pub fn open_token(&self, sealed: &EncryptedToken) -> Result<Vec<u8>, TlsError> {
        let theirs = p256_public(&sealed.server_key, "the gateway's")?;
        let key = token_key(&self.dh, &theirs)?;
        decrypt_aead(
            Cipher::aes_256_gcm(),
            &key,
            Some(&sealed.iv),
            &[],
            &sealed.ciphertext,
            &sealed.tag,
        )
        .map_err(|_| {
            TlsError::SsoToken(
                "it does not decrypt with this client's key (sealed for another client, or \
                 altered)"
                    .into(),
            )
        })
    }
}

/// Seals `token` to a client's ECDH public key (DER SubjectPublicKeyInfo, from its
/// `X-AnyConnect-STRAP-DH-Pubkey`), as a gateway does.
pub fn seal_token(client_dh: &[u8], token: &[u8]) -> Result<EncryptedToken, TlsError> {
    let theirs = p256_public(client_dh, "the client's")?;
    let ours = p256_key()?;
    let key = token_key(&ours, &theirs)?;
    let mut iv = [0; 12];
    openssl::rand::rand_bytes(&mut iv)?;
    let mut tag = [0; 12];
    let ciphertext = encrypt_aead(Cipher::aes_256_gcm(), &key, Some(&iv), &[], token, &mut tag)?;
    Ok(EncryptedToken {
        server_key: ours.public_key_to_der()?,
        tag,
        ciphertext,
        iv,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_token_opens_with_the_right_key_only() {
        let client = StrapKeys::generate().unwrap();
        let public = client.public_keys().unwrap();
        let dh = base64::engine::general_purpose::STANDARD
            .decode(&public.dh)
            .unwrap();
        let sealed = seal_token(&dh, b"Token123").unwrap();
        let blob = EncryptedToken::parse(&sealed.to_bytes()).unwrap();
        assert_eq!(client.open_token(&blob).unwrap(), b"Token123");
        let other = StrapKeys::generate().unwrap();
        assert!(matches!(
            other.open_token(&blob),
            Err(TlsError::SsoToken(_))
        ));
        let mut altered = blob.clone();
        altered.ciphertext[0] ^= 1;
        assert!(client.open_token(&altered).is_err());
        altered = blob;
        altered.server_key.truncate(20);
        assert!(client.open_token(&altered).is_err());
        assert!(seal_token(b"", b"x").is_err());
    }

    /// The derivation written out by hand: HKDF-SHA256 with no salt is HMAC with a zero key
    /// (extract), then one HMAC round with the info and counter 1 (expand, 32 bytes).
    #[test]
    fn the_key_is_hkdf_sha256_of_the_ecdh_secret() {
        use openssl::sign::Signer;
        let (a, b) = (p256_key().unwrap(), p256_key().unwrap());
        let b_public = PKey::public_key_from_der(&b.public_key_to_der().unwrap()).unwrap();
        let mut deriver = Deriver::new(&a).unwrap();
        deriver.set_peer(&b_public).unwrap();
        let secret = deriver.derive_to_vec().unwrap();
        let hmac = |key: &[u8], data: &[&[u8]]| {
            let key = PKey::hmac(key).unwrap();
            let mut signer = Signer::new(openssl::hash::MessageDigest::sha256(), &key).unwrap();
            for d in data {
                signer.update(d).unwrap();
            }
            signer.sign_to_vec().unwrap()
        };
        let prk = hmac(&[0; 32], &[&secret]);
        let expected = hmac(&prk, &[b"AC_ECIES", &[1]]);
        assert_eq!(token_key(&a, &b_public).unwrap(), expected);
    }
}
