//! The supervisor end to end on loopback: transitions within the keepalived bound, recovery,
//! misc_dynamic weights, inhibit_on_failure, sorry server, quorum, notify commands.

mod common;

use common::config;
use rvs_core::model::Health;
use rvs_health::{HealthEvent, HealthSupervisor, SupervisorEvent};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::mpsc::UnboundedReceiver;

/// The next real event for `real`, within `limit`.
async fn next_real(
    rx: &mut UnboundedReceiver<SupervisorEvent>,
    real: SocketAddr,
    limit: Duration,
) -> HealthEvent {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(SupervisorEvent::Real(e))) if e.real == real => return e,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("channel closed"),
            Err(_) => panic!("no event for {real} within {limit:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_real_goes_down_within_the_bound_and_comes_back() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    // delay_loop 0.5, retry 2, delay_before_retry 0.2, connect_timeout 0.3
    let text = format!(
        "virtual_server 10.255.0.1 80 {{\n delay_loop 0.5\n real_server {} {} {{\n weight 3\n inhibit_on_failure\n TCP_CHECK {{\n connect_timeout 0.3\n retry 2\n delay_before_retry 0.2\n warmup 0\n }}\n }}\n}}",
        addr.ip(),
        addr.port()
    );
    let cfg = config(&text);
    let (sup, mut rx) = HealthSupervisor::start(&cfg.virtual_servers);
    let first = next_real(&mut rx, addr, Duration::from_secs(1)).await;
    assert_eq!(first.health, Health::Up, "no alpha: starts up");
    tokio::time::sleep(Duration::from_millis(700)).await; // a few good checks
    assert_eq!(sup.stats().failures, 0);
    drop(l);
    let stopped = Instant::now();
    let down = next_real(&mut rx, addr, Duration::from_secs(5)).await;
    let took = stopped.elapsed();
    assert_eq!(down.health, Health::Down);
    assert!(down.inhibit, "inhibit_on_failure carried on the event");
    assert!(
        down.last_error
            .as_deref()
            .is_some_and(|e| e.contains("connect")),
        "{:?}",
        down.last_error
    );
    // keepalived's bound: delay_loop (wait for the next check) + retry × (delay_before_retry +
    // connect_timeout) + connect_timeout; plus scheduling slack
    let bound = Duration::from_millis(500 + 2 * (200 + 300) + 300 + 300);
    assert!(took <= bound, "down after {took:?}, bound {bound:?}");
    let status = sup.status();
    assert_eq!(status[0].health, Health::Down);
    assert!(status[0].last_error.is_some());
    let l = TcpListener::bind(addr).await.unwrap();
    let up = next_real(&mut rx, addr, Duration::from_secs(3)).await;
    assert_eq!(up.health, Health::Up);
    drop(l);
    assert!(sup.stats().transitions >= 2);
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misc_dynamic_sets_weight_and_sorry_server_takes_over() {
    let dir = std::env::temp_dir().join(format!("rvs-health-sup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let code = dir.join("code");
    let marker = dir.join("notified");
    std::fs::write(&code, "7").unwrap();
    let text = format!(
        r#"virtual_server 10.255.0.1 80 {{
  delay_loop 0.2
  sorry_server 127.0.0.1 9999
  quorum_down "touch {marker}"
  real_server 127.0.0.1 7001 {{
    weight 1
    MISC_CHECK {{
      misc_path "exit $(cat {code})"
      misc_dynamic
      retry 0
      warmup 0
    }}
  }}
}}"#,
        marker = marker.display(),
        code = code.display()
    );
    let cfg = config(&text);
    let real: SocketAddr = "127.0.0.1:7001".parse().unwrap();
    let (sup, mut rx) = HealthSupervisor::start(&cfg.virtual_servers);
    assert_eq!(
        next_real(&mut rx, real, Duration::from_secs(1))
            .await
            .health,
        Health::Up
    );
    let e = next_real(&mut rx, real, Duration::from_secs(3)).await;
    assert_eq!(
        (e.health, e.dynamic_weight),
        (Health::Up, Some(5)),
        "exit 7 → weight 5"
    );
    std::fs::write(&code, "1").unwrap();
    let mut sorry = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while sorry.is_none() {
        match tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("sorry server event")
        {
            Some(SupervisorEvent::SorryServer { addr, active, .. }) => sorry = Some((addr, active)),
            Some(_) => {}
            None => panic!("closed"),
        }
    }
    assert_eq!(sorry, Some(("127.0.0.1:9999".parse().unwrap(), true)));
    // the quorum_down notify command ran
    let t = Instant::now();
    while !marker.exists() && t.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(marker.exists(), "quorum_down command did not run");
    std::fs::write(&code, "0").unwrap();
    let mut back = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while !back {
        if let Some(SupervisorEvent::SorryServer { active: false, .. }) =
            tokio::time::timeout_at(deadline, rx.recv())
                .await
                .expect("sorry server off")
        {
            back = true;
        }
    }
    sup.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpha_starts_down_and_quorum_gates() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    let dead: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    // quorum 2 with weights 1 + 1: only one real can be up, so quorum is never reached
    let text = format!(
        "virtual_server 10.255.0.1 80 {{\n delay_loop 0.2\n alpha\n quorum 2\n real_server {} {} {{\n TCP_CHECK {{\n warmup 0\n connect_timeout 0.2\n }}\n }}\n real_server {} {} {{\n TCP_CHECK {{\n warmup 0\n connect_timeout 0.2\n }}\n }}\n}}",
        a.ip(),
        a.port(),
        dead.ip(),
        dead.port()
    );
    let cfg = config(&text);
    let (sup, mut rx) = HealthSupervisor::start(&cfg.virtual_servers);
    let mut quorum_events = Vec::new();
    let mut a_health = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1200);
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        match ev {
            SupervisorEvent::Real(e) if e.real == a => a_health.push(e.health),
            SupervisorEvent::Quorum { up, .. } => quorum_events.push(up),
            _ => {}
        }
    }
    assert_eq!(
        a_health,
        vec![Health::Down, Health::Up],
        "alpha: down first, up after a success"
    );
    assert!(
        !quorum_events.contains(&true),
        "weight 1 never reaches quorum 2: {quorum_events:?}"
    );
    drop(l);
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn omega_runs_down_notifications_on_shutdown() {
    let dir = std::env::temp_dir().join(format!("rvs-health-omega-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (down, qdown) = (dir.join("down"), dir.join("qdown"));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    let text = format!(
        "virtual_server 10.255.0.1 80 {{\n delay_loop 5\n omega\n quorum_down \"touch {}\"\n real_server {} {} {{\n notify_down \"touch {}\"\n TCP_CHECK {{\n }}\n }}\n}}",
        qdown.display(),
        a.ip(),
        a.port(),
        down.display()
    );
    let (sup, _rx) = HealthSupervisor::start(&config(&text).virtual_servers);
    sup.shutdown().await;
    assert!(
        down.exists() && qdown.exists(),
        "omega: notify_down and quorum_down run at shutdown"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misc_dynamic_exit_0_puts_the_configured_weight_back() {
    // keepalived: with misc_dynamic, exit 2..=255 sets the weight to code - 2 and exit 0 sets it
    // back to the real's configured weight
    let dir = std::env::temp_dir().join(format!("rvs-health-dyn0-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let code = dir.join("code");
    std::fs::write(&code, "7").unwrap();
    let text = format!(
        "virtual_server 10.255.0.1 80 {{\n delay_loop 0.2\n real_server 127.0.0.1 7002 {{\n  \
         weight 3\n  MISC_CHECK {{\n   misc_path \"exit $(cat {})\"\n   misc_dynamic\n   \
         warmup 0\n  }}\n }}\n}}",
        code.display()
    );
    let cfg = config(&text);
    let real: SocketAddr = "127.0.0.1:7002".parse().unwrap();
    let (sup, mut rx) = HealthSupervisor::start(&cfg.virtual_servers);
    let limit = Duration::from_secs(3);
    assert_eq!(next_real(&mut rx, real, limit).await.dynamic_weight, None);
    assert_eq!(
        next_real(&mut rx, real, limit).await.dynamic_weight,
        Some(5)
    );
    std::fs::write(&code, "0").unwrap();
    let e = next_real(&mut rx, real, limit).await;
    assert_eq!((e.health, e.dynamic_weight), (Health::Up, Some(3)));
    sup.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_start_one_failure_takes_an_unchecked_real_down_then_retries_count() {
    // keepalived starts its checkers with their retries spent: a real that is dead when the
    // daemon starts goes down at its first failed check; once a check has succeeded, `retry`
    // more tries come first. A reload's restart (start_seeded) retries from the start.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = dead.local_addr().unwrap();
    drop(dead);
    let text = format!(
        "virtual_server 10.255.0.1 80 {{\n delay_loop 0.5\n real_server {} {} {{\n  TCP_CHECK {{\n   \
         connect_timeout 0.3\n   retry 2\n   delay_before_retry 0.5\n   warmup 0\n  }}\n }}\n}}",
        addr.ip(),
        addr.port()
    );
    let cfg = config(&text);
    let limit = Duration::from_secs(5);

    let t0 = Instant::now();
    let (sup, mut rx) = HealthSupervisor::start_with(&cfg.virtual_servers, None);
    assert_eq!(next_real(&mut rx, addr, limit).await.health, Health::Up);
    assert_eq!(next_real(&mut rx, addr, limit).await.health, Health::Down);
    let fresh = t0.elapsed();
    assert!(fresh < Duration::from_millis(450), "down after {fresh:?}");
    assert_eq!(sup.stats().checks, 1, "one check decided");
    // it comes back, then a failure needs its retries: 2 × 0.5 s at least
    let l = TcpListener::bind(addr).await.unwrap();
    assert_eq!(next_real(&mut rx, addr, limit).await.health, Health::Up);
    drop(l);
    let t1 = Instant::now();
    assert_eq!(next_real(&mut rx, addr, limit).await.health, Health::Down);
    assert!(
        t1.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        t1.elapsed()
    );
    sup.shutdown().await;

    // a reload's restart: retries as configured from the first check
    let t0 = Instant::now();
    let (sup, mut rx) = HealthSupervisor::start_seeded(&cfg.virtual_servers, None, &[]);
    assert_eq!(next_real(&mut rx, addr, limit).await.health, Health::Up);
    assert_eq!(next_real(&mut rx, addr, limit).await.health, Health::Down);
    assert!(
        t0.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        t0.elapsed()
    );
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_carries_the_misc_dynamic_weight_over() {
    let text = "virtual_server 10.255.0.1 80 {\n delay_loop 60\n real_server 127.0.0.1 7003 {\n  \
                weight 3\n  MISC_CHECK {\n   misc_path \"exit 7\"\n   misc_dynamic\n  }\n }\n}";
    let cfg = config(text);
    let real: SocketAddr = "127.0.0.1:7003".parse().unwrap();
    let since = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let carried = rvs_health::RealStatus {
        service: cfg.virtual_servers[0].service,
        real,
        health: Health::Up,
        dynamic_weight: Some(5),
        since,
        last_error: None,
    };
    let (sup, mut rx) = HealthSupervisor::start_seeded(&cfg.virtual_servers, None, &[carried]);
    let e = next_real(&mut rx, real, Duration::from_secs(1)).await;
    assert_eq!(
        (e.health, e.dynamic_weight, e.since),
        (Health::Up, Some(5), since)
    );
    sup.shutdown().await;
}
