//! One checker of one real: when its next check is due and when its verdict flips
//! (`delay_loop`, `retry`, `delay_before_retry`, `alpha`).

use super::CheckOutcome;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Per-checker thresholds (keepalived's checker and virtual-server keywords).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckThresholds {
    /// `delay_loop`: time between checks while the verdict is stable.
    pub delay_loop: Duration,
    /// `retry` / `nb_get_retry`: failures tolerated before the real is marked down.
    pub retry: u32,
    /// `delay_before_retry`: time before a retry after a failure.
    pub delay_before_retry: Duration,
    /// `alpha`: start down and wait for a first success.
    pub alpha: bool,
}

impl Default for CheckThresholds {
    /// keepalived's defaults: delay_loop 60 s, retry 1, delay_before_retry 1 s, no alpha.
    fn default() -> Self {
        CheckThresholds {
            delay_loop: Duration::from_secs(60),
            retry: 1,
            delay_before_retry: Duration::from_secs(1),
            alpha: false,
        }
    }
}

/// What happened to one checker's verdict after a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Unchanged (including a failure that is still within `retry`).
    Same,
    /// Went up.
    Up,
    /// Went down.
    Down,
}

/// One checker of one real.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckerMachine {
    thresholds: CheckThresholds,
    up: bool,
    failures: u32,
    next_due: Timestamp,
}

impl CheckerMachine {
    /// A checker created at `now`; the first check is due after `warmup_offset` (the caller
    /// draws it from `0..=warmup`, keepalived's random warmup).
    pub fn new(thresholds: CheckThresholds, now: Timestamp, warmup_offset: Duration) -> Self {
        CheckerMachine {
            thresholds,
            up: !thresholds.alpha,
            failures: 0,
            next_due: now + warmup_offset,
        }
    }

    /// The same checker with its retries spent, as keepalived starts its checkers when the
    /// daemon starts (`retry_it = retry`): until its first success one failure takes the real
    /// down; from then on `retry` counts as configured. (A checker made by a reload retries as
    /// configured from the start.)
    pub fn with_retries_spent(mut self) -> Self {
        self.failures = self.thresholds.retry;
        self
    }

    /// Whether this checker currently says up.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// When the next check should start.
    pub fn next_due(&self) -> Timestamp {
        self.next_due
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Feed the result of a check that finished at `now`.
    pub fn on_result(&mut self, now: Timestamp, outcome: CheckOutcome) -> Verdict {
        let t = self.thresholds;
        match (self.up, outcome) {
            // success while up: stay, normal cadence
            (true, CheckOutcome::Success { .. }) => {
                self.failures = 0;
                self.next_due = now + t.delay_loop;
                Verdict::Same
            }
            // success while down: up at once
            (false, CheckOutcome::Success { .. }) => {
                self.failures = 0;
                self.up = true;
                self.next_due = now + t.delay_loop;
                Verdict::Up
            }
            // failure while up and retries left: retry soon
            (true, CheckOutcome::Failure) if self.failures < t.retry => {
                self.failures += 1;
                self.next_due = now + t.delay_before_retry;
                Verdict::Same
            }
            // failure while up, retries spent: down
            (true, CheckOutcome::Failure) => {
                self.failures = 0;
                self.up = false;
                self.next_due = now + t.delay_loop;
                Verdict::Down
            }
            // failure while down: stay down, normal cadence
            (false, CheckOutcome::Failure) => {
                self.next_due = now + t.delay_loop;
                Verdict::Same
            }
        }
    }
}
