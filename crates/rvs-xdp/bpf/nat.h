/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nat.h — NAT (-m) and FULLNAT (-b), both directions.
 *
 * Towards the real (rvs_nat_forward, after sched.h chose the real and keeps the flow's entry in
 * rvs_nat_conns, the table of NAT/FULLNAT flows only):
 * NAT rewrites the destination VIP:vport → RIP:rport; FULLNAT also the source client:cport →
 * laddr:lport (fullnat.h, kept in the flow's rvs_nat_conns entry) and adds the TOA option to SYNs
 * and to the ACK that completes the handshake.
 * Before a new flow's connection entry is inserted (rvs_nat_new), a NAT flow inserts its
 * reverse entry (real:rport → client:cport), a FULLNAT flow allocates its local port, which
 * inserts the reverse entry (real:rport → laddr:lport).
 *
 * Back from the real (rvs_nat_reply, for packets that match no service but a reverse entry):
 * the source becomes VIP:vport again (and for FULLNAT the destination client:cport); the reply
 * drives the flow's TCP state as IPVS's output direction (conn_state.h). Not when the flow's
 * connection entry expired or is on another real or local port now: a packet by such a stale
 * reverse entry goes to the kernel untouched (RVS_OUTCOME_NAT_STALE). A flow whose connection
 * entry is gone (removed an instant before its reverse entry) is still rewritten, counted as
 * RVS_OUTCOME_NAT_NO_CONN. A reply rewritten back (and an ICMP error from the real side)
 * counts in the out-direction counters of the reverse entry's real and of the flow's service
 * (c->svc; the real's only when the connection entry is gone).
 *
 * ICMP errors about a tracked flow are rewritten like the flow (nat_rw.h) in both directions.
 *
 * Out: bpf_fib_lookup finds the next hop (cached for a second: per CPU in rvs_nh_cache towards
 * reals, in the flow's reverse entry towards its client). Same interface → XDP_TX; another
 * one → bpf_redirect_map through rvs_tx_ports (XDP_PASS, MACs untouched, when the interface is
 * not in it). When the lookup does not succeed (e.g. no neighbour entry yet) a packet to a
 * real whose MAC the engine resolved goes out again (XDP_TX) to that MAC, anything else goes
 * to the kernel already rewritten (XDP_PASS), which forwards it.
 */
#ifndef RVS_NAT_H
#define RVS_NAT_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "rvs_abi.h"
#include "maps.h"
#include "sched.h"
#include "conntrack.h"
#include "nat_rw.h"
#include "fullnat.h"

#define RVS_AF_INET 2
#define RVS_AF_INET6 10

/* Send out by a next hop the FIB found: XDP_TX on the same interface, else bpf_redirect_map
 * (XDP_PASS with the MACs untouched when the interface is not in the device map: the kernel
 * would drop a frame not addressed to it). */
static __always_inline int rvs_nh_send(struct xdp_md *ctx, __u32 ifindex, const __u8 *dmac,
				       const __u8 *smac)
{
	if (ifindex != ctx->ingress_ifindex) {
		long a = bpf_redirect_map(&rvs_tx_ports, ifindex, XDP_PASS);
		if (a != XDP_REDIRECT)
			return a;
	}
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_ABORTED;
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
	return ifindex == ctx->ingress_ifindex ? XDP_TX : XDP_REDIRECT;
}

/* Send towards `t->dst`: real `real` (next hop cached per CPU in rvs_nh_cache), or with
 * real RVS_NO_REAL a client (next hop cached in the flow's reverse entry `rv`); `now` is the
 * packet's coarse time, read once per packet. */
static __always_inline int rvs_nat_xmit(struct xdp_md *ctx, const struct rvs_nat_tuple *t,
					const __u8 *fallback_mac, __u32 real,
					struct rvs_nat_rev *rv, __u64 now)
{
	__u32 ingress = ctx->ingress_ifindex;
	struct rvs_nh *nh = 0;
	if (real != RVS_NO_REAL) {
		nh = bpf_map_lookup_elem(&rvs_nh_cache, &real);
		if (nh && now < nh->expires_ns && nh->ingress == ingress &&
		    nh->addr[0] == t->dst[0] && nh->addr[1] == t->dst[1] &&
		    nh->addr[2] == t->dst[2] && nh->addr[3] == t->dst[3])
			return rvs_nh_send(ctx, nh->ifindex, nh->dmac, nh->smac);
	} else if (rv && now < rv->nh_expires_ns && rv->nh_ingress == ingress) {
		return rvs_nh_send(ctx, rv->nh_ifindex, rv->nh_dmac, rv->nh_smac);
	}
	struct bpf_fib_lookup fib = {};
	fib.ifindex = ingress;
	fib.l4_protocol = t->proto;
	fib.sport = t->sport;
	fib.dport = t->dport;
	if (t->family == RVS_FAMILY_V4) {
		fib.family = RVS_AF_INET;
		fib.ipv4_src = t->src[0];
		fib.ipv4_dst = t->dst[0];
	} else {
		fib.family = RVS_AF_INET6;
		__builtin_memcpy(fib.ipv6_src, t->src, 16);
		__builtin_memcpy(fib.ipv6_dst, t->dst, 16);
	}
	long rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_ABORTED;
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		if (nh) {
			nh->expires_ns = now + RVS_NH_CACHE_NS;
			nh->ingress = ingress;
			nh->ifindex = fib.ifindex;
			__builtin_memcpy(nh->addr, t->dst, 16);
			__builtin_memcpy(nh->dmac, fib.dmac, ETH_ALEN);
			__builtin_memcpy(nh->smac, fib.smac, ETH_ALEN);
		} else if (rv) {
			/* Shared by every CPU: a reply racing this write on another CPU may read a
			 * half-written answer only if the route changed in between (both halves are
			 * valid next hops otherwise). */
			rv->nh_expires_ns = now + RVS_NH_CACHE_NS;
			rv->nh_ingress = ingress;
			rv->nh_ifindex = fib.ifindex;
			__builtin_memcpy(rv->nh_dmac, fib.dmac, ETH_ALEN);
			__builtin_memcpy(rv->nh_smac, fib.smac, ETH_ALEN);
		}
		return rvs_nh_send(ctx, fib.ifindex, fib.dmac, fib.smac);
	}
	if (fallback_mac) {
		__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
		__builtin_memcpy(eth->h_dest, fallback_mac, ETH_ALEN);
		return XDP_TX;
	}
	return XDP_PASS;
}

/* Whether the packet `pkt` that matched reverse entry `rv` still belongs to the entry's flow;
 * *c = the flow's connection entry. It does not when the entry has expired (IPVS forgets an
 * expired connection; a stray reply does not revive it), or the flow is on another real than
 * the reverse entry was made for (an expired NAT flow came back on another real) or, FULLNAT,
 * on another local port: the reverse entry is stale (the sweep removes it). A flow without a
 * connection entry (*c = 0: removed by the sweep or with its service an instant
 * before its reverse entry) still gets its replies, by the reverse entry alone. */
static __always_inline int rvs_rev_conn(const struct rvs_config *cfg,
					const struct rvs_nat_rev *rv, const struct rvs_pkt *pkt,
					__u64 now, struct rvs_conn **c)
{
	struct rvs_conn *e = bpf_map_lookup_elem(&rvs_nat_conns, &rv->orig);
	*c = e;
	if (!e)
		return 1;
	return now - e->last_ns <= rvs_conn_timeout(cfg, e->state) && e->real == rv->real &&
	       (!e->lport || e->lport == pkt->flow.dport);
}

/* The reverse entry of a new NAT flow, or the local address and port of a new FULLNAT flow
 * (into c->lport / c->laddr), made before its connection entry `c` is inserted; `old`: the
 * live closing entry of the tuple this SYN reopens, or 0 (a FULLNAT flow on the same real
 * keeps its address and port, rvs_fnat_reuse). Returns -1 with *outcome set when the flow
 * cannot be made (the packet is dropped, nothing left behind). */
static __always_inline int rvs_nat_new(const struct rvs_pkt *pkt, __u32 idx,
				       const struct rvs_real *real, struct rvs_conn *c,
				       const struct rvs_conn *old, __u32 *outcome)
{
	if (real->family != pkt->flow.family) {
		*outcome = RVS_OUTCOME_UNSUPPORTED;
		return -1;
	}
	__u16 rport = rvs_real_port(idx, pkt->flow.dport);
	if (c->method == RVS_METHOD_FULLNAT) {
		if (rvs_fnat_reuse(pkt, real, rport, old, c) &&
		    rvs_fnat_alloc(c->svc, pkt, real, rport, c, outcome))
			return -1;
		if (pkt->flow.proto == RVS_PROTO_TCP)
			rvs_fnat_note_state(c);
		return 0;
	}
	struct rvs_flow_key rk = { .sport = rport, .dport = pkt->flow.sport,
				   .proto = pkt->flow.proto, .family = pkt->flow.family };
	__builtin_memcpy(rk.src, real->addr, 16);
	__builtin_memcpy(rk.dst, pkt->flow.src, 16);
	struct rvs_nat_rev *rv = rvs_rev_value(&pkt->flow, idx);
	if (!rv || bpf_map_update_elem(&rvs_nat_rev, &rk, rv, BPF_ANY)) {
		*outcome = RVS_OUTCOME_TABLE_FULL;
		return -1;
	}
	return 0;
}

/* Undo rvs_nat_new for flow `c` on `real` when its connection entry could not be inserted
 * (rvs_nat_conns full): remove the reverse entry it made (and so a FULLNAT flow's local port). */
static __always_inline void rvs_nat_unmake(const struct rvs_pkt *pkt, const struct rvs_real *real,
					   const struct rvs_conn *c)
{
	struct rvs_flow_key rk = { .sport = rvs_real_port(c->real, pkt->flow.dport),
				   .dport = pkt->flow.sport, .proto = pkt->flow.proto,
				   .family = pkt->flow.family };
	__builtin_memcpy(rk.src, real->addr, 16);
	__builtin_memcpy(rk.dst, pkt->flow.src, 16);
	if (c->method == RVS_METHOD_FULLNAT) {
		const __u32 *laddr = rvs_fnat_laddr(c);
		if (!laddr)
			return;
		__builtin_memcpy(rk.dst, laddr, 16);
		rk.dport = c->lport;
	}
	bpf_map_delete_elem(&rvs_nat_rev, &rk);
}

/* Rewrite a packet of NAT/FULLNAT flow `c` (to real `idx`) towards the real and send it, by
 * the flow's method c->method (a NAT flow stays NAT when its real is edited to FULLNAT). */
static __always_inline int rvs_nat_forward(struct xdp_md *ctx, const struct rvs_pkt *pkt,
					   struct rvs_conn *c, __u32 idx,
					   const struct rvs_real *real, int new_conn,
					   __u32 *outcome, __u64 now)
{
	if (real->family != pkt->flow.family) {
		*outcome = RVS_OUTCOME_UNSUPPORTED;
		return XDP_DROP;
	}
	struct rvs_nat_tuple t = { .sport = pkt->flow.sport,
				   .dport = rvs_real_port(idx, pkt->flow.dport),
				   .family = pkt->flow.family, .proto = pkt->flow.proto };
	__builtin_memcpy(t.src, pkt->flow.src, 16);
	__builtin_memcpy(t.dst, real->addr, 16);
	int fullnat = c->method == RVS_METHOD_FULLNAT;
	if (fullnat) {
		if (!c->lport) {
			/* An entry written by userspace (connection sync) without a local port. */
			if (pkt->is_icmp_err) {
				*outcome = RVS_OUTCOME_ICMP_UNTRACKED;
				return XDP_PASS;
			}
			if (rvs_fnat_alloc(c->svc, pkt, real, t.dport, c, outcome))
				return XDP_DROP;
		}
		const __u32 *laddr = rvs_fnat_laddr(c);
		if (!laddr) {
			*outcome = RVS_OUTCOME_NO_LPORT;
			return XDP_DROP;
		}
		__builtin_memcpy(t.src, laddr, 16);
		t.sport = c->lport;
	}
	if (pkt->is_icmp_err) {
		if (rvs_rw_icmp(ctx, pkt->flow.family, &t, fullnat)) {
			*outcome = RVS_OUTCOME_MALFORMED;
			return XDP_DROP;
		}
		*outcome = RVS_OUTCOME_ICMP_FORWARDED;
	} else {
		if (rvs_rw_pkt(ctx, pkt->flow.family, &t)) {
			*outcome = RVS_OUTCOME_MALFORMED;
			return XDP_DROP;
		}
		if (fullnat && pkt->flow.proto == RVS_PROTO_TCP)
			rvs_fnat_toa(ctx, pkt, c, idx);
		*outcome = RVS_OUTCOME_NAT_FORWARDED;
	}
	rvs_count(c->svc, pkt->l3_len, new_conn);
	rvs_count(RVS_MAX_SERVICES + idx, pkt->l3_len, new_conn);
	return rvs_nat_xmit(ctx, &t, real->has_mac ? real->mac : 0, idx, 0, now);
}

/* A packet that matched no service: if it is a reply of a NAT/FULLNAT flow (or an ICMP error
 * about one), rewrite it back towards the client, set *action and return 1; else return 0. */
static __always_inline int rvs_nat_reply(struct xdp_md *ctx, const struct rvs_pkt *pkt,
					 __u32 *outcome, int *action)
{
	struct rvs_nat_rev *rv = bpf_map_lookup_elem(&rvs_nat_rev, &pkt->flow);
	if (!rv)
		return 0;
	__u32 zero = 0;
	const struct rvs_config *cfg = bpf_map_lookup_elem(&rvs_config, &zero);
	if (!cfg)
		return 0;
	__u64 now = bpf_ktime_get_coarse_ns();
	struct rvs_conn *c;
	if (!rvs_rev_conn(cfg, rv, pkt, now, &c)) {
		*outcome = RVS_OUTCOME_NAT_STALE;
		*action = XDP_PASS;
		return 1;
	}
	/* The reply's step of the state machine (IPVS's output direction). */
	if (c) {
		rvs_conn_step(cfg, c, RVS_DIR_OUTPUT, pkt, now, RVS_REFRESH_NS);
		/* FULLNAT TCP: whether the client's next ACK completes the handshake. */
		if (c->lport && pkt->flow.proto == RVS_PROTO_TCP)
			rvs_fnat_note_state(c);
	}
	const struct rvs_flow_key *orig = &rv->orig;
	struct rvs_nat_tuple t = { .sport = orig->dport, .dport = orig->sport,
				   .family = pkt->flow.family, .proto = pkt->flow.proto };
	__builtin_memcpy(t.src, orig->dst, 16);
	__builtin_memcpy(t.dst, orig->src, 16);
	int rc = pkt->is_icmp_err ? rvs_rw_icmp(ctx, pkt->flow.family, &t, 1)
				  : rvs_rw_pkt(ctx, pkt->flow.family, &t);
	if (rc) {
		*outcome = RVS_OUTCOME_MALFORMED;
		*action = XDP_DROP;
		return 1;
	}
	*outcome = pkt->is_icmp_err ? RVS_OUTCOME_ICMP_FORWARDED
		   : c		    ? RVS_OUTCOME_NAT_REPLY
				    : RVS_OUTCOME_NAT_NO_CONN;
	/* Out-direction counters of the flow's real and (known from its connection entry only)
	 * its service. */
	if (c)
		rvs_count_out(c->svc, pkt->l3_len);
	rvs_count_out(RVS_MAX_SERVICES + rv->real, pkt->l3_len);
	*action = rvs_nat_xmit(ctx, &t, 0, RVS_NO_REAL, rv, now);
	return 1;
}

#endif
