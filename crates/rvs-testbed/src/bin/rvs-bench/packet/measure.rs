//! One measured run of a packet-path subject: wrk (one process per target, run side by side,
//! figures summed) with the director's NAPI kthread runtime, CPU 1's busy time and the
//! director process's own CPU sampled around it; iperf3 for bulk throughput.

use std::time::Duration;

use rvs_testbed::{Netns, WrkOptions, WrkResult, director_cost, iperf3, wrk};

use crate::record::{HIGHER, LOWER, Recorder};
use crate::{BALANCER_CPU, BoxResult, CLIENT_CPU, Plan};

/// Where wrk sends its requests: URL and how many of the plan's connections go there.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://ADDR/`.
    pub url: String,
    /// Connections (`-c`) of this wrk process.
    pub connections: u32,
}

/// Splits `total` connections over `urls` as evenly as possible (17, 17, 16 for 50 over 3).
pub fn spread(urls: &[String], total: u32) -> Vec<Target> {
    let n = urls.len() as u32;
    urls.iter()
        .enumerate()
        .map(|(i, u)| Target {
            url: u.clone(),
            connections: total / n + u32::from((i as u32) < total % n),
        })
        .collect()
}

/// The figures of wrk processes run side by side: requests and rates summed, the worst p99.
fn wrk_all(
    client: &Netns,
    targets: &[Target],
    duration: Duration,
    close: bool,
) -> BoxResult<WrkResult> {
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = targets
            .iter()
            .map(|t| {
                let o = WrkOptions {
                    url: t.url.clone(),
                    connections: t.connections,
                    threads: 1,
                    duration,
                    new_connection_per_request: close,
                    cpus: Some(CLIENT_CPU.into()),
                };
                s.spawn(move || wrk(Some(client), &o))
            })
            .collect();
        handles.into_iter().map(|h| h.join()).collect()
    });
    let mut sum = WrkResult {
        requests: 0,
        requests_per_sec: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        errors: 0,
    };
    for r in results {
        let r = r.map_err(|_| "wrk thread panicked")??;
        sum.requests += r.requests;
        sum.requests_per_sec += r.requests_per_sec;
        sum.p50_ms = sum.p50_ms.max(r.p50_ms);
        sum.p99_ms = sum.p99_ms.max(r.p99_ms);
        sum.errors += r.errors;
    }
    Ok(sum)
}

/// Busy time of CPU `cpu` from /proc/stat (all but idle and iowait), in milliseconds.
fn cpu_busy_ms(cpu: &str) -> BoxResult<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let label = format!("cpu{cpu}");
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&label))
        .ok_or("no cpu line")?;
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: f64 = f
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(busy * 1000.0 / hz)
}

/// What one measured run needs besides the targets.
pub struct Ctx<'a> {
    /// The plan (durations, rounds).
    pub plan: &'a Plan,
    /// The client namespace.
    pub client: &'a Netns,
    /// The reals' namespaces.
    pub reals: Vec<&'a Netns>,
    /// The director's NAPI kthreads.
    pub kthreads: &'a [u32],
    /// Where the figures go.
    pub rec: &'a mut Recorder,
}

/// Warm-up (unmeasured, when the plan has one) with keep-alive.
pub fn warm_up(ctx: &Ctx, targets: &[Target]) -> BoxResult<()> {
    // A failed warm-up is not fatal: the measured run after it records its own failure.
    if let Some(w) = ctx.plan.warmup
        && let Err(e) = wrk_all(ctx.client, targets, w, false)
    {
        eprintln!("rvs-bench: warm-up failed: {e}");
    }
    Ok(())
}

/// One measured wrk run of `subject` in `scenario`. `director_cpu` is false for subjects whose
/// traffic does not cross the director (then only requests/s and latency are recorded);
/// `userspace_ms` samples the director process's own CPU time (rvs subjects). Returns the
/// requests completed (0 when the run failed and its figures are recorded as missing).
pub fn requests(
    ctx: &mut Ctx,
    subject: &str,
    targets: &[Target],
    scenario: &str,
    close: bool,
    director_cpu: bool,
    userspace_ms: Option<&dyn Fn() -> f64>,
) -> BoxResult<u64> {
    let k0 = director_cost::runtime_ns(ctx.kthreads)?;
    let c0 = cpu_busy_ms(BALANCER_CPU)?;
    let u0 = userspace_ms.map(|f| f());
    let phase = crate::phases::phase(subject, scenario);
    let r = wrk_all(ctx.client, targets, ctx.plan.duration, close);
    drop(phase);
    let k1 = director_cost::runtime_ns(ctx.kthreads)?;
    let c1 = cpu_busy_ms(BALANCER_CPU)?;
    let u1 = userspace_ms.map(|f| f());
    // A failed run costs this round's figures of this subject (recorded as missing, so the
    // rounds stay aligned for the pairwise ratios), not the whole comparison.
    let r = match r {
        Ok(r) if r.requests > 0 => r,
        other => {
            let why = match other {
                Ok(_) => "no request completed".to_string(),
                Err(e) => e.to_string(),
            };
            ctx.rec.note(&format!(
                "{subject} / {scenario}: run failed, figures missing for this round: {why}"
            ));
            WrkResult {
                requests: 0,
                requests_per_sec: f64::NAN,
                p50_ms: f64::NAN,
                p99_ms: f64::NAN,
                errors: 0,
            }
        }
    };
    if r.errors > 0 {
        ctx.rec.note(&format!(
            "{subject} / {scenario}: wrk reported {} errors in {} requests",
            r.errors, r.requests
        ));
    }
    let n = if r.requests > 0 {
        r.requests as f64
    } else {
        f64::NAN
    };
    let rec = &mut *ctx.rec;
    if director_cpu {
        let k = (k1 - k0) as f64 / 1000.0 / n;
        rec.push(
            subject,
            scenario,
            "director_cpu_per_request",
            "µs",
            LOWER,
            k,
        );
        rec.push(
            subject,
            scenario,
            "cpu1_busy_per_request",
            "µs",
            LOWER,
            (c1 - c0) * 1000.0 / n,
        );
    }
    if let (Some(a), Some(b)) = (u0, u1) {
        rec.push(
            subject,
            scenario,
            "director_userspace_cpu_per_request",
            "µs",
            LOWER,
            (b - a) * 1000.0 / n,
        );
    }
    rec.push(
        subject,
        scenario,
        "requests_per_sec",
        "req/s",
        HIGHER,
        r.requests_per_sec,
    );
    rec.push(subject, scenario, "p99_latency", "ms", LOWER, r.p99_ms);
    Ok(r.requests)
}

/// One iperf3 run (one stream) to `server:port` from the client; records Gbit/s. One retry (a
/// run occasionally ends without its summary); if both fail the subject keeps its other figures
/// and the report notes why.
pub fn bulk(ctx: &mut Ctx, subject: &str, server: &str, port: u16) -> BoxResult<()> {
    let run = || {
        iperf3(
            Some(ctx.client),
            Some(CLIENT_CPU),
            server,
            port,
            ctx.plan.bulk_secs,
        )
    };
    match run().or_else(|_| run()) {
        Ok(bps) => ctx.rec.push(
            subject,
            "bulk (iperf3, 1 stream)",
            "throughput",
            "Gbit/s",
            HIGHER,
            bps / 1e9,
        ),
        Err(e) => ctx.rec.note(&format!("{subject}: bulk run failed: {e}")),
    }
    Ok(())
}
