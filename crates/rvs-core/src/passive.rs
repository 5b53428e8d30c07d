//! Passive failure detection of one real (nginx's `max_fails` / `fail_timeout`): the engine
//! reports the outcome of its connects, and after `max_fails` failed connects within
//! `fail_timeout` the real is *out* — not scheduled — for `fail_timeout`. Then it is back in
//! on probation: the next connection scheduled to it is the probe, and while the probe's connect
//! is pending the real is out again; a successful probe brings it in, a failed one takes it out
//! for another `fail_timeout`. A successful connect resets the count of failures.
//!
//! Engine-local: this is neither the operator's intent nor the health checkers' view (the
//! desired state does not change); [`crate::runtime::ServiceRuntime`] keeps one per real and
//! hides an out real from the scheduler. Time is passed in.

use crate::time::Timestamp;
use std::time::Duration;

/// The service's settings (from `ProxyOptions::max_fails` / `fail_timeout_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassiveLimits {
    /// Failed connects within `fail_timeout` that take a real out; 0 = never.
    pub max_fails: u32,
    /// The window of `max_fails`, and how long a real stays out.
    pub fail_timeout: Duration,
}

/// What the engine saw, or what happened to the real.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassiveEvent {
    /// A connect to the real failed (refused, error, timed out) at this time.
    Failed(Timestamp),
    /// A connect to the real succeeded.
    Succeeded,
    /// A connection was scheduled to the real at this time.
    Picked(Timestamp),
    /// Time passed (the out time may be over).
    Tick(Timestamp),
    /// The probe's connection ended without telling anything about the real (the director's
    /// own failure before the connect went out: no descriptor, no local port): the real is on
    /// probation again, and the next connection picked is the probe.
    Abandoned,
}

/// The state of one real.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PassiveState {
    /// Scheduled, no failed connect counted.
    #[default]
    In,
    /// Scheduled; `fails` (≥ 1) failed connects, the first of them at `since`.
    Failing { fails: u32, since: Timestamp },
    /// Not scheduled until `until`.
    Out { until: Timestamp },
    /// The out time is over: scheduled, and the next connection picked is the probe.
    Probation,
    /// The probe's connect is pending: not scheduled until its outcome, or `until`.
    Probing { until: Timestamp },
}

impl PassiveState {
    /// Whether the real must not be scheduled now.
    pub fn is_out(&self) -> bool {
        matches!(
            self,
            PassiveState::Out { .. } | PassiveState::Probing { .. }
        )
    }

    /// Until when it is out (`None`: it is scheduled).
    pub fn out_until(&self) -> Option<Timestamp> {
        match *self {
            PassiveState::Out { until } | PassiveState::Probing { until } => Some(until),
            _ => None,
        }
    }

    /// Whether the engine must report the next successful connect (failures are counted, or a
    /// probe is due or pending): lets it skip the report — a lock — on the common path.
    pub fn wants_success(&self) -> bool {
        !matches!(self, PassiveState::In)
    }

    /// The next state on `event`, and whether this was a take-out (counted: the first after
    /// failed connects, and every failed probe). `may_take_out` is false when taking the real
    /// out would leave its service with no real to schedule: it then stays in (see
    /// [`crate::runtime::ServiceRuntime`]). Whether it is scheduled is [`Self::is_out`].
    pub fn next(
        self,
        event: PassiveEvent,
        limits: PassiveLimits,
        may_take_out: bool,
    ) -> (PassiveState, bool) {
        use PassiveEvent as E;
        use PassiveState as S;
        let t = limits.fail_timeout;
        match (self, event) {
            // Off: every state falls back to in (a real left out when it was turned off).
            (_, _) if limits.max_fails == 0 => (S::In, false),
            // A first failure, or one after the window: the count starts again.
            (S::In, E::Failed(now)) => S::count(1, now, now, limits, may_take_out),
            (S::Failing { since, .. }, E::Failed(now)) if now.saturating_since(since) >= t => {
                S::count(1, now, now, limits, may_take_out)
            }
            (S::Failing { fails, since }, E::Failed(now)) => {
                S::count(fails.saturating_add(1), since, now, limits, may_take_out)
            }
            // A connect that started before the real went out failed: out from now on.
            (S::Out { until }, E::Failed(now)) => (
                S::Out {
                    until: until.max(now + t),
                },
                false,
            ),
            // The probe failed: out for another fail_timeout.
            (S::Probing { .. }, E::Failed(now)) => (S::Out { until: now + t }, true),
            // On probation, a connect that was not the probe failed: out again.
            (S::Probation, E::Failed(now)) if may_take_out => (S::Out { until: now + t }, true),
            (S::Probation, E::Failed(_)) => (S::Probation, false), // the last real: stays in
            // Any success resets the count; a probe's brings the real back in. A straggler's
            // success while out does not end the out time (nginx's behaviour).
            (S::Failing { .. } | S::Probation | S::Probing { .. }, E::Succeeded) => (S::In, false),
            (S::In | S::Out { .. }, E::Succeeded) => (self, false),
            // Picked on probation: this connection is the probe; out while its connect runs.
            (S::Probation, E::Picked(now)) if may_take_out => {
                (S::Probing { until: now + t }, false)
            }
            (_, E::Picked(_)) => (self, false),
            // The out time is over (also for a probe whose outcome never came): on probation.
            (S::Out { until } | S::Probing { until }, E::Tick(now)) if now >= until => {
                (S::Probation, false)
            }
            (_, E::Tick(_)) => (self, false),
            // The probe never reached the real: the next connection probes instead.
            (S::Probing { .. }, E::Abandoned) => (S::Probation, false),
            (_, E::Abandoned) => (self, false),
        }
    }

    /// `fails` failed connects since `since`, the last at `now`: out for `fail_timeout` once
    /// they reach `max_fails` (unless the real is the last one).
    fn count(
        fails: u32,
        since: Timestamp,
        now: Timestamp,
        limits: PassiveLimits,
        may_take_out: bool,
    ) -> (PassiveState, bool) {
        match fails >= limits.max_fails && may_take_out {
            true => (
                PassiveState::Out {
                    until: now + limits.fail_timeout,
                },
                true,
            ),
            false => (PassiveState::Failing { fails, since }, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PassiveEvent as E;
    use PassiveState as S;

    fn ms(v: u64) -> Timestamp {
        Timestamp::from_millis(v)
    }

    const L: PassiveLimits = PassiveLimits {
        max_fails: 2,
        fail_timeout: Duration::from_millis(1000),
    };

    /// Runs `events` from `In` (every take-out allowed); returns the states and take-outs.
    fn run(events: &[PassiveEvent]) -> (S, u32) {
        events.iter().fold((S::In, 0), |(s, n), &e| {
            let (s, out) = s.next(e, L, true);
            (s, n + u32::from(out))
        })
    }

    #[test]
    fn max_fails_within_fail_timeout_take_the_real_out_for_fail_timeout() {
        let (s, n) = run(&[E::Failed(ms(0)), E::Failed(ms(999))]);
        assert_eq!((s, n), (S::Out { until: ms(1999) }, 1));
        assert!(s.is_out());
        assert_eq!(s.next(E::Tick(ms(1998)), L, true).0, s);
        let (s, _) = s.next(E::Tick(ms(1999)), L, true);
        assert_eq!(s, S::Probation);
        assert!(!s.is_out());
    }

    #[test]
    fn failures_further_apart_than_fail_timeout_do_not_add_up() {
        let (s, n) = run(&[E::Failed(ms(0)), E::Failed(ms(1000)), E::Failed(ms(2500))]);
        assert_eq!(
            (s, n),
            (
                S::Failing {
                    fails: 1,
                    since: ms(2500)
                },
                0
            )
        );
    }

    #[test]
    fn a_success_resets_the_count() {
        let (s, n) = run(&[E::Failed(ms(0)), E::Succeeded, E::Failed(ms(10))]);
        assert_eq!(
            (s, n),
            (
                S::Failing {
                    fails: 1,
                    since: ms(10)
                },
                0
            )
        );
        assert!(s.wants_success());
        assert!(!S::In.wants_success());
    }

    #[test]
    fn the_probe_is_one_connection_and_its_outcome_decides() {
        let out = run(&[E::Failed(ms(0)), E::Failed(ms(0)), E::Tick(ms(1000))]).0;
        assert_eq!(out, S::Probation);
        // The probe is picked: out while it runs.
        let (probing, counted) = out.next(E::Picked(ms(1100)), L, true);
        assert_eq!((probing, counted), (S::Probing { until: ms(2100) }, false));
        assert!(probing.is_out());
        // It succeeds: back in, count reset.
        assert_eq!(probing.next(E::Succeeded, L, true), (S::In, false));
        // It fails: out for another fail_timeout, counted (one failure is enough).
        assert_eq!(
            probing.next(E::Failed(ms(1300)), L, true),
            (S::Out { until: ms(2300) }, true)
        );
        // Its outcome never comes: on probation again when its time is over.
        assert_eq!(probing.next(E::Tick(ms(2100)), L, true).0, S::Probation);
        // It is abandoned before reaching the real: on probation at once, nothing counted.
        assert_eq!(probing.next(E::Abandoned, L, true), (S::Probation, false));
    }

    #[test]
    fn an_abandoned_connection_changes_nothing_but_a_probe() {
        for s in [
            S::In,
            S::Failing {
                fails: 1,
                since: ms(0),
            },
            S::Out { until: ms(9) },
            S::Probation,
        ] {
            assert_eq!(s.next(E::Abandoned, L, true), (s, false), "{s:?}");
        }
    }

    #[test]
    fn a_late_failure_while_out_extends_a_straggler_success_does_not_end_it() {
        let out = S::Out { until: ms(1000) };
        assert_eq!(
            out.next(E::Failed(ms(500)), L, true),
            (S::Out { until: ms(1500) }, false)
        );
        assert_eq!(out.next(E::Succeeded, L, true), (out, false));
    }

    #[test]
    fn the_last_real_is_never_taken_out() {
        let (s, out) = S::In.next(E::Failed(ms(0)), L, false);
        let (s, out2) = s.next(E::Failed(ms(1)), L, false);
        assert_eq!(
            (s, out, out2),
            (
                S::Failing {
                    fails: 2,
                    since: ms(0)
                },
                false,
                false
            )
        );
        // Nor its probe made out.
        assert_eq!(
            S::Probation.next(E::Picked(ms(5)), L, false).0,
            S::Probation
        );
        assert_eq!(
            S::Probation.next(E::Failed(ms(5)), L, false).0,
            S::Probation
        );
    }

    #[test]
    fn max_fails_zero_is_off_and_brings_an_out_real_back() {
        let off = PassiveLimits { max_fails: 0, ..L };
        assert_eq!(S::In.next(E::Failed(ms(0)), off, true), (S::In, false));
        assert_eq!(
            S::Out { until: ms(9) }.next(E::Tick(ms(0)), off, true),
            (S::In, false)
        );
    }
}
