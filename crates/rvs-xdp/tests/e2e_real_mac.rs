//! A DR real's MAC changes without a gratuitous ARP (a NIC swapped, a VM moved, a bond failed
//! over with `arp_notify` off): the director must learn the new MAC by itself, as IPVS does —
//! there the kernel sends the packets, so a STALE neighbour entry is re-probed on use (DELAY,
//! PROBE, then a new broadcast resolution). The XDP program bypasses the kernel's neighbour
//! code, so nothing used the entry and it stayed STALE with the old MAC forever: every packet
//! to that real went to a MAC nobody has. The engine's upkeep now marks its reals' STALE or
//! FAILED next hops as used (`NTF_USE`), which starts the kernel's own re-probe.
//!
//! rvs-testbed's L2 segment (`common::e2e_lab`), one real serving the VIP, the director's
//! neighbour timers shortened so the test takes seconds. IPv4 (ARP) and IPv6 (neighbour
//! discovery). Root only.

mod common;

use common::e2e_lab::{curls, in_ns, lab};
use rvs_core::desired::Change;
use rvs_core::engine::Engine;
use rvs_core::model::{ForwardMethod, RealServer, ServiceKey, ServiceOptions};
use rvs_net::realserver::Method;
use rvs_xdp::{XdpConfig, XdpEngine};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long the director may take to follow the new MAC: reachable time (≤ 1.5 s here),
/// DELAY (1 s), three unicast probes (0.3 s apart), then a broadcast resolution on the next
/// upkeep round — about 4 s; IPVS with the same timers takes as long.
const DEADLINE: Duration = Duration::from_secs(20);

fn follow_new_mac(v6: bool) {
    if !rvs_testbed::skip_unless_root("e2e_real_mac") {
        return;
    }
    let lab = lab(Method::Dr, v6);
    let d = &lab.topo.director.ns;
    let fam = if v6 { "ipv6" } else { "ipv4" };
    for (k, v) in [
        ("base_reachable_time_ms", "1000"),
        ("delay_first_probe_time", "1"),
        ("retrans_time_ms", "300"),
    ] {
        d.sysctl(&format!("net.{fam}.neigh.eth0.{k}"), v).unwrap();
    }
    let real0 = &lab.topo.reals[0];
    let key = ServiceKey::tcp(SocketAddr::new(lab.vip, 80));
    in_ns(d, || {
        let mut engine = XdpEngine::start(XdpConfig {
            interfaces: vec!["eth0".into()],
            ..Default::default()
        })
        .expect("engine");
        engine
            .apply(&[
                Change::AddService {
                    key,
                    options: ServiceOptions::default(),
                },
                Change::AddReal {
                    service: key,
                    real: RealServer::new(SocketAddr::new(real0.ip(v6), 80), ForwardMethod::Dr, 1),
                },
            ])
            .expect("apply");
        let before = curls(&lab, 5);
        assert_eq!(before.get("real0"), Some(&5), "{before:?}");

        // The real's MAC changes; nobody tells the director (no gratuitous ARP / unsolicited
        // neighbour advertisement: `arp_notify` is off and `ip link set address` sends none
        // for IPv6 here either).
        real0
            .ns
            .ip(&[
                "link",
                "set",
                "dev",
                &real0.dev,
                "address",
                "02:00:00:00:ab:01",
            ])
            .unwrap();
        let start = Instant::now();
        let mut last = before;
        while start.elapsed() < DEADLINE {
            std::thread::sleep(Duration::from_millis(500));
            last = curls(&lab, 1);
            if last.get("real0") == Some(&1) {
                break;
            }
        }
        let took = start.elapsed();
        let neigh = d.ip(&["neigh", "show", "dev", "eth0"]).unwrap_or_default();
        println!("v6={v6}: answered again after {took:?}; neighbours:\n{neigh}");
        assert_eq!(
            last.get("real0"),
            Some(&1),
            "the real never answered again within {DEADLINE:?} after its MAC changed \
             (the director kept the old MAC):\n{neigh}"
        );
        // And it keeps working.
        let after = curls(&lab, 5);
        assert_eq!(after.get("real0"), Some(&5), "{after:?}");
        engine.shutdown();
    });
}

#[test]
fn dr_real_mac_change_is_followed_without_gratuitous_arp() {
    follow_new_mac(false);
}

#[test]
fn dr_ipv6_real_mac_change_is_followed_without_unsolicited_advertisement() {
    follow_new_mac(true);
}
