//! A `real_server` block: the real (address, forwarding method, `weight`, thresholds), its
//! notify commands and checkers, and the checker options it gives them (keepalived 2.x); and
//! keepalived's corrections of a virtual server's `quorum` and `hysteresis` against its reals.

use super::build::{VsSettings, method};
use super::checker::{Inherited, is_checker, parse_checker};
use super::lex::Node;
use super::model::*;
use super::values::Ctx;
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
