//! `sed` — shortest expected delay (`ip_vs_sed.c`): the available real with the lowest
//! `(active + 1) / weight`, compared by cross-multiplication, the first one on ties. Inactive
//! connections do not count.
//!
//! Indexed by a [`CostIndex`](super::index::CostIndex): O(1) pick, O(log n) per count change.

use super::RealState;
use super::index::{Cost, LeastCost, Pricing};
use crate::model::SchedulerKind;

/// sed's cost: expected delay `(active + 1) / weight`.
pub(crate) fn cost(r: &RealState) -> Cost {
    if r.available() {
        Cost::frac(r.active as u64 + 1, r.weight as u64)
    } else {
        Cost::BLOCKED
    }
}

/// Shortest expected delay pricing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sed;

impl Pricing for Sed {
    const KIND: SchedulerKind = SchedulerKind::Sed;
    fn cost(r: &RealState) -> Cost {
        cost(r)
    }
}

/// A shortest expected delay scheduler.
pub(crate) fn scheduler() -> LeastCost<Sed> {
    LeastCost::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::Scheduler;
    use crate::scheduler::testutil::{reals, req};

    #[test]
    fn picks_shortest_expected_delay() {
        let mut r = reals(&[1, 4]);
        // (0+1)/1 = 1 vs (3+1)/4 = 1: tie -> first.
        r[1].active = 3;
        let mut s = scheduler();
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req()), Some(0));
        r[1].active = 2; // 3/4 < 1
        s.counts_changed(&r, 1);
        assert_eq!(s.pick(&r, &req()), Some(1));
        // Inactive connections are ignored.
        r[1].inactive = 10_000;
        s.counts_changed(&r, 1);
        assert_eq!(s.pick(&r, &req()), Some(1));
    }

    #[test]
    fn idle_heavy_real_beats_idle_light_one() {
        // Unlike wlc (0/1 == 0/5, first wins), sed sends the first connection to the heavier.
        let r = reals(&[1, 5]);
        let mut s = scheduler();
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req()), Some(1));
    }

    #[test]
    fn never_weight_zero_or_overloaded() {
        let mut r = reals(&[0, 2, 9]);
        r[2].overloaded = true;
        let mut s = scheduler();
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req()), Some(1));
        r[1].overloaded = true;
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req()), None);
    }
}
