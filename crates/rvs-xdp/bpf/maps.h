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

/* NAT/FULLNAT flows (same key and value as rvs_conns): a table of their own, so a flood of
 * DR/TUN flows never evicts them (a FULLNAT flow evicted would get a new local port and
 * break). A plain preallocated hash like rvs_nat_rev, not an LRU: a live flow is never
 * evicted, a full table is the counted outcome RVS_OUTCOME_TABLE_FULL, and userspace (the
 * sweep) removes expired entries. Sized by the loader with rvs_nat_rev. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RVS_MAX_NAT_CONNS);
	__type(key, struct rvs_flow_key);
	__type(value, struct rvs_conn);
} rvs_nat_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, RVS_MAX_PERSIST);
	__type(key, struct rvs_persist_key);
	__type(value, struct rvs_persist);
} rvs_persist SEC(".maps");

/* Two bits per destination port (network order, any protocol) that some service listens on:
 * RVS_PORT_DIRECT, RVS_PORT_NAT (rvs_abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RVS_VIP_PORT_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} rvs_vip_ports SEC(".maps");

/* Which connection tables a flow to `port` (network order) may be in: RVS_PORT_DIRECT
 * (rvs_conns) and/or RVS_PORT_NAT (rvs_nat_conns). 0 when no service listens on it: the packet
 * can be no VIP flow, so neither the connection tables nor the service table are consulted. */
static __always_inline __u32 rvs_vip_port(__u16 port)
{
	__u32 w = port >> 5;
	__u64 *bits = bpf_map_lookup_elem(&rvs_vip_ports, &w);
	return bits ? (*bits >> ((port & 31) * 2)) & (RVS_PORT_DIRECT | RVS_PORT_NAT) : 0;
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
