//! rvsd with `--keepalived-conf`: `--check` on the seed's file, warnings located in the log,
//! SIGHUP reloads as a diff that keeps the checkers' verdicts, a bad file keeps the running
//! state. Loopback only, no privileges.

mod common;
mod keepalived_common;

use keepalived_common::*;
use std::process::Command;
use std::time::Duration;

const SEED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../rvs-config/src/keepalived/testdata/seed_002.conf"
);

#[test]
fn seed_keepalived_conf_checks_with_its_services_reals_and_checkers() {
    let out = Command::new(rvs_testbed::bin_path("rvsd"))
        .args(["--keepalived-conf", SEED, "--check", "--engine", "proxy"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // Served or not depends on the host (DR needs the xdp engine: status 2 when not served);
    // the model does not.
    let unserved = text.contains("NOT SERVED");
    assert_eq!(
        out.status.code(),
        Some(if unserved { 2 } else { 0 }),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("tcp 10.0.0.3:80:"), "{text}");
    for real in ["10.0.0.7:80", "10.0.0.8:80"] {
        let line = format!(
            "  -> {real} weight 1: TCP_CHECK {real}, delay_loop 6s, connect_timeout 8s, retry 3, delay_before_retry 3s"
        );
        assert!(text.contains(&line), "missing {line:?} in:\n{text}");
    }
    let last = if unserved {
        "configuration valid: 1 service(s), 1 of them not served on this host"
    } else {
        "configuration OK: 1 service(s)"
    };
    assert!(text.contains(last), "{text}");
}

#[test]
fn sighup_reloads_as_a_diff_keeping_verdicts_and_bad_files_change_nothing() {
    let (mut a, b) = (Web::start("a"), Web::start("b"));
    let vip = vip();
    let (aa, ba) = (a.addr, b.addr);
    let text = move |bweight: u32, extra: &str| {
        format!(
            "virtual_server {} {} {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind FNAT\n    frobnicate yes\n{extra}\n    \
             real_server {} {} {{\n        weight 1\n        TCP_CHECK {{\n            connect_timeout 1\n            retry 0\n        }}\n    }}\n    \
             real_server {} {} {{\n        weight {bweight}\n        TCP_CHECK {{\n            connect_timeout 1\n            retry 0\n        }}\n    }}\n}}\n",
            vip.ip(),
            vip.port(),
            aa.ip(),
            aa.port(),
            ba.ip(),
            ba.port()
        )
    };
    let (d, dir, path) = start_keepalived(&text(1, ""));
    // the unimplemented keyword is a located warning
    d.wait_log(&format!("{}:5:", path.display()), 1);
    wait_for("b up", Duration::from_secs(5), || {
        health(&d, vip, b.addr).as_deref() == Some("up")
    });
    a.stop();
    wait_for("a down", Duration::from_secs(5), || {
        health(&d, vip, a.addr).as_deref() == Some("down")
    });

    // a weight change: applied; a keeps its verdict (its checker was not restarted)
    write_conf(&dir, &text(5, ""));
    d.signal("HUP");
    d.wait_log("reload applied changes=1", 1);
    assert_eq!(real_view(&d, vip, b.addr).unwrap()["effective_weight"], 5);
    assert_eq!(health(&d, vip, a.addr).as_deref(), Some("down"));
    assert_eq!(real_view(&d, vip, a.addr).unwrap()["effective_weight"], 0);
    assert_eq!(fetch_many(vip, 4), vec!["b"; 4]);

    // a syntax error: refused, everything stays
    write_conf(&dir, &text(7, "    {"));
    d.signal("HUP");
    d.wait_log("reload refused", 1);
    assert_eq!(real_view(&d, vip, b.addr).unwrap()["effective_weight"], 5);
    assert_eq!(health(&d, vip, a.addr).as_deref(), Some("down"));

    // a changed checker restarts that service's checks; a comes back once it answers
    a.restart();
    write_conf(&dir, &text(5, "    delay_loop 2"));
    d.signal("HUP");
    d.wait_log("health checks started", 2);
    wait_for("a up again", Duration::from_secs(6), || {
        health(&d, vip, a.addr).as_deref() == Some("up")
    });
}
