//! UDP: sessions keyed by client address (by client and real with one-packet scheduling), each
//! with a socket connected to its real; replies go back to the client from the listening socket,
//! so they come from the same VIP:port the client sent to.
//!
//! Datagrams are moved through one buffer per worker thread (no buffer per session). A session
//! ends after the UDP timeout without traffic, when the operator resets its real, when the
//! service is removed (a session holds the listening socket, which must close then), or when
//! its real is removed or its health goes down — the client's next datagram is then scheduled
//! anew (IPVS's `expire_nodest_conn`) — or when its real refuses a datagram (ICMP port
//! unreachable: a failure of the real for passive failure detection, see `session`). An
//! operator's drain (weight 0, `drain`, `disabled`)
//! keeps existing sessions, as it keeps TCP connections.
//!
//! Each session holds a descriptor (its socket to the real), so the engine caps their number
//! ([`EngineShared::udp_slot`](crate::shared::EngineShared::udp_slot)): a new client over the cap is dropped, leaving descriptors for
//! TCP and the control API. With one-packet scheduling (`-o`, DNS-style) a session ends as soon
//! as every datagram it carried has had its reply.

use crate::balance::ServiceShared;
use crate::connect::ConnectError;
use crate::real::RealEvent;
use crate::stats::Outcomes;
use crate::tcp::WorkerCtx;
use crate::track::{ConnGuard, ConnState, NewConn};
use rvs_core::{Protocol, Timestamp};
use session::{MAX_DATAGRAM, Session, replies};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::net::UdpSocket;

mod session;

/// Client (and, with `-o`, real).
type SessionKey = (SocketAddr, Option<SocketAddr>);

/// Sessions of one listening socket.
type SessionMap = Arc<Mutex<HashMap<SessionKey, Arc<Session>>>>;

/// A datagram refused by a session's real (its error came back on this send) is scheduled
/// again at most this many times, each time away from the reals that refused it.
const REFUSED_RESENDS: usize = 1;

/// Receives datagrams for `svc` on this worker's `SO_REUSEPORT` socket, forever.
pub async fn recv_loop(sock: Arc<UdpSocket>, svc: Arc<ServiceShared>, ctx: WorkerCtx) {
    let sessions: SessionMap = Arc::default();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, client) = match sock.recv_from(&mut buf).await {
            Ok(v) => v,
            Err(_) => continue, // ICMP errors surface here on some kernels; keep serving
        };
        forward(&buf[..n], client, &sock, &svc, &ctx, &sessions).await;
    }
}

/// Sends one datagram from `client` to its session's real. If the real refused an earlier
/// datagram (the error comes back on this send), the session ends and the datagram is
/// scheduled again, away from that real.
async fn forward(
    datagram: &[u8],
    client: SocketAddr,
    sock: &Arc<UdpSocket>,
    svc: &Arc<ServiceShared>,
    ctx: &WorkerCtx,
    sessions: &SessionMap,
) {
    let mut refused: Vec<SocketAddr> = Vec::new();
    while refused.len() <= REFUSED_RESENDS {
        let Some(session) = session_for(client, sock, svc, ctx, sessions, &refused).await else {
            return;
        };
        let real = &session.guard.track.real;
        match session.upstream.send(datagram).await {
            Ok(n) => {
                real.counters.add_in(n as u64);
                svc.counters.add_in(n as u64);
                session.guard.track.touch(&ctx.engine.clock);
                session.sent(svc);
                return;
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                session.no_reply();
                session.refused(svc, &ctx.engine);
                refused.push(real.addr);
            }
            Err(_) => {
                session.no_reply();
                Outcomes::bump(&ctx.engine.outcomes.udp_send_error);
                return;
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
    exclude: &[SocketAddr],
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
    let Some(picked) = svc.open(client, now, exclude) else {
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
    let upstream = match connect_upstream(svc.target(real.addr), svc.local_for(real.addr)).await {
        Ok(u) => u,
        Err(e) => {
            // Nothing was sent yet: no real is blamed. Making or binding the socket, or a
            // connect(2) without a port or memory, is the director's failure.
            svc.conn_closed(picked.conn, false, now);
            svc.connect_abandoned(&picked);
            Outcomes::bump(match e {
                ConnectError::Local { .. } => &engine.outcomes.connect_local_error,
                ConnectError::Real(_) => &engine.outcomes.connect_error,
            });
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
    let reset_gen = picked.reset_gen; // read when the real was picked
    let session = Arc::new(Session::new(upstream, guard, slot, picked, one_packet));
    session.expect_reply();
    lock(sessions).insert(key, Arc::clone(&session));
    let (sock, svc, engine, sessions) = (
        Arc::clone(sock),
        Arc::clone(svc),
        Arc::clone(engine),
        Arc::clone(sessions),
    );
    let s = Arc::clone(&session);
    let watch = s.guard.track.real.watch(reset_gen);
    tokio::spawn(async move {
        tokio::select! {
            _ = replies(&s, &sock, client, &svc, &engine) => {}
            _ = engine.idle_expired(&s.guard.track) => {}
            _ = s.ended() => {} // the real refused a datagram
            ev = watch.reset_or_gone() => match ev {
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
/// down, or refused a datagram, is taken out of the map (its task ends on its own), so the
/// datagram is rescheduled.
fn live_session(sessions: &SessionMap, key: &SessionKey) -> Option<Arc<Session>> {
    let s = lock(sessions).get(key).cloned()?;
    if s.guard.track.real.is_available() && !s.is_refused() {
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

/// A UDP socket from `local` (a FULLNAT local address) or the host's address, connected to
/// `real` (nothing is sent: a failure is local unless `connect` says the real is unreachable).
async fn connect_upstream(
    real: SocketAddr,
    local: Option<IpAddr>,
) -> Result<UdpSocket, ConnectError> {
    let any: IpAddr = match real {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let u = UdpSocket::bind(SocketAddr::new(local.unwrap_or(any), 0))
        .await
        .map_err(|source| ConnectError::Local {
            what: "binding the UDP socket",
            source,
        })?;
    u.connect(real).await.map_err(ConnectError::from_connect)?;
    Ok(u)
}
