//! A virtual server's health: its reals, `quorum` with `hysteresis`, and the sorry server.

use super::{CheckOutcome, HealthAction, NotifyEvent, RealHealth};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Per-virtual-server settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServiceThresholds {
    /// `quorum`: minimum summed weight of live reals (keepalived's default is 1).
    pub quorum: u32,
    /// `hysteresis`: quorum is gained at `quorum + hysteresis`, lost below `quorum - hysteresis`.
    pub hysteresis: u32,
    /// Whether a `sorry_server` is configured.
    pub has_sorry_server: bool,
    /// `sorry_server_inhibit`: keep the sorry server at weight 0 while it is not needed
    /// (listed from the start) instead of adding and removing it.
    pub sorry_server_inhibit: bool,
    /// `omega`: run the down notifications when checking stops.
    pub omega: bool,
}

/// A virtual server's health: its reals and its quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceHealth {
    thresholds: ServiceThresholds,
    reals: BTreeMap<SocketAddr, RealHealth>,
    quorum_up: bool,
}

impl ServiceHealth {
    /// A service with these reals. Call [`ServiceHealth::start`] for the initial actions.
    pub fn new(thresholds: ServiceThresholds, reals: Vec<RealHealth>) -> Self {
        let reals = reals.into_iter().map(|r| (r.addr, r)).collect();
        let mut s = ServiceHealth {
            thresholds,
            reals,
            quorum_up: true,
        };
        let alive = s.alive_weight();
        s.quorum_up = alive > 0 && alive >= s.thresholds.quorum;
        s
    }

    /// Summed weight of the live reals.
    pub fn alive_weight(&self) -> u32 {
        self.reals
            .values()
            .filter(|r| r.up)
            .map(RealHealth::weight)
            .fold(0, u32::saturating_add)
    }

    /// Whether quorum is currently held.
    pub fn quorum_up(&self) -> bool {
        self.quorum_up
    }

    /// A real by address.
    pub fn real(&self, addr: &SocketAddr) -> Option<&RealHealth> {
        self.reals.get(addr)
    }

    /// All reals.
    pub fn reals(&self) -> impl Iterator<Item = &RealHealth> {
        self.reals.values()
    }

    /// The actions that publish the starting state: every real's health, and the sorry server
    /// if quorum is not held (with `sorry_server_inhibit`, the sorry server either way: active
    /// or at weight 0, as keepalived adds an inhibited sorry server at start).
    pub fn start(&self) -> Vec<HealthAction> {
        let mut out: Vec<_> = self.reals.values().map(RealHealth::publish).collect();
        if !self.quorum_up {
            out.push(HealthAction::Notify {
                real: None,
                event: NotifyEvent::QuorumDown,
            });
        }
        let t = self.thresholds;
        if t.has_sorry_server && (!self.quorum_up || t.sorry_server_inhibit) {
            out.push(HealthAction::SorryServer {
                active: !self.quorum_up,
                inhibit: t.sorry_server_inhibit,
            });
        }
        out
    }

    /// Feed a result of checker `index` of real `addr` (unknown reals are ignored).
    pub fn on_result(
        &mut self,
        now: Timestamp,
        addr: SocketAddr,
        index: usize,
        outcome: CheckOutcome,
    ) -> Vec<HealthAction> {
        let Some(real) = self.reals.get_mut(&addr) else {
            return Vec::new();
        };
        let mut out = real.on_result(now, index, outcome);
        // the live weight changes only with a real's health or weight: skip the sum otherwise
        if !out.is_empty() {
            out.extend(self.update_quorum());
        }
        out
    }

    /// Quorum with hysteresis, after any change of the live weight.
    fn update_quorum(&mut self) -> Vec<HealthAction> {
        let t = self.thresholds;
        let alive = self.alive_weight();
        let gain_at = t.quorum.saturating_add(t.hysteresis);
        let lose_below = t.quorum.saturating_sub(t.hysteresis);
        match (self.quorum_up, alive) {
            // held, but nothing alive or below the lower edge: lose it
            (true, w) if w == 0 || w < lose_below => {
                self.quorum_up = false;
                self.quorum_actions(false)
            }
            // held and still at or above the lower edge
            (true, _) => Vec::new(),
            // lost and something alive at or above the upper edge: gain it
            (false, w) if w > 0 && w >= gain_at => {
                self.quorum_up = true;
                self.quorum_actions(true)
            }
            // lost and still below the upper edge
            (false, _) => Vec::new(),
        }
    }

    fn quorum_actions(&self, up: bool) -> Vec<HealthAction> {
        let event = if up {
            NotifyEvent::QuorumUp
        } else {
            NotifyEvent::QuorumDown
        };
        let mut out = vec![HealthAction::Notify { real: None, event }];
        if self.thresholds.has_sorry_server {
            out.push(HealthAction::SorryServer {
                active: !up,
                inhibit: self.thresholds.sorry_server_inhibit,
            });
        }
        out
    }

    /// Checking stops (shutdown or removal): with `omega`, the down notifications of every live
    /// real and of the quorum; without it, nothing.
    pub fn stop(&self) -> Vec<HealthAction> {
        if !self.thresholds.omega {
            return Vec::new();
        }
        let mut out: Vec<_> = self
            .reals
            .values()
            .filter(|r| r.up)
            .map(|r| HealthAction::Notify {
                real: Some(r.addr),
                event: NotifyEvent::RealDown,
            })
            .collect();
        if self.quorum_up {
            out.push(HealthAction::Notify {
                real: None,
                event: NotifyEvent::QuorumDown,
            });
        }
        out
    }
}
