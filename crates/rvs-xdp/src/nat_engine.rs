//! The engine's side of NAT and FULLNAT: FULLNAT local address pools (a default from
//! [`crate::XdpConfig::fullnat_local`], per-service overrides from
//! [`crate::XdpEngine::set_fullnat_pool`]), reals' ports, the support check, and the periodic
//! sweep of expired flows run by the upkeep thread.

use crate::abi;
use crate::engine::{Inner, monotonic_ns};
use crate::state::config_abi;
use crate::sweep::ConnTables;
use rvs_core::engine::Unsupported;
use rvs_core::model::{ForwardMethod, RealServer, ServiceKey};
use std::collections::{BTreeMap, HashMap};
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

/// The port to write for a real: NAT and FULLNAT map ports, DR and TUN cannot.
pub(crate) fn real_port(real: &RealServer) -> u16 {
    match real.method {
        ForwardMethod::Nat | ForwardMethod::FullNat => real.addr.port(),
        _ => 0,
    }
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

/// What the upkeep thread does outside the engine's lock in one round: the timeouts in force,
/// and whether to count live connections for the overload thresholds.
pub(crate) struct SweepJob {
    cfg: abi::Config,
    count_live: bool,
}

/// Under the engine's lock: the round's job, and the sweep's own handles on the connection
/// tables (made on the first round). `None` when there is no balancer (or no handles).
pub(crate) fn sweep_job(inner: &Inner, tables: &mut Option<ConnTables>) -> Option<SweepJob> {
    let b = inner.balancer.as_ref()?;
    if tables.is_none() {
        match b.conn_tables() {
            Ok(t) => *tables = Some(t),
            Err(e) => {
                log::warn!("xdp: opening the connection tables for the sweep: {e}");
                return None;
            }
        }
    }
    Some(SweepJob {
        cfg: config_abi(&inner.state_timeouts, &inner.timeouts),
        count_live: crate::upkeep::has_thresholds(inner),
    })
}

/// Without the lock: read the connection table once, reclaim expired NAT/FULLNAT flows (reverse
/// entries, local ports, connection entries), then remove every other expired connection entry
/// (DR/TUN flows): [`crate::Balancer::sweep`]. The live connections per real when the job asks.
pub(crate) fn sweep(tables: &mut ConnTables, job: &SweepJob) -> Option<HashMap<u32, (u32, u32)>> {
    let now = monotonic_ns();
    let conns = match tables.conns() {
        Ok(c) => c,
        Err(e) => {
            log::warn!("xdp: reading the connection table: {e}");
            return None;
        }
    };
    match tables.sweep(&job.cfg, now, &conns) {
        Ok((r, n)) => {
            if r.reclaimed > 0 {
                log::debug!("xdp: reclaimed {} of {} NAT flows", r.reclaimed, r.seen);
            }
            if n > 0 {
                log::debug!("xdp: removed {n} expired connection entries");
            }
        }
        Err(e) => log::warn!("xdp: sweeping expired flows: {e}"),
    }
    job.count_live
        .then(|| crate::upkeep::count_live(&job.cfg, now, &conns))
}
