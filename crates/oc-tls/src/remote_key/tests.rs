use super::*;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::hash;
use openssl::nid::Nid;
use openssl::pkey_ctx::PkeyCtx;
use openssl::rand::rand_bytes;
use openssl::rsa::Rsa;
use openssl::sign::{RsaPssSaltlen, Verifier};

fn rsa_key(bits: u32) -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap()
}

fn ec_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

/// EMSA-PSS-ENCODE (RFC 8017 9.1.1) with a digest-length salt, returned modulus-sized as
/// OpenSSL hands it to the raw private operation.
fn pss_block(md: MessageDigest, message: &[u8], mod_bits: u32) -> Vec<u8> {
    pss_block_with_salt(md, message, mod_bits, md.size())
}

fn pss_block_with_salt(
    md: MessageDigest,
    message: &[u8],
    mod_bits: u32,
    salt_len: usize,
) -> Vec<u8> {
    let h_len = md.size();
    let m_hash = hash(md, message).unwrap();
    let mut salt = vec![0u8; salt_len];
    rand_bytes(&mut salt).unwrap();
    let mut m_prime = vec![0u8; 8];
    m_prime.extend_from_slice(&m_hash);
    m_prime.extend_from_slice(&salt);
    let h = hash(md, &m_prime).unwrap();
    let em_bits = mod_bits - 1;
    let em_len = em_bits.div_ceil(8) as usize;
    let db_len = em_len - h_len - 1;
    let mut db = vec![0u8; db_len - salt_len - 1];
    db.push(0x01);
    db.extend_from_slice(&salt);
    let mask = mgf1(md, &h, db_len).unwrap();
    let mut em: Vec<u8> = db.iter().zip(&mask).map(|(a, b)| a ^ b).collect();
    em[0] &= 0xff >> (8 * em_len as u32 - em_bits);
    em.extend_from_slice(&h);
    em.push(0xbc);
    let k = mod_bits.div_ceil(8) as usize;
    let mut block = vec![0u8; k - em_len];
    block.extend_from_slice(&em);
    block
}

fn digest_info(md: MessageDigest, message: &[u8]) -> Vec<u8> {
    let oid: &[u8] = match md.type_().as_raw() {
        x if x == Nid::SHA1.as_raw() => &[0x2b, 0x0e, 0x03, 0x02, 0x1a],
        x if x == Nid::SHA256.as_raw() => &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01],
        x if x == Nid::SHA384.as_raw() => &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02],
        x if x == Nid::SHA512.as_raw() => &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03],
        _ => unreachable!(),
    };
    let digest = hash(md, message).unwrap();
    let mut out = digest_info_prefix(oid, digest.len() as u8);
    out.extend_from_slice(&digest);
    out
}

fn verifies_pss(key: &PKey<Private>, md: MessageDigest, message: &[u8], sig: &[u8]) -> bool {
    let mut v = Verifier::new(md, key).unwrap();
    v.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
    v.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH).unwrap();
    v.update(message).unwrap();
    v.verify(sig).unwrap_or(false)
}

#[test]
fn pss_block_signature_verifies_with_the_public_key() {
    let key = rsa_key(2048);
    for md in [
        MessageDigest::sha256(),
        MessageDigest::sha384(),
        MessageDigest::sha512(),
        MessageDigest::sha1(),
    ] {
        let block = pss_block(md, b"transcript", 2048);
        let request = SignRequest::RsaPss {
            key: 0,
            encoded: block,
        };
        let sig = perform(&key, &request).unwrap();
        assert_eq!(sig.len(), 256);
        assert!(verifies_pss(&key, md, b"transcript", &sig));
        assert!(!verifies_pss(&key, md, b"another message", &sig));
    }
}

#[test]
fn pss_block_of_a_key_whose_em_is_shorter_than_the_modulus() {
    // 1033 bits: emBits = 1032 is a multiple of 8, so the block starts with a zero byte.
    let key = rsa_key(1033);
    let md = MessageDigest::sha256();
    let block = pss_block(md, b"odd size", 1033);
    assert_eq!(block.len(), 130);
    assert_eq!(block[0], 0);
    let sig = perform(
        &key,
        &SignRequest::RsaPss {
            key: 0,
            encoded: block.clone(),
        },
    )
    .unwrap();
    assert!(verifies_pss(&key, md, b"odd size", &sig));
    // A non-zero leading byte is refused.
    let mut bad = block;
    bad[0] = 1;
    let err = perform(
        &key,
        &SignRequest::RsaPss {
            key: 0,
            encoded: bad,
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, TlsError::SignRefused(SignRefusal::NotPss(_))),
        "{err}"
    );
}

#[test]
fn pss_refuses_blocks_that_are_not_pss_encodings() {
    let key = rsa_key(2048);
    let refused = |block: Vec<u8>| {
        let err = perform(
            &key,
            &SignRequest::RsaPss {
                key: 0,
                encoded: block,
            },
        )
        .unwrap_err();
        match err {
            TlsError::SignRefused(r @ (SignRefusal::NotPss(_) | SignRefusal::PssLength { .. })) => {
                r
            }
            other => panic!("unexpected {other}"),
        }
    };
    // Random blocks, with and without the trailer and a clear top bit.
    for _ in 0..20 {
        let mut block = vec![0u8; 256];
        rand_bytes(&mut block).unwrap();
        refused(block.clone());
        block[0] &= 0x7f;
        block[255] = 0xbc;
        assert!(matches!(refused(block), SignRefusal::NotPss(m) if m.starts_with("DB")));
    }
    // A PKCS#1 v1.5 ciphertext (what a decryption oracle would be asked for).
    let rsa = key.rsa().unwrap();
    let mut ciphertext = vec![0u8; 256];
    rsa.public_encrypt(b"premaster secret", &mut ciphertext, Padding::PKCS1)
        .unwrap();
    refused(ciphertext);
    // Wrong lengths.
    refused(vec![0u8; 255]);
    refused(vec![0u8; 257]);
    let md = MessageDigest::sha256();
    let good = pss_block(md, b"x", 2048);
    assert!(check_pss_block(&good, 2048).is_ok());
    // Salts other than the digest length (TLS uses the digest length).
    for salt_len in [0, 20, 31, 33, 64] {
        refused(pss_block_with_salt(md, b"x", 2048, salt_len));
    }
    let mut flipped = good.clone();
    flipped[0] ^= 0x01; // a bit of DB's zero padding
    refused(flipped);
    let mut no_trailer = good;
    no_trailer[255] = 0xbd;
    assert_eq!(
        refused(no_trailer),
        SignRefusal::NotPss("the trailer is not 0xbc")
    );
}

#[test]
fn pkcs1_signature_of_a_digest_info_verifies() {
    let key = rsa_key(2048);
    for md in [
        MessageDigest::sha256(),
        MessageDigest::sha384(),
        MessageDigest::sha512(),
        MessageDigest::sha1(),
    ] {
        let request = SignRequest::RsaPkcs1 {
            key: 0,
            digest_info: digest_info(md, b"params"),
        };
        let sig = perform(&key, &request).unwrap();
        let mut v = Verifier::new(md, &key).unwrap();
        v.set_rsa_padding(Padding::PKCS1).unwrap();
        v.update(b"params").unwrap();
        assert!(v.verify(&sig).unwrap());
    }
}

#[test]
fn pkcs1_refuses_what_is_not_a_digest_info() {
    let key = rsa_key(2048);
    let md = MessageDigest::sha256();
    let good = digest_info(md, b"m");
    let mut trailing = good.clone();
    trailing.push(0);
    let mut other_oid = good.clone();
    other_oid[14] = 0x07; // sha512/224: not a TLS hash
    let md5_sha1 = [
        hash(MessageDigest::md5(), b"m").unwrap().to_vec(),
        hash(MessageDigest::sha1(), b"m").unwrap().to_vec(),
    ]
    .concat();
    let mut random = vec![0u8; 200];
    rand_bytes(&mut random).unwrap();
    for bad in [
        hash(md, b"m").unwrap().to_vec(),
        md5_sha1,
        trailing,
        good[..good.len() - 1].to_vec(),
        other_oid,
        random,
        Vec::new(),
    ] {
        let len = bad.len();
        let err = perform(
            &key,
            &SignRequest::RsaPkcs1 {
                key: 0,
                digest_info: bad,
            },
        )
        .unwrap_err();
        assert!(
            matches!(err, TlsError::SignRefused(SignRefusal::NotDigestInfo { len: l }) if l == len),
            "{err}"
        );
    }
}

/// What a TLS 1.3 server signs: 64 spaces, its context string, a transcript hash.
fn tls13_content(hash_len: usize) -> Vec<u8> {
    let mut m = vec![0x20; 64];
    m.extend_from_slice(b"TLS 1.3, server CertificateVerify\0");
    m.extend(std::iter::repeat_n(0xab, hash_len));
    m
}

/// What a TLS 1.2 server signs for ECDHE: the randoms, then the named curve and point.
fn tls12_content(point_len: u8) -> Vec<u8> {
    let mut m = vec![0x11; 64];
    m.extend_from_slice(&[3, 0x00, 0x1d, point_len]);
    m.extend(std::iter::repeat_n(0x42, usize::from(point_len)));
    m
}

#[test]
fn eddsa_signs_only_what_a_tls_server_signs() {
    for key in [
        PKey::generate_ed25519().unwrap(),
        PKey::generate_ed448().unwrap(),
    ] {
        for message in [tls13_content(32), tls13_content(48), tls12_content(32)] {
            let request = SignRequest::EdDsa {
                key: 0,
                message: message.clone(),
            };
            let sig = perform(&key, &request).unwrap();
            let mut v = Verifier::new_without_digest(&key).unwrap();
            assert!(v.verify_oneshot(&sig, &message).unwrap());
        }
        let mut client = tls13_content(32);
        client[64..97].copy_from_slice(b"TLS 1.3, client CertificateVerify");
        let mut trailing = tls12_content(32);
        trailing.push(0);
        let mut explicit_curve = tls12_content(32);
        explicit_curve[64] = 1;
        for message in [
            Vec::new(),
            b"any message at all".to_vec(),
            tls13_content(20),
            client,
            trailing,
            explicit_curve,
            tls12_content(0),
            vec![0x20; 64],
        ] {
            let len = message.len();
            let err = perform(&key, &SignRequest::EdDsa { key: 0, message }).unwrap_err();
            assert!(
                matches!(err, TlsError::SignRefused(SignRefusal::NotTlsContent { len: l }) if l == len),
                "{len}: {err}"
            );
        }
    }
    let eddsa = SignRequest::EdDsa {
        key: 0,
        message: tls13_content(32),
    };
    assert!(matches!(
        perform(&ec_key(), &eddsa).unwrap_err(),
        TlsError::SignRefused(SignRefusal::KeyType {
            request: "EdDSA",
            key: "EC"
        })
    ));
    let ecdsa = SignRequest::Ecdsa {
        key: 0,
        digest: vec![1; 32],
    };
    assert!(matches!(
        perform(&PKey::generate_ed25519().unwrap(), &ecdsa).unwrap_err(),
        TlsError::SignRefused(SignRefusal::KeyType { key: "Ed25519", .. })
    ));
}

#[test]
fn requests_for_the_wrong_key_type_are_refused() {
    let rsa = rsa_key(2048);
    let ec = ec_key();
    let digest = hash(MessageDigest::sha256(), b"m").unwrap().to_vec();
    let err = perform(
        &rsa,
        &SignRequest::Ecdsa {
            key: 0,
            digest: digest.clone(),
        },
    )
    .unwrap_err();
    assert!(matches!(
        err,
        TlsError::SignRefused(SignRefusal::KeyType {
            request: "ECDSA",
            key: "RSA"
        })
    ));
    let pkcs1 = SignRequest::RsaPkcs1 {
        key: 0,
        digest_info: digest_info(MessageDigest::sha256(), b"m"),
    };
    let err = perform(&ec, &pkcs1).unwrap_err();
    assert!(matches!(
        err,
        TlsError::SignRefused(SignRefusal::KeyType { key: "EC", .. })
    ));
    let pss = SignRequest::RsaPss {
        key: 0,
        encoded: pss_block(MessageDigest::sha256(), b"m", 2048),
    };
    assert!(matches!(
        perform(&ec, &pss).unwrap_err(),
        TlsError::SignRefused(SignRefusal::KeyType { .. })
    ));
    // An RSA-PSS key signs PSS blocks but never PKCS#1 v1.5.
    let mut ctx = PkeyCtx::new_id(Id::RSA_PSS).unwrap();
    ctx.keygen_init().unwrap();
    ctx.set_rsa_keygen_bits(2048).unwrap();
    let pss_key = ctx.keygen().unwrap();
    assert!(matches!(
        perform(&pss_key, &pkcs1).unwrap_err(),
        TlsError::SignRefused(SignRefusal::KeyType { key: "RSA-PSS", .. })
    ));
    let block = pss_block(MessageDigest::sha256(), b"m", 2048);
    let sig = perform(
        &pss_key,
        &SignRequest::RsaPss {
            key: 0,
            encoded: block,
        },
    )
    .unwrap();
    assert!(verifies_pss(&pss_key, MessageDigest::sha256(), b"m", &sig));
}

#[test]
fn ecdsa_signature_verifies_and_digest_lengths_are_checked() {
    let key = ec_key();
    let digest = hash(MessageDigest::sha256(), b"m").unwrap().to_vec();
    let der = perform(
        &key,
        &SignRequest::Ecdsa {
            key: 3,
            digest: digest.clone(),
        },
    )
    .unwrap();
    let sig = EcdsaSig::from_der(&der).unwrap();
    assert!(sig.verify(&digest, &key.ec_key().unwrap()).unwrap());
    let mut v = Verifier::new(MessageDigest::sha256(), &key).unwrap();
    v.update(b"m").unwrap();
    assert!(v.verify(&der).unwrap());
    for len in [0, 19, 65, 200] {
        let err = perform(
            &key,
            &SignRequest::Ecdsa {
                key: 3,
                digest: vec![1; len],
            },
        )
        .unwrap_err();
        assert!(matches!(
            err,
            TlsError::SignRefused(SignRefusal::DigestLength { len: l }) if l == len
        ));
    }
}

fn self_signed(key: &PKey<Private>, md: MessageDigest) -> X509 {
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "server").unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let serial = BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap();
    b.set_serial_number(&serial).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    b.sign(key, md).unwrap();
    b.build()
}

#[test]
fn key_loading_checks_the_certificate_and_names_files() {
    let dir = std::env::temp_dir().join(format!("oc-tls-remote-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = ec_key();
    let cert = self_signed(&key, MessageDigest::sha256());
    let (cert_path, key_path, other_path) =
        (dir.join("c.pem"), dir.join("k.pem"), dir.join("o.pem"));
    std::fs::write(&cert_path, cert.to_pem().unwrap()).unwrap();
    std::fs::write(&key_path, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    std::fs::write(&other_path, ec_key().private_key_to_pem_pkcs8().unwrap()).unwrap();
    let loaded = load_key_for_cert(&cert_path, &key_path, None).unwrap();
    assert!(loaded.public_eq(&key));
    let err = load_key_for_cert(&cert_path, &other_path, None).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("o.pem") && text.contains("c.pem") && text.contains("does not match"),
        "{text}"
    );
    let err = load_private_key(&dir.join("missing.pem"), None).unwrap_err();
    assert!(err.to_string().contains("missing.pem"), "{err}");
    std::fs::write(dir.join("bad.pem"), b"not a key").unwrap();
    let err = load_private_key(&dir.join("bad.pem"), None).unwrap_err();
    assert!(err.to_string().contains("bad.pem"), "{err}");
    // An Ed25519 pair loads; a DSA pair matches but cannot be delegated.
    let ed = PKey::generate_ed25519().unwrap();
    std::fs::write(
        &cert_path,
        self_signed(&ed, MessageDigest::null()).to_pem().unwrap(),
    )
    .unwrap();
    std::fs::write(&key_path, ed.private_key_to_pem_pkcs8().unwrap()).unwrap();
    assert!(load_key_for_cert(&cert_path, &key_path, None)
        .unwrap()
        .public_eq(&ed));
    let dsa = PKey::from_dsa(openssl::dsa::Dsa::generate(2048).unwrap()).unwrap();
    std::fs::write(
        &cert_path,
        self_signed(&dsa, MessageDigest::sha256()).to_pem().unwrap(),
    )
    .unwrap();
    std::fs::write(&key_path, dsa.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let err = load_key_for_cert(&cert_path, &key_path, None).unwrap_err();
    assert!(
        matches!(
            err,
            TlsError::RemoteKeyType {
                key_type: "DSA",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("c.pem"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Counts what it is asked and answers with `perform`.
struct Holder {
    key: PKey<Private>,
    asked: std::sync::Mutex<Vec<SignRequest>>,
}

impl RemoteSigner for Holder {
    fn sign(&self, request: &SignRequest) -> Result<Vec<u8>, String> {
        self.asked.lock().unwrap().push(request.clone());
        perform(&self.key, request).map_err(|e| e.to_string())
    }
}

fn remote(key: &PKey<Private>) -> (PKey<Private>, std::sync::Arc<Holder>, X509) {
    let cert = self_signed(key, MessageDigest::sha256());
    let holder = std::sync::Arc::new(Holder {
        key: key.clone(),
        asked: std::sync::Mutex::new(Vec::new()),
    });
    let remote = remote_private_key(&cert, Path::new("/c.pem"), 9, holder.clone()).unwrap();
    (remote, holder, cert)
}

#[test]
fn remote_keys_sign_through_evp_and_verify_with_the_certificate() {
    use openssl::sign::Signer;
    for key in [rsa_key(2048), ec_key()] {
        let (remote_key, holder, cert) = remote(&key);
        let mut signer = Signer::new(MessageDigest::sha384(), &remote_key).unwrap();
        if key.id() == Id::RSA {
            signer.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
            signer
                .set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)
                .unwrap();
        }
        signer.update(b"handshake").unwrap();
        let sig = signer.sign_to_vec().unwrap();
        let public = cert.public_key().unwrap();
        let mut v = Verifier::new(MessageDigest::sha384(), &public).unwrap();
        if key.id() == Id::RSA {
            v.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
            v.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH).unwrap();
        }
        v.update(b"handshake").unwrap();
        assert!(v.verify(&sig).unwrap());
        let asked = holder.asked.lock().unwrap();
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0].key(), 9);
    }
}

#[test]
fn remote_rsa_keys_never_decrypt() {
    let key = rsa_key(2048);
    let (remote_key, holder, _) = remote(&key);
    let rsa = key.rsa().unwrap();
    let mut ciphertext = vec![0u8; 256];
    rsa.public_encrypt(b"premaster", &mut ciphertext, Padding::PKCS1)
        .unwrap();
    let remote_rsa = remote_key.rsa().unwrap();
    let mut out = vec![0u8; 256];
    for padding in [Padding::PKCS1, Padding::NONE, Padding::PKCS1_OAEP] {
        let err = remote_rsa
            .private_decrypt(&ciphertext, &mut out, padding)
            .unwrap_err();
        assert!(err.to_string().contains("not supported"), "{err}");
    }
    let decrypter = openssl::encrypt::Decrypter::new(&remote_key).unwrap();
    assert!(decrypter.decrypt(&ciphertext, &mut out).is_err());
    assert!(holder.asked.lock().unwrap().is_empty());
}

/// `key-pin`: encrypted PKCS#8 and OpenSSL's traditional encrypted PEM open with the PIN;
/// without one, or with a wrong one, the error says what to set.
#[test]
fn encrypted_keys_open_with_the_pin() {
    let dir = std::env::temp_dir().join(format!("oc-tls-pin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rsa = Rsa::generate(2048).unwrap();
    let key = PKey::from_rsa(rsa.clone()).unwrap();
    let cipher = openssl::symm::Cipher::aes_256_cbc();
    let forms = [
        (
            "p8.pem",
            key.private_key_to_pem_pkcs8_passphrase(cipher, b"1234")
                .unwrap(),
        ),
        (
            "ossl.pem",
            rsa.private_key_to_pem_passphrase(cipher, b"1234").unwrap(),
        ),
    ];
    for (name, pem) in forms {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        assert!(load_private_key(&path, Some("1234"))
            .unwrap()
            .public_eq(&key));
        let err = load_private_key(&path, None).unwrap_err().to_string();
        assert!(
            err.contains("set key-pin or pin-file") && err.contains(name),
            "{err}"
        );
        let err = load_private_key(&path, Some("4321"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot decrypt it with the PIN"), "{err}");
    }
    // A PIN given for a plain key does no harm.
    let plain = dir.join("plain.pem");
    std::fs::write(&plain, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    assert!(load_private_key(&plain, Some("1234")).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}
