//! JWS signatures with OpenSSL for `oc_proto::oidc`: the provider's public keys built from
//! their JWK parameters, and RS/PS/ES/EdDSA signatures checked over the signing input.
//! [`sign`] makes such signatures (a test identity provider's side).

use oc_proto::oidc::{Alg, Jwk, KeyMaterial, SignatureCheck};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::{hash, MessageDigest};
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private, Public};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{RsaPssSaltlen, Signer, Verifier};

/// RSA keys shorter than this are refused (RFC 7518 3.3 asks for 2048 bits at least).
const MIN_RSA_BITS: u32 = 2048;

/// OpenSSL's signature checks.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpensslJose;

impl SignatureCheck for OpensslJose {
    fn verify(&self, key: &Jwk, alg: Alg, input: &[u8], signature: &[u8]) -> Result<(), String> {
        let public = public_key(&key.material)?;
        let good = match alg {
            Alg::Es256 | Alg::Es384 | Alg::Es512 => verify_ecdsa(&public, alg, input, signature)?,
            _ => {
                let mut verifier = match digest(alg) {
                    Some(md) => Verifier::new(md, &public),
                    None => Verifier::new_without_digest(&public),
                }
                .map_err(|e| e.to_string())?;
                if is_pss(alg) {
                    verifier
                        .set_rsa_padding(Padding::PKCS1_PSS)
                        .and_then(|()| verifier.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH))
                        .map_err(|e| e.to_string())?;
                }
                verifier
                    .verify_oneshot(signature, input)
                    .map_err(|e| e.to_string())?
            }
        };
        good.then_some(())
            .ok_or_else(|| "the signature is wrong".to_owned())
    }
}

/// Signs `input` with `key` as `alg` asks (ES signatures as JWS wants them: r and s, each
/// as long as the curve's order).
pub fn sign(key: &PKey<Private>, alg: Alg, input: &[u8]) -> Result<Vec<u8>, String> {
    let failed = |e: openssl::error::ErrorStack| e.to_string();
    if let Some(width) = ec_width(alg) {
        let md = digest(alg).ok_or("no digest")?;
        let digest = hash(md, input).map_err(failed)?;
        let ec = key.ec_key().map_err(failed)?;
        let sig = EcdsaSig::sign(&digest, &ec).map_err(failed)?;
        let mut out = sig.r().to_vec_padded(width).map_err(failed)?;
        out.extend(sig.s().to_vec_padded(width).map_err(failed)?);
        return Ok(out);
    }
    let mut signer = match digest(alg) {
        Some(md) => Signer::new(md, key),
        None => Signer::new_without_digest(key),
    }
    .map_err(failed)?;
    if is_pss(alg) {
        signer
            .set_rsa_padding(Padding::PKCS1_PSS)
            .and_then(|()| signer.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH))
            .map_err(failed)?;
    }
    signer.sign_oneshot_to_vec(input).map_err(failed)
}

/// The public half of `key` as a JWK (what a provider publishes for it).
pub fn public_jwk(key: &PKey<Private>, kid: &str, alg: Option<Alg>) -> Result<Jwk, String> {
    let failed = |e: openssl::error::ErrorStack| e.to_string();
    let material = match key.id() {
        Id::RSA => {
            let rsa = key.rsa().map_err(failed)?;
            KeyMaterial::Rsa {
                n: rsa.n().to_vec(),
                e: rsa.e().to_vec(),
            }
        }
        Id::EC => {
            let ec = key.ec_key().map_err(failed)?;
            let (curve, width) = match ec.group().curve_name() {
                Some(Nid::X9_62_PRIME256V1) => ("P-256", 32),
                Some(Nid::SECP384R1) => ("P-384", 48),
                Some(Nid::SECP521R1) => ("P-521", 66),
                _ => return Err("an EC key on another curve than P-256/384/521".into()),
            };
            let mut ctx = openssl::bn::BigNumContext::new().map_err(failed)?;
            let (mut x, mut y) = (
                BigNum::new().map_err(failed)?,
                BigNum::new().map_err(failed)?,
            );
            ec.public_key()
                .affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx)
                .map_err(failed)?;
            KeyMaterial::Ec {
                curve: curve.into(),
                x: x.to_vec_padded(width).map_err(failed)?,
                y: y.to_vec_padded(width).map_err(failed)?,
            }
        }
        Id::ED25519 | Id::ED448 => KeyMaterial::Okp {
            curve: if key.id() == Id::ED25519 {
                "Ed25519"
            } else {
                "Ed448"
            }
            .into(),
            x: key.raw_public_key().map_err(failed)?,
        },
        _ => return Err("not an RSA, EC or Edwards key".into()),
    };
    Ok(Jwk {
        kid: Some(kid.to_owned()),
        alg: alg.map(|a| a.name().to_owned()),
        material,
    })
}

fn digest(alg: Alg) -> Option<MessageDigest> {
    match alg {
        Alg::Rs256 | Alg::Ps256 | Alg::Es256 => Some(MessageDigest::sha256()),
        Alg::Rs384 | Alg::Ps384 | Alg::Es384 => Some(MessageDigest::sha384()),
        Alg::Rs512 | Alg::Ps512 | Alg::Es512 => Some(MessageDigest::sha512()),
        Alg::EdDsa => None,
    }
}

fn is_pss(alg: Alg) -> bool {
    matches!(alg, Alg::Ps256 | Alg::Ps384 | Alg::Ps512)
}

/// Bytes of r (and of s) in an ES signature.
fn ec_width(alg: Alg) -> Option<i32> {
    match alg {
        Alg::Es256 => Some(32),
        Alg::Es384 => Some(48),
        Alg::Es512 => Some(66),
        _ => None,
    }
}

/// ES signatures are r and s side by side, each the curve's width.
fn verify_ecdsa(
    public: &PKey<Public>,
    alg: Alg,
    input: &[u8],
    signature: &[u8],
) -> Result<bool, String> {
    let failed = |e: openssl::error::ErrorStack| e.to_string();
    let width = ec_width(alg)
        .and_then(|w| usize::try_from(w).ok())
        .unwrap_or(0);
    if signature.len() != 2 * width {
        return Err(format!(
            "{} signatures are {} bytes, this one {}",
            alg.name(),
            2 * width,
            signature.len()
        ));
    }
    let (r, s) = signature.split_at(width);
    let sig = EcdsaSig::from_private_components(
        BigNum::from_slice(r).map_err(failed)?,
        BigNum::from_slice(s).map_err(failed)?,
    )
    .map_err(failed)?;
    let md = digest(alg).ok_or("no digest")?;
    let digest = hash(md, input).map_err(failed)?;
    let ec = public.ec_key().map_err(failed)?;
    sig.verify(&digest, &ec).map_err(failed)
}

/// The public key a JWK describes, checked (RSA size, point on the curve).
fn public_key(material: &KeyMaterial) -> Result<PKey<Public>, String> {
    let failed = |e: openssl::error::ErrorStack| format!("unusable key: {e}");
    match material {
        KeyMaterial::Rsa { n, e } => {
            let rsa = Rsa::from_public_components(
                BigNum::from_slice(n).map_err(failed)?,
                BigNum::from_slice(e).map_err(failed)?,
            )
            .map_err(failed)?;
            let bits = rsa.n().num_bits();
            if bits < i32::try_from(MIN_RSA_BITS).unwrap_or(i32::MAX) {
                return Err(format!("a {bits}-bit RSA key is too short"));
            }
            PKey::from_rsa(rsa).map_err(failed)
        }
        KeyMaterial::Ec { curve, x, y } => {
            let nid = match curve.as_str() {
                "P-256" => Nid::X9_62_PRIME256V1,
                "P-384" => Nid::SECP384R1,
                "P-521" => Nid::SECP521R1,
                other => return Err(format!("curve {other:?} is not supported")),
            };
            let group = EcGroup::from_curve_name(nid).map_err(failed)?;
            let x = BigNum::from_slice(x).map_err(failed)?;
            let y = BigNum::from_slice(y).map_err(failed)?;
            let ec = EcKey::from_public_key_affine_coordinates(&group, &x, &y).map_err(failed)?;
            ec.check_key().map_err(failed)?;
            PKey::from_ec_key(ec).map_err(failed)
        }
        KeyMaterial::Okp { curve, x } => {
            let id = match curve.as_str() {
                "Ed25519" => Id::ED25519,
                "Ed448" => Id::ED448,
                other => return Err(format!("curve {other:?} is not supported")),
            };
            PKey::public_key_from_raw_bytes(x, id).map_err(failed)
        }
    }
}

#[cfg(test)]
mod tests;
