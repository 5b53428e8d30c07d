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
        local: false,
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
        unneeded: Default::default(),
    };
    write_service(w, t, &mut svc).unwrap();
    svc
}

fn target<'a>(key: &'a ServiceKey, pool: &'a [IpAddr]) -> Target<'a> {
    Target {
        vk: crate::state::vip_key(key).unwrap(),
        key,
        pool,
        now: T0,
    }
}

/// When the tests' writes happen (monotonic ns).
const T0: u64 = 10_000_000_000;

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

/// Writes never narrow the bits: a NAT real edited to DR, then removed, leaves its NAT flows
/// reachable until a pass of the sweep proves them gone.
#[test]
fn writes_alone_never_narrow_the_port_bits() {
    let key = key();
    let t = target(&key, &[]);
    let mut w = Recorder::default();
    let mut svc = new_service(&mut w, &t);
    write_real(&mut w, &t, &mut svc, slot(NAMED, 7, ForwardMethod::Nat), 80).unwrap();
    w.0.clear();
    write_real(&mut w, &t, &mut svc, slot(NAMED, 7, ForwardMethod::Dr), 80).unwrap();
    svc.reals.clear();
    write_service(&mut w, &t, &mut svc).unwrap();
    let flags = service_flags(&w.0);
    assert!(
        !flags.is_empty() && flags.iter().all(|f| *f == DIRECT | NAT),
        "{flags:?}"
    );
}

fn service_flags(ops: &[Op]) -> Vec<u32> {
    ops.iter()
        .filter_map(|o| match o {
            Op::Service(f) => Some(*f),
            _ => None,
        })
        .collect()
}

/// A pass of the sweep started long enough after the service's last NAT real became DR.
fn pass_after(t: &Target) -> PortsSeen {
    PortsSeen::new(t.now + crate::narrow::SETTLE_NS)
}

/// A NAT real edited to DR: the NAT bit stays while a pass sees an entry to the port in
/// `rvs_nat_conns`, and goes after one that saw none, by a rewrite of the service entry alone.
#[test]
fn a_port_whose_nat_flows_are_gone_is_narrowed_by_its_entry_alone() {
    let key = key();
    let t = target(&key, &[]);
    let mut w = Recorder::default();
    let mut svc = new_service(&mut w, &t);
    write_real(&mut w, &t, &mut svc, slot(NAMED, 7, ForwardMethod::Nat), 80).unwrap();
    write_real(&mut w, &t, &mut svc, slot(NAMED, 7, ForwardMethod::Dr), 80).unwrap();
    w.0.clear();
    let mut busy = pass_after(&t);
    busy.mark(NAT, t.vk.port);
    assert!(
        !narrow(&mut w, &t, &mut svc, &busy).unwrap(),
        "a NAT flow left"
    );
    assert!(w.0.is_empty(), "{:?}", w.0);
    assert!(narrow(&mut w, &t, &mut svc, &pass_after(&t)).unwrap());
    assert_eq!(
        w.0,
        [Op::Service(DIRECT)],
        "the entry alone, with DIRECT only"
    );
    assert!(!narrow(&mut w, &t, &mut svc, &pass_after(&t)).unwrap());
    assert_eq!(w.0.len(), 1, "nothing more to narrow");
}

/// A NAT real again after the narrowing: the bit comes back before the real and its slots
/// (the write order is unchanged); a NAT real that came and went again restarts the wait.
#[test]
fn a_nat_real_again_widens_first_and_restarts_the_wait() {
    let key = key();
    let t = target(&key, &[]);
    let mut w = Recorder::default();
    let mut svc = new_service(&mut w, &t);
    write_real(&mut w, &t, &mut svc, slot(NAMED, 7, ForwardMethod::Nat), 80).unwrap();
    write_real(&mut w, &t, &mut svc, slot(NAMED, 7, ForwardMethod::Dr), 80).unwrap();
    assert!(narrow(&mut w, &t, &mut svc, &pass_after(&t)).unwrap());
    w.0.clear();
    write_real(&mut w, &t, &mut svc, slot(NAMED, 7, ForwardMethod::Nat), 80).unwrap();
    let ops = &w.0;
    let bits = first(ops, |o| *o == Op::Service(DIRECT | NAT));
    let real = first(ops, |o| matches!(o, Op::Real(NAMED, _)));
    assert!(bits < real, "{ops:?}");
    // Back to DR later: a pass that started within SETTLE_NS of that proves nothing.
    let later = Target {
        now: t.now + 5 * crate::narrow::SETTLE_NS,
        ..t
    };
    write_real(
        &mut w,
        &later,
        &mut svc,
        slot(NAMED, 7, ForwardMethod::Dr),
        80,
    )
    .unwrap();
    assert!(!narrow(&mut w, &later, &mut svc, &pass_after(&t)).unwrap());
    assert!(narrow(&mut w, &later, &mut svc, &pass_after(&later)).unwrap());
    assert_eq!(svc.tables, DIRECT);
}

/// The other way: a DR real edited to NAT loses DIRECT once no DR flow of the port is left;
/// a service left without reals loses every bit no flow needs.
#[test]
fn direct_goes_like_nat_and_a_service_without_reals_keeps_no_bit() {
    let key = key();
    let pool = ["10.0.3.1".parse().unwrap()];
    let t = target(&key, &pool);
    let mut w = Recorder::default();
    let mut svc = new_service(&mut w, &t);
    write_real(&mut w, &t, &mut svc, slot(NAMED, 7, ForwardMethod::Dr), 80).unwrap();
    write_real(
        &mut w,
        &t,
        &mut svc,
        slot(NAMED, 7, ForwardMethod::FullNat),
        80,
    )
    .unwrap();
    let mut busy = pass_after(&t);
    busy.mark(DIRECT, t.vk.port);
    assert!(!narrow(&mut w, &t, &mut svc, &busy).unwrap());
    w.0.clear();
    assert!(narrow(&mut w, &t, &mut svc, &pass_after(&t)).unwrap());
    assert_eq!(w.0, [Op::Service(NAT)]);
    svc.reals.clear();
    write_service(&mut w, &t, &mut svc).unwrap();
    assert!(narrow(&mut w, &t, &mut svc, &pass_after(&t)).unwrap());
    assert_eq!(svc.tables, 0, "the loader marks such a port DIRECT");
}

/// Entries put in from outside the program (connection sync) widen the bits first; they go
/// again once a pass proves those entries gone.
#[test]
fn inserted_entries_widen_the_bits_until_a_pass_proves_them_gone() {
    let key = key();
    let t = target(&key, &[]);
    let mut w = Recorder::default();
    let mut svc = new_service(&mut w, &t);
    write_real(&mut w, &t, &mut svc, slot(NAMED, 7, ForwardMethod::Dr), 80).unwrap();
    w.0.clear();
    widen(&mut w, &t, &mut svc, NAT).unwrap();
    assert_eq!(w.0, [Op::Service(DIRECT | NAT)]);
    widen(&mut w, &t, &mut svc, NAT).unwrap();
    assert_eq!(w.0.len(), 1, "already wide");
    let mut busy = pass_after(&t);
    busy.mark(NAT, t.vk.port);
    assert!(!narrow(&mut w, &t, &mut svc, &busy).unwrap());
    assert!(narrow(&mut w, &t, &mut svc, &pass_after(&t)).unwrap());
    assert_eq!(svc.tables, DIRECT);
}
