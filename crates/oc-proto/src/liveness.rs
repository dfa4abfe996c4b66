//! Dead-peer detection and keepalives without a clock, as openconnect's `keepalive_action`
//! runs them for every protocol: AnyConnect's DPD frames on each channel and the PPP
//! protocols' LCP Echo and Discard requests follow the same timers.

use std::time::{Duration, Instant};

/// Timer settings for one channel, from the CONNECT response or the user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timers {
    pub dpd: Option<Duration>,
    pub keepalive: Option<Duration>,
    pub rekey: Option<Duration>,
}

/// The longest DPD, keepalive or rekey interval honoured (30 days): longer ones mean "as
/// good as never" and would overflow `Instant` arithmetic if taken literally.
pub const MAX_INTERVAL: Duration = Duration::from_secs(30 * 24 * 3600);

/// What a channel's timers ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LivenessAction {
    SendDpd,
    SendKeepalive,
    Rekey,
    Dead,
}

/// Dead-peer detection and keepalive for one channel, as openconnect runs them: a DPD
/// request after `dpd` of silence, repeated every `dpd / 2`, and the peer declared dead after
/// `2 * dpd` without anything received; a keepalive after `keepalive` without sending.
#[derive(Debug, Clone)]
pub struct Liveness {
    timers: Timers,
    last_rx: Instant,
    last_tx: Instant,
    last_dpd: Option<Instant>,
    /// When the next rekey is due (re-armed each time: an in-place rekey repeats).
    rekey_at: Option<Instant>,
}

impl Liveness {
    pub fn new(timers: Timers, now: Instant) -> Self {
        // A zero interval would be due forever: treat it as "off", as openconnect does. The
        // server picks these values: anything beyond MAX_INTERVAL is held there, so the
        // deadline arithmetic can never overflow.
        let nonzero = |d: Option<Duration>| d.filter(|d| !d.is_zero()).map(|d| d.min(MAX_INTERVAL));
        let timers = Timers {
            dpd: nonzero(timers.dpd),
            keepalive: nonzero(timers.keepalive),
            rekey: nonzero(timers.rekey),
        };
        Self {
            timers,
            last_rx: now,
            last_tx: now,
            last_dpd: None,
            rekey_at: timers.rekey.map(|r| now + r),
        }
    }

    pub fn on_receive(&mut self, now: Instant) {
        self.last_rx = now;
    }

    pub fn on_send(&mut self, now: Instant) {
        self.last_tx = now;
    }

    /// The earliest instant at which [`Liveness::check`] may have something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let dpd = self.timers.dpd.map(|d| {
            let first = self.last_rx + d;
            match self.last_dpd {
                Some(sent) if sent >= self.last_rx => (sent + d / 2).min(self.last_rx + d * 2),
                _ => first,
            }
        });
        let keepalive = self.timers.keepalive.map(|k| self.last_tx + k);
        [dpd, keepalive, self.rekey_at].into_iter().flatten().min()
    }

    /// What is due at `now`, most urgent first. Records a DPD or keepalive as sent.
    pub fn check(&mut self, now: Instant) -> Option<LivenessAction> {
        if let Some(dpd) = self.timers.dpd {
            if now >= self.last_rx + dpd * 2 {
                return Some(LivenessAction::Dead);
            }
            let due = match self.last_dpd {
                Some(sent) if sent >= self.last_rx => now >= sent + dpd / 2,
                _ => now >= self.last_rx + dpd,
            };
            if due {
                self.last_dpd = Some(now);
                self.last_tx = now;
                return Some(LivenessAction::SendDpd);
            }
        }
        if let (Some(at), Some(rekey)) = (self.rekey_at, self.timers.rekey) {
            if now >= at {
                self.rekey_at = Some(now + rekey);
                return Some(LivenessAction::Rekey);
            }
        }
        if let Some(keepalive) = self.timers.keepalive {
            if now >= self.last_tx + keepalive {
                self.last_tx = now;
                return Some(LivenessAction::SendKeepalive);
            }
        }
        None
    }
}

impl Liveness {
    /// How long the peer has been silent at `now`.
    pub fn silent_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_rx)
    }
}
