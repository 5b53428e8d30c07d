//! The order in which the engine writes a service and its reals into the program's maps. A
//! packet may arrive between any two writes, so each write may only lean on what is already
//! there:
//!
//! - A service's FULLNAT pool and its port's table bits (`rvs_vip_ports`, which the loader
//!   derives from the service entry's `RVS_SVC_F_DIRECT` / `RVS_SVC_F_NAT`) come before a real
//!   entry or a Maglev slot that needs them. Otherwise a SYN scheduled to a service's first NAT
//!   real (by Maglev, or by a persistence template naming a real just edited to NAT) would have
//!   its entry made in `rvs_nat_conns` while its port says `direct` only: its next packets
//!   would miss it and be scheduled afresh (a FULLNAT flow getting a new local port each time),
//!   or a FULLNAT SYN would find no local address yet (`no_lport`).
//! - A new service's Maglev table comes before its key: the program reads the table as soon as
//!   the key exists.
//! - Writes never narrow the bits ([`SvcSlot::tables`]): entries of either kind may outlive the
//!   reals that made them (a flow keeps its method). A bit no real needs any more is noted
//!   ([`crate::narrow::note`]) and goes only when a pass of the sweep proved its table holds
//!   no flow of the port ([`narrow`]), by a rewrite of the service's entry alone; or with the
//!   service, whose key goes first.
//!
//! [`MapWrites`] is the seam the order is tested through: [`Balancer`] implements it, the unit
//! tests below record the calls.

use crate::abi::{Real, Service, VipKey};
use crate::balancer::Balancer;
use crate::error::XdpError;
use crate::narrow as rules;
use crate::state::{RealSlot, SvcSlot, method_flags, service_abi, sync_table};
use crate::sweep::PortsSeen;
use rvs_core::model::ServiceKey;
use std::net::IpAddr;

/// The map writes a service and its reals need.
pub(crate) trait MapWrites {
    fn set_service(&mut self, key: &VipKey, svc: &Service) -> Result<(), XdpError>;
    fn set_real(&mut self, index: u32, real: &Real) -> Result<(), XdpError>;
    fn set_real_port(&mut self, index: u32, port: u16) -> Result<(), XdpError>;
    fn set_maglev(&mut self, index: u32, table: &[u32]) -> Result<(), XdpError>;
    fn set_maglev_slots(&mut self, index: u32, slots: &[(u32, u32)]) -> Result<(), XdpError>;
    fn set_fnat_pool(&mut self, index: u32, addrs: &[IpAddr]) -> Result<(), XdpError>;
}

impl MapWrites for Balancer {
    fn set_service(&mut self, key: &VipKey, svc: &Service) -> Result<(), XdpError> {
        Balancer::set_service(self, key, svc)
    }
    fn set_real(&mut self, index: u32, real: &Real) -> Result<(), XdpError> {
        Balancer::set_real(self, index, real)
    }
    fn set_real_port(&mut self, index: u32, port: u16) -> Result<(), XdpError> {
        Balancer::set_real_port(self, index, port)
    }
    fn set_maglev(&mut self, index: u32, table: &[u32]) -> Result<(), XdpError> {
        Balancer::set_maglev(self, index, table)
    }
    fn set_maglev_slots(&mut self, index: u32, slots: &[(u32, u32)]) -> Result<(), XdpError> {
        Balancer::set_maglev_slots(self, index, slots)
    }
    fn set_fnat_pool(&mut self, index: u32, addrs: &[IpAddr]) -> Result<(), XdpError> {
        Balancer::set_fnat_pool(self, index, addrs)
    }
}

/// A service as written: its map key, its configuration key, its FULLNAT local addresses, and
/// when (monotonic ns; what bits no real needs any more are noted with).
pub(crate) struct Target<'a> {
    pub vk: VipKey,
    pub key: &'a ServiceKey,
    pub pool: &'a [IpAddr],
    pub now: u64,
}

/// The service's entry: options, and the table flags of every method its reals have had.
fn entry(t: &Target, svc: &SvcSlot) -> Service {
    let mut value = service_abi(svc.index, t.key, &svc.options);
    value.flags |= svc.tables;
    value
}

/// What reals and Maglev slots about to be written may need: the FULLNAT pool, and the port's
/// table bits widened to the methods of `svc`'s reals (the entry rewritten when that adds a
/// bit to a service already in the map).
fn prepare(w: &mut impl MapWrites, t: &Target, svc: &mut SvcSlot) -> Result<(), XdpError> {
    w.set_fnat_pool(svc.index, t.pool)?;
    let tables = svc.tables | method_flags(svc.reals.values().map(|r| r.real.method));
    if tables != svc.tables {
        svc.tables = tables;
        // A service with no table written yet has no key in the map either (`finish`).
        if !svc.table.is_empty() {
            w.set_service(&t.vk, &entry(t, svc))?;
        }
    }
    Ok(())
}

/// The Maglev table (as a diff of the last one), then the entry; bits no real needs any more
/// noted from now.
fn finish(w: &mut impl MapWrites, t: &Target, svc: &mut SvcSlot) -> Result<(), XdpError> {
    sync_table(w, svc)?;
    w.set_service(&t.vk, &entry(t, svc))?;
    let needed = method_flags(svc.reals.values().map(|r| r.real.method));
    rules::note(svc.tables, needed, &mut svc.unneeded, t.now);
    Ok(())
}

/// Write service `svc` as `t`: pool and widened bits, Maglev table, entry.
pub(crate) fn write_service(
    w: &mut impl MapWrites,
    t: &Target,
    svc: &mut SvcSlot,
) -> Result<(), XdpError> {
    prepare(w, t, svc)?;
    finish(w, t, svc)
}

/// Add or replace real `slot` (listening on `port`) of service `svc`, then rewrite the service:
/// pool and bits first, then the real, then the Maglev slots that name it and the entry.
pub(crate) fn write_real(
    w: &mut impl MapWrites,
    t: &Target,
    svc: &mut SvcSlot,
    slot: RealSlot,
    port: u16,
) -> Result<(), XdpError> {
    let (index, value) = (slot.index, slot.abi());
    svc.reals.insert(slot.real.addr, slot);
    prepare(w, t, svc)?;
    w.set_real_port(index, port)?;
    w.set_real(index, &value)?;
    finish(w, t, svc)
}

/// Narrow service `svc`'s bits by what sweep pass `pass` proved ([`crate::narrow`]): only
/// its entry is rewritten, and only when a bit went. Whether one did.
pub(crate) fn narrow(
    w: &mut impl MapWrites,
    t: &Target,
    svc: &mut SvcSlot,
    pass: &PortsSeen,
) -> Result<bool, XdpError> {
    let tables = rules::narrowed(svc.tables, &mut svc.unneeded, t.vk.port, pass);
    if tables == svc.tables {
        return Ok(false);
    }
    svc.tables = tables;
    if !svc.table.is_empty() {
        w.set_service(&t.vk, &entry(t, svc))?;
    }
    Ok(true)
}

/// Widen service `svc`'s bits by `flags` before entries of those kinds are put in the tables
/// from outside the program (connection sync): a bit no real needs is noted from now, so it
/// goes again once the sweep proves those entries gone.
pub(crate) fn widen(
    w: &mut impl MapWrites,
    t: &Target,
    svc: &mut SvcSlot,
    flags: u32,
) -> Result<(), XdpError> {
    if svc.tables | flags == svc.tables {
        return Ok(());
    }
    svc.tables |= flags;
    if !svc.table.is_empty() {
        w.set_service(&t.vk, &entry(t, svc))?;
    }
    let needed = method_flags(svc.reals.values().map(|r| r.real.method));
    rules::note(svc.tables, needed, &mut svc.unneeded, t.now);
    Ok(())
}

#[cfg(test)]
mod tests;
