//! The running supervisors: one [`HealthSupervisor`] per checked virtual server, kept across
//! reloads unless its health settings changed (restarted then, carrying over the verdicts of
//! the reals whose checkers did not change); `--check` descriptions. Every supervisor's
//! `TCP_CHECK`s share one [`TcpProber`] (one SYN prober: one raw socket per family, one
//! reserved port block), made when the first `TCP_CHECK` appears and logged once.

use super::{apply_event, release};
use crate::api;
use rvs_config::keepalived::VirtualServerHealth;
use rvs_core::desired::DesiredState;
use rvs_core::model::{Health, ServiceKey};
use rvs_health::RealStatus;
use rvs_health::{HealthSupervisor, TcpProber};
use std::collections::BTreeMap;
use tokio::task::JoinHandle;

/// One service being checked.
struct Running {
    cfg: VirtualServerHealth,
    supervisor: HealthSupervisor,
    forward: JoinHandle<()>,
}

/// The running supervisors, one per checked service.
#[derive(Default)]
pub struct HealthManager {
    running: BTreeMap<ServiceKey, Running>,
    /// Checks run and failed by supervisors already stopped (counters stay monotonic).
    retired: (u64, u64),
    /// How `TCP_CHECK`s run, shared by every supervisor (made on first need).
    tcp: Option<TcpProber>,
    /// Whether the first sync (the daemon's start) is done: later starts are reloads.
    synced: bool,
}

/// Whether a reload may keep a service's running checks (and their verdicts): nothing but real
/// weights changed, and those only in ways that cannot change quorum (`quorum 1`, no
/// `hysteresis`, no weight going to or from 0).
pub(super) fn same_checks(old: &VirtualServerHealth, new: &VirtualServerHealth) -> bool {
    if old == new {
        return true;
    }
    if old.reals.len() != new.reals.len() || (new.quorum, new.hysteresis) != (1, 0) {
        return false;
    }
    let mut unweighted = new.clone();
    for (n, o) in unweighted.reals.iter_mut().zip(&old.reals) {
        if (n.weight == 0) != (o.weight == 0) {
            return false;
        }
        n.weight = o.weight;
    }
    unweighted == *old
}

/// The verdicts a restarted service carries over from its running checks: those of the reals
/// still configured with the same checkers (keepalived keeps a checker's state across a reload
/// when the checker compares equal).
fn carried_over(old: &Running, new: &VirtualServerHealth) -> Vec<RealStatus> {
    let same = |addr| {
        let checkers = |c: &VirtualServerHealth| {
            c.reals
                .iter()
                .find(|r| r.addr == addr)
                .map(|r| r.checkers.clone())
        };
        checkers(&old.cfg).is_some_and(|o| Some(o) == checkers(new))
    };
    old.supervisor
        .status()
        .into_iter()
        .filter(|s| same(s.real))
        .collect()
}

/// Whether a service has anything to check.
pub(super) fn has_checkers(cfg: &VirtualServerHealth) -> bool {
    cfg.reals.iter().any(|r| !r.checkers.is_empty())
}

impl HealthManager {
    /// Make the running checks match `configs`: stop those gone or changed, start new or
    /// changed ones, leave the rest running. Must be called inside the tokio runtime.
    pub fn sync(&mut self, shared: &api::Shared, configs: &[VirtualServerHealth]) {
        let wanted: BTreeMap<ServiceKey, &VirtualServerHealth> = configs
            .iter()
            .filter(|c| has_checkers(c))
            .map(|c| (c.service, c))
            .collect();
        let stale: Vec<ServiceKey> = self
            .running
            .iter()
            .filter(|(k, r)| wanted.get(k).is_none_or(|c| !same_checks(&r.cfg, c)))
            .map(|(k, _)| *k)
            .collect();
        let mut seeds: BTreeMap<ServiceKey, Vec<RealStatus>> = BTreeMap::new();
        for key in stale {
            if let Some(r) = self.running.remove(&key) {
                if let Some(new) = wanted.get(&key) {
                    seeds.insert(key, carried_over(&r, new));
                }
                let s = r.supervisor.stats();
                self.retired.0 += s.checks;
                self.retired.1 += s.failures;
                r.forward.abort();
                tokio::spawn(r.supervisor.shutdown());
                release(&mut api::lock(shared), &key);
                tracing::info!(service = %key, "health checks stopped");
            }
        }
        for (key, cfg) in wanted {
            if self.running.contains_key(&key) {
                continue;
            }
            let one = std::slice::from_ref(cfg);
            if self.tcp.is_none() && rvs_health::supervisor::has_tcp_check(one) {
                self.tcp = Some(TcpProber::from_env());
            }
            let seed = seeds.remove(&key).unwrap_or_default();
            // at the daemon's start one failure takes an unchecked real down (keepalived);
            // services started by a reload retry as configured
            let (supervisor, mut events) = if self.synced {
                HealthSupervisor::start_seeded(one, self.tcp.clone(), &seed)
            } else {
                HealthSupervisor::start_with(one, self.tcp.clone())
            };
            let sh = shared.clone();
            let forward = tokio::spawn(async move {
                while let Some(ev) = events.recv().await {
                    apply_event(&mut api::lock(&sh), ev);
                }
            });
            let checkers: usize = cfg.reals.iter().map(|r| r.checkers.len()).sum();
            tracing::info!(service = %key, checkers, "health checks started");
            self.running.insert(
                key,
                Running {
                    cfg: cfg.clone(),
                    supervisor,
                    forward,
                },
            );
        }
        self.synced = true;
    }

    /// Copy the checks-run and failure counters into the daemon's book (every rate tick).
    pub fn publish(&self, shared: &api::Shared) {
        let (mut checks, mut failures) = self.retired;
        for r in self.running.values() {
            let s = r.supervisor.stats();
            checks += s.checks;
            failures += s.failures;
        }
        let syn = self.tcp.as_ref().and_then(TcpProber::syn_stats);
        let mut d = api::lock(shared);
        d.health.checks = (checks, failures);
        d.health.syn = syn;
    }

    /// How `TCP_CHECK`s run (`None` until one is configured).
    pub fn tcp_prober(&self) -> Option<String> {
        self.tcp.as_ref().map(TcpProber::describe)
    }

    /// Services being checked.
    pub fn services(&self) -> Vec<ServiceKey> {
        self.running.keys().copied().collect()
    }

    /// Stop everything, running the `omega` notifications.
    pub async fn shutdown(self) {
        for (_, r) in self.running {
            r.forward.abort();
            r.supervisor.shutdown().await;
        }
    }
}

/// After a reload: services that no longer have checkers lose their observed health (it would
/// never change again); the others keep it until their checkers say otherwise.
pub fn reset_unchecked(state: &mut DesiredState, configs: &[VirtualServerHealth]) {
    for (key, svc) in state.services.iter_mut() {
        if configs.iter().any(|c| c.service == *key && has_checkers(c)) {
            continue;
        }
        for r in svc.reals.values_mut() {
            r.health = Health::Unknown;
            r.dynamic_weight = None;
        }
    }
}

/// `--check` lines for a service's checkers: one per checker, with its timing.
pub fn describe(cfg: &VirtualServerHealth) -> Vec<String> {
    let mut out = Vec::new();
    for r in &cfg.reals {
        for c in &r.checkers {
            out.push(format!(
                "  -> {} weight {}: {} {}, delay_loop {:?}, connect_timeout {:?}, retry {}, delay_before_retry {:?}{}",
                r.addr,
                r.weight,
                c.kind.name(),
                c.target(r.addr),
                c.delay_loop,
                c.connect_timeout,
                c.retry,
                c.delay_before_retry,
                if r.inhibit_on_failure { ", inhibit_on_failure" } else { "" },
            ));
        }
    }
    if let Some(s) = cfg.sorry_server {
        let inhibit = if cfg.sorry_server_inhibit {
            " (sorry_server_inhibit)"
        } else {
            ""
        };
        out.push(format!("  sorry_server {s}{inhibit}"));
    }
    if cfg.quorum != 1 || cfg.hysteresis != 0 {
        out.push(format!(
            "  quorum {} hysteresis {}",
            cfg.quorum, cfg.hysteresis
        ));
    }
    out
}
