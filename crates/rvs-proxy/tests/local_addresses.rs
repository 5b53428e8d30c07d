//! FULLNAT local addresses on the proxy engine: connections to the reals leave from the
//! service's local addresses (round robin over those of the real's family), else from the
//! engine's default pool, else from the host's choice. Loopback only (127.0.0.0/8 is local).

mod common;

use common::*;
use rvs_core::SchedulerKind;
use rvs_core::ServiceKey;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::time::Duration;

/// A real that answers each connection with the address it came from, forever.
fn peer_echo() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let peer = s.peer_addr().unwrap().ip().to_string();
            let _ = s.write_all(peer.as_bytes());
        }
    });
    addr
}

/// How many connections through `vip` came from each source address.
fn sources(vip: std::net::SocketAddr, n: usize) -> BTreeMap<IpAddr, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let mut c = TcpStream::connect(vip).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        *seen.entry(s.parse::<IpAddr>().unwrap()).or_insert(0) += 1;
    }
    seen
}

#[test]
fn connections_to_the_reals_leave_from_the_local_addresses() {
    let mut e = engine();
    let real = peer_echo();
    let vip = free_addr("127.0.0.1");
    let key = ServiceKey::tcp(vip);
    add_service(&mut e, key, options(SchedulerKind::Rr), &[fullnat(real, 1)]);
    // No pool: the host's address.
    let host: IpAddr = "127.0.0.1".parse().unwrap();
    assert_eq!(sources(vip, 4), BTreeMap::from([(host, 4)]));
    // The service's own pool (an IPv6 address in it is for IPv6 reals only).
    let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
    e.set_fullnat_pool(key, vec![a, "::1".parse().unwrap(), b]);
    assert_eq!(sources(vip, 10), BTreeMap::from([(a, 5), (b, 5)]));
    // Back to the engine's default pool (none here): the host's address again.
    e.set_fullnat_pool(key, Vec::new());
    assert_eq!(sources(vip, 2), BTreeMap::from([(host, 2)]));
}

#[test]
fn the_engine_default_pool_serves_services_without_their_own() {
    let mut e = rvs_proxy::ProxyEngine::start(rvs_proxy::ProxyEngineConfig {
        workers: 1,
        fullnat_local: vec!["127.0.0.4".parse().unwrap()],
        ..Default::default()
    })
    .unwrap();
    let real = peer_echo();
    let vip = free_addr("127.0.0.1");
    let key = ServiceKey::tcp(vip);
    add_service(&mut e, key, options(SchedulerKind::Rr), &[fullnat(real, 1)]);
    assert_eq!(
        sources(vip, 3),
        BTreeMap::from([("127.0.0.4".parse().unwrap(), 3)])
    );
}
