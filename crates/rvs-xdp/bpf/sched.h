/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sched.h — which real a packet goes to: the flow's connection entry if it is live and its real
 * still exists (rvs_conn_follow, looked up before the service: a hit needs no service lookup);
 * else (rvs_schedule_new) the persistence template (-p) of the client's network; else the service's
 * Maglev table slot of the flow hash. New choices are recorded in the connection table (and the
 * persistence table), so a flow stays on its real when the Maglev table changes. Reals that are
 * drained (weight 0) or overloaded are absent from the Maglev table: no new flows, existing
 * flows continue. rvs_schedule_peek makes the same choice without recording anything (ICMP
 * errors about flows with no entry here). A UDP datagram of a one-packet service (-o) to a
 * DR/TUN real is scheduled like a new flow every time and recorded in no connection entry
 * (its persistence template is still made or refreshed, as IPVS's ip_vs_sched_persist does).
 */
#ifndef RVS_SCHED_H
#define RVS_SCHED_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "rvs_abi.h"
#include "maps.h"
#include "flow_hash.h"
#include "parse.h"
#include "conn_state.h"

#define RVS_NS_PER_SEC 1000000000ULL
#define RVS_REFRESH_NS 100000000ULL /* 100 ms */

static __always_inline const struct rvs_real *rvs_real_get(__u32 idx)
{
	if (idx >= RVS_MAX_REALS)
		return 0;
	const struct rvs_real *r = bpf_map_lookup_elem(&rvs_reals, &idx);
	if (!r || !(r->flags & RVS_REAL_F_PRESENT))
		return 0;
	return r;
}

/* Client network of `flow` under /prefix, for the persistence key. */
static __always_inline void rvs_mask_client(struct rvs_persist_key *k,
					    const struct rvs_flow_key *flow, __u8 prefix)
{
#pragma unroll
	for (int i = 0; i < 4; i++) {
		int bits = (int)prefix - 32 * i;
		__u32 mask = bits >= 32 ? 0xffffffff : bits <= 0 ? 0 : bpf_htonl(~0U << (32 - bits));
		k->addr[i] = flow->src[i] & mask;
	}
}

static __always_inline __u32 rvs_maglev_pick(const struct rvs_service *svc,
					     const struct rvs_flow_key *flow)
{
	if (svc->index >= RVS_MAX_SERVICES)
		return RVS_NO_REAL;
	__u32 slot = svc->index * RVS_MAGLEV_SIZE + rvs_flow_hash(flow) % RVS_MAGLEV_SIZE;
	__u32 *r = bpf_map_lookup_elem(&rvs_maglev, &slot);
	return r ? *r : RVS_NO_REAL;
}

/*
 * The client's persistence template for `svc` (*k: its key) if it is to be followed: fresh
 * (its timeout since it was last used) and naming a real that exists and is not down
 * (RVS_REAL_F_DOWN: health down or disabled; a drained real still gets its persistent clients,
 * as in IPVS); else 0.
 */
static __always_inline struct rvs_persist *rvs_persist_live(const struct rvs_service *svc,
							    const struct rvs_flow_key *flow,
							    __u64 now, struct rvs_persist_key *k)
{
	rvs_mask_client(k, flow, svc->persist_prefix);
	struct rvs_persist *p = bpf_map_lookup_elem(&rvs_persist, k);
	if (!p || now - p->last_ns > (__u64)svc->persist_timeout * RVS_NS_PER_SEC)
		return 0;
	const struct rvs_real *r = rvs_real_get(p->real);
	return r && !(r->flags & RVS_REAL_F_DOWN) ? p : 0;
}

/*
 * Persistence for a new flow; RVS_NO_REAL when no real is available. A live template
 * (rvs_persist_live) is followed and refreshed; otherwise the client is bound to the Maglev
 * pick.
 */
static __always_inline __u32 rvs_persist_pick(const struct rvs_service *svc,
					      const struct rvs_flow_key *flow, __u64 now)
{
	struct rvs_persist_key k = { .svc = svc->index };
	struct rvs_persist *p = rvs_persist_live(svc, flow, now, &k);
	if (p) {
		p->last_ns = now;
		return p->real;
	}
	__u32 real = rvs_maglev_pick(svc, flow);
	if (real != RVS_NO_REAL) {
		struct rvs_persist v = { .real = real, .last_ns = now };
		bpf_map_update_elem(&rvs_persist, &k, &v, BPF_ANY);
	}
	return real;
}

/*
 * Keep the persistence template of flow `c` (c->persist: its service's prefix + 1) alive while
 * the flow is: IPVS keeps a template while it controls live connections. Called when the
 * entry's timestamp is written (at most every RVS_REFRESH_NS, or on a state change); only a
 * template that still names the flow's real is refreshed (one rebound elsewhere is left).
 */
static __always_inline void rvs_persist_touch(const struct rvs_conn *c,
					      const struct rvs_flow_key *flow, __u64 now)
{
	struct rvs_persist_key k = { .svc = c->svc };
	rvs_mask_client(&k, flow, c->persist - 1);
	struct rvs_persist *p = bpf_map_lookup_elem(&rvs_persist, &k);
	if (p && p->real == c->real)
		p->last_ns = now;
}

/*
 * The flow's live connection entry, after stepping its state with this packet (*real: its
 * real's entry, for the address and MAC; the flow is sent with the entry's own method); 0
 * when the flow has no live entry or its real is gone, when it is a DR/TUN entry on a DR/TUN
 * real of a one-packet service (RVS_REAL_F_ONE_PACKET: an entry made before the service
 * became one-packet; the datagram is scheduled on its own; a NAT entry of a real since edited
 * to DR/TUN is followed: its replies need it), or when `syn` (a SYN
 * without ACK) opens a new connection on the tuple of a closing one (rvs_conn_reusable): that
 * SYN is scheduled afresh, and its new entry replaces the old. A hit needs no service lookup:
 * entries exist only for VIP flows, and removing a service removes them.
 */
static __always_inline struct rvs_conn *rvs_conn_follow(const struct rvs_config *cfg,
							const struct rvs_pkt *pkt, __u64 now, int syn,
							__u32 tables, __u32 *seen,
							const struct rvs_real **real)
{
	/* A port whose services have NAT reals looks rvs_nat_conns up first; DR/TUN flows of a
	 * port that has both (a service mixing methods, or two services) cost a miss more.
	 * *seen: the table an entry of the flow was found in (live or not), 0 for none. */
	struct rvs_conn *c = 0;
	*seen = 0;
	if (tables & RVS_PORT_NAT) {
		c = bpf_map_lookup_elem(&rvs_nat_conns, &pkt->flow);
		if (c)
			*seen = RVS_PORT_NAT;
	}
	if (!c && (tables & RVS_PORT_DIRECT)) {
		c = bpf_map_lookup_elem(&rvs_conns, &pkt->flow);
		if (c)
			*seen = RVS_PORT_DIRECT;
	}
	if (!c || now - c->last_ns > rvs_conn_timeout(cfg, c->state))
		return 0;
	const struct rvs_real *r = rvs_real_get(c->real);
	if (!r ||
	    ((r->flags & RVS_REAL_F_ONE_PACKET) &&
	     rvs_client_dir(c->method) == RVS_DIR_INPUT_ONLY) ||
	    (syn && rvs_conn_reusable(c->state, c->method)))
		return 0;
	if (rvs_conn_step(cfg, c, rvs_client_dir(c->method), pkt, now, RVS_REFRESH_NS) &&
	    c->persist)
		rvs_persist_touch(c, &pkt->flow, now);
	*real = r;
	return c;
}

/*
 * The real for a new flow of `svc` (its index; *real its entry): the persistence template (-p)
 * or the Maglev slot.
 */
static __always_inline __u32 rvs_schedule_new(const struct rvs_service *svc,
					      const struct rvs_pkt *pkt, __u64 now,
					      const struct rvs_real **real)
{
	__u32 idx = (svc->flags & RVS_SVC_F_PERSIST) ? rvs_persist_pick(svc, &pkt->flow, now)
						     : rvs_maglev_pick(svc, &pkt->flow);
	const struct rvs_real *r = rvs_real_get(idx);
	if (!r)
		return RVS_NO_REAL;
	*real = r;
	return idx;
}

/*
 * The real a new flow `flow` of `svc` would get from rvs_schedule_new, changing nothing: the
 * client's live template is neither refreshed nor made. For an ICMP error about a flow with
 * no connection entry here (its flow key is the quoted packet reversed, i.e. the flow as the
 * client sends it: the same Maglev hash as the flow's SYN).
 */
static __always_inline __u32 rvs_schedule_peek(const struct rvs_service *svc,
					       const struct rvs_flow_key *flow, __u64 now,
					       const struct rvs_real **real)
{
	__u32 idx = RVS_NO_REAL;
	if (svc->flags & RVS_SVC_F_PERSIST) {
		struct rvs_persist_key k = { .svc = svc->index };
		struct rvs_persist *p = rvs_persist_live(svc, flow, now, &k);
		if (p)
			idx = p->real;
	}
	if (idx == RVS_NO_REAL)
		idx = rvs_maglev_pick(svc, flow);
	const struct rvs_real *r = rvs_real_get(idx);
	if (!r)
		return RVS_NO_REAL;
	*real = r;
	return idx;
}

#endif
