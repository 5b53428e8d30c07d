//! When a service's connection-table bits (`RVS_SVC_F_DIRECT`: its flows may be in
//! `rvs_conns`, `RVS_SVC_F_NAT`: in `rvs_nat_conns`; the loader ORs those of every service on a
//! port into the port's `rvs_vip_ports` bits) may be narrowed. Pure: time is passed in.
//!
//! A bit is widened as soon as a real of its kind is written ([`crate::service_writes`]). It
//! is narrowed when both hold:
//!
//! 1. no real of the service has had a method of that kind since some time `since` (the
//!    writes that took the last one away, [`note`]), and
//! 2. a complete pass of the sweep that started at least [`SETTLE_NS`] after `since` read no
//!    entry to the service's port in that table ([`crate::sweep::PortsSeen`]).
//!
//! Why that is enough: after `since` the program makes no entry of that kind for the service
//! (entries take the method of the real the packet is scheduled to, and no real has it; a
//! packet already inside the program when the last real changed is done within microseconds,
//! far inside [`SETTLE_NS`]). So every entry of that kind the service's flows still have was
//! made before the pass started and, present throughout it, was read. Other services on the
//! same port keep the port's bit through their own flags; a port's proof counts entries of any
//! service (the bits are per port), so it is conservative for each of them. Entries read
//! expired count too (see [`crate::sweep::PortsSeen`]), so a port is narrowed one pass after
//! its last entry of that kind expired and was deleted.
//!
//! Narrowing rewrites only the service's entry (fewer flags); reals and Maglev slots are
//! untouched, so the write order of [`crate::service_writes`] (bits before anything that needs
//! them) is unchanged: a real of that kind written again widens the bit again first.

use crate::abi;
use crate::sweep::PortsSeen;

/// How long after the last real of a kind went a pass of the sweep must start for its proof to
/// count: far above a packet's run through the program (microseconds) and the coarse clock's
/// tick (≤ 4 ms) that both times are read with.
pub(crate) const SETTLE_NS: u64 = 1_000_000_000;

/// The two table flags, each with its [`Unneeded`] slot.
const FLAGS: [u32; 2] = [abi::RVS_SVC_F_DIRECT as u32, abi::RVS_SVC_F_NAT as u32];

/// Since when (monotonic ns) a service has had a table bit that none of its reals needs:
/// `direct` for `RVS_SVC_F_DIRECT`, `nat` for `RVS_SVC_F_NAT`; `None` while a real needs it
/// or the bit is clear.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Unneeded {
    pub direct: Option<u64>,
    pub nat: Option<u64>,
}

impl Unneeded {
    fn slot(&mut self, flag: u32) -> &mut Option<u64> {
        if flag == abi::RVS_SVC_F_NAT as u32 {
            &mut self.nat
        } else {
            &mut self.direct
        }
    }
}

/// After a service with bits `tables` was written at `now` with reals needing `needed`
/// ([`crate::state::method_flags`] of its reals): start counting for each bit no real needs
/// any more (an earlier start is kept: no real needed it in between), stop for the others.
pub(crate) fn note(tables: u32, needed: u32, unneeded: &mut Unneeded, now: u64) {
    for flag in FLAGS {
        let slot = unneeded.slot(flag);
        if tables & flag != 0 && needed & flag == 0 {
            slot.get_or_insert(now);
        } else {
            *slot = None;
        }
    }
}

/// The bits a service with bits `tables` on port `port` (network order) keeps after pass
/// `pass`: those still needed by a real, still within [`SETTLE_NS`] of the pass's start, or
/// with an entry to `port` in their table during the pass. The bits dropped leave `unneeded`.
pub(crate) fn narrowed(tables: u32, unneeded: &mut Unneeded, port: u16, pass: &PortsSeen) -> u32 {
    let mut keep = tables;
    for flag in FLAGS {
        let slot = unneeded.slot(flag);
        let Some(since) = *slot else {
            continue;
        };
        if pass.started >= since.saturating_add(SETTLE_NS) && !pass.has(flag, port) {
            keep &= !flag;
            *slot = None;
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: u32 = abi::RVS_SVC_F_DIRECT as u32;
    const N: u32 = abi::RVS_SVC_F_NAT as u32;
    const PORT: u16 = 80u16.to_be();
    const T0: u64 = 5_000_000_000;

    #[test]
    fn a_bit_no_real_needs_is_noted_once_and_forgotten_when_needed_again() {
        let mut u = Unneeded::default();
        note(D | N, D | N, &mut u, T0);
        assert_eq!(u, Unneeded::default(), "both needed");
        note(D | N, D, &mut u, T0);
        assert_eq!(u.nat, Some(T0));
        note(D | N, D, &mut u, T0 + 7);
        assert_eq!(u.nat, Some(T0), "the first time no real needed it is kept");
        note(D | N, D | N, &mut u, T0 + 9);
        assert_eq!(u.nat, None, "a NAT real again");
        note(N, N, &mut u, T0);
        assert_eq!(u, Unneeded::default(), "a clear bit is never noted");
        note(D | N, 0, &mut u, T0);
        assert_eq!((u.direct, u.nat), (Some(T0), Some(T0)), "no reals at all");
    }

    #[test]
    fn a_bit_goes_only_after_a_pass_started_late_enough_that_saw_no_entry_of_the_port() {
        let mut u = Unneeded {
            direct: None,
            nat: Some(T0),
        };
        let early = PortsSeen::new(T0 + SETTLE_NS - 1);
        assert_eq!(narrowed(D | N, &mut u, PORT, &early), D | N, "too early");
        let mut busy = PortsSeen::new(T0 + SETTLE_NS);
        busy.mark(N, PORT);
        assert_eq!(narrowed(D | N, &mut u, PORT, &busy), D | N, "an entry");
        assert_eq!(u.nat, Some(T0));
        let mut other = PortsSeen::new(T0 + SETTLE_NS);
        other.mark(N, 81u16.to_be());
        other.mark(D, PORT);
        assert_eq!(
            narrowed(D | N, &mut u, PORT, &other),
            D,
            "entries of another port or of the other table do not count"
        );
        assert_eq!(u, Unneeded::default());
        assert_eq!(narrowed(D, &mut u, PORT, &other), D, "needed bits stay");
    }

    #[test]
    fn both_bits_may_go_each_on_its_own_proof() {
        let mut u = Unneeded {
            direct: Some(T0),
            nat: Some(T0 + SETTLE_NS),
        };
        let pass = PortsSeen::new(T0 + SETTLE_NS);
        assert_eq!(narrowed(D | N, &mut u, PORT, &pass), N, "NAT went later");
        let pass = PortsSeen::new(T0 + 2 * SETTLE_NS);
        assert_eq!(narrowed(N, &mut u, PORT, &pass), 0);
        assert_eq!(u, Unneeded::default());
    }
}
