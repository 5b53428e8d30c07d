//! `twos` — weighted random twos choice (`ip_vs_twos.c`): draw two reals at random, each with
//! probability proportional to its weight, and take the one with the lower `overhead / weight`
//! (cross-multiplied; the first draw on ties).
//!
//! Randomness comes from a SplitMix64 generator seeded by [`SchedulerParams::seed`]
//! (super::SchedulerParams), never from the OS: the same seed and inputs give the same picks.
//! A draw is a binary search over cumulative weights: O(log n).

use super::hash::mix64;
use super::{PickRequest, RealState, Scheduler};
use crate::model::SchedulerKind;

/// SplitMix64's state increment (the golden gamma).
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// Weighted random twos choice.
#[derive(Debug)]
pub struct TwosChoice {
    /// Generator state.
    state: u64,
    /// Available reals, ascending.
    ids: Vec<u32>,
    /// `cumulative[k]`: sum of the weights of `ids[..=k]`.
    cumulative: Vec<u64>,
}

impl TwosChoice {
    /// A twos scheduler whose generator starts from `seed`.
    pub fn new(seed: u64) -> Self {
        TwosChoice {
            state: seed,
            ids: Vec::new(),
            cumulative: Vec::new(),
        }
    }

    fn next_random(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix64(self.state)
    }

    /// One weighted draw (the total weight is > 0).
    fn draw(&mut self) -> usize {
        let total = *self.cumulative.last().unwrap_or(&0);
        let target = ((self.next_random() as u128 * total as u128) >> 64) as u64;
        let k = self.cumulative.partition_point(|&c| c <= target);
        self.ids[k.min(self.ids.len() - 1)] as usize
    }
}

impl Scheduler for TwosChoice {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Twos
    }

    fn rebuild(&mut self, reals: &[RealState]) {
        self.ids.clear();
        self.cumulative.clear();
        let mut sum = 0u64;
        for (i, r) in reals.iter().enumerate().filter(|(_, r)| r.available()) {
            sum += r.weight as u64;
            self.ids.push(i as u32);
            self.cumulative.push(sum);
        }
    }

    fn pick(&mut self, reals: &[RealState], _req: &PickRequest) -> Option<usize> {
        if self.ids.is_empty() {
            return None;
        }
        let (a, b) = (self.draw(), self.draw());
        let ok = |i: usize| reals.get(i).filter(|r| r.available());
        match (ok(a), ok(b)) {
            (Some(ra), Some(rb)) => {
                let cost_a = ra.overhead() as u128 * rb.weight as u128;
                let cost_b = rb.overhead() as u128 * ra.weight as u128;
                Some(if cost_b < cost_a { b } else { a })
            }
            (Some(_), None) => Some(a),
            (None, Some(_)) => Some(b),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testutil::{reals, req};

    #[test]
    fn same_seed_same_picks_other_seed_differs() {
        let r = reals(&[1, 2, 3, 4]);
        let run = |seed| {
            let mut s = TwosChoice::new(seed);
            s.rebuild(&r);
            (0..64)
                .map(|_| s.pick(&r, &req()).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn prefers_the_less_loaded_of_two() {
        // Two reals: when the draws differ, the idle one always wins.
        let mut r = reals(&[1, 1]);
        r[0].active = 5;
        let mut s = TwosChoice::new(7);
        s.rebuild(&r);
        let picks: Vec<_> = (0..200).map(|_| s.pick(&r, &req()).unwrap()).collect();
        let to_busy = picks.iter().filter(|&&i| i == 0).count();
        // Only when both draws hit real 0 (about 1/4 of the time).
        assert!((25..=75).contains(&to_busy), "{to_busy}");
    }

    #[test]
    fn draws_follow_weights() {
        let r = reals(&[1, 0, 3]);
        let mut s = TwosChoice::new(3);
        s.rebuild(&r);
        let n = 40_000;
        let heavy = (0..n).filter(|_| s.draw() == 2).count();
        assert!((heavy as f64 / n as f64 - 0.75).abs() < 0.01, "{heavy}");
    }

    #[test]
    fn never_weight_zero_or_overloaded() {
        let mut r = reals(&[0, 1, 1]);
        r[1].overloaded = true;
        let mut s = TwosChoice::new(0);
        s.rebuild(&r);
        assert!((0..100).all(|_| s.pick(&r, &req()) == Some(2)));
        r[2].weight = 0;
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req()), None);
    }
}
