//! keepalived.conf health checking end to end with real servers in network namespaces running
//! nginx: rvsd (proxy engine, FULLNAT) in the director namespace, curl in the client namespace
//! (rvs-testbed's FULLNAT topology: the reals cannot reach the client, replies only return
//! through the director). Root only; skipped with a reason otherwise. The loopback versions of
//! these scenarios (and MISC_CHECK, inhibit_on_failure, quorum) are in `keepalived_health.rs`.

mod common;
mod keepalived_common;

use common::*;
use keepalived_common::wait_for;
use rvs_testbed::{Kind, Nginx, Topology, clients::curl};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// `delay_loop 1`, `retry 1`, `connect_timeout 1` → removed within 1 × (1 + 1) + 1 = 3 s.
const BOUND: Duration = Duration::from_secs(3);
const SLACK: Duration = Duration::from_millis(300);

fn http_get(digest: Option<&str>) -> String {
    let digest = digest.map_or(String::new(), |d| format!("\n                digest {d}"));
    format!(
        "        HTTP_GET {{\n            url {{\n                path /health\n                status_code 200{digest}\n            }}\n            \
         connect_timeout 1\n            retry 1\n            delay_before_retry 1\n        }}"
    )
}

fn conf(vip: SocketAddr, reals: &[(SocketAddr, String)], sorry: SocketAddr) -> String {
    let mut s = format!(
        "virtual_server {} {} {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind FNAT\n    protocol TCP\n    sorry_server {} {}\n",
        vip.ip(),
        vip.port(),
        sorry.ip(),
        sorry.port()
    );
    for (addr, check) in reals {
        s += &format!(
            "    real_server {} {} {{\n        weight 1\n{check}\n    }}\n",
            addr.ip(),
            addr.port()
        );
    }
    s + "}\n"
}

/// Stop nginx as an operator would (SIGTERM to the master: workers exit too, the port closes).
/// Returns when the signal was sent.
fn stop_nginx(n: Nginx) -> Instant {
    let sent = Instant::now();
    let st = std::process::Command::new("kill")
        .args(["-TERM", &n.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    std::thread::sleep(Duration::from_millis(300));
    drop(n);
    sent
}

fn client_requests(n: &Nginx) -> usize {
    n.access_log()
        .unwrap()
        .lines()
        .filter(|l| l.contains("/client"))
        .count()
}

fn health_of(d: &Rvsd, vip: SocketAddr, real: SocketAddr) -> Option<String> {
    keepalived_common::health(d, vip, real)
}

#[test]
fn nginx_reals_in_namespaces_fail_recover_digest_and_sorry_server() {
    if !rvs_testbed::is_root() {
        eprintln!("skipped: needs root (network namespaces)");
        return;
    }
    let topo = Topology::build(Kind::FullNat, 3).unwrap();
    let dir_ns = &topo.director.ns;
    dir_ns.add_addr("lo", &format!("{}/32", topo.vip4)).unwrap();
    let vip = SocketAddr::new(IpAddr::V4(topo.vip4), 80);
    let addr = |i: usize| SocketAddr::new(IpAddr::V4(topo.reals[i].ip4), 80);
    let (r0, r1, sorry) = (addr(0), addr(1), addr(2));
    let start =
        |i: usize, body: &str| Nginx::start(Some(&topo.reals[i].ns), addr(i), body).unwrap();
    let mut n0 = start(0, "r0");
    let n1 = start(1, "r1");
    let _ns = start(2, "sorry");
    let url = format!("http://{vip}/client");
    let fetch = |n: usize| -> Vec<String> {
        (0..n)
            .map(|_| curl(Some(&topo.client.ns), &url).map_or("-".into(), |b| b.trim().to_string()))
            .collect()
    };

    let tmp = TempDir::new();
    let path = tmp.0.join("keepalived.conf");
    let reals = vec![(r0, http_get(None)), (r1, http_get(None))];
    std::fs::write(&path, conf(vip, &reals, sorry)).unwrap();
    let d = Rvsd::start_in(
        dir_ns,
        "",
        &[
            "--keepalived-conf",
            path.to_str().unwrap(),
            "--engine",
            "proxy",
        ],
    );
    wait_for("both up", Duration::from_secs(5), || {
        health_of(&d, vip, r0).as_deref() == Some("up")
            && health_of(&d, vip, r1).as_deref() == Some("up")
    });
    let names = fetch(6);
    assert!(
        names.contains(&"r0".into()) && names.contains(&"r1".into()),
        "{names:?}"
    );

    // nginx on r0 stops: removed within the bound, every new request goes to r1
    let stopped = stop_nginx(n0);
    wait_for("r0 down", BOUND + Duration::from_secs(5), || {
        health_of(&d, vip, r0).as_deref() == Some("down")
    });
    let took = stopped.elapsed();
    println!("nginx stop → real removed in {took:?} (bound {BOUND:?})");
    assert!(took <= BOUND + SLACK, "removal took {took:?}");
    assert_eq!(fetch(8), vec!["r1"; 8]);

    // nginx on r0 back: the real is back and serves again
    n0 = start(0, "r0");
    let took = wait_for("r0 up", BOUND + Duration::from_secs(5), || {
        health_of(&d, vip, r0).as_deref() == Some("up")
    });
    println!("nginx restart → real back in {took:?}");
    assert!(fetch(6).contains(&"r0".into()));
    assert!(client_requests(&n0) > 0);

    // a digest that does not match r1's body: r1 down although nginx runs; its access log shows
    // no client request afterwards
    let reals = vec![
        (r0, http_get(None)),
        (r1, http_get(Some("0123456789abcdef0123456789abcdef"))),
    ];
    std::fs::write(&path, conf(vip, &reals, sorry)).unwrap();
    d.signal("HUP");
    wait_for("r1 down (digest)", Duration::from_secs(8), || {
        health_of(&d, vip, r1).as_deref() == Some("down")
    });
    let before = client_requests(&n1);
    assert_eq!(fetch(8), vec!["r0"; 8]);
    assert_eq!(client_requests(&n1), before, "no client request reached r1");

    // every real down: the sorry server answers
    stop_nginx(n0);
    wait_for("r0 down again", BOUND + Duration::from_secs(5), || {
        health_of(&d, vip, r0).as_deref() == Some("down")
    });
    wait_for("sorry server in", Duration::from_secs(2), || {
        keepalived_common::real_view(&d, vip, sorry).is_some()
    });
    assert_eq!(fetch(4), vec!["sorry"; 4]);
    drop(n1);
}

#[test]
fn nginx_reals_in_namespaces_misc_dynamic_inhibit_and_quorum() {
    if !rvs_testbed::is_root() {
        eprintln!("skipped: needs root (network namespaces)");
        return;
    }
    let topo = Topology::build(Kind::FullNat, 3).unwrap();
    let dir_ns = &topo.director.ns;
    dir_ns.add_addr("lo", &format!("{}/32", topo.vip4)).unwrap();
    let vip = SocketAddr::new(IpAddr::V4(topo.vip4), 80);
    let addr = |i: usize| SocketAddr::new(IpAddr::V4(topo.reals[i].ip4), 80);
    let (r0, r1, sorry) = (addr(0), addr(1), addr(2));
    let start =
        |i: usize, body: &str| Nginx::start(Some(&topo.reals[i].ns), addr(i), body).unwrap();
    let n0 = start(0, "r0");
    let _n1 = start(1, "r1");
    let _ns = start(2, "sorry");
    let url = format!("http://{vip}/client");
    let fetch = |n: usize| -> Vec<String> {
        (0..n)
            .map(|_| curl(Some(&topo.client.ns), &url).map_or("-".into(), |b| b.trim().to_string()))
            .collect()
    };

    // r0: TCP_CHECK with inhibit_on_failure; r1: MISC_CHECK whose exit code is in a file
    let tmp = TempDir::new();
    let code = tmp.0.join("code");
    std::fs::write(&code, "4").unwrap();
    let misc = format!(
        "        MISC_CHECK {{\n            misc_path \"/bin/sh -c 'exit $(cat {})'\"\n            misc_dynamic\n        }}",
        code.display()
    );
    let tcp = "        inhibit_on_failure\n        TCP_CHECK {\n            connect_timeout 1\n            retry 1\n            delay_before_retry 1\n        }";
    let text = format!(
        "virtual_server {} 80 {{\n    delay_loop 1\n    lb_algo wrr\n    lb_kind FNAT\n    quorum 2\n    sorry_server {} 80\n    \
         real_server {} 80 {{\n        weight 1\n{tcp}\n    }}\n    real_server {} 80 {{\n        weight 5\n{misc}\n    }}\n}}\n",
        vip.ip(),
        sorry.ip(),
        r0.ip(),
        r1.ip()
    );
    let path = tmp.0.join("keepalived.conf");
    std::fs::write(&path, text).unwrap();
    let d = Rvsd::start_in(
        dir_ns,
        "",
        &[
            "--keepalived-conf",
            path.to_str().unwrap(),
            "--engine",
            "proxy",
        ],
    );
    // exit 4 → misc_dynamic weight 2
    wait_for("r1 weight 2", Duration::from_secs(5), || {
        keepalived_common::real_view(&d, vip, r1).is_some_and(|v| v["effective_weight"] == 2)
    });
    let line = keepalived_common::listed_line(&keepalived_common::listing(&d), r1).unwrap();
    assert_eq!(line.split_whitespace().nth(3), Some("2"), "{line}");
    // r0's TCP_CHECK runs on the SYN prober (root); the real keeps no half-open connection
    // from it: the director's kernel resets every SYN-ACK
    let log = d.log();
    assert!(
        log.contains("SYN prober"),
        "TCP_CHECK prober not logged:\n{log}"
    );
    let half_open = topo.reals[0]
        .ns
        .run("ss", &["-Htn", "state", "syn-recv"])
        .unwrap();
    assert!(half_open.trim().is_empty(), "{half_open}");
    let names = fetch(6);
    assert!(
        names.contains(&"r0".into()) && names.contains(&"r1".into()),
        "{names:?}"
    );

    // the SYN prober's counters reach /metrics (published every 2 s): a SYN-ACK from r0 while
    // it listens, then (below) an RST once it stopped
    let syn = |outcome: &str| -> u64 {
        let m = d.get("/metrics").body;
        let key = format!("rvs_outcomes_total{{engine=\"health\",outcome=\"syn_{outcome}\"}} ");
        m.lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    wait_for(
        "SYN-ACKs counted in /metrics",
        Duration::from_secs(8),
        || syn("open") > 0,
    );
    assert_eq!(syn("refused"), 0);

    // r0 down: listed at weight 0 (inhibit); live weight 2 still meets quorum 2
    stop_nginx(n0);
    wait_for("r0 down", BOUND + Duration::from_secs(5), || {
        health_of(&d, vip, r0).as_deref() == Some("down")
    });
    wait_for("RSTs counted in /metrics", Duration::from_secs(5), || {
        syn("refused") > 0
    });
    assert!(syn("sent") >= syn("open") + syn("refused"));
    let ls = keepalived_common::listing(&d);
    let line =
        keepalived_common::listed_line(&ls, r0).unwrap_or_else(|| panic!("r0 listed:\n{ls}"));
    assert_eq!(line.split_whitespace().nth(3), Some("0"), "{line}");
    assert_eq!(fetch(6), vec!["r1"; 6]);
    // the script now says weight 1: below quorum 2 → the sorry server serves, r1 is gated
    std::fs::write(&code, "3").unwrap();
    wait_for("sorry server in", Duration::from_secs(5), || {
        keepalived_common::real_view(&d, vip, sorry).is_some()
    });
    assert_eq!(health_of(&d, vip, r1).as_deref(), Some("up"));
    assert_eq!(fetch(6), vec!["sorry"; 6]);

    // weight 3 again: quorum back, the sorry server leaves
    std::fs::write(&code, "5").unwrap();
    wait_for("sorry server out", Duration::from_secs(5), || {
        keepalived_common::real_view(&d, vip, sorry).is_none()
    });
    assert_eq!(fetch(6), vec!["r1"; 6]);
}
