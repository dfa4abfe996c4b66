#![allow(clippy::unwrap_used, clippy::expect_used)]

use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;

use super::*;

fn ec(nid: Nid) -> PKey<Private> {
    PKey::from_ec_key(EcKey::generate(&EcGroup::from_curve_name(nid).unwrap()).unwrap()).unwrap()
}

fn rsa(bits: u32) -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap()
}

/// Every algorithm: a signature verifies with the signer's public JWK, and not over other
/// input, not with another key, not cut short.
#[test]
fn signatures_of_every_algorithm_verify_and_forgeries_do_not() {
    let rsa_key = rsa(2048);
    let cases = [
        (Alg::Rs256, rsa_key.clone()),
        (Alg::Rs384, rsa_key.clone()),
        (Alg::Rs512, rsa_key.clone()),
        (Alg::Ps256, rsa_key.clone()),
        (Alg::Ps384, rsa_key.clone()),
        (Alg::Ps512, rsa_key),
        (Alg::Es256, ec(Nid::X9_62_PRIME256V1)),
        (Alg::Es384, ec(Nid::SECP384R1)),
        (Alg::Es512, ec(Nid::SECP521R1)),
        (Alg::EdDsa, PKey::generate_ed25519().unwrap()),
    ];
    let other = public_jwk(&rsa(2048), "other", None).unwrap();
    for (alg, key) in cases {
        let jwk = public_jwk(&key, "k", Some(alg)).unwrap();
        // Through the JWK Set form and back, as the server reads it.
        let set = serde_json_set(&jwk);
        assert_eq!(set, jwk, "{}", alg.name());
        let input = b"header.payload";
        let sig = sign(&key, alg, input).unwrap();
        assert_eq!(
            OpensslJose.verify(&jwk, alg, input, &sig),
            Ok(()),
            "{}",
            alg.name()
        );
        assert!(OpensslJose
            .verify(&jwk, alg, b"header.payloaD", &sig)
            .is_err());
        assert!(OpensslJose
            .verify(&jwk, alg, input, &sig[..sig.len() - 1])
            .is_err());
        assert!(OpensslJose.verify(&jwk, alg, input, &[]).is_err());
        if matches!(jwk.material, KeyMaterial::Rsa { .. }) {
            assert!(OpensslJose.verify(&other, alg, input, &sig).is_err());
        }
    }
}

fn serde_json_set(jwk: &Jwk) -> Jwk {
    let doc = format!("{{\"keys\": [{}]}}", jwk.to_json());
    let (set, skipped) = oc_proto::oidc::KeySet::parse(doc.as_bytes(), "keys", 0).unwrap();
    assert!(skipped.is_empty());
    set.keys.into_iter().next().unwrap()
}

#[test]
fn weak_and_invalid_keys_are_refused() {
    let short = public_jwk(&rsa(1024), "short", None).unwrap();
    let err = OpensslJose
        .verify(&short, Alg::Rs256, b"x", &[0; 128])
        .unwrap_err();
    assert!(err.contains("1024-bit"), "{err}");
    // A point that is not on the curve.
    let off_curve = Jwk {
        kid: None,
        alg: None,
        material: KeyMaterial::Ec {
            curve: "P-256".into(),
            x: vec![1; 32],
            y: vec![2; 32],
        },
    };
    let err = OpensslJose
        .verify(&off_curve, Alg::Es256, b"x", &[0; 64])
        .unwrap_err();
    assert!(err.contains("unusable key"), "{err}");
    let odd_curve = Jwk {
        kid: None,
        alg: None,
        material: KeyMaterial::Ec {
            curve: "secp256k1".into(),
            x: vec![1; 32],
            y: vec![2; 32],
        },
    };
    assert!(OpensslJose
        .verify(&odd_curve, Alg::Es256, b"x", &[0; 64])
        .unwrap_err()
        .contains("not supported"));
}
