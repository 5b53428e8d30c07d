//! `lblc` — locality-based least connection (`ip_vs_lblc.c`): each destination address sticks
//! to the real it was first sent to, for cache locality. A new destination, or one whose real
//! is unavailable or overloaded (active > weight while another real has active < weight / 2),
//! goes to the weighted-least-connection real, which becomes the destination's real.
//!
//! Entries expire given `PickRequest::now` (see [`locality`](super::locality)).

use super::locality::{Entry, Load, Table};
use super::{PickRequest, RealState, Scheduler};
use crate::model::SchedulerKind;
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy)]
struct Cached {
    real: u32,
    last_used: Timestamp,
}

impl Entry for Cached {
    fn last_used(&self) -> Timestamp {
        self.last_used
    }
}

/// Locality-based least connection.
#[derive(Debug)]
pub struct LocalityLeastConn {
    load: Load,
    table: Table<Cached>,
}

impl Default for LocalityLeastConn {
    fn default() -> Self {
        LocalityLeastConn {
            load: Load::new(),
            table: Table::default(),
        }
    }
}

impl LocalityLeastConn {
    /// Number of destinations remembered.
    pub fn entries(&self) -> usize {
        self.table.entries.len()
    }
}

impl Scheduler for LocalityLeastConn {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Lblc
    }

    fn rebuild(&mut self, reals: &[RealState]) {
        let remap = self.load.rebuild(reals);
        self.table
            .entries
            .retain(|_, e| match remap.get(e.real as usize).copied().flatten() {
                Some(new) => {
                    e.real = new;
                    true
                }
                None => false,
            });
    }

    fn counts_changed(&mut self, reals: &[RealState], idx: usize) {
        self.load.counts_changed(reals, idx);
    }

    fn pick(&mut self, reals: &[RealState], req: &PickRequest) -> Option<usize> {
        let now = req.now;
        self.table.sweep_if_due(now);
        let dest = req.dest.ip();
        if let Some(e) = self.table.entries.get_mut(&dest)
            && self.load.usable(reals, e.real as usize)
        {
            e.last_used = now;
            return Some(e.real as usize);
        }
        let real = self.load.least_loaded(reals)?;
        let entry = Cached {
            real: real as u32,
            last_used: now,
        };
        if let Some(e) = self.table.entries.get_mut(&dest) {
            *e = entry;
        } else if self.table.has_room(now) {
            self.table.entries.insert(dest, entry);
        }
        Some(real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::locality::{EXPIRATION, MAX_ENTRIES};
    use crate::scheduler::testutil::{open, reals, req_to};

    #[test]
    fn sticks_per_destination_and_spreads_new_ones() {
        let mut r = reals(&[10, 10]);
        let mut s = LocalityLeastConn::default();
        s.rebuild(&r);
        let a = s
            .pick(&r, &req_to("192.0.2.1:1", "198.51.100.1:80", 0))
            .unwrap();
        open(&mut s, &mut r, a);
        let b = s
            .pick(&r, &req_to("192.0.2.1:1", "198.51.100.2:80", 0))
            .unwrap();
        open(&mut s, &mut r, b);
        assert_ne!(a, b, "a new destination goes to the least loaded");
        for k in 0..5 {
            let again = s
                .pick(&r, &req_to("192.0.2.9:1", "198.51.100.1:80", k))
                .unwrap();
            assert_eq!(again, a);
            open(&mut s, &mut r, again);
        }
    }

    #[test]
    fn repicks_when_cached_real_overloaded_and_another_is_light() {
        let mut r = reals(&[2, 2]);
        let mut s = LocalityLeastConn::default();
        s.rebuild(&r);
        let d = "198.51.100.1:80";
        assert_eq!(s.pick(&r, &req_to("192.0.2.1:1", d, 0)), Some(0));
        // active 3 > weight 2, but real 1 has active 1, not < 2 / 2: stay.
        r[0].active = 3;
        s.counts_changed(&r, 0);
        r[1].active = 1;
        s.counts_changed(&r, 1);
        assert_eq!(s.pick(&r, &req_to("192.0.2.1:1", d, 1)), Some(0));
        // Real 1 becomes light (0 * 2 < 2): move, and the entry follows.
        r[1].active = 0;
        s.counts_changed(&r, 1);
        assert_eq!(s.pick(&r, &req_to("192.0.2.1:1", d, 2)), Some(1));
        r[0].active = 0;
        s.counts_changed(&r, 0);
        assert_eq!(s.pick(&r, &req_to("192.0.2.1:1", d, 3)), Some(1));
    }

    #[test]
    fn repicks_when_cached_real_unavailable_and_follows_reorder() {
        let mut r = reals(&[1, 1, 1]);
        let mut s = LocalityLeastConn::default();
        s.rebuild(&r);
        let d = "198.51.100.7:80";
        assert_eq!(s.pick(&r, &req_to("192.0.2.1:1", d, 0)), Some(0));
        r.rotate_left(1); // the cached real is now index 2
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req_to("192.0.2.1:1", d, 1)), Some(2));
        r[2].weight = 0;
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req_to("192.0.2.1:1", d, 2)), Some(0));
        for x in r.iter_mut() {
            x.overloaded = true;
        }
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req_to("192.0.2.1:1", d, 3)), None);
    }

    #[test]
    fn entries_expire_and_table_is_bounded() {
        let r = reals(&[1, 1]);
        let mut s = LocalityLeastConn::default();
        s.rebuild(&r);
        s.pick(&r, &req_to("192.0.2.1:1", "198.51.100.1:80", 0));
        assert_eq!(s.entries(), 1);
        s.pick(&r, &req_to("192.0.2.1:1", "198.51.100.2:80", 100));
        assert_eq!(s.entries(), 2);
        let later = EXPIRATION.as_secs() + 50;
        s.pick(&r, &req_to("192.0.2.1:1", "198.51.100.3:80", later));
        assert_eq!(
            s.entries(),
            2,
            "the first entry expired, the second not yet"
        );
        for i in 0..(MAX_ENTRIES as u32 + 10) {
            let dest = format!("{}:80", std::net::Ipv4Addr::from(0x0a00_0000 + i));
            s.pick(&r, &req_to("192.0.2.1:1", &dest, later + 1));
        }
        assert_eq!(s.entries(), MAX_ENTRIES);
    }
}
