//! The accept loop each worker runs per TCP service: non-blocking `accept4` in batches, under
//! the engine's connection cap ([`ConnCap`]).
//!
//! A batch takes at most [`ACCEPT_BATCH`] connections, then the loop yields to the worker's
//! runtime: a flood of new clients on one listener cannot hold the worker (a current-thread
//! runtime) for a whole backlog of 4096 accepts while the relays of its established
//! connections wait. The listener is still readable, so the loop carries on right after.
//!
//! At the cap the loop stops accepting until a connection ends: new clients wait in the listen
//! backlog (HAProxy's `maxconn`), counted once per stall in `accept_paused` ([`Stall`]: a
//! listener woken by a freed place that finds the cap reached again — another listener took
//! the place, or it took one and stopped again — is still in the same stall). When the process
//! runs out of descriptors (`EMFILE`, `ENFILE`) or the kernel out of memory, the listener rests
//! [`ACCEPT_BACKOFF`] before trying again (counted in `accept_fd_limit` / `accept_error`)
//! instead of spinning on a readable listener it cannot accept from.

use crate::balance::ServiceShared;
use crate::cap::ConnCap;
use crate::stats::Outcomes;
use crate::tcp::{self, WorkerCtx};
use socket2::SockRef;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::unix::AsyncFd;

/// A listening socket registered with the worker's reactor.
pub type Listener = AsyncFd<TcpListener>;

/// Most connections accepted per wake-up before yielding to the other tasks of the worker.
pub const ACCEPT_BATCH: usize = 64;

/// How long a listener rests after an accept failed for want of descriptors or memory.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Why a batch of accepts stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchEnd {
    /// Nothing more to accept now (`EAGAIN`).
    Drained,
    /// The batch's budget was used up (there may be more to accept).
    Budget,
    /// The engine's connection cap is reached.
    AtCap,
    /// Out of descriptors (`EMFILE`, `ENFILE`).
    FdLimit,
    /// Another accept error (`ENOBUFS`, `ENOMEM`, ...).
    Error,
}

/// Whether an accept loop is stalled at the cap, so `accept_paused` counts stalls rather than
/// wake-ups: a freed place wakes every paused loop, and all but one find the cap reached again.
/// A stall begins when a batch stops at the cap and ends when one stops for another reason
/// (the backlog drained, the batch's budget used, an accept error).
#[derive(Debug, Default)]
pub struct Stall {
    stalled: bool,
}

impl Stall {
    /// A batch ended with `end`; true if a stall begins (to be counted).
    pub fn begins(&mut self, end: BatchEnd) -> bool {
        let was = std::mem::replace(&mut self.stalled, end == BatchEnd::AtCap);
        self.stalled && !was
    }
}

/// A connection accepted under the cap: the place is given back when this is dropped.
#[derive(Debug)]
pub struct Admitted {
    pub ctx: WorkerCtx,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.ctx.engine.tcp_cap.release();
    }
}

/// Accepts pending connections of `listener`, at most `budget`, while `cap` has room, handing
/// each to `accepted` (which owns the place it took: it must [`ConnCap::release`] it). Returns
/// how many were accepted and why it stopped.
pub fn accept_batch(
    listener: &TcpListener,
    cap: &ConnCap,
    budget: usize,
    mut accepted: impl FnMut(TcpStream, SocketAddr),
) -> (usize, BatchEnd) {
    let mut n = 0;
    loop {
        if n == budget {
            return (n, BatchEnd::Budget);
        }
        if !cap.try_take() {
            return (n, BatchEnd::AtCap);
        }
        let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        match SockRef::from(listener).accept4(flags) {
            Ok((sock, peer)) => match peer.as_socket() {
                Some(peer) => {
                    n += 1;
                    accepted(sock.into(), peer);
                }
                None => cap.release(), // not an IP peer (cannot happen on a TCP listener)
            },
            Err(e) => {
                cap.release();
                let end = match e.raw_os_error() {
                    _ if e.kind() == io::ErrorKind::WouldBlock => BatchEnd::Drained,
                    Some(libc::ECONNABORTED) => continue, // the client gave up in the queue
                    Some(libc::EMFILE | libc::ENFILE) => BatchEnd::FdLimit,
                    _ => BatchEnd::Error,
                };
                return (n, end);
            }
        }
    }
}

/// Accepts connections for `svc` on this worker's `SO_REUSEPORT` listener, forever.
pub async fn accept_loop(listener: Listener, svc: Arc<ServiceShared>, ctx: WorkerCtx) {
    let engine = Arc::clone(&ctx.engine);
    let mut stall = Stall::default();
    loop {
        let Ok(mut ready) = listener.readable().await else {
            return;
        };
        let (_, end) = accept_batch(
            listener.get_ref(),
            &engine.tcp_cap,
            ACCEPT_BATCH,
            |sock, peer| {
                let admitted = Admitted { ctx: ctx.clone() };
                tokio::spawn(tcp::handle(sock, peer, Arc::clone(&svc), admitted));
            },
        );
        if stall.begins(end) {
            Outcomes::bump(&engine.outcomes.accept_paused);
        }
        match end {
            BatchEnd::Drained => ready.clear_ready(),
            BatchEnd::Budget => {
                // The listener stays readable: the next round goes on at once, after the
                // connections just spawned and the relays that were waiting had their turn.
                drop(ready);
                tokio::task::yield_now().await;
            }
            BatchEnd::AtCap => {
                // Clients wait in the backlog; the listener stays readable, so the next round
                // accepts at once when a place is free.
                drop(ready);
                engine.tcp_cap.room().await;
            }
            BatchEnd::FdLimit | BatchEnd::Error => {
                Outcomes::bump(match end {
                    BatchEnd::FdLimit => &engine.outcomes.accept_fd_limit,
                    _ => &engine.outcomes.accept_error,
                });
                drop(ready);
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A non-blocking listener with `n` clients waiting in its backlog (the clients are returned
    /// so they stay open).
    fn listener_with_pending(n: usize) -> (TcpListener, Vec<TcpStream>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let clients = (0..n).map(|_| TcpStream::connect(addr).unwrap()).collect();
        (l, clients)
    }

    #[test]
    fn a_stall_is_counted_once_however_often_the_loop_stops_at_the_cap_in_it() {
        use BatchEnd::*;
        let mut s = Stall::default();
        assert!(!s.begins(Drained));
        assert!(s.begins(AtCap), "a stall begins");
        assert!(
            !s.begins(AtCap),
            "woken, the cap reached again: the same stall"
        );
        assert!(!s.begins(AtCap));
        assert!(!s.begins(Drained), "the backlog drained: it ends");
        assert!(s.begins(AtCap), "a new stall");
        assert!(!s.begins(Budget));
        assert!(s.begins(AtCap));
        assert!(!s.begins(FdLimit));
        assert!(s.begins(AtCap));
    }

    #[test]
    fn a_batch_accepts_everything_pending_under_the_cap() {
        let (l, _clients) = listener_with_pending(5);
        let cap = ConnCap::new(100);
        let mut got = Vec::new();
        assert_eq!(
            accept_batch(&l, &cap, 100, |s, _| got.push(s)),
            (5, BatchEnd::Drained)
        );
        assert_eq!(cap.current(), 5, "each accepted connection holds its place");
        assert_eq!(got.len(), 5);
    }

    #[test]
    fn a_batch_stops_at_its_budget_and_the_next_one_carries_on() {
        let (l, _clients) = listener_with_pending(ACCEPT_BATCH + 10);
        let cap = ConnCap::new(1000);
        let mut got = Vec::new();
        assert_eq!(
            accept_batch(&l, &cap, ACCEPT_BATCH, |s, _| got.push(s)),
            (ACCEPT_BATCH, BatchEnd::Budget)
        );
        assert_eq!(
            accept_batch(&l, &cap, ACCEPT_BATCH, |s, _| got.push(s)),
            (10, BatchEnd::Drained)
        );
        assert_eq!(cap.current(), ACCEPT_BATCH + 10);
        assert_eq!(got.len(), ACCEPT_BATCH + 10);
    }

    #[test]
    fn at_the_cap_the_batch_stops_and_the_rest_stay_in_the_backlog() {
        let (l, _clients) = listener_with_pending(5);
        let cap = ConnCap::new(3);
        let mut got = Vec::new();
        assert_eq!(
            accept_batch(&l, &cap, 100, |s, _| got.push(s)),
            (3, BatchEnd::AtCap)
        );
        assert_eq!(cap.current(), 3);
        // Two connections end: the two waiting clients are accepted.
        got.truncate(1);
        cap.release();
        cap.release();
        assert_eq!(
            accept_batch(&l, &cap, 100, |s, _| got.push(s)),
            (2, BatchEnd::AtCap)
        );
        cap.release(); // one more ends: room, but nobody waits
        assert_eq!(
            accept_batch(&l, &cap, 100, |s, _| got.push(s)),
            (0, BatchEnd::Drained)
        );
        assert_eq!(cap.current(), 2, "an empty accept gives its place back");
    }
}
