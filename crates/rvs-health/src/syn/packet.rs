//! The SYN prober's wire format: the SYN it sends (TCP header with an MSS option, checksum over
//! the pseudo-header of RFC 793 / RFC 8200), and the replies it reads (an IPv4 packet from a raw
//! IPv4 socket, or a bare TCP segment from a raw IPv6 socket). Offsets are named once here; after
//! the length checks nothing panics.

use std::net::{IpAddr, Ipv4Addr};

/// Length of the SYN we send: 20-byte TCP header + 4-byte MSS option.
pub const SYN_LEN: usize = 24;
/// Smallest TCP header.
const TCP_MIN: usize = 20;
/// Smallest IPv4 header.
const IPV4_MIN: usize = 20;

// TCP header offsets
const SRC_PORT: usize = 0;
const DST_PORT: usize = 2;
const SEQ: usize = 4;
const ACK: usize = 8;
const DATA_OFF: usize = 12;
const FLAGS: usize = 13;
const WINDOW: usize = 14;
const CHECKSUM: usize = 16;
const OPTIONS: usize = 20;

// IPv4 header offsets
const V4_FRAG: usize = 6;
const V4_PROTO: usize = 9;
const V4_SRC: usize = 12;
const V4_DST: usize = 16;

/// TCP flags.
pub const FLAG_SYN: u8 = 0x02;
pub const FLAG_RST: u8 = 0x04;
pub const FLAG_ACK: u8 = 0x10;

/// The window we advertise in the SYN.
const WINDOW_SIZE: u16 = 64240;
/// `MSS` option: kind 2, length 4.
const OPT_MSS: [u8; 2] = [2, 4];
/// The MSS we announce (1460: Ethernet; the real never sends data anyway).
pub const MSS: u16 = 1460;
const IPPROTO_TCP: u8 = 6;

/// Fold a 32-bit one's-complement sum of 16-bit big-endian words of `data` into `sum`.
fn sum_words(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum = sum.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
    }
    if let [last] = chunks.remainder() {
        sum = sum.wrapping_add(u32::from(*last) << 8);
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The TCP checksum of `segment` (its checksum field taken as it is: zero it to compute, or
/// leave it to verify — a correct segment then gives 0) between `src` and `dst`.
pub fn tcp_checksum(src: IpAddr, dst: IpAddr, segment: &[u8]) -> u16 {
    let len = segment.len() as u32;
    let mut sum = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let s = sum_words(0, &s.octets());
            let s = sum_words(s, &d.octets());
            s + u32::from(IPPROTO_TCP) + len
        }
        (s, d) => {
            let to6 = |a: IpAddr| match a {
                IpAddr::V4(v) => v.to_ipv6_mapped(),
                IpAddr::V6(v) => v,
            };
            let s = sum_words(0, &to6(s).octets());
            let s = sum_words(s, &to6(d).octets());
            s + (len >> 16) + (len & 0xffff) + u32::from(IPPROTO_TCP)
        }
    };
    sum = sum_words(sum, segment);
    fold(sum)
}

/// What the SYN carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syn {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    /// Our initial sequence number (it encodes the check's identity).
    pub isn: u32,
}

impl Syn {
    /// Write the SYN segment (TCP header and MSS option, checksum filled in) into `buf`.
    pub fn emit(&self, buf: &mut [u8; SYN_LEN]) {
        buf.fill(0);
        buf[SRC_PORT..SRC_PORT + 2].copy_from_slice(&self.src_port.to_be_bytes());
        buf[DST_PORT..DST_PORT + 2].copy_from_slice(&self.dst_port.to_be_bytes());
        buf[SEQ..SEQ + 4].copy_from_slice(&self.isn.to_be_bytes());
        buf[DATA_OFF] = ((SYN_LEN / 4) as u8) << 4;
        buf[FLAGS] = FLAG_SYN;
        buf[WINDOW..WINDOW + 2].copy_from_slice(&WINDOW_SIZE.to_be_bytes());
        buf[OPTIONS..OPTIONS + 2].copy_from_slice(&OPT_MSS);
        buf[OPTIONS + 2..OPTIONS + 4].copy_from_slice(&MSS.to_be_bytes());
        let c = tcp_checksum(self.src, self.dst, buf);
        buf[CHECKSUM..CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
    }
}

/// Length of the RST we send.
pub const RST_LEN: usize = 20;

/// Write an RST (no ACK, `seq` = the acknowledgement number of the segment it answers, as the
/// kernel's reset of a SYN-ACK) from `src:src_port` to `dst:dst_port` into `buf`.
pub fn emit_rst(
    src: IpAddr,
    dst: IpAddr,
    src_port: u16,
    dst_port: u16,
    seq: u32,
    buf: &mut [u8; RST_LEN],
) {
    buf.fill(0);
    buf[SRC_PORT..SRC_PORT + 2].copy_from_slice(&src_port.to_be_bytes());
    buf[DST_PORT..DST_PORT + 2].copy_from_slice(&dst_port.to_be_bytes());
    buf[SEQ..SEQ + 4].copy_from_slice(&seq.to_be_bytes());
    buf[DATA_OFF] = ((RST_LEN / 4) as u8) << 4;
    buf[FLAGS] = FLAG_RST;
    let c = tcp_checksum(src, dst, buf);
    buf[CHECKSUM..CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
}

/// The fields of a received TCP segment the prober matches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
}

impl Segment {
    /// Parse a TCP header (`None` if shorter than 20 bytes or with a bad data offset).
    pub fn parse(tcp: &[u8]) -> Option<Segment> {
        if tcp.len() < TCP_MIN || usize::from(tcp[DATA_OFF] >> 4) * 4 < TCP_MIN {
            return None;
        }
        let u16_at = |o: usize| u16::from_be_bytes([tcp[o], tcp[o + 1]]);
        let u32_at = |o: usize| u32::from_be_bytes([tcp[o], tcp[o + 1], tcp[o + 2], tcp[o + 3]]);
        Some(Segment {
            src_port: u16_at(SRC_PORT),
            dst_port: u16_at(DST_PORT),
            seq: u32_at(SEQ),
            ack: u32_at(ACK),
            flags: tcp[FLAGS],
        })
    }

    /// A SYN-ACK: the port is open.
    pub fn is_syn_ack(&self) -> bool {
        self.flags & (FLAG_SYN | FLAG_ACK | FLAG_RST) == FLAG_SYN | FLAG_ACK
    }

    /// A reset: the port is closed.
    pub fn is_rst(&self) -> bool {
        self.flags & FLAG_RST != 0
    }
}

/// An IPv4 packet as a raw IPv4 socket delivers it: (source, destination, TCP segment). `None`
/// for anything but an unfragmented (first fragment) TCP packet with a sane header.
pub fn parse_ipv4(pkt: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, &[u8])> {
    if pkt.len() < IPV4_MIN || pkt[0] >> 4 != 4 || pkt[V4_PROTO] != IPPROTO_TCP {
        return None;
    }
    if u16::from_be_bytes([pkt[V4_FRAG], pkt[V4_FRAG + 1]]) & 0x1fff != 0 {
        return None;
    }
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    let tcp = pkt.get(ihl.max(IPV4_MIN)..)?;
    let addr = |o: usize| Ipv4Addr::new(pkt[o], pkt[o + 1], pkt[o + 2], pkt[o + 3]);
    Some((addr(V4_SRC), addr(V4_DST), tcp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // Captured once with tcpdump on a veth with tx checksum offload off, so the kernel computed
    // the checksums: `bash -c 'echo > /dev/tcp/10.77.0.2/8080'` to a closed port.
    const KERNEL_SYN_V4: &str = "4500 003c 9506 4000 4006 9119 0a4d 0001 0a4d 0002 ceb6 1f90 \
        ebc9 14d0 0000 0000 a002 faf0 26dd 0000 0204 05b4 0402 080a 1427 0e8b 0000 0000 0103 030a";
    const KERNEL_RST_V4: &str = "4500 0028 0000 4000 4006 2634 0a4d 0002 0a4d 0001 1f90 ceb6 \
        0000 0000 ebc9 14d1 5014 0000 ac52 0000";
    // the same over IPv6 (fd77::1 → fd77::2), TCP segments only
    const KERNEL_SYN_V6_TCP: &str = "93b6 1f90 3901 9979 0000 0000 a002 fd20 97cb 0000 0204 05a0 \
        0402 080a 6477 cdf9 0000 0000 0103 030a";
    const KERNEL_RST_V6_TCP: &str = "1f90 93b6 0000 0000 3901 997a 5014 0000 2f1c 0000";

    fn v6(last: u16) -> IpAddr {
        IpAddr::V6(Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, last))
    }

    #[test]
    fn checksum_matches_kernel_built_packets() {
        for (pkt, want_ack) in [(KERNEL_SYN_V4, None), (KERNEL_RST_V4, Some(0xebc9_14d1))] {
            let p = hex(pkt);
            let (src, dst, tcp) = parse_ipv4(&p).unwrap();
            assert_eq!(tcp_checksum(src.into(), dst.into(), tcp), 0, "verifies");
            let mut zeroed = tcp.to_vec();
            zeroed[CHECKSUM..CHECKSUM + 2].fill(0);
            let c = tcp_checksum(src.into(), dst.into(), &zeroed);
            assert_eq!(c.to_be_bytes(), tcp[CHECKSUM..CHECKSUM + 2], "recomputed");
            if let Some(ack) = want_ack {
                let s = Segment::parse(tcp).unwrap();
                assert!(s.is_rst() && !s.is_syn_ack());
                assert_eq!((s.ack, s.src_port, s.dst_port), (ack, 8080, 0xceb6));
            }
        }
        let syn = hex(KERNEL_SYN_V6_TCP);
        assert_eq!(tcp_checksum(v6(1), v6(2), &syn), 0);
        let rst = hex(KERNEL_RST_V6_TCP);
        assert_eq!(tcp_checksum(v6(2), v6(1), &rst), 0);
        assert_ne!(tcp_checksum(v6(1), v6(3), &rst), 0, "wrong address fails");
        let s = Segment::parse(&rst).unwrap();
        assert_eq!(s.ack, 0x3901_997a);
    }

    #[test]
    fn our_syn_verifies_and_parses_back() {
        for (src, dst) in [
            (IpAddr::from([10, 77, 0, 1]), IpAddr::from([10, 77, 0, 2])),
            (v6(1), v6(2)),
        ] {
            let syn = Syn {
                src,
                dst,
                src_port: 61000,
                dst_port: 8080,
                isn: 0xdead_beef,
            };
            let mut buf = [0u8; SYN_LEN];
            syn.emit(&mut buf);
            assert_eq!(tcp_checksum(src, dst, &buf), 0);
            let s = Segment::parse(&buf).unwrap();
            assert_eq!(
                (s.src_port, s.dst_port, s.seq, s.flags),
                (61000, 8080, 0xdead_beef, FLAG_SYN)
            );
            assert!(!s.is_syn_ack() && !s.is_rst());
            assert_eq!(&buf[OPTIONS..], &[2, 4, 0x05, 0xb4]);
        }
    }

    #[test]
    fn our_rst_verifies_and_resets_with_the_acknowledged_sequence() {
        let (src, dst) = (v6(1), v6(2));
        let mut buf = [0u8; RST_LEN];
        emit_rst(src, dst, 61000, 8080, 0x3901_997a, &mut buf);
        assert_eq!(tcp_checksum(src, dst, &buf), 0);
        let s = Segment::parse(&buf).unwrap();
        assert!(s.is_rst() && !s.is_syn_ack());
        assert_eq!((s.src_port, s.dst_port, s.seq), (61000, 8080, 0x3901_997a));
    }

    #[test]
    fn parse_rejects_what_is_not_a_whole_tcp_header() {
        assert!(Segment::parse(&[0u8; 19]).is_none());
        let mut p = hex(KERNEL_RST_V4);
        assert!(parse_ipv4(&p[..30]).is_some_and(|(_, _, t)| Segment::parse(t).is_none()));
        p[V4_PROTO] = 17;
        assert!(parse_ipv4(&p).is_none(), "not TCP");
        let mut p = hex(KERNEL_RST_V4);
        p[V4_FRAG + 1] = 1;
        assert!(parse_ipv4(&p).is_none(), "a later fragment");
        let mut syn_ack = hex(KERNEL_RST_V6_TCP);
        syn_ack[FLAGS] = FLAG_SYN | FLAG_ACK;
        assert!(Segment::parse(&syn_ack).unwrap().is_syn_ack());
    }
}
