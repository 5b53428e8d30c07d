//! Fixtures for the trivial forwarder (`rvs_forward`, the DR benchmark's ceiling) through
//! BPF_PROG_TEST_RUN: IPv4 TCP to VIP:port leaves with the chosen real's MAC as destination and
//! the director's as source (`XDP_TX`), the real chosen as `forward::real_index` says; anything
//! else passes untouched; the packet counter counts exactly the forwarded frames. Root only.

mod common;

use common::frames::{self, ACK, ETH_IP4, Ip4, SYN, TCP, UDP};
use common::lab::{CLIENT_MAC, DIR_MAC, XDP_PASS, XDP_TX, skip_unless_root};
use rvs_xdp::forward::{self, Forwarder};
use std::net::{IpAddr, Ipv4Addr};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const REALS: [[u8; 6]; 3] = [
    [2, 0, 0, 0, 1, 0x10],
    [2, 0, 0, 0, 1, 0x11],
    [2, 0, 0, 0, 1, 0x12],
];

fn to_vip(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    frames::packet(
        DIR_MAC,
        CLIENT_MAC,
        IpAddr::V4(CLIENT),
        IpAddr::V4(VIP),
        TCP,
        sport,
        dport,
        flags,
        b"GET / HTTP/1.1\r\n\r\n",
    )
}

/// The frame as the forwarder must send it: only the MACs changed.
fn forwarded(frame: &[u8], real: usize) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[0..6].copy_from_slice(&REALS[real]);
    f[6..12].copy_from_slice(&DIR_MAC);
    f
}

fn loaded() -> Forwarder {
    let mut fwd = Forwarder::load().unwrap();
    fwd.configure(VIP, 80, DIR_MAC, &REALS).unwrap();
    fwd
}

#[test]
fn forwards_vip_tcp_to_the_hashed_real() {
    if skip_unless_root() {
        return;
    }
    let fwd = loaded();
    let mut used = [0u32; 3];
    let ports = 40000..40064u16;
    for (n, sport) in ports.clone().enumerate() {
        let flags = if n % 2 == 0 { SYN } else { ACK };
        let frame = to_vip(sport, 80, flags);
        let real = forward::real_index(CLIENT, sport, REALS.len());
        let (action, out) = fwd.test_run(&frame).unwrap();
        assert_eq!(action, XDP_TX, "port {sport}");
        assert_eq!(out, forwarded(&frame, real), "port {sport}: real {real}");
        used[real] += 1;
    }
    // 64 flows from one client: every real gets some.
    assert!(used.iter().all(|&n| n > 0), "{used:?}");
    // IP options move the TCP header: still found.
    let seg = frames::tcp(41000, 80, SYN, b"");
    let mut ip = Ip4::new(CLIENT, VIP, TCP);
    ip.options = vec![1, 1, 1, 0];
    let frame = frames::eth(DIR_MAC, CLIENT_MAC, ETH_IP4, &ip.build(&seg));
    let (action, out) = fwd.test_run(&frame).unwrap();
    assert_eq!(action, XDP_TX);
    let real = forward::real_index(CLIENT, 41000, REALS.len());
    assert_eq!(out, forwarded(&frame, real));
    assert_eq!(fwd.forwarded().unwrap(), ports.len() as u64 + 1);
}

#[test]
fn passes_everything_else_untouched() {
    if skip_unless_root() {
        return;
    }
    let fwd = loaded();
    let other = Ipv4Addr::new(10, 0, 0, 9);
    let c = IpAddr::V4(CLIENT);
    let v6: IpAddr = "fd00::3".parse().unwrap();
    let mut fragment = Ip4::new(CLIENT, VIP, TCP);
    fragment.frag = 0x2000; // more fragments
    let full = to_vip(40000, 80, SYN);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("TCP to the VIP, other port", to_vip(40000, 81, SYN)),
        (
            "TCP to another address, same port",
            frames::packet(
                DIR_MAC,
                CLIENT_MAC,
                c,
                IpAddr::V4(other),
                TCP,
                40000,
                80,
                SYN,
                b"",
            ),
        ),
        (
            "UDP to VIP:80",
            frames::packet(
                DIR_MAC,
                CLIENT_MAC,
                c,
                IpAddr::V4(VIP),
                UDP,
                40000,
                80,
                0,
                b"x",
            ),
        ),
        (
            "IPv6 TCP to port 80",
            frames::packet(
                DIR_MAC,
                CLIENT_MAC,
                "fd00::10".parse().unwrap(),
                v6,
                TCP,
                40000,
                80,
                SYN,
                b"",
            ),
        ),
        (
            "IPv4 fragment to the VIP",
            frames::eth(
                DIR_MAC,
                CLIENT_MAC,
                ETH_IP4,
                &fragment.build(&frames::tcp(40000, 80, SYN, b"")),
            ),
        ),
        ("truncated TCP header", full[..14 + 20 + 10].to_vec()),
        ("ARP-sized runt", full[..14].to_vec()),
    ];
    for (what, frame) in cases {
        let (action, out) = fwd.test_run(&frame).unwrap();
        assert_eq!(action, XDP_PASS, "{what}");
        assert_eq!(out, frame, "{what}: frame changed");
    }
    assert_eq!(fwd.forwarded().unwrap(), 0);
}

#[test]
fn unconfigured_passes_and_bad_real_counts_are_refused() {
    if skip_unless_root() {
        return;
    }
    let mut fwd = Forwarder::load().unwrap();
    let frame = to_vip(40000, 80, SYN);
    assert_eq!(fwd.test_run(&frame).unwrap(), (XDP_PASS, frame.clone()));
    assert!(fwd.configure(VIP, 80, DIR_MAC, &[]).is_err());
    let too_many = vec![REALS[0]; forward::MAX_REALS + 1];
    assert!(fwd.configure(VIP, 80, DIR_MAC, &too_many).is_err());
    // The largest table: a real beyond the first few is reachable.
    let macs: Vec<[u8; 6]> = (0..forward::MAX_REALS as u8)
        .map(|i| [2, 0, 0, 0, 2, i])
        .collect();
    fwd.configure(VIP, 80, DIR_MAC, &macs).unwrap();
    let sport = (40000..41000u16)
        .find(|&p| forward::real_index(CLIENT, p, macs.len()) == forward::MAX_REALS - 1)
        .unwrap();
    let frame = to_vip(sport, 80, SYN);
    let (action, out) = fwd.test_run(&frame).unwrap();
    assert_eq!(action, XDP_TX);
    assert_eq!(out[0..6], macs[forward::MAX_REALS - 1]);
}
