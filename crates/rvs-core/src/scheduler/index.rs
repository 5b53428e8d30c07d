//! A tournament tree over the reals of one service, keyed by a per-real [`Cost`].
//!
//! The least-connection family (lc, wlc, sed, nq), ovf, lblc and lblcr all pick "the available
//! real with the lowest cost, the first one on ties". The kernel scans every real for each new
//! connection; rvs keeps a tournament (segment) tree instead: each leaf holds one real's cost,
//! each inner node the index of the winner below it. A pick reads the root (O(1)); a change of
//! one real's counts replays the matches on its path to the root (O(log n)).
//!
//! Up to [`SCAN_LIMIT`] reals — most services — no tree is kept: a count change only re-prices
//! the real and a pick scans the few costs, which is cheaper than two tree updates per
//! connection (measured in `benches/schedulers.rs`).
//!
//! Costs are fractions `num / den` compared by cross-multiplication in 128-bit integers (exact,
//! no floating point), after a `class` that orders whole groups (e.g. nq's idle reals first).

use super::{PickRequest, RealState, Scheduler};
use crate::model::SchedulerKind;
use std::marker::PhantomData;

/// The cost of sending a new connection to one real; lower wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cost {
    /// Coarse ordering: a lower class always wins. [`Cost::BLOCKED`] is never picked.
    pub class: u8,
    /// Numerator of the cost within the class.
    pub num: u64,
    /// Denominator (never 0 for a pickable real).
    pub den: u64,
}

impl Cost {
    /// A real that must not be picked (weight 0, overloaded, or excluded by the scheduler).
    pub const BLOCKED: Cost = Cost {
        class: u8::MAX,
        num: 0,
        den: 1,
    };

    /// A cost of `num / den` in class 0.
    pub fn frac(num: u64, den: u64) -> Cost {
        Cost { class: 0, num, den }
    }

    /// Strictly cheaper than `other`.
    pub fn lt(&self, other: &Cost) -> bool {
        if self.class != other.class {
            return self.class < other.class;
        }
        (self.num as u128) * (other.den as u128) < (other.num as u128) * (self.den as u128)
    }
}

/// How a scheduler prices one real (a type, so the pricing is inlined into the index).
pub(crate) trait Pricing: std::fmt::Debug + Send + 'static {
    /// The scheduler this pricing belongs to.
    const KIND: SchedulerKind;
    /// The cost of sending a new connection to `r`.
    fn cost(r: &RealState) -> Cost;
}

const NONE: u32 = u32::MAX;

/// Up to this many reals, picks scan the costs instead of keeping a tree.
pub(crate) const SCAN_LIMIT: usize = 16;

/// The tournament tree.
#[derive(Debug, Clone)]
pub(crate) struct CostIndex<P> {
    pricing: PhantomData<P>,
    /// Number of leaves (a power of two ≥ the number of reals).
    leaves: usize,
    /// Cost of each real, by index.
    costs: Vec<Cost>,
    /// Winner (real index or NONE) of each node; node 1 is the root, leaves start at `leaves`.
    /// Empty in scan mode (at most [`SCAN_LIMIT`] reals).
    winners: Vec<u32>,
}

impl<P: Pricing> CostIndex<P> {
    /// An empty index.
    pub fn new() -> Self {
        CostIndex {
            pricing: PhantomData,
            leaves: 0,
            costs: Vec::new(),
            winners: Vec::new(),
        }
    }

    /// Number of reals indexed.
    pub fn len(&self) -> usize {
        self.costs.len()
    }

    /// Re-price every real and rebuild the tree (O(n)).
    pub fn rebuild(&mut self, reals: &[RealState]) {
        self.costs.clear();
        self.costs.extend(reals.iter().map(P::cost));
        self.winners.clear();
        if reals.len() <= SCAN_LIMIT {
            return;
        }
        self.leaves = reals.len().next_power_of_two();
        self.winners.resize(2 * self.leaves, NONE);
        for (i, _) in reals.iter().enumerate() {
            self.winners[self.leaves + i] = i as u32;
        }
        for node in (1..self.leaves).rev() {
            self.winners[node] = self.play(self.winners[2 * node], self.winners[2 * node + 1]);
        }
    }

    /// Re-price `reals[idx]` and replay its path to the root (O(log n)).
    pub fn update(&mut self, reals: &[RealState], idx: usize) {
        if reals.len() != self.costs.len() {
            self.rebuild(reals);
            return;
        }
        let Some(real) = reals.get(idx) else { return };
        let cost = P::cost(real);
        if self.costs[idx] == cost {
            return;
        }
        self.costs[idx] = cost;
        if self.winners.is_empty() {
            return;
        }
        let mut node = (self.leaves + idx) / 2;
        while node >= 1 {
            let w = self.play(self.winners[2 * node], self.winners[2 * node + 1]);
            let old = std::mem::replace(&mut self.winners[node], w);
            // Same winner, and not the real whose cost changed: nothing above can change.
            if w == old && w != idx as u32 {
                break;
            }
            node /= 2;
        }
    }

    /// The cheapest pickable real (first on ties), if any.
    pub fn best(&self) -> Option<usize> {
        let w = if self.winners.is_empty() {
            let cheaper = |b: u32, i: u32| {
                if self.costs[i as usize].lt(&self.costs[b as usize]) {
                    i
                } else {
                    b
                }
            };
            (0..self.costs.len() as u32).reduce(cheaper).unwrap_or(NONE)
        } else {
            self.winners[1]
        };
        if w == NONE || self.costs[w as usize].class == u8::MAX {
            return None;
        }
        Some(w as usize)
    }

    /// Whether the indexed cost of `reals[idx]` is up to date (the caller kept the protocol).
    pub fn is_current(&self, reals: &[RealState], idx: usize) -> bool {
        reals.len() == self.costs.len()
            && reals.get(idx).map(P::cost) == self.costs.get(idx).copied()
    }

    /// The winner of a match between `a` (lower indices) and `b` (higher indices).
    fn play(&self, a: u32, b: u32) -> u32 {
        match (a, b) {
            (NONE, x) | (x, NONE) => x,
            (a, b) if self.costs[b as usize].lt(&self.costs[a as usize]) => b,
            (a, _) => a,
        }
    }
}

/// A scheduler that picks the cheapest real by its [`CostFn`]: lc, wlc, sed, nq and ovf.
#[derive(Debug, Clone)]
pub(crate) struct LeastCost<P> {
    index: CostIndex<P>,
}

impl<P: Pricing> LeastCost<P> {
    /// A scheduler pricing reals with `P`.
    pub fn new() -> Self {
        LeastCost {
            index: CostIndex::new(),
        }
    }
}

impl<P: Pricing> Scheduler for LeastCost<P> {
    fn kind(&self) -> SchedulerKind {
        P::KIND
    }

    fn rebuild(&mut self, reals: &[RealState]) {
        self.index.rebuild(reals);
    }

    fn counts_changed(&mut self, reals: &[RealState], idx: usize) {
        self.index.update(reals, idx);
    }

    fn pick(&mut self, reals: &[RealState], _req: &PickRequest) -> Option<usize> {
        if reals.len() == self.index.len() {
            match self.index.best() {
                None => return None,
                Some(i) if self.index.is_current(reals, i) => return Some(i),
                Some(_) => {}
            }
        }
        // The caller skipped a rebuild or a count change: re-index rather than trust it.
        self.index.rebuild(reals);
        self.index.best()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testutil::reals;

    #[derive(Debug, Clone)]
    struct ByOverhead;

    impl Pricing for ByOverhead {
        const KIND: SchedulerKind = SchedulerKind::Lc;
        fn cost(r: &RealState) -> Cost {
            by_overhead(r)
        }
    }

    fn by_overhead(r: &RealState) -> Cost {
        if r.available() {
            Cost::frac(r.overhead(), 1)
        } else {
            Cost::BLOCKED
        }
    }

    /// The index agrees with a full scan after every single update.
    #[test]
    fn matches_a_scan_after_updates() {
        matches_a_scan(7);
        matches_a_scan(SCAN_LIMIT + 1);
        matches_a_scan(100);
    }

    fn matches_a_scan(n: usize) {
        let mut weights = vec![1; n];
        weights[3] = 0;
        let mut r = reals(&weights);
        let mut index = CostIndex::<ByOverhead>::new();
        index.rebuild(&r);
        let mut x: u64 = 7;
        for _ in 0..2000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let i = (x >> 33) as usize % r.len();
            if (x >> 20) & 1 == 0 {
                r[i].active += 1;
            } else {
                r[i].active = r[i].active.saturating_sub(1);
            }
            index.update(&r, i);
            let scan = (0..r.len())
                .filter(|&i| r[i].available())
                .min_by_key(|&i| (r[i].overhead(), i));
            assert_eq!(index.best(), scan);
        }
    }

    #[test]
    fn cross_multiplication_is_exact() {
        assert!(Cost::frac(1, 3).lt(&Cost::frac(1, 2)));
        assert!(!Cost::frac(2, 4).lt(&Cost::frac(1, 2)));
        assert!(Cost::frac(u64::MAX, u64::MAX).lt(&Cost::frac(u64::MAX, u64::MAX - 1)));
        assert!(Cost::frac(1000, 1).lt(&Cost {
            class: 1,
            num: 0,
            den: 1
        }));
    }

    #[test]
    fn empty_and_all_blocked_give_none() {
        let mut index = CostIndex::<ByOverhead>::new();
        index.rebuild(&[]);
        assert_eq!(index.best(), None);
        index.rebuild(&reals(&[0, 0]));
        assert_eq!(index.best(), None);
    }
}
