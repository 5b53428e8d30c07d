//! NAT and FULLNAT maps from userspace (the program side is `bpf/nat.h`, `bpf/fullnat.h`,
//! `bpf/conntrack.h`): reals' ports, FULLNAT local address pools, the device map of interfaces
//! NAT may send out of, and reading the reverse table. The sweep that reclaims the reverse
//! entries of expired flows is `crate::sweep`.

use crate::abi::{self, FlowKey, FnatPool, NatRev, addr_of};
use crate::balancer::Balancer;
use crate::error::{XdpError, map_err};
use aya::maps::{Array, DevMap, MapData};
use std::net::IpAddr;

pub use crate::sweep::SweepReport;

/// A FULLNAT flow's local address and port (network order), as [`Balancer::fnat_flows`]
/// reports it (the program keeps the port and the address's pool index in the flow's entry).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fnat {
    pub laddr: abi::Addr,
    pub lport: u16,
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

    /// Insert a reverse entry: replies on flow `rev` (as the real sends them) belong to
    /// `value.orig` (tests and measurements; the program makes them).
    pub fn insert_nat_rev(&mut self, rev: &FlowKey, value: &NatRev) -> Result<(), XdpError> {
        let m = self.ebpf_mut().map_mut("rvs_nat_rev");
        let mut h: aya::maps::HashMap<&mut MapData, FlowKey, NatRev> =
            aya::maps::HashMap::try_from(m.ok_or(XdpError::Missing("rvs_nat_rev"))?)
                .map_err(map_err("rvs_nat_rev"))?;
        h.insert(rev, value, 0).map_err(map_err("rvs_nat_rev"))
    }

    /// The reverse table: (flow as the real sends it, flow as the client sent it).
    pub fn nat_rev(&self) -> Result<Vec<(FlowKey, FlowKey)>, XdpError> {
        Ok(self
            .read_hash::<FlowKey, NatRev>("rvs_nat_rev")?
            .into_iter()
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
        for (k, c) in self.nat_conns()? {
            if c.lport == 0 {
                continue;
            }
            let pool = pools.get(&c.svc, 0).map_err(map_err("rvs_fnat_pools"))?;
            let index = c.laddr & abi::RVS_LADDR_INDEX as u8;
            if let Some(laddr) = pool.addrs.get(usize::from(index)) {
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
}
