//! The sweep in slices ([`Sweeper`]): each round sweeps the next slice of each table and
//! remembers where to go on (see [`crate::sweep`] for what a round does, and why).

use super::seen_live::SeenLive;
use super::{CONNS, ConnTables, LiveCounts, NAT_REV, SweepReport};
use crate::abi::{Config, Conn, FlowKey, NatRev};
use crate::balancer::Balancer;
use crate::error::XdpError;
use crate::map_batch::Token;
use crate::whole_map;

impl Balancer {
    /// A sweep in slices of at most `budget` entries of each table per round (what the
    /// upkeep thread runs, with [`Balancer::SWEEP_BUDGET`]).
    pub fn sweeper(&self, budget: usize) -> Result<Sweeper, XdpError> {
        Ok(Sweeper {
            tables: self.conn_tables()?,
            budget: budget.max(1),
            conns_at: None,
            revs_at: None,
            live: LiveCounts::new(),
            seen: SeenLive::default(),
        })
    }
}

/// What one round of a [`Sweeper`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Round {
    /// Entries of `rvs_conns` read (at most the budget, or one bucket when a bucket holds
    /// more).
    pub conns_read: usize,
    /// The reverse table's part: `seen` = entries of `rvs_nat_rev` read, `reclaimed` = flows
    /// whose reverse entry went (a NAT flow's connection entry may have gone in an earlier
    /// round's `removed`).
    pub nat: SweepReport,
    /// Expired connection entries of this round's slice removed (not those of `nat`).
    pub removed: usize,
    /// This round reached the end of `rvs_conns`: a pass is complete.
    pub conns_pass_done: bool,
    /// This round reached the end of `rvs_nat_rev`.
    pub revs_pass_done: bool,
    /// When a pass over `rvs_conns` completed: the live flows per real counted over it.
    pub live: Option<LiveCounts>,
}

/// The sweep's place in both tables between rounds, and the live counts of the pass over
/// `rvs_conns` under way. Works through handles of its own (no borrow of the [`Balancer`]).
pub struct Sweeper {
    tables: ConnTables,
    budget: usize,
    /// Where the next slice of `rvs_conns` / `rvs_nat_rev` starts (`None` = the start).
    conns_at: Option<Token>,
    revs_at: Option<Token>,
    live: LiveCounts,
    seen: SeenLive,
}

impl Sweeper {
    /// One round at `now` (monotonic ns) under `cfg`'s timeouts: the next slice of each table
    /// swept (see the module docs). After an error the round is retried from the same place.
    pub fn round(&mut self, cfg: &Config, now: u64) -> Result<Round, XdpError> {
        let t = &mut self.tables;
        let conns = whole_map::read_slice::<FlowKey, Conn>(
            &t.conns,
            CONNS,
            t.batch_ops,
            self.conns_at,
            self.budget,
        )?;
        let revs = whole_map::read_slice::<FlowKey, NatRev>(
            &t.nat_rev,
            NAT_REV,
            t.batch_ops,
            self.revs_at,
            self.budget,
        )?;
        // No reverse entries at all: nothing to remember flows for.
        if revs.entries.is_empty() && self.revs_at.is_none() {
            self.seen.clear();
        } else {
            self.seen.record(cfg, now, &conns.entries);
        }
        let (nat, looked_up) = t.sweep_nat_with(cfg, now, &revs.entries, &[], Some(&self.seen))?;
        let removed = t.remove_expired(cfg, now, &conns.entries, &looked_up)?;
        crate::upkeep::add_live(cfg, now, &conns.entries, &mut self.live);
        (self.conns_at, self.revs_at) = (conns.next, revs.next);
        let conns_pass_done = conns.next.is_none();
        if conns_pass_done {
            self.seen.pass_done();
        }
        Ok(Round {
            conns_read: conns.entries.len(),
            nat,
            removed,
            conns_pass_done,
            revs_pass_done: revs.next.is_none(),
            live: conns_pass_done.then(|| std::mem::take(&mut self.live)),
        })
    }
}
