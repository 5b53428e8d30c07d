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

mod rr;

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
        RealState { addr, weight, active: 0, inactive: 0, overloaded: false }
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
        SchedulerParams { flags: SchedFlags::default(), maglev_table_size: 65537, seed: 0x5eed }
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
}

/// Make a scheduler of the given kind.
pub fn new_scheduler(kind: SchedulerKind, params: SchedulerParams) -> Box<dyn Scheduler> {
    let _ = params;
    match kind {
        SchedulerKind::Rr => Box::new(rr::RoundRobin::default()),
        // Until every scheduler has its own file, the others fall back to round robin.
        _ => Box::new(rr::RoundRobin::default()),
    }
}
