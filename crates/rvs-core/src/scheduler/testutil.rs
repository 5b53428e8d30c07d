//! Helpers shared by the schedulers' unit tests.

use super::{PickRequest, RealState};
use crate::model::Protocol;
use crate::time::Timestamp;
use std::net::SocketAddr;

/// Reals 10.0.0.7:80, 10.0.0.8:80, ... with the given weights and no connections.
pub(crate) fn reals(weights: &[u32]) -> Vec<RealState> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let addr = SocketAddr::from(([10, 0, (i / 200) as u8, (i % 200) as u8 + 7], 80));
            RealState::new(addr, w)
        })
        .collect()
}

/// A TCP request from 192.0.2.1:1234 to 10.0.0.3:80 at time zero.
pub(crate) fn req() -> PickRequest {
    req_to("192.0.2.1:1234", "10.0.0.3:80", 0)
}

/// A TCP request from `client` to `dest` at `now_secs`.
pub(crate) fn req_to(client: &str, dest: &str, now_secs: u64) -> PickRequest {
    PickRequest {
        protocol: Protocol::Tcp,
        client: client.parse().expect("client address"),
        dest: dest.parse().expect("destination address"),
        now: Timestamp::from_secs(now_secs),
    }
}

/// Open one connection on `reals[idx]` (active + 1) and tell the scheduler.
pub(crate) fn open(s: &mut dyn super::Scheduler, reals: &mut [RealState], idx: usize) {
    reals[idx].active += 1;
    s.counts_changed(reals, idx);
}
