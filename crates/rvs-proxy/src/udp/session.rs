//! One UDP session: its socket connected to the real, its place under the cap, the replies it
//! relays to the client, and what it tells passive failure detection.
//!
//! The real's socket is connected, so an ICMP port unreachable from the real (nothing listens
//! on its port) comes back as `ECONNREFUSED` on the session's next receive or send. That is the
//! real's failure, as for nginx's stream module: counted in its `connect_failures` and in the
//! outcome `udp_refused`, reported to passive failure detection with the service's
//! `max_fails` / `fail_timeout_ms` (as a refused TCP connect), and the session ends — the
//! client's next datagram is scheduled anew (on another real: the refusing one is skipped for
//! that datagram, and out once `max_fails` is reached). The datagram the real refused is lost,
//! as it would be without a proxy.
//!
//! A real is confirmed (a passive probe passes, the count of failures starts again) by a reply,
//! or by a second datagram sent on the session without an error: services that never answer
//! (syslog, statsd) confirm their reals too.

use crate::balance::{Picked, ServiceShared};
use crate::shared::{EngineShared, UdpSlot};
use crate::stats::Outcomes;
use crate::track::ConnGuard;
use socket2::SockRef;
use std::cell::RefCell;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::Notify;

/// Largest UDP payload.
pub(super) const MAX_DATAGRAM: usize = 65536;

thread_local! {
    static BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; MAX_DATAGRAM]);
}

pub(super) struct Session {
    pub upstream: UdpSocket,
    pub guard: ConnGuard,
    /// Its place under the engine's cap on UDP sessions (released when the session is dropped).
    _slot: UdpSlot,
    /// The pick that made the session: passive failure detection hears about its real.
    picked: Picked,
    /// One-packet scheduling: the session ends once every datagram it carried was answered.
    one_packet: bool,
    /// Datagrams sent and not yet answered (one-packet sessions only).
    pending: AtomicU32,
    /// A datagram went out before: one more sent without an error confirms the real.
    sent_before: AtomicBool,
    /// The real refused a datagram: the session is over (counted once).
    refused: AtomicBool,
    /// Wakes the session's task to end it.
    end: Notify,
}

impl Session {
    pub fn new(
        upstream: UdpSocket,
        guard: ConnGuard,
        slot: UdpSlot,
        picked: Picked,
        one_packet: bool,
    ) -> Session {
        Session {
            upstream,
            guard,
            _slot: slot,
            picked,
            one_packet,
            pending: AtomicU32::new(0),
            sent_before: AtomicBool::new(false),
            refused: AtomicBool::new(false),
            end: Notify::new(),
        }
    }

    /// A datagram is about to go out through this session (counted before any await, so the
    /// reply to an earlier datagram cannot end the session under it).
    pub fn expect_reply(&self) {
        if self.one_packet {
            self.pending.fetch_add(1, Relaxed);
        }
    }

    /// A datagram was not sent after all.
    pub fn no_reply(&self) {
        if self.one_packet {
            let _ = self
                .pending
                .fetch_update(Relaxed, Relaxed, |p| p.checked_sub(1));
        }
    }

    /// A reply was relayed; true if a one-packet session has nothing left to wait for.
    fn answered(&self) -> bool {
        self.one_packet
            && self
                .pending
                .fetch_update(Relaxed, Relaxed, |p| p.checked_sub(1))
                .is_ok_and(|before| before <= 1)
    }

    /// A datagram went out: the second and later ones confirm the real (no error came back
    /// for the one before).
    pub fn sent(&self, svc: &ServiceShared) {
        if self.sent_before.load(Relaxed) {
            self.confirmed(svc);
        } else {
            self.sent_before.store(true, Relaxed);
        }
    }

    /// The real took a datagram (see the module docs): passive failure detection hears of it
    /// only while it counts failures or probes (one relaxed load otherwise).
    fn confirmed(&self, svc: &ServiceShared) {
        let real = &self.picked.real;
        if real.passive_report() && svc.connect_succeeded(&self.picked) {
            log::info!(
                "proxy: real {} back in: its UDP probe went through",
                real.addr
            );
        }
    }

    /// Whether the real refused a datagram of this session (it is ending).
    pub fn is_refused(&self) -> bool {
        self.refused.load(Relaxed)
    }

    /// The real refused a datagram (`ECONNREFUSED`: ICMP port unreachable): counted against it
    /// once per session, reported to passive failure detection, and the session ends.
    pub fn refused(&self, svc: &ServiceShared, engine: &EngineShared) {
        if self.refused.swap(true, Relaxed) {
            return;
        }
        Outcomes::bump(&engine.outcomes.udp_refused);
        let why = "a datagram was refused (ICMP port unreachable)";
        self.picked.real.connect_failed(&why, engine.clock.now_ms());
        if self.picked.options.proxy.max_fails > 0 {
            crate::tcp::passive_failure(svc, &self.picked, engine);
        }
        self.end.notify_one();
    }

    /// Resolves once [`refused`](Self::refused) ended the session.
    pub async fn ended(&self) {
        self.end.notified().await
    }
}

/// Relays the real's replies to the client from the listening socket, until a one-packet
/// session has all its replies or the real refuses.
pub(super) async fn replies(
    s: &Session,
    sock: &UdpSocket,
    client: SocketAddr,
    svc: &ServiceShared,
    engine: &EngineShared,
) {
    let real = &s.guard.track.real;
    // An ICMP error from the real shows as error readiness alone (`EPOLLERR`), which a plain
    // readable wait never sees: wait for both, and read with a plain `read` (tokio's
    // `try_recv` would not try without read readiness). `try_io` is given one interest: tokio
    // 1.54 tries nothing for a combined one (`Interest::mask` is empty for it).
    let upstream = SockRef::from(&s.upstream);
    loop {
        let ready = match s.upstream.ready(Interest::READABLE | Interest::ERROR).await {
            Ok(r) => r,
            Err(_) => return,
        };
        let interest = match ready.is_error() {
            true => Interest::ERROR,
            false => Interest::READABLE,
        };
        // Synchronous between awaits: the thread's buffer is never held across one. The outer
        // result is the read from the real, the inner one the send to the client.
        let r = BUF.with(|b| {
            let mut b = b.borrow_mut();
            let n = s.upstream.try_io(interest, || (&*upstream).read(&mut b))?;
            io::Result::Ok(sock.try_send_to(&b[..n], client).map(|_| n))
        });
        match r {
            // The reply was read and could not go out (the listening socket's send buffer
            // full, `EAGAIN`, or another error): it is lost, as a datagram is, but counted.
            Ok(Err(_)) => Outcomes::bump(&engine.outcomes.udp_send_error),
            Ok(Ok(n)) => {
                real.counters.add_out(n as u64);
                svc.counters.add_out(n as u64);
                s.guard.track.touch(&engine.clock);
                s.confirmed(svc);
                if s.answered() {
                    return; // -o: every datagram answered, the session (and its socket) ends
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                s.refused(svc, engine); // ICMP port unreachable from the real
                return;
            }
            Err(_) => Outcomes::bump(&engine.outcomes.udp_send_error),
        }
    }
}
