/* SPDX-License-Identifier: Apache-2.0 */
/*
 * maps.h — the maps of the balancer program (names are part of the ABI: the loader opens them
 * by these names) and the counter helpers.
 */
#ifndef RVS_MAPS_H
#define RVS_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "rvs_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RVS_MAX_SERVICES);
	__type(key, struct rvs_vip_key);
	__type(value, struct rvs_service);
} rvs_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RVS_MAX_REALS);
	__type(key, __u32);
	__type(value, struct rvs_real);
} rvs_reals SEC(".maps");

/* RVS_MAX_SERVICES blocks of RVS_MAGLEV_SIZE real indexes (RVS_NO_REAL = none). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RVS_MAX_SERVICES * RVS_MAGLEV_SIZE);
	__type(key, __u32);
	__type(value, __u32);
} rvs_maglev SEC(".maps");

/* rvs_conns and rvs_persist use the common LRU, not per-CPU LRU lists (BPF_F_NO_COMMON_LRU):
 * with per-CPU lists each CPU owns only max_entries / possible CPUs entries, so flows that all
 * arrive on one CPU (one receive queue, skewed RSS) are evicted long before the table is full
 * (tests/conn_capacity.rs). The price: new flows cost a few percent more (docs/xdp.md). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, RVS_MAX_CONNS);
	__type(key, struct rvs_flow_key);
	__type(value, struct rvs_conn);
} rvs_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, RVS_MAX_PERSIST);
	__type(key, struct rvs_persist_key);
	__type(value, struct rvs_persist);
} rvs_persist SEC(".maps");

/* Bit per destination port (network order, any protocol) that some service listens on. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RVS_VIP_PORT_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} rvs_vip_ports SEC(".maps");

/* Whether some service may listen on `port` (network order): when not, the packet can be no
 * VIP flow, so neither the connection table nor the service table is consulted. */
static __always_inline int rvs_vip_port(__u16 port)
{
	__u32 w = port >> 6;
	__u64 *bits = bpf_map_lookup_elem(&rvs_vip_ports, &w);
	return bits && (*bits >> (port & 63)) & 1;
}

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RVS_MAX_IFACES);
	__type(key, __u32);
	__type(value, struct rvs_iface);
} rvs_ifaces SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rvs_config);
} rvs_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RVS_STATS_SLOTS);
	__type(key, __u32);
	__type(value, struct rvs_counters);
} rvs_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RVS_OUTCOME_MAX);
	__type(key, __u32);
	__type(value, __u64);
} rvs_outcomes SEC(".maps");

static __always_inline void rvs_count_outcome(__u32 outcome)
{
	__u64 *v = bpf_map_lookup_elem(&rvs_outcomes, &outcome);
	if (v)
		*v += 1;
}

/* Count one packet of `bytes` (and a new connection if `new_conn`) in `slot`. */
static __always_inline void rvs_count(__u32 slot, __u32 bytes, int new_conn)
{
	struct rvs_counters *c = bpf_map_lookup_elem(&rvs_stats, &slot);
	if (!c)
		return;
	c->packets += 1;
	c->bytes += bytes;
	if (new_conn)
		c->conns += 1;
}

/* Count one packet of `bytes` going back to the client (a NAT/FULLNAT reply) in `slot`. */
static __always_inline void rvs_count_out(__u32 slot, __u32 bytes)
{
	struct rvs_counters *c = bpf_map_lookup_elem(&rvs_stats, &slot);
	if (!c)
		return;
	c->out_packets += 1;
	c->out_bytes += bytes;
}

#endif
