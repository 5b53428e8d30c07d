//! Placement rules and per-engine diffs, with a recording stand-in engine.

use super::*;
use rvs_core::engine::EngineError;
use rvs_core::model::{AddressFamily, RealServer, ServiceOptions};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

type Log = Arc<Mutex<Vec<Change>>>;
/// FULLNAT pools an engine was given, in order.
type PoolLog = Arc<Mutex<Vec<(ServiceKey, Vec<IpAddr>)>>>;

/// Records every change; refuses services on `refuse_port`; serves FULLNAT only if `fullnat_only`.
/// With `pools`, it is like the xdp engine: a FULLNAT real needs a local address of the VIP's
/// family, from its default pool (`default_pool`) or the service's own.
struct Recorder {
    kind: EngineKind,
    fullnat_only: bool,
    refuse_port: Option<u16>,
    log: Log,
    pools: Option<(Vec<IpAddr>, PoolLog)>,
}

impl Recorder {
    fn pool_of(&self, key: &ServiceKey) -> Vec<IpAddr> {
        let Some((default, log)) = &self.pools else {
            return Vec::new();
        };
        let own = log
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, a)| a.clone())
            .unwrap_or_default();
        let pool = if own.is_empty() { default.clone() } else { own };
        pool.into_iter()
            .filter(|a| AddressFamily::of(*a) == key.family())
            .collect()
    }
}

impl ManagedEngine for Recorder {
    fn set_fullnat_pool(&mut self, key: ServiceKey, addrs: Vec<IpAddr>) -> Result<(), String> {
        if let Some((_, log)) = &self.pools {
            log.lock().unwrap().push((key, addrs));
        }
        Ok(())
    }
}

impl Engine for Recorder {
    fn kind(&self) -> EngineKind {
        self.kind
    }
    fn supports(&self, s: &ServiceConfig) -> Result<(), Unsupported> {
        let fullnat = s.reals.values().any(|r| r.method == ForwardMethod::FullNat);
        if self.pools.is_some() && fullnat && self.pool_of(&s.key).is_empty() {
            return Err(Unsupported(format!(
                "{}: FULLNAT needs a local address of the VIP's family",
                s.key
            )));
        }
        match s
            .reals
            .values()
            .find(|r| self.fullnat_only && r.method != ForwardMethod::FullNat)
        {
            Some(r) => Err(Unsupported(format!("{} is not fullnat", r.addr))),
            None => Ok(()),
        }
    }
    fn apply(&mut self, changes: &[Change]) -> Result<(), EngineError> {
        for c in changes {
            if let Change::AddService {
                key: key @ ServiceKey::Addr { addr, .. },
                ..
            } = c
                && Some(addr.port()) == self.refuse_port
            {
                let source = std::io::ErrorKind::AddrInUse.into();
                return Err(EngineError::Io {
                    context: format!("binding {key}"),
                    source,
                });
            }
            self.log.lock().unwrap().push(c.clone());
        }
        Ok(())
    }
    fn stats(&self) -> EngineStats {
        EngineStats::default()
    }
    fn zero(&mut self, _: Option<&ServiceKey>) {}
    fn connections(&self) -> Vec<ConnectionInfo> {
        Vec::new()
    }
    fn shutdown(&mut self) {}
}

fn recorder(
    kind: EngineKind,
    fullnat_only: bool,
    refuse_port: Option<u16>,
) -> (Box<dyn ManagedEngine>, Log) {
    let log = Log::default();
    (
        Box::new(Recorder {
            kind,
            fullnat_only,
            refuse_port,
            log: log.clone(),
            pools: None,
        }),
        log,
    )
}

/// An xdp-like recorder with FULLNAT pools (`default` is its engine-wide pool).
fn xdp_with_pools(default: &[&str]) -> (Box<dyn ManagedEngine>, Log, PoolLog) {
    let log = Log::default();
    let pools = PoolLog::default();
    let default = default.iter().map(|a| a.parse().unwrap()).collect();
    let engine = Recorder {
        kind: EngineKind::Xdp,
        fullnat_only: false,
        refuse_port: None,
        log: log.clone(),
        pools: Some((default, pools.clone())),
    };
    (Box::new(engine), log, pools)
}

fn key(port: u16) -> ServiceKey {
    ServiceKey::tcp(format!("10.0.0.3:{port}").parse().unwrap())
}

fn real(last: u8, m: ForwardMethod, w: u32) -> RealServer {
    RealServer::new(format!("10.0.0.{last}:80").parse().unwrap(), m, w)
}

/// Real 10.0.0.`last`:`port`, weight 1 (a DR/TUN real on its service's port gets no note).
fn real_on(last: u8, port: u16, m: ForwardMethod) -> RealServer {
    RealServer::new(format!("10.0.0.{last}:{port}").parse().unwrap(), m, 1)
}

fn state(services: &[(u16, ForwardMethod)]) -> DesiredState {
    let mut s = DesiredState::default();
    for (port, m) in services {
        s.add_service(key(*port), ServiceOptions::default())
            .unwrap();
        s.add_real(&key(*port), real(7, *m, 1)).unwrap();
    }
    s
}

fn proxy_only() -> (EngineManager, Log) {
    let (p, log) = recorder(EngineKind::Proxy, true, Some(99));
    let why = BTreeMap::from([(
        EngineKind::Xdp,
        "needs root and --xdp-interface".to_string(),
    )]);
    (EngineManager::new(vec![p], why), log)
}

fn touched(log: &Log, k: ServiceKey) -> bool {
    log.lock()
        .unwrap()
        .iter()
        .any(|c| changed_service(c) == Some(k))
}

#[test]
fn dr_without_xdp_is_flagged_and_never_handed_to_the_proxy() {
    let (mut m, log) = proxy_only();
    m.apply(&state(&[
        (80, ForwardMethod::Dr),
        (81, ForwardMethod::FullNat),
    ]));
    let why = "forwarding method DR needs the xdp engine, which is not running (needs root and --xdp-interface)";
    assert_eq!(m.placement(&key(80)), Some(&Err(why.into())));
    assert_eq!(m.placement(&key(81)), Some(&Ok(EngineKind::Proxy)));
    assert!(!touched(&log, key(80)));
}

#[test]
fn only_the_difference_reaches_the_engine_and_services_move_out() {
    let (mut m, log) = proxy_only();
    let s1 = state(&[(80, ForwardMethod::FullNat), (81, ForwardMethod::FullNat)]);
    m.apply(&s1);
    log.lock().unwrap().clear();
    // 80: a weight edit; 81: a DR real is added, so it leaves the proxy engine.
    let mut s2 = s1.clone();
    s2.edit_real(&key(80), real(7, ForwardMethod::FullNat, 5))
        .unwrap();
    s2.add_real(&key(81), real(8, ForwardMethod::Dr, 1))
        .unwrap();
    m.apply(&s2);
    let got = log.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0], Change::RemoveService(key(81)));
    assert!(
        matches!(&got[1], Change::EditReal { service, real } if *service == key(80) && real.weight == 5)
    );
    let why = m.placement(&key(81)).unwrap().clone().unwrap_err();
    assert!(why.contains("DR needs the xdp engine"), "{why}");
    log.lock().unwrap().clear();
    m.apply(&s2);
    assert!(log.lock().unwrap().is_empty(), "same state, no changes");
}

#[test]
fn a_service_the_engine_refuses_is_flagged_and_retried() {
    let (mut m, log) = proxy_only();
    let s = state(&[(99, ForwardMethod::FullNat), (80, ForwardMethod::FullNat)]);
    m.apply(&s);
    let why = m.placement(&key(99)).unwrap().clone().unwrap_err();
    assert!(
        why.starts_with("the proxy engine could not serve it: binding tcp 10.0.0.3:99"),
        "{why}"
    );
    assert_eq!(m.placement(&key(80)), Some(&Ok(EngineKind::Proxy)));
    assert!(
        !log.lock()
            .unwrap()
            .iter()
            .any(|c| matches!(c, Change::AddReal { service, .. } if *service == key(99)))
    );
    m.apply(&s);
    assert!(
        m.placement(&key(99)).unwrap().is_err(),
        "tried again, still refused"
    );
}

#[test]
fn fullnat_prefers_xdp_and_pins_are_respected() {
    let (x, xlog) = recorder(EngineKind::Xdp, false, None);
    let (p, plog) = recorder(EngineKind::Proxy, true, None);
    let mut m = EngineManager::new(vec![x, p], BTreeMap::new());
    let mut s = state(&[
        (80, ForwardMethod::FullNat),
        (81, ForwardMethod::FullNat),
        (82, ForwardMethod::Tun),
    ]);
    let mut o = s.services[&key(81)].options;
    o.engine = EnginePin::Proxy;
    s.edit_service(key(81), o).unwrap();
    m.apply(&s);
    assert_eq!(m.placement(&key(80)), Some(&Ok(EngineKind::Xdp)));
    assert_eq!(m.placement(&key(81)), Some(&Ok(EngineKind::Proxy)));
    assert_eq!(m.placement(&key(82)), Some(&Ok(EngineKind::Xdp)));
    assert!(touched(&plog, key(81)) && !touched(&plog, key(80)) && !touched(&plog, key(82)));
    assert!(!touched(&xlog, key(81)));
    // pinned to the proxy with a DR real: the proxy's own reason is shown
    s.add_real(&key(81), real(9, ForwardMethod::Dr, 1)).unwrap();
    m.apply(&s);
    assert_eq!(
        m.placement(&key(81)),
        Some(&Err("10.0.0.9:80 is not fullnat".into()))
    );
}

fn pools(entries: &[(u16, &[&str])]) -> ServicePools {
    entries
        .iter()
        .map(|(port, addrs)| {
            (
                key(*port),
                addrs.iter().map(|a| a.parse().unwrap()).collect(),
            )
        })
        .collect()
}

#[test]
fn fullnat_goes_to_xdp_only_with_local_addresses_and_says_why_not() {
    let (x, xlog, plog_x) = xdp_with_pools(&["fd00::5"]);
    let (p, plog) = recorder(EngineKind::Proxy, true, None);
    let mut m = EngineManager::new(vec![x, p], BTreeMap::new());
    let s = state(&[(80, ForwardMethod::FullNat), (81, ForwardMethod::FullNat)]);
    // 80 has its own pool; 81 has none, and the default pool has no IPv4 address
    m.set_local_addresses(&pools(&[(80, &["10.0.0.5", "10.0.0.6"])]));
    m.apply(&s);
    assert_eq!(m.placement(&key(80)), Some(&Ok(EngineKind::Xdp)));
    assert_eq!(m.placement(&key(81)), Some(&Ok(EngineKind::Proxy)));
    assert!(xdp_noted(&m, 80), "{:?}", m.note(&key(80)));
    let note = m.note(&key(81)).unwrap();
    assert!(
        note.starts_with(
            "on the proxy engine, not the xdp engine: tcp 10.0.0.3:81: FULLNAT needs a local address"
        ),
        "{note}"
    );
    assert!(touched(&xlog, key(80)) && !touched(&xlog, key(81)));
    assert!(touched(&plog, key(81)) && !touched(&plog, key(80)));
    assert_eq!(plog_x.lock().unwrap().len(), 1, "one pool set");

    // reload: 81 gets a pool (moves to xdp), 80's pool is unchanged (not set again)
    xlog.lock().unwrap().clear();
    plog.lock().unwrap().clear();
    m.set_local_addresses(&pools(&[
        (80, &["10.0.0.5", "10.0.0.6"]),
        (81, &["10.0.0.7"]),
    ]));
    m.apply(&s);
    assert_eq!(m.placement(&key(81)), Some(&Ok(EngineKind::Xdp)));
    assert!(xdp_noted(&m, 81), "{:?}", m.note(&key(81)));
    assert_eq!(
        plog_x.lock().unwrap().last().unwrap(),
        &(key(81), vec!["10.0.0.7".parse::<IpAddr>().unwrap()])
    );
    assert_eq!(
        plog_x.lock().unwrap().len(),
        2,
        "80's unchanged pool is not set again"
    );
    assert_eq!(plog.lock().unwrap()[0], Change::RemoveService(key(81)));
    assert!(touched(&xlog, key(81)) && !touched(&xlog, key(80)));

    // 80's pool changes: the engine gets the new one; 81's pool goes: back to the proxy
    xlog.lock().unwrap().clear();
    m.set_local_addresses(&pools(&[(80, &["10.0.0.9"])]));
    m.apply(&s);
    let got = plog_x.lock().unwrap().clone();
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(got.contains(&(key(80), vec!["10.0.0.9".parse().unwrap()])));
    assert!(
        got.contains(&(key(81), Vec::new())),
        "an empty pool: back to the default"
    );
    assert_eq!(m.placement(&key(80)), Some(&Ok(EngineKind::Xdp)));
    assert_eq!(m.placement(&key(81)), Some(&Ok(EngineKind::Proxy)));
    assert_eq!(
        xlog.lock().unwrap().clone(),
        vec![Change::RemoveService(key(81))]
    );
}

#[test]
fn fullnat_pinned_to_xdp_without_local_addresses_gives_the_engines_reason() {
    let (x, _, _) = xdp_with_pools(&[]);
    let (p, _) = recorder(EngineKind::Proxy, true, None);
    let mut m = EngineManager::new(vec![x, p], BTreeMap::new());
    let mut s = state(&[(80, ForwardMethod::FullNat)]);
    let mut o = s.services[&key(80)].options;
    o.engine = EnginePin::Xdp;
    s.edit_service(key(80), o).unwrap();
    m.apply(&s);
    assert_eq!(
        m.placement(&key(80)),
        Some(&Err(
            "tcp 10.0.0.3:80: FULLNAT needs a local address of the VIP's family".into()
        ))
    );
    // the engine's default pool serves it once it has an address of the family
    let (x, _, _) = xdp_with_pools(&["10.0.0.5"]);
    let (p, _) = recorder(EngineKind::Proxy, true, None);
    let mut m = EngineManager::new(vec![x, p], BTreeMap::new());
    m.apply(&s);
    assert_eq!(m.placement(&key(80)), Some(&Ok(EngineKind::Xdp)));
}

/// The limit rvs-config checks is the one the program has.
#[cfg(feature = "xdp")]
#[test]
fn config_limit_is_the_programs() {
    assert_eq!(
        rvs_config::local_addr::MAX_PER_FAMILY as u64,
        rvs_xdp::abi::RVS_MAX_LADDRS
    );
}

/// A service on the xdp engine (default scheduler wlc) is noted as placed by Maglev.
/// A manager with only the xdp engine (FULLNAT local addresses `pool` by default).
fn xdp_only(pool: &[&str]) -> EngineManager {
    let (x, _, _) = xdp_with_pools(pool);
    EngineManager::new(vec![x], BTreeMap::new())
}

/// Service options with the Maglev scheduler (the xdp engine's own) and nothing else set.
fn mh_options() -> ServiceOptions {
    ServiceOptions {
        scheduler: SchedulerKind::Mh,
        ..Default::default()
    }
}

fn xdp_noted(m: &EngineManager, port: u16) -> bool {
    m.note(&key(port))
        .is_some_and(|n| n.starts_with("on the xdp engine:") && n.contains("scheduler wlc"))
}

#[test]
fn the_xdp_engine_notes_the_scheduling_options_it_does_not_apply() {
    let mut m = xdp_only(&[]);
    let mut s = DesiredState::default();
    let mh = mh_options();
    let udp_o = ServiceOptions {
        scheduler: SchedulerKind::Rr,
        one_packet: true,
        ..Default::default()
    };
    for (port, o) in [(80, mh), (81, udp_o)] {
        s.add_service(key(port), o).unwrap();
        s.add_real(&key(port), real_on(7, port, ForwardMethod::Dr))
            .unwrap();
    }
    m.apply(&s);
    assert_eq!(m.placement(&key(80)), Some(&Ok(EngineKind::Xdp)));
    assert_eq!(m.note(&key(80)), None, "mh is what the xdp engine does");
    let note = m.note(&key(81)).expect("a note");
    assert!(
        note.starts_with("on the xdp engine:")
            && note.ends_with("not applied: scheduler rr, one-packet scheduling (-o; UDP only)"),
        "{note}"
    );
}

/// A FULLNAT service with options of the proxy engine, placed on the xdp engine: the note says
/// they are not applied (and that no PROXY header is sent when one was asked for).
#[test]
fn the_xdp_engine_notes_the_proxy_options_it_does_not_apply() {
    let mut m = xdp_only(&["10.0.0.5"]);
    let mut s = DesiredState::default();
    let mh = mh_options();
    let mut retries = mh;
    retries.proxy.connect_retries = 9;
    for (port, o) in [(80, mh), (81, retries), (82, mh)] {
        s.add_service(key(port), o).unwrap();
        let mut r = real(7, ForwardMethod::FullNat, 1);
        if port == 82 {
            r.proxy_protocol = Some(ProxyProtocol::V2);
        }
        s.add_real(&key(port), r).unwrap();
    }
    m.apply(&s);
    assert_eq!(m.note(&key(80)), None);
    let tail = |port| {
        let n = m.note(&key(port)).expect("a note");
        assert_eq!(m.placement(&key(port)), Some(&Ok(EngineKind::Xdp)), "{n}");
        n.rsplit("not applied: ").next().unwrap().to_string()
    };
    assert_eq!(tail(81), "the proxy engine's options ([service.proxy])");
    assert_eq!(
        tail(82),
        "the proxy engine's options ([service.proxy]; no PROXY protocol header is sent)"
    );
}

/// `-o` is applied to UDP datagrams to DR/TUN reals: no note for a `-s mh -o` UDP service of
/// such reals; noted for TCP and for NAT/FULLNAT reals (which keep connection entries).
#[test]
fn the_xdp_engine_notes_one_packet_only_where_it_does_not_apply_it() {
    let mut m = xdp_only(&[]);
    let mut s = DesiredState::default();
    let mh_o = ServiceOptions {
        one_packet: true,
        ..mh_options()
    };
    let udp = |port: u16| ServiceKey::udp(format!("10.0.0.3:{port}").parse().unwrap());
    let cases: [(ServiceKey, &[ForwardMethod], Option<&str>); 6] = [
        (udp(53), &[ForwardMethod::Dr], None),
        (udp(54), &[ForwardMethod::Tun, ForwardMethod::Dr], None),
        (udp(55), &[], None),
        (
            udp(56),
            &[ForwardMethod::Dr, ForwardMethod::Nat],
            Some("one-packet scheduling (-o) for NAT/FULLNAT reals"),
        ),
        (
            udp(57),
            &[ForwardMethod::Nat],
            Some("one-packet scheduling (-o) for NAT/FULLNAT reals"),
        ),
        (
            key(58),
            &[ForwardMethod::Dr],
            Some("one-packet scheduling (-o; UDP only)"),
        ),
    ];
    for (k, methods, _) in &cases {
        s.add_service(*k, mh_o).unwrap();
        for (i, m) in methods.iter().enumerate() {
            let ServiceKey::Addr { addr, .. } = k else {
                unreachable!()
            };
            s.add_real(k, real_on(7 + i as u8, addr.port(), *m))
                .unwrap();
        }
    }
    m.apply(&s);
    for (k, _, want) in cases {
        assert_eq!(m.placement(&k), Some(&Ok(EngineKind::Xdp)), "{k}");
        let note = m.note(&k);
        match want {
            None => assert_eq!(note, None, "{k}"),
            Some(w) => {
                let note = note.expect("a note");
                assert!(note.ends_with(&format!("not applied: {w}")), "{k}: {note}");
            }
        }
    }
}

/// DR and TUN do not rewrite the destination port, so a DR/TUN real given another port than
/// its service's (`-a -t VIP:80 -r RIP:8080 -g`; ipvsadm silently makes it RIP:80) is reached
/// on the service's port: the note says so instead of listing a port nothing goes to. NAT and
/// FULLNAT reals map ports, no note; a DR real on the service's port, no note.
#[test]
fn the_xdp_engine_notes_dr_and_tun_reals_whose_port_it_cannot_use() {
    let mut m = xdp_only(&["10.0.0.5"]);
    let mut s = DesiredState::default();
    let mh = mh_options();
    let at = |last: u8, port: u16, method| {
        RealServer::new(format!("10.0.0.{last}:{port}").parse().unwrap(), method, 1)
    };
    let cases: [(u16, Vec<RealServer>, Option<&str>); 3] = [
        (
            80,
            vec![
                at(7, 8080, ForwardMethod::Dr),
                at(8, 80, ForwardMethod::Dr),
                at(9, 8081, ForwardMethod::Tun),
            ],
            Some(
                "not applied: the port of DR/TUN reals 10.0.0.7:8080, 10.0.0.9:8081 \
                 (they are reached on port 80: DR and TUN do not rewrite ports)",
            ),
        ),
        (
            81,
            vec![
                at(7, 8080, ForwardMethod::Nat),
                at(8, 81, ForwardMethod::Dr),
            ],
            None,
        ),
        (82, vec![at(7, 82, ForwardMethod::Tun)], None),
    ];
    for (port, reals, _) in &cases {
        s.add_service(key(*port), mh).unwrap();
        for r in reals {
            s.add_real(&key(*port), *r).unwrap();
        }
    }
    m.apply(&s);
    for (port, _, want) in cases {
        assert_eq!(
            m.placement(&key(port)),
            Some(&Ok(EngineKind::Xdp)),
            "{port}"
        );
        match want {
            None => assert_eq!(m.note(&key(port)), None, "{port}"),
            Some(w) => {
                let note = m.note(&key(port)).expect("a note");
                assert!(note.ends_with(w), "{port}: {note}");
            }
        }
    }
}
