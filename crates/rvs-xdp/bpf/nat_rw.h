/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nat_rw.h — address and port rewriting for NAT and FULLNAT with incremental checksums
 * (RFC 1624: the sum gains ~old + new for every changed 16-bit word): the IPv4 header checksum,
 * the TCP / UDP checksum (pseudo header included; a zero IPv4 UDP checksum stays zero), and for
 * an ICMP error the outer header, the quoted packet's addresses, ports and checksums (when
 * quoted) and the ICMP / ICMPv6 checksum.
 */
#ifndef RVS_NAT_RW_H
#define RVS_NAT_RW_H

#include <linux/bpf.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include "rvs_abi.h"
#include "parse.h"

/* The new addresses and ports of a packet (network order). */
struct rvs_nat_tuple {
	__u32 src[4];
	__u32 dst[4];
	__u16 sport;
	__u16 dport;
	__u8 family; /* for the next-hop lookup (nat.h) */
	__u8 proto;
	__u8 pad[2];
};

static __always_inline void rvs_acc16(__u64 *d, __u16 old, __u16 new)
{
	*d += (__u16)~old + (__u64)new;
}

static __always_inline void rvs_acc32(__u64 *d, __u32 old, __u32 new)
{
	rvs_acc16(d, old & 0xffff, new & 0xffff);
	rvs_acc16(d, old >> 16, new >> 16);
}

static __always_inline void rvs_acc_addr(__u64 *d, const __u32 *old, const __u32 *new, int words)
{
#pragma unroll
	for (int i = 0; i < 4; i++)
		if (i < words)
			rvs_acc32(d, old[i], new[i]);
}

/* `check` after adding `d` to the sum it covers. */
static __always_inline __u16 rvs_csum_add(__u16 check, __u64 d)
{
	__u64 s = (__u16)~check + d;
#pragma unroll
	for (int i = 0; i < 4; i++)
		s = (s & 0xffff) + (s >> 16);
	return ~s & 0xffff;
}

/* Ports at l4 and the TCP / UDP checksum, given `d` already holding the pseudo-header change.
 * `v6`: a zero UDP checksum is not "none". Returns -1 when out of bounds. */
static __always_inline int rvs_rw_l4(void *l4, void *end, __u8 proto, __u64 d, __u16 sport,
				     __u16 dport, int v6)
{
	__u16 *p = l4;
	if ((void *)(p + 4) > end)
		return -1;
	rvs_acc16(&d, p[0], sport);
	rvs_acc16(&d, p[1], dport);
	p[0] = sport;
	p[1] = dport;
	if (proto == IPPROTO_TCP) {
		if ((void *)(p + 10) > end)
			return -1;
		p[8] = rvs_csum_add(p[8], d);
	} else if (p[3] || v6) {
		__u16 c = rvs_csum_add(p[3], d);
		p[3] = c ? c : 0xffff;
	}
	return 0;
}

/* Rewrite a TCP/UDP packet's addresses and ports to `t`. */
static __always_inline int rvs_rw_pkt(struct xdp_md *ctx, __u8 family,
				      const struct rvs_nat_tuple *t)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u64 d = 0;
	if (family == RVS_FAMILY_V4) {
		struct iphdr *ip = data + RVS_ETH_LEN;
		if ((void *)(ip + 1) > end)
			return -1;
		rvs_acc32(&d, ip->saddr, t->src[0]);
		rvs_acc32(&d, ip->daddr, t->dst[0]);
		ip->check = rvs_csum_add(ip->check, d);
		ip->saddr = t->src[0];
		ip->daddr = t->dst[0];
		return rvs_rw_l4((void *)ip + ((ip->ihl * 4) & 0x3c), end, ip->protocol, d,
				 t->sport, t->dport, 0);
	}
	struct ipv6hdr *ip6 = data + RVS_ETH_LEN;
	if ((void *)(ip6 + 1) > end)
		return -1;
	rvs_acc_addr(&d, (__u32 *)&ip6->saddr, t->src, 4);
	rvs_acc_addr(&d, (__u32 *)&ip6->daddr, t->dst, 4);
	__builtin_memcpy(&ip6->saddr, t->src, 16);
	__builtin_memcpy(&ip6->daddr, t->dst, 16);
	return rvs_rw_l4(ip6 + 1, end, ip6->nexthdr, d, t->sport, t->dport, 1);
}

/*
 * The quoted packet at q (an IPv4 header): addresses and ports to `t`, its header checksum,
 * and its TCP/UDP checksum when quoted — inside the quote's `qlen` bytes (by the IP length;
 * bytes past it in the frame are not covered by the ICMP checksum). Returns the change to the
 * enclosing ICMP checksum in *icmp_d, -1 when out of bounds.
 */
static __always_inline int rvs_rw_quoted4(void *q, void *end, __u32 qlen,
					  const struct rvs_nat_tuple *t, __u64 *icmp_d)
{
	struct iphdr *ip = q;
	if ((void *)(ip + 1) > end)
		return -1;
	__u64 d = 0;
	rvs_acc32(&d, ip->saddr, t->src[0]);
	rvs_acc32(&d, ip->daddr, t->dst[0]);
	__u16 old_check = ip->check;
	ip->check = rvs_csum_add(ip->check, d);
	ip->saddr = t->src[0];
	ip->daddr = t->dst[0];
	*icmp_d += d;
	rvs_acc16(icmp_d, old_check, ip->check);
	__u32 qihl = (ip->ihl * 4) & 0x3c;
	__u16 *p = (void *)ip + qihl;
	if ((void *)(p + 2) > end)
		return -1;
	rvs_acc16(&d, p[0], t->sport);
	rvs_acc16(&d, p[1], t->dport);
	rvs_acc16(icmp_d, p[0], t->sport);
	rvs_acc16(icmp_d, p[1], t->dport);
	p[0] = t->sport;
	p[1] = t->dport;
	__u16 *c = 0;
	if (ip->protocol == IPPROTO_TCP && (void *)(p + 9) <= end && qihl + 18 <= qlen)
		c = p + 8;
	else if (ip->protocol == IPPROTO_UDP && (void *)(p + 4) <= end && qihl + 8 <= qlen &&
		 p[3])
		c = p + 3;
	if (c) {
		__u16 old = *c;
		*c = rvs_csum_add(old, d);
		rvs_acc16(icmp_d, old, *c);
	}
	return 0;
}

static __always_inline int rvs_rw_quoted6(void *q, void *end, __u32 qlen,
					  const struct rvs_nat_tuple *t, __u64 *icmp_d)
{
	struct ipv6hdr *ip = q;
	if ((void *)(ip + 1) > end)
		return -1;
	__u64 d = 0;
	rvs_acc_addr(&d, (__u32 *)&ip->saddr, t->src, 4);
	rvs_acc_addr(&d, (__u32 *)&ip->daddr, t->dst, 4);
	__builtin_memcpy(&ip->saddr, t->src, 16);
	__builtin_memcpy(&ip->daddr, t->dst, 16);
	*icmp_d += d;
	__u16 *p = (void *)(ip + 1);
	if ((void *)(p + 2) > end)
		return -1;
	rvs_acc16(&d, p[0], t->sport);
	rvs_acc16(&d, p[1], t->dport);
	rvs_acc16(icmp_d, p[0], t->sport);
	rvs_acc16(icmp_d, p[1], t->dport);
	p[0] = t->sport;
	p[1] = t->dport;
	__u16 *c = 0;
	if (ip->nexthdr == IPPROTO_TCP && (void *)(p + 9) <= end && 40 + 18 <= qlen)
		c = p + 8;
	else if (ip->nexthdr == IPPROTO_UDP && (void *)(p + 4) <= end && 40 + 8 <= qlen)
		c = p + 3;
	if (c) {
		__u16 old = *c;
		__u16 n = rvs_csum_add(old, d);
		*c = n ? n : 0xffff;
		rvs_acc16(icmp_d, old, *c);
	}
	return 0;
}

/*
 * An ICMP error about a flow translated to `t` (the direction the error travels): the outer
 * destination becomes t->dst, the outer source t->src when `set_src`, and the quoted packet
 * (which travelled the other way) becomes t reversed.
 */
static __always_inline int rvs_rw_icmp(struct xdp_md *ctx, __u8 family,
				       const struct rvs_nat_tuple *t, int set_src)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct rvs_nat_tuple q = { .sport = t->dport, .dport = t->sport };
	__builtin_memcpy(q.src, t->dst, 16);
	__builtin_memcpy(q.dst, t->src, 16);
	__u64 d = 0, icmp_d = 0;
	if (family == RVS_FAMILY_V4) {
		struct iphdr *ip = data + RVS_ETH_LEN;
		if ((void *)(ip + 1) > end)
			return -1;
		__u32 nsrc = set_src ? t->src[0] : ip->saddr;
		rvs_acc32(&d, ip->saddr, nsrc);
		rvs_acc32(&d, ip->daddr, t->dst[0]);
		ip->check = rvs_csum_add(ip->check, d);
		ip->saddr = nsrc;
		ip->daddr = t->dst[0];
		__u32 ihl = (ip->ihl * 4) & 0x3c, tot = bpf_ntohs(ip->tot_len);
		struct rvs_icmphdr *ic = (void *)ip + ihl;
		if ((void *)(ic + 1) > end)
			return -1;
		__u32 qlen = tot > ihl + sizeof(*ic) ? tot - ihl - sizeof(*ic) : 0;
		if (rvs_rw_quoted4(ic + 1, end, qlen, &q, &icmp_d))
			return -1;
		ic->checksum = rvs_csum_add(ic->checksum, icmp_d);
		return 0;
	}
	struct ipv6hdr *ip6 = data + RVS_ETH_LEN;
	if ((void *)(ip6 + 1) > end)
		return -1;
	__u32 nsrc[4];
	__builtin_memcpy(nsrc, set_src ? t->src : (__u32 *)&ip6->saddr, 16);
	rvs_acc_addr(&d, (__u32 *)&ip6->saddr, nsrc, 4);
	rvs_acc_addr(&d, (__u32 *)&ip6->daddr, t->dst, 4);
	__builtin_memcpy(&ip6->saddr, nsrc, 16);
	__builtin_memcpy(&ip6->daddr, t->dst, 16);
	struct icmp6hdr *ic6 = (void *)(ip6 + 1);
	if ((void *)(ic6 + 1) > end)
		return -1;
	icmp_d = d; /* the ICMPv6 checksum covers the pseudo header */
	__u32 plen = bpf_ntohs(ip6->payload_len);
	__u32 qlen = plen > sizeof(*ic6) ? plen - sizeof(*ic6) : 0;
	if (rvs_rw_quoted6(ic6 + 1, end, qlen, &q, &icmp_d))
		return -1;
	ic6->icmp6_cksum = rvs_csum_add(ic6->icmp6_cksum, icmp_d);
	return 0;
}

#endif
