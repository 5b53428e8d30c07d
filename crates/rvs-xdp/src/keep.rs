//! Restart without losing flows ([`crate::XdpConfig::keep_on_exit`]): on exit the engine pins
//! its XDP links (so the program stays attached and keeps forwarding with its maps while no
//! rvsd runs) and the maps the next process needs under
//! `/sys/fs/bpf/rvs/xdp/<netns inode>/<layout stamp>/`; the next engine finds them
//! ([`find`]), loads its own program with fresh maps, and once the desired state is applied
//! ([`crate::XdpEngine::adopt`]) copies the old flows in with their service and real indexes
//! translated by address ([`Translate`]), swaps its program into the pinned links and copies
//! again what the old program made meanwhile (`crate::engine::adopt`).
//!
//! The layout stamp is a hash of the headers that define the shared structs and the maps: a
//! binary with another layout finds a directory of another name and detaches it ([`discard`])
//! instead of misreading it. bpffs holds no regular files, so the stamp is in the path.

use crate::abi::{self, Conn, FlowKey, Persist, PersistKey, Service, VipKey};
use crate::balancer::AttachMode;
use crate::error::XdpError;
use aya::programs::links::{FdLink, PinnedLink};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The maps pinned on exit and read by the next engine.
pub(crate) const KEPT_MAPS: [&str; 8] = [
    "rvs_conns",
    "rvs_nat_conns",
    "rvs_nat_rev",
    "rvs_persist",
    "rvs_services",
    "rvs_reals",
    "rvs_real_ports",
    "rvs_fnat_pools",
];

/// FNV-1a over `bytes`, from `h`.
const fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
        i += 1;
    }
    h
}

/// The layout stamp: a hash of the shared structs (`rvs_abi.h`) and the map definitions.
pub(crate) const STAMP: u64 = fnv(
    fnv(
        fnv(0xcbf2_9ce4_8422_2325, include_bytes!("../bpf/rvs_abi.h")),
        include_bytes!("../bpf/maps.h"),
    ),
    include_bytes!("../bpf/conntrack.h"),
);

/// `/sys/fs/bpf/rvs/xdp/<inode of this thread's network namespace>`.
pub(crate) fn netns_root() -> Result<PathBuf, XdpError> {
    let ns = std::fs::metadata("/proc/thread-self/ns/net")
        .map(|m| m.ino())
        .map_err(|e| XdpError::Invalid(format!("netns: {e}")))?;
    Ok(PathBuf::from(format!("/sys/fs/bpf/rvs/xdp/{ns}")))
}

/// This binary's directory under `root`.
pub(crate) fn stamp_dir(root: &Path) -> PathBuf {
    root.join(format!("{STAMP:016x}"))
}

fn link_name(ifindex: u32, mode: AttachMode) -> String {
    let m = match mode {
        AttachMode::Native => "native",
        AttachMode::Generic => "generic",
    };
    format!("link-{ifindex}-{m}")
}

/// (ifindex, mode) of a pinned link's file name.
fn parse_link(name: &str) -> Option<(u32, AttachMode)> {
    let rest = name.strip_prefix("link-")?;
    let (index, mode) = rest.split_once('-')?;
    let mode = match mode {
        "native" => AttachMode::Native,
        "generic" => AttachMode::Generic,
        _ => return None,
    };
    Some((index.parse().ok()?, mode))
}

/// A kept state found at start, not adopted yet.
#[derive(Debug)]
pub(crate) struct Pending {
    pub dir: PathBuf,
    /// (ifindex, mode, pinned link).
    pub links: Vec<(u32, AttachMode, PathBuf)>,
}

impl Pending {
    pub fn mode(&self, ifindex: u32) -> Option<AttachMode> {
        self.links
            .iter()
            .find(|(i, _, _)| *i == ifindex)
            .map(|(_, m, _)| *m)
    }
}

/// Unpin link `path`: the program it holds is detached once nothing else holds the link.
fn detach(path: &Path) {
    match PinnedLink::from_pin(path) {
        Ok(l) => {
            if let Err(e) = l.unpin() {
                log::warn!("xdp: unpinning {}: {e}", path.display());
            }
        }
        Err(e) => {
            log::warn!("xdp: opening {}: {e}", path.display());
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Detach every pinned link of `dir` and remove its pins and the directory.
pub(crate) fn discard(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if e.file_name().to_string_lossy().starts_with("link-") {
            detach(&path);
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }
    let _ = std::fs::remove_dir(dir);
    // The namespace's directory too, when that was its last state.
    if let Some(parent) = dir.parent() {
        let _ = std::fs::remove_dir(parent);
    }
}

/// At start, with our interfaces `(name, ifindex)`: the kept state of this layout, if any.
/// Kept states of another layout are detached and removed (logged), as are kept links of
/// interfaces we are not configured for.
pub(crate) fn find(ifaces: &[(String, u32)]) -> Result<Option<Pending>, XdpError> {
    let root = netns_root()?;
    let ours = stamp_dir(&root);
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Ok(None);
    };
    for e in entries.flatten() {
        if e.path() != ours {
            log::warn!(
                "xdp: kept state {} has another layout than this binary's ({STAMP:016x}): \
                 detaching it and starting fresh",
                e.path().display()
            );
            discard(&e.path());
        }
    }
    let Ok(entries) = std::fs::read_dir(&ours) else {
        return Ok(None);
    };
    let mut links = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((ifindex, mode)) = parse_link(&name) else {
            continue;
        };
        if ifaces.iter().any(|(_, i)| *i == ifindex) {
            links.push((ifindex, mode, e.path()));
        } else {
            log::warn!("xdp: kept link {name} is on an interface not configured: detaching it");
            detach(&e.path());
        }
    }
    let missing = KEPT_MAPS.iter().any(|m| !ours.join(m).exists());
    if links.is_empty() || missing {
        if missing {
            log::warn!(
                "xdp: kept state {} lacks maps: starting fresh",
                ours.display()
            );
        }
        discard(&ours);
        return Ok(None);
    }
    Ok(Some(Pending { dir: ours, links }))
}

/// On exit: pin the maps of [`KEPT_MAPS`] and the links of `b` (interface name → ifindex and
/// mode in `ifaces`) so the program stays attached. Returns the directory.
pub(crate) fn pin(
    b: &mut crate::Balancer,
    ifaces: &[(String, u32, AttachMode)],
) -> Result<PathBuf, XdpError> {
    crate::bpffs::ensure()?;
    let dir = stamp_dir(&netns_root()?);
    if dir.exists() {
        discard(&dir);
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| XdpError::Invalid(format!("{}: {e}", dir.display())))?;
    let pinned = pin_into(b, ifaces, &dir);
    if pinned.is_err() {
        discard(&dir);
    }
    pinned.map(|()| dir)
}

fn pin_into(
    b: &mut crate::Balancer,
    ifaces: &[(String, u32, AttachMode)],
    dir: &Path,
) -> Result<(), XdpError> {
    for name in KEPT_MAPS {
        b.ebpf()
            .map(name)
            .ok_or(XdpError::Missing(name))?
            .pin(dir.join(name))
            .map_err(|e| XdpError::Invalid(format!("pinning {name}: {e}")))?;
    }
    let links = std::mem::take(&mut b.links);
    for (iface, id) in links {
        let Some((_, ifindex, mode)) = ifaces.iter().find(|(n, _, _)| *n == iface) else {
            continue;
        };
        let link = b
            .prog_mut()?
            .take_link(id)
            .map_err(crate::error::prog_err("rvs_lb"))?;
        let fd: FdLink = link.try_into().map_err(|e| {
            XdpError::Invalid(format!(
                "the XDP link on {iface} is not a bpf_link ({e}); it cannot outlive rvsd"
            ))
        })?;
        fd.pin(dir.join(link_name(*ifindex, *mode)))
            .map_err(|e| XdpError::Invalid(format!("pinning the link on {iface}: {e}")))?;
    }
    Ok(())
}

/// A service of the new state, as the translation needs it.
#[derive(Debug, Clone, Default)]
pub(crate) struct NewService {
    pub index: u32,
    /// Real address → its new slot index.
    pub reals: HashMap<SocketAddr, u32>,
    /// FULLNAT local addresses, in pool order.
    pub pool: Vec<IpAddr>,
}

/// Old (kept) indexes → new ones, by address: services by their VIP key, reals by their
/// address within their service, FULLNAT local addresses by address within the pool. Pure.
#[derive(Debug, Default)]
pub(crate) struct Translate {
    /// Old service index → the service in the new state.
    svcs: HashMap<u32, NewService>,
    /// Old real index → its address (port 0 already replaced by the service's).
    reals: HashMap<u32, SocketAddr>,
    /// Old service index → its old FULLNAT pool.
    pools: HashMap<u32, Vec<IpAddr>>,
}

impl Translate {
    /// From the old service table and the new services by VIP key; `reals` and `pools` as in
    /// the fields.
    pub fn new(
        old_services: &[(VipKey, Service)],
        mut new: HashMap<VipKey, NewService>,
        reals: HashMap<u32, SocketAddr>,
        pools: HashMap<u32, Vec<IpAddr>>,
    ) -> Translate {
        let svcs = old_services
            .iter()
            .filter_map(|(k, s)| Some((s.index, new.remove(k)?)))
            .collect();
        Translate { svcs, reals, pools }
    }

    /// (new service, new real) of an old pair; `None` when either is gone.
    fn pair(&self, svc: u32, real: u32) -> Option<(&NewService, u32)> {
        let s = self.svcs.get(&svc)?;
        let r = s.reals.get(self.reals.get(&real)?)?;
        Some((s, *r))
    }

    /// A connection entry with new indexes (and FULLNAT local address index); `None` when its
    /// service, real or local address is gone.
    pub fn conn(&self, c: &Conn) -> Option<Conn> {
        let (s, real) = self.pair(c.svc, c.real)?;
        let mut out = Conn {
            real,
            svc: s.index,
            ..*c
        };
        if c.method == abi::RVS_METHOD_FULLNAT as u8 && c.lport != 0 {
            let idx_bits = abi::RVS_LADDR_INDEX as u8;
            let old = self
                .pools
                .get(&c.svc)?
                .get(usize::from(c.laddr & idx_bits))?;
            let new = s.pool.iter().position(|a| a == old)? as u8;
            out.laddr = (c.laddr & !idx_bits) | new;
        }
        Some(out)
    }

    /// A persistence template with new indexes; `None` when its service or real is gone.
    pub fn persist(&self, k: &PersistKey, v: &Persist) -> Option<(PersistKey, Persist)> {
        let (s, real) = self.pair(k.svc, v.real)?;
        Some((PersistKey { svc: s.index, ..*k }, Persist { real, ..*v }))
    }
}

/// The old translated entries to carry over.
#[derive(Debug, Default)]
pub(crate) struct Carried {
    pub conns: Vec<(FlowKey, Conn)>,
    pub revs: Vec<(FlowKey, abi::NatRev)>,
    pub persist: Vec<(PersistKey, Persist)>,
    /// Old entries left behind (service, real or local address gone).
    pub dropped: usize,
}

/// Translate the old tables: connection entries, reverse entries (kept when their flow's
/// connection entry is), templates.
pub(crate) fn carry(
    t: &Translate,
    conns: &[(FlowKey, Conn)],
    revs: &[(FlowKey, abi::NatRev)],
    persist: &[(PersistKey, Persist)],
) -> Carried {
    let mut out = Carried::default();
    let mut by_flow: HashMap<FlowKey, u32> = HashMap::new();
    for (k, c) in conns {
        match t.conn(c) {
            Some(n) => {
                by_flow.insert(*k, n.real);
                out.conns.push((*k, n));
            }
            None => out.dropped += 1,
        }
    }
    for (k, r) in revs {
        match by_flow.get(&r.orig) {
            Some(real) => out.revs.push((*k, abi::NatRev { real: *real, ..*r })),
            None => out.dropped += 1,
        }
    }
    for (k, v) in persist {
        match t.persist(k, v) {
            Some(p) => out.persist.push(p),
            None => out.dropped += 1,
        }
    }
    out
}

impl Carried {
    /// How many entries it carries.
    pub fn len(&self) -> usize {
        self.conns.len() + self.revs.len() + self.persist.len()
    }
}

/// The keys already copied: a later copy carries only entries made since.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    conns: HashSet<FlowKey>,
    revs: HashSet<FlowKey>,
    persist: HashSet<PersistKey>,
}

impl Seen {
    /// `c` without the entries whose keys were seen before; their keys are seen from now on.
    pub fn take(&mut self, mut c: Carried) -> Carried {
        c.conns.retain(|(k, _)| self.conns.insert(*k));
        c.revs.retain(|(k, _)| self.revs.insert(*k));
        c.persist.retain(|(k, _)| self.persist.insert(*k));
        c
    }
}

#[cfg(test)]
#[path = "keep/tests.rs"]
mod tests;
