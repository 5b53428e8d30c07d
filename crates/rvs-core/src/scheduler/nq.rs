//! `nq` — never queue (`ip_vs_nq.c`): the first available real with no active connection;
//! if every available real is busy, the one with the lowest `(active + 1) / weight` (as sed),
//! the first one on ties.
//!
//! Indexed by a [`CostIndex`](super::index::CostIndex): idle reals form a cheaper class than
//! busy ones, so the root is the first idle real when there is one. O(1) pick, O(log n) per
//! count change.

use super::RealState;
use super::index::{Cost, LeastCost, Pricing};
use crate::model::SchedulerKind;

/// nq's cost: idle reals in class 0 (all equal, so the first wins), busy ones priced as sed.
pub(crate) fn cost(r: &RealState) -> Cost {
    match (r.available(), r.active) {
        (false, _) => Cost::BLOCKED,
        (true, 0) => Cost::frac(0, 1),
        (true, a) => Cost {
            class: 1,
            num: a as u64 + 1,
            den: r.weight as u64,
        },
    }
}

/// Never queue pricing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Nq;

impl Pricing for Nq {
    const KIND: SchedulerKind = SchedulerKind::Nq;
    fn cost(r: &RealState) -> Cost {
        cost(r)
    }
}

/// A never queue scheduler.
pub(crate) fn scheduler() -> LeastCost<Nq> {
    LeastCost::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::Scheduler;
    use crate::scheduler::testutil::{reals, req};

    #[test]
    fn idle_real_first_even_if_light() {
        let mut r = reals(&[10, 1, 1]);
        r[0].active = 1;
        r[1].inactive = 500; // inactive does not make it busy
        let mut s = scheduler();
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req()), Some(1));
    }

    #[test]
    fn all_busy_falls_back_to_sed() {
        let mut r = reals(&[10, 1, 3]);
        r[0].active = 10; // 11/10
        r[1].active = 1; // 2/1
        r[2].active = 2; // 3/3 = 1 < 1.1
        let mut s = scheduler();
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req()), Some(2));
        r[1].active = 0;
        s.counts_changed(&r, 1);
        assert_eq!(s.pick(&r, &req()), Some(1));
    }

    #[test]
    fn never_weight_zero_or_overloaded() {
        let mut r = reals(&[0, 1, 1]);
        r[1].overloaded = true;
        r[2].active = 7;
        let mut s = scheduler();
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req()), Some(2));
        r[2].weight = 0;
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req()), None);
    }
}
