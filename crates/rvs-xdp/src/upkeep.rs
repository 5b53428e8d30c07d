//! Background upkeep of the XDP engine: keeps reals' MACs current from neighbour-table change
//! notifications (plus a periodic re-check, and marking stale next hops in use so the kernel
//! re-probes them), attaches the program again to interfaces re-created under their name, sweeps expired flows ([`crate::sweep`]), and
//! applies the overload thresholds (`-x`/`-y`) from the live connection counts in the
//! connection tables (DR/TUN `rvs_conns` and NAT/FULLNAT `rvs_nat_conns`, walked as one). Each
//! round sweeps one slice of each table (at most
//! [`crate::sweep::SLICE_BUDGET`] entries), without the engine's lock (through handles of its
//! own), so a round's work does not grow with the table and API calls never wait for it; the
//! live counts of a whole pass over the table are applied when the pass completes (one pass
//! = ceil(entries / budget) rounds: the thresholds' reaction delay) and kept for the stats
//! of tables too big to count on every request ([`Inner::live_counts`]). Also the read-side
//! helpers that turn the connection table into counts and `ipvsadm -Lnc` rows. A completed pass
//! also narrows the connection-table bits of ports whose flows of a kind are all gone
//! ([`crate::narrow`]).

use crate::abi;
use crate::conntrack;
use crate::engine::{Inner, monotonic_ns, sock};
use crate::state::{config_abi, sync_table};
use rvs_core::engine::ConnectionInfo;
use rvs_core::model::Protocol;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Every this many upkeep intervals (10 s by default) the upkeep re-reads the attached
/// interfaces (MAC, MTU, tunnel source addresses) and the routes to the reals
/// ([`refresh_links`]).
const LINK_CHECK_ROUNDS: u32 = 10;

/// The running upkeep thread.
pub(crate) struct Upkeep {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Upkeep {
    pub fn start(inner: Arc<Mutex<Inner>>, interval: Duration) -> Upkeep {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let events = match rvs_net::neigh_watch::watch() {
            Ok(rx) => Some(rx),
            Err(e) => {
                log::warn!("xdp: no neighbour notifications ({e}); polling only");
                None
            }
        };
        let thread = std::thread::Builder::new()
            .name("rvs-xdp-upkeep".into())
            .spawn(move || {
                let mut tables = None;
                let mut pass_read = 0;
                let mut links_checked = Instant::now();
                while !flag.load(Ordering::Relaxed) {
                    let changed = match &events {
                        Some(rx) => rx.recv_timeout(interval).is_ok(),
                        None => {
                            std::thread::sleep(interval);
                            false
                        }
                    };
                    if let Some(rx) = &events {
                        while rx.try_recv().is_ok() {}
                    }
                    let job = {
                        let mut guard = inner.lock().unwrap_or_else(|p| p.into_inner());
                        if links_checked.elapsed() >= interval * LINK_CHECK_ROUNDS {
                            refresh_links(&mut guard);
                            links_checked = Instant::now();
                        }
                        refresh_macs(&mut guard, changed);
                        crate::nat_engine::sweep_job(&guard, &mut tables)
                    };
                    let (Some(job), Some(t)) = (job, tables.as_mut()) else {
                        continue;
                    };
                    let Some((read, pass)) = crate::nat_engine::sweep(t, &job) else {
                        continue;
                    };
                    pass_read += read;
                    if let Some((live, ports)) = pass {
                        let mut guard = inner.lock().unwrap_or_else(|p| p.into_inner());
                        if job.thresholds {
                            apply_overload(&mut guard, &live);
                        }
                        guard.narrow_tables(&ports);
                        guard.live_pass = Some((live, pass_read));
                        pass_read = 0;
                    }
                }
            })
            .ok();
        Upkeep { stop, thread }
    }

    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Re-describe the attached interfaces to the program (an MTU or address change applies within
/// one check), and re-check the route to every resolved real: when its next hop or outgoing
/// interface changed (a new gateway, a new route), the real is resolved afresh by
/// [`refresh_macs`] in the same round — keeping its old MAC until the new one is known, so its
/// packets are not dropped meanwhile.
fn refresh_links(inner: &mut Inner) {
    for (i, name) in inner.interfaces.clone().iter().enumerate() {
        let (index, iface) = match crate::engine::describe_interface(&inner.netlink, name) {
            Ok(d) => d,
            Err(e) => {
                log::warn!("xdp: re-reading interface {name}: {e}");
                continue;
            }
        };
        let old = inner.attached_ifindexes.get(i).copied();
        if old.is_some_and(|o| o != index) && inner.pending.is_none() {
            reattach(inner, i, name, index);
        }
        let Some(b) = inner.balancer.as_mut() else {
            return;
        };
        let slots: &[u32] = if i == 0 { &[index, 0] } else { &[index] };
        for slot in slots {
            if let Err(e) = b.set_iface(*slot, &iface) {
                log::warn!("xdp: describing interface {name}: {e}");
            }
        }
    }
    let netlink = &inner.netlink;
    for svc in inner.services.values_mut() {
        for r in svc.reals.values_mut() {
            let (Some(current), ip) = (r.next_hop, r.real.addr.ip()) else {
                continue;
            };
            match netlink.route_get(ip) {
                Ok(route) if (route.next_hop(ip), route.oif) != current => {
                    log::info!(
                        "xdp: route to real {} changed: next hop {} on interface {}",
                        r.real.addr,
                        route.next_hop(ip),
                        route.oif
                    );
                    r.next_hop = None;
                }
                Ok(_) => {}
                Err(e) => log::warn!("xdp: route to real {}: {e}", r.real.addr),
            }
        }
    }
}

/// Attach the program again to interface `name` (number `i` of the engine's), re-created under
/// the same name with ifindex `index` (a bond, VLAN or veth deleted and made again, a container
/// restarted): the old attachment went with the old device, and without this the VIPs' packets
/// went to the director's own stack from then on while the engine looked healthy. Also puts
/// the new device in the program's device map. On failure the next check tries again.
fn reattach(inner: &mut Inner, i: usize, name: &str, index: u32) {
    let generic = inner.force_generic;
    let Some(b) = inner.balancer.as_mut() else {
        return;
    };
    let attached = b
        .reattach(name, generic)
        .and_then(|mode| b.set_tx_port(index).map(|()| mode));
    match attached {
        Ok(mode) => {
            log::warn!(
                "xdp: interface {name} was re-created (ifindex {} -> {index}): attached again \
                 in {mode:?} mode",
                inner.attached_ifindexes[i]
            );
            inner.attached_ifindexes[i] = index;
        }
        Err(e) => log::warn!("xdp: interface {name} was re-created; attaching again: {e}"),
    }
}

/// Re-read every real's next-hop MAC (one dump of the neighbour table per round, however many
/// reals); write the reals whose MAC changed or appeared. An unresolved real is not waited
/// for: the kernel is asked to resolve it and the next round (or its neighbour notification)
/// looks again, so the engine's lock is held for one dump, not 0.5 s per unreachable real.
/// Next hops whose entry is STALE, FAILED or gone are marked in use ([`confirm_next_hops`]).
fn refresh_macs(inner: &mut Inner, _event: bool) {
    let dump = match inner.netlink.neighbour_dump() {
        Ok(t) => t,
        Err(e) => {
            log::warn!("xdp: reading the neighbour table: {e}");
            return;
        }
    };
    confirm_next_hops(inner, &dump);
    let table = dump.usable;
    let mut updates = Vec::new();
    for svc in inner.services.values() {
        for r in svc.reals.values().filter(|r| !r.local) {
            let mut slot = r.clone();
            let current = match slot.next_hop {
                Some((hop, oif)) => table.get(&(oif, hop)).copied(),
                None => {
                    inner.resolve(&mut slot);
                    slot.mac
                }
            };
            // A new MAC, or the same one by a newly resolved next hop (kept, so the real is
            // not resolved again every round).
            if current.is_some() && (current != r.mac || slot.next_hop != r.next_hop) {
                slot.mac = current;
                updates.push(slot);
            }
        }
    }
    for slot in updates {
        log::info!(
            "xdp: real {} next-hop MAC now {:02x?}",
            slot.real.addr,
            slot.mac
        );
        let value = slot.abi();
        if let Some(b) = inner.balancer.as_mut()
            && let Err(e) = b.set_real(slot.index, &value)
        {
            log::warn!("xdp: updating real {}: {e}", slot.real.addr);
        }
        for svc in inner.services.values_mut() {
            if let Some(r) = svc.reals.get_mut(&slot.real.addr)
                && r.index == slot.index
            {
                *r = slot.clone();
            }
        }
    }
}

/// Mark the reals' next hops whose neighbour entry is STALE, FAILED or gone as in use
/// (`NTF_USE`), as the kernel does when it sends a packet through such an entry: a STALE one
/// is probed (DELAY, then unicast probes) and FAILED or gone ones are resolved afresh, so a
/// real whose MAC changed without a gratuitous ARP is learnt again within seconds, as with
/// IPVS. The program's packets bypass the kernel's neighbour code, so without this nothing
/// used the entry: it stayed STALE with the old MAC, and every packet to that real went to a
/// MAC nobody had any more. Costs what IPVS's traffic costs the kernel: a unicast probe per
/// real every reachable time (~30 s), broadcasts only for next hops that do not answer.
fn confirm_next_hops(inner: &Inner, dump: &rvs_net::NeighbourDump) {
    let hops: std::collections::HashSet<(u32, std::net::IpAddr)> = inner
        .services
        .values()
        .flat_map(|s| s.reals.values())
        .filter_map(|r| r.next_hop.map(|(hop, oif)| (oif, hop)))
        .filter(|k| dump.unconfirmed.contains(k) || !dump.usable.contains_key(k))
        .collect();
    for (oif, hop) in hops {
        if let Err(e) = inner.netlink.neighbour_use(oif, hop) {
            log::debug!("xdp: next hop {hop}: {e}");
        }
    }
}

/// Whether some real has an overload threshold (then the upkeep counts live connections).
pub(crate) fn has_thresholds(inner: &Inner) -> bool {
    inner
        .services
        .values()
        .flat_map(|s| s.reals.values())
        .any(|r| r.real.upper_threshold > 0)
}

/// Overload hysteresis from live connection counts `live` (of a whole pass of the sweep);
/// rebuild tables that changed.
fn apply_overload(inner: &mut Inner, live: &HashMap<u32, (u32, u32)>) {
    if !has_thresholds(inner) {
        return;
    }
    let Some(b) = inner.balancer.as_mut() else {
        return;
    };
    for svc in inner.services.values_mut() {
        let mut changed = false;
        for r in svc.reals.values_mut() {
            let (a, i) = live.get(&r.index).copied().unwrap_or((0, 0));
            let next = r.real.next_overload(r.overloaded, a + i);
            changed |= next != r.overloaded;
            r.overloaded = next;
        }
        if changed && let Err(e) = sync_table(b, svc) {
            log::warn!("xdp: rebuilding a Maglev table after an overload change: {e}");
        }
    }
}

/// Live (not expired) connections per real slot: (active, inactive) as IPVS counts them
/// (ESTABLISHED is active; every other state, UDP included, inactive).
pub(crate) fn live_counts(inner: &Inner) -> HashMap<u32, (u32, u32)> {
    let Some(b) = inner.balancer.as_ref() else {
        return HashMap::new();
    };
    let cfg = config_abi(&inner.state_timeouts, &inner.timeouts);
    count_live(&cfg, monotonic_ns(), &b.conns().unwrap_or_default())
}

/// [`live_counts`] of connection entries `conns` at `now` under `cfg`.
pub(crate) fn count_live(
    cfg: &abi::Config,
    now: u64,
    conns: &[(abi::FlowKey, abi::Conn)],
) -> HashMap<u32, (u32, u32)> {
    let mut out = HashMap::new();
    add_live(cfg, now, conns, &mut out);
    out
}

/// Add the live entries of `conns` at `now` under `cfg` to the counts `out` (the sweep counts
/// a pass slice by slice, [`crate::sweep`]).
pub(crate) fn add_live(
    cfg: &abi::Config,
    now: u64,
    conns: &[(abi::FlowKey, abi::Conn)],
    out: &mut HashMap<u32, (u32, u32)>,
) {
    for (_, c) in conns {
        if conntrack::expired(cfg, Some(c), now) {
            continue;
        }
        let e = out.entry(c.real).or_default();
        if conntrack::is_active(c.state) {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
}

/// Live persistence templates per real slot (IPVS's `persistconns`, `-Ln --persistent-conn`'s
/// PersistConn): templates of a persistent service used within its timeout. Reads
/// `rvs_persist` only while some service has persistence (the table is empty otherwise).
pub(crate) fn live_templates(inner: &Inner, now: u64) -> HashMap<u32, u32> {
    let mut out = HashMap::new();
    let timeouts: HashMap<u32, u64> = inner
        .services
        .values()
        .filter_map(|s| {
            let p = s.options.persistence?;
            Some((s.index, u64::from(p.timeout) * 1_000_000_000))
        })
        .collect();
    let Some(b) = inner.balancer.as_ref().filter(|_| !timeouts.is_empty()) else {
        return out;
    };
    for (k, p) in b.persist_templates().unwrap_or_default() {
        if timeouts
            .get(&k.svc)
            .is_some_and(|t| now.saturating_sub(p.last_ns) <= *t)
        {
            *out.entry(p.real).or_default() += 1;
        }
    }
    out
}

/// The connection table and persistence templates as `ipvsadm -Lnc` rows: the state's name
/// and the time left under its state's timeout.
pub(crate) fn connection_list(inner: &Inner, now: u64) -> Vec<ConnectionInfo> {
    let Some(b) = inner.balancer.as_ref() else {
        return Vec::new();
    };
    let reals: HashMap<u32, std::net::SocketAddr> = inner
        .services
        .values()
        .flat_map(|s| s.reals.values().map(|r| (r.index, r.real.addr)))
        .collect();
    let cfg = config_abi(&inner.state_timeouts, &inner.timeouts);
    let mut out = Vec::new();
    for (k, c) in b.conns().unwrap_or_default() {
        let t = conntrack::timeout_ns(&cfg, c.state);
        let age = now.saturating_sub(c.last_ns);
        let Some(real) = reals.get(&c.real) else {
            continue;
        };
        if age > t {
            continue;
        }
        let protocol = if k.proto == abi::RVS_PROTO_UDP as u8 {
            Protocol::Udp
        } else {
            Protocol::Tcp
        };
        let state = conntrack::state_name(c.state);
        out.push(ConnectionInfo {
            protocol,
            client: sock(&k.src, k.family, k.sport),
            virtual_addr: sock(&k.dst, k.family, k.dport),
            real: *real,
            state: state.into(),
            expires_ms: (t - age) / 1_000_000,
        });
    }
    let by_index: HashMap<u32, (&rvs_core::model::ServiceKey, u32)> = inner
        .services
        .iter()
        .map(|(key, s)| {
            (
                s.index,
                (key, s.options.persistence.map_or(0, |p| p.timeout)),
            )
        })
        .collect();
    for (k, p) in b.persist_templates().unwrap_or_default() {
        let (Some((key, timeout)), Some(real)) = (by_index.get(&k.svc), reals.get(&p.real)) else {
            continue;
        };
        let rvs_core::model::ServiceKey::Addr { protocol, addr } = key else {
            continue;
        };
        let t = u64::from(*timeout) * 1_000_000_000;
        let age = now.saturating_sub(p.last_ns);
        if age > t {
            continue;
        }
        out.push(ConnectionInfo {
            protocol: *protocol,
            client: sock(&k.addr, if addr.is_ipv4() { 4 } else { 6 }, 0),
            virtual_addr: *addr,
            real: *real,
            state: "NONE".into(),
            expires_ms: (t - age) / 1_000_000,
        });
    }
    out
}
