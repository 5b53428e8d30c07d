//! The classic BPF socket filters (`SO_ATTACH_FILTER`) of the prober's raw sockets: accept only
//! TCP segments to the reserved port block that are a SYN-ACK or carry RST, so a busy director's
//! other TCP traffic is never copied into the process. A raw IPv4 socket's filter sees the IPv4
//! header first; a raw IPv6 socket's sees the TCP header first.

use socket2::SockFilter;

// classic BPF opcodes (linux/filter.h)
const LD_B_ABS: u16 = 0x30;
const LD_H_ABS: u16 = 0x28;
const LD_H_IND: u16 = 0x48;
const LD_B_IND: u16 = 0x50;
const LDX_B_MSH: u16 = 0xb1;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JGE_K: u16 = 0x35;
const JSET_K: u16 = 0x45;
const AND_K: u16 = 0x54;
const RET_K: u16 = 0x06;

/// Bytes kept of an accepted packet: enough for an IPv4 header with options and a TCP header.
pub const SNAP: u32 = 128;
const SYN_ACK: u32 = 0x12;
const RST: u32 = 0x04;

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

const fn op(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn { code, jt, jf, k }
}

/// The program in the form `Socket::attach_filter` takes.
pub fn to_sock_filter(prog: &[Insn]) -> Vec<SockFilter> {
    prog.iter()
        .map(|i| SockFilter::new(i.code, i.jt, i.jf, i.k))
        .collect()
}

/// The tail shared by both programs, from "A = destination port" on: port in `lo..=hi`, then
/// RST or SYN+ACK. `x` is added to the TCP offsets (indirect loads) for IPv4.
fn port_and_flags(lo: u16, hi: u16, indirect: bool) -> [Insn; 8] {
    let flags = if indirect {
        op(LD_B_IND, 0, 0, 13)
    } else {
        op(LD_B_ABS, 0, 0, 13)
    };
    [
        op(JGE_K, 0, 5, u32::from(lo)), // port < lo → drop
        op(JGT_K, 4, 0, u32::from(hi)), // port > hi → drop
        flags,                          // A = TCP flags
        op(JSET_K, 3, 0, RST),          // RST → accept
        op(AND_K, 0, 0, SYN_ACK),       //
        op(JEQ_K, 1, 0, SYN_ACK),       // SYN and ACK → accept
        op(RET_K, 0, 0, 0),             // drop
        op(RET_K, 0, 0, SNAP),          // accept
    ]
}

/// The filter of the raw IPv4 socket for destination ports `lo..=hi`.
pub fn ipv4(lo: u16, hi: u16) -> Vec<Insn> {
    let mut p = vec![
        op(LD_B_ABS, 0, 0, 9),    // A = protocol
        op(JEQ_K, 0, 10, 6),      // not TCP → drop
        op(LD_H_ABS, 0, 0, 6),    // A = flags + fragment offset
        op(JSET_K, 8, 0, 0x1fff), // a later fragment → drop
        op(LDX_B_MSH, 0, 0, 0),   // X = IPv4 header length
        op(LD_H_IND, 0, 0, 2),    // A = TCP destination port
    ];
    p.extend(port_and_flags(lo, hi, true));
    p
}

/// The filter of the raw IPv6 socket for destination ports `lo..=hi`.
pub fn ipv6(lo: u16, hi: u16) -> Vec<Insn> {
    let mut p = vec![op(LD_H_ABS, 0, 0, 2)]; // A = TCP destination port
    p.extend(port_and_flags(lo, hi, false));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic BPF interpreter for the opcodes above (independent of the kernel's), returning
    /// the accepted length; out-of-bounds loads drop, as in the kernel.
    fn run(prog: &[Insn], pkt: &[u8]) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let byte = |o: u32| pkt.get(o as usize).map(|b| u32::from(*b));
        let half = |o: u32| Some(byte(o)? << 8 | byte(o + 1)?);
        loop {
            let Insn { code, jt, jf, k } = prog[pc];
            pc += 1;
            let jump = |c: bool| if c { usize::from(jt) } else { usize::from(jf) };
            match code {
                LD_B_ABS => match byte(k) {
                    Some(v) => a = v,
                    None => return 0,
                },
                LD_H_ABS => match half(k) {
                    Some(v) => a = v,
                    None => return 0,
                },
                LD_B_IND => match byte(x + k) {
                    Some(v) => a = v,
                    None => return 0,
                },
                LD_H_IND => match half(x + k) {
                    Some(v) => a = v,
                    None => return 0,
                },
                LDX_B_MSH => match byte(k) {
                    Some(v) => x = (v & 0xf) * 4,
                    None => return 0,
                },
                AND_K => a &= k,
                JEQ_K => pc += jump(a == k),
                JGT_K => pc += jump(a > k),
                JGE_K => pc += jump(a >= k),
                JSET_K => pc += jump(a & k != 0),
                RET_K => return k,
                other => panic!("opcode {other:#x} not interpreted"),
            }
        }
    }

    fn v4_packet(dst_port: u16, flags: u8, proto: u8, frag: u16) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[6..8].copy_from_slice(&frag.to_be_bytes());
        p[9] = proto;
        p[22..24].copy_from_slice(&dst_port.to_be_bytes());
        p[33] = flags;
        p
    }

    #[test]
    fn ipv4_filter_keeps_only_replies_to_the_block() {
        let f = ipv4(61000, 61063);
        assert_eq!(run(&f, &v4_packet(61000, 0x12, 6, 0)), SNAP, "SYN-ACK");
        assert_eq!(
            run(&f, &v4_packet(61063, 0x14, 6, 0x4000)),
            SNAP,
            "RST+ACK, DF"
        );
        assert_eq!(run(&f, &v4_packet(61064, 0x12, 6, 0)), 0, "above the block");
        assert_eq!(run(&f, &v4_packet(60999, 0x12, 6, 0)), 0, "below the block");
        assert_eq!(run(&f, &v4_packet(61001, 0x10, 6, 0)), 0, "plain ACK");
        assert_eq!(run(&f, &v4_packet(61001, 0x02, 6, 0)), 0, "SYN");
        assert_eq!(run(&f, &v4_packet(61001, 0x12, 17, 0)), 0, "UDP");
        assert_eq!(run(&f, &v4_packet(61001, 0x12, 6, 5)), 0, "later fragment");
        let mut opts = v4_packet(61001, 0x12, 6, 0);
        opts[0] = 0x46; // 24-byte header: the port moves 4 bytes on
        opts.splice(20..20, [1u8; 4]);
        assert_eq!(run(&f, &opts), SNAP, "IP options");
        assert_eq!(run(&f, &opts[..30]), 0, "truncated");
    }

    #[test]
    fn ipv6_filter_reads_the_tcp_header_first() {
        let f = ipv6(61000, 61063);
        let mut seg = vec![0u8; 20];
        seg[2..4].copy_from_slice(&61010u16.to_be_bytes());
        seg[13] = 0x12;
        assert_eq!(run(&f, &seg), SNAP);
        seg[13] = 0x04;
        assert_eq!(run(&f, &seg), SNAP);
        seg[13] = 0x18;
        assert_eq!(run(&f, &seg), 0);
        seg[2..4].copy_from_slice(&80u16.to_be_bytes());
        seg[13] = 0x12;
        assert_eq!(run(&f, &seg), 0);
    }
}
