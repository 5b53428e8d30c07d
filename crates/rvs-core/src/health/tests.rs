//! Tests of the health state machines.

use super::*;
use crate::time::Timestamp;
use std::time::Duration;

const OK: CheckOutcome = CheckOutcome::Success {
    dynamic_weight: None,
};
const FAIL: CheckOutcome = CheckOutcome::Failure;

fn t(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn th(retry: u32, alpha: bool) -> CheckThresholds {
    CheckThresholds {
        delay_loop: Duration::from_secs(6),
        retry,
        delay_before_retry: Duration::from_secs(3),
        alpha,
    }
}

fn addr(last: u8) -> SocketAddr {
    format!("10.0.0.{last}:80").parse().unwrap()
}

fn real(last: u8, weight: u32, inhibit: bool, alpha: bool) -> RealHealth {
    let c = CheckerMachine::new(th(0, alpha), t(0), Duration::ZERO);
    RealHealth::new(addr(last), weight, inhibit, vec![c])
}

#[test]
fn warmup_offsets_the_first_check() {
    let c = CheckerMachine::new(th(3, false), t(1000), Duration::from_millis(2500));
    assert_eq!(c.next_due(), t(3500));
    assert!(c.is_up());
}

#[test]
fn down_after_retry_plus_one_failures_spaced_by_delay_before_retry() {
    let mut c = CheckerMachine::new(th(3, false), t(0), Duration::ZERO);
    for i in 0..3u64 {
        assert_eq!(c.on_result(t(i * 3000), FAIL), Verdict::Same);
        assert_eq!(
            c.next_due(),
            t(i * 3000 + 3000),
            "retry {i} is delay_before_retry later"
        );
        assert_eq!(c.failures(), i as u32 + 1);
    }
    assert_eq!(c.on_result(t(9000), FAIL), Verdict::Down);
    assert_eq!(c.next_due(), t(15000), "down: back to delay_loop");
    assert_eq!(c.on_result(t(15000), FAIL), Verdict::Same);
    assert_eq!(c.on_result(t(21000), OK), Verdict::Up);
    assert_eq!(c.next_due(), t(27000));
}

#[test]
fn a_success_resets_the_failure_count() {
    let mut c = CheckerMachine::new(th(1, false), t(0), Duration::ZERO);
    assert_eq!(c.on_result(t(0), FAIL), Verdict::Same);
    assert_eq!(c.on_result(t(3000), OK), Verdict::Same);
    assert_eq!(c.failures(), 0);
    assert_eq!(c.on_result(t(9000), FAIL), Verdict::Same);
    assert_eq!(c.on_result(t(12000), FAIL), Verdict::Down);
}

#[test]
fn alpha_starts_down_and_needs_one_success() {
    let mut c = CheckerMachine::new(th(3, true), t(0), Duration::ZERO);
    assert!(!c.is_up());
    assert_eq!(c.on_result(t(0), FAIL), Verdict::Same);
    assert_eq!(c.next_due(), t(6000));
    assert_eq!(c.on_result(t(6000), OK), Verdict::Up);
}

#[test]
fn real_is_up_only_while_every_checker_is_up() {
    let cs = vec![
        CheckerMachine::new(th(0, false), t(0), Duration::ZERO),
        CheckerMachine::new(th(0, false), t(0), Duration::ZERO),
    ];
    let mut r = RealHealth::new(addr(7), 1, false, cs);
    let a = r.on_result(t(0), 1, FAIL);
    assert_eq!(
        a[0],
        HealthAction::SetHealth {
            real: addr(7),
            health: Health::Down,
            inhibit: false
        }
    );
    assert_eq!(
        a[1],
        HealthAction::Notify {
            real: Some(addr(7)),
            event: NotifyEvent::RealDown
        }
    );
    assert!(
        r.on_result(t(1), 0, FAIL).is_empty(),
        "already down: no second transition"
    );
    assert!(r.on_result(t(2), 1, OK).is_empty(), "checker 0 still down");
    let a = r.on_result(t(3), 0, OK);
    assert_eq!(
        a[0],
        HealthAction::SetHealth {
            real: addr(7),
            health: Health::Up,
            inhibit: false
        }
    );
    assert_eq!(
        a[1],
        HealthAction::Notify {
            real: Some(addr(7)),
            event: NotifyEvent::RealUp
        }
    );
    assert!(
        r.on_result(t(4), 9, FAIL).is_empty(),
        "unknown checker index ignored"
    );
}

#[test]
fn inhibit_on_failure_is_carried_on_the_action() {
    let mut r = real(7, 1, true, false);
    let a = r.on_result(t(0), 0, FAIL);
    assert_eq!(
        a[0],
        HealthAction::SetHealth {
            real: addr(7),
            health: Health::Down,
            inhibit: true
        }
    );
}

#[test]
fn misc_dynamic_weight_is_reported_once_per_change() {
    let mut r = real(7, 5, false, false);
    let dyn3 = CheckOutcome::Success {
        dynamic_weight: Some(3),
    };
    assert_eq!(
        r.on_result(t(0), 0, dyn3),
        vec![HealthAction::SetDynamicWeight {
            real: addr(7),
            weight: Some(3)
        }]
    );
    assert_eq!(r.weight(), 3);
    assert!(r.on_result(t(1), 0, dyn3).is_empty());
    assert!(
        r.on_result(t(2), 0, OK).is_empty(),
        "exit 0 leaves the weight as it is"
    );
    assert_eq!(r.weight(), 3);
}

#[test]
fn sorry_server_when_every_real_is_down_and_back() {
    let st = ServiceThresholds {
        quorum: 1,
        hysteresis: 0,
        has_sorry_server: true,
        sorry_server_inhibit: false,
        omega: false,
    };
    let mut s = ServiceHealth::new(st, vec![real(7, 1, false, false), real(8, 1, false, false)]);
    assert!(s.quorum_up());
    assert_eq!(s.start().len(), 2);
    let a = s.on_result(t(0), addr(7), 0, FAIL);
    assert!(
        !a.iter()
            .any(|x| matches!(x, HealthAction::SorryServer { .. }))
    );
    let a = s.on_result(t(0), addr(8), 0, FAIL);
    assert!(a.contains(&HealthAction::SorryServer {
        active: true,
        inhibit: false
    }));
    assert!(a.contains(&HealthAction::Notify {
        real: None,
        event: NotifyEvent::QuorumDown
    }));
    assert!(!s.quorum_up());
    let a = s.on_result(t(6000), addr(8), 0, OK);
    assert!(a.contains(&HealthAction::SorryServer {
        active: false,
        inhibit: false
    }));
    assert!(a.contains(&HealthAction::Notify {
        real: None,
        event: NotifyEvent::QuorumUp
    }));
    assert!(
        s.on_result(t(0), addr(99), 0, FAIL).is_empty(),
        "unknown real ignored"
    );
}

#[test]
fn quorum_hysteresis_gains_high_and_loses_low() {
    // weights 1,2,3 = 6; quorum 4, hysteresis 1: lose below 3, gain at 5
    let st = ServiceThresholds {
        quorum: 4,
        hysteresis: 1,
        has_sorry_server: false,
        sorry_server_inhibit: false,
        omega: false,
    };
    let reals = vec![
        real(1, 1, false, false),
        real(2, 2, false, false),
        real(3, 3, false, false),
    ];
    let mut s = ServiceHealth::new(st, reals);
    assert!(s.quorum_up());
    s.on_result(t(0), addr(1), 0, FAIL); // 5
    s.on_result(t(0), addr(2), 0, FAIL); // 3: still >= 3
    assert!(s.quorum_up());
    s.on_result(t(0), addr(2), 0, OK); // 5
    s.on_result(t(0), addr(3), 0, FAIL); // 2: < 3, lost
    assert!(!s.quorum_up());
    s.on_result(t(0), addr(1), 0, OK); // 3: below 5, still lost
    s.on_result(t(0), addr(3), 0, OK); // 6 >= 5: gained
    assert!(s.quorum_up());
}

#[test]
fn quorum_counts_dynamic_weight() {
    let st = ServiceThresholds {
        quorum: 4,
        hysteresis: 0,
        has_sorry_server: true,
        sorry_server_inhibit: false,
        omega: false,
    };
    let mut s = ServiceHealth::new(st, vec![real(1, 5, false, false)]);
    let a = s.on_result(
        t(0),
        addr(1),
        0,
        CheckOutcome::Success {
            dynamic_weight: Some(2),
        },
    );
    assert!(a.contains(&HealthAction::SorryServer {
        active: true,
        inhibit: false
    }));
    assert_eq!(s.alive_weight(), 2);
}

#[test]
fn alpha_reals_start_without_quorum() {
    let st = ServiceThresholds {
        quorum: 1,
        hysteresis: 0,
        has_sorry_server: true,
        sorry_server_inhibit: false,
        omega: false,
    };
    let s = ServiceHealth::new(st, vec![real(7, 1, false, true)]);
    assert!(!s.quorum_up());
    let a = s.start();
    assert_eq!(
        a[0],
        HealthAction::SetHealth {
            real: addr(7),
            health: Health::Down,
            inhibit: false
        }
    );
    assert!(a.contains(&HealthAction::SorryServer {
        active: true,
        inhibit: false
    }));
}

#[test]
fn omega_notifies_down_on_stop() {
    let mut st = ServiceThresholds {
        quorum: 1,
        hysteresis: 0,
        has_sorry_server: false,
        sorry_server_inhibit: false,
        omega: false,
    };
    let s = ServiceHealth::new(st, vec![real(7, 1, false, false)]);
    assert!(s.stop().is_empty());
    st.omega = true;
    let s = ServiceHealth::new(st, vec![real(7, 1, false, false), real(8, 1, false, true)]);
    let a = s.stop();
    assert_eq!(
        a,
        vec![
            HealthAction::Notify {
                real: Some(addr(7)),
                event: NotifyEvent::RealDown
            },
            HealthAction::Notify {
                real: None,
                event: NotifyEvent::QuorumDown
            },
        ]
    );
}

#[test]
fn inhibited_sorry_server_is_listed_from_the_start_and_disabled_not_removed() {
    let st = ServiceThresholds {
        quorum: 1,
        hysteresis: 0,
        has_sorry_server: true,
        sorry_server_inhibit: true,
        omega: false,
    };
    let off = HealthAction::SorryServer {
        active: false,
        inhibit: true,
    };
    let on = HealthAction::SorryServer {
        active: true,
        inhibit: true,
    };
    let mut s = ServiceHealth::new(st, vec![real(7, 1, false, false)]);
    let a = s.start();
    assert!(s.quorum_up());
    assert!(a.contains(&off), "listed at weight 0 from the start: {a:?}");
    assert!(!a.contains(&on));
    let a = s.on_result(t(0), addr(7), 0, FAIL);
    assert!(a.contains(&on), "{a:?}");
    let a = s.on_result(t(6000), addr(7), 0, OK);
    assert!(a.contains(&off), "{a:?}");
    // without the flag, a held quorum at start says nothing about the sorry server
    let plain = ServiceThresholds {
        sorry_server_inhibit: false,
        ..st
    };
    let s = ServiceHealth::new(plain, vec![real(7, 1, false, false)]);
    assert!(
        !s.start()
            .iter()
            .any(|x| matches!(x, HealthAction::SorryServer { .. }))
    );
}

#[test]
fn a_checker_started_with_its_retries_spent_goes_down_on_its_first_failure_then_retries() {
    let mut c = CheckerMachine::new(th(3, false), t(0), Duration::ZERO).with_retries_spent();
    assert!(c.is_up());
    assert_eq!(c.on_result(t(1000), CheckOutcome::Failure), Verdict::Down);
    assert_eq!(
        c.on_result(
            t(2000),
            CheckOutcome::Success {
                dynamic_weight: None
            }
        ),
        Verdict::Up
    );
    // after a success, `retry` failures are retried before the next one decides
    for i in 0..3 {
        assert_eq!(
            c.on_result(t(3000 + i), CheckOutcome::Failure),
            Verdict::Same,
            "retry {i}"
        );
    }
    assert_eq!(c.on_result(t(4000), CheckOutcome::Failure), Verdict::Down);
}
