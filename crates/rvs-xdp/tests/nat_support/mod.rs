//! Support for the NAT/FULLNAT fixtures: frames with full TCP/UDP checksums computed from
//! scratch (so the program's incremental updates are checked against an independent sum),
//! TCP options, quoted packets for ICMP errors, and a runner whose expected output may depend
//! on state the program chose (FULLNAT's random local port).

#![allow(dead_code)]

use crate::common::frames::{self, Ip4, Mac};
use crate::common::lab::{CLIENT_MAC, DIR_MAC, Lab, hex};
use rvs_xdp::abi::{self, FlowKey, addr_of};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Recompute the TCP/UDP checksum of an IP packet (`ip` starts at the IP header).
pub fn fix_l4(ip: &mut [u8]) {
    let (proto, l4off, src, dst) = if ip[0] >> 4 == 4 {
        let ihl = usize::from(ip[0] & 0xf) * 4;
        (ip[9], ihl, ip[12..16].to_vec(), ip[16..20].to_vec())
    } else {
        (ip[6], 40, ip[8..24].to_vec(), ip[24..40].to_vec())
    };
    let at = match proto {
        frames::TCP => 16,
        frames::UDP => 6,
        _ => return,
    };
    let len = ip.len() - l4off;
    ip[l4off + at] = 0;
    ip[l4off + at + 1] = 0;
    let mut ph = Vec::new();
    ph.extend_from_slice(&src);
    ph.extend_from_slice(&dst);
    ph.extend_from_slice(&(len as u32).to_be_bytes());
    ph.extend_from_slice(&[0, 0, 0, proto]);
    let mut c = !(frames::sum16(&ip[l4off..], frames::sum16(&ph, 0)) as u16);
    if c == 0 && proto == frames::UDP {
        c = 0xffff;
    }
    ip[l4off + at..l4off + at + 2].copy_from_slice(&c.to_be_bytes());
}

/// TCP segment with options (a multiple of 4 bytes) after the fixed header.
pub fn tcp_opts(sport: u16, dport: u16, flags: u8, opts: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut t = frames::tcp(sport, dport, flags, b"");
    t[12] = (((20 + opts.len()) / 4) << 4) as u8;
    t.extend_from_slice(opts);
    t.extend_from_slice(payload);
    t
}

/// An IP packet src → dst carrying `seg` (TCP/UDP), checksums complete.
pub fn ip_packet(src: SocketAddr, dst: SocketAddr, proto: u8, seg: &[u8]) -> Vec<u8> {
    let mut seg = seg.to_vec();
    seg[0..2].copy_from_slice(&src.port().to_be_bytes());
    seg[2..4].copy_from_slice(&dst.port().to_be_bytes());
    let mut ip = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Ip4::new(s, d, proto).build(&seg),
        (IpAddr::V6(s), IpAddr::V6(d)) => frames::ip6(s, d, proto, 0, 64, &seg),
        _ => panic!("mixed families"),
    };
    fix_l4(&mut ip);
    ip
}

/// A frame dmac ← smac with a TCP/UDP packet.
pub fn frame(
    dmac: Mac,
    smac: Mac,
    src: SocketAddr,
    dst: SocketAddr,
    proto: u8,
    seg: &[u8],
) -> Vec<u8> {
    let ip = ip_packet(src, dst, proto, seg);
    let ty = if src.is_ipv4() {
        frames::ETH_IP4
    } else {
        frames::ETH_IP6
    };
    frames::eth(dmac, smac, ty, &ip)
}

/// The segment for `proto` (ports are filled in by `ip_packet`).
pub fn seg(proto: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    frames::l4(proto, 0, 0, flags, payload)
}

/// An ICMP error from `from` to `to` quoting `quoted` (an IP packet, cut to `quote` bytes):
/// v4 destination unreachable / port unreachable, v6 destination unreachable / port
/// unreachable.
pub fn icmp_frame(
    dmac: Mac,
    smac: Mac,
    from: IpAddr,
    to: IpAddr,
    quoted: &[u8],
    quote: usize,
) -> Vec<u8> {
    let q = &quoted[..quote.min(quoted.len())];
    match (from, to) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let m = frames::icmp4(3, 3, [0; 4], q);
            frames::eth(dmac, smac, frames::ETH_IP4, &Ip4::new(s, d, 1).build(&m))
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let m = frames::icmp6(s, d, 1, 4, [0; 4], q);
            frames::eth(
                dmac,
                smac,
                frames::ETH_IP6,
                &frames::ip6(s, d, 58, 0, 64, &m),
            )
        }
        _ => panic!("mixed families"),
    }
}

/// The TOA option for a client.
pub fn toa(client: SocketAddr) -> Vec<u8> {
    let mut o = vec![254u8, 0];
    o.extend_from_slice(&client.port().to_be_bytes());
    match client.ip() {
        IpAddr::V4(a) => o.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => o.extend_from_slice(&a.octets()),
    }
    o[1] = o.len() as u8;
    o
}

/// The ABI flow key of client → vip.
pub fn flow(client: SocketAddr, vip: SocketAddr, proto: u8) -> FlowKey {
    let (src, family) = addr_of(client.ip());
    FlowKey {
        src,
        dst: addr_of(vip.ip()).0,
        sport: client.port().to_be(),
        dport: vip.port().to_be(),
        proto,
        family,
        pad: [0; 2],
    }
}

/// FULLNAT local address and port the program gave a flow.
pub fn local_of(lab: &Lab, key: &FlowKey) -> Option<SocketAddr> {
    lab.b
        .fnat_flows()
        .unwrap()
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, f)| SocketAddr::new(abi::ip_of(&f.laddr, key.family), u16::from_be(f.lport)))
}

/// Connection state of a flow (0 active, 1 closing), if tracked.
pub fn conn_state(lab: &Lab, key: &FlowKey) -> Option<u8> {
    lab.b
        .conns()
        .unwrap()
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, c)| c.state)
}

/// Run `input`; check the action, the outcome counter that moved, and the output frame
/// against `expect` computed after the run (it may read state the program chose).
pub fn check(
    lab: &mut Lab,
    desc: &str,
    input: &[u8],
    action: u32,
    outcome: &str,
    expect: impl FnOnce(&Lab) -> Vec<u8>,
) {
    let before = lab.b.outcomes().unwrap();
    let (got, out) = lab.b.test_run(input).unwrap();
    let after = lab.b.outcomes().unwrap();
    assert_eq!(got, action, "{desc}: action");
    let moved: Vec<&str> = (0..after.len())
        .filter(|i| after[*i] != before[*i])
        .map(|i| abi::outcome_name(i as u32).unwrap_or("?"))
        .collect();
    assert_eq!(moved, vec![outcome], "{desc}: outcome counters");
    let want = expect(lab);
    if out != want {
        panic!(
            "{desc}: output differs\n got  {}\n want {}",
            hex(&out),
            hex(&want)
        );
    }
    println!("ok  {desc:<72} action={got} outcome={outcome}");
    lab.ran.push(desc.to_string());
}

/// A client frame to the director.
pub fn from_client(client: SocketAddr, vip: SocketAddr, proto: u8, seg: &[u8]) -> Vec<u8> {
    frame(DIR_MAC, CLIENT_MAC, client, vip, proto, seg)
}

/// fd00:NET::LAST, the NAT labs' IPv6 addresses.
pub fn v6(last: u16, net: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0xfd00, net, 0, 0, 0, 0, 0, last))
}

pub fn sa(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

/// 02:00:00:00:00:X.
pub fn mac(x: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, x]
}

/// The NAT labs' client: 192.168.1.10 or fd00:c::10, on `port`.
pub fn client(v6c: bool, port: u16) -> SocketAddr {
    if v6c {
        sa(v6(0x10, 0xc), port)
    } else {
        sa(IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 10)), port)
    }
}
