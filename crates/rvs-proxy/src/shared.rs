//! Engine-wide state the workers read: the clock, the `--set` timeouts, outcome counters, the
//! per-worker connection tables, the caps on TCP connections and UDP sessions, and the
//! idle-timeout watcher every connection runs.

use crate::cap::ConnCap;
use crate::connect::LogLimit;
use crate::stats::Outcomes;
use crate::track::{Clock, ConnTable, ConnTrack};
use rvs_core::desired::Timeouts;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

/// Shared by the control thread and every worker.
#[derive(Debug)]
pub struct EngineShared {
    pub clock: Clock,
    pub outcomes: Outcomes,
    /// Paces the log of local connect errors ([`crate::connect::ConnectError::Local`]).
    pub local_error_log: LogLimit,
    /// One table per worker, indexed by worker number.
    pub tables: Vec<Arc<ConnTable>>,
    pub use_splice: bool,
    /// Relayed TCP connections, against `[daemon] proxy_max_conns`.
    pub tcp_cap: ConnCap,
    tcp_timeout: AtomicU32,
    tcp_fin_timeout: AtomicU32,
    udp_timeout: AtomicU32,
    /// Live UDP sessions, and the most there may be (each holds a descriptor).
    udp_sessions: AtomicUsize,
    udp_sessions_max: usize,
}

/// One UDP session's place under the engine's cap; released when dropped.
#[derive(Debug)]
pub struct UdpSlot(Arc<EngineShared>);

impl Drop for UdpSlot {
    fn drop(&mut self) {
        self.0.udp_sessions.fetch_sub(1, Relaxed);
    }
}

impl EngineShared {
    pub fn new(
        workers: usize,
        use_splice: bool,
        tcp_conns_max: usize,
        udp_sessions_max: usize,
    ) -> Self {
        let t = Timeouts::default();
        EngineShared {
            clock: Clock(std::time::Instant::now()),
            outcomes: Outcomes::default(),
            local_error_log: LogLimit::default(),
            tables: (0..workers)
                .map(|_| Arc::new(ConnTable::default()))
                .collect(),
            use_splice,
            tcp_cap: ConnCap::new(tcp_conns_max),
            tcp_timeout: AtomicU32::new(t.tcp),
            tcp_fin_timeout: AtomicU32::new(t.tcp_fin),
            udp_timeout: AtomicU32::new(t.udp),
            udp_sessions: AtomicUsize::new(0),
            udp_sessions_max,
        }
    }

    /// A place for a new UDP session, or `None` if the cap is reached.
    pub fn udp_slot(self: &Arc<Self>) -> Option<UdpSlot> {
        let max = self.udp_sessions_max;
        self.udp_sessions
            .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| UdpSlot(Arc::clone(self)))
    }

    /// The cap on UDP sessions.
    pub fn udp_sessions_max(&self) -> usize {
        self.udp_sessions_max
    }

    /// `--set tcp tcpfin udp`. A 0 (which the config files refuse, but the API's state may
    /// carry) means IPVS's default, as the xdp engine reads it (`ConnTimeouts::from_set`), never
    /// "expire at once".
    pub fn set_timeouts(&self, t: Timeouts) {
        let d = Timeouts::default();
        let or_default = |v: u32, default: u32| if v == 0 { default } else { v };
        self.tcp_timeout.store(or_default(t.tcp, d.tcp), Relaxed);
        self.tcp_fin_timeout
            .store(or_default(t.tcp_fin, d.tcp_fin), Relaxed);
        self.udp_timeout.store(or_default(t.udp, d.udp), Relaxed);
    }

    /// Established-TCP idle timeout in ms (a service's `idle_timeout_ms` overrides it; 0 does
    /// not).
    pub fn tcp_timeout_ms(&self, service_override: Option<u32>) -> u64 {
        match service_override {
            Some(ms) if ms > 0 => ms as u64,
            _ => self.tcp_timeout.load(Relaxed) as u64 * 1000,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_timeout_means_the_default_not_at_once() {
        let e = EngineShared::new(1, false, 10, 10);
        e.set_timeouts(Timeouts {
            tcp: 30,
            tcp_fin: 5,
            udp: 60,
            ..Default::default()
        });
        assert_eq!(e.tcp_timeout_ms(None), 30_000);
        e.set_timeouts(Timeouts {
            tcp: 0,
            tcp_fin: 0,
            udp: 0,
            ..Default::default()
        });
        assert_eq!(e.tcp_timeout_ms(None), 900_000);
        assert_eq!(e.tcp_fin_timeout_ms(), 120_000);
        assert_eq!(e.udp_timeout_ms(), 300_000);
        assert_eq!(e.tcp_timeout_ms(Some(0)), 900_000);
        assert_eq!(e.tcp_timeout_ms(Some(250)), 250);
    }
}

#[cfg(test)]
mod slot_tests {
    use super::*;

    #[test]
    fn udp_slots_stop_at_the_cap_and_come_back_when_released() {
        let e = Arc::new(EngineShared::new(1, false, 10, 2));
        let a = e.udp_slot().expect("first");
        let b = e.udp_slot().expect("second");
        assert!(e.udp_slot().is_none(), "over the cap");
        drop(a);
        let c = e.udp_slot().expect("a released place is free again");
        assert!(e.udp_slot().is_none());
        drop((b, c));
        assert_eq!(e.udp_sessions.load(Relaxed), 0);
    }
}
