/* SPDX-License-Identifier: Apache-2.0 */
/* csum.h — Internet checksum helpers. */
#ifndef RVS_CSUM_H
#define RVS_CSUM_H

#include <linux/types.h>

static __always_inline __u16 rvs_csum_fold(__u64 sum)
{
#pragma unroll
	for (int i = 0; i < 4; i++)
		sum = (sum & 0xffff) + (sum >> 16);
	return ~sum & 0xffff;
}

/* Checksum of a 20-byte IPv4 header (its check field must be zero). */
static __always_inline __u16 rvs_ip4_csum(const void *hdr)
{
	const __u16 *w = hdr;
	__u64 sum = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	return rvs_csum_fold(sum);
}

#endif
