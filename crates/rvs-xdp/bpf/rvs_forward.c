/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rvs_forward.c — the trivial XDP forwarder: the ceiling of the end-to-end DR benchmark
 * (bench/README.md, `packet_dr`, subject `xdp-forward`), not part of rvs's data plane.
 *
 * It does what DR does on the wire and nothing else: an IPv4 TCP packet (not a fragment) to the
 * configured VIP:port gets one of the configured reals' MACs as destination — picked by a cheap
 * hash of (client address, client port) modulo their count, so a flow stays on one real — and
 * our MAC as source, and goes back out of the interface it came in on (XDP_TX). Everything else
 * is passed to the kernel. No connection table, no Maglev, no per-service counters: one per-CPU
 * count of forwarded packets, so the benchmark can check that it forwarded.
 *
 * The hash is mirrored by rvs_xdp::forward::real_index (the fixture test checks them against
 * each other).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "rvs_abi.h"

char LICENSE[] SEC("license") = "GPL";

/* IPv4 "more fragments" flag and fragment offset. */
#define FWD_IP4_FRAG_MASK 0x3fff

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rvs_fwd_config);
} rvs_fwd_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} rvs_fwd_packets SEC(".maps");

/* Index of the real for (saddr, sport), both as they are in the packet (network order). */
static __always_inline __u32 fwd_pick(__u32 saddr, __u16 sport, __u32 count)
{
	__u32 h = (saddr ^ ((__u32)sport * 0x9e3779b1u)) * 0x85ebca6bu;
	h ^= h >> 16;
	return h % count;
}

SEC("xdp")
int rvs_forward(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	if (ip->protocol != IPPROTO_TCP || ip->ihl < 5 ||
	    (ip->frag_off & bpf_htons(FWD_IP4_FRAG_MASK)))
		return XDP_PASS;
	struct tcphdr *tcp = (void *)ip + ip->ihl * 4;
	if ((void *)(tcp + 1) > end)
		return XDP_PASS;
	__u32 zero = 0;
	struct rvs_fwd_config *cfg = bpf_map_lookup_elem(&rvs_fwd_config, &zero);
	if (!cfg || ip->daddr != cfg->vip || tcp->dest != cfg->port)
		return XDP_PASS;
	__u32 count = cfg->count;
	if (count == 0 || count > RVS_FWD_MAX_REALS)
		return XDP_PASS;
	__u32 i = fwd_pick(ip->saddr, tcp->source, count);
	/* clang knows i < count <= RVS_FWD_MAX_REALS and would drop the check the verifier needs. */
	asm volatile("" : "+r"(i));
	if (i >= RVS_FWD_MAX_REALS)
		return XDP_PASS;
	__builtin_memcpy(eth->h_dest, cfg->macs[i], ETH_ALEN);
	__builtin_memcpy(eth->h_source, cfg->own_mac, ETH_ALEN);
	__u64 *forwarded = bpf_map_lookup_elem(&rvs_fwd_packets, &zero);
	if (forwarded)
		*forwarded += 1;
	return XDP_TX;
}
