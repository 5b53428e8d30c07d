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
//! - The bits are never narrowed while the service exists ([`SvcSlot::tables`]): entries of
//!   either kind may outlive the reals that made them (a flow keeps its method); they go with
//!   the service, whose key goes first.
//!
//! [`MapWrites`] is the seam the order is tested through: [`Balancer`] implements it, the unit
//! tests below record the calls.

use crate::abi::{Real, Service, VipKey};
use crate::balancer::Balancer;
use crate::error::XdpError;
use crate::state::{RealSlot, SvcSlot, method_flags, service_abi, sync_table};
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

/// A service as written: its map key, its configuration key and its FULLNAT local addresses.
pub(crate) struct Target<'a> {
    pub vk: VipKey,
    pub key: &'a ServiceKey,
    pub pool: &'a [IpAddr],
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

/// The Maglev table (as a diff of the last one), then the entry.
fn finish(w: &mut impl MapWrites, t: &Target, svc: &mut SvcSlot) -> Result<(), XdpError> {
    sync_table(w, svc)?;
    w.set_service(&t.vk, &entry(t, svc))
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

#[cfg(test)]
mod tests;
