//! The packed form of a tracked connection (60 bytes, IPv4 and IPv6 alike) and its key hash.

use super::table::ConnKey;
use crate::model::Protocol;
use std::net::{IpAddr, Ipv6Addr};

pub(super) const NIL: u32 = u32::MAX;
pub(super) const HEAD: u32 = 1 << 31;
pub(super) const F_CLIENT_V6: u8 = 1;
pub(super) const F_VADDR_V6: u8 = 2;
pub(super) const F_PERSISTENT: u8 = 4;
pub(super) const F_LIVE: u8 = 8;

/// One packed entry (60 bytes).
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub(super) client: [u8; 16],
    pub(super) vaddr: [u8; 16],
    pub(super) cport: u16,
    pub(super) vport: u16,
    pub(super) service: u32,
    pub(super) real: u32,
    /// Deadline, seconds since the epoch, rounded up.
    pub(super) expires: u32,
    /// Wheel list links; `prev` is `HEAD | slot` for the first entry of a slot.
    pub(super) prev: u32,
    pub(super) next: u32,
    pub(super) proto: u8,
    pub(super) state: u8,
    pub(super) flags: u8,
}

pub(super) const BLANK: Entry = Entry {
    client: [0; 16],
    vaddr: [0; 16],
    cport: 0,
    vport: 0,
    service: 0,
    real: 0,
    expires: 0,
    prev: NIL,
    next: NIL,
    proto: 0,
    state: 0,
    flags: 0,
};

pub(super) fn ip16(ip: IpAddr) -> ([u8; 16], bool) {
    match ip {
        IpAddr::V4(a) => (a.to_ipv6_mapped().octets(), false),
        IpAddr::V6(a) => (a.octets(), true),
    }
}

pub(super) fn ip_from(b: [u8; 16], v6: bool) -> IpAddr {
    let a = Ipv6Addr::from(b);
    match (v6, a.to_ipv4_mapped()) {
        (false, Some(v4)) => IpAddr::V4(v4),
        _ => IpAddr::V6(a),
    }
}

pub(super) fn proto_code(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Sctp => 132,
    }
}

pub(super) fn proto_from(c: u8) -> Protocol {
    match c {
        6 => Protocol::Tcp,
        17 => Protocol::Udp,
        _ => Protocol::Sctp,
    }
}

/// The packed form of a key, compared against entries.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Packed {
    pub(super) client: [u8; 16],
    pub(super) vaddr: [u8; 16],
    pub(super) cport: u16,
    pub(super) vport: u16,
    pub(super) proto: u8,
    pub(super) v6: u8,
}

impl Packed {
    pub(super) fn of(k: &ConnKey) -> Self {
        let (client, cv6) = ip16(k.client.ip());
        let (vaddr, vv6) = ip16(k.vaddr.ip());
        let v6 = (if cv6 { F_CLIENT_V6 } else { 0 }) | (if vv6 { F_VADDR_V6 } else { 0 });
        let (cport, vport, proto) = (k.client.port(), k.vaddr.port(), proto_code(k.protocol));
        Packed {
            client,
            vaddr,
            cport,
            vport,
            proto,
            v6,
        }
    }

    pub(super) fn matches(&self, e: &Entry) -> bool {
        e.cport == self.cport
            && e.vport == self.vport
            && e.proto == self.proto
            && e.client == self.client
            && e.vaddr == self.vaddr
            && e.flags & (F_CLIENT_V6 | F_VADDR_V6) == self.v6
    }

    /// Seeded hash: each 8-byte word folded in with a multiply-rotate, then SplitMix64's
    /// finaliser.
    pub(super) fn hash(&self, seed: u64) -> u64 {
        let w = |b: &[u8; 16], i: usize| {
            u64::from_le_bytes([
                b[i],
                b[i + 1],
                b[i + 2],
                b[i + 3],
                b[i + 4],
                b[i + 5],
                b[i + 6],
                b[i + 7],
            ])
        };
        let tail =
            u64::from(self.cport) << 32 | u64::from(self.vport) << 16 | u64::from(self.proto);
        let words = [
            w(&self.client, 0),
            w(&self.client, 8),
            w(&self.vaddr, 0),
            w(&self.vaddr, 8),
            tail,
        ];
        let mut h = seed;
        for x in words {
            h = (h ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(26);
        }
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^ (h >> 31)
    }
}
