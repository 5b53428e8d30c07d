//! `rr` — round robin (`ip_vs_rr.c`): the next available real after the last one picked.

use super::{PickRequest, RealState, Scheduler};
use crate::model::SchedulerKind;

/// Round robin over the available reals.
#[derive(Debug, Default)]
pub struct RoundRobin {
    /// Index of the last real picked; the next pick starts after it.
    last: Option<usize>,
}

impl Scheduler for RoundRobin {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Rr
    }

    fn rebuild(&mut self, reals: &[RealState]) {
        if self.last.is_some_and(|l| l >= reals.len()) {
            self.last = None;
        }
    }

    fn pick(&mut self, reals: &[RealState], _req: &PickRequest) -> Option<usize> {
        let n = reals.len();
        let start = self.last.map_or(0, |l| l + 1);
        let idx = (0..n).map(|i| (start + i) % n).find(|&i| reals[i].available())?;
        self.last = Some(idx);
        Some(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;
    use crate::time::Timestamp;

    fn req() -> PickRequest {
        PickRequest {
            protocol: Protocol::Tcp,
            client: "192.0.2.1:1234".parse().unwrap(),
            dest: "10.0.0.3:80".parse().unwrap(),
            now: Timestamp::ZERO,
        }
    }

    fn reals(weights: &[u32]) -> Vec<RealState> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| RealState::new(format!("10.0.0.{}:80", i + 7).parse().unwrap(), w))
            .collect()
    }

    #[test]
    fn rotates_and_skips_unavailable() {
        let mut r = reals(&[1, 0, 1, 1]);
        r[3].overloaded = true;
        let mut s = RoundRobin::default();
        s.rebuild(&r);
        let picks: Vec<_> = (0..4).map(|_| s.pick(&r, &req()).unwrap()).collect();
        assert_eq!(picks, vec![0, 2, 0, 2]);
    }

    #[test]
    fn none_when_nothing_available() {
        let r = reals(&[0, 0]);
        let mut s = RoundRobin::default();
        s.rebuild(&r);
        assert_eq!(s.pick(&r, &req()), None);
        assert_eq!(s.pick(&[], &req()), None);
    }
}
