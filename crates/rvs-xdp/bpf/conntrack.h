/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conntrack.h — the maps of NAT and FULLNAT (issue 6) beside the shared connection table
 * rvs_conns (maps.h, keyed by the flow as the client sends it, state 0 = active, 1 = closing
 * after FIN/RST in either direction):
 *
 * - rvs_nat_rev: the flow as the real sends its replies (real:rport → client:cport for NAT,
 *   real:rport → laddr:lport for FULLNAT) → the client's flow. A plain hash, not an LRU: a live
 *   flow is never evicted, a full table is the counted outcome RVS_OUTCOME_TABLE_FULL, and
 *   userspace (upkeep) reclaims entries whose rvs_conns entry expired.
 *   Preallocated: with BPF_F_NO_PREALLOC the kernel's allocator may fail inserts in a burst
 *   of new flows (its per-CPU cache refills asynchronously), which would read as a full table.
 * - rvs_fnat: FULLNAT, the client's flow → its local address and port (preallocated too).
 * - rvs_fnat_pools: FULLNAT local addresses of each service (by service index).
 * - rvs_real_ports: a real's port (network order) by real index; 0 = the service's port.
 * - rvs_tx_ports: device map of the interfaces NAT may send out of (key = value = ifindex).
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
	__type(value, struct rvs_flow_key);
} rvs_nat_rev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RVS_MAX_NAT_CONNS);
	__type(key, struct rvs_flow_key);
	__type(value, struct rvs_fnat);
} rvs_fnat SEC(".maps");

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

/* The port a real listens on for a service on `vport` (both network order). */
static __always_inline __u16 rvs_real_port(__u32 idx, __u16 vport)
{
	__u16 *p = bpf_map_lookup_elem(&rvs_real_ports, &idx);
	return p && *p ? *p : vport;
}

#endif
