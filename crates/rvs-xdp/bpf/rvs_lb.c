/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rvs_lb.c — the rvs balancer XDP program. Parse (parse.h) → if the destination port is some
 * service's (rvs_vip_ports): the flow's live connection entry (rvs_conns for DR/TUN flows,
 * rvs_nat_conns for NAT/FULLNAT ones, as the port's bits say), else the service (rvs_services)
 * and a new real (sched.h; an ICMP error about a flow with no entry, or a UDP datagram of a
 * one-packet service to a DR/TUN real: the real a new flow would get, no entry made) → hand
 * the packet to the flow's forwarding method (kept in its entry from the real's method when
 * the entry was made, as IPVS does): DR (dr.h) or TUN (tun.h, with icmp_too_big.h for
 * packets that would not fit after encapsulation), NAT or FULLNAT (nat.h); packets matching no
 * service may be NAT/FULLNAT replies (nat.h). Every exit counts one rvs_outcome.
 *
 * Packets that are not ours — not IP, no service, fragments, other protocols, headers we cannot
 * validate — go to the kernel (XDP_PASS) untouched.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "rvs_abi.h"
#include "parse.h"
#include "maps.h"
#include "sched.h"
#include "dr.h"
#include "tun.h"
#include "icmp_too_big.h"
#include "icmp_limit.h"
#include "nat.h"

char LICENSE[] SEC("license") = "GPL";

static __always_inline int rvs_parse_verdict(int parsed, __u32 *outcome)
{
	switch (parsed) {
	case RVS_PARSE_NOT_IP:
		*outcome = RVS_OUTCOME_NOT_IP;
		break;
	case RVS_PARSE_FRAGMENT:
		*outcome = RVS_OUTCOME_FRAGMENT;
		break;
	case RVS_PARSE_OTHER_L4:
		*outcome = RVS_OUTCOME_NOT_VIP;
		break;
	case RVS_PARSE_MALFORMED:
		*outcome = RVS_OUTCOME_MALFORMED;
		break;
	default:
		*outcome = RVS_OUTCOME_UNSUPPORTED;
	}
	return XDP_PASS;
}

static __always_inline const struct rvs_iface *rvs_iface_get(struct xdp_md *ctx)
{
	__u32 ifindex = ctx->ingress_ifindex;
	const struct rvs_iface *i = bpf_map_lookup_elem(&rvs_ifaces, &ifindex);
	if (i && i->mtu)
		return i;
	ifindex = 0;
	i = bpf_map_lookup_elem(&rvs_ifaces, &ifindex);
	return i && i->mtu ? i : 0;
}

/* Send the packet to `real` by DR/TUN `method` (the flow's, see struct rvs_conn). */
static __always_inline int rvs_forward(struct xdp_md *ctx, const struct rvs_pkt *pkt,
				       __u8 method, const struct rvs_real *real, __u32 *outcome)
{
	if (real->flags & RVS_REAL_F_LOCAL)
		return XDP_PASS; /* local node: the director's own stack serves it */
	const struct rvs_iface *iface = rvs_iface_get(ctx);
	if (!iface) {
		*outcome = RVS_OUTCOME_UNSUPPORTED;
		return XDP_PASS;
	}
	if (!real->has_mac) {
		*outcome = RVS_OUTCOME_NO_NEIGH;
		return XDP_DROP;
	}
	switch (method) {
	case RVS_METHOD_DR:
		return rvs_forward_dr(ctx, real, iface);
	case RVS_METHOD_TUN: {
		__u32 overhead = rvs_tun_overhead(real->family);
		if (pkt->l3_len + overhead > iface->mtu) {
			*outcome = RVS_OUTCOME_TOO_BIG;
			if (pkt->is_icmp_err || !pkt->df)
				return XDP_DROP;
			if (pkt->flow.family == RVS_FAMILY_V6)
				return rvs_too_big6(ctx, iface, overhead);
			return rvs_too_big4(ctx, iface, overhead);
		}
		return rvs_forward_tun(ctx, pkt, real, iface, outcome);
	}
	default:
		*outcome = RVS_OUTCOME_UNSUPPORTED;
		return XDP_PASS;
	}
}

/*
 * Send the packet of service `svc` to its real `idx` by DR/TUN `method`; *outcome is `sent`
 * unless sending fails. Counts the packet (and a connection if `new_conn`) for the service and
 * the real.
 */
static __always_inline int rvs_send_direct(struct xdp_md *ctx, const struct rvs_pkt *pkt,
					   __u32 svc, __u32 idx, __u8 method,
					   const struct rvs_real *real, int new_conn, __u32 sent,
					   __u32 *outcome)
{
	*outcome = sent;
	int action = rvs_forward(ctx, pkt, method, real, outcome);
	int delivered = action == XDP_TX || (real->flags & RVS_REAL_F_LOCAL);
	if (delivered && *outcome == sent) {
		rvs_count(svc, pkt->l3_len, new_conn);
		rvs_count(RVS_MAX_SERVICES + idx, pkt->l3_len, new_conn);
	}
	return action;
}

/* Send the packet of VIP flow `c` to its real `idx` by the flow's method (c->method, fixed
 * when the entry was made: an edit of the real's method changes new flows only). */
static __always_inline int rvs_send(struct xdp_md *ctx, const struct rvs_pkt *pkt,
				    struct rvs_conn *c, __u32 idx, const struct rvs_real *real,
				    int new_conn, __u32 *outcome, __u64 now)
{
	if (c->method == RVS_METHOD_NAT || c->method == RVS_METHOD_FULLNAT)
		return rvs_nat_forward(ctx, pkt, c, idx, real, new_conn, outcome, now);
	return rvs_send_direct(ctx, pkt, c->svc, idx, c->method, real, new_conn,
			       pkt->is_icmp_err ? RVS_OUTCOME_ICMP_FORWARDED : RVS_OUTCOME_FORWARDED,
			       outcome);
}

/*
 * An ICMP error quoting a flow of `svc` that has no live connection entry here (e.g. its
 * packets reach another director behind ECMP; "fragmentation needed" / "packet too big" about
 * the real's replies, which path-MTU discovery needs). A DR/TUN real is stateless for the
 * director: the error goes to the real a new flow of it would get (rvs_schedule_peek: the
 * client's live persistence template, else the Maglev slot of the same flow hash as the flow's
 * SYN), as Katran does, and no entry is made. NAT/FULLNAT need the flow's state (addresses to
 * rewrite): passed, as is an error for a service with no available real. Anyone can send such
 * errors (the quote is not checked against any state), so those that would be sent are
 * limited per CPU (icmp_limit.h): over the limit, dropped.
 */
static __always_inline int rvs_icmp_no_conn(struct xdp_md *ctx, const struct rvs_pkt *pkt,
					    const struct rvs_config *cfg,
					    const struct rvs_service *svc, __u64 now,
					    __u32 *outcome)
{
	const struct rvs_real *real = 0;
	__u32 idx = rvs_schedule_peek(svc, &pkt->flow, now, &real);
	if (idx == RVS_NO_REAL || !real ||
	    (real->method != RVS_METHOD_DR && real->method != RVS_METHOD_TUN)) {
		*outcome = RVS_OUTCOME_ICMP_UNTRACKED;
		return XDP_PASS;
	}
	if (!rvs_icmp_allow(cfg, now)) {
		*outcome = RVS_OUTCOME_ICMP_RATE_LIMITED;
		return XDP_DROP;
	}
	return rvs_send_direct(ctx, pkt, svc->index, idx, real->method, real, 0,
			       RVS_OUTCOME_ICMP_NO_CONN_MAGLEV, outcome);
}

/*
 * One-packet scheduling (ipvsadm -o, RVS_SVC_F_ONE_PACKET): a UDP datagram scheduled to a DR
 * or TUN real is sent without a connection entry (each datagram is a connection of its own, as
 * IPVS counts it: conns + 1). NAT/FULLNAT reals keep entries: their replies need them.
 */
static __always_inline int rvs_one_packet(const struct rvs_service *svc,
					  const struct rvs_pkt *pkt, const struct rvs_real *real)
{
	return (svc->flags & RVS_SVC_F_ONE_PACKET) && pkt->flow.proto == RVS_PROTO_UDP &&
	       (real->method == RVS_METHOD_DR || real->method == RVS_METHOD_TUN);
}

/* The service `pkt` is addressed to, if any. */
static __always_inline const struct rvs_service *rvs_service_of(const struct rvs_pkt *pkt)
{
	struct rvs_vip_key vk = { .port = pkt->flow.dport, .proto = pkt->flow.proto,
				  .family = pkt->flow.family };
	__builtin_memcpy(vk.addr, pkt->flow.dst, 16);
	return bpf_map_lookup_elem(&rvs_services, &vk);
}

/*
 * A VIP flow: its live connection entry, else a new one if a service matches. Returns 0 (and
 * leaves *action alone) when no service matches.
 *
 * Lookup order: the connection table first, so an established flow needs no service lookup;
 * but a TCP SYN (no ACK) is almost always a new flow, and looking its service up first is
 * measurably cheaper for it (~30-40 ns through BPF_PROG_TEST_RUN: the two independent lookups
 * overlap, and the connection bucket is still hot for the insert). Such a SYN follows an
 * existing entry only while that connection is not closing (rvs_conn_follow): a client reusing
 * its port after a close gets a new real, as with IPVS's conn_reuse_mode.
 */
static __always_inline int rvs_vip_flow(struct xdp_md *ctx, const struct rvs_pkt *pkt,
					__u32 tables, __u32 *outcome, int *action)
{
	__u32 zero = 0;
	const struct rvs_config *cfg = bpf_map_lookup_elem(&rvs_config, &zero);
	if (!cfg)
		return 0;
	/* The coarse clock (CLOCK_MONOTONIC at tick resolution) is plenty for timeouts of
	 * seconds and much cheaper than bpf_ktime_get_ns. */
	__u64 now = bpf_ktime_get_coarse_ns();
	int syn = pkt->flow.proto == RVS_PROTO_TCP && !pkt->is_icmp_err &&
		  (pkt->tcp_flags & (RVS_TCP_SYN | RVS_TCP_ACK)) == RVS_TCP_SYN;
	const struct rvs_service *svc = 0;
	if (syn) {
		svc = rvs_service_of(pkt);
		if (!svc)
			return 0;
	}
	const struct rvs_real *real = 0;
	__u32 seen;
	struct rvs_conn *c = rvs_conn_follow(cfg, pkt, now, syn, tables, &seen, &real);
	if (c && real) {
		*action = rvs_send(ctx, pkt, c, c->real, real, 0, outcome, now);
		return 1;
	}
	if (!syn) {
		svc = rvs_service_of(pkt);
		if (!svc)
			return 0;
	}
	if (pkt->is_icmp_err) {
		*action = rvs_icmp_no_conn(ctx, pkt, cfg, svc, now, outcome);
		return 1;
	}
	__u32 idx = rvs_schedule_new(svc, pkt, now, &real);
	if (idx == RVS_NO_REAL || !real) {
		*outcome = RVS_OUTCOME_NO_REAL;
		*action = XDP_DROP;
		return 1;
	}
	if (rvs_one_packet(svc, pkt, real)) {
		*action = rvs_send_direct(ctx, pkt, svc->index, idx, real->method, real, 1,
					  RVS_OUTCOME_FORWARDED, outcome);
		return 1;
	}
	struct rvs_conn v = { .real = idx, .svc = svc->index, .last_ns = now,
			      .state = rvs_conn_initial(cfg, rvs_client_dir(real->method), pkt),
			      .method = real->method };
	if (svc->flags & RVS_SVC_F_PERSIST)
		v.persist = svc->persist_prefix + 1;
	if (v.method == RVS_METHOD_NAT || v.method == RVS_METHOD_FULLNAT) {
		/* A SYN reopening a live closing flow's tuple (rvs_conn_follow gave no entry but
		 * saw one): FULLNAT keeps its local port on the same real. */
		const struct rvs_conn *old = 0;
		if (seen == RVS_PORT_NAT && v.method == RVS_METHOD_FULLNAT) {
			old = bpf_map_lookup_elem(&rvs_nat_conns, &pkt->flow);
			if (old && now - old->last_ns > rvs_conn_timeout(cfg, old->state))
				old = 0;
		}
		if (rvs_nat_new(pkt, idx, real, &v, old, outcome)) {
			*action = XDP_DROP;
			return 1;
		}
		if (bpf_map_update_elem(&rvs_nat_conns, &pkt->flow, &v, BPF_ANY)) {
			rvs_nat_unmake(pkt, real, &v);
			*outcome = RVS_OUTCOME_TABLE_FULL;
			*action = XDP_DROP;
			return 1;
		}
		/* The tuple's old entry in the other table (a closing connection the SYN reused,
		 * on a port with both kinds of reals) must not be followed instead of the new one. */
		if (seen == RVS_PORT_DIRECT)
			bpf_map_delete_elem(&rvs_conns, &pkt->flow);
	} else {
		bpf_map_update_elem(&rvs_conns, &pkt->flow, &v, BPF_ANY);
		/* Likewise; and an expired entry there would hide this one (looked up first). */
		if (seen == RVS_PORT_NAT)
			bpf_map_delete_elem(&rvs_nat_conns, &pkt->flow);
	}
	*action = rvs_send(ctx, pkt, &v, idx, real, 1, outcome, now);
	return 1;
}

static __always_inline int rvs_process(struct xdp_md *ctx, __u32 *outcome)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct rvs_pkt pkt = {};
	int parsed = rvs_parse(data, end, &pkt);
	if (parsed != RVS_PARSE_OK)
		return rvs_parse_verdict(parsed, outcome);
	int action;
	__u32 tables = rvs_vip_port(pkt.flow.dport);
	if (tables && rvs_vip_flow(ctx, &pkt, tables, outcome, &action))
		return action;
	if (rvs_nat_reply(ctx, &pkt, outcome, &action))
		return action;
	*outcome = pkt.is_icmp_err ? RVS_OUTCOME_ICMP_UNTRACKED : RVS_OUTCOME_NOT_VIP;
	return XDP_PASS;
}

SEC("xdp")
int rvs_lb(struct xdp_md *ctx)
{
	__u32 outcome = RVS_OUTCOME_UNSUPPORTED;
	int action = rvs_process(ctx, &outcome);
	rvs_count_outcome(outcome);
	return action;
}
