//! Interface addresses, MTU and link state over rtnetlink.
//!
//! The `ioctl`s that set an address or the MTU go through an `AF_INET` socket, which
//! LD_PRELOAD socket emulators (socket_wrapper, as upstream ocserv's test suite runs the
//! server) replace with a Unix socket: the ioctl then fails. Netlink sockets pass through
//! them untouched, and netlink also sets IPv6 addresses without a second socket family.
//!
//! The request builders and the acknowledgement parser are plain functions over bytes;
//! [`configure`] is the thin shell that sends them on a `NETLINK_ROUTE` socket.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    bind, recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};
use thiserror::Error;

/// rtnetlink.h / netlink.h / if_addr.h / if_link.h constants.
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_F_NODAD: u8 = 0x02;
const IFLA_MTU: u16 = 4;
const IFF_UP: u32 = 0x1;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const HEADER_LEN: usize = 16;

#[derive(Debug, Error)]
pub enum NetlinkError {
    #[error("no network interface named {0:?}")]
    NoInterface(String),
    #[error("netlink socket: {0}")]
    Socket(#[from] nix::Error),
    #[error("{what} on {interface}: {source}")]
    Refused {
        what: String,
        interface: String,
        source: std::io::Error,
    },
    #[error("malformed netlink answer: {0}")]
    Malformed(&'static str),
}

/// What to set on one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceSettings {
    /// Addresses with their prefix lengths (the network the interface is on).
    pub addresses: Vec<(IpAddr, u8)>,
    pub mtu: u32,
}

fn header(buf: &mut Vec<u8>, kind: u16, flags: u16, seq: u32) {
    buf.extend_from_slice(&0u32.to_ne_bytes()); // length, filled in by `finish`
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
}

fn attribute(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

fn finish(mut buf: Vec<u8>) -> Vec<u8> {
    let len = buf.len() as u32;
    buf[..4].copy_from_slice(&len.to_ne_bytes());
    buf
}

/// `ip address replace ADDR/PREFIX dev INDEX` (IPv6 without duplicate detection: the
/// address is the server's own on a device only it uses).
pub fn address_request(seq: u32, index: u32, addr: IpAddr, prefix: u8) -> Vec<u8> {
    let no_dad = if addr.is_ipv6() { IFA_F_NODAD } else { 0 };
    let flags = NLM_F_CREATE | NLM_F_REPLACE;
    address_message(RTM_NEWADDR, flags, no_dad, seq, index, (addr, prefix))
}

/// `ip address del ADDR/PREFIX dev INDEX`.
pub fn address_delete_request(seq: u32, index: u32, addr: IpAddr, prefix: u8) -> Vec<u8> {
    address_message(RTM_DELADDR, 0, 0, seq, index, (addr, prefix))
}

fn address_message(
    kind: u16,
    flags: u16,
    address_flags: u8,
    seq: u32,
    index: u32,
    (addr, prefix): (IpAddr, u8),
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    header(&mut buf, kind, flags, seq);
    let (family, bytes) = match addr {
        IpAddr::V4(a) => (AF_INET, a.octets().to_vec()),
        IpAddr::V6(a) => (AF_INET6, a.octets().to_vec()),
    };
    // struct ifaddrmsg: family, prefix length, flags, scope (universe), index.
    buf.extend_from_slice(&[family, prefix, address_flags, 0]);
    buf.extend_from_slice(&index.to_ne_bytes());
    attribute(&mut buf, IFA_LOCAL, &bytes);
    attribute(&mut buf, IFA_ADDRESS, &bytes);
    finish(buf)
}

/// `ip link set dev INDEX mtu MTU up`.
pub fn link_request(seq: u32, index: u32, mtu: u32) -> Vec<u8> {
    let mut buf = Vec::with_capacity(48);
    header(&mut buf, RTM_NEWLINK, 0, seq);
    // struct ifinfomsg: family, pad, type, index, flags, change mask.
    buf.extend_from_slice(&[0, 0, 0, 0]);
    buf.extend_from_slice(&index.to_ne_bytes());
    buf.extend_from_slice(&IFF_UP.to_ne_bytes());
    buf.extend_from_slice(&IFF_UP.to_ne_bytes());
    attribute(&mut buf, IFLA_MTU, &mtu.to_ne_bytes());
    finish(buf)
}

/// The kernel's answer to request `seq`: `Ok(None)` for an answer to another request,
/// `Ok(Some(errno))` for its acknowledgement (0 = done).
pub fn parse_ack(answer: &[u8], seq: u32) -> Result<Option<i32>, NetlinkError> {
    let field = |at: usize, len: usize| {
        answer
            .get(at..at + len)
            .ok_or(NetlinkError::Malformed("short message"))
    };
    let len = u32::from_ne_bytes(field(0, 4)?.try_into().unwrap_or_default()) as usize;
    if len < HEADER_LEN || len > answer.len() {
        return Err(NetlinkError::Malformed("bad message length"));
    }
    let kind = u16::from_ne_bytes(field(4, 2)?.try_into().unwrap_or_default());
    let answer_seq = u32::from_ne_bytes(field(8, 4)?.try_into().unwrap_or_default());
    if kind != NLMSG_ERROR || answer_seq != seq {
        return Ok(None);
    }
    let errno = i32::from_ne_bytes(field(HEADER_LEN, 4)?.try_into().unwrap_or_default());
    Ok(Some(-errno))
}

/// Sets `settings` on the interface `name` and brings it up.
pub fn configure(name: &str, settings: &InterfaceSettings) -> Result<(), NetlinkError> {
    let index = interface_index(name)?;
    let mut requests: Vec<(String, Vec<u8>)> = settings
        .addresses
        .iter()
        .zip(1u32..)
        .map(|((addr, prefix), seq)| {
            (
                format!("setting address {addr}/{prefix}"),
                address_request(seq, index, *addr, *prefix),
            )
        })
        .collect();
    let seq = requests.len() as u32 + 1;
    requests.push((
        format!("setting MTU {} and link up", settings.mtu),
        link_request(seq, index, settings.mtu),
    ));
    send_all(name, requests, &[])
}

/// Puts `addresses` on the interface `name` (`present`) or takes them off it; an
/// address already so is no error.
pub fn set_addresses(
    name: &str,
    addresses: &[(IpAddr, u8)],
    present: bool,
) -> Result<(), NetlinkError> {
    let index = interface_index(name)?;
    let requests = addresses
        .iter()
        .zip(1u32..)
        .map(|((addr, prefix), seq)| {
            if present {
                let what = format!("setting address {addr}/{prefix}");
                (what, address_request(seq, index, *addr, *prefix))
            } else {
                let what = format!("removing address {addr}/{prefix}");
                (what, address_delete_request(seq, index, *addr, *prefix))
            }
        })
        .collect();
    // EADDRNOTAVAIL: the address was not there.
    send_all(name, requests, &[99])
}

fn interface_index(name: &str) -> Result<u32, NetlinkError> {
    nix::net::if_::if_nametoindex(name).map_err(|_| NetlinkError::NoInterface(name.to_string()))
}

/// Sends each request (numbered from 1) and waits for its acknowledgement; an errno in
/// `harmless` counts as done.
fn send_all(
    name: &str,
    requests: Vec<(String, Vec<u8>)>,
    harmless: &[i32],
) -> Result<(), NetlinkError> {
    let sock = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    bind(sock.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
    for ((what, request), seq) in requests.into_iter().zip(1u32..) {
        sendto(
            sock.as_raw_fd(),
            &request,
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        )?;
        let errno = wait_ack(&sock, seq)?;
        if errno != 0 && !harmless.contains(&errno) {
            return Err(NetlinkError::Refused {
                what,
                interface: name.to_string(),
                source: std::io::Error::from_raw_os_error(errno),
            });
        }
    }
    Ok(())
}

fn wait_ack(sock: &OwnedFd, seq: u32) -> Result<i32, NetlinkError> {
    let mut buf = [0u8; 4096];
    loop {
        let n = recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        if let Some(errno) = parse_ack(&buf[..n], seq)? {
            return Ok(errno);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_ne_bytes(b[at..at + 2].try_into().unwrap())
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn address_requests_carry_local_and_address_attributes() {
        let v4 = address_request(7, 42, "10.11.0.1".parse().unwrap(), 16);
        assert_eq!(u32_at(&v4, 0) as usize, v4.len());
        assert_eq!(u16_at(&v4, 4), RTM_NEWADDR);
        assert_eq!(
            u16_at(&v4, 6),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
        );
        assert_eq!(u32_at(&v4, 8), 7);
        // ifaddrmsg: family, prefix, flags, scope, index.
        assert_eq!(&v4[16..20], &[AF_INET, 16, 0, 0]);
        assert_eq!(u32_at(&v4, 20), 42);
        // Two 8-byte attributes: IFA_LOCAL then IFA_ADDRESS, each with the 4 address bytes.
        assert_eq!(v4.len(), 24 + 8 + 8);
        assert_eq!((u16_at(&v4, 24), u16_at(&v4, 26)), (8, IFA_LOCAL));
        assert_eq!(&v4[28..32], &[10, 11, 0, 1]);
        assert_eq!((u16_at(&v4, 32), u16_at(&v4, 34)), (8, IFA_ADDRESS));

        let v6 = address_request(8, 3, "fd00::1".parse().unwrap(), 64);
        assert_eq!(&v6[16..20], &[AF_INET6, 64, IFA_F_NODAD, 0]);
        assert_eq!(v6.len(), 24 + 20 + 20);
        assert_eq!(u32_at(&v6, 0) as usize, v6.len());
    }

    #[test]
    fn delete_requests_name_the_same_address() {
        let del = address_delete_request(9, 42, "10.11.0.1".parse().unwrap(), 16);
        let add = address_request(9, 42, "10.11.0.1".parse().unwrap(), 16);
        assert_eq!(u16_at(&del, 4), RTM_DELADDR);
        assert_eq!(u16_at(&del, 6), NLM_F_REQUEST | NLM_F_ACK);
        // The same address message after the header.
        assert_eq!(del[16..], add[16..]);
    }

    #[test]
    fn link_request_sets_mtu_and_up() {
        let req = link_request(3, 9, 1434);
        assert_eq!(u32_at(&req, 0) as usize, req.len());
        assert_eq!(u16_at(&req, 4), RTM_NEWLINK);
        assert_eq!(u32_at(&req, 20), 9);
        assert_eq!(u32_at(&req, 24), IFF_UP);
        assert_eq!(u32_at(&req, 28), IFF_UP);
        assert_eq!((u16_at(&req, 32), u16_at(&req, 34)), (8, IFLA_MTU));
        assert_eq!(u32_at(&req, 36), 1434);
    }

    fn ack(seq: u32, errno: i32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&36u32.to_ne_bytes());
        b.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        b.extend_from_slice(&0u16.to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&(-errno).to_ne_bytes());
        b.extend_from_slice(&[0; 16]);
        b
    }

    #[test]
    fn acknowledgements_are_matched_by_sequence_and_carry_errno() {
        assert_eq!(parse_ack(&ack(5, 0), 5).unwrap(), Some(0));
        assert_eq!(parse_ack(&ack(5, 22), 5).unwrap(), Some(22));
        assert_eq!(parse_ack(&ack(4, 22), 5).unwrap(), None);
        for bad in [&[][..], &[1, 2, 3][..], &ack(5, 0)[..16]] {
            assert!(parse_ack(bad, 5).is_err(), "{bad:?}");
        }
        let mut lying = ack(5, 0);
        lying[0] = 200;
        assert!(parse_ack(&lying, 5).is_err());
    }

    #[test]
    fn unknown_interfaces_are_named() {
        let settings = InterfaceSettings {
            addresses: vec![],
            mtu: 1400,
        };
        let err = configure("no-such-dev0", &settings).unwrap_err();
        assert!(err.to_string().contains("no-such-dev0"), "{err}");
    }
}
