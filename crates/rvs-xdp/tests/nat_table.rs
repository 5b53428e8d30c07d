//! NAT/FULLNAT flows in a connection table of their own (`rvs_nat_conns`), through
//! BPF_PROG_TEST_RUN: a flood of DR flows that fills the DR/TUN table (`rvs_conns`, made small
//! here) leaves a live FULLNAT flow its entry and local port; a full NAT table drops new flows
//! as `table_full` and leaves no reverse entry behind; the sweep reclaims expired NAT entries
//! and their reverse entries; a service mixing a DR and a NAT real finds the flows of each.
//!
//! Runs in a network namespace of its own (as `fixtures_nat`): no route, so packets to a real
//! go out again to its MAC (XDP_TX) and replies to the kernel rewritten (XDP_PASS). Needs
//! root; skips otherwise.

mod common;
mod nat_support;

use common::frames::{ACK, SYN, TCP};
use common::lab::*;
use nat_support::*;
use rvs_xdp::Balancer;
use rvs_xdp::abi::{self, Config, Conn, FlowKey};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

const DR: u8 = abi::RVS_METHOD_DR as u8;
const NAT: u8 = abi::RVS_METHOD_NAT as u8;
const FNAT: u8 = abi::RVS_METHOD_FULLNAT as u8;
/// Entries of the DR/TUN table in these tests.
const DR_TABLE: u32 = 64;

fn v4(c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, c, d))
}
fn client(i: u32, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0xc0a8_0000 + i)), port)
}

/// Services: 0 = 10.0.0.3:80 DR (real 0), 1 = 10.0.0.4:81 FULLNAT (real 1, local address
/// 10.0.3.1), 2 = 10.0.0.5:82 DR real 0 and NAT real 2 mixed, 3 = 10.0.0.6:83 NAT (real 2).
fn lab(nat_conns: u32) -> Lab {
    let mut lab = Lab::with_balancer(Balancer::load_tables(DR_TABLE, nat_conns).expect("load"));
    lab.add_real(0, v4(2, 7), mac(0x07), DR);
    lab.add_real(1, v4(3, 7), mac(0x17), FNAT);
    lab.add_real(2, v4(3, 8), mac(0x18), NAT);
    lab.add_service(0, SocketAddr::new(v4(0, 3), 80), TCP, &[(0, 1)], None);
    lab.add_service(1, SocketAddr::new(v4(0, 4), 81), TCP, &[(1, 1)], None);
    lab.add_service(
        2,
        SocketAddr::new(v4(0, 5), 82),
        TCP,
        &[(0, 1), (2, 1)],
        None,
    );
    lab.add_service(3, SocketAddr::new(v4(0, 6), 83), TCP, &[(2, 1)], None);
    lab.b.set_fnat_pool(1, &[v4(3, 1)]).unwrap();
    lab
}

/// Run `input`: the action, the outcome counters that moved, and the output frame.
fn run(lab: &Lab, input: &[u8]) -> (u32, Vec<&'static str>, Vec<u8>) {
    let before = lab.b.outcomes().unwrap();
    let (action, out) = lab.b.test_run(input).unwrap();
    let after = lab.b.outcomes().unwrap();
    let moved = (0..after.len())
        .filter(|i| after[*i] != before[*i])
        .map(|i| abi::outcome_name(i as u32).unwrap_or("?"))
        .collect();
    (action, moved, out)
}

/// A client segment to service `svc`: the action, outcomes moved and output frame.
fn send(lab: &Lab, svc: u32, c: SocketAddr, flags: u8) -> (u32, Vec<&'static str>, Vec<u8>) {
    let vip = lab.svc(svc).vip;
    run(lab, &from_client(c, vip, TCP, &seg(TCP, flags, b"")))
}

/// Source address and port of an IPv4 TCP frame.
fn source(frame: &[u8]) -> SocketAddr {
    let ip: [u8; 4] = frame[26..30].try_into().unwrap();
    SocketAddr::new(IpAddr::from(ip), u16::from_be_bytes([frame[34], frame[35]]))
}

/// Destination address of an IPv4 frame.
fn dest_ip(frame: &[u8]) -> IpAddr {
    let ip: [u8; 4] = frame[30..34].try_into().unwrap();
    IpAddr::from(ip)
}

fn nat_entry(lab: &Lab, key: &FlowKey) -> Option<Conn> {
    let all = lab.b.nat_conns().unwrap();
    all.into_iter().find(|(k, _)| k == key).map(|(_, c)| c)
}

/// Entries of the DR/TUN table (every entry less the NAT table's).
fn dr_entries(lab: &Lab) -> Vec<FlowKey> {
    let nat: Vec<FlowKey> = lab
        .b
        .nat_conns()
        .unwrap()
        .into_iter()
        .map(|e| e.0)
        .collect();
    let all = lab.b.conns().unwrap().into_iter().map(|e| e.0);
    all.filter(|k| !nat.contains(k)).collect()
}

fn own_netns() -> bool {
    if skip_unless_root() {
        return false;
    }
    // SAFETY: unshare only changes this thread's network namespace.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
    true
}

#[test]
fn a_dr_flood_leaves_a_fullnat_flow_its_entry_and_local_port() {
    if !own_netns() {
        return;
    }
    let lab = lab(1024);
    let c = client(1, 40000);
    let key = flow(c, lab.svc(1).vip, TCP);
    let (action, moved, out) = send(&lab, 1, c, SYN);
    assert_eq!((action, moved), (XDP_TX, vec!["nat_forwarded"]));
    let local = source(&out);
    assert_eq!(local.ip(), v4(3, 1), "FULLNAT source is the local address");
    // Four times as many DR flows as the DR/TUN table holds.
    for i in 0..4 * DR_TABLE {
        let (action, moved, _) = send(&lab, 0, client(1000 + i, 5000), SYN);
        assert_eq!((action, moved), (XDP_TX, vec!["forwarded"]), "DR SYN {i}");
    }
    let dr = dr_entries(&lab);
    assert!(
        dr.len() as u32 <= DR_TABLE && dr.len() as u32 > DR_TABLE / 2,
        "the DR/TUN table is full: {}",
        dr.len()
    );
    // The flow goes on: its next packet leaves from the same local address and port, no new
    // connection counted, and the real's reply finds the flow's entry.
    let conns = lab.b.counters(1).unwrap().conns;
    let (action, moved, out) = send(&lab, 1, c, ACK);
    assert_eq!((action, moved), (XDP_TX, vec!["nat_forwarded"]));
    assert_eq!(source(&out), local, "same local port after the flood");
    assert_eq!(
        lab.b.counters(1).unwrap().conns,
        conns,
        "not scheduled afresh"
    );
    assert!(nat_entry(&lab, &key).is_some(), "the FULLNAT entry stayed");
    assert_eq!(local_of(&lab, &key), Some(local));
    let real = SocketAddr::new(v4(3, 7), 81);
    let reply = frame(DIR_MAC, mac(0x17), real, local, TCP, &seg(TCP, ACK, b"r"));
    let (action, moved, _) = run(&lab, &reply);
    assert_eq!((action, moved), (XDP_PASS, vec!["nat_reply"]));
}

#[test]
fn a_full_nat_table_drops_new_flows_as_table_full_and_leaves_nothing_behind() {
    if !own_netns() {
        return;
    }
    let mut lab = lab(4);
    // The connection table full while the reverse table has room: the reverse entry (the
    // FULLNAT local port) just made is taken back.
    let others: Vec<FlowKey> = (0..4)
        .map(|i| flow(client(500 + i, 1), lab.svc(3).vip, TCP))
        .collect();
    let live = Conn {
        real: 2,
        svc: 3,
        state: abi::RVS_STATE_ESTABLISHED as u8,
        method: NAT,
        last_ns: rvs_xdp::engine::monotonic_ns(),
        ..Default::default()
    };
    for k in &others {
        lab.b.insert_nat_conn(k, &live).unwrap();
    }
    for (svc, what) in [(1, "FULLNAT"), (3, "NAT")] {
        let (action, moved, _) = send(&lab, svc, client(2, 41000), SYN);
        assert_eq!(
            (action, moved),
            (XDP_DROP, vec!["table_full"]),
            "{what}: NAT connection table full"
        );
        assert!(
            lab.b.nat_rev().unwrap().is_empty(),
            "{what}: no reverse entry left"
        );
    }
    // DR flows do not use it.
    let (action, moved, _) = send(&lab, 0, client(2, 41000), SYN);
    assert_eq!((action, moved), (XDP_TX, vec!["forwarded"]));
    // Real flows fill it: four fit, the fifth is dropped, the four go on.
    for k in &others {
        lab.b.remove_conn(k).unwrap();
    }
    for i in 0..4 {
        let (action, moved, _) = send(&lab, 3, client(10 + i, 42000), SYN);
        assert_eq!((action, moved), (XDP_TX, vec!["nat_forwarded"]), "flow {i}");
    }
    let (action, moved, _) = send(&lab, 1, client(20, 42000), SYN);
    assert_eq!((action, moved), (XDP_DROP, vec!["table_full"]));
    assert_eq!(lab.b.nat_rev().unwrap().len(), 4);
    for i in 0..4 {
        let (action, moved, _) = send(&lab, 3, client(10 + i, 42000), ACK);
        assert_eq!((action, moved), (XDP_TX, vec!["nat_forwarded"]), "flow {i}");
    }
}

#[test]
fn the_sweep_reclaims_expired_nat_entries_and_their_reverse_entries() {
    if !own_netns() {
        return;
    }
    let mut lab = lab(1024);
    for i in 0..5 {
        send(&lab, 1, client(i, 43000), SYN);
        send(&lab, 3, client(i, 43000), SYN);
        send(&lab, 0, client(i, 43000), SYN);
    }
    assert_eq!(lab.b.nat_conns().unwrap().len(), 10);
    assert_eq!(lab.b.nat_rev().unwrap().len(), 10);
    assert_eq!(lab.b.conns().unwrap().len(), 15, "listed: DR and NAT flows");
    let cfg = Config::default();
    let now = rvs_xdp::engine::monotonic_ns();
    let (nat, removed) = lab.b.sweep(&cfg, now).unwrap();
    assert_eq!((nat.reclaimed, removed), (0, 0), "nothing expired yet");
    // SYN_RECV lives 60 s.
    let (nat, removed) = lab.b.sweep(&cfg, now + 61_000_000_000).unwrap();
    assert_eq!(nat.reclaimed, 10, "{nat:?}");
    assert_eq!(
        removed, 5,
        "the DR entries (the NAT flows' went with `nat`)"
    );
    assert!(lab.b.nat_rev().unwrap().is_empty());
    assert!(lab.b.conns().unwrap().is_empty());
    assert!(lab.b.fnat_flows().unwrap().is_empty(), "local ports free");
}

#[test]
fn a_service_mixing_dr_and_nat_reals_finds_the_flows_of_each() {
    if !own_netns() {
        return;
    }
    let lab = lab(1024);
    let vip = lab.svc(2).vip;
    let port_on = |real: u32| {
        (44000u16..)
            .find(|p| lab.maglev_real(2, client(7, *p)) == real)
            .unwrap()
    };
    let (cd, cn) = (client(7, port_on(0)), client(7, port_on(2)));
    let (action, moved, out) = send(&lab, 2, cd, SYN);
    assert_eq!((action, moved), (XDP_TX, vec!["forwarded"]), "DR SYN");
    assert_eq!(
        (out[0..6].to_vec(), dest_ip(&out)),
        (mac(0x07).to_vec(), vip.ip())
    );
    let (action, moved, out) = send(&lab, 2, cn, SYN);
    assert_eq!((action, moved), (XDP_TX, vec!["nat_forwarded"]), "NAT SYN");
    assert_eq!(dest_ip(&out), v4(3, 8));
    assert!(dr_entries(&lab).contains(&flow(cd, vip, TCP)));
    assert!(nat_entry(&lab, &flow(cn, vip, TCP)).is_some());
    // Each flow's next packet follows its entry (no new connection).
    let conns = lab.b.counters(2).unwrap().conns;
    assert_eq!(conns, 2);
    for _ in 0..3 {
        let (action, moved, out) = send(&lab, 2, cd, ACK);
        assert_eq!((action, moved), (XDP_TX, vec!["forwarded"]), "DR ACK");
        assert_eq!(out[0..6], mac(0x07));
        let (action, moved, out) = send(&lab, 2, cn, ACK);
        assert_eq!((action, moved), (XDP_TX, vec!["nat_forwarded"]), "NAT ACK");
        assert_eq!(dest_ip(&out), v4(3, 8));
    }
    assert_eq!(
        lab.b.counters(2).unwrap().conns,
        conns,
        "followed, not rescheduled"
    );
    let real = SocketAddr::new(v4(3, 8), 82);
    let reply = frame(DIR_MAC, mac(0x18), real, cn, TCP, &seg(TCP, ACK, b"r"));
    let (action, moved, out) = run(&lab, &reply);
    assert_eq!((action, moved), (XDP_PASS, vec!["nat_reply"]));
    assert_eq!(source(&out), vip, "the reply comes from the VIP");
    // A SYN reusing a closing connection's tuple whose entry is in the other table (the
    // tuple's earlier connection went to the other real): the new flow's entry goes to its
    // real's table and the old one is deleted, so it is never followed instead.
    let mut lab = lab;
    let methods: Vec<u8> = (0..3).map(|i| lab.real(i).method).collect();
    let closing = |real: u32| Conn {
        state: abi::RVS_STATE_TIME_WAIT as u8,
        method: methods[real as usize],
        last_ns: rvs_xdp::engine::monotonic_ns(),
        real,
        svc: 2,
        ..Default::default()
    };
    let (kd, kn) = (flow(cd, vip, TCP), flow(cn, vip, TCP));
    lab.b.remove_conn(&kd).unwrap();
    lab.b.remove_conn(&kn).unwrap();
    lab.b.insert_nat_conn(&kd, &closing(2)).unwrap();
    lab.b.insert_conn(&kn, &closing(0)).unwrap();
    let (action, moved, out) = send(&lab, 2, cd, SYN);
    assert_eq!(
        (action, moved),
        (XDP_TX, vec!["forwarded"]),
        "DR on a NAT tuple"
    );
    assert_eq!(out[0..6], mac(0x07));
    assert!(
        nat_entry(&lab, &kd).is_none(),
        "the NAT table's old entry went"
    );
    let (action, moved, _) = send(&lab, 2, cn, SYN);
    assert_eq!(
        (action, moved),
        (XDP_TX, vec!["nat_forwarded"]),
        "NAT on a DR tuple"
    );
    assert!(
        !dr_entries(&lab).contains(&kn),
        "the DR table's old entry went"
    );
    for _ in 0..2 {
        let (action, moved, _) = send(&lab, 2, cd, ACK);
        assert_eq!((action, moved), (XDP_TX, vec!["forwarded"]));
        let (action, moved, _) = send(&lab, 2, cn, ACK);
        assert_eq!((action, moved), (XDP_TX, vec!["nat_forwarded"]));
    }
    assert_eq!(lab.b.counters(2).unwrap().conns, conns + 2, "followed");
}
