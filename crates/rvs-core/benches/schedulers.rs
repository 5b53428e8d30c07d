//! Cost of one pick per scheduler at 10, 1,000 and 10,000 reals.
//!
//! Run: `cargo bench -p rvs-core --bench schedulers` (about three minutes on an idle machine; results in
//! `bench/README.md`, section "Scheduler benchmarks").
//!
//! Reals have weights 1..=10 (cycling). Requests cycle through 4,096 pre-made ones with random
//! clients and 1,024 distinct destinations. For the schedulers that count connections (lc, wlc,
//! sed, nq, ovf, lblc, lblcr, twos) one iteration is a realistic open/close: the oldest of `n`
//! open connections closes (active − 1, `counts_changed`), then the pick, then the new
//! connection opens (active + 1, `counts_changed`). The others time the pick alone.
//!
//! The group `wlc-kernel-scan` is a reference: wlc as the kernel does it (a scan of every real
//! per pick, nothing kept between picks), timed with the same open/close, so the index's gain
//! is measured under the same conditions.
//!
//! Times are the benchmark thread's **CPU time** (`CLOCK_THREAD_CPUTIME_ID`), not wall time:
//! the development machine is shared, and wall time would count the time spent preempted.

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use rvs_core::model::{Protocol, SchedulerKind};
use rvs_core::scheduler::{PickRequest, RealState, Scheduler, SchedulerParams, new_scheduler};
use rvs_core::time::Timestamp;
use std::collections::VecDeque;
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

const SIZES: [usize; 3] = [10, 1_000, 10_000];

/// Criterion measurement of the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), so
/// that time spent preempted by other processes on a shared machine is not counted.
struct ThreadCpuTime;

/// Nanoseconds of CPU time this thread has used.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }

    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuNanos
    }
}

/// Prints CPU nanoseconds as ns / µs / ms.
struct CpuNanos;

impl ValueFormatter for CpuNanos {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (div, unit) = match typical {
            t if t < 1e3 => (1.0, "ns (cpu)"),
            t if t < 1e6 => (1e3, "µs (cpu)"),
            _ => (1e6, "ms (cpu)"),
        };
        values.iter_mut().for_each(|v| *v /= div);
        unit
    }

    fn scale_throughputs(&self, _: f64, _: &Throughput, _: &mut [f64]) -> &'static str {
        "ns (cpu)"
    }

    fn scale_for_machines(&self, _: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn reals(n: usize) -> Vec<RealState> {
    (0..n)
        .map(|i| {
            let addr = SocketAddr::from((Ipv4Addr::from(0x0a00_0000 + i as u32 + 1), 80));
            RealState::new(addr, 1 + (i % 10) as u32)
        })
        .collect()
}

fn requests() -> Vec<PickRequest> {
    let mut x: u64 = 0x1234_5678;
    (0..4096)
        .map(|k| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let client = SocketAddr::from((Ipv4Addr::from((x >> 32) as u32), (x >> 16) as u16));
            let dest = SocketAddr::from((Ipv4Addr::from(0xc633_6400 + (x as u32 % 1024)), 80));
            let now = Timestamp::from_millis(k);
            PickRequest {
                protocol: Protocol::Tcp,
                client,
                dest,
                now,
            }
        })
        .collect()
}

/// wlc the kernel's way: scan all reals for the lowest overhead / weight (first on ties).
#[derive(Debug)]
struct KernelScanWlc;

impl Scheduler for KernelScanWlc {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Wlc
    }

    fn rebuild(&mut self, _reals: &[RealState]) {}

    fn pick(&mut self, reals: &[RealState], _req: &PickRequest) -> Option<usize> {
        let mut best: Option<(usize, u64, u64)> = None;
        for (i, r) in reals.iter().enumerate().filter(|(_, r)| r.available()) {
            let (oh, w) = (r.overhead(), r.weight as u64);
            if best.is_none_or(|(_, boh, bw)| oh * bw < boh * w) {
                best = Some((i, oh, w));
            }
        }
        best.map(|(i, _, _)| i)
    }
}

fn counts_connections(kind: SchedulerKind) -> bool {
    use SchedulerKind::*;
    matches!(kind, Lc | Wlc | Sed | Nq | Ovf | Lblc | Lblcr | Twos)
}

/// One scheduler over `n` reals, with its open connections.
struct Bench {
    sched: Box<dyn Scheduler>,
    reals: Vec<RealState>,
    open: VecDeque<usize>,
    reqs: Vec<PickRequest>,
    next: usize,
}

impl Bench {
    fn new(kind: SchedulerKind, n: usize) -> Self {
        Bench::with(new_scheduler(kind, SchedulerParams::default()), n)
    }

    fn with(mut sched: Box<dyn Scheduler>, n: usize) -> Self {
        let reals = reals(n);
        sched.rebuild(&reals);
        let open = VecDeque::with_capacity(n + 1);
        Bench {
            sched,
            reals,
            open,
            reqs: requests(),
            next: 0,
        }
    }

    fn request(&mut self) -> PickRequest {
        self.next = (self.next + 1) % self.reqs.len();
        self.reqs[self.next]
    }

    fn pick_only(&mut self) -> Option<usize> {
        let req = self.request();
        self.sched.pick(&self.reals, &req)
    }

    fn close_pick_open(&mut self) -> Option<usize> {
        if self.open.len() >= self.reals.len()
            && let Some(done) = self.open.pop_front()
        {
            self.reals[done].active -= 1;
            self.sched.counts_changed(&self.reals, done);
        }
        let picked = self.pick_only();
        if let Some(i) = picked {
            self.reals[i].active += 1;
            self.sched.counts_changed(&self.reals, i);
            self.open.push_back(i);
        }
        picked
    }
}

/// Time one configuration; the set-up runs only if the benchmark is selected (filters).
fn time(
    group: &mut BenchmarkGroup<'_, ThreadCpuTime>,
    n: usize,
    lifecycle: bool,
    make: impl Fn() -> Bench,
) {
    let mut state: Option<Bench> = None;
    group.bench_with_input(BenchmarkId::from_parameter(n), &n, |bench, _| {
        let b = state.get_or_insert_with(|| {
            let mut b = make();
            // Reach the steady state (n open connections) before timing.
            if lifecycle {
                for _ in 0..2 * n {
                    b.close_pick_open();
                }
            }
            b
        });
        if lifecycle {
            bench.iter(|| black_box(b.close_pick_open()))
        } else {
            bench.iter(|| black_box(b.pick_only()))
        }
    });
}

fn configure(group: &mut BenchmarkGroup<'_, ThreadCpuTime>) {
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_millis(800));
    group.sample_size(20);
}

fn schedulers(c: &mut Criterion<ThreadCpuTime>) {
    for kind in SchedulerKind::ALL {
        let mut group = c.benchmark_group(kind.name());
        configure(&mut group);
        for n in SIZES {
            time(&mut group, n, counts_connections(kind), || {
                Bench::new(kind, n)
            });
        }
        group.finish();
    }
    let mut group = c.benchmark_group("wlc-kernel-scan");
    configure(&mut group);
    for n in SIZES {
        time(&mut group, n, true, || {
            Bench::with(Box::new(KernelScanWlc), n)
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = schedulers
}
criterion_main!(benches);
