//! UDP sessions hold a descriptor each: the engine caps their number (a datagram dropped at the
//! cap leaves no persistence template), and one-packet sessions end with their reply (loopback
//! only).

mod common;

use common::*;
use rvs_core::desired::{Change, Timeouts};
use rvs_core::engine::Engine;
use rvs_core::{Persistence, SchedulerKind, ServiceKey};
use rvs_proxy::{ProxyEngine, ProxyEngineConfig};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// `n` clients on new source ports each send one datagram; returns how many got a reply.
fn new_clients(vip: SocketAddr, n: usize) -> usize {
    new_udp_clients(vip, n, Duration::from_millis(100)).0
}

#[test]
fn new_udp_sessions_beyond_the_cap_are_dropped_and_counted() {
    let mut e = ProxyEngine::start(ProxyEngineConfig {
        workers: 2,
        udp_sessions: 10,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(e.udp_sessions_max(), 10);
    e.apply(&[Change::SetTimeouts(Timeouts {
        tcp: 900,
        tcp_fin: 120,
        udp: 3,
        ..Default::default()
    })])
    .unwrap();
    let (vip, key, _) = udp_echo_service(&mut e, &["c1"], options(SchedulerKind::Rr));
    assert_eq!(
        new_clients(vip, 20),
        10,
        "ten sessions, ten clients dropped"
    );
    let stats = e.stats();
    assert_eq!(stats.outcomes["udp_session_limit"], 10);
    assert_eq!(
        stats.services[&key].counters.conns, 10,
        "a dropped client is no connection"
    );
    assert_eq!(e.connections().len(), 10);
    // Once the sessions expire, their places are free again.
    assert!(wait_until(Duration::from_secs(8), || e
        .connections()
        .is_empty()));
    assert_eq!(new_clients(vip, 10), 10);
}

#[test]
fn one_packet_sessions_end_with_their_reply() {
    let mut e = engine();
    let mut opts = options(SchedulerKind::Rr);
    opts.one_packet = true;
    let (vip, key, _) = udp_echo_service(&mut e, &["o1"], opts);
    // DNS-style: every query from a new source port (the default UDP timeout is 300 s).
    assert_eq!(new_clients(vip, 50), 50);
    assert!(
        wait_until(Duration::from_secs(3), || e.connections().is_empty()),
        "one-packet sessions still held: {}",
        e.connections().len()
    );
    let stats = e.stats();
    assert_eq!(stats.services[&key].counters.conns, 50);
    assert_eq!(stats.services[&key].counters.out_pkts, 50);
    // A client that keeps its port still gets every reply, one session per query.
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = [0u8; 64];
    for i in 0..5 {
        c.send_to(format!("again{i}").as_bytes(), vip).unwrap();
        let (n, from) = c.recv_from(&mut buf).unwrap();
        assert_eq!(from, vip);
        assert_eq!(&buf[..n], format!("o1: again{i}").as_bytes());
    }
}

#[test]
fn a_one_packet_datagram_dropped_at_the_cap_leaves_no_persistence_template() {
    let mut e = ProxyEngine::start(ProxyEngineConfig {
        workers: 1,
        udp_sessions: 2,
        ..Default::default()
    })
    .unwrap();
    // A real that never answers: each -o session lives until the UDP timeout (300 s).
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let vip = udp_vip();
    let key = ServiceKey::udp(vip);
    let mut opts = options(SchedulerKind::Rr);
    opts.one_packet = true;
    opts.persistence = Some(Persistence {
        timeout: 300,
        prefix_len: 32,
    });
    add_service(
        &mut e,
        key,
        opts,
        &[fullnat(silent.local_addr().unwrap(), 1)],
    );
    let send_from = |ip: &str| {
        let c = UdpSocket::bind((ip, 0)).unwrap();
        c.send_to(b"q", vip).unwrap();
        c
    };
    // Two queries from 127.0.0.2 (two ports) fill the cap of two sessions.
    let _held = [send_from("127.0.0.2"), send_from("127.0.0.2")];
    assert!(wait_until(Duration::from_secs(3), || {
        e.connections().iter().filter(|c| c.state == "UDP").count() == 2
    }));
    // A query from 127.0.0.3 is dropped at the cap: no connection, and no template for it.
    let _dropped = send_from("127.0.0.3");
    assert!(wait_until(Duration::from_secs(3), || {
        e.stats().outcomes["udp_session_limit"] == 1
    }));
    let templates: Vec<_> = e
        .connections()
        .into_iter()
        .filter(|c| c.state == "NONE")
        .map(|c| c.client.ip().to_string())
        .collect();
    assert_eq!(
        templates,
        ["127.0.0.2"],
        "a dropped datagram made a template"
    );
    let stats = e.stats();
    assert_eq!(stats.services[&key].counters.conns, 2);
    let persistent: u32 = stats.services[&key]
        .reals
        .values()
        .map(|r| r.persistent_conns)
        .sum();
    assert_eq!(persistent, 1);
}

#[test]
fn the_automatic_cap_is_a_quarter_of_the_open_files_limit() {
    assert_eq!(rvs_proxy::engine::udp_sessions_default(20_000), 5_000);
    assert_eq!(rvs_proxy::engine::udp_sessions_default(40), 16);
    assert_eq!(rvs_proxy::engine::udp_sessions_default(u64::MAX), 1 << 20);
    assert!(engine().udp_sessions_max() >= 16);
}
