//! The SYN prober: `TCP_CHECK` without a socket per check.
//!
//! A connect-based check costs the checker host a socket, an ephemeral port, a connect, an RST
//! close and epoll registration — about 7 syscalls and ~15 µs of kernel time per check. The SYN
//! prober instead sends a hand-built SYN on one raw socket per address family (shared by every
//! `TCP_CHECK` of the process) and reads the answer on the same socket:
//!
//! * SYN-ACK acknowledging our ISN, from the checked address and port → up. The host's kernel
//!   finds no socket for the SYN-ACK and answers it with an RST itself, so the real keeps no
//!   half-open connection.
//! * RST acknowledging our ISN → refused (down).
//! * nothing within `connect_timeout` → timeout (down); the SYN is sent again after 1 s, 2 s more,
//!   ... within it, as the kernel retransmits a connect's SYN. ICMP errors are not read: an
//!   unreachable real is reported as a timeout, not as "no route".
//!
//! Source ports come from a reserved block ([`ports`]); the check's identity is in the ISN
//! (`prober`), so replies are matched in O(1). A classic BPF filter ([`filter`]) keeps every
//! other TCP packet of the host out of the process. Probes due in the same timer tick leave in
//! one `sendmmsg`; replies are read with `recvmmsg` until `EAGAIN` (`mmsg`).
//!
//! Kept from keepalived's `TCP_CHECK`: `connect_ip`, `connect_port`, `bindto` (the source address;
//! it must be local), `connect_timeout`, and everything the state machine does (`retry`,
//! `delay_before_retry`, `warmup`, `alpha`). Not honoured: `bind_port` (a fixed source port) —
//! such checkers use the connect checker. [`TcpProber`] chooses: the SYN prober when raw sockets
//! are permitted (root or `CAP_NET_RAW`) and a port block is free, else the connect checker, said
//! once in the log; `RVS_TCP_CHECK=connect` forces the connect checker and `RVS_SYN_PORTS=<first>`
//! sets where the port block search starts.

pub mod filter;
mod mmsg;
pub mod packet;
pub mod ports;
mod prober;
mod route;

use crate::error::CheckError;
use prober::{Counters, Driver, Request};
use rvs_config::keepalived::Checker;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Ports in the prober's block (concurrent probes to one real use different ones).
pub const PORT_BLOCK: u16 = 64;

/// Counters of a SYN prober.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SynStats {
    /// SYNs sent.
    pub sent: u64,
    /// Probes answered by a SYN-ACK.
    pub open: u64,
    /// Probes answered by an RST.
    pub refused: u64,
    /// Probes that got no answer in time.
    pub timeouts: u64,
    /// SYNs sent again (no answer after 1 s, 2 s more, ...; within the timeout).
    pub retransmits: u64,
    /// Replies that matched no probe in flight (late, duplicate or forged), ignored.
    pub unmatched: u64,
    /// SYNs the kernel refused to send (bad `bindto`, no route): those checks fail.
    pub send_errors: u64,
    /// SYNs the local stack dropped (`ENOBUFS`, a full queue): sent again by the retransmission
    /// timer, the check goes on.
    pub local_drops: u64,
    /// RSTs the prober sent itself, answering SYN-ACKs that matched no probe (a real
    /// retransmitting because the kernel's RST was lost).
    pub resets: u64,
}

/// A handle on the running SYN prober (cheap to clone; the task stops with the last handle).
#[derive(Clone)]
pub struct SynProber {
    tx: mpsc::UnboundedSender<Request>,
    counters: Arc<Counters>,
    ports: (u16, u16),
    v4: bool,
    v6: bool,
}

impl std::fmt::Debug for SynProber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.describe())
    }
}

impl SynProber {
    /// Reserve the port block, open the raw sockets and start the task. Must be called inside a
    /// tokio runtime. Fails without `CAP_NET_RAW` or when no port block is free.
    pub fn start(port_search_from: Option<u16>) -> io::Result<SynProber> {
        let ports = ports::reserve(PORT_BLOCK, port_search_from)?;
        let v4 = prober::raw_socket(false, &ports);
        let v6 = prober::raw_socket(true, &ports);
        let (v4, v6) = match (v4, v6) {
            (Err(e), Err(_)) => return Err(e),
            (a, b) => (a.ok(), b.ok()),
        };
        let v4 = v4.map(prober::register).transpose()?;
        let v6 = v6.map(prober::register).transpose()?;
        let counters = Arc::new(Counters::default());
        let secret = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish() as u32;
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = SynProber {
            tx,
            counters: counters.clone(),
            ports: (ports.first(), ports.last()),
            v4: v4.is_some(),
            v6: v6.is_some(),
        };
        tokio::spawn(Driver::new(v4, v6, ports, counters, secret).run(rx));
        Ok(handle)
    }

    /// Probe `target` once from `src` (default: the kernel's choice for the route).
    pub async fn probe(
        &self,
        target: SocketAddr,
        src: Option<IpAddr>,
        timeout: Duration,
    ) -> Result<(), CheckError> {
        let (reply, rx) = oneshot::channel();
        let stopped = || CheckError::Io(io::Error::other("the SYN prober stopped"));
        self.tx
            .send(Request {
                target,
                src,
                timeout,
                reply,
            })
            .map_err(|_| stopped())?;
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Whether it can probe `target`'s address family.
    pub fn supports(&self, target: &SocketAddr) -> bool {
        if target.is_ipv4() { self.v4 } else { self.v6 }
    }

    /// The reserved source ports (first, last).
    pub fn ports(&self) -> (u16, u16) {
        self.ports
    }

    /// Counters so far.
    pub fn stats(&self) -> SynStats {
        let c = &self.counters;
        SynStats {
            sent: c.sent.load(Relaxed),
            open: c.open.load(Relaxed),
            refused: c.refused.load(Relaxed),
            timeouts: c.timeouts.load(Relaxed),
            retransmits: c.retransmits.load(Relaxed),
            unmatched: c.unmatched.load(Relaxed),
            send_errors: c.send_errors.load(Relaxed),
            local_drops: c.local_drops.load(Relaxed),
            resets: c.resets.load(Relaxed),
        }
    }

    /// One line for logs and listings.
    pub fn describe(&self) -> String {
        let fam = match (self.v4, self.v6) {
            (true, true) => "IPv4+IPv6",
            (true, false) => "IPv4 only",
            _ => "IPv6 only",
        };
        format!(
            "SYN prober (raw sockets, {fam}, source ports {}-{})",
            self.ports.0, self.ports.1
        )
    }
}

/// How `TCP_CHECK`s are run: the SYN prober, or a TCP connect per check.
#[derive(Debug, Clone)]
pub enum TcpProber {
    Syn(SynProber),
    /// The connect checker, and why it is used.
    Connect {
        why: String,
    },
}

impl TcpProber {
    /// The SYN prober if permitted (and not disabled by `RVS_TCP_CHECK=connect`), else the
    /// connect checker; the choice is logged once. Must be called inside a tokio runtime.
    pub fn from_env() -> TcpProber {
        let wanted = std::env::var("RVS_TCP_CHECK").unwrap_or_default();
        let p = if wanted == "connect" {
            TcpProber::Connect {
                why: "RVS_TCP_CHECK=connect".into(),
            }
        } else {
            let from = std::env::var("RVS_SYN_PORTS")
                .ok()
                .and_then(|v| v.parse().ok());
            match SynProber::start(from) {
                Ok(s) => TcpProber::Syn(s),
                Err(e) => TcpProber::Connect {
                    why: format!("SYN prober unavailable: {e}"),
                },
            }
        };
        match &p {
            TcpProber::Syn(s) => tracing::info!(prober = %s.describe(), "TCP_CHECK prober"),
            TcpProber::Connect { why } => {
                tracing::warn!(reason = %why, "TCP_CHECK uses a TCP connect per check")
            }
        }
        p
    }

    /// One line for logs and listings.
    pub fn describe(&self) -> String {
        match self {
            TcpProber::Syn(s) => s.describe(),
            TcpProber::Connect { why } => format!("connect per check ({why})"),
        }
    }

    /// The SYN prober's counters, if it is the one in use.
    pub fn syn_stats(&self) -> Option<SynStats> {
        match self {
            TcpProber::Syn(s) => Some(s.stats()),
            TcpProber::Connect { .. } => None,
        }
    }

    /// Run one `TCP_CHECK` of `checker` against `target` (`connect_ip`/`connect_port` applied).
    /// Checkers with `bind_port`, and families without a raw socket, use the connect checker.
    pub async fn check(&self, checker: &Checker, target: SocketAddr) -> Result<(), CheckError> {
        match self {
            TcpProber::Syn(s) if checker.bind_port.is_none() && s.supports(&target) => {
                s.probe(target, checker.bindto, checker.connect_timeout)
                    .await
            }
            _ => crate::tcp::check(checker, target).await,
        }
    }
}
