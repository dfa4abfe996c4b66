//! Which tunnel owns a destination address: the table the tun reader consults for every
//! packet. Entries are networks (a client's /32 or /128, its IPv6 prefix, the iroutes
//! behind it); lookups try each prefix length in use, longest first, so the cost is a
//! few hash lookups whatever the number of sessions.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

#[derive(Debug)]
pub struct RouteTable<T> {
    entries: HashMap<IpNet, (u64, T)>,
    /// Prefix lengths in use per family, longest first.
    v4_lens: Vec<u8>,
    v6_lens: Vec<u8>,
}

impl<T> Default for RouteTable<T> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            v4_lens: Vec::new(),
            v6_lens: Vec::new(),
        }
    }
}

impl<T> RouteTable<T> {
    /// Routes `net` to connection `owner` (replacing any previous owner: a reconnect).
    pub fn insert(&mut self, net: IpNet, owner: u64, target: T) {
        let net = net.trunc();
        let lens = match net {
            IpNet::V4(_) => &mut self.v4_lens,
            IpNet::V6(_) => &mut self.v6_lens,
        };
        if !lens.contains(&net.prefix_len()) {
            lens.push(net.prefix_len());
            lens.sort_unstable_by(|a, b| b.cmp(a));
        }
        self.entries.insert(net, (owner, target));
    }

    /// Removes `net` if connection `owner` still holds it.
    pub fn remove(&mut self, net: IpNet, owner: u64) {
        let net = net.trunc();
        if self.entries.get(&net).is_some_and(|(o, _)| *o == owner) {
            self.entries.remove(&net);
        }
    }

    /// The most specific entry containing `dst`.
    pub fn lookup(&self, dst: IpAddr) -> Option<&T> {
        let lens = match dst {
            IpAddr::V4(_) => &self.v4_lens,
            IpAddr::V6(_) => &self.v6_lens,
        };
        lens.iter().find_map(|len| {
            let net = IpNet::new(dst, *len).ok()?.trunc();
            self.entries.get(&net).map(|(_, t)| t)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_and_owners_are_respected() {
        let mut t = RouteTable::default();
        t.insert("10.9.0.5/32".parse().unwrap(), 1, "alice");
        t.insert("172.16.0.0/16".parse().unwrap(), 1, "alice-lan");
        t.insert("172.16.9.0/24".parse().unwrap(), 2, "bob-lan");
        t.insert("fd00::/64".parse().unwrap(), 2, "bob6");
        assert_eq!(t.lookup("10.9.0.5".parse().unwrap()), Some(&"alice"));
        assert_eq!(t.lookup("10.9.0.6".parse().unwrap()), None);
        assert_eq!(
            t.lookup("172.16.200.1".parse().unwrap()),
            Some(&"alice-lan")
        );
        assert_eq!(t.lookup("172.16.9.1".parse().unwrap()), Some(&"bob-lan"));
        assert_eq!(t.lookup("fd00::1234".parse().unwrap()), Some(&"bob6"));
        // A reconnect (owner 3) took alice's address; the old owner's removal is ignored.
        t.insert("10.9.0.5/32".parse().unwrap(), 3, "alice-again");
        t.remove("10.9.0.5/32".parse().unwrap(), 1);
        assert_eq!(t.lookup("10.9.0.5".parse().unwrap()), Some(&"alice-again"));
        t.remove("10.9.0.5/32".parse().unwrap(), 3);
        assert_eq!(t.lookup("10.9.0.5".parse().unwrap()), None);
    }
}
