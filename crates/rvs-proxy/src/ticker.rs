//! Connect timeouts without a tokio timer per connect.
//!
//! Registering a tokio timer whose deadline is earlier than every other pending one makes the
//! time driver wake the reactor through its eventfd: a `write(2)` and an extra `epoll_wait`
//! round. A connect to a real on loopback or a LAN finishes within microseconds, so its
//! timeout timer was nearly always the earliest deadline of the worker — one wake-up per new
//! connection. Instead, each worker keeps one coarse ticker ([`TICK`]) that runs only while
//! connects are pending; a connect checks its deadline on every tick. A timeout therefore
//! fires between its deadline and one tick later. Under load the ticker runs continuously and
//! costs one timer per tick for the whole worker; an idle worker has no ticker running.

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How often pending connects check their deadlines.
pub const TICK: Duration = Duration::from_millis(25);

/// One worker's ticker: `tick` is notified every [`TICK`] while `pending` > 0.
#[derive(Debug, Default)]
struct Ticker {
    tick: Notify,
    /// Wakes the ticker task when the first connect starts waiting.
    start: Notify,
    pending: AtomicUsize,
}

thread_local! {
    /// This thread's ticker and its task (a runtime dropped and replaced on the same thread
    /// leaves a finished task behind; the ticker is then made afresh).
    static TICKER: RefCell<Option<(Arc<Ticker>, JoinHandle<()>)>> = const { RefCell::new(None) };
}

/// This worker thread's ticker; the first call spawns its task on the current runtime.
fn ticker() -> Arc<Ticker> {
    TICKER.with(|cell| {
        let mut cell = cell.borrow_mut();
        if let Some((t, task)) = cell.as_ref()
            && !task.is_finished()
        {
            return Arc::clone(t);
        }
        let t = Arc::new(Ticker::default());
        *cell = Some((Arc::clone(&t), tokio::spawn(run(Arc::clone(&t)))));
        t
    })
}

async fn run(t: Arc<Ticker>) {
    loop {
        while t.pending.load(Relaxed) == 0 {
            t.start.notified().await;
        }
        tokio::time::sleep(TICK).await;
        t.tick.notify_waiters();
    }
}

/// Counts a waiting connect for as long as it lives.
struct Pending(Arc<Ticker>);

impl Pending {
    fn new(t: Arc<Ticker>) -> Self {
        if t.pending.fetch_add(1, Relaxed) == 0 {
            t.start.notify_one();
        }
        Pending(t)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Relaxed);
    }
}

/// `fut`'s output, or `None` if it has not finished `timeout` after the call (checked every
/// [`TICK`]). Must run on a worker's runtime (it may spawn the worker's ticker task).
pub async fn within<F: Future>(timeout: Duration, fut: F) -> Option<F::Output> {
    let deadline = Instant::now() + timeout;
    let mut fut = pin!(fut);
    let waiting = Pending::new(ticker());
    loop {
        let tick = waiting.0.tick.notified();
        tokio::select! {
            biased;
            out = &mut fut => return Some(out),
            () = tick => {
                if Instant::now() >= deadline {
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rt as rt;

    #[test]
    fn a_future_that_finishes_is_returned() {
        let out = rt().block_on(async {
            tokio::spawn(within(Duration::from_secs(5), async { 7 }))
                .await
                .unwrap()
        });
        assert_eq!(out, Some(7));
    }

    #[test]
    fn a_stuck_future_times_out_between_its_deadline_and_one_tick_later() {
        let rt = rt();
        for ms in [10u64, 120] {
            let (out, took) = rt.block_on(async move {
                tokio::spawn(async move {
                    let start = Instant::now();
                    let out = within(Duration::from_millis(ms), std::future::pending::<()>()).await;
                    (out, start.elapsed())
                })
                .await
                .unwrap()
            });
            assert_eq!(out, None);
            assert!(took >= Duration::from_millis(ms), "{ms} ms: took {took:?}");
            // One tick late at most, plus generous scheduling slack on a loaded machine.
            assert!(
                took < Duration::from_millis(ms) + TICK + Duration::from_millis(500),
                "{ms} ms: took {took:?}"
            );
        }
    }

    #[test]
    fn a_new_runtime_on_the_same_thread_gets_a_working_ticker() {
        for _ in 0..2 {
            let out = rt().block_on(async {
                tokio::spawn(within(
                    Duration::from_millis(5),
                    std::future::pending::<()>(),
                ))
                .await
                .unwrap()
            });
            assert_eq!(out, None);
        }
    }

    #[test]
    fn the_ticker_stops_when_nothing_waits() {
        rt().block_on(async {
            tokio::spawn(async {
                assert_eq!(
                    within(Duration::from_millis(5), std::future::pending::<()>()).await,
                    None
                );
                let t = ticker();
                assert_eq!(t.pending.load(Relaxed), 0);
                // Many waiters at once share the one ticker, and all time out.
                let all: Vec<_> = (0..100)
                    .map(|_| {
                        tokio::spawn(within(
                            Duration::from_millis(30),
                            std::future::pending::<()>(),
                        ))
                    })
                    .collect();
                for h in all {
                    assert_eq!(h.await.unwrap(), None);
                }
                assert_eq!(t.pending.load(Relaxed), 0);
            })
            .await
            .unwrap();
        });
    }
}
