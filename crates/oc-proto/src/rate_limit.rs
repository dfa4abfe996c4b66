//! Policing of one direction of a tunnel to a byte rate (ocserv's `rx-data-per-sec` and
//! `tx-data-per-sec`): a token bucket that packets over the rate are dropped by, as a
//! router's policer would; TCP inside the tunnel then slows to the rate.

use std::time::Instant;

const NANOS_PER_SEC: u128 = 1_000_000_000;
/// The bucket holds half a second of traffic (ocserv's accounting window is 500 ms), and
/// never less than this, so that full-sized packets pass even at very low rates.
const MIN_BURST_BYTES: u64 = 16 * 1024;

/// A token bucket; time comes in as arguments.
#[derive(Debug, Clone)]
pub struct RateLimit {
    bytes_per_sec: u64,
    /// Capacity and content, in bytes x 10^9 (tokens earned per nanosecond are
    /// `bytes_per_sec`), so refills lose nothing to rounding.
    capacity: u128,
    tokens: u128,
    last: Instant,
}

impl RateLimit {
    /// A full bucket for `bytes_per_sec` (at least 1).
    pub fn new(bytes_per_sec: u64, now: Instant) -> Self {
        let bytes_per_sec = bytes_per_sec.max(1);
        let burst = (bytes_per_sec / 2).max(MIN_BURST_BYTES);
        let capacity = u128::from(burst) * NANOS_PER_SEC;
        Self {
            bytes_per_sec,
            capacity,
            tokens: capacity,
            last: now,
        }
    }

    /// Whether a packet of `bytes` may pass now; if so, it is paid for.
    pub fn admit(&mut self, bytes: usize, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_nanos();
        self.last = self.last.max(now);
        self.tokens = self
            .tokens
            .saturating_add(elapsed.saturating_mul(u128::from(self.bytes_per_sec)))
            .min(self.capacity);
        let cost = (bytes as u128).saturating_mul(NANOS_PER_SEC);
        if cost > self.tokens {
            return false;
        }
        self.tokens -= cost;
        true
    }

    #[cfg(test)]
    fn bytes_per_sec(&self) -> u64 {
        self.bytes_per_sec
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Offers `packet`-byte packets back to back every `gap` for `span`; what passed.
    fn passed(
        limit: &mut RateLimit,
        start: Instant,
        packet: usize,
        gap: Duration,
        span: Duration,
    ) -> u64 {
        let mut t = start;
        let mut total = 0;
        while t < start + span {
            if limit.admit(packet, t) {
                total += packet as u64;
            }
            t += gap;
        }
        total
    }

    #[test]
    fn a_flood_is_held_to_the_rate_plus_one_burst() {
        let start = Instant::now();
        let mut limit = RateLimit::new(100_000, start);
        // 1400-byte packets every 100 us: 14 MB/s offered for 10 s.
        let got = passed(
            &mut limit,
            start,
            1400,
            Duration::from_micros(100),
            Duration::from_secs(10),
        );
        let most = 100_000 * 10 + 50_000;
        assert!(got <= most, "{got} > {most}");
        assert!(got >= most - 2 * 1400, "{got} far below {most}");
    }

    #[test]
    fn traffic_under_the_rate_all_passes() {
        let start = Instant::now();
        let mut limit = RateLimit::new(1_000_000, start);
        // 1000-byte packets every 2 ms: 500 kB/s.
        let got = passed(
            &mut limit,
            start,
            1000,
            Duration::from_millis(2),
            Duration::from_secs(5),
        );
        assert_eq!(got, 2500 * 1000);
    }

    #[test]
    fn low_rates_still_pass_full_packets_and_idle_time_refills_only_to_the_burst() {
        let start = Instant::now();
        let mut limit = RateLimit::new(100, start);
        assert!(limit.admit(1500, start));
        let after_an_hour = start + Duration::from_secs(3600);
        let got = passed(
            &mut limit,
            after_an_hour,
            1500,
            Duration::from_millis(1),
            Duration::from_millis(100),
        );
        assert_eq!(got, (MIN_BURST_BYTES / 1500) * 1500);
    }

    #[test]
    fn time_going_backwards_earns_nothing_and_zero_means_one_byte_per_second() {
        let start = Instant::now() + Duration::from_secs(10);
        let mut limit = RateLimit::new(0, start);
        assert_eq!(limit.bytes_per_sec(), 1);
        let drained = passed(
            &mut limit,
            start,
            1024,
            Duration::from_nanos(1),
            Duration::from_micros(20),
        );
        assert_eq!(drained, MIN_BURST_BYTES);
        assert!(!limit.admit(1, start - Duration::from_secs(5)));
        assert!(!limit.admit(2, start + Duration::from_secs(1)));
        assert!(limit.admit(1, start + Duration::from_secs(1)));
        assert!(!limit.admit(usize::MAX, start + Duration::from_secs(3)));
        assert!(limit.admit(0, start));
    }
}
