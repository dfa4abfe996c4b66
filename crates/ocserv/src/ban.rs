//! Ban points per client address, as ocserv keeps them: each connection and each wrong
//! password adds points; an address at or above `max-ban-score` is refused until
//! `ban-reset-time` passes without new points.
//!
//! What counts as one address is ocserv's (main-ban.c): an IPv4 address, or an IPv6 /64
//! (whoever attacks from one IPv6 address owns its whole /64, and would otherwise get 2^64
//! fresh scores). An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack socket
//! reports for an IPv4 client) is that IPv4 address, so `occtl unban ip a.b.c.d` finds it.
//! Every method takes any address and applies [`ban_key`] itself.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::addr::canonical_ip;

/// Addresses tracked at most; the oldest entries go first when a flood exceeds it, so the
/// table cannot grow without bound.
const MAX_ENTRIES: usize = 65_536;

/// The entry of the ban table `ip` counts towards: the IPv4 address (mapped IPv6 addresses
/// included), or the IPv6 address's /64 (its last 64 bits cleared).
pub fn ban_key(ip: IpAddr) -> IpAddr {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanPolicy {
    /// 0 disables banning.
    pub max_score: u32,
    pub reset_after: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    score: u32,
    last: Instant,
}

#[derive(Debug)]
pub struct BanList {
    policy: BanPolicy,
    entries: HashMap<IpAddr, Entry>,
}

impl BanList {
    pub fn new(policy: BanPolicy) -> Self {
        Self {
            policy,
            entries: HashMap::new(),
        }
    }

    pub fn set_policy(&mut self, policy: BanPolicy) {
        self.policy = policy;
    }

    /// `key` is a [`ban_key`].
    fn current(&self, key: IpAddr, now: Instant) -> u32 {
        match self.entries.get(&key) {
            Some(e) if now.saturating_duration_since(e.last) < self.policy.reset_after => e.score,
            _ => 0,
        }
    }

    /// Adds points to `ip`'s entry ([`ban_key`]); returns true when it is now banned.
    pub fn add(&mut self, ip: IpAddr, points: u32, now: Instant) -> bool {
        if self.policy.max_score == 0 || points == 0 {
            return false;
        }
        let key = ban_key(ip);
        let score = self.current(key, now).saturating_add(points);
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(&key) {
            self.prune(now);
        }
        self.entries.insert(key, Entry { score, last: now });
        score >= self.policy.max_score
    }

    /// Whether `ip`'s entry ([`ban_key`]) is banned.
    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        self.policy.max_score > 0 && self.current(ban_key(ip), now) >= self.policy.max_score
    }

    /// Drops stale entries, and the oldest ones if the table is still full.
    pub fn prune(&mut self, now: Instant) {
        let reset = self.policy.reset_after;
        self.entries
            .retain(|_, e| now.saturating_duration_since(e.last) < reset);
        if self.entries.len() >= MAX_ENTRIES {
            let mut ages: Vec<_> = self.entries.iter().map(|(ip, e)| (e.last, *ip)).collect();
            ages.sort();
            for (_, ip) in ages.iter().take(self.entries.len() / 2) {
                self.entries.remove(ip);
            }
        }
    }

    /// Forgets the points of `ip`'s entry (occtl `unban ip`): for an IPv6 address, of its
    /// whole /64, as ocserv does. False when it was not banned.
    pub fn unban(&mut self, ip: IpAddr, now: Instant) -> bool {
        let banned = self.is_banned(ip, now);
        self.entries.remove(&ban_key(ip));
        banned
    }

    /// Every entry with live points, and whether it is banned. `ip` is the entry's
    /// [`ban_key`]: an IPv4 address, or an IPv6 /64's first address (as ocserv lists them).
    pub fn entries(&self, now: Instant) -> Vec<BanEntry> {
        self.entries
            .iter()
            .filter(|(_, e)| now.saturating_duration_since(e.last) < self.policy.reset_after)
            .map(|(ip, e)| BanEntry {
                ip: *ip,
                score: e.score,
                banned: self.is_banned(*ip, now),
                resets_in: self
                    .policy
                    .reset_after
                    .saturating_sub(now.saturating_duration_since(e.last)),
            })
            .collect()
    }

    /// The banned entries ([`ban_key`]s) and their scores.
    pub fn banned(&self, now: Instant) -> Vec<(IpAddr, u32)> {
        self.entries
            .keys()
            .filter(|ip| self.is_banned(**ip, now))
            .map(|ip| (*ip, self.current(*ip, now)))
            .collect()
    }
}

/// One address in the ban table, as occtl shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanEntry {
    pub ip: IpAddr,
    pub score: u32,
    pub banned: bool,
    /// Until the points lapse (and a ban with them).
    pub resets_in: Duration,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn points_accumulate_and_reset() {
        let policy = BanPolicy {
            max_score: 30,
            reset_after: Duration::from_secs(100),
        };
        let mut bans = BanList::new(policy);
        let ip: IpAddr = "198.18.0.9".parse().unwrap();
        let t0 = Instant::now();
        assert!(!bans.add(ip, 10, t0));
        assert!(!bans.add(ip, 10, t0 + Duration::from_secs(50)));
        assert!(bans.add(ip, 10, t0 + Duration::from_secs(99)));
        assert!(bans.is_banned(ip, t0 + Duration::from_secs(150)));
        assert_eq!(bans.banned(t0 + Duration::from_secs(150)).len(), 1);
        assert!(!bans.is_banned(ip, t0 + Duration::from_secs(199)));
        let other: IpAddr = "198.18.0.10".parse().unwrap();
        assert!(!bans.is_banned(other, t0));
        let mut off = BanList::new(BanPolicy {
            max_score: 0,
            ..policy
        });
        assert!(!off.add(ip, 1000, t0));
    }

    #[test]
    fn entries_list_points_and_unban_clears_them() {
        let mut bans = BanList::new(BanPolicy {
            max_score: 30,
            reset_after: Duration::from_secs(100),
        });
        let t0 = Instant::now();
        let (a, b): (IpAddr, IpAddr) =
            ("198.18.0.9".parse().unwrap(), "2001:db8::".parse().unwrap());
        bans.add(a, 40, t0);
        bans.add(b, 10, t0);
        let mut e = bans.entries(t0 + Duration::from_secs(10));
        e.sort_by_key(|e| e.score);
        assert_eq!((e[0].ip, e[0].score, e[0].banned), (b, 10, false));
        assert_eq!((e[1].ip, e[1].banned), (a, true));
        assert_eq!(e[1].resets_in, Duration::from_secs(90));
        assert!(bans.unban(a, t0));
        assert!(!bans.is_banned(a, t0));
        assert!(!bans.unban(b, t0), "b had points but was not banned");
        assert!(bans.entries(t0).is_empty());
        // Lapsed points are not listed.
        bans.add(a, 5, t0);
        assert!(bans.entries(t0 + Duration::from_secs(100)).is_empty());
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn policy() -> BanPolicy {
        BanPolicy {
            max_score: 30,
            reset_after: Duration::from_secs(100),
        }
    }

    #[test]
    fn ban_keys() {
        assert_eq!(ban_key(ip("198.18.0.9")), ip("198.18.0.9"));
        assert_eq!(ban_key(ip("::ffff:198.18.0.9")), ip("198.18.0.9"));
        assert_eq!(ban_key(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(ban_key(ip("2001:db8:1:2::")), ip("2001:db8:1:2::"));
        assert_eq!(ban_key(ip("::1")), ip("::"));
        // Not mapped: an ordinary IPv6 address, counted per /64.
        assert_eq!(ban_key(ip("::198.18.0.9")), ip("::"));
    }

    #[test]
    fn ipv6_points_count_per_64() {
        let mut bans = BanList::new(policy());
        let t0 = Instant::now();
        // Three addresses of one /64: one score.
        assert!(!bans.add(ip("2001:db8:1:2::1"), 10, t0));
        assert!(!bans.add(ip("2001:db8:1:2::2"), 10, t0));
        assert!(bans.add(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"), 10, t0));
        assert!(bans.is_banned(ip("2001:db8:1:2:abcd::9"), t0));
        // The neighbouring /64 is someone else.
        assert!(!bans.is_banned(ip("2001:db8:1:3::1"), t0));
        assert!(!bans.add(ip("2001:db8:1:3::1"), 10, t0));
        let entries = bans.entries(t0);
        assert_eq!(entries.len(), 2);
        assert_eq!(bans.banned(t0), vec![(ip("2001:db8:1:2::"), 30)]);
        // Unbanning any address of the /64 unbans the /64.
        assert!(bans.unban(ip("2001:db8:1:2::77"), t0));
        assert!(!bans.is_banned(ip("2001:db8:1:2::1"), t0));
    }

    #[test]
    fn ipv4_points_count_per_address() {
        let mut bans = BanList::new(policy());
        let t0 = Instant::now();
        assert!(bans.add(ip("198.18.0.9"), 30, t0));
        assert!(!bans.is_banned(ip("198.18.0.8"), t0));
        assert!(!bans.is_banned(ip("198.18.0.10"), t0));
    }

    #[test]
    fn mapped_ipv4_is_the_ipv4_address() {
        let mut bans = BanList::new(policy());
        let t0 = Instant::now();
        // Points from a dual-stack socket and from an IPv4 socket add up.
        assert!(!bans.add(ip("::ffff:198.18.0.9"), 20, t0));
        assert!(bans.add(ip("198.18.0.9"), 10, t0));
        assert!(bans.is_banned(ip("::ffff:198.18.0.9"), t0));
        assert!(bans.is_banned(ip("198.18.0.9"), t0));
        // occtl lists and unbans it as the IPv4 address.
        let entries = bans.entries(t0);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].ip, ip("198.18.0.9"));
        assert!(bans.unban(ip("198.18.0.9"), t0));
        assert!(!bans.is_banned(ip("::ffff:198.18.0.9"), t0));
        // And the other way round.
        bans.add(ip("198.18.0.9"), 30, t0);
        assert!(bans.unban(ip("::ffff:198.18.0.9"), t0));
        assert!(!bans.is_banned(ip("198.18.0.9"), t0));
        // Mapped addresses are not lumped together as one /64.
        bans.add(ip("::ffff:198.18.0.9"), 30, t0);
        assert!(!bans.is_banned(ip("::ffff:198.18.0.10"), t0));
    }
}
