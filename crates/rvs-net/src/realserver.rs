//! Preparing a host to be a real server behind an rvs director, as the seeds describe:
//! the VIP on `lo` as /32 (or /128), `arp_ignore=1` and `arp_announce=2` on `all` and `lo` (so
//! the real never answers ARP for the VIP nor uses it as an ARP source), and for TUN
//! `rp_filter=0` on `all` and the receiving interface (decapsulated packets arrive from the
//! client's address on an interface that is not the route back). IPv6 needs no ARP settings:
//! Linux answers neighbour solicitations only for addresses on the receiving interface.
//!
//! The sysctl values found before the first setup are saved under `/run/rvs/` and restored by
//! the teardown that removes the last VIP. TUN's decapsulation program (for kernels without
//! ipip) is rvs-xdp's; `rvs_xdp::realserver` composes it with this module.

use crate::error::NetError;
use crate::netlink::Netlink;
use crate::sysctl;
use std::net::IpAddr;
use std::path::PathBuf;

/// How the director reaches this real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Direct routing (`-g`).
    Dr,
    /// IP tunnelling (`-i`).
    Tun,
}

/// What to prepare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServerSetup {
    /// Virtual addresses this real answers for.
    pub vips: Vec<IpAddr>,
    pub method: Method,
    /// The interface traffic from the director arrives on (TUN: where rp_filter is cleared and
    /// the decapsulation program goes). `None`: the interface of the default route.
    pub interface: Option<String>,
}

/// What setup did (for the operator).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetupReport {
    pub lines: Vec<String>,
}

fn state_dir() -> PathBuf {
    std::env::var_os("RVS_RUN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/rvs"))
}

fn saved_path() -> PathBuf {
    state_dir().join("realserver.sysctl")
}

/// The sysctls a setup changes, with their new values.
pub fn sysctls(method: Method, interface: &str) -> Vec<(String, &'static str)> {
    let mut v = vec![
        (sysctl::conf4("all", "arp_ignore"), "1"),
        (sysctl::conf4("all", "arp_announce"), "2"),
        (sysctl::conf4("lo", "arp_ignore"), "1"),
        (sysctl::conf4("lo", "arp_announce"), "2"),
    ];
    if method == Method::Tun {
        v.push((sysctl::conf4("all", "rp_filter"), "0"));
        v.push((sysctl::conf4(interface, "rp_filter"), "0"));
        v.push((sysctl::conf4("lo", "rp_filter"), "0"));
    }
    v
}

/// The interface to use: the given one, or the default route's.
pub fn interface_of(
    nl: &Netlink,
    given: &Option<String>,
    family_probe: IpAddr,
) -> Result<String, NetError> {
    if let Some(i) = given {
        return Ok(i.clone());
    }
    let probe = if family_probe.is_ipv4() {
        IpAddr::from([8, 8, 8, 8])
    } else {
        "2001:db8::1".parse().unwrap()
    };
    let route = nl.route_get(probe).map_err(|_| {
        NetError::Invalid(format!(
            "no default route (for {}) to tell the interface the director's traffic arrives \
             on: name it (rvsadm realserver --interface IF)",
            if probe.is_ipv4() { "IPv4" } else { "IPv6" }
        ))
    })?;
    let links =
        std::fs::read_dir("/sys/class/net").map_err(|e| NetError::Invalid(e.to_string()))?;
    for l in links.flatten() {
        let name = l.file_name().to_string_lossy().to_string();
        if nl.link(&name).ok().map(|i| i.index) == Some(route.oif) {
            return Ok(name);
        }
    }
    Err(NetError::NoRoute(probe))
}

fn save_originals(keys: &[(String, &str)]) -> Result<(), NetError> {
    let path = saved_path();
    let mut saved = std::fs::read_to_string(&path).unwrap_or_default();
    for (k, _) in keys {
        if !saved
            .lines()
            .any(|l| l.split_once('=').map(|(a, _)| a) == Some(k))
        {
            saved += &format!("{k}={}\n", sysctl::get(k)?);
        }
    }
    std::fs::create_dir_all(state_dir())
        .map_err(|e| NetError::Invalid(format!("{}: {e}", state_dir().display())))?;
    std::fs::write(&path, saved).map_err(|e| NetError::Invalid(format!("{}: {e}", path.display())))
}

/// Prepare this host. Idempotent.
pub fn setup(cfg: &RealServerSetup) -> Result<SetupReport, NetError> {
    let first = *cfg
        .vips
        .first()
        .ok_or_else(|| NetError::Invalid("no VIP given".into()))?;
    let nl = Netlink::new()?;
    // Only TUN's sysctls name the interface: a DR real needs no default route.
    let iface = match cfg.method {
        Method::Tun => interface_of(&nl, &cfg.interface, first)?,
        Method::Dr => cfg.interface.clone().unwrap_or_default(),
    };
    let lo = nl.link("lo")?;
    let mut report = SetupReport::default();
    let keys = sysctls(cfg.method, &iface);
    save_originals(&keys)?;
    for (k, v) in &keys {
        sysctl::set(k, v)?;
        report.lines.push(format!("sysctl {k}={v}"));
    }
    for vip in &cfg.vips {
        let prefix = if vip.is_ipv4() { 32 } else { 128 };
        nl.add_address(lo.index, *vip, prefix)?;
        report.lines.push(format!("address {vip}/{prefix} on lo"));
    }
    Ok(report)
}

/// Undo [`setup`]: remove the VIPs from `lo`; when no address but loopback's own remains there,
/// restore the sysctls saved by the first setup.
pub fn teardown(cfg: &RealServerSetup) -> Result<SetupReport, NetError> {
    let nl = Netlink::new()?;
    let lo = nl.link("lo")?;
    let mut report = SetupReport::default();
    for vip in &cfg.vips {
        if nl.del_address(lo.index, *vip)? {
            report.lines.push(format!("removed {vip} from lo"));
        } else {
            report.lines.push(format!("{vip} was not on lo"));
        }
    }
    let remaining = nl
        .addresses(lo.index)?
        .into_iter()
        .filter(|(ip, _)| !ip.is_loopback())
        .count();
    if remaining == 0
        && let Ok(saved) = std::fs::read_to_string(saved_path())
    {
        for (k, v) in saved.lines().filter_map(|l| l.split_once('=')) {
            sysctl::set(k, v)?;
            report.lines.push(format!("restored sysctl {k}={v}"));
        }
        let _ = std::fs::remove_file(saved_path());
    }
    Ok(report)
}
