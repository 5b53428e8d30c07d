/* SPDX-License-Identifier: Apache-2.0 */
/*
 * parse.h — shared packet parsing for every forwarding method: Ethernet, IPv4 (with options),
 * IPv6 (no extension headers except a fragment header, which is reported), TCP, UDP, and the
 * packet quoted inside an ICMP / ICMPv6 error. Fills `struct rvs_pkt`; never writes the packet.
 */
#ifndef RVS_PARSE_H
#define RVS_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/icmpv6.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "rvs_abi.h"

#define RVS_ETH_LEN 14
#define RVS_IP4_DF 0x4000
#define RVS_IP4_FRAG_MASK 0x3fff /* MF + offset */
#define RVS_NEXTHDR_FRAGMENT 44
/* ICMP (linux/icmp.h drags in libc headers the BPF target cannot use). */
#define RVS_ICMP_DEST_UNREACH 3
#define RVS_ICMP_FRAG_NEEDED 4
#define RVS_ICMP_TIME_EXCEEDED 11
struct rvs_icmphdr {
	__u8 type;
	__u8 code;
	__u16 checksum;
	__u16 unused;
	__u16 mtu; /* network order, for "fragmentation needed" */
};

/* Parse verdicts. */
enum rvs_parse {
	RVS_PARSE_OK = 0,
	RVS_PARSE_NOT_IP,
	RVS_PARSE_MALFORMED,
	RVS_PARSE_FRAGMENT,
	RVS_PARSE_OTHER_L4, /* not TCP/UDP/ICMP error: not ours */
	RVS_PARSE_UNSUPPORTED,
};

struct rvs_pkt {
	struct rvs_flow_key flow; /* client → VIP (for an ICMP error: the quoted flow, reversed) */
	__u32 l3_len;             /* IP packet length (header + payload) */
	__u8 tos;                 /* IPv4 ToS / IPv6 traffic class */
	__u8 df;                  /* IPv4 DF set (IPv6: always 1) */
	__u8 is_icmp_err;
	__u8 tcp_flags;           /* FIN=1 SYN=2 RST=4 ... */
};

/* Ports of a TCP/UDP header at `l4` (4 bytes must be in bounds). */
static __always_inline int rvs_ports(void *l4, void *end, __u16 *sport, __u16 *dport)
{
	__u16 *p = l4;
	if ((void *)(p + 2) > end)
		return -1;
	*sport = p[0];
	*dport = p[1];
	return 0;
}

/*
 * The quoted IPv4 packet in an ICMP error: fill flow reversed (so it reads client → VIP).
 * `qlen`: the bytes of the ICMP message after its header, by the IP length (bytes past it in
 * the frame, e.g. Ethernet padding, are not part of the quote).
 */
static __always_inline int rvs_parse_quoted4(void *q, void *end, __u32 qlen, struct rvs_pkt *pkt)
{
	struct iphdr *ip = q;
	if ((void *)(ip + 1) > end || qlen < sizeof(*ip))
		return RVS_PARSE_MALFORMED;
	__u32 ihl = ip->ihl * 4;
	if (ihl < sizeof(*ip) || ip->version != 4)
		return RVS_PARSE_MALFORMED;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return RVS_PARSE_OTHER_L4;
	if (ihl > 60 || qlen < ihl + 4)
		return RVS_PARSE_MALFORMED;
	if (rvs_ports(q + ihl, end, &pkt->flow.dport, &pkt->flow.sport))
		return RVS_PARSE_MALFORMED;
	pkt->flow.src[0] = ip->daddr;
	pkt->flow.dst[0] = ip->saddr;
	pkt->flow.proto = ip->protocol;
	return RVS_PARSE_OK;
}

static __always_inline int rvs_parse_quoted6(void *q, void *end, __u32 qlen, struct rvs_pkt *pkt)
{
	struct ipv6hdr *ip = q;
	if ((void *)(ip + 1) > end || qlen < sizeof(*ip))
		return RVS_PARSE_MALFORMED;
	if (ip->nexthdr != IPPROTO_TCP && ip->nexthdr != IPPROTO_UDP)
		return RVS_PARSE_OTHER_L4;
	if (qlen < sizeof(*ip) + 4 || rvs_ports(ip + 1, end, &pkt->flow.dport, &pkt->flow.sport))
		return RVS_PARSE_MALFORMED;
	__builtin_memcpy(pkt->flow.src, &ip->daddr, 16);
	__builtin_memcpy(pkt->flow.dst, &ip->saddr, 16);
	pkt->flow.proto = ip->nexthdr;
	return RVS_PARSE_OK;
}

/*
 * TCP or UDP header at l4: ports, and TCP flags. `len`: the segment's length by the IP length;
 * the header (TCP: with its options) must lie inside it, not merely inside the frame — bytes
 * past the IP packet are not the packet's, and NAT/FULLNAT would rewrite them. A UDP length
 * below the header's 8 bytes or above `len` is malformed too (the kernel drops such a
 * datagram, and NAT/FULLNAT's checksum update would cover bytes that are not the datagram's);
 * one below `len` (bytes after the datagram inside the IP packet) is accepted, as the kernel
 * does.
 */
static __always_inline int rvs_parse_l4(void *l4, void *end, __u8 proto, __u32 len,
					struct rvs_pkt *pkt)
{
	if (proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;
		if ((void *)(th + 1) > end || th->doff < 5 || len < th->doff * 4)
			return RVS_PARSE_MALFORMED;
		pkt->flow.sport = th->source;
		pkt->flow.dport = th->dest;
		pkt->tcp_flags = ((__u8 *)th)[13];
	} else {
		struct udphdr *uh = l4;
		if ((void *)(uh + 1) > end || len < sizeof(*uh))
			return RVS_PARSE_MALFORMED;
		__u32 ulen = bpf_ntohs(uh->len);
		if (ulen < sizeof(*uh) || ulen > len)
			return RVS_PARSE_MALFORMED;
		pkt->flow.sport = uh->source;
		pkt->flow.dport = uh->dest;
	}
	pkt->flow.proto = proto;
	return RVS_PARSE_OK;
}

static __always_inline int rvs_parse_ip4(void *data, void *end, struct rvs_pkt *pkt)
{
	struct iphdr *ip = data + RVS_ETH_LEN;
	if ((void *)(ip + 1) > end)
		return RVS_PARSE_MALFORMED;
	__u32 ihl = ip->ihl * 4;
	__u32 tot = bpf_ntohs(ip->tot_len);
	if (ip->version != 4 || ihl < sizeof(*ip) || ihl > 60 || tot < ihl ||
	    data + RVS_ETH_LEN + tot > end)
		return RVS_PARSE_MALFORMED;
	pkt->flow.family = RVS_FAMILY_V4;
	pkt->l3_len = tot;
	pkt->tos = ip->tos;
	pkt->df = (bpf_ntohs(ip->frag_off) & RVS_IP4_DF) != 0;
	if (bpf_ntohs(ip->frag_off) & RVS_IP4_FRAG_MASK)
		return RVS_PARSE_FRAGMENT;
	void *l4 = (void *)ip + ihl;
	if (ip->protocol == IPPROTO_ICMP) {
		struct rvs_icmphdr *ic = l4;
		if ((void *)(ic + 1) > end || tot - ihl < sizeof(*ic))
			return RVS_PARSE_MALFORMED;
		if (ic->type != RVS_ICMP_DEST_UNREACH && ic->type != RVS_ICMP_TIME_EXCEEDED)
			return RVS_PARSE_OTHER_L4;
		pkt->is_icmp_err = 1;
		return rvs_parse_quoted4(ic + 1, end, tot - ihl - sizeof(*ic), pkt);
	}
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return RVS_PARSE_OTHER_L4;
	pkt->flow.src[0] = ip->saddr;
	pkt->flow.dst[0] = ip->daddr;
	return rvs_parse_l4(l4, end, ip->protocol, tot - ihl, pkt);
}

static __always_inline int rvs_parse_ip6(void *data, void *end, struct rvs_pkt *pkt)
{
	struct ipv6hdr *ip = data + RVS_ETH_LEN;
	if ((void *)(ip + 1) > end)
		return RVS_PARSE_MALFORMED;
	__u32 tot = bpf_ntohs(ip->payload_len) + sizeof(*ip);
	if (ip->version != 6 || data + RVS_ETH_LEN + tot > end)
		return RVS_PARSE_MALFORMED;
	pkt->flow.family = RVS_FAMILY_V6;
	pkt->l3_len = tot;
	pkt->tos = (ip->priority << 4) | (ip->flow_lbl[0] >> 4);
	pkt->df = 1;
	void *l4 = ip + 1;
	if (ip->nexthdr == RVS_NEXTHDR_FRAGMENT)
		return RVS_PARSE_FRAGMENT;
	if (ip->nexthdr == IPPROTO_ICMPV6) {
		struct icmp6hdr *ic = l4;
		if ((void *)(ic + 1) > end || tot - sizeof(*ip) < sizeof(*ic))
			return RVS_PARSE_MALFORMED;
		if (ic->icmp6_type != ICMPV6_DEST_UNREACH && ic->icmp6_type != ICMPV6_PKT_TOOBIG &&
		    ic->icmp6_type != ICMPV6_TIME_EXCEED)
			return RVS_PARSE_OTHER_L4;
		pkt->is_icmp_err = 1;
		return rvs_parse_quoted6(ic + 1, end, tot - sizeof(*ip) - sizeof(*ic), pkt);
	}
	if (ip->nexthdr != IPPROTO_TCP && ip->nexthdr != IPPROTO_UDP)
		return RVS_PARSE_OTHER_L4;
	__builtin_memcpy(pkt->flow.src, &ip->saddr, 16);
	__builtin_memcpy(pkt->flow.dst, &ip->daddr, 16);
	return rvs_parse_l4(l4, end, ip->nexthdr, tot - sizeof(*ip), pkt);
}

/* Parse the frame [data, end) into pkt. */
static __always_inline int rvs_parse(void *data, void *end, struct rvs_pkt *pkt)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return RVS_PARSE_MALFORMED;
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return rvs_parse_ip4(data, end, pkt);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return rvs_parse_ip6(data, end, pkt);
	return RVS_PARSE_NOT_IP;
}

#endif
