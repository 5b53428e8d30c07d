//! A real that is the service's own VIP (`rvsadm -a -t 127.0.0.1:80 -r 127.0.0.1 -b`: ipvsadm
//! fills in the VIP's port) made every connection loop through the proxy, two descriptors a
//! hop: one client took ~19,900 descriptors in under a second and the connection cap then
//! stopped every service of the engine. Such a real is refused with its reason, and the
//! engine goes on serving.

mod common;

use common::*;
use rvs_core::desired::{Change, ServiceConfig};
use rvs_core::engine::Engine;
use rvs_core::{SchedulerKind, ServiceKey};
use std::net::SocketAddr;

#[test]
fn a_real_that_is_the_vip_itself_is_refused() {
    let mut e = engine();
    let backend = echo_http_backend();
    let (vip, key) = tcp_service(&mut e, "127.0.0.1", options(SchedulerKind::Rr), &[backend]);
    let any = SocketAddr::from(([0, 0, 0, 0], vip.port()));
    let zero_port = SocketAddr::new(vip.ip(), 0);
    for (service, real) in [
        (key, vip),
        (key, zero_port),
        (ServiceKey::tcp(any), vip),
        (ServiceKey::tcp(any), any),
        (key, any),
        (ServiceKey::udp(vip), vip),
    ] {
        let mut svc = ServiceConfig::new(service, options(SchedulerKind::Rr));
        svc.reals.insert(real, fullnat(real, 1));
        let err = e.supports(&svc).unwrap_err();
        assert!(err.0.contains("own VIP"), "{service} {real}: {err}");
    }
    // Another port, or another address behind a specific VIP: fine.
    for real in [
        SocketAddr::new(vip.ip(), vip.port() ^ 1),
        "127.0.0.2:0".parse().unwrap(),
    ] {
        let mut svc = ServiceConfig::new(key, options(SchedulerKind::Rr));
        svc.reals.insert(real, fullnat(real, 1));
        assert!(e.supports(&svc).is_ok(), "{real}");
    }

    let err = e
        .apply(&[Change::AddReal {
            service: key,
            real: fullnat(vip, 1),
        }])
        .unwrap_err();
    assert!(err.to_string().contains("own VIP"), "{err}");
    for _ in 0..5 {
        assert!(http_get(vip).is_ok(), "the service still answers");
    }
    assert_eq!(
        e.stats().services[&key].reals.len(),
        1,
        "the loop real was not added"
    );
}

/// An HTTP backend (the demo's answer) on a free loopback port.
fn echo_http_backend() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                let _ = std::io::Read::read(&mut s, &mut buf);
                let _ = std::io::Write::write_all(
                    &mut s,
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            });
        }
    });
    addr
}
