/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fullnat.h — FULLNAT's local address and port for a new flow, and the TOA option.
 *
 * Allocation: a 32-bit number picks one of the service's local addresses and a port in
 * [RVS_FNAT_PORT_MIN, 65535]; the reverse entry real:rport → laddr:lport is inserted with
 * BPF_NOEXIST, which the hash map makes atomic across CPUs, so two live flows never share a
 * local address and port towards the same real; on EEXIST another address and port are
 * tried, RVS_FNAT_PORT_TRIES times in all (then RVS_OUTCOME_NO_LPORT); any other failure is a
 * full table (RVS_OUTCOME_TABLE_FULL). The caller keeps the address and port in the flow's
 * rvs_nat_conns entry. The first try's number is a hash of the client's tuple
 * (rvs_fnat_first), the later ones random (bpf_get_prandom_u32): a client tuple gets the same
 * local address and port every time it is free, across rvsd restarts that lose the tables
 * and on a director taking over without synced entries, so the real meets the four-tuple it
 * may hold in TIME_WAIT for that very client connection (whose timestamps carry on) rather
 * than another client's (PAWS, see rvs_fnat_reuse). Spread over the range like a random
 * number, so no likelier to meet a taken port. (A first version stepped by a fixed stride
 * from one random start: that clusters like linear probing and failed a few of 50,000 new
 * flows at 40 % occupancy of one local address.)
 *
 * TOA: the client's address and port go to the real in a TCP option as Ali-LVS and DPVS send
 * it — kind 254, length 8, port (2 bytes), IPv4 address (4 bytes); for IPv6 length 20 with the
 * 16-byte address — inserted first among the options, on the client's SYN (without ACK) and on
 * its ACK that completes the handshake (ACK without SYN, the entry in SYN_RECV before it and
 * ESTABLISHED after it): the TOA kernel modules (Alibaba's toa.ko, DPVS's) read the option in
 * the syn_recv_sock hook, whose packet is that ACK, not the SYN. The headers move towards the
 * front (bpf_xdp_adjust_head), so an ACK carrying data keeps it. Skipped (the packet is still
 * forwarded) when the IPv4 header has options, the TCP options would exceed 40 bytes, or the
 * packet would exceed the MTU (rvs_toa_mtu). Whether the entry was in SYN_RECV is kept in its
 * laddr byte (RVS_LADDR_F_SYN_RECV), noted after every packet of the flow, both directions
 * (rvs_fnat_note_state): the state is stepped before the FULLNAT code sees the packet.
 */
#ifndef RVS_FULLNAT_H
#define RVS_FULLNAT_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "rvs_abi.h"
#include "maps.h"
#include "conntrack.h"
#include "conn_state.h"
#include "nat_rw.h"
#include "parse.h"
#include "flow_hash.h"

#define RVS_EEXIST 17

/* The first try's number for a client tuple: the Maglev flow hash, salted and mixed again
 * (a bijection) so that the local port does not follow the Maglev slot and so the real; the
 * same for the same tuple in every program instance. */
static __always_inline __u32 rvs_fnat_first(const struct rvs_flow_key *f)
{
	return rvs_fmix32(rvs_flow_hash(f) ^ 0x5bd1e995);
}

static __always_inline int rvs_fnat_alloc(__u32 si, const struct rvs_pkt *pkt,
					  const struct rvs_real *real, __u16 rport,
					  struct rvs_conn *out, __u32 *outcome)
{
	const struct rvs_fnat_pool *pool = bpf_map_lookup_elem(&rvs_fnat_pools, &si);
	if (!pool || !pool->count || pool->count > RVS_MAX_LADDRS) {
		*outcome = RVS_OUTCOME_NO_LPORT;
		return -1;
	}
	__u32 count = pool->count;
	struct rvs_nat_rev *rv = rvs_rev_value(&pkt->flow, out->real);
	if (!rv) {
		*outcome = RVS_OUTCOME_TABLE_FULL;
		return -1;
	}
	struct rvs_flow_key rk = { .sport = rport, .proto = pkt->flow.proto,
				   .family = pkt->flow.family };
	__builtin_memcpy(rk.src, real->addr, 16);
	for (__u32 i = 0; i < RVS_FNAT_PORT_TRIES; i++) {
		/* A fresh number per try: a fixed stride would cluster like linear probing. */
		__u32 r = i ? bpf_get_prandom_u32() : rvs_fnat_first(&pkt->flow);
		__u32 li = (r & 0xff) % count;
		__u32 port = RVS_FNAT_PORT_MIN + (r >> 8) % (65536 - RVS_FNAT_PORT_MIN);
		__builtin_memcpy(rk.dst, pool->addrs[li & (RVS_MAX_LADDRS - 1)], 16);
		rk.dport = bpf_htons(port);
		long rc = bpf_map_update_elem(&rvs_nat_rev, &rk, rv, BPF_NOEXIST);
		if (rc == -RVS_EEXIST)
			continue;
		if (rc) {
			*outcome = RVS_OUTCOME_TABLE_FULL;
			return -1;
		}
		out->laddr = li & RVS_LADDR_INDEX;
		out->lport = rk.dport;
		return 0;
	}
	*outcome = RVS_OUTCOME_NO_LPORT;
	return -1;
}

/*
 * Insert the TOA option into a TCP segment whose IP header is `iplen` bytes (20 or 40) and
 * whose option is `optlen` bytes (8 or 20): the headers move `optlen` bytes towards the front,
 * the option goes right after the fixed TCP header (the segment's own options and data stay
 * where they are). Returns -1 (packet unchanged) when skipped: IPv4 options, TCP options over
 * 40 bytes with it, or an IP packet over `mtu` (0: unknown, not checked) with it.
 */
static __always_inline int rvs_toa_insert(struct xdp_md *ctx, const __u32 iplen,
					  const __u32 optlen, const __u32 *caddr, __u16 cport,
					  __u32 mtu)
{
	const __u32 hl = RVS_ETH_LEN + iplen + 20;
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	if (data + hl > end)
		return -1;
	__u8 *th = data + RVS_ETH_LEN + iplen;
	__u32 doff = th[12] >> 4;
	__u32 len;
	if (iplen == 20) {
		struct iphdr *ip = data + RVS_ETH_LEN;
		if (ip->ihl != 5)
			return -1;
		len = bpf_ntohs(ip->tot_len);
	} else {
		struct ipv6hdr *ip6 = data + RVS_ETH_LEN;
		len = 40 + bpf_ntohs(ip6->payload_len);
	}
	if (doff < 5 || doff * 4 + optlen > 60 || (mtu && len + optlen > mtu))
		return -1;
	if (bpf_xdp_adjust_head(ctx, -(int)optlen))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + optlen + hl > end)
		return -1;
	__u16 *w = data;
#pragma unroll
	for (__u32 i = 0; i < hl / 2; i++)
		w[i] = w[i + optlen / 2];
	th = data + RVS_ETH_LEN + iplen;
	__u16 *opt = (__u16 *)(th + 20);
	__u64 d = 0;
	__u16 words[10] = {};
	((__u8 *)words)[0] = RVS_TOA_KIND;
	((__u8 *)words)[1] = optlen;
	words[1] = cport;
	__builtin_memcpy(&words[2], caddr, optlen - 4);
#pragma unroll
	for (__u32 i = 0; i < optlen / 2; i++) {
		opt[i] = words[i];
		rvs_acc16(&d, 0, words[i]);
	}
	__u16 *flagw = (__u16 *)(th + 12);
	__u16 old_flagw = *flagw;
	th[12] = ((doff + optlen / 4) << 4) | (th[12] & 0xf);
	rvs_acc16(&d, old_flagw, *flagw);
	if (iplen == 20) {
		struct iphdr *ip = data + RVS_ETH_LEN;
		__u16 old_tot = ip->tot_len;
		__u16 tot = bpf_htons(bpf_ntohs(old_tot) + optlen);
		__u64 di = 0;
		rvs_acc16(&di, old_tot, tot);
		ip->tot_len = tot;
		ip->check = rvs_csum_add(ip->check, di);
		rvs_acc16(&d, bpf_htons(bpf_ntohs(old_tot) - 20), bpf_htons(bpf_ntohs(tot) - 20));
	} else {
		struct ipv6hdr *ip6 = data + RVS_ETH_LEN;
		__u16 old_pl = ip6->payload_len;
		__u16 pl = bpf_htons(bpf_ntohs(old_pl) + optlen);
		ip6->payload_len = pl;
		rvs_acc16(&d, old_pl, pl);
	}
	__u16 *check = (__u16 *)(th + 16);
	*check = rvs_csum_add(*check, d);
	return 0;
}

static __always_inline int rvs_toa_add(struct xdp_md *ctx, __u8 family, const __u32 *caddr,
				       __u16 cport, __u32 mtu)
{
	if (family == RVS_FAMILY_V4)
		return rvs_toa_insert(ctx, 20, RVS_TOA_LEN4, caddr, cport, mtu);
	return rvs_toa_insert(ctx, 40, RVS_TOA_LEN6, caddr, cport, mtu);
}

/* The IP MTU on the way to real `real`: of the interface its packets last left by (the per-CPU
 * next-hop cache, when it was found for this ingress), else of the one this packet came in on
 * (rvs_ifaces, slot 0 for any other); 0 when unknown. */
static __always_inline __u32 rvs_toa_mtu(struct xdp_md *ctx, __u32 real)
{
	__u32 ifindex = ctx->ingress_ifindex;
	const struct rvs_nh *nh = bpf_map_lookup_elem(&rvs_nh_cache, &real);
	if (nh && nh->expires_ns && nh->ingress == ifindex)
		ifindex = nh->ifindex;
	const struct rvs_iface *i = bpf_map_lookup_elem(&rvs_ifaces, &ifindex);
	if (!i || !i->mtu) {
		ifindex = 0;
		i = bpf_map_lookup_elem(&rvs_ifaces, &ifindex);
	}
	return i ? i->mtu : 0;
}

/* Note in FULLNAT TCP entry `c` whether it is in SYN_RECV now (RVS_LADDR_F_SYN_RECV), after a
 * packet of its flow stepped its state; written only when that changes. */
static __always_inline void rvs_fnat_note_state(struct rvs_conn *c)
{
	__u8 l = c->laddr;
	__u8 v = c->state == RVS_STATE_SYN_RECV ? l | RVS_LADDR_F_SYN_RECV
						 : l & ~RVS_LADDR_F_SYN_RECV;
	if (v != l)
		c->laddr = v;
}

/* A FULLNAT TCP client packet of flow `c` to real `real`, already rewritten and its state
 * stepped: TOA on a SYN and on the ACK completing the handshake (see the top); then note the
 * state for the next packet. */
static __always_inline void rvs_fnat_toa(struct xdp_md *ctx, const struct rvs_pkt *pkt,
					 struct rvs_conn *c, __u32 real)
{
	__u8 f = pkt->tcp_flags & (RVS_TCP_SYN | RVS_TCP_ACK);
	int handshake_ack = f == RVS_TCP_ACK && (c->laddr & RVS_LADDR_F_SYN_RECV) &&
			    c->state == RVS_STATE_ESTABLISHED;
	if (f == RVS_TCP_SYN || handshake_ack)
		rvs_toa_add(ctx, pkt->flow.family, pkt->flow.src, pkt->flow.sport,
			    rvs_toa_mtu(ctx, real));
	rvs_fnat_note_state(c);
}

/* The local address of FULLNAT flow `c` (from its service's pool); 0 when the pool no longer
 * has it. */
static __always_inline const __u32 *rvs_fnat_laddr(const struct rvs_conn *c)
{
	__u32 si = c->svc;
	__u32 li = c->laddr & RVS_LADDR_INDEX;
	const struct rvs_fnat_pool *pool = bpf_map_lookup_elem(&rvs_fnat_pools, &si);
	if (!pool || li >= pool->count)
		return 0;
	return pool->addrs[li];
}

/*
 * A SYN that reopens the client tuple of a closing FULLNAT flow `old` (a live entry in
 * TIME_WAIT or CLOSE, rvs_conn_reusable) and is scheduled on the same real keeps the old local
 * address and port: the real then sees the same four-tuple as before, so its TIME_WAIT socket
 * of the old connection takes the SYN (the client's timestamps, and on Linux their offset,
 * which is keyed on the four-tuple, carry on from the old connection). Any other port (the
 * hashed first try is usually the old one, still held by the closing flow's reverse entry, so
 * the tries go on at random) is likely to land on the real's TIME_WAIT socket of *another*
 * client connection, whose timestamps are unrelated: Linux refuses about half of such SYNs (PAWS, TcpExtPAWSTimewait)
 * with an ACK, the client resets and retries a second later. With clients reusing their
 * ports quickly that cut FULLNAT's new connections per second five-fold.
 * Returns 0 when `out` (its real and service set) got the old address and port and the
 * reverse entry is the new flow's; -1 to allocate afresh (another real, the address gone from
 * the pool, or the port taken meanwhile by another flow).
 */
static __always_inline int rvs_fnat_reuse(const struct rvs_pkt *pkt, const struct rvs_real *real,
					  __u16 rport, const struct rvs_conn *old,
					  struct rvs_conn *out)
{
	if (!old || old->method != RVS_METHOD_FULLNAT || !old->lport || old->real != out->real ||
	    old->svc != out->svc)
		return -1;
	struct rvs_conn probe = { .svc = out->svc, .laddr = old->laddr & RVS_LADDR_INDEX };
	const __u32 *laddr = rvs_fnat_laddr(&probe);
	if (!laddr)
		return -1;
	struct rvs_flow_key rk = { .sport = rport, .dport = old->lport, .proto = pkt->flow.proto,
				   .family = pkt->flow.family };
	__builtin_memcpy(rk.src, real->addr, 16);
	__builtin_memcpy(rk.dst, laddr, 16);
	const struct rvs_nat_rev *cur = bpf_map_lookup_elem(&rvs_nat_rev, &rk);
	if (cur) {
		/* Still the old flow's (same client tuple, same real): it serves the new one as
		 * it is. */
		const struct rvs_flow_key *o = &cur->orig;
		const struct rvs_flow_key *f = &pkt->flow;
		if (cur->real != out->real || o->sport != f->sport || o->dport != f->dport ||
		    o->proto != f->proto || o->family != f->family || o->src[0] != f->src[0] ||
		    o->src[1] != f->src[1] || o->src[2] != f->src[2] || o->src[3] != f->src[3] ||
		    o->dst[0] != f->dst[0] || o->dst[1] != f->dst[1] || o->dst[2] != f->dst[2] ||
		    o->dst[3] != f->dst[3])
			return -1;
	} else {
		struct rvs_nat_rev *rv = rvs_rev_value(&pkt->flow, out->real);
		if (!rv || bpf_map_update_elem(&rvs_nat_rev, &rk, rv, BPF_NOEXIST))
			return -1;
	}
	out->laddr = probe.laddr;
	out->lport = old->lport;
	return 0;
}

#endif
