//! `mh` — Maglev hashing (`ip_vs_mh.c`): the real is looked up in a Maglev table
//! ([`crate::maglev::MaglevTable`], weights honoured, minimal disruption when reals change) by a
//! fixed hash of the client address, and of its port with `mh-port`. If that real is
//! unavailable: `None`, or with `mh-fallback` the first available real in the following slots
//! (then any available real chosen by the hash).
//!
//! **Hash.** `murmur3_32(FLOW_SEED, bytes)` (see [`crate::maglev::hash`]) where `bytes` is the
//! client address in network order (4 or 16 bytes), followed with `mh-port` by the client port
//! as 2 big-endian bytes. O(1) pick.
//!
//! The table is built from addresses and weights only; a rebuild that changes nothing but
//! overload flags keeps it (the runtime rebuilds on every overload flip).

use super::{PickRequest, RealState, Scheduler};
use crate::maglev::hash::{FLOW_SEED, murmur3_32};
use crate::maglev::{DEFAULT_TABLE_SIZE, MAX_TABLE_SIZE, MaglevTable, is_prime};
use crate::model::SchedulerKind;
use std::net::{IpAddr, SocketAddr};

/// How many slots to probe after the hashed one before falling back to the available list.
const FALLBACK_PROBES: u32 = 16;

/// Maglev hashing.
#[derive(Debug)]
pub struct MaglevHash {
    port: bool,
    fallback: bool,
    table_size: u32,
    /// Built table (indices into `built_from`'s reals), if any real has weight.
    table: Option<MaglevTable>,
    /// The (address, weight) list the table was built from.
    built_from: Vec<(SocketAddr, u32)>,
    /// Indices of the reals available at the last rebuild.
    available: Vec<u32>,
}

impl MaglevHash {
    /// An mh scheduler with the `mh-port` / `mh-fallback` flags and a table of `table_size`
    /// slots (a prime; an invalid size falls back to [`DEFAULT_TABLE_SIZE`]).
    pub fn new(port: bool, fallback: bool, table_size: u32) -> Self {
        let valid = is_prime(table_size) && table_size <= MAX_TABLE_SIZE;
        let table_size = if valid {
            table_size
        } else {
            DEFAULT_TABLE_SIZE
        };
        MaglevHash {
            port,
            fallback,
            table_size,
            table: None,
            built_from: Vec::new(),
            available: Vec::new(),
        }
    }

    /// The hash of a client (see the module docs).
    pub fn client_hash(client: SocketAddr, with_port: bool) -> u32 {
        let mut bytes = [0u8; 18];
        let len = match client.ip() {
            IpAddr::V4(v4) => {
                bytes[..4].copy_from_slice(&v4.octets());
                4
            }
            IpAddr::V6(v6) => {
                bytes[..16].copy_from_slice(&v6.octets());
                16
            }
        };
        let len = if with_port {
            bytes[len..len + 2].copy_from_slice(&client.port().to_be_bytes());
            len + 2
        } else {
            len
        };
        murmur3_32(FLOW_SEED, &bytes[..len])
    }
}

impl Scheduler for MaglevHash {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Mh
    }

    fn rebuild(&mut self, reals: &[RealState]) {
        self.available.clear();
        self.available.extend(
            (0..reals.len())
                .filter(|&i| reals[i].available())
                .map(|i| i as u32),
        );
        let same = self.built_from.len() == reals.len()
            && self
                .built_from
                .iter()
                .zip(reals)
                .all(|(&(a, w), r)| a == r.addr && w == r.weight);
        if same {
            return;
        }
        self.built_from = reals.iter().map(|r| (r.addr, r.weight)).collect();
        // Addresses are unique in a service; a duplicate (or any build error) leaves no table.
        self.table = MaglevTable::build(&self.built_from, self.table_size)
            .ok()
            .filter(|t| t.slots().first() != Some(&MaglevTable::EMPTY));
    }

    fn pick(&mut self, reals: &[RealState], req: &PickRequest) -> Option<usize> {
        self.pick_with(reals, req, self.fallback)
    }

    /// A retry probes on as `mh-fallback` does: rebuilding the table without the failed real
    /// (65,537 slots) would cost milliseconds on every retry.
    fn pick_again(&mut self, reals: &[RealState], req: &PickRequest) -> Option<usize> {
        self.pick_with(reals, req, true)
    }
}

impl MaglevHash {
    fn pick_with(&self, reals: &[RealState], req: &PickRequest, fallback: bool) -> Option<usize> {
        let table = self.table.as_ref()?;
        let hash = Self::client_hash(req.client, self.port);
        let usable = |i: usize| reals.get(i).filter(|r| r.available()).map(|_| i);
        let slot = table.slot_of(hash);
        let real_at = |s: usize| table.slots()[s % table.slots().len()] as usize;
        if let Some(i) = usable(real_at(slot)) {
            return Some(i);
        }
        if !fallback {
            return None;
        }
        if let Some(i) = (1..=FALLBACK_PROBES as usize).find_map(|d| usable(real_at(slot + d))) {
            return Some(i);
        }
        // Any available real chosen by the hash (the first usable one from there: on a retry
        // the real at that place may be the one to avoid).
        let n = self.available.len();
        let start = (hash.rotate_left(16) as usize) % n.max(1);
        (0..n).find_map(|d| usable(self.available[(start + d) % n] as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testutil::{reals, req_to};

    fn client(i: usize, port: u16) -> String {
        format!("203.0.113.{}:{port}", i % 250)
    }

    fn picks(s: &mut MaglevHash, r: &[RealState], port: u16) -> Vec<Option<usize>> {
        (0..250)
            .map(|i| s.pick(r, &req_to(&client(i, port), "10.0.0.3:80", 0)))
            .collect()
    }

    #[test]
    fn deterministic_and_port_ignored_by_default() {
        let r = reals(&[1, 2, 3]);
        let (mut a, mut b) = (
            MaglevHash::new(false, false, 251),
            MaglevHash::new(false, false, 251),
        );
        a.rebuild(&r);
        b.rebuild(&r);
        assert_eq!(picks(&mut a, &r, 1), picks(&mut b, &r, 1));
        assert_eq!(picks(&mut a, &r, 1), picks(&mut a, &r, 2));
        assert!(picks(&mut a, &r, 1).iter().all(Option::is_some));
    }

    #[test]
    fn mh_port_changes_the_hash() {
        let r = reals(&[1, 1, 1]);
        let mut s = MaglevHash::new(true, false, 251);
        s.rebuild(&r);
        let seen: std::collections::HashSet<_> = (0..60)
            .map(|p| s.pick(&r, &req_to(&client(1, 1000 + p), "10.0.0.3:80", 0)))
            .collect();
        assert_eq!(seen.len(), 3);
        assert_ne!(
            MaglevHash::client_hash(client_addr(), true),
            MaglevHash::client_hash(client_addr(), false)
        );
    }

    fn client_addr() -> SocketAddr {
        "203.0.113.9:4000".parse().unwrap()
    }

    #[test]
    fn removing_a_real_moves_only_its_clients() {
        let r = reals(&[1, 1, 1, 1]);
        let mut s = MaglevHash::new(false, false, 65537);
        s.rebuild(&r);
        let before = picks(&mut s, &r, 1);
        let fewer: Vec<RealState> = r[..3].to_vec();
        s.rebuild(&fewer);
        let after = picks(&mut s, &fewer, 1);
        let moved = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| b != a && **b != Some(3))
            .count();
        assert!(
            moved <= 250 / 50,
            "{moved} clients of remaining reals moved"
        );
    }

    #[test]
    fn fallback_flag_decides_on_unavailable_real() {
        let mut r = reals(&[1, 1, 1]);
        let (mut strict, mut lenient) = (
            MaglevHash::new(false, false, 251),
            MaglevHash::new(false, true, 251),
        );
        strict.rebuild(&r);
        lenient.rebuild(&r);
        let before = picks(&mut strict, &r, 1);
        r[0].overloaded = true;
        strict.rebuild(&r);
        lenient.rebuild(&r);
        for (i, b) in before.iter().enumerate() {
            let q = req_to(&client(i, 1), "10.0.0.3:80", 0);
            if *b == Some(0) {
                assert_eq!(strict.pick(&r, &q), None);
                assert!(matches!(lenient.pick(&r, &q), Some(1) | Some(2)));
            } else {
                assert_eq!(strict.pick(&r, &q), *b, "others keep their real");
            }
        }
        r[1].weight = 0;
        r[2].overloaded = true;
        lenient.rebuild(&r);
        assert!(picks(&mut lenient, &r, 1).iter().all(Option::is_none));
    }

    #[test]
    fn invalid_size_falls_back_to_default_and_empty_gives_none() {
        let mut s = MaglevHash::new(false, true, 1000);
        assert_eq!(s.table_size, DEFAULT_TABLE_SIZE);
        s.rebuild(&reals(&[0, 0]));
        assert!(
            picks(&mut s, &reals(&[0, 0]), 1)
                .iter()
                .all(Option::is_none)
        );
        s.rebuild(&[]);
        assert!(picks(&mut s, &[], 1).iter().all(Option::is_none));
    }
}
