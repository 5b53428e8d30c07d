//! The optional phase log that lets a system-wide profile be split by measured run
//! (`bench/profile.sh`): with `RVS_BENCH_PHASES=FILE` in the environment, every measured wrk run
//! appends `start <ns> <subject> / <scenario>` before it and `end <ns> ...` after it, `<ns>`
//! being `CLOCK_MONOTONIC` — the clock `perf record -k CLOCK_MONOTONIC` stamps its samples with.
//! Without the variable nothing is written. A line that cannot be written is reported on
//! stderr and never fails the benchmark.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::Write;

/// Marks one measured run: `start` now, `end` when dropped.
pub struct Phase {
    /// The log's path and the run's label; `None` without `RVS_BENCH_PHASES`.
    log: Option<(OsString, String)>,
}

/// Starts the phase of `subject` in `scenario` (a no-op without `RVS_BENCH_PHASES`).
pub fn phase(subject: &str, scenario: &str) -> Phase {
    let log = std::env::var_os("RVS_BENCH_PHASES").map(|path| {
        let label = format!("{subject} / {scenario}");
        append(&path, "start", &label);
        (path, label)
    });
    Phase { log }
}

impl Drop for Phase {
    fn drop(&mut self) {
        if let Some((path, label)) = &self.log {
            append(path, "end", label);
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

fn append(path: &OsString, what: &str, label: &str) {
    let line = format!("{what} {} {label}\n", monotonic_ns());
    let written = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!("rvs-bench: phase log {}: {e}", path.to_string_lossy());
    }
}
