//! A real server as the workers see it: its address, its PROXY-protocol setting, its traffic
//! counters, the signal that resets its connections on the operator's request, and whether it
//! is available (in the service and not down) for the UDP sessions bound to it.
//!
//! A `RealShared` outlives its removal from the service: existing connections hold an `Arc` to it
//! and run to completion (IPVS's behaviour), unless the operator resets them.

use crate::connect::LogLimit;
use crate::stats::AtomicCounters;
use crate::stop::{GONE, RESET, Stop, Stops};
use rvs_core::ProxyProtocol;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};

/// Shared state of one real of one service.
#[derive(Debug)]
pub struct RealShared {
    pub addr: SocketAddr,
    /// PROXY protocol for this real (`None` = the service's), as [`encode_pp`].
    proxy_protocol: AtomicU8,
    pub counters: AtomicCounters,
    /// Bumped when the operator resets the real's connections.
    reset_generation: AtomicU64,
    /// Each live connection's stop signal: fired on a reset, and for UDP sessions when the
    /// real becomes unavailable ([`crate::stop`]).
    stops: Stops,
    /// False while the real is removed (or its service is) or its health is down: its UDP
    /// sessions end (checked per datagram, and the sessions are woken through `stops`), the
    /// client's next datagram is rescheduled.
    available: AtomicBool,
    /// Failed connects to the real (refused, failed, timed out; UDP sessions whose datagram it
    /// refused), and when (engine clock, ms)
    /// one was last logged: at most one log line per real per [`FAILURE_LOG_MS`].
    connect_failures: AtomicU64,
    failure_logged_ms: AtomicU64,
    /// Passive failure detection wants to hear of the next successful connect (failures are
    /// counted, or a probe is pending): mirrors the runtime's state, written under the service
    /// lock, so a successful connect costs one relaxed load when nothing is counted.
    passive_report: AtomicBool,
    /// Times passive failure detection took the real out, and the rate limit of their log
    /// lines (a real that keeps failing its probes, e.g. while every real is down and each
    /// client's retry probes the out ones, is taken out once per client).
    passive_downs: AtomicU64,
    passive_log: LogLimit,
}

/// At most one "connect failed" line per real per this many milliseconds.
pub const FAILURE_LOG_MS: u64 = 10_000;

/// Why a UDP session's real no longer serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RealEvent {
    /// The operator reset the real's connections.
    Reset,
    /// The real was removed or went down.
    Gone,
}

fn encode_pp(p: Option<ProxyProtocol>) -> u8 {
    match p {
        None => 0,
        Some(ProxyProtocol::None) => 1,
        Some(ProxyProtocol::V1) => 2,
        Some(ProxyProtocol::V2) => 3,
    }
}

impl RealShared {
    pub fn new(addr: SocketAddr, proxy_protocol: Option<ProxyProtocol>) -> Self {
        RealShared {
            addr,
            proxy_protocol: AtomicU8::new(encode_pp(proxy_protocol)),
            counters: AtomicCounters::default(),
            reset_generation: AtomicU64::new(0),
            stops: Stops::default(),
            available: AtomicBool::new(true),
            connect_failures: AtomicU64::new(0),
            failure_logged_ms: AtomicU64::new(0),
            passive_report: AtomicBool::new(false),
            passive_downs: AtomicU64::new(0),
            passive_log: LogLimit::default(),
        }
    }

    /// A connect to this real failed (`why`: refused, timed out, the error) at `now_ms`: count
    /// it, and log it with the real's address unless a line for this real went out within
    /// [`FAILURE_LOG_MS`] (the engine-wide outcome counters do not say which real fails).
    /// Returns whether it logged.
    pub fn connect_failed(&self, why: &dyn std::fmt::Display, now_ms: u64) -> bool {
        let n = self.connect_failures.fetch_add(1, Relaxed) + 1;
        let last = self.failure_logged_ms.load(Relaxed);
        let due = n == 1 || now_ms.saturating_sub(last) >= FAILURE_LOG_MS;
        if !due
            || self
                .failure_logged_ms
                .compare_exchange(last, now_ms.max(1), Relaxed, Relaxed)
                .is_err()
        {
            return false;
        }
        log::warn!(
            "proxy: connect to real {} failed: {why} ({n} failed connects to it so far; \
             retried on another real where allowed)",
            self.addr
        );
        true
    }

    /// Failed connects to this real since it was configured or last zeroed.
    pub fn connect_failures(&self) -> u64 {
        self.connect_failures.load(Relaxed)
    }

    /// `-Z`: the counts start again from 0 (the log keeps its own pace).
    pub fn zero_connect_failures(&self) {
        self.connect_failures.store(0, Relaxed);
        self.passive_downs.store(0, Relaxed);
    }

    /// Whether a successful connect must be reported to the service (see the field).
    pub fn passive_report(&self) -> bool {
        self.passive_report.load(Relaxed)
    }

    /// Set under the service lock from the runtime's state.
    pub fn set_passive_report(&self, report: bool) {
        self.passive_report.store(report, Relaxed);
    }

    /// Passive failure detection took the real out at `now_ms` (engine clock): counted, and
    /// logged with its address (at most one line per [`LogLimit::EVERY_MS`]). Whether it was
    /// logged.
    pub fn passive_taken_out(&self, fail_timeout_ms: u32, now_ms: u64) -> bool {
        let n = self.passive_downs.fetch_add(1, Relaxed) + 1;
        let Some(suppressed) = self.passive_log.due(now_ms) else {
            return false;
        };
        log::warn!(
            "proxy: real {} taken out for {fail_timeout_ms} ms after failed connects (passive \
             failure detection, max_fails; {n} times so far, {suppressed} since the last line); \
             then one connection probes it",
            self.addr
        );
        true
    }

    /// Times passive failure detection took the real out since it was configured or zeroed.
    pub fn passive_downs(&self) -> u64 {
        self.passive_downs.load(Relaxed)
    }

    /// The real's PROXY-protocol override.
    pub fn proxy_protocol(&self) -> Option<ProxyProtocol> {
        match self.proxy_protocol.load(Relaxed) {
            1 => Some(ProxyProtocol::None),
            2 => Some(ProxyProtocol::V1),
            3 => Some(ProxyProtocol::V2),
            _ => None,
        }
    }

    pub fn set_proxy_protocol(&self, p: Option<ProxyProtocol>) {
        self.proxy_protocol.store(encode_pp(p), Relaxed);
    }

    /// Current reset generation (a connection remembers it when it starts).
    pub fn reset_generation(&self) -> u64 {
        self.reset_generation.load(Relaxed)
    }

    /// Asks every connection to this real to close now.
    pub fn reset_connections(&self) {
        self.reset_generation.fetch_add(1, Relaxed);
        self.stops.fire(RESET);
    }

    /// Registers a connection that started at reset generation `since` (read when the real was
    /// picked), to hear of a reset or of the real becoming unavailable; unregistered on drop.
    pub fn watch(self: &Arc<Self>, since: u64) -> Watch {
        let (stop, slot) = self.stops.watch();
        Watch {
            real: Arc::clone(self),
            stop,
            slot,
            since,
        }
    }

    /// Connections registered with [`watch`](Self::watch) and not yet ended.
    pub fn watchers(&self) -> usize {
        self.stops.len()
    }

    /// Whether the real is in the service and not down (see the field's docs).
    pub fn is_available(&self) -> bool {
        self.available.load(Relaxed)
    }

    /// Marks the real available or not; becoming unavailable ends the waits of
    /// [`Watch::reset_or_gone`].
    pub fn set_available(&self, available: bool) {
        if self.available.swap(available, Relaxed) && !available {
            self.stops.fire(GONE);
        }
    }
}

/// One connection's registration with its real ([`RealShared::watch`]).
#[derive(Debug)]
pub struct Watch {
    real: Arc<RealShared>,
    stop: Arc<Stop>,
    slot: usize,
    since: u64,
}

impl Watch {
    /// Resolves when the operator resets the real's connections (after the generation the
    /// connection started at).
    pub async fn reset(&self) {
        if self.real.reset_generation() != self.since {
            return;
        }
        self.stop.fired(RESET).await;
    }

    /// Resolves when the operator resets the real's connections, or the real becomes
    /// unavailable (one future, so a UDP session polls one stop per wake).
    pub async fn reset_or_gone(&self) -> RealEvent {
        if self.real.reset_generation() != self.since {
            return RealEvent::Reset;
        }
        if !self.real.is_available() {
            return RealEvent::Gone;
        }
        match self.stop.fired(RESET | GONE).await {
            ev if ev & RESET != 0 => RealEvent::Reset,
            _ => RealEvent::Gone,
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.real.stops.remove(self.slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every failed connect is counted; a line is logged for the first and then at most once
    /// per FAILURE_LOG_MS per real.
    #[test]
    fn connect_failures_are_counted_and_logged_at_most_every_ten_seconds() {
        let r = RealShared::new("127.0.0.1:9".parse().unwrap(), None);
        let why = "connection refused";
        assert!(r.connect_failed(&why, 0), "the first is logged");
        assert!(!r.connect_failed(&why, 1_000));
        assert!(!r.connect_failed(&why, FAILURE_LOG_MS - 1));
        assert!(r.connect_failed(&why, FAILURE_LOG_MS + 1));
        assert!(!r.connect_failed(&why, FAILURE_LOG_MS + 2));
        assert_eq!(r.connect_failures(), 5);
    }

    /// Every take-out is counted; a line is logged for the first and then at most once per
    /// LogLimit::EVERY_MS (a real whose probes keep failing, e.g. each client's retry while
    /// every real is down, is taken out once per client).
    #[test]
    fn take_outs_are_counted_and_logged_at_most_every_ten_seconds() {
        let r = RealShared::new("127.0.0.1:9".parse().unwrap(), None);
        let every = LogLimit::EVERY_MS;
        assert!(r.passive_taken_out(10_000, 5), "the first is logged");
        assert!(!r.passive_taken_out(10_000, 6));
        assert!(!r.passive_taken_out(10_000, every));
        assert!(r.passive_taken_out(10_000, every + 10));
        assert!(!r.passive_taken_out(10_000, every + 11));
        assert_eq!(r.passive_downs(), 5);
    }

    /// A reset between the pick and the registration is not missed (the generation moved); one
    /// after it wakes the watcher; the real going away ends a UDP watcher but not a TCP one;
    /// dropped watches leave the real's registry.
    #[test]
    fn watches_see_resets_before_and_after_they_start_and_leave_no_registration() {
        crate::test_rt().block_on(async {
            let r = Arc::new(RealShared::new("127.0.0.1:9".parse().unwrap(), None));
            let picked_at = r.reset_generation();
            r.reset_connections(); // after the pick, before the watch
            let late = r.watch(picked_at);
            let quick = std::time::Duration::from_secs(5);
            tokio::time::timeout(quick, late.reset())
                .await
                .expect("missed");

            let tcp = r.watch(r.reset_generation());
            let udp = r.watch(r.reset_generation());
            r.set_available(false);
            let ev = tokio::time::timeout(quick, udp.reset_or_gone()).await;
            assert_eq!(ev.expect("woken"), RealEvent::Gone);
            let still = tokio::time::timeout(std::time::Duration::from_millis(20), tcp.reset());
            assert!(
                still.await.is_err(),
                "the real going away reset a TCP connection"
            );
            r.reset_connections();
            tokio::time::timeout(quick, tcp.reset())
                .await
                .expect("reset");
            assert_eq!(r.watchers(), 3);
            drop((late, tcp, udp));
            assert_eq!(r.watchers(), 0);
        });
    }
}
