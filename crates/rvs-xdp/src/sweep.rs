//! The sweep the engine's upkeep thread runs every `upkeep_interval`: reclaim the reverse
//! entries (and FULLNAT local ports) of NAT/FULLNAT flows whose `rvs_nat_conns` entry expired (by
//! its state's timeout, [`crate::conntrack`]) or vanished, remove every other expired
//! connection entry (the LRU would only evict them under pressure), and count live flows per
//! real for the overload thresholds.
//!
//! **Slices.** A round ([`Sweeper::round`]) reads at most a budget of entries of each table
//! ([`SLICE_BUDGET`] for the engine) with `BPF_MAP_LOOKUP_BATCH` ([`crate::map_batch`]),
//! resuming from the kernel's token (a bucket index) where the previous round stopped; when a
//! table's end is reached, its next round starts over. A pass over a table of N entries takes
//! ceil(N / budget) rounds, or one more (a slice ends on a bucket boundary), so a round's work
//! is bounded whatever the table's size. The maps have a fixed number of buckets and a key
//! always hashes to the same one, so a pass reads every entry present throughout it exactly
//! once; an entry inserted behind the walk waits for the next pass, one deleted ahead of it is
//! not seen. Both are fine for expiry: an expired entry is at most one pass late. Without the
//! batch commands (kernels before 5.6, below the crate's minimum; or
//! [`Balancer::set_batch_ops`]) a slice is the whole table, read entry by entry.
//!
//! **A round**, in order:
//! 1. The reverse table's slice: a flow the walk of `rvs_nat_conns` read live (this pass or the
//!    last, [`seen_live`]: until its expiry time as read, on the reverse entry's local port) is
//!    left alone; any other is looked up on its own. An expired or vanished
//!    flow loses its reverse entry first (replies stop matching, a FULLNAT local port is free
//!    again), is looked up once more, and then loses its connection entry, or gets its reverse
//!    entry back if it came back to life meanwhile. A reverse entry whose flow is live on
//!    another real (an expired NAT flow scheduled afresh) or, FULLNAT, another local port now
//!    is stale and goes (the program already passes packets by it to the kernel untouched,
//!    `nat_stale`). A reverse entry waits at most one pass of the reverse table after its flow
//!    expired.
//! 2. The connection tables' slice: the walk goes through `rvs_conns` (DR/TUN flows), then on
//!    through `rvs_nat_conns` (NAT/FULLNAT flows) with what is left of the round's budget, as
//!    one sequence. Expired entries are deleted in batches, except those step 1 looked up and
//!    FULLNAT entries (local port set), which only step 1 reclaims, so that a FULLNAT flow
//!    coming back to life is never cut from its local port. An expired NAT entry is deleted
//!    like a DR one, and its reverse entry goes when step 1 finds the flow gone (the program
//!    ignores expired entries either way).
//! 3. Live entries of the slice are counted per real; the counts of a whole pass come out in
//!    the round that completes it ([`sliced::Round::live`]), so overload thresholds react one pass
//!    late at most. So do the destination ports of every entry the pass read, per table
//!    ([`sliced::Round::ports`], [`PortsSeen`]): the engine stops looking a table up for a port
//!    only after a pass proved it holds no flow of that port ([`crate::narrow`]).
//!
//! The sweep works on [`ConnTables`], handles of its own on the three maps, so the upkeep thread
//! runs it without the engine's lock. [`Balancer::sweep`] is one round without a budget (all
//! tables whole, judged by the whole read); [`Balancer::sweep_nat`] and
//! [`Balancer::sweep_conns`] are its two halves.

mod ports_seen;
mod seen_live;
mod sliced;

pub use ports_seen::PortsSeen;
pub use sliced::{Round, Sweeper};

use crate::abi::{Config, Conn, FlowKey, NatRev};
use crate::balancer::Balancer;
use crate::conntrack::expired;
use crate::error::{XdpError, map_err};
use crate::whole_map;
use aya::maps::{HashMap, Map, MapData};
use seen_live::SeenLive;
use std::collections::{HashMap as StdHashMap, HashSet};
use std::os::fd::AsFd;

use crate::balancer::{CONNS, NAT_CONNS};
const NAT_REV: &str = "rvs_nat_rev";
/// Reclaimed flows whose connection entries are deleted in one call after their re-checks.
const RECHECK_BATCH: usize = 64;
/// Entries of each table the engine's sweep reads per round (see docs/xdp.md for what a round
/// costs and how long a pass takes at the default table sizes).
pub const SLICE_BUDGET: usize = 32_768;

/// Live connections per real slot: (active, inactive) as IPVS counts them.
pub type LiveCounts = StdHashMap<u32, (u32, u32)>;

/// What one sweep of the reverse table did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Reverse entries looked at.
    pub seen: usize,
    /// Flows reclaimed (reverse entry, FULLNAT local port and connection entry removed).
    pub reclaimed: usize,
    /// Stale reverse entries removed: of flows on another real now, or FULLNAT flows on
    /// another local port.
    pub stale: usize,
}

/// What the fresh look-up of a flow decided for its reverse entry.
enum Verdict {
    Keep,
    Stale,
    Expired,
}

/// Whether reverse entry `rev` (made for real `real`) belongs to `conn`, the live entry of
/// its flow: the flow is on that real and, FULLNAT, on the key's local port. An expired flow
/// may have been scheduled afresh before a sweep saw it, to another real (NAT) or with another
/// local port (FULLNAT).
fn belongs(rev: &FlowKey, real: u32, conn: &Conn) -> bool {
    conn.real == real && (conn.lport == 0 || conn.lport == rev.dport)
}

/// The verdict of the old per-entry sweep for reverse entry `rev` (made for real `real`) whose
/// flow's connection entry is `conn`.
fn verdict(cfg: &Config, now: u64, rev: &FlowKey, real: u32, conn: Option<&Conn>) -> Verdict {
    match conn {
        Some(c) if !belongs(rev, real, c) && !expired(cfg, Some(c), now) => Verdict::Stale,
        c if expired(cfg, c, now) => Verdict::Expired,
        _ => Verdict::Keep,
    }
}

impl Balancer {
    /// Entries of each table the engine's sweep reads per round: 32,768 (docs/xdp.md has what a
    /// round costs, and how long a pass takes).
    pub const SWEEP_BUDGET: usize = SLICE_BUDGET;

    /// Reclaim NAT/FULLNAT flows expired at `now` (monotonic ns) under `cfg`'s timeouts: the
    /// reverse entry first (replies stop matching, and a FULLNAT local port is free again),
    /// then the connection entry. A flow that came back to life meanwhile gets its reverse
    /// entry again. Reads both tables whole.
    pub fn sweep_nat(&mut self, cfg: &Config, now: u64) -> Result<SweepReport, XdpError> {
        self.conn_tables()?.sweep_nat(cfg, now)
    }

    /// Remove the connection entries expired at `now` by their state's timeout (the LRU would
    /// only evict them under pressure; removing them keeps listings and counts cheap), except
    /// FULLNAT entries ([`Balancer::sweep_nat`] reclaims those). Returns how many. A flow whose
    /// entry goes while its client is still sending (it was idle past its timeout) is
    /// scheduled afresh, as IPVS does.
    pub fn sweep_conns(&mut self, cfg: &Config, now: u64) -> Result<usize, XdpError> {
        let mut tables = self.conn_tables()?;
        let mut removed = 0;
        for table in [Table::Direct, Table::Nat] {
            let conns = tables.read(table)?;
            removed += tables.remove_expired(table, cfg, now, &conns, &HashSet::new())?;
        }
        Ok(removed)
    }

    /// [`Balancer::sweep_nat`] then [`Balancer::sweep_conns`], reading each table once: one
    /// round of a sweeper without a budget. Also how many connection entries were removed.
    pub fn sweep(&mut self, cfg: &Config, now: u64) -> Result<(SweepReport, usize), XdpError> {
        let round = self.sweeper(usize::MAX)?.round(cfg, now)?;
        Ok((round.nat, round.removed))
    }

    /// Handles of their own on `rvs_conns`, `rvs_nat_conns` and `rvs_nat_rev` (duplicated
    /// descriptors).
    pub(crate) fn conn_tables(&self) -> Result<ConnTables, XdpError> {
        let own = |name: &'static str| -> Result<Map, XdpError> {
            let map = self.ebpf().map(name).ok_or(XdpError::Missing(name))?;
            let fd = match map {
                Map::HashMap(data) | Map::LruHashMap(data) => data.fd().as_fd(),
                _ => return Err(XdpError::Invalid(format!("{name} is not a hash map"))),
            };
            let fd = fd
                .try_clone_to_owned()
                .map_err(|e| XdpError::Invalid(format!("duplicating {name}: {e}")))?;
            Map::from_map_data(MapData::from_fd(fd).map_err(map_err(name))?).map_err(map_err(name))
        };
        Ok(ConnTables {
            conns: own(CONNS)?,
            nat_conns: own(NAT_CONNS)?,
            nat_rev: own(NAT_REV)?,
            batch_ops: self.batch_ops(),
        })
    }
}

/// One of the two connection tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    /// `rvs_conns`: DR/TUN flows.
    Direct,
    /// `rvs_nat_conns`: NAT/FULLNAT flows.
    Nat,
}

/// The connection tables and the reverse table as handles of their own, independent of the
/// [`Balancer`] and of the engine's lock (the maps live while any handle does).
pub(crate) struct ConnTables {
    conns: Map,
    nat_conns: Map,
    nat_rev: Map,
    batch_ops: bool,
}

impl ConnTables {
    /// Every connection entry of both tables.
    #[cfg(test)]
    pub fn conns(&self) -> Result<Vec<(FlowKey, Conn)>, XdpError> {
        let mut all = self.read(Table::Direct)?;
        all.extend(self.read(Table::Nat)?);
        Ok(all)
    }

    /// Every entry of `table`.
    pub fn read(&self, table: Table) -> Result<Vec<(FlowKey, Conn)>, XdpError> {
        let (map, name) = self.table(table);
        whole_map::read(map, name, self.batch_ops)
    }

    /// The map of `table` and its name.
    pub(crate) fn table(&self, table: Table) -> (&Map, &'static str) {
        match table {
            Table::Direct => (&self.conns, CONNS),
            Table::Nat => (&self.nat_conns, NAT_CONNS),
        }
    }

    fn table_mut(&mut self, table: Table) -> (&mut Map, &'static str) {
        match table {
            Table::Direct => (&mut self.conns, CONNS),
            Table::Nat => (&mut self.nat_conns, NAT_CONNS),
        }
    }

    /// The reverse table: (flow as the real sends it, its entry).
    fn nat_rev(&self) -> Result<Vec<(FlowKey, NatRev)>, XdpError> {
        whole_map::read::<FlowKey, NatRev>(&self.nat_rev, NAT_REV, self.batch_ops)
    }

    /// See [`Balancer::sweep_nat`].
    fn sweep_nat(&mut self, cfg: &Config, now: u64) -> Result<SweepReport, XdpError> {
        let revs = self.nat_rev()?;
        if revs.is_empty() {
            return Ok(SweepReport::default());
        }
        let conns = self.read(Table::Nat)?;
        Ok(self.sweep_nat_with(cfg, now, &revs, &conns, None)?.0)
    }

    /// The NAT sweep of the whole reverse table, then the removal of expired entries of
    /// `conns`, a snapshot of the NAT connection table.
    #[cfg(test)]
    fn sweep(
        &mut self,
        cfg: &Config,
        now: u64,
        conns: &[(FlowKey, Conn)],
    ) -> Result<(SweepReport, usize), XdpError> {
        let revs = self.nat_rev()?;
        let (report, looked_up) = self.sweep_nat_with(cfg, now, &revs, conns, None)?;
        let removed = self.remove_expired(Table::Nat, cfg, now, conns, &looked_up)?;
        Ok((report, removed))
    }

    /// Delete the entries of `conns` (a snapshot of `table`) expired at `now`, except the flows
    /// in `skip` (the NAT sweep looked them up afresh and dealt with them) and FULLNAT flows
    /// (only the NAT sweep reclaims those, reverse entry first).
    fn remove_expired(
        &mut self,
        table: Table,
        cfg: &Config,
        now: u64,
        conns: &[(FlowKey, Conn)],
        skip: &HashSet<FlowKey>,
    ) -> Result<usize, XdpError> {
        let doomed: Vec<FlowKey> = conns
            .iter()
            .filter(|(k, c)| c.lport == 0 && expired(cfg, Some(c), now) && !skip.contains(k))
            .map(|(k, _)| *k)
            .collect();
        let batch_ops = self.batch_ops;
        let (map, name) = self.table_mut(table);
        whole_map::delete::<FlowKey, Conn>(map, name, batch_ops, &doomed)
    }

    /// The NAT sweep over reverse entries `revs` with `conns` as a snapshot of (part of) the
    /// connection table, and the flows the sliced walk saw live (`seen`): a flow either shows
    /// live on the reverse entry's real and local port is left alone, any other is looked up
    /// afresh. Also the flows it looked up (their snapshot entries are out of date).
    fn sweep_nat_with(
        &mut self,
        cfg: &Config,
        now: u64,
        revs: &[(FlowKey, NatRev)],
        conns: &[(FlowKey, Conn)],
        seen: Option<&SeenLive>,
    ) -> Result<(SweepReport, HashSet<FlowKey>), XdpError> {
        let mut report = SweepReport {
            seen: revs.len(),
            ..Default::default()
        };
        let mut looked_up = HashSet::new();
        if revs.is_empty() {
            return Ok((report, looked_up));
        }
        let snapshot: StdHashMap<&FlowKey, &Conn> = conns.iter().map(|(k, c)| (k, c)).collect();
        let (mut doomed_revs, mut expired_flows) = (Vec::new(), Vec::new());
        for (rev, value) in revs {
            let (orig, real) = (&value.orig, value.real);
            let snap = snapshot.get(orig).copied();
            if seen.is_some_and(|s| s.live(orig, rev, real, now))
                || matches!(verdict(cfg, now, rev, real, snap), Verdict::Keep)
            {
                continue;
            }
            looked_up.insert(*orig);
            match verdict(cfg, now, rev, real, self.conn_of(orig)?.as_ref()) {
                Verdict::Keep => {}
                Verdict::Stale => {
                    doomed_revs.push(*rev);
                    report.stale += 1;
                }
                Verdict::Expired => {
                    doomed_revs.push(*rev);
                    expired_flows.push((*rev, *orig, real));
                }
            }
        }
        whole_map::delete::<FlowKey, NatRev>(
            &mut self.nat_rev,
            NAT_REV,
            self.batch_ops,
            &doomed_revs,
        )?;
        // Re-check each flow after its reverse entry went; delete the connection entries of
        // those still expired a few at a time, so one is deleted at most RECHECK_BATCH
        // look-ups after its re-check.
        for chunk in expired_flows.chunks(RECHECK_BATCH) {
            let mut doomed = Vec::with_capacity(chunk.len());
            for (rev, orig, real) in chunk {
                if let Some(c) = self.conn_of(orig)?
                    && !expired(cfg, Some(&c), now)
                {
                    // Came back to life: on this real and port its reverse entry is its own
                    // again; on another, the program made it a new one.
                    if belongs(rev, *real, &c) {
                        self.restore_rev(*rev, *orig, *real)?;
                    }
                    continue;
                }
                doomed.push(*orig);
            }
            whole_map::delete::<FlowKey, Conn>(
                &mut self.nat_conns,
                NAT_CONNS,
                self.batch_ops,
                &doomed,
            )?;
            report.reclaimed += doomed.len();
        }
        Ok((report, looked_up))
    }

    /// Give a flow that came back to life on real `real` its reverse entry `rev` again.
    fn restore_rev(&mut self, rev: FlowKey, orig: FlowKey, real: u32) -> Result<(), XdpError> {
        let mut h: HashMap<&mut MapData, FlowKey, NatRev> =
            HashMap::try_from(&mut self.nat_rev).map_err(map_err(NAT_REV))?;
        let value = NatRev {
            orig,
            real,
            ..Default::default()
        };
        // BPF_NOEXIST: a new flow may have taken the local port meanwhile.
        if h.insert(rev, value, 1).is_err() {
            log::debug!("xdp: reverse entry of a revived flow was taken");
        }
        Ok(())
    }

    /// The NAT connection entry of `key` now (one look-up).
    fn conn_of(&self, key: &FlowKey) -> Result<Option<Conn>, XdpError> {
        let h: HashMap<&MapData, FlowKey, Conn> =
            HashMap::try_from(&self.nat_conns).map_err(map_err(NAT_CONNS))?;
        Ok(h.get(key, 0).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi;

    pub(super) const S: u64 = 1_000_000_000;
    pub(super) const NOW: u64 = 10_000 * S;

    pub(super) fn flow(i: u32, dport: u16) -> FlowKey {
        FlowKey {
            src: [i.to_be(), 0, 0, 0],
            dst: [7u32.to_be(), 0, 0, 0],
            sport: 4000u16.to_be(),
            dport: dport.to_be(),
            proto: abi::RVS_PROTO_TCP as u8,
            family: abi::RVS_FAMILY_V4 as u8,
            pad: [0; 2],
        }
    }

    /// A TIME_WAIT entry (120 s) idle for `idle_s`, FULLNAT local port `lport` (0 = NAT).
    pub(super) fn conn(idle_s: u64, lport: u16) -> Conn {
        Conn {
            state: abi::RVS_STATE_TIME_WAIT as u8,
            last_ns: NOW - idle_s * S,
            lport: lport.to_be(),
            ..Default::default()
        }
    }

    /// A reverse entry with a next hop cached in it.
    fn cached(orig: FlowKey) -> NatRev {
        NatRev {
            orig,
            nh_expires_ns: NOW + S,
            nh_ifindex: 7,
            ..Default::default()
        }
    }

    /// The sweep trusts its snapshot only to leave a flow alone: a flow the snapshot calls
    /// expired is looked up afresh and keeps its reverse and connection entries when alive.
    #[test]
    fn a_stale_snapshot_never_costs_a_live_flow_its_entries() {
        if !rvs_testbed::is_root() {
            eprintln!("skipping: loading the balancer needs root");
            return;
        }
        let mut b = Balancer::load().expect("load");
        let (a, bb, c, d, e, f, g) = (
            flow(1, 80),
            flow(2, 80),
            flow(3, 80),
            flow(4, 80),
            flow(5, 80),
            flow(6, 80),
            flow(7, 80),
        );
        // Reverse entries: (as the real replies, client flow); FULLNAT flow d has an old port
        // 2000 and its current port 1000; NAT flow g's entry is for real 0, but g expired and
        // came back on real 1.
        let rev = |i: u32, port: u16| flow(100 + i, port);
        let revs = [
            (rev(1, 1), a),
            (rev(2, 1), bb),
            (rev(3, 1), c),
            (rev(4, 2000), d),
            (rev(4, 1000), d),
            (rev(6, 1), f),
            (rev(7, 1), g),
        ];
        {
            let m = b.ebpf_mut().map_mut(NAT_REV).unwrap();
            let mut h: HashMap<&mut MapData, FlowKey, NatRev> = HashMap::try_from(m).unwrap();
            for (r, orig) in revs {
                h.insert(r, cached(orig), 0).unwrap();
            }
        }
        // Now: a alive, bb expired, c gone, d alive on port 1000, e (no reverse entry)
        // expired, f expired.
        for (k, v) in [
            (a, conn(1, 0)),
            (bb, conn(500, 0)),
            (d, conn(1, 1000)),
            (e, conn(500, 0)),
            (f, conn(500, 0)),
            (
                g,
                Conn {
                    real: 1,
                    ..conn(1, 0)
                },
            ),
        ] {
            b.insert_nat_conn(&k, &v).unwrap();
        }
        // The snapshot is older: a looked expired, f alive.
        let snapshot = [
            (a, conn(500, 0)),
            (bb, conn(500, 0)),
            (d, conn(1, 1000)),
            (e, conn(500, 0)),
            (f, conn(1, 0)),
            (
                g,
                Conn {
                    real: 1,
                    ..conn(1, 0)
                },
            ),
        ];
        let mut tables = b.conn_tables().unwrap();
        let (report, removed) = tables.sweep(&Config::default(), NOW, &snapshot).unwrap();
        assert_eq!(
            (report.seen, report.reclaimed, report.stale, removed),
            (7, 2, 2, 1),
            "{report:?}"
        );
        // Untouched, not removed and made again: the next hop cached in them is still there.
        let mut left: Vec<(FlowKey, NatRev)> =
            whole_map::read(&tables.nat_rev, NAT_REV, true).unwrap();
        left.sort_by_key(|(k, _)| (k.src[0], k.dport));
        let mut want = vec![
            (rev(1, 1), cached(a)),
            (rev(4, 1000), cached(d)),
            (rev(6, 1), cached(f)),
        ];
        want.sort_by_key(|(k, _)| (k.src[0], k.dport));
        assert_eq!(
            left, want,
            "a keeps its reverse entry; f waits for the next sweep"
        );
        let conns: Vec<FlowKey> = tables.conns().unwrap().into_iter().map(|c| c.0).collect();
        assert!(conns.contains(&a) && conns.contains(&d) && conns.contains(&f));
        assert!(
            conns.contains(&g),
            "g's stale reverse entry went, its flow stays"
        );
        assert!(!conns.contains(&bb) && !conns.contains(&e), "{conns:?}");
        // The next sweep, with a fresh snapshot, reclaims f.
        let fresh = tables.conns().unwrap();
        let (report, _) = tables.sweep(&Config::default(), NOW, &fresh).unwrap();
        assert_eq!((report.seen, report.reclaimed), (3, 1), "{report:?}");
    }
}
