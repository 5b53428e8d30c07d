//! Engine-wide state the workers read: the clock, the `--set` timeouts, outcome counters, the
//! per-worker connection tables, and the idle-timeout watcher every connection runs.

use crate::stats::Outcomes;
use crate::track::{Clock, ConnTable, ConnTrack};
use rvs_core::desired::Timeouts;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::Duration;

/// Shared by the control thread and every worker.
#[derive(Debug)]
pub struct EngineShared {
    pub clock: Clock,
    pub outcomes: Outcomes,
    /// One table per worker, indexed by worker number.
    pub tables: Vec<Arc<ConnTable>>,
    pub use_splice: bool,
    tcp_timeout: AtomicU32,
    tcp_fin_timeout: AtomicU32,
    udp_timeout: AtomicU32,
}

impl EngineShared {
    pub fn new(workers: usize, use_splice: bool) -> Self {
        let t = Timeouts::default();
        EngineShared {
            clock: Clock(std::time::Instant::now()),
            outcomes: Outcomes::default(),
            tables: (0..workers)
                .map(|_| Arc::new(ConnTable::default()))
                .collect(),
            use_splice,
            tcp_timeout: AtomicU32::new(t.tcp),
            tcp_fin_timeout: AtomicU32::new(t.tcp_fin),
            udp_timeout: AtomicU32::new(t.udp),
        }
    }

    /// `--set tcp tcpfin udp`.
    pub fn set_timeouts(&self, t: Timeouts) {
        self.tcp_timeout.store(t.tcp, Relaxed);
        self.tcp_fin_timeout.store(t.tcp_fin, Relaxed);
        self.udp_timeout.store(t.udp, Relaxed);
    }

    /// Established-TCP idle timeout in ms (a service's `idle_timeout_ms` overrides it).
    pub fn tcp_timeout_ms(&self, service_override: Option<u32>) -> u64 {
        match service_override {
            Some(ms) => ms as u64,
            None => self.tcp_timeout.load(Relaxed) as u64 * 1000,
        }
    }

    /// Half-closed TCP timeout in ms.
    pub fn tcp_fin_timeout_ms(&self) -> u64 {
        self.tcp_fin_timeout.load(Relaxed) as u64 * 1000
    }

    /// UDP session timeout in ms.
    pub fn udp_timeout_ms(&self) -> u64 {
        self.udp_timeout.load(Relaxed) as u64 * 1000
    }

    /// Resolves once `track` has seen no traffic for its current timeout (re-read on every
    /// wake-up, so state changes and traffic push the deadline out without re-arming a timer
    /// per chunk).
    pub async fn idle_expired(&self, track: &ConnTrack) {
        loop {
            let deadline = track.last_active.load(Relaxed) + track.timeout_ms.load(Relaxed);
            let now = self.clock.now_ms();
            if now >= deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(deadline - now)).await;
        }
    }
}
