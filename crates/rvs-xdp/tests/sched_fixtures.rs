//! Packet fixtures for the program's choice of a real for a new flow (bpf/sched.h and
//! rvs_vip_flow in bpf/rvs_lb.c) where IPVS's behaviour is subtle: persistence templates and
//! down reals, and a SYN that reuses a closing flow's tuple. Same runner as `fixtures.rs`
//! (action, output frame byte for byte, the one outcome counter moved).
//!
//! Needs root; skips with a message otherwise.

mod common;

use common::frames::{ACK, FIN, RST, SYN, TCP};
use common::lab::*;
use rvs_xdp::abi;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

const DR: u8 = abi::RVS_METHOD_DR as u8;

/// Service 0: persistent (300 s, /32) on reals 0 and 1.
const PERSIST: u32 = 0;
/// Service 1: no persistence, reals 0 and 1.
const PLAIN: u32 = 1;
/// Service 2: persistent with a 1 s timeout (/32), reals 0 and 1.
const SHORT: u32 = 2;

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
    lab.add_service(
        PLAIN,
        SocketAddr::new(v4(10, 0, 0, 4), 80),
        TCP,
        &both,
        None,
    );
    lab.add_service(
        SHORT,
        SocketAddr::new(v4(10, 0, 0, 6), 80),
        TCP,
        &both,
        Some((1, 32)),
    );
    lab
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

/// A client reuses its tuple for a new connection (a SYN without ACK) while the old flow's
/// entry is closing: TIME_WAIT, CLOSE, or (DR/TUN, which see only the client's side) FIN_WAIT.
/// As IPVS (conn_reuse_mode), the SYN is scheduled afresh, so it avoids the old real when that
/// real is drained. A SYN on an entry that is not closing (a retransmitted SYN, SYN_RECV; or
/// ESTABLISHED) stays on its real.
fn reused_tuples(lab: &mut Lab) {
    use abi::{RVS_STATE_CLOSE as CLOSE, RVS_STATE_FIN_WAIT as FIN_WAIT};
    use abi::{RVS_STATE_SYN_RECV as SYN_RECV, RVS_STATE_TIME_WAIT as TIME_WAIT};
    let host = 20;
    let cases: [(&[u8], Option<u64>, bool, &str); 5] = [
        (&[SYN, ACK, FIN | ACK], Some(FIN_WAIT), true, "FIN_WAIT"),
        (&[SYN, ACK, RST], Some(CLOSE), true, "CLOSE"),
        (&[SYN, ACK], Some(TIME_WAIT), true, "TIME_WAIT"),
        (
            &[SYN],
            Some(SYN_RECV),
            false,
            "SYN_RECV (retransmitted SYN)",
        ),
        (&[SYN, ACK], None, false, "ESTABLISHED"),
    ];
    for (i, (packets, state, anew, name)) in cases.into_iter().enumerate() {
        lab.set_weights(PLAIN, &[(0, 1), (1, 1)]);
        let c = client(host, 45000 + i as u16);
        let x = lab.maglev_real(PLAIN, c);
        let y = 1 - x;
        for flags in packets {
            let input = lab.client_packet(PLAIN, c, *flags, b"");
            let f = fwd(
                lab,
                format!("reuse {name}: flags {flags:#04x} -> {x}"),
                input,
                x,
            );
            lab.run(f);
        }
        let mut entry = conn_of(lab, PLAIN, c).expect("entry");
        if let Some(state) = state
            && entry.state != state as u8
        {
            // TIME_WAIT: a state DR never reaches by itself (a NAT flow's), set directly.
            entry.state = state as u8;
            lab.b.insert_conn(&flow_key(lab, PLAIN, c), &entry).unwrap();
        }
        // Drain x: only a rescheduled SYN avoids it.
        let weights = if x == 0 {
            [(0, 0), (1, 1)]
        } else {
            [(0, 1), (1, 0)]
        };
        lab.set_weights(PLAIN, &weights);
        let to = if anew { y } else { x };
        let input = lab.client_packet(PLAIN, c, SYN, b"");
        let what = if anew {
            "a new connection: rescheduled"
        } else {
            "not closing: stays"
        };
        let f = fwd(
            lab,
            format!("reuse {name}: real {x} drained, SYN on the tuple is {what} ({to})"),
            input,
            to,
        );
        lab.run(f);
        let got = conn_of(lab, PLAIN, c).expect("entry");
        assert_eq!(got.real, to, "{name}: entry's real");
        if anew {
            assert_eq!(got.state, SYN_RECV as u8, "{name}: a fresh entry");
        }
    }
    lab.set_weights(PLAIN, &[(0, 1), (1, 1)]);
}

/// -p with a 1 s timeout: a client's first connection stays busy for 1.5 s (a packet every
/// 150 ms). IPVS keeps a template while it controls a live connection, so the client's next
/// connection still goes to the template's real although Maglev says otherwise; once that
/// connection is gone and the template's timeout has passed, the client is scheduled afresh. A service without persistence gives its entries no template to refresh.
/// (Unlike IPVS, a live but idle connection does not hold its template: it is refreshed by the
/// connection's packets.)
fn template_lives_with_its_connection(lab: &mut Lab) {
    let host = 30;
    let first = client(host, 46000);
    let x = lab.maglev_real(SHORT, first);
    let y = 1 - x;
    let input = lab.client_packet(SHORT, first, SYN, b"");
    let f = fwd(lab, format!("-p 1: first connection -> real {x}"), input, x);
    lab.run(f);
    let entry = conn_of(lab, SHORT, first).expect("entry");
    assert_eq!(
        entry.persist,
        32 + 1,
        "the entry knows its template's prefix"
    );
    let plain = client(host, 46001);
    let input = lab.client_packet(PLAIN, plain, SYN, b"");
    let real = lab.maglev_real(PLAIN, plain);
    let f = fwd(lab, "no persistence: new flow".into(), input, real);
    lab.run(f);
    assert_eq!(conn_of(lab, PLAIN, plain).expect("entry").persist, 0);

    let start = std::time::Instant::now();
    let mut sent = 0;
    while start.elapsed() < std::time::Duration::from_millis(1500) {
        std::thread::sleep(std::time::Duration::from_millis(150));
        let input = lab.client_packet(SHORT, first, ACK, b"data");
        let (action, out) = lab.b.test_run(&input).unwrap();
        assert_eq!((action, out), (XDP_TX, lab.forwarded(&input, x)));
        sent += 1;
    }
    assert!(sent >= 5);
    let p = port_on(lab, SHORT, host, 46100, y);
    let input = lab.client_packet(SHORT, client(host, p), SYN, b"");
    let f = fwd(
        lab,
        format!("-p 1: after 1.5 s of a live connection, port {p} (maglev: {y}) joins {x}"),
        input,
        x,
    );
    lab.run(f);

    // Its connections gone (the sweep removes expired entries), the template expires after
    // its timeout: the client is scheduled afresh.
    for port in [46000, p] {
        lab.b
            .remove_conn(&flow_key(lab, SHORT, client(host, port)))
            .unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(1300));
    let q = port_on(lab, SHORT, host, 46200, y);
    let input = lab.client_packet(SHORT, client(host, q), SYN, b"");
    let f = fwd(
        lab,
        format!("-p 1: no connection for 1.3 s, port {q} is scheduled by maglev ({y})"),
        input,
        y,
    );
    lab.run(f);
}

/// NAT sees both sides of a close: a SYN is scheduled afresh on a TIME_WAIT entry, not on a
/// FIN_WAIT one (the real closed first; the client's side is still open).
#[test]
fn nat_reused_tuples() {
    if skip_unless_root() {
        return;
    }
    // SAFETY: unshare only changes this thread's network namespace (no route: XDP_TX).
    assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
    let nat = abi::RVS_METHOD_NAT as u8;
    let mut lab = Lab::new();
    lab.add_real(0, v4(10, 0, 2, 7), [2, 0, 0, 0, 0, 0x27], nat);
    lab.add_real(1, v4(10, 0, 2, 8), [2, 0, 0, 0, 0, 0x28], nat);
    lab.add_service(
        0,
        SocketAddr::new(v4(10, 0, 0, 5), 80),
        TCP,
        &[(0, 1), (1, 1)],
        None,
    );
    for (port, state, anew, name) in [
        (47000u16, abi::RVS_STATE_TIME_WAIT, true, "TIME_WAIT"),
        (47001, abi::RVS_STATE_FIN_WAIT, false, "FIN_WAIT"),
    ] {
        lab.set_weights(0, &[(0, 1), (1, 1)]);
        let c = client(40, port);
        let x = lab.maglev_real(0, c);
        let (action, out) = lab.b.test_run(&lab.client_packet(0, c, SYN, b"")).unwrap();
        assert_eq!((action, &out[0..6]), (XDP_TX, &lab.real(x).mac[..]));
        let mut entry = conn_of(&lab, 0, c).expect("entry");
        entry.state = state as u8;
        lab.b
            .insert_nat_conn(&flow_key(&lab, 0, c), &entry)
            .unwrap();
        let weights = if x == 0 {
            [(0, 0), (1, 1)]
        } else {
            [(0, 1), (1, 0)]
        };
        lab.set_weights(0, &weights);
        let to = if anew { 1 - x } else { x };
        let (action, out) = lab.b.test_run(&lab.client_packet(0, c, SYN, b"")).unwrap();
        assert_eq!(
            (action, &out[0..6]),
            (XDP_TX, &lab.real(to).mac[..]),
            "NAT {name}: SYN to real {to}"
        );
        assert_eq!(conn_of(&lab, 0, c).unwrap().real, to, "NAT {name}: entry");
        println!("ok  NAT {name}: real {x} drained, a SYN on the tuple goes to {to}");
    }
}

#[test]
fn sched_fixtures() {
    if skip_unless_root() {
        return;
    }
    let mut lab = setup();
    persistence_and_down_reals(&mut lab);
    reused_tuples(&mut lab);
    template_lives_with_its_connection(&mut lab);
    println!("{} fixtures passed", lab.ran.len());
}
