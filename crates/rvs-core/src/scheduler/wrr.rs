//! `wrr` — weighted round robin (`ip_vs_wrr.c`): the kernel's interleaved, gcd-stepped sequence.
//!
//! The kernel keeps a current weight `cw`, the maximum weight `mw` and the gcd of all weights
//! `di`. It walks the reals in order; each time the walk wraps to the first real, `cw` drops by
//! `di` (back to `mw` below 1), and a real is picked when its weight is at least `cw`. For weights
//! 4, 3, 2 that gives `A  A B  A B C  A B C` and again.
//!
//! The kernel's walk may skip many reals per pick. rvs lists, for each distinct weight `w`, the
//! reals with weight ≥ `w` in index order; the walk of one `cw` level is exactly one such list,
//! so a pick is O(1): the next entry of the current list. When the lists would be too large
//! (many reals × many distinct weights, more than [`LIST_BUDGET`] entries) it falls back to the
//! kernel's walk, which gives the same sequence.

use super::{PickRequest, RealState, Scheduler};
use crate::model::SchedulerKind;

/// Most list entries kept (4 MiB of `u32`); beyond it the kernel's walk is used.
const LIST_BUDGET: usize = 1 << 20;

/// Weighted round robin.
#[derive(Debug, Default)]
pub struct WeightedRoundRobin {
    /// Distinct weights of the available reals, descending.
    levels: Vec<u32>,
    /// `lists[k]`: available reals with weight ≥ `levels[k]`, ascending (empty in walk mode).
    lists: Vec<Vec<u32>>,
    /// Walk mode: the lists were over budget.
    walk: bool,
    /// Maximum weight (`mw`), gcd of weights (`di`), current weight (`cw`).
    mw: u32,
    di: u32,
    cw: u32,
    /// Current list, and position of the next pick in it.
    k: usize,
    pos: usize,
    /// Index of the last real picked.
    last: Option<usize>,
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl WeightedRoundRobin {
    /// The list for weight level `cw`: the last `k` whose weight is still ≥ `cw`.
    fn level_of(&self, cw: u32) -> usize {
        self.levels.partition_point(|&w| w >= cw).saturating_sub(1)
    }

    /// Move to the next weight level (`cw - di`, or `mw` after the lowest).
    fn next_level(&mut self) {
        self.cw = if self.cw > self.di {
            self.cw - self.di
        } else {
            self.mw
        };
        self.k = self.level_of(self.cw);
        self.pos = 0;
    }

    fn pick_listed(&mut self, reals: &[RealState]) -> Option<usize> {
        let total: usize = self.lists.iter().map(Vec::len).sum();
        for _ in 0..=total {
            if self.pos >= self.lists[self.k].len() {
                self.next_level();
            }
            let idx = self.lists[self.k][self.pos] as usize;
            self.pos += 1;
            if reals
                .get(idx)
                .is_some_and(|r| r.available() && r.weight >= self.cw)
            {
                return Some(idx);
            }
        }
        None
    }

    /// The kernel's walk: `pos` is the index of the next real to consider.
    fn pick_walking(&mut self, reals: &[RealState]) -> Option<usize> {
        for _ in 0..=2 * reals.len() {
            if self.pos >= reals.len() {
                self.next_level();
            }
            let idx = self.pos;
            self.pos += 1;
            if reals
                .get(idx)
                .is_some_and(|r| r.available() && r.weight >= self.cw)
            {
                return Some(idx);
            }
        }
        None
    }
}

impl Scheduler for WeightedRoundRobin {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Wrr
    }

    fn rebuild(&mut self, reals: &[RealState]) {
        let avail: Vec<usize> = (0..reals.len()).filter(|&i| reals[i].available()).collect();
        let mut levels: Vec<u32> = avail.iter().map(|&i| reals[i].weight).collect();
        levels.sort_unstable_by(|a, b| b.cmp(a));
        levels.dedup();
        self.mw = levels.first().copied().unwrap_or(0);
        self.di = levels.iter().fold(0, |g, &w| gcd(g, w));
        let mut sorted: Vec<u32> = avail.iter().map(|&i| reals[i].weight).collect();
        sorted.sort_unstable();
        let list_len = |w: u32| sorted.len() - sorted.partition_point(|&x| x < w);
        let total: usize = levels.iter().map(|&w| list_len(w)).sum();
        self.walk = total > LIST_BUDGET;
        self.lists = if self.walk {
            Vec::new()
        } else {
            let list = |w: u32| {
                avail
                    .iter()
                    .filter(move |&&i| reals[i].weight >= w)
                    .map(|&i| i as u32)
            };
            levels.iter().map(|&w| list(w).collect()).collect()
        };
        self.levels = levels;
        // Resume rather than restart: keep cw (clamped to the new maximum) and continue after the
        // last real picked. (The kernel restarts its walk at the first real; with rebuilds on
        // every overload flip that would favour the first reals.)
        self.cw = if self.cw == 0 {
            self.mw
        } else {
            self.cw.min(self.mw)
        };
        self.k = self.level_of(self.cw);
        let after = |i: usize| self.last.is_none_or(|last| i > last);
        self.pos = match (self.walk, self.lists.get(self.k)) {
            (false, Some(list)) => list.partition_point(|&i| !after(i as usize)),
            _ => self.last.map_or(0, |l| l + 1),
        };
    }

    fn pick(&mut self, reals: &[RealState], _req: &PickRequest) -> Option<usize> {
        if self.levels.is_empty() {
            return None;
        }
        let idx = if self.walk {
            self.pick_walking(reals)
        } else {
            self.pick_listed(reals)
        }?;
        self.last = Some(idx);
        Some(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testutil::{reals, req};

    fn sequence(s: &mut WeightedRoundRobin, r: &[RealState], n: usize) -> Vec<usize> {
        (0..n).map(|_| s.pick(r, &req()).unwrap()).collect()
    }

    #[test]
    fn kernel_sequence_for_4_3_2() {
        let r = reals(&[4, 3, 2]);
        let mut s = WeightedRoundRobin::default();
        s.rebuild(&r);
        let one_cycle = vec![0, 0, 1, 0, 1, 2, 0, 1, 2];
        let mut want = one_cycle.clone();
        want.extend(&one_cycle);
        assert_eq!(sequence(&mut s, &r, 18), want);
    }

    #[test]
    fn gcd_steps_levels() {
        // gcd 2: levels 6, 4, 2 -> A, A B, A B -> counts 3 : 2, proportional to 6 : 4.
        let r = reals(&[6, 4]);
        let mut s = WeightedRoundRobin::default();
        s.rebuild(&r);
        assert_eq!(sequence(&mut s, &r, 10), vec![0, 0, 1, 0, 1, 0, 0, 1, 0, 1]);
    }

    #[test]
    fn walk_mode_gives_the_same_sequence() {
        let r = reals(&[5, 1, 3, 0, 2, 5, 4]);
        let mut listed = WeightedRoundRobin::default();
        listed.rebuild(&r);
        let mut walking = WeightedRoundRobin::default();
        walking.rebuild(&r);
        walking.walk = true;
        walking.lists.clear();
        assert_eq!(
            sequence(&mut listed, &r, 100),
            sequence(&mut walking, &r, 100)
        );
    }

    #[test]
    fn skips_weight_zero_and_overloaded() {
        let mut r = reals(&[3, 0, 2, 5]);
        r[3].overloaded = true;
        let mut s = WeightedRoundRobin::default();
        s.rebuild(&r);
        let picks = sequence(&mut s, &r, 50);
        assert!(picks.iter().all(|&i| i == 0 || i == 2));
        assert_eq!(picks.iter().filter(|&&i| i == 0).count(), 30);
    }

    #[test]
    fn none_when_nothing_available() {
        let r = reals(&[0, 0]);
        let mut s = WeightedRoundRobin::default();
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req()), None);
        s.rebuild(&[]);
        assert_eq!(s.pick(&[], &req()), None);
    }
}
