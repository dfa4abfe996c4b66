//! Address leases for tunnel clients, IPv4 and IPv6, from the global pool or a per-user /
//! per-group network.
//!
//! One lease table covers every network, so two pools that overlap can never hand out the
//! same address twice. The first host of each network is the server's own tunnel address
//! and is never leased. With `predictable-ips` the search starts at a position derived from
//! the user name, so a user tends to get the same address in every session (and across
//! server restarts); otherwise it starts at a random position.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use thiserror::Error;

/// Most candidates examined before giving up on a network that looks full.
const MAX_PROBES: u128 = 1 << 20;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PoolError {
    #[error("no free IPv4 address left in {0}")]
    ExhaustedV4(Ipv4Net),
    #[error("no free IPv6 prefix left in {0}")]
    ExhaustedV6(Ipv6Net),
    #[error("IPv6 network {network} is too small for /{prefix} client prefixes")]
    BadV6Prefix { network: Ipv6Net, prefix: u8 },
    #[error("cannot assign explicit IP {addr}: it is {why}")]
    ExplicitUnusable { addr: IpAddr, why: &'static str },
}

/// The addresses one session holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lease {
    pub v4: Option<Ipv4Addr>,
    /// The client's address with the prefix it owns (`/128` unless `ipv6-subnet-prefix`).
    pub v6: Option<Ipv6Net>,
}

/// What to lease from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRequest<'a> {
    pub user: &'a str,
    pub v4: Option<Ipv4Net>,
    pub v6: Option<(Ipv6Net, u8)>,
    pub predictable: bool,
    /// Random start for non-predictable leases (the shell passes fresh randomness).
    pub seed: u64,
    pub explicit_v4: Option<Ipv4Addr>,
    pub explicit_v6: Option<Ipv6Addr>,
}

/// The server's own address inside a network (its first host).
pub fn server_address_v4(net: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()).wrapping_add(1))
}

pub fn server_address_v6(net: Ipv6Net) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(net.network()).wrapping_add(1))
}

/// FNV-1a: stable across runs and platforms, unlike std's randomised hasher.
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[derive(Debug, Default)]
pub struct AddressPool {
    v4: HashSet<Ipv4Addr>,
    /// Network address of each leased IPv6 client prefix.
    v6: HashSet<Ipv6Addr>,
}

impl AddressPool {
    pub fn new() -> Self {
        Self::default()
    }

    /// Leases an address of each configured family, or nothing at all.
    pub fn lease(&mut self, req: &LeaseRequest<'_>) -> Result<Lease, PoolError> {
        let start = if req.predictable {
            stable_hash(req.user)
        } else {
            req.seed
        };
        let v4 = match req.v4 {
            Some(net) => Some(self.pick_v4(net, start, req.explicit_v4)?),
            None => None,
        };
        let v6 = match req.v6 {
            // Nothing is recorded until both families succeeded.
            Some((net, prefix)) => Some(self.pick_v6(net, prefix, start, req.explicit_v6)?),
            None => None,
        };
        if let Some(addr) = v4 {
            self.v4.insert(addr);
        }
        if let Some(net) = v6 {
            self.v6.insert(net.network());
        }
        Ok(Lease { v4, v6 })
    }

    pub fn release(&mut self, lease: &Lease) {
        if let Some(addr) = lease.v4 {
            self.v4.remove(&addr);
        }
        if let Some(net) = lease.v6 {
            self.v6.remove(&net.network());
        }
    }

    /// Leased IPv4 addresses and IPv6 prefixes.
    pub fn leased(&self) -> (usize, usize) {
        (self.v4.len(), self.v6.len())
    }

    pub fn is_leased(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => self.v4.contains(&a),
            IpAddr::V6(a) => self.v6.contains(&a),
        }
    }

    fn pick_v4(
        &mut self,
        net: Ipv4Net,
        start: u64,
        explicit: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, PoolError> {
        if let Some(addr) = explicit {
            // As ocserv: never the network's own, broadcast or server address.
            let why = if addr == net.network() {
                Some("the network address of the pool")
            } else if addr == net.broadcast() && net.prefix_len() < 31 {
                Some("the broadcast address of the pool")
            } else if addr == server_address_v4(net) {
                Some("the server's address")
            } else if self.v4.contains(&addr) {
                Some("in use")
            } else {
                None
            };
            return match why {
                Some(why) => Err(PoolError::ExplicitUnusable {
                    addr: addr.into(),
                    why,
                }),
                None => Ok(addr),
            };
        }
        let base = u32::from(net.network());
        // Usable hosts: skip the network address, the server's address and broadcast.
        let size = 1u64 << (32 - u32::from(net.prefix_len()));
        if size < 4 {
            return Err(PoolError::ExhaustedV4(net));
        }
        let hosts = size - 3;
        for i in 0..hosts.min(MAX_PROBES as u64) {
            let offset = 2 + (start.wrapping_add(i) % hosts);
            let addr = Ipv4Addr::from(base.wrapping_add(offset as u32));
            if !self.v4.contains(&addr) {
                return Ok(addr);
            }
        }
        Err(PoolError::ExhaustedV4(net))
    }

    fn pick_v6(
        &mut self,
        net: Ipv6Net,
        prefix: u8,
        start: u64,
        explicit: Option<Ipv6Addr>,
    ) -> Result<Ipv6Net, PoolError> {
        let bad = PoolError::BadV6Prefix {
            network: net,
            prefix,
        };
        if prefix > 128 || prefix <= net.prefix_len() {
            return Err(bad);
        }
        if let Some(addr) = explicit {
            let lease = Ipv6Net::new(addr, prefix).map_err(|_| bad)?;
            // As ocserv: the client's prefix may not hold the server's address.
            let why = if lease.contains(&server_address_v6(net)) {
                Some("in the prefix of the server's address")
            } else if self.v6.contains(&lease.network()) {
                Some("in use")
            } else {
                None
            };
            return match why {
                Some(why) => Err(PoolError::ExplicitUnusable {
                    addr: addr.into(),
                    why,
                }),
                None => Ok(lease),
            };
        }
        let slots_bits = u32::from(prefix - net.prefix_len());
        let slots = if slots_bits >= 127 {
            u128::MAX
        } else {
            1u128 << slots_bits
        };
        // Slot 0 holds the server's own address (and the network address for /128 leases).
        let usable = slots.saturating_sub(if prefix == 128 { 2 } else { 1 });
        if usable == 0 {
            return Err(PoolError::ExhaustedV6(net));
        }
        let step = if prefix == 128 {
            1u128
        } else {
            1u128 << (128 - u32::from(prefix))
        };
        let first = if prefix == 128 { 2u128 } else { 1u128 };
        let base = u128::from(net.network());
        for i in 0..usable.min(MAX_PROBES) {
            let slot = first + (u128::from(start).wrapping_add(i) % usable);
            let addr = Ipv6Addr::from(base.wrapping_add(slot.wrapping_mul(step)));
            if !self.v6.contains(&addr) {
                return Ipv6Net::new(addr, prefix).map_err(|_| bad);
            }
        }
        Err(PoolError::ExhaustedV6(net))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn req<'a>(user: &'a str, predictable: bool, seed: u64) -> LeaseRequest<'a> {
        LeaseRequest {
            user,
            v4: Some("10.9.0.0/29".parse().unwrap()),
            v6: Some(("fd00:9::/64".parse().unwrap(), 128)),
            predictable,
            seed,
            explicit_v4: None,
            explicit_v6: None,
        }
    }

    #[test]
    fn no_duplicates_until_exhausted_then_freed() {
        let mut pool = AddressPool::new();
        let mut seen = HashSet::new();
        // A /29 has 8 addresses: network, server (.1), broadcast are never leased.
        for i in 0..5 {
            let lease = pool.lease(&req(&format!("u{i}"), true, 0)).unwrap();
            let v4 = lease.v4.unwrap();
            assert!(seen.insert(v4), "{v4} leased twice");
            assert!(!["10.9.0.0", "10.9.0.1", "10.9.0.7"].contains(&v4.to_string().as_str()));
            assert_eq!(lease.v6.unwrap().prefix_len(), 128);
        }
        let err = pool.lease(&req("u9", true, 0)).unwrap_err();
        assert_eq!(err, PoolError::ExhaustedV4("10.9.0.0/29".parse().unwrap()));
        let some = Lease {
            v4: Some("10.9.0.3".parse().unwrap()),
            v6: None,
        };
        pool.release(&some);
        assert_eq!(
            pool.lease(&req("u9", true, 0)).unwrap().v4,
            Some("10.9.0.3".parse().unwrap())
        );
    }

    #[test]
    fn predictable_is_stable_per_user() {
        let mut a = AddressPool::new();
        let mut b = AddressPool::new();
        let big = |user| LeaseRequest {
            v4: Some("10.0.0.0/16".parse().unwrap()),
            ..req(user, true, 0)
        };
        let first = a.lease(&big("alice")).unwrap();
        b.lease(&big("bob")).unwrap();
        assert_eq!(b.lease(&big("alice")).unwrap(), first);
        a.release(&first);
        assert_eq!(a.lease(&big("alice")).unwrap(), first);
        // Random starts differ with the seed.
        let r1 = AddressPool::new()
            .lease(&LeaseRequest {
                seed: 1,
                predictable: false,
                ..big("x")
            })
            .unwrap();
        let r2 = AddressPool::new()
            .lease(&LeaseRequest {
                seed: 2,
                predictable: false,
                ..big("x")
            })
            .unwrap();
        assert_ne!(r1.v4, r2.v4);
    }

    #[test]
    fn ipv6_subnets_and_explicit_addresses() {
        let mut pool = AddressPool::new();
        let r = LeaseRequest {
            v4: None,
            v6: Some(("fd00:1::/48".parse().unwrap(), 64)),
            ..req("alice", true, 0)
        };
        let lease = pool.lease(&r).unwrap();
        let v6 = lease.v6.unwrap();
        assert_eq!(v6.prefix_len(), 64);
        assert!("fd00:1::/48".parse::<Ipv6Net>().unwrap().contains(&v6));
        assert_ne!(v6.network(), "fd00:1::".parse::<Ipv6Addr>().unwrap());
        let bad = LeaseRequest {
            v6: Some(("fd00:1::/64".parse().unwrap(), 48)),
            ..r
        };
        assert!(matches!(
            pool.lease(&bad),
            Err(PoolError::BadV6Prefix { .. })
        ));
        let explicit = LeaseRequest {
            explicit_v4: Some("10.9.0.5".parse().unwrap()),
            ..req("bob", true, 0)
        };
        assert_eq!(
            pool.lease(&explicit).unwrap().v4,
            Some("10.9.0.5".parse().unwrap())
        );
        assert!(pool.lease(&explicit).is_err());
        assert!(pool.is_leased("10.9.0.5".parse().unwrap()));
        assert_eq!(
            server_address_v4("10.9.0.0/24".parse().unwrap()).to_string(),
            "10.9.0.1"
        );
    }

    /// upstream's test-explicit-ip: the network, broadcast and server addresses are never
    /// given out, nor an IPv6 prefix holding the server's address; others are.
    #[test]
    fn explicit_addresses_the_server_cannot_give_are_refused() {
        let mut pool = AddressPool::new();
        let v4 = |addr: &str| LeaseRequest {
            v4: Some("192.168.1.0/24".parse().unwrap()),
            v6: None,
            explicit_v4: Some(addr.parse().unwrap()),
            ..req("test", true, 0)
        };
        for (addr, why) in [
            ("192.168.1.0", "network address"),
            ("192.168.1.255", "broadcast"),
            ("192.168.1.1", "server's address"),
        ] {
            let err = pool.lease(&v4(addr)).unwrap_err();
            assert!(err.to_string().contains(addr), "{err}");
            assert!(err.to_string().contains(why), "{err}");
        }
        assert!(pool.lease(&v4("192.168.1.201")).is_ok());
        let v6 = |addr: &str, prefix: u8| LeaseRequest {
            v4: None,
            v6: Some(("fda9:4efe:7e3b:3ea::/64".parse().unwrap(), prefix)),
            explicit_v6: Some(addr.parse().unwrap()),
            ..req("test", true, 0)
        };
        let err = pool.lease(&v6("fda9:4efe:7e3b:3ea::1", 128)).unwrap_err();
        assert!(err.to_string().contains("server's address"), "{err}");
        // A /120 prefix around ::5 holds the server's ::1 too.
        assert!(pool.lease(&v6("fda9:4efe:7e3b:3ea::5", 120)).is_err());
        assert!(pool.lease(&v6("fda9:4efe:7e3b:3ea::5", 128)).is_ok());
    }
}
