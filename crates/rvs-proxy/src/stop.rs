//! How a real's connections hear that they must end — the operator reset them, or (for UDP
//! sessions) the real left the service or went down — without each connection polling a lock
//! shared with every other connection to that real.
//!
//! Each connection registers a [`Stop`] with its real ([`Stops::watch`]); the real fires every
//! registered stop at once ([`Stops::fire`]). A connection's task polls only its own stop: an
//! atomic load and an [`AtomicWaker`] registration on a cache line no other connection touches.
//! (A `tokio::sync::Notify` per real, as before, takes the real's mutex on every poll of every
//! waiting connection — on every wake-up of every connection of the real, from every worker
//! thread at once.) The registry's mutex is taken once when a connection starts and once when it
//! ends, and by the rare firing.
//!
//! No firing is lost: a watcher registers first and then reads the real's state (whatever a
//! firing changes before it takes the registry's lock), so it either is in the registry when the
//! firing walks it, or sees the change.

use crate::slots::Locked;
use atomic_waker::AtomicWaker;
use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::Poll;

/// The operator reset the real's connections.
pub const RESET: u8 = 1;
/// The real left its service or went down.
pub const GONE: u8 = 2;

/// One connection's stop signal: the events fired at it so far, and its task's waker.
#[derive(Debug, Default)]
pub struct Stop {
    events: AtomicU8,
    waker: AtomicWaker,
}

impl Stop {
    /// Records `events` and wakes the connection's task.
    pub fn fire(&self, events: u8) {
        self.events.fetch_or(events, Ordering::AcqRel);
        self.waker.wake();
    }

    /// Resolves with the events fired so far once any of `wanted` has been.
    pub async fn fired(&self, wanted: u8) -> u8 {
        poll_fn(|cx| {
            let seen = self.events.load(Ordering::Acquire);
            if seen & wanted != 0 {
                return Poll::Ready(seen);
            }
            self.waker.register(cx.waker());
            match self.events.load(Ordering::Acquire) {
                seen if seen & wanted != 0 => Poll::Ready(seen),
                _ => Poll::Pending,
            }
        })
        .await
    }
}

/// The stops registered with one real.
#[derive(Debug, Default)]
pub struct Stops {
    slots: Locked<Arc<Stop>>,
}

impl Stops {
    /// Registers a new stop; the caller must then check the state a firing changes (see the
    /// module docs) and unregister with [`Stops::remove`].
    pub fn watch(&self) -> (Arc<Stop>, usize) {
        let stop = Arc::new(Stop::default());
        let slot = self.slots.lock().insert(Arc::clone(&stop));
        (stop, slot)
    }

    pub fn remove(&self, slot: usize) {
        self.slots.lock().remove(slot);
    }

    /// Fires `events` at every registered stop.
    pub fn fire(&self, events: u8) {
        for stop in self.slots.lock().iter() {
            stop.fire(events);
        }
    }

    /// Registered stops.
    pub fn len(&self) -> usize {
        self.slots.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_fired_event_wakes_only_the_watchers_that_want_it() {
        crate::test_rt().block_on(async {
            let stops = Arc::new(Stops::default());
            let (a, slot_a) = stops.watch();
            let (b, slot_b) = stops.watch();
            let wants_reset = tokio::spawn({
                let a = Arc::clone(&a);
                async move { a.fired(RESET).await }
            });
            let wants_either = tokio::spawn({
                let b = Arc::clone(&b);
                async move { b.fired(RESET | GONE).await }
            });
            tokio::task::yield_now().await; // both are waiting now
            stops.fire(GONE);
            let either = tokio::time::timeout(Duration::from_secs(5), wants_either).await;
            assert_eq!(either.unwrap().unwrap(), GONE);
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(
                !wants_reset.is_finished(),
                "GONE ended a watcher of RESET only"
            );
            stops.fire(RESET);
            let reset = tokio::time::timeout(Duration::from_secs(5), wants_reset).await;
            assert_eq!(reset.unwrap().unwrap(), RESET | GONE);
            assert_eq!(stops.len(), 2);
            stops.remove(slot_a);
            stops.remove(slot_b);
            assert!(stops.is_empty());
            let (_c, slot_c) = stops.watch();
            assert!(slot_c < 2, "a freed slot is reused");
        });
    }

    #[test]
    fn a_stop_fired_from_another_thread_wakes_its_task() {
        crate::test_rt().block_on(async {
            let stops = Arc::new(Stops::default());
            let (stop, _) = stops.watch();
            let firer = {
                let stops = Arc::clone(&stops);
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(20));
                    stops.fire(RESET);
                })
            };
            let got = tokio::time::timeout(Duration::from_secs(5), stop.fired(RESET)).await;
            assert_eq!(got.expect("woken"), RESET);
            firer.join().unwrap();
        });
    }
}
