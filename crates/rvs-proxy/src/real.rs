//! A real server as the workers see it: its address, its PROXY-protocol setting, its traffic
//! counters, the signal that resets its connections on the operator's request, and whether it
//! is available (in the service and not down) for the UDP sessions bound to it.
//!
//! A `RealShared` outlives its removal from the service: existing connections hold an `Arc` to it
//! and run to completion (IPVS's behaviour), unless the operator resets them.

use crate::stats::AtomicCounters;
use rvs_core::ProxyProtocol;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};
use tokio::sync::Notify;

/// Shared state of one real of one service.
#[derive(Debug)]
pub struct RealShared {
    pub addr: SocketAddr,
    /// PROXY protocol for this real (`None` = the service's), as [`encode_pp`].
    proxy_protocol: AtomicU8,
    pub counters: AtomicCounters,
    /// Bumped when the operator resets the real's connections.
    reset_generation: AtomicU64,
    reset: Notify,
    /// False while the real is removed (or its service is) or its health is down: its UDP
    /// sessions end (checked per datagram, and the sessions are woken through `reset`), the
    /// client's next datagram is rescheduled.
    available: AtomicBool,
}

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
            reset: Notify::new(),
            available: AtomicBool::new(true),
        }
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
        self.reset.notify_waiters();
    }

    /// Whether the real is in the service and not down (see the field's docs).
    pub fn is_available(&self) -> bool {
        self.available.load(Relaxed)
    }

    /// Marks the real available or not; becoming unavailable wakes
    /// [`reset_or_gone`](Self::reset_or_gone).
    pub fn set_available(&self, available: bool) {
        if self.available.swap(available, Relaxed) && !available {
            self.reset.notify_waiters();
        }
    }

    /// Resolves when the operator resets this real's connections after generation `since`, or
    /// the real becomes unavailable (one future, so a UDP session polls one `Notify` per wake).
    pub async fn reset_or_gone(&self, since: u64) -> RealEvent {
        loop {
            let notified = self.reset.notified();
            if self.reset_generation() != since {
                return RealEvent::Reset;
            }
            if !self.is_available() {
                return RealEvent::Gone;
            }
            notified.await;
        }
    }

    /// Resolves when the operator resets this real's connections after generation `since`.
    pub async fn reset_requested(&self, since: u64) {
        loop {
            let notified = self.reset.notified();
            if self.reset_generation() != since {
                return;
            }
            notified.await;
        }
    }
}
