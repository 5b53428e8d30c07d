//! End-to-end DR and TUN through the XDP engine in network namespaces (rvs-testbed's L2
//! segment: client, director, three nginx reals with distinct bodies on one bridge; set up by
//! `common::e2e_lab`). The engine runs in this process, on a thread that has entered the
//! director's namespace. Root only.

mod common;

use common::e2e_lab::{curls, in_ns, lab};
use rvs_core::desired::Change;
use rvs_core::engine::Engine;
use rvs_core::model::{ForwardMethod, RealServer, ServiceKey, ServiceOptions};
use rvs_net::realserver::Method;
use rvs_xdp::{XdpConfig, XdpEngine};
use std::net::SocketAddr;

fn run_method(method: Method, fwd: ForwardMethod, v6: bool, default_requests: usize) {
    if !rvs_testbed::is_root() {
        eprintln!("skipping: needs root for namespaces and XDP");
        return;
    }
    let lab = lab(method, v6);
    let weights = [1u32, 2, 3];
    let key = ServiceKey::tcp(SocketAddr::new(lab.vip, 80));
    in_ns(&lab.topo.director.ns, || {
        let mut engine = XdpEngine::start(XdpConfig {
            interfaces: vec!["eth0".into()],
            ..Default::default()
        })
        .expect("engine");
        println!("attached: {:?}", engine.attachments());
        let mut changes = vec![Change::AddService {
            key,
            options: ServiceOptions::default(),
        }];
        for (r, w) in lab.topo.reals.iter().zip(weights) {
            let addr = SocketAddr::new(r.ip(v6), 80);
            changes.push(Change::AddReal {
                service: key,
                real: RealServer::new(addr, fwd, w),
            });
        }
        engine.apply(&changes).expect("apply");
        let before = engine.stats();
        let n: usize = std::env::var("RVS_E2E_REQUESTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default_requests);
        let dumps: Vec<_> = if std::env::var("RVS_E2E_DEBUG").is_ok() {
            lab.topo
                .reals
                .iter()
                .map(|r| rvs_testbed::Tcpdump::start(Some(&r.ns), "eth0", "").unwrap())
                .chain(std::iter::once(
                    rvs_testbed::Tcpdump::start(Some(&lab.topo.client.ns), "eth0", "").unwrap(),
                ))
                .collect()
        } else {
            Vec::new()
        };
        let counts = curls(&lab, n);
        if std::env::var("RVS_E2E_DEBUG").is_ok() {
            println!(
                "{}",
                lab.topo
                    .director
                    .ns
                    .run("ethtool", &["-S", "eth0"])
                    .unwrap_or_default()
            );
            println!(
                "{}",
                lab.topo
                    .switch
                    .run("ethtool", &["-k", "dir"])
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.contains("receive-offload"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            println!(
                "{}",
                lab.topo
                    .director
                    .ns
                    .run("ip", &["neigh"])
                    .unwrap_or_default()
            );
            println!(
                "{}",
                lab.topo
                    .switch
                    .run("ethtool", &["-S", "dir"])
                    .unwrap_or_default()
            );
            println!(
                "{}",
                lab.topo
                    .switch
                    .run("ip", &["-s", "link", "show", "dir"])
                    .unwrap_or_default()
            );
            println!(
                "{}",
                lab.topo
                    .switch
                    .run("bridge", &["fdb", "show", "br", "br0"])
                    .unwrap_or_default()
            );
            let r0 = &lab.topo.reals[0].ns;
            println!(
                "{}",
                r0.run("ip", &["addr", "show", "lo"]).unwrap_or_default()
            );
            println!("{}", r0.run("ss", &["-ltn"]).unwrap_or_default());
            println!("{}", r0.run("sh", &["-c", "nstat -az | grep -v ' 0 ' ; sysctl net.ipv4.conf.all.rp_filter net.ipv4.conf.eth0.rp_filter net.ipv4.conf.all.arp_ignore"]).unwrap_or_default());
        }
        for d in dumps {
            println!("--- tcpdump\n{}", d.finish().unwrap_or_default());
        }
        println!("{method:?}: {counts:?}");
        let after = engine.stats();
        println!("outcomes: {:?}", after.outcomes);
        assert_eq!(counts.get("FAIL"), None, "failed requests: {counts:?}");
        let total: usize = counts.values().sum();
        assert_eq!(total, n);
        let wsum: u32 = weights.iter().sum();
        for (i, w) in weights.iter().enumerate() {
            let got = *counts.get(&format!("real{i}")).unwrap_or(&0) as f64 / n as f64;
            let want = f64::from(*w) / f64::from(wsum);
            assert!(
                (got - want).abs() <= 0.05,
                "real{i}: {got:.3} of requests, weight share {want:.3}"
            );
        }
        let d = |name: &str| after.outcomes[name] - before.outcomes.get(name).copied().unwrap_or(0);
        let svc = &after.services[&key];
        println!(
            "service counters: {:?}; forwarded +{}, not_vip +{}",
            svc.counters,
            d("forwarded"),
            d("not_vip")
        );
        assert!(svc.counters.conns >= n as u64, "{:?}", svc.counters);
        assert!(
            d("forwarded") >= 5 * n as u64,
            "each request is at least SYN, ACK, data, FIN, ACK"
        );
        // Replies (to the client, not a VIP: at least 4 segments per request) would show up as
        // not_vip if they reached us; only IPv6 router solicitations and MLD reports do.
        assert!(
            d("not_vip") < (n / 20) as u64,
            "replies passed through the director: not_vip +{}",
            d("not_vip")
        );
        assert_eq!(svc.counters.out_pkts, 0);
        // A real's MAC changes: the kernel's neighbour entry changes (here set by hand, as a
        // gratuitous ARP would), the engine hears it over netlink and rewrites the real; new
        // requests to that real keep working.
        let r0 = &lab.topo.reals[0];
        if v6 {
            engine.shutdown();
            return;
        }
        r0.ns
            .ip(&[
                "link",
                "set",
                "dev",
                &r0.dev,
                "address",
                "02:00:00:00:aa:01",
            ])
            .unwrap();
        lab.topo
            .director
            .ns
            .ip(&[
                "neigh",
                "replace",
                &r0.ip4.to_string(),
                "lladdr",
                "02:00:00:00:aa:01",
                "dev",
                "eth0",
            ])
            .unwrap();
        std::thread::sleep(std::time::Duration::from_secs(2));
        let after_change = curls(&lab, 60);
        println!("after real0's MAC changed: {after_change:?}");
        assert_eq!(after_change.get("FAIL"), None, "{after_change:?}");
        assert!(
            after_change.get("real0").copied().unwrap_or(0) > 0,
            "{after_change:?}"
        );
        let conns = engine.connections();
        assert!(
            conns.len() >= n / 2,
            "connection table has {} entries",
            conns.len()
        );
        engine.shutdown();
    });
    // Detached: the director's interface carries no XDP program any more.
    let link = lab.topo.director.ns.ip(&["link", "show", "eth0"]).unwrap();
    assert!(!link.contains("xdp"), "still attached: {link}");
}

#[test]
fn dr_1000_requests_by_weight() {
    run_method(Method::Dr, ForwardMethod::Dr, false, 1000);
}

#[test]
fn tun_1000_requests_by_weight() {
    run_method(Method::Tun, ForwardMethod::Tun, false, 1000);
}

#[test]
fn dr_ipv6_1000_requests_by_weight() {
    run_method(Method::Dr, ForwardMethod::Dr, true, 1000);
}

#[test]
fn tun_ipv6_1000_requests_by_weight() {
    run_method(Method::Tun, ForwardMethod::Tun, true, 1000);
}
