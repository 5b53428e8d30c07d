//! Port 0, as IPVS means it: a real on port 0 is reached on the port the client connected to
//! (the VIP's; IPVS's `dest->port ? dest->port : vport`), TCP and UDP — connecting to port 0
//! itself is always refused, so such a real failed every connect; a service on every port
//! (port 0, with persistence) is refused with a reason — binding port 0 took a random port per
//! worker and the service showed as served while no client could reach it.

mod common;

use common::*;
use rvs_core::desired::{Change, ServiceConfig};
use rvs_core::engine::Engine;
use rvs_core::model::Persistence;
use rvs_core::{SchedulerKind, ServiceKey};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::time::Duration;

/// A TCP backend on `127.0.0.1:port` answering each connection with `hello` and closing.
fn tcp_backend(port: u16) -> Option<SocketAddr> {
    let l = TcpListener::bind(("127.0.0.1", port)).ok()?;
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = std::io::Write::write_all(&mut s, b"hello");
        }
    });
    Some(addr)
}

#[test]
fn a_real_on_port_0_is_reached_on_the_vips_port() {
    let mut e = engine();
    // The VIP on 127.0.0.2:P, the real 127.0.0.1:0 with a backend on 127.0.0.1:P.
    let (vip, backend) = (0..20)
        .find_map(|_| {
            let vip = free_addr("127.0.0.2");
            tcp_backend(vip.port()).map(|b| (vip, b))
        })
        .expect("a port free on both addresses");
    let real: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let key = ServiceKey::tcp(vip);
    add_service(&mut e, key, options(SchedulerKind::Rr), &[fullnat(real, 1)]);
    let mut c = client(vip, b"");
    let mut got = String::new();
    std::io::Read::read_to_string(&mut c, &mut got).unwrap();
    assert_eq!(got, "hello", "relayed to {backend}");
    let stats = e.stats();
    let r = &stats.services[&key].reals[&real];
    assert_eq!((r.counters.conns, r.connect_failures), (1, 0));

    // UDP: an echo real on 127.0.0.1:P behind 127.0.0.2:P, named by port 0.
    let echo = (0..20)
        .find_map(|_| {
            let vip = free_addr("127.0.0.2");
            let s = UdpSocket::bind(("127.0.0.1", vip.port())).ok()?;
            UdpSocket::bind(vip).ok()?; // free on the VIP too (dropped at once)
            Some((vip, s))
        })
        .expect("a UDP port free on both addresses");
    let (uvip, server) = echo;
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((n, from)) = server.recv_from(&mut buf) {
            let _ = server.send_to(&buf[..n], from);
        }
    });
    let ukey = ServiceKey::udp(uvip);
    add_service(
        &mut e,
        ukey,
        options(SchedulerKind::Rr),
        &[fullnat(real, 1)],
    );
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    c.send_to(b"ping", uvip).unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = c.recv_from(&mut buf).expect("the echo through the VIP");
    assert_eq!((&buf[..n], from), (&b"ping"[..], uvip));
}

#[test]
fn a_service_on_every_port_is_refused_with_a_reason() {
    let mut e = engine();
    let mut opts = options(SchedulerKind::Rr);
    opts.persistence = Some(Persistence {
        timeout: 60,
        prefix_len: 32,
    });
    for key in [
        ServiceKey::tcp("127.0.0.2:0".parse().unwrap()),
        ServiceKey::udp("127.0.0.2:0".parse().unwrap()),
    ] {
        let err = e.supports(&ServiceConfig::new(key, opts)).unwrap_err();
        assert!(err.0.contains("every port (port 0)"), "{err}");
        let err = e
            .apply(&[Change::AddService { key, options: opts }])
            .unwrap_err();
        assert!(err.to_string().contains("port 0"), "{err}");
        assert!(!e.stats().services.contains_key(&key), "nothing was bound");
    }
}
