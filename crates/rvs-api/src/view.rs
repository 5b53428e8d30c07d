//! Response and request bodies.

use rvs_core::engine::{Counters, EngineKind, Rates, RealStats};
use rvs_core::model::{RealServer, ServiceKey, ServiceOptions};
use serde::{Deserialize, Serialize};

/// `GET /v1/health`, `GET /v1/ready`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `ok`, or `starting` (ready only).
    pub status: String,
    /// rvsd version.
    pub version: String,
    /// Engines running in this daemon.
    pub engines: Vec<EngineKind>,
}

/// `POST /v1/services`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewService {
    pub key: ServiceKey,
    #[serde(default)]
    pub options: ServiceOptions,
}

/// One real as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealView {
    /// Configuration, intent and observed health.
    pub real: RealServer,
    /// The weight schedulers use now.
    pub effective_weight: u32,
    /// Counters and connection counts.
    pub stats: RealStats,
    /// Per-second rates.
    pub rates: Rates,
    /// What the health checkers (keepalived.conf checkers) report; `None` when the real has no
    /// checker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<RealHealthView>,
}

/// The health-checking side of a real: observed state, since when, why it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealHealthView {
    /// Observed state (also in `real.health`).
    pub state: rvs_core::model::Health,
    /// When the state took its current value, milliseconds since the Unix epoch.
    #[serde(default)]
    pub since_unix_ms: u64,
    /// Why the last check failed (`None` after a success).
    #[serde(default)]
    pub last_error: Option<String>,
    /// `inhibit_on_failure`: while down the real stays listed at weight 0 (otherwise listings
    /// omit it, as ipvsadm does under keepalived).
    #[serde(default)]
    pub inhibit: bool,
    /// This real is the service's `sorry_server`, in service because no real is up.
    #[serde(default)]
    pub sorry_server: bool,
    /// The service lost quorum and its sorry server serves: this real is held at weight 0.
    #[serde(default)]
    pub quorum_gated: bool,
}

/// One service as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    pub key: ServiceKey,
    pub options: ServiceOptions,
    /// The engine serving it, or `None` when no available engine can.
    pub engine: Option<EngineKind>,
    /// Why no engine serves it (set exactly when `engine` is `None`).
    pub unsupported: Option<String>,
    /// Why the proxy engine serves it although the xdp engine runs (a FULLNAT service without
    /// local addresses of its VIP's family, say); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub counters: Counters,
    pub rates: Rates,
    pub reals: Vec<RealView>,
}

/// `GET /v1/stats`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatsView {
    pub services: Vec<ServiceView>,
    /// Named outcome counters of every engine, prefixed by engine (`proxy.connect_retry`).
    pub outcomes: std::collections::BTreeMap<String, u64>,
}

/// Every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Human-readable reason.
    pub error: String,
    /// Stable machine-readable kind (`service_exists`, `no_such_service`, `bad_request`, ...).
    pub kind: String,
}
