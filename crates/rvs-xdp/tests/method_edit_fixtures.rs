//! A real whose forwarding method is edited while it has flows (`ipvsadm -e -r RIP -g` then
//! `-i`, ...): as with IPVS, which fixes a connection's method when the connection is made, a
//! flow keeps being sent with the method of its connection entry and only new flows get the
//! real's new one. DR -> TUN and TUN -> DR (stateless per packet: the next ACK of the flow goes
//! out as before byte for byte), NAT -> FULLNAT (the NAT flow keeps its reverse entry and gets
//! no local port; its replies are still rewritten back), NAT -> DR -> NAT (with the engine's
//! port bits, which keep both connection tables looked up once a service had both kinds), and
//! NAT -> DR on a one-packet (`-o`) UDP service (the NAT flow's datagrams stay NAT; new ones
//! are scheduled one by one, DR).
//!
//! Runs in a network namespace of its own (unshare), where bpf_fib_lookup finds no route: NAT
//! packets go out again to the real's resolved MAC (XDP_TX), replies to the kernel rewritten.
//! Needs root; skips otherwise.

mod common;
mod nat_support;

use common::frames::{ACK, SYN, TCP, UDP};
use common::lab::*;
use nat_support::*;
use rvs_xdp::abi;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

const DR: u8 = abi::RVS_METHOD_DR as u8;
const TUN: u8 = abi::RVS_METHOD_TUN as u8;
const NAT: u8 = abi::RVS_METHOD_NAT as u8;
const FNAT: u8 = abi::RVS_METHOD_FULLNAT as u8;
/// The NAT reals' port (the VIPs' is 80).
const RPORT: u16 = 8080;

fn v4(c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, c, d))
}
fn client(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10)), port)
}

/// Services 0-3 (10.0.0.3-6:80 TCP), one real each: DR, TUN, NAT, NAT; service 4
/// (10.0.0.7:80 UDP) with a NAT real. The reals' port is 8080.
fn setup(lab: &mut Lab) {
    let reals = [
        (v4(1, 7), DR, TCP),
        (v4(1, 8), TUN, TCP),
        (v4(2, 7), NAT, TCP),
        (v4(2, 8), NAT, TCP),
        (v4(2, 9), NAT, UDP),
    ];
    for (i, (ip, method, proto)) in reals.into_iter().enumerate() {
        let i = i as u32;
        lab.add_real(i, ip, mac(0x10 + i as u8), method);
        lab.b.set_real_port(i, RPORT).unwrap();
        let vip = SocketAddr::new(v4(0, 3 + i as u8), 80);
        lab.add_service(i, vip, proto, &[(i, 1)], None);
    }
    lab.b.set_fnat_pool(2, &[v4(3, 1)]).unwrap();
}

/// Edit real `idx`'s method (the engine's EditReal: same address and MAC).
fn edit(lab: &mut Lab, idx: u32, method: u8) {
    let r = lab.real(idx);
    lab.add_real(idx, r.ip, r.mac, method);
}

/// Rewrite service `svc`'s entry with table flags `flags` (RVS_SVC_F_DIRECT / _NAT), as the
/// engine does for a service whose reals had both kinds of methods.
fn set_tables(lab: &mut Lab, svc: u32, flags: u32) {
    let s = lab.svc(svc);
    let (key, mut value) = lab.service_entry(svc, s.vip, s.proto, &[], None);
    value.flags = flags;
    lab.b.set_service(&key, &value).unwrap();
}

/// The method recorded in `c`'s entry for service `svc`.
fn entry_method(lab: &Lab, svc: u32, c: SocketAddr) -> u8 {
    conn_of(lab, svc, c).expect("entry").method
}

/// A DR/TUN client packet that must go out exactly as `want`.
fn expect(lab: &mut Lab, desc: String, input: Vec<u8>, want: Vec<u8>) {
    lab.run(Fixture {
        desc,
        input,
        action: XDP_TX,
        output: want,
        outcome: "forwarded",
    });
}

/// DR <-> TUN: a flow opened on the old method keeps it; a new SYN gets the new one.
fn direct_edits(lab: &mut Lab) {
    for (svc, from, to, name) in [(0u32, DR, TUN, "DR -> TUN"), (1, TUN, DR, "TUN -> DR")] {
        let c = client(40000 + svc as u16);
        let syn = lab.client_packet(svc, c, SYN, b"");
        let f = fwd(lab, format!("{name}: SYN before the edit"), syn, svc);
        lab.run(f);
        let ack = lab.client_packet(svc, c, ACK, b"data");
        let before = lab.forwarded(&ack, svc);
        expect(
            lab,
            format!("{name}: ACK before"),
            ack.clone(),
            before.clone(),
        );
        edit(lab, svc, to);
        expect(
            lab,
            format!("{name}: ACK of the old flow after the edit, as before"),
            ack,
            before,
        );
        assert_eq!(
            entry_method(lab, svc, c),
            from,
            "{name}: the entry keeps its method"
        );
        let c2 = client(41000 + svc as u16);
        let syn = lab.client_packet(svc, c2, SYN, b"");
        let f = fwd(
            lab,
            format!("{name}: a new SYN gets the new method"),
            syn,
            svc,
        );
        lab.run(f);
        let ack = lab.client_packet(svc, c2, ACK, b"");
        let f = fwd(lab, format!("{name}: and keeps it"), ack, svc);
        lab.run(f);
        assert_eq!(entry_method(lab, svc, c2), to, "{name}: new entry");
    }
}

/// The real's address as NAT rewrites to it.
fn real_sa(lab: &Lab, idx: u32) -> SocketAddr {
    SocketAddr::new(lab.real(idx).ip, RPORT)
}

/// A client segment of NAT flow `c` on service `svc`: rewritten to the real, nothing else.
fn nat_in(lab: &mut Lab, svc: u32, c: SocketAddr, flags: u8, what: &str) {
    let vip = lab.svc(svc).vip;
    let (r, rmac) = (real_sa(lab, svc), lab.real(svc).mac);
    let input = from_client(c, vip, TCP, &tcp_opts(0, 0, flags, &[], b"hi"));
    let want = frame(rmac, DIR_MAC, c, r, TCP, &tcp_opts(0, 0, flags, &[], b"hi"));
    check(lab, what, &input, XDP_TX, "nat_forwarded", |_| want);
}

/// The real's reply on NAT flow `c`: rewritten back from the VIP.
fn nat_out(lab: &mut Lab, svc: u32, c: SocketAddr, flags: u8, what: &str) {
    let vip = lab.svc(svc).vip;
    let (r, rmac) = (real_sa(lab, svc), lab.real(svc).mac);
    let input = frame(DIR_MAC, rmac, r, c, TCP, &seg(TCP, flags, b"world"));
    let want = frame(DIR_MAC, rmac, vip, c, TCP, &seg(TCP, flags, b"world"));
    check(lab, what, &input, XDP_PASS, "nat_reply", |_| want);
}

/// NAT -> FULLNAT: the NAT flow stays NAT both ways (no local port, no TOA); a new SYN is
/// FULLNAT (local address and port, TOA).
fn nat_to_fullnat(lab: &mut Lab) {
    let c = client(42000);
    let key = flow(c, lab.svc(2).vip, TCP);
    nat_in(lab, 2, c, SYN, "NAT -> FULLNAT: SYN before the edit");
    nat_out(lab, 2, c, SYN | ACK, "NAT -> FULLNAT: reply before");
    edit(lab, 2, FNAT);
    nat_in(
        lab,
        2,
        c,
        ACK,
        "NAT -> FULLNAT: ACK of the NAT flow after, still NAT",
    );
    nat_out(
        lab,
        2,
        c,
        ACK,
        "NAT -> FULLNAT: its reply, still rewritten back",
    );
    let e = conn_of(lab, 2, c).expect("entry");
    assert_eq!((e.method, e.lport), (NAT, 0), "NAT entry, no local port");
    assert!(local_of(lab, &key).is_none(), "no FULLNAT flow made for it");
    let c2 = client(42001);
    let key2 = flow(c2, lab.svc(2).vip, TCP);
    let vip = lab.svc(2).vip;
    let (r, rmac) = (real_sa(lab, 2), lab.real(2).mac);
    let input = from_client(c2, vip, TCP, &tcp_opts(0, 0, SYN, &[], b""));
    check(
        lab,
        "NAT -> FULLNAT: a new SYN is FULLNAT (local address, TOA)",
        &input,
        XDP_TX,
        "nat_forwarded",
        |lab| {
            let l = local_of(lab, &key2).expect("local port allocated");
            frame(
                rmac,
                DIR_MAC,
                l,
                r,
                TCP,
                &tcp_opts(0, 0, SYN, &toa(c2), b""),
            )
        },
    );
    assert_eq!(entry_method(lab, 2, c2), FNAT);
}

/// NAT -> DR -> NAT on a service whose port keeps both tables (the engine's flags once it
/// had both kinds of reals): each flow keeps its method across both edits.
fn nat_dr_nat(lab: &mut Lab) {
    let both = (abi::RVS_SVC_F_DIRECT | abi::RVS_SVC_F_NAT) as u32;
    let (cn, cd, c3) = (client(43000), client(43001), client(43002));
    nat_in(lab, 3, cn, SYN, "NAT -> DR: NAT flow's SYN");
    nat_out(lab, 3, cn, SYN | ACK, "NAT -> DR: its reply");
    set_tables(lab, 3, both);
    edit(lab, 3, DR);
    nat_in(
        lab,
        3,
        cn,
        ACK,
        "NAT -> DR: the NAT flow's ACK after, still NAT",
    );
    nat_out(
        lab,
        3,
        cn,
        ACK,
        "NAT -> DR: its reply, still rewritten back",
    );
    let syn = lab.client_packet(3, cd, SYN, b"");
    let f = fwd(lab, "NAT -> DR: a new SYN is DR".into(), syn, 3);
    lab.run(f);
    let ack = lab.client_packet(3, cd, ACK, b"x");
    let dr_ack = lab.forwarded(&ack, 3);
    edit(lab, 3, NAT);
    nat_in(lab, 3, cn, ACK, "DR -> NAT: the first NAT flow, still NAT");
    expect(
        lab,
        "DR -> NAT: the DR flow's ACK, still DR".into(),
        ack,
        dr_ack,
    );
    assert_eq!(entry_method(lab, 3, cd), DR);
    nat_in(lab, 3, c3, SYN, "DR -> NAT: a new SYN is NAT again");
    assert_eq!(entry_method(lab, 3, c3), NAT);
}

/// A datagram of `c` to UDP service `svc`, NAT-rewritten to its real.
fn nat_udp(lab: &mut Lab, svc: u32, c: SocketAddr, what: &str) {
    let vip = lab.svc(svc).vip;
    let (r, rmac) = (real_sa(lab, svc), lab.real(svc).mac);
    let input = from_client(c, vip, UDP, &seg(UDP, 0, b"q"));
    let want = frame(rmac, DIR_MAC, c, r, UDP, &seg(UDP, 0, b"q"));
    check(lab, what, &input, XDP_TX, "nat_forwarded", |_| want);
}

/// NAT -> DR on a one-packet UDP service: the engine flags the real RVS_REAL_F_ONE_PACKET (a
/// DR real of a `-o` service), which skips DR/TUN entries made before `-o`; the NAT flow's
/// entry is still followed, new datagrams are DR without entries.
fn one_packet_nat_to_dr(lab: &mut Lab) {
    let flags = (abi::RVS_SVC_F_ONE_PACKET | abi::RVS_SVC_F_NAT) as u32;
    set_tables(lab, 4, flags);
    let (c, c2) = (client(44000), client(44001));
    nat_udp(lab, 4, c, "-o, NAT -> DR: a datagram before the edit, NAT");
    edit(lab, 4, DR);
    lab.set_real_flags(4, abi::RVS_REAL_F_ONE_PACKET as u8);
    set_tables(lab, 4, flags | abi::RVS_SVC_F_DIRECT as u32);
    nat_udp(
        lab,
        4,
        c,
        "-o, NAT -> DR: the NAT flow's next datagram, still NAT",
    );
    let dgram = lab.client_packet(4, c2, 0, b"q");
    let f = fwd(
        lab,
        "-o, NAT -> DR: a new client's datagram, DR".into(),
        dgram,
        4,
    );
    lab.run(f);
    assert!(conn_of(lab, 4, c2).is_none(), "one-packet: no entry");
}

fn own_netns() {
    // SAFETY: unshare only changes this thread's network namespace.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
}

#[test]
fn method_edit_fixtures() {
    if skip_unless_root() {
        return;
    }
    own_netns();
    let mut lab = Lab::new();
    setup(&mut lab);
    direct_edits(&mut lab);
    nat_to_fullnat(&mut lab);
    nat_dr_nat(&mut lab);
    one_packet_nat_to_dr(&mut lab);
    let n = lab.ran.len();
    println!("{n} method-edit fixtures passed");
    assert_eq!(n, 26, "fixtures run");
}
