//! `mh` — Maglev hashing (`ip_vs_mh.c`): the real is looked up by a hash of the client address
//! (and port with `mh-port`); with `mh-fallback` an unavailable real's connections go to another
//! real instead of `None`.
//!
//! FALLBACK: the shared Maglev table (`crate::maglev`) is not in the tree yet, so this version
//! uses the weighted bucket table of `dh`/`sh` (see [`hash`](super::hash)). It honours weights
//! and is deterministic, but lacks Maglev's minimal disruption when reals change.

use super::hash::{BucketTable, addr_hash};
use super::{PickRequest, RealState, Scheduler};
use crate::model::SchedulerKind;

/// Maglev hashing (currently on the bucket-table fallback).
#[derive(Debug, Default)]
pub struct MaglevHash {
    table: BucketTable,
    port: bool,
    fallback: bool,
}

impl MaglevHash {
    /// An mh scheduler with the `mh-port` / `mh-fallback` flags.
    pub fn new(port: bool, fallback: bool, _table_size: u32) -> Self {
        MaglevHash {
            table: BucketTable::default(),
            port,
            fallback,
        }
    }
}

impl Scheduler for MaglevHash {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Mh
    }

    fn rebuild(&mut self, reals: &[RealState]) {
        self.table = BucketTable::build(reals);
    }

    fn pick(&mut self, reals: &[RealState], req: &PickRequest) -> Option<usize> {
        let port = self.port.then_some(req.client.port());
        self.table
            .lookup(reals, addr_hash(req.client.ip(), port), self.fallback)
    }
}
