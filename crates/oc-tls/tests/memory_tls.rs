//! TLS over memory (Pulse's EAP-TTLS): the client judges the server as it judges the
//! HTTPS connection and presents its client certificate; plaintext written before the
//! handshake is done goes after it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

mod common;

use common::{ec_key, self_signed};
use oc_proto::pulse::ttls::InnerTls;
use oc_tls::memory::MemoryTls;
use oc_tls::{fingerprint, CertPin, ClientCertSpec, TlsClient, TlsClientConfig};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslAcceptor, SslContext, SslMethod, SslVerifyMode};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;

fn key() -> PKey<Private> {
    ec_key(Nid::X9_62_PRIME256V1)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

struct Pair {
    server_cert: X509,
    server_ctx: SslContext,
    client_spec: ClientCertSpec,
    _dir: tempdir::Dir,
}

mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A server asking for a client certificate (`require`: refusing to go on without one)
/// from the one client certificate made here; its files in a directory of `test`'s own
/// (the tests run at once in one process).
fn pair(test: &str, require: bool) -> Pair {
    let dir = std::env::temp_dir().join(format!("memory-tls-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (server_key, client_key) = (key(), key());
    let server_cert = self_signed(&server_key, "gateway.test");
    let client_cert = self_signed(&client_key, "alice");
    let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    acceptor.set_certificate(&server_cert).unwrap();
    acceptor.set_private_key(&server_key).unwrap();
    let mut store = X509StoreBuilder::new().unwrap();
    store.add_cert(client_cert.clone()).unwrap();
    acceptor.set_verify_cert_store(store.build()).unwrap();
    let mut mode = SslVerifyMode::PEER;
    if require {
        mode |= SslVerifyMode::FAIL_IF_NO_PEER_CERT;
    }
    acceptor.set_verify(mode);
    let client_spec = ClientCertSpec {
        cert: write(&dir, "alice.pem", &client_cert.to_pem().unwrap()),
        key: Some(write(
            &dir,
            "alice.key",
            &client_key.private_key_to_pem_pkcs8().unwrap(),
        )),
        password: None,
    };
    Pair {
        server_cert,
        server_ctx: acceptor.build().into_context(),
        client_spec,
        _dir: tempdir::Dir(dir),
    }
}

fn client(pin: &X509, cert: Option<ClientCertSpec>) -> MemoryTls {
    let config = TlsClientConfig {
        pins: vec![CertPin::parse(&fingerprint(pin).unwrap()).unwrap()],
        client_cert: cert,
        ..TlsClientConfig::default()
    };
    TlsClient::new(config)
        .unwrap()
        .memory_client("gateway.test")
        .unwrap()
}

/// Moves ciphertext both ways until neither side has any to send; the first error.
fn run(client: &mut MemoryTls, server: &mut MemoryTls) -> Result<(), String> {
    client.receive(&[])?;
    loop {
        let to_server = client.take_ciphertext();
        if !to_server.is_empty() {
            server.receive(&to_server)?;
        }
        let to_client = server.take_ciphertext();
        if !to_client.is_empty() {
            client.receive(&to_client)?;
        }
        if to_server.is_empty() && to_client.is_empty() {
            return Ok(());
        }
    }
}

#[test]
fn a_pinned_server_and_a_client_certificate_carry_plaintext_both_ways() {
    let pair = pair(
        "a_pinned_server_and_a_client_certificate_carry_plaintext_both_ways",
        true,
    );
    let mut server = MemoryTls::server(&pair.server_ctx).unwrap();
    let mut client = client(&pair.server_cert, Some(pair.client_spec.clone()));
    // Written before the handshake: it leaves after it.
    client.send(b"anonymous").unwrap();
    run(&mut client, &mut server).unwrap();
    assert!(client.is_established() && server.is_established());
    assert_eq!(server.take_plaintext(), b"anonymous");
    // Each knows the other's certificate.
    assert_eq!(server.peer_name().as_deref(), Some("alice"));
    assert_eq!(client.peer_name().as_deref(), Some("gateway.test"));
    server.send(&[9u8; 40_000]).unwrap();
    run(&mut client, &mut server).unwrap();
    assert_eq!(client.take_plaintext(), vec![9u8; 40_000]);
}

#[test]
fn a_server_that_is_not_the_pinned_one_is_refused_by_its_pin() {
    let pair = pair(
        "a_server_that_is_not_the_pinned_one_is_refused_by_its_pin",
        false,
    );
    let other = self_signed(&key(), "impostor");
    let mut server = MemoryTls::server(&pair.server_ctx).unwrap();
    let mut client = client(&other, None);
    let err = run(&mut client, &mut server).unwrap_err();
    assert!(
        err.contains(&fingerprint(&pair.server_cert).unwrap()),
        "{err}"
    );
    assert!(!client.is_established());
}

#[test]
fn a_server_that_requires_a_certificate_refuses_a_client_without() {
    let pair = pair(
        "a_server_that_requires_a_certificate_refuses_a_client_without",
        true,
    );
    let mut server = MemoryTls::server(&pair.server_ctx).unwrap();
    let mut client = client(&pair.server_cert, None);
    assert!(run(&mut client, &mut server).is_err());
    assert!(!server.is_established());
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let pair = pair("garbage_is_an_error_not_a_panic", false);
    let mut server = MemoryTls::server(&pair.server_ctx).unwrap();
    assert!(server.receive(&[0x16, 3, 1, 0, 4, 1, 2, 3, 4]).is_err());
    let mut client = client(&pair.server_cert, None);
    client.receive(&[]).unwrap();
    assert!(client.receive(&[0xff; 300]).is_err());
}
