//! End-to-end NAT and FULLNAT through the XDP engine in network namespaces: rvs-testbed's
//! two-arm topology (client arm eth0, real arm eth1; NAT reals route back via the director,
//! FULLNAT reals have no route to the client), three nginx reals listening on port 8080 behind
//! VIP:80 (port mapping). 1,000 curls through the VIP must succeed; nginx's access logs must
//! show the client's address (NAT) or the director's local address (FULLNAT); after the
//! clients are gone and the (short) timeouts pass, the program's NAT table is empty.
//! The engine runs on a thread inside the director's namespace. Root only.

use rvs_core::desired::{Change, Timeouts};
use rvs_core::engine::Engine;
use rvs_core::model::{ForwardMethod, RealServer, ServiceKey, ServiceOptions};
use rvs_testbed::{Kind, Netns, Nginx, Topology};
use rvs_xdp::{XdpConfig, XdpEngine};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// Run `f` on a thread inside namespace `ns`.
fn in_ns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/var/run/netns/{}", ns.name());
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = std::fs::File::open(&path).expect("open netns");
            // SAFETY: setns on a valid namespace fd changes only this thread's namespace.
            let rc =
                unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("namespace thread")
    })
}

const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 20, 2, 100);

struct Lab {
    topo: Topology,
    nginx: Vec<Nginx>,
    _peers: Vec<rvs_xdp::decap::Decap>,
}

/// A pass-everything XDP program on `dev` in `ns`: redirected / XDP_TX frames out of a veth
/// are dropped unless its peer has NAPI, which an XDP program there provides.
fn peer_prog(ns: &Netns, dev: &str) -> rvs_xdp::decap::Decap {
    in_ns(ns, || {
        let mut d = rvs_xdp::decap::Decap::load().expect("load pass program");
        d.attach(dev).expect("attach to a peer");
        d
    })
}

fn lab(kind: Kind) -> Lab {
    let topo = Topology::build(kind, 3).expect("topology");
    let peers = vec![
        peer_prog(&topo.switch, "dir"),
        peer_prog(&topo.client.ns, "eth0"),
    ];
    // veth leaves checksums to "hardware"; frames that went through XDP lose that state.
    topo.client
        .ns
        .run("ethtool", &["-K", "eth0", "tx", "off"])
        .unwrap();
    for r in &topo.reals {
        r.ns.run("ethtool", &["-K", "eth0", "tx", "off"]).unwrap();
    }
    let d = &topo.director.ns;
    d.ip(&["addr", "add", &format!("{}/32", topo.vip4), "dev", "lo"])
        .unwrap();
    if kind == Kind::FullNat {
        d.ip(&["addr", "add", &format!("{LOCAL}/24"), "dev", "eth1"])
            .unwrap();
    }
    let listen: SocketAddr = "0.0.0.0:8080".parse().unwrap();
    let nginx = (0..topo.reals.len())
        .map(|i| Nginx::start(Some(&topo.reals[i].ns), listen, &format!("real{i}")).unwrap())
        .collect();
    Lab {
        topo,
        nginx,
        _peers: peers,
    }
}

fn curls(lab: &Lab, n: usize) -> BTreeMap<String, usize> {
    let script = format!(
        "for i in $(seq 1 {n}); do curl -s --max-time 2 http://{}:80/ || echo FAIL; done",
        lab.topo.vip4
    );
    let out = lab
        .topo
        .client
        .ns
        .run("sh", &["-c", &script])
        .expect("curl loop");
    let mut counts = BTreeMap::new();
    for line in out.lines() {
        *counts.entry(line.trim().to_string()).or_insert(0) += 1;
    }
    counts
}

/// Source addresses nginx logged ("addr:port ..." per line), counted.
fn logged_sources(lab: &Lab) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for n in &lab.nginx {
        for line in n.access_log().unwrap().lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            let addr = first.rsplit_once(':').map_or(first, |(a, _)| a);
            *out.entry(addr.to_string()).or_insert(0) += 1;
        }
    }
    out
}

fn run(kind: Kind, fwd: ForwardMethod) {
    if !rvs_testbed::is_root() {
        eprintln!("skipping: needs root for namespaces and XDP");
        return;
    }
    let lab = lab(kind);
    let n: usize = std::env::var("RVS_E2E_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let key = ServiceKey::tcp(SocketAddr::new(IpAddr::V4(lab.topo.vip4), 80));
    in_ns(&lab.topo.director.ns, || {
        let mut engine = XdpEngine::start(XdpConfig {
            interfaces: vec!["eth0".into(), "eth1".into()],
            fullnat_local: vec![IpAddr::V4(LOCAL)],
            upkeep_interval: Duration::from_millis(300),
            ..Default::default()
        })
        .expect("engine");
        println!("attached: {:?}", engine.attachments());
        let mut changes = vec![
            Change::SetTimeouts(Timeouts {
                tcp: 3,
                tcp_fin: 2,
                udp: 2,
            }),
            Change::AddService {
                key,
                options: ServiceOptions::default(),
            },
        ];
        for r in &lab.topo.reals {
            let addr = SocketAddr::new(IpAddr::V4(r.ip4), 8080);
            changes.push(Change::AddReal {
                service: key,
                real: RealServer::new(addr, fwd, 1),
            });
        }
        engine.apply(&changes).expect("apply");
        let forwarded_by_kernel = || {
            let out = lab
                .topo
                .director
                .ns
                .run("nstat", &["-az", "IpForwDatagrams", "Ip6OutForwDatagrams"]);
            let out = out.expect("nstat");
            assert!(out.contains("IpForwDatagrams"), "nstat: {out}");
            out.lines()
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>()
        };
        let kernel_before = forwarded_by_kernel();
        let started = Instant::now();
        let counts = curls(&lab, n);
        let kernel = forwarded_by_kernel() - kernel_before;
        println!("packets the director's kernel forwarded: {kernel}");
        // Only the first packets of a flow to a neighbour not resolved yet may take the kernel
        // path; the rest go out by XDP_TX / bpf_redirect_map.
        assert!(kernel < n as u64, "kernel forwarded {kernel} packets");
        let after = engine.stats();
        println!("{fwd:?}: {counts:?} in {:?}", started.elapsed());
        println!("outcomes: {:?}", after.outcomes);
        assert_eq!(counts.get("FAIL"), None, "failed requests: {counts:?}");
        assert_eq!(counts.values().sum::<usize>(), n);
        for i in 0..3 {
            assert!(
                counts.get(&format!("real{i}")).copied().unwrap_or(0) > n / 10,
                "{counts:?}"
            );
        }
        assert!(
            after.outcomes["nat_forwarded"] >= 5 * n as u64,
            "{:?}",
            after.outcomes
        );
        assert!(
            after.outcomes["nat_reply"] >= 4 * n as u64,
            "{:?}",
            after.outcomes
        );
        let sources = logged_sources(&lab);
        println!("nginx saw: {sources:?}");
        let want = if fwd == ForwardMethod::Nat {
            lab.topo.client.ip4.to_string()
        } else {
            LOCAL.to_string()
        };
        assert_eq!(sources.get(&want).copied(), Some(n), "sources: {sources:?}");
        assert_eq!(sources.len(), 1, "sources: {sources:?}");
        let rows = engine.connections().len();
        println!(
            "connections right after: {rows}, NAT table {}",
            engine.nat_table_len()
        );
        assert!(engine.nat_table_len() > 0);
        let deadline = Instant::now() + Duration::from_secs(20);
        while engine.nat_table_len() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(engine.nat_table_len(), 0, "NAT table not reclaimed");
        assert!(engine.connections().is_empty(), "-Lnc not empty");
        engine.shutdown();
    });
}

#[test]
fn e2e_nat_v4() {
    run(Kind::TwoArm, ForwardMethod::Nat);
}

#[test]
fn e2e_fullnat_v4() {
    run(Kind::FullNat, ForwardMethod::FullNat);
}
