//! Health checking in the daemon: keepalived.conf's checkers run by [`rvs_health`]'s
//! supervisor, their verdicts applied to the desired state as diffs.
//!
//! * [`HealthManager`] runs one [`HealthSupervisor`](rvs_health::HealthSupervisor) per virtual server that has checkers. On a
//!   reload ([`HealthManager::sync`]) only services whose health settings changed are restarted;
//!   the others keep checking (and keep their verdicts).
//! * [`apply_event`] carries out one supervisor event on the [`Daemon`]: a real's observed
//!   health and `misc_dynamic` weight go through [`Daemon::observe`] (operator intent —
//!   `weight`, admin state — is never touched; the engines see only the effective weight, so a
//!   down real gets no new connections), the sorry server is added as a real of the service
//!   while no real is up / quorum is lost, and while it serves the remaining live reals are
//!   quorum-gated: weight 0 and down for persistence (keepalived's quorum gating removes them,
//!   which also drops their persistence templates). With `sorry_server_inhibit` the
//!   sorry server is listed from the start and, while not needed, held at weight 0 instead of
//!   being removed (keepalived's "Disabling sorry server").
//! * [`HealthBook`] (a field of the daemon) remembers what listings show about each real (state,
//!   since when, last error, `inhibit_on_failure`) and counts transitions for `/metrics` and
//!   the stats outcomes (`health.*`).

use crate::daemon::Daemon;
use rvs_api::RealHealthView;
use rvs_config::keepalived::VirtualServerHealth;
use rvs_core::desired::DesiredState;
use rvs_core::model::{ForwardMethod, Health, RealServer, ServiceKey};
use rvs_health::{HealthEvent, SupervisorEvent};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// What the checkers reported about one real.
#[derive(Debug, Clone)]
struct Observed {
    view: RealHealthView,
    /// The checker's `misc_dynamic` weight (before quorum gating).
    dynamic_weight: Option<u32>,
}

/// A sorry server in service (`active`), or listed at weight 0 (`sorry_server_inhibit`).
#[derive(Debug, Clone, Copy)]
struct Sorry {
    addr: SocketAddr,
    /// Its forwarding method (`sorry_server_lvs_method`, else the service's).
    method: ForwardMethod,
    /// Whether the daemon added it (it was not a configured real), so removes it again.
    added: bool,
    /// Serving (quorum lost); `false` only for an inhibited one while quorum is held.
    active: bool,
    since: SystemTime,
}

impl Sorry {
    /// Whether `real` is held at weight 0 because this sorry server serves instead.
    fn gates(&self, real: SocketAddr) -> bool {
        self.active && self.addr != real
    }

    /// The dynamic weight the daemon puts on the sorry server it added.
    fn own_weight(&self) -> Option<u32> {
        (!self.active).then_some(0)
    }
}

/// The daemon's record of observed health, for listings and counters.
#[derive(Debug, Default)]
pub struct HealthBook {
    reals: BTreeMap<(ServiceKey, SocketAddr), Observed>,
    sorry: BTreeMap<ServiceKey, Sorry>,
    counts: BTreeMap<&'static str, u64>,
    /// Checks run and failed, from the supervisors (see [`HealthManager::publish`]).
    checks: (u64, u64),
    /// The SYN prober's counters, when `TCP_CHECK`s run on it (see [`HealthManager::publish`]).
    syn: Option<rvs_health::SynStats>,
}

/// The SYN prober's counters by name (`health.syn_<name>` in the outcomes and `/metrics`).
fn syn_counters(s: &rvs_health::SynStats) -> [(&'static str, u64); 9] {
    [
        ("sent", s.sent),
        ("open", s.open),
        ("refused", s.refused),
        ("timeouts", s.timeouts),
        ("retransmits", s.retransmits),
        ("unmatched", s.unmatched),
        ("send_errors", s.send_errors),
        ("local_drops", s.local_drops),
        ("resets", s.resets),
    ]
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl HealthBook {
    /// What listings show about a real (`None`: no checker and not a sorry server).
    pub fn view(&self, service: &ServiceKey, real: &SocketAddr) -> Option<RealHealthView> {
        let sorry = self.sorry.get(service);
        if let Some(o) = self.reals.get(&(*service, *real)) {
            let mut v = o.view.clone();
            v.quorum_gated = v.state != Health::Down && sorry.is_some_and(|s| s.gates(*real));
            return Some(v);
        }
        let s = sorry.filter(|s| s.addr == *real)?;
        Some(RealHealthView {
            state: Health::Unknown,
            since_unix_ms: unix_ms(s.since),
            last_error: None,
            inhibit: false,
            sorry_server: true,
            quorum_gated: false,
        })
    }

    /// Counters for the stats outcomes and `/metrics` (`health.<name>`).
    pub fn outcomes(&self) -> impl Iterator<Item = (String, u64)> + '_ {
        let (checks, failures) = self.checks;
        let syn = self.syn.as_ref().map(syn_counters).into_iter().flatten();
        self.counts
            .iter()
            .map(|(k, v)| (format!("health.{k}"), *v))
            .chain([
                ("health.checks".to_string(), checks),
                ("health.check_failures".to_string(), failures),
            ])
            .chain(syn.map(|(k, v)| (format!("health.syn_{k}"), v)))
    }

    fn count(&mut self, name: &'static str) {
        *self.counts.entry(name).or_default() += 1;
    }

    /// Forget a service whose checking stopped.
    fn forget(&mut self, service: &ServiceKey) {
        self.reals.retain(|(s, _), _| s != service);
        self.sorry.remove(service);
    }

    /// Forget the services that will not be checked any more (before a reload is applied).
    pub fn retain_checked(&mut self, configs: &[VirtualServerHealth]) {
        let checked = |k: &ServiceKey| configs.iter().any(|c| c.service == *k && has_checkers(c));
        self.reals.retain(|(s, _), _| checked(s));
        self.sorry.retain(|s, _| checked(s));
    }

    /// Before a state is first applied: reals that have an `alpha` checker and no verdict yet
    /// start down (keepalived's `alpha`), so they get no connection before a check succeeds.
    pub fn preset_alpha(&self, state: &mut DesiredState, configs: &[VirtualServerHealth]) {
        for cfg in configs {
            let Some(svc) = state.services.get_mut(&cfg.service) else {
                continue;
            };
            for rc in cfg
                .reals
                .iter()
                .filter(|r| r.checkers.iter().any(|c| c.alpha))
            {
                if self.reals.contains_key(&(cfg.service, rc.addr)) {
                    continue;
                }
                if let Some(r) = svc.reals.get_mut(&rc.addr) {
                    r.health = Health::Down;
                }
            }
        }
    }

    /// Put what the checkers observed onto a state about to be applied (every update: API
    /// edits, `PUT /v1/state`, reloads): each checked real's health and dynamic weight, the
    /// quorum gating, and an active sorry server the daemon added — so no edit resets them
    /// and a reload does not flap them.
    pub fn overlay(&self, state: &mut DesiredState) {
        for ((key, addr), o) in &self.reals {
            let Some(r) = state
                .services
                .get_mut(key)
                .and_then(|s| s.reals.get_mut(addr))
            else {
                continue;
            };
            r.health = o.view.state;
            r.dynamic_weight = o.dynamic_weight;
            r.quorum_gated = self.sorry.get(key).is_some_and(|s| s.gates(*addr));
        }
        for (key, sorry) in &self.sorry {
            let Some(svc) = state.services.get_mut(key) else {
                continue;
            };
            if !sorry.added {
                continue;
            }
            let r = svc
                .reals
                .entry(sorry.addr)
                .or_insert_with(|| RealServer::new(sorry.addr, sorry.method, 1));
            r.dynamic_weight = sorry.own_weight();
        }
    }
}

/// Push what the book says about `real` to the desired state (and so to the engines).
fn push(d: &mut Daemon, service: ServiceKey, real: SocketAddr) {
    let book = &d.health;
    let Some(o) = book.reals.get(&(service, real)) else {
        return;
    };
    let gated = book.sorry.get(&service).is_some_and(|s| s.gates(real));
    let health = o.view.state;
    match d.observe(&service, &real, health, o.dynamic_weight, gated) {
        Ok(true) => {
            let w = d.desired().services[&service].reals[&real].effective_weight();
            tracing::info!(%service, %real, ?health, gated, effective_weight = w, "health applied");
        }
        Ok(false) => {}
        // the operator may have deleted the real through the API meanwhile
        Err(e) => {
            tracing::debug!(%service, %real, error = %e, "health event for a real not in the state")
        }
    }
}

fn on_real(d: &mut Daemon, h: HealthEvent) {
    let key = (h.service, h.real);
    let prev = d
        .health
        .reals
        .get(&key)
        .map(|o| (o.view.state, o.dynamic_weight));
    if let Some((state, dynamic)) = prev {
        if state != h.health {
            d.health.count(if h.health == Health::Down {
                "real_down"
            } else {
                "real_up"
            });
        }
        if dynamic != h.dynamic_weight {
            d.health.count("dynamic_weight_changed");
        }
    }
    let view = RealHealthView {
        state: h.health,
        since_unix_ms: unix_ms(h.since),
        last_error: h.last_error,
        inhibit: h.inhibit,
        sorry_server: false,
        quorum_gated: false,
    };
    let dynamic_weight = h.dynamic_weight;
    d.health.reals.insert(
        key,
        Observed {
            view,
            dynamic_weight,
        },
    );
    push(d, h.service, h.real);
}

/// A service's forwarding method, as its reals have it (the sorry server's default).
fn service_method(svc: &rvs_core::desired::ServiceConfig) -> ForwardMethod {
    svc.reals
        .values()
        .next()
        .map(|r| r.method)
        .unwrap_or_default()
}

/// The sorry server `addr` (with its `sorry_server_lvs_method`, if any) goes in or out.
fn on_sorry(
    d: &mut Daemon,
    service: ServiceKey,
    (addr, method): (SocketAddr, Option<ForwardMethod>),
    active: bool,
    inhibit: bool,
) {
    let current = d.health.sorry.get(&service).copied();
    if current.map(|s| s.active) == Some(active) || (current.is_none() && !active && !inhibit) {
        return;
    }
    let Some(svc) = d.desired().services.get(&service) else {
        return;
    };
    let added = current.map_or(!svc.reals.contains_key(&addr), |s| s.added);
    let method = method.unwrap_or_else(|| service_method(svc));
    let next = Sorry {
        addr,
        method,
        added,
        active,
        since: SystemTime::now(),
    };
    if active || inhibit {
        // the book first: `update` overlays it (the added sorry server's weight: its own while
        // serving, 0 while inhibited)
        d.health.sorry.insert(service, next);
        let added_now = d.update(|s| {
            let listed = s
                .services
                .get(&service)
                .is_some_and(|svc| svc.reals.contains_key(&addr));
            if added && !listed {
                s.add_real(&service, RealServer::new(addr, method, 1))?;
            }
            Ok(())
        });
        if let Err(e) = added_now {
            tracing::error!(%service, sorry_server = %addr, error = %e, "cannot add the sorry server");
            match current {
                Some(c) => d.health.sorry.insert(service, c),
                None => d.health.sorry.remove(&service),
            };
            return;
        }
    } else {
        d.health.sorry.remove(&service);
        if added && let Err(e) = d.update(|s| Ok(s.remove_real(&service, &addr).map(|_| ())?)) {
            tracing::error!(%service, sorry_server = %addr, error = %e, "cannot remove the sorry server");
        }
    }
    match (current.is_some(), active) {
        // inhibited sorry server listed at weight 0 at start: not a switch
        (false, false) => {
            tracing::info!(%service, sorry_server = %addr, "sorry server listed at weight 0 (sorry_server_inhibit)");
        }
        (_, true) => {
            d.health.count("sorry_server_on");
            tracing::warn!(%service, sorry_server = %addr, "no quorum: the sorry server serves");
        }
        (true, false) => {
            d.health.count("sorry_server_off");
            tracing::info!(%service, sorry_server = %addr, inhibit, "quorum back: the sorry server is out of service");
        }
    }
    let reals: Vec<SocketAddr> = d
        .health
        .reals
        .keys()
        .filter(|(s, _)| *s == service)
        .map(|(_, r)| *r)
        .collect();
    for r in reals {
        push(d, service, r);
    }
}

/// A service's checks stopped (reload): forget its verdicts, take out the sorry server the
/// daemon added and lift the gating. Restarted checks report every real again at once.
fn release(d: &mut Daemon, key: &ServiceKey) {
    let sorry = d.health.sorry.get(key).copied();
    d.health.forget(key);
    let Some(sorry) = sorry else { return };
    let lifted = d.update(|st| {
        if let Some(svc) = st.services.get_mut(key) {
            if sorry.added {
                svc.reals.remove(&sorry.addr);
            }
            for r in svc.reals.values_mut() {
                if r.dynamic_weight == Some(0) {
                    r.dynamic_weight = None;
                }
            }
        }
        Ok(())
    });
    if let Err(e) = lifted {
        tracing::error!(service = %key, error = %e, "cannot take out the sorry server");
    }
}

/// Carry out one supervisor event.
pub fn apply_event(d: &mut Daemon, ev: SupervisorEvent) {
    match ev {
        SupervisorEvent::Real(h) => on_real(d, h),
        SupervisorEvent::SorryServer {
            service,
            addr,
            active,
            inhibit,
            method,
        } => on_sorry(d, service, (addr, method), active, inhibit),
        SupervisorEvent::Quorum { up, .. } => {
            d.health
                .count(if up { "quorum_gained" } else { "quorum_lost" });
        }
    }
}

mod manager;

use manager::has_checkers;

pub use manager::{HealthManager, describe, reset_unchecked};

#[cfg(test)]
mod tests;
