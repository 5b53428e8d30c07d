//! The IPVS schedulers, one file each, behind one trait.
//!
//! A scheduler sees the reals of one service as a slice of [`RealState`] (effective weight,
//! active / inactive connection counts, overload flag) and picks the index of one of them for a
//! new connection, or `None` when no real may take it. Weight 0 and overloaded reals are never
//! picked by any scheduler.
//!
//! Call protocol (the owner of the slice — a service's runtime state — keeps it):
//! 1. [`Scheduler::rebuild`] after any change of membership, order, weights or overload flags;
//! 2. [`Scheduler::counts_changed`] after the active/inactive counts of one real change (lets
//!    the least-connection family keep an index instead of scanning all reals);
//! 3. [`Scheduler::pick`] for each new connection.
//!
//! | kind | file | pick | per count change |
//! | --- | --- | --- | --- |
//! | rr, wrr, fo | `rr.rs`, `wrr.rs`, `fo.rs` | O(1) | — |
//! | dh, sh, mh | `dh.rs`, `sh.rs`, `mh.rs` | O(1) (hash + table) | — |
//! | lc, wlc, sed, nq, ovf | `lc.rs` … `ovf.rs` over `index.rs` | O(1) (≤ 16 reals: a scan) | O(log n) |
//! | lblc, lblcr | `lblc.rs`, `lblcr.rs` over `locality.rs` | O(log d) for d destinations | O(log n) |
//! | twos | `twos.rs` | O(log n) | — |
//!
//! Figures: `cargo bench -p rvs-core --bench schedulers`, recorded in `bench/README.md`.

mod dh;
mod fo;
mod hash;
mod index;
mod lblc;
mod lblcr;
mod lc;
mod locality;
mod mh;
mod nq;
mod ovf;
mod rr;
mod sed;
mod sh;
#[cfg(test)]
mod testutil;
mod twos;
mod wlc;
mod wrr;

pub use dh::DestinationHash;
pub use fo::Failover;
pub use lblc::LocalityLeastConn;
pub use lblcr::{LocalityReplicated, SET_SHRINK_AFTER};
pub use mh::MaglevHash;
pub use rr::RoundRobin;
pub use sh::SourceHash;
pub use twos::TwosChoice;
pub use wrr::WeightedRoundRobin;

use crate::model::{Protocol, SchedFlags, SchedulerKind};
use crate::time::Timestamp;
use std::fmt::Debug;
use std::net::SocketAddr;

/// What a scheduler knows of one real.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RealState {
    /// The real's address (the hashing schedulers hash or compare it).
    pub addr: SocketAddr,
    /// Effective weight (operator weight, health and drain combined). 0 = never picked.
    pub weight: u32,
    /// Active connections (TCP ESTABLISHED in IPVS terms).
    pub active: u32,
    /// Inactive connections (every other state).
    pub inactive: u32,
    /// Over its upper threshold (`-x`) and not yet back under the lower one (`-y`).
    pub overloaded: bool,
}

impl RealState {
    /// A real with no connections.
    pub fn new(addr: SocketAddr, weight: u32) -> Self {
        RealState {
            addr,
            weight,
            active: 0,
            inactive: 0,
            overloaded: false,
        }
    }

    /// May take a new connection: weight above 0 and not overloaded.
    pub fn available(&self) -> bool {
        self.weight > 0 && !self.overloaded
    }

    /// IPVS's overhead for the least-connection family: `active * 256 + inactive`.
    pub fn overhead(&self) -> u64 {
        (self.active as u64) * 256 + self.inactive as u64
    }
}

/// The new connection being scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PickRequest {
    /// Transport protocol.
    pub protocol: Protocol,
    /// Client address and port.
    pub client: SocketAddr,
    /// Destination (virtual address and port) as the client sent it.
    pub dest: SocketAddr,
    /// Current time (lblc / lblcr expire their locality entries with it).
    pub now: Timestamp,
}

/// Parameters fixed for the life of a scheduler instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerParams {
    /// `sh-*` / `mh-*` flags.
    pub flags: SchedFlags,
    /// Maglev lookup-table size for `mh` (a prime; IPVS's default is 251, rvs's 65537).
    pub maglev_table_size: u32,
    /// Seed of the deterministic pseudo-random generator of randomised schedulers (`twos`).
    pub seed: u64,
}

impl Default for SchedulerParams {
    fn default() -> Self {
        SchedulerParams {
            flags: SchedFlags::default(),
            maglev_table_size: 65537,
            seed: 0x5eed,
        }
    }
}

/// A connection scheduler (see the module docs for the call protocol).
pub trait Scheduler: Send + Debug {
    /// Which scheduler this is.
    fn kind(&self) -> SchedulerKind;

    /// Recompute internal state after reals were added, removed, reordered, reweighted, or
    /// their overload flags changed.
    fn rebuild(&mut self, reals: &[RealState]);

    /// The active/inactive counts of `reals[idx]` changed (no other field did).
    fn counts_changed(&mut self, _reals: &[RealState], _idx: usize) {}

    /// Pick a real for a new connection, or `None` if none is available.
    fn pick(&mut self, reals: &[RealState], req: &PickRequest) -> Option<usize>;

    /// Pick again after the connect to the real first picked failed, without a rebuild
    /// (`reals` shows the reals to avoid as unavailable; this must leave the scheduler's state
    /// as valid for `reals` without them as before). `None` (the default) sends the caller to
    /// a rebuild with those reals at weight 0 and back: cheap for most schedulers, not for a
    /// 65,537-slot Maglev table, so mh probes on as its fallback does.
    fn pick_again(&mut self, _reals: &[RealState], _req: &PickRequest) -> Option<usize> {
        None
    }
}

/// Make a scheduler of the given kind.
pub fn new_scheduler(kind: SchedulerKind, params: SchedulerParams) -> Box<dyn Scheduler> {
    let flags = params.flags;
    match kind {
        SchedulerKind::Rr => Box::new(RoundRobin::default()),
        SchedulerKind::Wrr => Box::new(WeightedRoundRobin::default()),
        SchedulerKind::Lc => Box::new(lc::scheduler()),
        SchedulerKind::Wlc => Box::new(wlc::scheduler()),
        SchedulerKind::Sed => Box::new(sed::scheduler()),
        SchedulerKind::Nq => Box::new(nq::scheduler()),
        SchedulerKind::Ovf => Box::new(ovf::scheduler()),
        SchedulerKind::Lblc => Box::new(LocalityLeastConn::default()),
        SchedulerKind::Lblcr => Box::new(LocalityReplicated::default()),
        SchedulerKind::Dh => Box::new(DestinationHash::default()),
        SchedulerKind::Sh => Box::new(SourceHash::new(flags.sh_port, flags.sh_fallback)),
        SchedulerKind::Mh => Box::new(MaglevHash::new(
            flags.mh_port,
            flags.mh_fallback,
            params.maglev_table_size,
        )),
        SchedulerKind::Fo => Box::new(Failover::default()),
        SchedulerKind::Twos => Box::new(TwosChoice::new(params.seed)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testutil::{reals, req};

    #[test]
    fn factory_makes_every_kind() {
        let r = reals(&[1, 2, 3]);
        for kind in SchedulerKind::ALL {
            let mut s = new_scheduler(kind, SchedulerParams::default());
            assert_eq!(s.kind(), kind);
            s.rebuild(&r);
            assert!(s.pick(&r, &req()).is_some(), "{kind}");
        }
    }
}
