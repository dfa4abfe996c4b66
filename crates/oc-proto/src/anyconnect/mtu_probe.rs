//! Path-MTU detection over DTLS, as openconnect does it: DPD requests of chosen sizes
//! (a 4-byte probe id, then zeros), which the server echoes with the same payload. The
//! largest size that comes back is the largest packet DTLS can carry on this path; bigger
//! ones go over TLS. A binary search, capped in time, driven by the caller's clock.

use std::time::{Duration, Instant};

/// Whole search limit (openconnect gives up after 10 s too).
const SEARCH_LIMIT: Duration = Duration::from_secs(10);
/// How long one probe waits for its echo.
const PROBE_WAIT: Duration = Duration::from_millis(400);
/// Sends of one size before it counts as too big (a single loss must not shrink the MTU).
const TRIES: u8 = 2;
const ID_LEN: usize = 4;

#[derive(Debug, Clone)]
struct Outstanding {
    id: u32,
    size: usize,
    sent: Instant,
    tries: u8,
}

/// One search for the largest packet size in `min..=max` that crosses the path.
#[derive(Debug, Clone)]
pub struct MtuProbe {
    /// Largest size known to pass (`min` is assumed to).
    passed: usize,
    /// Smallest size known to fail, or `max + 1`.
    failed: usize,
    outstanding: Option<Outstanding>,
    next_id: u32,
    give_up: Instant,
    done: bool,
}

impl MtuProbe {
    /// Searches `min..=max`, trying `max` first: on a clean path one round trip settles it.
    pub fn new(min: usize, max: usize, now: Instant) -> Self {
        let min = min.clamp(ID_LEN, max.max(ID_LEN));
        Self {
            passed: min,
            failed: max.max(min) + 1,
            outstanding: None,
            next_id: 1,
            give_up: now + SEARCH_LIMIT,
            done: min >= max,
        }
    }

    fn next_size(&self) -> Option<usize> {
        if self.done || self.passed + 1 >= self.failed {
            return None;
        }
        // The first probe tries the ceiling; then bisect.
        if self.next_id == 1 {
            return Some(self.failed - 1);
        }
        Some(self.passed + (self.failed - self.passed).div_ceil(2))
    }

    /// The payload of the next DPD request to send, if one is due now.
    pub fn poll_probe(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.done {
            return None;
        }
        if now >= self.give_up {
            self.done = true;
            return None;
        }
        let (id, size, tries) = match &self.outstanding {
            Some(o) if now < o.sent + PROBE_WAIT => return None,
            Some(o) if o.tries < TRIES => (o.id, o.size, o.tries + 1),
            Some(o) => {
                // Lost every time: too big for this path.
                self.failed = o.size;
                self.outstanding = None;
                let size = match self.next_size() {
                    Some(s) => s,
                    None => {
                        self.done = true;
                        return None;
                    }
                };
                (self.take_id(), size, 1)
            }
            None => {
                let Some(size) = self.next_size() else {
                    self.done = true;
                    return None;
                };
                (self.take_id(), size, 1)
            }
        };
        self.outstanding = Some(Outstanding {
            id,
            size,
            sent: now,
            tries,
        });
        let mut payload = vec![0u8; size];
        if let Some(head) = payload.get_mut(..ID_LEN) {
            head.copy_from_slice(&id.to_be_bytes());
        }
        Some(payload)
    }

    fn take_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    /// A DPD response arrived on DTLS. Anything but the echo of the outstanding probe
    /// (ordinary DPD answers, late echoes) is ignored.
    pub fn on_response(&mut self, payload: &[u8]) {
        let Some(o) = &self.outstanding else { return };
        let id = o.id.to_be_bytes();
        if payload.len() == o.size && payload.get(..ID_LEN) == Some(&id[..]) {
            self.passed = o.size;
            self.outstanding = None;
            if self.next_size().is_none() {
                self.done = true;
            }
        }
    }

    /// When [`MtuProbe::poll_probe`] has something to do next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.done {
            return None;
        }
        let retry = self
            .outstanding
            .as_ref()
            .map_or(self.give_up, |o| o.sent + PROBE_WAIT);
        Some(retry.min(self.give_up))
    }

    /// The largest size that crossed the path, once the search is over.
    pub fn result(&self) -> Option<usize> {
        self.done.then_some(self.passed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Runs a search against a path that passes payloads up to `limit` bytes.
    fn search(min: usize, max: usize, limit: usize) -> (usize, usize) {
        let mut now = Instant::now();
        let mut probe = MtuProbe::new(min, max, now);
        let mut sent = 0;
        while probe.result().is_none() {
            if let Some(payload) = probe.poll_probe(now) {
                sent += 1;
                if payload.len() <= limit {
                    probe.on_response(&payload);
                    continue;
                }
            }
            match probe.poll_timeout() {
                Some(t) => now = t,
                None => break,
            }
        }
        (probe.result().unwrap(), sent)
    }

    #[test]
    fn clean_path_takes_one_probe() {
        assert_eq!(search(576, 1400, 5000), (1400, 1));
    }

    #[test]
    fn finds_the_exact_limit() {
        for limit in [576, 577, 1000, 1199, 1399] {
            let (found, _) = search(576, 1400, limit);
            assert_eq!(found, limit, "limit {limit}");
        }
    }

    #[test]
    fn a_path_below_the_floor_keeps_the_floor_and_stops_in_time() {
        let (found, sent) = search(576, 1400, 100);
        assert_eq!(found, 576);
        assert!(sent <= 2 * 12, "{sent} probes");
    }

    #[test]
    fn foreign_and_late_echoes_are_ignored() {
        let now = Instant::now();
        let mut probe = MtuProbe::new(576, 1400, now);
        let first = probe.poll_probe(now).unwrap();
        assert_eq!(first.len(), 1400);
        // An ordinary DPD answer (empty), a truncated echo, a wrong id.
        probe.on_response(&[]);
        probe.on_response(&first[..1000]);
        let mut wrong = first.clone();
        wrong[0] ^= 1;
        probe.on_response(&wrong);
        assert!(probe.result().is_none());
        // Retried once before the size counts as too big.
        let again = probe.poll_probe(now + PROBE_WAIT).unwrap();
        assert_eq!(again, first);
        let smaller = probe.poll_probe(now + PROBE_WAIT * 2).unwrap();
        assert!(smaller.len() < 1400);
        // The old probe's echo arriving now does not count.
        probe.on_response(&first);
        assert!(probe.result().is_none());
    }

    #[test]
    fn degenerate_ranges_finish_at_once() {
        let now = Instant::now();
        let probe = MtuProbe::new(1400, 1400, now);
        assert_eq!(probe.result(), Some(1400));
        let mut probe = MtuProbe::new(0, 2, now);
        assert!(probe.poll_probe(now).is_none());
        assert!(probe.result().is_some());
    }
}
