//! `wlc` — weighted least connection (`ip_vs_wlc.c`, ipvsadm's default): the available real with
//! the lowest `overhead / weight`, compared by cross-multiplication (`oh_a * w_b < oh_b * w_a`),
//! the first one on ties.
//!
//! Indexed by a [`CostIndex`](super::index::CostIndex): O(1) pick, O(log n) per count change.

use super::RealState;
use super::index::{Cost, LeastCost, Pricing};
use crate::model::SchedulerKind;

/// wlc's cost: overhead over weight.
pub(crate) fn cost(r: &RealState) -> Cost {
    if r.available() {
        Cost::frac(r.overhead(), r.weight as u64)
    } else {
        Cost::BLOCKED
    }
}

/// Weighted least connection pricing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wlc;

impl Pricing for Wlc {
    const KIND: SchedulerKind = SchedulerKind::Wlc;
    fn cost(r: &RealState) -> Cost {
        cost(r)
    }
}

/// A weighted least connection scheduler.
pub(crate) fn scheduler() -> LeastCost<Wlc> {
    LeastCost::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::Scheduler;
    use crate::scheduler::testutil::{open, reals, req};

    #[test]
    fn picks_by_cross_multiplied_cost() {
        let mut r = reals(&[1, 3, 2]);
        r[0].active = 1; // 256 / 1
        r[1].active = 2; // 512 / 3 = 170.7
        r[2].active = 1;
        r[2].inactive = 90; // 346 / 2 = 173
        let mut s = scheduler();
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req()), Some(1));
        r[2].inactive = 84; // 340 / 2 = 170 < 170.7
        s.counts_changed(&r, 2);
        assert_eq!(s.pick(&r, &req()), Some(2));
    }

    #[test]
    fn fills_in_proportion_to_weight() {
        let mut r = reals(&[1, 3]);
        let mut s = scheduler();
        s.rebuild(&r);
        for _ in 0..400 {
            let i = s.pick(&r, &req()).unwrap();
            open(&mut s, &mut r, i);
        }
        assert_eq!((r[0].active, r[1].active), (100, 300));
    }

    #[test]
    fn never_weight_zero_or_overloaded() {
        let mut r = reals(&[0, 1, 5]);
        r[2].overloaded = true;
        r[1].active = 50;
        let mut s = scheduler();
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req()), Some(1));
        r[1].weight = 0;
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req()), None);
    }
}
