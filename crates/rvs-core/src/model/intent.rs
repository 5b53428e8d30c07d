//! Operator intent versus observed health.
//!
//! What the operator said (weight, [`AdminState`]) is kept apart from what the checkers saw
//! ([`Health`], and a dynamic weight from `misc_dynamic` checks); schedulers only ever see the
//! effective weight derived from both by [`effective_weight`].

use serde::{Deserialize, Serialize};

/// What the operator wants for a real server.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum AdminState {
    /// In service: gets new connections according to its weight.
    #[default]
    Enabled,
    /// Draining: no new connections, existing ones run to completion.
    Drain,
    /// Disabled: no new connections; shown as disabled (existing connections are not cut).
    Disabled,
}

/// What the health checkers observed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// No checker configured, or no verdict yet: treated as up.
    #[default]
    Unknown,
    /// The checker says the real answers.
    Up,
    /// The checker says the real is down: no new connections.
    Down,
}

/// The weight schedulers see: the operator's weight unless the operator drains/disables the real
/// or the checkers report it down; a dynamic weight from a checker (`misc_dynamic`) replaces the
/// configured one while the real is up.
pub fn effective_weight(
    configured: u32,
    admin: AdminState,
    health: Health,
    dynamic: Option<u32>,
) -> u32 {
    match (admin, health) {
        (AdminState::Drain | AdminState::Disabled, _) => 0,
        (AdminState::Enabled, Health::Down) => 0,
        (AdminState::Enabled, Health::Up | Health::Unknown) => dynamic.unwrap_or(configured),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_weight_combines_intent_and_health() {
        use AdminState::*;
        use Health::*;
        assert_eq!(effective_weight(5, Enabled, Unknown, None), 5);
        assert_eq!(effective_weight(5, Enabled, Up, None), 5);
        assert_eq!(effective_weight(5, Enabled, Up, Some(2)), 2);
        assert_eq!(effective_weight(5, Enabled, Down, Some(2)), 0);
        assert_eq!(effective_weight(5, Drain, Up, None), 0);
        assert_eq!(effective_weight(5, Disabled, Up, None), 0);
        assert_eq!(effective_weight(0, Enabled, Up, None), 0);
    }
}
