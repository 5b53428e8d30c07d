//! FULLNAT local addresses as DPVS's and Ali-LVS's keepalived write them:
//!
//! ```text
//! local_address_group laddr_g1 {
//!     192.168.100.200 dpdk0      # DPVS: an address and the port it is on
//!     192.168.100.201-203        # a range: the last octet (IPv4) or group (IPv6, hex) varies
//!     fd00::200
//! }
//! virtual_server 192.168.100.254 80 {
//!     lb_kind FNAT
//!     laddr_group_name laddr_g1
//!     ...
//! }
//! ```
//!
//! A group is checked by the rules of [`crate::local_addr`] (duplicates, unicast, at most
//! [`MAX_PER_FAMILY`] per family); a virtual server takes the group's addresses of its VIP's
//! family, and naming a group without any is an error. The interface name after an address is
//! accepted and ignored (rvs does not configure local addresses; they must be on the director).

use super::build::address_range;
use super::lex::{Node, Word};
use super::values::Ctx;
use crate::local_addr::{self, MAX_PER_FAMILY, family_name};
use rvs_core::model::{AddressFamily, ServiceKey};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The `local_address_group` blocks by name.
pub type Groups = BTreeMap<String, Vec<IpAddr>>;

/// Every top-level `local_address_group NAME { ... }`.
pub fn parse_groups(ctx: &mut Ctx, nodes: &[Node]) -> Groups {
    let mut groups = Groups::new();
    for n in nodes
        .iter()
        .filter(|n| n.keyword.text == "local_address_group")
    {
        let Some(name) = ctx.arg(n, 0, "a group name") else {
            continue;
        };
        ctx.at_most(n, 1);
        let addrs = parse_group(ctx, n, name);
        if groups.contains_key(&name.text) {
            ctx.error(
                name,
                format!("local_address_group '{}' is defined twice", name.text),
            );
            continue;
        }
        groups.insert(name.text.clone(), addrs);
    }
    groups
}

fn parse_group(ctx: &mut Ctx, node: &Node, name: &Word) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for entry in ctx.block(node) {
        ctx.no_block(entry);
        if let Some(dev) = entry.args.first() {
            ctx.warnings.push(dev.error(format!(
                "interface '{}' after a local address is ignored: rvs uses the address as \
                 configured on the director",
                dev.text
            )));
            ctx.at_most(entry, 1);
        }
        for ip in address_range(ctx, &entry.keyword) {
            match local_addr::check_addr(ip, &out, None) {
                Ok(()) => out.push(ip),
                Err(e) => ctx.error(&entry.keyword, e.to_string()),
            }
        }
    }
    if let Err(e) = local_addr::check_counts(&out) {
        ctx.error(name, format!("local_address_group '{}': {e}", name.text));
    }
    out
}

/// The local addresses `laddr_group_name NAME` gives service `key`: the group's addresses of
/// the VIP's family. `None` (with an error) for an unknown group or one without any.
pub fn service_pool(
    ctx: &mut Ctx,
    name: &Word,
    key: &ServiceKey,
    groups: &Groups,
) -> Option<Vec<IpAddr>> {
    let Some(all) = groups.get(&name.text) else {
        ctx.error(
            name,
            format!("no local_address_group named '{}'", name.text),
        );
        return None;
    };
    let family = key.family();
    let pool: Vec<IpAddr> = all
        .iter()
        .copied()
        .filter(|a| AddressFamily::of(*a) == family)
        .take(MAX_PER_FAMILY)
        .collect();
    if pool.is_empty() {
        ctx.error(
            name,
            format!(
                "local_address_group '{}' has no {} address for {key}",
                name.text,
                family_name(family)
            ),
        );
        return None;
    }
    Some(pool)
}
