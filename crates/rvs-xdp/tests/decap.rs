//! Fixtures for the real server's decapsulation program (`rvs_decap`) through
//! BPF_PROG_TEST_RUN: the director's encapsulated frames come out as the inner frame. Root only.

mod common;

use common::frames::{self, Ip4, SYN, TCP};
use common::lab::{CLIENT_MAC, DIR_MAC, LabReal, XDP_PASS, encapsulated, skip_unless_root};
use rvs_xdp::abi;
use rvs_xdp::decap::Decap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const REAL_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x17];

fn real(ip: IpAddr) -> LabReal {
    LabReal {
        ip,
        mac: REAL_MAC,
        method: abi::RVS_METHOD_TUN as u8,
    }
}

/// The inner frame the real's kernel must see: same MACs, the inner packet's EtherType.
fn inner_frame(client_frame: &[u8]) -> Vec<u8> {
    let ethertype = if client_frame[14] >> 4 == 6 {
        frames::ETH_IP6
    } else {
        frames::ETH_IP4
    };
    frames::eth(REAL_MAC, DIR_MAC, ethertype, &client_frame[14..])
}

#[test]
fn decap_fixtures() {
    if skip_unless_root() {
        return;
    }
    let vip4: IpAddr = "10.0.0.4".parse().unwrap();
    let vip6: IpAddr = "fd00::4".parse().unwrap();
    let mut d = Decap::load().unwrap();
    d.add_vip(vip4).unwrap();
    d.add_vip(vip6).unwrap();
    let c4: IpAddr = "192.168.1.10".parse().unwrap();
    let c6: IpAddr = "fd00:c::10".parse().unwrap();
    let rip4: IpAddr = "10.0.1.7".parse().unwrap();
    let rip6: IpAddr = "fd00:1::7".parse().unwrap();
    let p4 = frames::packet(DIR_MAC, CLIENT_MAC, c4, vip4, TCP, 40000, 80, SYN, b"");
    let p6 = frames::packet(DIR_MAC, CLIENT_MAC, c6, vip6, TCP, 40000, 80, SYN, b"hello");
    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        (
            "IPv4 in IPv4 for our VIP: outer header stripped",
            encapsulated(&p4, real(rip4)),
            inner_frame(&p4),
        ),
        (
            "IPv6 in IPv6 for our VIP: outer header stripped",
            encapsulated(&p6, real(rip6)),
            inner_frame(&p6),
        ),
        (
            "IPv4 in IPv6 for our VIP: EtherType becomes IPv4",
            encapsulated(&p4, real(rip6)),
            inner_frame(&p4),
        ),
        (
            "IPv6 in IPv4 for our VIP: EtherType becomes IPv6",
            encapsulated(&p6, real(rip4)),
            inner_frame(&p6),
        ),
    ];
    let mut n = 0;
    for (desc, input, want) in cases {
        let (action, out) = d.test_run(&input).unwrap();
        assert_eq!(action, XDP_PASS, "{desc}");
        assert_eq!(out, want, "{desc}");
        n += 1;
        println!("ok  {desc}");
    }
    assert_eq!(d.decapsulated().unwrap(), n);
    let other = frames::packet(
        DIR_MAC,
        CLIENT_MAC,
        c4,
        "10.0.0.99".parse().unwrap(),
        TCP,
        1,
        80,
        SYN,
        b"",
    );
    let untouched: Vec<(&str, Vec<u8>)> = vec![
        (
            "tunnelled packet for another address: untouched",
            encapsulated(&other, real(rip4)),
        ),
        ("plain packet to the VIP: untouched", p4.clone()),
        (
            "GRE (protocol 47) packet: untouched",
            frames::eth(
                REAL_MAC,
                DIR_MAC,
                frames::ETH_IP4,
                &Ip4::new(Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 1, 7), 47)
                    .build(&[0u8; 24]),
            ),
        ),
        (
            "truncated inner header: untouched",
            frames::eth(
                REAL_MAC,
                DIR_MAC,
                frames::ETH_IP6,
                &frames::ip6(
                    Ipv6Addr::LOCALHOST,
                    Ipv6Addr::LOCALHOST,
                    41,
                    0,
                    64,
                    &[0x60, 0, 0],
                ),
            ),
        ),
    ];
    for (desc, input) in untouched {
        let (action, out) = d.test_run(&input).unwrap();
        assert_eq!((action, &out), (XDP_PASS, &input), "{desc}");
        println!("ok  {desc}");
    }
    assert_eq!(
        d.decapsulated().unwrap(),
        n,
        "nothing else was decapsulated"
    );
}
