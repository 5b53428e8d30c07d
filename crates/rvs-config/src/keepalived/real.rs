//! A `real_server` block: the real (address, forwarding method, `weight`, thresholds), its
//! notify commands and checkers, and the checker options it gives them (keepalived 2.x); and
//! keepalived's corrections against a virtual server's reals: `quorum` and `hysteresis`, the
//! reals' ports, checkers that would connect to port 0.

use super::checker::{Inherited, is_checker, parse_checker};
use super::lex::Node;
use super::model::*;
use super::values::Ctx;
use super::vs::{VsSettings, method};
use rvs_core::model::*;
use std::net::SocketAddr;

/// One `real_server`: the real for the desired state and its checking; `None` when its address
/// is bad (an error is recorded).
pub(super) fn real_server(
    ctx: &mut Ctx,
    n: &Node,
    s: &VsSettings,
) -> Option<(RealServer, RealCheck)> {
    let ip = ctx
        .arg(n, 0, "a real server address")
        .and_then(|w| ctx.ip(w, "a real server address"));
    let port = match n.args.get(1) {
        Some(w) => ctx.port(w),
        None => Some(0),
    };
    ctx.at_most(n, 2);
    let addr = SocketAddr::new(ip?, port?);
    let mut real = RealServer::new(addr, s.method, s.weight.unwrap_or(1));
    let vs = &s.checker_defaults;
    // the real server's own checker defaults (keepalived 2.x), over the virtual server's
    let mut own = Inherited {
        retry: None,
        delay_before_retry: None,
        warmup: None,
        connect_timeout: None,
        virtualhost: None,
        ..vs.clone()
    };
    let mut checkers = Vec::new();
    let mut check = RealCheck {
        addr,
        weight: 1,
        inhibit_on_failure: s.health.inhibit_on_failure,
        notify_up: None,
        notify_down: None,
        checkers: Vec::new(),
    };
    for r in ctx.block(n) {
        let kw = r.keyword.text.as_str();
        match kw {
            "weight" => real.weight = weight(ctx, r).unwrap_or(real.weight),
            "delay_loop" => own.delay_loop = ctx.period(r).unwrap_or(own.delay_loop),
            "alpha" => own.alpha = ctx.flag(r),
            "retry" => own.retry = ctx.num(r, "a retry count").or(own.retry),
            "delay_before_retry" => own.delay_before_retry = ctx.secs(r).or(own.delay_before_retry),
            "warmup" => own.warmup = ctx.secs(r).or(own.warmup),
            "connect_timeout" => own.connect_timeout = ctx.period(r).or(own.connect_timeout),
            "virtualhost" => own.virtualhost = ctx.word(r, "a host name").or(own.virtualhost),
            "inhibit_on_failure" => check.inhibit_on_failure = ctx.flag(r),
            "notify_up" => check.notify_up = ctx.script(r),
            "notify_down" => check.notify_down = ctx.script(r),
            "uthreshold" => real.upper_threshold = ctx.num(r, "a connection count").unwrap_or(0),
            "lthreshold" => real.lower_threshold = ctx.num(r, "a connection count").unwrap_or(0),
            "lb_kind" | "lvs_method" => {
                if let Some(m) = ctx
                    .one(r, "NAT, DR, TUN or FNAT")
                    .and_then(|w| method(ctx, w))
                {
                    real.method = m;
                }
            }
            // parsed below, once the real's own defaults (written anywhere in it) are known
            _ if is_checker(kw) => checkers.push(r),
            _ => ctx.unsupported(r, "real_server"),
        }
    }
    let inh = own.over(vs);
    for r in checkers {
        check.checkers.extend(parse_checker(ctx, r, &inh));
    }
    check.weight = real.weight;
    Some((real, check))
}

/// A `weight` (0-65535).
pub(super) fn weight(ctx: &mut Ctx, n: &Node) -> Option<u32> {
    match ctx.num::<u32>(n, "a weight (0-65535)") {
        Some(w) if w <= MAX_WEIGHT => Some(w),
        Some(w) => {
            ctx.error(&n.args[0], format!("weight {w} out of range (0-65535)"));
            None
        }
        None => None,
    }
}

/// keepalived's corrections, each a located warning: a `quorum` above the summed weight of the
/// reals (it could never be reached) becomes that sum, and a `hysteresis` not below `quorum`
/// becomes `quorum - 1` (else quorum, once lost, could only come back above every real's weight).
pub(super) fn clamp_quorum(
    ctx: &mut Ctx,
    s: &mut VsSettings,
    reals: &[(&Node, (RealServer, RealCheck))],
) {
    let h = &mut s.health;
    let sum = reals
        .iter()
        .map(|(_, (r, _))| r.weight)
        .fold(0u32, u32::saturating_add);
    if let Some(at) = &s.quorum_at
        && sum > 0
        && h.quorum > sum
    {
        ctx.warnings.push(at.error(format!(
            "quorum {} exceeds the summed weight of the real servers ({sum}); using {sum} \
             (as keepalived does)",
            h.quorum
        )));
        h.quorum = sum;
    }
    if let Some(at) = &s.hysteresis_at
        && h.quorum > 0
        && h.hysteresis >= h.quorum
    {
        let to = h.quorum - 1;
        ctx.warnings.push(at.error(format!(
            "hysteresis {} is not below quorum {}; using {to} (as keepalived does)",
            h.hysteresis, h.quorum
        )));
        h.hysteresis = to;
    }
}

/// The ports of a `virtual_server IP PORT`'s reals, as keepalived sets them: a real written
/// without a port (or port 0) takes the virtual server's, and a DR or TUN real — whose traffic
/// keeps its destination port — on another port is set to it, with a warning.
pub(super) fn real_ports(
    ctx: &mut Ctx,
    vport: u16,
    reals: &mut [(&Node, (RealServer, RealCheck))],
) {
    for (node, (real, check)) in reals.iter_mut() {
        let port = real.addr.port();
        let keeps_port = matches!(real.method, ForwardMethod::Dr | ForwardMethod::Tun);
        if port != 0 && (port == vport || !keeps_port) {
            continue;
        }
        if port != 0 {
            let kind = if real.method == ForwardMethod::Dr {
                "DR"
            } else {
                "TUN"
            };
            ctx.warnings.push(node.args[1].error(format!(
                "a {kind} real server receives the virtual server's port {vport}, not {port}; \
                 using {vport} (as keepalived does)"
            )));
        }
        real.addr.set_port(vport);
        check.addr = real.addr;
    }
}

/// A checker that would connect to port 0 (a real without a port, in a `fwmark` or `group`
/// service, and no `connect_port`) fails every check: said so, at the real.
pub(super) fn portless_checks(ctx: &mut Ctx, reals: &[(&Node, (RealServer, RealCheck))]) {
    for (node, (real, check)) in reals {
        let connects = |c: &Checker| {
            !matches!(c.kind, CheckKind::Misc(_) | CheckKind::Ping)
                && c.target(real.addr).port() == 0
        };
        if let Some(c) = check.checkers.iter().find(|c| connects(c)) {
            ctx.warnings.push(node.keyword.error(format!(
                "real_server {} has no port, so its {} connects to port 0 and fails every \
                 check; give the checker a connect_port",
                real.addr.ip(),
                c.kind.name()
            )));
        }
    }
}
