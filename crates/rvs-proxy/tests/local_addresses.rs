//! FULLNAT local addresses on the proxy engine: connections to the reals leave from the
//! service's local addresses (round robin over those of the real's family), else from the
//! engine's default pool, else from the host's choice. Loopback only (127.0.0.0/8 is local).

mod common;

use common::*;
use rvs_core::SchedulerKind;
use rvs_core::ServiceKey;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::time::Duration;

/// A real that answers each connection with the address it came from, forever.
fn peer_echo() -> std::net::SocketAddr {
    peer_echo_on(TcpListener::bind("127.0.0.1:0").unwrap())
}

/// [`peer_echo`] on a listener of the caller's.
fn peer_echo_on(l: TcpListener) -> std::net::SocketAddr {
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let peer = s.peer_addr().unwrap().ip().to_string();
            let _ = s.write_all(peer.as_bytes());
        }
    });
    addr
}

/// A client of `vip` is closed without an answer (the director failed to connect to a real).
fn closed_without_answer(vip: std::net::SocketAddr) {
    let mut c = TcpStream::connect(vip).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut s = String::new();
    let _ = c.read_to_string(&mut s);
    assert!(s.is_empty(), "closed without an answer: {s:?}");
}

/// How many connections through `vip` came from each source address.
fn sources(vip: std::net::SocketAddr, n: usize) -> BTreeMap<IpAddr, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let mut c = TcpStream::connect(vip).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        *seen.entry(s.parse::<IpAddr>().unwrap()).or_insert(0) += 1;
    }
    seen
}

#[test]
fn connections_to_the_reals_leave_from_the_local_addresses() {
    let mut e = engine();
    let real = peer_echo();
    let vip = free_addr("127.0.0.1");
    let key = ServiceKey::tcp(vip);
    add_service(&mut e, key, options(SchedulerKind::Rr), &[fullnat(real, 1)]);
    // No pool: the host's address.
    let host: IpAddr = "127.0.0.1".parse().unwrap();
    assert_eq!(sources(vip, 4), BTreeMap::from([(host, 4)]));
    // The service's own pool (an IPv6 address in it is for IPv6 reals only).
    let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
    e.set_fullnat_pool(key, vec![a, "::1".parse().unwrap(), b]);
    assert_eq!(sources(vip, 10), BTreeMap::from([(a, 5), (b, 5)]));
    // Back to the engine's default pool (none here): the host's address again.
    e.set_fullnat_pool(key, Vec::new());
    assert_eq!(sources(vip, 2), BTreeMap::from([(host, 2)]));
}

#[test]
fn the_engine_default_pool_serves_services_without_their_own() {
    let mut e = rvs_proxy::ProxyEngine::start(rvs_proxy::ProxyEngineConfig {
        workers: 1,
        fullnat_local: vec!["127.0.0.4".parse().unwrap()],
        ..Default::default()
    })
    .unwrap();
    let real = peer_echo();
    let vip = free_addr("127.0.0.1");
    let key = ServiceKey::tcp(vip);
    add_service(&mut e, key, options(SchedulerKind::Rr), &[fullnat(real, 1)]);
    assert_eq!(
        sources(vip, 3),
        BTreeMap::from([("127.0.0.4".parse().unwrap(), 3)])
    );
}

/// A local address that is not on this host cannot be bound (`EADDRNOTAVAIL`): the director's
/// failure, not the reals'. Each client is closed and counted in `connect_local_error`; no real
/// is blamed (no connect failure, not taken out) and none is retried; once the pool is fixed
/// every real serves.
#[test]
fn a_local_address_that_cannot_be_bound_blames_no_real() {
    let mut e = engine();
    let reals = [peer_echo(), peer_echo()];
    let vip = free_addr("127.0.0.1");
    let key = ServiceKey::tcp(vip);
    let rs: Vec<_> = reals.iter().map(|r| fullnat(*r, 1)).collect();
    add_service(&mut e, key, options(SchedulerKind::Rr), &rs);
    e.set_fullnat_pool(key, vec!["192.0.2.1".parse().unwrap()]); // TEST-NET-1: on no interface
    for _ in 0..5 {
        closed_without_answer(vip);
    }
    assert_only_local_errors(&rvs_core::engine::Engine::stats(&e), &key, &reals, 5);
    // The pool fixed: both reals serve in turn (neither was taken out).
    e.set_fullnat_pool(key, Vec::new());
    assert_eq!(sources(vip, 4).values().sum::<usize>(), 4);
    let stats = rvs_core::engine::Engine::stats(&e);
    for r in &reals {
        assert_eq!(stats.services[&key].reals[r].counters.conns, 2, "{r}");
    }
}

/// The same for a UDP session: its socket cannot be bound, the datagram is dropped and counted
/// in `connect_local_error`; the real is not blamed, and serves once the pool is fixed.
#[test]
fn a_udp_local_address_that_cannot_be_bound_blames_no_real() {
    let mut e = engine();
    let (vip, key, reals) = udp_echo_service(&mut e, &["u"], options(SchedulerKind::Rr));
    e.set_fullnat_pool(key, vec!["192.0.2.1".parse().unwrap()]);
    let (answered, _c) = new_udp_clients(vip, 3, Duration::from_millis(300));
    assert_eq!(answered, 0);
    let stats = rvs_core::engine::Engine::stats(&e);
    assert_eq!(
        stats.outcomes["connect_local_error"], 3,
        "{:?}",
        stats.outcomes
    );
    assert_eq!(stats.outcomes["connect_error"], 0, "{:?}", stats.outcomes);
    let r = &stats.services[&key].reals[&reals[0]];
    assert_eq!(
        (r.connect_failures, r.passive_downs, r.counters.conns),
        (0, 0, 0)
    );
    e.set_fullnat_pool(key, Vec::new());
    assert_eq!(new_udp_clients(vip, 3, Duration::from_secs(2)).0, 3);
}

/// A real's passive-detection probe that fails on the director's side (the local address
/// cannot be bound) never reached the real: the real is on probation again at once — not out
/// for another `fail_timeout` — and the next connection scheduled to it probes it.
#[test]
fn a_probe_that_fails_locally_leaves_the_real_on_probation() {
    let mut e = engine();
    let down = free_addr("127.0.0.1"); // nothing listens yet: refused
    let up = peer_echo();
    let vip = free_addr("127.0.0.1");
    let key = ServiceKey::tcp(vip);
    let fail_timeout_ms = 1500;
    let rs = [fullnat(down, 1), fullnat(up, 1)];
    add_service(&mut e, key, passive_options(1, fail_timeout_ms), &rs);
    // One refused connect takes `down` out (the client is retried on `up`).
    assert_eq!(sources(vip, 2).values().sum::<usize>(), 2);
    assert_eq!(real_stats(&e, &key, down).passive_downs, 1);
    peer_echo_on(TcpListener::bind(down).unwrap());
    std::thread::sleep(Duration::from_millis(fail_timeout_ms as u64 + 100));
    // On probation. The pool is broken: of the next two connections (round robin), one is the
    // probe of `down`, and both fail on the director's side.
    e.set_fullnat_pool(key, vec!["192.0.2.1".parse().unwrap()]); // TEST-NET-1: on no interface
    for _ in 0..2 {
        closed_without_answer(vip);
    }
    let stats = rvs_core::engine::Engine::stats(&e);
    assert_eq!(
        stats.outcomes["connect_local_error"], 2,
        "{:?}",
        stats.outcomes
    );
    let d = &stats.services[&key].reals[&down];
    assert_eq!(
        (d.passive_downs, d.passive_out_ms),
        (1, 0),
        "not out again: on probation"
    );
    // The pool fixed: `down` is probed by the next connection to it, and serves.
    e.set_fullnat_pool(key, Vec::new());
    assert_eq!(sources(vip, 4).values().sum::<usize>(), 4);
    let d = real_stats(&e, &key, down);
    assert!(d.counters.conns >= 1, "{d:?}");
    assert_eq!(d.passive_downs, 1);
}
