//! One HTTPS connection to the VPN server: TCP, TLS, and bounded HTTP exchanges on top.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use std::os::fd::AsFd;

use nix::sys::socket::{getsockopt, sockopt};
use oc_proto::anyconnect::connect::{base_mtu_from_tcp, TcpInfoMtu};
use oc_proto::http::{Limits, Request, Response, ResponseReader};
use oc_proto::url::ServerUrl;
use oc_tls::{PeerInfo, TlsClient, TlsStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

use crate::error::ClientError;
use crate::proxy::ProxySettings;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// Where and how to reach the server.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: ServerUrl,
    /// `--resolve host:ip` overrides for name lookup.
    pub resolve: Vec<(String, IpAddr)>,
    pub tls: TlsClient,
    pub http: HttpOptions,
    /// `-P` or the environment's proxy: every TCP connection goes through it.
    pub proxy: Option<ProxySettings>,
}

/// How HTTP exchanges are made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpOptions {
    /// `--no-http-keepalive`: a new connection for every request.
    pub no_keepalive: bool,
    /// `--dump-http-traffic`: every request and response head to the log.
    pub dump: bool,
    /// `--tcp-keepalive`: keepalive on the TLS connection, with this idle time in seconds
    /// (0: the system's).
    pub tcp_keepalive: Option<u32>,
}

impl Endpoint {
    /// The same trust, client certificate and `--resolve` entries for another server (a
    /// GlobalProtect portal's gateway).
    pub fn with_url(&self, url: ServerUrl) -> Self {
        Self {
            url,
            ..self.clone()
        }
    }

    /// Addresses for the server: `--resolve` first, else the system resolver.
    pub fn addresses(&self) -> Result<Vec<SocketAddr>, ClientError> {
        let port = self.url.port;
        if let Ok(ip) = self.url.host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let forced: Vec<SocketAddr> = self
            .resolve
            .iter()
            .filter(|(h, _)| h.eq_ignore_ascii_case(&self.url.host))
            .map(|(_, ip)| SocketAddr::new(*ip, port))
            .collect();
        if !forced.is_empty() {
            return Ok(forced);
        }
        // Blocking lookup on purpose: the client does nothing else meanwhile, and it keeps
        // the runtime free of helper threads (see `-b`).
        let found: Vec<SocketAddr> = (self.url.host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| ClientError::Resolve {
                host: self.url.host.clone(),
                why: e.to_string(),
            })?
            .collect();
        if found.is_empty() {
            return Err(ClientError::Resolve {
                host: self.url.host.clone(),
                why: "no addresses".into(),
            });
        }
        Ok(found)
    }

    /// Where packets to the server leave towards (the host route the script keeps out of
    /// the tunnel): the proxy with one, else the server.
    pub fn first_hop(&self) -> Result<SocketAddr, ClientError> {
        let addresses = match &self.proxy {
            Some(proxy) => proxy.addresses()?,
            None => self.addresses()?,
        };
        addresses
            .first()
            .copied()
            .ok_or_else(|| ClientError::Resolve {
                host: self.url.host.clone(),
                why: "no addresses".into(),
            })
    }

    /// Opens TCP (through the proxy, if any) and TLS.
    pub async fn connect(&self) -> Result<HttpsConnection, ClientError> {
        let (tcp, addr) = match &self.proxy {
            Some(proxy) => proxy.open(&self.url.host, self.url.port).await?,
            None => self.direct_tcp().await?,
        };
        if let Some(idle) = self.http.tcp_keepalive {
            set_tcp_keepalive(&tcp, idle);
        }
        let (tls, peer) =
            tokio::time::timeout(RESPONSE_TIMEOUT, self.tls.connect(tcp, &self.url.host))
                .await
                .map_err(|_| ClientError::Timeout("the TLS handshake"))??;
        info!(
            "SSL negotiation with {} ({}, {})",
            self.url.host, peer.version, peer.cipher
        );
        Ok(HttpsConnection {
            tls,
            peer,
            addr,
            closed: false,
            http: self.http,
        })
    }

    /// TCP to the first of the server's addresses that answers.
    async fn direct_tcp(&self) -> Result<(TcpStream, SocketAddr), ClientError> {
        match first_answering(&self.addresses()?).await {
            Ok((tcp, addr)) => {
                info!("Connected to {addr}");
                Ok((tcp, addr))
            }
            Err(Some((addr, why))) => Err(ClientError::Connect { addr, why }),
            Err(None) => Err(ClientError::Resolve {
                host: self.url.host.clone(),
                why: "no addresses".into(),
            }),
        }
    }
}

/// TCP (no Nagle) to the first of `addrs` that answers within the connect timeout; else
/// the last address tried and why it failed (`None` for no addresses). The server's and
/// a proxy's connections both start here.
pub(crate) async fn first_answering(
    addrs: &[SocketAddr],
) -> Result<(TcpStream, SocketAddr), Option<(SocketAddr, String)>> {
    let mut last = None;
    for &addr in addrs {
        debug!("Attempting to connect to {addr}");
        let why = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => {
                let _ = tcp.set_nodelay(true);
                return Ok((tcp, addr));
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
        };
        last = Some((addr, why));
    }
    Err(last)
}

/// A TLS connection speaking HTTP/1.1.
#[derive(Debug)]
pub struct HttpsConnection {
    pub tls: TlsStream,
    pub peer: PeerInfo,
    pub addr: SocketAddr,
    /// The server said it will close after the last response (or `--no-http-keepalive`
    /// closes it after each).
    pub closed: bool,
    pub http: HttpOptions,
}

impl HttpsConnection {
    /// The link MTU (`X-CSTP-Base-MTU`) from the TCP connection, as openconnect derives it.
    pub fn link_mtu(&self) -> u16 {
        let tcp = self.tls.get_ref();
        let info = oc_tls::os::tcp_path_info(tcp.as_fd()).map(|i| TcpInfoMtu {
            pmtu: i.pmtu,
            rcv_mss: i.rcv_mss,
            snd_mss: i.snd_mss,
        });
        let maxseg = getsockopt(&tcp.as_fd(), sockopt::TcpMaxSeg).ok();
        base_mtu_from_tcp(info, maxseg)
    }

    /// Sends `req` and reads the whole response. `head_only` is for CONNECT, whose body is
    /// the tunnel; the bytes after the header are returned with the response.
    pub async fn exchange(
        &mut self,
        req: &Request,
        head_only: bool,
    ) -> Result<(Response, Vec<u8>), ClientError> {
        let mut out = Vec::with_capacity(512 + req.body.len());
        req.emit(&mut out);
        debug!("> {} {}", req.method, req.path);
        if self.http.dump {
            dump('>', &out);
        }
        self.tls
            .write_all(&out)
            .await
            .map_err(ClientError::io("sending the request"))?;
        let mut reader = ResponseReader::new(Limits::default(), head_only);
        let mut buf = vec![0u8; 16 * 1024];
        let read = async {
            loop {
                if let Some(resp) = reader.poll()? {
                    return Ok::<_, ClientError>(resp);
                }
                let n = self
                    .tls
                    .read(&mut buf)
                    .await
                    .map_err(ClientError::io("reading the response"))?;
                if n == 0 {
                    return Ok(reader.finish_eof()?);
                }
                reader.feed(buf.get(..n).unwrap_or_default())?;
            }
        };
        let resp = tokio::time::timeout(RESPONSE_TIMEOUT, read)
            .await
            .map_err(|_| ClientError::Timeout("the server's HTTP response"))??;
        debug!("< HTTP {} {}", resp.head.status, resp.head.reason);
        if self.http.dump {
            let mut head = format!("HTTP/1.1 {} {}\r\n", resp.head.status, resp.head.reason);
            for h in &resp.head.headers {
                head.push_str(&format!("{}: {}\r\n", h.name, h.value));
            }
            head.push_str("\r\n");
            dump('<', head.as_bytes());
            dump('<', &resp.body);
        }
        self.closed = resp.head.wants_close() || self.http.no_keepalive;
        Ok((resp, reader.take_rest()))
    }
}

/// Logs HTTP bytes a line each, behind `>` (sent) or `<` (received), as openconnect's
/// `--dump-http-traffic`; what is not text shows escaped.
pub(crate) fn dump(direction: char, bytes: &[u8]) {
    for line in String::from_utf8_lossy(bytes).lines() {
        info!("{direction} {}", line.escape_debug());
    }
}

/// `--tcp-keepalive`: SO_KEEPALIVE, and the idle time before the first probe unless 0.
/// A failure is reported and the connection goes on without (as upstream).
fn set_tcp_keepalive(tcp: &TcpStream, idle: u32) {
    use nix::sys::socket::{setsockopt, sockopt};
    if let Err(e) = setsockopt(tcp, sockopt::KeepAlive, &true) {
        warn!("Failed setsockopt(SO_KEEPALIVE) on TLS socket: {e}");
        return;
    }
    if idle > 0 {
        if let Err(e) = setsockopt(tcp, sockopt::TcpKeepIdle, &idle) {
            warn!("Failed setsockopt(TCP_KEEPIDLE) on TLS socket: {e}");
        }
    }
}
