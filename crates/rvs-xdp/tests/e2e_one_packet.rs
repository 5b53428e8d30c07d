//! End to end, in network namespaces (`common::e2e_lab`): a DNS-style UDP service with
//! one-packet scheduling (`-o`, `-s mh`) on DR / TUN reals. Each real answers a datagram on
//! VIP:5353 with its name (straight to the client: DR/TUN replies bypass the director). Every
//! client port's queries are answered by the one real Maglev gives that port, ports spread over
//! the reals, the connection listing stays empty and every datagram counts as a connection.
//! Root only.

mod common;

use common::e2e_lab::{in_ns, lab};
use rvs_core::desired::Change;
use rvs_core::engine::Engine;
use rvs_core::model::{ForwardMethod, RealServer, SchedulerKind, ServiceKey, ServiceOptions};
use rvs_net::realserver::Method;
use rvs_xdp::{XdpConfig, XdpEngine};
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const PORT: u16 = 5353;
const CLIENT_PORTS: std::ops::Range<u16> = 43000..43012;
const QUERIES_PER_PORT: usize = 3;

/// A UDP responder bound to VIP:PORT inside a real's namespace, answering every datagram with
/// `name` until `stop` is set.
fn responder(sock: UdpSocket, name: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((_, from)) = sock.recv_from(&mut buf) {
                let _ = sock.send_to(name.as_bytes(), from);
            }
        }
    })
}

fn one_packet_e2e(method: Method, fwd: ForwardMethod, v6: bool) {
    if !rvs_testbed::is_root() {
        eprintln!("skipping: needs root for namespaces and XDP");
        return;
    }
    let lab = lab(method, v6);
    let vip = SocketAddr::new(lab.vip, PORT);
    let stop = Arc::new(AtomicBool::new(false));
    let mut servers = Vec::new();
    for (i, r) in lab.topo.reals.iter().enumerate() {
        let sock = in_ns(&r.ns, || UdpSocket::bind(vip)).expect("bind VIP on the real");
        servers.push(responder(sock, format!("real{i}"), stop.clone()));
    }
    let key = ServiceKey::udp(vip);
    let client = &lab.topo.client;
    let cip = if v6 {
        IpAddr::V6(client.ip6)
    } else {
        IpAddr::V4(client.ip4)
    };
    in_ns(&lab.topo.director.ns, || {
        let mut engine = XdpEngine::start(XdpConfig {
            interfaces: vec!["eth0".into()],
            ..Default::default()
        })
        .expect("engine");
        let options = ServiceOptions {
            scheduler: SchedulerKind::Mh,
            one_packet: true,
            ..Default::default()
        };
        let mut changes = vec![Change::AddService { key, options }];
        for r in &lab.topo.reals {
            let ip = if v6 {
                IpAddr::V6(r.ip6)
            } else {
                IpAddr::V4(r.ip4)
            };
            changes.push(Change::AddReal {
                service: key,
                real: RealServer::new(SocketAddr::new(ip, PORT), fwd, 1),
            });
        }
        engine.apply(&changes).expect("apply");
        let mut answered_by = BTreeSet::new();
        let mut sent = 0u64;
        for port in CLIENT_PORTS {
            let sock = in_ns(&client.ns, || UdpSocket::bind(SocketAddr::new(cip, port)))
                .expect("client socket");
            sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut names = BTreeSet::new();
            for q in 0..QUERIES_PER_PORT {
                // The first query of a port may be lost to neighbour resolution: retried.
                let mut buf = [0u8; 64];
                let mut got = None;
                for _ in 0..3 {
                    sock.send_to(format!("query {q}").as_bytes(), vip).unwrap();
                    sent += 1;
                    if let Ok((n, from)) = sock.recv_from(&mut buf) {
                        assert_eq!(from, vip, "port {port}: reply not from the VIP");
                        got = Some(String::from_utf8_lossy(&buf[..n]).to_string());
                        break;
                    }
                }
                names.insert(got.unwrap_or_else(|| panic!("port {port}: query {q} unanswered")));
            }
            assert_eq!(names.len(), 1, "port {port}: answered by {names:?}");
            println!("client port {port}: {QUERIES_PER_PORT} queries, all answered by {names:?}");
            answered_by.extend(names);
        }
        assert!(answered_by.len() > 1, "every port on {answered_by:?}");
        assert_eq!(engine.connections(), vec![], "-o made connection entries");
        let stats = engine.stats();
        let svc = &stats.services[&key].counters;
        // Every datagram forwarded counts as a connection (a query lost before the director
        // forwarded it, and retried, counts nowhere).
        let forwarded = stats.outcomes.get("forwarded").copied().unwrap_or(0);
        let answered = (CLIENT_PORTS.len() * QUERIES_PER_PORT) as u64;
        assert!(
            (answered..=sent).contains(&forwarded),
            "forwarded {forwarded}, sent {sent}"
        );
        assert_eq!(
            svc.conns, forwarded,
            "every datagram counts as a connection"
        );
        assert_eq!(svc.in_pkts, forwarded);
        engine.shutdown();
    });
    stop.store(true, Ordering::Relaxed);
    for s in servers {
        s.join().unwrap();
    }
}

#[test]
fn dr_udp_one_packet_spreads_queries_without_entries() {
    one_packet_e2e(Method::Dr, ForwardMethod::Dr, false);
}

#[test]
fn tun_udp_one_packet_spreads_queries_without_entries() {
    one_packet_e2e(Method::Tun, ForwardMethod::Tun, false);
}

#[test]
fn dr_ipv6_udp_one_packet_spreads_queries_without_entries() {
    one_packet_e2e(Method::Dr, ForwardMethod::Dr, true);
}
