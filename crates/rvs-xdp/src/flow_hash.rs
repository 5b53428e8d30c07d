//! The flow hash of an ABI [`FlowKey`]: `rvs_core::maglev::hash::flow_hash`, which
//! `bpf/flow_hash.h` computes bit for bit (the fixtures prove it).

use crate::abi::{FlowKey, RVS_MAGLEV_SIZE, ip_of};
use std::net::SocketAddr;

/// Hash of a flow (client → VIP).
pub fn flow_hash(f: &FlowKey) -> u32 {
    let src = SocketAddr::new(ip_of(&f.src, f.family), u16::from_be(f.sport));
    let dst = SocketAddr::new(ip_of(&f.dst, f.family), u16::from_be(f.dport));
    rvs_core::maglev::hash::flow_hash(src, dst, f.proto)
}

/// The Maglev slot of a flow.
pub fn maglev_slot(f: &FlowKey) -> usize {
    (flow_hash(f) % RVS_MAGLEV_SIZE as u32) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_matches_core_constants() {
        assert_eq!(
            crate::abi::RVS_FLOW_SEED,
            u64::from(rvs_core::maglev::hash::FLOW_SEED)
        );
        assert_eq!(
            RVS_MAGLEV_SIZE,
            u64::from(rvs_core::maglev::DEFAULT_TABLE_SIZE)
        );
    }
}
