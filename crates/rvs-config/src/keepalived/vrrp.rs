//! `vrrp_instance`, `vrrp_sync_group` and `vrrp_script` blocks → the typed VRRP model.

use super::lex::Node;
use super::model::*;
use super::values::Ctx;
use std::time::Duration;

/// The block name (first argument) of a named block.
fn name(ctx: &mut Ctx, node: &Node) -> String {
    ctx.at_most(node, 1);
    ctx.arg(node, 0, "a name")
        .map(|w| w.text.clone())
        .unwrap_or_default()
}

/// Words inside a list block (`group { VI_1 VI_2 }`): any number per line.
fn list(ctx: &mut Ctx, node: &Node) -> Vec<String> {
    ctx.at_most(node, 0);
    let mut out = Vec::new();
    for n in ctx.block(node) {
        ctx.no_block(n);
        out.push(n.keyword.text.clone());
        out.extend(n.args.iter().map(|w| w.text.clone()));
    }
    out
}

/// `track_interface` / `track_script`: one name per line, optionally `weight N` (keepalived's
/// dynamic priority, which rvs does not implement: a warning).
fn tracked(ctx: &mut Ctx, node: &Node) -> Vec<String> {
    ctx.at_most(node, 0);
    let mut out = Vec::new();
    for n in ctx.block(node) {
        ctx.no_block(n);
        out.push(n.keyword.text.clone());
        match n.args.first() {
            Some(w) if w.text == "weight" && n.args.len() == 2 => {
                ctx.warnings.push(w.error(format!(
                    "'weight' in {} is not supported by rvs; ignored",
                    node.keyword.text
                )))
            }
            _ => ctx.at_most(n, 0),
        }
    }
    out
}

/// `vrrp_instance NAME { ... }`.
pub fn parse_instance(ctx: &mut Ctx, node: &Node) -> VrrpInstance {
    let mut v = VrrpInstance {
        name: name(ctx, node),
        state: None,
        interface: None,
        virtual_router_id: None,
        priority: 100,
        advert_int: Duration::from_secs(1),
        nopreempt: false,
        preempt_delay: None,
        auth_type: None,
        auth_pass: None,
        virtual_ipaddress: Vec::new(),
        unicast_src_ip: None,
        unicast_peer: Vec::new(),
        track_interface: Vec::new(),
        track_script: Vec::new(),
        notify_master: None,
        notify_backup: None,
        notify_fault: None,
        notify: None,
    };
    for n in ctx.block(node) {
        match n.keyword.text.as_str() {
            "state" => {
                if let Some(w) = ctx.one(n, "MASTER or BACKUP") {
                    v.state = match w.text.to_ascii_uppercase().as_str() {
                        "MASTER" => Some(VrrpState::Master),
                        "BACKUP" => Some(VrrpState::Backup),
                        _ => {
                            ctx.error(w, format!("expected MASTER or BACKUP, found '{}'", w.text));
                            None
                        }
                    }
                }
            }
            "interface" => v.interface = ctx.word(n, "an interface name"),
            "virtual_router_id" => match ctx.num::<u8>(n, "a router id (1-255)") {
                Some(0) => ctx.error(&n.args[0], "expected a router id (1-255), found 0"),
                id => v.virtual_router_id = id,
            },
            "priority" => match ctx.num::<u8>(n, "a priority (1-255)") {
                Some(0) => ctx.error(&n.args[0], "expected a priority (1-255), found 0"),
                Some(p) => v.priority = p,
                None => {}
            },
            "advert_int" => v.advert_int = ctx.period(n).unwrap_or(v.advert_int),
            "nopreempt" => v.nopreempt = ctx.flag(n),
            "preempt_delay" => v.preempt_delay = ctx.secs(n),
            "authentication" => {
                ctx.at_most(n, 0);
                for a in ctx.block(n) {
                    match a.keyword.text.as_str() {
                        "auth_type" => match ctx.one(a, "PASS or AH") {
                            Some(w) if matches!(w.text.as_str(), "PASS" | "AH") => {
                                v.auth_type = Some(w.text.clone())
                            }
                            Some(w) => {
                                ctx.error(w, format!("expected PASS or AH, found '{}'", w.text))
                            }
                            None => {}
                        },
                        "auth_pass" => v.auth_pass = ctx.word(a, "a password"),
                        _ => ctx.unsupported(a, "authentication"),
                    }
                }
            }
            "virtual_ipaddress" => {
                ctx.at_most(n, 0);
                for a in ctx.block(n) {
                    if let Some(vip) = virtual_address(ctx, a) {
                        v.virtual_ipaddress.push(vip);
                    }
                }
            }
            "unicast_src_ip" => {
                v.unicast_src_ip = ctx
                    .one(n, "an address")
                    .and_then(|w| ctx.ip(w, "unicast_src_ip"))
            }
            "unicast_peer" => {
                ctx.at_most(n, 0);
                for a in ctx.block(n) {
                    ctx.at_most(a, 0);
                    ctx.no_block(a);
                    if let Some(ip) = ctx.ip(&a.keyword, "a unicast peer") {
                        v.unicast_peer.push(ip);
                    }
                }
            }
            "track_interface" => v.track_interface = tracked(ctx, n),
            "track_script" => v.track_script = tracked(ctx, n),
            "notify_master" => v.notify_master = ctx.rest(n, "a command"),
            "notify_backup" => v.notify_backup = ctx.rest(n, "a command"),
            "notify_fault" => v.notify_fault = ctx.rest(n, "a command"),
            "notify" => v.notify = ctx.rest(n, "a command"),
            _ => ctx.unsupported(n, "vrrp_instance"),
        }
    }
    v
}

/// One line of `virtual_ipaddress`: `ADDR[/PREFIX] [dev IF] [label L] ...`.
fn virtual_address(ctx: &mut Ctx, n: &Node) -> Option<VirtualAddress> {
    ctx.no_block(n);
    let w = &n.keyword;
    let (addr_s, prefix_s) = match w.text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (w.text.as_str(), None),
    };
    let Ok(addr) = addr_s.parse::<std::net::IpAddr>() else {
        ctx.error(
            w,
            format!("expected an address[/prefix], found '{}'", w.text),
        );
        return None;
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix_len = match prefix_s.map(str::parse::<u8>) {
        None => max,
        Some(Ok(p)) if p <= max => p,
        Some(_) => {
            ctx.error(
                w,
                format!("expected a prefix length 0-{max} in '{}'", w.text),
            );
            return None;
        }
    };
    let mut vip = VirtualAddress {
        addr,
        prefix_len,
        dev: None,
        label: None,
    };
    let mut args = n.args.iter();
    while let Some(a) = args.next() {
        match a.text.as_str() {
            "dev" | "label" => match args.next() {
                Some(v) if a.text == "dev" => vip.dev = Some(v.text.clone()),
                Some(v) => vip.label = Some(v.text.clone()),
                None => ctx.error(a, format!("expected a value after '{}'", a.text)),
            },
            other => ctx.warnings.push(a.error(format!(
                "virtual_ipaddress option '{other}' is not supported by rvs; ignored"
            ))),
        }
    }
    Some(vip)
}

/// `vrrp_sync_group NAME { group { ... } ... }`.
pub fn parse_sync_group(ctx: &mut Ctx, node: &Node) -> VrrpSyncGroup {
    let mut g = VrrpSyncGroup {
        name: name(ctx, node),
        group: Vec::new(),
        notify_master: None,
        notify_backup: None,
        notify_fault: None,
        notify: None,
    };
    for n in ctx.block(node) {
        match n.keyword.text.as_str() {
            "group" => g.group = list(ctx, n),
            "notify_master" => g.notify_master = ctx.rest(n, "a command"),
            "notify_backup" => g.notify_backup = ctx.rest(n, "a command"),
            "notify_fault" => g.notify_fault = ctx.rest(n, "a command"),
            "notify" => g.notify = ctx.rest(n, "a command"),
            _ => ctx.unsupported(n, "vrrp_sync_group"),
        }
    }
    g
}

/// keepalived ignores, with a warning, a `track_script` entry naming no `vrrp_script` and a
/// sync group member naming no `vrrp_instance`; so does rvs, located at the name.
pub fn check_references(ctx: &mut Ctx, nodes: &[Node], vrrp: &mut VrrpConfig) {
    let scripts: Vec<String> = vrrp.scripts.iter().map(|s| s.name.clone()).collect();
    let instances: Vec<String> = vrrp.instances.iter().map(|i| i.name.clone()).collect();
    let blocks = |top: &'static str, inner: &'static str| {
        nodes
            .iter()
            .filter(move |n| n.keyword.text == top)
            .filter_map(|n| Some((n.args.first()?.text.clone(), n.block.as_ref()?)))
            .flat_map(move |(name, body)| {
                body.iter()
                    .filter(move |b| b.keyword.text == inner)
                    .filter_map(move |b| Some((name.clone(), b.block.as_ref()?)))
            })
    };
    for (name, entries) in blocks("vrrp_instance", "track_script") {
        for w in entries.iter().map(|e| &e.keyword) {
            if !scripts.contains(&w.text) {
                ctx.warnings.push(w.error(format!(
                    "track_script '{}' names no vrrp_script; ignored",
                    w.text
                )));
                if let Some(v) = vrrp.instances.iter_mut().find(|v| v.name == name) {
                    v.track_script.retain(|s| *s != w.text);
                }
            }
        }
    }
    for (name, entries) in blocks("vrrp_sync_group", "group") {
        for w in entries
            .iter()
            .flat_map(|e| std::iter::once(&e.keyword).chain(&e.args))
        {
            if !instances.contains(&w.text) {
                ctx.warnings.push(w.error(format!(
                    "sync group member '{}' names no vrrp_instance; ignored",
                    w.text
                )));
                if let Some(g) = vrrp.sync_groups.iter_mut().find(|g| g.name == name) {
                    g.group.retain(|s| *s != w.text);
                }
            }
        }
    }
}

/// `vrrp_script NAME { ... }`.
pub fn parse_script(ctx: &mut Ctx, node: &Node) -> VrrpScript {
    let mut s = VrrpScript {
        name: name(ctx, node),
        script: None,
        interval: Duration::from_secs(1),
        timeout: None,
        weight: 0,
        fall: 1,
        rise: 1,
    };
    for n in ctx.block(node) {
        match n.keyword.text.as_str() {
            "script" => s.script = ctx.rest(n, "a command"),
            "interval" => s.interval = ctx.period(n).unwrap_or(s.interval),
            "timeout" => s.timeout = ctx.period(n),
            "weight" => {
                if let Some(w) = ctx.num::<i32>(n, "a weight (-253..253)") {
                    if (-253..=253).contains(&w) {
                        s.weight = w;
                    } else {
                        ctx.error(
                            &n.args[0],
                            format!("expected a weight in -253..253, found {w}"),
                        );
                    }
                }
            }
            "fall" => s.fall = ctx.num(n, "a count").unwrap_or(s.fall),
            "rise" => s.rise = ctx.num(n, "a count").unwrap_or(s.rise),
            _ => ctx.unsupported(n, "vrrp_script"),
        }
    }
    s
}
