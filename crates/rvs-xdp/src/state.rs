//! The engine's bookkeeping: which service and real slots are in use, each service's Maglev
//! table (written to the map as a diff of the previous one), and the ABI values derived from
//! the core model. Pure except for the writes through [`crate::service_writes::MapWrites`].

use crate::abi::{self, Real, Service, VipKey, addr_of};
use crate::error::XdpError;
use rvs_core::conn::ConnTimeouts;
use rvs_core::desired::Timeouts;
use rvs_core::maglev::MaglevTable;
use rvs_core::model::{ForwardMethod, Protocol, RealServer, ServiceKey, ServiceOptions};
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

/// A real as the engine holds it.
#[derive(Debug, Clone)]
pub(crate) struct RealSlot {
    pub index: u32,
    pub real: RealServer,
    /// Next hop (address, interface) whose MAC frames to this real carry.
    pub next_hop: Option<(IpAddr, u32)>,
    pub mac: Option<[u8; 6]>,
    pub overloaded: bool,
    /// A DR/TUN real of a one-packet (`-o`) UDP service: the program follows no connection
    /// entry to it ([`one_packet_real`]).
    pub one_packet: bool,
    /// Its address is one of the director's own (IPVS's local node): DR/TUN packets to it go
    /// to the director's stack untouched (`RVS_REAL_F_LOCAL`); it has no next hop.
    pub local: bool,
}

impl RealSlot {
    /// The weight that goes into the Maglev table.
    pub fn table_weight(&self) -> u32 {
        if self.overloaded {
            0
        } else {
            self.real.effective_weight()
        }
    }

    pub fn abi(&self) -> Real {
        let (addr, family) = addr_of(self.real.addr.ip());
        let method = match self.real.method {
            ForwardMethod::Dr => abi::RVS_METHOD_DR,
            ForwardMethod::Tun => abi::RVS_METHOD_TUN,
            ForwardMethod::Nat => abi::RVS_METHOD_NAT,
            ForwardMethod::FullNat => abi::RVS_METHOD_FULLNAT,
        } as u8;
        Real {
            addr,
            family,
            method,
            flags: real_flags(&self.real, self.one_packet, self.local),
            has_mac: u8::from(self.mac.is_some()),
            mac: self.mac.unwrap_or_default(),
            pad: [0; 2],
        }
    }
}

/// The program's flags of a real: present, and down when health checks see it down or the
/// operator disabled it (the program then follows no persistence template to it). A drained
/// real (weight 0, `drain`) is not down: its persistent clients still reach it, as in IPVS.
/// `one_packet`: see [`one_packet_real`]; `local`: see [`RealSlot::local`].
fn real_flags(real: &RealServer, one_packet: bool, local: bool) -> u8 {
    let mut flags = abi::RVS_REAL_F_PRESENT as u8;
    if local {
        flags |= abi::RVS_REAL_F_LOCAL as u8;
    }
    if real.is_down() {
        flags |= abi::RVS_REAL_F_DOWN as u8;
    }
    if one_packet {
        flags |= abi::RVS_REAL_F_ONE_PACKET as u8;
    }
    flags
}

/// Whether service `key` schedules every datagram on its own (`-o`): IPVS applies one-packet
/// scheduling to UDP only.
fn one_packet_service(key: &ServiceKey, options: &ServiceOptions) -> bool {
    options.one_packet
        && matches!(
            key,
            ServiceKey::Addr {
                protocol: Protocol::Udp,
                ..
            }
        )
}

/// Whether `real` of service `key` gets one-packet scheduling: DR and TUN reals of a `-o` UDP
/// service (NAT/FULLNAT keep connection entries, which their replies need). The program then
/// makes no connection entry for a datagram to it and follows none (one made before).
pub(crate) fn one_packet_real(
    key: &ServiceKey,
    options: &ServiceOptions,
    real: &RealServer,
) -> bool {
    one_packet_service(key, options)
        && matches!(real.method, ForwardMethod::Dr | ForwardMethod::Tun)
}

/// A service as the engine holds it.
#[derive(Debug, Clone)]
pub(crate) struct SvcSlot {
    pub index: u32,
    pub options: ServiceOptions,
    pub reals: BTreeMap<SocketAddr, RealSlot>,
    /// The table last written to the map (real slot indexes).
    pub table: Vec<u32>,
    /// `RVS_SVC_F_DIRECT` / `RVS_SVC_F_NAT`: the kinds of methods its reals have had
    /// ([`method_flags`] of every real written) since the sweep last proved a kind's table
    /// holds no flow of its port. A flow keeps the method its entry was made with, so a port
    /// whose last NAT real became DR (or the other way) may still have flows in the other
    /// table: its port keeps both tables looked up until then ([`crate::narrow`]).
    pub tables: u32,
    /// Since when no real has needed each bit of `tables` ([`crate::narrow::note`]).
    pub unneeded: crate::narrow::Unneeded,
}

/// The map key of a service (only address services reach the engine).
pub(crate) fn vip_key(key: &ServiceKey) -> Option<VipKey> {
    let ServiceKey::Addr { protocol, addr } = key else {
        return None;
    };
    let proto = match protocol {
        Protocol::Tcp => abi::RVS_PROTO_TCP,
        Protocol::Udp => abi::RVS_PROTO_UDP,
        Protocol::Sctp => return None,
    } as u8;
    let (a, family) = addr_of(addr.ip());
    Some(VipKey {
        addr: a,
        port: addr.port().to_be(),
        proto,
        family,
    })
}

/// The program's entry of service `key` with slot `index`.
pub(crate) fn service_abi(index: u32, key: &ServiceKey, options: &ServiceOptions) -> Service {
    let mut s = Service {
        index,
        ..Default::default()
    };
    if let Some(p) = options.persistence {
        s.flags = abi::RVS_SVC_F_PERSIST as u32;
        s.persist_timeout = p.timeout;
        s.persist_prefix = p.prefix_len;
    }
    if one_packet_service(key, options) {
        s.flags |= abi::RVS_SVC_F_ONE_PACKET as u32;
    }
    s
}

/// Whether `method` (`RVS_METHOD_*`) is NAT or FULLNAT: its flows' entries are in
/// `rvs_nat_conns`.
pub(crate) fn is_nat_method(method: u8) -> bool {
    [abi::RVS_METHOD_NAT, abi::RVS_METHOD_FULLNAT].contains(&u64::from(method))
}

/// The service flags saying which kinds of reals it has (`RVS_SVC_F_DIRECT`: DR/TUN,
/// `RVS_SVC_F_NAT`: NAT/FULLNAT), from which the loader marks its port's connection tables.
pub(crate) fn method_flags(methods: impl IntoIterator<Item = ForwardMethod>) -> u32 {
    methods.into_iter().fold(0, |f, m| {
        f | match m {
            ForwardMethod::Nat | ForwardMethod::FullNat => abi::RVS_SVC_F_NAT as u32,
            _ => abi::RVS_SVC_F_DIRECT as u32,
        }
    })
}

/// The program's conntrack configuration: per-state timeouts `base` with `ipvsadm --set`
/// values `set` applied, and rvs-core's TCP state table.
pub(crate) fn config_abi(base: &ConnTimeouts, set: &Timeouts) -> abi::Config {
    crate::conntrack::config(&crate::conntrack::timeouts(base, set))
}

/// `cfg` with the untracked-ICMP limit (`rate` errors/s per CPU, 0 = unlimited; `burst`,
/// raised to 1: a bucket of 0 would drop every error at any rate).
pub(crate) fn with_icmp_limit(mut cfg: abi::Config, (rate, burst): (u32, u32)) -> abi::Config {
    cfg.icmp_rate = rate;
    cfg.icmp_burst = burst.max(1);
    cfg
}

/// Slot allocator: lowest free index for services; reals are reused oldest-freed first, so a
/// connection entry still naming a removed real's slot rarely meets a new real there.
#[derive(Debug)]
pub(crate) struct Slots {
    free_services: Vec<u32>,
    free_reals: VecDeque<u32>,
}

impl Slots {
    pub fn new() -> Slots {
        Slots {
            free_services: (0..abi::RVS_MAX_SERVICES as u32).rev().collect(),
            free_reals: (0..abi::RVS_MAX_REALS as u32).collect(),
        }
    }

    pub fn service(&mut self) -> Result<u32, XdpError> {
        self.free_services.pop().ok_or(XdpError::Full {
            what: "service table",
            limit: abi::RVS_MAX_SERVICES,
        })
    }

    pub fn free_service(&mut self, i: u32) {
        self.free_services.push(i);
        self.free_services.sort_unstable_by(|a, b| b.cmp(a));
    }

    pub fn real(&mut self) -> Result<u32, XdpError> {
        self.free_reals.pop_front().ok_or(XdpError::Full {
            what: "real table",
            limit: abi::RVS_MAX_REALS,
        })
    }

    pub fn free_real(&mut self, i: u32) {
        self.free_reals.push_back(i);
    }
}

/// Rebuild `svc`'s Maglev table from its reals and write the slots that changed.
pub(crate) fn sync_table(
    b: &mut impl crate::service_writes::MapWrites,
    svc: &mut SvcSlot,
) -> Result<(), XdpError> {
    let reals: Vec<&RealSlot> = svc.reals.values().collect();
    let input: Vec<(SocketAddr, u32)> = reals
        .iter()
        .map(|r| (r.real.addr, r.table_weight()))
        .collect();
    let built = MaglevTable::build(&input, abi::RVS_MAGLEV_SIZE as u32)
        .map_err(|e| XdpError::Invalid(e.to_string()))?;
    let table: Vec<u32> = built
        .slots()
        .iter()
        .map(|s| {
            if *s == MaglevTable::EMPTY {
                abi::RVS_NO_REAL as u32
            } else {
                reals[*s as usize].index
            }
        })
        .collect();
    if svc.table.len() != table.len() {
        b.set_maglev(svc.index, &table)?;
    } else {
        let changed: Vec<(u32, u32)> = table
            .iter()
            .zip(&svc.table)
            .enumerate()
            .filter(|(_, (new, old))| new != old)
            .map(|(i, (new, _))| (i as u32, *new))
            .collect();
        b.set_maglev_slots(svc.index, &changed)?;
    }
    svc.table = table;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_core::model::{AdminState, Health};

    #[test]
    fn icmp_limit_is_written_with_the_timeouts_and_burst_is_at_least_one() {
        let base = config_abi(&ConnTimeouts::default(), &Timeouts::default());
        assert_eq!(
            (base.icmp_rate, base.icmp_burst),
            (
                abi::RVS_ICMP_RATE_DEFAULT as u32,
                abi::RVS_ICMP_BURST_DEFAULT as u32
            )
        );
        let c = with_icmp_limit(base, (50, 0));
        assert_eq!((c.icmp_rate, c.icmp_burst), (50, 1));
        assert_eq!(c.timeout_ns, base.timeout_ns);
        let c = with_icmp_limit(base, (0, 7));
        assert_eq!((c.icmp_rate, c.icmp_burst), (0, 7));
    }

    #[test]
    fn down_or_disabled_reals_are_flagged_drained_ones_not() {
        let mut r = RealServer::new("10.0.0.7:80".parse().unwrap(), ForwardMethod::Dr, 1);
        let present = abi::RVS_REAL_F_PRESENT as u8;
        let down = present | abi::RVS_REAL_F_DOWN as u8;
        assert_eq!(real_flags(&r, false, false), present);
        r.health = Health::Up;
        assert_eq!(real_flags(&r, false, false), present);
        r.health = Health::Down;
        assert_eq!(real_flags(&r, false, false), down, "health down");
        r.health = Health::Up;
        r.admin = AdminState::Disabled;
        assert_eq!(real_flags(&r, false, false), down, "disabled");
        r.admin = AdminState::Drain;
        assert_eq!(
            real_flags(&r, false, false),
            present,
            "drain keeps persistent clients"
        );
        r.admin = AdminState::Enabled;
        r.weight = 0;
        assert_eq!(
            real_flags(&r, false, false),
            present,
            "weight 0 keeps persistent clients"
        );
        let ops = present | abi::RVS_REAL_F_ONE_PACKET as u8;
        assert_eq!(real_flags(&r, true, false), ops);
        let local = present | abi::RVS_REAL_F_LOCAL as u8;
        assert_eq!(real_flags(&r, false, true), local, "local node");
    }

    #[test]
    fn one_packet_applies_to_udp_services_and_their_dr_tun_reals_only() {
        let udp = ServiceKey::Addr {
            protocol: Protocol::Udp,
            addr: "10.0.0.1:53".parse().unwrap(),
        };
        let tcp = ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: "10.0.0.1:53".parse().unwrap(),
        };
        let ops = ServiceOptions {
            one_packet: true,
            ..Default::default()
        };
        let flag = abi::RVS_SVC_F_ONE_PACKET as u32;
        assert_eq!(service_abi(3, &udp, &ops).flags, flag);
        assert_eq!(service_abi(3, &tcp, &ops).flags, 0, "IPVS: UDP only");
        assert_eq!(service_abi(3, &udp, &ServiceOptions::default()).flags, 0);
        let real = |m| RealServer::new("10.0.0.7:53".parse().unwrap(), m, 1);
        for (m, want) in [
            (ForwardMethod::Dr, true),
            (ForwardMethod::Tun, true),
            (ForwardMethod::Nat, false),
            (ForwardMethod::FullNat, false),
        ] {
            assert_eq!(one_packet_real(&udp, &ops, &real(m)), want, "{m:?}");
            assert!(!one_packet_real(&tcp, &ops, &real(m)), "{m:?} TCP");
            assert!(!one_packet_real(&udp, &ServiceOptions::default(), &real(m)));
        }
    }
}
