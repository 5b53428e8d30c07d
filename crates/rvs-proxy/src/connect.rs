//! Opening the proxy's own TCP connection to a real, with its failures sorted by whose fault
//! they are.
//!
//! A failure before the SYN leaves is the director's own problem, not the real's: no descriptor
//! for the socket (`EMFILE`, `ENFILE`), no kernel memory (`ENOBUFS`, `ENOMEM`), a FULLNAT local
//! address that cannot be bound (`EADDRNOTAVAIL`: not on this host; `EADDRINUSE`), no free
//! ephemeral port (`EADDRNOTAVAIL` / `EAGAIN` from `connect`), or the reactor refusing the
//! socket. Such a failure is [`ConnectError::Local`]: the caller must not count it against the
//! real (its `connect_failures`, passive failure detection) nor retry on another real, which
//! would fail the same way — under descriptor exhaustion that took healthy reals out one after
//! another. Everything after the SYN left (refused, unreachable, reset, timed out) is
//! [`ConnectError::Real`].

use crate::relay::{self, Sock};
use socket2::{Domain, Socket, Type};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why a connect to a real failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The director could not send the SYN (see the module docs).
    #[error("{what}: {source}")]
    Local {
        what: &'static str,
        source: io::Error,
    },
    /// The real, or the path to it, failed the connect.
    #[error("{0}")]
    Real(io::Error),
}

impl ConnectError {
    fn local(what: &'static str) -> impl FnOnce(io::Error) -> ConnectError {
        move |source| ConnectError::Local { what, source }
    }

    /// An error `connect(2)` returned at once: local for a lack of ports, memory or
    /// descriptors, else the real's (unreachable, ...).
    pub fn from_connect(e: io::Error) -> ConnectError {
        match e.raw_os_error().is_some_and(is_local_connect_errno) {
            true => ConnectError::Local {
                what: "connect (no local port or memory)",
                source: e,
            },
            false => ConnectError::Real(e),
        }
    }
}

/// Errors `connect(2)` returns at once for a lack of local resources (ports, memory,
/// descriptors) rather than anything the real did.
fn is_local_connect_errno(errno: i32) -> bool {
    matches!(
        errno,
        libc::EADDRNOTAVAIL
            | libc::EADDRINUSE
            | libc::EAGAIN
            | libc::ENOBUFS
            | libc::ENOMEM
            | libc::EMFILE
            | libc::ENFILE
    )
}

/// A non-blocking connect to `addr`, from `local` if given (a FULLNAT local address), registered
/// with the reactor, with `TCP_NODELAY`.
pub async fn connect(addr: SocketAddr, local: Option<IpAddr>) -> Result<Sock, ConnectError> {
    let sock = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking().cloexec(),
        None,
    )
    .map_err(ConnectError::local("creating the socket"))?;
    sock.set_tcp_nodelay(true)
        .map_err(ConnectError::local("setting TCP_NODELAY"))?;
    if let Some(l) = local {
        crate::listen::bind_local(&sock, l)
            .map_err(ConnectError::local("binding the FULLNAT local address"))?;
    }
    match sock.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(ConnectError::from_connect(e)),
    }
    let sock = relay::register(TcpStream::from(sock))
        .map_err(ConnectError::local("registering with the reactor"))?;
    let ready = sock.writable().await.map_err(ConnectError::Real)?;
    // A failed connect (refused, unreachable) shows as a hang-up of the write side; a
    // successful one needs no SO_ERROR query (a real that answered and already closed its
    // side shows only as read-closed, and is connected).
    if ready.ready().is_write_closed() {
        let err = sock.get_ref().take_error().map_err(ConnectError::Real)?;
        let err = err.unwrap_or_else(|| io::ErrorKind::ConnectionRefused.into());
        return Err(ConnectError::Real(err));
    }
    drop(ready);
    Ok(sock)
}

/// At most one log line per [`LogLimit::EVERY_MS`] for an engine-wide condition (the local
/// connect errors: one line per failed client would flood the log exactly when descriptors
/// run out).
#[derive(Debug, Default)]
pub struct LogLimit {
    /// When a line last went out (engine clock, ms; 0: never), and the events since.
    last_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl LogLimit {
    pub const EVERY_MS: u64 = 10_000;

    /// An event at `now_ms`: `Some(n)` if it is to be logged, with `n` events suppressed since
    /// the last line.
    pub fn due(&self, now_ms: u64) -> Option<u64> {
        let last = self.last_ms.load(Relaxed);
        let due = last == 0 || now_ms.saturating_sub(last) >= Self::EVERY_MS;
        if !due
            || self
                .last_ms
                .compare_exchange(last, now_ms.max(1), Relaxed, Relaxed)
                .is_err()
        {
            self.suppressed.fetch_add(1, Relaxed);
            return None;
        }
        Some(self.suppressed.swap(0, Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rt as rt;

    #[test]
    fn a_local_address_not_on_this_host_is_a_local_error() {
        let real: SocketAddr = "127.0.0.1:9".parse().unwrap();
        // 192.0.2.1 (TEST-NET-1) is on no interface here: bind fails with EADDRNOTAVAIL.
        let r = rt().block_on(connect(real, Some("192.0.2.1".parse().unwrap())));
        match r {
            Err(ConnectError::Local { source, .. }) => {
                assert_eq!(source.raw_os_error(), Some(libc::EADDRNOTAVAIL))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_refused_connect_is_the_real_s() {
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap(); // closed again: nothing listens there
        let r = rt().block_on(connect(free, None));
        match r {
            Err(ConnectError::Real(e)) => assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_log_limit_lets_one_line_through_per_period_and_counts_the_rest() {
        let l = LogLimit::default();
        assert_eq!(l.due(0), Some(0), "the first is logged");
        assert_eq!(l.due(5), None);
        assert_eq!(l.due(LogLimit::EVERY_MS - 1), None);
        assert_eq!(l.due(LogLimit::EVERY_MS + 1), Some(2));
        assert_eq!(l.due(LogLimit::EVERY_MS + 2), None);
    }

    #[test]
    fn port_and_memory_errors_of_connect_are_local_refusals_are_not() {
        for e in [
            libc::EADDRNOTAVAIL,
            libc::EAGAIN,
            libc::ENOBUFS,
            libc::EMFILE,
        ] {
            assert!(is_local_connect_errno(e), "{e}");
        }
        for e in [libc::ECONNREFUSED, libc::ENETUNREACH, libc::EHOSTUNREACH] {
            assert!(!is_local_connect_errno(e), "{e}");
        }
    }
}
