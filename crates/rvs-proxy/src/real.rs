//! A real server as the workers see it: its address, its PROXY-protocol setting, its traffic
//! counters, and the signal that resets its connections on the operator's request.
//!
//! A `RealShared` outlives its removal from the service: existing connections hold an `Arc` to it
//! and run to completion (IPVS's behaviour), unless the operator resets them.

use crate::stats::AtomicCounters;
use rvs_core::ProxyProtocol;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
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
