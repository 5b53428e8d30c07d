//! The engine's side of a real whose method is edited while it has flows: the program sends a
//! flow with its entry's method (tests/method_edit_fixtures.rs), so the engine must keep the
//! flow reachable. A service's NAT real edited to DR and back: its port keeps both connection
//! tables looked up (the NAT flow's entry stays in `rvs_nat_conns`, the DR flow's in
//! `rvs_conns`), and the real's port (8080 behind VIP:80) stays written for the NAT flow.
//! Root only (namespaces, XDP); skips with a message otherwise.

mod common;

use common::frames::{ACK, SYN, TCP, packet};
use rvs_core::desired::Change;
use rvs_core::engine::Engine;
use rvs_core::model::{ForwardMethod, RealServer, ServiceKey, ServiceOptions};
use rvs_testbed::Netns;
use rvs_xdp::{XdpConfig, XdpEngine};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

const DIR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xc1];
const REAL_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const REAL: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 10);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 100);

/// How a client packet left the director.
#[derive(Debug, PartialEq, Eq)]
enum Sent {
    /// To the real's MAC, addresses untouched.
    Dr,
    /// To the real's MAC, rewritten to the real's address and this port.
    Nat(u16),
}

/// Send one TCP segment of `client`:`sport` to VIP:80 through the program.
fn send(e: &XdpEngine, sport: u16, flags: u8) -> Option<Sent> {
    let client = IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1));
    let f = packet(
        DIR_MAC,
        CLIENT_MAC,
        client,
        IpAddr::V4(VIP),
        TCP,
        sport,
        80,
        flags,
        b"",
    );
    let (action, out) = e.test_run(&f).expect("test run");
    const XDP_TX: u32 = 3;
    if action != XDP_TX || out[0..6] != REAL_MAC {
        return None;
    }
    let dst = Ipv4Addr::new(out[30], out[31], out[32], out[33]);
    let dport = u16::from_be_bytes([out[36], out[37]]);
    match dst {
        d if d == VIP && dport == 80 => Some(Sent::Dr),
        d if d == REAL => Some(Sent::Nat(dport)),
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

#[test]
fn a_nat_real_edited_to_dr_and_back_keeps_both_kinds_of_flows() {
    if !rvs_testbed::is_root() {
        eprintln!("skipping: needs root for namespaces and XDP");
        return;
    }
    let (a, b) = (Netns::new("emd").unwrap(), Netns::new("emp").unwrap());
    a.veth("eth0", &b, "eth0").unwrap();
    a.add_addr("eth0", "10.9.0.1/24").unwrap();
    let neigh = ["neigh", "add", "10.9.0.10", "lladdr", "02:00:00:00:00:0a"];
    a.ip(&[&neigh[..], &["dev", "eth0", "nud", "permanent"]].concat())
        .unwrap();
    a.in_thread(|| {
        let mut e = XdpEngine::start(XdpConfig {
            interfaces: vec!["eth0".into()],
            upkeep_interval: Duration::from_millis(200),
            ..Default::default()
        })
        .expect("engine");
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
        assert_eq!(send(&e, 5000, SYN), Some(Sent::Nat(8080)), "NAT flow");
        edit(&mut e, key, ForwardMethod::Dr);
        assert_eq!(
            send(&e, 5000, ACK),
            Some(Sent::Nat(8080)),
            "the NAT flow after NAT -> DR: still NAT, to the real's port"
        );
        assert_eq!(send(&e, 5001, SYN), Some(Sent::Dr), "a new flow is DR");
        edit(&mut e, key, ForwardMethod::Nat);
        assert_eq!(
            send(&e, 5001, ACK),
            Some(Sent::Dr),
            "the DR flow after DR -> NAT"
        );
        assert_eq!(send(&e, 5000, ACK), Some(Sent::Nat(8080)), "the NAT flow");
        assert_eq!(
            send(&e, 5002, SYN),
            Some(Sent::Nat(8080)),
            "a new flow is NAT"
        );
        e.shutdown();
    });
}
