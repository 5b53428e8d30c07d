//! Maglev consistent hashing (Eisenbud et al., NSDI 2016), for the `mh` scheduler and the XDP
//! engine.
//!
//! A [`MaglevTable`] of prime size `M` (default [`DEFAULT_TABLE_SIZE`] = 65537) maps every slot
//! to one real. A new flow goes to `table[flow_hash % M]` (see [`hash::flow_hash`]); when the set
//! of reals changes, few slots change owner, so few flows move.
//!
//! **Permutations.** Real `i` proposes slots in the order `(b_i·j + c_i)^e + d_i (mod M)` for
//! ranks `j = 0, 1, …`, with `b_i ∈ [1, M)`, `c_i, d_i` from fixed hashes of the real's identity
//! (its address and port, see [`hash`]) and `e` the smallest odd number ≥ 3 coprime with `M − 1`
//! (3 for 65537): a full permutation of the slots for `M` prime. The paper's linear permutation
//! (`offset + j·skip`) ties two reals with equal or small-ratio skips together through the whole
//! population, which made rare sets move up to 14 % of the table between survivors (see
//! `perm.rs` and the table below).
//!
//! **Quotas.** Each real with weight above 0 gets a quota of exactly its weight's share of the
//! `M` slots: `⌊M·w_i / Σw⌋`, and the slots left by rounding go one each to the reals with the
//! largest remainders (ties by identity). So every real's share is its weight share to within
//! one slot — within 1% of fair whenever a real's fair share is ≥ 100 slots (`M ≥ 100 N` for
//! equal weights).
//!
//! **Population (rank-synchronous weighted turns).** The reals are visited in a fixed order —
//! sorted by identity bytes, so the table does not depend on the order reals were configured in —
//! round after round. In each round real `i` gains `w_i` credit and, while its credit is at least
//! `w_max` (the largest weight) and it is below its quota, spends `w_max` to *propose the next
//! slot of its permutation*: it takes the slot if the slot is free, and moves on either way.
//! A real that reaches its quota stops. Population ends when every slot is taken (the quotas
//! add up to `M`).
//!
//! This differs from the paper's population in one point: there a real whose next slot is taken
//! walks on to the next *free* slot in the same turn. That makes each real's claims depend on
//! every claim made before it, so removing one real shifts the turns of all the others and
//! cascades. Here a slot goes to whichever real reaches it first *in permutation rank* (ties in
//! the same round go to the real earlier in the fixed order) — rendezvous hashing by rank — and
//! the quotas only decide the last slots of each real. Removing a real frees its slots, raises
//! the others' quotas, and moves few slots between the survivors.
//!
//! **Disruption,** measured with `examples/maglev_churn.rs` over random sets of equal-weight
//! reals, as the share of the table that moves between the *remaining* reals when one of N is
//! removed (the removed real's own slots must move and are not counted); 2,000 sets per row
//! (400 at `M = 65537`), this permutation vs the paper's linear one:
//!
//! | table | N | median | p90 | max | linear: median / p90 / max |
//! |---|---|---|---|---|---|
//! | `M ≈ 100 N` | 3 / 4 / 20 / 65 | 0.65 / 1.25 / 1.40 / 0.98% | 1.95 / 2.24 / 1.70 / 1.12% | 7.49 / 3.99 / 2.30 / 1.33% | 0.33–1.30 / 1.10–2.00 / **14.33** / 13.72 / 3.89 / 1.63% |
//! | `M ≈ 1000 N` | 3 / 4 / 20 / 65 | 0.23 / 0.37 / 0.43 / 0.29% | 0.60 / 0.70 / 0.53 / 0.32% | 1.23 / 1.35 / 0.69 / 0.40% | 0.07–0.38 / 0.23–0.49 / **13.76** / 7.57 / 1.11 / 0.48% |
//! | `M = 65537` | 3 … 100 | 0.05 – 0.31% | ≤ 0.34% | ≤ 0.39% | ≤ 0.29 / ≤ 0.32 / **1.20**% (N = 4) |
//!
//! The typical set moves a little more than with the linear walk, the worst sets far less; the
//! worst case is what an operator meets when a small pool loses a real.
//!
//! The quotas are what keeps shares exact, and they cost some movement: each real's last
//! claims depend on when the others fill up, so the survivors' churn shrinks like `1/√(M/N)`.
//! The property tests assert the bound — at most `M/N + 1%` of `M` moves between the
//! remaining reals — for every `M ≥ 100 N`, and the stricter reading (at most 1% of `M` moves
//! between survivors, so all moved slots ≤ `M/N + 1%`) at the default `M = 65537` for up to 100
//! reals; at `M ≈ 100 N` the stricter reading does not hold (one slot is 1% of a real's share).

//! Two directors given the same reals, weights and `M` build byte-identical tables; the golden
//! test in `tests/maglev_golden.rs` pins it.

pub mod hash;
mod perm;

use perm::{Permutation, Powers};

use std::net::SocketAddr;

/// rvs's default table size (IPVS's `mh` uses 251; bigger means smoother shares).
pub const DEFAULT_TABLE_SIZE: u32 = 65537;
/// Largest accepted table size (2^24 slots; 64 MiB of `u32`s would be absurd already).
pub const MAX_TABLE_SIZE: u32 = 1 << 24;

/// A table that cannot be built; nothing is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MaglevError {
    /// The size is not a prime number.
    #[error("Maglev table size {0} is not a prime number (e.g. 251, 65537)")]
    NotPrime(u32),
    /// The size is above [`MAX_TABLE_SIZE`].
    #[error("Maglev table size {0} is above the maximum {MAX_TABLE_SIZE}")]
    TooLarge(u32),
    /// Two reals share an address and port.
    #[error("real server {0} given twice")]
    DuplicateReal(SocketAddr),
}

/// Is `n` prime (trial division; `n` ≤ 2^24 so at most ~2,000 divisions)?
pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let n = u64::from(n);
    (3..)
        .step_by(2)
        .take_while(|d| d * d <= n)
        .all(|d| !n.is_multiple_of(d))
}

/// A built Maglev lookup table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaglevTable {
    /// Per slot: index of the real in the list given to [`MaglevTable::build`], or
    /// [`MaglevTable::EMPTY`] if no real has weight.
    slots: Vec<u32>,
}

/// One real's walk through its permutation.
struct Walker {
    index: u32,
    weight: u64,
    perm: Permutation,
    credit: u64,
    /// Slots this real may own (its weight share of the table).
    quota: u64,
    /// Slots it owns so far.
    owned: u64,
}

impl MaglevTable {
    /// Slot value when no real has weight above 0.
    pub const EMPTY: u32 = u32::MAX;

    /// Build the table of size `size` for `reals` (address, effective weight), in the order
    /// given (the slot values are indices into it). See the module docs for the algorithm.
    pub fn build(reals: &[(SocketAddr, u32)], size: u32) -> Result<Self, MaglevError> {
        if size > MAX_TABLE_SIZE {
            return Err(MaglevError::TooLarge(size));
        }
        if !is_prime(size) {
            return Err(MaglevError::NotPrime(size));
        }
        let mut ids: Vec<(Vec<u8>, u32, u32)> = reals
            .iter()
            .enumerate()
            .map(|(i, &(addr, w))| (hash::real_identity(addr), i as u32, w))
            .collect();
        ids.sort();
        if let Some(w) = ids.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(MaglevError::DuplicateReal(reals[w[1].1 as usize].0));
        }
        let mut walkers: Vec<Walker> = ids
            .iter()
            .filter(|(_, _, w)| *w > 0)
            .map(|(id, index, w)| Walker {
                index: *index,
                weight: u64::from(*w),
                perm: Permutation::new(id, size),
                credit: 0,
                quota: 0,
                owned: 0,
            })
            .collect();
        assign_quotas(&mut walkers, size);
        let mut slots = vec![Self::EMPTY; size as usize];
        if !walkers.is_empty() {
            populate(&mut slots, &mut walkers);
        }
        Ok(MaglevTable { slots })
    }

    /// Table size `M`.
    pub fn size(&self) -> u32 {
        self.slots.len() as u32
    }

    /// Every slot, in order (each an index into the build list, or [`Self::EMPTY`]).
    pub fn slots(&self) -> &[u32] {
        &self.slots
    }

    /// The slot a hash falls in: `hash % M`.
    pub fn slot_of(&self, hash: u32) -> usize {
        (hash % self.size()) as usize
    }

    /// The real (index into the build list) for a flow hash, `None` if no real has weight.
    pub fn lookup(&self, hash: u32) -> Option<usize> {
        let v = self.slots[self.slot_of(hash)];
        (v != Self::EMPTY).then_some(v as usize)
    }

    /// How many slots each real owns (indexed like the build list, of length `n`).
    pub fn shares(&self, n: usize) -> Vec<u32> {
        let mut counts = vec![0u32; n];
        for &s in &self.slots {
            if let Some(c) = counts.get_mut(s as usize) {
                *c += 1;
            }
        }
        counts
    }
}

/// The disruption measure of the module docs: build tables of `size` slots for the equal-weight
/// `reals` with and without `reals[gone]`, and count the slots owned by a surviving real before
/// and by another surviving real after. The removed real's own slots must move and are not
/// counted.
pub fn survivors_moved(reals: &[SocketAddr], gone: usize, size: u32) -> Result<usize, MaglevError> {
    let all: Vec<(SocketAddr, u32)> = reals.iter().map(|&a| (a, 1)).collect();
    let mut rest = all.clone();
    rest.remove(gone);
    let before = MaglevTable::build(&all, size)?;
    let after = MaglevTable::build(&rest, size)?;
    Ok(before
        .slots()
        .iter()
        .zip(after.slots())
        .filter(|&(&b, &a)| b as usize != gone && all[b as usize].0 != rest[a as usize].0)
        .count())
}

/// Give each walker its quota: `⌊M·w/Σw⌋`, plus one slot each for the largest remainders (ties
/// to the walker earlier in identity order, which `walkers` is sorted by). The quotas add up
/// to `M`.
fn assign_quotas(walkers: &mut [Walker], size: u32) {
    let total: u128 = walkers.iter().map(|w| u128::from(w.weight)).sum();
    if total == 0 {
        return;
    }
    let size = u128::from(size);
    let mut given: u128 = 0;
    let mut by_remainder: Vec<(u128, usize)> = Vec::with_capacity(walkers.len());
    for (i, w) in walkers.iter_mut().enumerate() {
        let share = size * u128::from(w.weight);
        w.quota = (share / total) as u64;
        given += u128::from(w.quota);
        by_remainder.push((share % total, i));
    }
    // Largest remainder first; equal remainders in identity order (stable sort).
    by_remainder.sort_by_key(|r| std::cmp::Reverse(r.0));
    for &(_, i) in by_remainder.iter().take((size - given) as usize) {
        walkers[i].quota += 1;
    }
}

/// Fill every slot by rank-synchronous weighted turns (see the module docs).
fn populate(slots: &mut [u32], walkers: &mut Vec<Walker>) {
    let powers = Powers::new(slots.len() as u32);
    let w_max = walkers.iter().map(|w| w.weight).max().unwrap_or(1);
    walkers.retain(|w| w.quota > 0);
    let mut free = slots.len();
    while free > 0 {
        // Skip the rounds in which nobody could propose (only light reals left below quota):
        // `rounds` is the first round in which some walker's credit reaches `w_max`.
        let rounds = walkers
            .iter()
            .map(|w| (w_max - w.credit.min(w_max)).div_ceil(w.weight).max(1))
            .min()
            .unwrap_or(1);
        for w in walkers.iter_mut() {
            w.credit += w.weight * rounds;
            while w.credit >= w_max && w.owned < w.quota {
                w.credit -= w_max;
                let slot = &mut slots[w.perm.slot(&powers) as usize];
                w.perm.advance();
                if *slot == MaglevTable::EMPTY {
                    *slot = w.index;
                    w.owned += 1;
                    free -= 1;
                }
            }
        }
        walkers.retain(|w| w.owned < w.quota);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reals(n: usize, w: u32) -> Vec<(SocketAddr, u32)> {
        (0..n)
            .map(|i| {
                (
                    format!("10.0.{}.{}:80", i / 250, i % 250 + 1)
                        .parse()
                        .unwrap(),
                    w,
                )
            })
            .collect()
    }

    #[test]
    fn primality() {
        let primes: Vec<u32> = (0..40).filter(|&n| is_prime(n)).collect();
        assert_eq!(primes, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37]);
        assert!(is_prime(251) && is_prime(65537) && !is_prime(65536) && !is_prime(65535));
        assert!(!is_prime(251 * 257));
    }

    #[test]
    fn rejects_bad_sizes_and_duplicates() {
        let r = reals(3, 1);
        assert_eq!(
            MaglevTable::build(&r, 65536),
            Err(MaglevError::NotPrime(65536))
        );
        assert_eq!(MaglevTable::build(&r, 1), Err(MaglevError::NotPrime(1)));
        assert_eq!(MaglevTable::build(&r, 0), Err(MaglevError::NotPrime(0)));
        assert_eq!(
            MaglevTable::build(&r, u32::MAX),
            Err(MaglevError::TooLarge(u32::MAX))
        );
        let dup = vec![r[0], r[1], r[0]];
        assert_eq!(
            MaglevTable::build(&dup, 251),
            Err(MaglevError::DuplicateReal(r[0].0))
        );
    }

    #[test]
    fn fills_every_slot_and_skips_weight_zero() {
        let mut r = reals(4, 1);
        r[2].1 = 0;
        let t = MaglevTable::build(&r, 251).unwrap();
        assert!(t.slots().iter().all(|&s| s != MaglevTable::EMPTY && s != 2));
        let shares = t.shares(4);
        assert_eq!(shares.iter().sum::<u32>(), 251);
        assert!(
            shares
                .iter()
                .enumerate()
                .all(|(i, &c)| (i == 2) == (c == 0))
        );
    }

    #[test]
    fn empty_when_no_weight() {
        let t = MaglevTable::build(&reals(3, 0), 7).unwrap();
        assert_eq!(t.lookup(12345), None);
        let t = MaglevTable::build(&[], 7).unwrap();
        assert_eq!(t.slots(), [MaglevTable::EMPTY; 7]);
    }

    #[test]
    fn independent_of_input_order() {
        let r = reals(5, 3);
        let mut rev = r.clone();
        rev.reverse();
        let a = MaglevTable::build(&r, 251).unwrap();
        let b = MaglevTable::build(&rev, 251).unwrap();
        for (sa, sb) in a.slots().iter().zip(b.slots()) {
            assert_eq!(r[*sa as usize], rev[*sb as usize]);
        }
    }

    #[test]
    fn lookup_is_slot_of_hash() {
        let t = MaglevTable::build(&reals(3, 1), 251).unwrap();
        for h in [0u32, 250, 251, 100_000, u32::MAX] {
            assert_eq!(t.lookup(h), Some(t.slots()[(h % 251) as usize] as usize));
        }
    }

    #[test]
    fn a_single_real_and_a_tiny_table() {
        let t = MaglevTable::build(&reals(1, 9), 2).unwrap();
        assert_eq!(t.slots(), [0, 0]);
        // More reals than slots: only some get a slot, every slot is filled.
        let t = MaglevTable::build(&reals(10, 1), 3).unwrap();
        assert!(t.slots().iter().all(|&s| s < 10));
    }
}
