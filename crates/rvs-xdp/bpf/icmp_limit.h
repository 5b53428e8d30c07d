/* SPDX-License-Identifier: Apache-2.0 */
/*
 * icmp_limit.h — a per-CPU token bucket for ICMP errors about DR/TUN flows with no connection
 * entry (rvs_icmp_no_conn in rvs_lb.c). Anyone can send such errors with a made-up quote, and
 * each would be sent on to a real; errors about tracked flows are not limited.
 *
 * rvs_config.icmp_rate errors per second refill the bucket, up to icmp_burst; each error sent
 * takes one. Tokens count in RVS_ICMP_TOKEN units, so a refill is rate * elapsed ns in
 * integers, with no rounding to carry. Per CPU: no atomics, each CPU allows the rate on its own
 * (the total is rate x CPUs receiving such errors).
 */
#ifndef RVS_ICMP_LIMIT_H
#define RVS_ICMP_LIMIT_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "rvs_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rvs_icmp_bucket);
} rvs_icmp_bucket SEC(".maps");

/* Whether one more untracked ICMP error may be sent at `now` (and take its token). */
static __always_inline int rvs_icmp_allow(const struct rvs_config *cfg, __u64 now)
{
	__u32 rate = cfg->icmp_rate;
	if (!rate)
		return 1;
	__u32 zero = 0;
	struct rvs_icmp_bucket *b = bpf_map_lookup_elem(&rvs_icmp_bucket, &zero);
	if (!b)
		return 0;
	__u64 cap = (__u64)cfg->icmp_burst * RVS_ICMP_TOKEN;
	__u64 tokens = b->tokens < cap ? b->tokens : cap;
	/* A clock behind last_ns (a test set it ahead) refills nothing until it catches up. */
	if (now > b->last_ns) {
		__u64 elapsed = now - b->last_ns;
		__u64 room = cap - tokens;
		/* elapsed * rate > room: full (and no overflow of the product in the other case). */
		tokens = elapsed > room / rate ? cap : tokens + elapsed * rate;
		b->last_ns = now;
	}
	if (tokens < RVS_ICMP_TOKEN) {
		b->tokens = tokens;
		return 0;
	}
	b->tokens = tokens - RVS_ICMP_TOKEN;
	return 1;
}

#endif
