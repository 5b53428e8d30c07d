//! NAT and FULLNAT packet fixtures through BPF_PROG_TEST_RUN: both directions, v4 and v6, TCP
//! and UDP, port mapping, FIN/RST transitions, TOA, ICMP errors about a flow in both
//! directions, replies by stale reverse entries, a full table, the sweep that reclaims expired flows, and malformed packets.
//! Expected frames are rebuilt from scratch with complete checksums (nat_support), so every
//! incremental checksum update of the program is checked against an independent sum.
//!
//! The test runs in a network namespace of its own (unshare), where bpf_fib_lookup finds no
//! route: packets to a real go out again to the real's resolved MAC (XDP_TX), replies go to the
//! kernel rewritten (XDP_PASS). The last fixtures add routes and neighbours there to check the
//! FIB path (MACs from bpf_fib_lookup, bpf_redirect_map). Needs root; skips otherwise.

mod common;
mod nat_support;

use common::frames::{ACK, FIN, RST, SYN, TCP, UDP};
use common::lab::*;
use nat_support::*;
use rvs_xdp::Balancer;
use rvs_xdp::abi::{self, Config};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

const NAT: u8 = abi::RVS_METHOD_NAT as u8;
const FNAT: u8 = abi::RVS_METHOD_FULLNAT as u8;
const XDP_REDIRECT: u32 = 4;

fn v4(d: u8, c: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, c, d))
}

/// Services: 0-3 NAT (v4 TCP, v4 UDP, v6 TCP, v6 UDP), 4-7 FULLNAT (same order), 8 FULLNAT
/// without local addresses. Real ports differ from the VIP's where noted (port mapping).
fn setup(lab: &mut Lab) {
    let reals: [(u32, IpAddr, u8, u8, u16); 10] = [
        (0, v4(7, 2), 0x07, NAT, 8080),
        (1, v4(8, 2), 0x08, NAT, 8080),
        (2, v4(9, 2), 0x09, NAT, 5353),
        (3, v6(7, 2), 0x37, NAT, 8080),
        (4, v6(9, 2), 0x39, NAT, 0),
        (5, v4(7, 3), 0x17, FNAT, 0),
        (6, v4(8, 3), 0x18, FNAT, 5353),
        (7, v6(7, 3), 0x27, FNAT, 8080),
        (8, v6(8, 3), 0x28, FNAT, 0),
        (9, v4(9, 3), 0x19, FNAT, 0),
    ];
    for (i, ip, m, method, port) in reals {
        lab.add_real(i, ip, mac(m), method);
        lab.b.set_real_port(i, port).unwrap();
    }
    let (vip4, vip6, fvip4, fvip6) = (v4(3, 0), v6(3, 0), v4(4, 0), v6(4, 0));
    lab.add_service(0, sa(vip4, 80), TCP, &[(0, 1), (1, 1)], None);
    lab.add_service(1, sa(vip4, 53), UDP, &[(2, 1)], None);
    lab.add_service(2, sa(vip6, 80), TCP, &[(3, 1)], None);
    lab.add_service(3, sa(vip6, 53), UDP, &[(4, 1)], None);
    lab.add_service(4, sa(fvip4, 80), TCP, &[(5, 1)], None);
    lab.add_service(5, sa(fvip4, 53), UDP, &[(6, 1)], None);
    lab.add_service(6, sa(fvip6, 80), TCP, &[(7, 1)], None);
    lab.add_service(7, sa(fvip6, 53), UDP, &[(8, 1)], None);
    lab.add_service(8, sa(v4(5, 0), 80), TCP, &[(9, 1)], None);
    lab.b.set_fnat_pool(4, &[v4(1, 3)]).unwrap();
    lab.b.set_fnat_pool(5, &[v4(1, 3), v4(2, 3)]).unwrap();
    lab.b.set_fnat_pool(6, &[v6(1, 3)]).unwrap();
    lab.b.set_fnat_pool(7, &[v6(1, 3)]).unwrap();
}

/// The real a new flow of `svc` goes to (single-real services: that one).
fn real_for(lab: &Lab, svc: u32, c: SocketAddr) -> u32 {
    lab.maglev_real(svc, c)
}

/// The real's address and port as the program writes them.
fn real_sa(lab: &Lab, idx: u32, vport: u16) -> SocketAddr {
    let port = [8080, 8080, 5353, 8080, 0, 0, 5353, 8080, 0, 0][idx as usize];
    sa(lab.real(idx).ip, if port == 0 { vport } else { port })
}

/// A client packet to NAT service `svc` and the real's answer; checks both.
fn nat_round(lab: &mut Lab, svc: u32, c: SocketAddr, flags: u8, reply_flags: u8, what: &str) {
    nat_in(lab, svc, c, flags, what);
    nat_out(lab, svc, c, reply_flags, what);
}

/// A client packet to NAT service `svc`, rewritten to its real.
fn nat_in(lab: &mut Lab, svc: u32, c: SocketAddr, flags: u8, what: &str) {
    let s = lab.svc(svc);
    let (vip, proto) = (s.vip, s.proto);
    let idx = real_for(lab, svc, c);
    let r = real_sa(lab, idx, vip.port());
    let rmac = lab.real(idx).mac;
    let payload: &[u8] = if flags == SYN { b"" } else { b"hello" };
    let input = from_client(c, vip, proto, &seg(proto, flags, payload));
    let want = frame(rmac, DIR_MAC, c, r, proto, &seg(proto, flags, payload));
    check(
        lab,
        &format!("NAT {what}: client {c} -> {vip} rewritten to real {r}"),
        &input,
        XDP_TX,
        "nat_forwarded",
        |_| want,
    );
}

/// The real's answer on NAT service `svc`'s flow from `c`, rewritten back from the VIP.
fn nat_out(lab: &mut Lab, svc: u32, c: SocketAddr, flags: u8, what: &str) {
    let s = lab.svc(svc);
    let (vip, proto) = (s.vip, s.proto);
    let idx = real_for(lab, svc, c);
    let r = real_sa(lab, idx, vip.port());
    let rmac = lab.real(idx).mac;
    let input = frame(DIR_MAC, rmac, r, c, proto, &seg(proto, flags, b"world"));
    let want = frame(DIR_MAC, rmac, vip, c, proto, &seg(proto, flags, b"world"));
    check(
        lab,
        &format!("NAT {what}: reply {r} -> {c} rewritten from {vip}, to the kernel"),
        &input,
        XDP_PASS,
        "nat_reply",
        |_| want,
    );
}

fn nat_basic(lab: &mut Lab) {
    for (i, port) in [40000u16, 40001, 40002].into_iter().enumerate() {
        let c = client(false, port);
        nat_round(lab, 0, c, SYN, SYN | ACK, &format!("v4 TCP flow {i} SYN"));
        nat_round(lab, 0, c, ACK, ACK, &format!("v4 TCP flow {i} data"));
    }
    nat_round(lab, 1, client(false, 41000), 0, 0, "v4 UDP 53->5353");
    nat_round(
        lab,
        2,
        client(true, 42000),
        SYN,
        SYN | ACK,
        "v6 TCP 80->8080",
    );
    nat_round(lab, 2, client(true, 42000), ACK, ACK, "v6 TCP data");
    nat_round(lab, 3, client(true, 43000), 0, 0, "v6 UDP same port");
    // A client port that is also a VIP port: the reply (to client:80) passes the port filter,
    // misses the connection and service tables, and is still found as a reply.
    nat_round(lab, 0, client(false, 80), SYN, SYN | ACK, "client port 80");
    // A zero IPv4 UDP checksum ("none") stays zero.
    let c = client(false, 41001);
    let vip = lab.svc(1).vip;
    let r = real_sa(lab, 2, 53);
    let mut input = from_client(c, vip, UDP, &seg(UDP, 0, b"q"));
    input[14 + 20 + 6] = 0;
    input[14 + 20 + 7] = 0;
    let mut want = frame(mac(0x09), DIR_MAC, c, r, UDP, &seg(UDP, 0, b"q"));
    want[14 + 20 + 6] = 0;
    want[14 + 20 + 7] = 0;
    check(
        lab,
        "NAT v4 UDP with zero checksum: stays zero",
        &input,
        XDP_TX,
        "nat_forwarded",
        |_| want,
    );
}

fn nat_states(lab: &mut Lab) {
    let vip = lab.svc(0).vip;
    // FIN from the client.
    let c = client(false, 40000);
    nat_round(lab, 0, c, FIN | ACK, ACK, "v4 TCP client FIN");
    assert_eq!(
        conn_state(lab, &flow(c, vip, TCP)),
        Some(abi::RVS_STATE_CLOSE_WAIT as u8),
        "client FIN on ESTABLISHED: CLOSE_WAIT (the reply's ACK keeps it)"
    );
    // RST from the real.
    let c = client(false, 40001);
    nat_round(lab, 0, c, ACK, RST, "v4 TCP real RST");
    assert_eq!(
        conn_state(lab, &flow(c, vip, TCP)),
        Some(abi::RVS_STATE_CLOSE as u8),
        "real RST: CLOSE"
    );
    // FIN from the real, v6.
    let c = client(true, 42000);
    let vip6 = lab.svc(2).vip;
    nat_round(lab, 2, c, ACK, FIN | ACK, "v6 TCP real FIN");
    assert_eq!(
        conn_state(lab, &flow(c, vip6, TCP)),
        Some(abi::RVS_STATE_FIN_WAIT as u8),
        "real FIN v6 on ESTABLISHED: FIN_WAIT"
    );
    let c = client(false, 40002);
    assert_eq!(
        conn_state(lab, &flow(c, vip, TCP)),
        Some(abi::RVS_STATE_ESTABLISHED as u8),
        "untouched flow stays ESTABLISHED"
    );
}

/// A FULLNAT round: the client packet (TOA on a SYN), the real's reply (ACK).
fn fnat_round(lab: &mut Lab, svc: u32, c: SocketAddr, flags: u8, opts: &[u8], what: &str) {
    fnat_in(lab, svc, c, flags, opts, what);
    fnat_out(lab, svc, c, ACK, what);
}

/// A client packet to FULLNAT service `svc` (TOA on a SYN and on the ACK completing the
/// handshake), rewritten to local -> real.
fn fnat_in(lab: &mut Lab, svc: u32, c: SocketAddr, flags: u8, opts: &[u8], what: &str) {
    let payload: &[u8] = if flags & SYN != 0 { b"" } else { b"hello" };
    fnat_in_with(lab, svc, c, flags, opts, payload, what);
}

/// Whether a FULLNAT TCP client segment with `flags`, `opts` and an IP length of `ip_len`
/// gets the TOA option: a SYN (without ACK), or an ACK (without SYN, FIN or RST) while the
/// flow's entry is in SYN_RECV, i.e. the ACK that completes the handshake; only if the
/// options stay within 40 bytes and the packet within the MTU with it.
fn toa_due(lab: &Lab, key: &abi::FlowKey, flags: u8, opts: &[u8], ip_len: usize) -> bool {
    let client = SocketAddr::new(abi::ip_of(&key.src, key.family), u16::from_be(key.sport));
    let handshake_ack = flags & (SYN | ACK | FIN | RST) == ACK
        && conn_state(lab, key) == Some(abi::RVS_STATE_SYN_RECV as u8);
    let n = toa(client).len();
    (flags & (SYN | ACK) == SYN || handshake_ack)
        && opts.len() + n <= 40
        && ip_len + n <= usize::from(MTU)
}

/// `fnat_in` with the payload given.
fn fnat_in_with(
    lab: &mut Lab,
    svc: u32,
    c: SocketAddr,
    flags: u8,
    opts: &[u8],
    payload: &[u8],
    what: &str,
) {
    let s = lab.svc(svc);
    let (vip, proto) = (s.vip, s.proto);
    let idx = real_for(lab, svc, c);
    let r = real_sa(lab, idx, vip.port());
    let rmac = lab.real(idx).mac;
    let key = flow(c, vip, proto);
    let mk = |f: u8, o: &[u8]| {
        if proto == TCP {
            tcp_opts(0, 0, f, o, payload)
        } else {
            seg(proto, f, payload)
        }
    };
    let input = from_client(c, vip, proto, &mk(flags, opts));
    let with_toa = proto == TCP && toa_due(lab, &key, flags, opts, input.len() - 14);
    let out_opts = if with_toa {
        [toa(c), opts.to_vec()].concat()
    } else {
        opts.to_vec()
    };
    let out_seg = mk(flags, &out_opts);
    check(
        lab,
        &format!("FULLNAT {what}: {c} -> {vip} becomes local -> {r}"),
        &input,
        XDP_TX,
        "nat_forwarded",
        |lab| {
            let l = local_of(lab, &key).expect("local port allocated");
            frame(rmac, DIR_MAC, l, r, proto, &out_seg)
        },
    );
    let l = local_of(lab, &key).unwrap();
    assert!(l.port() >= abi::RVS_FNAT_PORT_MIN as u16);
}

/// The real's answer on FULLNAT service `svc`'s flow from `c` (to the flow's local address
/// and port), rewritten back to VIP -> client.
fn fnat_out(lab: &mut Lab, svc: u32, c: SocketAddr, flags: u8, what: &str) {
    let s = lab.svc(svc);
    let (vip, proto) = (s.vip, s.proto);
    let idx = real_for(lab, svc, c);
    let r = real_sa(lab, idx, vip.port());
    let rmac = lab.real(idx).mac;
    let l = local_of(lab, &flow(c, vip, proto)).expect("local port allocated");
    let input = frame(DIR_MAC, rmac, r, l, proto, &seg(proto, flags, b"world"));
    let want = frame(DIR_MAC, rmac, vip, c, proto, &seg(proto, flags, b"world"));
    check(
        lab,
        &format!("FULLNAT {what}: reply {r} -> {l} back to {vip} -> {c}"),
        &input,
        XDP_PASS,
        "nat_reply",
        |_| want,
    );
}

/// IPVS's TCP state machine driven from both sides, NAT and FULLNAT, v4 and v6: every packet
/// is rewritten and forwarded, and leaves the flow's entry in the state rvs-core's table says.
fn nat_state_machine(lab: &mut Lab) {
    use abi::{
        RVS_STATE_CLOSE as CLOSE, RVS_STATE_CLOSE_WAIT as CLOSE_WAIT,
        RVS_STATE_ESTABLISHED as ESTABLISHED, RVS_STATE_FIN_WAIT as FIN_WAIT,
        RVS_STATE_SYN_RECV as SYN_RECV, RVS_STATE_TIME_WAIT as TIME_WAIT,
    };
    // (from the client?, flags, state after)
    type Step = (bool, u8, u64);
    let client_closes: &[Step] = &[
        (true, SYN, SYN_RECV),
        (false, SYN | ACK, SYN_RECV),
        (true, ACK, ESTABLISHED),
        (true, FIN | ACK, CLOSE_WAIT),
        (false, FIN | ACK, TIME_WAIT),
        (true, ACK, TIME_WAIT),
    ];
    let real_closes: &[Step] = &[
        (true, SYN, SYN_RECV),
        (false, SYN | ACK, SYN_RECV),
        (true, ACK, ESTABLISHED),
        (false, FIN | ACK, FIN_WAIT),
        (true, FIN | ACK, TIME_WAIT),
    ];
    let real_resets: &[Step] = &[
        (true, SYN, SYN_RECV),
        (false, SYN | ACK, SYN_RECV),
        (true, ACK, ESTABLISHED),
        (false, RST, CLOSE),
    ];
    let client_resets_handshake: &[Step] = &[
        (true, SYN, SYN_RECV),
        (true, RST, SYN_RECV), // IPVS keeps waiting: a RST during the handshake
        (false, SYN | ACK, SYN_RECV),
        (true, ACK, ESTABLISHED),
        (true, RST | ACK, CLOSE),
    ];
    let runs: [(u32, bool, u16, &[Step], &str); 8] = [
        (0, false, 44000, client_closes, "client closes"),
        (2, true, 44001, client_closes, "client closes"),
        (0, false, 44002, real_closes, "real closes"),
        (2, true, 44003, real_resets, "real resets"),
        (
            0,
            false,
            44004,
            client_resets_handshake,
            "client RST in handshake",
        ),
        (4, false, 44005, client_closes, "client closes"),
        (6, true, 44006, real_closes, "real closes"),
        (4, false, 44007, real_resets, "real resets"),
    ];
    for (svc, v6c, port, steps, name) in runs {
        let c = client(v6c, port);
        let key = flow(c, lab.svc(svc).vip, TCP);
        let fullnat = svc >= 4;
        for (i, (from_client, flags, want)) in steps.iter().copied().enumerate() {
            let what = format!(
                "{name} {} step {i} flags {flags:#04x}",
                if v6c { "v6" } else { "v4" }
            );
            match (fullnat, from_client) {
                (false, true) => nat_in(lab, svc, c, flags, &what),
                (false, false) => nat_out(lab, svc, c, flags, &what),
                (true, true) => fnat_in(lab, svc, c, flags, b"", &what),
                (true, false) => fnat_out(lab, svc, c, flags, &what),
            }
            assert_eq!(conn_state(lab, &key), Some(want as u8), "{what}");
        }
    }
    // UDP flows have their one state.
    let c = client(false, 44010);
    nat_round(lab, 1, c, 0, 0, "UDP state");
    assert_eq!(
        conn_state(lab, &flow(c, lab.svc(1).vip, UDP)),
        Some(abi::RVS_STATE_UDP as u8)
    );
}

fn fullnat(lab: &mut Lab) {
    let c = client(false, 45000);
    fnat_round(lab, 4, c, SYN, b"", "v4 TCP SYN with TOA");
    let first = local_of(lab, &flow(c, lab.svc(4).vip, TCP)).unwrap();
    fnat_round(lab, 4, c, ACK, b"", "v4 TCP data keeps its local port");
    assert_eq!(local_of(lab, &flow(c, lab.svc(4).vip, TCP)), Some(first));
    // MSS, SACK-permitted, timestamps, NOP, window scale: 20 bytes, TOA goes first.
    let opts = [
        2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
    ];
    fnat_round(
        lab,
        4,
        client(false, 45001),
        SYN,
        &opts,
        "v4 SYN with 20 option bytes",
    );
    let long = [1u8; 36];
    fnat_round(
        lab,
        4,
        client(false, 45002),
        SYN,
        &long,
        "v4 SYN, options full: no TOA",
    );
    let mut locals = std::collections::HashSet::new();
    for p in 0..4u16 {
        let c = client(false, 46000 + p);
        fnat_round(lab, 5, c, 0, b"", &format!("v4 UDP flow {p}"));
        assert!(locals.insert(local_of(lab, &flow(c, lab.svc(5).vip, UDP)).unwrap()));
    }
    fnat_round(
        lab,
        6,
        client(true, 47000),
        SYN,
        b"",
        "v6 TCP SYN with TOA v6",
    );
    fnat_round(lab, 6, client(true, 47000), FIN | ACK, b"", "v6 TCP FIN");
    assert_eq!(
        conn_state(lab, &flow(client(true, 47000), lab.svc(6).vip, TCP)),
        Some(abi::RVS_STATE_CLOSE_WAIT as u8),
        "client FIN on ESTABLISHED, reply ACK: CLOSE_WAIT"
    );
    fnat_round(lab, 7, client(true, 48000), 0, b"", "v6 UDP");
    let c = client(false, 45003);
    let input = from_client(c, lab.svc(8).vip, TCP, &seg(TCP, SYN, b""));
    check(
        lab,
        "FULLNAT service without local addresses: dropped",
        &input,
        XDP_DROP,
        "no_lport",
        |_| input.clone(),
    );
    assert!(
        conn_state(lab, &flow(c, lab.svc(8).vip, TCP)).is_none(),
        "no entry left behind"
    );
}

/// A FULLNAT TCP client segment on service `svc`'s flow from `c`, expected out to its real with
/// the TOA option first (`toa_first`) or with its own options only: byte-exact, checksums
/// rebuilt from scratch.
#[allow(clippy::too_many_arguments)]
fn fnat_seg(
    lab: &mut Lab,
    svc: u32,
    c: SocketAddr,
    flags: u8,
    opts: &[u8],
    payload: &[u8],
    toa_first: bool,
    what: &str,
) {
    let vip = lab.svc(svc).vip;
    let idx = real_for(lab, svc, c);
    let r = real_sa(lab, idx, vip.port());
    let rmac = lab.real(idx).mac;
    let l = local_of(lab, &flow(c, vip, TCP)).expect("local port allocated");
    let input = from_client(c, vip, TCP, &tcp_opts(0, 0, flags, opts, payload));
    let out_opts = if toa_first {
        [toa(c), opts.to_vec()].concat()
    } else {
        opts.to_vec()
    };
    let want = frame(
        rmac,
        DIR_MAC,
        l,
        r,
        TCP,
        &tcp_opts(0, 0, flags, &out_opts, payload),
    );
    check(lab, what, &input, XDP_TX, "nat_forwarded", |_| want);
}

/// TOA on the client's ACK that completes the handshake (toa.ko reads the option in the
/// syn_recv_sock hook, whose packet is that ACK), as well as on the SYN; not on later ACKs, not
/// when the options or the MTU leave no room (the segment still goes), not when the entry left
/// SYN_RECV before the ACK (a real's ACK) or the client's segment closes (FIN).
fn toa_handshake_ack(lab: &mut Lab) {
    use abi::{RVS_STATE_ESTABLISHED as ESTABLISHED, RVS_STATE_SYN_RECV as SYN_RECV};
    const PSH: u8 = 0x08;
    // NOP, NOP, timestamps: what a Linux client's ACKs carry.
    let ts = [1u8, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
    let syn_opts = [
        2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
    ];
    // Handshake up to the client's ACK: SYN (TOA), the real's SYN+ACK.
    let handshake = |lab: &mut Lab, svc: u32, c: SocketAddr, what: &str| {
        fnat_in(lab, svc, c, SYN, &syn_opts, &format!("{what}: SYN"));
        fnat_out(lab, svc, c, SYN | ACK, &format!("{what}: SYN+ACK"));
        let key = flow(c, lab.svc(svc).vip, TCP);
        assert_eq!(conn_state(lab, &key), Some(SYN_RECV as u8), "{what}");
        key
    };
    for (svc, v6c, port) in [(4u32, false, 52000u16), (6, true, 52001)] {
        let c = client(v6c, port);
        let fam = if v6c { "v6" } else { "v4" };
        let key = handshake(lab, svc, c, &format!("TOA {fam}"));
        fnat_seg(
            lab,
            svc,
            c,
            ACK,
            &ts,
            b"",
            true,
            &format!("FULLNAT {fam} ACK completing the handshake: TOA first, then its options"),
        );
        assert_eq!(conn_state(lab, &key), Some(ESTABLISHED as u8));
        fnat_seg(
            lab,
            svc,
            c,
            PSH | ACK,
            &ts,
            b"GET / HTTP/1.1",
            false,
            &format!("FULLNAT {fam} later ACK with data: no TOA"),
        );
        fnat_seg(
            lab,
            svc,
            c,
            ACK,
            &ts,
            b"",
            false,
            &format!("FULLNAT {fam} later pure ACK: no TOA"),
        );
    }
    // The handshake's ACK carrying data (v4): TOA inserted, the data untouched after it.
    let c = client(false, 52002);
    handshake(lab, 4, c, "TOA with data");
    fnat_seg(
        lab,
        4,
        c,
        PSH | ACK,
        &ts,
        b"GET / HTTP/1.1\r\n\r\n",
        true,
        "FULLNAT v4 handshake ACK with data: TOA, data kept",
    );
    // Options full: 36 bytes + 8 > 40, no TOA, still forwarded (and no TOA on the next ACK).
    let c = client(false, 52003);
    handshake(lab, 4, c, "options full");
    fnat_seg(
        lab,
        4,
        c,
        ACK,
        &[1u8; 36],
        b"",
        false,
        "FULLNAT v4 handshake ACK with 36 option bytes: no TOA, forwarded",
    );
    fnat_seg(
        lab,
        4,
        c,
        ACK,
        &ts,
        b"",
        false,
        "  then a later ACK: no TOA",
    );
    // The MTU (1500): IP length 1492 + 8 fits, 1493 + 8 does not (v4); v6 1481 + 20 does not.
    for (v6c, port, ip_len, fits) in [
        (false, 52004u16, 1492usize, true),
        (false, 52005, 1493, false),
        (true, 52006, 1480, true),
        (true, 52007, 1481, false),
    ] {
        let c = client(v6c, port);
        let svc = if v6c { 6 } else { 4 };
        handshake(lab, svc, c, "MTU");
        let hl = if v6c { 40 } else { 20 };
        let payload = vec![0x61u8; ip_len - hl - 20 - ts.len()];
        fnat_seg(
            lab,
            svc,
            c,
            ACK,
            &ts,
            &payload,
            fits,
            &format!(
                "FULLNAT {} handshake ACK of IP length {ip_len}: {}",
                if v6c { "v6" } else { "v4" },
                if fits {
                    "TOA fits the MTU"
                } else {
                    "over the MTU with TOA: none, forwarded"
                }
            ),
        );
    }
    // The real's ACK moved the entry to ESTABLISHED first: the client's ACK is no handshake's.
    let c = client(false, 52008);
    let key = handshake(lab, 4, c, "real's ACK first");
    fnat_out(lab, 4, c, ACK, "real's ACK in SYN_RECV");
    assert_eq!(conn_state(lab, &key), Some(ESTABLISHED as u8));
    fnat_seg(
        lab,
        4,
        c,
        ACK,
        &ts,
        b"",
        false,
        "FULLNAT v4 client ACK after the real's ACK: no TOA",
    );
    // The client's FIN+ACK in SYN_RECV (to TIME_WAIT): no TOA.
    let c = client(false, 52009);
    handshake(lab, 4, c, "FIN in handshake");
    fnat_seg(
        lab,
        4,
        c,
        FIN | ACK,
        &ts,
        b"",
        false,
        "FULLNAT v4 FIN+ACK in SYN_RECV: no TOA",
    );
}

/// The connection entry of flow `key`.
fn conn_of(lab: &Lab, key: &rvs_xdp::abi::FlowKey) -> rvs_xdp::abi::Conn {
    lab.b
        .conns()
        .unwrap()
        .into_iter()
        .find(|(k, _)| k == key)
        .expect("flow tracked")
        .1
}

/// Replies by reverse entries that no longer belong to their flow go to the kernel untouched
/// (`nat_stale`): the flow expired (a stray reply does not revive it), an expired NAT flow
/// came back on another real, a FULLNAT flow came back with another local port. A flow whose
/// connection entry was evicted keeps getting its replies (`nat_no_conn`).
fn stale_replies(lab: &mut Lab) {
    // NAT v4, two reals: the flow moves to the other real (as if it had expired and been
    // scheduled afresh; its old reverse entry is still there).
    let c = client(false, 49000);
    nat_round(
        lab,
        0,
        c,
        SYN,
        SYN | ACK,
        "flow that will move to another real",
    );
    let (vip, key) = (lab.svc(0).vip, flow(c, lab.svc(0).vip, TCP));
    let old = real_for(lab, 0, c);
    let moved = rvs_xdp::abi::Conn {
        real: 1 - old,
        ..conn_of(lab, &key)
    };
    lab.b.insert_nat_conn(&key, &moved).unwrap();
    let (r, rmac) = (real_sa(lab, old, vip.port()), lab.real(old).mac);
    let input = frame(DIR_MAC, rmac, r, c, TCP, &seg(TCP, ACK, b"late"));
    check(
        lab,
        "NAT reply from the flow's old real (flow now on another): untouched, to the kernel",
        &input,
        XDP_PASS,
        "nat_stale",
        |_| input.clone(),
    );
    assert_eq!(conn_of(lab, &key), moved, "the flow's entry is untouched");
    // NAT v6: the flow's entry expired; its real's late reply neither passes as the VIP nor
    // revives the entry.
    let c = client(true, 49001);
    nat_round(lab, 2, c, SYN, SYN | ACK, "v6 flow that will expire");
    let key = flow(c, lab.svc(2).vip, TCP);
    let expired = rvs_xdp::abi::Conn {
        last_ns: 1,
        ..conn_of(lab, &key)
    };
    lab.b.insert_nat_conn(&key, &expired).unwrap();
    let idx = real_for(lab, 2, c);
    let (r, rmac) = (real_sa(lab, idx, 80), lab.real(idx).mac);
    let input = frame(DIR_MAC, rmac, r, c, TCP, &seg(TCP, ACK, b"late"));
    check(
        lab,
        "NAT v6 reply after the flow expired: untouched, to the kernel",
        &input,
        XDP_PASS,
        "nat_stale",
        |_| input.clone(),
    );
    assert_eq!(conn_of(lab, &key), expired, "not revived");
    // FULLNAT v4: the flow has another local port now; a reply to the old one is stale, one
    // to the new one is the flow's.
    let c = client(false, 49002);
    fnat_round(lab, 4, c, SYN, b"", "flow whose local port will change");
    let (fvip, key) = (lab.svc(4).vip, flow(c, lab.svc(4).vip, TCP));
    let l = local_of(lab, &key).unwrap();
    let mut conn = conn_of(lab, &key);
    conn.lport = (l.port() ^ 1).to_be();
    lab.b.insert_nat_conn(&key, &conn).unwrap();
    let idx = real_for(lab, 4, c);
    let (r, rmac) = (real_sa(lab, idx, fvip.port()), lab.real(idx).mac);
    let input = frame(DIR_MAC, rmac, r, l, TCP, &seg(TCP, ACK, b"late"));
    check(
        lab,
        "FULLNAT reply to the flow's old local port: untouched, to the kernel",
        &input,
        XDP_PASS,
        "nat_stale",
        |_| input.clone(),
    );
    conn.lport = l.port().to_be();
    lab.b.insert_nat_conn(&key, &conn).unwrap();
    fnat_out(
        lab,
        4,
        c,
        ACK,
        "the same reply once the local port is the flow's again",
    );
    // NAT v4 UDP: the flow's connection entry is gone (evicted from the full LRU table): its
    // replies still go back by the reverse entry, counted apart.
    let c = client(false, 49003);
    nat_round(lab, 1, c, 0, 0, "flow whose entry will be evicted");
    let (vip, key) = (lab.svc(1).vip, flow(c, lab.svc(1).vip, UDP));
    lab.b.remove_conn(&key).unwrap();
    let idx = real_for(lab, 1, c);
    let (r, rmac) = (real_sa(lab, idx, vip.port()), lab.real(idx).mac);
    let input = frame(DIR_MAC, rmac, r, c, UDP, &seg(UDP, 0, b"answer"));
    let want = frame(DIR_MAC, rmac, vip, c, UDP, &seg(UDP, 0, b"answer"));
    check(
        lab,
        "NAT reply of a flow without a connection entry: rewritten by the reverse entry",
        &input,
        XDP_PASS,
        "nat_no_conn",
        |_| want,
    );
}

/// Counters of service `svc` and of real `idx` (in that order), read now.
fn slots(lab: &Lab, svc: u32, idx: u32) -> [abi::Counters; 2] {
    let real = abi::RVS_MAX_SERVICES as u32 + idx;
    [lab.b.counters(svc).unwrap(), lab.b.counters(real).unwrap()]
}

/// What moved between two readings of `slots`: per slot (in packets, in bytes, out packets,
/// out bytes).
fn moved(a: &[abi::Counters; 2], b: &[abi::Counters; 2]) -> [[u64; 4]; 2] {
    [0, 1].map(|i| {
        [
            b[i].packets - a[i].packets,
            b[i].bytes - a[i].bytes,
            b[i].out_packets - a[i].out_packets,
            b[i].out_bytes - a[i].out_bytes,
        ]
    })
}

/// The out-direction counters (IPVS's OutPkts/OutBytes): a reply rewritten back to the
/// client, and an ICMP error from the real side, count once in the flow's service and real,
/// by IP length; client packets count in the in direction only; a reply by a stale reverse
/// entry counts nowhere; a reply of a flow without a connection entry counts for its real
/// only (its service is known from the entry alone).
fn out_counters(lab: &mut Lab) {
    // (service, v6 client, client port): NAT TCP v4 and v6, FULLNAT TCP v4 and v6.
    for (svc, v6c, port) in [
        (0u32, false, 51000u16),
        (2, true, 51001),
        (4, false, 51002),
        (6, true, 51003),
    ] {
        let c = client(v6c, port);
        let idx = real_for(lab, svc, c);
        let fullnat = svc >= 4;
        let what = format!("counted flow of service {svc}");
        let s0 = slots(lab, svc, idx);
        if fullnat {
            fnat_in(lab, svc, c, SYN, b"", &what);
        } else {
            nat_in(lab, svc, c, SYN, &what);
        }
        let s1 = slots(lab, svc, idx);
        let syn_len = ip_packet(c, c, TCP, &seg(TCP, SYN, b"")).len() as u64;
        let want_in = [1, syn_len, 0, 0];
        assert_eq!(
            moved(&s0, &s1),
            [want_in; 2],
            "{what}: the client's SYN counts in"
        );
        if fullnat {
            fnat_out(lab, svc, c, SYN | ACK, &what);
        } else {
            nat_out(lab, svc, c, SYN | ACK, &what);
        }
        let s2 = slots(lab, svc, idx);
        let reply_len = ip_packet(c, c, TCP, &seg(TCP, SYN | ACK, b"world")).len() as u64;
        let want_out = [0, 0, 1, reply_len];
        assert_eq!(
            moved(&s1, &s2),
            [want_out; 2],
            "{what}: the reply counts out"
        );
    }
    // An ICMP error from the real side (port unreachable, NAT UDP v4) counts out.
    let c = client(false, 51004);
    let vip = lab.svc(1).vip;
    let idx = real_for(lab, 1, c);
    nat_in(lab, 1, c, 0, "flow the real will refuse");
    let r = real_sa(lab, idx, vip.port());
    let rmac = lab.real(idx).mac;
    let quoted = ip_packet(c, r, UDP, &seg(UDP, 0, b"query"));
    let input = icmp_frame(DIR_MAC, rmac, r.ip(), c.ip(), &quoted, 1000);
    let q2 = ip_packet(c, vip, UDP, &seg(UDP, 0, b"query"));
    let want = icmp_frame(DIR_MAC, rmac, vip.ip(), c.ip(), &q2, 1000);
    let s0 = slots(lab, 1, idx);
    check(
        lab,
        "NAT ICMP error from the real side: counted out",
        &input,
        XDP_PASS,
        "icmp_forwarded",
        |_| want,
    );
    let icmp_len = input.len() as u64 - 14;
    assert_eq!(moved(&s0, &slots(lab, 1, idx)), [[0, 0, 1, icmp_len]; 2]);
    // A reply by a stale reverse entry (the flow expired): counted nowhere.
    let c = client(false, 51005);
    nat_in(lab, 0, c, SYN, "flow that will expire");
    let key = flow(c, lab.svc(0).vip, TCP);
    let expired = abi::Conn {
        last_ns: 1,
        ..conn_of(lab, &key)
    };
    lab.b.insert_nat_conn(&key, &expired).unwrap();
    let idx = real_for(lab, 0, c);
    let (r, rmac) = (real_sa(lab, idx, 80), lab.real(idx).mac);
    let input = frame(DIR_MAC, rmac, r, c, TCP, &seg(TCP, ACK, b"late"));
    let s0 = slots(lab, 0, idx);
    check(
        lab,
        "NAT reply after the flow expired: not counted",
        &input,
        XDP_PASS,
        "nat_stale",
        |_| input.clone(),
    );
    assert_eq!(moved(&s0, &slots(lab, 0, idx)), [[0; 4]; 2]);
    // A reply of a flow whose connection entry is gone: counted for its real only.
    let c = client(false, 51006);
    nat_in(lab, 0, c, SYN, "flow whose entry will be evicted");
    lab.b.remove_conn(&flow(c, lab.svc(0).vip, TCP)).unwrap();
    let idx = real_for(lab, 0, c);
    let (r, rmac) = (real_sa(lab, idx, 80), lab.real(idx).mac);
    let input = frame(DIR_MAC, rmac, r, c, TCP, &seg(TCP, ACK, b"late"));
    let want = frame(
        DIR_MAC,
        rmac,
        lab.svc(0).vip,
        c,
        TCP,
        &seg(TCP, ACK, b"late"),
    );
    let s0 = slots(lab, 0, idx);
    check(
        lab,
        "NAT reply without a connection entry: counted for the real only",
        &input,
        XDP_PASS,
        "nat_no_conn",
        |_| want,
    );
    let len = input.len() as u64 - 14;
    assert_eq!(moved(&s0, &slots(lab, 0, idx)), [[0; 4], [0, 0, 1, len]]);
}

fn icmp(lab: &mut Lab) {
    // Client side, about a reply VIP -> client (NAT v4): goes to the real, quoted source
    // becomes the real.
    for (svc, v6c, port) in [(0u32, false, 40002u16), (2, true, 42000)] {
        let c = client(v6c, port);
        let vip = lab.svc(svc).vip;
        let idx = real_for(lab, svc, c);
        let r = real_sa(lab, idx, vip.port());
        let router = if v6c {
            v6(0xfe, 0xc)
        } else {
            IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1))
        };
        let quoted = ip_packet(vip, c, TCP, &seg(TCP, ACK, b"data"));
        let input = icmp_frame(DIR_MAC, CLIENT_MAC, router, vip.ip(), &quoted, 1000);
        let q2 = ip_packet(r, c, TCP, &seg(TCP, ACK, b"data"));
        let want = icmp_frame(lab.real(idx).mac, DIR_MAC, router, r.ip(), &q2, 1000);
        check(
            lab,
            &format!("NAT ICMP from the client side about {vip} -> {c}: to real {r}"),
            &input,
            XDP_TX,
            "icmp_forwarded",
            |_| want,
        );
    }
    // Real side, port unreachable about client -> real (NAT UDP): back to the client from
    // the VIP.
    for (svc, v6c, port) in [(1u32, false, 41000u16), (3, true, 43000)] {
        let c = client(v6c, port);
        let vip = lab.svc(svc).vip;
        let idx = real_for(lab, svc, c);
        let r = real_sa(lab, idx, vip.port());
        let quoted = ip_packet(c, r, UDP, &seg(UDP, 0, b"query"));
        let rmac = lab.real(idx).mac;
        let input = icmp_frame(DIR_MAC, rmac, r.ip(), c.ip(), &quoted, 1000);
        let q2 = ip_packet(c, vip, UDP, &seg(UDP, 0, b"query"));
        let want = icmp_frame(DIR_MAC, rmac, vip.ip(), c.ip(), &q2, 1000);
        check(
            lab,
            &format!("NAT ICMP from real {r} about {c} -> {r}: from {vip}"),
            &input,
            XDP_PASS,
            "icmp_forwarded",
            |_| want,
        );
    }
    // FULLNAT both ways, v4 UDP and v6 TCP; the v4 one quotes only 8 bytes of UDP... of IP+8.
    for (svc, v6c, port, proto) in [(5u32, false, 46000u16, UDP), (6, true, 47000, TCP)] {
        let c = client(v6c, port);
        let vip = lab.svc(svc).vip;
        let idx = real_for(lab, svc, c);
        let r = real_sa(lab, idx, vip.port());
        let l = local_of(lab, &flow(c, vip, proto)).unwrap();
        let rmac = lab.real(idx).mac;
        let hl = if v6c { 40 } else { 20 };
        let quoted = ip_packet(l, r, proto, &seg(proto, ACK, b"abc"));
        let input = icmp_frame(DIR_MAC, rmac, r.ip(), l.ip(), &quoted, hl + 8);
        let q2 = ip_packet(c, vip, proto, &seg(proto, ACK, b"abc"));
        let want = icmp_frame(DIR_MAC, rmac, vip.ip(), c.ip(), &q2, hl + 8);
        check(
            lab,
            &format!("FULLNAT ICMP from real about {l} -> {r}: to {c} from {vip}"),
            &input,
            XDP_PASS,
            "icmp_forwarded",
            |_| want,
        );
        let router = if v6c {
            v6(0xfe, 0xc)
        } else {
            IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1))
        };
        let quoted = ip_packet(vip, c, proto, &seg(proto, ACK, b"abc"));
        let input = icmp_frame(DIR_MAC, CLIENT_MAC, router, vip.ip(), &quoted, 1000);
        let q2 = ip_packet(r, l, proto, &seg(proto, ACK, b"abc"));
        let want = icmp_frame(rmac, DIR_MAC, l.ip(), r.ip(), &q2, 1000);
        check(
            lab,
            &format!("FULLNAT ICMP from the client side about {vip} -> {c}: to {r} from {l}"),
            &input,
            XDP_TX,
            "icmp_forwarded",
            |_| want,
        );
    }
    // About no tracked flow: untouched.
    let c = client(false, 49999);
    let vip = lab.svc(4).vip;
    let quoted = ip_packet(vip, c, TCP, &seg(TCP, ACK, b""));
    let input = icmp_frame(DIR_MAC, CLIENT_MAC, v4(1, 1), vip.ip(), &quoted, 1000);
    check(
        lab,
        "ICMP about an untracked FULLNAT flow: passed",
        &input,
        XDP_PASS,
        "icmp_untracked",
        |_| input.clone(),
    );
}

fn malformed(lab: &mut Lab) {
    let c = client(false, 40000);
    let r = real_sa(lab, real_for(lab, 0, c), 80);
    let input = frame(
        DIR_MAC,
        mac(7),
        r,
        client(false, 1),
        TCP,
        &seg(TCP, ACK, b"x"),
    );
    check(
        lab,
        "packet from a real for no tracked flow: not ours",
        &input,
        XDP_PASS,
        "not_vip",
        |_| input.clone(),
    );
    let mut input = frame(DIR_MAC, mac(7), r, c, TCP, &seg(TCP, ACK, b""));
    input.truncate(14 + 20 + 10);
    input[16..18].copy_from_slice(&30u16.to_be_bytes());
    check(
        lab,
        "reply with a truncated TCP header: malformed",
        &input,
        XDP_PASS,
        "malformed",
        |_| input.clone(),
    );
    let mut input = from_client(c, lab.svc(0).vip, TCP, &seg(TCP, ACK, b""));
    input[16..18].copy_from_slice(&200u16.to_be_bytes());
    check(
        lab,
        "client packet with IP length beyond the frame: malformed",
        &input,
        XDP_PASS,
        "malformed",
        |_| input.clone(),
    );
    // ICMP quoting too little of the flow.
    let vip = lab.svc(0).vip;
    let quoted = ip_packet(vip, c, TCP, &seg(TCP, ACK, b""));
    let input = icmp_frame(DIR_MAC, CLIENT_MAC, v4(1, 1), vip.ip(), &quoted, 22);
    check(
        lab,
        "ICMP quoting no ports: malformed",
        &input,
        XDP_PASS,
        "malformed",
        |_| input.clone(),
    );
    udp_lengths(lab);
}

/// A UDP length field below 8 or beyond the IP payload is malformed, to a NAT VIP (v4, v6)
/// and in a reply of a tracked NAT flow: passed untouched, nothing rewritten.
fn udp_lengths(lab: &mut Lab) {
    for (svc, v6) in [(1, false), (3, true)] {
        let c = client(v6, 41100);
        nat_round(lab, svc, c, 0, 0, "UDP flow for the length fixtures");
        let vip = lab.svc(svc).vip;
        let r = real_sa(lab, real_for(lab, svc, c), vip.port());
        let rmac = lab.real(real_for(lab, svc, c)).mac;
        let to_vip = from_client(c, vip, UDP, &seg(UDP, 0, b"datagram"));
        let reply = frame(DIR_MAC, rmac, r, c, UDP, &seg(UDP, 0, b"answer"));
        let at = 14 + if v6 { 40 } else { 20 } + 4;
        for (what, good) in [("to the VIP", to_vip), ("reply from the real", reply)] {
            let sent = (good.len() - at + 4) as u16;
            for len in [7, sent + 1] {
                let mut input = good.clone();
                input[at..at + 2].copy_from_slice(&len.to_be_bytes());
                let family = if v6 { "v6" } else { "v4" };
                check(
                    lab,
                    &format!("{family} NAT UDP {what}, UDP length {len} of {sent}: malformed"),
                    &input,
                    XDP_PASS,
                    "malformed",
                    |_| input.clone(),
                );
            }
        }
    }
}

fn new_lab(nat_conns: u32) -> Lab {
    let mut lab = Lab::with_balancer(Balancer::load_sized(nat_conns).unwrap());
    setup(&mut lab);
    lab
}

fn table_full_and_sweep() {
    let mut lab = new_lab(3);
    // NAT: three flows fit, the fourth does not.
    for p in 0..3u16 {
        nat_round(
            &mut lab,
            1,
            client(false, 50000 + p),
            0,
            0,
            &format!("small table, flow {p}"),
        );
    }
    let c = client(false, 50003);
    let vip = lab.svc(1).vip;
    let input = from_client(c, vip, UDP, &seg(UDP, 0, b"q"));
    check(
        &mut lab,
        "NAT table full: new flow dropped and counted",
        &input,
        XDP_DROP,
        "table_full",
        |_| input.clone(),
    );
    assert!(
        conn_state(&lab, &flow(c, vip, UDP)).is_none(),
        "no half-made flow"
    );
    let fvip = lab.svc(4).vip;
    let input = from_client(client(false, 50004), fvip, TCP, &seg(TCP, SYN, b""));
    check(
        &mut lab,
        "FULLNAT table full: new flow dropped and counted",
        &input,
        XDP_DROP,
        "table_full",
        |_| input.clone(),
    );
    // Nothing expired yet: the sweep keeps everything.
    let cfg = Config::default();
    let now = rvs_xdp::engine::monotonic_ns();
    let r = lab.b.sweep_nat(&cfg, now).unwrap();
    assert_eq!((r.seen, r.reclaimed), (3, 0), "{r:?}");
    // Later than every timeout: all reclaimed, and a new flow fits again.
    let r = lab.b.sweep_nat(&cfg, now + 400_000_000_000).unwrap();
    assert_eq!((r.seen, r.reclaimed), (3, 3), "{r:?}");
    assert!(lab.b.nat_rev().unwrap().is_empty() && lab.b.conns().unwrap().is_empty());
    fnat_round(
        &mut lab,
        4,
        client(false, 50004),
        SYN,
        b"",
        "after the sweep, FULLNAT fits",
    );
    let r = lab
        .b
        .sweep_nat(&cfg, rvs_xdp::engine::monotonic_ns() + 1_000_000_000_000)
        .unwrap();
    assert_eq!(r.reclaimed, 1);
    assert!(
        lab.b.fnat_flows().unwrap().is_empty(),
        "local port released"
    );
    // A FULLNAT flow whose entry was made afresh with another local port (it expired and came
    // back before a sweep): the sweep removes the old port's reverse entry, keeps the flow.
    let c = client(false, 50005);
    fnat_round(
        &mut lab,
        4,
        c,
        SYN,
        b"",
        "flow whose local port will change",
    );
    let key = flow(c, fvip, TCP);
    let (_, mut conn) = lab
        .b
        .conns()
        .unwrap()
        .into_iter()
        .find(|(k, _)| *k == key)
        .unwrap();
    conn.lport = (u16::from_be(conn.lport) ^ 1).to_be();
    lab.b.insert_nat_conn(&key, &conn).unwrap();
    let r = lab
        .b
        .sweep_nat(&cfg, rvs_xdp::engine::monotonic_ns())
        .unwrap();
    assert_eq!((r.seen, r.reclaimed, r.stale), (1, 0, 1), "{r:?}");
    assert!(
        lab.b.nat_rev().unwrap().is_empty(),
        "stale reverse entry removed"
    );
    assert!(conn_state(&lab, &key).is_some(), "the flow's entry stays");
    println!("{} small-table fixtures passed", lab.ran.len());
    assert!(lab.ran.len() >= 10);
}

fn sh(args: &[&str]) -> String {
    let out = std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A veth `dev` (peer `peer`) with `cidr` and permanent neighbours; its ifindex and MAC.
fn link(dev: &str, peer: &str, cidr: &str, neighs: &[(&str, &str)]) -> (u32, [u8; 6]) {
    sh(&[
        "ip", "link", "add", dev, "type", "veth", "peer", "name", peer,
    ]);
    sh(&["ip", "link", "set", dev, "up"]);
    sh(&["ip", "link", "set", peer, "up"]);
    sh(&["ip", "addr", "add", cidr, "dev", dev]);
    for (ip, mac) in neighs {
        sh(&[
            "ip",
            "neigh",
            "add",
            ip,
            "lladdr",
            mac,
            "dev",
            dev,
            "nud",
            "permanent",
        ]);
    }
    let name = std::ffi::CString::new(dev).unwrap();
    // SAFETY: if_nametoindex reads the NUL-terminated name we pass.
    let idx = unsafe { libc::if_nametoindex(name.as_ptr()) };
    let out = sh(&["ip", "-o", "link", "show", dev]);
    let ether = out
        .split("link/ether ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let mut m = [0u8; 6];
    for (b, h) in m.iter_mut().zip(ether.split(':')) {
        *b = u8::from_str_radix(h, 16).unwrap();
    }
    (idx, m)
}

/// With routes and neighbours for the reals' and the client's networks, bpf_fib_lookup
/// succeeds: the MACs come from it and the packet leaves by bpf_redirect_map (XDP_REDIRECT;
/// BPF_PROG_TEST_RUN does not transmit). Runs last: it changes routing for every later packet.
fn fib_path(lab: &mut Lab) {
    // SAFETY: a zeroed cpu_set_t with CPU 0 set; pid 0 is this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set),
            0
        );
    }
    sh(&["ip", "link", "set", "lo", "up"]);
    let (rx, rmac) = link(
        "nat0",
        "nat1",
        "10.0.2.1/24",
        &[
            ("10.0.2.7", "02:00:00:00:aa:07"),
            ("10.0.2.8", "02:00:00:00:aa:08"),
        ],
    );
    let (cx, cmac) = link(
        "natc0",
        "natc1",
        "192.168.1.1/24",
        &[("192.168.1.10", "02:00:00:00:aa:c1")],
    );
    std::fs::write("/proc/sys/net/ipv4/conf/all/forwarding", "1").unwrap();
    lab.b.set_tx_port(rx).unwrap();
    let c = client(false, 40002);
    let vip = lab.svc(0).vip;
    let idx = real_for(lab, 0, c);
    let r = real_sa(lab, idx, 80);
    let neigh = [0x02, 0, 0, 0, 0xaa, if idx == 0 { 0x07 } else { 0x08 }];
    let input = from_client(c, vip, TCP, &seg(TCP, ACK, b"fib"));
    let want = frame(neigh, rmac, c, r, TCP, &seg(TCP, ACK, b"fib"));
    check(
        lab,
        "NAT with a route and neighbour: MACs from the FIB, redirected",
        &input,
        XDP_REDIRECT,
        "nat_forwarded",
        |_| want.clone(),
    );
    // The neighbour goes away: the FIB alone would now fail (and the real's own MAC be used);
    // the per-CPU cache (this thread is pinned to one CPU) still has the next hop.
    sh(&["ip", "neigh", "del", &r.ip().to_string(), "dev", "nat0"]);
    check(
        lab,
        "NAT again, neighbour gone: next hop from the per-CPU cache",
        &input,
        XDP_REDIRECT,
        "nat_forwarded",
        |_| want.clone(),
    );
    let input = frame(DIR_MAC, neigh, r, c, TCP, &seg(TCP, ACK, b"back"));
    let want = frame(DIR_MAC, neigh, vip, c, TCP, &seg(TCP, ACK, b"back"));
    check(
        lab,
        "reply towards an interface not in the device map: to the kernel, MACs untouched",
        &input,
        XDP_PASS,
        "nat_reply",
        |_| want,
    );
    lab.b.set_tx_port(cx).unwrap();
    let want = frame(
        [0x02, 0, 0, 0, 0xaa, 0xc1],
        cmac,
        vip,
        c,
        TCP,
        &seg(TCP, ACK, b"back"),
    );
    check(
        lab,
        "reply with a route to the client: MACs from the FIB, redirected",
        &input,
        XDP_REDIRECT,
        "nat_reply",
        |_| want.clone(),
    );
    // The client's neighbour goes away: the flow's reverse entry still has the next hop.
    sh(&["ip", "neigh", "del", "192.168.1.10", "dev", "natc0"]);
    check(
        lab,
        "reply again, client's neighbour gone: next hop cached in the reverse entry",
        &input,
        XDP_REDIRECT,
        "nat_reply",
        |_| want,
    );
}

fn own_netns() {
    // SAFETY: unshare only changes this thread's network namespace.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNET): {}",
        std::io::Error::last_os_error()
    );
}

#[test]
fn nat_fixtures() {
    if skip_unless_root() {
        return;
    }
    own_netns();
    let mut lab = new_lab(abi::RVS_MAX_NAT_CONNS as u32);
    nat_basic(&mut lab);
    nat_states(&mut lab);
    fullnat(&mut lab);
    toa_handshake_ack(&mut lab);
    nat_state_machine(&mut lab);
    icmp(&mut lab);
    stale_replies(&mut lab);
    out_counters(&mut lab);
    malformed(&mut lab);
    table_full_and_sweep();
    fib_path(&mut lab);
    let n = lab.ran.len();
    println!("{n} NAT/FULLNAT fixtures passed");
    assert!(n >= 40, "only {n} fixtures");
    let svc0 = lab.b.counters(0).unwrap();
    assert!(svc0.conns >= 3 && svc0.packets > svc0.conns, "{svc0:?}");
}
