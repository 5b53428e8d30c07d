//! Passive failure detection for UDP: a real that answers a datagram with ICMP port unreachable
//! (nothing listens on its port) refuses it — `ECONNREFUSED` on the session's connected socket.
//! That counts as the real's failure, as a refused TCP connect does: after `max_fails` it is
//! out for `fail_timeout_ms`, the refused session ends and the client's next datagram goes to
//! another real (loopback only).

mod common;

use common::*;
use rvs_core::engine::Engine;
use rvs_core::{ServiceKey, ServiceOptions};
use rvs_proxy::ProxyEngine;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// A UDP service over a port where nothing listens (`dead`, first) and an echo real tagged
/// `live`; returns the VIP, the key, `dead` and the live real.
fn dead_and_live(e: &mut ProxyEngine, o: ServiceOptions) -> (SocketAddr, ServiceKey, SocketAddr) {
    let live = echo_backends(&["live"])[0];
    let dead = udp_vip(); // a free UDP port: the kernel answers with port unreachable
    let vip = udp_vip();
    let key = ServiceKey::udp(vip);
    add_service(e, key, o, &[fullnat(dead, 1), fullnat(live, 1)]);
    (vip, key, dead)
}

/// Sends `msg` from `c` to `vip`; the tag of the real that echoed it, or `None` without a reply
/// within `wait`.
fn ask(c: &UdpSocket, vip: SocketAddr, msg: &str, wait: Duration) -> Option<String> {
    c.set_read_timeout(Some(wait)).unwrap();
    c.send_to(msg.as_bytes(), vip).unwrap();
    let mut buf = [0u8; 256];
    let (n, _) = c.recv_from(&mut buf).ok()?;
    let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
    let (tag, body) = reply.split_once(": ")?;
    assert_eq!(body, msg);
    Some(tag.to_string())
}

fn new_client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

/// New clients one after the other until one is not answered (its session went to `dead`);
/// returns that client.
fn until_refused(vip: SocketAddr) -> UdpSocket {
    for i in 0..10 {
        let c = new_client();
        match ask(&c, vip, &format!("q{i}"), Duration::from_millis(300)) {
            Some(tag) => assert_eq!(tag, "live"),
            None => return c,
        }
    }
    panic!("no client was scheduled to the dead real");
}

#[test]
fn a_refusing_udp_real_is_taken_out_and_its_clients_go_to_the_live_one() {
    let mut e = engine();
    let (vip, key, dead) = dead_and_live(&mut e, passive_options(1, 30_000));
    let refused = until_refused(vip);
    assert!(
        wait_until(Duration::from_secs(3), || real_stats(&e, &key, dead)
            .passive_out_ms
            > 0),
        "not taken out: {:?}",
        real_stats(&e, &key, dead)
    );
    // The refused client's next datagram is scheduled anew, to the live real.
    let tag = ask(&refused, vip, "again", Duration::from_secs(2));
    assert_eq!(tag.as_deref(), Some("live"));
    // Every new client now goes to the live real.
    for i in 0..40 {
        let tag = ask(&new_client(), vip, &format!("n{i}"), Duration::from_secs(2));
        assert_eq!(tag.as_deref(), Some("live"), "client {i}");
    }
    let stats = e.stats();
    let d = stats.services[&key].reals[&dead];
    assert_eq!((d.connect_failures, d.passive_downs), (1, 1), "{d:?}");
    assert!(d.passive_out_ms > 20_000, "{d:?}");
    assert_eq!(d.counters.conns, 1, "one session went to it");
    assert_eq!(stats.outcomes["udp_refused"], 1, "{:?}", stats.outcomes);
    assert_eq!(stats.outcomes["passive_down"], 1, "{:?}", stats.outcomes);
    let live = stats.services[&key]
        .reals
        .iter()
        .find(|(a, _)| **a != dead)
        .unwrap()
        .1;
    assert_eq!((live.connect_failures, live.passive_downs), (0, 0));
}

#[test]
fn a_udp_real_that_comes_back_is_probed_and_serves_again() {
    let mut e = engine();
    let (vip, key, dead) = dead_and_live(&mut e, passive_options(1, 300));
    let _refused = until_refused(vip);
    assert!(wait_until(Duration::from_secs(3), || {
        real_stats(&e, &key, dead).passive_downs == 1
    }));
    rvs_demo::spawn_udp_echo(dead, "back", true).unwrap();
    std::thread::sleep(Duration::from_millis(400)); // fail_timeout passes: on probation
    let tags: Vec<String> = (0..20)
        .map(|i| {
            let c = new_client();
            ask(&c, vip, &format!("b{i}"), Duration::from_secs(2)).expect("answered")
        })
        .collect();
    let back = tags.iter().filter(|t| *t == "back").count();
    assert!(
        (8..=12).contains(&back),
        "{back} of 20 to the recovered real: {tags:?}"
    );
    let d = real_stats(&e, &key, dead);
    assert_eq!(
        (d.connect_failures, d.passive_downs, d.passive_out_ms),
        (1, 1, 0),
        "{d:?}"
    );
}

#[test]
fn with_passive_detection_off_a_refused_session_still_ends_and_the_client_moves_on() {
    let mut e = engine();
    let (vip, key, dead) = dead_and_live(&mut e, passive_options(0, 10_000));
    let refused = until_refused(vip);
    assert!(wait_until(Duration::from_secs(3), || {
        e.stats().outcomes["udp_refused"] == 1
    }));
    // Its next datagram is scheduled anew (round robin: the live real's turn).
    let tag = ask(&refused, vip, "again", Duration::from_secs(2));
    assert_eq!(tag.as_deref(), Some("live"));
    let d = real_stats(&e, &key, dead);
    assert_eq!(
        (d.connect_failures, d.passive_downs, d.passive_out_ms),
        (1, 0, 0),
        "{d:?}"
    );
}

/// A datagram right behind the refused one (sent before the refusal came back) is not lost on
/// the refused session: it is scheduled anew, to the live real.
#[test]
fn a_datagram_right_behind_a_refused_one_is_rescheduled() {
    let mut e = engine();
    let (vip, key, dead) = dead_and_live(&mut e, passive_options(1, 30_000));
    let mut buf = [0u8; 256];
    for i in 0..10 {
        let c = new_client();
        c.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        c.send_to(format!("{i}a").as_bytes(), vip).unwrap();
        c.send_to(format!("{i}b").as_bytes(), vip).unwrap();
        let n = c.recv(&mut buf).expect("one of the two is answered");
        let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
        if reply == format!("live: {i}a") {
            continue; // scheduled to the live real: both answered; the next goes to the dead one
        }
        assert_eq!(reply, format!("live: {i}b"), "the second is rescheduled");
        assert!(c.recv(&mut buf).is_err(), "the refused one is lost");
        let d = real_stats(&e, &key, dead);
        assert_eq!((d.connect_failures, d.passive_downs), (1, 1), "{d:?}");
        return;
    }
    panic!("no client was scheduled to the dead real");
}

/// A rolling restart of a UDP service's two reals with the default `fail_timeout_ms` (10 s):
/// real 0 restarts (a client meets it down: out for 10 s) and is back; 1.2 s later real 1, the
/// last one in, goes down for 3 s. Every request in those 3 s is answered (by real 0, brought
/// back on probation at real 1's first refusal): before 2026-11-22 none was, until real 0's
/// 10 s were up, because real 1 was kept in as the last real and every new session went to it.
#[test]
fn a_rolling_restart_of_udp_reals_loses_no_request() {
    use rvs_testbed::echo::{UdpClient, UdpEchoReal};
    let mut e = engine();
    let reals = [UdpEchoReal::new(0), UdpEchoReal::new(1)];
    let vip = udp_vip();
    let key = ServiceKey::udp(vip);
    let mut opts = options(rvs_core::SchedulerKind::Rr);
    opts.proxy.max_fails = 1;
    opts.proxy.fail_timeout_ms = 10_000;
    let rs = [fullnat(reals[0].addr(), 1), fullnat(reals[1].addr(), 1)];
    add_service(&mut e, key, opts, &rs);
    let mut bytes = 0;
    reals[0].crash();
    for i in 0..4u8 {
        let _ = UdpClient::new(i).ask(vip, &mut bytes);
    }
    assert!(real_stats(&e, &key, reals[0].addr()).passive_out_ms > 8_000);
    reals[0].restart();
    std::thread::sleep(Duration::from_millis(1_200));
    reals[1].crash();
    let t0 = std::time::Instant::now();
    let (mut ok, mut lost) = (0, 0);
    let mut by = [0u32; 2];
    while t0.elapsed() < Duration::from_secs(3) {
        // A new client (a new session) every 5 ms: well under the engine's cap on sessions.
        std::thread::sleep(Duration::from_millis(5));
        match UdpClient::new(10 + ((ok + lost) % 200) as u8).ask(vip, &mut bytes) {
            Ok(id) => {
                ok += 1;
                by[id as usize] += 1;
            }
            Err(_) => lost += 1,
        }
    }
    reals[1].restart();
    assert_eq!(lost, 0, "{ok} requests answered ({by:?}), {lost} not");
    assert!(ok > 20 && by[0] == ok, "answered by real 0: {by:?}");
}
