//! Health-check state machines, keepalived's semantics as data.
//!
//! Three levels, each pure (no IO, no clock — `now` is passed in):
//!
//! * [`CheckerMachine`] — one checker of one real: when the next check is due (`delay_loop`,
//!   `delay_before_retry`, a `warmup` offset for the first one), how many consecutive failures
//!   mark it down (`retry`, alias `nb_get_retry`: down after `retry + 1` failures in a row), and
//!   where it starts (`alpha`: start down and need one success; otherwise start up).
//! * [`RealHealth`] — a real with one or more checkers: up only while every checker is up (as
//!   keepalived's `num_failed_checkers`); carries the `misc_dynamic` weight.
//! * [`ServiceHealth`] — a virtual server: its reals, `quorum` with `hysteresis` over the summed
//!   weight of the live reals, and the `sorry_server` that serves while quorum is lost.
//!
//! Every method returns [`HealthAction`]s (set health, set dynamic weight, run a notify command,
//! switch the sorry server) that the caller carries out; nothing here has side effects.

use crate::model::Health;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Per-checker thresholds (keepalived's checker and virtual-server keywords).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckThresholds {
    /// `delay_loop`: time between checks while the verdict is stable.
    pub delay_loop: Duration,
    /// `retry` / `nb_get_retry`: failures tolerated before the real is marked down.
    pub retry: u32,
    /// `delay_before_retry`: time before a retry after a failure.
    pub delay_before_retry: Duration,
    /// `alpha`: start down and wait for a first success.
    pub alpha: bool,
}

impl Default for CheckThresholds {
    /// keepalived's defaults: delay_loop 60 s, retry 1, delay_before_retry 1 s, no alpha.
    fn default() -> Self {
        CheckThresholds {
            delay_loop: Duration::from_secs(60),
            retry: 1,
            delay_before_retry: Duration::from_secs(1),
            alpha: false,
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckOutcome {
    /// The real answered as expected; `dynamic_weight` is set by `misc_dynamic` scripts.
    Success { dynamic_weight: Option<u32> },
    /// The real did not answer as expected.
    Failure,
}

/// What happened to one checker's verdict after a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Unchanged (including a failure that is still within `retry`).
    Same,
    /// Went up.
    Up,
    /// Went down.
    Down,
}

/// One checker of one real.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckerMachine {
    thresholds: CheckThresholds,
    up: bool,
    failures: u32,
    next_due: Timestamp,
}

impl CheckerMachine {
    /// A checker created at `now`; the first check is due after `warmup_offset` (the caller
    /// draws it from `0..=warmup`, keepalived's random warmup).
    pub fn new(thresholds: CheckThresholds, now: Timestamp, warmup_offset: Duration) -> Self {
        CheckerMachine {
            thresholds,
            up: !thresholds.alpha,
            failures: 0,
            next_due: now + warmup_offset,
        }
    }

    /// Whether this checker currently says up.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// When the next check should start.
    pub fn next_due(&self) -> Timestamp {
        self.next_due
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Feed the result of a check that finished at `now`.
    pub fn on_result(&mut self, now: Timestamp, outcome: CheckOutcome) -> Verdict {
        let t = self.thresholds;
        match (self.up, outcome) {
            // success while up: stay, normal cadence
            (true, CheckOutcome::Success { .. }) => {
                self.failures = 0;
                self.next_due = now + t.delay_loop;
                Verdict::Same
            }
            // success while down: up at once
            (false, CheckOutcome::Success { .. }) => {
                self.failures = 0;
                self.up = true;
                self.next_due = now + t.delay_loop;
                Verdict::Up
            }
            // failure while up and retries left: retry soon
            (true, CheckOutcome::Failure) if self.failures < t.retry => {
                self.failures += 1;
                self.next_due = now + t.delay_before_retry;
                Verdict::Same
            }
            // failure while up, retries spent: down
            (true, CheckOutcome::Failure) => {
                self.failures = 0;
                self.up = false;
                self.next_due = now + t.delay_loop;
                Verdict::Down
            }
            // failure while down: stay down, normal cadence
            (false, CheckOutcome::Failure) => {
                self.next_due = now + t.delay_loop;
                Verdict::Same
            }
        }
    }
}

/// Events a notify command is attached to (`notify_up`, `notify_down`, `quorum_up`,
/// `quorum_down`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NotifyEvent {
    RealUp,
    RealDown,
    QuorumUp,
    QuorumDown,
}

/// A side effect for the caller to carry out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HealthAction {
    /// Set a real's observed health. `inhibit` (from `inhibit_on_failure`) asks to keep a down
    /// real listed at weight 0 rather than removing it from the engines.
    SetHealth {
        real: SocketAddr,
        health: Health,
        inhibit: bool,
    },
    /// Set (or clear) a real's dynamic weight (`misc_dynamic`).
    SetDynamicWeight {
        real: SocketAddr,
        weight: Option<u32>,
    },
    /// Run the notify command for this event (`real` is `None` for quorum events).
    Notify {
        real: Option<SocketAddr>,
        event: NotifyEvent,
    },
    /// Switch the service's sorry server on or off. With `inhibit` (`sorry_server_inhibit`)
    /// "off" means listed at weight 0 rather than removed (keepalived's "Disabling"), and it is
    /// listed that way from the start.
    SorryServer { active: bool, inhibit: bool },
}

/// A real with its checkers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealHealth {
    addr: SocketAddr,
    weight: u32,
    inhibit_on_failure: bool,
    checkers: Vec<CheckerMachine>,
    dynamic_weight: Option<u32>,
    up: bool,
}

impl RealHealth {
    /// A real of configured `weight` with the given checkers (none = always up).
    pub fn new(
        addr: SocketAddr,
        weight: u32,
        inhibit_on_failure: bool,
        checkers: Vec<CheckerMachine>,
    ) -> Self {
        let up = checkers.iter().all(CheckerMachine::is_up);
        RealHealth {
            addr,
            weight,
            inhibit_on_failure,
            checkers,
            dynamic_weight: None,
            up,
        }
    }

    /// Whether every checker says up.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// The address of the real.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The real's checkers.
    pub fn checkers(&self) -> &[CheckerMachine] {
        &self.checkers
    }

    /// The weight that counts toward quorum: the dynamic one if set, else the configured one.
    pub fn weight(&self) -> u32 {
        self.dynamic_weight.unwrap_or(self.weight)
    }

    /// The actions that publish the current verdict (for a start or a reload).
    fn publish(&self) -> HealthAction {
        let health = if self.up { Health::Up } else { Health::Down };
        HealthAction::SetHealth {
            real: self.addr,
            health,
            inhibit: self.inhibit_on_failure,
        }
    }

    /// Feed a result of checker `index`; out-of-range indexes are ignored.
    pub fn on_result(
        &mut self,
        now: Timestamp,
        index: usize,
        outcome: CheckOutcome,
    ) -> Vec<HealthAction> {
        let mut out = Vec::new();
        let Some(checker) = self.checkers.get_mut(index) else {
            return out;
        };
        checker.on_result(now, outcome);
        if let CheckOutcome::Success { dynamic_weight } = outcome
            && dynamic_weight.is_some()
            && dynamic_weight != self.dynamic_weight
        {
            self.dynamic_weight = dynamic_weight;
            out.push(HealthAction::SetDynamicWeight {
                real: self.addr,
                weight: dynamic_weight,
            });
        }
        let up = self.checkers.iter().all(CheckerMachine::is_up);
        if up != self.up {
            self.up = up;
            out.push(self.publish());
            let event = if up {
                NotifyEvent::RealUp
            } else {
                NotifyEvent::RealDown
            };
            out.push(HealthAction::Notify {
                real: Some(self.addr),
                event,
            });
        }
        out
    }
}

/// Per-virtual-server settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServiceThresholds {
    /// `quorum`: minimum summed weight of live reals (keepalived's default is 1).
    pub quorum: u32,
    /// `hysteresis`: quorum is gained at `quorum + hysteresis`, lost below `quorum - hysteresis`.
    pub hysteresis: u32,
    /// Whether a `sorry_server` is configured.
    pub has_sorry_server: bool,
    /// `sorry_server_inhibit`: keep the sorry server at weight 0 while it is not needed
    /// (listed from the start) instead of adding and removing it.
    pub sorry_server_inhibit: bool,
    /// `omega`: run the down notifications when checking stops.
    pub omega: bool,
}

/// A virtual server's health: its reals and its quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceHealth {
    thresholds: ServiceThresholds,
    reals: BTreeMap<SocketAddr, RealHealth>,
    quorum_up: bool,
}

impl ServiceHealth {
    /// A service with these reals. Call [`ServiceHealth::start`] for the initial actions.
    pub fn new(thresholds: ServiceThresholds, reals: Vec<RealHealth>) -> Self {
        let reals = reals.into_iter().map(|r| (r.addr, r)).collect();
        let mut s = ServiceHealth {
            thresholds,
            reals,
            quorum_up: true,
        };
        let alive = s.alive_weight();
        s.quorum_up = alive > 0 && alive >= s.thresholds.quorum;
        s
    }

    /// Summed weight of the live reals.
    pub fn alive_weight(&self) -> u32 {
        self.reals
            .values()
            .filter(|r| r.up)
            .map(RealHealth::weight)
            .fold(0, u32::saturating_add)
    }

    /// Whether quorum is currently held.
    pub fn quorum_up(&self) -> bool {
        self.quorum_up
    }

    /// A real by address.
    pub fn real(&self, addr: &SocketAddr) -> Option<&RealHealth> {
        self.reals.get(addr)
    }

    /// All reals.
    pub fn reals(&self) -> impl Iterator<Item = &RealHealth> {
        self.reals.values()
    }

    /// The actions that publish the starting state: every real's health, and the sorry server
    /// if quorum is not held (with `sorry_server_inhibit`, the sorry server either way: active
    /// or at weight 0, as keepalived adds an inhibited sorry server at start).
    pub fn start(&self) -> Vec<HealthAction> {
        let mut out: Vec<_> = self.reals.values().map(RealHealth::publish).collect();
        if !self.quorum_up {
            out.push(HealthAction::Notify {
                real: None,
                event: NotifyEvent::QuorumDown,
            });
        }
        let t = self.thresholds;
        if t.has_sorry_server && (!self.quorum_up || t.sorry_server_inhibit) {
            out.push(HealthAction::SorryServer {
                active: !self.quorum_up,
                inhibit: t.sorry_server_inhibit,
            });
        }
        out
    }

    /// Feed a result of checker `index` of real `addr` (unknown reals are ignored).
    pub fn on_result(
        &mut self,
        now: Timestamp,
        addr: SocketAddr,
        index: usize,
        outcome: CheckOutcome,
    ) -> Vec<HealthAction> {
        let Some(real) = self.reals.get_mut(&addr) else {
            return Vec::new();
        };
        let mut out = real.on_result(now, index, outcome);
        // the live weight changes only with a real's health or weight: skip the sum otherwise
        if !out.is_empty() {
            out.extend(self.update_quorum());
        }
        out
    }

    /// Quorum with hysteresis, after any change of the live weight.
    fn update_quorum(&mut self) -> Vec<HealthAction> {
        let t = self.thresholds;
        let alive = self.alive_weight();
        let gain_at = t.quorum.saturating_add(t.hysteresis);
        let lose_below = t.quorum.saturating_sub(t.hysteresis);
        match (self.quorum_up, alive) {
            // held, but nothing alive or below the lower edge: lose it
            (true, w) if w == 0 || w < lose_below => {
                self.quorum_up = false;
                self.quorum_actions(false)
            }
            // held and still at or above the lower edge
            (true, _) => Vec::new(),
            // lost and something alive at or above the upper edge: gain it
            (false, w) if w > 0 && w >= gain_at => {
                self.quorum_up = true;
                self.quorum_actions(true)
            }
            // lost and still below the upper edge
            (false, _) => Vec::new(),
        }
    }

    fn quorum_actions(&self, up: bool) -> Vec<HealthAction> {
        let event = if up {
            NotifyEvent::QuorumUp
        } else {
            NotifyEvent::QuorumDown
        };
        let mut out = vec![HealthAction::Notify { real: None, event }];
        if self.thresholds.has_sorry_server {
            out.push(HealthAction::SorryServer {
                active: !up,
                inhibit: self.thresholds.sorry_server_inhibit,
            });
        }
        out
    }

    /// Checking stops (shutdown or removal): with `omega`, the down notifications of every live
    /// real and of the quorum; without it, nothing.
    pub fn stop(&self) -> Vec<HealthAction> {
        if !self.thresholds.omega {
            return Vec::new();
        }
        let mut out: Vec<_> = self
            .reals
            .values()
            .filter(|r| r.up)
            .map(|r| HealthAction::Notify {
                real: Some(r.addr),
                event: NotifyEvent::RealDown,
            })
            .collect();
        if self.quorum_up {
            out.push(HealthAction::Notify {
                real: None,
                event: NotifyEvent::QuorumDown,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: CheckOutcome = CheckOutcome::Success {
        dynamic_weight: None,
    };
    const FAIL: CheckOutcome = CheckOutcome::Failure;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn th(retry: u32, alpha: bool) -> CheckThresholds {
        CheckThresholds {
            delay_loop: Duration::from_secs(6),
            retry,
            delay_before_retry: Duration::from_secs(3),
            alpha,
        }
    }

    fn addr(last: u8) -> SocketAddr {
        format!("10.0.0.{last}:80").parse().unwrap()
    }

    fn real(last: u8, weight: u32, inhibit: bool, alpha: bool) -> RealHealth {
        let c = CheckerMachine::new(th(0, alpha), t(0), Duration::ZERO);
        RealHealth::new(addr(last), weight, inhibit, vec![c])
    }

    #[test]
    fn warmup_offsets_the_first_check() {
        let c = CheckerMachine::new(th(3, false), t(1000), Duration::from_millis(2500));
        assert_eq!(c.next_due(), t(3500));
        assert!(c.is_up());
    }

    #[test]
    fn down_after_retry_plus_one_failures_spaced_by_delay_before_retry() {
        let mut c = CheckerMachine::new(th(3, false), t(0), Duration::ZERO);
        for i in 0..3u64 {
            assert_eq!(c.on_result(t(i * 3000), FAIL), Verdict::Same);
            assert_eq!(
                c.next_due(),
                t(i * 3000 + 3000),
                "retry {i} is delay_before_retry later"
            );
            assert_eq!(c.failures(), i as u32 + 1);
        }
        assert_eq!(c.on_result(t(9000), FAIL), Verdict::Down);
        assert_eq!(c.next_due(), t(15000), "down: back to delay_loop");
        assert_eq!(c.on_result(t(15000), FAIL), Verdict::Same);
        assert_eq!(c.on_result(t(21000), OK), Verdict::Up);
        assert_eq!(c.next_due(), t(27000));
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let mut c = CheckerMachine::new(th(1, false), t(0), Duration::ZERO);
        assert_eq!(c.on_result(t(0), FAIL), Verdict::Same);
        assert_eq!(c.on_result(t(3000), OK), Verdict::Same);
        assert_eq!(c.failures(), 0);
        assert_eq!(c.on_result(t(9000), FAIL), Verdict::Same);
        assert_eq!(c.on_result(t(12000), FAIL), Verdict::Down);
    }

    #[test]
    fn alpha_starts_down_and_needs_one_success() {
        let mut c = CheckerMachine::new(th(3, true), t(0), Duration::ZERO);
        assert!(!c.is_up());
        assert_eq!(c.on_result(t(0), FAIL), Verdict::Same);
        assert_eq!(c.next_due(), t(6000));
        assert_eq!(c.on_result(t(6000), OK), Verdict::Up);
    }

    #[test]
    fn real_is_up_only_while_every_checker_is_up() {
        let cs = vec![
            CheckerMachine::new(th(0, false), t(0), Duration::ZERO),
            CheckerMachine::new(th(0, false), t(0), Duration::ZERO),
        ];
        let mut r = RealHealth::new(addr(7), 1, false, cs);
        let a = r.on_result(t(0), 1, FAIL);
        assert_eq!(
            a[0],
            HealthAction::SetHealth {
                real: addr(7),
                health: Health::Down,
                inhibit: false
            }
        );
        assert_eq!(
            a[1],
            HealthAction::Notify {
                real: Some(addr(7)),
                event: NotifyEvent::RealDown
            }
        );
        assert!(
            r.on_result(t(1), 0, FAIL).is_empty(),
            "already down: no second transition"
        );
        assert!(r.on_result(t(2), 1, OK).is_empty(), "checker 0 still down");
        let a = r.on_result(t(3), 0, OK);
        assert_eq!(
            a[0],
            HealthAction::SetHealth {
                real: addr(7),
                health: Health::Up,
                inhibit: false
            }
        );
        assert_eq!(
            a[1],
            HealthAction::Notify {
                real: Some(addr(7)),
                event: NotifyEvent::RealUp
            }
        );
        assert!(
            r.on_result(t(4), 9, FAIL).is_empty(),
            "unknown checker index ignored"
        );
    }

    #[test]
    fn inhibit_on_failure_is_carried_on_the_action() {
        let mut r = real(7, 1, true, false);
        let a = r.on_result(t(0), 0, FAIL);
        assert_eq!(
            a[0],
            HealthAction::SetHealth {
                real: addr(7),
                health: Health::Down,
                inhibit: true
            }
        );
    }

    #[test]
    fn misc_dynamic_weight_is_reported_once_per_change() {
        let mut r = real(7, 5, false, false);
        let dyn3 = CheckOutcome::Success {
            dynamic_weight: Some(3),
        };
        assert_eq!(
            r.on_result(t(0), 0, dyn3),
            vec![HealthAction::SetDynamicWeight {
                real: addr(7),
                weight: Some(3)
            }]
        );
        assert_eq!(r.weight(), 3);
        assert!(r.on_result(t(1), 0, dyn3).is_empty());
        assert!(
            r.on_result(t(2), 0, OK).is_empty(),
            "exit 0 leaves the weight as it is"
        );
        assert_eq!(r.weight(), 3);
    }

    #[test]
    fn sorry_server_when_every_real_is_down_and_back() {
        let st = ServiceThresholds {
            quorum: 1,
            hysteresis: 0,
            has_sorry_server: true,
            sorry_server_inhibit: false,
            omega: false,
        };
        let mut s =
            ServiceHealth::new(st, vec![real(7, 1, false, false), real(8, 1, false, false)]);
        assert!(s.quorum_up());
        assert_eq!(s.start().len(), 2);
        let a = s.on_result(t(0), addr(7), 0, FAIL);
        assert!(
            !a.iter()
                .any(|x| matches!(x, HealthAction::SorryServer { .. }))
        );
        let a = s.on_result(t(0), addr(8), 0, FAIL);
        assert!(a.contains(&HealthAction::SorryServer {
            active: true,
            inhibit: false
        }));
        assert!(a.contains(&HealthAction::Notify {
            real: None,
            event: NotifyEvent::QuorumDown
        }));
        assert!(!s.quorum_up());
        let a = s.on_result(t(6000), addr(8), 0, OK);
        assert!(a.contains(&HealthAction::SorryServer {
            active: false,
            inhibit: false
        }));
        assert!(a.contains(&HealthAction::Notify {
            real: None,
            event: NotifyEvent::QuorumUp
        }));
        assert!(
            s.on_result(t(0), addr(99), 0, FAIL).is_empty(),
            "unknown real ignored"
        );
    }

    #[test]
    fn quorum_hysteresis_gains_high_and_loses_low() {
        // weights 1,2,3 = 6; quorum 4, hysteresis 1: lose below 3, gain at 5
        let st = ServiceThresholds {
            quorum: 4,
            hysteresis: 1,
            has_sorry_server: false,
            sorry_server_inhibit: false,
            omega: false,
        };
        let reals = vec![
            real(1, 1, false, false),
            real(2, 2, false, false),
            real(3, 3, false, false),
        ];
        let mut s = ServiceHealth::new(st, reals);
        assert!(s.quorum_up());
        s.on_result(t(0), addr(1), 0, FAIL); // 5
        s.on_result(t(0), addr(2), 0, FAIL); // 3: still >= 3
        assert!(s.quorum_up());
        s.on_result(t(0), addr(2), 0, OK); // 5
        s.on_result(t(0), addr(3), 0, FAIL); // 2: < 3, lost
        assert!(!s.quorum_up());
        s.on_result(t(0), addr(1), 0, OK); // 3: below 5, still lost
        s.on_result(t(0), addr(3), 0, OK); // 6 >= 5: gained
        assert!(s.quorum_up());
    }

    #[test]
    fn quorum_counts_dynamic_weight() {
        let st = ServiceThresholds {
            quorum: 4,
            hysteresis: 0,
            has_sorry_server: true,
            sorry_server_inhibit: false,
            omega: false,
        };
        let mut s = ServiceHealth::new(st, vec![real(1, 5, false, false)]);
        let a = s.on_result(
            t(0),
            addr(1),
            0,
            CheckOutcome::Success {
                dynamic_weight: Some(2),
            },
        );
        assert!(a.contains(&HealthAction::SorryServer {
            active: true,
            inhibit: false
        }));
        assert_eq!(s.alive_weight(), 2);
    }

    #[test]
    fn alpha_reals_start_without_quorum() {
        let st = ServiceThresholds {
            quorum: 1,
            hysteresis: 0,
            has_sorry_server: true,
            sorry_server_inhibit: false,
            omega: false,
        };
        let s = ServiceHealth::new(st, vec![real(7, 1, false, true)]);
        assert!(!s.quorum_up());
        let a = s.start();
        assert_eq!(
            a[0],
            HealthAction::SetHealth {
                real: addr(7),
                health: Health::Down,
                inhibit: false
            }
        );
        assert!(a.contains(&HealthAction::SorryServer {
            active: true,
            inhibit: false
        }));
    }

    #[test]
    fn omega_notifies_down_on_stop() {
        let mut st = ServiceThresholds {
            quorum: 1,
            hysteresis: 0,
            has_sorry_server: false,
            sorry_server_inhibit: false,
            omega: false,
        };
        let s = ServiceHealth::new(st, vec![real(7, 1, false, false)]);
        assert!(s.stop().is_empty());
        st.omega = true;
        let s = ServiceHealth::new(st, vec![real(7, 1, false, false), real(8, 1, false, true)]);
        let a = s.stop();
        assert_eq!(
            a,
            vec![
                HealthAction::Notify {
                    real: Some(addr(7)),
                    event: NotifyEvent::RealDown
                },
                HealthAction::Notify {
                    real: None,
                    event: NotifyEvent::QuorumDown
                },
            ]
        );
    }

    #[test]
    fn inhibited_sorry_server_is_listed_from_the_start_and_disabled_not_removed() {
        let st = ServiceThresholds {
            quorum: 1,
            hysteresis: 0,
            has_sorry_server: true,
            sorry_server_inhibit: true,
            omega: false,
        };
        let off = HealthAction::SorryServer {
            active: false,
            inhibit: true,
        };
        let on = HealthAction::SorryServer {
            active: true,
            inhibit: true,
        };
        let mut s = ServiceHealth::new(st, vec![real(7, 1, false, false)]);
        let a = s.start();
        assert!(s.quorum_up());
        assert!(a.contains(&off), "listed at weight 0 from the start: {a:?}");
        assert!(!a.contains(&on));
        let a = s.on_result(t(0), addr(7), 0, FAIL);
        assert!(a.contains(&on), "{a:?}");
        let a = s.on_result(t(6000), addr(7), 0, OK);
        assert!(a.contains(&off), "{a:?}");
        // without the flag, a held quorum at start says nothing about the sorry server
        let plain = ServiceThresholds {
            sorry_server_inhibit: false,
            ..st
        };
        let s = ServiceHealth::new(plain, vec![real(7, 1, false, false)]);
        assert!(
            !s.start()
                .iter()
                .any(|x| matches!(x, HealthAction::SorryServer { .. }))
        );
    }
}
