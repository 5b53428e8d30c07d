//! `rvsadm realserver setup|teardown`: prepare a host as a real server for DR or TUN —
//! rvs-net's addresses and sysctls, plus, for TUN on a kernel without the ipip module, rvs's
//! own decapsulation program ([`crate::decap`]) on the receiving interface.

use crate::decap;
use rvs_net::realserver::{self as net, Method, RealServerSetup, SetupReport};
use rvs_net::{NetError, Netlink};

/// Why a real-server preparation failed.
#[derive(Debug, thiserror::Error)]
pub enum RealServerError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("decapsulation program: {0}")]
    Decap(#[from] crate::error::XdpError),
}

/// Whether this kernel can decapsulate IPIP by itself (the ipip module is loaded or loadable).
pub fn kernel_has_ipip() -> bool {
    std::path::Path::new("/sys/module/ipip").exists()
}

/// Prepare this host (idempotent). For TUN the decapsulation program is attached unless the
/// kernel has ipip.
pub fn setup(cfg: &RealServerSetup) -> Result<SetupReport, RealServerError> {
    // The decapsulation program's interface and pin location first: when either is missing,
    // nothing is changed (no VIP left on lo without the program that makes it reachable).
    let decap_on = match cfg.method == Method::Tun && !kernel_has_ipip() {
        true => {
            let iface = interface(cfg)?;
            crate::bpffs::ensure()?;
            Some(iface)
        }
        false => None,
    };
    let mut report = net::setup(cfg)?;
    if let Some(iface) = decap_on {
        match decap::install(&iface, &cfg.vips)? {
            Some(mode) => report.lines.push(format!(
                "decapsulation program attached to {iface} ({mode:?} mode)"
            )),
            None => report.lines.push(format!(
                "decapsulation program on {iface} now also accepts the VIPs"
            )),
        }
    }
    Ok(report)
}

/// Undo [`setup`].
pub fn teardown(cfg: &RealServerSetup) -> Result<SetupReport, RealServerError> {
    // The interface first: without it (no default route, no --interface) nothing is undone.
    let iface = match cfg.method {
        Method::Tun => Some(interface(cfg)?),
        Method::Dr => None,
    };
    let mut report = net::teardown(cfg)?;
    if let Some(iface) = iface
        && decap::uninstall(&iface, &cfg.vips)?
    {
        report
            .lines
            .push(format!("decapsulation program detached from {iface}"));
    }
    Ok(report)
}

fn interface(cfg: &RealServerSetup) -> Result<String, RealServerError> {
    let first = *cfg
        .vips
        .first()
        .ok_or_else(|| NetError::Invalid("no VIP given".into()))?;
    Ok(net::interface_of(&Netlink::new()?, &cfg.interface, first)?)
}
