//! Out of descriptors while relaying bulk data: no pipe can be made for `splice`, so the chunks
//! go through the copy buffer and the connection goes on, every byte intact (counted in
//! `splice_fallback`; loopback only). One test alone in this binary: it lowers the process's
//! open-files limit.

mod common;

use common::*;
use rvs_core::SchedulerKind;
use rvs_core::ServiceKey;
use rvs_core::engine::Engine;
use rvs_proxy::{ProxyEngine, ProxyEngineConfig};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

const N: usize = 3 * 1024 * 1024;

fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

#[test]
fn without_descriptors_for_a_pipe_bulk_data_is_copied_and_arrives_intact() {
    let mut e = ProxyEngine::start(ProxyEngineConfig {
        workers: 1,
        splice: true,
        ..Default::default()
    })
    .unwrap();
    // The real echoes everything back, then closes its side.
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let real = server.local_addr().unwrap();
    let (accepted_tx, accepted) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = server.accept().unwrap();
        accepted_tx.send(()).unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => s.write_all(&buf[..n]).unwrap(),
            }
        }
        let _ = s.shutdown(Shutdown::Write);
    });
    let vip = free_addr("127.0.0.1");
    let key = ServiceKey::tcp(vip);
    add_service(&mut e, key, options(SchedulerKind::Rr), &[fullnat(real, 1)]);

    // Every descriptor of the connection exists before the limit drops (the worker's pipe pool
    // is empty: nothing was spliced yet).
    let mut c = TcpStream::connect(vip).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut writer = c.try_clone().unwrap();
    accepted
        .recv_timeout(Duration::from_secs(5))
        .expect("the proxy connected to the real");
    let before = set_soft_nofile(lowest_free_fd());
    let up = std::thread::spawn(move || {
        let data: Vec<u8> = (0..N).map(pattern).collect();
        writer.write_all(&data).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut got = Vec::with_capacity(N);
    let read = c.read_to_end(&mut got);
    set_soft_nofile(before);
    up.join().unwrap();
    read.expect("the connection went on");
    assert_eq!(got.len(), N, "every byte back");
    assert!(
        got.iter().enumerate().all(|(i, b)| *b == pattern(i)),
        "the echo is intact"
    );
    let stats = e.stats();
    assert!(
        stats.outcomes["splice_fallback"] > 0,
        "{:?}",
        stats.outcomes
    );
    assert_eq!(stats.outcomes["relay_reset"], 0, "{:?}", stats.outcomes);
    let s = &stats.services[&key].counters;
    assert_eq!((s.in_bytes, s.out_bytes), (N as u64, N as u64));
}
