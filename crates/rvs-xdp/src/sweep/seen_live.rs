//! What the sliced sweep remembers of the flows the walk of `rvs_conns` read live, so that
//! the walk of `rvs_nat_rev` looks up (one bpf() call each) only the others.

use crate::abi::{Config, Conn, FlowKey};
use crate::conntrack::{expired, timeout_ns};
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

/// Flows the connection table's walk saw live, so that the reverse walk looks up only the
/// others (a look-up costs ~1.5 µs, five times an entry of a batch read): by a 64-bit hash of
/// the flow (keyed per process), the time it expires at as read, its real and local port, and
/// the pass
/// that saw it. A flow that got a shorter state since (e.g. FIN) is judged by the old time
/// until the walk reads it again (one pass); one gone without the walk deleting it (evicted) is
/// forgotten at the end of the next pass. 25–50 bytes per flow (with the hash table's slack);
/// kept only while the reverse table has entries.
#[derive(Default)]
pub(super) struct SeenLive {
    flows: HashMap<u64, Seen, BuildHasherDefault<KeyHash>>,
    hasher: RandomState,
    /// The timeouts the expiry times were computed with.
    cfg: Option<Config>,
    pass: u32,
}

#[derive(Clone, Copy)]
struct Seen {
    expires: u64,
    real: u32,
    lport: u16,
    pass: u32,
}

impl SeenLive {
    /// Remember the live flows of `conns` (a slice read at `now`), forget the others.
    pub fn record(&mut self, cfg: &Config, now: u64, conns: &[(FlowKey, Conn)]) {
        if self.cfg.as_ref() != Some(cfg) {
            self.flows.clear();
            self.cfg = Some(*cfg);
        }
        for (k, c) in conns {
            let id = self.hasher.hash_one(k);
            if expired(cfg, Some(c), now) {
                self.flows.remove(&id);
                continue;
            }
            let expires = c.last_ns.saturating_add(timeout_ns(cfg, c.state));
            let (real, lport, pass) = (c.real, c.lport, self.pass);
            self.flows.insert(
                id,
                Seen {
                    expires,
                    real,
                    lport,
                    pass,
                },
            );
        }
    }

    /// Whether the walk saw flow `orig` live until at least `now`, on real `real` and on
    /// reverse entry `rev`'s local port if it has one (what [`super::verdict`] keeps).
    pub fn live(&self, orig: &FlowKey, rev: &FlowKey, real: u32, now: u64) -> bool {
        self.flows
            .get(&self.hasher.hash_one(orig))
            .is_some_and(|s| {
                now <= s.expires && s.real == real && (s.lport == 0 || s.lport == rev.dport)
            })
    }

    /// A pass over the connection table ended: forget the flows it did not see.
    pub fn pass_done(&mut self) {
        let pass = self.pass;
        self.flows.retain(|_, s| s.pass == pass);
        self.pass = pass.wrapping_add(1);
    }

    pub fn clear(&mut self) {
        self.flows = HashMap::default();
    }
}

/// The identity hash: [`SeenLive`]'s keys are hashes already.
#[derive(Default)]
struct KeyHash(u64);

impl Hasher for KeyHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::sweep::tests::{NOW, S, conn, flow};

    /// What the sliced walk remembers: live flows until their expiry time, on their real and
    /// local port; expired ones forgotten at once, vanished ones after a pass that did not see them,
    /// all of them when the timeouts change.
    #[test]
    fn seen_live_flows_are_trusted_only_as_far_as_they_were_read() {
        let cfg = Config::default();
        let mut seen = SeenLive::default();
        let (a, b, c) = (flow(1, 80), flow(2, 80), flow(3, 80));
        let rev = |port: u16| flow(100, port);
        // TIME_WAIT (120 s) idle 100 s: 20 s left. b on local port 1000. c expired.
        seen.record(
            &cfg,
            NOW,
            &[(a, conn(100, 0)), (b, conn(100, 1000)), (c, conn(500, 0))],
        );
        assert!(seen.live(&a, &rev(1), 0, NOW) && seen.live(&a, &rev(1), 0, NOW + 20 * S));
        assert!(
            !seen.live(&a, &rev(1), 0, NOW + 21 * S),
            "past its expiry time"
        );
        assert!(seen.live(&b, &rev(1000), 0, NOW) && !seen.live(&b, &rev(2000), 0, NOW));
        assert!(!seen.live(&c, &rev(1), 0, NOW), "expired when read");
        assert!(!seen.live(&a, &rev(1), 1, NOW), "on another real");
        // a read again expired (e.g. its state got shorter): forgotten.
        seen.record(&cfg, NOW, &[(a, conn(500, 0))]);
        assert!(!seen.live(&a, &rev(1), 0, NOW));
        // A pass that saw b, then one that did not: b is forgotten at the end of the second.
        seen.pass_done();
        assert!(
            seen.live(&b, &rev(1000), 0, NOW),
            "seen in the pass that ended"
        );
        seen.pass_done();
        assert!(
            !seen.live(&b, &rev(1000), 0, NOW),
            "not seen in the last pass"
        );
        // New timeouts: nothing read under the old ones is trusted.
        seen.record(&cfg, NOW, &[(b, conn(1, 1000))]);
        let mut longer = cfg;
        longer.timeout_ns.iter_mut().for_each(|t| *t *= 2);
        seen.record(&longer, NOW, &[(a, conn(100, 0))]);
        assert!(seen.live(&a, &rev(1), 0, NOW) && !seen.live(&b, &rev(1000), 0, NOW));
    }
}
