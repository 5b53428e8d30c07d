//! Unit tests of passive failure detection in [`ServiceRuntime`] (time passed in).

use super::*;
use crate::model::{ForwardMethod, Health, Persistence, Protocol, SchedulerKind};

fn addr(n: u8) -> SocketAddr {
    format!("10.0.0.{n}:80").parse().unwrap()
}

fn reals(n: u8) -> Vec<RealServer> {
    (1..=n)
        .map(|i| RealServer::new(addr(i), ForwardMethod::FullNat, 1))
        .collect()
}

fn ms(v: u64) -> Timestamp {
    Timestamp::from_millis(v)
}

fn req(client: u32, now: Timestamp) -> PickRequest {
    let ip = std::net::Ipv4Addr::from(0xc633_6400 + client); // 198.51.100.0/24 and on
    PickRequest {
        protocol: Protocol::Tcp,
        client: SocketAddr::new(ip.into(), 1000 + (client % 50_000) as u16),
        dest: "192.0.2.10:80".parse().unwrap(),
        now,
    }
}

/// A runtime over `n` reals with `max_fails` and a fail_timeout of 1 s.
fn runtime(kind: SchedulerKind, n: u8, max_fails: u32) -> ServiceRuntime {
    let mut options = ServiceOptions {
        scheduler: kind,
        ..Default::default()
    };
    options.proxy.max_fails = max_fails;
    options.proxy.fail_timeout_ms = 1000;
    let mut rt = ServiceRuntime::new(options, SchedulerParams::default());
    rt.set_reals(&reals(n)).unwrap();
    rt
}

/// Schedules `count` connections at `now` (from clients `first..`); returns the reals picked.
fn picks(rt: &mut ServiceRuntime, first: u32, count: u32, now: Timestamp) -> Vec<SocketAddr> {
    (first..first + count)
        .map(|c| rt.schedule(&req(c, now)).unwrap().addr)
        .collect()
}

#[test]
fn a_failing_real_is_out_for_fail_timeout_then_one_probe_decides() {
    let mut rt = runtime(SchedulerKind::Rr, 3, 1);
    let id = rt.id_of(addr(1)).unwrap();
    let out = rt.connect_failed(id, ms(100));
    assert_eq!(
        out,
        FailOutcome {
            taken_out: true,
            kept_last: false
        }
    );
    assert_eq!(rt.real_info(id).unwrap().passive_out_until, Some(ms(1100)));
    // The configuration (and its weight) is unchanged; the scheduler's view has it at 0.
    assert_eq!(rt.real_info(id).unwrap().server.weight, 1);
    assert!(!picks(&mut rt, 0, 30, ms(1099)).contains(&addr(1)));
    // Its time is over: the next connection to it is the probe, and it is out while that runs.
    let after = picks(&mut rt, 100, 3, ms(1100));
    assert_eq!(
        after.iter().filter(|a| **a == addr(1)).count(),
        1,
        "{after:?}"
    );
    assert!(rt.wants_success(id));
    assert!(!picks(&mut rt, 200, 30, ms(1200)).contains(&addr(1)));
    // The probe succeeds: back in, with its share.
    assert!(rt.connect_succeeded(id), "back in");
    assert!(!rt.connect_succeeded(id), "already in");
    assert!(!rt.wants_success(id));
    let back = picks(&mut rt, 300, 30, ms(1300));
    assert_eq!(back.iter().filter(|a| **a == addr(1)).count(), 10);
}

#[test]
fn a_failed_probe_takes_the_real_out_again() {
    let mut rt = runtime(SchedulerKind::Rr, 2, 1);
    let id = rt.id_of(addr(1)).unwrap();
    rt.connect_failed(id, ms(0));
    let s = (0..2)
        .map(|c| rt.schedule(&req(c, ms(1000))).unwrap())
        .find(|s| s.addr == addr(1))
        .expect("the probe");
    assert!(s.report, "the engine must report the probe's success");
    let out = rt.connect_failed(id, ms(1050));
    assert!(out.taken_out);
    assert_eq!(rt.real_info(id).unwrap().passive_out_until, Some(ms(2050)));
    assert!(!picks(&mut rt, 10, 20, ms(2049)).contains(&addr(1)));
}

/// A probe that never reached the real (the director's own failure: no descriptor, no local
/// port) tells nothing: the real is on probation again at once, and the next connection
/// picked for it is the probe — not out until the probe's fail_timeout.
#[test]
fn an_abandoned_probe_puts_the_real_back_on_probation() {
    let mut rt = runtime(SchedulerKind::Rr, 2, 1);
    let id = rt.id_of(addr(1)).unwrap();
    rt.connect_failed(id, ms(0));
    let mut picked = (0..2).map(|c| rt.schedule(&req(c, ms(1000))).unwrap());
    let probe = picked.find(|s| s.addr == addr(1)).expect("the probe");
    assert!(probe.probe && probe.report);
    // While the probe runs the real is out.
    assert!(!picks(&mut rt, 10, 10, ms(1001)).contains(&addr(1)));
    rt.probe_abandoned(id);
    assert_eq!(rt.real_info(id).unwrap().passive_out_until, None);
    // The next pick of it is the probe again, and it is out while that one runs.
    let again = (20..22)
        .map(|c| rt.schedule(&req(c, ms(1002))).unwrap())
        .find(|s| s.addr == addr(1))
        .expect("probed again at once");
    assert!(again.probe);
    assert!(!picks(&mut rt, 30, 10, ms(1003)).contains(&addr(1)));
    // A connection that is not a probe is not flagged, and abandoning it changes nothing.
    assert!(rt.connect_succeeded(id));
    let ordinary = (40..42)
        .map(|c| rt.schedule(&req(c, ms(1004))).unwrap())
        .find(|s| s.addr == addr(1))
        .unwrap();
    assert!(!ordinary.probe);
    rt.probe_abandoned(id);
    assert_eq!(
        picks(&mut rt, 50, 10, ms(1005))
            .iter()
            .filter(|a| **a == addr(1))
            .count(),
        5
    );
}

#[test]
fn max_fails_counts_within_fail_timeout_and_success_resets() {
    let mut rt = runtime(SchedulerKind::Rr, 3, 3);
    let id = rt.id_of(addr(1)).unwrap();
    assert!(!rt.connect_failed(id, ms(0)).taken_out);
    assert!(!rt.connect_failed(id, ms(10)).taken_out);
    rt.connect_succeeded(id);
    assert!(!rt.connect_failed(id, ms(20)).taken_out);
    assert!(!rt.connect_failed(id, ms(30)).taken_out);
    assert!(rt.connect_failed(id, ms(40)).taken_out);
}

#[test]
fn every_scheduler_skips_an_out_real() {
    for kind in SchedulerKind::ALL {
        let mut rt = runtime(kind, 3, 1);
        let id = rt.id_of(addr(2)).unwrap();
        assert!(rt.connect_failed(id, ms(0)).taken_out, "{kind}");
        // Hashing schedulers without fallback too: clients that hashed to it go elsewhere.
        for c in 0..300 {
            let s = rt
                .schedule(&req(c, ms(1)))
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert_ne!(s.addr, addr(2), "{kind}");
            rt.conn_opened(s.conn, false, ms(1));
        }
    }
}

#[test]
fn the_last_real_is_kept_in_and_tried() {
    let mut rt = runtime(SchedulerKind::Rr, 2, 1);
    let (a, b) = (rt.id_of(addr(1)).unwrap(), rt.id_of(addr(2)).unwrap());
    assert!(rt.connect_failed(a, ms(0)).taken_out);
    assert_eq!(
        rt.connect_failed(b, ms(1)),
        FailOutcome {
            taken_out: false,
            kept_last: true
        }
    );
    assert_eq!(picks(&mut rt, 0, 5, ms(2)), vec![addr(2); 5]);
}

#[test]
fn when_the_reals_left_in_become_unschedulable_the_out_ones_come_back() {
    let mut rt = runtime(SchedulerKind::Rr, 2, 1);
    let a = rt.id_of(addr(1)).unwrap();
    assert!(rt.connect_failed(a, ms(0)).taken_out);
    // The operator drains the other real: rather than refuse everything, the out one is tried.
    let mut rs = reals(2);
    rs[1].weight = 0;
    rt.set_reals(&rs).unwrap();
    let s = rt.schedule(&req(1, ms(5))).unwrap();
    assert_eq!((s.addr, s.all_out, s.report), (addr(1), true, true));
}

#[test]
fn a_retry_brings_out_reals_back_when_none_is_left() {
    // A rolling restart: real 1 restarted a moment ago and is out for fail_timeout; now real 2,
    // the last one in, restarts. Its refused connect keeps it in (the last real), so the retry
    // has only the out real left: it comes back on probation instead of the client being
    // turned away until real 1's time is up.
    let mut rt = runtime(SchedulerKind::Rr, 2, 1);
    let (a, b) = (rt.id_of(addr(1)).unwrap(), rt.id_of(addr(2)).unwrap());
    assert!(rt.connect_failed(a, ms(0)).taken_out);
    assert_eq!(picks(&mut rt, 0, 3, ms(5)), vec![addr(2); 3]);
    assert!(rt.connect_failed(b, ms(6)).kept_last);
    let s = rt.schedule_again(&req(1, ms(7)), &[addr(2)]).unwrap();
    assert_eq!((s.addr, s.all_out, s.probe), (addr(1), true, true));
    // Its probe connects: real 1 is in again; both are scheduled.
    assert!(rt.connect_succeeded(a));
    let mut got = picks(&mut rt, 10, 4, ms(8));
    got.sort();
    got.dedup();
    assert_eq!(got, vec![addr(1), addr(2)]);
}

#[test]
fn a_retry_probes_the_real_out_the_longest_that_did_not_fail_for_it() {
    // Reals 1 and 2 out since earlier (1 the longer), 3 kept in as the last and now refusing.
    let mut rt = runtime(SchedulerKind::Rr, 3, 1);
    let ids: Vec<RealId> = (1..=3).map(|i| rt.id_of(addr(i)).unwrap()).collect();
    assert!(rt.connect_failed(ids[0], ms(0)).taken_out);
    assert!(rt.connect_failed(ids[1], ms(10)).taken_out);
    assert!(rt.connect_failed(ids[2], ms(11)).kept_last);
    let s = rt.schedule_again(&req(1, ms(12)), &[addr(3)]).unwrap();
    assert_eq!((s.addr, s.probe, s.all_out), (addr(1), true, true));
    // While that probe runs, another client's retry probes the other out real, and a third
    // client's retry joins the older probe rather than being turned away.
    let s = rt.schedule_again(&req(2, ms(12)), &[addr(3)]).unwrap();
    assert_eq!((s.addr, s.probe), (addr(2), true));
    let s = rt.schedule_again(&req(4, ms(12)), &[addr(3)]).unwrap();
    assert_eq!((s.addr, s.probe, s.report), (addr(1), false, true));
    // Both probes are refused: both out again, each for a new fail_timeout.
    assert!(rt.connect_failed(ids[0], ms(13)).taken_out);
    assert!(rt.connect_failed(ids[1], ms(14)).taken_out);
    // A client whose connects to 3 and 1 failed: 2 is left for it; with all three failed
    // for it, nothing.
    let s = rt
        .schedule_again(&req(3, ms(15)), &[addr(3), addr(1)])
        .unwrap();
    assert_eq!(s.addr, addr(2));
    assert!(rt.connect_failed(ids[1], ms(16)).taken_out);
    assert_eq!(
        rt.schedule_again(&req(3, ms(17)), &[addr(1), addr(2), addr(3)]),
        Err(ScheduleError::NoneAvailable)
    );
    // The first pick of a new client still goes to the real kept in, not to an out one.
    assert_eq!(picks(&mut rt, 10, 3, ms(18)), vec![addr(3); 3]);
}

#[test]
fn a_retry_does_not_probe_a_drained_or_down_real() {
    let mut rt = runtime(SchedulerKind::Rr, 2, 1);
    let (a, b) = (rt.id_of(addr(1)).unwrap(), rt.id_of(addr(2)).unwrap());
    assert!(rt.connect_failed(a, ms(0)).taken_out);
    assert!(rt.connect_failed(b, ms(1)).kept_last);
    // The operator drains the out real: a retry leaves it alone.
    let mut rs = reals(2);
    rs[0].weight = 0;
    rt.set_reals(&rs).unwrap();
    assert_eq!(
        rt.schedule_again(&req(1, ms(2)), &[addr(2)]),
        Err(ScheduleError::NoneAvailable)
    );
}

#[test]
fn a_real_the_checkers_see_come_back_is_in_at_once() {
    // Out for fail_timeout (1 s) after a refused connect; the checkers see it down, then up
    // at 200 ms: it is scheduled again at once, not after the rest of the second.
    let mut rt = runtime(SchedulerKind::Rr, 2, 1);
    let a = rt.id_of(addr(1)).unwrap();
    assert!(rt.connect_failed(a, ms(0)).taken_out);
    assert_eq!(picks(&mut rt, 0, 4, ms(10)), vec![addr(2); 4]);
    let mut rs = reals(2);
    rs[0].health = Health::Down;
    rt.set_reals(&rs).unwrap();
    assert_eq!(picks(&mut rt, 10, 4, ms(100)), vec![addr(2); 4]);
    rs[0].health = Health::Up;
    rt.set_reals(&rs).unwrap();
    let got = picks(&mut rt, 20, 4, ms(200));
    assert_eq!(got.iter().filter(|&&x| x == addr(1)).count(), 2, "{got:?}");
    // Without the checkers' verdict (unknown to up is no news) it would stay out.
    let mut rt = runtime(SchedulerKind::Rr, 2, 1);
    let a = rt.id_of(addr(1)).unwrap();
    assert!(rt.connect_failed(a, ms(0)).taken_out);
    let mut rs = reals(2);
    rs[0].health = Health::Up;
    rt.set_reals(&rs).unwrap();
    assert_eq!(picks(&mut rt, 0, 4, ms(200)), vec![addr(2); 4]);
}

/// A runtime over `n` reals with max_fails 1 and a fail_timeout of 10 s.
fn runtime_10s(n: u8) -> ServiceRuntime {
    let mut rt = runtime(SchedulerKind::Rr, n, 1);
    let mut options = *rt.options();
    options.proxy.fail_timeout_ms = 10_000;
    rt.set_options(options);
    rt
}

#[test]
fn when_the_last_real_in_fails_reals_out_for_a_second_come_back() {
    // A rolling restart: real 1 restarted and has been out for 2 s of its 10; now real 2, the
    // last one in, fails. Real 1 comes back on probation and real 2 goes out; the next
    // connection goes to real 1 (for UDP, no retry would ever have tried it).
    let mut rt = runtime_10s(2);
    let (a, b) = (rt.id_of(addr(1)).unwrap(), rt.id_of(addr(2)).unwrap());
    assert!(rt.connect_failed(a, ms(0)).taken_out);
    assert_eq!(
        rt.connect_failed(b, ms(2_000)),
        FailOutcome {
            taken_out: true,
            kept_last: false
        }
    );
    // (The only real that can take a connection now: on probation, not an exclusive probe.)
    let s = rt.schedule(&req(1, ms(2_001))).unwrap();
    assert_eq!((s.addr, s.report), (addr(1), true));
    rt.connect_succeeded(a);
    assert_eq!(rt.slot(a).unwrap().passive, PassiveState::In);
    assert_eq!(picks(&mut rt, 2, 3, ms(2_002)), vec![addr(1); 3]);
}

#[test]
fn a_real_out_for_less_than_a_second_is_not_recalled() {
    // Every real dying at once: the last one's failures do not bring back one that failed
    // half a second ago (each return and take-out costs a scheduler rebuild).
    let mut rt = runtime_10s(2);
    let (a, b) = (rt.id_of(addr(1)).unwrap(), rt.id_of(addr(2)).unwrap());
    assert!(rt.connect_failed(a, ms(0)).taken_out);
    assert!(rt.connect_failed(b, ms(500)).kept_last);
    assert_eq!(picks(&mut rt, 0, 3, ms(600)), vec![addr(2); 3]);
    // A drained real is never recalled either.
    let mut rt = runtime_10s(3);
    let ids: Vec<RealId> = (1..=3).map(|i| rt.id_of(addr(i)).unwrap()).collect();
    assert!(rt.connect_failed(ids[0], ms(0)).taken_out);
    let mut rs = reals(3);
    rs[1].weight = 0;
    rt.set_reals(&rs).unwrap();
    assert!(rt.connect_failed(ids[2], ms(5_000)).taken_out);
    assert_eq!(picks(&mut rt, 0, 2, ms(5_001)), vec![addr(1); 2]);
}

#[test]
fn a_persistence_template_on_an_out_real_is_rebound() {
    let mut rt = runtime(SchedulerKind::Rr, 2, 1);
    rt.set_options(ServiceOptions {
        persistence: Some(Persistence {
            timeout: 300,
            prefix_len: 32,
        }),
        ..*rt.options()
    });
    let first = rt.schedule(&req(7, ms(0))).unwrap();
    rt.connect_failed(first.conn.real, ms(1));
    let again = rt.schedule(&req(7, ms(2))).unwrap();
    assert_ne!(again.addr, first.addr);
    assert!(!again.from_template);
}

#[test]
fn max_fails_zero_is_off_and_turning_it_off_brings_reals_back() {
    let mut rt = runtime(SchedulerKind::Rr, 2, 0);
    let a = rt.id_of(addr(1)).unwrap();
    assert_eq!(rt.connect_failed(a, ms(0)), FailOutcome::default());
    assert!(picks(&mut rt, 0, 4, ms(1)).contains(&addr(1)));

    let mut rt = runtime(SchedulerKind::Rr, 2, 1);
    rt.connect_failed(a, ms(0));
    assert!(!picks(&mut rt, 0, 4, ms(1)).contains(&addr(1)));
    let mut off = *rt.options();
    off.proxy.max_fails = 0;
    rt.set_options(off);
    assert_eq!(rt.real_info(a).unwrap().passive_out_until, None);
    assert!(picks(&mut rt, 0, 4, ms(2)).contains(&addr(1)));
}

#[test]
fn while_every_real_is_dead_each_client_tries_them_all_and_the_scheduler_is_left_alone() {
    // Every real refuses, for 30 s; a new client every millisecond, each tried as the proxy
    // engine does: the pick, then up to `connect_retries` retries avoiding the reals that
    // failed it (defaults: max_fails 1, fail_timeout 10 s, 2 retries). Each client tries all
    // three — the real kept in, then the two that are out, one of which may be back (a
    // rolling restart) — so every client costs three refused connects (with hosts that do
    // not answer at all: three connect timeouts before it is closed, 9 s by default).
    // The scheduler (mh: two 65,537-slot tables, milliseconds under the service's lock) is
    // rebuilt a few times in the 30 s, not per client: a retry's probe of an out real does
    // not put it back in the scheduler.
    for kind in [SchedulerKind::Rr, SchedulerKind::Wlc, SchedulerKind::Mh] {
        let options = ServiceOptions {
            scheduler: kind,
            ..Default::default()
        };
        let retries = options.proxy.connect_retries as usize;
        let mut rt = ServiceRuntime::new(options, SchedulerParams::default());
        rt.set_reals(&reals(3)).unwrap();
        let before = rt.scheduler_rebuilds();
        let clients = 30_000u64;
        let mut connects = 0u64;
        for t in 0..clients {
            let r = req(t as u32, ms(t));
            let mut failed: Vec<SocketAddr> = Vec::new();
            while failed.len() <= retries {
                let s = match failed.is_empty() {
                    true => rt.schedule(&r),
                    false => rt.schedule_again(&r, &failed),
                };
                let Ok(s) = s else { break };
                connects += 1;
                rt.connect_failed(s.conn.real, r.now);
                failed.push(s.addr);
            }
        }
        let rebuilds = rt.scheduler_rebuilds() - before;
        println!("{kind:?}: {connects} connects for {clients} clients, {rebuilds} rebuilds");
        assert_eq!(connects, 3 * clients, "{kind:?}");
        // (rr and wlc: 6, mh: 2.)
        assert!(rebuilds <= 10, "{kind:?}: {rebuilds}");
    }
}
