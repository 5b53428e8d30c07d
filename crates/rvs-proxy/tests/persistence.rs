//! Persistence templates expire on time in what the engine reports, not only when a new
//! connection comes (loopback only).

mod common;

use common::*;
use rvs_core::engine::Engine;
use rvs_core::{Persistence, SchedulerKind, ServiceKey};
use rvs_proxy::ProxyEngine;
use std::time::Duration;

/// An engine with one `-p 2` service on a demo backend, after one request through it.
fn one_request_with_persistence() -> (ProxyEngine, ServiceKey) {
    let mut e = engine();
    let real = rvs_demo::serve_http("127.0.0.1:0".parse().unwrap(), "p").unwrap();
    let vip = free_addr("127.0.0.1");
    let key = ServiceKey::tcp(vip);
    let mut opts = options(SchedulerKind::Rr);
    opts.persistence = Some(Persistence {
        timeout: 2,
        prefix_len: 32,
    });
    add_service(&mut e, key, opts, &[fullnat(real, 1)]);
    http_get(vip).unwrap();
    assert!(wait_until(Duration::from_secs(3), || open_conns(&e, &key) == 0));
    (e, key)
}

#[test]
fn an_expired_template_leaves_the_listing_without_a_new_connection() {
    let (e, _) = one_request_with_persistence();
    let templates = |e: &ProxyEngine| e.connections().iter().filter(|c| c.state == "NONE").count();
    assert_eq!(templates(&e), 1);
    assert!(
        wait_until(Duration::from_secs(6), || templates(&e) == 0),
        "the -p 2 template is still listed"
    );
}

#[test]
fn an_expired_template_leaves_the_persistent_count_without_a_new_connection() {
    let (e, key) = one_request_with_persistence();
    let persistent = |e: &ProxyEngine| -> u32 {
        e.stats().services[&key]
            .reals
            .values()
            .map(|r| r.persistent_conns)
            .sum()
    };
    assert_eq!(persistent(&e), 1);
    assert!(
        wait_until(Duration::from_secs(6), || persistent(&e) == 0),
        "the -p 2 template is still counted"
    );
}
