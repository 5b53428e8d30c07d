//! Churn (loopback): clients keep opening connections through a TCP VIP and exchanging echoed
//! data while the reals crash and come back, are drained and restored, removed and re-added,
//! reset by the operator, and the service's scheduler changes under them. What must hold:
//!
//! * every byte a client gets back is the byte it sent, on its own connection (no cross-talk,
//!   no data invented, a stream cut short never delivered as complete);
//! * a connection fails only if a real crashed or was reset while it was open: with at most one
//!   real down at a time and retries on, no new connection is refused to a client;
//! * once the churn stops, every new connection succeeds and every real serves again;
//! * at the end the engine holds no connection and the process no descriptor beyond its pools.

mod common;

use common::churn::{Churn, Cuts, Rng, descriptors};
use common::*;
use rvs_core::engine::Engine;
use rvs_core::{Persistence, SchedulerKind, ServiceKey, ServiceOptions};
use rvs_proxy::{ProxyEngine, ProxyEngineConfig};
use rvs_testbed::echo::{TcpEchoReal, clients, join, tcp_session};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the churn runs.
const CHURN: Duration = Duration::from_secs(6);
/// Client threads.
const CLIENTS: usize = 8;

fn proxy_options() -> ServiceOptions {
    let mut opts = options(SchedulerKind::Wlc);
    opts.proxy.connect_retries = 2;
    opts.proxy.connect_timeout_ms = 2000;
    // Passive detection on, with a short window so taken-out reals are probed during the run.
    opts.proxy.max_fails = 1;
    opts.proxy.fail_timeout_ms = 200;
    opts
}

#[test]
fn data_and_accounting_survive_real_churn() {
    churn_test(proxy_options(), "");
}

/// The same with persistence (-p 1): each client thread connects from an address of its own
/// (127.0.0.10 and on), so each has its template; a template whose real is drained, removed,
/// crashed (taken out) or fails a connect is rebound.
#[test]
fn persistent_clients_survive_real_churn() {
    let opts = ServiceOptions {
        persistence: Some(Persistence {
            timeout: 1,
            prefix_len: 32,
        }),
        ..proxy_options()
    };
    churn_test(opts, "persistent ");
}

/// The source address of client `i`'s connections.
fn client_addr(i: usize) -> IpAddr {
    Ipv4Addr::new(127, 0, 0, 10 + i as u8).into()
}

fn churn_test(opts: ServiceOptions, what: &str) {
    let workers = 2;
    let mut e = ProxyEngine::start(ProxyEngineConfig {
        workers,
        ..Default::default()
    })
    .expect("engine");
    let reals: Vec<Arc<TcpEchoReal>> = (0..3).map(TcpEchoReal::new).collect();
    let vip = free_addr("127.0.0.1");
    let mut churn = Churn::new(&mut e, ServiceKey::tcp(vip), reals, opts);
    let key = churn.key;
    // Warm up (the workers' buffers, the first pipes) before the descriptor baseline.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut warm = 0;
    for _ in 0..30 {
        tcp_session(vip, client_addr(0), &mut rng, &mut warm).expect("warm-up session");
    }
    assert!(wait_until(Duration::from_secs(5), || e
        .connections()
        .is_empty()));
    let fds_before = descriptors();

    let cuts = Arc::new(Cuts::default());
    let snap: Arc<Mutex<String>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let handles = clients(CLIENTS, &cuts, &stop, &snap, move |i, rng, t| {
        tcp_session(vip, client_addr(i), rng, &mut t.bytes)
    });
    churn.run(&mut e, CHURN, &mut rng, &cuts, &snap);
    stop.store(true, Ordering::SeqCst);
    let (total, failures) = join(handles);
    let ops = churn.ops;
    println!(
        "{what}churn: changes {ops:?}, {total:?}, {} unexcused failures",
        failures.len()
    );
    println!("engine outcomes: {:?}", e.stats().outcomes);
    assert!(
        failures.is_empty(),
        "{} sessions failed with no crash or reset while they were open (each with the state \
         after the mutator's last change), e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(40)]
    );
    assert!(
        ops.iter().all(|&n| n > 0),
        "every kind of change ran: {ops:?}"
    );
    assert!(total.ok > 200, "too few sessions completed: {total:?}");
    if opts.persistence.is_some() {
        let templates = e.connections().iter().filter(|c| c.state == "NONE").count();
        assert!(
            (1..=CLIENTS).contains(&templates),
            "one template per client address: {templates}"
        );
    }

    churn.restore(&mut e);
    let mut served = [0u32; 3];
    let mut bytes = 0;
    // New clients (each from an address of its own: with persistence, a template each).
    for i in 0..150u8 {
        let from = Ipv4Addr::new(127, 0, 1, 1 + i).into();
        match tcp_session(vip, from, &mut rng, &mut bytes) {
            Ok(id) => served[id as usize] += 1,
            Err(why) => panic!("session {i} after the churn failed: {why}"),
        }
    }
    assert!(
        served.iter().all(|&n| n >= 30),
        "round robin after the churn should reach every real: {served:?}"
    );

    // Nothing left behind: no connection in the engine, no descriptor beyond the workers'
    // pipe pools (64 pipes of 2 descriptors each per worker at most).
    assert!(
        wait_until(Duration::from_secs(10), || open_conns(&e, &key) == 0),
        "connections left in the engine: {:?}",
        e.connections()
    );
    // Persistence templates (1 s) expire too.
    assert!(
        wait_until(Duration::from_secs(10), || e.connections().is_empty()),
        "entries left in the engine: {:?}",
        e.connections()
    );
    let slack = workers * 64 * 2;
    assert!(
        wait_until(Duration::from_secs(10), || {
            churn.reals.iter().for_each(|x| x.prune());
            descriptors() <= fds_before + slack
        }),
        "descriptors: {} before the churn, {} after (pools may hold {slack})",
        fds_before,
        descriptors()
    );
    e.shutdown();
}
