//! `--allow-insecure-crypto`: servers that speak only TLS 1.0 or 1.1, or present a
//! certificate signed with SHA-1, are refused with an error naming the option, and
//! accepted with it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;

use oc_tls::{fingerprint, CertPin, PeerInfo, TlsClient, TlsClientConfig, TlsError};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::ssl::{Ssl, SslContext, SslContextBuilder, SslMethod, SslVersion};
use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
use openssl::x509::{X509Builder, X509NameBuilder, X509};
use tokio::net::TcpStream;

fn rsa_key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

/// A certificate for 127.0.0.1 signed with `digest` by `issuer` (self-signed CA without).
fn cert(
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
    digest: MessageDigest,
) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", if issuer.is_some() { "server" } else { "ca" })
        .unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let serial = BigNum::from_u32(if issuer.is_some() { 2 } else { 1 }).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&name, |(c, _)| c.subject_name()))
        .unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    match issuer {
        None => b
            .append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap(),
        Some(_) => {
            let san = SubjectAlternativeName::new()
                .ip("127.0.0.1")
                .build(&b.x509v3_context(issuer.map(|(c, _)| c.as_ref()), None))
                .unwrap();
            b.append_extension(san).unwrap();
        }
    }
    b.sign(issuer.map_or(key, |(_, k)| k), digest).unwrap();
    b.build()
}

/// A server context presenting `cert`, speaking only `version` when given.
fn server(cert: &X509, key: &PKey<Private>, version: Option<SslVersion>) -> SslContext {
    let mut b = SslContextBuilder::new(SslMethod::tls_server()).unwrap();
    b.set_security_level(0);
    b.set_cipher_list("ALL").unwrap();
    if let Some(v) = version {
        b.set_min_proto_version(Some(v)).unwrap();
        b.set_max_proto_version(Some(v)).unwrap();
    }
    b.set_certificate(cert).unwrap();
    b.set_private_key(key).unwrap();
    b.build()
}

/// Serves one handshake on a thread of its own.
fn serve_once(ctx: SslContext) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let mut ssl = Ssl::new(&ctx).unwrap();
        ssl.set_accept_state();
        // The client's refusal is the server's failure; either way the thread ends.
        let _ = ssl.accept(tcp);
    });
    addr
}

async fn connect(config: TlsClientConfig, ctx: SslContext) -> Result<PeerInfo, TlsError> {
    let client = TlsClient::new(config)?;
    let tcp = TcpStream::connect(serve_once(ctx)).await.unwrap();
    client.connect(tcp, "127.0.0.1").await.map(|(_, info)| info)
}

fn pinned(cert: &X509, allow_insecure_crypto: bool) -> TlsClientConfig {
    TlsClientConfig {
        pins: vec![CertPin::parse(&fingerprint(cert).unwrap()).unwrap()],
        allow_insecure_crypto,
        ..TlsClientConfig::default()
    }
}

#[tokio::test]
async fn tls_1_0_and_1_1_servers_need_the_option() {
    let key = rsa_key();
    let cert = cert(&key, None, MessageDigest::sha256());
    for (version, name) in [(SslVersion::TLS1, "TLSv1"), (SslVersion::TLS1_1, "TLSv1.1")] {
        let ctx = server(&cert, &key, Some(version));
        let err = connect(pinned(&cert, false), ctx.clone())
            .await
            .unwrap_err();
        assert!(matches!(err, TlsError::ObsoleteCrypto { .. }), "{err}");
        assert!(err.to_string().contains("--allow-insecure-crypto"), "{err}");
        let info = connect(pinned(&cert, true), ctx).await.unwrap();
        assert_eq!(info.version, name);
    }
    // A modern server is unaffected either way.
    for allow in [false, true] {
        let ctx = server(&cert, &key, None);
        let info = connect(pinned(&cert, allow), ctx).await.unwrap();
        assert_eq!(info.version, "TLSv1.3");
    }
}

#[tokio::test]
async fn sha1_signed_certificates_need_the_option() {
    let dir = std::env::temp_dir().join(format!("oc-tls-insecure-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_key = rsa_key();
    let ca = cert(&ca_key, None, MessageDigest::sha256());
    let ca_file: PathBuf = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.to_pem().unwrap()).unwrap();
    let key = rsa_key();
    let leaf = cert(&key, Some((&ca, &ca_key)), MessageDigest::sha1());
    let trusting = |allow_insecure_crypto| TlsClientConfig {
        ca_file: Some(ca_file.clone()),
        allow_insecure_crypto,
        ..TlsClientConfig::default()
    };
    let err = connect(trusting(false), server(&leaf, &key, None))
        .await
        .unwrap_err();
    assert!(matches!(err, TlsError::WeakCertificate { .. }), "{err}");
    assert!(err.to_string().contains("--allow-insecure-crypto"), "{err}");
    connect(trusting(true), server(&leaf, &key, None))
        .await
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The certificate DTLS of the PPP vendors follows the option too: a DTLS 1.0 gateway
/// (the client offering any version) is reached only with it.
#[test]
fn dtls_1_0_gateways_need_the_option() {
    use oc_tls::dtls::{DtlsChannel, DtlsState, DtlsVersions};
    let key = rsa_key();
    let cert = cert(&key, None, MessageDigest::sha256());
    let mut b = SslContextBuilder::new(SslMethod::dtls_server()).unwrap();
    b.set_security_level(0);
    b.set_min_proto_version(Some(SslVersion::DTLS1)).unwrap();
    b.set_max_proto_version(Some(SslVersion::DTLS1)).unwrap();
    b.set_certificate(&cert).unwrap();
    b.set_private_key(&key).unwrap();
    let ctx = b.build();
    for allow in [false, true] {
        let client = TlsClient::new(pinned(&cert, allow)).unwrap();
        let mut c = client
            .dtls_client("127.0.0.1", DtlsVersions::Any, 1500, false)
            .unwrap();
        let mut s = DtlsChannel::cert_server(&ctx, 1500, false).unwrap();
        for _ in 0..10 {
            while let Some(d) = c.poll_transmit() {
                let _ = s.handle_datagram(&d);
            }
            while let Some(d) = s.poll_transmit() {
                let _ = c.handle_datagram(&d);
            }
        }
        assert_eq!(c.state() == DtlsState::Established, allow);
        if allow {
            assert_eq!(client.check_peer(c.ssl()).unwrap().version, "DTLSv1");
        }
    }
}
