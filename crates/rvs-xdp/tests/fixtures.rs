//! Table-driven packet fixtures through BPF_PROG_TEST_RUN: each has a description, an input
//! frame, the expected XDP action, the expected output frame byte for byte, and the one outcome
//! counter it must move. Expected reals come from the Rust Maglev table and flow hash, so every
//! forwarded new flow also proves the C flow hash equals `rvs_xdp::flow_hash`.
//!
//! Needs root; skips with a message otherwise.

mod common;

use common::frames::{self, ACK, FIN, Ip4, RST, SYN, TCP, UDP};
use common::lab::*;
use rvs_xdp::abi;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const DR: u8 = abi::RVS_METHOD_DR as u8;
const TUN: u8 = abi::RVS_METHOD_TUN as u8;

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}
fn v6(last: u16, net: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0xfd00, net, 0, 0, 0, 0, 0, last))
}
fn mac(x: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, x]
}
fn sa(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}
fn client4(port: u16) -> SocketAddr {
    sa(v4(192, 168, 1, 10), port)
}
fn client6(port: u16) -> SocketAddr {
    sa(
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0xc, 0, 0, 0, 0, 0, 0x10)),
        port,
    )
}

fn setup() -> Lab {
    let mut lab = Lab::new();
    let reals: [(u32, IpAddr, u8, u8); 12] = [
        (0, v4(10, 0, 0, 7), 0x07, DR),
        (1, v4(10, 0, 0, 8), 0x08, DR),
        (2, v6(7, 0), 0x37, DR),
        (3, v6(8, 0), 0x38, DR),
        (4, v4(10, 0, 1, 7), 0x17, TUN),
        (5, v4(10, 0, 1, 8), 0x18, TUN),
        (6, v6(7, 1), 0x27, TUN),
        (7, v6(8, 1), 0x28, TUN),
        (8, v4(10, 0, 0, 11), 0x0b, DR),
        (9, v4(10, 0, 0, 12), 0x0c, DR),
        (10, v6(9, 1), 0x29, TUN),
        (11, v4(10, 0, 1, 9), 0x19, TUN),
    ];
    for (i, ip, m, method) in reals {
        lab.add_real(i, ip, mac(m), method);
    }
    let vip4 = v4(10, 0, 0, 3);
    let vip6 = v6(3, 0);
    lab.add_service(0, sa(vip4, 80), TCP, &[(0, 1), (1, 1)], None);
    lab.add_service(1, sa(vip4, 53), UDP, &[(0, 1), (1, 1)], None);
    lab.add_service(2, sa(vip6, 80), TCP, &[(2, 1), (3, 1)], None);
    lab.add_service(3, sa(vip6, 53), UDP, &[(2, 1), (3, 1)], None);
    lab.add_service(4, sa(v4(10, 0, 0, 4), 80), TCP, &[(4, 1), (5, 1)], None);
    lab.add_service(5, sa(v4(10, 0, 0, 4), 53), UDP, &[(4, 1), (5, 1)], None);
    lab.add_service(6, sa(v6(4, 0), 80), TCP, &[(6, 1), (7, 1)], None);
    lab.add_service(7, sa(v6(4, 0), 53), UDP, &[(6, 1), (7, 1)], None);
    lab.add_service(
        8,
        sa(v4(10, 0, 0, 5), 80),
        TCP,
        &[(0, 1), (1, 1)],
        Some((300, 24)),
    );
    lab.add_service(9, sa(v4(10, 0, 0, 6), 80), TCP, &[(0, 0), (1, 0)], None);
    lab.add_service(10, sa(v4(10, 0, 0, 9), 80), TCP, &[(8, 1), (9, 1)], None);
    lab.add_service(11, sa(v4(10, 0, 0, 10), 80), TCP, &[(10, 1)], None);
    lab.add_service(12, sa(v6(0x10, 0), 80), TCP, &[(11, 1)], None);
    lab.add_service(13, sa(v4(10, 0, 0, 13), 80), TCP, &[(0, 1), (1, 1)], None);
    lab
}

/// A fixture for a packet the program must leave alone with `action`.
fn untouched(desc: &str, input: Vec<u8>, action: u32, outcome: &'static str) -> Fixture {
    Fixture {
        desc: desc.to_string(),
        output: input.clone(),
        input,
        action,
        outcome,
    }
}

fn flow_name(svc: u32) -> &'static str {
    [
        "v4 TCP DR",
        "v4 UDP DR",
        "v6 TCP DR",
        "v6 UDP DR",
        "v4 TCP TUN",
        "v4 UDP TUN",
        "v6 TCP TUN",
        "v6 UDP TUN",
    ][svc as usize]
}

fn client_for(svc: u32, port: u16) -> SocketAddr {
    if matches!(svc, 2 | 3 | 6 | 7) {
        client6(port)
    } else {
        client4(port)
    }
}

/// New flows on services 0..8 (every family × protocol × method), then the same flows again.
fn new_and_established(lab: &mut Lab) {
    for svc in 0..8u32 {
        for port in [40000u16, 40001, 40002, 40003] {
            let c = client_for(svc, port);
            let real = lab.maglev_real(svc, c);
            let input = lab.client_packet(svc, c, SYN, b"");
            let f = fwd(
                lab,
                format!(
                    "{}: new flow from port {port} ({}no entry) -> maglev real {real}",
                    flow_name(svc),
                    if svc % 2 == 0 { "SYN, " } else { "" }
                ),
                input,
                real,
            );
            lab.run(f);
        }
    }
    for svc in 0..8u32 {
        let c = client_for(svc, 40000);
        let real = lab.maglev_real(svc, c);
        let input = lab.client_packet(svc, c, ACK, b"GET / HTTP/1.1\r\n\r\n");
        let f = fwd(
            lab,
            format!(
                "{}: established flow with data stays on real {real}",
                flow_name(svc)
            ),
            input,
            real,
        );
        lab.run(f);
    }
    // A repeated SYN with an existing entry follows the entry.
    let c = client4(40001);
    let real = lab.maglev_real(0, c);
    let input = lab.client_packet(0, c, SYN, b"");
    let f = fwd(
        lab,
        "v4 TCP DR: SYN with an existing entry follows the entry".into(),
        input,
        real,
    );
    lab.run(f);
}

/// Flows stay on their real when reals are added to or drained from the table; a removed real's
/// flows are rescheduled.
fn table_changes(lab: &mut Lab) {
    let ports: Vec<u16> = (41000..41006).collect();
    let mut first = Vec::new();
    for &p in &ports {
        let real = lab.maglev_real(13, client4(p));
        first.push(real);
        let input = lab.client_packet(13, client4(p), SYN, b"");
        let f = fwd(
            lab,
            format!("table change: flow {p} starts on real {real}"),
            input,
            real,
        );
        lab.run(f);
    }
    lab.set_weights(13, &[(0, 0), (1, 1), (9, 3)]);
    let mut moved_by_table = 0;
    for (&p, &real) in ports.iter().zip(&first) {
        if lab.maglev_real(13, client4(p)) != real {
            moved_by_table += 1;
        }
        let input = lab.client_packet(13, client4(p), ACK, b"x");
        let f = fwd(
            lab,
            format!("table change (real 9 added, real 0 drained): flow {p} stays on real {real}"),
            input,
            real,
        );
        lab.run(f);
    }
    assert!(
        moved_by_table > 0,
        "the new table must move some of these flows, else the test proves nothing"
    );
    for p in 41100..41104u16 {
        let real = lab.maglev_real(13, client4(p));
        assert_ne!(real, 0, "drained real 0 must not be in the table");
        let input = lab.client_packet(13, client4(p), SYN, b"");
        let f = fwd(
            lab,
            format!("table change: new flow {p} uses the new table (real {real})"),
            input,
            real,
        );
        lab.run(f);
    }
    // Remove real 9 entirely: its flows are rescheduled by the current table.
    let on9 = (41100..41200u16)
        .find(|p| lab.maglev_real(13, client4(*p)) == 9)
        .expect("a flow on real 9");
    let input = lab.client_packet(13, client4(on9), SYN, b"");
    let f = fwd(
        lab,
        format!("table change: flow {on9} starts on real 9"),
        input,
        9,
    );
    lab.run(f);
    lab.set_weights(13, &[(0, 0), (1, 1)]);
    lab.remove_real(9);
    let input = lab.client_packet(13, client4(on9), ACK, b"");
    let f = fwd(
        lab,
        format!("real 9 removed: flow {on9} rescheduled to real 1"),
        input,
        1,
    );
    lab.run(f);
    lab.add_real(9, v4(10, 0, 0, 12), mac(0x0c), DR);
}

/// Weight 0 drains: existing flows continue, new ones avoid the real; an overloaded real is
/// left out of the table the same way; no usable real drops.
fn drain_and_overload(lab: &mut Lab) {
    let on8 = (42000..42100u16)
        .find(|p| lab.maglev_real(10, client4(*p)) == 8)
        .expect("flow on 8");
    let input = lab.client_packet(10, client4(on8), SYN, b"");
    let f = fwd(lab, format!("drain: flow {on8} starts on real 8"), input, 8);
    lab.run(f);
    lab.set_weights(10, &[(8, 0), (9, 1)]);
    let input = lab.client_packet(10, client4(on8), ACK, b"more");
    let f = fwd(
        lab,
        format!("drain: real 8 at weight 0, flow {on8} keeps going to it"),
        input,
        8,
    );
    lab.run(f);
    for p in [42200u16, 42201, 42202] {
        let input = lab.client_packet(10, client4(p), SYN, b"");
        let f = fwd(
            lab,
            format!("drain: new flow {p} avoids drained real 8"),
            input,
            9,
        );
        lab.run(f);
    }
    // Real 9 over its upper threshold: userspace leaves it out of the table; real 8 is back.
    lab.set_weights(10, &[(8, 1), (9, 0)]);
    let input = lab.client_packet(10, client4(42300), SYN, b"");
    let f = fwd(
        lab,
        "overload: new flow avoids overloaded real 9".into(),
        input,
        8,
    );
    lab.run(f);
    let input = lab.client_packet(10, client4(42200), ACK, b"");
    let f = fwd(
        lab,
        "overload: existing flow stays on overloaded real 9".into(),
        input,
        9,
    );
    lab.run(f);
    let input = lab.client_packet(9, client4(42400), SYN, b"");
    lab.run(untouched(
        "no real: service with only weight-0 reals drops a new flow",
        input,
        XDP_DROP,
        "no_real",
    ));
}

/// -p: a client network sticks to one real across ports.
fn persistence(lab: &mut Lab) {
    let c0 = client4(43000);
    let real = lab.maglev_real(8, c0);
    let input = lab.client_packet(8, c0, SYN, b"");
    let f = fwd(
        lab,
        format!("persistence: first connection of 192.168.1.10 -> real {real}"),
        input,
        real,
    );
    lab.run(f);
    let other = 1 - real;
    let p = (43001..43200u16)
        .find(|p| lab.maglev_real(8, client4(*p)) == other)
        .expect("port hashing elsewhere");
    let input = lab.client_packet(8, client4(p), SYN, b"");
    let f = fwd(
        lab,
        format!("persistence: same client, port {p} (maglev says {other}) stays on {real}"),
        input,
        real,
    );
    lab.run(f);
    let neighbour = sa(v4(192, 168, 1, 99), p);
    let input = lab.client_packet(8, neighbour, SYN, b"");
    let f = fwd(
        lab,
        "persistence: another client of the same /24 joins the template".into(),
        input,
        real,
    );
    lab.run(f);
    let far = (1..200u8)
        .map(|h| sa(v4(172, 16, h, 1), 43000))
        .find(|c| lab.maglev_real(8, *c) == other)
        .expect("client elsewhere");
    let input = lab.client_packet(8, far, SYN, b"");
    let f = fwd(
        lab,
        format!("persistence: a client of another /24 is scheduled by maglev ({other})"),
        input,
        other,
    );
    lab.run(f);
}

fn not_ours(lab: &mut Lab) {
    let p = frames::packet(
        DIR_MAC,
        CLIENT_MAC,
        v4(192, 168, 1, 10),
        v4(10, 0, 0, 99),
        TCP,
        1234,
        80,
        SYN,
        b"",
    );
    lab.run(untouched(
        "not a VIP (v4): passed to the kernel",
        p,
        XDP_PASS,
        "not_vip",
    ));
    let p = frames::packet(
        DIR_MAC,
        CLIENT_MAC,
        client6(1).ip(),
        v6(0x99, 0),
        TCP,
        1234,
        80,
        SYN,
        b"",
    );
    lab.run(untouched(
        "not a VIP (v6): passed to the kernel",
        p,
        XDP_PASS,
        "not_vip",
    ));
    let p = frames::packet(
        DIR_MAC,
        CLIENT_MAC,
        v4(192, 168, 1, 10),
        v4(10, 0, 0, 3),
        TCP,
        1234,
        8080,
        SYN,
        b"",
    );
    lab.run(untouched(
        "VIP, unknown port: passed",
        p,
        XDP_PASS,
        "not_vip",
    ));
    let p = frames::packet(
        DIR_MAC,
        CLIENT_MAC,
        v4(192, 168, 1, 10),
        v4(10, 0, 0, 3),
        UDP,
        1234,
        80,
        0,
        b"x",
    );
    lab.run(untouched(
        "VIP, TCP port probed with UDP: passed",
        p,
        XDP_PASS,
        "not_vip",
    ));
    let p = frames::packet(
        DIR_MAC,
        CLIENT_MAC,
        client6(1).ip(),
        v6(3, 0),
        TCP,
        1234,
        53,
        SYN,
        b"",
    );
    lab.run(untouched(
        "v6 VIP, UDP port probed with TCP: passed",
        p,
        XDP_PASS,
        "not_vip",
    ));
    let arp = frames::eth([0xff; 6], CLIENT_MAC, 0x0806, &[0u8; 28]);
    lab.run(untouched("ARP: not IP, passed", arp, XDP_PASS, "not_ip"));
    let echo = frames::icmp4(8, 0, [0, 1, 0, 1], b"ping");
    let p = frames::eth(
        DIR_MAC,
        CLIENT_MAC,
        frames::ETH_IP4,
        &Ip4::new(
            Ipv4Addr::new(192, 168, 1, 10),
            Ipv4Addr::new(10, 0, 0, 3),
            1,
        )
        .build(&echo),
    );
    lab.run(untouched(
        "ICMP echo to a VIP: passed (the director answers)",
        p,
        XDP_PASS,
        "not_vip",
    ));
}

fn malformed(lab: &mut Lab) {
    let good = lab.client_packet(0, client4(44000), SYN, b"");
    // (A frame shorter than 14 bytes is refused by BPF_PROG_TEST_RUN itself.)
    lab.run(untouched(
        "IPv4 ethertype with no IP header at all",
        good[..14].to_vec(),
        XDP_PASS,
        "malformed",
    ));
    lab.run(untouched(
        "truncated IPv4 header",
        good[..14 + 12].to_vec(),
        XDP_PASS,
        "malformed",
    ));
    lab.run(untouched(
        "IPv4 total length beyond the frame",
        good[..good.len() - 4].to_vec(),
        XDP_PASS,
        "malformed",
    ));
    let mut bad = good.clone();
    bad[14] = 0x44;
    lab.run(untouched(
        "IPv4 header length < 5 words",
        bad,
        XDP_PASS,
        "malformed",
    ));
    let ip = Ip4::new(
        Ipv4Addr::new(192, 168, 1, 10),
        Ipv4Addr::new(10, 0, 0, 3),
        TCP,
    )
    .build(&frames::tcp(44000, 80, SYN, b"")[..12]);
    lab.run(untouched(
        "truncated TCP header to a VIP",
        frames::eth(DIR_MAC, CLIENT_MAC, frames::ETH_IP4, &ip),
        XDP_PASS,
        "malformed",
    ));
    let mut seg = frames::tcp(44000, 80, SYN, b"");
    seg[12] = 4 << 4;
    let ip = Ip4::new(
        Ipv4Addr::new(192, 168, 1, 10),
        Ipv4Addr::new(10, 0, 0, 3),
        TCP,
    )
    .build(&seg);
    lab.run(untouched(
        "TCP data offset < 5",
        frames::eth(DIR_MAC, CLIENT_MAC, frames::ETH_IP4, &ip),
        XDP_PASS,
        "malformed",
    ));
    let good6 = lab.client_packet(3, client6(44000), 0, b"q");
    lab.run(untouched(
        "truncated IPv6 header",
        good6[..14 + 30].to_vec(),
        XDP_PASS,
        "malformed",
    ));
    let ip = frames::ip6(
        Ipv6Addr::new(0xfd00, 0xc, 0, 0, 0, 0, 0, 0x10),
        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 3),
        UDP,
        0,
        64,
        &[0u8; 6],
    );
    lab.run(untouched(
        "truncated UDP header (v6)",
        frames::eth(DIR_MAC, CLIENT_MAC, frames::ETH_IP6, &ip),
        XDP_PASS,
        "malformed",
    ));
    udp_lengths(lab);
}

/// A UDP length field below the header's 8 bytes or beyond the IP payload is malformed (v4
/// and v6 DR services); one below the IP payload (bytes after the datagram) is forwarded.
fn udp_lengths(lab: &mut Lab) {
    for (svc, v6, family) in [(1, false, "v4"), (3, true, "v6")] {
        let c = if v6 { client6(44100) } else { client4(44100) };
        let good = lab.client_packet(svc, c, 0, b"datagram");
        let at = 14 + if v6 { 40 } else { 20 } + 4;
        let sent = (good.len() - at + 4) as u16;
        for (len, why) in [
            (0, "0"),
            (7, "below 8"),
            (sent + 1, "beyond the IP payload"),
        ] {
            let mut bad = good.clone();
            bad[at..at + 2].copy_from_slice(&len.to_be_bytes());
            lab.run(untouched(
                &format!("{family} UDP length {len} ({why}) to a DR VIP"),
                bad,
                XDP_PASS,
                "malformed",
            ));
        }
        let mut short = good.clone();
        short[at..at + 2].copy_from_slice(&(sent - 1).to_be_bytes());
        let real = lab.maglev_real(svc, c);
        let desc = format!("{family} UDP length 1 below the IP payload: forwarded (DR)");
        let f = fwd(lab, desc, short, real);
        lab.run(f);
    }
}

fn options_and_fragments(lab: &mut Lab) {
    let (src, vip) = (Ipv4Addr::new(192, 168, 1, 10), Ipv4Addr::new(10, 0, 0, 3));
    let c = client4(45000);
    let mut ip = Ip4::new(src, vip, TCP);
    ip.options = vec![1, 1, 1, 0]; // NOP NOP NOP EOL
    let input = frames::eth(
        DIR_MAC,
        CLIENT_MAC,
        frames::ETH_IP4,
        &ip.build(&frames::tcp(45000, 80, SYN, b"")),
    );
    let real = lab.maglev_real(0, c);
    let f = fwd(
        lab,
        "IPv4 options (DR): ports found past the options, forwarded untouched".into(),
        input,
        real,
    );
    lab.run(f);
    let mut ip = Ip4::new(src, Ipv4Addr::new(10, 0, 0, 4), TCP);
    ip.options = vec![0x94, 0x04, 0, 0]; // router alert
    let input = frames::eth(
        DIR_MAC,
        CLIENT_MAC,
        frames::ETH_IP4,
        &ip.build(&frames::tcp(45000, 80, SYN, b"")),
    );
    let real = lab.maglev_real(4, c);
    let f = fwd(
        lab,
        "IPv4 options (TUN): inner packet with options encapsulated whole".into(),
        input,
        real,
    );
    lab.run(f);
    let mut ip = Ip4::new(src, vip, UDP);
    ip.frag = 0x2000;
    let p = frames::eth(
        DIR_MAC,
        CLIENT_MAC,
        frames::ETH_IP4,
        &ip.build(&frames::udp(45000, 53, &[0u8; 32])),
    );
    lab.run(untouched(
        "IPv4 first fragment (MF) to a VIP: passed",
        p,
        XDP_PASS,
        "fragment",
    ));
    let mut ip = Ip4::new(src, vip, UDP);
    ip.frag = 0x0004;
    let p = frames::eth(DIR_MAC, CLIENT_MAC, frames::ETH_IP4, &ip.build(&[0u8; 24]));
    lab.run(untouched(
        "IPv4 later fragment (offset 32) to a VIP: passed",
        p,
        XDP_PASS,
        "fragment",
    ));
    let mut fh = vec![UDP, 0, 0, 1, 0, 0, 0, 7];
    fh.extend_from_slice(&frames::udp(45000, 53, &[0u8; 16]));
    let ip = frames::ip6(
        Ipv6Addr::new(0xfd00, 0xc, 0, 0, 0, 0, 0, 0x10),
        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 3),
        44,
        0,
        64,
        &fh,
    );
    lab.run(untouched(
        "IPv6 fragment header to a VIP: passed",
        frames::eth(DIR_MAC, CLIENT_MAC, frames::ETH_IP6, &ip),
        XDP_PASS,
        "fragment",
    ));
}

/// ICMP errors about a tracked flow go to the flow's real; ones about no service are passed.
fn icmp_errors(lab: &mut Lab) {
    let router = Ipv4Addr::new(192, 168, 1, 1);
    let vip = Ipv4Addr::new(10, 0, 0, 3);
    let c = client4(40000); // tracked on service 0 by new_and_established
    let real = lab.maglev_real(0, c);
    // The quoted packet is the real's reply VIP:80 -> client:40000.
    let quoted =
        Ip4::new(vip, Ipv4Addr::new(192, 168, 1, 10), TCP).build(&frames::tcp(80, 40000, ACK, b""));
    let msg = frames::icmp4(3, 4, [0, 0, 0x05, 0x78], &quoted[..28]);
    let input = frames::eth(
        DIR_MAC,
        CLIENT_MAC,
        frames::ETH_IP4,
        &Ip4::new(router, vip, 1).build(&msg),
    );
    let output = lab.forwarded(&input, real);
    lab.run(Fixture {
        desc: "ICMP frag-needed about a tracked v4 DR flow -> its real".into(),
        input,
        action: XDP_TX,
        output,
        outcome: "icmp_forwarded",
    });
    // About a flow of no service (ICMP errors about a service's flow with no entry here go by
    // Maglev: icmp_fixtures.rs).
    let no_svc = Ipv4Addr::new(10, 0, 0, 99);
    let quoted = Ip4::new(no_svc, Ipv4Addr::new(192, 168, 1, 10), TCP)
        .build(&frames::tcp(80, 49999, ACK, b""));
    let msg = frames::icmp4(3, 1, [0; 4], &quoted[..28]);
    let input = frames::eth(
        DIR_MAC,
        CLIENT_MAC,
        frames::ETH_IP4,
        &Ip4::new(router, no_svc, 1).build(&msg),
    );
    lab.run(untouched(
        "ICMP error about an untracked flow of no service: passed",
        input,
        XDP_PASS,
        "icmp_untracked",
    ));
    // Tracked TUN flow (service 4).
    let vip4 = Ipv4Addr::new(10, 0, 0, 4);
    let real = lab.maglev_real(4, c);
    let quoted = Ip4::new(vip4, Ipv4Addr::new(192, 168, 1, 10), TCP)
        .build(&frames::tcp(80, 40000, ACK, b""));
    let msg = frames::icmp4(11, 0, [0; 4], &quoted[..28]);
    let input = frames::eth(
        DIR_MAC,
        CLIENT_MAC,
        frames::ETH_IP4,
        &Ip4::new(router, vip4, 1).build(&msg),
    );
    let output = lab.forwarded(&input, real);
    lab.run(Fixture {
        desc: "ICMP time-exceeded about a tracked v4 TUN flow -> encapsulated to its real".into(),
        input,
        action: XDP_TX,
        output,
        outcome: "icmp_forwarded",
    });
    // ICMPv6 packet too big about a tracked v6 flow (service 2).
    let (r6, vip6, cl6) = (
        Ipv6Addr::new(0xfd00, 0xc, 0, 0, 0, 0, 0, 1),
        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 3),
        Ipv6Addr::new(0xfd00, 0xc, 0, 0, 0, 0, 0, 0x10),
    );
    let real = lab.maglev_real(2, client6(40000));
    let quoted = frames::ip6(vip6, cl6, TCP, 0, 64, &frames::tcp(80, 40000, ACK, b""));
    let msg = frames::icmp6(r6, vip6, 2, 0, 1280u32.to_be_bytes(), &quoted);
    let input = frames::eth(
        DIR_MAC,
        CLIENT_MAC,
        frames::ETH_IP6,
        &frames::ip6(r6, vip6, 58, 0, 64, &msg),
    );
    let output = lab.forwarded(&input, real);
    lab.run(Fixture {
        desc: "ICMPv6 packet-too-big about a tracked v6 DR flow -> its real".into(),
        input,
        action: XDP_TX,
        output,
        outcome: "icmp_forwarded",
    });
    let no_svc6 = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x99);
    let quoted = frames::ip6(no_svc6, cl6, UDP, 0, 64, &frames::udp(53, 49999, b""));
    let msg = frames::icmp6(r6, no_svc6, 1, 4, [0; 4], &quoted);
    let input = frames::eth(
        DIR_MAC,
        CLIENT_MAC,
        frames::ETH_IP6,
        &frames::ip6(r6, no_svc6, 58, 0, 64, &msg),
    );
    lab.run(untouched(
        "ICMPv6 error about an untracked flow of no service: passed",
        input,
        XDP_PASS,
        "icmp_untracked",
    ));
}

/// The expected ICMP "fragmentation needed" for `input` (v4).
fn frag_needed(input: &[u8], mtu: u16) -> Vec<u8> {
    let ip = &input[14..];
    let (src, dst) = (
        Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
    );
    let mut rest = [0u8; 4];
    rest[2..].copy_from_slice(&mtu.to_be_bytes());
    let msg = frames::icmp4(3, 4, rest, &ip[..abi::RVS_ICMP4_QUOTE as usize]);
    let mut reply = Ip4::new(dst, src, 1);
    reply.frag = 0;
    reply.id = 0;
    frames::eth(CLIENT_MAC, DIR_MAC, frames::ETH_IP4, &reply.build(&msg))
}

fn packet_too_big(input: &[u8], mtu: u32) -> Vec<u8> {
    let ip = &input[14..];
    let a = |o: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&ip[o..o + 16]).unwrap());
    let (src, dst) = (a(8), a(24));
    let msg = frames::icmp6(
        dst,
        src,
        2,
        0,
        mtu.to_be_bytes(),
        &ip[..abi::RVS_ICMP6_QUOTE as usize],
    );
    frames::eth(
        CLIENT_MAC,
        DIR_MAC,
        frames::ETH_IP6,
        &frames::ip6(dst, src, 58, 0, 64, &msg),
    )
}

fn too_big(lab: &mut Lab) {
    let c = client4(46000);
    // IP length 1480 + 20 = 1500: fits exactly.
    let input = lab.client_packet(4, c, ACK, &vec![0x61; 1480 - 40]);
    let real = lab.maglev_real(4, c);
    let f = fwd(
        lab,
        "TUN v4: 1480-byte packet fits the 1500 MTU after encapsulation".into(),
        input,
        real,
    );
    lab.run(f);
    let input = lab.client_packet(4, c, ACK, &vec![0x61; 1481 - 40]);
    let output = frag_needed(&input, MTU - 20);
    lab.run(Fixture {
        desc: "TUN v4: 1481-byte DF packet -> ICMP frag-needed (MTU 1480) to the client".into(),
        input,
        action: XDP_TX,
        output,
        outcome: "too_big",
    });
    let mut input = lab.client_packet(5, c, 0, &vec![0x62; 1490 - 28]);
    input[14 + 6] = 0; // clear DF
    input[14 + 10] = 0;
    input[14 + 11] = 0;
    let ck = frames::csum(&input[14..34]);
    input[24..26].copy_from_slice(&ck.to_be_bytes());
    lab.run(untouched(
        "TUN v4: oversize packet without DF is dropped (no fragmentation here)",
        input,
        XDP_DROP,
        "too_big",
    ));
    let c6 = client6(46000);
    let input = lab.client_packet(6, c6, ACK, &vec![0x63; 1461 - 60]);
    let output = packet_too_big(&input, u32::from(MTU) - 40);
    lab.run(Fixture {
        desc: "TUN v6: 1461-byte packet -> ICMPv6 packet-too-big (MTU 1460)".into(),
        input,
        action: XDP_TX,
        output,
        outcome: "too_big",
    });
    let input = lab.client_packet(7, c6, 0, &vec![0x64; 1460 - 48]);
    let real = lab.maglev_real(7, c6);
    let f = fwd(
        lab,
        "TUN v6: 1460-byte datagram fits exactly".into(),
        input,
        real,
    );
    lab.run(f);
    let input = lab.client_packet(0, c, ACK, &vec![0x65; 1500 - 40]);
    let real = lab.maglev_real(0, c);
    let f = fwd(
        lab,
        "DR: a full 1500-byte packet is not encapsulated, so never too big".into(),
        input,
        real,
    );
    lab.run(f);
}

fn tos_mixed_neigh(lab: &mut Lab) {
    let c = client4(47000);
    let mut ip = Ip4::new(
        Ipv4Addr::new(192, 168, 1, 10),
        Ipv4Addr::new(10, 0, 0, 4),
        TCP,
    );
    ip.tos = 0xb8;
    let input = frames::eth(
        DIR_MAC,
        CLIENT_MAC,
        frames::ETH_IP4,
        &ip.build(&frames::tcp(47000, 80, SYN, b"")),
    );
    let real = lab.maglev_real(4, c);
    let f = fwd(
        lab,
        "TUN v4: ToS 0xb8 (EF) copied to the outer header".into(),
        input,
        real,
    );
    lab.run(f);
    let c6 = client6(47000);
    let seg = frames::tcp(47000, 80, SYN, b"");
    let ip = frames::ip6(
        Ipv6Addr::new(0xfd00, 0xc, 0, 0, 0, 0, 0, 0x10),
        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 4),
        TCP,
        0x2e,
        64,
        &seg,
    );
    let input = frames::eth(DIR_MAC, CLIENT_MAC, frames::ETH_IP6, &ip);
    let real = lab.maglev_real(6, c6);
    let f = fwd(
        lab,
        "TUN v6: traffic class 0x2e copied to the outer header".into(),
        input,
        real,
    );
    lab.run(f);
    let input = lab.client_packet(11, c, SYN, b"");
    let f = fwd(
        lab,
        "TUN mixed: IPv4 in IPv6 (next header 4)".into(),
        input,
        10,
    );
    lab.run(f);
    let input = lab.client_packet(12, c6, SYN, b"");
    let f = fwd(
        lab,
        "TUN mixed: IPv6 in IPv4 (protocol 41, DF)".into(),
        input,
        11,
    );
    lab.run(f);
    let c2 = client4(40002);
    let real = lab.maglev_real(0, c2);
    let input = lab.client_packet(0, c2, FIN | ACK, b"");
    let f = fwd(
        lab,
        "FIN during the handshake (SYN_RECV) is forwarded; entry to TIME_WAIT".into(),
        input,
        real,
    );
    lab.run(f);
    assert_eq!(
        conn_state(lab, 0, c2),
        Some(abi::RVS_STATE_TIME_WAIT as u8),
        "DR FIN after a SYN (replies unseen): IPVS's input-only SYN_RECV -> TIME_WAIT"
    );
    // A real whose MAC is not resolved yet.
    let mut r = rvs_xdp::abi::Real::default();
    let (addr, family) = rvs_xdp::abi::addr_of(v4(10, 0, 0, 7));
    r.addr = addr;
    r.family = family;
    r.method = DR;
    r.flags = abi::RVS_REAL_F_PRESENT as u8;
    lab.b.set_real(0, &r).unwrap();
    let p = (48000..48100u16)
        .find(|p| lab.maglev_real(1, client4(*p)) == 0)
        .unwrap();
    let input = lab.client_packet(1, client4(p), 0, b"q");
    lab.run(untouched(
        "real's MAC not resolved yet: dropped and counted",
        input,
        XDP_DROP,
        "no_neigh",
    ));
    // A real that is an address of the director itself (IPVS's local node): its packets go to
    // the director's own stack untouched, whatever the method, and count for it.
    for (method, what) in [(DR, "DR"), (TUN, "TUN")] {
        r.method = method;
        r.flags = (abi::RVS_REAL_F_PRESENT | abi::RVS_REAL_F_LOCAL) as u8;
        lab.b.set_real(0, &r).unwrap();
        let before = lab.b.counters(abi::RVS_MAX_SERVICES as u32).unwrap();
        let input = lab.client_packet(1, client4(p), 0, b"q");
        let len = input.len() as u64 - 14;
        lab.run(untouched(
            &format!("{what} real that is the director's own address: passed untouched"),
            input,
            XDP_PASS,
            "forwarded",
        ));
        let after = lab.b.counters(abi::RVS_MAX_SERVICES as u32).unwrap();
        assert_eq!(after.packets, before.packets + 1, "{what}: counted");
        assert_eq!(after.bytes, before.bytes + len, "{what}: counted");
    }
    lab.add_real(0, v4(10, 0, 0, 7), mac(0x07), DR);
}

/// The state of `client`'s entry for service `svc`, if any.
fn conn_state(lab: &Lab, svc: u32, client: SocketAddr) -> Option<u8> {
    conn_of(lab, svc, client).map(|c| c.state)
}

/// DR and TUN flows follow IPVS's input-only TCP states (the director never sees replies):
/// each packet is forwarded and leaves its entry in the expected state; per-state timeouts
/// decide whether an old entry still holds its flow.
fn dr_tun_states(lab: &mut Lab) {
    use abi::{
        RVS_STATE_CLOSE as CLOSE, RVS_STATE_ESTABLISHED as ESTABLISHED,
        RVS_STATE_FIN_WAIT as FIN_WAIT, RVS_STATE_SYN_RECV as SYN_RECV,
    };
    let steps: [(u8, &[u8], u64, &str); 6] = [
        (SYN, b"", SYN_RECV, "SYN -> SYN_RECV"),
        (ACK, b"", ESTABLISHED, "ACK -> ESTABLISHED"),
        (ACK | 0x08, b"data", ESTABLISHED, "data stays ESTABLISHED"),
        (FIN | ACK, b"", FIN_WAIT, "FIN -> FIN_WAIT"),
        (ACK, b"", FIN_WAIT, "last ACK stays FIN_WAIT"),
        (RST, b"", CLOSE, "RST -> CLOSE"),
    ];
    for (svc, port) in [(0u32, 43000u16), (6, 43001)] {
        let c = client_for(svc, port);
        let real = lab.maglev_real(svc, c);
        for (flags, payload, want, what) in steps {
            let input = lab.client_packet(svc, c, flags, payload);
            let f = fwd(
                lab,
                format!("{} state: {what}", flow_name(svc)),
                input,
                real,
            );
            lab.run(f);
            assert_eq!(conn_state(lab, svc, c), Some(want as u8), "{what}");
        }
    }
    // RST on an established flow: CLOSE at once.
    let c = client4(43002);
    let real = lab.maglev_real(0, c);
    for (flags, want) in [(SYN, SYN_RECV), (ACK, ESTABLISHED), (RST | ACK, CLOSE)] {
        let input = lab.client_packet(0, c, flags, b"");
        let f = fwd(
            lab,
            format!("v4 TCP DR: flags {flags:#04x} -> state {want}"),
            input,
            real,
        );
        lab.run(f);
        assert_eq!(conn_state(lab, 0, c), Some(want as u8));
    }
    // UDP has its one state.
    let c = client_for(1, 43003);
    let real = lab.maglev_real(1, c);
    let input = lab.client_packet(1, c, 0, b"q");
    let f = fwd(lab, "v4 UDP DR: entry in state UDP".into(), input, real);
    lab.run(f);
    assert_eq!(conn_state(lab, 1, c), Some(abi::RVS_STATE_UDP as u8));
    // Per-state timeouts: two entries 11 s old on the real Maglev does not pick. CLOSE (10 s)
    // has expired: the flow is scheduled afresh; ESTABLISHED (900 s) still holds it.
    let now = rvs_xdp::engine::monotonic_ns();
    for (port, state, follows) in [(43004u16, CLOSE, false), (43005, ESTABLISHED, true)] {
        let c = client4(port);
        let maglev = lab.maglev_real(0, c);
        let other = 1 - maglev;
        let conn = abi::Conn {
            real: other,
            svc: 0,
            last_ns: now - 11_000_000_000,
            state: state as u8,
            method: DR,
            ..Default::default()
        };
        lab.b.insert_conn(&flow_key(lab, 0, c), &conn).unwrap();
        let input = lab.client_packet(0, c, ACK, b"x");
        let (real, what) = if follows {
            (other, "an 11 s old ESTABLISHED entry still holds its flow")
        } else {
            (maglev, "an 11 s old CLOSE entry has expired: rescheduled")
        };
        let f = fwd(lab, format!("v4 TCP DR: {what}"), input, real);
        lab.run(f);
        let want = if follows { ESTABLISHED } else { CLOSE };
        let got = conn_of(lab, 0, c).unwrap();
        assert_eq!((got.real, got.state), (real, want as u8), "{what}");
        assert!(got.last_ns > now - 1_000_000_000, "{what}: timer restarted");
    }
}

/// A live entry is followed without a service lookup, so removing a service must remove its
/// entries: afterwards the flow's packets are not VIP traffic any more.
fn removed_service(lab: &mut Lab) {
    let c = client4(43100);
    let real = lab.maglev_real(13, c);
    let input = lab.client_packet(13, c, SYN, b"");
    let f = fwd(
        lab,
        "service 13: new flow before removal".into(),
        input.clone(),
        real,
    );
    lab.run(f);
    assert!(conn_of(lab, 13, c).is_some());
    let s = lab.svc(13);
    let (addr, family) = abi::addr_of(s.vip.ip());
    let key = abi::VipKey {
        addr,
        port: s.vip.port().to_be(),
        proto: s.proto,
        family,
    };
    lab.b.remove_service(&key).unwrap();
    assert!(lab.b.remove_service_conns(13).unwrap() >= 1);
    assert!(
        conn_of(lab, 13, c).is_none(),
        "entries of a removed service go"
    );
    lab.run(untouched(
        "removed service: its flow's next packet is passed (not a VIP any more)",
        input,
        XDP_PASS,
        "not_vip",
    ));
}

#[test]
fn packet_fixtures() {
    if skip_unless_root() {
        return;
    }
    let mut lab = setup();
    new_and_established(&mut lab);
    table_changes(&mut lab);
    drain_and_overload(&mut lab);
    persistence(&mut lab);
    not_ours(&mut lab);
    malformed(&mut lab);
    options_and_fragments(&mut lab);
    icmp_errors(&mut lab);
    too_big(&mut lab);
    tos_mixed_neigh(&mut lab);
    dr_tun_states(&mut lab);
    removed_service(&mut lab);
    println!("{} fixtures passed", lab.ran.len());
    assert!(lab.ran.len() >= 60, "only {} fixtures", lab.ran.len());
    // Per-service and per-real counters moved with the forwarded packets.
    let svc0 = lab.b.counters(0).unwrap();
    assert!(
        svc0.conns >= 4 && svc0.packets >= svc0.conns && svc0.bytes > 0,
        "{svc0:?}"
    );
}
