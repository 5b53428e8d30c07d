//! `sweep_cost`: what the upkeep thread's work on a full connection table costs — one whole-table
//! read (`Balancer::conns`, which also feeds overload counts and `-Lnc`) and one sweep
//! (`Balancer::sweep`, run under the engine's lock every second) — entry by entry (aya's
//! iteration, what kernels before 5.6 get) against the batch commands, side by side in one run.
//!
//! ```text
//! cargo run --release -p rvs-xdp --example sweep_cost [ENTRIES ...]   (default 100000 250000)
//! ```
//!
//! Each row loads a fresh balancer, fills `rvs_conns` with ENTRIES TCP TIME_WAIT entries (half
//! idle past the 120 s timeout) — DR flows, or NAT flows with a reverse entry each in
//! `rvs_nat_rev` — reads the connection table, then sweeps; wall and thread CPU time
//! (user + system) of each. Needs root.

use rvs_xdp::Balancer;
use rvs_xdp::abi::{self, Config, Conn, FlowKey, NatRev};
use rvs_xdp::bench_setup::fill_conns;
use std::time::Instant;

type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The sweep's clock: any monotonic time past the timeouts.
const NOW: u64 = 1_000_000 * 1_000_000_000;

/// `n` distinct client flows to 10.0.0.3:80; the odd ones idle for 200 s (expired), the even
/// ones for 1 s.
fn entries(n: usize) -> Vec<(FlowKey, Conn)> {
    (0..n)
        .map(|i| {
            let client = 0x0a00_0000u32 | (i as u32 >> 8);
            let key = FlowKey {
                src: [client.to_be(), 0, 0, 0],
                dst: [u32::from_be_bytes([10, 0, 0, 3]).to_be(), 0, 0, 0],
                sport: (1024 + (i & 0xff) as u16).to_be(),
                dport: 80u16.to_be(),
                proto: abi::RVS_PROTO_TCP as u8,
                family: abi::RVS_FAMILY_V4 as u8,
                pad: [0; 2],
            };
            let idle_s = if i % 2 == 1 { 200 } else { 1 };
            let conn = Conn {
                state: abi::RVS_STATE_TIME_WAIT as u32,
                last_ns: NOW - idle_s * 1_000_000_000,
                ..Default::default()
            };
            (key, conn)
        })
        .collect()
}

/// CPU time of this thread (user + system), ns.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Wall and CPU milliseconds of `f`, and its result.
fn timed<T>(f: impl FnOnce() -> T) -> (f64, f64, T) {
    let (wall, cpu) = (Instant::now(), thread_cpu_ns());
    let out = f();
    let cpu_ms = (thread_cpu_ns() - cpu) as f64 / 1e6;
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

/// One row: (read wall, read cpu, sweep wall, sweep cpu) in ms.
fn measure(n: usize, nat: bool, batch: bool) -> BoxResult<[f64; 4]> {
    let mut b = Balancer::load()?;
    let cfg = Config::default();
    b.set_config(&cfg)?;
    b.set_batch_ops(batch);
    let all = entries(n);
    fill_conns(&mut b, &all)?;
    if nat {
        for (k, _) in &all {
            let (rev, value) = reverse(k);
            b.insert_nat_rev(&rev, &value)?;
        }
    }
    let (read_wall, read_cpu, read) = timed(|| b.conns());
    let read = read?.len();
    if read != n {
        return Err(format!("read {read} entries of {n} inserted").into());
    }
    let (sweep_wall, sweep_cpu, swept) = timed(|| b.sweep(&cfg, NOW));
    let (report, removed) = swept?;
    let removed = removed + report.reclaimed;
    let (left, revs) = (b.conns()?.len(), b.nat_rev()?.len());
    let revs_left = if nat { n - n / 2 } else { 0 };
    if removed != n / 2 || left != n - n / 2 || revs != revs_left {
        return Err(format!("sweep removed {removed}, left {left} ({revs} reverse) of {n}").into());
    }
    Ok([read_wall, read_cpu, sweep_wall, sweep_cpu])
}

fn main() -> BoxResult<()> {
    if !rvs_testbed::is_root() {
        eprintln!("skipping: loading the balancer needs root");
        return Ok(());
    }
    let parsed: Result<Vec<usize>, _> = std::env::args().skip(1).map(|a| a.parse()).collect();
    let sizes = match parsed {
        Ok(v) if !v.is_empty() => v,
        Ok(_) => vec![100_000, 250_000],
        Err(e) => return Err(format!("ENTRIES: {e}").into()),
    };
    println!(
        "{:>8} {:<4} {:<9}  {:>11} {:>10}  {:>11} {:>10}",
        "entries", "kind", "path", "read wall", "read cpu", "sweep wall", "sweep cpu"
    );
    for n in sizes {
        for (kind, nat) in [("dr", false), ("nat", true)] {
            let old = measure(n, nat, false)?;
            let new = measure(n, nat, true)?;
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
        }
    }
    Ok(())
}
