//! The trivial XDP forwarder (`bpf/rvs_forward.c`): DR on the wire and nothing else — IPv4 TCP
//! to one VIP:port gets a real's MAC (picked by a hash of the client's address and port, see
//! [`real_index`]) as destination and ours as source, and goes back out (`XDP_TX`); everything
//! else is passed. No connection table, no Maglev, no counters but one of forwarded packets.
//!
//! It is the ceiling the end-to-end DR benchmark compares rvs with (`packet_dr`, subject
//! `xdp-forward`, run by the `rvs-xdp-forward` binary); it is not part of rvs's data plane.

use crate::abi::{self, FwdConfig};
use crate::balancer::AttachMode;
use crate::error::{XdpError, map_err};
use aya::Ebpf;
use aya::maps::{Array, MapData, PerCpuArray};
use aya::programs::Xdp;
use aya::programs::xdp::XdpLinkId;
use std::net::Ipv4Addr;

const PROG: &str = "rvs_forward";
const CONFIG: &str = "rvs_fwd_config";
const PACKETS: &str = "rvs_fwd_packets";

/// Most reals the forwarder spreads over.
pub const MAX_REALS: usize = abi::RVS_FWD_MAX_REALS as usize;

/// Index of the real (of `reals`) that the program sends the client's flow to — the same
/// computation as `fwd_pick` in `bpf/rvs_forward.c`, on the address and port as the packet
/// carries them (network order). `reals` must not be 0.
pub fn real_index(client: Ipv4Addr, client_port: u16, reals: usize) -> usize {
    let saddr = u32::from_ne_bytes(client.octets());
    let sport = u16::from_ne_bytes(client_port.to_be_bytes());
    let mut h = (saddr ^ u32::from(sport).wrapping_mul(0x9e37_79b1)).wrapping_mul(0x85eb_ca6b);
    h ^= h >> 16;
    (h % reals as u32) as usize
}

/// The forwarder program, loaded.
pub struct Forwarder {
    ebpf: Ebpf,
}

impl Forwarder {
    /// Load and verify the embedded program (not attached, forwarding nothing until
    /// [`Forwarder::configure`]). Needs CAP_BPF / root.
    pub fn load() -> Result<Forwarder, XdpError> {
        let mut ebpf = Ebpf::load(crate::programs::RVS_FORWARD)?;
        crate::programs::load_xdp(&mut ebpf, PROG)?;
        Ok(Forwarder { ebpf })
    }

    /// Forward TCP to `vip:port` over `reals` (their MACs, 1 to [`MAX_REALS`]) with `own_mac` as
    /// the source MAC.
    pub fn configure(
        &mut self,
        vip: Ipv4Addr,
        port: u16,
        own_mac: [u8; 6],
        reals: &[[u8; 6]],
    ) -> Result<(), XdpError> {
        if reals.is_empty() || reals.len() > MAX_REALS {
            return Err(XdpError::Invalid(format!(
                "the forwarder takes 1 to {MAX_REALS} reals, not {}",
                reals.len()
            )));
        }
        let mut cfg = FwdConfig {
            vip: u32::from_ne_bytes(vip.octets()),
            port: u16::from_ne_bytes(port.to_be_bytes()),
            own_mac,
            count: reals.len() as u32,
            ..Default::default()
        };
        cfg.macs[..reals.len()].copy_from_slice(reals);
        let mut m: Array<&mut MapData, FwdConfig> =
            Array::try_from(self.ebpf.map_mut(CONFIG).ok_or(XdpError::Missing(CONFIG))?)
                .map_err(map_err(CONFIG))?;
        m.set(0, cfg, 0).map_err(map_err(CONFIG))
    }

    /// Packets forwarded so far (all CPUs).
    pub fn forwarded(&self) -> Result<u64, XdpError> {
        let m: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.ebpf.map(PACKETS).ok_or(XdpError::Missing(PACKETS))?)
                .map_err(map_err(PACKETS))?;
        Ok(m.get(&0, 0).map_err(map_err(PACKETS))?.iter().sum())
    }

    /// Run one frame through the program: (action, frame after).
    pub fn test_run(&self, frame: &[u8]) -> Result<(u32, Vec<u8>), XdpError> {
        crate::programs::test_run(&self.ebpf, PROG, frame, 256)
    }

    /// Attach to `interface`, native first, generic as fallback (or generic only when
    /// `generic`). Detached when the forwarder is dropped.
    pub fn attach(
        &mut self,
        interface: &str,
        generic: bool,
    ) -> Result<(AttachMode, XdpLinkId), XdpError> {
        let prog: &mut Xdp = crate::programs::xdp_mut(&mut self.ebpf, PROG)?;
        crate::programs::attach(prog, interface, generic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_index_is_in_range_and_spreads_ports() {
        let client = Ipv4Addr::new(10, 0, 0, 1);
        let mut seen = [0u32; 3];
        for port in 32768..33768u16 {
            let i = real_index(client, port, 3);
            assert!(i < 3);
            seen[i] += 1;
        }
        // 1,000 consecutive ports: every real gets a fair share.
        assert!(seen.iter().all(|&n| n > 250), "{seen:?}");
        assert_eq!(real_index(client, 40000, 1), 0);
    }
}
