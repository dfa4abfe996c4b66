//! RADIUS in the security module: the servers of a radcli file (secrets are root-only, so
//! only this process reads them), Access-Requests for logins and Accounting-Requests for
//! sessions, sent over UDP with radcli's timeout, retries and fail-over. The packets and
//! every decision about them are `oc_proto::radius`'s; this is the socket.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oc_proto::radius::{
    parse_client_conf, parse_servers_file, read_access_reply, read_accounting_response,
    AccessReply, AccessRequest, AccountingRequest, Attempt, ClientConf, Exchange, RadiusError,
    ServerAddr, MAX_PACKET,
};
use tracing::{debug, warn};

/// The longest a whole exchange may take, whatever the radcli file says: the network
/// process waits 30 s for the security module.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(20);

/// One server with its secret, resolved.
#[derive(Clone)]
struct Server {
    name: String,
    addr: SocketAddr,
    secret: Vec<u8>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// The servers and timers of one radcli file.
#[derive(Debug, Clone)]
pub struct RadiusClient {
    pub config: PathBuf,
    auth: Vec<Server>,
    acct: Vec<Server>,
    timeout: Duration,
    retries: u32,
    bind: Option<IpAddr>,
}

fn resolve(
    server: &ServerAddr,
    secrets: &[(String, String)],
    file: &Path,
) -> Result<Server, String> {
    let secret = ClientConf::secret_for(server, secrets).ok_or_else(|| {
        format!(
            "{}: no shared secret for RADIUS server {} (inline or in the servers file)",
            file.display(),
            server.host
        )
    })?;
    let addr = (server.host.as_str(), server.port)
        .to_socket_addrs()
        .map_err(|e| format!("{}: RADIUS server {}: {e}", file.display(), server.host))?
        .next()
        .ok_or_else(|| {
            format!(
                "{}: RADIUS server {} has no address",
                file.display(),
                server.host
            )
        })?;
    Ok(Server {
        name: format!("{}:{}", server.host, server.port),
        addr,
        secret: secret.into_bytes(),
    })
}

impl RadiusClient {
    /// Reads radcli's file and its servers file, and resolves the servers.
    pub fn load(config: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(config)
            .map_err(|e| format!("radius config {}: {e}", config.display()))?;
        let conf =
            parse_client_conf(&text, &config.display().to_string()).map_err(|e| e.to_string())?;
        for (line, key) in &conf.ignored {
            warn!(
                "{}:{line}: radcli key {key:?} is not used",
                config.display()
            );
        }
        let secrets = match &conf.servers_file {
            Some(path) => parse_servers_file(
                &std::fs::read_to_string(path)
                    .map_err(|e| format!("radius servers file {}: {e}", path.display()))?,
            ),
            None => Vec::new(),
        };
        let all = |list: &[ServerAddr]| -> Result<Vec<Server>, String> {
            list.iter().map(|s| resolve(s, &secrets, config)).collect()
        };
        let bind = match &conf.bind_address {
            Some(a) => Some(a.parse().map_err(|_| {
                format!("{}: bindaddr {a:?} is not an IP address", config.display())
            })?),
            None => None,
        };
        Ok(Self {
            config: config.to_path_buf(),
            auth: all(&conf.auth_servers)?,
            acct: all(&conf.acct_servers)?,
            timeout: Duration::from_secs(u64::from(conf.timeout)),
            retries: conf.retries,
            bind,
        })
    }

    /// Sends an Access-Request and reads the verdict.
    pub fn access(&self, request: &AccessRequest<'_>) -> Result<AccessReply, String> {
        self.exchange(
            &self.auth,
            |server| request.encode(random_byte(), random_authenticator(), &server.secret),
            |server, reply, sent| {
                let (identifier, authenticator) = identity_of(sent)?;
                read_access_reply(reply, identifier, &authenticator, &server.secret)
            },
        )
    }

    /// Sends an Accounting-Request and waits for its acknowledgement.
    pub fn account(&self, request: &AccountingRequest<'_>) -> Result<(), String> {
        self.exchange(
            &self.acct,
            |server| request.encode(random_byte(), &server.secret),
            |server, reply, sent| read_accounting_response(reply, sent, &server.secret),
        )
    }

    /// Sends to each server in turn, as the schedule says, until a reply passes `read`.
    fn exchange<T>(
        &self,
        servers: &[Server],
        mut encode: impl FnMut(&Server) -> Result<Vec<u8>, RadiusError>,
        read: impl Fn(&Server, &[u8], &[u8]) -> Result<T, RadiusError>,
    ) -> Result<T, String> {
        if servers.is_empty() {
            return Err(format!(
                "{}: no RADIUS server for this",
                self.config.display()
            ));
        }
        let started = Instant::now();
        let mut schedule = Exchange::new(servers.len(), self.retries, self.timeout);
        let mut current: Option<(UdpSocket, Vec<u8>)> = None;
        let mut last_problem = String::from("no answer");
        loop {
            let Attempt::Send {
                server,
                first,
                wait,
            } = schedule.next_attempt()
            else {
                return Err(format!(
                    "no valid answer from any RADIUS server of {} (last: {last_problem})",
                    self.config.display()
                ));
            };
            let left = EXCHANGE_LIMIT.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(format!(
                    "no valid RADIUS answer within {} s (last: {last_problem})",
                    EXCHANGE_LIMIT.as_secs()
                ));
            }
            let target = &servers[server];
            if first || current.is_none() {
                let bytes = encode(target).map_err(|e| e.to_string())?;
                let socket = self
                    .socket_for(target)
                    .map_err(|e| format!("RADIUS: {e}"))?;
                current = Some((socket, bytes));
            }
            let Some((socket, bytes)) = &current else {
                continue;
            };
            if let Err(e) = socket.send(bytes) {
                last_problem = format!("cannot send to {}: {e}", target.name);
                continue;
            }
            match wait_for(socket, wait.min(left), |reply| read(target, reply, bytes)) {
                Ok(answer) => return Ok(answer),
                Err(problem) => {
                    debug!("RADIUS server {}: {problem}", target.name);
                    last_problem = problem;
                }
            }
        }
    }

    fn socket_for(&self, server: &Server) -> std::io::Result<UdpSocket> {
        let local = match (self.bind, server.addr) {
            (Some(ip), _) => SocketAddr::new(ip, 0),
            (None, SocketAddr::V4(_)) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            (None, SocketAddr::V6(_)) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
        };
        let socket = UdpSocket::bind(local)?;
        socket.connect(server.addr)?;
        Ok(socket)
    }
}

/// Reads datagrams until one passes `read` or `wait` is over; forged or stray ones are
/// skipped (a forger must not be able to end the wait).
fn wait_for<T>(
    socket: &UdpSocket,
    wait: Duration,
    read: impl Fn(&[u8]) -> Result<T, RadiusError>,
) -> Result<T, String> {
    let deadline = Instant::now() + wait;
    let mut buf = vec![0u8; MAX_PACKET];
    let mut problem = format!("no answer within {} s", wait.as_secs());
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(problem);
        }
        socket
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        match socket.recv(&mut buf) {
            Ok(n) => match read(&buf[..n]) {
                Ok(answer) => return Ok(answer),
                Err(e) => {
                    warn!("RADIUS: ignored a reply: {e}");
                    problem = e.to_string();
                }
            },
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(problem)
            }
            // ICMP port unreachable and the like: this server is not there.
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The identifier and authenticator of a request as sent.
fn identity_of(sent: &[u8]) -> Result<(u8, [u8; 16]), RadiusError> {
    match (sent.get(1), sent.get(4..20)) {
        (Some(&id), Some(auth)) => Ok((id, auth.try_into().unwrap_or([0; 16]))),
        _ => Err(RadiusError::Unexpected("nothing sent".into())),
    }
}

fn random_byte() -> u8 {
    let mut b = [0u8; 1];
    crate::secmod::fill_random(&mut b);
    b[0]
}

fn random_authenticator() -> [u8; 16] {
    let mut a = [0u8; 16];
    crate::secmod::fill_random(&mut a);
    a
}
