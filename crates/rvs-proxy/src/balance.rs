//! One virtual service as the workers share it: the core's
//! [`ServiceRuntime`] (scheduler, persistence templates,
//! active/inactive accounting, `-x`/`-y` overload, stable real ids) behind one mutex, plus the
//! lock-free per-real counters the relay bumps.
//!
//! The mutex is held for one call into the runtime (no IO under it): once to schedule, then
//! once per accounting event of a connection (opened, established, half-closed, closed).

use crate::real::RealShared;
use crate::stats::AtomicCounters;
use rvs_core::engine::ConnectionInfo;
use rvs_core::runtime::{ConnRef, FailOutcome, RealInfo, ServiceRuntime};
use rvs_core::scheduler::{PickRequest, SchedulerParams};
use rvs_core::{Health, Protocol, RealServer, ServiceKey, ServiceOptions, Timestamp};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// A service shared by the control thread and the workers.
#[derive(Debug)]
pub struct ServiceShared {
    pub key: ServiceKey,
    pub protocol: Protocol,
    pub vaddr: SocketAddr,
    pub counters: AtomicCounters,
    /// `-o`, readable without the lock (UDP checks it per datagram).
    one_packet: AtomicBool,
    /// Set once the service is removed (or the engine stops).
    removed: AtomicBool,
    /// FULLNAT local addresses the connections to the reals leave from (round robin over
    /// those of the real's family; none of it: the host's choice).
    local: Mutex<Vec<std::net::IpAddr>>,
    /// `local` is not empty (read without the lock on every connect).
    has_local: AtomicBool,
    next_local: std::sync::atomic::AtomicUsize,
    inner: Mutex<Balancer>,
}

#[derive(Debug)]
struct Balancer {
    runtime: ServiceRuntime,
    /// Live reals in configuration order (what `set_reals` was last given).
    configs: Vec<RealServer>,
    /// Counters and reset signal of every live real.
    shared: HashMap<SocketAddr, Arc<RealShared>>,
    /// Removed reals whose connections may still run (found again if the real is re-added, so
    /// its counters continue, as its runtime id does).
    removed: Vec<Weak<RealShared>>,
}

/// A real picked for a new connection, with the service options in force at that moment.
#[derive(Debug, Clone)]
pub struct Picked {
    pub real: Arc<RealShared>,
    pub conn: ConnRef,
    pub options: ServiceOptions,
    /// The real's reset generation when it was picked (read under the service lock): a reset
    /// after this moment — even while the connect is still pending — cuts the connection.
    pub reset_gen: u64,
    /// This connection is the real's passive-detection probe ([`rvs_core::runtime::Scheduled::probe`]).
    pub probe: bool,
    /// Every real was out (passive failure detection) and they were brought back for this pick.
    pub all_out: bool,
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
            removed: AtomicBool::new(false),
            local: Mutex::new(Vec::new()),
            has_local: AtomicBool::new(false),
            next_local: std::sync::atomic::AtomicUsize::new(0),
            inner: Mutex::new(Balancer {
                runtime: ServiceRuntime::new(options, SchedulerParams::default()),
                configs: Vec::new(),
                shared: HashMap::new(),
                removed: Vec::new(),
            }),
        }
    }

    /// The FULLNAT local addresses of the service (empty: the host's own address).
    pub fn set_local(&self, addrs: Vec<std::net::IpAddr>) {
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        self.has_local
            .store(!addrs.is_empty(), std::sync::atomic::Ordering::Relaxed);
        *local = addrs;
    }

    /// The local address a new connection to `real` leaves from: the next of the service's
    /// local addresses of the real's family, round robin; `None` when it has none.
    pub fn local_for(&self, real: SocketAddr) -> Option<std::net::IpAddr> {
        if !self.has_local.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        let fits = || local.iter().filter(|a| a.is_ipv4() == real.is_ipv4());
        let n = fits().count();
        if n == 0 {
            return None;
        }
        let i = self
            .next_local
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        fits().nth(i % n).copied()
    }

    /// Where a connection to `real` goes: a real on port 0 takes the VIP's port, as in IPVS
    /// (`dest->port ? dest->port : vport`); connecting to port 0 is always refused.
    pub fn target(&self, real: SocketAddr) -> SocketAddr {
        match real.port() {
            0 => SocketAddr::new(real.ip(), self.vaddr.port()),
            _ => real,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Balancer> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One-packet scheduling (`-o`).
    pub fn one_packet(&self) -> bool {
        self.one_packet.load(Relaxed)
    }

    /// The service was removed: its UDP sessions, which hold its listening sockets, end — every
    /// real it still knows (live, or removed with sessions left) is marked unavailable.
    pub fn mark_removed(&self) {
        self.removed.store(true, Relaxed);
        let b = self.lock();
        let gone = b.removed.iter().filter_map(Weak::upgrade);
        for r in b.shared.values().cloned().chain(gone) {
            r.set_available(false);
        }
    }

    /// Whether [`mark_removed`](Self::mark_removed) was called.
    pub fn is_removed(&self) -> bool {
        self.removed.load(Relaxed)
    }

    /// Current options.
    pub fn options(&self) -> ServiceOptions {
        *self.lock().runtime.options()
    }

    /// `-E`: new options (the runtime builds a new scheduler if it changed).
    pub fn set_options(&self, options: ServiceOptions) {
        self.lock().runtime.set_options(options);
        self.one_packet.store(options.one_packet, Relaxed);
    }

    /// `-a`, or `-e` (`must_exist`: returns false if there is no such real).
    pub fn upsert_real(&self, cfg: RealServer, must_exist: bool) -> bool {
        let mut b = self.lock();
        match b.configs.iter().position(|c| c.addr == cfg.addr) {
            Some(i) => b.configs[i] = cfg,
            None if must_exist => return false,
            None => b.configs.push(cfg),
        }
        let shared = match b.shared.get(&cfg.addr) {
            Some(s) => Arc::clone(s),
            None => {
                let revived = b
                    .removed
                    .iter()
                    .filter_map(Weak::upgrade)
                    .find(|r| r.addr == cfg.addr);
                let s = revived.unwrap_or_else(|| Arc::new(RealShared::new(cfg.addr, None)));
                b.shared.insert(cfg.addr, Arc::clone(&s));
                s
            }
        };
        shared.set_proxy_protocol(cfg.proxy_protocol);
        // Down (not merely drained by the operator): its UDP sessions move elsewhere.
        shared.set_available(cfg.health != Health::Down);
        b.sync_reals();
        true
    }

    /// `-d`: removes a real; its TCP connections keep running (a tombstone in the runtime), its
    /// UDP sessions end.
    pub fn remove_real(&self, addr: SocketAddr) -> bool {
        let mut b = self.lock();
        let Some(i) = b.configs.iter().position(|c| c.addr == addr) else {
            return false;
        };
        b.configs.remove(i);
        if let Some(r) = b.shared.remove(&addr) {
            r.set_available(false);
            b.removed.retain(|w| w.strong_count() > 0);
            b.removed.push(Arc::downgrade(&r));
        }
        b.sync_reals();
        true
    }

    /// The live reals with their runtime counts (ActiveConn, InActConn, persistent), after
    /// expiring the persistence templates whose time passed at `now` (they would otherwise stay
    /// counted until the next new connection).
    pub fn reals(&self, now: Timestamp) -> Vec<(Arc<RealShared>, RealInfo)> {
        let mut b = self.lock();
        b.runtime.expire(now);
        b.runtime
            .reals()
            .filter(|info| !info.removed)
            .filter_map(|info| {
                b.shared
                    .get(&info.server.addr)
                    .map(|s| (Arc::clone(s), info))
            })
            .collect()
    }

    /// Every real with this address, live or removed-but-still-connected.
    pub fn reals_at(&self, addr: SocketAddr) -> Vec<Arc<RealShared>> {
        let b = self.lock();
        let live = b.shared.get(&addr).cloned();
        let gone = b
            .removed
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|r| r.addr == addr);
        live.into_iter().chain(gone).collect()
    }

    /// Persistence templates as `ipvsadm -Lnc` lists them: state `NONE`, client port 0 (expired
    /// ones are swept first).
    pub fn templates(&self, now: Timestamp) -> Vec<ConnectionInfo> {
        let mut b = self.lock();
        b.runtime.expire(now);
        b.runtime
            .templates()
            .filter_map(|(group, real, _conns, expires)| {
                Some(ConnectionInfo {
                    protocol: self.protocol,
                    client: SocketAddr::new(group, 0),
                    virtual_addr: self.vaddr,
                    real: real?,
                    state: "NONE".to_string(),
                    expires_ms: expires.as_millis().saturating_sub(now.as_millis()),
                })
            })
            .collect()
    }

    /// Open connections (active + inactive) to the real at `addr`, live or removed.
    pub fn conns_of(&self, addr: SocketAddr) -> u32 {
        let b = self.lock();
        b.runtime
            .id_of(addr)
            .and_then(|id| b.runtime.real_info(id))
            .map_or(0, |i| i.active + i.inactive)
    }

    /// Picks a real for a new connection from `client` and counts it as opened (inactive, like
    /// IPVS's SYN_RECV) — the caller must [`close`](Self::conn_closed) it, connected or not.
    /// Reals in `exclude` (which already failed for this client) are skipped.
    pub fn open(
        &self,
        client: SocketAddr,
        now: Timestamp,
        exclude: &[SocketAddr],
    ) -> Option<Picked> {
        let mut b = self.lock();
        b.runtime.expire(now);
        let req = PickRequest {
            protocol: self.protocol,
            client,
            dest: self.vaddr,
            now,
        };
        // A retry (after failed connects to `exclude`) picks without rebuilding the scheduler.
        let scheduled = b.runtime.schedule_again(&req, exclude).ok()?;
        let real = Arc::clone(b.shared.get(&scheduled.addr)?);
        b.runtime.conn_opened(scheduled.conn, false, now);
        if scheduled.report {
            real.set_passive_report(true);
        }
        Some(Picked {
            reset_gen: real.reset_generation(),
            real,
            conn: scheduled.conn,
            options: *b.runtime.options(),
            probe: scheduled.probe,
            all_out: scheduled.all_out,
        })
    }

    /// The connection of `picked` ended before its connect reached the real (the director's
    /// own failure): if it was the real's probe, the real is on probation again at once
    /// instead of staying out until `fail_timeout` passes.
    pub fn connect_abandoned(&self, picked: &Picked) {
        if picked.probe {
            let mut b = self.lock();
            b.runtime.probe_abandoned(picked.conn.real);
            picked
                .real
                .set_passive_report(b.runtime.wants_success(picked.conn.real));
        }
    }

    /// A connect to the real of `picked` failed at `now` (passive failure detection; the failure
    /// path takes the service lock).
    pub fn connect_failed(&self, picked: &Picked, now: Timestamp) -> FailOutcome {
        let mut b = self.lock();
        let out = b.runtime.connect_failed(picked.conn.real, now);
        picked
            .real
            .set_passive_report(b.runtime.wants_success(picked.conn.real));
        out
    }

    /// A connect to the real of `picked` succeeded while its failures were counted or it was
    /// probed ([`RealShared::passive_report`]): the count starts again, a probe brings it in
    /// (returns whether it did).
    pub fn connect_succeeded(&self, picked: &Picked) -> bool {
        let mut b = self.lock();
        let back = b.runtime.connect_succeeded(picked.conn.real);
        picked
            .real
            .set_passive_report(b.runtime.wants_success(picked.conn.real));
        back
    }

    /// A connection moved between active (ESTABLISHED) and inactive.
    pub fn conn_changed(&self, conn: ConnRef, was_active: bool, is_active: bool) {
        if was_active != is_active {
            self.lock()
                .runtime
                .conn_changed(conn.real, was_active, is_active);
        }
    }

    /// A connection went away.
    pub fn conn_closed(&self, conn: ConnRef, was_active: bool, now: Timestamp) {
        self.lock().runtime.conn_closed(conn, was_active, now);
    }
}

impl Balancer {
    fn sync_reals(&mut self) {
        // Addresses are unique in `configs`, so set_reals cannot fail.
        let _ = self.runtime.set_reals(&self.configs);
    }
}
