//! Which services and reals the proxy engine can serve, and why not: it relays TCP and UDP
//! with FULLNAT semantics (the reals see the director's address), so firewall-mark and SCTP
//! services, services on every port (port 0), DR/TUN/NAT reals, a real that is the VIP
//! itself (a loop), and UDP services on an unspecified VIP or with a PROXY header
//! are refused with a reason the operator sees.

use rvs_core::desired::ServiceConfig;
use rvs_core::engine::{EngineError, Unsupported};
use rvs_core::model::ProxyProtocol;
use rvs_core::{ForwardMethod, Protocol, RealServer, ServiceKey, ServiceOptions};

/// Whether the proxy engine can serve `service` as configured.
pub(crate) fn supports(service: &ServiceConfig) -> Result<(), Unsupported> {
    match service.key {
        ServiceKey::FwMark { .. } => return Err(Unsupported(FWMARK_REASON.into())),
        ServiceKey::Addr {
            protocol: Protocol::Sctp,
            ..
        } => {
            return Err(Unsupported(SCTP_REASON.into()));
        }
        ServiceKey::Addr { addr, .. } if addr.port() == 0 => {
            return Err(Unsupported(PORT_ZERO_REASON.into()));
        }
        ServiceKey::Addr { .. } => {}
    }
    if let Some(why) = udp_reason(&service.key, &service.options, service.reals.values()) {
        return Err(Unsupported(why.into()));
    }
    if let Some(r) = service
        .reals
        .values()
        .find(|r| r.method != ForwardMethod::FullNat)
    {
        return Err(Unsupported(method_reason(r)));
    }
    match service.reals.values().find(|r| is_own_vip(&service.key, r)) {
        Some(r) => Err(Unsupported(own_vip_reason(r))),
        None => Ok(()),
    }
}

/// Whether connecting to `real` reaches the service's own listener: the real is the VIP (a
/// port 0 real takes the VIP's port), or on an unspecified address (a connect to it reaches
/// this host) with the VIP's port, or on a loopback address with it behind an unspecified VIP. Every connection would then loop through the proxy
/// again, each hop holding two more descriptors, until the engine's connection cap stops all
/// of its services (one client did that in under a second). A real on another of the host's
/// own addresses behind an unspecified VIP loops too; it is not detected.
pub(crate) fn is_own_vip(service: &ServiceKey, real: &RealServer) -> bool {
    let ServiceKey::Addr { addr: vip, .. } = service else {
        return false;
    };
    let port = match real.addr.port() {
        0 => vip.port(),
        p => p,
    };
    let ip = real.addr.ip();
    // A connect to 0.0.0.0 / :: reaches this host, so the VIP's listener whatever its address.
    port == vip.port()
        && (ip == vip.ip()
            || ip.is_unspecified()
            || (vip.ip().is_unspecified() && ip.is_loopback()))
}

pub(crate) fn own_vip_reason(real: &RealServer) -> String {
    format!(
        "real {} is this service's own VIP: the proxy engine would connect to its own listener \
         and every connection would loop until the descriptors ran out",
        real.addr
    )
}

pub(crate) const FWMARK_REASON: &str = "firewall-mark services need packet marks, which a userspace proxy \
     never sees (use the xdp engine)";
pub(crate) const PORT_ZERO_REASON: &str = "a service on every port (port 0) is not served by \
     the proxy engine: it listens on one port per service (binding port 0 would take a random one)";
pub(crate) const SCTP_REASON: &str =
    "the proxy engine relays TCP and UDP only; SCTP needs the xdp engine";

pub(crate) fn check_real(service: &ServiceKey, real: &RealServer) -> Result<(), EngineError> {
    if real.method != ForwardMethod::FullNat {
        return Err(unsupported(*service, &method_reason(real)));
    }
    if let Some(why) = udp_reason(service, &ServiceOptions::default(), std::iter::once(real)) {
        return Err(unsupported(*service, why));
    }
    if is_own_vip(service, real) {
        return Err(unsupported(*service, &own_vip_reason(real)));
    }
    Ok(())
}

pub(crate) const UDP_ANY_REASON: &str = "a UDP service on the proxy engine needs a specific VIP address \
     (0.0.0.0 / ::): its replies must come from the address the client sent to";
pub(crate) const UDP_PP_REASON: &str = "the PROXY protocol is for TCP: the proxy engine sends no header \
     on UDP (remove proxy_protocol from this UDP service and its reals)";

/// Why the proxy engine cannot serve UDP service `key` with `options` and `reals` as asked, if
/// it cannot: an unspecified VIP, or a PROXY protocol header asked for.
pub(crate) fn udp_reason<'a>(
    key: &ServiceKey,
    options: &ServiceOptions,
    reals: impl IntoIterator<Item = &'a RealServer>,
) -> Option<&'static str> {
    let ServiceKey::Addr {
        protocol: Protocol::Udp,
        addr,
    } = key
    else {
        return None;
    };
    if addr.ip().is_unspecified() {
        return Some(UDP_ANY_REASON);
    }
    let asked = |p: ProxyProtocol| p != ProxyProtocol::None;
    if asked(options.proxy.proxy_protocol)
        || reals
            .into_iter()
            .any(|r| r.proxy_protocol.is_some_and(asked))
    {
        return Some(UDP_PP_REASON);
    }
    None
}

pub(crate) fn method_reason(real: &RealServer) -> String {
    format!(
        "real {} uses {} ({}); the proxy engine forwards with FULLNAT semantics only (-b): \
         DR, TUN and NAT rewrite packets and need the xdp engine",
        real.addr,
        real.method.ipvs_name(),
        real.method.flag()
    )
}

/// The error for a service (or one of its reals) the proxy engine cannot serve.
pub(crate) fn unsupported(service: ServiceKey, reason: &str) -> EngineError {
    EngineError::Unsupported {
        service,
        reason: Unsupported(reason.to_string()),
    }
}
