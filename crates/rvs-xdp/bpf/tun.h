/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tun.h — IP tunnelling (-i): prepend an outer IPv4 (protocol 4 / 41) or IPv6 (next header 4 /
 * 41) header from our address to the real's, ToS / traffic class copied from the inner packet,
 * TTL / hop limit 64, IPv4 DF copied from the inner packet; out the same interface (XDP_TX).
 * The caller has already checked the result fits the MTU.
 */
#ifndef RVS_TUN_H
#define RVS_TUN_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "rvs_abi.h"
#include "csum.h"
#include "parse.h"

#define RVS_TUN_TTL 64

/* Size of the outer header for a real of `family`. */
static __always_inline __u32 rvs_tun_overhead(__u8 family)
{
	return family == RVS_FAMILY_V6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr);
}

static __always_inline void rvs_tun_outer4(struct iphdr *o, const struct rvs_pkt *pkt,
					   const struct rvs_real *real,
					   const struct rvs_iface *iface)
{
	o->version = 4;
	o->ihl = 5;
	o->tos = pkt->tos;
	o->tot_len = bpf_htons(pkt->l3_len + sizeof(*o));
	o->id = 0;
	o->frag_off = pkt->df ? bpf_htons(RVS_IP4_DF) : 0;
	o->ttl = RVS_TUN_TTL;
	o->protocol = pkt->flow.family == RVS_FAMILY_V6 ? IPPROTO_IPV6 : IPPROTO_IPIP;
	o->check = 0;
	o->saddr = iface->src4;
	o->daddr = real->addr[0];
	o->check = rvs_ip4_csum(o);
}

static __always_inline void rvs_tun_outer6(struct ipv6hdr *o, const struct rvs_pkt *pkt,
					   const struct rvs_real *real,
					   const struct rvs_iface *iface)
{
	o->version = 6;
	o->priority = pkt->tos >> 4;
	o->flow_lbl[0] = (pkt->tos & 0xf) << 4;
	o->flow_lbl[1] = 0;
	o->flow_lbl[2] = 0;
	o->payload_len = bpf_htons(pkt->l3_len);
	o->nexthdr = pkt->flow.family == RVS_FAMILY_V6 ? IPPROTO_IPV6 : IPPROTO_IPIP;
	o->hop_limit = RVS_TUN_TTL;
	__builtin_memcpy(&o->saddr, iface->src6, 16);
	__builtin_memcpy(&o->daddr, real->addr, 16);
}

static __always_inline int rvs_forward_tun(struct xdp_md *ctx, const struct rvs_pkt *pkt,
					   const struct rvs_real *real,
					   const struct rvs_iface *iface, __u32 *outcome)
{
	int outer = rvs_tun_overhead(real->family);
	if (bpf_xdp_adjust_head(ctx, -outer)) {
		*outcome = RVS_OUTCOME_HEADROOM;
		return XDP_DROP;
	}
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if (data + RVS_ETH_LEN + sizeof(struct ipv6hdr) > end)
		return XDP_ABORTED;
	__builtin_memcpy(eth->h_dest, real->mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, iface->mac, ETH_ALEN);
	if (real->family == RVS_FAMILY_V6) {
		eth->h_proto = bpf_htons(ETH_P_IPV6);
		rvs_tun_outer6(data + RVS_ETH_LEN, pkt, real, iface);
	} else {
		eth->h_proto = bpf_htons(ETH_P_IP);
		rvs_tun_outer4(data + RVS_ETH_LEN, pkt, real, iface);
	}
	return XDP_TX;
}

#endif
