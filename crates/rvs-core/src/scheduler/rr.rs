//! `rr` — round robin (`ip_vs_rr.c`): the next available real after the last one picked.
//!
//! The available reals are listed at each rebuild (the call protocol rebuilds on every change
//! of weight or overload flag), so a pick is O(1): the next entry of that list.

use super::{PickRequest, RealState, Scheduler};
use crate::model::SchedulerKind;

/// Round robin over the available reals.
#[derive(Debug, Default)]
pub struct RoundRobin {
    /// Indices of the available reals, ascending.
    available: Vec<u32>,
    /// Position in `available` of the next pick.
    next: usize,
    /// Index of the last real picked; a rebuild resumes after it.
    last: Option<usize>,
}

impl Scheduler for RoundRobin {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Rr
    }

    fn rebuild(&mut self, reals: &[RealState]) {
        self.available.clear();
        self.available.extend(
            (0..reals.len())
                .filter(|&i| reals[i].available())
                .map(|i| i as u32),
        );
        self.next = match self.last {
            Some(last) => self.available.partition_point(|&i| i as usize <= last),
            None => 0,
        };
    }

    fn pick(&mut self, reals: &[RealState], _req: &PickRequest) -> Option<usize> {
        // Tolerate a stale list (caller skipped a rebuild): try each listed real at most once.
        for _ in 0..self.available.len() {
            if self.next >= self.available.len() {
                self.next = 0;
            }
            let idx = self.available[self.next] as usize;
            self.next += 1;
            if reals.get(idx).is_some_and(RealState::available) {
                self.last = Some(idx);
                return Some(idx);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testutil::{reals, req};

    #[test]
    fn rotates_and_skips_unavailable() {
        let mut r = reals(&[1, 0, 1, 1]);
        r[3].overloaded = true;
        let mut s = RoundRobin::default();
        s.rebuild(&r);
        let picks: Vec<_> = (0..4).map(|_| s.pick(&r, &req()).unwrap()).collect();
        assert_eq!(picks, vec![0, 2, 0, 2]);
    }

    #[test]
    fn resumes_after_the_last_pick_on_rebuild() {
        let mut r = reals(&[1, 1, 1, 1]);
        let mut s = RoundRobin::default();
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req()), Some(0));
        assert_eq!(s.pick(&r, &req()), Some(1));
        r[2].weight = 0;
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req()), Some(3));
        assert_eq!(s.pick(&r, &req()), Some(0));
    }

    #[test]
    fn none_when_nothing_available() {
        let r = reals(&[0, 0]);
        let mut s = RoundRobin::default();
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req()), None);
        s.rebuild(&[]);
        assert_eq!(s.pick(&[], &req()), None);
    }
}
