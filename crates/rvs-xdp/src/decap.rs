//! The real server's side of TUN where the kernel has no ipip / ip6_tunnel: the `rvs_decap`
//! XDP program strips the outer header of tunnelled packets for our VIPs and passes the inner
//! packet to the kernel. [`install`] / [`uninstall`] keep it attached after the calling process
//! exits by pinning its link and VIP map under `/sys/fs/bpf/rvs/decap/<netns>-<ifindex>/`.

use crate::abi::{self, DecapKey, addr_of};
use crate::balancer::AttachMode;
use crate::error::{XdpError, map_err, prog_err};
use aya::Ebpf;
use aya::maps::{HashMap, Map, MapData, PerCpuArray};
use aya::programs::Xdp;
use aya::programs::links::{FdLink, PinnedLink};
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

const PROG: &str = "rvs_decap";
const VIPS: &str = "rvs_decap_vips";

/// The decapsulation program, loaded.
pub struct Decap {
    ebpf: Ebpf,
}

fn key(ip: IpAddr) -> DecapKey {
    let (addr, family) = addr_of(ip);
    DecapKey {
        addr,
        family,
        pad: [0; 3],
    }
}

impl Decap {
    /// Load and verify the embedded program.
    pub fn load() -> Result<Decap, XdpError> {
        let mut ebpf = Ebpf::load(crate::programs::RVS_DECAP)?;
        crate::programs::load_xdp(&mut ebpf, PROG)?;
        Ok(Decap { ebpf })
    }

    fn prog_mut(&mut self) -> Result<&mut Xdp, XdpError> {
        crate::programs::xdp_mut(&mut self.ebpf, PROG)
    }

    /// Accept tunnelled packets whose inner destination is `vip`.
    pub fn add_vip(&mut self, vip: IpAddr) -> Result<(), XdpError> {
        let mut m: HashMap<&mut MapData, DecapKey, u32> =
            HashMap::try_from(self.ebpf.map_mut(VIPS).ok_or(XdpError::Missing(VIPS))?)
                .map_err(map_err(VIPS))?;
        m.insert(key(vip), 1, 0).map_err(map_err(VIPS))
    }

    /// Run one frame through the program: (action, frame after).
    pub fn test_run(&self, frame: &[u8]) -> Result<(u32, Vec<u8>), XdpError> {
        crate::programs::test_run(&self.ebpf, PROG, frame, 256)
    }

    /// Packets decapsulated so far (all CPUs).
    pub fn decapsulated(&self) -> Result<u64, XdpError> {
        let m: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(
            self.ebpf
                .map("rvs_outcomes")
                .ok_or(XdpError::Missing("rvs_outcomes"))?,
        )
        .map_err(map_err("rvs_outcomes"))?;
        Ok(m.get(&abi::RVS_OUTCOME_DECAP, 0)
            .map_err(map_err("rvs_outcomes"))?
            .iter()
            .sum())
    }

    /// Attach to `interface`, native first, generic as fallback. Detached when dropped unless
    /// made permanent by [`install`].
    pub fn attach(
        &mut self,
        interface: &str,
    ) -> Result<(AttachMode, aya::programs::xdp::XdpLinkId), XdpError> {
        crate::programs::attach(self.prog_mut()?, interface, false)
    }
}

/// Where the pinned link and map for `interface` (in this thread's network namespace) live.
pub fn pin_dir(interface: &str) -> Result<PathBuf, XdpError> {
    let ns = std::fs::metadata("/proc/thread-self/ns/net")
        .map(|m| m.ino())
        .map_err(|e| XdpError::Invalid(format!("netns: {e}")))?;
    let c = std::ffi::CString::new(interface)
        .map_err(|_| XdpError::Invalid(format!("bad interface name {interface:?}")))?;
    // SAFETY: c is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(XdpError::Invalid(format!("no interface named {interface}")));
    }
    Ok(PathBuf::from(format!("/sys/fs/bpf/rvs/decap/{ns}-{index}")))
}

/// Make sure the decapsulation program is attached to `interface` (staying attached after this
/// process exits) and accepts `vips`. Returns the mode when newly attached, `None` when it was
/// already there.
pub fn install(interface: &str, vips: &[IpAddr]) -> Result<Option<AttachMode>, XdpError> {
    let dir = pin_dir(interface)?;
    crate::bpffs::ensure()?; // before attaching: the pins must have somewhere to live
    let map_path = dir.join("vips");
    if map_path.exists() {
        let data = MapData::from_pin(&map_path).map_err(map_err(VIPS))?;
        let mut m: HashMap<MapData, DecapKey, u32> =
            HashMap::try_from(Map::HashMap(data)).map_err(map_err(VIPS))?;
        for v in vips {
            m.insert(key(*v), 1, 0).map_err(map_err(VIPS))?;
        }
        return Ok(None);
    }
    let mut d = Decap::load()?;
    for v in vips {
        d.add_vip(*v)?;
    }
    let (mode, id) = d.attach(interface)?;
    std::fs::create_dir_all(&dir)
        .map_err(|e| XdpError::Invalid(format!("{}: {e}", dir.display())))?;
    d.ebpf
        .map(VIPS)
        .ok_or(XdpError::Missing(VIPS))?
        .pin(&map_path)
        .map_err(|e| XdpError::Invalid(format!("pinning map: {e}")))?;
    let link = d.prog_mut()?.take_link(id).map_err(prog_err(PROG))?;
    let fd: FdLink = link.try_into().map_err(|e| {
        XdpError::Invalid(format!(
            "XDP link is not a bpf_link ({e}); kernel too old to keep it attached"
        ))
    })?;
    fd.pin(dir.join("link"))
        .map_err(|e| XdpError::Invalid(format!("pinning link: {e}")))?;
    Ok(Some(mode))
}

/// Stop accepting `vips` on `interface`; when none is left, detach the program.
/// Returns whether the program was detached.
pub fn uninstall(interface: &str, vips: &[IpAddr]) -> Result<bool, XdpError> {
    let dir = pin_dir(interface)?;
    let map_path = dir.join("vips");
    if !map_path.exists() {
        return Ok(false);
    }
    let data = MapData::from_pin(&map_path).map_err(map_err(VIPS))?;
    let mut m: HashMap<MapData, DecapKey, u32> =
        HashMap::try_from(Map::HashMap(data)).map_err(map_err(VIPS))?;
    for v in vips {
        let _ = m.remove(&key(*v));
    }
    if m.keys().next().is_some() {
        return Ok(false);
    }
    let link = PinnedLink::from_pin(dir.join("link"))
        .map_err(|e| XdpError::Invalid(format!("pinned link: {e}")))?;
    let _ = link.unpin();
    let _ = std::fs::remove_file(&map_path);
    let _ = std::fs::remove_dir(&dir);
    Ok(true)
}
