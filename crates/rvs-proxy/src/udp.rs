//! UDP: sessions keyed by client address (by client and real with one-packet scheduling), each
//! with a socket connected to its real; replies go back to the client from the listening socket,
//! so they come from the same VIP:port the client sent to.
//!
//! Datagrams are moved through one buffer per worker thread (no buffer per session). A session
//! ends after the UDP timeout without traffic, when the operator resets its real, when the
//! service is removed (a session holds the listening socket, which must close then), or when
//! its real is removed or its health goes down — the client's next datagram is then scheduled
//! anew (IPVS's `expire_nodest_conn`). An operator's drain (weight 0, `drain`, `disabled`)
//! keeps existing sessions, as it keeps TCP connections.
//!
//! Each session holds a descriptor (its socket to the real), so the engine caps their number
//! ([`EngineShared::udp_slot`]): a new client over the cap is dropped, leaving descriptors for
//! TCP and the control API. With one-packet scheduling (`-o`, DNS-style) a session ends as soon
//! as every datagram it carried has had its reply.

use crate::balance::ServiceShared;
use crate::real::RealEvent;
use crate::shared::{EngineShared, UdpSlot};
use crate::stats::Outcomes;
use crate::tcp::WorkerCtx;
use crate::track::{ConnGuard, ConnState, NewConn};
use rvs_core::{Protocol, Timestamp};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use tokio::net::UdpSocket;

/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65536;

thread_local! {
    static BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; MAX_DATAGRAM]);
}

/// Client (and, with `-o`, real).
type SessionKey = (SocketAddr, Option<SocketAddr>);

/// Sessions of one listening socket.
type SessionMap = Arc<Mutex<HashMap<SessionKey, Arc<Session>>>>;

struct Session {
    upstream: UdpSocket,
    guard: ConnGuard,
    /// Its place under the engine's cap on UDP sessions (released when the session is dropped).
    _slot: UdpSlot,
    /// One-packet scheduling: the session ends once every datagram it carried was answered.
    one_packet: bool,
    /// Datagrams sent and not yet answered (one-packet sessions only).
    pending: AtomicU32,
}

impl Session {
    /// A datagram is about to go out through this session (counted before any await, so the
    /// reply to an earlier datagram cannot end the session under it).
    fn expect_reply(&self) {
        if self.one_packet {
            self.pending.fetch_add(1, Relaxed);
        }
    }

    /// A datagram was not sent after all.
    fn no_reply(&self) {
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
}

/// Receives datagrams for `svc` on this worker's `SO_REUSEPORT` socket, forever.
pub async fn recv_loop(sock: Arc<UdpSocket>, svc: Arc<ServiceShared>, ctx: WorkerCtx) {
    let sessions: SessionMap = Arc::default();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, client) = match sock.recv_from(&mut buf).await {
            Ok(v) => v,
            Err(_) => continue, // ICMP errors surface here on some kernels; keep serving
        };
        let Some(session) = session_for(client, &sock, &svc, &ctx, &sessions).await else {
            continue;
        };
        let real = &session.guard.track.real;
        match session.upstream.send(&buf[..n]).await {
            Ok(_) => {
                real.counters.add_in(n as u64);
                svc.counters.add_in(n as u64);
                session.guard.track.touch(&ctx.engine.clock);
            }
            Err(_) => {
                session.no_reply();
                Outcomes::bump(&ctx.engine.outcomes.udp_send_error)
            }
        }
    }
}

/// The session for a datagram from `client`: the existing one, or a newly scheduled one (if
/// the engine's cap on UDP sessions leaves room: otherwise the datagram is dropped and counted
/// in `udp_session_limit`).
async fn session_for(
    client: SocketAddr,
    sock: &Arc<UdpSocket>,
    svc: &Arc<ServiceShared>,
    ctx: &WorkerCtx,
    sessions: &SessionMap,
) -> Option<Arc<Session>> {
    let one_packet = svc.one_packet();
    if !one_packet && let Some(s) = live_session(sessions, &(client, None)) {
        return Some(s);
    }
    let engine = &ctx.engine;
    // Take the place under the cap before scheduling: a datagram dropped at the cap must leave
    // nothing behind (scheduling would create or refresh the client's persistence template),
    // and a flood over the cap costs no scheduling. With -o every datagram is a connection of
    // its own, so one that would only reuse an existing socket to its real is dropped at the
    // cap too; its place is given back just below.
    let Some(slot) = engine.udp_slot() else {
        Outcomes::bump(&engine.outcomes.udp_session_limit);
        return None;
    };
    let now = Timestamp::from_millis(engine.clock.now_ms());
    let Some(picked) = svc.open(client, now, &[]) else {
        Outcomes::bump(&engine.outcomes.no_real);
        return None;
    };
    let real = Arc::clone(&picked.real);
    let key = (client, one_packet.then_some(real.addr));
    if let Some(s) = live_session(sessions, &key) {
        // One-packet scheduling: this datagram is its own connection, carried by the socket to
        // the real that already exists for this client; it is over at once (and needs no new
        // place under the cap: `slot` is given back when dropped).
        real.counters.add_conn();
        svc.counters.add_conn();
        svc.conn_closed(picked.conn, false, now);
        s.expect_reply();
        s.guard.track.touch(&engine.clock);
        return Some(s);
    }
    let upstream = match connect_upstream(real.addr, svc.local_for(real.addr)).await {
        Ok(u) => u,
        Err(_) => {
            svc.conn_closed(picked.conn, false, now);
            Outcomes::bump(&engine.outcomes.connect_error);
            return None;
        }
    };
    real.counters.add_conn();
    svc.counters.add_conn();
    let guard = ConnGuard::new(
        &ctx.table,
        NewConn {
            protocol: Protocol::Udp,
            client,
            vaddr: svc.vaddr,
            real,
            service: Arc::clone(svc),
            conn: picked.conn,
        },
        ConnState::Udp,
        engine.udp_timeout_ms(),
        &engine.clock,
    );
    let session = Arc::new(Session {
        upstream,
        guard,
        _slot: slot,
        one_packet,
        pending: AtomicU32::new(0),
    });
    session.expect_reply();
    lock(sessions).insert(key, Arc::clone(&session));
    let (sock, svc, engine, sessions) = (
        Arc::clone(sock),
        Arc::clone(svc),
        Arc::clone(engine),
        Arc::clone(sessions),
    );
    let s = Arc::clone(&session);
    let reset_gen = picked.reset_gen; // read when the real was picked
    tokio::spawn(async move {
        tokio::select! {
            _ = replies(&s, &sock, client, &svc, &engine) => {}
            _ = engine.idle_expired(&s.guard.track) => {}
            ev = s.guard.track.real.reset_or_gone(reset_gen) => match ev {
                RealEvent::Reset => Outcomes::bump(&engine.outcomes.reset_by_operator),
                RealEvent::Gone if svc.is_removed() => {} // the whole service went
                RealEvent::Gone => Outcomes::bump(&engine.outcomes.udp_real_gone),
            },
        }
        forget(&sessions, &key, &s);
    });
    Some(session)
}

/// The session under `key` if its real is still available. One whose real was removed or went
/// down is taken out of the map (its task ends on its own), so the datagram is rescheduled.
fn live_session(sessions: &SessionMap, key: &SessionKey) -> Option<Arc<Session>> {
    let s = lock(sessions).get(key).cloned()?;
    if s.guard.track.real.is_available() {
        return Some(s);
    }
    forget(sessions, key, &s);
    None
}

/// Removes `s` from the map, unless `key` already holds a newer session.
fn forget(sessions: &SessionMap, key: &SessionKey, s: &Arc<Session>) {
    let mut map = lock(sessions);
    if map.get(key).is_some_and(|cur| Arc::ptr_eq(cur, s)) {
        map.remove(key);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn connect_upstream(real: SocketAddr, local: Option<IpAddr>) -> io::Result<UdpSocket> {
    let any: IpAddr = match real {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let u = UdpSocket::bind(SocketAddr::new(local.unwrap_or(any), 0)).await?;
    u.connect(real).await?;
    Ok(u)
}

/// Relays the real's replies to the client from the listening socket.
async fn replies(
    s: &Session,
    sock: &UdpSocket,
    client: SocketAddr,
    svc: &ServiceShared,
    engine: &EngineShared,
) {
    let real = &s.guard.track.real;
    loop {
        if s.upstream.readable().await.is_err() {
            return;
        }
        // Synchronous between awaits: the thread's buffer is never held across one.
        let r = BUF.with(|b| {
            let mut b = b.borrow_mut();
            let n = s.upstream.try_recv(&mut b)?;
            sock.try_send_to(&b[..n], client).map(|_| n)
        });
        match r {
            Ok(n) => {
                real.counters.add_out(n as u64);
                svc.counters.add_out(n as u64);
                s.guard.track.touch(&engine.clock);
                if s.answered() {
                    return; // -o: every datagram answered, the session (and its socket) ends
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {} // ICMP from the real
            Err(_) => Outcomes::bump(&engine.outcomes.udp_send_error),
        }
    }
}
