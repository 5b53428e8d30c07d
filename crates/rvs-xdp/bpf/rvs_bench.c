/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rvs_bench.c — benchmark helpers for BPF_PROG_TEST_RUN, which does not restore the frame
 * between repetitions:
 *  - rvs_bench_wrap: resizes the frame back to the original length, copies the original frame
 *    (rvs_bench_frames[0]) over it (optionally with 4 bytes replaced by a per-run counter, so
 *    every run is a new flow), and tail-calls the program under test (rvs_bench_progs[0]);
 *  - rvs_bench_restore_only: the same restore, returning XDP_TX (the wrapper's own cost);
 *  - rvs_mac_swap: the ceiling — swap the MACs and return XDP_TX.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include "rvs_abi.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rvs_bench_frame);
} rvs_bench_frames SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} rvs_bench_progs SEC(".maps");

static __always_inline int rvs_restore(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct rvs_bench_frame *f = bpf_map_lookup_elem(&rvs_bench_frames, &zero);
	if (!f)
		return -1;
	__u32 len = f->len;
	if (len < ETH_HLEN || len > RVS_BENCH_FRAME_MAX)
		return -1;
	/* Undo whatever the previous run did to the head, then to the tail. */
	int have = (long)ctx->data_end - (long)ctx->data;
	if (have != (int)len) {
		if (bpf_xdp_adjust_head(ctx, have - (int)len) == 0)
			have = len;
		else if (bpf_xdp_adjust_tail(ctx, (int)len - have) == 0)
			have = len;
		else
			return -1;
	}
	if (bpf_xdp_store_bytes(ctx, 0, f->data, len))
		return -1;
	if (f->vary_offset && f->vary_offset + 4 <= len) {
		__u32 v = ++f->counter;
		return bpf_xdp_store_bytes(ctx, f->vary_offset, &v, 4);
	}
	return 0;
}

SEC("xdp")
int rvs_bench_wrap(struct xdp_md *ctx)
{
	if (rvs_restore(ctx))
		return XDP_ABORTED;
	bpf_tail_call(ctx, &rvs_bench_progs, 0);
	return XDP_ABORTED;
}

SEC("xdp")
int rvs_bench_restore_only(struct xdp_md *ctx)
{
	if (rvs_restore(ctx))
		return XDP_ABORTED;
	return XDP_TX;
}

SEC("xdp")
int rvs_mac_swap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	unsigned char tmp[ETH_ALEN];
	__builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
	return XDP_TX;
}
