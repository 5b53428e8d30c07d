//! `sweep_cost`: what the upkeep thread's work on a full connection table costs, side by side
//! in one run:
//! - whole-table: one read (`Balancer::conns`, what `-Lnc` and `-Ln` counts still do) and one
//!   sweep of both tables at once (`Balancer::sweep`), entry by entry (aya's iteration, what
//!   kernels before 5.6 get) and with the batch commands;
//! - sliced, as the engine's upkeep thread runs it (`Balancer::sweeper(SLICE_BUDGET)`, one
//!   round per second): the rounds of the first pass over the table (half of it expired) and
//!   of a second pass (nothing left to remove), CPU per round (mean and max) and rounds per
//!   pass.
//!
//! ```text
//! cargo run --release -p rvs-xdp --example sweep_cost [--nat-table=N] [ENTRIES ...]
//! ```
//!
//! ENTRIES default to 100000 250000; `--nat-table` sizes `rvs_nat_rev` and `rvs_nat_conns`
//! (default 262,144), e.g. 1048576 to see what a larger table's empty buckets cost a round.
//!
//! Each row loads a fresh balancer, fills it with ENTRIES TCP TIME_WAIT entries (half idle past
//! the 120 s timeout) — DR flows in `rvs_conns`, or NAT flows in `rvs_nat_conns` with a reverse
//! entry each in `rvs_nat_rev` — and measures wall and thread CPU time (user + system).
//! `rvs_conns` holds `RVS_MAX_CONNS` (262,144) entries: more would be evicted; the NAT tables
//! hold `--nat-table` entries: more fail to insert. Needs root.

use rvs_xdp::Balancer;
use rvs_xdp::abi::{self, Config, Conn, FlowKey, NatRev};
use rvs_xdp::bench_setup::{fill_conns, fill_nat_conns};

/// The engine's budget per round.
const SLICE_BUDGET: usize = Balancer::SWEEP_BUDGET;
use std::time::Instant;

type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The sweep's clock: any monotonic time past the timeouts.
const NOW: u64 = 1_000_000 * 1_000_000_000;

/// `n` distinct client flows to 10.0.0.3:80; the odd ones idle for 200 s (expired), the even
/// ones for 1 s.
fn entries(n: usize) -> Vec<(FlowKey, Conn)> {
    (0..n)
        .map(|i| {
            let key = rvs_xdp::bench_setup::client_flow(
                i as u32,
                [10, 0, 0, 3],
                80,
                abi::RVS_PROTO_TCP as u32,
            );
            let idle_s = if i % 2 == 1 { 200 } else { 1 };
            let conn = Conn {
                state: abi::RVS_STATE_TIME_WAIT as u8,
                last_ns: NOW - idle_s * 1_000_000_000,
                ..Default::default()
            };
            (key, conn)
        })
        .collect()
}

/// Wall and CPU milliseconds of `f`, and its result.
fn timed<T>(f: impl FnOnce() -> T) -> (f64, f64, T) {
    let (wall, cpu) = (
        Instant::now(),
        rvs_xdp::engine::clock_ns(libc::CLOCK_THREAD_CPUTIME_ID),
    );
    let out = f();
    let cpu_ms = (rvs_xdp::engine::clock_ns(libc::CLOCK_THREAD_CPUTIME_ID) - cpu) as f64 / 1e6;
    (wall.elapsed().as_secs_f64() * 1e3, cpu_ms, out)
}

/// The reverse entry of NAT flow `key` (the real 10.0.1.7:80 replies to the client).
fn reverse(key: &FlowKey) -> (FlowKey, NatRev) {
    let rev = FlowKey {
        src: [u32::from_be_bytes([10, 0, 1, 7]).to_be(), 0, 0, 0],
        dst: key.src,
        sport: key.dport,
        dport: key.sport,
        ..*key
    };
    let value = NatRev {
        orig: *key,
        ..Default::default()
    };
    (rev, value)
}

/// A fresh balancer whose tables hold `n` entries, half expired (NAT: a reverse entry each).
fn filled(n: usize, nat: bool, batch: bool, nat_table: u32) -> BoxResult<Balancer> {
    let mut b = Balancer::load_sized(nat_table)?;
    b.set_config(&Config::default())?;
    b.set_batch_ops(batch);
    let all = entries(n);
    if nat {
        fill_nat_conns(&mut b, &all)?;
    } else {
        fill_conns(&mut b, &all)?;
    }
    if nat {
        for (k, _) in &all {
            let (rev, value) = reverse(k);
            b.insert_nat_rev(&rev, &value)?;
        }
    }
    Ok(b)
}

/// The half of `n` entries left after a sweep, and as many reverse entries for NAT; `removed`
/// entries reported removed, when known.
fn check_swept(b: &Balancer, n: usize, nat: bool, removed: Option<usize>) -> BoxResult<()> {
    let (left, revs) = (b.conns()?.len(), b.nat_rev()?.len());
    let revs_left = if nat { n - n / 2 } else { 0 };
    let removed = removed.unwrap_or(n / 2);
    if removed != n / 2 || left != n - n / 2 || revs != revs_left {
        return Err(format!("sweep removed {removed}, left {left} ({revs} reverse) of {n}").into());
    }
    Ok(())
}

/// Whole-table: (read wall, read cpu, sweep wall, sweep cpu) in ms.
fn whole(n: usize, nat: bool, batch: bool, nat_table: u32) -> BoxResult<[f64; 4]> {
    let mut b = filled(n, nat, batch, nat_table)?;
    let (read_wall, read_cpu, read) = timed(|| b.conns());
    let read = read?.len();
    if read != n {
        return Err(format!("read {read} entries of {n} inserted").into());
    }
    let (sweep_wall, sweep_cpu, swept) = timed(|| b.sweep(&Config::default(), NOW));
    let (report, removed) = swept?;
    check_swept(&b, n, nat, Some(removed + report.reclaimed))?;
    Ok([read_wall, read_cpu, sweep_wall, sweep_cpu])
}

/// One pass of a sliced sweep: rounds, mean and max CPU per round (ms).
struct Pass {
    rounds: usize,
    mean_cpu: f64,
    max_cpu: f64,
}

/// Sliced: the first pass (half the table expired) and a second one; a pass = rounds until
/// both tables' passes are complete.
fn sliced(n: usize, nat: bool, nat_table: u32) -> BoxResult<[Pass; 2]> {
    let b = filled(n, nat, true, nat_table)?;
    let mut sweeper = b.sweeper(SLICE_BUDGET)?;
    let cfg = Config::default();
    let mut pass = || -> BoxResult<Pass> {
        let (mut conns_done, mut revs_done) = (false, false);
        let mut p = Pass {
            rounds: 0,
            mean_cpu: 0.0,
            max_cpu: 0.0,
        };
        while !(conns_done && revs_done) {
            let (_, cpu, round) = timed(|| sweeper.round(&cfg, NOW));
            let r = round?;
            if r.conns_read > SLICE_BUDGET || r.nat.seen > SLICE_BUDGET {
                let read = (r.conns_read, r.nat.seen);
                return Err(format!("a round read {read:?} entries").into());
            }
            conns_done |= r.conns_pass_done;
            revs_done |= r.revs_pass_done;
            p.rounds += 1;
            p.mean_cpu += cpu;
            p.max_cpu = p.max_cpu.max(cpu);
        }
        p.mean_cpu /= p.rounds as f64;
        Ok(p)
    };
    let first = pass()?;
    let second = pass()?;
    // A NAT flow's connection entry may go in the connection table's slice and its reverse
    // entry in a later round, counted in both: check the tables, not the counts.
    check_swept(&b, n, nat, None)?;
    Ok([first, second])
}

fn main() -> BoxResult<()> {
    if !rvs_testbed::is_root() {
        eprintln!("skipping: loading the balancer needs root");
        return Ok(());
    }
    let mut nat_table = abi::RVS_MAX_NAT_CONNS as u32;
    let mut args = Vec::new();
    for a in std::env::args().skip(1) {
        match a.strip_prefix("--nat-table=") {
            Some(v) => nat_table = v.parse().map_err(|e| format!("--nat-table: {e}"))?,
            None => args.push(a),
        }
    }
    let parsed: Result<Vec<usize>, _> = args.iter().map(|a| a.parse()).collect();
    let sizes = match parsed {
        Ok(v) if !v.is_empty() => v,
        Ok(_) => vec![100_000, 250_000],
        Err(e) => return Err(format!("ENTRIES: {e}").into()),
    };
    println!("whole-table: one read, one sweep of both tables");
    println!(
        "{:>8} {:<4} {:<9}  {:>11} {:>10}  {:>11} {:>10}",
        "entries", "kind", "path", "read wall", "read cpu", "sweep wall", "sweep cpu"
    );
    let mut rows = Vec::new();
    for &n in &sizes {
        for (kind, nat) in [("dr", false), ("nat", true)] {
            let old = whole(n, nat, false, nat_table)?;
            let new = whole(n, nat, true, nat_table)?;
            for (path, r) in [("per-entry", old), ("batch", new)] {
                println!(
                    "{n:>8} {kind:<4} {path:<9}  {:>8.1} ms {:>7.1} ms  {:>8.1} ms {:>7.1} ms",
                    r[0], r[1], r[2], r[3]
                );
            }
            println!(
                "{n:>8} {kind:<4} {:<9}  {:>10.1}x {:>9.1}x  {:>10.1}x {:>9.1}x",
                "old/new",
                old[0] / new[0],
                old[1] / new[1],
                old[2] / new[2],
                old[3] / new[3]
            );
            rows.push((n, kind, new, sliced(n, nat, nat_table)?));
        }
    }
    println!(
        "\nsliced: {SLICE_BUDGET} entries of each table per round; CPU of the whole-table \
         sweep (batch) against CPU per round of the first and second pass"
    );
    println!(
        "{:>8} {:<4}  {:>14}  {:>6} {:>9} {:>9}  {:>6} {:>9} {:>9}",
        "entries",
        "kind",
        "whole sweep",
        "rounds",
        "1st mean",
        "1st max",
        "rounds",
        "2nd mean",
        "2nd max"
    );
    for (n, kind, whole, [first, second]) in rows {
        println!(
            "{n:>8} {kind:<4}  {:>11.1} ms  {:>6} {:>6.1} ms {:>6.1} ms  {:>6} {:>6.1} ms {:>6.1} ms",
            whole[3],
            first.rounds,
            first.mean_cpu,
            first.max_cpu,
            second.rounds,
            second.mean_cpu,
            second.max_cpu
        );
    }
    Ok(())
}
