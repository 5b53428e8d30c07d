//! The engine-wide TCP connection cap (`max_conns`, HAProxy's `maxconn`): clients over it wait
//! in the listen backlog — neither reset nor refused — and are served as soon as connections end
//! (loopback only).

mod common;

use common::*;
use rvs_core::engine::Engine;
use rvs_core::{SchedulerKind, ServiceKey};
use rvs_proxy::{ProxyEngine, ProxyEngineConfig};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[test]
fn clients_over_the_cap_wait_in_the_backlog_and_are_served_when_connections_end() {
    const CAP: usize = 4;
    const EXTRA: usize = 3;
    let mut e = ProxyEngine::start(ProxyEngineConfig {
        workers: 2,
        max_conns: CAP,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(e.max_conns(), CAP);
    let real = rvs_demo::serve_http("127.0.0.1:0".parse().unwrap(), "m").unwrap();
    let vip = free_addr("127.0.0.1");
    let key = ServiceKey::tcp(vip);
    add_service(&mut e, key, options(SchedulerKind::Rr), &[fullnat(real, 1)]);

    // CAP keep-alive clients are relayed at once.
    let mut first: Vec<KeepAlive> = (0..CAP).map(|_| KeepAlive::connect(vip).unwrap()).collect();
    for c in &mut first {
        assert!(c.get().unwrap().starts_with("m "));
    }
    assert_eq!(open_conns(&e, &key), CAP as u32);

    // EXTRA more: connected by the kernel (the listen backlog), but not accepted: no answer.
    let mut waiting: Vec<TcpStream> = (0..EXTRA)
        .map(|_| {
            let mut s = TcpStream::connect(vip).expect("not refused at the cap");
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    let mut buf = [0u8; 256];
    for s in &mut waiting {
        let r = s.read(&mut buf);
        assert!(
            matches!(&r, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
            "a client over the cap waits (no data, no reset, no close): {r:?}"
        );
    }
    assert_eq!(open_conns(&e, &key), CAP as u32, "the cap holds");
    let stats = e.stats();
    assert!(stats.outcomes["accept_paused"] >= 1, "{:?}", stats.outcomes);
    assert_eq!(stats.services[&key].counters.conns, CAP as u64);

    // EXTRA of the first clients leave: the waiting ones are accepted and answered in full.
    first.truncate(CAP - EXTRA);
    for s in &mut waiting {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp)
            .expect("served after a place is free, not reset");
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp:?}");
        assert!(resp.ends_with(&format!("m ({real})\n")), "{resp:?}");
    }
    // The client that stayed still works.
    assert!(first[0].get().unwrap().starts_with("m "));
    assert!(wait_until(Duration::from_secs(5), || {
        e.stats().services[&key].counters.conns == (CAP + EXTRA) as u64
    }));
}

#[test]
fn the_automatic_cap_is_what_the_open_files_limit_leaves() {
    use rvs_proxy::engine::{RESERVED_FDS, max_conns_default};
    // Two descriptors per connection out of 20,000 less the reserve: at least the 9,900 idle
    // connections the benchmark holds (bench/README.md).
    assert_eq!(max_conns_default(20_000), 9_936);
    assert_eq!(
        max_conns_default(1_024),
        (1_024 - RESERVED_FDS as usize) / 2
    );
    assert_eq!(max_conns_default(100), 16, "at least 16");
    assert!(
        ProxyEngine::start(ProxyEngineConfig::default())
            .unwrap()
            .max_conns()
            >= 16
    );
}

/// `accept_paused` counts stalls, not wake-ups: a freed place wakes every paused listener, and
/// those that find the cap reached again are still in the stall they were in. Three services
/// on one worker, a cap of 1: each listener stalls once while clients queue up and are served
/// one after another.
#[test]
fn accept_paused_counts_each_listener_s_stall_once() {
    let mut e = ProxyEngine::start(ProxyEngineConfig {
        workers: 1,
        max_conns: 1,
        ..Default::default()
    })
    .unwrap();
    let real = rvs_demo::serve_http("127.0.0.1:0".parse().unwrap(), "s").unwrap();
    let vips: Vec<_> = (0..3)
        .map(|_| {
            let (vip, _) = tcp_service(&mut e, "127.0.0.1", options(SchedulerKind::Rr), &[real]);
            vip
        })
        .collect();
    let paused = |e: &ProxyEngine| e.stats().outcomes["accept_paused"];
    let settle = || std::thread::sleep(Duration::from_millis(150));
    // The first listener takes the only place and stops at the cap: its stall.
    let mut a = KeepAlive::connect(vips[0]).unwrap();
    assert!(a.get().unwrap().starts_with("s "));
    settle();
    assert_eq!(paused(&e), 1);
    // Two clients wait on the other listeners: each stalls.
    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let waiting: Vec<TcpStream> = vips[1..].iter().map(|v| client(*v, GET)).collect();
    settle();
    assert_eq!(paused(&e), 3);
    // The place goes from client to client (each release wakes every paused listener): both
    // are served in full.
    drop(a);
    for mut c in waiting {
        let mut resp = String::new();
        c.read_to_string(&mut resp).expect("served");
        assert!(resp.ends_with(&format!("s ({real})\n")), "{resp:?}");
    }
    settle();
    let stats = e.stats();
    assert_eq!(
        stats.outcomes["accept_paused"], 3,
        "one stall per listener: {:?}",
        stats.outcomes
    );
}
