//! The engine-wide cap on relayed TCP connections (`[daemon] proxy_max_conns`), as HAProxy's
//! `maxconn`: at the cap the accept loops stop accepting — new clients wait in the listen
//! backlog, neither reset nor refused — and resume as soon as a connection ends.
//!
//! A place is taken (one relaxed compare-and-swap) before each `accept4` and given back when
//! the connection ends, or at once if there was nothing to accept. Only a release at the cap
//! touches the [`Notify`] the paused accept loops wait on, so below the cap a connection costs
//! two atomic operations and no lock.

use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use tokio::sync::Notify;

/// Counts connections against a maximum; accept loops wait on it at the cap.
#[derive(Debug)]
pub struct ConnCap {
    now: AtomicUsize,
    max: usize,
    room: Notify,
}

impl ConnCap {
    /// A cap of `max` connections (at least 1).
    pub fn new(max: usize) -> Self {
        ConnCap {
            now: AtomicUsize::new(0),
            max: max.max(1),
            room: Notify::new(),
        }
    }

    /// The maximum.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections holding a place now.
    pub fn current(&self) -> usize {
        self.now.load(Relaxed)
    }

    /// Takes a place; false at the cap. Every `true` must be matched by one
    /// [`release`](Self::release).
    pub fn try_take(&self) -> bool {
        self.now
            .fetch_update(Relaxed, Relaxed, |n| (n < self.max).then_some(n + 1))
            .is_ok()
    }

    /// Gives a place back; wakes the paused accept loops if the cap was reached.
    pub fn release(&self) {
        if self.now.fetch_sub(1, Relaxed) >= self.max {
            self.room.notify_waiters();
        }
    }

    /// Resolves once there is room under the cap (at once if there is now). Another loop may
    /// take the place first: the caller tries again with [`try_take`](Self::try_take).
    pub async fn room(&self) {
        loop {
            // Registered before the check, so a release between the check and the wait is
            // not missed.
            let mut notified = pin!(self.room.notified());
            notified.as_mut().enable();
            if self.now.load(Relaxed) < self.max {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn places_stop_at_the_cap_and_come_back_when_released() {
        let c = ConnCap::new(2);
        assert!(c.try_take());
        assert!(c.try_take());
        assert!(!c.try_take(), "over the cap");
        assert_eq!(c.current(), 2);
        c.release();
        assert!(c.try_take());
        assert!(!c.try_take());
        c.release();
        c.release();
        assert_eq!(c.current(), 0);
        assert_eq!(ConnCap::new(0).max(), 1);
    }

    #[test]
    fn a_loop_waiting_for_room_wakes_when_a_connection_ends() {
        let rt = crate::test_rt();
        rt.block_on(async {
            let c = Arc::new(ConnCap::new(1));
            assert!(c.try_take());
            let waiter = tokio::spawn({
                let c = Arc::clone(&c);
                async move {
                    c.room().await;
                    c.try_take()
                }
            });
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(!waiter.is_finished(), "no room while the place is held");
            c.release(); // from another thread in the engine; the same Notify either way
            let took = tokio::time::timeout(Duration::from_secs(5), waiter)
                .await
                .expect("woken")
                .unwrap();
            assert!(took, "the woken loop gets the place");
            // Room now: resolves at once.
            c.release();
            tokio::time::timeout(Duration::from_secs(1), c.room())
                .await
                .expect("at once");
        });
    }
}
