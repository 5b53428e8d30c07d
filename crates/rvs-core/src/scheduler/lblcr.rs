//! `lblcr` — locality-based least connection with replication (`ip_vs_lblcr.c`): each
//! destination address maps to a *set* of reals. A connection goes to the least loaded member
//! of the set (lowest `overhead / weight`). When that member is unavailable or overloaded
//! (active > weight while another real has active < weight / 2), or the set is empty, the
//! weighted-least-connection real of the whole service is added to the set and used. A set
//! with more than one member that has not changed for [`SET_SHRINK_AFTER`] loses its most
//! loaded member, so replication recedes once the load does.
//!
//! Entries expire given `PickRequest::now` (see [`locality`](super::locality)).

use super::index::Cost;
use super::locality::{Entry, Load, Table};
use super::{PickRequest, RealState, Scheduler};
use crate::model::SchedulerKind;
use crate::time::Timestamp;
use std::time::Duration;

/// A set unchanged for this long drops its most loaded member (rvs's choice of period).
pub const SET_SHRINK_AFTER: Duration = Duration::from_secs(6 * 60);

#[derive(Debug, Clone)]
struct ServerSet {
    members: Vec<u32>,
    last_modified: Timestamp,
    last_used: Timestamp,
}

impl Entry for ServerSet {
    fn last_used(&self) -> Timestamp {
        self.last_used
    }
}

/// Locality-based least connection with replication.
#[derive(Debug)]
pub struct LocalityReplicated {
    load: Load,
    table: Table<ServerSet>,
}

impl Default for LocalityReplicated {
    fn default() -> Self {
        LocalityReplicated {
            load: Load::new(),
            table: Table::default(),
        }
    }
}

/// wlc cost of a member; weight 0 or overloaded members count as the most loaded.
fn member_cost(reals: &[RealState], i: u32) -> Cost {
    reals
        .get(i as usize)
        .map_or(Cost::BLOCKED, super::wlc::cost)
}

impl ServerSet {
    /// The least loaded available member (first on ties).
    fn least(&self, reals: &[RealState]) -> Option<u32> {
        let mut best: Option<(u32, Cost)> = None;
        for &m in &self.members {
            let c = member_cost(reals, m);
            if c != Cost::BLOCKED && best.is_none_or(|(_, b)| c.lt(&b)) {
                best = Some((m, c));
            }
        }
        best.map(|(m, _)| m)
    }

    /// Remove the most loaded member (the last one on ties).
    fn drop_most_loaded(&mut self, reals: &[RealState]) {
        let costs: Vec<Cost> = self
            .members
            .iter()
            .map(|&m| member_cost(reals, m))
            .collect();
        let worst = (0..costs.len()).reduce(|w, k| {
            if costs[w].lt(&costs[k]) || costs[w] == costs[k] {
                k
            } else {
                w
            }
        });
        if let Some(k) = worst {
            self.members.remove(k);
        }
    }
}

impl LocalityReplicated {
    /// The members of the set for `dest`, if it is remembered.
    pub fn set_of(&self, dest: std::net::IpAddr) -> Option<Vec<usize>> {
        self.table
            .entries
            .get(&dest)
            .map(|s| s.members.iter().map(|&m| m as usize).collect())
    }
}

impl Scheduler for LocalityReplicated {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Lblcr
    }

    fn rebuild(&mut self, reals: &[RealState]) {
        let remap = self.load.rebuild(reals);
        self.table.entries.retain(|_, set| {
            set.members
                .retain_mut(|m| match remap.get(*m as usize).copied().flatten() {
                    Some(new) => {
                        *m = new;
                        true
                    }
                    None => false,
                });
            !set.members.is_empty()
        });
    }

    fn counts_changed(&mut self, reals: &[RealState], idx: usize) {
        self.load.counts_changed(reals, idx);
    }

    fn pick(&mut self, reals: &[RealState], req: &PickRequest) -> Option<usize> {
        let now = req.now;
        self.table.sweep_if_due(now);
        let dest = req.dest.ip();
        if let Some(set) = self.table.entries.get_mut(&dest) {
            set.last_used = now;
            let least = set.least(reals);
            if set.members.len() > 1 && now.saturating_since(set.last_modified) >= SET_SHRINK_AFTER
            {
                set.drop_most_loaded(reals);
                set.last_modified = now;
            }
            if let Some(m) = least.filter(|&m| self.load.usable(reals, m as usize)) {
                return Some(m as usize);
            }
            let real = self.load.least_loaded(reals)?;
            let set = self.table.entries.get_mut(&dest)?;
            if !set.members.contains(&(real as u32)) {
                set.members.push(real as u32);
                set.last_modified = now;
            }
            return Some(real);
        }
        let real = self.load.least_loaded(reals)?;
        if self.table.has_room(now) {
            let set = ServerSet {
                members: vec![real as u32],
                last_modified: now,
                last_used: now,
            };
            self.table.entries.insert(dest, set);
        }
        Some(real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testutil::{open, reals, req_to};

    const D: &str = "198.51.100.1:80";

    fn dest() -> std::net::IpAddr {
        "198.51.100.1".parse().unwrap()
    }

    #[test]
    fn sticks_to_its_set() {
        let mut r = reals(&[5, 5, 5]);
        let mut s = LocalityReplicated::default();
        s.rebuild(&r);
        let first = s.pick(&r, &req_to("192.0.2.1:1", D, 0)).unwrap();
        for t in 1..5 {
            let again = s.pick(&r, &req_to("192.0.2.1:1", D, t)).unwrap();
            assert_eq!(again, first);
            open(&mut s, &mut r, again);
        }
        assert_eq!(s.set_of(dest()), Some(vec![first]));
    }

    #[test]
    fn grows_under_overload_and_shrinks_when_idle() {
        let mut r = reals(&[2, 2, 2]);
        let mut s = LocalityReplicated::default();
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req_to("192.0.2.1:1", D, 0)), Some(0));
        r[0].active = 3; // over its weight, and reals 1 and 2 are light
        s.counts_changed(&r, 0);
        assert_eq!(s.pick(&r, &req_to("192.0.2.1:1", D, 1)), Some(1));
        assert_eq!(s.set_of(dest()), Some(vec![0, 1]));
        // The set's least loaded member (1) serves while it is not overloaded.
        open(&mut s, &mut r, 1);
        assert_eq!(s.pick(&r, &req_to("192.0.2.1:1", D, 2)), Some(1));
        // Unchanged for SET_SHRINK_AFTER: the most loaded member (0) leaves.
        let later = 1 + SET_SHRINK_AFTER.as_secs();
        assert_eq!(s.pick(&r, &req_to("192.0.2.1:1", D, later)), Some(1));
        assert_eq!(s.set_of(dest()), Some(vec![1]));
    }

    #[test]
    fn unavailable_members_are_skipped_and_removed_ones_forgotten() {
        let mut r = reals(&[1, 1]);
        let mut s = LocalityReplicated::default();
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req_to("192.0.2.1:1", D, 0)), Some(0));
        r[0].overloaded = true;
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req_to("192.0.2.1:1", D, 1)), Some(1));
        assert_eq!(s.set_of(dest()), Some(vec![0, 1]));
        r.remove(0);
        s.rebuild(&r);
        assert_eq!(s.set_of(dest()), Some(vec![0]));
        r[0].weight = 0;
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req_to("192.0.2.1:1", D, 2)), None);
    }
}
