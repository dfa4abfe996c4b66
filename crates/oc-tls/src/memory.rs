//! A TLS connection over memory rather than a socket: Pulse's EAP-TTLS, where the records
//! travel inside EAP packets of the login ([`oc_proto::pulse::ttls`]). The client's side
//! ([`TlsClient::memory_client`]) presents the HTTPS connection's client certificate and
//! judges the server as [`TlsClient::check_peer`] does; the server's side is for test
//! gateways.

use std::io::{self, Read, Write};

use oc_proto::pulse::ttls::InnerTls;
use openssl::ssl::{ErrorCode, Ssl, SslContext, SslStream};

use crate::{describe_ssl_error, TlsClient, TlsError};

/// Plaintext read per call.
const READ_CHUNK: usize = 16 * 1024;

/// The "socket" under the TLS connection: what the peer sent, and what we send.
#[derive(Debug, Default)]
struct Pipe {
    incoming: Vec<u8>,
    read: usize,
    outgoing: Vec<u8>,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.incoming.get(self.read..).unwrap_or_default();
        if left.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = left.len().min(buf.len());
        buf.get_mut(..n)
            .unwrap_or_default()
            .copy_from_slice(left.get(..n).unwrap_or_default());
        self.read += n;
        if self.read == self.incoming.len() {
            self.incoming.clear();
            self.read = 0;
        }
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outgoing.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Who checks the peer once the handshake is done.
enum Judge {
    /// The client: the server's certificate, as for the HTTPS connection.
    Client(Box<TlsClient>),
    /// The server: OpenSSL's own verification of a client certificate, if it asked.
    Server,
}

/// One TLS connection over memory.
pub struct MemoryTls {
    stream: SslStream<Pipe>,
    judge: Judge,
    established: bool,
    /// Plaintext written before the handshake finished.
    held: Vec<u8>,
    plaintext: Vec<u8>,
}

impl std::fmt::Debug for MemoryTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTls")
            .field("established", &self.established)
            .finish()
    }
}

impl TlsClient {
    /// A TLS client over memory for `host`, with this client's trust, pins and client
    /// certificate (EAP-TTLS inside Pulse's login).
    pub fn memory_client(&self, host: &str) -> Result<MemoryTls, TlsError> {
        let mut ssl = self.new_ssl(&self.ctx, host)?;
        ssl.set_connect_state();
        MemoryTls::new(ssl, Judge::Client(Box::new(self.clone())))
    }
}

impl MemoryTls {
    /// A TLS server over memory on `ctx` (its certificate, and the client certificates
    /// it asks for).
    pub fn server(ctx: &SslContext) -> Result<Self, TlsError> {
        let mut ssl = Ssl::new(ctx)?;
        ssl.set_accept_state();
        Self::new(ssl, Judge::Server)
    }

    fn new(ssl: Ssl, judge: Judge) -> Result<Self, TlsError> {
        Ok(Self {
            stream: SslStream::new(ssl, Pipe::default())?,
            judge,
            established: false,
            held: Vec::new(),
            plaintext: Vec::new(),
        })
    }

    /// Who errors name.
    fn peer(&self) -> &'static str {
        match self.judge {
            Judge::Client(_) => "the server inside EAP-TTLS",
            Judge::Server => "the client inside EAP-TTLS",
        }
    }

    /// Moves the handshake on; true once it is done (and the peer judged).
    fn handshake(&mut self) -> Result<bool, TlsError> {
        match self.stream.do_handshake() {
            Ok(()) => {}
            Err(e) if matches!(e.code(), ErrorCode::WANT_READ | ErrorCode::WANT_WRITE) => {
                return Ok(false)
            }
            Err(e) => {
                let mut why = describe_ssl_error(&e);
                if matches!(&self.judge, Judge::Client(c) if c.config.client_cert.is_none()) {
                    why.push_str(
                        " (a server asks for a client certificate inside EAP-TTLS when the \
                         realm logs in by certificate: give it with -c and -k)",
                    );
                }
                return Err(TlsError::Handshake {
                    peer: self.peer().into(),
                    why,
                });
            }
        }
        if let Judge::Client(client) = &self.judge {
            client.check_peer(self.stream.ssl())?;
        }
        self.established = true;
        let held = std::mem::take(&mut self.held);
        self.write_all(&held)?;
        Ok(true)
    }

    fn write_all(&mut self, plaintext: &[u8]) -> Result<(), TlsError> {
        let mut rest = plaintext;
        while !rest.is_empty() {
            let n = self
                .stream
                .ssl_write(rest)
                .map_err(|e| TlsError::Handshake {
                    peer: self.peer().into(),
                    why: describe_ssl_error(&e),
                })?;
            rest = rest.get(n..).unwrap_or_default();
        }
        Ok(())
    }

    /// Everything the peer's records decrypt to, so far.
    fn read_plaintext(&mut self) -> Result<(), TlsError> {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            match self.stream.ssl_read(&mut buf) {
                Ok(n) => self
                    .plaintext
                    .extend_from_slice(buf.get(..n).unwrap_or_default()),
                Err(e)
                    if matches!(
                        e.code(),
                        ErrorCode::WANT_READ | ErrorCode::WANT_WRITE | ErrorCode::ZERO_RETURN
                    ) =>
                {
                    return Ok(())
                }
                Err(e) => {
                    return Err(TlsError::Handshake {
                        peer: self.peer().into(),
                        why: describe_ssl_error(&e),
                    })
                }
            }
        }
    }
}

impl InnerTls for MemoryTls {
    fn receive(&mut self, ciphertext: &[u8]) -> Result<(), String> {
        self.stream.get_mut().incoming.extend_from_slice(ciphertext);
        if !self.established && !self.handshake().map_err(|e| e.to_string())? {
            return Ok(());
        }
        self.read_plaintext().map_err(|e| e.to_string())
    }

    fn send(&mut self, plaintext: &[u8]) -> Result<(), String> {
        if self.established {
            self.write_all(plaintext).map_err(|e| e.to_string())
        } else {
            self.held.extend_from_slice(plaintext);
            Ok(())
        }
    }

    fn take_ciphertext(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.stream.get_mut().outgoing)
    }

    fn take_plaintext(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.plaintext)
    }

    fn is_established(&self) -> bool {
        self.established
    }

    fn peer_name(&self) -> Option<String> {
        let cert = self.stream.ssl().peer_certificate()?;
        crate::server::cert_field(&cert, "2.5.4.3")
            .into_iter()
            .next()
    }
}
