//! Health-check state machines, keepalived's semantics as data.
//!
//! Three levels, each pure (no IO, no clock — `now` is passed in):
//!
//! * [`CheckerMachine`] — one checker of one real: when the next check is due (`delay_loop`,
//!   `delay_before_retry`, a `warmup` offset for the first one), how many consecutive failures
//!   mark it down (`retry`, alias `nb_get_retry`: down after `retry + 1` failures in a row), and
//!   where it starts (`alpha`: start down and need one success; otherwise start up).
//! * [`RealHealth`] — a real with one or more checkers: up only while every checker is up (as
//!   keepalived's `num_failed_checkers`); carries the `misc_dynamic` weight.
//! * [`ServiceHealth`] — a virtual server: its reals, `quorum` with `hysteresis` over the summed
//!   weight of the live reals, and the `sorry_server` that serves while quorum is lost.
//!
//! Every method returns [`HealthAction`]s (set health, set dynamic weight, run a notify command,
//! switch the sorry server) that the caller carries out; nothing here has side effects.

mod checker;
mod real;
mod service;
#[cfg(test)]
mod tests;

pub use checker::{CheckThresholds, CheckerMachine, Verdict};
pub use real::RealHealth;
pub use service::{ServiceHealth, ServiceThresholds};

use crate::model::Health;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckOutcome {
    /// The real answered as expected; `dynamic_weight` is set by `misc_dynamic` scripts.
    Success { dynamic_weight: Option<u32> },
    /// The real did not answer as expected.
    Failure,
}

/// Events a notify command is attached to (`notify_up`, `notify_down`, `quorum_up`,
/// `quorum_down`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NotifyEvent {
    RealUp,
    RealDown,
    QuorumUp,
    QuorumDown,
}

/// A side effect for the caller to carry out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HealthAction {
    /// Set a real's observed health. `inhibit` (from `inhibit_on_failure`) asks to keep a down
    /// real listed at weight 0 rather than removing it from the engines.
    SetHealth {
        real: SocketAddr,
        health: Health,
        inhibit: bool,
    },
    /// Set (or clear) a real's dynamic weight (`misc_dynamic`).
    SetDynamicWeight {
        real: SocketAddr,
        weight: Option<u32>,
    },
    /// Run the notify command for this event (`real` is `None` for quorum events).
    Notify {
        real: Option<SocketAddr>,
        event: NotifyEvent,
    },
    /// Switch the service's sorry server on or off. With `inhibit` (`sorry_server_inhibit`)
    /// "off" means listed at weight 0 rather than removed (keepalived's "Disabling"), and it is
    /// listed that way from the start.
    SorryServer { active: bool, inhibit: bool },
}
