//! `lc` — least connection (`ip_vs_lc.c`): the available real with the lowest overhead
//! `active * 256 + inactive`, the first one on ties. Weights only decide availability.
//!
//! Indexed by a [`CostIndex`](super::index::CostIndex): O(1) pick, O(log n) per count change.

use super::RealState;
use super::index::{Cost, LeastCost, Pricing};
use crate::model::SchedulerKind;

/// lc's cost: the overhead itself.
pub(crate) fn cost(r: &RealState) -> Cost {
    if r.available() {
        Cost::frac(r.overhead(), 1)
    } else {
        Cost::BLOCKED
    }
}

/// Least connection pricing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lc;

impl Pricing for Lc {
    const KIND: SchedulerKind = SchedulerKind::Lc;
    fn cost(r: &RealState) -> Cost {
        cost(r)
    }
}

/// A least connection scheduler.
pub(crate) fn scheduler() -> LeastCost<Lc> {
    LeastCost::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::Scheduler;
    use crate::scheduler::testutil::{open, reals, req};

    #[test]
    fn picks_lowest_overhead_ignoring_weight() {
        let mut r = reals(&[1, 100, 1]);
        r[0].inactive = 300; // overhead 300
        r[1].active = 1; // overhead 256
        r[2].active = 1;
        r[2].inactive = 1; // overhead 257
        let mut s = scheduler();
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req()), Some(1));
    }

    #[test]
    fn first_on_ties_and_follows_counts() {
        let mut r = reals(&[1, 1, 1]);
        let mut s = scheduler();
        s.rebuild(&r);
        let mut picks = Vec::new();
        for _ in 0..6 {
            let i = s.pick(&r, &req()).unwrap();
            picks.push(i);
            open(&mut s, &mut r, i);
        }
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn never_weight_zero_or_overloaded() {
        let mut r = reals(&[0, 1, 1]);
        r[0].active = 0;
        r[1].overloaded = true;
        r[2].active = 1000;
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
