//! The optional phase log that lets a system-wide profile be split by measured run
//! (`bench/profile.sh`): with `RVS_BENCH_PHASES=FILE` in the environment, every measured wrk run
//! appends `start <ns> <subject> / <scenario>` before it and `end <ns> ...` after it, `<ns>`
//! being `CLOCK_MONOTONIC` — the clock `perf record -k CLOCK_MONOTONIC` stamps its samples with.
//! Without the variable nothing is written. A failure to write is reported once per run on
//! stderr and never fails the benchmark.

use std::fs::OpenOptions;
use std::io::Write;

/// Marks one measured run: `start` now, `end` when dropped.
pub struct Phase {
    label: Option<String>,
}

/// Starts the phase of `subject` in `scenario` (a no-op without `RVS_BENCH_PHASES`).
pub fn phase(subject: &str, scenario: &str) -> Phase {
    if std::env::var_os("RVS_BENCH_PHASES").is_none() {
        return Phase { label: None };
    }
    let label = format!("{subject} / {scenario}");
    append("start", &label);
    Phase { label: Some(label) }
}

impl Drop for Phase {
    fn drop(&mut self) {
        if let Some(label) = &self.label {
            append("end", label);
        }
    }
}

fn monotonic_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for clock_gettime to fill; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

fn append(what: &str, label: &str) {
    let Some(path) = std::env::var_os("RVS_BENCH_PHASES") else {
        return;
    };
    let line = format!("{what} {} {label}\n", monotonic_ns());
    let written = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!("rvs-bench: phase log {}: {e}", path.to_string_lossy());
    }
}
