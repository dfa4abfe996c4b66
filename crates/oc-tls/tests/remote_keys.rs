//! Full TLS handshakes against a server whose private keys are held by a "key holder"
//! (standing in for the security-module process): the server's signatures go through the
//! `RemoteSigner`, which calls `perform` with the real key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

mod common;

use common::{ec_key, self_signed};
use oc_tls::remote_key::{perform, RemoteCert, RemoteSigner, SignRequest};
use oc_tls::server::{TlsServer, TlsServerConfig};
use oc_tls::{fingerprint, CertPin, SslStream, TlsClient, TlsClientConfig, TlsError};
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Rsa;
use openssl::ssl::{Ssl, SslContext, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::X509;
use tokio::net::{TcpListener, TcpStream};

fn rsa_key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

fn rsa_pss_key() -> PKey<Private> {
    let mut ctx = PkeyCtx::new_id(Id::RSA_PSS).unwrap();
    ctx.keygen_init().unwrap();
    ctx.set_rsa_keygen_bits(2048).unwrap();
    ctx.keygen().unwrap()
}

/// A certificate with its key, as the two processes see it.
struct Pair {
    key: PKey<Private>,
    cert: X509,
    index: u32,
}

impl Pair {
    fn new(key: PKey<Private>, index: u32) -> Self {
        let cert = self_signed(&key, &format!("server-{index}"));
        Self { key, cert, index }
    }

    fn remote(&self) -> RemoteCert {
        RemoteCert {
            path: PathBuf::from(format!("/etc/ocserv/cert-{}.pem", self.index)),
            pem: self.cert.to_pem().unwrap(),
            key: self.index,
        }
    }
}

/// The key holder: the real keys, `perform`, and a log of what it was asked.
#[derive(Default)]
struct KeyHolder {
    keys: HashMap<u32, PKey<Private>>,
    log: Mutex<Vec<(u32, &'static str)>>,
}

impl KeyHolder {
    fn new(pairs: &[&Pair]) -> Arc<Self> {
        Arc::new(Self {
            keys: pairs.iter().map(|p| (p.index, p.key.clone())).collect(),
            log: Mutex::new(Vec::new()),
        })
    }

    fn take_log(&self) -> Vec<(u32, &'static str)> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl KeyHolder {
    fn answer(&self, request: &SignRequest) -> Result<Vec<u8>, String> {
        self.log
            .lock()
            .unwrap()
            .push((request.key(), request.kind()));
        let key = self
            .keys
            .get(&request.key())
            .ok_or_else(|| format!("no key {}", request.key()))?;
        perform(key, request).map_err(|e| e.to_string())
    }
}

impl RemoteSigner for KeyHolder {
    fn sign(&self, request: &SignRequest) -> Result<Vec<u8>, String> {
        self.answer(request)
    }
}

struct Refusing;

impl RemoteSigner for Refusing {
    fn sign(&self, _: &SignRequest) -> Result<Vec<u8>, String> {
        Err("security module unreachable".into())
    }
}

struct Panicking;

impl RemoteSigner for Panicking {
    fn sign(&self, _: &SignRequest) -> Result<Vec<u8>, String> {
        panic!("signer bug")
    }
}

fn server(
    certs: &[RemoteCert],
    signer: Arc<dyn RemoteSigner>,
    priorities: Option<&str>,
) -> TlsServer {
    let config = TlsServerConfig {
        priorities: priorities.map(str::to_string),
        ..TlsServerConfig::default()
    };
    TlsServer::with_remote_keys(&config, certs, signer).unwrap()
}

/// Starts one server handshake on a loopback listener.
async fn listen(
    server: Arc<TlsServer>,
) -> (
    SocketAddr,
    tokio::task::JoinHandle<Result<oc_tls::TlsStream, TlsError>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, peer) = listener.accept().await.unwrap();
        server.accept(tcp, &peer.to_string()).await
    });
    (addr, task)
}

/// The oc-tls client (pinned to `cert`) against `server`: (version, cipher) or the
/// server's error.
async fn with_oc_client(server: Arc<TlsServer>, cert: &X509) -> Result<(String, String), TlsError> {
    let (addr, task) = listen(server).await;
    let client = TlsClient::new(TlsClientConfig {
        pins: vec![CertPin::parse(&fingerprint(cert).unwrap()).unwrap()],
        ..TlsClientConfig::default()
    })
    .unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let client_result = client.connect(tcp, "127.0.0.1").await;
    let served = task.await.unwrap();
    match (client_result, served) {
        (Ok((_, info)), Ok(_)) => Ok((info.version, info.cipher)),
        (_, Err(e)) => Err(e),
        (Err(e), Ok(_)) => Err(e),
    }
}

/// A plain OpenSSL client with a forced protocol version and signature algorithms:
/// (version, cipher, server certificate) or the server's error.
async fn with_raw_client(
    server: Arc<TlsServer>,
    version: SslVersion,
    sigalgs: &str,
    ciphers: Option<&str>,
) -> Result<(String, String, X509), TlsError> {
    let (addr, task) = listen(server).await;
    let mut ctx = SslContext::builder(SslMethod::tls_client()).unwrap();
    ctx.set_verify(SslVerifyMode::NONE);
    ctx.set_min_proto_version(Some(version)).unwrap();
    ctx.set_max_proto_version(Some(version)).unwrap();
    ctx.set_sigalgs_list(sigalgs).unwrap();
    if let Some(list) = ciphers {
        ctx.set_cipher_list(list).unwrap();
    }
    let ssl = Ssl::new(&ctx.build()).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut stream = SslStream::new(ssl, tcp).unwrap();
    let client_result = Pin::new(&mut stream).connect().await;
    let served = task.await.unwrap();
    served?;
    client_result.map_err(|e| TlsError::Handshake {
        peer: "client".into(),
        why: e.to_string(),
    })?;
    let ssl = stream.ssl();
    Ok((
        ssl.version_str().to_string(),
        ssl.current_cipher().unwrap().name().to_string(),
        ssl.peer_certificate().unwrap(),
    ))
}

#[tokio::test]
async fn rsa_tls13_signs_pss_through_the_key_holder() {
    let pair = Pair::new(rsa_key(), 0);
    let holder = KeyHolder::new(&[&pair]);
    let tls = Arc::new(server(&[pair.remote()], holder.clone(), None));
    let (version, _) = with_oc_client(tls.clone(), &pair.cert).await.unwrap();
    assert_eq!(version, "TLSv1.3");
    assert_eq!(holder.take_log(), vec![(0, "RSA-PSS")]);
    // Every SHA-2 PSS variant.
    for alg in [
        "rsa_pss_rsae_sha256",
        "rsa_pss_rsae_sha384",
        "rsa_pss_rsae_sha512",
    ] {
        let (version, _, cert) = with_raw_client(tls.clone(), SslVersion::TLS1_3, alg, None)
            .await
            .unwrap();
        assert_eq!(version, "TLSv1.3");
        assert_eq!(cert.to_der().unwrap(), pair.cert.to_der().unwrap());
        assert_eq!(holder.take_log(), vec![(0, "RSA-PSS")], "{alg}");
    }
}

#[tokio::test]
async fn rsa_tls12_signs_pkcs1_and_pss_through_the_key_holder() {
    let pair = Pair::new(rsa_key(), 4);
    let holder = KeyHolder::new(&[&pair]);
    let tls = Arc::new(server(
        &[pair.remote()],
        holder.clone(),
        Some("NORMAL:-VERS-TLS1.3"),
    ));
    let (version, cipher) = with_oc_client(tls.clone(), &pair.cert).await.unwrap();
    assert_eq!(version, "TLSv1.2");
    assert!(cipher.starts_with("ECDHE-RSA-"), "{cipher}");
    assert_eq!(holder.take_log().len(), 1);
    for (alg, kind) in [
        ("RSA+SHA256", "RSA PKCS#1 v1.5"),
        ("RSA+SHA384", "RSA PKCS#1 v1.5"),
        ("RSA+SHA512", "RSA PKCS#1 v1.5"),
        ("rsa_pss_rsae_sha256", "RSA-PSS"),
        ("rsa_pss_rsae_sha512", "RSA-PSS"),
    ] {
        let (version, cipher, _) = with_raw_client(tls.clone(), SslVersion::TLS1_2, alg, None)
            .await
            .unwrap();
        assert_eq!(version, "TLSv1.2");
        assert!(cipher.starts_with("ECDHE-RSA-"), "{cipher}");
        assert_eq!(holder.take_log(), vec![(4, kind)], "{alg}");
    }
}

#[tokio::test]
async fn static_rsa_key_exchange_is_not_available() {
    let pair = Pair::new(rsa_key(), 0);
    let holder = KeyHolder::new(&[&pair]);
    // SECURE128 leaves RSA key exchange suites in the server's list.
    let tls = Arc::new(server(&[pair.remote()], holder.clone(), Some("SECURE128")));
    // A client offering only RSA key exchange: the server would have to decrypt.
    let err = with_raw_client(
        tls,
        SslVersion::TLS1_2,
        "RSA+SHA256",
        Some("AES128-GCM-SHA256:AES256-GCM-SHA384"),
    )
    .await
    .unwrap_err();
    // It fails at the decryption, which a remote key does not offer.
    assert!(matches!(err, TlsError::Handshake { .. }), "{err}");
    assert!(err.to_string().contains("decrypt"), "{err}");
    assert!(holder.take_log().is_empty());
}

#[tokio::test]
async fn ecdsa_tls12_and_tls13_through_the_key_holder() {
    let p256 = Pair::new(ec_key(Nid::X9_62_PRIME256V1), 1);
    let holder = KeyHolder::new(&[&p256]);
    let tls = Arc::new(server(&[p256.remote()], holder.clone(), None));
    let (version, _) = with_oc_client(tls.clone(), &p256.cert).await.unwrap();
    assert_eq!(version, "TLSv1.3");
    assert_eq!(holder.take_log(), vec![(1, "ECDSA")]);
    let (version, cipher, _) =
        with_raw_client(tls.clone(), SslVersion::TLS1_2, "ECDSA+SHA256", None)
            .await
            .unwrap();
    assert_eq!(version, "TLSv1.2");
    assert!(cipher.starts_with("ECDHE-ECDSA-"), "{cipher}");
    assert_eq!(holder.take_log(), vec![(1, "ECDSA")]);
    // A longer digest than the curve order (TLS 1.2 allows it).
    with_raw_client(tls, SslVersion::TLS1_2, "ECDSA+SHA512", None)
        .await
        .unwrap();
    assert_eq!(holder.take_log(), vec![(1, "ECDSA")]);
    // P-384 in TLS 1.3.
    let p384 = Pair::new(ec_key(Nid::SECP384R1), 2);
    let holder = KeyHolder::new(&[&p384]);
    let tls = Arc::new(server(&[p384.remote()], holder.clone(), None));
    with_oc_client(tls, &p384.cert).await.unwrap();
    assert_eq!(holder.take_log(), vec![(2, "ECDSA")]);
}

#[tokio::test]
async fn rsa_and_ecdsa_pairs_at_once_follow_the_client_sigalgs() {
    let rsa = Pair::new(rsa_key(), 10);
    let ec = Pair::new(ec_key(Nid::X9_62_PRIME256V1), 11);
    let holder = KeyHolder::new(&[&rsa, &ec]);
    let tls = Arc::new(server(&[rsa.remote(), ec.remote()], holder.clone(), None));
    for (version, sigalgs, want, kind) in [
        (SslVersion::TLS1_3, "ECDSA+SHA256", &ec, "ECDSA"),
        (SslVersion::TLS1_3, "rsa_pss_rsae_sha256", &rsa, "RSA-PSS"),
        (SslVersion::TLS1_2, "ECDSA+SHA256", &ec, "ECDSA"),
        (SslVersion::TLS1_2, "RSA+SHA256", &rsa, "RSA PKCS#1 v1.5"),
    ] {
        assert_served(&tls, &holder, version, sigalgs, want, kind).await;
    }
    // The first certificate is the one the server reports.
    assert_eq!(
        tls.certificate.to_der().unwrap(),
        rsa.cert.to_der().unwrap()
    );
}

/// A client limited to `sigalgs` gets `want`'s certificate, signed by its key as `kind`.
async fn assert_served(
    tls: &Arc<TlsServer>,
    holder: &KeyHolder,
    version: SslVersion,
    sigalgs: &str,
    want: &Pair,
    kind: &str,
) {
    let (_, _, cert) = with_raw_client(tls.clone(), version, sigalgs, None)
        .await
        .unwrap();
    assert_eq!(
        cert.to_der().unwrap(),
        want.cert.to_der().unwrap(),
        "{sigalgs}"
    );
    assert_eq!(holder.take_log(), vec![(want.index, kind)], "{sigalgs}");
}

#[tokio::test]
async fn eddsa_keys_sign_through_the_key_holder_in_tls13_and_tls12() {
    let ed25519 = Pair::new(PKey::generate_ed25519().unwrap(), 20);
    let holder = KeyHolder::new(&[&ed25519]);
    let tls = Arc::new(server(&[ed25519.remote()], holder.clone(), None));
    let (version, _) = with_oc_client(tls.clone(), &ed25519.cert).await.unwrap();
    assert_eq!(version, "TLSv1.3");
    assert_eq!(holder.take_log(), vec![(20, "EdDSA")]);
    let (version, cipher, _) = with_raw_client(tls, SslVersion::TLS1_2, "ed25519", None)
        .await
        .unwrap();
    assert_eq!(version, "TLSv1.2");
    assert!(cipher.starts_with("ECDHE-ECDSA"), "{cipher}");
    assert_eq!(holder.take_log(), vec![(20, "EdDSA")]);

    let ed448 = Pair::new(PKey::generate_ed448().unwrap(), 21);
    let rsa = Pair::new(rsa_key(), 22);
    let holder = KeyHolder::new(&[&ed448, &rsa]);
    let tls = Arc::new(server(
        &[ed448.remote(), rsa.remote()],
        holder.clone(),
        None,
    ));
    for (version, sigalgs, want, kind) in [
        (SslVersion::TLS1_3, "ed448", &ed448, "EdDSA"),
        (SslVersion::TLS1_2, "ed448", &ed448, "EdDSA"),
        (SslVersion::TLS1_3, "rsa_pss_rsae_sha256", &rsa, "RSA-PSS"),
    ] {
        assert_served(&tls, &holder, version, sigalgs, want, kind).await;
    }
}

#[tokio::test]
async fn rsa_pss_only_key_in_tls13() {
    let pair = Pair::new(rsa_pss_key(), 5);
    let holder = KeyHolder::new(&[&pair]);
    let tls = Arc::new(server(&[pair.remote()], holder.clone(), None));
    let (version, _) = with_oc_client(tls.clone(), &pair.cert).await.unwrap();
    assert_eq!(version, "TLSv1.3");
    assert_eq!(holder.take_log(), vec![(5, "RSA-PSS")]);
    let (_, _, cert) = with_raw_client(tls, SslVersion::TLS1_2, "rsa_pss_pss_sha256", None)
        .await
        .unwrap();
    assert_eq!(cert.to_der().unwrap(), pair.cert.to_der().unwrap());
    assert_eq!(holder.take_log(), vec![(5, "RSA-PSS")]);
}

#[tokio::test]
async fn a_refusing_or_panicking_signer_fails_the_handshake() {
    let rsa = Pair::new(rsa_key(), 0);
    let ec = Pair::new(ec_key(Nid::X9_62_PRIME256V1), 1);
    let ed = Pair::new(PKey::generate_ed25519().unwrap(), 2);
    for pair in [&rsa, &ec, &ed] {
        let tls = Arc::new(server(&[pair.remote()], Arc::new(Refusing), None));
        let err = with_oc_client(tls, &pair.cert).await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, TlsError::Handshake { .. }), "{text}");
        assert!(text.contains("security module unreachable"), "{text}");
        assert!(text.contains(&format!("cert-{}.pem", pair.index)), "{text}");
        let tls = Arc::new(server(&[pair.remote()], Arc::new(Panicking), None));
        let err = with_oc_client(tls, &pair.cert).await.unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
    }
}

#[tokio::test]
async fn a_key_holder_with_the_wrong_key_is_caught() {
    let pair = Pair::new(rsa_key(), 0);
    let other = Pair {
        key: rsa_key(),
        cert: pair.cert.clone(),
        index: 0,
    };
    let tls = Arc::new(server(&[pair.remote()], KeyHolder::new(&[&other]), None));
    let err = with_oc_client(tls, &pair.cert).await.unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");
    let ec = Pair::new(ec_key(Nid::X9_62_PRIME256V1), 1);
    let other = Pair {
        key: ec_key(Nid::X9_62_PRIME256V1),
        cert: ec.cert.clone(),
        index: 1,
    };
    let tls = Arc::new(server(&[ec.remote()], KeyHolder::new(&[&other]), None));
    let err = with_oc_client(tls, &ec.cert).await.unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");
    let ed = Pair::new(PKey::generate_ed25519().unwrap(), 2);
    let other = Pair {
        key: PKey::generate_ed25519().unwrap(),
        cert: ed.cert.clone(),
        index: 2,
    };
    let tls = Arc::new(server(&[ed.remote()], KeyHolder::new(&[&other]), None));
    let err = with_oc_client(tls, &ed.cert).await.unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");
}

/// `openssl genpkey -algorithm RSA-PSS -pkeyopt rsa_keygen_bits:1024
/// -pkeyopt rsa_pss_keygen_md:sha256 -pkeyopt rsa_pss_keygen_saltlen:32`, public half.
const RESTRICTED_PSS_PUBLIC_KEY: &[u8] = b"-----BEGIN PUBLIC KEY-----
MIG1MCMGCSqGSIb3DQEBCjAWoA8wDQYJYIZIAWUDBAIBBQCiAwIBIAOBjQAwgYkC
gYEAw456OldtJQBZo4Q50kxJ+mR4R6KAkOTdiVBsGlDDzWSRVJJn6mfgXvj5jaIL
o2/6xoqZiMw4T8i3cPOU837xsBnhD5J85Osg1rWhgBM90fZXxypm1Vm/T+ZiNzaF
SgCTUzpQhagiBbAzQtKKSTenDap6IqArOf/v3hOKFtCwsD0CAwEAAQ==
-----END PUBLIC KEY-----
";

#[test]
fn keys_that_cannot_be_delegated_are_refused_by_name() {
    let holder: Arc<dyn RemoteSigner> = KeyHolder::new(&[]);
    let dsa = PKey::from_dsa(openssl::dsa::Dsa::generate(2048).unwrap()).unwrap();
    let pair = Pair::new(dsa, 3);
    let err = TlsServer::with_remote_keys(
        &TlsServerConfig::default(),
        &[pair.remote()],
        holder.clone(),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, TlsError::RemoteKeyType { key_type, .. } if key_type == "DSA"),
        "{text}"
    );
    assert!(text.contains("/etc/ocserv/cert-3.pem"), "{text}");
    assert!(text.contains("privilege separation"), "{text}");
    // An RSA-PSS key restricted to SHA-256 and a 32-byte salt (the certificate is signed by
    // another key; only its public key matters here).
    let restricted = PKey::public_key_from_pem(RESTRICTED_PSS_PUBLIC_KEY).unwrap();
    let issuer = ec_key(Nid::X9_62_PRIME256V1);
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_pubkey(&restricted).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    b.sign(&issuer, MessageDigest::sha256()).unwrap();
    let cert = RemoteCert {
        path: PathBuf::from("/etc/ocserv/pss.pem"),
        pem: b.build().to_pem().unwrap(),
        key: 0,
    };
    let err = TlsServer::with_remote_keys(&TlsServerConfig::default(), &[cert], holder.clone())
        .unwrap_err();
    assert!(
        matches!(err, TlsError::RemoteKeyType { key_type, .. } if key_type.contains("restrictions")),
        "{err}"
    );
    assert!(err.to_string().contains("/etc/ocserv/pss.pem"), "{err}");
    // Two certificates of one key type, or none at all.
    let a = Pair::new(rsa_key(), 0);
    let b = Pair::new(rsa_key(), 1);
    let err = TlsServer::with_remote_keys(
        &TlsServerConfig::default(),
        &[a.remote(), b.remote()],
        holder.clone(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("cert-0.pem"), "{err}");
    assert!(TlsServer::with_remote_keys(&TlsServerConfig::default(), &[], holder).is_err());
}

#[tokio::test]
async fn signer_references_are_released_with_the_keys() {
    let rsa = Pair::new(rsa_key(), 0);
    let ec = Pair::new(ec_key(Nid::X9_62_PRIME256V1), 1);
    let holder = KeyHolder::new(&[&rsa, &ec]);
    let tls = Arc::new(server(&[rsa.remote(), ec.remote()], holder.clone(), None));
    assert!(Arc::strong_count(&holder) > 1);
    // With both pairs, OpenSSL's default choice is the ECDSA certificate.
    with_oc_client(tls.clone(), &ec.cert).await.unwrap();
    with_raw_client(tls.clone(), SslVersion::TLS1_3, "rsa_pss_rsae_sha256", None)
        .await
        .unwrap();
    drop(tls);
    assert_eq!(Arc::strong_count(&holder), 1);
}

#[tokio::test]
async fn keys_from_files_still_work() {
    let pair = Pair::new(rsa_key(), 0);
    let dir = std::env::temp_dir().join(format!("oc-tls-remote-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, pair.cert.to_pem().unwrap()).unwrap();
    std::fs::write(&key, pair.key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let tls = TlsServer::new(&TlsServerConfig {
        cert: cert.clone(),
        key: key.clone(),
        ..TlsServerConfig::default()
    })
    .unwrap();
    let (version, _) = with_oc_client(Arc::new(tls), &pair.cert).await.unwrap();
    assert_eq!(version, "TLSv1.3");
    // The same certificate file served with the key held elsewhere.
    let holder = KeyHolder::new(&[&pair]);
    let remote = RemoteCert::from_file(&cert, 0).unwrap();
    let tls = Arc::new(server(&[remote], holder.clone(), None));
    with_oc_client(tls, &pair.cert).await.unwrap();
    assert_eq!(holder.take_log(), vec![(0, "RSA-PSS")]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A client naming `sni` (or none): the certificate it got and the virtual host the
/// server says served it.
async fn with_sni_client(server: Arc<TlsServer>, sni: Option<&str>) -> (X509, Option<String>) {
    let (addr, task) = listen(server.clone()).await;
    let mut ctx = SslContext::builder(SslMethod::tls_client()).unwrap();
    ctx.set_verify(SslVerifyMode::NONE);
    let mut ssl = Ssl::new(&ctx.build()).unwrap();
    if let Some(name) = sni {
        ssl.set_hostname(name).unwrap();
    }
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut stream = SslStream::new(ssl, tcp).unwrap();
    Pin::new(&mut stream).connect().await.unwrap();
    let served = task.await.unwrap().unwrap();
    let host = server.virtual_host_of(&served).map(str::to_owned);
    (stream.ssl().peer_certificate().unwrap(), host)
}

#[tokio::test]
async fn a_virtual_host_is_served_by_its_server_name_ignoring_case() {
    let main = Pair::new(rsa_key(), 20);
    let named = Pair::new(ec_key(Nid::X9_62_PRIME256V1), 21);
    let holder = KeyHolder::new(&[&main, &named]);
    let vhost = server(&[named.remote()], holder.clone(), None);
    let tls = Arc::new(
        server(&[main.remote()], holder.clone(), None)
            .with_virtual_hosts(vec![("vpn.example.com".into(), &vhost)]),
    );
    for (sni, want, host) in [
        (None, &main, None),
        (Some("VPN.Example.com"), &named, Some("vpn.example.com")),
        (Some("other.example.com"), &main, None),
    ] {
        let (cert, served_as) = with_sni_client(tls.clone(), sni).await;
        assert_eq!(
            cert.to_der().unwrap(),
            want.cert.to_der().unwrap(),
            "{sni:?}"
        );
        assert_eq!(served_as.as_deref(), host, "{sni:?}");
        // Signed by the key of the certificate that was served.
        assert_eq!(holder.take_log().first().map(|(i, _)| *i), Some(want.index));
    }
}
