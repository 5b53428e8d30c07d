//! The service and real-server parts of a command: `-A/-E` options (scheduler, persistence,
//! netmask, one-packet, scheduler flags) and `-a/-e/-d` real servers (address, forwarding
//! method, weight, thresholds), each value parsed and range-checked.

use super::addr::{parse_addr, parse_netmask, parse_sched_flags, parse_u32};
use super::build::{BuildError, Uses, required_key};
use super::lex::{Opt, OptUse, spelling};
use rvs_core::model::{
    ForwardMethod, MAX_WEIGHT, Persistence, RealServer, SchedulerKind, ServiceKey, ServiceOptions,
};

pub(super) fn service_spec(u: &Uses) -> Result<(ServiceKey, ServiceOptions), BuildError> {
    let key = required_key(u)?;
    let mut options = ServiceOptions::default();
    if let Some((s, c)) = u.value(Opt::Scheduler) {
        options.scheduler = s.parse::<SchedulerKind>().map_err(|e| (c, e.to_string()))?;
    }
    if let Some(p) = u.by_opt.get(&Opt::Persistent) {
        let timeout = match p.values.first() {
            Some(w) => {
                parse_u32(&w.text, "persistence timeout", 1, u32::MAX).map_err(|m| (w.column, m))?
            }
            None => Persistence::DEFAULT_TIMEOUT,
        };
        let family = key.family();
        let prefix_len = match u.value(Opt::Netmask) {
            Some((m, c)) => parse_netmask(m, family).map_err(|e| (c, e))?,
            None => family.max_prefix(),
        };
        options.persistence = Some(Persistence {
            timeout,
            prefix_len,
        });
    } else if let Some(m) = u.by_opt.get(&Opt::Netmask) {
        return Err((m.column, "-M (netmask) needs -p (persistent)".into()));
    }
    if let ServiceKey::Addr { addr, .. } = key
        && addr.port() == 0
        && options.persistence.is_none()
    {
        return Err((
            u.cmd.column,
            "zero port specified for non-persistent service".into(),
        ));
    }
    options.one_packet = u.has(Opt::Ops);
    let flags = match (
        u.by_opt.get(&Opt::FullNatOrFlags),
        u.by_opt.get(&Opt::SchedFlags),
    ) {
        (Some(_), Some(s)) => {
            return Err((
                s.column,
                "scheduler flags given twice (-b and --sched-flags)".into(),
            ));
        }
        (Some(b), None) | (None, Some(b)) => Some(b),
        (None, None) => None,
    };
    if let Some(f) = flags {
        let w = f.values.first().ok_or((
            f.column,
            "-b on a service needs scheduler flags: sh-fallback,sh-port,mh-fallback,mh-port (FULLNAT is \
             chosen per real server: -a ... -b)"
                .to_string(),
        ))?;
        options.flags = parse_sched_flags(&w.text, options.scheduler).map_err(|m| (w.column, m))?;
    }
    Ok((key, options))
}

pub(super) fn real_addr(
    u: &Uses,
    service: &ServiceKey,
) -> Result<std::net::SocketAddr, BuildError> {
    let (text, c) = u.value(Opt::Real).ok_or((
        u.cmd.column,
        format!(
            "{} needs a real server: -r ADDR[:PORT]",
            spelling(u.cmd.opt)
        ),
    ))?;
    let mut addr = parse_addr(text).map_err(|m| (c, m))?;
    if addr.port() == 0
        && let ServiceKey::Addr { addr: vip, .. } = service
    {
        addr.set_port(vip.port());
    }
    Ok(addr)
}

pub(super) fn real_spec(u: &Uses) -> Result<(ServiceKey, RealServer), BuildError> {
    let service = required_key(u)?;
    let addr = real_addr(u, &service)?;
    let methods: Vec<(&OptUse, ForwardMethod)> = [
        (Opt::Gatewaying, ForwardMethod::Dr),
        (Opt::Ipip, ForwardMethod::Tun),
        (Opt::Masquerading, ForwardMethod::Nat),
        (Opt::FullNatOrFlags, ForwardMethod::FullNat),
    ]
    .into_iter()
    .filter_map(|(o, m)| u.by_opt.get(&o).map(|x| (x, m)))
    .collect();
    if methods.len() > 1 {
        return Err((
            methods[1].0.column,
            "only one forwarding method: -g, -i, -m or -b".into(),
        ));
    }
    if let Some((b, ForwardMethod::FullNat)) = methods.first()
        && let Some(w) = b.values.first()
    {
        return Err((
            w.column,
            format!(
                "-b on a real server means FULLNAT and takes no value, got '{}'",
                w.text
            ),
        ));
    }
    let method = methods.first().map(|m| m.1).unwrap_or_default();
    if let Some((t, c)) = u.value(Opt::TunType) {
        if method != ForwardMethod::Tun {
            let at = u.by_opt.get(&Opt::TunType).map_or(c, |o| o.column);
            return Err((at, "--tun-type applies to tunnelling (-i)".into()));
        }
        if !t.eq_ignore_ascii_case("ipip") {
            return Err((
                c,
                format!(
                    "tunnel type '{t}' is not supported: rvs tunnels with IPIP only (IPv6-in-IPv6 \
                     for IPv6 reals)"
                ),
            ));
        }
    }
    // As ipvsadm does: a DR or TUN real of an address service is reached on the service's port
    // (neither rewrites ports), so its port is made the service's whatever was written.
    let mut addr = addr;
    if matches!(method, ForwardMethod::Dr | ForwardMethod::Tun)
        && let ServiceKey::Addr { addr: vip, .. } = service
    {
        addr.set_port(vip.port());
    }
    let weight = match u.value(Opt::Weight) {
        Some((w, c)) => parse_u32(w, "weight", 0, MAX_WEIGHT).map_err(|m| (c, m))?,
        None => 1,
    };
    let mut real = RealServer::new(addr, method, weight);
    if let Some((x, c)) = u.value(Opt::UpperThreshold) {
        real.upper_threshold = parse_u32(x, "upper threshold", 0, u32::MAX).map_err(|m| (c, m))?;
    }
    if let Some((y, c)) = u.value(Opt::LowerThreshold) {
        real.lower_threshold = parse_u32(y, "lower threshold", 0, u32::MAX).map_err(|m| (c, m))?;
        if real.upper_threshold != 0 && real.lower_threshold > real.upper_threshold {
            return Err((
                c,
                format!(
                    "lower threshold {} is above upper threshold {}",
                    real.lower_threshold, real.upper_threshold
                ),
            ));
        }
    }
    Ok((service, real))
}
