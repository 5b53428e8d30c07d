//! What happens to UDP sessions when their service or their real goes away (loopback only).

mod common;

use common::*;
use rvs_core::desired::Change;
use rvs_core::engine::Engine;
use rvs_core::{SchedulerKind, ServiceKey};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// `n` new clients each send one datagram to `vip`; returns how many got a reply. The clients
/// are returned too, so their sessions (if any) stay wanted.
fn one_round(vip: SocketAddr, n: usize) -> (usize, Vec<UdpSocket>) {
    let clients: Vec<UdpSocket> = (0..n)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            s
        })
        .collect();
    for (i, s) in clients.iter().enumerate() {
        s.send_to(format!("m{i}").as_bytes(), vip).unwrap();
    }
    let mut buf = [0u8; 256];
    let answered = clients
        .iter()
        .filter(|s| s.recv_from(&mut buf).is_ok())
        .count();
    (answered, clients)
}

#[test]
fn removing_a_udp_service_ends_its_sessions_and_a_readded_one_gets_every_client() {
    let mut e = engine(); // two workers: two sockets in the SO_REUSEPORT group
    let real = echo_backends(&["e1"])[0];
    std::thread::sleep(Duration::from_millis(50));
    let vip = udp_vip();
    let key = ServiceKey::udp(vip);
    let reals = [fullnat(real, 1)];
    add_service(&mut e, key, options(SchedulerKind::Rr), &reals);
    let (answered, _first) = one_round(vip, 100);
    assert_eq!(answered, 100);
    assert_eq!(e.connections().len(), 100);

    e.apply(&[Change::RemoveService(key)]).unwrap();
    assert!(wait_until(Duration::from_secs(3), || e
        .connections()
        .is_empty()));
    let (answered, _second) = one_round(vip, 5);
    assert_eq!(answered, 0, "a removed service answers nobody");

    // Re-added: the old sockets are closed, so no client lands on one.
    add_service(&mut e, key, options(SchedulerKind::Rr), &reals);
    let (answered, _third) = one_round(vip, 100);
    assert_eq!(
        answered, 100,
        "every client of the re-added service is answered"
    );
}
