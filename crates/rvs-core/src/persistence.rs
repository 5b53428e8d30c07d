//! Persistence templates (ipvsadm `-p timeout -M netmask`).
//!
//! A template binds a group of clients — the client address masked with the persistence prefix —
//! to one real, as IPVS's template connections do. Per service there is one [`Templates`] table:
//! for an address-keyed service that makes templates per (VIP, port); for a firewall-mark
//! service the template is shared by every address and port the mark covers.
//!
//! Lifetime, as in IPVS: a template counts the connections opened through it, and lives until
//! `timeout` after it was last used or its last connection closed, whichever is later. Expiry is
//! driven by [`Templates::expire`] with a caller-supplied `now`, via a min-heap of deadlines
//! (stale heap entries are skipped when popped), so expiring is O(log n) per template, not a scan.

use crate::model::Persistence;
use crate::time::Timestamp;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// The key of a template: the client address masked with the persistence prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TemplateKey(pub IpAddr);

impl TemplateKey {
    /// The key of `client` under a `/prefix_len` netmask (lengths above the family's maximum
    /// are clamped to it: /32 for IPv4, /128 for IPv6).
    pub fn new(client: IpAddr, prefix_len: u8) -> Self {
        TemplateKey(mask_addr(client, prefix_len))
    }
}

/// `ip` with every bit after the first `prefix_len` cleared.
pub fn mask_addr(ip: IpAddr, prefix_len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let p = u32::from(prefix_len.min(32));
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let p = u32::from(prefix_len.min(128));
            let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
    }
}

/// One template. `real` is an opaque slot number chosen by the owner (the service runtime);
/// `None` once the real it pointed to was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    /// The real the clients of this template go to.
    pub real: Option<u32>,
    /// Connections opened through the template and not yet closed.
    pub conns: u32,
    /// When the template expires if it has no connections by then.
    pub expires: Timestamp,
}

/// The templates of one service.
#[derive(Debug, Clone)]
pub struct Templates {
    timeout: Duration,
    prefix_len: u8,
    map: HashMap<TemplateKey, Template>,
    deadlines: BinaryHeap<Reverse<(Timestamp, TemplateKey)>>,
}

impl Templates {
    /// An empty table for the given persistence setting.
    pub fn new(p: Persistence) -> Self {
        Templates {
            timeout: Duration::from_secs(u64::from(p.timeout)),
            prefix_len: p.prefix_len,
            map: HashMap::new(),
            deadlines: BinaryHeap::new(),
        }
    }

    /// The key a client maps to.
    pub fn key_of(&self, client: IpAddr) -> TemplateKey {
        TemplateKey::new(client, self.prefix_len)
    }

    /// The template for `key`, if any (expired-but-not-yet-swept templates included).
    pub fn get(&self, key: TemplateKey) -> Option<&Template> {
        self.map.get(&key)
    }

    /// Bind `key` to `real` (creating the template or rebinding it) and refresh its deadline.
    /// Returns the real the template pointed to before, if it was a different one.
    pub fn bind(&mut self, key: TemplateKey, real: u32, now: Timestamp) -> Option<u32> {
        let expires = now + self.timeout;
        let t = self.map.entry(key).or_insert(Template {
            real: None,
            conns: 0,
            expires,
        });
        let old = t.real.filter(|&r| r != real);
        t.real = Some(real);
        t.expires = expires;
        self.deadlines.push(Reverse((expires, key)));
        old
    }

    /// A connection was opened through `key`'s template (no-op if it no longer exists).
    pub fn opened(&mut self, key: TemplateKey, now: Timestamp) {
        if let Some(t) = self.map.get_mut(&key) {
            t.conns = t.conns.saturating_add(1);
            t.expires = now + self.timeout;
        }
    }

    /// A connection opened through `key`'s template closed: the template lives `timeout` more.
    pub fn closed(&mut self, key: TemplateKey, now: Timestamp) {
        if let Some(t) = self.map.get_mut(&key) {
            t.conns = t.conns.saturating_sub(1);
            t.expires = t.expires.max(now + self.timeout);
            if t.conns == 0 {
                self.deadlines.push(Reverse((t.expires, key)));
            }
        }
    }

    /// Point every template bound to `real` at nothing (the real was removed); returns how many.
    pub fn unbind_real(&mut self, real: u32) -> u32 {
        let mut n = 0;
        for t in self.map.values_mut().filter(|t| t.real == Some(real)) {
            t.real = None;
            n += 1;
        }
        n
    }

    /// Drop templates with no connections whose deadline is at or before `now`; returns the
    /// dropped templates' keys and the reals they were bound to.
    pub fn expire(&mut self, now: Timestamp) -> Vec<(TemplateKey, Option<u32>)> {
        let mut gone = Vec::new();
        while let Some(Reverse((at, key))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            // Skip stale heap entries: the template was refreshed or is in use.
            if let Some(t) = self.map.get(&key)
                && t.conns == 0
                && t.expires <= now
            {
                gone.push((key, t.real));
                self.map.remove(&key);
            }
        }
        if self.deadlines.len() > 4 * self.map.len() + 64 {
            self.rebuild_deadlines();
        }
        gone
    }

    /// Number of templates.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// No templates.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every template.
    pub fn iter(&self) -> impl Iterator<Item = (&TemplateKey, &Template)> {
        self.map.iter()
    }

    fn rebuild_deadlines(&mut self) {
        self.deadlines = self
            .map
            .iter()
            .filter(|(_, t)| t.conns == 0)
            .map(|(k, t)| Reverse((t.expires, *k)))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn table() -> Templates {
        Templates::new(Persistence {
            timeout: 300,
            prefix_len: 24,
        })
    }

    #[test]
    fn masks_v4_and_v6() {
        assert_eq!(mask_addr(ip("192.0.2.77"), 24), ip("192.0.2.0"));
        assert_eq!(mask_addr(ip("192.0.2.77"), 32), ip("192.0.2.77"));
        assert_eq!(mask_addr(ip("192.0.2.77"), 0), ip("0.0.0.0"));
        assert_eq!(mask_addr(ip("192.0.2.77"), 200), ip("192.0.2.77"));
        assert_eq!(mask_addr(ip("2001:db8:1:2::5"), 48), ip("2001:db8:1::"));
        assert_eq!(mask_addr(ip("2001:db8::5"), 128), ip("2001:db8::5"));
    }

    #[test]
    fn clients_in_one_netmask_share_a_template() {
        let t = table();
        assert_eq!(t.key_of(ip("192.0.2.1")), t.key_of(ip("192.0.2.200")));
        assert_ne!(t.key_of(ip("192.0.2.1")), t.key_of(ip("192.0.3.1")));
    }

    #[test]
    fn lives_timeout_after_last_close() {
        let mut t = table();
        let k = t.key_of(ip("192.0.2.1"));
        t.bind(k, 3, Timestamp::from_secs(0));
        t.opened(k, Timestamp::from_secs(0));
        // In use: never expires, however late.
        assert!(t.expire(Timestamp::from_secs(10_000)).is_empty());
        t.closed(k, Timestamp::from_secs(10_000));
        assert!(t.expire(Timestamp::from_secs(10_299)).is_empty());
        assert_eq!(t.expire(Timestamp::from_secs(10_300)), vec![(k, Some(3))]);
        assert!(t.is_empty());
    }

    #[test]
    fn unused_template_expires_after_timeout_and_refresh_extends() {
        let mut t = table();
        let k = t.key_of(ip("192.0.2.1"));
        t.bind(k, 1, Timestamp::from_secs(0));
        t.bind(k, 1, Timestamp::from_secs(100));
        assert!(t.expire(Timestamp::from_secs(300)).is_empty());
        assert_eq!(t.expire(Timestamp::from_secs(400)).len(), 1);
    }

    #[test]
    fn rebind_and_unbind() {
        let mut t = table();
        let k = t.key_of(ip("192.0.2.1"));
        assert_eq!(t.bind(k, 1, Timestamp::ZERO), None);
        assert_eq!(t.bind(k, 1, Timestamp::ZERO), None);
        assert_eq!(t.bind(k, 2, Timestamp::ZERO), Some(1));
        assert_eq!(t.unbind_real(2), 1);
        assert_eq!(t.get(k).unwrap().real, None);
    }

    #[test]
    fn close_without_template_is_harmless() {
        let mut t = table();
        let k = t.key_of(ip("192.0.2.1"));
        t.closed(k, Timestamp::ZERO);
        t.opened(k, Timestamp::ZERO);
        assert!(t.is_empty());
    }
}
