//! UDP through the proxy engine on loopback: 100 concurrent clients each get their own reply
//! from the VIP, and one-packet scheduling spreads one client's datagrams.

mod common;

use common::*;
use rvs_core::engine::Engine;
use rvs_core::{SchedulerKind, ServiceKey, ServiceOptions};
use std::net::UdpSocket;
use std::sync::{Arc, Barrier};
use std::time::Duration;

#[test]
fn hundred_concurrent_clients_get_their_own_replies_from_the_vip() {
    let mut e = engine();
    let (vip, key, _) = udp_echo_service(&mut e, &["u1", "u2"], options(SchedulerKind::Rr));

    let n = 100;
    let barrier = Arc::new(Barrier::new(n));
    let clients: Vec<_> = (0..n)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                barrier.wait();
                let msg = format!("client-{i}");
                let mut buf = [0u8; 256];
                // One datagram each, no retry: the proxy must not lose a session's first
                // datagram (the reals are bound before the service exists).
                s.send_to(msg.as_bytes(), vip).unwrap();
                let (len, from) = s.recv_from(&mut buf).ok()?;
                let reply = String::from_utf8_lossy(&buf[..len]).into_owned();
                Some((reply, from, msg))
            })
        })
        .collect();
    let mut per_real = [0; 2];
    for c in clients {
        let (reply, from, msg) = c.join().unwrap().expect("a reply");
        assert_eq!(from, vip, "replies come from the VIP");
        let (tag, body) = reply.split_once(": ").unwrap();
        assert_eq!(body, msg, "each client gets its own reply");
        per_real[if tag == "u1" { 0 } else { 1 }] += 1;
    }
    assert_eq!(per_real, [50, 50], "rr over two reals");
    // A reply is counted just after it is sent: let the last counts land.
    assert!(wait_until(Duration::from_secs(2), || {
        let c = e.stats().services[&key].counters;
        c.in_pkts == c.out_pkts
    }));
    let stats = e.stats();
    let svc = &stats.services[&key];
    assert_eq!(svc.counters.conns, 100, "one session per client");
    assert_eq!(svc.counters.in_pkts, svc.counters.out_pkts);
    assert_eq!(svc.counters.in_pkts, 100, "one datagram each");
    let conns = e.connections();
    assert_eq!(conns.iter().filter(|c| c.state == "UDP").count(), 100);
    assert_eq!(
        svc.reals.values().map(|r| r.inactive_conns).sum::<u32>(),
        100
    );
    assert!(
        conns.iter().all(|c| c.expires_ms > 200_000),
        "UDP timeout 300 s by default"
    );
}

#[test]
fn sessions_expire_with_the_udp_timeout() {
    let mut e = engine();
    e.apply(&[rvs_core::desired::Change::SetTimeouts(
        rvs_core::desired::Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 1,
            ..Default::default()
        },
    )])
    .unwrap();
    let (vip, key, _) = udp_echo_service(&mut e, &["t1"], options(SchedulerKind::Rr));
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.send_to(b"x", vip).unwrap();
    let mut buf = [0u8; 64];
    s.recv_from(&mut buf).unwrap();
    assert_eq!(open_conns(&e, &key), 1);
    assert!(wait_until(Duration::from_secs(4), || open_conns(&e, &key) == 0));
    assert!(e.connections().is_empty());
}

#[test]
fn one_packet_scheduling_schedules_every_datagram() {
    let mut e = engine();
    let opts = ServiceOptions {
        one_packet: true,
        ..options(SchedulerKind::Rr)
    };
    let (vip, key, reals) = udp_echo_service(&mut e, &["o1", "o2"], opts);
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut tags = Vec::new();
    for i in 0..10 {
        s.send_to(format!("q{i}").as_bytes(), vip).unwrap();
        let mut buf = [0u8; 64];
        let (len, from) = s.recv_from(&mut buf).unwrap();
        assert_eq!(from, vip);
        let reply = String::from_utf8_lossy(&buf[..len]).into_owned();
        assert!(reply.ends_with(&format!("q{i}")), "{reply}");
        tags.push(reply.split(':').next().unwrap().to_string());
    }
    assert_eq!(tags.iter().filter(|t| *t == "o1").count(), 5, "{tags:?}");
    let stats = e.stats();
    assert_eq!(
        stats.services[&key].counters.conns, 10,
        "each datagram is a connection"
    );
    for r in &reals {
        assert_eq!(stats.services[&key].reals[r].counters.conns, 5);
    }
}

#[test]
fn udp_over_ipv6() {
    let mut e = engine();
    let real = rvs_demo::spawn_udp_echo("[::1]:0".parse().unwrap(), "v6", true).unwrap();
    let vip = UdpSocket::bind("[::1]:0").unwrap().local_addr().unwrap();
    let key = ServiceKey::udp(vip);
    add_service(&mut e, key, options(SchedulerKind::Rr), &[fullnat(real, 1)]);
    let s = UdpSocket::bind("[::1]:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.send_to(b"hello6", vip).unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = s.recv_from(&mut buf).unwrap();
    assert_eq!((from, &buf[..n]), (vip, &b"v6: hello6"[..]));
    assert_eq!(e.stats().services[&key].counters.conns, 1);
}

/// What the proxy engine cannot do for UDP is refused with the reason, not silently done
/// wrong: a VIP of 0.0.0.0 (replies would leave from whatever address the kernel picks, not
/// the one the client sent to) and a PROXY protocol header (only TCP carries one).
#[test]
fn unspecified_vips_and_proxy_protocol_are_refused_for_udp() {
    use rvs_core::desired::{Change, ServiceConfig};
    use rvs_core::model::ProxyProtocol;
    let mut e = engine();
    let vip = udp_vip();
    let real = fullnat(udp_vip(), 1);
    // A specific VIP without PROXY protocol: fine.
    let mut svc = ServiceConfig::new(ServiceKey::udp(vip), options(SchedulerKind::Rr));
    svc.reals.insert(real.addr, real);
    assert!(e.supports(&svc).is_ok());
    // Any address: refused by supports() and by apply.
    let any = std::net::SocketAddr::from(([0, 0, 0, 0], vip.port()));
    let mut svc_any = ServiceConfig::new(ServiceKey::udp(any), options(SchedulerKind::Rr));
    svc_any.reals.insert(real.addr, real);
    assert!(e.supports(&svc_any).unwrap_err().0.contains("specific VIP"));
    assert!(
        e.apply(&[Change::AddService {
            key: ServiceKey::udp(any),
            options: options(SchedulerKind::Rr),
        }])
        .is_err()
    );
    // PROXY protocol on the service, or on one real: refused.
    let mut pp = options(SchedulerKind::Rr);
    pp.proxy.proxy_protocol = ProxyProtocol::V2;
    let mut svc_pp = ServiceConfig::new(ServiceKey::udp(vip), pp);
    svc_pp.reals.insert(real.addr, real);
    assert!(
        e.supports(&svc_pp)
            .unwrap_err()
            .0
            .contains("PROXY protocol")
    );
    let mut real_pp = real;
    real_pp.proxy_protocol = Some(ProxyProtocol::V1);
    svc.reals.insert(real_pp.addr, real_pp);
    assert!(e.supports(&svc).unwrap_err().0.contains("PROXY protocol"));
    // TCP on any address with PROXY protocol stays fine.
    let mut tcp = ServiceConfig::new(ServiceKey::tcp(any), pp);
    tcp.reals.insert(real.addr, real);
    assert!(e.supports(&tcp).is_ok());
}
