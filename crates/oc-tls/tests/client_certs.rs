//! Client certificates checked by the server: chained to `ca-cert`, and not revoked by the
//! `crl` (ocserv's `crl` key).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use oc_tls::server::{verified_client_cert, TlsServer, TlsServerConfig};
use oc_tls::{fingerprint, CertPin, ClientCertSpec, TlsClient, TlsClientConfig};
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509Builder, X509CrlBuilder, X509NameBuilder, X509RevokedBuilder, X509};
use tokio::net::{TcpListener, TcpStream};

fn key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

fn serial(n: u32) -> Asn1Integer {
    BigNum::from_u32(n).unwrap().to_asn1_integer().unwrap()
}

/// A certificate for `cn` with `serial`, signed by `issuer` (self-signed without one).
fn cert(cn: &str, n: u32, key: &PKey<Private>, issuer: Option<(&X509, &PKey<Private>)>) -> X509 {
    cert_with(cn, n, key, issuer, None)
}

/// [`cert`] with one more extension.
fn cert_with(
    cn: &str,
    n: u32,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
    extra: Option<openssl::x509::X509Extension>,
) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&serial(n)).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&name, |(c, _)| c.subject_name()))
        .unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    if issuer.is_none() {
        let ca = openssl::x509::extension::BasicConstraints::new()
            .critical()
            .ca()
            .build()
            .unwrap();
        b.append_extension(ca).unwrap();
        // Like upstream's test CA: allowed to sign certificates but, strictly, not CRLs.
        let usage = openssl::x509::extension::KeyUsage::new()
            .critical()
            .key_cert_sign()
            .build()
            .unwrap();
        b.append_extension(usage).unwrap();
        let ski = openssl::x509::extension::SubjectKeyIdentifier::new()
            .build(&b.x509v3_context(None, None))
            .unwrap();
        b.append_extension(ski).unwrap();
    }
    if let Some(extension) = extra {
        b.append_extension(extension).unwrap();
    }
    b.sign(issuer.map_or(key, |(_, k)| k), MessageDigest::sha256())
        .unwrap();
    b.build()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The server's verdict on a client presenting `client`.
async fn verdict(
    tls: Arc<TlsServer>,
    server_cert: &X509,
    client: ClientCertSpec,
) -> Result<bool, String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = tokio::spawn(async move {
        let (tcp, peer) = listener.accept().await.unwrap();
        let stream = tls.accept(tcp, &peer.to_string()).await.unwrap();
        verified_client_cert(&stream).map(|c| c.is_some())
    });
    let client = TlsClient::new(TlsClientConfig {
        pins: vec![CertPin::parse(&fingerprint(server_cert).unwrap()).unwrap()],
        client_cert: Some(client),
        ..TlsClientConfig::default()
    })
    .unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let _kept = client.connect(tcp, "127.0.0.1").await.unwrap();
    served.await.unwrap()
}

/// A CRL of `ca` revoking `revoked`, issued at `last` and valid until `next` (Unix times).
fn crl_revoking(ca: &X509, ca_key: &PKey<Private>, revoked: u32, last: i64, next: i64) -> Vec<u8> {
    let mut crl = X509CrlBuilder::new().unwrap();
    crl.set_issuer_name(ca.subject_name()).unwrap();
    crl.set_last_update(&Asn1Time::from_unix(last).unwrap())
        .unwrap();
    crl.set_next_update(&Asn1Time::from_unix(next).unwrap())
        .unwrap();
    let mut entry = X509RevokedBuilder::new().unwrap();
    entry.set_serial_number(&serial(revoked)).unwrap();
    entry
        .set_revocation_date(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    crl.add_revoked(entry.build()).unwrap();
    let aki = {
        let context_holder = X509Builder::new().unwrap();
        openssl::x509::extension::AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&context_holder.x509v3_context(Some(ca), None))
            .unwrap()
    };
    crl.append_extension(aki).unwrap();
    // cRLNumber (2.5.29.20) = INTEGER 1.
    let number = openssl::x509::X509Extension::new_from_der(
        &openssl::asn1::Asn1Object::from_str("2.5.29.20").unwrap(),
        false,
        &openssl::asn1::Asn1OctetString::new_from_bytes(&[0x02, 0x01, 0x01]).unwrap(),
    )
    .unwrap();
    crl.append_extension(number).unwrap();
    crl.sign(ca_key, MessageDigest::sha256()).unwrap();
    crl.build().unwrap().to_pem().unwrap()
}

#[tokio::test]
async fn revoked_client_certificates_fail_verification() {
    let dir = std::env::temp_dir().join(format!("oc-tls-crl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_key = key();
    let ca = cert("test CA", 1, &ca_key, None);
    let server_key = key();
    let server = cert("server", 2, &server_key, Some((&ca, &ca_key)));
    let client_spec = |name: &str, n: u32| {
        let k = key();
        let c = cert(name, n, &k, Some((&ca, &ca_key)));
        ClientCertSpec {
            cert: write(&dir, &format!("{name}.pem"), &c.to_pem().unwrap()),
            key: Some(write(
                &dir,
                &format!("{name}.key"),
                &k.private_key_to_pem_pkcs8().unwrap(),
            )),
            password: None,
        }
    };
    let (good, revoked) = (client_spec("good", 10), client_spec("revoked", 11));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let day = 86_400;
    let crl_pem = crl_revoking(&ca, &ca_key, 11, now - day, now + 7 * day);
    // Past its next update (as upstream's test CRL): it still revokes, and rejects no other.
    let expired_pem = crl_revoking(&ca, &ca_key, 11, now - 10 * day, now - day);

    let config = |crl: Option<Vec<u8>>| TlsServerConfig {
        cert: write(&dir, "server.pem", &server.to_pem().unwrap()),
        key: write(
            &dir,
            "server.key",
            &server_key.private_key_to_pem_pkcs8().unwrap(),
        ),
        ca: Some(write(&dir, "ca.pem", &ca.to_pem().unwrap())),
        request_client_cert: true,
        crl: crl.map(|pem| (dir.join("crl.pem"), pem)),
        ..TlsServerConfig::default()
    };
    // Without a CRL both chain to the CA; with it, the revoked one fails.
    let plain = Arc::new(TlsServer::new(&config(None)).unwrap());
    assert_eq!(
        verdict(plain.clone(), &server, good.clone()).await,
        Ok(true)
    );
    assert_eq!(
        verdict(plain.clone(), &server, revoked.clone()).await,
        Ok(true)
    );
    let checked = Arc::new(TlsServer::new(&config(Some(crl_pem))).unwrap());
    assert_eq!(
        verdict(checked.clone(), &server, good.clone()).await,
        Ok(true)
    );
    let refused = verdict(checked, &server, revoked.clone())
        .await
        .unwrap_err();
    assert!(refused.contains("revoked"), "{refused}");
    let expired = Arc::new(TlsServer::new(&config(Some(expired_pem))).unwrap());
    assert_eq!(
        verdict(expired.clone(), &server, good.clone()).await,
        Ok(true)
    );
    let refused = verdict(expired.clone(), &server, revoked)
        .await
        .unwrap_err();
    assert!(refused.contains("revoked"), "{refused}");
    // A certificate for servers only: the CRL errors let pass later must not hide that.
    let k = key();
    let server_only = openssl::x509::extension::ExtendedKeyUsage::new()
        .server_auth()
        .build()
        .unwrap();
    let c = cert_with("web", 12, &k, Some((&ca, &ca_key)), Some(server_only));
    let web = ClientCertSpec {
        cert: write(&dir, "web.pem", &c.to_pem().unwrap()),
        key: Some(write(
            &dir,
            "web.key",
            &k.private_key_to_pem_pkcs8().unwrap(),
        )),
        password: None,
    };
    for tls in [plain, expired] {
        let refused = verdict(tls, &server, web.clone()).await.unwrap_err();
        assert!(refused.contains("purpose"), "{refused}");
    }
    // A CRL file without a CRL is an error naming it.
    let err =
        TlsServer::new(&config(Some(b"not a crl".to_vec()))).expect_err("a bad CRL is refused");
    assert!(err.to_string().contains("crl.pem"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
