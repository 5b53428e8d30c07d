//! The order of [`super`]'s writes, recorded by a fake map writer.

use super::*;
use crate::abi;
use rvs_core::model::{ForwardMethod, RealServer, ServiceOptions};
use std::collections::BTreeMap;

/// One recorded write.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    /// The service entry, with its flags.
    Service(u32),
    /// A real entry: index, method.
    Real(u32, u8),
    RealPort(u32),
    /// Maglev slots written, and whether any names `NAMED`.
    Maglev {
        named: bool,
    },
    Pool,
}

/// The real index the tests look for in Maglev writes.
const NAMED: u32 = 7;

#[derive(Default)]
struct Recorder(Vec<Op>);

impl MapWrites for Recorder {
    fn set_service(&mut self, _: &VipKey, svc: &Service) -> Result<(), XdpError> {
        self.0.push(Op::Service(svc.flags));
        Ok(())
    }
    fn set_real(&mut self, index: u32, real: &Real) -> Result<(), XdpError> {
        self.0.push(Op::Real(index, real.method));
        Ok(())
    }
    fn set_real_port(&mut self, index: u32, _: u16) -> Result<(), XdpError> {
        self.0.push(Op::RealPort(index));
        Ok(())
    }
    fn set_maglev(&mut self, _: u32, table: &[u32]) -> Result<(), XdpError> {
        let named = table.contains(&NAMED);
        self.0.push(Op::Maglev { named });
        Ok(())
    }
    fn set_maglev_slots(&mut self, _: u32, slots: &[(u32, u32)]) -> Result<(), XdpError> {
        let named = slots.iter().any(|(_, r)| *r == NAMED);
        self.0.push(Op::Maglev { named });
        Ok(())
    }
    fn set_fnat_pool(&mut self, _: u32, _: &[IpAddr]) -> Result<(), XdpError> {
        self.0.push(Op::Pool);
        Ok(())
    }
}

const NAT: u32 = abi::RVS_SVC_F_NAT as u32;
const DIRECT: u32 = abi::RVS_SVC_F_DIRECT as u32;

fn key() -> ServiceKey {
    ServiceKey::tcp("10.0.0.1:80".parse().unwrap())
}

fn slot(index: u32, last: u8, method: ForwardMethod) -> RealSlot {
    let addr = std::net::SocketAddr::from(([10, 0, 1, last], 80));
    RealSlot {
        index,
        real: RealServer::new(addr, method, 1),
        next_hop: None,
        mac: Some([2, 0, 0, 0, 0, last]),
        overloaded: false,
        one_packet: false,
    }
}

/// A service as `add_service` leaves it: written once, no reals.
fn new_service(w: &mut Recorder, t: &Target) -> SvcSlot {
    let mut svc = SvcSlot {
        index: 0,
        options: ServiceOptions::default(),
        reals: BTreeMap::new(),
        table: Vec::new(),
        tables: 0,
    };
    write_service(w, t, &mut svc).unwrap();
    svc
}

fn target<'a>(key: &'a ServiceKey, pool: &'a [IpAddr]) -> Target<'a> {
    Target {
        vk: crate::state::vip_key(key).unwrap(),
        key,
        pool,
    }
}

/// Index of the first op matching `f`.
fn first(ops: &[Op], f: impl Fn(&Op) -> bool) -> usize {
    ops.iter().position(f).unwrap_or_else(|| panic!("{ops:?}"))
}

#[test]
fn a_new_services_table_goes_before_its_key() {
    let (key, mut w) = (key(), Recorder::default());
    new_service(&mut w, &target(&key, &[]));
    assert_eq!(
        w.0,
        [Op::Pool, Op::Maglev { named: false }, Op::Service(0)],
        "pool, table, then the key"
    );
}

/// The first NAT real: its port's NAT bit (the service entry with RVS_SVC_F_NAT) and the
/// FULLNAT pool are in the map before the real's entry and before any Maglev slot naming it.
#[test]
fn the_first_nat_reals_port_bits_go_before_the_real_and_its_slots() {
    for method in [ForwardMethod::Nat, ForwardMethod::FullNat] {
        let key = key();
        let pool = ["10.0.3.1".parse().unwrap()];
        let t = target(&key, &pool);
        let mut w = Recorder::default();
        let mut svc = new_service(&mut w, &t);
        w.0.clear();
        write_real(&mut w, &t, &mut svc, slot(NAMED, 7, method), 8080).unwrap();
        let ops = &w.0;
        let bits = first(ops, |o| matches!(o, Op::Service(f) if f & NAT != 0));
        let pool_at = first(ops, |o| *o == Op::Pool);
        let real = first(ops, |o| matches!(o, Op::Real(NAMED, _)));
        let slots = first(ops, |o| *o == Op::Maglev { named: true });
        assert!(
            bits < real && bits < slots,
            "{method:?}: bits first: {ops:?}"
        );
        assert!(
            pool_at < real && pool_at < slots,
            "{method:?}: pool first: {ops:?}"
        );
        assert!(
            real < slots,
            "{method:?}: the real before slots naming it: {ops:?}"
        );
        assert_eq!(ops.last(), Some(&Op::Service(NAT)), "{method:?}");
    }
}

/// A DR real edited to NAT: the port gains its NAT bit before the real's entry says NAT (a
/// persistence template may lead a SYN to it at once).
#[test]
fn a_real_edited_to_nat_gets_its_port_bit_first() {
    let key = key();
    let t = target(&key, &[]);
    let mut w = Recorder::default();
    let mut svc = new_service(&mut w, &t);
    write_real(&mut w, &t, &mut svc, slot(NAMED, 7, ForwardMethod::Dr), 80).unwrap();
    w.0.clear();
    write_real(&mut w, &t, &mut svc, slot(NAMED, 7, ForwardMethod::Nat), 80).unwrap();
    let nat = abi::RVS_METHOD_NAT as u8;
    let ops = &w.0;
    let bits = first(ops, |o| *o == Op::Service(DIRECT | NAT));
    let real = first(ops, |o| *o == Op::Real(NAMED, nat));
    assert!(bits < real, "{ops:?}");
}

/// The bits are never narrowed while the service exists: a NAT real edited to DR, then
/// removed, leaves its NAT flows reachable.
#[test]
fn port_bits_are_not_narrowed_while_the_service_exists() {
    let key = key();
    let t = target(&key, &[]);
    let mut w = Recorder::default();
    let mut svc = new_service(&mut w, &t);
    write_real(&mut w, &t, &mut svc, slot(NAMED, 7, ForwardMethod::Nat), 80).unwrap();
    w.0.clear();
    write_real(&mut w, &t, &mut svc, slot(NAMED, 7, ForwardMethod::Dr), 80).unwrap();
    svc.reals.clear();
    write_service(&mut w, &t, &mut svc).unwrap();
    let flags: Vec<u32> =
        w.0.iter()
            .filter_map(|o| match o {
                Op::Service(f) => Some(*f),
                _ => None,
            })
            .collect();
    assert!(
        !flags.is_empty() && flags.iter().all(|f| *f == DIRECT | NAT),
        "{flags:?}"
    );
}
