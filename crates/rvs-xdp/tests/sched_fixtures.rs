//! Packet fixtures for the program's choice of a real for a new flow (bpf/sched.h and
//! rvs_vip_flow in bpf/rvs_lb.c) where IPVS's behaviour is subtle: persistence templates and
//! down reals, and a SYN that reuses a closing flow's tuple. Same runner as `fixtures.rs`
//! (action, output frame byte for byte, the one outcome counter moved).
//!
//! Needs root; skips with a message otherwise.

mod common;

use common::frames::{ACK, SYN, TCP};
use common::lab::*;
use rvs_xdp::abi;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

const DR: u8 = abi::RVS_METHOD_DR as u8;

/// Service 0: persistent (300 s, /32) on reals 0 and 1.
const PERSIST: u32 = 0;

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn client(host: u8, port: u16) -> SocketAddr {
    SocketAddr::new(v4(192, 168, 1, host), port)
}

fn setup() -> Lab {
    let mut lab = Lab::new();
    lab.add_real(0, v4(10, 0, 0, 7), [2, 0, 0, 0, 0, 7], DR);
    lab.add_real(1, v4(10, 0, 0, 8), [2, 0, 0, 0, 0, 8], DR);
    let both = [(0, 1), (1, 1)];
    lab.add_service(
        PERSIST,
        SocketAddr::new(v4(10, 0, 0, 3), 80),
        TCP,
        &both,
        Some((300, 32)),
    );
    lab
}

/// A fixture for a packet that must be forwarded to `real`.
fn fwd(lab: &Lab, desc: String, input: Vec<u8>, real: u32) -> Fixture {
    let output = lab.forwarded(&input, real);
    Fixture {
        desc,
        input,
        action: XDP_TX,
        output,
        outcome: "forwarded",
    }
}

/// A port of client `host` in `from..` whose flow Maglev (as `svc`'s table stands) gives `real`.
fn port_on(lab: &Lab, svc: u32, host: u8, from: u16, real: u32) -> u16 {
    (from..from + 500)
        .find(|p| lab.maglev_real(svc, client(host, *p)) == real)
        .expect("a port hashing to the real")
}

/// The real the client's persistence template names, if it has one.
fn template_real(lab: &Lab, svc: u32, host: u8) -> Option<u32> {
    let addr = abi::addr_of(client(host, 0).ip()).0;
    lab.b
        .persist_templates()
        .unwrap()
        .into_iter()
        .find(|(k, _)| k.svc == svc && k.addr == addr)
        .map(|(_, p)| p.real)
}

/// -p and a real that health checks mark down (or the operator disables): the engine takes it
/// out of the Maglev table and flags it RVS_REAL_F_DOWN. Its established flows go on; the
/// client's next connection does not follow the template to it but is scheduled afresh, and
/// the template is rebound. A drained real (weight 0, not down) keeps its persistent clients.
fn persistence_and_down_reals(lab: &mut Lab) {
    let host = 10;
    let first = client(host, 44000);
    let x = lab.maglev_real(PERSIST, first);
    let y = 1 - x;
    let input = lab.client_packet(PERSIST, first, SYN, b"");
    let f = fwd(lab, format!("-p: first connection -> real {x}"), input, x);
    lab.run(f);
    assert_eq!(template_real(lab, PERSIST, host), Some(x));

    lab.set_weights(PERSIST, &[(y, 1)]);
    lab.set_real_down(x, true);
    let input = lab.client_packet(PERSIST, first, ACK, b"data");
    let f = fwd(
        lab,
        format!("-p: real {x} down, its established flow keeps going to it"),
        input,
        x,
    );
    lab.run(f);
    let input = lab.client_packet(PERSIST, client(host, 44001), SYN, b"");
    let f = fwd(
        lab,
        format!("-p: real {x} down, the client's new connection is not sent to it ({y})"),
        input,
        y,
    );
    lab.run(f);
    assert_eq!(
        template_real(lab, PERSIST, host),
        Some(y),
        "template rebound"
    );

    lab.set_real_down(x, false);
    lab.set_weights(PERSIST, &[(0, 1), (1, 1)]);
    let p = port_on(lab, PERSIST, host, 44100, x);
    let input = lab.client_packet(PERSIST, client(host, p), SYN, b"");
    let f = fwd(
        lab,
        format!("-p: real {x} up again, port {p} (maglev says {x}) stays on the rebound {y}"),
        input,
        y,
    );
    lab.run(f);

    // Drain y (weight 0, not down): as IPVS (expire_quiescent_template=0), its persistent
    // clients still reach it; other clients do not.
    let weights = if y == 0 {
        [(0, 0), (1, 1)]
    } else {
        [(0, 1), (1, 0)]
    };
    lab.set_weights(PERSIST, &weights);
    let p = port_on(lab, PERSIST, host, 44200, x);
    let input = lab.client_packet(PERSIST, client(host, p), SYN, b"");
    let f = fwd(
        lab,
        format!("-p: real {y} drained (weight 0), its persistent client still goes to it"),
        input,
        y,
    );
    lab.run(f);
    let input = lab.client_packet(PERSIST, client(11, 44300), SYN, b"");
    let f = fwd(
        lab,
        format!("-p: real {y} drained, a client without a template goes to {x}"),
        input,
        x,
    );
    lab.run(f);
    lab.set_weights(PERSIST, &[(0, 1), (1, 1)]);
}

#[test]
fn sched_fixtures() {
    if skip_unless_root() {
        return;
    }
    let mut lab = setup();
    persistence_and_down_reals(&mut lab);
    println!("{} fixtures passed", lab.ran.len());
}
