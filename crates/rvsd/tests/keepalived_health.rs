//! rvsd run from a keepalived.conf with its health checkers, end to end on loopback: the proxy
//! engine serves a FULLNAT virtual service on 127.0.0.1 in front of in-process HTTP backends
//! that the tests stop and restart. Needs no privileges, except the `SMTP_CHECK` test against
//! OpenSMTPD (root; skipped with a reason otherwise). (The same scenarios with nginx in
//! network namespaces are in `keepalived_netns.rs`, root only.)

mod common;
mod keepalived_common;

use common::*;
use keepalived_common::*;
use std::net::SocketAddr;
use std::time::Duration;

/// keepalived.conf with one FNAT virtual server; `reals` are `(addr, weight, extra lines)`.
fn conf(vip: SocketAddr, vs_extra: &str, reals: &[(SocketAddr, u32, &str)]) -> String {
    let mut s = format!(
        "! test\nvirtual_server {} {} {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind FNAT\n    protocol TCP\n{vs_extra}\n",
        vip.ip(),
        vip.port()
    );
    for (addr, weight, extra) in reals {
        s += &format!(
            "    real_server {} {} {{\n        weight {weight}\n{extra}\n    }}\n",
            addr.ip(),
            addr.port()
        );
    }
    s + "}\n"
}

/// `delay_loop 1`, `retry 1`, `connect_timeout 1`: removal within 1 × (1 + 1) + 1 = 3 s.
const TCP_CHECK: &str = "        TCP_CHECK {\n            connect_timeout 1\n            retry 1\n            delay_before_retry 1\n        }";
const BOUND: Duration = Duration::from_secs(3);
/// API polling and event application on a shared 2-core machine.
const SLACK: Duration = Duration::from_millis(300);

fn wait_health(
    d: &Rvsd,
    vip: SocketAddr,
    real: SocketAddr,
    want: &str,
    limit: Duration,
) -> Duration {
    wait_for(&format!("{real} {want}"), limit, || {
        health(d, vip, real).as_deref() == Some(want)
    })
}

/// Set every `"health"` string in a JSON document to `"unknown"`.
fn forget_health(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "health" && x.is_string() {
                    *x = "unknown".into();
                } else {
                    forget_health(x);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(forget_health),
        _ => {}
    }
}

#[test]
fn stopped_real_is_removed_in_time_gets_no_new_connections_and_comes_back() {
    let (mut a, b) = (Web::start("a"), Web::start("b"));
    let vip = vip();
    let notes = TempDir::new();
    let log = notes.0.join("notify.log");
    let with_notify = format!(
        "        notify_down \"echo down >> {0}\"\n        notify_up \"echo up >> {0}\"\n{TCP_CHECK}",
        log.display()
    );
    let (d, _dir, _) = start_keepalived(&conf(
        vip,
        "",
        &[(a.addr, 1, &with_notify), (b.addr, 1, TCP_CHECK)],
    ));
    wait_health(&d, vip, a.addr, "up", Duration::from_secs(5));
    let names = fetch_many(vip, 6);
    assert!(
        names.contains(&"a".into()) && names.contains(&"b".into()),
        "{names:?}"
    );

    a.stop();
    let took = wait_health(&d, vip, a.addr, "down", BOUND + Duration::from_secs(5));
    println!("real removed {took:?} after its server stopped (bound {BOUND:?})");
    assert!(
        took <= BOUND + SLACK,
        "removal took {took:?}, bound {BOUND:?}"
    );
    let v = real_view(&d, vip, a.addr).unwrap();
    assert_eq!(v["effective_weight"], 0, "{v}");
    assert_eq!(v["real"]["weight"], 1, "operator weight untouched: {v}");
    assert!(
        v["health"]["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{v}"
    );
    // a whole-state replace (rvsadm -R) that says "unknown" does not resurrect it
    let mut state = d.get("/v1/state").json();
    forget_health(&mut state);
    assert!(
        state.to_string().contains("\"health\":\"unknown\""),
        "{state}"
    );
    let put = d.req("PUT", "/v1/state", Some(&state.to_string()));
    assert!(put.status < 300, "{put:?}");
    assert_eq!(real_view(&d, vip, a.addr).unwrap()["effective_weight"], 0);
    let names = fetch_many(vip, 10);
    assert!(
        names.iter().all(|n| n == "b"),
        "every new connection goes to b: {names:?}"
    );
    let ls = listing(&d);
    assert!(
        listed_line(&ls, a.addr).is_none(),
        "a down real is not listed:\n{ls}"
    );
    assert!(ls.contains(&format!("  # down: {}", a.addr)), "{ls}");

    let before = a.hits();
    a.restart();
    let took = wait_health(&d, vip, a.addr, "up", BOUND + Duration::from_secs(5));
    println!("real back {took:?} after its server restarted");
    assert_eq!(
        a.hits(),
        before,
        "no client request reached a while it was down"
    );
    let names = fetch_many(vip, 6);
    assert!(names.contains(&"a".into()), "a serves again: {names:?}");
    wait_for("notify commands ran", Duration::from_secs(3), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t == "down\nup\n")
    });
    let metrics = d.get("/metrics").body;
    assert!(
        metrics.contains("rvs_outcomes_total{engine=\"health\",outcome=\"real_down\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rvs_outcomes_total{engine=\"health\",outcome=\"real_up\"} 1"),
        "{metrics}"
    );
    assert!(
        d.log().contains("real server health changed"),
        "{}",
        d.log()
    );
}

#[test]
fn http_get_digest_mismatch_marks_the_real_down() {
    let (a, b) = (Web::start("a"), Web::start("b"));
    let vip = vip();
    let check = |digest: &str| {
        format!(
            "        HTTP_GET {{\n            url {{\n                path /health\n                digest {digest}\n            }}\n            connect_timeout 1\n            retry 0\n        }}"
        )
    };
    // md5("b\n") — the body b answers
    let good: String = {
        use md5::Digest;
        md5::Md5::digest(b"b\n")
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect()
    };
    let bad = "00000000000000000000000000000000";
    let (ca, cb) = (check(bad), check(&good));
    let (d, _dir, _) = start_keepalived(&conf(vip, "", &[(a.addr, 1, &ca), (b.addr, 1, &cb)]));
    wait_health(&d, vip, a.addr, "down", Duration::from_secs(5));
    let v = real_view(&d, vip, a.addr).unwrap();
    assert!(
        v["health"]["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("digest"),
        "{v}"
    );
    wait_for("b stays up", Duration::from_secs(1), || true);
    assert_eq!(health(&d, vip, b.addr).as_deref(), Some("up"));
    let before = a.hits();
    let names = fetch_many(vip, 8);
    assert!(names.iter().all(|n| n == "b"), "{names:?}");
    assert_eq!(a.hits(), before, "no client request reached a");
}

#[test]
fn misc_dynamic_sets_the_weight_and_inhibit_keeps_a_down_real_listed_at_zero() {
    let (a, mut b) = (Web::start("a"), Web::start("b"));
    let vip = vip();
    let dir = TempDir::new();
    let code = dir.0.join("code");
    std::fs::write(&code, "5").unwrap();
    let misc = format!(
        "        MISC_CHECK {{\n            misc_path \"/bin/sh -c 'exit $(cat {})'\"\n            misc_timeout 2\n            misc_dynamic\n        }}",
        code.display()
    );
    let inhibit = format!("        inhibit_on_failure\n{TCP_CHECK}");
    let (d, _dir, _) = start_keepalived(&conf(
        vip,
        "",
        &[(a.addr, 10, &misc), (b.addr, 4, &inhibit)],
    ));
    // exit 5 → weight 5 - 2 = 3 (keepalived's misc_dynamic rule)
    wait_for("dynamic weight 3", Duration::from_secs(5), || {
        real_view(&d, vip, a.addr).is_some_and(|v| v["effective_weight"] == 3)
    });
    let line = listed_line(&listing(&d), a.addr).unwrap();
    assert_eq!(line.split_whitespace().nth(3), Some("3"), "{line}");
    std::fs::write(&code, "9").unwrap();
    wait_for("dynamic weight 7", Duration::from_secs(5), || {
        real_view(&d, vip, a.addr).is_some_and(|v| v["effective_weight"] == 7)
    });
    assert_eq!(real_view(&d, vip, a.addr).unwrap()["real"]["weight"], 10);
    std::fs::write(&code, "1").unwrap();
    wait_health(&d, vip, a.addr, "down", Duration::from_secs(5));

    b.stop();
    wait_health(&d, vip, b.addr, "down", BOUND + Duration::from_secs(5));
    let ls = listing(&d);
    let line = listed_line(&ls, b.addr).unwrap_or_else(|| panic!("b stays listed:\n{ls}"));
    assert_eq!(line.split_whitespace().nth(3), Some("0"), "{line}");
    assert!(ls.contains("inhibit_on_failure"), "{ls}");
    assert!(
        listed_line(&ls, a.addr).is_none(),
        "a (no inhibit) is not listed:\n{ls}"
    );
}

#[test]
fn sorry_server_answers_when_quorum_is_lost_and_every_real_is_down() {
    let (mut a, mut b, sorry) = (Web::start("a"), Web::start("b"), Web::start("sorry"));
    let vip = vip();
    let vs = format!(
        "    quorum 2\n    sorry_server {} {}",
        sorry.addr.ip(),
        sorry.addr.port()
    );
    let (d, _dir, _) = start_keepalived(&conf(
        vip,
        &vs,
        &[(a.addr, 1, TCP_CHECK), (b.addr, 1, TCP_CHECK)],
    ));
    wait_health(&d, vip, a.addr, "up", Duration::from_secs(5));
    let names = fetch_many(vip, 6);
    assert!(!names.contains(&"sorry".into()), "{names:?}");

    // quorum 2 needs both: with a down, b is gated and the sorry server answers
    a.stop();
    wait_health(&d, vip, a.addr, "down", BOUND + Duration::from_secs(5));
    wait_for("sorry server added", Duration::from_secs(2), || {
        real_view(&d, vip, sorry.addr).is_some()
    });
    assert_eq!(health(&d, vip, b.addr).as_deref(), Some("up"));
    let names = fetch_many(vip, 6);
    assert!(
        names.iter().all(|n| n == "sorry"),
        "quorum gating: {names:?}"
    );
    let v = real_view(&d, vip, b.addr).unwrap();
    assert_eq!(
        (
            v["effective_weight"].clone(),
            v["health"]["quorum_gated"].clone()
        ),
        (0.into(), true.into()),
        "{v}"
    );
    assert!(listing(&d).contains(&format!("  # sorry_server: {}", sorry.addr)));

    b.stop();
    wait_health(&d, vip, b.addr, "down", BOUND + Duration::from_secs(5));
    let names = fetch_many(vip, 4);
    assert!(
        names.iter().all(|n| n == "sorry"),
        "every real down: {names:?}"
    );

    a.restart();
    b.restart();
    wait_for(
        "sorry server removed",
        BOUND + Duration::from_secs(5),
        || real_view(&d, vip, sorry.addr).is_none(),
    );
    let names = fetch_many(vip, 6);
    assert!(
        names.contains(&"a".into()) && names.contains(&"b".into()),
        "{names:?}"
    );
    // the checks counters are refreshed every 2 s: wait for the first refresh
    wait_for("checks counted", Duration::from_secs(3), || {
        let m = d.get("/metrics").body;
        m.contains("outcome=\"checks\"}") && !m.contains("outcome=\"checks\"} 0")
    });
    let metrics = d.get("/metrics").body;
    for o in [
        "quorum_lost",
        "quorum_gained",
        "sorry_server_on",
        "sorry_server_off",
    ] {
        assert!(
            metrics.contains(&format!("outcome=\"{o}\"}} 1")),
            "{o}: {metrics}"
        );
    }
}

/// A TCP server on loopback that answers every connection with `banner` and closes.
fn banner_server(banner: &'static [u8]) -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            use std::io::Write;
            let _ = s.write_all(banner);
        }
    });
    addr
}

#[test]
fn smtp_check_follows_a_real_smtp_server_and_fails_a_non_smtp_one() {
    if !rvs_testbed::is_root() {
        eprintln!(
            "SKIP keepalived_health::smtp_check_follows_a_real_smtp_server_and_fails_a_non_smtp_one: \
             needs root (smtpd drops privileges to its own users and runs in a private mount \
             namespace)"
        );
        return;
    }
    let mail = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut smtpd = rvs_testbed::Smtpd::start(mail).unwrap_or_else(|e| panic!("{e}"));
    let web = banner_server(b"HTTP/1.0 400 Bad Request\r\n\r\n");
    let vip = vip();
    // the mail real has `alpha`: it starts down, so "up" can only come from a passed check; the
    // other starts up (the API shows a reason with a transition)
    let smtp = |port: u16, alpha: &str| {
        format!(
            "        SMTP_CHECK {{\n            connect_port {port}\n            helo_name rvs.test\n            connect_timeout 1\n            retry 1\n            delay_before_retry 1\n{alpha}\n        }}"
        )
    };
    let (d, _dir, _) = start_keepalived(&conf(
        vip,
        "",
        &[
            (mail, 1, &smtp(mail.port(), "alpha")),
            (web, 1, &smtp(web.port(), "")),
        ],
    ));
    wait_health(&d, vip, mail, "up", Duration::from_secs(5));
    let last_error = |real| {
        real_view(&d, vip, real).and_then(|v| v["health"]["last_error"].as_str().map(String::from))
    };
    wait_for("the non-SMTP real checked", Duration::from_secs(5), || {
        last_error(web).is_some()
    });
    let v = real_view(&d, vip, web).unwrap();
    assert_eq!(v["health"]["state"], "down", "{v}");
    let why = v["health"]["last_error"].as_str().unwrap_or("");
    assert_eq!(
        why, "SMTP: malformed reply line 'HTTP/1.0 400 Bad Request'",
        "{v}"
    );

    smtpd.stop();
    let took = wait_health(&d, vip, mail, "down", BOUND + Duration::from_secs(5));
    println!("SMTP real removed {took:?} after smtpd stopped (bound {BOUND:?})");
    assert!(
        took <= BOUND + SLACK,
        "removal took {took:?}, bound {BOUND:?}"
    );
    let v = real_view(&d, vip, mail).unwrap();
    assert_eq!(v["effective_weight"], 0, "{v}");
    let why = v["health"]["last_error"].as_str().unwrap_or("");
    assert!(why.starts_with("connect failed"), "{v}");

    // back on the same port: up again
    let _smtpd = rvs_testbed::Smtpd::start(mail).unwrap_or_else(|e| panic!("{e}"));
    wait_health(&d, vip, mail, "up", Duration::from_secs(5));
}
