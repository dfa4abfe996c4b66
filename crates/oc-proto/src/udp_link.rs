//! The life of a client's UDP data channel (DTLS now, ESP later) next to its TLS one,
//! without a clock: when to start a handshake, how long it may take, the vendor's probe
//! that turns a finished handshake into a channel the gateway accepts (Fortinet's
//! `clthello`, F5's `GET /myvpn`), when to give up and leave the traffic on TLS, and when
//! to try again. The shell owns the socket and the crypto; it reports what happened and
//! asks [`UdpLink::handle_timeout`] what to do next.
//!
//! States, as openconnect's `dtls_state`: `Off` (no grant, or disabled for good),
//! `Handshake` (`DTLS_CONNECTING`), `Probing` (`DTLS_CONNECTED`: the vendor's request sent,
//! its answer awaited), `Up` (`DTLS_ESTABLISHED`), `Sleeping` (a failure; retry later).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// The timers of one protocol's UDP channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpTimers {
    /// How long from the start of a handshake until the channel must be up (handshake and
    /// probe together); after it the attempt counts as failed.
    pub setup_limit: Duration,
    /// Pause after a failure before the next attempt (openconnect's `dtls_attempt_period`).
    pub retry_period: Duration,
    /// Resend period of the vendor's probe; `None` when the protocol has no probe.
    pub probe_resend: Option<Duration>,
}

impl UdpTimers {
    /// AnyConnect's DTLS: 12 s for the handshake, retry after 60 s, no probe.
    pub const ANYCONNECT: Self = Self {
        setup_limit: Duration::from_secs(12),
        retry_period: Duration::from_secs(60),
        probe_resend: None,
    };
    /// The PPP vendors' DTLS (Fortinet, F5): handshake and probe within 5 s, the probe
    /// resent every second, retry after 60 s (upstream's `ppp_udp_mainloop`).
    pub const PPP: Self = Self {
        setup_limit: Duration::from_secs(5),
        retry_period: Duration::from_secs(60),
        probe_resend: Some(Duration::from_secs(1)),
    };
    /// ESP (GlobalProtect, Pulse, NC): no handshake; five probes a second apart, then
    /// give up until the next attempt a minute later (upstream's `esp_mainloop`).
    pub const ESP: Self = Self::PPP;
}

/// Where the UDP channel stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpPhase {
    Off,
    Handshake { give_up: Instant },
    Probing { give_up: Instant, resend: Instant },
    Up,
    Sleeping { retry: Instant },
}

/// What the shell is to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpAction {
    /// Open a socket and start a handshake.
    StartHandshake,
    /// Send the vendor's probe (again).
    SendProbe,
    /// Drop the channel: the attempt failed for this reason; traffic stays on (or goes
    /// back to) TLS.
    Abandon(String),
}

/// How a vendor's gateway answered the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAnswer {
    /// The channel carries the tunnel from now on; the gateway may name our addresses.
    Accepted {
        ipv4: Option<Ipv4Addr>,
        ipv6: Option<Ipv6Addr>,
    },
    /// The gateway refused; `permanent` refusals disable UDP for the session.
    Refused { why: String, permanent: bool },
    /// Not an answer (a data frame that overtook it, say): keep waiting.
    Unrecognised,
}

/// The UDP channel's state machine.
#[derive(Debug, Clone)]
pub struct UdpLink {
    timers: UdpTimers,
    phase: UdpPhase,
    /// False once UDP is disabled for the session (no grant, or a permanent refusal).
    allowed: bool,
}

impl UdpLink {
    pub fn new(timers: UdpTimers) -> Self {
        Self {
            timers,
            phase: UdpPhase::Off,
            allowed: true,
        }
    }

    pub fn phase(&self) -> UdpPhase {
        self.phase
    }

    pub fn is_up(&self) -> bool {
        self.phase == UdpPhase::Up
    }

    /// True between the start of an attempt and its end (up or failed).
    pub fn is_connecting(&self) -> bool {
        matches!(
            self.phase,
            UdpPhase::Handshake { .. } | UdpPhase::Probing { .. }
        )
    }

    /// openconnect's words for the state (`SIGUSR1` statistics).
    pub fn status(&self) -> &'static str {
        match self.phase {
            UdpPhase::Off => "disabled",
            UdpPhase::Handshake { .. } | UdpPhase::Probing { .. } => "in progress",
            UdpPhase::Up => "connected",
            UdpPhase::Sleeping { .. } => "waiting to retry",
        }
    }

    /// openconnect's words for the state in its `Configured as ...` line.
    pub fn connection_state(&self) -> &'static str {
        match self.phase {
            UdpPhase::Off => "disabled",
            UdpPhase::Handshake { .. } | UdpPhase::Sleeping { .. } => "in progress",
            UdpPhase::Probing { .. } => "connected",
            UdpPhase::Up => "established",
        }
    }

    /// An attempt starts now (a grant arrived, or a rekey): the shell has opened the
    /// socket and sent the first flight. Ignored once UDP is disabled for the session.
    pub fn start(&mut self, now: Instant) {
        if self.allowed {
            self.phase = UdpPhase::Handshake {
                give_up: now + self.timers.setup_limit,
            };
        }
    }

    /// The handshake finished: up, or first the vendor's probe
    /// ([`UdpAction::SendProbe`] is returned to send it now).
    pub fn handshake_done(&mut self, now: Instant) -> Option<UdpAction> {
        let UdpPhase::Handshake { give_up } = self.phase else {
            return None;
        };
        match self.timers.probe_resend {
            Some(every) => {
                self.phase = UdpPhase::Probing {
                    give_up,
                    resend: now + every,
                };
                Some(UdpAction::SendProbe)
            }
            None => {
                self.phase = UdpPhase::Up;
                None
            }
        }
    }

    /// The gateway answered the probe. `Some` action when the channel is to be dropped.
    pub fn probe_answered(&mut self, answer: &ProbeAnswer, now: Instant) -> Option<UdpAction> {
        if !matches!(self.phase, UdpPhase::Probing { .. }) {
            return None;
        }
        match answer {
            ProbeAnswer::Accepted { .. } => {
                self.phase = UdpPhase::Up;
                None
            }
            ProbeAnswer::Refused { why, permanent } => {
                if *permanent {
                    self.disable();
                } else {
                    self.failed(now);
                }
                Some(UdpAction::Abandon(why.clone()))
            }
            ProbeAnswer::Unrecognised => None,
        }
    }

    /// The channel failed (handshake error, send error, dead peer): retry after the
    /// retry period.
    pub fn failed(&mut self, now: Instant) {
        self.phase = if self.allowed {
            UdpPhase::Sleeping {
                retry: now + self.timers.retry_period,
            }
        } else {
            UdpPhase::Off
        };
    }

    /// No UDP for the rest of the session (no grant, `--no-dtls`, a refusal that will not
    /// change, a server that answered with someone else's session).
    pub fn disable(&mut self) {
        self.allowed = false;
        self.phase = UdpPhase::Off;
    }

    /// Back to `Off` without a retry, keeping UDP allowed: a new TLS connection will grant
    /// the channel afresh.
    pub fn stop(&mut self) {
        self.phase = UdpPhase::Off;
    }

    /// When [`UdpLink::handle_timeout`] should run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            UdpPhase::Handshake { give_up } => Some(give_up),
            UdpPhase::Probing { give_up, resend } => Some(give_up.min(resend)),
            UdpPhase::Sleeping { retry } => Some(retry),
            UdpPhase::Off | UdpPhase::Up => None,
        }
    }

    /// What is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<UdpAction> {
        match self.phase {
            UdpPhase::Handshake { give_up } if now >= give_up => {
                self.failed(now);
                Some(UdpAction::Abandon("handshake timed out".into()))
            }
            UdpPhase::Probing { give_up, .. } if now >= give_up => {
                self.failed(now);
                Some(UdpAction::Abandon(
                    "the gateway did not accept the DTLS session in time".into(),
                ))
            }
            UdpPhase::Probing { give_up, resend } if now >= resend => {
                let every = self.timers.probe_resend.unwrap_or(Duration::from_secs(1));
                self.phase = UdpPhase::Probing {
                    give_up,
                    resend: now + every,
                };
                Some(UdpAction::SendProbe)
            }
            UdpPhase::Sleeping { retry } if now >= retry => {
                self.phase = UdpPhase::Handshake {
                    give_up: now + self.timers.setup_limit,
                };
                Some(UdpAction::StartHandshake)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn anyconnect_is_up_when_the_handshake_finishes() {
        let t0 = Instant::now();
        let mut link = UdpLink::new(UdpTimers::ANYCONNECT);
        assert_eq!(link.poll_timeout(), None);
        link.start(t0);
        assert_eq!(link.poll_timeout(), Some(t0 + secs(12)));
        assert_eq!(link.handle_timeout(t0 + secs(11)), None);
        assert_eq!(link.handshake_done(t0 + secs(1)), None);
        assert!(link.is_up());
        assert_eq!(link.status(), "connected");
        assert_eq!(link.poll_timeout(), None);
    }

    #[test]
    fn a_slow_handshake_is_abandoned_then_retried_after_the_period() {
        let t0 = Instant::now();
        let mut link = UdpLink::new(UdpTimers::ANYCONNECT);
        link.start(t0);
        let action = link.handle_timeout(t0 + secs(12));
        assert!(matches!(action, Some(UdpAction::Abandon(_))));
        assert_eq!(link.status(), "waiting to retry");
        assert_eq!(link.poll_timeout(), Some(t0 + secs(72)));
        assert_eq!(link.handle_timeout(t0 + secs(71)), None);
        assert_eq!(
            link.handle_timeout(t0 + secs(72)),
            Some(UdpAction::StartHandshake)
        );
        assert_eq!(link.poll_timeout(), Some(t0 + secs(84)));
    }

    #[test]
    fn a_ppp_probe_is_resent_each_second_until_answered_or_out_of_time() {
        let t0 = Instant::now();
        let mut link = UdpLink::new(UdpTimers::PPP);
        link.start(t0);
        assert_eq!(
            link.handshake_done(t0 + secs(1)),
            Some(UdpAction::SendProbe)
        );
        assert!(!link.is_up() && link.is_connecting());
        assert_eq!(link.connection_state(), "connected");
        assert_eq!(link.poll_timeout(), Some(t0 + secs(2)));
        assert_eq!(
            link.handle_timeout(t0 + secs(2)),
            Some(UdpAction::SendProbe)
        );
        assert_eq!(
            link.probe_answered(&ProbeAnswer::Unrecognised, t0 + secs(2)),
            None
        );
        assert_eq!(
            link.handle_timeout(t0 + secs(3)),
            Some(UdpAction::SendProbe)
        );
        // The whole set-up (handshake and probe) has 5 s.
        assert!(matches!(
            link.handle_timeout(t0 + secs(5)),
            Some(UdpAction::Abandon(_))
        ));
        assert_eq!(link.poll_timeout(), Some(t0 + secs(65)));

        link.handle_timeout(t0 + secs(65));
        link.handshake_done(t0 + secs(65));
        let accepted = ProbeAnswer::Accepted {
            ipv4: None,
            ipv6: None,
        };
        assert_eq!(link.probe_answered(&accepted, t0 + secs(66)), None);
        assert!(link.is_up());
        assert_eq!(link.connection_state(), "established");
    }

    #[test]
    fn a_permanent_refusal_disables_udp_for_the_session() {
        let t0 = Instant::now();
        let mut link = UdpLink::new(UdpTimers::PPP);
        link.start(t0);
        link.handshake_done(t0);
        let refused = ProbeAnswer::Refused {
            why: "svrhello status was \"fail\"".into(),
            permanent: true,
        };
        assert!(matches!(
            link.probe_answered(&refused, t0),
            Some(UdpAction::Abandon(_))
        ));
        assert_eq!(link.phase(), UdpPhase::Off);
        assert_eq!(link.poll_timeout(), None);
        link.start(t0 + secs(100));
        assert_eq!(link.phase(), UdpPhase::Off, "no new attempt once disabled");
        link.failed(t0);
        assert_eq!(link.poll_timeout(), None);
    }

    #[test]
    fn a_passing_refusal_and_a_failure_retry_later() {
        let t0 = Instant::now();
        let mut link = UdpLink::new(UdpTimers::PPP);
        link.start(t0);
        link.handshake_done(t0);
        let refused = ProbeAnswer::Refused {
            why: "HTTP 503".into(),
            permanent: false,
        };
        link.probe_answered(&refused, t0);
        assert_eq!(link.poll_timeout(), Some(t0 + secs(60)));
        // Answers and completions out of turn change nothing.
        assert_eq!(link.handshake_done(t0), None);
        assert_eq!(link.probe_answered(&refused, t0), None);
        assert_eq!(link.poll_timeout(), Some(t0 + secs(60)));
        link.stop();
        assert_eq!(link.poll_timeout(), None);
        link.start(t0);
        assert!(link.is_connecting());
    }
}
