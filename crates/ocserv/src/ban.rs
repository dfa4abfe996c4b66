//! Ban points per client address, as ocserv keeps them: each connection and each wrong
//! password adds points; an address at or above `max-ban-score` is refused until
//! `ban-reset-time` passes without new points.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Addresses tracked at most; the oldest entries go first when a flood exceeds it, so the
/// table cannot grow without bound.
const MAX_ENTRIES: usize = 65_536;

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

    fn current(&self, ip: IpAddr, now: Instant) -> u32 {
        match self.entries.get(&ip) {
            Some(e) if now.saturating_duration_since(e.last) < self.policy.reset_after => e.score,
            _ => 0,
        }
    }

    /// Adds points; returns true when the address is now banned.
    pub fn add(&mut self, ip: IpAddr, points: u32, now: Instant) -> bool {
        if self.policy.max_score == 0 || points == 0 {
            return false;
        }
        let score = self.current(ip, now).saturating_add(points);
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(&ip) {
            self.prune(now);
        }
        self.entries.insert(ip, Entry { score, last: now });
        score >= self.policy.max_score
    }

    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        self.policy.max_score > 0 && self.current(ip, now) >= self.policy.max_score
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

    /// Forgets an address's points (occtl `unban ip`); false when it was not banned.
    pub fn unban(&mut self, ip: IpAddr, now: Instant) -> bool {
        let banned = self.is_banned(ip, now);
        self.entries.remove(&ip);
        banned
    }

    /// Every address with live points, and whether it is banned.
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
        let (a, b): (IpAddr, IpAddr) = ("198.18.0.9".parse().unwrap(), "::1".parse().unwrap());
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
}
