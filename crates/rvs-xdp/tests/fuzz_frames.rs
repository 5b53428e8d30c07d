//! Property test of the balancer program over mutated frames ("malformed packets: a counted
//! drop, never a crash"). Valid frames of every kind the fixtures use — DR, TUN (both families
//! of outer header), NAT and FULLNAT services, v4 and v6, client TCP SYN/ACK/FIN/RST and UDP,
//! replies of tracked NAT/FULLNAT flows, ICMP errors quoting tracked flows, IPv4 options, an
//! IPv6 fragment header, full-MTU segments too big for a tunnel — are mutated by a seeded
//! generator written here (flipped header bytes, length fields too small / too large / odd,
//! truncation inside the headers, junk appended, fragment bits, swapped protocols, bad
//! ethertypes and VLAN tags; half of the time the IPv4 header and L4 checksums are then made
//! right again so the mutation gets past them) and run
//! through BPF_PROG_TEST_RUN. For every run:
//!
//! 1. BPF_PROG_TEST_RUN succeeds;
//! 2. exactly one outcome counter grows, by exactly 1;
//! 3. XDP_PASS leaves the frame byte for byte as it was — except the outcomes whose job is to
//!    rewrite a NAT/FULLNAT packet for the kernel (`nat_reply`, `nat_no_conn`,
//!    `icmp_forwarded` of a real's ICMP error), which are checked like 4; XDP_DROP names a
//!    reason (not a `*forwarded` / `nat_reply` outcome);
//! 4. XDP_TX / XDP_REDIRECT (and the rewritten passes) give a well-formed frame: each IPv4
//!    header's checksum verifies, IP lengths fit the frame, an encapsulated packet fits its
//!    outer header, TTL / hop limit is kept or decremented by one (an outer header's is not 0),
//!    the forwarded TCP/UDP header lies inside its IP packet (a UDP length field between 8
//!    and the IP payload: any other is `malformed`), and a TCP/UDP/ICMP checksum that
//!    verified in the input (non-fragment; UDP checksum 0 excepted) verifies in the output, as
//!    does the header checksum of an IPv4 packet quoted in an ICMP error.
//!
//! A failure prints the seed, the iteration, the base frame, the mutations and the input and
//! output frames in hex. `RVS_FUZZ_SEED` / `RVS_FUZZ_RUNS` override the defaults. Runs in a
//! network namespace of its own (no routes: forwarded packets are XDP_TX, replies XDP_PASS).
//! Needs root; skips otherwise.

mod common;
mod nat_support;

use common::frames::{self, ACK, FIN, Ip4, RST, SYN, TCP, UDP};
use common::lab::*;
use nat_support::{
    client, fix_l4, frame, from_client, icmp_frame, ip_packet, local_of, mac, sa, seg, tcp_opts, v6,
};
use rvs_xdp::abi;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

const DR: u8 = abi::RVS_METHOD_DR as u8;
const TUN: u8 = abi::RVS_METHOD_TUN as u8;
const NAT: u8 = abi::RVS_METHOD_NAT as u8;
const FNAT: u8 = abi::RVS_METHOD_FULLNAT as u8;
const XDP_REDIRECT: u32 = 4;
const PSH: u8 = 0x08;

/// XDP_PASS outcomes whose frame is a NAT/FULLNAT packet rewritten for the kernel.
const REWRITTEN_PASS: [&str; 3] = ["nat_reply", "nat_no_conn", "icmp_forwarded"];
/// Outcomes that may come with XDP_DROP.
const DROP_REASONS: [&str; 7] = [
    "no_real",
    "malformed",
    "too_big",
    "no_neigh",
    "headroom",
    "table_full",
    "no_lport",
];

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// splitmix64: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// 0..n (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

/// A service: index, VIP address, port, protocol, (real, weight).
type ServiceDef = (u32, IpAddr, u16, u8, &'static [(u32, u32)]);

/// (real index, address, MAC byte, method, NAT port) and the services over them.
fn setup(lab: &mut Lab) {
    let reals: [(u32, IpAddr, u8, u8, u16); 20] = [
        (0, v4(10, 0, 0, 7), 0x07, DR, 0),
        (1, v4(10, 0, 0, 8), 0x08, DR, 0),
        (2, v6(7, 0), 0x37, DR, 0),
        (3, v6(8, 0), 0x38, DR, 0),
        (4, v4(10, 0, 1, 7), 0x17, TUN, 0),
        (5, v4(10, 0, 1, 8), 0x18, TUN, 0),
        (6, v6(7, 1), 0x27, TUN, 0),
        (7, v6(8, 1), 0x28, TUN, 0),
        (8, v6(9, 1), 0x29, TUN, 0),
        (9, v4(10, 0, 1, 9), 0x19, TUN, 0),
        (10, v4(10, 0, 2, 7), 0x47, NAT, 8080),
        (11, v4(10, 0, 2, 8), 0x48, NAT, 0),
        (12, v6(7, 2), 0x57, NAT, 8080),
        (13, v6(8, 2), 0x58, NAT, 0),
        (14, v4(10, 0, 3, 7), 0x67, FNAT, 0),
        (15, v4(10, 0, 3, 8), 0x68, FNAT, 5353),
        (16, v6(7, 3), 0x77, FNAT, 8080),
        (17, v6(8, 3), 0x78, FNAT, 0),
        (18, v4(10, 0, 0, 18), 0x88, DR, 0),
        (19, v4(10, 0, 0, 19), 0x89, DR, 0),
    ];
    for (i, ip, m, method, port) in reals {
        lab.add_real(i, ip, mac(m), method);
        if method == NAT || method == FNAT {
            lab.b.set_real_port(i, port).unwrap();
        }
    }
    let services: [ServiceDef; 18] = [
        (0, v4(10, 0, 0, 3), 80, TCP, &[(0, 1), (1, 1)]),
        (1, v4(10, 0, 0, 3), 53, UDP, &[(0, 1), (1, 1)]),
        (2, v6(3, 0), 80, TCP, &[(2, 1), (3, 1)]),
        (3, v6(3, 0), 53, UDP, &[(2, 1), (3, 1)]),
        (4, v4(10, 0, 0, 4), 80, TCP, &[(4, 1), (5, 1)]),
        (5, v4(10, 0, 0, 4), 53, UDP, &[(4, 1), (5, 1)]),
        (6, v6(4, 0), 80, TCP, &[(6, 1), (7, 1)]),
        (7, v6(4, 0), 53, UDP, &[(6, 1), (7, 1)]),
        (8, v4(10, 0, 0, 10), 80, TCP, &[(8, 1)]),
        (9, v6(0x10, 0), 80, TCP, &[(9, 1)]),
        (10, v4(10, 0, 0, 20), 80, TCP, &[(10, 1)]),
        (11, v4(10, 0, 0, 20), 53, UDP, &[(11, 1)]),
        (12, v6(0x20, 0), 80, TCP, &[(12, 1)]),
        (13, v6(0x20, 0), 53, UDP, &[(13, 1)]),
        (14, v4(10, 0, 0, 21), 80, TCP, &[(14, 1)]),
        (15, v4(10, 0, 0, 21), 53, UDP, &[(15, 1)]),
        (16, v6(0x21, 0), 80, TCP, &[(16, 1)]),
        (17, v6(0x21, 0), 53, UDP, &[(17, 1)]),
    ];
    for (i, ip, port, proto, reals) in services {
        lab.add_service(i, sa(ip, port), proto, reals, None);
    }
    // A persistent service and one with no usable real (every weight 0).
    lab.add_service(
        18,
        sa(v4(10, 0, 0, 5), 80),
        TCP,
        &[(18, 1), (19, 1)],
        Some((300, 24)),
    );
    lab.add_service(19, sa(v4(10, 0, 0, 6), 80), TCP, &[(0, 0)], None);
    lab.b.set_fnat_pool(14, &[v4(10, 0, 3, 1)]).unwrap();
    lab.b
        .set_fnat_pool(15, &[v4(10, 0, 3, 1), v4(10, 0, 3, 2)])
        .unwrap();
    lab.b.set_fnat_pool(16, &[v6(1, 3)]).unwrap();
    lab.b.set_fnat_pool(17, &[v6(1, 3)]).unwrap();
}

/// The real's address and port as NAT/FULLNAT write them.
fn real_sa(lab: &Lab, idx: u32, vport: u16) -> SocketAddr {
    let port = match idx {
        10 | 12 | 16 => 8080,
        15 => 5353,
        _ => vport,
    };
    sa(lab.real(idx).ip, port)
}

struct Base {
    name: String,
    frame: Vec<u8>,
}

/// Valid frames of every kind; NAT/FULLNAT flows are opened first (their SYN / first
/// datagram run here) so the replies and ICMP errors about them find state.
fn bases(lab: &mut Lab) -> Vec<Base> {
    let mut out = vec![];
    let mut add = |name: String, frame: Vec<u8>| out.push(Base { name, frame });
    for svc in 0..20u32 {
        let s = lab.svc(svc);
        let (vip, proto) = (s.vip, s.proto);
        let v6c = vip.is_ipv6();
        let port = 40000 + svc as u16 * 10;
        let c = client(v6c, port);
        let kinds: &[(u8, &[u8], &str)] = if proto == TCP {
            &[
                (SYN, b"", "SYN"),
                (ACK, b"", "ACK"),
                (PSH | ACK, b"hello world", "data"),
                (FIN | ACK, b"", "FIN"),
                (RST, b"", "RST"),
            ]
        } else {
            &[(0, b"query", "UDP")]
        };
        for (flags, payload, what) in kinds {
            add(
                format!("svc {svc} {vip} {what}"),
                from_client(c, vip, proto, &seg(proto, *flags, payload)),
            );
        }
        if proto == TCP {
            // TCP options (FULLNAT adds TOA after them).
            let opts = [2, 4, 5, 0xb4, 4, 2, 1, 1];
            add(
                format!("svc {svc} {vip} SYN with TCP options"),
                from_client(c, vip, proto, &tcp_opts(0, 0, SYN, &opts, b"")),
            );
        }
        if !v6c {
            // IPv4 options (NOP NOP NOP EOL).
            let mut ip = Ip4::new(
                match c.ip() {
                    IpAddr::V4(a) => a,
                    _ => unreachable!(),
                },
                match vip.ip() {
                    IpAddr::V4(a) => a,
                    _ => unreachable!(),
                },
                proto,
            );
            ip.options = vec![1, 1, 1, 0];
            let flags = if proto == TCP { ACK } else { 0 };
            let seg = frames::l4(proto, c.port(), vip.port(), flags, b"opts");
            let mut p = ip.build(&seg);
            fix_l4(&mut p);
            add(
                format!("svc {svc} {vip} IPv4 options"),
                frames::eth(DIR_MAC, CLIENT_MAC, frames::ETH_IP4, &p),
            );
        } else {
            // IPv6 fragment header (atomic fragment: offset 0, no M).
            let mut fh = vec![proto, 0, 0, 0, 0, 0, 0, 7];
            fh.extend_from_slice(&frames::l4(proto, c.port(), vip.port(), ACK, b"frag"));
            let (IpAddr::V6(cs), IpAddr::V6(vs)) = (c.ip(), vip.ip()) else {
                unreachable!()
            };
            add(
                format!("svc {svc} {vip} IPv6 fragment header"),
                frames::eth(
                    DIR_MAC,
                    CLIENT_MAC,
                    frames::ETH_IP6,
                    &frames::ip6(cs, vs, 44, 0, 64, &fh),
                ),
            );
        }
    }
    // Too big to encapsulate (TUN, v4 and v6 outer headers): "fragmentation needed" / "packet
    // too big" back to the client.
    for svc in [4u32, 6, 8, 9] {
        let s = lab.svc(svc);
        let (vip, proto) = (s.vip, s.proto);
        let c = client(vip.is_ipv6(), 45000 + svc as u16);
        let hl = if vip.is_ipv6() { 40 } else { 20 };
        let payload = vec![0x5a; usize::from(MTU) - hl - 20];
        add(
            format!("svc {svc} {vip} full-MTU segment (too big for the tunnel)"),
            from_client(c, vip, proto, &seg(proto, ACK, &payload)),
        );
    }
    // Tracked flows: open them, then replies and ICMP errors about them.
    for svc in 0..18u32 {
        let s = lab.svc(svc);
        let (vip, proto) = (s.vip, s.proto);
        let v6c = vip.is_ipv6();
        let c = client(v6c, 50000 + svc as u16);
        let first = if proto == TCP { SYN } else { 0 };
        let syn = from_client(c, vip, proto, &seg(proto, first, b""));
        let (action, _) = lab.b.test_run(&syn).unwrap();
        assert_eq!(action, XDP_TX, "opening flow of service {svc}");
        let idx = lab.maglev_real(svc, c);
        let r = lab.real(idx);
        let router = if v6c {
            v6(0xfe, 0xc)
        } else {
            v4(192, 168, 1, 1)
        };
        // Client side: an error about the reply VIP -> client.
        let quoted = ip_packet(vip, c, proto, &seg(proto, ACK, b"data"));
        add(
            format!("svc {svc} ICMP error about {vip} -> {c} (client side)"),
            icmp_frame(DIR_MAC, CLIENT_MAC, router, vip.ip(), &quoted, 1000),
        );
        let hl = if v6c { 40 } else { 20 };
        add(
            format!("svc {svc} ICMP error about {vip} -> {c}, quote IP+8"),
            icmp_frame(DIR_MAC, CLIENT_MAC, router, vip.ip(), &quoted, hl + 8),
        );
        if r.method != NAT && r.method != FNAT {
            continue;
        }
        let rs = real_sa(lab, idx, vip.port());
        let to = if r.method == NAT {
            c
        } else {
            local_of(lab, &nat_support::flow(c, vip, proto)).expect("FULLNAT local")
        };
        for (flags, payload, what) in [
            (SYN | ACK, &b""[..], "SYN-ACK"),
            (PSH | ACK, b"world", "data"),
            (FIN | ACK, b"", "FIN"),
            (RST, b"", "RST"),
        ] {
            if proto == UDP && flags != PSH | ACK {
                continue;
            }
            add(
                format!("svc {svc} reply {rs} -> {to} {what}"),
                frame(DIR_MAC, r.mac, rs, to, proto, &seg(proto, flags, payload)),
            );
        }
        // Real side: an error about client (or local) -> real.
        let quoted = ip_packet(to, rs, proto, &seg(proto, ACK, b"query"));
        add(
            format!("svc {svc} ICMP error from the real about {to} -> {rs}"),
            icmp_frame(DIR_MAC, r.mac, rs.ip(), to.ip(), &quoted, 1000),
        );
    }
    // Not ours: ARP, ICMP echo to a VIP.
    add(
        "ARP".into(),
        frames::eth([0xff; 6], CLIENT_MAC, 0x0806, &[0u8; 28]),
    );
    let echo = frames::icmp4(8, 0, [0, 1, 0, 1], b"ping");
    add(
        "ICMP echo to a VIP".into(),
        frames::eth(
            DIR_MAC,
            CLIENT_MAC,
            frames::ETH_IP4,
            &Ip4::new(
                Ipv4Addr::new(192, 168, 1, 10),
                Ipv4Addr::new(10, 0, 0, 3),
                1,
            )
            .build(&echo),
        ),
    );
    out
}

/// An IP header found in a frame.
#[derive(Clone, Debug)]
struct Ip {
    off: usize,
    v6: bool,
    hl: usize,
    /// Header + payload, by the length field.
    total: usize,
    proto: u8,
    ttl: u8,
    frag: bool,
    /// IPv4 header checksum verifies (IPv6: true).
    csum_ok: bool,
}

/// Strict: the IP packet at `off`, with a valid header inside the frame (checksum aside).
fn ip_at(f: &[u8], off: usize) -> Result<Ip, String> {
    let h = f.get(off..).ok_or("no IP header")?;
    match h.first().map(|b| b >> 4) {
        Some(4) => {
            if h.len() < 20 {
                return Err("IPv4 header truncated".into());
            }
            let hl = usize::from(h[0] & 0xf) * 4;
            let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
            if hl < 20 || h.len() < hl {
                return Err(format!("IPv4 header length {hl}"));
            }
            if total < hl || total > h.len() {
                return Err(format!("IPv4 total length {total} (frame has {})", h.len()));
            }
            let frag = u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0;
            Ok(Ip {
                off,
                v6: false,
                hl,
                total,
                proto: h[9],
                ttl: h[8],
                frag,
                csum_ok: frames::sum16(&h[..hl], 0) == 0xffff,
            })
        }
        Some(6) => {
            if h.len() < 40 {
                return Err("IPv6 header truncated".into());
            }
            let total = 40 + usize::from(u16::from_be_bytes([h[4], h[5]]));
            if total > h.len() {
                return Err(format!("IPv6 length {total} (frame has {})", h.len()));
            }
            Ok(Ip {
                off,
                v6: true,
                hl: 40,
                total,
                proto: h[6],
                ttl: h[7],
                frag: h[6] == 44,
                csum_ok: true,
            })
        }
        v => Err(format!("IP version {v:?}")),
    }
}

fn pseudo(f: &[u8], ip: &Ip, len: usize) -> u32 {
    let h = &f[ip.off..];
    let addrs = if ip.v6 { &h[8..40] } else { &h[12..20] };
    let mut ph = addrs.to_vec();
    ph.extend_from_slice(&(len as u32).to_be_bytes());
    ph.extend_from_slice(&[0, 0, 0, ip.proto]);
    frames::sum16(&ph, 0)
}

/// Does the TCP/UDP/ICMP checksum of the IP packet verify? None when there is none to check.
fn l4_ok(f: &[u8], ip: &Ip) -> Option<bool> {
    if ip.frag {
        return None;
    }
    let seg = &f[ip.off + ip.hl..ip.off + ip.total];
    let ok = |acc: u32| Some(frames::sum16(seg, acc) == 0xffff);
    match ip.proto {
        TCP if seg.len() >= 20 => ok(pseudo(f, ip, seg.len())),
        UDP if seg.len() >= 8 && seg[6..8] != [0, 0] => ok(pseudo(f, ip, seg.len())),
        1 if !ip.v6 && seg.len() >= 8 => ok(0),
        58 if ip.v6 && seg.len() >= 8 => ok(pseudo(f, ip, seg.len())),
        _ => None,
    }
}

/// The header checksum of an IPv4 packet quoted in an ICMP error, if there is one whole.
fn quoted_ok(f: &[u8], ip: &Ip) -> Option<bool> {
    if ip.v6 || ip.proto != 1 || ip.frag {
        return None;
    }
    let m = &f[ip.off + ip.hl..ip.off + ip.total];
    if m.len() < 28 || ![3, 11, 12].contains(&m[0]) || m[8] >> 4 != 4 {
        return None;
    }
    let qhl = usize::from(m[8] & 0xf) * 4;
    if qhl < 20 || m.len() < 8 + qhl {
        return None;
    }
    Some(frames::sum16(&m[8..8 + qhl], 0) == 0xffff)
}

/// The innermost IP packet of a frame (through one IPIP / IPv6-in-IP header), strict.
fn inner_of(f: &[u8]) -> Result<(Option<Ip>, Ip), String> {
    if f.len() < 14 {
        return Err("frame shorter than Ethernet".into());
    }
    let ty = u16::from_be_bytes([f[12], f[13]]);
    if ty != frames::ETH_IP4 && ty != frames::ETH_IP6 {
        return Err(format!("ethertype {ty:#06x}"));
    }
    let outer = ip_at(f, 14)?;
    if (ty == frames::ETH_IP6) != outer.v6 {
        return Err("ethertype and IP version differ".into());
    }
    if !matches!(outer.proto, 4 | 41) {
        return Ok((None, outer));
    }
    let inner = ip_at(&f[..outer.off + outer.total], outer.off + outer.hl)?;
    if (outer.proto == 41) != inner.v6 {
        return Err("outer protocol and inner version differ".into());
    }
    if inner.off + inner.total != outer.off + outer.total {
        return Err(format!(
            "inner packet of {} bytes in an outer payload of {}",
            inner.total,
            outer.total - outer.hl
        ));
    }
    Ok((Some(outer), inner))
}

/// Invariant 4 for a frame the program sent or rewrote.
fn well_formed(input: &[u8], out: &[u8], outcome: &str) -> Result<(), String> {
    let (outer, ip) = inner_of(out).map_err(|e| format!("output: {e}"))?;
    if let Some(o) = &outer
        && o.ttl == 0
    {
        return Err("outer TTL / hop limit 0".into());
    }
    // The forwarded transport header lies inside its IP packet.
    let seg = &out[ip.off + ip.hl..ip.off + ip.total];
    if !ip.frag {
        match ip.proto {
            TCP if seg.len() < 20 || usize::from(seg[12] >> 4) * 4 > seg.len() => {
                return Err(format!(
                    "TCP header outside the IP packet ({} bytes of IP payload)",
                    seg.len()
                ));
            }
            UDP if seg.len() < 8 => {
                return Err(format!("UDP header outside the IP packet ({})", seg.len()));
            }
            UDP if !(8..=seg.len())
                .contains(&usize::from(u16::from_be_bytes([seg[4], seg[5]]))) =>
            {
                return Err(format!(
                    "UDP length {} outside 8..={} (the IP payload)",
                    u16::from_be_bytes([seg[4], seg[5]]),
                    seg.len()
                ));
            }
            _ => {}
        }
    }
    if let Some(o) = &outer
        && !o.csum_ok
    {
        return Err("outer IPv4 header checksum".into());
    }
    let in_ip =
        ip_at(input, 14).map_err(|e| format!("forwarded an input with a bad IP header: {e}"))?;
    // The program does not check the IPv4 header checksum (IPVS does not either for DR: the
    // real's kernel drops such packets), it updates it incrementally when it rewrites the
    // header: a header checksum that verified must still verify.
    if in_ip.csum_ok && !ip.csum_ok {
        return Err("IPv4 header checksum verified in the input, not in the output".into());
    }
    if outcome == "too_big" {
        // A new ICMP error of ours.
        return match (ip.csum_ok, l4_ok(out, &ip)) {
            (true, Some(true)) => Ok(()),
            _ => Err("too_big: ICMP or IPv4 header checksum".into()),
        };
    }
    if ip.ttl != in_ip.ttl && ip.ttl.wrapping_add(1) != in_ip.ttl {
        return Err(format!("TTL {} -> {}", in_ip.ttl, ip.ttl));
    }
    if l4_ok(input, &in_ip) == Some(true) && l4_ok(out, &ip) == Some(false) {
        return Err(format!(
            "L4 (proto {}) checksum verified in the input, not in the output",
            ip.proto
        ));
    }
    if quoted_ok(input, &in_ip) == Some(true) && quoted_ok(out, &ip) == Some(false) {
        return Err("quoted IPv4 header checksum broken".into());
    }
    Ok(())
}

/// Offsets of the IP header and L4 header of a frame (lenient: for mutating).
fn offsets(f: &[u8]) -> Option<(usize, bool, usize, u8)> {
    if f.len() < 14 + 20 {
        return None;
    }
    match u16::from_be_bytes([f[12], f[13]]) {
        frames::ETH_IP4 => {
            let hl = usize::from(f[14] & 0xf) * 4;
            Some((14, false, 14 + hl.max(20), f[23]))
        }
        frames::ETH_IP6 if f.len() >= 54 => {
            let next = f[20];
            if next == 44 && f.len() >= 62 {
                Some((14, true, 62, f[54]))
            } else {
                Some((14, true, 54, next))
            }
        }
        _ => None,
    }
}

fn set16(f: &mut [u8], at: usize, v: u16) {
    if at + 2 <= f.len() {
        f[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
}

/// A length value near `actual` or odd.
fn length_value(rng: &mut Rng, actual: usize, frame_len: usize) -> u16 {
    let choices = [
        0,
        1,
        7,
        8,
        19,
        20,
        39,
        40,
        actual.saturating_sub(1),
        actual + 1,
        actual + 7,
        actual.saturating_sub(8),
        frame_len.saturating_sub(14),
        frame_len.saturating_sub(13),
        frame_len,
        0xffff,
        rng.below(0x10000),
    ];
    rng.pick(&choices) as u16
}

/// One mutation; returns its description.
fn mutate(rng: &mut Rng, f: &mut Vec<u8>) -> String {
    let off = offsets(f);
    let len = f.len();
    match rng.below(16) {
        0 | 1 => {
            let at = rng.below(len.min(14 + 60 + 60 + 8));
            let x = rng.byte() | 1;
            f[at] ^= x;
            format!("flip byte {at} ^ {x:#04x}")
        }
        2 => match off {
            Some((ip, false, _, _)) => {
                let v = length_value(rng, len - ip, len);
                set16(f, ip + 2, v);
                format!("IPv4 total length {v}")
            }
            Some((ip, true, _, _)) => {
                let v = length_value(rng, len - ip - 40, len);
                set16(f, ip + 4, v);
                format!("IPv6 payload length {v}")
            }
            None => "none".into(),
        },
        3 => match off {
            Some((ip, false, _, _)) => {
                let v = rng.below(16) as u8;
                f[ip] = (f[ip] & 0xf0) | v;
                format!("IHL {v}")
            }
            _ if len > 14 => {
                let v = rng.byte();
                f[14] = v;
                format!("first IP byte {v:#04x}")
            }
            _ => "none".into(),
        },
        4 => match off {
            Some((_, _, l4, TCP)) if l4 + 13 <= len => {
                let v = rng.below(16) as u8;
                f[l4 + 12] = (f[l4 + 12] & 0x0f) | (v << 4);
                format!("TCP data offset {v}")
            }
            Some((_, _, l4, UDP)) if l4 + 6 <= len => {
                let v = length_value(rng, len - l4, len);
                set16(f, l4 + 4, v);
                format!("UDP length {v}")
            }
            _ => "none".into(),
        },
        5 | 6 => {
            let end = match off {
                Some((_, _, l4, _)) => (l4 + 28).min(len),
                None => len,
            };
            let at = 14 + rng.below(end.saturating_sub(14).max(1));
            f.truncate(at.max(14));
            format!("truncate at {at}")
        }
        7 => {
            let n = 1 + rng.below(80);
            for _ in 0..n {
                f.push(rng.byte());
            }
            format!("append {n} junk bytes")
        }
        8 => match off {
            Some((ip, false, _, _)) => {
                let v = rng.pick(&[0x2000u16, 0x0001, 0x1fff, 0x8000, 0x6000, 0x2001, 0]);
                let v = if v == 0 { rng.next() as u16 } else { v };
                set16(f, ip + 6, v);
                format!("IPv4 flags/offset {v:#06x}")
            }
            Some((ip, true, _, _)) if len >= 54 => {
                let next = f[ip + 6];
                let r = rng.next() as u16;
                let fo = rng.pick(&[0u16, 1, 8, 0xfff9, r]);
                let mut fh = vec![next, 0];
                fh.extend_from_slice(&fo.to_be_bytes());
                fh.extend_from_slice(&[0, 0, 0, 9]);
                f.splice(ip + 40..ip + 40, fh);
                f[ip + 6] = 44;
                let pl = u16::from_be_bytes([f[ip + 4], f[ip + 5]]).wrapping_add(8);
                set16(f, ip + 4, pl);
                format!("IPv6 fragment header, offset/M {fo:#06x}")
            }
            _ => "none".into(),
        },
        9 => match off {
            Some((ip, v6, _, _)) => {
                let r = rng.byte();
                let p = rng.pick(&[6u8, 17, 1, 58, 4, 41, 44, 0, 43, 60, 132, 255, r]);
                f[if v6 { ip + 6 } else { ip + 9 }] = p;
                format!("protocol {p}")
            }
            None => "none".into(),
        },
        10 => {
            let ty = u16::from_be_bytes([f[12], f[13]]);
            match rng.below(4) {
                0 => {
                    let t = rng.next() as u16;
                    set16(f, 12, t);
                    format!("ethertype {t:#06x}")
                }
                1 => {
                    let other = if ty == frames::ETH_IP4 {
                        frames::ETH_IP6
                    } else {
                        frames::ETH_IP4
                    };
                    set16(f, 12, other);
                    format!("ethertype {other:#06x}")
                }
                t => {
                    let tpid = if t == 2 { 0x8100u16 } else { 0x88a8 };
                    let mut tag = tpid.to_be_bytes().to_vec();
                    tag.extend_from_slice(&(rng.next() as u16 & 0x0fff).to_be_bytes());
                    f.splice(12..12, tag);
                    format!("VLAN tag {tpid:#06x}")
                }
            }
        }
        11 => match off {
            Some((ip, _, _, _)) => {
                let v = rng.byte() & 0xf0;
                f[ip] = v | (f[ip] & 0x0f);
                format!("IP version nibble {:#x}", v >> 4)
            }
            None => "none".into(),
        },
        12 => match off {
            Some((_, _, l4, TCP)) if l4 + 14 <= len => {
                let v = rng.byte();
                f[l4 + 13] = v;
                format!("TCP flags {v:#04x}")
            }
            _ => "none".into(),
        },
        13 => match off {
            Some((_, _, l4, p)) if (p == TCP || p == UDP) && l4 + 4 <= len => {
                let r = rng.next() as u16;
                let port = rng.pick(&[80u16, 53, 8080, 5353, 0, r]);
                let at = l4 + 2 * rng.below(2);
                set16(f, at, port);
                format!("port at {at} = {port}")
            }
            _ => "none".into(),
        },
        14 => match off {
            // Inside an ICMP error: the quoted header's bytes.
            Some((_, _, l4, p)) if (p == 1 || p == 58) && l4 + 9 <= len => {
                let q = l4 + 8;
                let at = q + rng.below((len - q).min(48));
                let x = rng.byte() | 1;
                f[at] ^= x;
                format!("quoted byte {at} ^ {x:#04x}")
            }
            _ => "none".into(),
        },
        _ => {
            // TTL / hop limit edge values.
            match off {
                Some((ip, v6, _, _)) => {
                    let v = rng.pick(&[0u8, 1, 255]);
                    f[if v6 { ip + 7 } else { ip + 8 }] = v;
                    format!("TTL {v}")
                }
                None => "none".into(),
            }
        }
    }
}

/// Make the IPv4 header checksum and the L4 checksum right again where they can be found.
fn fix_checksums(f: &mut [u8]) {
    let Some((ip, v6, _, _)) = offsets(f) else {
        return;
    };
    if f[ip] >> 4 != if v6 { 6 } else { 4 } {
        return;
    }
    let total = if v6 {
        40 + usize::from(u16::from_be_bytes([f[ip + 4], f[ip + 5]]))
    } else {
        let hl = usize::from(f[ip] & 0xf) * 4;
        if hl < 20 || f.len() < ip + hl {
            return;
        }
        f[ip + 10] = 0;
        f[ip + 11] = 0;
        let c = frames::csum(&f[ip..ip + hl]);
        f[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
        usize::from(u16::from_be_bytes([f[ip + 2], f[ip + 3]]))
    };
    if ip + total > f.len() {
        return;
    }
    let Ok(h) = ip_at(f, ip) else { return };
    if h.frag || h.total < h.hl + 8 {
        return;
    }
    let pkt = &mut f[ip..ip + total];
    match h.proto {
        TCP if h.total >= h.hl + 20 => fix_l4(pkt),
        UDP => fix_l4(pkt),
        1 | 58 => {
            let l4 = h.hl;
            pkt[l4 + 2] = 0;
            pkt[l4 + 3] = 0;
            let acc = if v6 {
                pseudo(
                    pkt,
                    &Ip {
                        off: 0,
                        ..h.clone()
                    },
                    total - l4,
                )
            } else {
                0
            };
            let c = !(frames::sum16(&pkt[l4..], acc) as u16);
            pkt[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
        }
        _ => {}
    }
}

/// Run one frame and check the invariants; Err describes the violation.
fn check_one(lab: &Lab, input: &[u8]) -> Result<(u32, &'static str), String> {
    let before = lab.b.outcomes().unwrap();
    let (action, out) = lab
        .b
        .test_run(input)
        .map_err(|e| format!("BPF_PROG_TEST_RUN: {e}"))?;
    let after = lab.b.outcomes().unwrap();
    let grown: u64 = after.iter().sum::<u64>() - before.iter().sum::<u64>();
    let moved: Vec<usize> = (0..after.len())
        .filter(|i| after[*i] != before[*i])
        .collect();
    if grown != 1 || moved.len() != 1 {
        return Err(format!(
            "outcome counters grew by {grown} in total, moved: {:?}",
            moved
                .iter()
                .map(|i| (abi::outcome_name(*i as u32), after[*i] - before[*i]))
                .collect::<Vec<_>>()
        ));
    }
    let outcome = abi::outcome_name(moved[0] as u32).unwrap_or("?");
    let fail = |what: String| {
        Err(format!(
            "action {action} outcome {outcome}: {what}\n   output {}",
            hex(&out)
        ))
    };
    match action {
        XDP_PASS if REWRITTEN_PASS.contains(&outcome) => {
            if let Err(e) = well_formed(input, &out, outcome) {
                return fail(e);
            }
        }
        XDP_PASS => {
            if out != input {
                return fail("passed to the kernel modified".into());
            }
        }
        XDP_DROP => {
            if !DROP_REASONS.contains(&outcome) {
                return fail("dropped without a reason".into());
            }
        }
        XDP_TX | XDP_REDIRECT => {
            if let Err(e) = well_formed(input, &out, outcome) {
                return fail(e);
            }
        }
        a => return fail(format!("unexpected action {a}")),
    }
    Ok((action, outcome))
}

/// The two faults the generator found, as fixed cases (frames past the IP packet's end).
fn regressions(lab: &Lab) {
    // NAT v4 TCP: the IPv4 total length ends 12 bytes into the TCP header, the rest of the
    // header follows in the frame. It was rewritten and sent (ports and checksum written past
    // the packet); it is malformed.
    let s = lab.svc(10);
    let c = client(false, 50010);
    let mut f = from_client(c, s.vip, TCP, &seg(TCP, ACK, b""));
    set16(&mut f, 14 + 2, 20 + 12);
    let f = with_ip4_csum(&f);
    assert_eq!(
        check_one(lab, &f),
        Ok((XDP_PASS, "malformed")),
        "TCP header past the IPv4 total length\n   input {}",
        hex(&f)
    );
    // FULLNAT v4: ICMP error from the client side quoting IP + 8 bytes of a tracked flow, 12
    // bytes of padding after it. The quoted TCP checksum "in" the padding was rewritten and the
    // ICMP checksum adjusted for it, so the ICMP checksum was wrong.
    let s = lab.svc(14);
    let c = client(false, 50014);
    let quoted = ip_packet(s.vip, c, TCP, &seg(TCP, ACK, b"data"));
    let mut f = icmp_frame(
        DIR_MAC,
        CLIENT_MAC,
        v4(192, 168, 1, 1),
        s.vip.ip(),
        &quoted,
        28,
    );
    let padding = [0xa5u8; 12];
    f.extend_from_slice(&padding);
    let (action, out) = lab.b.test_run(&f).unwrap();
    assert_eq!(action, XDP_TX, "ICMP error quoting IP+8, padded");
    let ip = ip_at(&out, 14).unwrap();
    assert_eq!(
        l4_ok(&out, &ip),
        Some(true),
        "ICMP checksum after rewriting a quote of IP+8 in a padded frame\n   input  {}\n   output {}",
        hex(&f),
        hex(&out)
    );
    assert_eq!(out[out.len() - 12..], padding, "padding untouched");
}

/// Every base frame that is a UDP datagram (not a fragment), with its UDP length field below 8
/// or beyond the IP payload: passed untouched as `malformed` (DR, TUN, NAT, FULLNAT services,
/// v4 and v6, and replies of tracked NAT/FULLNAT flows). How many frames were checked.
fn udp_lengths(lab: &Lab, bases: &[Base]) -> usize {
    let mut checked = 0;
    for b in bases {
        let Some((ip, v6, l4, UDP)) = offsets(&b.frame) else {
            continue;
        };
        if v6 && b.frame[ip + 6] != UDP {
            continue; // a fragment header
        }
        let payload = b.frame.len() - l4;
        for len in [0, 1, 7, payload + 1, 0xffff] {
            let mut f = b.frame.clone();
            set16(&mut f, l4 + 4, len as u16);
            assert_eq!(
                check_one(lab, &f),
                Ok((XDP_PASS, "malformed")),
                "{}: UDP length {len} of {payload}\n   input {}",
                b.name,
                hex(&f)
            );
            checked += 1;
        }
    }
    checked
}

/// `f` with its IPv4 header checksum recomputed.
fn with_ip4_csum(f: &[u8]) -> Vec<u8> {
    let mut f = f.to_vec();
    let hl = usize::from(f[14] & 0xf) * 4;
    f[24] = 0;
    f[25] = 0;
    let c = frames::csum(&f[14..14 + hl]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

fn own_netns() {
    // SAFETY: unshare only changes this thread's network namespace.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNET): {}",
        std::io::Error::last_os_error()
    );
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn mutated_frames() {
    if skip_unless_root() {
        return;
    }
    own_netns();
    let seed = env_u64("RVS_FUZZ_SEED", 0x5eed_2026);
    let runs = env_u64("RVS_FUZZ_RUNS", 12000) as usize;
    let started = Instant::now();
    let mut lab = Lab::new();
    setup(&mut lab);
    let bases = bases(&mut lab);
    regressions(&lab);
    let udp = udp_lengths(&lab, &bases);
    assert!(udp >= 40, "only {udp} UDP length cases");
    println!("seed {seed:#x}, {} base frames, {runs} runs", bases.len());
    let mut rng = Rng(seed);
    let mut failures: Vec<String> = vec![];
    let mut kinds = std::collections::BTreeSet::new();
    let mut kind_counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen: BTreeMap<(u32, &str), usize> = BTreeMap::new();
    for i in 0..runs {
        let b = &bases[i % bases.len()];
        let mut f = b.frame.clone();
        let mut muts = vec![];
        // Every eighth run is the valid frame itself: it keeps the tracked flows alive and
        // checks the invariants on the good paths too.
        if i % 8 != 0 {
            for _ in 0..1 + rng.below(3) {
                muts.push(mutate(&mut rng, &mut f));
            }
            if rng.below(2) == 0 {
                fix_checksums(&mut f);
                muts.push("checksums fixed".into());
            }
        }
        if f.len() < 14 {
            f.resize(14, 0);
        }
        match check_one(&lab, &f) {
            Ok((action, outcome)) => *seen.entry((action, outcome)).or_default() += 1,
            Err(e) => {
                let kind = e.lines().next().unwrap_or("").to_string();
                *kind_counts.entry(kind.clone()).or_insert(0usize) += 1;
                if kinds.insert(kind) || failures.len() < 5 {
                    failures.push(format!(
                        "seed {seed:#x} run {i}: base \"{}\", mutations {muts:?}\n   {e}\n   input  {}",
                        b.name,
                        hex(&f)
                    ));
                }
            }
        }
    }
    println!("(action, outcome) counts: {seen:?}");
    println!("{runs} runs in {:?}", started.elapsed());
    if !failures.is_empty() {
        for f in failures.iter().take(20) {
            eprintln!("FAIL {f}\n");
        }
        eprintln!("violations by kind: {kind_counts:#?}");
        panic!(
            "{} invariant violations (first listed above)",
            failures.len()
        );
    }
    // The generator reached the interesting paths, not only the parser.
    for want in [
        "forwarded",
        "nat_forwarded",
        "nat_reply",
        "icmp_forwarded",
        "malformed",
    ] {
        assert!(
            seen.keys().any(|(_, o)| *o == want),
            "no run ended as {want}: {seen:?}"
        );
    }
}
