//! The [`HealthSupervisor`]: one tokio task per checker runs it on the schedule the core state
//! machine ([`rvs_core::health`]) sets, feeds the results back with `now`, carries out the
//! actions it returns (events on a channel, notify commands) and keeps a status per real for
//! listings.

use crate::error::CheckError;
use crate::notify::{notify_command, run_notify, warn_unrunnable};
use crate::run::run_check;
use crate::stats::{Stats, StatsSnapshot};
use crate::syn::TcpProber;
use rvs_config::keepalived::{CheckKind, Checker, VirtualServerHealth};
use rvs_core::health::*;
use rvs_core::model::{ForwardMethod, Health, ServiceKey};
use rvs_core::time::Timestamp;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// A real's observed health changed (or its dynamic weight did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEvent {
    pub service: ServiceKey,
    pub real: SocketAddr,
    pub health: Health,
    /// `misc_dynamic` weight, if a script set one.
    pub dynamic_weight: Option<u32>,
    /// `inhibit_on_failure`: keep the real listed at weight 0 while down instead of removing it.
    pub inhibit: bool,
    /// When `health` took its current value.
    pub since: SystemTime,
    /// Why the last check failed (`None` after a success).
    pub last_error: Option<String>,
}

/// Everything the supervisor reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SupervisorEvent {
    /// A real's health or dynamic weight changed; apply it to the desired state.
    Real(HealthEvent),
    /// Quorum of a service was gained (`up`) or lost.
    Quorum { service: ServiceKey, up: bool },
    /// The service's sorry server should be (`active`) or no longer be in service. With
    /// `inhibit` (`sorry_server_inhibit`) "no longer" means listed at weight 0, not removed, and
    /// such an event also comes at start while quorum is held.
    SorryServer {
        service: ServiceKey,
        addr: SocketAddr,
        active: bool,
        inhibit: bool,
        /// `sorry_server_lvs_method` (`None`: the service's forwarding method).
        method: Option<ForwardMethod>,
    },
}

/// What listings show about a real.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealStatus {
    pub service: ServiceKey,
    pub real: SocketAddr,
    pub health: Health,
    pub dynamic_weight: Option<u32>,
    pub since: SystemTime,
    pub last_error: Option<String>,
}

struct ServiceEntry {
    cfg: VirtualServerHealth,
    state: Mutex<ServiceState>,
}

struct ServiceState {
    machine: ServiceHealth,
    status: BTreeMap<SocketAddr, RealStatus>,
}

struct Shared {
    epoch: Instant,
    tx: mpsc::UnboundedSender<SupervisorEvent>,
    stats: Stats,
    /// How `TCP_CHECK`s run (`None`: the config has none).
    tcp: Option<TcpProber>,
}

impl Shared {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.epoch.elapsed().as_millis() as u64)
    }
}

/// Runs every configured check. Dropping it stops the checks (without `omega` notifications;
/// use [`HealthSupervisor::shutdown`] for those).
pub struct HealthSupervisor {
    shared: Arc<Shared>,
    services: Vec<Arc<ServiceEntry>>,
    tasks: JoinSet<()>,
}

fn lock(entry: &ServiceEntry) -> MutexGuard<'_, ServiceState> {
    // a panicking checker task must not take the others down with it
    entry.state.lock().unwrap_or_else(|p| p.into_inner())
}

/// A cheap pseudo-random number (warmup offsets need spread, not quality).
fn jitter(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn thresholds(c: &Checker) -> CheckThresholds {
    CheckThresholds {
        delay_loop: c.delay_loop,
        retry: c.retry,
        delay_before_retry: c.delay_before_retry,
        alpha: c.alpha,
    }
}

impl HealthSupervisor {
    /// Start checking. Must be called inside a tokio runtime. The initial state of every real
    /// (up, or down with `alpha`) is sent on the channel at once. `TCP_CHECK`s use the SYN
    /// prober if permitted ([`TcpProber::from_env`]).
    pub fn start(
        services: &[VirtualServerHealth],
    ) -> (HealthSupervisor, mpsc::UnboundedReceiver<SupervisorEvent>) {
        let tcp = has_tcp_check(services).then(TcpProber::from_env);
        Self::start_with(services, tcp)
    }

    /// [`HealthSupervisor::start`] with a given `TCP_CHECK` prober (shared by several
    /// supervisors, or chosen by the caller); `None` makes `TCP_CHECK`s connect per check.
    ///
    /// This is a start from nothing (the daemon starting): as in keepalived, until a checker
    /// has had a first success, one failure is enough to take its real down (keepalived starts
    /// its checkers with their retries spent); `retry` counts from the first success on.
    pub fn start_with(
        services: &[VirtualServerHealth],
        tcp: Option<TcpProber>,
    ) -> (HealthSupervisor, mpsc::UnboundedReceiver<SupervisorEvent>) {
        Self::start_inner(services, tcp, &[], true)
    }

    /// [`HealthSupervisor::start_with`], the reals in `carried` starting from the verdict given
    /// there (up or down, since when, why) instead of up (down with `alpha`): a reload that
    /// restarts a virtual server's checks carries over the verdicts of the reals whose checkers
    /// did not change, as keepalived migrates its checkers (a down real is not put back in
    /// service by a reload; an up one is not taken out by `alpha`). A seeded real stays as it
    /// is until a check says otherwise: a down one comes up at its first success.
    ///
    /// Unlike [`HealthSupervisor::start_with`] this is a restart (a reload): every checker
    /// retries as configured from its first check on, as keepalived's new checkers do on a
    /// reload.
    pub fn start_seeded(
        services: &[VirtualServerHealth],
        tcp: Option<TcpProber>,
        carried: &[RealStatus],
    ) -> (HealthSupervisor, mpsc::UnboundedReceiver<SupervisorEvent>) {
        Self::start_inner(services, tcp, carried, false)
    }

    fn start_inner(
        services: &[VirtualServerHealth],
        tcp: Option<TcpProber>,
        carried: &[RealStatus],
        fresh: bool,
    ) -> (HealthSupervisor, mpsc::UnboundedReceiver<SupervisorEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            epoch: Instant::now(),
            tx,
            stats: Stats::default(),
            tcp,
        });
        let mut sup = HealthSupervisor {
            shared: shared.clone(),
            services: Vec::new(),
            tasks: JoinSet::new(),
        };
        let now = shared.now();
        let wall = SystemTime::now();
        let seed = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        for (si, cfg) in services.iter().enumerate() {
            let seeded = |addr: SocketAddr| {
                carried.iter().find(|s| {
                    s.service == cfg.service && s.real == addr && s.health != Health::Unknown
                })
            };
            let reals = cfg
                .reals
                .iter()
                .enumerate()
                .map(|(ri, r)| {
                    let seeded_down = seeded(r.addr).map(|s| s.health == Health::Down);
                    // keepalived starts a checker with its retries spent when the daemon
                    // starts: one failure before a first success decides
                    let spent = fresh && seeded(r.addr).is_none();
                    let checkers = r
                        .checkers
                        .iter()
                        .enumerate()
                        .map(|(ci, c)| {
                            let max = c.warmup.as_millis() as u64;
                            let r =
                                jitter(seed ^ ((si as u64) << 40) ^ ((ri as u64) << 8) ^ ci as u64);
                            let offset = if max == 0 { 0 } else { r % (max + 1) };
                            let mut t = thresholds(c);
                            // `alpha` only sets where a checker starts: down, until a success
                            t.alpha = seeded_down.unwrap_or(t.alpha);
                            let m = CheckerMachine::new(t, now, Duration::from_millis(offset));
                            if spent { m.with_retries_spent() } else { m }
                        })
                        .collect();
                    RealHealth::new(r.addr, r.weight, r.inhibit_on_failure, checkers)
                })
                .collect();
            let thresholds = ServiceThresholds {
                quorum: cfg.quorum,
                hysteresis: cfg.hysteresis,
                has_sorry_server: cfg.sorry_server.is_some(),
                sorry_server_inhibit: cfg.sorry_server_inhibit,
                omega: cfg.omega,
            };
            let machine = ServiceHealth::new(thresholds, reals);
            let status = cfg
                .reals
                .iter()
                .map(|r| {
                    let health = machine.real(&r.addr).map_or(Health::Unknown, |m| {
                        if m.is_up() { Health::Up } else { Health::Down }
                    });
                    let before = seeded(r.addr);
                    let st = RealStatus {
                        service: cfg.service,
                        real: r.addr,
                        health,
                        // a carried misc_dynamic weight stays until the script says otherwise
                        dynamic_weight: before.and_then(|s| s.dynamic_weight),
                        since: before.map_or(wall, |s| s.since),
                        last_error: before.and_then(|s| s.last_error.clone()),
                    };
                    (r.addr, st)
                })
                .collect();
            let start = machine.start();
            warn_unrunnable(cfg);
            let entry = Arc::new(ServiceEntry {
                cfg: cfg.clone(),
                state: Mutex::new(ServiceState { machine, status }),
            });
            apply(&shared, &entry, start, true);
            for r in &cfg.reals {
                for (ci, c) in r.checkers.iter().enumerate() {
                    let task = CheckerTask {
                        shared: shared.clone(),
                        entry: entry.clone(),
                        real: r.addr,
                        weight: r.weight,
                        index: ci,
                        checker: c.clone(),
                        alpha_unrun: c.alpha && seeded(r.addr).is_none(),
                    };
                    sup.tasks.spawn(task.run());
                }
            }
            sup.services.push(entry);
        }
        (sup, rx)
    }

    /// The status of every real, for listings and the API.
    pub fn status(&self) -> Vec<RealStatus> {
        self.services
            .iter()
            .flat_map(|e| lock(e).status.values().cloned().collect::<Vec<_>>())
            .collect()
    }

    /// Counters and lateness so far.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// How `TCP_CHECK`s run (`None`: no `TCP_CHECK` configured).
    pub fn tcp_prober(&self) -> Option<&TcpProber> {
        self.shared.tcp.as_ref()
    }

    /// Forget the lateness recorded so far.
    pub fn reset_lateness(&self) {
        self.shared.stats.reset_lateness();
    }

    /// Stop every check, then run the `omega` notifications and wait for them.
    pub async fn shutdown(mut self) {
        self.tasks.shutdown().await;
        let mut notifies = JoinSet::new();
        for e in &self.services {
            let actions = lock(e).machine.stop();
            for a in actions {
                if let HealthAction::Notify { real, event } = a
                    && let Some(cmd) = notify_command(&e.cfg, real, event)
                {
                    notifies.spawn(run_notify(cmd));
                }
            }
        }
        while notifies.join_next().await.is_some() {}
    }
}

/// One checker of one real, looping forever.
struct CheckerTask {
    shared: Arc<Shared>,
    entry: Arc<ServiceEntry>,
    real: SocketAddr,
    /// The real's configured `weight`.
    weight: u32,
    index: usize,
    checker: Checker,
    /// An `alpha` checker that has not run yet: its first failure runs `notify_down`.
    alpha_unrun: bool,
}

impl CheckerTask {
    fn next_due(&self) -> Option<Timestamp> {
        let st = lock(&self.entry);
        st.machine
            .real(&self.real)?
            .checkers()
            .get(self.index)
            .map(CheckerMachine::next_due)
    }

    async fn run(mut self) {
        let vhost = self.entry.cfg.virtualhost.clone();
        let Some(first) = self.next_due() else { return };
        let mut due = self.shared.epoch + Duration::from_millis(first.as_millis());
        let mut seq: u16 = jitter(self.real.port() as u64 ^ self.index as u64) as u16;
        loop {
            tokio::time::sleep_until(due.into()).await;
            self.shared
                .stats
                .record_start(Instant::now().saturating_duration_since(due));
            seq = seq.wrapping_add(1);
            let started = Instant::now();
            let result = match (&self.checker.kind, &self.shared.tcp) {
                (CheckKind::Tcp, Some(tcp)) => tcp
                    .check(&self.checker, self.checker.target(self.real))
                    .await
                    .map(|_| None),
                _ => run_check(&self.checker, self.real, vhost.as_deref(), seq).await,
            };
            let result = match (&self.checker.kind, result) {
                // keepalived: with misc_dynamic, exit 0 puts the configured weight back
                (CheckKind::Misc(m), Ok(None)) if m.dynamic => Ok(Some(self.weight)),
                (_, r) => r,
            };
            let finished = Instant::now();
            self.shared.stats.record_result(result.is_ok());
            let delay = self.feed(result);
            // keepalived times a MISC_CHECK's next run from the start of the last one (its
            // script may take a while); the other checkers from the end of the check
            due = match self.checker.kind {
                CheckKind::Misc(_) => (started + delay).max(finished),
                _ => finished + delay,
            };
        }
    }

    /// Feed a result to the state machine, carry out the actions; returns the time until the
    /// next check.
    fn feed(&mut self, result: Result<Option<u32>, CheckError>) -> Duration {
        let now = self.shared.now();
        let (outcome, error) = match result {
            Ok(dynamic_weight) => (CheckOutcome::Success { dynamic_weight }, None),
            Err(e) => (CheckOutcome::Failure, Some(e.to_string())),
        };
        let (actions, next) = {
            let mut st = lock(&self.entry);
            let mut actions = Vec::new();
            actions.extend(st.machine.on_result(now, self.real, self.index, outcome));
            // keepalived: the first run of an alpha checker that fails announces the real
            // down (it started down unannounced)
            if std::mem::take(&mut self.alpha_unrun)
                && outcome == CheckOutcome::Failure
                && st.machine.real(&self.real).is_some_and(|r| !r.is_up())
            {
                actions.push(HealthAction::Notify {
                    real: Some(self.real),
                    event: NotifyEvent::RealDown,
                });
            }
            if let Some(s) = st.status.get_mut(&self.real) {
                s.last_error = error;
            }
            let next = st
                .machine
                .real(&self.real)
                .and_then(|r| r.checkers().get(self.index))
                .map_or(self.checker.delay_loop, |c| {
                    c.next_due().saturating_since(now)
                });
            (actions, next)
        };
        if !actions.is_empty() {
            apply(&self.shared, &self.entry, actions, false);
        }
        next
    }
}

/// Whether any checker of `services` is a `TCP_CHECK`.
pub fn has_tcp_check(services: &[VirtualServerHealth]) -> bool {
    services
        .iter()
        .flat_map(|s| &s.reals)
        .flat_map(|r| &r.checkers)
        .any(|c| matches!(c.kind, CheckKind::Tcp))
}

/// Carry out the state machine's actions for one service.
fn apply(shared: &Shared, entry: &ServiceEntry, actions: Vec<HealthAction>, initial: bool) {
    let service = entry.cfg.service;
    let mut changed: Vec<SocketAddr> = Vec::new();
    let mut st = lock(entry);
    for action in actions {
        match action {
            HealthAction::SetHealth {
                real,
                health,
                inhibit: _,
            } => {
                if let Some(s) = st.status.get_mut(&real) {
                    if s.health != health {
                        s.since = SystemTime::now();
                    }
                    s.health = health;
                }
                if !initial {
                    shared.stats.record_transition();
                    let why = st
                        .status
                        .get(&real)
                        .and_then(|s| s.last_error.clone())
                        .unwrap_or_default();
                    tracing::info!(%service, %real, ?health, error = %why, "real server health changed");
                }
                changed.push(real);
            }
            HealthAction::SetDynamicWeight { real, weight } => {
                if let Some(s) = st.status.get_mut(&real) {
                    s.dynamic_weight = weight;
                }
                changed.push(real);
            }
            HealthAction::Notify { real, event } => {
                if real.is_none() {
                    let up = event == NotifyEvent::QuorumUp;
                    tracing::warn!(%service, quorum_up = up, "quorum changed");
                    let _ = shared.tx.send(SupervisorEvent::Quorum { service, up });
                }
                if let Some(cmd) = notify_command(&entry.cfg, real, event) {
                    tokio::spawn(run_notify(cmd));
                }
            }
            HealthAction::SorryServer { active, inhibit } => {
                if let Some(addr) = entry.cfg.sorry_server {
                    let _ = shared.tx.send(SupervisorEvent::SorryServer {
                        service,
                        addr,
                        active,
                        inhibit,
                        method: entry.cfg.sorry_server_method,
                    });
                }
            }
        }
    }
    changed.sort();
    changed.dedup();
    for real in changed {
        let Some(s) = st.status.get(&real) else {
            continue;
        };
        let inhibit = entry
            .cfg
            .reals
            .iter()
            .find(|r| r.addr == real)
            .is_some_and(|r| r.inhibit_on_failure);
        let ev = HealthEvent {
            service,
            real,
            health: s.health,
            dynamic_weight: s.dynamic_weight,
            inhibit,
            since: s.since,
            last_error: s.last_error.clone(),
        };
        let _ = shared.tx.send(SupervisorEvent::Real(ev));
    }
    drop(st);
}
