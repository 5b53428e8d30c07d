//! What `lblc` and `lblcr` share: the load view of the reals and the expiring per-destination
//! table.
//!
//! **Load.** New destinations go to the weighted-least-connection real (a [`CostIndex`] priced
//! as wlc: O(1) pick, O(log n) per count change). A real is *overloaded* in the kernel's sense
//! (`is_overloaded` in `ip_vs_lblc.c`) when its active connections exceed its weight while some
//! other available real has fewer than half its weight active; rvs counts those "light" reals as
//! counts change, so the test is O(1) instead of a scan.
//!
//! **Table.** Entries are keyed by destination address, remember when they were last used and
//! expire [`EXPIRATION`] after that (the kernel's default `lblc_expiration`, 24 h). Expiry runs
//! at most once per [`SWEEP_INTERVAL`] of `PickRequest::now`. The table holds at most
//! [`MAX_ENTRIES`]; when full, entries unused for [`FULL_TABLE_TIMEOUT`] are dropped, and if it
//! is still full (the room sweep runs at most once a second) the new destination is scheduled but not remembered (memory stays bounded).
//! A `BTreeMap` keeps it deterministic and immune to hash flooding by chosen destinations.

use super::RealState;
use super::index::CostIndex;
use crate::time::Timestamp;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// An entry unused for this long is removed.
pub(crate) const EXPIRATION: Duration = Duration::from_secs(24 * 3600);
/// How often expiry runs.
pub(crate) const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// Most destinations remembered.
pub(crate) const MAX_ENTRIES: usize = 16 * 1024;
/// When the table is full, entries unused for this long make room.
pub(crate) const FULL_TABLE_TIMEOUT: Duration = Duration::from_secs(6 * 60);

/// The reals' load as lblc/lblcr see it.
#[derive(Debug, Clone)]
pub(crate) struct Load {
    /// wlc index.
    pub index: CostIndex<super::wlc::Wlc>,
    /// Per real: available with `active * 2 < weight`.
    light: Vec<bool>,
    /// How many reals are light.
    light_count: usize,
    /// Addresses at the last rebuild (to follow reals across reorderings).
    addrs: Vec<SocketAddr>,
}

fn is_light(r: &RealState) -> bool {
    r.available() && (r.active as u64) * 2 < r.weight as u64
}

impl Load {
    pub fn new() -> Self {
        let index = CostIndex::new();
        Load {
            index,
            light: Vec::new(),
            light_count: 0,
            addrs: Vec::new(),
        }
    }

    /// Rebuild; returns, for each real index of the previous rebuild, its new index (if any).
    pub fn rebuild(&mut self, reals: &[RealState]) -> Vec<Option<u32>> {
        self.index.rebuild(reals);
        self.light = reals.iter().map(is_light).collect();
        self.light_count = self.light.iter().filter(|&&l| l).count();
        let now: BTreeMap<SocketAddr, u32> = reals
            .iter()
            .enumerate()
            .map(|(i, r)| (r.addr, i as u32))
            .collect();
        let remap = self.addrs.iter().map(|a| now.get(a).copied()).collect();
        self.addrs = reals.iter().map(|r| r.addr).collect();
        remap
    }

    pub fn counts_changed(&mut self, reals: &[RealState], idx: usize) {
        self.index.update(reals, idx);
        if let (Some(r), Some(flag)) = (reals.get(idx), self.light.get_mut(idx)) {
            let light = is_light(r);
            if light != *flag {
                *flag = light;
                if light {
                    self.light_count += 1
                } else {
                    self.light_count -= 1
                }
            }
        }
    }

    /// `reals[idx]` may take the connection: available and not overloaded in the kernel's sense.
    pub fn usable(&self, reals: &[RealState], idx: usize) -> bool {
        reals
            .get(idx)
            .is_some_and(|r| r.available() && !(r.active > r.weight && self.light_count > 0))
    }

    /// The wlc pick, if any.
    pub fn least_loaded(&mut self, reals: &[RealState]) -> Option<usize> {
        if reals.len() == self.index.len() {
            match self.index.best() {
                None => return None,
                Some(i) if self.index.is_current(reals, i) => return Some(i),
                Some(_) => {}
            }
        }
        // The caller skipped a rebuild or a count change: re-index rather than trust it.
        self.rebuild(reals);
        self.index.best()
    }
}

/// An entry of a locality table.
pub(crate) trait Entry {
    fn last_used(&self) -> Timestamp;
}

/// The per-destination table.
#[derive(Debug, Clone)]
pub(crate) struct Table<E> {
    pub entries: BTreeMap<IpAddr, E>,
    last_sweep: Timestamp,
    /// Last time a full table was swept for room (at most once a second: it is O(entries)).
    last_room_sweep: Option<Timestamp>,
}

impl<E> Default for Table<E> {
    fn default() -> Self {
        Table {
            entries: BTreeMap::new(),
            last_sweep: Timestamp::ZERO,
            last_room_sweep: None,
        }
    }
}

impl<E: Entry> Table<E> {
    /// Run expiry if [`SWEEP_INTERVAL`] has passed.
    pub fn sweep_if_due(&mut self, now: Timestamp) {
        if now.saturating_since(self.last_sweep) >= SWEEP_INTERVAL {
            self.last_sweep = now;
            self.expire(now, EXPIRATION);
        }
    }

    fn expire(&mut self, now: Timestamp, max_idle: Duration) {
        self.entries
            .retain(|_, e| now.saturating_since(e.last_used()) < max_idle);
    }

    /// Whether a new destination may be remembered (making room if the table is full).
    pub fn has_room(&mut self, now: Timestamp) -> bool {
        let due = self
            .last_room_sweep
            .is_none_or(|t| now.saturating_since(t) >= Duration::from_secs(1));
        if self.entries.len() >= MAX_ENTRIES && due {
            self.last_room_sweep = Some(now);
            self.expire(now, FULL_TABLE_TIMEOUT);
        }
        self.entries.len() < MAX_ENTRIES
    }
}
