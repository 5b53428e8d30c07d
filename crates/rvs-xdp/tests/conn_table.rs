//! The connection table read whole and swept, with the kernel's batch commands and entry by
//! entry (the fallback of kernels before 5.6, forced with `Balancer::set_batch_ops(false)`):
//! a read returns exactly the entries inserted, the sweep removes exactly the expired ones.
//! The sliced sweep the engine runs (`Balancer::sweeper`): rounds read at most their budget,
//! remove every expired entry within a pass (plus a round) and never a live one, reclaim NAT
//! and FULLNAT flows reverse entry first, and count live flows per real over a pass.
//! Needs root (loads the balancer; skips with a message otherwise).

use rvs_xdp::Balancer;
use rvs_xdp::abi::{self, Config, Conn, FlowKey, NatRev};
use rvs_xdp::bench_setup::{client_flow, fill_conns, fill_nat_conns};
use rvs_xdp::conntrack::{expired, is_active};
use std::collections::{HashMap, HashSet};

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
    client_flow(i, [10, 0, 0, 3], 80, proto as u32)
}

/// The entries of `entries` still live at `NOW` under `cfg`.
fn live_of(cfg: &Config, entries: &[(FlowKey, Conn)]) -> HashMap<FlowKey, Conn> {
    entries
        .iter()
        .filter(|(_, c)| !expired(cfg, Some(c), NOW))
        .copied()
        .collect()
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
                state: state as u8,
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
        let live = live_of(&cfg, &inserted);
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

/// Live flows of `all` at NOW per real: (active, inactive).
fn live_per_real(cfg: &Config, all: &[(FlowKey, Conn)]) -> HashMap<u32, (u32, u32)> {
    let mut out: HashMap<u32, (u32, u32)> = HashMap::new();
    for (_, c) in all.iter().filter(|(_, c)| !expired(cfg, Some(c), NOW)) {
        let e = out.entry(c.real).or_default();
        if is_active(c.state) {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
    out
}

#[test]
fn sliced_rounds_remove_every_expired_entry_within_a_pass_and_never_a_live_one() {
    const N: usize = 20_000;
    const BUDGET: usize = 1_000;
    let cfg = Config::default();
    let Some(mut b) = balancer(true) else { return };
    let inserted = flows(N as u32);
    fill_conns(&mut b, &inserted).expect("fill");
    let live = live_of(&cfg, &inserted);
    assert!(
        live.len() > N / 4 && live.len() < N * 3 / 4,
        "{}",
        live.len()
    );
    let mut sweeper = b.sweeper(BUDGET).expect("sweeper");
    let (mut removed, mut passes) = (0, 0);
    for round in 1..=N.div_ceil(BUDGET) + 1 {
        let r = sweeper.round(&cfg, NOW).expect("round");
        assert!(
            r.conns_read <= BUDGET,
            "round {round} read {}",
            r.conns_read
        );
        // (A round may read nothing when rvs_conns ended on the budget the round before: it
        // walks the empty NAT table and ends the pass.)
        assert!(
            r.conns_read > 0 || r.conns_pass_done,
            "round {round}: nothing read"
        );
        removed += r.removed;
        let now = table(&b);
        assert!(
            live.iter().all(|(k, c)| now.get(k) == Some(c)),
            "round {round} removed a live entry"
        );
        if r.conns_pass_done {
            passes += 1;
            if passes == 1 {
                // The first pass saw the whole table as inserted: its counts are exact.
                assert_eq!(
                    r.live,
                    Some(live_per_real(&cfg, &inserted)),
                    "round {round}"
                );
            }
        } else {
            assert_eq!(r.live, None, "round {round}: counts before the pass ends");
        }
    }
    assert!(passes >= 1, "no pass completed");
    assert_eq!(removed, N - live.len());
    assert_eq!(table(&b), live, "every expired entry removed");
    // A later pass (of the live entries alone) removes nothing and counts the same.
    let mut rounds = 0;
    let r = loop {
        let r = sweeper.round(&cfg, NOW).expect("round");
        assert_eq!(r.removed, 0);
        rounds += 1;
        if r.conns_pass_done && rounds > 1 {
            break r;
        }
        assert!(rounds <= 2 * live.len().div_ceil(BUDGET) + 2, "no pass end");
    };
    assert_eq!(r.live, Some(live_per_real(&cfg, &inserted)));
}

#[test]
fn without_batch_commands_a_round_is_the_whole_table() {
    let cfg = Config::default();
    let Some(mut b) = balancer(false) else { return };
    let inserted = flows(20_000);
    fill_conns(&mut b, &inserted).expect("fill");
    let live = live_of(&cfg, &inserted);
    let r = b
        .sweeper(1_000)
        .expect("sweeper")
        .round(&cfg, NOW)
        .expect("round");
    assert_eq!((r.conns_read, r.conns_pass_done), (20_000, true));
    assert_eq!(r.removed, 20_000 - live.len());
    assert_eq!(table(&b), live);
}

/// The reverse entry of flow `k` to real 10.0.1.(`real`) on port 8080: for NAT the real
/// replies to the client, for FULLNAT to local address 10.0.9.1, port `lport`.
fn reverse(k: &FlowKey, real: u32, lport: u16) -> FlowKey {
    let (dst, dport) = if lport == 0 {
        (k.src, k.sport)
    } else {
        (
            [u32::from_be_bytes([10, 0, 9, 1]).to_be(), 0, 0, 0],
            lport.to_be(),
        )
    };
    FlowKey {
        src: [u32::from_be_bytes([10, 0, 1, real as u8]).to_be(), 0, 0, 0],
        dst,
        sport: 8080u16.to_be(),
        dport,
        ..*k
    }
}

#[test]
fn sliced_rounds_reclaim_nat_and_fullnat_flows_reverse_entry_first() {
    const BUDGET: usize = 500;
    let cfg = Config::default();
    let Some(mut b) = balancer(true) else { return };
    // 12,000 flows: the first 4,000 NAT, the next 2,000 FULLNAT (local port set), the rest
    // DR; about half of each expired.
    let mut all = flows(12_000);
    // Reverse entry -> flow; FULLNAT flow -> its reverse entry.
    let (mut revs, mut fullnat) = (HashMap::new(), HashMap::new());
    for (i, (k, c)) in all.iter_mut().enumerate() {
        let lport = match i {
            0..4000 => 0,
            4000..6000 => 10_000 + (i as u16 - 4000),
            _ => continue,
        };
        c.lport = lport.to_be();
        let rev = reverse(k, c.real, lport);
        revs.insert(rev, *k);
        if lport != 0 {
            fullnat.insert(*k, rev);
        }
    }
    // NAT and FULLNAT flows in their own table, DR flows in rvs_conns.
    fill_nat_conns(&mut b, &all[..6000]).expect("fill NAT");
    fill_conns(&mut b, &all[6000..]).expect("fill DR");
    let real_of: HashMap<FlowKey, u32> = all.iter().map(|(k, c)| (*k, c.real)).collect();
    for (rev, orig) in &revs {
        let value = NatRev {
            orig: *orig,
            real: real_of[orig],
            ..Default::default()
        };
        b.insert_nat_rev(rev, &value).expect("reverse entry");
    }
    let live: HashMap<FlowKey, Conn> = all
        .iter()
        .filter(|(_, c)| !expired(&cfg, Some(c), NOW))
        .copied()
        .collect();
    let live_revs: HashSet<(FlowKey, FlowKey)> = revs
        .iter()
        .filter(|(_, orig)| live.contains_key(orig))
        .map(|(r, o)| (*r, *o))
        .collect();
    let expired_nat = revs.len() - live_revs.len();
    assert!(
        expired_nat > 2000 && live_revs.len() > 2000,
        "{expired_nat}"
    );
    assert_eq!((revs.len(), fullnat.len()), (6000, 2000));

    let mut sweeper = b.sweeper(BUDGET).expect("sweeper");
    let (rev_rounds, conn_rounds) = (
        revs.len().div_ceil(BUDGET) + 1,
        // A slice ends on a bucket boundary, in each of the two connection tables.
        all.len().div_ceil(BUDGET) + 2,
    );
    let mut reclaimed = 0;
    for round in 1..=conn_rounds.max(rev_rounds) {
        let r = sweeper.round(&cfg, NOW).expect("round");
        assert!(
            r.conns_read <= BUDGET && r.nat.seen <= BUDGET,
            "round {round}: {r:?}"
        );
        reclaimed += r.nat.reclaimed;
        let conns = table(&b);
        let now_revs: HashSet<(FlowKey, FlowKey)> =
            b.nat_rev().expect("nat_rev").into_iter().collect();
        assert!(
            live.iter().all(|(k, c)| conns.get(k) == Some(c)),
            "round {round} removed a live entry"
        );
        assert!(
            now_revs.is_superset(&live_revs),
            "round {round} removed a live reverse entry"
        );
        // A FULLNAT flow's connection entry (its local port) never goes before its reverse
        // entry.
        for (orig, rev) in &fullnat {
            assert!(
                conns.contains_key(orig) || !now_revs.contains(&(*rev, *orig)),
                "round {round}: FULLNAT entry removed before its reverse entry"
            );
        }
        if round == rev_rounds {
            assert_eq!(now_revs, live_revs, "after a pass of the reverse table");
        }
    }
    assert_eq!(
        reclaimed, expired_nat,
        "each expired NAT/FULLNAT flow reclaimed once"
    );
    assert_eq!(table(&b), live, "every expired entry removed");
    // Later, every flow the walk saw live has expired: a pass of each table reclaims the
    // rest (the sweep trusts what it read only until the flows' expiry times).
    let later = NOW + 2000 * S;
    let (rev_rounds, conn_rounds) = (
        live_revs.len().div_ceil(BUDGET) + 1,
        live.len().div_ceil(BUDGET) + 2,
    );
    let mut reclaimed = 0;
    for round in 1..=conn_rounds.max(rev_rounds) {
        reclaimed += sweeper.round(&cfg, later).expect("round").nat.reclaimed;
        if round == rev_rounds {
            assert_eq!(reclaimed, live_revs.len(), "within {rev_rounds} rounds");
            assert!(b.nat_rev().expect("nat_rev").is_empty());
        }
    }
    assert!(table(&b).is_empty(), "within {conn_rounds} rounds");
}
