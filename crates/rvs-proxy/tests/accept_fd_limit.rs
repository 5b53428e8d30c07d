//! Out of descriptors (`EMFILE`): the listener rests between attempts instead of spinning on a
//! readable socket it cannot accept from, counts it, and serves the waiting clients once
//! descriptors are free again (loopback only). One test alone in this binary: it lowers the
//! process's open-files limit.

mod common;

use common::*;
use rvs_core::engine::Engine;
use rvs_core::{SchedulerKind, ServiceKey};
use rvs_proxy::{ProxyEngine, ProxyEngineConfig};
use socket2::{Domain, Socket, Type};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// User + system CPU time of this process, in milliseconds.
fn cpu_ms() -> u64 {
    // SAFETY: getrusage fills a zeroed rusage value.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut ru), 0);
        ru
    };
    let ms = |t: libc::timeval| t.tv_sec as u64 * 1000 + t.tv_usec as u64 / 1000;
    ms(ru.ru_utime) + ms(ru.ru_stime)
}

#[test]
fn out_of_descriptors_the_listener_rests_counts_and_serves_the_clients_later() {
    let mut e = ProxyEngine::start(ProxyEngineConfig {
        workers: 1,
        ..Default::default()
    })
    .unwrap();
    let real = rvs_demo::serve_http("127.0.0.1:0".parse().unwrap(), "f").unwrap();
    let vip = free_addr("127.0.0.1");
    let key = ServiceKey::tcp(vip);
    add_service(&mut e, key, options(SchedulerKind::Rr), &[fullnat(real, 1)]);
    assert!(http_get(vip).unwrap().starts_with("f "), "served before");
    // That connection's descriptors are closed (a late close would free a number below the
    // limit set next).
    assert!(wait_until(Duration::from_secs(5), || open_conns(&e, &key) == 0));
    std::thread::sleep(Duration::from_millis(100));

    // The clients' sockets exist before the limit drops (connecting needs no descriptor).
    let clients: Vec<Socket> = (0..3)
        .map(|_| Socket::new(Domain::IPV4, Type::STREAM, None).unwrap())
        .collect();
    // The lowest free descriptor number becomes the limit: no new descriptor can be made.
    let before = set_soft_nofile(lowest_free_fd());
    for c in &clients {
        c.connect(&vip.into())
            .expect("the kernel completes the handshake");
    }
    let cpu0 = cpu_ms();
    std::thread::sleep(Duration::from_secs(1));
    let cpu = cpu_ms() - cpu0;
    let rested = e.stats().outcomes["accept_fd_limit"];
    set_soft_nofile(before);
    eprintln!("out of descriptors for 1 s: {cpu} ms CPU, {rested} rests");

    // A spinning accept loop would burn the whole second (and count ~10^5 failures or more).
    assert!(cpu < 400, "{cpu} ms of CPU in 1 s while out of descriptors");
    assert!(
        (1..=500).contains(&rested),
        "{rested} failed accepts counted in 1 s with a 10 ms rest"
    );
    // Descriptors are back: every waiting client is served in full, none was reset.
    for c in clients {
        let mut s = TcpStream::from(c);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).expect("served, not reset");
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp:?}");
        assert!(resp.ends_with(&format!("f ({real})\n")), "{resp:?}");
    }
}
