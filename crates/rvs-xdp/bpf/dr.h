/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dr.h — direct routing (-g): rewrite the destination MAC to the real's next hop and the source
 * MAC to our own; the IP packet is untouched; out the same interface (XDP_TX).
 */
#ifndef RVS_DR_H
#define RVS_DR_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include "rvs_abi.h"

static __always_inline int rvs_forward_dr(struct xdp_md *ctx, const struct rvs_real *real,
					  const struct rvs_iface *iface)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_ABORTED;
	__builtin_memcpy(eth->h_dest, real->mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, iface->mac, ETH_ALEN);
	return XDP_TX;
}

#endif
