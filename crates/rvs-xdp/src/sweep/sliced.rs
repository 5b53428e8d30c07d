//! The sweep in slices ([`Sweeper`]): each round sweeps the next slice of each table and
//! remembers where to go on (see [`crate::sweep`] for what a round does, and why).

use super::ports_seen::PortsSeen;
use super::seen_live::SeenLive;
use super::{ConnTables, LiveCounts, NAT_REV, SweepReport, Table};
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
            conns_at: (Table::Direct, None),
            revs_at: None,
            live: LiveCounts::new(),
            seen: SeenLive::default(),
            ports: None,
        })
    }
}

/// What one round of a [`Sweeper`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Round {
    /// Entries of the connection tables (`rvs_conns`, then `rvs_nat_conns`) read (at most the
    /// budget, or one bucket more when a bucket holds more).
    pub conns_read: usize,
    /// The reverse table's part: `seen` = entries of `rvs_nat_rev` read, `reclaimed` = flows
    /// whose reverse entry went (a NAT flow's connection entry may have gone in an earlier
    /// round's `removed`).
    pub nat: SweepReport,
    /// Expired connection entries of this round's slice removed (not those of `nat`).
    pub removed: usize,
    /// This round reached the end of `rvs_nat_conns` (the walk's last table): a pass over
    /// both connection tables is complete.
    pub conns_pass_done: bool,
    /// This round reached the end of `rvs_nat_rev`.
    pub revs_pass_done: bool,
    /// When a pass over the connection tables completed: the live flows per real counted
    /// over it.
    pub live: Option<LiveCounts>,
    /// When a pass over the connection tables completed: the ports it read entries of, per
    /// table, and when it started ([`PortsSeen`]).
    pub ports: Option<PortsSeen>,
}

/// The sweep's place in the tables between rounds, and the live counts of the pass over
/// the connection tables under way. Works through handles of its own (no borrow of the [`Balancer`]).
pub struct Sweeper {
    tables: ConnTables,
    budget: usize,
    /// Where the next slice of the connection tables (which table, and where in it) /
    /// `rvs_nat_rev` starts (`None` = the start).
    conns_at: (Table, Option<Token>),
    revs_at: Option<Token>,
    live: LiveCounts,
    seen: SeenLive,
    /// The ports of the pass under way (`None` until its first round).
    ports: Option<PortsSeen>,
}

impl Sweeper {
    /// One round at `now` (monotonic ns) under `cfg`'s timeouts: the next slice of each table
    /// swept (see the module docs). After an error the round is retried from the same place.
    pub fn round(&mut self, cfg: &Config, now: u64) -> Result<Round, XdpError> {
        let t = &mut self.tables;
        let revs = whole_map::read_slice::<FlowKey, NatRev>(
            &t.nat_rev,
            NAT_REV,
            t.batch_ops,
            self.revs_at,
            self.budget,
        )?;
        // The slice of the connection tables: the rest of rvs_conns, then (budget left) on
        // into rvs_nat_conns.
        let (mut table, mut at) = self.conns_at;
        let ports = self.ports.get_or_insert_with(|| PortsSeen::new(now));
        let mut slices = Vec::new();
        let mut read = 0;
        let conns_pass_done = loop {
            let (map, name) = t.table(table);
            let slice = whole_map::read_slice::<FlowKey, Conn>(
                map,
                name,
                t.batch_ops,
                at,
                self.budget.saturating_sub(read).max(1),
            )?;
            read += slice.entries.len();
            ports.record(table, &slice.entries);
            let next = slice.next;
            slices.push((table, slice.entries));
            match (table, next) {
                (_, Some(token)) => {
                    at = Some(token);
                    break false;
                }
                (Table::Direct, None) => {
                    (table, at) = (Table::Nat, None);
                    // Without the batch commands a slice is a whole table: both in one round.
                    if read >= self.budget && t.batch_ops {
                        break false;
                    }
                }
                (Table::Nat, None) => {
                    (table, at) = (Table::Direct, None);
                    break true;
                }
            }
        };
        // No reverse entries at all: nothing to remember flows for.
        let nat_slice = slices.iter().filter(|(tb, _)| *tb == Table::Nat);
        if revs.entries.is_empty() && self.revs_at.is_none() {
            self.seen.clear();
        } else {
            for (_, entries) in nat_slice {
                self.seen.record(cfg, now, entries);
            }
        }
        let (nat, looked_up) = t.sweep_nat_with(cfg, now, &revs.entries, &[], Some(&self.seen))?;
        let mut removed = 0;
        for (tb, entries) in &slices {
            removed += t.remove_expired(*tb, cfg, now, entries, &looked_up)?;
            crate::upkeep::add_live(cfg, now, entries, &mut self.live);
        }
        (self.conns_at, self.revs_at) = ((table, at), revs.next);
        if conns_pass_done {
            self.seen.pass_done();
        }
        Ok(Round {
            conns_read: read,
            nat,
            removed,
            conns_pass_done,
            revs_pass_done: revs.next.is_none(),
            live: conns_pass_done.then(|| std::mem::take(&mut self.live)),
            ports: if conns_pass_done {
                self.ports.take()
            } else {
                None
            },
        })
    }
}
