//! The statement tree → [`KeepalivedConfig`]: `global_defs`, `virtual_server_group`,
//! `virtual_server` (address port, `fwmark`, `group`) with its `real_server`s, the FULLNAT
//! `local_address_group`s ([`super::laddr`]), and the VRRP blocks.

use super::laddr;
use super::lex::{Node, Word};
use super::model::*;
use super::real::{clamp_quorum, portless_checks, real_ports, real_server};
use super::values::Ctx;
use super::vs::vs_settings;
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
