//! UDP churn (loopback): clients keep asking through a UDP VIP — each client a socket that
//! lives for 200 requests, so sessions are made and left all the time — while the reals crash
//! and come back, are drained and restored, removed and re-added, reset by the operator, and
//! the scheduler changes (the harness in `common/churn.rs`). What must hold:
//!
//! * every reply comes from the VIP and is the echo of a datagram this very client sent (no
//!   reply ever reaches another client, none is altered);
//! * a request goes unanswered through all its tries (1 s) only if a real crashed or was reset
//!   meanwhile: a lost datagram is resent, and the resend finds a live real;
//! * once the churn stops, every new client is answered and every real serves again;
//! * when the clients are gone, their sessions expire (UDP timeout 1 s) and nothing is left:
//!   no session in the engine, no descriptor beyond the baseline.

mod common;

use common::churn::{Churn, Cuts, Rng, descriptors};
use common::*;
use rvs_core::desired::{Change, Timeouts};
use rvs_core::engine::Engine;
use rvs_core::{SchedulerKind, ServiceKey, ServiceOptions};
use rvs_proxy::{ProxyEngine, ProxyEngineConfig};
use rvs_testbed::echo::{UdpClient, UdpEchoReal, clients, join};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CHURN: Duration = Duration::from_secs(6);
const CLIENTS: usize = 8;

fn proxy_options() -> ServiceOptions {
    let mut opts = options(SchedulerKind::Wlc);
    opts.proxy.max_fails = 1;
    opts.proxy.fail_timeout_ms = 200;
    opts
}

#[test]
fn udp_replies_and_sessions_survive_real_churn() {
    let mut e = ProxyEngine::start(ProxyEngineConfig {
        workers: 2,
        ..Default::default()
    })
    .expect("engine");
    e.apply(&[Change::SetTimeouts(Timeouts {
        tcp: 900,
        tcp_fin: 120,
        udp: 1,
        ..Default::default()
    })])
    .unwrap();
    let reals: Vec<Arc<UdpEchoReal>> = (0..3).map(UdpEchoReal::new).collect();
    let vip = udp_vip();
    let mut churn = Churn::new(&mut e, ServiceKey::udp(vip), reals, proxy_options());
    let mut warm = UdpClient::new(100);
    let mut bytes = 0;
    for _ in 0..30 {
        warm.ask(vip, &mut bytes).expect("warm-up request");
    }
    drop(warm);
    assert!(
        wait_until(Duration::from_secs(5), || e.connections().is_empty()),
        "the warm-up session expires"
    );
    let fds_before = descriptors();

    let cuts = Arc::new(Cuts::default());
    let snap: Arc<Mutex<String>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let state: Arc<Vec<Mutex<UdpClient>>> = Arc::new(
        (0..CLIENTS as u8)
            .map(|i| Mutex::new(UdpClient::new(i)))
            .collect(),
    );
    let handles = {
        let state = Arc::clone(&state);
        clients(CLIENTS, &cuts, &stop, &snap, move |i, _, t| {
            state[i].lock().unwrap().ask(vip, &mut t.bytes)
        })
    };
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    churn.run(&mut e, CHURN, &mut rng, &cuts, &snap);
    stop.store(true, Ordering::SeqCst);
    let (total, failures) = join(handles);
    let ops = churn.ops;
    println!(
        "udp churn: changes {ops:?}, {total:?}, {} unexcused failures",
        failures.len()
    );
    println!("engine outcomes: {:?}", e.stats().outcomes);
    assert!(
        failures.is_empty(),
        "{} requests went unanswered with no crash or reset meanwhile (each with the state \
         after the mutator's last change), e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(20)]
    );
    assert!(
        ops.iter().all(|&n| n > 0),
        "every kind of change ran: {ops:?}"
    );
    assert!(total.ok > 1000, "too few requests answered: {total:?}");
    drop(state);

    churn.restore(&mut e);
    let mut served = [0u32; 3];
    for i in 0..60u8 {
        let mut c = UdpClient::new(i);
        match c.ask(vip, &mut bytes) {
            Ok(id) => served[id as usize] += 1,
            Err(why) => panic!("client {i} after the churn: {why}"),
        }
    }
    assert!(
        served.iter().all(|&n| n >= 10),
        "round robin after the churn should reach every real: {served:?}"
    );

    // The clients are gone: their sessions expire and free their sockets.
    assert!(
        wait_until(Duration::from_secs(10), || e.connections().is_empty()),
        "sessions left in the engine: {}",
        e.connections().len()
    );
    assert!(
        wait_until(Duration::from_secs(5), || descriptors() <= fds_before),
        "descriptors: {} before the churn, {} after",
        fds_before,
        descriptors()
    );
    e.shutdown();
}
