//! The contract between the daemon and a data plane.
//!
//! The daemon owns the desired state; an [`Engine`] receives only the [`Change`]s it must
//! apply, and reports counters and connection snapshots back. The daemon never reaches inside.

use crate::desired::Change;
use crate::desired::ServiceConfig;
use crate::model::{Protocol, ServiceKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::{Add, AddAssign};
use std::time::Duration;

/// The data planes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// XDP/eBPF fast path (root, Linux): DR, TUN, NAT, FULLNAT.
    Xdp,
    /// Userspace tokio proxy (anywhere): L4 TCP/UDP with FULLNAT semantics.
    Proxy,
}

impl EngineKind {
    /// Its name in configuration, logs and metrics (`xdp`, `proxy`).
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Xdp => "xdp",
            EngineKind::Proxy => "proxy",
        }
    }
}

/// Why an engine cannot serve a service (shown to the operator, never silently dropped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{0}")]
pub struct Unsupported(pub String);

/// An engine failed to apply a change.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The change refers to a service the engine does not have.
    #[error("engine has no service {0}")]
    UnknownService(ServiceKey),
    /// The engine cannot serve the service.
    #[error("cannot serve {service}: {reason}")]
    Unsupported {
        service: ServiceKey,
        reason: Unsupported,
    },
    /// An operating-system error (binding a socket, loading a program, ...).
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// Traffic counters, as ipvsadm `--stats` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counters {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets (datagrams, or TCP segments where known; reads for the proxy) client → real.
    pub in_pkts: u64,
    /// Packets real → client.
    pub out_pkts: u64,
    /// Bytes client → real.
    pub in_bytes: u64,
    /// Bytes real → client.
    pub out_bytes: u64,
}

impl Add for Counters {
    type Output = Counters;
    fn add(self, o: Counters) -> Counters {
        Counters {
            conns: self.conns + o.conns,
            in_pkts: self.in_pkts + o.in_pkts,
            out_pkts: self.out_pkts + o.out_pkts,
            in_bytes: self.in_bytes + o.in_bytes,
            out_bytes: self.out_bytes + o.out_bytes,
        }
    }
}

impl AddAssign for Counters {
    fn add_assign(&mut self, o: Counters) {
        *self = *self + o;
    }
}

/// Per-second rates, as ipvsadm `--rate` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rates {
    pub cps: u64,
    pub in_pps: u64,
    pub out_pps: u64,
    pub in_bps: u64,
    pub out_bps: u64,
}

impl Rates {
    /// Rates from two counter samples `dt` apart (a counter that went backwards — after `-Z` —
    /// counts as zero).
    pub fn between(prev: &Counters, cur: &Counters, dt: Duration) -> Rates {
        let ms = dt.as_millis() as u64;
        if ms == 0 {
            return Rates::default();
        }
        let r = |a: u64, b: u64| b.saturating_sub(a) * 1000 / ms;
        Rates {
            cps: r(prev.conns, cur.conns),
            in_pps: r(prev.in_pkts, cur.in_pkts),
            out_pps: r(prev.out_pkts, cur.out_pkts),
            in_bps: r(prev.in_bytes, cur.in_bytes),
            out_bps: r(prev.out_bytes, cur.out_bytes),
        }
    }
}

/// Counters and connection counts of one real.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RealStats {
    pub counters: Counters,
    /// ActiveConn column.
    pub active_conns: u32,
    /// InActConn column.
    pub inactive_conns: u32,
    /// Persistence templates pointing at this real.
    pub persistent_conns: u32,
    /// Connects to this real that failed (refused, error, timed out) since it was configured or
    /// last zeroed; only engines that open their own connections (the proxy) count them.
    #[serde(default)]
    pub connect_failures: u64,
    /// How often passive failure detection took the real out (after `max_fails` failed
    /// connects, or a failed probe) since it was configured or last zeroed (proxy engine).
    #[serde(default)]
    pub passive_downs: u64,
    /// Milliseconds until a real that passive failure detection took out is scheduled again;
    /// 0 while it is scheduled.
    #[serde(default)]
    pub passive_out_ms: u64,
}

/// Counters of one service and its reals.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServiceStats {
    pub counters: Counters,
    pub reals: BTreeMap<SocketAddr, RealStats>,
}

/// Everything an engine reports.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EngineStats {
    pub services: BTreeMap<ServiceKey, ServiceStats>,
    /// Named outcome counters (e.g. `no_real`, `connect_retry`, `malformed`).
    pub outcomes: BTreeMap<String, u64>,
}

/// One tracked connection, as `ipvsadm -Lnc` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    pub protocol: Protocol,
    /// Client address.
    pub client: SocketAddr,
    /// Virtual address the client connected to.
    pub virtual_addr: SocketAddr,
    /// Real server it was sent to.
    pub real: SocketAddr,
    /// IPVS state name (`ESTABLISHED`, `FIN_WAIT`, `NONE` for persistence templates, ...).
    pub state: String,
    /// Time until the entry expires, in milliseconds.
    pub expires_ms: u64,
}

/// A data plane. Methods are synchronous: engines with their own runtime apply changes to
/// shared state and return.
pub trait Engine: Send {
    /// Which engine this is.
    fn kind(&self) -> EngineKind;

    /// Whether this engine can serve the service (forwarding methods of its reals, protocol,
    /// privileges). Checked before a service is handed to the engine.
    fn supports(&self, service: &ServiceConfig) -> Result<(), Unsupported>;

    /// Apply changes in order. An error leaves the changes before it applied.
    fn apply(&mut self, changes: &[Change]) -> Result<(), EngineError>;

    /// Current counters.
    fn stats(&self) -> EngineStats;

    /// Reset counters (`-Z`), for one service or all.
    fn zero(&mut self, service: Option<&ServiceKey>);

    /// Tracked connections and persistence templates.
    fn connections(&self) -> Vec<ConnectionInfo>;

    /// Detach from the system: close listeners, unload programs. Called once on exit.
    fn shutdown(&mut self);

    /// A graceful stop begins: take no new connection, let the open ones run to their end
    /// (the daemon then waits for [`open_connections`](Self::open_connections) to reach 0, at
    /// most its grace period, before [`shutdown`](Self::shutdown)). Engines that hold no
    /// connections of their own (the xdp engine forwards packets) keep the default: nothing.
    fn stop_accepting(&mut self) {}

    /// Connections this engine relays now, for the graceful stop; 0 for engines that hold none.
    fn open_connections(&self) -> usize {
        0
    }

    /// Cut the existing connections of one real (`DELETE ...?reset=true`). The daemon calls it
    /// before removing the real — engines that cannot do this keep the default, which says so,
    /// and the daemon then refuses the request and changes nothing — and again once the real is
    /// removed, for connections scheduled to it in between.
    fn reset_connections(
        &mut self,
        service: &ServiceKey,
        real: &SocketAddr,
    ) -> Result<(), Unsupported> {
        let _ = (service, real);
        Err(Unsupported(
            format!("the {:?} engine cannot reset connections", self.kind()).to_lowercase(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_from_samples() {
        let a = Counters {
            conns: 10,
            in_pkts: 100,
            out_pkts: 50,
            in_bytes: 1000,
            out_bytes: 0,
        };
        let b = Counters {
            conns: 30,
            in_pkts: 300,
            out_pkts: 50,
            in_bytes: 5000,
            out_bytes: 8,
        };
        let r = Rates::between(&a, &b, Duration::from_secs(2));
        assert_eq!(
            r,
            Rates {
                cps: 10,
                in_pps: 100,
                out_pps: 0,
                in_bps: 2000,
                out_bps: 4
            }
        );
        assert_eq!(
            Rates::between(&b, &a, Duration::from_secs(1)),
            Rates::default()
        );
        assert_eq!(Rates::between(&a, &b, Duration::ZERO), Rates::default());
    }
}
