//! The engine narrows a port's connection-table bits once it is safe (src/narrow.rs): a real
//! edited NAT → DR leaves the port looking `rvs_nat_conns` up while its NAT flow is live (the
//! flow still goes NAT), and only `rvs_conns` after that flow expired and the sweep saw no NAT
//! entry of the port; DR → NAT the same the other way. Every packet in between is forwarded by
//! its flow's method. Root only (namespaces, XDP); skips with a message otherwise.

mod common;

use common::frames::{ACK, SYN, TCP, packet};
use rvs_core::conn::ConnTimeouts;
use rvs_core::desired::{Change, Timeouts};
use rvs_core::engine::Engine;
use rvs_core::model::{ForwardMethod, RealServer, ServiceKey, ServiceOptions};
use rvs_testbed::Netns;
use rvs_xdp::abi::{RVS_PORT_DIRECT, RVS_PORT_NAT};
use rvs_xdp::{XdpConfig, XdpEngine};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

const DIR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xc1];
const REAL_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const REAL: Ipv4Addr = Ipv4Addr::new(10, 9, 1, 10);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 9, 1, 100);
/// Every TCP state's timeout (s): flows expire soon after their last packet.
const TIMEOUT_S: u32 = 2;
/// The soonest a flow's entry can expire after its last packet: the timeout less the
/// program's 100 ms between timestamp refreshes and a tick of the coarse clock.
const EXPIRY: Duration = Duration::from_millis(TIMEOUT_S as u64 * 1000 - 150);
const DIRECT: u32 = RVS_PORT_DIRECT as u32;
const NAT: u32 = RVS_PORT_NAT as u32;

/// How a client packet left the director.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// To the real's MAC, addresses untouched.
    Dr,
    /// To the real's MAC, rewritten to the real's address and port.
    Nat,
}

/// Send one TCP segment of 192.168.0.1:`sport` to VIP:80 through the program.
fn send(e: &XdpEngine, sport: u16, flags: u8) -> Option<Sent> {
    let client = IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1));
    let vip = IpAddr::V4(VIP);
    let f = packet(DIR_MAC, CLIENT_MAC, client, vip, TCP, sport, 80, flags, b"");
    let (action, out) = e.test_run(&f).expect("test run");
    const XDP_TX: u32 = 3;
    if action != XDP_TX || out[0..6] != REAL_MAC {
        return None;
    }
    let dst = Ipv4Addr::new(out[30], out[31], out[32], out[33]);
    let dport = u16::from_be_bytes([out[36], out[37]]);
    match dst {
        d if d == VIP && dport == 80 => Some(Sent::Dr),
        d if d == REAL && dport == 8080 => Some(Sent::Nat),
        _ => None,
    }
}

fn real(method: ForwardMethod) -> RealServer {
    RealServer::new(SocketAddr::from((REAL, 8080)), method, 1)
}

fn edit(e: &mut XdpEngine, key: ServiceKey, method: ForwardMethod) {
    let change = Change::EditReal {
        service: key,
        real: real(method),
    };
    e.apply(&[change]).expect("edit");
}

/// For `span`, every 150 ms: both flows' packets go by their own methods (`(sport, method)`)
/// and the port's bits stay `bits`. When the last packets were sent.
fn keep_alive(e: &XdpEngine, flows: &[(u16, Sent)], bits: u32, span: Duration) -> Instant {
    let until = Instant::now() + span;
    loop {
        let sent = Instant::now();
        for (sport, want) in flows {
            assert_eq!(send(e, *sport, ACK).as_ref(), Some(want), "flow {sport}");
        }
        assert_eq!(
            e.port_tables(80).unwrap(),
            bits,
            "while both kinds are live"
        );
        if sent >= until {
            return sent;
        }
        std::thread::sleep(Duration::from_millis(150));
    }
}

/// Wait (at most 15 s) until the port's bits are `bits`, keeping flow `sport` alive and
/// checking it goes by `method` meanwhile; when they were seen narrowed.
fn narrowed_to(e: &XdpEngine, bits: u32, sport: u16, method: Sent) -> Instant {
    let start = Instant::now();
    loop {
        assert_eq!(send(e, sport, ACK), Some(method), "flow {sport} meanwhile");
        let now = e.port_tables(80).unwrap();
        if now == bits {
            return Instant::now();
        }
        assert_eq!(now, DIRECT | NAT, "nothing else in between");
        assert!(start.elapsed() < Duration::from_secs(15), "never narrowed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_port_is_narrowed_once_its_flows_of_the_other_kind_are_gone() {
    if !rvs_testbed::is_root() {
        eprintln!("skipping: needs root for namespaces and XDP");
        return;
    }
    let (a, b) = (Netns::new("nrd").unwrap(), Netns::new("nrp").unwrap());
    a.veth("eth0", &b, "eth0").unwrap();
    a.add_addr("eth0", "10.9.1.1/24").unwrap();
    let neigh = ["neigh", "add", "10.9.1.10", "lladdr", "02:00:00:00:00:0a"];
    a.ip(&[&neigh[..], &["dev", "eth0", "nud", "permanent"]].concat())
        .unwrap();
    a.in_thread(|| {
        let mut e = XdpEngine::start(XdpConfig {
            interfaces: vec!["eth0".into()],
            upkeep_interval: Duration::from_millis(100),
            ..Default::default()
        })
        .expect("engine");
        e.set_state_timeouts(ConnTimeouts {
            tcp: [TIMEOUT_S; 11],
            ..Default::default()
        })
        .expect("timeouts");
        // `ipvsadm --set`'s ESTABLISHED and FIN_WAIT (900 and 120 s by default) on top.
        let set = Timeouts {
            tcp: TIMEOUT_S,
            tcp_fin: TIMEOUT_S,
            ..Default::default()
        };
        e.apply(&[Change::SetTimeouts(set)]).expect("timeouts");
        let key = ServiceKey::tcp(SocketAddr::from((VIP, 80)));
        let options = ServiceOptions::default();
        e.apply(&[
            Change::AddService { key, options },
            Change::AddReal {
                service: key,
                real: real(ForwardMethod::Nat),
            },
        ])
        .expect("apply");
        assert_eq!(e.port_tables(80).unwrap(), NAT);
        assert_eq!(send(&e, 6000, SYN), Some(Sent::Nat), "NAT flow");

        // NAT -> DR with the NAT flow live: both tables, well past the settling time.
        edit(&mut e, key, ForwardMethod::Dr);
        assert_eq!(send(&e, 6001, SYN), Some(Sent::Dr), "a new flow is DR");
        let flows = [(6000, Sent::Nat), (6001, Sent::Dr)];
        let last = keep_alive(&e, &flows, DIRECT | NAT, Duration::from_secs(3));
        // The NAT flow goes quiet: DIRECT only once its entry expired (and was swept).
        let took = narrowed_to(&e, DIRECT, 6001, Sent::Dr) - last;
        assert!(
            took >= EXPIRY,
            "narrowed {took:?} after the NAT flow's last packet"
        );
        assert_eq!(
            send(&e, 6000, SYN),
            Some(Sent::Dr),
            "the old NAT tuple opens a DR flow"
        );

        // DR -> NAT with the DR flows live: the same the other way.
        edit(&mut e, key, ForwardMethod::Nat);
        assert_eq!(e.port_tables(80).unwrap(), DIRECT | NAT, "widened at once");
        assert_eq!(send(&e, 6002, SYN), Some(Sent::Nat), "a new flow is NAT");
        let flows = [(6001, Sent::Dr), (6002, Sent::Nat)];
        let last = keep_alive(&e, &flows, DIRECT | NAT, Duration::from_secs(3));
        let took = narrowed_to(&e, NAT, 6002, Sent::Nat) - last;
        assert!(
            took >= EXPIRY,
            "narrowed {took:?} after the DR flow's last packet"
        );
        // Flow 6000's DR entry expired too (it had one packet): a SYN there is NAT now.
        assert_eq!(send(&e, 6000, SYN), Some(Sent::Nat));
        assert_eq!(send(&e, 6001, SYN), Some(Sent::Nat));
        e.shutdown();
    });
}
