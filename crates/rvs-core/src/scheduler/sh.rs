//! `sh` — source hashing (`ip_vs_sh.c`): the real is chosen by a fixed hash of the client's
//! address (and its port with the `sh-port` flag), so one client keeps reaching the same real.
//! If that real is unavailable: `None`, or with `sh-fallback` the first available real in the
//! following buckets (then any available real chosen by the hash).
//!
//! Each real owns a share of the table's buckets proportional to its weight (see
//! [`hash`](super::hash)). O(1) pick.

use super::hash::{BucketTable, addr_hash};
use super::{PickRequest, RealState, Scheduler};
use crate::model::SchedulerKind;

/// Source hashing.
#[derive(Debug, Default)]
pub struct SourceHash {
    table: BucketTable,
    /// `sh-port`: hash the client port too.
    port: bool,
    /// `sh-fallback`: try other reals when the hashed one is unavailable.
    fallback: bool,
}

impl SourceHash {
    /// A source-hashing scheduler with the `sh-port` / `sh-fallback` flags.
    pub fn new(port: bool, fallback: bool) -> Self {
        SourceHash {
            table: BucketTable::default(),
            port,
            fallback,
        }
    }
}

impl Scheduler for SourceHash {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Sh
    }

    fn rebuild(&mut self, reals: &[RealState]) {
        self.table.update(reals);
    }

    fn pick(&mut self, reals: &[RealState], req: &PickRequest) -> Option<usize> {
        let port = self.port.then_some(req.client.port());
        self.table
            .lookup(reals, addr_hash(req.client.ip(), port), self.fallback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testutil::{reals, req_to};

    fn client(i: usize, port: u16) -> String {
        format!("203.0.113.{}:{port}", i % 250)
    }

    #[test]
    fn same_client_same_real_and_ports_ignored_by_default() {
        let r = reals(&[1, 2, 1]);
        let (mut a, mut b) = (SourceHash::new(false, false), SourceHash::new(false, false));
        a.rebuild(&r);
        b.rebuild(&r);
        for i in 0..100 {
            let first = a
                .pick(&r, &req_to(&client(i, 1000), "10.0.0.3:80", 0))
                .unwrap();
            assert_eq!(
                a.pick(&r, &req_to(&client(i, 2000), "10.0.0.3:443", 5)),
                Some(first)
            );
            assert_eq!(
                b.pick(&r, &req_to(&client(i, 1000), "10.0.0.3:80", 0)),
                Some(first)
            );
        }
    }

    #[test]
    fn sh_port_spreads_one_client_over_reals() {
        let r = reals(&[1, 1, 1]);
        let mut s = SourceHash::new(true, false);
        s.rebuild(&r);
        let seen: std::collections::HashSet<_> = (0..60)
            .map(|p| s.pick(&r, &req_to(&client(1, 1000 + p), "10.0.0.3:80", 0)))
            .collect();
        assert_eq!(seen.len(), 3);
        // Still deterministic per (address, port).
        let again = s.pick(&r, &req_to(&client(1, 1000), "10.0.0.3:80", 0));
        assert_eq!(
            again,
            s.pick(&r, &req_to(&client(1, 1000), "10.0.0.3:80", 0))
        );
    }

    #[test]
    fn fallback_flag_decides_on_unavailable_real() {
        let mut r = reals(&[1, 1, 1]);
        let (mut strict, mut lenient) =
            (SourceHash::new(false, false), SourceHash::new(false, true));
        strict.rebuild(&r);
        lenient.rebuild(&r);
        let owned_by_0: Vec<usize> = (0..250)
            .filter(|&i| strict.pick(&r, &req_to(&client(i, 1), "10.0.0.3:80", 0)) == Some(0))
            .collect();
        assert!(!owned_by_0.is_empty());
        r[0].overloaded = true;
        strict.rebuild(&r);
        lenient.rebuild(&r);
        for &i in &owned_by_0 {
            let q = req_to(&client(i, 1), "10.0.0.3:80", 0);
            assert_eq!(strict.pick(&r, &q), None);
            assert!(matches!(lenient.pick(&r, &q), Some(1) | Some(2)));
        }
        r[1].weight = 0;
        r[2].overloaded = true;
        lenient.rebuild(&r);
        assert_eq!(
            lenient.pick(&r, &req_to(&client(3, 1), "10.0.0.3:80", 0)),
            None
        );
    }
}
