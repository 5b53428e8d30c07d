//! How a relayed TCP connection ends: the FIN timeout after a half-close, and a reset from one
//! side reaching the other as a reset (loopback only).

mod common;

use common::*;
use rvs_core::desired::{Change, Timeouts};
use rvs_core::engine::Engine;
use rvs_core::{SchedulerKind, ServiceKey};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::time::Duration;

/// A real that echoes until the client's FIN, then answers `bye` after `delay`.
fn echo_then_bye(delay: Duration) -> SocketAddr {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in server.incoming() {
            let Ok(mut c) = c else { return };
            std::thread::spawn(move || {
                let mut b = [0u8; 64];
                while let Ok(n @ 1..) = c.read(&mut b) {
                    let _ = c.write_all(&b[..n]);
                }
                std::thread::sleep(delay);
                let _ = c.write_all(b"bye");
            });
        }
    });
    addr
}

#[test]
fn fin_timeout_runs_from_the_half_close_not_from_the_last_data() {
    let mut e = engine();
    e.apply(&[Change::SetTimeouts(Timeouts {
        tcp: 900,
        tcp_fin: 1,
        udp: 300,
    })])
    .unwrap();
    let real = echo_then_bye(Duration::from_millis(300));
    let vip = free_addr("127.0.0.1");
    add_service(
        &mut e,
        ServiceKey::tcp(vip),
        options(SchedulerKind::Rr),
        &[fullnat(real, 1)],
    );
    let mut c = std::net::TcpStream::connect(vip).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"hi").unwrap();
    let mut b = [0u8; 2];
    c.read_exact(&mut b).unwrap();
    // Idle for longer than the FIN timeout while established (the 900 s timeout applies)...
    std::thread::sleep(Duration::from_millis(1500));
    // ...then half-close: the real's answer 300 ms later is within the 1 s FIN timeout.
    c.shutdown(Shutdown::Write).unwrap();
    let mut rest = String::new();
    c.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "bye");
    assert_eq!(e.stats().outcomes["idle_timeout"], 0);
}
