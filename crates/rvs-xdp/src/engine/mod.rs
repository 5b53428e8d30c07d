//! [`XdpEngine`]: the [`Engine`] that serves DR and TUN services with the XDP program.
//!
//! `apply` turns each [`Change`] into map writes (services, reals, Maglev tables as diffs,
//! timeouts); reals' MACs come from the kernel's neighbour table through rvs-net and are kept
//! current by a background thread (`crate::upkeep`) that also applies the overload thresholds.
//! Counters are read back from the per-CPU maps: NAT/FULLNAT replies count in the out
//! direction; a DR/TUN director never sees replies, so their out-direction counters stay 0 —
//! which is exactly what shows replies bypass it (IPVS shows the same).

use crate::abi::{self, Iface, addr_of, ip_of};
use crate::balancer::{AttachMode, Balancer};
use crate::error::XdpError;

use crate::state::{Slots, SvcSlot, config_abi, with_icmp_limit};
use rvs_core::conn::ConnTimeouts;
use rvs_core::desired::{Change, ServiceConfig, Timeouts};
use rvs_core::engine::{
    ConnectionInfo, Counters, Engine, EngineError, EngineKind, EngineStats, RealStats,
    ServiceStats, Unsupported,
};
use rvs_core::model::{Protocol, ServiceKey};
use rvs_net::Netlink;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

mod adopt;
mod apply;
use apply::check_method;

/// How to start the engine.
#[derive(Debug, Clone)]
pub struct XdpConfig {
    /// Interfaces to attach the balancer to (where client traffic for the VIPs arrives; DR and
    /// TUN send it back out the same interface).
    pub interfaces: Vec<String>,
    /// Attach in generic (SKB) mode without trying native first.
    pub force_generic: bool,
    /// How long one batch of changes waits in all for its new reals' next-hop MACs before
    /// carrying on without them (the upkeep thread fills them in when the kernel learns them,
    /// without waiting).
    pub resolve_timeout: Duration,
    /// How often the upkeep thread re-checks MACs and overload thresholds (and sweeps expired
    /// NAT/FULLNAT flows).
    pub upkeep_interval: Duration,
    /// FULLNAT local addresses used by every FULLNAT service (those of the service's family;
    /// at most `RVS_MAX_LADDRS` per family) unless [`XdpEngine::set_fullnat_pool`] gave the
    /// service its own.
    pub fullnat_local: Vec<IpAddr>,
    /// How many NAT/FULLNAT flows can be live at once: the size of their connection table
    /// `rvs_nat_conns` and of the reverse table (a full table is the outcome `table_full`).
    /// DR/TUN flows have a table of their own (`RVS_MAX_CONNS`), so they never evict these.
    pub nat_conns: u32,
    /// ICMP errors about DR/TUN flows with no connection entry here that are sent on to a
    /// real, per second per CPU (over it: dropped, outcome `icmp_rate_limited`); 0 =
    /// unlimited. Errors about tracked flows are never limited. See docs/xdp.md "ICMP errors".
    pub icmp_rate: u32,
    /// Their burst (the bucket's size in errors; at least 1).
    pub icmp_burst: u32,
    /// On exit, leave the program attached (forwarding with its flows while no engine runs)
    /// and pin what the next engine needs to adopt them ([`XdpEngine::adopt`]) instead of
    /// detaching it. See docs/xdp.md "Restart without losing flows".
    pub keep_on_exit: bool,
}

impl Default for XdpConfig {
    fn default() -> Self {
        XdpConfig {
            interfaces: Vec::new(),
            force_generic: false,
            resolve_timeout: Duration::from_millis(500),
            upkeep_interval: Duration::from_secs(1),
            fullnat_local: Vec::new(),
            nat_conns: abi::RVS_MAX_NAT_CONNS as u32,
            icmp_rate: abi::RVS_ICMP_RATE_DEFAULT as u32,
            icmp_burst: abi::RVS_ICMP_BURST_DEFAULT as u32,
            keep_on_exit: false,
        }
    }
}

/// Everything behind the engine's lock.
pub(crate) struct Inner {
    pub balancer: Option<Balancer>,
    pub services: BTreeMap<ServiceKey, SvcSlot>,
    pub slots: Slots,
    /// `ipvsadm --set tcp tcpfin udp`.
    pub timeouts: Timeouts,
    /// Per-state timeouts under `timeouts` (IPVS's defaults unless
    /// [`XdpEngine::set_state_timeouts`] gave others).
    pub state_timeouts: ConnTimeouts,
    pub netlink: Netlink,
    pub resolve_timeout: Duration,
    /// The interfaces the program is attached to (re-described by the upkeep).
    pub interfaces: Vec<String>,
    /// The ifindex each of `interfaces` had when the program was attached to it: the upkeep
    /// attaches again to an interface re-created under the same name ([`XdpConfig::interfaces`]).
    pub attached_ifindexes: Vec<u32>,
    /// [`XdpConfig::force_generic`] (for attaching again).
    pub force_generic: bool,
    /// While a batch of changes is applied: until when a new real's next hop may be waited for
    /// (one `resolve_timeout` per batch, not per real, so a batch naming many unreachable reals
    /// holds the lock ≤ 0.5 s). `None` (the upkeep): never wait — ask the kernel to resolve
    /// and look again next round (or on its neighbour notification).
    pub resolve_until: Option<std::time::Instant>,
    /// FULLNAT local addresses: the default pool and per-service pools.
    pub fullnat: crate::nat_engine::Pools,
    /// The live connections per real counted by the upkeep's last full pass over the
    /// connection table, and how many entries that pass read (see [`Inner::live_counts`]).
    pub live_pass: Option<(crate::sweep::LiveCounts, usize)>,
    /// [`XdpConfig::icmp_rate`] and [`XdpConfig::icmp_burst`] (written with the timeouts).
    pub icmp_limit: (u32, u32),
    /// A kept state found at start, until [`XdpEngine::adopt`] (`crate::keep`).
    pub pending: Option<crate::keep::Pending>,
}

/// The XDP data plane.
pub struct XdpEngine {
    inner: Arc<Mutex<Inner>>,
    attached: Vec<(String, AttachMode)>,
    upkeep: Option<crate::upkeep::Upkeep>,
    /// (interface, ifindex) of `attached`.
    ifindexes: Vec<(String, u32)>,
    force_generic: bool,
    keep_on_exit: bool,
}

fn io_err(context: impl Into<String>) -> impl FnOnce(XdpError) -> EngineError {
    let context = context.into();
    move |e| EngineError::Io {
        context,
        source: std::io::Error::other(e.to_string()),
    }
}

impl XdpEngine {
    /// Load the program, describe our interfaces to it, attach it to every interface (native,
    /// falling back to generic — see [`XdpEngine::attachments`]), and start the upkeep thread.
    /// Needs root. Kernel ≥ 5.18.
    pub fn start(cfg: XdpConfig) -> Result<XdpEngine, EngineError> {
        let mut balancer =
            Balancer::load_sized(cfg.nat_conns).map_err(io_err("loading the XDP program"))?;
        let netlink = Netlink::new().map_err(|e| EngineError::Io {
            context: "netlink".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let timeouts = Timeouts::default();
        balancer
            .set_config(&with_icmp_limit(
                config_abi(&ConnTimeouts::default(), &timeouts),
                (cfg.icmp_rate, cfg.icmp_burst),
            ))
            .map_err(io_err("configuring timeouts"))?;
        let mut ifindexes = Vec::new();
        for name in &cfg.interfaces {
            ifindexes.push((name.clone(), describe_interface(&netlink, name)?.0));
        }
        let pending = crate::keep::find(&ifindexes).unwrap_or_else(|e| {
            log::warn!("xdp: looking for a kept state: {e}");
            None
        });
        let mut attached = Vec::new();
        for (i, name) in cfg.interfaces.iter().enumerate() {
            let iface = describe_interface(&netlink, name)?;
            if u64::from(iface.0) >= abi::RVS_MAX_IFACES {
                return Err(EngineError::Io {
                    context: format!("attaching to {name}"),
                    source: std::io::Error::other(format!(
                        "its ifindex {} is at or above the engine's limit {}",
                        iface.0,
                        abi::RVS_MAX_IFACES
                    )),
                });
            }
            balancer
                .set_iface(iface.0, &iface.1)
                .map_err(io_err(format!("describing {name}")))?;
            balancer
                .set_tx_port(iface.0)
                .map_err(io_err(format!("adding {name} to the device map")))?;
            if i == 0 {
                balancer
                    .set_iface(0, &iface.1)
                    .map_err(io_err(format!("describing {name}")))?;
            }
            if let Some(mode) = pending.as_ref().and_then(|p| p.mode(iface.0)) {
                log::info!(
                    "xdp: {name} has the previous program and its flows ({mode:?} mode) until \
                     they are adopted"
                );
                attached.push((name.clone(), mode));
                continue;
            }
            let mode = if cfg.force_generic {
                balancer.attach_generic(name)
            } else {
                balancer.attach(name)
            }
            .map_err(io_err(format!("attaching to {name}")))?;
            log::info!("xdp: attached to {name} in {mode:?} mode");
            attached.push((name.clone(), mode));
        }
        let inner = Arc::new(Mutex::new(Inner {
            balancer: Some(balancer),
            services: BTreeMap::new(),
            slots: Slots::new(),
            timeouts,
            state_timeouts: ConnTimeouts::default(),
            netlink,
            resolve_timeout: cfg.resolve_timeout,
            interfaces: cfg.interfaces.clone(),
            attached_ifindexes: ifindexes.iter().map(|(_, i)| *i).collect(),
            force_generic: cfg.force_generic,
            resolve_until: None,
            fullnat: crate::nat_engine::Pools::new(cfg.fullnat_local.clone()),
            live_pass: None,
            icmp_limit: (cfg.icmp_rate, cfg.icmp_burst),
            pending,
        }));
        let upkeep = crate::upkeep::Upkeep::start(inner.clone(), cfg.upkeep_interval);
        Ok(XdpEngine {
            inner,
            attached,
            upkeep: Some(upkeep),
            ifindexes,
            force_generic: cfg.force_generic,
            keep_on_exit: cfg.keep_on_exit,
        })
    }

    /// Give FULLNAT service `key` its own local addresses (empty: back to the default pool).
    /// Takes effect for new flows when the service is next written (now, if it exists).
    pub fn set_fullnat_pool(&self, key: ServiceKey, addrs: Vec<IpAddr>) -> Result<(), EngineError> {
        let mut inner = self.lock();
        inner.fullnat.set(key, addrs);
        if inner.services.contains_key(&key) {
            inner.write_service(&key)?;
        }
        Ok(())
    }

    /// Per-state connection timeouts (all IPVS TCP states and UDP; IPVS's defaults until set).
    /// `ipvsadm --set tcp tcpfin udp` ([`Change::SetTimeouts`]) still applies on top: its
    /// non-zero values replace ESTABLISHED, FIN_WAIT and UDP.
    pub fn set_state_timeouts(&self, timeouts: ConnTimeouts) -> Result<(), EngineError> {
        let mut inner = self.lock();
        inner.state_timeouts = timeouts;
        inner.write_config()
    }

    /// Live NAT/FULLNAT flows in the program's reverse table (expired ones stay until the
    /// upkeep sweep reclaims them).
    pub fn nat_table_len(&self) -> usize {
        let inner = self.lock();
        inner
            .balancer
            .as_ref()
            .and_then(|b| b.nat_rev().ok())
            .map_or(0, |v| v.len())
    }

    /// The NAT/FULLNAT reverse table: (flow as the real sends it, flow as the client sent it).
    pub fn nat_flows(&self) -> Vec<(abi::FlowKey, abi::FlowKey)> {
        let inner = self.lock();
        inner
            .balancer
            .as_ref()
            .and_then(|b| b.nat_rev().ok())
            .unwrap_or_default()
    }

    /// The slot index of `real` of `service` in the program's tables (what connection entries
    /// name), if configured. Low level: connection sync and tests.
    pub fn real_index(&self, service: &ServiceKey, real: &SocketAddr) -> Option<u32> {
        Some(self.lock().services.get(service)?.reals.get(real)?.index)
    }

    /// The persistence templates as the program keeps them (connection sync, tests).
    pub fn persist_templates(&self) -> Result<Vec<(abi::PersistKey, abi::Persist)>, XdpError> {
        let inner = self.lock();
        let b = inner
            .balancer
            .as_ref()
            .ok_or(XdpError::Missing("balancer"))?;
        b.persist_templates()
    }

    /// Insert connection entries as the program makes them (connection sync, tests). An entry
    /// keeps its method (`Conn::method`, what its flow is sent with); one without (0) gets its
    /// real's current method. NAT/FULLNAT entries go to the NAT/FULLNAT table, others to the
    /// DR/TUN table; the service's port looks that table up before they go in
    /// (`crate::narrow`).
    pub fn insert_conns(&self, entries: &[(abi::FlowKey, abi::Conn)]) -> Result<(), XdpError> {
        self.lock().insert_conn_entries(entries, 0)
    }

    /// The `rvs_vip_ports` bits of `port` (`RVS_PORT_DIRECT` / `RVS_PORT_NAT`: which
    /// connection tables the program looks its flows up in; 0: no service). Tests.
    pub fn port_tables(&self, port: u16) -> Result<u32, XdpError> {
        let inner = self.lock();
        let b = inner
            .balancer
            .as_ref()
            .ok_or(XdpError::Missing("balancer"))?;
        b.port_tables(port)
    }

    /// Run one frame through the loaded program with `BPF_PROG_TEST_RUN` (tests): its action
    /// and the frame it left.
    pub fn test_run(&self, frame: &[u8]) -> Result<(u32, Vec<u8>), XdpError> {
        let inner = self.lock();
        let b = inner
            .balancer
            .as_ref()
            .ok_or(XdpError::Missing("balancer"))?;
        b.test_run(frame)
    }

    /// Where the program is attached and in which mode (generic means native was refused).
    pub fn attachments(&self) -> &[(String, AttachMode)] {
        &self.attached
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// (ifindex, our MAC / MTU / first IPv4 and global IPv6 addresses) of an interface.
pub(crate) fn describe_interface(nl: &Netlink, name: &str) -> Result<(u32, Iface), EngineError> {
    let err = |e: rvs_net::NetError| EngineError::Io {
        context: format!("interface {name}"),
        source: std::io::Error::other(e.to_string()),
    };
    let link = nl.link(name).map_err(err)?;
    let addrs = nl.addresses(link.index).map_err(err)?;
    let mut iface = Iface {
        mac: link.mac,
        mtu: link.mtu.min(u32::from(u16::MAX)) as u16,
        ..Default::default()
    };
    if let Some((ip, _)) = addrs.iter().find(|(ip, _)| ip.is_ipv4()) {
        iface.src4 = addr_of(*ip).0[0];
    }
    if let Some((ip, _)) = addrs
        .iter()
        .find(|(ip, _)| matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) != 0xfe80))
    {
        iface.src6 = addr_of(*ip).0;
    }
    Ok((link.index, iface))
}

fn to_counters(c: &abi::Counters) -> Counters {
    Counters {
        conns: c.conns,
        in_pkts: c.packets,
        in_bytes: c.bytes,
        out_pkts: c.out_packets,
        out_bytes: c.out_bytes,
    }
}

/// CLOCK_MONOTONIC_COARSE in ns: the clock of the program's `bpf_ktime_get_coarse_ns`, so of
/// connection entries' `last_ns` (an entry written with the finer CLOCK_MONOTONIC could lie
/// a tick in the program's future, which it reads as expired).
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC_COARSE)
}

/// Clock `clock` (a `libc::CLOCK_*`) in ns.
pub fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Engine for XdpEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Xdp
    }

    fn supports(&self, service: &ServiceConfig) -> Result<(), Unsupported> {
        match service.key {
            ServiceKey::Addr {
                protocol: Protocol::Tcp | Protocol::Udp,
                ..
            } => {}
            _ => {
                return Err(Unsupported(
                    "the xdp engine serves TCP and UDP address services only".into(),
                ));
            }
        }
        for r in service.reals.values() {
            check_method(&service.key, r.method).map_err(|e| Unsupported(e.to_string()))?;
            crate::nat_engine::check(&self.lock().fullnat, &service.key, r)?;
        }
        Ok(())
    }

    fn apply(&mut self, changes: &[Change]) -> Result<(), EngineError> {
        let mut inner = self.lock();
        inner.resolve_until = Some(std::time::Instant::now() + inner.resolve_timeout);
        let done = changes.iter().try_for_each(|c| inner.apply_one(c));
        inner.resolve_until = None;
        done
    }

    fn stats(&self) -> EngineStats {
        let inner = self.lock();
        let mut out = EngineStats::default();
        let Some(b) = inner.balancer.as_ref() else {
            return out;
        };
        let live = inner.live_counts();
        let templates = crate::upkeep::live_templates(&inner, monotonic_ns());
        for (key, svc) in &inner.services {
            let mut s = ServiceStats {
                counters: to_counters(&b.counters(svc.index).unwrap_or_default()),
                ..Default::default()
            };
            for (addr, r) in &svc.reals {
                let c = b
                    .counters(abi::RVS_MAX_SERVICES as u32 + r.index)
                    .unwrap_or_default();
                let (active, inactive) = live.get(&r.index).copied().unwrap_or((0, 0));
                s.reals.insert(
                    *addr,
                    RealStats {
                        counters: to_counters(&c),
                        active_conns: active,
                        inactive_conns: inactive,
                        persistent_conns: templates.get(&r.index).copied().unwrap_or(0),
                        connect_failures: 0,
                        passive_downs: 0,
                        passive_out_ms: 0,
                    },
                );
            }
            out.services.insert(*key, s);
        }
        if let Ok(v) = b.outcomes() {
            for (i, n) in v.iter().enumerate() {
                if let Some(name) = abi::outcome_name(i as u32) {
                    out.outcomes.insert(name.to_string(), *n);
                }
            }
        }
        out
    }

    fn zero(&mut self, service: Option<&ServiceKey>) {
        let mut inner = self.lock();
        let slots: Vec<u32> = inner
            .services
            .iter()
            .filter(|(k, _)| service.is_none_or(|s| s == *k))
            .flat_map(|(_, s)| {
                std::iter::once(s.index).chain(
                    s.reals
                        .values()
                        .map(|r| abi::RVS_MAX_SERVICES as u32 + r.index),
                )
            })
            .collect();
        let Some(b) = inner.balancer.as_mut() else {
            return;
        };
        for slot in slots {
            if let Err(e) = b.zero_counters(slot) {
                log::warn!("xdp: zeroing counters: {e}");
            }
        }
        if service.is_none()
            && let Err(e) = b.zero_outcomes()
        {
            log::warn!("xdp: zeroing outcomes: {e}");
        }
    }

    fn connections(&self) -> Vec<ConnectionInfo> {
        let inner = self.lock();
        crate::upkeep::connection_list(&inner, monotonic_ns())
    }

    fn shutdown(&mut self) {
        if let Some(u) = self.upkeep.take() {
            u.stop();
        }
        let mut inner = self.lock();
        self.keep_or_release(&mut inner);
        // Dropping the program detaches it from every interface it still holds (bpf_link /
        // netlink detach); pinned links stay.
        inner.balancer = None;
        drop(inner);
        self.attached.clear();
    }
}

impl Drop for XdpEngine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The address of a flow-key endpoint.
pub(crate) fn sock(addr: &abi::Addr, family: u8, port_be: u16) -> SocketAddr {
    SocketAddr::new(ip_of(addr, family), u16::from_be(port_be))
}
