//! A loaded balancer with services and reals set directly through its maps, the expected
//! results computed in Rust (Maglev table + `flow_hash`), and a fixture runner that checks the
//! action, the output frame byte for byte, and which outcome counter moved.

#![allow(dead_code)]

use super::frames::{self, Ip4, Mac};
use rvs_core::maglev::MaglevTable;
use rvs_xdp::Balancer;
use rvs_xdp::abi::{self, Config, FlowKey, Iface, Real, Service, VipKey, addr_of};
use rvs_xdp::flow_hash::maglev_slot;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

pub const DIR_MAC: Mac = [0x02, 0, 0, 0, 0, 0x01];
pub const CLIENT_MAC: Mac = [0x02, 0, 0, 0, 0, 0xc1];
pub const DIR4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
pub const DIR6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
pub const MTU: u16 = 1500;
pub const NO_REAL: u32 = abi::RVS_NO_REAL as u32;

/// A real as the lab set it.
#[derive(Clone, Copy)]
pub struct LabReal {
    pub ip: IpAddr,
    pub mac: Mac,
    pub method: u8,
}

/// A service as the lab set it.
pub struct LabService {
    pub index: u32,
    pub vip: SocketAddr,
    pub proto: u8,
    pub table: Vec<u32>,
}

/// One fixture: what goes in, what must come out.
pub struct Fixture {
    pub desc: String,
    pub input: Vec<u8>,
    pub action: u32,
    pub output: Vec<u8>,
    pub outcome: &'static str,
}

pub struct Lab {
    pub b: Balancer,
    pub reals: Vec<Option<LabReal>>,
    pub services: Vec<LabService>,
    pub ran: Vec<String>,
}

impl Lab {
    pub fn new() -> Lab {
        Lab::with_balancer(Balancer::load().expect("load rvs_lb"))
    }

    /// A lab around `b` (e.g. loaded with table sizes of its own): the director's interface
    /// and the default config written.
    pub fn with_balancer(mut b: Balancer) -> Lab {
        let iface = Iface {
            mac: DIR_MAC,
            mtu: MTU,
            src4: u32::from_ne_bytes(DIR4.octets()),
            src6: addr_of(IpAddr::V6(DIR6)).0,
        };
        b.set_iface(0, &iface).unwrap();
        b.set_config(&Config::default()).unwrap();
        Lab {
            b,
            reals: vec![],
            services: vec![],
            ran: vec![],
        }
    }

    pub fn add_real(&mut self, index: u32, ip: IpAddr, mac: Mac, method: u8) {
        let (addr, family) = addr_of(ip);
        let r = Real {
            addr,
            family,
            method,
            flags: abi::RVS_REAL_F_PRESENT as u8,
            has_mac: 1,
            mac,
            pad: [0; 2],
        };
        self.b.set_real(index, &r).unwrap();
        let i = index as usize;
        if self.reals.len() <= i {
            self.reals.resize(i + 1, None);
        }
        self.reals[i] = Some(LabReal { ip, mac, method });
    }

    /// Set or clear a real's RVS_REAL_F_DOWN flag (the engine's EditReal of a real whose health
    /// went down or that the operator disabled).
    pub fn set_real_down(&mut self, index: u32, down: bool) {
        let flags = if down { abi::RVS_REAL_F_DOWN as u8 } else { 0 };
        self.set_real_flags(index, flags);
    }

    /// Rewrite a real's entry with `flags` (RVS_REAL_F_PRESENT is always added).
    pub fn set_real_flags(&mut self, index: u32, flags: u8) {
        let r = self.real(index);
        let (addr, family) = addr_of(r.ip);
        let value = Real {
            addr,
            family,
            method: r.method,
            flags: flags | abi::RVS_REAL_F_PRESENT as u8,
            has_mac: 1,
            mac: r.mac,
            pad: [0; 2],
        };
        self.b.set_real(index, &value).unwrap();
    }

    /// Mark a real as removed (the engine's RemoveReal).
    pub fn remove_real(&mut self, index: u32) {
        self.b.set_real(index, &Real::default()).unwrap();
        self.reals[index as usize] = None;
    }

    pub fn real(&self, index: u32) -> LabReal {
        self.reals[index as usize].expect("real set")
    }

    /// The program's key and entry of a service with the reals given by index, as the engine
    /// writes them: persistence (timeout s, prefix) and which connection tables its flows use,
    /// from its reals' methods. Flags other than these are the caller's to add.
    pub fn service_entry(
        &self,
        index: u32,
        vip: SocketAddr,
        proto: u8,
        reals: &[u32],
        persist: Option<(u32, u8)>,
    ) -> (VipKey, Service) {
        let (addr, family) = addr_of(vip.ip());
        let key = VipKey {
            addr,
            port: vip.port().to_be(),
            proto,
            family,
        };
        let mut svc = Service {
            index,
            ..Default::default()
        };
        if let Some((t, p)) = persist {
            svc.flags = abi::RVS_SVC_F_PERSIST as u32;
            svc.persist_timeout = t;
            svc.persist_prefix = p;
        }
        for r in reals {
            let nat = [abi::RVS_METHOD_NAT, abi::RVS_METHOD_FULLNAT]
                .contains(&u64::from(self.real(*r).method));
            svc.flags |= if nat {
                abi::RVS_SVC_F_NAT
            } else {
                abi::RVS_SVC_F_DIRECT
            } as u32;
        }
        (key, svc)
    }

    /// Add a service with reals (index, weight); `persist` = (timeout s, prefix).
    pub fn add_service(
        &mut self,
        index: u32,
        vip: SocketAddr,
        proto: u8,
        reals: &[(u32, u32)],
        persist: Option<(u32, u8)>,
    ) {
        let real_indexes: Vec<u32> = reals.iter().map(|(r, _)| *r).collect();
        let (key, svc) = self.service_entry(index, vip, proto, &real_indexes, persist);
        self.b.set_service(&key, &svc).unwrap();
        self.services.push(LabService {
            index,
            vip,
            proto,
            table: vec![],
        });
        self.set_weights(index, reals);
    }

    /// Rebuild a service's Maglev table from (real index, weight).
    pub fn set_weights(&mut self, index: u32, reals: &[(u32, u32)]) {
        let entries: Vec<(SocketAddr, u32)> = reals
            .iter()
            .map(|(r, w)| (SocketAddr::new(self.real(*r).ip, 0), *w))
            .collect();
        let built = MaglevTable::build(&entries, abi::RVS_MAGLEV_SIZE as u32).unwrap();
        let table: Vec<u32> = built
            .slots()
            .iter()
            .map(|s| {
                if *s == MaglevTable::EMPTY {
                    NO_REAL
                } else {
                    reals[*s as usize].0
                }
            })
            .collect();
        self.b.set_maglev(index, &table).unwrap();
        self.svc_mut(index).table = table;
    }

    fn svc_mut(&mut self, index: u32) -> &mut LabService {
        self.services
            .iter_mut()
            .find(|s| s.index == index)
            .expect("service")
    }

    pub fn svc(&self, index: u32) -> &LabService {
        self.services
            .iter()
            .find(|s| s.index == index)
            .expect("service")
    }

    /// The real the Maglev table (through the Rust flow hash) gives a new flow.
    pub fn maglev_real(&self, svc: u32, client: SocketAddr) -> u32 {
        let s = self.svc(svc);
        let (src, family) = addr_of(client.ip());
        let (dst, _) = addr_of(s.vip.ip());
        let key = FlowKey {
            src,
            dst,
            sport: client.port().to_be(),
            dport: s.vip.port().to_be(),
            proto: s.proto,
            family,
            pad: [0; 2],
        };
        s.table[maglev_slot(&key)]
    }

    /// A client packet to service `svc`.
    pub fn client_packet(
        &self,
        svc: u32,
        client: SocketAddr,
        flags: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        let s = self.svc(svc);
        frames::packet(
            DIR_MAC,
            CLIENT_MAC,
            client.ip(),
            s.vip.ip(),
            s.proto,
            client.port(),
            s.vip.port(),
            flags,
            payload,
        )
    }

    /// What the director must send for `input` forwarded to real `idx`.
    pub fn forwarded(&self, input: &[u8], idx: u32) -> Vec<u8> {
        let r = self.real(idx);
        match r.method {
            m if m == abi::RVS_METHOD_DR as u8 => {
                let mut out = input.to_vec();
                out[0..6].copy_from_slice(&r.mac);
                out[6..12].copy_from_slice(&DIR_MAC);
                out
            }
            _ => encapsulated(input, r),
        }
    }

    /// Run one fixture; panics with its description on a mismatch.
    pub fn run(&mut self, f: Fixture) {
        let before = self.b.outcomes().unwrap();
        let (action, out) = self.b.test_run(&f.input).unwrap();
        let after = self.b.outcomes().unwrap();
        assert_eq!(action, f.action, "{}: action", f.desc);
        if out != f.output {
            panic!(
                "{}: output differs\n got  {}\n want {}",
                f.desc,
                hex(&out),
                hex(&f.output)
            );
        }
        let moved: Vec<&str> = (0..after.len())
            .filter(|i| after[*i] != before[*i])
            .map(|i| abi::outcome_name(i as u32).unwrap_or("?"))
            .collect();
        assert_eq!(moved, vec![f.outcome], "{}: outcome counters", f.desc);
        println!("ok  {:<70} action={} outcome={}", f.desc, action, f.outcome);
        self.ran.push(f.desc);
    }
}

/// `input` (a client frame) tunnelled to `r`.
pub fn encapsulated(input: &[u8], r: LabReal) -> Vec<u8> {
    let inner = &input[14..];
    let inner_v6 = inner[0] >> 4 == 6;
    let tos = if inner_v6 {
        (inner[0] << 4) | (inner[1] >> 4)
    } else {
        inner[1]
    };
    let df = !inner_v6 && (u16::from_be_bytes([inner[6], inner[7]]) & 0x4000) != 0;
    let proto = if inner_v6 { 41 } else { 4 };
    match r.ip {
        IpAddr::V4(rip) => {
            let mut o = Ip4::new(DIR4, rip, proto);
            o.tos = tos;
            o.frag = if df || inner_v6 { 0x4000 } else { 0 };
            o.id = 0;
            frames::eth(r.mac, DIR_MAC, frames::ETH_IP4, &o.build(inner))
        }
        IpAddr::V6(rip) => frames::eth(
            r.mac,
            DIR_MAC,
            frames::ETH_IP6,
            &frames::ip6(DIR6, rip, proto, tos, 64, inner),
        ),
    }
}

/// A fixture for a packet that must be forwarded to `real`.
pub fn fwd(lab: &Lab, desc: String, input: Vec<u8>, real: u32) -> Fixture {
    let output = lab.forwarded(&input, real);
    Fixture {
        desc,
        input,
        action: XDP_TX,
        output,
        outcome: "forwarded",
    }
}

/// The connection-table key of `client`'s flow to service `svc`.
pub fn flow_key(lab: &Lab, svc: u32, client: SocketAddr) -> abi::FlowKey {
    let s = lab.svc(svc);
    let (src, family) = abi::addr_of(client.ip());
    abi::FlowKey {
        src,
        dst: abi::addr_of(s.vip.ip()).0,
        sport: client.port().to_be(),
        dport: s.vip.port().to_be(),
        proto: s.proto,
        family,
        pad: [0; 2],
    }
}

/// The connection entry of `client`'s flow to service `svc`, if any.
pub fn conn_of(lab: &Lab, svc: u32, client: SocketAddr) -> Option<abi::Conn> {
    let key = flow_key(lab, svc, client);
    lab.b
        .conns()
        .unwrap()
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, c)| c)
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn skip_unless_root() -> bool {
    if !rvs_testbed::is_root() {
        eprintln!("skipping: BPF_PROG_TEST_RUN needs root");
        return true;
    }
    false
}
