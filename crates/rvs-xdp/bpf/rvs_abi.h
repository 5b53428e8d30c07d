/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rvs_abi.h — the ONE definition of everything shared by the XDP programs and the Rust loader.
 *
 * Rust side: build.rs parses the `#define RVS_*` constants and `enum rvs_outcome` from this file
 * and generates `abi_generated.rs`; the structs are mirrored by hand in src/abi.rs and the test
 * `abi_layout` compiles a C checker against this header and compares every size and offset.
 *
 * Conventions: addresses are stored as 4 x u32 in network byte order (IPv4 in addr[0], the rest
 * zero); ports are network byte order; everything else is host order.
 */
#ifndef RVS_ABI_H
#define RVS_ABI_H

#include <linux/types.h>

/* ---- sizes ---------------------------------------------------------------------------- */
#define RVS_MAX_SERVICES 64
#define RVS_MAX_REALS 1024
/* Slots of one service's Maglev lookup table (a prime). */
#define RVS_MAGLEV_SIZE 65537
/* rvs_conns: DR/TUN flows (an LRU). NAT/FULLNAT flows live in rvs_nat_conns, sized like
 * rvs_nat_rev (RVS_MAX_NAT_CONNS), so DR/TUN traffic never evicts them. */
#define RVS_MAX_CONNS 262144
#define RVS_MAX_PERSIST 65536
/* rvs_ifaces and rvs_tx_ports are arrays indexed by ifindex below this (rvs_ifaces slot 0:
 * the first attached interface, for packets whose ingress is not described, e.g. test runs).
 * Container hosts reach ifindexes in the thousands; an attached interface at or above this
 * is refused when the engine starts. */
#define RVS_MAX_IFACES 65536
/* rvs_vip_ports: two bits per port (network order) in u64 words: word port >> 5, bits
 * 2 * (port & 31) + RVS_PORT_DIRECT / RVS_PORT_NAT. Both clear: no service on that port. */
#define RVS_VIP_PORT_WORDS 2048
/* Some service on the port has DR/TUN reals, or no NAT/FULLNAT real (its flows, if any, are in
 * rvs_conns). */
#define RVS_PORT_DIRECT 1
/* Some service on the port has NAT/FULLNAT reals (their flows are in rvs_nat_conns). */
#define RVS_PORT_NAT 2
/* Counter slots: services first, then reals. */
#define RVS_STATS_SLOTS 1088
/* Seed of the flow hash (rvs_core::maglev::hash::FLOW_SEED, "rvs1" = 0x72767331). */
#define RVS_FLOW_SEED 1920365361
/* A value of rvs_maglev meaning "no real available". */
#define RVS_NO_REAL 4294967295
/* NAT / FULLNAT (nat.h): entries of the reverse table rvs_nat_rev and of the NAT connection
 * table rvs_nat_conns, i.e. how many NAT/FULLNAT flows can be live at once; the loader may set
 * another size. */
#define RVS_MAX_NAT_CONNS 262144
/* FULLNAT: local addresses per service, first local port, ports tried per new flow. */
#define RVS_MAX_LADDRS 8
#define RVS_FNAT_PORT_MIN 1024
#define RVS_FNAT_PORT_TRIES 64
/* TOA TCP option (FULLNAT SYN and the ACK completing the handshake): kind, length with an
 * IPv4 / an IPv6 client address. */
#define RVS_TOA_KIND 254
#define RVS_TOA_LEN4 8
#define RVS_TOA_LEN6 20

/* ---- enum values ---------------------------------------------------------------------- */
#define RVS_FAMILY_V4 4
#define RVS_FAMILY_V6 6

/* Forwarding methods of a real (NAT and FULLNAT are issue 6). */
#define RVS_METHOD_DR 1
#define RVS_METHOD_TUN 2
#define RVS_METHOD_NAT 3
#define RVS_METHOD_FULLNAT 4

/* rvs_service.flags */
#define RVS_SVC_F_PERSIST 1
/* One-packet scheduling (ipvsadm -o; set for UDP services only, IPVS applies it to UDP only):
 * a datagram scheduled to a DR or TUN real makes no connection entry (each is scheduled on its
 * own: persistence template, else Maglev) and counts as a connection. NAT/FULLNAT reals keep
 * entries (their replies need them). */
#define RVS_SVC_F_ONE_PACKET 2
/* The service has DR/TUN reals / NAT or FULLNAT reals (set by the loader from its reals; the
 * loader derives rvs_vip_ports from them, the program reads only rvs_vip_ports). */
#define RVS_SVC_F_DIRECT 4
#define RVS_SVC_F_NAT 8
/* rvs_real.flags */
#define RVS_REAL_F_PRESENT 1
/* Health checks see it down, or the operator disabled it: a persistence template naming it is
 * not followed (the client is scheduled afresh). A drained real (weight 0) keeps it clear: its
 * persistent clients still reach it, as with IPVS's default expire_quiescent_template=0. */
#define RVS_REAL_F_DOWN 2
/* A DR/TUN real of a one-packet service (RVS_SVC_F_ONE_PACKET): a DR/TUN connection entry
 * naming it (one made before the service became one-packet) is not followed, so a datagram to
 * it is scheduled on its own without a service lookup first on the established path. A NAT
 * entry naming it (made before the real was edited from NAT) is followed: it keeps its
 * method, and its replies need it. */
#define RVS_REAL_F_ONE_PACKET 4
/* The real is an address of the director itself (IPVS's local node, ipvsadm's "Local"): a
 * DR/TUN packet to it is passed to the director's own stack untouched, where the VIP is local;
 * no MAC needed. */
#define RVS_REAL_F_LOCAL 8

/* Connection states (rvs_conn.state): rvs_core::conn::ConnState::code — the IPVS TCP states
 * 0..=10 in IPVS's order (the names `ipvsadm -lnc` prints), UDP's single state 11. */
#define RVS_STATE_NONE 0
#define RVS_STATE_ESTABLISHED 1
#define RVS_STATE_SYN_SENT 2
#define RVS_STATE_SYN_RECV 3
#define RVS_STATE_FIN_WAIT 4
#define RVS_STATE_TIME_WAIT 5
#define RVS_STATE_CLOSE 6
#define RVS_STATE_CLOSE_WAIT 7
#define RVS_STATE_LAST_ACK 8
#define RVS_STATE_LISTEN 9
#define RVS_STATE_SYNACK 10
#define RVS_STATE_UDP 11
/* Slots per state-indexed array (a power of two: indexes are masked with it - 1). */
#define RVS_CONN_STATES 16
/* Directions of a packet for the TCP state table (IPVS's TCP_DIR_*): client -> real when the
 * director sees the replies (NAT, FULLNAT), real -> client, client -> real when it does not
 * (DR, TUN). RVS_DIRS is the row count (a power of two; row 3 unused). */
#define RVS_DIR_INPUT 0
#define RVS_DIR_OUTPUT 1
#define RVS_DIR_INPUT_ONLY 2
#define RVS_DIRS 4
/* The one flag a TCP segment is classified by (RST, then SYN, FIN, ACK). */
#define RVS_EV_SYN 0
#define RVS_EV_FIN 1
#define RVS_EV_ACK 2
#define RVS_EV_RST 3
#define RVS_TCP_EVENTS 4

/* rvs_flow_key.proto / rvs_vip_key.proto: IPPROTO_TCP / IPPROTO_UDP */
#define RVS_PROTO_TCP 6
#define RVS_PROTO_UDP 17

/* Fixed payload carried in an ICMP "fragmentation needed" / ICMPv6 "packet too big" reply:
 * that many bytes of the offending packet, starting at its IP header. */
#define RVS_ICMP4_QUOTE 64
#define RVS_ICMP6_QUOTE 128

/* ---- outcomes (per-CPU counters, indexed by this enum; names exported to Rust) -------- */
enum rvs_outcome {
	RVS_OUTCOME_FORWARDED = 0,      /* sent to a real (DR or TUN) */
	RVS_OUTCOME_NOT_IP = 1,         /* not IPv4/IPv6: passed to the kernel */
	RVS_OUTCOME_NOT_VIP = 2,        /* no service for destination/port/protocol: passed */
	RVS_OUTCOME_NO_REAL = 3,        /* service has no usable real: dropped */
	RVS_OUTCOME_MALFORMED = 4,      /* truncated or inconsistent headers: dropped or passed */
	RVS_OUTCOME_TOO_BIG = 5,        /* exceeds the MTU after encapsulation: ICMP sent back */
	RVS_OUTCOME_FRAGMENT = 6,       /* IP fragment to a VIP: passed to the kernel */
	RVS_OUTCOME_ICMP_FORWARDED = 7, /* ICMP error about a tracked flow, sent to its real */
	RVS_OUTCOME_ICMP_UNTRACKED = 8, /* ICMP error about no tracked flow that is not sent by
					 * Maglev either (no service, NAT/FULLNAT, no real): passed */
	RVS_OUTCOME_NO_NEIGH = 9,       /* real's MAC not (yet) known: dropped */
	RVS_OUTCOME_UNSUPPORTED = 10,   /* method or header not handled here: passed */
	RVS_OUTCOME_HEADROOM = 11,      /* bpf_xdp_adjust_head/tail failed: dropped */
	RVS_OUTCOME_DECAP = 12,         /* (decap program) tunnelled packet decapsulated */
	RVS_OUTCOME_NAT_FORWARDED = 13, /* NAT/FULLNAT: rewritten and sent to the real */
	RVS_OUTCOME_NAT_REPLY = 14,     /* NAT/FULLNAT: real's reply rewritten back to the client */
	RVS_OUTCOME_TABLE_FULL = 15,    /* NAT/FULLNAT: connection (reverse) table full: dropped */
	RVS_OUTCOME_NO_LPORT = 16,      /* FULLNAT: no local address or free local port: dropped */
	RVS_OUTCOME_NAT_STALE = 17,     /* NAT/FULLNAT: a real's packet by a reverse entry whose
					 * flow expired or moved to another real or local port:
					 * passed to the kernel untouched */
	RVS_OUTCOME_NAT_NO_CONN = 18,   /* NAT/FULLNAT: a real's reply by a reverse entry whose flow
					 * has no connection entry (evicted from the full LRU
					 * table): rewritten back to the client all the same */
	RVS_OUTCOME_ICMP_NO_CONN_MAGLEV = 19, /* DR/TUN: ICMP error about a flow with no
					 * connection entry here (e.g. seen by another director
					 * behind ECMP), sent to the real a new flow of it would get
					 * (persistence template, else Maglev); no entry made */
	RVS_OUTCOME_ICMP_RATE_LIMITED = 20, /* DR/TUN: such an ICMP error (no connection entry)
					 * over the per-CPU limit rvs_config.icmp_rate /
					 * icmp_burst: dropped (icmp_limit.h) */
	RVS_OUTCOME_MAX = 21,
};

/* ---- map values and keys -------------------------------------------------------------- */

/* rvs_services key: a virtual service. */
struct rvs_vip_key {
	__u32 addr[4];
	__u16 port;   /* network order */
	__u8 proto;   /* RVS_PROTO_* */
	__u8 family;  /* RVS_FAMILY_* */
};

/* rvs_services value. */
struct rvs_service {
	__u32 index;           /* 0..RVS_MAX_SERVICES: Maglev table block and counter slot */
	__u32 flags;           /* RVS_SVC_F_* */
	__u32 persist_timeout; /* seconds, when RVS_SVC_F_PERSIST */
	__u8 persist_prefix;   /* client netmask length for persistence (32 / 128 = host) */
	__u8 pad[3];
};

/* rvs_reals value (array indexed by real index). */
struct rvs_real {
	__u32 addr[4];
	__u8 family;  /* RVS_FAMILY_* */
	__u8 method;  /* RVS_METHOD_* */
	__u8 flags;   /* RVS_REAL_F_* */
	__u8 has_mac; /* 1 when mac is resolved */
	__u8 mac[6];  /* next-hop MAC: the real's (DR) or the gateway's (TUN) */
	__u8 pad[2];
};

/* rvs_conns key: a flow as the client sends it. */
struct rvs_flow_key {
	__u32 src[4];
	__u32 dst[4];
	__u16 sport; /* network order */
	__u16 dport; /* network order */
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};

/* rvs_conns value. */
struct rvs_conn {
	__u32 real;    /* real index */
	__u32 svc;     /* service index */
	__u64 last_ns; /* bpf_ktime_get_ns of the last packet */
	__u8 state;    /* RVS_STATE_*: IPVS TCP state, or RVS_STATE_UDP */
	__u8 method;   /* RVS_METHOD_* the flow is sent with: its real's when the entry was made.
			* IPVS fixes a connection's forwarding method at creation (ipvsadm -e -r
			* ... -g to -i changes new connections only): every packet of the flow,
			* and for NAT/FULLNAT the entry's table and reverse entry, follow this. */
	__u16 pad;
	__u16 lport;   /* FULLNAT: local port (network order); 0 = none */
	__u8 laddr;    /* FULLNAT: local address, index into the service's rvs_fnat_pool (bits
			* RVS_LADDR_INDEX), and RVS_LADDR_F_SYN_RECV */
	__u8 persist;  /* the service's persistence prefix + 1 when it has persistence (-p), so
			* the client's template is refreshed with the entry; 0 = none */
};

/* rvs_conn.laddr: the local address's index in its bits RVS_LADDR_INDEX (RVS_MAX_LADDRS - 1),
 * and the flag RVS_LADDR_F_SYN_RECV (FULLNAT TCP): the entry was in SYN_RECV after the flow's
 * last packet, so a client ACK that makes it ESTABLISHED completes the handshake (and carries
 * the TOA option, fullnat.h). */
#define RVS_LADDR_INDEX 7
#define RVS_LADDR_F_SYN_RECV 128

/* rvs_persist key: (service, masked client address). */
struct rvs_persist_key {
	__u32 svc;
	__u32 addr[4];
};

/* rvs_persist value. */
struct rvs_persist {
	__u32 real;
	__u32 pad;
	__u64 last_ns;
};

/* rvs_ifaces value, indexed by ifindex (slot 0 = default for any interface; mtu 0 = unset). */
struct rvs_iface {
	__u8 mac[6];   /* the interface's own MAC (source of rewritten frames) */
	__u16 mtu;     /* IP MTU used to decide "too big" after encapsulation */
	__u32 src4;    /* outer IPv4 source for TUN (network order) */
	__u32 src6[4]; /* outer IPv6 source for TUN */
};

/* rvs_config value (array, one entry), written by the loader from rvs-core:
 * - timeout_ns: how long an entry lives without traffic, by its state (RVS_STATE_*);
 * - tcp_next: rvs_core::conn::tcp::transition (IPVS's tcp_states table), the next state at
 *   [(dir * RVS_TCP_EVENTS + event) * RVS_CONN_STATES + state];
 * - icmp_rate, icmp_burst: the per-CPU token bucket of ICMP errors about DR/TUN flows with no
 *   connection entry (icmp_limit.h): errors per second and bucket size; rate 0 = unlimited. */
struct rvs_config {
	__u64 timeout_ns[RVS_CONN_STATES];
	__u8 tcp_next[RVS_DIRS * RVS_TCP_EVENTS * RVS_CONN_STATES];
	__u32 icmp_rate;
	__u32 icmp_burst;
};

/* Defaults of rvs_config.icmp_rate / icmp_burst (docs/xdp.md "ICMP errors": why these). */
#define RVS_ICMP_RATE_DEFAULT 1000
#define RVS_ICMP_BURST_DEFAULT 200
/* rvs_icmp_bucket.tokens counts in these units per error, so a refill of rate * elapsed ns is
 * exact in integers. */
#define RVS_ICMP_TOKEN 1000000000

/* rvs_icmp_bucket value (per-CPU array, one entry; icmp_limit.h). The loader never writes it;
 * tests may (e.g. last_ns in the future: no refill until then). */
struct rvs_icmp_bucket {
	__u64 tokens;  /* RVS_ICMP_TOKEN per error, at most icmp_burst * RVS_ICMP_TOKEN */
	__u64 last_ns; /* bpf_ktime_get_coarse_ns of the last refill */
};

/* rvs_stats value (per-CPU array, RVS_STATS_SLOTS entries: services then reals). In: client →
 * real (every method); out: real → client, i.e. NAT/FULLNAT replies and ICMP errors from the
 * real side (a DR/TUN director never sees replies: 0, as IPVS shows). IP packet lengths. */
struct rvs_counters {
	__u64 conns;
	__u64 packets;
	__u64 bytes;
	__u64 out_packets;
	__u64 out_bytes;
};

/* rvs_nat_rev value (key: the flow as the real sends its replies): the client's flow, the real
 * it was made for, and the next hop towards the client as the program last found it
 * (nh_expires_ns 0 = none). A reply counts only while the flow's rvs_conns entry is live, on
 * that real and (FULLNAT) on the key's local port. */
struct rvs_nat_rev {
	struct rvs_flow_key orig;
	__u64 nh_expires_ns; /* the cached next hop is used until then */
	__u32 nh_ingress;    /* the interface the reply came in on when it was looked up */
	__u32 nh_ifindex;    /* out */
	__u8 nh_dmac[6];
	__u8 nh_smac[6];
	__u32 real;          /* real index of the key's source */
};

/* rvs_fnat_pools value (array indexed by service index): a service's local addresses. */
struct rvs_fnat_pool {
	__u32 count; /* addresses used, <= RVS_MAX_LADDRS */
	__u32 pad;
	__u32 addrs[RVS_MAX_LADDRS][4];
};

/* rvs_decap_vips key (decap program on a real server): a VIP it accepts tunnelled. */
struct rvs_decap_key {
	__u32 addr[4];
	__u8 family;
	__u8 pad[3];
};

/* Benchmark wrapper: the frame restored before every run. When vary_offset is not 0, the four
 * bytes there (e.g. the low bits of the source address) are overwritten with a per-run counter,
 * so every run is a new flow. */
#define RVS_BENCH_FRAME_MAX 256
struct rvs_bench_frame {
	__u32 len;
	__u32 vary_offset;
	__u32 counter;
	__u8 data[RVS_BENCH_FRAME_MAX];
};

/* Trivial forwarder (rvs_forward.c, the benchmark's ceiling for DR): rvs_fwd_config value
 * (array, one entry). IPv4 TCP to vip:port goes to macs[hash(client addr, port) % count]. */
#define RVS_FWD_MAX_REALS 16
struct rvs_fwd_config {
	__u32 vip;       /* IPv4, network order */
	__u16 port;      /* network order */
	__u8 own_mac[6]; /* source MAC of forwarded frames */
	__u32 count;     /* reals used, 1..=RVS_FWD_MAX_REALS (0: pass everything) */
	__u8 macs[RVS_FWD_MAX_REALS][6];
};

#endif /* RVS_ABI_H */
