//! DTLS for the AnyConnect data channel, without sockets or clocks of its own.
//!
//! A [`DtlsChannel`] takes received datagrams ([`DtlsChannel::handle_datagram`]) and hands
//! back datagrams to send ([`DtlsChannel::poll_transmit`]); the shell owns the UDP socket
//! and calls [`DtlsChannel::handle_timeout`] when [`DtlsChannel::poll_timeout`] says
//! OpenSSL wants to retransmit a handshake flight. OpenSSL runs over a [`DatagramPipe`]:
//! two queues in which one read or write is exactly one datagram.
//!
//! PSK-NEGOTIATE (what openconnect and ocserv use by default): the pre-shared key is
//! exported from the CSTP TLS session with the label `EXPORTER-openconnect-psk`
//! ([`psk_from_tls`]), and the client names its tunnel by putting the server's App-ID in
//! the ClientHello `session_id`, which takes a fake session offered for resumption.
//!
//! Legacy (resumption) mode: the client sent a 48-byte master secret in the CONNECT
//! request, the server answered a session id and a cipher, and the DTLS handshake resumes
//! that session (abbreviated handshake, no certificates). See [`DtlsChannel::legacy_client`]
//! and [`DtlsChannel::legacy_server`].

mod cert;
mod legacy;

pub(crate) use cert::cert_client_builder;
pub use cert::{cert_server_context, DtlsVersions};
pub use legacy::{
    legacy_server_context, LegacyCipher, LEGACY_MASTER_SECRET_LEN, LEGACY_SESSION_ID_LEN,
};

use crate::ffi;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::OnceLock;
use std::time::Duration;

use openssl::ex_data::Index;
use openssl::ssl::{
    ErrorCode, Ssl, SslContext, SslContextBuilder, SslMethod, SslOptions, SslRef, SslSession,
    SslStream, SslVersion,
};
use thiserror::Error;

/// Exporter label both openconnect and ocserv use for the DTLS PSK.
pub const PSK_LABEL: &str = "EXPORTER-openconnect-psk";
pub const PSK_LEN: usize = 32;
/// Ciphers for PSK-NEGOTIATE: plain PSK key exchange, as ocserv's priority string allows.
const PSK_CIPHERS: &str = "PSK-AES256-GCM-SHA384:PSK-AES128-GCM-SHA256:PSK-CHACHA20-POLY1305:PSK-AES256-CBC-SHA384:PSK-AES128-CBC-SHA256";
/// `PSK-AES256-GCM-SHA384`, recorded in the fake session (any suite of the list works).
const PSK_SESSION_CIPHER: u16 = 0x00a9;
/// Encrypt-then-MAC is not in the `openssl` crate's option names; openconnect disables it.
const NO_ENCRYPT_THEN_MAC: SslOptions = SslOptions::from_bits_retain(1 << 19);
/// `SSL_OP_ALLOW_CLIENT_RENEGOTIATION` (OpenSSL 3 refuses client-initiated renegotiation
/// without it); not in the `openssl` crate's option names.
const ALLOW_CLIENT_RENEGOTIATION: SslOptions = SslOptions::from_bits_retain(1 << 8);
/// Datagrams waiting in each direction before the oldest are dropped (a peer cannot make
/// us queue without bound).
const MAX_QUEUED: usize = 64;

#[derive(Debug, Error)]
pub enum DtlsError {
    #[error("DTLS setup failed: {0}")]
    Setup(#[from] openssl::error::ErrorStack),
    #[error("DTLS handshake failed: {0}")]
    Handshake(String),
    /// A legacy handshake that was not the expected resumption.
    #[error("{0}")]
    NotResumed(&'static str),
    #[error("DTLS handshake gave up after too many retransmissions")]
    HandshakeTimeout,
    #[error("DTLS record could not be processed: {0}")]
    Record(String),
    #[error("DTLS peer closed the channel")]
    Closed,
    #[error("legacy DTLS cipher {0} is client-only (OpenSSL has no DTLS1_BAD_VER server)")]
    UnsupportedCipher(&'static str),
}

/// One queue per direction; one read or write is one datagram. Buffers of datagrams that
/// were read or sent are kept for the next ones, so the packet path does not allocate.
#[derive(Debug, Default)]
pub struct DatagramPipe {
    inbound: VecDeque<Vec<u8>>,
    outbound: VecDeque<Vec<u8>>,
    spare: Vec<Vec<u8>>,
}

impl DatagramPipe {
    fn buffer_with(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(bytes);
        buf
    }

    fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.len() < MAX_QUEUED {
            self.spare.push(buf);
        }
    }
}

impl Read for DatagramPipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(datagram) = self.inbound.pop_front() else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        // A datagram larger than the buffer is cut, as recv(2) would.
        let n = datagram.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), datagram.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.recycle(datagram);
        Ok(n)
    }
}

impl Write for DatagramPipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.outbound.len() >= MAX_QUEUED {
            self.outbound.pop_front();
        }
        let datagram = self.buffer_with(buf);
        self.outbound.push_back(datagram);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn psk_index() -> Result<Index<Ssl, [u8; PSK_LEN]>, DtlsError> {
    static INDEX: OnceLock<Option<Index<Ssl, [u8; PSK_LEN]>>> = OnceLock::new();
    INDEX
        .get_or_init(|| Ssl::new_ex_index().ok())
        .ok_or_else(|| DtlsError::Handshake("cannot allocate OpenSSL ex-data index".into()))
}

/// Derives the PSK-NEGOTIATE key from the CSTP TLS session.
pub fn psk_from_tls(tls: &SslRef) -> Result<[u8; PSK_LEN], DtlsError> {
    let mut key = [0u8; PSK_LEN];
    tls.export_keying_material(&mut key, PSK_LABEL, None)?;
    Ok(key)
}

fn copy_key(ssl: &SslRef, out: &mut [u8]) -> Result<usize, openssl::error::ErrorStack> {
    let key = psk_index()
        .ok()
        .and_then(|idx| ssl.ex_data(idx))
        .ok_or_else(openssl::error::ErrorStack::get)?;
    let dst = out
        .get_mut(..PSK_LEN)
        .ok_or_else(openssl::error::ErrorStack::get)?;
    dst.copy_from_slice(key);
    Ok(PSK_LEN)
}

fn psk_builder(method: SslMethod) -> Result<SslContextBuilder, DtlsError> {
    let mut b = SslContext::builder(method)?;
    b.set_min_proto_version(Some(SslVersion::DTLS1_2))?;
    b.set_max_proto_version(Some(SslVersion::DTLS1_2))?;
    b.set_cipher_list(PSK_CIPHERS)?;
    b.set_options(
        SslOptions::NO_QUERY_MTU
            | SslOptions::NO_TICKET
            | SslOptions::NO_RENEGOTIATION
            | NO_ENCRYPT_THEN_MAC,
    );
    Ok(b)
}

/// Client context for PSK-NEGOTIATE (reusable for every connection).
pub fn psk_client_context() -> Result<SslContext, DtlsError> {
    let mut b = psk_builder(SslMethod::dtls_client())?;
    b.set_psk_client_callback(|ssl, _hint, identity, psk| {
        // The identity is ignored by ocserv; openconnect sends "psk".
        let id = identity
            .get_mut(..4)
            .ok_or_else(openssl::error::ErrorStack::get)?;
        id.copy_from_slice(b"psk\0");
        copy_key(ssl, psk)
    });
    Ok(b.build())
}

/// Server context for PSK-NEGOTIATE.
pub fn psk_server_context() -> Result<SslContext, DtlsError> {
    let mut b = psk_builder(SslMethod::dtls_server())?;
    b.set_options(SslOptions::CIPHER_SERVER_PREFERENCE);
    // openconnect's GnuTLS build rekeys DTLS by renegotiating in place, without the
    // renegotiation_info extension (its DTLS hello carries no extensions). Allowing it is
    // safe here: the attack on unsafe renegotiation needs a session of the attacker's own,
    // and every session on this context needs the PSK exported from the victim's TLS.
    b.clear_options(SslOptions::NO_RENEGOTIATION);
    b.set_options(SslOptions::ALLOW_UNSAFE_LEGACY_RENEGOTIATION | ALLOW_CLIENT_RENEGOTIATION);
    b.set_psk_server_callback(|ssl, _identity, psk| copy_key(ssl, psk));
    Ok(b.build())
}

/// DER of a minimal `SSL_SESSION` (OpenSSL's ASN.1 layout): version 1, protocol version,
/// cipher id, session id, master key. Enough to be offered for resumption.
fn session_der(protocol: u16, cipher: u16, session_id: &[u8], master_key: &[u8]) -> Vec<u8> {
    fn octets(out: &mut Vec<u8>, bytes: &[u8]) {
        out.push(0x04);
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
    // version 1, then the protocol version as a minimal (DER) non-negative INTEGER:
    // 0xFEFD needs a 0x00 pad byte, 0x0100 (DTLS1_BAD_VER) must not have one.
    let mut body = vec![0x02, 0x01, 0x01];
    let mut int = vec![0x00];
    int.extend_from_slice(&protocol.to_be_bytes());
    while int.len() > 1 && int.first() == Some(&0) && int.get(1).is_some_and(|b| b & 0x80 == 0) {
        int.remove(0);
    }
    body.push(0x02);
    body.push(int.len() as u8);
    body.extend_from_slice(&int);
    octets(&mut body, &cipher.to_be_bytes());
    octets(&mut body, session_id);
    octets(&mut body, master_key);
    let mut der = vec![0x30, body.len() as u8];
    der.extend_from_slice(&body);
    der
}

/// Where a channel stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsState {
    Handshaking,
    Established,
    Closed,
}

/// One DTLS association, client or server side.
pub struct DtlsChannel {
    stream: SslStream<DatagramPipe>,
    state: DtlsState,
    /// One decrypted record at a time (a DTLS record carries at most 16 KiB).
    record: Vec<u8>,
    /// Legacy mode: the handshake must be a resumption; the message explains a failure.
    require_resumption: Option<&'static str>,
}

impl std::fmt::Debug for DtlsChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsChannel")
            .field("state", &self.state)
            .finish()
    }
}

/// Record MTU for a UDP path whose IP-level MTU is `link_mtu`.
fn record_mtu(link_mtu: u32, ipv6: bool) -> u32 {
    link_mtu
        .saturating_sub(if ipv6 { 40 + 8 } else { 20 + 8 })
        .max(256)
}

/// Which end of an association a channel is.
enum Side<'a> {
    /// A client, offering this session for resumption in its ClientHello if any.
    Client(Option<&'a SslSession>),
    Server,
}

impl DtlsChannel {
    /// Wraps a configured `ssl` as the given side.
    fn from_ssl(
        mut ssl: Ssl,
        link_mtu: u32,
        ipv6: bool,
        side: Side<'_>,
        require_resumption: Option<&'static str>,
    ) -> Result<Self, DtlsError> {
        // With NO_QUERY_MTU OpenSSL takes this MTU instead of asking the (pipe) BIO.
        ssl.set_mtu(record_mtu(link_mtu, ipv6))?;
        match side {
            Side::Client(offer) => {
                if let Some(session) = offer {
                    ffi::offer_session(&mut ssl, session)?;
                }
                ssl.set_connect_state();
            }
            Side::Server => ssl.set_accept_state(),
        }
        let stream = SslStream::new(ssl, DatagramPipe::default())?;
        Ok(Self {
            stream,
            state: DtlsState::Handshaking,
            record: vec![0u8; 16 * 1024 + 256],
            require_resumption,
        })
    }

    /// A PSK-NEGOTIATE client naming its tunnel by `app_id` (the server's X-DTLS-App-ID).
    /// The ClientHello is ready in [`DtlsChannel::poll_transmit`] right away.
    pub fn psk_client(
        ctx: &SslContext,
        key: &[u8; PSK_LEN],
        app_id: &[u8],
        link_mtu: u32,
        ipv6: bool,
    ) -> Result<Self, DtlsError> {
        if app_id.is_empty() || app_id.len() > 32 {
            return Err(DtlsError::Handshake(format!(
                "App-ID must be 1 to 32 bytes, got {}",
                app_id.len()
            )));
        }
        let mut master = [0u8; 48];
        openssl::rand::rand_bytes(&mut master)?;
        // The session's version must be the one we pin (DTLS 1.2), or OpenSSL silently
        // replaces it and the App-ID never reaches the server.
        let der = session_der(0xfefd, PSK_SESSION_CIPHER, app_id, &master);
        let session = SslSession::from_der(&der)?;
        let mut ssl = Ssl::new(ctx)?;
        ssl.set_ex_data(psk_index()?, *key);
        let mut channel = Self::from_ssl(ssl, link_mtu, ipv6, Side::Client(Some(&session)), None)?;
        channel.drive_handshake()?;
        Ok(channel)
    }

    /// The server side of a PSK-NEGOTIATE association; `ciphers` narrows the context's
    /// suites for this association (OpenSSL cipher-list syntax).
    pub fn psk_server(
        ctx: &SslContext,
        key: &[u8; PSK_LEN],
        ciphers: Option<&str>,
        link_mtu: u32,
        ipv6: bool,
    ) -> Result<Self, DtlsError> {
        let mut ssl = Ssl::new(ctx)?;
        if let Some(list) = ciphers {
            ssl.set_cipher_list(list)?;
        }
        ssl.set_ex_data(psk_index()?, *key);
        Self::from_ssl(ssl, link_mtu, ipv6, Side::Server, None)
    }

    /// The negotiated protocol, e.g. `DTLSv1.2` (`DTLSv0.9` for Cisco's pre-standard one).
    pub fn version(&self) -> &'static str {
        self.stream.ssl().version_str()
    }

    pub fn state(&self) -> DtlsState {
        self.state
    }

    fn drive_handshake(&mut self) -> Result<(), DtlsError> {
        match self.stream.do_handshake() {
            Ok(()) => match self.require_resumption {
                Some(why) if !self.stream.ssl().session_reused() => {
                    self.state = DtlsState::Closed;
                    Err(DtlsError::NotResumed(why))
                }
                _ => {
                    self.state = DtlsState::Established;
                    Ok(())
                }
            },
            Err(e) if e.code() == ErrorCode::WANT_READ || e.code() == ErrorCode::WANT_WRITE => {
                Ok(())
            }
            Err(e) => {
                self.state = DtlsState::Closed;
                Err(DtlsError::Handshake(e.to_string()))
            }
        }
    }

    /// Feeds one received datagram. During the handshake it advances it; afterwards the
    /// decrypted payloads come out of [`DtlsChannel::recv`].
    pub fn handle_datagram(&mut self, datagram: &[u8]) -> Result<(), DtlsError> {
        let pipe = self.stream.get_mut();
        if pipe.inbound.len() >= MAX_QUEUED {
            pipe.inbound.pop_front();
        }
        let buf = pipe.buffer_with(datagram);
        pipe.inbound.push_back(buf);
        if self.state == DtlsState::Handshaking {
            self.drive_handshake()?;
        }
        Ok(())
    }

    /// Next datagram to send to the peer.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.stream.get_mut().outbound.pop_front()
    }

    /// True when half the outgoing queue is taken (it holds 64 datagrams and then drops the
    /// oldest), so the shell should send now; until then records encrypted one by one can
    /// wait to leave together.
    pub fn transmit_due(&self) -> bool {
        self.stream.get_ref().outbound.len() >= MAX_QUEUED / 2
    }

    /// Hands every datagram waiting to be sent to `send`, in order (the packet path: the
    /// buffers are reused).
    pub fn transmit(&mut self, mut send: impl FnMut(&[u8])) {
        let pipe = self.stream.get_mut();
        while let Some(datagram) = pipe.outbound.pop_front() {
            send(&datagram);
            pipe.recycle(datagram);
        }
    }

    /// How long until [`DtlsChannel::handle_timeout`] is due (handshake retransmission).
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.state != DtlsState::Handshaking {
            return None;
        }
        ffi::retransmit_timeout(self.stream.ssl())
    }

    pub fn handle_timeout(&mut self) -> Result<(), DtlsError> {
        if self.state != DtlsState::Handshaking {
            return Ok(());
        }
        if !ffi::handle_retransmit(self.stream.ssl()) {
            self.state = DtlsState::Closed;
            return Err(DtlsError::HandshakeTimeout);
        }
        Ok(())
    }

    /// Encrypts `payload` as one record (one datagram in [`DtlsChannel::poll_transmit`]).
    pub fn send(&mut self, payload: &[u8]) -> Result<(), DtlsError> {
        if self.state != DtlsState::Established {
            return Err(DtlsError::Record("channel not established".into()));
        }
        self.stream
            .ssl_write(payload)
            .map(|_| ())
            .map_err(|e| DtlsError::Record(e.to_string()))
    }

    /// The next decrypted record, if a complete one is waiting. Records that fail to
    /// authenticate are dropped by OpenSSL (as DTLS requires) and never surface here.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, DtlsError> {
        if self.state != DtlsState::Established {
            return Ok(None);
        }
        match self.stream.ssl_read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.code() == ErrorCode::WANT_READ => Ok(None),
            Err(e) if e.code() == ErrorCode::ZERO_RETURN => {
                self.state = DtlsState::Closed;
                Err(DtlsError::Closed)
            }
            Err(e) => Err(DtlsError::Record(e.to_string())),
        }
    }

    /// Decrypts every complete record waiting and hands each to `on_record`. An error means
    /// the channel is finished (closed by the peer, or broken).
    pub fn drain(&mut self, mut on_record: impl FnMut(&[u8])) -> Result<(), DtlsError> {
        let mut record = std::mem::take(&mut self.record);
        let result = loop {
            match self.recv(&mut record) {
                Ok(Some(n)) => on_record(record.get(..n).unwrap_or_default()),
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.record = record;
        result
    }

    /// Largest payload one record can carry.
    pub fn data_mtu(&self) -> usize {
        ffi::data_mtu(self.stream.ssl())
    }

    /// The negotiated cipher suite, e.g. `PSK-AES256-GCM-SHA384`.
    pub fn cipher(&self) -> String {
        self.stream
            .ssl()
            .current_cipher()
            .map(|c| c.name().to_string())
            .unwrap_or_default()
    }

    /// Sends a close_notify (best effort).
    pub fn close(&mut self) {
        let _ = self.stream.shutdown();
        self.state = DtlsState::Closed;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn shuttle(from: &mut DtlsChannel, to: &mut DtlsChannel) -> usize {
        let mut n = 0;
        while let Some(d) = from.poll_transmit() {
            assert!(
                d.len() <= 1472,
                "datagram of {} bytes exceeds the MTU",
                d.len()
            );
            to.handle_datagram(&d).unwrap();
            n += 1;
        }
        n
    }

    fn pair(app_id: &[u8]) -> (DtlsChannel, DtlsChannel, Vec<u8>) {
        let key = [7u8; PSK_LEN];
        let mut client =
            DtlsChannel::psk_client(&psk_client_context().unwrap(), &key, app_id, 1500, false)
                .unwrap();
        let hello = client.poll_transmit().unwrap();
        let mut server =
            DtlsChannel::psk_server(&psk_server_context().unwrap(), &key, None, 1500, false)
                .unwrap();
        server.handle_datagram(&hello).unwrap();
        for _ in 0..10 {
            if shuttle(&mut server, &mut client) + shuttle(&mut client, &mut server) == 0 {
                break;
            }
        }
        (client, server, hello)
    }

    #[test]
    fn client_hello_carries_app_id_at_ocserv_offset() {
        let app_id = [0xabu8; 32];
        let (client, server, hello) = pair(&app_id);
        // ocserv finds the session by the ClientHello session_id: length at byte 59, the id
        // from byte 60 (13-byte record header + 12-byte handshake header + version + random).
        assert_eq!(hello[0], 22);
        assert_eq!(hello[13], 1);
        assert_eq!(hello[59], 32);
        assert_eq!(&hello[60..92], &app_id);
        assert_eq!(client.state(), DtlsState::Established);
        assert_eq!(server.state(), DtlsState::Established);
        assert_eq!(client.cipher(), "PSK-AES256-GCM-SHA384");
    }

    #[test]
    fn records_flow_both_ways_and_tampering_is_dropped() {
        let (mut client, mut server, _) = pair(&[1u8; 32]);
        client.send(b"\x00ping").unwrap();
        let record = client.poll_transmit().unwrap();
        let mut tampered = record.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        server.handle_datagram(&tampered).unwrap();
        let mut buf = [0u8; 2048];
        assert_eq!(server.recv(&mut buf).unwrap(), None);
        server.handle_datagram(&record).unwrap();
        let n = server.recv(&mut buf).unwrap().unwrap();
        assert_eq!(&buf[..n], b"\x00ping");
        server.send(b"\x00pong").unwrap();
        shuttle(&mut server, &mut client);
        let n = client.recv(&mut buf).unwrap().unwrap();
        assert_eq!(&buf[..n], b"\x00pong");
        // 1500 - 20 - 8 = 1472 record bytes; GCM costs 13 + 8 + 16.
        assert_eq!(client.data_mtu(), 1472 - 37);
    }

    #[test]
    fn transmit_hands_out_records_in_order_and_reuses_buffers() {
        let (mut client, mut server, _) = pair(&[5u8; 32]);
        for i in 0..3u8 {
            client.send(&[0, i]).unwrap();
        }
        let mut sent = Vec::new();
        client.transmit(|d| sent.push(d.to_vec()));
        assert_eq!(sent.len(), 3);
        assert!(client.poll_transmit().is_none());
        // Half the queue waiting makes a send due, well before the queue drops anything.
        for _ in 0..MAX_QUEUED / 2 - 1 {
            client.send(&[0, 7]).unwrap();
        }
        assert!(!client.transmit_due());
        client.send(&[0, 7]).unwrap();
        assert!(client.transmit_due());
        client.transmit(|_| {});
        assert!(!client.transmit_due());
        let spare = client.stream.get_ref().spare.len();
        assert!(spare >= 3, "{spare} buffers kept");
        client.send(&[0, 9]).unwrap();
        assert_eq!(client.stream.get_ref().spare.len(), spare - 1);
        let mut buf = [0u8; 64];
        for (i, d) in sent.iter().enumerate() {
            server.handle_datagram(d).unwrap();
            let n = server.recv(&mut buf).unwrap().unwrap();
            assert_eq!(&buf[..n], &[0, i as u8]);
        }
    }

    #[test]
    fn wrong_key_never_completes_and_garbage_is_harmless() {
        let mut client = DtlsChannel::psk_client(
            &psk_client_context().unwrap(),
            &[1u8; PSK_LEN],
            &[2u8; 32],
            1500,
            false,
        )
        .unwrap();
        let mut server = DtlsChannel::psk_server(
            &psk_server_context().unwrap(),
            &[9u8; PSK_LEN],
            None,
            1500,
            false,
        )
        .unwrap();
        server.handle_datagram(b"not dtls at all").unwrap();
        for _ in 0..10 {
            while let Some(d) = client.poll_transmit() {
                let _ = server.handle_datagram(&d);
            }
            while let Some(d) = server.poll_transmit() {
                let _ = client.handle_datagram(&d);
            }
        }
        // DTLS drops records that fail to authenticate, so a wrong key never completes.
        assert_ne!(client.state(), DtlsState::Established);
        assert_ne!(server.state(), DtlsState::Established);
        assert!(client.send(b"x").is_err());
    }

    #[test]
    fn session_der_is_accepted_by_openssl() {
        let der = session_der(0xfefd, PSK_SESSION_CIPHER, &[3u8; 32], &[4u8; 48]);
        let session = SslSession::from_der(&der).unwrap();
        assert_eq!(session.id(), &[3u8; 32]);
        assert_eq!(session.master_key_len(), 48);
    }
}
