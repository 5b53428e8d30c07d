//! Passive failure detection (`max_fails`, `fail_timeout_ms`): a real whose connects fail is
//! taken out for `fail_timeout_ms` — no connect attempts, no client pays for it — then probed by
//! one connection (loopback only).

mod common;

use common::*;
use rvs_core::ServiceKey;
use rvs_core::engine::{Engine, EngineStats};
use rvs_proxy::ProxyEngine;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn live_backends(n: usize) -> Vec<SocketAddr> {
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    (0..n)
        .map(|i| rvs_demo::serve_http(bind, &format!("live{i}")).unwrap())
        .collect()
}

/// `n` clients, `threads` at a time, each one request on a new connection; returns how many
/// failed.
fn run_clients(vip: SocketAddr, n: usize, threads: usize) -> usize {
    let per = n / threads;
    let handles: Vec<_> = (0..threads)
        .map(|_| std::thread::spawn(move || (0..per).filter(|_| http_get(vip).is_err()).count()))
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}

/// Sequential clients until the real is out (at most `limit`); all must succeed.
fn until_out(e: &ProxyEngine, key: &ServiceKey, vip: SocketAddr, real: SocketAddr, limit: usize) {
    for _ in 0..limit {
        http_get(vip).expect("a refused connect is retried on another real");
        if real_stats(e, key, real).passive_out_ms > 0 {
            return;
        }
    }
    panic!("{real} not taken out: {:?}", real_stats(e, key, real));
}

fn outcome(s: &EngineStats, name: &str) -> u64 {
    s.outcomes[name]
}

#[test]
fn a_refusing_real_gets_no_attempts_after_max_fails_and_no_client_fails() {
    for max_fails in [1, 3] {
        let mut e = engine();
        let live = live_backends(2);
        let dead = free_addr("127.0.0.1"); // nothing listens: refused
        let (vip, key) = tcp_service(
            &mut e,
            "127.0.0.1",
            passive_options(max_fails, 30_000),
            &[dead, live[0], live[1]],
        );
        until_out(&e, &key, vip, dead, 10 * max_fails as usize);
        assert_eq!(run_clients(vip, 300, 10), 0, "no client may fail");
        let stats = e.stats();
        let d = stats.services[&key].reals[&dead];
        assert_eq!(d.connect_failures, max_fails as u64, "{d:?}");
        assert_eq!(d.passive_downs, 1, "{d:?}");
        assert!(d.passive_out_ms > 20_000, "{d:?}");
        assert_eq!(d.counters.conns, 0);
        assert_eq!(outcome(&stats, "passive_down"), 1);
        assert_eq!(outcome(&stats, "connect_refused"), max_fails as u64);
        assert_eq!(outcome(&stats, "no_real"), 0);
        for r in &live {
            assert_eq!(stats.services[&key].reals[r].passive_downs, 0);
        }
    }
}

#[test]
fn after_fail_timeout_one_connection_probes_and_a_recovered_real_is_back() {
    let mut e = engine();
    let live = live_backends(2);
    let dead = free_addr("127.0.0.1");
    let (vip, key) = tcp_service(
        &mut e,
        "127.0.0.1",
        passive_options(1, 300),
        &[dead, live[0], live[1]],
    );
    until_out(&e, &key, vip, dead, 10);
    assert_eq!(real_stats(&e, &key, dead).connect_failures, 1);
    // fail_timeout passes: one connection probes it, fails over, and it is out again.
    std::thread::sleep(Duration::from_millis(400));
    for _ in 0..30 {
        http_get(vip).expect("the probe is retried on another real");
    }
    let d = real_stats(&e, &key, dead);
    assert_eq!((d.connect_failures, d.passive_downs), (2, 2), "{d:?}");
    // The real comes back: after fail_timeout its probe succeeds and it has its share again.
    rvs_demo::serve_http(dead, "back").unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let bodies: Vec<String> = (0..30).map(|_| http_get(vip).unwrap()).collect();
    let back = bodies.iter().filter(|b| b.starts_with("back")).count();
    assert!(
        (8..=12).contains(&back),
        "{back} of 30 to the recovered real"
    );
    let d = real_stats(&e, &key, dead);
    assert_eq!((d.connect_failures, d.passive_out_ms), (2, 0), "{d:?}");
}

#[test]
fn a_real_that_times_out_costs_one_timeout_per_fail_timeout() {
    let mut e = engine();
    let live = live_backends(2);
    let (stuck, _fillers) = full_listener(); // SYNs dropped: connects time out
    let slow = stuck.local_addr().unwrap();
    let mut o = passive_options(1, 1000);
    o.proxy.connect_timeout_ms = 150;
    let (vip, key) = tcp_service(&mut e, "127.0.0.1", o, &[slow, live[0], live[1]]);
    let start = Instant::now();
    let (mut clients, mut slow_clients) = (0, 0);
    while start.elapsed() < Duration::from_millis(2500) {
        let t = Instant::now();
        http_get(vip).expect("a timed-out connect is retried on another real");
        clients += 1;
        slow_clients += usize::from(t.elapsed() >= Duration::from_millis(140));
    }
    let stats = e.stats();
    let timeouts = outcome(&stats, "connect_timeout");
    // The first, then one probe per fail_timeout (out 1 s after each timeout): 2 or 3.
    assert!(
        (2..=3).contains(&timeouts),
        "{timeouts} timeouts, {clients} clients"
    );
    assert!(
        slow_clients <= 3,
        "{slow_clients} clients waited for a timeout"
    );
    assert_eq!(stats.services[&key].reals[&slow].passive_downs, timeouts);
    assert!(clients > 100, "{clients}");
}

#[test]
fn with_every_real_refusing_connections_are_still_attempted() {
    let mut e = engine();
    let dead = [free_addr("127.0.0.1"), free_addr("127.0.0.1")];
    let (vip, key) = tcp_service(&mut e, "127.0.0.1", passive_options(1, 30_000), &dead);
    for _ in 0..20 {
        assert!(http_get(vip).is_err(), "no real answers");
    }
    let stats = e.stats();
    // Every client tried both reals: the last one is kept in rather than refuse all, and its
    // retry probes the one that is out (connect_retries 2: a third try finds none left).
    assert_eq!(
        outcome(&stats, "connect_refused"),
        40,
        "{:?}",
        stats.outcomes
    );
    assert!(
        outcome(&stats, "passive_all_out") >= 19,
        "{:?}",
        stats.outcomes
    );
    let mut downs: Vec<u64> = dead
        .iter()
        .map(|r| stats.services[&key].reals[r].passive_downs)
        .collect();
    downs.sort();
    assert_eq!(
        downs,
        [0, 20],
        "one real kept in, the other out and taken out again by each client's probe"
    );
    // Both come back: the kept one serves at once, without waiting for fail_timeout.
    for (i, r) in dead.iter().enumerate() {
        rvs_demo::serve_http(*r, &format!("back{i}")).unwrap();
    }
    assert!(http_get(vip).is_ok());
}
