//! `ovf` — weighted overflow (`ip_vs_ovf.c`): the available real with the highest weight whose
//! active connections are still below its weight (the first one on ties). When the heaviest real
//! is "full", new connections overflow to the next heaviest. No real below its weight → `None`.
//!
//! Indexed by a [`CostIndex`](super::index::CostIndex) priced by inverse weight, with full reals
//! blocked: O(1) pick, O(log n) per count change.

use super::RealState;
use super::index::{Cost, LeastCost, Pricing};
use crate::model::SchedulerKind;

/// ovf's cost: `u32::MAX - weight` (heavier is cheaper) while `active < weight`.
pub(crate) fn cost(r: &RealState) -> Cost {
    if r.available() && r.active < r.weight {
        Cost::frac((u32::MAX - r.weight) as u64, 1)
    } else {
        Cost::BLOCKED
    }
}

/// Weighted overflow pricing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ovf;

impl Pricing for Ovf {
    const KIND: SchedulerKind = SchedulerKind::Ovf;
    fn cost(r: &RealState) -> Cost {
        cost(r)
    }
}

/// A weighted overflow scheduler.
pub(crate) fn scheduler() -> LeastCost<Ovf> {
    LeastCost::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::Scheduler;
    use crate::scheduler::testutil::{open, reals, req};

    #[test]
    fn fills_heaviest_then_overflows() {
        let mut r = reals(&[2, 3, 3, 1]);
        let mut s = scheduler();
        s.rebuild(&r);
        let mut picks = Vec::new();
        while let Some(i) = s.pick(&r, &req()) {
            picks.push(i);
            open(&mut s, &mut r, i);
        }
        assert_eq!(picks, vec![1, 1, 1, 2, 2, 2, 0, 0, 3]);
        // A connection closing on the heaviest makes it first again.
        r[2].active -= 1;
        s.counts_changed(&r, 2);
        assert_eq!(s.pick(&r, &req()), Some(2));
    }

    #[test]
    fn never_weight_zero_or_overloaded() {
        let mut r = reals(&[0, 5, 1]);
        r[1].overloaded = true;
        let mut s = scheduler();
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req()), Some(2));
        r[2].overloaded = true;
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req()), None);
        s.rebuild(&[]);
        assert_eq!(s.pick(&[], &req()), None);
    }
}
