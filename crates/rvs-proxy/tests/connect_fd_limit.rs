//! Out of descriptors when connecting to a real: the director's own failure. The client is
//! closed and counted in `connect_local_error`; the real is not blamed (no connect failure, not
//! taken out by passive failure detection) and no other real is tried; once descriptors are
//! back every real serves again (loopback only). One test alone in this binary: it lowers the
//! process's open-files limit.

mod common;

use common::*;
use rvs_core::SchedulerKind;
use rvs_core::ServiceKey;
use rvs_core::engine::Engine;
use rvs_proxy::{ProxyEngine, ProxyEngineConfig};
use socket2::{Domain, Socket, Type};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[test]
fn out_of_descriptors_for_the_real_side_closes_the_client_and_blames_no_real() {
    let mut e = ProxyEngine::start(ProxyEngineConfig {
        workers: 1,
        ..Default::default()
    })
    .unwrap();
    let bind = "127.0.0.1:0".parse().unwrap();
    let reals = [
        rvs_demo::serve_http(bind, "a").unwrap(),
        rvs_demo::serve_http(bind, "b").unwrap(),
    ];
    let vip = free_addr("127.0.0.1");
    let key = ServiceKey::tcp(vip);
    let rs: Vec<_> = reals.iter().map(|r| fullnat(*r, 1)).collect();
    add_service(&mut e, key, options(SchedulerKind::Rr), &rs);
    assert!(http_get(vip).is_ok(), "served before");
    assert!(wait_until(Duration::from_secs(5), || open_conns(&e, &key) == 0));
    std::thread::sleep(Duration::from_millis(100));

    // The client's socket exists before the limit drops; the proxy can accept it (one
    // descriptor left) but cannot make the socket to a real.
    let client = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let before = set_soft_nofile(lowest_free_fd() + 1);
    client
        .connect(&vip.into())
        .expect("the kernel completes it");
    let mut client = TcpStream::from(client);
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = client.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let mut resp = Vec::new();
    let _ = client.read_to_end(&mut resp); // EOF or a reset: either way no answer
    let counted = wait_until(Duration::from_secs(5), || {
        e.stats().outcomes["connect_local_error"] >= 1
    });
    drop(client);
    set_soft_nofile(before);
    assert!(resp.is_empty(), "no answer: {resp:?}");
    assert!(counted, "{:?}", e.stats().outcomes);

    assert_only_local_errors(&e.stats(), &key, &reals, 1);
    // Descriptors are back: both reals take their turns.
    let bodies: Vec<String> = (0..4).map(|_| http_get(vip).expect("served")).collect();
    for tag in ["a ", "b "] {
        assert_eq!(
            bodies.iter().filter(|b| b.starts_with(tag)).count(),
            2,
            "{bodies:?}"
        );
    }
}
