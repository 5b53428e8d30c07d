//! Passive failure detection in the runtime (see [`crate::passive`] and the module docs of
//! [`super`]): connect outcomes reported by the engine move each real's [`PassiveState`]; a real
//! that is out has weight 0 in the scheduler's view — one rebuild when it goes out and one when
//! it comes back, none per connection.

use super::{ConnRef, FailOutcome, RealId, Scheduled, ServiceRuntime, Slot, SlotState};
use crate::passive::{PassiveEvent, PassiveLimits, PassiveState};
use crate::persistence::TemplateKey;
use crate::time::Timestamp;

impl ServiceRuntime {
    /// The real at `pos` was picked at `now`: on probation, this connection is its probe.
    pub(super) fn passive_picked(
        &mut self,
        pos: usize,
        template: Option<TemplateKey>,
        from: bool,
        all_out: bool,
        now: Timestamp,
    ) -> Scheduled {
        let slot = self.live[pos];
        let mut probe = false;
        if self.slots[slot as usize].passive == PassiveState::Probation {
            self.passive_event(slot, PassiveEvent::Picked(now));
            probe = matches!(
                self.slots[slot as usize].passive,
                PassiveState::Probing { .. }
            );
        }
        Scheduled {
            conn: ConnRef {
                real: RealId(slot),
                template,
            },
            index: pos,
            addr: self.states[pos].addr,
            from_template: from,
            report: self.slots[slot as usize].passive.wants_success(),
            probe,
            all_out,
        }
    }

    /// The probe of `real` ([`Scheduled::probe`]) ended before its connect went out (the
    /// director's own failure): the real is on probation again, the next connection probes it.
    pub fn probe_abandoned(&mut self, real: RealId) {
        if self.slot(real).is_some() {
            self.passive_event(real.0, PassiveEvent::Abandoned);
        }
    }

    /// A connect to `real` failed at `now` (passive failure detection; see the module docs).
    pub fn connect_failed(&mut self, real: RealId, now: Timestamp) -> FailOutcome {
        if self.slot(real).is_none() {
            return FailOutcome::default();
        }
        self.passive_event(real.0, PassiveEvent::Failed(now))
    }

    /// A connect to `real` succeeded: its count of failures starts again; a probe brings it in.
    /// Returns whether it was out and is back in.
    pub fn connect_succeeded(&mut self, real: RealId) -> bool {
        let Some(was_out) = self.slot(real).map(|s| s.passive.is_out()) else {
            return false;
        };
        self.passive_event(real.0, PassiveEvent::Succeeded);
        was_out && !self.slots[real.0 as usize].passive.is_out()
    }

    /// Whether the engine must report a successful connect to `real` (see [`Scheduled::report`]).
    pub fn wants_success(&self, real: RealId) -> bool {
        self.slot(real).is_some_and(|s| s.passive.wants_success())
    }

    fn passive_limits(&self) -> PassiveLimits {
        PassiveLimits {
            max_fails: self.options.proxy.max_fails,
            fail_timeout: std::time::Duration::from_millis(
                self.options.proxy.fail_timeout_ms.max(1).into(),
            ),
        }
    }

    /// Applies `event` to the real in `slot`; a real that goes out or comes back changes its
    /// weight in the scheduler's view (one rebuild).
    pub(super) fn passive_event(&mut self, slot: u32, event: PassiveEvent) -> FailOutcome {
        let limits = self.passive_limits();
        let s = &self.slots[slot as usize];
        let old = s.passive;
        let pos = match s.state {
            SlotState::Live(pos) => Some(pos),
            _ => None,
        };
        // Taking it out must leave some other real that can take a connection.
        let mut may = pos
            .is_none_or(|p| (self.states.iter().enumerate()).any(|(i, r)| i != p && r.available()));
        // The last real in failed while others are out: those out for a while come back on
        // probation (their being out is a guess from earlier connects; this failure is now),
        // and this one can go out. Without it, a rolling restart (one real restarted and out
        // for fail_timeout, then the last one in restarts) sends every UDP client and every
        // TCP client's first try to the dead real until the first one's time is up.
        let would_go_out = old.next(event, limits, true).0.is_out();
        if !may
            && would_go_out
            && let PassiveEvent::Failed(now) = event
        {
            may = self.passive_recall(slot, now, limits);
        }
        let (new, taken_out) = old.next(event, limits, may);
        let kept_last = !may && !new.is_out() && would_go_out;
        self.slots[slot as usize].passive = new;
        // (A retry's probe of an out real goes from out to probing without the scheduler
        // seeing it in: no weight change, no rebuild.)
        let weight = self.slots[slot as usize].scheduled_weight();
        if let Some(pos) = pos
            && old.is_out() != new.is_out()
            && self.states[pos].weight != weight
        {
            self.states[pos].weight = weight;
            self.rebuild_scheduler();
        }
        if old.out_until() != new.out_until() {
            self.passive_due = self
                .live_slots()
                .filter_map(|s| s.passive.out_until())
                .min();
        }
        FailOutcome {
            taken_out,
            kept_last,
        }
    }

    /// The reals other than `slot` that are out (not probing) for at least a second (or the
    /// whole fail_timeout, if shorter) and could take connections ([`Slot::could_take`]) go on
    /// probation (one rebuild for all). Whether any did. The second bounds how often a flood of
    /// failures while every real is dead brings reals back (each return and take-out is a
    /// rebuild).
    fn passive_recall(&mut self, slot: u32, now: Timestamp, limits: PassiveLimits) -> bool {
        let min_out = limits.fail_timeout.min(std::time::Duration::from_secs(1));
        let mut any = false;
        for &other in &self.live {
            let s = &mut self.slots[other as usize];
            if other == slot || !s.could_take() {
                continue;
            }
            if let PassiveState::Out { until } = s.passive {
                let left = until.saturating_since(now);
                if limits.fail_timeout.saturating_sub(left) >= min_out {
                    s.passive = PassiveState::Probation;
                    any = true;
                }
            }
        }
        if any {
            self.passive_refresh();
        }
        any
    }

    /// Reals whose out time is over at `now` go on probation (one rebuild for all).
    pub(super) fn passive_tick(&mut self, now: Timestamp) {
        let limits = self.passive_limits();
        for &slot in &self.live {
            let s = &mut self.slots[slot as usize];
            s.passive = s.passive.next(PassiveEvent::Tick(now), limits, true).0;
        }
        self.passive_refresh();
    }

    /// Every live real that is out gets the state `to` gives it (in or on probation).
    pub(super) fn passive_all_in(&mut self, to: impl Fn(PassiveState) -> PassiveState) {
        for &slot in &self.live {
            let s = &mut self.slots[slot as usize];
            if s.passive.is_out() {
                s.passive = to(s.passive);
            }
        }
        self.passive_refresh();
    }

    /// The scheduler's weights and the next due time after out states changed.
    fn passive_refresh(&mut self) {
        let mut changed = false;
        for (pos, &slot) in self.live.iter().enumerate() {
            let w = self.slots[slot as usize].scheduled_weight();
            changed |= self.states[pos].weight != w;
            self.states[pos].weight = w;
        }
        if changed {
            self.rebuild_scheduler();
        }
        self.passive_due = self
            .live_slots()
            .filter_map(|s| s.passive.out_until())
            .min();
    }

    pub(super) fn live_slots(&self) -> impl Iterator<Item = &Slot> + '_ {
        self.live.iter().map(|&s| &self.slots[s as usize])
    }
}
