//! The fixed address hash and the weighted bucket table shared by `dh` and `sh`.
//!
//! **Hash.** [`addr_hash`] folds an IP address (and optionally a port) into 64 bits and mixes
//! them with the SplitMix64 finaliser (Steele, Lea & Flood, 2014). It is fixed and documented so
//! that two directors, or two releases, map the same address to the same bucket — never Rust's
//! `DefaultHasher`, whose output may change between releases.
//!
//! **Table.** Unlike the kernel's `dh` (256 buckets, weights ignored), each real with weight > 0
//! gets a number of buckets proportional to its weight (largest-remainder rounding). The table
//! has a power-of-two size of at least 32 buckets per weighted real (at least 1,024 in all, at
//! most 2^21), so the rounding error of a share is below 0.1 percentage point. Buckets are
//! laid out in bit-reversed order (the k-th bucket of the weight-ordered run goes to position
//! `reverse(k)`), so neighbouring buckets lie half a table apart in that run and belong to
//! different reals and a fallback probe of "the next bucket" spreads load instead of piling it on one real.
//! Overloaded reals keep their buckets (clients return to them when the overload clears); the
//! lookup decides what to do with an unavailable real.

use super::RealState;
use std::net::{IpAddr, SocketAddr};

/// SplitMix64's finaliser: a fixed, well-mixing bijection on 64 bits.
pub(crate) fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The fixed hash of an address, and of its port when `port` is `Some`.
///
/// IPv4: the address as a big-endian u32. IPv6: the two big-endian halves, the high half mixed
/// before the low half is added. The port, when given, is added shifted to bits 32..48 for
/// IPv4 (then mixed). Finally [`mix64`].
pub(crate) fn addr_hash(ip: IpAddr, port: Option<u16>) -> u64 {
    let base = match ip {
        IpAddr::V4(v4) => u32::from(v4) as u64,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            mix64((bits >> 64) as u64).wrapping_add(bits as u64)
        }
    };
    let with_port = match port {
        Some(p) => base ^ ((p as u64) << 32) ^ 0x5a5a_0000_0000_0000,
        None => base,
    };
    mix64(with_port)
}

/// How many buckets to probe after the hashed one before falling back to the list of
/// available reals.
const FALLBACK_PROBES: usize = 16;

/// A weighted hash table of reals (see the module docs).
#[derive(Debug, Clone, Default)]
pub(crate) struct BucketTable {
    /// Real index per bucket; length a power of two, or 0 when no real has weight.
    buckets: Vec<u32>,
    /// Indices of the reals available at the last rebuild (last-resort fallback).
    available: Vec<u32>,
    /// The (address, weight) list the buckets were built from.
    built_from: Vec<(SocketAddr, u32)>,
}

impl BucketTable {
    /// Bring the table up to date with `reals`: the buckets are rebuilt only when addresses or
    /// weights changed (not for overload flags alone, which the lookup checks).
    pub fn update(&mut self, reals: &[RealState]) {
        let same = self.built_from.len() == reals.len()
            && (self.built_from.iter().zip(reals)).all(|(&(a, w), r)| a == r.addr && w == r.weight);
        if same {
            self.available.clear();
            let available = (0..reals.len()).filter(|&i| reals[i].available());
            self.available.extend(available.map(|i| i as u32));
        } else {
            *self = Self::build(reals);
        }
    }

    /// Build the table for `reals`.
    pub fn build(reals: &[RealState]) -> Self {
        let weighted: Vec<usize> = (0..reals.len()).filter(|&i| reals[i].weight > 0).collect();
        let available = (0..reals.len())
            .filter(|&i| reals[i].available())
            .map(|i| i as u32);
        let available = available.collect();
        let built_from = reals.iter().map(|r| (r.addr, r.weight)).collect();
        if weighted.is_empty() {
            return BucketTable {
                buckets: Vec::new(),
                available,
                built_from,
            };
        }
        let size = (weighted.len() * 32)
            .clamp(1024, 1 << 21)
            .next_power_of_two();
        let counts = proportional_counts(reals, &weighted, size as u64);
        let bits = size.trailing_zeros();
        let mut buckets = vec![0u32; size];
        let mut k: u64 = 0;
        for (&real, &count) in weighted.iter().zip(&counts) {
            for _ in 0..count {
                buckets[(k.reverse_bits() >> (64 - bits)) as usize] = real as u32;
                k += 1;
            }
        }
        BucketTable {
            buckets,
            available,
            built_from,
        }
    }

    /// Number of buckets (0 when no real has weight).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// The real for `hash`. If it is unavailable: `None` without `fallback`; with it, the first
    /// available real among the next buckets, else one of the available reals chosen by `hash`.
    pub fn lookup(&self, reals: &[RealState], hash: u64, fallback: bool) -> Option<usize> {
        if self.buckets.is_empty() {
            return None;
        }
        let mask = self.buckets.len() - 1;
        let start = (hash as usize) & mask;
        let usable = |b: usize| {
            let i = self.buckets[b & mask] as usize;
            reals.get(i).filter(|r| r.available()).map(|_| i)
        };
        if let Some(i) = usable(start) {
            return Some(i);
        }
        if !fallback {
            return None;
        }
        if let Some(i) = (1..=FALLBACK_PROBES).find_map(|d| usable(start + d)) {
            return Some(i);
        }
        if self.available.is_empty() {
            return None;
        }
        let i = self.available[((hash >> 32) % self.available.len() as u64) as usize] as usize;
        reals.get(i).filter(|r| r.available()).map(|_| i)
    }
}

/// Buckets per weighted real, proportional to weight, summing to `size` (largest remainder).
fn proportional_counts(reals: &[RealState], weighted: &[usize], size: u64) -> Vec<u64> {
    let total: u64 = weighted.iter().map(|&i| reals[i].weight as u64).sum();
    let exact = |i: usize| (size as u128) * (reals[i].weight as u128);
    let mut counts: Vec<u64> = weighted
        .iter()
        .map(|&i| (exact(i) / total as u128) as u64)
        .collect();
    let mut short = size - counts.iter().sum::<u64>();
    let mut by_remainder: Vec<usize> = (0..weighted.len()).collect();
    by_remainder.sort_by_key(|&k| std::cmp::Reverse(exact(weighted[k]) % total as u128));
    for &k in by_remainder.iter().cycle() {
        if short == 0 {
            break;
        }
        counts[k] += 1;
        short -= 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testutil::reals;

    #[test]
    fn hash_is_fixed() {
        // Pinned values: a change of the hash must be deliberate.
        assert_eq!(mix64(0), 0);
        // SplitMix64's first output from seed 0 (reference value of the published generator).
        assert_eq!(mix64(0x9e37_79b9_7f4a_7c15), 0xe220_a839_7b1d_cdaf);
        let a = addr_hash("192.0.2.1".parse().unwrap(), None);
        assert_eq!(a, mix64(0xc000_0201));
        assert_ne!(a, addr_hash("192.0.2.1".parse().unwrap(), Some(80)));
    }

    #[test]
    fn buckets_are_proportional_to_weight() {
        let r = reals(&[4, 0, 3, 2, 1]);
        let t = BucketTable::build(&r);
        let mut per_real = [0usize; 5];
        for &b in &t.buckets {
            per_real[b as usize] += 1;
        }
        assert_eq!(per_real.iter().sum::<usize>(), t.len());
        assert_eq!(per_real[1], 0);
        for (i, w) in [(0, 4), (2, 3), (3, 2), (4, 1)] {
            let want = t.len() as f64 * w as f64 / 10.0;
            assert!(
                (per_real[i] as f64 - want).abs() <= 1.0,
                "real {i}: {}",
                per_real[i]
            );
        }
    }

    #[test]
    fn neighbouring_buckets_mostly_differ() {
        let r = reals(&[1, 1, 1]);
        let t = BucketTable::build(&r);
        let same = (1..t.len())
            .filter(|&b| t.buckets[b] == t.buckets[b - 1])
            .count();
        assert!(same < t.len() / 4, "{same} of {}", t.len());
    }
}
