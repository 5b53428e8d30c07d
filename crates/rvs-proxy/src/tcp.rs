//! TCP: one accepted client's connection (see [`crate::accept`] for the accept loop):
//! connecting to a real with bounded retries, the optional PROXY header, and the relay with its
//! state tracking.

use crate::accept::Admitted;
use crate::balance::{Picked, ServiceShared};
use crate::connect::{ConnectError, connect};
use crate::pp;
use crate::relay::Sock;
use crate::relay::{self, OnChunk};
use crate::shared::EngineShared;
use crate::stats::Outcomes;
use crate::track::{ConnGuard, ConnState, ConnTable, NewConn};
use rvs_core::{Protocol, Timestamp};
use socket2::SockRef;
use std::io;
use std::net::SocketAddr;
use std::net::TcpStream;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// Everything a worker's connection tasks need.
#[derive(Debug, Clone)]
pub struct WorkerCtx {
    pub engine: Arc<EngineShared>,
    pub table: Arc<ConnTable>,
}

/// Counts a relayed chunk on the real and the service and marks the connection as alive.
struct Dir<'a> {
    guard: &'a ConnGuard,
    svc: &'a ServiceShared,
    engine: &'a EngineShared,
    inbound: bool,
}

impl OnChunk for Dir<'_> {
    fn chunk(&self, bytes: usize) {
        let real = &self.guard.track.real;
        if self.inbound {
            real.counters.add_in(bytes as u64);
            self.svc.counters.add_in(bytes as u64);
        } else {
            real.counters.add_out(bytes as u64);
            self.svc.counters.add_out(bytes as u64);
        }
        self.guard.track.touch(&self.engine.clock);
    }

    fn splice_fallback(&self) {
        Outcomes::bump(&self.engine.outcomes.splice_fallback);
    }
}

/// Serves one accepted client; `admitted` holds its place under the engine's connection cap
/// until the connection ends.
pub async fn handle(
    client: TcpStream,
    peer: SocketAddr,
    svc: Arc<ServiceShared>,
    admitted: Admitted,
) {
    let ctx = &admitted.ctx;
    let _ = client.set_nodelay(true);
    let Ok(client) = relay::register(client) else {
        return;
    };
    let vaddr = match svc.vaddr.ip().is_unspecified() {
        true => client.get_ref().local_addr().unwrap_or(svc.vaddr),
        false => svc.vaddr,
    };
    let Some((server, picked, guard)) = connect_with_retries(peer, vaddr, &svc, ctx).await else {
        return; // dropping `client` closes it
    };
    let engine = &ctx.engine;
    let relay = async {
        let kind = picked
            .real
            .proxy_protocol()
            .unwrap_or(picked.options.proxy.proxy_protocol);
        if let Some(h) = pp::header(kind, peer, vaddr) {
            relay::write_all(&server, &h)
                .await
                .map_err(|_| RelayEnd::Io)?;
        }
        let idle_override = picked.options.proxy.idle_timeout_ms;
        guard
            .track
            .timeout_ms
            .store(engine.tcp_timeout_ms(idle_override), Relaxed);
        guard.set_state(ConnState::Established);
        guard.track.touch(&engine.clock);
        relay_both(&client, &server, &guard, &svc, engine).await
    };
    // The reset generation is the one read when the real was picked: a reset while the connect
    // or the PROXY header was pending wins at once (the reset branch is polled first).
    let watch = picked.real.watch(picked.reset_gen);
    tokio::select! {
        biased;
        _ = watch.reset() => {
            Outcomes::bump(&engine.outcomes.reset_by_operator);
            abort(&client, &server);
        }
        r = relay => match r {
            Ok(()) => {}
            Err(RelayEnd::Idle) => Outcomes::bump(&engine.outcomes.idle_timeout),
            Err(RelayEnd::Io) => {
                // A reset (or another error) on one side: the other side must see a reset
                // too, not a clean close that makes a truncated stream look complete.
                Outcomes::bump(&engine.outcomes.relay_reset);
                abort(&client, &server);
            }
        },
    }
}

/// Linger 0 on both sockets: dropping them closes both with RST (the socket that failed is
/// already reset; linger on it changes nothing).
fn abort(client: &Sock, server: &Sock) {
    let _ = SockRef::from(client.get_ref()).set_linger(Some(Duration::ZERO));
    let _ = SockRef::from(server.get_ref()).set_linger(Some(Duration::ZERO));
}

/// Why a relay ended early.
enum RelayEnd {
    /// A socket error (reset by a peer, ...).
    Io,
    /// No traffic for the state's timeout (established, or FIN after a half-close).
    Idle,
}

/// Relays both directions; tracks FIN_WAIT / CLOSE_WAIT as each side finishes, and ends the
/// connection after the current state's idle timeout.
async fn relay_both(
    client: &Sock,
    server: &Sock,
    guard: &ConnGuard,
    svc: &ServiceShared,
    engine: &EngineShared,
) -> Result<(), RelayEnd> {
    let splice = engine.use_splice;
    let other_done = || guard.track.state() != ConnState::Established;
    // The FIN timeout runs from the half-close, not from the last data before it (a connection
    // idle for longer than `tcpfin` that then half-closes must still get its answer).
    let half_closed = |state: ConnState| {
        if guard.track.state() == ConnState::Established {
            guard.set_state(state);
            guard
                .track
                .timeout_ms
                .store(engine.tcp_fin_timeout_ms(), Relaxed);
            guard.track.touch(&engine.clock);
        }
    };
    let up = async {
        let on = Dir {
            guard,
            svc,
            engine,
            inbound: true,
        };
        relay::pump(client, server, splice, &on, other_done).await?;
        half_closed(ConnState::FinWait);
        io::Result::Ok(())
    };
    let down = async {
        let on = Dir {
            guard,
            svc,
            engine,
            inbound: false,
        };
        relay::pump(server, client, splice, &on, other_done).await?;
        half_closed(ConnState::CloseWait);
        io::Result::Ok(())
    };
    let (mut up, mut down) = (pin!(up), pin!(down));
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        // A fresh idle watcher each round: it picks up the FIN timeout after a half-close.
        tokio::select! {
            r = &mut up, if !up_done => { r.map_err(|_| RelayEnd::Io)?; up_done = true; }
            r = &mut down, if !down_done => { r.map_err(|_| RelayEnd::Io)?; down_done = true; }
            _ = engine.idle_expired(&guard.track) => return Err(RelayEnd::Idle),
        }
    }
    Ok(())
}

/// Schedules and connects; a refused or timed-out connect is retried on another real, at most
/// `connect_retries` times. The connection is counted (`conns`) only once connected. A local
/// failure ([`ConnectError::Local`]) ends the attempt at once: counted in
/// `connect_local_error`, not against the real, not retried.
async fn connect_with_retries(
    peer: SocketAddr,
    vaddr: SocketAddr,
    svc: &Arc<ServiceShared>,
    ctx: &WorkerCtx,
) -> Option<(Sock, Picked, ConnGuard)> {
    let engine = &ctx.engine;
    let mut failed: Vec<SocketAddr> = Vec::new();
    loop {
        let now = Timestamp::from_millis(engine.clock.now_ms());
        let Some(picked) = svc.open(peer, now, &failed) else {
            Outcomes::bump(&engine.outcomes.no_real);
            return None;
        };
        if picked.all_out {
            Outcomes::bump(&engine.outcomes.passive_all_out);
        }
        let opts = picked.options.proxy;
        let real = Arc::clone(&picked.real);
        let conn = NewConn {
            protocol: Protocol::Tcp,
            client: peer,
            vaddr,
            real: Arc::clone(&real),
            service: Arc::clone(svc),
            conn: picked.conn,
        };
        let guard = ConnGuard::new(
            &ctx.table,
            conn,
            ConnState::SynRecv,
            opts.connect_timeout_ms as u64,
            &engine.clock,
        );
        let timeout = Duration::from_millis(opts.connect_timeout_ms.max(1) as u64);
        let local = svc.local_for(real.addr);
        match crate::ticker::within(timeout, connect(svc.target(real.addr), local))
            .await
            .ok_or(())
        {
            Ok(Ok(server)) => {
                if real.passive_report() && svc.connect_succeeded(&picked) {
                    log::info!("proxy: real {} back in: its probe connected", real.addr);
                }
                real.counters.add_conn();
                svc.counters.add_conn();
                return Some((server, picked, guard));
            }
            Ok(Err(ConnectError::Local { what, source })) => {
                // The director's own failure (descriptors, memory, local address or ports):
                // not the real's, and another real would fail the same way.
                Outcomes::bump(&engine.outcomes.connect_local_error);
                svc.connect_abandoned(&picked);
                if let Some(suppressed) = engine.local_error_log.due(engine.clock.now_ms()) {
                    let from = local.map_or("the host's address".to_string(), |a| a.to_string());
                    log::error!(
                        "proxy: cannot connect to real {} from {from}: {what} failed: {source} \
                         (a local failure: the client is closed, no real is blamed nor retried; \
                         {suppressed} more since the last line)",
                        real.addr
                    );
                }
                return None;
            }
            Ok(Err(ConnectError::Real(e))) => {
                let refused = e.kind() == io::ErrorKind::ConnectionRefused;
                Outcomes::bump(match refused {
                    true => &engine.outcomes.connect_refused,
                    false => &engine.outcomes.connect_error,
                });
                real.connect_failed(&e, engine.clock.now_ms());
            }
            Err(_) => {
                Outcomes::bump(&engine.outcomes.connect_timeout);
                let why = format!("no answer within {} ms", timeout.as_millis());
                real.connect_failed(&why, engine.clock.now_ms());
            }
        }
        if opts.max_fails > 0 {
            passive_failure(svc, &picked, engine);
        }
        drop(guard);
        failed.push(real.addr);
        if failed.len() > opts.connect_retries as usize {
            Outcomes::bump(&engine.outcomes.no_real); // every attempt failed: client closed
            return None;
        }
        Outcomes::bump(&engine.outcomes.connect_retry);
    }
}

/// Reports a failed connect (or a UDP datagram refused by the real) to passive failure detection; counts a take-out (per real and
/// engine-wide) and a real kept in because it was the last.
pub(crate) fn passive_failure(svc: &ServiceShared, picked: &Picked, engine: &EngineShared) {
    let now = Timestamp::from_millis(engine.clock.now_ms());
    let out = svc.connect_failed(picked, now);
    if out.taken_out {
        Outcomes::bump(&engine.outcomes.passive_down);
        picked
            .real
            .passive_taken_out(picked.options.proxy.fail_timeout_ms, engine.clock.now_ms());
    }
    if out.kept_last {
        Outcomes::bump(&engine.outcomes.passive_all_out);
    }
}
