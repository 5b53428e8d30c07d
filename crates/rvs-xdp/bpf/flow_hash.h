/* SPDX-License-Identifier: Apache-2.0 */
/*
 * flow_hash.h — the flow hash that picks a Maglev slot: MurmurHash3 (x86, 32-bit, seed 0) of
 * the 36 bytes src addr (16) | dst addr (16) | sport (2, network order) | dport (2, network
 * order), each 4-byte block read little-endian, then the protocol number XORed in before the
 * final mix. Slot = hash % RVS_MAGLEV_SIZE. Mirrored bit for bit by src/flow_hash.rs; the
 * fixtures prove the two agree.
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

static __always_inline __u32 rvs_flow_hash(const struct rvs_flow_key *f)
{
	__u32 h = 0;
#pragma unroll
	for (int i = 0; i < 4; i++)
		h = rvs_mix(h, f->src[i]);
#pragma unroll
	for (int i = 0; i < 4; i++)
		h = rvs_mix(h, f->dst[i]);
	h = rvs_mix(h, (__u32)f->sport | ((__u32)f->dport << 16));
	h ^= 36;
	h ^= (__u32)f->proto;
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

#endif
