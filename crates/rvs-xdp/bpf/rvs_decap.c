/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rvs_decap.c — the real server's side of TUN on kernels without ipip/ip6_tunnel: an XDP
 * program that strips the outer IPv4 (protocol 4 or 41) or IPv6 (next header 4 or 41) header of
 * a packet whose inner destination is one of our VIPs (rvs_decap_vips) and passes the inner
 * packet to the kernel, which delivers it to the VIP on loopback. Everything else passes
 * untouched.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "rvs_abi.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct rvs_decap_key);
	__type(value, __u32);
} rvs_decap_vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RVS_OUTCOME_MAX);
	__type(key, __u32);
	__type(value, __u64);
} rvs_outcomes SEC(".maps");

/* Is the inner packet at `inner` (of protocol `proto`: 4 or 41) for one of our VIPs? */
static __always_inline int rvs_inner_is_vip(void *inner, void *end, __u8 proto)
{
	struct rvs_decap_key k = {};
	if (proto == IPPROTO_IPIP) {
		struct iphdr *ip = inner;
		if ((void *)(ip + 1) > end)
			return 0;
		k.family = RVS_FAMILY_V4;
		k.addr[0] = ip->daddr;
	} else if (proto == IPPROTO_IPV6) {
		struct ipv6hdr *ip = inner;
		if ((void *)(ip + 1) > end)
			return 0;
		k.family = RVS_FAMILY_V6;
		__builtin_memcpy(k.addr, &ip->daddr, 16);
	} else {
		return 0;
	}
	return bpf_map_lookup_elem(&rvs_decap_vips, &k) != 0;
}

SEC("xdp")
int rvs_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	__u32 outer;
	__u8 proto;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end || ip->ihl != 5 || (ip->frag_off & bpf_htons(0x3fff)))
			return XDP_PASS;
		outer = sizeof(*ip);
		proto = ip->protocol;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end)
			return XDP_PASS;
		outer = sizeof(*ip);
		proto = ip->nexthdr;
	} else {
		return XDP_PASS;
	}
	if (!rvs_inner_is_vip((void *)(eth + 1) + outer, end, proto))
		return XDP_PASS;
	/* Move the Ethernet header forward over the outer IP header, then drop the gap. */
	struct ethhdr copy = *eth;
	copy.h_proto = bpf_htons(proto == IPPROTO_IPIP ? ETH_P_IP : ETH_P_IPV6);
	if (bpf_xdp_adjust_head(ctx, outer))
		return XDP_PASS;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	*eth = copy;
	__u32 key = RVS_OUTCOME_DECAP;
	__u64 *n = bpf_map_lookup_elem(&rvs_outcomes, &key);
	if (n)
		*n += 1;
	return XDP_PASS;
}
