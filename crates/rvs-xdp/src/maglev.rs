//! Maglev lookup-table construction (Eisenbud et al., NSDI 2016) with weights, for the
//! `rvs_maglev` map: a table of `RVS_MAGLEV_SIZE` slots, each naming a real.
//!
//! Stand-in until `rvs_core::maglev` lands: the table must be the same on every director, so it
//! depends only on the reals' identities (their addresses), their weights, and the table size.

use std::net::SocketAddr;

/// One entry: a stable identity, the value stored in the table, and a weight (0 = absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaglevEntry {
    pub addr: SocketAddr,
    pub value: u32,
    pub weight: u32,
}

fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn identity(addr: &SocketAddr) -> Vec<u8> {
    let mut v = match addr.ip() {
        std::net::IpAddr::V4(a) => a.octets().to_vec(),
        std::net::IpAddr::V6(a) => a.octets().to_vec(),
    };
    v.extend_from_slice(&addr.port().to_be_bytes());
    v
}

/// Build a table of `size` slots (a prime). `empty` fills every slot when no entry has weight.
pub fn build(entries: &[MaglevEntry], size: usize, empty: u32) -> Vec<u32> {
    let mut live: Vec<&MaglevEntry> = entries.iter().filter(|e| e.weight > 0).collect();
    live.sort_by_key(|e| identity(&e.addr));
    let mut table = vec![empty; size];
    if live.is_empty() || size == 0 {
        return table;
    }
    let m = size as u64;
    let perms: Vec<(u64, u64)> = live
        .iter()
        .map(|e| {
            let id = identity(&e.addr);
            (fnv1a(&id, 0x5bd1_e995) % m, fnv1a(&id, 0x9747_b28c) % (m - 1) + 1)
        })
        .collect();
    let max_w = live.iter().map(|e| e.weight).max().unwrap_or(1) as u64;
    let mut next = vec![0u64; live.len()];
    let mut credit = vec![0u64; live.len()];
    let mut filled = 0usize;
    while filled < size {
        for i in 0..live.len() {
            credit[i] += live[i].weight as u64;
            if credit[i] < max_w {
                continue;
            }
            credit[i] -= max_w;
            let (offset, skip) = perms[i];
            loop {
                let slot = ((offset + next[i] * skip) % m) as usize;
                next[i] += 1;
                if table[slot] == empty {
                    table[slot] = live[i].value;
                    filled += 1;
                    break;
                }
            }
            if filled == size {
                break;
            }
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(last: u8, value: u32, weight: u32) -> MaglevEntry {
        MaglevEntry { addr: SocketAddr::from(([10, 0, 0, last], 80)), value, weight }
    }

    #[test]
    fn weights_shape_the_table_and_empty_when_no_weight() {
        let t = build(&[e(1, 1, 1), e(2, 2, 3)], 65537, u32::MAX);
        let ones = t.iter().filter(|v| **v == 1).count() as f64 / 65537.0;
        assert!((ones - 0.25).abs() < 0.01, "{ones}");
        assert!(build(&[e(1, 1, 0)], 7, u32::MAX).iter().all(|v| *v == u32::MAX));
    }

    #[test]
    fn removing_one_real_moves_few_slots() {
        let a = build(&[e(1, 1, 1), e(2, 2, 1), e(3, 3, 1)], 65537, u32::MAX);
        let b = build(&[e(1, 1, 1), e(2, 2, 1)], 65537, u32::MAX);
        let moved = a.iter().zip(&b).filter(|(x, y)| x != y && **x != 3).count();
        assert!(moved < 65537 / 10, "{moved}");
    }
}
