//! The flow hash that picks a Maglev slot, bit for bit as `bpf/flow_hash.h` computes it:
//! MurmurHash3 (x86, 32-bit, seed 0) over src addr | dst addr | sport | dport (network order),
//! 4-byte blocks read little-endian, the protocol XORed in before the final mix.

use crate::abi::FlowKey;

fn mix(h: u32, k: u32) -> u32 {
    let k = k.wrapping_mul(0xcc9e_2d51).rotate_left(15).wrapping_mul(0x1b87_3593);
    (h ^ k).rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64)
}

/// Hash of a flow (client → VIP).
pub fn flow_hash(f: &FlowKey) -> u32 {
    // The key's words are network-order bytes loaded as native (little-endian) u32, as in C.
    let mut h = 0u32;
    for w in f.src.iter().chain(f.dst.iter()) {
        h = mix(h, u32::from_le_bytes(w.to_ne_bytes()));
    }
    let (sp, dp) = (f.sport.to_ne_bytes(), f.dport.to_ne_bytes());
    h = mix(h, u32::from_le_bytes([sp[0], sp[1], dp[0], dp[1]]));
    h ^= 36;
    h ^= u32::from(f.proto);
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The Maglev slot of a flow.
pub fn maglev_slot(f: &FlowKey) -> usize {
    (flow_hash(f) % crate::abi::RVS_MAGLEV_SIZE as u32) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur_blocks_differ_per_field() {
        let a = FlowKey { src: [1, 0, 0, 0], sport: 80, proto: 6, family: 4, ..Default::default() };
        let mut b = a;
        b.proto = 17;
        let mut c = a;
        c.sport = 81;
        assert_ne!(flow_hash(&a), flow_hash(&b));
        assert_ne!(flow_hash(&a), flow_hash(&c));
        assert_eq!(flow_hash(&a), flow_hash(&a.clone()));
    }
}
