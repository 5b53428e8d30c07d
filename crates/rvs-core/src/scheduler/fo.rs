//! `fo` — weighted failover (`ip_vs_fo.c`): the available real with the highest weight, the
//! first one on ties. All new connections go to it until it becomes unavailable.
//!
//! The reals are ranked by weight at each rebuild (the call protocol rebuilds on every weight
//! or overload change), so a pick is O(1): the first ranked real that is available.

use super::{PickRequest, RealState, Scheduler};
use crate::model::SchedulerKind;

/// Weighted failover.
#[derive(Debug, Default)]
pub struct Failover {
    /// Available reals by descending weight, then ascending index.
    ranked: Vec<u32>,
}

impl Scheduler for Failover {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Fo
    }

    fn rebuild(&mut self, reals: &[RealState]) {
        self.ranked.clear();
        self.ranked.extend(
            (0..reals.len())
                .filter(|&i| reals[i].available())
                .map(|i| i as u32),
        );
        self.ranked
            .sort_by_key(|&i| (std::cmp::Reverse(reals[i as usize].weight), i));
    }

    fn pick(&mut self, reals: &[RealState], _req: &PickRequest) -> Option<usize> {
        // The first entry, unless the caller skipped a rebuild and it became unavailable.
        self.ranked
            .iter()
            .map(|&i| i as usize)
            .find(|&i| reals.get(i).is_some_and(RealState::available))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testutil::{reals, req};

    #[test]
    fn highest_weight_first_on_ties() {
        let mut r = reals(&[2, 5, 5, 1]);
        let mut s = Failover::default();
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req()), Some(1));
        assert_eq!(s.pick(&r, &req()), Some(1));
        r[1].active = 10_000; // load does not matter
        assert_eq!(s.pick(&r, &req()), Some(1));
        r[1].overloaded = true;
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req()), Some(2));
        r[2].weight = 0;
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req()), Some(0));
    }

    #[test]
    fn none_when_nothing_available() {
        let mut r = reals(&[0, 3]);
        r[1].overloaded = true;
        let mut s = Failover::default();
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req()), None);
        s.rebuild(&[]);
        assert_eq!(s.pick(&[], &req()), None);
    }
}
