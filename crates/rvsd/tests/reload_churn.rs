//! Reload churn (loopback, the proxy engine, no privileges): rvsd serves a keepalived.conf
//! virtual server with TCP_CHECK health checkers in front of three echo reals, while clients
//! exchange checked echoes through the VIP and the test keeps reloading (SIGHUP) between two
//! versions of the file — another scheduler, other weights, one real left out and back — and
//! crashes and restarts the reals (the checkers take them out and put them back). What must
//! hold:
//!
//! * every byte a client gets back is the byte it sent (rvs_testbed::echo::tcp_session);
//! * a session fails only if a real crashed while it was open: reloads, the removal of a real
//!   by a reload and the health checkers' changes cost no client anything;
//! * every reload is applied (the log says so each time), none is refused;
//! * once quiet again (the first file, every real up), the checkers see every real up, new
//!   sessions reach every real, and no connection is left open in rvsd.

mod common;
mod keepalived_common;

use common::*;
use keepalived_common::*;
use rvs_testbed::echo::{Cuts, Rng, TcpEchoReal, clients, join, tcp_session};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const CHURN: Duration = Duration::from_secs(8);
const CLIENTS: usize = 6;

/// The keepalived.conf: version A (rr, weights 1:1:1, all three reals) or B (wlc, weights
/// 2:1, the third real left out).
fn conf(vip: SocketAddr, reals: &[Arc<TcpEchoReal>], b: bool) -> String {
    let (algo, weights): (&str, &[u32]) = if b {
        ("wlc", &[2, 1])
    } else {
        ("rr", &[1, 1, 1])
    };
    let mut s = format!(
        "virtual_server {} {} {{\n    delay_loop 1\n    lb_algo {algo}\n    lb_kind FNAT\n    protocol TCP\n",
        vip.ip(),
        vip.port()
    );
    for (real, w) in reals.iter().zip(weights) {
        let a = real.addr();
        s += &format!(
            "    real_server {} {} {{\n        weight {w}\n        TCP_CHECK {{\n            connect_timeout 1\n            retry 1\n            delay_before_retry 1\n        }}\n    }}\n",
            a.ip(),
            a.port()
        );
    }
    s + "}\n"
}

/// Each real's observed health, open connections (active + inactive) and time left out by
/// passive failure detection (ms), in the API.
fn reals_view(d: &Rvsd, vip: SocketAddr, reals: &[Arc<TcpEchoReal>]) -> Vec<(String, u64, u64)> {
    reals
        .iter()
        .map(|r| match real_view(d, vip, r.addr()) {
            Some(v) => (
                v["real"]["health"].as_str().unwrap_or("?").to_string(),
                v["stats"]["active_conns"].as_u64().unwrap_or(0)
                    + v["stats"]["inactive_conns"].as_u64().unwrap_or(0),
                v["stats"]["passive_out_ms"].as_u64().unwrap_or(0),
            ),
            None => ("not listed".to_string(), 0, 0),
        })
        .collect()
}

#[test]
fn reloads_crashes_and_health_checks_cost_clients_nothing() {
    let reals: Vec<Arc<TcpEchoReal>> = (0..3).map(TcpEchoReal::new).collect();
    let vip = vip();
    let (d, _dir, path) = start_keepalived(&conf(vip, &reals, false));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let from: IpAddr = Ipv4Addr::LOCALHOST.into();
    let mut warm = 0;
    for _ in 0..10 {
        tcp_session(vip, from, &mut rng, &mut warm).expect("warm-up session");
    }

    let cuts = Arc::new(Cuts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let snap: Arc<Mutex<String>> = Arc::default();
    let handles = clients(CLIENTS, &cuts, &stop, &snap, move |_, rng, t| {
        tcp_session(vip, from, rng, &mut t.bytes)
    });

    // The mutator: a reload every 250-500 ms (A and B in turn), and between them now and then
    // a crash of one real (only one down at a time) or a restart.
    let mut reloads = 0;
    let mut crashes = 0;
    let mut b = false;
    let t0 = Instant::now();
    while t0.elapsed() < CHURN {
        thread::sleep(Duration::from_millis(250 + rng.below(250)));
        b = !b;
        std::fs::write(&path, conf(vip, &reals, b)).unwrap();
        d.signal("HUP");
        reloads += 1;
        d.wait_log("reload applied", reloads);
        let r = &reals[rng.below(3) as usize];
        match rng.below(3) {
            0 if reals.iter().all(|x| x.is_up()) => {
                cuts.begin();
                r.crash();
                cuts.end();
                crashes += 1;
            }
            _ => reals.iter().for_each(|x| x.restart()),
        }
        reals.iter().for_each(|x| x.prune());
    }
    stop.store(true, Ordering::SeqCst);
    let (total, failures) = join(handles);
    let (ok, excused) = (total.ok, total.excused);
    println!(
        "reload churn: {reloads} reloads, {crashes} crashes; {ok} sessions, {excused} cut by a \
         crash, {} failed otherwise",
        failures.len()
    );
    let log = d.log();
    assert!(
        failures.is_empty(),
        "{} sessions failed with no crash meanwhile, e.g. {:?}\nrvsd log:\n{log}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(crashes > 0 && ok > 500, "{crashes} crashes, {ok} sessions");
    assert!(
        !log.contains("reload refused") && !log.contains("panicked"),
        "rvsd log:\n{log}"
    );

    // Quiet: file A, every real up; the checkers see them all up again.
    reals.iter().for_each(|x| x.restart());
    std::fs::write(&path, conf(vip, &reals, false)).unwrap();
    d.signal("HUP");
    d.wait_log("reload applied", reloads + 1);
    wait_for("every real up again", Duration::from_secs(10), || {
        reals_view(&d, vip, &reals)
            .iter()
            .all(|(h, _, _)| h == "up")
    });

    // A crash long enough for the checkers: real 0 refuses connects (passive detection takes
    // it out for fail_timeout, 10 s), the checkers see it down; restarted, they see it up, and
    // that puts it back at once rather than when the 10 s are up.
    let mut bytes = 0;
    reals[0].crash();
    for i in 0..30 {
        if let Err(why) = tcp_session(vip, from, &mut rng, &mut bytes) {
            panic!("session {i} while real 0 is down (retried elsewhere): {why}");
        }
    }
    assert!(
        reals_view(&d, vip, &reals)[0].2 > 0,
        "real 0 taken out by passive detection: {:?}\n{}",
        reals_view(&d, vip, &reals),
        d.get(&format!("/v1/services/tcp:{vip}")).body
    );
    wait_for("real 0 down", Duration::from_secs(10), || {
        reals_view(&d, vip, &reals)[0].0 == "down"
    });
    reals[0].restart();
    wait_for("real 0 up", Duration::from_secs(10), || {
        reals_view(&d, vip, &reals)[0].0 == "up"
    });
    assert_eq!(
        reals_view(&d, vip, &reals)[0].2,
        0,
        "the checkers' up ends the passive take-out: {:?}",
        reals_view(&d, vip, &reals)
    );
    // Reals the churn's short crashes took out come back within fail_timeout (a probe each).
    wait_for("no real out", Duration::from_secs(15), || {
        reals_view(&d, vip, &reals)
            .iter()
            .all(|(_, _, out)| *out == 0)
    });
    let mut served = [0u32; 3];
    for i in 0..90 {
        match tcp_session(vip, from, &mut rng, &mut bytes) {
            Ok(id) => served[id as usize] += 1,
            Err(why) => panic!("session {i} after the churn: {why}"),
        }
    }
    assert!(
        served.iter().all(|&n| n >= 10),
        "every real serves after the churn: {served:?}\n{}",
        d.get(&format!("/v1/services/tcp:{vip}")).body
    );
    wait_for("no connection left open", Duration::from_secs(10), || {
        reals_view(&d, vip, &reals)
            .iter()
            .all(|(_, open, _)| *open == 0)
    });
}
