//! One virtual service as the workers share it: its options, its reals and its scheduler.
//!
//! Scheduling takes the service's mutex for the length of one `pick` (no IO under it). Counts
//! are kept lock-free on each [`RealShared`] by the connections themselves; before a pick the
//! scheduler's view is refreshed from them and the `-x`/`-y` overload flags are recomputed with
//! the core's [`next_overload`](rvs_core::model::real::next_overload) rule.

use crate::real::RealShared;
use crate::stats::AtomicCounters;
use rvs_core::scheduler::{PickRequest, RealState, Scheduler, SchedulerParams, new_scheduler};
use rvs_core::{Protocol, RealServer, ServiceKey, ServiceOptions, Timestamp};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

/// A service shared by the control thread and the workers.
#[derive(Debug)]
pub struct ServiceShared {
    pub key: ServiceKey,
    pub protocol: Protocol,
    pub vaddr: SocketAddr,
    pub counters: AtomicCounters,
    /// `-o`, readable without the lock (UDP checks it per datagram).
    one_packet: AtomicBool,
    inner: Mutex<Balancer>,
}

/// The scheduling state of a service.
#[derive(Debug)]
struct Balancer {
    options: ServiceOptions,
    configs: Vec<RealServer>,
    reals: Vec<Arc<RealShared>>,
    states: Vec<RealState>,
    scheduler: Box<dyn Scheduler>,
}

/// A real picked for a new connection, with the service options in force at that moment.
#[derive(Debug, Clone)]
pub struct Picked {
    pub real: Arc<RealShared>,
    pub options: ServiceOptions,
}

fn make_scheduler(options: &ServiceOptions) -> Box<dyn Scheduler> {
    let params = SchedulerParams {
        flags: options.flags,
        ..SchedulerParams::default()
    };
    new_scheduler(options.scheduler, params)
}

impl ServiceShared {
    pub fn new(
        key: ServiceKey,
        protocol: Protocol,
        vaddr: SocketAddr,
        options: ServiceOptions,
    ) -> Self {
        ServiceShared {
            key,
            protocol,
            vaddr,
            counters: AtomicCounters::default(),
            one_packet: AtomicBool::new(options.one_packet),
            inner: Mutex::new(Balancer {
                options,
                configs: Vec::new(),
                reals: Vec::new(),
                states: Vec::new(),
                scheduler: make_scheduler(&options),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Balancer> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Current options.
    pub fn options(&self) -> ServiceOptions {
        self.lock().options
    }

    /// One-packet scheduling (`-o`).
    pub fn one_packet(&self) -> bool {
        self.one_packet.load(Relaxed)
    }

    /// `-E`: new options (a new scheduler if it changed).
    pub fn set_options(&self, options: ServiceOptions) {
        let mut b = self.lock();
        if b.options.scheduler != options.scheduler || b.options.flags != options.flags {
            b.scheduler = make_scheduler(&options);
        }
        b.options = options;
        self.one_packet.store(options.one_packet, Relaxed);
        b.rebuild();
    }

    /// `-a`, or `-e` for a real that exists. Returns false if `-e` found no such real.
    pub fn upsert_real(&self, cfg: RealServer, must_exist: bool) -> bool {
        let mut b = self.lock();
        match b.configs.iter().position(|c| c.addr == cfg.addr) {
            Some(i) => {
                b.reals[i].set_proxy_protocol(cfg.proxy_protocol);
                b.configs[i] = cfg;
                b.states[i].weight = cfg.effective_weight();
            }
            None if must_exist => return false,
            None => {
                b.reals
                    .push(Arc::new(RealShared::new(cfg.addr, cfg.proxy_protocol)));
                b.states
                    .push(RealState::new(cfg.addr, cfg.effective_weight()));
                b.configs.push(cfg);
            }
        }
        b.rebuild();
        true
    }

    /// `-d`: removes a real (its connections keep running) and returns it.
    pub fn remove_real(&self, addr: SocketAddr) -> Option<Arc<RealShared>> {
        let mut b = self.lock();
        let i = b.configs.iter().position(|c| c.addr == addr)?;
        b.configs.remove(i);
        b.states.remove(i);
        let real = b.reals.remove(i);
        b.rebuild();
        Some(real)
    }

    /// The reals currently in the service.
    pub fn reals(&self) -> Vec<Arc<RealShared>> {
        self.lock().reals.clone()
    }

    /// Picks a real for a new connection from `client`, skipping the reals in `exclude` (those
    /// that already failed to connect for this client).
    pub fn pick(
        &self,
        client: SocketAddr,
        now: Timestamp,
        exclude: &[SocketAddr],
    ) -> Option<Picked> {
        let mut b = self.lock();
        b.refresh_counts();
        let req = PickRequest {
            protocol: self.protocol,
            client,
            dest: self.vaddr,
            now,
        };
        let idx = if exclude.is_empty() {
            b.pick(&req)
        } else {
            b.pick_excluding(&req, exclude)
        }?;
        Some(Picked {
            real: Arc::clone(&b.reals[idx]),
            options: b.options,
        })
    }
}

impl Balancer {
    fn rebuild(&mut self) {
        let Balancer {
            scheduler, states, ..
        } = self;
        scheduler.rebuild(states);
    }

    /// Copies the live counts into the scheduler's view; recomputes overload flags.
    fn refresh_counts(&mut self) {
        let mut overload_changed = false;
        for i in 0..self.reals.len() {
            let (active, inactive) = (self.reals[i].active(), self.reals[i].inactive());
            let st = &mut self.states[i];
            if st.active == active && st.inactive == inactive {
                continue;
            }
            st.active = active;
            st.inactive = inactive;
            let over = self.configs[i].next_overload(st.overloaded, active + inactive);
            if over != st.overloaded {
                st.overloaded = over;
                overload_changed = true;
            } else if !overload_changed {
                self.scheduler.counts_changed(&self.states, i);
            }
        }
        if overload_changed {
            self.rebuild();
        }
    }

    fn pick(&mut self, req: &PickRequest) -> Option<usize> {
        let idx = self.scheduler.pick(&self.states, req)?;
        // Defence in depth: never hand out a real the scheduler should not have picked.
        self.states.get(idx).filter(|s| s.available()).map(|_| idx)
    }

    /// A pick with some reals masked as overloaded (the retry path only: costs two rebuilds).
    fn pick_excluding(&mut self, req: &PickRequest, exclude: &[SocketAddr]) -> Option<usize> {
        let saved: Vec<bool> = self.states.iter().map(|s| s.overloaded).collect();
        for s in self.states.iter_mut().filter(|s| exclude.contains(&s.addr)) {
            s.overloaded = true;
        }
        self.rebuild();
        let idx = self.pick(req);
        for (s, o) in self.states.iter_mut().zip(saved) {
            s.overloaded = o;
        }
        self.rebuild();
        idx
    }
}
