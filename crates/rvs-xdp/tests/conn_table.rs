//! The connection table read whole and swept, with the kernel's batch commands and entry by
//! entry (the fallback of kernels before 5.6, forced with `Balancer::set_batch_ops(false)`):
//! a read returns exactly the entries inserted, the sweep removes exactly the expired ones.
//! Needs root (loads the balancer; skips with a message otherwise).

use rvs_xdp::Balancer;
use rvs_xdp::abi::{self, Config, Conn, FlowKey};
use rvs_xdp::bench_setup::fill_conns;
use rvs_xdp::conntrack::expired;
use std::collections::HashMap;

const S: u64 = 1_000_000_000;
/// The sweeps' clock: past every timeout.
const NOW: u64 = 100_000 * S;

fn balancer(batch: bool) -> Option<Balancer> {
    if !rvs_testbed::is_root() {
        eprintln!("skipping: loading the balancer needs root");
        return None;
    }
    let mut b = Balancer::load().expect("load");
    b.set_config(&Config::default()).expect("config");
    b.set_batch_ops(batch);
    Some(b)
}

fn key(i: u32, proto: u64) -> FlowKey {
    FlowKey {
        src: [(0x0a00_0000 | (i >> 8)).to_be(), 0, 0, 0],
        dst: [u32::from_be_bytes([10, 0, 0, 3]).to_be(), 0, 0, 0],
        sport: (1024 + (i & 0xff) as u16).to_be(),
        dport: 80u16.to_be(),
        proto: proto as u8,
        family: abi::RVS_FAMILY_V4 as u8,
        pad: [0; 2],
    }
}

/// `n` flows in various states, idle for various times around their timeouts (IPVS's
/// defaults: ESTABLISHED 900 s, TIME_WAIT 120 s, CLOSE 10 s, UDP 300 s), in services 0 and 1.
fn flows(n: u32) -> Vec<(FlowKey, Conn)> {
    let states = [
        (abi::RVS_STATE_ESTABLISHED, abi::RVS_PROTO_TCP, 900),
        (abi::RVS_STATE_TIME_WAIT, abi::RVS_PROTO_TCP, 120),
        (abi::RVS_STATE_CLOSE, abi::RVS_PROTO_TCP, 10),
        (abi::RVS_STATE_UDP, abi::RVS_PROTO_UDP, 300),
    ];
    (0..n)
        .map(|i| {
            let (state, proto, timeout) = states[i as usize % states.len()];
            // Idle from half the timeout to one and a half: about half expired.
            let idle = timeout * S / 2 + u64::from(i / 4 % 97) * timeout * S / 96;
            let conn = Conn {
                real: i % 7,
                svc: i % 2,
                last_ns: NOW - idle,
                state: state as u32,
                ..Default::default()
            };
            (key(i, proto), conn)
        })
        .collect()
}

fn table(b: &Balancer) -> HashMap<FlowKey, Conn> {
    let all = b.conns().expect("conns");
    let n = all.len();
    let map: HashMap<FlowKey, Conn> = all.into_iter().collect();
    assert_eq!(map.len(), n, "an entry read twice");
    map
}

#[test]
fn a_read_returns_exactly_the_entries_inserted() {
    for batch in [true, false] {
        let Some(mut b) = balancer(batch) else { return };
        let inserted = flows(200_000);
        fill_conns(&mut b, &inserted).expect("fill");
        let want: HashMap<FlowKey, Conn> = inserted.into_iter().collect();
        assert_eq!(table(&b), want, "batch reads: {batch}");
        // Removing a service's entries deletes in bulk: exactly service 1's go.
        assert_eq!(b.remove_service_conns(1).expect("remove"), 100_000);
        let left = table(&b);
        let want: HashMap<FlowKey, Conn> = want.into_iter().filter(|(_, c)| c.svc == 0).collect();
        assert_eq!(left, want, "batch reads: {batch}");
    }
}

#[test]
fn the_sweep_removes_exactly_the_expired_entries() {
    let cfg = Config::default();
    for batch in [true, false] {
        let inserted = flows(40_000);
        let live: HashMap<FlowKey, Conn> = inserted
            .iter()
            .filter(|(_, c)| !expired(&cfg, Some(c), NOW))
            .copied()
            .collect();
        let dead = inserted.len() - live.len();
        assert!(
            dead > 10_000 && live.len() > 10_000,
            "{dead} expired, {} live",
            live.len()
        );
        // What the upkeep thread runs (NAT part with no NAT flows), and the DR part alone.
        let Some(mut b) = balancer(batch) else { return };
        fill_conns(&mut b, &inserted).expect("fill");
        let (nat, removed) = b.sweep(&cfg, NOW).expect("sweep");
        assert_eq!(
            (nat.seen, nat.reclaimed, removed),
            (0, 0, dead),
            "batch {batch}"
        );
        assert_eq!(table(&b), live, "batch reads: {batch}");
        assert_eq!(
            b.sweep(&cfg, NOW).expect("again").1,
            0,
            "nothing left to sweep"
        );

        let Some(mut b) = balancer(batch) else { return };
        fill_conns(&mut b, &inserted).expect("fill");
        assert_eq!(b.sweep_conns(&cfg, NOW).expect("sweep_conns"), dead);
        assert_eq!(table(&b), live, "batch reads: {batch}");
    }
}
