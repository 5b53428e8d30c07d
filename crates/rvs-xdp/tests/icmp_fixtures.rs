//! Packet fixtures for ICMP / ICMPv6 errors about a DR/TUN flow that has no connection entry on
//! this director (rvs_icmp_no_conn in bpf/rvs_lb.c): behind ECMP, the router that sends
//! "fragmentation needed" / "packet too big" about a real's reply may reach a director that
//! never saw the flow. The error must go to the real a new flow of it would get — the client's
//! live persistence template, else the Maglev slot of the same flow hash as the flow's SYN — and
//! make no connection entry or template. NAT/FULLNAT (state needed), services without an
//! available real and truncated quotes are passed, as before.
//!
//! Each forwarded error is checked three ways: byte for byte against the frame the Rust Maglev
//! table predicts, against the real the program picks for the flow's SYN right after (read
//! from the SYN's connection entry), and by the outcome counter `icmp_no_conn_maglev`.
//! Same runner as `fixtures.rs`. Needs root; skips with a message otherwise.

mod common;

use common::frames::{self, ACK, Ip4, SYN, TCP, UDP};
use common::lab::*;
use rvs_xdp::abi;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const DR: u8 = abi::RVS_METHOD_DR as u8;
const TUN: u8 = abi::RVS_METHOD_TUN as u8;
const NAT: u8 = abi::RVS_METHOD_NAT as u8;

const DR4: u32 = 0;
const DR4_UDP: u32 = 1;
const DR6: u32 = 2;
const TUN4: u32 = 3;
const TUN6: u32 = 4;
/// v4 DR, persistent 300 s per /24.
const PERSIST4: u32 = 5;
/// v6 TUN, persistent 300 s per /64.
const PERSIST6: u32 = 6;
/// v4 DR, persistent 1 s per /32 (templates that expire during the test).
const SHORT: u32 = 7;
/// v4 DR whose reals all have weight 0: no real available for a new flow.
const EMPTY: u32 = 8;
/// v4 NAT.
const NAT4: u32 = 9;

const ROUTER4: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
const ROUTER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xc, 0, 0, 0, 0, 0, 1);

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}
fn v6(net: u16, last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0xfd00, net, 0, 0, 0, 0, 0, last))
}
fn client4(host: u8, port: u16) -> SocketAddr {
    SocketAddr::new(v4(192, 168, 1, host), port)
}
fn client6(host: u16, port: u16) -> SocketAddr {
    SocketAddr::new(v6(0xc, host), port)
}

/// (index, VIP, protocol, (real, weight)s, persistence (timeout s, prefix)).
type ServiceRow = (
    u32,
    SocketAddr,
    u8,
    &'static [(u32, u32)],
    Option<(u32, u8)>,
);

fn setup() -> Lab {
    let mut lab = Lab::new();
    let reals: [(u32, IpAddr, u8); 10] = [
        (0, v4(10, 0, 0, 7), DR),
        (1, v4(10, 0, 0, 8), DR),
        (2, v4(10, 0, 0, 9), DR),
        (3, v6(0, 7), DR),
        (4, v6(0, 8), DR),
        (5, v4(10, 0, 1, 7), TUN),
        (6, v4(10, 0, 1, 8), TUN),
        (7, v6(1, 7), TUN),
        (8, v6(1, 8), TUN),
        (9, v4(10, 0, 2, 7), NAT),
    ];
    for (i, ip, method) in reals {
        lab.add_real(i, ip, [0x02, 0, 0, 0, 0, 0x40 + i as u8], method);
    }
    let three: &[(u32, u32)] = &[(0, 1), (1, 1), (2, 1)];
    let none: &[(u32, u32)] = &[(0, 0), (1, 0)];
    let two_dr6: &[(u32, u32)] = &[(3, 1), (4, 1)];
    let two_tun4: &[(u32, u32)] = &[(5, 1), (6, 1)];
    let two_tun6: &[(u32, u32)] = &[(7, 1), (8, 1)];
    let at = SocketAddr::new;
    let p24 = Some((300, 24));
    let svcs: [ServiceRow; 10] = [
        (DR4, at(v4(10, 0, 0, 3), 80), TCP, three, None),
        (DR4_UDP, at(v4(10, 0, 0, 3), 53), UDP, three, None),
        (DR6, at(v6(0, 3), 80), TCP, two_dr6, None),
        (TUN4, at(v4(10, 0, 0, 4), 80), TCP, two_tun4, None),
        (TUN6, at(v6(0, 4), 80), TCP, two_tun6, None),
        (PERSIST4, at(v4(10, 0, 0, 5), 80), TCP, three, p24),
        (PERSIST6, at(v6(0, 5), 80), TCP, two_tun6, Some((300, 64))),
        (SHORT, at(v4(10, 0, 0, 6), 80), TCP, three, Some((1, 32))),
        (EMPTY, at(v4(10, 0, 0, 10), 80), TCP, none, None),
        (NAT4, at(v4(10, 0, 0, 11), 80), TCP, &[(9, 1)], None),
    ];
    for (index, vip, proto, reals, persist) in svcs {
        lab.add_service(index, vip, proto, reals, persist);
    }
    lab
}

/// An ICMP error (`kind` = type, code) from a router on the client's path about the real's
/// reply VIP -> `client` of service `svc`, quoting the reply's first `quote` bytes (the reply
/// is a 1,400-byte segment). v4: "fragmentation needed" carries MTU 1400, v6: "packet too big"
/// 1280 (for other kinds the field is unused).
fn icmp_error(lab: &Lab, svc: u32, client: SocketAddr, kind: (u8, u8), quote: usize) -> Vec<u8> {
    let s = lab.svc(svc);
    let seg = frames::l4(s.proto, s.vip.port(), client.port(), ACK, &[0x5a; 1380]);
    match (s.vip.ip(), client.ip()) {
        (IpAddr::V4(vip), IpAddr::V4(c)) => {
            let reply = Ip4::new(vip, c, s.proto).build(&seg);
            let msg = frames::icmp4(kind.0, kind.1, [0, 0, 0x05, 0x78], &reply[..quote]);
            let outer = Ip4::new(ROUTER4, vip, 1).build(&msg);
            frames::eth(DIR_MAC, CLIENT_MAC, frames::ETH_IP4, &outer)
        }
        (IpAddr::V6(vip), IpAddr::V6(c)) => {
            let reply = frames::ip6(vip, c, s.proto, 0, 64, &seg);
            let rest = 1280u32.to_be_bytes();
            let msg = frames::icmp6(ROUTER6, vip, kind.0, kind.1, rest, &reply[..quote]);
            let outer = frames::ip6(ROUTER6, vip, 58, 0, 64, &msg);
            frames::eth(DIR_MAC, CLIENT_MAC, frames::ETH_IP6, &outer)
        }
        _ => panic!("mixed families"),
    }
}

/// The real whose (next-hop) MAC `frame` is addressed to.
fn real_by_mac(lab: &Lab, frame: &[u8]) -> Option<u32> {
    (0..lab.reals.len() as u32)
        .find(|i| lab.reals[*i as usize].is_some_and(|r| r.mac[..] == frame[..6]))
}

/// The ICMP error `input` about `client`'s flow of `svc`, which has no entry, must go to `want`:
/// byte for byte, counted `icmp_no_conn_maglev`, no entry made. Returns the real the program
/// sent it to (by MAC, from a second run: the first left nothing behind to change it).
fn no_conn(
    lab: &mut Lab,
    desc: &str,
    svc: u32,
    client: SocketAddr,
    input: &[u8],
    want: u32,
) -> u32 {
    assert!(
        conn_of(lab, svc, client).is_none(),
        "{desc}: flow already has an entry"
    );
    lab.run(Fixture {
        desc: format!("{desc}: no entry -> real {want}"),
        input: input.to_vec(),
        action: XDP_TX,
        output: lab.forwarded(input, want),
        outcome: "icmp_no_conn_maglev",
    });
    assert!(
        conn_of(lab, svc, client).is_none(),
        "{desc}: the error made an entry"
    );
    let (_, out) = lab.b.test_run(input).unwrap();
    real_by_mac(lab, &out).expect("sent to a real")
}

/// The flow's SYN, run after its error went to `by_icmp`, must get that real from the program
/// (the real its new connection entry records) and the Maglev/template real `want`.
fn syn_agrees(lab: &mut Lab, desc: &str, svc: u32, client: SocketAddr, by_icmp: u32, want: u32) {
    let syn = lab.client_packet(svc, client, SYN, b"");
    let f = fwd(
        lab,
        format!("{desc}: the flow's SYN afterwards -> real {want}"),
        syn,
        want,
    );
    lab.run(f);
    let by_syn = conn_of(lab, svc, client)
        .expect("the SYN made an entry")
        .real;
    assert_eq!(
        by_icmp, by_syn,
        "{desc}: the error's real is the one the SYN got"
    );
}

fn no_conn_then_syn(
    lab: &mut Lab,
    desc: &str,
    svc: u32,
    client: SocketAddr,
    input: &[u8],
    want: u32,
) -> u32 {
    let by_icmp = no_conn(lab, desc, svc, client, input, want);
    syn_agrees(lab, desc, svc, client, by_icmp, want);
    by_icmp
}

/// (description, service, v6 client, ICMP (type, code), bytes of the reply quoted).
type MaglevCase = (&'static str, u32, bool, (u8, u8), usize);

/// DR and TUN, v4 and v6, TCP and UDP: errors with no entry go to the flow's Maglev real.
fn maglev_cases(lab: &mut Lab) {
    let cases: [MaglevCase; 8] = [
        ("v4 TCP DR frag-needed, 28 B quoted", DR4, false, (3, 4), 28),
        (
            "v4 TCP DR frag-needed, 548 B quoted",
            DR4,
            false,
            (3, 4),
            548,
        ),
        ("v4 UDP DR frag-needed", DR4_UDP, false, (3, 4), 28),
        (
            "v6 TCP DR packet-too-big, 1232 B quoted",
            DR6,
            true,
            (2, 0),
            1232,
        ),
        ("v6 TCP DR port unreachable", DR6, true, (1, 4), 48),
        (
            "v4 TCP TUN frag-needed, 548 B quoted",
            TUN4,
            false,
            (3, 4),
            548,
        ),
        ("v4 TCP TUN time exceeded", TUN4, false, (11, 0), 28),
        (
            "v6 TCP TUN packet-too-big, 1232 B quoted",
            TUN6,
            true,
            (2, 0),
            1232,
        ),
    ];
    for (n, (desc, svc, is_v6, kind, quote)) in cases.into_iter().enumerate() {
        let mut reals = BTreeSet::new();
        for port in 50000..50006u16 {
            let port = port + 100 * n as u16;
            let c = if is_v6 {
                client6(0x10, port)
            } else {
                client4(10, port)
            };
            let want = lab.maglev_real(svc, c);
            let input = icmp_error(lab, svc, c, kind, quote);
            let desc = format!("{desc}, client port {port}");
            reals.insert(no_conn_then_syn(lab, &desc, svc, c, &input, want));
            // With the entry the SYN made, the same error follows the entry.
            let output = lab.forwarded(&input, want);
            lab.run(Fixture {
                desc: format!("{desc}: with the SYN's entry -> real {want}"),
                input,
                action: XDP_TX,
                output,
                outcome: "icmp_forwarded",
            });
        }
        assert!(
            reals.len() > 1,
            "{desc}: every flow hashed to one real, nothing proven"
        );
    }
}

/// The error counts one packet (no connection) for its service and real.
fn counters(lab: &mut Lab) {
    let c = client4(11, 51000);
    let want = lab.maglev_real(DR4, c);
    let (svc0, real0) = (
        lab.b.counters(DR4).unwrap(),
        lab.b.counters(abi::RVS_MAX_SERVICES as u32 + want).unwrap(),
    );
    let input = icmp_error(lab, DR4, c, (3, 4), 28);
    let output = lab.forwarded(&input, want);
    lab.run(Fixture {
        desc: "v4 DR frag-needed, no entry: counted for the service and the real".into(),
        input: input.clone(),
        action: XDP_TX,
        output,
        outcome: "icmp_no_conn_maglev",
    });
    let (svc1, real1) = (
        lab.b.counters(DR4).unwrap(),
        lab.b.counters(abi::RVS_MAX_SERVICES as u32 + want).unwrap(),
    );
    let len = (input.len() - 14) as u64;
    for (what, a, b) in [("service", svc0, svc1), ("real", real0, real1)] {
        assert_eq!(
            (b.packets - a.packets, b.bytes - a.bytes),
            (1, len),
            "{what} in"
        );
        assert_eq!(
            b.conns, a.conns,
            "{what}: an ICMP error is not a connection"
        );
    }
}

/// The client's persistence template for `svc` (its network under `prefix`): (real, last use).
fn template(lab: &Lab, svc: u32, client: SocketAddr, prefix: u32) -> Option<(u32, u64)> {
    let net = match client.ip() {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & (!0u32 << (32 - prefix)))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & (!0u128 << (128 - prefix)))),
    };
    let addr = abi::addr_of(net).0;
    lab.b
        .persist_templates()
        .unwrap()
        .into_iter()
        .find(|(k, _)| k.svc == svc && k.addr == addr)
        .map(|(_, p)| (p.real, p.last_ns))
}

/// A port of `client` (from `from`) whose flow to `svc` Maglev sends elsewhere than `real`.
fn port_off(lab: &Lab, svc: u32, client: SocketAddr, from: u16, real: u32) -> SocketAddr {
    (from..from + 500)
        .map(|p| SocketAddr::new(client.ip(), p))
        .find(|c| lab.maglev_real(svc, *c) != real)
        .expect("a port hashing to another real")
}

/// Persistence: a client with a live template has its errors sent to the template's real (as
/// its next SYN would be), without refreshing or making a template; a template that expired or
/// names a down real is not followed, as for a SYN.
fn persistence_cases(lab: &mut Lab) {
    for (svc, first, prefix, kind, quote) in [
        (PERSIST4, client4(20, 52000), 24, (3, 4), 28),
        (PERSIST6, client6(0x20, 52000), 64, (2, 0), 1000),
    ] {
        let name = if svc == PERSIST4 {
            "-p v4 DR"
        } else {
            "-p v6 TUN"
        };
        let t = lab.maglev_real(svc, first);
        let syn = lab.client_packet(svc, first, SYN, b"");
        let f = fwd(
            lab,
            format!("{name}: first connection makes the template -> real {t}"),
            syn,
            t,
        );
        lab.run(f);
        let before = template(lab, svc, first, prefix).expect("template made");
        assert_eq!(before.0, t);
        // Same client, a port Maglev puts elsewhere: the template wins. (The pause lets the
        // coarse clock move, so a refreshed template would show.)
        std::thread::sleep(std::time::Duration::from_millis(50));
        let c = port_off(lab, svc, first, 52001, t);
        let input = icmp_error(lab, svc, c, kind, quote);
        let m = lab.maglev_real(svc, c);
        let desc = format!(
            "{name}, live template, error about port {} (maglev: {m})",
            c.port()
        );
        let by_icmp = no_conn(lab, &desc, svc, c, &input, t);
        assert_eq!(
            template(lab, svc, first, prefix),
            Some(before),
            "{desc}: template touched"
        );
        syn_agrees(lab, &desc, svc, c, by_icmp, t);
    }

    // A client of another /24, without a template: Maglev, and no template made.
    let c = SocketAddr::new(v4(172, 16, 0, 30), 52100);
    let want = lab.maglev_real(PERSIST4, c);
    let input = icmp_error(lab, PERSIST4, c, (3, 4), 28);
    let desc = "-p v4 DR, client without a template, frag-needed";
    let by_icmp = no_conn(lab, desc, PERSIST4, c, &input, want);
    assert_eq!(
        template(lab, PERSIST4, c, 24),
        None,
        "{desc}: the error made a template"
    );
    syn_agrees(lab, desc, PERSIST4, c, by_icmp, want);
    assert_eq!(template(lab, PERSIST4, c, 24).map(|t| t.0), Some(want));

    // The template's real is down (health or disabled; out of the Maglev table): not followed.
    let first = SocketAddr::new(v4(172, 16, 1, 40), 52200);
    let t = lab.maglev_real(PERSIST4, first);
    let syn = lab.client_packet(PERSIST4, first, SYN, b"");
    let f = fwd(
        lab,
        format!("-p v4 DR: template of 172.16.1.40 -> real {t}"),
        syn,
        t,
    );
    lab.run(f);
    let up: Vec<(u32, u32)> = (0..3).filter(|r| *r != t).map(|r| (r, 1)).collect();
    lab.set_weights(PERSIST4, &up);
    lab.set_real_down(t, true);
    let c = SocketAddr::new(v4(172, 16, 1, 40), 52201);
    let want = lab.maglev_real(PERSIST4, c);
    assert_ne!(want, t);
    let input = icmp_error(lab, PERSIST4, c, (3, 4), 28);
    let desc = format!("-p v4 DR, template's real {t} down");
    no_conn_then_syn(lab, &desc, PERSIST4, c, &input, want);
    lab.set_real_down(t, false);
    lab.set_weights(PERSIST4, &[(0, 1), (1, 1), (2, 1)]);

    // An expired template (1 s) is not followed, nor refreshed by the error.
    let first = client4(50, 52300);
    let t = lab.maglev_real(SHORT, first);
    let syn = lab.client_packet(SHORT, first, SYN, b"");
    let f = fwd(
        lab,
        format!("-p 1 v4 DR: template of 192.168.1.50 -> real {t}"),
        syn,
        t,
    );
    lab.run(f);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let c = port_off(lab, SHORT, first, 52301, t);
    let want = lab.maglev_real(SHORT, c);
    let stale = template(lab, SHORT, c, 32).expect("template kept");
    let input = icmp_error(lab, SHORT, c, (3, 4), 28);
    let desc = "-p 1 v4 DR, expired template";
    let by_icmp = no_conn(lab, desc, SHORT, c, &input, want);
    assert_eq!(
        template(lab, SHORT, c, 32),
        Some(stale),
        "{desc}: template touched"
    );
    syn_agrees(lab, desc, SHORT, c, by_icmp, want);
    assert_eq!(
        template(lab, SHORT, c, 32).map(|t| t.0),
        Some(want),
        "{desc}: SYN rebinds"
    );
}

/// A flow with an entry follows it, even where Maglev would now pick another real.
fn entry_first(lab: &mut Lab) {
    let c = client4(60, 53000);
    let x = lab.maglev_real(DR4, c);
    let syn = lab.client_packet(DR4, c, SYN, b"");
    let f = fwd(lab, format!("v4 DR: flow opened on real {x}"), syn, x);
    lab.run(f);
    let others: Vec<(u32, u32)> = (0..3).filter(|r| *r != x).map(|r| (r, 1)).collect();
    lab.set_weights(DR4, &others);
    assert_ne!(lab.maglev_real(DR4, c), x);
    let input = icmp_error(lab, DR4, c, (3, 4), 28);
    lab.run(Fixture {
        desc: format!("v4 DR frag-needed, entry on real {x} drained since: follows the entry"),
        output: lab.forwarded(&input, x),
        input,
        action: XDP_TX,
        outcome: "icmp_forwarded",
    });
    lab.set_weights(DR4, &[(0, 1), (1, 1), (2, 1)]);
}

/// Errors that are not sent: no real available, NAT (needs the flow's state), truncated or
/// non-TCP/UDP quotes. Passed untouched, each counted.
fn passed(lab: &mut Lab) {
    let c = client4(70, 54000);
    let cases: [(&str, Vec<u8>, &'static str); 7] = [
        (
            "v4 DR service with no available real (all weight 0): passed",
            icmp_error(lab, EMPTY, c, (3, 4), 28),
            "icmp_untracked",
        ),
        (
            "v4 NAT service, no entry: passed (NAT needs the flow's state)",
            icmp_error(lab, NAT4, c, (3, 4), 28),
            "icmp_untracked",
        ),
        (
            "v4 DR frag-needed, quote cut inside the ports: malformed, passed",
            icmp_error(lab, DR4, c, (3, 4), 22),
            "malformed",
        ),
        (
            "v4 DR frag-needed, quote cut inside the IP header: malformed, passed",
            icmp_error(lab, DR4, c, (3, 4), 12),
            "malformed",
        ),
        (
            "v6 DR packet-too-big, quote cut inside the ports: malformed, passed",
            icmp_error(lab, DR6, client6(0x70, 54000), (2, 0), 42),
            "malformed",
        ),
        (
            "v6 TUN packet-too-big, quote cut inside the IPv6 header: malformed, passed",
            icmp_error(lab, TUN6, client6(0x70, 54000), (2, 0), 30),
            "malformed",
        ),
        (
            "v4 frag-needed quoting an ICMP echo reply from a VIP: not ours, passed",
            quoting_icmp(),
            "not_vip",
        ),
    ];
    for (desc, input, outcome) in cases {
        lab.run(Fixture {
            desc: desc.into(),
            output: input.clone(),
            input,
            action: XDP_PASS,
            outcome,
        });
    }
    let syn = lab.client_packet(EMPTY, c, SYN, b"");
    lab.run(Fixture {
        desc: "v4 DR service with no available real: a SYN is dropped".into(),
        output: syn.clone(),
        input: syn,
        action: XDP_DROP,
        outcome: "no_real",
    });
}

/// A frag-needed about an ICMP echo reply the VIP sent.
fn quoting_icmp() -> Vec<u8> {
    let vip = Ipv4Addr::new(10, 0, 0, 3);
    let echo = frames::icmp4(0, 0, [0, 1, 0, 1], &[0u8; 32]);
    let reply = Ip4::new(vip, Ipv4Addr::new(192, 168, 1, 70), 1).build(&echo);
    let msg = frames::icmp4(3, 4, [0, 0, 0x05, 0x78], &reply[..28]);
    let outer = Ip4::new(ROUTER4, vip, 1).build(&msg);
    frames::eth(DIR_MAC, CLIENT_MAC, frames::ETH_IP4, &outer)
}

#[test]
fn icmp_no_conn_fixtures() {
    if skip_unless_root() {
        return;
    }
    let mut lab = setup();
    maglev_cases(&mut lab);
    counters(&mut lab);
    persistence_cases(&mut lab);
    entry_first(&mut lab);
    passed(&mut lab);
    println!("{} fixtures passed", lab.ran.len());
    assert!(lab.ran.len() >= 120, "only {} fixtures", lab.ran.len());
}
