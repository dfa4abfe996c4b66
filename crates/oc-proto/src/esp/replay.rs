//! The incoming sequence-number window, as upstream's `verify_packet_seqno`
//! (esp-seqno.c) keeps it.
//!
//! The window remembers the next sequence number it expects (one past the newest seen;
//! it starts at 0) and a 64-bit map of the 64 numbers before the newest: bit 0 is
//! `next - 2`, bit 63 is `next - 65`, a set bit is a packet not yet seen. The newest
//! (`next - 1`) is seen by definition. So packets up to 65 behind the newest can still
//! arrive once, in any order; anything newer moves the window forward, however far.
//! `next` may reach 2^32 after packet 0xffffffff: then nothing newer can exist and every
//! packet is old, until new keys start a new window.

/// How a sequence number stands against the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The number expected next.
    InOrder,
    /// Newer than expected: `missed` numbers were skipped (they stay acceptable while
    /// within the window).
    AfterGap { missed: u64 },
    /// A number inside the window not seen before: a reordered packet.
    Reordered,
    /// Seen before (the newest, or a cleared bit of the map).
    Replayed,
    /// More than 65 behind the newest (or any number once the window reached 2^32):
    /// whether it is a replay cannot be known.
    TooOld,
}

impl Arrival {
    /// Whether a packet arriving so is new (accepted even with replay protection).
    pub const fn is_new(self) -> bool {
        matches!(
            self,
            Self::InOrder | Self::AfterGap { .. } | Self::Reordered
        )
    }
}

/// Packets behind the newest that the map covers.
pub const REPLAY_WINDOW_BITS: u64 = 64;

/// The incoming window of one security association.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplayWindow {
    /// One past the newest sequence number seen; up to 2^32.
    next: u64,
    /// Bit `i` set: `next - 2 - i` not yet seen.
    missing: u64,
}

impl ReplayWindow {
    pub const fn new() -> Self {
        Self {
            next: 0,
            missing: 0,
        }
    }

    /// One past the newest sequence number accepted.
    pub const fn next_expected(&self) -> u64 {
        self.next
    }

    /// Where `sequence` stands, without changing anything (checked before the ICV, so a
    /// forged packet cannot move the window).
    pub fn classify(&self, sequence: u32) -> Arrival {
        let seq = u64::from(sequence);
        if seq == self.next {
            return Arrival::InOrder;
        }
        if seq > self.next {
            return Arrival::AfterGap {
                missed: seq - self.next,
            };
        }
        match self.next - seq {
            1 => Arrival::Replayed,
            behind @ 2..=65 => {
                if self.missing & Self::bit(behind) != 0 {
                    Arrival::Reordered
                } else {
                    Arrival::Replayed
                }
            }
            _ => Arrival::TooOld,
        }
    }

    /// Records an authenticated packet: classifies it as [`Self::classify`] does and, if
    /// it is new, moves the window. Replays and old packets change nothing.
    pub fn accept(&mut self, sequence: u32) -> Arrival {
        let arrival = self.classify(sequence);
        match arrival {
            Arrival::InOrder => {
                self.missing <<= 1;
                self.next += 1;
            }
            Arrival::AfterGap { missed } => {
                // The old newest (`next - 1`, seen) shifts to bit `missed`; the `missed`
                // numbers skipped below the new newest are marked missing.
                self.missing = if missed >= REPLAY_WINDOW_BITS {
                    u64::MAX
                } else if missed == REPLAY_WINDOW_BITS - 1 {
                    u64::MAX >> 1
                } else {
                    (self.missing << (missed + 1)) | ((1u64 << missed) - 1)
                };
                self.next = u64::from(sequence) + 1;
            }
            Arrival::Reordered => {
                self.missing &= !Self::bit(self.next - u64::from(sequence));
            }
            Arrival::Replayed | Arrival::TooOld => {}
        }
        arrival
    }

    /// The map bit of the number `behind` (2..=65) before `next`.
    fn bit(behind: u64) -> u64 {
        1u64 << ((behind - 2) % REPLAY_WINDOW_BITS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window_after(seqs: &[u32]) -> ReplayWindow {
        let mut w = ReplayWindow::new();
        for &s in seqs {
            assert!(w.accept(s).is_new(), "{s} refused");
        }
        w
    }

    #[test]
    fn in_order_from_zero() {
        let mut w = ReplayWindow::new();
        for s in 0..200 {
            assert_eq!(w.accept(s), Arrival::InOrder);
        }
        assert_eq!(w.next_expected(), 200);
        assert_eq!(w.accept(199), Arrival::Replayed);
        assert_eq!(w.accept(150), Arrival::Replayed);
        assert_eq!(w.accept(134), Arrival::TooOld);
    }

    #[test]
    fn sequence_zero_first_and_later() {
        // The window starts expecting 0 (upstream counts from 0, not RFC 4303's 1).
        let mut w = ReplayWindow::new();
        assert_eq!(w.accept(0), Arrival::InOrder);
        assert_eq!(w.accept(0), Arrival::Replayed);
        // A peer starting at 1 leaves 0 missing; it can still come.
        let mut w = ReplayWindow::new();
        assert_eq!(w.accept(1), Arrival::AfterGap { missed: 1 });
        assert_eq!(w.accept(0), Arrival::Reordered);
        assert_eq!(w.accept(0), Arrival::Replayed);
    }

    #[test]
    fn reordering_inside_the_window_is_accepted_once() {
        let mut w = window_after(&[0, 1, 2, 5]);
        assert_eq!(w.accept(4), Arrival::Reordered);
        assert_eq!(w.accept(3), Arrival::Reordered);
        assert_eq!(w.accept(3), Arrival::Replayed);
        assert_eq!(w.accept(5), Arrival::Replayed);
        assert_eq!(w.accept(6), Arrival::InOrder);
    }

    #[test]
    fn edges_of_the_window() {
        // Newest 100: 36 (65 behind the next expected, 101) is the oldest still open.
        let w = window_after(&[100]);
        assert_eq!(w.classify(36), Arrival::Reordered);
        assert_eq!(w.classify(35), Arrival::TooOld);
        let mut w = window_after(&[0, 100]);
        assert_eq!(w.accept(36), Arrival::Reordered);
        assert_eq!(w.accept(35), Arrival::TooOld);
        // Exactly inside: 65 behind with the bit still set.
        let mut w = window_after(&[1, 66]);
        assert_eq!(w.next_expected(), 67);
        assert_eq!(w.accept(2), Arrival::Reordered);
        assert_eq!(w.accept(1), Arrival::TooOld);
    }

    #[test]
    fn jumps_of_63_64_and_more() {
        // 63 skipped: every skipped number open, the old newest seen.
        let mut w = window_after(&[10]);
        assert_eq!(w.accept(74), Arrival::AfterGap { missed: 63 });
        for s in 11..74 {
            assert_eq!(w.classify(s), Arrival::Reordered, "{s}");
        }
        assert_eq!(w.classify(10), Arrival::Replayed);
        // 64 skipped: the old newest falls out of the map.
        let mut w = window_after(&[10]);
        assert_eq!(w.accept(75), Arrival::AfterGap { missed: 64 });
        assert_eq!(w.classify(11), Arrival::Reordered);
        assert_eq!(w.classify(10), Arrival::TooOld);
        // Far ahead: everything behind is open as far as the window reaches.
        let mut w = window_after(&[0, 1, 2]);
        assert_eq!(w.accept(1_000_000), Arrival::AfterGap { missed: 999_997 });
        assert_eq!(w.accept(999_936), Arrival::Reordered);
        assert_eq!(w.accept(999_935), Arrival::TooOld);
        assert_eq!(w.accept(2), Arrival::TooOld);
    }

    #[test]
    fn a_gap_keeps_earlier_holes() {
        let mut w = window_after(&[0, 2]);
        assert_eq!(w.accept(10), Arrival::AfterGap { missed: 7 });
        for s in [1, 3, 4, 5, 6, 7, 8, 9] {
            assert_eq!(w.accept(s), Arrival::Reordered, "{s}");
        }
        for s in 0..=10 {
            assert_eq!(w.classify(s), Arrival::Replayed, "{s}");
        }
    }

    #[test]
    fn classify_changes_nothing() {
        let w = window_after(&[0, 5]);
        let copy = w;
        for s in [0, 1, 5, 6, 100, u32::MAX] {
            let _ = w.classify(s);
        }
        assert_eq!(w, copy);
    }

    #[test]
    fn the_end_of_the_sequence_space() {
        let mut w = window_after(&[u32::MAX - 1]);
        assert_eq!(w.accept(u32::MAX), Arrival::InOrder);
        assert_eq!(w.next_expected(), 1 << 32);
        // Nothing is newer than 0xffffffff: 0 is not a wrap, it is ancient.
        assert_eq!(w.accept(0), Arrival::TooOld);
        assert_eq!(w.accept(u32::MAX), Arrival::Replayed);
        assert_eq!(w.accept(u32::MAX - 1), Arrival::Replayed);
        let mut w = window_after(&[u32::MAX]);
        assert_eq!(w.accept(u32::MAX - 64), Arrival::Reordered);
        assert_eq!(w.accept(u32::MAX - 65), Arrival::TooOld);
        assert_eq!(w.accept(1), Arrival::TooOld);
    }

    /// The window against a plain set of everything seen: a number is new exactly when
    /// unseen and at most 65 behind the newest, and newer numbers are always new.
    #[test]
    fn agrees_with_a_model() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut step = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..50 {
            let mut w = ReplayWindow::new();
            let mut seen = std::collections::BTreeSet::new();
            let mut newest: Option<u64> = None;
            for _ in 0..2000 {
                let base = newest.unwrap_or(0);
                let seq = (base + step() % 140)
                    .saturating_sub(70)
                    .min(u64::from(u32::MAX));
                let next = newest.map_or(0, |n| n + 1);
                let expected_new = !seen.contains(&seq) && seq + 65 >= next;
                let got = w.accept(seq as u32);
                assert_eq!(got.is_new(), expected_new, "seq {seq} next {next}: {got:?}");
                if expected_new {
                    seen.insert(seq);
                    newest = Some(newest.map_or(seq, |n| n.max(seq)));
                }
            }
        }
    }
}
