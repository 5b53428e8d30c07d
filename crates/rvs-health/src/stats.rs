//! Counters and the lateness histogram of the supervisor (how far behind schedule checks
//! start), lock-free so every checker task can record.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Fine lateness buckets: 50 µs wide up to 100 ms.
const FINE_US: u64 = 50;
const FINE_BUCKETS: u64 = 2000;
/// Coarse buckets: 1 ms wide from 100 ms to 2 s; later goes in the last one.
const COARSE_US: u64 = 1000;
const COARSE_BUCKETS: u64 = 1900;
const BUCKETS: usize = (FINE_BUCKETS + COARSE_BUCKETS + 1) as usize;

/// The bucket of a lateness in microseconds.
fn bucket(us: u64) -> usize {
    let fine_end = FINE_US * FINE_BUCKETS;
    if us < fine_end {
        (us / FINE_US) as usize
    } else {
        (FINE_BUCKETS + ((us - fine_end) / COARSE_US).min(COARSE_BUCKETS)) as usize
    }
}

/// The upper edge of bucket `i` in microseconds.
fn upper_edge(i: usize) -> u64 {
    let i = i as u64;
    if i < FINE_BUCKETS {
        (i + 1) * FINE_US
    } else {
        FINE_US * FINE_BUCKETS + (i - FINE_BUCKETS + 1) * COARSE_US
    }
}

/// Supervisor-wide statistics.
#[derive(Debug)]
pub struct Stats {
    checks: AtomicU64,
    failures: AtomicU64,
    transitions: AtomicU64,
    max_late_us: AtomicU64,
    late: Vec<AtomicU64>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            checks: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            transitions: AtomicU64::new(0),
            max_late_us: AtomicU64::new(0),
            late: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// A copy of the statistics at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Checks run.
    pub checks: u64,
    /// Checks that failed.
    pub failures: u64,
    /// Health transitions (up↔down).
    pub transitions: u64,
    /// Lateness percentiles (upper bucket edge: 50 µs resolution below 100 ms, 1 ms above)
    /// and maximum.
    pub late_p50: Duration,
    pub late_p99: Duration,
    pub late_max: Duration,
}

impl Stats {
    /// A check started `late` after it was due.
    pub fn record_start(&self, late: Duration) {
        let us = late.as_micros().min(u128::from(u64::MAX)) as u64;
        self.late[bucket(us)].fetch_add(1, Relaxed);
        self.max_late_us.fetch_max(us, Relaxed);
    }

    /// A check finished.
    pub fn record_result(&self, ok: bool) {
        self.checks.fetch_add(1, Relaxed);
        if !ok {
            self.failures.fetch_add(1, Relaxed);
        }
    }

    /// A real changed health.
    pub fn record_transition(&self) {
        self.transitions.fetch_add(1, Relaxed);
    }

    /// Forget the lateness seen so far (e.g. after a warm-up period).
    pub fn reset_lateness(&self) {
        for b in &self.late {
            b.store(0, Relaxed);
        }
        self.max_late_us.store(0, Relaxed);
    }

    /// Read everything.
    pub fn snapshot(&self) -> StatsSnapshot {
        let counts: Vec<u64> = self.late.iter().map(|b| b.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        let pct = |p: f64| {
            let rank = ((total as f64) * p).ceil() as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank.max(1) {
                    return Duration::from_micros(upper_edge(i));
                }
            }
            Duration::ZERO
        };
        StatsSnapshot {
            checks: self.checks.load(Relaxed),
            failures: self.failures.load(Relaxed),
            transitions: self.transitions.load(Relaxed),
            late_p50: if total == 0 {
                Duration::ZERO
            } else {
                pct(0.50)
            },
            late_p99: if total == 0 {
                Duration::ZERO
            } else {
                pct(0.99)
            },
            late_max: Duration::from_micros(self.max_late_us.load(Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_from_the_histogram() {
        let s = Stats::default();
        for ms in 1..=100u64 {
            s.record_start(Duration::from_micros(ms * 1000 - 10));
        }
        s.record_start(Duration::from_millis(1500));
        let snap = s.snapshot();
        assert_eq!(snap.late_p50, Duration::from_millis(51));
        assert_eq!(snap.late_p99, Duration::from_millis(100));
        assert_eq!(snap.late_max, Duration::from_millis(1500));
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        s.reset_lateness();
        assert_eq!(s.snapshot().late_max, Duration::ZERO);
    }
}
