//! Which destination ports had entries in each connection table during one complete pass of
//! the sliced sweep ([`super::Sweeper`]), and when the pass started: what the engine needs to
//! prove that a table holds no flow of a port any more before it stops looking that table up
//! for the port ([`crate::narrow`]).
//!
//! What a pass proves: the walk reads every entry present throughout the pass (a key always
//! hashes to the same bucket, and the walk goes bucket by bucket), so an entry made before the
//! pass started and still there at its end was read. An entry made during the pass behind the
//! walk may be missed; the engine only trusts a pass that started after nothing could make
//! entries of that kind for the port any more. Every entry read counts, expired or not (an
//! expired entry the walk deletes is counted in the pass that deleted it, so the proof comes a
//! pass later): an expired entry left in a table the port no longer looks up would hide a live
//! entry of the same tuple in the other table once the port looked both up again.

use super::Table;
use crate::abi::{self, Conn, FlowKey};

/// 65,536 ports, one bit each.
const WORDS: usize = 65_536 / 64;

/// The ports (network order, as in a [`FlowKey`]) with entries in `rvs_conns` / `rvs_nat_conns`
/// read by one pass of the sweep, and when the pass's first slice was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortsSeen {
    /// When the pass's first slice was read (monotonic ns, the `now` of its first round).
    pub started: u64,
    direct: Box<[u64]>,
    nat: Box<[u64]>,
}

impl PortsSeen {
    /// A pass started at `started` that has read nothing yet.
    pub fn new(started: u64) -> PortsSeen {
        PortsSeen {
            started,
            direct: vec![0; WORDS].into_boxed_slice(),
            nat: vec![0; WORDS].into_boxed_slice(),
        }
    }

    fn bits(&mut self, table: Table) -> &mut [u64] {
        match table {
            Table::Direct => &mut self.direct,
            Table::Nat => &mut self.nat,
        }
    }

    /// Note the ports of `entries`, read from `table`.
    pub(crate) fn record(&mut self, table: Table, entries: &[(FlowKey, Conn)]) {
        let bits = self.bits(table);
        for (k, _) in entries {
            let p = usize::from(k.dport);
            bits[p / 64] |= 1 << (p % 64);
        }
    }

    /// Note one entry to `port` (network order) in the table of `flag` (tests).
    #[cfg(test)]
    pub(crate) fn mark(&mut self, flag: u32, port: u16) {
        let key = FlowKey {
            dport: port,
            ..Default::default()
        };
        self.record(table_of(flag), &[(key, Conn::default())]);
    }

    /// Whether the pass read an entry to `port` (network order) in the table whose flows
    /// service flag `flag` (`RVS_SVC_F_DIRECT` or `RVS_SVC_F_NAT`) stands for.
    pub fn has(&self, flag: u32, port: u16) -> bool {
        let bits = match table_of(flag) {
            Table::Direct => &self.direct,
            Table::Nat => &self.nat,
        };
        let p = usize::from(port);
        bits[p / 64] & (1 << (p % 64)) != 0
    }
}

/// The table of service flag `flag`: `RVS_SVC_F_NAT` → `rvs_nat_conns`, else `rvs_conns`.
fn table_of(flag: u32) -> Table {
    if flag & abi::RVS_SVC_F_NAT as u32 != 0 {
        Table::Nat
    } else {
        Table::Direct
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_kept_per_table() {
        let (d, n) = (abi::RVS_SVC_F_DIRECT as u32, abi::RVS_SVC_F_NAT as u32);
        let mut seen = PortsSeen::new(7);
        let key = |port: u16| FlowKey {
            dport: port.to_be(),
            ..Default::default()
        };
        seen.record(Table::Nat, &[(key(80), Conn::default())]);
        seen.record(Table::Direct, &[(key(443), Conn::default())]);
        assert!(seen.has(n, 80u16.to_be()) && !seen.has(d, 80u16.to_be()));
        assert!(seen.has(d, 443u16.to_be()) && !seen.has(n, 443u16.to_be()));
        assert!(!seen.has(d, 81u16.to_be()) && !seen.has(n, 0));
        seen.mark(d, u16::MAX);
        assert!(seen.has(d, u16::MAX));
        assert_eq!(seen.started, 7);
    }
}
