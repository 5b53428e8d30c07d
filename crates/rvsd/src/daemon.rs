//! The daemon's state: the desired state, the engines serving it, and the rate sampler. Every
//! edit (API, reload) goes through [`Daemon::update`]: validate on a copy with `DesiredState`'s
//! edit methods, hand the engines only the difference, and commit only if all that succeeded.

use crate::engines::EngineManager;
use rvs_api::{RealView, ServiceView, StatsView};
use rvs_core::desired::{DesiredState, ServiceConfig, StateError};
use rvs_core::engine::{Counters, EngineStats, Rates, ServiceStats};
use rvs_core::model::{Health, ServiceKey};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Why an update was refused (the running state is unchanged).
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error(transparent)]
    State(#[from] StateError),
    /// Several validation errors (a whole-state replace).
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    /// The daemon is stopping (SIGTERM: its open connections are draining); nothing changes.
    #[error("rvsd is stopping (draining its open connections): the state is frozen")]
    Stopping,
}

/// Why removing a real was refused (the running state is unchanged).
#[derive(Debug, thiserror::Error)]
pub enum RemoveRealError {
    #[error(transparent)]
    Update(#[from] UpdateError),
    /// `reset` was asked but the serving engine cannot reset connections.
    #[error("{0}")]
    ResetUnsupported(String),
}

/// Rates of one service and its reals.
#[derive(Debug, Clone, Default)]
struct ServiceRates {
    service: Rates,
    reals: BTreeMap<SocketAddr, Rates>,
}

/// Everything the API handlers and signal handlers share (behind one mutex).
pub struct Daemon {
    desired: DesiredState,
    engines: EngineManager,
    ready: bool,
    /// A graceful stop began ([`Self::begin_stop`]): every edit is refused.
    stopping: bool,
    last_sample: Option<(Instant, EngineStats)>,
    rates: BTreeMap<ServiceKey, ServiceRates>,
    /// What the health checkers observed, for listings and counters (see [`crate::health`]).
    pub health: crate::health::HealthBook,
}

impl Daemon {
    pub fn new(engines: EngineManager) -> Self {
        Daemon {
            desired: DesiredState::default(),
            engines,
            ready: false,
            stopping: false,
            last_sample: None,
            rates: BTreeMap::new(),
            health: Default::default(),
        }
    }

    pub fn desired(&self) -> &DesiredState {
        &self.desired
    }

    pub fn engines(&self) -> &EngineManager {
        &self.engines
    }

    pub fn engines_mut(&mut self) -> &mut EngineManager {
        &mut self.engines
    }

    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Whether a graceful stop began ([`Self::begin_stop`]).
    pub fn is_stopping(&self) -> bool {
        self.stopping
    }

    /// A graceful stop begins: the engines take no new connection and the state is frozen
    /// (edits fail with [`UpdateError::Stopping`]). Returns the connections still open.
    pub fn begin_stop(&mut self) -> usize {
        self.stopping = true;
        self.engines.stop_accepting();
        self.engines.open_connections()
    }

    /// Edit a copy of the desired state with `edit`; if that succeeds, commit it and apply the
    /// difference to the engines (what an engine cannot serve is flagged, see
    /// [`EngineManager::apply`]). On an error nothing changes.
    pub fn update<T>(
        &mut self,
        edit: impl FnOnce(&mut DesiredState) -> Result<T, UpdateError>,
    ) -> Result<T, UpdateError> {
        if self.stopping {
            return Err(UpdateError::Stopping);
        }
        let mut next = self.desired.clone();
        let out = edit(&mut next)?;
        // observed health is the checkers' to say, whatever the edit (e.g. `PUT /v1/state`) carried
        self.health.overlay(&mut next);
        self.engines.apply(&next);
        self.desired = next;
        self.ready = true;
        Ok(out)
    }

    /// Replace the whole desired state (startup, reload, `PUT /v1/state`).
    pub fn replace(&mut self, new: DesiredState) -> Result<(), UpdateError> {
        self.update(|s| {
            *s = new;
            Ok(())
        })
    }

    /// Record what a health checker observed about a real (its verdict and, for dynamic
    /// checkers, a weight) and whether quorum gating holds it out of service. The engines see
    /// it as an `EditReal`. Returns whether anything changed.
    pub fn observe(
        &mut self,
        service: &ServiceKey,
        real: &SocketAddr,
        health: Health,
        dynamic_weight: Option<u32>,
        quorum_gated: bool,
    ) -> Result<bool, UpdateError> {
        self.update(|s| {
            let svc = s
                .services
                .get(service)
                .ok_or(StateError::NoSuchService(*service))?;
            let mut r = *svc.reals.get(real).ok_or(StateError::NoSuchReal {
                service: *service,
                real: *real,
            })?;
            let changed = (r.health, r.dynamic_weight, r.quorum_gated)
                != (health, dynamic_weight, quorum_gated);
            r.health = health;
            r.dynamic_weight = dynamic_weight;
            r.quorum_gated = quorum_gated;
            s.edit_real(service, r)?;
            Ok(changed)
        })
    }

    /// `-d`: removes a real; with `reset`, cuts its connections too (`?reset=true`).
    ///
    /// The real is removed *before* the reset that counts: a connection scheduled to it while
    /// this runs would otherwise start after the reset and survive it. A first reset, before the
    /// removal, finds out whether the serving engine can reset at all — if it cannot, nothing
    /// changes.
    pub fn remove_real(
        &mut self,
        key: &ServiceKey,
        addr: &SocketAddr,
        reset: bool,
    ) -> Result<(), RemoveRealError> {
        if reset {
            self.engines
                .reset_connections(key, addr)
                .map_err(RemoveRealError::ResetUnsupported)?;
        }
        self.update(|s| Ok(s.remove_real(key, addr).map(|_| ())?))?;
        if reset && let Err(why) = self.engines.reset_connections(key, addr) {
            tracing::warn!(service = %key, real = %addr, %why, "resetting a removed real");
        }
        Ok(())
    }

    /// Services no engine serves, with the reason.
    pub fn unserved(&self) -> Vec<(ServiceKey, String)> {
        self.desired
            .services
            .keys()
            .filter_map(|k| match self.engines.placement(k) {
                Some(Err(why)) => Some((*k, why.clone())),
                _ => None,
            })
            .collect()
    }

    /// Take a counter sample and recompute rates (called every couple of seconds).
    pub fn sample(&mut self, now: Instant) {
        let (stats, _) = self.engines.stats();
        if let Some((then, prev)) = &self.last_sample {
            let dt = now.duration_since(*then);
            self.rates = compute_rates(prev, &stats, dt);
        }
        self.last_sample = Some((now, stats));
    }

    /// Reset counters (`-Z`) and the rate baseline.
    pub fn zero(&mut self, service: Option<&ServiceKey>) {
        self.engines.zero(service);
        self.last_sample = None;
        match service {
            Some(k) => {
                self.rates.remove(k);
            }
            None => self.rates.clear(),
        }
    }

    /// One service as listed.
    pub fn service_view(&self, svc: &ServiceConfig, stats: &EngineStats) -> ServiceView {
        let placement = self.engines.placement(&svc.key).cloned();
        let empty = ServiceStats::default();
        let sstats = stats.services.get(&svc.key).unwrap_or(&empty);
        let rates = self.rates.get(&svc.key).cloned().unwrap_or_default();
        let reals = svc
            .reals
            .values()
            .map(|r| RealView {
                real: *r,
                effective_weight: r.effective_weight(),
                stats: sstats.reals.get(&r.addr).copied().unwrap_or_default(),
                rates: rates.reals.get(&r.addr).copied().unwrap_or_default(),
                health: self.health.view(&svc.key, &r.addr),
            })
            .collect();
        ServiceView {
            key: svc.key,
            options: svc.options,
            engine: placement.as_ref().and_then(|p| p.as_ref().ok().copied()),
            unsupported: match placement {
                Some(Err(why)) => Some(why),
                Some(Ok(_)) => None,
                None => Some("not applied yet".into()),
            },
            note: self.engines.note(&svc.key).map(str::to_owned),
            counters: sstats.counters,
            rates: rates.service,
            reals,
        }
    }

    /// Every service as listed, and the outcome counters.
    pub fn stats_view(&self) -> StatsView {
        let (stats, mut outcomes) = self.engines.stats();
        outcomes.extend(self.health.outcomes());
        let services = self
            .desired
            .services
            .values()
            .map(|s| self.service_view(s, &stats))
            .collect();
        StatsView { services, outcomes }
    }

    /// The names of the running engines.
    pub fn engine_names(&self) -> Vec<&'static str> {
        self.engines
            .running()
            .into_iter()
            .map(rvs_core::engine::EngineKind::name)
            .collect()
    }
}

fn compute_rates(
    prev: &EngineStats,
    cur: &EngineStats,
    dt: Duration,
) -> BTreeMap<ServiceKey, ServiceRates> {
    let zero = Counters::default();
    cur.services
        .iter()
        .map(|(key, s)| {
            let p = prev.services.get(key);
            let service = Rates::between(p.map(|p| &p.counters).unwrap_or(&zero), &s.counters, dt);
            let reals = s
                .reals
                .iter()
                .map(|(addr, r)| {
                    let pr = p
                        .and_then(|p| p.reals.get(addr))
                        .map(|r| &r.counters)
                        .unwrap_or(&zero);
                    (*addr, Rates::between(pr, &r.counters, dt))
                })
                .collect();
            (*key, ServiceRates { service, reals })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::ManagedEngine;
    use rvs_core::desired::Change;
    use rvs_core::engine::{ConnectionInfo, Engine, EngineError, EngineKind, Unsupported};
    use rvs_core::model::{ForwardMethod, RealServer, ServiceOptions};
    use std::sync::{Arc, Mutex};

    /// What an engine was asked, in order.
    #[derive(Debug, Clone, PartialEq)]
    enum Call {
        Apply(Change),
        Reset(SocketAddr),
    }

    /// A proxy-like engine that records changes and resets (or refuses resets).
    struct Recorder {
        calls: Arc<Mutex<Vec<Call>>>,
        can_reset: bool,
    }

    impl ManagedEngine for Recorder {}

    impl Engine for Recorder {
        fn kind(&self) -> EngineKind {
            EngineKind::Proxy
        }
        fn supports(&self, _: &ServiceConfig) -> Result<(), Unsupported> {
            Ok(())
        }
        fn apply(&mut self, changes: &[Change]) -> Result<(), EngineError> {
            let mut calls = self.calls.lock().unwrap();
            calls.extend(changes.iter().cloned().map(Call::Apply));
            Ok(())
        }
        fn stats(&self) -> EngineStats {
            EngineStats::default()
        }
        fn zero(&mut self, _: Option<&ServiceKey>) {}
        fn connections(&self) -> Vec<ConnectionInfo> {
            Vec::new()
        }
        fn shutdown(&mut self) {}
        fn reset_connections(
            &mut self,
            _: &ServiceKey,
            real: &SocketAddr,
        ) -> Result<(), Unsupported> {
            if !self.can_reset {
                return Err(Unsupported("cannot reset".into()));
            }
            self.calls.lock().unwrap().push(Call::Reset(*real));
            Ok(())
        }
    }

    fn daemon_with_one_real(
        can_reset: bool,
    ) -> (Daemon, Arc<Mutex<Vec<Call>>>, ServiceKey, SocketAddr) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let engine = Recorder {
            calls: Arc::clone(&calls),
            can_reset,
        };
        let mut d = Daemon::new(EngineManager::new(vec![Box::new(engine)], BTreeMap::new()));
        let key = ServiceKey::tcp("10.0.0.3:80".parse().unwrap());
        let addr: SocketAddr = "10.0.0.7:80".parse().unwrap();
        d.update(|s| {
            s.add_service(key, ServiceOptions::default())?;
            Ok(s.add_real(&key, RealServer::new(addr, ForwardMethod::FullNat, 1))?)
        })
        .unwrap();
        calls.lock().unwrap().clear();
        (d, calls, key, addr)
    }

    #[test]
    fn remove_with_reset_resets_after_the_real_is_gone() {
        let (mut d, calls, key, addr) = daemon_with_one_real(true);
        d.remove_real(&key, &addr, true).unwrap();
        let calls = calls.lock().unwrap().clone();
        let removed = calls
            .iter()
            .position(|c| *c == Call::Apply(Change::RemoveReal { service: key, addr }))
            .expect("the real was removed from the engine");
        // A connection scheduled before the removal started before this reset: it is cut.
        assert!(
            calls[removed..].contains(&Call::Reset(addr)),
            "no reset after the removal: {calls:?}"
        );
        assert!(d.desired().services[&key].reals.is_empty());
    }

    #[test]
    fn remove_with_reset_on_an_engine_that_cannot_changes_nothing() {
        let (mut d, calls, key, addr) = daemon_with_one_real(false);
        assert!(matches!(
            d.remove_real(&key, &addr, true),
            Err(RemoveRealError::ResetUnsupported(_))
        ));
        assert!(calls.lock().unwrap().is_empty());
        assert!(d.desired().services[&key].reals.contains_key(&addr));
        d.remove_real(&key, &addr, false).unwrap();
        assert!(d.desired().services[&key].reals.is_empty());
    }

    #[test]
    fn observed_health_changes_the_effective_weight_only() {
        let mut d = Daemon::new(EngineManager::new(Vec::new(), BTreeMap::new()));
        let key = ServiceKey::tcp("10.0.0.3:80".parse().unwrap());
        let addr: SocketAddr = "10.0.0.7:80".parse().unwrap();
        d.update(|s| {
            s.add_service(key, ServiceOptions::default())?;
            Ok(s.add_real(&key, RealServer::new(addr, ForwardMethod::Dr, 4))?)
        })
        .unwrap();
        assert!(d.observe(&key, &addr, Health::Down, None, false).unwrap());
        assert!(
            !d.observe(&key, &addr, Health::Down, None, false).unwrap(),
            "no change the second time"
        );
        let real = d.desired().services[&key].reals[&addr];
        assert_eq!((real.weight, real.effective_weight()), (4, 0));
        d.observe(&key, &addr, Health::Up, Some(2), false).unwrap();
        assert_eq!(
            d.desired().services[&key].reals[&addr].effective_weight(),
            2
        );
        let other: SocketAddr = "10.0.0.8:80".parse().unwrap();
        assert!(matches!(
            d.observe(&key, &other, Health::Up, None, false),
            Err(UpdateError::State(StateError::NoSuchReal { .. }))
        ));
    }
}
