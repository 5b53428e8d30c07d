//! Connection tracking: what `connections()` (`rvsadm -Lnc`) lists, and the active / inactive
//! accounting the least-connection schedulers read.
//!
//! Each relayed connection owns a [`ConnGuard`]: it registers the connection in its worker's
//! [`ConnTable`], reports every active/inactive change to the service's runtime, and closes the
//! connection there when dropped — so a connection that ends by error, timeout or reset is never leaked in
//! the counts.

use crate::balance::ServiceShared;
use crate::real::RealShared;
use crate::slots::Locked;
use rvs_core::engine::ConnectionInfo;
use rvs_core::runtime::ConnRef;
use rvs_core::{Protocol, Timestamp};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// IPVS connection states the proxy can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ConnState {
    /// Scheduled, connecting to the real (IPVS: SYN_RECV — counted inactive).
    SynRecv = 0,
    /// Both directions open (counted active).
    Established = 1,
    /// The client sent FIN first; the real may still answer (inactive).
    FinWait = 2,
    /// The real sent FIN first (inactive).
    CloseWait = 3,
    /// A UDP session (inactive, as IPVS counts UDP).
    Udp = 4,
}

impl ConnState {
    fn from_u8(v: u8) -> ConnState {
        match v {
            0 => ConnState::SynRecv,
            1 => ConnState::Established,
            2 => ConnState::FinWait,
            3 => ConnState::CloseWait,
            _ => ConnState::Udp,
        }
    }

    /// The name `ipvsadm -Lnc` prints.
    pub fn ipvs_name(self) -> &'static str {
        match self {
            ConnState::SynRecv => "SYN_RECV",
            ConnState::Established => "ESTABLISHED",
            ConnState::FinWait => "FIN_WAIT",
            ConnState::CloseWait => "CLOSE_WAIT",
            ConnState::Udp => "UDP",
        }
    }

    /// IPVS counts only ESTABLISHED TCP connections as active.
    pub fn is_active(self) -> bool {
        self == ConnState::Established
    }
}

/// Milliseconds since the engine's epoch (a monotonic clock).
#[derive(Debug, Clone, Copy)]
pub struct Clock(pub Instant);

impl Clock {
    pub fn now_ms(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }
}

/// Shared, mutable part of one tracked connection.
#[derive(Debug)]
pub struct ConnTrack {
    pub protocol: Protocol,
    pub client: SocketAddr,
    pub vaddr: SocketAddr,
    pub real: Arc<RealShared>,
    state: AtomicU8,
    /// Last time bytes moved or the state changed (ms since the engine epoch).
    pub last_active: AtomicU64,
    /// Idle timeout of the current state (ms), for `expires_ms`.
    pub timeout_ms: AtomicU64,
}

impl ConnTrack {
    pub fn state(&self) -> ConnState {
        ConnState::from_u8(self.state.load(Relaxed))
    }

    pub fn touch(&self, clock: &Clock) {
        self.last_active.store(clock.now_ms(), Relaxed);
    }
}

/// The connections of one worker, in a slot vector with a free list (no per-connection map
/// node; a removal is O(1)).
#[derive(Debug, Default)]
pub struct ConnTable {
    slots: Locked<Arc<ConnTrack>>,
}

impl ConnTable {
    fn insert(&self, t: Arc<ConnTrack>) -> usize {
        self.slots.lock().insert(t)
    }

    fn remove(&self, slot: usize) {
        self.slots.lock().remove(slot);
    }

    /// Snapshot for `connections()`.
    pub fn snapshot(&self, now_ms: u64, out: &mut Vec<ConnectionInfo>) {
        for t in self.slots.lock().iter() {
            let deadline = t.last_active.load(Relaxed) + t.timeout_ms.load(Relaxed);
            out.push(ConnectionInfo {
                protocol: t.protocol,
                client: t.client,
                virtual_addr: t.vaddr,
                real: t.real.addr,
                state: t.state().ipvs_name().to_string(),
                expires_ms: deadline.saturating_sub(now_ms),
            });
        }
    }

    /// Number of tracked connections.
    pub fn len(&self) -> usize {
        self.slots.lock().len()
    }

    /// No tracked connections.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Who a new connection is between; `real`/`conn` come from [`ServiceShared::open`], which
/// already counted the connection as inactive.
#[derive(Debug)]
pub struct NewConn {
    pub protocol: Protocol,
    pub client: SocketAddr,
    pub vaddr: SocketAddr,
    pub real: Arc<RealShared>,
    pub service: Arc<ServiceShared>,
    pub conn: ConnRef,
}

/// Owner of one tracked connection (see the module docs).
#[derive(Debug)]
pub struct ConnGuard {
    pub track: Arc<ConnTrack>,
    service: Arc<ServiceShared>,
    conn: ConnRef,
    table: Arc<ConnTable>,
    slot: usize,
    clock: Clock,
}

impl ConnGuard {
    /// Registers a new connection in an inactive `state`.
    pub fn new(
        table: &Arc<ConnTable>,
        conn: NewConn,
        state: ConnState,
        timeout_ms: u64,
        clock: &Clock,
    ) -> ConnGuard {
        let NewConn {
            protocol,
            client,
            vaddr,
            real,
            service,
            conn,
        } = conn;
        debug_assert!(!state.is_active());
        let track = Arc::new(ConnTrack {
            protocol,
            client,
            vaddr,
            real,
            state: AtomicU8::new(state as u8),
            last_active: AtomicU64::new(clock.now_ms()),
            timeout_ms: AtomicU64::new(timeout_ms),
        });
        let slot = table.insert(Arc::clone(&track));
        ConnGuard {
            track,
            service,
            conn,
            table: Arc::clone(table),
            slot,
            clock: *clock,
        }
    }

    /// Moves the connection to `state`, keeping the real's counts right.
    pub fn set_state(&self, state: ConnState) {
        let old = ConnState::from_u8(self.track.state.swap(state as u8, Relaxed));
        self.service
            .conn_changed(self.conn, old.is_active(), state.is_active());
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let now = Timestamp::from_millis(self.clock.now_ms());
        self.service
            .conn_closed(self.conn, self.track.state().is_active(), now);
        self.table.remove(self.slot);
    }
}
