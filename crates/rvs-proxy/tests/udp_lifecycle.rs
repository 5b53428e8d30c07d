//! What happens to UDP sessions when their service or their real goes away (loopback only).

mod common;

use common::*;
use rvs_core::desired::Change;
use rvs_core::engine::Engine;
use rvs_core::{Health, RealServer, SchedulerKind, ServiceKey};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// `n` new clients each send one datagram to `vip`; returns how many got a reply, and the
/// clients.
fn one_round(vip: SocketAddr, n: usize) -> (usize, Vec<UdpSocket>) {
    new_udp_clients(vip, n, Duration::from_millis(500))
}

#[test]
fn removing_a_udp_service_ends_its_sessions_and_a_readded_one_gets_every_client() {
    let mut e = engine(); // two workers: two sockets in the SO_REUSEPORT group
    let (vip, key, real) = udp_echo_service(&mut e, &["e1"], options(SchedulerKind::Rr));
    let reals = [fullnat(real[0], 1)];
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

/// Sends `msg` from `c` to `vip` and returns the tag of the real that echoed it.
fn ask(c: &UdpSocket, vip: SocketAddr, msg: &str) -> String {
    c.send_to(msg.as_bytes(), vip).unwrap();
    let mut buf = [0u8; 256];
    let (n, from) = c.recv_from(&mut buf).expect("a reply");
    assert_eq!(from, vip);
    let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
    let (tag, body) = reply.split_once(": ").unwrap();
    assert_eq!(body, msg);
    tag.to_string()
}

fn edit(e: &mut rvs_proxy::ProxyEngine, key: ServiceKey, real: RealServer) {
    e.apply(&[Change::EditReal { service: key, real }]).unwrap();
}

#[test]
fn a_session_leaves_a_real_that_is_down_or_removed_but_not_one_that_is_drained() {
    let mut e = engine();
    let (vip, key, reals) = udp_echo_service(&mut e, &["u1", "u2"], options(SchedulerKind::Rr));
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let first = ask(&c, vip, "1");
    let (cur, other) = match first.as_str() {
        "u1" => (reals[0], reals[1]),
        _ => (reals[1], reals[0]),
    };
    let other_tag = if first == "u1" { "u2" } else { "u1" };
    let gone = |e: &rvs_proxy::ProxyEngine| {
        e.stats()
            .outcomes
            .get("udp_real_gone")
            .copied()
            .unwrap_or(0)
    };

    // Drained by the operator (weight 0): the session stays, as a TCP connection would.
    edit(&mut e, key, fullnat(cur, 0));
    assert_eq!(ask(&c, vip, "2"), first);
    assert_eq!(gone(&e), 0);

    // Down by its health check: the session ends and the next datagram goes to the other real.
    let down = RealServer {
        health: Health::Down,
        ..fullnat(cur, 1)
    };
    edit(&mut e, key, down);
    assert_eq!(ask(&c, vip, "3"), other_tag);
    assert!(wait_until(Duration::from_secs(3), || gone(&e) == 1));
    let sessions: Vec<_> = e.connections().iter().map(|x| x.real).collect();
    assert_eq!(sessions, [other]);

    // Back up, and the other real removed: the session moves back.
    edit(&mut e, key, fullnat(cur, 1));
    e.apply(&[Change::RemoveReal {
        service: key,
        addr: other,
    }])
    .unwrap();
    assert_eq!(ask(&c, vip, "4"), first);
    assert!(wait_until(Duration::from_secs(3), || gone(&e) == 2));
    assert!(wait_until(Duration::from_secs(3), || {
        let sessions: Vec<_> = e.connections().iter().map(|x| x.real).collect();
        sessions == [cur]
    }));
}
