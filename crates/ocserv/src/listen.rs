//! The network process's sockets, opened as root before it confines itself: the TCP
//! listeners and the shared DTLS socket (inside `listen-netns` when set), the metrics
//! listener and the occtl control socket.

use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::config::Config;
use crate::worker::WorkerError;

/// Pending connections the kernel queues for accept: std's 128 overflows under a
/// connection flood, leaving attackers' connections hanging half-open.
const LISTEN_BACKLOG: i32 = 4096;

/// Sockets opened before privileges are dropped.
pub(crate) struct Sockets {
    pub(crate) tcp: Vec<std::net::TcpListener>,
    pub(crate) udp: Option<std::net::UdpSocket>,
    pub(crate) metrics: Option<std::net::TcpListener>,
    /// occtl's control socket and its path.
    pub(crate) control: Option<(std::os::unix::net::UnixListener, PathBuf)>,
    /// The host's own addresses where the clients come from (exempt from bans).
    pub(crate) host_addrs: Vec<IpAddr>,
}

/// Every socket the network process serves on. The clients' ones (TCP and DTLS) are
/// made inside `listen-netns` when it is set, the admin ones (metrics, occtl) here.
pub(crate) fn bind_all(config: &Config) -> Result<Sockets, WorkerError> {
    let (sockets, host_addrs) = match &config.listen_netns {
        Some(name) => in_netns(name, || (client_sockets(config), host_addresses()))?,
        None => (client_sockets(config), host_addresses()),
    };
    let (tcp, udp) = sockets?;
    let metrics = config
        .metrics_listen
        .map(|addr| bind(&addr.to_string(), false))
        .transpose()?;
    let control = match config.occtl_socket() {
        Some(path) => Some((bind_control(&path)?, path)),
        None => None,
    };
    Ok(Sockets {
        tcp,
        udp,
        metrics,
        control,
        host_addrs,
    })
}

/// The addresses of this network namespace's interfaces (none if they cannot be read:
/// then nobody is exempt from bans).
fn host_addresses() -> Vec<IpAddr> {
    let Ok(interfaces) = nix::ifaddrs::getifaddrs() else {
        warn!("cannot list the host's addresses; its own are not exempt from bans");
        return Vec::new();
    };
    interfaces
        .filter_map(|i| i.address)
        .filter_map(|a| {
            a.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .collect()
}

type ClientSockets = (Vec<std::net::TcpListener>, Option<std::net::UdpSocket>);

/// The TCP listeners and the DTLS socket.
fn client_sockets(config: &Config) -> Result<ClientSockets, WorkerError> {
    let port = config.tcp_port.ok_or_else(|| {
        WorkerError::Setup(format!("{}: tcp-port is not set", config.path.display()))
    })?;
    // Without listen-host, ocserv listens on every address of both families: 0.0.0.0 and
    // [::] (IPv6 only). A host without IPv6 still serves IPv4.
    let tcp = match &config.listen_host {
        Some(host) => vec![bind(&format!("{}:{port}", bracket(host)), false)?],
        None => {
            let mut tcp = vec![bind(&format!("0.0.0.0:{port}"), false)?];
            // [::] next to 0.0.0.0: IPv6 only, or the two would collide.
            match bind(&format!("[::]:{port}"), true) {
                Ok(listener) => tcp.push(listener),
                Err(e) => warn!("{e}; serving IPv4 only"),
            }
            tcp
        }
    };
    // One UDP socket for every session's DTLS: on udp-listen-host, else listen-host, else
    // on [::] taking IPv4 too (dual-stack), or 0.0.0.0 on a host without IPv6.
    let udp = match config.udp_port {
        Some(udp_port) => {
            let host = config
                .udp_listen_host
                .as_ref()
                .or(config.listen_host.as_ref());
            let socket = match host {
                Some(host) => bind_udp(&format!("{}:{udp_port}", bracket(host)))?,
                None => bind_udp(&format!("[::]:{udp_port}")).or_else(|e| {
                    warn!("{e}; DTLS on IPv4 only");
                    bind_udp(&format!("0.0.0.0:{udp_port}"))
                })?,
            };
            Some(socket)
        }
        None => None,
    };
    Ok((tcp, udp))
}

/// Runs `f` with this thread inside the network namespace `name` (a name under
/// /run/netns, as `ip netns` makes them, or a path), then returns to ours: sockets made
/// there stay there, everything else (the tun device) is made here.
fn in_netns<T>(name: &str, f: impl FnOnce() -> T) -> Result<T, WorkerError> {
    use nix::sched::{setns, CloneFlags};
    let path = if name.contains('/') {
        PathBuf::from(name)
    } else {
        Path::new("/run/netns").join(name)
    };
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        WorkerError::Setup(format!("listen-netns {name}: {what}: {e}"))
    };
    let target = std::fs::File::open(&path).map_err(|e| fail(&path.display().to_string(), &e))?;
    let home = std::fs::File::open("/proc/thread-self/ns/net")
        .map_err(|e| fail("our own network namespace", &e))?;
    setns(&target, CloneFlags::CLONE_NEWNET).map_err(|e| fail("entering it", &e))?;
    let result = f();
    if let Err(e) = setns(&home, CloneFlags::CLONE_NEWNET) {
        // The tun device would be made in the wrong namespace: better not to start.
        return Err(fail("returning from it", &e));
    }
    Ok(result)
}

fn bracket(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// A listening TCP socket on `addr`; an IPv6 one takes IPv4 clients too unless `v6_only`.
fn bind(addr: &str, v6_only: bool) -> Result<std::net::TcpListener, WorkerError> {
    use nix::sys::socket::{listen, Backlog, SockType};
    let fd = bound_socket(addr, SockType::Stream, v6_only)?;
    let fail = |e: nix::Error| WorkerError::Bind {
        addr: addr.to_string(),
        source: e.into(),
    };
    listen(&fd, Backlog::new(LISTEN_BACKLOG).map_err(fail)?).map_err(fail)?;
    Ok(std::net::TcpListener::from(fd))
}

/// The DTLS socket on `addr` (an IPv6 one takes IPv4 peers too).
fn bind_udp(addr: &str) -> Result<std::net::UdpSocket, WorkerError> {
    let fd = bound_socket(addr, nix::sys::socket::SockType::Datagram, false)?;
    Ok(std::net::UdpSocket::from(fd))
}

/// A non-blocking socket of `kind` bound to `addr` (TCP ones with SO_REUSEADDR, so a
/// restart does not wait for old connections); an IPv6 one takes IPv4 peers too unless
/// `v6_only`.
fn bound_socket(
    addr: &str,
    kind: nix::sys::socket::SockType,
    v6_only: bool,
) -> Result<OwnedFd, WorkerError> {
    use nix::sys::socket::{
        bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage,
    };
    use std::net::ToSocketAddrs;
    use std::os::fd::AsRawFd;
    let proto = if kind == SockType::Stream {
        "TCP"
    } else {
        "UDP"
    };
    let fail = |source: std::io::Error| WorkerError::Bind {
        addr: format!("{proto} {addr}"),
        source,
    };
    let sa = addr
        .to_socket_addrs()
        .map_err(fail)?
        .next()
        .ok_or_else(|| fail(std::io::Error::other("resolves to no address")))?;
    let family = if sa.is_ipv6() {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let errno = |e: nix::Error| fail(e.into());
    let fd = socket(
        family,
        kind,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(errno)?;
    if kind == SockType::Stream {
        setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(errno)?;
    }
    if sa.is_ipv6() {
        setsockopt(&fd, sockopt::Ipv6V6Only, &v6_only).map_err(errno)?;
    }
    bind(fd.as_raw_fd(), &SockaddrStorage::from(sa)).map_err(errno)?;
    Ok(fd)
}

/// Binds the control socket, readable and writable by root only (occtl needs root, as
/// with ocserv). A socket left by an earlier run is replaced; any other file is an error.
fn bind_control(path: &Path) -> Result<std::os::unix::net::UnixListener, WorkerError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let fail = |source: std::io::Error| WorkerError::Bind {
        addr: format!("occtl-socket-file {}", path.display()),
        source,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(fail(std::io::Error::other(
                "exists and is not a socket; not replacing it",
            )));
        }
        std::fs::remove_file(path).map_err(fail)?;
    }
    // No window in which others could connect: create it under a tight umask.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = std::os::unix::net::UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound.map_err(fail)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    listener.set_nonblocking(true).map_err(fail)?;
    Ok(listener)
}
