//! Per-service runtime state owned by an engine: the reals with their connection counts and
//! overload flags, the scheduler, and the persistence templates.
//!
//! Protocol for an engine:
//! 1. [`ServiceRuntime::schedule`] picks a real for a new connection (persistence first, then the
//!    scheduler). It does not count a connection: the engine may still fail to connect and try
//!    again. Count it with `conn_opened` before the next `set_reals`: a real removed with no
//!    counted connections is freed at once and its id may be reused.
//! 2. [`ServiceRuntime::conn_opened`] once the connection exists, [`ServiceRuntime::conn_changed`]
//!    when it moves between active (TCP ESTABLISHED) and inactive, and
//!    [`ServiceRuntime::conn_closed`] when it goes away — each with the [`ConnRef`] that
//!    `schedule` returned.
//! 3. [`ServiceRuntime::expire`] now and then to drop expired persistence templates.
//!
//! 4. With passive failure detection (`ProxyOptions::max_fails`, [`crate::passive`]): report
//!    connect outcomes with [`ServiceRuntime::connect_failed`] and — when [`Scheduled::report`]
//!    says so — [`ServiceRuntime::connect_succeeded`]. A real that is out has weight 0 in the
//!    scheduler's view (its configuration and the desired state are unchanged) until its time
//!    is over, checked on every `schedule`. A service never has all of its reals out: the last
//!    real that could take a connection is not taken out (it keeps being tried, so the service
//!    comes back with it), and if the reals left in become unschedulable otherwise (drained,
//!    down, overloaded), the reals that are out are brought back in for the next pick.
//!
//! Reals are named by a [`RealId`] that stays valid while the connections counted on it are
//! open, across [`ServiceRuntime::set_reals`]: a real that is removed while it still has
//! connections stays as a tombstone (never scheduled) until its last connection closes, and a
//! real that is re-added while its tombstone exists gets its old id and counts back, as IPVS
//! does with its destination trash.

use crate::model::{Health, RealServer, ServiceOptions};
use crate::passive::PassiveState;
use crate::persistence::{TemplateKey, Templates};
use crate::scheduler::{PickRequest, RealState, Scheduler, SchedulerParams, new_scheduler};
use crate::time::Timestamp;
use std::collections::HashMap;
use std::net::SocketAddr;

/// A stable handle on a real of one service (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RealId(pub u32);

/// What a connection holds on to, to be passed back to the accounting calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnRef {
    /// The real the connection goes to.
    pub real: RealId,
    /// The persistence template it was opened through, if the service is persistent.
    pub template: Option<TemplateKey>,
}

/// The outcome of [`ServiceRuntime::schedule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheduled {
    /// Real and template, for the accounting calls.
    pub conn: ConnRef,
    /// Position of the real in the list given to [`ServiceRuntime::set_reals`].
    pub index: usize,
    /// The real's address.
    pub addr: SocketAddr,
    /// The real came from an existing persistence template, not from the scheduler.
    pub from_template: bool,
    /// The engine must report a successful connect ([`ServiceRuntime::connect_succeeded`]):
    /// the real has failures counted, or this connection is its probe.
    pub report: bool,
    /// This connection is the real's probe (it was on probation): the real is out until the
    /// engine reports the outcome, or [`ServiceRuntime::probe_abandoned`] if the connect never
    /// went out.
    pub probe: bool,
    /// Every real was out (passive failure detection): they were brought back in for this pick.
    pub all_out: bool,
}

/// What a failed connect did ([`ServiceRuntime::connect_failed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailOutcome {
    /// The real was taken out (after `max_fails` failures, or its probe failed).
    pub taken_out: bool,
    /// It would have been taken out, but it is the last real that can take a connection.
    pub kept_last: bool,
}

/// Why no real could be scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The service has no reals.
    #[error("service has no real servers")]
    NoReals,
    /// Every real has weight 0 or is overloaded.
    #[error("no real server available (all have weight 0 or are overloaded)")]
    NoneAvailable,
}

/// A bad argument to [`ServiceRuntime::set_reals`]; the runtime is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// The same address appears twice.
    #[error("real server {0} given twice")]
    DuplicateReal(SocketAddr),
}

/// A real's counters, as reported by [`ServiceRuntime::real_info`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RealInfo {
    /// Its id.
    pub id: RealId,
    /// Its configuration.
    pub server: RealServer,
    /// Active connections.
    pub active: u32,
    /// Inactive connections.
    pub inactive: u32,
    /// Persistence templates bound to it.
    pub persistent: u32,
    /// Over its upper threshold and not yet back under the lower one.
    pub overloaded: bool,
    /// Removed from the service, kept until its last connection closes.
    pub removed: bool,
    /// Out (passive failure detection) until this time; `None`: scheduled.
    pub passive_out_until: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    /// In the service, at this position of the scheduler's slice.
    Live(usize),
    /// Removed, with connections still open.
    Tombstone,
    /// Unused; may be reused by a new real.
    Free,
}

#[derive(Debug, Clone)]
struct Slot {
    server: RealServer,
    active: u32,
    inactive: u32,
    persistent: u32,
    overloaded: bool,
    state: SlotState,
    passive: PassiveState,
}

impl Slot {
    fn total(&self) -> u32 {
        self.active.saturating_add(self.inactive)
    }

    /// Whether it could take a connection were it not passively out: a weight (so up, enabled
    /// and not drained) and not overloaded.
    fn could_take(&self) -> bool {
        !self.overloaded && self.server.effective_weight() > 0
    }

    /// The weight the scheduler sees: the effective weight, 0 while passively out.
    fn scheduled_weight(&self) -> u32 {
        match self.passive.is_out() {
            true => 0,
            false => self.server.effective_weight(),
        }
    }
}

/// The runtime state of one virtual service (see the module docs).
#[derive(Debug)]
pub struct ServiceRuntime {
    options: ServiceOptions,
    params: SchedulerParams,
    scheduler: Box<dyn Scheduler>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_addr: HashMap<SocketAddr, u32>,
    /// The scheduler's view of the live reals, in configuration order.
    states: Vec<RealState>,
    /// Slot of each live real, parallel to `states`.
    live: Vec<u32>,
    templates: Option<Templates>,
    /// Retries that needed a scheduler rebuild ([`ServiceRuntime::retry_rebuilds`]).
    rebuilds: u64,
    /// Every scheduler rebuild ([`ServiceRuntime::scheduler_rebuilds`]).
    all_rebuilds: u64,
    /// The earliest time a real that is out comes back (`None`: none is out).
    passive_due: Option<Timestamp>,
}

impl ServiceRuntime {
    /// A service with no reals. `params.flags` is replaced by `options.flags`.
    pub fn new(options: ServiceOptions, params: SchedulerParams) -> Self {
        let params = SchedulerParams {
            flags: options.flags,
            ..params
        };
        ServiceRuntime {
            options,
            params,
            scheduler: new_scheduler(options.scheduler, params),
            slots: Vec::new(),
            free: Vec::new(),
            by_addr: HashMap::new(),
            states: Vec::new(),
            live: Vec::new(),
            templates: options.persistence.map(Templates::new),
            rebuilds: 0,
            all_rebuilds: 0,
            passive_due: None,
        }
    }

    /// The service's options.
    pub fn options(&self) -> &ServiceOptions {
        &self.options
    }

    /// Change the options: a new scheduler (kind or flags changed) is built over the same reals;
    /// a change of persistence drops every template.
    pub fn set_options(&mut self, options: ServiceOptions) {
        let old = std::mem::replace(&mut self.options, options);
        if old.scheduler != options.scheduler || old.flags != options.flags {
            self.params.flags = options.flags;
            self.scheduler = new_scheduler(options.scheduler, self.params);
            self.rebuild_scheduler();
        }
        if options.proxy.max_fails == 0 && old.proxy.max_fails != 0 {
            // Turned off: every real that is out comes back.
            self.passive_all_in(|_| PassiveState::In);
        }
        if old.persistence != options.persistence {
            for s in &mut self.slots {
                s.persistent = 0;
            }
            self.templates = options.persistence.map(Templates::new);
            self.free_idle_tombstones();
        }
    }

    /// Replace the reals. Reals that stay (same address) keep their id and counts; removed reals
    /// with open connections become tombstones; the scheduler is rebuilt.
    pub fn set_reals(&mut self, reals: &[RealServer]) -> Result<(), RuntimeError> {
        let mut seen = std::collections::HashSet::with_capacity(reals.len());
        if let Some(dup) = reals.iter().find(|r| !seen.insert(r.addr)) {
            return Err(RuntimeError::DuplicateReal(dup.addr));
        }
        // Everything currently live becomes a tombstone unless it is in the new list.
        for &slot in &self.live {
            self.slots[slot as usize].state = SlotState::Tombstone;
        }
        self.live.clear();
        self.states.clear();
        for (pos, r) in reals.iter().enumerate() {
            let slot = match self.by_addr.get(&r.addr) {
                Some(&s) => s,
                None => self.alloc_slot(*r),
            };
            let s = &mut self.slots[slot as usize];
            // The checkers saw the real come back: that is newer evidence than the failed
            // connects that took it out (passive detection), which would keep it out for the
            // rest of fail_timeout.
            if s.server.health == Health::Down && r.health == Health::Up {
                s.passive = PassiveState::In;
            }
            s.server = *r;
            s.state = SlotState::Live(pos);
            s.overloaded = r.next_overload(s.overloaded, s.total());
            self.live.push(slot);
            self.states.push(RealState {
                addr: r.addr,
                weight: s.scheduled_weight(),
                active: s.active,
                inactive: s.inactive,
                overloaded: s.overloaded,
            });
        }
        self.free_idle_tombstones();
        self.rebuild_scheduler();
        self.passive_due = self
            .live_slots()
            .filter_map(|s| s.passive.out_until())
            .min();
        Ok(())
    }

    /// Pick a real for a new connection: the client's persistence template if it has a usable
    /// one (its real still in the service, weight above 0, not overloaded), else the scheduler
    /// (and the template is bound to the scheduler's pick).
    pub fn schedule(&mut self, req: &PickRequest) -> Result<Scheduled, ScheduleError> {
        self.schedule_avoiding(req, &[])
    }

    /// [`ServiceRuntime::schedule`] again after connects to the reals at `avoid` failed: those
    /// reals are unavailable for this pick only (a persistence template naming one is rebound).
    /// A scheduler that can pick from its current state does ([`Scheduler::pick_again`]: mh,
    /// whose rebuild means two 65,537-slot tables); the others are rebuilt with those reals at
    /// weight 0, and back (microseconds).
    pub fn schedule_again(
        &mut self,
        req: &PickRequest,
        avoid: &[SocketAddr],
    ) -> Result<Scheduled, ScheduleError> {
        self.schedule_avoiding(req, avoid)
    }

    fn schedule_avoiding(
        &mut self,
        req: &PickRequest,
        avoid: &[SocketAddr],
    ) -> Result<Scheduled, ScheduleError> {
        if self.states.is_empty() {
            return Err(ScheduleError::NoReals);
        }
        if self.passive_due.is_some_and(|due| req.now >= due) {
            self.passive_tick(req.now);
        }
        let key = self.templates.as_ref().map(|t| t.key_of(req.client.ip()));
        if let (Some(t), Some(key)) = (&mut self.templates, key)
            && let Some(slot) = t.get(key).and_then(|t| t.real)
            && let SlotState::Live(pos) = self.slots[slot as usize].state
            && !self.slots[slot as usize].server.is_down()
            && !self.slots[slot as usize].passive.is_out()
            && !avoid.contains(&self.states[pos].addr)
        {
            t.bind(key, slot, req.now);
            return Ok(self.passive_picked(pos, Some(key), true, false, req.now));
        }
        let (pos, all_out) = match self.pick(req, avoid) {
            Some(pos) => (pos, false),
            // Every real that could take it is out: they come back in.
            None if avoid.is_empty() && self.passive_due.is_some() => {
                self.passive_all_in(|_| PassiveState::Probation);
                let pos = self.pick(req, avoid).ok_or(ScheduleError::NoneAvailable)?;
                (pos, true)
            }
            // A retry with no real left but those out: one of them (out the longest, not
            // failed for this connection) is this connection's probe, or if it is being
            // probed already, this connection goes there too. Out is a guess from
            // earlier connects, turning the client away is certain (a rolling restart: one
            // real restarted and is out for fail_timeout, then the last one in restarts).
            // Out to probing without coming in: no scheduler rebuild, so a client flood while
            // every real is down costs one extra connect per client, not two rebuilds.
            None if !avoid.is_empty() => {
                let pos = self
                    .out_for_retry(avoid)
                    .ok_or(ScheduleError::NoneAvailable)?;
                let s = &mut self.slots[self.live[pos] as usize];
                if matches!(s.passive, PassiveState::Out { .. }) {
                    s.passive = PassiveState::Probation;
                }
                (pos, true)
            }
            None => return Err(ScheduleError::NoneAvailable),
        };
        let slot = self.live[pos];
        if let (Some(t), Some(key)) = (&mut self.templates, key) {
            let had = t.get(key).and_then(|t| t.real);
            if had != Some(slot) {
                if let Some(old) = had {
                    let p = &mut self.slots[old as usize].persistent;
                    *p = p.saturating_sub(1);
                }
                self.slots[slot as usize].persistent += 1;
            }
            t.bind(key, slot, req.now);
        }
        Ok(self.passive_picked(pos, key, false, all_out, req.now))
    }

    /// The live real (position) a retry may try when none is left in: passively out or
    /// being probed (another client's retry may be that probe: this one is not turned away
    /// while it runs), not at `avoid`, up, not overloaded and with a weight; the one whose
    /// out time ends first (out the longest).
    fn out_for_retry(&self, avoid: &[SocketAddr]) -> Option<usize> {
        (0..self.live.len())
            .filter_map(|pos| {
                let s = &self.slots[self.live[pos] as usize];
                match s.passive {
                    PassiveState::Out { until } | PassiveState::Probing { until }
                        if !avoid.contains(&self.states[pos].addr) && s.could_take() =>
                    {
                        Some((until, pos))
                    }
                    _ => None,
                }
            })
            .min()
            .map(|(_, pos)| pos)
    }

    /// The scheduler's pick, none of `avoid` (see [`ServiceRuntime::schedule_again`]).
    fn pick(&mut self, req: &PickRequest, avoid: &[SocketAddr]) -> Option<usize> {
        let n = self.states.len();
        if avoid.is_empty() {
            return self.scheduler.pick(&self.states, req).filter(|&p| p < n);
        }
        let fits = |p: &usize| *p < n && !avoid.contains(&self.states[*p].addr);
        let mut masked = self.states.clone();
        for s in masked.iter_mut().filter(|s| avoid.contains(&s.addr)) {
            s.overloaded = true;
        }
        if let Some(p) = self.scheduler.pick_again(&masked, req).filter(fits) {
            return Some(p);
        }
        if !masked.iter().any(RealState::available) {
            return None;
        }
        for s in masked.iter_mut().filter(|s| avoid.contains(&s.addr)) {
            s.weight = 0;
        }
        self.rebuilds += 1;
        self.all_rebuilds += 1;
        self.scheduler.rebuild(&masked);
        let p = self.scheduler.pick(&masked, req).filter(fits);
        self.rebuild_scheduler();
        p
    }

    /// Rebuilds the scheduler over the live reals, counted.
    fn rebuild_scheduler(&mut self) {
        self.all_rebuilds += 1;
        self.scheduler.rebuild(&self.states);
    }

    /// How often the scheduler was rebuilt, for any reason (diagnostics, tests: a rebuild of
    /// mh costs milliseconds under the service's lock).
    pub fn scheduler_rebuilds(&self) -> u64 {
        self.all_rebuilds
    }

    /// How often a retry rebuilt the scheduler (diagnostics, tests).
    pub fn retry_rebuilds(&self) -> u64 {
        self.rebuilds
    }

    /// A connection scheduled to `c.real` now exists, active (TCP ESTABLISHED) or not.
    pub fn conn_opened(&mut self, c: ConnRef, active: bool, now: Timestamp) {
        if let (Some(t), Some(key)) = (&mut self.templates, c.template) {
            t.opened(key, now);
        }
        self.adjust(c.real, |s| {
            if active {
                s.active = s.active.saturating_add(1)
            } else {
                s.inactive = s.inactive.saturating_add(1)
            }
        });
    }

    /// A connection of `real` moved between active and inactive.
    pub fn conn_changed(&mut self, real: RealId, was_active: bool, is_active: bool) {
        if was_active == is_active {
            return;
        }
        self.adjust(real, |s| {
            if was_active {
                s.active = s.active.saturating_sub(1);
                s.inactive = s.inactive.saturating_add(1);
            } else {
                s.inactive = s.inactive.saturating_sub(1);
                s.active = s.active.saturating_add(1);
            }
        });
    }

    /// A connection went away; its template (if any) lives `timeout` more.
    pub fn conn_closed(&mut self, c: ConnRef, was_active: bool, now: Timestamp) {
        if let (Some(t), Some(key)) = (&mut self.templates, c.template) {
            t.closed(key, now);
        }
        self.adjust(c.real, |s| {
            if was_active {
                s.active = s.active.saturating_sub(1)
            } else {
                s.inactive = s.inactive.saturating_sub(1)
            }
        });
        if let Some(s) = self.slot_mut(c.real)
            && s.state == SlotState::Tombstone
            && s.total() == 0
        {
            self.release(c.real.0);
        }
    }

    /// Drop persistence templates that expired at `now`; returns how many were dropped.
    pub fn expire(&mut self, now: Timestamp) -> usize {
        let Some(t) = &mut self.templates else {
            return 0;
        };
        let gone = t.expire(now);
        for (_, real) in &gone {
            if let Some(r) = real {
                let s = &mut self.slots[*r as usize];
                s.persistent = s.persistent.saturating_sub(1);
            }
        }
        gone.len()
    }

    /// The scheduler's view of the live reals, in configuration order.
    pub fn states(&self) -> &[RealState] {
        &self.states
    }

    /// Id of the live real at `index` of the configuration order.
    pub fn id_at(&self, index: usize) -> Option<RealId> {
        self.live.get(index).map(|&s| RealId(s))
    }

    /// Id of the real (live or tombstone) with this address.
    pub fn id_of(&self, addr: SocketAddr) -> Option<RealId> {
        self.by_addr.get(&addr).map(|&s| RealId(s))
    }

    /// Configuration and counters of a real, live or tombstone.
    pub fn real_info(&self, id: RealId) -> Option<RealInfo> {
        let s = self.slots.get(id.0 as usize)?;
        (s.state != SlotState::Free).then_some(RealInfo {
            id,
            server: s.server,
            active: s.active,
            inactive: s.inactive,
            persistent: s.persistent,
            overloaded: s.overloaded,
            removed: s.state == SlotState::Tombstone,
            passive_out_until: s.passive.out_until(),
        })
    }

    /// Every live real in configuration order, then every tombstone.
    pub fn reals(&self) -> impl Iterator<Item = RealInfo> + '_ {
        let live = self.live.iter().map(|&s| RealId(s));
        let dead = (0..self.slots.len() as u32)
            .filter(|&s| self.slots[s as usize].state == SlotState::Tombstone)
            .map(RealId);
        live.chain(dead).filter_map(|id| self.real_info(id))
    }

    /// Persistence templates bound to `real`.
    pub fn persistent_conns(&self, real: RealId) -> u32 {
        self.slot(real).map_or(0, |s| s.persistent)
    }

    /// Persistence templates, for listings (`ipvsadm -Lnc` shows them as `NONE`): the client
    /// group (client address masked with the persistence prefix), the real it is bound to
    /// (`None` once that real was removed), the connections open through it, and when it
    /// expires if it has none by then.
    pub fn templates(
        &self,
    ) -> impl Iterator<Item = (std::net::IpAddr, Option<SocketAddr>, u32, Timestamp)> + '_ {
        self.templates
            .iter()
            .flat_map(|t| t.iter())
            .map(|(key, t)| {
                let real = t
                    .real
                    .and_then(|s| self.slot(RealId(s)))
                    .map(|s| s.server.addr);
                (key.0, real, t.conns, t.expires)
            })
    }

    /// Number of persistence templates (expired-but-not-yet-swept ones included).
    pub fn template_count(&self) -> usize {
        self.templates.as_ref().map_or(0, |t| t.len())
    }

    fn slot(&self, id: RealId) -> Option<&Slot> {
        self.slots
            .get(id.0 as usize)
            .filter(|s| s.state != SlotState::Free)
    }

    fn slot_mut(&mut self, id: RealId) -> Option<&mut Slot> {
        self.slots
            .get_mut(id.0 as usize)
            .filter(|s| s.state != SlotState::Free)
    }

    /// Change a real's counts, then its overload flag, and tell the scheduler.
    fn adjust(&mut self, id: RealId, f: impl FnOnce(&mut Slot)) {
        let Some(s) = self.slot_mut(id) else { return };
        f(s);
        let was = s.overloaded;
        s.overloaded = s.server.next_overload(was, s.total());
        let (active, inactive, overloaded) = (s.active, s.inactive, s.overloaded);
        if let SlotState::Live(pos) = s.state {
            let st = &mut self.states[pos];
            st.active = active;
            st.inactive = inactive;
            st.overloaded = overloaded;
            if was != overloaded {
                self.rebuild_scheduler();
            } else {
                self.scheduler.counts_changed(&self.states, pos);
            }
        }
    }

    fn alloc_slot(&mut self, server: RealServer) -> u32 {
        let slot = Slot {
            server,
            active: 0,
            inactive: 0,
            persistent: 0,
            overloaded: false,
            state: SlotState::Free,
            passive: PassiveState::In,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = slot;
                id
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.by_addr.insert(server.addr, id);
        id
    }

    /// Free tombstones with no open connections. Templates bound to a freed real are unbound
    /// (they are rebound on the client's next schedule).
    fn free_idle_tombstones(&mut self) {
        for id in 0..self.slots.len() as u32 {
            let s = &self.slots[id as usize];
            if s.state == SlotState::Tombstone && s.total() == 0 {
                self.release(id);
            }
        }
    }

    fn release(&mut self, id: u32) {
        if let Some(t) = &mut self.templates {
            t.unbind_real(id);
        }
        let s = &mut self.slots[id as usize];
        s.state = SlotState::Free;
        s.persistent = 0;
        self.by_addr.remove(&s.server.addr);
        self.free.push(id);
    }
}

mod passive;
#[cfg(test)]
mod passive_tests;
#[cfg(test)]
mod tests;
