//! A real's permutation of the table's slots: the order in which it proposes slots during
//! population.
//!
//! The paper's permutation is linear, `offset + j·skip (mod M)`. Between any two reals the ranks
//! at which they reach a slot are then related linearly too (`r_B = λ·r_A + μ`, `λ = skip_A /
//! skip_B`), and when `λ` is small — in the worst case equal skips, one real walking the other's
//! cycle a fixed number of steps ahead — the two reals' claims depend on each other all the way
//! through population. Removing a third real then moves a large part of their slots between
//! them: 5,458 of 65,537 slots (8.3 %) for one set of four reals with equal skips, 14 % in the
//! tail at `M ≈ 1000 N` for three reals (see the module docs of [`super`]).
//!
//! Here real `i` proposes, at rank `j`, slot `(b·j + c)^e + d (mod M)` with `b ∈ [1, M)` and
//! `c, d ∈ [0, M)` from three hashes of its identity, and `e` the smallest odd number ≥ 3 that
//! is coprime with `M − 1`, so that `x ↦ x^e` is a bijection of `Z_M` and the whole map a
//! permutation of the slots (`x^e` comes from a table built once per table build; a proposal
//! costs a lookup and two additions, like the linear walk). Two reals' ranks are related by
//! `(b_B·r_B + c_B)^e = (b_A·r_A + c_A)^e + d_A − d_B`: not a line unless `d_A = d_B`, and then
//! a line of random slope; a degenerate pair needs that and a small slope ratio, about `1/M²`
//! per pair instead of about `1/M`.

use super::hash::{OFFSET_SEED, SKIP_SEED, murmur3_32};

/// Seed of the permutation's outer shift `d`.
pub const SHIFT_SEED: u32 = 0x7368_6966; // "shif"

/// `x^e mod M` for every `x` (one table per build, shared by all reals' permutations).
#[derive(Debug, Clone)]
pub(super) struct Powers(Vec<u32>);

impl Powers {
    /// The table for `size` slots (a prime).
    pub fn new(size: u32) -> Self {
        let (m, e) = (u64::from(size), exponent(size));
        Powers((0..m).map(|x| pow_mod(x, e, m) as u32).collect())
    }
}

/// One real's walk: the slot at its current rank and the step to the next rank.
#[derive(Debug, Clone, Copy)]
pub(super) struct Permutation {
    /// `b·j + c (mod M)` at the current rank `j`.
    inner: u32,
    /// `b`.
    step: u32,
    /// `d`.
    shift: u32,
    size: u32,
}

impl Permutation {
    /// The permutation of a real with identity bytes `id` over `size` slots (a prime).
    pub fn new(id: &[u8], size: u32) -> Self {
        let below = |seed| murmur3_32(seed, id) % size;
        let nonzero = |seed| (murmur3_32(seed, id) % (size - 1).max(1) + 1) % size;
        Permutation {
            inner: below(OFFSET_SEED),
            step: nonzero(SKIP_SEED),
            shift: below(SHIFT_SEED),
            size,
        }
    }

    /// The slot at the current rank (`powers` built for the same size).
    pub fn slot(&self, powers: &Powers) -> u32 {
        add_mod(powers.0[self.inner as usize], self.shift, self.size)
    }

    /// Move to the next rank.
    pub fn advance(&mut self) {
        self.inner = add_mod(self.inner, self.step, self.size);
    }
}

/// `(a + b) mod m` for `a, b < m`.
fn add_mod(a: u32, b: u32, m: u32) -> u32 {
    let sum = u64::from(a) + u64::from(b);
    if sum >= u64::from(m) {
        (sum - u64::from(m)) as u32
    } else {
        sum as u32
    }
}

/// The smallest odd `e ≥ 3` coprime with `size − 1`: `x ↦ x^e` is then a bijection of `Z_size`
/// (3 for the default 65537, whose `M − 1` is a power of two).
fn exponent(size: u32) -> u32 {
    let order = size.saturating_sub(1).max(1);
    (3..).step_by(2).find(|&e| gcd(e, order) == 1).unwrap_or(1)
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `base^exp mod m` (`m` < 2^24, so products fit in a `u64`).
fn pow_mod(base: u64, mut exp: u32, m: u64) -> u64 {
    let mut result = 1 % m;
    let mut b = base % m;
    while exp > 0 {
        if exp & 1 == 1 {
            result = result * b % m;
        }
        b = b * b % m;
        exp >>= 1;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maglev::is_prime;

    #[test]
    fn every_permutation_visits_every_slot_once() {
        for size in [2u32, 3, 7, 13, 31, 251, 4099] {
            assert!(is_prime(size));
            for id in [
                &b"\x0a\x00\x00\x01\x00\x50"[..],
                b"\x0a\x00\x00\x02\x00\x50",
                b"x",
            ] {
                let powers = Powers::new(size);
                let mut p = Permutation::new(id, size);
                let mut seen = vec![false; size as usize];
                for _ in 0..size {
                    let s = p.slot(&powers) as usize;
                    assert!(!seen[s], "slot {s} twice (size {size})");
                    seen[s] = true;
                    p.advance();
                }
            }
        }
    }

    #[test]
    fn exponent_is_coprime_with_the_group_order() {
        assert_eq!(exponent(65537), 3);
        assert_eq!(exponent(7), 5, "6 = 2·3");
        assert_eq!(exponent(31), 7, "30 = 2·3·5");
        assert_eq!(exponent(2), 3);
        for size in [13u32, 251, 4099, 65537, 1_000_003] {
            assert_eq!(gcd(exponent(size), size - 1), 1);
        }
    }

    #[test]
    fn pow_mod_matches_repeated_multiplication() {
        for (b, e, m) in [
            (5u64, 3u32, 65537u64),
            (65536, 7, 65537),
            (0, 3, 7),
            (3, 0, 7),
        ] {
            let slow = (0..e).fold(1 % m, |acc, _| acc * b % m);
            assert_eq!(pow_mod(b, e, m), slow);
        }
    }
}
