//! The Rust side of `bpf/rvs_abi.h`: the constants and outcome names generated from it by
//! build.rs, and `#[repr(C)]` mirrors of its structs. `tests/abi_layout.rs` compiles a C checker
//! against the header and fails when a size or offset here diverges from it.

#![allow(missing_docs)]

include!(concat!(env!("OUT_DIR"), "/abi_generated.rs"));

/// Address as 4 x u32 in network byte order (IPv4 in word 0).
pub type Addr = [u32; 4];

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct VipKey {
    pub addr: Addr,
    pub port: u16,
    pub proto: u8,
    pub family: u8,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Service {
    pub index: u32,
    pub flags: u32,
    pub persist_timeout: u32,
    pub persist_prefix: u8,
    pub pad: [u8; 3],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Real {
    pub addr: Addr,
    pub family: u8,
    pub method: u8,
    pub flags: u8,
    pub has_mac: u8,
    pub mac: [u8; 6],
    pub pad: [u8; 2],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: Addr,
    pub dst: Addr,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub family: u8,
    pub pad: [u8; 2],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Conn {
    pub real: u32,
    pub svc: u32,
    pub last_ns: u64,
    /// `RVS_STATE_*`.
    pub state: u8,
    /// `RVS_METHOD_*` the flow is sent with: its real's when the entry was made (an edit of
    /// the real's method changes new flows only, as IPVS). Also says the entry's table:
    /// `rvs_nat_conns` for NAT/FULLNAT, `rvs_conns` for DR/TUN.
    pub method: u8,
    pub pad: u16,
    /// FULLNAT: local port (network order); 0 = none.
    pub lport: u16,
    /// FULLNAT: index of the local address in the service's pool (bits `RVS_LADDR_INDEX`),
    /// and the flag `RVS_LADDR_F_SYN_RECV` (the TOA goes on the ACK completing the handshake).
    pub laddr: u8,
    /// The service's persistence prefix + 1 when it has persistence (the client's template
    /// is refreshed with the entry); 0 = none.
    pub persist: u8,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PersistKey {
    pub svc: u32,
    pub addr: Addr,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Persist {
    pub real: u32,
    pub pad: u32,
    pub last_ns: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Iface {
    pub mac: [u8; 6],
    pub mtu: u16,
    pub src4: u32,
    pub src6: Addr,
}

/// `struct rvs_config`: per-state timeouts and the TCP state table. Build it with
/// [`crate::conntrack::config`] (rvs-core's table and timeouts); `Default` is IPVS's defaults.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// By state code (`RVS_STATE_*`).
    pub timeout_ns: [u64; RVS_CONN_STATES as usize],
    /// Next TCP state at `[(dir * RVS_TCP_EVENTS + event) * RVS_CONN_STATES + state]`.
    pub tcp_next: [u8; (RVS_DIRS * RVS_TCP_EVENTS * RVS_CONN_STATES) as usize],
    /// ICMP errors about DR/TUN flows with no connection entry sent on per second per CPU;
    /// 0 = unlimited (`bpf/icmp_limit.h`).
    pub icmp_rate: u32,
    /// Their burst: the bucket's size in errors.
    pub icmp_burst: u32,
}

/// `struct rvs_icmp_bucket`: one CPU's token bucket of untracked ICMP errors (the program's;
/// tests set it to simulate time).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IcmpBucket {
    /// `RVS_ICMP_TOKEN` per error.
    pub tokens: u64,
    /// The program's clock (`bpf_ktime_get_coarse_ns`) at the last refill.
    pub last_ns: u64,
}

impl Default for Config {
    fn default() -> Self {
        crate::conntrack::config(&rvs_core::conn::ConnTimeouts::default())
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub conns: u64,
    /// Client → real.
    pub packets: u64,
    pub bytes: u64,
    /// Real → client (NAT/FULLNAT replies; 0 for DR/TUN).
    pub out_packets: u64,
    pub out_bytes: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct DecapKey {
    pub addr: Addr,
    pub family: u8,
    pub pad: [u8; 3],
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BenchFrame {
    pub len: u32,
    pub vary_offset: u32,
    pub counter: u32,
    pub data: [u8; RVS_BENCH_FRAME_MAX as usize],
}

/// `struct rvs_nat_rev`: the client's flow of a reverse entry, the real (index) it was made
/// for, and the next hop towards the client the program cached there.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NatRev {
    pub orig: FlowKey,
    pub nh_expires_ns: u64,
    pub nh_ingress: u32,
    pub nh_ifindex: u32,
    pub nh_dmac: [u8; 6],
    pub nh_smac: [u8; 6],
    pub real: u32,
}

/// FULLNAT: a service's local addresses (`struct rvs_fnat_pool`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FnatPool {
    pub count: u32,
    pub pad: u32,
    pub addrs: [Addr; RVS_MAX_LADDRS as usize],
}

/// The trivial forwarder's configuration (`struct rvs_fwd_config`, see [`crate::forward`]).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FwdConfig {
    /// IPv4 VIP, network order.
    pub vip: u32,
    /// Port, network order.
    pub port: u16,
    /// Source MAC of forwarded frames.
    pub own_mac: [u8; 6],
    /// Reals used (`1..=RVS_FWD_MAX_REALS`).
    pub count: u32,
    pub macs: [[u8; 6]; RVS_FWD_MAX_REALS as usize],
}

// SAFETY: all are repr(C) plain data with no padding-dependent invariants; every bit pattern
// is valid.
unsafe impl aya::Pod for VipKey {}
unsafe impl aya::Pod for Service {}
unsafe impl aya::Pod for Real {}
unsafe impl aya::Pod for FlowKey {}
unsafe impl aya::Pod for Conn {}
unsafe impl aya::Pod for PersistKey {}
unsafe impl aya::Pod for Persist {}
unsafe impl aya::Pod for Iface {}
unsafe impl aya::Pod for Config {}
unsafe impl aya::Pod for IcmpBucket {}
unsafe impl aya::Pod for Counters {}
unsafe impl aya::Pod for DecapKey {}
unsafe impl aya::Pod for BenchFrame {}
unsafe impl aya::Pod for FnatPool {}
unsafe impl aya::Pod for NatRev {}
unsafe impl aya::Pod for FwdConfig {}

/// Address in ABI form.
pub fn addr_of(ip: std::net::IpAddr) -> (Addr, u8) {
    match ip {
        std::net::IpAddr::V4(v4) => (
            [u32::from_ne_bytes(v4.octets()), 0, 0, 0],
            RVS_FAMILY_V4 as u8,
        ),
        std::net::IpAddr::V6(v6) => {
            let o = v6.octets();
            let w = |i: usize| u32::from_ne_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            ([w(0), w(4), w(8), w(12)], RVS_FAMILY_V6 as u8)
        }
    }
}

/// The IP address of an ABI address of `family`.
pub fn ip_of(addr: &Addr, family: u8) -> std::net::IpAddr {
    if family == RVS_FAMILY_V6 as u8 {
        let mut o = [0u8; 16];
        for (i, w) in addr.iter().enumerate() {
            o[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
        }
        std::net::IpAddr::from(o)
    } else {
        std::net::IpAddr::from(addr[0].to_ne_bytes())
    }
}

/// Name of an outcome index, as reported in `EngineStats.outcomes`.
pub fn outcome_name(index: u32) -> Option<&'static str> {
    OUTCOME_NAMES
        .iter()
        .find(|(i, _)| *i == index)
        .map(|(_, n)| *n)
}
