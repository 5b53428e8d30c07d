use super::*;
use crate::abi::addr_of;

fn vip(ip: &str, port: u16) -> VipKey {
    let (addr, family) = addr_of(ip.parse().unwrap());
    VipKey {
        addr,
        port: port.to_be(),
        proto: 6,
        family,
    }
}

fn svc(index: u32) -> Service {
    Service {
        index,
        ..Default::default()
    }
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Old: services 0 (VIP .1:80) and 1 (VIP .2:80), reals 0 and 1 of service 0, real 2 of
/// service 1. New: the services swapped indexes, real .11 got index 7, .12 is gone.
fn translate() -> Translate {
    let old = vec![(vip("10.0.0.1", 80), svc(0)), (vip("10.0.0.2", 80), svc(1))];
    let mut new = HashMap::new();
    new.insert(
        vip("10.0.0.1", 80),
        NewService {
            index: 1,
            reals: [(sa("10.0.1.11:8080"), 7)].into_iter().collect(),
            pool: vec!["10.0.2.2".parse().unwrap(), "10.0.2.1".parse().unwrap()],
        },
    );
    new.insert(
        vip("10.0.0.2", 80),
        NewService {
            index: 0,
            reals: [(sa("10.0.1.13:80"), 3)].into_iter().collect(),
            pool: vec![],
        },
    );
    let reals = [
        (0, sa("10.0.1.11:8080")),
        (1, sa("10.0.1.12:8080")),
        (2, sa("10.0.1.13:80")),
    ]
    .into_iter()
    .collect();
    let pools = [(
        0,
        vec!["10.0.2.1".parse().unwrap(), "10.0.2.2".parse().unwrap()],
    )]
    .into_iter()
    .collect();
    Translate::new(&old, new, reals, pools)
}

fn conn(svc: u32, real: u32) -> Conn {
    Conn {
        svc,
        real,
        last_ns: 42,
        state: 3,
        method: abi::RVS_METHOD_NAT as u8,
        ..Default::default()
    }
}

#[test]
fn entries_follow_their_service_and_real_by_address() {
    let t = translate();
    let c = t.conn(&conn(0, 0)).expect("kept");
    assert_eq!((c.svc, c.real, c.last_ns, c.state), (1, 7, 42, 3));
    let c = t.conn(&conn(1, 2)).expect("kept");
    assert_eq!((c.svc, c.real), (0, 3));
}

#[test]
fn entries_of_a_gone_real_or_service_are_left_behind() {
    let t = translate();
    assert!(t.conn(&conn(0, 1)).is_none(), "real .12 is gone");
    assert!(t.conn(&conn(5, 0)).is_none(), "no old service 5");
    assert!(t.conn(&conn(0, 9)).is_none(), "no old real 9");
}

#[test]
fn fullnat_local_addresses_follow_their_address() {
    let t = translate();
    let mut c = conn(0, 0);
    c.method = abi::RVS_METHOD_FULLNAT as u8;
    c.lport = 4000u16.to_be();
    c.laddr = abi::RVS_LADDR_F_SYN_RECV as u8; // index 0: 10.0.2.1
    let n = t.conn(&c).expect("kept");
    assert_eq!(
        n.laddr,
        abi::RVS_LADDR_F_SYN_RECV as u8 | 1,
        "now second in the pool"
    );
    assert_eq!(n.lport, c.lport);
    c.laddr = 5; // no such address in the old pool
    assert!(t.conn(&c).is_none());
}

#[test]
fn reverse_entries_and_templates_follow_their_flow() {
    let t = translate();
    let flow = |p: u16| FlowKey {
        sport: p,
        ..Default::default()
    };
    let conns = vec![(flow(1), conn(0, 0)), (flow(2), conn(0, 1))];
    let rev = |orig: FlowKey| abi::NatRev {
        orig,
        real: 0,
        ..Default::default()
    };
    let revs = vec![(flow(11), rev(flow(1))), (flow(12), rev(flow(2)))];
    let persist = vec![
        (
            PersistKey {
                svc: 0,
                addr: [9, 0, 0, 0],
            },
            Persist {
                real: 0,
                ..Default::default()
            },
        ),
        (
            PersistKey {
                svc: 0,
                addr: [8, 0, 0, 0],
            },
            Persist {
                real: 1,
                ..Default::default()
            },
        ),
    ];
    let c = carry(&t, &conns, &revs, &persist);
    assert_eq!(c.conns.len(), 1);
    assert_eq!(c.revs.len(), 1);
    assert_eq!((c.revs[0].0, c.revs[0].1.real), (flow(11), 7));
    assert_eq!(c.persist.len(), 1);
    assert_eq!((c.persist[0].0.svc, c.persist[0].1.real), (1, 7));
    assert_eq!(c.dropped, 3);
}

#[test]
fn link_names_round_trip() {
    for mode in [AttachMode::Native, AttachMode::Generic] {
        assert_eq!(parse_link(&link_name(12, mode)), Some((12, mode)));
    }
    assert_eq!(parse_link("rvs_conns"), None);
    assert_eq!(parse_link("link-x-native"), None);
}

#[test]
fn a_later_copy_carries_only_new_keys() {
    let flow = |p: u16| FlowKey {
        sport: p,
        ..Default::default()
    };
    let carried = |ports: &[u16]| Carried {
        conns: ports.iter().map(|p| (flow(*p), conn(1, 7))).collect(),
        revs: ports
            .iter()
            .map(|p| (flow(*p + 100), abi::NatRev::default()))
            .collect(),
        ..Default::default()
    };
    let mut seen = Seen::default();
    assert_eq!(seen.take(carried(&[1, 2])).len(), 4);
    let later = seen.take(carried(&[1, 2, 3]));
    assert_eq!(later.len(), 2);
    assert_eq!(later.conns[0].0, flow(3));
    assert_eq!(later.revs[0].0, flow(103));
    assert_eq!(seen.take(carried(&[3])).len(), 0);
}
