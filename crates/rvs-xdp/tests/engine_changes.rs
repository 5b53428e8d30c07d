//! What configuration changes leave behind in the XDP engine's maps: a service that takes a
//! removed service's index starts with zero counters and none of its persistence templates; an
//! overload flag goes as soon as the upper threshold is removed (as IPVS's
//! `__ip_vs_update_dest` does), not at the next upkeep round; entries written from userspace
//! (connection sync) with the engine's clock are live for the program at once; a persistent
//! client's template is not followed to a real whose health went down or that was disabled; a
//! service mixing DR and NAT reals has its flows in both connection tables, listed, counted and
//! removed with it; each real's PersistConn counts its live persistence templates; a real on
//! the director's own address is a local node; a removed real's flows are not followed to the
//! real that takes its slot; an interface re-created under its name is attached again.
//! Root only (namespaces, XDP); skips with a message otherwise.

mod common;

use common::frames::{ACK, SYN, TCP, UDP, packet};
use rvs_core::desired::Change;
use rvs_core::engine::Engine;
use rvs_core::model::{ForwardMethod, Persistence, RealServer, ServiceKey, ServiceOptions};
use rvs_testbed::Netns;
use rvs_xdp::abi;
use rvs_xdp::{XdpConfig, XdpEngine};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

const DIR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xc1];
/// The reals' addresses (10.9.0.10 + i) and the MACs of their permanent neighbour entries.
const REALS: usize = 3;

fn real_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 9, 0, 10 + i as u8], 80))
}
fn real_mac(i: usize) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, 0x0a + i as u8]
}

/// A director namespace with eth0 (10.9.0.1/24) and permanent neighbours for the reals; the
/// engine attached there with a 200 ms upkeep.
fn director() -> (Netns, Netns) {
    let (a, b) = (Netns::new("ecd").unwrap(), Netns::new("ecp").unwrap());
    a.veth("eth0", &b, "eth0").unwrap();
    a.add_addr("eth0", "10.9.0.1/24").unwrap();
    for i in 0..REALS {
        let ip = real_addr(i).ip().to_string();
        let mac: Vec<String> = real_mac(i).iter().map(|b| format!("{b:02x}")).collect();
        a.ip(&[
            "neigh",
            "add",
            &ip,
            "lladdr",
            &mac.join(":"),
            "dev",
            "eth0",
            "nud",
            "permanent",
        ])
        .unwrap();
    }
    (a, b)
}

fn start() -> XdpEngine {
    XdpEngine::start(XdpConfig {
        interfaces: vec!["eth0".into()],
        upkeep_interval: Duration::from_millis(200),
        ..Default::default()
    })
    .expect("engine")
}

/// True (with the reason printed) when not root: these tests skip then.
fn no_root() -> bool {
    let skip = !rvs_testbed::is_root();
    if skip {
        eprintln!("skipping: needs root for namespaces and XDP");
    }
    skip
}

/// Run `f` with an engine attached in a fresh director namespace ([`director`], [`start`]),
/// shut down afterwards; skips (printing why) when not root.
fn with_engine(f: impl FnOnce(&mut XdpEngine) + Send) {
    if no_root() {
        return;
    }
    let (a, _b) = director();
    a.in_thread(|| {
        let mut e = start();
        f(&mut e);
        e.shutdown();
    });
}

/// Add service `key` with `options` and `reals`.
fn add(e: &mut XdpEngine, key: ServiceKey, options: ServiceOptions, reals: &[RealServer]) {
    let mut changes = vec![Change::AddService { key, options }];
    changes.extend(reals.iter().map(|r| Change::AddReal {
        service: key,
        real: *r,
    }));
    e.apply(&changes).expect("apply");
}

/// `-p 300`, per client address.
fn sticky() -> ServiceOptions {
    ServiceOptions {
        persistence: Some(Persistence {
            timeout: 300,
            prefix_len: 32,
        }),
        ..Default::default()
    }
}

fn dr(i: usize) -> RealServer {
    RealServer::new(real_addr(i), ForwardMethod::Dr, 1)
}

fn client(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(u32::from_be_bytes([192, 168, 0, 0]) + i))
}

/// The real (index into REALS) a packet from `client:sport` with `flags` to `vip` was sent
/// to, or None when it was not forwarded.
fn send(e: &XdpEngine, vip: SocketAddr, client: IpAddr, sport: u16, flags: u8) -> Option<usize> {
    let (action, out) = e
        .test_run(&frame(vip, client, sport, flags))
        .expect("test run");
    const XDP_TX: u32 = 3;
    if action != XDP_TX {
        return None;
    }
    (0..REALS).find(|i| out[0..6] == real_mac(*i))
}

/// A TCP segment without payload from `client:sport` to `vip`, as the director receives it.
fn frame(vip: SocketAddr, client: IpAddr, sport: u16, flags: u8) -> Vec<u8> {
    packet(
        DIR_MAC,
        CLIENT_MAC,
        client,
        vip.ip(),
        TCP,
        sport,
        vip.port(),
        flags,
        b"",
    )
}

fn vip(last: u8) -> SocketAddr {
    SocketAddr::from(([10, 9, 0, last], 80))
}

#[test]
fn a_reused_service_index_starts_clean() {
    with_engine(|e| {
        let (ka, kb) = (ServiceKey::tcp(vip(100)), ServiceKey::tcp(vip(200)));
        let sticky = sticky();
        add(e, ka, sticky, &[dr(0)]);
        for i in 0..5 {
            assert_eq!(send(e, vip(100), client(i), 5000, SYN), Some(0));
        }
        let st = e.stats();
        assert_eq!(st.services[&ka].counters.conns, 5, "{:?}", st.services[&ka]);
        let templates = |e: &XdpEngine| {
            e.connections()
                .into_iter()
                .filter(|c| c.state == "NONE")
                .count()
        };
        assert_eq!(templates(e), 5, "one template per client");
        e.apply(&[Change::RemoveService(ka)]).unwrap();
        add(e, kb, sticky, &[dr(1)]);
        assert_eq!(
            e.real_index(&kb, &real_addr(1)).map(|_| ()),
            Some(()),
            "service B configured"
        );
        let st = e.stats();
        let b = &st.services[&kb];
        assert_eq!(
            (b.counters.conns, b.counters.in_pkts),
            (0, 0),
            "a new service inherited counters: {b:?}"
        );
        assert_eq!(
            templates(e),
            0,
            "the removed service's templates went with it"
        );
        // The same clients now go to B's real.
        for i in 0..5 {
            assert_eq!(send(e, vip(200), client(i), 5001, SYN), Some(1));
        }
    });
}

#[test]
fn b_overload_clears_when_the_threshold_goes() {
    with_engine(|e| {
        let k = ServiceKey::tcp(vip(100));
        let mut r0 = dr(0);
        r0.upper_threshold = 1;
        add(e, k, ServiceOptions::default(), &[r0, dr(1)]);
        let new_flows_to_r0 = |e: &XdpEngine, sport: u16| {
            (0..60)
                .filter(|i| send(e, vip(100), client(1000 + i), sport, SYN) == Some(0))
                .count()
        };
        assert!(new_flows_to_r0(e, 6000) > 10, "r0 takes new flows");
        // Those 10+ live flows put r0 over its threshold of 1 within a few upkeep rounds.
        // (Fresh client ports every time: a SYN on an existing entry follows it.)
        let (t0, mut sport) = (Instant::now(), 6001);
        while new_flows_to_r0(e, sport) > 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "r0 never overloaded"
            );
            std::thread::sleep(Duration::from_millis(100));
            sport += 1;
        }
        r0.upper_threshold = 0;
        e.apply(&[Change::EditReal {
            service: k,
            real: r0,
        }])
        .unwrap();
        assert!(
            new_flows_to_r0(e, sport + 1) > 10,
            "r0 takes new flows again as soon as its threshold is removed"
        );
    });
}

#[test]
fn c_entries_written_with_the_engine_clock_are_live() {
    with_engine(|e| {
        let k = ServiceKey::tcp(vip(100));
        add(e, k, ServiceOptions::default(), &[dr(0), dr(1)]);
        let slots = [
            e.real_index(&k, &real_addr(0)).unwrap(),
            e.real_index(&k, &real_addr(1)).unwrap(),
        ];
        // Synced entries on the real the Maglev table would not pick, stamped "now".
        let mut followed = 0;
        for i in 0..200u32 {
            let c = client(i);
            let maglev = send(e, vip(100), c, 7000, SYN).expect("scheduled");
            let other = 1 - maglev;
            let sport: u16 = 7001;
            let key = abi::FlowKey {
                src: abi::addr_of(c).0,
                dst: abi::addr_of(vip(100).ip()).0,
                sport: sport.to_be(),
                dport: 80u16.to_be(),
                proto: TCP,
                family: abi::RVS_FAMILY_V4 as u8,
                pad: [0; 2],
            };
            let conn = abi::Conn {
                real: slots[other],
                svc: 0,
                last_ns: rvs_xdp::engine::monotonic_ns(),
                state: abi::RVS_STATE_ESTABLISHED as u8,
                ..Default::default()
            };
            e.insert_conns(&[(key, conn)]).unwrap();
            if send(e, vip(100), c, sport, ACK) == Some(other) {
                followed += 1;
            }
        }
        assert_eq!(followed, 200, "synced entries the program took as expired");
    });
}

/// Reals whose MAC cannot be learnt (nothing answers ARP for them) cost one wait per batch of
/// changes, not one per real, and the upkeep never waits for them under the engine's lock:
/// it asked 0.5 s per unresolved real every round before, so every API call stalled.
#[test]
fn d_unresolvable_reals_do_not_hold_the_lock() {
    with_engine(|e| {
        let k = ServiceKey::tcp(vip(100));
        let mut changes = vec![Change::AddService {
            key: k,
            options: ServiceOptions::default(),
        }];
        // On the director's subnet, no neighbour entry, no host: never resolved.
        for i in 0..5u8 {
            changes.push(Change::AddReal {
                service: k,
                real: RealServer::new(
                    SocketAddr::from(([10, 9, 0, 50 + i], 80)),
                    ForwardMethod::Dr,
                    1,
                ),
            });
        }
        let t0 = Instant::now();
        e.apply(&changes).unwrap();
        let took = t0.elapsed();
        // One 0.5 s wait in all (the old code waited 0.5 s per real: 2.5 s).
        assert!(took < Duration::from_millis(1500), "apply took {took:?}");
        // Upkeep rounds every 200 ms for 2 s: a stats call never waits long for the lock.
        let (t0, mut worst) = (Instant::now(), Duration::ZERO);
        while t0.elapsed() < Duration::from_secs(2) {
            let t = Instant::now();
            let _ = e.stats();
            worst = worst.max(t.elapsed());
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            worst < Duration::from_millis(400),
            "a stats call waited {worst:?}"
        );
    });
}

/// -p through the engine: a real whose health goes down (EditReal, effective weight 0) gets no
/// new connection of a persistent client, which is rescheduled; a drained real keeps its
/// persistent clients (IPVS's default); a disabled one does not.
#[test]
fn e_persistent_clients_leave_a_down_or_disabled_real() {
    use rvs_core::model::{AdminState, Health};
    with_engine(|e| {
        let k = ServiceKey::tcp(vip(100));
        let sticky = sticky();
        add(e, k, sticky, &[dr(0), dr(1)]);
        let c = client(7);
        let first = send(e, vip(100), c, 6000, SYN).expect("forwarded");
        let other = 1 - first;
        let edit = |e: &mut XdpEngine, i: usize, health: Health, admin: AdminState| {
            let mut r = dr(i);
            r.health = health;
            r.admin = admin;
            e.apply(&[Change::EditReal {
                service: k,
                real: r,
            }])
            .unwrap();
        };
        edit(e, first, Health::Down, AdminState::Enabled);
        for p in 6001..6011 {
            assert_eq!(
                send(e, vip(100), c, p, SYN),
                Some(other),
                "port {p}: real {first} is down"
            );
        }
        edit(e, first, Health::Up, AdminState::Enabled);
        edit(e, other, Health::Up, AdminState::Drain);
        for p in 6011..6021 {
            assert_eq!(
                send(e, vip(100), c, p, SYN),
                Some(other),
                "port {p}: a drained real keeps its persistent client"
            );
        }
        edit(e, other, Health::Up, AdminState::Disabled);
        for p in 6021..6031 {
            assert_eq!(
                send(e, vip(100), c, p, SYN),
                Some(first),
                "port {p}: real {other} is disabled"
            );
        }
    });
}

/// A removed real takes its clients' persistence templates with it (its slot goes to another
/// real later, maybe of another service, which the templates would lead to); the other
/// reals' templates stay.
#[test]
fn g_a_removed_real_takes_its_templates() {
    with_engine(|e| {
        let k = ServiceKey::tcp(vip(100));
        let sticky = sticky();
        add(e, k, sticky, &[dr(0), dr(1)]);
        for i in 0..40 {
            assert!(send(e, vip(100), client(i), 5000, SYN).is_some());
        }
        let slots = [
            e.real_index(&k, &real_addr(0)).unwrap(),
            e.real_index(&k, &real_addr(1)).unwrap(),
        ];
        // The program's own table (-Lnc lists only templates of configured reals).
        let templates_of = |e: &XdpEngine, i: usize| {
            e.persist_templates()
                .unwrap()
                .into_iter()
                .filter(|(_, t)| t.real == slots[i])
                .count()
        };
        let (t0, t1) = (templates_of(e, 0), templates_of(e, 1));
        assert!(t0 > 0 && t1 > 0 && t0 + t1 == 40, "{t0} + {t1}");
        e.apply(&[Change::RemoveReal {
            service: k,
            addr: real_addr(0),
        }])
        .unwrap();
        assert_eq!(templates_of(e, 0), 0, "the removed real's templates");
        assert_eq!(templates_of(e, 1), t1, "the other real's templates stay");
    });
}

/// Interfaces with large ifindexes (container hosts reach thousands) are attached and
/// described like any other; the program's interface tables went up to 4,095 before.
#[test]
fn f_an_interface_with_a_large_ifindex_is_attached() {
    if no_root() {
        return;
    }
    let a = Netns::new("ecbig").unwrap();
    a.ip(&[
        "link", "add", "big0", "index", "5000", "type", "veth", "peer", "name", "big1",
    ])
    .unwrap();
    a.link_up("big0").unwrap();
    a.link_up("big1").unwrap();
    a.add_addr("big0", "10.9.0.1/24").unwrap();
    a.in_thread(|| {
        let mut e = XdpEngine::start(XdpConfig {
            interfaces: vec!["big0".into()],
            ..Default::default()
        })
        .expect("engine on ifindex 5000");
        assert_eq!(e.attachments().len(), 1);
        assert_eq!(e.attachments()[0].0, "big0");
        e.shutdown();
    });
}

/// A real's route that changes (here: a /32 route through a gateway appears) is followed: its
/// packets go to the new next hop's MAC within a link check (10 upkeep rounds).
#[test]
fn h_a_changed_route_to_a_real_is_followed() {
    if no_root() {
        return;
    }
    let (a, _b) = director();
    let gw_mac = "02:00:00:00:00:99";
    a.ip(&[
        "neigh",
        "add",
        "10.9.0.254",
        "lladdr",
        gw_mac,
        "dev",
        "eth0",
        "nud",
        "permanent",
    ])
    .unwrap();
    a.in_thread(|| {
        let mut e = start();
        let k = ServiceKey::tcp(vip(100));
        add(&mut e, k, ServiceOptions::default(), &[dr(0)]);
        let dmac = |e: &XdpEngine, sport: u16| {
            let (_, out) = e.test_run(&frame(vip(100), client(1), sport, SYN)).unwrap();
            [out[0], out[1], out[2], out[3], out[4], out[5]]
        };
        assert_eq!(dmac(&e, 9000), real_mac(0), "on-link: the real's own MAC");
        rvs_testbed::cmd::run_args(
            "ip",
            &[
                "route",
                "add",
                "10.9.0.10/32",
                "via",
                "10.9.0.254",
                "dev",
                "eth0",
            ],
        )
        .unwrap();
        let (t0, mut sport) = (Instant::now(), 9001);
        while dmac(&e, sport) != [0x02, 0, 0, 0, 0, 0x99] {
            assert!(
                t0.elapsed() < Duration::from_secs(6),
                "the new route's gateway MAC never used"
            );
            std::thread::sleep(Duration::from_millis(100));
            sport += 1;
        }
        e.shutdown();
    });
}

/// The real (index into REALS) a UDP datagram from `client:sport` to `vip` was sent to.
fn send_udp(e: &XdpEngine, vip: SocketAddr, client: IpAddr, sport: u16) -> Option<usize> {
    let f = packet(
        DIR_MAC,
        CLIENT_MAC,
        client,
        vip.ip(),
        UDP,
        sport,
        vip.port(),
        0,
        b"query",
    );
    let (action, out) = e.test_run(&f).expect("test run");
    const XDP_TX: u32 = 3;
    if action != XDP_TX {
        return None;
    }
    (0..REALS).find(|i| out[0..6] == real_mac(*i))
}

/// `-o` on a UDP DR service (EditService): datagrams make no connection entries and no longer
/// follow the ones made before (a drained real's, here); cleared again, those entries are
/// followed and new datagrams make entries. On a TCP service `-o` changes nothing.
#[test]
fn i_one_packet_follows_the_service_options() {
    with_engine(|e| {
        let vip = SocketAddr::from(([10, 9, 0, 101], 53));
        let k = ServiceKey::udp(vip);
        add(e, k, ServiceOptions::default(), &[dr(0), dr(1)]);
        let c = client(9);
        let ports = 7000..7020u16;
        let before: Vec<usize> = ports
            .clone()
            .map(|p| send_udp(e, vip, c, p).expect("forwarded"))
            .collect();
        let entries = |e: &XdpEngine| e.connections().len();
        assert_eq!(entries(e), 20, "a datagram without -o makes an entry");
        let drained = before[0];
        let mut r = dr(drained);
        r.weight = 0;
        e.apply(&[Change::EditReal {
            service: k,
            real: r,
        }])
        .unwrap();
        for (p, want) in ports.clone().zip(&before) {
            assert_eq!(
                send_udp(e, vip, c, p),
                Some(*want),
                "port {p}: entry followed"
            );
        }
        let set_o = |e: &mut XdpEngine, on: bool| {
            let options = ServiceOptions {
                one_packet: on,
                ..Default::default()
            };
            e.apply(&[Change::EditService { key: k, options }]).unwrap();
        };
        set_o(e, true);
        for p in ports.clone().chain(8000..8020) {
            assert_eq!(
                send_udp(e, vip, c, p),
                Some(1 - drained),
                "port {p} with -o"
            );
        }
        assert_eq!(entries(e), 20, "-o made entries");
        set_o(e, false);
        for (p, want) in ports.clone().zip(&before) {
            assert_eq!(send_udp(e, vip, c, p), Some(*want), "port {p}: -o cleared");
        }
        assert_eq!(send_udp(e, vip, c, 9000), Some(1 - drained));
        assert_eq!(
            entries(e),
            21,
            "a datagram after -o is cleared makes an entry"
        );

        let tcp = ServiceKey::tcp(vip);
        let options = ServiceOptions {
            one_packet: true,
            ..Default::default()
        };
        add(e, tcp, options, &[dr(2)]);
        assert_eq!(send(e, vip, c, 7000, SYN), Some(2));
        assert_eq!(entries(e), 22, "TCP to a -o service makes an entry");
    });
}

/// A service mixing a DR and a NAT real (IPVS allows a method per real): the engine marks its
/// port for both connection tables, each flow is followed on its real, `-Lnc` lists the flows
/// of both tables, `-Ln` counts them per real, and removing the service empties both tables.
#[test]
fn j_a_service_mixing_dr_and_nat_reals_lists_and_removes_both() {
    with_engine(|e| {
        let k = ServiceKey::tcp(vip(100));
        let nat = RealServer::new(real_addr(1), ForwardMethod::Nat, 1);
        add(e, k, ServiceOptions::default(), &[dr(0), nat]);
        // Clients on each real, each flow opened and then followed.
        let mut on = [0u32; 2];
        for i in 0..20 {
            let real = send(e, vip(100), client(i), 9000, SYN).expect("scheduled");
            on[real] += 1;
            for _ in 0..2 {
                assert_eq!(
                    send(e, vip(100), client(i), 9000, ACK),
                    Some(real),
                    "followed"
                );
            }
        }
        assert!(on[0] > 0 && on[1] > 0, "both reals used: {on:?}");
        let st = e.stats();
        assert_eq!(
            st.services[&k].counters.conns, 20,
            "each flow scheduled once"
        );
        let listed = e.connections();
        for (i, r) in [(0, real_addr(0)), (1, real_addr(1))] {
            let n = listed.iter().filter(|c| c.real == r).count() as u32;
            assert_eq!(n, on[i], "listed flows on {r}: {listed:?}");
            let counts = &st.services[&k].reals[&r];
            assert_eq!(
                counts.active_conns + counts.inactive_conns,
                on[i],
                "counted on {r}"
            );
        }
        e.apply(&[Change::RemoveService(k)]).unwrap();
        assert!(e.connections().is_empty(), "{:?}", e.connections());
    });
}

/// `-Ln --persistent-conn`'s PersistConn (IPVS's `persistconns`): the live persistence
/// templates naming each real, counted from the program's table. It was always 0 on the xdp
/// engine; expired templates do not count.
#[test]
fn k_persistent_conns_count_the_live_templates() {
    with_engine(|e| {
        let k = ServiceKey::tcp(vip(100));
        add(e, k, sticky(), &[dr(0), dr(1)]);
        let short = ServiceKey::tcp(vip(101));
        let one_second = ServiceOptions {
            persistence: Some(Persistence {
                timeout: 1,
                prefix_len: 32,
            }),
            ..Default::default()
        };
        add(e, short, one_second, &[dr(2)]);
        for i in 0..40 {
            assert!(send(e, vip(100), client(i), 5000, SYN).is_some());
        }
        for i in 0..5 {
            assert_eq!(send(e, vip(101), client(i), 5000, SYN), Some(2));
        }
        let slots = [
            e.real_index(&k, &real_addr(0)).unwrap(),
            e.real_index(&k, &real_addr(1)).unwrap(),
        ];
        let templates = e.persist_templates().unwrap();
        let of = |slot: u32| templates.iter().filter(|(_, t)| t.real == slot).count() as u32;
        let persistent = |e: &XdpEngine, key: &ServiceKey, i: usize| {
            e.stats().services[key].reals[&real_addr(i)].persistent_conns
        };
        let (p0, p1) = (persistent(e, &k, 0), persistent(e, &k, 1));
        assert_eq!((p0, p1), (of(slots[0]), of(slots[1])), "templates per real");
        assert_eq!(p0 + p1, 40, "one template per client");
        assert!(p0 > 0 && p1 > 0, "{p0} + {p1}");
        assert_eq!(persistent(e, &short, 2), 5);
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(
            persistent(e, &short, 2),
            0,
            "expired templates do not count"
        );
        assert_eq!(persistent(e, &k, 0), p0, "live ones still do");
    });
}

/// A real on one of the director's own addresses (IPVS's local node, ipvsadm's "Local"): the
/// engine finds the local route and flags it, so its packets go to the director's own stack
/// untouched and count for it. Before, the engine tried to resolve its MAC, never could, and
/// the program dropped every packet to it (`no_neigh`).
#[test]
fn l_a_real_on_the_directors_own_address_is_a_local_node() {
    with_engine(|e| {
        let k = ServiceKey::tcp(vip(100));
        let own = SocketAddr::from(([10, 9, 0, 1], 80));
        add(
            e,
            k,
            ServiceOptions::default(),
            &[RealServer::new(own, ForwardMethod::Dr, 1)],
        );
        let f = frame(vip(100), client(1), 4000, SYN);
        let (action, out) = e.test_run(&f).expect("test run");
        const XDP_PASS: u32 = 2;
        assert_eq!(action, XDP_PASS, "to the director's own stack");
        assert_eq!(out, f, "untouched");
        let stats = e.stats();
        assert_eq!(stats.outcomes.get("no_neigh").copied().unwrap_or(0), 0);
        let real = &stats.services[&k].reals[&own];
        assert_eq!((real.counters.conns, real.counters.in_pkts), (1, 1));
    });
}

/// A removed real's connection entries go with it. Its slot is reused by a later real added
/// (maybe of another service), and the program follows a live entry to whatever real holds its
/// slot: before, an established flow of the removed real (ESTABLISHED lives 900 s) was sent to
/// that new real, and the entries, naming no configured real, were hidden from `-Lnc`.
#[test]
fn m_a_removed_reals_flows_do_not_follow_its_slot_to_the_next_real() {
    with_engine(|e| {
        let (ka, kb) = (ServiceKey::tcp(vip(100)), ServiceKey::tcp(vip(101)));
        add(e, ka, ServiceOptions::default(), &[dr(0)]);
        let c = client(9);
        assert_eq!(send(e, vip(100), c, 7000, SYN), Some(0));
        assert_eq!(send(e, vip(100), c, 7000, ACK), Some(0), "established");
        let slot = e.real_index(&ka, &real_addr(0)).unwrap();
        e.apply(&[Change::RemoveReal {
            service: ka,
            addr: real_addr(0),
        }])
        .unwrap();
        // Freed slots are reused oldest first: give service B reals until one gets the removed
        // real's slot (reals on the director's own address: nothing to resolve).
        add(e, kb, ServiceOptions::default(), &[]);
        let own = |port: u16| SocketAddr::from(([10, 9, 0, 1], port));
        let mut taker = None;
        for chunk in (1000..1000 + abi::RVS_MAX_REALS as u16)
            .collect::<Vec<_>>()
            .chunks(64)
        {
            let adds: Vec<Change> = chunk
                .iter()
                .map(|p| Change::AddReal {
                    service: kb,
                    // Weight 0: no Maglev table to build each time.
                    real: RealServer::new(own(*p), ForwardMethod::Dr, 0),
                })
                .collect();
            e.apply(&adds).unwrap();
            taker = chunk
                .iter()
                .map(|p| own(*p))
                .find(|a| e.real_index(&kb, a) == Some(slot));
            if taker.is_some() {
                break;
            }
        }
        let taker = taker.expect("a real of B took the removed real's slot");
        let in_pkts = |e: &XdpEngine| e.stats().services[&kb].reals[&taker].counters.in_pkts;
        let before = in_pkts(e);
        let _ = send(e, vip(100), c, 7000, ACK);
        assert_eq!(
            in_pkts(e),
            before,
            "the removed real's flow is not sent to another service's real"
        );
        let listed = e.connections();
        assert!(
            listed.iter().all(|ci| ci.virtual_addr != vip(100)),
            "{listed:?}"
        );
    });
}

/// An interface deleted and made again under the same name (a bond, VLAN or veth re-created,
/// a container restarted) gets the program attached again by the upkeep's link check (every
/// 10 upkeep intervals: 2 s here), and the shutdown detaches it from the new device. Before,
/// the program was gone with the old device and the VIPs' packets went to the director's own
/// stack while the engine looked healthy.
#[test]
fn n_an_interface_re_created_is_attached_again() {
    if no_root() {
        return;
    }
    let (a, b) = director();
    a.in_thread(|| {
        let mut e = start();
        let before = a.ip(&["link", "show", "eth0"]).unwrap();
        assert!(before.contains("xdp"), "{before}");
        a.ip(&["link", "del", "eth0"]).unwrap();
        a.veth("eth0", &b, "eth0").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let link = a.ip(&["link", "show", "eth0"]).unwrap();
            if link.contains("xdp") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "not attached to the new eth0: {link}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        e.shutdown();
        let link = a.ip(&["link", "show", "eth0"]).unwrap();
        assert!(!link.contains("xdp"), "detached at shutdown: {link}");
    });
}
