//! Lock-free traffic counters shared between the workers and the control thread.
//!
//! Every relayed chunk bumps a real's and its service's counters with relaxed atomics; `stats()`
//! reads them into `rvs_core::engine::Counters`. For TCP the proxy cannot see segments, so one
//! successful read (a `splice` into the pipe or a `read` into the buffer) counts as one packet;
//! for UDP one datagram is one packet.

use rvs_core::engine::Counters;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Atomic form of [`Counters`].
#[derive(Debug, Default)]
pub struct AtomicCounters {
    conns: AtomicU64,
    in_pkts: AtomicU64,
    out_pkts: AtomicU64,
    in_bytes: AtomicU64,
    out_bytes: AtomicU64,
}

impl AtomicCounters {
    /// One connection scheduled.
    pub fn add_conn(&self) {
        self.conns.fetch_add(1, Relaxed);
    }

    /// `bytes` read from the client (one packet).
    pub fn add_in(&self, bytes: u64) {
        self.in_pkts.fetch_add(1, Relaxed);
        self.in_bytes.fetch_add(bytes, Relaxed);
    }

    /// `bytes` read from the real (one packet).
    pub fn add_out(&self, bytes: u64) {
        self.out_pkts.fetch_add(1, Relaxed);
        self.out_bytes.fetch_add(bytes, Relaxed);
    }

    /// A snapshot.
    pub fn load(&self) -> Counters {
        Counters {
            conns: self.conns.load(Relaxed),
            in_pkts: self.in_pkts.load(Relaxed),
            out_pkts: self.out_pkts.load(Relaxed),
            in_bytes: self.in_bytes.load(Relaxed),
            out_bytes: self.out_bytes.load(Relaxed),
        }
    }

    /// `-Z`.
    pub fn zero(&self) {
        for c in [
            &self.conns,
            &self.in_pkts,
            &self.out_pkts,
            &self.in_bytes,
            &self.out_bytes,
        ] {
            c.store(0, Relaxed);
        }
    }
}

/// Named outcome counters (`EngineStats.outcomes`).
#[derive(Debug, Default)]
pub struct Outcomes {
    pub connect_refused: AtomicU64,
    pub connect_timeout: AtomicU64,
    pub connect_error: AtomicU64,
    pub connect_retry: AtomicU64,
    /// A connect to a real failed before its SYN left, for the director's own reasons (no
    /// descriptor, no memory, a FULLNAT local address or ephemeral port unavailable): the client
    /// was closed; the real was not blamed nor another tried.
    pub connect_local_error: AtomicU64,
    pub no_real: AtomicU64,
    /// An accept failed for another reason than the descriptor limit (`ENOBUFS`, `ENOMEM`).
    pub accept_error: AtomicU64,
    /// An accept failed for want of descriptors (`EMFILE`, `ENFILE`): the listener rested.
    pub accept_fd_limit: AtomicU64,
    /// An accept loop stalled at the engine's connection cap (clients wait in the backlog):
    /// once per stall of each listener, not per wake-up in it (see `accept::Stall`).
    pub accept_paused: AtomicU64,
    pub idle_timeout: AtomicU64,
    pub reset_by_operator: AtomicU64,
    /// A relay ended by a socket error (a peer's reset): the other side was reset too.
    pub relay_reset: AtomicU64,
    /// A bulk chunk was copied instead of spliced: no pipe could be made (out of descriptors).
    pub splice_fallback: AtomicU64,
    /// A UDP datagram (client to real) or reply (real to client) could not be sent: dropped.
    pub udp_send_error: AtomicU64,
    /// A UDP real refused a datagram (ICMP port unreachable): counted as a failure of that real
    /// (its `connect_failures`, passive failure detection), the session ended.
    pub udp_refused: AtomicU64,
    /// A UDP session ended because its real was removed or went down.
    pub udp_real_gone: AtomicU64,
    /// A datagram from a new UDP client dropped: the engine's cap on UDP sessions was reached.
    pub udp_session_limit: AtomicU64,
    /// Passive failure detection took a real out (`max_fails` failed connects, or a failed probe).
    pub passive_down: AtomicU64,
    /// Every real of a service was out, or would have been: the last one was kept in (a take-out
    /// not done), the reals that were out were brought back for a pick, or a retry with no real
    /// left in was sent to one that is out.
    pub passive_all_out: AtomicU64,
}

impl Outcomes {
    /// Counts one occurrence.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Name/value pairs for `EngineStats.outcomes`.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("connect_refused", self.connect_refused.load(Relaxed)),
            ("connect_timeout", self.connect_timeout.load(Relaxed)),
            ("connect_error", self.connect_error.load(Relaxed)),
            ("connect_retry", self.connect_retry.load(Relaxed)),
            (
                "connect_local_error",
                self.connect_local_error.load(Relaxed),
            ),
            ("no_real", self.no_real.load(Relaxed)),
            ("accept_error", self.accept_error.load(Relaxed)),
            ("accept_fd_limit", self.accept_fd_limit.load(Relaxed)),
            ("accept_paused", self.accept_paused.load(Relaxed)),
            ("idle_timeout", self.idle_timeout.load(Relaxed)),
            ("reset_by_operator", self.reset_by_operator.load(Relaxed)),
            ("relay_reset", self.relay_reset.load(Relaxed)),
            ("splice_fallback", self.splice_fallback.load(Relaxed)),
            ("udp_send_error", self.udp_send_error.load(Relaxed)),
            ("udp_refused", self.udp_refused.load(Relaxed)),
            ("udp_real_gone", self.udp_real_gone.load(Relaxed)),
            ("udp_session_limit", self.udp_session_limit.load(Relaxed)),
            ("passive_down", self.passive_down.load(Relaxed)),
            ("passive_all_out", self.passive_all_out.load(Relaxed)),
        ]
    }
}
