//! [`ProxyEngine`]: the [`Engine`] the daemon drives. It owns the worker threads and the
//! services; `apply` binds and closes listeners and edits the shared scheduling state.

use crate::accept;
use crate::balance::ServiceShared;
use crate::shared::EngineShared;
use crate::support::{
    FWMARK_REASON, PORT_ZERO_REASON, SCTP_REASON, check_real, udp_reason, unsupported,
};
use crate::tcp::WorkerCtx;
use crate::worker::Worker;
use crate::{listen, support, udp};
use rvs_core::desired::{Change, ServiceConfig};
use rvs_core::engine::{
    ConnectionInfo, Engine, EngineError, EngineKind, EngineStats, RealStats, ServiceStats,
    Unsupported,
};
use rvs_core::{Protocol, ServiceKey, ServiceOptions};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::task::AbortHandle;

/// How the proxy engine runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyEngineConfig {
    /// Worker threads, each with its own accept loop per service (0 = one per CPU).
    pub workers: usize,
    /// Relay TCP with `splice(2)` (Linux); `false` copies through a small buffer.
    pub splice: bool,
    /// Listen backlog of every TCP listener.
    pub backlog: i32,
    /// Most UDP sessions at once, over all services (each holds a descriptor); a datagram from
    /// a new client beyond it is dropped and counted in `udp_session_limit`. 0 = automatic: a
    /// quarter of the open-files limit ([`udp_sessions_default`]), so UDP clients on new source
    /// ports cannot take the descriptors TCP connections and the control API need.
    pub udp_sessions: usize,
    /// Most relayed TCP connections at once, over all services (HAProxy's `maxconn`): at the
    /// cap the listeners stop accepting — new clients wait in the listen backlog — until a
    /// connection ends (each listener's stall is counted once in `accept_paused`). 0 = automatic: half the
    /// open-files limit less a reserve ([`max_conns_default`]).
    pub max_conns: usize,
    /// FULLNAT local addresses every service's connections to its reals leave from (those of
    /// the real's family, round robin) unless the service has its own
    /// ([`ProxyEngine::set_fullnat_pool`]); empty: the host's own address.
    pub fullnat_local: Vec<IpAddr>,
}

impl Default for ProxyEngineConfig {
    fn default() -> Self {
        ProxyEngineConfig {
            workers: 0,
            splice: cfg!(target_os = "linux"),
            backlog: 4096,
            udp_sessions: 0,
            max_conns: 0,
            fullnat_local: Vec::new(),
        }
    }
}

/// The automatic cap on UDP sessions for an open-files limit of `nofile`: a quarter of it
/// (at least 16), leaving three quarters for TCP (two descriptors per relayed connection), the
/// listeners and the control API.
pub fn udp_sessions_default(nofile: u64) -> usize {
    (nofile / 4).clamp(16, 1 << 20) as usize
}

/// Descriptors the automatic connection cap leaves for the listeners, the control API, the
/// health checkers and logs.
pub const RESERVED_FDS: u64 = 128;

/// The automatic cap on TCP connections for an open-files limit of `nofile`: two descriptors per
/// connection (its two sockets) out of what [`RESERVED_FDS`] leaves, at least 16 — as HAProxy
/// derives `maxconn` from `ulimit -n` (9,936 at 20,000; HAProxy 9,960). It does not subtract
/// the UDP session cap, which bounds UDP on its own: with both at their caps at once the
/// descriptors can run out, and the listeners then rest and leave clients in the backlog.
pub fn max_conns_default(nofile: u64) -> usize {
    (nofile.saturating_sub(RESERVED_FDS) / 2).clamp(16, 1 << 24) as usize
}

/// A service the engine serves: its shared state and its listener tasks (one per worker).
#[derive(Debug)]
struct ServiceEntry {
    shared: Arc<ServiceShared>,
    listeners: Vec<AbortHandle>,
}

impl Drop for ServiceEntry {
    /// The listeners stop; UDP sessions end too (each holds its worker's listening socket to
    /// send replies from the VIP: left open, that socket would stay in the `SO_REUSEPORT`
    /// group and swallow datagrams meant for a re-added service). TCP connections run on.
    fn drop(&mut self) {
        for l in &self.listeners {
            l.abort();
        }
        self.shared.mark_removed();
    }
}

/// The userspace L4 proxy engine (TCP and UDP, FULLNAT semantics).
#[derive(Debug)]
pub struct ProxyEngine {
    shared: Arc<EngineShared>,
    workers: Vec<Worker>,
    services: BTreeMap<ServiceKey, ServiceEntry>,
    config: ProxyEngineConfig,
    /// Services' own FULLNAT local addresses ([`ProxyEngine::set_fullnat_pool`]).
    pools: BTreeMap<ServiceKey, Vec<IpAddr>>,
}

impl ProxyEngine {
    /// Starts the worker threads (and raises the soft open-files limit to the hard one).
    /// Services come with [`Engine::apply`].
    pub fn start(config: ProxyEngineConfig) -> Result<ProxyEngine, EngineError> {
        let n = match config.workers {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            n => n,
        };
        let workers = (0..n)
            .map(Worker::start)
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|source| EngineError::Io {
                context: "starting proxy workers".into(),
                source,
            })?;
        let nofile = raise_nofile_limit();
        let udp_max = match config.udp_sessions {
            0 => udp_sessions_default(nofile),
            n => n,
        };
        let tcp_max = match config.max_conns {
            0 => max_conns_default(nofile),
            n => n,
        };
        let shared = Arc::new(EngineShared::new(n, config.splice, tcp_max, udp_max));
        Ok(ProxyEngine {
            shared,
            workers,
            services: BTreeMap::new(),
            config,
            pools: BTreeMap::new(),
        })
    }

    /// Give service `key` its own FULLNAT local addresses (empty: back to
    /// [`ProxyEngineConfig::fullnat_local`]); new connections to its reals leave from them.
    pub fn set_fullnat_pool(&mut self, key: ServiceKey, addrs: Vec<IpAddr>) {
        if addrs.is_empty() {
            self.pools.remove(&key);
        } else {
            self.pools.insert(key, addrs);
        }
        if let Some(entry) = self.services.get(&key) {
            entry.shared.set_local(self.local_of(&key));
        }
    }

    /// The local addresses of service `key`: its own, else the engine's default.
    fn local_of(&self, key: &ServiceKey) -> Vec<IpAddr> {
        self.pools
            .get(key)
            .unwrap_or(&self.config.fullnat_local)
            .clone()
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// The cap on UDP sessions in force (see [`ProxyEngineConfig::udp_sessions`]).
    pub fn udp_sessions_max(&self) -> usize {
        self.shared.udp_sessions_max()
    }

    /// The cap on TCP connections in force (see [`ProxyEngineConfig::max_conns`]).
    pub fn max_conns(&self) -> usize {
        self.shared.tcp_cap.max()
    }

    /// Closes every connection to `real` of `service` now (with RST), whether the real is still
    /// in the service or was removed. Without this, removed reals' connections run to
    /// completion. Returns the number of connections asked to close.
    pub fn reset_real(
        &mut self,
        service: &ServiceKey,
        real: SocketAddr,
    ) -> Result<usize, EngineError> {
        let entry = self
            .services
            .get(service)
            .ok_or(EngineError::UnknownService(*service))?;
        let count = entry.shared.conns_of(real) as usize;
        for r in entry.shared.reals_at(real) {
            r.reset_connections();
        }
        Ok(count)
    }

    fn add_service(&mut self, key: ServiceKey, options: ServiceOptions) -> Result<(), EngineError> {
        let ServiceKey::Addr { protocol, addr } = key else {
            return Err(unsupported(key, FWMARK_REASON));
        };
        if protocol == Protocol::Sctp {
            return Err(unsupported(key, SCTP_REASON));
        }
        if addr.port() == 0 {
            return Err(unsupported(key, PORT_ZERO_REASON));
        }
        if let Some(why) = udp_reason(&key, &options, std::iter::empty()) {
            return Err(unsupported(key, why));
        }
        if self.services.contains_key(&key) {
            return Ok(()); // idempotent: a replayed AddService keeps the running listeners
        }
        let shared = Arc::new(ServiceShared::new(key, protocol, addr, options));
        shared.set_local(self.local_of(&key));
        let io_err = |source| EngineError::Io {
            context: format!("binding {key}"),
            source,
        };
        let mut listeners = Vec::with_capacity(self.workers.len());
        // Bind every worker's socket first, so a failure leaves nothing half-started.
        let mut bound = Vec::with_capacity(self.workers.len());
        for _ in &self.workers {
            bound.push(match protocol {
                Protocol::Tcp => {
                    Bound::Tcp(listen::tcp(addr, self.config.backlog).map_err(io_err)?)
                }
                _ => Bound::Udp(listen::udp(addr).map_err(io_err)?),
            });
        }
        for (i, (worker, sock)) in self.workers.iter().zip(bound).enumerate() {
            let ctx = WorkerCtx {
                engine: Arc::clone(&self.shared),
                table: Arc::clone(&self.shared.tables[i]),
            };
            let _rt = worker.handle.enter();
            let svc = Arc::clone(&shared);
            let task = match sock {
                Bound::Tcp(l) => {
                    let l = crate::relay::register(l).map_err(io_err)?;
                    worker.handle.spawn(accept::accept_loop(l, svc, ctx))
                }
                Bound::Udp(s) => {
                    let s = Arc::new(tokio::net::UdpSocket::from_std(s).map_err(io_err)?);
                    worker.handle.spawn(udp::recv_loop(s, svc, ctx))
                }
            };
            listeners.push(task.abort_handle());
        }
        self.services
            .insert(key, ServiceEntry { shared, listeners });
        Ok(())
    }

    fn entry(&mut self, key: &ServiceKey) -> Result<&mut ServiceEntry, EngineError> {
        self.services
            .get_mut(key)
            .ok_or(EngineError::UnknownService(*key))
    }

    fn apply_one(&mut self, change: &Change) -> Result<(), EngineError> {
        match change {
            Change::SetTimeouts(t) => self.shared.set_timeouts(*t),
            Change::AddService { key, options } => self.add_service(*key, *options)?,
            Change::EditService { key, options } => self.entry(key)?.shared.set_options(*options),
            Change::RemoveService(key) => {
                // Listeners close and UDP sessions end; TCP connections run to completion.
                self.services
                    .remove(key)
                    .ok_or(EngineError::UnknownService(*key))?;
            }
            Change::AddReal { service, real } => {
                check_real(service, real)?;
                self.entry(service)?.shared.upsert_real(*real, false);
            }
            Change::EditReal { service, real } => {
                check_real(service, real)?;
                let entry = self.entry(service)?;
                if !entry.shared.upsert_real(*real, true) {
                    entry.shared.upsert_real(*real, false);
                }
            }
            Change::RemoveReal { service, addr } => {
                // Its connections run to completion unless `reset_real` is called.
                self.entry(service)?.shared.remove_real(*addr);
            }
        }
        Ok(())
    }
}

/// A proxied connection holds two descriptors: raise the soft open-files limit to the hard one
/// (as HAProxy does), best effort. Returns the soft limit in force after (1024 if unknown).
fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit value.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every target
    let soft = lim.rlim_cur as u64;
    soft
}

enum Bound {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
}

impl Engine for ProxyEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Proxy
    }

    fn supports(&self, service: &ServiceConfig) -> Result<(), Unsupported> {
        support::supports(service)
    }

    fn apply(&mut self, changes: &[Change]) -> Result<(), EngineError> {
        changes.iter().try_for_each(|c| self.apply_one(c))
    }

    fn stats(&self) -> EngineStats {
        let mut out = EngineStats::default();
        let now = rvs_core::Timestamp::from_millis(self.shared.clock.now_ms());
        for (key, entry) in &self.services {
            let reals = entry
                .shared
                .reals(now)
                .into_iter()
                .map(|(r, info)| {
                    let stats = RealStats {
                        counters: r.counters.load(),
                        active_conns: info.active,
                        inactive_conns: info.inactive,
                        persistent_conns: info.persistent,
                        connect_failures: r.connect_failures(),
                        passive_downs: r.passive_downs(),
                        passive_out_ms: info
                            .passive_out_until
                            .map_or(0, |t| t.as_millis().saturating_sub(now.as_millis())),
                    };
                    (r.addr, stats)
                })
                .collect();
            let counters = entry.shared.counters.load();
            out.services.insert(*key, ServiceStats { counters, reals });
        }
        for (name, v) in self.shared.outcomes.snapshot() {
            out.outcomes.insert(name.to_string(), v);
        }
        out
    }

    fn zero(&mut self, service: Option<&ServiceKey>) {
        for (key, entry) in &self.services {
            if service.is_some_and(|s| s != key) {
                continue;
            }
            entry.shared.counters.zero();
            let now = rvs_core::Timestamp::from_millis(self.shared.clock.now_ms());
            for (r, _) in entry.shared.reals(now) {
                r.counters.zero();
                r.zero_connect_failures();
            }
        }
    }

    fn connections(&self) -> Vec<ConnectionInfo> {
        let now = self.shared.clock.now_ms();
        let mut out = Vec::new();
        for t in &self.shared.tables {
            t.snapshot(now, &mut out);
        }
        for entry in self.services.values() {
            out.extend(
                entry
                    .shared
                    .templates(rvs_core::Timestamp::from_millis(now)),
            );
        }
        out
    }

    fn reset_connections(
        &mut self,
        service: &ServiceKey,
        real: &SocketAddr,
    ) -> Result<(), Unsupported> {
        self.reset_real(service, *real)
            .map(|_| ())
            .map_err(|e| Unsupported(e.to_string()))
    }

    /// The listeners close (clients that connect now are refused; those already in a listen
    /// backlog are reset by the kernel) and UDP sessions end (see `ServiceEntry`'s drop);
    /// relayed TCP connections run on until they end.
    fn stop_accepting(&mut self) {
        self.services.clear();
    }

    fn open_connections(&self) -> usize {
        self.shared.tcp_cap.current()
    }

    fn shutdown(&mut self) {
        self.services.clear();
        for w in &mut self.workers {
            w.stop();
        }
    }
}

impl Drop for ProxyEngine {
    fn drop(&mut self) {
        self.shutdown();
    }
}
