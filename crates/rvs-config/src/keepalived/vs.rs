//! The settings of a `virtual_server` block read before its reals: scheduler and its flags,
//! forwarding method, persistence, protocol and family, FULLNAT local address group, health
//! settings (`delay_loop`, `quorum`, `sorry_server`, notify commands, ...) and the checker
//! options it gives its reals' checkers.

use super::checker::Inherited;
use super::lex::{Node, Word};
use super::model::*;
use super::real::weight;
use super::values::Ctx;
use rvs_core::model::*;
use std::net::SocketAddr;

/// Settings read from a virtual_server block before its reals.
pub(super) struct VsSettings {
    pub(super) options: ServiceOptions,
    pub(super) method: ForwardMethod,
    pub(super) protocol: Protocol,
    pub(super) family: AddressFamily,
    /// The `family` word, if given (checked against address services' own family).
    pub(super) family_word: Option<Word>,
    pub(super) granularity: Option<Word>,
    /// `laddr_group_name` (DPVS / Ali-LVS FULLNAT local addresses).
    pub(super) laddr_group: Option<Word>,
    pub(super) health: VirtualServerHealth,
    /// What the virtual server gives its reals' checkers (`retry`, `delay_before_retry`,
    /// `warmup`, `connect_timeout`; `delay_loop` and `alpha` are also in `health`).
    pub(super) checker_defaults: Inherited,
    /// `weight`: the weight of a real that sets none (keepalived 2.x; default 1).
    pub(super) weight: Option<u32>,
    /// Where `quorum` and `hysteresis` were written (for the warnings of [`clamp_quorum`]).
    pub(super) quorum_at: Option<Word>,
    pub(super) hysteresis_at: Option<Word>,
}

pub(super) fn vs_settings(ctx: &mut Ctx, body: &[Node]) -> VsSettings {
    let mut s = VsSettings {
        options: ServiceOptions {
            scheduler: SchedulerKind::Wlc,
            ..Default::default()
        },
        method: DEFAULT_LB_KIND,
        protocol: Protocol::Tcp,
        family: AddressFamily::V4,
        family_word: None,
        granularity: None,
        laddr_group: None,
        checker_defaults: Inherited {
            delay_loop: DEFAULT_DELAY_LOOP,
            alpha: false,
            retry: None,
            delay_before_retry: None,
            warmup: None,
            connect_timeout: None,
            virtualhost: None,
        },
        weight: None,
        quorum_at: None,
        hysteresis_at: None,
        health: VirtualServerHealth {
            service: ServiceKey::FwMark {
                mark: 0,
                family: AddressFamily::V4,
            },
            delay_loop: DEFAULT_DELAY_LOOP,
            quorum: 1,
            hysteresis: 0,
            alpha: false,
            omega: false,
            inhibit_on_failure: false,
            sorry_server: None,
            sorry_server_inhibit: false,
            sorry_server_method: None,
            virtualhost: None,
            quorum_up: None,
            quorum_down: None,
            reals: Vec::new(),
        },
    };
    let h = &mut s.health;
    let d = &mut s.checker_defaults;
    let mut sched_flags: Vec<&Word> = Vec::new();
    for n in body {
        match n.keyword.text.as_str() {
            "real_server" => {}
            "lb_algo" | "lvs_sched" => {
                if let Some(w) = ctx.one(n, "a scheduler name") {
                    match w.text.parse() {
                        Ok(k) => s.options.scheduler = k,
                        Err(e) => ctx.error(w, format!("{e}")),
                    }
                }
            }
            "lb_kind" | "lvs_method" => {
                if let Some(m) = ctx
                    .one(n, "NAT, DR, TUN or FNAT")
                    .and_then(|w| method(ctx, w))
                {
                    s.method = m;
                }
            }
            "persistence_timeout" => {
                let timeout = match ctx.num_or_none(n, "a number of seconds (at least 1)") {
                    // keepalived: the keyword alone means its default timeout
                    Ok(None) => Some(KEEPALIVED_PERSISTENCE_TIMEOUT),
                    Ok(t) => t,
                    Err(()) => None,
                };
                let timeout = match timeout {
                    Some(0) => {
                        // keepalived and ipvsadm refuse it too; leave the keyword out instead
                        ctx.error(
                            &n.args[0],
                            "expected a persistence_timeout of at least 1 second, found 0 \
                             (leave persistence_timeout out for a service without persistence)",
                        );
                        Persistence::DEFAULT_TIMEOUT
                    }
                    Some(t) => t,
                    None => Persistence::DEFAULT_TIMEOUT,
                };
                s.options.persistence = Some(Persistence {
                    timeout,
                    prefix_len: 32,
                });
            }
            "persistence_granularity" => s.granularity = ctx.one(n, "a netmask").cloned(),
            "laddr_group_name" => {
                s.laddr_group = ctx.one(n, "a local_address_group name").cloned();
            }
            "protocol" => {
                if let Some(w) = ctx.one(n, "TCP, UDP or SCTP") {
                    match w.text.to_ascii_uppercase().as_str() {
                        "TCP" => s.protocol = Protocol::Tcp,
                        "UDP" => s.protocol = Protocol::Udp,
                        "SCTP" => s.protocol = Protocol::Sctp,
                        _ => ctx.error(w, format!("expected TCP, UDP or SCTP, found '{}'", w.text)),
                    }
                }
            }
            // keepalived's keyword is `ip_family`; `family` is rvs's older spelling
            "ip_family" | "family" => match ctx.one(n, "'inet' or 'inet6'") {
                Some(w) if w.text == "inet" || w.text == "inet6" => {
                    s.family = if w.text == "inet" {
                        AddressFamily::V4
                    } else {
                        AddressFamily::V6
                    };
                    s.family_word = Some(w.clone());
                }
                Some(w) => ctx.error(w, format!("expected 'inet' or 'inet6', found '{}'", w.text)),
                None => {}
            },
            "ops" => s.options.one_packet = ctx.flag(n),
            "sh-port" | "sh-fallback" | "mh-port" | "mh-fallback" | "flag-1" | "flag-2" => {
                if ctx.flag(n) {
                    sched_flags.push(&n.keyword);
                }
            }
            "delay_loop" => h.delay_loop = ctx.period(n).unwrap_or(h.delay_loop),
            "retry" => d.retry = ctx.num(n, "a retry count").or(d.retry),
            "delay_before_retry" => d.delay_before_retry = ctx.secs(n).or(d.delay_before_retry),
            "warmup" => d.warmup = ctx.secs(n).or(d.warmup),
            "connect_timeout" => d.connect_timeout = ctx.period(n).or(d.connect_timeout),
            "weight" => s.weight = weight(ctx, n).or(s.weight),
            "quorum" => {
                h.quorum = ctx.num(n, "a weight sum").unwrap_or(h.quorum);
                s.quorum_at = Some(n.keyword.clone());
            }
            "hysteresis" => {
                h.hysteresis = ctx.num(n, "a weight").unwrap_or(h.hysteresis);
                s.hysteresis_at = Some(n.keyword.clone());
            }
            "alpha" => h.alpha = ctx.flag(n),
            "omega" => h.omega = ctx.flag(n),
            "inhibit_on_failure" => h.inhibit_on_failure = ctx.flag(n),
            "sorry_server" => {
                ctx.at_most(n, 2);
                ctx.no_block(n);
                let ip = ctx
                    .arg(n, 0, "an address")
                    .and_then(|w| ctx.ip(w, "sorry_server"));
                let port = ctx.arg(n, 1, "a port").and_then(|w| ctx.port(w));
                if let (Some(ip), Some(port)) = (ip, port) {
                    h.sorry_server = Some(SocketAddr::new(ip, port));
                }
            }
            "sorry_server_inhibit" => h.sorry_server_inhibit = ctx.flag(n),
            "sorry_server_lvs_method" => {
                if let Some(m) = ctx
                    .one(n, "NAT, DR, TUN or FNAT")
                    .and_then(|w| method(ctx, w))
                {
                    h.sorry_server_method = Some(m);
                }
            }
            "virtualhost" => h.virtualhost = ctx.word(n, "a host name"),
            "quorum_up" => h.quorum_up = ctx.script(n),
            "quorum_down" => h.quorum_down = ctx.script(n),
            _ => ctx.unsupported(n, "virtual_server"),
        }
    }
    sched_flag_keywords(ctx, &mut s.options, &sched_flags);
    let d = &mut s.checker_defaults;
    d.delay_loop = s.health.delay_loop;
    d.alpha = s.health.alpha;
    d.virtualhost = None; // the virtual server's is applied at check time
    s
}

/// keepalived's scheduler flag keywords (`sh-port`, `sh-fallback`, `mh-port`, `mh-fallback`;
/// `flag-1`/`flag-2` are the fallback/port flag of the service's scheduler, as in the kernel).
/// A flag of another scheduler than the service's is a warning and ignored, as keepalived
/// does.
fn sched_flag_keywords(ctx: &mut Ctx, options: &mut ServiceOptions, words: &[&Word]) {
    let sched = options.scheduler;
    let f = &mut options.flags;
    for w in words {
        let (needs, flag) = match (w.text.as_str(), sched) {
            ("sh-port", _) | ("flag-2", SchedulerKind::Sh) => (SchedulerKind::Sh, &mut f.sh_port),
            ("sh-fallback", _) | ("flag-1", SchedulerKind::Sh) => {
                (SchedulerKind::Sh, &mut f.sh_fallback)
            }
            ("mh-fallback", _) | ("flag-1", _) => (SchedulerKind::Mh, &mut f.mh_fallback),
            (_, _) => (SchedulerKind::Mh, &mut f.mh_port),
        };
        if sched == needs {
            *flag = true;
        } else {
            ctx.warnings.push(w.error(format!(
                "'{}' only applies to the {needs} scheduler, not {sched}; ignored",
                w.text
            )));
        }
    }
}

pub(super) fn method(ctx: &mut Ctx, w: &Word) -> Option<ForwardMethod> {
    Some(match w.text.to_ascii_uppercase().as_str() {
        "NAT" => ForwardMethod::Nat,
        "DR" => ForwardMethod::Dr,
        "TUN" => ForwardMethod::Tun,
        "FNAT" | "FULLNAT" => ForwardMethod::FullNat,
        _ => {
            ctx.error(
                w,
                format!("expected NAT, DR, TUN or FNAT, found '{}'", w.text),
            );
            return None;
        }
    })
}
