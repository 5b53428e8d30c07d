//! The engine manager: which engines run, which engine serves each service (DESIGN.md "Which
//! engine serves a service"), and applying the desired state to them as diffs.
//!
//! Each running engine has a *view*: the part of the desired state it serves. Applying a new
//! desired state places every service, builds the new views and hands each engine only
//! `diff(old view, new view)`, so a service that moves (or becomes unservable) is removed from
//! one engine and added to the other, and nothing else is touched.
//!
//! FULLNAT local addresses are not part of the desired state: services' own pools come from
//! the configuration files and reach the engines through [`ManagedEngine::set_fullnat_pool`]
//! ([`EngineManager::set_local_addresses`], only the pools that changed), before placement, so
//! the xdp engine's support check sees them.

use rvs_config::local_addr::ServicePools;
use rvs_core::desired::{Change, DesiredState, ServiceConfig, diff};
use rvs_core::engine::{ConnectionInfo, Engine, EngineKind, EngineStats, Unsupported};
use rvs_core::model::{
    EnginePin, ForwardMethod, Protocol, ProxyOptions, ProxyProtocol, SchedFlags, SchedulerKind,
    ServiceKey,
};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

/// Where a service is served, or why it is not.
pub type Placement = Result<EngineKind, String>;

/// An engine as the manager holds it: [`Engine`], plus the FULLNAT local addresses that only
/// the xdp engine takes.
pub trait ManagedEngine: Engine {
    /// Give service `key` its own FULLNAT local addresses (empty: back to the engine's
    /// default pool). Both engines use them; an engine without any ignores it.
    fn set_fullnat_pool(&mut self, key: ServiceKey, addrs: Vec<IpAddr>) -> Result<(), String> {
        let _ = (key, addrs);
        Ok(())
    }

    /// The desired state has just been applied in full: the xdp engine adopts the flows a
    /// previous rvsd kept ([`rvs_xdp::XdpEngine::adopt`]), if any.
    fn settled(&mut self) {}

    /// `[daemon] xdp_keep_on_exit` changed by a reload: the xdp engine keeps its flows on exit
    /// (or not) from now on. Returns whether the engine took a new value.
    fn set_keep_on_exit(&mut self, keep: bool) -> bool {
        let _ = keep;
        false
    }
}

impl ManagedEngine for rvs_proxy::ProxyEngine {
    fn set_fullnat_pool(&mut self, key: ServiceKey, addrs: Vec<IpAddr>) -> Result<(), String> {
        rvs_proxy::ProxyEngine::set_fullnat_pool(self, key, addrs);
        Ok(())
    }
}

#[cfg(feature = "xdp")]
impl ManagedEngine for rvs_xdp::XdpEngine {
    fn set_fullnat_pool(&mut self, key: ServiceKey, addrs: Vec<IpAddr>) -> Result<(), String> {
        rvs_xdp::XdpEngine::set_fullnat_pool(self, key, addrs).map_err(|e| e.to_string())
    }

    fn settled(&mut self) {
        if !self.has_kept_state() {
            return;
        }
        // Success is logged by the engine itself ("xdp: adopted the kept state: N entries").
        if let Err(e) = self.adopt() {
            tracing::warn!(
                error = %e,
                "xdp: could not adopt the flows the last rvsd kept; started fresh"
            );
        }
    }

    fn set_keep_on_exit(&mut self, keep: bool) -> bool {
        rvs_xdp::XdpEngine::set_keep_on_exit(self, keep)
    }
}

/// The running engines, and why the others are not running.
pub struct EngineManager {
    engines: Vec<Box<dyn ManagedEngine>>,
    not_running: BTreeMap<EngineKind, String>,
    views: BTreeMap<EngineKind, DesiredState>,
    placement: BTreeMap<ServiceKey, Placement>,
    /// Services' own FULLNAT local addresses, as handed to the engines.
    local_addresses: ServicePools,
    /// Why a FULLNAT service that the xdp engine could have served went to the proxy.
    notes: BTreeMap<ServiceKey, String>,
}

impl EngineManager {
    /// Manage `engines`; `not_running` says why each missing engine is missing.
    pub fn new(
        engines: Vec<Box<dyn ManagedEngine>>,
        not_running: BTreeMap<EngineKind, String>,
    ) -> Self {
        let views = engines
            .iter()
            .map(|e| (e.kind(), DesiredState::default()))
            .collect();
        EngineManager {
            engines,
            not_running,
            views,
            placement: BTreeMap::new(),
            local_addresses: ServicePools::new(),
            notes: BTreeMap::new(),
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
            .map(|e| e.as_ref() as &dyn Engine)
    }

    /// Hand a reloaded `[daemon] xdp_keep_on_exit` to the engines; whether one took it.
    pub fn set_keep_on_exit(&mut self, keep: bool) -> bool {
        let mut changed = false;
        for e in &mut self.engines {
            changed |= e.set_keep_on_exit(keep);
        }
        changed
    }

    fn engine_mut(&mut self, kind: EngineKind) -> Option<&mut Box<dyn ManagedEngine>> {
        self.engines.iter_mut().find(|e| e.kind() == kind)
    }

    /// Why engine `kind` is not running (`None` when it runs).
    pub fn not_running(&self, kind: EngineKind) -> Option<String> {
        self.engine(kind).is_none().then(|| self.missing(kind))
    }

    fn missing(&self, kind: EngineKind) -> String {
        self.not_running
            .get(&kind)
            .cloned()
            .unwrap_or_else(|| "not started".into())
    }

    /// Give services their own FULLNAT local addresses (`pools`, from the configuration files;
    /// a service not in it uses the engine's default pool). Only the pools that changed since
    /// the last call reach the engines; call it before [`EngineManager::apply`], whose
    /// placement asks the engines, which then know the new pools.
    pub fn set_local_addresses(&mut self, pools: &ServicePools) {
        let old = std::mem::take(&mut self.local_addresses);
        let keys: std::collections::BTreeSet<ServiceKey> =
            old.keys().chain(pools.keys()).copied().collect();
        for key in keys {
            let new = pools.get(&key).cloned().unwrap_or_default();
            if old.get(&key).cloned().unwrap_or_default() == new {
                continue;
            }
            tracing::info!(service = %key, local_addresses = ?new, "FULLNAT local addresses");
            for e in &mut self.engines {
                if let Err(why) = e.set_fullnat_pool(key, new.clone()) {
                    tracing::error!(service = %key, engine = ?e.kind(), error = %why,
                        "could not set FULLNAT local addresses");
                }
            }
        }
        self.local_addresses = pools.clone();
    }

    /// Why service `key` is served by the proxy engine although the xdp engine runs (a FULLNAT
    /// service without local addresses of its VIP's family, say); `None` otherwise.
    pub fn note(&self, key: &ServiceKey) -> Option<&str> {
        self.notes.get(key).map(String::as_str)
    }

    /// Where `svc` would be served now (pure: asks engines only `supports`).
    pub fn place(&self, svc: &ServiceConfig) -> Placement {
        self.place_noted(svc).0
    }

    /// [`EngineManager::place`], and a note for the operator: why the xdp engine did not take a
    /// service the proxy took, or which of a service's options the xdp engine does not apply.
    fn place_noted(&self, svc: &ServiceConfig) -> (Placement, Option<String>) {
        let (placed, note) = self.place_why(svc);
        let note = match placed {
            Ok(EngineKind::Xdp) => note.or_else(|| xdp_note(svc)),
            _ => note,
        };
        (placed, note)
    }

    fn place_why(&self, svc: &ServiceConfig) -> (Placement, Option<String>) {
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
                            format!("forwarding method {} needs", r.method.short_name()),
                        _ => "the service is pinned to".to_string(),
                    },
                    kind.name(),
                    self.missing(kind)
                )),
                Some(e) => e
                    .supports(svc)
                    .map(|()| kind)
                    .map_err(|Unsupported(why)| why),
            }
        };
        match svc.options.engine {
            EnginePin::Xdp => (try_engine(EngineKind::Xdp), None),
            EnginePin::Proxy => (try_engine(EngineKind::Proxy), None),
            EnginePin::Auto if needs_xdp.is_some() => (try_engine(EngineKind::Xdp), None),
            EnginePin::Auto => match try_engine(EngineKind::Xdp) {
                Ok(k) => (Ok(k), None),
                Err(xdp_reason) => match self.engine(EngineKind::Proxy) {
                    Some(e) => {
                        let placed = e
                            .supports(svc)
                            .map(|()| EngineKind::Proxy)
                            .map_err(|Unsupported(w)| w);
                        // The xdp engine runs but refused it: say why it is on the proxy.
                        let note =
                            (placed.is_ok() && self.engine(EngineKind::Xdp).is_some()).then(|| {
                                format!("on the proxy engine, not the xdp engine: {xdp_reason}")
                            });
                        (placed, note)
                    }
                    None if self.engine(EngineKind::Xdp).is_some() => (Err(xdp_reason), None),
                    None => (
                        Err(format!(
                            "no engine is running (xdp: {}; proxy: {})",
                            self.missing(EngineKind::Xdp),
                            self.missing(EngineKind::Proxy)
                        )),
                        None,
                    ),
                },
            },
        }
    }

    /// The current placement of a service (`None` if the service is unknown).
    pub fn placement(&self, key: &ServiceKey) -> Option<&Placement> {
        self.placement.get(key)
    }

    /// Make the engines serve `desired`, applying only the difference. A service an engine
    /// fails to take (say its VIP is not a local address, or the port is taken) is taken out of
    /// that engine and flagged with the engine's error: kept and listed, never dropped, and
    /// tried again on the next change.
    pub fn apply(&mut self, desired: &DesiredState) {
        let mut placement: BTreeMap<ServiceKey, Placement> = BTreeMap::new();
        let mut notes = BTreeMap::new();
        for s in desired.services.values() {
            let (p, note) = self.place_noted(s);
            placement.insert(s.key, p);
            if let Some(n) = note {
                notes.insert(s.key, n);
            }
        }
        for kind in self.running() {
            let mut view = DesiredState {
                timeouts: desired.timeouts,
                ..Default::default()
            };
            for (key, p) in &placement {
                if p.as_ref() == Ok(&kind) {
                    view.services.insert(*key, desired.services[key].clone());
                }
            }
            for (key, why) in self.apply_engine(kind, &mut view) {
                placement.insert(key, Err(why));
            }
            if let Some(e) = self.engine_mut(kind) {
                e.settled();
            }
            self.views.insert(kind, view);
        }
        for (key, p) in &placement {
            if let Err(why) = p
                && self.placement.get(key) != Some(p)
            {
                tracing::warn!(service = %key, reason = %why, "service kept but not served");
            }
        }
        notes.retain(|key, _| placement.get(key).is_some_and(|p| p.is_ok()));
        for (key, note) in &notes {
            if self.notes.get(key) != Some(note) {
                tracing::info!(service = %key, note = %note, "placement");
            }
        }
        self.placement = placement;
        self.notes = notes;
    }

    /// Hand engine `kind` the changes from its current view to `view`, one by one; services
    /// whose changes fail are removed from the engine and from `view`, and returned with why.
    fn apply_engine(
        &mut self,
        kind: EngineKind,
        view: &mut DesiredState,
    ) -> Vec<(ServiceKey, String)> {
        let changes = diff(&self.views[&kind], view);
        let engine = self.engine_mut(kind).expect("running engine");
        let mut failed: Vec<(ServiceKey, String)> = Vec::new();
        for change in changes {
            let key = changed_service(&change);
            if key.is_some_and(|k| failed.iter().any(|(f, _)| *f == k)) {
                continue;
            }
            tracing::debug!(engine = ?kind, ?change, "applying");
            if let Err(e) = engine.apply(std::slice::from_ref(&change)) {
                match key {
                    Some(k) => failed.push((
                        k,
                        format!("the {} engine could not serve it: {e}", kind.name()),
                    )),
                    None => {
                        tracing::error!(engine = ?kind, error = %e, "engine refused {change:?}")
                    }
                }
            }
        }
        for (key, _) in &failed {
            // Take out whatever part was added; an engine that never had it just says so.
            let _ = engine.apply(&[Change::RemoveService(*key)]);
            view.services.remove(key);
        }
        failed
    }

    /// Counters of every engine, and outcome counters prefixed with the engine's name.
    pub fn stats(&self) -> (EngineStats, BTreeMap<String, u64>) {
        let mut merged = EngineStats::default();
        let mut outcomes = BTreeMap::new();
        for e in &self.engines {
            let s = e.stats();
            for (k, v) in s.outcomes {
                outcomes.insert(format!("{}.{k}", e.kind().name()), v);
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

    /// A graceful stop begins: every engine takes no new connection (see
    /// [`Engine::stop_accepting`]).
    pub fn stop_accepting(&mut self) {
        for e in &mut self.engines {
            e.stop_accepting();
        }
    }

    /// Connections the engines still relay (the graceful stop waits for 0).
    pub fn open_connections(&self) -> usize {
        self.engines.iter().map(|e| e.open_connections()).sum()
    }

    /// Detach every engine (on exit).
    pub fn shutdown(&mut self) {
        for e in &mut self.engines {
            tracing::info!(engine = ?e.kind(), "shutting down engine");
            e.shutdown();
        }
    }
}

/// The service a change is about (`None` for timeouts).
fn changed_service(c: &Change) -> Option<ServiceKey> {
    match c {
        Change::SetTimeouts(_) => None,
        Change::RemoveReal { service, .. }
        | Change::AddReal { service, .. }
        | Change::EditReal { service, .. } => Some(*service),
        Change::RemoveService(key)
        | Change::AddService { key, .. }
        | Change::EditService { key, .. } => Some(*key),
    }
}

#[cfg(test)]
mod tests;

/// What the xdp engine does not apply of a service's options: it places new flows by Maglev
/// consistent hashing of the flow's addresses and ports (by weight; persistence honoured),
/// whatever scheduler or scheduler flags the service names. One-packet scheduling (`-o`) it
/// applies to UDP datagrams to DR/TUN reals (each scheduled on its own, no connection entry);
/// not to TCP (nor does IPVS) or to NAT/FULLNAT reals (their replies need the entry). Nor the
/// port of a DR/TUN real that differs from the service's. `None` when it applies them all
/// (`-s mh`, no flags, `-o` only where applied, DR/TUN reals on the service's port).
fn xdp_note(svc: &ServiceConfig) -> Option<String> {
    let o = &svc.options;
    let mut ignored = Vec::new();
    if o.scheduler != SchedulerKind::Mh {
        ignored.push(format!("scheduler {}", o.scheduler.name()));
    }
    if o.flags != SchedFlags::default() {
        ignored.push("scheduler flags (-b)".to_string());
    }
    if let Some(why) = one_packet_not_applied(svc) {
        ignored.push(why.to_string());
    }
    if let Some(what) = proxy_options_not_applied(svc) {
        ignored.push(what.to_string());
    }
    if let Some(what) = direct_ports_not_applied(svc) {
        ignored.push(what);
    }
    (!ignored.is_empty()).then(|| {
        format!(
            "on the xdp engine: new flows are placed by weighted Maglev hashing of their \
             addresses and ports (as mh); not applied: {}",
            ignored.join(", ")
        )
    })
}

/// The proxy engine's options of a service the xdp engine serves (a FULLNAT service that could
/// have been on either): the xdp engine forwards packets, so it sends no PROXY protocol header
/// and has no connect timeouts, retries or passive failure detection.
fn proxy_options_not_applied(svc: &ServiceConfig) -> Option<&'static str> {
    let asked = |p: ProxyProtocol| p != ProxyProtocol::None;
    if asked(svc.options.proxy.proxy_protocol)
        || svc
            .reals
            .values()
            .any(|r| r.proxy_protocol.is_some_and(asked))
    {
        return Some(
            "the proxy engine's options ([service.proxy]; no PROXY protocol header is sent)",
        );
    }
    (svc.options.proxy != ProxyOptions::default())
        .then_some("the proxy engine's options ([service.proxy])")
}

/// DR and TUN reals whose port is not the service's: DR and TUN leave the packet's ports
/// alone, so such a real is reached on the service's port (ipvsadm makes their port the
/// service's when they are added; the model keeps what it was given).
fn direct_ports_not_applied(svc: &ServiceConfig) -> Option<String> {
    let ServiceKey::Addr { addr, .. } = svc.key else {
        return None;
    };
    let odd: Vec<String> = svc
        .reals
        .values()
        .filter(|r| matches!(r.method, ForwardMethod::Dr | ForwardMethod::Tun))
        .filter(|r| r.addr.port() != addr.port())
        .map(|r| r.addr.to_string())
        .collect();
    (!odd.is_empty()).then(|| {
        format!(
            "the port of DR/TUN reals {} (they are reached on port {}: DR and TUN do not \
             rewrite ports)",
            odd.join(", "),
            addr.port()
        )
    })
}

/// Where the xdp engine does not apply a service's `-o`: on TCP, and to NAT/FULLNAT reals.
fn one_packet_not_applied(svc: &ServiceConfig) -> Option<&'static str> {
    if !svc.options.one_packet {
        return None;
    }
    let udp = matches!(
        svc.key,
        ServiceKey::Addr {
            protocol: Protocol::Udp,
            ..
        }
    );
    if !udp {
        return Some("one-packet scheduling (-o; UDP only)");
    }
    svc.reals
        .values()
        .any(|r| matches!(r.method, ForwardMethod::Nat | ForwardMethod::FullNat))
        .then_some("one-packet scheduling (-o) for NAT/FULLNAT reals")
}
