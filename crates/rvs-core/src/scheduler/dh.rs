//! `dh` — destination hashing (`ip_vs_dh.c`): the real is chosen by a fixed hash of the
//! destination address, so one destination always reaches the same real (while the set of
//! reals and their weights stay the same). If that real is unavailable there is no fallback:
//! `None`, as in the kernel.
//!
//! Unlike the kernel's dh, weights are honoured: each real owns a share of the table's buckets
//! proportional to its weight (see [`hash`](super::hash)). O(1) pick.

use super::hash::{BucketTable, addr_hash};
use super::{PickRequest, RealState, Scheduler};
use crate::model::SchedulerKind;

/// Destination hashing.
#[derive(Debug, Default)]
pub struct DestinationHash {
    table: BucketTable,
}

impl Scheduler for DestinationHash {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Dh
    }

    fn rebuild(&mut self, reals: &[RealState]) {
        self.table.update(reals);
    }

    fn pick(&mut self, reals: &[RealState], req: &PickRequest) -> Option<usize> {
        self.table
            .lookup(reals, addr_hash(req.dest.ip(), None), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testutil::{reals, req_to};

    #[test]
    fn same_destination_same_real_any_client() {
        let r = reals(&[1, 1, 1, 1]);
        let (mut a, mut b) = (DestinationHash::default(), DestinationHash::default());
        a.rebuild(&r);
        b.rebuild(&r);
        let mut seen = std::collections::HashSet::new();
        for d in 0..64 {
            let dest = format!("198.51.100.{d}:80");
            let first = a.pick(&r, &req_to("192.0.2.1:1000", &dest, 0)).unwrap();
            assert_eq!(
                a.pick(&r, &req_to("192.0.2.99:2000", &dest, 9)),
                Some(first)
            );
            assert_eq!(b.pick(&r, &req_to("192.0.2.5:3000", &dest, 0)), Some(first));
            seen.insert(first);
        }
        assert_eq!(seen.len(), 4, "64 destinations spread over all reals");
    }

    #[test]
    fn unavailable_real_gives_none_and_weight_zero_is_never_picked() {
        let mut r = reals(&[1, 0, 1]);
        let mut s = DestinationHash::default();
        s.rebuild(&r);
        let picks: Vec<_> = (0..200)
            .map(|d| {
                s.pick(
                    &r,
                    &req_to(
                        "192.0.2.1:1",
                        &format!("10.9.{}.{}:80", d / 100, d % 100),
                        0,
                    ),
                )
            })
            .collect();
        assert!(picks.iter().all(|p| matches!(p, Some(0) | Some(2))));
        r[0].overloaded = true;
        s.rebuild(&r);
        for (d, before) in picks.iter().enumerate() {
            let now = s.pick(
                &r,
                &req_to(
                    "192.0.2.1:1",
                    &format!("10.9.{}.{}:80", d / 100, d % 100),
                    0,
                ),
            );
            assert_eq!(now, if *before == Some(0) { None } else { *before });
        }
        s.rebuild(&reals(&[0, 0]));
        assert_eq!(
            s.pick(&reals(&[0, 0]), &req_to("192.0.2.1:1", "10.0.0.3:80", 0)),
            None
        );
    }
}
