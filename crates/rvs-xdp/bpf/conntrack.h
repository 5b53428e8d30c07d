/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conntrack.h — the maps of NAT and FULLNAT (issue 6) beside their connection table
 * rvs_nat_conns (maps.h, keyed by the flow as the client sends it; its state follows IPVS's TCP
 * state machine in both directions, conn_state.h):
 *
 * - rvs_nat_rev: the flow as the real sends its replies (real:rport → client:cport for NAT,
 *   real:rport → laddr:lport for FULLNAT) → the client's flow. A plain hash, not an LRU: a live
 *   flow is never evicted, a full table is the counted outcome RVS_OUTCOME_TABLE_FULL, and
 *   userspace (upkeep) reclaims entries whose rvs_nat_conns entry expired.
 *   Preallocated: with BPF_F_NO_PREALLOC the kernel's allocator may fail inserts in a burst
 *   of new flows (its per-CPU cache refills asynchronously), which would read as a full table.
 * - A FULLNAT flow's local port and address (as an index into its service's pool) live in its
 *   rvs_nat_conns entry: no map of their own, so a FULLNAT packet costs no hash lookup more than a
 *   NAT one, and an entry stays 24 bytes.
 * - rvs_fnat_pools: FULLNAT local addresses of each service (by service index).
 * - rvs_real_ports: a real's port (network order) by real index; 0 = the service's port.
 * - rvs_tx_ports: device map of the interfaces NAT may send out of (key = value = ifindex).
 * - rvs_nh_cache: per CPU, the FIB's answer for the way to each real, kept 1 s; the way to a
 *   flow's client is kept (1 s too) in its rvs_nat_rev value, found by the lookup a reply
 *   needs anyway. Route and neighbour changes apply within a second.
 */
#ifndef RVS_CONNTRACK_H
#define RVS_CONNTRACK_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "rvs_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RVS_MAX_NAT_CONNS);
	__type(key, struct rvs_flow_key);
	__type(value, struct rvs_nat_rev);
} rvs_nat_rev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RVS_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct rvs_fnat_pool);
} rvs_fnat_pools SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RVS_MAX_REALS);
	__type(key, __u32);
	__type(value, __u16);
} rvs_real_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, RVS_MAX_IFACES);
	__type(key, __u32);
	__type(value, __u32);
} rvs_tx_ports SEC(".maps");

/* Next hop towards a real, cached per CPU for RVS_NH_CACHE_NS (not part of the ABI). */
#define RVS_NH_CACHE_NS 1000000000ULL
struct rvs_nh {
	__u64 expires_ns;
	__u32 addr[4];  /* the real's address (a real index may be reused) */
	__u32 ingress;  /* the interface the packet came in on when this was looked up */
	__u32 ifindex;  /* out */
	__u8 dmac[6];
	__u8 smac[6];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RVS_MAX_REALS);
	__type(key, __u32);
	__type(value, struct rvs_nh);
} rvs_nh_cache SEC(".maps");

/* Per-CPU scratch for a new reverse entry (the stack is nearly full). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rvs_nat_rev);
} rvs_rev_scratch SEC(".maps");

/* A reverse-entry value for `orig` on real `real` (in rvs_rev_scratch), or 0. */
static __always_inline struct rvs_nat_rev *rvs_rev_value(const struct rvs_flow_key *orig,
							 __u32 real)
{
	__u32 zero = 0;
	struct rvs_nat_rev *v = bpf_map_lookup_elem(&rvs_rev_scratch, &zero);
	if (!v)
		return 0;
	__builtin_memset(v, 0, sizeof(*v));
	__builtin_memcpy(&v->orig, orig, sizeof(*orig));
	v->real = real;
	return v;
}

/* The port a real listens on for a service on `vport` (both network order). */
static __always_inline __u16 rvs_real_port(__u32 idx, __u16 vport)
{
	__u16 *p = bpf_map_lookup_elem(&rvs_real_ports, &idx);
	return p && *p ? *p : vport;
}

#endif
