//! The engine's side of NAT and FULLNAT: FULLNAT local address pools (a default from
//! [`crate::XdpConfig::fullnat_local`], per-service overrides from
//! [`crate::XdpEngine::set_fullnat_pool`]), reals' ports, the support check, and the periodic
//! sweep of expired flows run by the upkeep thread.

use crate::abi;
use crate::engine::{Inner, monotonic_ns};
use crate::state::config_abi;
use crate::sweep::{SLICE_BUDGET, Sweeper};
use rvs_core::engine::Unsupported;
use rvs_core::model::{ForwardMethod, RealServer, ServiceKey};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// FULLNAT local addresses.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pools {
    default: Vec<IpAddr>,
    per_service: BTreeMap<ServiceKey, Vec<IpAddr>>,
}

impl Pools {
    pub fn new(default: Vec<IpAddr>) -> Pools {
        Pools {
            default,
            per_service: BTreeMap::new(),
        }
    }

    pub fn set(&mut self, key: ServiceKey, addrs: Vec<IpAddr>) {
        if addrs.is_empty() {
            self.per_service.remove(&key);
        } else {
            self.per_service.insert(key, addrs);
        }
    }

    /// The local addresses of `key`'s family it uses (at most `RVS_MAX_LADDRS`).
    pub fn for_service(&self, key: &ServiceKey) -> Vec<IpAddr> {
        let v6 = matches!(key, ServiceKey::Addr { addr, .. } if addr.is_ipv6());
        self.per_service
            .get(key)
            .unwrap_or(&self.default)
            .iter()
            .filter(|a| a.is_ipv6() == v6)
            .take(abi::RVS_MAX_LADDRS as usize)
            .copied()
            .collect()
    }
}

/// The port to write for a real: its own, whatever its method. Only NAT/FULLNAT flows read
/// it (DR and TUN cannot map ports), and a NAT flow keeps its method when its real is edited
/// to DR or TUN, so it must still find the port it was made with.
pub(crate) fn real_port(real: &RealServer) -> u16 {
    real.addr.port()
}

/// A FULLNAT real needs a local address of the service's family; NAT and FULLNAT need the
/// real in the service's family.
pub(crate) fn check(pools: &Pools, key: &ServiceKey, real: &RealServer) -> Result<(), Unsupported> {
    let ServiceKey::Addr { addr, .. } = key else {
        return Ok(());
    };
    let nat = matches!(real.method, ForwardMethod::Nat | ForwardMethod::FullNat);
    if nat && addr.is_ipv6() != real.addr.is_ipv6() {
        return Err(Unsupported(format!(
            "{key}: the xdp engine's NAT/FULLNAT needs the real {} in the VIP's family",
            real.addr
        )));
    }
    if real.method == ForwardMethod::FullNat && pools.for_service(key).is_empty() {
        return Err(Unsupported(format!(
            "{key}: FULLNAT needs a local address of the VIP's family (xdp fullnat_local)"
        )));
    }
    Ok(())
}

/// What a complete pass over the connection tables found: live connections per real, and the
/// ports with entries in each table.
pub(crate) type Pass = (crate::sweep::LiveCounts, crate::sweep::PortsSeen);

/// What the upkeep thread does outside the engine's lock in one round: the timeouts in force,
/// and whether the live connections it counts feed overload thresholds.
pub(crate) struct SweepJob {
    cfg: abi::Config,
    pub thresholds: bool,
}

/// Under the engine's lock: the round's job, and the sweeper with its own handles on the
/// connection tables (made on the first round). `None` when there is no balancer (or no
/// handles).
pub(crate) fn sweep_job(inner: &Inner, sweeper: &mut Option<Sweeper>) -> Option<SweepJob> {
    let b = inner.balancer.as_ref()?;
    if sweeper.is_none() {
        match b.sweeper(SLICE_BUDGET) {
            Ok(s) => *sweeper = Some(s),
            Err(e) => {
                log::warn!("xdp: opening the connection tables for the sweep: {e}");
                return None;
            }
        }
    }
    Some(SweepJob {
        cfg: config_abi(&inner.state_timeouts, &inner.timeouts),
        thresholds: crate::upkeep::has_thresholds(inner),
    })
}

/// Without the lock: one round of the sliced sweep ([`crate::sweep`]): reclaim expired
/// NAT/FULLNAT flows (reverse entries, local ports, connection entries) of the next slice of
/// the reverse table, remove expired DR/TUN (and NAT) entries of the next slice of the
/// connection tables (`rvs_conns`, then `rvs_nat_conns`). Returns the connection entries this
/// round read and, when it completed a pass over both tables, the live connections per real
/// counted over the pass and the ports it read entries of ([`crate::sweep::PortsSeen`]).
pub(crate) fn sweep(sweeper: &mut Sweeper, job: &SweepJob) -> Option<(usize, Option<Pass>)> {
    match sweeper.round(&job.cfg, monotonic_ns()) {
        Ok(r) => {
            if r.nat.reclaimed > 0 {
                log::debug!(
                    "xdp: reclaimed {} of {} NAT flows",
                    r.nat.reclaimed,
                    r.nat.seen
                );
            }
            if r.removed > 0 {
                log::debug!("xdp: removed {} expired connection entries", r.removed);
            }
            Some((r.conns_read, r.live.zip(r.ports)))
        }
        Err(e) => {
            log::warn!("xdp: sweeping expired flows: {e}");
            None
        }
    }
}
