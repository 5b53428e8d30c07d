//! Restart without losing flows (`XdpConfig::keep_on_exit`, docs/xdp.md) end to end in network
//! namespaces: rvs-testbed's FULLNAT (and two-arm NAT) topology with three nginx reals behind
//! VIP:80. A client holds one HTTP keep-alive connection through the VIP; the engine exits
//! keeping its state; the connection still answers from the same real while no engine runs,
//! and again after a new engine (whose reals got other slot indexes, the held flow's real
//! drained so that nothing but the adopted entry leads there) adopted the state; new
//! connections work too; an exit without keep leaves no program and no pins. A kept state of
//! another layout is detached and the new engine starts fresh. Root only.

mod common;

use common::keep::kept_root;
use common::nat_lab::{self, LOCAL, Lab};
use rvs_core::desired::Change;
use rvs_core::engine::Engine;
use rvs_core::model::{ForwardMethod, RealServer, ServiceKey, ServiceOptions};
use rvs_testbed::{Kind, http_keepalive_get};
use rvs_xdp::{XdpConfig, XdpEngine};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

fn lab(kind: Kind) -> Lab {
    nat_lab::lab(kind, false)
}

fn config(keep: bool) -> XdpConfig {
    XdpConfig {
        interfaces: vec!["eth0".into(), "eth1".into()],
        fullnat_local: vec![IpAddr::V4(LOCAL)],
        upkeep_interval: Duration::from_millis(300),
        keep_on_exit: keep,
        ..Default::default()
    }
}

/// The service with the lab's reals, in order (`reversed`: last first, so they get other slot
/// indexes than the first engine gave them), real `drained` with weight 0 (no new flows: the
/// scheduler would send a flow it does not know elsewhere).
fn changes(
    lab: &Lab,
    key: ServiceKey,
    fwd: ForwardMethod,
    reversed: bool,
    drained: Option<usize>,
) -> Vec<Change> {
    let mut out = vec![Change::AddService {
        key,
        options: ServiceOptions::default(),
    }];
    let mut reals: Vec<_> = lab.topo.reals.iter().enumerate().collect();
    if reversed {
        reals.reverse();
    }
    for (i, r) in reals {
        let weight = if drained == Some(i) { 0 } else { 1 };
        out.push(Change::AddReal {
            service: key,
            real: RealServer::new(SocketAddr::new(r.ip(false), 8080), fwd, weight),
        });
    }
    out
}

fn start(lab: &Lab, keep: bool) -> XdpEngine {
    lab.topo
        .director
        .ns
        .in_thread(|| XdpEngine::start(config(keep)).expect("engine"))
}

fn apply(lab: &Lab, engine: &mut XdpEngine, changes: &[Change]) {
    lab.topo
        .director
        .ns
        .in_thread(|| engine.apply(changes))
        .expect("apply");
}

fn curls_ok(lab: &Lab, n: usize) {
    let url = format!("http://{}/", SocketAddr::new(lab.vip, 80));
    let counts = rvs_testbed::clients::curl_counts(&lab.topo.client.ns, &url, n).unwrap();
    assert_eq!(counts.get("FAIL"), None, "{counts:?}");
    assert_eq!(counts.values().sum::<usize>(), n, "{counts:?}");
}

fn run(kind: Kind, fwd: ForwardMethod) {
    if !rvs_testbed::is_root() {
        eprintln!("skipping: needs root for namespaces, XDP and bpffs pins");
        return;
    }
    let lab = lab(kind);
    let key = ServiceKey::tcp(SocketAddr::new(lab.vip, 80));
    let root = kept_root(&lab.topo.director.ns);
    let mut engine = start(&lab, true);
    apply(&lab, &mut engine, &changes(&lab, key, fwd, false, None));
    assert!(!engine.has_kept_state());
    let vip = SocketAddr::new(lab.vip, 80);
    let mut held = lab.topo.client.ns.in_thread(|| {
        let s = TcpStream::connect_timeout(&vip, Duration::from_secs(3)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s
    });
    let real = http_keepalive_get(&mut held).expect("first request");
    assert!(real.starts_with("real"), "{real}");
    // The engine exits keeping the program attached with its flows.
    lab.topo.director.ns.in_thread(|| engine.shutdown());
    drop(engine);
    assert!(root.exists(), "nothing pinned under {}", root.display());
    assert!(lab.topo.director.ns.has_xdp("eth0") && lab.topo.director.ns.has_xdp("eth1"));
    for i in 0..3 {
        assert_eq!(
            http_keepalive_get(&mut held).expect("request while no engine runs"),
            real,
            "{i}"
        );
    }
    // A new engine whose reals get other slot indexes adopts the state.
    let mut engine = start(&lab, false);
    assert!(engine.has_kept_state());
    for i in 0..2 {
        assert_eq!(
            http_keepalive_get(&mut held).expect("request before adoption"),
            real,
            "{i}"
        );
    }
    // The held flow's real is drained: only its carried-over entry still leads there.
    let held_real: usize = real["real".len()..].parse().expect("real's name");
    apply(
        &lab,
        &mut engine,
        &changes(&lab, key, fwd, true, Some(held_real)),
    );
    let carried = lab
        .topo
        .director
        .ns
        .in_thread(|| engine.adopt())
        .expect("adopt");
    println!("{fwd:?}: carried over {carried} entries");
    assert!(carried >= 1, "carried {carried}");
    assert!(!engine.has_kept_state());
    assert!(
        std::fs::read_dir(&root).map_or(0, |d| d.count()) == 0,
        "pins left after adoption"
    );
    for i in 0..3 {
        assert_eq!(
            http_keepalive_get(&mut held).expect("request after adoption"),
            real,
            "{i}"
        );
    }
    let stats = engine.stats();
    assert!(
        stats.outcomes.get("nat_forwarded").copied().unwrap_or(0) >= 3,
        "the new program forwarded the held flow: {:?}",
        stats.outcomes
    );
    curls_ok(&lab, 20);
    // A normal exit detaches and pins nothing.
    lab.topo.director.ns.in_thread(|| engine.shutdown());
    drop(engine);
    assert!(!lab.topo.director.ns.has_xdp("eth0") && !lab.topo.director.ns.has_xdp("eth1"));
    assert!(
        std::fs::read_dir(&root).map_or(0, |d| d.count()) == 0,
        "pins after a normal exit"
    );
    assert!(!root.exists(), "{} left behind", root.display());
}

#[test]
fn fullnat_flows_survive_a_restart() {
    run(Kind::FullNat, ForwardMethod::FullNat);
}

#[test]
fn nat_flows_survive_a_restart() {
    run(Kind::TwoArm, ForwardMethod::Nat);
}

/// A kept state of another layout (here: renamed to another stamp) is detached, not read:
/// the new engine attaches fresh (which fails while another program holds the interface).
#[test]
fn another_layout_starts_fresh() {
    if !rvs_testbed::is_root() {
        eprintln!("skipping: needs root for namespaces, XDP and bpffs pins");
        return;
    }
    let lab = lab(Kind::FullNat);
    let key = ServiceKey::tcp(SocketAddr::new(lab.vip, 80));
    let root = kept_root(&lab.topo.director.ns);
    let mut engine = start(&lab, true);
    apply(
        &lab,
        &mut engine,
        &changes(&lab, key, ForwardMethod::FullNat, false, None),
    );
    lab.topo.director.ns.in_thread(|| engine.shutdown());
    drop(engine);
    let kept: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("kept state")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let other = root.join("0000000000000000");
    std::fs::rename(&kept[0], &other).expect("rename the kept state");
    let mut engine = start(&lab, false);
    assert!(!engine.has_kept_state());
    assert!(!other.exists(), "the other layout's state is still pinned");
    assert_eq!(engine.attachments().len(), 2);
    assert_eq!(engine.adopt().expect("nothing to adopt"), 0);
    apply(
        &lab,
        &mut engine,
        &changes(&lab, key, ForwardMethod::FullNat, false, None),
    );
    curls_ok(&lab, 10);
    lab.topo.director.ns.in_thread(|| engine.shutdown());
    drop(engine);
    assert!(!lab.topo.director.ns.has_xdp("eth0"));
}
