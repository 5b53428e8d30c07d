//! The engine's side of restarting without losing flows ([`crate::keep`]): on exit, pin the
//! program's links and maps or release a kept state never adopted
//! (`XdpEngine::keep_or_release`); after the desired state is applied,
//! [`XdpEngine::adopt`] reads the old maps from their pins, translates their entries to the
//! new indexes, inserts them, swaps the new program into the pinned links, copies what the old
//! program made in between, and drops the old state. Any failure before the swap leaves the
//! new program unattached: the old one is then detached and the new one attached fresh.

use super::{Inner, XdpEngine};
use crate::abi::{self, Conn, FlowKey, NatRev, Persist, PersistKey, Service, VipKey, ip_of};
use crate::balancer::AttachMode;
use crate::error::{XdpError, map_err};
use crate::keep::{Carried, NewService, Pending, Seen, Translate};
use aya::maps::{Array, Map, MapData};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::xdp::XdpLink;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

/// `BPF_NOEXIST`: insert only when the key is absent.
const NOEXIST: u64 = 1;

fn open(dir: &Path, name: &'static str) -> Result<Map, XdpError> {
    let data = MapData::from_pin(dir.join(name)).map_err(map_err(name))?;
    Ok(match name {
        "rvs_conns" | "rvs_persist" => Map::LruHashMap(data),
        "rvs_reals" | "rvs_real_ports" | "rvs_fnat_pools" => Map::Array(data),
        _ => Map::HashMap(data),
    })
}

fn read_hash<K: aya::Pod, V: aya::Pod>(
    dir: &Path,
    name: &'static str,
) -> Result<Vec<(K, V)>, XdpError> {
    crate::whole_map::read(&open(dir, name)?, name, true)
}

fn array<V: aya::Pod>(dir: &Path, name: &'static str) -> Result<Array<MapData, V>, XdpError> {
    Array::try_from(open(dir, name)?).map_err(map_err(name))
}

/// The old state's tables, translated to the new indexes of `inner`'s services.
fn carry_over(inner: &Inner, dir: &Path) -> Result<Carried, XdpError> {
    let mut conns: Vec<(FlowKey, Conn)> = read_hash(dir, "rvs_conns")?;
    conns.extend(read_hash::<FlowKey, Conn>(dir, "rvs_nat_conns")?);
    let revs: Vec<(FlowKey, NatRev)> = read_hash(dir, "rvs_nat_rev")?;
    let persist: Vec<(PersistKey, Persist)> = read_hash(dir, "rvs_persist")?;
    let services: Vec<(VipKey, Service)> = read_hash(dir, "rvs_services")?;
    let svc_port: HashMap<u32, u16> = services
        .iter()
        .map(|(k, s)| (s.index, u16::from_be(k.port)))
        .collect();
    // The old reals named by entries, with their service (for a port of 0).
    let mut named: HashMap<u32, u32> = conns.iter().map(|(_, c)| (c.real, c.svc)).collect();
    named.extend(persist.iter().map(|(k, v)| (v.real, k.svc)));
    let reals_map = array::<abi::Real>(dir, "rvs_reals")?;
    let ports_map = array::<u16>(dir, "rvs_real_ports")?;
    let mut reals = HashMap::new();
    for (real, svc) in named {
        let (Ok(r), Ok(port)) = (reals_map.get(&real, 0), ports_map.get(&real, 0)) else {
            continue;
        };
        let port = match u16::from_be(port) {
            0 => svc_port.get(&svc).copied().unwrap_or(0),
            p => p,
        };
        reals.insert(real, SocketAddr::new(ip_of(&r.addr, r.family), port));
    }
    let pools_map = array::<abi::FnatPool>(dir, "rvs_fnat_pools")?;
    let pools = services
        .iter()
        .filter_map(|(k, s)| {
            let p = pools_map.get(&s.index, 0).ok()?;
            let family = k.family;
            let addrs = p.addrs[..(p.count as usize).min(p.addrs.len())]
                .iter()
                .map(|a| ip_of(a, family))
                .collect();
            Some((s.index, addrs))
        })
        .collect();
    let new = inner
        .services
        .iter()
        .filter_map(|(key, s)| {
            Some((
                crate::state::vip_key(key)?,
                NewService {
                    index: s.index,
                    reals: s.reals.iter().map(|(a, r)| (*a, r.index)).collect(),
                    pool: inner.fullnat.for_service(key),
                },
            ))
        })
        .collect();
    let t = Translate::new(&services, new, reals, pools);
    Ok(crate::keep::carry(&t, &conns, &revs, &persist))
}

/// Insert `c` into the new maps (`flags`: 0, or [`NOEXIST`] to keep entries already there).
fn insert(inner: &mut Inner, c: &Carried, flags: u64) -> Result<(), XdpError> {
    inner.insert_conn_entries(&c.conns, flags)?;
    let b = inner
        .balancer
        .as_mut()
        .ok_or(XdpError::Missing("balancer"))?;
    b.insert_entries("rvs_nat_rev", &c.revs, flags)?;
    b.insert_entries("rvs_persist", &c.persist, flags)
}

/// Replace the old program in each pinned link of `p` by ours; unpin them (ours now: it
/// detaches when we exit without keeping).
fn swap(inner: &mut Inner, p: &Pending, names: &HashMap<u32, String>) -> Result<(), XdpError> {
    let b = inner
        .balancer
        .as_mut()
        .ok_or(XdpError::Missing("balancer"))?;
    for (ifindex, _, path) in &p.links {
        let pinned = PinnedLink::from_pin(path)
            .map_err(|e| XdpError::Invalid(format!("{}: {e}", path.display())))?;
        let link = XdpLink::try_from(FdLink::from(pinned))
            .map_err(|e| XdpError::Invalid(format!("{}: {e}", path.display())))?;
        let id = b
            .prog_mut()?
            .attach_to_link(link)
            .map_err(crate::error::prog_err("rvs_lb"))?;
        b.links
            .push((names.get(ifindex).cloned().unwrap_or_default(), id));
        std::fs::remove_file(path)
            .map_err(|e| XdpError::Invalid(format!("unpinning {}: {e}", path.display())))?;
    }
    Ok(())
}

/// Adopt `p`: see the module doc. Returns how many entries were carried over.
///
/// Three copies: the whole tables; then what the old program made during that copy (a short
/// one), so that little is left to make during the swap; after the swap, what it made since.
/// Each later copy carries only keys the earlier ones did not (entries already copied keep
/// the state they were copied with; the new program updates them from then on). A new flow
/// whose packet reaches the new program between the swap and the last copy is scheduled
/// again (docs/xdp.md: the window is the last copy's few milliseconds).
fn adopt_into(
    inner: &mut Inner,
    p: &Pending,
    names: &HashMap<u32, String>,
) -> Result<usize, XdpError> {
    let t0 = std::time::Instant::now();
    let mut seen = Seen::default();
    let first = seen.take(carry_over(inner, &p.dir)?);
    insert(inner, &first, 0)?;
    let catch_up = seen.take(carry_over(inner, &p.dir)?);
    insert(inner, &catch_up, NOEXIST)?;
    let t1 = std::time::Instant::now();
    swap(inner, p, names)?;
    let mut n = first.len() + catch_up.len();
    match carry_over(inner, &p.dir).and_then(|last| {
        let last = seen.take(last);
        n += last.len();
        insert(inner, &last, NOEXIST)
    }) {
        Ok(()) => {}
        Err(e) => log::warn!("xdp: last copy of the kept flows: {e}"),
    }
    log::info!(
        "xdp: adoption: copied {} + {} kept entries in {:?} while the old program served; \
         swap and last copy took {:?}",
        first.len(),
        catch_up.len(),
        t1 - t0,
        t1.elapsed()
    );
    if first.dropped > 0 {
        log::info!(
            "xdp: {} kept entries name a service, real or local address that is gone",
            first.dropped
        );
    }
    crate::keep::discard(&p.dir);
    Ok(n)
}

impl XdpEngine {
    /// Change [`crate::XdpConfig::keep_on_exit`] for this engine's exit (a reload of rvsd's
    /// `[daemon] xdp_keep_on_exit`); returns whether it changed.
    pub fn set_keep_on_exit(&mut self, keep: bool) -> bool {
        std::mem::replace(&mut self.keep_on_exit, keep) != keep
    }

    /// Whether a state kept by the previous engine ([`crate::XdpConfig::keep_on_exit`]) waits to be
    /// adopted: its program still serves the interfaces it was kept on.
    pub fn has_kept_state(&self) -> bool {
        self.lock().pending.is_some()
    }

    /// Adopt the state the previous engine kept ([`crate::XdpConfig::keep_on_exit`]), once the
    /// desired state is applied: its connection entries, NAT/FULLNAT reverse entries and
    /// persistence templates go into our maps with their service and real indexes translated
    /// by address (entries whose service, real or FULLNAT local address is gone are left
    /// behind), our program replaces the old one in its links atomically, and the entries the
    /// old program made meanwhile are copied too. Returns how many entries were carried over
    /// (0: nothing was kept). On failure the old program is detached and ours attached fresh
    /// (so no flow is kept, but the interfaces are served), and the error says why.
    pub fn adopt(&mut self) -> Result<usize, XdpError> {
        let mut inner = self.lock();
        let Some(p) = inner.pending.take() else {
            return Ok(0);
        };
        let names: std::collections::HashMap<u32, String> = self
            .ifindexes
            .iter()
            .map(|(n, i)| (*i, n.clone()))
            .collect();
        let err = match adopt_into(&mut inner, &p, &names) {
            Ok(n) => {
                log::info!("xdp: adopted the kept state: {n} entries carried over");
                return Ok(n);
            }
            Err(e) => e,
        };
        log::warn!("xdp: adopting the kept state failed ({err}): detaching it, starting fresh");
        crate::keep::discard(&p.dir);
        let mut modes = Vec::new();
        if let Some(b) = inner.balancer.as_mut() {
            for (ifindex, _, _) in &p.links {
                let Some(name) = names.get(ifindex) else {
                    continue;
                };
                if b.links.iter().any(|(n, _)| n == name) {
                    continue;
                }
                match if self.force_generic {
                    b.attach_generic(name)
                } else {
                    b.attach(name)
                } {
                    Ok(mode) => modes.push((name.clone(), mode)),
                    Err(e) => log::warn!("xdp: attaching to {name}: {e}"),
                }
            }
        }
        drop(inner);
        for (name, mode) in modes {
            if let Some(a) = self.attached.iter_mut().find(|(n, _)| *n == name) {
                a.1 = mode;
            }
        }
        Err(err)
    }

    /// On exit: with [`crate::XdpConfig::keep_on_exit`], pin the program's links and maps (or leave
    /// a kept state that was never adopted as it is); without, detach a kept state that was
    /// never adopted. Our own links are detached by the caller dropping the program.
    pub(super) fn keep_or_release(&self, inner: &mut Inner) {
        if let Some(p) = inner.pending.take() {
            if self.keep_on_exit {
                log::info!("xdp: the kept state was not adopted: it stays attached");
            } else {
                crate::keep::discard(&p.dir);
            }
        } else if self.keep_on_exit
            && let Some(b) = inner.balancer.as_mut()
        {
            // The ifindexes the program is attached to now (the upkeep attaches again to an
            // interface re-created since the start).
            let ifaces: Vec<(String, u32, AttachMode)> = self
                .attached
                .iter()
                .filter_map(|(n, m)| {
                    let k = inner.interfaces.iter().position(|x| x == n)?;
                    Some((n.clone(), *inner.attached_ifindexes.get(k)?, *m))
                })
                .collect();
            match crate::keep::pin(b, &ifaces) {
                Ok(dir) => log::info!(
                    "xdp: left attached with its flows (kept under {})",
                    dir.display()
                ),
                Err(e) => log::warn!("xdp: keeping the program attached failed ({e}): detaching"),
            }
        }
    }
}
