/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conn_state.h — connection tracking state machine of rvs_conns entries: IPVS's TCP states
 * driven by (state, flags, direction), with rvs-core's table (rvs_core::conn::tcp::transition)
 * as the loader wrote it into rvs_config.tcp_next, and per-state timeouts
 * (rvs_config.timeout_ns). UDP flows have the one state RVS_STATE_UDP.
 *
 * Directions: DR and TUN never see replies, so their client packets are RVS_DIR_INPUT_ONLY;
 * NAT and FULLNAT client packets are RVS_DIR_INPUT, their replies RVS_DIR_OUTPUT (as IPVS:
 * only non-masquerading connections carry IP_VS_CONN_F_NOOUTPUT).
 */
#ifndef RVS_CONN_STATE_H
#define RVS_CONN_STATE_H

#include <linux/bpf.h>
#include "rvs_abi.h"
#include "parse.h"

#define RVS_TCP_FIN 0x01
#define RVS_TCP_SYN 0x02
#define RVS_TCP_RST 0x04
#define RVS_TCP_ACK 0x10

/* The direction of a client packet to a real of `method`. */
static __always_inline __u32 rvs_client_dir(__u8 method)
{
	return method == RVS_METHOD_NAT || method == RVS_METHOD_FULLNAT ? RVS_DIR_INPUT
									 : RVS_DIR_INPUT_ONLY;
}

/* The state after `pkt` going `dir` for an entry in `state`. ICMP errors, UDP and TCP segments
 * with none of RST/SYN/FIN/ACK leave it unchanged. */
static __always_inline __u32 rvs_conn_next(const struct rvs_config *cfg, __u32 state, __u32 dir,
					   const struct rvs_pkt *pkt)
{
	if (pkt->flow.proto != RVS_PROTO_TCP || pkt->is_icmp_err)
		return state;
	__u8 f = pkt->tcp_flags;
	__u32 ev;
	if (f & RVS_TCP_RST)
		ev = RVS_EV_RST;
	else if (f & RVS_TCP_SYN)
		ev = RVS_EV_SYN;
	else if (f & RVS_TCP_FIN)
		ev = RVS_EV_FIN;
	else if (f & RVS_TCP_ACK)
		ev = RVS_EV_ACK;
	else
		return state;
	__u32 i = ((dir * RVS_TCP_EVENTS + ev) * RVS_CONN_STATES + state) &
		  (RVS_DIRS * RVS_TCP_EVENTS * RVS_CONN_STATES - 1);
	return cfg->tcp_next[i];
}

/* The state of a new entry for `pkt` going `dir`. */
static __always_inline __u32 rvs_conn_initial(const struct rvs_config *cfg, __u32 dir,
					      const struct rvs_pkt *pkt)
{
	if (pkt->flow.proto == RVS_PROTO_UDP)
		return RVS_STATE_UDP;
	return rvs_conn_next(cfg, RVS_STATE_NONE, dir, pkt);
}

/* Whether a new connection may reuse the tuple of an entry in `state` to a real of `method`:
 * its connection is closing — TIME_WAIT or CLOSE (IPVS's conn_reuse_mode 1), or FIN_WAIT for
 * DR and TUN, which see only the client's side and so never get further (as IPVS's mode 2 for
 * connections without output). A SYN on such an entry is scheduled afresh. */
static __always_inline int rvs_conn_reusable(__u32 state, __u8 method)
{
	return state == RVS_STATE_TIME_WAIT || state == RVS_STATE_CLOSE ||
	       (state == RVS_STATE_FIN_WAIT && rvs_client_dir(method) == RVS_DIR_INPUT_ONLY);
}

/* How long an entry in `state` lives without traffic. */
static __always_inline __u64 rvs_conn_timeout(const struct rvs_config *cfg, __u32 state)
{
	return cfg->timeout_ns[state & (RVS_CONN_STATES - 1)];
}

/* Apply `pkt` going `dir` to entry `c` at `now`: a state change restarts its timer (as IPVS
 * does), otherwise the timestamp is refreshed at most every `refresh_ns` (saves a store, and
 * its cache line bouncing between CPUs, on almost every packet of a busy flow). Returns 1 when
 * the timestamp was written. */
static __always_inline int rvs_conn_step(const struct rvs_config *cfg, struct rvs_conn *c,
					 __u32 dir, const struct rvs_pkt *pkt, __u64 now,
					 __u64 refresh_ns)
{
	__u32 st = c->state;
	__u32 next = rvs_conn_next(cfg, st & (RVS_CONN_STATES - 1), dir, pkt);
	if (next != st) {
		c->state = next;
		c->last_ns = now;
		return 1;
	}
	if (now - c->last_ns > refresh_ns) {
		c->last_ns = now;
		return 1;
	}
	return 0;
}

#endif
