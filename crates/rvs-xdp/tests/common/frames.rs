//! Frame builders for the fixtures, written independently of the BPF program: Ethernet, IPv4
//! (with options and fragment fields), IPv6, TCP, UDP, ICMP and ICMPv6 with their checksums.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const ETH_IP4: u16 = 0x0800;
pub const ETH_IP6: u16 = 0x86dd;
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const FIN: u8 = 0x01;
pub const RST: u8 = 0x04;

pub type Mac = [u8; 6];

pub fn eth(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// One's-complement sum folded, not inverted.
pub fn sum16(data: &[u8], mut acc: u32) -> u32 {
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from(c[0]) << 8
        };
        acc += u32::from(w);
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

pub fn csum(data: &[u8]) -> u16 {
    !(sum16(data, 0) as u16)
}

/// IPv4 packet. `frag` is the raw flags+offset field (0x4000 = DF).
pub struct Ip4 {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    pub tos: u8,
    pub frag: u16,
    pub ttl: u8,
    pub id: u16,
    pub options: Vec<u8>,
}

impl Ip4 {
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, proto: u8) -> Ip4 {
        Ip4 {
            src,
            dst,
            proto,
            tos: 0,
            frag: 0x4000,
            ttl: 64,
            id: 0x1234,
            options: vec![],
        }
    }

    pub fn build(&self, payload: &[u8]) -> Vec<u8> {
        let hl = 20 + self.options.len();
        assert!(hl.is_multiple_of(4) && hl <= 60);
        let mut h = vec![0u8; hl];
        h[0] = 0x40 | (hl / 4) as u8;
        h[1] = self.tos;
        h[2..4].copy_from_slice(&((hl + payload.len()) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&self.id.to_be_bytes());
        h[6..8].copy_from_slice(&self.frag.to_be_bytes());
        h[8] = self.ttl;
        h[9] = self.proto;
        h[12..16].copy_from_slice(&self.src.octets());
        h[16..20].copy_from_slice(&self.dst.octets());
        h[20..].copy_from_slice(&self.options);
        let c = csum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(payload);
        h
    }
}

/// IPv6 packet (no extension headers unless given in `payload` with `next`).
pub fn ip6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, tclass: u8, hop: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 40];
    h[0] = 0x60 | (tclass >> 4);
    h[1] = (tclass & 0x0f) << 4;
    h[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    h[6] = next;
    h[7] = hop;
    h[8..24].copy_from_slice(&src.octets());
    h[24..40].copy_from_slice(&dst.octets());
    h.extend_from_slice(payload);
    h
}

pub fn tcp(sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[4..8].copy_from_slice(&1000u32.to_be_bytes());
    h[12] = 5 << 4;
    h[13] = flags;
    h[14..16].copy_from_slice(&65535u16.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 8];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// ICMP message: type, code, the 4 "rest of header" bytes, payload; checksum filled.
pub fn icmp4(ty: u8, code: u8, rest: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(payload);
    let c = csum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// ICMPv6 message with its pseudo-header checksum.
pub fn icmp6(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    ty: u8,
    code: u8,
    rest: [u8; 4],
    payload: &[u8],
) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(payload);
    let mut ph = Vec::new();
    ph.extend_from_slice(&src.octets());
    ph.extend_from_slice(&dst.octets());
    ph.extend_from_slice(&(m.len() as u32).to_be_bytes());
    ph.extend_from_slice(&[0, 0, 0, 58]);
    let c = !(sum16(&m, sum16(&ph, 0)) as u16);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// L4 segment for `proto`.
pub fn l4(proto: u8, sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    if proto == TCP {
        tcp(sport, dport, flags, payload)
    } else {
        udp(sport, dport, payload)
    }
}

/// A client packet: Ethernet + IP (v4 with DF, or v6) + TCP/UDP.
#[allow(clippy::too_many_arguments)]
pub fn packet(
    dmac: Mac,
    smac: Mac,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    sport: u16,
    dport: u16,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let seg = l4(proto, sport, dport, flags, payload);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            eth(dmac, smac, ETH_IP4, &Ip4::new(s, d, proto).build(&seg))
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => eth(dmac, smac, ETH_IP6, &ip6(s, d, proto, 0, 64, &seg)),
        _ => panic!("mixed families"),
    }
}
