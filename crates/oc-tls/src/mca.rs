//! The second certificate of AnyConnect's multiple-certificate authentication
//! (`--mca-certificate`, `--mca-key`, `--mca-key-password`): loaded like `-c`/`-k` (files
//! or PKCS#11 URIs), sent as a certs-only PKCS#7 and proving its key by signing the
//! server's request.

use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;
use openssl::x509::X509;

use crate::client_cert::{load_client_cert, ClientCertSpec};
use crate::TlsError;

/// A loaded second certificate with its chain and key.
pub struct SecondCertificate {
    cert: X509,
    chain: Vec<X509>,
    key: PKey<Private>,
}

impl std::fmt::Debug for SecondCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecondCertificate")
            .field("subject", &self.cert.subject_name())
            .finish_non_exhaustive()
    }
}

impl SecondCertificate {
    /// Loads the certificate and key, which must belong together.
    pub fn load(spec: &ClientCertSpec) -> Result<Self, TlsError> {
        let loaded = load_client_cert(spec)?;
        if !loaded.cert.public_key()?.public_eq(&loaded.key) {
            return Err(TlsError::Load {
                what: "MCA private key",
                path: spec.key.clone().unwrap_or_else(|| spec.cert.clone()),
                why: "it does not match --mca-certificate".into(),
            });
        }
        Ok(Self {
            cert: loaded.cert,
            chain: loaded.chain,
            key: loaded.key,
        })
    }

    /// The certificate and its chain as a certs-only PKCS#7 SignedData (DER).
    pub fn pkcs7(&self) -> Result<Vec<u8>, TlsError> {
        let mut certificates = self.cert.to_der()?;
        for extra in &self.chain {
            certificates.extend(extra.to_der()?);
        }
        Ok(certs_only_pkcs7(&certificates))
    }

    /// The key's signature over `data` with `hash` (`sha256`, `sha384`, `sha512`):
    /// PKCS#1 v1.5 for RSA, DER ECDSA for EC, as openconnect makes it.
    pub fn sign(&self, hash: &str, data: &[u8]) -> Result<Vec<u8>, TlsError> {
        let digest = match hash {
            "sha512" => MessageDigest::sha512(),
            "sha384" => MessageDigest::sha384(),
            _ => MessageDigest::sha256(),
        };
        let mut signer = Signer::new(digest, &self.key).map_err(TlsError::KeyOperation)?;
        signer.update(data).map_err(TlsError::KeyOperation)?;
        signer.sign_to_vec().map_err(TlsError::KeyOperation)
    }
}

/// `ContentInfo { signedData, SignedData { version 1, no digest algorithms, data,
/// certificates, no signers } }`: the "degenerate" PKCS#7 that carries certificates only.
fn certs_only_pkcs7(certificates: &[u8]) -> Vec<u8> {
    const SIGNED_DATA: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
    ];
    const DATA: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01,
    ];
    let signed = der(
        0x30,
        &[
            &[0x02, 0x01, 0x01][..],
            &[0x31, 0x00],
            &der(0x30, DATA),
            &der(0xa0, certificates),
            &[0x31, 0x00],
        ]
        .concat(),
    );
    der(0x30, &[SIGNED_DATA, &der(0xa0, &signed)].concat())
}

/// One DER element: tag, definite length, content.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::pkcs7::Pkcs7;

    #[test]
    fn lengths_and_the_pkcs7_openssl_reads() {
        assert_eq!(der(0x04, &[1, 2]), [0x04, 2, 1, 2]);
        assert_eq!(&der(0x04, &[0; 200])[..3], &[0x04, 0x81, 200]);
        assert_eq!(
            &der(0x04, &vec![0; 70_000])[..5],
            &[0x04, 0x83, 0x01, 0x11, 0x70]
        );
        let key = PKey::ec_gen("prime256v1").unwrap();
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "mca").unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        let now = openssl::asn1::Asn1Time::days_from_now(0).unwrap();
        let later = openssl::asn1::Asn1Time::days_from_now(1).unwrap();
        b.set_not_before(&now).unwrap();
        b.set_not_after(&later).unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        let cert = b.build();
        let second = SecondCertificate {
            cert: cert.clone(),
            chain: vec![cert.clone()],
            key,
        };
        let p7 = Pkcs7::from_der(&second.pkcs7().unwrap()).unwrap();
        let certs = p7.signed().unwrap().certificates().unwrap();
        assert_eq!(certs.len(), 2);
        let signature = second.sign("sha384", b"challenge").unwrap();
        let public = cert.public_key().unwrap();
        let mut verifier = openssl::sign::Verifier::new(MessageDigest::sha384(), &public).unwrap();
        verifier.update(b"challenge").unwrap();
        assert!(verifier.verify(&signature).unwrap());
    }
}
