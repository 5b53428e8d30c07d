//! The churn tests' harness (`tests/churn.rs`, `tests/udp_churn.rs`): a mutator that crashes,
//! restarts, drains, removes, re-adds and resets the three reals of a service and switches its
//! scheduler; client threads whose failures are excused only when a crash or reset overlapped
//! them. The reals themselves are rvs-testbed's echo reals.

use super::{add_service, fullnat};
use rvs_core::desired::Change;
use rvs_core::engine::Engine;
use rvs_core::{RealServer, SchedulerKind, ServiceKey, ServiceOptions};
use rvs_proxy::ProxyEngine;
use rvs_testbed::echo::{self, EchoReal};
pub use rvs_testbed::echo::{Cuts, Rng};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A real server the churn can crash and bring back on the same address.
pub trait ChurnReal: Send + Sync + 'static {
    fn addr(&self) -> SocketAddr;
    /// The byte it tags its replies with (0, 1, 2).
    fn id(&self) -> u8;
    fn is_up(&self) -> bool;
    /// The process dies: nothing listens on its address, its connections are cut.
    fn crash(&self);
    /// The process comes back on the same address (nothing if it is up).
    fn restart(&self);
    /// Forget connections that have ended.
    fn prune(&self) {}
}

/// A real's membership and weight as the mutator last set them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Member {
    In,
    Drained,
    Removed,
}

/// The mutator over a service of three reals (FULLNAT, weight 1 each).
pub struct Churn<R> {
    pub key: ServiceKey,
    pub reals: Vec<Arc<R>>,
    members: [Member; 3],
    /// How often each kind of change ran (see [`Churn::run`]).
    pub ops: [u32; 6],
    base: ServiceOptions,
}

impl<R: ChurnReal> Churn<R> {
    /// Adds the service `key` with `base` options over `reals` to `e`.
    pub fn new(
        e: &mut ProxyEngine,
        key: ServiceKey,
        reals: Vec<Arc<R>>,
        base: ServiceOptions,
    ) -> Self {
        let rs: Vec<RealServer> = reals.iter().map(|r| fullnat(r.addr(), 1)).collect();
        add_service(e, key, base, &rs);
        Churn {
            key,
            reals,
            members: [Member::In; 3],
            ops: [0; 6],
            base,
        }
    }

    /// One change every 15-40 ms for `d`: crash a real or bring one back, all back, drain or
    /// remove a real or put it back, reset a real's connections through the engine, another
    /// scheduler. At most one real is crashed and at most one out of the scheduling (drained or
    /// removed) at a time, so with two retries every new connection can reach a live real.
    /// Crashes and resets are counted in `cuts`; `snap` gets the state after each change.
    pub fn run(
        &mut self,
        e: &mut ProxyEngine,
        d: Duration,
        rng: &mut Rng,
        cuts: &Cuts,
        snap: &Mutex<String>,
    ) {
        let schedulers = [
            SchedulerKind::Wlc,
            SchedulerKind::Rr,
            SchedulerKind::Wrr,
            SchedulerKind::Lc,
            SchedulerKind::Sh,
            SchedulerKind::Mh,
        ];
        let key = self.key;
        let t0 = Instant::now();
        while t0.elapsed() < d {
            thread::sleep(Duration::from_millis(15 + rng.below(25)));
            let r = rng.below(3) as usize;
            let real = Arc::clone(&self.reals[r]);
            let op = rng.below(6) as usize;
            match op {
                0 => {
                    if real.is_up() && self.reals.iter().all(|x| x.is_up()) {
                        cuts.begin();
                        real.crash();
                        cuts.end();
                    } else {
                        real.restart();
                    }
                }
                1 => self.reals.iter().for_each(|x| x.restart()),
                2 | 3 => {
                    let others_in = (0..3).all(|i| i == r || self.members[i] == Member::In);
                    let (member, change) = match (self.members[r], op) {
                        (Member::In, 2) if others_in => {
                            (Member::Drained, edit(key, real.addr(), 0))
                        }
                        (Member::In, _) if others_in => (
                            Member::Removed,
                            Change::RemoveReal {
                                service: key,
                                addr: real.addr(),
                            },
                        ),
                        (Member::In, _) => continue,
                        (old, _) => (Member::In, self.back_in(old, real.addr()).unwrap()),
                    };
                    self.members[r] = member;
                    e.apply(&[change]).expect("apply");
                }
                4 => {
                    if self.members[r] != Member::Removed {
                        cuts.begin();
                        e.reset_real(&key, real.addr()).expect("reset_real");
                        cuts.end();
                    }
                }
                _ => {
                    let options = ServiceOptions {
                        scheduler: schedulers[rng.below(schedulers.len() as u64) as usize],
                        ..self.base
                    };
                    e.apply(&[Change::EditService { key, options }])
                        .expect("edit service");
                }
            }
            self.ops[op] += 1;
            *snap.lock().unwrap() = format!(
                "{} ms, after change {op} on real {r}: {}",
                t0.elapsed().as_millis(),
                self.describe(e)
            );
            self.reals.iter().for_each(|x| x.prune());
        }
    }

    /// The change that puts a real back in from `old` (None if it is in).
    fn back_in(&self, old: Member, addr: SocketAddr) -> Option<Change> {
        match old {
            Member::In => None,
            Member::Drained => Some(edit(self.key, addr, 1)),
            Member::Removed => Some(Change::AddReal {
                service: self.key,
                real: fullnat(addr, 1),
            }),
        }
    }

    /// Quiet again: every real up and in, round robin, and the time for reals taken out by
    /// passive detection to be probed has passed.
    pub fn restore(&mut self, e: &mut ProxyEngine) {
        self.reals.iter().for_each(|x| x.restart());
        for r in 0..3 {
            if let Some(change) = self.back_in(self.members[r], self.reals[r].addr()) {
                e.apply(&[change]).expect("apply");
            }
            self.members[r] = Member::In;
        }
        let options = ServiceOptions {
            scheduler: SchedulerKind::Rr,
            ..self.base
        };
        e.apply(&[Change::EditService {
            key: self.key,
            options,
        }])
        .expect("edit service");
        thread::sleep(Duration::from_millis(
            u64::from(self.base.proxy.fail_timeout_ms) + 100,
        ));
    }

    /// The reals as the mutator left them and as the engine sees them, for failure messages.
    pub fn describe(&self, e: &ProxyEngine) -> String {
        let stats = e.stats();
        let svc = &stats.services[&self.key];
        let each: Vec<String> = (self.reals.iter().zip(&self.members))
            .map(|(real, member)| {
                let seen = svc.reals.get(&real.addr()).map_or("-".to_string(), |r| {
                    format!(
                        "active {} inactive {} connect failures {} passive downs {} out {} ms",
                        r.active_conns,
                        r.inactive_conns,
                        r.connect_failures,
                        r.passive_downs,
                        r.passive_out_ms
                    )
                });
                let up = if real.is_up() { "up" } else { "crashed" };
                format!("real {}: {up}, {member:?}, {seen}", real.id())
            })
            .collect();
        each.join("; ")
    }
}

fn edit(service: ServiceKey, addr: SocketAddr, weight: u32) -> Change {
    Change::EditReal {
        service,
        real: fullnat(addr, weight),
    }
}

/// Open descriptors of this process.
pub fn descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

impl<K: echo::Kind + Send + Sync + 'static> ChurnReal for EchoReal<K>
where
    K::Socket: Send,
{
    fn addr(&self) -> SocketAddr {
        EchoReal::addr(self)
    }
    fn id(&self) -> u8 {
        EchoReal::id(self)
    }
    fn is_up(&self) -> bool {
        EchoReal::is_up(self)
    }
    fn crash(&self) {
        EchoReal::crash(self)
    }
    fn restart(&self) {
        EchoReal::restart(self)
    }
    fn prune(&self) {
        EchoReal::prune(self)
    }
}
