/* SPDX-License-Identifier: Apache-2.0 */
/*
 * icmp_too_big.h — turn a packet that would exceed the MTU after encapsulation into the ICMP
 * "fragmentation needed" (IPv4, type 3 code 4) or ICMPv6 "packet too big" (type 2) the client
 * needs for path-MTU discovery, sent back from the VIP out the same interface (XDP_TX). The
 * reply quotes the first RVS_ICMP4_QUOTE / RVS_ICMP6_QUOTE bytes of the offending IP packet
 * (which is always longer than that: it is larger than the MTU).
 */
#ifndef RVS_ICMP_TOO_BIG_H
#define RVS_ICMP_TOO_BIG_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/icmpv6.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "rvs_abi.h"
#include "csum.h"
#include "parse.h"

#define RVS_ICMP_HDR 8
#define RVS_ICMP_TTL 64

/* Resize the frame to eth + ip + icmp + quote, keeping the original IP packet after the new
 * headers. Returns 0 on success. */
static __always_inline int rvs_too_big_resize(struct xdp_md *ctx, int ip_len, int quote)
{
	if (bpf_xdp_adjust_head(ctx, -(ip_len + RVS_ICMP_HDR)))
		return -1;
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	int want = RVS_ETH_LEN + ip_len + RVS_ICMP_HDR + quote;
	int have = end - data;
	return bpf_xdp_adjust_tail(ctx, want - have);
}

static __always_inline int rvs_too_big4(struct xdp_md *ctx, const struct rvs_iface *iface,
					__u32 overhead)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *oeth = data;
	struct iphdr *oip = data + RVS_ETH_LEN;
	if ((void *)(oip + 1) > end)
		return XDP_ABORTED;
	__u8 client_mac[ETH_ALEN];
	__builtin_memcpy(client_mac, oeth->h_source, ETH_ALEN);
	__u32 client = oip->saddr, vip = oip->daddr;
	if (rvs_too_big_resize(ctx, sizeof(struct iphdr), RVS_ICMP4_QUOTE))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	int len = RVS_ETH_LEN + sizeof(struct iphdr) + RVS_ICMP_HDR + RVS_ICMP4_QUOTE;
	if (data + len > end)
		return XDP_ABORTED;
	struct ethhdr *eth = data;
	__builtin_memcpy(eth->h_dest, client_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, iface->mac, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);
	struct iphdr *ip = data + RVS_ETH_LEN;
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0;
	ip->tot_len = bpf_htons(len - RVS_ETH_LEN);
	ip->id = 0;
	ip->frag_off = 0;
	ip->ttl = RVS_ICMP_TTL;
	ip->protocol = IPPROTO_ICMP;
	ip->check = 0;
	ip->saddr = vip;
	ip->daddr = client;
	ip->check = rvs_ip4_csum(ip);
	struct rvs_icmphdr *ic = (void *)(ip + 1);
	ic->type = RVS_ICMP_DEST_UNREACH;
	ic->code = RVS_ICMP_FRAG_NEEDED;
	ic->checksum = 0;
	ic->unused = 0;
	ic->mtu = bpf_htons(iface->mtu - overhead);
	__s64 sum = bpf_csum_diff(0, 0, (void *)ic, RVS_ICMP_HDR + RVS_ICMP4_QUOTE, 0);
	if (sum < 0)
		return XDP_ABORTED;
	ic->checksum = rvs_csum_fold(sum);
	return XDP_TX;
}

/* IPv6 pseudo-header for the ICMPv6 checksum. */
struct rvs_pseudo6 {
	__u32 src[4];
	__u32 dst[4];
	__u32 len;
	__u32 next; /* 3 zero bytes and the next header, network order */
};

static __always_inline int rvs_too_big6(struct xdp_md *ctx, const struct rvs_iface *iface,
					__u32 overhead)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *oeth = data;
	struct ipv6hdr *oip = data + RVS_ETH_LEN;
	if ((void *)(oip + 1) > end)
		return XDP_ABORTED;
	__u8 client_mac[ETH_ALEN];
	__builtin_memcpy(client_mac, oeth->h_source, ETH_ALEN);
	struct rvs_pseudo6 ph = {};
	__builtin_memcpy(ph.src, &oip->daddr, 16);
	__builtin_memcpy(ph.dst, &oip->saddr, 16);
	ph.len = bpf_htonl(RVS_ICMP_HDR + RVS_ICMP6_QUOTE);
	ph.next = bpf_htonl(IPPROTO_ICMPV6);
	if (rvs_too_big_resize(ctx, sizeof(struct ipv6hdr), RVS_ICMP6_QUOTE))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	int len = RVS_ETH_LEN + sizeof(struct ipv6hdr) + RVS_ICMP_HDR + RVS_ICMP6_QUOTE;
	if (data + len > end)
		return XDP_ABORTED;
	struct ethhdr *eth = data;
	__builtin_memcpy(eth->h_dest, client_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, iface->mac, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IPV6);
	struct ipv6hdr *ip = data + RVS_ETH_LEN;
	ip->version = 6;
	ip->priority = 0;
	ip->flow_lbl[0] = 0;
	ip->flow_lbl[1] = 0;
	ip->flow_lbl[2] = 0;
	ip->payload_len = bpf_htons(RVS_ICMP_HDR + RVS_ICMP6_QUOTE);
	ip->nexthdr = IPPROTO_ICMPV6;
	ip->hop_limit = RVS_ICMP_TTL;
	__builtin_memcpy(&ip->saddr, ph.src, 16);
	__builtin_memcpy(&ip->daddr, ph.dst, 16);
	struct icmp6hdr *ic = (void *)(ip + 1);
	ic->icmp6_type = ICMPV6_PKT_TOOBIG;
	ic->icmp6_code = 0;
	ic->icmp6_cksum = 0;
	ic->icmp6_mtu = bpf_htonl(iface->mtu - overhead);
	__s64 sum = bpf_csum_diff(0, 0, (void *)&ph, sizeof(ph), 0);
	if (sum < 0)
		return XDP_ABORTED;
	sum = bpf_csum_diff(0, 0, (void *)ic, RVS_ICMP_HDR + RVS_ICMP6_QUOTE, sum);
	if (sum < 0)
		return XDP_ABORTED;
	ic->icmp6_cksum = rvs_csum_fold(sum);
	return XDP_TX;
}

#endif
