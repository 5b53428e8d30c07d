//! Unit tests of [`ServiceRuntime`] (round robin as the scheduler, so picks are predictable).

use super::*;
use crate::model::{ForwardMethod, Persistence, Protocol, SchedulerKind};
use std::time::Duration;

fn real(n: u8, weight: u32) -> RealServer {
    RealServer::new(
        format!("10.0.0.{n}:80").parse().unwrap(),
        ForwardMethod::Nat,
        weight,
    )
}

fn addr(n: u8) -> SocketAddr {
    format!("10.0.0.{n}:80").parse().unwrap()
}

fn req_from(client: &str, dport: u16, now: Timestamp) -> PickRequest {
    PickRequest {
        protocol: Protocol::Tcp,
        client: client.parse().unwrap(),
        dest: SocketAddr::new("192.0.2.10".parse().unwrap(), dport),
        now,
    }
}

fn req(client: &str) -> PickRequest {
    req_from(client, 80, Timestamp::ZERO)
}

fn rr(persistence: Option<Persistence>) -> ServiceRuntime {
    let options = ServiceOptions {
        scheduler: SchedulerKind::Rr,
        persistence,
        ..Default::default()
    };
    ServiceRuntime::new(options, SchedulerParams::default())
}

fn persistent() -> ServiceRuntime {
    rr(Some(Persistence {
        timeout: 300,
        prefix_len: 24,
    }))
}

/// Schedule and open an inactive connection; returns its ref.
fn open(rt: &mut ServiceRuntime, client: &str) -> (ConnRef, SocketAddr) {
    let s = rt.schedule(&req(client)).unwrap();
    rt.conn_opened(s.conn, false, Timestamp::ZERO);
    (s.conn, s.addr)
}

#[test]
fn errors_when_nothing_to_schedule() {
    let mut rt = rr(None);
    assert_eq!(
        rt.schedule(&req("198.51.100.1:1000")),
        Err(ScheduleError::NoReals)
    );
    rt.set_reals(&[real(1, 0), real(2, 0)]).unwrap();
    assert_eq!(
        rt.schedule(&req("198.51.100.1:1000")),
        Err(ScheduleError::NoneAvailable)
    );
}

#[test]
fn schedules_through_the_scheduler_with_index_and_address() {
    let mut rt = rr(None);
    rt.set_reals(&[real(1, 1), real(2, 1)]).unwrap();
    let a = rt.schedule(&req("198.51.100.1:1000")).unwrap();
    let b = rt.schedule(&req("198.51.100.1:1001")).unwrap();
    assert_eq!(
        (a.index, a.addr, a.from_template, a.conn.template),
        (0, addr(1), false, None)
    );
    assert_eq!((b.index, b.addr), (1, addr(2)));
    assert_eq!(rt.id_at(1), Some(b.conn.real));
    assert_eq!(rt.id_of(addr(2)), Some(b.conn.real));
}

#[test]
fn uses_effective_weight() {
    let mut rt = rr(None);
    let mut down = real(1, 5);
    down.health = crate::model::Health::Down;
    rt.set_reals(&[down, real(2, 1)]).unwrap();
    assert_eq!(rt.states()[0].weight, 0);
    for _ in 0..3 {
        assert_eq!(rt.schedule(&req("198.51.100.1:1")).unwrap().addr, addr(2));
    }
}

#[test]
fn accounting_counts_active_and_inactive() {
    let mut rt = rr(None);
    rt.set_reals(&[real(1, 1)]).unwrap();
    let (c, _) = open(&mut rt, "198.51.100.1:1");
    let (d, _) = open(&mut rt, "198.51.100.1:2");
    rt.conn_changed(c.real, false, true);
    let info = rt.real_info(c.real).unwrap();
    assert_eq!((info.active, info.inactive), (1, 1));
    assert_eq!((rt.states()[0].active, rt.states()[0].inactive), (1, 1));
    rt.conn_changed(c.real, true, true); // no change
    rt.conn_closed(c, true, Timestamp::ZERO);
    rt.conn_closed(d, false, Timestamp::ZERO);
    let info = rt.real_info(c.real).unwrap();
    assert_eq!((info.active, info.inactive), (0, 0));
    // Closing too often never underflows.
    rt.conn_closed(d, false, Timestamp::ZERO);
    assert_eq!(rt.real_info(c.real).unwrap().inactive, 0);
}

#[test]
fn set_reals_keeps_ids_and_counts_of_reals_that_stay() {
    let mut rt = rr(None);
    rt.set_reals(&[real(1, 1), real(2, 1)]).unwrap();
    let (c, a) = open(&mut rt, "198.51.100.1:1");
    assert_eq!(a, addr(1));
    rt.set_reals(&[real(3, 1), real(1, 7)]).unwrap();
    assert_eq!(rt.id_of(addr(1)), Some(c.real));
    assert_eq!(rt.id_at(1), Some(c.real));
    assert_eq!(rt.states()[1].inactive, 1);
    assert_eq!(rt.states()[1].weight, 7);
    assert!(rt.id_of(addr(2)).is_none(), "idle removed real is gone");
}

#[test]
fn duplicate_reals_are_refused_and_nothing_changes() {
    let mut rt = rr(None);
    rt.set_reals(&[real(1, 1)]).unwrap();
    let err = rt.set_reals(&[real(2, 1), real(2, 3)]).unwrap_err();
    assert_eq!(err, RuntimeError::DuplicateReal(addr(2)));
    assert_eq!(rt.states().len(), 1);
    assert_eq!(rt.states()[0].addr, addr(1));
}

#[test]
fn removed_busy_real_is_a_tombstone_until_its_last_close() {
    let mut rt = rr(None);
    rt.set_reals(&[real(1, 1), real(2, 1)]).unwrap();
    let (c, _) = open(&mut rt, "198.51.100.1:1");
    rt.set_reals(&[real(2, 1)]).unwrap();
    let info = rt.real_info(c.real).unwrap();
    assert!(info.removed);
    assert_eq!(info.inactive, 1);
    assert_eq!(rt.reals().count(), 2);
    for _ in 0..3 {
        assert_eq!(rt.schedule(&req("198.51.100.1:9")).unwrap().addr, addr(2));
    }
    rt.conn_changed(c.real, false, true);
    assert_eq!(rt.real_info(c.real).unwrap().active, 1);
    rt.conn_closed(c, true, Timestamp::ZERO);
    assert!(rt.real_info(c.real).is_none(), "freed after last close");
    // The freed slot is reused by the next new real.
    rt.set_reals(&[real(2, 1), real(4, 1)]).unwrap();
    assert_eq!(rt.id_of(addr(4)), Some(c.real));
}

#[test]
fn re_added_real_gets_its_tombstone_back() {
    let mut rt = rr(None);
    rt.set_reals(&[real(1, 1)]).unwrap();
    let (c, _) = open(&mut rt, "198.51.100.1:1");
    rt.set_reals(&[]).unwrap();
    rt.set_reals(&[real(1, 2)]).unwrap();
    let info = rt.real_info(c.real).unwrap();
    assert!(!info.removed);
    assert_eq!((info.inactive, info.server.weight), (1, 2));
}

#[test]
fn overload_thresholds_with_hysteresis() {
    let mut rt = rr(None);
    let mut r1 = real(1, 1);
    r1.upper_threshold = 2;
    r1.lower_threshold = 1;
    rt.set_reals(&[r1, real(2, 1)]).unwrap();
    let id1 = rt.id_of(addr(1)).unwrap();
    let c1 = ConnRef {
        real: id1,
        template: None,
    };
    rt.conn_opened(c1, true, Timestamp::ZERO);
    assert!(!rt.states()[0].overloaded);
    rt.conn_opened(c1, false, Timestamp::ZERO);
    assert!(rt.states()[0].overloaded);
    for _ in 0..4 {
        assert_eq!(rt.schedule(&req("198.51.100.1:1")).unwrap().addr, addr(2));
    }
    rt.conn_closed(c1, false, Timestamp::ZERO);
    assert!(
        rt.states()[0].overloaded,
        "1 is not below the lower threshold 1"
    );
    rt.conn_closed(c1, true, Timestamp::ZERO);
    assert!(!rt.states()[0].overloaded);
    let picks: Vec<_> = (0..2)
        .map(|_| rt.schedule(&req("198.51.100.1:1")).unwrap().addr)
        .collect();
    assert!(picks.contains(&addr(1)));
}

#[test]
fn persistence_sticks_clients_of_one_netmask_to_one_real() {
    let mut rt = persistent();
    rt.set_reals(&[real(1, 1), real(2, 1)]).unwrap();
    let first = rt.schedule(&req("198.51.100.1:1000")).unwrap();
    assert!(!first.from_template);
    assert!(first.conn.template.is_some());
    for client in ["198.51.100.1:1001", "198.51.100.99:5"] {
        let s = rt.schedule(&req(client)).unwrap();
        assert!(s.from_template);
        assert_eq!(s.addr, first.addr);
        assert_eq!(s.conn, first.conn);
    }
    // Another /24 goes through the scheduler (rr: the other real).
    let other = rt.schedule(&req("203.0.113.1:1")).unwrap();
    assert!(!other.from_template);
    assert_ne!(other.addr, first.addr);
    assert_eq!(rt.template_count(), 2);
    assert_eq!(rt.persistent_conns(first.conn.real), 1);
}

#[test]
fn one_template_covers_every_destination_port() {
    // One runtime per service: for a firewall-mark service every port shares the template.
    let mut rt = persistent();
    rt.set_reals(&[real(1, 1), real(2, 1), real(3, 1)]).unwrap();
    let a = rt
        .schedule(&req_from("198.51.100.1:1000", 80, Timestamp::ZERO))
        .unwrap();
    let b = rt
        .schedule(&req_from("198.51.100.1:1001", 443, Timestamp::ZERO))
        .unwrap();
    assert_eq!(a.addr, b.addr);
    assert!(b.from_template);
}

#[test]
fn template_to_a_down_real_is_not_used_and_is_rebound() {
    let mut rt = persistent();
    rt.set_reals(&[real(1, 1), real(2, 1)]).unwrap();
    let first = rt.schedule(&req("198.51.100.1:1")).unwrap();
    assert_eq!(first.addr, addr(1));
    rt.conn_opened(first.conn, true, Timestamp::ZERO);
    // Weight 0 (drained): the template is still followed, as IPVS does by default
    // (expire_quiescent_template = 0); overloaded too.
    rt.set_reals(&[real(1, 0), real(2, 1)]).unwrap();
    let s = rt.schedule(&req("198.51.100.1:2")).unwrap();
    assert_eq!((s.addr, s.from_template), (addr(1), true));
    // Down by health checks (or disabled, below): the template is not used.
    let mut down = real(1, 1);
    down.health = crate::model::Health::Down;
    rt.set_reals(&[down, real(2, 1)]).unwrap();
    let s = rt.schedule(&req("198.51.100.1:2")).unwrap();
    assert_eq!((s.addr, s.from_template), (addr(2), false));
    assert_eq!(rt.persistent_conns(first.conn.real), 0);
    assert_eq!(rt.persistent_conns(s.conn.real), 1);
    // Now bound to real 2.
    assert!(rt.schedule(&req("198.51.100.1:3")).unwrap().from_template);
    // Real 2 removed (idle, freed): the template is unbound and rescheduled.
    rt.set_reals(&[real(1, 1)]).unwrap();
    let s = rt.schedule(&req("198.51.100.1:4")).unwrap();
    assert_eq!((s.addr, s.from_template), (addr(1), false));
}

#[test]
fn template_to_a_disabled_real_is_not_used() {
    let mut rt = persistent();
    rt.set_reals(&[real(1, 1), real(2, 1)]).unwrap();
    let first = rt.schedule(&req("198.51.100.1:1")).unwrap();
    assert_eq!(first.addr, addr(1));
    let mut disabled = real(1, 1);
    disabled.admin = crate::model::AdminState::Disabled;
    rt.set_reals(&[disabled, real(2, 1)]).unwrap();
    let s = rt.schedule(&req("198.51.100.1:2")).unwrap();
    assert_eq!((s.addr, s.from_template), (addr(2), false));
}

#[test]
fn template_to_a_quorum_gated_real_is_not_used() {
    let mut rt = persistent();
    rt.set_reals(&[real(1, 1), real(2, 1)]).unwrap();
    let first = rt.schedule(&req("198.51.100.1:1")).unwrap();
    assert_eq!(first.addr, addr(1));
    // quorum lost: real 1 is held out while a sorry server (real 2 here) serves
    let mut gated = real(1, 1);
    gated.quorum_gated = true;
    assert_eq!(gated.effective_weight(), 0);
    rt.set_reals(&[gated, real(2, 1)]).unwrap();
    let s = rt.schedule(&req("198.51.100.1:2")).unwrap();
    assert_eq!((s.addr, s.from_template), (addr(2), false));
}

#[test]
fn template_lives_timeout_after_its_last_connection_closes() {
    let mut rt = persistent();
    rt.set_reals(&[real(1, 1), real(2, 1)]).unwrap();
    let t0 = Timestamp::ZERO;
    let s = rt.schedule(&req("198.51.100.1:1")).unwrap();
    rt.conn_opened(s.conn, true, t0);
    assert_eq!(rt.expire(t0 + Duration::from_secs(1000)), 0, "in use");
    let closed_at = t0 + Duration::from_secs(1000);
    rt.conn_closed(s.conn, true, closed_at);
    assert_eq!(rt.expire(closed_at + Duration::from_secs(299)), 0);
    assert_eq!(rt.template_count(), 1);
    assert_eq!(rt.expire(closed_at + Duration::from_secs(300)), 1);
    assert_eq!(rt.template_count(), 0);
    assert_eq!(rt.persistent_conns(s.conn.real), 0);
}

#[test]
fn template_of_a_failed_connect_expires_after_timeout() {
    let mut rt = persistent();
    rt.set_reals(&[real(1, 1)]).unwrap();
    let s = rt.schedule(&req("198.51.100.1:1")).unwrap();
    assert_eq!(rt.persistent_conns(s.conn.real), 1);
    assert_eq!(rt.expire(Timestamp::from_secs(300)), 1);
    assert_eq!(rt.persistent_conns(s.conn.real), 0);
}

#[test]
fn set_options_changes_scheduler_and_persistence() {
    let mut rt = persistent();
    rt.set_reals(&[real(1, 1), real(2, 1)]).unwrap();
    rt.schedule(&req("198.51.100.1:1")).unwrap();
    assert_eq!(rt.template_count(), 1);
    let mut o = *rt.options();
    o.persistence = None;
    o.scheduler = SchedulerKind::Wrr;
    rt.set_options(o);
    assert_eq!(rt.template_count(), 0);
    assert_eq!(rt.options().scheduler, SchedulerKind::Wrr);
    assert!(rt.reals().all(|r| r.persistent == 0));
    let s = rt.schedule(&req("198.51.100.1:2")).unwrap();
    assert_eq!(s.conn.template, None);
}

/// A retry after failed connects never gets a real to avoid, gets another one while any is
/// available, and rebinds a template naming an avoided real — with every scheduler; the
/// table schedulers that can probe on (mh) do it without rebuilding the table.
#[test]
fn schedule_again_avoids_the_failed_reals_with_every_scheduler() {
    for kind in SchedulerKind::ALL {
        for persistence in [
            None,
            Some(Persistence {
                timeout: 300,
                prefix_len: 32,
            }),
        ] {
            let options = ServiceOptions {
                scheduler: kind,
                persistence,
                ..Default::default()
            };
            let mut rt = ServiceRuntime::new(options, SchedulerParams::default());
            rt.set_reals(&[real(1, 1), real(2, 2), real(3, 1)]).unwrap();
            for c in 0..50u16 {
                let client = format!("198.51.100.{}:{}", c % 7 + 1, 1000 + c);
                let first = rt
                    .schedule(&req(&client))
                    .unwrap_or_else(|e| panic!("{kind:?} {persistence:?} client {c}: {e:?}"))
                    .addr;
                let second = rt
                    .schedule_again(&req(&client), &[first])
                    .unwrap_or_else(|e| panic!("{kind:?} {persistence:?}: {e:?}"))
                    .addr;
                assert_ne!(second, first, "{kind:?} {persistence:?}: same real again");
                let third = rt
                    .schedule_again(&req(&client), &[first, second])
                    .unwrap()
                    .addr;
                assert!(
                    third != first && third != second,
                    "{kind:?} {persistence:?}: an avoided real"
                );
                assert_eq!(
                    rt.schedule_again(&req(&client), &[addr(1), addr(2), addr(3)]),
                    Err(ScheduleError::NoneAvailable),
                    "{kind:?}: every real avoided"
                );
            }
            if kind == SchedulerKind::Mh {
                assert_eq!(rt.retry_rebuilds(), 0, "mh probes on instead of rebuilding");
            }
        }
    }
}
