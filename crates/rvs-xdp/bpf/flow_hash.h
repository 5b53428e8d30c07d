/* SPDX-License-Identifier: Apache-2.0 */
/*
 * flow_hash.h — the flow hash that picks a Maglev slot, exactly as rvs_core::maglev::hash
 * documents it: MurmurHash3_x86_32 with seed RVS_FLOW_SEED over
 *   src addr | dst addr | sport | dport | proto, 0, 0, 0
 * (addresses and ports as on the wire): 16 bytes for IPv4, 40 for IPv6, whole 4-byte blocks
 * read little-endian, so each block is a plain __u32 load on this (little-endian) BPF target.
 * Slot = hash % RVS_MAGLEV_SIZE. The fixtures prove equality with the Rust implementation.
 */
#ifndef RVS_FLOW_HASH_H
#define RVS_FLOW_HASH_H

#include "rvs_abi.h"

static __always_inline __u32 rvs_rotl(__u32 x, __u32 r)
{
	return (x << r) | (x >> (32 - r));
}

static __always_inline __u32 rvs_mix(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51;
	k = rvs_rotl(k, 15);
	k *= 0x1b873593;
	h ^= k;
	h = rvs_rotl(h, 13);
	return h * 5 + 0xe6546b64;
}

/* MurmurHash3's 32-bit finalizer (fmix32): a bijection that spreads every input bit. */
static __always_inline __u32 rvs_fmix32(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

static __always_inline __u32 rvs_flow_hash(const struct rvs_flow_key *f)
{
	__u32 h = RVS_FLOW_SEED;
	__u32 len;
	if (f->family == RVS_FAMILY_V6) {
#pragma unroll
		for (int i = 0; i < 4; i++)
			h = rvs_mix(h, f->src[i]);
#pragma unroll
		for (int i = 0; i < 4; i++)
			h = rvs_mix(h, f->dst[i]);
		len = 40;
	} else {
		h = rvs_mix(h, f->src[0]);
		h = rvs_mix(h, f->dst[0]);
		len = 16;
	}
	h = rvs_mix(h, (__u32)f->sport | ((__u32)f->dport << 16));
	h = rvs_mix(h, (__u32)f->proto);
	h ^= len;
	return rvs_fmix32(h);
}

#endif
