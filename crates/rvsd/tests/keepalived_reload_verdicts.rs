//! A reload that restarts a virtual server's checks (a real added) carries over the verdicts of
//! the reals whose checkers did not change, as keepalived migrates its checkers: a down real is
//! not put back in service by the reload, an up one is not taken out by `alpha`. Loopback, no
//! privileges.

mod common;
mod keepalived_common;

use common::*;
use keepalived_common::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A real; with `alpha` it starts down until its first check succeeds.
fn real(r: SocketAddr, alpha: bool) -> String {
    // a dead real needs three failed checks, 2 s apart, to go down: a wrongly restarted
    // verdict ("up") would last seconds
    format!(
        "    real_server {} {} {{\n        weight 1\n{}        TCP_CHECK {{\n            connect_timeout 1\n            \
         retry 2\n            delay_before_retry 2\n        }}\n    }}\n",
        r.ip(),
        r.port(),
        if alpha { "        alpha\n" } else { "" }
    )
}

/// `reals`: (address, alpha).
fn conf(vip: SocketAddr, reals: &[(SocketAddr, bool)]) -> String {
    let mut s = format!(
        "virtual_server {} {} {{\n    delay_loop 2\n    lb_algo rr\n    lb_kind FNAT\n",
        vip.ip(),
        vip.port()
    );
    for (r, alpha) in reals {
        s += &real(*r, *alpha);
    }
    s + "}\n"
}

#[test]
fn a_reload_that_restarts_checks_keeps_down_reals_down_and_up_reals_up() {
    let (mut a, b, c) = (Web::start("a"), Web::start("b"), Web::start("c"));
    let vip = vip();
    let (d, _dir, path) = start_keepalived(&conf(vip, &[(a.addr, false), (b.addr, true)]));
    let limit = Duration::from_secs(15);
    let wait = |r: SocketAddr, want: &str| {
        wait_for(&format!("{r} {want}"), limit, || {
            health(&d, vip, r).as_deref() == Some(want)
        })
    };
    wait(a.addr, "up");
    wait(b.addr, "up");
    a.stop();
    wait(a.addr, "down");
    let down_line = |d: &Rvsd| {
        listing(d)
            .lines()
            .find(|l| l.starts_with(&format!("  # down: {}", a.addr)))
            .map(String::from)
    };
    let before = down_line(&d).expect("a listed as down");

    // a third real: the virtual server's checks restart
    std::fs::write(
        &path,
        conf(vip, &[(a.addr, false), (b.addr, true), (c.addr, true)]),
    )
    .unwrap();
    d.signal("HUP");
    d.wait_log("health checks started", 2);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        assert_eq!(
            health(&d, vip, a.addr).as_deref(),
            Some("down"),
            "the dead real stays out after the reload, not up as a fresh start without alpha \
             would have it ({:?} in)",
            t0.elapsed()
        );
        assert_eq!(
            health(&d, vip, b.addr).as_deref(),
            Some("up"),
            "the live real stays in, not down as a fresh start with alpha would have it ({:?} in)",
            t0.elapsed()
        );
        assert!(keepalived_common::fetch(vip).is_some_and(|n| n != "a"));
        std::thread::sleep(Duration::from_millis(50));
    }
    // still down since the same moment, for the same reason
    assert_eq!(down_line(&d), Some(before));
    // the new real starts as its alpha says (down) and comes up at its first check
    wait(c.addr, "up");
    // and the carried-over down real comes back at its first success
    a.restart();
    wait(a.addr, "up");
}
