//! The statement tree → [`KeepalivedConfig`]: `global_defs`, `virtual_server_group`,
//! `virtual_server` (address port, `fwmark`, `group`) with its `real_server`s, the FULLNAT
//! `local_address_group`s ([`super::laddr`]), and the VRRP blocks.

use super::checker::Inherited;
use super::laddr;
use super::lex::{Node, Word};
use super::model::*;
use super::real::{clamp_quorum, real_server, weight};
use super::values::Ctx;
use super::{KeepalivedConfig, vrrp};
use rvs_core::model::*;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

/// Most addresses one `virtual_server_group` range may expand to.
const MAX_RANGE: u32 = 256;

/// Build the model from the top-level statements.
pub fn build(ctx: &mut Ctx, nodes: &[Node]) -> KeepalivedConfig {
    let mut cfg = KeepalivedConfig::default();
    let mut groups: BTreeMap<String, Vec<GroupMember>> = BTreeMap::new();
    for n in nodes
        .iter()
        .filter(|n| n.keyword.text == "virtual_server_group")
    {
        if let Some(name) = ctx.arg(n, 0, "a group name") {
            ctx.at_most(n, 1);
            let members = parse_group(ctx, n);
            if groups.contains_key(&name.text) {
                // the second definition used to replace the first silently
                ctx.error(
                    name,
                    format!("virtual_server_group '{}' is defined twice", name.text),
                );
                continue;
            }
            groups.insert(name.text.clone(), members);
        }
    }
    let laddr_groups = laddr::parse_groups(ctx, nodes);
    for n in nodes {
        match n.keyword.text.as_str() {
            "global_defs" => {
                ctx.at_most(n, 0);
                for g in ctx.block(n) {
                    match g.keyword.text.as_str() {
                        "router_id" => cfg.global.router_id = ctx.word(g, "a router id"),
                        "script_user" => {
                            ctx.at_most(g, 2);
                            ctx.no_block(g);
                            if let Some(u) = ctx.arg(g, 0, "a user name") {
                                cfg.global.script_user = Some(u.text.clone());
                                cfg.global.script_group = g.args.get(1).map(|w| w.text.clone());
                            }
                        }
                        _ => ctx.unsupported(g, "global_defs"),
                    }
                }
            }
            "virtual_server_group" | "local_address_group" => {}
            "virtual_server" => virtual_server(ctx, n, (&groups, &laddr_groups), &mut cfg),
            "vrrp_instance" => {
                let v = vrrp::parse_instance(ctx, n);
                if unique(ctx, n, cfg.vrrp.instances.iter().map(|i| &i.name), &v.name) {
                    cfg.vrrp.instances.push(v);
                }
            }
            "vrrp_sync_group" => {
                let g = vrrp::parse_sync_group(ctx, n);
                if unique(
                    ctx,
                    n,
                    cfg.vrrp.sync_groups.iter().map(|g| &g.name),
                    &g.name,
                ) {
                    cfg.vrrp.sync_groups.push(g);
                }
            }
            "vrrp_script" => {
                let s = vrrp::parse_script(ctx, n);
                if unique(ctx, n, cfg.vrrp.scripts.iter().map(|s| &s.name), &s.name) {
                    cfg.vrrp.scripts.push(s);
                }
            }
            _ => ctx.unsupported(n, "the top level"),
        }
    }
    vrrp::check_references(ctx, nodes, &mut cfg.vrrp);
    apply_script_user(&mut cfg);
    cfg
}

/// `global_defs`' `script_user` for every notify command and `MISC_CHECK` that names no user.
fn apply_script_user(cfg: &mut KeepalivedConfig) {
    let Some(user) = cfg.global.script_user.clone() else {
        return;
    };
    let group = cfg.global.script_group.clone();
    let fill = |user_slot: &mut Option<String>, group_slot: &mut Option<String>| {
        if user_slot.is_none() {
            *user_slot = Some(user.clone());
            *group_slot = group.clone();
        }
    };
    for vs in &mut cfg.virtual_servers {
        for s in [&mut vs.quorum_up, &mut vs.quorum_down]
            .into_iter()
            .flatten()
        {
            fill(&mut s.user, &mut s.group);
        }
        for r in &mut vs.reals {
            for s in [&mut r.notify_up, &mut r.notify_down].into_iter().flatten() {
                fill(&mut s.user, &mut s.group);
            }
            for c in &mut r.checkers {
                if let CheckKind::Misc(m) = &mut c.kind {
                    fill(&mut m.user, &mut m.group);
                }
            }
        }
    }
}

/// Whether `name` (of block `n`) is not among `names` already; an error at the name if it is.
fn unique<'a>(
    ctx: &mut Ctx,
    n: &Node,
    mut names: impl Iterator<Item = &'a String>,
    name: &str,
) -> bool {
    if name.is_empty() || !names.any(|x| x == name) {
        return true;
    }
    ctx.error(
        &n.args[0],
        format!("{} '{name}' is defined twice", n.keyword.text),
    );
    false
}

/// One member of a `virtual_server_group`.
#[derive(Debug, Clone, Copy)]
enum GroupMember {
    Addr(SocketAddr),
    FwMark(u32),
}

fn parse_group(ctx: &mut Ctx, node: &Node) -> Vec<GroupMember> {
    let mut out = Vec::new();
    for n in ctx.block(node) {
        if n.keyword.text == "fwmark" {
            if let Some(m) = ctx
                .num(n, "a firewall mark")
                .and_then(|m| mark(ctx, n, 0, m))
            {
                out.push(GroupMember::FwMark(m));
            }
            continue;
        }
        let Some(port) = ctx.one(n, "a port").and_then(|w| ctx.port(w)) else {
            continue;
        };
        for ip in address_range(ctx, &n.keyword) {
            out.push(GroupMember::Addr(SocketAddr::new(ip, port)));
        }
    }
    out
}

/// A firewall mark (argument `i` of `n`): at least 1, as ipvsadm and the kernel require.
fn mark(ctx: &mut Ctx, n: &Node, i: usize, m: u32) -> Option<u32> {
    if m == 0 {
        ctx.error(
            &n.args[i],
            "expected a firewall mark of at least 1, found 0 (the mark of unmarked packets)",
        );
        return None;
    }
    Some(m)
}

/// `10.0.0.1` or keepalived's range form `10.0.0.1-10` (last octet / last group varies).
pub(super) fn address_range(ctx: &mut Ctx, w: &Word) -> Vec<IpAddr> {
    let Some((first, last)) = w.text.split_once('-') else {
        return ctx.ip(w, "an address").into_iter().collect();
    };
    let Some(first) = ctx.ip(
        &Word {
            text: first.to_string(),
            ..w.clone()
        },
        "an address",
    ) else {
        return Vec::new();
    };
    let radix = if first.is_ipv4() { 10 } else { 16 };
    let Ok(last) = u32::from_str_radix(last, radix) else {
        ctx.error(w, format!("expected ADDRESS-LAST in '{}'", w.text));
        return Vec::new();
    };
    let (base, start, max) = match first {
        IpAddr::V4(a) => (u128::from(u32::from(a)), u32::from(a.octets()[3]), 255),
        IpAddr::V6(a) => (u128::from(a), u32::from(a.segments()[7]), 0xffff),
    };
    if last < start || last > max || last - start >= MAX_RANGE {
        ctx.error(
            w,
            format!(
                "bad range '{}' (at most {MAX_RANGE} addresses, ascending)",
                w.text
            ),
        );
        return Vec::new();
    }
    (0..=last - start)
        .map(|i| match first {
            IpAddr::V4(_) => IpAddr::V4(((base as u32) + i).into()),
            IpAddr::V6(_) => IpAddr::V6((base + u128::from(i)).into()),
        })
        .collect()
}

/// The service keys a `virtual_server` line names.
fn service_keys(
    ctx: &mut Ctx,
    n: &Node,
    protocol: Protocol,
    family: AddressFamily,
    groups: &BTreeMap<String, Vec<GroupMember>>,
) -> Vec<ServiceKey> {
    let Some(first) = ctx.arg(n, 0, "an address and port, 'fwmark N' or 'group NAME'") else {
        return Vec::new();
    };
    ctx.at_most(n, 2);
    let fwmark = |mark| ServiceKey::FwMark { mark, family };
    match first.text.as_str() {
        "fwmark" => ctx
            .parse(n, 1, "a firewall mark")
            .and_then(|m| mark(ctx, n, 1, m))
            .map(fwmark)
            .into_iter()
            .collect(),
        "group" => {
            let Some(name) = ctx.arg(n, 1, "a group name") else {
                return Vec::new();
            };
            let Some(members) = groups.get(&name.text) else {
                ctx.error(
                    name,
                    format!("no virtual_server_group named '{}'", name.text),
                );
                return Vec::new();
            };
            members
                .iter()
                .map(|m| match *m {
                    GroupMember::Addr(addr) => ServiceKey::Addr { protocol, addr },
                    GroupMember::FwMark(mark) => fwmark(mark),
                })
                .collect()
        }
        _ => {
            let ip = ctx.ip(first, "a virtual address");
            let port = ctx.arg(n, 1, "a port").and_then(|w| ctx.port(w));
            match (ip, port) {
                (Some(ip), Some(port)) => vec![ServiceKey::Addr {
                    protocol,
                    addr: SocketAddr::new(ip, port),
                }],
                _ => Vec::new(),
            }
        }
    }
}

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

fn virtual_server(
    ctx: &mut Ctx,
    n: &Node,
    (groups, laddr_groups): (&BTreeMap<String, Vec<GroupMember>>, &laddr::Groups),
    cfg: &mut KeepalivedConfig,
) {
    let body = ctx.block(n);
    let mut s = vs_settings(ctx, body);
    let mut reals = Vec::new();
    for r in body.iter().filter(|r| r.keyword.text == "real_server") {
        if let Some(real) = real_server(ctx, r, &s) {
            reals.push((r, real));
        }
    }
    clamp_quorum(ctx, &mut s, &reals);
    let keys = service_keys(ctx, n, s.protocol, s.family, groups);
    if let [ServiceKey::Addr { addr, .. }] = keys.as_slice()
        && n.args.first().is_some_and(|w| w.text != "group")
    {
        real_ports(ctx, addr.port(), &mut reals);
    }
    portless_checks(ctx, &reals);
    if let Some(w) = &s.family_word
        && let Some(k) = keys
            .iter()
            .find(|k| matches!(k, ServiceKey::Addr { .. }) && k.family() != s.family)
    {
        // it was ignored: an address service has its address's family
        ctx.error(
            w,
            format!("family '{}' does not match the address of {k}", w.text),
        );
    }
    let fullnat = s.method == ForwardMethod::FullNat
        || reals
            .iter()
            .any(|(_, (r, _))| r.method == ForwardMethod::FullNat);
    let laddr_group = match &s.laddr_group {
        Some(w) if !fullnat => {
            ctx.warnings.push(w.error(
                "laddr_group_name is only used by FNAT (FULLNAT) services; ignored".to_string(),
            ));
            None
        }
        other => other.as_ref(),
    };
    if let Some(g) = &s.granularity
        && s.options.persistence.is_none()
    {
        // keepalived makes the service persistent with its default timeout
        ctx.warnings.push(g.error(format!(
            "persistence_granularity without persistence_timeout: persistent for \
             {KEEPALIVED_PERSISTENCE_TIMEOUT} s (keepalived's default)"
        )));
        s.options.persistence = Some(Persistence {
            timeout: KEEPALIVED_PERSISTENCE_TIMEOUT,
            prefix_len: 32,
        });
    }
    if s.options.persistence.is_none()
        && let Some(k) = keys
            .iter()
            .find(|k| matches!(k, ServiceKey::Addr { addr, .. } if addr.port() == 0))
    {
        // as ipvsadm and keepalived: port 0 means every port, which only persistence uses
        let at = n
            .args
            .get(1)
            .filter(|w| w.text == "0")
            .unwrap_or(&n.keyword);
        ctx.error(
            at,
            format!("port 0 (every port) of {k} needs persistence_timeout"),
        );
    }
    for key in keys {
        if let Some(g) = &s.granularity {
            let prefix = granularity(ctx, g, key.family());
            if let Some(p) = &mut s.options.persistence {
                p.prefix_len = prefix;
            }
        } else if let Some(p) = &mut s.options.persistence {
            p.prefix_len = key.family().max_prefix();
        }
        if let Err(e) = cfg.desired.add_service(key, s.options) {
            ctx.error(&n.keyword, e.to_string());
            continue;
        }
        if let Some(w) = laddr_group
            && let Some(pool) = laddr::service_pool(ctx, w, &key, laddr_groups)
        {
            cfg.local_addresses.insert(key, pool);
        }
        let mut health = s.health.clone();
        health.service = key;
        for (node, (real, check)) in &reals {
            match cfg.desired.add_real(&key, *real) {
                Ok(()) => health.reals.push(check.clone()),
                Err(e) => ctx.error(&node.keyword, e.to_string()),
            }
        }
        cfg.virtual_servers.push(health);
    }
}

fn vs_settings(ctx: &mut Ctx, body: &[Node]) -> VsSettings {
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

/// The ports of a `virtual_server IP PORT`'s reals, as keepalived sets them: a real written
/// without a port (or port 0) takes the virtual server's, and a DR or TUN real — whose traffic
/// keeps its destination port — on another port is set to it, with a warning.
fn real_ports(ctx: &mut Ctx, vport: u16, reals: &mut [(&Node, (RealServer, RealCheck))]) {
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
fn portless_checks(ctx: &mut Ctx, reals: &[(&Node, (RealServer, RealCheck))]) {
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

/// `persistence_granularity`: a dotted IPv4 netmask, or a prefix length.
fn granularity(ctx: &mut Ctx, w: &Word, family: AddressFamily) -> u8 {
    let max = family.max_prefix();
    if let Ok(IpAddr::V4(mask)) = w.text.parse::<IpAddr>() {
        let bits = u32::from(mask);
        if bits.leading_ones() + bits.trailing_zeros() == 32 {
            return bits.leading_ones() as u8;
        }
    } else if let Ok(p) = w.text.trim_start_matches('/').parse::<u8>()
        && p <= max
    {
        return p;
    }
    ctx.error(
        w,
        format!(
            "expected a netmask (like 255.255.255.0) or prefix length, found '{}'",
            w.text
        ),
    );
    max
}
