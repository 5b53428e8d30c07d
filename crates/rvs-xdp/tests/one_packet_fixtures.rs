//! Packet fixtures for one-packet scheduling (ipvsadm `-o`, `RVS_SVC_F_ONE_PACKET`): a UDP
//! datagram to a `-o` service whose real is DR or TUN is scheduled on its own — the client's
//! live persistence template, else the Maglev slot of the datagram's 5-tuple, the real a
//! normal new UDP flow gets — makes no connection entry, follows none (one made before the
//! service became `-o`: the real carries `RVS_REAL_F_ONE_PACKET`), and counts as a connection
//! (conns + 1) for the service and the real, as IPVS counts it. TCP, and NAT reals, keep
//! connection entries.
//!
//! The service and real entries are written as the engine writes them for a `-o` UDP service
//! (`state::service_abi`, `state::one_packet_real`). Same runner as `fixtures.rs` (action,
//! output frame byte for byte, the one outcome counter moved). Needs root; skips otherwise.

mod common;

use common::frames::{ACK, SYN, TCP, UDP};
use common::lab::*;
use rvs_xdp::abi::{self, Counters, addr_of};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

const DR: u8 = abi::RVS_METHOD_DR as u8;
const TUN: u8 = abi::RVS_METHOD_TUN as u8;
const NAT: u8 = abi::RVS_METHOD_NAT as u8;

const DR4: u32 = 0;
const DR6: u32 = 1;
const TUN4: u32 = 2;
const TUN6: u32 = 3;
/// v4 DR, persistent 300 s per /24.
const PERSIST4: u32 = 4;
/// v6 TUN, persistent 300 s per /64.
const PERSIST6: u32 = 5;
/// v4 DR, TCP, with the one-packet flag (which the engine never sets for TCP).
const TCP4: u32 = 6;
/// v4 NAT, UDP, one-packet.
const NAT4: u32 = 7;

const PAYLOAD: &[u8] =
    b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x03com\x00";

fn v4(c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, c, d))
}
fn v6(net: u16, last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0xfd00, net, 0, 0, 0, 0, 0, last))
}
fn client(is_v6: bool, host: u8, port: u16) -> SocketAddr {
    if is_v6 {
        SocketAddr::new(v6(0xc, host as u16), port)
    } else {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 168, 1, host)), port)
    }
}

/// (index, VIP, protocol, real indexes, persistence (timeout s, prefix)).
type ServiceRow = (u32, SocketAddr, u8, &'static [u32], Option<(u32, u8)>);

const SERVICES: [ServiceRow; 8] = [
    (DR4, sa4(3), UDP, &[0, 1, 2], None),
    (DR6, sa6(3), UDP, &[3, 4], None),
    (TUN4, sa4(4), UDP, &[5, 6], None),
    (TUN6, sa6(4), UDP, &[7, 8], None),
    (PERSIST4, sa4(5), UDP, &[10, 11, 12], Some((300, 24))),
    (PERSIST6, sa6(5), UDP, &[13, 14], Some((300, 64))),
    (TCP4, sa4(6), TCP, &[15, 16], None),
    (NAT4, sa4(11), UDP, &[9], None),
];

const fn sa4(last: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)), 53)
}
const fn sa6(last: u16) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, last)),
        53,
    )
}

fn setup() -> Lab {
    let mut lab = Lab::new();
    let reals: [(u32, IpAddr, u8); 17] = [
        (0, v4(0, 7), DR),
        (1, v4(0, 8), DR),
        (2, v4(0, 9), DR),
        (3, v6(0, 7), DR),
        (4, v6(0, 8), DR),
        (5, v4(1, 7), TUN),
        (6, v4(1, 8), TUN),
        (7, v6(1, 7), TUN),
        (8, v6(1, 8), TUN),
        (9, v4(2, 7), NAT),
        (10, v4(0, 17), DR),
        (11, v4(0, 18), DR),
        (12, v4(0, 19), DR),
        (13, v6(1, 17), TUN),
        (14, v6(1, 18), TUN),
        (15, v4(0, 27), DR),
        (16, v4(0, 28), DR),
    ];
    for (i, ip, method) in reals {
        lab.add_real(i, ip, [0x02, 0, 0, 0, 0, 0x40 + i as u8], method);
    }
    for (index, vip, proto, reals, persist) in SERVICES {
        let weights: Vec<(u32, u32)> = reals.iter().map(|r| (*r, 1)).collect();
        lab.add_service(index, vip, proto, &weights, persist);
    }
    lab
}

fn row(svc: u32) -> ServiceRow {
    SERVICES[svc as usize]
}

/// Turn one-packet scheduling of `svc` on or off as the engine does (EditService): the flag in
/// the service entry, and RVS_REAL_F_ONE_PACKET on its DR/TUN reals of a UDP service.
fn set_one_packet(lab: &mut Lab, svc: u32, on: bool) {
    let (index, vip, proto, reals, persist) = row(svc);
    let (key, mut value) = lab.service_entry(index, vip, proto, reals, persist);
    if on {
        value.flags |= abi::RVS_SVC_F_ONE_PACKET as u32;
    }
    lab.b.set_service(&key, &value).unwrap();
    for r in reals {
        write_real(lab, *r, on && proto == UDP, false);
    }
}

/// Rewrite real `idx`'s entry with the one-packet and down flags given.
fn write_real(lab: &mut Lab, idx: u32, one_packet: bool, down: bool) {
    let method = lab.real(idx).method;
    let mut flags = 0;
    if one_packet && (method == DR || method == TUN) {
        flags |= abi::RVS_REAL_F_ONE_PACKET as u8;
    }
    if down {
        flags |= abi::RVS_REAL_F_DOWN as u8;
    }
    lab.set_real_flags(idx, flags);
}

fn counters(lab: &Lab, slot: u32) -> Counters {
    lab.b.counters(slot).unwrap()
}

fn real_slot(idx: u32) -> u32 {
    abi::RVS_MAX_SERVICES as u32 + idx
}

/// Entries of service `svc` in the connection table.
fn entries_of(lab: &Lab, svc: u32) -> usize {
    let conns = lab.b.conns().unwrap();
    conns.iter().filter(|(_, c)| c.svc == svc).count()
}

/// Send one datagram from `c` to `svc`; it must be forwarded to `want` and count as one
/// connection, one packet and its bytes for the service and for `want`.
fn datagram(lab: &mut Lab, desc: &str, svc: u32, c: SocketAddr, want: u32) {
    let input = lab.client_packet(svc, c, 0, PAYLOAD);
    let l3 = (input.len() - 14) as u64;
    let before = [counters(lab, svc), counters(lab, real_slot(want))];
    let f = fwd(lab, format!("{desc}: {c} -> real {want}"), input, want);
    lab.run(f);
    let after = [counters(lab, svc), counters(lab, real_slot(want))];
    for (what, b, a) in [
        ("service", before[0], after[0]),
        ("real", before[1], after[1]),
    ] {
        assert_eq!(
            a.conns - b.conns,
            1,
            "{desc}: {what} conns + 1 per datagram"
        );
        assert_eq!(a.packets - b.packets, 1, "{desc}: {what} packets");
        assert_eq!(a.bytes - b.bytes, l3, "{desc}: {what} bytes");
    }
}

/// (description, service, v6 client).
const DIRECT: [(&str, u32, bool); 4] = [
    ("v4 DR", DR4, false),
    ("v6 DR", DR6, true),
    ("v4 TUN", TUN4, false),
    ("v6 TUN", TUN6, true),
];

/// Consecutive datagrams from one client port each go to the Maglev real of their 5-tuple and
/// count a connection; no entry is made; different source ports spread over the reals.
#[test]
fn datagrams_are_scheduled_one_by_one_without_entries() {
    if skip_unless_root() {
        return;
    }
    let mut lab = setup();
    for (desc, svc, is_v6) in DIRECT {
        set_one_packet(&mut lab, svc, true);
        let c = client(is_v6, 10, 40000);
        let want = lab.maglev_real(svc, c);
        for n in 0..3 {
            datagram(&mut lab, &format!("{desc}, datagram {n}"), svc, c, want);
        }
        let mut reals = BTreeSet::new();
        for port in 41000..41024u16 {
            let c = client(is_v6, 10, port);
            let want = lab.maglev_real(svc, c);
            datagram(&mut lab, desc, svc, c, want);
            reals.insert(want);
        }
        assert!(reals.len() > 1, "{desc}: 24 client ports all on {reals:?}");
        assert_eq!(entries_of(&lab, svc), 0, "{desc}: connection entries made");
    }
    assert!(
        lab.b.conns().unwrap().is_empty(),
        "connection table not empty"
    );
}

/// An entry made for the tuple before the service became `-o` (here naming another real than
/// the Maglev pick, as after a table change) is followed until then and not after.
#[test]
fn an_entry_from_before_the_flag_is_not_followed() {
    if skip_unless_root() {
        return;
    }
    let mut lab = setup();
    for (desc, svc, is_v6) in DIRECT {
        let c = client(is_v6, 20, 42000);
        let want = lab.maglev_real(svc, c);
        let input = lab.client_packet(svc, c, 0, PAYLOAD);
        let f = fwd(
            &lab,
            format!("{desc}: before -o, new flow"),
            input.clone(),
            want,
        );
        lab.run(f);
        let key = flow_key(&lab, svc, c);
        let mut entry = conn_of(&lab, svc, c).expect("a datagram before -o makes an entry");
        let other = row(svc).3.iter().copied().find(|r| *r != want).unwrap();
        entry.real = other;
        lab.b.insert_conn(&key, &entry).unwrap();
        let f = fwd(
            &lab,
            format!("{desc}: before -o, entry followed"),
            input,
            other,
        );
        lab.run(f);
        set_one_packet(&mut lab, svc, true);
        let stale = counters(&lab, real_slot(other));
        datagram(&mut lab, &format!("{desc}: -o, stale entry"), svc, c, want);
        assert_eq!(
            counters(&lab, real_slot(other)),
            stale,
            "{desc}: entry's real"
        );
        let now = conn_of(&lab, svc, c).expect("the stale entry stays until it expires");
        assert_eq!(
            (now.real, now.last_ns),
            (other, entry.last_ns),
            "{desc}: entry touched"
        );
        assert_eq!(entries_of(&lab, svc), 1, "{desc}: entries");
    }
}

/// The real a client's template names, and when it was last used.
fn template(lab: &Lab, svc: u32, c: SocketAddr, prefix: u8) -> Option<(u32, u64)> {
    let mut addr = addr_of(c.ip()).0;
    for (i, w) in addr.iter_mut().enumerate() {
        let bits = prefix as i32 - 32 * i as i32;
        let mask = match bits {
            b if b >= 32 => u32::MAX,
            b if b <= 0 => 0,
            b => u32::MAX << (32 - b),
        };
        *w &= mask.to_be();
    }
    lab.b
        .persist_templates()
        .unwrap()
        .into_iter()
        .find(|(k, _)| k.svc == svc && k.addr == addr)
        .map(|(_, p)| (p.real, p.last_ns))
}

/// With persistence, as IPVS's ip_vs_sched_persist for a one-packet datagram: the first
/// datagram makes the client's template, later ones (other ports, whose Maglev pick differs)
/// follow and refresh it; a template naming a down real is not followed but rebound to the
/// Maglev pick. Never a connection entry.
#[test]
fn persistence_templates_are_followed_and_refreshed() {
    if skip_unless_root() {
        return;
    }
    let mut lab = setup();
    for (desc, svc, is_v6, prefix) in [
        ("v4 DR /24", PERSIST4, false, 24),
        ("v6 TUN /64", PERSIST6, true, 64),
    ] {
        set_one_packet(&mut lab, svc, true);
        let first = client(is_v6, 30, 43000);
        let bound = lab.maglev_real(svc, first);
        datagram(&mut lab, &format!("{desc}: first"), svc, first, bound);
        let (real, mut last) = template(&lab, svc, first, prefix).expect("template made");
        assert_eq!(real, bound, "{desc}: template");
        // Same client network, other hosts' and ports' datagrams whose Maglev pick differs.
        let mut elsewhere = 0;
        for port in 43001..43013u16 {
            std::thread::sleep(Duration::from_millis(15));
            let c = client(is_v6, 31 + (port % 3) as u8, port);
            elsewhere += usize::from(lab.maglev_real(svc, c) != bound);
            datagram(&mut lab, &format!("{desc}: template"), svc, c, bound);
            let (real, used) = template(&lab, svc, c, prefix).expect("template kept");
            assert_eq!(real, bound, "{desc}: template rebound");
            assert!(
                used > last,
                "{desc}: template not refreshed ({used} <= {last})"
            );
            last = used;
        }
        assert!(
            elsewhere > 0,
            "{desc}: every port hashed to the template's real"
        );
        // The template's real goes down (health): the engine flags it and takes it out of
        // the Maglev table; the next datagram gets the Maglev pick, which the template takes.
        write_real(&mut lab, bound, true, true);
        let rest: Vec<(u32, u32)> = row(svc)
            .3
            .iter()
            .filter(|r| **r != bound)
            .map(|r| (*r, 1))
            .collect();
        lab.set_weights(svc, &rest);
        let c = client(is_v6, 30, 43100);
        let want = lab.maglev_real(svc, c);
        assert_ne!(want, bound);
        datagram(
            &mut lab,
            &format!("{desc}: template's real down"),
            svc,
            c,
            want,
        );
        assert_eq!(
            template(&lab, svc, c, prefix).map(|t| t.0),
            Some(want),
            "{desc}: rebound"
        );
        assert_eq!(entries_of(&lab, svc), 0, "{desc}: connection entries made");
    }
}

/// TCP ignores the flag (IPVS: one-packet scheduling is for UDP): a SYN makes an entry that
/// the next segment follows. A NAT real of a `-o` UDP service keeps entries (replies need them).
#[test]
fn tcp_and_nat_keep_entries() {
    if skip_unless_root() {
        return;
    }
    let mut lab = setup();
    set_one_packet(&mut lab, TCP4, true);
    let c = client(false, 40, 44000);
    let want = lab.maglev_real(TCP4, c);
    let syn = lab.client_packet(TCP4, c, SYN, b"");
    let f = fwd(&lab, format!("TCP -o SYN {c}"), syn, want);
    lab.run(f);
    let entry = conn_of(&lab, TCP4, c).expect("TCP to a -o service makes an entry");
    assert_eq!(entry.real, want);
    let ack = lab.client_packet(TCP4, c, ACK, b"x");
    let conns = counters(&lab, TCP4).conns;
    let f = fwd(&lab, format!("TCP -o ACK {c}"), ack, want);
    lab.run(f);
    assert_eq!(
        counters(&lab, TCP4).conns,
        conns,
        "an established segment is no connection"
    );

    set_one_packet(&mut lab, NAT4, true);
    for port in [44100u16, 44101] {
        let c = client(false, 41, port);
        let input = lab.client_packet(NAT4, c, 0, PAYLOAD);
        let (action, _) = lab.b.test_run(&input).unwrap();
        assert_ne!(action, XDP_DROP, "NAT -o datagram from {c} dropped");
        let entry = conn_of(&lab, NAT4, c).expect("a NAT -o datagram makes an entry");
        assert_eq!(entry.real, 9);
    }
    assert_eq!(entries_of(&lab, NAT4), 2);
}
