//! Restart without losing flows at scale: 100,000 DR and 100,000 NAT connection entries kept
//! by one engine are all adopted by the next (whose reals got other slot indexes), each still
//! naming its real; prints how long the adoption took (the old program serves meanwhile).
//! And when adoption fails (here: the new engine's NAT table is too small for the kept flows),
//! the old program is detached and the new one attached fresh, with nothing left pinned.
//! Root only (namespaces, XDP, bpffs).

mod common;

use common::keep::{kept_root, pins};
use rvs_core::desired::Change;
use rvs_core::engine::Engine;
use rvs_core::model::{ForwardMethod, RealServer, ServiceKey, ServiceOptions};
use rvs_testbed::Netns;
use rvs_xdp::abi::{self, Conn, FlowKey};
use rvs_xdp::bench_setup::established_conns;
use rvs_xdp::{XdpConfig, XdpEngine};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const VIP: [u8; 4] = [10, 9, 0, 100];
const EACH: u32 = 100_000;

fn entries(from: u32, real: u32, method: u32) -> Vec<(FlowKey, Conn)> {
    established_conns(from, EACH, VIP, real, method)
}

fn start(keep: bool, service: ServiceKey, reals: &[(SocketAddr, ForwardMethod)]) -> XdpEngine {
    start_sized(keep, service, reals, abi::RVS_MAX_NAT_CONNS as u32)
}

fn start_sized(
    keep: bool,
    service: ServiceKey,
    reals: &[(SocketAddr, ForwardMethod)],
    nat_conns: u32,
) -> XdpEngine {
    let mut engine = XdpEngine::start(XdpConfig {
        interfaces: vec!["eth0".into()],
        upkeep_interval: Duration::from_secs(5),
        keep_on_exit: keep,
        nat_conns,
        ..Default::default()
    })
    .expect("engine");
    let mut changes = vec![Change::AddService {
        key: service,
        options: ServiceOptions::default(),
    }];
    for (addr, method) in reals {
        changes.push(Change::AddReal {
            service,
            real: RealServer::new(*addr, *method, 1),
        });
    }
    engine.apply(&changes).expect("apply");
    engine
}

/// Two namespaces joined by a veth (`eth0` in each).
fn pair(tag: &str) -> (Netns, Netns) {
    let (a, b) = (
        Netns::new(&format!("{tag}a")).unwrap(),
        Netns::new(&format!("{tag}b")).unwrap(),
    );
    a.veth("eth0", &b, "eth0").unwrap();
    a.add_addr("eth0", "10.9.0.1/24").unwrap();
    b.add_addr("eth0", "10.9.0.2/24").unwrap();
    (a, b)
}

#[test]
fn two_hundred_thousand_entries_are_adopted() {
    if !rvs_testbed::is_root() {
        eprintln!("skipping: needs root for namespaces, XDP and bpffs pins");
        return;
    }
    let (a, _b) = pair("kp");
    let service = ServiceKey::tcp(SocketAddr::from((VIP, 80)));
    let dr = (SocketAddr::from(([10, 9, 0, 2], 80)), ForwardMethod::Dr);
    let nat = (SocketAddr::from(([10, 9, 0, 3], 8080)), ForwardMethod::Nat);
    let root = kept_root(&a);
    a.in_thread(|| {
        let mut engine = start(true, service, &[dr, nat]);
        let (i_dr, i_nat) = (
            engine.real_index(&service, &dr.0).unwrap(),
            engine.real_index(&service, &nat.0).unwrap(),
        );
        engine
            .insert_conns(&entries(0, i_dr, abi::RVS_METHOD_DR as u32))
            .unwrap();
        engine
            .insert_conns(&entries(EACH, i_nat, abi::RVS_METHOD_NAT as u32))
            .unwrap();
        engine.shutdown();
        drop(engine);
        assert!(pins(&root) > 0);
        let mut engine = start(false, service, &[nat, dr]);
        assert_ne!(engine.real_index(&service, &dr.0), Some(i_dr));
        let t0 = Instant::now();
        let carried = engine.adopt().expect("adopt");
        let took = t0.elapsed();
        println!("adopted {carried} entries in {took:?}");
        assert_eq!(carried, 2 * EACH as usize);
        let conns = engine.connections();
        let on = |r: SocketAddr| conns.iter().filter(|c| c.real == r).count();
        assert_eq!((on(dr.0), on(nat.0)), (EACH as usize, EACH as usize));
        engine.shutdown();
    });
    assert!(!root.exists(), "{} left behind", root.display());
}

#[test]
fn a_failed_adoption_detaches_the_old_program_and_starts_fresh() {
    if !rvs_testbed::is_root() {
        eprintln!("skipping: needs root for namespaces, XDP and bpffs pins");
        return;
    }
    let (a, _b) = pair("kf");
    let service = ServiceKey::tcp(SocketAddr::from((VIP, 80)));
    let nat = (SocketAddr::from(([10, 9, 0, 3], 8080)), ForwardMethod::Nat);
    let root = kept_root(&a);
    a.in_thread(|| {
        let mut engine = start(true, service, &[nat]);
        let real = engine.real_index(&service, &nat.0).unwrap();
        let mut kept = entries(0, real, abi::RVS_METHOD_NAT as u32);
        kept.truncate(100);
        engine.insert_conns(&kept).unwrap();
        engine.shutdown();
        drop(engine);
        assert!(pins(&root) > 0);
        // Room for 10 NAT flows: the 100 kept ones do not fit.
        let mut engine = start_sized(false, service, &[nat], 10);
        assert!(engine.has_kept_state());
        let err = engine.adopt().expect_err("100 flows into a table of 10");
        println!("adoption failed as it should: {err}");
        assert!(!engine.has_kept_state());
        assert_eq!(pins(&root), 0, "the old state is still pinned");
        assert_eq!(engine.attachments().len(), 1);
        let out = std::process::Command::new("ip")
            .args(["link", "show", "eth0"])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("xdp"),
            "ours attached"
        );
        engine.shutdown();
        let out = std::process::Command::new("ip")
            .args(["link", "show", "eth0"])
            .output()
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("xdp"),
            "detached on exit"
        );
    });
    assert!(!root.exists(), "{} left behind", root.display());
}
