//! Restart without losing flows (`XdpConfig::keep_on_exit`) for DR: rvs-testbed's L2 segment
//! with three nginx reals (the VIP on their loopback). A client holds one HTTP keep-alive
//! connection through the VIP; the engine exits keeping its state; the connection answers from
//! the same real while no engine runs, and after a new engine with the reals in the other order
//! and that real drained (so Maglev cannot lead the flow back to it by chance: only the adopted
//! entry does) adopted the state. Root only.

mod common;

use common::e2e_lab::{curls, in_ns, lab};
use common::keep::{kept_root, pins};
use rvs_core::desired::Change;
use rvs_core::engine::Engine;
use rvs_core::model::{ForwardMethod, RealServer, ServiceKey, ServiceOptions};
use rvs_net::realserver::Method;
use rvs_testbed::http_keepalive_get;
use rvs_xdp::{XdpConfig, XdpEngine};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

fn changes(
    reals: &[SocketAddr],
    key: ServiceKey,
    reversed: bool,
    drained: Option<SocketAddr>,
) -> Vec<Change> {
    let mut out = vec![Change::AddService {
        key,
        options: ServiceOptions::default(),
    }];
    let mut reals = reals.to_vec();
    if reversed {
        reals.reverse();
    }
    for r in reals {
        let weight = if drained == Some(r) { 0 } else { 1 };
        out.push(Change::AddReal {
            service: key,
            real: RealServer::new(r, ForwardMethod::Dr, weight),
        });
    }
    out
}

fn config(keep: bool) -> XdpConfig {
    XdpConfig {
        interfaces: vec!["eth0".into()],
        keep_on_exit: keep,
        ..Default::default()
    }
}

#[test]
fn dr_flows_survive_a_restart() {
    if !rvs_testbed::is_root() {
        eprintln!("skipping: needs root for namespaces, XDP and bpffs pins");
        return;
    }
    let lab = lab(Method::Dr, false);
    let d = &lab.topo.director.ns;
    let key = ServiceKey::tcp(SocketAddr::new(lab.vip, 80));
    let reals: Vec<SocketAddr> = lab
        .topo
        .reals
        .iter()
        .map(|r| SocketAddr::new(r.ip(false), 80))
        .collect();
    let root = kept_root(d);
    let mut engine = in_ns(d, || XdpEngine::start(config(true)).expect("engine"));
    in_ns(d, || engine.apply(&changes(&reals, key, false, None))).expect("apply");
    let vip = SocketAddr::new(lab.vip, 80);
    let mut held = in_ns(&lab.topo.client.ns, || {
        let s = TcpStream::connect_timeout(&vip, Duration::from_secs(3)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s
    });
    let real = http_keepalive_get(&mut held).expect("first request");
    in_ns(d, || engine.shutdown());
    drop(engine);
    assert!(pins(&root) > 0 && d.has_xdp("eth0"));
    for _ in 0..3 {
        assert_eq!(
            http_keepalive_get(&mut held).expect("request while no engine runs"),
            real
        );
    }
    let index: usize = real["real".len()..].parse().expect("real's name");
    let mut engine = in_ns(d, || XdpEngine::start(config(false)).expect("engine"));
    assert!(engine.has_kept_state());
    in_ns(d, || {
        engine.apply(&changes(&reals, key, true, Some(reals[index])))
    })
    .expect("apply");
    let carried = in_ns(d, || engine.adopt()).expect("adopt");
    assert!(carried >= 1, "carried {carried}");
    for _ in 0..3 {
        assert_eq!(
            http_keepalive_get(&mut held).expect("request after adoption"),
            real
        );
    }
    let counts = curls(&lab, 20);
    assert_eq!(counts.get("FAIL"), None, "{counts:?}");
    assert_eq!(
        counts.get(&real),
        None,
        "the drained real took new flows: {counts:?}"
    );
    drop(held);
    in_ns(d, || engine.shutdown());
    drop(engine);
    assert!(!d.has_xdp("eth0"));
    assert_eq!(pins(&root), 0);
    assert!(!root.exists(), "{} left behind", root.display());
}
