//! The engine manager: which engines run, which engine serves each service (DESIGN.md "Which
//! engine serves a service"), and applying the desired state to them as diffs.
//!
//! Each running engine has a *view*: the part of the desired state it serves. Applying a new
//! desired state places every service, builds the new views and hands each engine only
//! `diff(old view, new view)`, so a service that moves (or becomes unservable) is removed from
//! one engine and added to the other, and nothing else is touched.

use rvs_core::desired::{DesiredState, ServiceConfig, diff};
use rvs_core::engine::{ConnectionInfo, Engine, EngineError, EngineKind, EngineStats, Unsupported};
use rvs_core::model::{EnginePin, ForwardMethod, ServiceKey};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Where a service is served, or why it is not.
pub type Placement = Result<EngineKind, String>;

/// An engine failed to apply its part of a new state (the old state was restored).
#[derive(Debug, thiserror::Error)]
#[error("{engine:?} engine: {source}")]
pub struct ApplyError {
    pub engine: EngineKind,
    #[source]
    pub source: EngineError,
}

/// The running engines, and why the others are not running.
pub struct EngineManager {
    engines: Vec<Box<dyn Engine>>,
    not_running: BTreeMap<EngineKind, String>,
    views: BTreeMap<EngineKind, DesiredState>,
    placement: BTreeMap<ServiceKey, Placement>,
}

impl EngineManager {
    /// Manage `engines`; `not_running` says why each missing engine is missing.
    pub fn new(engines: Vec<Box<dyn Engine>>, not_running: BTreeMap<EngineKind, String>) -> Self {
        let views = engines
            .iter()
            .map(|e| (e.kind(), DesiredState::default()))
            .collect();
        EngineManager {
            engines,
            not_running,
            views,
            placement: BTreeMap::new(),
        }
    }

    /// Kinds of the running engines.
    pub fn running(&self) -> Vec<EngineKind> {
        self.engines.iter().map(|e| e.kind()).collect()
    }

    fn engine(&self, kind: EngineKind) -> Option<&dyn Engine> {
        self.engines
            .iter()
            .find(|e| e.kind() == kind)
            .map(|e| e.as_ref())
    }

    fn engine_mut(&mut self, kind: EngineKind) -> Option<&mut Box<dyn Engine>> {
        self.engines.iter_mut().find(|e| e.kind() == kind)
    }

    fn missing(&self, kind: EngineKind) -> String {
        self.not_running
            .get(&kind)
            .cloned()
            .unwrap_or_else(|| "not started".into())
    }

    /// Where `svc` would be served now (pure: asks engines only `supports`).
    pub fn place(&self, svc: &ServiceConfig) -> Placement {
        let needs_xdp = svc
            .reals
            .values()
            .find(|r| r.method != ForwardMethod::FullNat);
        let try_engine = |kind: EngineKind| -> Placement {
            match self.engine(kind) {
                None => Err(format!(
                    "{} the {} engine, which is not running ({})",
                    match (svc.options.engine, needs_xdp) {
                        (EnginePin::Auto, Some(r)) =>
                            format!("forwarding method {} needs", method_name(r.method)),
                        _ => "the service is pinned to".to_string(),
                    },
                    kind_name(kind),
                    self.missing(kind)
                )),
                Some(e) => e
                    .supports(svc)
                    .map(|()| kind)
                    .map_err(|Unsupported(why)| why),
            }
        };
        match svc.options.engine {
            EnginePin::Xdp => try_engine(EngineKind::Xdp),
            EnginePin::Proxy => try_engine(EngineKind::Proxy),
            EnginePin::Auto if needs_xdp.is_some() => try_engine(EngineKind::Xdp),
            EnginePin::Auto => match try_engine(EngineKind::Xdp) {
                Ok(k) => Ok(k),
                Err(xdp_reason) => match self.engine(EngineKind::Proxy) {
                    Some(e) => e
                        .supports(svc)
                        .map(|()| EngineKind::Proxy)
                        .map_err(|Unsupported(w)| w),
                    None if self.engine(EngineKind::Xdp).is_some() => Err(xdp_reason),
                    None => Err(format!(
                        "no engine is running (xdp: {}; proxy: {})",
                        self.missing(EngineKind::Xdp),
                        self.missing(EngineKind::Proxy)
                    )),
                },
            },
        }
    }

    /// The current placement of a service (`None` if the service is unknown).
    pub fn placement(&self, key: &ServiceKey) -> Option<&Placement> {
        self.placement.get(key)
    }

    /// Make the engines serve `desired`, applying only the difference. On an engine error the
    /// previous views are restored (best effort) and the error returned.
    pub fn apply(&mut self, desired: &DesiredState) -> Result<(), ApplyError> {
        let placement: BTreeMap<ServiceKey, Placement> = desired
            .services
            .values()
            .map(|s| (s.key, self.place(s)))
            .collect();
        let mut new_views: BTreeMap<EngineKind, DesiredState> = self
            .running()
            .into_iter()
            .map(|k| {
                (
                    k,
                    DesiredState {
                        timeouts: desired.timeouts,
                        ..Default::default()
                    },
                )
            })
            .collect();
        for (key, p) in &placement {
            if let Some(view) = p.as_ref().ok().and_then(|k| new_views.get_mut(k)) {
                view.services.insert(*key, desired.services[key].clone());
            }
        }
        let mut done: Vec<EngineKind> = Vec::new();
        for kind in self.running() {
            let changes = diff(&self.views[&kind], &new_views[&kind]);
            if changes.is_empty() {
                continue;
            }
            tracing::debug!(engine = ?kind, ?changes, "applying");
            let engine = self.engine_mut(kind).expect("running engine");
            if let Err(source) = engine.apply(&changes) {
                tracing::error!(engine = ?kind, error = %source, "engine refused the change; restoring");
                self.restore(kind, &new_views[&kind]);
                for k in done {
                    self.restore(k, &new_views[&k]);
                }
                return Err(ApplyError {
                    engine: kind,
                    source,
                });
            }
            done.push(kind);
        }
        for (key, p) in &placement {
            if let Err(why) = p
                && self.placement.get(key) != Some(p)
            {
                tracing::warn!(service = %key, reason = %why, "service kept but not served");
            }
        }
        self.views = new_views;
        self.placement = placement;
        Ok(())
    }

    /// Bring engine `kind` from `attempted` back to its recorded view (errors are logged).
    fn restore(&mut self, kind: EngineKind, attempted: &DesiredState) {
        let changes = diff(attempted, &self.views[&kind]);
        let engine = self.engine_mut(kind).expect("running engine");
        for c in changes {
            if let Err(e) = engine.apply(std::slice::from_ref(&c)) {
                tracing::debug!(engine = ?kind, error = %e, "while restoring");
            }
        }
    }

    /// Counters of every engine, and outcome counters prefixed with the engine's name.
    pub fn stats(&self) -> (EngineStats, BTreeMap<String, u64>) {
        let mut merged = EngineStats::default();
        let mut outcomes = BTreeMap::new();
        for e in &self.engines {
            let s = e.stats();
            for (k, v) in s.outcomes {
                outcomes.insert(format!("{}.{k}", kind_name(e.kind())), v);
            }
            merged.services.extend(s.services);
        }
        (merged, outcomes)
    }

    pub fn connections(&self) -> Vec<ConnectionInfo> {
        self.engines.iter().flat_map(|e| e.connections()).collect()
    }

    pub fn zero(&mut self, service: Option<&ServiceKey>) {
        for e in &mut self.engines {
            e.zero(service);
        }
    }

    /// Ask the engine serving `service` to cut the connections of `real`.
    pub fn reset_connections(
        &mut self,
        service: &ServiceKey,
        real: &SocketAddr,
    ) -> Result<(), String> {
        match self.placement.get(service) {
            Some(Ok(kind)) => {
                let kind = *kind;
                let engine = self.engine_mut(kind).expect("running engine");
                engine
                    .reset_connections(service, real)
                    .map_err(|Unsupported(w)| w)
            }
            // Not served by any engine: there are no connections to cut.
            _ => Ok(()),
        }
    }

    /// Detach every engine (on exit).
    pub fn shutdown(&mut self) {
        for e in &mut self.engines {
            tracing::info!(engine = ?e.kind(), "shutting down engine");
            e.shutdown();
        }
    }
}

/// `xdp` / `proxy`.
pub fn kind_name(kind: EngineKind) -> &'static str {
    match kind {
        EngineKind::Xdp => "xdp",
        EngineKind::Proxy => "proxy",
    }
}

fn method_name(m: ForwardMethod) -> &'static str {
    match m {
        ForwardMethod::Dr => "DR",
        ForwardMethod::Tun => "TUN",
        ForwardMethod::Nat => "NAT",
        ForwardMethod::FullNat => "FULLNAT",
    }
}
