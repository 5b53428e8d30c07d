//! NAT and FULLNAT maps from userspace (the program side is `bpf/nat.h`, `bpf/fullnat.h`,
//! `bpf/conntrack.h`): reals' ports, FULLNAT local address pools, the device map of interfaces
//! NAT may send out of, reading the reverse table, and the sweep that reclaims the reverse
//! entries (and FULLNAT local ports) of flows whose `rvs_conns` entry expired (by its state's
//! timeout, [`crate::conntrack`]) or vanished.

use crate::abi::{self, Config, Conn, FlowKey, FnatPool, NatRev, addr_of};
use crate::balancer::Balancer;
use crate::conntrack::expired;
use crate::error::{XdpError, map_err};
use aya::maps::{Array, DevMap, HashMap, MapData};
use std::net::IpAddr;

/// A FULLNAT flow's local address and port (network order), as [`Balancer::fnat_flows`]
/// reports it (the program keeps the port and the address's pool index in the flow's entry).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fnat {
    pub laddr: abi::Addr,
    pub lport: u16,
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Reverse entries looked at.
    pub seen: usize,
    /// Flows reclaimed (reverse entry, FULLNAT local port and connection entry removed).
    pub reclaimed: usize,
    /// Stale reverse entries removed: local ports of FULLNAT flows that have another one now.
    pub stale: usize,
}

impl Balancer {
    /// The port real `index` listens on (host order; 0 = the service's port).
    pub fn set_real_port(&mut self, index: u32, port: u16) -> Result<(), XdpError> {
        let m = self.ebpf_mut().map_mut("rvs_real_ports");
        let mut a: Array<&mut MapData, u16> =
            Array::try_from(m.ok_or(XdpError::Missing("rvs_real_ports"))?)
                .map_err(map_err("rvs_real_ports"))?;
        a.set(index, port.to_be(), 0)
            .map_err(map_err("rvs_real_ports"))
    }

    /// FULLNAT local addresses of service slot `index` (at most `RVS_MAX_LADDRS`).
    pub fn set_fnat_pool(&mut self, index: u32, addrs: &[IpAddr]) -> Result<(), XdpError> {
        if addrs.len() > abi::RVS_MAX_LADDRS as usize {
            return Err(XdpError::Invalid(format!(
                "{} FULLNAT local addresses for one service; at most {}",
                addrs.len(),
                abi::RVS_MAX_LADDRS
            )));
        }
        let mut pool = FnatPool {
            count: addrs.len() as u32,
            ..Default::default()
        };
        for (slot, ip) in pool.addrs.iter_mut().zip(addrs) {
            *slot = addr_of(*ip).0;
        }
        let m = self.ebpf_mut().map_mut("rvs_fnat_pools");
        let mut a: Array<&mut MapData, FnatPool> =
            Array::try_from(m.ok_or(XdpError::Missing("rvs_fnat_pools"))?)
                .map_err(map_err("rvs_fnat_pools"))?;
        a.set(index, pool, 0).map_err(map_err("rvs_fnat_pools"))
    }

    /// Let NAT send out of interface `ifindex` (bpf_redirect_map).
    pub fn set_tx_port(&mut self, ifindex: u32) -> Result<(), XdpError> {
        let m = self.ebpf_mut().map_mut("rvs_tx_ports");
        let mut d: DevMap<&mut MapData> =
            DevMap::try_from(m.ok_or(XdpError::Missing("rvs_tx_ports"))?)
                .map_err(map_err("rvs_tx_ports"))?;
        d.set(ifindex, ifindex, None, 0)
            .map_err(|e| XdpError::Invalid(format!("rvs_tx_ports: {e}")))
    }

    /// The reverse table: (flow as the real sends it, flow as the client sent it).
    pub fn nat_rev(&self) -> Result<Vec<(FlowKey, FlowKey)>, XdpError> {
        let m = self.ebpf().map("rvs_nat_rev");
        let h: HashMap<&MapData, FlowKey, NatRev> =
            HashMap::try_from(m.ok_or(XdpError::Missing("rvs_nat_rev"))?)
                .map_err(map_err("rvs_nat_rev"))?;
        Ok(h.iter()
            .filter_map(Result::ok)
            .map(|(k, v)| (k, v.orig))
            .collect())
    }

    /// FULLNAT flows: (flow as the client sent it, local address and port), from their
    /// connection entries and their services' pools.
    pub fn fnat_flows(&self) -> Result<Vec<(FlowKey, Fnat)>, XdpError> {
        let m = self.ebpf().map("rvs_fnat_pools");
        let pools: Array<&MapData, FnatPool> =
            Array::try_from(m.ok_or(XdpError::Missing("rvs_fnat_pools"))?)
                .map_err(map_err("rvs_fnat_pools"))?;
        let mut out = Vec::new();
        for (k, c) in self.conns()? {
            if c.lport == 0 {
                continue;
            }
            let pool = pools.get(&c.svc, 0).map_err(map_err("rvs_fnat_pools"))?;
            if let Some(laddr) = pool.addrs.get(usize::from(c.laddr)) {
                out.push((
                    k,
                    Fnat {
                        laddr: *laddr,
                        lport: c.lport,
                    },
                ));
            }
        }
        Ok(out)
    }

    fn conn_of(&self, key: &FlowKey) -> Result<Option<Conn>, XdpError> {
        let m = self.ebpf().map("rvs_conns");
        let h: HashMap<&MapData, FlowKey, Conn> =
            HashMap::try_from(m.ok_or(XdpError::Missing("rvs_conns"))?)
                .map_err(map_err("rvs_conns"))?;
        Ok(h.get(key, 0).ok())
    }

    fn remove<V: aya::Pod>(&mut self, map: &'static str, key: &FlowKey) -> Result<(), XdpError> {
        let m = self.ebpf_mut().map_mut(map).ok_or(XdpError::Missing(map))?;
        let mut h: HashMap<&mut MapData, FlowKey, V> =
            HashMap::try_from(m).map_err(map_err(map))?;
        match h.remove(key) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(aya::maps::MapError::SyscallError(e))
                if e.io_error.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(())
            }
            Err(e) => Err(map_err(map)(e)),
        }
    }

    /// Reclaim NAT/FULLNAT flows expired at `now` (monotonic ns) under `cfg`'s timeouts: the
    /// reverse entry first (replies stop matching, and a FULLNAT local port is free again),
    /// then the connection entry. A flow that came back to life meanwhile gets its reverse entry again.
    pub fn sweep_nat(&mut self, cfg: &Config, now: u64) -> Result<SweepReport, XdpError> {
        let mut report = SweepReport::default();
        for (rev, orig) in self.nat_rev()? {
            report.seen += 1;
            let conn = self.conn_of(&orig)?;
            if let Some(c) = conn.as_ref()
                && c.lport != 0
                && c.lport != rev.dport
                && !expired(cfg, Some(c), now)
            {
                // The FULLNAT flow has another local port now (its entry expired and was made
                // afresh before a sweep saw it): this reverse entry is stale.
                self.remove::<NatRev>("rvs_nat_rev", &rev)?;
                report.stale += 1;
                continue;
            }
            if !expired(cfg, conn.as_ref(), now) {
                continue;
            }
            self.remove::<NatRev>("rvs_nat_rev", &rev)?;
            if let Some(c) = self.conn_of(&orig)?
                && !expired(cfg, Some(&c), now)
            {
                let m = self.ebpf_mut().map_mut("rvs_nat_rev");
                let mut h: HashMap<&mut MapData, FlowKey, NatRev> =
                    HashMap::try_from(m.ok_or(XdpError::Missing("rvs_nat_rev"))?)
                        .map_err(map_err("rvs_nat_rev"))?;
                let value = NatRev {
                    orig,
                    ..Default::default()
                };
                // BPF_NOEXIST: a new flow may have taken the local port meanwhile.
                if h.insert(rev, value, 1).is_err() {
                    log::debug!("xdp: reverse entry of a revived flow was taken");
                }
                continue;
            }
            self.remove::<Conn>("rvs_conns", &orig)?;
            report.reclaimed += 1;
        }
        Ok(report)
    }

    /// Remove the connection entries expired at `now` by their state's timeout (the LRU would
    /// only evict them under pressure; removing them keeps listings and counts cheap). Returns
    /// how many. A flow whose entry goes while its client is still sending (it was idle past
    /// its timeout) is scheduled afresh, as IPVS does.
    pub fn sweep_conns(&mut self, cfg: &Config, now: u64) -> Result<usize, XdpError> {
        let mut n = 0;
        for (k, c) in self.conns()? {
            if expired(cfg, Some(&c), now) {
                self.remove::<Conn>("rvs_conns", &k)?;
                n += 1;
            }
        }
        Ok(n)
    }
}
