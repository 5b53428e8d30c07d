//! keepalived 2.x checker options written on the `real_server` and `virtual_server` blocks, and
//! the checker kinds' own defaults, as rvsd runs them: proxy engine on 127.0.0.1, in-process
//! backends, no privileges.

mod common;
mod keepalived_common;

use common::*;
use keepalived_common::*;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

fn wait_health(d: &Rvsd, vip: SocketAddr, real: SocketAddr, want: &str) -> Duration {
    wait_for(&format!("{real} {want}"), Duration::from_secs(10), || {
        health(d, vip, real).as_deref() == Some(want)
    })
}

#[test]
fn checker_options_on_the_real_server_set_the_schedule() {
    let (mut a, b) = (Web::start("a"), Web::start("b"));
    let vip = vip();
    // The virtual server checks once a minute; the reals ask for every second, with one retry
    // half a second later. Read as keepalived 2.x reads them, a stopped real is out within
    // 1 + 0.5 s (+ the refused connects); ignored, the first check would come up to a minute on.
    let real = |r: SocketAddr| {
        format!(
            "    real_server {} {} {{\n        weight 1\n        delay_loop 1\n        retry 1\n        \
             delay_before_retry 0.5\n        connect_timeout 1\n        TCP_CHECK {{\n        }}\n    }}\n",
            r.ip(),
            r.port()
        )
    };
    let text = format!(
        "virtual_server {} {} {{\n    delay_loop 60\n    lb_algo rr\n    lb_kind FNAT\n{}{}}}\n",
        vip.ip(),
        vip.port(),
        real(a.addr),
        real(b.addr)
    );
    let (d, _dir, _) = start_keepalived(&text);
    wait_health(&d, vip, a.addr, "up");
    assert!(
        !d.log().contains("does not belong"),
        "real_server checker options are read, not warned about:\n{}",
        d.log()
    );
    a.stop();
    let took = wait_health(&d, vip, a.addr, "down");
    println!("real out {took:?} after its server stopped");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert_eq!(health(&d, vip, b.addr).as_deref(), Some("up"));
    let names = fetch_many(vip, 4);
    assert!(names.iter().all(|n| n == "b"), "{names:?}");
}

#[test]
fn a_failed_misc_check_takes_the_real_out_at_once_as_keepalived_does() {
    // MISC_CHECK's retry defaults to 0 in keepalived: one failed run is enough.
    let a = Web::start("a");
    let vip = vip();
    let dir = TempDir::new();
    let flag = dir.0.join("healthy");
    let runs = dir.0.join("runs");
    let script = dir.0.join("check.sh");
    std::fs::write(&flag, "").unwrap();
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ -e {f} ]; then echo ok >> {r}; else echo fail >> {r}; exit 1; fi\n",
            f = flag.display(),
            r = runs.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = format!(
        "virtual_server {} {} {{\n    delay_loop 1\n    lb_kind FNAT\n    real_server {} {} {{\n        \
         MISC_CHECK {{\n            misc_path {}\n        }}\n    }}\n}}\n",
        vip.ip(),
        vip.port(),
        a.addr.ip(),
        a.addr.port(),
        script.display()
    );
    let (d, _dir, _) = start_keepalived(&text);
    wait_for("the script ran", Duration::from_secs(5), || {
        std::fs::read_to_string(&runs).is_ok_and(|t| t.contains("ok"))
    });
    assert_eq!(health(&d, vip, a.addr).as_deref(), Some("up"));
    std::fs::remove_file(&flag).unwrap();
    wait_health(&d, vip, a.addr, "down");
    let log = std::fs::read_to_string(&runs).unwrap();
    let failed = log.lines().filter(|l| *l == "fail").count();
    assert_eq!(failed, 1, "down after the first failed run: {log:?}");
}

#[test]
fn a_real_dead_at_start_is_out_at_its_first_failed_check() {
    // the seed's checker settings (nb_get_retry 3, delay_before_retry 3): keepalived takes a
    // real that is dead when it starts out at the first failed check, not after 3 retries 3 s
    // apart
    let a = Web::start("a");
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let vip = vip();
    let real = |r: SocketAddr| {
        format!(
            "    real_server {} {} {{\n        weight 1\n        TCP_CHECK {{\n            connect_timeout 1\n            \
             nb_get_retry 3\n            delay_before_retry 3\n        }}\n    }}\n",
            r.ip(),
            r.port()
        )
    };
    let text = format!(
        "virtual_server {} {} {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind FNAT\n{}{}}}\n",
        vip.ip(),
        vip.port(),
        real(a.addr),
        real(dead)
    );
    let t0 = std::time::Instant::now();
    let (d, _dir, _) = start_keepalived(&text);
    wait_health(&d, vip, dead, "down");
    let took = t0.elapsed();
    println!("dead real out {took:?} after rvsd started");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert_eq!(health(&d, vip, a.addr).as_deref(), Some("up"));
}
