//! TCP through the proxy engine on loopback: weighted distribution, drain, removal and reset,
//! refused reals, half-close, IPv6, and what `supports()` refuses.

mod common;

use common::*;
use rvs_core::desired::{Change, ServiceConfig};
use rvs_core::engine::Engine;
use rvs_core::{AdminState, ForwardMethod, SchedulerKind, ServiceKey};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

fn backends(names: &[&str], ip: &str) -> Vec<SocketAddr> {
    let bind: SocketAddr = format!("{ip}:0").parse().unwrap();
    names
        .iter()
        .map(|n| rvs_demo::serve_http(bind, n).unwrap())
        .collect()
}

#[test]
fn weighted_distribution_over_3000_connections() {
    let mut e = engine();
    let reals = backends(&["w1", "w2", "w3"], "127.0.0.1");
    let weights = [1u32, 2, 3];
    let vip = free_addr("127.0.0.1");
    let key = ServiceKey::tcp(vip);
    let rs: Vec<_> = reals
        .iter()
        .zip(weights)
        .map(|(a, w)| fullnat(*a, w))
        .collect();
    add_service(&mut e, key, options(SchedulerKind::Wrr), &rs);

    let total = 3000;
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut seen = BTreeMap::<String, u32>::new();
                for _ in 0..total / 4 {
                    let body = http_get(vip).expect("request through the VIP");
                    *seen
                        .entry(body.split(' ').next().unwrap().to_string())
                        .or_default() += 1;
                }
                seen
            })
        })
        .collect();
    let mut seen = BTreeMap::<String, u32>::new();
    for t in threads {
        for (k, v) in t.join().unwrap() {
            *seen.entry(k).or_default() += v;
        }
    }
    let wsum: u32 = weights.iter().sum();
    for (i, name) in ["w1", "w2", "w3"].iter().enumerate() {
        let got = seen.get(*name).copied().unwrap_or(0) as f64 / total as f64;
        let want = weights[i] as f64 / wsum as f64;
        assert!(
            (got - want).abs() <= 0.02,
            "{name}: {got:.4} vs weight share {want:.4} ({seen:?})"
        );
    }
    // The engine's own counters agree with what the clients saw.
    assert!(
        wait_until(Duration::from_secs(5), || open_conns(&e, &key) == 0),
        "{:?}",
        e.stats()
    );
    let stats = e.stats();
    let svc = &stats.services[&key];
    assert_eq!(svc.counters.conns, total as u64);
    for (i, addr) in reals.iter().enumerate() {
        let name = format!("w{}", i + 1);
        assert_eq!(svc.reals[addr].counters.conns, seen[&name] as u64, "{name}");
        assert!(svc.reals[addr].counters.in_bytes > 0 && svc.reals[addr].counters.out_pkts > 0);
    }
    assert_eq!(
        svc.counters.in_bytes,
        svc.reals.values().map(|r| r.counters.in_bytes).sum::<u64>()
    );
    e.zero(None);
    assert_eq!(e.stats().services[&key].counters.conns, 0);
}

/// Opens keep-alive connections until one lands on `want`.
fn keepalive_to(vip: SocketAddr, want: &str) -> KeepAlive {
    for _ in 0..20 {
        let mut c = KeepAlive::connect(vip).unwrap();
        if c.get().unwrap().starts_with(want) {
            return c;
        }
    }
    panic!("no connection landed on {want}");
}

#[test]
fn drain_and_removal_keep_existing_connections_and_reset_cuts_them() {
    let mut e = engine();
    let reals = backends(&["d1", "d2"], "127.0.0.1");
    let (vip, key) = tcp_service(&mut e, "127.0.0.1", options(SchedulerKind::Rr), &reals);
    let mut kept = keepalive_to(vip, "d1");
    assert_eq!(conn_counts(&e.stats(), &key, reals[0]), (1, 0));

    // Drain d1 (weight 0): no new connections, the old one still works.
    e.apply(&[Change::EditReal {
        service: key,
        real: fullnat(reals[0], 0),
    }])
    .unwrap();
    for _ in 0..20 {
        assert!(http_get(vip).unwrap().starts_with("d2"));
    }
    assert!(kept.get().unwrap().starts_with("d1"));
    // Same with the operator's drain intent.
    let drained = rvs_core::RealServer {
        admin: AdminState::Drain,
        ..fullnat(reals[0], 1)
    };
    e.apply(&[Change::EditReal {
        service: key,
        real: drained,
    }])
    .unwrap();
    assert!(http_get(vip).unwrap().starts_with("d2"));
    assert!(kept.get().unwrap().starts_with("d1"));

    // Remove d1: the existing connection still finishes its requests.
    e.apply(&[Change::RemoveReal {
        service: key,
        addr: reals[0],
    }])
    .unwrap();
    assert!(!e.stats().services[&key].reals.contains_key(&reals[0]));
    for _ in 0..3 {
        assert!(kept.get().unwrap().starts_with("d1"));
    }
    assert!(
        e.connections()
            .iter()
            .any(|c| c.real == reals[0] && c.state == "ESTABLISHED")
    );

    // The operator resets it: the connection is cut.
    assert_eq!(e.reset_real(&key, reals[0]).unwrap(), 1);
    assert!(wait_until(Duration::from_secs(3), || e
        .connections()
        .iter()
        .all(|c| c.real != reals[0])));
    assert!(kept.get().is_err(), "a reset connection must not answer");
    assert_eq!(e.stats().outcomes["reset_by_operator"], 1);
}

/// With passive failure detection off (`max_fails = 0`, the behaviour before it existed) every
/// connection that lands on a refusing real pays a failed connect and a retry (tests/passive.rs:
/// with it on).
#[test]
fn refused_real_gets_nothing_and_clients_still_succeed() {
    let mut e = engine();
    let live = backends(&["r1", "r2"], "127.0.0.1");
    let dead = free_addr("127.0.0.1"); // nothing listens here: connect is refused
    let vip = free_addr("127.0.0.1");
    let key = ServiceKey::tcp(vip);
    let rs = [fullnat(dead, 1), fullnat(live[0], 1), fullnat(live[1], 1)];
    let mut no_passive = options(SchedulerKind::Rr);
    no_passive.proxy.max_fails = 0;
    add_service(&mut e, key, no_passive, &rs);
    for _ in 0..60 {
        let body = http_get(vip).expect("a refused real must be retried on another");
        assert!(body.starts_with("r1") || body.starts_with("r2"), "{body}");
    }
    assert!(wait_until(Duration::from_secs(5), || open_conns(&e, &key) == 0));
    let stats = e.stats();
    let svc = &stats.services[&key];
    assert_eq!(svc.reals[&dead].counters.conns, 0);
    assert_eq!(svc.counters.conns, 60);
    assert!(
        stats.outcomes["connect_refused"] >= 20,
        "{:?}",
        stats.outcomes
    );
    assert_eq!(
        stats.outcomes["connect_retry"],
        stats.outcomes["connect_refused"]
    );
    assert_eq!(stats.outcomes["no_real"], 0);
    assert_eq!(stats.outcomes["passive_down"], 0);
    assert_eq!(svc.reals[&dead].passive_downs, 0);
    // The failing real is named in the stats with exactly its failed connects; the live ones
    // show none.
    assert_eq!(
        svc.reals[&dead].connect_failures, stats.outcomes["connect_refused"],
        "{:?}",
        svc.reals[&dead]
    );
    for r in &live {
        assert_eq!(svc.reals[r].connect_failures, 0);
    }
    // -Z zeroes it with the other counters.
    e.zero(Some(&key));
    assert_eq!(e.stats().services[&key].reals[&dead].connect_failures, 0);

    // Every real refusing: the client is closed without data, counted as such.
    let key2 = ServiceKey::tcp(free_addr("127.0.0.1"));
    let ServiceKey::Addr { addr: vip2, .. } = key2 else {
        unreachable!()
    };
    add_service(
        &mut e,
        key2,
        options(SchedulerKind::Rr),
        &[fullnat(dead, 1)],
    );
    assert!(http_get(vip2).is_err());
    assert!(wait_until(
        Duration::from_secs(3),
        || e.stats().outcomes["no_real"] == 1
    ));
}

#[test]
fn half_close_passes_fin_and_reply_still_arrives() {
    let mut e = engine();
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let real = server.local_addr().unwrap();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let srv = std::thread::spawn(move || {
        let (mut s, _) = server.accept().unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap(); // returns only once the client's FIN arrived
        go_rx.recv().unwrap();
        s.write_all(format!("got {} bytes", got.len()).as_bytes())
            .unwrap();
    });
    let vip = free_addr("127.0.0.1");
    let key = ServiceKey::tcp(vip);
    add_service(&mut e, key, options(SchedulerKind::Rr), &[fullnat(real, 1)]);
    let mut c = TcpStream::connect(vip).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(&vec![7u8; 100_000]).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    // The proxy sees the client's FIN: FIN_WAIT, counted inactive.
    assert!(wait_until(Duration::from_secs(3), || {
        e.connections().iter().any(|x| x.state == "FIN_WAIT")
    }));
    assert_eq!(conn_counts(&e.stats(), &key, real), (0, 1));
    go_tx.send(()).unwrap();
    let mut reply = String::new();
    c.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "got 100000 bytes");
    srv.join().unwrap();
    assert!(wait_until(Duration::from_secs(3), || open_conns(&e, &key) == 0));
    let c = e.stats().services[&key].counters;
    assert_eq!((c.in_bytes, c.out_bytes), (100_000, 16));
}

#[test]
fn ipv6_on_loopback() {
    let mut e = engine();
    let reals = backends(&["v6a", "v6b"], "[::1]");
    let (vip, key) = tcp_service(&mut e, "::1", options(SchedulerKind::Rr), &reals);
    let bodies: Vec<String> = (0..10).map(|_| http_get(vip).unwrap()).collect();
    assert_eq!(
        bodies.iter().filter(|b| b.starts_with("v6a")).count(),
        5,
        "{bodies:?}"
    );
    assert!(bodies[0].contains("[::1]:"));
    assert_eq!(e.stats().services[&key].counters.conns, 10);
}

#[test]
fn supports_only_fullnat_tcp_and_udp() {
    let mut e = engine();
    let vip = free_addr("127.0.0.1");
    let key = ServiceKey::tcp(vip);
    let mut svc = ServiceConfig::new(key, options(SchedulerKind::Rr));
    let real = free_addr("127.0.0.1");
    svc.reals.insert(real, fullnat(real, 1));
    assert!(e.supports(&svc).is_ok());
    let dr = rvs_core::RealServer::new(real, ForwardMethod::Dr, 1);
    svc.reals.insert(real, dr);
    let err = e.supports(&svc).unwrap_err();
    assert!(err.0.contains("FULLNAT") && err.0.contains("xdp"), "{err}");
    let fw = ServiceConfig::new(
        ServiceKey::FwMark {
            mark: 1,
            family: rvs_core::AddressFamily::V4,
        },
        options(SchedulerKind::Rr),
    );
    assert!(e.supports(&fw).unwrap_err().0.contains("mark"));
    let sctp = ServiceKey::Addr {
        protocol: rvs_core::Protocol::Sctp,
        addr: vip,
    };
    assert!(
        e.supports(&ServiceConfig::new(sctp, options(SchedulerKind::Rr)))
            .is_err()
    );
    // apply refuses a non-FULLNAT real too, with the reason.
    add_service(&mut e, key, options(SchedulerKind::Rr), &[]);
    assert!(
        e.apply(&[Change::AddReal {
            service: key,
            real: dr
        }])
        .is_err()
    );
}

#[test]
fn bulk_transfer_is_exact_both_ways() {
    // Large transfers go through the splice path; every byte must arrive, in order.
    bulk_transfer(engine(), true);
}

#[test]
fn bulk_transfer_is_exact_without_splice() {
    let config = rvs_proxy::ProxyEngineConfig {
        workers: 1,
        splice: false,
        ..Default::default()
    };
    bulk_transfer(rvs_proxy::ProxyEngine::start(config).unwrap(), false);
}

fn bulk_transfer(mut e: rvs_proxy::ProxyEngine, spliced: bool) {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let real = server.local_addr().unwrap();
    const N: usize = 8 * 1024 * 1024;
    let pattern = |i: usize| (i % 251) as u8;
    let srv = std::thread::spawn(move || {
        let (mut s, _) = server.accept().unwrap();
        let mut got = Vec::with_capacity(N);
        s.read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), N);
        assert!(
            got.iter().enumerate().all(|(i, b)| *b == pattern(i)),
            "upload corrupted"
        );
        let reply: Vec<u8> = (0..N).map(|i| pattern(i + 7)).collect();
        s.write_all(&reply).unwrap();
    });
    let vip = free_addr("127.0.0.1");
    let key = ServiceKey::tcp(vip);
    add_service(&mut e, key, options(SchedulerKind::Rr), &[fullnat(real, 1)]);
    let mut c = TcpStream::connect(vip).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let data: Vec<u8> = (0..N).map(pattern).collect();
    let mut writer = c.try_clone().unwrap();
    let up = std::thread::spawn(move || {
        writer.write_all(&data).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::with_capacity(N);
    c.read_to_end(&mut back).unwrap();
    up.join().unwrap();
    srv.join().unwrap();
    assert_eq!(back.len(), N);
    assert!(
        back.iter().enumerate().all(|(i, b)| *b == pattern(i + 7)),
        "download corrupted"
    );
    assert!(wait_until(Duration::from_secs(3), || open_conns(&e, &key) == 0));
    let c = e.stats().services[&key].counters;
    assert_eq!((c.in_bytes, c.out_bytes), (N as u64, N as u64));
    // Bulk reads are spliced 64 KiB at a time: fewer reads than 16 KiB copies can take.
    let copies = (N / 16384) as u64;
    match spliced {
        true => assert!(
            c.in_pkts > 0 && c.in_pkts < copies,
            "reads counted as packets: {c:?}"
        ),
        false => assert!(c.in_pkts >= copies, "16 KiB copies: {c:?}"),
    }
}

#[test]
fn connect_timeout_is_retried_on_another_real() {
    let mut e = engine();
    // A real whose accept queue is full: its SYNs are dropped, so a connect hangs.
    let stuck = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    stuck
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    stuck.listen(0).unwrap();
    let stuck_addr = stuck.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        match TcpStream::connect_timeout(&stuck_addr, Duration::from_millis(200)) {
            Ok(s) => fillers.push(s),
            Err(_) => break, // the queue is full
        }
    }
    let live = backends(&["t1"], "127.0.0.1");
    let vip = free_addr("127.0.0.1");
    let key = ServiceKey::tcp(vip);
    let mut opts = options(SchedulerKind::Rr);
    opts.proxy.connect_timeout_ms = 200;
    add_service(
        &mut e,
        key,
        opts,
        &[fullnat(stuck_addr, 1), fullnat(live[0], 1)],
    );
    for _ in 0..4 {
        assert!(http_get(vip).unwrap().starts_with("t1"));
    }
    let stats = e.stats();
    assert!(
        stats.outcomes["connect_timeout"] >= 1,
        "{:?}",
        stats.outcomes
    );
    assert_eq!(stats.services[&key].reals[&stuck_addr].counters.conns, 0);
    drop(fillers);
}

#[test]
fn least_connection_sees_open_connections() {
    // wlc must see the proxy's active counts: 6 held connections over 2 equal reals split 3/3,
    // and a real weighted 2 gets twice the share.
    let mut e = engine();
    let reals = backends(&["l1", "l2"], "127.0.0.1");
    let vip = free_addr("127.0.0.1");
    let key = ServiceKey::tcp(vip);
    add_service(
        &mut e,
        key,
        options(SchedulerKind::Wlc),
        &[fullnat(reals[0], 1), fullnat(reals[1], 2)],
    );
    let mut held = Vec::new();
    let mut on_l1 = 0;
    for _ in 0..6 {
        let mut c = KeepAlive::connect(vip).unwrap();
        if c.get().unwrap().starts_with("l1") {
            on_l1 += 1;
        }
        held.push(c);
    }
    assert_eq!(on_l1, 2, "wlc with weights 1:2 over 6 held connections");
    let stats = e.stats();
    assert_eq!(conn_counts(&stats, &key, reals[0]), (2, 0));
    assert_eq!(conn_counts(&stats, &key, reals[1]), (4, 0));
}

#[test]
fn persistence_keeps_a_client_on_its_real_and_lists_the_template() {
    let mut e = engine();
    let reals = backends(&["p1", "p2", "p3"], "127.0.0.1");
    let vip = free_addr("127.0.0.1");
    let key = ServiceKey::tcp(vip);
    let mut opts = options(SchedulerKind::Rr);
    opts.persistence = Some(rvs_core::Persistence {
        timeout: 300,
        prefix_len: 32,
    });
    let rs: Vec<_> = reals.iter().map(|a| fullnat(*a, 1)).collect();
    add_service(&mut e, key, opts, &rs);
    let first = http_get(vip).unwrap();
    for _ in 0..10 {
        assert_eq!(http_get(vip).unwrap(), first, "same client, same real");
    }
    let templates: Vec<_> = e
        .connections()
        .into_iter()
        .filter(|c| c.state == "NONE")
        .collect();
    assert_eq!(templates.len(), 1, "{templates:?}");
    let t = &templates[0];
    assert_eq!(t.client, "127.0.0.1:0".parse().unwrap());
    assert!(first.contains(&t.real.to_string()));
    assert!(t.expires_ms > 290_000 && t.expires_ms <= 300_000, "{t:?}");
    let stats = e.stats();
    assert_eq!(stats.services[&key].reals[&t.real].persistent_conns, 1);
}
