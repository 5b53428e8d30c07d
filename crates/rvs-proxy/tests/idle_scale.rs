//! 5,000 concurrent idle connections through the proxy engine: held (all ESTABLISHED, counted
//! active), then released: no active connection once the clients close, and none at all after
//! the FIN timeout (the real never closes its side). The real server runs in a child process
//! (this same test binary, `holder_child`) so that the descriptors of both ends fit in the
//! 20,000 open-files limit: here 5,000 client + 10,000 proxy sockets.

mod common;

use common::*;
use rvs_core::SchedulerKind;
use rvs_core::desired::Timeouts;
use rvs_core::engine::Engine;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

const CONNS: usize = 5000;

/// Raises the soft open-files limit to the hard one; returns the new soft limit.
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Child mode: accept and hold connections until stdin closes.
#[test]
fn holder_child() {
    let Some(addr) = std::env::var_os("RVS_PROXY_HOLDER") else {
        return; // only meaningful when spawned by `five_thousand_idle_connections`
    };
    let addr: SocketAddr = addr.to_str().unwrap().parse().unwrap();
    let l = TcpListener::bind(addr).unwrap();
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0);
    });
    let mut held = Vec::new();
    for s in l.incoming().flatten() {
        held.push(s);
    }
}

#[test]
fn five_thousand_idle_connections_held_and_released() {
    let limit = raise_nofile();
    if limit < (3 * CONNS + 500) as u64 {
        eprintln!("SKIP: open-files limit {limit} is too low for {CONNS} proxied connections");
        return;
    }
    let real = free_addr("127.0.0.1");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "holder_child", "--test-threads=1"])
        .env("RVS_PROXY_HOLDER", real.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || TcpStream::connect(real).is_ok()),
        "holder up"
    );

    let mut e = engine();
    let (vip, key) = tcp_service(&mut e, "127.0.0.1", options(SchedulerKind::Wlc), &[real]);
    let rss_before = rss_kib();
    let clients: Vec<TcpStream> = (0..CONNS)
        .map(|_| TcpStream::connect(vip).unwrap())
        .collect();
    let all_active = wait_until(Duration::from_secs(30), || {
        conn_counts(&e.stats(), &key, real) == (CONNS as u32, 0)
    });
    assert!(
        all_active,
        "counts {:?}, outcomes {:?}",
        conn_counts(&e.stats(), &key, real),
        e.stats().outcomes
    );
    let rss_held = rss_kib();
    let conns = e.connections();
    assert_eq!(conns.len(), CONNS);
    assert!(
        conns
            .iter()
            .all(|c| c.state == "ESTABLISHED" && c.real == real)
    );
    assert_eq!(e.stats().services[&key].counters.conns, CONNS as u64);
    println!(
        "RSS {rss_before} KiB -> {rss_held} KiB with {CONNS} idle proxied connections: \
         {:.2} KiB per connection (process total, clients' sockets included)",
        (rss_held.saturating_sub(rss_before)) as f64 / CONNS as f64
    );

    // The holder never closes its side: after the clients' FIN the connections are half-closed
    // (FIN_WAIT, inactive) until the real answers or the FIN timeout passes — set it short.
    let t = Timeouts {
        tcp: 900,
        tcp_fin: 1,
        udp: 300,
        ..Default::default()
    };
    e.apply(&[rvs_core::desired::Change::SetTimeouts(t)])
        .unwrap();
    drop(clients);
    let no_active = wait_until(Duration::from_secs(30), || {
        conn_counts(&e.stats(), &key, real).0 == 0
    });
    assert!(
        no_active,
        "counts {:?}",
        conn_counts(&e.stats(), &key, real)
    );
    let released = wait_until(Duration::from_secs(30), || open_conns(&e, &key) == 0);
    assert!(released, "counts {:?}", conn_counts(&e.stats(), &key, real));
    assert!(e.connections().is_empty());
    drop(child.stdin.take());
    let _ = child.wait();
}
