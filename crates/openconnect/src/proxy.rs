//! Reaching the server through a proxy (`-P`, `https_proxy`): the TCP connections to the
//! proxy and the bytes of `oc_proto::client_proxy`'s handshakes, which decide everything.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use oc_proto::client_proxy::auth::{AllowedMethods, Fresh, NegotiatorHandle, ProxyAuth};
use oc_proto::client_proxy::http_connect::{HttpConnect, HttpStep};
use oc_proto::client_proxy::socks5::{Socks5Connect, SocksStep};
use oc_proto::client_proxy::{ProxyError, ProxyKind, ProxyUrl};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, info};

use crate::error::ClientError;

/// The whole handshake with the proxy, authentication rounds included.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// The proxy to go through and how to talk to it.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    pub url: ProxyUrl,
    pub methods: AllowedMethods,
    pub user_agent: String,
    /// `--dump-http-traffic`: the CONNECT requests and answers to the log.
    pub dump: bool,
}

impl ProxySettings {
    /// A TCP connection that leads to `host:port`, and the proxy's address (the peer the
    /// vpnc-script must route around the tunnel).
    pub async fn open(
        &self,
        host: &str,
        port: u16,
    ) -> Result<(TcpStream, SocketAddr), ClientError> {
        let handshake = async {
            match self.url.kind {
                ProxyKind::Http => self.http_connect(host, port).await,
                ProxyKind::Socks5 => self.socks_connect(host, port).await,
            }
        };
        tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
            .await
            .map_err(|_| ClientError::Timeout("the proxy's handshake"))?
    }

    async fn http_connect(
        &self,
        host: &str,
        port: u16,
    ) -> Result<(TcpStream, SocketAddr), ClientError> {
        let desktop = NegotiatorHandle(std::sync::Arc::new(oc_tls::gssapi::DesktopCredentials));
        let auth = ProxyAuth::new(self.methods, self.url.credentials.clone())
            .with_negotiator(desktop, &self.url.host);
        let mut handshake = HttpConnect::new(host, port, &self.user_agent, auth);
        let (mut tcp, mut addr) = self.tcp().await?;
        info!("Requesting HTTP proxy connection to {}", handshake.target());
        loop {
            let request = handshake.request();
            if self.dump {
                crate::transport::dump('>', &request);
            }
            self.send(&mut tcp, &request).await?;
            match self.http_reply(&mut tcp, &mut handshake).await? {
                HttpStep::Connected => return Ok((tcp, addr)),
                HttpStep::Retry { reconnect: true } => {
                    debug!("Reconnecting to proxy {}", self.url.host);
                    (tcp, addr) = self.tcp().await?;
                }
                HttpStep::Retry { reconnect: false } | HttpStep::NeedMore => {}
            }
        }
    }

    async fn http_reply(
        &self,
        tcp: &mut TcpStream,
        handshake: &mut HttpConnect,
    ) -> Result<HttpStep, ClientError> {
        let mut buf = vec![0u8; 4096];
        loop {
            let n = self.receive(tcp, &mut buf).await?;
            let received = buf.get(..n).unwrap_or_default();
            if self.dump {
                crate::transport::dump('<', received);
            }
            let step = match n {
                0 => handshake.eof(&fresh()),
                _ => handshake.feed(received, &fresh()),
            };
            match step.map_err(|e| self.error(e))? {
                HttpStep::NeedMore if n == 0 => return Err(self.error(ProxyError::Closed)),
                HttpStep::NeedMore => {}
                other => return Ok(other),
            }
        }
    }

    async fn socks_connect(
        &self,
        host: &str,
        port: u16,
    ) -> Result<(TcpStream, SocketAddr), ClientError> {
        let credentials = self
            .url
            .credentials
            .clone()
            .filter(|_| self.methods.allows_socks_password());
        let mut handshake =
            Socks5Connect::new(host, port, credentials).map_err(|e| self.error(e))?;
        let (mut tcp, addr) = self.tcp().await?;
        info!("Requesting SOCKS proxy connection to {host}:{port}");
        self.send(&mut tcp, &handshake.greeting()).await?;
        let mut buf = vec![0u8; 512];
        loop {
            let n = self.receive(&mut tcp, &mut buf).await?;
            if n == 0 {
                return Err(self.error(ProxyError::Closed));
            }
            let step = handshake.feed(buf.get(..n).unwrap_or_default());
            match step.map_err(|e| self.error(e))? {
                SocksStep::NeedMore => {}
                SocksStep::Send(bytes) => self.send(&mut tcp, &bytes).await?,
                SocksStep::Connected => return Ok((tcp, addr)),
            }
        }
    }

    /// The proxy's addresses.
    pub fn addresses(&self) -> Result<Vec<SocketAddr>, ClientError> {
        // Blocking lookup on purpose, as for the server (see `Endpoint::addresses`).
        let addrs: Vec<SocketAddr> = (self.url.host.as_str(), self.url.port)
            .to_socket_addrs()
            .map_err(|e| self.unreachable(format!("cannot resolve {}: {e}", self.url.host)))?
            .collect();
        match addrs.is_empty() {
            true => Err(self.unreachable(format!("{} has no addresses", self.url.host))),
            false => Ok(addrs),
        }
    }

    /// A TCP connection to the first of the proxy's addresses that answers.
    async fn tcp(&self) -> Result<(TcpStream, SocketAddr), ClientError> {
        match crate::transport::first_answering(&self.addresses()?).await {
            Ok((tcp, addr)) => {
                info!("Connected to proxy {addr}");
                Ok((tcp, addr))
            }
            Err(last) => {
                let why = last.map_or_else(String::new, |(addr, why)| format!("{addr}: {why}"));
                Err(self.unreachable(why))
            }
        }
    }

    fn unreachable(&self, why: String) -> ClientError {
        ClientError::ProxyConnect {
            proxy: self.url.to_string(),
            why,
        }
    }

    async fn send(&self, tcp: &mut TcpStream, bytes: &[u8]) -> Result<(), ClientError> {
        tcp.write_all(bytes)
            .await
            .map_err(ClientError::io("writing to the proxy"))
    }

    async fn receive(&self, tcp: &mut TcpStream, buf: &mut [u8]) -> Result<usize, ClientError> {
        tcp.read(buf)
            .await
            .map_err(ClientError::io("reading from the proxy"))
    }

    fn error(&self, source: ProxyError) -> ClientError {
        ClientError::Proxy {
            proxy: self.url.to_string(),
            source,
        }
    }
}

/// Randomness and the time for an authentication answer (Digest's client nonce,
/// NTLM's client challenge and timestamp).
fn fresh() -> Fresh {
    let mut random = [0u8; 16];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    if openssl::rand::rand_bytes(&mut random).is_err() {
        // Never in practice; the time keeps the nonce unique, and the server's own
        // challenge protects both methods.
        random = now.as_nanos().to_le_bytes();
    }
    Fresh {
        random,
        unix_time: now.as_secs(),
    }
}
