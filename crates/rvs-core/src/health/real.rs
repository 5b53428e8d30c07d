//! A real with its checkers: up only while every checker is up; its `misc_dynamic` weight.

use super::{CheckOutcome, CheckerMachine, HealthAction, NotifyEvent};
use crate::model::Health;
use crate::time::Timestamp;
use std::net::SocketAddr;

/// A real with its checkers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealHealth {
    pub(super) addr: SocketAddr,
    weight: u32,
    inhibit_on_failure: bool,
    checkers: Vec<CheckerMachine>,
    dynamic_weight: Option<u32>,
    pub(super) up: bool,
}

impl RealHealth {
    /// A real of configured `weight` with the given checkers (none = always up).
    pub fn new(
        addr: SocketAddr,
        weight: u32,
        inhibit_on_failure: bool,
        checkers: Vec<CheckerMachine>,
    ) -> Self {
        let up = checkers.iter().all(CheckerMachine::is_up);
        RealHealth {
            addr,
            weight,
            inhibit_on_failure,
            checkers,
            dynamic_weight: None,
            up,
        }
    }

    /// Whether every checker says up.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// The address of the real.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The real's checkers.
    pub fn checkers(&self) -> &[CheckerMachine] {
        &self.checkers
    }

    /// The weight that counts toward quorum: the dynamic one if set, else the configured one.
    pub fn weight(&self) -> u32 {
        self.dynamic_weight.unwrap_or(self.weight)
    }

    /// The actions that publish the current verdict (for a start or a reload).
    pub(super) fn publish(&self) -> HealthAction {
        let health = if self.up { Health::Up } else { Health::Down };
        HealthAction::SetHealth {
            real: self.addr,
            health,
            inhibit: self.inhibit_on_failure,
        }
    }

    /// Feed a result of checker `index`; out-of-range indexes are ignored.
    pub fn on_result(
        &mut self,
        now: Timestamp,
        index: usize,
        outcome: CheckOutcome,
    ) -> Vec<HealthAction> {
        let mut out = Vec::new();
        let Some(checker) = self.checkers.get_mut(index) else {
            return out;
        };
        checker.on_result(now, outcome);
        if let CheckOutcome::Success { dynamic_weight } = outcome
            && dynamic_weight.is_some()
            && dynamic_weight != self.dynamic_weight
        {
            self.dynamic_weight = dynamic_weight;
            out.push(HealthAction::SetDynamicWeight {
                real: self.addr,
                weight: dynamic_weight,
            });
        }
        let up = self.checkers.iter().all(CheckerMachine::is_up);
        if up != self.up {
            self.up = up;
            out.push(self.publish());
            let event = if up {
                NotifyEvent::RealUp
            } else {
                NotifyEvent::RealDown
            };
            out.push(HealthAction::Notify {
                real: Some(self.addr),
                event,
            });
        }
        out
    }
}
