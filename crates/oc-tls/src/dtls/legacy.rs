//! AnyConnect legacy (resumption) DTLS.
//!
//! The client sent a 48-byte master secret in the CONNECT request (`X-DTLS-Master-Secret`);
//! the server answered a 32-byte session id (`X-DTLS-Session-ID`) and one cipher. The
//! client offers a session built from these for resumption, the server resumes it
//! (abbreviated handshake, no certificates), and both ends insist the handshake was a
//! resumption: a full handshake would mean someone else answered (openconnect's MITM rule).

use std::sync::OnceLock;

use openssl::ex_data::Index;
use openssl::ssl::{
    Ssl, SslContext, SslContextBuilder, SslMethod, SslOptions, SslSession, SslSessionCacheMode,
    SslVersion,
};

use super::{ffi, session_der, DtlsChannel, DtlsError, Side, NO_ENCRYPT_THEN_MAC};

/// Length of the master secret the client sends in `X-DTLS-Master-Secret`.
pub const LEGACY_MASTER_SECRET_LEN: usize = 48;
/// Length of the session id the server answers in `X-DTLS-Session-ID`.
pub const LEGACY_SESSION_ID_LEN: usize = 32;

/// Extended master secret has no name in the `openssl` crate (`SSL_OP_NO_EXTENDED_MASTER_SECRET`);
/// the session is made from the raw master secret, so EMS must stay off.
const NO_EXTENDED_MASTER_SECRET: SslOptions = SslOptions::from_bits_retain(1 << 0);
/// `SSL_OP_LEGACY_SERVER_CONNECT`: ocserv (GnuTLS, `%DISABLE_SAFE_RENEGOTIATION`) sends no
/// renegotiation_info, which OpenSSL 3 refuses by default.
const LEGACY_SERVER_CONNECT: SslOptions = SslOptions::from_bits_retain(1 << 2);
/// What our legacy server accepts, best first.
const SERVER_CIPHERS: &str = "AES256-GCM-SHA384:AES128-GCM-SHA256";
/// `DTLS1_2_VERSION` as written into the session DER.
const DTLS1_2: u16 = 0xfefd;
/// `DTLS1_BAD_VER`, Cisco's pre-standard DTLS 1.0.
const DTLS1_BAD_VER: u16 = 0x0100;

const CLIENT_MITM: &str =
    "server did not resume the DTLS session; possible MITM (refusing the full handshake)";
const SERVER_NOT_RESUMED: &str = "client did not resume the legacy DTLS session";

/// A cipher of AnyConnect legacy DTLS, as named in `X-DTLS-CipherSuite` /
/// `X-DTLS12-CipherSuite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegacyCipher {
    /// `OC-DTLS1_2-AES256-GCM` / `AES256-GCM-SHA384`, DTLS 1.2.
    Aes256Gcm,
    /// `OC-DTLS1_2-AES128-GCM` / `AES128-GCM-SHA256`, DTLS 1.2.
    Aes128Gcm,
    /// `AES256-SHA` over `DTLS1_BAD_VER` (client only).
    Aes256Sha,
    /// `AES128-SHA` over `DTLS1_BAD_VER` (client only).
    Aes128Sha,
}

impl LegacyCipher {
    pub const ALL: [Self; 4] = [
        Self::Aes256Gcm,
        Self::Aes128Gcm,
        Self::Aes256Sha,
        Self::Aes128Sha,
    ];

    /// Parses a header name (case-sensitive, as the headers are). Both spellings of the
    /// GCM suites are accepted: `OC-DTLS1_2-AES256-GCM` and `AES256-GCM-SHA384`.
    pub fn from_header_name(name: &str) -> Option<Self> {
        match name {
            "OC-DTLS1_2-AES256-GCM" | "AES256-GCM-SHA384" => Some(Self::Aes256Gcm),
            "OC-DTLS1_2-AES128-GCM" | "AES128-GCM-SHA256" => Some(Self::Aes128Gcm),
            "AES256-SHA" => Some(Self::Aes256Sha),
            "AES128-SHA" => Some(Self::Aes128Sha),
            _ => None,
        }
    }

    /// The name in `X-DTLS-CipherSuite` (`OC-DTLS1_2-…` for the GCM suites).
    pub fn header_name(self) -> &'static str {
        match self {
            Self::Aes256Gcm => "OC-DTLS1_2-AES256-GCM",
            Self::Aes128Gcm => "OC-DTLS1_2-AES128-GCM",
            Self::Aes256Sha => "AES256-SHA",
            Self::Aes128Sha => "AES128-SHA",
        }
    }

    /// The name in `X-DTLS12-CipherSuite`, for the DTLS 1.2 suites.
    pub fn dtls12_header_name(self) -> Option<&'static str> {
        self.is_dtls12().then(|| self.openssl_name())
    }

    /// OpenSSL's name of the suite (also what [`DtlsChannel::cipher`] reports).
    pub fn openssl_name(self) -> &'static str {
        match self {
            Self::Aes256Gcm => "AES256-GCM-SHA384",
            Self::Aes128Gcm => "AES128-GCM-SHA256",
            Self::Aes256Sha => "AES256-SHA",
            Self::Aes128Sha => "AES128-SHA",
        }
    }

    /// The TLS cipher suite id.
    pub fn suite_id(self) -> u16 {
        match self {
            Self::Aes256Gcm => 0x009d,
            Self::Aes128Gcm => 0x009c,
            Self::Aes256Sha => 0x0035,
            Self::Aes128Sha => 0x002f,
        }
    }

    /// True for DTLS 1.2 suites, false for the `DTLS1_BAD_VER` ones.
    pub fn is_dtls12(self) -> bool {
        matches!(self, Self::Aes256Gcm | Self::Aes128Gcm)
    }

    /// The DTLS version on the wire: 0xFEFD (DTLS 1.2) or 0x0100 (`DTLS1_BAD_VER`).
    pub fn protocol_version(self) -> u16 {
        if self.is_dtls12() {
            DTLS1_2
        } else {
            DTLS1_BAD_VER
        }
    }

    fn client_context_cell(self) -> &'static OnceLock<SslContext> {
        static AES256_GCM: OnceLock<SslContext> = OnceLock::new();
        static AES128_GCM: OnceLock<SslContext> = OnceLock::new();
        static AES256_SHA: OnceLock<SslContext> = OnceLock::new();
        static AES128_SHA: OnceLock<SslContext> = OnceLock::new();
        match self {
            Self::Aes256Gcm => &AES256_GCM,
            Self::Aes128Gcm => &AES128_GCM,
            Self::Aes256Sha => &AES256_SHA,
            Self::Aes128Sha => &AES128_SHA,
        }
    }
}

impl std::fmt::Display for LegacyCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.header_name())
    }
}

/// What a legacy server expects one client to resume.
struct Expected {
    session_id: [u8; LEGACY_SESSION_ID_LEN],
    master_secret: [u8; LEGACY_MASTER_SECRET_LEN],
    cipher: LegacyCipher,
}

fn expected_index() -> Result<Index<Ssl, Expected>, DtlsError> {
    static INDEX: OnceLock<Option<Index<Ssl, Expected>>> = OnceLock::new();
    INDEX
        .get_or_init(|| Ssl::new_ex_index().ok())
        .ok_or_else(|| DtlsError::Handshake("cannot allocate OpenSSL ex-data index".into()))
}

fn legacy_options() -> SslOptions {
    SslOptions::NO_QUERY_MTU
        | SslOptions::NO_TICKET
        | SslOptions::NO_RENEGOTIATION
        | NO_EXTENDED_MASTER_SECRET
        | NO_ENCRYPT_THEN_MAC
}

/// The client context for one cipher: only that suite, min = max its version.
fn build_client_context(cipher: LegacyCipher) -> Result<SslContext, DtlsError> {
    let mut b = SslContextBuilder::new(SslMethod::dtls_client())?;
    if cipher.is_dtls12() {
        b.set_min_proto_version(Some(SslVersion::DTLS1_2))?;
        b.set_max_proto_version(Some(SslVersion::DTLS1_2))?;
    } else {
        // As OpenSSL's test/bad_dtls_test.c: SHA-1 CBC over DTLS1_BAD_VER needs level 0.
        // Only this context gets it.
        b.set_security_level(0);
        ffi::pin_dtls_bad_ver(&mut b)?;
    }
    b.set_cipher_list(cipher.openssl_name())?;
    b.set_options(legacy_options() | LEGACY_SERVER_CONNECT);
    Ok(b.build())
}

fn client_context(cipher: LegacyCipher) -> Result<SslContext, DtlsError> {
    let cell = cipher.client_context_cell();
    if let Some(ctx) = cell.get() {
        return Ok(ctx.clone());
    }
    let ctx = build_client_context(cipher)?;
    Ok(cell.get_or_init(|| ctx).clone())
}

/// Server context for legacy DTLS (reusable for every connection): DTLS 1.2,
/// `AES256-GCM-SHA384:AES128-GCM-SHA256`, no internal session cache. The only session it
/// resumes is the one [`DtlsChannel::legacy_server`] expects; it has no certificate, so a
/// client that does not resume fails the handshake (no shared cipher).
pub fn legacy_server_context() -> Result<SslContext, DtlsError> {
    let index = expected_index()?;
    let mut b = SslContextBuilder::new(SslMethod::dtls_server())?;
    b.set_min_proto_version(Some(SslVersion::DTLS1_2))?;
    b.set_max_proto_version(Some(SslVersion::DTLS1_2))?;
    b.set_cipher_list(SERVER_CIPHERS)?;
    b.set_options(legacy_options() | SslOptions::CIPHER_SERVER_PREFERENCE);
    b.set_session_cache_mode(SslSessionCacheMode::SERVER | SslSessionCacheMode::NO_INTERNAL);
    ffi::set_session_lookup(&mut b, move |ssl, id| {
        let expected = ssl.ex_data(index)?;
        // `memcmp::eq` panics on unequal lengths; the length is not secret.
        if id.len() != expected.session_id.len() || !openssl::memcmp::eq(id, &expected.session_id) {
            return None;
        }
        Some(session_der(
            expected.cipher.protocol_version(),
            expected.cipher.suite_id(),
            &expected.session_id,
            &expected.master_secret,
        ))
    });
    Ok(b.build())
}

impl DtlsChannel {
    /// A legacy client resuming the session the server named in `X-DTLS-Session-ID`
    /// (`session_id`, 1 to 32 bytes) with the secret we sent in `X-DTLS-Master-Secret`.
    /// The ClientHello is ready in [`DtlsChannel::poll_transmit`] right away. If the server
    /// completes a full handshake instead of resuming, the channel closes with
    /// [`DtlsError::Handshake`] ("possible MITM").
    pub fn legacy_client(
        session_id: &[u8],
        master_secret: &[u8; LEGACY_MASTER_SECRET_LEN],
        cipher: LegacyCipher,
        link_mtu: u32,
        ipv6: bool,
    ) -> Result<Self, DtlsError> {
        if session_id.is_empty() || session_id.len() > LEGACY_SESSION_ID_LEN {
            return Err(DtlsError::Handshake(format!(
                "legacy DTLS session id must be 1 to 32 bytes, got {}",
                session_id.len()
            )));
        }
        let ctx = client_context(cipher)?;
        // The session's version must be the pinned one, or OpenSSL silently starts a new
        // session and the id never reaches the server.
        let der = session_der(
            cipher.protocol_version(),
            cipher.suite_id(),
            session_id,
            master_secret,
        );
        let session = SslSession::from_der(&der)?;
        let ssl = Ssl::new(&ctx)?;
        let mut channel = Self::from_ssl(
            ssl,
            link_mtu,
            ipv6,
            Side::Client(Some(&session)),
            Some(CLIENT_MITM),
        )?;
        channel.drive_handshake()?;
        Ok(channel)
    }

    /// The server side of a legacy association: resumes only `session_id` with
    /// `master_secret` and `cipher` (a DTLS 1.2 suite; OpenSSL has no `DTLS1_BAD_VER`
    /// server). `ctx` comes from [`legacy_server_context`].
    pub fn legacy_server(
        ctx: &SslContext,
        session_id: &[u8; LEGACY_SESSION_ID_LEN],
        master_secret: &[u8; LEGACY_MASTER_SECRET_LEN],
        cipher: LegacyCipher,
        link_mtu: u32,
        ipv6: bool,
    ) -> Result<Self, DtlsError> {
        if !cipher.is_dtls12() {
            return Err(DtlsError::UnsupportedCipher(cipher.header_name()));
        }
        let mut ssl = Ssl::new(ctx)?;
        ssl.set_cipher_list(cipher.openssl_name())?;
        ssl.set_ex_data(
            expected_index()?,
            Expected {
                session_id: *session_id,
                master_secret: *master_secret,
                cipher,
            },
        );
        Self::from_ssl(ssl, link_mtu, ipv6, Side::Server, Some(SERVER_NOT_RESUMED))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::super::{psk_client_context, psk_server_context, DtlsState, PSK_LEN};
    use super::*;

    const ID: [u8; 32] = [0x5a; 32];
    const MASTER: [u8; 48] = [0x33; 48];

    /// Runs the handshake to completion (or stalemate); errors are collected, not fatal.
    fn run(client: &mut DtlsChannel, server: &mut DtlsChannel) -> (Vec<DtlsError>, Vec<DtlsError>) {
        let (mut client_errors, mut server_errors) = (Vec::new(), Vec::new());
        for _ in 0..10 {
            let mut moved = 0;
            while let Some(d) = client.poll_transmit() {
                assert!(d.len() <= 1472, "datagram of {} bytes", d.len());
                server_errors.extend(server.handle_datagram(&d).err());
                moved += 1;
            }
            while let Some(d) = server.poll_transmit() {
                assert!(d.len() <= 1472, "datagram of {} bytes", d.len());
                client_errors.extend(client.handle_datagram(&d).err());
                moved += 1;
            }
            if moved == 0 {
                break;
            }
        }
        (client_errors, server_errors)
    }

    fn legacy_pair(
        client_master: &[u8; 48],
        client_id: &[u8],
        server_master: &[u8; 48],
        cipher: LegacyCipher,
    ) -> (DtlsChannel, DtlsChannel, Vec<u8>, Vec<DtlsError>) {
        let mut client =
            DtlsChannel::legacy_client(client_id, client_master, cipher, 1500, false).unwrap();
        let hello = client.poll_transmit().unwrap();
        let ctx = legacy_server_context().unwrap();
        let mut server =
            DtlsChannel::legacy_server(&ctx, &ID, server_master, cipher, 1500, false).unwrap();
        let first = server.handle_datagram(&hello).err();
        let (_, mut server_errors) = run(&mut client, &mut server);
        server_errors.extend(first);
        (client, server, hello, server_errors)
    }

    #[test]
    fn session_der_encodes_both_versions() {
        for cipher in LegacyCipher::ALL {
            let der = session_der(cipher.protocol_version(), cipher.suite_id(), &ID, &MASTER);
            let session = SslSession::from_der(&der).unwrap();
            assert_eq!(session.id(), &ID);
            let version = session.protocol_version();
            assert_eq!(version == SslVersion::DTLS1_2, cipher.is_dtls12());
            assert!(version != SslVersion::DTLS1);
        }
    }

    #[test]
    fn header_names_round_trip() {
        for cipher in LegacyCipher::ALL {
            assert_eq!(
                LegacyCipher::from_header_name(cipher.header_name()),
                Some(cipher)
            );
            assert_eq!(
                LegacyCipher::from_header_name(cipher.openssl_name()),
                Some(cipher)
            );
        }
        assert_eq!(
            LegacyCipher::from_header_name("AES256-GCM-SHA384"),
            Some(LegacyCipher::Aes256Gcm)
        );
        assert_eq!(LegacyCipher::from_header_name("aes256-sha"), None);
        assert_eq!(LegacyCipher::from_header_name("PSK-NEGOTIATE"), None);
        assert_eq!(LegacyCipher::from_header_name("DES-CBC3-SHA"), None);
        assert_eq!(
            LegacyCipher::Aes128Gcm.dtls12_header_name(),
            Some("AES128-GCM-SHA256")
        );
        assert_eq!(LegacyCipher::Aes128Sha.dtls12_header_name(), None);
        assert!(!LegacyCipher::Aes256Sha.is_dtls12());
    }

    #[test]
    fn gcm_ciphers_resume_and_carry_records() {
        for cipher in [LegacyCipher::Aes256Gcm, LegacyCipher::Aes128Gcm] {
            let (mut client, mut server, hello, _) = legacy_pair(&MASTER, &ID, &MASTER, cipher);
            // Session id at ocserv's offset. OpenSSL sends the first hello in a DTLS 1.0
            // record (0xFEFF); the ClientHello itself says DTLS 1.2.
            assert_eq!(hello[0], 22);
            assert_eq!(&hello[1..3], &[0xfe, 0xff]);
            assert_eq!(hello[13], 1);
            assert_eq!(&hello[25..27], &[0xfe, 0xfd]);
            assert_eq!(hello[59], 32);
            assert_eq!(&hello[60..92], &ID);
            assert_eq!(client.state(), DtlsState::Established, "{cipher}");
            assert_eq!(server.state(), DtlsState::Established, "{cipher}");
            assert!(client.stream.ssl().session_reused());
            assert!(server.stream.ssl().session_reused());
            assert_eq!(client.cipher(), cipher.openssl_name());
            assert_eq!(server.cipher(), cipher.openssl_name());
            // 1500 - 20 - 8 = 1472 record bytes; GCM costs 13 + 8 + 16.
            assert_eq!(client.data_mtu(), 1472 - 37);
            assert_eq!(server.data_mtu(), 1472 - 37);
            assert_eq!(client.poll_timeout(), None);

            let mut buf = [0u8; 2048];
            client.send(b"\x00ping").unwrap();
            run(&mut client, &mut server);
            let n = server.recv(&mut buf).unwrap().unwrap();
            assert_eq!(&buf[..n], b"\x00ping");
            server.send(b"\x00pong").unwrap();
            server.send(b"\x00pong2").unwrap();
            run(&mut client, &mut server);
            let mut got = Vec::new();
            client.drain(|r| got.push(r.to_vec())).unwrap();
            assert_eq!(got, vec![b"\x00pong".to_vec(), b"\x00pong2".to_vec()]);

            client.close();
            run(&mut client, &mut server);
            assert!(matches!(server.recv(&mut buf), Err(DtlsError::Closed)));
        }
    }

    #[test]
    fn bad_ver_client_hello_carries_session_id() {
        for cipher in [LegacyCipher::Aes256Sha, LegacyCipher::Aes128Sha] {
            let mut client = DtlsChannel::legacy_client(&ID, &MASTER, cipher, 1500, true).unwrap();
            let hello = client.poll_transmit().unwrap();
            assert_eq!(hello[0], 22);
            assert_eq!(&hello[1..3], &[0x01, 0x00], "DTLS1_BAD_VER record version");
            assert_eq!(hello[13], 1);
            assert_eq!(
                &hello[25..27],
                &[0x01, 0x00],
                "DTLS1_BAD_VER client_version"
            );
            assert_eq!(hello[59], 32);
            assert_eq!(&hello[60..92], &ID);
            // cookie (empty), then the cipher list: exactly this suite (+ SCSV at most).
            assert_eq!(hello[92], 0);
            let len = usize::from(u16::from_be_bytes([hello[93], hello[94]]));
            let suites: Vec<u16> = hello[95..95 + len]
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .filter(|&s| s != 0x00ff)
                .collect();
            assert_eq!(suites, vec![cipher.suite_id()]);
            assert_eq!(client.state(), DtlsState::Handshaking);
            assert!(client.poll_timeout().is_some());
        }
        // Not on our server: OpenSSL cannot serve DTLS1_BAD_VER.
        let ctx = legacy_server_context().unwrap();
        let err =
            DtlsChannel::legacy_server(&ctx, &ID, &MASTER, LegacyCipher::Aes128Sha, 1500, false)
                .unwrap_err();
        assert!(matches!(err, DtlsError::UnsupportedCipher("AES128-SHA")));
    }

    #[test]
    fn gcm_client_hello_offers_only_its_cipher() {
        let mut client =
            DtlsChannel::legacy_client(&ID, &MASTER, LegacyCipher::Aes128Gcm, 1500, false).unwrap();
        let hello = client.poll_transmit().unwrap();
        let len = usize::from(u16::from_be_bytes([hello[93], hello[94]]));
        let suites: Vec<u16> = hello[95..95 + len]
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .filter(|&s| s != 0x00ff)
            .collect();
        assert_eq!(suites, vec![0x009c]);
    }

    #[test]
    fn wrong_master_secret_never_establishes() {
        let (mut client, server, _, errors) =
            legacy_pair(&[0x44; 48], &ID, &MASTER, LegacyCipher::Aes256Gcm);
        // The Finished messages fail to authenticate and DTLS drops them silently.
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(client.state(), DtlsState::Handshaking);
        assert_eq!(server.state(), DtlsState::Handshaking);
        assert!(client.send(b"x").is_err());
    }

    #[test]
    fn unexpected_session_id_fails() {
        // A different id, and a prefix of the right one: the server will not resume, and
        // without a certificate it has nothing else to offer.
        for id in [&[0x11; 32][..], &ID[..16]] {
            let (mut client, mut server, _, errors) =
                legacy_pair(&MASTER, id, &MASTER, LegacyCipher::Aes256Gcm);
            assert_eq!(client.state(), DtlsState::Closed);
            assert_eq!(server.state(), DtlsState::Closed);
            assert!(
                errors
                    .iter()
                    .any(|e| e.to_string().contains("no shared cipher")),
                "{errors:?}"
            );
            assert!(client.handle_timeout().is_ok());
            assert!(server.handle_timeout().is_ok());
            assert_eq!(client.poll_timeout(), None);
        }
    }

    #[test]
    fn bad_session_id_length_is_refused() {
        for id in [&[][..], &[0u8; 33][..]] {
            let err = DtlsChannel::legacy_client(id, &MASTER, LegacyCipher::Aes256Gcm, 1500, false)
                .unwrap_err();
            assert!(matches!(err, DtlsError::Handshake(_)));
        }
    }

    #[test]
    fn psk_and_legacy_do_not_mix() {
        let key = [7u8; PSK_LEN];
        // PSK client against a legacy server.
        let mut client =
            DtlsChannel::psk_client(&psk_client_context().unwrap(), &key, &ID, 1500, false)
                .unwrap();
        let ctx = legacy_server_context().unwrap();
        let mut server =
            DtlsChannel::legacy_server(&ctx, &ID, &MASTER, LegacyCipher::Aes256Gcm, 1500, false)
                .unwrap();
        run(&mut client, &mut server);
        assert_ne!(client.state(), DtlsState::Established);
        assert_ne!(server.state(), DtlsState::Established);
        // Legacy client against a PSK server.
        let mut client =
            DtlsChannel::legacy_client(&ID, &MASTER, LegacyCipher::Aes256Gcm, 1500, false).unwrap();
        let mut server =
            DtlsChannel::psk_server(&psk_server_context().unwrap(), &key, None, 1500, false)
                .unwrap();
        run(&mut client, &mut server);
        assert_ne!(client.state(), DtlsState::Established);
        assert_ne!(server.state(), DtlsState::Established);
        // A BAD_VER hello is harmless to both servers.
        let servers = [
            DtlsChannel::legacy_server(&ctx, &ID, &MASTER, LegacyCipher::Aes256Gcm, 1500, false)
                .unwrap(),
            DtlsChannel::psk_server(&psk_server_context().unwrap(), &key, None, 1500, false)
                .unwrap(),
        ];
        for mut server in servers {
            let mut client =
                DtlsChannel::legacy_client(&ID, &MASTER, LegacyCipher::Aes128Sha, 1500, false)
                    .unwrap();
            run(&mut client, &mut server);
            assert_ne!(client.state(), DtlsState::Established);
            assert_ne!(server.state(), DtlsState::Established);
        }
    }

    /// A server that answers with a full handshake (certificate, same cipher) instead of
    /// resuming: what a man in the middle without the master secret would do.
    fn full_handshake_server() -> DtlsChannel {
        use openssl::asn1::Asn1Time;
        use openssl::hash::MessageDigest;
        use openssl::pkey::PKey;
        use openssl::rsa::Rsa;
        use openssl::x509::{X509NameBuilder, X509};

        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "mitm").unwrap();
        let name = name.build();
        let mut cert = X509::builder().unwrap();
        cert.set_version(2).unwrap();
        cert.set_subject_name(&name).unwrap();
        cert.set_issuer_name(&name).unwrap();
        cert.set_pubkey(&key).unwrap();
        cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        cert.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        cert.sign(&key, MessageDigest::sha256()).unwrap();
        let cert = cert.build();

        let mut b = SslContextBuilder::new(SslMethod::dtls_server()).unwrap();
        b.set_min_proto_version(Some(SslVersion::DTLS1_2)).unwrap();
        b.set_max_proto_version(Some(SslVersion::DTLS1_2)).unwrap();
        b.set_cipher_list(SERVER_CIPHERS).unwrap();
        b.set_options(legacy_options());
        b.set_certificate(&cert).unwrap();
        b.set_private_key(&key).unwrap();
        let ssl = Ssl::new(&b.build()).unwrap();
        DtlsChannel::from_ssl(ssl, 1500, false, Side::Server, None).unwrap()
    }

    #[test]
    fn client_refuses_a_full_handshake() {
        let mut server = full_handshake_server();
        let mut client =
            DtlsChannel::legacy_client(&ID, &MASTER, LegacyCipher::Aes256Gcm, 1500, false).unwrap();
        let (client_errors, _) = run(&mut client, &mut server);
        assert_eq!(client.state(), DtlsState::Closed);
        assert!(
            client_errors
                .iter()
                .any(|e| matches!(e, DtlsError::NotResumed(m) if m.contains("possible MITM"))),
            "{client_errors:?}"
        );
        assert!(client.send(b"x").is_err());
    }
}
