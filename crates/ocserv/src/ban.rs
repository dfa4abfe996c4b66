//! Ban points per client address, as ocserv keeps them (main-ban.c): each connection and
//! each wrong password adds points; an address that reaches `max-ban-score` is refused for
//! `ban-time` from the points that banned it. Points count within a `ban-reset-time`
//! window: points that come once the window has passed (and no ban holds) start a new one,
//! as do points after a ban ended.
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
    /// `ban-reset-time`: how long points count.
    pub reset_after: Duration,
    /// `ban-time`: how long a ban lasts.
    pub ban_time: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    score: u32,
    /// When the current window of points began.
    window_start: Instant,
    /// When a ban (from points given before this) ends.
    expires: Instant,
}

impl Entry {
    fn at_max(&self, policy: &BanPolicy) -> bool {
        self.score >= policy.max_score
    }

    fn banned(&self, policy: &BanPolicy, now: Instant) -> bool {
        self.at_max(policy) && now <= self.expires
    }

    /// Nothing left to remember: no ban holds and the window has passed.
    fn stale(&self, policy: &BanPolicy, now: Instant) -> bool {
        now > self.expires && now.saturating_duration_since(self.window_start) > policy.reset_after
    }
}

#[derive(Debug)]
pub struct BanList {
    policy: BanPolicy,
    entries: HashMap<IpAddr, Entry>,
    /// The server's own addresses: they collect points but are never refused, as in
    /// ocserv (an administrator testing from the server locks nobody out).
    exempt: Vec<IpAddr>,
}

impl BanList {
    pub fn new(policy: BanPolicy) -> Self {
        Self {
            policy,
            entries: HashMap::new(),
            exempt: Vec::new(),
        }
    }

    /// Sets the addresses that are never refused (the host's own).
    pub fn set_exempt(&mut self, local: Vec<IpAddr>) {
        self.exempt = local.into_iter().map(canonical_ip).collect();
    }

    pub fn set_policy(&mut self, policy: BanPolicy) {
        self.policy = policy;
    }

    /// Adds points to `ip`'s entry ([`ban_key`]); returns true when they banned `ip`: it
    /// was not banned before (and is not one of the server's own addresses).
    pub fn add(&mut self, ip: IpAddr, points: u32, now: Instant) -> bool {
        let policy = self.policy;
        if policy.max_score == 0 || points == 0 {
            return false;
        }
        let was_banned = self.is_banned(ip, now);
        let key = ban_key(ip);
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(&key) {
            self.prune(now);
        }
        let entry = self.entries.entry(key).or_insert(Entry {
            score: 0,
            window_start: now,
            expires: now,
        });
        let window_over = now.saturating_duration_since(entry.window_start) > policy.reset_after;
        let ban_over = entry.at_max(&policy) && now > entry.expires;
        if ban_over || (window_over && !entry.at_max(&policy)) {
            entry.score = 0;
            entry.window_start = now;
        }
        // A ban in force is not lengthened by more attempts, or a client that keeps
        // trying would never get back in.
        if !entry.at_max(&policy) {
            entry.expires = now + policy.ban_time;
        }
        entry.score = entry.score.saturating_add(points);
        entry.banned(&policy, now) && !was_banned && !self.exempt.contains(&canonical_ip(ip))
    }

    /// Whether `ip`'s entry ([`ban_key`]) is banned, and `ip` not one of the server's own.
    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        self.policy.max_score > 0
            && !self.exempt.contains(&canonical_ip(ip))
            && self
                .entries
                .get(&ban_key(ip))
                .is_some_and(|e| e.banned(&self.policy, now))
    }

    /// Drops stale entries, and the oldest ones if the table is still full.
    pub fn prune(&mut self, now: Instant) {
        let policy = self.policy;
        self.entries.retain(|_, e| !e.stale(&policy, now));
        if self.entries.len() >= MAX_ENTRIES {
            let mut ages: Vec<_> = self
                .entries
                .iter()
                .map(|(ip, e)| (e.window_start, *ip))
                .collect();
            ages.sort();
            for (_, ip) in ages.iter().take(self.entries.len() / 2) {
                self.entries.remove(ip);
            }
        }
    }

    /// Forgets the points of `ip`'s entry (occtl `unban ip`): for an IPv6 address, of its
    /// whole /64, as ocserv does. False when it was not banned.
    pub fn unban(&mut self, ip: IpAddr, now: Instant) -> bool {
        self.entries
            .remove(&ban_key(ip))
            .is_some_and(|e| e.banned(&self.policy, now))
    }

    /// Every entry with live points, and whether it is banned. `ip` is the entry's
    /// [`ban_key`]: an IPv4 address, or an IPv6 /64's first address (as ocserv lists them).
    pub fn entries(&self, now: Instant) -> Vec<BanEntry> {
        let policy = &self.policy;
        self.entries
            .iter()
            .filter(|(_, e)| !e.stale(policy, now))
            .map(|(ip, e)| {
                let banned = e.banned(policy, now);
                let window_left = policy
                    .reset_after
                    .saturating_sub(now.saturating_duration_since(e.window_start));
                BanEntry {
                    ip: *ip,
                    score: e.score,
                    banned,
                    resets_in: if banned {
                        e.expires.saturating_duration_since(now)
                    } else {
                        window_left
                    },
                }
            })
            .collect()
    }

    /// The banned entries ([`ban_key`]s) and their scores.
    pub fn banned(&self, now: Instant) -> Vec<(IpAddr, u32)> {
        self.entries
            .iter()
            .filter(|(_, e)| e.banned(&self.policy, now))
            .map(|(ip, e)| (*ip, e.score))
            .collect()
    }
}

/// One address in the ban table, as occtl shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanEntry {
    pub ip: IpAddr,
    pub score: u32,
    pub banned: bool,
    /// Until the ban ends, or (not banned) until the points stop counting.
    pub resets_in: Duration,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SECS: fn(u64) -> Duration = Duration::from_secs;

    /// upstream's test-ban: 50 points ban, for 20 s; points count within 10 s.
    fn test_ban_policy() -> BanPolicy {
        BanPolicy {
            max_score: 50,
            reset_after: SECS(10),
            ban_time: SECS(20),
        }
    }

    #[test]
    fn a_ban_lasts_ban_time_and_is_not_lengthened_by_more_attempts() {
        let mut bans = BanList::new(test_ban_policy());
        let ip: IpAddr = "198.18.0.9".parse().unwrap();
        let t0 = Instant::now();
        // Five wrong passwords (10 each) within the window: banned at the fifth.
        for n in 0..4 {
            assert!(!bans.add(ip, 10, t0 + SECS(n)));
        }
        assert!(bans.add(ip, 10, t0 + SECS(4)));
        assert_eq!(bans.banned(t0 + SECS(5)), vec![(ip, 50)]);
        // Attempts while banned do not push the end further (nor ban it anew).
        assert!(!bans.add(ip, 10, t0 + SECS(15)));
        assert!(bans.is_banned(ip, t0 + SECS(24)));
        assert!(!bans.is_banned(ip, t0 + SECS(25)));
        // After the ban, points start again from zero.
        assert!(!bans.add(ip, 10, t0 + SECS(30)));
        assert_eq!(bans.entries(t0 + SECS(30))[0].score, 10);
        let other: IpAddr = "198.18.0.10".parse().unwrap();
        assert!(!bans.is_banned(other, t0));
        let mut off = BanList::new(BanPolicy {
            max_score: 0,
            ..test_ban_policy()
        });
        assert!(!off.add(ip, 1000, t0));
    }

    #[test]
    fn points_outside_the_reset_window_start_over() {
        let mut bans = BanList::new(test_ban_policy());
        let ip: IpAddr = "198.18.0.9".parse().unwrap();
        let t0 = Instant::now();
        // Four failures, then one more after the window: not banned (test-ban's second half).
        for n in 0..4 {
            assert!(!bans.add(ip, 10, t0 + SECS(n)));
        }
        assert!(!bans.add(ip, 10, t0 + SECS(14)));
        assert_eq!(bans.entries(t0 + SECS(14))[0].score, 10);
        // Nothing is remembered once the window and any ban are over.
        assert!(bans.entries(t0 + SECS(60)).is_empty());
        bans.prune(t0 + SECS(60));
        assert!(bans.entries.is_empty());
    }

    #[test]
    fn entries_list_points_and_unban_clears_them() {
        let mut bans = BanList::new(BanPolicy {
            max_score: 30,
            reset_after: SECS(100),
            ban_time: SECS(300),
        });
        let t0 = Instant::now();
        let (a, b): (IpAddr, IpAddr) =
            ("198.18.0.9".parse().unwrap(), "2001:db8::".parse().unwrap());
        bans.add(a, 40, t0);
        bans.add(b, 10, t0);
        let mut e = bans.entries(t0 + SECS(10));
        e.sort_by_key(|e| e.score);
        assert_eq!((e[0].ip, e[0].score, e[0].banned), (b, 10, false));
        assert_eq!(e[0].resets_in, SECS(90));
        assert_eq!((e[1].ip, e[1].banned), (a, true));
        assert_eq!(e[1].resets_in, SECS(290));
        assert!(bans.unban(a, t0));
        assert!(!bans.is_banned(a, t0));
        assert!(!bans.unban(b, t0), "b had points but was not banned");
        assert!(bans.entries(t0).is_empty());
        // Lapsed points are not listed.
        bans.add(a, 5, t0);
        assert!(bans.entries(t0 + SECS(301)).is_empty());
    }

    #[test]
    fn the_servers_own_addresses_collect_points_but_are_not_refused() {
        let mut bans = BanList::new(test_ban_policy());
        bans.set_exempt(vec![ip("127.0.0.1"), ip("198.18.0.1")]);
        let t0 = Instant::now();
        for local in ["127.0.0.1", "::ffff:198.18.0.1"] {
            for points in [60, 60] {
                assert!(!bans.add(ip(local), points, t0), "{local}");
            }
            assert!(!bans.is_banned(ip(local), t0), "{local}");
        }
        // Listed as banned all the same, as ocserv counts them.
        assert_eq!(bans.banned(t0).len(), 2);
        assert!(bans.add(ip("198.18.0.2"), 60, t0));
        assert!(bans.is_banned(ip("198.18.0.2"), t0));
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn policy() -> BanPolicy {
        BanPolicy {
            max_score: 30,
            reset_after: SECS(100),
            ban_time: SECS(300),
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
